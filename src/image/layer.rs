//! Writing image layers: [`LayerTar`], the one writer of deterministic layer tars (every header
//! field set here: GNU headers, uid/gid 0, no user or group names, the given mode and mtime;
//! nothing copied from the host), hashed as it streams so its digest (the `diff_id`) costs no
//! second read; and [`write_layer`], the one layer of an imported image: an uncompressed tar of
//! a [`Rootfs`], mtime 0, streamed to a temp file. `tree_layer` writes layers from store trees
//! with the same writer.

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use tempfile::NamedTempFile;

use super::ImageError;
use super::rootfs::{EntryKind, FileSource, Rootfs, display};
use crate::digest::{BlobDigest, HashingWriter};

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

/// A deterministic layer tar being written to `W`, hashed on the way. Paths are written as given
/// (a caller that wants a directory's path to end in `/` passes it so).
pub struct LayerTar<W: Write> {
    builder: tar::Builder<HashingWriter<W>>,
    mtime: u64,
}

impl<W: Write> LayerTar<W> {
    /// A tar whose every entry has modification time `mtime`.
    pub fn new(out: W, mtime: u64) -> Self {
        Self {
            builder: tar::Builder::new(HashingWriter::new(out)),
            mtime,
        }
    }

    pub fn directory(&mut self, path: impl AsRef<Path>, mode: u32) -> io::Result<()> {
        let mut header = self.header(tar::EntryType::Directory, mode, 0);
        self.builder.append_data(&mut header, path, io::empty())
    }

    pub fn symlink(
        &mut self,
        path: impl AsRef<Path>,
        target: impl AsRef<Path>,
        mode: u32,
    ) -> io::Result<()> {
        let mut header = self.header(tar::EntryType::Symlink, mode, 0);
        self.builder.append_link(&mut header, path, target)
    }

    /// A regular file of exactly `size` bytes read from `contents`: fewer is an error (the file
    /// changed while it was read), more are not read.
    pub fn file(
        &mut self,
        path: impl AsRef<Path>,
        mode: u32,
        size: u64,
        contents: impl Read,
    ) -> io::Result<()> {
        let mut header = self.header(tar::EntryType::Regular, mode, size);
        let exact = ExactReader {
            inner: contents.take(size),
            remaining: size,
        };
        self.builder.append_data(&mut header, path, exact)
    }

    /// Ends the archive; returns `W`, the tar's digest and its size.
    pub fn finish(self) -> io::Result<(W, BlobDigest, u64)> {
        Ok(self.builder.into_inner()?.finish())
    }

    /// A GNU header with every field but path and link fixed.
    fn header(&self, kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(self.mtime);
        header.set_size(size);
        header
    }
}

/// Gives exactly `remaining` bytes or fails: a file that shrank since it was listed would
/// otherwise leave a header that promises more bytes than follow it.
struct ExactReader<R> {
    inner: R,
    remaining: u64,
}

impl<R: Read> Read for ExactReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.remaining > 0 && !buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "{} bytes fewer than expected: the file changed while it was read",
                    self.remaining
                ),
            ));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}
