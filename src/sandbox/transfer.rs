//! A step's files on an engine that does not share this machine's filesystem (a remote engine;
//! `docker` decides which engines are): its inputs go there as one deterministic tar
//! ([`write_staging_tar`], through `store::tar`, the one writer of such tars), and the engine's
//! archive of its `/out` comes back, unpacked into the local output directory without trusting
//! a byte of it ([`unpack_output`]). What the step sees, and what the store reads afterwards,
//! is what a local engine's bind mounts give: the same files, modes and mtimes.
//!
//! Nothing here talks to the engine, and nothing here follows a link the archive holds.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags};

use super::{INPUTS_DIR, OUT_DIR};
use crate::store::tar::LayerTar;

/// The mode of `/out` when a step starts: writable by the step's unprivileged user, as
/// `create_out_dir` makes it on this machine.
pub const OUT_DIR_MODE: u32 = 0o777;

/// Writes the tar that, unpacked at `/` of a container whose input and output mounts are
/// volumes, fills them as a local engine's bind mounts would be: each input's checkout (its
/// target, `/inputs/<name>`, and `host_path`) with the modes it has there (files 0644 or 0755,
/// directories 0755) and symlinks as written, then an empty `/out` of [`OUT_DIR_MODE`]. Every
/// entry is owned by root and has mtime `mtime` (the record's `input_mtime`, the mtime every
/// checkout has); entries are sorted by name, so the same inputs always give the same bytes.
pub fn write_staging_tar(
    inputs: &[(String, PathBuf)],
    mtime: u64,
    out: impl Write,
) -> io::Result<()> {
    let mut tar = LayerTar::new(out, mtime);
    for (target, host_path) in inputs {
        let Some(name) = target
            .strip_prefix(INPUTS_DIR)
            .and_then(|rest| rest.strip_prefix('/'))
        else {
            return Err(io::Error::other(format!(
                "input mount `{target}` is not below {INPUTS_DIR}"
            )));
        };
        let base = format!("{}/{name}", INPUTS_DIR.trim_start_matches('/'));
        let walk = walkdir::WalkDir::new(host_path)
            .follow_links(false)
            .sort_by_file_name();
        for entry in walk {
            let entry = entry.map_err(io::Error::other)?;
            let relative = entry
                .path()
                .strip_prefix(host_path)
                .expect("walkdir yields paths below its root");
            let path = if relative.as_os_str().is_empty() {
                base.clone()
            } else {
                format!("{base}/{}", relative.display())
            };
            let metadata = entry.path().symlink_metadata()?;
            let mode = metadata.permissions().mode() & 0o777;
            let kind = metadata.file_type();
            if kind.is_dir() {
                tar.directory(format!("{path}/"), mode)?;
            } else if kind.is_symlink() {
                tar.symlink(&path, std::fs::read_link(entry.path())?, 0o777)?;
            } else if kind.is_file() {
                let file = File::open(entry.path())?;
                tar.file(&path, mode, metadata.len(), file)?;
            } else {
                return Err(io::Error::other(format!(
                    "`{}` in an input checkout is neither a file, a directory nor a symlink",
                    entry.path().display()
                )));
            }
        }
    }
    tar.directory(
        format!("{}/", OUT_DIR.trim_start_matches('/')),
        OUT_DIR_MODE,
    )?;
    let (mut out, _digest, _size) = tar.finish()?;
    out.flush()
}

/// Why an engine's archive of `/out` was not unpacked.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// Its files hold more than `limit` bytes (counted as the store counts a local `/out`).
    #[error("its files hold more than {limit} bytes")]
    TooLarge { limit: u64 },
    /// An entry the store could not hold as a local `/out` would give it, or that would land
    /// outside the output directory.
    #[error("`{path}` {problem}")]
    Unsafe { path: String, problem: String },
    #[error("the engine's archive of /out cannot be read: {0}")]
    Archive(io::Error),
    #[error("{action} `{path}`: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

