//! Bounded fetches, each test written as the attack it stops: downloads larger than their
//! limit (announced, chunked without end, close-delimited, a `file://` url), archives that
//! expand past it (a sparse tar entry, a gzip of zeros, a zip of zeros, many small files, hard
//! links), too many entries, too deep paths, an archive changed in the store, oversized
//! registry manifests and blobs longer than their descriptor. Every server is on 127.0.0.1 and
//! started by the test; every large file is sparse (`set_len`), never written zeros.

mod common;
#[path = "common/http.rs"]
mod http;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::{Reply, TestServer};
use sealroom::digest::BlobDigest;
use sealroom::fetch::{
    ArchiveFormat, Downloader, DownloaderOptions, FetchError, MAX_PATH_DEPTH, UnpackOptions,
    download_at_most, unpack_with,
};
use sealroom::registry::client::{Client, MAX_MANIFEST_BYTES};
use sealroom::store::Store;

const MIB: u64 = 1024 * 1024;
const IMAGE: &str =
    "sealroom/busybox@sha256:0000000000000000000000000000000000000000000000000000000000000000";

fn downloader() -> Downloader {
    Downloader::new(DownloaderOptions {
        connect_timeout: Duration::from_secs(10),
        read_timeout: Duration::from_secs(30),
        retries: 2,
        backoff_base: Duration::from_millis(10),
        progress: false,
        proxy_from_environment: false,
        ..DownloaderOptions::default()
    })
    .unwrap()
}

/// How [`raw_server`] frames its body.
#[derive(Clone, Copy)]
enum Framing {
    /// `Transfer-Encoding: chunked`: no length announced.
    Chunked,
    /// Neither a length nor chunks: the body ends when the connection closes.
    UntilClose,
}

/// A one-connection HTTP server that answers any request with `total` zero bytes in 64 KiB
/// writes, and counts the body bytes the client let it write (a client that stops reading and
/// closes makes the writes fail long before `total`: loopback buffers hold a few MiB).
fn raw_server(framing: Framing, total: u64) -> (String, std::thread::JoinHandle<u64>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let sent = Arc::new(AtomicU64::new(0));
    let handle = std::thread::spawn(move || {
        // A client trying HTTPS first (a loopback registry) sends a TLS ClientHello: that
        // connection is closed, as a plain-HTTP server fails the handshake, and the next taken.
        let mut stream = loop {
            let (mut stream, _) = listener.accept().unwrap();
            let mut first = [0u8; 1];
            if stream.read(&mut first).unwrap_or(0) == 1 && first[0].is_ascii_uppercase() {
                break stream;
            }
        };
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
            head.push(byte[0]);
        }
        let headers = match framing {
            Framing::Chunked => "Transfer-Encoding: chunked\r\n",
            Framing::UntilClose => "",
        };
        let reply = format!("HTTP/1.1 200 OK\r\n{headers}Connection: close\r\n\r\n");
        if stream.write_all(reply.as_bytes()).is_err() {
            return 0;
        }
        let zeros = vec![0u8; 64 * 1024];
        while sent.load(Ordering::SeqCst) < total {
            let frame = match framing {
                Framing::Chunked => {
                    let mut frame = format!("{:x}\r\n", zeros.len()).into_bytes();
                    frame.extend_from_slice(&zeros);
                    frame.extend_from_slice(b"\r\n");
                    frame
                }
                Framing::UntilClose => zeros.clone(),
            };
            if stream.write_all(&frame).is_err() {
                return sent.load(Ordering::SeqCst);
            }
            sent.fetch_add(zeros.len() as u64, Ordering::SeqCst);
        }
        if let Framing::Chunked = framing {
            let _ = stream.write_all(b"0\r\n\r\n");
        }
        sent.load(Ordering::SeqCst)
    });
    (format!("http://{address}/endless.img"), handle)
}

/// What the server wrote, waited for off the runtime: the client's connection task must go on
/// running to close the socket.
async fn joined(server: std::thread::JoinHandle<u64>) -> u64 {
    tokio::task::spawn_blocking(move || server.join().unwrap())
        .await
        .unwrap()
}

fn assert_over_limit(error: &FetchError, action: &str, limit: u64) {
    match error {
        FetchError::OverLimit {
            action: found,
            limit: found_limit,
            ..
        } => {
            assert_eq!(*found, action, "{error}");
            assert_eq!(*found_limit, limit, "{error}");
        }
        other => panic!("expected the {action} to stop at {limit} bytes, got: {other}"),
    }
}

