//! The integration tests: one binary (`[[test]] integration` in Cargo.toml, `autotests = false`),
//! a module per capability.

mod common;

mod access_log;
mod admin;
mod balancing;
mod dashboard;
mod drain;
mod hardening;
mod health;
mod http11;
mod identity;
mod reload;
mod streaming;
mod tls;
