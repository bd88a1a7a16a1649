//! The SBOMs a real build writes (Docker, busybox, a loopback server for the downloads): each
//! artifact's lists exactly what reached it through the step graph, with the graph; both
//! formats pass the independent validators; `--sbom` chooses the files and removes stale ones;
//! the bytes do not depend on the store or on a warm cache; `verify --sbom` accepts the
//! artifact's own attestation and refuses another artifact's, a forged one and a missing file;
//! an `[[image]]`'s SBOM names its manifest digest and where each layer came from.
//!
//! One project, built four times: cold in two stores (`--sbom both`), then warm in the first
//! with `--sbom spdx` and `--sbom none` into the same `--out`.

mod common;
#[path = "common/http.rs"]
mod http;
#[path = "interop/venv.rs"]
mod venv;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use common::{Project, busybox, sealroom, stderr_of};
use http::{Reply, TestServer};
use sealroom::digest::BlobDigest;
use sealroom::provenance::PAYLOAD_TYPE;
use sealroom::sign::dsse::Envelope;
use sealroom::sign::keys::{Algorithm, SigningKey};
use serde_json::Value;

const ARTIFACTS: [&str; 2] = ["app.txt", "notes-size.txt"];
const IMAGE: &str = "app-image";

fn libgreet_tar_gz() -> Vec<u8> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::default(),
    ));
    let text = b"greet() says hello\n";
    let mut header = tar::Header::new_gnu();
    header.set_size(text.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    builder
        .append_data(&mut header, "libgreet-1.0/greet.txt", &text[..])
        .unwrap();
    builder.into_inner().unwrap().finish().unwrap()
}

const NOTES: &[u8] = b"release notes: nothing of this reaches app.txt\n";

fn steps(libgreet_url: &str, libgreet: &[u8], notes_url: &str, image: &str) -> String {
    format!(
        r#"
[[fetch]]
name = "libgreet"
url = "{libgreet_url}"
sha256 = "{libgreet_sha}"
unpack = true
strip_components = 1

[[fetch]]
name = "notes"
url = "{notes_url}"
sha256 = "{notes_sha}"

[[step]]
name = "prepare"
inputs = ["libgreet", "src"]
run = ["sh", "-c", "cat /inputs/libgreet/greet.txt /inputs/src/greeting.txt > /out/combined"]

[[step]]
name = "package"
inputs = ["prepare"]
run = ["sh", "-c", "tr a-z A-Z < /inputs/prepare/combined > /out/app.txt"]
artifacts = ["app.txt"]

[[step]]
name = "notes-size"
inputs = ["notes"]
run = ["sh", "-c", "cat /inputs/notes/* | wc -c > /out/notes-size.txt"]
artifacts = ["notes-size.txt"]

[[image]]
name = "{IMAGE}"
base = "{image}"
layers = [{{ step = "package", path = "/app" }}]
cmd = ["/bin/cat", "/app/app.txt"]
"#,
        libgreet_sha = BlobDigest::of(libgreet).hex(),
        notes_sha = BlobDigest::of(NOTES).hex(),
    )
}

/// `sealroom build --format json` with `extra`; the report.
fn build(project: &Project, spec: &Path, store: &str, out: &str, extra: &[&str]) -> Value {
    project.build_report(spec, &project.path(store), &project.path(out), extra)
}

fn json(path: &Path) -> Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap()
}

/// The refs of a CycloneDX document's components (the subject not included).
fn component_refs(document: &Value) -> BTreeSet<String> {
    document["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|component| component["bom-ref"].as_str().unwrap().to_string())
        .collect()
}

/// ref → what it depends on.
fn dependencies(document: &Value) -> BTreeMap<String, BTreeSet<String>> {
    document["dependencies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            let on = entry["dependsOn"]
                .as_array()
                .unwrap()
                .iter()
                .map(|to| to.as_str().unwrap().to_string())
                .collect();
            (entry["ref"].as_str().unwrap().to_string(), on)
        })
        .collect()
}

fn component<'a>(document: &'a Value, reference: &str) -> &'a Value {
    document["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|component| component["bom-ref"] == reference)
        .unwrap_or_else(|| panic!("no component {reference}"))
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|item| item.to_string()).collect()
}

/// The SBOM files next to `name` under `out`, by suffix.
fn sbom_files(out: &Path, name: &str) -> Vec<PathBuf> {
    [".cdx.json", ".spdx.json", ".sbom.intoto.jsonl"]
        .iter()
        .map(|suffix| out.join(format!("{name}{suffix}")))
        .collect()
}

/// `sealroom verify out/app.txt --provenance … --key … --sbom SBOM`.
fn verify(out: &Path, public: &Path, sbom: &Path) -> assert_cmd::assert::Assert {
    sealroom()
        .arg("verify")
        .arg(out.join("app.txt"))
        .arg("--provenance")
        .arg(out.join("app.txt.intoto.jsonl"))
        .arg("--key")
        .arg(public)
        .arg("--sbom")
        .arg(sbom)
        .assert()
}

