//! The corpus of `build-specs/`: real, widely used projects from their upstream release archives
//! (bzip2 1.0.8 and Lua 5.4.4 with plain Makefiles, GNU Hello 2.10 and GNU gzip 1.12 with
//! autotools, json-c 0.16 with CMake), each built the way its README says in a scratch copy under
//! `/build`, must be bit-for-bit reproducible: `sealroom check` builds each twice without the
//! cache in fresh stores and compares every output file; then a signed build passes
//! `sealroom verify` for every artifact and `sealroom reproduce` rebuilds it from its provenance.
//!
//! The images come from the recipes in `sandbox/` (`debian-gcc`, and `debian` with cmake), made
//! once per test process; the specs are pointed at what the recipes print on this machine. The
//! archives are served from a loopback server (the bytes in `tests/fixtures/upstream/`, whose
//! sha256 the specs pin). Nothing here is skipped: a missing image or tool fails the test.

mod common;
#[path = "common/http.rs"]
mod http;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::image::run_recipe;
use common::sealroom;
use http::{Reply, TestServer};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The Debian gcc image, made (or found) once by its recipe; the pinned reference.
fn debian_gcc() -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| run_recipe("debian-gcc/build.sh", &[]))
}

/// The Debian image with cmake (for json-c), made once by the generic recipe.
fn debian_cmake() -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| {
        run_recipe(
            "debian/build.sh",
            &[
                "--name",
                "sealroom/debian-cmake",
                "gcc",
                "libc6-dev",
                "make",
                "cmake",
            ],
        )
    })
}

/// This machine's reference for the image a spec line `image = "<repository>@sha256:…"` names.
fn image_for(line: &str) -> &'static str {
    let repository = line
        .trim_start_matches("image = \"")
        .split('@')
        .next()
        .unwrap_or_default();
    match repository {
        "sealroom/debian-gcc" => debian_gcc(),
        "sealroom/debian-cmake" => debian_cmake(),
        other => panic!("no recipe in sandbox/ makes the image `{other}` ({line})"),
    }
}

/// `build-specs/<name>/sealroom.toml` in a temp dir, pointed at this machine's image and at
/// `server` for the archive `archive`.
fn spec_for(name: &str, archive: &str, server: &TestServer, dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(format!("{ROOT}/build-specs/{name}/sealroom.toml")).unwrap();
    let text: String = text
        .lines()
        .map(|line| {
            if line.starts_with("image = ") {
                format!("image = \"{}\"", image_for(line))
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
    // Enough replies for every build below: two in `check`, the signed build, the reproduction.
    server.route(
        &format!("/{archive}"),
        std::iter::repeat_n(Reply::ok(bytes), 8),
    );
    server
}

/// `sealroom check`, a signed build, `sealroom verify` of every artifact, `sealroom reproduce`.
fn reproducible(name: &str, archive: &str, artifacts: &[&str]) {
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
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        report["reproducible"], true,
        "{name}: sealroom check reports {report}"
    );

    let key = dir.path().join("key");
    sealroom()
        .args(["keygen", "--out"])
        .arg(&key)
        .assert()
        .success();
    let out = dir.path().join("out");
    sealroom()
        .arg("build")
        .arg(&spec)
        .arg("--store")
        .arg(dir.path().join("store"))
        .arg("--out")
        .arg(&out)
        .arg("--key")
        .arg(key.with_extension("key"))
        .assert()
        .success();
    for artifact in artifacts {
        let path = out.join(artifact);
        let bytes = std::fs::read(&path)
            .unwrap_or_else(|error| panic!("{name}: no artifact {artifact}: {error}"));
        assert!(!bytes.is_empty(), "{name}: {artifact} is empty");
        sealroom()
            .arg("verify")
            .arg(&path)
            .arg("--provenance")
            .arg(out.join(format!("{artifact}.intoto.jsonl")))
            .arg("--key")
            .arg(key.with_extension("pub"))
            .assert()
            .success();
    }
    sealroom()
        .arg("reproduce")
        .arg(out.join(format!("{}.intoto.jsonl", artifacts[0])))
        .arg("--source")
        .arg(dir.path())
        .arg("--key")
        .arg(key.with_extension("pub"))
        .assert()
        .success();
}

#[test]
fn docker_bzip2_builds_reproducibly_from_its_upstream_archive() {
    reproducible(
        "bzip2",
        "bzip2-1.0.8.tar.gz",
        &[
            "bin/bzip2",
            "bin/bzip2recover",
            "lib/libbz2.a",
            "include/bzlib.h",
        ],
    );
}

#[test]
fn docker_lua_builds_reproducibly_from_its_upstream_archive() {
    reproducible(
        "lua",
        "lua-5.4.4.tar.gz",
        &["bin/lua", "bin/luac", "lib/liblua.a", "include/lua.h"],
    );
}

#[test]
fn docker_hello_builds_reproducibly_from_its_upstream_archive() {
    reproducible("hello", "hello-2.10.tar.gz", &["usr/bin/hello"]);
}

#[test]
fn docker_gzip_builds_reproducibly_from_its_upstream_archive() {
    reproducible("gzip", "gzip-1.12.tar.xz", &["usr/bin/gzip"]);
}

#[test]
fn docker_json_c_builds_reproducibly_from_its_upstream_archive() {
    reproducible(
        "json-c",
        "json-c-json-c-0.16-20220414.tar.gz",
        &[
            "usr/local/lib/libjson-c.so.5.2.0",
            "usr/local/lib/libjson-c.a",
            "usr/local/include/json-c/json.h",
        ],
    );
}

/// Every spec of the corpus pins an archive that is in `tests/fixtures/upstream/` with that very
/// sha256, and lists as artifacts what its test above verifies (no Docker needed).
#[test]
fn corpus_specs_pin_the_committed_archives() {
    let fixtures = Path::new(ROOT).join("tests/fixtures/upstream");
    let readme = std::fs::read_to_string(fixtures.join("README.md")).unwrap();
    let mut specs = Vec::new();
    for entry in std::fs::read_dir(Path::new(ROOT).join("build-specs")).unwrap() {
        let spec_path = entry.unwrap().path().join("sealroom.toml");
        let spec: toml::Value = toml::from_str(&std::fs::read_to_string(&spec_path).unwrap())
            .unwrap_or_else(|error| panic!("{}: {error}", spec_path.display()));
        let name = spec["name"].as_str().unwrap().to_string();
        let fetches = spec["fetch"].as_array().unwrap();
        assert_eq!(fetches.len(), 1, "{name}: one release archive");
        let pinned = fetches[0]["sha256"].as_str().unwrap();
        let found = std::fs::read_dir(&fixtures).unwrap().any(|file| {
            let bytes = std::fs::read(file.unwrap().path()).unwrap();
            sha256_hex(&bytes) == pinned
        });
        assert!(
            found,
            "{name}: no file in tests/fixtures/upstream/ has the pinned sha256 {pinned}"
        );
        assert!(
            readme.contains(pinned),
            "{name}: tests/fixtures/upstream/README.md does not list {pinned}"
        );
        assert!(
            spec.get("source_date_epoch").is_some(),
            "{name}: no source_date_epoch (the release date)"
        );
        specs.push(name);
    }
    specs.sort();
    assert_eq!(specs, ["bzip2", "gzip", "hello", "json-c", "lua"]);
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
