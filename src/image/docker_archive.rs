//! Loading an OCI image layout into Docker 20.10, whose `POST /images/load` reads only the
//! docker-archive format: a tar holding `manifest.json`
//! (`[{"Config": ..., "RepoTags": [...], "Layers": [...]}]`) and the files it names.
//!
//! The layout's own `blobs/sha256/<hex>` files are those members (the engine accepts gzip
//! layers and finds them by path), so the archive is the layout's blobs plus one small
//! `manifest.json`, streamed from the files in chunks. The engine names the image by the sha256
//! of its config, which is checked after the load.

use std::path::{Path, PathBuf};

use bollard::Docker;
use bollard::query_parameters::ImportImageOptions;
use bytes::Bytes;
use futures_util::Stream;
use futures_util::stream::{self, StreamExt};

use super::ImageError;
use super::archive::read_chunk;
use super::engine::engine_error;
use super::oci::{blob_path, read_layout};

const BLOCK: u64 = 512;

/// One member of the archive: bytes in memory or a file streamed from disk.
enum Member {
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
pub async fn load_layout(docker: &Docker, layout: &Path, tag: &str) -> Result<String, ImageError> {
    let image = read_layout(layout)?;
    let member_name = |digest: &crate::digest::BlobDigest| format!("blobs/sha256/{}", digest.hex());
    let manifest = serde_json::json!([{
        "Config": member_name(&image.config.digest),
        "RepoTags": [tag],
        "Layers": image.layers.iter().map(|layer| member_name(&layer.digest)).collect::<Vec<_>>(),
    }]);
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
    members.push(Member::Memory {
        name: "manifest.json".to_string(),
        bytes: serde_json::to_vec(&manifest).expect("the manifest serializes"),
    });
    let body = archive_stream(members)?;
    let options = ImportImageOptions {
        quiet: true,
        ..Default::default()
    };
    let mut progress = docker.import_image_stream(options, body, None);
    while let Some(item) = progress.next().await {
        let info = item.map_err(engine_error)?;
        if let Some(error) = info.error_detail.and_then(|detail| detail.message) {
            return Err(ImageError::EngineRefused { detail: error });
        }
    }
    let inspected = docker.inspect_image(tag).await.map_err(engine_error)?;
    let found = inspected.id.unwrap_or_default();
    let expected = image.config.digest.to_string();
    if found != expected {
        return Err(ImageError::IdMismatch {
            reference: tag.to_string(),
            expected,
            found,
        });
    }
    Ok(found)
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
fn archive_stream(
    members: Vec<Member>,
) -> Result<impl Stream<Item = std::io::Result<Bytes>> + Send + 'static, ImageError> {
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
    Ok(stream::iter(parts).flatten())
}
