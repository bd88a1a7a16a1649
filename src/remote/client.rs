//! The REAPI v2 calls sealroom makes, on one gRPC channel: Capabilities, ActionCache (get,
//! update), ContentAddressableStorage (FindMissingBlobs, BatchUpdateBlobs, BatchReadBlobs) and
//! ByteStream (Read, Write) for blobs above the server's batch limit. Each call says which one
//! failed; deciding what a failure means for the build is the caller's job.

use std::path::Path;
use std::time::Duration;

use bazel_remote_apis::build::bazel::remote::execution::v2 as reapi;
use bazel_remote_apis::google::bytestream;
use bytestream::byte_stream_client::ByteStreamClient;
use futures_util::StreamExt;
use reapi::action_cache_client::ActionCacheClient;
use reapi::capabilities_client::CapabilitiesClient;
use reapi::content_addressable_storage_client::ContentAddressableStorageClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use super::{RemoteError, RemoteSettings};

/// The most one gRPC message may hold: a batch read answers with up to the server's batch limit
/// (a few MiB) of blobs.
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
/// The size of one ByteStream write.
const CHUNK_BYTES: usize = 1024 * 1024;
/// The batch limit assumed when the server states none (REAPI: 0 means no limit; gRPC's default
/// message size still applies on most servers).
const DEFAULT_BATCH_BYTES: u64 = 4 * 1024 * 1024;
/// How long a unary call (not ByteStream) may take.
const UNARY_TIMEOUT: Duration = Duration::from_secs(60);
/// What a batch request spends on each blob beyond its bytes (digest, framing).
const PER_BLOB_OVERHEAD: u64 = 256;

/// A connection to one instance of a REAPI server.
#[derive(Clone)]
pub struct Client {
    channel: Channel,
    instance: String,
    /// `max_batch_total_size_bytes`, as the server stated it (or the default).
    pub max_batch_bytes: u64,
}

fn rpc(call: &'static str) -> impl Fn(tonic::Status) -> RemoteError {
    move |status| RemoteError::Rpc {
        call,
        code: format!("{:?}", status.code()),
        message: status.message().to_string(),
    }
}

/// The endpoint of `settings`, with TLS for `grpcs://`.
pub(super) fn endpoint(settings: &RemoteSettings) -> Result<Endpoint, RemoteError> {
    let scheme = if settings.url.tls { "https" } else { "http" };
    let uri = format!("{scheme}://{}", settings.url.authority);
    let mut endpoint = Endpoint::from_shared(uri.clone())
        .map_err(|error| RemoteError::BadUrl {
            found: settings.url.to_string(),
            detail: error.to_string(),
        })?
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(600))
        .tcp_nodelay(true);
    if settings.url.tls {
        let mut tls = ClientTlsConfig::new();
        match &settings.tls.ca {
            Some(ca) => tls = tls.ca_certificate(Certificate::from_pem(read_pem(ca)?)),
            None => tls = tls.with_native_roots(),
        }
        match (&settings.tls.cert, &settings.tls.key) {
            (Some(cert), Some(key)) => {
                tls = tls.identity(Identity::from_pem(read_pem(cert)?, read_pem(key)?));
            }
            (None, None) => {}
            _ => return Err(RemoteError::HalfIdentity),
        }
        endpoint = endpoint
            .tls_config(tls)
            .map_err(|error| RemoteError::Tls(error.to_string()))?;
    } else if settings.tls.ca.is_some() || settings.tls.cert.is_some() {
        return Err(RemoteError::TlsWithoutGrpcs {
            url: settings.url.to_string(),
        });
    }
    Ok(endpoint)
}

fn read_pem(path: &Path) -> Result<Vec<u8>, RemoteError> {
    std::fs::read(path).map_err(|source| RemoteError::ReadFile {
        path: path.to_path_buf(),
        detail: source.to_string(),
    })
}

