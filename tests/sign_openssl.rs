//! Interop with openssl: openssl verifies sealroom's signatures over the PAE, and sealroom signs
//! with keys openssl generated (PKCS#8 Ed25519, SEC1 P-256). Skipped when `openssl` is not on
//! PATH, except under CI (`CI=true`), where a missing openssl is a failure.

use std::path::Path;
use std::process::Command;

use sealroom::provenance::PAYLOAD_TYPE;
use sealroom::sign::dsse::Envelope;
use sealroom::sign::keys::{Algorithm, SigningKey, VerifyingKey};

fn have_openssl() -> bool {
    let found = Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found && std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("openssl is required under CI=true (install the openssl package)");
    }
    if !found {
        eprintln!("skipping: openssl is not on PATH");
    }
    found
}

fn openssl(args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl runs")
}

fn envelope_files(
    dir: &Path,
    key: &SigningKey,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let envelope = Envelope::sign(PAYLOAD_TYPE, b"{\"_type\":\"x\"}", &[key]);
    let public = dir.join("key.pub");
    let pae = dir.join("pae.bin");
    let signature = dir.join("sig.bin");
    std::fs::write(&public, key.verifying_key().to_public_pem()).unwrap();
    std::fs::write(&pae, envelope.pae()).unwrap();
    std::fs::write(&signature, &envelope.signatures[0].sig).unwrap();
    (public, pae, signature)
}

#[test]
fn openssl_verifies_an_ecdsa_signature_over_the_pae() {
    if !have_openssl() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (public, pae, signature) =
        envelope_files(dir.path(), &SigningKey::generate(Algorithm::EcdsaP256));
    let output = openssl(&[
        "dgst".as_ref(),
        "-sha256".as_ref(),
        "-verify".as_ref(),
        public.as_os_str(),
        "-signature".as_ref(),
        signature.as_os_str(),
        pae.as_os_str(),
    ]);
    assert!(
        output.status.success(),
        "openssl: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("Verified OK"));
}

#[test]
fn openssl_verifies_an_ed25519_signature_over_the_pae() {
    if !have_openssl() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (public, pae, signature) =
        envelope_files(dir.path(), &SigningKey::generate(Algorithm::Ed25519));
    let output = openssl(&[
        "pkeyutl".as_ref(),
        "-verify".as_ref(),
        "-pubin".as_ref(),
        "-inkey".as_ref(),
        public.as_os_str(),
        "-rawin".as_ref(),
        "-in".as_ref(),
        pae.as_os_str(),
        "-sigfile".as_ref(),
        signature.as_os_str(),
    ]);
    assert!(
        output.status.success(),
        "openssl: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn keys_made_by_openssl_sign_and_their_key_ids_match() {
    if !have_openssl() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &[&str], Algorithm); 3] = [
        (
            "ed.key",
            &["genpkey", "-algorithm", "ed25519"],
            Algorithm::Ed25519,
        ),
        (
            "ec-pkcs8.key",
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ],
            Algorithm::EcdsaP256,
        ),
        (
            "ec-sec1.key",
            &["ecparam", "-genkey", "-noout", "-name", "prime256v1"],
            Algorithm::EcdsaP256,
        ),
    ];
    for (name, args, algorithm) in cases {
        let private = dir.path().join(name);
        let public = dir.path().join(format!("{name}.pub"));
        let mut full: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
        full.extend(["-out".as_ref(), private.as_os_str()]);
        assert!(openssl(&full).status.success(), "openssl {args:?}");
        let output = openssl(&[
            "pkey".as_ref(),
            "-in".as_ref(),
            private.as_os_str(),
            "-pubout".as_ref(),
            "-out".as_ref(),
            public.as_os_str(),
        ]);
        assert!(output.status.success(), "openssl pkey -pubout for {name}");

        let key = SigningKey::from_pem_file(&private).unwrap();
        assert_eq!(key.algorithm(), algorithm, "{name}");
        let verifying = VerifyingKey::from_pem_file(&public).unwrap();
        assert_eq!(verifying.key_id(), key.verifying_key().key_id(), "{name}");
        let envelope = Envelope::sign(PAYLOAD_TYPE, b"{}", &[&key]);
        envelope.verify(&[verifying], 1).unwrap();
    }
}
