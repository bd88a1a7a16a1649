//! The fetch stage's core: pinned downloads and safe unpacking.
//!
//! - [`download`] streams an `http`, `https` or `file` URL to a temp file the caller owns, hashing
//!   the bytes as they pass, with timeouts, bounded retries, recorded redirects, an optional
//!   progress bar and an offline switch that refuses before any socket is opened.
//!   [`download_all`] runs many downloads with bounded parallelism.
//! - [`unpack`] extracts a tar, tar.gz, tar.xz, tar.bz2 or zip archive into a new directory,
//!   rejecting every entry that could write outside it (absolute paths, `..`, escaping links,
//!   devices) and leaving nothing behind on error.
//!
//! This module does not know the store or the spec: it never decides where a verified blob goes
//! or whether a fetch is already present. The caller (`ops`) checks the store first, hands a temp
//! path in the store's tmp dir, and commits it once [`download`] returns a matching digest.
//! See `docs/fetch.md` for the user-facing rules.

mod download;
mod mirrors;
mod unpack;

pub use download::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_REDIRECTS, DEFAULT_READ_TIMEOUT, DEFAULT_RETRIES,
    DownloadRequest, Downloaded, Downloader, DownloaderOptions, download, download_accepting,
    download_all, download_at_most, redirect_allowed,
};
pub use mirrors::{InvalidMirror, Mirrors};
pub use unpack::{
    ArchiveFormat, MAX_ENTRIES, MAX_PATH_BYTES, MAX_PATH_DEPTH, UnpackOptions, unpack, unpack_with,
};

use std::path::PathBuf;

use crate::digest::BlobDigest;
use crate::error::{ExitCode, Failure};

/// Everything that can go wrong while fetching or unpacking. Messages are lower-case, name the
/// URL, file or archive entry, and end with a hint where the user can act.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The URL does not parse.
    #[error("invalid url `{url}`: {reason}")]
    InvalidUrl { url: String, reason: String },

    /// A scheme other than http, https or file (also for a redirect to one).
    #[error(
        "unsupported url scheme `{scheme}` in `{url}`: only http, https and file urls are fetched"
    )]
    UnsupportedScheme { url: String, scheme: String },

    /// Offline mode: these URLs would have to be downloaded. No socket was opened.
    #[error(
        "offline: {} not in the store and cannot be fetched without the network:{}\nhint: run `sealroom fetch` with the network on first, or drop --offline",
        if urls.len() == 1 { "this download is" } else { "these downloads are" },
        urls.iter().map(|url| format!("\n  {url}")).collect::<String>()
    )]
    Offline { urls: Vec<String> },

    /// The bytes downloaded do not match the pinned digest. Nothing is kept.
    #[error(
        "sha256 mismatch for {url}: expected {expected}, got {actual}\nhint: check the url; if the new content is what you want, review it and run `sealroom pin` to update the pin"
    )]
    DigestMismatch {
        url: String,
        expected: BlobDigest,
        actual: BlobDigest,
    },

    /// The server answered with an error status. 4xx fails at once; 5xx after all attempts.
    #[error("GET {url}: {status}{}", after_attempts(*attempts))]
    HttpStatus {
        url: String,
        status: reqwest::StatusCode,
        attempts: u32,
    },

    /// A redirect without a usable `Location`, or one that is not followed.
    #[error("GET {url}: {status} redirect {reason}")]
    BadRedirect {
        url: String,
        status: reqwest::StatusCode,
        reason: String,
    },

    /// More redirects than the limit; `url` is the original URL.
    #[error("GET {url}: more than {limit} redirects (last to {last})")]
    TooManyRedirects {
        url: String,
        limit: usize,
        last: String,
    },

    /// Connection errors, timeouts and bodies cut mid-stream, after every retry.
    #[error("GET {url} failed after {attempts} attempt{}: {reason}\nhint: check that the host is reachable from here", if *attempts == 1 { "" } else { "s" })]
    Network {
        url: String,
        attempts: u32,
        reason: String,
    },

    /// A `file://` URL that cannot be read.
    #[error("read {url}: {source}")]
    FileUrl {
        url: String,
        #[source]
        source: std::io::Error,
    },

    /// A local file or directory could not be read or written.
    #[error("{action} `{path}`: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A download or an unpack went over its byte limit. It stopped there (or before the first
    /// byte, when the size was announced); nothing of it is kept.
    #[error("{action} exceeds the limit of {limit} bytes: {detail}")]
    OverLimit {
        /// `the download` or `unpacking`.
        action: &'static str,
        limit: u64,
        detail: String,
    },

    /// An archive read from the store does not hash to the digest it is stored under (the store
    /// was changed behind sealroom's back). Nothing was unpacked.
    #[error(
        "corrupt archive `{archive}`: expected content with digest {expected}, found {found}; nothing was unpacked; hint: run `sealroom store verify`"
    )]
    ArchiveDigestMismatch {
        archive: PathBuf,
        expected: BlobDigest,
        found: BlobDigest,
    },

    /// The archive format could not be told from the magic bytes or the name.
    #[error(
        "cannot tell the archive format of `{name}`: not a tar, tar.gz, tar.xz, tar.bz2 or zip by its first bytes or its name"
    )]
    UnknownArchiveFormat { name: String },

    /// The archive is corrupt or truncated.
    #[error("cannot read {format} archive `{archive}`: {reason}")]
    CorruptArchive {
        archive: PathBuf,
        format: ArchiveFormat,
        reason: String,
    },

    /// An entry that could write outside the destination, or that is not a plain file, directory
    /// or link. Nothing was unpacked.
    #[error("archive entry `{entry}` {reason}")]
    UnsafeEntry { entry: String, reason: String },

    /// The unpack destination must not exist yet.
    #[error("unpack destination `{0}` already exists; unpack creates it")]
    DestinationExists(PathBuf),

    /// A background task died (a bug).
    #[error("internal error in the fetch stage: {0}")]
    Internal(String),
}

