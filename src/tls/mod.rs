//! TLS configuration: turns certificate and key files into rustls configs. No socket code.
//!
//! What this module owns:
//! - server side (termination): [`ServerTls`] loads an ordered list of [`CertPair`]s (the first
//!   is the default certificate), picks one per handshake by SNI (`sni.rs`) and reloads them
//!   without a restart; [`check`] does the loading alone, for `ferrule --check`. One
//!   `Arc<ServerConfig>` serves every worker, so they share its session cache and ticket keys.
//! - client side (`https://` backends): [`client_config`], the [`ClientConfigs`] cache,
//!   [`server_name`] and [`handshake_failure_reason`] (`client.rs`).
//! - reading PEM files and the errors and warnings about them (`certs.rs`, `error.rs`).
//!
//! Its neighbours: `transport.rs` drives the rustls connections inside the mio session with the
//! configs made here; `config.rs` names the files (`ssl.cert_file`, `ssl.key_file`, …) and
//! passes plain paths in. Nothing here counts or logs per connection.
//!
//! Choices:
//! - Crypto: rustls' default provider, aws-lc-rs (built without cmake here).
//! - Server: TLS 1.2 and 1.3 (rustls' safe defaults), ALPN exactly `http/1.1` (a client that
//!   offers ALPN without it is refused by rustls with `no_application_protocol`; one that offers
//!   none is served), no 0-RTT. Resumption both ways: stateless tickets (the provider's
//!   `Ticketer`: AES-256-CBC + HMAC-SHA256, keys rotated every 6 hours, in memory only) and a
//!   stateful cache of [`SESSION_CACHE_ENTRIES`] sessions for TLS 1.2 clients without tickets.
//!   The server's cipher order wins (`ignore_client_order`; scanners such as testssl.sh flag
//!   "no server cipher order" otherwise), strongest first: [`CIPHER_SUITES`]. Every suite
//!   rustls has is an AEAD with forward secrecy (ECDHE only for TLS 1.2), so the order only
//!   ranks good suites: AES-256-GCM first (a 256-bit key, and with AES-NI/VAES nearly as cheap
//!   as AES-128; it is also what OpenSSL clients such as curl and wrk pick first, so they see no
//!   change), then ChaCha20-Poly1305 (also a 256-bit key, and fast in software: a client that
//!   offers no AES-256-GCM is most likely a small device without AES instructions), then
//!   AES-128-GCM, which every TLS 1.3 client must have. The price: a client without AES
//!   hardware that would have picked ChaCha20 itself but also offers AES-256-GCM gets AES, more
//!   slowly on its side (rustls cannot prefer ChaCha20 only for the clients that list it first,
//!   as BoringSSL's equal-preference groups do).
//! - Client trust roots without a CA file: Mozilla's, compiled in by `webpki-roots`, not the
//!   system store (`rustls-native-certs`). ferrule runs in containers, and a minimal image
//!   (scratch, distroless) has no `/etc/ssl`: native roots would leave it trusting nothing and
//!   failing every backend. Compiled-in roots are the same on every machine for one build
//!   (reproducible tests and behaviour) and need no file at run time. The cost: they change only
//!   with a rebuild (`cargo update -p webpki-roots`), not with the OS's updates, and they do not
//!   include a company's private CA; backends on a private CA (the usual case for a reverse
//!   proxy) name it with a CA file, which replaces the roots. The roots are published under
//!   CDLA-Permissive-2.0.

mod certs;
mod client;
mod error;
mod sni;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use rustls::crypto::CryptoProvider;
use rustls::server::ServerSessionMemoryCache;
use rustls::{ServerConfig, SupportedCipherSuite};

pub use client::{client_config, handshake_failure_reason, server_name, ClientConfigs};
pub use error::TlsError;

use sni::{CertEntry, CertSet, SniResolver};

/// Sessions kept by the server's stateful cache (rustls `ServerSessionMemoryCache`, one
/// mutex-guarded map shared by all workers; oldest evicted first). With tickets on, only TLS 1.2
/// clients that do not take tickets use it. 28 Ki is the most that fits the map's 32 Ki hash
/// buckets (7/8 load). Memory, measured with glibc: 2.2 MiB allocated up front (the buckets and
/// the eviction queue), then 207 bytes per stored session (its 32-byte id, kept twice, and the
/// encoded session, 90 bytes with a 9-byte SNI, each a heap block): 7.9 MiB when full (a little
/// more with long SNI names).
pub const SESSION_CACHE_ENTRIES: usize = 28 * 1024;

