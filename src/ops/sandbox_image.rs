//! `[sandbox] image` pinned by a registry reference, `host[:port]/repository[:tag]@sha256:<manifest
//! digest>` (as Renovate, Dependabot and `docker images --digests` write it): pulled by digest
//! into the store once (manifest or index → this platform's manifest, config, layers, each
//! verified while it streams), and from then on taken from the store, `--offline` included. The
//! spec's image is then the image id (the config's digest), which every step record and the
//! engine know it by; where it came from is kept in `spec.sandbox.origin` for the provenance.
//! When a step needs the image and the engine lacks it, [`LazyDocker`] loads it from the store's
//! blobs: a build whose every step is cached never asks the engine.
//!
//! A local name (no registry host) is pinned by image id, as `sealroom image import` prints it,
//! and is left alone here. So is a registry-like name whose digest the engine holds as an image
//! id (how specs were pinned before registry images), with a warning.

use crate::digest::{BlobDigest, ImageDigest};
use crate::error::Error;
use crate::sandbox::Engine;
use crate::sandbox::docker::LazyDocker;
use crate::spec::{ImageOrigin, Spec};
use crate::store::Store;

/// Resolves the spec's sandbox image if a registry reference pins it (see the module's text).
pub async fn resolve(
    engine: &LazyDocker,
    store: &Store,
    spec: &mut Spec,
    offline: bool,
) -> Result<(), Error> {
    let pinned = spec.sandbox.image.clone();
    let Some(registry) = pinned.registry().map(str::to_string) else {
        return Ok(());
    };
    let digest: BlobDigest = pinned.digest.cast();
    if !store.has_blob(&digest) {
        // Not pulled into this store before: an old spec may pin an image id under this name.
        let id = pinned.digest.to_string();
        if let Ok(Some(found)) = engine.image(&id).await
            && found.id == id
        {
            tracing::warn!(
                "`{pinned}` names a registry but is pinned by a local image id; a registry reference is pinned by its manifest digest (`docker images --digests`, or what `sealroom push` prints)"
            );
            return Ok(());
        }
    }
    let pulled = crate::registry::pull::pull_image(store, &pinned, offline).await?;
    let image_id: ImageDigest = BlobDigest::of(&pulled.base.config).cast();
    engine.provide_image(
        image_id,
        crate::image::docker_archive::stored_image_archive(store, &pulled.base),
    );
    let repository = crate::registry::Reference::parse(&pinned.to_string())?.repository;
    tracing::info!(
        "sandbox image {pinned}: manifest {}, image id {image_id}",
        pulled.manifest
    );
    spec.sandbox.origin = Some(ImageOrigin {
        reference: pinned.to_string(),
        registry,
        repository,
        pinned: digest,
        manifest: pulled.manifest,
    });
    spec.sandbox.image.digest = image_id;
    Ok(())
}
