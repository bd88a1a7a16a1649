//! The action cache with real Docker: a second build starts no container, and a changed source
//! file reruns exactly the steps downstream of it. Counted from the build's JSON report, which
//! says per step whether it ran or came from the cache.

mod common;

use common::{Project, busybox};

const STEPS: &str = r#"
[[step]]
name = "reads-src"
inputs = ["src"]
run = ["sh", "-c", "cat /inputs/src/greeting.txt > /out/copy"]

[[step]]
name = "after-src"
inputs = ["reads-src"]
run = ["sh", "-c", "wc -c < /inputs/reads-src/copy > /out/size"]
artifacts = ["size"]

[[step]]
name = "unrelated"
run = ["sh", "-c", "echo constant > /out/c"]
artifacts = ["c"]
"#;

/// Builds with `--format json`; returns the names of the steps that ran (not cached).
fn ran(project: &Project, spec: &std::path::Path) -> Vec<String> {
    let assert = project
        .build_command(spec)
        .args(["--format", "json"])
        .assert()
        .success();
    let report: serde_json::Value = serde_json::from_slice(&assert.get_output().stdout).unwrap();
    let mut ran: Vec<String> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|step| step["cached"] == false)
        .map(|step| step["name"].as_str().unwrap().to_string())
        .collect();
    ran.sort();
    ran
}

#[test]
fn docker_an_unchanged_build_starts_nothing_and_a_change_reruns_its_dependants_only() {
    let project = Project::new();
    let spec = project.write_spec(&busybox().to_string(), STEPS);
    assert_eq!(
        ran(&project, &spec),
        ["after-src", "reads-src", "unrelated"]
    );
    assert!(
        ran(&project, &spec).is_empty(),
        "a second build runs nothing"
    );

    std::fs::write(
        project.path("src/greeting.txt"),
        "a longer greeting than before\n",
    )
    .unwrap();
    assert_eq!(ran(&project, &spec), ["after-src", "reads-src"]);
    assert_eq!(
        std::fs::read_to_string(project.out().join("size"))
            .unwrap()
            .trim(),
        "30"
    );
}

#[test]
fn docker_a_fully_cached_build_does_not_need_the_engine() {
    let project = Project::new();
    let spec = project.write_spec(&busybox().to_string(), STEPS);
    project.build(&spec).success();
    std::fs::remove_dir_all(project.out()).unwrap();

    // No engine where DOCKER_HOST points: nothing runs, so nothing asks it anything.
    let gone = project.path("no-engine.sock");
    let assert = project
        .build_command(&spec)
        .env("DOCKER_HOST", format!("unix://{}", gone.display()))
        .assert()
        .success();
    let stderr = common::stderr_of(&assert);
    assert!(!stderr.contains("running"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(project.out().join("c")).unwrap(),
        "constant\n"
    );

    // A change needs the engine again, and says it is unreachable (exit 70).
    std::fs::write(project.path("src/greeting.txt"), "changed\n").unwrap();
    let assert = project
        .build_command(&spec)
        .env("DOCKER_HOST", format!("unix://{}", gone.display()))
        .assert()
        .code(70);
    let stderr = common::stderr_of(&assert);
    assert!(
        stderr.contains("cannot reach the container engine"),
        "{stderr}"
    );
}
