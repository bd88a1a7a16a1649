//! Downloads that are verified as they stream.
//!
//! The body goes to the destination file through a hashing writer, never into memory. Redirects
//! are followed by hand (at most 10) so every hop is recorded. Connection errors, timeouts, a
//! body cut short and 5xx answers are retried with exponential backoff; 4xx answers are not. A
//! digest that differs from the pin removes the file.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::Duration;

use crate::digest::{BlobDigest, HashingWriter};

use super::FetchError;

const MAX_REDIRECTS: usize = 10;

#[derive(Debug, Clone)]
pub struct DownloadSettings {
    pub connect_timeout: Duration,
    /// The longest wait for the next bytes of a response.
    pub read_timeout: Duration,
    /// Attempts after the first one.
    pub retries: u32,
    /// The wait before the first retry; doubled each time.
    pub backoff: Duration,
    /// Refuse every download without opening a socket.
    pub offline: bool,
}

impl Default for DownloadSettings {
    fn default() -> Self {
        DownloadSettings {
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(60),
            retries: 3,
            backoff: Duration::from_millis(500),
            offline: false,
        }
    }
}

/// What a download got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    pub digest: BlobDigest,
    pub size: u64,
    /// The URL the bytes came from, after redirects.
    pub final_url: String,
    /// Each URL redirected to, in order.
    pub redirects: Vec<String>,
}

pub struct Downloader {
    client: reqwest::Client,
    settings: DownloadSettings,
}

/// Why one attempt failed, and whether another may succeed.
enum Attempt {
    Retry(String),
    Fail(FetchError),
}

impl Downloader {
    pub fn new(settings: DownloadSettings) -> Result<Self, FetchError> {
        let client = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("sealroom/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| FetchError::Network {
                url: String::new(),
                detail: format!("cannot set up the HTTP client: {error}"),
                attempts: 0,
            })?;
        Ok(Downloader { client, settings })
    }

    /// Streams `url` to `dest` (created or truncated), checking `expected` when given. On any
    /// error `dest` is removed.
    pub async fn download(
        &self,
        url: &str,
        expected: Option<&BlobDigest>,
        dest: &Path,
    ) -> Result<Downloaded, FetchError> {
        if self.settings.offline {
            return Err(FetchError::Offline {
                url: url.to_string(),
            });
        }
        let result = if let Some(path) = url.strip_prefix("file://") {
            copy_file(url, Path::new(path), dest).await
        } else if url.starts_with("http://") || url.starts_with("https://") {
            self.download_http(url, dest).await
        } else {
            Err(FetchError::UnsupportedUrl {
                url: url.to_string(),
            })
        };
        let downloaded = match result {
            Ok(downloaded) => downloaded,
            Err(error) => {
                let _ = std::fs::remove_file(dest);
                return Err(error);
            }
        };
        if let Some(expected) = expected
            && *expected != downloaded.digest
        {
            let _ = std::fs::remove_file(dest);
            return Err(FetchError::DigestMismatch {
                url: url.to_string(),
                expected: *expected,
                found: downloaded.digest,
            });
        }
        Ok(downloaded)
    }

    async fn download_http(&self, url: &str, dest: &Path) -> Result<Downloaded, FetchError> {
        let mut attempt = 0;
        loop {
            match self.attempt(url, dest).await {
                Ok(downloaded) => return Ok(downloaded),
                Err(Attempt::Fail(error)) => return Err(error),
                Err(Attempt::Retry(detail)) if attempt >= self.settings.retries => {
                    return Err(FetchError::Network {
                        url: url.to_string(),
                        detail,
                        attempts: attempt + 1,
                    });
                }
                Err(Attempt::Retry(detail)) => {
                    let wait = self.settings.backoff * 2u32.saturating_pow(attempt);
                    eprintln!("fetch: {url}: {detail}; retrying in {wait:?}");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
            }
        }
    }

    /// One GET, following redirects, streaming the body to `dest`.
    async fn attempt(&self, url: &str, dest: &Path) -> Result<Downloaded, Attempt> {
        let mut current = reqwest::Url::parse(url).map_err(|_| {
            Attempt::Fail(FetchError::UnsupportedUrl {
                url: url.to_string(),
            })
        })?;
        let mut redirects = Vec::new();
        let response = loop {
            let response = tokio::time::timeout(
                self.settings.read_timeout,
                self.client.get(current.clone()).send(),
            )
            .await
            .map_err(|_| {
                Attempt::Retry(format!("no answer within {:?}", self.settings.read_timeout))
            })?
            .map_err(|error| Attempt::Retry(describe(&error)))?;
            let status = response.status();
            if status.is_redirection() {
                let location = response
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                let next = current
                    .join(&location)
                    .ok()
                    .filter(|next| matches!(next.scheme(), "http" | "https"))
                    .ok_or_else(|| {
                        Attempt::Fail(FetchError::BadRedirect {
                            url: url.to_string(),
                            location: location.clone(),
                        })
                    })?;
                if redirects.len() == MAX_REDIRECTS {
                    return Err(Attempt::Fail(FetchError::TooManyRedirects {
                        url: url.to_string(),
                        limit: MAX_REDIRECTS,
                    }));
                }
                redirects.push(next.to_string());
                current = next;
                continue;
            }
            if status.is_server_error() {
                return Err(Attempt::Retry(status.to_string()));
            }
            if !status.is_success() {
                return Err(Attempt::Fail(FetchError::Status {
                    url: url.to_string(),
                    status: status.to_string(),
                }));
            }
            break response;
        };

        let expected_len = response.content_length();
        let file = std::fs::File::create(dest)
            .map_err(|e| Attempt::Fail(FetchError::io("cannot create", dest, e)))?;
        let mut writer = HashingWriter::new(std::io::BufWriter::new(file));
        let progress = progress_bar(current.as_str(), expected_len);
        let mut response = response;
        loop {
            let chunk = tokio::time::timeout(self.settings.read_timeout, response.chunk())
                .await
                .map_err(|_| {
                    Attempt::Retry(format!(
                        "no data for {:?} in the middle of the body",
                        self.settings.read_timeout
                    ))
                })?
                .map_err(|error| {
                    Attempt::Retry(format!("the body was cut short: {}", describe(&error)))
                })?;
            let Some(chunk) = chunk else { break };
            writer
                .write_all(&chunk)
                .map_err(|e| Attempt::Fail(FetchError::io("cannot write", dest, e)))?;
            if let Some(bar) = &progress {
                bar.inc(chunk.len() as u64);
            }
        }
        if let Some(bar) = progress {
            bar.finish_and_clear();
        }
        let (buffered, digest, size) = writer.finish::<crate::digest::Blob>();
        let file = buffered
            .into_inner()
            .map_err(|e| Attempt::Fail(FetchError::io("cannot write", dest, e.into_error())))?;
        file.sync_all()
            .map_err(|e| Attempt::Fail(FetchError::io("cannot write", dest, e)))?;
        if let Some(expected_len) = expected_len
            && expected_len != size
        {
            return Err(Attempt::Retry(format!(
                "the body was cut short: {size} of {expected_len} bytes"
            )));
        }
        Ok(Downloaded {
            digest,
            size,
            final_url: current.to_string(),
            redirects,
        })
    }
}

