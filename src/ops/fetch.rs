//! The fetch stage: every `[[fetch]]` of a spec becomes a verified tree in the store, mounted
//! read-only at `/inputs/<name>` in the steps that name it. Runs before any build step, and is
//! the only stage with a network.
//!
//! - A download (`url` + `sha256`) streams into the store's temp dir while it is hashed and is
//!   kept only when the digest matches the pin; a blob already in the store touches no network.
//!   Its input tree (the archive unpacked, or the one file) is remembered in the action cache
//!   under a key of the blob digest and the unpack settings, so a warm store needs nothing.
//! - A fixed-output step (`run` + `output`) runs in a container with a network; its `/out` is
//!   read once, by descriptor, into a private scratch store, and that copy is kept only when
//!   its tree digest equals the pin (and its files stay within `limits.output`). A tree
//!   already in the store is a hit: the step does not run.
//! - `--offline` opens no socket and starts no container: whatever is missing from the store is
//!   listed in one error.

use std::path::Path;

use tokio_util::sync::CancellationToken;

use futures_util::StreamExt;

use crate::digest::{ActionDigest, BlobDigest, TreeDigest};
use crate::error::{Error, ExitCode, Failure};
use crate::fetch::{
    ArchiveFormat, Downloader, DownloaderOptions, FetchError, MAX_ENTRIES, Mirrors, UnpackOptions,
    download_at_most, unpack_with,
};
use crate::ops::lock_fetch;
use crate::sandbox::docker::LazyDocker;
use crate::sandbox::record::StepDefinition;
use crate::sandbox::{DEFAULT_USER, Engine, Network, StepRecord, StepRequest, WORK_DIR};
use crate::spec::{
    ByteSize, Fetch, FetchKind, FetchNetwork, LockFetch, Name, RunFetch, Spec, UrlFetch,
};
use crate::store::Store;
use crate::store::actions::ActionResult;

/// The version of the key under which a download's input tree is cached.
const FETCH_KEY_VERSION: &str = "sealroom-fetch-v1";

/// What the caller (never the spec alone) decides about the fetch stage's network.
#[derive(Debug, Clone, Default)]
pub struct NetworkChoices {
    /// `--allow-host-network`.
    pub allow_host_network: bool,
    /// `--mirror PREFIX=URL`, over the spec's `[mirrors]`.
    pub mirrors: Mirrors,
}

#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Open no socket and start no container.
    pub offline: bool,
    /// `--allow-host-network`: a fixed-output fetch with `network = "host"` may run. The spec
    /// alone never puts a container in the host's network namespace.
    pub allow_host_network: bool,
    /// `--mirror`: rewrites on top of the spec's `[mirrors]`.
    pub mirrors: Mirrors,
    /// At most this many downloads at once.
    pub jobs: usize,
    pub build_id: String,
    pub interrupt: CancellationToken,
}

/// What the fetch stage did for one `[[fetch]]`, for provenance and the reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Fetched {
    pub name: String,
    /// The input tree steps see at `/inputs/<name>`.
    pub tree: TreeDigest,
    /// Taken from the store: no download, no container.
    pub cached: bool,
    #[serde(flatten)]
    pub origin: Origin,
}

#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Origin {
    Download {
        url: String,
        /// Where the bytes came from after redirects; the same as `url` without any, or when the
        /// blob was already in the store.
        final_url: String,
        redirects: Vec<String>,
        sha256: BlobDigest,
        unpack: bool,
        strip_components: usize,
    },
    Run {
        run: Vec<String>,
        image: String,
        network: &'static str,
    },
    /// The files of a lock file, each verified by the lock's own digest.
    Lock {
        /// `lock` as the spec writes it.
        lock: String,
        lock_sha256: BlobDigest,
        format: crate::lockfile::LockFormat,
        index: Option<String>,
        files: Vec<crate::ops::lock_fetch::LockedDownload>,
    },
}

