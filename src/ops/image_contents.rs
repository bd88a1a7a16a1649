//! What a base image holds, for the SBOM: its os-release and the Debian packages of its dpkg
//! status file (`sbom::image`), read out of the image through the engine once and remembered
//! in the store's action cache under the image id, so that a warm build creates no container.
//!
//! An image id names the image's config, which names its layers: the same id is the same
//! files, so the id (with the version of what is read and how) is the whole key. The entry's
//! output is the empty tree; its record blob is the [`ImageContents`] as JSON, re-read and
//! re-hashed on every hit. A blob that is gone, damaged or no longer parses is a miss, and the
//! image is read again.
//!
//! A build reads them out of the first step's container when one runs (no container of their
//! own), and shares them through the remote cache like a step's result (`remote`), so that a
//! runner whose steps all come from the cache creates no container either.

use crate::digest::{ActionDigest, BlobDigest};
use crate::error::{Error, ExitCode, Failure};
use crate::remote::RemoteCache;
use crate::sandbox::Engine;
use crate::sbom::image::{
    DPKG_STATUS, ImageContents, ImageContentsError, OS_RELEASE, OS_RELEASE_FALLBACK,
};
use crate::store::Store;
use crate::store::actions::ActionResult;

/// The version of the cache key: bump it when what is read from an image, or how it is
/// parsed, changes, so that no entry made the old way is taken for a new one.
const KEY_VERSION: u64 = 1;

/// The action-cache key of the contents of image `image_id`.
fn key(image_id: &str) -> ActionDigest {
    let key = serde_json::json!({
        "kind": "image-contents",
        "version": KEY_VERSION,
        "image": image_id,
    });
    ActionDigest::of(key.to_string().as_bytes())
}

/// An image's files could be read but not understood.
#[derive(Debug, thiserror::Error)]
pub enum ImageContentsReadError {
    #[error("cannot read `{file}` of image {image}: {source}")]
    Parse {
        image: String,
        file: &'static str,
        #[source]
        source: ImageContentsError,
    },
}

impl Failure for ImageContentsReadError {
    fn exit_code(&self) -> ExitCode {
        match self {
            ImageContentsReadError::Parse { source, .. } => source.exit_code(),
        }
    }
}

/// The files of an image its contents are read from.
pub const IMAGE_FILES: [&str; 3] = [DPKG_STATUS, OS_RELEASE, OS_RELEASE_FALLBACK];

/// What the image `image_id` (`sha256:<hex>`, as the engine names it) holds: from the store
/// when an earlier call read it, else read from the image (`/var/lib/dpkg/status`, and
/// `/etc/os-release` or else `/usr/lib/os-release`, in one container that never starts),
/// parsed, and remembered.
pub async fn image_contents(
    engine: &impl Engine,
    store: &Store,
    image_id: &str,
) -> Result<ImageContents, Error> {
    image_contents_shared(engine, store, image_id, None).await
}

/// [`image_contents`], with a remote cache asked after the store and before the engine, and
/// given what the engine read.
pub async fn image_contents_shared(
    engine: &impl Engine,
    store: &Store,
    image_id: &str,
    remote: Option<&RemoteCache>,
) -> Result<ImageContents, Error> {
    let key = key(image_id);
    let known = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || cached(&store, &key))
            .await
            .unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic()))
    };
    if let Some(contents) = known {
        tracing::debug!("image {image_id}: contents from the store");
        return Ok(contents);
    }
    if let Some(remote) = remote
        && let Some(result) = remote
            .lookup_image_contents(store, image_id, &key, &IMAGE_FILES)
            .await
    {
        let store = store.clone();
        let found = tokio::task::spawn_blocking(move || {
            store.action_put(&key, &result)?;
            Ok::<_, Error>(cached(&store, &key))
        })
        .await
        .unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic()))?;
        if let Some(contents) = found {
            tracing::debug!("image {image_id}: contents from the remote cache");
            return Ok(contents);
        }
    }

    let files = engine.read_image_files(image_id, &IMAGE_FILES).await?;
    remember_files(store, image_id, files, remote).await
}

