//! `sealroom convert`: a Dockerfile in, an equivalent spec out (TOML text), for review.
//!
//! The model (docs/images.md, "Converting a Dockerfile"): a Dockerfile's RUN changes the image's
//! root filesystem, while a sealroom step writes only `/out`. So each stage becomes a chain of
//! steps whose `/out` is *what the stage adds to its base*, laid out as in the image
//! (`/out/app/hello` is `/app/hello`). Each step copies the previous step's `/out` into its own,
//! does the stage's COPYs, then runs one RUN in `/out<WORKDIR>`; absolute paths in the command
//! that name what the stage itself made (its WORKDIRs, COPY destinations, the directories and
//! files its commands write) are rewritten under `/out`. The final stage's last step becomes the
//! image's one new layer at `/`.
//!
//! Downloads are where a hermetic build differs (`classify`): a RUN that downloads what a lock
//! file pins (`pip download -r`, `npm ci`, `cargo fetch`, `go mod download`) becomes a
//! `[[fetch]]` of that lock (the lock the stage COPY'd from the context); the directory it
//! downloaded into is that fetch's mount (`/wheels` is `/inputs/<fetch>` in the RUNs of the
//! stages that `COPY --from` it); an install that also downloads (`npm ci`) stays a step, told
//! by its environment to read the fetch offline. Installs that are already offline stay as
//! they are. Everything else that needs the network, and everything that cannot be kept
//! exactly, is said in a `# note:` naming the Dockerfile line. An unpinned FROM is an error:
//! the spec pins every image by digest.
//!
//! Reads the Dockerfile and the lock files and stats paths in its context; writes nothing.

mod classify;
pub mod dockerfile;
mod shell;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use classify::{Ecosystem, Kind, LockDownload};
use dockerfile::{Arguments, Instruction, pairs, words};

use crate::error::{ExitCode, Failure};
use crate::spec::{Name, PinnedImage};

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("cannot read `{path}`: {source}")]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "line {line}: FROM `{image}` is not pinned by digest: pin it, e.g. run `docker inspect --format '{{{{.Id}}}}' {image}` (or `sealroom image import ROOTFS --name NAME`) and use NAME@sha256:<id>"
    )]
    Unpinned { line: usize, image: String },
    #[error("line {line}: {what} is not supported by `sealroom convert`\n  hint: {hint}")]
    Unsupported {
        line: usize,
        what: String,
        hint: String,
    },
    #[error("line {line}: {message}")]
    Invalid { line: usize, message: String },
    #[error("the Dockerfile has no FROM\n  hint: a Dockerfile starts with `FROM NAME@sha256:<id>`")]
    NoFrom,
    #[error(
        "--build-arg `{0}`: expected KEY=VALUE with KEY a variable name (letters, digits, `_`)"
    )]
    BuildArg(String),
}

impl Failure for ConvertError {
    fn exit_code(&self) -> ExitCode {
        ExitCode::BadInput
    }
}

/// Conversion options.
pub struct Options<'a> {
    /// The spec's and the image's name.
    pub name: &'a str,
    /// The build context (the Dockerfile's directory by default), for COPY sources and the lock
    /// files downloads read.
    pub context: &'a Path,
    /// `--build-arg KEY=VALUE`: overrides the default of the ARG named KEY, as `docker build`.
    pub build_args: &'a BTreeMap<String, String>,
}

/// `KEY=VALUE` of `--build-arg`.
pub fn parse_build_arg(text: &str) -> Result<(String, String), ConvertError> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| ConvertError::BuildArg(text.to_string()))?;
    if !valid_env_key(key) {
        return Err(ConvertError::BuildArg(text.to_string()));
    }
    Ok((key.to_string(), value.to_string()))
}

/// A step being assembled.
struct StepOut {
    name: String,
    inputs: Vec<String>,
    script: Vec<String>,
    env: BTreeMap<String, String>,
    notes: Vec<String>,
    /// False for a step that only copies (COPYs after the stage's last RUN).
    runs: bool,
}

/// A lock-file fetch made from a download command.
struct FetchOut {
    name: String,
    ecosystem: Ecosystem,
    /// The lock file, relative to the context (the spec's directory).
    lock: String,
    index: Option<String>,
    notes: Vec<String>,
}

/// What a RUN of the stage's later steps needs to read a fetch of its ecosystem: the fetch as
/// an input, environment variables, and a line of setup before the command.
#[derive(Clone)]
struct Binding {
    ecosystem: Ecosystem,
    fetch: String,
}

/// An image path that RUN commands see as another path under `/inputs` (a fetch's mount, a
/// stage's output, the context), and the input that provides it.
#[derive(Clone)]
struct Alias {
    target: String,
    input: String,
}

struct Stage {
    alias: Option<String>,
    label: String,
    /// The FROM line.
    line: usize,
    base: PinnedImage,
    /// The earlier stage's last step when this stage is `FROM <that stage>`: it starts the
    /// chain.
    parent_step: Option<String>,
    has_run: bool,
    args: BTreeMap<String, String>,
    env: Vec<(String, String)>,
    workdir: String,
    user: Option<String>,
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    labels: BTreeMap<String, String>,
    expose: Vec<String>,
    /// Absolute paths the stage made: rewritten under /out in its RUN commands.
    made: BTreeSet<String>,
    /// Context files and directories COPY'd into the stage: (image path, context path, is a
    /// directory), latest last. Lock files are found here.
    copied: Vec<(String, String, bool)>,
    /// Image paths that RUN commands see under `/inputs` instead.
    aliases: BTreeMap<String, Alias>,
    /// Directories a download of this stage filled, now a fetch's mount: image path → fetch.
    provides: BTreeMap<String, Alias>,
    /// Fetches that later cargo and go commands of the stage read.
    bindings: Vec<Binding>,
    /// Script lines (COPYs) waiting for the next RUN or the end of the stage.
    pending: Vec<String>,
    pending_inputs: Vec<String>,
    pending_notes: Vec<String>,
    steps: Vec<StepOut>,
    notes: Vec<String>,
}

/// A RUN as a step will run it.
struct Run {
    command: String,
    notes: Vec<String>,
    inputs: Vec<String>,
    env: Vec<(String, String)>,
    setup: Vec<String>,
}

