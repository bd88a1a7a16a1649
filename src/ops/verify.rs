//! `sealroom verify`: check an artifact against its provenance and a policy (trusted keys, a
//! threshold, and optionally the builder id, a source tree digest and the spec digest).
//!
//! Inputs that cannot be read at all (a missing provenance file, artifact or key, or a key that
//! is not a key) are bad input, exit 1. Everything about the provenance's content (an envelope
//! that does not parse, a signature, the statement, the subject, the claims) is a failed
//! verification, exit 4, with what was expected and what was found. Every check is reported,
//! passed or failed, so `--format json` can show the whole picture.
//!
//! This module reads files and composes `sign` and `provenance`; it writes nothing.

use std::path::{Path, PathBuf};

use crate::digest::{Blob, BlobDigest, TreeDigest, hash_file};
use crate::error::{ExitCode, Failure};
use crate::provenance::{PAYLOAD_TYPE, PREDICATE_TYPE, STATEMENT_TYPE, Statement};
use crate::sign::SignError;
use crate::sign::dsse::Envelope;
use crate::sign::keys::VerifyingKey;

mod registry;
mod sbom;

pub use registry::{AttestationReport, RegistryVerifyReport, verify_reference};

/// What a verification holds the provenance to. `verify` is this with one key, threshold 1.
#[derive(Debug, Clone)]
pub struct Policy {
    /// PEM public keys (SPKI); signatures by `threshold` distinct ones must verify. The same
    /// key given twice, or signing twice, counts once.
    pub keys: Vec<PathBuf>,
    pub threshold: usize,
    /// The builder id the provenance must name, when given.
    pub builder_id: Option<String>,
    /// A `source:*` entry of `resolvedDependencies` must have this tree digest, when given.
    pub source_digest: Option<TreeDigest>,
    /// `externalParameters.spec.digest.sha256` must be this, when given.
    pub spec_digest: Option<BlobDigest>,
    /// `--sbom`: the SBOM attestation (`<artifact>.sbom.intoto.jsonl`) to check too.
    pub sbom: Option<PathBuf>,
}

impl Policy {
    /// One key, threshold 1, no claims beyond the subject.
    pub fn single_key(key: impl Into<PathBuf>) -> Self {
        Policy {
            keys: vec![key.into()],
            threshold: 1,
            builder_id: None,
            source_digest: None,
            spec_digest: None,
            sbom: None,
        }
    }
}

/// Every check that ran, passed or not. `--format json` prints it whole, also on failure.
#[derive(Debug, serde::Serialize)]
pub struct VerifyReport {
    /// Whether every check passed.
    pub verified: bool,
    pub artifact: PathBuf,
    /// The artifact's sha256, lower-case hex.
    pub artifact_sha256: String,
    pub threshold: usize,
    /// Key ids of the given keys whose signatures verified.
    pub verified_key_ids: Vec<String>,
    /// The builder id the provenance names (when the statement could be read).
    pub builder_id: Option<String>,
    /// Each check, in order, with what it expected and found.
    pub checks: Vec<Check>,
    /// The first failed check as an error (exit 4); `None` when verified.
    #[serde(skip)]
    failure: Option<VerifyError>,
}

impl VerifyReport {
    /// The failed check's error, if any.
    pub fn failure(&self) -> Option<&VerifyError> {
        self.failure.as_ref()
    }

