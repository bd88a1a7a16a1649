//! What a real build writes is accepted by tools that are not sealroom: securesystemslib
//! verifies the envelopes (ECDSA P-256 and Ed25519), in-toto-attestation validates the
//! statement and predicate, sigstore-protobuf-specs parses the `--bundle` output, and openssl
//! verifies the ECDSA signature over the PAE bytes. Keys come from `sealroom keygen`, plain and
//! encrypted.

mod common;

#[path = "interop/venv.rs"]
mod venv;

use std::path::Path;

use common::{Project, busybox, sealroom};
use venv::{python, run_helper};

const STEPS: &str = r#"
[[step]]
name = "shout"
inputs = ["src"]
run = ["sh", "-c", "tr a-z A-Z < /inputs/src/greeting.txt > /out/hello.txt"]
artifacts = ["hello.txt"]
"#;

/// Builds with `key` (and `--bundle`), with `env` set for sealroom; returns the provenance path.
fn build_signed(project: &Project, key: &Path, env: &[(&str, &str)]) -> std::path::PathBuf {
    let spec = project.write_spec(&busybox().to_string(), STEPS);
    let mut command = project.build_command(&spec);
    command.arg("--key").arg(key).arg("--bundle");
    for (name, value) in env {
        command.env(name, value);
    }
    command.assert().success();
    project.out().join("hello.txt.intoto.jsonl")
}

fn check_with_python(provenance: &Path, public: &Path) {
    let Some(python) = python() else { return };
    for (script, args) in [
        (
            "sslib_verify.py",
            vec![provenance.as_os_str(), public.as_os_str()],
        ),
        ("attestation_validate.py", vec![provenance.as_os_str()]),
    ] {
        let outcome = run_helper(python, script, &args);
        assert!(
            outcome.success,
            "{script} rejected a real build's provenance:\n{}",
            outcome.text
        );
    }
    let bundle = provenance.with_file_name("hello.txt.sigstore.json");
    let outcome = run_helper(
        python,
        "bundle_parse.py",
        &[bundle.as_os_str(), public.as_os_str()],
    );
    assert!(outcome.success, "bundle_parse.py: {}", outcome.text);
}

#[test]
fn docker_independent_tools_accept_a_real_builds_provenance_for_both_algorithms() {
    for algorithm in ["ecdsa-p256", "ed25519"] {
        let project = Project::new();
        let (private, public) = project.keygen(algorithm);
        let provenance = build_signed(&project, &private, &[]);
        check_with_python(&provenance, &public);
    }
}

#[test]
fn docker_openssl_verifies_the_ecdsa_signature_over_the_pae() {
    let project = Project::new();
    let (private, public) = project.keygen("ecdsa-p256");
    let provenance = build_signed(&project, &private, &[]);
    let line = std::fs::read_to_string(&provenance).unwrap();
    let envelope = sealroom::sign::dsse::Envelope::from_json(&line).unwrap();
    let pae = project.path("pae.bin");
    let signature = project.path("sig.der");
    std::fs::write(&pae, envelope.pae()).unwrap();
    std::fs::write(&signature, &envelope.signatures[0].sig).unwrap();
    let output = std::process::Command::new("openssl")
        .args(["dgst", "-sha256", "-verify"])
        .arg(&public)
        .arg("-signature")
        .arg(&signature)
        .arg(&pae)
        .output()
        .expect("openssl is installed (scripts/ensure-packages.sh)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn docker_encrypted_keys_sign_with_their_passphrase() {
    for (format, variable) in [
        ("pkcs8", "SEALROOM_KEY_PASSWORD"),
        ("cosign", "COSIGN_PASSWORD"),
    ] {
        let project = Project::new();
        let prefix = project.path("protected");
        sealroom()
            .args([
                "keygen",
                "--algorithm",
                "ecdsa-p256",
                "--encrypt",
                format,
                "--out",
            ])
            .arg(&prefix)
            .env(variable, "correct horse")
            .assert()
            .success();
        let private = prefix.with_extension("key");
        assert!(
            std::fs::read_to_string(&private)
                .unwrap()
                .contains("ENCRYPTED")
        );
        let provenance = build_signed(&project, &private, &[(variable, "correct horse")]);
        sealroom()
            .arg("verify")
            .arg(project.out().join("hello.txt"))
            .arg("--provenance")
            .arg(&provenance)
            .arg("--key")
            .arg(prefix.with_extension("pub"))
            .assert()
            .success();
        // The wrong passphrase is bad input before anything runs.
        let spec = project.path("sealroom.toml");
        let assert = sealroom()
            .arg("build")
            .arg(&spec)
            .args(["--store", project.store().to_str().unwrap()])
            .args(["--out", project.path("out-2").to_str().unwrap()])
            .arg("--key")
            .arg(&private)
            .env(variable, "wrong")
            .assert()
            .code(1);
        assert!(
            common::stderr_of(&assert).contains(variable),
            "{}",
            common::stderr_of(&assert)
        );
        assert!(!project.path("out-2").exists());
    }
}
