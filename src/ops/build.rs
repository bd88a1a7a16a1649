//! `sealroom build`: resolve the spec, run every step in the sandbox with the network off, store
//! each step's `/out` as a tree, then write the artifacts and their signed provenance to `--out`.
//!
//! Nothing reaches `--out` until every step has succeeded, and nothing reaches the store that is
//! not named by its digest: a failed build leaves the output directory as it was.
//!
//! With `--remote-cache` (`remote`), a step the local action cache misses is looked up in the
//! shared cache before it runs, and a step that ran is uploaded after it is stored.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use crate::digest::{ActionDigest, BlobDigest, TreeDigest};
use crate::error::{Error, ExitCode, Failure};
use crate::sandbox::docker::LazyDocker;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio_util::sync::CancellationToken;

pub use crate::ops::attest::StepReport;
use crate::ops::attest::provenance_path;
use crate::ops::fetch::{FetchOptions, Fetched, fetch_all};
use crate::remote::{RemoteCache, RemoteSettings};
use crate::sandbox::{Engine, InputMount, SandboxError, StepRecord, StepRequest};
use crate::sign::keys::SigningKey;
use crate::spec::ByteSize;
use crate::spec::{self, Name, Source, Spec, Step};
use crate::store::actions::ActionResult;
use crate::store::{EntryKind, Store, StoreError};

#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Where artifacts and their `.intoto.jsonl` go.
    pub out_dir: PathBuf,
    /// The private key to sign provenance with; unsigned statements without one.
    pub key: Option<PathBuf>,
    /// Recorded as `runDetails.builder.id`.
    pub builder_id: String,
    /// How many steps may run at once.
    pub jobs: usize,
    /// Run the steps that do not depend on a failed one before reporting the failure.
    pub keep_going: bool,
    /// Run every step, even those the action cache has a result for.
    pub no_cache: bool,
    /// Fired on SIGINT/SIGTERM: running steps are stopped, no new one starts.
    pub interrupt: CancellationToken,
    /// Start ready steps last-in-spec first (`sealroom check` varies the order this way).
    pub reverse_order: bool,
    /// Also write a Sigstore bundle next to each provenance (needs a key).
    pub bundle: bool,
    /// `--sbom`: the SBOM documents written next to each artifact and image.
    pub sbom: crate::sbom::SbomChoice,
    /// Open no socket and start no fetch container: every fetch must be in the store.
    pub offline: bool,
    /// `--allow-host-network`: fetches with `network = "host"` may run (else they are refused).
    pub allow_host_network: bool,
    /// `--mirror`: URL rewrites on top of the spec's `[mirrors]`.
    pub mirrors: crate::fetch::Mirrors,
    /// `--load`: after the build, load each image into the engine, under these `--tag`s.
    pub load: Option<Vec<String>>,
    /// `--remote-cache` and its settings: a shared REAPI action cache.
    pub remote: Option<RemoteSettings>,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            out_dir: PathBuf::from("sealroom-out"),
            key: None,
            builder_id: crate::provenance::DEFAULT_BUILDER_ID.to_string(),
            jobs: std::thread::available_parallelism().map_or(1, |cpus| cpus.get()),
            keep_going: false,
            no_cache: false,
            interrupt: CancellationToken::new(),
            reverse_order: false,
            bundle: false,
            sbom: crate::sbom::SbomChoice::default(),
            offline: false,
            allow_host_network: false,
            mirrors: crate::fetch::Mirrors::default(),
            load: None,
            remote: None,
        }
    }
}

/// What a build did, for the summary on stderr and `--format json` on stdout.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BuildReport {
    pub build_id: String,
    pub spec: PathBuf,
    pub signed: bool,
    pub fetches: Vec<Fetched>,
    pub steps: Vec<StepReport>,
    pub artifacts: Vec<ArtifactReport>,
    /// One per `[[image]]` (see `ops::image_build`).
    pub images: Vec<crate::ops::image_build::ImageReport>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ArtifactReport {
    pub step: String,
    /// The artifact's path under `/out`, which is its subject name in provenance.
    pub name: String,
    pub path: PathBuf,
    pub digest: BlobDigest,
    pub provenance: PathBuf,
    /// The SBOM documents and their attestation written next to it (`--sbom`).
    pub sbom: Vec<PathBuf>,
}

/// Loads the spec and the key and builds. A bad spec or key fails before anything is written or
/// any engine is contacted; the engine is contacted (leftovers removed, the pinned image checked)
/// only when the first step or fixed-output fetch has to run, so a fully cached build never is.
pub async fn build(
    spec_path: &Path,
    store_root: &Path,
    options: &BuildOptions,
) -> Result<BuildReport, Error> {
    let mut spec = spec::load(spec_path)?;
    let signer = options
        .key
        .as_deref()
        .map(SigningKey::from_pem_file)
        .transpose()?;
    if let Some(remote) = &options.remote {
        remote.validate()?;
    }
    // A bad `--tag` fails before anything is written.
    let names: Vec<&str> = spec
        .images
        .iter()
        .map(|image| image.name.as_str())
        .collect();
    let tags = match &options.load {
        Some(tags) => Some(crate::ops::image_build::load_tags(&names, tags)?),
        None => None,
    };
    let engine = LazyDocker::new();
    let store = Store::open(store_root)?;
    crate::ops::sandbox_image::resolve(&engine, &store, &mut spec, options.offline).await?;
    // `--load` needs the engine whatever happens: connect, and ask what the tags name now,
    // while the build works.
    let tagged_before = async {
        match &tags {
            Some(tags) => crate::ops::image_build::tagged_ids(&engine, tags).await,
            None => Vec::new(),
        }
    };
    let (built, tagged_before) = tokio::join!(
        run(&engine, &store, &spec, options, signer.as_ref()),
        tagged_before
    );
    let mut report = built?;
    if let Some(tags) = &tags {
        crate::ops::image_build::load_images(&engine, &mut report.images, tags, &tagged_before)
            .await?;
    }
    Ok(report)
}

