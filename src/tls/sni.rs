//! Choosing the server certificate by SNI: [`CertSet`] is one loaded list of certificates,
//! [`SniResolver`] is what rustls asks at each handshake, holding the current set behind a lock
//! so a reload swaps it without touching the `ServerConfig` (nor its session cache and ticket
//! keys) or the connections already open.

use std::fmt;
use std::sync::Arc;

use parking_lot::RwLock;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// One certificate and the DNS names SNI may select it by.
pub(crate) struct CertEntry {
    pub key: Arc<CertifiedKey>,
    /// Lowercased; `*.example.com` for a wildcard.
    pub names: Vec<String>,
}

/// The certificates in configuration order; never empty. The first is the default.
pub(crate) struct CertSet {
    entries: Vec<CertEntry>,
}

impl CertSet {
    /// `None` if `entries` is empty.
    pub(crate) fn new(entries: Vec<CertEntry>) -> Option<CertSet> {
        (!entries.is_empty()).then_some(CertSet { entries })
    }

    /// The index of the certificate for `sni`: the first (in list order) with a name matching
    /// it, else 0, the default (no SNI, an unknown name).
    pub(crate) fn select(&self, sni: Option<&str>) -> usize {
        let Some(sni) = sni else { return 0 };
        let sni = sni.strip_suffix('.').unwrap_or(sni);
        self.entries
            .iter()
            .position(|e| e.names.iter().any(|pattern| name_matches(pattern, sni)))
            .unwrap_or(0)
    }

    fn key(&self, index: usize) -> Option<&Arc<CertifiedKey>> {
        self.entries.get(index).map(|e| &e.key)
    }

    /// The names of each certificate, in order.
    pub(crate) fn names(&self) -> Vec<Vec<String>> {
        self.entries.iter().map(|e| e.names.clone()).collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

/// Does certificate name `pattern` cover host `name`? Exact names compare ASCII
/// case-insensitively; a wildcard `*.example.com` covers exactly one more label on the left
/// (`a.example.com`, not `example.com` nor `a.b.example.com`). Other uses of `*` match nothing
/// but themselves.
pub(crate) fn name_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(suffix) => match name.split_once('.') {
            Some((label, rest)) => {
                !label.is_empty() && label != "*" && rest.eq_ignore_ascii_case(suffix)
            }
            None => false,
        },
        None => pattern.eq_ignore_ascii_case(name),
    }
}

/// The `ResolvesServerCert` of ferrule's `ServerConfig`: reads the current [`CertSet`] once per
/// handshake; [`SniResolver::replace`] swaps it for the handshakes that follow.
pub(crate) struct SniResolver {
    current: RwLock<Arc<CertSet>>,
}

impl SniResolver {
    pub(crate) fn new(set: CertSet) -> SniResolver {
        SniResolver {
            current: RwLock::new(Arc::new(set)),
        }
    }

    pub(crate) fn replace(&self, set: CertSet) {
        *self.current.write() = Arc::new(set);
    }

    /// The set new handshakes use now.
    pub(crate) fn current(&self) -> Arc<CertSet> {
        Arc::clone(&self.current.read())
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let set = self.current();
        set.key(set.select(client_hello.server_name())).cloned()
    }
}

impl fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SniResolver")
            .field("certificates", &self.current.read().len())
            .finish()
    }
}
