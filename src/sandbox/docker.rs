//! Steps in Docker containers, driven through bollard.
//!
//! Each step gets a fresh container from the pinned image id (never a tag, so nothing is pulled
//! or resolved by name), with networking off (`network_mode = none`: only `lo`), a read-only root
//! filesystem, the scratch directories `/tmp` and `/build` (tmpfs), all capabilities dropped,
//! `no-new-privileges`, an unprivileged user, inputs bind-mounted read-only and one writable bind
//! mount at `/out`, a `/dev/shm` of `limits.shm_bytes`, a private IPC namespace, and no engine
//! log (`log_config = none`: sealroom reads the output by attaching before the start, so the
//! engine keeps nothing on disk). Its output is streamed to stderr, each line prefixed with the
//! step's name, control characters escaped, at most [`LOG_PRINTED_BYTES`] per step. The
//! container is removed on every path out of `run`, success or error; its labels (owner and
//! deadline) let any later sealroom command remove it if this process dies first.
//!
//! Files are read out of an image (`read_image_files`) from a container that is created and
//! never started (network off, the same labels), through the engine's archive endpoint, and
//! removed the same way on every path out.
//!
//! The engine is the one `DOCKER_HOST` names ([`EngineLocation`]): on a unix socket it shares
//! this machine's filesystem and gets the bind mounts above; over TCP (TLS or not) or ssh it is
//! remote, and a step's inputs and `/out` are volumes instead, filled and read through the
//! archive endpoint of a container that holds them and is never started (`run_staged`, with
//! `super::transfer` doing the tar work). The step's own container config is the same but for
//! those mounts: the record, the hardening and the limits do not change.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::Write;

use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, HostConfig, HostConfigLogConfig, Mount, MountType, MountVolumeOptions,
    MountVolumeOptionsDriverConfig,
};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder,
    DownloadFromContainerOptionsBuilder, ListContainersOptionsBuilder, ListVolumesOptionsBuilder,
    RemoveContainerOptionsBuilder, RemoveVolumeOptions,
};
use futures_util::StreamExt;
use sha2::{Digest as _, Sha256};
use tokio_util::sync::CancellationToken;

use super::fetch_network;
use super::record::MountRecord;
use super::{
    ArchiveStream, BUILD_LABEL, DEADLINE_LABEL, Engine, EngineError, EngineImage,
    MAX_IMAGE_FILE_BYTES, MAX_LINK_HOPS, Network, OWNER_LABEL, STEP_LABEL, SandboxError,
    StepOutcome, StepRequest, resolve_link,
};
use crate::digest::BlobDigest;
use crate::spec::{ByteSize, PinnedImage};
pub use owner::{Owner, OwnerLabelError};

/// How many of the last log lines a failure report shows.
const LOG_TAIL_LINES: usize = 20;

/// The build and step labels of a container made only to read files from an image: no build
/// or step has this name (a step's name cannot hold a space).
pub const READ_FILES_LABEL: &str = "sealroom read-image-files";

/// How long a container that reads files from an image is left to the process that made it
/// before any sealroom command may remove it; that process removes it as soon as it has read.
const READ_FILES_DEADLINE: std::time::Duration = std::time::Duration::from_secs(600);

/// What the archive of one path in a container holds first.
enum ArchivedPath {
    /// A regular file, with its bytes.
    File(Vec<u8>),
    /// A symlink, with its target as written.
    Link(String),
    /// Nothing there, or a directory, device, fifo or socket.
    Absent,
}

/// Where the engine runs, as `DOCKER_HOST` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineLocation {
    /// A unix socket on this machine: the engine shares sealroom's filesystem, and a step's
    /// inputs and `/out` are bind mounts of sealroom's directories.
    Local,
    /// Over TCP (with TLS or without) or ssh, at `host`: the engine's machine does not see
    /// sealroom's paths, so a step's inputs and `/out` are volumes, filled and read through the
    /// engine's archive endpoint ([`super::transfer`]).
    Remote { host: String },
}

/// The engine's socket when `DOCKER_HOST` names none (bollard's default too).
const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// How long one request to the engine may take, in seconds (bollard's default).
const REQUEST_TIMEOUT_SECONDS: u64 = 120;

/// Connects to the engine named by `DOCKER_HOST` (else the local socket) and agrees on an API
/// version both sides speak, so older daemons (e.g. Debian's 20.10) work. On a unix socket the
/// version comes from `GET /_ping`'s `API-Version` header, as the docker CLI does it (under a
/// millisecond; `GET /version`, which bollard asks, takes the engine several); elsewhere
/// bollard negotiates. As the docker CLI reads them: `tcp://` is plain HTTP unless
/// `DOCKER_TLS_VERIFY` is set (to anything but the empty string), then TLS with the client
/// certificate and CA of `DOCKER_CERT_PATH` (default `~/.docker`); `https://` is always TLS;
/// `ssh://[user@]host` runs `docker system dial-stdio` there through the `ssh` client.
async fn connect() -> Result<(Docker, EngineLocation), EngineError> {
    let host = std::env::var("DOCKER_HOST")
        .ok()
        .filter(|host| !host.is_empty())
        .unwrap_or_else(|| DEFAULT_HOST.to_string());
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
        let docker = Docker::connect_with_unix(&host, REQUEST_TIMEOUT_SECONDS, &version).map_err(
            |error| EngineError::Unreachable {
                detail: format!("{socket}: {}", error_chain(&error)),
            },
        )?;
        return Ok((docker, EngineLocation::Local));
    }
    let version = bollard::API_DEFAULT_VERSION;
    let mut tls_dir = None;
    let mut no_client_certificate = false;
    let docker = if host.starts_with("tcp://") && !tls_verify() {
        Docker::connect_with_http(&host, REQUEST_TIMEOUT_SECONDS, version)
    } else if host.starts_with("tcp://") || host.starts_with("https://") {
        let files = TlsFiles::from_env(&host)?;
        no_client_certificate = !files.has_client_certificate;
        tls_dir = Some(files.dir.clone());
        install_tls_provider();
        Docker::connect_with_ssl(
            &host,
            &files.dir.join("key.pem"),
            &files.dir.join("cert.pem"),
            &files.dir.join("ca.pem"),
            REQUEST_TIMEOUT_SECONDS,
            version,
        )
    } else if let Some(destination) = host.strip_prefix("ssh://") {
        let authority = destination.split('/').next().unwrap_or_default();
        let machine = authority
            .rsplit_once('@')
            .map_or(authority, |(_, machine)| machine);
        if machine.contains(':') {
            // bollard hands `user@host:port` to ssh as a host name.
            return Err(EngineError::Unreachable {
                detail: format!(
                    "DOCKER_HOST is `{host}`: the ssh transport (bollard 0.21's) cannot take a port\n  hint: give the host a name in ~/.ssh/config (`Host NAME`, `HostName …`, `Port …`) and set DOCKER_HOST=ssh://USER@NAME"
                ),
            });
        }
        Docker::connect_with_ssh(&host, REQUEST_TIMEOUT_SECONDS, version, None)
    } else {
        return Err(EngineError::Unreachable {
            detail: format!(
                "DOCKER_HOST is `{host}`: sealroom reaches an engine at unix://PATH, tcp://HOST:PORT (TLS when DOCKER_TLS_VERIFY is set), https://HOST:PORT or ssh://[USER@]HOST"
            ),
        });
    };
    let unreachable = |error: bollard::errors::Error| match &tls_dir {
        Some(dir) if is_tls_error(&error) => {
            let mut detail = error_chain(&error);
            if no_client_certificate {
                detail.push_str(
                    " (no client certificate was offered: there is no cert.pem and key.pem)",
                );
            }
            EngineError::Tls {
                host: host.clone(),
                cert_path: dir.display().to_string(),
                detail,
            }
        }
        _ => EngineError::Unreachable {
            detail: format!("{host}: {}", error_chain(&error)),
        },
    };
    let docker = docker.map_err(unreachable)?;
    let docker = docker.negotiate_version().await.map_err(unreachable)?;
    Ok((docker, EngineLocation::Remote { host }))
}

/// Whether `DOCKER_TLS_VERIFY` asks for TLS: set, and not empty (as the docker CLI reads it).
fn tls_verify() -> bool {
    std::env::var_os("DOCKER_TLS_VERIFY").is_some_and(|value| !value.is_empty())
}

/// The files a TLS connection is made with: `ca.pem` (which the engine's certificate must be
/// signed by), and `cert.pem` with `key.pem` (the client certificate), in `DOCKER_CERT_PATH`
/// (else `~/.docker`).
struct TlsFiles {
    dir: std::path::PathBuf,
    /// Both `cert.pem` and `key.pem` are there. Neither is not an error here: the connection
    /// offers no certificate, and an engine that requires one says so in its own words.
    has_client_certificate: bool,
}

