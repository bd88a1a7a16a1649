//! A shared action cache on the Remote Execution API (REAPI v2): `--remote-cache
//! grpc[s]://HOST:PORT`. A step's record maps to an `Action` (`mapping`); on a local miss the
//! remote cache is asked, and a hit's outputs are downloaded, checked against their digests and
//! stored; a step that ran locally has its outputs, `Action`, `Command`, input `Directory`s and
//! `ActionResult` uploaded, with a signed statement (`statement`) when the build has a key.
//!
//! The remote cache is an accelerator, never a dependency: every failure to reach or use the
//! server is a warning and the step runs (or stays) local. Only a bad setting (URL, TLS files,
//! trusted keys) is an error, found before the build starts. GRPC calls are in `client`.

pub mod client;
pub mod mapping;
pub mod statement;

use std::collections::HashSet;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use bazel_remote_apis::build::bazel::remote::execution::v2 as reapi;

use crate::digest::{ActionDigest, BlobDigest, TreeDigest};
use crate::error::{ExitCode, Failure};
use crate::sandbox::record::StepRecord;
use crate::sign::keys::{SigningKey, VerifyingKey};
use crate::store::Store;
use crate::store::actions::ActionResult;
use mapping::{EncodedMessage, MappedAction, ParsedTree};
use statement::{CacheResultStatement, STATEMENT_TYPE};

/// `grpc://HOST:PORT` (plain) or `grpcs://HOST:PORT` (TLS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteUrl {
    pub tls: bool,
    /// `HOST:PORT`.
    pub authority: String,
}

impl fmt::Display for RemoteUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "grpcs" } else { "grpc" };
        write!(f, "{scheme}://{}", self.authority)
    }
}

impl FromStr for RemoteUrl {
    type Err = RemoteError;

    fn from_str(text: &str) -> Result<Self, RemoteError> {
        let bad = |detail: &str| RemoteError::BadUrl {
            found: text.to_string(),
            detail: detail.to_string(),
        };
        let (tls, rest) = if let Some(rest) = text.strip_prefix("grpcs://") {
            (true, rest)
        } else if let Some(rest) = text.strip_prefix("grpc://") {
            (false, rest)
        } else {
            return Err(bad("the scheme must be grpc:// or grpcs://"));
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains('/') || authority.contains('@') || authority.contains('?') {
            return Err(bad("expected only HOST:PORT after the scheme"));
        }
        let Some((host, port)) = authority.rsplit_once(':') else {
            return Err(bad("expected HOST:PORT, the port is missing"));
        };
        if host.is_empty() || host == "[]" {
            return Err(bad("the host is empty"));
        }
        if port.parse::<u16>().map_or(true, |port| port == 0) {
            return Err(bad("the port must be a number from 1 to 65535"));
        }
        Ok(RemoteUrl {
            tls,
            authority: authority.to_string(),
        })
    }
}

/// The TLS files of a `grpcs://` cache.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA the server's certificate must chain to (default: the system's roots).
    pub ca: Option<PathBuf>,
    /// A client certificate and its key, for servers that want one.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// Everything `--remote-*` and `--trust-key` say.
#[derive(Debug, Clone)]
pub struct RemoteSettings {
    pub url: RemoteUrl,
    /// The REAPI instance name (may be empty).
    pub instance: String,
    pub tls: TlsFiles,
    /// Read from the cache, never write to it.
    pub read_only: bool,
    /// With keys, an entry counts only if one of them signed it.
    pub trust_keys: Vec<PathBuf>,
}

/// What provenance records of a step served by the remote cache.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RemoteFacts {
    /// The cache's URL.
    pub cache: String,
    pub instance: String,
    /// The REAPI `Action` digest the entry is filed under: `sha256:<hex>`.
    pub action_digest: String,
    pub action_size_bytes: i64,
    /// The key id (sha256 of the DER SubjectPublicKeyInfo) of the trusted key that signed the
    /// entry; `None` when the build trusted the cache without `--trust-key`.
    pub signer: Option<String>,
}

