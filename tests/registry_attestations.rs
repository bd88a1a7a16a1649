//! Attestations published with the image and read back from the registry (Debian's
//! `docker-registry` 2.8 on a free 127.0.0.1 port, which has no referrers API): `sealroom push`
//! writes cosign's `sha256-<hex>.att` tag and an OCI 1.1 referrer listed by the fallback tag
//! `sha256-<hex>`; a Python script (`tests/interop/registry_attestations.py`, plain urllib)
//! fetches both and securesystemslib verifies the envelopes against the manifest read from the
//! registry. Then `sealroom verify REF` against what a registry writer can do: replace the
//! envelopes (signed by another key), delete one scheme, graft a referrer of another image,
//! and serve oversized layers. With CI=true a missing registry binary fails the test.

mod common;
#[path = "interop/venv.rs"]
mod venv;

use std::path::{Path, PathBuf};

use common::registry::Registry;
use common::{Project, sealroom};

const SLSA: &str = "https://slsa.dev/provenance/v1";
const DSSE: &str = "application/vnd.dsse.envelope.v1+json";

const IMAGE: &str = r#"
[[step]]
name = "app"
run = ["sh", "-c", "mkdir -p /out/bin && printf '#!/bin/sh\\necho attested\\n' > /out/bin/app && chmod 755 /out/bin/app"]

[[image]]
name = "attested"
base = "BASE"
layers = [{ step = "app", path = "/app" }]
cmd = ["/app/bin/app"]
"#;

/// A signed `[[image]]` layout (over the busybox test image) and the public key.
struct Built {
    project: Project,
    layout: PathBuf,
    public: PathBuf,
    manifest_digest: String,
}

fn build_signed_image() -> Built {
    let project = Project::new();
    let base = common::busybox().to_string();
    let spec = project.write_spec(&base, &IMAGE.replace("BASE", &base));
    let (private, public) = project.keygen("ecdsa-p256");
    let report = project.build_report(
        &spec,
        &project.store(),
        &project.out(),
        &["--key", private.to_str().unwrap()],
    );
    let manifest_digest = report["images"][0]["manifest_digest"]
        .as_str()
        .unwrap()
        .to_string();
    let layout = project.out().join("attested");
    assert!(project.out().join("attested.intoto.jsonl").is_file());
    assert!(project.out().join("attested.sbom.intoto.jsonl").is_file());
    Built {
        project,
        layout,
        public,
        manifest_digest,
    }
}

