//! From the raw mirror to the model: every rule of `docs/spec.md`, each broken rule one
//! located `SpecError::Invalid`. The first error found is returned.
//!
//! Reads nothing but the spec's bytes (given), the metadata of source directories and the lock
//! files that lock fetches name (their bytes are part of the spec's model).

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde_spanned::Spanned;

use super::diagnostics::{SourceText, closest, quoted_list};
use super::graph::{Cycle, topological_order};
use super::raw::{self, RawSource, RawSpec, RawStep};
use super::{
    ByteSize, Exclude, Fetch, FetchKind, FetchNetwork, Input, InputKind, Limits, LockFetch, Name,
    PinnedImage, RelativePath, RelativePathError, RunFetch, SPEC_VERSION, SandboxSettings, Source,
    Spec, SpecError, Step, UrlFetch,
};
use crate::digest::{BlobDigest, TreeDigest};
use crate::fetch::Mirrors;
use crate::lockfile::LockFormat;

/// The variable a spec sets with `source_date_epoch`, never through `env`.
const SOURCE_DATE_EPOCH: &str = "SOURCE_DATE_EPOCH";

pub(crate) fn spec(
    display_path: &Path,
    absolute: PathBuf,
    bytes: &[u8],
) -> Result<Spec, SpecError> {
    let digest = BlobDigest::of(bytes);
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(error) => {
            // Locate the bad byte in the valid prefix.
            let valid = std::str::from_utf8(&bytes[..error.valid_up_to()]).unwrap_or_default();
            let source = SourceText {
                path: display_path,
                text: valid,
            };
            return Err(source.invalid(
                valid.len()..valid.len(),
                "expected UTF-8 text, found a byte that is not UTF-8",
                Some("save the spec as UTF-8".to_string()),
            ));
        }
    };
    let source = SourceText {
        path: display_path,
        text,
    };
    let raw = raw::parse(text).map_err(|error| source.toml_error(&error))?;
    let directory = absolute.parent().unwrap_or(Path::new("/")).to_path_buf();
    Validator {
        source: &source,
        names: HashMap::new(),
    }
    .spec(raw, absolute, digest, &directory)
}

/// What a name is taken by, for duplicate and input errors.
struct Declared {
    kind: InputKind,
    index: usize,
    span: Range<usize>,
}

struct Validator<'a> {
    source: &'a SourceText<'a>,
    names: HashMap<Name, Declared>,
}

