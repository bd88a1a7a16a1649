//! The lock-file examples, and what a spec author relies on for each lock format.
//!
//! - `examples/{python,rust,node,go}-app/run.sh` run as their READMEs say: a signed build from
//!   the loopback package server, `sealroom check`, `sealroom reproduce`; their output is the
//!   program's and the project's own test report, each made in a network-off step.
//! - Per format (pip, cargo, npm, go), with the example's own spec and lock served by this
//!   test's loopback server ([`http::TestServer`]): a fixture with one byte changed fails the
//!   build with exit 1 naming the package, the lock file and both digests, and leaves nothing in
//!   the store; a build needs no `sealroom pin` (no `sha256`/`output` in the spec, the spec and
//!   the lock unchanged afterwards), and a second build with `--offline` makes no request (with
//!   one step that lists the layout in place of the example's own). That build's SBOM passes
//!   the independent validators, and for pip and cargo lists exactly the files of the lock (each
//!   parsed here from the lock itself), the image's installed Debian packages, and otherwise
//!   only the step, the source, the lock fetch, the image and its os.
//!
//! The image is `sealroom/debian-langs` from `sandbox/debian-langs/build.sh`, made once per test
//! process. Nothing here skips: a missing image, engine or tool fails the test.

mod common;
#[path = "common/http.rs"]
mod http;
#[path = "interop/venv.rs"]
mod venv;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use base64::Engine as _;
use common::{image, sealroom};
use http::{Reply, TestServer};
use sha2::{Digest, Sha256, Sha512};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// One build at a time: the machine has two cores, and each example compiles.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn fixture(relative: &str) -> Vec<u8> {
    let path = format!("{ROOT}/tests/fixtures/packages/{relative}");
    std::fs::read(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
}

// ---- the examples, as their READMEs run them ----

