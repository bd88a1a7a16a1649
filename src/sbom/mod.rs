//! Software bills of materials: what reached each artifact.
//!
//! A [`Bom`] is the neutral graph of one artifact's inputs, made by `ops::sbom` from what the
//! build resolved: the artifact (or image) it describes, every component that reached it
//! transitively through the step graph, and the edges between them. [`cyclonedx`] and [`spdx`]
//! render it; neither adds anything the graph does not hold, and both are pure functions of it,
//! so that two builds of the same inputs write the same bytes. This module does no I/O.

pub mod cyclonedx;
pub mod image;
pub mod spdx;

use std::collections::{BTreeMap, BTreeSet};

/// `--sbom`: which documents a build writes next to each artifact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SbomChoice {
    /// CycloneDX 1.6 JSON (`<artifact>.cdx.json`).
    #[default]
    Cyclonedx,
    /// SPDX 2.3 JSON (`<artifact>.spdx.json`).
    Spdx,
    /// Both documents.
    Both,
    /// No SBOM.
    None,
}

impl SbomChoice {
    /// The formats to write, CycloneDX first.
    pub fn formats(self) -> &'static [SbomFormat] {
        match self {
            SbomChoice::Cyclonedx => &[SbomFormat::Cyclonedx],
            SbomChoice::Spdx => &[SbomFormat::Spdx],
            SbomChoice::Both => &[SbomFormat::Cyclonedx, SbomFormat::Spdx],
            SbomChoice::None => &[],
        }
    }
}

/// One document format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SbomFormat {
    Cyclonedx,
    Spdx,
}

impl SbomFormat {
    /// What follows the artifact's file name: `<artifact>.cdx.json`, `<artifact>.spdx.json`.
    pub fn suffix(self) -> &'static str {
        match self {
            SbomFormat::Cyclonedx => ".cdx.json",
            SbomFormat::Spdx => ".spdx.json",
        }
    }

    /// The in-toto `predicateType` of its attestation: the URIs `cosign attest --type
    /// cyclonedx|spdxjson` uses.
    pub fn predicate_type(self) -> &'static str {
        match self {
            SbomFormat::Cyclonedx => "https://cyclonedx.org/bom",
            SbomFormat::Spdx => "https://spdx.dev/Document",
        }
    }

    /// The document's media type, as the provenance's `byproducts` record it.
    pub fn media_type(self) -> &'static str {
        match self {
            SbomFormat::Cyclonedx => "application/vnd.cyclonedx+json",
            SbomFormat::Spdx => "application/spdx+json",
        }
    }

    /// The format a `predicateType` names.
    pub fn from_predicate_type(predicate_type: &str) -> Option<SbomFormat> {
        [SbomFormat::Cyclonedx, SbomFormat::Spdx]
            .into_iter()
            .find(|format| format.predicate_type() == predicate_type)
    }

    /// The document for `bom`, as JSON.
    pub fn render(self, bom: &Bom) -> serde_json::Value {
        match self {
            SbomFormat::Cyclonedx => cyclonedx::document(bom),
            SbomFormat::Spdx => spdx::document(bom),
        }
    }
}

/// A document's bytes as they are written to its file: pretty JSON and a newline. A verifier
/// re-renders an attestation's predicate with this to get the file's digest back.
pub fn to_file_bytes(document: &serde_json::Value) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(document).expect("a JSON value serializes");
    bytes.push(b'\n');
    bytes
}

/// What one artifact's SBOM says: the component it describes, each component that reached it,
/// and which one depends on which.
#[derive(Debug, Clone, PartialEq)]
pub struct Bom {
    /// The spec's `name`.
    pub project: String,
    /// `SOURCE_DATE_EPOCH`: the documents' creation time, so that rebuilds write the same bytes.
    pub created: u64,
    /// The artifact, or the image, that the document describes.
    pub subject: Component,
    /// Every other component, each once, in the order they were added.
    pub components: Vec<Component>,
    /// `ref` → the refs it depends on. Every ref is the subject's or a component's.
    pub dependencies: BTreeMap<String, BTreeSet<String>>,
}

