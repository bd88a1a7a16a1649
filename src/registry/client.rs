//! One registry, over HTTP: the few calls of the distribution API v2 that pushing and pulling
//! by digest need. Blobs stream from a file on push and into the store on pull (verified as
//! they pass); nothing large is held in memory.

use std::path::Path;

use futures_util::TryStreamExt;
use reqwest::{Method, StatusCode, Url, header};

use super::{RegistryError, is_loopback};
use crate::digest::BlobDigest;
use crate::store::Store;

/// The manifest media types a pull accepts, most wanted first.
pub const MANIFEST_TYPES: &[&str] = &[
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// The largest manifest, index or image config read. containerd refuses manifests over
/// `MaxManifestSize = 4 * 1048 * 1048` bytes (remotes/docker/resolver.go, a typo for 4 MiB
/// that stayed); 4 MiB is the same bound, spelt right. Real manifests are a few KiB.
pub const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;
/// The most bytes of an error response read (only its start is shown).
pub const MAX_ERROR_BODY_BYTES: usize = 16 * 1024;

pub struct Client {
    pub(super) http: reqwest::Client,
    /// `http://host:port/` or `https://host/`.
    base: Url,
}

impl Client {
    /// A client for `registry` (`host[:port]`): plain HTTP on loopback, HTTPS elsewhere.
    pub fn new(registry: &str) -> Result<Self, RegistryError> {
        let scheme = if is_loopback(registry) {
            "http"
        } else {
            "https"
        };
        let url = format!("{scheme}://{registry}/");
        let base = Url::parse(&url).map_err(|error| RegistryError::InvalidReference {
            reference: registry.to_string(),
            reason: error.to_string(),
        })?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("sealroom/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| RegistryError::Unreachable {
                url: url.clone(),
                detail: error.to_string(),
            })?;
        Ok(Self { http, base })
    }

    pub(super) fn url(&self, path: &str) -> Url {
        self.base
            .join(path)
            .expect("a registry path is a valid URL")
    }

    /// Sends `request`; a response outside 2xx is an error naming `action`.
    pub(super) async fn send(
        &self,
        action: &str,
        url: &Url,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, RegistryError> {
        let response = request
            .send()
            .await
            .map_err(|error| RegistryError::Unreachable {
                url: url.to_string(),
                detail: error_chain(&error),
            })?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED {
            return Err(RegistryError::AuthenticationRequired {
                url: url.to_string(),
            });
        }
        if !status.is_success() {
            let body = read_error_body(response).await;
            return Err(RegistryError::Refused {
                action: action.to_string(),
                url: url.to_string(),
                status: status.as_u16(),
                body,
            });
        }
        Ok(response)
    }

    /// Whether the repository has the blob (`HEAD /v2/<repo>/blobs/<digest>`).
    pub async fn has_blob(
        &self,
        repository: &str,
        digest: &BlobDigest,
    ) -> Result<bool, RegistryError> {
        let url = self.url(&format!("v2/{repository}/blobs/{digest}"));
        let response = self
            .http
            .request(Method::HEAD, url.clone())
            .send()
            .await
            .map_err(|error| RegistryError::Unreachable {
                url: url.to_string(),
                detail: error_chain(&error),
            })?;
        match response.status() {
            status if status.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            StatusCode::UNAUTHORIZED => Err(RegistryError::AuthenticationRequired {
                url: url.to_string(),
            }),
            status => Err(RegistryError::Refused {
                action: format!("a check for blob {digest}"),
                url: url.to_string(),
                status: status.as_u16(),
                body: String::new(),
            }),
        }
    }

    /// Uploads the file at `path` as blob `digest` in one request: `POST` opens an upload, `PUT`
    /// to its location with `?digest=` sends the bytes and commits them.
    pub async fn push_blob(
        &self,
        repository: &str,
        digest: &BlobDigest,
        size: u64,
        path: &Path,
    ) -> Result<(), RegistryError> {
        let start = self.url(&format!("v2/{repository}/blobs/uploads/"));
        let action = format!("an upload of blob {digest}");
        let response = self
            .send(
                &action,
                &start,
                self.http
                    .post(start.clone())
                    .header(header::CONTENT_LENGTH, 0),
            )
            .await?;
        let location = response
            .headers()
            .get(header::LOCATION)
            .and_then(|value| value.to_str().ok())
            .ok_or_else(|| RegistryError::Unsupported {
                what: "the upload response".to_string(),
                url: start.to_string(),
                detail: "it has no Location header".to_string(),
            })?;
        let mut upload = start
            .join(location)
            .map_err(|error| RegistryError::Unsupported {
                what: "the upload location".to_string(),
                url: start.to_string(),
                detail: error.to_string(),
            })?;
        upload
            .query_pairs_mut()
            .append_pair("digest", &digest.to_string());
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|source| RegistryError::ReadFile {
                path: path.to_path_buf(),
                source,
            })?;
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file));
        self.send(
            &action,
            &upload,
            self.http
                .put(upload.clone())
                .header(header::CONTENT_TYPE, "application/octet-stream")
                .header(header::CONTENT_LENGTH, size)
                .body(body),
        )
        .await?;
        Ok(())
    }

    /// `PUT /v2/<repo>/manifests/<reference>` (a digest or a tag).
    pub async fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        manifest: &[u8],
    ) -> Result<(), RegistryError> {
        let url = self.url(&format!("v2/{repository}/manifests/{reference}"));
        self.send(
            &format!("the manifest for `{reference}`"),
            &url,
            self.http
                .put(url.clone())
                .header(header::CONTENT_TYPE, media_type)
                .body(manifest.to_vec()),
        )
        .await?;
        Ok(())
    }

    /// The manifest at `reference` and its media type, checked against `reference` when it is a
    /// digest.
    pub async fn get_manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<(Vec<u8>, String), RegistryError> {
        let url = self.url(&format!("v2/{repository}/manifests/{reference}"));
        let response = self
            .send(
                &format!("the manifest `{reference}`"),
                &url,
                self.http
                    .get(url.clone())
                    .header(header::ACCEPT, MANIFEST_TYPES.join(", ")),
            )
            .await?;
        let media_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let bytes = read_bounded(response, &url, "the manifest", MAX_MANIFEST_BYTES).await?;
        if let Ok(expected) = reference.parse::<BlobDigest>() {
            let found = BlobDigest::of(&bytes);
            if found != expected {
                return Err(RegistryError::DigestMismatch {
                    what: "the manifest".to_string(),
                    url: url.to_string(),
                    expected: expected.to_string(),
                    found: found.to_string(),
                });
            }
        }
        Ok((bytes, media_type))
    }

    /// Downloads blob `digest` of `size` bytes (as its descriptor says) into the store,
    /// verified as it streams; nothing is stored when the bytes do not match, and never more
    /// than `size` bytes are read: a longer answer (announced or sent) is refused.
    pub async fn blob_into_store(
        &self,
        store: &Store,
        repository: &str,
        digest: &BlobDigest,
        size: u64,
    ) -> Result<u64, RegistryError> {
        let url = self.url(&format!("v2/{repository}/blobs/{digest}"));
        let response = self
            .send(
                &format!("a download of blob {digest}"),
                &url,
                self.http.get(url.clone()),
            )
            .await?;
        let too_large = |detail: String| RegistryError::TooLarge {
            what: format!("blob {digest}"),
            url: url.to_string(),
            limit: size,
            detail,
        };
        if let Some(length) = response.content_length()
            && length > size
        {
            return Err(too_large(format!(
                "the registry announces {length} bytes, the descriptor {size}"
            )));
        }
        let stream = response
            .bytes_stream()
            .map_err(|error| std::io::Error::other(error_chain(&error)));
        let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream));
        let exceeded = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = AtMost {
            inner: reader,
            left: size,
            exceeded: std::sync::Arc::clone(&exceeded),
        };
        let (store, stored_digest, origin) = (store.clone(), *digest, url.to_string());
        let stored = tokio::task::spawn_blocking(move || {
            store.add_blob_from_reader(reader, &origin, Some(&stored_digest))
        })
        .await
        .unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic()));
        if exceeded.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(too_large(format!(
                "the registry sent more than the descriptor's {size} bytes; stopped there"
            )));
        }
        match stored {
            Ok((_, size)) => Ok(size),
            Err(crate::store::StoreError::DigestMismatch {
                expected, found, ..
            }) => Err(RegistryError::DigestMismatch {
                what: "a blob".to_string(),
                url: url.to_string(),
                expected: expected.to_string(),
                found: found.to_string(),
            }),
            Err(error) => Err(RegistryError::Store {
                detail: error.to_string(),
            }),
        }
    }
}