    /// The report when every check passed, else the first failure.
    pub fn into_result(mut self) -> Result<VerifyReport, VerifyError> {
        match self.failure.take() {
            Some(error) => Err(error),
            None => Ok(self),
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    /// What the policy asked for, when the check compares values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// What the provenance holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub found: Option<String>,
    /// One line for people: what passed, or the error.
    pub detail: String,
}

/// What `sealroom verify ARTIFACT` checks: a file with its provenance, or an image in a
/// registry with the attestations published there.
#[derive(Debug)]
pub enum Target {
    File {
        artifact: PathBuf,
        provenance: PathBuf,
    },
    Registry(crate::registry::Reference),
}

/// Tells the two forms of `verify` apart: an `artifact` that is not an existing file and parses
/// as `REGISTRY/REPO@sha256:<digest>` is an image in a registry (which needs no `--provenance`
/// and takes no `--sbom`); anything else is a file, which needs `provenance`.
pub fn target(
    artifact: &Path,
    provenance: Option<&Path>,
    sbom: Option<&Path>,
) -> Result<Target, VerifyInputError> {
    let text = artifact.to_string_lossy();
    if !artifact.exists()
        && let Ok(reference) = crate::registry::Reference::parse(&text)
        && reference.digest.is_some()
    {
        if sbom.is_some() {
            return Err(VerifyInputError::SbomWithReference {
                reference: reference.to_string(),
            });
        }
        return Ok(Target::Registry(reference));
    }
    match provenance {
        Some(provenance) => Ok(Target::File {
            artifact: artifact.to_path_buf(),
            provenance: provenance.to_path_buf(),
        }),
        None if artifact.exists() => Err(VerifyInputError::ProvenanceMissing {
            artifact: artifact.to_path_buf(),
        }),
        None => Err(VerifyInputError::NeitherFileNorReference {
            artifact: artifact.to_path_buf(),
        }),
    }
}

/// A `verify` command line that names no usable target.
#[derive(Debug, thiserror::Error)]
pub enum VerifyInputError {
    #[error(
        "`{artifact}` is a file, and verifying a file needs its provenance\n  hint: add `--provenance {artifact}.intoto.jsonl`"
    )]
    ProvenanceMissing { artifact: PathBuf },
    #[error(
        "`{artifact}` is neither a file nor a registry reference pinned by digest\n  hint: name the artifact file with --provenance, or an image as REGISTRY/REPOSITORY@sha256:<manifest digest>"
    )]
    NeitherFileNorReference { artifact: PathBuf },
    #[error(
        "--sbom names the SBOM attestation of a file artifact; {reference} is an image in a registry, whose SBOM attestations are read from there\n  hint: leave out --sbom"
    )]
    SbomWithReference { reference: String },
}

impl Failure for VerifyInputError {
    fn exit_code(&self) -> ExitCode {
        ExitCode::Usage
    }
}

/// Checks one key with threshold 1, and the builder id when given (see [`verify_policy`]).
pub fn verify(
    artifact: &Path,
    provenance: &Path,
    key: &Path,
    builder_id: Option<&str>,
) -> Result<VerifyReport, crate::Error> {
    let policy = Policy {
        builder_id: builder_id.map(str::to_string),
        ..Policy::single_key(key)
    };
    verify_policy(artifact, provenance, &policy)
}

/// [`check_policy`], with a failed check as the error (exit 4).
pub fn verify_policy(
    artifact: &Path,
    provenance: &Path,
    policy: &Policy,
) -> Result<VerifyReport, crate::Error> {
    Ok(check_policy(artifact, provenance, policy)?.into_result()?)
}

/// Runs every check of `policy` and reports each. Inputs that cannot be used at all (a missing
/// file, a key that is not a public key) are the error (exit 1); failed checks are in the
/// report.
///
/// Checks, in order: `envelope` (a DSSE envelope), `payload-type`, `signature` (threshold
/// distinct keys over the PAE), `statement` (in-toto v1 with an SLSA v1 predicate); these stop
/// at the first failure, since nothing after them can be trusted. Then the claims, each
/// checked even when another fails: `subject` (the artifact's sha256), and when asked
/// `builder-id`, `source-digest`, `spec-digest`, and `sbom` (the SBOM attestation: see
/// [`sbom`]).
pub fn check_policy(
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
    let sbom_bytes = match &policy.sbom {
        Some(path) => Some(
            std::fs::read(path)
                .map_err(|e| crate::Error::io("cannot read the SBOM attestation", path, e))?,
        ),
        None => None,
    };

    let mut report = VerifyReport::new(
        artifact.to_path_buf(),
        artifact_digest.hex(),
        policy.threshold,
    );
    let statement = check_provenance(
        &mut report,
        read_envelope(provenance, &bytes),
        &keys,
        policy,
    );
    if let (Some(path), Some(bytes)) = (&policy.sbom, &sbom_bytes) {
        sbom::check_sbom(
            &mut report,
            path,
            bytes,
            &keys,
            policy.threshold,
            statement.as_ref(),
        );
    }
    report.verified = report.failure.is_none();
    Ok(report)
}

