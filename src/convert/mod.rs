//! `sealroom convert`: a Dockerfile in, an equivalent spec out (TOML text), for review.
//!
//! The model (docs/images.md, "Converting a Dockerfile"): a Dockerfile's RUN changes the image's
//! root filesystem, while a sealroom step writes only `/out`. So each stage becomes a chain of
//! steps whose `/out` is *what the stage adds to its base*, laid out as in the image
//! (`/out/app/hello` is `/app/hello`). Each step copies the previous step's `/out` into its own,
//! does the stage's COPYs, then runs one RUN in `/out<WORKDIR>`; absolute paths in the command
//! that name what the stage itself made (its WORKDIRs, COPY destinations, `mkdir` targets) are
//! rewritten under `/out`. The final stage's last step becomes the image's one new layer at `/`.
//!
//! What cannot carry over is said in a comment in the output: a RUN that downloads (steps have
//! no network: use a `[[fetch]]`), a RUN that writes into the base's own directories, USER for
//! steps (they run unprivileged), stages with other bases (every step runs in the one
//! `[sandbox] image`). An unpinned FROM is an error: the spec pins every image by digest.
//!
//! Reads the Dockerfile and stats paths in its context; writes nothing.

pub mod dockerfile;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

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
    /// The build context (the Dockerfile's directory by default), for COPY sources.
    pub context: &'a Path,
}

/// A step being assembled.
struct StepOut {
    name: String,
    inputs: Vec<String>,
    script: Vec<String>,
    env: BTreeMap<String, String>,
    notes: Vec<String>,
}

struct Stage {
    alias: Option<String>,
    label: String,
    base: PinnedImage,
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
    /// Script lines (COPYs) waiting for the next RUN or the end of the stage.
    pending: Vec<String>,
    pending_inputs: Vec<String>,
    pending_notes: Vec<String>,
    steps: Vec<StepOut>,
    notes: Vec<String>,
}

impl Stage {
    fn last_step(&self) -> Option<&str> {
        self.steps.last().map(|step| step.name.as_str())
    }

    /// Variables for expansion: the stage's ARGs, then its ENVs.
    fn variables(&self) -> BTreeMap<String, String> {
        let mut variables = self.args.clone();
        variables.extend(self.env.iter().cloned());
        variables
    }

    /// Closes the pending COPYs (and `run`, if any) into one step.
    fn flush(&mut self, run: Option<(String, Vec<String>)>) {
        if self.pending.is_empty() && run.is_none() {
            return;
        }
        let name = format!("{}-{}", self.label, self.steps.len() + 1);
        let mut inputs = Vec::new();
        let mut script = Vec::new();
        if let Some(previous) = self.last_step() {
            inputs.push(previous.to_string());
            // Inputs are 0644/0755 and root's: the copy is the step's own, writable.
            script.push(format!("cp -R /inputs/{previous}/. /out/"));
        }
        for input in self.pending_inputs.drain(..) {
            if !inputs.contains(&input) {
                inputs.push(input);
            }
        }
        script.append(&mut self.pending);
        let mut notes = std::mem::take(&mut self.pending_notes);
        if let Some((command, run_notes)) = &run {
            let workdir = out_path(&self.workdir);
            script.push(format!(
                "mkdir -p {} && cd {}",
                sh_quote(&workdir),
                sh_quote(&workdir)
            ));
            script.push(command.clone());
            notes.extend(run_notes.iter().cloned());
        }
        // A RUN sees the stage's ARGs and ENVs; copying needs none.
        let mut env: BTreeMap<String, String> = BTreeMap::new();
        if run.is_some() {
            env.extend(self.args.clone());
            env.extend(self.env.iter().cloned());
            env.retain(|key, _| valid_env_key(key) && key != "SOURCE_DATE_EPOCH");
        }
        self.steps.push(StepOut {
            name,
            inputs,
            script,
            env,
            notes,
        });
    }
}

