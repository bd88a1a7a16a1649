//! Attestations next to an image in a registry, in the two places verifiers look today:
//!
//! - **cosign's tag scheme**: the tag `sha256-<hex>.att` on the image's repository holds an image
//!   manifest whose layers are DSSE envelopes, one each (media type
//!   `application/vnd.dsse.envelope.v1+json`, annotations `predicateType` and cosign's empty
//!   `dev.cosignproject.cosign/signature`), with the config cosign writes for it (an OCI image
//!   config whose `rootfs.diff_ids` are the layers' digests). Layers other writers put there are
//!   kept; ours are added once, after them.
//! - **OCI 1.1 referrers**: one manifest per envelope, `artifactType`
//!   `application/vnd.dsse.envelope.v1+json`, the empty config, and `subject` = the image
//!   manifest's descriptor, put by its digest. A registry that indexes it answers with an
//!   `OCI-Subject` header; one that does not (Debian's docker-registry 2.8) gets the referrers
//!   fallback tag `sha256-<hex>` updated: an image index listing each referrer with its
//!   `artifactType` and annotations, existing entries kept, ours added once.
//!
//! Every document written here is canonical JSON (sorted keys, no whitespace), so the same
//! attestations give the same digests. Reading back finds both schemes and downloads each DSSE
//! layer bounded by its descriptor's size and [`MAX_ENVELOPE_BYTES`], verified against its
//! digest. What an envelope says (signature, statement) is not looked at here: that is
//! `ops::verify`'s.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Value, json};

use super::RegistryError;
use super::client::{Client, MAX_MANIFEST_BYTES};
use crate::digest::BlobDigest;
use crate::image::oci::canonical_json;

/// A DSSE envelope as a layer (cosign's `DssePayloadType`) and as a referrer's artifact type.
pub const DSSE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// The config media type cosign gives its signature and attestation images.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// The OCI empty descriptor's media type, and its content.
pub const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
pub const EMPTY_JSON: &[u8] = b"{}";
/// The annotation naming an envelope's statement type, as cosign writes it on `.att` layers.
pub const PREDICATE_TYPE_ANNOTATION: &str = "predicateType";
/// cosign's signature annotation: empty on attestations, whose signature is in the envelope.
pub const COSIGN_SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The header a registry that indexes referrers answers a manifest with `subject` with.
pub const OCI_SUBJECT_HEADER: &str = "OCI-Subject";
/// The largest envelope downloaded. Provenance is a few KiB and an SBOM of a large image a few
/// MiB; anything larger is refused before it is read, so a registry cannot make a verifier hold
/// an unbounded layer in memory.
pub const MAX_ENVELOPE_BYTES: u64 = 32 * 1024 * 1024;
/// The most referrers of one image read (more are reported, not fetched).
pub const MAX_REFERRERS: usize = 256;
/// `created` of cosign's attestation config, and of each of its history entries: Go's zero time.
const COSIGN_CREATED: &str = "0001-01-01T00:00:00Z";

/// One signed envelope to publish: its bytes (one JSON document) and its statement's type.
#[derive(Debug, Clone)]
pub struct Attestation {
    pub predicate_type: String,
    pub envelope: Vec<u8>,
}

/// The cosign tag of `image`'s attestations: `sha256-<hex>.att`.
pub fn att_tag(image: &BlobDigest) -> String {
    format!("sha256-{}.att", image.hex())
}

/// The referrers fallback tag of `image`: `sha256-<hex>`.
pub fn fallback_tag(image: &BlobDigest) -> String {
    format!("sha256-{}", image.hex())
}

/// A manifest's descriptor: what `subject` and an index entry name.
#[derive(Debug, Clone)]
pub struct ManifestDescriptor {
    pub media_type: String,
    pub digest: BlobDigest,
    pub size: u64,
}

impl ManifestDescriptor {
    fn to_json(&self) -> Value {
        json!({ "mediaType": self.media_type, "digest": self.digest.to_string(), "size": self.size })
    }
}

