//! Lock files of the package ecosystems, read as lists of files to fetch: each entry a URL and
//! the digest the lock pins it by, and where that file goes in the input tree the build sees.
//!
//! A leaf below the fetch stage: each format's module parses its lock (and, for pip, the pages
//! of a simple index) into [`LockedFile`]s, and lays the verified files out for the ecosystem's
//! own offline install ([`Layout`]). Nothing here opens a socket or knows the store; the fetch
//! stage (`ops::lock_fetch`) downloads, verifies and stores.

// A lock error names the lock, the line, the package and both digests: a few strings, and on a
// path that ends the command. Boxing them would buy nothing.
#![allow(clippy::result_large_err)]

pub mod cargo;
pub mod go;
pub mod npm;
pub mod pip;
pub mod pylock;
pub mod uv;

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;

use crate::error::{ExitCode, Failure};

/// The ecosystems a `[[fetch]]` with `lock` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LockFormat {
    /// `requirements.txt` with `--hash=sha256:` on every requirement (pip-compile, `uv export`).
    Pip,
    /// `uv.lock`.
    Uv,
    /// `pylock.toml` (PEP 751).
    Pylock,
    /// `Cargo.lock`, versions 3 and 4.
    Cargo,
    /// `package-lock.json`, lockfileVersion 2 and 3.
    Npm,
    /// `go.sum`.
    Go,
}

impl LockFormat {
    pub const ALL: [LockFormat; 6] = [
        LockFormat::Pip,
        LockFormat::Uv,
        LockFormat::Pylock,
        LockFormat::Cargo,
        LockFormat::Npm,
        LockFormat::Go,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LockFormat::Pip => "pip",
            LockFormat::Uv => "uv",
            LockFormat::Pylock => "pylock",
            LockFormat::Cargo => "cargo",
            LockFormat::Npm => "npm",
            LockFormat::Go => "go",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|format| format.as_str() == value)
    }

    /// The format a lock file's name says: `requirements*.txt`, `uv.lock`, `pylock*.toml`,
    /// `Cargo.lock`, `package-lock.json`, `go.sum`.
    pub fn infer(file_name: &str) -> Option<Self> {
        Some(match file_name {
            "uv.lock" => LockFormat::Uv,
            "Cargo.lock" => LockFormat::Cargo,
            "package-lock.json" => LockFormat::Npm,
            "go.sum" => LockFormat::Go,
            name if name.starts_with("requirements") && name.ends_with(".txt") => LockFormat::Pip,
            name if name.starts_with("pylock") && name.ends_with(".toml") => LockFormat::Pylock,
            _ => return None,
        })
    }
}

impl fmt::Display for LockFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The digest a lock pins a file by. Each is checked against the downloaded bytes before they
/// reach the store; the sha256 of the bytes is recorded as well, whichever the lock uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LockDigest {
    Sha256([u8; 32]),
    /// npm's SRI `sha512-<base64>`.
    Sha512(Box<[u8; 64]>),
    /// npm's SRI `sha1-<base64>`, or a `shasum` hex, of old entries.
    Sha1([u8; 20]),
    /// Go's `h1:<base64>`: the sha256 of the module's file list (`go/dirhash` Hash1), not of
    /// the zip's bytes; checked by [`go::verify`] once the file is downloaded.
    GoH1([u8; 32]),
}

impl LockDigest {
    /// The algorithm's name as the lock writes it: `sha256`, `sha512`, `sha1`, `h1`.
    pub fn algorithm(&self) -> &'static str {
        match self {
            LockDigest::Sha256(_) => "sha256",
            LockDigest::Sha512(_) => "sha512",
            LockDigest::Sha1(_) => "sha1",
            LockDigest::GoH1(_) => "h1",
        }
    }

    pub fn bytes(&self) -> &[u8] {
        match self {
            LockDigest::Sha256(bytes) | LockDigest::GoH1(bytes) => bytes,
            LockDigest::Sha512(bytes) => &bytes[..],
            LockDigest::Sha1(bytes) => bytes,
        }
    }

    /// The digest as the lock writes it: hex for sha256, SRI for npm's, `h1:` for Go's.
    pub fn lock_form(&self) -> String {
        let b64 = || base64::engine::general_purpose::STANDARD.encode(self.bytes());
        match self {
            LockDigest::Sha256(bytes) => hex::encode(bytes),
            LockDigest::Sha512(_) | LockDigest::Sha1(_) => {
                format!("{}-{}", self.algorithm(), b64())
            }
            LockDigest::GoH1(_) => format!("h1:{}", b64()),
        }
    }

    /// The digest for `resolvedDependencies[].digest` (in-toto's DigestSet: lowercase hex, and
    /// `goDirhash1` for Go's, which is not a file digest).
    pub fn digest_set_entry(&self) -> (&'static str, String) {
        let key = match self {
            LockDigest::GoH1(_) => "dirHash1",
            other => other.algorithm(),
        };
        (key, hex::encode(self.bytes()))
    }
}

impl fmt::Display for LockDigest {
    /// The lock's own form and, where that is base64, the hex too (as `sha512sum` prints it).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockDigest::Sha256(bytes) => write!(f, "sha256:{}", hex::encode(bytes)),
            _ => write!(
                f,
                "{} ({} {})",
                self.lock_form(),
                self.algorithm(),
                hex::encode(self.bytes())
            ),
        }
    }
}

