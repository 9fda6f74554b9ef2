//! Shared helpers of the integration tests (one binary, `tests/integration.rs`).

mod backend;
pub mod tls;

pub use backend::*;
