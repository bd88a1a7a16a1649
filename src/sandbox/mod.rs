//! Running one step in isolation. `Sandbox` is the seam: `docker` runs steps in Docker
//! containers through bollard; `fake` records what it was asked to run, for unit tests of the
//! code that schedules steps.
//!
//! A sandbox is given everything a step may see (`StepRequest`: its [`record::StepRecord`], and
//! the host directories behind its input and output mounts) and nothing else. It does not decide
//! any of these; `ops::build` does, and the record is also what the action key and provenance
//! are made of. It never touches the store.

pub mod docker;
pub mod fake;
pub mod record;

use std::path::PathBuf;

use tokio_util::sync::CancellationToken;

use crate::digest::BlobDigest;
use crate::error::ExitCode;
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
/// The label naming the process that made a container (`<pid>:<start time>`), so that the next
/// build can tell the leftovers of a killed one from the containers of a running one.
pub const OWNER_LABEL: &str = "dev.sealroom.owner";

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
    /// The engine's default bridge.
    Bridge,
    /// The host's network stack, loopback included.
    Host,
}

impl Network {
    /// The engine's name for it (`network_mode`).
    pub fn mode(self) -> &'static str {
        match self {
            Network::None => "none",
            Network::Bridge => "bridge",
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
}

impl StepOutcome {
    pub fn succeeded(&self) -> bool {
        self.exit_status == 0
    }
}

/// Runs steps. Implementations must leave nothing behind (no container, no temp file) on any
/// path, success or error.
pub trait Sandbox: Send + Sync {
    /// Runs the step to its end, or until `cancel` fires: then the step is stopped, its
    /// container removed, and the result is `SandboxError::Cancelled`.
    fn run(
        &self,
        request: &StepRequest,
        cancel: &CancellationToken,
    ) -> impl std::future::Future<Output = Result<StepOutcome, SandboxError>> + Send;
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(
        "cannot reach the container engine: {detail}\n  hint: start the Docker daemon (`dockerd`), or set DOCKER_HOST to where it listens"
    )]
    EngineUnreachable { detail: String },
    #[error(
        "base image `{image}` is not in the container engine\n  hint: make it with the recipe in `sandbox/` (e.g. `sandbox/busybox/build.sh`) or `sealroom image import ROOTFS --name {name}`, then pin the digest it prints"
    )]
    ImageMissing { image: PinnedImage, name: String },
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
    #[error("container engine error while {action} for step `{step}`: {detail}")]
    Engine {
        step: String,
        action: &'static str,
        detail: String,
    },
}

impl SandboxError {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            SandboxError::EngineUnreachable { .. } => ExitCode::EngineUnreachable,
            SandboxError::ImageMissing { .. } => ExitCode::BadInput,
            SandboxError::Engine { .. }
            | SandboxError::Cancelled { .. }
            | SandboxError::TimedOut { .. }
            | SandboxError::OutOfMemory { .. } => ExitCode::StepFailed,
        }
    }
}
