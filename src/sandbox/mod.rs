//! The container engine, behind one boundary. [`Engine`] is everything sealroom asks of an
//! engine: run a step, tell whether it holds an image (and its id, and the `VOLUME`s it
//! declares), load, save and tag images, remove what killed builds left behind. `docker`
//! implements it through bollard and is the only module that uses bollard; `fake` implements
//! it in memory for unit tests; `transfer` writes and reads the tars that carry a step's files
//! to and from a remote engine.
//!
//! A sandbox is given everything a step may see (`StepRequest`: its [`record::StepRecord`], and
//! the host directories behind its input and output mounts) and nothing else. It does not decide
//! any of these; `ops::build` does, and the record is also what the action key and provenance
//! are made of. It never touches the store.

pub mod docker;
pub mod fake;
pub mod fetch_network;
pub mod record;
pub mod transfer;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tokio_util::sync::CancellationToken;

use crate::digest::BlobDigest;
use crate::error::{ExitCode, Failure, IoError};
use crate::spec::limits::format_duration;
use crate::spec::{ByteSize, PinnedImage};

pub use record::StepRecord;

/// Where a step's inputs and output are, inside the container.
pub const INPUTS_DIR: &str = "/inputs";
pub const OUT_DIR: &str = "/out";
/// The scratch directory for build work, and the working directory every step starts in.
pub const WORK_DIR: &str = "/build";
/// The temporary directory, also `HOME`.
pub const TMP_DIR: &str = "/tmp";
/// The directories a step may write besides `/out`: each a private tmpfs of `limits.scratch`
/// bytes, writable and executable by the step's user whatever the image has at that path
/// (mode 1777, `nosuid,nodev`), gone with the container.
pub const SCRATCH_DIRS: [&str; 2] = [TMP_DIR, WORK_DIR];
/// The user steps run as unless a spec asks for root: an unprivileged uid:gid.
pub const DEFAULT_USER: &str = "1000:1000";
/// The label every container sealroom makes carries, with the build id as its value.
pub const BUILD_LABEL: &str = "dev.sealroom.build";
/// The label naming the step a container runs.
pub const STEP_LABEL: &str = "dev.sealroom.step";
/// The label older sealroom versions put on a container to name the process that made it
/// (`<pid>:<start time>`). Read only: such containers are removed by the old rule (the pid is
/// not running here), and only when the label parses.
pub const LEGACY_OWNER_LABEL: &str = "dev.sealroom.owner";
/// The label naming the process that made a container: the host's boot id, the inode of the
/// process's PID namespace, its pid and its start time (`docker::Owner`). A container counts as
/// left behind only when it was made on this boot, in this PID namespace, by a process that is
/// no longer running; the containers of a build in another PID namespace (another CI job on
/// the same engine) are left alone. A new key, so that older sealroom versions, which take an
/// owner they cannot parse for a dead one, never see it.
pub const OWNER_LABEL: &str = "dev.sealroom.owner-process";
/// The label with the time (unix seconds) after which a container may be removed by anyone:
/// its creation time plus the step's `limits.timeout` plus [`DEADLINE_GRACE`].
pub const DEADLINE_LABEL: &str = "dev.sealroom.deadline";
/// How long past its timeout a container is left to the build that runs it (whose own timer
/// removes it) before any other sealroom command may.
pub const DEADLINE_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Everything one step run may see.
#[derive(Debug, Clone)]
pub struct StepRequest {
    /// The step's name, for labels and log prefixes.
    pub step: String,
    /// Identifies the build the container belongs to (a label), so leftovers can be found.
    pub build_id: String,
    /// The image by name, for messages; `record.image` is its id.
    pub image: PinnedImage,
    /// What runs: the only description the engine implementation reads.
    pub record: StepRecord,
    /// The host directories behind the record's input mounts.
    pub inputs: Vec<InputMount>,
    /// The host directory mounted at `/out`, empty and writable by the step's user.
    pub out_dir: PathBuf,
    /// A host file (not yet there) the sandbox writes the step's log to, at most
    /// `docker::LOG_KEPT_BYTES` of it; `StepOutcome::log_digest` names exactly those bytes.
    pub log_path: PathBuf,
    /// Files of the image to read out of the step's container once it has exited successfully,
    /// before it is removed (`StepOutcome::image_files`): the SBOM's image contents, without a
    /// container of their own. The container's root is read-only and no mount covers them, so
    /// they are the image's files, whatever the step did.
    pub read_image_files: Vec<&'static str>,
}

