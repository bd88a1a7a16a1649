//! `sealroom keygen` and `sealroom verify` end to end, through the binary: keys written by
//! keygen, provenance made with the library the way a build makes it, and every tampering a
//! verifier must catch, each with exit 4 and its own message.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use sealroom::provenance::{DEFAULT_BUILDER_ID, PAYLOAD_TYPE, Statement};
use sealroom::sign::dsse::Envelope;
use sealroom::sign::keys::{SigningKey, VerifyingKey};
use sha2::{Digest as _, Sha256};

#[path = "interop/statement.rs"]
mod statement;

fn sealroom() -> Command {
    Command::cargo_bin("sealroom").expect("the sealroom binary is built")
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(args: &[&std::ffi::OsStr]) -> Run {
    let output = sealroom().args(args).output().expect("sealroom runs");
    Run {
        code: output.status.code().expect("an exit code, not a signal"),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A temp dir with an ECDSA and an Ed25519 key pair made by `sealroom keygen`, an artifact,
/// and a helper that writes signed provenance for it.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let fixture = Fixture {
            dir: tempfile::tempdir().unwrap(),
        };
        for (algorithm, prefix) in [("ecdsa-p256", "ec"), ("ed25519", "ed")] {
            let out = fixture.path(prefix);
            let result = run(&[
                "keygen".as_ref(),
                "--algorithm".as_ref(),
                algorithm.as_ref(),
                "--out".as_ref(),
                out.as_os_str(),
            ]);
            assert_eq!(result.code, 0, "keygen {algorithm}: {}", result.stderr);
        }
        std::fs::write(fixture.artifact(), b"hello from a sealed room\n").unwrap();
        fixture
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn artifact(&self) -> PathBuf {
        self.path("hello.txt")
    }

    fn key(&self, prefix: &str) -> SigningKey {
        SigningKey::from_pem_file(&self.path(&format!("{prefix}.key"))).unwrap()
    }

    /// A statement in the shape the build op writes, for the artifact as it is now.
    fn statement(&self) -> Statement {
        let artifact_hex = hex::encode(Sha256::digest(std::fs::read(self.artifact()).unwrap()));
        statement::default_statement("hello.txt", &artifact_hex)
    }

    /// Writes `envelope` as `name` (one JSON line) and returns its path.
    fn write_envelope(&self, name: &str, envelope: &Envelope) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, envelope.to_json_line()).unwrap();
        path
    }

    fn signed(&self, prefix: &str) -> Envelope {
        Envelope::sign(
            PAYLOAD_TYPE,
            &self.statement().to_json(),
            &[&self.key(prefix)],
        )
    }

    fn verify(&self, artifact: &Path, provenance: &Path, public: &str, extra: &[&str]) -> Run {
        let key = self.path(&format!("{public}.pub"));
        let mut args: Vec<&std::ffi::OsStr> = vec![
            "verify".as_ref(),
            artifact.as_os_str(),
            "--provenance".as_ref(),
            provenance.as_os_str(),
            "--key".as_ref(),
            key.as_os_str(),
        ];
        args.extend(extra.iter().map(|a| std::ffi::OsStr::new(*a)));
        run(&args)
    }
}

fn key_id(fixture: &Fixture, prefix: &str) -> String {
    VerifyingKey::from_pem_file(&fixture.path(&format!("{prefix}.pub")))
        .unwrap()
        .key_id()
}

#[test]
fn keygen_writes_pem_pairs_for_both_algorithms() {
    let fixture = Fixture::new();
    for (prefix, algorithm) in [
        ("ec", sealroom::sign::Algorithm::EcdsaP256),
        ("ed", sealroom::sign::Algorithm::Ed25519),
    ] {
        let private = std::fs::read_to_string(fixture.path(&format!("{prefix}.key"))).unwrap();
        let public = std::fs::read_to_string(fixture.path(&format!("{prefix}.pub"))).unwrap();
        assert!(
            private.starts_with("-----BEGIN PRIVATE KEY-----\n"),
            "{private}"
        );
        assert!(
            public.starts_with("-----BEGIN PUBLIC KEY-----\n"),
            "{public}"
        );
        assert_eq!(fixture.key(prefix).algorithm(), algorithm);
    }
}

