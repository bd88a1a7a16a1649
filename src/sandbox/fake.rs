//! A sandbox that runs nothing: it records each request and lets the test decide what the step
//! "does" (write files to the request's `out_dir`, return an exit status). For unit tests of the
//! code that schedules and caches steps; never used by the binary.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Sandbox, SandboxError, StepOutcome, StepRequest};
use crate::digest::BlobDigest;

type Behaviour = dyn Fn(&StepRequest) -> std::io::Result<i64> + Send + Sync;

pub struct FakeSandbox {
    requests: Mutex<Vec<StepRequest>>,
    behaviour: Box<Behaviour>,
    /// How long each step "runs", so that tests can see steps overlap.
    duration: Duration,
    running: AtomicUsize,
    most_running: AtomicUsize,
}

impl FakeSandbox {
    /// A sandbox whose steps do what `behaviour` does and exit with the status it returns.
    pub fn new(
        behaviour: impl Fn(&StepRequest) -> std::io::Result<i64> + Send + Sync + 'static,
    ) -> Self {
        Self {
            requests: Mutex::new(Vec::new()),
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
}

impl Sandbox for FakeSandbox {
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
        let exit_status = (self.behaviour)(request).map_err(|error| SandboxError::Engine {
            step: request.step.clone(),
            action: "running the fake step",
            detail: error.to_string(),
        })?;
        let log = format!("fake step {} exited {exit_status}\n", request.step);
        std::fs::write(&request.log_path, &log).map_err(|error| SandboxError::Engine {
            step: request.step.clone(),
            action: "writing the fake log",
            detail: error.to_string(),
        })?;
        Ok(StepOutcome {
            exit_status,
            log_tail: vec![log.trim_end().to_string()],
            log_digest: BlobDigest::of(log.as_bytes()),
        })
    }
}
