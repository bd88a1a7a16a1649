//! The independent validators accept sealroom's SBOMs: a bill with every kind of component,
//! made by the same functions a build uses (`ops::sbom::artifact_bom`, `image_bom`), rendered
//! as CycloneDX 1.6 and SPDX 2.3, passes cyclonedx-python-lib's strict schema validation,
//! spdx-tools' full validation and packageurl-python for every purl; small edits that break
//! each format are refused by the same validators, so the check can fail. The signed SBOM
//! attestation (`write_sboms`) verifies with securesystemslib, line by line.
//!
//! No Docker: the build's results (sources, fetches, the images' contents) are given by hand.
//! The Python tools live in the venv of `scripts/ensure-python.sh` (see `interop_python.rs`).

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use sealroom::digest::{BlobDigest, TreeDigest};
use sealroom::ops::attest::BuildContext;
use sealroom::ops::fetch::{Fetched, Origin};
use sealroom::ops::lock_fetch::LockedDownload;
use sealroom::ops::sbom::{ImageCatalog, LayerOrigin, artifact_bom, image_bom, write_sboms};
use sealroom::sbom::image::{DebPackage, ImageContents, OsRelease};
use sealroom::sbom::{Bom, Kind, SbomChoice, SbomFormat};
use sealroom::sign::keys::{Algorithm, SigningKey};
use serde_json::Value;

#[path = "interop/venv.rs"]
mod venv;
use venv::{python, run_helper};

/// The image steps run in; its contents are in the catalog below.
const SANDBOX: &str = "sealroom-test/debian";
const LOOPBACK_URL: &str = "http://127.0.0.1:38123/x.tar.gz";
const REMOTE_URL: &str = "https://files.example.test/libs/remote-2.0.tar.gz";

fn hex_of(text: &str) -> String {
    BlobDigest::of(text.as_bytes()).hex()
}

fn tree(text: &str) -> TreeDigest {
    format!("sha256:{}", hex_of(text)).parse().unwrap()
}

/// A project on disk (spec, source, lock) and the build results `artifact_bom` reads.
struct Fixture {
    dir: tempfile::TempDir,
    spec: sealroom::spec::Spec,
    fetches: Vec<Fetched>,
    images: ImageCatalog,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let sandbox_id = format!("sha256:{}", hex_of("sandbox image"));
        std::fs::create_dir(dir.path().join("src")).unwrap();
        std::fs::write(
            dir.path().join("src/main.c"),
            "int main(void) { return 0; }\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("requirements.txt"),
            format!("six==1.16.0 \\\n    --hash=sha256:{}\n", hex_of("six")),
        )
        .unwrap();
        let spec = format!(
            r#"version = 1
name = "interop"
source_date_epoch = 1700000000

[sandbox]
image = "{SANDBOX}@{sandbox_id}"

[[source]]
name = "src"
path = "src"

[[fetch]]
name = "local"
url = "{LOOPBACK_URL}"
sha256 = "{local}"
unpack = true

[[fetch]]
name = "remote"
url = "{REMOTE_URL}"
sha256 = "{remote}"

[[fetch]]
name = "deps"
lock = "requirements.txt"
index = "http://127.0.0.1:38123/simple/"

[[step]]
name = "compile"
inputs = ["src", "local", "deps"]
run = ["sh", "-c", "true"]

[[step]]
name = "package"
inputs = ["compile", "remote"]
run = ["sh", "-c", "true"]
artifacts = ["app.txt"]

[[image]]
name = "app-image"
base = "{SANDBOX}@{sandbox_id}"
layers = [{{ step = "package", path = "/app" }}, {{ source = "src", path = "/src" }}]
"#,
            local = hex_of("local"),
            remote = hex_of("remote"),
        );
        std::fs::write(dir.path().join("sealroom.toml"), spec).unwrap();
        let spec = sealroom::spec::load(&dir.path().join("sealroom.toml")).unwrap();

