//! `sealroom verify`: check an artifact against its provenance and a public key.

use std::path::Path;

#[derive(Debug, Clone, serde::Serialize)]
pub struct VerifyReport {
    /// Each check, in order, with what it found.
    pub checks: Vec<Check>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

/// Checks, in order: the envelope's signature over PAE with `key`, the payload type, the
/// statement and predicate types, the artifact's sha256 against a subject, and the builder id
/// when `builder_id` is given. The first failure is a `VerifyError` (exit 4) naming what was
/// expected and what was found.
pub fn verify(
    artifact: &Path,
    provenance: &Path,
    key: &Path,
    builder_id: Option<&str>,
) -> Result<VerifyReport, crate::Error> {
    let _ = (artifact, provenance, key, builder_id);
    unimplemented!("sign helper")
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("subject digest mismatch: expected {expected}, found {found}")]
    SubjectMismatch { expected: String, found: String },
}
