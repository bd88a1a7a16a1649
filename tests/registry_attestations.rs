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
