//! What a process holds, from `/proc/<pid>/status`: its resident memory ([`memory_of`]), and the
//! bound a 1 GiB transfer must keep to ([`assert_bounded_memory`]).
//!
//! Only ever of a child process ([`ProxyProcess::memory`](super::ProxyProcess::memory)): every
//! test runs in this one process, so its own figures say nothing about any one of them.

/// Sizes in bytes.
pub const KIB: u64 = 1024;
pub const MIB: u64 = 1024 * KIB;
pub const GIB: u64 = 1024 * MIB;

/// A process's resident memory, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    /// `VmHWM`: the peak resident set size so far, in bytes.
    pub peak: u64,
    /// `VmRSS`: the resident set size now, in bytes.
    pub current: u64,
}

/// Peak and current resident memory of process `pid`.
pub fn memory_of(pid: u32) -> Memory {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/<pid>/status");
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map(|kib| kib * 1024)
            .unwrap_or_else(|| panic!("no {name} in /proc/<pid>/status"))
    };
    Memory {
        peak: field("VmHWM:"),
        current: field("VmRSS:"),
    }
}

/// The proxy's memory bounds for a 1 GiB transfer (`streaming.rs`, `tls.rs`).
///
/// ferrule holds at most two buffers of `buffer_size` (128 KiB by default) + 1 KiB headroom per
/// busy connection, plus a per-worker pool of a few free buffers: well under 1 MiB for one
/// transfer. Over TLS rustls's queues come on top (outgoing records capped at 64 KiB, one
/// incoming record of at most 16 KiB + overhead, 16 KiB of plaintext). Its baseline (code, a few
/// threads' stacks, the allocator's arenas, the TLS session cache's 2.2 MiB table) is a few MiB.
/// 64 MiB of peak RSS is therefore generous, yet a proxy that buffered even 1/16 of the body would
/// cross it. A peak that grows by 16 MiB during the transfer (over 100 times the two buffers)
/// means something other than those buffers is holding body bytes. (Measured on a 2-core Linux
/// box: a peak of 3.4 MiB in release, 5 MiB in debug, growing by about 0.2 MiB.)
pub const PEAK_LIMIT: u64 = 64 * MIB;
pub const GROWTH_LIMIT: u64 = 16 * MIB;

/// Checks the bounds above between `before` and `after` a transfer, and says what they were.
pub fn assert_bounded_memory(before: Memory, after: Memory) {
    eprintln!(
        "proxy memory: peak {:.1} MiB before, {:.1} MiB after (RSS {:.1} -> {:.1} MiB)",
        before.peak as f64 / MIB as f64,
        after.peak as f64 / MIB as f64,
        before.current as f64 / MIB as f64,
        after.current as f64 / MIB as f64,
    );
    assert!(
        after.peak < PEAK_LIMIT,
        "proxy peak RSS {} bytes reached the {PEAK_LIMIT}-byte bound ({before:?} before)",
        after.peak
    );
    assert!(
        after.peak - before.peak < GROWTH_LIMIT,
        "proxy peak RSS grew by {} bytes during the transfer ({before:?} -> {after:?})",
        after.peak - before.peak
    );
}
