//! `sealroom keygen` and `sealroom verify` end to end, through the binary: keys written by
//! keygen, provenance made with the library the way a build makes it, and every tampering a
//! verifier must catch, each with exit 4 and its own message.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use sealroom::provenance::{DEFAULT_BUILDER_ID, PAYLOAD_TYPE, ResourceDescriptor, Statement};
use sealroom::sbom::{Bom, Component, HashAlgorithm, Kind, SbomFormat, to_file_bytes};
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

// ---- `verify --sbom FILE`: the SBOM attestation next to an artifact ----

/// The two SBOM documents of the fixture's artifact, made with the library the way a build
/// makes them: CycloneDX first, SPDX second, as `write_sboms` writes them.
fn sbom_documents(fixture: &Fixture) -> [(SbomFormat, serde_json::Value); 2] {
    let subject = Component::new("artifact:hello.txt", Kind::Artifact, "hello.txt")
        .hash(HashAlgorithm::Sha256, artifact_hex(fixture));
    let mut bom = Bom::new("hello", 1_700_000_000, subject);
    let source = bom.add(
        Component::new("source:src", Kind::Source, "src")
            .property("sealroom:tree", format!("sha256:{}", statement::SOURCE_HEX)),
    );
    bom.depends("artifact:hello.txt", &source);
    [SbomFormat::Cyclonedx, SbomFormat::Spdx].map(|format| (format, format.render(&bom)))
}

fn artifact_hex(fixture: &Fixture) -> String {
    hex::encode(Sha256::digest(std::fs::read(fixture.artifact()).unwrap()))
}

/// The in-toto statement an SBOM envelope holds: `document` about the artifact.
fn sbom_statement(
    fixture: &Fixture,
    format: SbomFormat,
    document: &serde_json::Value,
) -> serde_json::Value {
    serde_json::json!({
        "_type": sealroom::provenance::STATEMENT_TYPE,
        "subject": [{ "name": "hello.txt", "digest": { "sha256": artifact_hex(fixture) } }],
        "predicateType": format.predicate_type(),
        "predicate": document,
    })
}

fn signed_json(value: &serde_json::Value, key: &SigningKey) -> Envelope {
    Envelope::sign(PAYLOAD_TYPE, &serde_json::to_vec(value).unwrap(), &[key])
}

/// Signed provenance whose byproducts name `documents` by the digest of their file bytes, as a
/// build records them.
fn provenance_naming(fixture: &Fixture, documents: &[(SbomFormat, serde_json::Value)]) -> PathBuf {
    let mut statement = fixture.statement();
    for (format, document) in documents {
        let mut byproduct = ResourceDescriptor::with_sha256(
            format!("sbom:hello.txt{}", format.suffix()),
            None,
            hex::encode(Sha256::digest(to_file_bytes(document))),
        );
        byproduct.media_type = Some(format.media_type().to_string());
        statement.predicate.run_details.byproducts.push(byproduct);
    }
    let envelope = Envelope::sign(PAYLOAD_TYPE, &statement.to_json(), &[&fixture.key("ec")]);
    fixture.write_envelope("hello.txt.intoto.jsonl", &envelope)
}

/// `verify` of the artifact with `provenance`, key `ec`, and `--sbom sbom`.
fn verify_sbom(fixture: &Fixture, provenance: &Path, sbom: &Path) -> Run {
    let sbom = sbom.to_string_lossy().into_owned();
    fixture.verify(&fixture.artifact(), provenance, "ec", &["--sbom", &sbom])
}

/// Writes `lines` (one envelope each) as the SBOM attestation and verifies with it: exit 4,
/// and stderr names the file, the line and `message`; the other checks still pass.
fn sbom_fails(
    fixture: &Fixture,
    provenance: &Path,
    lines: &[Envelope],
    line: usize,
    message: &str,
) {
    let path = fixture.path("hello.txt.sbom.intoto.jsonl");
    let text: String = lines.iter().map(Envelope::to_json_line).collect();
    std::fs::write(&path, text).unwrap();
    sbom_file_fails(fixture, provenance, &path, line, message);
}

