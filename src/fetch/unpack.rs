//! Safe extraction of tar, tar.gz, tar.xz, tar.bz2 and zip archives.
//!
//! An archive is untrusted input even when its digest is pinned: the pin says the bytes are the
//! ones reviewed, not that they are harmless. Every entry is checked before anything is written:
//!
//! - its path must be relative and free of `..` (after dropping `strip_components` leading
//!   components; an entry left with nothing is skipped);
//! - every directory on its way must be a real directory created by this unpack, never a
//!   symlink (so a link unpacked earlier can never be written through);
//! - a symlink must be relative, may only start with `..` (none after a name), and must resolve
//!   inside the tree; a hard link must name a regular file already unpacked;
//! - device files, fifos and sockets are refused;
//! - setuid, setgid and sticky bits are dropped; the other permission bits are kept, except that
//!   the owner can always read files and enter and write directories.
//!
//! Extraction is bounded ([`UnpackOptions`]): the bytes of all files together (each file by its
//! full, apparent size: a sparse entry counts as the zeros it stands for, a hard link as the
//! file it names), checked against the entry's declared size before it is written and counted
//! again as it is written; at most [`MAX_ENTRIES`] entries; paths at most [`MAX_PATH_DEPTH`]
//! components and [`MAX_PATH_BYTES`] bytes.
//!
//! With an expected digest, the archive is hashed as it is read (for zip, whose reader seeks,
//! through the same open file before it is read) and a mismatch keeps nothing: an archive that
//! changed in the store never becomes a tree.
//!
//! Extraction happens in a temp directory next to `dest`, renamed to `dest` only when the whole
//! archive is unpacked; on any error the temp directory is removed and `dest` does not exist.
//! This module writes nowhere else. It does not hash the tree: the store does.

use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use super::FetchError;
use crate::digest::{Blob, BlobDigest, HashingReader};

/// The most entries (files, directories, links) one archive may hold. The Linux kernel's source
/// has under 100,000; an archive with more is refused at the entry past this.
pub const MAX_ENTRIES: u64 = 1_000_000;
/// The most components an entry's path may have.
pub const MAX_PATH_DEPTH: usize = 256;
/// The longest an entry's path (or link target) may be, in bytes: Linux's `PATH_MAX`.
pub const MAX_PATH_BYTES: usize = 4096;

/// How an unpack is done and bounded.
#[derive(Clone, Debug)]
pub struct UnpackOptions {
    /// Leading path components dropped from every entry (and hard link target).
    pub strip_components: usize,
    /// The most bytes the unpacked files may hold together, counted by apparent size.
    pub max_bytes: u64,
    /// The most entries the archive may hold.
    pub max_entries: u64,
    /// The archive's digest: it is hashed while it is read, and a different digest keeps
    /// nothing ([`FetchError::ArchiveDigestMismatch`]).
    pub expected: Option<BlobDigest>,
}

impl UnpackOptions {
    /// No byte limit, [`MAX_ENTRIES`], no digest check.
    pub fn new(strip_components: usize) -> Self {
        Self {
            strip_components,
            max_bytes: u64::MAX,
            max_entries: MAX_ENTRIES,
            expected: None,
        }
    }
}

/// The archive formats `unpack = true` understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ArchiveFormat {
    Tar,
    TarGz,
    TarXz,
    TarBz2,
    Zip,
}