// --- downloads ---

#[tokio::test]
async fn a_download_announcing_more_than_its_limit_is_refused_before_its_body() {
    let server = TestServer::start();
    // Announces 320 MiB; only 64 KiB are really there, so nothing large is ever in memory.
    server.route(
        "/disk.raw",
        [Reply::ok(vec![0u8; 64 * 1024]).declared_length(320 * MIB)],
    );
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("blob");

    let error = download_at_most(
        &downloader(),
        &server.url("/disk.raw"),
        None,
        Some(48 * MIB),
        &dest,
    )
    .await
    .unwrap_err();

    assert_over_limit(&error, "the download", 48 * MIB);
    assert!(
        error.to_string().contains("announces 335544320 bytes"),
        "{error}"
    );
    assert!(!dest.exists(), "nothing of the download is kept");
    assert_eq!(
        server.requests("/disk.raw"),
        1,
        "a limit is final, not retried"
    );
}

#[tokio::test]
async fn an_endless_chunked_body_is_cut_at_the_limit() {
    let (url, server) = raw_server(Framing::Chunked, 256 * MIB);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("blob");

    let error = download_at_most(&downloader(), &url, None, Some(MIB), &dest)
        .await
        .unwrap_err();

    assert_over_limit(&error, "the download", MIB);
    assert!(!dest.exists(), "nothing of the download is kept");
    let sent = joined(server).await;
    assert!(
        sent < 128 * MIB,
        "the client stopped reading at the limit, yet the server wrote {sent} bytes"
    );
}

#[tokio::test]
async fn a_body_without_length_is_cut_at_the_limit() {
    let (url, server) = raw_server(Framing::UntilClose, 256 * MIB);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("blob");

    let error = download_at_most(&downloader(), &url, None, Some(2 * MIB), &dest)
        .await
        .unwrap_err();

    assert_over_limit(&error, "the download", 2 * MIB);
    assert!(!dest.exists());
    let sent = joined(server).await;
    assert!(sent < 128 * MIB, "the server wrote {sent} bytes");
}

#[tokio::test]
async fn a_file_url_larger_than_the_limit_is_not_copied() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("disk.raw");
    fs::File::create(&source)
        .unwrap()
        .set_len(320 * MIB)
        .unwrap();
    let dest = dir.path().join("blob");
    let url = format!("file://{}", source.display());

    let error = download_at_most(&downloader(), &url, None, Some(48 * MIB), &dest)
        .await
        .unwrap_err();

    assert_over_limit(&error, "the download", 48 * MIB);
    assert!(!dest.exists());
}

#[tokio::test]
async fn a_download_at_its_limit_is_kept() {
    let server = TestServer::start();
    let bytes = vec![7u8; 100_000];
    server.route("/exact", [Reply::ok(bytes.clone())]);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("blob");
    let downloaded = download_at_most(
        &downloader(),
        &server.url("/exact"),
        Some(&BlobDigest::of(&bytes)),
        Some(100_000),
        &dest,
    )
    .await
    .unwrap();
    assert_eq!(downloaded.size, 100_000);
    assert_eq!(fs::read(&dest).unwrap(), bytes);
}

// --- archives ---

/// A sparse file of `size` bytes (no data written: it takes no disk).
fn sparse_file(path: &Path, size: u64) {
    fs::File::create(path).unwrap().set_len(size).unwrap();
}

/// A tar of one file `payload/zeros.img` of `size` bytes, read from a sparse file. With
/// `sparse`, the entry is a GNU sparse entry (a few hundred bytes for any size).
fn zeros_tar(dir: &Path, size: u64, sparse: bool) -> Vec<u8> {
    let source = dir.join("zeros-source.img");
    sparse_file(&source, size);
    let mut builder = tar::Builder::new(Vec::new());
    builder.sparse(sparse);
    builder
        .append_path_with_name(&source, "payload/zeros.img")
        .unwrap();
    fs::remove_file(&source).unwrap();
    builder.into_inner().unwrap()
}

struct Unpacked {
    dir: tempfile::TempDir,
    archive: PathBuf,
    dest: PathBuf,
}

impl Unpacked {
    fn new(name: &str, bytes: &[u8]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join(name);
        fs::write(&archive, bytes).unwrap();
        let dest = dir.path().join("out").join("tree");
        fs::create_dir(dir.path().join("out")).unwrap();
        Self { dir, archive, dest }
    }

    fn run(&self, format: ArchiveFormat, options: &UnpackOptions) -> Result<(), FetchError> {
        unpack_with(&self.archive, format, options, &self.dest)
    }

