//! A [`Bom`] as an SPDX 2.3 JSON document.
//!
//! Every component is a package with `filesAnalyzed: false` (sealroom lists what went in, it
//! does not analyse files); the document DESCRIBES the artifact's package, and the graph is in
//! `relationships`: the artifact is GENERATED_FROM its step, an image or a lock fetch CONTAINS
//! its packages, and everything else DEPENDS_ON its inputs. Facts with no SPDX field (tree
//! digests, action keys) are the package's `comment`, one `name: value` a line.
//!
//! `downloadLocation` must follow the SPDX grammar, whose host needs an alphabetic top-level
//! domain: a URL on an IP address or `localhost` (a loopback mirror, a test server) is written
//! `NOASSERTION`, with the URL kept in `sourceInfo`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::{Bom, Component, HashAlgorithm, Kind};

/// `spdxVersion`.
pub const SPEC_VERSION: &str = "SPDX-2.3";

/// The SPDX document for `bom`.
pub fn document(bom: &Bom) -> Value {
    let ids = spdx_ids(bom);
    let id = |reference: &str| ids[reference].clone();
    let packages: Vec<Value> = bom
        .all()
        .map(|component| package(component, &id(&component.reference)))
        .collect();

    let mut relationships = vec![json!({
        "spdxElementId": "SPDXRef-DOCUMENT",
        "relationshipType": "DESCRIBES",
        "relatedSpdxElement": id(&bom.subject.reference),
    })];
    for component in bom.all() {
        for to in bom
            .dependencies
            .get(&component.reference)
            .into_iter()
            .flatten()
        {
            let Some(target) = bom.get(to) else { continue };
            relationships.push(json!({
                "spdxElementId": id(&component.reference),
                "relationshipType": relationship(component.kind, target.kind),
                "relatedSpdxElement": id(to),
            }));
        }
    }

    let uuid = super::uuid(&bom.identity());
    let name = format!("{}-{}", bom.project, bom.subject.name);
    json!({
        "spdxVersion": SPEC_VERSION,
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": name,
        "documentNamespace": format!("https://sealroom.dev/spdx/{}/{uuid}", id_safe(&bom.project)),
        "creationInfo": {
            "created": super::timestamp(bom.created),
            "creators": [format!("Tool: sealroom-{}", env!("CARGO_PKG_VERSION"))],
            "comment": "The inputs to the build that reached the described artifact, as sealroom resolved them; not a scan of the artifact.",
        },
        "packages": packages,
        "relationships": relationships,
    })
}

/// SPDX's spelling of a hash algorithm.
pub fn algorithm_name(algorithm: HashAlgorithm) -> &'static str {
    match algorithm {
        HashAlgorithm::Sha256 => "SHA256",
        HashAlgorithm::Sha512 => "SHA512",
        HashAlgorithm::Sha1 => "SHA1",
    }
}

fn purpose(kind: Kind) -> &'static str {
    match kind {
        Kind::Artifact => "FILE",
        Kind::ImageOutput | Kind::BaseImage => "CONTAINER",
        Kind::Step | Kind::FetchTree => "OTHER",
        Kind::Source => "SOURCE",
        Kind::Download => "FILE",
        Kind::LockedPackage | Kind::DebianPackage => "LIBRARY",
        Kind::OperatingSystem => "OPERATING-SYSTEM",
        Kind::Layer => "ARCHIVE",
    }
}

fn relationship(from: Kind, to: Kind) -> &'static str {
    match (from, to) {
        (Kind::Artifact | Kind::ImageOutput, Kind::Step) => "GENERATED_FROM",
        (Kind::BaseImage, Kind::OperatingSystem | Kind::DebianPackage)
        | (Kind::FetchTree, Kind::LockedPackage) => "CONTAINS",
        _ => "DEPENDS_ON",
    }
}

