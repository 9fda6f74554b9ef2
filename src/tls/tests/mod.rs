//! Tests of `tls`: certificates are made at test time with rcgen (PKCS#1 and SEC1 keys are cut
//! out of rcgen's PKCS#8 DER here, so no `openssl` is needed; one test also uses the `openssl`
//! command when there is one). This file holds the helpers; `files.rs` tests loading files
//! (errors, key formats, warnings), `handshake.rs` runs real rustls handshakes in memory.

mod files;
mod handshake;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};

use super::certs::der;
use super::{check, CertPair, TlsError};
use crate::admin::dashboard::base64;

/// A fresh directory, removed on drop.
pub(super) struct TempDir(PathBuf);

impl TempDir {
    pub(super) fn new(name: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ferrule-tls-{}-{}-{name}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub(super) fn path(&self) -> &Path {
        &self.0
    }

    pub(super) fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).expect("write temp file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A test certificate authority.
pub(super) struct Ca {
    pub cert: rcgen::Certificate,
    pub key: KeyPair,
}

impl Ca {
    pub(super) fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA cert");
        Ca { cert, key }
    }

    /// A server certificate for `names` (DNS names or IP addresses) on `key`.
    pub(super) fn issue(&self, names: &[&str], key: &KeyPair) -> rcgen::Certificate {
        self.issue_with(names, key, |_| {})
    }

    pub(super) fn issue_with(
        &self,
        names: &[&str],
        key: &KeyPair,
        edit: impl FnOnce(&mut CertificateParams),
    ) -> rcgen::Certificate {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("params");
        params
            .distinguished_name
            .push(DnType::CommonName, "ferrule test");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        edit(&mut params);
        params
            .signed_by(key, &self.cert, &self.key)
            .expect("sign cert")
    }

    /// Writes a certificate for `names` and its key (PKCS#8) into `dir` as `stem.crt` and
    /// `stem.key`.
    pub(super) fn pair(&self, dir: &TempDir, stem: &str, names: &[&str]) -> CertPair {
        let key = KeyPair::generate().expect("key");
        let cert = self.issue(names, &key);
        write_pair(dir, stem, &cert, &key.serialize_pem())
    }
}

pub(super) fn write_pair(
    dir: &TempDir,
    stem: &str,
    cert: &rcgen::Certificate,
    key_pem: &str,
) -> CertPair {
    CertPair::new(
        dir.write(&format!("{stem}.crt"), cert.pem()),
        dir.write(&format!("{stem}.key"), key_pem),
    )
}

/// DER: one element.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|&b| b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

pub(super) fn pem(label: &str, der: &[u8]) -> String {
    let body = base64(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("ascii"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The PKCS#1 `RSAPrivateKey` inside an RSA PKCS#8 key.
fn pkcs1_from_pkcs8(pkcs8: &[u8]) -> Vec<u8> {
    der::pkcs8_algorithm(pkcs8).expect("PKCS#8").2.to_vec()
}

/// The SEC1 `ECPrivateKey` inside an EC PKCS#8 key, with the curve named in it as `openssl`
/// writes it (PKCS#8 may leave it out, since the algorithm identifier names it).
fn sec1_from_pkcs8(pkcs8: &[u8]) -> Vec<u8> {
    let (_, params, inner) = der::pkcs8_algorithm(pkcs8).expect("PKCS#8");
    let (_, mut rest, _) = der::next(inner).expect("ECPrivateKey");
    let mut body = Vec::new();
    let mut has_params = false;
    while let Some((tag, content, after)) = der::next(rest) {
        if tag == 0xa1 && !has_params {
            body.extend(tlv(0xa0, params));
            has_params = true;
        }
        has_params |= tag == 0xa0;
        body.extend(tlv(tag, content));
        rest = after;
    }
    if !has_params {
        body.extend(tlv(0xa0, params));
    }
    tlv(0x30, &body)
}

fn pair_of(dir: &TempDir, cert: &str, key: &str) -> CertPair {
    CertPair::new(dir.path().join(cert), dir.path().join(key))
}

/// Loads `pair` alone, expecting an error; checks its line names `file`.
#[track_caller]
fn load_error(pair: &CertPair, file: &Path) -> TlsError {
    let e = check(std::slice::from_ref(pair)).expect_err("expected an error");
    let line = e.to_string();
    assert!(!line.contains('\n'), "{line:?}");
    assert!(
        line.contains(&file.display().to_string()),
        "{line:?} does not name {}",
        file.display()
    );
    e
}
