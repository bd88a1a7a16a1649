//! Atomic file writes: the one way sealroom replaces a file that someone may read at any moment
//! (a store entry, an artifact's provenance, an OCI layout's index, a spec edited by `pin`).
//!
//! The bytes go to a temp file in a directory on the destination's file system, which gets its
//! final mode, is synced, and is renamed over the destination; the destination's directory is
//! synced after the rename, so a crash leaves either the old file or the whole new one. A temp
//! file that is not committed is removed when dropped.
//!
//! A leaf: knows nothing of specs, stores or images. Callers add their own context to errors.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use tempfile::NamedTempFile;

/// The mode the written file gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Exactly this mode (the temp file's own 0600 never shows).
    Fixed(u32),
    /// The mode the destination has now (a spec the user made 0664 stays 0664); this one when
    /// there is no destination yet.
    KeepExisting(u32),
}

/// What failed, and with which file (the temp file's path for the writing steps).
#[derive(Debug, thiserror::Error)]
#[error("{action} `{}`: {source}", path.display())]
pub struct AtomicWriteError {
    pub action: &'static str,
    pub path: std::path::PathBuf,
    #[source]
    pub source: io::Error,
}

fn failed(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> AtomicWriteError {
    let path = path.to_path_buf();
    move |source| AtomicWriteError {
        action,
        path,
        source,
    }
}

/// Writes `bytes` to `path` atomically, with a temp file in `path`'s directory (created if
/// missing). A symlink at `path` is followed: its target is replaced and the link stays.
pub fn write(path: &Path, bytes: &[u8], mode: Mode) -> Result<(), AtomicWriteError> {
    let path = match fs::canonicalize(path) {
        Ok(target) => target,
        Err(_) => path.to_path_buf(),
    };
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    fs::create_dir_all(directory).map_err(failed("creating the directory", directory))?;
    let mut temp = temp_file_in(directory)?;
    temp.write_all(bytes)
        .map_err(failed("writing", temp.path()))?;
    commit(temp, &path, mode)
}

/// A temp file in `directory` (on the destination's file system, so that `commit` is a rename),
/// for a caller that streams into it.
pub fn temp_file_in(directory: &Path) -> Result<NamedTempFile, AtomicWriteError> {
    tempfile::Builder::new()
        .prefix(".sealroom-")
        .tempfile_in(directory)
        .map_err(failed("creating a temp file in", directory))
}

/// Gives a fully written temp file its mode, syncs it, renames it to `dest` and syncs `dest`'s
/// directory. If `dest` exists it is replaced.
pub fn commit(temp: NamedTempFile, dest: &Path, mode: Mode) -> Result<(), AtomicWriteError> {
    let mode = match mode {
        Mode::Fixed(mode) => mode,
        Mode::KeepExisting(default) => match fs::metadata(dest) {
            Ok(metadata) => metadata.permissions().mode() & 0o7777,
            Err(_) => default,
        },
    };
    let file = temp.as_file();
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(failed("setting permissions of", temp.path()))?;
    file.sync_all().map_err(failed("syncing", temp.path()))?;
    temp.persist(dest)
        .map_err(|error| failed("renaming into place", dest)(error.error))?;
    if let Some(directory) = dest.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        // Best effort: the rename is done; a directory that cannot be opened to sync is no reason
        // to report a write that happened as failed.
        if let Ok(directory) = File::open(directory) {
            let _ = directory.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn a_new_file_gets_the_fixed_mode_and_no_temp_file_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/file.json");
        write(&path, b"{}\n", Mode::Fixed(0o644)).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"{}\n");
        assert_eq!(mode_of(&path), 0o644);
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("file.json")]);
    }

    #[test]
    fn keep_existing_keeps_the_mode_a_user_gave_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sealroom.toml");
        for mode in [0o664, 0o640, 0o644] {
            fs::write(&path, "old").unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            write(&path, b"new", Mode::KeepExisting(0o644)).unwrap();
            assert_eq!(fs::read_to_string(&path).unwrap(), "new");
            assert_eq!(mode_of(&path), mode, "{mode:o}");
        }
        let fresh = dir.path().join("fresh.toml");
        write(&fresh, b"x", Mode::KeepExisting(0o644)).unwrap();
        assert_eq!(mode_of(&fresh), 0o644);
    }

    #[test]
    fn a_symlink_stays_a_symlink_and_its_target_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("real.toml");
        let link = dir.path().join("sealroom.toml");
        fs::write(&target, "old").unwrap();
        std::os::unix::fs::symlink("real.toml", &link).unwrap();
        write(&link, b"new", Mode::KeepExisting(0o644)).unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read_to_string(&target).unwrap(), "new");
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("file");
        fs::write(&path, "old").unwrap();
        let mut temp = temp_file_in(dir.path()).unwrap();
        temp.write_all(b"half").unwrap();
        drop(temp); // never committed
        assert_eq!(fs::read_to_string(&path).unwrap(), "old");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
