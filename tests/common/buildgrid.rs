//! BuildGrid 0.4.4 (a REAPI server, from PyPI through `scripts/buildgrid.sh`) as a cache-only
//! server on a free 127.0.0.1 port: a disk CAS in a temp dir (kept across restarts, like a real
//! deployment's) and an in-memory action cache (lost on restart). Killed when dropped. BuildGrid
//! missing is a failure, never a skip: the script installs it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running BuildGrid.
pub struct BuildGrid {
    child: Option<Child>,
    pub port: u16,
    pub instance: String,
    bgd: PathBuf,
    dir: tempfile::TempDir,
    tls: Option<ServerTls>,
}

/// What a TLS server is started with: its certificate and key, and the CA its clients'
/// certificates must chain to (BuildGrid then requires one).
pub struct ServerTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: PathBuf,
}

/// `bgd` from the venv `scripts/buildgrid.sh` makes (or reuses).
fn bgd() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/buildgrid.sh");
    let output = Command::new("bash")
        .arg(&script)
        .stderr(Stdio::inherit())
        .output()
        .expect("bash runs scripts/buildgrid.sh");
    assert!(
        output.status.success(),
        "scripts/buildgrid.sh could not install BuildGrid 0.4.4 (it needs python3-venv and PyPI)"
    );
    PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
}

impl BuildGrid {
    /// A fresh server serving `instance`.
    pub fn start(instance: &str) -> Self {
        Self::start_with(instance, None)
    }

    /// A fresh server speaking only TLS with client certificates.
    pub fn start_tls(instance: &str, tls: ServerTls) -> Self {
        Self::start_with(instance, Some(tls))
    }

    fn start_with(instance: &str, tls: Option<ServerTls>) -> Self {
        let mut server = BuildGrid {
            child: None,
            port: super::free_port(),
            instance: instance.to_string(),
            bgd: bgd(),
            dir: tempfile::tempdir().unwrap(),
            tls,
        };
        server.launch();
        server
    }

    /// `grpc://127.0.0.1:PORT` (`grpcs://` with TLS).
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "grpcs" } else { "grpc" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The arguments that point a build at this cache.
    pub fn args(&self) -> Vec<String> {
        vec![
            "--remote-cache".to_string(),
            self.url(),
            "--remote-instance".to_string(),
            self.instance.clone(),
        ]
    }

    /// The disk CAS: one file per blob, `<2 hex>/<62 hex>`.
    pub fn cas_dir(&self) -> PathBuf {
        self.dir.path().join("cas")
    }

    fn launch(&mut self) {
        let cas = self.cas_dir();
        std::fs::create_dir_all(&cas).unwrap();
        let channel = match &self.tls {
            None => format!(
                r#"{{ address: "127.0.0.1:{}", insecure-mode: true }}"#,
                self.port
            ),
            Some(tls) => format!(
                r#"{{ address: "127.0.0.1:{}", insecure-mode: false, credentials: {{ tls-server-key: {}, tls-server-cert: {}, tls-client-certs: {} }} }}"#,
                self.port,
                tls.key.display(),
                tls.cert.display(),
                tls.client_ca.display()
            ),
        };
        let config = format!(
            r#"server:
  - !channel {channel}
authorization: {{ method: none }}
monitoring: {{ enabled: false }}
storages:
  - !disk-storage &cas {{ path: {cas} }}
caches:
  - !lru-action-cache &ac {{ storage: *cas, max-cached-refs: 10000, allow-updates: true, cache-failed-actions: false }}
instances:
  - name: "{instance}"
    services:
      - !action-cache {{ cache: *ac }}
      - !cas {{ storage: *cas }}
      - !bytestream {{ storage: *cas }}
"#,
            cas = cas.display(),
            instance = self.instance
        );
        let config_path = self.dir.path().join("bgd.yml");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("bgd.log"))
            .unwrap();
        let mut child = Command::new(&self.bgd)
            .args(["server", "start"])
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("bgd starts");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("bgd exited with {status}: {}", self.log());
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "bgd did not listen within 60 s: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        self.child = Some(child);
    }

    /// What the server wrote to its log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("bgd.log")).unwrap_or_default()
    }

    /// Stops the server (its in-memory action cache is lost; the disk CAS stays).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops and starts it again on the same port, with the same CAS.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// Every blob in the disk CAS (hex digest to file), found as the acceptance of the issue
    /// does: a file named by 64 hex, or `<2 hex>/<62 hex>` (BuildGrid's `objects/` layout).
    pub fn blob_files(&self) -> BTreeMap<String, PathBuf> {
        let mut blobs = BTreeMap::new();
        for entry in walkdir::WalkDir::new(self.cas_dir()) {
            let entry = entry.unwrap();
            if !entry.file_type().is_file() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().to_string();
            let parent = entry
                .path()
                .parent()
                .and_then(|p| p.file_name())
                .map(|p| p.to_string_lossy().to_string())
                .unwrap_or_default();
            let hex = |s: &str| s.bytes().all(|b| b.is_ascii_hexdigit());
            if name.len() == 64 && hex(&name) {
                blobs.insert(name, entry.path().to_path_buf());
            } else if name.len() == 62 && parent.len() == 2 && hex(&name) && hex(&parent) {
                blobs.insert(format!("{parent}{name}"), entry.path().to_path_buf());
            }
        }
        blobs
    }

    /// The digests (hex) of every blob in the disk CAS.
    pub fn blobs(&self) -> BTreeSet<String> {
        self.blob_files().into_keys().collect()
    }

    /// The file of blob `hex` in the disk CAS, if it is there.
    pub fn blob_path(&self, hex: &str) -> Option<PathBuf> {
        self.blob_files().remove(hex)
    }
}

impl Drop for BuildGrid {
    fn drop(&mut self) {
        self.stop();
    }
}
