//! The base of an `[[image]]`, as blobs in the store: its config and its layers.
//!
//! - From the local engine (the usual case, `name@sha256:<image id>`): exported once with
//!   `docker save` (bollard's `export_image`); the config must hash to the image id and each
//!   layer tar to its `diff_id`. Layers are kept uncompressed, exactly as the engine has them,
//!   so a layer blob's digest is its `diff_id` and the store alone tells whether a base is
//!   already there: a second build never asks the engine.
//! - From a registry (`host[:port]/name@sha256:<manifest digest>`, see
//!   [`crate::registry`]): the manifest, config and layers are downloaded and verified against
//!   their digests; layers keep the registry's compression.
//!
//! This module writes only store blobs (and a temp file for the export).

use std::collections::HashMap;
use std::io::Read;

use super::ImageError;
use super::oci::BlobRef;
use crate::digest::BlobDigest;
use crate::sandbox::{Engine, EngineError};
use crate::spec::PinnedImage;
use crate::store::Store;

/// The media type of an uncompressed layer.
pub const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// The media type of a gzip-compressed layer.
pub const LAYER_TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// A base image whose blobs are all in the store.
pub struct BaseImage {
    /// The config JSON as the base has it.
    pub config: Vec<u8>,
    pub layers: Vec<BlobRef>,
}

/// The base from the local engine, exported into the store unless it is there already: the
/// engine is asked only the first time a base is used with this store.
pub async fn from_engine(
    store: &Store,
    image: &PinnedImage,
    engine: &impl Engine,
) -> Result<BaseImage, ImageError> {
    let config_digest: BlobDigest = image.digest.cast();
    if let Some(base) = stored(store, &config_digest)? {
        return Ok(base);
    }
    crate::sandbox::require_image(engine, image).await?;
    let temp_dir = store.temp_dir().map_err(store_error)?;
    let saved = temp_dir.path().join("save.tar");
    let id = image.digest.to_string();
    engine.save(&id, &saved).await?;
    let store_for_task = store.clone();
    let reference = image.to_string();
    tokio::task::spawn_blocking(move || {
        import_saved(&store_for_task, &saved, &reference, &config_digest)
    })
    .await
    .unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic()))?;
    stored(store, &config_digest)?.ok_or_else(|| {
        EngineError::Refused {
            action: "saving an image".to_string(),
            detail: format!("`docker save {id}` did not hold every layer of the image"),
        }
        .into()
    })
}

/// The base whose config blob is `config_digest`, when the store has it and every layer.
pub fn stored(store: &Store, config_digest: &BlobDigest) -> Result<Option<BaseImage>, ImageError> {
    if !store.has_blob(config_digest) {
        return Ok(None);
    }
    let config =
        std::fs::read(store.blob_path(config_digest)).map_err(|source| ImageError::ReadRootfs {
            path: store.blob_path(config_digest),
            source,
        })?;
    if BlobDigest::of(&config) != *config_digest {
        return Err(ImageError::CorruptStoreBlob {
            path: store.blob_path(config_digest),
            expected: *config_digest,
            found: BlobDigest::of(&config),
        });
    }
    let diff_ids = diff_ids(&config).map_err(|detail| ImageError::BaseConfig {
        base: config_digest.to_string(),
        detail,
    })?;
    let mut layers = Vec::with_capacity(diff_ids.len());
    for diff_id in diff_ids {
        let path = store.blob_path(&diff_id);
        let Ok(metadata) = std::fs::metadata(&path) else {
            return Ok(None);
        };
        layers.push(BlobRef {
            media_type: LAYER_TAR.to_string(),
            digest: diff_id,
            size: metadata.len(),
        });
    }
    Ok(Some(BaseImage { config, layers }))
}

/// The `rootfs.diff_ids` of a config.
pub fn diff_ids(config: &[u8]) -> Result<Vec<BlobDigest>, String> {
    #[derive(serde::Deserialize)]
    struct Config {
        rootfs: Rootfs,
    }
    #[derive(serde::Deserialize)]
    struct Rootfs {
        diff_ids: Vec<BlobDigest>,
    }
    let config: Config = serde_json::from_slice(config).map_err(|error| error.to_string())?;
    Ok(config.rootfs.diff_ids)
}

