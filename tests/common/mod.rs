//! Helpers shared by the integration tests: running the binary, writing specs, asking the engine
//! what sealroom left behind.
#![allow(dead_code)] // each test binary uses a different part of this module

pub mod buildgrid;
pub mod image;
pub mod registry;

use std::path::{Path, PathBuf};

use sealroom::spec::PinnedImage;

/// The `sealroom` binary under test, with a clean environment apart from what Docker needs.
pub fn sealroom() -> assert_cmd::Command {
    let mut command = assert_cmd::Command::cargo_bin("sealroom").expect("the binary is built");
    command.env_remove("SEALROOM_STORE");
    command
}

/// The busybox test image, imported once per test process (blocking wrapper for sync tests).
pub fn busybox() -> PinnedImage {
    static IMAGE: std::sync::OnceLock<PinnedImage> = std::sync::OnceLock::new();
    IMAGE
        .get_or_init(|| {
            tokio::runtime::Runtime::new()
                .expect("a runtime")
                .block_on(image::busybox_image())
        })
        .clone()
}

/// A project directory with a `src/` tree and a spec, in a temp dir that also holds the store
/// and the output directory of the test.
pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        std::fs::create_dir(dir.path().join("src")).unwrap();
        std::fs::write(dir.path().join("src/greeting.txt"), "hello from source\n").unwrap();
        Self { dir }
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    pub fn store(&self) -> PathBuf {
        self.path("store")
    }

    pub fn out(&self) -> PathBuf {
        self.path("out")
    }

    /// Writes `sealroom.toml` with the given image reference, a `src` source and `steps`.
    pub fn write_spec(&self, image: &str, steps: &str) -> PathBuf {
        let spec = format!(
            "version = 1\nname = \"test\"\n\n[sandbox]\nimage = \"{image}\"\n\n[[source]]\nname = \"src\"\npath = \"src\"\n\n{steps}"
        );
        let path = self.path("sealroom.toml");
        std::fs::write(&path, spec).unwrap();
        path
    }

    /// `sealroom build SPEC` with this project's store and out dir, for a test to add to.
    pub fn build_command(&self, spec: &Path) -> assert_cmd::Command {
        assert_cmd::Command::from_std(self.build_std(spec))
    }

    /// The same as [`Project::build_command`], as a process to start in the background (a
    /// test that signals, kills or measures the build while it runs); stdout goes nowhere.
    pub fn build_process(&self, spec: &Path) -> std::process::Command {
        let mut command = self.build_std(spec);
        command.stdout(std::process::Stdio::null());
        command
    }

    fn build_std(&self, spec: &Path) -> std::process::Command {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_sealroom"));
        command
            .arg("build")
            .arg(spec)
            .arg("--store")
            .arg(self.store())
            .arg("--out")
            .arg(self.out())
            .env_remove("SEALROOM_STORE");
        command
    }

    /// `sealroom build` of the spec with this project's store and out dir.
    pub fn build(&self, spec: &Path) -> assert_cmd::assert::Assert {
        self.build_command(spec).assert()
    }

    /// `sealroom build SPEC --store STORE --out OUT --format json` with `extra`, run in the
    /// project's directory; the build report. A failed build fails the test with its stderr.
    pub fn build_report(
        &self,
        spec: &Path,
        store: &Path,
        out: &Path,
        extra: &[&str],
    ) -> serde_json::Value {
        let output = sealroom()
            .arg("build")
            .arg(spec)
            .arg("--store")
            .arg(store)
            .arg("--out")
            .arg(out)
            .args(["--format", "json"])
            .args(extra)
            .current_dir(self.dir.path())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "build failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    }

    /// Generates a key pair under the project; returns (private, public).
    pub fn keygen(&self, algorithm: &str) -> (PathBuf, PathBuf) {
        let prefix = self.path(&format!("key-{algorithm}"));
        sealroom()
            .args(["keygen", "--algorithm", algorithm, "--out"])
            .arg(&prefix)
            .assert()
            .success();
        (prefix.with_extension("key"), prefix.with_extension("pub"))
    }
}

/// Every file below `dir`, relative, sorted (empty when `dir` does not exist).
pub fn files_below(dir: &Path) -> Vec<String> {
    if !dir.exists() {
        return Vec::new();
    }
    let mut files: Vec<String> = walkdir::WalkDir::new(dir)
        .min_depth(1)
        .into_iter()
        .map(|entry| entry.expect("walkable"))
        .filter(|entry| !entry.file_type().is_dir())
        .map(|entry| {
            entry
                .path()
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    files.sort();
    files
}

/// The text of an assertion's stderr.
pub fn stderr_of(assert: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&assert.get_output().stderr).into_owned()
}

/// Containers of any state that sealroom made for a step of this name.
pub fn sealroom_containers_of_step(step: &str) -> Vec<String> {
    let label = format!("{}={step}", sealroom::sandbox::STEP_LABEL);
    tokio::runtime::Runtime::new()
        .expect("a runtime")
        .block_on(async {
            let docker = image::docker().await;
            let options = bollard::query_parameters::ListContainersOptionsBuilder::new()
                .all(true)
                .filters(&std::collections::HashMap::from([("label", vec![label])]))
                .build();
            docker
                .list_containers(Some(options))
                .await
                .expect("containers can be listed")
                .into_iter()
                .filter_map(|container| container.id)
                .collect()
        })
}

/// Whether `program` runs (`program ARG` exits 0), for tests that drive an outside tool (cargo,
/// npm, go). The one place that decides skip or fail: under `CI=true` a missing tool fails the
/// test, saying how to install it; elsewhere the test prints a notice and returns.
pub fn tool_available(program: &str, arg: &str, install: &str) -> bool {
    let found = std::process::Command::new(program)
        .arg(arg)
        .output()
        .is_ok_and(|output| output.status.success());
    if !found {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!(
                "`{program}` is not on the PATH and CI=true: tests never skip there ({install})"
            );
        }
        eprintln!("notice: `{program}` is not on the PATH; skipping ({install})");
    }
    found
}

/// A TCP port on 127.0.0.1 that nothing listened on a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port on 127.0.0.1")
        .local_addr()
        .expect("a bound address")
        .port()
}

/// The in-toto statement in the first DSSE envelope of a `.intoto.jsonl` text.
pub fn statement_of(jsonl: &str) -> serde_json::Value {
    use base64::Engine as _;
    let line = jsonl
        .lines()
        .find(|line| !line.trim().is_empty())
        .expect("an envelope line");
    let envelope: serde_json::Value = serde_json::from_str(line).expect("an envelope");
    let payload = base64::engine::general_purpose::STANDARD
        .decode(envelope["payload"].as_str().expect("a payload"))
        .expect("base64");
    serde_json::from_slice(&payload).expect("a statement")
}

/// Copies the tree at `from` (files and directories) to `to`.
pub fn copy_tree(from: &Path, to: &Path) {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.unwrap();
        let target = to.join(entry.path().strip_prefix(from).unwrap());
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Runs `program` with `args`; its output, failing the test with its stderr if it fails.
pub fn run_ok(program: &str, args: &[&str]) -> std::process::Output {
    let output = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("cannot run {program}: {error}"));
    assert!(
        output.status.success(),
        "{program} {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}