/// Fetches every `[[fetch]]` of `spec`; returns one entry per fetch in spec order.
pub async fn fetch_all<S: Engine>(
    sandbox: &S,
    store: &Store,
    spec: &Spec,
    options: &FetchOptions,
) -> Result<Vec<Fetched>, Error> {
    // Whether the store holds each pinned fixed-output fetch whole (`None` for the others),
    // looked at once: walking a stored tree reads all of its tree objects.
    let stored = spec
        .fetches
        .iter()
        .map(|fetch| match &fetch.kind {
            FetchKind::Run(run) => run.output.map(|pin| stored_whole(store, &pin)).transpose(),
            FetchKind::Url(_) | FetchKind::Lock(_) => Ok(None),
        })
        .collect::<Result<Vec<_>, Error>>()?;
    // Refused before anything is fetched: a spec from a pull request must not get the host's
    // network, and a half-done fetch stage helps nobody. A fetch already in the store runs
    // nothing, so it needs no permission.
    for (fetch, stored) in spec.fetches.iter().zip(&stored) {
        if let FetchKind::Run(run) = &fetch.kind
            && !options.offline
            && !matches!(stored, Some(Ok(())))
        {
            check_network_allowed(&fetch.name, run, options)?;
        }
    }
    let mut missing = Vec::new();
    let mut fetched: Vec<Option<Fetched>> = vec![None; spec.fetches.len()];
    let mut to_download = Vec::new();
    let mut to_lock = Vec::new();
    for (index, fetch) in spec.fetches.iter().enumerate() {
        match &fetch.kind {
            FetchKind::Lock(lock) => match lock_fetch::cached(store, fetch, lock)? {
                Some(done) => fetched[index] = Some(lock_fetched(fetch, lock, done)),
                None if options.offline => {
                    missing.push(format!("`{}` (the files of {})", fetch.name, lock.lock))
                }
                None => to_lock.push((index, fetch, lock)),
            },
            FetchKind::Url(url) => match cached_download(store, fetch, url)? {
                Some(done) => fetched[index] = Some(done),
                None if options.offline => missing.push(format!("`{}` ({})", fetch.name, url.url)),
                None => to_download.push((index, fetch, url)),
            },
            FetchKind::Run(run) => {
                let pin = run.output.ok_or_else(|| FetchStageError::Unpinned {
                    name: fetch.name.to_string(),
                    key: "output",
                })?;
                let stored = stored[index]
                    .as_ref()
                    .expect("looked up above for every pinned fetch");
                if let Err(Some(missing)) = stored {
                    tracing::warn!(
                        "fetch {}: the stored tree {pin} is incomplete ({missing}); {}",
                        fetch.name,
                        if options.offline {
                            "it is missing"
                        } else {
                            "running the fetch again"
                        }
                    );
                }
                if stored.is_ok() {
                    fetched[index] = Some(run_fetched(fetch, run, pin, true));
                } else if options.offline {
                    missing.push(format!(
                        "`{}` (a fixed-output step: {})",
                        fetch.name,
                        run.run.join(" ")
                    ));
                } else {
                    let tree = run_fixed_output(
                        sandbox,
                        store,
                        &fetch.name,
                        run,
                        Some(pin),
                        spec.source_date_epoch,
                        options,
                    )
                    .await?;
                    fetched[index] = Some(run_fetched(fetch, run, tree, false));
                }
            }
        }
    }
    if !missing.is_empty() {
        return Err(FetchStageError::OfflineMissing { missing }.into());
    }
    // The HTTP client only when something is to download: making it reads the system's root
    // certificates, which a cached build has no need of.
    let mirrors = spec.mirrors.overridden_by(&options.mirrors);
    if !to_download.is_empty() || !to_lock.is_empty() {
        let downloader = Downloader::new(DownloaderOptions {
            offline: options.offline,
            ..DownloaderOptions::default()
        })?;
        for (index, fetch, lock) in to_lock {
            let done =
                lock_fetch::fetch_lock(&downloader, store, fetch, lock, &mirrors, options.jobs)
                    .await?;
            fetched[index] = Some(lock_fetched(fetch, lock, done));
        }
        let downloads: Vec<(usize, Result<Fetched, Error>)> =
            futures_util::stream::iter(to_download)
                .map(|(index, fetch, url)| {
                    let downloader = &downloader;
                    let mirrors = &mirrors;
                    async move {
                        (
                            index,
                            download(downloader, store, fetch, url, mirrors).await,
                        )
                    }
                })
                .buffer_unordered(options.jobs.max(1))
                .collect()
                .await;
        for (index, result) in downloads {
            fetched[index] = Some(result?);
        }
    }
    Ok(fetched
        .into_iter()
        .map(|done| done.expect("every fetch was handled"))
        .collect())
}