    /// Nothing at all in the destination's parent: no tree, no temp directory.
    fn assert_nothing_left(&self) {
        let left: Vec<_> = fs::read_dir(self.dir.path().join("out"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }
}

fn limited(max_bytes: u64) -> UnpackOptions {
    UnpackOptions {
        max_bytes,
        ..UnpackOptions::new(0)
    }
}

#[test]
fn a_sparse_tar_entry_counts_by_its_full_size() {
    let scratch = tempfile::tempdir().unwrap();
    let tar = zeros_tar(scratch.path(), 2 * 1024 * MIB, true);
    assert!(
        tar.len() < 64 * 1024,
        "the sparse tar is {} bytes",
        tar.len()
    );
    let work = Unpacked::new("bomb.tar", &tar);

    let error = work
        .run(ArchiveFormat::Tar, &limited(256 * MIB))
        .unwrap_err();

    assert_over_limit(&error, "unpacking", 256 * MIB);
    assert!(
        error
            .to_string()
            .contains("entry `payload/zeros.img` declares 2147483648 bytes"),
        "{error}"
    );
    work.assert_nothing_left();
}

#[test]
fn a_gzip_of_zeros_stops_at_the_limit() {
    let scratch = tempfile::tempdir().unwrap();
    let tar = zeros_tar(scratch.path(), 16 * MIB, false);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    assert!(gz.len() < 512 * 1024, "the gzip is {} bytes", gz.len());
    let work = Unpacked::new("bomb.tar.gz", &gz);

    let error = work.run(ArchiveFormat::TarGz, &limited(MIB)).unwrap_err();

    assert_over_limit(&error, "unpacking", MIB);
    work.assert_nothing_left();
}

#[test]
fn a_zip_of_zeros_stops_at_the_limit() {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(1));
    zip.start_file("zeros.img", options).unwrap();
    let zeros = vec![0u8; 1024 * 1024];
    for _ in 0..16 {
        zip.write_all(&zeros).unwrap();
    }
    let bytes = zip.finish().unwrap().into_inner();
    assert!(bytes.len() < 512 * 1024, "the zip is {} bytes", bytes.len());
    let work = Unpacked::new("bomb.zip", &bytes);

    let error = work.run(ArchiveFormat::Zip, &limited(MIB)).unwrap_err();

    assert_over_limit(&error, "unpacking", MIB);
    work.assert_nothing_left();
}

/// A tar of the given entries, all regular files of `size` sparse bytes, or hard links.
fn tar_of(entries: &[(&str, u64, Option<&str>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, size, link) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        header.set_mtime(0);
        match link {
            Some(target) => {
                header.set_entry_type(tar::EntryType::Link);
                header.set_size(0);
                builder.append_link(&mut header, name, target).unwrap();
            }
            None => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(*size);
                builder
                    .append_data(&mut header, name, std::io::repeat(0).take(*size))
                    .unwrap();
            }
        }
    }
    builder.into_inner().unwrap()
}

#[test]
fn many_files_each_under_the_limit_stop_when_their_sum_passes_it() {
    let names: Vec<String> = (0..5).map(|i| format!("part-{i}")).collect();
    let entries: Vec<(&str, u64, Option<&str>)> = names
        .iter()
        .map(|name| (name.as_str(), 300 * 1024, None))
        .collect();
    let work = Unpacked::new("parts.tar", &tar_of(&entries));

    let error = work.run(ArchiveFormat::Tar, &limited(MIB)).unwrap_err();

    assert_over_limit(&error, "unpacking", MIB);
    assert!(error.to_string().contains("entry `part-3`"), "{error}");
    work.assert_nothing_left();
}

#[test]
fn hard_links_count_as_the_file_they_name() {
    let mut entries = vec![("big", 400 * 1024, None)];
    entries.extend([
        ("link-1", 0, Some("big")),
        ("link-2", 0, Some("big")),
        ("link-3", 0, Some("big")),
    ]);
    let work = Unpacked::new("links.tar", &tar_of(&entries));

    let error = work.run(ArchiveFormat::Tar, &limited(MIB)).unwrap_err();

    assert_over_limit(&error, "unpacking", MIB);
    assert!(
        error.to_string().contains("entry `link-2` links to"),
        "{error}"
    );
    work.assert_nothing_left();
}

