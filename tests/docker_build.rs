//! `sealroom build` end to end with real Docker and the busybox image: network off, clean
//! environment, read-only inputs, content-addressed outputs, signed provenance that verifies,
//! failing steps that leave no container behind.

mod common;

use common::{Project, busybox, files_below, sealroom, stderr_of};

const TWO_STEPS: &str = r#"
[[step]]
name = "first"
inputs = ["src"]
run = ["sh", "-c", "cat /inputs/src/greeting.txt > /out/msg && ls /sys/class/net > /out/net && env | sort > /out/env && id -u > /out/uid && hostname > /out/hostname"]
artifacts = ["net", "env", "uid"]

[[step]]
name = "second"
inputs = ["first"]
run = ["sh", "-c", "mkdir -p /out/text && tr a-z A-Z < /inputs/first/msg > /out/text/hello.txt"]
artifacts = ["text/hello.txt"]
"#;

#[test]
fn docker_two_step_build_writes_artifacts_and_verifiable_provenance() {
    let project = Project::new();
    let spec = project.write_spec(&busybox().to_string(), TWO_STEPS);
    let (private, public) = project.keygen("ecdsa-p256");

    project
        .build_command(&spec)
        .arg("--key")
        .arg(&private)
        .env("HOST_SECRET", "leak-me")
        .assert()
        .success();

    let out = project.out();
    assert_eq!(
        std::fs::read_to_string(out.join("text/hello.txt")).unwrap(),
        "HELLO FROM SOURCE\n"
    );
    assert_eq!(
        files_below(&out),
        [
            "env",
            "env.cdx.json",
            "env.intoto.jsonl",
            "env.sbom.intoto.jsonl",
            "net",
            "net.cdx.json",
            "net.intoto.jsonl",
            "net.sbom.intoto.jsonl",
            "text/hello.txt",
            "text/hello.txt.cdx.json",
            "text/hello.txt.intoto.jsonl",
            "text/hello.txt.sbom.intoto.jsonl",
            "uid",
            "uid.cdx.json",
            "uid.intoto.jsonl",
            "uid.sbom.intoto.jsonl",
        ]
    );
    // Network off: the only interface is loopback.
    assert_eq!(std::fs::read_to_string(out.join("net")).unwrap(), "lo\n");
    // Unprivileged, and nothing from the host's environment.
    assert_eq!(std::fs::read_to_string(out.join("uid")).unwrap(), "1000\n");
    let env = std::fs::read_to_string(out.join("env")).unwrap();
    assert!(
        !env.contains("HOST_SECRET"),
        "host variable leaked into the step: {env}"
    );
    for fixed in ["SOURCE_DATE_EPOCH=0", "TZ=UTC", "LC_ALL=C", "HOME=/tmp"] {
        assert!(
            env.lines().any(|line| line == fixed),
            "missing {fixed} in {env}"
        );
    }

    // The artifact is a blob in the store, named by its sha256.
    let artifact_hex =
        sealroom::digest::hash_file::<sealroom::digest::Blob>(&out.join("text/hello.txt"))
            .unwrap()
            .0
            .hex();
    assert!(
        project
            .store()
            .join("v1/blobs/sha256")
            .join(&artifact_hex)
            .is_file()
    );

    sealroom()
        .arg("verify")
        .arg(out.join("text/hello.txt"))
        .arg("--provenance")
        .arg(out.join("text/hello.txt.intoto.jsonl"))
        .arg("--key")
        .arg(&public)
        .assert()
        .success();
}

