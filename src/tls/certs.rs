//! Reading PEM files into certificate chains and private keys, with one precise [`TlsError`] per
//! way a file can be wrong, and the facts about a certificate the rest of `tls` needs (its DNS
//! names for SNI, its validity for warnings).
//!
//! PEM is parsed with `rustls-pki-types`' `PemObject` (re-exported by rustls); certificates with
//! `x509-parser`. When the crypto provider refuses a key, [`classify_key_failure`] walks the
//! key's outer DER (a few bounded TLV steps, no recursion) to tell a malformed key from a
//! well-formed key of a type the provider does not do.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::InconsistentKeys;
use x509_parser::extensions::GeneralName;

use super::{CertPair, TlsError};

/// Files larger than this are refused rather than read (a PEM bundle of every public CA is
/// about 200 KiB): a path such as `/dev/zero` must not eat the memory.
const MAX_FILE_BYTES: u64 = 16 << 20;

/// A certificate/key pair, loaded and checked.
pub(crate) struct LoadedPair {
    pub key: Arc<CertifiedKey>,
    /// The DNS names SNI may select it by, lowercased (`*.example.com` for wildcards).
    pub names: Vec<String>,
}

/// Loads one pair: the chain, the key, the key against the certificate. Expired and
/// not-yet-valid certificates (at `now`, seconds since the epoch) are pushed to `warnings`.
pub(crate) fn load_pair(
    pair: &CertPair,
    provider: &CryptoProvider,
    now: i64,
    warnings: &mut Vec<String>,
) -> Result<LoadedPair, TlsError> {
    let chain = load_certificates(&pair.cert_file)?;
    let mut info = None;
    for (i, der) in chain.iter().enumerate() {
        match cert_info(&pair.cert_file, i + 1, der) {
            Ok(parsed) if i == 0 => info = Some(parsed),
            Ok(_) => {}
            Err(e) if i == 0 => return Err(e),
            // The rest of the chain is sent as it is; the client judges it.
            Err(e) => warnings.push(format!("{e} (clients may refuse the chain)")),
        }
    }
    let Some(info) = info else {
        return Err(TlsError::NoCertificate {
            path: pair.cert_file.clone(),
            holds_key: false,
        });
    };
    validity_warnings(&pair.cert_file, &info, now, warnings);

    let key_der = load_key(&pair.key_file)?;
    let signing_key = match provider.key_provider.load_private_key(key_der.clone_key()) {
        Ok(key) => key,
        Err(e) => return Err(classify_key_failure(&pair.key_file, &key_der, &e)),
    };
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        // `Unknown`: the key cannot say its public key; nothing to compare (rustls does the same).
        Ok(()) | Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(_)) => {
            return Err(TlsError::KeyMismatch {
                cert_file: pair.cert_file.clone(),
                key_file: pair.key_file.clone(),
            })
        }
        Err(e) => {
            return Err(TlsError::BadCertificate {
                path: pair.cert_file.clone(),
                index: 1,
                problem: e.to_string(),
            })
        }
    }
    Ok(LoadedPair {
        key: Arc::new(certified),
        names: info.dns_names,
    })
}

/// Every `CERTIFICATE` section of a PEM file, in order; at least one.
pub(crate) fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read_pem_file(path)?;
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| malformed_pem(path, e))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
            holds_key: PrivateKeyDer::from_pem_slice(&bytes).is_ok(),
        });
    }
    Ok(chain)
}

/// The first private key (PKCS#8, PKCS#1 RSA or SEC1 EC) of a PEM file.
pub(crate) fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read_pem_file(path)?;
    match PrivateKeyDer::from_pem_slice(&bytes) {
        Ok(key) => Ok(key),
        Err(pem::Error::NoItemsFound) => Err(TlsError::NoKey {
            path: path.to_owned(),
            holds_certificate: CertificateDer::from_pem_slice(&bytes).is_ok(),
            encrypted: contains(&bytes, b"-----BEGIN ENCRYPTED PRIVATE KEY-----"),
        }),
        Err(e) => Err(malformed_pem(path, e)),
    }
}