/// A reader that fails once more than `left` bytes would pass, and says so in `exceeded`.
struct AtMost<R> {
    inner: R,
    left: u64,
    exceeded: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl<R: std::io::Read> std::io::Read for AtMost<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        // One byte more than allowed is asked for, so that a longer body is seen.
        let want = usize::try_from(self.left.saturating_add(1))
            .map_or(buf.len(), |left| buf.len().min(left));
        let read = self.inner.read(&mut buf[..want])?;
        if read as u64 > self.left {
            self.exceeded
                .store(true, std::sync::atomic::Ordering::SeqCst);
            return Err(std::io::Error::other("more bytes than the descriptor says"));
        }
        self.left -= read as u64;
        Ok(read)
    }
}

/// The body of `response`, at most `limit` bytes: a longer one (by its Content-Length or by
/// what arrives) is refused as soon as it shows, without reading the rest.
pub(super) async fn read_bounded(
    mut response: reqwest::Response,
    url: &Url,
    what: &str,
    limit: u64,
) -> Result<Vec<u8>, RegistryError> {
    let too_large = |detail: String| RegistryError::TooLarge {
        what: what.to_string(),
        url: url.to_string(),
        limit,
        detail,
    };
    if let Some(length) = response.content_length()
        && length > limit
    {
        return Err(too_large(format!("the registry announces {length} bytes")));
    }
    let mut body = Vec::new();
    loop {
        let chunk = response
            .chunk()
            .await
            .map_err(|error| RegistryError::Unreachable {
                url: url.to_string(),
                detail: error_chain(&error),
            })?;
        let Some(chunk) = chunk else {
            return Ok(body);
        };
        if body.len() as u64 + chunk.len() as u64 > limit {
            return Err(too_large(format!(
                "the registry sent more than {limit} bytes; stopped there"
            )));
        }
        body.extend_from_slice(&chunk);
    }
}