impl Stage {
    fn new(line: usize, label: String, alias: Option<String>, base: PinnedImage) -> Self {
        Stage {
            alias,
            label,
            line,
            base,
            parent_step: None,
            has_run: false,
            args: BTreeMap::new(),
            env: Vec::new(),
            workdir: "/".to_string(),
            user: None,
            entrypoint: None,
            cmd: None,
            labels: BTreeMap::new(),
            expose: Vec::new(),
            made: BTreeSet::new(),
            copied: Vec::new(),
            aliases: BTreeMap::new(),
            provides: BTreeMap::new(),
            bindings: Vec::new(),
            pending: Vec::new(),
            pending_inputs: Vec::new(),
            pending_notes: Vec::new(),
            steps: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// A stage `FROM` this one: the image settings, what it made and what its RUNs see carry
    /// over (ARGs do not, as in Docker); its chain starts from this stage's last step.
    fn child(&self, line: usize, label: String, alias: Option<String>) -> Stage {
        let mut child = Stage::new(line, label, alias, self.base.clone());
        child.parent_step = self.chain_end().map(str::to_string);
        child.env = self.env.clone();
        child.workdir = self.workdir.clone();
        child.user = self.user.clone();
        child.entrypoint = self.entrypoint.clone();
        child.cmd = self.cmd.clone();
        child.labels = self.labels.clone();
        child.expose = self.expose.clone();
        child.made = self.made.clone();
        child.copied = self.copied.clone();
        child.aliases = self.aliases.clone();
        child.provides = self.provides.clone();
        child.bindings = self.bindings.clone();
        child
    }

    fn last_step(&self) -> Option<&str> {
        self.steps.last().map(|step| step.name.as_str())
    }

    /// The step whose /out holds everything the stage added (its own, or its parent's).
    fn chain_end(&self) -> Option<&str> {
        self.last_step().or(self.parent_step.as_deref())
    }

    /// Variables for expansion: the stage's ARGs, then its ENVs.
    fn variables(&self) -> BTreeMap<String, String> {
        let mut variables = self.args.clone();
        variables.extend(self.env.iter().cloned());
        variables
    }

    fn add_input(&mut self, input: &str) {
        if !self.pending_inputs.iter().any(|i| i == input) {
            self.pending_inputs.push(input.to_string());
        }
    }

    /// The context path of the file at `image_path`, if a COPY of this stage (or its parent)
    /// brought it from the context and it is a file there.
    fn context_file(&self, image_path: &str, context: &Path) -> Option<String> {
        self.copied
            .iter()
            .rev()
            .find_map(|(dest, source, is_dir)| {
                if dest == image_path && !is_dir {
                    return Some(source.clone());
                }
                let rest = image_path.strip_prefix(dest.trim_end_matches('/'))?;
                let rest = rest.strip_prefix('/')?;
                is_dir.then(|| {
                    if source.is_empty() {
                        rest.to_string()
                    } else {
                        format!("{source}/{rest}")
                    }
                })
            })
            .filter(|source| context.join(source).is_file())
    }

    /// Closes the pending COPYs (and `run`, if any) into one step.
    fn flush(&mut self, run: Option<Run>) {
        if self.pending.is_empty() && run.is_none() {
            return;
        }
        let name = format!("{}-{}", self.label, self.steps.len() + 1);
        let mut inputs = Vec::new();
        let mut script = Vec::new();
        if let Some(previous) = self.chain_end().map(str::to_string) {
            // Inputs are 0644/0755 and root's: the copy is the step's own, writable.
            script.push(format!("cp -R /inputs/{previous}/. /out/"));
            inputs.push(previous);
        }
        for input in self.pending_inputs.drain(..) {
            if !inputs.contains(&input) {
                inputs.push(input);
            }
        }
        script.append(&mut self.pending);
        let mut notes = std::mem::take(&mut self.pending_notes);
        // A RUN sees the stage's ARGs and ENVs; copying needs none.
        let mut env: BTreeMap<String, String> = BTreeMap::new();
        let runs = run.is_some();
        if let Some(run) = run {
            for input in run.inputs {
                if !inputs.contains(&input) {
                    inputs.push(input);
                }
            }
            let workdir = out_path(&self.workdir);
            script.push(format!(
                "mkdir -p {} && cd {}",
                sh_quote(&workdir),
                sh_quote(&workdir)
            ));
            script.extend(run.setup);
            script.push(run.command);
            notes.extend(run.notes);
            env.extend(self.args.clone());
            env.extend(self.env.iter().cloned());
            env.extend(run.env);
            env.retain(|key, _| valid_env_key(key) && key != "SOURCE_DATE_EPOCH");
        }
        self.steps.push(StepOut {
            name,
            inputs,
            script,
            env,
            notes,
            runs,
        });
    }
}

/// Everything the conversion has made so far, across stages.
struct Converted {
    stages: Vec<Stage>,
    fetches: Vec<FetchOut>,
    uses_context: bool,
    top_notes: Vec<String>,
}

/// Converts the Dockerfile text into spec TOML.
pub fn convert(text: &str, options: &Options<'_>) -> Result<String, ConvertError> {
    let instructions = dockerfile::parse(text)?;
    let mut global_args: BTreeMap<String, String> = BTreeMap::new();
    let mut all = Converted {
        stages: Vec::new(),
        fetches: Vec::new(),
        uses_context: false,
        top_notes: Vec::new(),
    };

    for (position, instruction) in instructions.iter().enumerate() {
        let Instruction {
            line,
            keyword,
            flags,
            arguments,
        } = instruction;
        let line = *line;
        if keyword == "FROM" {
            from(&mut all, instruction, &global_args)?;
            continue;
        }
        let Some(stage_index) = all.stages.len().checked_sub(1) else {
            if keyword == "ARG" {
                for (key, value) in pairs(&arguments.text()) {
                    let value = options
                        .build_args
                        .get(&key)
                        .cloned()
                        .or(value)
                        .unwrap_or_default();
                    global_args.insert(key, value);
                }
                continue;
            }
            return Err(ConvertError::NoFrom);
        };
        let (earlier, rest) = all.stages.split_at_mut(stage_index);
        let stage = &mut rest[0];
        let variables = stage.variables();
        match keyword.as_str() {
            "ARG" => {
                for (key, value) in pairs(&arguments.text()) {
                    let value = options
                        .build_args
                        .get(&key)
                        .cloned()
                        .or_else(|| value.map(|v| expand(&v, &variables)))
                        .or_else(|| global_args.get(&key).cloned())
                        .unwrap_or_default();
                    stage.args.insert(key, value);
                }
            }
            "ENV" => {
                for (key, value) in pairs(&arguments.text()) {
                    let value = expand(&value.unwrap_or_default(), &stage.variables());
                    stage.env.retain(|(existing, _)| *existing != key);
                    stage.env.push((key, value));
                }
            }
            "WORKDIR" => {
                let path = expand(arguments.text().trim(), &variables);
                stage.workdir = resolve(&stage.workdir, &path);
                stage.made.insert(stage.workdir.clone());
            }
            "USER" => stage.user = Some(expand(arguments.text().trim(), &variables)),
            "LABEL" => {
                for (key, value) in pairs(&arguments.text()) {
                    stage
                        .labels
                        .insert(key, expand(&value.unwrap_or_default(), &variables));
                }
            }
            "EXPOSE" => {
                for port in words(&expand(&arguments.text(), &variables)) {
                    let port = if port.contains('/') {
                        port
                    } else {
                        format!("{port}/tcp")
                    };
                    if !stage.expose.contains(&port) {
                        stage.expose.push(port);
                    }
                }
            }
            "CMD" => stage.cmd = Some(argv(arguments)),
            "ENTRYPOINT" => {
                stage.entrypoint = Some(argv(arguments));
                stage.cmd = None;
            }
            "COPY" | "ADD" => {
                let later_runs = later_run_texts(&instructions[position + 1..]);
                copy(
                    stage,
                    earlier,
                    instruction,
                    &later_runs,
                    options,
                    &mut all.uses_context,
                    &mut all.top_notes,
                )?;
            }
            "RUN" => {
                let command = match arguments {
                    Arguments::Exec(words) => words
                        .iter()
                        .map(|w| sh_quote(w))
                        .collect::<Vec<_>>()
                        .join(" "),
                    Arguments::Shell(text) => text.clone(),
                };
                let mut run_aliases = BTreeMap::new();
                let mut notes = Vec::new();
                for (flag, value) in flags {
                    run_flag(
                        line,
                        flag,
                        value,
                        earlier,
                        &mut run_aliases,
                        &mut notes,
                        &mut all.uses_context,
                    );
                }
                if stage.user.is_some() {
                    notes.push(format!(
                        "line {line}: USER applies to the image only; steps run as sealroom's unprivileged user"
                    ));
                }
                let had_run = stage.has_run;
                stage.has_run = true;
                let run = convert_run(
                    stage,
                    line,
                    &command,
                    run_aliases,
                    notes,
                    options,
                    &mut all.fetches,
                );
                match run {
                    Some(run) => stage.flush(Some(run)),
                    None => stage.has_run = had_run,
                }
            }
            "SHELL" | "VOLUME" | "HEALTHCHECK" | "STOPSIGNAL" | "ONBUILD" | "MAINTAINER" => {
                stage.notes.push(format!(
                    "line {line}: `{keyword}` is not converted (an `[[image]]` has no such setting)"
                ));
            }
            other => {
                return Err(ConvertError::Invalid {
                    line,
                    message: format!("unknown instruction `{other}`"),
                });
            }
        }
    }
    let Some(last) = all.stages.last_mut() else {
        return Err(ConvertError::NoFrom);
    };
    last.flush(None);
    rename_final_stage(&mut all.stages, &mut all.fetches);
    drop_unused_copies(&mut all.stages);
    Ok(emit(&all, options))
}

/// FROM: a new stage, from a pinned image or from an earlier stage.
fn from(
    all: &mut Converted,
    instruction: &Instruction,
    global_args: &BTreeMap<String, String>,
) -> Result<(), ConvertError> {
    let line = instruction.line;
    if let Some(stage) = all.stages.last_mut() {
        stage.flush(None);
    }
    let text = expand(&instruction.arguments.text(), global_args);
    let parts = words(&text);
    let (image, alias) = match parts.as_slice() {
        [image] => (image.clone(), None),
        [image, as_word, alias] if as_word.eq_ignore_ascii_case("as") => {
            (image.clone(), Some(alias.to_ascii_lowercase()))
        }
        _ => {
            return Err(ConvertError::Invalid {
                line,
                message: format!("expected `FROM IMAGE [AS NAME]`, found `FROM {text}`"),
            });
        }
    };
    let label = alias
        .as_deref()
        .and_then(|alias| alias.parse::<Name>().ok())
        .map_or_else(
            || format!("stage{}", all.stages.len()),
            |name| name.to_string(),
        );
    let mut notes = Vec::new();
    for (flag, value) in &instruction.flags {
        notes.push(format!(
            "line {line}: `FROM --{flag}={value}` is not carried over: steps run on the engine's own platform"
        ));
    }
    let parent = all
        .stages
        .iter()
        .find(|stage| stage.alias.as_deref() == Some(image.to_ascii_lowercase().as_str()));
    let mut stage = match parent {
        Some(parent) => parent.child(line, label, alias),
        None => {
            if !image.contains("@sha256:") {
                return Err(ConvertError::Unpinned { line, image });
            }
            let base: PinnedImage = image.parse().map_err(|error: crate::spec::InvalidValue| {
                ConvertError::Invalid {
                    line,
                    message: format!("FROM `{image}`: {}", error.message),
                }
            })?;
            Stage::new(line, label, alias, base)
        }
    };
    stage.notes.extend(notes);
    // An unnamed final stage is renamed `final` at the end.
    all.stages.push(stage);
    Ok(())
}

/// The texts of the RUNs after an instruction, up to the next FROM.
fn later_run_texts(rest: &[Instruction]) -> Vec<String> {
    rest.iter()
        .take_while(|instruction| instruction.keyword != "FROM")
        .filter(|instruction| instruction.keyword == "RUN")
        .map(|instruction| instruction.arguments.text())
        .collect()
}

/// COPY and ADD: a copy into `/out` (from the context or an earlier stage's step), or, for a
/// directory an earlier stage's download filled, that fetch as an input seen at the
/// destination.
fn copy(
    stage: &mut Stage,
    earlier: &[Stage],
    instruction: &Instruction,
    later_runs: &[String],
    options: &Options<'_>,
    uses_context: &mut bool,
    top_notes: &mut Vec<String>,
) -> Result<(), ConvertError> {
    let Instruction {
        line,
        keyword,
        flags,
        arguments,
    } = instruction;
    let line = *line;
    let variables = stage.variables();
    let mut parts = match arguments {
        Arguments::Exec(words) => words.clone(),
        Arguments::Shell(text) => words(text),
    };
    parts
        .iter_mut()
        .for_each(|part| *part = expand(part, &variables));
    if parts.len() < 2 {
        return Err(ConvertError::Invalid {
            line,
            message: format!("{keyword} needs a source and a destination"),
        });
    }
    let dest_word = parts.pop().expect("checked");
    let many = parts.len() > 1;
    let dest = resolve(&stage.workdir, &dest_word);
    let dest_is_dir = dest_word.ends_with('/') || many || dest_word == ".";
    for (flag, value) in flags {
        if flag != "from" {
            stage.pending_notes.push(format!(
                "line {line}: `--{flag}={value}` is not carried over: layers hold files owned by root with their modes as built"
            ));
        }
    }
    let from = flags
        .iter()
        .find(|(flag, _)| flag == "from")
        .map(|(_, v)| v);
    let source_root = match from {
        None => {
            *uses_context = true;
            stage.add_input("context");
            None
        }
        Some(from) => {
            let Some(source_stage) = earlier_stage(earlier, from) else {
                return Err(ConvertError::Unsupported {
                    line,
                    what: format!("`COPY --from={from}` (not an earlier stage)"),
                    hint: "copy from an earlier stage, or make the files a `[[fetch]]` or a source"
                        .to_string(),
                });
            };
            // A directory the stage's download filled is the fetch's.
            if let [source] = parts.as_slice() {
                let source_path = resolve(&source_stage.workdir, source);
                if let Some(alias) = provided(source_stage, &source_path) {
                    let dest_path = dest.trim_end_matches('/').to_string();
                    let used = later_runs
                        .iter()
                        .any(|text| mentions_path(text, &dest_path));
                    stage.add_input(&alias.input);
                    if used {
                        stage.pending_notes.push(format!(
                            "line {line}: the files of `{source}` are the [[fetch]] `{}`: this stage's RUNs read them at {} (`{dest_path}` in their commands is rewritten), and they are not copied into the image",
                            alias.input, alias.target
                        ));
                        stage.aliases.insert(dest_path, alias);
                    } else {
                        stage.pending.push(format!(
                            "mkdir -p {to} && cp -R {from}/. {to}/",
                            to = sh_quote(&out_path(&dest_path)),
                            from = sh_quote(&alias.target)
                        ));
                        stage.made.insert(dest_path);
                    }
                    return Ok(());
                }
            }
            let Some(step) = source_stage.chain_end() else {
                return Err(ConvertError::Unsupported {
                    line,
                    what: format!("`COPY --from={from}` of a stage that adds no files"),
                    hint: "sealroom has the files a stage adds, not those of its base image"
                        .to_string(),
                });
            };
            let step = step.to_string();
            stage.add_input(&step);
            Some(step)
        }
    };
    for source in &parts {
        if source_root.is_none() && escapes(source) {
            return Err(ConvertError::Invalid {
                line,
                message: format!(
                    "{keyword} source `{source}` is outside the build context (as `docker build` says: forbidden path outside the build context)"
                ),
            });
        }
        if keyword == "ADD" && (source.contains("://") || source.starts_with("git@")) {
            top_notes.push(format!(
                "line {line}: `ADD {source}` downloads: move it into a [[fetch]] with its url and sha256, and give the fetch to a step as an input"
            ));
            continue;
        }
        if keyword == "ADD" && is_archive_name(source) {
            stage.pending_notes.push(format!(
                "line {line}: ADD would unpack `{source}`; it is copied as a file here: unpack it in a step (`tar -xf`)"
            ));
        }
        let line_text = copy_line(
            source_root.as_deref(),
            source,
            &dest,
            dest_is_dir,
            options.context,
        );
        stage.pending.push(line_text);
        if source_root.is_none() {
            record_context_copy(stage, source, &dest, dest_is_dir, options.context);
        }
    }
    if dest_is_dir
        || parts
            .iter()
            .any(|source| source_root.is_none() && options.context.join(source).is_dir())
    {
        stage.made.insert(dest.trim_end_matches('/').to_string());
    } else {
        stage.made.insert(dest.clone());
    }
    Ok(())
}

/// True when the relative `path` climbs above its root with `..`.
fn escapes(path: &str) -> bool {
    if path.contains("://") {
        return false;
    }
    let mut depth: i64 = 0;
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                depth -= 1;
                if depth < 0 {
                    return true;
                }
            }
            _ => depth += 1,
        }
    }
    false
}