fn after_attempts(attempts: u32) -> String {
    if attempts > 1 {
        format!(" (after {attempts} attempts)")
    } else {
        String::new()
    }
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

    pub(crate) fn unsafe_entry(entry: impl Into<String>, reason: impl Into<String>) -> Self {
        FetchError::UnsafeEntry {
            entry: entry.into(),
            reason: reason.into(),
        }
    }
}

/// The exit code (DESIGN.md): everything the user can fix is bad input (1), including a network
/// failure after all retries; only a bug is internal (101).
impl Failure for FetchError {
    fn exit_code(&self) -> ExitCode {
        match self {
            FetchError::Internal(_) => ExitCode::Internal,
            _ => ExitCode::BadInput,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offline_lists_every_url() {
        let err = FetchError::Offline {
            urls: vec!["http://a/x".into(), "http://b/y".into()],
        };
        assert_eq!(
            err.to_string(),
            "offline: these downloads are not in the store and cannot be fetched without the network:\n  http://a/x\n  http://b/y\nhint: run `sealroom fetch` with the network on first, or drop --offline"
        );
        assert_eq!(err.exit_code(), ExitCode::BadInput);
    }

    #[test]
    fn status_errors_say_how_often_they_were_tried() {
        let once = FetchError::HttpStatus {
            url: "http://h/a".into(),
            status: reqwest::StatusCode::NOT_FOUND,
            attempts: 1,
        };
        assert_eq!(once.to_string(), "GET http://h/a: 404 Not Found");
        let retried = FetchError::HttpStatus {
            url: "http://h/a".into(),
            status: reqwest::StatusCode::SERVICE_UNAVAILABLE,
            attempts: 4,
        };
        assert_eq!(
            retried.to_string(),
            "GET http://h/a: 503 Service Unavailable (after 4 attempts)"
        );
    }
}