/// `examples/<name>/run.sh` with the binary under test; its stdout.
/// The image is the one this process made: run.sh would re-import it (30 s of hashing).
fn run_example(name: &str) -> String {
    let image = image::debian_langs();
    let _turn = one_at_a_time();
    let output = Command::new("bash")
        .arg(format!("{ROOT}/examples/{name}/run.sh"))
        .env("SEALROOM", assert_cmd::cargo::cargo_bin("sealroom"))
        .env("LANGS_IMAGE", image)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "examples/{name}/run.sh failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn docker_the_python_app_example_installs_its_locked_wheels_offline_passes_its_tests_and_reproduces()
 {
    assert_eq!(
        run_example("python-app"),
        "Hello, offline world!\n\
         tests.test_greeter.GreetTest.test_a_malformed_file_is_iniconfigs_error ok\n\
         tests.test_greeter.GreetTest.test_a_missing_section_is_an_error ok\n\
         tests.test_greeter.GreetTest.test_greets_the_name ok\n\
         tests.test_greeter.GreetTest.test_takes_bytes_and_a_salutation ok\n\
         ran 4 tests: OK\n"
    );
}

#[test]
fn docker_the_rust_app_example_builds_from_its_vendored_crates_offline_passes_its_tests_and_reproduces()
 {
    assert_eq!(
        run_example("rust-app"),
        "be 2 2\nnot 1 1\nor 1 1\nto 2 2\n\
         test counts_words_from_stdin ... ok\n\
         test tests::counts_repeated_words ... ok\n\
         test tests::reports_counts_with_itoa ... ok\n\
         test tests::sums_only_digits ... ok\n\
         6 test targets passed\n"
    );
}

#[test]
fn docker_the_node_app_example_installs_with_npm_ci_offline_passes_its_tests_and_reproduces() {
    assert_eq!(
        run_example("node-app"),
        "tiny:hello Ada\ntiny:hello Grace\n\
         ok - greets each name on its own line\n\
         ok - refuses no names\n\
         2 of 2 tests passed\n"
    );
}

#[test]
fn docker_the_go_app_example_builds_from_its_module_proxy_directory_passes_its_tests_and_reproduces()
 {
    assert_eq!(
        run_example("go-app"),
        "hello, ADA!\nhello, GRACE HOPPER!\n\
         --- PASS: TestGreetings\n\
         --- PASS: TestNoNamesNoGreetings\n\
         ok  \tsealroom.example/go-app\n"
    );
}

// ---- each format against this test's loopback server ----

/// One example's lock format: which example, the lock, and what a registry serves for it.
#[derive(Clone, Copy)]
enum Format {
    Pip,
    Cargo,
    Npm,
    Go,
}

impl Format {
    fn example(self) -> &'static str {
        match self {
            Format::Pip => "python-app",
            Format::Cargo => "rust-app",
            Format::Npm => "node-app",
            Format::Go => "go-app",
        }
    }

    fn lock(self) -> &'static str {
        match self {
            Format::Pip => "requirements.txt",
            Format::Cargo => "Cargo.lock",
            Format::Npm => "package-lock.json",
            Format::Go => "go.sum",
        }
    }

    /// The artifacts a build of the example writes.
    fn artifacts(self) -> &'static [&'static str] {
        match self {
            Format::Pip => &["greeting.txt", "test-report.txt"],
            Format::Cargo => &["bin/rust-app", "counts.txt", "test-report.txt"],
            Format::Npm => &["greetings.txt", "test-report.txt"],
            Format::Go => &["bin/go-app", "greetings.txt", "test-report.txt"],
        }
    }

    /// Every URL path the server answers and its body, as serve-packages.py serves them (the
    /// same paths, so the same `--mirror` prefixes as the examples' run.sh).
    fn routes(self) -> BTreeMap<String, Vec<u8>> {
        let mut routes = BTreeMap::new();
        match self {
            Format::Pip => {
                let files = [
                    ("six", "six-1.16.0-py2.py3-none-any.whl"),
                    ("six", "six-1.16.0.tar.gz"),
                    ("iniconfig", "iniconfig-2.0.0-py3-none-any.whl"),
                    ("iniconfig", "iniconfig-2.0.0.tar.gz"),
                ];
                let mut pages: BTreeMap<&str, Vec<serde_json::Value>> = BTreeMap::new();
                for (project, file) in files {
                    let bytes = fixture(&format!("pypi/{file}"));
                    pages.entry(project).or_default().push(serde_json::json!({
                        "filename": file,
                        "url": format!("https://python-index.internal.example/files/{file}"),
                        "hashes": { "sha256": sha256_hex(&bytes) },
                    }));
                    routes.insert(format!("/pypi/files/{file}"), bytes);
                }
                for (project, files) in pages {
                    let page = serde_json::json!({
                        "meta": { "api-version": "1.0" }, "name": project, "files": files,
                    });
                    routes.insert(
                        format!("/pypi/simple/{project}/"),
                        serde_json::to_vec(&page).unwrap(),
                    );
                }
            }
            Format::Cargo => {
                let config = r#"{"dl": "https://crates.internal.example/api/v1/crates"}"#;
                routes.insert("/crates/index/config.json".into(), config.into());
                for (name, version) in [("itoa", "1.0.11"), ("cfg-if", "1.0.0")] {
                    routes.insert(
                        format!("/crates/api/v1/crates/{name}/{version}/download"),
                        fixture(&format!("crates/{name}-{version}.crate")),
                    );
                }
            }
            Format::Npm => {
                for (name, file) in [
                    ("@sealroom-fixtures/greeting", "greeting-1.0.0.tgz"),
                    ("sealroom-fixtures-tiny", "sealroom-fixtures-tiny-1.0.0.tgz"),
                ] {
                    routes.insert(
                        format!("/npm/{name}/-/{file}"),
                        fixture(&format!("npm/{file}")),
                    );
                }
            }
            Format::Go => {
                // The module proxy files: `<escaped module>/@v/<version>.{mod,zip}`.
                let proxy = PathBuf::from(format!("{ROOT}/tests/fixtures/packages/go"));
                for entry in walkdir::WalkDir::new(&proxy) {
                    let entry = entry.unwrap();
                    let in_at_v = entry.path().parent().is_some_and(|dir| dir.ends_with("@v"));
                    if entry.file_type().is_file() && in_at_v {
                        let relative = entry.path().strip_prefix(&proxy).unwrap();
                        routes.insert(
                            format!("/go/{}", relative.display()),
                            std::fs::read(entry.path()).unwrap(),
                        );
                    }
                }
            }
        }
        routes
    }

    /// The `--mirror` flags that send the example's origins to `server`.
    fn mirrors(self, server: &TestServer) -> Vec<String> {
        let pairs: &[(&str, &str)] = match self {
            Format::Pip => &[("https://python-index.internal.example/", "/pypi/")],
            Format::Cargo => &[
                (
                    "https://github.com/rust-lang/crates.io-index/",
                    "/crates/index/",
                ),
                ("https://crates.internal.example/", "/crates/"),
            ],
            Format::Npm => &[("https://npm-registry.internal.example/", "/npm/")],
            Format::Go => &[("https://go-proxy.internal.example/", "/go/")],
        };
        pairs
            .iter()
            .flat_map(|(prefix, path)| {
                [
                    "--mirror".to_string(),
                    format!("{prefix}={}", server.url(path)),
                ]
            })
            .collect()
    }
}