/// app.txt's SBOM attestation with its first line's CycloneDX document edited, signed by `key`.
fn forged(out: &Path, key: &SigningKey) -> String {
    let text = std::fs::read_to_string(out.join("app.txt.sbom.intoto.jsonl")).unwrap();
    let line = text.lines().next().unwrap();
    let envelope = Envelope::from_json(line).unwrap();
    let mut statement: Value = serde_json::from_slice(&envelope.payload).unwrap();
    assert_eq!(statement["predicateType"], "https://cyclonedx.org/bom");
    statement["predicate"]["metadata"]["properties"][0]["value"] = "forged".into();
    let payload = serde_json::to_vec(&statement).unwrap();
    Envelope::sign(PAYLOAD_TYPE, &payload, &[key]).to_json_line()
}

#[test]
fn docker_sboms_list_what_reached_each_artifact_and_verify() {
    let image = busybox();
    let image_ref = format!("image:{}", image.digest);
    let server = TestServer::start();
    let libgreet = libgreet_tar_gz();
    server.route("/libgreet-1.0.tar.gz", [Reply::ok(libgreet.clone())]);
    server.route("/NOTES.txt", [Reply::ok(NOTES)]);
    let libgreet_url = server.url("/libgreet-1.0.tar.gz");
    let project = Project::new();
    let spec = project.write_spec(
        &image.to_string(),
        &steps(
            &libgreet_url,
            &libgreet,
            &server.url("/NOTES.txt"),
            &image.to_string(),
        ),
    );
    let (private, public) = project.keygen("ecdsa-p256");
    let key = private.to_str().unwrap();

    // Cold, in two stores.
    let cold = build(
        &project,
        &spec,
        "store-a",
        "out-a",
        &["--sbom", "both", "--key", key],
    );
    build(
        &project,
        &spec,
        "store-b",
        "out-b",
        &["--sbom", "both", "--key", key],
    );
    let out = project.path("out-a");

    // app.txt: libgreet (URL, sha256), src (tree digest), the image; not notes.
    let app = json(&out.join("app.txt.cdx.json"));
    assert_eq!(
        component_refs(&app),
        set(&[
            "step:package",
            "step:prepare",
            "fetch:libgreet",
            "source:src",
            &image_ref,
        ])
    );
    let fetch = component(&app, "fetch:libgreet");
    assert_eq!(
        fetch["hashes"],
        serde_json::json!([{ "alg": "SHA-256", "content": BlobDigest::of(&libgreet).hex() }])
    );
    assert_eq!(
        fetch["externalReferences"],
        serde_json::json!([{ "type": "distribution", "url": libgreet_url }])
    );
    let source = component(&app, "source:src");
    let tree = source["properties"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "sealroom:tree")
        .expect("the source's tree digest");
    assert!(
        tree["value"].as_str().unwrap().starts_with("sha256:"),
        "{tree}"
    );
    let report_digest = cold["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "app.txt")
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        format!(
            "sha256:{}",
            app["metadata"]["component"]["hashes"][0]["content"]
                .as_str()
                .unwrap()
        ),
        report_digest
    );

    // The graph: artifact → step:package → step:prepare → fetch:libgreet, source:src.
    let graph = dependencies(&app);
    assert_eq!(graph["artifact:app.txt"], set(&["step:package"]));
    assert_eq!(graph["step:package"], set(&["step:prepare", &image_ref]));
    assert_eq!(
        graph["step:prepare"],
        set(&["fetch:libgreet", "source:src", &image_ref])
    );
    assert!(graph["fetch:libgreet"].is_empty());

    // notes-size.txt: notes, and neither libgreet nor src.
    let notes = json(&out.join("notes-size.txt.cdx.json"));
    assert_eq!(
        component_refs(&notes),
        set(&["step:notes-size", "fetch:notes", &image_ref])
    );
    assert_eq!(
        dependencies(&notes)["step:notes-size"],
        set(&["fetch:notes", &image_ref])
    );

    // Both formats of every artifact and of the image pass the validators.
    let files: Vec<PathBuf> = ARTIFACTS
        .iter()
        .chain([&IMAGE])
        .flat_map(|name| {
            [".cdx.json", ".spdx.json"].map(|suffix| out.join(format!("{name}{suffix}")))
        })
        .collect();
    let files: Vec<&Path> = files.iter().map(|f| f.as_path()).collect();
    assert_eq!(files.len(), 6);
    venv::assert_sboms_valid(&files);

    // The store does not show in the documents: two stores, the same bytes.
    for name in ARTIFACTS.iter().chain([&IMAGE]) {
        for suffix in [".cdx.json", ".spdx.json"] {
            let file = format!("{name}{suffix}");
            assert_eq!(
                std::fs::read(out.join(&file)).unwrap(),
                std::fs::read(project.path("out-b").join(&file)).unwrap(),
                "{file} differs between the stores"
            );
        }
    }

    // The image: its subject is the manifest digest; each layer depends on where it came from.
    let manifest_digest = cold["images"][0]["manifest_digest"]
        .as_str()
        .unwrap()
        .to_string();
    let index = json(&out.join(IMAGE).join("index.json"));
    assert_eq!(index["manifests"][0]["digest"], manifest_digest.as_str());
    let manifest = json(
        &out.join(IMAGE)
            .join("blobs/sha256")
            .join(&manifest_digest["sha256:".len()..]),
    );
    let layers: Vec<String> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|layer| format!("layer:{}", layer["digest"].as_str().unwrap()))
        .collect();
    assert!(layers.len() >= 2, "a base layer and the app layer");
    let image_sbom = json(&out.join(format!("{IMAGE}.cdx.json")));
    let subject = &image_sbom["metadata"]["component"];
    assert_eq!(
        subject["hashes"][0]["content"],
        &manifest_digest["sha256:".len()..]
    );
    let graph = dependencies(&image_sbom);
    let subject_ref = subject["bom-ref"].as_str().unwrap();
    assert_eq!(
        graph[subject_ref],
        layers.iter().cloned().collect::<BTreeSet<_>>()
    );
    let (app_layer, base_layers) = layers.split_last().unwrap();
    for base in base_layers {
        assert_eq!(graph[base], set(&[&image_ref]), "{base}");
    }
    assert_eq!(graph[app_layer], set(&["step:package"]));
    assert!(component_refs(&image_sbom).contains("step:prepare"));
    assert!(!component_refs(&image_sbom).contains("fetch:notes"));

    // verify --sbom: app.txt's own attestation passes; another artifact's and forgeries fail.
    verify(&out, &public, &out.join("app.txt.sbom.intoto.jsonl")).success();
    let other = verify(&out, &public, &out.join("notes-size.txt.sbom.intoto.jsonl")).code(4);
    assert!(
        stderr_of(&other).contains("subject"),
        "{}",
        stderr_of(&other)
    );

    let another = SigningKey::generate(Algorithm::EcdsaP256);
    let forged_path = project.path("forged-other-key.sbom.intoto.jsonl");
    std::fs::write(&forged_path, forged(&out, &another)).unwrap();
    let refused = verify(&out, &public, &forged_path).code(4);
    assert!(
        stderr_of(&refused).contains("signature"),
        "{}",
        stderr_of(&refused)
    );

    let same = SigningKey::from_pem_file(&private).unwrap();
    let forged_path = project.path("forged-same-key.sbom.intoto.jsonl");
    std::fs::write(&forged_path, forged(&out, &same)).unwrap();
    let refused = verify(&out, &public, &forged_path).code(4);
    assert!(
        stderr_of(&refused).contains("byproducts"),
        "{}",
        stderr_of(&refused)
    );

    let missing = verify(&out, &public, &project.path("missing.sbom.intoto.jsonl")).code(1);
    assert!(
        stderr_of(&missing).contains("missing.sbom.intoto.jsonl"),
        "{}",
        stderr_of(&missing)
    );

    // Warm, into the same --out with --sbom spdx: nothing runs, the stale CycloneDX files go,
    // the SPDX documents are the cold build's bytes.
    let cold_spdx: Vec<Vec<u8>> = ARTIFACTS
        .iter()
        .chain([&IMAGE])
        .map(|name| std::fs::read(out.join(format!("{name}.spdx.json"))).unwrap())
        .collect();
    let warm = build(
        &project,
        &spec,
        "store-a",
        "out-a",
        &["--sbom", "spdx", "--key", key],
    );
    for step in warm["steps"].as_array().unwrap() {
        assert_eq!(step["cached"], true, "{step}");
    }
    for (name, cold) in ARTIFACTS.iter().chain([&IMAGE]).zip(&cold_spdx) {
        let [cdx, spdx, attestation] = <[PathBuf; 3]>::try_from(sbom_files(&out, name)).unwrap();
        assert!(!cdx.exists(), "stale {}", cdx.display());
        assert_eq!(&std::fs::read(&spdx).unwrap(), cold, "{}", spdx.display());
        let lines = std::fs::read_to_string(&attestation).unwrap();
        assert_eq!(lines.lines().count(), 1, "only the SPDX envelope");
    }
    verify(&out, &public, &out.join("app.txt.sbom.intoto.jsonl")).success();

    // --sbom none: no SBOM file is left next to any artifact.
    let none = build(
        &project,
        &spec,
        "store-a",
        "out-a",
        &["--sbom", "none", "--key", key],
    );
    assert!(
        none["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|step| step["cached"] == true)
    );
    for name in ARTIFACTS.iter().chain([&IMAGE]) {
        for file in sbom_files(&out, name) {
            assert!(!file.exists(), "stale {}", file.display());
        }
        assert!(out.join(format!("{name}.intoto.jsonl")).exists());
    }
}
