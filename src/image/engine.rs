//! The engine side of images: loading a built image through bollard, checking that the engine
//! names it by the id we computed, and checking that a pinned image is present before a build.

use bollard::Docker;
use bollard::query_parameters::ImportImageOptions;
use futures_util::StreamExt;

use super::archive::{ArchiveParts, archive_stream};
use super::{BuiltImage, ImageError, RepositoryName};
use crate::spec::PinnedImage;

/// Loads `image` into the engine tagged `name:latest` and returns `name@<image id>`, after
/// checking that the engine reports the id we computed from the config.
pub async fn load(
    docker: &Docker,
    image: &BuiltImage,
    name: &RepositoryName,
) -> Result<PinnedImage, ImageError> {
    let body = archive_stream(ArchiveParts {
        config: &image.config,
        digest: image.digest,
        layer_path: image.layer.path().to_path_buf(),
        layer_digest: image.layer_digest,
        layer_size: image.layer_size,
        repo_tags: vec![name.latest()],
    })?;
    let options = ImportImageOptions {
        quiet: true,
        ..Default::default()
    };
    let mut progress = docker.import_image_stream(options, body, None);
    while let Some(item) = progress.next().await {
        let info = item.map_err(engine_error)?;
        if let Some(line) = info.stream.as_deref() {
            tracing::debug!("engine: {}", line.trim_end());
        }
    }

    let tag = name.latest();
    let inspected = docker.inspect_image(&tag).await.map_err(engine_error)?;
    let found = inspected.id.unwrap_or_default();
    if found != image.digest.to_string() {
        return Err(ImageError::IdMismatch {
            reference: tag,
            expected: image.digest.to_string(),
            found,
        });
    }
    Ok(PinnedImage {
        name: name.to_string(),
        digest: image.digest,
    })
}

/// Checks that the engine holds an image whose id is `image`'s digest; the name is not
/// consulted, the digest alone pins the image.
pub async fn ensure_present(docker: &Docker, image: &PinnedImage) -> Result<(), ImageError> {
    let id = image.digest.to_string();
    match docker.inspect_image(&id).await {
        Ok(inspected) if inspected.id.as_deref() == Some(id.as_str()) => Ok(()),
        Ok(inspected) => Err(ImageError::IdMismatch {
            reference: id,
            expected: image.digest.to_string(),
            found: inspected.id.unwrap_or_default(),
        }),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Err(ImageError::NotPresent {
            image: image.clone(),
        }),
        Err(error) => Err(engine_error(error)),
    }
}

/// The engine answered with an error (it refused the request) or could not be reached at all.
pub(crate) fn engine_error(error: bollard::errors::Error) -> ImageError {
    use bollard::errors::Error;
    match error {
        Error::DockerResponseServerError {
            status_code,
            message,
        } => ImageError::EngineRefused {
            detail: format!("{} (HTTP {status_code})", message.trim_end()),
        },
        Error::DockerStreamError { error } => ImageError::EngineRefused {
            detail: error.trim_end().to_string(),
        },
        other => ImageError::EngineUnreachable {
            detail: other.to_string(),
        },
    }
}