fn sbom_file_fails(fixture: &Fixture, provenance: &Path, path: &Path, line: usize, message: &str) {
    let result = verify_sbom(fixture, provenance, path);
    assert_eq!(result.code, 4, "{message}: {}", result.stderr);
    assert!(
        result.stderr.contains(&format!(
            "SBOM attestation `{}`, line {line}: {message}",
            path.display()
        )),
        "expected `{message}` on line {line}:\n{}",
        result.stderr
    );
    assert!(
        result.stderr.contains("ok   subject:"),
        "only the sbom check fails: {}",
        result.stderr
    );
    assert!(result.stdout.is_empty(), "{}", result.stdout);
}

#[test]
fn verify_sbom_passes_for_both_documents_named_in_the_byproducts() {
    let fixture = Fixture::new();
    let documents = sbom_documents(&fixture);
    let provenance = provenance_naming(&fixture, &documents);
    let lines: String = documents
        .iter()
        .map(|(format, document)| {
            signed_json(
                &sbom_statement(&fixture, *format, document),
                &fixture.key("ec"),
            )
            .to_json_line()
        })
        .collect();
    assert_eq!(lines.lines().count(), 2);
    let path = fixture.path("hello.txt.sbom.intoto.jsonl");
    std::fs::write(&path, lines).unwrap();

    let result = verify_sbom(&fixture, &provenance, &path);
    assert_eq!(result.code, 0, "{}", result.stderr);
    assert!(
        result.stderr.contains(
            "ok   sbom: CycloneDX and SPDX signed, describing the artifact, named in the \
             provenance's byproducts"
        ),
        "{}",
        result.stderr
    );
    assert!(result.stdout.starts_with("verified "), "{}", result.stdout);

    let sbom = path.to_string_lossy().into_owned();
    let result = fixture.verify(
        &fixture.artifact(),
        &provenance,
        "ec",
        &["--sbom", &sbom, "--format", "json"],
    );
    assert_eq!(result.code, 0, "{}", result.stderr);
    let report: serde_json::Value = serde_json::from_str(&result.stdout).unwrap();
    let last = report["checks"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["name"], "sbom");
    assert_eq!(last["ok"], true);
}

#[test]
fn verify_sbom_rejects_files_that_are_not_envelopes() {
    let fixture = Fixture::new();
    let documents = sbom_documents(&fixture);
    let provenance = provenance_naming(&fixture, &documents);
    for (name, content, message) in [
        (
            "empty.jsonl",
            "\n \n",
            "expected one DSSE envelope a line, found an empty file",
        ),
        ("garbage.jsonl", "{not json\n", "not a DSSE envelope: "),
    ] {
        let path = fixture.path(name);
        std::fs::write(&path, content).unwrap();
        sbom_file_fails(&fixture, &provenance, &path, 1, message);
    }

    // A good first line does not excuse a bad second one, and the line is named.
    let (format, document) = &documents[0];
    let good = signed_json(
        &sbom_statement(&fixture, *format, document),
        &fixture.key("ec"),
    );
    let path = fixture.path("second.jsonl");
    std::fs::write(&path, format!("{}not json either\n", good.to_json_line())).unwrap();
    sbom_file_fails(&fixture, &provenance, &path, 2, "not a DSSE envelope: ");

    let missing = fixture.path("missing.sbom.intoto.jsonl");
    let result = verify_sbom(&fixture, &provenance, &missing);
    assert_eq!(result.code, 1, "{}", result.stderr);
    assert!(
        result.stderr.contains("cannot read the SBOM attestation")
            && result.stderr.contains("missing.sbom.intoto.jsonl"),
        "{}",
        result.stderr
    );
}

#[test]
fn verify_sbom_checks_the_envelope_type_and_signature() {
    let fixture = Fixture::new();
    let documents = sbom_documents(&fixture);
    let provenance = provenance_naming(&fixture, &documents);
    let (format, document) = &documents[0];
    let payload = serde_json::to_vec(&sbom_statement(&fixture, *format, document)).unwrap();

    // Signed honestly over the other type, so only the type check can catch it.
    let swapped = Envelope::sign("application/json", &payload, &[&fixture.key("ec")]);
    sbom_fails(
        &fixture,
        &provenance,
        &[swapped],
        1,
        "payload type: expected `application/vnd.in-toto+json`, found `application/json`",
    );

    let unsigned = Envelope::unsigned(PAYLOAD_TYPE, &payload);
    sbom_fails(
        &fixture,
        &provenance,
        &[unsigned],
        1,
        "signature: envelope is unsigned",
    );

    let by_another = Envelope::sign(PAYLOAD_TYPE, &payload, &[&fixture.key("ed")]);
    sbom_fails(
        &fixture,
        &provenance,
        &[by_another],
        1,
        &format!(
            "signature: no signature verifies with key {}; the envelope is signed by {}",
            key_id(&fixture, "ec"),
            key_id(&fixture, "ed")
        ),
    );
}