impl Validator<'_> {
    fn invalid(
        &self,
        span: Range<usize>,
        message: impl Into<String>,
        hint: Option<String>,
    ) -> SpecError {
        self.source.invalid(span, message, hint)
    }

    fn spec(
        mut self,
        raw: RawSpec,
        path: PathBuf,
        digest: BlobDigest,
        directory: &Path,
    ) -> Result<Spec, SpecError> {
        self.version(raw.version.as_ref())?;
        let name = match &raw.name {
            Some(name) => self.name(name)?,
            None => {
                return Err(self.invalid(
                    0..0,
                    "missing key `name`",
                    Some("add `name = \"<project>\"` at the top of the spec".to_string()),
                ));
            }
        };
        let source_date_epoch = match &raw.source_date_epoch {
            None => 0,
            Some(epoch) => u64::try_from(*epoch.get_ref()).map_err(|_| {
                self.invalid(
                    epoch.span(),
                    format!(
                        "expected a non-negative integer (seconds since 1970-01-01 UTC) for `source_date_epoch`, found {}",
                        epoch.get_ref()
                    ),
                    None,
                )
            })?,
        };
        let sandbox = self.sandbox(raw.sandbox.as_ref())?;

        let mut sources = Vec::with_capacity(raw.source.len());
        for (index, raw_source) in raw.source.iter().enumerate() {
            sources.push(self.source(index, raw_source, directory)?);
        }

        let mut fetches = Vec::with_capacity(raw.fetch.len());
        for (index, raw_fetch) in raw.fetch.iter().enumerate() {
            fetches.push(self.fetch(index, raw_fetch, &sandbox, directory)?);
        }

        // Declare every step's name first: a step may take a later step as input.
        let mut step_names = Vec::with_capacity(raw.step.len());
        for (index, raw_step) in raw.step.iter().enumerate() {
            let Some(name) = &raw_step.get_ref().name else {
                return Err(self.invalid(
                    raw_step.span(),
                    "missing key `name` in this `[[step]]`",
                    Some("add `name = \"<step>\"`".to_string()),
                ));
            };
            step_names.push(self.declare(name, InputKind::Step, index)?);
        }
        let mut steps = Vec::with_capacity(raw.step.len());
        for (raw_step, name) in raw.step.iter().zip(step_names) {
            steps.push(self.step(raw_step, name, sandbox.limits)?);
        }
        self.check_artifacts_do_not_collide(&raw.step, &steps)?;
        let steps = self.order(&raw.step, steps)?;
        let declared = |name: &Name| self.names.get(name).map(|declared| declared.kind);
        let images = super::image::validate(self.source, &raw.image, &declared, &steps)?;
        let mirrors = self.mirrors(raw.mirrors.as_ref())?;

        Ok(Spec {
            path,
            digest,
            name,
            sandbox,
            source_date_epoch,
            sources,
            fetches,
            steps,
            images,
            mirrors,
        })
    }

    fn mirrors(
        &self,
        raw: Option<&Spanned<BTreeMap<Spanned<String>, Spanned<String>>>>,
    ) -> Result<Mirrors, SpecError> {
        let mut mirrors = Mirrors::default();
        for (prefix, replacement) in raw.map(Spanned::get_ref).into_iter().flatten() {
            mirrors
                .insert(prefix.get_ref(), replacement.get_ref())
                .map_err(|invalid| {
                    self.invalid(
                        prefix.span().start..replacement.span().end,
                        format!("in `[mirrors]`: {invalid}"),
                        Some("write `\"https://origin.example/\" = \"http://127.0.0.1:8080/\"`: a URL prefix and what replaces it".to_string()),
                    )
                })?;
        }
        Ok(mirrors)
    }

    fn lock_fetch(
        &self,
        name: &Name,
        lock: &Spanned<String>,
        table: &raw::RawFetch,
        sandbox: &SandboxSettings,
        directory: &Path,
    ) -> Result<LockFetch, SpecError> {
        let other_keys = [
            ("url", table.url.is_some()),
            ("sha256", table.sha256.is_some()),
            ("unpack", table.unpack.is_some()),
            ("strip_components", table.strip_components.is_some()),
            ("file_name", table.file_name.is_some()),
            ("run", table.run.is_some()),
            ("output", table.output.is_some()),
            ("image", table.image.is_some()),
            ("env", !table.env.is_empty()),
            ("network", table.network.is_some()),
        ];
        if let Some((key, _)) = other_keys.iter().find(|(_, set)| *set) {
            return Err(self.invalid(
                lock.span(),
                format!("fetch `{name}` reads a `lock`, so `{key}` does not belong to it"),
                Some("the lock file's own digests pin every file it names: a lock fetch takes only `lock`, `format`, `index` and `limits.output`".to_string()),
            ));
        }
        let written = lock.get_ref();
        let relative = RelativePath::parse(written)
            .ok()
            .filter(|path| !path.is_root())
            .ok_or_else(|| {
                self.invalid(
                    lock.span(),
                    format!("expected the path of a lock file inside the spec's directory for `lock` of fetch `{name}`, found `{written}`"),
                    Some("write it relative to the directory that holds the spec, e.g. `lock = \"app/Cargo.lock\"`".to_string()),
                )
            })?;
        let path = relative.under(directory);
        let unreadable = |problem: String| {
            self.invalid(
                lock.span(),
                format!("cannot read the lock file `{written}` of fetch `{name}`: {problem}"),
                Some("`lock` is relative to the directory that holds the spec".to_string()),
            )
        };
        let metadata = std::fs::metadata(&path).map_err(|error| unreadable(error.to_string()))?;
        if !metadata.is_file() {
            return Err(unreadable(format!("`{}` is not a file", path.display())));
        }
        if metadata.len() > MAX_LOCK_BYTES {
            return Err(unreadable(format!(
                "it has {} bytes, more than the {MAX_LOCK_BYTES} a lock file may have",
                metadata.len()
            )));
        }
        let bytes = std::fs::read(&path).map_err(|error| unreadable(error.to_string()))?;
        let digest = BlobDigest::of(&bytes);
        let text = String::from_utf8(bytes)
            .map_err(|error| unreadable(format!("it is not UTF-8 text ({error})")))?;
        let format = match &table.format {
            Some(format) => LockFormat::parse(format.get_ref()).ok_or_else(|| {
                self.invalid(
                    format.span(),
                    format!(
                        "expected one of {} for `format` of fetch `{name}`, found `{}`",
                        LockFormat::ALL
                            .map(|format| format!("`{format}`"))
                            .join(", "),
                        format.get_ref()
                    ),
                    None,
                )
            })?,
            None => {
                let file_name = relative.segments().last().unwrap_or_default();
                LockFormat::infer(file_name).ok_or_else(|| {
                    self.invalid(
                        lock.span(),
                        format!("cannot tell the format of the lock file `{written}` of fetch `{name}` from its name"),
                        Some(format!(
                            "add `format = \"…\"`, one of {} (the names it knows: requirements*.txt, uv.lock, pylock*.toml, Cargo.lock, package-lock.json, go.sum)",
                            LockFormat::ALL.map(|format| format!("`{format}`")).join(", ")
                        )),
                    )
                })?
            }
        };
        let index = match &table.index {
            None => None,
            Some(index) => {
                if matches!(
                    format,
                    LockFormat::Npm | LockFormat::Uv | LockFormat::Pylock
                ) {
                    return Err(self.invalid(
                        index.span(),
                        format!("fetch `{name}` reads a {format} lock, which names each file's URL itself, so `index` does not belong to it"),
                        Some("to download from another server, rewrite the URLs' prefix in `[mirrors]` (or with `--mirror PREFIX=URL`)".to_string()),
                    ));
                }
                let value = index.get_ref();
                let url = value
                    .strip_prefix("sparse+")
                    .or_else(|| value.strip_prefix("registry+"))
                    .unwrap_or(value);
                if !(url.starts_with("http://")
                    || url.starts_with("https://")
                    || url.starts_with("file://"))
                {
                    return Err(self.invalid(
                        index.span(),
                        format!("expected an `http://`, `https://` or `file://` URL for `index` of fetch `{name}`, found `{value}`"),
                        None,
                    ));
                }
                Some(value.clone())
            }
        };
        let output_limit = self.url_fetch_limit(name, table, sandbox)?;
        Ok(LockFetch {
            lock: relative,
            text: text.into(),
            digest,
            format,
            index,
            output_limit,
        })
    }

    fn version(&self, version: Option<&Spanned<i64>>) -> Result<(), SpecError> {
        let Some(version) = version else {
            return Err(self.invalid(
                0..0,
                "missing key `version`",
                Some(format!(
                    "add `version = {SPEC_VERSION}` at the top of the spec"
                )),
            ));
        };
        if *version.get_ref() != i64::from(SPEC_VERSION) {
            return Err(self.invalid(
                version.span(),
                format!(
                    "expected `version = {SPEC_VERSION}`, found `version = {}`",
                    version.get_ref()
                ),
                Some(format!(
                    "this sealroom reads spec version {SPEC_VERSION} only"
                )),
            ));
        }
        Ok(())
    }

    fn name(&self, name: &Spanned<String>) -> Result<Name, SpecError> {
        name.get_ref()
            .parse::<Name>()
            .map_err(|invalid| self.invalid(name.span(), invalid.message, invalid.hint))
    }

    /// Parses a source or step name and claims it in the one namespace they share.
    fn declare(
        &mut self,
        name: &Spanned<String>,
        kind: InputKind,
        index: usize,
    ) -> Result<Name, SpecError> {
        let parsed = self.name(name)?;
        if let Some(first) = self.names.get(&parsed) {
            return Err(self.invalid(
                name.span(),
                format!(
                    "duplicate name `{parsed}`: the {} at {} has it already",
                    kind_word(first.kind),
                    self.source.location(first.span.start)
                ),
                Some("sources and steps share one namespace; rename one of them".to_string()),
            ));
        }
        self.names.insert(
            parsed.clone(),
            Declared {
                kind,
                index,
                span: name.span(),
            },
        );
        Ok(parsed)
    }

    fn sandbox(
        &self,
        sandbox: Option<&Spanned<raw::RawSandbox>>,
    ) -> Result<SandboxSettings, SpecError> {
        let Some(sandbox) = sandbox else {
            return Err(self.invalid(
                0..0,
                "missing table `[sandbox]`",
                Some("add `[sandbox]` with `image = \"<name>@sha256:<64 hex>\"`".to_string()),
            ));
        };
        let Some(image) = &sandbox.get_ref().image else {
            return Err(self.invalid(
                sandbox.span(),
                "missing key `image` in `[sandbox]`",
                Some("add `image = \"<name>@sha256:<64 hex>\"`, as printed by `sealroom image import`".to_string()),
            ));
        };
        let image = image
            .get_ref()
            .parse::<PinnedImage>()
            .map_err(|invalid| self.invalid(image.span(), invalid.message, invalid.hint))?;
        let limits = self.limits(sandbox.get_ref().limits.as_ref(), Limits::default())?;
        Ok(SandboxSettings {
            image,
            origin: None,
            limits,
        })
    }

    fn source(
        &mut self,
        index: usize,
        raw: &Spanned<RawSource>,
        directory: &Path,
    ) -> Result<Source, SpecError> {
        let table = raw.get_ref();
        let Some(raw_name) = &table.name else {
            return Err(self.invalid(
                raw.span(),
                "missing key `name` in this `[[source]]`",
                Some("add `name = \"<source>\"`".to_string()),
            ));
        };
        let name = self.declare(raw_name, InputKind::Source, index)?;
        let Some(raw_path) = &table.path else {
            return Err(self.invalid(
                raw.span(),
                format!("missing key `path` in source `{name}`"),
                Some("add `path = \".\"` (relative to the spec's directory)".to_string()),
            ));
        };
        let declared_path = match RelativePath::parse(raw_path.get_ref()) {
            Ok(path) => path,
            Err(RelativePathError::Empty) if !raw_path.get_ref().is_empty() => RelativePath::root(),
            Err(problem) => {
                let found = raw_path.get_ref();
                let (message, hint) = match problem {
                    RelativePathError::Empty => (
                        "expected a directory relative to the spec's directory, found an empty path".to_string(),
                        Some("write `path = \".\"` for the spec's own directory".to_string()),
                    ),
                    RelativePathError::Absolute => (
                        format!("expected a path relative to the spec's directory, found the absolute path `{found}`"),
                        Some("write the path relative to the directory that holds the spec".to_string()),
                    ),
                    RelativePathError::Escapes => (
                        format!("expected a path inside the spec's directory, found `{found}`, which uses `..`"),
                        Some("move the spec to a directory that contains the source".to_string()),
                    ),
                    RelativePathError::Nul => ("a source path cannot contain a NUL character".to_string(), None),
                };
                return Err(self.invalid(raw_path.span(), message, hint));
            }
        };
        let path = declared_path.under(directory);
        match std::fs::metadata(&path) {
            Ok(metadata) if metadata.is_dir() => {}
            Ok(_) => {
                return Err(self.invalid(
                    raw_path.span(),
                    format!("expected a directory for source `{name}`, found a file at `{}`", path.display()),
                    Some("a source is a directory tree; point `path` at the directory that holds the file".to_string()),
                ));
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(self.invalid(
                    raw_path.span(),
                    format!(
                        "expected a directory for source `{name}`, found nothing at `{}`",
                        path.display()
                    ),
                    Some(
                        "create it, or fix `path`: it is relative to the directory that holds the spec"
                            .to_string(),
                    ),
                ));
            }
            Err(error) => {
                return Err(self.invalid(
                    raw_path.span(),
                    format!(
                        "expected a directory for source `{name}` at `{}`: {error}",
                        path.display()
                    ),
                    None,
                ));
            }
        }
        let exclude = Exclude::new(
            table
                .exclude
                .iter()
                .map(|pattern| pattern.get_ref().clone()),
        )
        .map_err(|error| {
            let span = table
                .exclude
                .get(error.index)
                .map_or(raw.span(), |pattern| pattern.span());
            self.invalid(
                span,
                format!(
                    "expected a glob pattern in `exclude`, found `{}`: {}",
                    error.pattern, error.problem
                ),
                None,
            )
        })?;
        Ok(Source {
            name,
            path,
            declared_path,
            exclude,
        })
    }

    fn fetch(
        &mut self,
        index: usize,
        raw: &Spanned<raw::RawFetch>,
        sandbox: &SandboxSettings,
        directory: &Path,
    ) -> Result<Fetch, SpecError> {
        let table = raw.get_ref();
        let Some(raw_name) = &table.name else {
            return Err(self.invalid(
                raw.span(),
                "missing key `name` in this `[[fetch]]`",
                Some("add `name = \"<fetch>\"`".to_string()),
            ));
        };
        let name = self.declare(raw_name, InputKind::Fetch, index)?;
        if let Some(lock) = &table.lock {
            return Ok(Fetch {
                kind: FetchKind::Lock(self.lock_fetch(&name, lock, table, sandbox, directory)?),
                name,
            });
        }
        if let Some((key, value)) = [("format", &table.format), ("index", &table.index)]
            .into_iter()
            .find_map(|(key, value)| value.as_ref().map(|value| (key, value)))
        {
            return Err(self.invalid(
                value.span(),
                format!(
                    "fetch `{name}` has `{key}` but no `lock`: `{key}` says how to read a lock file"
                ),
                Some("add `lock = \"<path of the lock file>\"`, or remove it".to_string()),
            ));
        }
        let set_url_keys: Vec<&str> = [
            table.sha256.is_some(),
            table.unpack.is_some(),
            table.strip_components.is_some(),
            table.file_name.is_some(),
        ]
        .iter()
        .zip(URL_FETCH_KEYS)
        .filter_map(|(set, key)| set.then_some(key))
        .collect();
        let set_run_keys: Vec<&str> = [
            table.output.is_some(),
            table.image.is_some(),
            !table.env.is_empty(),
            table.network.is_some(),
            // A url fetch takes `limits.output` too (its byte limit): checked in `url_fetch`.
            table.limits.is_some() && table.url.is_none(),
            table.run.is_some(),
        ]
        .iter()
        .zip(RUN_FETCH_KEYS)
        .filter_map(|(set, key)| set.then_some(key))
        .collect();
        let kind = match (&table.url, &table.run) {
            (Some(url), None) => {
                if let Some(key) = set_run_keys.first() {
                    return Err(self.invalid(
                        raw.span(),
                        format!("fetch `{name}` downloads a `url`, so `{key}` does not belong to it"),
                        Some("`output`, `image`, `env` and `network` are for fetches that `run` a command".to_string()),
                    ));
                }
                FetchKind::Url(self.url_fetch(&name, url, table, sandbox)?)
            }
            (None, Some(run)) => {
                if let Some(key) = set_url_keys.first() {
                    return Err(self.invalid(
                        raw.span(),
                        format!("fetch `{name}` runs a command, so `{key}` does not belong to it"),
                        Some("`sha256`, `unpack`, `strip_components` and `file_name` are for fetches with a `url`".to_string()),
                    ));
                }
                FetchKind::Run(self.run_fetch(&name, run, table, sandbox)?)
            }
            (Some(_), Some(run)) => {
                return Err(self.invalid(
                    run.span(),
                    format!("fetch `{name}` has both `url` and `run`: expected one of them"),
                    Some("split it into two fetches".to_string()),
                ));
            }
            (None, None) => {
                return Err(self.invalid(
                    raw.span(),
                    format!("missing key `url` or `run` in fetch `{name}`"),
                    Some("a fetch downloads `url = \"…\"` pinned by `sha256`, or runs `run = [\"…\"]` pinned by `output`".to_string()),
                ));
            }
        };
        Ok(Fetch { name, kind })
    }

    fn url_fetch(
        &self,
        name: &Name,
        url: &Spanned<String>,
        table: &raw::RawFetch,
        sandbox: &SandboxSettings,
    ) -> Result<UrlFetch, SpecError> {
        let text = url.get_ref();
        let scheme = text.split_once("://").map(|(scheme, _)| scheme);
        if !matches!(scheme, Some("http" | "https" | "file")) {
            return Err(self.invalid(
                url.span(),
                format!("expected an `http://`, `https://` or `file://` URL for fetch `{name}`, found `{text}`"),
                None,
            ));
        }
        let sha256 = match &table.sha256 {
            None => None,
            Some(pin) => {
                let value = pin.get_ref();
                let parsed = if value.starts_with("sha256:") {
                    value.parse::<BlobDigest>()
                } else {
                    BlobDigest::from_hex(value)
                };
                Some(parsed.map_err(|_| {
                    self.invalid(
                        pin.span(),
                        format!("expected 64 lower-case hex characters (optionally after `sha256:`) for `sha256` of fetch `{name}`, found `{value}`"),
                        Some("`sealroom pin` fills it in from one download, for you to review".to_string()),
                    )
                })?)
            }
        };
        let strip_components = match &table.strip_components {
            None => 0,
            Some(count) => usize::try_from(*count.get_ref()).map_err(|_| {
                self.invalid(
                    count.span(),
                    format!(
                        "expected a non-negative integer for `strip_components`, found {}",
                        count.get_ref()
                    ),
                    None,
                )
            })?,
        };
        let unpack = table
            .unpack
            .as_ref()
            .is_some_and(|unpack| *unpack.get_ref());
        if strip_components > 0 && !unpack {
            let span = table
                .strip_components
                .as_ref()
                .map_or(url.span(), |count| count.span());
            return Err(self.invalid(
                span,
                format!("`strip_components` of fetch `{name}` only applies to an archive that is unpacked"),
                Some("add `unpack = true`, or remove `strip_components`".to_string()),
            ));
        }
        let file_name = match &table.file_name {
            Some(file_name) => {
                let value = file_name.get_ref();
                if value.is_empty() || value.contains('/') || value == "." || value == ".." || value.contains('\0') {
                    return Err(self.invalid(
                        file_name.span(),
                        format!("expected a plain file name for `file_name`, found `{value}`"),
                        None,
                    ));
                }
                value.clone()
            }
            None => url_file_name(text).ok_or_else(|| {
                self.invalid(
                    url.span(),
                    format!("cannot name the file of fetch `{name}`: the URL `{text}` has no file name at the end of its path"),
                    Some("add `file_name = \"…\"`".to_string()),
                )
            })?,
        };
        let output_limit = self.url_fetch_limit(name, table, sandbox)?;
        Ok(UrlFetch {
            url: text.clone(),
            sha256,
            unpack,
            strip_components,
            file_name,
            output_limit,
        })
    }

    /// The byte limit of a download: its own `limits.output`, else the sandbox's. The other
    /// limits are about a container, which a download does not run, so they are refused.
    fn url_fetch_limit(
        &self,
        name: &Name,
        table: &raw::RawFetch,
        sandbox: &SandboxSettings,
    ) -> Result<ByteSize, SpecError> {
        let Some(raw) = &table.limits else {
            return Ok(sandbox.limits.output);
        };
        let limits = raw.get_ref();
        let container_only = [
            ("timeout", limits.timeout.as_ref()),
            ("memory", limits.memory.as_ref()),
            ("pids", limits.pids.as_ref()),
            ("cpus", limits.cpus.as_ref()),
            ("scratch", limits.scratch.as_ref()),
        ];
        if let Some((key, value)) = container_only
            .into_iter()
            .find_map(|(key, value)| value.map(|value| (key, value)))
        {
            return Err(self.invalid(
                value.span(),
                format!(
                    "fetch `{name}` {}, so `limits.{key}` does not belong to it: a download takes only `limits.output`, its byte limit",
                    if table.lock.is_some() { "reads a `lock`" } else { "downloads a `url`" }
                ),
                Some("remove it, or move it to a fetch that `run`s a command".to_string()),
            ));
        }
        Ok(self.limits(Some(raw), sandbox.limits)?.output)
    }

    fn run_fetch(
        &self,
        name: &Name,
        run: &Spanned<Vec<Spanned<String>>>,
        table: &raw::RawFetch,
        sandbox: &SandboxSettings,
    ) -> Result<RunFetch, SpecError> {
        let argv = self.argv(name, "fetch", run)?;
        let output = match &table.output {
            None => None,
            Some(pin) => Some(pin.get_ref().parse::<TreeDigest>().map_err(|_| {
                self.invalid(
                    pin.span(),
                    format!("expected a tree digest `sha256:<64 lower-case hex>` for `output` of fetch `{name}`, found `{}`", pin.get_ref()),
                    Some("build once with a wrong pin, or run `sealroom pin`: the error shows the digest the step produced, for you to review".to_string()),
                )
            })?),
        };
        let image = match &table.image {
            None => sandbox.image.clone(),
            Some(image) => image
                .get_ref()
                .parse::<PinnedImage>()
                .map_err(|invalid| self.invalid(image.span(), invalid.message, invalid.hint))?,
        };
        let network = match table.network.as_ref() {
            None => FetchNetwork::Bridge,
            Some(network) => match network.get_ref().as_str() {
                "bridge" => FetchNetwork::Bridge,
                "host" => FetchNetwork::Host,
                other => {
                    return Err(self.invalid(
                        network.span(),
                        format!("expected `network = \"bridge\"` or `\"host\"` for fetch `{name}`, found `{other}`"),
                        None,
                    ));
                }
            },
        };
        Ok(RunFetch {
            run: argv,
            output,
            image,
            env: self.env(&table.env)?,
            network,
            limits: self.limits(table.limits.as_ref(), sandbox.limits)?,
        })
    }

    /// `base` with the keys of a `limits` table, if there is one, replaced.
    fn limits(
        &self,
        raw: Option<&Spanned<raw::RawLimits>>,
        base: Limits,
    ) -> Result<Limits, SpecError> {
        match raw {
            None => Ok(base),
            Some(raw) => raw
                .get_ref()
                .apply(base)
                .map_err(|error| self.invalid(error.span, error.message, error.hint)),
        }
    }

    fn step(
        &self,
        raw: &Spanned<RawStep>,
        name: Name,
        defaults: Limits,
    ) -> Result<Step, SpecError> {
        let table = raw.get_ref();
        let inputs = self.inputs(&name, &table.inputs)?;

        let Some(run) = &table.run else {
            return Err(self.invalid(
                raw.span(),
                format!("missing key `run` in step `{name}`"),
                Some(
                    "add the command to run as an argv, e.g. `run = [\"sh\", \"-c\", \"make\"]`"
                        .to_string(),
                ),
            ));
        };
        let argv = self.argv(&name, "step", run)?;
        let env = self.env(&table.env)?;

        let mut artifacts: Vec<RelativePath> = Vec::with_capacity(table.artifacts.len());
        for raw_artifact in &table.artifacts {
            artifacts.push(self.artifact(raw_artifact)?);
        }

        Ok(Step {
            name,
            inputs,
            run: argv,
            env,
            artifacts,
            limits: self.limits(table.limits.as_ref(), defaults)?,
        })
    }

    /// A `run` argv: not empty, a program first, no NUL characters.
    fn argv(
        &self,
        name: &Name,
        what: &str,
        run: &Spanned<Vec<Spanned<String>>>,
    ) -> Result<Vec<String>, SpecError> {
        let argv = run.get_ref();
        let Some(program) = argv.first() else {
            return Err(self.invalid(
                run.span(),
                format!("expected a non-empty argv for `run` in {what} `{name}`, found `[]`"),
                Some("e.g. `run = [\"sh\", \"-c\", \"make\"]`".to_string()),
            ));
        };
        if program.get_ref().is_empty() {
            return Err(self.invalid(
                program.span(),
                format!("expected a program as the first element of `run` in {what} `{name}`, found an empty string"),
                None,
            ));
        }
        if let Some(argument) = argv
            .iter()
            .find(|argument| argument.get_ref().contains('\0'))
        {
            return Err(self.invalid(
                argument.span(),
                "an argument of `run` cannot contain a NUL character",
                None,
            ));
        }
        Ok(argv
            .iter()
            .map(|argument| argument.get_ref().clone())
            .collect())
    }

    /// An `env` table: valid names, no NUL characters, nothing sealroom fixes itself.
    fn env(
        &self,
        raw_env: &BTreeMap<Spanned<String>, Spanned<String>>,
    ) -> Result<BTreeMap<String, String>, SpecError> {
        let mut env = BTreeMap::new();
        for (key, value) in raw_env {
            self.env_key(key)?;
            if value.get_ref().contains('\0') {
                return Err(self.invalid(
                    value.span(),
                    format!(
                        "the value of `{}` cannot contain a NUL character",
                        key.get_ref()
                    ),
                    None,
                ));
            }
            env.insert(key.get_ref().clone(), value.get_ref().clone());
        }
        Ok(env)
    }

    fn inputs(&self, step: &Name, raw_inputs: &[Spanned<String>]) -> Result<Vec<Input>, SpecError> {
        let mut inputs: Vec<Input> = Vec::with_capacity(raw_inputs.len());
        for raw_input in raw_inputs {
            let name = self.name(raw_input)?;
            let Some(declared) = self.names.get(&name) else {
                let mut known: Vec<(&Name, &Declared)> = self.names.iter().collect();
                known.sort_by_key(|(_, declared)| {
                    (declared.kind == InputKind::Step, declared.index)
                });
                let known: Vec<&str> = known.iter().map(|(name, _)| name.as_str()).collect();
                let hint = match closest(name.as_str(), known.iter().copied()) {
                    Some(near) => format!("did you mean `{near}`?"),
                    None => {
                        format!(
                            "add a `[[source]]`, `[[fetch]]` or `[[step]]` named `{name}`, or fix the name"
                        )
                    }
                };
                return Err(self.invalid(
                    raw_input.span(),
                    format!(
                        "input `{name}` of step `{step}` names no source, fetch or step; known names: {}",
                        quoted_list(known)
                    ),
                    Some(hint),
                ));
            };
            if &name == step {
                return Err(self.invalid(
                    raw_input.span(),
                    format!("step `{step}` lists itself as an input"),
                    Some("a step cannot read its own output; remove it from `inputs`".to_string()),
                ));
            }
            if inputs.iter().any(|input| input.name == name) {
                return Err(self.invalid(
                    raw_input.span(),
                    format!("step `{step}` lists input `{name}` twice"),
                    Some("remove the second one".to_string()),
                ));
            }
            inputs.push(Input {
                name,
                kind: declared.kind,
            });
        }
        Ok(inputs)
    }

    fn env_key(&self, key: &Spanned<String>) -> Result<(), SpecError> {
        let text = key.get_ref();
        let mut bytes = text.bytes();
        let valid = bytes
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            return Err(self.invalid(
                key.span(),
                format!(
                    "expected an environment variable name of letters, digits and `_`, not starting with a digit, found `{text}`"
                ),
                None,
            ));
        }
        if text == SOURCE_DATE_EPOCH {
            return Err(self.invalid(
                key.span(),
                "`SOURCE_DATE_EPOCH` cannot be set in `env`: sealroom sets it for every step",
                Some("set `source_date_epoch = <seconds>` at the top of the spec".to_string()),
            ));
        }
        Ok(())
    }

    fn artifact(&self, raw: &Spanned<String>) -> Result<RelativePath, SpecError> {
        let found = raw.get_ref();
        // `/out/x` is the path as the step sees it: accept it as `x`.
        let (relative, was_absolute) = match found.strip_prefix("/out") {
            Some(rest) if rest.is_empty() || rest.starts_with('/') => {
                (rest.trim_start_matches('/'), true)
            }
            _ => (found.as_str(), false),
        };
        RelativePath::parse(relative).map_err(|problem| {
            let (message, hint) = match problem {
                RelativePathError::Empty if was_absolute => (
                    format!("expected a file under /out as an artifact, found `{found}`"),
                    Some("name the file, e.g. `bin/hello` for /out/bin/hello".to_string()),
                ),
                RelativePathError::Empty => ("expected a file under /out as an artifact, found an empty path".to_string(), None),
                RelativePathError::Absolute => (
                    format!("artifact `{found}` is outside /out"),
                    Some("a step writes only to /out; write the path relative to it, e.g. `bin/hello`".to_string()),
                ),
                RelativePathError::Escapes => (
                    format!("artifact `{found}` is outside /out: it escapes with `..`"),
                    Some("write the path relative to /out, without `..`".to_string()),
                ),
                RelativePathError::Nul => ("an artifact path cannot contain a NUL character".to_string(), None),
            };
            self.invalid(raw.span(), message, hint)
        })
    }

    /// All artifacts land side by side in `--out`, so no two may have the same path, and no
    /// artifact may lie under another.
    fn check_artifacts_do_not_collide(
        &self,
        raw_steps: &[Spanned<RawStep>],
        steps: &[Step],
    ) -> Result<(), SpecError> {
        // Every earlier artifact by its path, and by each directory above it, so that a check is
        // a few lookups (not a scan of all earlier artifacts) and a location is computed only
        // for the error.
        type Earlier<'a> = (&'a RelativePath, &'a Name, Range<usize>);
        let mut by_path: HashMap<&str, Earlier> = HashMap::new();
        let mut by_ancestor: HashMap<String, Earlier> = HashMap::new();
        for (raw_step, step) in raw_steps.iter().zip(steps) {
            for (artifact, raw_artifact) in step.artifacts.iter().zip(&raw_step.get_ref().artifacts)
            {
                let ancestors: Vec<String> = {
                    let segments: Vec<&str> = artifact.segments().collect();
                    (1..segments.len())
                        .map(|n| segments[..n].join("/"))
                        .collect()
                };
                let clash = by_path
                    .get(artifact.as_str())
                    .map(|earlier| (earlier, true))
                    .or_else(|| {
                        by_ancestor
                            .get(artifact.as_str())
                            .map(|earlier| (earlier, false))
                    })
                    .or_else(|| {
                        ancestors
                            .iter()
                            .find_map(|ancestor| by_path.get(ancestor.as_str()))
                            .map(|earlier| (earlier, false))
                    });
                if let Some(((earlier, earlier_step, earlier_span), same)) = clash {
                    let location = self.source.location(earlier_span.start);
                    let owner = if *earlier_step == &step.name {
                        "this step".to_string()
                    } else {
                        format!("step `{earlier_step}`")
                    };
                    if same {
                        return Err(self.invalid(
                            raw_artifact.span(),
                            format!("artifact `{artifact}` is listed twice: {owner} lists it at {location}"),
                            Some("artifacts share one directory in --out; remove one or write it to another path".to_string()),
                        ));
                    }
                    let (outer, inner) =
                        nested(earlier, artifact).expect("one lies under the other");
                    return Err(self.invalid(
                        raw_artifact.span(),
                        format!(
                            "artifact `{artifact}` collides with artifact `{earlier}` of {owner} at {location}: `{inner}` lies under `{outer}`"
                        ),
                        Some("artifacts are files side by side in --out; list only the files".to_string()),
                    ));
                }
                let entry = (artifact, &step.name, raw_artifact.span());
                for ancestor in ancestors {
                    by_ancestor.entry(ancestor).or_insert_with(|| entry.clone());
                }
                by_path.insert(artifact.as_str(), entry);
            }
        }
        Ok(())
    }

    fn order(
        &self,
        raw_steps: &[Spanned<RawStep>],
        steps: Vec<Step>,
    ) -> Result<Vec<Step>, SpecError> {
        let index_of: HashMap<&Name, usize> = steps
            .iter()
            .enumerate()
            .map(|(index, step)| (&step.name, index))
            .collect();
        let step_inputs: Vec<Vec<usize>> = steps
            .iter()
            .map(|step| {
                step.inputs
                    .iter()
                    .filter(|input| input.kind == InputKind::Step)
                    .filter_map(|input| index_of.get(&input.name).copied())
                    .collect()
            })
            .collect();
        match topological_order(&step_inputs) {
            Ok(order) => {
                let mut slots: Vec<Option<Step>> = steps.into_iter().map(Some).collect();
                Ok(order
                    .into_iter()
                    .filter_map(|index| slots[index].take())
                    .collect())
            }
            Err(Cycle(cycle)) => {
                let names: Vec<&str> = cycle
                    .iter()
                    .map(|&index| steps[index].name.as_str())
                    .collect();
                // Point at the input of the cycle's first step that closes the cycle.
                let first = cycle.first().copied().unwrap_or(0);
                let before = cycle.iter().rev().nth(1).copied().unwrap_or(first);
                let span = raw_steps[first]
                    .get_ref()
                    .inputs
                    .iter()
                    .find(|input| input.get_ref() == steps[before].name.as_str())
                    .map_or(raw_steps[first].span(), |input| input.span());
                Err(self.invalid(
                    span,
                    format!("dependency cycle: {}", names.join(" -> ")),
                    Some("each step on the cycle is an input of the next; remove one of these inputs".to_string()),
                ))
            }
        }
    }
}

