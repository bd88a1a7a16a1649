//! The crate's top-level error and the exit code each kind of failure maps to.
//!
//! Each module has its own error enum; this one only gathers them so that `main` can print the
//! message and exit with the documented code. It adds no text of its own.

use std::fmt;

/// The documented exit codes (DESIGN.md, "Command line").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitCode {
    Ok = 0,
    /// A bad spec, key or file.
    BadInput = 1,
    /// A wrong command line (clap's own exit code).
    Usage = 2,
    /// A build step failed (non-zero exit, timeout, out of memory).
    StepFailed = 3,
    /// A verification failed, or a rebuild did not reproduce.
    VerificationFailed = 4,
    /// The container engine cannot be reached.
    EngineUnreachable = 70,
    /// Stopped by SIGINT or SIGTERM (128 + SIGINT, as shells report it).
    Interrupted = 130,
    /// A bug in sealroom.
    Internal = 101,
}

impl ExitCode {
    pub fn code(self) -> u8 {
        self as u8
    }
}

impl fmt::Display for ExitCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", *self as u8)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Spec(#[from] crate::spec::SpecError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Sandbox(#[from] crate::sandbox::SandboxError),
    #[error(transparent)]
    Engine(#[from] crate::sandbox::EngineError),
    #[error(transparent)]
    Image(#[from] crate::image::ImageError),
    #[error(transparent)]
    Sign(#[from] crate::sign::SignError),
    #[error(transparent)]
    Verify(#[from] crate::ops::verify::VerifyError),
    #[error(transparent)]
    Build(#[from] crate::ops::build::BuildError),
    #[error(transparent)]
    Reproduce(#[from] crate::ops::reproduce::ReproduceError),
    #[error(transparent)]
    Check(#[from] crate::ops::check::CheckError),
    #[error(transparent)]
    Fetch(#[from] crate::fetch::FetchError),
    #[error(transparent)]
    FetchStage(#[from] crate::ops::fetch::FetchStageError),
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    #[error(transparent)]
    Convert(#[from] crate::convert::ConvertError),
    #[error(transparent)]
    Explain(#[from] crate::ops::explain::ExplainError),
    /// A file the user named could not be read or written.
    #[error("{action} `{path}`: {source}")]
    Io {
        action: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub fn io(
        action: &'static str,
        path: impl Into<std::path::PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::Spec(_) | Error::Sign(_) | Error::Io { .. } => ExitCode::BadInput,
            Error::Store(e) => e.exit_code(),
            Error::Sandbox(e) => e.exit_code(),
            Error::Engine(e) => e.exit_code(),
            Error::Image(e) => e.exit_code(),
            Error::Verify(_) => ExitCode::VerificationFailed,
            Error::Build(e) => e.exit_code(),
            Error::Reproduce(e) => e.exit_code(),
            Error::Check(e) => e.exit_code(),
            Error::Fetch(e) => e.exit_code(),
            Error::FetchStage(e) => e.exit_code(),
            Error::Registry(e) => e.exit_code(),
            Error::Convert(_) | Error::Explain(_) => ExitCode::BadInput,
        }
    }
}
