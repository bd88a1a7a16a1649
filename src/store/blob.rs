//! Blobs: file contents named by their sha256. Added by streaming through a hasher into a temp
//! file in `tmp/` and renaming it into place; copied out the same way, re-hashed on the way so a
//! damaged blob is never passed on. Nothing here reads a whole file into memory.
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::digest::{BlobDigest, HashingWriter, hash_file};

use super::{Store, StoreError};

const BUFFER_SIZE: usize = 64 * 1024;

impl Store {
    /// Stores the contents of the regular file at `path`; returns its digest and size.
    ///
    /// The file is hashed first and, if the store already holds that blob, nothing is written:
    /// re-adding an unchanged source tree costs one read per file. Otherwise it is copied into
    /// the store and hashed again on the way; the blob is named by what was actually copied,
    /// so a file that changes while we read it still gives a blob that matches its name.
    pub fn add_blob_from_file(&self, path: &Path) -> Result<(BlobDigest, u64), StoreError> {
        let (digest, size) = hash_file(path).map_err(|e| StoreError::io("reading", path, e))?;
        if self.has_blob(&digest) {
            return Ok((digest, size));
        }
        let file = File::open(path).map_err(|e| StoreError::io("opening", path, e))?;
        self.add_blob_from_reader(file, &format!("`{}`", path.display()), None)
    }

    /// Stores everything `reader` yields; returns its digest and size. `origin` says where the
    /// bytes come from in error messages (e.g. a URL). With `expected`, the blob is stored only
    /// if it has that digest; otherwise nothing is stored and the error says what was found.
    pub fn add_blob_from_reader(
        &self,
        mut reader: impl Read,
        origin: &str,
        expected: Option<&BlobDigest>,
    ) -> Result<(BlobDigest, u64), StoreError> {
        let mut temp = self.temp_file("blob-")?;
        let temp_path = temp.path().to_path_buf();
        let mut writer = HashingWriter::new(temp.as_file_mut());
        let mut buffer = vec![0u8; BUFFER_SIZE];
        loop {
            let n = match reader.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(StoreError::Read {
                        origin: origin.to_string(),
                        source,
                    });
                }
            };
            writer
                .write_all(&buffer[..n])
                .map_err(|e| StoreError::io("writing", &temp_path, e))?;
        }
        let (_, digest, size) = writer.finish();
        if let Some(expected) = expected
            && *expected != digest
        {
            return Err(StoreError::DigestMismatch {
                origin: origin.to_string(),
                expected: *expected,
                found: digest,
                size,
            });
        }
        let dest = self.blob_path(&digest);
        if !dest.is_file() {
            self.commit(temp, &dest)?;
        }
        Ok((digest, size))
    }

    /// Copies the blob `digest` to `dest` atomically (a temp file next to it, then a rename that
    /// replaces whatever was there), mode 0755 if `executable` else 0644.
    pub fn export_file(
        &self,
        digest: &BlobDigest,
        dest: &Path,
        executable: bool,
    ) -> Result<(), StoreError> {
        let parent = match dest.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        let mut temp = tempfile::Builder::new()
            .prefix(".sealroom-export-")
            .tempfile_in(parent)
            .map_err(|e| StoreError::io("creating a temporary file in", parent, e))?;
        self.copy_blob(digest, temp.as_file_mut())?;
        let file = temp.as_file();
        file.set_permissions(fs::Permissions::from_mode(if executable {
            0o755
        } else {
            0o644
        }))
        .map_err(|e| StoreError::io("setting permissions of", temp.path(), e))?;
        file.sync_all()
            .map_err(|e| StoreError::io("syncing", temp.path(), e))?;
        temp.persist(dest)
            .map_err(|e| StoreError::io("renaming into place", dest, e.error))?;
        Ok(())
    }

    /// Streams the blob `digest` into `out`, re-hashing it; a blob whose content does not match
    /// its name is an error (and `out` then holds garbage the caller must drop).
    pub(super) fn copy_blob(&self, digest: &BlobDigest, out: &mut File) -> Result<u64, StoreError> {
        let path = self.blob_path(digest);
        let mut blob = match File::open(&path) {
            Ok(blob) => blob,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::MissingBlob {
                    digest: *digest,
                    path,
                });
            }
            Err(e) => return Err(StoreError::io("opening", &path, e)),
        };
        let mut writer = HashingWriter::new(out);
        io::copy(&mut blob, &mut writer).map_err(|e| StoreError::io("copying", &path, e))?;
        let (_, found, size) = writer.finish();
        if found != *digest {
            return Err(StoreError::CorruptBlob {
                path,
                expected: *digest,
                found,
            });
        }
        Ok(size)
    }
}
