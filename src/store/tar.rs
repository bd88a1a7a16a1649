//! The one writer of deterministic tars ([`LayerTar`]): every header field is set here (GNU
//! headers, uid/gid 0, no user or group names, the given mode and mtime; nothing copied from the
//! host), and the bytes are hashed as they stream. Image layers (`image::layer`,
//! `image::tree_layer`) and the inputs a remote engine is sent (`sandbox::transfer`) are written
//! with it, so that no two tars of the same tree can differ.

use std::io::{self, Read, Write};
use std::path::Path;

use crate::digest::{BlobDigest, HashingWriter};

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