/// The build proper, with the sandbox and store given (a fake sandbox in unit tests).
pub async fn run<S: Engine>(
    sandbox: &S,
    store: &Store,
    spec: &Spec,
    options: &BuildOptions,
    signer: Option<&SigningKey>,
) -> Result<BuildReport, Error> {
    let build_id = new_build_id();
    let started_on = SystemTime::now();
    // A bad remote setting fails here, before anything runs; an unreachable cache is a warning.
    let remote = match &options.remote {
        Some(settings) => RemoteCache::connect(settings, signer.cloned()).await?,
        None => None,
    };

    let source_trees = hash_sources_refusing(store, spec, options.key.as_deref())?;
    let mut trees: HashMap<Name, TreeDigest> = source_trees
        .iter()
        .map(|(source, tree)| (source.name.clone(), *tree))
        .collect();

    let fetch_options = FetchOptions {
        offline: options.offline,
        allow_host_network: options.allow_host_network,
        mirrors: options.mirrors.clone(),
        jobs: options.jobs,
        build_id: build_id.clone(),
        interrupt: options.interrupt.clone(),
    };
    let fetched = fetch_all(sandbox, store, spec, &fetch_options).await?;
    for (fetch, done) in spec.fetches.iter().zip(&fetched) {
        trees.insert(fetch.name.clone(), done.tree);
    }

    let steps = run_steps(
        sandbox,
        store,
        spec,
        options,
        &build_id,
        &mut trees,
        remote.as_deref(),
    )
    .await?;

    let finished_on = SystemTime::now();
    let context = crate::ops::attest::BuildContext {
        spec,
        build_id: &build_id,
        builder_id: &options.builder_id,
        started_on,
        finished_on,
        sources: &source_trees,
        fetches: &fetched,
        steps: &steps,
    };
    let catalog = crate::ops::sbom::image_catalog_shared(
        sandbox,
        store,
        spec,
        options.sbom,
        remote.as_deref(),
    )
    .await?;
    let artifacts = write_artifacts(store, spec, &trees, options, &context, &catalog, signer)?;
    let images = crate::ops::image_build::build_images(
        sandbox,
        spec,
        store,
        &trees,
        &options.out_dir,
        &context,
        &crate::ops::image_build::ImageSettings {
            signer,
            sbom: options.sbom,
            catalog: &catalog,
            offline: options.offline,
        },
    )
    .await?;
    if signer.is_none() {
        tracing::warn!("no --key given: provenance is written unsigned");
    }
    Ok(BuildReport {
        build_id,
        spec: spec.path.clone(),
        signed: signer.is_some(),
        fetches: fetched,
        steps,
        artifacts,
        images,
    })
}

/// Each source's tree, hashed into the store (with its stat cache: an unchanged file is not read).
/// A source holding a PEM private key is refused.
pub fn hash_sources<'a>(
    store: &Store,
    spec: &'a Spec,
) -> Result<Vec<(&'a Source, TreeDigest)>, Error> {
    hash_sources_refusing(store, spec, None)
}

/// [`hash_sources`], also refusing a source that holds the `signing_key` file (`--key`).
fn hash_sources_refusing<'a>(
    store: &Store,
    spec: &'a Spec,
    signing_key: Option<&Path>,
) -> Result<Vec<(&'a Source, TreeDigest)>, Error> {
    let mut trees = Vec::with_capacity(spec.sources.len());
    for source in &spec.sources {
        let exclude = &source.exclude;
        let tree = store.add_source_tree(
            &source.path,
            &|relative| exclude.is_excluded(relative),
            signing_key,
        )?;
        tracing::info!("source {}: {tree}", source.name);
        trees.push((source, tree));
    }
    Ok(trees)
}

/// Runs the step graph: a step starts as soon as every input it names is ready, with at most
/// `options.jobs` running at once. On the first failure no new step starts and the running
/// ones are stopped (their containers removed), unless `keep_going`: then every step that does
/// not depend on a failed one still runs, and the first failure is returned at the end.
async fn run_steps<S: Engine>(
    sandbox: &S,
    store: &Store,
    spec: &Spec,
    options: &BuildOptions,
    build_id: &str,
    trees: &mut HashMap<Name, TreeDigest>,
    remote: Option<&RemoteCache>,
) -> Result<Vec<StepReport>, Error> {
    let cancel = options.interrupt.child_token();
    let runner = StepRunner {
        sandbox,
        store,
        spec,
        build_id,
        no_cache: options.no_cache,
        cancel: &cancel,
        remote,
        // The SBOM needs the image's contents: the first step that runs reads them, unless the
        // store has them already.
        image_files_wanted: &std::sync::atomic::AtomicBool::new(
            options.sbom != crate::sbom::SbomChoice::None
                && crate::ops::image_contents::remembered(
                    store,
                    &spec.sandbox.image.digest.to_string(),
                )
                .is_none(),
        ),
    };
    let jobs = options.jobs.max(1);
    let mut waiting: Vec<&Step> = spec.steps.iter().collect();
    let mut running = FuturesUnordered::new();
    let mut reports = Vec::new();
    let mut failures: Vec<Error> = Vec::new();
    loop {
        // After a failure (without --keep-going) or a signal, nothing new starts.
        if (failures.is_empty() || options.keep_going) && !cancel.is_cancelled() {
            while running.len() < jobs {
                let is_ready = |step: &&Step| {
                    step.inputs
                        .iter()
                        .all(|input| trees.contains_key(&input.name))
                };
                let ready = if options.reverse_order {
                    waiting.iter().rposition(is_ready)
                } else {
                    waiting.iter().position(is_ready)
                };
                let Some(index) = ready else { break };
                let step = waiting.remove(index);
                let inputs = step
                    .inputs
                    .iter()
                    .map(|input| (input.name.clone(), trees[&input.name]))
                    .collect();
                let future = runner.run(step, inputs);
                running.push(async move { (step, future.await) });
            }
        }
        let Some((step, result)) = running.next().await else {
            break;
        };
        match result {
            Ok(report) => {
                trees.insert(step.name.clone(), report.output);
                reports.push(report);
            }
            Err(error) => {
                if !options.keep_going {
                    cancel.cancel();
                }
                // A step stopped because another failed is not a failure of its own.
                if !matches!(error.downcast_ref(), Some(SandboxError::Cancelled { .. })) {
                    failures.push(error);
                }
            }
        }
    }
    if options.interrupt.is_cancelled() {
        return Err(BuildError::Interrupted.into());
    }
    match failures.into_iter().next() {
        Some(first) => Err(first),
        None => Ok(reports),
    }
}

