//! `sealroom check`: is this spec reproducible? Builds it twice without the action cache, each
//! time in a fresh temporary store and fresh containers, varying what sealroom does not pin —
//! the number of jobs, the order in which independent steps start, the build start time,
//! container ids, store paths — and compares every file every step wrote.
//!
//! When something differs, a third build identical to the first tells the likely cause apart:
//! if it differs from the first too, the step is not deterministic by itself (time, randomness,
//! anything unpinned); if it matches the first, the order of steps or the number of jobs is to
//! blame. With `diffoscope` installed, each differing file gets a report.

use std::path::{Path, PathBuf};

use crate::digest::TreeDigest;
use crate::error::{Error, ExitCode, Failure};
use crate::ops::build::{self, BuildOptions, BuildReport};
use crate::ops::fetch::NetworkChoices;
use crate::sandbox::docker::LazyDocker;
use crate::spec::{self, Spec};
use crate::store::{EntryKind, Store};

#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckReport {
    pub spec: PathBuf,
    pub runs: Vec<Variation>,
    pub differences: Vec<Difference>,
    pub likely_cause: Option<String>,
    pub diffoscope_reports: Vec<PathBuf>,
    pub reproducible: bool,
}

/// How one of the builds was run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Variation {
    pub jobs: usize,
    pub reverse_order: bool,
}

/// A file (or other entry) under a step's `/out` that is not the same in the two builds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Difference {
    pub step: String,
    pub path: String,
    pub first: EntryState,
    pub second: EntryState,
}

/// What one build left at a path.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum EntryState {
    Missing,
    File {
        sha256: String,
        size: u64,
        executable: bool,
    },
    Symlink {
        target: String,
    },
    Directory,
}

impl std::fmt::Display for EntryState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EntryState::Missing => write!(f, "missing"),
            EntryState::File {
                sha256,
                size,
                executable,
            } => write!(
                f,
                "sha256:{sha256} ({size} bytes{})",
                if *executable { ", executable" } else { "" }
            ),
            EntryState::Symlink { target } => write!(f, "symlink to `{target}`"),
            EntryState::Directory => write!(f, "a directory"),
        }
    }
}

/// One build of the spec in its own scratch store.
struct Run {
    _scratch: tempfile::TempDir,
    store: Store,
    report: BuildReport,
}

pub async fn check(
    spec_path: &Path,
    report_dir: &Path,
    network: &NetworkChoices,
    interrupt: tokio_util::sync::CancellationToken,
) -> Result<CheckReport, Error> {
    let mut spec = spec::load(spec_path)?;
    let sandbox = LazyDocker::new();
    // A registry image is pulled into a store of its own, kept for both builds.
    let (_images, image_store) = crate::ops::build::scratch_store("sealroom-check-images-")?;
    crate::ops::sandbox_image::resolve(&sandbox, &image_store, &mut spec, false).await?;
    sandbox.prepare(&spec.sandbox.image).await?;
    let cpus = std::thread::available_parallelism().map_or(1, |cpus| cpus.get());
    let first_variation = Variation {
        jobs: cpus.max(2),
        reverse_order: false,
    };
    let second_variation = Variation {
        jobs: 1,
        reverse_order: true,
    };
    let build = |variation| build_once(&sandbox, &spec, variation, &interrupt, network);
    tracing::info!(
        "check: first build (--jobs {}, steps in spec order)",
        first_variation.jobs
    );
    let first = build(&first_variation).await?;
    tracing::info!("check: second build (--jobs 1, independent steps in reverse order)");
    let second = build(&second_variation).await?;
    let differences = compare(&spec, &first, &second)?;

    let mut runs = vec![first_variation.clone(), second_variation.clone()];
    let mut likely_cause = None;
    let mut diffoscope_reports = Vec::new();
    if !differences.is_empty() {
        tracing::info!("check: outputs differ; a third build like the first tells the cause apart");
        let third = build(&first_variation).await?;
        runs.push(first_variation);
        let again = compare(&spec, &first, &third)?;
        let varies_alone = differences.iter().any(|difference| {
            again
                .iter()
                .any(|other| other.step == difference.step && other.path == difference.path)
        });
        likely_cause = Some(if varies_alone {
            "the output changes between two builds run the same way: the step itself is not deterministic (the time, random bytes, or something else sealroom does not pin); not the order of steps or the number of jobs".to_string()
        } else {
            "two builds run the same way agree, so the order in which independent steps ran or the number of jobs (--jobs) changes the output".to_string()
        });
        diffoscope_reports = diffoscope(&first, &second, &differences, report_dir)?;
    }
    Ok(CheckReport {
        spec: spec.path.clone(),
        runs,
        reproducible: differences.is_empty(),
        differences,
        likely_cause,
        diffoscope_reports,
    })
}

