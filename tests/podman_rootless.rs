//! A rootless engine: Podman's Docker-compatible socket (`podman system service`), run by a
//! non-root user with subordinate uid and gid ranges, is the engine sealroom builds on
//! (`DOCKER_HOST=unix://…`). The hardening probe of `tests/docker_hardening.rs` passes there, and
//! the step's uid 1000 is, on the host, a uid of the user's subordinate range: neither 1000 nor
//! root. Needs root (it makes the user and its ranges), `podman` and `newuidmap`/`newgidmap`
//! (Debian's `podman` and `uidmap`; `scripts/ensure-packages.sh` installs them); with `CI=true` a
//! missing one fails the test.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Project;
use common::run_ok as run;

/// The user the test runs Podman as, made when it does not exist.
const USER: &str = "sealroom-podman";
/// The size of the subordinate uid and gid ranges the test gives it.
const RANGE: u64 = 65536;

fn runnable() -> bool {
    let install = "apt-get install podman uidmap (scripts/ensure-packages.sh)";
    let ci = std::env::var("CI").as_deref() == Ok("true");
    if !rustix::process::geteuid().is_root() {
        assert!(
            !ci,
            "this test makes a user with subordinate id ranges and needs root; CI=true: tests never skip there"
        );
        eprintln!("notice: not root; skipping the rootless Podman test");
        return false;
    }
    for helper in ["/usr/bin/newuidmap", "/usr/bin/newgidmap"] {
        if !Path::new(helper).is_file() {
            assert!(
                !ci,
                "{helper} is missing and CI=true: tests never skip there ({install})"
            );
            eprintln!("notice: {helper} is missing; skipping ({install})");
            return false;
        }
    }
    common::tool_available("podman", "--version", install)
}

/// The user's uid and gid, making it (a system user with a home for Podman's storage) if needed.
fn podman_user() -> (u32, u32) {
    let exists = Command::new("id")
        .args(["-u", USER])
        .output()
        .unwrap()
        .status
        .success();
    if !exists {
        run(
            "useradd",
            &[
                "--system",
                "--create-home",
                "--home-dir",
                &format!("/var/lib/{USER}"),
                "--shell",
                "/usr/sbin/nologin",
                USER,
            ],
        );
    }
    let id = |flag: &str| -> u32 {
        String::from_utf8_lossy(&run("id", &[flag, USER]).stdout)
            .trim()
            .parse()
            .expect("id prints a number")
    };
    (id("-u"), id("-g"))
}

/// The start of the user's range in `file` (`/etc/subuid` or `/etc/subgid`), adding a range of
/// [`RANGE`] ids above every range there (and above 100000) when the user has none.
fn subordinate_range(file: &str) -> u64 {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let mut end = 100_000;
    for line in text.lines() {
        let fields: Vec<&str> = line.split(':').collect();
        let [name, start, count] = fields[..] else {
            continue;
        };
        let (Ok(start), Ok(count)) = (start.parse::<u64>(), count.parse::<u64>()) else {
            continue;
        };
        if name == USER && count >= RANGE {
            return start;
        }
        end = end.max(start + count);
    }
    let mut updated = text;
    if !updated.is_empty() && !updated.ends_with('\n') {
        updated.push('\n');
    }
    updated.push_str(&format!("{USER}:{end}:{RANGE}\n"));
    std::fs::write(file, updated).unwrap();
    end
}

/// `podman system service` as [`USER`], with a home (Podman's storage and its database) and a
/// runtime directory of its own in a temp dir, so that nothing of it outlives the test and two
/// test processes do not share it: Podman's database remembers the runtime directory of its
/// first run. Stopped (the processes the test started, by their ids) and its directory removed
/// when dropped.
struct PodmanService {
    child: Child,
    state: tempfile::TempDir,
    socket: PathBuf,
}