/// The earlier stage a `--from=` names: by its index or its name.
fn earlier_stage<'a>(earlier: &'a [Stage], from: &str) -> Option<&'a Stage> {
    from.parse::<usize>()
        .ok()
        .and_then(|index| earlier.get(index))
        .or_else(|| {
            earlier
                .iter()
                .find(|s| s.alias.as_deref() == Some(from.to_ascii_lowercase().as_str()))
        })
}

/// The fetch mount that holds `path` of `stage`, when a download of the stage filled it.
fn provided(stage: &Stage, path: &str) -> Option<Alias> {
    let path = path.trim_end_matches('/');
    stage.provides.iter().find_map(|(dir, alias)| {
        let rest = path.strip_prefix(dir.as_str())?;
        (rest.is_empty() || rest.starts_with('/')).then(|| Alias {
            target: format!("{}{rest}", alias.target),
            input: alias.input.clone(),
        })
    })
}

/// Remembers which context paths a COPY put where, for finding lock files later.
fn record_context_copy(
    stage: &mut Stage,
    source: &str,
    dest: &str,
    dest_is_dir: bool,
    context: &Path,
) {
    let relative = source
        .trim_start_matches("./")
        .trim_start_matches('/')
        .trim_end_matches('/');
    let relative = if relative == "." { "" } else { relative };
    let dest = dest.trim_end_matches('/').to_string();
    if relative.contains(['*', '?', '[']) {
        for file in glob_files(context, relative) {
            let name = file.rsplit('/').next().unwrap_or(&file).to_string();
            stage.copied.push((format!("{dest}/{name}"), file, false));
        }
        return;
    }
    let is_dir = relative.is_empty() || context.join(relative).is_dir();
    let target = if is_dir || !dest_is_dir {
        dest
    } else {
        let name = relative.rsplit('/').next().unwrap_or(relative);
        format!("{dest}/{name}")
    };
    stage.copied.push((target, relative.to_string(), is_dir));
}

