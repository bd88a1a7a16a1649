//! Unpacking archives that nobody reviewed, safely.
//!
//! Entries are extracted into a fresh directory next to the destination, which is renamed into
//! place only when the whole archive was extracted: a rejected archive leaves nothing. Rejected:
//! absolute paths, `..` components, symlinks whose target is absolute or resolves outside the
//! tree, hard links to anything but a regular file extracted earlier, device files, fifos, and
//! any entry that would be written through a symlink. Setuid, setgid and sticky bits are
//! dropped; the other mode bits are kept.

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use super::FetchError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    Tar,
    TarGz,
    TarXz,
    TarBz2,
    Zip,
}

impl ArchiveFormat {
    /// By the first bytes (magic numbers), else by the name's extension.
    pub fn detect(name: &str, first_bytes: &[u8]) -> Option<ArchiveFormat> {
        if first_bytes.starts_with(&[0x1f, 0x8b]) {
            return Some(ArchiveFormat::TarGz);
        }
        if first_bytes.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
            return Some(ArchiveFormat::TarXz);
        }
        if first_bytes.starts_with(b"BZh") {
            return Some(ArchiveFormat::TarBz2);
        }
        if first_bytes.starts_with(b"PK\x03\x04") || first_bytes.starts_with(b"PK\x05\x06") {
            return Some(ArchiveFormat::Zip);
        }
        if first_bytes.len() >= 262 && &first_bytes[257..262] == b"ustar" {
            return Some(ArchiveFormat::Tar);
        }
        let name = name.split(['?', '#']).next().unwrap_or(name);
        [
            (".tar.gz", ArchiveFormat::TarGz),
            (".tgz", ArchiveFormat::TarGz),
            (".tar.xz", ArchiveFormat::TarXz),
            (".txz", ArchiveFormat::TarXz),
            (".tar.bz2", ArchiveFormat::TarBz2),
            (".tbz2", ArchiveFormat::TarBz2),
            (".zip", ArchiveFormat::Zip),
            (".tar", ArchiveFormat::Tar),
        ]
        .into_iter()
        .find(|(suffix, _)| name.ends_with(suffix))
        .map(|(_, format)| format)
    }

    /// Detects the format of the archive at `path`, whose name (or URL) is `name`.
    pub fn of_file(path: &Path, name: &str) -> Result<ArchiveFormat, FetchError> {
        let mut first = Vec::with_capacity(512);
        fs::File::open(path)
            .and_then(|file| file.take(512).read_to_end(&mut first))
            .map_err(|e| FetchError::io("cannot read", path, e))?;
        ArchiveFormat::detect(name, &first).ok_or_else(|| FetchError::UnknownArchive {
            name: name.to_string(),
        })
    }
}

/// Extracts `archive` to `dest` (which must not exist), dropping `strip_components` leading
/// path components from every entry.
pub fn unpack(
    archive: &Path,
    format: ArchiveFormat,
    strip_components: usize,
    dest: &Path,
) -> Result<(), FetchError> {
    let parent = dest.parent().unwrap_or(Path::new("."));
    let staging = tempfile::Builder::new()
        .prefix(".unpack-")
        .tempdir_in(parent)
        .map_err(|e| FetchError::io("cannot create a temporary directory in", parent, e))?;
    let root = staging.path().join("root");
    fs::create_dir(&root).map_err(|e| FetchError::io("cannot create", &root, e))?;
    let mut extractor = Extractor {
        root: &root,
        strip_components,
    };
    let file = fs::File::open(archive).map_err(|e| FetchError::io("cannot read", archive, e))?;
    let reader = std::io::BufReader::new(file);
    match format {
        ArchiveFormat::Tar => extractor.tar(archive, reader)?,
        ArchiveFormat::TarGz => {
            extractor.tar(archive, flate2::read::MultiGzDecoder::new(reader))?
        }
        ArchiveFormat::TarXz => extractor.tar(archive, liblzma::read::XzDecoder::new(reader))?,
        ArchiveFormat::TarBz2 => {
            extractor.tar(archive, bzip2::read::MultiBzDecoder::new(reader))?
        }
        ArchiveFormat::Zip => extractor.zip(archive)?,
    }
    fs::rename(&root, dest)
        .map_err(|e| FetchError::io("cannot move the unpacked tree to", dest, e))?;
    Ok(())
}

struct Extractor<'a> {
    root: &'a Path,
    strip_components: usize,
}

/// What an entry is, as far as extraction cares.
enum Kind<'a> {
    Directory,
    File(&'a mut dyn Read),
    Symlink(String),
    HardLink(PathBuf),
}

