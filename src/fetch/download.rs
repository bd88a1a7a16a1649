//! Downloads one URL to a temp file while hashing it; many with bounded parallelism.
//!
//! The body is never held in memory: network chunks go through a small bounded channel to a
//! blocking writer that hashes each byte as it writes it ([`HashingWriter`]), so a 1 GiB fetch
//! costs a few hundred KiB. Transient failures (connection errors, timeouts, a body cut
//! mid-stream, 5xx) are retried with exponential backoff; a 4xx or a digest mismatch is final.
//! Redirects are followed by hand (not by reqwest) so that each hop can be recorded for the
//! provenance and checked for its scheme.
//!
//! This module writes only to the `dest` path its caller hands in, and removes it on any error.
//! It does not know the store: committing a verified file is the caller's job.

use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use reqwest::{StatusCode, Url};
use tokio::sync::mpsc;

use super::FetchError;
use crate::digest::{Blob, BlobDigest, HashingWriter};

/// How long a TCP (and TLS) connect may take before the attempt counts as failed.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a response may stay silent (no headers, no body bytes) before the attempt fails.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Retries after the first attempt, for transient failures only.
pub const DEFAULT_RETRIES: u32 = 3;
/// Redirects followed before giving up.
pub const DEFAULT_MAX_REDIRECTS: usize = 10;

/// The longest wait between two attempts, however many retries are configured.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Chunks in flight between the network and the writer thread (each at most a few tens of KiB).
const CHANNEL_CHUNKS: usize = 32;
/// The writer's buffer: large writes keep syscalls few when chunks are small.
const WRITE_BUFFER: usize = 256 * 1024;

/// How a [`Downloader`] behaves. `Default` gives the documented defaults.
#[derive(Clone, Debug)]
pub struct DownloaderOptions {
    pub connect_timeout: Duration,
    /// Idle time allowed while waiting for headers or for the next body bytes.
    pub read_timeout: Duration,
    /// Retries after the first attempt (so `retries + 1` attempts at most).
    pub retries: u32,
    /// The wait before the first retry; it doubles for each further retry (capped at 30 s).
    pub backoff_base: Duration,
    pub max_redirects: usize,
    /// Refuse every download before opening a socket (`--offline`).
    pub offline: bool,
    /// Draw a progress bar per download on stderr. Defaults to "stderr is a terminal".
    pub progress: bool,
    /// Honour `HTTP_PROXY`/`HTTPS_PROXY`/`NO_PROXY`. Tests turn this off so that loopback
    /// requests never go through a proxy configured on the machine.
    pub proxy_from_environment: bool,
}

impl Default for DownloaderOptions {
    fn default() -> Self {
        Self {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            read_timeout: DEFAULT_READ_TIMEOUT,
            retries: DEFAULT_RETRIES,
            backoff_base: Duration::from_millis(500),
            max_redirects: DEFAULT_MAX_REDIRECTS,
            offline: false,
            progress: io::stderr().is_terminal(),
            proxy_from_environment: true,
        }
    }
}

/// A configured HTTP client plus the retry policy. Cheap to clone (the connection pool is shared).
#[derive(Clone, Debug)]
pub struct Downloader {
    client: reqwest::Client,
    options: DownloaderOptions,
    progress: Option<MultiProgress>,
}

