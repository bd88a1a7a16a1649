//! The engine side of images: loading a built image and checking that the engine names it by
//! the id we computed.

use super::docker_archive::{Member, load_checked, manifest};
use super::{BuiltImage, ImageError, RepositoryName};
use crate::sandbox::Engine;
use crate::spec::PinnedImage;

/// Loads `image` into the engine tagged `name:latest` and returns `name@<image id>`, after
/// checking that the engine reports the id we computed from the config.
pub async fn load(
    engine: &impl Engine,
    image: &BuiltImage,
    name: &RepositoryName,
) -> Result<PinnedImage, ImageError> {
    let layer_name = format!("{}/layer.tar", image.layer_digest.hex());
    let config_name = format!("{}.json", image.digest.hex());
    let tag = name.latest();
    let members = vec![
        Member::File {
            name: layer_name.clone(),
            path: image.layer.path().to_path_buf(),
            size: image.layer_size,
        },
        Member::Memory {
            name: config_name.clone(),
            bytes: image.config.clone(),
        },
        manifest(config_name, Some(&tag), std::iter::once(layer_name)),
    ];
    load_checked(engine, members, &tag, &image.digest.to_string()).await?;
    Ok(PinnedImage {
        name: name.to_string(),
        digest: image.digest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Failure;
    use crate::sandbox::fake::FakeEngine;
    use crate::store::Store;

    /// A built image of a one-file root filesystem.
    fn built() -> (tempfile::TempDir, BuiltImage) {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        std::fs::create_dir_all(rootfs.join("etc")).unwrap();
        std::fs::write(rootfs.join("etc/hello"), "hello\n").unwrap();
        let image = super::super::build_in(&rootfs, dir.path()).unwrap();
        (dir, image)
    }

    #[tokio::test]
    async fn a_loaded_image_is_known_by_id_and_tag_and_becomes_a_base_once() {
        let (dir, image) = built();
        let engine = FakeEngine::new(|_| Ok(0));
        let name = RepositoryName::parse("sealroom-test/fake").unwrap();
        let pinned = load(&engine, &image, &name).await.unwrap();
        assert_eq!(pinned.digest, image.digest);
        let id = image.digest.to_string();
        assert_eq!(engine.image_id(&id).await.unwrap(), Some(id.clone()));
        assert_eq!(
            engine.image_id("sealroom-test/fake:latest").await.unwrap(),
            Some(id.clone())
        );
        crate::sandbox::require_image(&engine, &pinned)
            .await
            .unwrap();

        // Exported (`docker save`) into the store: the config and the one layer, as loaded.
        let store = Store::open(&dir.path().join("store")).unwrap();
        let base = crate::image::base::from_engine(&store, &pinned, &engine)
            .await
            .unwrap();
        assert_eq!(base.config, image.config);
        assert_eq!(base.layers.len(), 1);
        assert_eq!(base.layers[0].digest, image.layer_digest);
        // The second time the store has it: an engine without the image is not asked.
        let empty = FakeEngine::new(|_| Ok(0));
        let again = crate::image::base::from_engine(&store, &pinned, &empty)
            .await
            .unwrap();
        assert_eq!(again.layers[0].digest, image.layer_digest);
    }

    #[tokio::test]
    async fn a_base_the_engine_does_not_hold_is_named_with_a_hint() {
        let (dir, image) = built();
        let store = Store::open(&dir.path().join("store")).unwrap();
        let pinned = PinnedImage {
            name: "sealroom-test/absent".to_string(),
            digest: image.digest,
        };
        let error = crate::image::base::from_engine(&store, &pinned, &FakeEngine::new(|_| Ok(0)))
            .await
            .err()
            .expect("the image is not there");
        assert_eq!(error.exit_code(), crate::error::ExitCode::BadInput);
        assert!(
            error.to_string().starts_with(&format!(
                "base image `{pinned}` is not in the container engine"
            )),
            "{error}"
        );
    }
}
