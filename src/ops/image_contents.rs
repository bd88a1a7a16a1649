//! PLACEHOLDER until the wt-a branch lands (its version replaces this file).
use crate::error::Error;
use crate::sandbox::Engine;
use crate::sbom::image::ImageContents;
use crate::store::Store;

pub async fn image_contents(
    _engine: &impl Engine,
    _store: &Store,
    _image_id: &str,
) -> Result<ImageContents, Error> {
    Ok(ImageContents {
        os: None,
        packages: Vec::new(),
    })
}
