//! Real, widely used C projects from their upstream release archives (bzip2 1.0.8, Lua 5.4.4),
//! built with the Debian gcc image from `sandbox/debian-gcc`, must be bit-for-bit reproducible:
//! `sealroom check` builds each twice without the cache and compares every output file, then a
//! signed build reproduces from its provenance. The archives are served from a loopback server
//! (the bytes in `tests/fixtures/upstream/`, whose sha256 the specs pin).

mod common;
#[path = "common/http.rs"]
mod http;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::sealroom;
use http::{Reply, TestServer};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The Debian gcc image, made (or found) once by its recipe; the pinned reference.
fn debian_gcc() -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let output = Command::new("bash")
            .arg(format!("{ROOT}/sandbox/debian-gcc/build.sh"))
            .env("SEALROOM", assert_cmd::cargo::cargo_bin("sealroom"))
            .output()
            .expect("bash runs the recipe");
        assert!(
            output.status.success(),
            "sandbox/debian-gcc/build.sh failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .last()
            .unwrap_or_default()
            .trim()
            .to_string()
    })
}

/// `build-specs/<name>/sealroom.toml` in a temp dir, pointed at this machine's image and at
/// `server` for the archive `archive`.
fn spec_for(name: &str, archive: &str, server: &TestServer, dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(format!("{ROOT}/build-specs/{name}/sealroom.toml")).unwrap();
    let text: String = text
        .lines()
        .map(|line| {
            if line.starts_with("image = ") {
                format!("image = \"{}\"", debian_gcc())
            } else if line.starts_with("url = ") {
                format!("url = \"{}\"", server.url(&format!("/{archive}")))
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let path = dir.join("sealroom.toml");
    std::fs::write(&path, text + "\n").unwrap();
    path
}

fn serve(archive: &str) -> TestServer {
    let server = TestServer::start();
    let bytes = std::fs::read(format!("{ROOT}/tests/fixtures/upstream/{archive}")).unwrap();
    // Enough replies for every build below.
    server.route(
        &format!("/{archive}"),
        std::iter::repeat_n(Reply::ok(bytes), 8),
    );
    server
}

fn reproducible(name: &str, archive: &str, artifact: &str) {
    let server = serve(archive);
    let dir = tempfile::tempdir().unwrap();
    let spec = spec_for(name, archive, &server, dir.path());

    let assert = sealroom()
        .arg("check")
        .arg(&spec)
        .args(["--format", "json"])
        .env("SEALROOM_STORE", dir.path().join("store"))
        .assert();
    let output = assert.get_output();
    assert!(
        output.status.success(),
        "{name} is not reproducible:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    let key = dir.path().join("key");
    sealroom()
        .args(["keygen", "--out"])
        .arg(&key)
        .assert()
        .success();
    sealroom()
        .arg("build")
        .arg(&spec)
        .args(["--store", dir.path().join("store").to_str().unwrap()])
        .args(["--out", dir.path().join("out").to_str().unwrap()])
        .arg("--key")
        .arg(key.with_extension("key"))
        .assert()
        .success();
    let provenance = dir
        .path()
        .join("out")
        .join(format!("{artifact}.intoto.jsonl"));
    sealroom()
        .arg("reproduce")
        .arg(&provenance)
        .arg("--source")
        .arg(dir.path())
        .arg("--key")
        .arg(key.with_extension("pub"))
        .assert()
        .success();
}

#[test]
fn docker_bzip2_builds_reproducibly_from_its_upstream_archive() {
    reproducible("bzip2", "bzip2-1.0.8.tar.gz", "bin/bzip2");
}

#[test]
fn docker_lua_builds_reproducibly_from_its_upstream_archive() {
    reproducible("lua", "lua-5.4.4.tar.gz", "bin/lua");
}