fn package(component: &Component, id: &str) -> Value {
    let mut object = serde_json::Map::new();
    object.insert("SPDXID".into(), json!(id));
    object.insert("name".into(), json!(component.name));
    if let Some(version) = &component.version {
        object.insert("versionInfo".into(), json!(version));
    }
    let location = component
        .download_url
        .as_deref()
        .filter(|url| is_download_location(url))
        .unwrap_or("NOASSERTION");
    object.insert("downloadLocation".into(), json!(location));
    if let Some(url) = &component.download_url {
        object.insert("sourceInfo".into(), json!(format!("downloaded from {url}")));
    }
    object.insert("filesAnalyzed".into(), json!(false));
    if !component.hashes.is_empty() {
        let checksums: Vec<Value> = component
            .hashes
            .iter()
            .map(|(algorithm, hex)| {
                json!({ "algorithm": algorithm_name(*algorithm), "checksumValue": hex })
            })
            .collect();
        object.insert("checksums".into(), json!(checksums));
    }
    if let Some(purl) = &component.purl {
        object.insert(
            "externalRefs".into(),
            json!([{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": purl,
            }]),
        );
    }
    object.insert(
        "primaryPackagePurpose".into(),
        json!(purpose(component.kind)),
    );
    if let Some(description) = &component.description {
        object.insert("description".into(), json!(description));
    }
    if !component.properties.is_empty() {
        let lines: Vec<String> = component
            .properties
            .iter()
            .map(|(name, value)| format!("{name}: {value}"))
            .collect();
        object.insert("comment".into(), json!(lines.join("\n")));
    }
    for key in ["licenseConcluded", "licenseDeclared", "copyrightText"] {
        object.insert(key.into(), json!("NOASSERTION"));
    }
    Value::Object(object)
}

/// An `SPDXRef-` id for every ref: the ref with every character SPDX ids do not allow
/// (anything but letters, digits, `.` and `-`) made `-`, and a counter added when two refs
/// come out the same.
fn spdx_ids(bom: &Bom) -> BTreeMap<String, String> {
    let mut ids = BTreeMap::new();
    let mut taken = BTreeSet::new();
    for component in bom.all() {
        let base = format!("SPDXRef-{}", id_safe(&component.reference));
        let mut id = base.clone();
        let mut n = 2;
        while !taken.insert(id.clone()) {
            id = format!("{base}-{n}");
            n += 1;
        }
        ids.insert(component.reference.clone(), id);
    }
    ids
}

fn id_safe(text: &str) -> String {
    let mapped: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    mapped.trim_matches('-').to_string()
}

