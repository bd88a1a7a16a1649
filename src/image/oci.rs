//! OCI images as bytes and on disk: the config (the base's, with the spec's settings on top), the
//! image manifest, and the OCI image layout directory (`oci-layout`, `index.json`,
//! `blobs/sha256/<hex>`).
//!
//! Every JSON document is written canonically (keys sorted, no whitespace) through
//! `serde_json::Value`, whose maps are sorted: oci-spec keeps labels in a `HashMap`, whose order
//! would otherwise change from run to run and with it the digests. Nothing here reads the clock:
//! `created` is `SOURCE_DATE_EPOCH`.

use std::path::Path;

use oci_spec::image::{
    Descriptor, DescriptorBuilder, Digest as OciDigest, HistoryBuilder, ImageConfiguration,
    ImageIndexBuilder, ImageManifestBuilder, MediaType, OciLayoutBuilder,
};

use super::ImageError;
use crate::digest::BlobDigest;
use crate::spec::image::Image;
use crate::store::Store;

/// The annotation `index.json` names the image's tag with.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

/// A blob of an image: what a descriptor says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRef {
    pub media_type: String,
    pub digest: BlobDigest,
    pub size: u64,
}

impl BlobRef {
    pub fn descriptor(&self) -> Descriptor {
        DescriptorBuilder::default()
            .media_type(MediaType::from(self.media_type.as_str()))
            .digest(oci_digest(&self.digest))
            .size(self.size)
            .build()
            .expect("a descriptor with every required field")
    }
}

/// A new layer for [`config_json`]: its tar's digest and what made it (for `history`).
pub struct NewLayer {
    pub diff_id: BlobDigest,
    pub created_by: String,
}

pub fn oci_digest(digest: &BlobDigest) -> OciDigest {
    digest
        .to_string()
        .parse()
        .expect("a sha256 digest is an OCI digest")
}

/// `value` as canonical JSON: sorted keys, no whitespace.
pub fn canonical_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let value = serde_json::to_value(value).expect("image documents serialize");
    serde_json::to_vec(&value).expect("a JSON value serializes")
}

/// The new image's config: the base's config (`base_config`, Docker's or OCI's JSON), its
/// run settings replaced by the spec's, `created` = `SOURCE_DATE_EPOCH`, the new layers'
/// `diff_id`s appended, one history entry per layer.
pub fn config_json(
    base_config: &[u8],
    base_reference: &str,
    image: &Image,
    new_layers: &[NewLayer],
    source_date_epoch: u64,
) -> Result<Vec<u8>, ImageError> {
    let mut config: ImageConfiguration =
        serde_json::from_slice(base_config).map_err(|error| ImageError::BaseConfig {
            base: base_reference.to_string(),
            detail: error.to_string(),
        })?;
    let created = crate::provenance::rfc3339_utc(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(source_date_epoch),
    );

    let mut run = config.config().clone().unwrap_or_default();
    let mut env: Vec<String> = run.env().clone().unwrap_or_default();
    for (key, value) in &image.env {
        let entry = format!("{key}={value}");
        match env
            .iter_mut()
            .find(|existing| existing.split_once('=').map(|(k, _)| k) == Some(key.as_str()))
        {
            Some(existing) => *existing = entry,
            None => env.push(entry),
        }
    }
    run.set_env((!env.is_empty()).then_some(env));
    if let Some(entrypoint) = &image.entrypoint {
        run.set_entrypoint(Some(entrypoint.clone()));
        // As in a Dockerfile: a new entrypoint drops the base's command.
        run.set_cmd(None);
    }
    if let Some(cmd) = &image.cmd {
        run.set_cmd(Some(cmd.clone()));
    }
    if let Some(workdir) = &image.workdir {
        run.set_working_dir(Some(workdir.clone()));
    }
    if let Some(user) = &image.user {
        run.set_user(Some(user.clone()));
    }
    if !image.labels.is_empty() {
        let mut labels = run.labels().clone().unwrap_or_default();
        labels.extend(image.labels.clone());
        run.set_labels(Some(labels));
    }
    if !image.expose.is_empty() {
        let mut ports = run.exposed_ports().clone().unwrap_or_default();
        ports.extend(image.expose.iter().cloned());
        ports.sort();
        ports.dedup();
        run.set_exposed_ports(Some(ports));
    }
    config.set_config(Some(run));
    config.set_created(Some(created.clone()));
    config.set_author(None);

    // History: one entry per layer that is not empty, so tools can pair them. A base without
    // a history that matches its layers gets one entry per layer.
    let base_layers = config.rootfs().diff_ids().len();
    let mut history = config.history().clone().unwrap_or_default();
    let non_empty = history
        .iter()
        .filter(|entry| !entry.empty_layer().unwrap_or(false))
        .count();
    if non_empty != base_layers {
        history = (0..base_layers)
            .map(|index| {
                HistoryBuilder::default()
                    .created_by(format!("layer {} of {base_reference}", index + 1))
                    .build()
                    .expect("a history entry")
            })
            .collect();
    }
    let mut diff_ids = config.rootfs().diff_ids().clone();
    for layer in new_layers {
        diff_ids.push(layer.diff_id.to_string());
        history.push(
            HistoryBuilder::default()
                .created(created.clone())
                .created_by(layer.created_by.clone())
                .comment("sealroom")
                .build()
                .expect("a history entry"),
        );
    }
    let mut rootfs = config.rootfs().clone();
    rootfs.set_diff_ids(diff_ids);
    config.set_rootfs(rootfs);
    config.set_history(Some(history));
    Ok(canonical_json(&config))
}

