//! The client side, for `https://` backends: a [`ClientConfig`] per (CA file, skip-verify)
//! choice, the [`ServerName`] to verify a backend against, and short log reasons for failed
//! handshakes.
//!
//! Trust roots when no CA file is given: Mozilla's, compiled in by `webpki-roots` (see the
//! module header of `tls` for why).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};

use super::certs::{self, format_utc};
use super::{provider, TlsError};

/// Builds a client configuration: TLS 1.2 and 1.3, ALPN `http/1.1`, rustls' in-memory session
/// resumption (256 servers). It trusts the certificates of `ca_file` (a PEM bundle) when given,
/// else Mozilla's roots. `skip_verify` accepts any server certificate (the CA file is then not
/// read) but still checks the handshake signatures, so the peer must hold the key of the
/// certificate it sent.
///
/// Each call builds a new config with its own resumption cache: share them through
/// [`ClientConfigs`].
pub fn client_config(
    ca_file: Option<&Path>,
    skip_verify: bool,
) -> Result<Arc<ClientConfig>, TlsError> {
    let certificates = match ca_file.filter(|_| !skip_verify) {
        Some(path) => certs::load_certificates(path)?,
        None => Vec::new(),
    };
    build(ca_file, &certificates, skip_verify)
}

/// [`client_config`] with the CA file's `certificates` already read.
fn build(
    ca_file: Option<&Path>,
    certificates: &[CertificateDer<'static>],
    skip_verify: bool,
) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?;
    let mut config = if skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(DangerAcceptAnyServerCert { provider }))
            .with_no_client_auth()
    } else {
        builder
            .with_root_certificates(root_store(ca_file, certificates)?)
            .with_no_client_auth()
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The roots: Mozilla's without a CA file, else the certificates read from it.
fn root_store(
    ca_file: Option<&Path>,
    certificates: &[CertificateDer<'static>],
) -> Result<RootCertStore, TlsError> {
    let Some(path) = ca_file else {
        return Ok(RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        });
    };
    let mut roots = RootCertStore::empty();
    let count = certificates.len();
    let mut first_error = None;
    for (i, der) in certificates.iter().enumerate() {
        if let Err(e) = roots.add(der.clone()) {
            first_error.get_or_insert((i + 1, e));
        }
    }
    match first_error {
        // Large bundles may hold a certificate webpki cannot use as an anchor: keep the rest.
        Some((index, e)) if roots.is_empty() || count == 1 => Err(TlsError::BadCertificate {
            path: path.to_owned(),
            index,
            problem: e.to_string(),
        }),
        Some((index, e)) => {
            log::warn!(
                "{}: certificate #{index} (and maybe others) is not a usable CA: {e}; \
                 using the other {}",
                path.display(),
                roots.len()
            );
            Ok(roots)
        }
        None => Ok(roots),
    }
}

/// Client configurations built once per distinct (CA file, skip-verify) pair and shared, so
/// connections to the same backends resume their sessions.
///
/// A reload reads the CA files again through [`ClientConfigs::renewed`]: a cache that rebuilds
/// every config whose CA file now holds other certificates (a rotated CA), and reuses the very
/// same config where the file did not change, so that backends whose TLS settings did not move
/// are kept, pooled connections and resumption included (the pool matches them by config).
/// [`ClientConfigs::adopt`] makes it the cache in force once the reload is sure to apply.
#[derive(Default)]
pub struct ClientConfigs {
    built: Mutex<HashMap<ConfigKey, Built>>,
    /// The configs of the cache this one renews (empty for a first one).
    previous: HashMap<ConfigKey, Built>,
}

/// (CA file, skip_verify); the CA file is `None` with skip_verify.
type ConfigKey = (Option<PathBuf>, bool);

/// A config and the CA certificates it was built from (none: built-in roots or skip-verify).
#[derive(Clone)]
struct Built {
    config: Arc<ClientConfig>,
    certificates: Arc<[CertificateDer<'static>]>,
}

impl ClientConfigs {
    pub fn new() -> ClientConfigs {
        ClientConfigs::default()
    }

    /// The shared config for this choice, built the first time (a CA file is read then).
    pub fn get(
        &self,
        ca_file: Option<&Path>,
        skip_verify: bool,
    ) -> Result<Arc<ClientConfig>, TlsError> {
        // skip_verify ignores the CA file: one config serves all of those.
        let key = (
            ca_file.filter(|_| !skip_verify).map(Path::to_owned),
            skip_verify,
        );
        let mut built = self.built.lock();
        if let Some(b) = built.get(&key) {
            return Ok(Arc::clone(&b.config));
        }
        let certificates: Arc<[CertificateDer<'static>]> = match &key.0 {
            Some(path) => certs::load_certificates(path)?.into(),
            None => Arc::new([]),
        };
        let config = match self.previous.get(&key) {
            Some(before) if before.certificates == certificates => Arc::clone(&before.config),
            _ => build(key.0.as_deref(), &certificates, skip_verify)?,
        };
        built.insert(
            key,
            Built {
                config: Arc::clone(&config),
                certificates,
            },
        );
        Ok(config)
    }

    /// A new cache that reads every CA file again (see the type's doc).
    pub fn renewed(&self) -> ClientConfigs {
        ClientConfigs {
            built: Mutex::new(HashMap::new()),
            previous: self.built.lock().clone(),
        }
    }

    /// Takes the configs of `fresh` (made by [`ClientConfigs::renewed`]) as this cache's own:
    /// later calls get them, and configs it did not build are forgotten.
    pub fn adopt(&self, fresh: ClientConfigs) {
        *self.built.lock() = fresh.built.into_inner();
    }
}

/// The name to verify a backend `host` against: an IP address (plain or in brackets, like
/// `[::1]`) becomes `ServerName::IpAddress` and is checked against the certificate's IP SANs;
/// anything else must be a valid DNS name.
pub fn server_name(host: &str) -> Result<ServerName<'static>, TlsError> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = bare.parse::<std::net::IpAddr>() {
        return Ok(ServerName::IpAddress(ip.into()));
    }
    ServerName::try_from(host.to_owned()).map_err(|_| TlsError::BadServerName {
        host: host.to_owned(),
    })
}