async fn build_once(
    sandbox: &LazyDocker,
    spec: &Spec,
    variation: &Variation,
    interrupt: &tokio_util::sync::CancellationToken,
    network: &NetworkChoices,
) -> Result<Run, Error> {
    let (scratch, store) = crate::ops::build::scratch_store("sealroom-check-")?;
    let options = BuildOptions {
        out_dir: scratch.path().join("out"),
        jobs: variation.jobs,
        no_cache: true,
        interrupt: interrupt.clone(),
        reverse_order: variation.reverse_order,
        allow_host_network: network.allow_host_network,
        mirrors: network.mirrors.clone(),
        // The comparison is of outputs: the SBOMs would only be written to be thrown away.
        sbom: crate::sbom::SbomChoice::None,
        ..BuildOptions::default()
    };
    let report = build::run(sandbox, &store, spec, &options, None).await?;
    Ok(Run {
        _scratch: scratch,
        store,
        report,
    })
}

/// Every path under every step's `/out` that differs between two builds, in spec order.
fn compare(spec: &Spec, first: &Run, second: &Run) -> Result<Vec<Difference>, Error> {
    let mut differences = Vec::new();
    for step in &spec.steps {
        let output = |run: &Run| {
            run.report
                .steps
                .iter()
                .find(|report| report.name == step.name.as_str())
                .map(|report| report.output)
        };
        let (Some(a), Some(b)) = (output(first), output(second)) else {
            continue;
        };
        diff_trees(
            step.name.as_str(),
            "",
            (&first.store, a),
            (&second.store, b),
            &mut differences,
        )?;
    }
    Ok(differences)
}

fn diff_trees(
    step: &str,
    prefix: &str,
    (store_a, a): (&Store, TreeDigest),
    (store_b, b): (&Store, TreeDigest),
    differences: &mut Vec<Difference>,
) -> Result<(), Error> {
    if a == b {
        return Ok(());
    }
    let tree_a = store_a.read_tree(&a)?;
    let tree_b = store_b.read_tree(&b)?;
    let mut names: Vec<&str> = tree_a
        .entries
        .iter()
        .chain(&tree_b.entries)
        .map(|entry| entry.name.as_str())
        .collect();
    names.sort_unstable();
    names.dedup();
    for name in names {
        let path = if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}/{name}")
        };
        let entry_a = tree_a
            .entries
            .iter()
            .find(|entry| entry.name == name)
            .map(|entry| &entry.kind);
        let entry_b = tree_b
            .entries
            .iter()
            .find(|entry| entry.name == name)
            .map(|entry| &entry.kind);
        if let (
            Some(EntryKind::Directory { digest: sub_a }),
            Some(EntryKind::Directory { digest: sub_b }),
        ) = (entry_a, entry_b)
        {
            diff_trees(
                step,
                &path,
                (store_a, *sub_a),
                (store_b, *sub_b),
                differences,
            )?;
            continue;
        }
        let (first, second) = (state(entry_a), state(entry_b));
        if first != second {
            differences.push(Difference {
                step: step.to_string(),
                path,
                first,
                second,
            });
        }
    }
    Ok(())
}

fn state(entry: Option<&EntryKind>) -> EntryState {
    match entry {
        None => EntryState::Missing,
        Some(EntryKind::File {
            digest,
            size,
            executable,
        }) => EntryState::File {
            sha256: digest.hex(),
            size: *size,
            executable: *executable,
        },
        Some(EntryKind::Symlink { target }) => EntryState::Symlink {
            target: target.clone(),
        },
        Some(EntryKind::Directory { .. }) => EntryState::Directory,
    }
}

/// Runs diffoscope on both versions of each differing file, when it is installed; returns the
/// reports written under `report_dir`.
fn diffoscope(
    first: &Run,
    second: &Run,
    differences: &[Difference],
    report_dir: &Path,
) -> Result<Vec<PathBuf>, Error> {
    let installed = std::process::Command::new("diffoscope")
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !installed {
        tracing::info!(
            "check: diffoscope is not installed; `apt-get install diffoscope` for a report of each difference"
        );
        return Ok(Vec::new());
    }
    let mut reports = Vec::new();
    for difference in differences {
        let (EntryState::File { sha256: a, .. }, EntryState::File { sha256: b, .. }) =
            (&difference.first, &difference.second)
        else {
            continue;
        };
        let base = report_dir.join(&difference.step).join(&difference.path);
        let directory = base.parent().unwrap_or(report_dir);
        std::fs::create_dir_all(directory).map_err(|e| Error::io("cannot create", directory, e))?;
        let file_name = base
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let copy_a = directory.join(format!("{file_name}.first"));
        let copy_b = directory.join(format!("{file_name}.second"));
        let blob = |hex: &str| {
            crate::digest::BlobDigest::from_hex(hex).expect("digests come from the store")
        };
        first.store.export_file(&blob(a), &copy_a, false)?;
        second.store.export_file(&blob(b), &copy_b, false)?;
        let report = directory.join(format!("{file_name}.diffoscope.txt"));
        // diffoscope exits 1 when the files differ, which they do.
        let _ = std::process::Command::new("diffoscope")
            .arg("--text")
            .arg(&report)
            .arg(&copy_a)
            .arg(&copy_b)
            .stdout(std::process::Stdio::null())
            .status();
        if report.exists() {
            reports.push(report);
        }
    }
    Ok(reports)
}

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("not reproducible: {} differ between two builds", paths.join(", "))]
    Differs { paths: Vec<String> },
}

impl Failure for CheckError {
    fn exit_code(&self) -> ExitCode {
        ExitCode::VerificationFailed
    }
}
