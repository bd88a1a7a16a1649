//! Unpacking: roundtrips for every format, strip_components, and every unsafe entry refused
//! with its message, leaving nothing behind.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sealroom::ExitCode;
use sealroom::error::Failure;
use sealroom::fetch::{ArchiveFormat, FetchError, unpack};

/// One tar entry, written with raw header fields so that hostile names and link targets (which
/// `tar::Builder` refuses to produce) can be tested too.
struct TarEntry<'a> {
    name: &'a str,
    kind: tar::EntryType,
    mode: u32,
    data: &'a [u8],
    link: Option<&'a str>,
}

fn file<'a>(name: &'a str, mode: u32, data: &'a [u8]) -> TarEntry<'a> {
    TarEntry {
        name,
        kind: tar::EntryType::Regular,
        mode,
        data,
        link: None,
    }
}

fn dir(name: &str) -> TarEntry<'_> {
    TarEntry {
        name,
        kind: tar::EntryType::Directory,
        mode: 0o755,
        data: b"",
        link: None,
    }
}

fn link<'a>(name: &'a str, kind: tar::EntryType, target: &'a str) -> TarEntry<'a> {
    TarEntry {
        name,
        kind,
        mode: 0o777,
        data: b"",
        link: Some(target),
    }
}

fn special(name: &str, kind: tar::EntryType) -> TarEntry<'_> {
    TarEntry {
        name,
        kind,
        mode: 0o644,
        data: b"",
        link: None,
    }
}

fn tar_bytes(entries: &[TarEntry]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        {
            let gnu = header.as_gnu_mut().unwrap();
            gnu.name[..entry.name.len()].copy_from_slice(entry.name.as_bytes());
            if let Some(target) = entry.link {
                gnu.linkname[..target.len()].copy_from_slice(target.as_bytes());
            }
        }
        header.set_entry_type(entry.kind);
        header.set_mode(entry.mode);
        header.set_size(entry.data.len() as u64);
        header.set_mtime(0);
        header.set_cksum();
        builder.append(&header, entry.data).unwrap();
    }
    builder.into_inner().unwrap()
}

fn compress(format: ArchiveFormat, tar: Vec<u8>) -> Vec<u8> {
    match format {
        ArchiveFormat::Tar => tar,
        ArchiveFormat::TarGz => {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(&tar).unwrap();
            encoder.finish().unwrap()
        }
        ArchiveFormat::TarXz => {
            let mut encoder = liblzma::write::XzEncoder::new(Vec::new(), 6);
            encoder.write_all(&tar).unwrap();
            encoder.finish().unwrap()
        }
        ArchiveFormat::TarBz2 => {
            let mut encoder =
                bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
            encoder.write_all(&tar).unwrap();
            encoder.finish().unwrap()
        }
        ArchiveFormat::Zip => panic!("zip archives are built by zip_bytes"),
    }
}

enum ZipEntry<'a> {
    File(&'a str, u32, &'a [u8]),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
}

fn zip_bytes(entries: &[ZipEntry]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    for entry in entries {
        match entry {
            ZipEntry::File(name, mode, data) => {
                writer
                    .start_file(*name, options.unix_permissions(*mode))
                    .unwrap();
                writer.write_all(data).unwrap();
            }
            ZipEntry::Dir(name) => writer.add_directory(*name, options).unwrap(),
            ZipEntry::Symlink(name, target) => writer.add_symlink(*name, *target, options).unwrap(),
        }
    }
    writer.finish().unwrap().into_inner()
}

/// A work dir with the archive in it and an empty `out/` where `out/tree` is unpacked, so a
/// test can check that nothing at all was left in `out/` after an error.
struct Work {
    _dir: tempfile::TempDir,
    archive: PathBuf,
    out: PathBuf,
    dest: PathBuf,
}

