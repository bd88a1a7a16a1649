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
//! sha256 the specs pin), through `--mirror`, so that the specs keep their upstream URLs. Every
//! artifact's SBOM lists the archive with the URL and sha256 its spec names, and passes the
//! independent validators (`tests/interop/sbom_validate.py`). Nothing here is skipped: a
//! missing image or tool fails the test.

mod common;
#[path = "common/http.rs"]
mod http;
#[path = "interop/venv.rs"]
mod venv;

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

/// The archive a build-spec fetches, as its spec names it.
struct Upstream {
    /// The `[[fetch]]`'s name.
    fetch: String,
    url: String,
    sha256: String,
}

impl Upstream {
    /// The one `[[fetch]]` of `build-specs/<name>/sealroom.toml`.
    fn of(name: &str) -> Self {
        let path = format!("{ROOT}/build-specs/{name}/sealroom.toml");
        let spec: toml::Table = toml::from_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|error| panic!("{path}: {error}"));
        let fetch = &spec["fetch"][0];
        let text = |key: &str| {
            fetch[key]
                .as_str()
                .unwrap_or_else(|| panic!("{path}: the fetch has no `{key}`"))
                .to_string()
        };
        Upstream {
            fetch: text("name"),
            url: text("url"),
            sha256: text("sha256"),
        }
    }

    /// The URL's last segment: the path the loopback server serves the archive at.
    fn file_name(&self) -> &str {
        self.url.rsplit('/').next().unwrap_or_default()
    }

    /// `--mirror <the URL's directory>=<server>`: the spec keeps its upstream URL (which the
    /// provenance and the SBOM record), the bytes come from loopback.
    fn mirror(&self, server: &TestServer) -> [String; 2] {
        let directory = &self.url[..self.url.len() - self.file_name().len()];
        [
            "--mirror".to_string(),
            format!("{directory}={}", server.url("/")),
        ]
    }
}

/// `build-specs/<name>/sealroom.toml` in a temp dir, pointed at this machine's image.
fn spec_for(name: &str, dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(format!("{ROOT}/build-specs/{name}/sealroom.toml")).unwrap();
    let text: String = text
        .lines()
        .map(|line| {
            if line.starts_with("image = ") {
                format!("image = \"{}\"", image_for(line))
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

/// A loopback server with the bytes of `tests/fixtures/upstream/<archive>` at `upstream`'s
/// file name.
fn serve(archive: &str, upstream: &Upstream) -> TestServer {
    let server = TestServer::start();
    let bytes = std::fs::read(format!("{ROOT}/tests/fixtures/upstream/{archive}")).unwrap();
    // Enough replies for every build below: two in `check`, the signed build, the reproduction.
    server.route(
        &format!("/{}", upstream.file_name()),
        std::iter::repeat_n(Reply::ok(bytes), 8),
    );
    server
}

/// `sealroom check`, a signed build (both SBOMs), `sealroom verify` of every artifact with its
/// SBOM attestation, the SBOMs' contents, `sealroom reproduce`.
fn reproducible(name: &str, archive: &str, artifacts: &[&str]) {
    let upstream = Upstream::of(name);
    let server = serve(archive, &upstream);
    let mirror = upstream.mirror(&server);
    let dir = tempfile::tempdir().unwrap();
    let spec = spec_for(name, dir.path());

    let assert = sealroom()
        .arg("check")
        .arg(&spec)
        .args(["--format", "json"])
        .args(&mirror)
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
        .args(["--sbom", "both"])
        .args(&mirror)
        .assert()
        .success();
    let mut documents = Vec::new();
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
            .arg("--sbom")
            .arg(out.join(format!("{artifact}.sbom.intoto.jsonl")))
            .assert()
            .success();
        let cdx = out.join(format!("{artifact}.cdx.json"));
        the_sbom_lists_the_upstream_archive(name, &cdx, &upstream, &server);
        documents.push(cdx);
        documents.push(out.join(format!("{artifact}.spdx.json")));
    }
    let documents: Vec<&Path> = documents.iter().map(|p| p.as_path()).collect();
    venv::assert_sboms_valid(&documents);
    sealroom()
        .arg("reproduce")
        .arg(out.join(format!("{}.intoto.jsonl", artifacts[0])))
        .arg("--source")
        .arg(dir.path())
        .arg("--key")
        .arg(key.with_extension("pub"))
        .args(&mirror)
        .assert()
        .success();
}

/// The CycloneDX document `path` lists the upstream archive as the spec names it: its fetch,
/// the spec's URL as the distribution, the spec's sha256, and a purl; the loopback mirror it was
/// downloaded from is only a property.
fn the_sbom_lists_the_upstream_archive(
    name: &str,
    path: &Path,
    upstream: &Upstream,
    server: &TestServer,
) {
    let document: serde_json::Value = serde_json::from_slice(
        &std::fs::read(path).unwrap_or_else(|error| panic!("{}: {error}", path.display())),
    )
    .unwrap();
    let reference = format!("fetch:{}", upstream.fetch);
    let archive = document["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|component| component["bom-ref"] == reference.as_str())
        .unwrap_or_else(|| panic!("{name}: no {reference} in {}", path.display()));
    assert_eq!(
        archive["externalReferences"],
        serde_json::json!([{ "type": "distribution", "url": upstream.url }]),
        "{name}: {archive}"
    );
    assert_eq!(
        archive["hashes"],
        serde_json::json!([{ "alg": "SHA-256", "content": upstream.sha256 }]),
        "{name}: {archive}"
    );
    let purl = archive["purl"].as_str().unwrap_or_default();
    assert!(
        purl.starts_with(&format!(
            "pkg:generic/{}?checksum=sha256:{}",
            upstream.fetch, upstream.sha256
        )),
        "{name}: {purl}"
    );
    let downloaded_from = archive["properties"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|property| property["name"] == "sealroom:downloadedFrom");
    assert_eq!(
        downloaded_from.map(|property| property["value"].clone()),
        Some(serde_json::json!(
            server.url(&format!("/{}", upstream.file_name()))
        )),
        "{name}: {archive}"
    );
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