#[test]
fn verify_sbom_checks_the_statement_and_its_subject() {
    let fixture = Fixture::new();
    let documents = sbom_documents(&fixture);
    let provenance = provenance_naming(&fixture, &documents);
    let (format, document) = &documents[0];
    let key = fixture.key("ec");
    let good = sbom_statement(&fixture, *format, document);

    let mut wrong_type = good.clone();
    wrong_type["_type"] = "https://in-toto.io/Statement/v0.1".into();
    sbom_fails(
        &fixture,
        &provenance,
        &[signed_json(&wrong_type, &key)],
        1,
        "statement type: expected `https://in-toto.io/Statement/v1`, found \
         \"https://in-toto.io/Statement/v0.1\"",
    );

    let mut unknown_predicate = good.clone();
    unknown_predicate["predicateType"] = "https://slsa.dev/provenance/v1".into();
    sbom_fails(
        &fixture,
        &provenance,
        &[signed_json(&unknown_predicate, &key)],
        1,
        "predicate type: expected `https://cyclonedx.org/bom` or `https://spdx.dev/Document`, \
         found \"https://slsa.dev/provenance/v1\"",
    );

    // The SPDX line is about other bytes: the first line passes, the second is named.
    let other_hex = hex::encode(Sha256::digest(b"some other artifact"));
    let (spdx, spdx_document) = &documents[1];
    let mut other_subject = sbom_statement(&fixture, *spdx, spdx_document);
    other_subject["subject"][0]["digest"]["sha256"] = other_hex.clone().into();
    sbom_fails(
        &fixture,
        &provenance,
        &[signed_json(&good, &key), signed_json(&other_subject, &key)],
        2,
        &format!(
            "subject: expected the artifact's sha256 {}, found {other_hex}",
            artifact_hex(&fixture)
        ),
    );
}

#[test]
fn verify_sbom_checks_the_document_and_the_provenance_byproducts() {
    let fixture = Fixture::new();
    let documents = sbom_documents(&fixture);
    let provenance = provenance_naming(&fixture, &documents);
    let (format, document) = &documents[0];
    let key = fixture.key("ec");

    let mut older = document.clone();
    older["specVersion"] = "1.5".into();
    sbom_fails(
        &fixture,
        &provenance,
        &[signed_json(
            &sbom_statement(&fixture, *format, &older),
            &key,
        )],
        1,
        "predicate: expected a CycloneDX 1.6 document, found bomFormat",
    );
    let result = verify_sbom(
        &fixture,
        &provenance,
        &fixture.path("hello.txt.sbom.intoto.jsonl"),
    );
    assert!(result.stderr.contains("1.5"), "{}", result.stderr);

    // The statement's subject is the artifact, but the document describes other bytes.
    let other_hex = hex::encode(Sha256::digest(b"some other artifact"));
    let mut elsewhere = document.clone();
    elsewhere["metadata"]["component"]["hashes"][0]["content"] = other_hex.clone().into();
    sbom_fails(
        &fixture,
        &provenance,
        &[signed_json(
            &sbom_statement(&fixture, *format, &elsewhere),
            &key,
        )],
        1,
        &format!(
            "the CycloneDX document describes sha256 {other_hex}, not the artifact's {}",
            artifact_hex(&fixture)
        ),
    );

    // Signed, about the artifact, well formed: but not the SBOM the provenance's build wrote.
    let unnamed = provenance_naming(&fixture, &documents[1..]);
    let digest = hex::encode(Sha256::digest(to_file_bytes(document)));
    sbom_fails(
        &fixture,
        &unnamed,
        &[signed_json(
            &sbom_statement(&fixture, *format, document),
            &key,
        )],
        1,
        &format!(
            "the provenance's byproducts do not name this CycloneDX document (sha256 {digest})"
        ),
    );
}
