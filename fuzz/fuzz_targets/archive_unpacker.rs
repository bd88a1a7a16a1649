//! The archive unpacker on hostile archives. Built only with `--features fetch`, because
//! `sealroom::fetch` (the unpacker in `src/fetch/unpack.rs`) is not on main yet; see README.md.
//!
//! Written against the planned API:
//! `unpack(archive: &Path, format: ArchiveFormat, strip_components: usize, dest: &Path)
//! -> Result<(), FetchError>`, with `ArchiveFormat::{Tar, TarGz, TarXz, TarBz2, Zip}`, where
//! `dest` must not exist yet.
//!
//! Inputs are either raw bytes in any of the five formats, or tar (or tar.gz) archives built
//! from entries whose names and link targets are written into the headers unchecked: absolute
//! paths, `..` chains and links that point at a sentinel directory beside the destination.
//!
//! Invariants: nothing panics; nothing outside `dest` changes; on an error `dest` does not exist
//! (nothing left behind); on success every symlink under `dest` stays inside it.
#![no_main]

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use sealroom::fetch::{ArchiveFormat, unpack};

#[derive(Arbitrary, Debug)]
enum Input {
    Raw {
        format: u8,
        strip_components: u8,
        bytes: Vec<u8>,
    },
    Tar {
        gzip: bool,
        strip_components: u8,
        entries: Vec<TarEntry>,
    },
}

#[derive(Arbitrary, Debug)]
struct TarEntry {
    path: EntryPath,
    kind: EntryKind,
    mode: u16,
}

#[derive(Arbitrary, Debug)]
enum EntryKind {
    File(Vec<u8>),
    Directory,
    Symlink(EntryPath),
    Hardlink(EntryPath),
    /// Any other tar type byte: devices, fifos, GNU and PAX extensions.
    Other(u8),
}

#[derive(Arbitrary, Debug)]
enum EntryPath {
    Text(String),
    /// `../` repeated, then `outside/` and a name.
    Climb(u8, String),
    /// The sentinel directory by its absolute path, then a name.
    AbsoluteOutside(String),
    Nested(String, String),
}

impl EntryPath {
    fn bytes(&self, outside: &Path) -> Vec<u8> {
        match self {
            EntryPath::Text(text) => text.clone().into_bytes(),
            EntryPath::Climb(levels, name) => {
                format!("{}outside/{name}", "../".repeat(usize::from(*levels % 8))).into_bytes()
            }
            EntryPath::AbsoluteOutside(name) => {
                format!("{}/{name}", outside.display()).into_bytes()
            }
            EntryPath::Nested(dir, name) => format!("{dir}/{name}").into_bytes(),
        }
    }
}

/// A tar whose names and link targets are written into the headers as they are (the `tar`
/// crate's own setters refuse `..` and absolute paths, which is exactly what we want to send).
fn build_tar(entries: &[TarEntry], outside: &Path) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries.iter().take(32) {
        let mut header = tar::Header::new_gnu();
        copy_field(&mut header.as_old_mut().name, &entry.path.bytes(outside));
        header.set_mode(u32::from(entry.mode) & 0o7777);
        header.set_mtime(0);
        let content: &[u8] = match &entry.kind {
            EntryKind::File(content) => {
                header.set_entry_type(tar::EntryType::Regular);
                content
            }
            EntryKind::Directory => {
                header.set_entry_type(tar::EntryType::Directory);
                &[]
            }
            EntryKind::Symlink(target) | EntryKind::Hardlink(target) => {
                header.set_entry_type(if matches!(entry.kind, EntryKind::Symlink(_)) {
                    tar::EntryType::Symlink
                } else {
                    tar::EntryType::Link
                });
                copy_field(&mut header.as_old_mut().linkname, &target.bytes(outside));
                &[]
            }
            EntryKind::Other(byte) => {
                header.set_entry_type(tar::EntryType::new(*byte));
                &[]
            }
        };
        header.set_size(content.len() as u64);
        header.set_cksum();
        builder
            .append(&header, content)
            .expect("appending to a Vec");
    }
    builder.into_inner().expect("finishing a tar in a Vec")
}

fn copy_field(field: &mut [u8], value: &[u8]) {
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
}

