//! Deterministic base images without a registry: a root filesystem (a directory or a tar)
//! becomes an image whose id depends only on the tree's content, loaded into the container
//! engine (through [`crate::sandbox::Engine`]).
//!
//! Determinism (docs/images.md has the full rules): one uncompressed layer whose entries are
//! sorted by path bytes, every mtime 0, uid/gid 0, no user or group names, permission bits kept
//! but set-uid/set-gid dropped, symlinks kept, hard links stored as regular files, device files
//! refused; a fixed config (no creation time, no history). The image id is the sha256 of the
//! config JSON, which names the layer by its sha256, so the same tree always gives the same
//! `name@sha256:<id>`.
//!
//! - [`rootfs`] reads a directory or tar into a sorted entry list (no contents in memory).
//! - [`layer`] writes that list as the layer tar, hashing as it streams to a temp file.
//! - [`archive`] makes the config JSON.
//! - [`engine`] loads the image as a docker-archive and checks the id.
//!
//! This module never pulls: images come from a tree on this machine or are already present.
//!
//! `[[image]]` (images made from build outputs, docs/images.md) adds:
//! - [`base`] puts a base image's config and layers into the store (from the engine, once).
//! - [`tree_layer`] writes a store tree as a deterministic, optionally gzip-compressed layer.
//! - [`oci`] makes the config and manifest and writes the OCI image layout directory.
//! - [`docker_archive`] streams docker-archives (the one format Docker loads): of an image
//!   built here, or of a layout.

pub mod archive;
pub mod base;
pub mod docker_archive;
pub mod engine;
pub mod layer;
pub mod name;
pub mod oci;
pub mod rootfs;
pub mod tree_layer;

use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

pub use engine::load;
pub use name::RepositoryName;

use crate::digest::{BlobDigest, ImageDigest};
use crate::error::{ExitCode, Failure};
use crate::sandbox::{Engine, EngineError};
use crate::spec::PinnedImage;

/// An image built on disk, not yet loaded: its config, id and layer.
pub struct BuiltImage {
    /// The config JSON; its sha256 is `digest`.
    pub config: Vec<u8>,
    /// The image id.
    pub digest: ImageDigest,
    /// The layer tar's sha256 (its `diff_id`) and size.
    pub layer_digest: BlobDigest,
    pub layer_size: u64,
    /// The layer tar, deleted when this value is dropped.
    pub layer: NamedTempFile,
    /// Device nodes under `/dev` in the root filesystem, left out of the layer.
    pub dropped_devices: usize,
}

/// Builds the image of `rootfs` (a directory, or a tar file, plain or gzip) in the system temp
/// directory. Blocking: reads the whole tree and writes the layer.
pub fn build(rootfs: &Path) -> Result<BuiltImage, ImageError> {
    build_in(rootfs, &std::env::temp_dir())
}

/// [`build`], with the layer's temp file in `temp_dir`.
pub fn build_in(rootfs: &Path, temp_dir: &Path) -> Result<BuiltImage, ImageError> {
    let architecture = archive::host_architecture()?;
    let tree = rootfs::Rootfs::read(rootfs)?;
    let layer = layer::write_layer(&tree, temp_dir)?;
    let (config, digest) = archive::config_json(architecture, layer.diff_id);
    Ok(BuiltImage {
        config,
        digest,
        layer_digest: layer.diff_id,
        layer_size: layer.size,
        layer: layer.file,
        dropped_devices: tree.dropped_devices,
    })
}

/// What `import` made.
#[derive(Debug, Clone)]
pub struct Imported {
    /// `name@<image id>`.
    pub image: PinnedImage,
    /// Device nodes under `/dev` left out of the image.
    pub dropped_devices: usize,
}