impl ArchiveFormat {
    /// The conventional suffix, also used in messages: `tar`, `tar.gz`, `tar.xz`, `tar.bz2`, `zip`.
    pub fn as_str(self) -> &'static str {
        match self {
            ArchiveFormat::Tar => "tar",
            ArchiveFormat::TarGz => "tar.gz",
            ArchiveFormat::TarXz => "tar.xz",
            ArchiveFormat::TarBz2 => "tar.bz2",
            ArchiveFormat::Zip => "zip",
        }
    }

    /// The format by its magic bytes first (give at least the first 262 bytes to recognize a
    /// plain tar), by the file name in `url_or_name` second (a query or fragment is ignored).
    pub fn detect(url_or_name: &str, first_bytes: &[u8]) -> Option<Self> {
        Self::by_magic(first_bytes).or_else(|| Self::by_name(url_or_name))
    }

    /// [`ArchiveFormat::detect`] on the first bytes of a file; `name` is its URL or file name.
    pub fn detect_file(path: &Path, name: &str) -> Result<Self, FetchError> {
        let mut head = Vec::with_capacity(512);
        fs::File::open(path)
            .and_then(|file| file.take(512).read_to_end(&mut head))
            .map_err(|err| FetchError::io("read", path, err))?;
        Self::detect(name, &head).ok_or_else(|| FetchError::UnknownArchiveFormat {
            name: name.to_string(),
        })
    }

    fn by_magic(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(&[0x1f, 0x8b]) {
            Some(ArchiveFormat::TarGz)
        } else if bytes.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
            Some(ArchiveFormat::TarXz)
        } else if bytes.starts_with(b"BZh") {
            Some(ArchiveFormat::TarBz2)
        } else if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
            Some(ArchiveFormat::Zip)
        } else if bytes.get(257..262) == Some(b"ustar") {
            Some(ArchiveFormat::Tar)
        } else {
            None
        }
    }

    fn by_name(url_or_name: &str) -> Option<Self> {
        let without_fragment = url_or_name.split('#').next().unwrap_or_default();
        let without_query = without_fragment.split('?').next().unwrap_or_default();
        let name = without_query
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let suffixes: [(&[&str], ArchiveFormat); 5] = [
            (&[".tar.gz", ".tgz"], ArchiveFormat::TarGz),
            (&[".tar.xz", ".txz"], ArchiveFormat::TarXz),
            (&[".tar.bz2", ".tbz2", ".tbz"], ArchiveFormat::TarBz2),
            (&[".zip"], ArchiveFormat::Zip),
            (&[".tar"], ArchiveFormat::Tar),
        ];
        suffixes
            .into_iter()
            .find(|(endings, _)| endings.iter().any(|ending| name.ends_with(ending)))
            .map(|(_, format)| format)
    }
}

impl fmt::Display for ArchiveFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Unpacks `archive` into `dest`, which must not exist yet and is created only on success.
///
/// `strip_components` drops that many leading path components from every entry (and from hard
/// link targets), like `tar --strip-components`.
pub fn unpack(
    archive: &Path,
    format: ArchiveFormat,
    strip_components: usize,
    dest: &Path,
) -> Result<(), FetchError> {
    unpack_with(archive, format, &UnpackOptions::new(strip_components), dest)
}

/// [`unpack`] with limits and an optional digest check (see [`UnpackOptions`]). Going over a
/// limit fails with [`FetchError::OverLimit`] (bytes) or [`FetchError::UnsafeEntry`] (entries,
/// path depth or length) and, like every error, leaves nothing behind.
pub fn unpack_with(
    archive: &Path,
    format: ArchiveFormat,
    options: &UnpackOptions,
    dest: &Path,
) -> Result<(), FetchError> {
    if fs::symlink_metadata(dest).is_ok() {
        return Err(FetchError::DestinationExists(dest.to_path_buf()));
    }
    let parent = match dest.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let temp = tempfile::Builder::new()
        .prefix(".sealroom-unpack-")
        .tempdir_in(parent)
        .map_err(|err| FetchError::io("create a temp directory in", parent, err))?;

    let mut extractor = Extractor::new(temp.path().to_path_buf(), options);
    let file = fs::File::open(archive).map_err(|err| FetchError::io("open", archive, err))?;
    match format {
        ArchiveFormat::Zip => {
            if let Some(expected) = &options.expected {
                // The zip reader seeks, so the file is hashed first, through the same open file
                // (a later rename or replace of the path changes nothing read here).
                let mut hashing = HashingReader::new(&file);
                io::copy(&mut hashing, &mut io::sink())
                    .map_err(|err| FetchError::io("read", archive, err))?;
                let (_, found, _) = hashing.finish::<Blob>();
                check_digest(archive, expected, found)?;
            }
            unpack_zip(archive, &file, &mut extractor)?;
        }
        _ => {
            let mut hashing = HashingReader::new(&file);
            unpack_tar(archive, &mut hashing, format, &mut extractor)?;
            if let Some(expected) = &options.expected {
                // The bytes after the tar's end (padding, a trailer) belong to the blob too.
                io::copy(&mut hashing, &mut io::sink())
                    .map_err(|err| FetchError::io("read", archive, err))?;
                let (_, found, _) = hashing.finish::<Blob>();
                check_digest(archive, expected, found)?;
            }
        }
    }
    extractor.apply_directory_modes()?;

    let temp_path = temp.keep();
    fs::rename(&temp_path, dest).map_err(|err| {
        let _ = fs::remove_dir_all(&temp_path);
        FetchError::io("rename the unpacked tree to", dest, err)
    })
}