fn work(archive_name: &str, bytes: &[u8]) -> Work {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join(archive_name);
    fs::write(&archive, bytes).unwrap();
    let out = dir.path().join("out");
    fs::create_dir(&out).unwrap();
    let dest = out.join("tree");
    Work {
        _dir: dir,
        archive,
        out,
        dest,
    }
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Unpacks a hostile tar and returns the error, after checking that nothing was left behind.
fn refused_tar(entries: &[TarEntry], strip_components: usize) -> FetchError {
    let work = work("bad.tar", &tar_bytes(entries));
    let err = unpack(
        &work.archive,
        ArchiveFormat::Tar,
        strip_components,
        &work.dest,
    )
    .unwrap_err();
    assert_eq!(err.exit_code(), ExitCode::BadInput);
    assert_eq!(
        fs::read_dir(&work.out).unwrap().count(),
        0,
        "nothing may be left after `{err}`"
    );
    err
}

fn refused_zip(entries: &[ZipEntry]) -> FetchError {
    let work = work("bad.zip", &zip_bytes(entries));
    let err = unpack(&work.archive, ArchiveFormat::Zip, 0, &work.dest).unwrap_err();
    assert_eq!(
        fs::read_dir(&work.out).unwrap().count(),
        0,
        "nothing may be left after `{err}`"
    );
    err
}

fn sample_tar() -> Vec<u8> {
    tar_bytes(&[
        dir("pkg/"),
        dir("pkg/bin/"),
        file("pkg/bin/tool", 0o755, b"#!/bin/sh\necho hi\n"),
        file("pkg/README", 0o644, b"read me"),
        file("pkg/src/deep/nested.c", 0o600, b"int main;"),
        link("pkg/bin/alias", tar::EntryType::Symlink, "tool"),
        link("pkg/docs", tar::EntryType::Symlink, "src/deep"),
        link("pkg/README.copy", tar::EntryType::Link, "pkg/README"),
    ])
}

fn check_sample(root: &Path) {
    assert_eq!(
        fs::read(root.join("pkg/bin/tool")).unwrap(),
        b"#!/bin/sh\necho hi\n"
    );
    assert_eq!(mode(&root.join("pkg/bin/tool")), 0o755);
    assert_eq!(mode(&root.join("pkg/README")), 0o644);
    assert_eq!(mode(&root.join("pkg/src/deep/nested.c")), 0o600);
    assert_eq!(
        fs::read_link(root.join("pkg/bin/alias")).unwrap(),
        Path::new("tool")
    );
    assert_eq!(
        fs::read(root.join("pkg/docs/nested.c")).unwrap(),
        b"int main;"
    );
    assert_eq!(fs::read(root.join("pkg/README.copy")).unwrap(), b"read me");
}

#[test]
fn tar_formats_roundtrip() {
    for format in [
        ArchiveFormat::Tar,
        ArchiveFormat::TarGz,
        ArchiveFormat::TarXz,
        ArchiveFormat::TarBz2,
    ] {
        let bytes = compress(format, sample_tar());
        let name = format!("sample.{format}");
        let work = work(&name, &bytes);
        assert_eq!(
            ArchiveFormat::detect_file(&work.archive, "download").unwrap(),
            format
        );
        unpack(&work.archive, format, 0, &work.dest)
            .unwrap_or_else(|err| panic!("{format}: {err}"));
        check_sample(&work.dest);
        assert_eq!(mode(&work.dest), 0o755);
        let names: Vec<_> = fs::read_dir(&work.out)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["tree"], "no temp dir left beside the result");
    }
}

#[test]
fn zip_roundtrips_with_modes_and_symlinks() {
    let bytes = zip_bytes(&[
        ZipEntry::Dir("pkg/"),
        ZipEntry::File("pkg/bin/tool", 0o755, b"#!/bin/sh\n"),
        ZipEntry::File("pkg/README", 0o644, b"read me"),
        ZipEntry::Symlink("pkg/bin/alias", "tool"),
    ]);
    let work = work("sample.zip", &bytes);
    assert_eq!(
        ArchiveFormat::detect_file(&work.archive, "x").unwrap(),
        ArchiveFormat::Zip
    );
    unpack(&work.archive, ArchiveFormat::Zip, 0, &work.dest).unwrap();
    assert_eq!(
        fs::read(work.dest.join("pkg/bin/tool")).unwrap(),
        b"#!/bin/sh\n"
    );
    assert_eq!(mode(&work.dest.join("pkg/bin/tool")), 0o755);
    assert_eq!(mode(&work.dest.join("pkg/README")), 0o644);
    assert_eq!(
        fs::read_link(work.dest.join("pkg/bin/alias")).unwrap(),
        Path::new("tool")
    );
}

