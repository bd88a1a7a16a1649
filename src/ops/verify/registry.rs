//! `sealroom verify REGISTRY/REPO@sha256:<manifest digest>`: an image in a registry, held to the
//! same policy as a file. The image manifest is fetched by its digest (checked), then its
//! attestations by both schemes ([`crate::registry::referrers`]): cosign's `.att` tag and the
//! OCI referrers (the referrers API, else the fallback tag). Each DSSE layer is downloaded
//! bounded and checked against its digest, then:
//!
//! - an SLSA provenance envelope gets every check `verify` gives a file's provenance (keys,
//!   threshold, statement, builder id, source and spec digests), its subject being the
//!   manifest digest;
//! - an SBOM envelope (CycloneDX, SPDX) gets the SBOM checks: signed by the keys, the image as
//!   subject and described, named in a verified provenance's byproducts.
//!
//! **The rule**: the image verifies when at least one provenance envelope passes every check.
//! Anyone who can write to the registry can add envelopes, delete them or list junk under the
//! fallback tag, but cannot sign with the trusted keys: requiring *every* envelope to pass
//! would let such a writer fail any image (and would fail images that also carry other
//! signers' attestations, which cosign and admission controllers ignore the same way); passing
//! on *any* one lets no such writer make an image pass that the keys did not attest. Every
//! envelope's result is reported, and SBOM results are reported without deciding the verdict.
//! A referrer whose `subject` is another image is not accepted at all, whatever it holds.

use std::path::PathBuf;

use super::{Check, Policy, VerifyError, VerifyReport, check_provenance, sbom};
use crate::digest::BlobDigest;
use crate::provenance::{PAYLOAD_TYPE, PREDICATE_TYPE, Statement};
use crate::registry::Reference;
use crate::registry::client::Client;
use crate::registry::referrers::{FoundEnvelope, NotAccepted, Scheme, att_tag, fallback_tag};
use crate::sbom::SbomFormat;
use crate::sign::SignError;
use crate::sign::dsse::Envelope;
use crate::sign::keys::VerifyingKey;

/// What `verify REF` found and what each envelope's checks gave. `--format json` prints it
/// whole, also on failure.
#[derive(Debug, serde::Serialize)]
pub struct RegistryVerifyReport {
    /// Whether at least one provenance attestation verified.
    pub verified: bool,
    /// `host/repository@sha256:<manifest digest>`.
    pub reference: String,
    pub manifest_digest: BlobDigest,
    pub threshold: usize,
    /// The schemes that held DSSE layers, in the order looked at.
    pub schemes: Vec<Scheme>,
    pub attestations: Vec<AttestationReport>,
    /// Referrers listed for the image but not accepted (another subject, not DSSE), and why.
    pub not_accepted: Vec<NotAccepted>,
    #[serde(skip)]
    failure: Option<VerifyError>,
}

impl RegistryVerifyReport {
    /// The report when a provenance attestation verified, else why none did (exit 4).
    pub fn into_result(mut self) -> Result<RegistryVerifyReport, VerifyError> {
        match self.failure.take() {
            Some(error) => Err(error),
            None => Ok(self),
        }
    }
}

/// One DSSE layer and its checks.
#[derive(Debug, serde::Serialize)]
pub struct AttestationReport {
    pub scheme: Scheme,
    /// The `.att` tag, or the referrer manifest's digest.
    pub manifest: String,
    pub layer: String,
    /// `provenance`, `sbom`, or `other` (a statement type sealroom does not check).
    pub kind: &'static str,
    /// The statement's predicate type (from the layer's annotation when it could not be read).
    pub predicate_type: Option<String>,
    pub verified: bool,
    pub verified_key_ids: Vec<String>,
    pub builder_id: Option<String>,
    pub checks: Vec<Check>,
}

impl AttestationReport {
    /// One line for people: the first failed check's detail, or what verified.
    pub fn summary(&self) -> String {
        if let Some(failed) = self.checks.iter().find(|check| !check.ok) {
            return failed.detail.clone();
        }
        let subject = self.checks.iter().find(|check| check.name == "subject");
        match subject {
            Some(subject) if !self.verified_key_ids.is_empty() => format!(
                "signed by {}; subject {}",
                self.verified_key_ids.join(", "),
                subject.detail
            ),
            _ => self
                .checks
                .last()
                .map_or(String::new(), |check| check.detail.clone()),
        }
    }
}