#[test]
fn an_archive_with_too_many_entries_is_refused() {
    let names: Vec<String> = (0..11).map(|i| format!("f{i}")).collect();
    let entries: Vec<(&str, u64, Option<&str>)> =
        names.iter().map(|name| (name.as_str(), 0, None)).collect();
    let work = Unpacked::new("many.tar", &tar_of(&entries));
    let options = UnpackOptions {
        max_entries: 10,
        ..UnpackOptions::new(0)
    };

    let error = work.run(ArchiveFormat::Tar, &options).unwrap_err();

    assert_eq!(
        error.to_string(),
        "archive entry `f10` is entry number 11 of the archive; an archive may hold at most 10 entries"
    );
    work.assert_nothing_left();
}

/// A tar holding one empty regular file at `path` (a GNU long name carries a path past the 100
/// bytes of the header).
fn tar_of_one_empty_file(path: &str) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(0o644);
    header.set_size(0);
    builder
        .append_data(&mut header, path, std::io::empty())
        .unwrap();
    builder.into_inner().unwrap()
}

#[test]
fn a_path_deeper_than_the_cap_is_refused() {
    let deep = vec!["d"; MAX_PATH_DEPTH + 1].join("/");
    let work = Unpacked::new("deep.tar", &tar_of_one_empty_file(&deep));

    let error = work
        .run(ArchiveFormat::Tar, &UnpackOptions::new(0))
        .unwrap_err();

    assert!(
        matches!(error, FetchError::UnsafeEntry { .. })
            && error.to_string().contains(&format!(
                "has a path of {} components; paths may be at most {MAX_PATH_DEPTH} deep",
                MAX_PATH_DEPTH + 1
            )),
        "{error}"
    );
    work.assert_nothing_left();
}

#[test]
fn a_path_longer_than_path_max_is_refused() {
    let long = vec!["n".repeat(200); 25].join("/"); // 5024 bytes in 25 components
    let work = Unpacked::new("long.tar", &tar_of_one_empty_file(&long));

    let error = work
        .run(ArchiveFormat::Tar, &UnpackOptions::new(0))
        .unwrap_err();

    assert!(
        matches!(error, FetchError::UnsafeEntry { .. })
            && error
                .to_string()
                .contains("has a path of 5024 bytes; paths may be at most 4096 bytes"),
        "{error}"
    );
    work.assert_nothing_left();
}

#[test]
fn an_archive_that_differs_from_its_digest_is_not_unpacked() {
    let good = tar_of(&[("good.txt", 10, None)]);
    let evil = tar_of(&[("evil.txt", 10, None)]);
    for (format, name, good, evil) in [
        (ArchiveFormat::Tar, "a.tar", good.clone(), evil.clone()),
        (
            ArchiveFormat::Zip,
            "a.zip",
            zip_of("good.txt"),
            zip_of("evil.txt"),
        ),
    ] {
        let work = Unpacked::new(name, &evil);
        let options = UnpackOptions {
            expected: Some(BlobDigest::of(&good)),
            ..UnpackOptions::new(0)
        };

        let error = work.run(format, &options).unwrap_err();

        assert!(
            matches!(&error, FetchError::ArchiveDigestMismatch { expected, found, .. }
                if *expected == BlobDigest::of(&good) && *found == BlobDigest::of(&evil)),
            "{format}: {error}"
        );
        work.assert_nothing_left();
    }
}

fn zip_of(name: &str) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    zip.start_file(name, zip::write::SimpleFileOptions::default())
        .unwrap();
    zip.write_all(b"0123456789").unwrap();
    zip.finish().unwrap().into_inner()
}

// --- the command line: the limit key, its message, the store afterwards ---

/// A spec with one url fetch; `extra` goes into the `[[fetch]]` table, `sandbox_limits` into
/// `[sandbox.limits]`.
fn url_spec(
    dir: &Path,
    url: &str,
    sha256: Option<&BlobDigest>,
    extra: &str,
    sandbox_limits: &str,
) -> PathBuf {
    let mut text = format!("version = 1\nname = \"limits\"\n\n[sandbox]\nimage = \"{IMAGE}\"\n");
    if !sandbox_limits.is_empty() {
        text.push_str(&format!("\n[sandbox.limits]\n{sandbox_limits}\n"));
    }
    text.push_str(&format!("\n[[fetch]]\nname = \"big\"\nurl = \"{url}\"\n"));
    if let Some(sha256) = sha256 {
        text.push_str(&format!("sha256 = \"{}\"\n", sha256.hex()));
    }
    text.push_str(extra);
    let path = dir.join("sealroom.toml");
    fs::write(&path, text).unwrap();
    path
}