/// The start of an error response's body, at most [`MAX_ERROR_BODY_BYTES`]; the rest is not
/// read. Not UTF-8 is shown lossily.
async fn read_error_body(mut response: reqwest::Response) -> String {
    let mut body = Vec::new();
    while body.len() < MAX_ERROR_BODY_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = MAX_ERROR_BODY_BYTES - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    String::from_utf8_lossy(&body).into_owned()
}

/// An error and its causes on one line (reqwest's own message alone says little).
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn a_blob_reader_stops_one_byte_past_its_descriptor() {
        let exceeded = Arc::new(AtomicBool::new(false));
        let mut reader = AtMost {
            inner: std::io::repeat(1).take(1_000_000),
            left: 10,
            exceeded: Arc::clone(&exceeded),
        };
        let mut buffer = Vec::new();
        let error = reader.read_to_end(&mut buffer).unwrap_err();
        assert_eq!(error.to_string(), "more bytes than the descriptor says");
        assert!(exceeded.load(Ordering::SeqCst));
        assert!(buffer.len() <= 10, "read {} bytes", buffer.len());

        let exceeded = Arc::new(AtomicBool::new(false));
        let mut exact = AtMost {
            inner: std::io::repeat(1).take(10),
            left: 10,
            exceeded: Arc::clone(&exceeded),
        };
        let mut buffer = Vec::new();
        exact.read_to_end(&mut buffer).unwrap();
        assert_eq!(buffer.len(), 10);
        assert!(!exceeded.load(Ordering::SeqCst));
    }
}
