//! The exit code each kind of failure maps to, and the error a command returns.
//!
//! A leaf: it knows no other module. Each module has its own error enum and says, by
//! implementing [`Failure`], which documented exit code it maps to; [`Error`] holds any of them
//! whole (a command's `?` converts), so `main` can print the message and exit with the code. It
//! adds no text of its own.

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

/// An error of one of sealroom's modules, and the exit code its kind of failure maps to.
pub trait Failure: std::error::Error + Send + Sync + 'static {
    fn exit_code(&self) -> ExitCode;
}

/// Whatever failed in a command: the module's own error, kept whole for its message and for a
/// caller that needs to tell one failure from another ([`Error::downcast_ref`]).
#[derive(Debug)]
pub struct Error {
    failure: Box<dyn Failure>,
}

impl<F: Failure> From<F> for Error {
    fn from(failure: F) -> Self {
        Error {
            failure: Box::new(failure),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.failure, f)
    }
}

impl Error {
    /// A file the user named could not be read or written.
    pub fn io(
        action: &'static str,
        path: impl Into<std::path::PathBuf>,
        source: std::io::Error,
    ) -> Self {
        IoError {
            action,
            path: path.into(),
            source,
        }
        .into()
    }

    pub fn exit_code(&self) -> ExitCode {
        self.failure.exit_code()
    }

    /// The module's error, when it is an `F`.
    pub fn downcast_ref<F: Failure>(&self) -> Option<&F> {
        let failure: &(dyn std::error::Error + 'static) = &*self.failure;
        failure.downcast_ref()
    }
}

/// A file the user named could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("{action} `{path}`: {source}")]
pub struct IoError {
    pub action: &'static str,
    pub path: std::path::PathBuf,
    #[source]
    pub source: std::io::Error,
}

impl Failure for IoError {
    fn exit_code(&self) -> ExitCode {
        ExitCode::BadInput
    }
}