/// A `file://` URL: the same streaming copy, without a network.
async fn copy_file(url: &str, source: &Path, dest: &Path) -> Result<Downloaded, FetchError> {
    let (source, dest) = (source.to_path_buf(), dest.to_path_buf());
    let url = url.to_string();
    tokio::task::spawn_blocking(move || {
        let mut input =
            std::fs::File::open(&source).map_err(|e| FetchError::io("cannot read", &source, e))?;
        let output =
            std::fs::File::create(&dest).map_err(|e| FetchError::io("cannot create", &dest, e))?;
        let mut writer = HashingWriter::new(output);
        std::io::copy(&mut input, &mut writer)
            .map_err(|e| FetchError::io("cannot copy", &source, e))?;
        let (file, digest, size) = writer.finish::<crate::digest::Blob>();
        file.sync_all()
            .map_err(|e| FetchError::io("cannot write", &dest, e))?;
        Ok(Downloaded {
            digest,
            size,
            final_url: url,
            redirects: Vec::new(),
        })
    })
    .await
    .expect("the copy does not panic")
}

/// A reqwest error in words a user can act on.
fn describe(error: &reqwest::Error) -> String {
    if error.is_connect() {
        format!("cannot connect: {}", root_cause(error))
    } else if error.is_timeout() {
        "timed out".to_string()
    } else {
        root_cause(error)
    }
}

fn root_cause(error: &dyn std::error::Error) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

/// A progress bar on stderr, only when stderr is a terminal.
fn progress_bar(url: &str, len: Option<u64>) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = match len {
        Some(len) => indicatif::ProgressBar::new(len),
        None => indicatif::ProgressBar::new_spinner(),
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} {bytes}/{total_bytes} {bytes_per_sec} {wide_bar}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(url.to_string());
    Some(bar)
}
