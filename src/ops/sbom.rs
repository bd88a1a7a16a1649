//! The SBOM of each artifact and image a build writes: the inputs that reached it, followed
//! transitively through the step graph, as a [`Bom`]; then its documents and their signed
//! attestation next to it. What is listed is documented in `docs/sbom.md`.
//!
//! Nothing here guesses from the output: every component is something the build itself
//! resolved (a source tree it hashed, a file it downloaded and verified, a locked package, the
//! image a step ran in and the packages that image's dpkg status lists).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::digest::BlobDigest;
use crate::error::Error;
use crate::ops::attest::{BuildContext, TREE_DIGEST_FORM};
use crate::ops::fetch::{Fetched, Origin};
use crate::provenance::{PAYLOAD_TYPE, ResourceDescriptor, STATEMENT_TYPE};
use crate::sbom::image::ImageContents;
use crate::sbom::{Bom, Component, HashAlgorithm, Kind, SbomChoice, SbomFormat};
use crate::sign::dsse::Envelope;
use crate::sign::keys::SigningKey;
use crate::spec::{Name, RelativePath, Step};

/// `<artifact>.sbom.intoto.jsonl`: one DSSE envelope a line, one line per SBOM format written.
pub const ATTESTATION_SUFFIX: &str = ".sbom.intoto.jsonl";

/// What the build's images hold, by image id (`sha256:<hex>`): read once per build, for every
/// SBOM that names the image.
pub type ImageCatalog = BTreeMap<String, ImageContents>;

/// What every image the SBOMs of this build can name holds: the sandbox image, the images of
/// fixed-output fetch steps, and the engine images `[[image]]`s are built on. Empty when no SBOM
/// is written. Read from the engine once per image id and cached in the store, so a cached
/// build starts no container for it.
pub async fn image_catalog(
    engine: &impl crate::sandbox::Engine,
    store: &crate::store::Store,
    spec: &crate::spec::Spec,
    choice: SbomChoice,
) -> Result<ImageCatalog, Error> {
    image_catalog_shared(engine, store, spec, choice, None).await
}

/// [`image_catalog`], asking the remote cache for image contents the store lacks.
pub async fn image_catalog_shared(
    engine: &impl crate::sandbox::Engine,
    store: &crate::store::Store,
    spec: &crate::spec::Spec,
    choice: SbomChoice,
    remote: Option<&crate::remote::RemoteCache>,
) -> Result<ImageCatalog, Error> {
    let mut catalog = ImageCatalog::new();
    if choice == SbomChoice::None {
        return Ok(catalog);
    }
    let runs = spec.fetches.iter().filter_map(|fetch| match &fetch.kind {
        crate::spec::FetchKind::Run(run) => Some(&run.image),
        _ => None,
    });
    let bases = spec
        .images
        .iter()
        .filter(|image| image.base_registry().is_none())
        .map(|image| &image.base);
    // The steps' image is there (they ran in it, or the build checked it); a fetch step's
    // image or an `[[image]]`'s base need not be once their outputs are cached: then the SBOM
    // names it by its digest alone.
    let sandbox = std::iter::once((&spec.sandbox.image, true));
    let others = runs.chain(bases).map(|image| (image, false));
    for (image, required) in sandbox.chain(others) {
        let id = image.digest.to_string();
        let std::collections::btree_map::Entry::Vacant(slot) = catalog.entry(id) else {
            continue;
        };
        if !required
            && let Some(contents) = crate::ops::image_contents::remembered(store, slot.key())
        {
            slot.insert(contents);
            continue;
        }
        if !required
            && engine
                .image(slot.key())
                .await
                .map_err(Error::from)?
                .is_none()
        {
            tracing::warn!(
                "image {image} is not in the engine: the SBOM names it by its digest, without the packages it holds"
            );
            continue;
        }
        let contents =
            crate::ops::image_contents::image_contents_shared(engine, store, slot.key(), remote)
                .await?;
        slot.insert(contents);
    }
    Ok(catalog)
}

/// Adds the components of one build to [`Bom`]s.
struct Walker<'a, 'b> {
    context: &'a BuildContext<'b>,
    images: &'a ImageCatalog,
    bom: Bom,
}

