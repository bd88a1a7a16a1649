//! `sealroom push IMAGE REF`: an OCI image layout (or the `[[image]]` of that name in `--out`)
//! to a registry, by digest. Blobs the registry has are skipped (`HEAD`), the others uploaded
//! from the layout's files; the manifest is put by its digest, then under REF's tag if it has
//! one. What was pushed is named `REF@sha256:<manifest digest>`, the same bytes on every machine
//! that built the same spec.
//!
//! Then the image's signed attestations, when the layout has them next to it
//! (`<image>.intoto.jsonl`, the SLSA provenance, and `<image>.sbom.intoto.jsonl`, one SBOM
//! envelope a line): each envelope whose statement's subject is the manifest digest is pushed
//! as cosign's `sha256-<hex>.att` tag and as an OCI 1.1 referrer (see
//! [`crate::registry::referrers`]). An attestation about another manifest (left over from
//! another build) is refused before anything is pushed; unsigned envelopes (a build without
//! `--key`) are not pushed, since no verifier could trust them.

use std::path::{Path, PathBuf};

use crate::digest::BlobDigest;
use crate::error::Error;
use crate::error::{ExitCode, Failure};
use crate::image::ImageError;
use crate::image::oci::{blob_path, read_layout};
use crate::registry::client::Client;
use crate::registry::referrers::{Attestation, ManifestDescriptor};
use crate::registry::{Reference, RegistryError};
use crate::sign::dsse::Envelope;

#[derive(Debug, Clone, serde::Serialize)]
pub struct PushReport {
    /// `host/repository@sha256:<manifest digest>`.
    pub reference: String,
    pub manifest_digest: BlobDigest,
    pub tag: Option<String>,
    pub layout: PathBuf,
    /// Blobs uploaded, and blobs the registry had already.
    pub uploaded: usize,
    pub skipped: usize,
    /// The attestation files looked for next to the layout, and those found.
    pub attestation_files: Vec<PathBuf>,
    /// Each scheme the attestations were pushed under; empty when none were found.
    pub attestations: Vec<PushedAttestation>,
    /// Envelopes not pushed because they carry no signature (a build without `--key`).
    pub unsigned_skipped: usize,
}

/// The attestations under one scheme.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PushedAttestation {
    /// `.att tag` or `OCI referrer`.
    pub scheme: &'static str,
    /// `host/repository:sha256-<hex>.att`, or `host/repository@sha256:<referrer manifest>`.
    pub reference: String,
    /// The statements' predicate types, in order.
    pub predicate_types: Vec<String>,
    /// How a referrer is listed: `referrers API` (the registry answered `OCI-Subject`), or
    /// `fallback tag sha256-<hex>`; `None` for the `.att` tag.
    pub listed_by: Option<String>,
    /// Whether the registry lacked it: `false` when an earlier push had put it there already.
    pub new: bool,
}

/// The layout directory `image` names: a directory with an `index.json`, else the image of that
/// name in `out_dir`.
pub fn resolve_layout(image: &str, out_dir: &Path) -> Result<PathBuf, ImageError> {
    let direct = PathBuf::from(image);
    if direct.join("index.json").is_file() {
        return Ok(direct);
    }
    let named = out_dir.join(image);
    if !image.contains('/') && named.join("index.json").is_file() {
        return Ok(named);
    }
    Err(ImageError::BadLayout {
        path: direct,
        detail: format!(
            "it has no `index.json`, and `{}` has no image named `{image}`",
            out_dir.display()
        ),
    })
}