#[test]
fn keygen_refuses_to_overwrite_and_reports_json() {
    let fixture = Fixture::new();
    let before = std::fs::read(fixture.path("ec.key")).unwrap();
    let out = fixture.path("ec");
    let result = run(&["keygen".as_ref(), "--out".as_ref(), out.as_os_str()]);
    assert_eq!(result.code, 1, "{}", result.stderr);
    assert!(
        result
            .stderr
            .contains("ec.key` already exists; refusing to overwrite"),
        "{}",
        result.stderr
    );
    assert_eq!(std::fs::read(fixture.path("ec.key")).unwrap(), before);

    let out = fixture.path("fresh");
    let result = run(&[
        "keygen".as_ref(),
        "--algorithm".as_ref(),
        "ed25519".as_ref(),
        "--out".as_ref(),
        out.as_os_str(),
        "--format".as_ref(),
        "json".as_ref(),
    ]);
    assert_eq!(result.code, 0, "{}", result.stderr);
    let report: serde_json::Value = serde_json::from_str(&result.stdout).unwrap();
    assert_eq!(report["algorithm"], "ed25519");
    assert_eq!(report["key_id"], key_id(&fixture, "fresh"));
}

#[test]
fn verify_passes_for_both_algorithms() {
    let fixture = Fixture::new();
    for prefix in ["ec", "ed"] {
        let provenance = fixture.write_envelope("p.intoto.jsonl", &fixture.signed(prefix));
        let result = fixture.verify(&fixture.artifact(), &provenance, prefix, &[]);
        assert_eq!(result.code, 0, "{prefix}: {}", result.stderr);
        assert!(result.stdout.starts_with("verified "), "{}", result.stdout);

        let result = fixture.verify(
            &fixture.artifact(),
            &provenance,
            prefix,
            &["--builder-id", DEFAULT_BUILDER_ID, "--format", "json"],
        );
        assert_eq!(result.code, 0, "{prefix}: {}", result.stderr);
        let report: serde_json::Value = serde_json::from_str(&result.stdout).unwrap();
        let names: Vec<&str> = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "envelope",
                "payload-type",
                "signature",
                "statement",
                "subject",
                "builder-id"
            ]
        );
        assert_eq!(report["verified_key_ids"][0], key_id(&fixture, prefix));
    }
}

#[test]
fn tampered_artifact_names_both_digests() {
    let fixture = Fixture::new();
    let provenance = fixture.write_envelope("p.intoto.jsonl", &fixture.signed("ec"));
    let recorded = hex::encode(Sha256::digest(std::fs::read(fixture.artifact()).unwrap()));
    let tampered = fixture.path("tampered.txt");
    std::fs::write(&tampered, b"hello from a sealed room!\n").unwrap();
    let found = hex::encode(Sha256::digest(std::fs::read(&tampered).unwrap()));

    let result = fixture.verify(&tampered, &provenance, "ec", &[]);
    assert_eq!(result.code, 4, "{}", result.stderr);
    assert!(
        result.stderr.contains("subject digest mismatch"),
        "{}",
        result.stderr
    );
    assert!(result.stderr.contains(&recorded), "{}", result.stderr);
    assert!(result.stderr.contains(&found), "{}", result.stderr);
    assert!(result.stdout.is_empty());
}

#[test]
fn edited_payload_fails_the_signature() {
    let fixture = Fixture::new();
    let mut envelope = fixture.signed("ec");
    let mut statement = fixture.statement();
    statement.predicate.run_details.builder.id = "https://attacker.example/builder".to_string();
    envelope.payload = statement.to_json();
    let provenance = fixture.write_envelope("edited.jsonl", &envelope);

    let result = fixture.verify(&fixture.artifact(), &provenance, "ec", &[]);
    assert_eq!(result.code, 4, "{}", result.stderr);
    assert!(
        result.stderr.contains(&format!(
            "no signature verifies with key {}",
            key_id(&fixture, "ec")
        )),
        "{}",
        result.stderr
    );
}