/// The descriptor of `attestation`'s envelope as a layer, with `annotations` beside the
/// predicate type.
fn envelope_layer(attestation: &Attestation, cosign: bool) -> Value {
    let mut annotations = BTreeMap::from([(
        PREDICATE_TYPE_ANNOTATION.to_string(),
        attestation.predicate_type.clone(),
    )]);
    if cosign {
        annotations.insert(COSIGN_SIGNATURE_ANNOTATION.to_string(), String::new());
    }
    json!({
        "mediaType": DSSE_MEDIA_TYPE,
        "digest": BlobDigest::of(&attestation.envelope).to_string(),
        "size": attestation.envelope.len(),
        "annotations": annotations,
    })
}

fn digest_of(descriptor: &Value) -> Option<&str> {
    descriptor.get("digest").and_then(Value::as_str)
}

/// The `.att` manifest and its config for `layers` (descriptors, in order), as cosign writes
/// them: an OCI image manifest whose config lists each layer's digest as its diff_id (cosign's
/// layers are not compressed) and one history entry per layer.
pub fn att_manifest(layers: &[Value]) -> (Vec<u8>, Vec<u8>) {
    let diff_ids: Vec<&str> = layers.iter().filter_map(digest_of).collect();
    let history: Vec<Value> = layers
        .iter()
        .map(|_| json!({ "created": COSIGN_CREATED }))
        .collect();
    let config = canonical_json(&json!({
        "architecture": "",
        "config": {},
        "created": COSIGN_CREATED,
        "history": history,
        "os": "",
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    }));
    let manifest = canonical_json(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": OCI_CONFIG,
            "digest": BlobDigest::of(&config).to_string(),
            "size": config.len(),
        },
        "layers": layers,
    }));
    (manifest, config)
}

/// The OCI 1.1 referrer of `subject` holding `attestation`: artifact type DSSE, the empty
/// config, the envelope as its one layer; the predicate type is also a manifest annotation,
/// so that the referrers list (which copies annotations) tells envelopes apart unread.
pub fn referrer_manifest(subject: &ManifestDescriptor, attestation: &Attestation) -> Vec<u8> {
    canonical_json(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": DSSE_MEDIA_TYPE,
        "config": {
            "mediaType": EMPTY_MEDIA_TYPE,
            "digest": BlobDigest::of(EMPTY_JSON).to_string(),
            "size": EMPTY_JSON.len(),
        },
        "layers": [envelope_layer(attestation, false)],
        "subject": subject.to_json(),
        "annotations": { PREDICATE_TYPE_ANNOTATION: attestation.predicate_type },
    }))
}

/// The fallback index `existing` (its `manifests`, kept as they are) with each of `entries`
/// added unless an entry of that digest is there; `None` when nothing was added.
pub fn merged_index(existing: &[Value], entries: &[Value]) -> Option<Vec<u8>> {
    let mut manifests = existing.to_vec();
    for entry in entries {
        if !manifests.iter().any(|m| digest_of(m) == digest_of(entry)) {
            manifests.push(entry.clone());
        }
    }
    (manifests.len() > existing.len()).then(|| {
        canonical_json(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": manifests,
        }))
    })
}

/// What [`Client::push_attestations`] published, one entry per scheme.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PublishedAttestations {
    /// `sha256-<hex>.att`, and how many of our layers were new there.
    pub att_tag: String,
    pub att_layers_added: usize,
    /// The digest of each referrer manifest, in the order of the attestations.
    pub referrers: Vec<BlobDigest>,
    /// Whether the registry indexed the referrers itself (it answered with `OCI-Subject`).
    pub referrers_api: bool,
    /// The fallback tag, when it was written or already listed every referrer (no
    /// `OCI-Subject`), and the referrers that were new there.
    pub fallback_tag: Option<String>,
    pub fallback_added: Vec<BlobDigest>,
}

