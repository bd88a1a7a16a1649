//! An engine that runs nothing: it records each step request and lets the test decide what the
//! step "does" (write files to the request's `out_dir`, return an exit status), and keeps images
//! in memory (a loaded docker-archive is read for its config and tags, and saved back as it
//! came), and the files a test gives an image for `read_image_files`. For unit tests of the code that schedules and caches steps and moves images; never
//! used by the binary.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use super::{
    ArchiveStream, Engine, EngineError, EngineImage, SandboxError, StepOutcome, StepRequest,
};
use crate::digest::{BlobDigest, ImageDigest};

type Behaviour = dyn Fn(&StepRequest) -> std::io::Result<i64> + Send + Sync;

pub struct FakeEngine {
    requests: Mutex<Vec<StepRequest>>,
    /// Image id → the docker-archive it was loaded from (empty for an image only named).
    images: Mutex<HashMap<String, Vec<u8>>>,
    /// `name:tag` → image id.
    tags: Mutex<HashMap<String, String>>,
    leftover_scans: AtomicUsize,
    /// Image id → the files `read_image_files` finds in it (path → bytes).
    image_files: Mutex<HashMap<String, BTreeMap<String, Vec<u8>>>>,
    image_file_reads: AtomicUsize,
    behaviour: Box<Behaviour>,
    /// How long each step "runs", so that tests can see steps overlap.
    duration: Duration,
    running: AtomicUsize,
    most_running: AtomicUsize,
}

impl FakeEngine {
    /// A sandbox whose steps do what `behaviour` does and exit with the status it returns.
    pub fn new(
        behaviour: impl Fn(&StepRequest) -> std::io::Result<i64> + Send + Sync + 'static,
    ) -> Self {
        Self {
            requests: Mutex::new(Vec::new()),
            images: Mutex::new(HashMap::new()),
            tags: Mutex::new(HashMap::new()),
            leftover_scans: AtomicUsize::new(0),
            image_files: Mutex::new(HashMap::new()),
            image_file_reads: AtomicUsize::new(0),
            behaviour: Box::new(behaviour),
            duration: Duration::ZERO,
            running: AtomicUsize::new(0),
            most_running: AtomicUsize::new(0),
        }
    }

    /// Makes every step take `duration` before it finishes.
    pub fn taking(mut self, duration: Duration) -> Self {
        self.duration = duration;
        self
    }

    /// The most steps that were running at the same time.
    pub fn most_running(&self) -> usize {
        self.most_running.load(Ordering::SeqCst)
    }

    /// Every request run so far, in the order they started.
    pub fn requests(&self) -> Vec<StepRequest> {
        self.requests.lock().expect("not poisoned").clone()
    }

    /// Makes the engine hold an image with id `id` (and no archive to save).
    pub fn with_image(self, id: ImageDigest) -> Self {
        self.images
            .lock()
            .expect("not poisoned")
            .insert(id.to_string(), Vec::new());
        self
    }

    /// Makes the engine hold an image with id `id` whose files are `files` (absolute path →
    /// bytes), for `read_image_files`.
    pub fn with_image_files(self, id: &str, files: BTreeMap<String, Vec<u8>>) -> Self {
        self.images
            .lock()
            .expect("not poisoned")
            .entry(id.to_string())
            .or_default();
        self.image_files
            .lock()
            .expect("not poisoned")
            .insert(id.to_string(), files);
        self
    }

    /// How many times `read_image_files` was asked (each call counts once, whatever it asks).
    pub fn image_file_reads(&self) -> usize {
        self.image_file_reads.load(Ordering::SeqCst)
    }

    /// How many times leftovers were looked for.
    pub fn leftover_scans(&self) -> usize {
        self.leftover_scans.load(Ordering::SeqCst)
    }

    /// The docker-archive the image `id` came from (empty for one only named by `with_image`).
    fn archive_of(&self, id: &str) -> Option<Vec<u8>> {
        self.images.lock().expect("not poisoned").get(id).cloned()
    }
}

/// The images of a docker-archive: each config's id and the tags the manifest gives it.
fn read_archive(bytes: &[u8]) -> Result<Vec<(String, Vec<String>)>, String> {
    Ok(read_configs(bytes)?
        .into_iter()
        .map(|(id, tags, _)| (id, tags))
        .collect())
}

/// The `VOLUME`s the config of `id` in a docker-archive declares (`config.Volumes`), sorted.
fn archive_volumes(bytes: &[u8], id: &str) -> Result<Vec<String>, String> {
    let Some((_, _, config)) = read_configs(bytes)?
        .into_iter()
        .find(|(found, _, _)| found == id)
    else {
        return Ok(Vec::new());
    };
    let config: serde_json::Value =
        serde_json::from_slice(&config).map_err(|error| format!("image config: {error}"))?;
    let mut volumes: Vec<String> = config
        .pointer("/config/Volumes")
        .and_then(serde_json::Value::as_object)
        .map(|volumes| volumes.keys().cloned().collect())
        .unwrap_or_default();
    volumes.sort();
    Ok(volumes)
}

