//! `sealroom reproduce` and `sealroom check` with real Docker: a deterministic build reproduces
//! from its provenance; planted non-determinism is caught by both, naming the file; a tampered
//! source is bad input naming the source and both digests.

mod common;

use common::{Project, busybox, sealroom, stderr_of};

const DETERMINISTIC: &str = r#"
[[step]]
name = "upper"
inputs = ["src"]
run = ["sh", "-c", "tr a-z A-Z < /inputs/src/greeting.txt > /out/up"]

[[step]]
name = "package"
inputs = ["upper"]
run = ["sh", "-c", "cat /inputs/upper/up > /out/result.txt && echo done >> /out/result.txt"]
artifacts = ["result.txt"]
"#;

const STAMPED: &str = r#"
[[step]]
name = "stamp"
run = ["sh", "-c", "date +%s%N > /out/stamp.bin && head -c 16 /dev/urandom >> /out/stamp.bin"]
artifacts = ["stamp.bin"]
"#;

/// Builds `steps` signed with a fresh key; returns (project, provenance path, public key).
fn built(steps: &str) -> (Project, std::path::PathBuf, std::path::PathBuf) {
    let project = Project::new();
    let spec = project.write_spec(&busybox().to_string(), steps);
    let (private, public) = project.keygen("ed25519");
    project
        .build_command(&spec)
        .arg("--key")
        .arg(&private)
        .assert()
        .success();
    let artifact = if steps.contains("stamp.bin") {
        "stamp.bin"
    } else {
        "result.txt"
    };
    let provenance = project.out().join(format!("{artifact}.intoto.jsonl"));
    (project, provenance, public)
}

fn reproduce(
    project: &Project,
    provenance: &std::path::Path,
    public: &std::path::Path,
) -> assert_cmd::Command {
    let mut command = sealroom();
    command
        .arg("reproduce")
        .arg(provenance)
        .arg("--source")
        .arg(project.dir.path())
        .arg("--key")
        .arg(public)
        .env("SEALROOM_STORE", project.path("unused-store"));
    command
}

#[test]
fn docker_a_deterministic_build_reproduces_from_its_provenance() {
    let (project, provenance, public) = built(DETERMINISTIC);
    let assert = reproduce(&project, &provenance, &public)
        .args(["--format", "json"])
        .assert()
        .success();
    let report: serde_json::Value = serde_json::from_slice(&assert.get_output().stdout).unwrap();
    let digest =
        sealroom::digest::hash_file::<sealroom::digest::Blob>(&project.out().join("result.txt"))
            .unwrap()
            .0;
    assert_eq!(report["reproduced"], true);
    assert_eq!(report["subjects"][0]["name"], "result.txt");
    assert_eq!(report["subjects"][0]["recorded"], digest.hex());
    assert_eq!(report["subjects"][0]["rebuilt"], digest.hex());
    assert!(
        !project.path("unused-store").exists(),
        "reproduce uses a fresh temporary store"
    );
}

#[test]
fn docker_planted_non_determinism_fails_reproduce_and_check() {
    let (project, provenance, public) = built(STAMPED);
    let assert = reproduce(&project, &provenance, &public).assert().code(4);
    let stderr = stderr_of(&assert);
    assert!(
        stderr.contains("did not reproduce: `stamp.bin` differ from the provenance"),
        "{stderr}"
    );

    let assert = sealroom()
        .arg("check")
        .arg(project.path("sealroom.toml"))
        .arg("--report-dir")
        .arg(project.path("check-report"))
        .args(["--format", "json"])
        .assert()
        .code(4);
    let report: serde_json::Value = serde_json::from_slice(&assert.get_output().stdout).unwrap();
    assert_eq!(report["reproducible"], false);
    assert_eq!(report["differences"][0]["step"], "stamp");
    assert_eq!(report["differences"][0]["path"], "stamp.bin");
    assert_ne!(
        report["differences"][0]["first"]["sha256"],
        report["differences"][0]["second"]["sha256"]
    );
    let cause = report["likely_cause"].as_str().unwrap();
    assert!(
        cause.contains("the step itself is not deterministic"),
        "{cause}"
    );
    assert!(stderr_of(&assert).contains("differs: step `stamp` /out/stamp.bin"));
}

#[test]
fn docker_check_passes_a_deterministic_spec() {
    let project = Project::new();
    let spec = project.write_spec(&busybox().to_string(), DETERMINISTIC);
    let assert = sealroom().arg("check").arg(&spec).assert().success();
    assert_eq!(
        String::from_utf8_lossy(&assert.get_output().stdout),
        "reproducible\n"
    );
}

#[test]
fn docker_a_tampered_source_is_bad_input_naming_both_digests() {
    let (project, provenance, public) = built(DETERMINISTIC);
    std::fs::write(project.path("src/greeting.txt"), "hello from elsewhere\n").unwrap();
    let assert = reproduce(&project, &provenance, &public).assert().code(1);
    let stderr = stderr_of(&assert);
    assert!(stderr.contains("source `src`"), "{stderr}");
    let digests: std::collections::BTreeSet<&str> = stderr
        .split(|c: char| !c.is_ascii_hexdigit())
        .filter(|word| word.len() == 64)
        .collect();
    assert!(digests.len() >= 2, "both digests are named: {stderr}");
}

#[test]
fn docker_reproduce_refuses_provenance_signed_by_another_key() {
    let (project, provenance, _) = built(DETERMINISTIC);
    let (_, other) = project.keygen("ecdsa-p256");
    let assert = reproduce(&project, &provenance, &other).assert().code(4);
    assert!(
        stderr_of(&assert).contains("signature"),
        "{}",
        stderr_of(&assert)
    );
}