/// A step's output, taken from the remote cache and now in the local store.
#[derive(Debug, Clone)]
pub struct RemoteHit {
    pub result: ActionResult,
    pub facts: RemoteFacts,
}

/// A connected remote cache, shared by the steps of one build.
pub struct RemoteCache {
    client: client::Client,
    url: String,
    instance: String,
    read_only: bool,
    trusted: Vec<VerifyingKey>,
    signer: Option<SigningKey>,
    /// Blobs a download found corrupt: uploaded again whatever FindMissingBlobs says.
    corrupt: Mutex<HashSet<String>>,
}

/// Why a remote entry was not used, or an upload not made. Never fails a build.
#[derive(Debug)]
enum Miss {
    /// The cache has no entry.
    Absent,
    /// The entry is there but not usable (said at warn level).
    Refused(String),
}

impl RemoteSettings {
    /// Checks every setting without connecting: the trusted keys and TLS files are read. A build
    /// calls it before it starts anything.
    pub fn validate(&self) -> Result<(), crate::error::Error> {
        self.trusted_keys()?;
        client::endpoint(self)?;
        Ok(())
    }

    /// Reads the trusted keys (an unreadable or malformed key is an error, before anything runs).
    pub fn trusted_keys(&self) -> Result<Vec<VerifyingKey>, crate::error::Error> {
        let mut keys = Vec::new();
        for path in &self.trust_keys {
            keys.push(VerifyingKey::from_pem_file(path)?);
        }
        Ok(keys)
    }
}

impl RemoteCache {
    /// Connects to the cache of `settings`. A bad setting is an error; a server that cannot be
    /// reached or used is a warning and `None`: the build runs locally.
    pub async fn connect(
        settings: &RemoteSettings,
        signer: Option<SigningKey>,
    ) -> Result<Option<Arc<RemoteCache>>, crate::error::Error> {
        let trusted = settings.trusted_keys()?;
        let client = match client::Client::connect(settings).await {
            Ok(client) => client,
            Err(error) if error.is_misconfiguration() => return Err(error.into()),
            Err(error) => {
                tracing::warn!("remote cache {}: {error}; building locally", settings.url);
                return Ok(None);
            }
        };
        if trusted.is_empty() {
            tracing::info!(
                "remote cache {}: no --trust-key given, its entries are taken unverified",
                settings.url
            );
        }
        if !settings.read_only && signer.is_none() {
            tracing::info!(
                "remote cache {}: no --key given, results are uploaded unsigned",
                settings.url
            );
        }
        tracing::info!(
            "remote cache {} (instance `{}`), batch limit {} bytes{}",
            settings.url,
            settings.instance,
            client.max_batch_bytes,
            if settings.read_only {
                ", read-only"
            } else {
                ""
            }
        );
        Ok(Some(Arc::new(RemoteCache {
            client,
            url: settings.url.to_string(),
            instance: settings.instance.clone(),
            read_only: settings.read_only,
            trusted,
            signer,
            corrupt: Mutex::new(HashSet::new()),
        })))
    }

    /// The record's REAPI messages (reading its input trees from the store).
    async fn map(store: &Store, record: &StepRecord) -> Result<MappedAction, String> {
        let (store, record) = (store.clone(), record.clone());
        tokio::task::spawn_blocking(move || {
            let read = |tree: &TreeDigest| store.read_tree(tree).map_err(|e| e.to_string());
            mapping::map_record(&record, &read).map_err(|error| error.to_string())
        })
        .await
        .map_err(|error| error.to_string())?
    }

    /// The step's output from the remote cache, stored locally; `None` on a miss (a problem
    /// with the entry or the server is a warning, and a miss).
    pub async fn lookup(
        &self,
        store: &Store,
        record: &StepRecord,
        step: &str,
    ) -> Option<RemoteHit> {
        let mapped = match Self::map(store, record).await {
            Ok(mapped) => mapped,
            Err(error) => {
                tracing::warn!("step {step}: cannot map it to a remote action: {error}");
                return None;
            }
        };
        let hit = self
            .lookup_mapped(
                store,
                &mapped,
                &record.action_key(),
                &format!("step {step}"),
            )
            .await?;
        tracing::info!(
            "step {step}: from the remote cache (action {}), output {}",
            mapped.action.digest.hash,
            hit.result.output
        );
        Some(hit)
    }