pub async fn push(image: &str, reference: &str, out_dir: &Path) -> Result<PushReport, Error> {
    let reference = Reference::parse(reference)?;
    let layout = resolve_layout(image, out_dir)?;
    let contents = read_layout(&layout)?;
    if let Some(pinned) = &reference.digest
        && *pinned != contents.manifest_digest.to_string()
    {
        return Err(RegistryError::InvalidReference {
            reference: reference.to_string(),
            reason: format!(
                "it names digest {pinned}, but the image's manifest is {}",
                contents.manifest_digest
            ),
        }
        .into());
    }
    let (attestation_files, attestations, unsigned_skipped) =
        read_attestations(&layout, &contents.manifest_digest)?;
    let client = Client::new(&reference.registry)?;
    client.will_push(&reference.repository);
    let (mut uploaded, mut skipped) = (0, 0);
    for blob in std::iter::once(&contents.config).chain(&contents.layers) {
        if client.has_blob(&reference.repository, &blob.digest).await? {
            skipped += 1;
            continue;
        }
        let path = blob_path(&layout, &blob.digest);
        client
            .push_blob(&reference.repository, &blob.digest, blob.size, &path)
            .await?;
        tracing::info!("pushed blob {} ({} bytes)", blob.digest, blob.size);
        uploaded += 1;
    }
    let media_type = if contents.manifest_media_type.is_empty() {
        oci_spec::image::MediaType::ImageManifest.to_string()
    } else {
        contents.manifest_media_type.clone()
    };
    let digest = contents.manifest_digest.to_string();
    client
        .put_manifest(
            &reference.repository,
            &digest,
            &media_type,
            &contents.manifest,
        )
        .await?;
    if let Some(tag) = &reference.tag {
        client
            .put_manifest(&reference.repository, tag, &media_type, &contents.manifest)
            .await?;
        tracing::info!("tagged {}:{tag}", reference.name());
    }
    let pushed = if attestations.is_empty() {
        tracing::info!(
            "no signed attestations next to the layout (looked for {}): pushed the image alone",
            attestation_files
                .iter()
                .map(|path| format!("`{}`", path.display()))
                .collect::<Vec<_>>()
                .join(" and ")
        );
        Vec::new()
    } else {
        let subject = ManifestDescriptor {
            media_type,
            digest: contents.manifest_digest,
            size: contents.manifest.len() as u64,
        };
        let published = client
            .push_attestations(&reference.repository, &subject, &attestations)
            .await?;
        let listed_by = match &published.fallback_tag {
            Some(tag) if !published.referrers_api => format!("fallback tag {tag}"),
            _ => "referrers API".to_string(),
        };
        let mut pushed = vec![PushedAttestation {
            scheme: ".att tag",
            reference: format!("{}:{}", reference.name(), published.att_tag),
            predicate_types: attestations
                .iter()
                .map(|a| a.predicate_type.clone())
                .collect(),
            listed_by: None,
            new: published.att_layers_added > 0,
        }];
        for (attestation, digest) in attestations.iter().zip(&published.referrers) {
            pushed.push(PushedAttestation {
                scheme: "OCI referrer",
                reference: format!("{}@{digest}", reference.name()),
                predicate_types: vec![attestation.predicate_type.clone()],
                listed_by: Some(listed_by.clone()),
                new: published.referrers_api || published.fallback_added.contains(digest),
            });
        }
        pushed
    };
    Ok(PushReport {
        reference: format!("{}@{digest}", reference.name()),
        manifest_digest: contents.manifest_digest,
        tag: reference.tag.clone(),
        layout,
        uploaded,
        skipped,
        attestation_files,
        attestations: pushed,
        unsigned_skipped,
    })
}

/// The attestation files of the layout at `layout` (`<dir>.intoto.jsonl` and
/// `<dir>.sbom.intoto.jsonl` beside it), the signed envelopes they hold, and how many were
/// unsigned. Every envelope's statement must name `manifest` as a subject.
fn read_attestations(
    layout: &Path,
    manifest: &BlobDigest,
) -> Result<(Vec<PathBuf>, Vec<Attestation>, usize), PushError> {
    let name = layout
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let files = [
        layout.with_file_name(format!("{name}.intoto.jsonl")),
        layout.with_file_name(format!("{name}{}", crate::ops::sbom::ATTESTATION_SUFFIX)),
    ];
    let (mut attestations, mut unsigned) = (Vec::new(), 0);
    for path in &files {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(PushError::ReadAttestation {
                    path: path.clone(),
                    source,
                });
            }
        };
        for (index, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let malformed = |detail: String| PushError::MalformedAttestation {
                path: path.clone(),
                line: index + 1,
                detail,
            };
            let envelope =
                Envelope::from_json(line).map_err(|error| malformed(error.to_string()))?;
            if envelope.signatures.is_empty() {
                unsigned += 1;
                continue;
            }
            let statement: serde_json::Value = serde_json::from_slice(&envelope.payload)
                .map_err(|error| malformed(format!("the payload is not JSON: {error}")))?;
            let predicate_type = statement
                .get("predicateType")
                .and_then(serde_json::Value::as_str)
                .ok_or_else(|| malformed("the statement has no predicateType".to_string()))?;
            let subjects: Vec<&str> = statement
                .get("subject")
                .and_then(serde_json::Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|subject| {
                    subject
                        .pointer("/digest/sha256")
                        .and_then(serde_json::Value::as_str)
                })
                .collect();
            if !subjects.contains(&manifest.hex().as_str()) {
                return Err(PushError::AttestationSubject {
                    path: path.clone(),
                    line: index + 1,
                    manifest: *manifest,
                    found: subjects.join(", "),
                });
            }
            attestations.push(Attestation {
                predicate_type: predicate_type.to_string(),
                envelope: line.trim().as_bytes().to_vec(),
            });
        }
    }
    Ok((files.to_vec(), attestations, unsigned))
}

/// An attestation next to the layout that cannot be pushed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("cannot read the attestation `{path}`: {source}")]
    ReadAttestation {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "attestation `{path}`, line {line}: expected a DSSE envelope holding an in-toto statement, found: {detail}"
    )]
    MalformedAttestation {
        path: PathBuf,
        line: usize,
        detail: String,
    },

    #[error(
        "attestation `{path}`, line {line} is about sha256 {found}, not this image's manifest {manifest}: it is left from another build\n  hint: build the image again (the same --out) so its attestations match it, or remove the stale file"
    )]
    AttestationSubject {
        path: PathBuf,
        line: usize,
        manifest: BlobDigest,
        found: String,
    },
}

impl Failure for PushError {
    fn exit_code(&self) -> ExitCode {
        ExitCode::BadInput
    }
}