/// Unpacks `archive`, the engine's archive of `/out` (every entry named `out` or `out/…`), into
/// `dest`, an existing empty directory of sealroom's own: directories, regular files (their
/// permission bits kept, at least readable and writable by sealroom), symlinks (as written,
/// never followed: every path is opened below `dest` by descriptor, one component at a time,
/// without following links), hard links to a file unpacked before (as hard links) and fifos
/// (which the store then refuses, as it refuses them in a local `/out`). Anything else, a path
/// with `..` or outside `out/`, an entry listed twice, or more than `limit` bytes of files (each
/// link to a file counted again, as reading a local `/out` counts it) stops the unpacking with an
/// error; what was unpacked by then is the caller's to remove.
pub fn unpack_output(archive: impl Read, dest: &Path, limit: u64) -> Result<(), UnpackError> {
    let root_name = OUT_DIR.trim_start_matches('/');
    let root = rustix::fs::openat(CWD, dest, DIRECTORY_FLAGS, Mode::empty()).map_err(|error| {
        UnpackError::Io {
            action: "opening",
            path: dest.to_path_buf(),
            source: error.into(),
        }
    })?;
    let mut archive = tar::Archive::new(archive);
    let mut written: u64 = 0;
    for entry in archive.entries().map_err(UnpackError::Archive)? {
        let mut entry = entry.map_err(UnpackError::Archive)?;
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader
        ) {
            continue;
        }
        let name = utf8(&entry.path_bytes(), "has a name that is not UTF-8")?;
        let Some(relative) = below_root(&name, root_name)? else {
            if kind != tar::EntryType::Directory {
                return Err(unsafe_entry(&name, "is not a directory"));
            }
            continue;
        };
        let (parent, file_name) = open_parent(&root, &relative, dest)?;
        let mode = entry.header().mode().unwrap_or(0o644) & 0o777;
        match kind {
            tar::EntryType::Directory => {
                rustix::fs::mkdirat(&parent, file_name, Mode::from_raw_mode(mode | 0o700))
                    .map_err(|error| not_made(error, "creating", &relative, dest))?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if written.saturating_add(entry.size()) > limit {
                    return Err(UnpackError::TooLarge { limit });
                }
                let fd = rustix::fs::openat(
                    &parent,
                    file_name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(|error| not_made(error, "creating", &relative, dest))?;
                let mut file = File::from(fd);
                let copied = io::copy(
                    &mut (&mut entry).take((limit - written).saturating_add(1)),
                    &mut file,
                )
                .map_err(UnpackError::Archive)?;
                written += copied;
                if written > limit {
                    return Err(UnpackError::TooLarge { limit });
                }
                file.set_permissions(std::fs::Permissions::from_mode(mode | 0o600))
                    .map_err(|source| UnpackError::Io {
                        action: "setting the mode of",
                        path: dest.join(&relative),
                        source,
                    })?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| unsafe_entry(&relative, "is a symlink without a target"))?;
                let target = utf8(&target, "is a symlink whose target is not UTF-8")?;
                rustix::fs::symlinkat(target.as_str(), &parent, file_name)
                    .map_err(|error| not_made(error, "creating", &relative, dest))?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| unsafe_entry(&relative, "is a hard link without a target"))?;
                let target = utf8(&target, "is a hard link whose target is not UTF-8")?;
                let outside = || {
                    unsafe_entry(
                        &relative,
                        &format!("is a hard link to `{target}`, which is not a file below /out"),
                    )
                };
                let Some(target) = below_root(&target, root_name).map_err(|_| outside())? else {
                    return Err(outside());
                };
                let (source_parent, source_name) = open_parent(&root, &target, dest)?;
                let stat =
                    rustix::fs::statat(&source_parent, source_name, AtFlags::SYMLINK_NOFOLLOW)
                        .map_err(|_| {
                            unsafe_entry(
                                &relative,
                                &format!(
                                    "is a hard link to `{target}`, which comes later or not at all"
                                ),
                            )
                        })?;
                if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
                    return Err(unsafe_entry(
                        &relative,
                        &format!("is a hard link to `{target}`, which is not a regular file"),
                    ));
                }
                written = written.saturating_add(stat.st_size as u64);
                if written > limit {
                    return Err(UnpackError::TooLarge { limit });
                }
                rustix::fs::linkat(
                    &source_parent,
                    source_name,
                    &parent,
                    file_name,
                    AtFlags::empty(),
                )
                .map_err(|error| not_made(error, "linking", &relative, dest))?;
            }
            tar::EntryType::Fifo => {
                rustix::fs::mknodat(
                    &parent,
                    file_name,
                    FileType::Fifo,
                    Mode::from_raw_mode(mode | 0o600),
                    0,
                )
                .map_err(|error| not_made(error, "creating", &relative, dest))?;
            }
            tar::EntryType::Char => return Err(unsafe_entry(&relative, "is a character device")),
            tar::EntryType::Block => return Err(unsafe_entry(&relative, "is a block device")),
            other => {
                return Err(unsafe_entry(
                    &relative,
                    &format!("is an archive entry of type {other:?}"),
                ));
            }
        }
    }
    Ok(())
}