impl Downloader {
    pub fn new(options: DownloaderOptions) -> Result<Self, FetchError> {
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("sealroom/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(options.connect_timeout)
            .read_timeout(options.read_timeout)
            .redirect(reqwest::redirect::Policy::none());
        if !options.proxy_from_environment {
            builder = builder.no_proxy();
        }
        let client = builder.build().map_err(|err| {
            FetchError::Internal(format!("cannot build the http client: {}", describe(&err)))
        })?;
        let progress = options.progress.then(MultiProgress::new);
        Ok(Self {
            client,
            options,
            progress,
        })
    }

    pub fn options(&self) -> &DownloaderOptions {
        &self.options
    }

    fn progress_bar(&self, url: &Url, length: Option<u64>) -> Option<ProgressBar> {
        let multi = self.progress.as_ref()?;
        let bar = match length {
            Some(length) => ProgressBar::new(length).with_style(
                ProgressStyle::with_template(
                    "{msg} {bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            ),
            None => ProgressBar::no_length().with_style(
                ProgressStyle::with_template("{msg} {spinner} {bytes} {binary_bytes_per_sec}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            ),
        };
        let name = url
            .path_segments()
            .and_then(|mut segments| segments.next_back().map(str::to_string))
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| url.to_string());
        bar.set_message(name);
        Some(multi.add(bar))
    }
}

/// A verified (or, without a pin, merely hashed) download, now in `dest`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Downloaded {
    pub digest: BlobDigest,
    pub size: u64,
    /// The URL the bytes came from, after redirects (the original URL when there were none).
    pub final_url: String,
    /// Every `Location` followed, in order, as absolute URLs.
    pub redirects: Vec<String>,
    /// Attempts it took (1 when nothing was retried).
    pub attempts: u32,
    /// The response's `Content-Type`, if it had one (`None` for `file://`).
    pub content_type: Option<String>,
}

/// One item of [`download_all`].
#[derive(Clone, Debug)]
pub struct DownloadRequest {
    pub url: String,
    pub expected: Option<BlobDigest>,
    /// A temp path the caller owns (in the store's tmp dir); removed on error.
    pub dest: PathBuf,
    /// Stop (and fail) once the body would go over this many bytes; `None` is no limit.
    pub max_bytes: Option<u64>,
}

/// Downloads `url` to `dest`, hashing while streaming.
///
/// With `expected`, a different digest removes `dest` and fails with
/// [`FetchError::DigestMismatch`]. On any error `dest` is removed. `dest` is flushed but not
/// fsynced: durability belongs to the store's commit.
pub async fn download(
    client: &Downloader,
    url: &str,
    expected: Option<&BlobDigest>,
    dest: &Path,
) -> Result<Downloaded, FetchError> {
    download_at_most(client, url, expected, None, dest).await
}

/// [`download`] with a byte limit: a body announced (`Content-Length`, or a file's size) larger
/// than `max_bytes` is refused before its first byte, and one that goes on past it (chunked, or
/// a lying length) is cut at the limit. Either fails with [`FetchError::OverLimit`], is not
/// retried, and leaves nothing at `dest`.
pub async fn download_at_most(
    client: &Downloader,
    url: &str,
    expected: Option<&BlobDigest>,
    max_bytes: Option<u64>,
    dest: &Path,
) -> Result<Downloaded, FetchError> {
    download_accepting(client, url, None, expected, max_bytes, dest).await
}

/// [`download_at_most`] asking for the media types in `accept` (an `Accept` header), as a
/// package index's pages are negotiated (PEP 691).
pub async fn download_accepting(
    client: &Downloader,
    url: &str,
    accept: Option<&str>,
    expected: Option<&BlobDigest>,
    max_bytes: Option<u64>,
    dest: &Path,
) -> Result<Downloaded, FetchError> {
    let limit = max_bytes.unwrap_or(u64::MAX);
    let result = download_unchecked(client, url, accept, limit, dest)
        .await
        .and_then(|downloaded| match expected {
            Some(expected) if *expected != downloaded.digest => Err(FetchError::DigestMismatch {
                url: url_for_messages(url),
                expected: *expected,
                actual: downloaded.digest,
            }),
            _ => Ok(downloaded),
        });
    if result.is_err() {
        remove_quietly(dest);
    }
    result
}

/// Runs every request with at most `max_parallel` (at least 1) downloads at once. The results
/// are in the order of `requests`; one failure does not stop the others.
pub async fn download_all(
    client: &Downloader,
    requests: &[DownloadRequest],
    max_parallel: usize,
) -> Vec<Result<Downloaded, FetchError>> {
    futures_util::stream::iter(requests)
        .map(|request| {
            download_at_most(
                client,
                &request.url,
                request.expected.as_ref(),
                request.max_bytes,
                &request.dest,
            )
        })
        .buffered(max_parallel.max(1))
        .collect()
        .await
}

async fn download_unchecked(
    client: &Downloader,
    url: &str,
    accept: Option<&str>,
    limit: u64,
    dest: &Path,
) -> Result<Downloaded, FetchError> {
    if client.options.offline {
        return Err(FetchError::Offline {
            urls: vec![url_for_messages(url)],
        });
    }
    let parsed = Url::parse(url).map_err(|err| FetchError::InvalidUrl {
        url: url.to_string(),
        reason: err.to_string(),
    })?;
    match parsed.scheme() {
        "http" | "https" => download_http(client, parsed, accept, limit, dest).await,
        "file" => download_file(client, parsed, limit, dest).await,
        scheme => Err(FetchError::UnsupportedScheme {
            url: url.to_string(),
            scheme: scheme.to_string(),
        }),
    }
}

/// Why one attempt failed: worth another try, or final.
enum AttemptError {
    Transient(Transient),
    Final(FetchError),
}

enum Transient {
    Status(StatusCode),
    Network(String),
}

async fn download_http(
    client: &Downloader,
    url: Url,
    accept: Option<&str>,
    limit: u64,
    dest: &Path,
) -> Result<Downloaded, FetchError> {
    let attempts = client.options.retries.saturating_add(1);
    let mut attempt = 1;
    loop {
        let outcome = http_attempt(client, &url, accept, limit, dest, attempt).await;
        let transient = match outcome {
            Ok(downloaded) => return Ok(downloaded),
            Err(AttemptError::Final(err)) => return Err(err),
            Err(AttemptError::Transient(transient)) => transient,
        };
        if attempt >= attempts {
            return Err(match transient {
                Transient::Status(status) => FetchError::HttpStatus {
                    url: url.to_string(),
                    status,
                    attempts: attempt,
                },
                Transient::Network(reason) => FetchError::Network {
                    url: url.to_string(),
                    attempts: attempt,
                    reason,
                },
            });
        }
        let delay = backoff(client.options.backoff_base, attempt);
        let what = match &transient {
            Transient::Status(status) => status.to_string(),
            Transient::Network(reason) => reason.clone(),
        };
        tracing::warn!(%url, attempt, ?delay, "download failed ({what}); retrying");
        tokio::time::sleep(delay).await;
        attempt += 1;
    }
}

/// `base`, `2 * base`, `4 * base`, ... capped at [`MAX_BACKOFF`].
fn backoff(base: Duration, failed_attempt: u32) -> Duration {
    let factor = 1u32
        .checked_shl(failed_attempt.saturating_sub(1))
        .unwrap_or(u32::MAX);
    base.saturating_mul(factor).min(MAX_BACKOFF)
}

async fn http_attempt(
    client: &Downloader,
    original: &Url,
    accept: Option<&str>,
    limit: u64,
    dest: &Path,
    attempt: u32,
) -> Result<Downloaded, AttemptError> {
    let mut current = original.clone();
    let mut redirects = Vec::new();
    let mut response = loop {
        let mut request = client.client.get(current.clone());
        if let Some(accept) = accept {
            request = request.header(reqwest::header::ACCEPT, accept);
        }
        let response = request
            .send()
            .await
            .map_err(|err| classify(&err, &client.options))?;
        let status = response.status();
        if !is_followed_redirect(status) {
            break response;
        }
        let next = redirect_target(&current, &response)?;
        if redirects.len() >= client.options.max_redirects {
            return Err(AttemptError::Final(FetchError::TooManyRedirects {
                url: original.to_string(),
                limit: client.options.max_redirects,
                last: next.to_string(),
            }));
        }
        redirects.push(next.to_string());
        current = next;
    };

    let status = response.status();
    if status.is_server_error() {
        return Err(AttemptError::Transient(Transient::Status(status)));
    }
    if !status.is_success() {
        // A 4xx (or an unfollowed 3xx) will not change by asking again.
        return Err(AttemptError::Final(FetchError::HttpStatus {
            url: current.to_string(),
            status,
            attempts: attempt,
        }));
    }

    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string);
    let length = response.content_length();
    if let Some(length) = length
        && length > limit
    {
        return Err(AttemptError::Final(over_limit(
            limit,
            format!("{current} announces {length} bytes (Content-Length); nothing was downloaded"),
        )));
    }
    let bar = client.progress_bar(&current, length);
    let mut sink = BlobSink::create(dest);
    let mut received: u64 = 0;
    let read_timeout = client.options.read_timeout;
    let body_result = loop {
        match tokio::time::timeout(read_timeout, response.chunk()).await {
            // Our own idle timer, and reqwest's read timeout, which may fire first.
            Err(_) => break Err(silent_body(read_timeout, received)),
            Ok(Err(err)) if err.is_timeout() => break Err(silent_body(read_timeout, received)),
            Ok(Err(err)) => {
                break Err(AttemptError::Transient(Transient::Network(format!(
                    "the body was cut after {received}{} bytes: {}",
                    length
                        .map(|length| format!(" of {length}"))
                        .unwrap_or_default(),
                    describe(&err)
                ))));
            }
            Ok(Ok(None)) => break Ok(()),
            Ok(Ok(Some(chunk))) => {
                if received.saturating_add(chunk.len() as u64) > limit {
                    break Err(AttemptError::Final(over_limit(
                        limit,
                        format!(
                            "{current} sent more than {limit} bytes{}; stopped there",
                            length
                                .map(|length| format!(" (it announced {length})"))
                                .unwrap_or_default()
                        ),
                    )));
                }
                received += chunk.len() as u64;
                if let Some(bar) = &bar {
                    bar.set_position(received);
                }
                if !sink.write(chunk).await {
                    break Ok(()); // the writer failed; `finish` says why
                }
            }
        }
    };
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let written = sink.finish().await;
    body_result?;
    let (digest, size) =
        written.map_err(|err| AttemptError::Final(FetchError::io("write", dest, err)))?;
    if let Some(length) = length
        && size != length
    {
        return Err(AttemptError::Transient(Transient::Network(format!(
            "the body ended after {size} of {length} bytes"
        ))));
    }
    Ok(Downloaded {
        digest,
        size,
        final_url: current.to_string(),
        redirects,
        attempts: attempt,
        content_type,
    })
}

fn over_limit(limit: u64, detail: String) -> FetchError {
    FetchError::OverLimit {
        action: "the download",
        limit,
        detail,
    }
}

fn silent_body(read_timeout: Duration, received: u64) -> AttemptError {
    AttemptError::Transient(Transient::Network(format!(
        "no data for {} after {received} bytes of the body",
        show_duration(read_timeout)
    )))
}

fn is_followed_redirect(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::MOVED_PERMANENTLY
            | StatusCode::FOUND
            | StatusCode::SEE_OTHER
            | StatusCode::TEMPORARY_REDIRECT
            | StatusCode::PERMANENT_REDIRECT
    )
}

fn redirect_target(current: &Url, response: &reqwest::Response) -> Result<Url, AttemptError> {
    let bad = |reason: String| {
        AttemptError::Final(FetchError::BadRedirect {
            url: current.to_string(),
            status: response.status(),
            reason,
        })
    };
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .ok_or_else(|| bad("has no Location header".to_string()))?;
    let location = location
        .to_str()
        .map_err(|_| bad("has a Location header that is not text".to_string()))?;
    let next = current
        .join(location)
        .map_err(|err| bad(format!("to `{location}` is not a valid url: {err}")))?;
    redirect_allowed(current, &next).map_err(bad)?;
    Ok(next)
}

/// Whether a redirect from `from` to `to` may be followed: only to http or https, and never
/// from https to plain http (a downgrade would hand the rest of the exchange, and the bytes, to
/// anyone on the path). The error is the reason, worded to follow "redirect".
pub fn redirect_allowed(from: &Url, to: &Url) -> Result<(), String> {
    if !matches!(to.scheme(), "http" | "https") {
        return Err(format!(
            "to `{to}` is not followed: only http and https redirects are"
        ));
    }
    if from.scheme() == "https" && to.scheme() == "http" {
        return Err(format!(
            "to `{to}` is not followed: it downgrades https to plain http\nhint: use the https url of the download, or ask its host to redirect to https"
        ));
    }
    Ok(())
}

/// Maps a reqwest error from sending a request to an attempt outcome.
fn classify(err: &reqwest::Error, options: &DownloaderOptions) -> AttemptError {
    if err.is_builder() {
        return AttemptError::Final(FetchError::Internal(describe(err)));
    }
    let reason = if err.is_timeout() && err.is_connect() {
        format!(
            "connect timed out after {}",
            show_duration(options.connect_timeout)
        )
    } else if err.is_timeout() {
        format!("no response for {}", show_duration(options.read_timeout))
    } else if err.is_connect() {
        format!("cannot connect: {}", describe(err))
    } else {
        describe(err)
    };
    AttemptError::Transient(Transient::Network(reason))
}

/// The error's causes without reqwest's "error sending request for url (...)" wrapper, which
/// repeats the URL our own message already names.
fn describe(err: &reqwest::Error) -> String {
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        causes.push(cause.to_string());
        source = cause.source();
    }
    if causes.is_empty() {
        err.to_string()
    } else {
        causes.join(": ")
    }
}

