//! The integration tests: one binary (`[[test]] integration` in Cargo.toml, `autotests = false`),
//! a module per capability.

mod common;

mod access_log;
mod admin;
mod balancing;
mod dashboard;
mod drain;
mod edges;
mod hardening;
mod health;
mod http11;
mod http2;
mod identity;
mod pools_admin;
mod rate_limit;
mod reload;
mod routing;
mod streaming;
mod tls;
mod traffic;
