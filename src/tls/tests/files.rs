//! Loading certificate and key files: each error case, the key formats, the warnings, and
//! hostile DER.

use std::path::Path;

use rcgen::{DnType, KeyPair, PKCS_ED25519, PKCS_RSA_SHA256};

use super::*;
use crate::tls::certs::{self, der, format_utc};
use crate::tls::sni::name_matches;
use crate::tls::ServerTls;

#[test]
fn missing_unreadable_and_empty_files_are_named_errors() {
    let dir = TempDir::new("files");
    let ca = Ca::new("files CA");
    let good = ca.pair(&dir, "good", &["good.test"]);

    let missing = dir.path().join("missing.pem");
    let e = load_error(&CertPair::new(&missing, &good.key_file), &missing);
    assert!(matches!(e, TlsError::NotFound { .. }), "{e:?}");
    let e = load_error(&CertPair::new(&good.cert_file, &missing), &missing);
    assert!(matches!(e, TlsError::NotFound { .. }), "{e:?}");

    // A directory opens but does not read.
    let e = load_error(&CertPair::new(dir.path(), &good.key_file), dir.path());
    assert!(matches!(e, TlsError::Unreadable { .. }), "{e:?}");
    // Permission bits do not stop root, so this part runs only for other users.
    if unsafe { libc::geteuid() } != 0 {
        use std::os::unix::fs::PermissionsExt;
        let locked = dir.write("locked.key", std::fs::read(&good.key_file).expect("read"));
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).expect("chmod");
        let e = load_error(&CertPair::new(&good.cert_file, &locked), &locked);
        assert!(matches!(e, TlsError::Unreadable { .. }), "{e:?}");
        assert!(e.to_string().contains("ermission denied"), "{e}");
    }

    for contents in ["", "\n  \n"] {
        let empty = dir.write("empty.pem", contents);
        let e = load_error(&CertPair::new(&empty, &good.key_file), &empty);
        assert!(matches!(e, TlsError::Empty { .. }), "{e:?}");
        let e = load_error(&CertPair::new(&good.cert_file, &empty), &empty);
        assert!(matches!(e, TlsError::Empty { .. }), "{e:?}");
    }
    assert_eq!(
        check(&[good]).expect("good pair loads"),
        Vec::<String>::new()
    );
}

