//! The image stage of `sealroom build`: after every step has succeeded, each `[[image]]`
//! becomes an OCI image layout at `--out/<image>/` with its provenance at
//! `--out/<image>.intoto.jsonl` (subject: the image name and its manifest digest). With
//! `--load`, [`load_images`] then loads the layouts into the engine under their tags.
//!
//! The engine is asked for nothing when the store already holds the base's blobs; a registry
//! base is downloaded once, by digest.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::digest::{BlobDigest, TreeDigest};
use crate::error::Error;
use crate::image::base::{self, BaseImage};
use crate::image::oci::{self, BlobRef, NewLayer};
use crate::image::tree_layer::{LayerInput, write_tree_layer};
use crate::image::{ImageError, RepositoryName};
use crate::ops::attest::BuildContext;
use crate::provenance::ResourceDescriptor;
use crate::sandbox::Engine;
use crate::sign::keys::SigningKey;
use crate::spec::image::{Compression, Image};
use crate::spec::{InputKind, Name, Spec};
use crate::store::Store;

/// What building one image produced (part of `sealroom build --format json`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ImageReport {
    pub name: String,
    /// The OCI image layout directory.
    pub layout: PathBuf,
    /// The sha256 of the image manifest: what a registry and `docker pull NAME@...` know it by.
    pub manifest_digest: BlobDigest,
    /// The sha256 of the config: the image id the engine shows after `--load`.
    pub config_digest: BlobDigest,
    pub base: String,
    pub layers: Vec<LayerReport>,
    pub provenance: PathBuf,
    /// The SBOM documents and their attestation written next to the layout (`--sbom`).
    pub sbom: Vec<PathBuf>,
    /// The tag it was loaded under, with `--load`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loaded: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct LayerReport {
    /// `base`, or the step or source it was made from.
    pub from: String,
    pub media_type: String,
    pub digest: BlobDigest,
    pub size: u64,
}

/// How each image is made and attested: the key its provenance and SBOM attestation are
/// signed with (unsigned without one), the SBOMs to write, what the base images hold, and
/// whether registry bases must come from the store alone (`--offline`).
pub struct ImageSettings<'a> {
    pub signer: Option<&'a SigningKey>,
    pub sbom: crate::sbom::SbomChoice,
    pub catalog: &'a crate::ops::sbom::ImageCatalog,
    pub offline: bool,
}