    /// The contents of image `image_id` the local cache files under `key` (see
    /// `mapping::map_image_contents`), from the remote cache and now in the store.
    pub async fn lookup_image_contents(
        &self,
        store: &Store,
        image_id: &str,
        key: &ActionDigest,
        files: &[&str],
    ) -> Option<ActionResult> {
        let mapped = mapping::map_image_contents(image_id, key, files);
        let hit = self
            .lookup_mapped(store, &mapped, key, &format!("image {image_id}"))
            .await?;
        Some(hit.result)
    }

    async fn lookup_mapped(
        &self,
        store: &Store,
        mapped: &MappedAction,
        action_key: &ActionDigest,
        what: &str,
    ) -> Option<RemoteHit> {
        match self.fetch(store, action_key, mapped).await {
            Ok(hit) => Some(hit),
            Err(Miss::Absent) => {
                tracing::info!("{what}: not in the remote cache");
                None
            }
            Err(Miss::Refused(why)) => {
                tracing::warn!("{what}: the remote cache entry is not used: {why}");
                None
            }
        }
    }

    async fn fetch(
        &self,
        store: &Store,
        action_key: &ActionDigest,
        mapped: &MappedAction,
    ) -> Result<RemoteHit, Miss> {
        let action = &mapped.action.digest;
        let result = self
            .client
            .get_action_result(action)
            .await
            .map_err(|error| Miss::Refused(error.to_string()))?
            .ok_or(Miss::Absent)?;
        if result.exit_code != 0 {
            return Err(Miss::Refused(format!(
                "it records exit code {}",
                result.exit_code
            )));
        }
        let signed = if self.trusted.is_empty() {
            None
        } else {
            Some(
                statement::verified_statement(&result, &self.trusted)
                    .map_err(|error| Miss::Refused(error.to_string()))?,
            )
        };
        let [output] = result.output_directories.as_slice() else {
            return Err(Miss::Refused(format!(
                "expected one output directory `{}`, found {}",
                mapping::OUTPUT_PATH,
                result.output_directories.len()
            )));
        };
        if output.path != mapping::OUTPUT_PATH
            || !result.output_files.is_empty()
            || !result.output_symlinks.is_empty()
        {
            return Err(Miss::Refused(format!(
                "expected only the output directory `{}`",
                mapping::OUTPUT_PATH
            )));
        }
        let tree_digest = output
            .tree_digest
            .clone()
            .ok_or_else(|| Miss::Refused("the output directory has no tree digest".to_string()))?;
        let log = result
            .stdout_digest
            .clone()
            .ok_or_else(|| Miss::Refused("the entry has no log (stdout digest)".to_string()))?;
        if let Some((statement, _)) = &signed {
            let check = |field, signed: &str, found: &str| {
                statement::check_field(field, signed, found)
                    .map_err(|e| Miss::Refused(e.to_string()))
            };
            check("action", &statement.action, &statement::digest_text(action))?;
            check("action key", &statement.action_key, &action_key.to_string())?;
            check(
                "output tree",
                &statement.output_tree,
                &statement::digest_text(&tree_digest),
            )?;
            check("log", &statement.log.hex(), &log.hash)?;
        }

        // The Tree, then every file of it and the log, each checked against its digest.
        let tree_bytes = self.read_small(&tree_digest).await?;
        let parsed = ParsedTree::parse(&tree_bytes).map_err(|e| Miss::Refused(e.to_string()))?;
        let mut blobs: Vec<reapi::Digest> = parsed
            .files()
            .into_iter()
            .map(|(digest, size)| reapi::Digest {
                hash: digest.hex(),
                size_bytes: size as i64,
            })
            .collect();
        blobs.push(log.clone());
        self.download(store, blobs).await?;
        let output_tree = {
            let store = store.clone();
            tokio::task::spawn_blocking(move || {
                parsed.store(&mut |object| store.add_tree_object(object).map_err(|e| e.to_string()))
            })
            .await
            .map_err(|error| Miss::Refused(error.to_string()))?
            .map_err(|error| Miss::Refused(error.to_string()))?
        };
        let log = BlobDigest::from_hex(&log.hash).map_err(|e| Miss::Refused(e.to_string()))?;
        let signer = match signed {
            Some((statement, signer)) => {
                if statement.output != output_tree {
                    return Err(Miss::Refused(format!(
                        "the signed statement names output {}, the downloaded tree is {output_tree}",
                        statement.output
                    )));
                }
                Some((signer, statement.invocation))
            }
            None => None,
        };
        let invocation = signer
            .as_ref()
            .map(|(_, invocation)| invocation.clone())
            .or_else(|| invocation_of(&result));
        Ok(RemoteHit {
            result: ActionResult {
                output: output_tree,
                log,
                invocation,
            },
            facts: RemoteFacts {
                cache: self.url.clone(),
                instance: self.instance.clone(),
                action_digest: format!("sha256:{}", action.hash),
                action_size_bytes: action.size_bytes,
                signer: signer.map(|(signer, _)| signer),
            },
        })
    }

