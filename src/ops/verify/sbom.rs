//! `sealroom verify --sbom FILE`: the SBOM attestation next to an artifact
//! (`<artifact>.sbom.intoto.jsonl`, one DSSE envelope a line), held to the same keys as the
//! provenance. Each envelope must be signed, hold an in-toto Statement v1 whose predicate is a
//! CycloneDX 1.6 or SPDX 2.3 document describing the artifact, with the artifact as subject;
//! and the provenance must name that document's digest in `byproducts`, so that the SBOM is
//! tied to the build that wrote it.

use std::path::Path;

use serde_json::Value;

use super::{VerifyError, VerifyReport};
use crate::provenance::{PAYLOAD_TYPE, STATEMENT_TYPE, Statement};
use crate::sbom::SbomFormat;
use crate::sign::dsse::Envelope;
use crate::sign::keys::VerifyingKey;

/// Checks every envelope of the SBOM attestation `path` (its `bytes`), and records one passed
/// `sbom` check, or the first failure of each envelope. `provenance` is the verified statement
/// of the artifact, when it verified.
pub(super) fn check_sbom(
    report: &mut VerifyReport,
    path: &Path,
    bytes: &[u8],
    keys: &[VerifyingKey],
    threshold: usize,
    provenance: Option<&Statement>,
) {
    let fail = |report: &mut VerifyReport, line: usize, detail: String| {
        let error = VerifyError::Sbom {
            path: path.to_path_buf(),
            line,
            detail,
        };
        report.fail("sbom", None, error);
    };
    let Ok(text) = std::str::from_utf8(bytes) else {
        return fail(
            report,
            1,
            "expected UTF-8 JSON lines, found invalid UTF-8".into(),
        );
    };
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| (index + 1, line))
        .collect();
    if lines.is_empty() {
        return fail(
            report,
            1,
            "expected one DSSE envelope a line, found an empty file".into(),
        );
    }
    let mut formats = Vec::new();
    for (number, line) in lines {
        match check_line(line, &report.artifact_sha256, keys, threshold, provenance) {
            Ok(format) => formats.push(format),
            Err(detail) => return fail(report, number, detail),
        }
    }
    report.pass(
        "sbom",
        format!(
            "{} signed, describing the artifact, named in the provenance's byproducts",
            formats.join(" and ")
        ),
    );
}

/// One envelope: the format's name when every check holds, else what failed.
pub(super) fn check_line(
    line: &str,
    artifact: &str,
    keys: &[VerifyingKey],
    threshold: usize,
    provenance: Option<&Statement>,
) -> Result<&'static str, String> {
    let envelope = Envelope::from_json(line.trim())
        .map_err(|error| format!("not a DSSE envelope: {error}"))?;
    if envelope.payload_type != PAYLOAD_TYPE {
        return Err(format!(
            "payload type: expected `{PAYLOAD_TYPE}`, found `{}`",
            envelope.payload_type
        ));
    }
    envelope
        .verify(keys, threshold)
        .map_err(|error| format!("signature: {error}"))?;
    let statement: Value = serde_json::from_slice(&envelope.payload).map_err(|error| {
        format!("payload: expected an in-toto statement as JSON, found {error}")
    })?;
    let found = |key: &str| {
        statement
            .get(key)
            .map_or("nothing".to_string(), Value::to_string)
    };
    if statement.get("_type").and_then(Value::as_str) != Some(STATEMENT_TYPE) {
        return Err(format!(
            "statement type: expected `{STATEMENT_TYPE}`, found {}",
            found("_type")
        ));
    }
    let format = statement
        .get("predicateType")
        .and_then(Value::as_str)
        .and_then(SbomFormat::from_predicate_type)
        .ok_or_else(|| {
            format!(
                "predicate type: expected `{}` or `{}`, found {}",
                SbomFormat::Cyclonedx.predicate_type(),
                SbomFormat::Spdx.predicate_type(),
                found("predicateType")
            )
        })?;
    let subjects: Vec<&str> = statement
        .get("subject")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|subject| subject.pointer("/digest/sha256").and_then(Value::as_str))
        .collect();
    if !subjects.contains(&artifact) {
        return Err(format!(
            "subject: expected the artifact's sha256 {artifact}, found {}",
            if subjects.is_empty() {
                "no sha256 subject".to_string()
            } else {
                subjects.join(", ")
            }
        ));
    }
    let document = statement.get("predicate").unwrap_or(&Value::Null);
    let (name, described) = describes(format, document)?;
    if !described.contains(&artifact) {
        return Err(format!(
            "the {name} document describes sha256 {}, not the artifact's {artifact}",
            if described.is_empty() {
                "nothing".to_string()
            } else {
                described.join(", ")
            }
        ));
    }
    if let Some(provenance) = provenance {
        let digest = crate::digest::BlobDigest::of(&crate::sbom::to_file_bytes(document)).hex();
        let named = provenance
            .predicate
            .run_details
            .byproducts
            .iter()
            .any(|byproduct| byproduct.digest.get("sha256") == Some(&digest));
        if !named {
            return Err(format!(
                "the provenance's byproducts do not name this {name} document (sha256 {digest}): it is not the SBOM of the build the provenance records"
            ));
        }
    }
    Ok(name)
}

/// The format's name and the sha256 values of what the document describes, after checking
/// it is a document of that format and version.
fn describes(format: SbomFormat, document: &Value) -> Result<(&'static str, Vec<&str>), String> {
    let text = |pointer: &str| document.pointer(pointer).and_then(Value::as_str);
    match format {
        SbomFormat::Cyclonedx => {
            if text("/bomFormat") != Some("CycloneDX")
                || text("/specVersion") != Some(crate::sbom::cyclonedx::SPEC_VERSION)
            {
                return Err(format!(
                    "predicate: expected a CycloneDX {} document, found bomFormat {:?}, specVersion {:?}",
                    crate::sbom::cyclonedx::SPEC_VERSION,
                    text("/bomFormat"),
                    text("/specVersion")
                ));
            }
            let hashes = document
                .pointer("/metadata/component/hashes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|hash| hash.get("alg").and_then(Value::as_str) == Some("SHA-256"))
                .filter_map(|hash| hash.get("content").and_then(Value::as_str))
                .collect();
            Ok(("CycloneDX", hashes))
        }
        SbomFormat::Spdx => {
            if text("/spdxVersion") != Some(crate::sbom::spdx::SPEC_VERSION) {
                return Err(format!(
                    "predicate: expected an {} document, found spdxVersion {:?}",
                    crate::sbom::spdx::SPEC_VERSION,
                    text("/spdxVersion")
                ));
            }
            let described: Vec<&str> = document
                .get("relationships")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|r| {
                    r.get("spdxElementId").and_then(Value::as_str) == Some("SPDXRef-DOCUMENT")
                        && r.get("relationshipType").and_then(Value::as_str) == Some("DESCRIBES")
                })
                .filter_map(|r| r.get("relatedSpdxElement").and_then(Value::as_str))
                .collect();
            let hashes = document
                .get("packages")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|package| {
                    package
                        .get("SPDXID")
                        .and_then(Value::as_str)
                        .is_some_and(|id| described.contains(&id))
                })
                .flat_map(|package| {
                    package
                        .get("checksums")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                })
                .filter(|checksum| {
                    checksum.get("algorithm").and_then(Value::as_str) == Some("SHA256")
                })
                .filter_map(|checksum| checksum.get("checksumValue").and_then(Value::as_str))
                .collect();
            Ok(("SPDX", hashes))
        }
    }
}
