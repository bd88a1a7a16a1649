//! `sealroom convert [DOCKERFILE]`: prints an equivalent spec for a Dockerfile (see
//! `crate::convert` for the model and its limits). Reads the Dockerfile and its context;
//! writes nothing.

use std::collections::BTreeMap;
use std::path::Path;

use crate::convert::{self, ConvertError, Options};
use crate::error::Error;

/// The spec TOML for the Dockerfile at `dockerfile`, with the context `context` (default: the
/// Dockerfile's directory) and the spec and image `name` (default: the context's directory name).
pub fn convert(
    dockerfile: &Path,
    context: Option<&Path>,
    name: Option<&str>,
    build_args: &[String],
) -> Result<String, Error> {
    let build_args = build_args
        .iter()
        .map(|text| convert::parse_build_arg(text))
        .collect::<Result<BTreeMap<_, _>, _>>()?;
    let text = std::fs::read_to_string(dockerfile).map_err(|source| ConvertError::Read {
        path: dockerfile.to_path_buf(),
        source,
    })?;
    let context = match context {
        Some(context) => context.to_path_buf(),
        None => std::path::absolute(dockerfile)
            .ok()
            .and_then(|path| path.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| ".".into()),
    };
    let name = match name {
        Some(name) => name.to_string(),
        None => default_name(&context),
    };
    Ok(convert::convert(
        &text,
        &Options {
            name: &name,
            context: &context,
            build_args: &build_args,
        },
    )?)
}

/// The context directory's name as a spec name (`My App` becomes `my-app`), else `image`.
fn default_name(context: &Path) -> String {
    let raw = std::path::absolute(context)
        .ok()
        .and_then(|path| path.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let cleaned: String = raw
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let cleaned = cleaned.trim_matches(['.', '_', '-']).to_string();
    match cleaned.parse::<crate::spec::Name>() {
        Ok(name) => name.to_string(),
        Err(_) => "image".to_string(),
    }
}