fn check_digest(
    archive: &Path,
    expected: &BlobDigest,
    found: BlobDigest,
) -> Result<(), FetchError> {
    if *expected == found {
        Ok(())
    } else {
        Err(FetchError::ArchiveDigestMismatch {
            archive: archive.to_path_buf(),
            expected: *expected,
            found,
        })
    }
}

fn corrupt(archive: &Path, format: ArchiveFormat, reason: impl fmt::Display) -> FetchError {
    FetchError::CorruptArchive {
        archive: archive.to_path_buf(),
        format,
        reason: reason.to_string(),
    }
}

/// The most memory the xz decoder may use (the archive's header says how much it needs).
const XZ_MEMORY_LIMIT: u64 = 256 * 1024 * 1024;

fn unpack_tar<R: Read>(
    archive: &Path,
    file: R,
    format: ArchiveFormat,
    extractor: &mut Extractor,
) -> Result<(), FetchError> {
    let buffered = BufReader::with_capacity(256 * 1024, file);
    let reader: Box<dyn Read + '_> = match format {
        ArchiveFormat::Tar => Box::new(buffered),
        ArchiveFormat::TarGz => Box::new(flate2::read::MultiGzDecoder::new(buffered)),
        ArchiveFormat::TarXz => {
            // Only the .xz container (not legacy .lzma, whose header may ask for any dictionary
            // size), and a bound on the decoder's memory: `xz -9` needs 65 MiB.
            let stream = liblzma::stream::Stream::new_stream_decoder(
                XZ_MEMORY_LIMIT,
                liblzma::stream::CONCATENATED,
            )
            .map_err(|err| corrupt(archive, format, std::io::Error::other(err)))?;
            Box::new(liblzma::read::XzDecoder::new_stream(buffered, stream))
        }
        ArchiveFormat::TarBz2 => Box::new(bzip2::read::MultiBzDecoder::new(buffered)),
        ArchiveFormat::Zip => unreachable!("zip is unpacked by unpack_zip"),
    };
    let mut tar = tar::Archive::new(reader);
    let entries = tar.entries().map_err(|err| corrupt(archive, format, err))?;
    for entry in entries {
        let mut entry = entry.map_err(|err| corrupt(archive, format, err))?;
        let name = entry
            .path()
            .map_err(|err| corrupt(archive, format, err))?
            .into_owned();
        let display = name.to_string_lossy().into_owned();
        let header = entry.header();
        let mode = header.mode().unwrap_or(0o644);
        let entry_type = header.entry_type();
        let link_name = || -> Result<PathBuf, FetchError> {
            match entry.link_name() {
                Ok(Some(target)) => Ok(target.into_owned()),
                Ok(None) => Err(FetchError::unsafe_entry(
                    &display,
                    "is a link without a target",
                )),
                Err(err) => Err(corrupt(archive, format, err)),
            }
        };
        // For a GNU sparse entry, the full size it stands for (the tar crate reads the map).
        let size = entry.size();
        let kind = match entry_type {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                EntryKind::File { mode, size }
            }
            tar::EntryType::Directory => EntryKind::Directory { mode },
            tar::EntryType::Symlink => EntryKind::Symlink {
                target: link_name()?,
            },
            tar::EntryType::Link => EntryKind::HardLink {
                target: link_name()?,
            },
            tar::EntryType::Char => {
                return Err(FetchError::unsafe_entry(
                    &display,
                    "is a character device; devices are not unpacked",
                ));
            }
            tar::EntryType::Block => {
                return Err(FetchError::unsafe_entry(
                    &display,
                    "is a block device; devices are not unpacked",
                ));
            }
            tar::EntryType::Fifo => {
                return Err(FetchError::unsafe_entry(
                    &display,
                    "is a fifo; fifos are not unpacked",
                ));
            }
            // Metadata for other entries; the tar crate applies the per-entry ones itself.
            tar::EntryType::XGlobalHeader
            | tar::EntryType::XHeader
            | tar::EntryType::GNULongName
            | tar::EntryType::GNULongLink => continue,
            other => {
                return Err(FetchError::unsafe_entry(
                    &display,
                    format!(
                        "has the unsupported tar entry type {:?}",
                        other.as_byte() as char
                    ),
                ));
            }
        };
        extractor.add(&name, &display, kind, &mut entry, || {
            corrupt_entry(archive, format, &display)
        })?;
    }
    Ok(())
}