/// `sealroom push LAYOUT REF`: stdout, which must succeed.
fn push(layout: &Path, reference: &str) -> String {
    let output = sealroom()
        .arg("push")
        .arg(layout)
        .arg(reference)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "push failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Runs the registry script: `COMMAND ARGS` on `repository`'s image `digest`.
fn script(
    python: &Path,
    registry: &Registry,
    repository: &str,
    digest: &str,
    args: &[&str],
) -> String {
    let mut all: Vec<&std::ffi::OsStr> = Vec::new();
    let url = registry.url();
    for arg in [url.as_str(), repository, digest] {
        all.push(arg.as_ref());
    }
    all.extend(args.iter().map(|arg| std::ffi::OsStr::new(*arg)));
    let outcome = venv::run_helper(python, "registry_attestations.py", &all);
    assert!(
        outcome.success,
        "registry_attestations.py {args:?}: {}",
        outcome.text
    );
    outcome.text
}

fn inspect(
    python: &Path,
    registry: &Registry,
    repository: &str,
    digest: &str,
    out: &Path,
) -> serde_json::Value {
    let text = script(
        python,
        registry,
        repository,
        digest,
        &["inspect", out.to_str().unwrap()],
    );
    serde_json::from_str(text.trim()).unwrap_or_else(|error| panic!("{error}: {text}"))
}

/// The statement inside the envelope file `path`.
fn statement_of(path: &Path) -> serde_json::Value {
    use base64::Engine as _;
    let envelope: serde_json::Value =
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let payload = base64::engine::general_purpose::STANDARD
        .decode(envelope["payload"].as_str().unwrap())
        .unwrap();
    serde_json::from_slice(&payload).unwrap()
}

/// Checks `envelope` with securesystemslib and its subject against the image manifest the
/// script read from the registry (`image-manifest.json` in `dir`).
fn assert_envelope_verifies(python: &Path, envelope: &Path, public: &Path, dir: &Path) {
    let outcome = venv::run_helper(
        python,
        "sslib_verify.py",
        &[envelope.as_os_str(), public.as_os_str()],
    );
    assert!(outcome.success, "sslib_verify.py: {}", outcome.text);
    let manifest = std::fs::read(dir.join("image-manifest.json")).unwrap();
    let hex = sealroom::digest::BlobDigest::of(&manifest).hex();
    let statement = statement_of(envelope);
    assert!(
        statement["subject"]
            .as_array()
            .unwrap()
            .iter()
            .any(|subject| subject["digest"]["sha256"] == hex.as_str()),
        "subject {} is not the manifest read from the registry ({hex})",
        statement["subject"]
    );
}

#[test]
fn registry_push_publishes_att_tag_and_referrer_that_verify_independently() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let Some(python) = venv::python() else {
        return;
    };
    let built = build_signed_image();
    let digest = &built.manifest_digest;
    let repository = "sealroom-test/attested";
    let reference = format!("{}/{repository}", registry.host());

    let stdout = push(&built.layout, &format!("{reference}:v1"));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], format!("{reference}@{digest}"), "{stdout}");
    let hex = &digest["sha256:".len()..];
    assert!(
        lines[1].starts_with(&format!(
            "attestation .att tag {reference}:sha256-{hex}.att {SLSA} https://cyclonedx.org/bom"
        )),
        "{stdout}"
    );
    assert!(
        lines[2..]
            .iter()
            .all(|line| line.starts_with("attestation OCI referrer ")
                && line.contains(&format!("listed by fallback tag sha256-{hex}"))),
        "{stdout}"
    );

    let dir = built.project.path("inspect");
    let report = inspect(python, &registry, repository, digest, &dir);
    // cosign's tag: DSSE layers with predicateType, the config's diff_ids the layers.
    let att = &report["att"];
    assert_eq!(
        att["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        att["configMediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    let layers = att["layers"].as_array().unwrap();
    assert!(layers.len() >= 2, "provenance and SBOM: {att}");
    let layer_digests: Vec<&serde_json::Value> = layers.iter().map(|l| &l["digest"]).collect();
    assert_eq!(
        att["diff_ids"]
            .as_array()
            .unwrap()
            .iter()
            .collect::<Vec<_>>(),
        layer_digests
    );
    for layer in layers {
        assert_eq!(layer["mediaType"], DSSE);
        assert_eq!(
            layer["annotations"]["dev.cosignproject.cosign/signature"],
            ""
        );
        let file = PathBuf::from(layer["file"].as_str().unwrap());
        assert_eq!(
            layer["annotations"]["predicateType"],
            statement_of(&file)["predicateType"]
        );
        assert_envelope_verifies(python, &file, &built.public, &dir);
    }
    assert_eq!(layers[0]["annotations"]["predicateType"], SLSA);

    // The referrers: no API on this registry, so the fallback tag lists them.
    assert_eq!(report["referrers_api"], 404);
    let fallback = &report["fallback"];
    assert_eq!(
        fallback["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let referrers = fallback["manifests"].as_array().unwrap();
    assert_eq!(referrers.len(), layers.len(), "one referrer per envelope");
    for referrer in referrers {
        assert_eq!(referrer["subject"], digest.as_str());
        assert_eq!(referrer["artifactType"], DSSE);
        assert_eq!(referrer["manifestArtifactType"], DSSE);
        assert_eq!(
            referrer["config"]["mediaType"],
            "application/vnd.oci.empty.v1+json"
        );
        let files = referrer["files"].as_array().unwrap();
        assert_eq!(files.len(), 1);
        let file = PathBuf::from(files[0]["file"].as_str().unwrap());
        assert_eq!(
            referrer["annotations"]["predicateType"],
            statement_of(&file)["predicateType"]
        );
        assert_envelope_verifies(python, &file, &built.public, &dir);
    }

    // A second push adds nothing to either scheme, and says so.
    let again = push(&built.layout, &reference);
    assert!(
        again
            .lines()
            .skip(1)
            .all(|line| line.ends_with("(already there)")),
        "{again}"
    );
    let second = inspect(python, &registry, repository, digest, &dir);
    assert_eq!(second["att"]["layers"], report["att"]["layers"]);
    assert_eq!(
        second["fallback"]["manifests"].as_array().unwrap().len(),
        referrers.len()
    );
}

#[test]
fn registry_push_of_an_unsigned_image_pushes_no_attestation() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let project = Project::new();
    let base = common::busybox().to_string();
    let spec = project.write_spec(&base, &IMAGE.replace("BASE", &base));
    project.build(&spec).success();
    let output = sealroom()
        .arg("push")
        .arg(project.out().join("attested"))
        .arg(format!("{}/sealroom-test/unsigned", registry.host()))
        .output()
        .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stdout.lines().count(), 1, "only the image: {stdout}");
    assert!(
        stderr.contains("no signed attestations next to the layout"),
        "{stderr}"
    );
    assert!(
        !registry.requests().iter().any(|r| r.contains(".att")),
        "{:?}",
        registry.requests()
    );
}

/// `sealroom verify REF --key PUB`: (exit code, stdout, stderr).
fn verify(reference: &str, public: &Path) -> (i32, String, String) {
    let output = sealroom()
        .arg("verify")
        .arg(reference)
        .arg("--key")
        .arg(public)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn registry_verify_reference_holds_against_what_a_registry_writer_can_do() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let Some(python) = venv::python() else {
        return;
    };
    let built = build_signed_image();
    let digest = &built.manifest_digest;
    // One repository per scenario, each with the image and both schemes pushed.
    let pushed = |scenario: &str| {
        let repository = format!("sealroom-test/{scenario}");
        push(&built.layout, &format!("{}/{repository}", registry.host()));
        let reference = format!("{}/{repository}@{digest}", registry.host());
        (repository, reference)
    };

    // Both schemes: passes, naming both.
    let (_, reference) = pushed("both");
    let (code, stdout, stderr) = verify(&reference, &built.public);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stdout.trim(),
        format!("verified {reference} (.att tag, OCI referrer (fallback tag))")
    );
    assert!(
        stderr.contains("found: .att tag, OCI referrer (fallback tag)"),
        "{stderr}"
    );
    assert!(
        stderr
            .lines()
            .filter(|line| line.starts_with("ok   ") && line.contains(SLSA))
            .count()
            == 2,
        "the provenance verifies by both schemes: {stderr}"
    );
    assert!(
        stderr
            .lines()
            .any(|line| line.starts_with("ok   ")
                && line.contains("(sbom https://cyclonedx.org/bom)")),
        "the SBOM verifies too: {stderr}"
    );
    let json = sealroom()
        .args(["--format", "json", "verify"])
        .arg(&reference)
        .arg("--key")
        .arg(&built.public)
        .output()
        .unwrap();
    assert!(json.status.success());
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["verified"], true);
    assert_eq!(report["manifest_digest"], digest.as_str());
    assert_eq!(
        report["schemes"],
        serde_json::json!([".att tag", "OCI referrer (fallback tag)"])
    );

    // Another writer's attestations there first (an unsigned envelope of another type under
    // the .att tag, a referrer of another artifact type in the fallback index): kept, ours
    // added after them, and they do not fail the verification.
    let repository = "sealroom-test/foreign";
    let foreign = script(python, &registry, repository, digest, &["foreign"]);
    let (foreign_layer, foreign_referrer) = foreign.trim().split_once(' ').unwrap();
    push(&built.layout, &format!("{}/{repository}", registry.host()));
    let dir = built.project.path("inspect-foreign");
    let inspected = inspect(python, &registry, repository, digest, &dir);
    let layers = inspected["att"]["layers"].as_array().unwrap();
    assert_eq!(layers[0]["digest"], foreign_layer, "{layers:?}");
    assert_eq!(layers[1]["annotations"]["predicateType"], SLSA);
    let listed = inspected["fallback"]["manifests"].as_array().unwrap();
    assert_eq!(listed[0]["digest"], foreign_referrer);
    assert!(listed.len() >= 3, "{listed:?}");
    let reference = format!("{}/{repository}@{digest}", registry.host());
    let (code, _, stderr) = verify(&reference, &built.public);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "skip OCI referrer (fallback tag) {foreign_referrer}: its artifact type is `application/vnd.example+json`"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("FAIL .att tag sha256-{}.att layer {foreign_layer} (other https://example.com/other/v1)", &digest["sha256:".len()..])),
        "{stderr}"
    );

    // Only one scheme left (the other deleted): still passes, and says which.
    for (scenario, deleted, left) in [
        ("only-referrer", "att", "OCI referrer (fallback tag)"),
        ("only-att", "fallback", ".att tag"),
    ] {
        let (repository, reference) = pushed(scenario);
        script(python, &registry, &repository, digest, &["delete", deleted]);
        let (code, stdout, stderr) = verify(&reference, &built.public);
        assert_eq!(code, 0, "{scenario}: {stderr}");
        assert_eq!(stdout.trim(), format!("verified {reference} ({left})"));
    }

    // Every envelope re-signed by another key: the same payload, a valid signature, the wrong
    // signer. Exit 4.
    let (repository, reference) = pushed("resigned");
    let count = script(python, &registry, &repository, digest, &["resign"]);
    assert!(count.trim().parse::<usize>().unwrap() >= 4, "{count}");
    let (code, _, stderr) = verify(&reference, &built.public);
    assert_eq!(code, 4, "{stderr}");
    assert!(
        stderr.contains("no provenance attestation of") && stderr.contains("signature"),
        "{stderr}"
    );

    // A referrer whose subject is another manifest, listed under this image's fallback tag and
    // holding this image's own valid envelope: not accepted, so nothing is found.
    let (repository, reference) = pushed("grafted");
    let other = script(python, &registry, &repository, digest, &["graft"]);
    let (code, _, stderr) = verify(&reference, &built.public);
    assert_eq!(code, 4, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "its subject is {}, not the image {digest}",
            other.trim()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("no attestation of"), "{stderr}");

    // Oversized layers: one whose descriptor understates it (the registry sends more), one
    // claiming 1 TiB (never downloaded). Both refused; exit 4.
    let (repository, reference) = pushed("oversized");
    let requests_before = registry.requests().len();
    let layers = script(python, &registry, &repository, digest, &["oversize"]);
    let (small, huge) = layers.trim().split_once(' ').unwrap();
    let (code, _, stderr) = verify(&reference, &built.public);
    assert_eq!(code, 4, "{stderr}");
    assert!(
        stderr.contains(&format!("attestation layer {small}"))
            && stderr.contains("is larger than its limit of 100 bytes"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("attestation layer {huge}"))
            && stderr.contains("it was not downloaded"),
        "{stderr}"
    );
    assert!(
        !registry.requests()[requests_before..]
            .iter()
            .any(|request| request.contains(&format!("GET /v2/{repository}/blobs/{huge}"))),
        "the 1 TiB layer was asked for"
    );

    // Nothing published: exit 4, saying where it looked.
    let (repository, reference) = pushed("nothing");
    script(python, &registry, &repository, digest, &["delete", "att"]);
    script(
        python,
        &registry,
        &repository,
        digest,
        &["delete", "fallback"],
    );
    let (code, stdout, stderr) = verify(&reference, &built.public);
    assert_eq!(code, 4, "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    let hex = &digest["sha256:".len()..];
    assert!(
        stderr.contains(&format!("error: no attestation of {reference} found"))
            && stderr.contains(&format!("sha256-{hex}.att"))
            && stderr.contains("hint: push the image with `sealroom push`"),
        "{stderr}"
    );
}

