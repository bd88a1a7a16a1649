//! Writing the one layer of an image: an uncompressed tar of a [`Rootfs`] whose bytes depend only
//! on the tree. Every header field is set here (GNU headers, mtime 0, uid/gid 0, no user or group
//! names, the kept permission bits); nothing is copied from the host. The tar streams to a temp
//! file and is hashed on the way, so its digest (the image's `diff_id`) costs no second read.

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom};
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
    let writer = HashingWriter::new(BufWriter::with_capacity(1 << 20, file));
    let mut builder = tar::Builder::new(writer);
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
        let mut header = fixed_header(entry.mode);
        match &entry.kind {
            EntryKind::Directory => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                builder
                    .append_data(&mut header, path, io::empty())
                    .map_err(failed)?;
            }
            EntryKind::Symlink { target } => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                let target = Path::new(std::ffi::OsStr::from_bytes(target));
                builder
                    .append_link(&mut header, path, target)
                    .map_err(failed)?;
            }
            EntryKind::File { size, source } => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(*size);
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
                let exact = ExactReader {
                    inner: contents.take(*size),
                    remaining: *size,
                };
                builder
                    .append_data(&mut header, path, exact)
                    .map_err(failed)?;
            }
        }
    }

    let writer = builder
        .into_inner()
        .map_err(|source| ImageError::WriteTemp { source })?;
    let (buffered, diff_id, size) = writer.finish();
    let file = buffered
        .into_inner()
        .map_err(|error| ImageError::WriteTemp {
            source: error.into_error(),
        })?;
    file.sync_all()
        .map_err(|source| ImageError::WriteTemp { source })?;
    Ok(Layer {
        file: temp,
        diff_id,
        size,
    })
}

/// A GNU header with every field but path, type, size and link fixed: mode from the tree,
/// everything else zero or empty.
fn fixed_header(mode: u32) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header
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