#[test]
fn wrong_key_names_the_key_and_the_signers() {
    let fixture = Fixture::new();
    let provenance = fixture.write_envelope("p.intoto.jsonl", &fixture.signed("ec"));
    let result = fixture.verify(&fixture.artifact(), &provenance, "ed", &[]);
    assert_eq!(result.code, 4, "{}", result.stderr);
    assert!(
        result.stderr.contains(&format!(
            "no signature verifies with key {}; the envelope is signed by {}",
            key_id(&fixture, "ed"),
            key_id(&fixture, "ec")
        )),
        "{}",
        result.stderr
    );
}

#[test]
fn swapped_payload_type_is_rejected() {
    let fixture = Fixture::new();
    // Signed honestly over the swapped type, so only the type check can catch it.
    let envelope = Envelope::sign(
        "application/json",
        &fixture.statement().to_json(),
        &[&fixture.key("ec")],
    );
    let provenance = fixture.write_envelope("swapped.jsonl", &envelope);
    let result = fixture.verify(&fixture.artifact(), &provenance, "ec", &[]);
    assert_eq!(result.code, 4, "{}", result.stderr);
    assert!(
        result.stderr.contains(
            "payload type: expected `application/vnd.in-toto+json`, found `application/json`"
        ),
        "{}",
        result.stderr
    );

    // And a type swapped after signing: the type check still speaks first.
    let mut envelope = fixture.signed("ec");
    envelope.payload_type = "application/json".to_string();
    let provenance = fixture.write_envelope("swapped2.jsonl", &envelope);
    let result = fixture.verify(&fixture.artifact(), &provenance, "ec", &[]);
    assert_eq!(result.code, 4, "{}", result.stderr);
    assert!(
        result.stderr.contains("payload type: expected"),
        "{}",
        result.stderr
    );
}

#[test]
fn wrong_builder_id_names_both_ids() {
    let fixture = Fixture::new();
    let provenance = fixture.write_envelope("p.intoto.jsonl", &fixture.signed("ed"));
    let result = fixture.verify(
        &fixture.artifact(),
        &provenance,
        "ed",
        &["--builder-id", "https://wrong.example/builder"],
    );
    assert_eq!(result.code, 4, "{}", result.stderr);
    assert!(
        result.stderr.contains(&format!(
            "builder id: expected `https://wrong.example/builder`, found `{DEFAULT_BUILDER_ID}`"
        )),
        "{}",
        result.stderr
    );
}

#[test]
fn wrong_statement_and_predicate_types_are_named() {
    let fixture = Fixture::new();
    for (field, value, message) in [
        (
            "_type",
            "https://in-toto.io/Statement/v0.1",
            "statement type: expected `https://in-toto.io/Statement/v1`, found `https://in-toto.io/Statement/v0.1`",
        ),
        (
            "predicateType",
            "https://slsa.dev/provenance/v0.2",
            "predicate type: expected `https://slsa.dev/provenance/v1`, found `https://slsa.dev/provenance/v0.2`",
        ),
    ] {
        let mut statement = serde_json::to_value(fixture.statement()).unwrap();
        statement[field] = value.into();
        let envelope = Envelope::sign(
            PAYLOAD_TYPE,
            &serde_json::to_vec(&statement).unwrap(),
            &[&fixture.key("ec")],
        );
        let provenance = fixture.write_envelope("p.jsonl", &envelope);
        let result = fixture.verify(&fixture.artifact(), &provenance, "ec", &[]);
        assert_eq!(result.code, 4, "{}", result.stderr);
        assert!(result.stderr.contains(message), "{}", result.stderr);
    }
}