impl StepRequest {
    /// The host directory behind the input mount at `target`.
    pub fn input_path(&self, target: &str) -> Option<&std::path::Path> {
        self.inputs
            .iter()
            .find(|input| input.target() == target)
            .map(|input| input.host_path.as_path())
    }
}

/// The network a container gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// No interface but `lo`.
    None,
    /// sealroom's own fetch network ([`fetch_network`]): the outside world, but not the host,
    /// other containers or link-local addresses.
    Fetch,
    /// The host's network stack, loopback included (`--allow-host-network` only).
    Host,
}

impl Network {
    /// The engine's name for it (`network_mode`).
    pub fn mode(self) -> &'static str {
        match self {
            Network::None => "none",
            Network::Fetch => fetch_network::NAME,
            Network::Host => "host",
        }
    }
}

#[derive(Debug, Clone)]
pub struct InputMount {
    pub name: String,
    pub host_path: PathBuf,
}

impl InputMount {
    /// Where it is mounted: `/inputs/<name>`.
    pub fn target(&self) -> String {
        format!("{INPUTS_DIR}/{}", self.name)
    }
}

/// What came of a step that ran to its end (whatever its exit status).
#[derive(Debug, Clone)]
pub struct StepOutcome {
    pub exit_status: i64,
    /// The last lines the step printed (stdout and stderr), for error messages.
    pub log_tail: Vec<String>,
    /// The sha256 of the log as written to the request's `log_path`.
    pub log_digest: BlobDigest,
    /// The request's `read_image_files` that exist (path to bytes); `None` when none were asked
    /// for or they could not be read.
    pub image_files: Option<std::collections::BTreeMap<String, Vec<u8>>>,
}

impl StepOutcome {
    pub fn succeeded(&self) -> bool {
        self.exit_status == 0
    }

    /// `Ok` when the step exited 0, else the failure of `step` with its last log lines.
    pub fn check(self, step: impl Into<String>) -> Result<(), SandboxError> {
        if self.succeeded() {
            return Ok(());
        }
        Err(SandboxError::Failed {
            step: step.into(),
            status: self.exit_status,
            log_tail: self.log_tail,
        })
    }
}

/// Creates a container's `/out`: empty, and writable by the unprivileged uid the step runs as.
pub fn create_out_dir(path: &Path) -> Result<(), IoError> {
    use std::os::unix::fs::PermissionsExt;
    let failed = |action| {
        move |source| IoError {
            action,
            path: path.to_path_buf(),
            source,
        }
    };
    std::fs::create_dir(path).map_err(failed("creating the step's /out"))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777))
        .map_err(failed("opening the step's /out to the step's user"))
}

/// A docker-archive (the `docker save` / `docker load` tar) as a stream of chunks.
pub type ArchiveStream =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send>>;

/// An image as the engine holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineImage {
    /// `sha256:<hex>`.
    pub id: String,
    /// The paths its config declares as `VOLUME`s (`Volumes`), sorted.
    pub volumes: Vec<String>,
}

/// Everything sealroom asks of a container engine. Implementations must leave nothing behind
/// (no container, no temp file) on any path, success or error.
pub trait Engine: Send + Sync {
    /// Runs the step to its end, or until `cancel` fires: then the step is stopped, its
    /// container removed, and the result is `SandboxError::Cancelled`.
    fn run(
        &self,
        request: &StepRequest,
        cancel: &CancellationToken,
    ) -> impl Future<Output = Result<StepOutcome, SandboxError>> + Send;

    /// The image `reference` names (an id, or `name[:tag]`), as one inspection tells it: its
    /// id and its `VOLUME`s; `None` when the engine has no such image.
    fn image(
        &self,
        reference: &str,
    ) -> impl Future<Output = Result<Option<EngineImage>, EngineError>> + Send;

    /// The id (`sha256:<hex>`) of the image `reference` names, or `None` when the engine has no
    /// such image.
    fn image_id(
        &self,
        reference: &str,
    ) -> impl Future<Output = Result<Option<String>, EngineError>> + Send {
        async move { Ok(self.image(reference).await?.map(|image| image.id)) }
    }

    /// Loads the images of a docker-archive, under the tags its `manifest.json` names.
    fn load(&self, archive: ArchiveStream) -> impl Future<Output = Result<(), EngineError>> + Send;

