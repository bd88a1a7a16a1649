//! A hostile or broken step cannot escape and cannot exhaust the machine, and no interrupt
//! leaves a container behind. Real Docker, the busybox image; each test checks the error the
//! user sees and that nothing outside the step's `/out` changed.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Project, busybox, files_below, sealroom_containers_of_step, stderr_of};

/// A project whose spec has one step `name` running `run` (a TOML array) with `extra` lines.
fn one_step(name: &str, run: &str, extra: &str) -> (Project, std::path::PathBuf) {
    let project = Project::new();
    let spec = project.write_spec(
        &busybox().to_string(),
        &format!("[[step]]\nname = \"{name}\"\ninputs = [\"src\"]\nrun = {run}\n{extra}\n"),
    );
    (project, spec)
}

#[test]
fn docker_a_step_has_no_capabilities_no_root_and_only_loopback() {
    let (project, spec) = one_step(
        "probe",
        r#"["sh", "-c", "grep CapEff /proc/self/status > /out/caps; grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status > /out/confined; id -u > /out/uid; ls /sys/class/net > /out/net"]"#,
        r#"artifacts = ["caps", "confined", "uid", "net"]"#,
    );
    project.build(&spec).success();
    let read = |name: &str| std::fs::read_to_string(project.out().join(name)).unwrap();
    assert_eq!(read("caps"), "CapEff:\t0000000000000000\n");
    // no-new-privileges, and the engine's seccomp filter (mode 2) in effect.
    assert_eq!(read("confined"), "NoNewPrivs:\t1\nSeccomp:\t2\n");
    assert_eq!(read("uid"), "1000\n");
    assert_eq!(read("net"), "lo\n");
}

#[test]
fn docker_a_step_cannot_reach_a_socket_or_resolve_a_name() {
    let (project, spec) = one_step(
        "netprobe",
        // Loopback inside the container has nothing listening, and nothing leaves it.
        r#"["sh", "-c", "if wget -q -T 2 -O /out/page http://127.0.0.1:80/; then echo connected > /out/result; elif nslookup sealroom.invalid > /dev/null 2>&1; then echo resolved > /out/result; else echo isolated > /out/result; fi"]"#,
        r#"artifacts = ["result"]"#,
    );
    project.build(&spec).success();
    assert_eq!(
        std::fs::read_to_string(project.out().join("result")).unwrap(),
        "isolated\n"
    );
}