/// The whole file, refusing missing, unreadable, oversized, empty and binary (non-PEM) files.
fn read_pem_file(path: &Path) -> Result<Vec<u8>, TlsError> {
    let io_error = |source: std::io::Error| match source.kind() {
        std::io::ErrorKind::NotFound => TlsError::NotFound {
            path: path.to_owned(),
        },
        _ => TlsError::Unreadable {
            path: path.to_owned(),
            source,
        },
    };
    let file = std::fs::File::open(path).map_err(io_error)?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io_error)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(io_error(std::io::Error::other(format!(
            "larger than {} MiB",
            MAX_FILE_BYTES >> 20
        ))));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(TlsError::Empty {
            path: path.to_owned(),
        });
    }
    let binary = std::str::from_utf8(&bytes).is_err() || bytes.contains(&0);
    if binary && !contains(&bytes, b"-----BEGIN ") {
        return Err(TlsError::MalformedPem {
            path: path.to_owned(),
            problem: "binary data, not PEM text (DER? convert it with `openssl x509 -inform der` \
                      or `openssl pkey -inform der`)"
                .into(),
        });
    }
    Ok(bytes)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn malformed_pem(path: &Path, e: pem::Error) -> TlsError {
    let text = |b: &[u8]| String::from_utf8_lossy(b).trim_end().to_owned();
    let problem = match e {
        pem::Error::MissingSectionEnd { end_marker } => {
            format!(
                "no END line for a section (expected {:?})",
                text(&end_marker)
            )
        }
        pem::Error::IllegalSectionStart { line } => format!("bad BEGIN line {:?}", text(&line)),
        pem::Error::Base64Decode(why) => format!("bad base64 in a section ({why})"),
        other => other.to_string(),
    };
    TlsError::MalformedPem {
        path: path.to_owned(),
        problem,
    }
}

/// What `tls` uses from a certificate.
pub(crate) struct CertInfo {
    pub dns_names: Vec<String>,
    pub not_before: i64,
    pub not_after: i64,
}

/// Parses certificate `index` (from 1) of `path`: its DNS names (subjectAltName dNSName
/// entries, or the subject CN when there are none, as RFC 6125 allows) and its validity.
pub(crate) fn cert_info(path: &Path, index: usize, der: &[u8]) -> Result<CertInfo, TlsError> {
    let bad = |problem: String| TlsError::BadCertificate {
        path: path.to_owned(),
        index,
        problem,
    };
    let (rest, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| match e {
        x509_parser::nom::Err::Incomplete(_) => bad("truncated DER".into()),
        x509_parser::nom::Err::Error(e) | x509_parser::nom::Err::Failure(e) => {
            bad(format!("not valid X.509 DER ({e})"))
        }
    })?;
    if !rest.is_empty() {
        return Err(bad(format!("{} bytes after the certificate", rest.len())));
    }
    let mut dns_names = Vec::new();
    match cert.subject_alternative_name() {
        Ok(Some(san)) => {
            for name in &san.value.general_names {
                if let GeneralName::DNSName(dns) = name {
                    dns_names.push(dns.to_ascii_lowercase());
                }
            }
        }
        Ok(None) => {}
        Err(e) => return Err(bad(format!("subjectAltName: {e}"))),
    }
    if dns_names.is_empty() {
        dns_names.extend(
            cert.subject()
                .iter_common_name()
                .filter_map(|cn| cn.as_str().ok())
                .filter(|cn| !cn.is_empty() && !cn.contains(char::is_whitespace))
                .map(str::to_ascii_lowercase),
        );
    }
    Ok(CertInfo {
        dns_names,
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
    })
}