fn show_duration(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{} s", duration.as_secs())
    } else {
        format!("{} ms", duration.as_millis())
    }
}

/// The URL as messages show it: normalized when it parses, verbatim otherwise.
fn url_for_messages(url: &str) -> String {
    Url::parse(url)
        .map(String::from)
        .unwrap_or_else(|_| url.to_string())
}

async fn download_file(
    client: &Downloader,
    url: Url,
    limit: u64,
    dest: &Path,
) -> Result<Downloaded, FetchError> {
    let source = url.to_file_path().map_err(|()| FetchError::InvalidUrl {
        url: url.to_string(),
        reason: "a file url must be `file:///absolute/path`".to_string(),
    })?;
    let file = std::fs::File::open(&source).map_err(|err| FetchError::FileUrl {
        url: url.to_string(),
        source: err,
    })?;
    let length = file.metadata().ok().map(|metadata| metadata.len());
    if let Some(length) = length
        && length > limit
    {
        return Err(over_limit(
            limit,
            format!("{url} is {length} bytes; nothing was copied"),
        ));
    }
    let bar = client.progress_bar(&url, length);
    let dest_owned = dest.to_path_buf();
    let bar_for_copy = bar.clone();
    let copied = tokio::task::spawn_blocking(move || -> Result<(BlobDigest, u64), FetchError> {
        // One byte past the limit tells a file that grew since its size was read.
        let file = file.take(limit.saturating_add(1));
        let mut reader: Box<dyn Read> = match bar_for_copy {
            Some(bar) => Box::new(bar.wrap_read(file)),
            None => Box::new(file),
        };
        let out = std::fs::File::create(&dest_owned)
            .map_err(|err| FetchError::io("create", &dest_owned, err))?;
        let mut writer = HashingWriter::new(io::BufWriter::with_capacity(WRITE_BUFFER, out));
        io::copy(&mut reader, &mut writer)
            .map_err(|err| FetchError::io("copy to", &dest_owned, err))?;
        let (buffered, digest, size) = writer.finish::<Blob>();
        buffered
            .into_inner()
            .map_err(|err| FetchError::io("write", &dest_owned, err.into_error()))?;
        Ok((digest, size))
    })
    .await
    .map_err(|err| FetchError::Internal(format!("file copy task: {err}")))?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let (digest, size) = copied?;
    if size > limit {
        return Err(over_limit(
            limit,
            format!("{url} grew past {limit} bytes while it was copied; stopped there"),
        ));
    }
    Ok(Downloaded {
        digest,
        size,
        final_url: url.to_string(),
        redirects: Vec::new(),
        attempts: 1,
        content_type: None,
    })
}