#[test]
fn docker_writes_outside_out_and_tmp_fail() {
    for (name, command) in [
        ("write-root", "echo x > /x"),
        ("write-etc", "echo x > /etc/passwd"),
        ("write-inputs", "echo x > /inputs/src/greeting.txt"),
        ("chown-root", "chown 0:0 /out"),
        ("mount", "mount -t tmpfs none /tmp"),
    ] {
        let (project, spec) = one_step(name, &format!(r#"["sh", "-c", "{command}"]"#), "");
        let assert = project.build(&spec).code(3);
        assert!(
            stderr_of(&assert).contains(&format!("step `{name}` failed with exit status")),
            "{}",
            stderr_of(&assert)
        );
        assert_eq!(
            std::fs::read_to_string(project.path("src/greeting.txt")).unwrap(),
            "hello from source\n",
            "{name} changed the source"
        );
    }
}

#[test]
fn docker_a_step_over_its_timeout_is_killed_and_named() {
    let (project, spec) = one_step(
        "sleeper",
        r#"["sleep", "9999"]"#,
        "limits = { timeout = \"2s\" }",
    );
    let started = Instant::now();
    let assert = project.build(&spec).code(3);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the timeout stopped the step"
    );
    assert!(
        stderr_of(&assert).contains("step `sleeper` timed out: it ran longer than its wall-clock limit of 2s (limits.timeout)"),
        "{}",
        stderr_of(&assert)
    );
    assert!(sealroom_containers_of_step("sleeper").is_empty());
}

#[test]
fn docker_a_memory_hog_is_killed_at_its_limit() {
    let (project, spec) = one_step(
        "hog",
        r#"["sh", "-c", "head -c 300000000 /dev/zero | tail > /dev/null"]"#,
        "limits = { memory = \"32MiB\" }",
    );
    let assert = project.build(&spec).code(3);
    assert!(
        stderr_of(&assert).contains(
            "step `hog` ran out of memory: it was killed at its limit of 32MiB (limits.memory)"
        ),
        "{}",
        stderr_of(&assert)
    );
}

#[test]
fn docker_a_fork_bomb_stops_at_the_pids_limit() {
    let (project, spec) = one_step(
        "forkbomb",
        r#"["sh", "-c", "i=0; while [ $i -lt 500 ]; do sleep 30 & i=$((i+1)); done; echo spawned $i"]"#,
        "limits = { pids = 32, timeout = \"60s\" }",
    );
    let assert = project.build(&spec).code(3);
    assert!(
        stderr_of(&assert).contains("step `forkbomb` failed"),
        "{}",
        stderr_of(&assert)
    );
    assert!(sealroom_containers_of_step("forkbomb").is_empty());
}

#[test]
fn docker_output_over_its_limit_is_not_stored() {
    let (project, spec) = one_step(
        "big",
        r#"["sh", "-c", "head -c 2000000 /dev/zero > /out/big"]"#,
        "limits = { output = \"1MiB\" }\nartifacts = [\"big\"]",
    );
    let assert = project.build(&spec).code(3);
    assert!(
        stderr_of(&assert).contains(
            "step `big` wrote more than its output limit of 1MiB to /out (limits.output)"
        ),
        "{}",
        stderr_of(&assert)
    );
    assert!(!project.out().exists());
    assert!(
        files_below(&project.store().join("v1/tmp")).is_empty(),
        "the step's /out was removed"
    );
}

#[test]
fn docker_a_symlink_out_of_the_tree_is_never_followed() {
    let (project, spec) = one_step(
        "escape",
        r#"["sh", "-c", "ln -s /etc/passwd /out/escape-link"]"#,
        r#"artifacts = ["escape-link"]"#,
    );
    let assert = project.build(&spec).code(3);
    assert!(
        stderr_of(&assert).contains(
            "declares artifact `escape-link`, but its /out has a symlink to `/etc/passwd` there"
        ),
        "{}",
        stderr_of(&assert)
    );
    assert!(!project.out().exists());
}

#[test]
fn docker_a_large_tree_is_collected() {
    let (project, spec) = one_step(
        "many",
        r#"["sh", "-c", "cd /out && for d in $(seq 1 100); do mkdir d$d; for f in $(seq 1 200); do echo $f > d$d/f$f; done; done; echo 20000 > /out/count"]"#,
        r#"artifacts = ["count"]"#,
    );
    project.build(&spec).success();
    assert_eq!(
        std::fs::read_to_string(project.out().join("count")).unwrap(),
        "20000\n"
    );
}

/// Starts a build of a step that sleeps, and waits until its container runs.
fn start_slow_build(project: &Project, step: &str) -> Child {
    let spec = project.write_spec(
        &busybox().to_string(),
        &format!("[[step]]\nname = \"{step}\"\nrun = [\"sh\", \"-c\", \"sleep 60; echo late > /out/late\"]\n"),
    );
    let child = project
        .build_process(&spec)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while sealroom_containers_of_step(step).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the step's container never started"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    child
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args(["-s", name, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn docker_sigterm_stops_the_build_and_removes_its_containers() {
    let project = Project::new();
    let mut child = start_slow_build(&project, "slow-term");
    signal(&child, "TERM");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "sealroom did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(130));
    assert!(
        sealroom_containers_of_step("slow-term").is_empty(),
        "containers left after SIGTERM"
    );
    assert!(
        files_below(&project.store().join("v1/tmp")).is_empty(),
        "temporary files left"
    );
    assert!(!project.out().exists());
}

#[test]
fn docker_after_sigkill_the_next_build_removes_the_leftovers_and_succeeds() {
    let project = Project::new();
    let mut child = start_slow_build(&project, "slow-kill");
    signal(&child, "KILL");
    child.wait().unwrap();
    assert_eq!(
        sealroom_containers_of_step("slow-kill").len(),
        1,
        "a killed build cannot clean up"
    );
    assert_eq!(
        scratch_volumes_of_step("slow-kill"),
        2,
        "its /tmp and /build"
    );

    let spec = project.write_spec(
        &busybox().to_string(),
        "[[step]]\nname = \"quick\"\nrun = [\"sh\", \"-c\", \"echo ok > /out/ok\"]\nartifacts = [\"ok\"]\n",
    );
    let assert = project.build(&spec).success();
    assert!(
        stderr_of(&assert)
            .contains("container(s) left behind by a sealroom process that is no longer running"),
        "{}",
        stderr_of(&assert)
    );
    assert!(sealroom_containers_of_step("slow-kill").is_empty());
    assert_eq!(
        scratch_volumes_of_step("slow-kill"),
        0,
        "the killed step's /tmp and /build went with its container"
    );
    assert_eq!(
        std::fs::read_to_string(project.out().join("ok")).unwrap(),
        "ok\n"
    );
}

/// How many volumes the engine holds that sealroom made for a step of this name.
fn scratch_volumes_of_step(step: &str) -> usize {
    let listed = Command::new("docker")
        .args(["volume", "ls", "-q", "--filter"])
        .arg(format!("label={}={step}", sealroom::sandbox::STEP_LABEL))
        .output()
        .expect("docker runs");
    assert!(listed.status.success());
    String::from_utf8_lossy(&listed.stdout).lines().count()
}

/// Mounts a tmpfs of `size` at `path` for the life of the guard (the tests run as root).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(path: &std::path::Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(path).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .expect("mount runs");
        assert!(
            status.success(),
            "mounting a tmpfs needs root, which the test suite runs as"
        );
        Tmpfs(path.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn docker_a_full_store_is_a_clear_error_and_the_store_still_verifies() {
    let project = Project::new();
    let store = project.path("small-store");
    // The step's /out (a temp dir in the store) fits; storing it as a blob as well does not.
    let _tmpfs = Tmpfs::mount(&store, "2m");
    let spec = project.write_spec(
        &busybox().to_string(),
        "[[step]]\nname = \"fill\"\nrun = [\"sh\", \"-c\", \"head -c 1200000 /dev/urandom > /out/big\"]\nartifacts = [\"big\"]\n",
    );
    let assert = common::sealroom()
        .arg("build")
        .arg(&spec)
        .arg("--store")
        .arg(&store)
        .arg("--out")
        .arg(project.out())
        .assert()
        .failure();
    let stderr = stderr_of(&assert);
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert!(!project.out().exists());
    common::sealroom()
        .args(["store", "verify", "--store"])
        .arg(&store)
        .assert()
        .success();
    assert!(
        files_below(&store.join("v1/tmp")).is_empty(),
        "nothing half-written left in tmp"
    );
}
