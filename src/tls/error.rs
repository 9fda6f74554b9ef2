//! [`TlsError`]: everything that can go wrong turning files into a TLS configuration, each shown
//! as one line that names the file and the problem (for the log and for `ferrule --check`).

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Building a TLS configuration failed. `Display` is one line naming the file and the problem.
#[derive(Debug)]
pub enum TlsError {
    /// The list of certificate/key pairs is empty.
    NoPairs,
    /// The file does not exist.
    NotFound { path: PathBuf },
    /// The file exists but cannot be read (permission, a directory, an I/O error).
    Unreadable { path: PathBuf, source: io::Error },
    /// The file is empty (or holds only white space).
    Empty { path: PathBuf },
    /// The PEM text is broken (a BEGIN without END, bad base64, binary data instead of text).
    MalformedPem { path: PathBuf, problem: String },
    /// No `CERTIFICATE` section in the file. `holds_key`: it holds a private key instead, which
    /// usually means the certificate and key files were swapped.
    NoCertificate { path: PathBuf, holds_key: bool },
    /// No private key section in the file. `holds_certificate`: it holds a certificate instead.
    NoKey {
        path: PathBuf,
        holds_certificate: bool,
        encrypted: bool,
    },
    /// The private key's DER is not a valid PKCS#8, PKCS#1 or SEC1 structure.
    MalformedKey { path: PathBuf, problem: String },
    /// The key is well formed but of a type (or size, or curve) the crypto provider cannot use.
    UnsupportedKey { path: PathBuf, kind: String },
    /// The private key is not the one the certificate was issued for.
    KeyMismatch {
        cert_file: PathBuf,
        key_file: PathBuf,
    },
    /// The certificate (`index` counts from 1 in the file) cannot be parsed.
    BadCertificate {
        path: PathBuf,
        index: usize,
        problem: String,
    },
    /// A backend host that is neither an IP address nor a valid DNS name.
    BadServerName { host: String },
    /// rustls refused to build the configuration (not expected with its defaults).
    Rustls(rustls::Error),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::NoPairs => f.write_str("TLS: no certificate/key pair is configured"),
            TlsError::NotFound { path } => write!(f, "{}: no such file", path.display()),
            TlsError::Unreadable { path, source } => {
                write!(f, "{}: cannot read the file: {source}", path.display())
            }
            TlsError::Empty { path } => write!(f, "{}: the file is empty", path.display()),
            TlsError::MalformedPem { path, problem } => {
                write!(f, "{}: malformed PEM: {problem}", path.display())
            }
            TlsError::NoCertificate { path, holds_key } => {
                write!(f, "{}: no certificate found", path.display())?;
                if *holds_key {
                    f.write_str(" (it holds a private key: are cert_file and key_file swapped?)")?;
                }
                Ok(())
            }
            TlsError::NoKey {
                path,
                holds_certificate,
                encrypted,
            } => {
                write!(f, "{}: no private key found", path.display())?;
                if *encrypted {
                    f.write_str(
                        " (it holds an encrypted key, which is not supported: decrypt it with \
                         `openssl pkey`)",
                    )?;
                } else if *holds_certificate {
                    f.write_str(" (it holds a certificate: are cert_file and key_file swapped?)")?;
                }
                Ok(())
            }
            TlsError::MalformedKey { path, problem } => {
                write!(f, "{}: malformed private key: {problem}", path.display())
            }
            TlsError::UnsupportedKey { path, kind } => write!(
                f,
                "{}: unsupported private key type: {kind} (use RSA of 2048 to 8192 bits, \
                 ECDSA P-256/P-384/P-521 or Ed25519)",
                path.display()
            ),
            TlsError::KeyMismatch {
                cert_file,
                key_file,
            } => write!(
                f,
                "{}: the private key does not match the certificate in {}",
                key_file.display(),
                cert_file.display()
            ),
            TlsError::BadCertificate {
                path,
                index,
                problem,
            } => write!(
                f,
                "{}: certificate #{index} cannot be parsed: {problem}",
                path.display()
            ),
            TlsError::BadServerName { host } => {
                write!(
                    f,
                    "{host:?} is neither an IP address nor a valid DNS name for TLS"
                )
            }
            TlsError::Rustls(e) => write!(f, "TLS configuration refused: {e}"),
        }
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TlsError::Unreadable { source, .. } => Some(source),
            TlsError::Rustls(e) => Some(e),
            _ => None,
        }
    }
}

impl From<rustls::Error> for TlsError {
    fn from(e: rustls::Error) -> TlsError {
        TlsError::Rustls(e)
    }
}