/// The input tree of `fetch` if the store already has it; nothing is downloaded or run.
pub fn stored_tree(store: &Store, fetch: &Fetch) -> Result<Option<TreeDigest>, Error> {
    Ok(match &fetch.kind {
        FetchKind::Url(url) => cached_download(store, fetch, url)?.map(|done| done.tree),
        FetchKind::Run(run) => run.output.filter(|pin| store.has_tree(pin)),
        FetchKind::Lock(lock) => lock_fetch::cached(store, fetch, lock)?.map(|done| done.tree),
    })
}

/// `Ok` when the store holds all of the pinned tree `pin` (every tree object and blob below
/// it), so the fetch need not run; else why not: `Err(None)` when its root is not there at all,
/// `Err(Some(what is missing))` when only part of it is.
fn stored_whole(store: &Store, pin: &TreeDigest) -> Result<Result<(), Option<String>>, Error> {
    if !store.has_tree(pin) {
        return Ok(Err(None));
    }
    Ok(match store.missing_below(pin)? {
        None => Ok(()),
        Some(missing) => Err(Some(missing)),
    })
}

fn lock_fetched(fetch: &Fetch, lock: &LockFetch, done: lock_fetch::LockFetched) -> Fetched {
    Fetched {
        name: fetch.name.to_string(),
        tree: done.tree,
        cached: done.cached,
        origin: Origin::Lock {
            lock: lock.lock.as_str().to_string(),
            lock_sha256: lock.digest,
            format: lock.format,
            index: lock.index.clone(),
            files: done.files,
        },
    }
}

fn run_fetched(fetch: &Fetch, run: &RunFetch, tree: TreeDigest, cached: bool) -> Fetched {
    Fetched {
        name: fetch.name.to_string(),
        tree,
        cached,
        origin: Origin::Run {
            run: run.run.clone(),
            image: run.image.to_string(),
            network: run.network.as_str(),
        },
    }
}

/// The key under which a download's input tree is cached: everything that shapes the tree.
fn download_key(sha256: &BlobDigest, url: &UrlFetch) -> ActionDigest {
    let key = serde_json::json!({
        "version": FETCH_KEY_VERSION,
        "sha256": sha256,
        "unpack": url.unpack,
        "strip_components": url.strip_components,
        "file_name": if url.unpack { None } else { Some(&url.file_name) },
    });
    ActionDigest::of(key.to_string().as_bytes())
}

/// A download whose input tree the store already has.
fn cached_download(store: &Store, fetch: &Fetch, url: &UrlFetch) -> Result<Option<Fetched>, Error> {
    let sha256 = url.sha256.ok_or_else(|| FetchStageError::Unpinned {
        name: fetch.name.to_string(),
        key: "sha256",
    })?;
    if let Some(hit) = store.action_get(&download_key(&sha256, url)) {
        return Ok(Some(download_fetched(
            fetch, url, sha256, hit.output, true, None,
        )));
    }
    if store.has_blob(&sha256) {
        // Downloaded before (e.g. by `sealroom pin`): only the tree is to make.
        let tree = input_tree(store, &fetch.name, url, &sha256)?;
        return Ok(Some(download_fetched(fetch, url, sha256, tree, true, None)));
    }
    Ok(None)
}

fn download_fetched(
    fetch: &Fetch,
    url: &UrlFetch,
    sha256: BlobDigest,
    tree: TreeDigest,
    cached: bool,
    location: Option<(String, Vec<String>)>,
) -> Fetched {
    let (final_url, redirects) = location.unwrap_or_else(|| (url.url.clone(), Vec::new()));
    Fetched {
        name: fetch.name.to_string(),
        tree,
        cached,
        origin: Origin::Download {
            url: url.url.clone(),
            final_url,
            redirects,
            sha256,
            unpack: url.unpack,
            strip_components: url.strip_components,
        },
    }
}