/// Runs `sealroom fetch` and returns (exit code, stderr).
fn fetch(spec: &Path, store: &Path) -> (i32, String) {
    let output = common::sealroom()
        .arg("fetch")
        .arg(spec)
        .arg("--store")
        .arg(store)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The store verifies and its temp dir is empty: nothing half-written survived.
fn assert_store_clean(store: &Path) {
    let tmp: Vec<_> = fs::read_dir(store.join("v1/tmp"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert!(tmp.is_empty(), "left in v1/tmp: {tmp:?}");
    let output = common::sealroom()
        .args(["store", "verify", "--store"])
        .arg(store)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "store verify: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn an_oversized_download_stops_at_the_fetchs_limit_and_names_it() {
    let server = TestServer::start();
    let body = vec![1u8; 3 * MIB as usize];
    server.route("/disk-image.raw", [Reply::ok(body.clone())]);
    let dir = tempfile::tempdir().unwrap();
    let spec = url_spec(
        dir.path(),
        &server.url("/disk-image.raw"),
        Some(&BlobDigest::of(&body)),
        "limits = { output = \"1MiB\" }\n",
        "",
    );
    let store = dir.path().join("store");

    let (code, stderr) = fetch(&spec, &store);

    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("fetch `big`: the download exceeds limits.output = 1MiB (1048576 bytes)"),
        "{stderr}"
    );
    assert!(!stderr.contains("No space left"), "{stderr}");
    assert_store_clean(&store);
    assert!(
        !Store::open(&store)
            .unwrap()
            .has_blob(&BlobDigest::of(&body))
    );
}

#[test]
fn a_sparse_tar_bomb_stops_at_the_sandbox_output_limit() {
    // No key on the fetch: `[sandbox.limits] output` is its limit. The archive is a few
    // hundred bytes and stands for 64 MiB of zeros.
    let dir = tempfile::tempdir().unwrap();
    let tar = zeros_tar(dir.path(), 64 * MIB, true);
    let archive = dir.path().join("bomb.tar");
    fs::write(&archive, &tar).unwrap();
    let spec = url_spec(
        dir.path(),
        &format!("file://{}", archive.display()),
        Some(&BlobDigest::of(&tar)),
        "unpack = true\nstrip_components = 1\n",
        "output = \"1MiB\"",
    );
    let store = dir.path().join("store");

    let (code, stderr) = fetch(&spec, &store);

    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(
            "fetch `big`: unpacking exceeds limits.output = 1MiB (1048576 bytes): entry `payload/zeros.img` declares 67108864 bytes"
        ),
        "{stderr}"
    );
    assert_store_clean(&store);
}

#[test]
fn a_url_fetch_takes_only_the_output_limit() {
    let dir = tempfile::tempdir().unwrap();
    let spec = url_spec(
        dir.path(),
        "http://127.0.0.1:9/a.tar",
        None,
        "limits = { output = \"1MiB\", timeout = \"5s\" }\n",
        "",
    );
    let error = sealroom::spec::load(&spec).unwrap_err().to_string();
    assert!(
        error.ends_with(
            "sealroom.toml:10:39: fetch `big` downloads a `url`, so `limits.timeout` does not belong to it: a download takes only `limits.output`, its byte limit\n  hint: remove it, or move it to a fetch that `run`s a command"
        ),
        "{error}"
    );
    let spec = url_spec(
        dir.path(),
        "http://127.0.0.1:9/a.tar",
        None,
        "limits = { output = \"lots\" }\n",
        "",
    );
    let error = sealroom::spec::load(&spec).unwrap_err().to_string();
    assert!(
        error.ends_with(
            "sealroom.toml:10:21: expected a size for `output`: bytes, or a string like \"512MiB\", \"2GiB\", found \"lots\""
        ),
        "{error}"
    );
    let spec = url_spec(
        dir.path(),
        "http://127.0.0.1:9/a.tar",
        None,
        "limits = { output = \"48MiB\" }\n",
        "output = \"1GiB\"",
    );
    let loaded = sealroom::spec::load(&spec).unwrap();
    let sealroom::spec::FetchKind::Url(url) = &loaded.fetches[0].kind else {
        panic!("a url fetch");
    };
    assert_eq!(url.output_limit.0, 48 * MIB, "the fetch's own key wins");
}

#[test]
fn an_archive_changed_in_the_store_does_not_become_a_tree() {
    let dir = tempfile::tempdir().unwrap();
    let good = tar_of(&[("good.txt", 10, None)]);
    let evil = tar_of(&[("evil.txt", 10, None)]);
    let archive = dir.path().join("a.tar");
    fs::write(&archive, &good).unwrap();
    let spec = url_spec(
        dir.path(),
        &format!("file://{}", archive.display()),
        None,
        "unpack = true\n",
        "",
    );
    let store_dir = dir.path().join("store");
    // `pin` downloads the blob into the store (and writes the pin), but makes no tree.
    let pinned = common::sealroom()
        .arg("pin")
        .arg(&spec)
        .arg("--store")
        .arg(&store_dir)
        .output()
        .unwrap();
    assert!(
        pinned.status.success(),
        "{}",
        String::from_utf8_lossy(&pinned.stderr)
    );
    let store = Store::open(&store_dir).unwrap();
    let blob = store.blob_path(&BlobDigest::of(&good));
    // Someone with write access to the store swaps the archive's bytes.
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&blob, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&blob, &evil).unwrap();

    let (code, stderr) = fetch(&spec, &store_dir);

    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "expected content with digest {}, found {}; nothing was unpacked",
            BlobDigest::of(&good),
            BlobDigest::of(&evil)
        )),
        "{stderr}"
    );
    let tmp: Vec<_> = fs::read_dir(store_dir.join("v1/tmp")).unwrap().collect();
    assert!(tmp.is_empty(), "left in v1/tmp: {tmp:?}");
}