/// Every check of one provenance envelope (or why it could not be read): the envelope's own
/// checks, then the claims against `report`'s artifact digest and `policy`. The statement when
/// the envelope's checks passed. The file and the registry paths of `verify` share it.
fn check_provenance(
    report: &mut VerifyReport,
    envelope: Result<Envelope, VerifyError>,
    keys: &[VerifyingKey],
    policy: &Policy,
) -> Option<Statement> {
    let statement = check_envelope(report, envelope, keys, policy)?;
    check_claims(report, &statement, policy);
    Some(statement)
}

impl VerifyReport {
    /// An empty report about the artifact `artifact` of sha256 `artifact_sha256` (hex).
    fn new(artifact: PathBuf, artifact_sha256: String, threshold: usize) -> Self {
        VerifyReport {
            verified: false,
            artifact,
            artifact_sha256,
            threshold,
            verified_key_ids: Vec::new(),
            builder_id: None,
            checks: Vec::new(),
            failure: None,
        }
    }

    fn pass(&mut self, name: &'static str, detail: String) {
        self.checks.push(Check {
            name,
            ok: true,
            expected: None,
            found: None,
            detail,
        });
    }

    fn compare(&mut self, name: &'static str, expected: String, found: String, detail: String) {
        self.checks.push(Check {
            name,
            ok: true,
            expected: Some(expected),
            found: Some(found),
            detail,
        });
    }

    /// Records a failed check; the first failure becomes the report's error.
    fn fail(&mut self, name: &'static str, values: Option<(String, String)>, error: VerifyError) {
        let (expected, found) = values.unzip();
        self.checks.push(Check {
            name,
            ok: false,
            expected,
            found,
            detail: error.to_string(),
        });
        if self.failure.is_none() {
            self.failure = Some(error);
        }
    }
}

/// The checks that make the payload trustworthy; the statement when they all pass.
fn check_envelope(
    report: &mut VerifyReport,
    envelope: Result<Envelope, VerifyError>,
    keys: &[VerifyingKey],
    policy: &Policy,
) -> Option<Statement> {
    let envelope = match envelope {
        Ok(envelope) => envelope,
        Err(error) => {
            report.fail("envelope", None, error);
            return None;
        }
    };
    report.pass(
        "envelope",
        format!(
            "a DSSE envelope with {} signature(s)",
            envelope.signatures.len()
        ),
    );

    if envelope.payload_type != PAYLOAD_TYPE {
        let error = VerifyError::PayloadType {
            expected: PAYLOAD_TYPE,
            found: envelope.payload_type.clone(),
        };
        let values = (PAYLOAD_TYPE.to_string(), envelope.payload_type.clone());
        report.fail("payload-type", Some(values), error);
        return None;
    }
    report.compare(
        "payload-type",
        PAYLOAD_TYPE.to_string(),
        envelope.payload_type.clone(),
        envelope.payload_type.clone(),
    );

    match envelope.verify(keys, policy.threshold) {
        Ok(verified) => {
            let detail = format!(
                "signed over PAE by {} of the given keys (threshold {}): {}",
                verified.len(),
                policy.threshold,
                verified.join(", ")
            );
            report.compare(
                "signature",
                format!("{} distinct key(s)", policy.threshold),
                format!("{} distinct key(s)", verified.len()),
                detail,
            );
            report.verified_key_ids = verified;
        }
        Err(error) => {
            let found = match &error {
                SignError::BelowThreshold { verified, .. } => verified.len(),
                _ => 0,
            };
            let values = (
                format!("{} distinct key(s)", policy.threshold),
                format!("{found} distinct key(s)"),
            );
            report.fail("signature", Some(values), VerifyError::Signature(error));
            return None;
        }
    }

    match parse_statement(&envelope.payload) {
        Ok(statement) => {
            report.pass(
                "statement",
                format!("{STATEMENT_TYPE} with predicate {PREDICATE_TYPE}"),
            );
            Some(statement)
        }
        Err(error) => {
            report.fail("statement", None, error);
            None
        }
    }
}