fn corrupt_entry(
    archive: &Path,
    format: ArchiveFormat,
    display: &str,
) -> impl Fn(io::Error) -> FetchError {
    let archive = archive.to_path_buf();
    let display = display.to_string();
    move |err| corrupt(&archive, format, format!("entry `{display}`: {err}"))
}

/// Unix file type bits (`st_mode & S_IFMT`), as zip stores them in the external attributes.
const S_IFMT: u32 = 0o170_000;
const S_IFSOCK: u32 = 0o140_000;
const S_IFBLK: u32 = 0o060_000;
const S_IFCHR: u32 = 0o020_000;
const S_IFIFO: u32 = 0o010_000;
/// A symlink target longer than this is not a path.
const MAX_LINK_TARGET: u64 = 4096;

fn unpack_zip(
    archive: &Path,
    mut file: &fs::File,
    extractor: &mut Extractor,
) -> Result<(), FetchError> {
    use std::io::Seek;
    let format = ArchiveFormat::Zip;
    file.rewind()
        .map_err(|err| FetchError::io("read", archive, err))?;
    let mut zip =
        zip::ZipArchive::new(BufReader::new(file)).map_err(|err| corrupt(archive, format, err))?;
    for index in 0..zip.len() {
        let mut entry = zip
            .by_index(index)
            .map_err(|err| corrupt(archive, format, err))?;
        let display = entry
            .name()
            .map_err(|err| corrupt(archive, format, err))?
            .into_owned();
        let name = PathBuf::from(&display);
        let unix_mode = entry.unix_mode();
        let file_type = unix_mode.map(|mode| mode & S_IFMT);
        let kind = if entry.is_symlink() {
            let mut target = Vec::new();
            (&mut entry)
                .take(MAX_LINK_TARGET + 1)
                .read_to_end(&mut target)
                .map_err(corrupt_entry(archive, format, &display))?;
            if target.len() as u64 > MAX_LINK_TARGET {
                return Err(FetchError::unsafe_entry(
                    &display,
                    "is a symlink with a target longer than 4096 bytes",
                ));
            }
            let target = String::from_utf8(target).map_err(|_| {
                FetchError::unsafe_entry(&display, "is a symlink whose target is not utf-8")
            })?;
            EntryKind::Symlink {
                target: PathBuf::from(target),
            }
        } else if let Some(what) = match file_type {
            Some(S_IFCHR) => Some("is a character device; devices are not unpacked"),
            Some(S_IFBLK) => Some("is a block device; devices are not unpacked"),
            Some(S_IFIFO) => Some("is a fifo; fifos are not unpacked"),
            Some(S_IFSOCK) => Some("is a socket; sockets are not unpacked"),
            _ => None,
        } {
            return Err(FetchError::unsafe_entry(&display, what));
        } else if entry.is_dir() {
            EntryKind::Directory {
                mode: unix_mode.unwrap_or(0o755),
            }
        } else {
            EntryKind::File {
                mode: unix_mode.unwrap_or(0o644),
                // As the archive declares it; the bytes are counted again as they are written.
                size: entry.size(),
            }
        };
        extractor.add(&name, &display, kind, &mut entry, || {
            corrupt_entry(archive, format, &display)
        })?;
    }
    Ok(())
}