/// What every step of one build shares.
struct StepRunner<'a, S> {
    sandbox: &'a S,
    store: &'a Store,
    spec: &'a Spec,
    build_id: &'a str,
    no_cache: bool,
    cancel: &'a CancellationToken,
    /// The shared remote cache, when the build has one.
    remote: Option<&'a RemoteCache>,
    /// Whether the next step to run should also read the image files of the SBOM's image
    /// contents out of its container (`sandbox::StepRequest::read_image_files`).
    image_files_wanted: &'a std::sync::atomic::AtomicBool,
}

impl<S: Engine> StepRunner<'_, S> {
    /// Runs one step: its inputs materialized read-only, a fresh empty `/out`, the fixed
    /// environment; or takes its output from the action cache. The step's `/out` becomes a tree
    /// in the store; its temp dir is removed either way. Store work (checkouts, hashing `/out`,
    /// writes) runs on the blocking pool, never on the task that polls every step.
    async fn run(
        &self,
        step: &Step,
        input_trees: Vec<(Name, TreeDigest)>,
    ) -> Result<StepReport, Error> {
        let StepRunner {
            sandbox,
            store,
            spec,
            build_id,
            no_cache,
            cancel,
            remote,
            image_files_wanted,
        } = *self;
        let record = StepRecord::for_step(spec, step, &input_trees);
        let action = record.action_key();
        let spec_name = spec.name.to_string();
        let mut hit = {
            let (store, step) = (store.clone(), step.clone());
            blocking(move || local_hit(&store, &step, &action, no_cache)).await?
        }
        .map(|result| (result, None));
        if hit.is_none()
            && !no_cache
            && let Some(remote) = remote
            && let Some(found) = remote.lookup(store, &record, step.name.as_str()).await
        {
            let (store, step, result) = (store.clone(), step.clone(), found.result.clone());
            if blocking(move || accept_remote_hit(&store, &step, &action, &result)).await? {
                hit = Some((found.result, Some(found.facts)));
            }
        }
        if let Some((hit, remote_facts)) = hit {
            {
                let (store, step, record, spec_name) = (
                    store.clone(),
                    step.clone(),
                    record.clone(),
                    spec_name.clone(),
                );
                let input_trees = input_trees.clone();
                blocking(move || note_hit(&store, &step, &record, &spec_name, &input_trees))
                    .await?;
            }
            tracing::info!("step {}: cached, output {}", step.name, hit.output);
            return Ok(StepReport {
                name: step.name.to_string(),
                cached: true,
                action,
                output: hit.output,
                log: store.has_blob(&hit.log).then_some(hit.log),
                ran_in: hit.invocation,
                seconds: 0.0,
                remote: remote_facts,
                record,
            });
        }
        let inputs = {
            let store = store.clone();
            blocking(move || materialize_inputs(&store, &input_trees)).await?
        };
        // Nothing new starts once the build is stopping.
        if cancel.is_cancelled() {
            return Err(SandboxError::Cancelled {
                step: step.name.to_string(),
            }
            .into());
        }
        let out = store.temp_dir()?;
        let out_dir = out.path().join("out");
        crate::sandbox::create_out_dir(&out_dir)?;
        let log_path = out.path().join("log");
        let request = StepRequest {
            step: step.name.to_string(),
            build_id: build_id.to_string(),
            image: spec.sandbox.image.clone(),
            record,
            inputs,
            out_dir: out_dir.clone(),
            log_path: log_path.clone(),
            read_image_files: if image_files_wanted.swap(false, std::sync::atomic::Ordering::SeqCst)
            {
                crate::ops::image_contents::IMAGE_FILES.to_vec()
            } else {
                Vec::new()
            },
        };
        tracing::info!("step {}: running", step.name);
        let started = Instant::now();
        let result = sandbox.run(&request, cancel).await;
        let seconds = started.elapsed().as_secs_f64();
        let (outcome, image_files): (Result<(), Error>, _) = match result {
            Ok(mut outcome) => {
                let image_files = outcome.image_files.take();
                (
                    outcome.check(step.name.as_str()).map_err(Error::from),
                    image_files,
                )
            }
            Err(error) => (Err(error.into()), None),
        };
        let result = {
            let (store, step, record) = (store.clone(), step.clone(), request.record.clone());
            let invocation = build_id.to_string();
            blocking(move || {
                let collected = outcome.and_then(|()| {
                    let tree = collect_output(&store, &step, &out_dir)?;
                    // The log is kept, so that the digest provenance names can be checked.
                    let (log, _) = store.add_blob_from_file(&log_path)?;
                    Ok((tree, log))
                });
                // Whatever the step left in /out is either stored now or not wanted.
                let removed = crate::store::remove_tree_force(out.path());
                let (output, log) = collected?;
                removed?;
                check_artifacts(&store, &step, &output)?;
                let result = ActionResult {
                    output,
                    log,
                    invocation: Some(invocation),
                };
                store.action_put(&action, &result)?;
                store.set_last_record(&spec_name, step.name.as_str(), &record.canonical_bytes())?;
                Ok(result)
            })
            .await?
        };
        let (output, log) = (result.output, result.log);
        if let Some(files) = image_files {
            let image = request.record.image.to_string();
            // A failure here is found again, and reported, when the SBOM asks for them.
            if let Err(error) =
                crate::ops::image_contents::remember_files(store, &image, files, remote).await
            {
                tracing::debug!("image {image}: contents not remembered: {error}");
            }
        }
        if let Some(remote) = remote {
            remote
                .upload(store, &request.record, &result, step.name.as_str())
                .await;
        }
        tracing::info!("step {}: done in {seconds:.2}s, output {output}", step.name);
        Ok(StepReport {
            name: step.name.to_string(),
            cached: false,
            action,
            output,
            log: Some(log),
            ran_in: Some(build_id.to_string()),
            seconds,
            remote: None,
            record: request.record,
        })
    }
}

