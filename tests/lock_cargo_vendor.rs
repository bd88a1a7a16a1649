//! The vendor directory `lockfile::cargo::lay_out` writes, used by the host's real cargo: the
//! fixture project (two registry crates and a path dependency) builds and runs with
//! `cargo build --offline --locked --config <layout>/config.toml` and an empty `CARGO_HOME`, from
//! its v4 lock and from the same lock as v3; and cargo refuses the layout once a vendored file
//! or a crate's checksum was changed after the layout was written (the checksums are real).
//!
//! Needs `cargo` on the PATH: without it the tests fail under `CI=true` and print a notice and
//! pass otherwise.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sealroom::digest::{Blob, hash_file};
use sealroom::lockfile::cargo;
use sealroom::lockfile::{LayoutLimits, LockSource, LockedFile, Verified};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
const BINARY: &str = "sealroom-cargo-fixture";
const PRINTS: &str = "vendored 42000126 unix\n";

fn have_cargo() -> bool {
    common::tool_available("cargo", "--version", "install Rust with rustup")
}

/// A temp directory with the fixture project in `app/` (its lock replaced by `lock`, a fixture
/// path), and the crates of that lock laid out in `crates/`, as the fetch stage would: each
/// `.crate` checked against the lock's checksum first.
struct Laid {
    dir: tempfile::TempDir,
}

impl Laid {
    fn new(lock: &str) -> Self {
        Self::with_project(lock, |_| {})
    }

    /// [`Laid::new`] with the project changed by `change` (given `app/`) before the layout.
    fn with_project(lock: &str, change: impl FnOnce(&Path)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let app = dir.path().join("app");
        common::copy_tree(&Path::new(FIXTURES).join("locks/cargo/app"), &app);
        fs::copy(Path::new(FIXTURES).join(lock), app.join("Cargo.lock")).unwrap();
        change(&app);

        let text = fs::read_to_string(app.join("Cargo.lock")).unwrap();
        let source = LockSource {
            display: "app/Cargo.lock",
            text: &text,
        };
        let crates = cargo::parse(&source).unwrap();
        assert_eq!(crates.len(), 2, "{crates:?}");
        let files: Vec<(LockedFile, PathBuf)> = crates
            .iter()
            .map(|krate| {
                let path = Path::new(FIXTURES)
                    .join("packages/crates")
                    .join(format!("{}.crate", krate.stem()));
                let (digest, _) = hash_file::<Blob>(&path).unwrap();
                assert_eq!(digest.as_bytes(), &krate.checksum, "{}", krate.package());
                (cargo::locked_file(krate, String::new()), path)
            })
            .collect();
        let verified: Vec<Verified<'_>> = files
            .iter()
            .map(|(file, path)| Verified {
                file,
                path: path.clone(),
            })
            .collect();
        let layout = dir.path().join("crates");
        fs::create_dir(&layout).unwrap();
        let limits = LayoutLimits {
            max_bytes: 64 << 20,
            max_entries: 10_000,
        };
        cargo::lay_out(&verified, &layout, layout.to_str().unwrap(), &limits).unwrap();
        Laid { dir }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// `cargo build --offline --locked --config crates/config.toml` in `app/`, with an empty
    /// `CARGO_HOME`: nothing cargo cached elsewhere can help.
    fn build(&self) -> Output {
        self.build_with(&[])
    }

    /// [`Laid::build`] with more arguments.
    fn build_with(&self, args: &[&str]) -> Output {
        let cargo_home = self.path("cargo-home");
        fs::create_dir_all(&cargo_home).unwrap();
        let config = self.path("crates/config.toml");
        let output = Command::new("cargo")
            .args(["build", "--offline", "--locked", "--config"])
            .arg(&config)
            .args(args)
            .current_dir(self.path("app"))
            .env("CARGO_HOME", &cargo_home)
            .env("CARGO_TARGET_DIR", self.path("target"))
            .env_remove("CARGO_REGISTRIES_CRATES_IO_PROTOCOL")
            .output()
            .unwrap();
        // Nothing was downloaded into the empty CARGO_HOME.
        assert!(
            !cargo_home.join("registry").exists(),
            "cargo reached for a registry instead of the vendor directory: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    fn run_binary(&self) -> String {
        let output = Command::new(self.path("target/debug").join(BINARY))
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).unwrap()
    }
}

fn assert_built(output: &Output) {
    assert!(
        output.status.success(),
        "cargo build failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_v4_lock_builds_offline_from_the_vendor_directory() {
    if !have_cargo() {
        return;
    }
    let laid = Laid::new("locks/cargo/app/Cargo.lock");
    let config = fs::read_to_string(laid.path("crates/config.toml")).unwrap();
    assert!(
        config.contains("cargo build --offline --locked --config "),
        "{config}"
    );
    assert_built(&laid.build());
    assert_eq!(laid.run_binary(), PRINTS);
    // --locked: the lock is as it was.
    assert_eq!(
        fs::read(laid.path("app/Cargo.lock")).unwrap(),
        fs::read(Path::new(FIXTURES).join("locks/cargo/app/Cargo.lock")).unwrap()
    );
}

#[test]
fn a_v3_lock_builds_offline_from_the_vendor_directory() {
    if !have_cargo() {
        return;
    }
    let laid = Laid::new("locks/cargo/Cargo.v3.lock");
    assert_built(&laid.build());
    assert_eq!(laid.run_binary(), PRINTS);
}

#[test]
fn a_vendored_file_changed_after_the_layout_fails_the_build() {
    if !have_cargo() {
        return;
    }
    let laid = Laid::new("locks/cargo/app/Cargo.lock");
    let lib = laid.path("crates/vendor/itoa-1.0.11/src/lib.rs");
    let mut text = fs::read_to_string(&lib).unwrap();
    text.push_str("\n// changed after the layout\n");
    fs::write(&lib, text).unwrap();

    let output = laid.build();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "cargo built a changed crate:\n{stderr}"
    );
    assert!(
        stderr.contains("checksum") && stderr.contains("itoa") && stderr.contains("lib.rs"),
        "{stderr}"
    );
    assert!(!laid.path("target/debug").join(BINARY).exists());
}

#[test]
fn a_crate_checksum_other_than_the_locks_fails_the_build() {
    if !have_cargo() {
        return;
    }
    let laid = Laid::new("locks/cargo/app/Cargo.lock");
    let checksum_file = laid.path("crates/vendor/cfg-if-1.0.0/.cargo-checksum.json");
    let mut json: serde_json::Value =
        serde_json::from_slice(&fs::read(&checksum_file).unwrap()).unwrap();
    json["package"] = serde_json::Value::String("00".repeat(32));
    fs::write(&checksum_file, json.to_string()).unwrap();

    let output = laid.build();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "cargo built with a wrong checksum:\n{stderr}"
    );
    assert!(
        stderr.contains("checksum") && stderr.contains("cfg-if"),
        "{stderr}"
    );
}