    /// A small blob (a `Tree` message), read whole and checked.
    async fn read_small(&self, digest: &reapi::Digest) -> Result<Vec<u8>, Miss> {
        let bytes = if self.client.fits_batch(digest.size_bytes.max(0) as u64) {
            let mut blobs = self
                .client
                .batch_read(vec![digest.clone()])
                .await
                .map_err(|error| Miss::Refused(error.to_string()))?;
            blobs.pop().map(|(_, bytes)| bytes).unwrap_or_default()
        } else {
            let dir = tempfile::tempdir().map_err(|e| Miss::Refused(e.to_string()))?;
            let path = dir.path().join("blob");
            self.client
                .byte_stream_read(digest, &path)
                .await
                .map_err(|error| Miss::Refused(error.to_string()))?;
            std::fs::read(&path).map_err(|e| Miss::Refused(e.to_string()))?
        };
        let found = mapping::digest_of(&bytes);
        if found != *digest {
            self.mark_corrupt(&digest.hash);
            return Err(Miss::Refused(format!(
                "blob {} from the cache has digest {}/{}",
                statement::digest_text(digest),
                found.hash,
                found.size_bytes
            )));
        }
        Ok(bytes)
    }

    fn mark_corrupt(&self, hash: &str) {
        self.corrupt
            .lock()
            .expect("the corrupt set is never poisoned")
            .insert(hash.to_string());
    }

    /// Downloads `blobs` the store lacks into it, each checked against its digest: small ones
    /// in batches, the others through ByteStream into a temp file of the store.
    async fn download(&self, store: &Store, blobs: Vec<reapi::Digest>) -> Result<(), Miss> {
        let mut small = Vec::new();
        let mut large = Vec::new();
        let mut seen = HashSet::new();
        for digest in blobs {
            let local =
                BlobDigest::from_hex(&digest.hash).map_err(|e| Miss::Refused(e.to_string()))?;
            if !seen.insert(digest.hash.clone()) || store.has_blob(&local) {
                continue;
            }
            if self.client.fits_batch(digest.size_bytes.max(0) as u64) {
                small.push(digest);
            } else {
                large.push(digest);
            }
        }
        if !small.is_empty() {
            let answers = self
                .client
                .batch_read(small)
                .await
                .map_err(|error| Miss::Refused(error.to_string()))?;
            let store = store.clone();
            let stored = tokio::task::spawn_blocking(move || {
                for (digest, bytes) in answers {
                    store_checked(&store, &digest, std::io::Cursor::new(bytes))?;
                }
                Ok::<(), (String, String)>(())
            })
            .await
            .map_err(|error| Miss::Refused(error.to_string()))?;
            if let Err((hash, why)) = stored {
                self.mark_corrupt(&hash);
                return Err(Miss::Refused(why));
            }
        }
        for digest in large {
            let dir = store.temp_dir().map_err(|e| Miss::Refused(e.to_string()))?;
            let path = dir.path().join("blob");
            self.client
                .byte_stream_read(&digest, &path)
                .await
                .map_err(|error| Miss::Refused(error.to_string()))?;
            let store = store.clone();
            let stored = tokio::task::spawn_blocking(move || {
                let file =
                    std::fs::File::open(&path).map_err(|e| (digest.hash.clone(), e.to_string()))?;
                let stored = store_checked(&store, &digest, file);
                drop(dir);
                stored
            })
            .await
            .map_err(|error| Miss::Refused(error.to_string()))?;
            if let Err((hash, why)) = stored {
                self.mark_corrupt(&hash);
                return Err(Miss::Refused(why));
            }
        }
        Ok(())
    }