/// Parses the files read out of image `image_id` (`IMAGE_FILES`, by path; a step's container
/// can give them, `sandbox::StepRequest::read_image_files`), remembers the contents in the
/// store, and uploads them to `remote`.
pub async fn remember_files(
    store: &Store,
    image_id: &str,
    mut files: std::collections::BTreeMap<String, Vec<u8>>,
    remote: Option<&RemoteCache>,
) -> Result<ImageContents, Error> {
    let key = key(image_id);
    let dpkg_status = files.remove(DPKG_STATUS);
    // os-release(5): `/etc/os-release` when there is one, else `/usr/lib/os-release`.
    let os_release = match files.remove(OS_RELEASE) {
        Some(bytes) => Some((OS_RELEASE, bytes)),
        None => files
            .remove(OS_RELEASE_FALLBACK)
            .map(|bytes| (OS_RELEASE_FALLBACK, bytes)),
    };
    let contents = ImageContents::parse(
        dpkg_status.as_deref(),
        os_release.as_ref().map(|(_, bytes)| bytes.as_slice()),
    )
    .map_err(|source| ImageContentsReadError::Parse {
        image: image_id.to_string(),
        file: if source.is_in_dpkg_status() {
            DPKG_STATUS
        } else {
            os_release.as_ref().map_or(OS_RELEASE, |(path, _)| *path)
        },
        source,
    })?;
    tracing::debug!(
        "image {image_id}: {} Debian package(s), os-release {}",
        contents.packages.len(),
        os_release.as_ref().map_or("none", |(path, _)| *path)
    );

    let record = serde_json::to_vec_pretty(&contents).expect("image contents serialize");
    let result = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || remember(&store, &key, &record))
            .await
            .unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic()))?
    };
    if let Some(remote) = remote {
        remote
            .upload_image_contents(store, image_id, &key, &IMAGE_FILES, &result)
            .await;
    }
    Ok(contents)
}

/// The contents of `image_id` an earlier call read, if the store still has them; never asks
/// the engine.
pub fn remembered(store: &Store, image_id: &str) -> Option<ImageContents> {
    cached(store, &key(image_id))
}

/// The contents the store remembers under `key`, if its record blob is there, matches its
/// digest and parses.
fn cached(store: &Store, key: &ActionDigest) -> Option<ImageContents> {
    let hit = store.action_get(key)?;
    let bytes = std::fs::read(store.blob_path(&hit.log)).ok()?;
    if BlobDigest::of(&bytes) != hit.log {
        return None;
    }
    serde_json::from_slice(&bytes).ok()
}

