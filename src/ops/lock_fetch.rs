//! The fetch stage for a `[[fetch]]` with `lock`: every file the lock pins is downloaded (the
//! `[mirrors]` applied), checked against the lock's own digest before anything reaches the
//! store, and the files are laid out for the ecosystem's offline install (`lockfile::lay_out`).
//!
//! - Nothing is pinned by hand: the lock's digests are the pins, so no `sealroom pin` and no
//!   fixed-output step. The sha256 of every file is recorded as well, whatever the lock uses.
//! - All files are downloaded into one scratch directory and verified first; only when every
//!   one matches are they added to the store. A mismatch stores nothing.
//! - The laid-out tree is remembered in the action cache under a key of the lock's digest, the
//!   format, the index and the mount point, with the list of fetched files (URLs, digests) as
//!   the entry's record blob, so a warm store needs no network and still records every file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::digest::{ActionDigest, BlobDigest, TreeDigest};
use crate::error::{Error, ExitCode, Failure};
use crate::fetch::{Downloader, FetchError, MAX_ENTRIES, Mirrors, download_accepting};
use crate::lockfile::{
    self, LayoutLimits, LockDigest, LockError, LockFormat, LockSource, LockedFile, Verified,
};
use crate::spec::{Fetch, LockFetch};
use crate::store::Store;
use crate::store::actions::ActionResult;

/// The version of the key under which a lock fetch's tree is cached. Bump it when a layout
/// changes.
const LOCK_KEY_VERSION: &str = "sealroom-lock-fetch-v1";

/// The largest index page or registry `config.json` read.
const MAX_PAGE_BYTES: u64 = 16 * 1024 * 1024;

/// One file a lock fetch downloaded: what provenance records of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedDownload {
    /// `pkg:pypi/six@1.16.0`.
    pub purl: String,
    pub package: String,
    /// The URL the lock (or the index) gives, before any mirror.
    pub url: String,
    /// Where the bytes came from: the mirror's URL, after redirects. The same as `url` without
    /// a mirror, or when the file was in the store already.
    pub downloaded_from: String,
    pub file_name: String,
    pub sha256: BlobDigest,
    /// The lock's own digest, as the lock writes it (`sha512-…`, `h1:…`, or hex).
    pub lock_digest: String,
    /// The same as an in-toto DigestSet entry: algorithm and lower-case hex.
    pub lock_digest_algorithm: String,
    pub lock_digest_hex: String,
    /// The line of the lock that pins it.
    pub line: usize,
}

/// What a lock fetch got, kept in the store beside its tree.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockRecord {
    pub format: LockFormat,
    pub files: Vec<LockedDownload>,
}

/// The key of a lock fetch's tree: everything that shapes it. Mirrors are not part of it: they
/// change where the bytes come from, never which bytes.
fn lock_key(fetch: &Fetch, lock: &LockFetch) -> ActionDigest {
    let key = serde_json::json!({
        "version": LOCK_KEY_VERSION,
        "format": lock.format,
        "lock": lock.digest,
        "index": lock.index,
        "mount": mount_of(fetch),
    });
    ActionDigest::of(key.to_string().as_bytes())
}

fn mount_of(fetch: &Fetch) -> String {
    format!("{}/{}", crate::sandbox::INPUTS_DIR, fetch.name)
}

/// The fetch, if the store has its tree (and the record of its files).
pub fn cached(
    store: &Store,
    fetch: &Fetch,
    lock: &LockFetch,
) -> Result<Option<LockFetched>, Error> {
    let Some(hit) = store.action_get(&lock_key(fetch, lock)) else {
        return Ok(None);
    };
    if store.missing_below(&hit.output)?.is_some() {
        return Ok(None);
    }
    let Ok(bytes) = std::fs::read(store.blob_path(&hit.log)) else {
        return Ok(None);
    };
    if BlobDigest::of(&bytes) != hit.log {
        return Ok(None);
    }
    let Ok(record) = serde_json::from_slice::<LockRecord>(&bytes) else {
        return Ok(None);
    };
    Ok(Some(LockFetched {
        tree: hit.output,
        cached: true,
        files: record.files,
    }))
}

/// What a lock fetch got: its tree and the files in it.
#[derive(Debug, Clone)]
pub struct LockFetched {
    pub tree: TreeDigest,
    /// Taken from the store: nothing was downloaded.
    pub cached: bool,
    pub files: Vec<LockedDownload>,
}

