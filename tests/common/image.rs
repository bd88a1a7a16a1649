//! Test helper: a busybox root filesystem from the host's static busybox, and the image made of
//! it, imported once per test process as `sealroom-test/busybox`.
//!
//! Use from a test crate with `mod common { pub mod image; }` (or `pub mod image;` in
//! `tests/common/mod.rs`). Nothing here skips: a missing busybox or an unreachable engine fails
//! the test with a message that says how to fix it.

#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::process::Command;

use sealroom::image::RepositoryName;
use sealroom::spec::PinnedImage;
use tokio::sync::OnceCell;

/// Where the host's static busybox is (Debian package `busybox-static`).
pub const HOST_BUSYBOX: &str = "/bin/busybox";
/// The name the shared test image is imported under.
pub const TEST_IMAGE_NAME: &str = "sealroom-test/busybox";

/// Builds a busybox root filesystem in `dir` (which may exist, and must be empty if it does):
/// `/bin/busybox` and one symlink per applet, `/tmp` (1777), `/out`, `/inputs`, and an
/// `/etc/passwd` and `/etc/group` with root and `builder` (uid/gid 1000).
pub fn busybox_rootfs(dir: &Path) {
    assert!(
        Path::new(HOST_BUSYBOX).is_file(),
        "{HOST_BUSYBOX} is missing: the image tests need the host's static busybox\n  \
         hint: apt-get install -y busybox-static"
    );
    let listed = Command::new(HOST_BUSYBOX)
        .arg("--list")
        .output()
        .unwrap_or_else(|error| panic!("cannot run `{HOST_BUSYBOX} --list`: {error}"));
    assert!(
        listed.status.success(),
        "`{HOST_BUSYBOX} --list` failed: {}",
        listed.status
    );
    let applets = String::from_utf8(listed.stdout).expect("busybox lists applets in ASCII");

    for sub in ["bin", "etc", "out", "inputs", "tmp"] {
        fs::create_dir_all(dir.join(sub)).unwrap();
        fs::set_permissions(dir.join(sub), fs::Permissions::from_mode(0o755)).unwrap();
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(dir.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::copy(HOST_BUSYBOX, dir.join("bin/busybox")).unwrap();
    fs::set_permissions(dir.join("bin/busybox"), fs::Permissions::from_mode(0o755)).unwrap();
    for applet in applets
        .split_whitespace()
        .filter(|applet| *applet != "busybox")
    {
        symlink("busybox", dir.join("bin").join(applet)).unwrap();
    }
    let write = |path: &str, text: &str| {
        fs::write(dir.join(path), text).unwrap();
        fs::set_permissions(dir.join(path), fs::Permissions::from_mode(0o644)).unwrap();
    };
    write(
        "etc/passwd",
        "root:x:0:0:root:/root:/bin/sh\nbuilder:x:1000:1000:builder:/tmp:/bin/sh\n",
    );
    write("etc/group", "root:x:0:\nbuilder:x:1000:\n");
}

/// Fails the test saying how to start the engine. Never skips: with or without `CI=true`,
/// tests that need Docker need Docker.
fn no_engine(error: &dyn std::fmt::Display) -> ! {
    panic!(
        "this test needs a reachable Docker engine, and it is not: {error}\n  \
         (CI={}; tests never skip for a missing engine)",
        std::env::var("CI").unwrap_or_default()
    )
}

/// sealroom's engine, connected.
pub async fn engine() -> sealroom::sandbox::docker::DockerEngine {
    sealroom::sandbox::docker::DockerEngine::connect()
        .await
        .unwrap_or_else(|error| no_engine(&error))
}

/// A bollard client of its own, for tests that look at the engine from outside sealroom.
pub async fn docker() -> bollard::Docker {
    let docker = bollard::Docker::connect_with_defaults().unwrap_or_else(|error| no_engine(&error));
    docker
        .negotiate_version()
        .await
        .unwrap_or_else(|error| no_engine(&error))
}

/// The busybox image, imported once per test process as `sealroom-test/busybox`.
pub async fn busybox_image() -> PinnedImage {
    static IMAGE: OnceCell<PinnedImage> = OnceCell::const_new();
    IMAGE
        .get_or_init(|| async {
            let dir = tempfile::tempdir().unwrap();
            busybox_rootfs(dir.path());
            let engine = engine().await;
            let name = RepositoryName::parse(TEST_IMAGE_NAME).unwrap();
            sealroom::image::import(&engine, dir.path(), &name)
                .await
                .unwrap_or_else(|error| panic!("cannot import the busybox test image: {error}"))
                .image
        })
        .await
        .clone()
}

/// Runs an image recipe of `sandbox/` with `args` (the `sealroom` under test does the import)
/// and returns the pinned reference it prints last. One recipe at a time in a test process: two
/// would install debootstrap (apt's lock) or debootstrap at once.
pub fn run_recipe(recipe: &str, args: &[&str]) -> String {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let root = env!("CARGO_MANIFEST_DIR");
    let output = Command::new("bash")
        .arg(format!("{root}/sandbox/{recipe}"))
        .args(args)
        .env("SEALROOM", assert_cmd::cargo::cargo_bin("sealroom"))
        .output()
        .expect("bash runs the recipe");
    assert!(
        output.status.success(),
        "sandbox/{recipe} {} failed:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    let reference = String::from_utf8_lossy(&output.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_string();
    assert!(
        reference.contains("@sha256:"),
        "sandbox/{recipe} printed `{reference}`, not a pinned reference"
    );
    reference
}

/// `sealroom/debian-langs` (python3 and pip, cargo, npm, go from Debian), made by
/// `sandbox/debian-langs/build.sh` once per test process (the tree is cached across processes);
/// the pinned reference. Needs root and the Debian mirror the first time on a machine.
pub fn debian_langs() -> &'static str {
    static IMAGE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    IMAGE.get_or_init(|| run_recipe("debian-langs/build.sh", &[]))
}