#[test]
fn unsigned_and_malformed_envelopes_fail_verification() {
    let fixture = Fixture::new();
    let unsigned = Envelope::unsigned(PAYLOAD_TYPE, &fixture.statement().to_json());
    let provenance = fixture.write_envelope("unsigned.jsonl", &unsigned);
    let result = fixture.verify(&fixture.artifact(), &provenance, "ec", &[]);
    assert_eq!(result.code, 4, "{}", result.stderr);
    assert!(
        result.stderr.contains("envelope is unsigned"),
        "{}",
        result.stderr
    );

    for (name, content) in [("empty.jsonl", "\n\n"), ("garbage.jsonl", "{not json")] {
        let provenance = fixture.path(name);
        std::fs::write(&provenance, content).unwrap();
        let result = fixture.verify(&fixture.artifact(), &provenance, "ec", &[]);
        assert_eq!(result.code, 4, "{name}: {}", result.stderr);
        assert!(
            result.stderr.contains("is not a DSSE envelope"),
            "{}",
            result.stderr
        );
    }
}

#[test]
fn unreadable_inputs_are_bad_input() {
    let fixture = Fixture::new();
    let provenance = fixture.write_envelope("p.intoto.jsonl", &fixture.signed("ec"));

    let missing = fixture.path("missing.jsonl");
    let result = fixture.verify(&fixture.artifact(), &missing, "ec", &[]);
    assert_eq!(result.code, 1, "{}", result.stderr);
    assert!(
        result.stderr.contains("cannot read provenance"),
        "{}",
        result.stderr
    );

    let result = fixture.verify(&fixture.path("nope.txt"), &provenance, "ec", &[]);
    assert_eq!(result.code, 1, "{}", result.stderr);
    assert!(
        result.stderr.contains("cannot read artifact"),
        "{}",
        result.stderr
    );

    // A private key where the public key belongs.
    let key = fixture.path("ec.key");
    let result = run(&[
        "verify".as_ref(),
        fixture.artifact().as_os_str(),
        "--provenance".as_ref(),
        provenance.as_os_str(),
        "--key".as_ref(),
        key.as_os_str(),
    ]);
    assert_eq!(result.code, 1, "{}", result.stderr);
    assert!(
        result.stderr.contains(
            "expected a PEM public key (SPKI) for ECDSA P-256 or Ed25519, found a private key"
        ),
        "{}",
        result.stderr
    );
}

/// The path of `prefix.pub` as a string, for `--key`.
fn public_path(fixture: &Fixture, prefix: &str) -> String {
    fixture
        .path(&format!("{prefix}.pub"))
        .to_string_lossy()
        .into_owned()
}

#[test]
fn threshold_two_needs_two_distinct_keys() {
    let fixture = Fixture::new();
    let ed = public_path(&fixture, "ed");
    let both = Envelope::sign(
        PAYLOAD_TYPE,
        &fixture.statement().to_json(),
        &[&fixture.key("ec"), &fixture.key("ed")],
    );
    let provenance = fixture.write_envelope("both.jsonl", &both);
    let result = fixture.verify(
        &fixture.artifact(),
        &provenance,
        "ec",
        &["--key", &ed, "--threshold", "2", "--format", "json"],
    );
    assert_eq!(result.code, 0, "{}", result.stderr);
    let report: serde_json::Value = serde_json::from_str(&result.stdout).unwrap();
    assert_eq!(
        report["verified_key_ids"],
        serde_json::json!([key_id(&fixture, "ec"), key_id(&fixture, "ed")])
    );
    assert_eq!(report["threshold"], 2);

    // Signed by one of the two keys: threshold 1 passes, threshold 2 fails naming the count.
    let provenance = fixture.write_envelope("one.jsonl", &fixture.signed("ec"));
    let one = fixture.verify(&fixture.artifact(), &provenance, "ec", &["--key", &ed]);
    assert_eq!(one.code, 0, "{}", one.stderr);
    let two = fixture.verify(
        &fixture.artifact(),
        &provenance,
        "ec",
        &["--key", &ed, "--threshold", "2"],
    );
    assert_eq!(two.code, 4, "{}", two.stderr);
    assert!(
        two.stderr.contains(&format!(
            "expected signatures by at least 2 of the given keys, found 1 ({})",
            key_id(&fixture, "ec")
        )),
        "{}",
        two.stderr
    );
}