/// Resolves, downloads, verifies, stores and lays out the files of one lock.
pub async fn fetch_lock(
    downloader: &Downloader,
    store: &Store,
    fetch: &Fetch,
    lock: &LockFetch,
    mirrors: &Mirrors,
    jobs: usize,
) -> Result<LockFetched, Error> {
    let source = LockSource {
        display: lock.lock.as_str(),
        text: &lock.text,
    };
    let scratch = store.temp_dir()?;
    let pages = Pages {
        downloader,
        mirrors,
        dir: scratch.path(),
    };
    let files = resolve(&pages, fetch, lock, &source, jobs).await?;
    let files = distinct(files);
    tracing::info!(
        "fetch {}: {} file(s) from {}",
        fetch.name,
        files.len(),
        lock.lock
    );

    let limits = LayoutLimits {
        max_bytes: lock.output_limit.0,
        max_entries: MAX_ENTRIES,
    };
    let downloads_dir = scratch.path().join("files");
    std::fs::create_dir(&downloads_dir)
        .map_err(|e| Error::io("cannot create", &downloads_dir, e))?;
    let results: Vec<Result<Downloaded, Error>> =
        futures_util::stream::iter(files.iter().enumerate())
            .map(|(index, file)| {
                let dest = downloads_dir.join(index.to_string());
                let source = &source;
                async move {
                    download_one(downloader, store, mirrors, file, source, &limits, dest).await
                }
            })
            .buffered(jobs.max(1))
            .collect()
            .await;
    let mut downloads = Vec::with_capacity(results.len());
    let mut total: u64 = 0;
    for result in results {
        let download = result?;
        total = total.saturating_add(download.size);
        downloads.push(download);
    }
    if total > lock.output_limit.0 {
        return Err(LockFetchError::OverLimit {
            name: fetch.name.to_string(),
            total,
            limit: lock.output_limit,
        }
        .into());
    }

    // Every file matched its lock digest: now, and only now, they go into the store.
    for download in &downloads {
        if let Some(path) = &download.scratch_path {
            let bytes = std::fs::File::open(path)
                .map_err(|e| Error::io("cannot read the download", path, e))?;
            store.add_blob_from_reader(
                bytes,
                &download.record.url,
                Some(&download.record.sha256),
            )?;
            let _ = std::fs::remove_file(path);
        }
    }
    let verified: Vec<Verified<'_>> = files
        .iter()
        .zip(&downloads)
        .map(|(file, download)| Verified {
            file,
            path: store.blob_path(&download.record.sha256),
        })
        .collect();
    let root = scratch.path().join("tree");
    std::fs::create_dir(&root).map_err(|e| Error::io("cannot create", &root, e))?;
    lockfile::lay_out(lock.format, &verified, &root, &mount_of(fetch), &limits)?;
    let tree = store.add_tree(&root, &|_| false)?;
    crate::store::remove_tree_force(scratch.path())?;

    let records: Vec<LockedDownload> = downloads.into_iter().map(|d| d.record).collect();
    let record = LockRecord {
        format: lock.format,
        files: records.clone(),
    };
    let record_bytes = serde_json::to_vec_pretty(&record).expect("a lock record serializes");
    let (record_digest, _) =
        store.add_blob_from_reader(&record_bytes[..], "the lock fetch's record", None)?;
    store.action_put(
        &lock_key(fetch, lock),
        &ActionResult {
            output: tree,
            log: record_digest,
            invocation: None,
        },
    )?;
    tracing::info!("fetch {}: {tree}", fetch.name);
    Ok(LockFetched {
        tree,
        cached: false,
        files: records,
    })
}

/// The same file named twice (one crate in two places, one tarball under two paths) is
/// downloaded once.
fn distinct(files: Vec<LockedFile>) -> Vec<LockedFile> {
    let mut seen = std::collections::HashSet::new();
    files
        .into_iter()
        .filter(|file| seen.insert((file.url.clone(), file.digest.lock_form())))
        .collect()
}

/// Small documents the resolution reads (index pages, registry configs), mirrored like every
/// download and kept in the scratch directory only while they are parsed.
struct Pages<'a> {
    downloader: &'a Downloader,
    mirrors: &'a Mirrors,
    dir: &'a Path,
}

