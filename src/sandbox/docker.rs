//! Steps in Docker containers, driven through bollard.

use bollard::Docker;

use super::SandboxError;

/// Connects to the engine named by `DOCKER_HOST` (else the local socket) and agrees on an API
/// version both sides speak, so older daemons (e.g. Debian's 20.10) work.
pub async fn connect() -> Result<Docker, SandboxError> {
    let unreachable = |error: bollard::errors::Error| SandboxError::EngineUnreachable {
        detail: error.to_string(),
    };
    let docker = Docker::connect_with_defaults().map_err(unreachable)?;
    docker.negotiate_version().await.map_err(unreachable)
}