/// A sparse registry nothing listens on: cargo fails if it tries to reach it.
const LOOPBACK_REGISTRY: &str = "sparse+http://127.0.0.1:1/index/";

fn replace_once(path: &Path, from: &str, to: &str) {
    let text = fs::read_to_string(path).unwrap();
    assert_eq!(
        text.matches(from).count(),
        1,
        "{from:?} in {}",
        path.display()
    );
    fs::write(path, text.replace(from, to)).unwrap();
}

#[test]
fn a_crate_from_another_registry_builds_offline_too() {
    if !have_cargo() {
        return;
    }
    // itoa from a registry named `loopback` (cfg-if stays with the default registry), as a lock made
    // against that registry records it.
    let laid = Laid::with_project("locks/cargo/app/Cargo.lock", |app| {
        replace_once(
            &app.join("Cargo.toml"),
            "itoa = \"=1.0.11\"",
            "itoa = { version = \"=1.0.11\", registry = \"loopback\" }",
        );
        let text = fs::read_to_string(app.join("Cargo.lock")).unwrap();
        let itoa = "name = \"itoa\"\nversion = \"1.0.11\"\nsource = \"";
        let start = text.find(itoa).unwrap() + itoa.len();
        let end = start + text[start..].find('"').unwrap();
        let changed = format!("{}{LOOPBACK_REGISTRY}{}", &text[..start], &text[end..]);
        fs::write(app.join("Cargo.lock"), changed).unwrap();
    });
    let config = fs::read_to_string(laid.path("crates/config.toml")).unwrap();
    assert!(config.contains(LOOPBACK_REGISTRY), "{config}");
    let registry = format!("registries.loopback.index=\"{LOOPBACK_REGISTRY}\"");
    assert_built(&laid.build_with(&["--config", &registry]));
    assert_eq!(laid.run_binary(), PRINTS);
}