/// What an archive entry asks to create, independent of the archive format.
enum EntryKind {
    File {
        mode: u32,
        /// The size the archive declares (apparent size for a sparse entry).
        size: u64,
    },
    Directory {
        mode: u32,
    },
    /// The target as stored, relative to the link's directory.
    Symlink {
        target: PathBuf,
    },
    /// The target as stored, relative to the archive root (as tar stores it).
    HardLink {
        target: PathBuf,
    },
}

/// Permission bits kept: rwx for user, group, other. Setuid, setgid and sticky are dropped.
const PERMISSION_BITS: u32 = 0o777;

/// Creates entries under `root` (a private temp directory) after checking each one.
struct Extractor {
    root: PathBuf,
    strip_components: usize,
    /// Every directory created, with the mode to give it once its children are written.
    directories: Vec<(PathBuf, u32)>,
    max_bytes: u64,
    /// Bytes of the files unpacked so far (apparent sizes).
    bytes: u64,
    max_entries: u64,
    entries: u64,
}

impl Extractor {
    fn new(root: PathBuf, options: &UnpackOptions) -> Self {
        Self {
            root,
            strip_components: options.strip_components,
            directories: Vec::new(),
            max_bytes: options.max_bytes,
            bytes: 0,
            max_entries: options.max_entries,
            entries: 0,
        }
    }

    /// Adds `size` bytes of `display` to the count, refusing when the total would pass the limit.
    fn count_bytes(&mut self, display: &str, size: u64, how: &str) -> Result<(), FetchError> {
        match self.bytes.checked_add(size) {
            Some(total) if total <= self.max_bytes => {
                self.bytes = total;
                Ok(())
            }
            _ => Err(FetchError::OverLimit {
                action: "unpacking",
                limit: self.max_bytes,
                detail: format!(
                    "entry `{display}` {how} {size} bytes after {} bytes of the entries before it; nothing was kept",
                    self.bytes
                ),
            }),
        }
    }

    /// Checks the entry count and the path's depth and length before anything is created.
    fn check_entry(&mut self, name: &Path, display: &str) -> Result<(), FetchError> {
        self.entries += 1;
        if self.entries > self.max_entries {
            return Err(FetchError::unsafe_entry(
                display,
                format!(
                    "is entry number {} of the archive; an archive may hold at most {} entries",
                    self.entries, self.max_entries
                ),
            ));
        }
        let bytes = name.as_os_str().len();
        if bytes > MAX_PATH_BYTES {
            return Err(FetchError::unsafe_entry(
                shortened(display),
                format!("has a path of {bytes} bytes; paths may be at most {MAX_PATH_BYTES} bytes"),
            ));
        }
        let depth = name.components().count();
        if depth > MAX_PATH_DEPTH {
            return Err(FetchError::unsafe_entry(
                shortened(display),
                format!(
                    "has a path of {depth} components; paths may be at most {MAX_PATH_DEPTH} deep"
                ),
            ));
        }
        Ok(())
    }

    /// The entry's components below the root after stripping; `None` when nothing is left.
    fn relative_components(
        &self,
        name: &Path,
        display: &str,
        what: &str,
    ) -> Result<Option<Vec<OsString>>, FetchError> {
        let mut components = Vec::new();
        for component in name.components() {
            match component {
                Component::Prefix(_) | Component::RootDir => {
                    return Err(FetchError::unsafe_entry(
                        display,
                        format!("{what} an absolute path; archive paths must be relative"),
                    ));
                }
                Component::ParentDir => {
                    return Err(FetchError::unsafe_entry(
                        display,
                        format!("{what} a `..` component and would escape the destination"),
                    ));
                }
                Component::CurDir => {}
                Component::Normal(part) => components.push(part.to_os_string()),
            }
        }
        if components.len() <= self.strip_components {
            return Ok(None);
        }
        Ok(Some(components.split_off(self.strip_components)))
    }

