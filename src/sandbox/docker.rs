//! Steps in Docker containers, driven through bollard.
//!
//! Each step gets a fresh container from the pinned image id (never a tag, so nothing is pulled
//! or resolved by name), with networking off (`network_mode = none`: only `lo`), a read-only root
//! filesystem, the scratch directories `/tmp` and `/build` (tmpfs), all capabilities dropped,
//! `no-new-privileges`, an unprivileged user, inputs bind-mounted read-only and one writable bind
//! mount at `/out`. Its output is
//! streamed to stderr, each line prefixed with the step's name. The container is removed on
//! every path out of `run`, success or error.

use std::collections::{HashMap, VecDeque};
use std::io::Write;

use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, HostConfig, Mount, MountType, MountVolumeOptions,
    MountVolumeOptionsDriverConfig,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, ListVolumesOptionsBuilder,
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, RemoveVolumeOptions,
};
use futures_util::StreamExt;
use sha2::{Digest as _, Sha256};
use tokio_util::sync::CancellationToken;

use super::fetch_network;
use super::record::MountRecord;
use super::{
    ArchiveStream, BUILD_LABEL, Engine, EngineError, Network, OWNER_LABEL, STEP_LABEL,
    SandboxError, StepOutcome, StepRequest,
};
use crate::digest::BlobDigest;
use crate::spec::{ByteSize, PinnedImage};

/// How many of the last log lines a failure report shows.
const LOG_TAIL_LINES: usize = 20;

/// Connects to the engine named by `DOCKER_HOST` (else the local socket) and agrees on an API
/// version both sides speak, so older daemons (e.g. Debian's 20.10) work. On a unix socket the
/// version comes from `GET /_ping`'s `API-Version` header, as the docker CLI does it (under a
/// millisecond; `GET /version`, which bollard asks, takes the engine several); elsewhere
/// bollard negotiates.
async fn connect() -> Result<Docker, EngineError> {
    let unreachable = |error: bollard::errors::Error| EngineError::Unreachable {
        detail: error.to_string(),
    };
    // bollard's default, the engine's own socket.
    let host =
        std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".to_string());
    if let Some(socket) = host.strip_prefix("unix://") {
        let server = ping_api_version(socket)
            .await
            .map_err(|error| EngineError::Unreachable {
                detail: format!("{socket}: {error}"),
            })?;
        let ours = bollard::API_DEFAULT_VERSION;
        let version = if let Some((major, minor)) = server
            && (major, minor) < (ours.major_version, ours.minor_version)
        {
            bollard::ClientVersion {
                major_version: major,
                minor_version: minor,
            }
        } else {
            bollard::ClientVersion {
                major_version: ours.major_version,
                minor_version: ours.minor_version,
            }
        };
        return Docker::connect_with_unix(&host, 120, &version).map_err(unreachable);
    }
    let docker = Docker::connect_with_defaults().map_err(unreachable)?;
    docker.negotiate_version().await.map_err(unreachable)
}

/// The `API-Version` the engine on the unix socket `path` answers `GET /_ping` with (`None`
/// when it sends none: then the client's own version is used).
async fn ping_api_version(path: &str) -> std::io::Result<Option<(usize, usize)>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::UnixStream::connect(path).await?;
    stream
        .write_all(b"GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n")
        .await?;
    let mut response = Vec::new();
    let mut chunk = [0u8; 1024];
    // The headers are all that is needed; they are small.
    while !response.windows(4).any(|window| window == b"\r\n\r\n") && response.len() < 16384 {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        response.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&response);
    let mut lines = text.split("\r\n");
    let status = lines.next().unwrap_or_default();
    if !status.starts_with("HTTP/1.") || status.split(' ').nth(1) != Some("200") {
        return Err(std::io::Error::other(format!(
            "GET /_ping answered `{}`",
            status.trim()
        )));
    }
    Ok(lines
        .take_while(|line| !line.is_empty())
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("api-version"))
        .and_then(|(_, value)| {
            let (major, minor) = value.trim().split_once('.')?;
            Some((major.parse().ok()?, minor.parse().ok()?))
        }))
}

/// What the engine answered, as an [`EngineError`]: a refusal of `action`, or no answer at all.
fn engine_error(action: &str) -> impl Fn(bollard::errors::Error) -> EngineError + '_ {
    use bollard::errors::Error;
    move |error| match error {
        Error::DockerResponseServerError {
            status_code,
            message,
        } => EngineError::Refused {
            action: action.to_string(),
            detail: format!("{} (HTTP {status_code})", message.trim_end()),
        },
        Error::DockerStreamError { error } => EngineError::Refused {
            action: action.to_string(),
            detail: error.trim_end().to_string(),
        },
        other => EngineError::Unreachable {
            detail: other.to_string(),
        },
    }
}

