//! What a build attests: the in-toto statement with its SLSA v1 predicate for one artifact,
//! built from what the build resolved and ran, then signed into a DSSE envelope. The fields are
//! documented in `docs/provenance.md`; this is the only place that fills them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde_json::json;

use crate::atomic;
use crate::digest::{ActionDigest, BlobDigest, TreeDigest};
use crate::error::Error;
use crate::ops::fetch::{Fetched, Origin};
use crate::ops::lock_fetch::LockedDownload;
use crate::provenance::{
    BUILD_TYPE, BuildDefinition, BuildMetadata, Builder, PAYLOAD_TYPE, Provenance,
    ResourceDescriptor, RunDetails, Statement, rfc3339_utc,
};
use crate::sandbox::StepRecord;
use crate::sandbox::record::RECORD_FORMAT;
use crate::sign::dsse::Envelope;
use crate::sign::keys::SigningKey;
use crate::spec::{RelativePath, Source, Spec, Step};

/// The form a tree digest takes: sha256 over sealroom's canonical tree encoding (docs/store.md).
pub const TREE_DIGEST_FORM: &str = "sealroom-tree-v1";

/// What one step of a build did: the record of each step's run (or cache hit) that provenance
/// is written from.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StepReport {
    pub name: String,
    /// Taken from the action cache: no container was started.
    pub cached: bool,
    pub action: ActionDigest,
    pub output: TreeDigest,
    /// The step's log, kept in the store; `None` for a cache hit whose log is not there (an
    /// entry of an older version).
    pub log: Option<BlobDigest>,
    /// The build (invocation id) that ran the step: this one, or for a cache hit the one that
    /// wrote the entry (`None` when the entry does not say).
    pub ran_in: Option<String>,
    pub seconds: f64,
    /// For a step served by the remote cache: which cache, instance and action, and who signed
    /// the entry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote: Option<crate::remote::RemoteFacts>,
    /// What ran (or, for a cache hit, what would have run); its digest is `action`.
    #[serde(skip)]
    pub record: StepRecord,
}

/// `<artifact>.intoto.jsonl`, next to the artifact.
pub fn provenance_path(artifact: &Path) -> PathBuf {
    let mut name = artifact.as_os_str().to_owned();
    name.push(".intoto.jsonl");
    PathBuf::from(name)
}

/// What one build resolved and ran, shared by the statements of all its artifacts.
pub struct BuildContext<'a> {
    pub spec: &'a Spec,
    pub build_id: &'a str,
    pub builder_id: &'a str,
    pub started_on: SystemTime,
    pub finished_on: SystemTime,
    pub sources: &'a [(&'a Source, TreeDigest)],
    pub fetches: &'a [Fetched],
    pub steps: &'a [StepReport],
}