#[test]
fn strip_components_drops_leading_directories() {
    let work = work("sample.tar", &sample_tar());
    unpack(&work.archive, ArchiveFormat::Tar, 1, &work.dest).unwrap();
    assert_eq!(
        fs::read(work.dest.join("bin/tool")).unwrap(),
        b"#!/bin/sh\necho hi\n"
    );
    // The hard link target is stripped the same way.
    assert_eq!(fs::read(work.dest.join("README.copy")).unwrap(), b"read me");
    assert!(!work.dest.join("pkg").exists());

    let zip = zip_bytes(&[
        ZipEntry::Dir("top/"),
        ZipEntry::File("top/a/b.txt", 0o644, b"b"),
    ]);
    let work = self::work("sample.zip", &zip);
    unpack(&work.archive, ArchiveFormat::Zip, 2, &work.dest).unwrap();
    assert_eq!(fs::read(work.dest.join("b.txt")).unwrap(), b"b");
}

#[test]
fn setuid_setgid_and_sticky_bits_are_dropped() {
    let work = work(
        "suid.tar",
        &tar_bytes(&[
            file("su", 0o4755, b"x"),
            file("sg", 0o2750, b"x"),
            TarEntry {
                mode: 0o1777,
                ..dir("shared/")
            },
        ]),
    );
    unpack(&work.archive, ArchiveFormat::Tar, 0, &work.dest).unwrap();
    assert_eq!(mode(&work.dest.join("su")), 0o755);
    assert_eq!(mode(&work.dest.join("sg")), 0o750);
    assert_eq!(mode(&work.dest.join("shared")), 0o777);

    let work = self::work(
        "suid.zip",
        &zip_bytes(&[ZipEntry::File("su", 0o4755, b"x")]),
    );
    unpack(&work.archive, ArchiveFormat::Zip, 0, &work.dest).unwrap();
    assert_eq!(mode(&work.dest.join("su")) & 0o7000, 0);
}

#[test]
fn absolute_paths_are_refused() {
    let err = refused_tar(&[file("/etc/passwd", 0o644, b"root::0:0")], 0);
    assert_eq!(
        err.to_string(),
        "archive entry `/etc/passwd` has an absolute path; archive paths must be relative"
    );
}

#[test]
fn parent_components_are_refused() {
    let err = refused_tar(
        &[
            file("ok", 0o644, b"fine"),
            file("../../etc/passwd", 0o644, b"x"),
        ],
        0,
    );
    assert_eq!(
        err.to_string(),
        "archive entry `../../etc/passwd` has a `..` component and would escape the destination"
    );
    // Stripping does not make `..` acceptable.
    let err = refused_tar(&[file("pkg/../../x", 0o644, b"x")], 1);
    assert!(matches!(err, FetchError::UnsafeEntry { .. }));
}

#[test]
fn zip_slip_is_refused() {
    let err = refused_zip(&[ZipEntry::File("../evil.sh", 0o755, b"x")]);
    assert_eq!(
        err.to_string(),
        "archive entry `../evil.sh` has a `..` component and would escape the destination"
    );
    let err = refused_zip(&[ZipEntry::Symlink("up", "../../etc")]);
    assert_eq!(
        err.to_string(),
        "archive entry `up` is a symlink to `../../etc`, which points outside the destination"
    );
}

#[test]
fn symlinks_out_of_the_tree_are_refused() {
    let err = refused_tar(
        &[link("a/b/up", tar::EntryType::Symlink, "../../../secret")],
        0,
    );
    assert_eq!(
        err.to_string(),
        "archive entry `a/b/up` is a symlink to `../../../secret`, which points outside the destination"
    );
    let err = refused_tar(&[link("tmp", tar::EntryType::Symlink, "/tmp")], 0);
    assert_eq!(
        err.to_string(),
        "archive entry `tmp` is a symlink to the absolute path `/tmp`; links must be relative"
    );
    // `x -> .` is inside, but `y -> x/..` would climb out through it.
    let err = refused_tar(
        &[
            link("x", tar::EntryType::Symlink, "."),
            link("y", tar::EntryType::Symlink, "x/.."),
        ],
        0,
    );
    assert!(
        err.to_string().contains("which has `..` after a name"),
        "{err}"
    );
}

#[test]
fn nothing_is_written_through_a_symlink() {
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().to_str().unwrap().to_string();
    let err = refused_tar(
        &[
            link("a", tar::EntryType::Symlink, &target),
            file("a/x", 0o644, b"owned"),
        ],
        0,
    );
    assert!(
        err.to_string()
            .starts_with("archive entry `a` is a symlink to the absolute path"),
        "{err}"
    );
    assert!(!outside.path().join("x").exists());

    // Even a link that stays inside is never a way in for a later entry.
    let err = refused_tar(
        &[
            dir("sub/"),
            link("a", tar::EntryType::Symlink, "sub"),
            file("a/x", 0o644, b"x"),
        ],
        0,
    );
    assert_eq!(
        err.to_string(),
        "archive entry `a/x` would be written through the symlink `a` unpacked before it"
    );
    let err = refused_tar(&[link("a", tar::EntryType::Symlink, "sub"), dir("a/")], 0);
    assert_eq!(
        err.to_string(),
        "archive entry `a/` would replace the symlink `a` unpacked before it"
    );
}