/// Builds every `[[image]]` of `spec` from the output trees of the build (`trees`: every
/// source's and step's tree by name) and writes the layouts and their provenance to `--out`.
pub async fn build_images(
    engine: &impl Engine,
    spec: &Spec,
    store: &Store,
    trees: &HashMap<Name, TreeDigest>,
    out_dir: &Path,
    context: &BuildContext<'_>,
    attestation: &ImageSettings<'_>,
) -> Result<Vec<ImageReport>, Error> {
    let signer = attestation.signer;
    let mut reports = Vec::with_capacity(spec.images.len());
    for image in &spec.images {
        let base = resolve_base(engine, store, image, attestation.offline).await?;
        let mut layers: Vec<BlobRef> = base.layers.clone();
        let mut layer_reports: Vec<LayerReport> = base
            .layers
            .iter()
            .map(|layer| LayerReport {
                from: "base".to_string(),
                media_type: layer.media_type.clone(),
                digest: layer.digest,
                size: layer.size,
            })
            .collect();
        let mut new_layers = Vec::with_capacity(image.layers.len());
        for layer in &image.layers {
            let origin = match layer.kind {
                InputKind::Source => format!("source `{}`", layer.input),
                _ => format!("step `{}`", layer.input),
            };
            let tree = trees[&layer.input];
            let store_for_task = store.clone();
            let layer_for_task = layer.clone();
            let (epoch, compression) = (spec.source_date_epoch, image.compression);
            let origin_for_task = origin.clone();
            let (digest, size, diff_id) = tokio::task::spawn_blocking(move || {
                let temp = store_for_task.temp_dir().map_err(base::store_error)?;
                let written = write_tree_layer(
                    &store_for_task,
                    &LayerInput {
                        tree,
                        place: &layer_for_task.path,
                        artifacts: layer_for_task.artifacts.as_deref(),
                        origin: &origin_for_task,
                        mtime: epoch,
                        compression,
                    },
                    temp.path(),
                )?;
                // An unchanged layer is in the store already: nothing to write (or sync).
                if !store_for_task.has_blob(&written.digest) {
                    let blob = std::fs::File::open(written.file.path())
                        .map_err(|source| ImageError::WriteTemp { source })?;
                    store_for_task
                        .add_blob_from_reader(
                            blob,
                            &format!("the layer of {origin_for_task}"),
                            Some(&written.digest),
                        )
                        .map_err(base::store_error)?;
                }
                Ok::<_, ImageError>((written.digest, written.size, written.diff_id))
            })
            .await
            .unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic()))?;
            let media_type = match compression {
                Compression::Gzip => base::LAYER_TAR_GZIP,
                Compression::None => base::LAYER_TAR,
            };
            let place = format!("/{}", layer.path.as_str().trim_start_matches('.'));
            new_layers.push(NewLayer {
                diff_id,
                created_by: format!("sealroom: {origin} at {place}"),
            });
            layers.push(BlobRef {
                media_type: media_type.to_string(),
                digest,
                size,
            });
            layer_reports.push(LayerReport {
                from: origin,
                media_type: media_type.to_string(),
                digest,
                size,
            });
        }

        let reference = image.base.to_string();
        let config = oci::config_json(
            &base.config,
            &reference,
            image,
            &new_layers,
            spec.source_date_epoch,
        )?;
        let config_ref = BlobRef {
            media_type: oci_spec::image::MediaType::ImageConfig.to_string(),
            digest: BlobDigest::of(&config),
            size: config.len() as u64,
        };
        let manifest = oci::manifest_json(&config_ref, &layers);
        let layout = out_dir.join(image.name.as_str());
        let manifest_digest = {
            let (store, layout, layers) = (store.clone(), layout.clone(), layers.clone());
            let (config, manifest) = (config.clone(), manifest.clone());
            tokio::task::spawn_blocking(move || {
                oci::write_layout(&store, &layout, &layers, &config, &manifest, "latest")
            })
            .await
            .unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic()))?
        };

        let base_dependency = ResourceDescriptor::with_sha256(
            format!("image-base:{}", image.name),
            Some(format!("docker-image:{reference}")),
            image.base.digest.hex(),
        )
        .annotate(
            "digestForm",
            if image.base_registry().is_some() {
                "oci-manifest"
            } else {
                "image-id"
            },
        );
        let origins: Vec<(crate::ops::sbom::LayerOrigin<'_>, &BlobDigest, &str)> = base
            .layers
            .iter()
            .map(|layer| (crate::ops::sbom::LayerOrigin::Base, layer))
            .chain(
                image
                    .layers
                    .iter()
                    .map(|layer| crate::ops::sbom::LayerOrigin::Input(&layer.input))
                    .zip(&layers[base.layers.len()..]),
            )
            .map(|(origin, blob)| (origin, &blob.digest, blob.media_type.as_str()))
            .collect();
        let bom = crate::ops::sbom::image_bom(
            context,
            attestation.catalog,
            image,
            &manifest_digest,
            &origins,
        );
        let sbom_files = crate::ops::sbom::write_sboms(
            &layout,
            &bom,
            attestation.sbom,
            image.name.as_str(),
            &manifest_digest,
            signer,
        )?;
        let envelope = context.image_envelope(
            image,
            &manifest_digest,
            base_dependency,
            &sbom_files.byproducts,
            signer,
        )?;
        let provenance = crate::ops::attest::provenance_path(&layout);
        crate::ops::attest::write_line_atomically(&provenance, &envelope.to_json_line())?;
        tracing::info!(
            "image {}: manifest {manifest_digest}, id {}",
            layout.display(),
            config_ref.digest
        );
        reports.push(ImageReport {
            name: image.name.to_string(),
            layout,
            manifest_digest,
            config_digest: config_ref.digest,
            base: reference,
            layers: layer_reports,
            provenance,
            sbom: sbom_files.paths,
            loaded: None,
        });
    }
    Ok(reports)
}