struct Page {
    body: Vec<u8>,
    content_type: String,
    /// The URL as the lock's world knows it (before the mirror): relative links resolve
    /// against it, so the files' recorded URLs are the origin's.
    url: String,
}

impl Pages<'_> {
    async fn get(&self, url: &str, accept: Option<&str>) -> Result<Page, FetchError> {
        let used = self.mirrors.apply(url);
        let dest = self
            .dir
            .join(format!("page-{}", BlobDigest::of(url.as_bytes()).hex()));
        let downloaded = download_accepting(
            self.downloader,
            &used,
            accept,
            None,
            Some(MAX_PAGE_BYTES),
            &dest,
        )
        .await?;
        let body = std::fs::read(&dest).map_err(|e| FetchError::io("read", &dest, e))?;
        let _ = std::fs::remove_file(&dest);
        // Links on a mirrored page that point into the mirror are read back as the origin's.
        let url = if downloaded.redirects.is_empty() {
            url.to_string()
        } else {
            downloaded.final_url.clone()
        };
        Ok(Page {
            body,
            content_type: downloaded.content_type.unwrap_or_default(),
            url,
        })
    }
}

/// Every file the lock pins, with its URL.
async fn resolve(
    pages: &Pages<'_>,
    fetch: &Fetch,
    lock: &LockFetch,
    source: &LockSource<'_>,
    jobs: usize,
) -> Result<Vec<LockedFile>, Error> {
    Ok(match lock.format {
        LockFormat::Pip => resolve_pip(pages, fetch, lock, source, jobs).await?,
        LockFormat::Uv => lockfile::uv::parse(source)?,
        LockFormat::Pylock => lockfile::pylock::parse(source)?,
        LockFormat::Npm => lockfile::npm::parse(source)?,
        LockFormat::Cargo => resolve_cargo(pages, lock, source).await?,
        LockFormat::Go => {
            let proxy = index_or(
                fetch,
                lock,
                go_proxy_from_environment,
                "Go module proxy",
                "add `index = \"<GOPROXY URL>\"` to the fetch, or set GOPROXY",
            )?;
            lockfile::go::parse(source, &proxy)?
        }
    })
}

/// The fetch's `index`, else what the environment gives (`PIP_INDEX_URL`, `GOPROXY`), else an
/// error that names both.
fn index_or(
    fetch: &Fetch,
    lock: &LockFetch,
    from_environment: impl FnOnce() -> Option<String>,
    what: &'static str,
    hint: &'static str,
) -> Result<String, LockFetchError> {
    lock.index
        .clone()
        .or_else(from_environment)
        .ok_or_else(|| LockFetchError::NoIndex {
            name: fetch.name.to_string(),
            format: lock.format,
            what,
            hint,
        })
}

/// The first proxy of `GOPROXY` that is a URL (not `direct` or `off`).
fn go_proxy_from_environment() -> Option<String> {
    let value = std::env::var("GOPROXY").ok()?;
    value
        .split([',', '|'])
        .map(str::trim)
        .find(|entry| entry.contains("://"))
        .map(str::to_string)
}

async fn resolve_pip(
    pages: &Pages<'_>,
    fetch: &Fetch,
    lock: &LockFetch,
    source: &LockSource<'_>,
    jobs: usize,
) -> Result<Vec<LockedFile>, Error> {
    let requirements = lockfile::pip::parse_requirements(source)?;
    let index = index_or(
        fetch,
        lock,
        || {
            std::env::var("PIP_INDEX_URL")
                .ok()
                .filter(|value| !value.is_empty())
        },
        "simple index (PEP 503/691)",
        "add `index = \"<simple index URL>\"` to the fetch, or set PIP_INDEX_URL",
    )?;
    let chosen: Vec<Result<Vec<LockedFile>, Error>> = futures_util::stream::iter(&requirements)
        .map(|requirement| {
            let index = &index;
            async move {
                // `name @ https://…`: the lock names the file itself; the index need not list it.
                if let Some(file) = lockfile::pip::direct_file(requirement, source)? {
                    return Ok(vec![file]);
                }
                let url = lockfile::pip::project_page_url(index, &requirement.name);
                let page = pages
                    .get(&url, Some(lockfile::pip::INDEX_ACCEPT))
                    .await
                    .map_err(|error| match error {
                        FetchError::HttpStatus { status, .. }
                            if status.as_u16() == 404 || status.as_u16() == 410 =>
                        {
                            Error::from(LockError::NotInIndex {
                                lock: source.display.to_string(),
                                line: requirement.line,
                                package: requirement.text.clone(),
                                message: format!(
                                    "the index has no project `{}` ({url} answered {status})",
                                    requirement.name
                                ),
                            })
                        }
                        other => other.into(),
                    })?;
                let files =
                    lockfile::pip::parse_index_page(&page.body, &page.content_type, &page.url)
                        .map_err(|problem| LockError::NotInIndex {
                            lock: source.display.to_string(),
                            line: requirement.line,
                            package: requirement.text.clone(),
                            message: format!("cannot read the index page {url}: {problem}"),
                        })?;
                Ok(lockfile::pip::choose(requirement, &files, source)?)
            }
        })
        .buffered(jobs.max(1))
        .collect()
        .await;
    let mut files = Vec::new();
    for result in chosen {
        files.extend(result?);
    }
    Ok(files)
}