/// If one path lies under the other: (the outer, the inner).
fn nested<'a>(
    a: &'a RelativePath,
    b: &'a RelativePath,
) -> Option<(&'a RelativePath, &'a RelativePath)> {
    let under = |outer: &RelativePath, inner: &RelativePath| {
        inner
            .as_str()
            .strip_prefix(outer.as_str())
            .is_some_and(|rest| rest.starts_with('/'))
    };
    if under(a, b) {
        Some((a, b))
    } else if under(b, a) {
        Some((b, a))
    } else {
        None
    }
}

fn kind_word(kind: InputKind) -> &'static str {
    match kind {
        InputKind::Source => "source",
        InputKind::Fetch => "fetch",
        InputKind::Step => "step",
    }
}

/// The keys of each kind of fetch, for saying which do not belong together.
/// The largest lock file read (a Cargo.lock of a few thousand crates is a few hundred KiB).
const MAX_LOCK_BYTES: u64 = 64 * 1024 * 1024;

const URL_FETCH_KEYS: [&str; 4] = ["sha256", "unpack", "strip_components", "file_name"];
const RUN_FETCH_KEYS: [&str; 6] = ["output", "image", "env", "network", "limits", "run"];

/// The last segment of a URL's path, if it makes a file name.
fn url_file_name(url: &str) -> Option<String> {
    let path = url.split(['?', '#']).next()?;
    let after_scheme = path.split_once("://").map_or(path, |(_, rest)| rest);
    let (_, path) = after_scheme.split_once('/')?;
    let last = path.rsplit('/').next()?;
    (!last.is_empty() && last != "." && last != "..").then(|| last.to_string())
}