/// The context files matching `pattern` (`*`, `?` in its last segment), sorted.
fn glob_files(context: &Path, pattern: &str) -> Vec<String> {
    let (directory, name_pattern) = match pattern.rsplit_once('/') {
        Some((directory, name)) => (directory, name),
        None => ("", pattern),
    };
    let Ok(entries) = std::fs::read_dir(context.join(directory)) else {
        return Vec::new();
    };
    let mut found: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|entry| entry.path().is_file())
        .filter_map(|entry| entry.file_name().to_str().map(str::to_string))
        .filter(|name| wildcard(name_pattern.as_bytes(), name.as_bytes()))
        .map(|name| {
            if directory.is_empty() {
                name
            } else {
                format!("{directory}/{name}")
            }
        })
        .collect();
    found.sort();
    found
}

/// `*` and `?` matching (no character classes).
fn wildcard(pattern: &[u8], name: &[u8]) -> bool {
    match (pattern.first(), name.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            wildcard(&pattern[1..], name) || (!name.is_empty() && wildcard(pattern, &name[1..]))
        }
        (Some(b'?'), Some(_)) => wildcard(&pattern[1..], &name[1..]),
        (Some(p), Some(n)) if p == n => wildcard(&pattern[1..], &name[1..]),
        _ => false,
    }
}