/// The image manifest for `config` and `layers` (base layers first).
pub fn manifest_json(config: &BlobRef, layers: &[BlobRef]) -> Vec<u8> {
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(config.descriptor())
        .layers(layers.iter().map(BlobRef::descriptor).collect::<Vec<_>>())
        .build()
        .expect("a manifest with every required field");
    canonical_json(&manifest)
}

/// Where a layout's blob lives.
pub fn blob_path(layout: &Path, digest: &BlobDigest) -> std::path::PathBuf {
    layout.join("blobs").join("sha256").join(digest.hex())
}

/// Writes (or updates) the OCI image layout at `layout`: every blob of `blobs` copied from the
/// store (re-hashed on the way) unless the layout has it already, the config and manifest
/// bytes, then `oci-layout` and `index.json`, each written atomically; `index.json` last, so a
/// reader sees the old image or the new one. Blobs no longer referenced are removed.
pub fn write_layout(
    store: &Store,
    layout: &Path,
    layers: &[BlobRef],
    config: &[u8],
    manifest: &[u8],
    ref_name: &str,
) -> Result<BlobDigest, ImageError> {
    let blobs_dir = layout.join("blobs").join("sha256");
    std::fs::create_dir_all(&blobs_dir).map_err(|source| ImageError::WriteLayout {
        path: blobs_dir.clone(),
        source,
    })?;
    let mut keep = Vec::new();
    for layer in layers {
        let dest = blob_path(layout, &layer.digest);
        keep.push(layer.digest.hex());
        if std::fs::metadata(&dest).is_ok_and(|meta| meta.len() == layer.size) {
            continue;
        }
        store
            .export_file(&layer.digest, &dest, false)
            .map_err(|error| ImageError::Store {
                detail: error.to_string(),
            })?;
    }
    let config_digest = BlobDigest::of(config);
    let manifest_digest = BlobDigest::of(manifest);
    for (digest, bytes) in [(config_digest, config), (manifest_digest, manifest)] {
        keep.push(digest.hex());
        write_atomically(&blob_path(layout, &digest), bytes)?;
    }
    let oci_layout = OciLayoutBuilder::default()
        .image_layout_version("1.0.0")
        .build()
        .expect("an oci-layout");
    write_atomically(&layout.join("oci-layout"), &canonical_json(&oci_layout))?;
    let manifest_ref = BlobRef {
        media_type: MediaType::ImageManifest.to_string(),
        digest: manifest_digest,
        size: manifest.len() as u64,
    };
    let mut descriptor = manifest_ref.descriptor();
    descriptor.set_annotations(Some(
        [(REF_NAME_ANNOTATION.to_string(), ref_name.to_string())]
            .into_iter()
            .collect(),
    ));
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(vec![descriptor])
        .build()
        .expect("an index with every required field");
    write_atomically(&layout.join("index.json"), &canonical_json(&index))?;

    // What an earlier build left and this image does not use.
    if let Ok(entries) = std::fs::read_dir(&blobs_dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !keep.contains(&name) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    Ok(manifest_digest)
}

/// What an OCI layout holds: the manifest of its (first) image and the blobs it names.
pub struct LayoutImage {
    pub manifest: Vec<u8>,
    pub manifest_digest: BlobDigest,
    pub manifest_media_type: String,
    pub config: BlobRef,
    pub layers: Vec<BlobRef>,
}

/// Reads `index.json` and the manifest it names from the layout at `layout`, checking the
/// manifest's digest.
pub fn read_layout(layout: &Path) -> Result<LayoutImage, ImageError> {
    let bad = |detail: String| ImageError::BadLayout {
        path: layout.to_path_buf(),
        detail,
    };
    let index_path = layout.join("index.json");
    let index_bytes = std::fs::read(&index_path)
        .map_err(|error| bad(format!("cannot read `{}`: {error}", index_path.display())))?;
    let index: oci_spec::image::ImageIndex = serde_json::from_slice(&index_bytes)
        .map_err(|error| bad(format!("index.json is not an OCI index: {error}")))?;
    let Some(first) = index.manifests().first() else {
        return Err(bad("index.json lists no manifest".to_string()));
    };
    let manifest_digest = parse_digest(first.digest())
        .ok_or_else(|| bad(format!("unsupported digest `{}`", first.digest())))?;
    let manifest_path = blob_path(layout, &manifest_digest);
    let manifest = std::fs::read(&manifest_path).map_err(|error| {
        bad(format!(
            "cannot read the manifest `{}`: {error}",
            manifest_path.display()
        ))
    })?;
    if BlobDigest::of(&manifest) != manifest_digest {
        return Err(bad(format!(
            "the manifest blob `{}` does not match its name",
            manifest_path.display()
        )));
    }
    let parsed: oci_spec::image::ImageManifest =
        serde_json::from_slice(&manifest).map_err(|error| {
            bad(format!(
                "the manifest is not an OCI image manifest: {error}"
            ))
        })?;
    let to_ref = |descriptor: &Descriptor| -> Result<BlobRef, ImageError> {
        Ok(BlobRef {
            media_type: descriptor.media_type().to_string(),
            digest: parse_digest(descriptor.digest())
                .ok_or_else(|| bad(format!("unsupported digest `{}`", descriptor.digest())))?,
            size: descriptor.size(),
        })
    };
    Ok(LayoutImage {
        manifest_media_type: first.media_type().to_string(),
        config: to_ref(parsed.config())?,
        layers: parsed
            .layers()
            .iter()
            .map(to_ref)
            .collect::<Result<_, _>>()?,
        manifest,
        manifest_digest,
    })
}

pub fn parse_digest(digest: &OciDigest) -> Option<BlobDigest> {
    digest.to_string().parse().ok()
}

/// Writes `bytes` to `path` atomically, unless the file already holds exactly them (mode 0644):
/// an unchanged rebuild rewrites (and syncs) nothing.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ImageError> {
    use std::os::unix::fs::PermissionsExt;
    let unchanged = std::fs::metadata(path).is_ok_and(|metadata| {
        metadata.is_file()
            && metadata.len() == bytes.len() as u64
            && metadata.permissions().mode() & 0o7777 == 0o644
    }) && std::fs::read(path).is_ok_and(|old| old == bytes);
    if unchanged {
        return Ok(());
    }
    crate::atomic::write(path, bytes, crate::atomic::Mode::Fixed(0o644)).map_err(|error| {
        ImageError::WriteLayout {
            path: path.to_path_buf(),
            source: error.source,
        }
    })
}