/// A copy of an example in a temp dir, its spec pinned to this machine's image, with its own
/// store and output directory, and a loopback server serving `routes`.
struct Project {
    format: Format,
    dir: tempfile::TempDir,
    server: TestServer,
}

impl Project {
    fn new(format: Format, routes: &BTreeMap<String, Vec<u8>>) -> Self {
        let image = image::debian_langs();
        let dir = tempfile::tempdir().unwrap();
        let app = dir.path().join("app");
        common::copy_tree(
            &Path::new(ROOT).join("examples").join(format.example()),
            &app,
        );
        let spec = app.join("sealroom.toml");
        let text = std::fs::read_to_string(&spec).unwrap();
        let pinned: Vec<String> = text
            .lines()
            .map(|line| {
                if line.starts_with("image = ") {
                    format!("image = \"{image}\"")
                } else {
                    line.to_string()
                }
            })
            .collect();
        std::fs::write(&spec, pinned.join("\n") + "\n").unwrap();
        let server = TestServer::start();
        for (path, body) in routes {
            server.route(path, [Reply::ok(body.clone())]);
        }
        Self {
            format,
            dir,
            server,
        }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    fn spec(&self) -> PathBuf {
        self.path("app/sealroom.toml")
    }

    fn lock(&self) -> PathBuf {
        self.path("app").join(self.format.lock())
    }

    fn store(&self) -> PathBuf {
        self.path("store")
    }

    /// `sealroom build` of the example through this project's server; `extra` is added.
    fn build(&self, out: &str, extra: &[&str]) -> std::process::Output {
        let _turn = one_at_a_time();
        sealroom()
            .arg("build")
            .arg(self.spec())
            .arg("--store")
            .arg(self.store())
            .arg("--out")
            .arg(self.path(out))
            .args(self.format.mirrors(&self.server))
            .args(extra)
            // sealroom reads crates.io's replacement from cargo's configuration: none here.
            .env("CARGO_HOME", self.path("cargo-home"))
            .output()
            .unwrap()
    }
}

/// What a file with one byte changed looks like to each check: gzip files (.crate, .tgz) get the
/// low byte of the header's MTIME changed, so they still unpack to the same files; others the
/// middle byte.
fn one_byte_changed(bytes: &[u8]) -> Vec<u8> {
    let mut changed = bytes.to_vec();
    let at = if bytes.starts_with(&[0x1f, 0x8b]) {
        4
    } else {
        bytes.len() / 2
    };
    changed[at] ^= 0x01;
    changed
}

/// A Go module zip with one byte of one file's content changed (a zip whose bytes alone were
/// changed would fail to unpack before its `h1:` is checked): the same entries, in the same order.
fn module_zip_with_one_byte_changed(zip_bytes: &[u8], file: &str) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip_bytes)).unwrap();
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let mut changed = false;
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index).unwrap();
        let name = entry.name().unwrap().to_string();
        let mut content = Vec::new();
        entry.read_to_end(&mut content).unwrap();
        if name.ends_with(&format!("/{file}")) {
            content[0] ^= 0x01;
            changed = true;
        }
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        writer.start_file(name, options).unwrap();
        writer.write_all(&content).unwrap();
    }
    assert!(changed, "the zip has no file {file}");
    writer.finish().unwrap().into_inner()
}

