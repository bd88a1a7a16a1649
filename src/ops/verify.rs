//! `sealroom verify`: check an artifact against its provenance and public keys.
//!
//! Inputs that cannot be read at all (a missing provenance file, artifact or key, or a key that
//! is not a key) are bad input, exit 1. Everything about the provenance's content (an envelope
//! that does not parse, a signature, the statement, the subject, the builder) is a failed
//! verification, exit 4, with what was expected and what was found.
//!
//! This module reads files and composes `sign` and `provenance`; it writes nothing.

use std::path::{Path, PathBuf};

use crate::digest::{Blob, hash_file};
use crate::provenance::{PAYLOAD_TYPE, PREDICATE_TYPE, STATEMENT_TYPE, Statement};
use crate::sign::SignError;
use crate::sign::dsse::Envelope;
use crate::sign::keys::VerifyingKey;

/// What a verification holds the provenance to. `verify` is this with one key, threshold 1.
#[derive(Debug, Clone)]
pub struct Policy {
    /// PEM public keys (SPKI); signatures by `threshold` distinct ones must verify.
    pub keys: Vec<PathBuf>,
    pub threshold: usize,
    /// The builder id the provenance must name, when given.
    pub builder_id: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct VerifyReport {
    pub artifact: PathBuf,
    /// The artifact's sha256, lower-case hex.
    pub artifact_sha256: String,
    /// Key ids of the given keys whose signatures verified.
    pub verified_key_ids: Vec<String>,
    /// The builder id the provenance names.
    pub builder_id: String,
    /// Each check, in order, with what it found.
    pub checks: Vec<Check>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

/// Checks, in order: the payload type, a signature over PAE by `key`, the statement and
/// predicate types, the artifact's sha256 against a subject, and the builder id when
/// `builder_id` is given. The first failure is a `VerifyError` (exit 4) naming what was
/// expected and what was found.
pub fn verify(
    artifact: &Path,
    provenance: &Path,
    key: &Path,
    builder_id: Option<&str>,
) -> Result<VerifyReport, crate::Error> {
    let policy = Policy {
        keys: vec![key.to_path_buf()],
        threshold: 1,
        builder_id: builder_id.map(str::to_string),
    };
    verify_policy(artifact, provenance, &policy)
}

/// `verify` with several keys and a threshold.
pub fn verify_policy(
    artifact: &Path,
    provenance: &Path,
    policy: &Policy,
) -> Result<VerifyReport, crate::Error> {
    // Bad input first (exit 1), so a verification failure always means the content is wrong.
    let keys = policy
        .keys
        .iter()
        .map(|path| VerifyingKey::from_pem_file(path))
        .collect::<Result<Vec<_>, SignError>>()?;
    let bytes = std::fs::read(provenance)
        .map_err(|e| crate::Error::io("cannot read provenance", provenance, e))?;
    let (artifact_digest, _) = hash_file::<Blob>(artifact)
        .map_err(|e| crate::Error::io("cannot read artifact", artifact, e))?;
    let envelope = read_envelope(provenance, &bytes)?;

    let mut checks = Vec::new();
    let mut pass = |name, detail: String| {
        checks.push(Check {
            name,
            ok: true,
            detail,
        })
    };

    if envelope.payload_type != PAYLOAD_TYPE {
        return Err(VerifyError::PayloadType {
            expected: PAYLOAD_TYPE,
            found: envelope.payload_type.clone(),
        }
        .into());
    }
    pass("payload-type", envelope.payload_type.clone());

    let verified_key_ids = envelope
        .verify(&keys, policy.threshold)
        .map_err(VerifyError::Signature)?;
    pass(
        "signature",
        format!("signed over PAE by {}", verified_key_ids.join(", ")),
    );

    let statement = parse_statement(&envelope.payload)?;
    pass(
        "statement",
        format!("{STATEMENT_TYPE} with predicate {PREDICATE_TYPE}"),
    );

    let found = artifact_digest.hex();
    match statement.subject_sha256().find(|(_, hex)| *hex == found) {
        Some((name, _)) => pass("subject", format!("sha256 {found} (subject `{name}`)")),
        None => {
            let recorded: Vec<String> = statement
                .subject_sha256()
                .map(|(name, hex)| format!("{hex} (subject `{name}`)"))
                .collect();
            return Err(VerifyError::SubjectMismatch {
                artifact: artifact.to_path_buf(),
                expected: if recorded.is_empty() {
                    "a subject with a sha256 digest, found none".to_string()
                } else {
                    recorded.join(" or ")
                },
                found,
            }
            .into());
        }
    }

    let recorded_builder = statement.predicate.run_details.builder.id.clone();
    if let Some(expected) = &policy.builder_id {
        if *expected != recorded_builder {
            return Err(VerifyError::BuilderId {
                expected: expected.clone(),
                found: recorded_builder,
            }
            .into());
        }
        pass("builder-id", recorded_builder.clone());
    }

    Ok(VerifyReport {
        artifact: artifact.to_path_buf(),
        artifact_sha256: artifact_digest.hex(),
        verified_key_ids,
        builder_id: recorded_builder,
        checks,
    })
}

/// The envelope on the first non-empty line of an `.intoto.jsonl` file.
pub(crate) fn read_envelope(path: &Path, bytes: &[u8]) -> Result<Envelope, VerifyError> {
    let malformed = |detail: String| VerifyError::MalformedEnvelope {
        path: path.to_path_buf(),
        detail,
    };
    let text = std::str::from_utf8(bytes)
        .map_err(|e| malformed(format!("expected UTF-8 JSON, found invalid UTF-8 ({e})")))?;
    let line = text
        .lines()
        .find(|line| !line.trim().is_empty())
        .ok_or_else(|| {
            malformed(
                "expected a DSSE envelope as JSON on one line, found an empty file".to_string(),
            )
        })?;
    Envelope::from_json(line).map_err(|error| malformed(error.to_string()))
}

pub(crate) fn parse_statement(payload: &[u8]) -> Result<Statement, VerifyError> {
    let malformed = |detail: String| VerifyError::MalformedStatement { detail };
    let value: serde_json::Value = serde_json::from_slice(payload)
        .map_err(|e| malformed(format!("expected JSON, found {e}")))?;
    let field = |name: &str| match value.get(name) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "nothing".to_string(),
    };
    if !value.is_object() {
        return Err(malformed(format!(
            "expected a JSON object, found {}",
            json_kind(&value)
        )));
    }
    let statement_type = field("_type");
    if statement_type != STATEMENT_TYPE {
        return Err(VerifyError::StatementType {
            expected: STATEMENT_TYPE,
            found: statement_type,
        });
    }
    let predicate_type = field("predicateType");
    if predicate_type != PREDICATE_TYPE {
        return Err(VerifyError::PredicateType {
            expected: PREDICATE_TYPE,
            found: predicate_type,
        });
    }
    serde_json::from_value(value).map_err(|e| {
        malformed(format!(
            "expected subject and an SLSA v1 predicate (buildDefinition, runDetails.builder.id), found {e}"
        ))
    })
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// A failed verification: one variant per check, each saying what was expected and found.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("provenance `{path}` is not a DSSE envelope: {detail}")]
    MalformedEnvelope { path: PathBuf, detail: String },
    #[error("payload type: expected `{expected}`, found `{found}`")]
    PayloadType {
        expected: &'static str,
        found: String,
    },
    /// Unsigned, no signature by the key, or fewer keys than the threshold.
    #[error(transparent)]
    Signature(SignError),
    #[error("payload is not an in-toto statement: {detail}")]
    MalformedStatement { detail: String },
    #[error("statement type: expected `{expected}`, found `{found}`")]
    StatementType {
        expected: &'static str,
        found: String,
    },
    #[error("predicate type: expected `{expected}`, found `{found}`")]
    PredicateType {
        expected: &'static str,
        found: String,
    },
    #[error(
        "subject digest mismatch for `{artifact}`: expected sha256 {expected}, found sha256 {found}"
    )]
    SubjectMismatch {
        artifact: PathBuf,
        expected: String,
        found: String,
    },
    #[error("builder id: expected `{expected}`, found `{found}`")]
    BuilderId { expected: String, found: String },
}