impl TlsFiles {
    fn from_env(host: &str) -> Result<Self, EngineError> {
        let dir = match std::env::var_os("DOCKER_CERT_PATH").filter(|dir| !dir.is_empty()) {
            Some(dir) => std::path::PathBuf::from(dir),
            None => match std::env::var_os("HOME").filter(|home| !home.is_empty()) {
                Some(home) => std::path::Path::new(&home).join(".docker"),
                None => {
                    return Err(EngineError::Unreachable {
                        detail: format!(
                            "{host}: TLS needs DOCKER_CERT_PATH (the directory with ca.pem, cert.pem and key.pem), and neither it nor HOME is set"
                        ),
                    });
                }
            },
        };
        let ca = dir.join("ca.pem");
        if let Err(error) = std::fs::metadata(&ca) {
            return Err(EngineError::Unreachable {
                detail: format!(
                    "{host}: the CA certificate that the engine's certificate is verified against, {}, cannot be read: {error}\n  hint: point DOCKER_CERT_PATH at the directory with ca.pem, cert.pem and key.pem",
                    ca.display()
                ),
            });
        }
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let has_client_certificate = match (cert.exists(), key.exists()) {
            (true, true) => true,
            (false, false) => false,
            (present, _) => {
                let (found, missing) = if present {
                    (&cert, &key)
                } else {
                    (&key, &cert)
                };
                return Err(EngineError::Unreachable {
                    detail: format!(
                        "{host}: the client certificate is half there: {} exists, {} does not",
                        found.display(),
                        missing.display()
                    ),
                });
            }
        };
        Ok(TlsFiles {
            dir,
            has_client_certificate,
        })
    }
}

/// Whether the TLS layer (rustls: the engine's alert, or its certificate refused here) is
/// somewhere among `error`'s causes.
fn is_tls_error(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(error) = current {
        if error.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        // io::Error's source() skips the error it wraps: look inside.
        current = match error
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => error.source(),
        };
    }
    false
}

/// rustls's process-wide crypto provider (ring), which bollard's TLS client uses to load the
/// client key; installed once (an error only says one is installed already).
fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// `error` and every error below it, joined by `: ` (a message repeated by its source once):
/// a TLS refusal is several layers down (the engine's alert, inside rustls's error, inside
/// hyper's), and its words are what the user needs.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut last = text.clone();
    let mut source = error.source();
    while let Some(cause) = source {
        let message = cause.to_string();
        if !last.contains(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        last = message;
        source = cause.source();
    }
    text
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
            detail: error_chain(&other),
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
    location: EngineLocation,
}

/// The volumes that stand in for a step's bind mounts on a remote engine: one per input (by
/// the input's target) and one for `/out`.
struct StagedVolumes {
    inputs: Vec<(String, String)>,
    out: String,
}

impl StagedVolumes {
    fn input(&self, target: &str) -> &str {
        self.inputs
            .iter()
            .find(|(input, _)| input == target)
            .map(|(_, volume)| volume.as_str())
            .expect("every input mount of a record has a volume")
    }
}

/// How long past a step's timeout its volumes, and the container that fills and reads them,
/// are left to the build that made them (which removes them as soon as the step's `/out` is
/// back) before any other sealroom command may: room for the uploads and the download.
const STAGING_ALLOWANCE: std::time::Duration = std::time::Duration::from_secs(3600);

impl DockerEngine {
    pub async fn connect() -> Result<Self, EngineError> {
        let (docker, location) = connect().await?;
        Ok(Self { docker, location })
    }

    /// Where the engine runs.
    pub fn location(&self) -> &EngineLocation {
        &self.location
    }