    /// Uploads a step that ran locally: the blobs the cache lacks (outputs, log, `Tree`,
    /// `Action`, `Command`, input `Directory`s), then its `ActionResult` with the signed
    /// statement. A failure is a warning. Nothing at all in read-only mode.
    pub async fn upload(
        &self,
        store: &Store,
        record: &StepRecord,
        result: &ActionResult,
        step: &str,
    ) {
        if self.read_only {
            return;
        }
        let uploaded = match Self::map(store, record).await {
            Ok(mapped) => {
                self.try_upload(store, &mapped, &record.action_key(), result)
                    .await
            }
            Err(error) => Err(error),
        };
        match uploaded {
            Ok(action) => {
                tracing::info!("step {step}: uploaded to the remote cache (action {action})")
            }
            Err(error) => tracing::warn!("step {step}: not uploaded to the remote cache: {error}"),
        }
    }

    /// Uploads the contents of image `image_id` read here (see [`Self::lookup_image_contents`]).
    pub async fn upload_image_contents(
        &self,
        store: &Store,
        image_id: &str,
        key: &ActionDigest,
        files: &[&str],
        result: &ActionResult,
    ) {
        if self.read_only {
            return;
        }
        let mapped = mapping::map_image_contents(image_id, key, files);
        match self.try_upload(store, &mapped, key, result).await {
            Ok(action) => tracing::info!(
                "image {image_id}: contents uploaded to the remote cache (action {action})"
            ),
            Err(error) => tracing::warn!(
                "image {image_id}: contents not uploaded to the remote cache: {error}"
            ),
        }
    }