/// The writing half of a download: a blocking thread that creates `dest` and hashes every byte
/// it writes, fed through a bounded channel so memory stays flat however large the body is.
struct BlobSink {
    sender: Option<mpsc::Sender<bytes::Bytes>>,
    writer: tokio::task::JoinHandle<io::Result<(BlobDigest, u64)>>,
}

impl BlobSink {
    fn create(dest: &Path) -> Self {
        let (sender, mut receiver) = mpsc::channel::<bytes::Bytes>(CHANNEL_CHUNKS);
        let dest = dest.to_path_buf();
        let writer = tokio::task::spawn_blocking(move || {
            let file = std::fs::File::create(&dest)?;
            let mut writer = HashingWriter::new(io::BufWriter::with_capacity(WRITE_BUFFER, file));
            while let Some(chunk) = receiver.blocking_recv() {
                writer.write_all(&chunk)?;
            }
            let (buffered, digest, size) = writer.finish::<Blob>();
            buffered.into_inner().map_err(|err| err.into_error())?;
            Ok((digest, size))
        });
        Self {
            sender: Some(sender),
            writer,
        }
    }

    /// False when the writer has stopped (its error comes from [`BlobSink::finish`]).
    async fn write(&mut self, chunk: bytes::Bytes) -> bool {
        match &self.sender {
            Some(sender) => sender.send(chunk).await.is_ok(),
            None => false,
        }
    }