    /// Writes the docker-archive of the image `id` (`docker save`) to `dest`.
    fn save(&self, id: &str, dest: &Path) -> impl Future<Output = Result<(), EngineError>> + Send;

    /// Tags the image `id` as `repository:tag`.
    fn tag(
        &self,
        id: &str,
        repository: &str,
        tag: &str,
    ) -> impl Future<Output = Result<(), EngineError>> + Send;

    /// Removes the containers (and volumes: scratch volumes, and a remote step's input and
    /// `/out` volumes) that sealroom processes which are no longer running left behind, and
    /// those past their deadline; returns how many containers it removed.
    fn remove_leftovers(&self) -> impl Future<Output = Result<usize, EngineError>> + Send;

    /// The bytes of the regular files among `paths` (absolute paths) in the image `image_id`,
    /// keyed by the path as asked, without running anything from the image. A path that is
    /// not there, or is a directory (or anything but a regular file), is absent from the map.
    /// A symlink is followed inside the image (at most [`MAX_LINK_HOPS`] links, never out of
    /// its root, as [`resolve_link`] says). A file over [`MAX_IMAGE_FILE_BYTES`] is an error.
    fn read_image_files(
        &self,
        image_id: &str,
        paths: &[&str],
    ) -> impl Future<Output = Result<BTreeMap<String, Vec<u8>>, EngineError>> + Send;
}

/// The largest file [`Engine::read_image_files`] reads: the files it is for (a dpkg status, an
/// os-release) are far smaller, and each is held in memory.
pub const MAX_IMAGE_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// How many symlinks [`Engine::read_image_files`] follows for one path before it gives up.
pub const MAX_LINK_HOPS: usize = 8;

/// Where the symlink at `link` (an absolute path in an image) points, as an absolute path in
/// the same image: a relative `target` is taken from the link's directory, an absolute one from
/// the image's root, and `..` never climbs above the root (as the kernel resolves it in a
/// chroot). `.` and empty segments are dropped.
pub fn resolve_link(link: &str, target: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    if !target.starts_with('/') {
        segments.extend(link.split('/').filter(|segment| !segment.is_empty()));
        segments.pop();
    }
    for segment in target.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            name => segments.push(name),
        }
    }
    format!("/{}", segments.join("/"))
}

/// The one check that a pinned image is there and may run steps: the engine must hold an image
/// whose id is the pinned digest (the name is not consulted; the digest alone pins the image),
/// and that image must declare no `VOLUME`: the engine would give every container from it a
/// writable anonymous volume at each such path, outside the read-only root and the limits.
pub async fn require_image(engine: &impl Engine, image: &PinnedImage) -> Result<(), EngineError> {
    let id = image.digest.to_string();
    let volumes = match engine.image(&id).await? {
        Some(found) if found.id == id => found.volumes,
        _ => {
            return Err(EngineError::ImageMissing {
                image: image.clone(),
            });
        }
    };
    if volumes.is_empty() {
        Ok(())
    } else {
        Err(EngineError::ImageHasVolumes {
            image: image.clone(),
            volumes,
        })
    }
}

/// The engine could not be asked, or refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    #[error(
        "cannot reach the container engine: {detail}\n  hint: start the Docker daemon (`dockerd`), or set DOCKER_HOST to where it listens"
    )]
    Unreachable { detail: String },
    #[error(
        "cannot reach the container engine at {host} over TLS: {detail}\n  hint: DOCKER_CERT_PATH ({cert_path}) must hold ca.pem (the CA that signed the engine's --tlscert) and a client certificate, cert.pem with key.pem, signed by the CA of the engine's --tlscacert"
    )]
    Tls {
        host: String,
        cert_path: String,
        detail: String,
    },
    #[error("the container engine refused {action}: {detail}")]
    Refused { action: String, detail: String },
    #[error(
        "base image `{image}` is not in the container engine\n  hint: make it with the recipe in `sandbox/` (e.g. `sandbox/busybox/build.sh`) or `sealroom image import ROOTFS --name {name}` (the same tree gives the same digest), then pin the digest it prints",
        name = image.name
    )]
    ImageMissing { image: PinnedImage },
    #[error(
        "base image `{image}` declares VOLUME {}: the engine would mount a writable volume there in every step, and a step may write only /out, /tmp and /build\n  hint: rebuild the image without `VOLUME` (`sealroom image import` and sealroom's own image builds never add one), then pin the new digest",
        volumes.join(", ")
    )]
    ImageHasVolumes {
        image: PinnedImage,
        volumes: Vec<String>,
    },
    #[error(
        "`{path}` in image {image} is larger than {limit} bytes, the most sealroom reads of a file in an image"
    )]
    ImageFileTooLarge {
        image: String,
        path: String,
        limit: u64,
    },
    #[error(
        "cannot read `{path}` in image {image}: it is a symlink, and more than {hops} symlinks follow one another from it",
        hops = MAX_LINK_HOPS
    )]
    ImageFileLinkLoop { image: String, path: String },
    #[error(
        "cannot set up sealroom's fetch network (`{name}`, bridge `{bridge}`), so no fetch container was started: {detail}",
        name = fetch_network::NAME,
        bridge = fetch_network::BRIDGE
    )]
    FetchNetwork { detail: String },
}