/// The blocking half of asking the local action cache: a hit is used only when its whole output
/// tree (every tree object and blob) is in the store, else the step runs again.
fn local_hit(
    store: &Store,
    step: &Step,
    action: &ActionDigest,
    no_cache: bool,
) -> Result<Option<ActionResult>, Error> {
    if !no_cache && let Some(hit) = store.action_get(action) {
        match store.missing_below(&hit.output)? {
            None => {
                check_artifacts(store, step, &hit.output)?;
                return Ok(Some(hit));
            }
            Some(missing) => tracing::warn!(
                "step {}: the cached output {} is incomplete ({missing}); running the step again",
                step.name,
                hit.output
            ),
        }
    }
    Ok(None)
}

/// What a hit (local or remote) records: the step's last record for `explain`, and its inputs'
/// checkouts marked used for `store gc` (a hit mounts nothing).
fn note_hit(
    store: &Store,
    step: &Step,
    record: &StepRecord,
    spec_name: &str,
    input_trees: &[(Name, TreeDigest)],
) -> Result<(), Error> {
    store.set_last_record(spec_name, step.name.as_str(), &record.canonical_bytes())?;
    for (_, tree) in input_trees {
        store.touch_checkout(tree);
    }
    Ok(())
}

/// A step that runs gets every input materialized (verified once per process, see
/// `store::checkout`).
fn materialize_inputs(
    store: &Store,
    input_trees: &[(Name, TreeDigest)],
) -> Result<Vec<InputMount>, Error> {
    let mut inputs = Vec::new();
    for (name, tree) in input_trees {
        inputs.push(InputMount {
            name: name.to_string(),
            host_path: store.materialize(tree)?,
        });
    }
    Ok(inputs)
}

/// A remote hit, made a local one: its output must hold the step's artifacts (else it is not
/// used), then it is entered into the local action cache.
fn accept_remote_hit(
    store: &Store,
    step: &Step,
    action: &ActionDigest,
    result: &ActionResult,
) -> Result<bool, Error> {
    if let Err(error) = check_artifacts(store, step, &result.output) {
        tracing::warn!(
            "step {}: the remote cache entry is not used: {error}",
            step.name
        );
        return Ok(false);
    }
    store.action_put(action, result)?;
    Ok(true)
}

/// Runs `work` on the blocking pool (a panic in it is a panic here).
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic()))
}

/// Reads the step's `/out` into the store without trusting it: its size is bounded by
/// `limits.output`, and anything that is not a regular file, directory or symlink (a device, a
/// socket, a fifo) fails the step. Symlinks are recorded as links, never followed.
fn collect_output(store: &Store, step: &Step, out_dir: &Path) -> Result<TreeDigest, Error> {
    // By descriptor, and each file read once, counted against the limit as it is read: whoever
    // still holds a descriptor of /out cannot swap in a symlink or change a file between a size
    // check and the hashing. Into a private scratch store first, so that an output over its
    // limit leaves nothing in the store; the whole tree is then moved in.
    let scratch = store.temp_dir()?;
    let private = Store::open(&scratch.path().join("private"))?;
    let tree = private
        .add_untrusted_tree(out_dir, Some(step.limits.output.0))
        .map_err(|error| match error {
            StoreError::OutputLimit { .. } => BuildError::OutputTooLarge {
                step: step.name.to_string(),
                limit: step.limits.output,
            }
            .into(),
            error @ (StoreError::UnsupportedFileType { .. }
            | StoreError::NonUtf8Name { .. }
            | StoreError::NonUtf8SymlinkTarget { .. }) => BuildError::UnsafeOutput {
                step: step.name.to_string(),
                detail: error.to_string(),
            }
            .into(),
            error => Error::from(error),
        })?;
    store.adopt_tree(&private, &tree)?;
    drop(private);
    crate::store::remove_tree_force(scratch.path())?;
    Ok(tree)
}

/// Every artifact the step declares is a regular file in its output tree.
fn check_artifacts(store: &Store, step: &Step, output: &TreeDigest) -> Result<(), Error> {
    for artifact in &step.artifacts {
        match store.lookup(output, artifact.as_str())? {
            Some(entry) if matches!(entry.kind, EntryKind::File { .. }) => {}
            found => {
                return Err(BuildError::MissingArtifact {
                    step: step.name.to_string(),
                    artifact: artifact.to_string(),
                    found: match found.map(|entry| entry.kind) {
                        None => "nothing".to_string(),
                        Some(EntryKind::Directory { .. }) => "a directory".to_string(),
                        Some(EntryKind::Symlink { target }) => format!("a symlink to `{target}`"),
                        Some(EntryKind::File { .. }) => unreachable!("matched above"),
                    },
                }
                .into());
            }
        }
    }
    Ok(())
}