impl Bom {
    /// A document describing `subject`, with nothing in it yet.
    pub fn new(project: impl Into<String>, created: u64, subject: Component) -> Self {
        Bom {
            project: project.into(),
            created,
            subject,
            components: Vec::new(),
            dependencies: BTreeMap::new(),
        }
    }

    /// Adds `component` unless one with its ref is there already; returns its ref.
    pub fn add(&mut self, component: Component) -> String {
        let reference = component.reference.clone();
        if reference != self.subject.reference && self.get(&reference).is_none() {
            self.components.push(component);
        }
        reference
    }

    /// The component with ref `reference` (the subject included).
    pub fn get(&self, reference: &str) -> Option<&Component> {
        std::iter::once(&self.subject)
            .chain(&self.components)
            .find(|component| component.reference == reference)
    }

    /// Records that `from` depends on `to`.
    pub fn depends(&mut self, from: &str, to: &str) {
        self.dependencies
            .entry(from.to_string())
            .or_default()
            .insert(to.to_string());
    }

    /// Every component, the subject first.
    pub fn all(&self) -> impl Iterator<Item = &Component> {
        std::iter::once(&self.subject).chain(&self.components)
    }

    /// The content digest the documents' serial number and namespace are derived from: the
    /// sha256 of everything the document states, so that two different inputs never share one.
    pub(crate) fn identity(&self) -> [u8; 32] {
        use sha2::Digest;
        let mut hasher = sha2::Sha256::new();
        let mut feed = |text: &str| {
            hasher.update((text.len() as u64).to_be_bytes());
            hasher.update(text.as_bytes());
        };
        feed(&self.project);
        feed(&self.created.to_string());
        for component in self.all() {
            feed(&format!("{component:?}"));
        }
        for (from, to) in &self.dependencies {
            feed(from);
            for to in to {
                feed(to);
            }
        }
        hasher.finalize().into()
    }
}

/// What a component is; each format maps it to its own type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An artifact a step wrote (a file under `--out`).
    Artifact,
    /// An `[[image]]` output.
    ImageOutput,
    /// A step: its output tree.
    Step,
    /// A `[[source]]` tree.
    Source,
    /// A file a `[[fetch]]` downloaded by URL.
    Download,
    /// The tree a fixed-output fetch step or a lock fetch put in the store.
    FetchTree,
    /// A package a lock file pinned.
    LockedPackage,
    /// An image steps ran in, or an `[[image]]`'s base.
    BaseImage,
    /// The distribution an image's `os-release` names.
    OperatingSystem,
    /// A package an image's dpkg status lists as installed.
    DebianPackage,
    /// A layer of an `[[image]]` output (a tar blob, by its digest).
    Layer,
}

/// A hash algorithm the documents name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum HashAlgorithm {
    Sha256,
    Sha512,
    Sha1,
}

impl HashAlgorithm {
    /// The algorithm of an in-toto DigestSet key (`sha256`, `sha512`, `sha1`).
    pub fn from_digest_set(name: &str) -> Option<HashAlgorithm> {
        match name {
            "sha256" => Some(HashAlgorithm::Sha256),
            "sha512" => Some(HashAlgorithm::Sha512),
            "sha1" => Some(HashAlgorithm::Sha1),
            _ => None,
        }
    }
}

/// One thing that reached the artifact.
#[derive(Debug, Clone, PartialEq)]
pub struct Component {
    /// Unique within the document: `step:<name>`, `source:<name>`, `fetch:<name>`, a purl,
    /// `image:sha256:<hex>`, ...
    pub reference: String,
    pub kind: Kind,
    pub name: String,
    pub version: Option<String>,
    pub purl: Option<String>,
    /// Digests of the component's bytes (never of a tree: tree digests are properties).
    pub hashes: Vec<(HashAlgorithm, String)>,
    /// Where its bytes were downloaded from, as the spec or the lock names it.
    pub download_url: Option<String>,
    pub description: Option<String>,
    /// `sealroom:*` facts: tree digests, the step's action key, the lock's own digest, ...
    pub properties: Vec<(String, String)>,
}