/// The labels a `BTreeMap` holds, for tests.
#[cfg(test)]
fn sorted(
    map: &std::collections::HashMap<String, String>,
) -> std::collections::BTreeMap<String, String> {
    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::spec::image::Compression;

    #[test]
    fn an_unchanged_file_is_not_written_again() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.json");
        write_atomically(&path, b"{}").unwrap();
        let first = std::fs::metadata(&path).unwrap().ino();
        write_atomically(&path, b"{}").unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().ino(),
            first,
            "not replaced"
        );
        write_atomically(&path, b"{\"a\":1}").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"{\"a\":1}");
        assert_ne!(std::fs::metadata(&path).unwrap().ino(), first);
    }

    fn image() -> Image {
        Image {
            name: "app".parse().unwrap(),
            base: format!("b@sha256:{}", "0".repeat(64)).parse().unwrap(),
            layers: vec![],
            entrypoint: None,
            cmd: Some(vec!["/app/run".into()]),
            env: BTreeMap::from([("A".into(), "1".into()), ("PATH".into(), "/x".into())]),
            workdir: Some("/app".into()),
            user: Some("1000".into()),
            labels: (0..20)
                .map(|i| (format!("l{i}"), "v".to_string()))
                .collect(),
            expose: vec!["8080/tcp".into()],
            compression: Compression::Gzip,
        }
    }

    const BASE: &str = r#"{"architecture":"amd64","config":{"Env":["PATH=/bin"],"Cmd":["sh"]},"os":"linux","rootfs":{"diff_ids":["sha256:1111111111111111111111111111111111111111111111111111111111111111"],"type":"layers"},"container_config":{"Hostname":"x"}}"#;

    #[test]
    fn config_is_canonical_and_carries_the_settings() {
        let layer = NewLayer {
            diff_id: BlobDigest::of(b"tar"),
            created_by: "step app at /app".into(),
        };
        let first = config_json(BASE.as_bytes(), "b", &image(), &[layer], 1_700_000_000).unwrap();
        for _ in 0..5 {
            let layer = NewLayer {
                diff_id: BlobDigest::of(b"tar"),
                created_by: "step app at /app".into(),
            };
            let again =
                config_json(BASE.as_bytes(), "b", &image(), &[layer], 1_700_000_000).unwrap();
            assert_eq!(
                first, again,
                "labels in a HashMap must not change the bytes"
            );
        }
        let parsed: ImageConfiguration = serde_json::from_slice(&first).unwrap();
        let run = parsed.config().as_ref().unwrap();
        assert_eq!(run.env().as_ref().unwrap(), &["PATH=/x", "A=1"]);
        assert_eq!(run.cmd().as_ref().unwrap(), &["/app/run"]);
        assert_eq!(sorted(run.labels().as_ref().unwrap()).len(), 20);
        assert_eq!(parsed.created().as_deref(), Some("2023-11-14T22:13:20Z"));
        assert_eq!(parsed.rootfs().diff_ids().len(), 2);
        assert_eq!(parsed.history().as_ref().unwrap().len(), 2);
        let text = String::from_utf8(first).unwrap();
        assert!(!text.contains("container_config"), "{text}");
        assert!(!text.contains(' ') || text.contains("step app"), "{text}");
    }
}
