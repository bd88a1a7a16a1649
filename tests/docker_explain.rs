//! `sealroom explain` with real Docker: after a build, it names exactly the fields of a step's
//! record that changed — an env value, a source file, the image — old value first, in text and in
//! JSON; a step that never ran says so, an unchanged one says it is cached, and a step after a
//! changed one says its input is not built yet.

mod common;

use std::fs;

use common::image::{busybox_rootfs, engine};
use common::{Project, busybox, sealroom};
use sealroom::image::RepositoryName;
use serde_json::Value;

const STEPS: &str = r#"
[[step]]
name = "compile"
inputs = ["src"]
env = { MODE = "fast", OTHER = "same" }
run = ["sh", "-c", "cat /inputs/src/greeting.txt > /out/out.txt && echo $MODE >> /out/out.txt"]
artifacts = ["out.txt"]

[[step]]
name = "package"
inputs = ["compile"]
run = ["sh", "-c", "cp /inputs/compile/out.txt /out/pkg.txt"]
artifacts = ["pkg.txt"]
"#;

/// `sealroom explain SPEC [STEP]` against the project's store: (stdout, exit code).
fn explain(project: &Project, step: Option<&str>, json: bool) -> (String, i32) {
    let mut command = sealroom();
    command
        .arg("explain")
        .arg(project.path("sealroom.toml"))
        .args(step)
        .arg("--store")
        .arg(project.store());
    if json {
        command.args(["--format", "json"]);
    }
    let output = command.output().unwrap();
    (
        String::from_utf8(output.stdout).unwrap(),
        output.status.code().unwrap(),
    )
}

fn explain_json(project: &Project, step: &str) -> Value {
    let (stdout, code) = explain(project, Some(step), true);
    assert_eq!(code, 0, "{stdout}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    report["steps"][0].clone()
}

fn project_with(image: &str) -> Project {
    let project = Project::new();
    fs::create_dir_all(project.path("src/lib")).unwrap();
    fs::write(project.path("src/lib/changed.txt"), "before\n").unwrap();
    fs::write(project.path("src/unchanged.txt"), "same\n").unwrap();
    project.write_spec(image, STEPS);
    project
}

#[test]
fn docker_explain_says_there_is_no_earlier_record_then_that_the_step_is_cached() {
    let project = project_with(&busybox().to_string());
    let (text, code) = explain(&project, Some("compile"), false);
    assert_eq!(code, 0);
    assert_eq!(
        text,
        "step compile: not cached, and no earlier record of it in this store to compare with (it never ran here)\n"
    );
    assert_eq!(
        explain_json(&project, "compile")["status"],
        "no-earlier-record"
    );
    // Its input is a step that never ran: nothing to compare yet.
    let (text, _) = explain(&project, Some("package"), false);
    assert_eq!(
        text,
        "step package: would run after its inputs, which are not built or fetched yet: compile\n"
    );

    project.build(&project.path("sealroom.toml")).success();
    let (text, _) = explain(&project, None, false);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with("step compile: cached (action sha256:"),
        "{text}"
    );
    assert!(
        lines[1].starts_with("step package: cached (action sha256:"),
        "{text}"
    );
    let compile = explain_json(&project, "compile");
    assert_eq!(compile["status"], "cached");
    assert_eq!(compile["action"], compile["previous_action"]);
    assert_eq!(compile["differences"], Value::Array(Vec::new()));
}

#[test]
fn docker_explain_names_a_changed_env_value_old_first() {
    let project = project_with(&busybox().to_string());
    let spec = project.path("sealroom.toml");
    project.build(&spec).success();
    let text = fs::read_to_string(&spec).unwrap();
    fs::write(&spec, text.replace("MODE = \"fast\"", "MODE = \"slow\"")).unwrap();

    let (text, _) = explain(&project, Some("compile"), false);
    let mut lines = text.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("step compile: not cached; its record differs from the one it last ran with (action sha256:"),
        "{text}"
    );
    assert_eq!(lines.next(), Some("  env.MODE: `fast` → `slow`"));
    assert_eq!(lines.next(), None, "only MODE changed: {text}");

    let compile = explain_json(&project, "compile");
    assert_eq!(compile["status"], "changed");
    assert_eq!(
        compile["differences"],
        serde_json::json!([{"field": "env.MODE", "old": "fast", "new": "slow"}])
    );
    assert_ne!(compile["action"], compile["previous_action"]);
    // The next step's input would be rebuilt first.
    assert_eq!(
        explain_json(&project, "package")["status"],
        "inputs-not-built"
    );

    // Explain ran nothing: a build after it still reruns the step, and then it is cached.
    project.build(&spec).success();
    assert_eq!(explain_json(&project, "compile")["status"], "cached");
}

#[test]
fn docker_explain_names_the_changed_source_file_and_no_other() {
    let project = project_with(&busybox().to_string());
    let spec = project.path("sealroom.toml");
    project.build(&spec).success();
    fs::write(project.path("src/lib/changed.txt"), "after\n").unwrap();

    let compile = explain_json(&project, "compile");
    let differences = compile["differences"].as_array().unwrap();
    assert_eq!(differences.len(), 1, "{compile}");
    let input = &differences[0];
    assert_eq!(input["field"], "input src");
    assert_eq!(
        input["files_changed"],
        serde_json::json!(["lib/changed.txt"])
    );
    let (old, new) = (
        input["old"].as_str().unwrap(),
        input["new"].as_str().unwrap(),
    );
    assert!(old.starts_with("tree sha256:") && new.starts_with("tree sha256:") && old != new);

    let (text, _) = explain(&project, Some("compile"), false);
    assert!(
        text.contains(&format!(
            "  input src: `{old}` → `{new}`, files changed: lib/changed.txt\n"
        )),
        "{text}"
    );
    assert!(
        !text.contains("unchanged.txt") && !text.contains("greeting.txt"),
        "{text}"
    );
}

#[tokio::test]
async fn docker_explain_names_a_changed_image() {
    let rootfs = tempfile::tempdir().unwrap();
    busybox_rootfs(rootfs.path());
    fs::write(rootfs.path().join("etc/variant"), "another image\n").unwrap();
    let engine = engine().await;
    let other = sealroom::image::import(
        &engine,
        rootfs.path(),
        &RepositoryName::parse("sealroom-test/explain-variant").unwrap(),
    )
    .await
    .unwrap()
    .image;
    let first = busybox();
    let (first_id, other_id) = (first.digest.to_string(), other.digest.to_string());
    let checked = tokio::task::spawn_blocking(move || {
        let project = project_with(&first.to_string());
        let spec = project.path("sealroom.toml");
        project.build(&spec).success();
        let text = fs::read_to_string(&spec).unwrap();
        fs::write(&spec, text.replace(&first.to_string(), &other.to_string())).unwrap();
        (
            explain(&project, Some("compile"), false).0,
            explain_json(&project, "compile"),
        )
    })
    .await
    .unwrap();
    let (text, compile) = checked;
    assert_eq!(
        compile["differences"],
        serde_json::json!([{"field": "image", "old": first_id, "new": other_id}])
    );
    assert!(
        text.ends_with(&format!("  image: `{first_id}` → `{other_id}`\n")),
        "{text}"
    );
}