/// Go's `h1:` of a module zip (golang.org/x/mod/sumdb/dirhash Hash1): the sha256 of the lines
/// `<sha256 hex>  <name>\n` of every file, sorted by name.
fn go_h1(zip_bytes: &[u8]) -> String {
    use std::io::Read;
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip_bytes)).unwrap();
    let mut files = BTreeMap::new();
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index).unwrap();
        let mut content = Vec::new();
        entry.read_to_end(&mut content).unwrap();
        files.insert(entry.name().unwrap().to_string(), sha256_hex(&content));
    }
    // Sorted by name (a BTreeMap), as dirhash sorts the file names.
    let lines: String = files
        .iter()
        .map(|(name, sha256)| format!("{sha256}  {name}\n"))
        .collect();
    let summary = Sha256::digest(lines.as_bytes());
    format!(
        "h1:{}",
        base64::engine::general_purpose::STANDARD.encode(summary)
    )
}

/// Every regular file under `store` whose sha256 is one of `digests`, and every file in its
/// `v1/tmp`: what a refused download must not leave.
fn left_in_store(store: &Path, digests: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    if !store.exists() {
        return found;
    }
    for entry in walkdir::WalkDir::new(store) {
        let entry = entry.unwrap();
        if !entry.file_type().is_file() {
            continue;
        }
        let path = entry.path();
        if path.starts_with(store.join("v1/tmp")) {
            found.push(format!("{} (in v1/tmp)", path.display()));
        } else if digests.contains(&sha256_hex(&std::fs::read(path).unwrap())) {
            found.push(format!("{} (the tampered bytes)", path.display()));
        }
    }
    found
}

/// One fixture served with one byte changed: the build fails with exit 1 naming the package, the
/// lock file and both digests, and nothing of the changed file is stored.
fn a_tampered_fixture_is_refused(
    format: Format,
    route: &str,
    tampered: Vec<u8>,
    package: &str,
    expected: &[String],
    found: &[String],
) {
    let mut routes = format.routes();
    let original = routes.insert(route.to_string(), tampered.clone());
    assert!(original.is_some(), "no route {route} to tamper with");
    let project = Project::new(format, &routes);

    let output = project.build("out", &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        project.server.requests(route) > 0,
        "the tampered file was never asked for: {stderr}"
    );
    assert!(stderr.contains(package), "names {package}: {stderr}");
    assert!(stderr.contains(format.lock()), "names the lock: {stderr}");
    for (what, digests) in [("the lock's digest", expected), ("the digest found", found)] {
        assert!(
            digests
                .iter()
                .any(|digest| stderr.contains(digest.as_str())),
            "names {what} ({}): {stderr}",
            digests.join(" or ")
        );
    }
    let left = left_in_store(&project.store(), &[sha256_hex(&tampered)]);
    assert!(left.is_empty(), "left in the store: {left:?}");
    for artifact in format.artifacts() {
        assert!(!project.path("out").join(artifact).exists());
    }
}

