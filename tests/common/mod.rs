//! Shared helpers of the integration tests (`tests/integration.rs`, one binary, a module per
//! capability). Everything runs on 127.0.0.1 with ports picked by the kernel, every blocking read
//! has a timeout (a broken proxy fails a test instead of hanging it), and every child process is
//! stopped by its PID.
//!
//! - `proxy.rs`: ferrule in this process ([`Proxy`]) or as a child ([`ProxyProcess`]), child
//!   processes and their output, admin calls, readiness signals;
//! - `backend.rs`: the test backends ([`Backend`], slow, gated, a refusing address);
//! - `wire.rs`: the one HTTP head reader and parser, a raw client, responses in any framing;
//! - `memory.rs`: a child process's resident memory and the bounds of a streamed transfer;
//! - `tls.rs`: certificates made at test time, a rustls client, HTTPS and byte-pattern
//!   backends, TLS proxies;
//! - here: the read timeout and temporary directories.
//!
//! Every test of the suite runs in this one process, two at a time (the harness's threads): a
//! helper gives each test its own resources (ports, directories, backends that stop when
//! dropped), never a name or a count shared by the process.

pub mod backend;
pub mod h2;
pub mod memory;
pub mod proxy;
pub mod tls;
pub mod wire;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

pub use backend::*;
pub use memory::*;
pub use proxy::*;
pub use wire::*;

/// How long any single read in a test may block.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A fresh, empty temporary directory of its own, removed (with everything in it) when dropped:
/// `ferrule-test-PID-N-NAME` in the system's temporary directory, named after `name` for whoever
/// reads it, where N counts the directories made. Two tests running at once in this process never
/// share (or remove) each other's files, whatever names they pick. The only way the suite makes
/// one, so none outlives its test, even one that fails: keep it in a variable declared before
/// whatever uses its files (a proxy writing there is dropped, so stopped, before it is removed).
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static MADE: AtomicUsize = AtomicUsize::new(0);
        let n = MADE.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("ferrule-test-{}-{n}-{name}", std::process::id()));
        // left by an earlier process that had this PID
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir { path }
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Writes `contents` to `name` in the directory; returns the path.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.join(name);
        std::fs::write(&path, contents).expect("write a temporary file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A path as the string a JSON config holds.
pub fn path_text(path: &Path) -> String {
    path.to_str().expect("a UTF-8 temporary path").to_owned()
}
