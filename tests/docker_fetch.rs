//! The fetch stage end to end through the binary, against a loopback server the test starts:
//! a pinned archive is downloaded, unpacked and mounted into a network-off step; a mismatch
//! stores nothing; `--offline` needs a warm store; an archive escaping its tree is refused;
//! fixed-output steps must match their pin; `sealroom pin` fills pins in and keeps comments;
//! provenance records each fetch.

mod common;
#[path = "common/http.rs"]
mod http;

use std::path::Path;

use common::{Project, busybox, files_below, sealroom, stderr_of};
use http::{Reply, TestServer};
use sealroom::digest::BlobDigest;

/// `pkg-1.0/docs/readme.txt` in a tar.gz, made with the tar and flate2 crates.
fn package_tar_gz() -> Vec<u8> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::default(),
    ));
    let text = b"fetched through the pinned tarball\n";
    let mut header = tar::Header::new_gnu();
    header.set_size(text.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    builder
        .append_data(&mut header, "pkg-1.0/docs/readme.txt", &text[..])
        .unwrap();
    builder.into_inner().unwrap().finish().unwrap()
}

/// A tar.gz whose second entry is `../evil`.
fn slip_tar_gz() -> Vec<u8> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::default(),
    ));
    for (name, data) in [("ok.txt", &b"fine\n"[..]), ("../evil", &b"escaped\n"[..])] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        // set_path refuses `..`; write the name into the header's bytes as an attacker would.
        header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_cksum();
        builder.append(&header, data).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

fn hex(bytes: &[u8]) -> String {
    BlobDigest::of(bytes).hex()
}

const USE_PKG: &str = r#"
[[step]]
name = "use-pkg"
inputs = ["pkgsrc"]
run = ["sh", "-c", "cp /inputs/pkgsrc/docs/readme.txt /out/readme.txt"]
artifacts = ["readme.txt"]
"#;

fn fetch_table(name: &str, url: &str, sha256: &str, unpack: bool) -> String {
    let unpack = if unpack {
        "unpack = true\nstrip_components = 1\n"
    } else {
        ""
    };
    format!("[[fetch]]\nname = \"{name}\"\nurl = \"{url}\"\nsha256 = \"{sha256}\"\n{unpack}")
}

#[test]
fn docker_a_pinned_archive_is_fetched_unpacked_and_recorded_then_works_offline() {
    let server = TestServer::start();
    let archive = package_tar_gz();
    server.route("/dl/pkg-1.0.tar.gz", [Reply::redirect("/pkg-1.0.tar.gz")]);
    server.route("/pkg-1.0.tar.gz", [Reply::ok(archive.clone())]);
    let project = Project::new();
    let original = server.url("/dl/pkg-1.0.tar.gz");
    let spec = project.write_spec(
        &busybox().to_string(),
        &format!(
            "{}{USE_PKG}",
            fetch_table("pkgsrc", &original, &hex(&archive), true)
        ),
    );
    project.build(&spec).success();
    assert_eq!(
        std::fs::read_to_string(project.out().join("readme.txt")).unwrap(),
        "fetched through the pinned tarball\n"
    );
    assert!(
        project
            .store()
            .join("v1/blobs/sha256")
            .join(hex(&archive))
            .is_file()
    );

    // Provenance: the final URL with the digest, the URL as written and the redirect.
    let line = std::fs::read_to_string(project.out().join("readme.txt.intoto.jsonl")).unwrap();
    let envelope = sealroom::sign::dsse::Envelope::from_json(&line).unwrap();
    let statement: serde_json::Value = serde_json::from_slice(&envelope.payload).unwrap();
    let dependencies = &statement["predicate"]["buildDefinition"]["resolvedDependencies"];
    let fetch = dependencies
        .as_array()
        .unwrap()
        .iter()
        .find(|dependency| dependency["name"] == "fetch:pkgsrc")
        .expect("the fetch is a resolved dependency");
    assert_eq!(fetch["uri"], server.url("/pkg-1.0.tar.gz"));
    assert_eq!(fetch["digest"]["sha256"], hex(&archive));
    assert_eq!(fetch["annotations"]["url"], original);
    assert_eq!(
        fetch["annotations"]["redirects"],
        serde_json::json!([server.url("/pkg-1.0.tar.gz")])
    );

    // A warm store needs no network at all.
    let requests = server.total_requests();
    drop(server);
    let again = project.path("out-offline");
    sealroom()
        .arg("build")
        .arg(&spec)
        .args(["--store", project.store().to_str().unwrap()])
        .args(["--out", again.to_str().unwrap()])
        .arg("--offline")
        .assert()
        .success();
    assert!(again.join("readme.txt").is_file());
    assert!(
        requests >= 2,
        "the first build downloaded (redirect + body)"
    );
}