#[test]
fn docker_pip_a_tampered_wheel_is_refused_and_nothing_is_stored() {
    let file = "six-1.16.0-py2.py3-none-any.whl";
    let real = fixture(&format!("pypi/{file}"));
    let tampered = one_byte_changed(&real);
    a_tampered_fixture_is_refused(
        Format::Pip,
        &format!("/pypi/files/{file}"),
        tampered.clone(),
        "six",
        &[sha256_hex(&real)],
        &[sha256_hex(&tampered)],
    );
}

#[test]
fn docker_cargo_a_tampered_crate_is_refused_and_nothing_is_stored() {
    let real = fixture("crates/itoa-1.0.11.crate");
    let tampered = one_byte_changed(&real);
    a_tampered_fixture_is_refused(
        Format::Cargo,
        "/crates/api/v1/crates/itoa/1.0.11/download",
        tampered.clone(),
        "itoa",
        &[sha256_hex(&real)],
        &[sha256_hex(&tampered)],
    );
}

#[test]
fn docker_npm_a_tampered_tarball_is_refused_and_nothing_is_stored() {
    let real = fixture("npm/sealroom-fixtures-tiny-1.0.0.tgz");
    let tampered = one_byte_changed(&real);
    let sri = |bytes: &[u8]| {
        let digest = Sha512::digest(bytes);
        [
            format!(
                "sha512-{}",
                base64::engine::general_purpose::STANDARD.encode(digest)
            ),
            hex::encode(digest),
        ]
    };
    a_tampered_fixture_is_refused(
        Format::Npm,
        "/npm/sealroom-fixtures-tiny/-/sealroom-fixtures-tiny-1.0.0.tgz",
        tampered.clone(),
        "sealroom-fixtures-tiny",
        &sri(&real),
        &sri(&tampered),
    );
}

#[test]
fn docker_go_a_module_zip_with_a_changed_file_is_refused_and_nothing_is_stored() {
    let real = fixture("go/example.internal/!upper/@v/v1.0.0.zip");
    let tampered = module_zip_with_one_byte_changed(&real, "upper.go");
    let go_sum = std::fs::read_to_string(format!("{ROOT}/examples/go-app/go.sum")).unwrap();
    assert!(go_sum.contains(&go_h1(&real)), "go_h1 agrees with go.sum");
    a_tampered_fixture_is_refused(
        Format::Go,
        "/go/example.internal/!upper/@v/v1.0.0.zip",
        tampered.clone(),
        "example.internal/Upper",
        &[go_h1(&real)],
        &[go_h1(&tampered)],
    );
}