impl Extractor<'_> {
    fn tar(&mut self, archive: &Path, reader: impl Read) -> Result<(), FetchError> {
        let bad = |error: std::io::Error| FetchError::BadArchive {
            path: archive.to_path_buf(),
            detail: error.to_string(),
        };
        let mut tar = tar::Archive::new(reader);
        for entry in tar.entries().map_err(bad)? {
            let mut entry = entry.map_err(bad)?;
            let raw_path = entry.path().map_err(bad)?.into_owned();
            let name = raw_path.display().to_string();
            let mode = entry.header().mode().unwrap_or(0o644);
            let entry_type = entry.header().entry_type();
            let kind = match entry_type {
                tar::EntryType::Directory => Kind::Directory,
                tar::EntryType::Regular
                | tar::EntryType::Continuous
                | tar::EntryType::GNUSparse => Kind::File(&mut entry),
                tar::EntryType::Symlink => {
                    let target = link_name(&name, entry.link_name().map_err(bad)?)?;
                    Kind::Symlink(target)
                }
                tar::EntryType::Link => {
                    let target = link_name(&name, entry.link_name().map_err(bad)?)?;
                    Kind::HardLink(PathBuf::from(target))
                }
                tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => continue,
                tar::EntryType::Char | tar::EntryType::Block => {
                    return Err(unsafe_entry(&name, "is a device file"));
                }
                tar::EntryType::Fifo => return Err(unsafe_entry(&name, "is a fifo")),
                other => {
                    return Err(unsafe_entry(
                        &name,
                        &format!("has an unsupported type ({other:?})"),
                    ));
                }
            };
            self.extract(&name, &raw_path, mode, kind)?;
        }
        Ok(())
    }

    fn zip(&mut self, archive: &Path) -> Result<(), FetchError> {
        let bad = |detail: String| FetchError::BadArchive {
            path: archive.to_path_buf(),
            detail,
        };
        let file =
            fs::File::open(archive).map_err(|e| FetchError::io("cannot read", archive, e))?;
        let mut zip = zip::ZipArchive::new(file).map_err(|e| bad(e.to_string()))?;
        for index in 0..zip.len() {
            let mut entry = zip.by_index(index).map_err(|e| bad(e.to_string()))?;
            let name = entry.name().map_err(|e| bad(e.to_string()))?.to_string();
            let raw_path = PathBuf::from(&name);
            let mode = entry
                .unix_mode()
                .unwrap_or(if entry.is_dir() { 0o755 } else { 0o644 });
            const S_IFMT: u32 = 0o170000;
            let kind = match mode & S_IFMT {
                0o120000 => {
                    let mut target = String::new();
                    entry
                        .read_to_string(&mut target)
                        .map_err(|e| bad(format!("symlink `{name}`: {e}")))?;
                    Kind::Symlink(target)
                }
                0o020000 | 0o060000 => return Err(unsafe_entry(&name, "is a device file")),
                0o010000 => return Err(unsafe_entry(&name, "is a fifo")),
                _ if entry.is_dir() => Kind::Directory,
                _ => Kind::File(&mut entry),
            };
            self.extract(&name, &raw_path, mode, kind)?;
        }
        Ok(())
    }

    /// The entry's place under the root: checked, stripped, never escaping.
    fn destination(&self, name: &str, raw_path: &Path) -> Result<Option<PathBuf>, FetchError> {
        let mut parts = Vec::new();
        for component in raw_path.components() {
            match component {
                Component::Normal(part) => parts.push(part.to_os_string()),
                Component::CurDir => {}
                Component::ParentDir => {
                    return Err(unsafe_entry(name, "escapes the destination with `..`"));
                }
                Component::RootDir | Component::Prefix(_) => {
                    return Err(unsafe_entry(name, "has an absolute path"));
                }
            }
        }
        if parts.len() <= self.strip_components {
            return Ok(None);
        }
        Ok(Some(parts[self.strip_components..].iter().collect()))
    }

    fn extract(
        &mut self,
        name: &str,
        raw_path: &Path,
        mode: u32,
        kind: Kind<'_>,
    ) -> Result<(), FetchError> {
        let Some(relative) = self.destination(name, raw_path)? else {
            return Ok(());
        };
        let path = self.root.join(&relative);
        self.ensure_real_directories(name, relative.parent().unwrap_or(Path::new("")))?;
        if let Ok(existing) = fs::symlink_metadata(&path) {
            if existing.file_type().is_symlink() {
                return Err(unsafe_entry(name, "would be written through a symlink"));
            }
            if existing.is_dir() && matches!(kind, Kind::Directory) {
                return Ok(());
            }
            if existing.is_dir() {
                return Err(unsafe_entry(name, "would replace a directory"));
            }
            fs::remove_file(&path).map_err(|e| FetchError::io("cannot replace", &path, e))?;
        }
        // Only the permission bits: setuid, setgid and sticky are dropped.
        let permissions = fs::Permissions::from_mode(mode & 0o777);
        match kind {
            Kind::Directory => {
                fs::create_dir(&path).map_err(|e| FetchError::io("cannot create", &path, e))?;
                // Writable by us until the tree is stored; the store keeps only the exec bit.
                fs::set_permissions(&path, fs::Permissions::from_mode((mode & 0o777) | 0o700))
                    .map_err(|e| FetchError::io("cannot set the mode of", &path, e))?;
            }
            Kind::File(reader) => {
                let mut file = fs::File::create(&path)
                    .map_err(|e| FetchError::io("cannot create", &path, e))?;
                std::io::copy(reader, &mut file)
                    .map_err(|e| FetchError::io("cannot write", &path, e))?;
                file.set_permissions(permissions)
                    .map_err(|e| FetchError::io("cannot set the mode of", &path, e))?;
            }
            Kind::Symlink(target) => {
                self.check_symlink(name, &relative, &target)?;
                std::os::unix::fs::symlink(&target, &path)
                    .map_err(|e| FetchError::io("cannot create", &path, e))?;
            }
            Kind::HardLink(target) => {
                let Some(target_relative) = self.destination(name, &target)? else {
                    return Err(unsafe_entry(
                        name,
                        "is a hard link to an entry that is stripped away",
                    ));
                };
                let source = self.root.join(&target_relative);
                match fs::symlink_metadata(&source) {
                    Ok(metadata) if metadata.is_file() => {
                        fs::copy(&source, &path)
                            .map_err(|e| FetchError::io("cannot create", &path, e))?;
                    }
                    _ => {
                        return Err(unsafe_entry(
                            name,
                            &format!(
                                "is a hard link to `{}`, which is not a regular file extracted before it",
                                target.display()
                            ),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Creates the directories of `relative` under the root, refusing to pass a symlink.
    fn ensure_real_directories(&self, name: &str, relative: &Path) -> Result<(), FetchError> {
        let mut path = self.root.to_path_buf();
        for component in relative.components() {
            path.push(component);
            match fs::symlink_metadata(&path) {
                Ok(metadata) if metadata.is_dir() => {}
                Ok(metadata) if metadata.file_type().is_symlink() => {
                    return Err(unsafe_entry(name, "would be written through a symlink"));
                }
                Ok(_) => return Err(unsafe_entry(name, "lies under a file")),
                Err(_) => {
                    fs::create_dir(&path).map_err(|e| FetchError::io("cannot create", &path, e))?;
                }
            }
        }
        Ok(())
    }

    /// A symlink must be relative and resolve (lexically) inside the tree.
    fn check_symlink(&self, name: &str, relative: &Path, target: &str) -> Result<(), FetchError> {
        if target.starts_with('/') {
            return Err(unsafe_entry(
                name,
                &format!("is a symlink to the absolute path `{target}`"),
            ));
        }
        let mut depth: usize = relative.components().count().saturating_sub(1);
        for component in Path::new(target).components() {
            match component {
                Component::Normal(_) => depth += 1,
                Component::CurDir => {}
                Component::ParentDir => {
                    if depth == 0 {
                        return Err(unsafe_entry(
                            name,
                            &format!("is a symlink to `{target}`, outside the tree"),
                        ));
                    }
                    depth -= 1;
                }
                Component::RootDir | Component::Prefix(_) => {
                    return Err(unsafe_entry(
                        name,
                        &format!("is a symlink to the absolute path `{target}`"),
                    ));
                }
            }
        }
        Ok(())
    }
}

fn link_name(name: &str, target: Option<std::borrow::Cow<'_, Path>>) -> Result<String, FetchError> {
    let target = target.ok_or_else(|| unsafe_entry(name, "is a link without a target"))?;
    target
        .to_str()
        .map(str::to_string)
        .ok_or_else(|| unsafe_entry(name, "is a link whose target is not UTF-8"))
}

fn unsafe_entry(name: &str, problem: &str) -> FetchError {
    FetchError::UnsafeEntry {
        entry: name.to_string(),
        problem: problem.to_string(),
    }
}