/// True when `text` names `path` as a path (not as a prefix of a longer name).
fn mentions_path(text: &str, path: &str) -> bool {
    text.match_indices(path).any(|(index, _)| {
        let after = text[index + path.len()..].chars().next();
        after.is_none_or(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    })
}

/// A RUN's `--mount`, `--network` and `--security` flags: bind mounts become inputs seen at
/// their target; the rest is said in a note.
fn run_flag(
    line: usize,
    flag: &str,
    value: &str,
    earlier: &[Stage],
    run_aliases: &mut BTreeMap<String, Alias>,
    notes: &mut Vec<String>,
    uses_context: &mut bool,
) {
    match flag {
        "mount" => {
            let options: BTreeMap<&str, &str> = value
                .split(',')
                .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
                .collect();
            let kind = options.get("type").copied().unwrap_or("bind");
            let target = ["target", "dst", "destination"]
                .iter()
                .find_map(|key| options.get(key).copied());
            match (kind, target) {
                ("bind", Some(target)) => {
                    let source = ["source", "src"]
                        .iter()
                        .find_map(|key| options.get(key).copied())
                        .unwrap_or("/");
                    let alias = match options.get("from") {
                        None => {
                            *uses_context = true;
                            let relative = source.trim_start_matches("./").trim_matches('/');
                            Some(Alias {
                                target: if relative.is_empty() || relative == "." {
                                    "/inputs/context".to_string()
                                } else {
                                    format!("/inputs/context/{relative}")
                                },
                                input: "context".to_string(),
                            })
                        }
                        Some(from) => earlier_stage(earlier, from).and_then(|stage| {
                            let source_path = resolve(&stage.workdir, source);
                            provided(stage, &source_path).or_else(|| {
                                stage.chain_end().map(|step| Alias {
                                    target: format!(
                                        "/inputs/{step}{}",
                                        source_path.trim_end_matches('/')
                                    ),
                                    input: step.to_string(),
                                })
                            })
                        }),
                    };
                    match alias {
                        Some(alias) => {
                            run_aliases.insert(resolve("/", target), alias);
                        }
                        None => notes.push(format!(
                            "line {line}: `--mount={value}` names no earlier stage with files: not converted"
                        )),
                    }
                }
                ("cache", _) => notes.push(format!(
                    "line {line}: `--mount={value}` is dropped: a step starts from its inputs alone (the action cache keeps whole step results instead)"
                )),
                ("tmpfs", _) => notes.push(format!(
                    "line {line}: `--mount={value}` is dropped: use /tmp or /build, each step's scratch file systems"
                )),
                _ => notes.push(format!(
                    "line {line}: `--mount={value}` is not available to steps (a hermetic step sees only its inputs)"
                )),
            }
        }
        "network" if value == "none" => {}
        "network" => notes.push(format!(
            "line {line}: `--network={value}` is dropped: steps run with the network off"
        )),
        _ => notes.push(format!("line {line}: `--{flag}={value}` is dropped")),
    }
}

/// What a path a command writes becomes.
enum Placement {
    /// Already the step's own (`/out`, scratch, a path the stage made, an input).
    Kept,
    /// Rewritten under `/out` (it lands at its path in the image).
    Moved,
    /// No safe rewrite: in the base image's own directories.
    Base,
}

/// Where a written absolute `path` goes.
fn placement(stage: &Stage, path: &str, aliases: &BTreeMap<String, Alias>) -> Placement {
    let under = |root: &str| path == root || path.starts_with(&format!("{root}/"));
    if ["/out", "/tmp", "/build", "/dev", "/proc", "/inputs"]
        .iter()
        .any(|root| under(root))
        || stage.made.iter().any(|made| made != "/" && under(made))
        || aliases.keys().any(|alias| under(alias))
    {
        return Placement::Kept;
    }
    const BASE: &[&str] = &[
        "/usr", "/etc", "/var", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/root",
        "/home", "/boot", "/run", "/sys", "/opt", "/srv", "/mnt", "/media",
    ];
    let top = format!(
        "/{}",
        path.trim_start_matches('/').split('/').next().unwrap_or("")
    );
    let in_base = path == "/"
        || BASE.contains(&path)
        || (BASE.contains(&top.as_str())
            && !matches!(top.as_str(), "/opt" | "/srv" | "/mnt" | "/media"));
    if in_base {
        Placement::Base
    } else {
        Placement::Moved
    }
}

/// The environment a command of `ecosystem` needs to read the fetch `fetch` offline, and the
/// setup line before it.
fn binding_env(ecosystem: Ecosystem, fetch: &str) -> (Vec<(String, String)>, Option<String>) {
    let pairs: &[(&str, String)] = &match ecosystem {
        Ecosystem::Npm => vec![
            ("npm_config_audit", "false".to_string()),
            ("npm_config_cache", format!("/inputs/{fetch}")),
            ("npm_config_fund", "false".to_string()),
            ("npm_config_logs_dir", "/tmp/npm-logs".to_string()),
            ("npm_config_offline", "true".to_string()),
            ("npm_config_update_notifier", "false".to_string()),
        ],
        Ecosystem::Cargo => vec![
            ("CARGO_HOME", "/tmp/cargo-home".to_string()),
            ("CARGO_NET_OFFLINE", "true".to_string()),
        ],
        Ecosystem::Go => vec![
            ("GOCACHE", "/tmp/gocache".to_string()),
            ("GOMODCACHE", "/tmp/gomodcache".to_string()),
            ("GOPROXY", format!("file:///inputs/{fetch}")),
            ("GOSUMDB", "off".to_string()),
            ("GOTOOLCHAIN", "local".to_string()),
        ],
        Ecosystem::Pip => vec![],
    };
    let env = pairs
        .iter()
        .map(|(key, value)| (key.to_string(), value.clone()))
        .collect();
    let setup = (ecosystem == Ecosystem::Cargo).then(|| {
        format!(
            "mkdir -p /tmp/cargo-home && cp /inputs/{fetch}/config.toml /tmp/cargo-home/config.toml"
        )
    });
    (env, setup)
}

/// Gives a command the fetch `fetch` of `ecosystem`: as an input, with the environment and
/// setup it needs.
fn bind(
    ecosystem: Ecosystem,
    fetch: &str,
    inputs: &mut Vec<String>,
    env: &mut Vec<(String, String)>,
    setup: &mut Vec<String>,
) {
    if !inputs.iter().any(|input| input == fetch) {
        inputs.push(fetch.to_string());
    }
    let (more_env, more_setup) = binding_env(ecosystem, fetch);
    for pair in more_env {
        if !env.contains(&pair) {
            env.push(pair);
        }
    }
    if let Some(line) = more_setup
        && !setup.contains(&line)
    {
        setup.push(line);
    }
}

/// A RUN as a step runs it, or `None` when the RUN was only downloads that are now fetches.
fn convert_run(
    stage: &mut Stage,
    line: usize,
    command: &str,
    run_aliases: BTreeMap<String, Alias>,
    mut notes: Vec<String>,
    options: &Options<'_>,
    fetches: &mut Vec<FetchOut>,
) -> Option<Run> {
    let simple = shell::commands(command);
    let mut variables = stage.variables();
    let mut cwd = stage.workdir.clone();
    let mut inputs: Vec<String> = Vec::new();
    let mut env: Vec<(String, String)> = Vec::new();
    let mut setup: Vec<String> = Vec::new();
    // Downloads the fetches replace: their spans (top level), and whether one was nested.
    let mut replaced: Vec<std::ops::Range<usize>> = Vec::new();
    let mut replaced_nested = false;
    let mut kept_any = false;
    let mut mkdirs: Vec<String> = Vec::new();
    // Downloads that stay: (fix, tool), one note per fix.
    let mut online: Vec<(String, String)> = Vec::new();
    let mut aliases = stage.aliases.clone();
    aliases.extend(run_aliases);
    for simple_command in &simple {
        let program = simple_command.program().unwrap_or("");
        match program {
            "cd" => {
                let to = simple_command.words.get(1).map_or("/root", String::as_str);
                cwd = resolve(&cwd, to);
                continue;
            }
            "export" => {
                for word in &simple_command.words[1..] {
                    if let Some((key, value)) = word.split_once('=') {
                        variables.insert(key.to_string(), value.to_string());
                    }
                }
                continue;
            }
            "" if simple_command.writes.is_empty() => {
                // `NAME=value` alone sets a shell variable for what follows.
                variables.extend(simple_command.assignments.iter().cloned());
                continue;
            }
            "set" | "true" | ":" | "echo" | "ls" if simple_command.writes.is_empty() => {
                continue;
            }
            "mkdir" => {
                mkdirs.extend(
                    simple_command.words[1..]
                        .iter()
                        .filter(|word| !word.starts_with('-'))
                        .map(|word| resolve(&cwd, word)),
                );
            }
            _ => {}
        }
        let mut command_variables = variables.clone();
        command_variables.extend(simple_command.assignments.iter().cloned());
        match classify::classify(simple_command, &command_variables) {
            Kind::Fetch(download) => {
                match lock_fetch(stage, line, &download, &cwd, options, fetches) {
                    Ok(fetch) => {
                        if let Some(dest) = &download.dest {
                            let dest = resolve(&cwd, dest);
                            if dest == cwd || dest == "/" {
                                notes.push(format!(
                                    "line {line}: `{}` downloads into its working directory `{dest}`: the files are at /inputs/{fetch} instead",
                                    download.tool
                                ));
                            } else {
                                let target = if download.ecosystem == Ecosystem::Cargo {
                                    format!("/inputs/{fetch}/vendor")
                                } else {
                                    format!("/inputs/{fetch}")
                                };
                                let alias = Alias {
                                    target,
                                    input: fetch.clone(),
                                };
                                stage.provides.insert(dest.clone(), alias.clone());
                                stage.aliases.insert(dest.clone(), alias.clone());
                                aliases.insert(dest, alias);
                            }
                        }
                        if matches!(download.ecosystem, Ecosystem::Cargo | Ecosystem::Go)
                            && !stage.bindings.iter().any(|b| b.fetch == fetch)
                        {
                            stage.bindings.push(Binding {
                                ecosystem: download.ecosystem,
                                fetch: fetch.clone(),
                            });
                        }
                        if download.installs {
                            kept_any = true;
                            bind(
                                download.ecosystem,
                                &fetch,
                                &mut inputs,
                                &mut env,
                                &mut setup,
                            );
                            notes.push(format!(
                                "line {line}: `{}` reads the [[fetch]] `{fetch}` offline (the variables in `env` say where)",
                                download.tool
                            ));
                        } else if simple_command.nested {
                            replaced_nested = true;
                            notes.push(format!(
                                "line {line}: the `{}` in this RUN's shell script became the [[fetch]] `{fetch}`: take it out of the script (with the network off it fails)",
                                download.tool
                            ));
                        } else {
                            replaced.push(simple_command.span.clone());
                        }
                    }
                    Err(note) => {
                        kept_any = true;
                        notes.push(note);
                    }
                }
            }
            Kind::Online { tool, fix } => {
                kept_any = true;
                online.push((fix, tool));
            }
            Kind::Resolves {
                ecosystem,
                tool,
                fix,
            } => {
                kept_any = true;
                match stage.bindings.iter().find(|b| b.ecosystem == ecosystem) {
                    Some(binding) => {
                        let fetch = binding.fetch.clone();
                        bind(ecosystem, &fetch, &mut inputs, &mut env, &mut setup);
                    }
                    None => online.push((fix, tool)),
                }
            }
            Kind::Offline | Kind::Other => {
                if program != "mkdir" {
                    kept_any = true;
                }
                // An offline cargo or go command still reads what an earlier download of the
                // stage brought: the fetch.
                let ecosystem = match program {
                    "cargo" => Some(Ecosystem::Cargo),
                    "go" => Some(Ecosystem::Go),
                    _ => None,
                };
                if let Some(binding) = ecosystem
                    .and_then(|e| stage.bindings.iter().find(|b| b.ecosystem == e).cloned())
                {
                    bind(
                        binding.ecosystem,
                        &binding.fetch,
                        &mut inputs,
                        &mut env,
                        &mut setup,
                    );
                }
            }
        }
        if classify::compiles_through_a_temp_dir(simple_command, &command_variables) {
            notes.push(format!(
                "line {line}: `pip install --target` compiles `.pyc` files that record the temporary directory it installs through, so the output differs from build to build: add `--no-compile`"
            ));
        }
        if let Some(what) = classify::installs_into_the_base(simple_command) {
            notes.push(format!(
                "line {line}: {what}, which is read-only in a step and not rewritten: install under a directory of the stage's own (`--target=/app/site`, `--prefix=/app`, `DESTDIR=`) and point PYTHONPATH, PATH or the program there"
            ));
        }
        for (path, venv) in classify::writes(simple_command) {
            let path = resolve(&cwd, &path);
            match placement(stage, &path, &aliases) {
                Placement::Kept => {}
                Placement::Moved => {
                    if venv {
                        notes.push(format!(
                            "line {line}: the virtual environment `{path}` is made at /out{path}, and it records that path (in its scripts' `#!` lines and `activate`): in the image, run it as `{path}/bin/python` or install with `pip install --target` instead"
                        ));
                    }
                    if program != "mkdir"
                        && let Some(parent) = Path::new(&path).parent()
                        && parent != Path::new("/")
                    {
                        let parent = parent.display().to_string();
                        if !stage.made.iter().any(|made| *made == parent) {
                            setup.push(format!("mkdir -p {}", sh_quote(&out_path(&parent))));
                        }
                    }
                    stage.made.insert(path.trim_end_matches('/').to_string());
                }
                Placement::Base => notes.push(format!(
                    "line {line}: this RUN writes `{path}`, in the base image's own directories, which are read-only in a step and not rewritten: install under a directory of the stage's own (`--prefix=/app`, `--target=/app/site`) and point PATH or the program there"
                )),
            }
        }
    }
    let mut fixes: Vec<(String, Vec<String>)> = Vec::new();
    for (fix, tool) in online {
        match fixes.iter_mut().find(|(existing, _)| *existing == fix) {
            Some((_, tools)) if !tools.contains(&tool) => tools.push(tool),
            Some(_) => {}
            None => fixes.push((fix, vec![tool])),
        }
    }
    for (fix, tools) in fixes {
        let tools: Vec<String> = tools.iter().map(|tool| format!("`{tool}`")).collect();
        notes.push(format!(
            "line {line}: this RUN downloads ({}), but steps run with the network off: {fix}",
            tools.join(", ")
        ));
    }
    let removable_mkdirs = mkdirs.iter().all(|dir| {
        aliases
            .keys()
            .any(|alias| alias == dir.trim_end_matches('/'))
    });
    if (!replaced.is_empty() || replaced_nested) && !kept_any && removable_mkdirs {
        // Nothing left to run: the fetches are the RUN.
        stage.pending_notes.extend(
            notes
                .into_iter()
                .filter(|note| !note.contains("take it out of the script")),
        );
        return None;
    }
    let mut command = command.to_string();
    for span in replaced.iter().rev() {
        command.replace_range(span.clone(), "true");
    }
    let mut replacements: BTreeMap<String, String> = stage
        .made
        .iter()
        .filter(|path| path.as_str() != "/")
        .map(|path| (path.clone(), out_path(path)))
        .collect();
    for (path, alias) in &aliases {
        replacements.insert(path.clone(), alias.target.clone());
    }
    let rewritten = rewrite_paths(&command, &replacements);
    for (path, alias) in &aliases {
        if mentions_path(&command, path) && !inputs.contains(&alias.input) {
            inputs.push(alias.input.clone());
        }
    }
    Some(Run {
        command: rewritten,
        notes,
        inputs,
        env,
        setup,
    })
}

/// The `[[fetch]]` for a download (made, or the one already made for the same lock); its name,
/// or the note that says why there is none.
fn lock_fetch(
    stage: &Stage,
    line: usize,
    download: &LockDownload,
    cwd: &str,
    options: &Options<'_>,
    fetches: &mut Vec<FetchOut>,
) -> Result<String, String> {
    let directory = resolve(cwd, download.directory.as_deref().unwrap_or("."));
    let candidates: Vec<String> = match (&download.lock, download.ecosystem) {
        (Some(lock), _) => vec![resolve(&directory, lock)],
        (None, Ecosystem::Npm) => vec![
            resolve(&directory, "package-lock.json"),
            resolve(&directory, "npm-shrinkwrap.json"),
        ],
        (None, ecosystem) => vec![resolve(&directory, ecosystem.default_lock())],
    };
    let Some(lock) = candidates
        .iter()
        .find_map(|path| stage.context_file(path, options.context))
    else {
        return Err(format!(
            "line {line}: `{}` reads `{}`, which no COPY of this stage brought from the build context: COPY the lock file before this RUN and the conversion makes the download a [[fetch]]",
            download.tool, candidates[0]
        ));
    };
    if let Some(existing) = fetches.iter().find(|fetch| {
        fetch.ecosystem == download.ecosystem && fetch.lock == lock && fetch.index == download.index
    }) {
        return Ok(existing.name.clone());
    }
    let mut name = format!("{}-{}", stage.label, download.ecosystem.as_str());
    let mut counter = 2;
    while fetches.iter().any(|fetch| fetch.name == name) {
        name = format!("{}-{}{counter}", stage.label, download.ecosystem.as_str());
        counter += 1;
    }
    let mut notes = vec![format!(
        "line {line}: `{}` became this fetch of `{lock}`: every file it pins, checked against the lock's digests{}",
        download.tool,
        if download.installs {
            "; the install runs offline from it"
        } else {
            ""
        }
    )];
    if download.ecosystem == Ecosystem::Pip {
        let text = std::fs::read_to_string(options.context.join(&lock)).unwrap_or_default();
        if !text.contains("--hash=") {
            notes.push(format!(
                "`{lock}` has no hashes, and a fetch verifies every file by them: generate it with `pip-compile --generate-hashes` (pip-tools) or `uv pip compile --generate-hashes` / `uv export --format requirements-txt`, then build"
            ));
        }
        if download.index.is_none() {
            notes.push(
                "no index named (`--index-url`, `PIP_INDEX_URL`): set `index` here, or PIP_INDEX_URL when building".to_string(),
            );
        }
    }
    fetches.push(FetchOut {
        name: name.clone(),
        ecosystem: download.ecosystem,
        lock,
        index: download.index.clone(),
        notes,
    });
    Ok(name)
}

/// An unnamed final stage is called `final`: its steps `final-N`, its fetches `final-<kind>`.
fn rename_final_stage(stages: &mut [Stage], fetches: &mut [FetchOut]) {
    let taken = stages.iter().any(|stage| stage.label == "final");
    let Some(last) = stages.last_mut() else {
        return;
    };
    if last.alias.is_some() || taken {
        return;
    }
    let old = std::mem::replace(&mut last.label, "final".to_string());
    let prefix = format!("{old}-");
    let rename = |name: &str| match name.strip_prefix(&prefix) {
        Some(rest) => format!("final-{rest}"),
        None => name.to_string(),
    };
    let old_mount = format!("/inputs/{prefix}");
    for step in &mut last.steps {
        for input in &mut step.inputs {
            *input = rename(input);
        }
        for line in &mut step.script {
            *line = line.replace(&old_mount, "/inputs/final-");
        }
        for value in step.env.values_mut() {
            *value = value.replace(&old_mount, "/inputs/final-");
        }
        step.name = rename(&step.name);
    }
    for fetch in fetches.iter_mut() {
        fetch.name = rename(&fetch.name);
    }
}

/// Drops the copy-only steps nothing uses (a stage's COPYs after its last RUN, when no other
/// stage copies from it: its download became a fetch, say).
fn drop_unused_copies(stages: &mut [Stage]) {
    let final_step = stages
        .last()
        .and_then(|stage| stage.last_step())
        .map(str::to_string);
    loop {
        let used: BTreeSet<String> = stages
            .iter()
            .flat_map(|stage| stage.steps.iter())
            .flat_map(|step| step.inputs.iter().cloned())
            .chain(final_step.clone())
            .collect();
        let mut dropped = false;
        for stage in stages.iter_mut() {
            let before = stage.steps.len();
            stage
                .steps
                .retain(|step| step.runs || used.contains(&step.name));
            if stage.steps.len() != before {
                dropped = true;
                stage.notes.push(format!(
                    "line {}: the COPYs at the end of stage `{}` are used by no other stage: left out",
                    stage.line, stage.label
                ));
            }
        }
        if !dropped {
            return;
        }
    }
}

fn emit(all: &Converted, options: &Options<'_>) -> String {
    let stages = &all.stages;
    let final_stage = stages.last().expect("at least one stage");
    // The image the steps run in: the first stage with a RUN, else the final stage's base.
    let sandbox = stages
        .iter()
        .find(|stage| stage.has_run)
        .unwrap_or(final_stage);
    let mut out = String::new();
    out.push_str("# Converted from a Dockerfile by `sealroom convert`; review it before use.\n");
    out.push_str(
        "# Each step's /out holds what its stage adds to the base image, at the paths the\n",
    );
    out.push_str(
        "# image will have; the final stage's last step becomes the image's layer at `/`.\n",
    );
    for note in &all.top_notes {
        out.push_str(&format!("# note: {note}\n"));
    }
    out.push_str(&format!("version = 1\nname = {}\n\n", quote(options.name)));
    out.push_str("[sandbox]\n");
    for stage in stages {
        if stage.has_run && stage.base != sandbox.base {
            out.push_str(&format!(
                "# note: line {}: stage `{}` is FROM {}, but every step runs in this one image\n",
                stage.line, stage.label, stage.base
            ));
        }
    }
    out.push_str(&format!("image = {}\n", quote(&sandbox.base.to_string())));
    if all.uses_context {
        out.push_str("\n[[source]]\nname = \"context\"\npath = \".\"\n");
        out.push_str(
            "exclude = [\".git\", \"sealroom-out\", \"sealroom.toml\", \"Dockerfile\", \"*.intoto.jsonl\"]\n",
        );
    }
    for fetch in &all.fetches {
        out.push('\n');
        for note in &fetch.notes {
            out.push_str(&format!("# note: {note}\n"));
        }
        out.push_str("[[fetch]]\n");
        out.push_str(&format!("name = {}\n", quote(&fetch.name)));
        out.push_str(&format!("lock = {}\n", quote(&fetch.lock)));
        let file_name = fetch.lock.rsplit('/').next().unwrap_or(&fetch.lock);
        if crate::lockfile::LockFormat::infer(file_name).is_none() {
            out.push_str(&format!("format = {}\n", quote(fetch.ecosystem.as_str())));
        }
        if let Some(index) = &fetch.index {
            out.push_str(&format!("index = {}\n", quote(index)));
        }
    }
    for stage in stages {
        for note in &stage.notes {
            out.push_str(&format!("\n# note: {note}"));
        }
        for step in &stage.steps {
            out.push('\n');
            for note in &step.notes {
                out.push_str(&format!("# note: {note}\n"));
            }
            out.push_str("[[step]]\n");
            out.push_str(&format!("name = {}\n", quote(&step.name)));
            if !step.inputs.is_empty() {
                out.push_str(&format!("inputs = {}\n", list(&step.inputs)));
            }
            out.push_str(&format!(
                "run = [\"sh\", \"-ec\", {}]\n",
                multiline(&(step.script.join("\n") + "\n"))
            ));
            if !step.env.is_empty() {
                out.push_str(&format!("env = {}\n", inline_table(&step.env)));
            }
        }
    }
    out.push_str("\n[[image]]\n");
    out.push_str(&format!("name = {}\n", quote(options.name)));
    out.push_str(&format!(
        "base = {}\n",
        quote(&final_stage.base.to_string())
    ));
    if let Some(step) = final_stage.last_step() {
        out.push_str(&format!(
            "layers = [{{ step = {}, path = \"/\" }}]\n",
            quote(step)
        ));
    }
    if let Some(entrypoint) = &final_stage.entrypoint {
        out.push_str(&format!("entrypoint = {}\n", list(entrypoint)));
    }
    if let Some(cmd) = &final_stage.cmd {
        out.push_str(&format!("cmd = {}\n", list(cmd)));
    }
    let env: BTreeMap<String, String> = final_stage.env.iter().cloned().collect();
    if !env.is_empty() {
        out.push_str(&format!("env = {}\n", inline_table(&env)));
    }
    if final_stage.workdir != "/" {
        out.push_str(&format!("workdir = {}\n", quote(&final_stage.workdir)));
    }
    if let Some(user) = &final_stage.user {
        out.push_str(&format!("user = {}\n", quote(user)));
    }
    if !final_stage.labels.is_empty() {
        out.push_str(&format!("labels = {}\n", inline_table(&final_stage.labels)));
    }
    if !final_stage.expose.is_empty() {
        out.push_str(&format!("expose = {}\n", list(&final_stage.expose)));
    }
    out
}

/// CMD/ENTRYPOINT: the exec form as is, the shell form through `/bin/sh -c`.
fn argv(arguments: &Arguments) -> Vec<String> {
    match arguments {
        Arguments::Exec(words) => words.clone(),
        Arguments::Shell(text) => vec!["/bin/sh".to_string(), "-c".to_string(), text.clone()],
    }
}

/// A script line copying `source` (from the context, or from a step's /out) to `dest`.
fn copy_line(
    step: Option<&str>,
    source: &str,
    dest: &str,
    dest_is_dir: bool,
    context: &Path,
) -> String {
    let relative = source.trim_start_matches("./").trim_start_matches('/');
    let relative = if relative == "." { "" } else { relative };
    let from = match step {
        None => format!("/inputs/context/{relative}"),
        Some(step) => format!("/inputs/{step}/{relative}"),
    };
    let from = from.trim_end_matches('/').to_string();
    let to = out_path(dest);
    let glob = relative.contains(['*', '?', '[']);
    let is_dir = match step {
        None => !glob && context.join(relative).is_dir(),
        Some(_) => source.ends_with('/'),
    };
    let from_quoted = if glob { from.clone() } else { sh_quote(&from) };
    if is_dir {
        return format!(
            "mkdir -p {to} && cp -R {from_quoted}/. {to}/",
            to = sh_quote(to.trim_end_matches('/'))
        );
    }
    if dest_is_dir || glob {
        let to = sh_quote(to.trim_end_matches('/'));
        return format!("mkdir -p {to} && cp -R {from_quoted} {to}/");
    }
    if step.is_some() {
        // A stage's path may be a file or a directory: decide when the step runs.
        let to = sh_quote(&to);
        return format!(
            "if [ -d {from_quoted} ]; then mkdir -p {to} && cp -R {from_quoted}/. {to}/; else mkdir -p \"$(dirname {to})\" && cp {from_quoted} {to}; fi"
        );
    }
    let parent = Path::new(&to)
        .parent()
        .map_or("/out".to_string(), |p| p.display().to_string());
    format!(
        "mkdir -p {} && cp {from_quoted} {}",
        sh_quote(&parent),
        sh_quote(&to)
    )
}

/// `/out` + an absolute path in the image.
fn out_path(path: &str) -> String {
    if path == "/" {
        "/out".to_string()
    } else {
        format!("/out{path}")
    }
}

/// `path` against the working directory, normalized (`..` stops at `/`), keeping a trailing `/`.
fn resolve(workdir: &str, path: &str) -> String {
    let joined = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("{workdir}/{path}")
    };
    let mut segments: Vec<&str> = Vec::new();
    for segment in joined.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    format!("/{}", segments.join("/"))
}