/// The example's fetch needs no pin: its spec has no `sha256` or `output` for the lock fetch
/// (and no fixed-output fetch), and neither the spec nor the lock is changed by a build. A
/// second build with `--offline` (same store, fresh --out) succeeds without a request. The
/// steps are replaced by one that lists the layout (the examples' own steps run in the tests
/// above; here only the fetch matters, and CI time): each `expected` path must be in it. The
/// first build's SBOM is checked against the lock ([`the_sbom_lists_what_reached_the_layout`]);
/// the layout step takes the example's source too, so that the SBOM has one to list.
fn builds_without_a_pin_and_again_offline(format: Format, expected: &[&str]) {
    let project = Project::new(format, &format.routes());
    let text = std::fs::read_to_string(project.spec()).unwrap();
    let spec: toml::Table = toml::from_str(&text).unwrap();
    let fetches = spec["fetch"].as_array().unwrap();
    assert_eq!(fetches.len(), 1, "one [[fetch]]");
    let fetch = fetches[0].as_table().unwrap();
    assert_eq!(fetch["lock"].as_str(), Some(format.lock()));
    for key in ["sha256", "output", "run", "url"] {
        assert!(!fetch.contains_key(key), "the fetch has no `{key}`");
    }
    let name = fetch["name"].as_str().unwrap();
    let steps_start = text.find("\n[[step]]").expect("the example has steps");
    let listing = format!(
        "{}\n[[step]]\nname = \"layout\"\ninputs = [\"app\", \"{name}\"]\n\
         run = [\"sh\", \"-c\", \"cd /inputs/{name} && find . | LC_ALL=C sort > /out/layout.txt\"]\n\
         artifacts = [\"layout.txt\"]\n",
        &text[..steps_start]
    );
    std::fs::write(project.spec(), &listing).unwrap();
    let lock_before = std::fs::read(project.lock()).unwrap();

    // python-app's build writes both documents, so that the SPDX one is validated too.
    let sbom: &[&str] = match format {
        Format::Pip => &["--sbom", "both"],
        _ => &[],
    };
    let output = project.build("out", sbom);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    the_sbom_lists_what_reached_the_layout(&project);
    assert_eq!(std::fs::read_to_string(project.spec()).unwrap(), listing);
    assert_eq!(std::fs::read(project.lock()).unwrap(), lock_before);
    let asked = project.server.total_requests();
    assert!(asked > 0, "the first build fetched from the server");
    let layout = std::fs::read_to_string(project.path("out/layout.txt")).unwrap();
    for path in expected {
        assert!(
            layout.lines().any(|line| line == *path),
            "{path} in the layout:\n{layout}"
        );
    }

    let offline = project.build("out-offline", &["--offline"]);
    assert!(
        offline.status.success(),
        "{}",
        String::from_utf8_lossy(&offline.stderr)
    );
    assert_eq!(
        project.server.total_requests(),
        asked,
        "the --offline build asked the server for something"
    );
    assert_eq!(
        std::fs::read_to_string(project.path("out-offline/layout.txt")).unwrap(),
        layout
    );
}

#[test]
fn docker_pip_lock_builds_without_a_pin_and_again_offline_without_a_request() {
    builds_without_a_pin_and_again_offline(
        Format::Pip,
        &[
            "./six-1.16.0-py2.py3-none-any.whl",
            "./six-1.16.0.tar.gz",
            "./iniconfig-2.0.0-py3-none-any.whl",
            "./iniconfig-2.0.0.tar.gz",
        ],
    );
}

#[test]
fn docker_cargo_lock_builds_without_a_pin_and_again_offline_without_a_request() {
    builds_without_a_pin_and_again_offline(
        Format::Cargo,
        &[
            "./config.toml",
            "./vendor/itoa-1.0.11/.cargo-checksum.json",
            "./vendor/cfg-if-1.0.0/src/lib.rs",
        ],
    );
}

#[test]
fn docker_npm_lock_builds_without_a_pin_and_again_offline_without_a_request() {
    builds_without_a_pin_and_again_offline(Format::Npm, &["./README.txt", "./_cacache"]);
}

#[test]
fn docker_go_sum_builds_without_a_pin_and_again_offline_without_a_request() {
    builds_without_a_pin_and_again_offline(
        Format::Go,
        &[
            "./example.internal/!upper/@v/v1.0.0.zip",
            "./example.internal/greet/@v/v1.0.0.mod",
        ],
    );
}

// ---- the SBOM of a build from the lock ----

/// One locked file as the SBOM must list it: (name, version, sha256 hex).
type Locked = (String, String, String);

