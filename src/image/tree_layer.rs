//! A new image layer from a tree in the store: the tree (or some of its paths) placed under a
//! path of the image, written as a tar whose bytes depend only on the tree, the path and
//! `SOURCE_DATE_EPOCH`, then compressed the same way every time.
//!
//! The rules (docs/images.md, "Layers from step outputs"): entries sorted by path bytes, the
//! directories leading to the path included, mtime = `SOURCE_DATE_EPOCH`, uid/gid 0, no user or
//! group names, files 0644 or 0755 (the store keeps only the executable bit, so set-uid bits
//! cannot survive), directories 0755, symlinks kept. gzip (when chosen) is level 6 with no file
//! name, no time and the "unknown" OS byte in its header. Both the tar's digest (the `diff_id`)
//! and the compressed blob's digest are computed while the bytes stream to a temp file.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use tempfile::NamedTempFile;

use super::ImageError;
use super::layer::LayerTar;
use crate::digest::{BlobDigest, HashingReader, HashingWriter};
use crate::spec::RelativePath;
use crate::spec::image::Compression;
use crate::store::{EntryKind, Store};

/// A written layer: the blob in a temp file, its digest and size, and the tar's digest.
pub struct TreeLayer {
    pub file: NamedTempFile,
    /// The sha256 of the blob as stored (compressed or not).
    pub digest: BlobDigest,
    pub size: u64,
    /// The sha256 of the uncompressed tar.
    pub diff_id: BlobDigest,
}

/// What the tar holds at one path.
enum Item {
    Directory,
    File {
        digest: BlobDigest,
        size: u64,
        executable: bool,
    },
    Symlink {
        target: String,
    },
}

/// What a layer is made of.
pub struct LayerInput<'a> {
    pub tree: crate::digest::TreeDigest,
    /// Where the tree's root goes, relative to `/` (`.` for `/`).
    pub place: &'a RelativePath,
    /// Only these paths of the tree; all of it when `None`.
    pub artifacts: Option<&'a [RelativePath]>,
    /// What the layer is taken from, for error messages (e.g. "step `app`").
    pub origin: &'a str,
    pub mtime: u64,
    pub compression: Compression,
}

/// Writes the layer of `input` to a temp file in `temp_dir`.
pub fn write_tree_layer(
    store: &Store,
    input: &LayerInput<'_>,
    temp_dir: &Path,
) -> Result<TreeLayer, ImageError> {
    let items = collect(store, input)?;
    let temp = tempfile::Builder::new()
        .prefix("layer-")
        .tempfile_in(temp_dir)
        .map_err(|source| ImageError::WriteTemp { source })?;
    let file = temp
        .as_file()
        .try_clone()
        .map_err(|source| ImageError::WriteTemp { source })?;
    let blob_writer = HashingWriter::new(BufWriter::with_capacity(1 << 20, file));
    let written = match input.compression {
        Compression::None => {
            let (blob_writer, diff_id, _) = write_tar(store, &items, input, blob_writer)?;
            let (buffered, digest, size) = blob_writer.finish();
            flush(buffered)?;
            (digest, size, diff_id)
        }
        Compression::Gzip => {
            let gzip = flate2::GzBuilder::new()
                .mtime(0)
                .operating_system(255)
                .write(blob_writer, flate2::Compression::new(6));
            let (gzip, diff_id, _) = write_tar(store, &items, input, gzip)?;
            let blob_writer = gzip
                .finish()
                .map_err(|source| ImageError::WriteTemp { source })?;
            let (buffered, digest, size) = blob_writer.finish();
            flush(buffered)?;
            (digest, size, diff_id)
        }
    };
    // Flushed, not synced: the store copies the blob (and syncs its copy) if it is new.
    let (digest, size, diff_id) = written;
    Ok(TreeLayer {
        file: temp,
        digest,
        size,
        diff_id,
    })
}

fn flush(buffered: BufWriter<File>) -> Result<(), ImageError> {
    buffered
        .into_inner()
        .map(|_| ())
        .map_err(|error| ImageError::WriteTemp {
            source: error.into_error(),
        })
}