/// Where an attestation was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Scheme {
    /// cosign's `sha256-<hex>.att` tag.
    #[serde(rename = ".att tag")]
    AttTag,
    /// An OCI 1.1 referrer listed by `GET /v2/<repo>/referrers/<digest>`.
    #[serde(rename = "OCI referrer (referrers API)")]
    ReferrersApi,
    /// An OCI 1.1 referrer listed by the fallback tag `sha256-<hex>`.
    #[serde(rename = "OCI referrer (fallback tag)")]
    FallbackTag,
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scheme::AttTag => ".att tag",
            Scheme::ReferrersApi => "OCI referrer (referrers API)",
            Scheme::FallbackTag => "OCI referrer (fallback tag)",
        })
    }
}

/// One DSSE layer found: where, and its bytes (verified against the layer's digest), or why
/// they were refused.
#[derive(Debug)]
pub struct FoundEnvelope {
    pub scheme: Scheme,
    /// The manifest holding the layer: the `.att` tag, or the referrer's digest.
    pub manifest: String,
    pub layer: String,
    /// The layer's `predicateType` annotation (unsigned: a hint only).
    pub annotated_predicate_type: Option<String>,
    pub content: Result<Vec<u8>, String>,
}

/// A manifest found by a scheme but not accepted as an attestation of the image, and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NotAccepted {
    pub scheme: Scheme,
    pub manifest: String,
    pub reason: String,
}

/// Everything [`Client::find_attestations`] found.
#[derive(Debug, Default)]
pub struct Discovery {
    /// The schemes that held at least one DSSE layer, in the order looked at.
    pub schemes: Vec<Scheme>,
    pub envelopes: Vec<FoundEnvelope>,
    pub not_accepted: Vec<NotAccepted>,
}

impl Client {
    /// Publishes `attestations` of the image `subject` in `repository` under both schemes.
    pub async fn push_attestations(
        &self,
        repository: &str,
        subject: &ManifestDescriptor,
        attestations: &[Attestation],
    ) -> Result<PublishedAttestations, RegistryError> {
        for attestation in attestations {
            self.put_blob_bytes(repository, &attestation.envelope)
                .await?;
        }

        // cosign's tag: the layers there, then ours not among them.
        let tag = att_tag(&subject.digest);
        let existing = match self.get_manifest_if_any(repository, &tag).await? {
            Some(bytes) => json_layers(&bytes, "layers"),
            None => Vec::new(),
        };
        let mut layers = existing.clone();
        for attestation in attestations {
            let layer = envelope_layer(attestation, true);
            if !layers.iter().any(|l| digest_of(l) == digest_of(&layer)) {
                layers.push(layer);
            }
        }
        let att_layers_added = layers.len() - existing.len();
        if att_layers_added > 0 {
            let (manifest, config) = att_manifest(&layers);
            self.put_blob_bytes(repository, &config).await?;
            self.put_manifest(repository, &tag, OCI_MANIFEST, &manifest)
                .await?;
        }

        // One referrer per envelope, put by digest.
        self.put_blob_bytes(repository, EMPTY_JSON).await?;
        let mut referrers = Vec::new();
        let mut entries = Vec::new();
        let mut indexed = true;
        for attestation in attestations {
            let manifest = referrer_manifest(subject, attestation);
            let digest = BlobDigest::of(&manifest);
            let headers = self
                .put_manifest(repository, &digest.to_string(), OCI_MANIFEST, &manifest)
                .await?;
            indexed &= headers.contains_key(OCI_SUBJECT_HEADER);
            entries.push(json!({
                "mediaType": OCI_MANIFEST,
                "digest": digest.to_string(),
                "size": manifest.len(),
                "artifactType": DSSE_MEDIA_TYPE,
                "annotations": { PREDICATE_TYPE_ANNOTATION: attestation.predicate_type },
            }));
            referrers.push(digest);
        }
        let (mut fallback, mut fallback_added) = (None, Vec::new());
        if !indexed && !entries.is_empty() {
            let tag = fallback_tag(&subject.digest);
            let existing = match self.get_manifest_if_any(repository, &tag).await? {
                Some(bytes) => json_layers(&bytes, "manifests"),
                None => Vec::new(),
            };
            if let Some(index) = merged_index(&existing, &entries) {
                fallback_added = referrers
                    .iter()
                    .filter(|digest| {
                        let digest = digest.to_string();
                        !existing
                            .iter()
                            .any(|m| digest_of(m) == Some(digest.as_str()))
                    })
                    .copied()
                    .collect();
                self.put_manifest(repository, &tag, OCI_INDEX, &index)
                    .await?;
            }
            fallback = Some(tag);
        }
        Ok(PublishedAttestations {
            att_tag: tag,
            att_layers_added,
            referrers,
            referrers_api: indexed && !entries.is_empty(),
            fallback_tag: fallback,
            fallback_added,
        })
    }