/// Copies every artifact out of the store into `--out` (atomically, one file at a time) and
/// writes its SBOMs and provenance next to it.
fn write_artifacts(
    store: &Store,
    spec: &Spec,
    trees: &HashMap<Name, TreeDigest>,
    options: &BuildOptions,
    context: &crate::ops::attest::BuildContext<'_>,
    catalog: &crate::ops::sbom::ImageCatalog,
    signer: Option<&SigningKey>,
) -> Result<Vec<ArtifactReport>, Error> {
    let mut reports = Vec::new();
    for step in &spec.steps {
        let tree = &trees[&step.name];
        for artifact in &step.artifacts {
            let Some(EntryKind::File {
                digest, executable, ..
            }) = store
                .lookup(tree, artifact.as_str())?
                .map(|entry| entry.kind)
            else {
                unreachable!("run_step checked every artifact is a file");
            };
            let destination = artifact.under(&options.out_dir);
            let directory = destination
                .parent()
                .expect("an artifact path has a parent: --out");
            std::fs::create_dir_all(directory)
                .map_err(|source| Error::io("creating the output directory", directory, source))?;
            store.export_file(&digest, &destination, executable)?;
            let bom = crate::ops::sbom::artifact_bom(context, catalog, step, artifact, &digest);
            let sboms = crate::ops::sbom::write_sboms(
                &destination,
                &bom,
                options.sbom,
                artifact.as_str(),
                &digest,
                signer,
            )?;
            let envelope = context.envelope(step, artifact, &digest, &sboms.byproducts, signer)?;
            let provenance = provenance_path(&destination);
            crate::ops::attest::write_line_atomically(&provenance, &envelope.to_json_line())?;
            if let (true, Some(key)) = (options.bundle, signer) {
                let bundle = crate::sign::bundle::bundle_json(&envelope, &key.verifying_key());
                let mut path = destination.as_os_str().to_owned();
                path.push(crate::sign::bundle::BUNDLE_SUFFIX);
                crate::ops::attest::write_line_atomically(
                    &PathBuf::from(path),
                    &format!("{bundle}\n"),
                )?;
            }
            tracing::info!("artifact {}: {digest}", destination.display());
            reports.push(ArtifactReport {
                step: step.name.to_string(),
                name: artifact.to_string(),
                path: destination,
                digest,
                provenance,
                sbom: sboms.paths,
            });
        }
    }
    Ok(reports)
}

/// A fresh store in a temporary directory (removed when the `TempDir` drops), for builds that
/// must not use the action cache or the user's store: `reproduce` and `check`. The directory
/// also holds the build's `--out` (`scratch.path().join("out")`).
pub(crate) fn scratch_store(prefix: &str) -> Result<(tempfile::TempDir, Store), Error> {
    let scratch = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .map_err(|e| {
            Error::io(
                "cannot create a temporary directory in",
                std::env::temp_dir(),
                e,
            )
        })?;
    let store = Store::open(&scratch.path().join("store"))?;
    Ok((scratch, store))
}

/// 16 random bytes in hex: labels this build's containers and names its invocation.
fn new_build_id() -> String {
    use rand_core::RngCore;
    let mut bytes = [0u8; 16];
    rand_core::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(
        "step `{step}` wrote more than its output limit of {limit} to /out (limits.output)\n  hint: raise `limits.output` for this step if the output is meant to be that large"
    )]
    OutputTooLarge { step: String, limit: ByteSize },
    #[error("step `{step}` left something in /out that cannot be stored: {detail}")]
    UnsafeOutput { step: String, detail: String },
    #[error("the build was interrupted; running steps were stopped and their containers removed")]
    Interrupted,
    #[error(
        "step `{step}` declares artifact `{artifact}`, but its /out has {found} there\n  hint: the step must write a regular file at /out/{artifact}"
    )]
    MissingArtifact {
        step: String,
        artifact: String,
        found: String,
    },
}

impl Failure for BuildError {
    fn exit_code(&self) -> ExitCode {
        match self {
            BuildError::MissingArtifact { .. }
            | BuildError::OutputTooLarge { .. }
            | BuildError::UnsafeOutput { .. } => ExitCode::StepFailed,
            BuildError::Interrupted => ExitCode::Interrupted,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::sandbox::fake::FakeEngine;

    /// A spec over a one-file source with the given steps, and a store, in a temp dir.
    fn fixture(steps: &str) -> (tempfile::TempDir, Spec, Store) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("src")).unwrap();
        std::fs::write(dir.path().join("src/file.txt"), "source\n").unwrap();
        let spec_path = dir.path().join("sealroom.toml");
        let image = format!("test/image@sha256:{}", "0".repeat(64));
        std::fs::write(
            &spec_path,
            format!(
                "version = 1\nname = \"t\"\n[sandbox]\nimage = \"{image}\"\n[[source]]\nname = \"src\"\npath = \"src\"\n{steps}"
            ),
        )
        .unwrap();
        let spec = spec::load(&spec_path).unwrap();
        let store = Store::open(&dir.path().join("store")).unwrap();
        (dir, spec, store)
    }

    /// No SBOM: the fake engine holds no image to read packages from, as a real one would
    /// refuse. `each_artifact_s_sbom_lists_only_what_reached_it` gives it one.
    fn options(dir: &Path, jobs: usize, keep_going: bool) -> BuildOptions {
        BuildOptions {
            out_dir: dir.join("out"),
            builder_id: "https://example.test/builder".to_string(),
            jobs,
            keep_going,
            sbom: crate::sbom::SbomChoice::None,
            ..BuildOptions::default()
        }
    }

    /// Each step writes its own name to /out/name; a step named `fail-*` exits 1.
    fn writes_its_name(request: &StepRequest) -> std::io::Result<i64> {
        std::fs::write(request.out_dir.join("name"), &request.step)?;
        Ok(if request.step.starts_with("fail") {
            1
        } else {
            0
        })
    }

    fn started(sandbox: &FakeEngine) -> Vec<String> {
        sandbox
            .requests()
            .into_iter()
            .map(|request| request.step)
            .collect()
    }

    /// The steps started, sorted: for steps that start at once, in no set order (each prepares
    /// its inputs on the blocking pool).
    fn started_together(sandbox: &FakeEngine) -> Vec<String> {
        let mut names = started(sandbox);
        names.sort();
        names
    }