impl PodmanService {
    fn start(uid: u32, gid: u32) -> PodmanService {
        use std::os::unix::fs::PermissionsExt;
        let state = tempfile::tempdir().unwrap();
        std::fs::set_permissions(state.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
        for sub in ["home", "run"] {
            std::fs::create_dir(state.path().join(sub)).unwrap();
            std::os::unix::fs::chown(state.path().join(sub), Some(uid), Some(gid)).unwrap();
        }
        let socket = state.path().join("run/podman.sock");
        let log = std::fs::File::create(state.path().join("service.log")).unwrap();
        let child = Command::new("setpriv")
            .args([
                &format!("--reuid={uid}"),
                &format!("--regid={gid}"),
                "--init-groups",
                "env",
                "-i",
            ])
            .arg(format!("HOME={}", state.path().join("home").display()))
            .arg(format!(
                "XDG_RUNTIME_DIR={}",
                state.path().join("run").display()
            ))
            .arg("PATH=/usr/sbin:/usr/bin:/sbin:/bin")
            .args(["podman", "system", "service", "--time=0"])
            .arg(format!("unix://{}", socket.display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("setpriv runs podman");
        let mut service = PodmanService {
            child,
            state,
            socket,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !service.answers() {
            if let Some(status) = service.child.try_wait().unwrap() {
                panic!("podman system service exited ({status}): {}", service.log());
            }
            assert!(
                Instant::now() < deadline,
                "podman system service did not answer on {} within 60 s: {}",
                service.socket.display(),
                service.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        service
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.state.path().join("service.log")).unwrap_or_default()
    }

    /// Whether `GET /_ping` on the socket answers OK.
    fn answers(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut stream) = std::os::unix::net::UnixStream::connect(&self.socket) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        if stream
            .write_all(b"GET /_ping HTTP/1.0\r\nHost: podman\r\n\r\n")
            .is_err()
        {
            return false;
        }
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer.starts_with("HTTP/1.") && answer.contains(" 200 ")
    }

    /// The pid of Podman's pause process, from the runtime directory.
    fn pause_pid(&self) -> Option<u32> {
        let pause = self.state.path().join("run/libpod/tmp/pause.pid");
        std::fs::read_to_string(pause).ok()?.trim().parse().ok()
    }

    fn docker_host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }
}

impl Drop for PodmanService {
    fn drop(&mut self) {
        use rustix::process::{Pid, Signal, kill_process};
        let signal = |pid: u32, signal: Signal| {
            if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
                let _ = kill_process(pid, signal);
            }
        };
        // Podman keeps the user namespace open with a pause process of its own, named in the
        // runtime directory (read before the service stops: it removes the file); it goes with
        // the service. Root removes the directory after.
        let pause = self.pause_pid();
        // Rootless, `podman` re-executes itself in the user's user namespace: the service is
        // that child, with the same command line, and outlives the parent the test started.
        signal(self.child.id(), Signal::TERM);
        for pid in processes_naming(&self.socket) {
            signal(pid, Signal::TERM);
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while !processes_naming(&self.socket).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        for pid in processes_naming(&self.socket) {
            signal(pid, Signal::KILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(pid) = pause {
            signal(pid, Signal::KILL);
        }
    }
}

/// The pids of running processes (not zombies) with `path` in their command line.
fn processes_naming(path: &Path) -> Vec<u32> {
    let wanted = path.as_os_str().as_encoded_bytes();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|line| line.windows(wanted.len()).any(|part| part == wanted))
        })
        .collect()
}

/// A project the engine's user can reach: its directory and the store are traversable (0711),
/// as the store's root must be for a rootless engine to bind-mount a step's inputs and `/out`.
fn reachable_project() -> Project {
    use std::os::unix::fs::PermissionsExt;
    let project = Project::new();
    std::fs::set_permissions(project.dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    std::fs::create_dir(project.store()).unwrap();
    std::fs::set_permissions(project.store(), std::fs::Permissions::from_mode(0o711)).unwrap();
    project
}

/// `sealroom image import` of the busybox test tree into the engine at `host`; the pinned
/// reference it prints.
fn import_busybox(project: &Project, host: &str) -> String {
    let rootfs = project.path("busybox-rootfs");
    common::image::busybox_rootfs(&rootfs);
    let imported = Command::new(env!("CARGO_BIN_EXE_sealroom"))
        .args(["image", "import"])
        .arg(&rootfs)
        .args(["--name", common::image::TEST_IMAGE_NAME, "--store"])
        .arg(project.store())
        .env("DOCKER_HOST", host)
        .env_remove("SEALROOM_STORE")
        .output()
        .unwrap();
    assert!(
        imported.status.success(),
        "sealroom image import into the Podman engine: {}",
        String::from_utf8_lossy(&imported.stderr)
    );
    String::from_utf8_lossy(&imported.stdout).trim().to_string()
}

/// The pids of processes whose command line is exactly `argv`.
fn processes_running(argv: &[&str]) -> Vec<u32> {
    let wanted: Vec<u8> = argv
        .iter()
        .flat_map(|arg| [arg.as_bytes(), b"\0"].concat())
        .collect();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == wanted))
        .collect()
}

/// The `Uid:` line of `/proc/PID/status`: real, effective, saved and filesystem uid.
fn host_uids(pid: u32) -> Vec<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .expect("a Uid line")
        .split_whitespace()
        .map(|uid| uid.parse().unwrap())
        .collect()
}