#[test]
fn verify_without_provenance_or_reference_is_a_usage_error_and_unreachable_is_bad_input() {
    let project = Project::new();
    let (_, public) = project.keygen("ed25519");
    let artifact = project.path("src/greeting.txt");
    let output = sealroom()
        .arg("verify")
        .arg(&artifact)
        .arg("--key")
        .arg(&public)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("is a file, and verifying a file needs its provenance")
            && stderr.contains("hint: add `--provenance"),
        "{stderr}"
    );

    // Neither a file nor a reference with a digest.
    let output = sealroom()
        .args(["verify", "127.0.0.1:1/repo:latest", "--key"])
        .arg(&public)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("is neither a file nor a registry reference pinned by digest"),
        "{stderr}"
    );

    // --sbom is for files.
    let digest = format!("sha256:{}", "a".repeat(64));
    let output = sealroom()
        .args([
            "verify",
            &format!("127.0.0.1:1/repo@{digest}"),
            "--sbom",
            "x",
            "--key",
        ])
        .arg(&public)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("leave out --sbom"));

    // Nothing listens on the port: exit 1, naming the registry.
    let port = common::free_port();
    let output = sealroom()
        .args([
            "verify",
            &format!("127.0.0.1:{port}/repo@{digest}"),
            "--key",
        ])
        .arg(&public)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "cannot reach the registry at http://127.0.0.1:{port}/"
        )),
        "{stderr}"
    );
}