impl Client {
    /// Checks the settings (TLS files are read here), then connects and asks for the server's
    /// capabilities. A bad setting is [`RemoteError::is_misconfiguration`]; anything else means
    /// the server could not be used.
    pub async fn connect(settings: &RemoteSettings) -> Result<Client, RemoteError> {
        let endpoint = endpoint(settings)?;
        let channel = endpoint
            .connect()
            .await
            .map_err(|error| RemoteError::Connect {
                url: settings.url.to_string(),
                detail: error_chain(&error),
            })?;
        let instance = settings.instance.clone();
        let capabilities = CapabilitiesClient::new(channel.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .get_capabilities(unary(reapi::GetCapabilitiesRequest {
                instance_name: instance.clone(),
            }))
            .await
            .map_err(rpc("GetCapabilities"))?
            .into_inner();
        let cache = capabilities.cache_capabilities.unwrap_or_default();
        let sha256 = reapi::digest_function::Value::Sha256 as i32;
        if !cache.digest_functions.is_empty() && !cache.digest_functions.contains(&sha256) {
            return Err(RemoteError::NoSha256 {
                url: settings.url.to_string(),
            });
        }
        let max_batch_bytes = match u64::try_from(cache.max_batch_total_size_bytes) {
            Ok(0) | Err(_) => DEFAULT_BATCH_BYTES,
            Ok(bytes) => bytes,
        };
        Ok(Client {
            channel,
            instance,
            max_batch_bytes,
        })
    }

    fn action_cache(&self) -> ActionCacheClient<Channel> {
        ActionCacheClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    fn cas(&self) -> ContentAddressableStorageClient<Channel> {
        ContentAddressableStorageClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    fn byte_stream(&self) -> ByteStreamClient<Channel> {
        ByteStreamClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    /// Whether a blob of `size` bytes fits a batch request.
    pub fn fits_batch(&self, size: u64) -> bool {
        size + PER_BLOB_OVERHEAD <= self.batch_budget()
    }

    /// What the blobs of one batch request may add up to, with room for the request's framing.
    fn batch_budget(&self) -> u64 {
        self.max_batch_bytes.saturating_sub(4096)
    }

    /// The cached result of `action`; `None` when the cache has none.
    pub async fn get_action_result(
        &self,
        action: &reapi::Digest,
    ) -> Result<Option<reapi::ActionResult>, RemoteError> {
        let request = reapi::GetActionResultRequest {
            instance_name: self.instance.clone(),
            action_digest: Some(action.clone()),
            ..Default::default()
        };
        match self.action_cache().get_action_result(unary(request)).await {
            Ok(response) => Ok(Some(response.into_inner())),
            Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
            Err(status) => Err(rpc("GetActionResult")(status)),
        }
    }

    pub async fn update_action_result(
        &self,
        action: &reapi::Digest,
        result: reapi::ActionResult,
    ) -> Result<(), RemoteError> {
        let request = reapi::UpdateActionResultRequest {
            instance_name: self.instance.clone(),
            action_digest: Some(action.clone()),
            action_result: Some(result),
            ..Default::default()
        };
        self.action_cache()
            .update_action_result(unary(request))
            .await
            .map_err(rpc("UpdateActionResult"))?;
        Ok(())
    }

    /// Which of `digests` the CAS lacks.
    pub async fn find_missing(
        &self,
        digests: Vec<reapi::Digest>,
    ) -> Result<Vec<reapi::Digest>, RemoteError> {
        let mut missing = Vec::new();
        // Bounded requests: a digest is about 80 bytes on the wire.
        for chunk in digests.chunks(10_000) {
            let request = reapi::FindMissingBlobsRequest {
                instance_name: self.instance.clone(),
                blob_digests: chunk.to_vec(),
                ..Default::default()
            };
            let response = self
                .cas()
                .find_missing_blobs(unary(request))
                .await
                .map_err(rpc("FindMissingBlobs"))?;
            missing.extend(response.into_inner().missing_blob_digests);
        }
        Ok(missing)
    }

    /// Uploads blobs that each fit a batch, in as few requests under the batch limit as it
    /// takes.
    pub async fn batch_update(
        &self,
        blobs: Vec<(reapi::Digest, Vec<u8>)>,
    ) -> Result<(), RemoteError> {
        let budget = self.batch_budget();
        let mut batches: Vec<Vec<reapi::batch_update_blobs_request::Request>> = vec![Vec::new()];
        let mut used = 0u64;
        for (digest, data) in blobs {
            let cost = data.len() as u64 + PER_BLOB_OVERHEAD;
            if used + cost > budget && !batches.last().expect("one batch").is_empty() {
                batches.push(Vec::new());
                used = 0;
            }
            used += cost;
            batches.last_mut().expect("one batch").push(
                reapi::batch_update_blobs_request::Request {
                    digest: Some(digest),
                    data,
                    compressor: 0,
                },
            );
        }
        for requests in batches.into_iter().filter(|batch| !batch.is_empty()) {
            let response = self
                .cas()
                .batch_update_blobs(unary(reapi::BatchUpdateBlobsRequest {
                    instance_name: self.instance.clone(),
                    requests,
                    ..Default::default()
                }))
                .await
                .map_err(rpc("BatchUpdateBlobs"))?;
            for answer in response.into_inner().responses {
                if let Some(status) = answer.status.filter(|status| status.code != 0) {
                    return Err(RemoteError::BlobRefused {
                        call: "BatchUpdateBlobs",
                        digest: answer.digest.map(|d| d.hash).unwrap_or_default(),
                        detail: format!("code {}: {}", status.code, status.message),
                    });
                }
            }
        }
        Ok(())
    }

    /// Reads blobs that each fit a batch; every digest asked for is in the answer or this fails.
    /// The bytes are not checked here (the caller stores them by their expected digest).
    pub async fn batch_read(
        &self,
        digests: Vec<reapi::Digest>,
    ) -> Result<Vec<(reapi::Digest, Vec<u8>)>, RemoteError> {
        let budget = self.batch_budget();
        let mut batches: Vec<Vec<reapi::Digest>> = vec![Vec::new()];
        let mut used = 0u64;
        for digest in digests {
            let cost = digest.size_bytes.max(0) as u64 + PER_BLOB_OVERHEAD;
            if used + cost > budget && !batches.last().expect("one batch").is_empty() {
                batches.push(Vec::new());
                used = 0;
            }
            used += cost;
            batches.last_mut().expect("one batch").push(digest);
        }
        let mut blobs = Vec::new();
        for digests in batches.into_iter().filter(|batch| !batch.is_empty()) {
            let asked = digests.len();
            let response = self
                .cas()
                .batch_read_blobs(unary(reapi::BatchReadBlobsRequest {
                    instance_name: self.instance.clone(),
                    digests,
                    ..Default::default()
                }))
                .await
                .map_err(rpc("BatchReadBlobs"))?;
            let responses = response.into_inner().responses;
            if responses.len() != asked {
                return Err(RemoteError::BlobRefused {
                    call: "BatchReadBlobs",
                    digest: String::new(),
                    detail: format!("asked for {asked} blobs, got {}", responses.len()),
                });
            }
            for answer in responses {
                let digest = answer.digest.unwrap_or_default();
                if let Some(status) = answer.status.filter(|status| status.code != 0) {
                    return Err(RemoteError::BlobRefused {
                        call: "BatchReadBlobs",
                        digest: digest.hash,
                        detail: format!("code {}: {}", status.code, status.message),
                    });
                }
                blobs.push((digest, answer.data));
            }
        }
        Ok(blobs)
    }

    fn resource_prefix(&self) -> String {
        if self.instance.is_empty() {
            String::new()
        } else {
            format!("{}/", self.instance)
        }
    }

    /// Streams the file at `path` (whose digest is `digest`) into the CAS with ByteStream Write.
    pub async fn byte_stream_write(
        &self,
        digest: &reapi::Digest,
        path: &Path,
    ) -> Result<(), RemoteError> {
        let resource = format!(
            "{}uploads/{}/blobs/{}/{}",
            self.resource_prefix(),
            upload_id(),
            digest.hash,
            digest.size_bytes
        );
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|error| RemoteError::ReadFile {
                path: path.to_path_buf(),
                detail: error.to_string(),
            })?;
        let total = digest.size_bytes;
        let path_owned = path.to_path_buf();
        // One request per chunk, read as the stream is polled: the file is never all in memory.
        let requests = futures_util::stream::unfold(
            (file, 0i64, false, resource),
            move |(mut file, offset, done, resource)| {
                let path = path_owned.clone();
                async move {
                    if done {
                        return None;
                    }
                    let mut buffer = vec![0u8; CHUNK_BYTES];
                    let mut filled = 0;
                    while filled < buffer.len() {
                        match file.read(&mut buffer[filled..]).await {
                            Ok(0) => break,
                            Ok(n) => filled += n,
                            Err(error) => {
                                tracing::warn!("reading {}: {error}", path.display());
                                return None;
                            }
                        }
                    }
                    buffer.truncate(filled);
                    let next = offset + filled as i64;
                    let finish = next >= total || filled == 0;
                    let request = bytestream::WriteRequest {
                        resource_name: if offset == 0 {
                            resource.clone()
                        } else {
                            String::new()
                        },
                        write_offset: offset,
                        finish_write: finish,
                        data: buffer,
                    };
                    Some((request, (file, next, finish, resource)))
                }
            },
        );
        let response = self
            .byte_stream()
            .write(requests)
            .await
            .map_err(rpc("ByteStream.Write"))?
            .into_inner();
        if response.committed_size != total && response.committed_size != -1 {
            return Err(RemoteError::BlobRefused {
                call: "ByteStream.Write",
                digest: digest.hash.clone(),
                detail: format!("committed {} of {total} bytes", response.committed_size),
            });
        }
        Ok(())
    }

    /// Streams the blob `digest` into a new file at `dest` with ByteStream Read. The bytes are
    /// not checked here.
    pub async fn byte_stream_read(
        &self,
        digest: &reapi::Digest,
        dest: &Path,
    ) -> Result<(), RemoteError> {
        let resource = format!(
            "{}blobs/{}/{}",
            self.resource_prefix(),
            digest.hash,
            digest.size_bytes
        );
        let mut stream = self
            .byte_stream()
            .read(bytestream::ReadRequest {
                resource_name: resource,
                read_offset: 0,
                read_limit: 0,
            })
            .await
            .map_err(rpc("ByteStream.Read"))?
            .into_inner();
        let write_error = |error: std::io::Error| RemoteError::WriteFile {
            path: dest.to_path_buf(),
            detail: error.to_string(),
        };
        let mut file = tokio::fs::File::create(dest).await.map_err(write_error)?;
        let mut received = 0i64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(rpc("ByteStream.Read"))?;
            received += chunk.data.len() as i64;
            if received > digest.size_bytes {
                return Err(RemoteError::BlobRefused {
                    call: "ByteStream.Read",
                    digest: digest.hash.clone(),
                    detail: format!("more than the {} bytes its digest says", digest.size_bytes),
                });
            }
            file.write_all(&chunk.data).await.map_err(write_error)?;
        }
        file.flush().await.map_err(write_error)?;
        Ok(())
    }
}

/// A unary call's request, with its deadline: a server that stops answering costs a step at most
/// this before it runs locally. (ByteStream calls have the channel's longer limit.)
fn unary<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(UNARY_TIMEOUT);
    request
}

/// A fresh id for a ByteStream upload resource name.
fn upload_id() -> String {
    let mut bytes = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
    // A UUID v4 in form, as servers expect one there.
    crate::digest::uuid_text(bytes, 4)
}

/// An error with its sources, which is where tonic's transport errors say what happened.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
