//! Lock fetches through the command line, without Docker: `sealroom fetch` reads a lock, asks a
//! loopback index or registry where each file is, downloads it (through `[mirrors]` or
//! `--mirror`), checks it against the lock's own digest, and stores the laid-out tree. The
//! packages are real ones (tests/fixtures/packages), served by the test's own server.
//!
//! Each attack is a test: a mirror serving other bytes than the lock pins stores nothing; a
//! second run with `--offline` opens no socket; no lock fetch needs `sealroom pin`.

mod common;
#[path = "common/http.rs"]
mod http;

use std::fs;
use std::path::{Path, PathBuf};

use http::{Reply, TestServer};
use sealroom::digest::BlobDigest;

const IMAGE: &str =
    "sealroom/busybox@sha256:0000000000000000000000000000000000000000000000000000000000000000";
const SIX: &str = "six-1.16.0-py2.py3-none-any.whl";
const INICONFIG: &str = "iniconfig-2.0.0-py3-none-any.whl";
const ITOA: &str = "itoa-1.0.11.crate";
/// The source crates.io's packages have in every Cargo.lock.
const CRATES_IO: &str = "registry+https://github.com/rust-lang/crates.io-index";

fn fixture(relative: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/packages")
        .join(relative);
    fs::read(&path).unwrap_or_else(|e| panic!("the fixture {}: {e}", path.display()))
}

fn sha256(bytes: &[u8]) -> String {
    BlobDigest::of(bytes).hex()
}

/// One byte changed in the middle: the bytes a compromised mirror serves.
fn tampered(bytes: &[u8]) -> Vec<u8> {
    let mut bytes = bytes.to_vec();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    bytes
}

struct Case {
    dir: tempfile::TempDir,
}

impl Case {
    /// A project whose spec has `fetch` (TOML) and `extra` at the top level, and `files`.
    fn new(fetch: &str, extra: &str, files: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            fs::write(dir.path().join(name), text).unwrap();
        }
        fs::write(
            dir.path().join("sealroom.toml"),
            format!(
                "version = 1\nname = \"locks\"\n\n[sandbox]\nimage = \"{IMAGE}\"\n\n{fetch}\n\n{extra}\n"
            ),
        )
        .unwrap();
        Case { dir }
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    fn fetch(&self, args: &[&str]) -> std::process::Output {
        common::sealroom()
            .arg("--store")
            .arg(self.store())
            .args(["--format", "json", "fetch"])
            .arg(self.dir.path().join("sealroom.toml"))
            .args(args)
            .env_remove("PIP_INDEX_URL")
            .env_remove("GOPROXY")
            .env("CARGO_HOME", self.dir.path().join("cargo-home"))
            .env("NO_PROXY", "127.0.0.1")
            .output()
            .unwrap()
    }