#[test]
fn the_same_key_twice_counts_once() {
    let fixture = Fixture::new();
    let ec = public_path(&fixture, "ec");
    // The same key signs twice and is given twice: one key, not two.
    let twice = Envelope::sign(
        PAYLOAD_TYPE,
        &fixture.statement().to_json(),
        &[&fixture.key("ec"), &fixture.key("ec")],
    );
    let provenance = fixture.write_envelope("twice.jsonl", &twice);
    let result = fixture.verify(
        &fixture.artifact(),
        &provenance,
        "ec",
        &["--key", &ec, "--threshold", "2"],
    );
    assert_eq!(result.code, 4, "{}", result.stderr);
    assert!(
        result
            .stderr
            .contains("expected signatures by at least 2 of the given keys, found 1"),
        "{}",
        result.stderr
    );
    let result = fixture.verify(&fixture.artifact(), &provenance, "ec", &["--key", &ec]);
    assert_eq!(result.code, 0, "{}", result.stderr);
}

#[test]
fn threshold_zero_is_a_usage_error() {
    let fixture = Fixture::new();
    let provenance = fixture.write_envelope("p.jsonl", &fixture.signed("ec"));
    let result = fixture.verify(
        &fixture.artifact(),
        &provenance,
        "ec",
        &["--threshold", "0"],
    );
    assert_eq!(result.code, 2, "{}", result.stderr);
    assert!(result.stderr.contains("--threshold"), "{}", result.stderr);
}

#[test]
fn truncated_signature_fails_the_signature() {
    let fixture = Fixture::new();
    for prefix in ["ec", "ed"] {
        let mut envelope = fixture.signed(prefix);
        let length = envelope.signatures[0].sig.len();
        envelope.signatures[0].sig.truncate(length - 4);
        let provenance = fixture.write_envelope("truncated.jsonl", &envelope);
        let result = fixture.verify(&fixture.artifact(), &provenance, prefix, &[]);
        assert_eq!(result.code, 4, "{prefix}: {}", result.stderr);
        assert!(
            result.stderr.contains(&format!(
                "no signature verifies with key {}",
                key_id(&fixture, prefix)
            )),
            "{}",
            result.stderr
        );
    }
}

#[test]
fn a_statement_about_another_artifact_names_its_subject() {
    let fixture = Fixture::new();
    // Honestly signed, but for other bytes: the subject check must catch it.
    let other_hex = hex::encode(Sha256::digest(b"some other artifact"));
    let statement = statement::default_statement("other.bin", &other_hex);
    let envelope = Envelope::sign(PAYLOAD_TYPE, &statement.to_json(), &[&fixture.key("ed")]);
    let provenance = fixture.write_envelope("other.jsonl", &envelope);
    let result = fixture.verify(&fixture.artifact(), &provenance, "ed", &[]);
    assert_eq!(result.code, 4, "{}", result.stderr);
    let artifact_hex = hex::encode(Sha256::digest(std::fs::read(fixture.artifact()).unwrap()));
    assert!(
        result.stderr.contains(&format!(
            "subject digest mismatch for `{}`: expected sha256 {other_hex} (subject `other.bin`), \
             found sha256 {artifact_hex}",
            fixture.artifact().display()
        )),
        "{}",
        result.stderr
    );
}