/// One file a lock pins, to download and verify.
#[derive(Clone, Debug)]
pub struct LockedFile {
    /// The package URL, `pkg:pypi/six@1.16.0`: the `name` of its provenance entry.
    pub purl: String,
    /// The package as a person names it: `six 1.16.0`, `itoa 1.0.11`, `@types/node 20.1.0`.
    pub package: String,
    /// Where the lock (or the index) says the file is, before any mirror.
    pub url: String,
    /// The file's name in the layout (the last segment of its URL, unless the format says
    /// otherwise).
    pub file_name: String,
    /// What the lock pins it by.
    pub digest: LockDigest,
    /// The 1-based line of the lock that pins it.
    pub line: usize,
    /// What the layout does with it.
    pub kind: FileKind,
}

/// What a fetched file is to its ecosystem's layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// A wheel or sdist: copied under its own name into a flat directory.
    Python,
    /// A `.crate`: unpacked into the vendor directory, with `.cargo-checksum.json`.
    Crate {
        name: String,
        version: String,
        /// The lock's `source`, `registry+<index url>` or `sparse+<index url>`.
        source: String,
    },
    /// An npm tarball; `integrity` as the lock writes it.
    NpmTarball { name: String, version: String },
    /// A Go module's zip.
    GoZip { module: String, version: String },
    /// A Go module's `go.mod`.
    GoMod { module: String, version: String },
}

/// A fetched and verified file, as the layout gets it.
#[derive(Clone, Debug)]
pub struct Verified<'a> {
    pub file: &'a LockedFile,
    /// Where its bytes are (a read-only file in the store).
    pub path: PathBuf,
}

/// What every format's layout writes into `root` (an empty directory) from the verified
/// files; `mount` is where the tree will be in the step (`/inputs/<name>`), for config files
/// that must name absolute paths.
pub fn lay_out(
    format: LockFormat,
    files: &[Verified<'_>],
    root: &Path,
    mount: &str,
    limits: &LayoutLimits,
) -> Result<(), LockError> {
    match format {
        LockFormat::Pip | LockFormat::Uv | LockFormat::Pylock => pip::lay_out(files, root),
        LockFormat::Cargo => cargo::lay_out(files, root, mount, limits),
        LockFormat::Npm => npm::lay_out(files, root),
        LockFormat::Go => go::lay_out(files, root, limits),
    }
}

/// Bounds on what unpacking a fetched archive may write (`limits.output` of the fetch).
#[derive(Clone, Copy, Debug)]
pub struct LayoutLimits {
    pub max_bytes: u64,
    pub max_entries: u64,
}

/// The lock file as the errors name it: its path as the spec gives it.
#[derive(Clone, Debug)]
pub struct LockSource<'a> {
    pub display: &'a str,
    pub text: &'a str,
}

impl LockSource<'_> {
    /// The 1-based line of byte `offset` in the lock.
    pub fn line_of(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .bytes()
            .filter(|&b| b == b'\n')
            .count()
            + 1
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// The lock cannot be read as its format (bad syntax, a missing key).
    #[error("{lock}:{line}: {message}")]
    Invalid {
        lock: String,
        line: usize,
        message: String,
    },

    /// A lock version this build does not read.
    #[error("{lock}: {format} lock version {found} is not supported (expected {expected}); {hint}")]
    UnsupportedVersion {
        lock: String,
        format: LockFormat,
        found: String,
        expected: &'static str,
        hint: &'static str,
    },

    /// An entry the lock does not pin by a digest, so it cannot be fetched hermetically.
    #[error("{lock}:{line}: {package} has no digest in the lock ({what}); {hint}")]
    NoDigest {
        lock: String,
        line: usize,
        package: String,
        what: String,
        hint: String,
    },

    /// An entry of a kind sealroom does not fetch (a git dependency, say).
    #[error("{lock}:{line}: {package}: {message}")]
    Unsupported {
        lock: String,
        line: usize,
        package: String,
        message: String,
    },

    /// The index has no such project, or no file of it with a locked digest.
    #[error("{lock}:{line}: {package}: {message}")]
    NotInIndex {
        lock: String,
        line: usize,
        package: String,
        message: String,
    },

    /// The downloaded bytes are not what the lock pins.
    #[error(
        "{lock}:{line}: {package}: {url} does not match the lock's digest\n  expected: {expected}\n  found:    {found}\nnothing was stored; the file on the server (or the mirror) is not the one that was locked"
    )]
    Mismatch {
        lock: String,
        line: usize,
        package: String,
        url: String,
        expected: String,
        found: String,
    },

    /// A fetched archive cannot be laid out (corrupt, unsafe path, over the limit).
    #[error("{package}: cannot lay out {file}: {message}")]
    Layout {
        package: String,
        file: String,
        message: String,
    },

    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

impl LockError {
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        LockError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

impl Failure for LockError {
    fn exit_code(&self) -> ExitCode {
        match self {
            LockError::Io { .. } => ExitCode::Internal,
            _ => ExitCode::BadInput,
        }
    }
}

/// A purl segment: percent-encoded as the purl spec asks (`@` in a scope is `%40`, `+` is
/// `%2B`); a `:` stays, since the spec says it is never encoded (a Debian epoch `1:2.3`).
pub fn purl_escape(segment: &str) -> String {
    purl_encode(segment, b"")
}

/// A purl qualifier value: like a segment, but a `/` stays too, so that a URL
/// (`download_url`) stays readable; `?`, `&`, `=` and `#` are encoded.
pub fn purl_qualifier_value(value: &str) -> String {
    purl_encode(value, b"/")
}

/// `text` with every byte but the unreserved ones, `:` and `keep` percent-encoded.
fn purl_encode(text: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_' | b'~' | b':' => {
                out.push(byte as char)
            }
            other if keep.contains(&other) => out.push(other as char),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// The last segment of a URL's path, without query or fragment; `None` when it is empty.
pub fn url_file_name(url: &str) -> Option<String> {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let name = path.rsplit('/').next()?;
    (!name.is_empty()).then(|| name.to_string())
}
