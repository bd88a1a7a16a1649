//! Debian's `docker-registry` (distribution 2.8) on a free 127.0.0.1 port, killed when dropped:
//! anonymous, or with the `tls` and `auth` blocks a test gives (htpasswd Basic auth over TLS, or
//! `auth: token` against a token server the test runs). Its access log is kept in a file, so a
//! test can count the requests the registry answered. With CI=true a missing binary fails the
//! test (scripts/ensure-packages.sh installs it); elsewhere the test is skipped.
//!
//! [`Registry::start_for_the_process`] makes one a test process keeps in a `static` (never
//! dropped): it stops, and its storage is removed, when the process exits, however it exits.

use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

/// A running registry.
pub struct Registry {
    child: Child,
    pub port: u16,
    /// `https` when started with TLS, else `http`.
    pub scheme: &'static str,
    log: PathBuf,
    /// For a registry kept for the process: the pipe whose closing stops it (see
    /// [`Registry::start_for_the_process`]).
    lifeline: Option<ChildStdin>,
    _dir: tempfile::TempDir,
}

/// What a registry is started with beyond storage and address.
#[derive(Default)]
pub struct RegistryConfig {
    /// `(certificate, key)` PEM files: the registry speaks only TLS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// An `auth:` block, as YAML, indented at the top level (`auth:\n  htpasswd:\n ...`).
    pub auth: Option<String>,
}

impl Registry {
    /// An anonymous plain-HTTP registry; `None` when the binary is missing outside CI.
    pub fn start() -> Option<Self> {
        Self::start_with(RegistryConfig::default())
    }

    pub fn start_with(config: RegistryConfig) -> Option<Self> {
        Self::spawn(config, false)
    }

    /// An anonymous plain-HTTP registry for the whole test process, to keep in a `static`
    /// (whose value is never dropped). It runs under `sh`, which waits for its stdin, a pipe
    /// from this process, to close: when the test process exits (the kernel closes the pipe,
    /// even after a crash) `sh` stops the registry and removes its storage. Dropping the value
    /// closes the pipe and waits for the same.
    pub fn start_for_the_process() -> Option<Self> {
        Self::spawn(RegistryConfig::default(), true)
    }

    fn spawn(config: RegistryConfig, for_the_process: bool) -> Option<Self> {
        let binary = ["/usr/bin/docker-registry", "/usr/sbin/docker-registry"]
            .into_iter()
            .find(|path| Path::new(path).exists());
        let Some(binary) = binary else {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("docker-registry is not installed: scripts/ensure-packages.sh installs it");
            }
            eprintln!(
                "skipping: docker-registry is not installed (apt-get install docker-registry)"
            );
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let port = super::free_port();
        let tls = match &config.tls {
            Some((certificate, key)) => format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                certificate.display(),
                key.display()
            ),
            None => String::new(),
        };
        let yaml = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: sealroom-test\n{tls}{}\n",
            dir.path().join("data").display(),
            config.auth.as_deref().unwrap_or("")
        );
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, yaml).unwrap();
        let log = dir.path().join("registry.log");
        let mut command = if for_the_process {
            let mut command = Command::new("sh");
            command
                .arg("-c")
                .arg(
                    "\"$0\" serve \"$1\" </dev/null & registry=$!; cat >/dev/null; \
                     kill \"$registry\"; wait \"$registry\"; rm -rf \"$2\"",
                )
                .arg(binary)
                .arg(&config_path)
                .arg(dir.path())
                .stdin(Stdio::piped());
            command
        } else {
            let mut command = Command::new(binary);
            command.arg("serve").arg(&config_path);
            command
        };
        let mut child = command
            .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
            .stderr(Stdio::from(
                std::fs::OpenOptions::new().append(true).open(&log).unwrap(),
            ))
            .spawn()
            .unwrap();
        let lifeline = child.stdin.take();
        let mut registry = Registry {
            child,
            port,
            scheme: if config.tls.is_some() {
                "https"
            } else {
                "http"
            },
            log,
            lifeline,
            _dir: dir,
        };
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(registry);
            }
            if let Ok(Some(status)) = registry.child.try_wait() {
                panic!(
                    "docker-registry exited ({status}): {}",
                    std::fs::read_to_string(&registry.log).unwrap_or_default()
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!(
            "docker-registry did not listen on 127.0.0.1:{port}: {}",
            registry.log()
        );
    }

    /// `127.0.0.1:PORT`, the registry part of a reference.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `SCHEME://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.host())
    }

    /// Everything the registry logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The access-log requests so far, one `"METHOD /v2/... HTTP/1.1" STATUS` each.
    pub fn requests(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter_map(|line| {
                let start = line
                    .find("\"GET /v2")
                    .or_else(|| line.find("\"HEAD /v2"))
                    .or_else(|| line.find("\"PUT /v2"))
                    .or_else(|| line.find("\"POST /v2"))
                    .or_else(|| line.find("\"PATCH /v2"))
                    .or_else(|| line.find("\"DELETE /v2"))?;
                let rest = &line[start..];
                let close = rest[1..].find('"')? + 2;
                let status = rest[close..].split_whitespace().next()?;
                Some(format!("{} {status}", &rest[..close]))
            })
            .collect()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Some(lifeline) = self.lifeline.take() {
            // `sh` stops the registry (its own child) once the pipe closes.
            drop(lifeline);
        } else {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
