//! `sealroom reproduce`: rebuild an artifact from its provenance, without trusting the builder
//! that made it, and compare digests.
//!
//! In order: the envelope's signature (when a key is given); the spec and every source tree in
//! `--source DIR` against the digests the provenance records; the base image in the engine; then
//! a rebuild with no action cache, in fresh containers and a fresh temporary store (so every
//! fetch is downloaded again and checked against its pin); last, each subject's recorded digest
//! against the rebuilt artifact's. An input that cannot be had or does not match is exit 1; a
//! rebuilt artifact that differs is exit 4.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::digest::{BlobDigest, TreeDigest};
use crate::error::{Error, ExitCode, Failure};
use crate::ops::build::{self, BuildOptions};
use crate::ops::fetch::NetworkChoices;
use crate::ops::verify::{VerifyError, parse_statement, read_envelope};
use crate::provenance::{PAYLOAD_TYPE, Statement};
use crate::sandbox::docker::LazyDocker;
use crate::sign::keys::VerifyingKey;
use crate::spec;

/// What a reproduction found, subject by subject.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReproduceReport {
    pub provenance: PathBuf,
    pub spec: PathBuf,
    pub subjects: Vec<SubjectCheck>,
    /// Every subject's rebuilt digest equals the recorded one.
    pub reproduced: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct SubjectCheck {
    pub name: String,
    pub recorded: String,
    /// `None` when the rebuild did not produce this artifact at all.
    pub rebuilt: Option<String>,
    pub matches: bool,
}

/// Rebuilds the subjects of the provenance at `provenance` from the spec and sources in
/// `source_dir`. `key`, when given, must have signed the envelope.
pub async fn reproduce(
    provenance: &Path,
    source_dir: &Path,
    key: Option<&Path>,
    network: &NetworkChoices,
    interrupt: tokio_util::sync::CancellationToken,
) -> Result<ReproduceReport, Error> {
    let key = key.map(VerifyingKey::from_pem_file).transpose()?;
    let bytes = std::fs::read(provenance)
        .map_err(|e| Error::io("cannot read provenance", provenance, e))?;
    let envelope = read_envelope(provenance, &bytes)?;
    if envelope.payload_type != PAYLOAD_TYPE {
        return Err(VerifyError::PayloadType {
            expected: PAYLOAD_TYPE,
            found: envelope.payload_type.clone(),
        }
        .into());
    }
    if let Some(key) = key {
        envelope.verify(&[key], 1).map_err(VerifyError::Signature)?;
        tracing::info!("ok  signature");
    }
    let statement = parse_statement(&envelope.payload)?;
    let recorded = Recorded::from_statement(&statement)?;

    // The spec the provenance names, with the digest it records.
    let spec_path = source_dir.join(&recorded.spec_path);
    let (spec_digest, _) =
        crate::digest::hash_file::<crate::digest::Blob>(&spec_path).map_err(|e| {
            Error::io(
                "cannot read the spec named by the provenance",
                &spec_path,
                e,
            )
        })?;
    if spec_digest != recorded.spec_digest {
        return Err(ReproduceError::SpecDiffers {
            path: spec_path,
            recorded: recorded.spec_digest,
            found: spec_digest,
        }
        .into());
    }
    let mut spec = spec::load(&spec_path)?;
    tracing::info!("ok  spec {} {}", spec_path.display(), spec_digest);

    let (scratch, store) = crate::ops::build::scratch_store("sealroom-reproduce-")?;
    for source in &spec.sources {
        let exclude = &source.exclude;
        let found = store.add_tree(&source.path, &|relative| exclude.is_excluded(relative))?;
        let expected = recorded
            .sources
            .iter()
            .find(|(name, _)| name == source.name.as_str());
        match expected {
            Some((_, expected)) if *expected == found => {
                tracing::info!("ok  source {} {found}", source.name);
            }
            Some((_, expected)) => {
                return Err(ReproduceError::SourceDiffers {
                    source_name: source.name.to_string(),
                    path: source.path.clone(),
                    recorded: *expected,
                    found,
                }
                .into());
            }
            None => {
                return Err(ReproduceError::Unrecorded {
                    what: format!("source `{}`", source.name),
                }
                .into());
            }
        }
    }
    // A registry image is pulled by its manifest digest; the provenance records its image id.
    let sandbox = LazyDocker::new();
    crate::ops::sandbox_image::resolve(&sandbox, &store, &mut spec, false).await?;
    if spec.sandbox.image.digest.hex() != recorded.image_hex {
        return Err(ReproduceError::ImageDiffers {
            recorded: recorded.image_hex,
            found: spec.sandbox.image.to_string(),
        }
        .into());
    }
    sandbox.prepare(&spec.sandbox.image).await?;
    let options = BuildOptions {
        out_dir: scratch.path().join("out"),
        builder_id: statement.predicate.run_details.builder.id.clone(),
        no_cache: true,
        interrupt,
        allow_host_network: network.allow_host_network,
        mirrors: network.mirrors.clone(),
        // The comparison is of outputs: the SBOMs would only be written to be thrown away.
        sbom: crate::sbom::SbomChoice::None,
        ..BuildOptions::default()
    };
    tracing::info!(
        "rebuilding without the cache in {}",
        scratch.path().display()
    );
    let report = build::run(&sandbox, &store, &spec, &options, None).await?;

    let subjects: Vec<SubjectCheck> = statement
        .subject_sha256()
        .map(|(name, hex)| {
            let rebuilt = report
                .artifacts
                .iter()
                .find(|artifact| artifact.name == name)
                .map(|artifact| artifact.digest.hex());
            SubjectCheck {
                name: name.to_string(),
                recorded: hex.to_string(),
                matches: rebuilt.as_deref() == Some(hex),
                rebuilt,
            }
        })
        .collect();
    let reproduced = !subjects.is_empty() && subjects.iter().all(|subject| subject.matches);
    Ok(ReproduceReport {
        provenance: provenance.to_path_buf(),
        spec: spec_path,
        subjects,
        reproduced,
    })
}

