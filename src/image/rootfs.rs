//! Reading a root filesystem, a directory or a tar (plain or gzip), into one sorted list of
//! entries that says only what the image keeps: path, kind, permission bits, link target, and
//! where a file's bytes are. Everything else the host or the tar carries (owners, times, names,
//! extended attributes) is dropped here, so both kinds of input give the same list for the same
//! tree.
//!
//! This module reads; it never writes outside a temp file for a decompressed tar, and it
//! never holds file contents in memory.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Read, Seek};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use super::ImageError;

/// The permission bits an image keeps: rwx for all three classes and the sticky bit (`/tmp`).
/// Set-uid and set-gid are dropped: a build image has no reason to raise privileges.
pub const KEPT_MODE_BITS: u32 = 0o1777;

/// One path of the tree, relative to its root, without a leading `/` or `./`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: Vec<u8>,
    pub mode: u32,
    pub kind: EntryKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    Directory,
    /// A regular file. Hard links are stored as regular files, each with its own copy.
    File {
        size: u64,
        source: FileSource,
    },
    Symlink {
        target: Vec<u8>,
    },
}

/// Where a regular file's bytes are read from when the layer is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileSource {
    Host(PathBuf),
    /// At this byte offset of the (decompressed) tar.
    Archive {
        offset: u64,
    },
}

/// A root filesystem, read and sorted by path bytes.
pub struct Rootfs {
    pub entries: Vec<Entry>,
    /// How many device nodes under `/dev` were left out (debootstrap makes them; the engine
    /// gives every container its own `/dev`).
    pub dropped_devices: usize,
    /// The tar that `FileSource::Archive` offsets point into.
    pub archive: Option<PathBuf>,
    /// Keeps a decompressed tar alive until the layer is written.
    _decompressed: Option<NamedTempFile>,
}