impl BuildContext<'_> {
    /// The statement for `artifact` of `step`, whose bytes have `digest`; `sboms` are the SBOM
    /// documents written next to it, named in `byproducts`.
    pub fn statement(
        &self,
        step: &Step,
        artifact: &RelativePath,
        digest: &BlobDigest,
        sboms: &[ResourceDescriptor],
    ) -> Statement {
        let spec = self.spec;
        let spec_file = spec
            .path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let external_parameters = json!({
            "spec": {
                "path": spec_file,
                "digest": { "sha256": spec.digest.hex() },
            },
            "name": spec.name.as_str(),
            "step": step.name.as_str(),
            "artifact": artifact.as_str(),
            "sources": spec.sources.iter().map(|source| json!({
                "name": source.name.as_str(),
                "path": source.declared_path.as_str(),
                "exclude": source.exclude.patterns(),
            })).collect::<Vec<_>>(),
        });
        // Each step's record, exactly as its container got it and its action key hashed it.
        let steps: BTreeMap<&str, serde_json::Value> = self
            .steps
            .iter()
            .map(|report| {
                // A cache hit is said to be one, with the build that did run the step; no
                // time is claimed for it.
                let mut entry = json!({
                    "actionKey": report.action.to_string(),
                    "cached": report.cached,
                    "ranIn": report.ran_in,
                    "record": report.record.to_json(),
                });
                // Served by the remote cache: from where, under which action, signed by whom.
                if let Some(remote) = &report.remote {
                    entry["remoteCache"] = serde_json::to_value(remote).expect("facts serialize");
                }
                (report.name.as_str(), entry)
            })
            .collect();
        let internal_parameters = json!({
            "sealroomVersion": env!("CARGO_PKG_VERSION"),
            "sourceDateEpoch": spec.source_date_epoch,
            "stepRecordFormat": RECORD_FORMAT,
            "steps": steps,
            "treeDigestForm": TREE_DIGEST_FORM,
        });

        let image = &spec.sandbox.image;
        let mut resolved_dependencies = vec![ResourceDescriptor::with_sha256(
            "image",
            Some(format!("docker-image:{image}")),
            image.digest.hex(),
        )];
        // A registry image: the image id above is what steps ran in; this is what was pinned
        // and pulled, and from where.
        if let Some(origin) = &spec.sandbox.origin {
            let mut pulled = ResourceDescriptor::with_sha256(
                "image-manifest",
                Some(format!(
                    "oci://{}/{}@{}",
                    origin.registry, origin.repository, origin.pinned
                )),
                origin.pinned.hex(),
            )
            .annotate("reference", origin.reference.as_str())
            .annotate("imageId", image.digest.to_string().as_str());
            if origin.manifest != origin.pinned {
                pulled = pulled.annotate("platformManifest", origin.manifest.to_string().as_str());
            }
            resolved_dependencies.push(pulled);
        }
        for (source, tree) in self.sources {
            resolved_dependencies.push(
                ResourceDescriptor::with_sha256(
                    format!("source:{}", source.name),
                    Some(format!("file:{}", source.declared_path)),
                    tree.hex(),
                )
                .annotate("path", source.declared_path.as_str())
                .annotate("digestForm", TREE_DIGEST_FORM),
            );
        }
        for fetched in self.fetches {
            resolved_dependencies.extend(fetch_dependencies(fetched));
        }
        // Logs only where the store keeps them, so that each digest can be checked.
        let byproducts: Vec<ResourceDescriptor> = self
            .steps
            .iter()
            .flat_map(|report| {
                let log = report.log.map(|log| {
                    ResourceDescriptor::with_sha256(format!("log:{}", report.name), None, log.hex())
                });
                let output = ResourceDescriptor::with_sha256(
                    format!("output:{}", report.name),
                    None,
                    report.output.hex(),
                )
                .annotate("digestForm", TREE_DIGEST_FORM);
                log.into_iter().chain([output])
            })
            .chain(sboms.iter().cloned())
            .collect();

        Statement::new(
            vec![ResourceDescriptor::subject(artifact.as_str(), digest.hex())],
            Provenance {
                build_definition: BuildDefinition {
                    build_type: BUILD_TYPE.to_string(),
                    external_parameters: object(external_parameters),
                    internal_parameters: Some(object(internal_parameters)),
                    resolved_dependencies,
                },
                run_details: RunDetails {
                    builder: Builder::sealroom(self.builder_id),
                    metadata: Some(BuildMetadata {
                        invocation_id: Some(self.build_id.to_string()),
                        started_on: Some(rfc3339_utc(self.started_on)),
                        finished_on: Some(rfc3339_utc(self.finished_on)),
                    }),
                    byproducts,
                },
            },
        )
    }

    /// The statement for `artifact`, in a DSSE envelope: signed with `signer`, else unsigned.
    pub fn envelope(
        &self,
        step: &Step,
        artifact: &RelativePath,
        digest: &BlobDigest,
        sboms: &[ResourceDescriptor],
        signer: Option<&SigningKey>,
    ) -> Result<Envelope, Error> {
        let payload = self.statement(step, artifact, digest, sboms).to_json();
        Ok(match signer {
            Some(key) => Envelope::sign(PAYLOAD_TYPE, &payload, &[key]),
            None => Envelope::unsigned(PAYLOAD_TYPE, &payload),
        })
    }
}

