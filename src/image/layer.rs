//! Writing image layers with [`LayerTar`] (`store::tar`, the one writer of deterministic tars:
//! every header field set there, hashed as it streams so a layer's digest, the `diff_id`, costs
//! no second read); and [`write_layer`], the one layer of an imported image: an uncompressed tar of
//! a [`Rootfs`], mtime 0, streamed to a temp file. `tree_layer` writes layers from store trees
//! with the same writer.

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use tempfile::NamedTempFile;

use super::ImageError;
use super::rootfs::{EntryKind, FileSource, Rootfs, display};
use crate::digest::BlobDigest;
pub use crate::store::tar::LayerTar;

/// A written layer tar: its temp file, digest and size.
pub struct Layer {
    pub file: NamedTempFile,
    pub diff_id: BlobDigest,
    pub size: u64,
}

/// Writes the layer tar of `rootfs` to a temp file in `temp_dir`.
pub fn write_layer(rootfs: &Rootfs, temp_dir: &Path) -> Result<Layer, ImageError> {
    let temp = tempfile::Builder::new()
        .prefix("sealroom-layer-")
        .suffix(".tar")
        .tempfile_in(temp_dir)
        .map_err(|source| ImageError::WriteTemp { source })?;
    let file = temp
        .as_file()
        .try_clone()
        .map_err(|source| ImageError::WriteTemp { source })?;
    let mut tar = LayerTar::new(BufWriter::with_capacity(1 << 20, file), 0);
    let mut archive = match &rootfs.archive {
        Some(path) => Some(File::open(path).map_err(|source| ImageError::ReadRootfs {
            path: path.clone(),
            source,
        })?),
        None => None,
    };

    for entry in &rootfs.entries {
        let path = Path::new(std::ffi::OsStr::from_bytes(&entry.path));
        let failed = |source: io::Error| ImageError::WriteLayer {
            entry: display(&entry.path),
            source,
        };
        match &entry.kind {
            EntryKind::Directory => tar.directory(path, entry.mode).map_err(failed)?,
            EntryKind::Symlink { target } => {
                let target = Path::new(std::ffi::OsStr::from_bytes(target));
                tar.symlink(path, target, entry.mode).map_err(failed)?;
            }
            EntryKind::File { size, source } => {
                let contents: Box<dyn Read + '_> = match source {
                    FileSource::Host(host_path) => {
                        let file =
                            File::open(host_path).map_err(|source| ImageError::ReadRootfs {
                                path: host_path.clone(),
                                source,
                            })?;
                        Box::new(file)
                    }
                    FileSource::Archive { offset } => {
                        let archive = archive
                            .as_mut()
                            .expect("archive offsets come with an archive");
                        archive.seek(SeekFrom::Start(*offset)).map_err(failed)?;
                        Box::new(archive)
                    }
                };
                tar.file(path, entry.mode, *size, contents)
                    .map_err(failed)?;
            }
        }
    }

    let (buffered, diff_id, size) = tar
        .finish()
        .map_err(|source| ImageError::WriteTemp { source })?;
    // Flushed, not synced: the temp file is only streamed to the engine.
    buffered
        .into_inner()
        .map_err(|error| ImageError::WriteTemp {
            source: error.into_error(),
        })?;
    Ok(Layer {
        file: temp,
        diff_id,
        size,
    })
}
