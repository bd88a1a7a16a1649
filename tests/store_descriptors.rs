//! What the store reads and keeps (issue [M], review item 5): a private key inside a source is
//! refused before it is hashed into the store or mounted in a step, and the store is private to
//! whoever runs sealroom while steps (uid 1000) still get their inputs and `/out`.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use common::{Project, busybox, sealroom, stderr_of};

/// The README's flow with the key made next to the spec and the source at `path = "."`: the
/// unencrypted signing key was hashed into the store as a world-readable blob and mounted at
/// `/inputs/src/release.key`.
#[test]
fn docker_the_signing_key_beside_the_spec_in_a_source_is_refused_naming_it() {
    let project = Project::new();
    sealroom()
        .args(["keygen", "--algorithm", "ecdsa-p256", "--out"])
        .arg(project.path("release"))
        .assert()
        .success();
    let spec = |exclude: &str| {
        let path = project.path("sealroom.toml");
        fs::write(
            &path,
            format!(
                "version = 1\nname = \"keys\"\n\n[sandbox]\nimage = \"{}\"\n\n[[source]]\nname = \"src\"\npath = \".\"\nexclude = [\"/store\", \"/out\"{exclude}]\n\n[[step]]\nname = \"look\"\ninputs = [\"src\"]\nrun = [\"sh\", \"-c\", \"ls -R /inputs/src > /out/listing\"]\nartifacts = [\"listing\"]\n",
                busybox()
            ),
        )
        .unwrap();
        path
    };
    let assert = project
        .build_command(&spec(""))
        .arg("--key")
        .arg(project.path("release.key"))
        .assert()
        .code(1);
    let stderr = stderr_of(&assert);
    assert!(
        stderr.contains("holds the --key file at `release.key`")
            && stderr.contains("add it to the source's `exclude`"),
        "{stderr}"
    );
    let key = fs::read_to_string(project.path("release.key")).unwrap();
    let body = key.lines().nth(1).unwrap().to_string();
    let stored: Vec<_> = walkdir::WalkDir::new(project.store())
        .into_iter()
        .filter_map(Result::ok)
        .filter(|entry| entry.file_type().is_file())
        .filter(|entry| {
            fs::read_to_string(entry.path()).is_ok_and(|text| text.contains(body.as_str()))
        })
        .map(|entry| entry.path().display().to_string())
        .collect();
    assert!(stored.is_empty(), "the key is in the store: {stored:?}");

    // Excluded, it is neither stored nor mounted, and the build signs with it.
    project
        .build_command(&spec(", \"release.key\""))
        .arg("--key")
        .arg(project.path("release.key"))
        .assert()
        .success();
    let listing = fs::read_to_string(project.out().join("listing")).unwrap();
    assert!(listing.contains("sealroom.toml"), "{listing}");
    assert!(!listing.contains("release.key"), "{listing}");
}

/// A copied PEM key anywhere in a source (not the `--key` file) is refused too.
#[test]
fn a_pem_private_key_in_a_source_is_refused_before_any_step() {
    let project = Project::new();
    sealroom()
        .args(["keygen", "--algorithm", "ed25519", "--out"])
        .arg(project.path("deploy"))
        .assert()
        .success();
    fs::create_dir(project.path("src/config")).unwrap();
    fs::copy(
        project.path("deploy.key"),
        project.path("src/config/deploy-token.pem"),
    )
    .unwrap();
    // No engine is needed to refuse: the image is never looked up.
    let spec = project.write_spec(
        &format!("sealroom/none@sha256:{}", "1".repeat(64)),
        "[[step]]\nname = \"s\"\ninputs = [\"src\"]\nrun = [\"true\"]\n",
    );
    let assert = project.build(&spec).code(1);
    let stderr = stderr_of(&assert);
    assert!(
        stderr.contains("holds a PEM private key at `config/deploy-token.pem`"),
        "{stderr}"
    );
}

/// The store root is 0700, and a step (uid 1000) still reads its inputs and writes `/out`:
/// bind mounts need no traversable path on the host.
#[test]
fn docker_a_step_as_uid_1000_reads_inputs_and_writes_out_under_a_private_store() {
    let project = Project::new();
    let spec = project.write_spec(
        &busybox().to_string(),
        "[[step]]\nname = \"copy\"\ninputs = [\"src\"]\nrun = [\"sh\", \"-c\", \"id -u > /out/uid; cat /inputs/src/greeting.txt > /out/copy\"]\nartifacts = [\"uid\", \"copy\"]\n",
    );
    project.build(&spec).success();
    let mode = fs::metadata(project.store()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "the store root");
    let read = |name: &str| fs::read_to_string(project.out().join(name)).unwrap();
    assert_eq!(read("uid"), "1000\n");
    assert_eq!(read("copy"), "hello from source\n");
}
