//! The store with real builds (Docker, busybox): a corrupt artifact blob is caught by
//! `store verify` and the next build recovers by rerunning the step; two builds of one spec
//! running at once on one store both succeed with identical outputs.

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use common::{Project, busybox, sealroom, stderr_of};
use sealroom::digest::{Blob, hash_file};

const STEPS: &str = r#"
[[step]]
name = "first"
inputs = ["src"]
run = ["sh", "-c", "cat /inputs/src/greeting.txt > /out/msg"]

[[step]]
name = "second"
inputs = ["first"]
run = ["sh", "-c", "tr a-z A-Z < /inputs/first/msg > /out/loud.txt"]
artifacts = ["loud.txt"]

[[step]]
name = "independent"
run = ["sh", "-c", "echo independent > /out/other.txt"]
artifacts = ["other.txt"]
"#;

#[test]
fn docker_corrupt_artifact_blob_is_quarantined_and_the_next_build_recovers() {
    let project = Project::new();
    let spec = project.write_spec(&busybox().to_string(), STEPS);
    project.build(&spec).success();
    let artifact = project.out().join("loud.txt");
    assert_eq!(
        fs::read_to_string(&artifact).unwrap(),
        "HELLO FROM SOURCE\n"
    );
    let hex = hash_file::<Blob>(&artifact).unwrap().0.hex();

    sealroom()
        .args(["store", "verify", "--store"])
        .arg(project.store())
        .assert()
        .success();

    let blob = project.store().join("v1/blobs/sha256").join(&hex);
    fs::set_permissions(&blob, fs::Permissions::from_mode(0o644)).unwrap();
    fs::OpenOptions::new()
        .append(true)
        .open(&blob)
        .unwrap()
        .write_all(b"X")
        .unwrap();
    let verify = sealroom()
        .args(["store", "verify", "--store"])
        .arg(project.store())
        .assert()
        .code(4);
    let stderr = stderr_of(&verify);
    assert!(
        stderr.contains(&hex),
        "verify must name the blob:\n{stderr}"
    );

    fs::remove_dir_all(project.out()).unwrap();
    let rebuild = project.build(&spec).success();
    let stderr = stderr_of(&rebuild);
    assert!(stderr.contains("step second: running"), "{stderr}");
    assert!(stderr.contains("step first: cached"), "{stderr}");
    assert!(stderr.contains("step independent: cached"), "{stderr}");
    assert_eq!(
        fs::read_to_string(&artifact).unwrap(),
        "HELLO FROM SOURCE\n"
    );
    assert_eq!(
        hash_file::<Blob>(&blob).unwrap().0.hex(),
        hex,
        "the blob is back, whole"
    );
    sealroom()
        .args(["store", "verify", "--store"])
        .arg(project.store())
        .assert()
        .success();
}

#[test]
fn docker_two_concurrent_builds_share_one_store() {
    let project = Project::new();
    let spec = project.write_spec(&busybox().to_string(), STEPS);
    let binary = assert_cmd::cargo::cargo_bin("sealroom");
    let spawn = |out: &str| {
        Command::new(&binary)
            .env_remove("SEALROOM_STORE")
            .arg("build")
            .arg(&spec)
            .arg("--store")
            .arg(project.store())
            .arg("--out")
            .arg(project.path(out))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let builds = [spawn("out-1"), spawn("out-2")];
    for build in builds {
        let output = build.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    for artifact in ["loud.txt", "other.txt"] {
        let first = fs::read(project.path("out-1").join(artifact)).unwrap();
        let second = fs::read(project.path("out-2").join(artifact)).unwrap();
        assert_eq!(first, second, "{artifact}");
    }
    assert_eq!(
        fs::read_to_string(project.path("out-1/loud.txt")).unwrap(),
        "HELLO FROM SOURCE\n"
    );
    assert_eq!(
        fs::read_dir(project.store().join("v1/tmp"))
            .unwrap()
            .count(),
        0,
        "nothing left in tmp/"
    );
    sealroom()
        .args(["store", "verify", "--store"])
        .arg(project.store())
        .assert()
        .success();
}