async fn resolve_cargo(
    pages: &Pages<'_>,
    lock: &LockFetch,
    source: &LockSource<'_>,
) -> Result<Vec<LockedFile>, Error> {
    let crates = lockfile::cargo::parse(source)?;
    // One config.json per registry.
    let mut configs: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut files = Vec::with_capacity(crates.len());
    for krate in &crates {
        let index = match &lock.index {
            Some(index) => lockfile::cargo::index_url(index),
            None => cargo_replacement(&krate.source)
                .unwrap_or_else(|| lockfile::cargo::index_url(&krate.source)),
        };
        if !configs.contains_key(&index) {
            let url = format!("{index}config.json");
            let page = pages
                .get(&url, Some("application/json"))
                .await
                .map_err(|error| LockFetchError::RegistryConfig {
                    lock: source.display.to_string(),
                    line: krate.line,
                    package: format!("{} {}", krate.name, krate.version),
                    url: url.clone(),
                    problem: error.to_string(),
                })?;
            configs.insert(index.clone(), page.body);
        }
        let config = &configs[&index];
        let url = lockfile::cargo::download_url(config, krate).map_err(|problem| {
            LockFetchError::RegistryConfig {
                lock: source.display.to_string(),
                line: krate.line,
                package: format!("{} {}", krate.name, krate.version),
                url: format!("{index}config.json"),
                problem,
            }
        })?;
        files.push(lockfile::cargo::locked_file(krate, url));
    }
    Ok(files)
}

/// The index cargo itself would use for `source`, by the source replacement of its own
/// configuration (`$CARGO_HOME/config.toml`: `[source.crates-io] replace-with = "mirror"`,
/// `[source.mirror] registry = "sparse+https://…"`), which is how a mirror is set up for cargo.
/// Only crates.io's source is replaced this way (cargo names it `crates-io`); `None` when the
/// configuration says nothing.
fn cargo_replacement(source: &str) -> Option<String> {
    if source != lockfile::cargo::CRATES_IO_SOURCE {
        return None;
    }
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")))?;
    let text = ["config.toml", "config"]
        .iter()
        .find_map(|name| std::fs::read_to_string(home.join(name)).ok())?;
    let config: toml::Table = text.parse().ok()?;
    let sources = config.get("source")?.as_table()?;
    let mut name = "crates-io";
    // A chain of replacements ends at a source with a `registry`; a loop ends nowhere.
    for _ in 0..8 {
        let table = sources.get(name)?.as_table()?;
        match table.get("replace-with").and_then(toml::Value::as_str) {
            Some(next) => name = next,
            None => {
                let registry = table.get("registry")?.as_str()?;
                return Some(lockfile::cargo::index_url(registry));
            }
        }
    }
    None
}

/// A downloaded and verified file: in the scratch directory (to be stored), or already in the
/// store.
struct Downloaded {
    scratch_path: Option<PathBuf>,
    size: u64,
    record: LockedDownload,
}