    async fn finish(mut self) -> io::Result<(BlobDigest, u64)> {
        self.sender = None; // closes the channel: the writer drains and stops
        match self.writer.await {
            Ok(result) => result,
            Err(err) => Err(io::Error::other(format!("the writer task failed: {err}"))),
        }
    }
}

fn remove_quietly(path: &Path) {
    if let Err(err) = std::fs::remove_file(path)
        && err.kind() != io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), "cannot remove a failed download: {err}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let base = Duration::from_millis(100);
        assert_eq!(backoff(base, 1), Duration::from_millis(100));
        assert_eq!(backoff(base, 2), Duration::from_millis(200));
        assert_eq!(backoff(base, 3), Duration::from_millis(400));
        assert_eq!(backoff(base, 40), MAX_BACKOFF);
    }

    #[test]
    fn only_real_redirects_are_followed() {
        assert!(is_followed_redirect(StatusCode::FOUND));
        assert!(is_followed_redirect(StatusCode::PERMANENT_REDIRECT));
        assert!(!is_followed_redirect(StatusCode::NOT_MODIFIED));
        assert!(!is_followed_redirect(StatusCode::MULTIPLE_CHOICES));
    }

    #[test]
    fn https_never_redirects_to_plain_http() {
        let url = |text: &str| Url::parse(text).unwrap();
        let error = redirect_allowed(
            &url("https://example.org/a.tar.gz"),
            &url("http://example.org/a.tar.gz"),
        )
        .unwrap_err();
        assert_eq!(
            error,
            "to `http://example.org/a.tar.gz` is not followed: it downgrades https to plain http\nhint: use the https url of the download, or ask its host to redirect to https"
        );
        // Also to a loopback address: the next hop is chosen by whoever answered over https.
        assert!(
            redirect_allowed(&url("https://example.org/a"), &url("http://127.0.0.1/a")).is_err()
        );
        assert!(redirect_allowed(&url("https://a.example/x"), &url("https://b.example/x")).is_ok());
        assert!(redirect_allowed(&url("http://a.example/x"), &url("https://a.example/x")).is_ok());
        assert!(redirect_allowed(&url("http://127.0.0.1/x"), &url("http://127.0.0.1/y")).is_ok());
        assert!(redirect_allowed(&url("http://a.example/x"), &url("file:///etc/passwd")).is_err());
    }

    #[tokio::test]
    async fn offline_refuses_before_parsing_or_connecting() {
        let downloader = Downloader::new(DownloaderOptions {
            offline: true,
            ..DownloaderOptions::default()
        })
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let err = download(
            &downloader,
            "http://127.0.0.1:9/x",
            None,
            &dir.path().join("x"),
        )
        .await
        .unwrap_err();
        assert!(matches!(&err, FetchError::Offline { urls } if urls == &["http://127.0.0.1:9/x"]));
    }

    #[tokio::test]
    async fn unsupported_schemes_are_named() {
        let downloader = Downloader::new(DownloaderOptions::default()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let err = download(
            &downloader,
            "ftp://127.0.0.1/x",
            None,
            &dir.path().join("x"),
        )
        .await
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "unsupported url scheme `ftp` in `ftp://127.0.0.1/x`: only http, https and file urls are fetched"
        );
    }
}