/// Expands `$NAME`, `${NAME}` and `${NAME:-default}` from `variables` (unknown ones become "").
fn expand(text: &str, variables: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' && chars.peek() == Some(&'$') {
            out.push('$');
            chars.next();
            continue;
        }
        if c != '$' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'{') {
            chars.next();
            let inner: String = chars.by_ref().take_while(|c| *c != '}').collect();
            let (name, default) = match inner.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (inner.as_str(), None),
            };
            match (variables.get(name), default) {
                (Some(value), _) if !value.is_empty() || default.is_none() => out.push_str(value),
                (_, Some(default)) => out.push_str(default),
                _ => {}
            }
            continue;
        }
        let mut name = String::new();
        while let Some(&next) = chars.peek() {
            if next.is_ascii_alphanumeric() || next == '_' {
                name.push(next);
                chars.next();
            } else {
                break;
            }
        }
        if name.is_empty() {
            out.push('$');
        } else if let Some(value) = variables.get(&name) {
            out.push_str(value);
        }
    }
    out
}

/// Rewrites the absolute paths of `replacements` (and paths below them) to their replacement
/// (`/app` → `/out/app`, `/wheels` → `/inputs/deps-pip`) where they appear as words or parts
/// of words (`>/app/x`, `--prefix=/app`, `"/app/x"`).
fn rewrite_paths(command: &str, replacements: &BTreeMap<String, String>) -> String {
    let mut paths: Vec<&String> = replacements
        .keys()
        .filter(|path| path.as_str() != "/")
        .collect();
    paths.sort_by_key(|path| std::cmp::Reverse(path.len()));
    let bytes = command.as_bytes();
    let mut out = String::with_capacity(command.len());
    let mut index = 0;
    'scan: while index < command.len() {
        let before_ok = index == 0
            || matches!(
                bytes[index - 1],
                b' ' | b'\t' | b'"' | b'\'' | b'=' | b':' | b'(' | b'>' | b'<' | b';' | b'&' | b'|'
            );
        if bytes[index] == b'/' && before_ok {
            for path in &paths {
                if command[index..].starts_with(path.as_str()) {
                    let end = index + path.len();
                    let after_ok = end == command.len()
                        || matches!(
                            bytes[end],
                            b'/' | b' '
                                | b'\t'
                                | b'"'
                                | b'\''
                                | b';'
                                | b'&'
                                | b'|'
                                | b')'
                                | b'>'
                                | b'<'
                                | b'\n'
                        );
                    if after_ok {
                        out.push_str(&replacements[*path]);
                        index = end;
                        continue 'scan;
                    }
                }
            }
        }
        let next = command[index..]
            .chars()
            .next()
            .expect("index is on a char boundary");
        out.push(next);
        index += next.len_utf8();
    }
    out
}