/// One image of a docker-archive: its id, tags and config bytes.
type ArchivedImage = (String, Vec<String>, Vec<u8>);

/// Each image of a docker-archive.
fn read_configs(bytes: &[u8]) -> Result<Vec<ArchivedImage>, String> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Entry {
        config: String,
        #[serde(default)]
        repo_tags: Vec<String>,
    }
    let mut members = HashMap::new();
    let mut archive = tar::Archive::new(bytes);
    for member in archive.entries().map_err(|error| error.to_string())? {
        let mut member = member.map_err(|error| error.to_string())?;
        let name = member
            .path()
            .map_err(|error| error.to_string())?
            .to_string_lossy()
            .into_owned();
        let mut contents = Vec::new();
        member
            .read_to_end(&mut contents)
            .map_err(|error| error.to_string())?;
        members.insert(name, contents);
    }
    let manifest = members.get("manifest.json").ok_or("no manifest.json")?;
    let entries: Vec<Entry> =
        serde_json::from_slice(manifest).map_err(|error| format!("manifest.json: {error}"))?;
    entries
        .into_iter()
        .map(|entry| {
            let config = members
                .get(&entry.config)
                .ok_or_else(|| format!("no member {}", entry.config))?;
            Ok((
                ImageDigest::of(config).to_string(),
                entry.repo_tags,
                config.clone(),
            ))
        })
        .collect()
}

impl Engine for FakeEngine {
    async fn run(
        &self,
        request: &StepRequest,
        cancel: &CancellationToken,
    ) -> Result<StepOutcome, SandboxError> {
        // Recorded first: a request made after the build was cancelled is a scheduling bug the
        // tests must see, even though a sandbox then stops it at once.
        self.requests
            .lock()
            .expect("not poisoned")
            .push(request.clone());
        if cancel.is_cancelled() {
            return Err(SandboxError::Cancelled {
                step: request.step.clone(),
            });
        }
        let now_running = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_running.fetch_max(now_running, Ordering::SeqCst);
        let finished = tokio::select! {
            () = tokio::time::sleep(self.duration) => true,
            () = cancel.cancelled() => false,
        };
        self.running.fetch_sub(1, Ordering::SeqCst);
        if !finished {
            return Err(SandboxError::Cancelled {
                step: request.step.clone(),
            });
        }
        let exit_status = (self.behaviour)(request).map_err(|error| SandboxError::Step {
            step: request.step.clone(),
            action: "running the fake step",
            detail: error.to_string(),
        })?;
        let log = format!("fake step {} exited {exit_status}\n", request.step);
        std::fs::write(&request.log_path, &log).map_err(|error| SandboxError::Step {
            step: request.step.clone(),
            action: "writing the fake log",
            detail: error.to_string(),
        })?;
        // As the real engine: the image's files out of a step's container, after a success.
        let image_files = (exit_status == 0 && !request.read_image_files.is_empty()).then(|| {
            let all = self.image_files.lock().expect("not poisoned");
            let files = all.get(&request.record.image.to_string());
            request
                .read_image_files
                .iter()
                .filter_map(|path| {
                    let bytes = files?.get(*path)?;
                    Some((path.to_string(), bytes.clone()))
                })
                .collect()
        });
        Ok(StepOutcome {
            exit_status,
            log_tail: vec![log.trim_end().to_string()],
            log_digest: BlobDigest::of(log.as_bytes()),
            image_files,
        })
    }

    async fn image(&self, reference: &str) -> Result<Option<EngineImage>, EngineError> {
        let id = if self
            .images
            .lock()
            .expect("not poisoned")
            .contains_key(reference)
        {
            reference.to_string()
        } else {
            let tags = self.tags.lock().expect("not poisoned");
            let tagged = tags
                .get(reference)
                .or_else(|| tags.get(&format!("{reference}:latest")));
            match tagged {
                Some(id) => id.clone(),
                None => return Ok(None),
            }
        };
        let archive = self.archive_of(&id).unwrap_or_default();
        // An image only named (`with_image`) has no config, so no volumes.
        let volumes = if archive.is_empty() {
            Vec::new()
        } else {
            archive_volumes(&archive, &id).map_err(|detail| EngineError::Refused {
                action: "inspecting an image".to_string(),
                detail,
            })?
        };
        Ok(Some(EngineImage { id, volumes }))
    }