impl Rootfs {
    /// Reads `path`: a directory, a tar file or a gzip-compressed tar file.
    pub fn read(path: &Path) -> Result<Self, ImageError> {
        let metadata = fs::metadata(path).map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => ImageError::RootfsNotFound { path: path.into() },
            _ => ImageError::ReadRootfs {
                path: path.into(),
                source,
            },
        })?;
        if metadata.is_dir() {
            return Self::read_directory(path);
        }
        if metadata.is_file() {
            match sniff(path)? {
                Format::Tar => return Self::read_tar(path, path.to_path_buf(), None),
                Format::Gzip => {
                    let decompressed = decompress(path)?;
                    let tar = decompressed.path().to_path_buf();
                    return Self::read_tar(path, tar, Some(decompressed));
                }
                Format::Other => {}
            }
        }
        Err(ImageError::NotDirectoryOrTar { path: path.into() })
    }

    fn read_directory(root: &Path) -> Result<Self, ImageError> {
        let mut entries = Vec::new();
        let mut dropped_devices = 0;
        for item in walkdir::WalkDir::new(root).min_depth(1).follow_links(false) {
            let item = item.map_err(|error| {
                let path = error.path().unwrap_or(root).to_path_buf();
                ImageError::ReadRootfs {
                    path,
                    source: error.into(),
                }
            })?;
            let relative = item
                .path()
                .strip_prefix(root)
                .expect("walkdir stays under its root");
            let path = normalize(root, relative.as_os_str().as_bytes())?
                .expect("a non-empty relative path");
            let metadata = item.metadata().map_err(|error| ImageError::ReadRootfs {
                path: item.path().into(),
                source: error.into(),
            })?;
            let file_type = metadata.file_type();
            let mode = metadata.permissions().mode() & KEPT_MODE_BITS;
            let kind = if file_type.is_dir() {
                EntryKind::Directory
            } else if file_type.is_file() {
                EntryKind::File {
                    size: metadata.len(),
                    source: FileSource::Host(item.path().into()),
                }
            } else if file_type.is_symlink() {
                let target =
                    fs::read_link(item.path()).map_err(|source| ImageError::ReadRootfs {
                        path: item.path().into(),
                        source,
                    })?;
                EntryKind::Symlink {
                    target: target.as_os_str().as_bytes().to_vec(),
                }
            } else if (file_type.is_block_device() || file_type.is_char_device())
                && is_under_dev(&path)
            {
                dropped_devices += 1;
                continue;
            } else {
                let what = if file_type.is_block_device() {
                    "block device"
                } else if file_type.is_char_device() {
                    "character device"
                } else if file_type.is_fifo() {
                    "named pipe"
                } else if file_type.is_socket() {
                    "socket"
                } else {
                    "special file"
                };
                return Err(ImageError::SpecialFile {
                    rootfs: root.into(),
                    entry: display(&path),
                    what,
                });
            };
            entries.push(Entry { path, mode, kind });
        }
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(Self {
            entries,
            dropped_devices,
            archive: None,
            _decompressed: None,
        })
    }

    /// Indexes a plain tar at `tar` (`shown` is the path the user gave, for messages). A later
    /// entry for the same path replaces an earlier one, as extracting the tar would.
    fn read_tar(
        shown: &Path,
        tar: PathBuf,
        decompressed: Option<NamedTempFile>,
    ) -> Result<Self, ImageError> {
        let corrupt = |source: io::Error| ImageError::CorruptTar {
            path: shown.into(),
            source,
        };
        let file = File::open(&tar).map_err(|source| ImageError::ReadRootfs {
            path: shown.into(),
            source,
        })?;
        let mut archive = tar::Archive::new(io::BufReader::new(file));
        let mut by_path: BTreeMap<Vec<u8>, Entry> = BTreeMap::new();
        let mut dropped_devices = BTreeSet::new();
        // Hard links, resolved once every entry is known: (path, mode, target).
        let mut hard_links = Vec::new();
        for item in archive.entries().map_err(corrupt)? {
            let item = item.map_err(corrupt)?;
            let header = item.header();
            let entry_type = header.entry_type();
            if matches!(entry_type, tar::EntryType::XGlobalHeader) {
                continue;
            }
            let Some(path) = normalize(shown, &item.path_bytes())? else {
                continue; // the root directory itself: `./` or `/`
            };
            let mode = header.mode().map_err(corrupt)? & KEPT_MODE_BITS;
            let kind = match entry_type {
                tar::EntryType::Directory => EntryKind::Directory,
                tar::EntryType::Regular | tar::EntryType::Continuous => EntryKind::File {
                    size: item.size(),
                    source: FileSource::Archive {
                        offset: item.raw_file_position(),
                    },
                },
                tar::EntryType::Symlink => EntryKind::Symlink {
                    target: item.link_name_bytes().unwrap_or_default().into_owned(),
                },
                tar::EntryType::Link => {
                    let target = item.link_name_bytes().unwrap_or_default();
                    let target = normalize(shown, &target)?.unwrap_or_default();
                    hard_links.push((path, mode, target));
                    continue;
                }
                tar::EntryType::Block | tar::EntryType::Char if is_under_dev(&path) => {
                    // Replaces an earlier entry for the path, as extracting would.
                    by_path.remove(&path);
                    dropped_devices.insert(path);
                    continue;
                }
                tar::EntryType::Block | tar::EntryType::Char | tar::EntryType::Fifo => {
                    let what = match entry_type {
                        tar::EntryType::Block => "block device",
                        tar::EntryType::Char => "character device",
                        _ => "named pipe",
                    };
                    return Err(ImageError::SpecialFile {
                        rootfs: shown.into(),
                        entry: display(&path),
                        what,
                    });
                }
                other => {
                    return Err(ImageError::UnsupportedTarEntry {
                        path: shown.into(),
                        entry: display(&path),
                        kind: format!("{other:?}"),
                    });
                }
            };
            dropped_devices.remove(&path);
            by_path.insert(path.clone(), Entry { path, mode, kind });
        }
        for (path, mode, target) in hard_links {
            let kind = match by_path.get(&target) {
                Some(Entry {
                    kind: kind @ EntryKind::File { .. },
                    ..
                }) => kind.clone(),
                _ => {
                    return Err(ImageError::DanglingHardLink {
                        path: shown.into(),
                        entry: display(&path),
                        target: display(&target),
                    });
                }
            };
            by_path.insert(path.clone(), Entry { path, mode, kind });
        }
        Ok(Self {
            entries: by_path.into_values().collect(),
            dropped_devices: dropped_devices.len(),
            archive: Some(tar),
            _decompressed: decompressed,
        })
    }
}