    const DIAMOND: &str = r#"
[[step]]
name = "top"
inputs = ["src"]
run = ["top"]
[[step]]
name = "left"
inputs = ["top"]
run = ["left"]
[[step]]
name = "right"
inputs = ["top"]
run = ["right"]
[[step]]
name = "bottom"
inputs = ["left", "right"]
run = ["bottom"]
artifacts = ["name"]
"#;

    /// Each artifact's SBOM lists what reached it and nothing else; the provenance names it;
    /// the image is read once, then taken from the store.
    #[tokio::test]
    async fn each_artifact_s_sbom_lists_only_what_reached_it() {
        let (dir, spec, store) = fixture(
            r#"
[[step]]
name = "with-src"
inputs = ["src"]
run = ["x"]
artifacts = ["with-src.txt"]
[[step]]
name = "without"
run = ["y"]
artifacts = ["without.txt"]
"#,
        );
        let status = b"Package: bash\nStatus: install ok installed\nArchitecture: amd64\nVersion: 5.2.15-2+b7\n\n";
        let image_id = format!("sha256:{}", "0".repeat(64));
        let files = std::collections::BTreeMap::from([(
            "/var/lib/dpkg/status".to_string(),
            status.to_vec(),
        )]);
        let sandbox = FakeEngine::new(|request| {
            std::fs::write(request.out_dir.join(format!("{}.txt", request.step)), "x")?;
            Ok(0)
        })
        .with_image_files(&image_id, files);
        let options = BuildOptions {
            sbom: crate::sbom::SbomChoice::Cyclonedx,
            ..options(dir.path(), 1, false)
        };
        run(&sandbox, &store, &spec, &options, None).await.unwrap();
        let read = |name: &str| std::fs::read(dir.path().join("out").join(name)).unwrap();
        let document =
            |name: &str| -> serde_json::Value { serde_json::from_slice(&read(name)).unwrap() };
        let refs = |name: &str| -> Vec<String> {
            document(name)["components"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["bom-ref"].as_str().unwrap().to_string())
                .collect()
        };
        let image = format!("image:{image_id}");
        let deb = format!("deb:{image_id}/bash:amd64");
        assert_eq!(
            refs("with-src.txt.cdx.json"),
            ["step:with-src", image.as_str(), deb.as_str(), "source:src"]
        );
        assert_eq!(
            refs("without.txt.cdx.json"),
            ["step:without", image.as_str(), deb.as_str()]
        );
        // The image's contents came out of the first step's container: none of their own.
        assert_eq!(sandbox.image_file_reads(), 0);
        let first = &sandbox.requests()[0];
        assert_eq!(
            first.read_image_files,
            crate::ops::image_contents::IMAGE_FILES
        );
        assert!(
            sandbox.requests()[1..]
                .iter()
                .all(|request| request.read_image_files.is_empty()),
            "only one step reads them"
        );

        let cdx_digest = BlobDigest::of(&read("with-src.txt.cdx.json")).hex();
        let provenance = String::from_utf8(read("with-src.txt.intoto.jsonl")).unwrap();
        let envelope = crate::sign::dsse::Envelope::from_json(provenance.trim()).unwrap();
        let statement: serde_json::Value = serde_json::from_slice(&envelope.payload).unwrap();
        let named = statement["predicate"]["runDetails"]["byproducts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["digest"]["sha256"] == cdx_digest.as_str());
        assert!(named, "{statement}");
        assert!(!dir.path().join("out/with-src.txt.spdx.json").exists());

        // A warm build in the same store reads no image and writes the same bytes.
        let before = read("with-src.txt.cdx.json");
        run(&sandbox, &store, &spec, &options, None).await.unwrap();
        assert_eq!(sandbox.image_file_reads(), 0);
        assert_eq!(read("with-src.txt.cdx.json"), before);
    }

    #[tokio::test]
    async fn steps_start_only_after_their_inputs_and_see_them_mounted() {
        let (dir, spec, store) = fixture(DIAMOND);
        let sandbox = FakeEngine::new(writes_its_name);
        let report = run(
            &sandbox,
            &store,
            &spec,
            &options(dir.path(), 1, false),
            None,
        )
        .await
        .unwrap();
        assert_eq!(started(&sandbox), ["top", "left", "right", "bottom"]);
        let bottom = &sandbox.requests()[3];
        let mounted: Vec<&str> = bottom
            .inputs
            .iter()
            .map(|input| input.name.as_str())
            .collect();
        assert_eq!(mounted, ["left", "right"]);
        assert_eq!(
            std::fs::read_to_string(bottom.inputs[0].host_path.join("name")).unwrap(),
            "left"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("out/name")).unwrap(),
            "bottom"
        );
        assert_eq!(report.steps.len(), 4);
    }

    #[tokio::test]
    async fn independent_steps_run_at_once_up_to_the_jobs_bound() {
        let steps: String = (0..6)
            .map(|i| format!("[[step]]\nname = \"s{i}\"\nrun = [\"s{i}\"]\n"))
            .collect();
        let (dir, spec, store) = fixture(&steps);
        for jobs in [1, 2, 4] {
            let sandbox = FakeEngine::new(writes_its_name).taking(Duration::from_millis(30));
            let mut uncached = options(dir.path(), jobs, false);
            uncached.no_cache = true;
            run(&sandbox, &store, &spec, &uncached, None).await.unwrap();
            assert_eq!(sandbox.most_running(), jobs, "with --jobs {jobs}");
            assert_eq!(sandbox.requests().len(), 6);
        }
    }