const DIRECTORY_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

fn unsafe_entry(path: &str, problem: &str) -> UnpackError {
    UnpackError::Unsafe {
        path: path.to_string(),
        problem: problem.to_string(),
    }
}

fn utf8(bytes: &[u8], problem: &str) -> Result<String, UnpackError> {
    String::from_utf8(bytes.to_vec())
        .map_err(|_| unsafe_entry(&String::from_utf8_lossy(bytes), problem))
}

/// `name` (an archive entry's name) below `out/`, without a trailing `/`: `None` for `out`
/// itself. Anything else (an absolute path, another top directory, `..`, `.`, an empty
/// component) is unsafe.
fn below_root(name: &str, root_name: &str) -> Result<Option<String>, UnpackError> {
    let trimmed = name.trim_end_matches('/');
    if trimmed == root_name {
        return Ok(None);
    }
    let Some(relative) = trimmed
        .strip_prefix(root_name)
        .and_then(|rest| rest.strip_prefix('/'))
    else {
        return Err(unsafe_entry(name, "is not a path below /out"));
    };
    if relative
        .split('/')
        .any(|component| component.is_empty() || component == "." || component == "..")
    {
        return Err(unsafe_entry(name, "is not a plain path below /out"));
    }
    Ok(Some(relative.to_string()))
}

/// The directory that holds `relative` (opened from `root` one component at a time, never
/// through a link), and the last component's name.
fn open_parent<'a>(
    root: &OwnedFd,
    relative: &'a str,
    dest: &Path,
) -> Result<(OwnedFd, &'a str), UnpackError> {
    let (parents, file_name) = match relative.rsplit_once('/') {
        Some((parents, file_name)) => (Some(parents), file_name),
        None => (None, relative),
    };
    let mut current = rustix::io::dup(root).map_err(|error| UnpackError::Io {
        action: "opening",
        path: dest.to_path_buf(),
        source: error.into(),
    })?;
    for component in parents.into_iter().flat_map(|parents| parents.split('/')) {
        current = rustix::fs::openat(&current, component, DIRECTORY_FLAGS, Mode::empty()).map_err(
            |_| {
                unsafe_entry(
                    relative,
                    &format!(
                        "lies below `{component}`, which is not a directory unpacked before it"
                    ),
                )
            },
        )?;
    }
    Ok((current, file_name))
}