#[test]
fn docker_a_hash_mismatch_names_url_and_digests_and_stores_nothing() {
    let server = TestServer::start();
    let blob = b"the real bytes".to_vec();
    server.route("/blob.bin", [Reply::ok(blob.clone())]);
    let wrong = hex(b"not the blob");
    let project = Project::new();
    let spec = project.write_spec(
        &busybox().to_string(),
        &format!(
            "{}[[step]]\nname = \"use\"\ninputs = [\"blob\"]\nrun = [\"true\"]\n",
            fetch_table("blob", &server.url("/blob.bin"), &wrong, false)
        ),
    );
    let assert = project.build(&spec).code(1);
    let stderr = stderr_of(&assert);
    assert!(stderr.contains(&server.url("/blob.bin")), "{stderr}");
    assert!(
        stderr.contains(&wrong) && stderr.contains(&hex(&blob)),
        "{stderr}"
    );
    let stored: Vec<String> = files_below(&project.store())
        .into_iter()
        .filter(|path| path.contains(&hex(&blob)))
        .collect();
    assert!(stored.is_empty(), "unverified bytes stored: {stored:?}");
    assert!(files_below(&project.store().join("v1/tmp")).is_empty());
    assert!(!project.out().exists());
}

#[test]
fn docker_offline_with_a_cold_store_lists_every_missing_fetch_and_sends_nothing() {
    let server = TestServer::start();
    let project = Project::new();
    let spec = project.write_spec(
        &busybox().to_string(),
        &format!(
            "{}{}[[step]]\nname = \"use\"\ninputs = [\"one\", \"two\"]\nrun = [\"true\"]\n",
            fetch_table("one", &server.url("/one"), &hex(b"1"), false),
            fetch_table("two", &server.url("/two"), &hex(b"2"), false)
        ),
    );
    let assert = sealroom()
        .arg("fetch")
        .arg(&spec)
        .args(["--store", project.store().to_str().unwrap()])
        .arg("--offline")
        .assert()
        .code(1);
    let stderr = stderr_of(&assert);
    assert!(
        stderr.contains("--offline, and the store lacks 2 fetch(es): `one`"),
        "{stderr}"
    );
    assert!(stderr.contains("`two`"), "{stderr}");
    assert_eq!(server.total_requests(), 0);
}

#[test]
fn docker_an_archive_escaping_its_tree_is_refused() {
    let server = TestServer::start();
    let archive = slip_tar_gz();
    server.route("/slip.tar.gz", [Reply::ok(archive.clone())]);
    let project = Project::new();
    let spec = project.write_spec(
        &busybox().to_string(),
        &format!(
            "[[fetch]]\nname = \"slip\"\nurl = \"{}\"\nsha256 = \"{}\"\nunpack = true\n[[step]]\nname = \"use\"\ninputs = [\"slip\"]\nrun = [\"true\"]\n",
            server.url("/slip.tar.gz"),
            hex(&archive)
        ),
    );
    let assert = project.build(&spec).code(1);
    assert!(
        stderr_of(&assert).contains("../evil"),
        "{}",
        stderr_of(&assert)
    );
    let evil: Vec<String> = files_below(project.dir.path())
        .into_iter()
        .filter(|path| path.ends_with("evil"))
        .collect();
    assert!(evil.is_empty(), "{evil:?}");
}