/// One server certificate: a PEM chain (leaf first) and its PEM private key (PKCS#8, PKCS#1 RSA
/// or SEC1 EC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPair {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

impl CertPair {
    pub fn new(cert_file: impl Into<PathBuf>, key_file: impl Into<PathBuf>) -> CertPair {
        CertPair {
            cert_file: cert_file.into(),
            key_file: key_file.into(),
        }
    }
}

/// TLS termination: one `ServerConfig` for all workers, whose certificates can be reloaded.
pub struct ServerTls {
    config: Arc<ServerConfig>,
    resolver: Arc<SniResolver>,
}

impl ServerTls {
    /// Loads `pairs` (the first is the default certificate) and builds the server config, ALPN
    /// offering `h2` before `http/1.1`. Returns it with the warnings (expired certificates,
    /// certificates SNI can never select).
    pub fn new(pairs: &[CertPair]) -> Result<(ServerTls, Vec<String>), TlsError> {
        ServerTls::with_alpn(pairs, true)
    }

    /// [`ServerTls::new`], offering `h2` only when `http2`.
    pub fn with_alpn(
        pairs: &[CertPair],
        http2: bool,
    ) -> Result<(ServerTls, Vec<String>), TlsError> {
        let (set, warnings) = load_set(pairs)?;
        let resolver = Arc::new(SniResolver::new(set));
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&resolver) as _);
        config.alpn_protocols = if http2 {
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        };
        config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE_ENTRIES);
        config.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new()?;
        config.ignore_client_order = true;
        Ok((
            ServerTls {
                config: Arc::new(config),
                resolver,
            },
            warnings,
        ))
    }

    /// The config every worker gives its `ServerConnection`s. It stays the same across reloads.
    pub fn config(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.config)
    }

    /// Loads `pairs` again and, if all of them load, makes new handshakes use them; open
    /// connections, the session cache and the ticket keys are untouched. On an error the
    /// certificates in use stay.
    pub fn reload(&self, pairs: &[CertPair]) -> Result<Vec<String>, TlsError> {
        let (set, warnings) = load_set(pairs)?;
        self.resolver.replace(set);
        Ok(warnings)
    }

    /// The DNS names of the certificates in use, in order (the first is the default).
    pub fn names(&self) -> Vec<Vec<String>> {
        self.resolver.current().names()
    }
}

/// Loads and checks `pairs` as [`ServerTls::new`] would, for `ferrule --check`; the warnings.
pub fn check(pairs: &[CertPair]) -> Result<Vec<String>, TlsError> {
    load_set(pairs).map(|(_, warnings)| warnings)
}

fn load_set(pairs: &[CertPair]) -> Result<(CertSet, Vec<String>), TlsError> {
    let provider = provider();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let mut warnings = Vec::new();
    let mut entries = Vec::with_capacity(pairs.len());
    for (i, pair) in pairs.iter().enumerate() {
        let loaded = certs::load_pair(pair, &provider, now, &mut warnings)?;
        if i > 0 && loaded.names.is_empty() {
            warnings.push(format!(
                "{}: the certificate has no DNS name, so SNI never selects it (only the first \
                 certificate is the default)",
                pair.cert_file.display()
            ));
        }
        entries.push(CertEntry {
            key: loaded.key,
            names: loaded.names,
        });
    }
    let set = CertSet::new(entries).ok_or(TlsError::NoPairs)?;
    Ok((set, warnings))
}

/// The cipher suites, in the server's order of preference (see the module header): for TLS
/// 1.3, then for TLS 1.2 (ECDHE, AEAD only; the certificate's key type picks ECDSA or RSA).
pub const CIPHER_SUITES: [SupportedCipherSuite; 9] = {
    use rustls::crypto::aws_lc_rs::cipher_suite as s;
    [
        s::TLS13_AES_256_GCM_SHA384,
        s::TLS13_CHACHA20_POLY1305_SHA256,
        s::TLS13_AES_128_GCM_SHA256,
        s::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        s::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        s::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        s::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        s::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        s::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ]
};

/// The crypto provider of every config made here: aws-lc-rs with rustls' defaults but the
/// order of [`CIPHER_SUITES`] (the same suites as rustls' default list).
pub(crate) fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    Arc::clone(PROVIDER.get_or_init(|| {
        Arc::new(CryptoProvider {
            cipher_suites: CIPHER_SUITES.to_vec(),
            ..rustls::crypto::aws_lc_rs::default_provider()
        })
    }))
}
