//! The Python venv the interop tests verify with (made by `scripts/ensure-python.sh` from PyPI,
//! once), and running the helper scripts under `tests/interop/` in it.
#![allow(dead_code)] // each test binary uses part of this

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The venv's python, made once per test binary; `None` only when skipping on purpose.
pub fn python() -> Option<&'static Path> {
    static PYTHON: OnceLock<Option<PathBuf>> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let in_ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
            if !in_ci && std::env::var_os("SEALROOM_SKIP_INTEROP").is_some() {
                eprintln!("skipping: SEALROOM_SKIP_INTEROP is set");
                return None;
            }
            let script = root().join("scripts/ensure-python.sh");
            let output = Command::new("bash")
                .arg(&script)
                .output()
                .unwrap_or_else(|error| panic!("cannot run {}: {error}", script.display()));
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(
                output.status.success(),
                "{} failed, so the interop tests cannot run (they need python3 with venv and \
                 PyPI access; outside CI, SEALROOM_SKIP_INTEROP=1 skips them):\n{stderr}",
                script.display()
            );
            let path = String::from_utf8_lossy(&output.stdout).trim().to_string();
            Some(PathBuf::from(path))
        })
        .as_deref()
}

pub struct Outcome {
    pub success: bool,
    pub text: String,
}

/// Runs `tests/interop/<script>` with `args` in the venv; stdout and stderr together.
pub fn run_helper(python: &Path, script: &str, args: &[&OsStr]) -> Outcome {
    let output = Command::new(python)
        .arg(root().join("tests/interop").join(script))
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("cannot run {script}: {error}"));
    Outcome {
        success: output.status.success(),
        text: format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

/// Runs `tests/interop/sbom_validate.py` (CycloneDX 1.6 schema, spdx-tools, packageurl-python)
/// on `files`.
pub fn sbom_validate(python: &Path, files: &[&Path]) -> Outcome {
    let args: Vec<&OsStr> = files.iter().map(|file| file.as_os_str()).collect();
    run_helper(python, "sbom_validate.py", &args)
}

/// Asserts that the independent validators accept every SBOM in `files`, each one by name.
pub fn assert_sboms_valid(files: &[&Path]) {
    let Some(python) = python() else { return };
    let outcome = sbom_validate(python, files);
    assert!(outcome.success, "sbom_validate.py: {}", outcome.text);
    for file in files {
        let line = format!("ok {}", file.display());
        assert!(
            outcome.text.lines().any(|l| l.starts_with(&line)),
            "no `{line}` in: {}",
            outcome.text
        );
    }
}