#[test]
fn docker_a_fixed_output_fetch_must_match_its_pin() {
    let project = Project::new();
    let write = |pin: &str| {
        project.write_spec(
            &busybox().to_string(),
            &format!(
                "[[fetch]]\nname = \"fo\"\nrun = [\"sh\", \"-c\", \"echo hi > /out/f\"]\noutput = \"{pin}\"\n[[step]]\nname = \"use\"\ninputs = [\"fo\"]\nrun = [\"sh\", \"-c\", \"cat /inputs/fo/f > /out/got\"]\nartifacts = [\"got\"]\n"
            ),
        )
    };
    let zeros = format!("sha256:{}", "0".repeat(64));
    let assert = project.build(&write(&zeros)).code(1);
    let stderr = stderr_of(&assert);
    let got = stderr
        .split("produced tree ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or_else(|| panic!("the error shows the tree it got: {stderr}"))
        .to_string();
    assert!(
        !project
            .store()
            .join("v1/trees/sha256")
            .join(&got["sha256:".len()..])
            .exists(),
        "nothing stored"
    );

    project.build(&write(&got)).success();
    assert_eq!(
        std::fs::read_to_string(project.out().join("got")).unwrap(),
        "hi\n"
    );
}

#[test]
fn docker_pin_fills_in_digests_and_keeps_comments() {
    let server = TestServer::start();
    let archive = package_tar_gz();
    server.route("/pkg-1.0.tar.gz", [Reply::ok(archive.clone())]);
    let project = Project::new();
    let spec = project.path("sealroom.toml");
    std::fs::write(
        &spec,
        format!(
            "version = 1\nname = \"t\"\n\n[sandbox]\nimage = \"{}\"\n\n# keep-this-comment\n[[fetch]]\nname = \"pkgsrc\"\nurl = \"{}\" # and this one\nunpack = true\nstrip_components = 1\n\n[[fetch]]\nname = \"fo\"\nrun = [\"sh\", \"-c\", \"echo hi > /out/f\"]\n{USE_PKG}",
            busybox(),
            server.url("/pkg-1.0.tar.gz")
        ),
    )
    .unwrap();
    let assert = sealroom()
        .arg("pin")
        .arg(&spec)
        .args(["--store", project.store().to_str().unwrap()])
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
    assert!(
        stdout.contains(&format!("pkgsrc sha256 {}", hex(&archive))),
        "{stdout}"
    );
    assert!(stdout.contains("fo output sha256:"), "{stdout}");
    let text = std::fs::read_to_string(&spec).unwrap();
    assert!(
        text.contains("# keep-this-comment\n") && text.contains("# and this one"),
        "{text}"
    );
    assert!(
        text.contains(&format!("sha256 = \"{}\"", hex(&archive))),
        "{text}"
    );
    // Pinned, the spec builds; the pin downloaded once, so the build needs no request.
    let before = server.total_requests();
    project.build(&spec).success();
    assert_eq!(server.total_requests(), before);
    assert!(Path::new(&project.out().join("readme.txt")).is_file());
}

#[test]
fn docker_pin_edits_the_inline_fetch_form_and_keeps_the_spec_s_mode() {
    use std::os::unix::fs::PermissionsExt;
    let server = TestServer::start();
    let archive = package_tar_gz();
    server.route("/pkg-1.0.tar.gz", [Reply::ok(archive.clone())]);
    let project = Project::new();
    let spec = project.path("sealroom.toml");
    std::fs::write(
        &spec,
        format!(
            "version = 1\nname = \"t\"\nfetch = [\n  {{ name = \"pkgsrc\", url = \"{}\", unpack = true, strip_components = 1 }}, # inline\n]\n\n[sandbox]\nimage = \"{}\"\n{USE_PKG}",
            server.url("/pkg-1.0.tar.gz"),
            busybox()
        ),
    )
    .unwrap();
    // A mode the user chose (group-writable), which a temp file renamed over it would lose.
    std::fs::set_permissions(&spec, std::fs::Permissions::from_mode(0o664)).unwrap();
    sealroom()
        .arg("pin")
        .arg(&spec)
        .args(["--store", project.store().to_str().unwrap()])
        .assert()
        .success();
    let text = std::fs::read_to_string(&spec).unwrap();
    assert!(
        text.contains(&format!(
            "{{ name = \"pkgsrc\", url = \"{}\", unpack = true, strip_components = 1, sha256 = \"{}\" }}, # inline",
            server.url("/pkg-1.0.tar.gz"),
            hex(&archive)
        )),
        "still one inline table, now pinned: {text}"
    );
    assert_eq!(
        std::fs::metadata(&spec).unwrap().permissions().mode() & 0o7777,
        0o664
    );
    project.build(&spec).success();
}