#[test]
fn docker_provenance_records_the_image_the_sources_and_the_step_logs() {
    let project = Project::new();
    let image = busybox();
    let spec = project.write_spec(&image.to_string(), TWO_STEPS);
    project.build(&spec).success();

    let line = std::fs::read_to_string(project.out().join("text/hello.txt.intoto.jsonl")).unwrap();
    let envelope: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(
        envelope["signatures"],
        serde_json::json!([]),
        "built without a key: unsigned"
    );
    use base64::Engine as _;
    let payload = base64::engine::general_purpose::STANDARD
        .decode(envelope["payload"].as_str().unwrap())
        .unwrap();
    let statement: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(statement["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(statement["predicateType"], "https://slsa.dev/provenance/v1");
    assert_eq!(statement["subject"][0]["name"], "text/hello.txt");
    let dependencies =
        statement["predicate"]["buildDefinition"]["resolvedDependencies"].to_string();
    assert!(dependencies.contains(&image.digest.hex()), "{dependencies}");
    assert!(dependencies.contains("source:src"), "{dependencies}");
    let byproducts = statement["predicate"]["runDetails"]["byproducts"].to_string();
    assert!(
        byproducts.contains("log:first") && byproducts.contains("log:second"),
        "{byproducts}"
    );
}

#[test]
fn docker_inputs_are_read_only() {
    let project = Project::new();
    // Writable by anyone on the host: only the read-only mount can stop the step.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(project.path("src"), std::fs::Permissions::from_mode(0o777)).unwrap();
    let spec = project.write_spec(
        &busybox().to_string(),
        r#"
[[step]]
name = "scribble"
inputs = ["src"]
run = ["sh", "-c", "echo x > /inputs/src/x"]
"#,
    );
    let assert = project.build(&spec).code(3);
    assert!(
        stderr_of(&assert).contains("Read-only file system"),
        "{}",
        stderr_of(&assert)
    );
    assert!(!project.path("src/x").exists());
}

#[test]
fn docker_root_filesystem_is_read_only_and_tmp_is_writable() {
    let project = Project::new();
    let spec = project.write_spec(
        &busybox().to_string(),
        r#"
[[step]]
name = "write-tmp"
run = ["sh", "-c", "echo ok > /tmp/x && cp /tmp/x /out/x && ! touch /etc/x 2>/dev/null"]
artifacts = ["x"]
"#,
    );
    project.build(&spec).success();
    assert_eq!(
        std::fs::read_to_string(project.out().join("x")).unwrap(),
        "ok\n"
    );
}

#[test]
fn docker_failing_step_exits_3_with_status_and_log_and_leaves_nothing() {
    let project = Project::new();
    let spec = project.write_spec(
        &busybox().to_string(),
        r#"
[[step]]
name = "breaks-on-purpose"
run = ["sh", "-c", "echo about to fail; exit 7"]
artifacts = ["never"]
"#,
    );
    let assert = project.build(&spec).code(3);
    let stderr = stderr_of(&assert);
    assert!(
        stderr.contains("step `breaks-on-purpose` failed with exit status 7"),
        "{stderr}"
    );
    assert!(
        stderr.contains("    about to fail"),
        "the log tail is shown: {stderr}"
    );
    assert!(!project.out().exists(), "nothing written to --out");
    let leftovers: Vec<String> = common::sealroom_containers_of_step("breaks-on-purpose");
    assert!(
        leftovers.is_empty(),
        "containers left behind: {leftovers:?}"
    );
    assert!(
        files_below(&project.store().join("v1/tmp")).is_empty(),
        "temporary files left in the store"
    );
}

#[test]
fn docker_missing_artifact_fails_the_build() {
    let project = Project::new();
    let spec = project.write_spec(
        &busybox().to_string(),
        r#"
[[step]]
name = "forgetful"
run = ["sh", "-c", "mkdir /out/bin"]
artifacts = ["bin/tool"]
"#,
    );
    let assert = project.build(&spec).code(3);
    assert!(
        stderr_of(&assert).contains(
            "step `forgetful` declares artifact `bin/tool`, but its /out has nothing there"
        ),
        "{}",
        stderr_of(&assert)
    );
    assert!(!project.out().exists());
}

#[test]
fn docker_image_not_in_the_engine_is_bad_input_with_a_hint() {
    let project = Project::new();
    let absent = format!("sealroom-test/absent@sha256:{}", "ab".repeat(32));
    let spec = project.write_spec(
        &absent,
        r#"
[[step]]
name = "never-runs"
run = ["true"]
"#,
    );
    let assert = project.build(&spec).code(1);
    let stderr = stderr_of(&assert);
    assert!(
        stderr.contains(&format!(
            "base image `{absent}` is not in the container engine"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("hint:"), "{stderr}");
    assert!(!project.out().exists());
}

#[test]
fn docker_changed_artifact_fails_verification() {
    let project = Project::new();
    let spec = project.write_spec(&busybox().to_string(), TWO_STEPS);
    let (private, public) = project.keygen("ed25519");
    project
        .build_command(&spec)
        .arg("--key")
        .arg(&private)
        .assert()
        .success();
    let artifact = project.out().join("text/hello.txt");
    let provenance = project.out().join("text/hello.txt.intoto.jsonl");
    sealroom()
        .arg("verify")
        .arg(&artifact)
        .arg("--provenance")
        .arg(&provenance)
        .arg("--key")
        .arg(&public)
        .assert()
        .success();
    std::fs::write(&artifact, "HELLO FROM SOMEWHERE ELSE\n").unwrap();
    sealroom()
        .arg("verify")
        .arg(&artifact)
        .arg("--provenance")
        .arg(&provenance)
        .arg("--key")
        .arg(&public)
        .assert()
        .code(4);
}