    /// Finds `image`'s attestations: the `.att` tag's DSSE layers, then the referrers (the
    /// referrers API, else the fallback tag) whose `subject` is `image` and whose artifact
    /// type is DSSE. A referrer naming another subject is not accepted (a registry writer
    /// could list anything under the fallback tag). Layers too large or not matching their
    /// digest are kept with the reason; an unreachable registry is the error.
    pub async fn find_attestations(
        &self,
        repository: &str,
        image: &BlobDigest,
    ) -> Result<Discovery, RegistryError> {
        let mut found = Discovery::default();
        let tag = att_tag(image);
        if let Some(bytes) = self.get_manifest_if_any(repository, &tag).await? {
            self.collect_layers(repository, Scheme::AttTag, &tag, &bytes, &mut found)
                .await?;
        }

        let (scheme, index) = match self.referrers_api(repository, image).await? {
            Some(index) => (Scheme::ReferrersApi, Some(index)),
            None => (
                Scheme::FallbackTag,
                self.get_manifest_if_any(repository, &fallback_tag(image))
                    .await?,
            ),
        };
        let entries = index
            .map(|bytes| json_layers(&bytes, "manifests"))
            .unwrap_or_default();
        for (number, entry) in entries.iter().enumerate() {
            let Some(digest) = digest_of(entry).map(str::to_string) else {
                continue;
            };
            let refuse = |reason: String| NotAccepted {
                scheme,
                manifest: digest.clone(),
                reason,
            };
            if number >= MAX_REFERRERS {
                found.not_accepted.push(refuse(format!(
                    "more than {MAX_REFERRERS} referrers are listed; the rest were not read"
                )));
                break;
            }
            if digest.parse::<BlobDigest>().is_err() {
                found
                    .not_accepted
                    .push(refuse("its digest is not `sha256:<hex>`".to_string()));
                continue;
            }
            let bytes = match self.get_manifest(repository, &digest).await {
                Ok((bytes, _)) => bytes,
                Err(error) if is_about_content(&error) => {
                    found.not_accepted.push(refuse(error.to_string()));
                    continue;
                }
                Err(error) => return Err(error),
            };
            let manifest: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let subject = manifest.pointer("/subject/digest").and_then(Value::as_str);
            if subject != Some(image.to_string().as_str()) {
                found.not_accepted.push(refuse(format!(
                    "its subject is {}, not the image {image}",
                    subject.unwrap_or("missing")
                )));
                continue;
            }
            let artifact_type = manifest
                .get("artifactType")
                .or_else(|| manifest.pointer("/config/mediaType"))
                .and_then(Value::as_str)
                .unwrap_or("none");
            if artifact_type != DSSE_MEDIA_TYPE {
                found.not_accepted.push(refuse(format!(
                    "its artifact type is `{artifact_type}`, not `{DSSE_MEDIA_TYPE}`"
                )));
                continue;
            }
            self.collect_layers(repository, scheme, &digest, &bytes, &mut found)
                .await?;
        }
        Ok(found)
    }