/// Reads a `docker save` tar in one pass: every `*.json` member is kept in memory (they are
/// small), every `layer.tar` is streamed into the store. Then the config named by
/// `manifest.json` must be `config_digest`, and each of its layers' digests its `diff_id`.
fn import_saved(
    store: &Store,
    saved: &std::path::Path,
    reference: &str,
    config_digest: &BlobDigest,
) -> Result<(), ImageError> {
    let corrupt = |source: std::io::Error| ImageError::CorruptTar {
        path: saved.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(saved).map_err(corrupt)?;
    let mut archive = tar::Archive::new(file);
    let mut documents: HashMap<String, Vec<u8>> = HashMap::new();
    let mut layers: HashMap<String, BlobDigest> = HashMap::new();
    let mut links: HashMap<String, String> = HashMap::new();
    for entry in archive.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        let name = entry
            .path()
            .map_err(corrupt)?
            .to_string_lossy()
            .into_owned();
        match entry.header().entry_type() {
            tar::EntryType::Symlink => {
                // Docker links a layer it has already written under another id.
                if let Some(target) = entry.link_name().map_err(corrupt)? {
                    let directory = name.rsplit_once('/').map_or("", |(dir, _)| dir);
                    let target = target.to_string_lossy();
                    let resolved = normalize(&format!("{directory}/{target}"));
                    links.insert(name, resolved);
                }
            }
            tar::EntryType::Regular if name.ends_with("layer.tar") => {
                let (digest, _) = store
                    .add_blob_from_reader(&mut entry, &format!("`{name}` of {reference}"), None)
                    .map_err(store_error)?;
                layers.insert(name, digest);
            }
            tar::EntryType::Regular if name.ends_with(".json") => {
                let mut bytes = Vec::new();
                entry.read_to_end(&mut bytes).map_err(corrupt)?;
                documents.insert(name, bytes);
            }
            _ => {}
        }
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Entry {
        config: String,
        layers: Vec<String>,
    }
    let bad = |detail: String| {
        ImageError::from(EngineError::Refused {
            action: "saving an image".to_string(),
            detail: format!("the engine's export of {reference} is not a docker-archive: {detail}"),
        })
    };
    let manifest: Vec<Entry> = documents
        .get("manifest.json")
        .ok_or_else(|| bad("no manifest.json".to_string()))
        .and_then(|bytes| serde_json::from_slice(bytes).map_err(|e| bad(e.to_string())))?;
    let entry = manifest
        .first()
        .ok_or_else(|| bad("an empty manifest.json".to_string()))?;
    let config = documents
        .get(&entry.config)
        .ok_or_else(|| bad(format!("no config `{}`", entry.config)))?;
    let found = BlobDigest::of(config);
    if found != *config_digest {
        return Err(ImageError::IdMismatch {
            reference: reference.to_string(),
            expected: config_digest.to_string(),
            found: found.to_string(),
        });
    }
    let expected = diff_ids(config).map_err(|detail| ImageError::BaseConfig {
        base: reference.to_string(),
        detail,
    })?;
    if expected.len() != entry.layers.len() {
        return Err(bad(format!(
            "{} layers for {} diff_ids",
            entry.layers.len(),
            expected.len()
        )));
    }
    for (name, diff_id) in entry.layers.iter().zip(&expected) {
        let resolved = links.get(name).unwrap_or(name);
        let found = layers
            .get(resolved)
            .ok_or_else(|| bad(format!("no layer `{name}`")))?;
        if found != diff_id {
            return Err(bad(format!(
                "layer `{name}` has sha256 {found}, but the config's diff_id is {diff_id}"
            )));
        }
    }
    store
        .add_blob_from_reader(config.as_slice(), reference, Some(config_digest))
        .map_err(store_error)?;
    Ok(())
}

/// `a/../b/./c` as `b/c`.
fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    parts.join("/")
}

pub(crate) fn store_error(error: crate::store::StoreError) -> ImageError {
    ImageError::Store {
        detail: error.to_string(),
    }
}