fn is_not_found(error: &bollard::errors::Error) -> bool {
    matches!(
        error,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// The Docker implementation of [`Engine`].
pub struct DockerEngine {
    docker: Docker,
}

impl DockerEngine {
    pub async fn connect() -> Result<Self, EngineError> {
        Ok(Self {
            docker: connect().await?,
        })
    }

    /// The container config of `request`: exactly its record, plus the host paths behind its
    /// mounts and the labels that let a later build find leftovers.
    fn container_body(request: &StepRequest) -> ContainerCreateBody {
        let record = &request.record;
        let policy = &record.policy;
        let labels = HashMap::from([
            (BUILD_LABEL.to_string(), request.build_id.clone()),
            (STEP_LABEL.to_string(), request.step.clone()),
            (OWNER_LABEL.to_string(), owner::this_process()),
        ]);
        let bind = |target: &str, source: &std::path::Path, read_only: bool| Mount {
            target: Some(target.to_string()),
            source: Some(source.to_string_lossy().into_owned()),
            typ: Some(MountType::BIND),
            read_only: Some(read_only),
            ..Default::default()
        };
        let mounts = record
            .mounts
            .iter()
            .map(|mount| match mount {
                MountRecord::Input { target, .. } => {
                    let source = request
                        .input_path(target)
                        .expect("every input mount of a record has a host directory");
                    bind(target, source, true)
                }
                MountRecord::Output { target } => bind(target, &request.out_dir, false),
                MountRecord::Scratch {
                    target,
                    size_bytes,
                    options,
                } => scratch_mount(target, *size_bytes, options, &labels),
            })
            .collect();
        assert_eq!(
            policy.seccomp, "engine-default",
            "the only seccomp setting is the engine's default profile"
        );
        let limits = &record.limits;
        let memory = i64::try_from(limits.memory_bytes).unwrap_or(i64::MAX);
        let strings = |items: &[&str]| items.iter().map(|item| item.to_string()).collect();
        ContainerCreateBody {
            image: Some(record.image.to_string()),
            entrypoint: Some(record.argv.clone()),
            cmd: None,
            env: Some(
                record
                    .env
                    .iter()
                    .map(|(key, value)| format!("{key}={value}"))
                    .collect(),
            ),
            working_dir: Some(record.workdir.clone()),
            user: Some(record.user.clone()),
            hostname: policy
                .hostname
                .map(str::to_string)
                .or_else(|| (record.network == Network::Fetch).then(fetch_network::fresh_hostname)),
            labels: Some(labels),
            network_disabled: Some(record.network == Network::None),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            host_config: Some(HostConfig {
                network_mode: Some(record.network.mode().to_string()),
                mounts: Some(mounts),
                readonly_rootfs: Some(policy.read_only_root),
                cap_drop: Some(strings(&policy.cap_drop)),
                cap_add: Some(strings(&policy.cap_add)),
                security_opt: Some(if policy.no_new_privileges {
                    vec!["no-new-privileges".to_string()]
                } else {
                    Vec::new()
                }),
                memory: Some(memory),
                // The same as `memory`: no swap on top of the limit.
                memory_swap: Some(memory),
                pids_limit: Some(i64::try_from(limits.pids).unwrap_or(i64::MAX)),
                nano_cpus: limits
                    .nano_cpus
                    .map(|nano| i64::try_from(nano).unwrap_or(i64::MAX)),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// Starts the created container, streams its log and waits for its exit status.
    async fn start_and_wait(
        &self,
        id: &str,
        request: &StepRequest,
    ) -> Result<StepOutcome, SandboxError> {
        let engine_error = |action: &'static str| {
            let step = request.step.clone();
            move |error: bollard::errors::Error| SandboxError::Step {
                step,
                action,
                detail: error.to_string(),
            }
        };
        self.docker
            .start_container(id, None)
            .await
            .map_err(engine_error("starting the container"))?;

        let options = LogsOptionsBuilder::new()
            .follow(true)
            .stdout(true)
            .stderr(true)
            .build();
        let mut logs = self.docker.logs(id, Some(options));
        let file =
            std::fs::File::create(&request.log_path).map_err(|error| SandboxError::Step {
                step: request.step.clone(),
                action: "creating the log file",
                detail: format!("{}: {error}", request.log_path.display()),
            })?;
        let mut log = StepLog::new(&request.step, Some(file));
        while let Some(chunk) = logs.next().await {
            let chunk = chunk.map_err(engine_error("reading the log"))?;
            log.push(&chunk.into_bytes());
        }
        let log_digest = log.finish();

        let mut wait = self.docker.wait_container(id, None);
        let exit_status = match wait.next().await {
            Some(Ok(response)) => response.status_code,
            // bollard reports a non-zero exit as an error carrying the code.
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => code,
            Some(Err(error)) => return Err(engine_error("waiting for the container")(error)),
            None => {
                return Err(SandboxError::Step {
                    step: request.step.clone(),
                    action: "waiting for the container",
                    detail: "the engine closed the wait stream without an exit status".to_string(),
                });
            }
        };
        Ok(StepOutcome {
            exit_status,
            log_tail: log.tail.into_iter().collect(),
            log_digest,
        })
    }

    /// Whether the kernel killed the container for going over its memory limit.
    async fn was_oom_killed(&self, id: &str) -> bool {
        match self.docker.inspect_container(id, None).await {
            Ok(inspect) => inspect
                .state
                .and_then(|state| state.oom_killed)
                .unwrap_or(false),
            Err(_) => false,
        }
    }

    /// Removes the containers that sealroom processes which are no longer running left behind
    /// (a build killed with SIGKILL, a crash). Containers of running builds are left alone.
    /// Returns how many were removed.
    async fn remove_dead_owners(&self) -> Result<usize, EngineError> {
        let filters = HashMap::from([("label", vec![OWNER_LABEL])]);
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        let containers = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(engine_error("listing containers"))?;
        let mut removed = 0;
        for container in containers {
            let owner = container
                .labels
                .as_ref()
                .and_then(|labels| labels.get(OWNER_LABEL));
            let (Some(id), Some(owner)) = (container.id.as_deref(), owner) else {
                continue;
            };
            if owner::is_alive(owner) {
                continue;
            }
            if self.remove(id).await.is_ok() {
                removed += 1;
            }
        }
        self.remove_leftover_volumes().await?;
        Ok(removed)
    }

    /// Removes the scratch volumes of dead owners that no container holds any more (removing a
    /// container removes its volumes; this is for an engine that lost track of that, e.g. a
    /// container removed without `v`). A volume still in use is left alone by the engine.
    async fn remove_leftover_volumes(&self) -> Result<(), EngineError> {
        let filters = HashMap::from([("label", vec![OWNER_LABEL])]);
        let options = ListVolumesOptionsBuilder::new().filters(&filters).build();
        let volumes = self
            .docker
            .list_volumes(Some(options))
            .await
            .map_err(engine_error("listing volumes"))?;
        for volume in volumes.volumes.unwrap_or_default() {
            if volume
                .labels
                .get(OWNER_LABEL)
                .is_some_and(|owner| !owner::is_alive(owner))
            {
                // Best effort: in use or already gone is fine.
                let _ = self
                    .docker
                    .remove_volume(&volume.name, None::<RemoveVolumeOptions>)
                    .await;
            }
        }
        Ok(())
    }

    async fn remove(&self, id: &str) -> Result<(), bollard::errors::Error> {
        let options = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        match self.docker.remove_container(id, Some(options)).await {
            // Already gone (e.g. removed by a cleanup racing us): nothing left behind.
            Err(error) if is_not_found(&error) => Ok(()),
            result => result,
        }
    }
}

/// Makes sure sealroom's fetch network exists as `fetch_network` describes it and its firewall
/// rules are in place; once per process (an error is tried again next time).
async fn ensure_fetch_network(docker: &Docker) -> Result<(), EngineError> {
    static READY: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    READY
        .get_or_try_init(|| async {
            let network = existing_or_created_fetch_network(docker).await?;
            fetch_network::check_settings(&network)?;
            tokio::task::spawn_blocking(fetch_network::firewall)
                .await
                .unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic()))
        })
        .await
        .map(|_| ())
}

/// The fetch network's settings, creating it first when the engine has none of that name.
async fn existing_or_created_fetch_network(
    docker: &Docker,
) -> Result<fetch_network::NetworkSettings, EngineError> {
    if let Some(network) = inspect_fetch_network(docker).await? {
        return Ok(network);
    }
    let wanted = fetch_network::NetworkSettings::wanted();
    let request = bollard::models::NetworkCreateRequest {
        name: fetch_network::NAME.to_string(),
        driver: wanted.driver,
        internal: Some(wanted.internal),
        attachable: Some(false),
        enable_ipv6: Some(wanted.enable_ipv6),
        options: Some(wanted.options),
        labels: Some(wanted.labels),
        ..Default::default()
    };
    let created = docker.create_network(request).await;
    // Another sealroom process may have made it first (the engine refuses a second network on
    // the same bridge name): use theirs.
    match inspect_fetch_network(docker).await? {
        Some(network) => Ok(network),
        None => Err(fetch_network::refused(match created {
            Err(error) => format!(
                "creating the engine network `{}`: {error}",
                fetch_network::NAME
            ),
            Ok(_) => format!(
                "the engine network `{}` was created, but is not there",
                fetch_network::NAME
            ),
        })),
    }
}

async fn inspect_fetch_network(
    docker: &Docker,
) -> Result<Option<fetch_network::NetworkSettings>, EngineError> {
    match docker.inspect_network(fetch_network::NAME, None).await {
        Ok(network) => Ok(Some(fetch_network::NetworkSettings {
            driver: network.driver,
            options: network.options.unwrap_or_default(),
            labels: network.labels.unwrap_or_default(),
            enable_ipv6: network.enable_ipv6.unwrap_or(false),
            internal: network.internal.unwrap_or(false),
        })),
        Err(error) if is_not_found(&error) => Ok(None),
        Err(error) => Err(fetch_network::refused(format!(
            "inspecting the engine network `{}`: {error}",
            fetch_network::NAME
        ))),
    }
}

/// A scratch directory: an anonymous volume of the engine's `local` driver that is a tmpfs,
/// removed with the container. Not the engine's own tmpfs mounts: those are `noexec` unless told
/// otherwise and take the mode of the directory the image has at that path (a `/tmp` of 0755
/// would be root's alone); a volume created empty (`no_copy`) keeps `mode=1777`.
fn scratch_mount(
    target: &str,
    size_bytes: u64,
    options: &str,
    labels: &HashMap<String, String>,
) -> Mount {
    let options = HashMap::from([
        ("type".to_string(), "tmpfs".to_string()),
        ("device".to_string(), "tmpfs".to_string()),
        ("o".to_string(), format!("size={size_bytes},{options}")),
    ]);
    Mount {
        target: Some(target.to_string()),
        typ: Some(MountType::VOLUME),
        volume_options: Some(MountVolumeOptions {
            no_copy: Some(true),
            labels: Some(labels.clone()),
            driver_config: Some(MountVolumeOptionsDriverConfig {
                name: Some("local".to_string()),
                options: Some(options),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

impl Engine for DockerEngine {
    async fn run(
        &self,
        request: &StepRequest,
        cancel: &CancellationToken,
    ) -> Result<StepOutcome, SandboxError> {
        if request.record.network == Network::Fetch {
            ensure_fetch_network(&self.docker).await?;
        }
        let options = CreateContainerOptionsBuilder::new().build();
        let created = self
            .docker
            .create_container(Some(options), Self::container_body(request))
            .await
            .map_err(|error| match error {
                error if is_not_found(&error) => SandboxError::Engine(EngineError::ImageMissing {
                    image: request.image.clone(),
                }),
                error => SandboxError::Step {
                    step: request.step.clone(),
                    action: "creating the container",
                    detail: error.to_string(),
                },
            })?;
        // Removal below runs on every path: finished, failed, timed out, or cancelled mid-step.
        let timeout = std::time::Duration::from_millis(request.record.limits.timeout_ms);
        let outcome = tokio::select! {
            outcome = tokio::time::timeout(timeout, self.start_and_wait(&created.id, request)) => match outcome {
                Ok(outcome) => outcome,
                Err(_elapsed) => Err(SandboxError::TimedOut { step: request.step.clone(), limit: timeout }),
            },
            () = cancel.cancelled() => Err(SandboxError::Cancelled { step: request.step.clone() }),
        };
        let outcome = match outcome {
            Ok(outcome) if !outcome.succeeded() && self.was_oom_killed(&created.id).await => {
                Err(SandboxError::OutOfMemory {
                    step: request.step.clone(),
                    limit: ByteSize(request.record.limits.memory_bytes),
                })
            }
            outcome => outcome,
        };
        let removed = self.remove(&created.id).await;
        let outcome = outcome?;
        removed.map_err(|error| SandboxError::Step {
            step: request.step.clone(),
            action: "removing the container",
            detail: error.to_string(),
        })?;
        Ok(outcome)
    }

    async fn image_id(&self, reference: &str) -> Result<Option<String>, EngineError> {
        match self.docker.inspect_image(reference).await {
            Ok(inspected) => Ok(inspected.id),
            Err(error) if is_not_found(&error) => Ok(None),
            Err(error) => Err(engine_error("inspecting an image")(error)),
        }
    }

    async fn load(&self, archive: ArchiveStream) -> Result<(), EngineError> {
        let options = bollard::query_parameters::ImportImageOptions {
            quiet: true,
            ..Default::default()
        };
        let refused = engine_error("loading an image");
        let mut progress = self.docker.import_image_stream(options, archive, None);
        while let Some(item) = progress.next().await {
            let info = item.map_err(&refused)?;
            if let Some(message) = info.error_detail.and_then(|detail| detail.message) {
                return Err(EngineError::Refused {
                    action: "loading an image".to_string(),
                    detail: message,
                });
            }
            if let Some(line) = info.stream.as_deref() {
                tracing::debug!("engine: {}", line.trim_end());
            }
        }
        Ok(())
    }

    async fn save(&self, id: &str, dest: &std::path::Path) -> Result<(), EngineError> {
        let write_error = |error: std::io::Error| EngineError::Refused {
            action: "saving an image".to_string(),
            detail: format!("writing {}: {error}", dest.display()),
        };
        let mut file = tokio::fs::File::create(dest).await.map_err(write_error)?;
        let mut stream = self.docker.export_image(id);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(engine_error("saving an image"))?;
            tokio::io::AsyncWriteExt::write_all(&mut file, &chunk)
                .await
                .map_err(write_error)?;
        }
        tokio::io::AsyncWriteExt::flush(&mut file)
            .await
            .map_err(write_error)
    }

    async fn tag(&self, id: &str, repository: &str, tag: &str) -> Result<(), EngineError> {
        let options = bollard::query_parameters::TagImageOptions {
            repo: Some(repository.to_string()),
            tag: Some(tag.to_string()),
        };
        self.docker
            .tag_image(id, Some(options))
            .await
            .map_err(engine_error("tagging an image"))
    }

    async fn remove_leftovers(&self) -> Result<usize, EngineError> {
        self.remove_dead_owners().await
    }
}

/// The Docker engine, connected on first use, so a build whose every step is cached (and whose
/// bases are in the store) never asks the engine anything. Before its first container it does
/// what a build must do: remove the leftovers of killed builds; and before the first container
/// from each image, it checks that the engine holds that image.
#[derive(Default)]
pub struct LazyDocker {
    docker: tokio::sync::OnceCell<DockerEngine>,
    cleaned: tokio::sync::OnceCell<()>,
    /// The images known to be present.
    checked: std::sync::Mutex<std::collections::HashSet<crate::digest::ImageDigest>>,
}

impl LazyDocker {
    pub fn new() -> Self {
        Self::default()
    }

    async fn engine(&self) -> Result<&DockerEngine, EngineError> {
        self.docker.get_or_try_init(DockerEngine::connect).await
    }

    /// Gets ready to run a container from `image`: the leftovers of killed builds are removed
    /// (once), and the image is checked (once). Before each step this happens by itself; a
    /// command that will certainly run steps calls it first, to fail before any other work.
    pub async fn prepare(&self, image: &PinnedImage) -> Result<(), EngineError> {
        let engine = self.engine().await?;
        self.cleaned
            .get_or_try_init(|| async {
                let leftovers = engine.remove_leftovers().await?;
                if leftovers > 0 {
                    tracing::warn!(
                        "removed {leftovers} container(s) left behind by a sealroom process that is no longer running"
                    );
                }
                Ok::<_, EngineError>(())
            })
            .await?;
        if self.is_checked(image) {
            return Ok(());
        }
        super::require_image(engine, image).await?;
        self.checked
            .lock()
            .expect("not poisoned")
            .insert(image.digest);
        Ok(())
    }

    fn is_checked(&self, image: &PinnedImage) -> bool {
        self.checked
            .lock()
            .expect("not poisoned")
            .contains(&image.digest)
    }
}

impl Engine for LazyDocker {
    async fn run(
        &self,
        request: &StepRequest,
        cancel: &CancellationToken,
    ) -> Result<StepOutcome, SandboxError> {
        self.prepare(&request.image).await?;
        self.engine().await?.run(request, cancel).await
    }

    async fn image_id(&self, reference: &str) -> Result<Option<String>, EngineError> {
        self.engine().await?.image_id(reference).await
    }

    async fn load(&self, archive: ArchiveStream) -> Result<(), EngineError> {
        self.engine().await?.load(archive).await
    }

    async fn save(&self, id: &str, dest: &std::path::Path) -> Result<(), EngineError> {
        self.engine().await?.save(id, dest).await
    }

    async fn tag(&self, id: &str, repository: &str, tag: &str) -> Result<(), EngineError> {
        self.engine().await?.tag(id, repository, tag).await
    }

    async fn remove_leftovers(&self) -> Result<usize, EngineError> {
        self.engine().await?.remove_leftovers().await
    }
}

/// Who made a container: this machine's process, told apart from a later process that reuses
/// its pid by the process's start time (field 22 of `/proc/<pid>/stat`).
mod owner {
    /// `<pid>:<start time>` of this process.
    pub fn this_process() -> String {
        let pid = std::process::id();
        format!("{pid}:{}", start_time(pid).unwrap_or_default())
    }

    /// Whether the process an owner label names is still running.
    pub fn is_alive(owner: &str) -> bool {
        let Some((pid, started)) = owner.split_once(':') else {
            return false;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            return false;
        };
        start_time(pid).is_some_and(|now| now == started)
    }

    fn start_time(pid: u32) -> Option<String> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name (field 2) is in parentheses and may contain spaces.
        let after_name = &stat[stat.rfind(')')? + 1..];
        after_name.split_whitespace().nth(19).map(str::to_string)
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn this_process_is_alive_and_a_stale_label_is_not() {
            assert!(super::is_alive(&super::this_process()));
            let pid = std::process::id();
            assert!(
                !super::is_alive(&format!("{pid}:0")),
                "same pid, other start time"
            );
            assert!(!super::is_alive("not-a-label"));
        }
    }
}

/// A step's log as it streams: printed to stderr line by line with the step's name in front,
/// its last lines kept for error messages, and its first [`LOG_KEPT_BYTES`] written to the
/// request's log file and hashed (the digest names exactly the bytes kept). A line longer than
/// [`LOG_LINE_BYTES`] is printed in pieces, so a step that never writes a newline cannot make
/// sealroom hold its output in memory.
struct StepLog {
    prefix: String,
    pending: Vec<u8>,
    tail: VecDeque<String>,
    kept: Option<std::io::BufWriter<std::fs::File>>,
    kept_bytes: u64,
    hasher: Sha256,
}

/// How much of a step's log is kept in the store.
pub const LOG_KEPT_BYTES: u64 = 16 * 1024 * 1024;
/// The longest line printed at once.
const LOG_LINE_BYTES: usize = 64 * 1024;
/// What the kept log ends with when the step wrote more.
const LOG_CUT_NOTE: &[u8] = b"\n[sealroom: the log went on past 16MiB; the rest was not kept]\n";

impl StepLog {
    /// `file`: where the kept part goes (`None`: nowhere, only hashed).
    fn new(step: &str, file: Option<std::fs::File>) -> Self {
        Self {
            prefix: format!("[{step}] "),
            pending: Vec::new(),
            tail: VecDeque::with_capacity(LOG_TAIL_LINES),
            kept: file.map(std::io::BufWriter::new),
            kept_bytes: 0,
            hasher: Sha256::new(),
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        self.keep(bytes);
        for &byte in bytes {
            if byte == b'\n' {
                self.finish_line();
            } else {
                self.pending.push(byte);
                if self.pending.len() >= LOG_LINE_BYTES {
                    self.finish_line();
                }
            }
        }
    }

    /// Hashes and writes what fits under the limit, then the note once.
    fn keep(&mut self, bytes: &[u8]) {
        if self.kept_bytes > LOG_KEPT_BYTES {
            return;
        }
        let room = usize::try_from(LOG_KEPT_BYTES - self.kept_bytes).unwrap_or(usize::MAX);
        let (kept, cut) = if bytes.len() > room {
            (&bytes[..room], true)
        } else {
            (bytes, false)
        };
        let mut write = |part: &[u8]| {
            self.hasher.update(part);
            if let Some(file) = &mut self.kept
                && std::io::Write::write_all(file, part).is_err()
            {
                // A log that cannot be kept is not a failed step: the digest still names
                // the bytes, and the store refuses a file that does not match it.
                self.kept = None;
            }
        };
        write(kept);
        self.kept_bytes += kept.len() as u64;
        if cut {
            write(LOG_CUT_NOTE);
            self.kept_bytes = LOG_KEPT_BYTES + 1;
        }
    }

    fn finish_line(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let line = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        let mut stderr = std::io::stderr().lock();
        // A closed stderr must not fail the build.
        let _ = writeln!(stderr, "{}{line}", self.prefix);
        if self.tail.len() == LOG_TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(line);
    }

    /// The digest of the kept bytes, with the file flushed.
    fn finish(&mut self) -> BlobDigest {
        self.finish_line();
        if let Some(file) = &mut self.kept {
            let _ = std::io::Write::flush(file);
        }
        BlobDigest::from_bytes(std::mem::take(&mut self.hasher).finalize().into())
    }
}

#[cfg(test)]
mod tests {
    /// A unix socket that answers one request with `response`; its path.
    async fn engine_answering(dir: &std::path::Path, response: &'static str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let path = dir.join("engine.sock");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 512];
            let n = stream.read(&mut request).await.unwrap();
            assert!(request[..n].starts_with(b"GET /_ping HTTP/1.1\r\n"));
            stream.write_all(response.as_bytes()).await.unwrap();
        });
        path.to_string_lossy().into_owned()
    }

    #[tokio::test]
    async fn the_api_version_comes_from_the_ping_headers() {
        let cases: [(&str, Option<(usize, usize)>); 2] = [
            (
                "HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Length: 2\r\n\r\nOK",
                Some((1, 41)),
            ),
            ("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK", None),
        ];
        for (response, want) in cases {
            let dir = tempfile::tempdir().unwrap();
            let socket = engine_answering(dir.path(), response).await;
            assert_eq!(ping_api_version(&socket).await.unwrap(), want, "{response}");
        }
        let dir = tempfile::tempdir().unwrap();
        let socket = engine_answering(dir.path(), "HTTP/1.1 500 Oops\r\n\r\n").await;
        let error = ping_api_version(&socket).await.unwrap_err();
        assert!(error.to_string().contains("500 Oops"), "{error}");
        let missing = dir.path().join("none.sock");
        assert!(ping_api_version(&missing.to_string_lossy()).await.is_err());
    }

    use super::*;
    use crate::sandbox::InputMount;
    use crate::sandbox::record::{StepDefinition, StepRecord};
    use crate::spec::Limits;

    fn request(network: Network) -> StepRequest {
        let image: PinnedImage = format!("test/image@sha256:{}", "ab".repeat(32))
            .parse()
            .unwrap();
        let tree = format!("sha256:{}", "01".repeat(32)).parse().unwrap();
        let limits = Limits {
            cpus: Some(1.5),
            ..Limits::default()
        };
        let record = StepRecord::new(StepDefinition {
            image: image.digest,
            argv: &["sh".to_string(), "-c".to_string(), "make".to_string()],
            env: std::collections::BTreeMap::from([
                ("B".into(), "2".into()),
                ("A".into(), "1".into()),
            ]),
            workdir: "/build",
            user: "1000:1000",
            network,
            limits: &limits,
            inputs: &[("src".to_string(), tree)],
        });
        StepRequest {
            step: "compile".to_string(),
            build_id: "b".to_string(),
            image,
            record,
            inputs: vec![InputMount {
                name: "src".to_string(),
                host_path: "/host/checkout".into(),
            }],
            out_dir: "/host/out".into(),
            log_path: "/host/log".into(),
        }
    }

    #[test]
    fn the_container_config_is_the_record_and_nothing_else() {
        let request = request(Network::None);
        let record = &request.record;
        let body = DockerEngine::container_body(&request);
        assert_eq!(body.image, Some(record.image.to_string()));
        assert_eq!(body.entrypoint.as_ref(), Some(&record.argv));
        assert_eq!(body.cmd, None);
        assert_eq!(body.env, Some(vec!["A=1".to_string(), "B=2".to_string()]));
        assert_eq!(body.working_dir.as_deref(), Some(record.workdir.as_str()));
        assert_eq!(body.user.as_deref(), Some(record.user.as_str()));
        assert_eq!(body.hostname.as_deref(), Some("sealroom"));
        assert_eq!(body.network_disabled, Some(true));
        let host = body.host_config.unwrap();
        assert_eq!(host.network_mode.as_deref(), Some("none"));
        assert_eq!(host.readonly_rootfs, Some(true));
        assert_eq!(host.cap_drop, Some(vec!["ALL".to_string()]));
        assert_eq!(host.cap_add, Some(Vec::new()));
        assert_eq!(
            host.security_opt,
            Some(vec!["no-new-privileges".to_string()])
        );
        assert_eq!(host.memory, Some(record.limits.memory_bytes as i64));
        assert_eq!(host.memory_swap, host.memory);
        assert_eq!(host.pids_limit, Some(record.limits.pids as i64));
        assert_eq!(host.nano_cpus, Some(1_500_000_000));
        assert_eq!(host.tmpfs, None, "scratch is only what the record says");
        assert_eq!(host.binds, None);
        // One engine mount per record mount, in the record's order, with the record's options.
        let mounts = host.mounts.unwrap();
        let described: Vec<(String, String, String)> = mounts
            .iter()
            .map(|mount| {
                let detail = match mount.typ {
                    Some(MountType::BIND) => format!(
                        "{} {}",
                        mount.source.clone().unwrap(),
                        if mount.read_only == Some(true) {
                            "ro"
                        } else {
                            "rw"
                        }
                    ),
                    Some(MountType::VOLUME) => {
                        let volume = mount.volume_options.clone().unwrap();
                        assert_eq!(volume.no_copy, Some(true));
                        let options = volume.driver_config.unwrap().options.unwrap();
                        format!("{} {}", options["type"], options["o"])
                    }
                    other => panic!("unexpected mount type {other:?}"),
                };
                (
                    mount.target.clone().unwrap(),
                    format!("{:?}", mount.typ.unwrap()),
                    detail,
                )
            })
            .collect();
        let scratch = format!(
            "tmpfs size={},nosuid,nodev,mode=1777",
            record.limits.scratch_bytes
        );
        assert_eq!(
            described,
            [
                ("/build".to_string(), "VOLUME".to_string(), scratch.clone()),
                (
                    "/inputs/src".to_string(),
                    "BIND".to_string(),
                    "/host/checkout ro".to_string()
                ),
                (
                    "/out".to_string(),
                    "BIND".to_string(),
                    "/host/out rw".to_string()
                ),
                ("/tmp".to_string(), "VOLUME".to_string(), scratch),
            ]
        );
    }

    #[test]
    fn the_engine_reads_the_policy_from_the_record() {
        let mut request = request(Network::Host);
        let host_body = DockerEngine::container_body(&request);
        assert_eq!(
            host_body.hostname, None,
            "the host's network comes with its name"
        );
        assert_eq!(host_body.network_disabled, Some(false));
        request.record.policy.no_new_privileges = false;
        request.record.policy.read_only_root = false;
        request.record.policy.cap_add = vec!["NET_RAW"];
        let host = DockerEngine::container_body(&request).host_config.unwrap();
        assert_eq!(host.security_opt, Some(Vec::new()));
        assert_eq!(host.readonly_rootfs, Some(false));
        assert_eq!(host.cap_add, Some(vec!["NET_RAW".to_string()]));
    }

    #[test]
    fn log_keeps_the_last_lines_and_writes_and_hashes_every_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut log = StepLog::new("step", Some(std::fs::File::create(&path).unwrap()));
        let text: String = (0..30).map(|i| format!("line {i}\n")).collect();
        let (first, second) = text.as_bytes().split_at(17);
        log.push(first);
        log.push(second);
        log.push(b"no newline at the end");
        let digest = log.finish();
        assert_eq!(log.tail.len(), LOG_TAIL_LINES);
        assert_eq!(log.tail.front().map(String::as_str), Some("line 11"));
        assert_eq!(
            log.tail.back().map(String::as_str),
            Some("no newline at the end")
        );
        let mut all = text.into_bytes();
        all.extend_from_slice(b"no newline at the end");
        assert_eq!(digest, BlobDigest::of(&all));
        assert_eq!(std::fs::read(&path).unwrap(), all);
    }

    #[test]
    fn a_log_past_the_limit_is_cut_and_a_line_without_newline_is_printed_in_pieces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut log = StepLog::new("step", Some(std::fs::File::create(&path).unwrap()));
        let chunk = vec![b'x'; 1024 * 1024];
        for _ in 0..(LOG_KEPT_BYTES / (1024 * 1024) + 2) {
            log.push(&chunk);
            assert!(
                log.pending.len() < LOG_LINE_BYTES,
                "a line is never held whole"
            );
        }
        let digest = log.finish();
        let kept = std::fs::read(&path).unwrap();
        assert_eq!(
            kept.len() as u64,
            LOG_KEPT_BYTES + LOG_CUT_NOTE.len() as u64
        );
        assert!(kept.ends_with(LOG_CUT_NOTE));
        assert_eq!(
            digest,
            BlobDigest::of(&kept),
            "the digest names the kept bytes"
        );
    }
}
