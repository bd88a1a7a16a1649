//! The npm layout against the host's npm (node 20 / npm 10 here): the cache laid out from the
//! fixture locks installs the fixture project with the documented `npm ci --offline` command,
//! mounted read-only in spirit (every file and folder without write permission, and npm run as
//! uid 1000 when the test runs as root), and a cache missing one tarball fails the install.
//!
//! npm is told to use 127.0.0.1:9 for any registry or proxy it might reach for; `--offline`
//! means it reaches for none.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sealroom::lockfile::{LockSource, LockedFile, Verified, npm};

/// The uid a build step runs as.
const STEP_UID: u32 = 1000;

fn fixture(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(relative)
}

fn npm_available() -> bool {
    common::tool_available("npm", "--version", "apt-get install npm")
        && common::tool_available("node", "--version", "apt-get install nodejs")
}

/// Whether this process runs as root: the owner of a file it creates.
fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    let probe = tempfile::NamedTempFile::new().expect("a temp file");
    probe.as_file().metadata().expect("its metadata").uid() == 0
}

/// A project copied from a fixture lock directory, a cache laid out from its lock, and a home,
/// in a temp dir the step's user can reach.
struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    /// `lock_text` replaces the fixture's lock when given; `leave_out` names a tarball (its file
    /// name) that the cache does not get.
    fn new(fixture_dir: &str, lock_text: Option<String>, leave_out: Option<&str>) -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let project = Self { dir };
        std::fs::create_dir(project.app()).unwrap();
        std::fs::create_dir(project.home()).unwrap();
        let source = fixture(fixture_dir);
        std::fs::copy(
            source.join("package.json"),
            project.app().join("package.json"),
        )
        .unwrap();
        let lock_text = lock_text.unwrap_or_else(|| {
            std::fs::read_to_string(source.join("package-lock.json")).expect("the fixture lock")
        });
        std::fs::write(project.app().join("package-lock.json"), &lock_text).unwrap();

        let lock = LockSource {
            display: "package-lock.json",
            text: &lock_text,
        };
        let files = npm::parse(&lock).expect("the fixture lock parses");
        assert_eq!(files.len(), 2, "the fixture pins two tarballs: {files:#?}");
        let kept: Vec<&LockedFile> = files
            .iter()
            .filter(|file| Some(file.file_name.as_str()) != leave_out)
            .collect();
        assert_eq!(kept.len(), 2 - usize::from(leave_out.is_some()));
        let verified: Vec<Verified<'_>> = kept
            .into_iter()
            .map(|file| Verified {
                file,
                path: fixture("packages/npm").join(&file.file_name),
            })
            .collect();
        std::fs::create_dir(project.cache()).unwrap();
        npm::lay_out(&verified, &project.cache()).expect("the layout is written");
        make_read_only(&project.cache());

        if is_root() {
            for path in [project.app(), project.home()] {
                std::os::unix::fs::chown(&path, Some(STEP_UID), Some(STEP_UID)).unwrap();
                for entry in std::fs::read_dir(&path).unwrap() {
                    std::os::unix::fs::chown(entry.unwrap().path(), Some(STEP_UID), Some(STEP_UID))
                        .unwrap();
                }
            }
        }
        project
    }

    fn app(&self) -> PathBuf {
        self.dir.path().join("app")
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    fn cache(&self) -> PathBuf {
        self.dir.path().join("npmdeps")
    }

    /// `sh -c SCRIPT` in the project, as a step would run it: a clean environment, not root.
    fn run(&self, script: &str) -> Output {
        let mut command = if is_root() {
            let mut setpriv = Command::new("setpriv");
            setpriv.args([
                format!("--reuid={STEP_UID}"),
                format!("--regid={STEP_UID}"),
                "--clear-groups".to_string(),
                "sh".to_string(),
            ]);
            setpriv
        } else {
            Command::new("sh")
        };
        command
            .args(["-c", script])
            .current_dir(self.app())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.home())
            .env("npm_config_registry", "http://127.0.0.1:9/")
            .env("npm_config_proxy", "http://127.0.0.1:9/")
            .env("npm_config_https_proxy", "http://127.0.0.1:9/")
            .output()
            .expect("sh (or setpriv, when the test runs as root) runs")
    }

    fn install(&self) -> Output {
        self.run(&npm::offline_command(self.cache().to_str().unwrap()))
    }
}