/// What the provenance records about its inputs, read from the statement.
struct Recorded {
    spec_path: PathBuf,
    spec_digest: BlobDigest,
    image_hex: String,
    sources: Vec<(String, TreeDigest)>,
}

impl Recorded {
    fn from_statement(statement: &Statement) -> Result<Self, ReproduceError> {
        let definition = &statement.predicate.build_definition;
        let missing = |what: &str| ReproduceError::Unrecorded {
            what: what.to_string(),
        };
        let spec = definition
            .external_parameters
            .get("spec")
            .ok_or_else(|| missing("externalParameters.spec"))?;
        let spec_path = spec
            .get("path")
            .and_then(Value::as_str)
            .filter(|path| !path.is_empty() && !path.contains('/') && *path != "..")
            .ok_or_else(|| missing("externalParameters.spec.path (a file name)"))?;
        let spec_digest = spec
            .pointer("/digest/sha256")
            .and_then(Value::as_str)
            .and_then(|hex| BlobDigest::from_hex(hex).ok())
            .ok_or_else(|| missing("externalParameters.spec.digest.sha256"))?;
        let sha256_of = |name: &str| {
            definition
                .resolved_dependencies
                .iter()
                .find(|dependency| dependency.name.as_deref() == Some(name))
                .and_then(|dependency| dependency.digest.get("sha256").cloned())
        };
        let image_hex =
            sha256_of("image").ok_or_else(|| missing("the base image in resolvedDependencies"))?;
        let sources = definition
            .resolved_dependencies
            .iter()
            .filter_map(|dependency| {
                let name = dependency.name.as_deref()?.strip_prefix("source:")?;
                let digest = TreeDigest::from_hex(dependency.digest.get("sha256")?).ok()?;
                Some((name.to_string(), digest))
            })
            .collect();
        Ok(Recorded {
            spec_path: PathBuf::from(spec_path),
            spec_digest,
            image_hex,
            sources,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReproduceError {
    #[error(
        "the spec `{path}` has {found}, but the provenance records {recorded}\n  hint: check out the revision the artifact was built from"
    )]
    SpecDiffers {
        path: PathBuf,
        recorded: BlobDigest,
        found: BlobDigest,
    },
    #[error(
        "source `{source_name}` (`{path}`) has tree digest {found}, but the provenance records {recorded}\n  hint: the source differs from what was built; check out the revision the artifact was built from"
    )]
    SourceDiffers {
        source_name: String,
        path: PathBuf,
        recorded: TreeDigest,
        found: TreeDigest,
    },
    #[error("the spec's base image is `{found}`, but the provenance records sha256:{recorded}")]
    ImageDiffers { recorded: String, found: String },
    #[error("the provenance does not record {what}, so it cannot be reproduced from")]
    Unrecorded { what: String },
    #[error("did not reproduce: {} differ from the provenance", names.join(", "))]
    Differs { names: Vec<String> },
}

impl Failure for ReproduceError {
    fn exit_code(&self) -> ExitCode {
        match self {
            ReproduceError::SpecDiffers { .. }
            | ReproduceError::SourceDiffers { .. }
            | ReproduceError::ImageDiffers { .. } => ExitCode::BadInput,
            ReproduceError::Unrecorded { .. } | ReproduceError::Differs { .. } => {
                ExitCode::VerificationFailed
            }
        }
    }
}
