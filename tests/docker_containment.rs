//! A step cannot outgrow what sealroom bounds, and what a killed sealroom leaves running does not
//! outlive its deadline. Real Docker, the busybox image; each test is the attack it stops: an
//! endless log line, terminal escapes, a SIGKILLed build, two builds in different PID
//! namespaces on one engine, a full `/dev/shm`, an image that declares a `VOLUME`.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::{Project, busybox, sealroom, sealroom_containers_of_step, stderr_of};
use sealroom::sandbox::{DEADLINE_LABEL, STEP_LABEL};

/// A project whose spec has one step `name` running `run` (a TOML array) with `extra` lines.
fn one_step(name: &str, run: &str, extra: &str) -> (Project, PathBuf) {
    let project = Project::new();
    let spec = project.write_spec(
        &busybox().to_string(),
        &format!("[[step]]\nname = \"{name}\"\ninputs = [\"src\"]\nrun = {run}\n{extra}\n"),
    );
    (project, spec)
}

/// The peak resident set (VmHWM, KiB) of a running process, if it still runs.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()
}

#[test]
fn docker_an_endless_line_is_cut_on_the_terminal_and_sealroom_memory_stays_bounded() {
    // 100 MB without a newline, then a pause in which the finished flood's peak is read.
    let (project, spec) = one_step(
        "flood",
        r#"["sh", "-c", "head -c 100000000 /dev/zero | tr '\\000' a; sleep 2; echo done > /out/done"]"#,
        "artifacts = [\"done\"]",
    );
    let stderr_path = project.path("flood.err");
    let mut child = project
        .build_process(&spec)
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    // VmHWM only grows, so the last value read before the exit is the peak up to then.
    let mut peak = 0;
    let status = loop {
        if let Some(rss) = peak_rss_kib(child.id()) {
            peak = peak.max(rss);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let stderr = std::fs::read(&stderr_path).unwrap();
    let tail = String::from_utf8_lossy(&stderr[stderr.len().saturating_sub(4096)..]).into_owned();
    assert!(status.success(), "{status}: {tail}");
    assert!(peak > 0, "the peak RSS was never read");
    // The terminal got its documented share, not the 100 MB.
    let printed = sealroom::sandbox::docker::LOG_PRINTED_BYTES;
    assert!(
        (stderr.len() as u64) < printed + 64 * 1024,
        "stderr has {} bytes; the terminal limit is {printed}",
        stderr.len()
    );
    let text = String::from_utf8_lossy(&stderr);
    assert!(
        text.contains("[flood] [sealroom: log truncated here"),
        "no cut note: {tail}"
    );
    assert!(
        tail.contains("log truncated: ")
            && tail.contains("more bytes of this step's log were not printed"),
        "no note of what was dropped at the end: {tail}"
    );
    // What sealroom holds of a log is a 64 KiB piece and the last lines: its memory does not
    // grow with the line (the 100 MB would show here if it did).
    assert!(peak < 96 * 1024, "sealroom's peak RSS was {peak} KiB");
    eprintln!("peak RSS of sealroom under a 100 MB line: {peak} KiB");
}

#[test]
fn docker_terminal_escapes_in_a_step_log_never_reach_the_terminal_raw() {
    let (project, spec) = one_step(
        "noisy",
        r#"["sh", "-c", "printf 'tty-probe-open \\033]2;step-owns-your-title\\007 \\033[1;31mred\\033[0m\\rfake tty-probe-close\\n'; echo fine > /out/noisy.txt"]"#,
        "artifacts = [\"noisy.txt\"]",
    );
    let assert = project.build(&spec).success();
    let stderr = assert.get_output().stderr.clone();
    let text = String::from_utf8_lossy(&stderr);
    let line = text
        .lines()
        .find(|line| line.contains("tty-probe-open"))
        .unwrap_or_else(|| panic!("the step's line is not on stderr: {text}"));
    assert_eq!(
        line,
        r"[noisy] tty-probe-open \x1b]2;step-owns-your-title\x07 \x1b[1;31mred\x1b[0m\x0dfake tty-probe-close"
    );
    for control in [0x1b_u8, 0x07, b'\r'] {
        assert!(
            !stderr.contains(&control),
            "stderr holds a raw 0x{control:02x}"
        );
    }
    // The log kept in the store has the bytes exactly as the step wrote them.
    let raw: &[u8] =
        b"tty-probe-open \x1b]2;step-owns-your-title\x07 \x1b[1;31mred\x1b[0m\rfake tty-probe-close\n";
    let kept = walkdir::WalkDir::new(project.store())
        .into_iter()
        .filter_map(Result::ok)
        .filter(|entry| entry.file_type().is_file())
        .any(|entry| std::fs::read(entry.path()).is_ok_and(|bytes| bytes == raw));
    assert!(kept, "no file in the store holds the step's exact log");
}

/// The labels of the container `id` (empty when it is gone).
fn container_labels(id: &str) -> Option<HashMap<String, String>> {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let docker = common::image::docker().await;
        let inspected = docker.inspect_container(id, None).await.ok()?;
        inspected.config?.labels
    })
}

