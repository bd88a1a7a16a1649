//! `sealroom push IMAGE REF`: an OCI image layout (or the `[[image]]` of that name in `--out`)
//! to a registry, by digest. Blobs the registry has are skipped (`HEAD`), the others uploaded
//! from the layout's files; the manifest is put by its digest, then under REF's tag if it has
//! one. What was pushed is named `REF@sha256:<manifest digest>`, the same bytes on every machine
//! that built the same spec.

use std::path::{Path, PathBuf};

use crate::digest::BlobDigest;
use crate::error::Error;
use crate::image::ImageError;
use crate::image::oci::{blob_path, read_layout};
use crate::registry::client::Client;
use crate::registry::{Reference, RegistryError};

#[derive(Debug, Clone, serde::Serialize)]
pub struct PushReport {
    /// `host/repository@sha256:<manifest digest>`.
    pub reference: String,
    pub manifest_digest: BlobDigest,
    pub tag: Option<String>,
    pub layout: PathBuf,
    /// Blobs uploaded, and blobs the registry had already.
    pub uploaded: usize,
    pub skipped: usize,
}

/// The layout directory `image` names: a directory with an `index.json`, else the image of that
/// name in `out_dir`.
pub fn resolve_layout(image: &str, out_dir: &Path) -> Result<PathBuf, ImageError> {
    let direct = PathBuf::from(image);
    if direct.join("index.json").is_file() {
        return Ok(direct);
    }
    let named = out_dir.join(image);
    if !image.contains('/') && named.join("index.json").is_file() {
        return Ok(named);
    }
    Err(ImageError::BadLayout {
        path: direct,
        detail: format!(
            "it has no `index.json`, and `{}` has no image named `{image}`",
            out_dir.display()
        ),
    })
}

pub async fn push(image: &str, reference: &str, out_dir: &Path) -> Result<PushReport, Error> {
    let reference = Reference::parse(reference)?;
    let layout = resolve_layout(image, out_dir)?;
    let contents = read_layout(&layout)?;
    if let Some(pinned) = &reference.digest
        && *pinned != contents.manifest_digest.to_string()
    {
        return Err(RegistryError::InvalidReference {
            reference: reference.to_string(),
            reason: format!(
                "it names digest {pinned}, but the image's manifest is {}",
                contents.manifest_digest
            ),
        }
        .into());
    }
    let client = Client::new(&reference.registry)?;
    client.will_push(&reference.repository);
    let (mut uploaded, mut skipped) = (0, 0);
    for blob in std::iter::once(&contents.config).chain(&contents.layers) {
        if client.has_blob(&reference.repository, &blob.digest).await? {
            skipped += 1;
            continue;
        }
        let path = blob_path(&layout, &blob.digest);
        client
            .push_blob(&reference.repository, &blob.digest, blob.size, &path)
            .await?;
        tracing::info!("pushed blob {} ({} bytes)", blob.digest, blob.size);
        uploaded += 1;
    }
    let media_type = if contents.manifest_media_type.is_empty() {
        oci_spec::image::MediaType::ImageManifest.to_string()
    } else {
        contents.manifest_media_type.clone()
    };
    let digest = contents.manifest_digest.to_string();
    client
        .put_manifest(
            &reference.repository,
            &digest,
            &media_type,
            &contents.manifest,
        )
        .await?;
    if let Some(tag) = &reference.tag {
        client
            .put_manifest(&reference.repository, tag, &media_type, &contents.manifest)
            .await?;
        tracing::info!("tagged {}:{tag}", reference.name());
    }
    Ok(PushReport {
        reference: format!("{}@{digest}", reference.name()),
        manifest_digest: contents.manifest_digest,
        tag: reference.tag.clone(),
        layout,
        uploaded,
        skipped,
    })
}