        let download = |name: &str, url: &str, unpack: bool| Fetched {
            name: name.to_string(),
            tree: tree(name),
            cached: false,
            origin: Origin::Download {
                url: url.to_string(),
                final_url: url.to_string(),
                redirects: Vec::new(),
                sha256: BlobDigest::from_hex(&hex_of(name)).unwrap(),
                unpack,
                strip_components: 0,
            },
        };
        let locked = |purl: &str, package: &str, file_name: &str, algorithm: &str| {
            let lock_hex = match algorithm {
                "sha512" => hex::encode([0x5a; 64]),
                _ => hex_of(file_name),
            };
            LockedDownload {
                purl: purl.to_string(),
                package: package.to_string(),
                url: format!("https://files.example.test/{file_name}"),
                downloaded_from: format!("http://127.0.0.1:38123/{file_name}"),
                file_name: file_name.to_string(),
                sha256: BlobDigest::from_hex(&hex_of(file_name)).unwrap(),
                lock_digest: format!("{algorithm}-{lock_hex}"),
                lock_digest_algorithm: algorithm.to_string(),
                lock_digest_hex: lock_hex,
                line: 1,
            }
        };
        // The lock fetch's record: the packages of three ecosystems, as lock fetches of each
        // format would write them (an npm scope is percent-encoded; npm's digest is SHA-512).
        let lock = Fetched {
            name: "deps".to_string(),
            tree: tree("deps"),
            cached: false,
            origin: Origin::Lock {
                lock: "requirements.txt".to_string(),
                lock_sha256: BlobDigest::from_hex(&hex_of("lock")).unwrap(),
                format: sealroom::lockfile::LockFormat::Pip,
                index: Some("http://127.0.0.1:38123/simple/".to_string()),
                files: vec![
                    locked(
                        "pkg:npm/%40scope/name@1.0.0",
                        "@scope/name",
                        "name-1.0.0.tgz",
                        "sha512",
                    ),
                    locked(
                        "pkg:pypi/six@1.16.0",
                        "six",
                        "six-1.16.0-py2.py3-none-any.whl",
                        "sha256",
                    ),
                    locked(
                        "pkg:cargo/serde@1.0.0",
                        "serde",
                        "serde-1.0.0.crate",
                        "sha256",
                    ),
                ],
            },
        };
        let fetches = vec![
            download("local", LOOPBACK_URL, true),
            download("remote", REMOTE_URL, false),
            lock,
        ];

        let deb = |name: &str, version: &str, source: Option<(&str, &str)>| DebPackage {
            name: name.to_string(),
            version: version.to_string(),
            architecture: "amd64".to_string(),
            source: source.map(|(name, _)| name.to_string()),
            source_version: source.map(|(_, version)| version.to_string()),
        };
        let mut images = ImageCatalog::new();
        images.insert(
            sandbox_id,
            ImageContents {
                os: Some(OsRelease {
                    id: "debian".to_string(),
                    version_id: Some("12".to_string()),
                    pretty_name: Some("Debian GNU/Linux 12 (bookworm)".to_string()),
                }),
                packages: vec![
                    deb("bash", "5.2.15-2+b7", Some(("bash", "5.2.15-2"))),
                    deb(
                        "libc6",
                        "2.36-9+deb12u10",
                        Some(("glibc", "2.36-9+deb12u10")),
                    ),
                    deb("util-linux", "2.38.1-5+deb12u3", None),
                    deb(
                        "libgcc-s1",
                        "12.2.0-14+deb12u1",
                        Some(("gcc-12", "12.2.0-14")),
                    ),
                    deb("mawk", "1:1.3.4.20200120-3.1", None),
                ],
            },
        );
        Fixture {
            dir,
            spec,
            fetches,
            images,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn context(&self) -> BuildContext<'_> {
        BuildContext {
            spec: &self.spec,
            build_id: "interop",
            builder_id: sealroom::provenance::DEFAULT_BUILDER_ID,
            started_on: UNIX_EPOCH,
            finished_on: UNIX_EPOCH,
            sources: &[],
            fetches: &self.fetches,
            steps: &[],
        }
    }

    /// The SBOM of `app.txt` (written by step `package`) and of the image `app-image`.
    fn boms(&self) -> (Bom, Bom) {
        let sources: Vec<(&sealroom::spec::Source, TreeDigest)> = self
            .spec
            .sources
            .iter()
            .map(|source| (source, tree("src")))
            .collect();
        let context = BuildContext {
            sources: &sources,
            ..self.context()
        };
        let step = self
            .spec
            .steps
            .iter()
            .find(|step| step.name.as_str() == "package")
            .unwrap();
        let artifact = step.artifacts[0].clone();
        let app = artifact_bom(
            &context,
            &self.images,
            step,
            &artifact,
            &BlobDigest::of(b"app\n"),
        );
        let image = &self.spec.images[0];
        let manifest = BlobDigest::of(b"manifest");
        let base_layer = BlobDigest::of(b"base layer");
        let app_layer = BlobDigest::of(b"app layer");
        let src_layer = BlobDigest::of(b"src layer");
        let tar = "application/vnd.oci.image.layer.v1.tar";
        let gzip = "application/vnd.oci.image.layer.v1.tar+gzip";
        let layers = [
            (LayerOrigin::Base, &base_layer, tar),
            (LayerOrigin::Input(&image.layers[0].input), &app_layer, gzip),
            (LayerOrigin::Input(&image.layers[1].input), &src_layer, gzip),
        ];
        let image = image_bom(&context, &self.images, image, &manifest, &layers);
        (app, image)
    }

