//! `[[image]]`: an OCI image made of a pinned base and layers taken from step outputs or
//! sources, with its run configuration. The raw mirror (`RawImage`, `RawLayer`) and its
//! validation into [`Image`] both live here, so that `raw.rs` and `validate.rs` only point at
//! them. Every rule is in `docs/spec.md` ("`[[image]]`") and `docs/images.md`.
//!
//! Like the rest of `spec`, this reads nothing but the spec's bytes: whether the base image
//! exists is checked when the image is built.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_spanned::Spanned;

use super::diagnostics::SourceText;
use super::{InputKind, Name, PinnedImage, RelativePath, RelativePathError, SpecError, Step};

/// One `[[image]]` table, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawImage {
    pub name: Option<Spanned<String>>,
    pub base: Option<Spanned<String>>,
    #[serde(default)]
    pub layers: Vec<Spanned<RawLayer>>,
    pub entrypoint: Option<Spanned<Vec<String>>>,
    pub cmd: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    pub env: BTreeMap<Spanned<String>, Spanned<String>>,
    pub workdir: Option<Spanned<String>>,
    pub user: Option<Spanned<String>>,
    #[serde(default)]
    pub labels: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    pub expose: Vec<Spanned<String>>,
    pub compression: Option<Spanned<String>>,
}

/// One entry of `layers`: `{ step = "app", path = "/app", artifacts = ["bin/app"] }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLayer {
    pub step: Option<Spanned<String>>,
    pub source: Option<Spanned<String>>,
    pub path: Option<Spanned<String>>,
    pub artifacts: Option<Vec<Spanned<String>>>,
}

/// A validated `[[image]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// Names the layout directory `--out/<name>/` and the provenance subject.
    pub name: Name,
    /// The base: an image id in the local engine, or a manifest digest in a registry when the
    /// name starts with a registry host (see [`Image::base_registry`]).
    pub base: PinnedImage,
    /// New layers, in order, on top of the base's.
    pub layers: Vec<ImageLayer>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    /// Set on top of the base's environment (a variable the base sets is replaced).
    pub env: BTreeMap<String, String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// `port/protocol`, normalized (`8080` becomes `8080/tcp`), sorted, without duplicates.
    pub expose: Vec<String>,
    pub compression: Compression,
}

impl Image {
    /// The registry host (`host[:port]`) of the base, when the base is pulled from a registry:
    /// its first path component has a `.` or a `:`, or is `localhost`, as in Docker's references.
    pub fn base_registry(&self) -> Option<&str> {
        self.base.registry()
    }
}

/// One new layer: the tree of a step's `/out` or of a source, placed under `path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageLayer {
    /// A step or a source.
    pub input: Name,
    pub kind: InputKind,
    /// Where the tree's root goes in the image, relative to `/` (`.` for `/` itself).
    pub path: RelativePath,
    /// Only these paths of the tree (files or directories, relative to its root, kept at the
    /// same relative place under `path`); `None` takes the whole tree.
    pub artifacts: Option<Vec<RelativePath>>,
}

/// How new layers are compressed. Base layers are kept as the base has them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// gzip at level 6, no name and no time in the header (the default).
    Gzip,
    /// Plain tar.
    None,
}

/// Validates every `[[image]]`. `declared` tells what a name is (a source, fetch or step).
pub(crate) fn validate(
    source: &SourceText<'_>,
    raw: &[Spanned<RawImage>],
    declared: &dyn Fn(&Name) -> Option<InputKind>,
    steps: &[Step],
) -> Result<Vec<Image>, SpecError> {
    let checker = Checker { source, declared };
    let mut images: Vec<Image> = Vec::with_capacity(raw.len());
    for table in raw {
        let image = checker.image(table, steps)?;
        if images.iter().any(|earlier| earlier.name == image.name) {
            let span = table
                .get_ref()
                .name
                .as_ref()
                .map_or(table.span(), |n| n.span());
            return Err(source.invalid(
                span,
                format!("duplicate image name `{}`", image.name),
                Some("each image gets its own directory in --out; rename one".to_string()),
            ));
        }
        images.push(image);
    }
    Ok(images)
}

struct Checker<'a> {
    source: &'a SourceText<'a>,
    declared: &'a dyn Fn(&Name) -> Option<InputKind>,
}