impl Failure for EngineError {
    fn exit_code(&self) -> ExitCode {
        match self {
            EngineError::Unreachable { .. } | EngineError::Tls { .. } => {
                ExitCode::EngineUnreachable
            }
            // What sealroom sends is always well-formed: a refusal is a bug, or an engine that
            // works differently, not the user's input.
            EngineError::Refused { .. } => ExitCode::Internal,
            EngineError::ImageMissing { .. }
            | EngineError::ImageHasVolumes { .. }
            | EngineError::ImageFileTooLarge { .. }
            | EngineError::ImageFileLinkLoop { .. } => ExitCode::BadInput,
            // The host cannot give fetches an isolated network: not the spec's fault, and not
            // sealroom's bug.
            EngineError::FetchNetwork { .. } => ExitCode::EngineUnreachable,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(
        "step `{step}` failed with exit status {status}{}",
        format_tail(log_tail)
    )]
    Failed {
        step: String,
        status: i64,
        log_tail: Vec<String>,
    },
    #[error("step `{step}` was stopped because the build is stopping")]
    Cancelled { step: String },
    #[error(
        "step `{step}` timed out: it ran longer than its wall-clock limit of {} (limits.timeout) and was killed",
        format_duration(*limit)
    )]
    TimedOut {
        step: String,
        limit: std::time::Duration,
    },
    #[error(
        "step `{step}` ran out of memory: it was killed at its limit of {limit} (limits.memory)\n  hint: raise `limits.memory` for this step, or make it use less"
    )]
    OutOfMemory { step: String, limit: ByteSize },
    #[error(
        "step `{step}` wrote more than its output limit of {limit} to /out (limits.output)\n  hint: raise `limits.output` for this step if the output is meant to be that large"
    )]
    OutputTooLarge { step: String, limit: ByteSize },
    #[error("step `{step}` left something in /out that cannot be stored: {detail}")]
    UnsafeOutput { step: String, detail: String },
    #[error("container engine error while {action} for step `{step}`: {detail}")]
    Step {
        step: String,
        action: &'static str,
        detail: String,
    },
}

impl Failure for SandboxError {
    fn exit_code(&self) -> ExitCode {
        match self {
            SandboxError::Engine(error) => error.exit_code(),
            SandboxError::Failed { .. }
            | SandboxError::Step { .. }
            | SandboxError::Cancelled { .. }
            | SandboxError::TimedOut { .. }
            | SandboxError::OutOfMemory { .. }
            | SandboxError::OutputTooLarge { .. }
            | SandboxError::UnsafeOutput { .. } => ExitCode::StepFailed,
        }
    }
}

fn format_tail(lines: &[String]) -> String {
    if lines.is_empty() {
        return "; it printed nothing".to_string();
    }
    let mut text = String::from("; the last lines it printed:");
    for line in lines {
        text.push_str("\n    ");
        text.push_str(line);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::resolve_link;

    #[test]
    fn a_link_resolves_inside_the_image_root() {
        assert_eq!(
            resolve_link("/etc/os-release", "../usr/lib/os-release"),
            "/usr/lib/os-release"
        );
        assert_eq!(
            resolve_link("/etc/os-release", "os-release.d/x"),
            "/etc/os-release.d/x"
        );
        assert_eq!(resolve_link("/etc/a", "/usr/./lib//b"), "/usr/lib/b");
        // `..` stops at the root, as it does in a chroot: no way out of the image.
        assert_eq!(
            resolve_link("/etc/a", "../../../../host/etc/shadow"),
            "/host/etc/shadow"
        );
        assert_eq!(resolve_link("/a", "/../.."), "/");
    }
}
