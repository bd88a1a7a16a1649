//! Pinned downloads and safe unpacking: the parts of the fetch stage that touch the network and
//! untrusted archives. `download` streams a URL (http, https, file) to a file while hashing it,
//! with timeouts, retries and recorded redirects; `unpack` extracts tar, tar.gz, tar.xz, tar.bz2
//! and zip archives, refusing anything that would land outside the destination.
//!
//! This module knows nothing of specs or the store; `ops::fetch` composes it with them.

pub mod download;
pub mod unpack;

use std::path::PathBuf;

use crate::digest::BlobDigest;
use crate::error::ExitCode;

pub use download::{DownloadSettings, Downloaded, Downloader};
pub use unpack::{ArchiveFormat, unpack};

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(
        "sha256 mismatch for {url}: expected {expected}, got {found}; nothing was stored\n  hint: check the URL; if the new bytes are the ones you want, review them and run `sealroom pin`"
    )]
    DigestMismatch {
        url: String,
        expected: BlobDigest,
        found: BlobDigest,
    },
    /// A 4xx answer: not retried.
    #[error("GET {url}: {status}")]
    Status { url: String, status: String },
    #[error("GET {url}: {detail} (after {attempts} attempts)")]
    Network {
        url: String,
        detail: String,
        attempts: u32,
    },
    #[error("GET {url}: more than {limit} redirects")]
    TooManyRedirects { url: String, limit: usize },
    #[error("GET {url}: the server redirected to `{location}`, which is not a valid http(s) URL")]
    BadRedirect { url: String, location: String },
    #[error("expected an http://, https:// or file:// URL, found `{url}`")]
    UnsupportedUrl { url: String },
    #[error("offline: not downloading {url}")]
    Offline { url: String },
    #[error("{action} `{path}`: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "cannot tell what kind of archive `{name}` is: expected tar, tar.gz, tar.xz, tar.bz2 or zip"
    )]
    UnknownArchive { name: String },
    #[error("archive entry `{entry}` {problem}; nothing was unpacked")]
    UnsafeEntry { entry: String, problem: String },
    #[error("cannot read the archive `{path}`: {detail}")]
    BadArchive { path: PathBuf, detail: String },
}

impl FetchError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        FetchError::Io {
            action,
            path: path.into(),
            source,
        }
    }

    pub fn exit_code(&self) -> ExitCode {
        ExitCode::BadInput
    }
}