    /// Downloads the DSSE layers of `manifest` (found by `scheme` at `location`) into `found`.
    async fn collect_layers(
        &self,
        repository: &str,
        scheme: Scheme,
        location: &str,
        manifest: &[u8],
        found: &mut Discovery,
    ) -> Result<(), RegistryError> {
        let mut any = false;
        for layer in json_layers(manifest, "layers") {
            if layer.get("mediaType").and_then(Value::as_str) != Some(DSSE_MEDIA_TYPE) {
                continue;
            }
            any = true;
            let digest = digest_of(&layer).unwrap_or("none").to_string();
            let size = layer.get("size").and_then(Value::as_u64);
            let content = match (digest.parse::<BlobDigest>(), size) {
                (Err(_), _) => Err(format!("layer digest `{digest}` is not `sha256:<hex>`")),
                (_, None) => Err("the layer descriptor has no size".to_string()),
                (Ok(parsed), Some(size)) => {
                    match self.envelope_blob(repository, &parsed, size).await {
                        Ok(bytes) => Ok(bytes),
                        Err(error) if is_about_content(&error) => Err(error.to_string()),
                        Err(error) => return Err(error),
                    }
                }
            };
            found.envelopes.push(FoundEnvelope {
                scheme,
                manifest: location.to_string(),
                layer: digest,
                annotated_predicate_type: layer
                    .pointer("/annotations/predicateType")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                content,
            });
        }
        if any && !found.schemes.contains(&scheme) {
            found.schemes.push(scheme);
        }
        Ok(())
    }

    /// Blob `digest`, which its descriptor says is `size` bytes: refused unread when that is
    /// over [`MAX_ENVELOPE_BYTES`], refused as soon as more than `size` bytes arrive, and
    /// checked against `digest`.
    async fn envelope_blob(
        &self,
        repository: &str,
        digest: &BlobDigest,
        size: u64,
    ) -> Result<Vec<u8>, RegistryError> {
        let path = format!("v2/{repository}/blobs/{digest}");
        let what = format!("attestation layer {digest}");
        if size > MAX_ENVELOPE_BYTES {
            return Err(RegistryError::TooLarge {
                what,
                url: format!("{}/{path}", self.registry()),
                limit: MAX_ENVELOPE_BYTES,
                detail: format!("its descriptor says {size} bytes; it was not downloaded"),
            });
        }
        let (bytes, url, _) = self
            .get_bounded(&what, repository, &path, None, size)
            .await?;
        let found = BlobDigest::of(&bytes);
        if found != *digest {
            return Err(RegistryError::DigestMismatch {
                what,
                url: url.to_string(),
                expected: digest.to_string(),
                found: found.to_string(),
            });
        }
        Ok(bytes)
    }