/// The one container of step `step`, once it exists (the build is starting it).
fn wait_for_container(step: &str, build: &mut Child) -> String {
    loop {
        if let Some(id) = sealroom_containers_of_step(step).pop() {
            return id;
        }
        if let Some(status) = build.try_wait().unwrap() {
            panic!("the build ended ({status}) before its step's container appeared");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Removes what a test left, if the code under test did not (so a failing test leaves nothing).
fn force_remove(id: &str) {
    let _ = Command::new("docker")
        .args(["rm", "-f", "-v", id])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn store_gc(store: &Path) -> assert_cmd::assert::Assert {
    sealroom()
        .args(["store", "gc", "--store"])
        .arg(store)
        .assert()
        .success()
}

/// Held by the tests that make PID namespaces. A dead namespace's inode can be given to the next
/// one, whose pid 1 then (rightly) takes the dead one's pid 1 for a dead owner on this host and
/// removes its containers: so the namespaces of one test must not follow those of another.
static PID_NAMESPACES: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// `sealroom build` of `spec` in a PID namespace of its own (with its own `/proc`), as a CI job
/// in its own container would run it; stdout and stderr to files in the project.
fn build_in_own_pid_namespace(project: &Project, spec: &Path, tag: &str) -> Child {
    Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc"])
        .arg(env!("CARGO_BIN_EXE_sealroom"))
        .arg("build")
        .arg(spec)
        .arg("--store")
        .arg(project.store())
        .arg("--out")
        .arg(project.out())
        .env_remove("SEALROOM_STORE")
        .stdout(std::fs::File::create(project.path(&format!("{tag}.out"))).unwrap())
        .stderr(std::fs::File::create(project.path(&format!("{tag}.err"))).unwrap())
        .spawn()
        .expect("unshare runs (util-linux, as root)")
}

/// The pid (as this test sees it) of the process `unshare --fork` started.
fn forked_child(unshare: &Child) -> u32 {
    let pid = unshare.id();
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap();
    children
        .split_whitespace()
        .next()
        .expect("unshare forked its child")
        .parse()
        .unwrap()
}

#[test]
fn docker_a_sigkilled_build_in_another_pid_namespace_is_removed_by_store_gc_after_its_deadline() {
    let (project, spec) = one_step(
        "nap-foreign",
        r#"["sleep", "300"]"#,
        r#"limits = { timeout = "8s" }"#,
    );
    let _namespaces = PID_NAMESPACES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut unshare = build_in_own_pid_namespace(&project, &spec, "build");
    let id = wait_for_container("nap-foreign", &mut unshare);
    // SIGKILL: no handler runs, the step's own timer dies with the process.
    let sealroom_pid = forked_child(&unshare);
    Command::new("kill")
        .args(["-KILL", &sealroom_pid.to_string()])
        .status()
        .unwrap();
    unshare.wait().unwrap();
    let labels = container_labels(&id).expect("the container outlives its killed owner");
    let deadline: u64 = labels[DEADLINE_LABEL].parse().unwrap();
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };

    // Its owner was in another PID namespace: before the deadline, nobody here can tell it is
    // dead, so `store gc` leaves it alone.
    store_gc(&project.store());
    if now() < deadline {
        assert!(
            container_labels(&id).is_some(),
            "removed before its deadline although its owner's namespace is not ours"
        );
    }
    while now() <= deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // Past the deadline, any sealroom command removes it, even one that runs no step.
    let gc = store_gc(&project.store());
    let gone = container_labels(&id).is_none();
    force_remove(&id);
    // (Another sealroom on this engine, past the deadline, may have been first: either way.)
    assert!(gone, "still there after its deadline: {}", stderr_of(&gc));
}

#[test]
fn docker_a_sigkilled_build_whose_pid_is_still_a_zombie_is_removed_by_store_gc() {
    let (project, spec) = one_step(
        "nap-zombie",
        r#"["sleep", "300"]"#,
        r#"limits = { timeout = "5m" }"#,
    );
    let mut build = project
        .build_process(&spec)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let id = wait_for_container("nap-zombie", &mut build);
    // While the build runs, `store gc` (of another store: the build holds its own) leaves its
    // container alone.
    store_gc(&project.path("other-store"));
    assert!(
        container_labels(&id).is_some(),
        "store gc removed a running build's container"
    );
    // Killed and not reaped: its pid and start time are still in /proc, as a zombie.
    build.kill().unwrap();
    let state = loop {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", build.id())).unwrap();
        if stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z'))
        {
            break stat;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let gc = store_gc(&project.store());
    let gone = container_labels(&id).is_none();
    build.wait().unwrap();
    force_remove(&id);
    assert!(
        gone,
        "the dead build's container is still there (owner's stat: {state}); {}",
        stderr_of(&gc)
    );
}

#[test]
fn docker_builds_in_two_pid_namespaces_on_one_engine_both_succeed() {
    let nap = |name: &str| {
        one_step(
            name,
            r#"["sh", "-c", "sleep 4; echo ok > /out/ok"]"#,
            "artifacts = [\"ok\"]",
        )
    };
    let _namespaces = PID_NAMESPACES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let (first, first_spec) = nap("nap-first");
    let (second, second_spec) = nap("nap-second");
    // In its own namespace each sealroom is pid 1; to the other, the first's pid 1 is itself
    // with another start time.
    let mut first_build = build_in_own_pid_namespace(&first, &first_spec, "build");
    let first_id = wait_for_container("nap-first", &mut first_build);
    // The second starts while the first's step runs, and looks for leftovers when it connects.
    let mut second_build = build_in_own_pid_namespace(&second, &second_spec, "build");
    let first_status = first_build.wait().unwrap();
    let second_status = second_build.wait().unwrap();
    force_remove(&first_id);
    let log = |project: &Project| std::fs::read_to_string(project.path("build.err")).unwrap();
    assert!(first_status.success(), "first build: {}", log(&first));
    assert!(second_status.success(), "second build: {}", log(&second));
    for project in [&first, &second] {
        assert_eq!(
            std::fs::read_to_string(project.out().join("ok")).unwrap(),
            "ok\n"
        );
        assert!(
            !log(project).contains("left behind"),
            "a build took the other's container for a leftover: {}",
            log(project)
        );
    }
}

/// The size docs/sandbox.md gives `/dev/shm`, in MiB: the first `<N> MiB` after `/dev/shm` on
/// a line (as a reader, and the outside check, would read it).
fn documented_shm_mib() -> u64 {
    let docs =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/sandbox.md")).unwrap();
    docs.lines()
        .filter_map(|line| line.split_once("/dev/shm").map(|(_, after)| after))
        .find_map(|after| {
            let (number, _) = after.split_once(" MiB")?;
            number
                .rsplit(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .expect("docs/sandbox.md gives /dev/shm a size in MiB")
}

#[test]
fn docker_dev_shm_holds_no_more_than_documented_nor_more_than_scratch() {
    let documented = documented_shm_mib();
    assert_eq!(
        documented * 1024 * 1024,
        sealroom::sandbox::record::DEV_SHM_BYTES
    );
    // Fill /dev/shm with 1 MiB files until a write fails; report how many fit.
    let fill = |limit: u64| {
        format!(
            r#"["sh", "-c", "i=0; while [ $i -lt {limit} ]; do head -c 1048576 /dev/zero > /dev/shm/fill.$i 2>/dev/null || break; i=$((i+1)); done; echo $i > /out/mib"]"#
        )
    };
    let mib_written = |project: &Project| -> u64 {
        std::fs::read_to_string(project.out().join("mib"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let (project, spec) = one_step("fill-shm", &fill(documented + 16), "artifacts = [\"mib\"]");
    project.build(&spec).success();
    let wrote = mib_written(&project);
    assert!(
        wrote <= documented && wrote + 2 >= documented,
        "wrote {wrote} MiB into a /dev/shm documented as {documented} MiB"
    );
    // A step with less scratch gets a /dev/shm no bigger than its scratch.
    let (project, spec) = one_step(
        "fill-small-shm",
        &fill(40),
        "artifacts = [\"mib\"]\nlimits = { scratch = \"16MiB\" }",
    );
    project.build(&spec).success();
    let wrote = mib_written(&project);
    assert!(
        wrote <= 16,
        "wrote {wrote} MiB into the /dev/shm of a step with 16MiB of scratch"
    );
}

/// An image made from the busybox test image that declares `VOLUME /data`, tagged with a name
/// of this test process; removed by [`ImageWithVolume::drop`].
struct ImageWithVolume {
    reference: String,
    id: String,
}

impl ImageWithVolume {
    fn new() -> Self {
        let base = busybox();
        let repository = "sealroom-test/with-volume";
        let tag = format!("containment-{}", std::process::id());
        let id = tokio::runtime::Runtime::new().unwrap().block_on(async {
            let docker = common::image::docker().await;
            let created = docker
                .create_container(
                    None::<bollard::query_parameters::CreateContainerOptions>,
                    bollard::models::ContainerCreateBody {
                        image: Some(base.digest.to_string()),
                        cmd: Some(vec!["true".to_string()]),
                        labels: Some(HashMap::from([(
                            "dev.sealroom.test".to_string(),
                            "containment-volume-image".to_string(),
                        )])),
                        ..Default::default()
                    },
                )
                .await
                .expect("a container from the busybox image");
            let committed = docker
                .commit_container(
                    bollard::query_parameters::CommitContainerOptionsBuilder::new()
                        .container(&created.id)
                        .repo(repository)
                        .tag(&tag)
                        .build(),
                    bollard::models::ContainerConfig {
                        volumes: Some(vec!["/data".to_string()]),
                        ..Default::default()
                    },
                )
                .await;
            let _ = docker
                .remove_container(
                    &created.id,
                    None::<bollard::query_parameters::RemoveContainerOptions>,
                )
                .await;
            committed.expect("the image commits").id
        });
        let digest = id.trim_start_matches("sha256:");
        Self {
            reference: format!("{repository}@sha256:{digest}"),
            id,
        }
    }
}

impl Drop for ImageWithVolume {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["image", "rm", "-f", &self.id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

#[test]
fn docker_an_image_that_declares_a_volume_is_refused_before_any_step_runs() {
    let image = ImageWithVolume::new();
    let project = Project::new();
    let spec = project.write_spec(
        &image.reference,
        "[[step]]\nname = \"write-volume\"\nrun = [\"sh\", \"-c\", \"echo persisted > /data/x && echo x > /out/x\"]\nartifacts = [\"x\"]\n",
    );
    let assert = project.build(&spec).code(1);
    let stderr = stderr_of(&assert);
    assert!(
        stderr.contains(&format!(
            "base image `{}` declares VOLUME /data",
            image.reference
        )) && stderr.contains("hint: rebuild the image without `VOLUME`"),
        "{stderr}"
    );
    assert!(!project.out().join("x").exists(), "the step ran");
    assert!(sealroom_containers_of_step("write-volume").is_empty());
    // No anonymous volume of a container of ours was made.
    let volumes = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let docker = common::image::docker().await;
        let filters = HashMap::from([("label", vec![format!("{STEP_LABEL}=write-volume")])]);
        docker
            .list_volumes(Some(
                bollard::query_parameters::ListVolumesOptionsBuilder::new()
                    .filters(&filters)
                    .build(),
            ))
            .await
            .unwrap()
            .volumes
            .unwrap_or_default()
    });
    assert!(volumes.is_empty(), "{volumes:?}");
}

#[test]
fn store_gc_and_verify_go_on_silently_when_the_engine_is_unreachable() {
    let project = Project::new();
    let missing = project.path("no-engine.sock");
    for command in ["gc", "verify"] {
        let assert = sealroom()
            .args(["store", command, "--store"])
            .arg(project.store())
            .env("DOCKER_HOST", format!("unix://{}", missing.display()))
            .assert()
            .success();
        let stderr = stderr_of(&assert);
        assert!(
            !stderr.contains("engine") && !stderr.contains("container"),
            "store {command}: {stderr}"
        );
        // Said at debug level, for whoever asks.
        let assert = sealroom()
            .args(["store", command, "--store"])
            .arg(project.store())
            .env("DOCKER_HOST", format!("unix://{}", missing.display()))
            .env("SEALROOM_LOG", "debug")
            .assert()
            .success();
        let stderr = stderr_of(&assert);
        assert!(
            stderr.contains("left containers alone: cannot reach the container engine"),
            "store {command}: {stderr}"
        );
    }
}