/// Downloads, verifies, stores the blob and makes the input tree.
async fn download(
    downloader: &Downloader,
    store: &Store,
    fetch: &Fetch,
    url: &UrlFetch,
    mirrors: &Mirrors,
) -> Result<Fetched, Error> {
    let sha256 = url.sha256.expect("cached_download checked the pin");
    let scratch = store.temp_dir()?;
    let file = scratch.path().join("download");
    let used = mirrors.apply(&url.url);
    if used == url.url {
        tracing::info!("fetch {}: downloading {}", fetch.name, url.url);
    } else {
        tracing::info!("fetch {}: downloading {} from {used}", fetch.name, url.url);
    }
    let downloaded = download_at_most(
        downloader,
        &used,
        Some(&sha256),
        Some(url.output_limit.0),
        &file,
    )
    .await
    .map_err(|error| named_limit(&fetch.name, url.output_limit, error))?;
    let bytes =
        std::fs::File::open(&file).map_err(|e| Error::io("cannot read the download", &file, e))?;
    store.add_blob_from_reader(bytes, &url.url, Some(&sha256))?;
    drop(scratch); // the download is in the store now: its temp copy goes before the unpack
    let tree = input_tree(store, &fetch.name, url, &sha256)?;
    tracing::info!("fetch {}: {sha256}", fetch.name);
    Ok(download_fetched(
        fetch,
        url,
        sha256,
        tree,
        false,
        Some((downloaded.final_url, downloaded.redirects)),
    ))
}

/// A fetch error that names the fetch and its limit key when it is about the byte limit.
fn named_limit(name: &Name, limit: ByteSize, error: FetchError) -> Error {
    match error {
        FetchError::OverLimit { action, detail, .. } => FetchStageError::OverLimit {
            name: name.to_string(),
            action,
            limit,
            detail,
        }
        .into(),
        other => other.into(),
    }
}

/// The tree a download is mounted as: the archive unpacked, or a directory holding the file.
/// The archive is re-hashed as it is read from the store and unpacked within the fetch's limit.
fn input_tree(
    store: &Store,
    name: &Name,
    url: &UrlFetch,
    sha256: &BlobDigest,
) -> Result<TreeDigest, Error> {
    let scratch = store.temp_dir()?;
    let root = scratch.path().join("tree");
    if url.unpack {
        let archive = store.blob_path(sha256);
        let format = ArchiveFormat::detect_file(&archive, &url.url)?;
        let options = UnpackOptions {
            strip_components: url.strip_components,
            max_bytes: url.output_limit.0,
            max_entries: MAX_ENTRIES,
            expected: Some(*sha256),
        };
        unpack_with(&archive, format, &options, &root)
            .map_err(|error| named_limit(name, url.output_limit, error))?;
    } else {
        std::fs::create_dir(&root).map_err(|e| Error::io("cannot create", &root, e))?;
        store.export_file(sha256, &root.join(&url.file_name), false)?;
    }
    let tree = store.add_tree(&root, &|_| false)?;
    crate::store::remove_tree_force(scratch.path())?;
    store.action_put(
        &download_key(sha256, url),
        &ActionResult {
            output: tree,
            log: BlobDigest::of(b""),
            invocation: None,
        },
    )?;
    Ok(tree)
}

/// Runs a fixed-output step with its network. With a pin, its `/out` reaches the store only
/// when it matches; without one (`sealroom pin`), it is stored and its digest returned.
pub async fn run_fixed_output<S: Engine>(
    sandbox: &S,
    store: &Store,
    name: &Name,
    run: &RunFetch,
    pin: Option<TreeDigest>,
    source_date_epoch: u64,
    options: &FetchOptions,
) -> Result<TreeDigest, Error> {
    check_network_allowed(name, run, options)?;
    let scratch = store.temp_dir()?;
    let out_dir = scratch.path().join("out");
    crate::sandbox::create_out_dir(&out_dir)?;
    let env = crate::sandbox::record::fixed_environment(source_date_epoch, &run.env);
    let record = StepRecord::new(StepDefinition {
        image: run.image.digest,
        argv: &run.run,
        env,
        workdir: WORK_DIR,
        user: DEFAULT_USER,
        network: match run.network {
            FetchNetwork::Bridge => Network::Fetch,
            FetchNetwork::Host => Network::Host,
        },
        limits: &run.limits,
        inputs: &[],
    });
    let request = StepRequest {
        step: format!("fetch-{name}"),
        build_id: options.build_id.clone(),
        image: run.image.clone(),
        record,
        inputs: Vec::new(),
        out_dir: out_dir.clone(),
        log_path: scratch.path().join("log"),
        read_image_files: Vec::new(),
    };
    tracing::info!(
        "fetch {name}: running {} (network: {})",
        run.run.join(" "),
        run.network.as_str()
    );
    let cancel = options.interrupt.child_token();
    let outcome = sandbox.run(&request, &cancel).await;
    let result = match outcome {
        Ok(outcome) => match outcome.check(format!("fetch {name}")) {
            Ok(()) => hash_then_store(
                store,
                name,
                &out_dir,
                pin,
                run.limits.output,
                scratch.path(),
            ),
            Err(failed) => Err(failed.into()),
        },
        Err(error) => Err(error.into()),
    };
    crate::store::remove_tree_force(scratch.path())?;
    result
}

