//! The docker-archive, the one image format Docker 20.10's `POST /images/load` reads: a tar
//! holding `manifest.json` (`[{"Config": ..., "RepoTags": [...], "Layers": [...]}]`) and the
//! files it names, streamed from memory and files in chunks (a layer is never read whole). Both
//! loads use it: an image `sealroom image import` built, and an OCI image layout, whose own
//! `blobs/sha256/<hex>` files are the members (the engine accepts gzip layers and finds them by
//! path). The engine names an image by the sha256 of its config, which is checked after the
//! load.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use tokio::io::AsyncReadExt;

use super::ImageError;
use super::base::BaseImage;
use super::oci::{blob_path, read_layout};
use crate::digest::BlobDigest;
use crate::sandbox::docker::ImageArchive;
use crate::sandbox::{ArchiveStream, Engine, EngineError};
use crate::store::Store;

const BLOCK: u64 = 512;
/// How much of a file each chunk of the stream holds.
const CHUNK: usize = 256 * 1024;

/// One member of the archive: bytes in memory or a file streamed from disk.
pub(super) enum Member {
    Memory {
        name: String,
        bytes: Vec<u8>,
    },
    File {
        name: String,
        path: PathBuf,
        size: u64,
    },
}

/// Loads the image of the layout at `layout` tagged `tag` (`name:tag`) and returns the image
/// id the engine reports, after checking it is the config's digest.
pub async fn load_layout(
    engine: &impl Engine,
    layout: &Path,
    tag: &str,
) -> Result<String, ImageError> {
    let image = read_layout(layout)?;
    let member_name = |digest: &BlobDigest| format!("blobs/sha256/{}", digest.hex());
    let mut members = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for blob in std::iter::once(&image.config).chain(&image.layers) {
        if !seen.insert(blob.digest) {
            continue;
        }
        members.push(Member::File {
            name: member_name(&blob.digest),
            path: blob_path(layout, &blob.digest),
            size: blob.size,
        });
    }
    let layers = image.layers.iter().map(|layer| member_name(&layer.digest));
    members.push(manifest(
        member_name(&image.config.digest),
        Some(tag),
        layers,
    ));
    load_checked(engine, members, tag, &image.config.digest.to_string()).await?;
    Ok(image.config.digest.to_string())
}

/// The docker-archive of an image whose blobs are all in the store (an image pulled from a
/// registry), made anew each time it is called, untagged: the engine names it by its config's
/// digest, the image id, which `LazyDocker::prepare` checks after the load.
pub fn stored_image_archive(store: &Store, image: &BaseImage) -> ImageArchive {
    let config = image.config.clone();
    let config_name = format!("{}.json", BlobDigest::of(&config).hex());
    let layers: Vec<(String, PathBuf, u64)> = image
        .layers
        .iter()
        .map(|layer| {
            let name = format!("blobs/sha256/{}", layer.digest.hex());
            (name, store.blob_path(&layer.digest), layer.size)
        })
        .collect();
    std::sync::Arc::new(move || {
        let mut members = vec![Member::Memory {
            name: config_name.clone(),
            bytes: config.clone(),
        }];
        let mut seen = std::collections::BTreeSet::new();
        for (name, path, size) in &layers {
            if seen.insert(name) {
                members.push(Member::File {
                    name: name.clone(),
                    path: path.clone(),
                    size: *size,
                });
            }
        }
        let names = layers.iter().map(|(name, _, _)| name.clone());
        members.push(manifest(config_name.clone(), None, names));
        archive_stream(members).map_err(|error| EngineError::Refused {
            action: "making the archive of an image in the store".to_string(),
            detail: error.to_string(),
        })
    })
}

/// The `manifest.json` member naming one image: its config, tag (if any) and layers.
pub(super) fn manifest(
    config: String,
    tag: Option<&str>,
    layers: impl Iterator<Item = String>,
) -> Member {
    let manifest = serde_json::json!([{
        "Config": config,
        "RepoTags": tag.into_iter().collect::<Vec<_>>(),
        "Layers": layers.collect::<Vec<_>>(),
    }]);
    Member::Memory {
        name: "manifest.json".to_string(),
        bytes: serde_json::to_vec(&manifest).expect("the manifest serializes"),
    }
}

/// Loads the archive of `members` and checks that the engine names `tag` by `expected` (the
/// image id sealroom computed).
pub(super) async fn load_checked(
    engine: &impl Engine,
    members: Vec<Member>,
    tag: &str,
    expected: &str,
) -> Result<(), ImageError> {
    engine.load(archive_stream(members)?).await?;
    let found = engine.image_id(tag).await?.unwrap_or_default();
    if found != expected {
        return Err(ImageError::IdMismatch {
            reference: tag.to_string(),
            expected: expected.to_string(),
            found,
        });
    }
    Ok(())
}

fn header(name: &str, size: u64) -> Result<tar::Header, ImageError> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_size(size);
    header
        .set_path(name)
        .map_err(|source| ImageError::WriteTemp { source })?;
    header.set_cksum();
    Ok(header)
}

fn padding(size: u64) -> Bytes {
    Bytes::from(vec![0u8; ((BLOCK - size % BLOCK) % BLOCK) as usize])
}

/// The tar of `members` as a stream of chunks; member names are short (no long-name entries).
fn archive_stream(members: Vec<Member>) -> Result<ArchiveStream, ImageError> {
    let mut parts = Vec::new();
    for member in members {
        match member {
            Member::Memory { name, bytes } => {
                let size = bytes.len() as u64;
                let head = header(&name, size)?;
                parts.push(
                    stream::iter([
                        Ok(Bytes::copy_from_slice(head.as_bytes())),
                        Ok(Bytes::from(bytes)),
                        Ok(padding(size)),
                    ])
                    .boxed(),
                );
            }
            Member::File { name, path, size } => {
                let head = header(&name, size)?;
                let head = Bytes::copy_from_slice(head.as_bytes());
                let contents = stream::once(async move { tokio::fs::File::open(path).await })
                    .map(|opened| match opened {
                        Ok(file) => stream::unfold(Some(file), read_chunk).left_stream(),
                        Err(error) => stream::once(async move { Err(error) }).right_stream(),
                    })
                    .flatten();
                parts.push(
                    stream::once(async move { Ok(head) })
                        .chain(contents)
                        .chain(stream::once(async move { Ok(padding(size)) }))
                        .boxed(),
                );
            }
        }
    }
    parts.push(stream::once(async { Ok(Bytes::from(vec![0u8; 1024])) }).boxed());
    Ok(stream::iter(parts).flatten().boxed())
}

/// The next chunk of a file being streamed to the engine (for `stream::unfold`).
async fn read_chunk(
    file: Option<tokio::fs::File>,
) -> Option<(std::io::Result<Bytes>, Option<tokio::fs::File>)> {
    let mut file = file?;
    let mut buffer = vec![0u8; CHUNK];
    match file.read(&mut buffer).await {
        Ok(0) => None,
        Ok(n) => {
            buffer.truncate(n);
            Some((Ok(Bytes::from(buffer)), Some(file)))
        }
        Err(error) => Some((Err(error), None)),
    }
}