    /// The container config of `request`: exactly its record, plus the host paths (or, on a
    /// remote engine, the volumes) behind its mounts and the labels that let a later build find
    /// leftovers.
    fn container_body(
        request: &StepRequest,
        staged: Option<&StagedVolumes>,
    ) -> ContainerCreateBody {
        let record = &request.record;
        let policy = &record.policy;
        let deadline = owner::deadline(
            owner::unix_now(),
            std::time::Duration::from_millis(record.limits.timeout_ms),
        );
        let labels = HashMap::from([
            (BUILD_LABEL.to_string(), request.build_id.clone()),
            (STEP_LABEL.to_string(), request.step.clone()),
            (OWNER_LABEL.to_string(), Owner::this_process().to_label()),
            (DEADLINE_LABEL.to_string(), deadline.to_string()),
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
            .map(|mount| match (mount, staged) {
                (MountRecord::Input { target, .. }, None) => {
                    let source = request
                        .input_path(target)
                        .expect("every input mount of a record has a host directory");
                    bind(target, source, true)
                }
                (MountRecord::Input { target, .. }, Some(staged)) => {
                    volume_mount(target, staged.input(target), true)
                }
                (MountRecord::Output { target }, None) => bind(target, &request.out_dir, false),
                (MountRecord::Output { target }, Some(staged)) => {
                    volume_mount(target, &staged.out, false)
                }
                (
                    MountRecord::Scratch {
                        target,
                        size_bytes,
                        options,
                    },
                    _,
                ) => scratch_mount(target, *size_bytes, options, &labels),
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
                shm_size: Some(i64::try_from(limits.shm_bytes).unwrap_or(i64::MAX)),
                // Its own IPC namespace: `/dev/shm` and `/dev/mqueue` are the container's alone.
                ipc_mode: Some("private".to_string()),
                // sealroom attaches to read the output; the engine keeps no copy of it (a
                // json-file log would grow on the engine's disk as long as the step writes).
                log_config: Some(HostConfigLogConfig {
                    typ: Some("none".to_string()),
                    config: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// The config of a container that is only created, never started, so that files can be
    /// copied out of `image_id`: no network, no log, and the labels that let a later command
    /// remove it if this process dies before it does. `Cmd` is there because the engine
    /// requires one; it never runs.
    fn read_files_body(image_id: &str) -> ContainerCreateBody {
        let deadline = owner::deadline(owner::unix_now(), READ_FILES_DEADLINE);
        ContainerCreateBody {
            image: Some(image_id.to_string()),
            cmd: Some(vec!["/nonexistent".to_string()]),
            labels: Some(HashMap::from([
                (BUILD_LABEL.to_string(), READ_FILES_LABEL.to_string()),
                (STEP_LABEL.to_string(), READ_FILES_LABEL.to_string()),
                (OWNER_LABEL.to_string(), Owner::this_process().to_label()),
                (DEADLINE_LABEL.to_string(), deadline.to_string()),
            ])),
            network_disabled: Some(true),
            host_config: Some(HostConfig {
                network_mode: Some(Network::None.mode().to_string()),
                log_config: Some(HostConfigLogConfig {
                    typ: Some("none".to_string()),
                    config: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// The regular file at `path` in the container `id` (of `image_id`), its symlinks followed
    /// inside the image; `None` when there is none.
    async fn read_file_following_links(
        &self,
        id: &str,
        image_id: &str,
        path: &str,
    ) -> Result<Option<Vec<u8>>, EngineError> {
        // Made absolute and free of `..` first, so that every path asked of the engine is one
        // inside the image's root.
        let mut current = resolve_link("/", path);
        for _ in 0..=MAX_LINK_HOPS {
            match self.archived_path(id, image_id, &current).await? {
                ArchivedPath::File(bytes) => return Ok(Some(bytes)),
                ArchivedPath::Absent => return Ok(None),
                ArchivedPath::Link(target) => current = resolve_link(&current, &target),
            }
        }
        Err(EngineError::ImageFileLinkLoop {
            image: image_id.to_string(),
            path: path.to_string(),
        })
    }

    /// The first entry of the engine's tar archive of `path` in container `id`: the path
    /// itself (the engine resolves symlinks in the directories above it inside the container's
    /// root, not the last one). Reading stops as soon as the first header shows a directory
    /// (whose archive is everything below it) or a file over [`MAX_IMAGE_FILE_BYTES`].
    async fn archived_path(
        &self,
        id: &str,
        image_id: &str,
        path: &str,
    ) -> Result<ArchivedPath, EngineError> {
        /// Room for the tar headers (a PAX header may come first) and padding around the file.
        const TAR_OVERHEAD: u64 = 1024 * 1024;
        let too_large = || EngineError::ImageFileTooLarge {
            image: image_id.to_string(),
            path: path.to_string(),
            limit: MAX_IMAGE_FILE_BYTES,
        };
        let action = format!("reading `{path}` of image {image_id}");
        let options = DownloadFromContainerOptionsBuilder::new()
            .path(path)
            .build();
        let mut stream = self.docker.download_from_container(id, Some(options));
        let mut archive = Vec::new();
        let mut first_header_seen = false;
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(error) if is_not_found(&error) => return Ok(ArchivedPath::Absent),
                Err(error) => return Err(engine_error(&action)(error)),
            };
            archive.extend_from_slice(&chunk);
            if !first_header_seen && archive.len() >= 512 {
                first_header_seen = true;
                let header = tar::Header::from_byte_slice(&archive[..512]);
                match header.entry_type() {
                    tar::EntryType::Directory => return Ok(ArchivedPath::Absent),
                    tar::EntryType::Regular | tar::EntryType::Continuous
                        if header.size().is_ok_and(|size| size > MAX_IMAGE_FILE_BYTES) =>
                    {
                        return Err(too_large());
                    }
                    _ => {}
                }
            }
            if archive.len() as u64 > MAX_IMAGE_FILE_BYTES + TAR_OVERHEAD {
                return Err(too_large());
            }
        }
        let unreadable = |detail: String| EngineError::Refused {
            action: action.clone(),
            detail: format!("the engine's archive cannot be read: {detail}"),
        };
        let mut entries = tar::Archive::new(archive.as_slice());
        let mut entries = entries
            .entries()
            .map_err(|error| unreadable(error.to_string()))?;
        let Some(entry) = entries.next() else {
            return Err(unreadable("it holds no entry".to_string()));
        };
        let mut entry = entry.map_err(|error| unreadable(error.to_string()))?;
        match entry.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if entry.size() > MAX_IMAGE_FILE_BYTES {
                    return Err(too_large());
                }
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(&mut entry, &mut bytes)
                    .map_err(|error| unreadable(error.to_string()))?;
                Ok(ArchivedPath::File(bytes))
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(|error| unreadable(error.to_string()))?
                    .ok_or_else(|| unreadable(format!("the symlink `{path}` has no target")))?;
                Ok(ArchivedPath::Link(target.to_string_lossy().into_owned()))
            }
            _ => Ok(ArchivedPath::Absent),
        }
    }

    /// Attaches to the created container (before the start, so no output is missed), starts it,
    /// streams its output and waits for its exit status.
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
        let attach = AttachContainerOptionsBuilder::new()
            .stream(true)
            .stdout(true)
            .stderr(true)
            .build();
        // `_input` stays open until the end: the step gets no stdin, but closing one half of
        // the connection early is not something every engine version takes well.
        let bollard::container::AttachContainerResults {
            output: mut logs,
            input: _input,
        } = self
            .docker
            .attach_container(id, Some(attach))
            .await
            .map_err(engine_error("attaching to the container"))?;
        self.docker
            .start_container(id, None)
            .await
            .map_err(engine_error("starting the container"))?;

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
            log_tail: log.tail_lines(),
            log_digest,
            image_files: None,
        })
    }

    /// The request's `read_image_files` out of the exited container `id`; `None` (said at debug
    /// level) when one cannot be read.
    async fn read_files_of(
        &self,
        id: &str,
        request: &StepRequest,
    ) -> Option<BTreeMap<String, Vec<u8>>> {
        let image_id = request.record.image.to_string();
        let mut files = BTreeMap::new();
        for path in &request.read_image_files {
            match self.read_file_following_links(id, &image_id, path).await {
                Ok(Some(bytes)) => {
                    files.insert(path.to_string(), bytes);
                }
                Ok(None) => {}
                Err(error) => {
                    tracing::debug!(
                        "step {}: cannot read {path} of its image: {error}",
                        request.step
                    );
                    return None;
                }
            }
        }
        Some(files)
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

    /// Removes the containers sealroom left behind: those past their deadline (whoever made
    /// them), and those whose owner was this host's, in this PID namespace, and is no longer
    /// running (a build killed with SIGKILL, a crash). Containers of running builds, and of
    /// builds in other PID namespaces or on other hosts, are left alone until their deadline;
    /// so is a container whose labels cannot be read. One list call (every sealroom container
    /// has the build label), then one removal per leftover. Returns how many were removed.
    async fn remove_dead_owners(&self) -> Result<usize, EngineError> {
        let filters = HashMap::from([("label", vec![BUILD_LABEL])]);
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        let containers = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(engine_error("listing containers"))?;
        let here = owner::Here::now();
        let mut removed = 0;
        for container in containers {
            let (Some(id), Some(labels)) = (container.id.as_deref(), container.labels.as_ref())
            else {
                continue;
            };
            let verdict = here.verdict(labels);
            if verdict == owner::Verdict::Keep {
                continue;
            }
            tracing::debug!("removing container {id}: {verdict:?}");
            if self.remove(id).await.is_ok() {
                removed += 1;
            }
        }
        self.remove_leftover_volumes(&here).await?;
        Ok(removed)
    }

    /// Removes the scratch volumes of leftovers (by the same rule as their containers) that no
    /// container holds any more (removing a container removes its volumes; this is for an
    /// engine that lost track of that, e.g. a container removed without `v`). A volume still in
    /// use is left alone by the engine.
    async fn remove_leftover_volumes(&self, here: &owner::Here) -> Result<(), EngineError> {
        let filters = HashMap::from([("label", vec![BUILD_LABEL])]);
        let options = ListVolumesOptionsBuilder::new().filters(&filters).build();
        let volumes = self
            .docker
            .list_volumes(Some(options))
            .await
            .map_err(engine_error("listing volumes"))?;
        for volume in volumes.volumes.unwrap_or_default() {
            if here.verdict(&volume.labels) != owner::Verdict::Keep {
                // Best effort: in use or already gone is fine.
                let _ = self
                    .docker
                    .remove_volume(&volume.name, None::<RemoveVolumeOptions>)
                    .await;
            }
        }
        Ok(())
    }

    /// [`Engine::remove_leftovers`], with a warning when it removed anything.
    async fn remove_leftovers_and_say_so(&self) -> Result<usize, EngineError> {
        let leftovers = self.remove_dead_owners().await?;
        if leftovers > 0 {
            tracing::warn!(
                "removed {leftovers} container(s) left behind by a sealroom process that is no longer running, or past their deadline"
            );
        }
        Ok(leftovers)
    }

    async fn remove(&self, id: &str) -> Result<(), bollard::errors::Error> {
        let options = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        match self.docker.remove_container(id, Some(options)).await {
            // Already gone (e.g. removed by a cleanup racing us): nothing left behind.
            Err(error) if is_not_found(&error) => Ok(()),
            // Another sealroom's cleanup is removing it: done when that removal is, so that
            // whoever asked (`store gc`, a build about to start) finds it gone.
            Err(error) if is_conflict(&error) => {
                self.wait_removed(id).await;
                Ok(())
            }
            result => result,
        }
    }

    /// Waits (at most 30 s) until the engine has removed container `id`; any answer, a 404
    /// included, ends the wait.
    async fn wait_removed(&self, id: &str) {
        let options = bollard::query_parameters::WaitContainerOptionsBuilder::new()
            .condition("removed")
            .build();
        let mut wait = self.docker.wait_container(id, Some(options));
        let _ = tokio::time::timeout(std::time::Duration::from_secs(30), wait.next()).await;
    }
}

/// The engine's answer when a removal of the same container is already under way (409).
fn is_conflict(error: &bollard::errors::Error) -> bool {
    matches!(
        error,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 409,
            ..
        }
    )
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

/// A volume of sealroom's (a remote engine's stand-in for a bind mount) at `target`. Never
/// filled from the image (`no_copy`): it holds exactly what sealroom put there.
fn volume_mount(target: &str, volume: &str, read_only: bool) -> Mount {
    Mount {
        target: Some(target.to_string()),
        source: Some(volume.to_string()),
        typ: Some(MountType::VOLUME),
        read_only: Some(read_only),
        volume_options: Some(MountVolumeOptions {
            no_copy: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A [`std::io::Write`] that hands what is written to an async receiver in chunks of
/// [`CHANNEL_CHUNK`] bytes (from a blocking thread), so that a tar streams to the engine as it
/// is written, with at most a few chunks in memory.
struct ChannelWriter {
    sender: tokio::sync::mpsc::Sender<std::io::Result<bytes::Bytes>>,
    buffer: Vec<u8>,
}

const CHANNEL_CHUNK: usize = 256 * 1024;

impl ChannelWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = bytes::Bytes::from(std::mem::take(&mut self.buffer));
        self.sender.blocking_send(Ok(chunk)).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the engine stopped reading the upload",
            )
        })
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= CHANNEL_CHUNK {
            self.send()?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// A [`std::io::Read`] of chunks an async task sends (read on a blocking thread); an error
/// sent is returned once, then the end.
struct ChannelReader {
    receiver: tokio::sync::mpsc::Receiver<std::io::Result<bytes::Bytes>>,
    chunk: bytes::Bytes,
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            match self.receiver.blocking_recv() {
                Some(Ok(chunk)) => self.chunk = chunk,
                Some(Err(error)) => return Err(error),
                None => return Ok(0),
            }
        }
        let n = buffer.len().min(self.chunk.len());
        buffer[..n].copy_from_slice(&self.chunk.split_to(n));
        Ok(n)
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

impl DockerEngine {
    /// Creates, runs and removes the step's container: with bind mounts of the request's
    /// directories, or (`staged`) with volumes standing in for them.
    async fn run_container(
        &self,
        request: &StepRequest,
        staged: Option<&StagedVolumes>,
        cancel: &CancellationToken,
    ) -> Result<StepOutcome, SandboxError> {
        let options = CreateContainerOptionsBuilder::new().build();
        let created = self
            .docker
            .create_container(Some(options), Self::container_body(request, staged))
            .await
            .map_err(|error| match error {
                error if is_not_found(&error) => SandboxError::Engine(EngineError::ImageMissing {
                    image: request.image.clone(),
                }),
                error => SandboxError::Step {
                    step: request.step.clone(),
                    action: "creating the container",
                    detail: error_chain(&error),
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
        let outcome = match outcome {
            Ok(mut outcome) if outcome.succeeded() && !request.read_image_files.is_empty() => {
                outcome.image_files = self.read_files_of(&created.id, request).await;
                Ok(outcome)
            }
            outcome => outcome,
        };
        let removed = self.remove(&created.id).await;
        let outcome = outcome?;
        removed.map_err(|error| SandboxError::Step {
            step: request.step.clone(),
            action: "removing the container",
            detail: error_chain(&error),
        })?;
        Ok(outcome)
    }

    /// A step on a remote engine: a volume per input and one for `/out`, and a container that
    /// holds them and is never started (the holder), all labelled like the step's container;
    /// the inputs uploaded through the holder's archive endpoint as one tar; the step run with
    /// the input volumes read-only; its `/out` downloaded through the holder and unpacked into
    /// the request's `out_dir`; then the holder and every volume removed, on every path out.
    async fn run_staged(
        &self,
        request: &StepRequest,
        cancel: &CancellationToken,
    ) -> Result<StepOutcome, SandboxError> {
        let mut volumes = Vec::new();
        let mut holder = None;
        let result = self
            .stage_and_run(request, cancel, &mut volumes, &mut holder)
            .await;
        let cleaned = self
            .remove_staged(request, holder.as_deref(), &volumes)
            .await;
        let outcome = result?;
        cleaned?;
        Ok(outcome)
    }

    async fn stage_and_run(
        &self,
        request: &StepRequest,
        cancel: &CancellationToken,
        volumes: &mut Vec<String>,
        holder: &mut Option<String>,
    ) -> Result<StepOutcome, SandboxError> {
        let failed = |action: &'static str| {
            let step = request.step.clone();
            move |error: bollard::errors::Error| SandboxError::Step {
                step,
                action,
                detail: error_chain(&error),
            }
        };
        let timeout = std::time::Duration::from_millis(request.record.limits.timeout_ms);
        let deadline = owner::deadline(owner::unix_now(), timeout + STAGING_ALLOWANCE);
        let labels = HashMap::from([
            (BUILD_LABEL.to_string(), request.build_id.clone()),
            (STEP_LABEL.to_string(), request.step.clone()),
            (OWNER_LABEL.to_string(), Owner::this_process().to_label()),
            (DEADLINE_LABEL.to_string(), deadline.to_string()),
        ]);
        let mut create_volume = async || {
            let volume = self
                .docker
                .create_volume(bollard::models::VolumeCreateRequest {
                    driver: Some("local".to_string()),
                    labels: Some(labels.clone()),
                    ..Default::default()
                })
                .await
                .map_err(failed("creating a volume"))?;
            volumes.push(volume.name.clone());
            Ok::<_, SandboxError>(volume.name)
        };
        let mut inputs = Vec::new();
        for input in &request.inputs {
            inputs.push((input.target(), create_volume().await?));
        }
        let out = create_volume().await?;
        let staged = StagedVolumes { inputs, out };
        let created = self
            .docker
            .create_container(
                Some(CreateContainerOptionsBuilder::new().build()),
                Self::holder_body(request, &staged, labels.clone()),
            )
            .await
            .map_err(failed("creating the container that fills the volumes"))?;
        *holder = Some(created.id.clone());
        let cancelled = || SandboxError::Cancelled {
            step: request.step.clone(),
        };
        tokio::select! {
            uploaded = self.upload_inputs(&created.id, request) => uploaded?,
            () = cancel.cancelled() => return Err(cancelled()),
        }
        let outcome = self.run_container(request, Some(&staged), cancel).await?;
        if outcome.succeeded() {
            tokio::select! {
                downloaded = self.download_output(&created.id, request) => downloaded?,
                () = cancel.cancelled() => return Err(cancelled()),
            }
        }
        Ok(outcome)
    }

    /// The container that holds a remote step's volumes, read-write, for the archive endpoint:
    /// created from the step's image and never started (no network, no log, no command that
    /// runs), with the labels of the step's volumes.
    fn holder_body(
        request: &StepRequest,
        staged: &StagedVolumes,
        labels: HashMap<String, String>,
    ) -> ContainerCreateBody {
        let mut mounts: Vec<Mount> = staged
            .inputs
            .iter()
            .map(|(target, volume)| volume_mount(target, volume, false))
            .collect();
        mounts.push(volume_mount(super::OUT_DIR, &staged.out, false));
        ContainerCreateBody {
            image: Some(request.record.image.to_string()),
            cmd: Some(vec!["/nonexistent".to_string()]),
            labels: Some(labels),
            network_disabled: Some(true),
            host_config: Some(HostConfig {
                network_mode: Some(Network::None.mode().to_string()),
                mounts: Some(mounts),
                log_config: Some(HostConfigLogConfig {
                    typ: Some("none".to_string()),
                    config: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// Streams the staging tar ([`super::transfer::write_staging_tar`]: every input checkout,
    /// and an open `/out`) to the holder, unpacked at its `/`.
    async fn upload_inputs(&self, holder: &str, request: &StepRequest) -> Result<(), SandboxError> {
        let inputs: Vec<(String, std::path::PathBuf)> = request
            .inputs
            .iter()
            .map(|input| (input.target(), input.host_path.clone()))
            .collect();
        let mtime = request.record.policy.input_mtime;
        let (sender, receiver) = tokio::sync::mpsc::channel(4);
        let writer = tokio::task::spawn_blocking(move || {
            let mut out = ChannelWriter {
                sender: sender.clone(),
                buffer: Vec::with_capacity(CHANNEL_CHUNK),
            };
            let written = super::transfer::write_staging_tar(&inputs, mtime, &mut out);
            if let Err(error) = &written {
                // The upload must fail, not end as if the tar were whole.
                let _ =
                    sender.blocking_send(Err(std::io::Error::new(error.kind(), error.to_string())));
            }
            written
        });
        let body = futures_util::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|item| (item, receiver))
        });
        let options = bollard::query_parameters::UploadToContainerOptionsBuilder::new()
            .path("/")
            .build();
        // The engine answers once the whole tar is in: the request may take as long as the
        // staging allowance, not the usual request timeout.
        let uploaded = self
            .docker
            .clone()
            .with_timeout(STAGING_ALLOWANCE)
            .upload_to_container(holder, Some(options), bollard::body_try_stream(body))
            .await;
        let written = writer
            .await
            .unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic()));
        let step_error = |action: &'static str, detail: String| SandboxError::Step {
            step: request.step.clone(),
            action,
            detail,
        };
        match (written, uploaded) {
            (Err(error), _) if error.kind() != std::io::ErrorKind::BrokenPipe => Err(step_error(
                "packing the inputs for the remote engine",
                error.to_string(),
            )),
            (_, Err(error)) => Err(step_error(
                "uploading the inputs to the remote engine",
                error_chain(&error),
            )),
            (Err(error), Ok(())) => Err(step_error(
                "uploading the inputs to the remote engine",
                error.to_string(),
            )),
            (Ok(()), Ok(())) => Ok(()),
        }
    }

    /// Downloads the step's `/out` through the holder and unpacks it into the request's
    /// `out_dir` ([`super::transfer::unpack_output`]), within `limits.output`.
    async fn download_output(
        &self,
        holder: &str,
        request: &StepRequest,
    ) -> Result<(), SandboxError> {
        let options = DownloadFromContainerOptionsBuilder::new()
            .path(super::OUT_DIR)
            .build();
        let mut stream = self.docker.download_from_container(holder, Some(options));
        let (sender, receiver) = tokio::sync::mpsc::channel(4);
        let dest = request.out_dir.clone();
        let limit = request.record.limits.output_bytes;
        let unpacker = tokio::task::spawn_blocking(move || {
            let reader = ChannelReader {
                receiver,
                chunk: bytes::Bytes::new(),
            };
            super::transfer::unpack_output(reader, &dest, limit)
        });
        let mut refused = None;
        while let Some(chunk) = stream.next().await {
            let item = chunk.map_err(|error| {
                let detail = error_chain(&error);
                refused = Some(detail.clone());
                std::io::Error::other(detail)
            });
            let failed = item.is_err();
            // The unpacker stopped (an error of its own): it says why.
            if sender.send(item).await.is_err() || failed {
                break;
            }
        }
        drop(sender);
        let unpacked = unpacker
            .await
            .unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic()));
        use super::transfer::UnpackError;
        let step = request.step.clone();
        match unpacked {
            Ok(()) => Ok(()),
            Err(UnpackError::TooLarge { .. }) => Err(SandboxError::OutputTooLarge {
                step,
                limit: ByteSize(limit),
            }),
            Err(error @ UnpackError::Unsafe { .. }) => Err(SandboxError::UnsafeOutput {
                step,
                detail: error.to_string(),
            }),
            Err(error) => Err(SandboxError::Step {
                step,
                action: "copying /out from the remote engine",
                detail: refused.unwrap_or_else(|| error.to_string()),
            }),
        }
    }

    /// Removes a remote step's holder container, then its volumes (one already gone is fine).
    async fn remove_staged(
        &self,
        request: &StepRequest,
        holder: Option<&str>,
        volumes: &[String],
    ) -> Result<(), SandboxError> {
        let failed = |error: bollard::errors::Error| SandboxError::Step {
            step: request.step.clone(),
            action: "removing the step's volumes",
            detail: error_chain(&error),
        };
        let holder_removed = match holder {
            Some(id) => self.remove(id).await,
            None => Ok(()),
        };
        let mut first_error = holder_removed.err();
        for volume in volumes {
            match self
                .docker
                .remove_volume(volume, None::<RemoveVolumeOptions>)
                .await
            {
                Err(error) if is_not_found(&error) => {}
                Err(error) => {
                    first_error.get_or_insert(error);
                }
                Ok(()) => {}
            }
        }
        first_error.map_or(Ok(()), |error| Err(failed(error)))
    }
}

impl Engine for DockerEngine {
    async fn run(
        &self,
        request: &StepRequest,
        cancel: &CancellationToken,
    ) -> Result<StepOutcome, SandboxError> {
        if request.record.network == Network::Fetch {
            if let EngineLocation::Remote { host } = &self.location {
                return Err(fetch_network::refused(format!(
                    "the engine at {host} is remote, and the firewall rules that keep fetch containers off the host, other containers and link-local addresses are set on the engine's machine, which sealroom cannot reach\n  hint: run the fetch steps on a local engine (`sealroom fetch` with DOCKER_HOST unset fills the store), then build on the remote one"
                ))
                .into());
            }
            ensure_fetch_network(&self.docker).await?;
        }
        match self.location {
            EngineLocation::Local => self.run_container(request, None, cancel).await,
            EngineLocation::Remote { .. } => self.run_staged(request, cancel).await,
        }
    }

    async fn image(&self, reference: &str) -> Result<Option<EngineImage>, EngineError> {
        let inspected = match self.docker.inspect_image(reference).await {
            Ok(inspected) => inspected,
            Err(error) if is_not_found(&error) => return Ok(None),
            Err(error) => return Err(engine_error("inspecting an image")(error)),
        };
        let mut volumes: Vec<String> = inspected
            .config
            .and_then(|config| config.volumes)
            .unwrap_or_default()
            .into_iter()
            .collect();
        volumes.sort();
        Ok(inspected.id.map(|id| EngineImage { id, volumes }))
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

    async fn read_image_files(
        &self,
        image_id: &str,
        paths: &[&str],
    ) -> Result<BTreeMap<String, Vec<u8>>, EngineError> {
        let creating = format!("creating a container to read files of image {image_id}");
        let options = CreateContainerOptionsBuilder::new().build();
        let created = self
            .docker
            .create_container(Some(options), Self::read_files_body(image_id))
            .await
            .map_err(engine_error(&creating))?;
        // Removal below runs on every path out of the reads, success or error.
        let read = async {
            let mut files = BTreeMap::new();
            for path in paths {
                if let Some(bytes) = self
                    .read_file_following_links(&created.id, image_id, path)
                    .await?
                {
                    files.insert(path.to_string(), bytes);
                }
            }
            Ok::<_, EngineError>(files)
        }
        .await;
        let removed = self.remove(&created.id).await;
        let files = read?;
        removed.map_err(engine_error(
            "removing the container that read files of an image",
        ))?;
        Ok(files)
    }
}

/// For commands that do not need the engine (`store gc`, `store verify`): if it answers within
/// a few seconds, removes the leftovers of killed builds and the containers past their
/// deadline, and returns how many; if not, says so at debug level and returns `None`. Only the
/// connection has a time limit: an engine that answered is given the time its removals take.
pub async fn remove_leftovers_if_reachable() -> Option<usize> {
    let engine = match tokio::time::timeout(
        std::time::Duration::from_secs(5),
        DockerEngine::connect(),
    )
    .await
    {
        Ok(Ok(engine)) => engine,
        Ok(Err(error)) => {
            tracing::debug!("left containers alone: {error}");
            return None;
        }
        Err(_elapsed) => {
            tracing::debug!("left containers alone: the engine did not answer within 5s");
            return None;
        }
    };
    match engine.remove_leftovers_and_say_so().await {
        Ok(removed) => Some(removed),
        Err(error) => {
            tracing::debug!("left containers alone: {error}");
            None
        }
    }
}

/// The Docker engine, connected on first use, so a build whose every step is cached (and whose
/// bases are in the store) never asks the engine anything. Whatever a command first asks it
/// (a step, an image load, a tag), the connection first removes the leftovers of killed builds
/// and the containers past their deadline, once per process; and before the first container
/// from each image, it checks that the engine holds that image.
#[derive(Default)]
pub struct LazyDocker {
    docker: tokio::sync::OnceCell<DockerEngine>,
    /// The images known to be present.
    checked: std::sync::Mutex<std::collections::HashSet<crate::digest::ImageDigest>>,
    /// Images the engine may lack that sealroom can load itself (pulled into the store), by id.
    archives: std::sync::Mutex<HashMap<crate::digest::ImageDigest, ImageArchive>>,
    /// Held while an image is loaded, so that steps starting together load it once.
    loading: tokio::sync::Mutex<()>,
}

/// Makes the docker-archive of an image, streamed to the engine's load when it lacks the image.
pub type ImageArchive =
    std::sync::Arc<dyn Fn() -> Result<ArchiveStream, EngineError> + Send + Sync>;

impl LazyDocker {
    pub fn new() -> Self {
        Self::default()
    }

    async fn engine(&self) -> Result<&DockerEngine, EngineError> {
        self.docker
            .get_or_try_init(|| async {
                let engine = DockerEngine::connect().await?;
                engine.remove_leftovers_and_say_so().await?;
                Ok(engine)
            })
            .await
    }

    /// Gets ready to run a container from `image`: the leftovers of killed builds are removed
    /// (once, on connecting), and the image is checked (once). Before each step this happens by
    /// itself; a command that will certainly run steps calls it first, to fail before any other
    /// work.
    pub async fn prepare(&self, image: &PinnedImage) -> Result<(), EngineError> {
        let engine = self.engine().await?;
        if self.is_checked(image) {
            return Ok(());
        }
        let archive = self
            .archives
            .lock()
            .expect("not poisoned")
            .get(&image.digest)
            .cloned();
        match (super::require_image(engine, image).await, archive) {
            (Err(EngineError::ImageMissing { .. }), Some(archive)) => {
                let _loading = self.loading.lock().await;
                if let Err(EngineError::ImageMissing { .. }) =
                    super::require_image(engine, image).await
                {
                    tracing::info!("loading image {image} into the engine from the store");
                    engine.load(archive()?).await?;
                }
                super::require_image(engine, image).await?;
            }
            (checked, _) => checked?,
        }
        self.checked
            .lock()
            .expect("not poisoned")
            .insert(image.digest);
        Ok(())
    }

    /// Lets [`LazyDocker::prepare`] load `image` (pinned by image id) with `archive` when the
    /// engine lacks it, instead of failing: for an image sealroom pulled into the store.
    pub fn provide_image(&self, image: crate::digest::ImageDigest, archive: ImageArchive) {
        self.archives
            .lock()
            .expect("not poisoned")
            .insert(image, archive);
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

    async fn image(&self, reference: &str) -> Result<Option<EngineImage>, EngineError> {
        self.engine().await?.image(reference).await
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

    async fn read_image_files(
        &self,
        image_id: &str,
        paths: &[&str],
    ) -> Result<BTreeMap<String, Vec<u8>>, EngineError> {
        // An image sealroom can load is loaded first, as for a step.
        let provided = image_id
            .parse::<crate::digest::ImageDigest>()
            .ok()
            .filter(|id| self.archives.lock().expect("not poisoned").contains_key(id));
        if let Some(digest) = provided {
            let image = PinnedImage {
                name: image_id.to_string(),
                digest,
            };
            self.prepare(&image).await?;
        }
        self.engine().await?.read_image_files(image_id, paths).await
    }
}

/// Who made a container, and whether it may be removed. An owner is a process on one boot of
/// one host, in one PID namespace: `boot=<boot id>,pidns=<inode>,pid=<pid>,start=<ticks>`
/// ([`OWNER_LABEL`]). Only a caller on the same boot and in the same PID namespace can look the
/// pid up in its `/proc`; anyone else leaves the container to its deadline ([`DEADLINE_LABEL`]).
mod owner {
    use std::collections::HashMap;

    use super::super::{DEADLINE_GRACE, DEADLINE_LABEL, LEGACY_OWNER_LABEL, OWNER_LABEL};

    /// The process that made a container.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Owner {
        /// `/proc/sys/kernel/random/boot_id`: one boot of one host.
        pub boot_id: String,
        /// The inode of `/proc/self/ns/pid`.
        pub pid_namespace: u64,
        pub pid: u32,
        /// Field 22 of `/proc/<pid>/stat` (clock ticks after boot), which tells the process
        /// apart from a later one that reuses its pid.
        pub start_time: u64,
    }

    /// An owner label that is not `boot=…,pidns=…,pid=…,start=…`.
    #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
    #[error(
        "owner label `{label}`: {problem} (expected `boot=<boot id>,pidns=<inode>,pid=<pid>,start=<ticks>`)"
    )]
    pub struct OwnerLabelError {
        pub label: String,
        pub problem: String,
    }

    impl Owner {
        /// This process (read once). A part that cannot be read is left empty or 0, which
        /// never matches another caller: such containers go by their deadline alone.
        pub fn this_process() -> &'static Owner {
            static THIS: std::sync::OnceLock<Owner> = std::sync::OnceLock::new();
            THIS.get_or_init(|| {
                let pid = std::process::id();
                Owner {
                    boot_id: boot_id().unwrap_or_default(),
                    pid_namespace: pid_namespace().unwrap_or(0),
                    pid,
                    start_time: process_state(pid).map_or(0, |(_, start)| start),
                }
            })
        }

        pub fn to_label(&self) -> String {
            format!(
                "boot={},pidns={},pid={},start={}",
                self.boot_id, self.pid_namespace, self.pid, self.start_time
            )
        }

        pub fn parse(label: &str) -> Result<Owner, OwnerLabelError> {
            let error = |problem: String| OwnerLabelError {
                label: label.to_string(),
                problem,
            };
            let mut fields = HashMap::new();
            for part in label.split(',') {
                let (key, value) = part
                    .split_once('=')
                    .ok_or_else(|| error(format!("`{part}` is not `key=value`")))?;
                if fields.insert(key, value).is_some() {
                    return Err(error(format!("`{key}` is given twice")));
                }
            }
            let field = |key: &str| {
                fields
                    .get(key)
                    .copied()
                    .ok_or_else(|| error(format!("no `{key}`")))
            };
            let number = |key: &str| {
                let value = field(key)?;
                value
                    .parse::<u64>()
                    .map_err(|_| error(format!("`{key}` is `{value}`, not a number")))
            };
            let mut unknown: Vec<&str> = fields
                .keys()
                .copied()
                .filter(|key| !["boot", "pidns", "pid", "start"].contains(key))
                .collect();
            if !unknown.is_empty() {
                unknown.sort_unstable();
                return Err(error(format!("unknown key(s) {}", unknown.join(", "))));
            }
            let boot_id = field("boot")?;
            if boot_id.is_empty() {
                return Err(error("`boot` is empty".to_string()));
            }
            let pid = number("pid")?;
            Ok(Owner {
                boot_id: boot_id.to_string(),
                pid_namespace: number("pidns")?,
                pid: u32::try_from(pid).map_err(|_| error(format!("pid {pid} is too large")))?,
                start_time: number("start")?,
            })
        }
    }

    /// Why a container may go, or that it stays.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Verdict {
        Keep,
        /// Its deadline passed.
        Expired,
        /// Its owner ran here and is no longer running.
        Orphaned,
    }

    /// The caller, as the rule sees it: its boot and PID namespace, the time, and whether its
    /// `/proc` shows its own PID namespace (without that, no pid can be looked up).
    pub struct Here {
        pub owner: Owner,
        pub now: u64,
        pub proc_is_ours: bool,
    }

    impl Here {
        pub fn now() -> Self {
            let owner = Owner::this_process().clone();
            // `/proc/self` names the pid as the mounted `/proc` counts it; in a PID namespace
            // without its own `/proc`, that is not our pid and every lookup would be wrong.
            let proc_is_ours = std::fs::read_link("/proc/self")
                .ok()
                .and_then(|link| link.to_str()?.parse::<u32>().ok())
                == Some(owner.pid)
                && !owner.boot_id.is_empty()
                && owner.pid_namespace != 0;
            Here {
                owner,
                now: unix_now(),
                proc_is_ours,
            }
        }

        /// What to do with a container (or volume) with these labels.
        pub fn verdict(&self, labels: &HashMap<String, String>) -> Verdict {
            self.verdict_with(labels, is_running)
        }

        /// [`Here::verdict`], with `running(pid, start time)` telling whether that process
        /// runs here.
        pub fn verdict_with(
            &self,
            labels: &HashMap<String, String>,
            running: impl Fn(u32, u64) -> bool,
        ) -> Verdict {
            if let Some(deadline) = labels.get(DEADLINE_LABEL)
                && let Ok(deadline) = deadline.parse::<u64>()
                && self.now > deadline
            {
                return Verdict::Expired;
            }
            if !self.proc_is_ours {
                return Verdict::Keep;
            }
            if let Some(label) = labels.get(OWNER_LABEL) {
                return match Owner::parse(label) {
                    Ok(owner)
                        if owner.boot_id == self.owner.boot_id
                            && owner.pid_namespace == self.owner.pid_namespace
                            && !running(owner.pid, owner.start_time) =>
                    {
                        Verdict::Orphaned
                    }
                    _ => Verdict::Keep,
                };
            }
            // Older versions: `<pid>:<start time>`, with no host or namespace in it. Removed by
            // their own rule (not running in this `/proc`), only when the label parses, and only
            // by a caller in the host's initial PID namespace, which sees every pid of the
            // host: from inside another one, every such owner would look dead.
            if self.owner.pid_namespace == INITIAL_PID_NAMESPACE
                && let Some(label) = labels.get(LEGACY_OWNER_LABEL)
                && let Some((pid, start)) = label.split_once(':')
                && let (Ok(pid), Ok(start)) = (pid.parse::<u32>(), start.parse::<u64>())
                && !running(pid, start)
            {
                return Verdict::Orphaned;
            }
            Verdict::Keep
        }
    }

    /// The inode of the host's initial PID namespace (the kernel's `PROC_PID_INIT_INO`).
    pub const INITIAL_PID_NAMESPACE: u64 = 0xEFFF_FFFC;

    /// The deadline label's value: `now` plus `timeout` plus the grace, in unix seconds.
    pub fn deadline(now: u64, timeout: std::time::Duration) -> u64 {
        now.saturating_add(timeout.as_secs())
            .saturating_add(u64::from(timeout.subsec_nanos() > 0))
            .saturating_add(DEADLINE_GRACE.as_secs())
    }

    pub fn unix_now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_secs())
    }

    /// Whether `pid` is a running process (not a zombie) that started at `start_time`.
    fn is_running(pid: u32, start_time: u64) -> bool {
        process_state(pid)
            .is_some_and(|(state, start)| start == start_time && state != 'Z' && state != 'X')
    }

    /// The state letter and start time of `pid`, from `/proc/<pid>/stat`.
    fn process_state(pid: u32) -> Option<(char, u64)> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name (field 2) is in parentheses and may contain spaces.
        let mut after_name = stat[stat.rfind(')')? + 1..].split_whitespace();
        let state = after_name.next()?.chars().next()?;
        Some((state, after_name.nth(18)?.parse().ok()?))
    }

    fn boot_id() -> Option<String> {
        let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
        let id = id.trim();
        (!id.is_empty() && !id.contains([',', '='])).then(|| id.to_string())
    }

    /// The inode in `pid:[4026531836]`.
    fn pid_namespace() -> Option<u64> {
        let link = std::fs::read_link("/proc/self/ns/pid").ok()?;
        link.to_str()?
            .strip_prefix("pid:[")?
            .strip_suffix(']')?
            .parse()
            .ok()
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn here(now: u64) -> Here {
            Here {
                owner: Owner {
                    boot_id: "b00t".to_string(),
                    pid_namespace: 4026531836,
                    pid: 7,
                    start_time: 100,
                },
                now,
                proc_is_ours: true,
            }
        }

        fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(key, value)| (key.to_string(), value.to_string()))
                .collect()
        }

        #[test]
        fn an_owner_label_round_trips_and_this_process_is_running() {
            let this = Owner::this_process();
            assert_eq!(Owner::parse(&this.to_label()), Ok(this.clone()));
            assert!(!this.boot_id.is_empty() && this.pid_namespace != 0);
            assert!(is_running(this.pid, this.start_time));
            assert!(
                !is_running(this.pid, this.start_time + 1),
                "same pid, other start"
            );
            let here = Here::now();
            assert!(here.proc_is_ours);
            let mine = labels(&[
                (OWNER_LABEL, &this.to_label()),
                (DEADLINE_LABEL, "99999999999"),
            ]);
            assert_eq!(here.verdict(&mine), Verdict::Keep);
        }

        #[test]
        fn a_bad_owner_label_is_an_error_that_says_what_was_expected() {
            for (label, problem) in [
                ("1234:5678", "`1234:5678` is not `key=value`"),
                ("boot=b,pidns=1,pid=2", "no `start`"),
                (
                    "boot=b,pidns=x,pid=2,start=3",
                    "`pidns` is `x`, not a number",
                ),
                ("boot=,pidns=1,pid=2,start=3", "`boot` is empty"),
                ("boot=b,pidns=1,pid=2,start=3,pid=4", "`pid` is given twice"),
                ("boot=b,pidns=1,pid=2,start=3,host=h", "unknown key(s) host"),
                (
                    "boot=b,pidns=1,pid=99999999999,start=3",
                    "pid 99999999999 is too large",
                ),
            ] {
                let error = Owner::parse(label).unwrap_err();
                assert_eq!(error.problem, problem, "{label}");
                let text = error.to_string();
                assert!(
                    text.contains(label) && text.contains("expected `boot="),
                    "{text}"
                );
            }
        }

        #[test]
        fn only_an_owner_dead_on_this_boot_and_in_this_pid_namespace_or_a_passed_deadline_reaps() {
            let dead: fn(u32, u64) -> bool = |_, _| false;
            let alive: fn(u32, u64) -> bool = |_, _| true;
            let here = here(1000);
            let owner = |boot: &str, pidns: u64| {
                Owner {
                    boot_id: boot.to_string(),
                    pid_namespace: pidns,
                    pid: 1,
                    start_time: 5,
                }
                .to_label()
            };
            let local = owner("b00t", 4026531836);
            let cases = [
                // Dead here: orphaned; alive here: kept.
                (labels(&[(OWNER_LABEL, &local)]), dead, Verdict::Orphaned),
                (
                    labels(&[(OWNER_LABEL, &local), (DEADLINE_LABEL, "2000")]),
                    alive,
                    Verdict::Keep,
                ),
                // Another PID namespace or another boot: its pid means nothing here.
                (
                    labels(&[
                        (OWNER_LABEL, &owner("b00t", 4026532000)),
                        (DEADLINE_LABEL, "2000"),
                    ]),
                    dead,
                    Verdict::Keep,
                ),
                (
                    labels(&[(OWNER_LABEL, &owner("other", 4026531836))]),
                    dead,
                    Verdict::Keep,
                ),
                // Past the deadline, whoever owns it, even while the owner runs.
                (
                    labels(&[(OWNER_LABEL, &owner("other", 1)), (DEADLINE_LABEL, "999")]),
                    alive,
                    Verdict::Expired,
                ),
                (
                    labels(&[(OWNER_LABEL, "garbage"), (DEADLINE_LABEL, "999")]),
                    alive,
                    Verdict::Expired,
                ),
                // An owner that cannot be read is never taken for dead; nor a bad deadline.
                (labels(&[(OWNER_LABEL, "garbage")]), dead, Verdict::Keep),
                (
                    labels(&[(OWNER_LABEL, &owner("other", 1)), (DEADLINE_LABEL, "soon")]),
                    dead,
                    Verdict::Keep,
                ),
                // The old label: its own rule, only when it parses.
                (
                    labels(&[(LEGACY_OWNER_LABEL, "12:34")]),
                    dead,
                    Verdict::Orphaned,
                ),
                (
                    labels(&[(LEGACY_OWNER_LABEL, "12:34")]),
                    alive,
                    Verdict::Keep,
                ),
                (labels(&[(LEGACY_OWNER_LABEL, "12:")]), dead, Verdict::Keep),
                (labels(&[]), dead, Verdict::Keep),
            ];
            for (labels, running, want) in cases {
                assert_eq!(here.verdict_with(&labels, running), want, "{labels:?}");
            }
            // In another PID namespace, an old label's pid cannot be looked up.
            let inner = Here {
                owner: Owner {
                    pid_namespace: 4026532000,
                    ..here.owner.clone()
                },
                now: here.now,
                proc_is_ours: true,
            };
            assert_eq!(
                inner.verdict_with(&labels(&[(LEGACY_OWNER_LABEL, "12:34")]), dead),
                Verdict::Keep
            );
            // A `/proc` of another namespace: only deadlines count.
            let blind = Here {
                proc_is_ours: false,
                ..here
            };
            assert_eq!(
                blind.verdict_with(&labels(&[(OWNER_LABEL, &local)]), dead),
                Verdict::Keep
            );
            assert_eq!(
                blind.verdict_with(
                    &labels(&[(OWNER_LABEL, &local), (DEADLINE_LABEL, "10")]),
                    dead
                ),
                Verdict::Expired
            );
        }

        #[test]
        fn the_deadline_is_the_timeout_rounded_up_plus_the_grace() {
            let grace = DEADLINE_GRACE.as_secs();
            assert_eq!(
                deadline(100, std::time::Duration::from_secs(20)),
                120 + grace
            );
            assert_eq!(
                deadline(100, std::time::Duration::from_millis(20_001)),
                121 + grace
            );
            assert_eq!(deadline(100, std::time::Duration::MAX), u64::MAX);
        }
    }
}

/// A step's log as it streams: printed to the terminal line by line with the step's name in
/// front and control characters escaped ([`terminal_safe`]), at most [`LOG_PRINTED_BYTES`] of
/// it (then one line says the rest is cut, and the end says how much was not printed); its
/// last lines kept for error messages; and its first [`LOG_KEPT_BYTES`] written, exactly as the
/// step wrote them, to the request's log file and hashed (the digest names exactly the bytes
/// kept). A line longer than [`LOG_LINE_BYTES`] is handled in pieces, so whatever a step writes
/// (one endless line included), sealroom holds at most a piece and the last lines in memory.
struct StepLog {
    prefix: String,
    pending: Vec<u8>,
    /// The last lines as the step wrote them (made safe only when shown).
    tail: VecDeque<Vec<u8>>,
    kept: Option<std::io::BufWriter<std::fs::File>>,
    kept_bytes: u64,
    hasher: Sha256,
    terminal: Box<dyn Write + Send>,
    printed_bytes: u64,
    /// Bytes of lines that were not printed because the terminal limit was reached.
    unprinted_bytes: u64,
}

/// How much of a step's log is kept in the store.
pub const LOG_KEPT_BYTES: u64 = 16 * 1024 * 1024;
/// How much of a step's log is printed to the terminal (prefixes and escapes included).
pub const LOG_PRINTED_BYTES: u64 = 4 * 1024 * 1024;
/// The longest line printed at once.
pub const LOG_LINE_BYTES: usize = 64 * 1024;
/// How much of each of its last lines a failure report quotes.
const LOG_TAIL_LINE_BYTES: usize = 1024;
/// What the kept log ends with when the step wrote more.
const LOG_CUT_NOTE: &[u8] = b"\n[sealroom: the log went on past 16MiB; the rest was not kept]\n";
/// The line printed where the terminal's share of a step's log ends.
const LOG_PRINT_CUT_NOTE: &str = "[sealroom: log truncated here: at most 4MiB of a step's log is printed; the first 16MiB are kept in the store]";

impl StepLog {
    /// `file`: where the kept part goes (`None`: nowhere, only hashed). Prints to stderr.
    fn new(step: &str, file: Option<std::fs::File>) -> Self {
        Self::printing_to(step, file, Box::new(std::io::stderr()))
    }

    fn printing_to(
        step: &str,
        file: Option<std::fs::File>,
        terminal: Box<dyn Write + Send>,
    ) -> Self {
        Self {
            prefix: format!("[{step}] "),
            pending: Vec::new(),
            tail: VecDeque::with_capacity(LOG_TAIL_LINES),
            kept: file.map(std::io::BufWriter::new),
            kept_bytes: 0,
            hasher: Sha256::new(),
            terminal,
            printed_bytes: 0,
            unprinted_bytes: 0,
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        self.keep(bytes);
        let mut rest = bytes;
        while !rest.is_empty() {
            let room = LOG_LINE_BYTES - self.pending.len();
            let window = &rest[..rest.len().min(room)];
            if let Some(end) = window.iter().position(|&byte| byte == b'\n') {
                self.pending.extend_from_slice(&window[..end]);
                self.finish_line();
                rest = &rest[end + 1..];
            } else {
                self.pending.extend_from_slice(window);
                rest = &rest[window.len()..];
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
        let line = std::mem::take(&mut self.pending);
        self.print(&line);
        if self.tail.len() == LOG_TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(line);
    }

    /// Prints one line if it fits in the terminal's share, else the cut note (once).
    fn print(&mut self, line: &[u8]) {
        if self.printed_bytes >= LOG_PRINTED_BYTES {
            self.unprinted_bytes += line.len() as u64;
            return;
        }
        let text = terminal_safe(line);
        let size = (self.prefix.len() + text.len() + 1) as u64;
        // A closed stderr must not fail the build.
        if self.printed_bytes + size <= LOG_PRINTED_BYTES {
            let _ = writeln!(self.terminal, "{}{text}", self.prefix);
            self.printed_bytes += size;
        } else {
            let _ = writeln!(self.terminal, "{}{LOG_PRINT_CUT_NOTE}", self.prefix);
            self.printed_bytes = LOG_PRINTED_BYTES;
            self.unprinted_bytes += line.len() as u64;
        }
    }

    /// The last lines, safe to print, each cut at [`LOG_TAIL_LINE_BYTES`] (a failure report
    /// quotes them; twenty 64 KiB pieces of one endless line would be no report).
    fn tail_lines(&self) -> Vec<String> {
        self.tail
            .iter()
            .map(|line| {
                if line.len() <= LOG_TAIL_LINE_BYTES {
                    return terminal_safe(line);
                }
                format!(
                    "{} [sealroom: {} more bytes of this line cut]",
                    terminal_safe(&line[..LOG_TAIL_LINE_BYTES]),
                    line.len() - LOG_TAIL_LINE_BYTES
                )
            })
            .collect()
    }

    /// The digest of the kept bytes, with the file flushed; says how much was not printed.
    fn finish(&mut self) -> BlobDigest {
        self.finish_line();
        if self.unprinted_bytes > 0 {
            let _ = writeln!(
                self.terminal,
                "{}[sealroom: log truncated: {} more bytes of this step's log were not printed]",
                self.prefix, self.unprinted_bytes
            );
        }
        let _ = self.terminal.flush();
        if let Some(file) = &mut self.kept {
            let _ = std::io::Write::flush(file);
        }
        BlobDigest::from_bytes(std::mem::take(&mut self.hasher).finalize().into())
    }
}

/// A log line as it may reach a terminal: invalid UTF-8 replaced, and every control character
/// but tab (C0, DEL, C1: what starts escape sequences that set titles, move the cursor, or
/// rewrite earlier lines with CR) and every bidirectional override written as a visible `\x1b`
/// or `\u{202e}`, so a step can neither drive the terminal nor make a line read differently.
pub fn terminal_safe(line: &[u8]) -> String {
    use std::fmt::Write as _;
    let text = String::from_utf8_lossy(line);
    let mut safe = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '\t' => safe.push('\t'),
            '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' => {
                let _ = write!(safe, "\\x{:02x}", u32::from(character));
            }
            '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => {
                let _ = write!(safe, "\\u{{{:04x}}}", u32::from(character));
            }
            other => safe.push(other),
        }
    }
    safe
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
            read_image_files: Vec::new(),
        }
    }