/// A fetch may have the host's network only when the person running sealroom said so
/// (`--allow-host-network`); the spec's `network = "host"` alone is refused.
fn check_network_allowed(
    name: &Name,
    run: &RunFetch,
    options: &FetchOptions,
) -> Result<(), FetchStageError> {
    if run.network == FetchNetwork::Host && !options.allow_host_network {
        return Err(FetchStageError::HostNetworkNotAllowed {
            name: name.to_string(),
        });
    }
    Ok(())
}

/// Stores `out_dir` when it matches the pin (or there is none), and returns its digest.
///
/// The container is gone, but whatever it passed a descriptor of `/out` to can still change it.
/// So `/out` is read once, by descriptor ([`Store::add_untrusted_tree`]), into a scratch store
/// in the private scratch directory (0700, in the 0700 store): fresh inodes of sealroom's own,
/// which nothing outside can reach, each blob named by the bytes that were read. The digest of
/// that copy is compared with the pin, and that copy is what the store adopts (renamed, not
/// read again): what was checked is what is stored. At most `limit` bytes (`limits.output`)
/// are read.
fn hash_then_store(
    store: &Store,
    name: &Name,
    out_dir: &Path,
    pin: Option<TreeDigest>,
    limit: ByteSize,
    scratch: &Path,
) -> Result<TreeDigest, Error> {
    let private = Store::open(&scratch.join("hash-only"))?;
    let found =
        private
            .add_untrusted_tree(out_dir, Some(limit.0))
            .map_err(|error| match error {
                crate::store::StoreError::OutputLimit { .. } => {
                    Error::from(FetchStageError::OutputTooLarge {
                        name: name.to_string(),
                        limit,
                    })
                }
                error => error.into(),
            })?;
    if let Some(expected) = pin
        && expected != found
    {
        return Err(FetchStageError::OutputMismatch {
            name: name.to_string(),
            expected,
            found,
        }
        .into());
    }
    store.adopt_tree(&private, &found)?;
    Ok(found)
}

#[derive(Debug, thiserror::Error)]
pub enum FetchStageError {
    #[error(
        "fetch `{name}` has no `{key}` pin\n  hint: run `sealroom pin` to fill it in from one fetch, after reviewing what it fetches"
    )]
    Unpinned { name: String, key: &'static str },
    #[error(
        "fixed-output fetch `{name}` produced tree {found}, but `output` pins {expected}; nothing was stored\n  hint: if the step is meant to produce this tree, review it and pin `output = \"{found}\"`"
    )]
    OutputMismatch {
        name: String,
        expected: TreeDigest,
        found: TreeDigest,
    },
    #[error(
        "fixed-output fetch `{name}` wrote more than its output limit of {limit} to /out (limits.output); nothing was stored\n  hint: raise `limits.output` for this fetch if the output is meant to be that large"
    )]
    OutputTooLarge { name: String, limit: ByteSize },
    #[error(
        "fetch `{name}` asks for host networking (`network = \"host\"`): its container would share the host's network namespace, with every service on the host's loopback and its abstract Unix sockets; a spec alone cannot ask for that\n  hint: review the fetch and pass --allow-host-network to run it on the host's network, or remove `network = \"host\"` to run it on sealroom's fetch network"
    )]
    HostNetworkNotAllowed { name: String },
    #[error(
        "fetch `{name}`: {action} exceeds limits.output = {limit} ({} bytes): {detail}\n  hint: if the fetch is meant to be this large, raise `limits = {{ output = \"…\" }}` of the fetch (or `output` of `[sandbox.limits]`)",
        limit.0
    )]
    OverLimit {
        name: String,
        action: &'static str,
        limit: ByteSize,
        detail: String,
    },
    #[error("cannot edit the spec `{path}`: {detail}")]
    Edit {
        path: std::path::PathBuf,
        detail: String,
    },
    #[error(
        "--offline, and the store lacks {} fetch(es): {}\n  hint: run `sealroom fetch` with the network on first",
        missing.len(),
        missing.join(", ")
    )]
    OfflineMissing { missing: Vec<String> },
}

