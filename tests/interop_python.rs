//! Independent verifiers accept what sealroom signs: Python securesystemslib verifies the DSSE
//! envelopes (ECDSA P-256 and Ed25519), the in-toto-attestation package validates the
//! Statement and the SLSA v1 predicate, sigstore-protobuf-specs parses the Sigstore bundle; and
//! the other way, sealroom verifies an envelope securesystemslib signed.
//!
//! The Python tools live in a venv made by `scripts/ensure-python.sh` (from PyPI, once; quick
//! when present). A venv that cannot be made is a test failure with the script's message; only
//! outside CI, `SEALROOM_SKIP_INTEROP=1` skips these tests on purpose.

use std::path::PathBuf;
use std::process::Command;

use sealroom::provenance::{DEFAULT_BUILDER_ID, PAYLOAD_TYPE, Statement};
use sealroom::sign::bundle::bundle_json;
use sealroom::sign::dsse::Envelope;
use sealroom::sign::keys::{Algorithm, SigningKey};
use sha2::{Digest as _, Sha256};

#[path = "interop/statement.rs"]
mod statement;

#[path = "interop/venv.rs"]
mod venv;
use venv::{python, run_helper};

/// A temp dir with an artifact, keys of both algorithms and their `.pub` files.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let fixture = Fixture {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::write(fixture.artifact(), b"HELLO FROM A SEALED ROOM\n").unwrap();
        fixture
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn artifact(&self) -> PathBuf {
        self.path("hello.txt")
    }

    fn statement(&self) -> Statement {
        let hex = hex::encode(Sha256::digest(std::fs::read(self.artifact()).unwrap()));
        statement::build_statement("hello.txt", &hex, DEFAULT_BUILDER_ID)
    }

    /// Writes the key's `.pub` and returns its path.
    fn public(&self, key: &SigningKey, name: &str) -> PathBuf {
        let path = self.path(&format!("{name}.pub"));
        std::fs::write(&path, key.verifying_key().to_public_pem()).unwrap();
        path
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

#[test]
fn securesystemslib_verifies_ecdsa_and_ed25519_envelopes() {
    let Some(python) = python() else { return };
    let fixture = Fixture::new();
    for algorithm in [Algorithm::EcdsaP256, Algorithm::Ed25519] {
        let key = SigningKey::generate(algorithm);
        let public = fixture.public(&key, algorithm.name());
        let envelope = Envelope::sign(PAYLOAD_TYPE, &fixture.statement().to_json(), &[&key]);
        let path = fixture.write(
            &format!("{algorithm}.intoto.jsonl"),
            &envelope.to_json_line(),
        );
        let outcome = run_helper(python, "sslib_verify.py", &[path.as_ref(), public.as_ref()]);
        assert!(outcome.success, "{algorithm}: {}", outcome.text);
        assert!(
            outcome.text.contains(&key.verifying_key().key_id()),
            "{}",
            outcome.text
        );

        // The helper is not vacuous: an edited payload is refused.
        let mut edited = envelope.clone();
        edited.payload.extend_from_slice(b" ");
        let path = fixture.write(&format!("{algorithm}-edited.jsonl"), &edited.to_json_line());
        let outcome = run_helper(python, "sslib_verify.py", &[path.as_ref(), public.as_ref()]);
        assert!(!outcome.success, "{algorithm}: {}", outcome.text);
        assert!(
            outcome.text.contains("FAIL securesystemslib"),
            "{}",
            outcome.text
        );
    }
}

#[test]
fn a_key_signing_twice_never_counts_twice() {
    let Some(python) = python() else { return };
    let fixture = Fixture::new();
    let key = SigningKey::generate(Algorithm::EcdsaP256);
    let public = fixture.public(&key, "ec");
    let twice = Envelope::sign(PAYLOAD_TYPE, b"{}", &[&key, &key]);
    let path = fixture.write("twice.jsonl", &twice.to_json_line());
    // sealroom counts the key once; securesystemslib refuses two signatures with one keyid
    // outright. Neither lets it meet a threshold of 2. (sealroom never writes such envelopes.)
    assert_eq!(
        twice
            .verify(&[key.verifying_key(), key.verifying_key()], 1)
            .unwrap()
            .len(),
        1
    );
    assert!(
        twice
            .verify(&[key.verifying_key(), key.verifying_key()], 2)
            .is_err()
    );
    for threshold in ["1", "2"] {
        let outcome = run_helper(
            python,
            "sslib_verify.py",
            &[path.as_ref(), public.as_ref(), threshold.as_ref()],
        );
        assert!(!outcome.success, "{}", outcome.text);
        assert!(
            outcome.text.contains("Multiple signatures found for keyid"),
            "{}",
            outcome.text
        );
    }
}

#[test]
fn in_toto_attestation_validates_the_statement_and_slsa_predicate() {
    let Some(python) = python() else { return };
    let fixture = Fixture::new();
    let key = SigningKey::generate(Algorithm::Ed25519);
    let envelope = Envelope::sign(PAYLOAD_TYPE, &fixture.statement().to_json(), &[&key]);
    let path = fixture.write("p.intoto.jsonl", &envelope.to_json_line());
    let outcome = run_helper(python, "attestation_validate.py", &[path.as_ref()]);
    assert!(outcome.success, "{}", outcome.text);
    for line in [
        "ok   Statement parses",
        "ok   Statement.validate",
        "ok   SLSA v1 Provenance parses",
        "ok   SLSA v1 Provenance required fields",
    ] {
        assert!(outcome.text.contains(line), "{line}: {}", outcome.text);
    }

    // The validator is not vacuous: a field outside the schema and an empty builder id fail.
    let mut value = serde_json::to_value(fixture.statement()).unwrap();
    value["predicate"]["runDetails"]["builder"]["id"] = "".into();
    value["predicate"]["buildDefinition"]["notInTheSchema"] = true.into();
    let bad = Envelope::sign(PAYLOAD_TYPE, &serde_json::to_vec(&value).unwrap(), &[&key]);
    let path = fixture.write("bad.intoto.jsonl", &bad.to_json_line());
    let outcome = run_helper(python, "attestation_validate.py", &[path.as_ref()]);
    assert!(!outcome.success, "{}", outcome.text);
    assert!(
        outcome.text.contains("FAIL SLSA v1 Provenance parses"),
        "{}",
        outcome.text
    );
}

#[test]
fn sigstore_protobuf_specs_parses_the_bundle() {
    let Some(python) = python() else { return };
    let fixture = Fixture::new();
    for algorithm in [Algorithm::EcdsaP256, Algorithm::Ed25519] {
        let key = SigningKey::generate(algorithm);
        let public = fixture.public(&key, algorithm.name());
        let envelope = Envelope::sign(PAYLOAD_TYPE, &fixture.statement().to_json(), &[&key]);
        let bundle = bundle_json(&envelope, &key.verifying_key());
        let path = fixture.write(
            &format!("{algorithm}.sigstore.json"),
            &serde_json::to_string_pretty(&bundle).unwrap(),
        );
        let outcome = run_helper(python, "bundle_parse.py", &[path.as_ref(), public.as_ref()]);
        assert!(outcome.success, "{algorithm}: {}", outcome.text);
        assert!(!outcome.text.contains("FAIL"), "{}", outcome.text);
    }
}

#[test]
fn sealroom_verifies_what_securesystemslib_signed() {
    let Some(python) = python() else { return };
    let fixture = Fixture::new();
    let payload = fixture.write(
        "statement.json",
        &String::from_utf8(fixture.statement().to_json()).unwrap(),
    );
    for algorithm in [Algorithm::EcdsaP256, Algorithm::Ed25519] {
        let key = SigningKey::generate(algorithm);
        let private = fixture.write(&format!("{algorithm}.key"), &key.to_pkcs8_pem());
        let public = fixture.public(&key, algorithm.name());
        let out = fixture.path(&format!("{algorithm}.intoto.jsonl"));
        let outcome = run_helper(
            python,
            "sslib_sign.py",
            &[
                private.as_ref(),
                payload.as_ref(),
                PAYLOAD_TYPE.as_ref(),
                out.as_ref(),
            ],
        );
        assert!(outcome.success, "{algorithm}: {}", outcome.text);

        let output = Command::new(env!("CARGO_BIN_EXE_sealroom"))
            .arg("verify")
            .arg(fixture.artifact())
            .arg("--provenance")
            .arg(&out)
            .arg("--key")
            .arg(&public)
            .args(["--builder-id", DEFAULT_BUILDER_ID])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{algorithm}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