    /// Writes `document` as sealroom writes its files; returns the path.
    fn write(&self, name: &str, document: &Value) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, sealroom::sbom::to_file_bytes(document)).unwrap();
        path
    }
}

fn validate(python: &Path, files: &[&Path]) -> venv::Outcome {
    venv::sbom_validate(python, files)
}

#[test]
fn every_kind_of_component_passes_the_validators_in_both_formats() {
    let Some(python) = python() else { return };
    let fixture = Fixture::new();
    let (app, image) = fixture.boms();

    // The fixture is what it claims: every kind of component is in one of the two bills.
    let kinds: Vec<Kind> = app.all().chain(image.all()).map(|c| c.kind).collect();
    for kind in [
        Kind::Artifact,
        Kind::ImageOutput,
        Kind::Step,
        Kind::Source,
        Kind::Download,
        Kind::FetchTree,
        Kind::LockedPackage,
        Kind::BaseImage,
        Kind::OperatingSystem,
        Kind::DebianPackage,
        Kind::Layer,
    ] {
        assert!(kinds.contains(&kind), "no {kind:?} in the fixture");
    }
    let npm = app.get("lock:deps/name-1.0.0.tgz").unwrap();
    assert_eq!(npm.purl.as_deref(), Some("pkg:npm/%40scope/name@1.0.0"));
    assert_eq!(npm.version.as_deref(), Some("1.0.0"));
    assert_eq!(npm.hashes.len(), 2, "SHA-256 and the lock's SHA-512");
    // Debian versions with an epoch and a `+`, as `DebPackage::purl` spells them.
    let purl_of = |name: &str| {
        app.all()
            .find(|c| c.name == name)
            .and_then(|c| c.purl.clone())
            .unwrap()
    };
    assert_eq!(
        purl_of("mawk"),
        "pkg:deb/debian/mawk@1:1.3.4.20200120-3.1?arch=amd64&distro=debian-12"
    );
    assert_eq!(
        purl_of("util-linux"),
        "pkg:deb/debian/util-linux@2.38.1-5%2Bdeb12u3?arch=amd64&distro=debian-12"
    );

    let mut files = Vec::new();
    let mut expected = Vec::new();
    for (name, bom) in [("app.txt", &app), ("app-image", &image)] {
        // Every purl was parsed: three locked packages, five Debian packages, the downloads.
        let purls = bom.all().filter(|c| c.purl.is_some()).count();
        assert!(purls >= 10, "{name}: {purls} purls");
        for format in [SbomFormat::Cyclonedx, SbomFormat::Spdx] {
            let path = fixture.write(&format!("{name}{}", format.suffix()), &format.render(bom));
            expected.push(format!("ok {} ({purls} purls)", path.display()));
            files.push(path);
        }
    }
    let paths: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let outcome = validate(python, &paths);
    assert!(outcome.success, "{}", outcome.text);
    assert_eq!(outcome.text.lines().collect::<Vec<_>>(), expected);
}