/// The tar of `items` into `out`, hashed on the way; returns `out`, the tar's digest and size.
fn write_tar<W: Write>(
    store: &Store,
    items: &BTreeMap<String, Item>,
    input: &LayerInput<'_>,
    out: W,
) -> Result<(W, BlobDigest, u64), ImageError> {
    let mut tar = LayerTar::new(out, input.mtime);
    for (path, item) in items {
        let failed = |source: io::Error| ImageError::WriteLayer {
            entry: path.clone(),
            source,
        };
        match item {
            Item::Directory => tar.directory(format!("{path}/"), 0o755).map_err(failed)?,
            Item::Symlink { target } => tar.symlink(path, target, 0o777).map_err(failed)?,
            Item::File {
                digest,
                size,
                executable,
            } => {
                let blob_path = store.blob_path(digest);
                let blob = File::open(&blob_path).map_err(|source| ImageError::ReadRootfs {
                    path: blob_path.clone(),
                    source,
                })?;
                let mut reader = HashingReader::new(blob);
                let mode = if *executable { 0o755 } else { 0o644 };
                tar.file(path, mode, *size, &mut reader).map_err(failed)?;
                let (_, found, _): (_, BlobDigest, u64) = reader.finish();
                if found != *digest {
                    return Err(ImageError::CorruptStoreBlob {
                        path: blob_path,
                        expected: *digest,
                        found,
                    });
                }
            }
        }
    }
    tar.finish()
        .map_err(|source| ImageError::WriteTemp { source })
}

/// Every path the layer holds, with what is there, sorted by path bytes.
fn collect(store: &Store, input: &LayerInput<'_>) -> Result<BTreeMap<String, Item>, ImageError> {
    let mut items = BTreeMap::new();
    let place: Vec<&str> = input.place.segments().collect();
    add_parents(&mut items, &place, place.len());
    let prefix = place.join("/");
    let join = |relative: &str| -> String {
        match (prefix.is_empty(), relative.is_empty()) {
            (true, _) => relative.to_string(),
            (false, true) => prefix.clone(),
            (false, false) => format!("{prefix}/{relative}"),
        }
    };
    let lookup_failed = |source: crate::store::StoreError| ImageError::Store {
        detail: source.to_string(),
    };
    match input.artifacts {
        None => add_tree(store, &mut items, &input.tree, "", &join)?,
        Some(artifacts) => {
            for artifact in artifacts {
                let Some(entry) = store
                    .lookup(&input.tree, artifact.as_str())
                    .map_err(lookup_failed)?
                else {
                    return Err(ImageError::MissingLayerPath {
                        origin: input.origin.to_string(),
                        path: artifact.to_string(),
                    });
                };
                let full: Vec<String> = join(artifact.as_str())
                    .split('/')
                    .map(str::to_string)
                    .collect();
                let segments: Vec<&str> = full.iter().map(String::as_str).collect();
                add_parents(&mut items, &segments, segments.len() - 1);
                add_entry(store, &mut items, &entry.kind, artifact.as_str(), &join)?;
            }
        }
    }
    Ok(items)
}

/// Directories for the first `count` segments of `segments` (each prefix).
fn add_parents(items: &mut BTreeMap<String, Item>, segments: &[&str], count: usize) {
    for end in 1..=count {
        items
            .entry(segments[..end].join("/"))
            .or_insert(Item::Directory);
    }
}

fn add_entry(
    store: &Store,
    items: &mut BTreeMap<String, Item>,
    kind: &EntryKind,
    relative: &str,
    join: &dyn Fn(&str) -> String,
) -> Result<(), ImageError> {
    match kind {
        EntryKind::File {
            digest,
            size,
            executable,
        } => {
            items.insert(
                join(relative),
                Item::File {
                    digest: *digest,
                    size: *size,
                    executable: *executable,
                },
            );
        }
        EntryKind::Symlink { target } => {
            items.insert(
                join(relative),
                Item::Symlink {
                    target: target.clone(),
                },
            );
        }
        EntryKind::Directory { digest } => {
            add_tree(store, items, digest, relative, join)?;
        }
    }
    Ok(())
}

/// The directory `tree` at `relative` (`""` for the root, which gets no entry of its own here)
/// and everything below it.
fn add_tree(
    store: &Store,
    items: &mut BTreeMap<String, Item>,
    tree: &crate::digest::TreeDigest,
    relative: &str,
    join: &dyn Fn(&str) -> String,
) -> Result<(), ImageError> {
    if !relative.is_empty() {
        items.insert(join(relative), Item::Directory);
    }
    let object = store.read_tree(tree).map_err(|source| ImageError::Store {
        detail: source.to_string(),
    })?;
    for entry in &object.entries {
        let child = if relative.is_empty() {
            entry.name.clone()
        } else {
            format!("{relative}/{}", entry.name)
        };
        add_entry(store, items, &entry.kind, &child, join)?;
    }
    Ok(())
}