#[test]
fn hard_links_must_name_a_file_unpacked_before() {
    let err = refused_tar(
        &[link("passwd", tar::EntryType::Link, "../../etc/passwd")],
        0,
    );
    assert_eq!(
        err.to_string(),
        "archive entry `passwd` is a hard link to `../../etc/passwd`, which has a `..` component and would escape the destination"
    );
    let err = refused_tar(&[link("shadow", tar::EntryType::Link, "/etc/shadow")], 0);
    assert!(
        err.to_string().contains("which has an absolute path"),
        "{err}"
    );
    let err = refused_tar(
        &[
            link("early", tar::EntryType::Link, "later"),
            file("later", 0o644, b"x"),
        ],
        0,
    );
    assert_eq!(
        err.to_string(),
        "archive entry `early` is a hard link to `later`, which is not a file unpacked before it"
    );
    // Through a symlink that points inside is still refused: links resolve through real dirs only.
    let err = refused_tar(
        &[
            file("d/f", 0o644, b"x"),
            link("l", tar::EntryType::Symlink, "d"),
            link("h", tar::EntryType::Link, "l/f"),
        ],
        0,
    );
    assert!(
        err.to_string().contains("is not a file unpacked before it"),
        "{err}"
    );
}

#[test]
fn devices_and_fifos_are_refused() {
    let err = refused_tar(&[special("dev/sda", tar::EntryType::Block)], 0);
    assert_eq!(
        err.to_string(),
        "archive entry `dev/sda` is a block device; devices are not unpacked"
    );
    let err = refused_tar(&[special("dev/null", tar::EntryType::Char)], 0);
    assert_eq!(
        err.to_string(),
        "archive entry `dev/null` is a character device; devices are not unpacked"
    );
    let err = refused_tar(&[special("pipe", tar::EntryType::Fifo)], 0);
    assert_eq!(
        err.to_string(),
        "archive entry `pipe` is a fifo; fifos are not unpacked"
    );
}

#[test]
fn a_corrupt_archive_is_a_clean_error() {
    let mut bytes = compress(ArchiveFormat::TarGz, sample_tar());
    bytes.truncate(bytes.len() / 2);
    let work = work("broken.tar.gz", &bytes);
    let err = unpack(&work.archive, ArchiveFormat::TarGz, 0, &work.dest).unwrap_err();
    assert!(matches!(err, FetchError::CorruptArchive { .. }), "{err}");
    assert!(
        err.to_string().starts_with("cannot read tar.gz archive `"),
        "{err}"
    );
    assert_eq!(fs::read_dir(&work.out).unwrap().count(), 0);
}

#[test]
fn the_destination_must_not_exist() {
    let work = work("sample.tar", &sample_tar());
    fs::create_dir(&work.dest).unwrap();
    fs::write(work.dest.join("keep"), b"mine").unwrap();
    let err = unpack(&work.archive, ArchiveFormat::Tar, 0, &work.dest).unwrap_err();
    assert!(matches!(err, FetchError::DestinationExists(_)));
    assert_eq!(fs::read(work.dest.join("keep")).unwrap(), b"mine");
}

/// Found by the archive_unpacker fuzz target: a legacy `.lzma` header (props, a 4 GiB
/// dictionary, an unknown size) made the xz decoder allocate 4 GiB. Only the `.xz` container is
/// accepted now, with a bounded decoder memory, so this is a clean "corrupt archive" error.
#[test]
fn a_legacy_lzma_header_asking_for_gigabytes_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("bomb.tar.xz");
    let mut bytes = vec![0x5d, 0xff, 0xff, 0xff, 0xff];
    bytes.extend([0xff; 8]);
    bytes.extend([0x00; 32]);
    fs::write(&archive, &bytes).unwrap();
    let dest = dir.path().join("dest");
    let error = unpack(&archive, ArchiveFormat::TarXz, 0, &dest).unwrap_err();
    assert!(
        matches!(error, FetchError::CorruptArchive { .. }),
        "{error}"
    );
    assert!(!dest.exists());
}