    fn add<R: Read, F: Fn(io::Error) -> FetchError>(
        &mut self,
        name: &Path,
        display: &str,
        kind: EntryKind,
        reader: &mut R,
        read_error: impl Fn() -> F,
    ) -> Result<(), FetchError> {
        self.check_entry(name, display)?;
        let Some(components) = self.relative_components(name, display, "has")? else {
            return Ok(());
        };
        self.create_parents(&components, display)?;
        let path = join_all(&self.root, &components);
        match kind {
            EntryKind::Directory { mode } => {
                match fs::symlink_metadata(&path) {
                    Ok(metadata) if metadata.is_dir() => {}
                    Ok(metadata) => return Err(replaces(display, &components, &metadata)),
                    Err(err) if err.kind() == io::ErrorKind::NotFound => {
                        fs::create_dir(&path)
                            .map_err(|err| FetchError::io("create directory", &path, err))?;
                    }
                    Err(err) => return Err(FetchError::io("inspect", &path, err)),
                }
                self.directories
                    .push((path, (mode & PERMISSION_BITS) | 0o700));
            }
            EntryKind::File { mode, size } => {
                // Refused before the first byte when the declared size does not fit.
                self.count_bytes(display, size, "declares")?;
                self.clear_for_non_directory(&path, &components, display)?;
                let mut file = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true) // O_EXCL: never follows a symlink at the last component
                    .open(&path)
                    .map_err(|err| FetchError::io("create", &path, err))?;
                // Counted again as written: a reader that yields more than declared stops at
                // the limit all the same.
                let room = self.max_bytes - (self.bytes - size);
                let written = copy_entry(reader, &mut file, &path, room, read_error())?;
                if written > room {
                    return Err(FetchError::OverLimit {
                        action: "unpacking",
                        limit: self.max_bytes,
                        detail: format!(
                            "entry `{display}` declared {size} bytes but went past the limit while it was written; stopped there, nothing was kept"
                        ),
                    });
                }
                self.bytes = self.bytes - size + written;
                fs::set_permissions(
                    &path,
                    fs::Permissions::from_mode((mode & PERMISSION_BITS) | 0o400),
                )
                .map_err(|err| FetchError::io("set the mode of", &path, err))?;
            }
            EntryKind::Symlink { target } => {
                check_symlink_target(&components, &target, display)?;
                self.clear_for_non_directory(&path, &components, display)?;
                std::os::unix::fs::symlink(&target, &path)
                    .map_err(|err| FetchError::io("create symlink", &path, err))?;
            }
            EntryKind::HardLink { target } => {
                let source = self.hard_link_source(&target, display)?;
                // A link shares the file's bytes on disk, but every path of a tree is a file a
                // step sees (and a checkout may copy): it counts in full.
                let size = fs::symlink_metadata(&source)
                    .map_err(|err| FetchError::io("inspect", &source, err))?
                    .len();
                self.count_bytes(display, size, "links to")?;
                self.clear_for_non_directory(&path, &components, display)?;
                if source == path {
                    return Ok(()); // a link to itself: the file is already there
                }
                fs::hard_link(&source, &path)
                    .map_err(|err| FetchError::io("create hard link", &path, err))?;
            }
        }
        Ok(())
    }

    /// Makes sure every parent of the entry is a real directory inside the root, creating the
    /// missing ones; a symlink or a file on the way is refused.
    fn create_parents(&mut self, components: &[OsString], display: &str) -> Result<(), FetchError> {
        let mut path = self.root.clone();
        for (depth, part) in components[..components.len() - 1].iter().enumerate() {
            path.push(part);
            match fs::symlink_metadata(&path) {
                Ok(metadata) if metadata.is_dir() => {}
                Ok(metadata) if metadata.file_type().is_symlink() => {
                    return Err(FetchError::unsafe_entry(
                        display,
                        format!(
                            "would be written through the symlink `{}` unpacked before it",
                            shown(&components[..=depth])
                        ),
                    ));
                }
                Ok(_) => {
                    return Err(FetchError::unsafe_entry(
                        display,
                        format!(
                            "is inside `{}`, which is not a directory",
                            shown(&components[..=depth])
                        ),
                    ));
                }
                Err(err) if err.kind() == io::ErrorKind::NotFound => {
                    fs::create_dir(&path)
                        .map_err(|err| FetchError::io("create directory", &path, err))?;
                    self.directories.push((path.clone(), 0o755));
                }
                Err(err) => return Err(FetchError::io("inspect", &path, err)),
            }
        }
        Ok(())
    }

    /// A later entry with the same path replaces a file or link (as tar does), never a directory.
    fn clear_for_non_directory(
        &self,
        path: &Path,
        components: &[OsString],
        display: &str,
    ) -> Result<(), FetchError> {
        match fs::symlink_metadata(path) {
            Ok(metadata) if metadata.is_dir() => Err(replaces(display, components, &metadata)),
            Ok(_) => fs::remove_file(path).map_err(|err| FetchError::io("replace", path, err)),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(FetchError::io("inspect", path, err)),
        }
    }

    /// The path of the regular file a hard link entry names, which must already be unpacked,
    /// reached through real directories only.
    fn hard_link_source(&self, target: &Path, display: &str) -> Result<PathBuf, FetchError> {
        let shown_target = target.to_string_lossy();
        let not_unpacked = || {
            FetchError::unsafe_entry(
                display,
                format!(
                    "is a hard link to `{shown_target}`, which is not a file unpacked before it"
                ),
            )
        };
        let what = format!("is a hard link to `{shown_target}`, which has");
        let Some(components) = self.relative_components(target, display, &what)? else {
            return Err(not_unpacked());
        };
        let mut path = self.root.clone();
        for (index, part) in components.iter().enumerate() {
            path.push(part);
            let metadata = fs::symlink_metadata(&path).map_err(|_| not_unpacked())?;
            let last = index + 1 == components.len();
            let fits = if last {
                metadata.is_file()
            } else {
                metadata.is_dir()
            };
            if !fits {
                return Err(not_unpacked());
            }
        }
        Ok(path)
    }

    /// Gives every directory its final mode, deepest first (a read-only directory is set only
    /// after everything inside it is written).
    fn apply_directory_modes(&mut self) -> Result<(), FetchError> {
        self.directories
            .sort_by_key(|(path, _)| std::cmp::Reverse(path.components().count()));
        for (path, mode) in &self.directories {
            fs::set_permissions(path, fs::Permissions::from_mode(*mode))
                .map_err(|err| FetchError::io("set the mode of", path, err))?;
        }
        fs::set_permissions(&self.root, fs::Permissions::from_mode(0o755))
            .map_err(|err| FetchError::io("set the mode of", &self.root, err))
    }
}