/// The SBOM of `artifact`, written by `step`, whose bytes have `digest`.
pub fn artifact_bom(
    context: &BuildContext<'_>,
    images: &ImageCatalog,
    step: &Step,
    artifact: &RelativePath,
    digest: &BlobDigest,
) -> Bom {
    let reference = format!("artifact:{artifact}");
    let subject = Component::new(&reference, Kind::Artifact, artifact.as_str())
        .hash(HashAlgorithm::Sha256, digest.hex())
        .description(format!("written by step `{}`", step.name))
        .property("sealroom:step", step.name.as_str());
    let mut walker = Walker::new(context, images, subject);
    let step_ref = walker.step(&step.name);
    walker.bom.depends(&reference, &step_ref);
    walker.bom
}

/// Where one layer of an `[[image]]` came from.
pub enum LayerOrigin<'a> {
    Base,
    Input(&'a Name),
}

/// The SBOM of an `[[image]]` output: the image (by its manifest digest) depends on each of
/// its layers, a base layer on the base image, a new layer on the step or source it holds.
pub fn image_bom(
    context: &BuildContext<'_>,
    images: &ImageCatalog,
    image: &crate::spec::image::Image,
    manifest: &BlobDigest,
    layers: &[(LayerOrigin<'_>, &BlobDigest, &str)],
) -> Bom {
    let reference = format!("image-output:{}", image.name);
    let subject = Component::new(&reference, Kind::ImageOutput, image.name.as_str())
        .version(manifest.to_string())
        .purl(format!(
            "pkg:oci/{}@{}",
            crate::lockfile::purl_escape(image.name.as_str()),
            crate::lockfile::purl_escape(&manifest.to_string())
        ))
        .hash(HashAlgorithm::Sha256, manifest.hex())
        .description("an OCI image; its sha256 is the manifest digest");
    let mut walker = Walker::new(context, images, subject);
    let base_ref = walker.image(&image.base.name, &image.base.digest.to_string());
    for (index, (origin, digest, media_type)) in layers.iter().enumerate() {
        let layer = Component::new(
            format!("layer:{digest}"),
            Kind::Layer,
            format!("layer {index}"),
        )
        .hash(HashAlgorithm::Sha256, digest.hex())
        .property("sealroom:mediaType", *media_type);
        let layer_ref = walker.bom.add(layer);
        walker.bom.depends(&reference, &layer_ref);
        let from = match origin {
            LayerOrigin::Base => base_ref.clone(),
            LayerOrigin::Input(name) => walker.input(name),
        };
        walker.bom.depends(&layer_ref, &from);
    }
    walker.bom
}

impl<'a, 'b> Walker<'a, 'b> {
    fn new(context: &'a BuildContext<'b>, images: &'a ImageCatalog, subject: Component) -> Self {
        let spec = context.spec;
        Walker {
            context,
            images,
            bom: Bom::new(spec.name.as_str(), spec.source_date_epoch, subject),
        }
    }

    /// Adds what a step, source or fetch named `name` is, with everything it depends on.
    fn input(&mut self, name: &Name) -> String {
        let context = self.context;
        if let Some((source, tree)) = context.sources.iter().find(|(s, _)| s.name == *name) {
            let component = Component::new(format!("source:{name}"), Kind::Source, name.as_str())
                .description(format!("the source tree `{}`", source.declared_path))
                .property("sealroom:path", source.declared_path.as_str())
                .property("sealroom:tree", tree.to_string())
                .property("sealroom:treeDigestForm", TREE_DIGEST_FORM);
            return self.bom.add(component);
        }
        if let Some(fetched) = context.fetches.iter().find(|f| f.name == name.as_str()) {
            return self.fetch(fetched);
        }
        self.step(name)
    }

    /// Adds the step `name` (its output tree and action key), what it ran in, and its inputs.
    fn step(&mut self, name: &Name) -> String {
        let reference = format!("step:{name}");
        if self.bom.get(&reference).is_some() {
            return reference;
        }
        let context = self.context;
        let mut component = Component::new(&reference, Kind::Step, name.as_str())
            .description(format!("the output tree (/out) of step `{name}`"));
        if let Some(report) = context.steps.iter().find(|r| r.name == name.as_str()) {
            component = component
                .property("sealroom:action", report.action.to_string())
                .property("sealroom:output", report.output.to_string())
                .property("sealroom:treeDigestForm", TREE_DIGEST_FORM);
        }
        self.bom.add(component);
        let image = &context.spec.sandbox.image;
        let image_ref = self.image(&image.name, &image.digest.to_string());
        self.bom.depends(&reference, &image_ref);
        if let Some(step) = context.spec.steps.iter().find(|s| s.name == *name) {
            for input in &step.inputs {
                let input_ref = self.input(&input.name);
                self.bom.depends(&reference, &input_ref);
            }
        }
        reference
    }

    /// Adds a fetch: a download by its URL and sha256; a fixed-output step by its tree and
    /// image; a lock fetch by its tree, containing every package it fetched.
    fn fetch(&mut self, fetched: &Fetched) -> String {
        let name = &fetched.name;
        let reference = format!("fetch:{name}");
        if self.bom.get(&reference).is_some() {
            return reference;
        }
        match &fetched.origin {
            Origin::Download {
                url,
                final_url,
                sha256,
                unpack,
                ..
            } => {
                let purl = format!(
                    "pkg:generic/{}?checksum={}&download_url={}",
                    crate::lockfile::purl_escape(name.as_str()),
                    crate::lockfile::purl_qualifier_value(&format!("sha256:{}", sha256.hex())),
                    crate::lockfile::purl_qualifier_value(url),
                );
                let mut component = Component::new(&reference, Kind::Download, name.as_str())
                    .purl(purl)
                    .hash(HashAlgorithm::Sha256, sha256.hex())
                    .download_url(url)
                    .description(format!("downloaded by fetch `{name}`"));
                if final_url != url {
                    component = component.property("sealroom:downloadedFrom", final_url);
                }
                if *unpack {
                    component = component
                        .property("sealroom:unpackedTree", fetched.tree.to_string())
                        .property("sealroom:treeDigestForm", TREE_DIGEST_FORM);
                }
                self.bom.add(component)
            }
            Origin::Run {
                run,
                image,
                network,
            } => {
                let component = Component::new(&reference, Kind::FetchTree, name.as_str())
                    .description(format!("the pinned output tree of fetch step `{name}`"))
                    .property("sealroom:tree", fetched.tree.to_string())
                    .property("sealroom:treeDigestForm", TREE_DIGEST_FORM)
                    .property("sealroom:run", json!(run).to_string())
                    .property("sealroom:network", *network);
                self.bom.add(component);
                if let Some((image_name, digest)) = image.rsplit_once('@') {
                    let image_ref = self.image(image_name, digest);
                    self.bom.depends(&reference, &image_ref);
                }
                reference
            }
            Origin::Lock {
                lock,
                lock_sha256,
                format,
                index,
                files,
            } => {
                let mut component = Component::new(&reference, Kind::FetchTree, name.as_str())
                    .description(format!(
                        "the packages that `{lock}` pins, as fetch `{name}` laid them out"
                    ))
                    .property("sealroom:tree", fetched.tree.to_string())
                    .property("sealroom:treeDigestForm", TREE_DIGEST_FORM)
                    .property("sealroom:lock", lock.as_str())
                    .property("sealroom:lockSha256", lock_sha256.hex())
                    .property("sealroom:lockFormat", format.as_str());
                if let Some(index) = index {
                    component = component.property("sealroom:index", index.as_str());
                }
                self.bom.add(component);
                for file in files {
                    // The purl's name, not `file.package` (`six 1.16.0`, for people): a
                    // scanner matches a component by its name and version apart.
                    let package_name =
                        purl_name(&file.purl).unwrap_or_else(|| file.package.clone());
                    let mut package = Component::new(
                        format!("lock:{name}/{}", file.file_name),
                        Kind::LockedPackage,
                        package_name,
                    )
                    .purl(&file.purl)
                    .hash(HashAlgorithm::Sha256, file.sha256.hex())
                    .download_url(&file.url)
                    .property("sealroom:fileName", file.file_name.as_str())
                    .property("sealroom:lockDigest", file.lock_digest.as_str())
                    .property("sealroom:lockLine", file.line.to_string());
                    if let Some(version) = purl_version(&file.purl) {
                        package = package.version(version);
                    }
                    if let Some(algorithm) =
                        HashAlgorithm::from_digest_set(&file.lock_digest_algorithm)
                        && algorithm != HashAlgorithm::Sha256
                    {
                        package = package.hash(algorithm, &file.lock_digest_hex);
                    }
                    if file.downloaded_from != file.url {
                        package = package
                            .property("sealroom:downloadedFrom", file.downloaded_from.as_str());
                    }
                    let package_ref = self.bom.add(package);
                    self.bom.depends(&reference, &package_ref);
                }
                reference
            }
        }
    }

    /// Adds the image `name` pinned by `id` and, when the build read it, the distribution and
    /// the installed packages its dpkg status lists.
    fn image(&mut self, name: &str, id: &str) -> String {
        let reference = format!("image:{id}");
        if self.bom.get(&reference).is_some() {
            return reference;
        }
        let component = Component::new(&reference, Kind::BaseImage, name)
            .version(id)
            .description(format!("the image {name}@{id}"))
            .property("sealroom:image", format!("{name}@{id}"));
        self.bom.add(component);
        let Some(contents) = self.images.get(id) else {
            return reference;
        };
        if let Some(os) = &contents.os {
            let mut system =
                Component::new(format!("os:{id}"), Kind::OperatingSystem, os.id.as_str());
            if let Some(version) = &os.version_id {
                system = system.version(version.as_str());
            }
            if let Some(pretty) = &os.pretty_name {
                system = system.description(pretty.as_str());
            }
            let system_ref = self.bom.add(system);
            self.bom.depends(&reference, &system_ref);
        }
        for package in &contents.packages {
            let purl = package.purl(contents.os.as_ref());
            let mut component = Component::new(
                format!("deb:{id}/{}:{}", package.name, package.architecture),
                Kind::DebianPackage,
                package.name.as_str(),
            )
            .version(package.version.as_str())
            .purl(purl);
            if let Some(source) = &package.source {
                let version = package
                    .source_version
                    .as_deref()
                    .unwrap_or(&package.version);
                component =
                    component.property("sealroom:debianSource", format!("{source} {version}"));
            }
            let package_ref = self.bom.add(component);
            self.bom.depends(&reference, &package_ref);
        }
        reference
    }
}

/// The version of a purl (`pkg:pypi/six@1.16.0` → `1.16.0`), percent-decoded.
fn purl_version(purl: &str) -> Option<String> {
    let without = purl.split(['?', '#']).next()?;
    let (_, version) = without.rsplit_once('@')?;
    Some(percent_decode(version))
}

/// The name of a purl with its namespace (`pkg:npm/%40types/node@20.1.0` → `@types/node`,
/// `pkg:pypi/six@1.16.0` → `six`), percent-decoded.
fn purl_name(purl: &str) -> Option<String> {
    let without = purl.split(['?', '#']).next()?;
    let (_, path) = without.strip_prefix("pkg:")?.split_once('/')?;
    let name = path.rsplit_once('@').map_or(path, |(name, _)| name);
    (!name.is_empty()).then(|| percent_decode(name))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(byte) = text
                .get(i + 1..i + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Writes `bom`'s documents next to `destination` (`<destination>.cdx.json`,
/// `<destination>.spdx.json`, as `choice` says) and their attestation
/// (`<destination>.sbom.intoto.jsonl`, one envelope per document, signed with `signer`, its
/// subject `subject_name` with sha256 `subject`). Files of a format not chosen that an earlier
/// build left there are removed, so that no stale SBOM sits next to the artifact.
pub fn write_sboms(
    destination: &Path,
    bom: &Bom,
    choice: SbomChoice,
    subject_name: &str,
    subject: &BlobDigest,
    signer: Option<&SigningKey>,
) -> Result<SbomFiles, Error> {
    let mut byproducts = Vec::new();
    let mut paths = Vec::new();
    let mut lines = String::new();
    for format in choice.formats() {
        let document = format.render(bom);
        let bytes = crate::sbom::to_file_bytes(&document);
        let path = with_suffix(destination, format.suffix());
        write_if_changed(&path, &bytes)?;
        let file_name = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut byproduct = ResourceDescriptor::with_sha256(
            format!("sbom:{file_name}"),
            None,
            BlobDigest::of(&bytes).hex(),
        );
        byproduct.media_type = Some(format.media_type().to_string());
        byproducts.push(byproduct);
        paths.push(path);
        let statement = json!({
            "_type": STATEMENT_TYPE,
            "subject": [{ "name": subject_name, "digest": { "sha256": subject.hex() } }],
            "predicateType": format.predicate_type(),
            "predicate": document,
        });
        let payload = serde_json::to_vec(&statement).expect("a statement serializes");
        let envelope = match signer {
            Some(key) => Envelope::sign(PAYLOAD_TYPE, &payload, &[key]),
            None => Envelope::unsigned(PAYLOAD_TYPE, &payload),
        };
        lines.push_str(&envelope.to_json_line());
    }
    let attestation = with_suffix(destination, ATTESTATION_SUFFIX);
    if lines.is_empty() {
        remove_stale(&attestation)?;
    } else {
        write_if_changed(&attestation, lines.as_bytes())?;
        paths.push(attestation);
    }
    for format in [SbomFormat::Cyclonedx, SbomFormat::Spdx] {
        if !choice.formats().contains(&format) {
            remove_stale(&with_suffix(destination, format.suffix()))?;
        }
    }
    Ok(SbomFiles { byproducts, paths })
}

/// What [`write_sboms`] wrote.
pub struct SbomFiles {
    /// The documents, as the provenance's `byproducts` name them.
    pub byproducts: Vec<ResourceDescriptor>,
    /// The documents' files, then the attestation's.
    pub paths: Vec<PathBuf>,
}

/// Writes `bytes` to `path` atomically (a temp file, then a rename), unless the file holds
/// exactly them already: a cached rebuild writes the same documents, and skipping the write
/// spares it the syncs.
fn write_if_changed(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    if std::fs::read(path).is_ok_and(|existing| existing == bytes) {
        return Ok(());
    }
    crate::atomic::write(path, bytes, crate::atomic::Mode::Fixed(0o644))
        .map_err(|error| Error::io(error.action, error.path, error.source))
}

fn remove_stale(path: &Path) -> Result<(), Error> {
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::io("cannot remove the stale SBOM file", path, error))
        }
        _ => Ok(()),
    }
}

/// `<path><suffix>`.
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cached build asks the engine nothing: the packages of every image, a fetch step's
    /// too, come from the store once read, even when the engine no longer holds the image.
    #[tokio::test]
    async fn images_once_read_come_from_the_store() {
        use crate::sandbox::fake::FakeEngine;
        let dir = tempfile::tempdir().unwrap();
        let sandbox_id = format!("sha256:{}", "1".repeat(64));
        let fetch_id = format!("sha256:{}", "2".repeat(64));
        let spec_path = dir.path().join("sealroom.toml");
        std::fs::write(
            &spec_path,
            format!(
                "version = 1\nname = \"t\"\n[sandbox]\nimage = \"steps@{sandbox_id}\"\n\
                 [[fetch]]\nname = \"dl\"\nrun = [\"true\"]\nimage = \"fetcher@{fetch_id}\"\n\
                 output = \"sha256:{}\"\n",
                "3".repeat(64)
            ),
        )
        .unwrap();
        let spec = crate::spec::load(&spec_path).unwrap();
        let store = crate::store::Store::open(&dir.path().join("store")).unwrap();
        let status = |name: &str| {
            std::collections::BTreeMap::from([(
                "/var/lib/dpkg/status".to_string(),
                format!("Package: {name}\nStatus: install ok installed\nArchitecture: all\nVersion: 1\n\n")
                    .into_bytes(),
            )])
        };
        let engine = FakeEngine::new(|_| Ok(0))
            .with_image_files(&sandbox_id, status("in-steps"))
            .with_image_files(&fetch_id, status("in-fetcher"));
        let first = image_catalog(&engine, &store, &spec, SbomChoice::Cyclonedx)
            .await
            .unwrap();
        assert_eq!(engine.image_file_reads(), 2);

        // An engine that holds neither image: nothing is asked of it, nothing is lost.
        let empty = FakeEngine::new(|_| Ok(0));
        let again = image_catalog(&empty, &store, &spec, SbomChoice::Cyclonedx)
            .await
            .unwrap();
        assert_eq!(empty.image_file_reads(), 0);
        assert_eq!(again, first);
        assert_eq!(again[&fetch_id].packages[0].name, "in-fetcher");

        // In a fresh store, a fetch step's image the engine lacks is named by digest alone;
        // the steps' own image is required.
        let fresh = crate::store::Store::open(&dir.path().join("fresh")).unwrap();
        let error = image_catalog(&empty, &fresh, &spec, SbomChoice::Cyclonedx)
            .await
            .unwrap_err();
        assert!(error.to_string().contains(&sandbox_id), "{error}");
        assert!(
            image_catalog(&empty, &fresh, &spec, SbomChoice::None)
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_purl_s_version_is_decoded() {
        assert_eq!(
            purl_version("pkg:pypi/six@1.16.0").as_deref(),
            Some("1.16.0")
        );
        assert_eq!(
            purl_version("pkg:npm/%40types/node@20.1.0?x=1#sub").as_deref(),
            Some("20.1.0")
        );
        assert_eq!(
            purl_version("pkg:deb/debian/bsdutils@1:2.38.1-5%2Bdeb12u3?arch=amd64").as_deref(),
            Some("1:2.38.1-5+deb12u3")
        );
        assert_eq!(purl_version("pkg:generic/lib"), None);
        assert_eq!(percent_decode("50%"), "50%");
    }

    #[test]
    fn a_qualifier_value_keeps_a_url_readable_but_not_its_separators() {
        assert_eq!(
            crate::lockfile::purl_qualifier_value("http://127.0.0.1:8080/a b.tar.gz?x=1&y=2#f"),
            "http://127.0.0.1:8080/a%20b.tar.gz%3Fx%3D1%26y%3D2%23f"
        );
    }

    #[test]
    fn unchosen_formats_are_removed_and_the_chosen_ones_written() {
        let dir = tempfile::tempdir().unwrap();
        let artifact = dir.path().join("app.txt");
        std::fs::write(&artifact, "x").unwrap();
        let digest = BlobDigest::of(b"x");
        let subject = Component::new("artifact:app.txt", Kind::Artifact, "app.txt")
            .hash(HashAlgorithm::Sha256, digest.hex());
        let bom = Bom::new("t", 0, subject);
        let both =
            write_sboms(&artifact, &bom, SbomChoice::Both, "app.txt", &digest, None).unwrap();
        assert_eq!(both.byproducts.len(), 2);
        let attestation = with_suffix(&artifact, ATTESTATION_SUFFIX);
        let lines = std::fs::read_to_string(&attestation).unwrap();
        assert_eq!(lines.lines().count(), 2);

        let spdx =
            write_sboms(&artifact, &bom, SbomChoice::Spdx, "app.txt", &digest, None).unwrap();
        assert_eq!(
            spdx.paths,
            [with_suffix(&artifact, ".spdx.json"), attestation.clone()]
        );
        assert!(!with_suffix(&artifact, ".cdx.json").exists());
        assert_eq!(
            std::fs::read_to_string(&attestation)
                .unwrap()
                .lines()
                .count(),
            1
        );

        let none =
            write_sboms(&artifact, &bom, SbomChoice::None, "app.txt", &digest, None).unwrap();
        assert!(none.paths.is_empty() && none.byproducts.is_empty());
        assert!(!with_suffix(&artifact, ".spdx.json").exists());
        assert!(!attestation.exists());
    }

    #[test]
    fn a_locked_package_is_named_by_its_purl() {
        assert_eq!(purl_name("pkg:pypi/six@1.16.0").as_deref(), Some("six"));
        assert_eq!(
            purl_name("pkg:npm/%40types/node@20.1.0?x=1").as_deref(),
            Some("@types/node")
        );
        assert_eq!(
            purl_name("pkg:golang/example.internal/greet@v1.0.0").as_deref(),
            Some("example.internal/greet")
        );
        assert_eq!(
            purl_version("pkg:cargo/cfg-if@1.0.0").as_deref(),
            Some("1.0.0")
        );
        assert_eq!(purl_name("not a purl"), None);
    }
}