    async fn try_upload(
        &self,
        store: &Store,
        mapped: &MappedAction,
        action_key: &ActionDigest,
        result: &ActionResult,
    ) -> Result<String, String> {
        let (tree, root, files) = {
            let (store, output) = (store.clone(), result.output);
            tokio::task::spawn_blocking(move || {
                let read = |tree: &TreeDigest| store.read_tree(tree).map_err(|e| e.to_string());
                let (tree, root) =
                    mapping::output_tree(&output, &read).map_err(|error| error.to_string())?;
                let parsed = ParsedTree::parse(&tree.bytes).map_err(|error| error.to_string())?;
                Ok::<_, String>((tree, root, parsed.files()))
            })
            .await
            .map_err(|error| error.to_string())??
        };
        let log_size = std::fs::metadata(store.blob_path(&result.log))
            .map_err(|error| format!("the log blob {}: {error}", result.log))?
            .len();

        // Messages are in memory; file blobs (outputs and the log) are read from the store.
        let mut messages: Vec<EncodedMessage> =
            vec![mapped.action.clone(), mapped.command.clone(), tree.clone()];
        messages.extend(mapped.directories.iter().cloned());
        let mut files: Vec<(BlobDigest, u64)> = files;
        files.push((result.log, log_size));
        let mut all: Vec<reapi::Digest> = messages.iter().map(|m| m.digest.clone()).collect();
        all.extend(files.iter().map(|(digest, size)| reapi::Digest {
            hash: digest.hex(),
            size_bytes: *size as i64,
        }));
        let mut unique = HashSet::new();
        all.retain(|digest| unique.insert(digest.hash.clone()));
        let mut missing: HashSet<String> = self
            .client
            .find_missing(all)
            .await
            .map_err(|error| error.to_string())?
            .into_iter()
            .map(|digest| digest.hash)
            .collect();
        missing.extend(
            self.corrupt
                .lock()
                .expect("the corrupt set is never poisoned")
                .iter()
                .filter(|hash| unique.contains(*hash))
                .cloned(),
        );

        let mut batch: Vec<(reapi::Digest, Vec<u8>)> = Vec::new();
        for message in messages {
            if missing.remove(&message.digest.hash) {
                if self.client.fits_batch(message.bytes.len() as u64) {
                    batch.push((message.digest, message.bytes));
                } else {
                    let dir = store.temp_dir().map_err(|e| e.to_string())?;
                    let path = dir.path().join("message");
                    std::fs::write(&path, &message.bytes).map_err(|e| e.to_string())?;
                    self.client
                        .byte_stream_write(&message.digest, &path)
                        .await
                        .map_err(|error| error.to_string())?;
                }
            }
        }
        for (digest, size) in &files {
            if !missing.remove(&digest.hex()) {
                continue;
            }
            let reapi_digest = reapi::Digest {
                hash: digest.hex(),
                size_bytes: *size as i64,
            };
            let path = store.blob_path(digest);
            if self.client.fits_batch(*size) {
                let bytes = tokio::fs::read(&path)
                    .await
                    .map_err(|error| format!("reading {}: {error}", path.display()))?;
                batch.push((reapi_digest, bytes));
            } else {
                self.client
                    .byte_stream_write(&reapi_digest, &path)
                    .await
                    .map_err(|error| error.to_string())?;
            }
        }
        self.client
            .batch_update(batch)
            .await
            .map_err(|error| error.to_string())?;

        let log = reapi::Digest {
            hash: result.log.hex(),
            size_bytes: log_size as i64,
        };
        let invocation = result.invocation.clone().unwrap_or_default();
        let mut metadata = reapi::ExecutedActionMetadata {
            worker: format!("sealroom {} build {invocation}", env!("CARGO_PKG_VERSION")),
            ..Default::default()
        };
        if let Some(key) = &self.signer {
            let statement = CacheResultStatement {
                statement_type: STATEMENT_TYPE.to_string(),
                action: statement::digest_text(&mapped.action.digest),
                action_key: action_key.to_string(),
                output_tree: statement::digest_text(&tree.digest),
                output: result.output,
                log: result.log,
                invocation,
            };
            metadata.auxiliary_metadata.push(statement.sign(key));
        }
        let action_result = reapi::ActionResult {
            output_directories: vec![reapi::OutputDirectory {
                path: mapping::OUTPUT_PATH.to_string(),
                tree_digest: Some(tree.digest.clone()),
                is_topologically_sorted: false,
                root_directory_digest: Some(root),
            }],
            exit_code: 0,
            stdout_digest: Some(log),
            execution_metadata: Some(metadata),
            ..Default::default()
        };
        self.client
            .update_action_result(&mapped.action.digest, action_result)
            .await
            .map_err(|error| error.to_string())?;
        Ok(mapped.action.digest.hash.clone())
    }
}

/// The build id a writer put in `worker` (`sealroom <version> build <id>`).
fn invocation_of(result: &reapi::ActionResult) -> Option<String> {
    let worker = &result.execution_metadata.as_ref()?.worker;
    let id = worker.rsplit_once(" build ")?.1;
    (!id.is_empty()).then(|| id.to_string())
}