/// A symlink target must be relative, may only start with `..` (a `..` after a name could climb
/// out through another link: `x -> .` then `y -> x/..`), and must stay inside the tree when
/// resolved from the link's directory. Combined with "parents are real directories", every link
/// then resolves inside the tree whatever links exist beside it.
fn check_symlink_target(link: &[OsString], target: &Path, display: &str) -> Result<(), FetchError> {
    let shown_target = target.to_string_lossy();
    if target.as_os_str().is_empty() {
        return Err(FetchError::unsafe_entry(
            display,
            "is a symlink with an empty target",
        ));
    }
    let mut ups = 0usize;
    let mut seen_name = false;
    for component in target.components() {
        match component {
            Component::Prefix(_) | Component::RootDir => {
                return Err(FetchError::unsafe_entry(
                    display,
                    format!(
                        "is a symlink to the absolute path `{shown_target}`; links must be relative"
                    ),
                ));
            }
            Component::ParentDir if seen_name => {
                return Err(FetchError::unsafe_entry(
                    display,
                    format!(
                        "is a symlink to `{shown_target}`, which has `..` after a name; only leading `..` are allowed"
                    ),
                ));
            }
            Component::ParentDir => ups += 1,
            Component::CurDir => {}
            Component::Normal(_) => seen_name = true,
        }
    }
    let depth = link.len() - 1; // directories between the root and the link
    if ups > depth {
        return Err(FetchError::unsafe_entry(
            display,
            format!("is a symlink to `{shown_target}`, which points outside the destination"),
        ));
    }
    Ok(())
}

fn replaces(display: &str, components: &[OsString], existing: &fs::Metadata) -> FetchError {
    let what = if existing.is_dir() {
        "directory"
    } else if existing.file_type().is_symlink() {
        "symlink"
    } else {
        "file"
    };
    FetchError::unsafe_entry(
        display,
        format!(
            "would replace the {what} `{}` unpacked before it",
            shown(components)
        ),
    )
}