    /// `GET /v2/<repo>/referrers/<digest>`: the index, or `None` when the registry has no
    /// referrers API (404, as the distribution spec says such a registry answers).
    async fn referrers_api(
        &self,
        repository: &str,
        image: &BlobDigest,
    ) -> Result<Option<Vec<u8>>, RegistryError> {
        let path = format!("v2/{repository}/referrers/{image}");
        let what = "the referrers list";
        match self
            .get_bounded(what, repository, &path, Some(OCI_INDEX), MAX_MANIFEST_BYTES)
            .await
        {
            Ok((bytes, _, _)) => Ok(Some(bytes)),
            Err(RegistryError::Refused { status: 404, .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// The manifest at `reference`, or `None` when the registry has none there (404).
    async fn get_manifest_if_any(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<Option<Vec<u8>>, RegistryError> {
        match self.get_manifest(repository, reference).await {
            Ok((bytes, _)) => Ok(Some(bytes)),
            Err(RegistryError::Refused { status: 404, .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Uploads `bytes` as a blob unless the repository has it.
    async fn put_blob_bytes(&self, repository: &str, bytes: &[u8]) -> Result<(), RegistryError> {
        if !self.has_blob(repository, &BlobDigest::of(bytes)).await? {
            self.push_blob_bytes(repository, bytes).await?;
        }
        Ok(())
    }
}

/// The array `field` of the JSON document `bytes` (`layers` of a manifest, `manifests` of an
/// index); empty when it is not one.
fn json_layers(bytes: &[u8], field: &str) -> Vec<Value> {
    serde_json::from_slice::<Value>(bytes)
        .ok()
        .and_then(|value| value.get(field).and_then(Value::as_array).cloned())
        .unwrap_or_default()
}

/// Whether `error` is about what the registry sent (kept as a reason), not about reaching it.
fn is_about_content(error: &RegistryError) -> bool {
    matches!(
        error,
        RegistryError::TooLarge { .. }
            | RegistryError::DigestMismatch { .. }
            | RegistryError::Unsupported { .. }
            | RegistryError::Refused { .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attestation(predicate_type: &str, envelope: &str) -> Attestation {
        Attestation {
            predicate_type: predicate_type.to_string(),
            envelope: envelope.as_bytes().to_vec(),
        }
    }

    fn is_canonical(bytes: &[u8]) -> bool {
        let value: Value = serde_json::from_slice(bytes).unwrap();
        serde_json::to_vec(&value).unwrap() == bytes && !bytes.contains(&b' ')
    }

    #[test]
    fn the_att_manifest_is_cosigns_shape_and_canonical() {
        let layers = vec![
            envelope_layer(
                &attestation("https://slsa.dev/provenance/v1", "{\"a\":1}"),
                true,
            ),
            envelope_layer(&attestation("https://cyclonedx.org/bom", "{\"b\":2}"), true),
        ];
        let (manifest, config) = att_manifest(&layers);
        assert!(is_canonical(&manifest) && is_canonical(&config));
        let manifest: Value = serde_json::from_slice(&manifest).unwrap();
        assert_eq!(manifest["mediaType"], OCI_MANIFEST);
        assert_eq!(manifest["config"]["mediaType"], OCI_CONFIG);
        assert_eq!(
            manifest["config"]["digest"],
            BlobDigest::of(&config).to_string()
        );
        assert_eq!(manifest["layers"][0]["mediaType"], DSSE_MEDIA_TYPE);
        assert_eq!(
            manifest["layers"][0]["annotations"],
            json!({ "dev.cosignproject.cosign/signature": "", "predicateType": "https://slsa.dev/provenance/v1" })
        );
        let config: Value = serde_json::from_slice(&config).unwrap();
        assert_eq!(
            config["rootfs"]["diff_ids"],
            json!([
                BlobDigest::of(b"{\"a\":1}").to_string(),
                BlobDigest::of(b"{\"b\":2}").to_string()
            ])
        );
        assert_eq!(config["history"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn a_referrer_names_its_subject_and_the_empty_config() {
        let subject = ManifestDescriptor {
            media_type: OCI_MANIFEST.to_string(),
            digest: BlobDigest::of(b"image"),
            size: 5,
        };
        let bytes = referrer_manifest(
            &subject,
            &attestation("https://slsa.dev/provenance/v1", "{}"),
        );
        assert!(is_canonical(&bytes));
        let manifest: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(manifest["artifactType"], DSSE_MEDIA_TYPE);
        assert_eq!(manifest["subject"]["digest"], subject.digest.to_string());
        assert_eq!(manifest["config"]["mediaType"], EMPTY_MEDIA_TYPE);
        assert_eq!(
            manifest["config"]["digest"],
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert_eq!(
            manifest["annotations"]["predicateType"],
            "https://slsa.dev/provenance/v1"
        );
    }

    #[test]
    fn the_fallback_index_keeps_entries_and_adds_each_once() {
        let other = json!({ "mediaType": OCI_MANIFEST, "digest": "sha256:1", "size": 1, "artifactType": "x" });
        let ours = json!({ "mediaType": OCI_MANIFEST, "digest": "sha256:2", "size": 2 });
        let index =
            merged_index(std::slice::from_ref(&other), &[ours.clone(), ours.clone()]).unwrap();
        assert!(is_canonical(&index));
        let manifests = json_layers(&index, "manifests");
        assert_eq!(manifests, vec![other.clone(), ours.clone()]);
        assert!(
            merged_index(&manifests, &[ours]).is_none(),
            "already listed"
        );
    }

    #[test]
    fn tags_follow_cosign_and_the_referrers_tag_schema() {
        let digest = BlobDigest::of(b"x");
        assert_eq!(att_tag(&digest), format!("sha256-{}.att", digest.hex()));
        assert_eq!(fallback_tag(&digest), format!("sha256-{}", digest.hex()));
    }
}