/// The base's blobs in the store: from a registry when the base names one (with `offline`,
/// only from the store), else from the engine.
async fn resolve_base(
    engine: &impl Engine,
    store: &Store,
    image: &Image,
    offline: bool,
) -> Result<BaseImage, Error> {
    if image.base_registry().is_some() {
        return Ok(crate::registry::pull::base_from_registry(store, &image.base, offline).await?);
    }
    Ok(base::from_engine(store, &image.base, engine).await?)
}

/// Which tag each image is loaded under: `--tag NAME:TAG` for a spec with one image,
/// `--tag IMAGE=NAME:TAG` for any; an image without a tag is loaded as `<image>:latest`.
pub fn load_tags(images: &[&str], tags: &[String]) -> Result<Vec<String>, Error> {
    let mut chosen: Vec<Option<String>> = vec![None; images.len()];
    for tag in tags {
        let (index, reference) = match tag.split_once('=') {
            Some((image, reference)) => {
                let Some(index) = images.iter().position(|name| *name == image) else {
                    return Err(ImageError::InvalidName {
                        name: tag.clone(),
                        reason: format!("the spec has no `[[image]]` named `{image}`"),
                    }
                    .into());
                };
                (index, reference)
            }
            None if images.len() == 1 => (0, tag.as_str()),
            None => {
                return Err(ImageError::InvalidName {
                    name: tag.clone(),
                    reason: "the spec has several images: write `--tag IMAGE=NAME:TAG`".to_string(),
                }
                .into());
            }
        };
        chosen[index] = Some(docker_tag(reference)?);
    }
    Ok(chosen
        .into_iter()
        .zip(images)
        .map(|(tag, name)| tag.unwrap_or_else(|| format!("{name}:latest")))
        .collect())
}

/// Checks `NAME[:TAG]` and adds `:latest` when there is no tag.
fn docker_tag(reference: &str) -> Result<String, ImageError> {
    let (name, tag) = match reference.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, tag),
        _ => (reference, "latest"),
    };
    RepositoryName::parse(name)?;
    let valid_tag = !tag.is_empty()
        && tag.len() <= 128
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        && !tag.starts_with(['.', '-']);
    if !valid_tag {
        return Err(ImageError::InvalidName {
            name: reference.to_string(),
            reason: format!(
                "`{tag}` is not a tag: up to 128 letters, digits, `_`, `.` and `-`, not starting with `.` or `-`"
            ),
        });
    }
    Ok(format!("{name}:{tag}"))
}

/// The image id each of `tags` names in the engine now (`None`: none, or the engine could not
/// say), asked while the build works so that an unchanged rebuild does not wait for it after.
pub async fn tagged_ids(engine: &impl Engine, tags: &[String]) -> Vec<Option<String>> {
    let mut ids = Vec::with_capacity(tags.len());
    for tag in tags {
        ids.push(engine.image_id(tag).await.ok().flatten());
    }
    ids
}

/// `--load`: each image's layout into the engine under its tag (from [`load_tags`]);
/// `tagged_before` is what [`tagged_ids`] found for those tags.
pub async fn load_images(
    engine: &impl Engine,
    images: &mut [ImageReport],
    tags: &[String],
    tagged_before: &[Option<String>],
) -> Result<(), Error> {
    for ((report, tag), before) in images.iter_mut().zip(tags).zip(tagged_before) {
        let id = report.config_digest.to_string();
        if before.as_deref() == Some(id.as_str()) {
            // Already loaded under this tag: an unchanged rebuild sends nothing.
            tracing::info!("{tag}: image id {id} (already in the engine)");
        } else if engine.image_id(&id).await?.as_deref() == Some(id.as_str()) {
            // The engine names an image by its config digest: it has this one, so tagging is
            // all that is left.
            let (repository, tag_name) = tag.rsplit_once(':').expect("load_tags adds a tag");
            engine
                .tag(&id, repository, tag_name)
                .await
                .map_err(ImageError::from)?;
            tracing::info!("tagged {tag}: image id {id} (already in the engine)");
        } else {
            let loaded =
                crate::image::docker_archive::load_layout(engine, &report.layout, tag).await?;
            tracing::info!("loaded {tag}: image id {loaded}");
        }
        report.loaded = Some(tag.clone());
    }
    Ok(())
}