fn validity_warnings(path: &Path, info: &CertInfo, now: i64, warnings: &mut Vec<String>) {
    if now > info.not_after {
        warnings.push(format!(
            "{}: the certificate expired on {} (clients will refuse it)",
            path.display(),
            format_utc(info.not_after)
        ));
    } else if now < info.not_before {
        warnings.push(format!(
            "{}: the certificate is not valid before {} (clients will refuse it until then)",
            path.display(),
            format_utc(info.not_before)
        ));
    }
}

/// Seconds since the epoch as `YYYY-MM-DD hh:mm:ss UTC` (proleptic Gregorian calendar).
pub(crate) fn format_utc(secs: i64) -> String {
    let c = crate::http::date::Civil::of(secs);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// The provider refused `key`: is it malformed, or well formed but of a type it does not do?
pub(crate) fn classify_key_failure(
    path: &Path,
    key: &PrivateKeyDer<'_>,
    error: &rustls::Error,
) -> TlsError {
    let malformed = |problem: String| TlsError::MalformedKey {
        path: path.to_owned(),
        problem,
    };
    let unsupported = |kind: String| TlsError::UnsupportedKey {
        path: path.to_owned(),
        kind,
    };
    let refused = || malformed(format!("refused by the crypto provider ({error})"));
    let rsa = |pkcs1: &[u8]| match der::rsa_modulus_bits(pkcs1) {
        None => malformed("not a valid PKCS#1 RSAPrivateKey".into()),
        Some(bits) if !(2048..=8192).contains(&bits) => unsupported(format!("RSA of {bits} bits")),
        Some(_) => refused(),
    };
    let ec = |curve: Option<&[u8]>| match curve {
        Some(oid) if !SUPPORTED_CURVES.contains(&oid) => {
            unsupported(format!("EC key on curve {}", oid_name(oid)))
        }
        _ => refused(),
    };
    match key {
        PrivateKeyDer::Pkcs1(k) => rsa(k.secret_pkcs1_der()),
        PrivateKeyDer::Sec1(k) => match der::sec1_curve(k.secret_sec1_der()) {
            None => malformed("not a valid SEC1 ECPrivateKey".into()),
            Some(curve) => ec(curve),
        },
        PrivateKeyDer::Pkcs8(k) => match der::pkcs8_algorithm(k.secret_pkcs8_der()) {
            None => malformed("not a valid PKCS#8 PrivateKeyInfo".into()),
            Some((OID_RSA, _, inner)) => rsa(inner),
            Some((OID_EC, params, _)) => ec(der::oid(params)),
            Some((OID_ED25519, _, _)) => refused(),
            Some((other, _, _)) => unsupported(oid_name(other)),
        },
        _ => unsupported("an unknown key encoding".into()),
    }
}

// OIDs as their DER content bytes.
const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
const OID_P521: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x23];
const SUPPORTED_CURVES: &[&[u8]] = &[OID_P256, OID_P384, OID_P521];

/// A readable name for a key-algorithm or curve OID.
fn oid_name(oid: &[u8]) -> String {
    const NAMES: &[(&[u8], &str)] = &[
        (OID_RSA, "RSA"),
        (OID_EC, "EC"),
        (OID_ED25519, "Ed25519"),
        (&[0x2b, 0x65, 0x71], "Ed448"),
        (
            &[0x2b, 0x65, 0x6e],
            "X25519 (a key-exchange key, not a signing key)",
        ),
        (
            &[0x2b, 0x65, 0x6f],
            "X448 (a key-exchange key, not a signing key)",
        ),
        (&[0x2a, 0x86, 0x48, 0xce, 0x38, 0x04, 0x01], "DSA"),
        (
            &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a],
            "RSASSA-PSS",
        ),
        (
            &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x03, 0x01],
            "Diffie-Hellman",
        ),
        (&[0x2b, 0x81, 0x04, 0x00, 0x0a], "secp256k1"),
        (&[0x2b, 0x81, 0x04, 0x00, 0x21], "P-224"),
        (&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x01], "P-192"),
        (OID_P256, "P-256"),
        (OID_P384, "P-384"),
        (OID_P521, "P-521"),
    ];
    match NAMES.iter().find(|(known, _)| *known == oid) {
        Some((_, name)) => (*name).to_owned(),
        None => format!("OID {}", der::oid_dotted(oid)),
    }
}

