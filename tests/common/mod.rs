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

/// A fresh, empty temporary directory of its own, named after `name` for whoever reads it:
/// `ferrule-test-PID-N-NAME` in the system's temporary directory, where N counts the calls. Two
/// tests running at once in this process never share (or remove) each other's files, whatever
/// names they pick. The caller removes it ([`TempDir`] and [`ProxyProcess`] do, when dropped).
pub fn fresh_temp_dir(name: &str) -> PathBuf {
    static MADE: AtomicUsize = AtomicUsize::new(0);
    let n = MADE.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("ferrule-test-{}-{n}-{name}", std::process::id()));
    // left by an earlier process that had this PID
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// A [`fresh_temp_dir`] removed when dropped.
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        TempDir {
            path: fresh_temp_dir(name),
        }
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
