//! Typed SHA-256 digests and hashing while streaming.
//!
//! A digest is parsed once from `sha256:<64 hex>` and then carried as a type. The kind parameter
//! keeps a blob digest, a tree digest, an image id and an action key from being swapped by
//! accident: they are all SHA-256, but they name different things.
//!
//! This module owns no I/O beyond wrapping a reader or writer; it must not touch the store.

use std::fmt;
use std::io::{self, Read, Write};
use std::marker::PhantomData;
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

/// What a digest names. Only a marker: it changes nothing in the bytes.
pub trait DigestKind:
    Copy + Eq + Ord + std::hash::Hash + fmt::Debug + Send + Sync + 'static
{
    /// Shown in error messages, e.g. "tree digest".
    const WHAT: &'static str;
}

macro_rules! digest_kind {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
        pub enum $name {}
        impl DigestKind for $name {
            const WHAT: &'static str = $what;
        }
    };
}

digest_kind!(
    /// The bytes of one file (a blob in the store, a download, an artifact).
    Blob,
    "blob digest"
);
digest_kind!(
    /// The canonical encoding of a directory tree (see `store::tree`).
    Tree,
    "tree digest"
);
digest_kind!(
    /// A container image id: the digest of its config JSON.
    Image,
    "image digest"
);
digest_kind!(
    /// The key of a step in the action cache.
    Action,
    "action key"
);

/// A SHA-256 digest of a given kind, shown and parsed as `sha256:<64 lower-case hex>`.
pub struct Digest<K: DigestKind> {
    bytes: [u8; 32],
    kind: PhantomData<K>,
}

pub type BlobDigest = Digest<Blob>;
pub type TreeDigest = Digest<Tree>;
pub type ImageDigest = Digest<Image>;
pub type ActionDigest = Digest<Action>;

impl<K: DigestKind> Digest<K> {
    pub const ALGORITHM: &'static str = "sha256";

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self {
            bytes,
            kind: PhantomData,
        }
    }

    /// The digest of `data`, for small in-memory values (tree objects, configs, statements).
    pub fn of(data: &[u8]) -> Self {
        Self::from_bytes(Sha256::digest(data).into())
    }

    /// Parses 64 lower-case hex characters, without the `sha256:` prefix.
    pub fn from_hex(hex: &str) -> Result<Self, DigestParseError> {
        if hex.len() != 64
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(DigestParseError {
                what: K::WHAT,
                found: hex.to_string(),
            });
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex, &mut bytes).expect("validated hex");
        Ok(Self::from_bytes(bytes))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    /// The 64 hex characters, without the prefix (used in file names).
    pub fn hex(&self) -> String {
        String::from_utf8(self.hex_bytes().to_vec()).expect("hex digits are ASCII")
    }

    /// The 64 lowercase hex digits as bytes (tree objects hold thousands of digests: this
    /// avoids a char iterator per digit).
    fn hex_bytes(&self) -> [u8; 64] {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 64];
        for (pair, byte) in out.chunks_exact_mut(2).zip(self.bytes) {
            pair[0] = DIGITS[usize::from(byte >> 4)];
            pair[1] = DIGITS[usize::from(byte & 0x0f)];
        }
        out
    }

    /// The same bytes seen as another kind. Use only where the contract says they are equal,
    /// e.g. a single file's blob digest recorded as an artifact subject.
    pub fn cast<L: DigestKind>(self) -> Digest<L> {
        Digest::from_bytes(self.bytes)
    }
}

impl<K: DigestKind> Clone for Digest<K> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K: DigestKind> Copy for Digest<K> {}
impl<K: DigestKind> PartialEq for Digest<K> {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}
impl<K: DigestKind> Eq for Digest<K> {}
impl<K: DigestKind> PartialOrd for Digest<K> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<K: DigestKind> Ord for Digest<K> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.bytes.cmp(&other.bytes)
    }
}
impl<K: DigestKind> std::hash::Hash for Digest<K> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.bytes.hash(state)
    }
}

impl<K: DigestKind> fmt::Display for Digest<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = self.hex_bytes();
        f.write_str("sha256:")?;
        f.write_str(std::str::from_utf8(&hex).expect("hex digits are ASCII"))
    }
}
impl<K: DigestKind> fmt::Debug for Digest<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}(sha256:{})", K::WHAT, self.hex())
    }
}

impl<K: DigestKind> FromStr for Digest<K> {
    type Err = DigestParseError;

    /// Parses `sha256:<64 lower-case hex>`; nothing else is accepted.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parsed = s.strip_prefix("sha256:").map(Self::from_hex);
        parsed
            .unwrap_or(Err(DigestParseError {
                what: K::WHAT,
                found: String::new(),
            }))
            .map_err(|error| DigestParseError {
                found: s.to_string(),
                ..error
            })
    }
}

impl<K: DigestKind> serde::Serialize for Digest<K> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}
impl<'de, K: DigestKind> serde::Deserialize<'de> for Digest<K> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("expected a {what} of the form `sha256:<64 lower-case hex>`, found `{found}`")]
pub struct DigestParseError {
    pub what: &'static str,
    pub found: String,
}

/// A writer that hashes every byte it passes on; `finish` returns the digest and byte count.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    pub fn finish<K: DigestKind>(self) -> (W, Digest<K>, u64) {
        (
            self.inner,
            Digest::from_bytes(self.hasher.finalize().into()),
            self.len,
        )
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes every byte read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    len: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    pub fn finish<K: DigestKind>(self) -> (R, Digest<K>, u64) {
        (
            self.inner,
            Digest::from_bytes(self.hasher.finalize().into()),
            self.len,
        )
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}

/// Hashes a whole file by streaming it.
pub fn hash_file<K: DigestKind>(path: &std::path::Path) -> io::Result<(Digest<K>, u64)> {
    let mut reader = HashingReader::new(std::fs::File::open(path)?);
    io::copy(&mut reader, &mut io::sink())?;
    let (_, digest, len) = reader.finish();
    Ok((digest, len))
}

/// `bytes` as a UUID of `version` (RFC 9562: the version and variant bits set) in its
/// 8-4-4-4-12 text form.
pub fn uuid_text(mut bytes: [u8; 16], version: u8) -> String {
    bytes[6] = (bytes[6] & 0x0f) | (version << 4);
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_shows_the_prefixed_form() {
        let text = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let digest: BlobDigest = text.parse().unwrap();
        assert_eq!(digest.to_string(), text);
        assert_eq!(digest, BlobDigest::of(b""));
    }

    #[test]
    fn rejects_bare_hex_upper_case_and_short_digests() {
        let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert!(hex.parse::<BlobDigest>().is_err());
        assert!(
            format!("sha256:{}", hex.to_uppercase())
                .parse::<BlobDigest>()
                .is_err()
        );
        let err = "sha256:abc".parse::<TreeDigest>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "expected a tree digest of the form `sha256:<64 lower-case hex>`, found `sha256:abc`"
        );
    }

    #[test]
    fn hashing_writer_matches_one_shot_digest() {
        let mut writer = HashingWriter::new(Vec::new());
        writer.write_all(b"hello ").unwrap();
        writer.write_all(b"world").unwrap();
        let (bytes, digest, len) = writer.finish::<Blob>();
        assert_eq!(bytes, b"hello world");
        assert_eq!(len, 11);
        assert_eq!(digest, BlobDigest::of(b"hello world"));
    }
}