/// What a path holds, as far as the invariants care.
#[derive(Debug, PartialEq, Eq)]
enum Snapshot {
    File { mode: u32, content: Vec<u8> },
    Directory { mode: u32 },
    Symlink { target: PathBuf },
    Other { mode: u32 },
}

/// Everything under `root`, symlinks not followed, leaving out the paths in `skip`.
fn snapshot(root: &Path, skip: &[&Path]) -> BTreeMap<PathBuf, Snapshot> {
    let mut found = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for item in fs::read_dir(&dir).expect("listing a snapshot directory") {
            let path = item.expect("listing a snapshot directory").path();
            if skip.contains(&path.as_path()) {
                continue;
            }
            let metadata = fs::symlink_metadata(&path).expect("reading metadata");
            let mode = metadata.permissions().mode();
            let entry = if metadata.is_symlink() {
                Snapshot::Symlink {
                    target: fs::read_link(&path).expect("reading a symlink"),
                }
            } else if metadata.is_dir() {
                pending.push(path.clone());
                Snapshot::Directory { mode }
            } else if metadata.is_file() {
                Snapshot::File {
                    mode,
                    content: fs::read(&path).expect("reading a file"),
                }
            } else {
                Snapshot::Other { mode }
            };
            found.insert(path, entry);
        }
    }
    found
}

/// Whether the symlink at `link` (inside `root`) points inside `root`, resolving its target
/// lexically (`..` pops a segment; an absolute target must start with `root`).
fn stays_inside(root: &Path, link: &Path, target: &Path) -> bool {
    let mut resolved: Vec<Component> = if target.is_absolute() {
        Vec::new()
    } else {
        link.parent().unwrap_or(root).components().collect()
    };
    for component in target.components() {
        match component {
            Component::ParentDir => {
                resolved.pop();
            }
            Component::CurDir => {}
            other => resolved.push(other),
        }
    }
    resolved.iter().collect::<PathBuf>().starts_with(root)
}

fn format(byte: u8) -> ArchiveFormat {
    match byte % 5 {
        0 => ArchiveFormat::Tar,
        1 => ArchiveFormat::TarGz,
        2 => ArchiveFormat::TarXz,
        3 => ArchiveFormat::TarBz2,
        _ => ArchiveFormat::Zip,
    }
}

fuzz_target!(|input: Input| {
    let base = tempfile::Builder::new()
        .prefix("sealroom-fuzz-")
        .tempdir_in(if Path::new("/dev/shm").is_dir() {
            "/dev/shm"
        } else {
            "/tmp"
        })
        .expect("a temp dir");
    let base = base.path();
    let outside = base.join("outside");
    let archive = base.join("archive");
    let dest = base.join("dest");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("sentinel"), b"must not change").unwrap();

    let (bytes, format, strip_components) = match &input {
        Input::Raw {
            format: byte,
            strip_components,
            bytes,
        } => (bytes.clone(), format(*byte), *strip_components),
        Input::Tar {
            gzip,
            strip_components,
            entries,
        } => {
            let tar = build_tar(entries, &outside);
            if *gzip {
                let mut encoder =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                encoder.write_all(&tar).expect("gzip into a Vec");
                let gzipped = encoder.finish().expect("gzip into a Vec");
                (gzipped, ArchiveFormat::TarGz, *strip_components)
            } else {
                (tar, ArchiveFormat::Tar, *strip_components)
            }
        }
    };
    fs::write(&archive, &bytes).unwrap();
    let before = snapshot(base, &[&dest]);

    let result = unpack(&archive, format, usize::from(strip_components % 4), &dest);

    assert_eq!(
        before,
        snapshot(base, &[&dest]),
        "unpack wrote outside its destination"
    );
    match result {
        Err(error) => {
            let _ = error.to_string();
            assert!(
                fs::symlink_metadata(&dest).is_err(),
                "unpack failed ({error}) but left `{}` behind",
                dest.display()
            );
        }
        Ok(()) => {
            for (path, entry) in snapshot(&dest, &[]) {
                if let Snapshot::Symlink { target } = entry {
                    assert!(
                        stays_inside(&dest, &path, &target),
                        "unpacked a symlink that leaves the destination: {} -> {}",
                        path.display(),
                        target.display()
                    );
                }
            }
        }
    }
    let _ = sealroom::store::remove_tree_force(base);
});