impl Checker<'_> {
    fn invalid(
        &self,
        span: std::ops::Range<usize>,
        message: impl Into<String>,
        hint: Option<&str>,
    ) -> SpecError {
        self.source.invalid(span, message, hint.map(str::to_string))
    }

    fn image(&self, raw: &Spanned<RawImage>, steps: &[Step]) -> Result<Image, SpecError> {
        let table = raw.get_ref();
        let Some(raw_name) = &table.name else {
            return Err(self.invalid(
                raw.span(),
                "missing key `name` in this `[[image]]`",
                Some("add `name = \"<image>\"`: it names the directory `--out/<image>/`"),
            ));
        };
        let name: Name = raw_name
            .get_ref()
            .parse()
            .map_err(|invalid: super::InvalidValue| {
                self.source
                    .invalid(raw_name.span(), invalid.message, invalid.hint)
            })?;
        // The layout directory sits in --out next to the artifacts.
        for step in steps {
            if let Some(artifact) = step
                .artifacts
                .iter()
                .find(|artifact| artifact.segments().next() == Some(name.as_str()))
            {
                return Err(self.invalid(
                    raw_name.span(),
                    format!(
                        "image `{name}` collides with artifact `{artifact}` of step `{}`: both would be written at `--out/{name}`",
                        step.name
                    ),
                    Some("rename the image"),
                ));
            }
        }
        let Some(raw_base) = &table.base else {
            return Err(self.invalid(
                raw.span(),
                format!("missing key `base` in image `{name}`"),
                Some(
                    "add `base = \"<name>@sha256:<64 hex>\"`, e.g. the `[sandbox] image` or a reference `sealroom image import` printed",
                ),
            ));
        };
        let base: PinnedImage =
            raw_base
                .get_ref()
                .parse()
                .map_err(|invalid: super::InvalidValue| {
                    self.source
                        .invalid(raw_base.span(), invalid.message, invalid.hint)
                })?;

        let mut layers = Vec::with_capacity(table.layers.len());
        for layer in &table.layers {
            layers.push(self.layer(&name, layer)?);
        }
        let argv = |raw: &Option<Spanned<Vec<String>>>| raw.as_ref().map(|v| v.get_ref().clone());
        let mut env = BTreeMap::new();
        for (key, value) in &table.env {
            self.env_key(key)?;
            env.insert(key.get_ref().clone(), value.get_ref().clone());
        }
        let workdir = match &table.workdir {
            None => None,
            Some(raw) if raw.get_ref().starts_with('/') && !raw.get_ref().contains('\0') => {
                Some(raw.get_ref().clone())
            }
            Some(raw) => {
                return Err(self.invalid(
                    raw.span(),
                    format!(
                        "expected an absolute path for `workdir`, found `{}`",
                        raw.get_ref()
                    ),
                    Some("write it from the image's root, e.g. `/app`"),
                ));
            }
        };
        let user = match &table.user {
            None => None,
            Some(raw) => {
                let user = raw.get_ref();
                if user.is_empty() || user.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    return Err(self.invalid(
                        raw.span(),
                        format!("expected `user`, `uid`, `user:group` or `uid:gid` for `user`, found `{user}`"),
                        None,
                    ));
                }
                Some(user.clone())
            }
        };
        let labels = table
            .labels
            .iter()
            .map(|(key, value)| (key.get_ref().clone(), value.get_ref().clone()))
            .collect();
        let mut expose = Vec::with_capacity(table.expose.len());
        for port in &table.expose {
            expose.push(self.port(port)?);
        }
        expose.sort();
        expose.dedup();
        let compression = match table
            .compression
            .as_ref()
            .map(|c| (c, c.get_ref().as_str()))
        {
            None | Some((_, "gzip")) => Compression::Gzip,
            Some((_, "none")) => Compression::None,
            Some((raw, other)) => {
                return Err(self.invalid(
                    raw.span(),
                    format!(
                        "expected `\"gzip\"` or `\"none\"` for `compression`, found `\"{other}\"`"
                    ),
                    None,
                ));
            }
        };
        Ok(Image {
            name,
            base,
            layers,
            entrypoint: argv(&table.entrypoint),
            cmd: argv(&table.cmd),
            env,
            workdir,
            user,
            labels,
            expose,
            compression,
        })
    }

    fn layer(&self, image: &Name, raw: &Spanned<RawLayer>) -> Result<ImageLayer, SpecError> {
        let table = raw.get_ref();
        let (raw_input, wanted) = match (&table.step, &table.source) {
            (Some(step), None) => (step, InputKind::Step),
            (None, Some(source)) => (source, InputKind::Source),
            (Some(_), Some(source)) => {
                return Err(self.invalid(
                    source.span(),
                    format!("a layer of image `{image}` has both `step` and `source`: expected one of them"),
                    Some("make two layers"),
                ));
            }
            (None, None) => {
                return Err(self.invalid(
                    raw.span(),
                    format!("missing key `step` in a layer of image `{image}`"),
                    Some("write `{ step = \"<step>\", path = \"/app\" }` (or `source = \"<source>\"`)"),
                ));
            }
        };
        let input: Name = raw_input
            .get_ref()
            .parse()
            .map_err(|invalid: super::InvalidValue| {
                self.source
                    .invalid(raw_input.span(), invalid.message, invalid.hint)
            })?;
        let key = if wanted == InputKind::Step {
            "step"
        } else {
            "source"
        };
        match (self.declared)(&input) {
            Some(kind) if kind == wanted => {}
            Some(other) => {
                let what = match other {
                    InputKind::Source => "a source",
                    InputKind::Fetch => "a fetch",
                    InputKind::Step => "a step",
                };
                return Err(self.invalid(
                    raw_input.span(),
                    format!("`{key} = \"{input}\"` in image `{image}` names {what}, not a {key}"),
                    Some(if other == InputKind::Fetch {
                        "copy the fetch's files into a step's /out and layer that step"
                    } else {
                        "write `step = ...` for a step and `source = ...` for a source"
                    }),
                ));
            }
            None => {
                return Err(self.invalid(
                    raw_input.span(),
                    format!("image `{image}` takes a layer from {key} `{input}`, but there is no {key} with that name"),
                    None,
                ));
            }
        }
        let path = match &table.path {
            None => RelativePath::root(),
            Some(raw_path) => {
                let found = raw_path.get_ref();
                let Some(relative) = found.strip_prefix('/') else {
                    return Err(self.invalid(
                        raw_path.span(),
                        format!(
                            "expected an absolute path in the image for `path`, found `{found}`"
                        ),
                        Some("write it from the image's root, e.g. `/app`"),
                    ));
                };
                match RelativePath::parse(relative) {
                    Ok(path) => path,
                    Err(RelativePathError::Empty) => RelativePath::root(),
                    Err(_) => {
                        return Err(self.invalid(
                            raw_path.span(),
                            format!("expected a path in the image without `..` for `path`, found `{found}`"),
                            None,
                        ));
                    }
                }
            }
        };
        let artifacts = match &table.artifacts {
            None => None,
            Some(list) => {
                let mut artifacts = Vec::with_capacity(list.len());
                for raw_artifact in list {
                    let found = raw_artifact.get_ref();
                    let relative = found.strip_prefix("/out/").unwrap_or(found);
                    let artifact = RelativePath::parse(relative).map_err(|_| {
                        self.invalid(
                            raw_artifact.span(),
                            format!("expected a path relative to the {key}'s root in `artifacts`, found `{found}`"),
                            Some("e.g. `bin/app` for /out/bin/app"),
                        )
                    })?;
                    artifacts.push(artifact);
                }
                artifacts.sort();
                artifacts.dedup();
                Some(artifacts)
            }
        };
        Ok(ImageLayer {
            input,
            kind: wanted,
            path,
            artifacts,
        })
    }

    fn env_key(&self, key: &Spanned<String>) -> Result<(), SpecError> {
        let text = key.get_ref();
        let mut bytes = text.bytes();
        let valid = bytes
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if valid {
            return Ok(());
        }
        Err(self.invalid(
            key.span(),
            format!("expected an environment variable name of letters, digits and `_`, not starting with a digit, found `{text}`"),
            None,
        ))
    }

    fn port(&self, raw: &Spanned<String>) -> Result<String, SpecError> {
        let found = raw.get_ref();
        let (port, protocol) = found.split_once('/').unwrap_or((found, "tcp"));
        let port_ok = port.parse::<u16>().is_ok_and(|port| port > 0);
        if !port_ok || !matches!(protocol, "tcp" | "udp" | "sctp") {
            return Err(self.invalid(
                raw.span(),
                format!("expected `<port>` or `<port>/tcp|udp|sctp` in `expose`, found `{found}`"),
                Some("e.g. `\"8080/tcp\"`"),
            ));
        }
        Ok(format!(
            "{}/{protocol}",
            port.parse::<u16>().expect("checked")
        ))
    }
}