/// Converts the Dockerfile text into spec TOML.
pub fn convert(text: &str, options: &Options<'_>) -> Result<String, ConvertError> {
    let instructions = dockerfile::parse(text)?;
    let mut global_args: BTreeMap<String, String> = BTreeMap::new();
    let mut stages: Vec<Stage> = Vec::new();
    let mut uses_context = false;
    let mut top_notes: Vec<String> = Vec::new();

    for instruction in &instructions {
        let Instruction {
            line,
            keyword,
            flags,
            arguments,
        } = instruction;
        let line = *line;
        if keyword == "FROM" {
            if let Some(stage) = stages.last_mut() {
                stage.flush(None);
            }
            let text = expand(&arguments.text(), &global_args);
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
            if !image.contains("@sha256:") {
                return Err(ConvertError::Unpinned { line, image });
            }
            let base: PinnedImage = image.parse().map_err(|error: crate::spec::InvalidValue| {
                ConvertError::Invalid {
                    line,
                    message: format!("FROM `{image}`: {}", error.message),
                }
            })?;
            let label = alias
                .as_deref()
                .and_then(|alias| alias.parse::<Name>().ok())
                .map_or_else(|| format!("stage{}", stages.len()), |name| name.to_string());
            // An unnamed final stage is renamed `final` at the end.
            stages.push(Stage {
                alias,
                label,
                base,
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
                pending: Vec::new(),
                pending_inputs: Vec::new(),
                pending_notes: Vec::new(),
                steps: Vec::new(),
                notes: Vec::new(),
            });
            continue;
        }
        let Some(stage_index) = stages.len().checked_sub(1) else {
            if keyword == "ARG" {
                for (key, value) in pairs(&arguments.text()) {
                    global_args.insert(key, value.unwrap_or_default());
                }
                continue;
            }
            return Err(ConvertError::NoFrom);
        };
        let (earlier, rest) = stages.split_at_mut(stage_index);
        let stage = &mut rest[0];
        let variables = stage.variables();
        match keyword.as_str() {
            "ARG" => {
                for (key, value) in pairs(&arguments.text()) {
                    let value = value
                        .map(|v| expand(&v, &variables))
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
                        uses_context = true;
                        if !stage.pending_inputs.iter().any(|i| i == "context") {
                            stage.pending_inputs.push("context".to_string());
                        }
                        None
                    }
                    Some(from) => {
                        let found = from
                            .parse::<usize>()
                            .ok()
                            .and_then(|index| earlier.get(index))
                            .or_else(|| {
                                earlier.iter().find(|s| {
                                    s.alias.as_deref() == Some(from.to_ascii_lowercase().as_str())
                                })
                            });
                        let Some(source_stage) = found else {
                            return Err(ConvertError::Unsupported {
                                line,
                                what: format!("`COPY --from={from}` (not an earlier stage)"),
                                hint: "copy from an earlier stage, or make the files a `[[fetch]]` or a source".to_string(),
                            });
                        };
                        let Some(step) = source_stage.last_step() else {
                            return Err(ConvertError::Unsupported {
                                line,
                                what: format!("`COPY --from={from}` of a stage that adds no files"),
                                hint: "sealroom has the files a stage adds, not those of its base image".to_string(),
                            });
                        };
                        if !stage.pending_inputs.iter().any(|i| i == step) {
                            stage.pending_inputs.push(step.to_string());
                        }
                        Some(step.to_string())
                    }
                };
                for source in &parts {
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
                }
                if dest_is_dir
                    || parts.iter().any(|source| {
                        source_root.is_none() && options.context.join(source).is_dir()
                    })
                {
                    stage.made.insert(dest.trim_end_matches('/').to_string());
                } else {
                    stage.made.insert(dest.clone());
                }
            }
            "RUN" => {
                stage.has_run = true;
                let command = match arguments {
                    Arguments::Exec(words) => words
                        .iter()
                        .map(|w| sh_quote(w))
                        .collect::<Vec<_>>()
                        .join(" "),
                    Arguments::Shell(text) => text.clone(),
                };
                let mut notes = Vec::new();
                if let Some(tool) = downloads(&command) {
                    notes.push(format!(
                        "line {line}: this RUN downloads (`{tool}`), but steps run with the network off: move the download into a [[fetch]] (a pinned url + sha256, or a fixed-output `run`) and give it to this step as an input"
                    ));
                }
                for target in mkdir_targets(&command) {
                    stage.made.insert(target);
                }
                let rewritten = rewrite_paths(&command, &stage.made);
                if stage.user.is_some() {
                    notes.push(format!(
                        "line {line}: USER applies to the image only; steps run as sealroom's unprivileged user"
                    ));
                }
                stage.flush(Some((rewritten, notes)));
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
    let Some(last) = stages.last_mut() else {
        return Err(ConvertError::NoFrom);
    };
    last.flush(None);
    let taken = |label: &str| stages.iter().any(|stage| stage.label == label);
    if stages.last().is_some_and(|last| last.alias.is_none()) && !taken("final") {
        let last = stages.last_mut().expect("checked");
        let old = std::mem::replace(&mut last.label, "final".to_string());
        for step in &mut last.steps {
            let renamed = step.name.replacen(&old, "final", 1);
            for line in &mut step.script {
                *line = line.replace(
                    &format!("/inputs/{}/", step.name),
                    &format!("/inputs/{renamed}/"),
                );
            }
            step.name = renamed;
        }
        for step in &mut last.steps {
            for input in &mut step.inputs {
                if let Some(rest) = input.strip_prefix(&format!("{old}-")) {
                    *input = format!("final-{rest}");
                }
            }
            for line in &mut step.script {
                *line = line.replace(&format!("/inputs/{old}-"), "/inputs/final-");
            }
        }
    }
    Ok(emit(&stages, uses_context, &top_notes, options))
}

fn emit(
    stages: &[Stage],
    uses_context: bool,
    top_notes: &[String],
    options: &Options<'_>,
) -> String {
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
    for note in top_notes {
        out.push_str(&format!("# note: {note}\n"));
    }
    out.push_str(&format!("version = 1\nname = {}\n\n", quote(options.name)));
    out.push_str("[sandbox]\n");
    for stage in stages {
        if stage.has_run && stage.base != sandbox.base {
            out.push_str(&format!(
                "# note: stage `{}` is FROM {}, but every step runs in this one image\n",
                stage.label, stage.base
            ));
        }
    }
    out.push_str(&format!("image = {}\n", quote(&sandbox.base.to_string())));
    if uses_context {
        out.push_str("\n[[source]]\nname = \"context\"\npath = \".\"\n");
        out.push_str(
            "exclude = [\".git\", \"sealroom-out\", \"sealroom.toml\", \"Dockerfile\", \"*.intoto.jsonl\"]\n",
        );
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

/// The download tool a RUN command uses, if any.
fn downloads(command: &str) -> Option<&'static str> {
    const TOOLS: &[(&str, &[&str])] = &[
        ("curl", &["curl"]),
        ("wget", &["wget"]),
        ("apt-get", &["apt-get"]),
        ("apt", &["apt"]),
        ("apk add", &["apk", "add"]),
        ("yum", &["yum"]),
        ("dnf", &["dnf"]),
        ("pip install", &["pip", "install"]),
        ("pip3 install", &["pip3", "install"]),
        ("npm install", &["npm", "install"]),
        ("npm ci", &["npm", "ci"]),
        ("yarn", &["yarn"]),
        ("go get", &["go", "get"]),
        ("go mod download", &["go", "mod"]),
        ("cargo install", &["cargo", "install"]),
        ("cargo fetch", &["cargo", "fetch"]),
        ("git clone", &["git", "clone"]),
        ("gem install", &["gem", "install"]),
    ];
    let tokens: Vec<&str> = command
        .split(|c: char| c.is_whitespace() || matches!(c, ';' | '&' | '|' | '(' | ')'))
        .filter(|token| !token.is_empty())
        .collect();
    // The tool named first in the command (`apt-get install curl` is apt-get).
    TOOLS
        .iter()
        .filter_map(|(name, words)| {
            tokens
                .windows(words.len())
                .position(|window| {
                    window
                        .iter()
                        .zip(words.iter())
                        .all(|(token, word)| token.rsplit('/').next() == Some(*word))
                })
                .map(|position| (position, *name))
        })
        .min()
        .map(|(_, name)| name)
}

/// The absolute paths `mkdir` makes in a command.
fn mkdir_targets(command: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut in_mkdir = false;
    for token in command.split_whitespace() {
        let token = token.trim_matches(['"', '\'']);
        if matches!(token, ";" | "&&" | "||" | "|") {
            in_mkdir = false;
            continue;
        }
        if token.rsplit('/').next() == Some("mkdir") {
            in_mkdir = true;
            continue;
        }
        if in_mkdir && token.starts_with('/') {
            let clean = token
                .trim_end_matches([';', '&', '|'])
                .trim_end_matches('/');
            if !clean.is_empty() && !clean.starts_with("/out") {
                targets.push(clean.to_string());
            }
        }
        if token.ends_with(';') {
            in_mkdir = false;
        }
    }
    targets
}

/// Rewrites the absolute paths in `made` (and paths below them) to `/out/...` where they
/// appear as words or parts of words (`>/app/x`, `--prefix=/app`, `"/app/x"`).
fn rewrite_paths(command: &str, made: &BTreeSet<String>) -> String {
    let mut paths: Vec<&String> = made.iter().filter(|path| path.as_str() != "/").collect();
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
                        out.push_str("/out");
                        out.push_str(path);
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
        let made: BTreeSet<String> = ["/app".to_string(), "/srv/data".to_string()].into();
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

    #[test]
    fn downloads_are_found_by_tool_name() {
        assert_eq!(
            downloads("apt-get update && apt-get install -y x"),
            Some("apt-get")
        );
        assert_eq!(
            downloads("/usr/bin/curl -fsSL https://x | sh"),
            Some("curl")
        );
        assert_eq!(downloads("python -m pip install x"), Some("pip install"));
        assert_eq!(downloads("make && make test"), None);
    }
}