fn make_read_only(root: &Path) {
    for entry in walkdir::WalkDir::new(root).contents_first(true) {
        let entry = entry.unwrap();
        let mode = if entry.file_type().is_dir() {
            0o555
        } else {
            0o444
        };
        std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(mode)).unwrap();
    }
}

fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(root)
        .into_iter()
        .map(|entry| entry.unwrap().into_path())
        .collect();
    files.sort();
    files
}

fn text(output: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Installs and then requires the scoped fixture package, which requires the other one.
fn installs_and_runs(project: &Project) {
    let before = files_under(&project.cache());
    let installed = project.install();
    assert!(
        installed.status.success(),
        "npm ci failed:\n{}",
        text(&installed)
    );
    let ran =
        project.run(r#"node -e 'console.log(require("@sealroom-fixtures/greeting")("world"))'"#);
    assert!(ran.status.success(), "node failed:\n{}", text(&ran));
    assert_eq!(String::from_utf8_lossy(&ran.stdout), "tiny:hello world\n");
    assert_eq!(
        files_under(&project.cache()),
        before,
        "npm wrote into the cache"
    );
}

#[test]
fn npm_ci_installs_a_version_3_lock_offline_from_the_read_only_cache() {
    if !npm_available() {
        return;
    }
    installs_and_runs(&Project::new("locks/npm/app-v3", None, None));
}

#[test]
fn npm_ci_installs_a_version_2_lock_offline_from_the_read_only_cache() {
    if !npm_available() {
        return;
    }
    installs_and_runs(&Project::new("locks/npm/app-v2", None, None));
}

#[test]
fn an_entry_pinned_by_sha1_alone_installs_from_its_sha1_content() {
    if !npm_available() {
        return;
    }
    let tarball = std::fs::read(fixture("packages/npm/sealroom-fixtures-tiny-1.0.0.tgz")).unwrap();
    let sha1 = {
        use base64::Engine as _;
        use sha1::Digest as _;
        base64::engine::general_purpose::STANDARD.encode(sha1::Sha1::digest(&tarball))
    };
    let lock = std::fs::read_to_string(fixture("locks/npm/app-v3/package-lock.json")).unwrap();
    let sha512 = "sha512-r1M8Gv8w0ULduzRaKFuc8vgzpG3GxEKFmch1+IXBNTgpvLm0cJ/nxAvA0P4XlU8pYhywb8Iwqm+zMOPy1dfWyA==";
    assert!(lock.contains(sha512), "the fixture pins tiny by sha512");
    let project = Project::new(
        "locks/npm/app-v3",
        Some(lock.replace(sha512, &format!("sha1-{sha1}"))),
        None,
    );
    let sha1_folder = project.cache().join("_cacache/content-v2/sha1");
    assert!(
        sha1_folder.is_dir(),
        "the sha1 entry is laid out under sha1"
    );
    installs_and_runs(&project);
}

#[test]
fn a_cache_missing_one_tarball_fails_the_install() {
    if !npm_available() {
        return;
    }
    let project = Project::new(
        "locks/npm/app-v3",
        None,
        Some("sealroom-fixtures-tiny-1.0.0.tgz"),
    );
    let installed = project.install();
    assert!(
        !installed.status.success(),
        "npm ci succeeded:\n{}",
        text(&installed)
    );
    let stderr = String::from_utf8_lossy(&installed.stderr);
    assert!(stderr.contains("ENOTCACHED"), "{}", text(&installed));
    assert!(
        stderr.contains("sealroom-fixtures-tiny-1.0.0.tgz"),
        "{}",
        text(&installed)
    );
    assert!(
        !project
            .app()
            .join("node_modules/sealroom-fixtures-tiny")
            .exists()
    );
}