/// Every file the example's lock pins, parsed here from the lock itself (not by sealroom): for
/// requirements.txt each `--hash=sha256:` of a `name==version` entry; for Cargo.lock each
/// `[[package]]` with a `checksum`. `None` for the formats whose SBOM is only validated.
fn locked_files(format: Format, lock: &str) -> Option<BTreeSet<Locked>> {
    let mut files = BTreeSet::new();
    match format {
        Format::Pip => {
            let mut current: Option<(String, String)> = None;
            for line in lock.lines() {
                let trimmed = line.trim();
                if trimmed.starts_with('#') || trimmed.is_empty() {
                    continue;
                }
                if !line.starts_with(' ') {
                    let requirement = trimmed.trim_end_matches('\\').trim();
                    let (name, version) = requirement
                        .split_once("==")
                        .unwrap_or_else(|| panic!("not `name==version`: {line}"));
                    current = Some((name.to_lowercase(), version.to_string()));
                }
                for word in trimmed.split_whitespace() {
                    if let Some(hex) = word.strip_prefix("--hash=sha256:") {
                        let (name, version) = current.clone().expect("a hash after its entry");
                        files.insert((name, version, hex.to_string()));
                    }
                }
            }
        }
        Format::Cargo => {
            let lock: toml::Table = toml::from_str(lock).unwrap();
            for package in lock["package"].as_array().unwrap() {
                if let Some(checksum) = package.get("checksum") {
                    files.insert((
                        package["name"].as_str().unwrap().to_string(),
                        package["version"].as_str().unwrap().to_string(),
                        checksum.as_str().unwrap().to_string(),
                    ));
                }
            }
        }
        Format::Npm | Format::Go => return None,
    }
    assert!(!files.is_empty(), "no locked file parsed from the lock");
    Some(files)
}

/// The purl type and the URL prefix each locked file's download URL has: the origin the lock
/// or the index names, not the loopback mirror it was fetched from.
fn package_origin(format: Format) -> (&'static str, &'static str) {
    match format {
        Format::Pip => ("pkg:pypi/", "https://python-index.internal.example/files/"),
        Format::Cargo => (
            "pkg:cargo/",
            "https://crates.internal.example/api/v1/crates/",
        ),
        Format::Npm | Format::Go => unreachable!("only validated"),
    }
}

/// The installed packages of the image's dpkg status, read with the engine's own CLI (not
/// sealroom): (name, version, architecture).
fn dpkg_installed(image_id: &str) -> BTreeSet<(String, String, String)> {
    let output = Command::new("docker")
        .args(["run", "--rm", "--network", "none", "--entrypoint", "cat"])
        .arg(image_id)
        .arg("/var/lib/dpkg/status")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "cannot read the dpkg status of {image_id}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let status = String::from_utf8(output.stdout).unwrap();
    let mut installed = BTreeSet::new();
    for stanza in status.split("\n\n") {
        let field = |name: &str| {
            stanza
                .lines()
                .find_map(|line| line.strip_prefix(&format!("{name}: ")))
                .map(str::to_string)
        };
        if field("Status").as_deref() == Some("install ok installed") {
            installed.insert((
                field("Package").unwrap(),
                field("Version").unwrap(),
                field("Architecture").unwrap(),
            ));
        }
    }
    installed
}