/// Why an entry could not be made: its name is taken (`EEXIST`: the archive lists a path
/// twice), or the error itself.
fn not_made(
    error: rustix::io::Errno,
    action: &'static str,
    relative: &str,
    dest: &Path,
) -> UnpackError {
    if error == rustix::io::Errno::EXIST {
        unsafe_entry(relative, "is listed twice")
    } else {
        UnpackError::Io {
            action,
            path: dest.join(relative),
            source: error.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An archive of `/out` as the engine sends it, from `(name, kind)` entries. Names and
    /// link targets are written as they are (the tar crate would refuse `..` and `/`), as a
    /// hostile engine could send them.
    fn archive(entries: &[(&str, Kind)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, kind) in entries {
            let mut header = tar::Header::new_old();
            header.set_mtime(1);
            header.set_size(0);
            let raw = |field: &mut [u8], value: &str| {
                field.fill(0);
                field[..value.len()].copy_from_slice(value.as_bytes());
            };
            raw(&mut header.as_old_mut().name, name);
            let data: &[u8] = match kind {
                Kind::Dir => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_mode(0o755);
                    &[]
                }
                Kind::File(mode, bytes) => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_mode(*mode);
                    header.set_size(bytes.len() as u64);
                    bytes
                }
                Kind::Symlink(target) | Kind::Hardlink(target) => {
                    header.set_entry_type(if matches!(kind, Kind::Symlink(_)) {
                        tar::EntryType::Symlink
                    } else {
                        tar::EntryType::Link
                    });
                    header.set_mode(0o777);
                    raw(&mut header.as_old_mut().linkname, target);
                    &[]
                }
                Kind::Char => {
                    header.set_entry_type(tar::EntryType::Char);
                    header.set_mode(0o644);
                    &[]
                }
            };
            header.set_cksum();
            builder.append(&header, data).unwrap();
        }
        builder.into_inner().unwrap()
    }

    enum Kind {
        Dir,
        File(u32, &'static [u8]),
        Symlink(&'static str),
        Hardlink(&'static str),
        Char,
    }

    fn unpacked(
        entries: &[(&str, Kind)],
        limit: u64,
    ) -> (tempfile::TempDir, Result<(), UnpackError>) {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out");
        std::fs::create_dir(&dest).unwrap();
        let result = unpack_output(archive(entries).as_slice(), &dest, limit);
        (dir, result)
    }

    #[test]
    fn an_archive_of_out_unpacks_with_its_modes_links_and_hard_links() {
        let (dir, result) = unpacked(
            &[
                ("out/", Kind::Dir),
                ("out/bin/", Kind::Dir),
                ("out/bin/tool", Kind::File(0o755, b"#!/bin/sh\n")),
                ("out/data.txt", Kind::File(0o644, b"data\n")),
                ("out/same.txt", Kind::Hardlink("out/data.txt")),
                ("out/link", Kind::Symlink("/etc/passwd")),
            ],
            1024,
        );
        result.unwrap();
        let out = dir.path().join("out");
        let mode = |path: &str| {
            std::fs::symlink_metadata(out.join(path))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode("bin/tool"), 0o755);
        assert_eq!(mode("data.txt"), 0o644);
        assert_eq!(std::fs::read(out.join("same.txt")).unwrap(), b"data\n");
        assert_eq!(
            std::fs::read_link(out.join("link")).unwrap(),
            Path::new("/etc/passwd"),
            "a symlink is kept as written, never followed"
        );
    }

    #[test]
    fn nothing_lands_outside_out() {
        let outside = |problem: &str, entries: &[(&str, Kind)]| {
            let (dir, result) = unpacked(entries, 1024);
            let error = result.unwrap_err();
            assert!(
                matches!(&error, UnpackError::Unsafe { problem: found, .. } if found.contains(problem)),
                "{error}"
            );
            assert!(!dir.path().join("escaped").exists());
            error.to_string()
        };
        outside(
            "is not a plain path below /out",
            &[("out/../escaped", Kind::File(0o644, b"x"))],
        );
        outside(
            "is not a path below /out",
            &[("/escaped", Kind::File(0o644, b"x"))],
        );
        outside(
            "is not a path below /out",
            &[("other/escaped", Kind::File(0o644, b"x"))],
        );
        // A symlink to a directory outside, then a file through it: the link is never followed.
        let text = outside(
            "which is not a directory unpacked before it",
            &[
                ("out/", Kind::Dir),
                ("out/up", Kind::Symlink("..")),
                ("out/up/escaped", Kind::File(0o644, b"x")),
            ],
        );
        assert!(text.contains("`up/escaped` lies below `up`"), "{text}");
        // A file written over a symlink is refused rather than written through it.
        outside(
            "is listed twice",
            &[
                ("out/", Kind::Dir),
                ("out/escaped", Kind::Symlink("../escaped")),
                ("out/escaped", Kind::File(0o644, b"x")),
            ],
        );
        outside(
            "is a hard link to `../escaped`",
            &[("out/", Kind::Dir), ("out/h", Kind::Hardlink("../escaped"))],
        );
        outside(
            "which comes later or not at all",
            &[
                ("out/", Kind::Dir),
                ("out/h", Kind::Hardlink("out/missing")),
            ],
        );
        outside(
            "is a character device",
            &[("out/", Kind::Dir), ("out/tty", Kind::Char)],
        );
    }

    #[test]
    fn the_output_limit_holds_while_unpacking_links_counted_again() {
        let (_dir, result) = unpacked(
            &[
                ("out/", Kind::Dir),
                ("out/big", Kind::File(0o644, &[7u8; 100])),
            ],
            99,
        );
        assert!(matches!(result, Err(UnpackError::TooLarge { limit: 99 })));
        let (_dir, result) = unpacked(
            &[
                ("out/", Kind::Dir),
                ("out/big", Kind::File(0o644, &[7u8; 100])),
            ],
            100,
        );
        result.unwrap();
        let (_dir, result) = unpacked(
            &[
                ("out/", Kind::Dir),
                ("out/a", Kind::File(0o644, &[7u8; 60])),
                ("out/b", Kind::Hardlink("out/a")),
            ],
            100,
        );
        assert!(matches!(result, Err(UnpackError::TooLarge { limit: 100 })));
    }

    #[test]
    fn the_staging_tar_lays_out_each_checkout_and_an_open_out() {
        let dir = tempfile::tempdir().unwrap();
        let checkout = dir.path().join("checkout");
        std::fs::create_dir_all(checkout.join("bin")).unwrap();
        std::fs::write(checkout.join("bin/run"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(
            checkout.join("bin/run"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::fs::write(checkout.join("a.txt"), "a\n").unwrap();
        std::fs::set_permissions(
            checkout.join("a.txt"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        std::os::unix::fs::symlink("a.txt", checkout.join("link")).unwrap();
        let inputs = [("/inputs/src".to_string(), checkout)];
        let mut first = Vec::new();
        write_staging_tar(&inputs, 42, &mut first).unwrap();
        let mut second = Vec::new();
        write_staging_tar(&inputs, 42, &mut second).unwrap();
        assert_eq!(first, second, "the same inputs give the same bytes");
        let mut archive = tar::Archive::new(first.as_slice());
        let listed: Vec<(String, u32, u64, u64)> = archive
            .entries()
            .unwrap()
            .map(|entry| {
                let entry = entry.unwrap();
                let header = entry.header();
                (
                    entry.path().unwrap().display().to_string(),
                    header.mode().unwrap(),
                    header.mtime().unwrap(),
                    header.uid().unwrap(),
                )
            })
            .collect();
        let want = |path: &str, mode: u32| (path.to_string(), mode, 42, 0);
        assert_eq!(
            listed,
            [
                want("inputs/src/", 0o755),
                want("inputs/src/a.txt", 0o644),
                want("inputs/src/bin/", 0o755),
                want("inputs/src/bin/run", 0o755),
                want("inputs/src/link", 0o777),
                want("out/", OUT_DIR_MODE),
            ]
        );
        let error = write_staging_tar(
            &[("/elsewhere".to_string(), dir.path().into())],
            0,
            Vec::new(),
        )
        .unwrap_err();
        assert!(error.to_string().contains("not below /inputs"), "{error}");
    }
}
