//! Deterministic base images without a registry: a root filesystem (a directory or a tar)
//! becomes an image whose id depends only on the tree's content, loaded into Docker through
//! bollard.
//!
//! Determinism: entries sorted by path, every mtime fixed, uid/gid 0, no user or group names,
//! a fixed config (no creation time, no history timestamps). The image id is the sha256 of the
//! config JSON, so the same tree always gives the same `name@sha256:<id>`.

use crate::error::ExitCode;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("cannot reach the container engine: {detail}\n  hint: start the Docker daemon (`dockerd`), or set DOCKER_HOST to where it listens")]
    EngineUnreachable { detail: String },
}

impl ImageError {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            ImageError::EngineUnreachable { .. } => ExitCode::EngineUnreachable,
        }
    }
}