/// A short reason for a failed handshake, for the log line of a 502: "certificate is not
/// trusted (unknown issuer)", "certificate name does not match 127.0.0.1", "certificate
/// expired on …".
pub fn handshake_failure_reason(error: &rustls::Error) -> String {
    use rustls::Error as E;
    match error {
        E::InvalidCertificate(e) => certificate_reason(e),
        E::NoApplicationProtocol => "the peer does not speak http/1.1 (ALPN)".into(),
        E::AlertReceived(alert) => format!("the peer refused the handshake (alert {alert:?})"),
        E::PeerIncompatible(why) => format!("the peer is incompatible ({why:?})"),
        E::PeerMisbehaved(why) => format!("the peer broke the TLS protocol ({why:?})"),
        E::InvalidMessage(_) | E::InappropriateMessage { .. } => {
            format!("the peer sent invalid TLS ({error}); is it speaking TLS?")
        }
        E::InappropriateHandshakeMessage { .. } => {
            format!("the peer sent an unexpected handshake message ({error})")
        }
        E::NoCertificatesPresented => "the peer sent no certificate".into(),
        other => other.to_string(),
    }
}

fn certificate_reason(e: &CertificateError) -> String {
    use CertificateError as C;
    let secs = |t: &UnixTime| format_utc(i64::try_from(t.as_secs()).unwrap_or(i64::MAX));
    match e {
        C::UnknownIssuer => "certificate is not trusted (unknown issuer)".into(),
        C::NotValidForName => "certificate name does not match".into(),
        C::NotValidForNameContext {
            expected,
            presented,
        } => {
            let mut reason = format!("certificate name does not match {}", expected.to_str());
            if !presented.is_empty() {
                let shown: Vec<&str> = presented.iter().take(4).map(String::as_str).collect();
                let more = if presented.len() > 4 { ", …" } else { "" };
                reason.push_str(&format!(" (it is for {}{more})", shown.join(", ")));
            }
            reason
        }
        C::Expired => "certificate expired".into(),
        C::ExpiredContext { not_after, .. } => {
            format!("certificate expired on {}", secs(not_after))
        }
        C::NotValidYet => "certificate is not valid yet".into(),
        C::NotValidYetContext { not_before, .. } => {
            format!("certificate is not valid before {}", secs(not_before))
        }
        C::Revoked => "certificate is revoked".into(),
        C::BadSignature => "certificate has a bad signature".into(),
        C::BadEncoding => "certificate is malformed".into(),
        C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
            "certificate is not for TLS servers (extended key usage)".into()
        }
        C::UnhandledCriticalExtension => "certificate has an unknown critical extension".into(),
        C::UnsupportedSignatureAlgorithmContext { .. }
        | C::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
            "certificate uses an unsupported signature algorithm".into()
        }
        other => format!("certificate rejected ({other:?})"),
    }
}

/// `skip_verify`: accepts any server certificate, for any name, expired or not. It still checks
/// that the handshake is signed by the key of the certificate sent, which only proves the peer
/// holds that key, not who it is. For testing against self-signed backends only.
#[derive(Debug)]
struct DangerAcceptAnyServerCert {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for DangerAcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
