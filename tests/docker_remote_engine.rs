//! Steps on a remote engine. The test starts a second `dockerd` of its own: its own data and
//! exec roots, pid file, containerd namespace and bridge (made with `ip link add` and removed
//! after, so it never touches the main engine's `docker0`), TLS on a loopback port with
//! certificates made by openssl here, and its own mount namespace in which the directory
//! holding everything sealroom touches (spec, sources, stores, `--out`, `TMPDIR`) is an empty
//! tmpfs: a bind mount of sealroom's paths shows nothing there, so only volumes and the archive
//! endpoint can carry a step's files. A multi-step build through `DOCKER_HOST` + TLS gives the
//! same output trees and artifacts as the local engine, with the same hardening; no container
//! or volume is left on either engine; a missing client certificate or an unknown CA is exit 70
//! with the TLS layer's words; the same build over `ssh://` (an sshd of the test's own on
//! 127.0.0.1) gives the same trees; and the main engine still runs a bridge-network container.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::run_ok as run;
use common::{busybox, free_port, tool_available};

/// Whether this test can run here: root (a bridge, a mount namespace) and the tools. Under
/// `CI=true` anything missing fails the test; elsewhere it says why and returns.
fn runnable() -> bool {
    let root = rustix::process::geteuid().is_root();
    if !root {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "this test starts a second dockerd (a bridge, a mount namespace) and needs root; CI=true: tests never skip there"
        );
        eprintln!("notice: not root; skipping the remote engine test");
        return false;
    }
    let install = "apt-get install docker.io iproute2 util-linux openssl openssh-client openssh-server (scripts/ensure-packages.sh)";
    if !Path::new("/usr/sbin/sshd").is_file() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "/usr/sbin/sshd is missing and CI=true: tests never skip there ({install})"
        );
        eprintln!("notice: /usr/sbin/sshd is missing; skipping ({install})");
        return false;
    }
    tool_available("dockerd", "--version", install)
        && tool_available("ip", "-V", install)
        && tool_available("unshare", "--version", install)
        && tool_available("openssl", "version", install)
        && tool_available("docker", "--version", install)
        && tool_available("ssh", "-V", install)
}