/// Verifies the image `reference` (which has a digest) in its registry under `policy` (whose
/// `sbom` is not used). Unusable keys, an unreachable registry or a missing image manifest are
/// the error (exit 1); failed checks are in the report, whose failure is exit 4.
pub async fn verify_reference(
    reference: &Reference,
    policy: &Policy,
) -> Result<RegistryVerifyReport, crate::Error> {
    let keys = policy
        .keys
        .iter()
        .map(|path| VerifyingKey::from_pem_file(path))
        .collect::<Result<Vec<_>, SignError>>()?;
    let digest: BlobDigest = reference
        .digest
        .as_deref()
        .and_then(|digest| digest.parse().ok())
        .ok_or_else(|| crate::registry::RegistryError::InvalidReference {
            reference: reference.to_string(),
            reason: "verifying an image needs its manifest digest: `@sha256:<hex>`".to_string(),
        })?;
    let client = Client::new(&reference.registry)?;
    let repository = &reference.repository;
    // By digest: get_manifest checks the bytes against it.
    client.get_manifest(repository, &digest.to_string()).await?;
    let found = client.find_attestations(repository, &digest).await?;

    let name = format!("{}@{digest}", reference.name());
    let mut report = RegistryVerifyReport {
        verified: false,
        reference: name.clone(),
        manifest_digest: digest,
        threshold: policy.threshold,
        schemes: found.schemes.clone(),
        attestations: Vec::new(),
        not_accepted: found.not_accepted.clone(),
        failure: None,
    };

    let classified: Vec<(Kind, &FoundEnvelope)> = found
        .envelopes
        .iter()
        .map(|envelope| (Kind::of(envelope), envelope))
        .collect();
    // Provenance first, so that SBOMs are checked against a verified provenance's byproducts.
    let mut provenance: Option<Statement> = None;
    for (kind, envelope) in &classified {
        if let Kind::Provenance = kind {
            let (attestation, statement) =
                check_provenance_layer(envelope, &name, &digest, &keys, policy);
            if attestation.verified && provenance.is_none() {
                provenance = statement;
            }
            report.attestations.push(attestation);
        }
    }
    for (kind, envelope) in &classified {
        match kind {
            Kind::Provenance => {}
            Kind::Sbom(predicate_type) => report.attestations.push(check_sbom_layer(
                envelope,
                predicate_type,
                &digest,
                &keys,
                policy.threshold,
                provenance.as_ref(),
            )),
            Kind::Other(predicate_type) => report.attestations.push(AttestationReport {
                verified: false,
                checks: vec![Check {
                    name: "predicate-type",
                    ok: false,
                    expected: None,
                    found: predicate_type.clone(),
                    detail: format!(
                        "not checked: predicate type {} is neither {PREDICATE_TYPE} nor an SBOM",
                        predicate_type.as_deref().unwrap_or("unknown")
                    ),
                }],
                ..empty_report(envelope, "other", predicate_type.clone())
            }),
        }
    }

    report.verified = report
        .attestations
        .iter()
        .any(|attestation| attestation.kind == "provenance" && attestation.verified);
    if found.envelopes.is_empty() {
        let mut looked = format!(
            "no DSSE layer under the tag {} nor in a referrer (referrers API, else the fallback tag {})",
            att_tag(&digest),
            fallback_tag(&digest)
        );
        for refused in &found.not_accepted {
            looked.push_str(&format!(
                "; {} {} not accepted: {}",
                refused.scheme, refused.manifest, refused.reason
            ));
        }
        report.failure = Some(VerifyError::NoAttestations {
            reference: name,
            looked,
        });
    } else if !report.verified {
        let reasons: Vec<String> = report
            .attestations
            .iter()
            .filter(|attestation| attestation.kind == "provenance")
            .map(|attestation| {
                format!(
                    "{} {} layer {}: {}",
                    attestation.scheme,
                    attestation.manifest,
                    attestation.layer,
                    attestation.summary()
                )
            })
            .collect();
        let reasons = if reasons.is_empty() {
            format!(
                "none of the {} attestation(s) found is an SLSA provenance ({PREDICATE_TYPE})",
                found.envelopes.len()
            )
        } else {
            reasons.join("; ")
        };
        report.failure = Some(VerifyError::NoneVerified {
            reference: name,
            reasons,
        });
    }
    Ok(report)
}

/// What an envelope claims to be (read before its signature is checked: it only picks the
/// checks, which then verify it).
enum Kind {
    Provenance,
    Sbom(Option<String>),
    Other(Option<String>),
}

