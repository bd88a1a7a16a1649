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

pub struct Client {
    http: reqwest::Client,
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

    fn url(&self, path: &str) -> Url {
        self.base
            .join(path)
            .expect("a registry path is a valid URL")
    }

    /// Sends `request`; a response outside 2xx is an error naming `action`.
    async fn send(
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
            let body = response.text().await.unwrap_or_default();
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
        let bytes = response
            .bytes()
            .await
            .map_err(|error| RegistryError::Unreachable {
                url: url.to_string(),
                detail: error_chain(&error),
            })?
            .to_vec();
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

    /// Downloads blob `digest` into the store, verified as it streams; nothing is stored when
    /// the bytes do not match.
    pub async fn blob_into_store(
        &self,
        store: &Store,
        repository: &str,
        digest: &BlobDigest,
    ) -> Result<u64, RegistryError> {
        let url = self.url(&format!("v2/{repository}/blobs/{digest}"));
        let response = self
            .send(
                &format!("a download of blob {digest}"),
                &url,
                self.http.get(url.clone()),
            )
            .await?;
        let stream = response
            .bytes_stream()
            .map_err(|error| std::io::Error::other(error_chain(&error)));
        let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream));
        let (store, digest, origin) = (store.clone(), *digest, url.to_string());
        let stored = tokio::task::spawn_blocking(move || {
            store.add_blob_from_reader(reader, &origin, Some(&digest))
        })
        .await
        .unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic()));
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
