//! A [`Bom`] as a CycloneDX 1.6 JSON document.
//!
//! The described artifact is `metadata.component`; `metadata.lifecycles` says `build`, since the
//! document lists what went into the build, not what a scan of the output finds. Every other
//! component is in `components`, and `dependencies` holds the graph (artifact → step → inputs),
//! with an entry for every component, leaves included. The serial number is derived from the
//! content and the timestamp is `SOURCE_DATE_EPOCH`, so rebuilds of the same inputs write the
//! same bytes.

use serde_json::{Value, json};

use super::{Bom, Component, HashAlgorithm, Kind};

/// `specVersion`.
pub const SPEC_VERSION: &str = "1.6";

/// The CycloneDX document for `bom`.
pub fn document(bom: &Bom) -> Value {
    let dependencies: Vec<Value> = bom
        .all()
        .map(|component| {
            let depends_on: Vec<&String> = bom
                .dependencies
                .get(&component.reference)
                .into_iter()
                .flatten()
                .collect();
            json!({ "ref": component.reference, "dependsOn": depends_on })
        })
        .collect();
    json!({
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": format!("urn:uuid:{}", super::uuid(&bom.identity())),
        "version": 1,
        "metadata": {
            "timestamp": super::timestamp(bom.created),
            "lifecycles": [{ "phase": "build" }],
            "tools": {
                "components": [{
                    "type": "application",
                    "name": "sealroom",
                    "version": env!("CARGO_PKG_VERSION"),
                }],
            },
            "component": component(&bom.subject),
            "properties": [{ "name": "sealroom:project", "value": bom.project }],
        },
        "components": bom.components.iter().map(component).collect::<Vec<_>>(),
        "dependencies": dependencies,
    })
}

/// CycloneDX's component `type` for each kind.
fn component_type(kind: Kind) -> &'static str {
    match kind {
        Kind::Artifact
        | Kind::Step
        | Kind::Source
        | Kind::Download
        | Kind::FetchTree
        | Kind::Layer => "file",
        Kind::ImageOutput | Kind::BaseImage => "container",
        Kind::LockedPackage | Kind::DebianPackage => "library",
        Kind::OperatingSystem => "operating-system",
    }
}

/// CycloneDX's spelling of a hash algorithm.
pub fn algorithm_name(algorithm: HashAlgorithm) -> &'static str {
    match algorithm {
        HashAlgorithm::Sha256 => "SHA-256",
        HashAlgorithm::Sha512 => "SHA-512",
        HashAlgorithm::Sha1 => "SHA-1",
    }
}

fn component(component: &Component) -> Value {
    let mut object = serde_json::Map::new();
    object.insert("type".into(), json!(component_type(component.kind)));
    object.insert("bom-ref".into(), json!(component.reference));
    object.insert("name".into(), json!(component.name));
    if let Some(version) = &component.version {
        object.insert("version".into(), json!(version));
    }
    if let Some(description) = &component.description {
        object.insert("description".into(), json!(description));
    }
    if !component.hashes.is_empty() {
        let hashes: Vec<Value> = component
            .hashes
            .iter()
            .map(|(algorithm, hex)| json!({ "alg": algorithm_name(*algorithm), "content": hex }))
            .collect();
        object.insert("hashes".into(), json!(hashes));
    }
    if let Some(purl) = &component.purl {
        object.insert("purl".into(), json!(purl));
    }
    if let Some(url) = &component.download_url {
        object.insert(
            "externalReferences".into(),
            json!([{ "type": "distribution", "url": url }]),
        );
    }
    if !component.properties.is_empty() {
        let properties: Vec<Value> = component
            .properties
            .iter()
            .map(|(name, value)| json!({ "name": name, "value": value }))
            .collect();
        object.insert("properties".into(), json!(properties));
    }
    Value::Object(object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sbom::Component;

    fn bom() -> Bom {
        let mut bom = crate::sbom::tests::app_txt();
        let step = bom.add(
            Component::new("step:package", Kind::Step, "package")
                .property("sealroom:output", format!("sha256:{}", "cd".repeat(32))),
        );
        let download = bom.add(
            Component::new("fetch:lib", Kind::Download, "lib")
                .purl("pkg:generic/lib")
                .hash(HashAlgorithm::Sha256, "ef".repeat(32))
                .download_url("http://files.example.test/lib.tar.gz"),
        );
        bom.depends("artifact:app.txt", &step);
        bom.depends(&step, &download);
        bom
    }

    #[test]
    fn the_artifact_is_the_metadata_component_of_a_build_lifecycle() {
        let document = document(&bom());
        assert_eq!(document["bomFormat"], "CycloneDX");
        assert_eq!(document["specVersion"], "1.6");
        assert_eq!(
            document["metadata"]["lifecycles"],
            json!([{ "phase": "build" }])
        );
        assert_eq!(document["metadata"]["timestamp"], "2023-11-14T22:13:20Z");
        let subject = &document["metadata"]["component"];
        assert_eq!(subject["bom-ref"], "artifact:app.txt");
        assert_eq!(
            subject["hashes"],
            json!([{ "alg": "SHA-256", "content": "ab".repeat(32) }])
        );
    }

    #[test]
    fn every_component_has_a_dependency_entry() {
        let document = document(&bom());
        assert_eq!(
            document["dependencies"],
            json!([
                { "ref": "artifact:app.txt", "dependsOn": ["step:package"] },
                { "ref": "step:package", "dependsOn": ["fetch:lib"] },
                { "ref": "fetch:lib", "dependsOn": [] },
            ])
        );
        let download = &document["components"][1];
        assert_eq!(download["type"], "file");
        assert_eq!(
            download["externalReferences"],
            json!([{ "type": "distribution", "url": "http://files.example.test/lib.tar.gz" }])
        );
        assert_eq!(download["purl"], "pkg:generic/lib");
    }

    #[test]
    fn the_same_bom_renders_the_same_bytes() {
        let a = crate::sbom::to_file_bytes(&document(&bom()));
        let b = crate::sbom::to_file_bytes(&document(&bom()));
        assert_eq!(a, b);
        let serial = document(&bom())["serialNumber"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(serial.starts_with("urn:uuid:"), "{serial}");
    }
}
