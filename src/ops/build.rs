//! `sealroom build`: resolve, run every step in the sandbox, store outputs, write artifacts and
//! their provenance.
use crate::error::ExitCode;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("step `{step}` failed with exit status {status}")]
    StepFailed { step: String, status: i64, log_tail: Vec<String> },
}

impl BuildError {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            BuildError::StepFailed { .. } => ExitCode::StepFailed,
        }
    }
}