impl Kind {
    fn of(envelope: &FoundEnvelope) -> Kind {
        let readable = envelope
            .content
            .as_ref()
            .ok()
            .and_then(|bytes| Envelope::from_json(std::str::from_utf8(bytes).ok()?).ok());
        let claimed = readable
            .as_ref()
            .and_then(|envelope| {
                let statement: serde_json::Value =
                    serde_json::from_slice(&envelope.payload).ok()?;
                Some(statement.get("predicateType")?.as_str()?.to_string())
            })
            .or_else(|| envelope.annotated_predicate_type.clone());
        match claimed.as_deref() {
            Some(PREDICATE_TYPE) => Kind::Provenance,
            Some(other) if SbomFormat::from_predicate_type(other).is_some() => Kind::Sbom(claimed),
            Some(_) => Kind::Other(claimed),
            // Unreadable and unannotated: the provenance checks say what is wrong with it.
            None if readable.is_none() => Kind::Provenance,
            None => Kind::Other(None),
        }
    }
}

fn empty_report(
    envelope: &FoundEnvelope,
    kind: &'static str,
    predicate_type: Option<String>,
) -> AttestationReport {
    AttestationReport {
        scheme: envelope.scheme,
        manifest: envelope.manifest.clone(),
        layer: envelope.layer.clone(),
        kind,
        predicate_type,
        verified: false,
        verified_key_ids: Vec::new(),
        builder_id: None,
        checks: Vec::new(),
    }
}

fn download_failed(detail: &str) -> Check {
    Check {
        name: "download",
        ok: false,
        expected: None,
        found: None,
        detail: format!("refused: {detail}"),
    }
}

/// The provenance checks of `verify` on one layer, its artifact being the image manifest.
fn check_provenance_layer(
    envelope: &FoundEnvelope,
    name: &str,
    digest: &BlobDigest,
    keys: &[VerifyingKey],
    policy: &Policy,
) -> (AttestationReport, Option<Statement>) {
    let mut attestation = empty_report(envelope, "provenance", Some(PREDICATE_TYPE.to_string()));
    let bytes = match &envelope.content {
        Ok(bytes) => bytes,
        Err(detail) => {
            attestation.checks.push(download_failed(detail));
            return (attestation, None);
        }
    };
    let source = PathBuf::from(format!(
        "{} {} layer {}",
        envelope.scheme, envelope.manifest, envelope.layer
    ));
    let parsed = std::str::from_utf8(bytes)
        .map_err(|error| format!("expected UTF-8 JSON, found invalid UTF-8 ({error})"))
        .and_then(|text| Envelope::from_json(text).map_err(|error| error.to_string()))
        .map_err(|detail| VerifyError::MalformedEnvelope {
            path: source,
            detail,
        });
    let mut checked = VerifyReport::new(PathBuf::from(name), digest.hex(), policy.threshold);
    let statement = check_provenance(&mut checked, parsed, keys, policy);
    attestation.verified = checked.failure.is_none();
    attestation.verified_key_ids = checked.verified_key_ids;
    attestation.builder_id = checked.builder_id;
    attestation.checks = checked.checks;
    (attestation, statement)
}

/// The SBOM checks of `verify --sbom` on one layer, its artifact being the image manifest.
fn check_sbom_layer(
    envelope: &FoundEnvelope,
    predicate_type: &Option<String>,
    digest: &BlobDigest,
    keys: &[VerifyingKey],
    threshold: usize,
    provenance: Option<&Statement>,
) -> AttestationReport {
    let mut attestation = empty_report(envelope, "sbom", predicate_type.clone());
    let bytes = match &envelope.content {
        Ok(bytes) => bytes,
        Err(detail) => {
            attestation.checks.push(download_failed(detail));
            return attestation;
        }
    };
    let text = String::from_utf8_lossy(bytes);
    let result = sbom::check_line(&text, &digest.hex(), keys, threshold, provenance);
    attestation.verified = result.is_ok();
    let detail = match result {
        Ok(format) => format!(
            "{format} signed ({PAYLOAD_TYPE}), describing the image{}",
            if provenance.is_some() {
                ", named in the provenance's byproducts"
            } else {
                " (no verified provenance to hold it to)"
            }
        ),
        Err(detail) => detail,
    };
    attestation.checks.push(Check {
        name: "sbom",
        ok: attestation.verified,
        expected: None,
        found: None,
        detail,
    });
    attestation
}