/// How a fetch is recorded: a download by its final URL and the sha256 of its bytes (the URL
/// written in the spec and each redirect as annotations); a fixed-output step by its tree; a
/// lock fetch by its tree (with the lock file's path and sha256), and then every file it
/// fetched, named by its purl, at its original URL, with its sha256 and the lock's own digest.
fn fetch_dependencies(fetched: &Fetched) -> Vec<ResourceDescriptor> {
    let name = format!("fetch:{}", fetched.name);
    match &fetched.origin {
        Origin::Download {
            url,
            final_url,
            redirects,
            sha256,
            unpack,
            strip_components,
        } => vec![
            ResourceDescriptor::with_sha256(name, Some(final_url.clone()), sha256.hex())
                .annotate("url", url.as_str())
                .annotate("redirects", json!(redirects))
                .annotate("unpack", *unpack)
                .annotate("stripComponents", *strip_components as u64)
                .annotate("treeDigest", fetched.tree.to_string()),
        ],
        Origin::Run {
            run,
            image,
            network,
        } => vec![
            ResourceDescriptor::with_sha256(name, None, fetched.tree.hex())
                .annotate("digestForm", TREE_DIGEST_FORM)
                .annotate("run", json!(run))
                .annotate("image", image.as_str())
                .annotate("network", *network),
        ],
        Origin::Lock {
            lock,
            lock_sha256,
            format,
            index,
            files,
        } => {
            let mut entry = ResourceDescriptor::with_sha256(name, None, fetched.tree.hex())
                .annotate("digestForm", TREE_DIGEST_FORM)
                .annotate("lock", lock.as_str())
                .annotate("lockSha256", lock_sha256.hex())
                .annotate("format", format.as_str());
            if let Some(index) = index {
                entry = entry.annotate("index", index.as_str());
            }
            std::iter::once(entry)
                .chain(
                    files
                        .iter()
                        .map(|file| locked_file_dependency(&fetched.name, file)),
                )
                .collect()
        }
    }
}

/// One file of a lock fetch: its purl, its original URL, its sha256 and (when the lock uses
/// another algorithm) the lock's own digest; the mirror it came from as an annotation.
fn locked_file_dependency(fetch: &str, file: &LockedDownload) -> ResourceDescriptor {
    let mut dependency = ResourceDescriptor::with_sha256(
        file.purl.clone(),
        Some(file.url.clone()),
        file.sha256.hex(),
    );
    if file.lock_digest_algorithm != "sha256" {
        dependency.digest.insert(
            file.lock_digest_algorithm.clone(),
            file.lock_digest_hex.clone(),
        );
    }
    dependency
        .annotate("fetch", fetch)
        .annotate("fileName", file.file_name.as_str())
        .annotate("lockDigest", file.lock_digest.as_str())
        .annotate("lockLine", file.line as u64)
        .annotate("downloadedFrom", file.downloaded_from.as_str())
}

impl BuildContext<'_> {
    /// The statement for an `[[image]]`, in a DSSE envelope: the subject is the image (its
    /// name, and the sha256 of its manifest, which is the OCI manifest digest); the base image
    /// is added to `resolvedDependencies`. Everything else is what an artifact's statement
    /// says about the build, so it is made by [`BuildContext::statement`] and adjusted.
    pub fn image_envelope(
        &self,
        image: &crate::spec::image::Image,
        manifest: &BlobDigest,
        base: ResourceDescriptor,
        sboms: &[ResourceDescriptor],
        signer: Option<&SigningKey>,
    ) -> Result<Envelope, Error> {
        let placeholder = Step {
            name: image.name.clone(),
            inputs: Vec::new(),
            run: Vec::new(),
            env: BTreeMap::new(),
            artifacts: Vec::new(),
            limits: self.spec.sandbox.limits,
        };
        let mut statement = self.statement(&placeholder, &RelativePath::root(), manifest, sboms);
        statement.subject = vec![ResourceDescriptor::subject(
            image.name.as_str(),
            manifest.hex(),
        )];
        let parameters = &mut statement.predicate.build_definition.external_parameters;
        parameters.remove("step");
        parameters.remove("artifact");
        parameters.insert("image".to_string(), json!(image.name.as_str()));
        statement
            .predicate
            .build_definition
            .resolved_dependencies
            .push(base);
        let payload = statement.to_json();
        Ok(match signer {
            Some(key) => Envelope::sign(PAYLOAD_TYPE, &payload, &[key]),
            None => Envelope::unsigned(PAYLOAD_TYPE, &payload),
        })
    }
}

/// The map inside a `json!({...})` object.
fn object(value: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    match value {
        serde_json::Value::Object(map) => map,
        other => unreachable!("built as an object: {other}"),
    }
}

/// Writes `text` (an envelope's JSON line, a bundle) to `path`: a temp file in the same
/// directory, then a rename, so a reader never sees half of it.
pub fn write_line_atomically(path: &Path, text: &str) -> Result<(), Error> {
    // Provenance is public: readable like the artifact next to it, not 0600 like a temp file.
    atomic::write(path, text.as_bytes(), atomic::Mode::Fixed(0o644))
        .map_err(|error| Error::io(error.action, error.path, error.source))
}