impl Failure for FetchStageError {
    fn exit_code(&self) -> ExitCode {
        ExitCode::BadInput
    }
}

/// `sealroom fetch`: only the fetch stage, so CI can warm the store.
pub async fn fetch(
    spec_path: &Path,
    store_root: &Path,
    options: &FetchOptions,
) -> Result<Vec<Fetched>, Error> {
    let spec = crate::spec::load(spec_path)?;
    let store = Store::open(store_root)?;
    let runs_containers = spec
        .fetches
        .iter()
        .any(|fetch| matches!(fetch.kind, FetchKind::Run(_)));
    let engine = LazyDocker::new();
    if runs_containers && !options.offline {
        for fetch in &spec.fetches {
            if let FetchKind::Run(run) = &fetch.kind {
                engine.prepare(&run.image).await?;
            }
        }
    }
    fetch_all(&engine, &store, &spec, options).await
}

/// One pin `sealroom pin` set or changed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PinChange {
    pub fetch: String,
    pub key: &'static str,
    pub old: Option<String>,
    pub new: String,
}

/// Sets `key` of the `index`-th fetch of the spec's document, written either as `[[fetch]]`
/// tables or inline, `fetch = [{ … }, …]`; an inline table stays inline.
fn set_fetch_key(document: &mut toml_edit::DocumentMut, index: usize, key: &str, value: &str) {
    const IN_ORDER: &str = "the spec's fetches are the document's `fetch` entries, in order";
    match document.get_mut("fetch").expect(IN_ORDER) {
        toml_edit::Item::ArrayOfTables(tables) => {
            tables.get_mut(index).expect(IN_ORDER)[key] = toml_edit::value(value);
        }
        toml_edit::Item::Value(toml_edit::Value::Array(array)) => {
            let table = array
                .get_mut(index)
                .and_then(toml_edit::Value::as_inline_table_mut)
                .expect(IN_ORDER);
            table.insert(key, value.into());
            // One space around each `=` and after each comma, as `{ a = 1, b = 2 }`.
            table.fmt();
        }
        _ => unreachable!("{IN_ORDER}"),
    }
}