    #[tokio::test]
    async fn after_an_interrupt_no_ready_step_is_started() {
        let steps: String = (0..6)
            .map(|i| format!("[[step]]\nname = \"s{i}\"\nrun = [\"s\"]\n"))
            .collect();
        let (dir, spec, store) = fixture(&steps);
        let sandbox = FakeEngine::new(writes_its_name).taking(Duration::from_millis(300));
        let options = options(dir.path(), 2, false);
        let interrupt = options.interrupt.clone();
        let stop = async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            interrupt.cancel();
        };
        let (result, ()) = tokio::join!(run(&sandbox, &store, &spec, &options, None), stop);
        assert!(
            matches!(
                result.as_ref().map_err(Error::downcast_ref),
                Err(Some(BuildError::Interrupted))
            ),
            "{result:?}"
        );
        assert_eq!(
            started_together(&sandbox),
            ["s0", "s1"],
            "only the two running when it came"
        );
    }

    #[tokio::test]
    async fn a_failure_starts_no_new_step_and_stops_the_running_ones() {
        let steps = r#"
[[step]]
name = "fail-first"
run = ["fail-first"]
[[step]]
name = "slow"
run = ["slow"]
[[step]]
name = "after"
inputs = ["fail-first"]
run = ["after"]
[[step]]
name = "independent"
run = ["independent"]
"#;
        let (dir, spec, store) = fixture(steps);
        let sandbox = FakeEngine::new(writes_its_name).taking(Duration::from_millis(50));
        let error = run(
            &sandbox,
            &store,
            &spec,
            &options(dir.path(), 2, false),
            None,
        )
        .await
        .unwrap_err();
        assert_eq!(error.exit_code(), ExitCode::StepFailed);
        assert!(
            error
                .to_string()
                .starts_with("step `fail-first` failed with exit status 1"),
            "{error}"
        );
        // fail-first and slow started together; nothing started after the failure.
        assert_eq!(started_together(&sandbox), ["fail-first", "slow"]);
        assert!(!dir.path().join("out").exists(), "nothing written to --out");
    }

    #[tokio::test]
    async fn keep_going_runs_what_does_not_depend_on_the_failure() {
        let steps = r#"
[[step]]
name = "fail-first"
run = ["fail-first"]
[[step]]
name = "after"
inputs = ["fail-first"]
run = ["after"]
[[step]]
name = "independent"
run = ["independent"]
"#;
        let (dir, spec, store) = fixture(steps);
        let sandbox = FakeEngine::new(writes_its_name);
        let error = run(&sandbox, &store, &spec, &options(dir.path(), 1, true), None)
            .await
            .unwrap_err();
        assert!(error.to_string().contains("fail-first"), "{error}");
        assert_eq!(started(&sandbox), ["fail-first", "independent"]);
    }

    #[tokio::test]
    async fn every_step_gets_the_fixed_environment_and_nothing_from_the_host() {
        let steps = "[[step]]\nname = \"s\"\nrun = [\"s\"]\nenv = { CFLAGS = \"-O2\" }\n";
        let (dir, spec, store) = fixture(steps);
        let sandbox = FakeEngine::new(writes_its_name);
        run(
            &sandbox,
            &store,
            &spec,
            &options(dir.path(), 1, false),
            None,
        )
        .await
        .unwrap();
        let env = &sandbox.requests()[0].record.env;
        let names: Vec<&str> = env.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "CFLAGS",
                "HOME",
                "LANG",
                "LC_ALL",
                "PATH",
                "SOURCE_DATE_EPOCH",
                "TZ"
            ]
        );
        assert_eq!(env["SOURCE_DATE_EPOCH"], "0");
        assert_eq!(env["HOME"], "/tmp", "not the host's HOME");
        assert_eq!(
            env["PATH"],
            crate::sandbox::record::STEP_PATH,
            "not the host's PATH"
        );
        assert_eq!(sandbox.requests()[0].record.user, "1000:1000");
    }

    #[tokio::test]
    async fn the_sandbox_runs_the_record_that_the_action_key_and_provenance_are_made_of() {
        let steps = "[[step]]\nname = \"s\"\ninputs = [\"src\"]\nrun = [\"s\"]\nartifacts = [\"name\"]\nlimits = { timeout = \"5m\", cpus = 1.5 }\n";
        let (dir, spec, store) = fixture(steps);
        let sandbox = FakeEngine::new(writes_its_name);
        let report = run(
            &sandbox,
            &store,
            &spec,
            &options(dir.path(), 1, false),
            None,
        )
        .await
        .unwrap();
        let ran = &sandbox.requests()[0].record;
        let step = &report.steps[0];
        assert_eq!(&step.record, ran);
        assert_eq!(step.action, ran.action_key());
        assert!(store.action_get(&step.action).is_some());
        assert_eq!(ran.limits.timeout_ms, 300_000);
        assert_eq!(ran.limits.nano_cpus, Some(1_500_000_000));

        let line = std::fs::read_to_string(&report.artifacts[0].provenance).unwrap();
        let envelope = crate::sign::dsse::Envelope::from_json(line.trim()).unwrap();
        let statement: serde_json::Value = serde_json::from_slice(&envelope.payload).unwrap();
        let entry = &statement["predicate"]["buildDefinition"]["internalParameters"]["steps"]["s"];
        assert_eq!(entry["record"], ran.to_json());
        assert_eq!(entry["actionKey"], step.action.to_string());
    }

    /// The statement of the first artifact of a build.
    fn statement_of(report: &BuildReport) -> serde_json::Value {
        let line = std::fs::read_to_string(&report.artifacts[0].provenance).unwrap();
        let envelope = crate::sign::dsse::Envelope::from_json(line.trim()).unwrap();
        serde_json::from_slice(&envelope.payload).unwrap()
    }

    #[tokio::test]
    async fn a_cached_rebuild_s_provenance_says_so_and_names_the_build_that_ran_the_step() {
        let steps = "[[step]]\nname = \"s\"\nrun = [\"s\"]\nartifacts = [\"name\"]\n";
        let (dir, spec, store) = fixture(steps);
        let first = run(
            &FakeEngine::new(writes_its_name),
            &store,
            &spec,
            &options(dir.path(), 1, false),
            None,
        )
        .await
        .unwrap();
        let ran = statement_of(&first);
        std::fs::remove_dir_all(dir.path().join("out")).unwrap();
        let sandbox = FakeEngine::new(writes_its_name);
        let second = run(
            &sandbox,
            &store,
            &spec,
            &options(dir.path(), 1, false),
            None,
        )
        .await
        .unwrap();
        assert!(sandbox.requests().is_empty(), "nothing ran");
        let cached = statement_of(&second);
        let step = |statement: &serde_json::Value| {
            statement["predicate"]["buildDefinition"]["internalParameters"]["steps"]["s"].clone()
        };
        assert_eq!(step(&ran)["cached"], false);
        assert_eq!(step(&ran)["ranIn"], first.build_id.as_str());
        assert_eq!(step(&cached)["cached"], true);
        assert_eq!(step(&cached)["ranIn"], first.build_id.as_str());
        assert_eq!(step(&cached)["actionKey"], step(&ran)["actionKey"]);
        let metadata = &cached["predicate"]["runDetails"]["metadata"];
        assert_eq!(metadata["invocationId"], second.build_id.as_str());
        // The log digest names a log the store keeps, the same for both builds.
        let byproducts = cached["predicate"]["runDetails"]["byproducts"]
            .as_array()
            .unwrap();
        let log = byproducts
            .iter()
            .find(|entry| entry["name"] == "log:s")
            .expect("a log byproduct");
        let digest: crate::digest::BlobDigest =
            format!("sha256:{}", log["digest"]["sha256"].as_str().unwrap())
                .parse()
                .unwrap();
        assert!(store.has_blob(&digest));
        let bytes = std::fs::read(store.blob_path(&digest)).unwrap();
        assert_eq!(bytes, b"fake step s exited 0\n");
        assert_eq!(
            ran["predicate"]["runDetails"]["byproducts"],
            cached["predicate"]["runDetails"]["byproducts"]
        );
    }

    #[tokio::test]
    async fn an_unchanged_build_runs_nothing_and_no_cache_runs_everything() {
        let (dir, spec, store) = fixture(DIAMOND);
        let first = FakeEngine::new(writes_its_name);
        let cold = run(&first, &store, &spec, &options(dir.path(), 2, false), None)
            .await
            .unwrap();
        assert_eq!(first.requests().len(), 4);

        let second = FakeEngine::new(writes_its_name);
        let warm = run(&second, &store, &spec, &options(dir.path(), 2, false), None)
            .await
            .unwrap();
        assert!(
            second.requests().is_empty(),
            "a cached build starts no step"
        );
        assert!(warm.steps.iter().all(|step| step.cached));
        let outputs = |report: &BuildReport| -> Vec<(String, TreeDigest)> {
            let mut outputs: Vec<_> = report
                .steps
                .iter()
                .map(|step| (step.name.clone(), step.output))
                .collect();
            outputs.sort();
            outputs
        };
        assert_eq!(outputs(&cold), outputs(&warm));

        let third = FakeEngine::new(writes_its_name);
        let mut forced = options(dir.path(), 2, false);
        forced.no_cache = true;
        run(&third, &store, &spec, &forced, None).await.unwrap();
        assert_eq!(third.requests().len(), 4);
    }

    #[tokio::test]
    async fn a_changed_source_reruns_exactly_the_steps_downstream_of_it() {
        let steps = r#"
[[step]]
name = "uses-src"
inputs = ["src"]
run = ["uses-src"]
[[step]]
name = "after-src"
inputs = ["uses-src"]
run = ["after-src"]
[[step]]
name = "unrelated"
run = ["unrelated"]
"#;
        let (dir, spec, store) = fixture(steps);
        // Steps copy their input into /out, so a changed source changes every output downstream.
        let copies_inputs = |request: &StepRequest| -> std::io::Result<i64> {
            for input in &request.inputs {
                for entry in std::fs::read_dir(&input.host_path)? {
                    let entry = entry?;
                    std::fs::copy(entry.path(), request.out_dir.join(entry.file_name()))?;
                }
            }
            std::fs::write(request.out_dir.join(&request.step), "ran")?;
            Ok(0)
        };
        let first = FakeEngine::new(copies_inputs);
        run(&first, &store, &spec, &options(dir.path(), 1, false), None)
            .await
            .unwrap();
        assert_eq!(first.requests().len(), 3);

        std::fs::write(dir.path().join("src/file.txt"), "changed\n").unwrap();
        let spec = spec::load(&spec.path).unwrap();
        let second = FakeEngine::new(copies_inputs);
        run(&second, &store, &spec, &options(dir.path(), 1, false), None)
            .await
            .unwrap();
        assert_eq!(started(&second), ["uses-src", "after-src"]);
    }

    #[tokio::test]
    async fn a_cache_hit_whose_output_lost_a_blob_runs_again_and_restores_it() {
        let (dir, spec, store) = fixture(DIAMOND);
        let first = FakeEngine::new(writes_its_name);
        let report = run(&first, &store, &spec, &options(dir.path(), 1, false), None)
            .await
            .unwrap();
        assert_eq!(first.requests().len(), 4);
        // The blob of `top`'s only file, as a damaged disk or a careless `rm` would lose it.
        let blob = store.blob_path(&crate::digest::BlobDigest::of(b"top"));
        let mut permissions = std::fs::metadata(&blob).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o644);
        std::fs::set_permissions(&blob, permissions).unwrap();
        std::fs::remove_file(&blob).unwrap();

        let second = FakeEngine::new(writes_its_name);
        let again = run(&second, &store, &spec, &options(dir.path(), 1, false), None)
            .await
            .unwrap();
        // Only the step whose output was incomplete ran; its output is the same tree, whole.
        assert_eq!(started(&second), ["top"]);
        assert!(store.has_blob(&crate::digest::BlobDigest::of(b"top")));
        let output = |report: &BuildReport, name: &str| {
            report
                .steps
                .iter()
                .find(|step| step.name == name)
                .unwrap()
                .output
        };
        assert_eq!(output(&again, "top"), output(&report, "top"));
        assert_eq!(store.missing_below(&output(&again, "top")).unwrap(), None);
    }
}