#[test]
fn podman_rootless_passes_the_hardening_probe_and_maps_uid_1000_to_a_subordinate_uid() {
    if !runnable() {
        return;
    }
    let (uid, gid) = podman_user();
    let subuid = subordinate_range("/etc/subuid");
    subordinate_range("/etc/subgid");
    let service = PodmanService::start(uid, gid);
    let host = service.docker_host();
    let project = reachable_project();
    let image = import_busybox(&project, &host);
    assert!(
        image.starts_with("sealroom-test/busybox@sha256:"),
        "{image}"
    );

    // The probe of tests/docker_hardening.rs, with the root filesystem and the inputs tried too.
    let spec = project.write_spec(
        &image,
        r#"[[step]]
name = "probe"
inputs = ["src"]
run = ["sh", "-c", "grep CapEff /proc/self/status > /out/caps; grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status > /out/confined; id -u > /out/uid; ls /sys/class/net > /out/net; if touch /x 2>/dev/null; then echo writable; else echo read-only; fi > /out/root; if touch /inputs/src/x 2>/dev/null; then echo writable; else echo read-only; fi > /out/inputs; cat /inputs/src/greeting.txt > /out/greeting"]
artifacts = ["caps", "confined", "uid", "net", "root", "inputs", "greeting"]
"#,
    );
    let built = project
        .build_command(&spec)
        .env("DOCKER_HOST", &host)
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "the build on rootless Podman failed: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    let read = |name: &str| std::fs::read_to_string(project.out().join(name)).unwrap();
    assert_eq!(read("caps"), "CapEff:\t0000000000000000\n");
    assert_eq!(read("confined"), "NoNewPrivs:\t1\nSeccomp:\t2\n");
    assert_eq!(read("uid"), "1000\n");
    assert_eq!(read("net"), "lo\n");
    assert_eq!(read("root"), "read-only\n");
    assert_eq!(read("inputs"), "read-only\n");
    assert_eq!(read("greeting"), "hello from source\n");

    // The step's uid 1000 on the host: read from /proc while the step sleeps.
    let project = reachable_project();
    let argv = ["sleep", "23"];
    let spec = project.write_spec(
        &image,
        "[[step]]\nname = \"sleeper\"\nrun = [\"sh\", \"-c\", \"sleep 23; id -u > /out/uid\"]\nartifacts = [\"uid\"]\n",
    );
    let mut build = project
        .build_process(&spec)
        .env("DOCKER_HOST", &host)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    // The sleep of this engine's container: in a user namespace whose uid 0 is the user's uid.
    let ours = |pid: &u32| {
        std::fs::read_to_string(format!("/proc/{pid}/uid_map")).is_ok_and(|map| {
            map.split_whitespace().take(2).collect::<Vec<_>>() == ["0", &uid.to_string()]
        })
    };
    let pid = loop {
        if let Some(pid) = processes_running(&argv).into_iter().find(ours) {
            break pid;
        }
        if let Some(status) = build.try_wait().unwrap() {
            panic!("the build ended ({status}) before its step was seen running");
        }
        assert!(
            Instant::now() < deadline,
            "the step's `sleep 23` did not show up in /proc within 20 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let uids = host_uids(pid);
    let expected = subuid + 1000 - 1;
    assert_eq!(
        uids,
        vec![expected; 4],
        "uid 1000 in the step is host uid {expected} (the user's range starts at {subuid})"
    );
    assert!(
        uids.iter()
            .all(|&host_uid| host_uid != 1000 && host_uid != 0)
    );
    let map = std::fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap();
    assert!(
        map.split_whitespace().collect::<Vec<_>>()
            == [
                "0",
                &uid.to_string(),
                "1",
                "1",
                &subuid.to_string(),
                &RANGE.to_string()
            ],
        "the step's user namespace maps only the user's own ids: {map}"
    );
    let status = build.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(build.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "the sleeper build failed: {stderr}");
    assert_eq!(
        std::fs::read_to_string(project.out().join("uid")).unwrap(),
        "1000\n"
    );
    let socket = service.socket.clone();
    let pause = service
        .pause_pid()
        .expect("Podman's pause process is named");
    drop(service);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        processes_naming(&socket).is_empty(),
        "the Podman service is stopped with the test"
    );
    // Gone, or a zombie waiting for init: not running.
    let state = std::fs::read_to_string(format!("/proc/{pause}/stat")).unwrap_or_default();
    assert!(
        state.is_empty()
            || state
                .rsplit(") ")
                .next()
                .is_some_and(|rest| rest.starts_with('Z')),
        "Podman's pause process {pause} is stopped with the test: {state}"
    );
}