/// `sealroom pin`: fetches each `[[fetch]]` once (downloads and fixed-output steps alike) and
/// writes the digests it got into the spec's `sha256` / `output`, editing the TOML in place so
/// its comments and formatting stay. The downloaded blobs and trees stay in the store, so the
/// next build does not fetch again.
pub async fn pin(
    spec_path: &Path,
    store_root: &Path,
    options: &FetchOptions,
) -> Result<Vec<PinChange>, Error> {
    let spec = crate::spec::load(spec_path)?;
    let text =
        std::fs::read_to_string(spec_path).map_err(|e| Error::io("cannot read", spec_path, e))?;
    let mut document: toml_edit::DocumentMut =
        text.parse()
            .map_err(|error: toml_edit::TomlError| FetchStageError::Edit {
                path: spec_path.to_path_buf(),
                detail: error.to_string(),
            })?;
    let store = Store::open(store_root)?;
    let downloader = Downloader::new(DownloaderOptions::default())?;
    let engine = LazyDocker::new();
    let mut changes = Vec::new();
    for (index, fetch) in spec.fetches.iter().enumerate() {
        let (key, old, new) = match &fetch.kind {
            FetchKind::Lock(lock) => {
                tracing::info!(
                    "pin {}: nothing to pin, the digests of {} pin its files",
                    fetch.name,
                    lock.lock
                );
                continue;
            }
            FetchKind::Url(url) => {
                let scratch = store.temp_dir()?;
                let file = scratch.path().join("download");
                tracing::info!("pin {}: downloading {}", fetch.name, url.url);
                let downloaded =
                    download_at_most(&downloader, &url.url, None, Some(url.output_limit.0), &file)
                        .await
                        .map_err(|error| named_limit(&fetch.name, url.output_limit, error))?;
                let bytes = std::fs::File::open(&file)
                    .map_err(|e| Error::io("cannot read the download", &file, e))?;
                store.add_blob_from_reader(bytes, &url.url, Some(&downloaded.digest))?;
                (
                    "sha256",
                    url.sha256.map(|digest| digest.hex()),
                    downloaded.digest.hex(),
                )
            }
            FetchKind::Run(run) => {
                engine.prepare(&run.image).await?;
                let tree = run_fixed_output(
                    &engine,
                    &store,
                    &fetch.name,
                    run,
                    None,
                    spec.source_date_epoch,
                    options,
                )
                .await?;
                (
                    "output",
                    run.output.map(|digest| digest.to_string()),
                    tree.to_string(),
                )
            }
        };
        if old.as_deref() != Some(new.as_str()) {
            set_fetch_key(&mut document, index, key, &new);
            tracing::info!(
                "pin {}: {key} {} -> {new}",
                fetch.name,
                old.as_deref().unwrap_or("(none)")
            );
            changes.push(PinChange {
                fetch: fetch.name.to_string(),
                key,
                old,
                new,
            });
        }
    }
    if !changes.is_empty() {
        // The user's file: its mode stays (a temp file would make it 0600).
        crate::atomic::write(
            spec_path,
            document.to_string().as_bytes(),
            crate::atomic::Mode::KeepExisting(0o644),
        )
        .map_err(|error| Error::io(error.action, error.path, error.source))?;
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::fake::FakeEngine;

    /// A spec with a fixed-output fetch `peek` (pinned to the tree it writes) on `network`, and
    /// a store, in a temp dir.
    fn fixture(network: &str) -> (tempfile::TempDir, Spec, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store")).unwrap();
        let tree_dir = dir.path().join("expected");
        std::fs::create_dir(&tree_dir).unwrap();
        std::fs::write(tree_dir.join("f"), "peek").unwrap();
        let pin = Store::open(&dir.path().join("throwaway"))
            .unwrap()
            .add_tree(&tree_dir, &|_| false)
            .unwrap();
        let spec_path = dir.path().join("sealroom.toml");
        std::fs::write(
            &spec_path,
            format!(
                "version = 1\nname = \"t\"\n[sandbox]\nimage = \"test/image@sha256:{}\"\n[[fetch]]\nname = \"peek\"\nrun = [\"peek\"]\noutput = \"{pin}\"\nnetwork = \"{network}\"\n",
                "0".repeat(64)
            ),
        )
        .unwrap();
        (dir, crate::spec::load(&spec_path).unwrap(), store)
    }

    fn options(allow_host_network: bool) -> FetchOptions {
        FetchOptions {
            offline: false,
            allow_host_network,
            mirrors: Mirrors::default(),
            jobs: 1,
            build_id: "test".to_string(),
            interrupt: CancellationToken::new(),
        }
    }

    fn writes_peek(request: &StepRequest) -> std::io::Result<i64> {
        std::fs::write(request.out_dir.join("f"), "peek")?;
        Ok(0)
    }

    #[tokio::test]
    async fn host_networking_needs_the_command_line_and_starts_nothing_without_it() {
        let (_dir, spec, store) = fixture("host");
        let sandbox = FakeEngine::new(writes_peek);
        let error = fetch_all(&sandbox, &store, &spec, &options(false))
            .await
            .unwrap_err();
        assert_eq!(error.exit_code(), ExitCode::BadInput);
        let text = error.to_string();
        assert!(
            text.starts_with("fetch `peek` asks for host networking (`network = \"host\"`)")
                && text.contains("pass --allow-host-network"),
            "{text}"
        );
        assert!(sandbox.requests().is_empty(), "no container was started");

        let fetched = fetch_all(&sandbox, &store, &spec, &options(true))
            .await
            .unwrap();
        assert_eq!(sandbox.requests()[0].record.network, Network::Host);
        assert!(!fetched[0].cached);
        // Stored now: a fetch that runs nothing needs no permission.
        fetch_all(&sandbox, &store, &spec, &options(false))
            .await
            .unwrap();
        assert_eq!(sandbox.requests().len(), 1);
    }

    #[tokio::test]
    async fn the_default_network_is_sealroom_s_fetch_network() {
        let (_dir, spec, store) = fixture("bridge");
        let sandbox = FakeEngine::new(writes_peek);
        fetch_all(&sandbox, &store, &spec, &options(false))
            .await
            .unwrap();
        let record = &sandbox.requests()[0].record;
        assert_eq!(record.network, Network::Fetch);
        assert_eq!(record.network.mode(), "sealroom-fetch");
        assert_eq!(record.policy.hostname, None, "a fresh one per container");
    }
}