/// Whether `url` is a `downloadLocation` the SPDX grammar (as spdx-tools checks it) accepts:
/// `scheme://host[:port][/path]` with a known scheme, no user part, and a host of lower-case
/// letters and digits in labels joined by single `.` or `-`, ending in a 2 to 5 letter
/// top-level domain. Anything else (an IP address, `localhost`, a port out of range) is not.
pub fn is_download_location(url: &str) -> bool {
    const SCHEMES: [&str; 7] = ["http", "https", "ssh", "git", "svn", "sftp", "ftp"];
    let Some((scheme, rest)) = url.split_once("://") else {
        return false;
    };
    if !SCHEMES.contains(&scheme) || url.contains(['\n', '\r']) {
        return false;
    }
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.contains(['@', '?', '#']) {
        return false;
    }
    let host = match authority.split_once(':') {
        Some((host, port)) => {
            if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
                return false;
            }
            host
        }
        None => authority,
    };
    let Some((name, top)) = host.rsplit_once('.') else {
        return false;
    };
    let top_ok = (2..=5).contains(&top.len()) && top.bytes().all(|b| b.is_ascii_lowercase());
    let label = |part: &str| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    top_ok && name.split(['.', '-']).all(label)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bom() -> Bom {
        let mut bom = crate::sbom::tests::app_txt();
        let step = bom.add(Component::new("step:package", Kind::Step, "package"));
        let download = bom.add(
            Component::new("fetch:lib", Kind::Download, "lib")
                .hash(HashAlgorithm::Sha256, "ef".repeat(32))
                .download_url("http://127.0.0.1:8080/lib.tar.gz"),
        );
        let image = bom.add(Component::new("image:sha256:00", Kind::BaseImage, "debian"));
        let deb = bom.add(Component::new(
            "pkg:deb/debian/bash@5.2",
            Kind::DebianPackage,
            "bash",
        ));
        bom.depends("artifact:app.txt", &step);
        bom.depends(&step, &download);
        bom.depends(&step, &image);
        bom.depends(&image, &deb);
        bom
    }

    #[test]
    fn the_document_describes_the_artifact_and_relates_the_graph() {
        let document = document(&bom());
        assert_eq!(document["spdxVersion"], "SPDX-2.3");
        assert_eq!(document["creationInfo"]["created"], "2023-11-14T22:13:20Z");
        let relationships: Vec<(String, String, String)> = document["relationships"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["spdxElementId"].as_str().unwrap().to_string(),
                    r["relationshipType"].as_str().unwrap().to_string(),
                    r["relatedSpdxElement"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let r = |a: &str, t: &str, b: &str| (a.to_string(), t.to_string(), b.to_string());
        assert_eq!(
            relationships,
            [
                r("SPDXRef-DOCUMENT", "DESCRIBES", "SPDXRef-artifact-app.txt"),
                r(
                    "SPDXRef-artifact-app.txt",
                    "GENERATED_FROM",
                    "SPDXRef-step-package"
                ),
                r("SPDXRef-step-package", "DEPENDS_ON", "SPDXRef-fetch-lib"),
                r(
                    "SPDXRef-step-package",
                    "DEPENDS_ON",
                    "SPDXRef-image-sha256-00"
                ),
                r(
                    "SPDXRef-image-sha256-00",
                    "CONTAINS",
                    "SPDXRef-pkg-deb-debian-bash-5.2"
                ),
            ]
        );
    }

    #[test]
    fn a_loopback_url_is_no_download_location_but_is_kept() {
        let document = document(&bom());
        let download = &document["packages"][2];
        assert_eq!(download["name"], "lib");
        assert_eq!(download["downloadLocation"], "NOASSERTION");
        assert_eq!(
            download["sourceInfo"],
            "downloaded from http://127.0.0.1:8080/lib.tar.gz"
        );
        assert_eq!(
            download["checksums"],
            json!([{ "algorithm": "SHA256", "checksumValue": "ef".repeat(32) }])
        );
    }

    #[test]
    fn download_locations_follow_the_spdx_grammar() {
        for good in [
            "http://ftp.gnu.org/gnu/glibc/glibc-ports-2.15.tar.gz",
            "https://files.acc-k.test/libgreet-1.2.tar.gz",
            "https://example.com:8443/a?b=c",
            "http://example.com",
        ] {
            assert!(is_download_location(good), "{good}");
        }
        for bad in [
            "http://127.0.0.1:8080/x.tar.gz",
            "http://localhost/x",
            "http://[::1]/x",
            "file:///tmp/x",
            "http://user@example.com/x",
            "http://example.online/x",
            "http://Example.com/x",
            "http://example.com:123456/x",
            "http://a--b.com/x",
            "http://example.com/x\ny",
            "example.com/x",
        ] {
            assert!(!is_download_location(bad), "{bad}");
        }
    }

    #[test]
    fn ids_stay_unique_and_spdx_safe() {
        let subject = Component::new("a b", Kind::Artifact, "a");
        let mut bom = Bom::new("demo", 0, subject);
        bom.add(Component::new("a_b", Kind::Step, "b"));
        bom.add(Component::new("a/b", Kind::Step, "c"));
        let ids = spdx_ids(&bom);
        assert_eq!(ids["a b"], "SPDXRef-a-b");
        assert_eq!(ids["a_b"], "SPDXRef-a-b-2");
        assert_eq!(ids["a/b"], "SPDXRef-a-b-3");
    }
}