#[test]
fn registry_push_refuses_an_attestation_about_another_manifest() {
    use base64::Engine as _;
    let Some(registry) = Registry::start() else {
        return;
    };
    let project = Project::new();
    let base = common::busybox().to_string();
    let spec = project.write_spec(&base, &IMAGE.replace("BASE", &base));
    project.build(&spec).success();
    // A signed-looking provenance whose subject is some other manifest (a stale file).
    let statement = serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "predicateType": SLSA,
        "subject": [{ "name": "attested", "digest": { "sha256": "0".repeat(64) } }],
        "predicate": {},
    });
    let envelope = serde_json::json!({
        "payloadType": "application/vnd.in-toto+json",
        "payload": base64::engine::general_purpose::STANDARD.encode(statement.to_string()),
        "signatures": [{ "keyid": "k", "sig": "AAAA" }],
    });
    let provenance = project.out().join("attested.intoto.jsonl");
    std::fs::write(&provenance, format!("{envelope}\n")).unwrap();
    let output = sealroom()
        .arg("push")
        .arg(project.out().join("attested"))
        .arg(format!("{}/sealroom-test/stale", registry.host()))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "attestation `{}`, line 1 is about sha256 {}",
            provenance.display(),
            "0".repeat(64)
        )) && stderr.contains("it is left from another build"),
        "{stderr}"
    );
    assert!(
        registry.requests().is_empty(),
        "nothing was pushed: {:?}",
        registry.requests()
    );
}
