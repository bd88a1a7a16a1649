//! `sealroom image import`: a root filesystem in, a pinned image reference out.

use std::path::Path;

use crate::image::{self, ImageError, Imported, RepositoryName};

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
    let engine = crate::sandbox::docker::LazyDocker::new();
    Ok(image::import(&engine, rootfs, &name).await?)
}
