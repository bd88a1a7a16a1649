//! Bad specs through the binary: exit 1, a message that says what was expected and found at
//! file:line:column, and nothing written to `--out` or the store. No engine is needed: a spec is
//! validated before anything else happens.

use std::path::Path;

const IMAGE: &str =
    "test/image@sha256:0000000000000000000000000000000000000000000000000000000000000000";

/// Writes `spec` next to a `src/` directory and builds it; returns stderr after checking the
/// exit code and that neither `--out` nor the store was created.
fn rejected(spec: &str) -> String {
    rejected_with(spec, &[])
}

/// [`rejected`], with more arguments to `sealroom build`. The engine named is not there, so a
/// command that asked it anything would fail with exit 70 instead.
fn rejected_with(spec: &str, args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("src")).unwrap();
    std::fs::write(dir.path().join("sealroom.toml"), spec).unwrap();
    let output = assert_cmd::Command::cargo_bin("sealroom")
        .unwrap()
        .current_dir(dir.path())
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .args(["build", "sealroom.toml", "--store", "store", "--out", "out"])
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "exit code; stderr: {stderr}");
    assert!(output.stdout.is_empty(), "nothing on stdout");
    for written in ["out", "store"] {
        assert!(
            !Path::new(&dir.path().join(written)).exists(),
            "{written} was created; stderr: {stderr}"
        );
    }
    stderr
}

fn spec_with(image: &str, rest: &str) -> String {
    format!(
        "version = 1\nname = \"t\"\n\n[sandbox]\nimage = \"{image}\"\n\n[[source]]\nname = \"src\"\npath = \"src\"\n{rest}"
    )
}

#[test]
fn an_unpinned_image_is_rejected_with_a_hint() {
    let stderr = rejected(&spec_with(
        "busybox:latest",
        "[[step]]\nname = \"a\"\nrun = [\"true\"]\n",
    ));
    assert!(
        stderr.contains(
            "sealroom.toml:5:9: expected an image pinned by digest, `name@sha256:<64 hex>`, found `busybox:latest`"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("hint:"), "{stderr}");
}

#[test]
fn an_unknown_key_is_named() {
    let stderr = rejected(&spec_with(IMAGE, "colour = \"blue\"\n"));
    assert!(
        stderr.contains("sealroom.toml:10:1: unknown key `colour`"),
        "{stderr}"
    );
}

#[test]
fn a_cycle_names_its_steps() {
    let stderr = rejected(&spec_with(
        IMAGE,
        "[[step]]\nname = \"a\"\ninputs = [\"b\"]\nrun = [\"true\"]\n[[step]]\nname = \"b\"\ninputs = [\"a\"]\nrun = [\"true\"]\n",
    ));
    assert!(stderr.contains("dependency cycle: "), "{stderr}");
    assert!(
        stderr.contains("a -> b -> a") || stderr.contains("b -> a -> b"),
        "{stderr}"
    );
    assert!(stderr.contains("sealroom.toml:"), "{stderr}");
}

#[test]
fn an_artifact_escaping_out_is_rejected() {
    let stderr = rejected(&spec_with(
        IMAGE,
        "[[step]]\nname = \"a\"\nrun = [\"true\"]\nartifacts = [\"../../etc/passwd\"]\n",
    ));
    assert!(
        stderr.contains(
            "sealroom.toml:13:14: artifact `../../etc/passwd` is outside /out: it escapes with `..`"
        ),
        "{stderr}"
    );
}

#[test]
fn duplicate_names_point_at_the_first() {
    let stderr = rejected(&spec_with(
        IMAGE,
        "[[step]]\nname = \"src\"\nrun = [\"true\"]\n",
    ));
    assert!(
        stderr.contains("sealroom.toml:11:8: duplicate name `src`: the source at sealroom.toml:8:8 has it already"),
        "{stderr}"
    );
}

#[test]
fn an_input_naming_nothing_suggests_the_closest() {
    let stderr = rejected(&spec_with(
        IMAGE,
        "[[step]]\nname = \"a\"\ninputs = [\"srcc\"]\nrun = [\"true\"]\n",
    ));
    assert!(
        stderr.contains("input `srcc` of step `a` names no source, fetch or step"),
        "{stderr}"
    );
    assert!(stderr.contains("did you mean `src`?"), "{stderr}");
}

#[test]
fn an_absolute_source_path_is_rejected() {
    let spec = format!(
        "version = 1\nname = \"t\"\n[sandbox]\nimage = \"{IMAGE}\"\n[[source]]\nname = \"etc\"\npath = \"/etc\"\n"
    );
    let stderr = rejected(&spec);
    assert!(
        stderr.contains("sealroom.toml:7:8: expected a path relative to the spec's directory, found the absolute path `/etc`"),
        "{stderr}"
    );
}

#[test]
fn an_empty_run_is_rejected() {
    let stderr = rejected(&spec_with(IMAGE, "[[step]]\nname = \"a\"\nrun = []\n"));
    assert!(
        stderr.contains("expected a non-empty argv for `run` in step `a`, found `[]`"),
        "{stderr}"
    );
}

#[test]
fn a_missing_image_is_rejected() {
    let stderr = rejected("version = 1\nname = \"t\"\n[sandbox]\n");
    assert!(
        stderr.contains("missing key `image` in `[sandbox]`"),
        "{stderr}"
    );
}

#[test]
fn a_missing_spec_file_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let output = assert_cmd::Command::cargo_bin("sealroom")
        .unwrap()
        .current_dir(dir.path())
        .args(["build", "nowhere.toml", "--store", "store", "--out", "out"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot read spec `nowhere.toml`"));
    assert!(!dir.path().join("store").exists());
}

#[test]
fn a_bad_load_tag_fails_before_anything_runs_or_is_written() {
    let spec = spec_with(
        IMAGE,
        &format!(
            "[[step]]\nname = \"a\"\nrun = [\"true\"]\n\n[[image]]\nname = \"app\"\nbase = \"{IMAGE}\"\nlayers = [{{ step = \"a\", path = \"/\" }}]\n"
        ),
    );
    let cases = [
        ("app:-bad", "`-bad` is not a tag"),
        ("other=app:1", "the spec has no `[[image]]` named `other`"),
        ("Bad/Name:1", "invalid image name `Bad/Name`"),
    ];
    for (tag, want) in cases {
        let stderr = rejected_with(&spec, &["--load", "--tag", tag]);
        assert!(stderr.contains(want), "--tag {tag}: {stderr}");
    }
}