/// Builds the image of `rootfs` and loads it tagged `name:latest`.
pub async fn import(
    engine: &impl Engine,
    rootfs: &Path,
    name: &RepositoryName,
) -> Result<Imported, ImageError> {
    let rootfs = rootfs.to_path_buf();
    let built = tokio::task::spawn_blocking(move || build(&rootfs))
        .await
        .unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic()))?;
    Ok(Imported {
        image: load(engine, &built, name).await?,
        dropped_devices: built.dropped_devices,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(transparent)]
    Engine(#[from] EngineError),

    #[error(
        "the engine reports image id `{found}` for `{reference}`, expected `{expected}` (the sha256 of the config)\n  hint: engines that store images in containerd name them by manifest digest; use the classic image store"
    )]
    IdMismatch {
        reference: String,
        expected: String,
        found: String,
    },

    #[error("invalid image name `{name}`: {reason}")]
    InvalidName { name: String, reason: String },

    #[error("root filesystem `{path}` does not exist")]
    RootfsNotFound { path: PathBuf },

    #[error("`{path}` is neither a directory nor a tar file (plain or gzip)")]
    NotDirectoryOrTar { path: PathBuf },

    #[error("cannot read `{path}`: {source}")]
    ReadRootfs {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("`{path}` is not a readable tar: {source}")]
    CorruptTar {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "`{entry}` in `{rootfs}` is a {what}; an image holds only regular files, directories and symlinks\n  hint: remove it (device nodes are left out only under /dev, where the engine provides its own)"
    )]
    SpecialFile {
        rootfs: PathBuf,
        entry: String,
        what: &'static str,
    },

    #[error(
        "tar entry `{entry}` in `{path}` is a {kind}; expected a file, directory, symlink or hard link"
    )]
    UnsupportedTarEntry {
        path: PathBuf,
        entry: String,
        kind: String,
    },

    #[error(
        "hard link `{entry}` in `{path}` points to `{target}`, which is not a regular file in the tar"
    )]
    DanglingHardLink {
        path: PathBuf,
        entry: String,
        target: String,
    },

    #[error("`{entry}` in `{rootfs}` has a `..` component; every path must stay inside the root")]
    UnsafePath { rootfs: PathBuf, entry: String },

    #[error(
        "`{entry}` in `{rootfs}` is named like a layer whiteout (`.wh.*`), which the engine would read as a deletion"
    )]
    WhiteoutName { rootfs: PathBuf, entry: String },

    #[error("cannot add `{entry}` to the layer: {source}")]
    WriteLayer {
        entry: String,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "cannot write the image's temp files: {source}\n  hint: the layer needs about as much free space as the tree, in TMPDIR"
    )]
    WriteTemp {
        #[source]
        source: std::io::Error,
    },

    #[error("cannot pull base image `{reference}`: {detail}")]
    Registry { reference: String, detail: String },

    #[error("cannot read the store: {detail}")]
    Store { detail: String },

    #[error(
        "store blob `{path}` has sha256 {found}, not the {expected} it is named by\n  hint: run `sealroom store verify` and rebuild"
    )]
    CorruptStoreBlob {
        path: PathBuf,
        expected: crate::digest::BlobDigest,
        found: crate::digest::BlobDigest,
    },

    #[error(
        "an image layer takes `{path}` from {origin}, which has nothing there\n  hint: fix `artifacts` in the layer, or make the step write /out/{path}"
    )]
    MissingLayerPath { origin: String, path: String },

    #[error("the config of base image `{base}` cannot be read: {detail}")]
    BaseConfig { base: String, detail: String },

    #[error("cannot write the image layout at `{path}`: {source}")]
    WriteLayout {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "`{path}` is not an OCI image layout: {detail}\n  hint: give the directory `sealroom build` wrote for an `[[image]]` (`--out/<image name>`)"
    )]
    BadLayout { path: PathBuf, detail: String },

    #[error(
        "unsupported host architecture `{arch}`; expected x86_64, aarch64, arm, x86, powerpc64le, s390x or riscv64"
    )]
    UnsupportedArchitecture { arch: &'static str },
}

impl Failure for ImageError {
    fn exit_code(&self) -> ExitCode {
        match self {
            ImageError::Engine(error) => error.exit_code(),
            // Our id is always the engine's: a mismatch is a bug (or an engine that works
            // differently), not the user's input.
            ImageError::IdMismatch { .. } => ExitCode::Internal,
            ImageError::InvalidName { .. }
            | ImageError::RootfsNotFound { .. }
            | ImageError::NotDirectoryOrTar { .. }
            | ImageError::ReadRootfs { .. }
            | ImageError::CorruptTar { .. }
            | ImageError::SpecialFile { .. }
            | ImageError::UnsupportedTarEntry { .. }
            | ImageError::DanglingHardLink { .. }
            | ImageError::UnsafePath { .. }
            | ImageError::WhiteoutName { .. }
            | ImageError::WriteLayer { .. }
            | ImageError::WriteTemp { .. }
            | ImageError::UnsupportedArchitecture { .. }
            | ImageError::Store { .. }
            | ImageError::CorruptStoreBlob { .. }
            | ImageError::BaseConfig { .. }
            | ImageError::WriteLayout { .. }
            | ImageError::BadLayout { .. }
            | ImageError::Registry { .. } => ExitCode::BadInput,
            ImageError::MissingLayerPath { .. } => ExitCode::StepFailed,
        }
    }
}
