//! Keys people already have: encrypted PKCS#8 made by openssl, cosign key files made by cosign
//! and sigstore-rs (known vectors with published passphrases) and by sealroom's own encoder.
//! Each decrypts to the key its `.pub` names, or fails naming the file and the variable.

use std::path::{Path, PathBuf};
use std::process::Command;

use sealroom::sign::SignError;
use sealroom::sign::encrypted::{COSIGN_SCRYPT, PBKDF2_ITERATIONS, ScryptCost};
use sealroom::sign::keys::{Algorithm, SigningKey, VerifyingKey};
use zeroize::Zeroizing;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/sign")
        .join(name)
}

/// A passphrase lookup that knows only `variable`.
fn only(
    variable: &'static str,
    value: &'static str,
) -> impl Fn(&'static str) -> Option<Zeroizing<String>> {
    move |asked| (asked == variable).then(|| Zeroizing::new(value.to_string()))
}

fn load(name: &str, variable: &'static str, value: &'static str) -> SigningKey {
    SigningKey::from_pem_file_with(&fixture(name), &only(variable, value))
        .unwrap_or_else(|error| panic!("{name}: {error}"))
}

fn public(name: &str) -> VerifyingKey {
    VerifyingKey::from_pem_file(&fixture(name)).unwrap()
}

#[test]
fn cosign_files_from_sigstore_decrypt_with_their_published_passphrases() {
    let ecdsa = load("sigstore-rs-ecdsa-encrypted.key", "COSIGN_PASSWORD", "123");
    assert_eq!(ecdsa.algorithm(), Algorithm::EcdsaP256);
    let ed25519 = load(
        "sigstore-rs-ed25519-encrypted.key",
        "COSIGN_PASSWORD",
        "123",
    );
    assert_eq!(ed25519.algorithm(), Algorithm::Ed25519);
    // Written by `cosign generate-key-pair` with an empty password and scrypt N=65536.
    let empty = load("cosign-generated-empty-password.key", "COSIGN_PASSWORD", "");
    assert_eq!(empty.algorithm(), Algorithm::EcdsaP256);
    for key in [ecdsa, ed25519, empty] {
        let signature = key.sign(b"message");
        assert!(key.verifying_key().verify(b"message", &signature));
    }
}

#[test]
fn cosign_files_from_sealroom_decrypt_to_the_key_of_their_pub() {
    for name in ["sealroom-cosign-ecdsa", "sealroom-cosign-ed25519"] {
        let key = load(
            &format!("{name}.key"),
            "COSIGN_PASSWORD",
            "sealroom-fixture",
        );
        assert_eq!(
            key.verifying_key().key_id(),
            public(&format!("{name}.pub")).key_id(),
            "{name}"
        );
    }
}

#[test]
fn encrypted_pkcs8_from_openssl_decrypts_pbkdf2_and_scrypt() {
    for name in [
        "openssl-ecdsa-encrypted",
        "openssl-ed25519-scrypt-encrypted",
    ] {
        let key = load(
            &format!("{name}.key"),
            "SEALROOM_KEY_PASSWORD",
            "sealroom-fixture",
        );
        assert_eq!(
            key.verifying_key().key_id(),
            public(&format!("{name}.pub")).key_id(),
            "{name}"
        );
    }
}

#[test]
fn a_wrong_passphrase_names_the_file_and_the_variable() {
    let path = fixture("openssl-ecdsa-encrypted.key");
    let error =
        SigningKey::from_pem_file_with(&path, &only("SEALROOM_KEY_PASSWORD", "nope")).unwrap_err();
    assert!(matches!(error, SignError::Key { .. }));
    assert_eq!(
        error.to_string(),
        format!(
            "key `{}`: cannot decrypt the encrypted PKCS#8 private key with the passphrase from \
             SEALROOM_KEY_PASSWORD: wrong passphrase, or a damaged file",
            path.display()
        )
    );

    let path = fixture("sealroom-cosign-ecdsa.key");
    let error =
        SigningKey::from_pem_file_with(&path, &only("COSIGN_PASSWORD", "nope")).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "key `{}`: cannot decrypt the cosign private key with the passphrase from \
             COSIGN_PASSWORD: wrong passphrase, or a damaged file",
            path.display()
        )
    );
}

#[test]
fn an_unset_variable_is_named() {
    // A cosign passphrase in SEALROOM_KEY_PASSWORD does not count: each format has its variable.
    let path = fixture("sealroom-cosign-ed25519.key");
    let error =
        SigningKey::from_pem_file_with(&path, &only("SEALROOM_KEY_PASSWORD", "sealroom-fixture"))
            .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "key `{}`: expected the passphrase of the cosign private key in the environment \
             variable COSIGN_PASSWORD, found it unset",
            path.display()
        )
    );
    let path = fixture("openssl-ed25519-scrypt-encrypted.key");
    let error = SigningKey::from_pem_file_with(&path, &|_| None).unwrap_err();
    assert!(
        error.to_string().ends_with(
            "expected the passphrase of the encrypted PKCS#8 private key in the environment \
             variable SEALROOM_KEY_PASSWORD, found it unset"
        ),
        "{error}"
    );
}

#[test]
fn an_encrypted_key_is_not_a_public_key() {
    let error = VerifyingKey::from_pem_file(&fixture("sealroom-cosign-ecdsa.key")).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("found a private key (ENCRYPTED SIGSTORE PRIVATE KEY)"),
        "{error}"
    );
}

#[test]
fn sealroom_encrypted_pkcs8_roundtrips_and_openssl_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    for algorithm in [Algorithm::EcdsaP256, Algorithm::Ed25519] {
        let key = SigningKey::generate(algorithm);
        let pem = key
            .to_encrypted_pkcs8_pem(b"correct horse", PBKDF2_ITERATIONS)
            .unwrap();
        assert!(pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----\n"));
        let back = SigningKey::from_pem_with(&pem, &only("SEALROOM_KEY_PASSWORD", "correct horse"))
            .unwrap();
        assert_eq!(back.verifying_key(), key.verifying_key());

        let path = dir.path().join(format!("{algorithm}.key"));
        std::fs::write(&path, pem.as_bytes()).unwrap();
        let output = Command::new("openssl")
            .args(["pkey", "-pubout", "-passin", "pass:correct horse", "-in"])
            .arg(&path)
            .output();
        match output {
            Ok(output) => {
                assert!(
                    output.status.success(),
                    "openssl pkey: {}",
                    String::from_utf8_lossy(&output.stderr)
                );
                let public =
                    VerifyingKey::from_pem(&String::from_utf8_lossy(&output.stdout)).unwrap();
                assert_eq!(public, key.verifying_key());
            }
            Err(error) if std::env::var_os("CI").is_some() => {
                panic!("openssl is needed in CI: {error}")
            }
            Err(_) => eprintln!("skipping the openssl half: openssl is not installed"),
        }
    }
}

#[test]
fn sealroom_cosign_files_roundtrip_with_the_cosign_cost() {
    let key = SigningKey::generate(Algorithm::EcdsaP256);
    let pem = key.to_cosign_pem(b"", COSIGN_SCRYPT).unwrap();
    let back = SigningKey::from_pem_with(&pem, &only("COSIGN_PASSWORD", "")).unwrap();
    assert_eq!(back.verifying_key(), key.verifying_key());
    let cost = ScryptCost {
        n: 1 << 40,
        r: 8,
        p: 1,
    };
    assert!(key.to_cosign_pem(b"", cost).is_err());
}