#[test]
fn source_and_spec_digests_are_checked() {
    let fixture = Fixture::new();
    let provenance = fixture.write_envelope("p.jsonl", &fixture.signed("ec"));
    let source = format!("sha256:{}", statement::SOURCE_HEX);
    let vendor = format!("sha256:{}", statement::VENDOR_HEX);
    let spec = format!("sha256:{}", statement::SPEC_HEX);
    for source in [&source, &vendor] {
        let result = fixture.verify(
            &fixture.artifact(),
            &provenance,
            "ec",
            &["--source-digest", source, "--spec-digest", &spec],
        );
        assert_eq!(result.code, 0, "{}", result.stderr);
    }

    let wrong = format!("sha256:{}", "9".repeat(64));
    let result = fixture.verify(
        &fixture.artifact(),
        &provenance,
        "ec",
        &["--source-digest", &wrong],
    );
    assert_eq!(result.code, 4, "{}", result.stderr);
    assert!(
        result.stderr.contains(&format!(
            "source digest: expected a `source:*` dependency with `{wrong}`, found \
             `{source}` (`source:src`), `{vendor}` (`source:vendor`)"
        )),
        "{}",
        result.stderr
    );

    let result = fixture.verify(
        &fixture.artifact(),
        &provenance,
        "ec",
        &["--spec-digest", &wrong],
    );
    assert_eq!(result.code, 4, "{}", result.stderr);
    assert!(
        result.stderr.contains(&format!(
            "spec digest: expected `{wrong}` in externalParameters.spec.digest.sha256, found \
             `{spec}`"
        )),
        "{}",
        result.stderr
    );

    // A digest that is not `sha256:<hex>` is a usage error naming the expected form.
    let result = fixture.verify(
        &fixture.artifact(),
        &provenance,
        "ec",
        &["--spec-digest", statement::SPEC_HEX],
    );
    assert_eq!(result.code, 2, "{}", result.stderr);
    assert!(
        result.stderr.contains("sha256:<64 lower-case hex>"),
        "{}",
        result.stderr
    );
}

#[test]
fn json_report_on_failure_shows_every_claim_check() {
    let fixture = Fixture::new();
    let provenance = fixture.write_envelope("p.jsonl", &fixture.signed("ec"));
    let wrong = format!("sha256:{}", "9".repeat(64));
    let spec = format!("sha256:{}", statement::SPEC_HEX);
    let result = fixture.verify(
        &fixture.artifact(),
        &provenance,
        "ec",
        &[
            "--builder-id",
            "https://wrong.example/builder",
            "--source-digest",
            &wrong,
            "--spec-digest",
            &spec,
            "--format",
            "json",
        ],
    );
    assert_eq!(result.code, 4, "{}", result.stderr);
    let report: serde_json::Value = serde_json::from_str(&result.stdout).unwrap();
    assert_eq!(report["verified"], false);
    let checks: Vec<(&str, bool)> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["ok"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        checks,
        [
            ("envelope", true),
            ("payload-type", true),
            ("signature", true),
            ("statement", true),
            ("subject", true),
            ("builder-id", false),
            ("source-digest", false),
            ("spec-digest", true),
        ]
    );
    let builder = &report["checks"][5];
    assert_eq!(builder["expected"], "https://wrong.example/builder");
    assert_eq!(builder["found"], DEFAULT_BUILDER_ID);
    // The error on stderr is the first failed check.
    assert!(
        result.stderr.contains("builder id: expected"),
        "{}",
        result.stderr
    );

    // A failed signature stops before the claims: nothing after it can be trusted.
    let result = fixture.verify(
        &fixture.artifact(),
        &provenance,
        "ed",
        &["--format", "json"],
    );
    assert_eq!(result.code, 4, "{}", result.stderr);
    let report: serde_json::Value = serde_json::from_str(&result.stdout).unwrap();
    let last = report["checks"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["name"], "signature");
    assert_eq!(last["ok"], false);
    assert_eq!(last["expected"], "1 distinct key(s)");
    assert_eq!(last["found"], "0 distinct key(s)");
}

#[test]
fn url_safe_unpadded_base64_is_accepted() {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let fixture = Fixture::new();
    let envelope = fixture.signed("ec");
    let line = serde_json::json!({
        "payloadType": envelope.payload_type,
        "payload": URL_SAFE_NO_PAD.encode(&envelope.payload),
        "signatures": [{"sig": URL_SAFE_NO_PAD.encode(&envelope.signatures[0].sig)}],
    })
    .to_string();
    let provenance = fixture.path("url-safe.jsonl");
    std::fs::write(&provenance, line).unwrap();
    let result = fixture.verify(&fixture.artifact(), &provenance, "ec", &[]);
    assert_eq!(result.code, 0, "{}", result.stderr);
}