/// Copies an entry's bytes, telling a read error (a corrupt archive) from a write error. Stops
/// as soon as more than `room` bytes were read (writing only `room` of them) and returns the
/// count read, so that the caller sees the excess; otherwise returns the bytes written.
fn copy_entry<R: Read>(
    reader: &mut R,
    file: &mut fs::File,
    path: &Path,
    room: u64,
    read_error: impl Fn(io::Error) -> FetchError,
) -> Result<u64, FetchError> {
    let mut buffer = vec![0u8; 64 * 1024];
    let mut written: u64 = 0;
    loop {
        let read = match reader.read(&mut buffer) {
            Ok(0) => return Ok(written),
            Ok(read) => read,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(read_error(err)),
        };
        let fits = usize::try_from(room - written).map_or(read, |left| read.min(left));
        file.write_all(&buffer[..fits])
            .map_err(|err| FetchError::io("write", path, err))?;
        written += read as u64;
        if written > room {
            return Ok(written);
        }
    }
}

/// A path for an error message: a very long one shows its start and its length.
fn shortened(display: &str) -> String {
    const SHOWN: usize = 200;
    if display.len() <= SHOWN {
        return display.to_string();
    }
    let mut end = SHOWN;
    while !display.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &display[..end], display.len())
}

fn join_all(root: &Path, components: &[OsString]) -> PathBuf {
    let mut path = root.to_path_buf();
    path.extend(components);
    path
}

fn shown(components: &[OsString]) -> String {
    components
        .iter()
        .map(|part| part.to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_by_magic_before_name() {
        let mut tar_header = vec![0u8; 512];
        tar_header[257..262].copy_from_slice(b"ustar");
        assert_eq!(
            ArchiveFormat::detect("x.zip", &tar_header),
            Some(ArchiveFormat::Tar)
        );
        assert_eq!(
            ArchiveFormat::detect("x.tar", &[0x1f, 0x8b, 8]),
            Some(ArchiveFormat::TarGz)
        );
        assert_eq!(
            ArchiveFormat::detect("", b"\xfd7zXZ\0rest"),
            Some(ArchiveFormat::TarXz)
        );
        assert_eq!(
            ArchiveFormat::detect("", b"BZh91AY"),
            Some(ArchiveFormat::TarBz2)
        );
        assert_eq!(
            ArchiveFormat::detect("", b"PK\x03\x04"),
            Some(ArchiveFormat::Zip)
        );
    }

    #[test]
    fn falls_back_to_the_name_ignoring_query_and_fragment() {
        let none: &[u8] = b"";
        assert_eq!(
            ArchiveFormat::detect("https://h/a/zlib-1.3.TGZ?x=1#y", none),
            Some(ArchiveFormat::TarGz)
        );
        assert_eq!(
            ArchiveFormat::detect("a.tar.bz2", none),
            Some(ArchiveFormat::TarBz2)
        );
        assert_eq!(
            ArchiveFormat::detect("a.txz", none),
            Some(ArchiveFormat::TarXz)
        );
        assert_eq!(
            ArchiveFormat::detect("a.tar", none),
            Some(ArchiveFormat::Tar)
        );
        assert_eq!(
            ArchiveFormat::detect("a.zip", none),
            Some(ArchiveFormat::Zip)
        );
        assert_eq!(ArchiveFormat::detect("https://h/tar.gz/readme", none), None);
    }

    fn parts(path: &str) -> Vec<OsString> {
        path.split('/').map(OsString::from).collect()
    }

    #[test]
    fn symlink_targets_may_only_climb_first_and_not_past_the_root() {
        assert!(check_symlink_target(&parts("a/b/link"), Path::new("../../c"), "l").is_ok());
        assert!(check_symlink_target(&parts("a/link"), Path::new("./b/c"), "l").is_ok());
        let err =
            check_symlink_target(&parts("a/link"), Path::new("../../c"), "a/link").unwrap_err();
        assert_eq!(
            err.to_string(),
            "archive entry `a/link` is a symlink to `../../c`, which points outside the destination"
        );
        let err = check_symlink_target(&parts("y"), Path::new("x/.."), "y").unwrap_err();
        assert_eq!(
            err.to_string(),
            "archive entry `y` is a symlink to `x/..`, which has `..` after a name; only leading `..` are allowed"
        );
    }
}