/// Whether a normalized path is inside the image's `/dev`.
fn is_under_dev(path: &[u8]) -> bool {
    path.starts_with(b"dev/")
}

enum Format {
    Tar,
    Gzip,
    Other,
}

/// Tells a tar (`ustar` magic at byte 257) from a gzip stream (`1f 8b`) from anything else.
fn sniff(path: &Path) -> Result<Format, ImageError> {
    let mut head = Vec::with_capacity(512);
    File::open(path)
        .and_then(|file| file.take(512).read_to_end(&mut head))
        .map_err(|source| ImageError::ReadRootfs {
            path: path.into(),
            source,
        })?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Format::Gzip
    } else if head.len() == 512 && &head[257..262] == b"ustar" {
        Format::Tar
    } else {
        Format::Other
    })
}

/// Streams a gzip-compressed tar into a temp file, so that entries can be read by offset.
fn decompress(path: &Path) -> Result<NamedTempFile, ImageError> {
    let read_error = |source| ImageError::ReadRootfs {
        path: path.into(),
        source,
    };
    let file = File::open(path).map_err(read_error)?;
    let mut temp = NamedTempFile::with_prefix("sealroom-rootfs-")
        .map_err(|source| ImageError::WriteTemp { source })?;
    let mut decoder = flate2::read::MultiGzDecoder::new(io::BufReader::new(file));
    io::copy(&mut decoder, &mut io::BufWriter::new(temp.as_file_mut())).map_err(|source| {
        ImageError::CorruptTar {
            path: path.into(),
            source,
        }
    })?;
    temp.as_file_mut()
        .rewind()
        .map_err(|source| ImageError::WriteTemp { source })?;
    if !matches!(sniff(temp.path())?, Format::Tar) {
        return Err(ImageError::NotDirectoryOrTar { path: path.into() });
    }
    Ok(temp)
}

/// `./a//b/` → `a/b`; `None` for the root itself. Rejects `..` and whiteout names (`.wh.*`),
/// which the engine would read as deletions.
fn normalize(rootfs: &Path, raw: &[u8]) -> Result<Option<Vec<u8>>, ImageError> {
    let mut parts: Vec<&[u8]> = Vec::new();
    for part in raw.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                return Err(ImageError::UnsafePath {
                    rootfs: rootfs.into(),
                    entry: String::from_utf8_lossy(raw).into_owned(),
                });
            }
            _ if part.starts_with(b".wh.") => {
                return Err(ImageError::WhiteoutName {
                    rootfs: rootfs.into(),
                    entry: String::from_utf8_lossy(raw).into_owned(),
                });
            }
            _ => parts.push(part),
        }
    }
    Ok((!parts.is_empty()).then(|| parts.join(&b'/')))
}

/// A tree path for messages.
pub fn display(path: &[u8]) -> String {
    Path::new(OsStr::from_bytes(path)).display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_tar_paths() {
        let root = Path::new("/r");
        assert_eq!(normalize(root, b"./a//b/").unwrap(), Some(b"a/b".to_vec()));
        assert_eq!(
            normalize(root, b"/etc/passwd").unwrap(),
            Some(b"etc/passwd".to_vec())
        );
        assert_eq!(normalize(root, b"./").unwrap(), None);
        assert!(normalize(root, b"a/../../b").is_err());
        assert!(normalize(root, b"a/.wh.b").is_err());
    }
}