async fn download_one(
    downloader: &Downloader,
    store: &Store,
    mirrors: &Mirrors,
    file: &LockedFile,
    source: &LockSource<'_>,
    limits: &LayoutLimits,
    dest: PathBuf,
) -> Result<Downloaded, Error> {
    let (algorithm, hex) = file.digest.digest_set_entry();
    let record = |sha256: BlobDigest, downloaded_from: String| LockedDownload {
        purl: file.purl.clone(),
        package: file.package.clone(),
        url: file.url.clone(),
        downloaded_from,
        file_name: file.file_name.clone(),
        sha256,
        lock_digest: file.digest.lock_form(),
        lock_digest_algorithm: algorithm.to_string(),
        lock_digest_hex: hex.clone(),
        line: file.line,
    };
    if let LockDigest::Sha256(bytes) = &file.digest {
        let sha256 = BlobDigest::from_bytes(*bytes);
        if store.has_blob(&sha256) {
            return Ok(Downloaded {
                scratch_path: None,
                size: 0,
                record: record(sha256, file.url.clone()),
            });
        }
    }
    let used = mirrors.apply(&file.url);
    let expected = match &file.digest {
        LockDigest::Sha256(bytes) => Some(BlobDigest::from_bytes(*bytes)),
        _ => None,
    };
    let mismatch = |found: String| LockError::Mismatch {
        lock: source.display.to_string(),
        line: file.line,
        package: file.package.clone(),
        url: used.clone(),
        expected: file.digest.to_string(),
        found,
    };
    let downloaded = download_accepting(
        downloader,
        &used,
        None,
        expected.as_ref(),
        Some(limits.max_bytes),
        &dest,
    )
    .await
    .map_err(|error| match error {
        FetchError::DigestMismatch { actual, .. } => {
            Error::from(mismatch(format!("sha256:{}", actual.hex())))
        }
        other => other.into(),
    })?;
    let found = match &file.digest {
        LockDigest::Sha256(_) => None,
        LockDigest::Sha512(_) => {
            let found = hash_file::<sha2::Sha512>(&dest)?;
            (found != file.digest.bytes())
                .then(|| LockDigest::Sha512(Box::new(found.try_into().expect("64 bytes"))))
        }
        LockDigest::Sha1(_) => {
            let found = hash_file::<sha1::Sha1>(&dest)?;
            (found != file.digest.bytes())
                .then(|| LockDigest::Sha1(found.try_into().expect("20 bytes")))
        }
        LockDigest::GoH1(_) => {
            if let Err(error) = lockfile::go::verify_in(source.display, file, &dest, limits) {
                let _ = std::fs::remove_file(&dest);
                // Named by the URL it came from, as every other mismatch is.
                return Err(match error {
                    LockError::Mismatch {
                        lock,
                        line,
                        package,
                        expected,
                        found,
                        ..
                    } => LockError::Mismatch {
                        lock,
                        line,
                        package,
                        url: used.clone(),
                        expected,
                        found,
                    },
                    other => other,
                }
                .into());
            }
            None
        }
    };
    if let Some(found) = found {
        let _ = std::fs::remove_file(&dest);
        return Err(mismatch(found.to_string()).into());
    }
    Ok(Downloaded {
        scratch_path: Some(dest),
        size: downloaded.size,
        record: record(downloaded.digest, downloaded.final_url),
    })
}

fn hash_file<D: sha2::Digest>(path: &Path) -> Result<Vec<u8>, Error> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|e| Error::io("cannot read", path, e))?;
    let mut hasher = D::new();
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        let n = file
            .read(&mut buffer)
            .map_err(|e| Error::io("cannot read", path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hasher.finalize().to_vec())
}

#[derive(Debug, thiserror::Error)]
pub enum LockFetchError {
    #[error("fetch `{name}` reads a {format} lock but names no {what}\n  hint: {hint}")]
    NoIndex {
        name: String,
        format: LockFormat,
        what: &'static str,
        hint: &'static str,
    },
    #[error(
        "{lock}:{line}: {package}: cannot read the registry's download location from {url}: {problem}\n  hint: sealroom reads a registry's `config.json` over HTTP (a sparse index); for a git index, give the registry's sparse index as `index = \"sparse+<url>\"`, or map its URL in `[mirrors]` (`--mirror PREFIX=URL`)"
    )]
    RegistryConfig {
        lock: String,
        line: usize,
        package: String,
        url: String,
        problem: String,
    },
    #[error(
        "fetch `{name}`: its files are {total} bytes, more than its `limits.output` of {limit}; nothing was stored\n  hint: raise `limits.output` of the fetch (or `[sandbox.limits] output`)"
    )]
    OverLimit {
        name: String,
        total: u64,
        limit: crate::spec::ByteSize,
    },
}

impl Failure for LockFetchError {
    fn exit_code(&self) -> ExitCode {
        ExitCode::BadInput
    }
}