impl Component {
    /// A component with only its ref, kind and name.
    pub fn new(reference: impl Into<String>, kind: Kind, name: impl Into<String>) -> Self {
        Component {
            reference: reference.into(),
            kind,
            name: name.into(),
            version: None,
            purl: None,
            hashes: Vec::new(),
            download_url: None,
            description: None,
            properties: Vec::new(),
        }
    }

    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }

    pub fn purl(mut self, purl: impl Into<String>) -> Self {
        self.purl = Some(purl.into());
        self
    }

    pub fn hash(mut self, algorithm: HashAlgorithm, hex: impl Into<String>) -> Self {
        self.hashes.push((algorithm, hex.into()));
        self
    }

    pub fn download_url(mut self, url: impl Into<String>) -> Self {
        self.download_url = Some(url.into());
        self
    }

    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = Some(text.into());
        self
    }

    pub fn property(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.push((name.into(), value.into()));
        self
    }

    /// The component's sha256, when it has one.
    pub fn sha256(&self) -> Option<&str> {
        self.hashes
            .iter()
            .find(|(algorithm, _)| *algorithm == HashAlgorithm::Sha256)
            .map(|(_, hex)| hex.as_str())
    }
}

/// `SOURCE_DATE_EPOCH` as RFC 3339 UTC (`2023-11-14T22:13:20Z`).
pub(crate) fn timestamp(epoch: u64) -> String {
    crate::provenance::rfc3339_utc(std::time::UNIX_EPOCH + std::time::Duration::from_secs(epoch))
}

/// A name-based UUID (RFC 9562 version 5 layout) from the document's identity, in the 8-4-4-4-12
/// form: the same inputs give the same serial number, different ones a different number.
pub(crate) fn uuid(identity: &[u8; 32]) -> String {
    let bytes: [u8; 16] = identity[..16].try_into().expect("16 of 32 bytes");
    crate::digest::uuid_text(bytes, 5)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A document describing `app.txt` (sha256 `abab…`), with nothing else in it yet: the
    /// renderers' tests start from it.
    pub(crate) fn app_txt() -> Bom {
        let subject = Component::new("artifact:app.txt", Kind::Artifact, "app.txt")
            .hash(HashAlgorithm::Sha256, "ab".repeat(32));
        Bom::new("demo", 1_700_000_000, subject)
    }

    fn bom() -> Bom {
        let mut bom = app_txt();
        let step = bom.add(Component::new("step:package", Kind::Step, "package"));
        bom.depends("artifact:app.txt", &step);
        bom
    }

    #[test]
    fn a_component_is_added_once() {
        let mut bom = bom();
        bom.add(Component::new("step:package", Kind::Step, "other"));
        bom.add(Component::new("artifact:app.txt", Kind::Step, "again"));
        assert_eq!(bom.components.len(), 1);
        assert_eq!(bom.get("step:package").unwrap().name, "package");
    }

    #[test]
    fn the_serial_number_follows_the_content() {
        let a = bom();
        let mut b = bom();
        assert_eq!(uuid(&a.identity()), uuid(&b.identity()));
        b.add(Component::new("source:src", Kind::Source, "src"));
        assert_ne!(uuid(&a.identity()), uuid(&b.identity()));
        let serial = uuid(&a.identity());
        assert_eq!(serial.len(), 36);
        assert_eq!(&serial[14..15], "5", "{serial}");
        assert!("89ab".contains(&serial[19..20]), "{serial}");
    }

    #[test]
    fn the_choice_names_the_formats() {
        assert_eq!(SbomChoice::default().formats(), &[SbomFormat::Cyclonedx]);
        assert_eq!(
            SbomChoice::Both.formats(),
            &[SbomFormat::Cyclonedx, SbomFormat::Spdx]
        );
        assert!(SbomChoice::None.formats().is_empty());
        assert_eq!(
            SbomFormat::from_predicate_type("https://spdx.dev/Document"),
            Some(SbomFormat::Spdx)
        );
    }
}
