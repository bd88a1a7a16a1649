//! A base image pulled by digest: `host[:port]/name@sha256:<manifest digest>`. The digest is
//! the sha256 of the image manifest (what `docker pull NAME@sha256:...` uses), not the image id
//! a local base is pinned by. An index (multi-platform) digest is accepted too: the manifest for
//! `linux` and the host's architecture is taken from it.
//!
//! The manifest, config and layers become store blobs, each checked against its digest as it
//! streams; once they are there, building again needs no registry.

use serde::Deserialize;

use super::client::{Client, MAX_MANIFEST_BYTES};
use super::{Reference, RegistryError};
use crate::digest::BlobDigest;
use crate::image::ImageError;
use crate::image::base::{BaseImage, LAYER_TAR, LAYER_TAR_GZIP};
use crate::image::oci::BlobRef;
use crate::spec::PinnedImage;
use crate::store::Store;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    media_type: Option<String>,
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: String,
    digest: BlobDigest,
    size: u64,
    platform: Option<Platform>,
}

#[derive(Deserialize)]
struct Platform {
    os: String,
    architecture: String,
}

/// An image pulled by digest: its blobs in the store, and the image manifest they came from.
pub struct Pulled {
    pub base: BaseImage,
    /// The image manifest: the pinned digest, or the index entry for this platform.
    pub manifest: BlobDigest,
}

/// The base `image` (pinned by manifest digest) in the store, downloaded if it is not there;
/// with `offline`, what the store lacks is an error and no socket is opened.
pub async fn base_from_registry(
    store: &Store,
    image: &PinnedImage,
    offline: bool,
) -> Result<BaseImage, ImageError> {
    Ok(pull_image(store, image, offline).await?.base)
}

/// [`base_from_registry`], also naming the manifest taken.
pub async fn pull_image(
    store: &Store,
    image: &PinnedImage,
    offline: bool,
) -> Result<Pulled, ImageError> {
    pull(store, image, offline)
        .await
        .map_err(|error| ImageError::Registry {
            reference: image.to_string(),
            detail: error.to_string(),
        })
}