/// Stores `record` and the action-cache entry that names it (output: the empty tree).
fn remember(store: &Store, key: &ActionDigest, record: &[u8]) -> Result<ActionResult, Error> {
    let output = store.add_empty_tree()?;
    let (log, _) = store.add_blob_from_reader(record, "the image contents record", None)?;
    let result = ActionResult {
        output,
        log,
        invocation: None,
    };
    store.action_put(key, &result)?;
    Ok(result)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::sandbox::fake::FakeEngine;
    use crate::sbom::image::{DebPackage, OsRelease};

    const IMAGE: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    const STATUS: &[u8] = b"Package: bsdutils\nStatus: install ok installed\nArchitecture: amd64\nSource: util-linux (2.38.1-5+deb12u3)\nVersion: 1:2.38.1-5+deb12u3\n";
    const OS: &[u8] = b"ID=debian\nVERSION_ID=\"12\"\n";

    fn engine_with(files: &[(&str, &[u8])]) -> FakeEngine {
        let files: BTreeMap<String, Vec<u8>> = files
            .iter()
            .map(|(path, bytes)| (path.to_string(), bytes.to_vec()))
            .collect();
        FakeEngine::new(|_| Ok(0)).with_image_files(IMAGE, files)
    }

    fn expected() -> ImageContents {
        ImageContents {
            os: Some(OsRelease {
                id: "debian".to_string(),
                version_id: Some("12".to_string()),
                pretty_name: None,
            }),
            packages: vec![DebPackage {
                name: "bsdutils".to_string(),
                version: "1:2.38.1-5+deb12u3".to_string(),
                architecture: "amd64".to_string(),
                source: Some("util-linux".to_string()),
                source_version: Some("2.38.1-5+deb12u3".to_string()),
            }],
        }
    }

    #[tokio::test]
    async fn a_second_call_reads_nothing_from_the_engine() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let engine = engine_with(&[(DPKG_STATUS, STATUS), (OS_RELEASE, OS)]);
        assert_eq!(
            image_contents(&engine, &store, IMAGE).await.unwrap(),
            expected()
        );
        assert_eq!(engine.image_file_reads(), 1);
        assert_eq!(
            image_contents(&engine, &store, IMAGE).await.unwrap(),
            expected()
        );
        assert_eq!(engine.image_file_reads(), 1, "the second call was a hit");

        // Another image is another key.
        let other = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
        let engine = engine.with_image_files(other, BTreeMap::new());
        let empty = image_contents(&engine, &store, other).await.unwrap();
        assert_eq!(
            empty,
            ImageContents {
                os: None,
                packages: Vec::new()
            }
        );
        assert_eq!(engine.image_file_reads(), 2);
    }

    #[tokio::test]
    async fn an_unparsable_or_damaged_record_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let engine = engine_with(&[(DPKG_STATUS, STATUS), (OS_RELEASE, OS)]);

        // A sound blob that is not image contents (an entry of some other shape).
        let (other, _) = store
            .add_blob_from_reader(&b"not json"[..], "a test", None)
            .unwrap();
        store
            .action_put(
                &key(IMAGE),
                &ActionResult {
                    output: store.add_empty_tree().unwrap(),
                    log: other,
                    invocation: None,
                },
            )
            .unwrap();
        assert_eq!(
            image_contents(&engine, &store, IMAGE).await.unwrap(),
            expected()
        );
        assert_eq!(engine.image_file_reads(), 1);
        // The entry was written anew: the next call is a hit.
        let hit = store.action_get(&key(IMAGE)).unwrap();
        assert_ne!(hit.log, other);
        assert_eq!(hit.output, store.add_empty_tree().unwrap());
        image_contents(&engine, &store, IMAGE).await.unwrap();
        assert_eq!(engine.image_file_reads(), 1);

        // Bytes changed under the blob's name (valid contents, but not the ones named): the
        // digest no longer matches, so they are not believed. The blob stays damaged until
        // `store verify` removes it; until then every call reads the image again.
        let blob = store.blob_path(&hit.log);
        let mut permissions = std::fs::metadata(&blob).unwrap().permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        permissions.set_readonly(false);
        std::fs::set_permissions(&blob, permissions).unwrap();
        std::fs::write(&blob, b"{\"os\":null,\"packages\":[]}").unwrap();
        assert_eq!(
            image_contents(&engine, &store, IMAGE).await.unwrap(),
            expected()
        );
        assert_eq!(engine.image_file_reads(), 2);
    }

    #[tokio::test]
    async fn os_release_falls_back_to_usr_lib_and_etc_wins_when_both_are_there() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let engine = engine_with(&[(OS_RELEASE_FALLBACK, b"ID=ubuntu\nVERSION_ID=24.04\n")]);
        let contents = image_contents(&engine, &store, IMAGE).await.unwrap();
        assert_eq!(contents.os.unwrap().id, "ubuntu");
        assert!(contents.packages.is_empty());

        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let engine = engine_with(&[(OS_RELEASE_FALLBACK, b"ID=ubuntu\n"), (OS_RELEASE, OS)]);
        let contents = image_contents(&engine, &store, IMAGE).await.unwrap();
        assert_eq!(contents.os.unwrap().id, "debian");
    }

    #[tokio::test]
    async fn a_parse_error_names_the_image_and_the_file_and_caches_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let engine = engine_with(&[(DPKG_STATUS, b"Package: a\nbroken\n"), (OS_RELEASE, OS)]);
        let error = image_contents(&engine, &store, IMAGE).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "cannot read `/var/lib/dpkg/status` of image {IMAGE}: dpkg status line 2: expected `Field: value`, a continuation line starting with a space or tab, or an empty line between stanzas; found `broken`"
            )
        );
        assert_eq!(error.exit_code(), ExitCode::BadInput);
        assert!(store.action_get(&key(IMAGE)).is_none());

        let engine = engine_with(&[(OS_RELEASE_FALLBACK, b"NAME=x\n")]);
        let error = image_contents(&engine, &store, IMAGE).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "cannot read `/usr/lib/os-release` of image {IMAGE}: os-release has no `ID=` line (or an empty one): os-release(5) requires it"
            )
        );
    }

    #[tokio::test]
    async fn an_engine_error_is_passed_on_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let engine = FakeEngine::new(|_| Ok(0));
        let error = image_contents(&engine, &store, IMAGE).await.unwrap_err();
        assert!(
            matches!(
                error.downcast_ref::<crate::sandbox::EngineError>(),
                Some(crate::sandbox::EngineError::Refused { .. })
            ),
            "{error}"
        );
        assert!(error.to_string().contains(IMAGE), "{error}");
    }
}
