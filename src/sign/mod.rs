//! Signing and verifying: DSSE envelopes over PAE, with ECDSA P-256 (SHA-256, DER signatures)
//! and Ed25519 keys read from and written to PEM (PKCS#8 private, SPKI public).
//!
//! The key id is the lower-case hex sha256 of the public key's DER SubjectPublicKeyInfo.

pub mod dsse;
pub mod keys;

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("cannot read key `{path}`: {source}")]
    ReadKey {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}