/// Just enough DER to read the outside of a private key. Every step checks its lengths against
/// what is left; malformed input gives `None`.
pub(crate) mod der {
    const INTEGER: u8 = 0x02;
    const OCTET_STRING: u8 = 0x04;
    const OID: u8 = 0x06;
    const SEQUENCE: u8 = 0x30;
    const CONTEXT_0: u8 = 0xa0;

    /// The first element of `input`: (tag, contents, what follows).
    pub(crate) fn next(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, rest) = input.split_first()?;
        if tag & 0x1f == 0x1f {
            return None; // multi-byte tags do not occur in these structures
        }
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 4 {
                return None;
            }
            let (len_bytes, rest) = rest.split_at_checked(count)?;
            let len = len_bytes
                .iter()
                .fold(0usize, |len, &b| (len << 8) | usize::from(b));
            (len, rest)
        };
        let (contents, rest) = rest.split_at_checked(len)?;
        Some((tag, contents, rest))
    }

    /// The first element of `input` if it has tag `want`: (contents, what follows).
    fn take(input: &[u8], want: u8) -> Option<(&[u8], &[u8])> {
        let (tag, contents, rest) = next(input)?;
        (tag == want).then_some((contents, rest))
    }

    /// PKCS#8 `PrivateKeyInfo`: (algorithm OID, the algorithm's parameters element, the inner
    /// private key octets).
    pub(crate) fn pkcs8_algorithm(der: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
        let (info, _) = take(der, SEQUENCE)?;
        let (_version, rest) = take(info, INTEGER)?;
        let (alg, rest) = take(rest, SEQUENCE)?;
        let (inner, _) = take(rest, OCTET_STRING)?;
        let (oid, params) = take(alg, OID)?;
        Some((oid, params, inner))
    }

    /// SEC1 `ECPrivateKey`: `Some(curve OID)` when the optional parameters name one.
    pub(crate) fn sec1_curve(der: &[u8]) -> Option<Option<&[u8]>> {
        let (key, _) = take(der, SEQUENCE)?;
        let (_version, rest) = take(key, INTEGER)?;
        let (_private, rest) = take(rest, OCTET_STRING)?;
        Some(take(rest, CONTEXT_0).and_then(|(params, _)| oid(params)))
    }

    /// The OID that `element` is, if it is one.
    pub(crate) fn oid(element: &[u8]) -> Option<&[u8]> {
        take(element, OID).map(|(oid, _)| oid)
    }

    /// PKCS#1 `RSAPrivateKey`: the size of the modulus in bits.
    pub(crate) fn rsa_modulus_bits(der: &[u8]) -> Option<usize> {
        let (key, _) = take(der, SEQUENCE)?;
        let (_version, rest) = take(key, INTEGER)?;
        let (modulus, _) = take(rest, INTEGER)?;
        let start = modulus.iter().position(|&b| b != 0)?;
        let top = modulus.get(start)?;
        Some((modulus.len() - start - 1) * 8 + (8 - top.leading_zeros() as usize))
    }

    /// An OID's content bytes as dotted decimal (`1.2.840.10045.2.1`).
    pub(crate) fn oid_dotted(oid: &[u8]) -> String {
        let mut arcs: Vec<u64> = Vec::new();
        let mut value: u64 = 0;
        for &b in oid {
            if value > u64::MAX >> 7 {
                return format!("(bytes {oid:02x?})");
            }
            value = (value << 7) | u64::from(b & 0x7f);
            if b & 0x80 == 0 {
                if arcs.is_empty() {
                    let first = (value / 40).min(2);
                    arcs.push(first);
                    arcs.push(value - first * 40);
                } else {
                    arcs.push(value);
                }
                value = 0;
            }
        }
        let parts: Vec<String> = arcs.iter().map(u64::to_string).collect();
        parts.join(".")
    }
}