// --- registries ---

#[tokio::test]
async fn an_oversized_manifest_from_a_registry_is_refused() {
    let server = TestServer::start();
    let huge = vec![b' '; (MAX_MANIFEST_BYTES + 1) as usize];
    server.route(
        "/v2/acc/img/manifests/latest",
        [Reply::ok(huge).header("Content-Type", "application/vnd.oci.image.manifest.v1+json")],
    );
    let client = Client::new(&server.address().to_string()).unwrap();

    let error = client.get_manifest("acc/img", "latest").await.unwrap_err();

    assert!(
        error.to_string().contains(
            "is larger than its limit of 4194304 bytes: the registry announces 4194305 bytes"
        ),
        "{error}"
    );
}

#[tokio::test]
async fn an_endless_manifest_without_length_is_cut_at_the_cap() {
    let (url, server) = raw_server(Framing::Chunked, 256 * MIB);
    let registry = url
        .trim_start_matches("http://")
        .trim_end_matches("/endless.img")
        .to_string();
    let client = Client::new(&registry).unwrap();

    let error = client.get_manifest("acc/img", "latest").await.unwrap_err();

    assert!(
        error
            .to_string()
            .contains("the registry sent more than 4194304 bytes; stopped there"),
        "{error}"
    );
    drop(client);
    let sent = joined(server).await;
    assert!(sent < 128 * MIB, "the server wrote {sent} bytes");
}

#[tokio::test]
async fn a_registry_blob_longer_than_its_descriptor_is_refused() {
    // The layer's digest is the digest of what the registry sends, so only its size can tell:
    // the descriptor says 10 bytes, the registry sends 1 MiB.
    let server = TestServer::start();
    let layer = vec![5u8; MIB as usize];
    let layer_digest = BlobDigest::of(&layer);
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let config_digest = BlobDigest::of(config);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest.to_string(),
            "size": config.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": layer_digest.to_string(),
            "size": 10,
        }],
    })
    .to_string()
    .into_bytes();
    let manifest_digest = BlobDigest::of(&manifest);
    server.route(
        &format!("/v2/acc/img/manifests/{manifest_digest}"),
        [Reply::ok(manifest)],
    );
    server.route(
        &format!("/v2/acc/img/blobs/{config_digest}"),
        [Reply::ok(config.to_vec())],
    );
    server.route(
        &format!("/v2/acc/img/blobs/{layer_digest}"),
        [Reply::ok(layer)],
    );
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    let image: sealroom::spec::PinnedImage =
        format!("{}/acc/img@{manifest_digest}", server.address())
            .parse()
            .unwrap();

    let error = match sealroom::registry::pull::base_from_registry(&store, &image, false).await {
        Ok(_) => panic!("a layer of 1 MiB was taken for a descriptor of 10 bytes"),
        Err(error) => error.to_string(),
    };

    assert!(
        error.contains(&format!("blob {layer_digest}"))
            && error.contains(
                "is larger than its limit of 10 bytes: the registry announces 1048576 bytes"
            ),
        "{error}"
    );
    assert!(!store.has_blob(&layer_digest));
}