fn is_archive_name(name: &str) -> bool {
    [".tar", ".tar.gz", ".tgz", ".tar.xz", ".tar.bz2"]
        .iter()
        .any(|suffix| name.ends_with(suffix))
}

fn valid_env_key(key: &str) -> bool {
    let mut bytes = key.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Single-quotes `word` for sh unless it is made only of safe characters.
fn sh_quote(word: &str) -> String {
    let safe = !word.is_empty()
        && word.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'_' | b'-' | b'=' | b':' | b',')
        });
    if safe {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// A TOML basic string.
fn quote(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A TOML multi-line basic string (a newline right after the opening quotes is dropped). A `"`
/// is escaped only where it would make three in a row.
fn multiline(text: &str) -> String {
    let mut out = String::from("\"\"\"\n");
    for c in text.chars() {
        match c {
            '"' if out.ends_with("\"\"") => out.push_str("\\\""),
            '"' => out.push('"'),
            '\\' => out.push_str("\\\\"),
            '\n' | '\t' => out.push(c),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push_str("\"\"\"");
    out
}

fn list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|item| quote(item)).collect();
    format!("[{}]", quoted.join(", "))
}

fn inline_table(map: &BTreeMap<String, String>) -> String {
    let entries: Vec<String> = map
        .iter()
        .map(|(key, value)| {
            let key = if valid_env_key(key)
                || key
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                key.clone()
            } else {
                quote(key)
            };
            format!("{key} = {}", quote(value))
        })
        .collect();
    format!("{{ {} }}", entries.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_the_stage_made_are_rewritten_under_out() {
        let made: BTreeMap<String, String> = [
            ("/app".to_string(), "/out/app".to_string()),
            ("/srv/data".to_string(), "/out/srv/data".to_string()),
        ]
        .into();
        assert_eq!(
            rewrite_paths(
                "mkdir -p /app/bin && cp x /app >/srv/data/log; ls /application /usr/bin",
                &made
            ),
            "mkdir -p /out/app/bin && cp x /out/app >/out/srv/data/log; ls /application /usr/bin"
        );
        assert_eq!(rewrite_paths("echo '/app'", &made), "echo '/out/app'");
    }

    #[test]
    fn variables_expand_like_docker() {
        let variables: BTreeMap<String, String> = [
            ("A".to_string(), "x".to_string()),
            ("E".to_string(), String::new()),
        ]
        .into();
        assert_eq!(
            expand("$A/${A}/${B:-d}/${E:-e}/\\$A/$", &variables),
            "x/x/d/e/$A/$"
        );
    }
}