    async fn load(&self, mut archive: ArchiveStream) -> Result<(), EngineError> {
        let refused = |detail: String| EngineError::Refused {
            action: "loading an image".to_string(),
            detail,
        };
        let mut bytes = Vec::new();
        while let Some(chunk) = archive.next().await {
            bytes.extend_from_slice(&chunk.map_err(|error| refused(error.to_string()))?);
        }
        for (id, repo_tags) in read_archive(&bytes).map_err(refused)? {
            let mut tags = self.tags.lock().expect("not poisoned");
            for tag in repo_tags {
                tags.insert(tag, id.clone());
            }
            self.images
                .lock()
                .expect("not poisoned")
                .insert(id, bytes.clone());
        }
        Ok(())
    }

    async fn save(&self, id: &str, dest: &Path) -> Result<(), EngineError> {
        let refused = |detail: String| EngineError::Refused {
            action: "saving an image".to_string(),
            detail,
        };
        let archive = self
            .archive_of(id)
            .ok_or_else(|| refused(format!("no such image: {id}")))?;
        std::fs::write(dest, archive).map_err(|error| refused(error.to_string()))
    }

    async fn tag(&self, id: &str, repository: &str, tag: &str) -> Result<(), EngineError> {
        if !self.images.lock().expect("not poisoned").contains_key(id) {
            return Err(EngineError::Refused {
                action: "tagging an image".to_string(),
                detail: format!("no such image: {id}"),
            });
        }
        self.tags
            .lock()
            .expect("not poisoned")
            .insert(format!("{repository}:{tag}"), id.to_string());
        Ok(())
    }

    async fn remove_leftovers(&self) -> Result<usize, EngineError> {
        self.leftover_scans.fetch_add(1, Ordering::SeqCst);
        Ok(0)
    }

    /// The files given by `with_image_files` that `paths` name; an image held without files
    /// has none. Symlinks are not modelled: a test gives each path its bytes.
    async fn read_image_files(
        &self,
        image_id: &str,
        paths: &[&str],
    ) -> Result<BTreeMap<String, Vec<u8>>, EngineError> {
        self.image_file_reads.fetch_add(1, Ordering::SeqCst);
        if !self
            .images
            .lock()
            .expect("not poisoned")
            .contains_key(image_id)
        {
            return Err(EngineError::Refused {
                action: format!("creating a container to read files of image {image_id}"),
                detail: format!("no such image: {image_id}"),
            });
        }
        let all = self.image_files.lock().expect("not poisoned");
        let files = all.get(image_id);
        Ok(paths
            .iter()
            .filter_map(|path| {
                let bytes = files?.get(*path)?;
                Some((path.to_string(), bytes.clone()))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::PinnedImage;

    /// A docker-archive of one image (no layers) whose config is `config`, tagged `tag`.
    fn archive(config: &[u8], tag: &str) -> Vec<u8> {
        let manifest =
            serde_json::json!([{"Config": "config.json", "RepoTags": [tag], "Layers": []}]);
        let manifest = serde_json::to_vec(&manifest).unwrap();
        let mut builder = tar::Builder::new(Vec::new());
        for (name, bytes) in [
            ("manifest.json", manifest.as_slice()),
            ("config.json", config),
        ] {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, name, bytes).unwrap();
        }
        builder.into_inner().unwrap()
    }

    async fn loaded(engine: &FakeEngine, config: &[u8]) -> PinnedImage {
        let bytes = bytes::Bytes::from(archive(config, "test/image:1"));
        let stream: ArchiveStream = Box::pin(futures_util::stream::iter([Ok(bytes)]));
        engine.load(stream).await.unwrap();
        format!("test/image@{}", ImageDigest::of(config))
            .parse()
            .unwrap()
    }

    #[tokio::test]
    async fn an_image_that_declares_volumes_fails_the_image_check_naming_them() {
        let engine = FakeEngine::new(|_| Ok(0));
        let with = loaded(
            &engine,
            br#"{"config":{"Volumes":{"/var/lib/data":{},"/cache":{}}},"rootfs":{"type":"layers","diff_ids":[]}}"#,
        )
        .await;
        let error = super::super::require_image(&engine, &with)
            .await
            .unwrap_err();
        let EngineError::ImageHasVolumes { volumes, .. } = &error else {
            panic!("{error}");
        };
        assert_eq!(volumes, &["/cache", "/var/lib/data"]);
        let text = error.to_string();
        assert!(
            text.contains(&format!(
                "base image `{with}` declares VOLUME /cache, /var/lib/data"
            )) && text.contains("hint: rebuild the image without `VOLUME`"),
            "{text}"
        );
        assert_eq!(
            crate::error::Failure::exit_code(&error),
            crate::error::ExitCode::BadInput
        );
        let without = loaded(
            &engine,
            br#"{"config":{"Env":["PATH=/bin"]},"rootfs":{"type":"layers","diff_ids":[]}}"#,
        )
        .await;
        super::super::require_image(&engine, &without)
            .await
            .unwrap();
    }
}