/// The layout build's `layout.txt.cdx.json` (and `.spdx.json`, when written) pass the
/// independent validators; for python-app and rust-app, the CycloneDX document lists exactly
/// the files of the lock (name, version, sha256, purl, download URL), the image's installed
/// Debian packages, and otherwise only the step, the source, the lock fetch, the image and
/// its os.
fn the_sbom_lists_what_reached_the_layout(project: &Project) {
    let format = project.format;
    let cdx_path = project.path("out/layout.txt.cdx.json");
    let mut documents = vec![cdx_path.clone()];
    let spdx_path = project.path("out/layout.txt.spdx.json");
    if spdx_path.exists() {
        documents.push(spdx_path);
    }
    let documents: Vec<&std::path::Path> = documents.iter().map(|p| p.as_path()).collect();
    venv::assert_sboms_valid(&documents);

    let lock = std::fs::read_to_string(project.lock()).unwrap();
    let Some(locked) = locked_files(format, &lock) else {
        return;
    };
    let document: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cdx_path).unwrap()).unwrap();
    assert_eq!(
        document["metadata"]["component"]["bom-ref"],
        "artifact:layout.txt"
    );
    let components = document["components"].as_array().unwrap();
    let text = |component: &serde_json::Value, key: &str| {
        component[key].as_str().unwrap_or_default().to_string()
    };
    let property = |component: &serde_json::Value, name: &str| {
        component["properties"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|property| property["name"] == name)
            .map(|property| text(property, "value"))
    };

    let (purl_type, url_prefix) = package_origin(format);
    let mut listed = BTreeSet::new();
    for package in components.iter().filter(|component| {
        component["type"] == "library" && !text(component, "purl").starts_with("pkg:deb/")
    }) {
        let (name, version) = (text(package, "name"), text(package, "version"));
        let sha256: Vec<String> = package["hashes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|hash| hash["alg"] == "SHA-256")
            .map(|hash| text(hash, "content"))
            .collect();
        assert_eq!(sha256.len(), 1, "one sha256: {package}");
        assert!(
            text(package, "bom-ref").starts_with("lock:"),
            "a locked package: {package}"
        );
        let purl = text(package, "purl");
        assert!(
            purl.starts_with(&format!("{purl_type}{name}@{version}")),
            "purl {purl} of {name} {version}"
        );
        let urls: Vec<String> = package["externalReferences"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|reference| reference["type"] == "distribution")
            .map(|reference| text(reference, "url"))
            .collect();
        assert!(
            urls.len() == 1 && urls[0].starts_with(url_prefix),
            "the download URL on {url_prefix}: {package}"
        );
        assert!(
            property(package, "sealroom:lockDigest").is_some(),
            "the lock's digest: {package}"
        );
        listed.insert((name.to_lowercase(), version, sha256[0].clone()));
    }
    assert_eq!(listed, locked, "the locked packages, exactly");

    let image = image::debian_langs();
    let image_id = image.rsplit_once('@').unwrap().1;
    let mut debian = BTreeSet::new();
    let mut debian_purls = Vec::new();
    let mut others = BTreeSet::new();
    for component in components {
        let reference = text(component, "bom-ref");
        if reference.starts_with("lock:") {
            continue;
        }
        if let Some(rest) = reference.strip_prefix(&format!("deb:{image_id}/")) {
            let (_, architecture) = rest.rsplit_once(':').unwrap();
            let (name, version) = (text(component, "name"), text(component, "version"));
            let purl = text(component, "purl");
            assert!(
                purl.starts_with("pkg:deb/debian/")
                    && purl.contains(&format!("?arch={architecture}")),
                "a Debian purl: {component}"
            );
            debian_purls.push(purl);
            debian.insert((name, version, architecture.to_string()));
            continue;
        }
        let prefix = ["step:", "source:", "fetch:", "image:", "os:"]
            .into_iter()
            .find(|prefix| reference.starts_with(prefix));
        assert!(prefix.is_some(), "nothing else is listed: {component}");
        others.insert(reference);
    }
    let fetch = format!("fetch:{}", lock_fetch_name(project));
    let expected: BTreeSet<String> = [
        "step:layout".to_string(),
        "source:app".to_string(),
        fetch.clone(),
        format!("image:{image_id}"),
        format!("os:{image_id}"),
    ]
    .into();
    assert_eq!(others, expected);
    let fetch_node = components
        .iter()
        .find(|component| component["bom-ref"] == fetch.as_str())
        .unwrap();
    assert_eq!(
        property(fetch_node, "sealroom:lock").as_deref(),
        Some(format.lock())
    );
    assert_eq!(debian, dpkg_installed(image_id), "the image's dpkg status");
    let tool = match format {
        Format::Pip => "python3",
        _ => "cargo",
    };
    let purl = format!("pkg:deb/debian/{tool}@");
    assert!(
        debian_purls.iter().any(|listed| listed.starts_with(&purl)),
        "{tool} among the Debian packages, as {purl}…"
    );
}

/// The name of the example's one lock fetch.
fn lock_fetch_name(project: &Project) -> String {
    let spec: toml::Table =
        toml::from_str(&std::fs::read_to_string(project.spec()).unwrap()).unwrap();
    spec["fetch"][0]["name"].as_str().unwrap().to_string()
}