#[test]
fn the_validators_refuse_what_breaks_each_format() {
    let Some(python) = python() else { return };
    let fixture = Fixture::new();
    let (app, _) = fixture.boms();
    let cyclonedx = SbomFormat::Cyclonedx.render(&app);
    let spdx = SbomFormat::Spdx.render(&app);
    let cyclonedx_text = String::from_utf8(sealroom::sbom::to_file_bytes(&cyclonedx)).unwrap();
    let spdx_text = String::from_utf8(sealroom::sbom::to_file_bytes(&spdx)).unwrap();
    let refused = |name: &str, text: &str, why: &str| {
        let path = fixture.path(name);
        std::fs::write(&path, text).unwrap();
        let outcome = validate(python, &[&path]);
        assert!(!outcome.success, "{name} passed: {}", outcome.text);
        assert!(outcome.text.contains("FAIL"), "{}", outcome.text);
        assert!(
            outcome.text.contains(why),
            "{name}: {why}: {}",
            outcome.text
        );
    };

    // CycloneDX spells the algorithm `SHA-256`; its schema knows no `sha256`.
    assert!(cyclonedx_text.contains(r#""alg": "SHA-256""#));
    refused(
        "alg.cdx.json",
        &cyclonedx_text.replacen(r#""alg": "SHA-256""#, r#""alg": "sha256""#, 1),
        "CycloneDX 1.6 schema",
    );

    // SPDX spells it `SHA256`.
    assert!(spdx_text.contains(r#""algorithm": "SHA256""#));
    refused(
        "algorithm.spdx.json",
        &spdx_text.replacen(r#""algorithm": "SHA256""#, r#""algorithm": "SHA-256""#, 1),
        "spdx-tools",
    );

    // A loopback URL is no SPDX downloadLocation: sealroom writes NOASSERTION and keeps the URL
    // in sourceInfo; a URL on a host name is the download location itself.
    let package = |document: &Value, name: &str| -> Value {
        document["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|package| package["name"] == name)
            .unwrap_or_else(|| panic!("no package {name}"))
            .clone()
    };
    let local = package(&spdx, "local");
    assert_eq!(local["downloadLocation"], "NOASSERTION");
    assert_eq!(
        local["sourceInfo"],
        format!("downloaded from {LOOPBACK_URL}")
    );
    assert_eq!(package(&spdx, "remote")["downloadLocation"], REMOTE_URL);
    let mut edited = spdx.clone();
    for package in edited["packages"].as_array_mut().unwrap() {
        if package["name"] == "local" {
            package["downloadLocation"] = LOOPBACK_URL.into();
        }
    }
    refused(
        "loopback.spdx.json",
        &String::from_utf8(sealroom::sbom::to_file_bytes(&edited)).unwrap(),
        "download_location",
    );

    // A purl that does not parse: the schema does not care, packageurl-python does.
    let mut edited = cyclonedx.clone();
    edited["components"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|component| component.get("purl").is_some())
        .unwrap()["purl"] = "pkg:".into();
    refused(
        "purl.cdx.json",
        &String::from_utf8(sealroom::sbom::to_file_bytes(&edited)).unwrap(),
        "purl 'pkg:'",
    );
}

#[test]
fn securesystemslib_verifies_every_line_of_the_sbom_attestation() {
    let Some(python) = python() else { return };
    let fixture = Fixture::new();
    let (app, _) = fixture.boms();
    let key = SigningKey::generate(Algorithm::EcdsaP256);
    let public = fixture.path("key.pub");
    std::fs::write(&public, key.verifying_key().to_public_pem()).unwrap();
    let artifact = fixture.path("app.txt");
    std::fs::write(&artifact, b"app\n").unwrap();
    let digest = BlobDigest::of(b"app\n");

    let byproducts = write_sboms(
        &artifact,
        &app,
        SbomChoice::Both,
        "app.txt",
        &digest,
        Some(&key),
    )
    .unwrap()
    .byproducts;
    assert_eq!(byproducts.len(), 2);
    let attestation = fixture.path("app.txt.sbom.intoto.jsonl");
    let check = |subject: &str| {
        run_helper(
            python,
            "sbom_attest_check.py",
            &[attestation.as_ref(), public.as_ref(), subject.as_ref()],
        )
    };
    let outcome = check(&digest.hex());
    assert!(outcome.success, "{}", outcome.text);
    assert!(outcome.text.contains("ok 1 .cdx.json"), "{}", outcome.text);
    assert!(outcome.text.contains("ok 2 .spdx.json"), "{}", outcome.text);
    // The documents' digests are the byproducts the provenance names.
    for (byproduct, suffix) in byproducts.iter().zip([".cdx.json", ".spdx.json"]) {
        let bytes = std::fs::read(fixture.path(&format!("app.txt{suffix}"))).unwrap();
        assert_eq!(
            byproduct.digest.get("sha256"),
            Some(&BlobDigest::of(&bytes).hex())
        );
    }

    // The checker can fail: another subject, a document edited after signing, another key.
    let outcome = check(&BlobDigest::of(b"other").hex());
    assert!(!outcome.success, "{}", outcome.text);
    assert!(outcome.text.contains("subject sha256"), "{}", outcome.text);

    let cdx = fixture.path("app.txt.cdx.json");
    let original = std::fs::read(&cdx).unwrap();
    let mut document: Value = serde_json::from_slice(&original).unwrap();
    document["metadata"]["properties"][0]["value"] = "edited".into();
    std::fs::write(&cdx, sealroom::sbom::to_file_bytes(&document)).unwrap();
    let outcome = check(&digest.hex());
    assert!(!outcome.success, "{}", outcome.text);
    assert!(
        outcome
            .text
            .contains("FAIL line 1: the predicate is not the document"),
        "{}",
        outcome.text
    );
    std::fs::write(&cdx, &original).unwrap();

    let other = SigningKey::generate(Algorithm::Ed25519);
    std::fs::write(&public, other.verifying_key().to_public_pem()).unwrap();
    let outcome = check(&digest.hex());
    assert!(!outcome.success, "{}", outcome.text);
    assert!(
        outcome.text.contains("FAIL line 1: securesystemslib"),
        "{}",
        outcome.text
    );
}