async fn pull(store: &Store, image: &PinnedImage, offline: bool) -> Result<Pulled, RegistryError> {
    let reference = Reference::parse(&image.to_string())?;
    let pinned: BlobDigest = image.digest.cast();
    let client = Client::new(&reference.registry)?;
    let offline_refusal = |what: String| RegistryError::Offline {
        what,
        reference: reference.to_string(),
    };
    let mut manifest_digest = pinned;
    loop {
        let manifest_bytes = match read_blob(store, &manifest_digest) {
            Some(bytes) => bytes,
            None if offline => {
                return Err(offline_refusal(format!("the manifest {manifest_digest}")));
            }
            None => {
                let (bytes, _) = client
                    .get_manifest(&reference.repository, &manifest_digest.to_string())
                    .await?;
                store_bytes(store, &bytes, &manifest_digest)?;
                bytes
            }
        };
        let url = format!("{}@{manifest_digest}", reference.name());
        let manifest: Manifest = serde_json::from_slice(&manifest_bytes).map_err(|error| {
            RegistryError::Unsupported {
                what: "the manifest".to_string(),
                url: url.clone(),
                detail: error.to_string(),
            }
        })?;
        if !manifest.manifests.is_empty() {
            let architecture = crate::image::archive::host_architecture().map_err(|error| {
                RegistryError::Unsupported {
                    what: "the index".to_string(),
                    url: url.clone(),
                    detail: error.to_string(),
                }
            })?;
            let chosen = for_platform(&manifest.manifests, architecture);
            let Some(chosen) = chosen else {
                return Err(RegistryError::Unsupported {
                    what: "the index".to_string(),
                    url,
                    detail: format!("it has no manifest for linux/{architecture}"),
                });
            };
            manifest_digest = chosen.digest;
            continue;
        }
        let Some(config) = manifest.config else {
            return Err(RegistryError::Unsupported {
                what: "the manifest".to_string(),
                url,
                detail: format!(
                    "it is not an image manifest (media type {})",
                    manifest.media_type.unwrap_or_default()
                ),
            });
        };
        if config.size > MAX_MANIFEST_BYTES {
            return Err(RegistryError::TooLarge {
                what: format!("the image config {}", config.digest),
                url,
                limit: MAX_MANIFEST_BYTES,
                detail: format!("its descriptor says {} bytes", config.size),
            });
        }
        if !store.has_blob(&config.digest) {
            if offline {
                return Err(offline_refusal(format!(
                    "the image config {}",
                    config.digest
                )));
            }
            client
                .blob_into_store(store, &reference.repository, &config.digest, config.size)
                .await?;
        }
        let mut layers = Vec::with_capacity(manifest.layers.len());
        for layer in &manifest.layers {
            let media_type = match layer.media_type.as_str() {
                "application/vnd.docker.image.rootfs.diff.tar.gzip" => LAYER_TAR_GZIP.to_string(),
                "application/vnd.docker.image.rootfs.diff.tar" => LAYER_TAR.to_string(),
                other if other.starts_with("application/vnd.oci.image.layer.v1.tar") => {
                    other.to_string()
                }
                other => {
                    return Err(RegistryError::Unsupported {
                        what: format!("layer {}", layer.digest),
                        url,
                        detail: format!("its media type `{other}` is not a layer sealroom can use"),
                    });
                }
            };
            if !store.has_blob(&layer.digest) {
                if offline {
                    return Err(offline_refusal(format!("layer {}", layer.digest)));
                }
                client
                    .blob_into_store(store, &reference.repository, &layer.digest, layer.size)
                    .await?;
            }
            layers.push(BlobRef {
                media_type,
                digest: layer.digest,
                size: layer.size,
            });
        }
        let config_bytes =
            read_blob(store, &config.digest).ok_or_else(|| RegistryError::Store {
                detail: format!("the config {} is not in the store", config.digest),
            })?;
        return Ok(Pulled {
            base: BaseImage {
                config: config_bytes,
                layers,
            },
            manifest: manifest_digest,
        });
    }
}

/// The image id (the config's digest) of `image`, pinned by manifest or index digest, when the
/// store holds its manifest (the index's entry for this platform) and config: what a pull put
/// there. Reads only the store.
pub fn stored_image_id(store: &Store, image: &PinnedImage) -> Option<BlobDigest> {
    let architecture = crate::image::archive::host_architecture().ok()?;
    let mut digest: BlobDigest = image.digest.cast();
    // An index names manifests, not indexes: two levels at most.
    for _ in 0..2 {
        let manifest: Manifest = serde_json::from_slice(&read_blob(store, &digest)?).ok()?;
        if let Some(config) = manifest.config {
            return store.has_blob(&config.digest).then_some(config.digest);
        }
        digest = for_platform(&manifest.manifests, architecture)?.digest;
    }
    None
}

/// The entry of an index for `linux` on `architecture`.
fn for_platform<'a>(manifests: &'a [Descriptor], architecture: &str) -> Option<&'a Descriptor> {
    manifests.iter().find(|entry| {
        entry
            .platform
            .as_ref()
            .is_some_and(|p| p.os == "linux" && p.architecture == architecture)
    })
}

/// A manifest or config from the store, if it is there, intact and not over the JSON limit.
fn read_blob(store: &Store, digest: &BlobDigest) -> Option<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(store.blob_path(digest)).ok()?;
    let mut bytes = Vec::new();
    file.take(MAX_MANIFEST_BYTES + 1)
        .read_to_end(&mut bytes)
        .ok()?;
    (bytes.len() as u64 <= MAX_MANIFEST_BYTES && BlobDigest::of(&bytes) == *digest).then_some(bytes)
}

fn store_bytes(store: &Store, bytes: &[u8], digest: &BlobDigest) -> Result<(), RegistryError> {
    store
        .add_blob_from_reader(bytes, "a registry manifest", Some(digest))
        .map_err(|error| RegistryError::Store {
            detail: error.to_string(),
        })?;
    Ok(())
}