#[test]
fn swapped_files_and_files_without_pem_say_what_is_missing() {
    let dir = TempDir::new("swapped");
    let good = Ca::new("swap CA").pair(&dir, "good", &["good.test"]);

    let e = load_error(
        &CertPair::new(&good.key_file, &good.cert_file),
        &good.key_file,
    );
    assert!(
        matches!(
            e,
            TlsError::NoCertificate {
                holds_key: true,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("swapped"), "{e}");

    let e = load_error(
        &CertPair::new(&good.cert_file, &good.cert_file),
        &good.cert_file,
    );
    assert!(
        matches!(
            e,
            TlsError::NoKey {
                holds_certificate: true,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("swapped"), "{e}");

    let text = dir.write("notes.txt", "just some text\n");
    let e = load_error(&CertPair::new(&text, &good.key_file), &text);
    assert!(
        matches!(
            e,
            TlsError::NoCertificate {
                holds_key: false,
                ..
            }
        ),
        "{e:?}"
    );
    let e = load_error(&CertPair::new(&good.cert_file, &text), &text);
    assert!(matches!(e, TlsError::NoKey { .. }), "{e:?}");

    let encrypted = dir.write(
        "enc.key",
        pem("ENCRYPTED PRIVATE KEY", b"not really encrypted"),
    );
    let e = load_error(&CertPair::new(&good.cert_file, &encrypted), &encrypted);
    assert!(
        matches!(
            e,
            TlsError::NoKey {
                encrypted: true,
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn malformed_pem_and_der_are_named_errors() {
    let dir = TempDir::new("malformed");
    let key = KeyPair::generate().expect("key");
    let ca = Ca::new("malformed CA");
    let cert = ca.issue(&["m.test"], &key);
    let good = write_pair(&dir, "good", &cert, &key.serialize_pem());

    let no_end = dir.write("no-end.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n");
    let e = load_error(&CertPair::new(&no_end, &good.key_file), &no_end);
    assert!(matches!(e, TlsError::MalformedPem { .. }), "{e:?}");
    assert!(e.to_string().contains("END"), "{e}");

    let bad_b64 = dir.write(
        "bad-b64.pem",
        "-----BEGIN PRIVATE KEY-----\n!!!!$$$$\n-----END PRIVATE KEY-----\n",
    );
    let e = load_error(&CertPair::new(&good.cert_file, &bad_b64), &bad_b64);
    assert!(matches!(e, TlsError::MalformedPem { .. }), "{e:?}");

    let der_file = dir.write("cert.der", cert.der().as_ref());
    let e = load_error(&CertPair::new(&der_file, &good.key_file), &der_file);
    assert!(matches!(e, TlsError::MalformedPem { .. }), "{e:?}");
    assert!(e.to_string().contains("DER"), "{e}");

    let garbage_key = dir.write("garbage.key", pem("PRIVATE KEY", b"garbage, not DER"));
    let e = load_error(&CertPair::new(&good.cert_file, &garbage_key), &garbage_key);
    assert!(matches!(e, TlsError::MalformedKey { .. }), "{e:?}");
    for (label, what) in [("RSA PRIVATE KEY", "PKCS#1"), ("EC PRIVATE KEY", "SEC1")] {
        let file = dir.write("garbage2.key", pem(label, &tlv(0x30, &tlv(0x02, &[1]))));
        let e = load_error(&CertPair::new(&good.cert_file, &file), &file);
        assert!(matches!(e, TlsError::MalformedKey { .. }), "{e:?}");
        assert!(e.to_string().contains(what), "{e}");
    }

    let garbage_cert = dir.write("garbage.crt", pem("CERTIFICATE", b"garbage, not DER"));
    let e = load_error(&CertPair::new(&garbage_cert, &good.key_file), &garbage_cert);
    assert!(
        matches!(e, TlsError::BadCertificate { index: 1, .. }),
        "{e:?}"
    );

    // A broken second certificate is the client's business: a warning, not an error.
    let chain = format!(
        "{}{}",
        cert.pem(),
        pem("CERTIFICATE", b"broken intermediate")
    );
    let chained = dir.write("chain.crt", chain);
    let warnings = check(&[CertPair::new(&chained, &good.key_file)]).expect("leaf is fine");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("certificate #2"), "{warnings:?}");
}

#[test]
fn unsupported_key_types_are_named() {
    let dir = TempDir::new("unsupported");
    let good = Ca::new("unsupported CA").pair(&dir, "good", &["u.test"]);

    let ed448 = tlv(
        0x30,
        &[
            tlv(0x02, &[0]),
            tlv(0x30, &tlv(0x06, &[0x2b, 0x65, 0x71])),
            tlv(0x04, &tlv(0x04, &[7; 57])),
        ]
        .concat(),
    );
    let dsa_oid = [0x2a, 0x86, 0x48, 0xce, 0x38, 0x04, 0x01];
    let dsa = tlv(
        0x30,
        &[
            tlv(0x02, &[0]),
            tlv(0x30, &tlv(0x06, &dsa_oid)),
            tlv(0x04, &tlv(0x02, &[5; 20])),
        ]
        .concat(),
    );
    let secp256k1 = tlv(
        0x30,
        &[
            tlv(0x02, &[1]),
            tlv(0x04, &[9; 32]),
            tlv(0xa0, &tlv(0x06, &[0x2b, 0x81, 0x04, 0x00, 0x0a])),
        ]
        .concat(),
    );
    let mut small_modulus = vec![0x00, 0xc0];
    small_modulus.extend([0x11; 127]); // 1024 bits
    let rsa1024 = tlv(
        0x30,
        &[
            tlv(0x02, &[0]),
            tlv(0x02, &small_modulus),
            tlv(0x02, &[1, 0, 1]),
        ]
        .concat(),
    );
    let unknown_oid = tlv(
        0x30,
        &[
            tlv(0x02, &[0]),
            tlv(0x30, &tlv(0x06, &[0x2a, 0x03, 0x04])),
            tlv(0x04, &[1, 2, 3]),
        ]
        .concat(),
    );
    for (label, der, name) in [
        ("PRIVATE KEY", ed448, "Ed448"),
        ("PRIVATE KEY", dsa, "DSA"),
        ("EC PRIVATE KEY", secp256k1, "secp256k1"),
        ("RSA PRIVATE KEY", rsa1024, "RSA of 1024 bits"),
        ("PRIVATE KEY", unknown_oid, "OID 1.2.3.4"),
    ] {
        let file = dir.write("odd.key", pem(label, &der));
        let e = load_error(&CertPair::new(&good.cert_file, &file), &file);
        assert!(
            matches!(e, TlsError::UnsupportedKey { .. }),
            "{name}: {e:?}"
        );
        assert!(e.to_string().contains(name), "{e}");
    }
}

#[test]
fn a_key_that_is_not_the_certificates_is_a_mismatch() {
    let dir = TempDir::new("mismatch");
    let ca = Ca::new("mismatch CA");
    let a = ca.pair(&dir, "a", &["a.test"]);
    let b = ca.pair(&dir, "b", &["b.test"]);
    let e = load_error(&CertPair::new(&a.cert_file, &b.key_file), &b.key_file);
    assert!(matches!(e, TlsError::KeyMismatch { .. }), "{e:?}");
    assert!(
        e.to_string().contains(&a.cert_file.display().to_string()),
        "{e}"
    );

    // A key of another type altogether (RSA key, EC certificate).
    let rsa = KeyPair::generate_for(&PKCS_RSA_SHA256).expect("RSA key");
    let rsa_key = dir.write("rsa.key", rsa.serialize_pem());
    let e = load_error(&CertPair::new(&a.cert_file, &rsa_key), &rsa_key);
    assert!(matches!(e, TlsError::KeyMismatch { .. }), "{e:?}");

    assert!(matches!(ServerTls::new(&[]), Err(TlsError::NoPairs)));
    assert!(matches!(check(&[]), Err(TlsError::NoPairs)));
}

#[test]
fn pkcs8_pkcs1_and_sec1_keys_load() {
    let dir = TempDir::new("formats");
    let ca = Ca::new("formats CA");
    let rsa = KeyPair::generate_for(&PKCS_RSA_SHA256).expect("RSA key");
    let ec = KeyPair::generate().expect("EC key");
    let ed = KeyPair::generate_for(&PKCS_ED25519).expect("Ed25519 key");
    let rsa_cert = ca.issue(&["rsa.test"], &rsa);
    let ec_cert = ca.issue(&["ec.test"], &ec);
    let ed_cert = ca.issue(&["ed.test"], &ed);
    let pkcs1 = pem("RSA PRIVATE KEY", &pkcs1_from_pkcs8(&rsa.serialize_der()));
    let sec1 = pem("EC PRIVATE KEY", &sec1_from_pkcs8(&ec.serialize_der()));
    let cases = [
        (
            "rsa-pkcs8",
            &rsa_cert,
            rsa.serialize_pem(),
            "Pkcs8",
            "rsa.test",
        ),
        ("rsa-pkcs1", &rsa_cert, pkcs1, "Pkcs1", "rsa.test"),
        ("ec-pkcs8", &ec_cert, ec.serialize_pem(), "Pkcs8", "ec.test"),
        ("ec-sec1", &ec_cert, sec1, "Sec1", "ec.test"),
        ("ed-pkcs8", &ed_cert, ed.serialize_pem(), "Pkcs8", "ed.test"),
    ];
    for (stem, cert, key_pem, format, name) in cases {
        let pair = write_pair(&dir, stem, cert, &key_pem);
        let parsed = certs::load_key(&pair.key_file).expect(stem);
        assert!(
            format!("{parsed:?}").starts_with(format),
            "{stem}: {parsed:?}"
        );
        let (tls, warnings) = ServerTls::new(&[pair]).expect(stem);
        assert!(warnings.is_empty(), "{stem}: {warnings:?}");
        assert_eq!(tls.names(), [vec![name.to_owned()]], "{stem}");
    }
}

/// What `openssl` writes (and `certs/generate.sh`): a PKCS#8 RSA key, converted to PKCS#1, and a
/// SEC1 EC key. Skipped (with a note) where there is no `openssl`.
#[test]
fn keys_written_by_openssl_and_generate_sh_load() {
    let have_openssl = std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_openssl {
        eprintln!("skipped: no openssl command");
        return;
    }
    let dir = TempDir::new("openssl");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/certs/generate.sh");
    let run = |args: &[&str]| {
        std::process::Command::new("bash")
            .arg(script)
            .args(args)
            .output()
            .expect("run generate.sh")
    };
    let out_dir = dir.path().to_str().expect("utf-8");
    assert!(run(&[out_dir]).status.success());
    let refused = run(&[out_dir]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--force"));
    assert!(run(&["--force", out_dir]).status.success());
    let pair = pair_of(&dir, "cert.pem", "key.pem");
    let (tls, warnings) = ServerTls::new(std::slice::from_ref(&pair)).expect("generate.sh pair");
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(tls.names(), [vec!["localhost".to_owned()]]);

    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir.path())
            .output()
            .expect("run openssl");
        assert!(out.status.success(), "openssl {args:?}: {out:?}");
    };
    openssl(&["pkey", "-in", "key.pem", "-traditional", "-out", "rsa1.pem"]);
    let pkcs1 = std::fs::read_to_string(dir.path().join("rsa1.pem")).expect("read");
    assert!(
        pkcs1.starts_with("-----BEGIN RSA PRIVATE KEY-----"),
        "{pkcs1}"
    );
    check(&[pair_of(&dir, "cert.pem", "rsa1.pem")]).expect("PKCS#1 from openssl");

    openssl(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        "ec.pem",
    ]);
    let subj = [
        "-subj",
        "/CN=ec.test",
        "-addext",
        "subjectAltName=DNS:ec.test",
    ];
    let req = [
        "req", "-x509", "-key", "ec.pem", "-days", "2", "-out", "ec.crt",
    ];
    openssl(&[&req[..], &subj[..]].concat());
    let sec1 = std::fs::read_to_string(dir.path().join("ec.pem")).expect("read");
    assert!(sec1.starts_with("-----BEGIN EC PRIVATE KEY-----"), "{sec1}");
    check(&[pair_of(&dir, "ec.crt", "ec.pem")]).expect("SEC1 from openssl");
}

#[test]
fn expired_and_not_yet_valid_certificates_are_warnings() {
    let dir = TempDir::new("expired");
    let ca = Ca::new("expiry CA");
    let key = KeyPair::generate().expect("key");
    let expired = ca.issue_with(&["old.test"], &key, |p| {
        p.not_before = rcgen::date_time_ymd(2019, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 3, 4);
    });
    let future = ca.issue_with(&["new.test"], &key, |p| {
        p.not_before = rcgen::date_time_ymd(2090, 5, 6);
        p.not_after = rcgen::date_time_ymd(2091, 1, 1);
    });
    let old = write_pair(&dir, "old", &expired, &key.serialize_pem());
    let new = write_pair(&dir, "new", &future, &key.serialize_pem());
    let (_, warnings) = ServerTls::new(&[old.clone(), new.clone()]).expect("loads anyway");
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].contains(&old.cert_file.display().to_string()));
    assert!(
        warnings[0].contains("expired on 2021-03-04 00:00:00 UTC"),
        "{warnings:?}"
    );
    assert!(warnings[1].contains(&new.cert_file.display().to_string()));
    assert!(
        warnings[1].contains("not valid before 2090-05-06"),
        "{warnings:?}"
    );
}

#[test]
fn a_later_certificate_without_dns_names_is_a_warning() {
    let dir = TempDir::new("no-names");
    let ca = Ca::new("names CA");
    let first = ca.pair(&dir, "first", &["127.0.0.1"]);
    let second = ca.pair(&dir, "second", &["10.0.0.1"]);
    let warnings = check(&[first, second.clone()]).expect("loads");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains(&second.cert_file.display().to_string()));
    assert!(warnings[0].contains("SNI never selects it"), "{warnings:?}");
}

#[test]
fn dns_names_come_from_san_else_cn() {
    let ca = Ca::new("cn CA");
    let key = KeyPair::generate().expect("key");
    let with_san = ca.issue(&["A.Example.COM", "*.Wild.Test", "192.0.2.1"], &key);
    let info = certs::cert_info(Path::new("x"), 1, with_san.der()).expect("parse");
    assert_eq!(info.dns_names, ["a.example.com", "*.wild.test"]);

    let cn_only = ca.issue_with(&[], &key, |p| {
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(DnType::CommonName, "Legacy.Test");
    });
    let info = certs::cert_info(Path::new("x"), 1, cn_only.der()).expect("parse");
    assert_eq!(info.dns_names, ["legacy.test"]);
}

#[test]
fn sni_name_matching() {
    assert!(name_matches("example.com", "example.com"));
    assert!(name_matches("example.com", "EXAMPLE.Com"));
    assert!(name_matches("Example.COM", "example.com"));
    assert!(!name_matches("example.com", "www.example.com"));
    assert!(name_matches("*.example.com", "a.example.com"));
    assert!(name_matches("*.example.com", "A.EXAMPLE.COM"));
    assert!(!name_matches("*.example.com", "example.com"));
    assert!(!name_matches("*.example.com", "a.b.example.com"));
    assert!(!name_matches("*.example.com", ".example.com"));
    assert!(!name_matches("*.example.com", "a.example.org"));
    assert!(!name_matches("f*.example.com", "foo.example.com"));
    assert!(!name_matches("*.example.com", "aexample.com"));
}

#[test]
fn hostile_der_never_panics() {
    let ca = Ca::new("fuzz CA");
    let key = KeyPair::generate().expect("key");
    let cert = ca.issue(&["fuzz.test"], &key);
    let cert_der = cert.der().to_vec();
    let key_der = key.serialize_der();
    let path = Path::new("fuzz");
    let refused = rustls::Error::General("test".into());
    let mut inputs: Vec<Vec<u8>> = Vec::new();
    for n in 0..cert_der.len() {
        inputs.push(cert_der[..n].to_vec());
    }
    for n in 0..key_der.len() {
        inputs.push(key_der[..n].to_vec());
    }
    // Every byte flipped in turn, and lengths that claim more than there is.
    for source in [&cert_der, &key_der] {
        for i in 0..source.len() {
            let mut flipped = source.clone();
            flipped[i] ^= 0xff;
            inputs.push(flipped);
        }
    }
    inputs.push(vec![0x30, 0x84, 0xff, 0xff, 0xff, 0xff, 0x02]);
    inputs.push(vec![0x30, 0x88, 1, 2, 3, 4, 5, 6, 7, 8]);
    inputs.push(vec![0x1f, 0x81, 0x01, 0x00]);
    for input in &inputs {
        let _ = certs::cert_info(path, 1, input);
        for key in [
            rustls::pki_types::PrivateKeyDer::Pkcs8(input.clone().into()),
            rustls::pki_types::PrivateKeyDer::Pkcs1(input.clone().into()),
            rustls::pki_types::PrivateKeyDer::Sec1(input.clone().into()),
        ] {
            let _ = certs::classify_key_failure(path, &key, &refused);
        }
        let _ = der::oid_dotted(input);
    }
    assert_eq!(der::next(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
}

#[test]
fn dates_and_oids_print_plainly() {
    assert_eq!(format_utc(0), "1970-01-01 00:00:00 UTC");
    assert_eq!(format_utc(-1), "1969-12-31 23:59:59 UTC");
    assert_eq!(format_utc(951_782_400), "2000-02-29 00:00:00 UTC");
    assert_eq!(format_utc(1_709_210_096), "2024-02-29 12:34:56 UTC");
    assert_eq!(format_utc(253_402_300_799), "9999-12-31 23:59:59 UTC");
    let _ = format_utc(i64::MAX);
    let _ = format_utc(i64::MIN);
    assert_eq!(
        der::oid_dotted(&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]),
        "1.2.840.10045.3.1.7"
    );
    assert_eq!(der::oid_dotted(&[0x2b, 0x65, 0x70]), "1.3.101.112");
}