    #[test]
    fn the_container_config_is_the_record_and_nothing_else() {
        let request = request(Network::None);
        let record = &request.record;
        let body = DockerEngine::container_body(&request, None);
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
    fn on_a_remote_engine_volumes_stand_in_for_the_bind_mounts_and_nothing_else_changes() {
        let request = request(Network::None);
        let staged = StagedVolumes {
            inputs: vec![("/inputs/src".to_string(), "input-volume".to_string())],
            out: "out-volume".to_string(),
        };
        let local = DockerEngine::container_body(&request, None);
        let remote = DockerEngine::container_body(&request, Some(&staged));
        let volumes: Vec<(String, String, bool)> = remote
            .host_config
            .as_ref()
            .unwrap()
            .mounts
            .as_ref()
            .unwrap()
            .iter()
            .filter(|mount| mount.source.is_some())
            .map(|mount| {
                assert_eq!(mount.typ, Some(MountType::VOLUME));
                assert_eq!(
                    mount.volume_options.as_ref().unwrap().no_copy,
                    Some(true),
                    "never filled from the image"
                );
                (
                    mount.target.clone().unwrap(),
                    mount.source.clone().unwrap(),
                    mount.read_only.unwrap(),
                )
            })
            .collect();
        assert_eq!(
            volumes,
            [
                ("/inputs/src".to_string(), "input-volume".to_string(), true),
                ("/out".to_string(), "out-volume".to_string(), false),
            ]
        );
        // Everything but the mounts is the local config (the deadline label aside: it is made
        // of the time).
        let without_mounts = |mut body: ContainerCreateBody| {
            body.host_config.as_mut().unwrap().mounts = None;
            body.labels.as_mut().unwrap().remove(DEADLINE_LABEL);
            body
        };
        assert_eq!(without_mounts(remote), without_mounts(local));
        // The holder: the same volumes, read-write, and nothing that could run.
        let labels = HashMap::from([(BUILD_LABEL.to_string(), "b".to_string())]);
        let holder = DockerEngine::holder_body(&request, &staged, labels);
        let host = holder.host_config.unwrap();
        assert_eq!(host.network_mode.as_deref(), Some("none"));
        let mounts: Vec<(String, String, bool)> = host
            .mounts
            .unwrap()
            .iter()
            .map(|mount| {
                (
                    mount.target.clone().unwrap(),
                    mount.source.clone().unwrap(),
                    mount.read_only.unwrap(),
                )
            })
            .collect();
        assert_eq!(
            mounts,
            [
                ("/inputs/src".to_string(), "input-volume".to_string(), false),
                ("/out".to_string(), "out-volume".to_string(), false),
            ]
        );
    }

    #[test]
    fn an_error_chain_keeps_every_cause_once() {
        #[derive(Debug)]
        struct Layer(&'static str, Option<Box<Layer>>);
        impl std::fmt::Display for Layer {
            fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str(self.0)
            }
        }
        impl std::error::Error for Layer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                self.1.as_deref().map(|layer| layer as _)
            }
        }
        let error = Layer(
            "client error (Connect)",
            Some(Box::new(Layer(
                "received fatal alert: BadCertificate",
                Some(Box::new(Layer(
                    "received fatal alert: BadCertificate",
                    None,
                ))),
            ))),
        );
        assert_eq!(
            error_chain(&error),
            "client error (Connect): received fatal alert: BadCertificate"
        );
        assert!(!is_tls_error(&error));
        let tls = std::io::Error::other(rustls::Error::AlertReceived(
            rustls::AlertDescription::BadCertificate,
        ));
        assert!(is_tls_error(&tls), "found inside an io::Error");
    }

    #[test]
    fn the_engine_reads_the_policy_from_the_record() {
        let mut request = request(Network::Host);
        let host_body = DockerEngine::container_body(&request, None);
        assert_eq!(
            host_body.hostname, None,
            "the host's network comes with its name"
        );
        assert_eq!(host_body.network_disabled, Some(false));
        request.record.policy.no_new_privileges = false;
        request.record.policy.read_only_root = false;
        request.record.policy.cap_add = vec!["NET_RAW"];
        let host = DockerEngine::container_body(&request, None)
            .host_config
            .unwrap();
        assert_eq!(host.security_opt, Some(Vec::new()));
        assert_eq!(host.readonly_rootfs, Some(false));
        assert_eq!(host.cap_add, Some(vec!["NET_RAW".to_string()]));
    }

    /// A log of step `step` kept in a file of a temp dir and printed to a [`Terminal`]: the dir
    /// (kept alive), the file, the terminal and the log.
    fn logging_to_a_file() -> (tempfile::TempDir, std::path::PathBuf, Terminal, StepLog) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let terminal = Terminal::default();
        let log = StepLog::printing_to(
            "step",
            Some(std::fs::File::create(&path).unwrap()),
            Box::new(terminal.clone()),
        );
        (dir, path, terminal, log)
    }

    #[test]
    fn log_keeps_the_last_lines_and_writes_and_hashes_every_byte() {
        let (_dir, path, terminal, mut log) = logging_to_a_file();
        let text: String = (0..30).map(|i| format!("line {i}\n")).collect();
        let (first, second) = text.as_bytes().split_at(17);
        log.push(first);
        log.push(second);
        log.push(b"no newline at the end");
        let digest = log.finish();
        let tail = log.tail_lines();
        assert_eq!(tail.len(), LOG_TAIL_LINES);
        assert_eq!(tail.first().map(String::as_str), Some("line 11"));
        assert_eq!(
            tail.last().map(String::as_str),
            Some("no newline at the end")
        );
        let printed: String = (0..30).map(|i| format!("[step] line {i}\n")).collect();
        assert_eq!(terminal.text(), printed + "[step] no newline at the end\n");
        let mut all = text.into_bytes();
        all.extend_from_slice(b"no newline at the end");
        assert_eq!(digest, BlobDigest::of(&all));
        assert_eq!(std::fs::read(&path).unwrap(), all);
    }

    #[test]
    fn a_log_past_the_limit_is_cut_and_a_line_without_newline_is_printed_in_pieces() {
        let (_dir, path, terminal, mut log) = logging_to_a_file();
        let chunk = vec![b'x'; 1024 * 1024];
        for _ in 0..(LOG_KEPT_BYTES / (1024 * 1024) + 2) {
            log.push(&chunk);
            assert!(
                log.pending.len() < LOG_LINE_BYTES,
                "a line is never held whole"
            );
        }
        let digest = log.finish();
        let report = "x".repeat(LOG_TAIL_LINE_BYTES);
        assert_eq!(
            log.tail_lines(),
            vec![
                format!(
                    "{report} [sealroom: {} more bytes of this line cut]",
                    LOG_LINE_BYTES - LOG_TAIL_LINE_BYTES
                );
                LOG_TAIL_LINES
            ],
            "a failure report quotes a bounded part of each line"
        );
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
        // The terminal got its share and two notes: where the cut is, and what was dropped.
        let printed = terminal.text();
        assert!(
            printed.len() as u64 <= LOG_PRINTED_BYTES,
            "{}",
            printed.len()
        );
        let notes: Vec<&str> = printed
            .lines()
            .filter(|line| !line.starts_with("[step] xxx"))
            .collect();
        let pushed = (LOG_KEPT_BYTES / (1024 * 1024) + 2) * 1024 * 1024;
        let shown = printed
            .lines()
            .filter(|line| line.starts_with("[step] xxx"))
            .count() as u64
            * LOG_LINE_BYTES as u64;
        assert_eq!(
            notes,
            [
                format!("[step] {LOG_PRINT_CUT_NOTE}"),
                format!(
                    "[step] [sealroom: log truncated: {} more bytes of this step's log were not printed]",
                    pushed - shown
                )
            ]
        );
    }

    /// A terminal for tests: what was printed, shared with the test.
    #[derive(Clone, Default)]
    struct Terminal(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl Terminal {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    impl std::io::Write for Terminal {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn control_characters_are_escaped_on_the_terminal_and_kept_exactly_in_the_log() {
        let (_dir, path, terminal, mut log) = logging_to_a_file();
        let raw = "title \x1b]2;owned\x07 \x1b[1;31mred\x1b[0m\rover\tTAB \u{9b}31m \u{202e}desrever\x7f bell\x00\n";
        log.push(raw.as_bytes());
        log.push(b"bad utf-8 \xff\n");
        log.finish();
        let want = r"[step] title \x1b]2;owned\x07 \x1b[1;31mred\x1b[0m\x0dover	TAB \x9b31m \u{202e}desrever\x7f bell\x00";
        assert_eq!(
            terminal.text(),
            format!("{want}\n[step] bad utf-8 \u{fffd}\n")
        );
        assert_eq!(
            log.tail_lines()[0],
            want.strip_prefix("[step] ").unwrap(),
            "error messages show the same safe text"
        );
        let mut kept = raw.as_bytes().to_vec();
        kept.extend_from_slice(b"bad utf-8 \xff\n");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            kept,
            "the store keeps the bytes"
        );
    }

    #[test]
    fn a_line_that_would_cross_the_terminal_limit_is_not_printed_in_part() {
        let terminal = Terminal::default();
        let mut log = StepLog::printing_to("s", None, Box::new(terminal.clone()));
        // Lines of 1000 bytes; the prefix and newline make each 1005 printed bytes.
        let line = [vec![b'y'; 1000], vec![b'\n']].concat();
        let fit = LOG_PRINTED_BYTES / 1005;
        for _ in 0..fit + 3 {
            log.push(&line);
        }
        log.finish();
        let printed = terminal.text();
        let lines: Vec<&str> = printed.lines().collect();
        assert_eq!(
            lines.len() as u64,
            fit + 2,
            "every line that fits, then two notes"
        );
        assert!(lines[..fit as usize].iter().all(|line| line.len() == 1004));
        assert_eq!(
            lines[fit as usize + 1],
            "[s] [sealroom: log truncated: 3000 more bytes of this step's log were not printed]"
        );
    }
}
