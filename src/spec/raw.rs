//! The serde mirror of the spec's TOML, with spans for error locations. Not the model: nothing
//! here is validated beyond TOML types and unknown keys.
//!
//! Every key is optional at this level, even the required ones, so that `load` can say which
//! key is missing in its own words and point at the table that lacks it. Every value keeps its
//! span (byte offsets into the file) so that an error can name a line and column.
//!
//! `#[serde(deny_unknown_fields)]` everywhere: a misspelt key is an error, never ignored.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_spanned::Spanned;

pub use super::limits::RawLimits;

/// The whole spec file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSpec {
    pub version: Option<Spanned<i64>>,
    pub name: Option<Spanned<String>>,
    pub source_date_epoch: Option<Spanned<i64>>,
    pub sandbox: Option<Spanned<RawSandbox>>,
    #[serde(default)]
    pub source: Vec<Spanned<RawSource>>,
    #[serde(default)]
    pub fetch: Vec<Spanned<RawFetch>>,
    #[serde(default)]
    pub step: Vec<Spanned<RawStep>>,
    #[serde(default)]
    pub image: Vec<Spanned<super::image::RawImage>>,
    /// URL prefix -> replacement, for every download.
    pub mirrors: Option<Spanned<BTreeMap<Spanned<String>, Spanned<String>>>>,
}

/// `[sandbox]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSandbox {
    pub image: Option<Spanned<String>>,
    /// Defaults for every step's limits.
    pub limits: Option<Spanned<RawLimits>>,
}

/// One `[[source]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    pub name: Option<Spanned<String>>,
    pub path: Option<Spanned<String>>,
    #[serde(default)]
    pub exclude: Vec<Spanned<String>>,
}

/// One `[[step]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStep {
    pub name: Option<Spanned<String>>,
    #[serde(default)]
    pub inputs: Vec<Spanned<String>>,
    pub run: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pub env: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    pub artifacts: Vec<Spanned<String>>,
    pub limits: Option<Spanned<RawLimits>>,
}

/// Parses the text of a spec file into the mirror. Errors are toml's own; `load` rewords them.
pub fn parse(text: &str) -> Result<RawSpec, toml::de::Error> {
    toml::from_str(text)
}

/// A `[[fetch]]`: a download (`url`, `sha256`, `unpack`, `strip_components`), a fixed-output
/// container step (`run`, `output`, `image`, `env`, `network`, `limits`), or the entries of a
/// lock file (`lock`, `format`, `index`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFetch {
    pub name: Option<Spanned<String>>,
    pub url: Option<Spanned<String>>,
    pub sha256: Option<Spanned<String>>,
    pub unpack: Option<Spanned<bool>>,
    pub strip_components: Option<Spanned<i64>>,
    pub file_name: Option<Spanned<String>>,
    pub run: Option<Spanned<Vec<Spanned<String>>>>,
    pub output: Option<Spanned<String>>,
    pub image: Option<Spanned<String>>,
    #[serde(default)]
    pub env: BTreeMap<Spanned<String>, Spanned<String>>,
    pub network: Option<Spanned<String>>,
    pub limits: Option<Spanned<RawLimits>>,
    pub lock: Option<Spanned<String>>,
    pub format: Option<Spanned<String>>,
    pub index: Option<Spanned<String>>,
}