/// A CA, a server certificate for IP 127.0.0.1 and a client certificate, in `dir`. Each of
/// these is a DOCKER_CERT_PATH: `client` with all three; `nocert` with only the CA; `stranger`
/// with the CA and a client certificate of another CA, which the engine does not trust;
/// `wrongca` with the client certificate and another CA, which did not sign the engine's.
fn make_certificates(dir: &Path) {
    for sub in ["client", "nocert", "stranger", "wrongca"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let new_ca = |name: &str| {
        run(
            "openssl",
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN=sealroom-test-{name}"),
                "-keyout",
                &path(&format!("{name}-key.pem")),
                "-out",
                &path(&format!("{name}.pem")),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
    };
    let signed = |ca: &str, name: &str, subject: &str, extensions: &str, key: &str, cert: &str| {
        std::fs::write(path(&format!("{name}.ext")), extensions).unwrap();
        run(
            "openssl",
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                subject,
                "-keyout",
                key,
                "-out",
                &path(&format!("{name}.csr")),
            ],
        );
        run(
            "openssl",
            &[
                "x509",
                "-req",
                "-days",
                "2",
                "-in",
                &path(&format!("{name}.csr")),
                "-CA",
                &path(&format!("{ca}.pem")),
                "-CAkey",
                &path(&format!("{ca}-key.pem")),
                "-CAcreateserial",
                "-extfile",
                &path(&format!("{name}.ext")),
                "-out",
                cert,
            ],
        );
    };
    new_ca("ca");
    new_ca("other-ca");
    signed(
        "ca",
        "server",
        "/CN=127.0.0.1",
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        &path("server-key.pem"),
        &path("server-cert.pem"),
    );
    signed(
        "ca",
        "client",
        "/CN=sealroom-test-client",
        "extendedKeyUsage=clientAuth\n",
        &path("client/key.pem"),
        &path("client/cert.pem"),
    );
    signed(
        "other-ca",
        "stranger",
        "/CN=sealroom-test-stranger",
        "extendedKeyUsage=clientAuth\n",
        &path("stranger/key.pem"),
        &path("stranger/cert.pem"),
    );
    std::fs::copy(dir.join("ca.pem"), dir.join("client/ca.pem")).unwrap();
    std::fs::copy(dir.join("ca.pem"), dir.join("nocert/ca.pem")).unwrap();
    std::fs::copy(dir.join("ca.pem"), dir.join("stranger/ca.pem")).unwrap();
    for file in ["cert.pem", "key.pem"] {
        std::fs::copy(
            dir.join("client").join(file),
            dir.join("wrongca").join(file),
        )
        .unwrap();
    }
    std::fs::copy(dir.join("other-ca.pem"), dir.join("wrongca/ca.pem")).unwrap();
}

/// The second engine: a dockerd this test started, and what to stop and remove after it.
struct SecondEngine {
    dir: PathBuf,
    child: Child,
    bridge: String,
    port: u16,
    /// `mnt:[…]` of its mount namespace, whose every process is ended when it stops.
    namespace: String,
}

impl SecondEngine {
    /// Starts it with its state in `dir` (certificates in `dir/tls`), every path of `hide`
    /// an empty tmpfs in its mount namespace.
    fn start(dir: &Path, hide: &Path) -> Self {
        let driver = String::from_utf8(run("docker", &["info", "--format", "{{.Driver}}"]).stdout)
            .unwrap()
            .trim()
            .to_string();
        std::fs::write(
            dir.join("daemon.json"),
            format!("{{\"storage-driver\": \"{driver}\"}}\n"),
        )
        .unwrap();
        for sub in ["root", "exec"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        // Its own bridge: with `--bridge=none` a second dockerd deletes the host's docker0,
        // and every bridge-network container of the main engine fails after it.
        let bridge = format!("srt{}", std::process::id());
        let bridge = bridge[..bridge.len().min(15)].to_string();
        run("ip", &["link", "add", &bridge, "type", "bridge"]);
        run("ip", &["link", "set", &bridge, "up"]);
        let port = free_port();
        let d = dir.display();
        // A system containerd would be shared (and run containers outside the namespace):
        // hidden, so the daemon starts its own.
        let hide_containerd = if Path::new("/run/containerd/containerd.sock").exists() {
            "mount -t tmpfs -o mode=711 sealroom-test-run /run/containerd && "
        } else {
            ""
        };
        let script = format!(
            "mount -t tmpfs -o size=4m,mode=755 sealroom-test-hide '{hide}' && {hide_containerd}\
             exec dockerd --config-file '{d}/daemon.json' -H 'unix://{d}/docker.sock' \
             -H 'tcp://127.0.0.1:{port}' --tlsverify --tlscacert '{d}/tls/ca.pem' \
             --tlscert '{d}/tls/server-cert.pem' --tlskey '{d}/tls/server-key.pem' \
             --data-root '{d}/root' --exec-root '{d}/exec' --pidfile '{d}/dockerd.pid' \
             --containerd-namespace sealroom-test-moby --containerd-plugins-namespace sealroom-test-plugins \
             --bridge '{bridge}' --iptables=false --ip6tables=false --ip-masq=false",
            hide = hide.display()
        );
        let log = std::fs::File::create(dir.join("dockerd.log")).unwrap();
        let child = Command::new("setsid")
            .args([
                "unshare",
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                &script,
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("setsid unshare dockerd starts");
        let mut engine = SecondEngine {
            dir: dir.to_path_buf(),
            child,
            bridge,
            port,
            namespace: String::new(),
        };
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = engine.child.try_wait() {
                panic!(
                    "the second dockerd exited ({status}): {}",
                    engine.log_tail()
                );
            }
            if engine.docker(&["info"]).status.success() {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the second dockerd did not answer within 60 s: {}",
                engine.log_tail()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        engine.namespace = std::fs::read_link(format!("/proc/{}/ns/mnt", engine.child.id()))
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let ours = std::fs::read_link("/proc/self/ns/mnt").unwrap();
        assert_ne!(
            Path::new(&engine.namespace),
            ours,
            "the second dockerd runs in a mount namespace of its own"
        );
        engine
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default();
        log[log.len().saturating_sub(1500)..].to_string()
    }

    /// The docker CLI against this engine's unix socket.
    fn docker(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .arg("-H")
            .arg(format!("unix://{}/docker.sock", self.dir.display()))
            .args(args)
            .output()
            .expect("the docker CLI runs")
    }

    /// Lines of `docker ARGS` on this engine (it must succeed).
    fn lines(&self, args: &[&str]) -> Vec<String> {
        let output = self.docker(args);
        assert!(
            output.status.success(),
            "docker {} on the second engine: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(str::to_string)
            .collect()
    }

    /// `DOCKER_HOST` etc. for sealroom to use this engine over TLS with the certificates of
    /// `dir/tls/<cert_dir>`.
    fn env(&self, cert_dir: &str) -> [(&'static str, String); 3] {
        [
            ("DOCKER_HOST", format!("tcp://127.0.0.1:{}", self.port)),
            ("DOCKER_TLS_VERIFY", "1".to_string()),
            (
                "DOCKER_CERT_PATH",
                self.dir.join("tls").join(cert_dir).display().to_string(),
            ),
        ]
    }
}

impl Drop for SecondEngine {
    fn drop(&mut self) {
        for id in self.lines_or_none(&["ps", "-aq"]) {
            let _ = self.docker(&["rm", "-f", &id]);
        }
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).expect("a pid");
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Its containerd, shims and storage helpers, by pid: whatever still runs in its mount
        // namespace.
        if !self.namespace.is_empty() {
            for entry in std::fs::read_dir("/proc").unwrap().flatten() {
                let Some(pid) = entry
                    .file_name()
                    .to_str()
                    .and_then(|name| name.parse::<i32>().ok())
                else {
                    continue;
                };
                let namespace = std::fs::read_link(entry.path().join("ns/mnt"));
                if namespace.is_ok_and(|namespace| namespace == Path::new(&self.namespace))
                    && let Some(pid) = rustix::process::Pid::from_raw(pid)
                {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                }
            }
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .output();
    }
}

impl SecondEngine {
    fn lines_or_none(&self, args: &[&str]) -> Vec<String> {
        let output = self.docker(args);
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(str::to_string)
            .collect()
    }
}

/// The containers that the sealroom process `pid` created on the engine `docker_args` names
/// (e.g. `-H unix://…`) between two unix times, from its events: `<id> <step label>` each.
fn creations(docker_args: &[String], since: u64, until: u64, pid: u32) -> Vec<String> {
    let owner = format!(",pid={pid},");
    let output = Command::new("docker")
        .args(docker_args)
        .args([
            "events",
            "--since",
            &since.to_string(),
            "--until",
            &until.to_string(),
            "--filter",
            "type=container",
            "--filter",
            "event=create",
            "--format",
            "{{.Actor.ID}} {{index .Actor.Attributes \"dev.sealroom.step\"}} {{index .Actor.Attributes \"dev.sealroom.owner-process\"}}",
        ])
        .output()
        .expect("docker events runs");
    assert!(
        output.status.success(),
        "docker events: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| line.contains(&owner))
        .filter_map(|line| line.rsplit_once(' ').map(|(event, _)| event.to_string()))
        .collect()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The spec: a tool from a source, a step that runs it and writes a tree (an executable, a
/// hard link, a symlink, 300000 lines), a step that reads that tree as its input, and a probe.
fn write_project(root: &Path, image: &str) -> PathBuf {
    let project = root.join("proj");
    std::fs::create_dir_all(project.join("tools/bin")).unwrap();
    std::fs::write(
        project.join("tools/bin/gen.sh"),
        "#!/bin/sh\necho \"made by gen.sh\" > \"$1/made.txt\"\n",
    )
    .unwrap();
    // Names past the 100 bytes of a plain tar header, both ways (GNU long names up, PAX down).
    let long = "l".repeat(150);
    std::fs::write(project.join("tools").join(&long), "a long name\n").unwrap();
    std::fs::set_permissions(
        project.join("tools/bin/gen.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let spec = format!(
        r#"version = 1
name = "remote-engine"

[sandbox]
image = "{image}"

[[source]]
name = "tools"
path = "tools"

[[step]]
name = "make"
inputs = ["tools"]
run = ["sh", "-c", "/inputs/tools/bin/gen.sh /out && mkdir -p /out/sub && seq 1 300000 > /out/sub/numbers && cp /inputs/tools/bin/gen.sh /out/run.sh && ln /out/made.txt /out/again.txt && ln -s sub/numbers /out/numbers-link && ls -l --full-time /inputs/tools/bin > /out/listing && cat /inputs/tools/l*l > /out/sub/$(printf 'n%.0s' $(seq 1 150))"]
artifacts = ["made.txt", "sub/numbers", "run.sh", "listing"]

[[step]]
name = "sum"
inputs = ["make"]
run = ["sh", "-c", "sha256sum /inputs/make/sub/numbers | cut -d' ' -f1 > /out/sum.txt && cat /inputs/make/made.txt /inputs/make/numbers-link | tail -n 1 >> /out/sum.txt && ls -l --full-time /inputs/make/run.sh >> /out/sum.txt"]
artifacts = ["sum.txt"]

[[image]]
name = "tools-image"
base = "{image}"
layers = [{{ step = "make", path = "/app" }}]
cmd = ["/app/run.sh", "/tmp"]

[[step]]
name = "probe"
run = ["sh", "-c", "grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status > /out/probe.txt; id -u >> /out/probe.txt; ls /sys/class/net >> /out/probe.txt; touch /probe 2>/dev/null && echo root-writable >> /out/probe.txt; touch /inputs/x 2>/dev/null && echo inputs-writable >> /out/probe.txt; stat -c %a /out >> /out/probe.txt"]
artifacts = ["probe.txt"]
"#
    );
    let path = project.join("sealroom.toml");
    std::fs::write(&path, spec).unwrap();
    path
}

/// A finished `sealroom build`.
struct Built {
    output: Output,
    seconds: f64,
    /// The process's pid, which the owner label of every container it made names.
    pid: u32,
}

/// `sealroom build SPEC --format json` with a store and `--out` of its own (named `tag`) under
/// `root`, `TMPDIR` there too, and `env`.
fn build(root: &Path, spec: &Path, tag: &str, env: &[(&str, String)]) -> Built {
    build_with(root, spec, tag, env, &[])
}

/// [`build`] with more arguments.
fn build_with(
    root: &Path,
    spec: &Path,
    tag: &str,
    env: &[(&str, String)],
    extra: &[&str],
) -> Built {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sealroom"));
    command
        .arg("build")
        .arg(spec)
        .arg("--store")
        .arg(root.join(format!("store-{tag}")))
        .arg("--out")
        .arg(root.join(format!("out-{tag}")))
        .args(["--format", "json", "--sbom", "cyclonedx"])
        .args(extra)
        .env("TMPDIR", root.join("tmp"))
        .env_remove("SEALROOM_STORE")
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH");
    for (key, value) in env {
        command.env(key, value);
    }
    let started = Instant::now();
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sealroom runs");
    let pid = child.id();
    let output = child.wait_with_output().expect("sealroom runs");
    Built {
        output,
        seconds: started.elapsed().as_secs_f64(),
        pid,
    }
}

fn report(output: &Output, what: &str) -> serde_json::Value {
    assert!(
        output.status.success(),
        "{what} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Step name to (output tree, cached) of a build report, sorted by name (the report lists
/// steps in the order they finished).
fn step_outputs(report: &serde_json::Value) -> Vec<(String, String, bool)> {
    let mut steps: Vec<(String, String, bool)> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|step| {
            (
                step["name"].as_str().unwrap().to_string(),
                step["output"].as_str().unwrap().to_string(),
                step["cached"].as_bool().unwrap(),
            )
        })
        .collect();
    steps.sort();
    steps
}

/// Every file and symlink below `dir` (relative path, mode, bytes or link target), sorted.
fn tree_of(dir: &Path) -> Vec<(String, u32, Vec<u8>)> {
    use std::os::unix::fs::PermissionsExt;
    let mut entries: Vec<(String, u32, Vec<u8>)> = walkdir::WalkDir::new(dir)
        .min_depth(1)
        .sort_by_file_name()
        .into_iter()
        .map(|entry| entry.unwrap())
        .filter(|entry| !entry.file_type().is_dir())
        .map(|entry| {
            let metadata = entry.path().symlink_metadata().unwrap();
            let bytes = if metadata.file_type().is_symlink() {
                std::fs::read_link(entry.path())
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes()
            } else {
                std::fs::read(entry.path()).unwrap()
            };
            (
                entry
                    .path()
                    .strip_prefix(dir)
                    .unwrap()
                    .display()
                    .to_string(),
                metadata.permissions().mode() & 0o7777,
                bytes,
            )
        })
        .collect();
    entries.sort();
    entries
}

/// An sshd of the test's own on 127.0.0.1 (its host key, authorized key and config in `dir`),
/// whose sessions for the test's key get `DOCKER_HOST` of `engine`, so `docker system
/// dial-stdio` there reaches it; and the client side: a home directory whose `.ssh/config`
/// names that sshd `sealroom-test-engine` (the port lives there: bollard's ssh transport takes
/// none in the URL).
struct SshServer {
    child: Child,
    home: PathBuf,
}

impl SshServer {
    fn start(dir: &Path, engine: &SecondEngine) -> Self {
        std::fs::create_dir_all(dir.join("home/.ssh")).unwrap();
        let path = |name: &str| dir.join(name).display().to_string();
        for key in ["host_key", "client_key"] {
            run(
                "ssh-keygen",
                &["-q", "-t", "ed25519", "-N", "", "-f", &path(key)],
            );
        }
        let public = std::fs::read_to_string(dir.join("client_key.pub")).unwrap();
        std::fs::write(
            dir.join("authorized_keys"),
            format!(
                "environment=\"DOCKER_HOST=unix://{}/docker.sock\" {public}",
                engine.dir.display()
            ),
        )
        .unwrap();
        let port = free_port();
        std::fs::write(
            dir.join("sshd_config"),
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile {}\nAuthorizedKeysFile {}\nPermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPermitUserEnvironment yes\nMaxStartups 100\n",
                path("host_key"),
                path("sshd.pid"),
                path("authorized_keys")
            ),
        )
        .unwrap();
        std::fs::write(
            dir.join("home/.ssh/config"),
            format!(
                "Host sealroom-test-engine\n  HostName 127.0.0.1\n  Port {port}\n  User root\n  IdentityFile {}\n  IdentitiesOnly yes\n  UserKnownHostsFile {}\n",
                path("client_key"),
                path("known_hosts")
            ),
        )
        .unwrap();
        // sshd's privilege separation directory, as its package's service would make it.
        std::fs::create_dir_all("/run/sshd").unwrap();
        let log = std::fs::File::create(dir.join("sshd.log")).unwrap();
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f", &path("sshd_config")])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("sshd starts");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "sshd did not listen: {}",
                std::fs::read_to_string(dir.join("sshd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        SshServer {
            child,
            home: dir.join("home"),
        }
    }

    /// `sealroom ARGS` with `DOCKER_HOST=ssh://root@sealroom-test-engine`, in a mount namespace
    /// of its own where `/root` is the test's home (ssh reads `~/.ssh` of the user's passwd
    /// entry, not `$HOME`), and every process left in it (the ssh master) ended after.
    fn sealroom(&self, args: &[std::ffi::OsString]) -> Output {
        let script = format!(
            "mount -t tmpfs sealroom-test-home /root && cp -a '{}/.ssh' /root/.ssh && \"$0\" \"$@\"; status=$?; \
             for p in /proc/[0-9]*; do [ \"$(readlink $p/ns/mnt)\" = \"$(readlink /proc/self/ns/mnt)\" ] && [ \"${{p#/proc/}}\" != $$ ] && kill \"${{p#/proc/}}\" 2>/dev/null; done; exit $status",
            self.home.display()
        );
        Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c", &script])
            .arg(env!("CARGO_BIN_EXE_sealroom"))
            .args(args)
            .env("DOCKER_HOST", "ssh://root@sealroom-test-engine")
            .env("HOME", "/root")
            .env_remove("DOCKER_TLS_VERIFY")
            .env_remove("DOCKER_CERT_PATH")
            .env_remove("SEALROOM_STORE")
            .output()
            .expect("unshare runs")
    }
}

impl Drop for SshServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `sealroom image import ROOTFS --name NAME` into `engine`; the pinned reference it prints.
fn import(engine: &SecondEngine, rootfs: &Path, name: &str) -> String {
    import_with(rootfs, name, &engine.env("client"))
}

/// [`import`] with the engine named by `env`.
fn import_with(rootfs: &Path, name: &str, env: &[(&str, String)]) -> String {
    let mut import = Command::new(env!("CARGO_BIN_EXE_sealroom"));
    import
        .args(["image", "import"])
        .arg(rootfs)
        .args(["--name", name])
        .env_remove("DOCKER_TLS_VERIFY");
    for (key, value) in env {
        import.env(key, value);
    }
    let imported = import.output().unwrap();
    assert!(
        imported.status.success(),
        "sealroom image import into the second engine: {}",
        String::from_utf8_lossy(&imported.stderr)
    );
    String::from_utf8_lossy(&imported.stdout).trim().to_string()
}

#[test]
fn docker_a_build_on_a_remote_engine_over_tls_gives_the_local_digests() {
    if !runnable() {
        return;
    }
    let image = busybox();
    let image_id = format!(
        "sha256:{}",
        image.digest.to_string().trim_start_matches("sha256:")
    );
    // What sealroom touches (hidden from the second engine) and the engine's own state.
    let host = tempfile::Builder::new()
        .prefix("sealroom-remote-host-")
        .tempdir()
        .unwrap();
    let engine_dir = tempfile::Builder::new()
        .prefix("sealroom-remote-engine-")
        .tempdir()
        .unwrap();
    std::fs::create_dir_all(host.path().join("tmp")).unwrap();
    let spec = write_project(host.path(), &image.to_string());
    make_certificates(&engine_dir.path().join("tls"));

    let engine = SecondEngine::start(engine_dir.path(), host.path());
    let socket = format!("unix://{}/docker.sock", engine_dir.path().display());
    // The image goes in as sealroom loads images: through the API of the engine DOCKER_HOST
    // names, from a root filesystem the engine cannot see; the same tree, the same digest.
    let rootfs = host.path().join("rootfs");
    common::image::busybox_rootfs(&rootfs);
    let imported = import(&engine, &rootfs, common::image::TEST_IMAGE_NAME);
    assert_eq!(
        imported,
        image.to_string(),
        "the same root filesystem gives the same pinned image on the remote engine"
    );
    // `https://` is TLS without DOCKER_TLS_VERIFY.
    let [(_, tcp), _, (_, cert_path)] = engine.env("client");
    let https = [
        ("DOCKER_HOST", tcp.replacen("tcp://", "https://", 1)),
        ("DOCKER_CERT_PATH", cert_path),
    ];
    assert_eq!(
        import_with(&rootfs, common::image::TEST_IMAGE_NAME, &https),
        image.to_string()
    );
    assert_eq!(
        engine.lines(&["image", "ls", "-q", "--no-trunc"]),
        std::slice::from_ref(&image_id)
    );
    // The premise: sealroom's paths do not exist on the engine's side.
    let seen = engine.lines(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        &format!("{}:/p:ro", host.path().join("proj").display()),
        "--entrypoint",
        "/bin/ls",
        &image_id,
        "-A",
        "/p",
    ]);
    assert!(
        seen.is_empty(),
        "the second engine sees sealroom's paths: {seen:?}"
    );

    let local = build(host.path(), &spec, "local", &[]);
    let local_seconds = local.seconds;
    let local = report(&local.output, "the local build");

    let since = unix_now();
    let remote = build(host.path(), &spec, "remote", &engine.env("client"));
    let (remote_seconds, remote_pid) = (remote.seconds, remote.pid);
    // `docker events --until` is exclusive of the second it names.
    std::thread::sleep(Duration::from_millis(1100));
    let until = unix_now();
    let remote = report(&remote.output, "the remote build");
    eprintln!(
        "remote engine: {remote_seconds:.2} s for 3 steps over TLS, local engine: {local_seconds:.2} s"
    );

    // The same steps, none cached, with the same output trees; the same artifacts.
    let local_steps = step_outputs(&local);
    assert_eq!(local_steps.len(), 3);
    assert!(local_steps.iter().all(|(_, _, cached)| !cached));
    assert_eq!(step_outputs(&remote), local_steps);
    let digests = |report: &serde_json::Value| {
        report["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|artifact| {
                (
                    artifact["name"].as_str().unwrap().to_string(),
                    artifact["digest"].as_str().unwrap().to_string(),
                )
            })
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(digests(&remote), digests(&local));
    let (local_tree, remote_tree) = (
        tree_of(&host.path().join("out-local")),
        tree_of(&host.path().join("out-remote")),
    );
    let names = |tree: &[(String, u32, Vec<u8>)]| {
        tree.iter()
            .filter(|(name, _, _)| !name.ends_with(".intoto.jsonl") && !name.ends_with(".cdx.json"))
            .map(|(name, mode, bytes)| (name.clone(), *mode, bytes.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&remote_tree), names(&local_tree));
    assert!(
        remote_tree
            .iter()
            .any(|(name, _, _)| name == "sum.txt.cdx.json"),
        "an SBOM (its image files read through the remote engine) next to each artifact"
    );
    let run_sh = remote_tree
        .iter()
        .find(|(name, _, _)| name == "run.sh")
        .expect("run.sh is an artifact");
    assert_eq!(run_sh.1 & 0o111, 0o111, "the executable bit came back");

    // Every step ran on the remote engine (a step container and the volumes' holder each), none
    // on the local one; nothing is left on either.
    let remote_created = creations(
        &["-H".to_string(), socket.clone()],
        since,
        until,
        remote_pid,
    );
    let steps_created: Vec<&str> = remote_created
        .iter()
        .filter_map(|line| line.split_once(' ').map(|(_, step)| step))
        .collect();
    for step in ["make", "sum", "probe"] {
        assert_eq!(
            steps_created.iter().filter(|name| **name == step).count(),
            2,
            "step {step}: its container and its volumes' holder, on the remote engine: {remote_created:?}"
        );
    }
    let local_created = creations(&[], since, until, remote_pid);
    assert!(
        local_created.is_empty(),
        "sealroom containers on the local engine: {local_created:?}"
    );
    assert_eq!(
        engine.lines(&["ps", "-aq"]),
        Vec::<String>::new(),
        "containers left"
    );
    assert_eq!(
        engine.lines(&["volume", "ls", "-q"]),
        Vec::<String>::new(),
        "volumes left"
    );

    // The same hardening on the remote engine.
    let probe = std::fs::read_to_string(host.path().join("out-remote/probe.txt")).unwrap();
    assert_eq!(
        probe, "CapEff:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t2\n1000\nlo\n777\n",
        "no capabilities, no new privileges, seccomp, not root, only lo, read-only root and inputs"
    );

    // The limits hold while /out comes back, and what the store cannot hold is refused as
    // locally: a step over limits.output, a step that leaves a fifo.
    for (name, run, limits, words) in [
        (
            "big",
            "head -c 3000000 /dev/zero > /out/big",
            "limits = { output = \"2MiB\" }",
            "step `big` wrote more than its output limit of 2MiB",
        ),
        (
            "fifo",
            "mkfifo /out/pipe",
            "",
            "step `fifo` left something in /out that cannot be stored",
        ),
    ] {
        let limited = host.path().join(format!("proj/{name}.toml"));
        std::fs::write(
            &limited,
            format!(
                "version = 1\nname = \"{name}\"\n\n[sandbox]\nimage = \"{image}\"\n\n[[step]]\nname = \"{name}\"\nrun = [\"sh\", \"-c\", \"{run}\"]\n{limits}\n"
            ),
        )
        .unwrap();
        let refused = build(host.path(), &limited, name, &engine.env("client")).output;
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert_eq!(refused.status.code(), Some(3), "{name}: {stderr}");
        assert!(stderr.contains(words), "{name}: {stderr}");
        assert_eq!(
            engine.lines(&["ps", "-aq"]),
            Vec::<String>::new(),
            "containers left"
        );
        assert_eq!(
            engine.lines(&["volume", "ls", "-q"]),
            Vec::<String>::new(),
            "volumes left"
        );
    }

    // The image built from the outputs: the same manifest, and `--load` puts it into the
    // remote engine (every step cached: no container runs for it).
    assert_eq!(
        remote["images"][0]["manifest_digest"],
        local["images"][0]["manifest_digest"]
    );
    let loaded_tag = format!("sealroom-test/remote-load:{}", std::process::id());
    let loaded = report(
        &build_with(
            host.path(),
            &spec,
            "remote",
            &engine.env("client"),
            &["--load", "--tag", &loaded_tag],
        )
        .output,
        "the cached remote build with --load",
    );
    assert!(step_outputs(&loaded).iter().all(|(_, _, cached)| *cached));
    assert_eq!(
        engine.lines(&["image", "inspect", "--format", "{{.Id}}", &loaded_tag]),
        [loaded["images"][0]["config_digest"]
            .as_str()
            .unwrap()
            .to_string()],
        "--load put the image into the remote engine"
    );

    // An image without `/inputs` or `/out`: the engine makes the mount points, on the holder
    // (which is never started) as on the step's container.
    let bare = host.path().join("bare");
    common::image::busybox_rootfs(&bare);
    std::fs::remove_dir(bare.join("inputs")).unwrap();
    std::fs::remove_dir(bare.join("out")).unwrap();
    let bare_image = import(&engine, &bare, "sealroom-test/bare");
    let bare_spec = host.path().join("proj/bare.toml");
    std::fs::write(
        &bare_spec,
        format!(
            "version = 1\nname = \"bare\"\n\n[sandbox]\nimage = \"{bare_image}\"\n\n[[source]]\nname = \"tools\"\npath = \"tools\"\n\n[[step]]\nname = \"bare\"\ninputs = [\"tools\"]\nrun = [\"sh\", \"-c\", \"/inputs/tools/bin/gen.sh /out\"]\nartifacts = [\"made.txt\"]\n"
        ),
    )
    .unwrap();
    report(
        &build(host.path(), &bare_spec, "bare", &engine.env("client")).output,
        "a build on an image without /inputs and /out",
    );
    assert_eq!(
        std::fs::read_to_string(host.path().join("out-bare/made.txt")).unwrap(),
        "made by gen.sh\n"
    );

    // A fetch container needs the firewall rules of its engine's machine: refused, nothing run.
    let fetch_spec = host.path().join("proj/fetch.toml");
    std::fs::write(
        &fetch_spec,
        format!(
            "version = 1\nname = \"fetch\"\n\n[sandbox]\nimage = \"{image}\"\n\n[[fetch]]\nname = \"vendor\"\nrun = [\"sh\", \"-c\", \"echo x > /out/x\"]\noutput = \"sha256:{}\"\n",
            "0".repeat(64)
        ),
    )
    .unwrap();
    let refused = build(host.path(), &fetch_spec, "fetch", &engine.env("client")).output;
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(70), "{stderr}");
    assert!(
        stderr
            .contains("is remote, and the firewall rules that keep fetch containers off the host"),
        "{stderr}"
    );
    assert_eq!(
        engine.lines(&["ps", "-aq"]),
        Vec::<String>::new(),
        "containers left"
    );

    // Interrupted mid-step (SIGINT): the step, its holder and its volumes are removed before
    // sealroom exits. Killed (SIGKILL): they stay, labelled, and the next command against the
    // engine (`store gc`) removes them.
    let slow_spec = host.path().join("proj/slow.toml");
    std::fs::write(
        &slow_spec,
        format!(
            "version = 1\nname = \"slow\"\n\n[sandbox]\nimage = \"{image}\"\n\n[[source]]\nname = \"tools\"\npath = \"tools\"\n\n[[step]]\nname = \"slow\"\ninputs = [\"tools\"]\nrun = [\"sleep\", \"60\"]\n"
        ),
    )
    .unwrap();
    for (signal, tag) in [("-INT", "slow-int"), ("-KILL", "slow-kill")] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sealroom"));
        command
            .arg("build")
            .arg(&slow_spec)
            .arg("--store")
            .arg(host.path().join(format!("store-{tag}")))
            .arg("--out")
            .arg(host.path().join(format!("out-{tag}")))
            .env("TMPDIR", host.path().join("tmp"))
            .env_remove("SEALROOM_STORE")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (key, value) in engine.env("client") {
            command.env(key, value);
        }
        let mut child = command.spawn().unwrap();
        let started = Instant::now();
        while engine
            .lines(&["ps", "-q", "--filter", "label=dev.sealroom.step=slow"])
            .is_empty()
        {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the slow step never started on the remote engine"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        assert_eq!(
            engine.lines(&["volume", "ls", "-q"]).len(),
            4,
            "an input volume, /out's and the two scratch volumes, while the step runs"
        );
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = child.wait().unwrap();
        if signal == "-INT" {
            assert_eq!(exit.code(), Some(130), "an interrupted build");
        } else {
            assert_eq!(
                engine
                    .lines(&[
                        "volume",
                        "ls",
                        "-q",
                        "--filter",
                        "label=dev.sealroom.step=slow"
                    ])
                    .len(),
                4,
                "a killed build leaves its volumes, labelled"
            );
            let mut gc = Command::new(env!("CARGO_BIN_EXE_sealroom"));
            gc.args(["store", "gc", "--store"])
                .arg(host.path().join(format!("store-{tag}")));
            for (key, value) in engine.env("client") {
                gc.env(key, value);
            }
            let output = gc.output().unwrap();
            assert!(
                output.status.success(),
                "store gc: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        assert_eq!(
            engine.lines(&["ps", "-aq"]),
            Vec::<String>::new(),
            "{signal}: containers left"
        );
        assert_eq!(
            engine.lines(&["volume", "ls", "-q"]),
            Vec::<String>::new(),
            "{signal}: volumes left"
        );
    }

    // No client certificate, then a client certificate and CA the engine does not know: exit
    // 70 with the TLS layer's words, nothing written.
    for (cert_dir, words) in [
        ("nocert", "no client certificate was offered"),
        ("stranger", "alert"),
        ("wrongca", "invalid peer certificate"),
    ] {
        let refused = build(host.path(), &spec, cert_dir, &engine.env(cert_dir)).output;
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert_eq!(refused.status.code(), Some(70), "{cert_dir}: {stderr}");
        eprintln!(
            "{cert_dir}: {}",
            stderr
                .lines()
                .find(|line| line.contains("cannot reach"))
                .unwrap_or_default()
        );
        assert!(
            stderr.contains("cannot reach the container engine at tcp://127.0.0.1:")
                && stderr.contains("over TLS")
                && stderr.contains(words),
            "{cert_dir}: {stderr}"
        );
        assert!(
            stderr.to_lowercase().contains("certificate"),
            "{cert_dir}: the engine's or TLS layer's words about the certificate: {stderr}"
        );
        assert!(
            !host.path().join(format!("out-{cert_dir}")).exists()
                || common::files_below(&host.path().join(format!("out-{cert_dir}"))).is_empty(),
            "{cert_dir}: nothing written"
        );
    }

    // ssh://: the same build through `docker system dial-stdio` on the far side of an sshd.
    let sshd = SshServer::start(&engine_dir.path().join("ssh"), &engine);
    let started = Instant::now();
    let over_ssh = sshd.sealroom(&[
        "build".into(),
        spec.clone().into(),
        "--store".into(),
        host.path().join("store-ssh").into(),
        "--out".into(),
        host.path().join("out-ssh").into(),
        "--format".into(),
        "json".into(),
    ]);
    let ssh_seconds = started.elapsed().as_secs_f64();
    let over_ssh = report(&over_ssh, "the build over ssh");
    eprintln!("remote engine over ssh: {ssh_seconds:.2} s for 3 steps");
    let sshd_log =
        std::fs::read_to_string(engine_dir.path().join("ssh/sshd.log")).unwrap_or_default();
    assert!(
        sshd_log.contains("Accepted publickey for root"),
        "the build went through the test's sshd: {sshd_log}"
    );
    assert_eq!(
        step_outputs(&over_ssh),
        local_steps,
        "over ssh: the local output trees"
    );
    assert_eq!(
        engine.lines(&["ps", "-aq"]),
        Vec::<String>::new(),
        "containers left"
    );
    assert_eq!(
        engine.lines(&["volume", "ls", "-q"]),
        Vec::<String>::new(),
        "volumes left"
    );
    drop(sshd);

    let bridge = engine.bridge.clone();
    drop(engine);
    let link = Command::new("ip")
        .args(["link", "show", &bridge])
        .output()
        .unwrap();
    assert!(!link.status.success(), "the test's bridge {bridge} is gone");
    // The docker0 guard: the main engine still starts a container on its default bridge.
    let bridged = Command::new("docker")
        .args(["run", "--rm", &image_id, "true"])
        .output()
        .unwrap();
    assert!(
        bridged.status.success(),
        "after the second engine, the main engine cannot run a bridge-network container: {}",
        String::from_utf8_lossy(&bridged.stderr)
    );
}

#[test]
fn docker_a_bad_docker_host_or_missing_tls_files_are_exit_70_saying_what_is_wrong() {
    let project = common::Project::new();
    let spec = project.write_spec(
        &busybox().to_string(),
        "[[step]]\nname = \"one\"\ninputs = [\"src\"]\nrun = [\"true\"]\n",
    );
    let certs = tempfile::tempdir().unwrap();
    let half = certs.path().join("half");
    std::fs::create_dir(&half).unwrap();
    std::fs::write(half.join("ca.pem"), "not used").unwrap();
    std::fs::write(half.join("cert.pem"), "not used").unwrap();
    // Nothing listens there: a port that was free a moment ago.
    let closed = format!("tcp://127.0.0.1:{}", free_port());
    let cases: Vec<(Vec<(&str, String)>, String)> = vec![
        (
            vec![("DOCKER_HOST", "ftp://127.0.0.1:2375".to_string())],
            "DOCKER_HOST is `ftp://127.0.0.1:2375`: sealroom reaches an engine at unix://PATH, tcp://HOST:PORT (TLS when DOCKER_TLS_VERIFY is set), https://HOST:PORT or ssh://[USER@]HOST".to_string(),
        ),
        (
            vec![
                ("DOCKER_HOST", closed.clone()),
                ("DOCKER_TLS_VERIFY", "1".to_string()),
                ("DOCKER_CERT_PATH", certs.path().display().to_string()),
            ],
            format!(
                "{closed}: the CA certificate that the engine's certificate is verified against, {}/ca.pem, cannot be read",
                certs.path().display()
            ),
        ),
        (
            vec![
                ("DOCKER_HOST", closed.clone()),
                ("DOCKER_TLS_VERIFY", "1".to_string()),
                ("DOCKER_CERT_PATH", half.display().to_string()),
            ],
            format!(
                "the client certificate is half there: {0}/cert.pem exists, {0}/key.pem does not",
                half.display()
            ),
        ),
        (
            vec![("DOCKER_HOST", closed.clone())],
            format!("cannot reach the container engine: {closed}: "),
        ),
        (
            vec![("DOCKER_HOST", "ssh://nobody@127.0.0.1:2222".to_string())],
            "DOCKER_HOST is `ssh://nobody@127.0.0.1:2222`: the ssh transport (bollard 0.21's) cannot take a port".to_string(),
        ),
    ];
    for (env, words) in cases {
        let mut command = project.build_command(&spec);
        command
            .env_remove("DOCKER_TLS_VERIFY")
            .env_remove("DOCKER_CERT_PATH");
        for (key, value) in &env {
            command.env(key, value);
        }
        let assert = command.assert().code(70);
        let stderr = common::stderr_of(&assert);
        assert!(
            stderr.contains(&words),
            "{env:?}: want `{words}` in: {stderr}"
        );
        assert!(
            common::files_below(&project.out()).is_empty(),
            "{env:?}: nothing written"
        );
    }
}