/// Stores `reader`'s bytes only if they are the blob `digest`; on a mismatch nothing is stored
/// and the error names the blob.
fn store_checked(
    store: &Store,
    digest: &reapi::Digest,
    reader: impl std::io::Read,
) -> Result<(), (String, String)> {
    let expected =
        BlobDigest::from_hex(&digest.hash).map_err(|e| (digest.hash.clone(), e.to_string()))?;
    let origin = format!("the remote cache (blob {})", digest.hash);
    let (_, size) = store
        .add_blob_from_reader(reader, &origin, Some(&expected))
        .map_err(|error| (digest.hash.clone(), error.to_string()))?;
    if size as i64 != digest.size_bytes {
        return Err((
            digest.hash.clone(),
            format!(
                "blob {} has {size} bytes, its digest says {}",
                digest.hash, digest.size_bytes
            ),
        ));
    }
    Ok(())
}

/// What went wrong with the remote cache. Only misconfiguration reaches the user as an error.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error(
        "invalid remote cache URL `{found}`: {detail} (expected grpc://HOST:PORT or grpcs://HOST:PORT)"
    )]
    BadUrl { found: String, detail: String },
    #[error("cannot read {}: {detail}", path.display())]
    ReadFile { path: PathBuf, detail: String },
    #[error("cannot write {}: {detail}", path.display())]
    WriteFile { path: PathBuf, detail: String },
    #[error("--remote-client-cert and --remote-client-key go together: give both or neither")]
    HalfIdentity,
    #[error("TLS files are given but the remote cache URL `{url}` is not grpcs://")]
    TlsWithoutGrpcs { url: String },
    #[error("invalid TLS setup of the remote cache: {0}")]
    Tls(String),
    #[error("cannot connect to {url}: {detail}")]
    Connect { url: String, detail: String },
    #[error("the remote cache {url} does not offer SHA-256 digests")]
    NoSha256 { url: String },
    #[error("{call} failed: {code}: {message}")]
    Rpc {
        call: &'static str,
        code: String,
        message: String,
    },
    #[error("{call} refused blob {digest}: {detail}")]
    BlobRefused {
        call: &'static str,
        digest: String,
        detail: String,
    },
}

impl RemoteError {
    /// A setting the user must fix (an error), as opposed to a server that could not be used (a
    /// warning, and a local build).
    pub fn is_misconfiguration(&self) -> bool {
        matches!(
            self,
            RemoteError::BadUrl { .. }
                | RemoteError::ReadFile { .. }
                | RemoteError::HalfIdentity
                | RemoteError::TlsWithoutGrpcs { .. }
                | RemoteError::Tls(_)
        )
    }
}

impl Failure for RemoteError {
    fn exit_code(&self) -> ExitCode {
        ExitCode::BadInput
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_grpc_or_grpcs_host_and_port() {
        let url: RemoteUrl = "grpc://127.0.0.1:8980".parse().unwrap();
        assert_eq!(
            url,
            RemoteUrl {
                tls: false,
                authority: "127.0.0.1:8980".to_string()
            }
        );
        assert_eq!(url.to_string(), "grpc://127.0.0.1:8980");
        let url: RemoteUrl = "grpcs://cache.example:443/".parse().unwrap();
        assert!(url.tls);
        assert_eq!(url.authority, "cache.example:443");
        for (bad, why) in [
            ("http://127.0.0.1:1", "grpc:// or grpcs://"),
            ("127.0.0.1:1", "grpc:// or grpcs://"),
            ("grpc://127.0.0.1", "the port is missing"),
            ("grpc://127.0.0.1:0", "from 1 to 65535"),
            ("grpc://127.0.0.1:99999", "from 1 to 65535"),
            ("grpc://:80", "the host is empty"),
            ("grpc://host:80/path", "only HOST:PORT"),
        ] {
            let error = bad.parse::<RemoteUrl>().unwrap_err().to_string();
            assert!(error.contains(why) && error.contains(bad), "{bad}: {error}");
        }
    }

    #[test]
    fn the_build_id_comes_back_from_the_worker_field() {
        let result = reapi::ActionResult {
            execution_metadata: Some(reapi::ExecutedActionMetadata {
                worker: "sealroom 0.1.0 build abc-123".to_string(),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(invocation_of(&result).as_deref(), Some("abc-123"));
        assert_eq!(invocation_of(&reapi::ActionResult::default()), None);
    }
}
