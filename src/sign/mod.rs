//! Signing and verifying: DSSE envelopes over PAE, with ECDSA P-256 (SHA-256, DER signatures)
//! and Ed25519 keys read from and written to PEM (PKCS#8 private, plain or encrypted, cosign key
//! files, SPKI public), and the Sigstore bundle form of an envelope.
//!
//! The key id is the lower-case hex sha256 of the public key's DER SubjectPublicKeyInfo.
//!
//! This module knows nothing of statements or artifacts (that is `provenance` and
//! `ops::verify`) and writes no files.

pub mod bundle;
pub mod dsse;
pub mod encrypted;
pub mod keys;

use crate::error::{ExitCode, Failure};
use std::path::PathBuf;

pub use dsse::{Envelope, Signature, pae};
pub use keys::{Algorithm, KeyFormatError, SigningKey, VerifyingKey};

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("cannot read key `{path}`: {source}")]
    ReadKey {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A key file that is not a usable key; the message says what was expected and found.
    #[error("key `{path}`: {source}")]
    Key {
        path: PathBuf,
        #[source]
        source: KeyFormatError,
    },
    #[error(
        "key file `{path}` already exists; refusing to overwrite it (hint: remove it or choose another --out prefix)"
    )]
    KeyExists { path: PathBuf },
    /// Bytes that are not a DSSE envelope in its JSON form.
    #[error("malformed DSSE envelope: {detail}")]
    MalformedEnvelope { detail: String },
    #[error(
        "malformed DSSE envelope: expected base64 (standard or URL-safe) in `{field}`, found {detail}"
    )]
    Base64 { field: String, detail: String },
    #[error("envelope is unsigned: expected at least {threshold} signature(s), found none")]
    Unsigned { threshold: usize },
    #[error("the verification threshold must be at least 1, found 0")]
    ZeroThreshold,
    #[error("--encrypt needs a passphrase: set {variable}")]
    MissingPassphrase { variable: &'static str },
    /// Fewer distinct keys verified than the threshold asks for.
    #[error("{}", below_threshold_message(.threshold, .verified, .keys, .signed_by))]
    BelowThreshold {
        threshold: usize,
        /// Key ids of the given keys that verified a signature.
        verified: Vec<String>,
        /// Key ids of all the given keys.
        keys: Vec<String>,
        /// The key ids the envelope's signatures name (hints, unauthenticated).
        signed_by: Vec<String>,
    },
}

impl Failure for SignError {
    fn exit_code(&self) -> ExitCode {
        ExitCode::BadInput
    }
}

fn below_threshold_message(
    threshold: &usize,
    verified: &[String],
    keys: &[String],
    signed_by: &[String],
) -> String {
    let signed_by = if signed_by.iter().all(|k| k.is_empty()) {
        "keys it does not name".to_string()
    } else {
        signed_by
            .iter()
            .map(|k| {
                if k.is_empty() {
                    "<no keyid>"
                } else {
                    k.as_str()
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    if verified.is_empty() {
        let keys = keys.join(", ");
        let plural = if keys.contains(',') { "keys" } else { "key" };
        format!("no signature verifies with {plural} {keys}; the envelope is signed by {signed_by}")
    } else {
        format!(
            "expected signatures by at least {threshold} of the given keys, found {} ({}); the envelope is signed by {signed_by}",
            verified.len(),
            verified.join(", ")
        )
    }
}
