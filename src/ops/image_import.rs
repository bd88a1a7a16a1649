//! `sealroom image import`: a root filesystem in, a pinned image reference out.

use std::path::Path;

use crate::image::{self, ImageError, Imported, RepositoryName};
use crate::sandbox::SandboxError;

/// Makes a deterministic image of `rootfs` (a directory, or a tar file, possibly compressed),
/// loads it into the engine tagged `name`, and returns `name@sha256:<image id>` and how many
/// device nodes under `/dev` it left out.
pub async fn image_import(rootfs: &Path, name: &str) -> Result<Imported, crate::Error> {
    let name = RepositoryName::parse(name)?;
    // Bad input is reported before the engine is asked anything.
    if !rootfs.exists() {
        return Err(ImageError::RootfsNotFound {
            path: rootfs.into(),
        }
        .into());
    }
    let docker = crate::sandbox::docker::connect()
        .await
        .map_err(|error| match error {
            SandboxError::EngineUnreachable { detail } => {
                crate::Error::from(ImageError::EngineUnreachable { detail })
            }
            other => crate::Error::from(other),
        })?;
    Ok(image::import(&docker, rootfs, &name).await?)
}