    /// Every file in the store whose bytes are `bytes`, and anything left in its tmp dir.
    fn holds(&self, bytes: &[u8]) -> Vec<String> {
        let wanted = sha256(bytes);
        let mut found = Vec::new();
        for entry in walkdir::WalkDir::new(self.store()).into_iter().flatten() {
            let path = entry.path();
            let name = path.to_string_lossy().to_string();
            if name.contains(&wanted) {
                found.push(name.clone());
            }
            if entry.file_type().is_file() {
                if fs::read(path).is_ok_and(|content| sha256(&content) == wanted) {
                    found.push(name.clone());
                }
                if name.contains("/v1/tmp/") {
                    found.push(name);
                }
            }
        }
        found
    }
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The fetch report of `sealroom --format json fetch`: one entry per fetch.
fn report(output: &std::process::Output) -> serde_json::Value {
    assert!(output.status.success(), "{}", stderr(output));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// A PEP 691 project page listing `files` (name, bytes) under `base`.
fn simple_page(server: &TestServer, project: &str, base: &str, files: &[(&str, &[u8])]) {
    let files: Vec<_> = files
        .iter()
        .map(|(name, bytes)| {
            serde_json::json!({
                "filename": name,
                "url": server.url(&format!("{base}/{name}")),
                "hashes": {"sha256": sha256(bytes)},
            })
        })
        .collect();
    let page = serde_json::json!({"meta": {"api-version": "1.0"}, "name": project, "files": files});
    server.route(
        &format!("/simple/{project}/"),
        [
            Reply::ok(page.to_string())
                .header("Content-Type", "application/vnd.pypi.simple.v1+json"),
        ],
    );
}

fn requirements(six: &[u8], iniconfig: &[u8]) -> String {
    format!(
        "# pip-compile --generate-hashes\niniconfig==2.0.0 \\\n    --hash=sha256:{}\nsix==1.16.0 \\\n    --hash=sha256:{}\n",
        sha256(iniconfig),
        sha256(six)
    )
}

#[test]
fn a_hashed_requirements_file_is_fetched_through_the_index_and_needs_no_pin() {
    let (six, iniconfig) = (
        fixture(&format!("pypi/{SIX}")),
        fixture(&format!("pypi/{INICONFIG}")),
    );
    let server = TestServer::start();
    simple_page(&server, "six", "/files", &[(SIX, &six)]);
    simple_page(&server, "iniconfig", "/files", &[(INICONFIG, &iniconfig)]);
    server.route(&format!("/files/{SIX}"), [Reply::ok(six.clone())]);
    server.route(
        &format!("/files/{INICONFIG}"),
        [Reply::ok(iniconfig.clone())],
    );
    let lock = requirements(&six, &iniconfig);
    let fetch = format!(
        "[[fetch]]\nname = \"pydeps\"\nlock = \"requirements.txt\"\nindex = \"{}\"",
        server.url("/simple/")
    );
    let case = Case::new(&fetch, "", &[("requirements.txt", &lock)]);
    let spec_before = fs::read(case.dir.path().join("sealroom.toml")).unwrap();

    let fetched = report(&case.fetch(&[]));
    let origin = &fetched[0];
    assert_eq!(origin["kind"], "lock", "{origin}");
    assert_eq!(origin["format"], "pip");
    let files = origin["files"].as_array().unwrap();
    let purls: Vec<&str> = files.iter().map(|f| f["purl"].as_str().unwrap()).collect();
    assert_eq!(purls, ["pkg:pypi/iniconfig@2.0.0", "pkg:pypi/six@1.16.0"]);
    assert_eq!(files[1]["sha256"], format!("sha256:{}", sha256(&six)));
    assert_eq!(files[1]["url"], server.url(&format!("/files/{SIX}")));
    // The spec and the lock are as they were: the lock's digests are the pins.
    assert_eq!(
        fs::read(case.dir.path().join("sealroom.toml")).unwrap(),
        spec_before
    );
    assert!(!case.holds(&six).is_empty(), "the wheel is stored");

    // A warm store: --offline opens no socket, and the record of the files is kept.
    let requests = server.total_requests();
    let again = report(&case.fetch(&["--offline"]));
    assert_eq!(
        server.total_requests(),
        requests,
        "--offline asked the server"
    );
    assert_eq!(again[0]["cached"], true);
    assert_eq!(again[0]["tree"], origin["tree"]);
    assert_eq!(again[0]["files"], origin["files"]);
}

#[test]
fn a_mirror_serving_other_bytes_than_the_lock_pins_stores_nothing() {
    let (six, iniconfig) = (
        fixture(&format!("pypi/{SIX}")),
        fixture(&format!("pypi/{INICONFIG}")),
    );
    let bad = tampered(&six);
    let server = TestServer::start();
    // The index lists the locked digest; the file host sends something else.
    simple_page(&server, "six", "/files", &[(SIX, &six)]);
    simple_page(&server, "iniconfig", "/files", &[(INICONFIG, &iniconfig)]);
    server.route(&format!("/files/{SIX}"), [Reply::ok(bad.clone())]);
    server.route(
        &format!("/files/{INICONFIG}"),
        [Reply::ok(iniconfig.clone())],
    );
    let fetch = format!(
        "[[fetch]]\nname = \"pydeps\"\nlock = \"requirements.txt\"\nindex = \"{}\"",
        server.url("/simple/")
    );
    let case = Case::new(
        &fetch,
        "",
        &[("requirements.txt", &requirements(&six, &iniconfig))],
    );

    let output = case.fetch(&[]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let message = stderr(&output);
    for wanted in [
        "six 1.16.0",
        "requirements.txt:4",
        &sha256(&six),
        &sha256(&bad),
    ] {
        assert!(message.contains(wanted), "no `{wanted}` in: {message}");
    }
    assert_eq!(case.holds(&bad), Vec::<String>::new());
    // Nothing of the lock reached the store, not even the file that did match.
    assert_eq!(case.holds(&iniconfig), Vec::<String>::new());
}

#[test]
fn a_requirement_the_index_does_not_have_is_named() {
    let six = fixture(&format!("pypi/{SIX}"));
    let server = TestServer::start();
    simple_page(&server, "six", "/files", &[(SIX, &six)]);
    let lock = format!(
        "six==1.16.0 --hash=sha256:{}\nno-such-project==1.0 --hash=sha256:{}\n",
        sha256(&six),
        "0".repeat(64)
    );
    let fetch = format!(
        "[[fetch]]\nname = \"pydeps\"\nlock = \"requirements.txt\"\nindex = \"{}\"",
        server.url("/simple/")
    );
    let case = Case::new(&fetch, "", &[("requirements.txt", &lock)]);
    let output = case.fetch(&[]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(
        message.contains("requirements.txt:2") && message.contains("no-such-project"),
        "{message}"
    );
}

#[test]
fn a_pip_lock_without_an_index_says_where_to_give_one() {
    let case = Case::new(
        "[[fetch]]\nname = \"pydeps\"\nlock = \"requirements.txt\"",
        "",
        &[(
            "requirements.txt",
            &format!("six==1.16.0 --hash=sha256:{}\n", "a".repeat(64)),
        )],
    );
    let output = case.fetch(&[]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("PIP_INDEX_URL"),
        "{}",
        stderr(&output)
    );
}

/// A registry that answers `config.json` under `/index/` with downloads under `/dl`.
fn crate_registry(crate_bytes: &[u8]) -> TestServer {
    let server = TestServer::start();
    let config = serde_json::json!({"dl": server.url("/dl"), "api": server.url("/api")});
    server.route(
        "/index/rust-lang/crates.io-index/config.json",
        [Reply::ok(config.to_string()).header("Content-Type", "application/json")],
    );
    server.route(
        "/dl/itoa/1.0.11/download",
        [Reply::ok(crate_bytes.to_vec())],
    );
    server
}

fn cargo_lock(checksum: &str) -> String {
    format!(
        "version = 3\n\n[[package]]\nname = \"app\"\nversion = \"0.1.0\"\ndependencies = [\n \"itoa\",\n]\n\n[[package]]\nname = \"itoa\"\nversion = \"1.0.11\"\nsource = \"{CRATES_IO}\"\nchecksum = \"{checksum}\"\n"
    )
}

#[test]
fn a_cargo_lock_is_fetched_through_a_mirror_of_its_registry() {
    let itoa = fixture(&format!("crates/{ITOA}"));
    let server = crate_registry(&itoa);
    let mirrors = format!(
        "[mirrors]\n\"https://github.com/\" = \"{}\"",
        server.url("/index/")
    );
    let case = Case::new(
        "[[fetch]]\nname = \"crates\"\nlock = \"Cargo.lock\"",
        &mirrors,
        &[("Cargo.lock", &cargo_lock(&sha256(&itoa)))],
    );
    let fetched = report(&case.fetch(&[]));
    let file = &fetched[0]["files"][0];
    assert_eq!(file["purl"], "pkg:cargo/itoa@1.0.11");
    assert_eq!(file["url"], server.url("/dl/itoa/1.0.11/download"));
    assert_eq!(server.requests("/dl/itoa/1.0.11/download"), 1);
}

#[test]
fn the_mirror_flag_sends_downloads_elsewhere_and_overrides_the_spec() {
    let itoa = fixture(&format!("crates/{ITOA}"));
    let server = crate_registry(&itoa);
    // The spec's table points at a server that does not exist; the command line wins.
    let case = Case::new(
        "[[fetch]]\nname = \"crates\"\nlock = \"Cargo.lock\"",
        "[mirrors]\n\"https://github.com/\" = \"http://127.0.0.1:9/nowhere/\"",
        &[("Cargo.lock", &cargo_lock(&sha256(&itoa)))],
    );
    let flag = format!("https://github.com/={}", server.url("/index/"));
    let fetched = report(&case.fetch(&["--mirror", &flag]));
    assert_eq!(
        fetched[0]["files"][0]["sha256"],
        format!("sha256:{}", sha256(&itoa))
    );
    assert_eq!(
        server.requests("/index/rust-lang/crates.io-index/config.json"),
        1
    );

    let output = case.fetch(&["--mirror", "https://github.com/"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("PREFIX=URL"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn cargo_s_own_source_replacement_names_the_registry_to_read() {
    // How a cargo user points crates.io at a mirror: the same configuration serves sealroom.
    let itoa = fixture(&format!("crates/{ITOA}"));
    let server = crate_registry(&itoa);
    let case = Case::new(
        "[[fetch]]\nname = \"crates\"\nlock = \"Cargo.lock\"",
        "",
        &[("Cargo.lock", &cargo_lock(&sha256(&itoa)))],
    );
    let home = case.dir.path().join("cargo-home");
    fs::create_dir(&home).unwrap();
    fs::write(
        home.join("config.toml"),
        format!(
            "[source.crates-io]\nreplace-with = \"company\"\n\n[source.company]\nregistry = \"sparse+{}\"\n",
            server.url("/index/rust-lang/crates.io-index/")
        ),
    )
    .unwrap();
    let fetched = report(&case.fetch(&[]));
    assert_eq!(fetched[0]["files"][0]["purl"], "pkg:cargo/itoa@1.0.11");
    assert_eq!(server.requests("/dl/itoa/1.0.11/download"), 1);
}

#[test]
fn a_tampered_crate_stores_neither_the_crate_nor_its_files() {
    let itoa = fixture(&format!("crates/{ITOA}"));
    let bad = tampered(&itoa);
    let server = crate_registry(&bad);
    let case = Case::new(
        "[[fetch]]\nname = \"crates\"\nlock = \"Cargo.lock\"",
        &format!(
            "[mirrors]\n\"https://github.com/\" = \"{}\"",
            server.url("/index/")
        ),
        &[("Cargo.lock", &cargo_lock(&sha256(&itoa)))],
    );
    let output = case.fetch(&[]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let message = stderr(&output);
    for wanted in ["itoa 1.0.11", "Cargo.lock:", &sha256(&itoa), &sha256(&bad)] {
        assert!(message.contains(wanted), "no `{wanted}` in: {message}");
    }
    assert_eq!(case.holds(&bad), Vec::<String>::new());
}

/// Files written next to a spec: (name, text).
type Files<'a> = &'a [(&'a str, &'a str)];

#[test]
fn a_bad_lock_fetch_is_a_located_spec_error() {
    // (the fetch table, the files next to the spec, what the error must say)
    let cases: &[(&str, Files, &str)] = &[
        (
            "[[fetch]]\nname = \"d\"\nlock = \"missing.lock\"\nformat = \"npm\"",
            &[],
            "cannot read the lock file `missing.lock`",
        ),
        (
            "[[fetch]]\nname = \"d\"\nlock = \"deps.lock\"",
            &[("deps.lock", "")],
            "cannot tell the format of the lock file `deps.lock`",
        ),
        (
            "[[fetch]]\nname = \"d\"\nlock = \"deps.lock\"\nformat = \"maven\"",
            &[("deps.lock", "")],
            "found `maven`",
        ),
        (
            "[[fetch]]\nname = \"d\"\nlock = \"package-lock.json\"\nindex = \"https://a.example/\"",
            &[("package-lock.json", "{}")],
            "`index` does not belong to it",
        ),
        (
            "[[fetch]]\nname = \"d\"\nlock = \"Cargo.lock\"\nsha256 = \"00\"",
            &[("Cargo.lock", "")],
            "so `sha256` does not belong to it",
        ),
        (
            "[[fetch]]\nname = \"d\"\nurl = \"https://a.example/f\"\nformat = \"pip\"",
            &[],
            "has `format` but no `lock`",
        ),
        (
            "[[fetch]]\nname = \"d\"\nlock = \"../Cargo.lock\"",
            &[],
            "inside the spec's directory",
        ),
    ];
    for (fetch, files, wanted) in cases {
        let case = Case::new(fetch, "", files);
        let output = case.fetch(&[]);
        assert_eq!(
            output.status.code(),
            Some(1),
            "{fetch}: {}",
            stderr(&output)
        );
        let message = stderr(&output);
        assert!(
            message.contains(wanted) && message.contains("sealroom.toml:"),
            "{fetch}: want `{wanted}` at a location, got: {message}"
        );
    }
    let case = Case::new(
        "",
        "[mirrors]\n\"https://a.example/\" = \"ftp://b.example/\"",
        &[],
    );
    let output = case.fetch(&[]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("`ftp://b.example/`"),
        "{}",
        stderr(&output)
    );
}