/// What the statement claims, against the artifact and the policy.
fn check_claims(report: &mut VerifyReport, statement: &Statement, policy: &Policy) {
    let found = report.artifact_sha256.clone();
    let recorded: Vec<String> = statement
        .subject_sha256()
        .map(|(name, hex)| format!("{hex} (subject `{name}`)"))
        .collect();
    match statement.subject_sha256().find(|(_, hex)| *hex == found) {
        Some((name, _)) => report.compare(
            "subject",
            format!("sha256:{found}"),
            format!("sha256:{found}"),
            format!("sha256 {found} (subject `{name}`)"),
        ),
        None => {
            let expected = if recorded.is_empty() {
                "a subject with a sha256 digest, found none".to_string()
            } else {
                recorded.join(" or ")
            };
            let error = VerifyError::SubjectMismatch {
                artifact: report.artifact.clone(),
                expected: expected.clone(),
                found: found.clone(),
            };
            report.fail(
                "subject",
                Some((expected, format!("sha256:{found}"))),
                error,
            );
        }
    }

    let recorded_builder = statement.predicate.run_details.builder.id.clone();
    report.builder_id = Some(recorded_builder.clone());
    if let Some(expected) = &policy.builder_id {
        if *expected == recorded_builder {
            report.compare(
                "builder-id",
                expected.clone(),
                recorded_builder.clone(),
                recorded_builder,
            );
        } else {
            let error = VerifyError::BuilderId {
                expected: expected.clone(),
                found: recorded_builder.clone(),
            };
            report.fail(
                "builder-id",
                Some((expected.clone(), recorded_builder)),
                error,
            );
        }
    }

    if let Some(expected) = &policy.source_digest {
        let sources: Vec<(&str, Option<&str>)> = statement
            .predicate
            .build_definition
            .resolved_dependencies
            .iter()
            .filter_map(|dependency| {
                let name = dependency.name.as_deref()?;
                name.starts_with("source:")
                    .then(|| (name, dependency.digest.get("sha256").map(String::as_str)))
            })
            .collect();
        let hex = expected.hex();
        match sources
            .iter()
            .find(|(_, digest)| *digest == Some(hex.as_str()))
        {
            Some((name, _)) => report.compare(
                "source-digest",
                expected.to_string(),
                expected.to_string(),
                format!("{expected} (`{name}`)"),
            ),
            None => {
                let found = if sources.is_empty() {
                    "no `source:*` dependency".to_string()
                } else {
                    sources
                        .iter()
                        .map(|(name, digest)| match digest {
                            Some(hex) => format!("`sha256:{hex}` (`{name}`)"),
                            None => format!("no sha256 (`{name}`)"),
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let error = VerifyError::SourceDigest {
                    expected: expected.to_string(),
                    found: found.clone(),
                };
                report.fail("source-digest", Some((expected.to_string(), found)), error);
            }
        }
    }

    if let Some(expected) = &policy.spec_digest {
        let recorded = statement
            .predicate
            .build_definition
            .external_parameters
            .get("spec")
            .and_then(|spec| spec.pointer("/digest/sha256"))
            .and_then(serde_json::Value::as_str);
        let hex = expected.hex();
        if recorded == Some(hex.as_str()) {
            report.compare(
                "spec-digest",
                expected.to_string(),
                expected.to_string(),
                expected.to_string(),
            );
        } else {
            let found = match recorded {
                Some(hex) => format!("`sha256:{hex}`"),
                None => "no externalParameters.spec.digest.sha256".to_string(),
            };
            let error = VerifyError::SpecDigest {
                expected: expected.to_string(),
                found: found.clone(),
            };
            report.fail("spec-digest", Some((expected.to_string(), found)), error);
        }
    }
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
    #[error("source digest: expected a `source:*` dependency with `{expected}`, found {found}")]
    SourceDigest { expected: String, found: String },
    #[error(
        "spec digest: expected `{expected}` in externalParameters.spec.digest.sha256, found {found}"
    )]
    SpecDigest { expected: String, found: String },
    #[error(
        "no attestation of {reference} found: {looked}\n  hint: push the image with `sealroom push` from a build signed with --key"
    )]
    NoAttestations { reference: String, looked: String },
    #[error("no provenance attestation of {reference} verifies under the policy: {reasons}")]
    NoneVerified { reference: String, reasons: String },
    #[error("SBOM attestation `{path}`, line {line}: {detail}")]
    Sbom {
        path: PathBuf,
        line: usize,
        detail: String,
    },
}

impl Failure for VerifyError {
    fn exit_code(&self) -> ExitCode {
        ExitCode::VerificationFailed
    }
}
