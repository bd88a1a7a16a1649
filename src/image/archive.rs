//! The image around a layer: the config JSON (whose sha256 is the image id) and the
//! docker-archive that `docker load` (API `POST /images/load`) reads: `manifest.json`, the
//! config, and the layer tar.
//!
//! The config's bytes are fixed for a given layer: keys in sorted order, no whitespace, no
//! creation time, no history. The archive is streamed: its small parts are built in memory and
//! the layer is read from its temp file in chunks, never as a whole.

use std::path::PathBuf;

use bytes::Bytes;
use futures_util::Stream;
use futures_util::stream::{self, StreamExt};
use serde::Serialize;
use tokio::io::AsyncReadExt;

use super::ImageError;
use crate::digest::{BlobDigest, ImageDigest};

/// The `PATH` every image sets; steps get nothing else from the image's environment.
pub const IMAGE_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The image config (OCI image-spec `config.json` / Docker's image JSON), fields in key order.
#[derive(Serialize)]
struct ImageConfig<'a> {
    architecture: &'a str,
    config: RunConfig,
    os: &'static str,
    rootfs: RootfsConfig,
}

#[derive(Serialize)]
struct RunConfig {
    #[serde(rename = "Env")]
    env: [&'static str; 1],
}

#[derive(Serialize)]
struct RootfsConfig {
    diff_ids: [BlobDigest; 1],
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ManifestEntry {
    config: String,
    repo_tags: Vec<String>,
    layers: Vec<String>,
}

/// The config JSON for an image of one layer, and its digest (the image id).
pub fn config_json(architecture: &str, diff_id: BlobDigest) -> (Vec<u8>, ImageDigest) {
    let config = ImageConfig {
        architecture,
        config: RunConfig { env: [IMAGE_PATH] },
        os: "linux",
        rootfs: RootfsConfig {
            diff_ids: [diff_id],
            kind: "layers",
        },
    };
    let bytes = serde_json::to_vec(&config).expect("the image config serializes");
    let digest = ImageDigest::of(&bytes);
    (bytes, digest)
}

/// The host's architecture in the names images use (Go's `GOARCH`).
pub fn host_architecture() -> Result<&'static str, ImageError> {
    match std::env::consts::ARCH {
        "x86_64" => Ok("amd64"),
        "aarch64" => Ok("arm64"),
        "arm" => Ok("arm"),
        "x86" => Ok("386"),
        "powerpc64" if cfg!(target_endian = "little") => Ok("ppc64le"),
        "s390x" => Ok("s390x"),
        "riscv64" => Ok("riscv64"),
        other => Err(ImageError::UnsupportedArchitecture { arch: other }),
    }
}

/// What goes into one docker-archive.
pub struct ArchiveParts<'a> {
    pub config: &'a [u8],
    pub digest: ImageDigest,
    pub layer_path: PathBuf,
    pub layer_digest: BlobDigest,
    pub layer_size: u64,
    /// `name:tag` references the engine sets on load.
    pub repo_tags: Vec<String>,
}

const BLOCK: usize = 512;
const CHUNK: usize = 256 * 1024;

/// The docker-archive as a stream of chunks: the layer first (its header, then its bytes from
/// the temp file), then the config, `manifest.json` and the end-of-archive blocks.
pub fn archive_stream(
    parts: ArchiveParts<'_>,
) -> Result<impl Stream<Item = std::io::Result<Bytes>> + Send + 'static, ImageError> {
    let layer_name = format!("{}/layer.tar", parts.layer_digest.hex());
    let config_name = format!("{}.json", parts.digest.hex());
    let manifest = serde_json::to_vec(&[ManifestEntry {
        config: config_name.clone(),
        repo_tags: parts.repo_tags,
        layers: vec![layer_name.clone()],
    }])
    .expect("the manifest serializes");

    let mut layer_header = member_header(parts.layer_size);
    layer_header
        .set_path(&layer_name)
        .map_err(|source| ImageError::WriteTemp { source })?;
    layer_header.set_cksum();
    let head = Bytes::copy_from_slice(layer_header.as_bytes());

    let padding = (BLOCK - (parts.layer_size % BLOCK as u64) as usize) % BLOCK;
    let mut tail = tar::Builder::new(vec![0u8; padding]);
    for (name, data) in [
        (&config_name, parts.config),
        (&"manifest.json".to_string(), &manifest[..]),
    ] {
        let mut header = member_header(data.len() as u64);
        tail.append_data(&mut header, name, data)
            .map_err(|source| ImageError::WriteTemp { source })?;
    }
    let tail = Bytes::from(
        tail.into_inner()
            .map_err(|source| ImageError::WriteTemp { source })?,
    );

    let layer_path = parts.layer_path;
    let layer = stream::once(async move { tokio::fs::File::open(layer_path).await })
        .map(|opened| match opened {
            Ok(file) => stream::unfold(Some(file), read_chunk).left_stream(),
            Err(error) => stream::once(async move { Err(error) }).right_stream(),
        })
        .flatten();
    Ok(stream::once(async move { Ok(head) })
        .chain(layer)
        .chain(stream::once(async move { Ok(tail) })))
}

/// The next chunk of a file being streamed to the engine (for `stream::unfold`).
pub(super) async fn read_chunk(
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

fn member_header(size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_size(size);
    header
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_bytes_are_fixed() {
        let diff_id = BlobDigest::of(b"layer");
        let (bytes, digest) = config_json("amd64", diff_id);
        let expected = format!(
            r#"{{"architecture":"amd64","config":{{"Env":["{IMAGE_PATH}"]}},"os":"linux","rootfs":{{"diff_ids":["{diff_id}"],"type":"layers"}}}}"#
        );
        assert_eq!(String::from_utf8(bytes.clone()).unwrap(), expected);
        assert_eq!(digest, ImageDigest::of(&bytes));
    }
}
