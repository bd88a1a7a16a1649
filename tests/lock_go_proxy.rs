//! The GOPROXY directory `lockfile::go::lay_out` writes, used by the real `go` with the network
//! off: the fixture app's go.sum (written by Go itself, see tests/fixtures/packages/go/README.md)
//! is parsed, each file verified by its `h1:`, laid out, and `go build ./...` and
//! `go test ./...` run against `GOPROXY=file://<layout> GOSUMDB=off GOFLAGS=-mod=readonly`
//! with an empty GOPATH, module cache and build cache. Skipped when `go` is not on PATH, except
//! under CI (`CI=true`), where a missing go is a failure (scripts/ensure-packages.sh installs
//! Debian's golang-go).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sealroom::lockfile::go;
use sealroom::lockfile::{FileKind, LayoutLimits, LockSource, LockedFile, Verified};

const LIMITS: LayoutLimits = LayoutLimits {
    max_bytes: 1 << 20,
    max_entries: 100,
};

fn have_go() -> bool {
    common::tool_available(
        "go",
        "version",
        "apt-get install golang-go; scripts/ensure-packages.sh does",
    )
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The app's go.sum read with the fixture modules' directory as a `file://` proxy, so that each
/// URL names the fixture file; every file verified against its `h1:` before it is laid out.
fn locked_files() -> Vec<(LockedFile, PathBuf)> {
    let go_sum = fixtures().join("locks/go/go.sum");
    let text = fs::read_to_string(&go_sum).unwrap();
    let lock = LockSource {
        display: "tests/fixtures/locks/go/go.sum",
        text: &text,
    };
    let proxy = format!("file://{}/", fixtures().join("packages/go").display());
    let files = go::parse(&lock, &proxy).unwrap();
    assert_eq!(
        files.len(),
        4,
        "the go.sum pins two zips and two go.mod files"
    );
    files
        .into_iter()
        .map(|file| {
            let path = PathBuf::from(file.url.strip_prefix("file://").unwrap());
            go::verify_in(lock.display, &file, &path, &LIMITS)
                .unwrap_or_else(|err| panic!("{err}"));
            (file, path)
        })
        .collect()
}

/// The layout of the locked files that `keep` keeps, in `dir/proxy`.
fn lay_out(dir: &Path, keep: impl Fn(&LockedFile) -> bool) -> PathBuf {
    let files = locked_files();
    let verified: Vec<Verified<'_>> = files
        .iter()
        .filter(|(file, _)| keep(file))
        .map(|(file, path)| Verified {
            file,
            path: path.clone(),
        })
        .collect();
    let root = dir.join("proxy");
    fs::create_dir(&root).unwrap();
    go::lay_out(&verified, &root, &LIMITS).unwrap();
    root
}

/// A copy of the fixture app (go.mod, go.sum, main.go, main_test.go) in `dir/app`.
fn copy_app(dir: &Path) -> PathBuf {
    let app = dir.join("app");
    fs::create_dir(&app).unwrap();
    for entry in fs::read_dir(fixtures().join("locks/go")).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), app.join(entry.file_name())).unwrap();
    }
    app
}

/// `go <args>` in `app` with the network off: only the `file://` proxy, no checksum database,
/// no version control, go.mod and go.sum read-only, and an empty Go home in `dir`.
fn go_offline(dir: &Path, app: &Path, proxy: &Path, args: &[&str]) -> Output {
    Command::new("go")
        .args(args)
        .current_dir(app)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir.join("home"))
        .env("GOPATH", dir.join("gopath"))
        .env("GOMODCACHE", dir.join("gopath/pkg/mod"))
        .env("GOCACHE", dir.join("cache"))
        .env("GOENV", "off")
        .env("GOPROXY", format!("file://{}", proxy.display()))
        .env("GOSUMDB", "off")
        .env("GONOSUMDB", "")
        .env("GOPRIVATE", "")
        .env("GOVCS", "*:off")
        .env("GOTOOLCHAIN", "local")
        // -modcacherw: the module cache stays removable with the temporary directory.
        .env("GOFLAGS", "-mod=readonly -modcacherw")
        .env("CGO_ENABLED", "0")
        .output()
        .expect("go runs")
}

fn text(output: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn go_builds_and_tests_the_app_offline_from_the_layout() {
    if !have_go() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let proxy = lay_out(dir.path(), |_| true);
    let app = copy_app(dir.path());

    let build = go_offline(dir.path(), &app, &proxy, &["build", "./..."]);
    assert!(build.status.success(), "go build ./...: {}", text(&build));
    let test = go_offline(dir.path(), &app, &proxy, &["test", "./..."]);
    assert!(test.status.success(), "go test ./...: {}", text(&test));
    assert!(
        String::from_utf8_lossy(&test.stdout).contains("ok  \texample.internal/app"),
        "{}",
        text(&test)
    );
    let run = go_offline(dir.path(), &app, &proxy, &["run", "."]);
    assert_eq!(
        String::from_utf8_lossy(&run.stdout),
        "hello, SEALROOM!\n",
        "{}",
        text(&run)
    );
    // The modules came from the layout: both are in the (formerly empty) module cache.
    for module in [
        "example.internal/greet@v1.0.0",
        "example.internal/!upper@v1.0.0",
    ] {
        let unpacked = dir.path().join("gopath/pkg/mod").join(module);
        assert!(unpacked.is_dir(), "{} is missing", unpacked.display());
    }
    // go.mod and go.sum are as committed (-mod=readonly: go did not need to change them).
    for name in ["go.mod", "go.sum"] {
        assert_eq!(
            fs::read(app.join(name)).unwrap(),
            fs::read(fixtures().join("locks/go").join(name)).unwrap(),
            "{name}"
        );
    }
}

#[test]
fn go_builds_from_a_layout_whose_go_mod_files_come_from_the_zips() {
    if !have_go() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // As if go.sum pinned only the zips: lay_out takes each .mod from its zip, and go checks
    // it against the app's go.sum, which does pin it.
    let proxy = lay_out(dir.path(), |file| {
        matches!(file.kind, FileKind::GoZip { .. })
    });
    let app = copy_app(dir.path());
    let build = go_offline(dir.path(), &app, &proxy, &["build", "./..."]);
    assert!(build.status.success(), "go build ./...: {}", text(&build));
}

#[test]
fn go_fails_when_the_layout_misses_a_module() {
    if !have_go() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let proxy = lay_out(dir.path(), |file| {
        !file.package.starts_with("example.internal/Upper ")
    });
    assert!(!proxy.join("example.internal/!upper").exists());
    assert!(proxy.join("example.internal/greet/@v/v1.0.0.zip").is_file());
    let app = copy_app(dir.path());
    let build = go_offline(dir.path(), &app, &proxy, &["build", "./..."]);
    assert!(
        !build.status.success(),
        "go build ./... succeeded: {}",
        text(&build)
    );
    let stderr = String::from_utf8_lossy(&build.stderr);
    assert!(
        stderr.contains("example.internal/Upper") && stderr.contains("!upper"),
        "{}",
        text(&build)
    );
}
