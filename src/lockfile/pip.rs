//! pip's hashed `requirements.txt` and the simple index (PEP 503 HTML, PEP 691 JSON) its files
//! are found in; the flat directory `pip install --no-index --find-links` reads (shared by the
//! uv and pylock formats, with the helpers all three use to name a Python file).
//!
//! A requirements file pins versions and hashes but names no file: each requirement's files are
//! the ones its project page lists whose sha256 is in the requirement's hash set, so the index
//! chooses nothing (a file it adds, or changes, is not taken). Nothing here opens a socket: the
//! fetch stage asks for the page ([`project_page_url`], [`INDEX_ACCEPT`]) and hands its body to
//! [`parse_index_page`].

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::Path;

use serde::Deserialize;

use super::{FileKind, LockDigest, LockError, LockSource, LockedFile, Verified, purl_escape};

/// One `name==version --hash=sha256:...` line (or `name @ https://... --hash=...`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    /// The PEP 503 normalized name (`Foo_Bar` is `foo-bar`).
    pub name: String,
    /// As written after `==` (or `===`); for a direct URL, read from its file name, or empty.
    pub version: String,
    pub hashes: Vec<[u8; 32]>,
    /// The 1-based line where the requirement starts.
    pub line: usize,
    /// The requirement as written, without its marker and options: `six==1.16.0`.
    pub text: String,
    /// The environment marker after `;`, kept but not evaluated: every locked file is fetched.
    pub marker: Option<String>,
    /// `name @ <url>`: the file itself, fetched without asking the index ([`direct_file`]).
    pub url: Option<String>,
}

/// A file a project page of the index lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexFile {
    pub filename: String,
    /// Absolute: relative links are resolved against the page's URL.
    pub url: String,
    pub sha256: Option<[u8; 32]>,
}

/// The `Accept` header for a project page: PEP 691 JSON first, PEP 503 HTML as a fall-back.
pub const INDEX_ACCEPT: &str = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.latest+json;q=0.9, text/html;q=0.1";

/// Global options of a requirements file that say where pip looks, not what it installs: the
/// index is the spec's `index`, and every file is checked by its hash anyway.
const IGNORED_OPTIONS: &[&str] = &[
    "-i",
    "--index-url",
    "--extra-index-url",
    "-f",
    "--find-links",
    "--trusted-host",
    "--no-binary",
    "--only-binary",
    "--prefer-binary",
    "--require-hashes",
    "--no-index",
    "--pre",
];

/// Which of [`IGNORED_OPTIONS`] take no value.
const FLAG_OPTIONS: &[&str] = &["--prefer-binary", "--require-hashes", "--no-index", "--pre"];

const REGENERATE_HINT: &str = "regenerate the file with `pip-compile --generate-hashes` or `uv export --format requirements.txt` (which write a hash for every file)";

pub fn parse_requirements(lock: &LockSource<'_>) -> Result<Vec<Requirement>, LockError> {
    let mut requirements = Vec::new();
    for (line, text) in logical_lines(lock.text) {
        let text = strip_comment(&text).trim();
        if text.is_empty() {
            continue;
        }
        let tokens: Vec<&str> = text.split_whitespace().collect();
        if tokens[0].starts_with('-') {
            check_global_options(lock, line, &tokens)?;
            continue;
        }
        let split = tokens
            .iter()
            .position(|token| token.starts_with('-'))
            .unwrap_or(tokens.len());
        let requirement = tokens[..split].join(" ");
        let hashes = hash_options(lock, line, &requirement, &tokens[split..])?;
        requirements.push(parse_requirement(lock, line, &requirement, hashes)?);
    }
    Ok(requirements)
}

/// Physical lines joined where one ends in `\` (as pip does: a line holding a comment ends the
/// requirement even so), each with the 1-based line it starts on.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut lines = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (index, raw) in text.lines().enumerate() {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        let continues = raw.ends_with('\\') && comment_start(raw).is_none();
        let (start, mut joined) = pending.take().unwrap_or((index + 1, String::new()));
        if continues {
            joined.push_str(&raw[..raw.len() - 1]);
            joined.push(' ');
            pending = Some((start, joined));
        } else {
            joined.push_str(raw);
            lines.push((start, joined));
        }
    }
    lines.extend(pending);
    lines
}

/// Where a comment starts: a `#` at the start of the line or after whitespace (a URL's
/// `#sha256=` fragment is not one).
fn comment_start(line: &str) -> Option<usize> {
    line.char_indices()
        .find(|&(at, c)| {
            c == '#' && (at == 0 || line[..at].ends_with(|before: char| before.is_whitespace()))
        })
        .map(|(at, _)| at)
}

fn strip_comment(line: &str) -> &str {
    comment_start(line).map_or(line, |at| &line[..at])
}

fn invalid(lock: &LockSource<'_>, line: usize, message: impl Into<String>) -> LockError {
    LockError::Invalid {
        lock: lock.display.to_string(),
        line,
        message: message.into(),
    }
}

fn check_global_options(
    lock: &LockSource<'_>,
    line: usize,
    tokens: &[&str],
) -> Result<(), LockError> {
    let mut rest = tokens.iter();
    while let Some(token) = rest.next() {
        let (option, inline_value) = match token.split_once('=') {
            Some((option, value)) if option.starts_with("--") => (option, Some(value)),
            _ => (*token, None),
        };
        let not_followed = |what: &str, why: &str| LockError::Unsupported {
            lock: lock.display.to_string(),
            line,
            package: tokens.join(" "),
            message: format!("{what} {why}"),
        };
        match option {
            "-r" | "--requirement" => {
                return Err(not_followed(
                    "a nested requirements file",
                    "is not followed: give each requirements file its own [[fetch]]",
                ));
            }
            "-c" | "--constraint" => {
                return Err(not_followed(
                    "a constraints file",
                    "is not followed: a hashed lock needs none (every requirement is pinned)",
                ));
            }
            "-e" | "--editable" => {
                return Err(not_followed(
                    "an editable requirement",
                    "is not hermetic (a local tree or a repository, not a file with a hash); with uv, export with `--no-emit-project`, and install the project from its [[source]]",
                ));
            }
            _ if IGNORED_OPTIONS.contains(&option) => {
                if inline_value.is_none() && !FLAG_OPTIONS.contains(&option) {
                    rest.next();
                }
            }
            // `-ihttps://...`: pip's short options take their value attached too.
            _ if option.starts_with("-i") || option.starts_with("-f") => {}
            _ if !option.starts_with('-') => {
                return Err(invalid(
                    lock,
                    line,
                    format!(
                        "unexpected `{token}` among the global options `{}`",
                        tokens.join(" ")
                    ),
                ));
            }
            _ => {
                return Err(invalid(
                    lock,
                    line,
                    format!(
                        "unknown option `{option}`; expected a requirement `name==version --hash=sha256:<hex>` or one of the global options {}",
                        IGNORED_OPTIONS.join(", ")
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The `--hash` options after a requirement: `--hash=sha256:<hex>` or `--hash sha256:<hex>`.
fn hash_options(
    lock: &LockSource<'_>,
    line: usize,
    requirement: &str,
    options: &[&str],
) -> Result<Vec<[u8; 32]>, LockError> {
    let mut hashes = Vec::new();
    let mut rest = options.iter();
    while let Some(option) = rest.next() {
        let value = match option.strip_prefix("--hash") {
            Some("") => rest.next().copied().ok_or_else(|| {
                invalid(
                    lock,
                    line,
                    format!("{requirement}: `--hash` without a value"),
                )
            })?,
            Some(value) if value.starts_with('=') => &value[1..],
            _ => {
                return Err(invalid(
                    lock,
                    line,
                    format!(
                        "{requirement}: unknown option `{option}` (a requirement takes only `--hash=sha256:<hex>`)"
                    ),
                ));
            }
        };
        hashes.push(parse_sha256_option(lock, line, requirement, value)?);
    }
    Ok(hashes)
}

fn parse_sha256_option(
    lock: &LockSource<'_>,
    line: usize,
    requirement: &str,
    value: &str,
) -> Result<[u8; 32], LockError> {
    let Some((algorithm, hex_digest)) = value.split_once(':') else {
        return Err(invalid(
            lock,
            line,
            format!("{requirement}: `--hash={value}`: expected `sha256:<64 hex digits>`"),
        ));
    };
    if algorithm != "sha256" {
        return Err(invalid(
            lock,
            line,
            format!(
                "{requirement}: `--hash={value}` is a {algorithm} hash; sealroom verifies sha256 (pip-compile and uv write `--hash=sha256:<hex>`)"
            ),
        ));
    }
    sha256_hex(hex_digest).ok_or_else(|| {
        invalid(
            lock,
            line,
            format!(
                "{requirement}: `--hash={value}`: expected 64 hex digits after `sha256:`, found {} characters",
                hex_digest.len()
            ),
        )
    })
}

/// 64 hex digits (either case) as a sha256.
pub(super) fn sha256_hex(text: &str) -> Option<[u8; 32]> {
    let mut digest = [0u8; 32];
    (text.len() == 64)
        .then(|| hex::decode_to_slice(text, &mut digest).ok())
        .flatten()
        .map(|()| digest)
}

/// 128 hex digits as a sha512.
pub(super) fn sha512_hex(text: &str) -> Option<LockDigest> {
    let mut digest = [0u8; 64];
    (text.len() == 128 && hex::decode_to_slice(text, &mut digest).is_ok())
        .then(|| LockDigest::Sha512(Box::new(digest)))
}

fn parse_requirement(
    lock: &LockSource<'_>,
    line: usize,
    requirement: &str,
    hashes: Vec<[u8; 32]>,
) -> Result<Requirement, LockError> {
    let name_end = requirement
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        .unwrap_or(requirement.len());
    let (raw_name, rest) = requirement.split_at(name_end);
    if rest.starts_with(['/', '\\', ':']) || raw_name.is_empty() || is_archive_name(raw_name) {
        return Err(LockError::Unsupported {
            lock: lock.display.to_string(),
            line,
            package: requirement.to_string(),
            message: "a bare path or URL is not hermetic here; write `name @ https://...` with `--hash=sha256:<hex>`, or install a local tree from its [[source]]".to_string(),
        });
    }
    if !valid_project_name(raw_name) {
        return Err(invalid(
            lock,
            line,
            format!(
                "`{requirement}`: `{raw_name}` is not a project name (letters, digits, `.`, `_`, `-`, starting and ending with a letter or digit)"
            ),
        ));
    }
    let name = normalize_name(raw_name);
    let rest = rest.trim_start();
    let rest = match rest.strip_prefix('[') {
        Some(extras) => match extras.split_once(']') {
            Some((_, after)) => after.trim_start(),
            None => {
                return Err(invalid(
                    lock,
                    line,
                    format!("`{requirement}`: the extras' `[` is not closed"),
                ));
            }
        },
        None => rest,
    };
    let (specifier, url, marker) = match rest.strip_prefix('@') {
        // PEP 508: a URL's marker is separated by whitespace before `;`.
        Some(after) => {
            let after = after.trim_start();
            let (url, marker) = match after.split_once(" ;") {
                Some((url, marker)) => (url.trim(), Some(marker)),
                None => (after.trim(), None),
            };
            ("", Some(url), marker)
        }
        None => match rest.split_once(';') {
            Some((specifier, marker)) => (specifier.trim(), None, Some(marker)),
            None => (rest.trim(), None, None),
        },
    };
    let text_end = requirement.len() - marker.map_or(0, |marker| marker.len() + 1);
    let text = requirement[..text_end].trim().to_string();
    let marker = marker
        .map(|marker| marker.trim().to_string())
        .filter(|marker| !marker.is_empty());
    if hashes.is_empty() {
        return Err(LockError::NoDigest {
            lock: lock.display.to_string(),
            line,
            package: text,
            what: "no `--hash=sha256:<hex>`".to_string(),
            hint: REGENERATE_HINT.to_string(),
        });
    }
    let version = match url {
        Some(url) => {
            check_direct_url(lock, line, &text, url, &hashes)?;
            url_file_name_decoded(url)
                .and_then(|file| version_from_file_name(&name, &file))
                .unwrap_or_default()
        }
        None => pinned_version(specifier).ok_or_else(|| {
            invalid(
                lock,
                line,
                format!(
                    "`{text}` does not pin one version: a hashed lock pins each requirement with `==` (found {})",
                    if specifier.is_empty() {
                        "no version".to_string()
                    } else {
                        format!("`{specifier}`")
                    }
                ),
            )
        })?,
    };
    Ok(Requirement {
        name,
        version,
        hashes,
        line,
        text,
        marker,
        url: url.map(str::to_string),
    })
}

/// The version of `==1.0` or `===1.0` (in parentheses or not); `None` for a range, a wildcard
/// (`==1.*`), or more than one clause.
fn pinned_version(specifier: &str) -> Option<String> {
    let specifier = specifier.trim();
    let specifier = specifier
        .strip_prefix('(')
        .and_then(|inner| inner.strip_suffix(')'))
        .unwrap_or(specifier)
        .trim();
    if specifier.contains(',') {
        return None;
    }
    let version = specifier
        .strip_prefix("===")
        .or_else(|| specifier.strip_prefix("=="))?
        .trim();
    let plain = !version.is_empty()
        && !version.ends_with(".*")
        && !version
            .contains(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '=' | '!' | '~'));
    plain.then(|| version.to_string())
}

fn check_direct_url(
    lock: &LockSource<'_>,
    line: usize,
    text: &str,
    url: &str,
    hashes: &[[u8; 32]],
) -> Result<(), LockError> {
    let unsupported = |message: String| LockError::Unsupported {
        lock: lock.display.to_string(),
        line,
        package: text.to_string(),
        message,
    };
    let scheme = url
        .split(':')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if scheme.contains('+') {
        return Err(unsupported(format!(
            "a version-control URL ({scheme}) is not fetched: it pins a commit, not a file digest; depend on a released file, or fetch the repository with a fixed-output [[fetch]] step"
        )));
    }
    if scheme != "https" && scheme != "http" {
        return Err(unsupported(format!(
            "`{url}` is not an http(s) URL; a local file belongs in a [[source]]"
        )));
    }
    if hashes.len() > 1 {
        return Err(invalid(
            lock,
            line,
            format!(
                "`{text}` is one file but has {} hashes; give the one sha256 of that file",
                hashes.len()
            ),
        ));
    }
    if url_file_name_decoded(url).is_none_or(|name| plain_file_name(&name).is_err()) {
        return Err(invalid(
            lock,
            line,
            format!("`{text}`: the URL does not end in a file name"),
        ));
    }
    Ok(())
}

/// `six-1.16.0-py2.py3-none-any.whl` or `six-1.16.0.tar.gz` of project `six`: `1.16.0`.
fn version_from_file_name(name: &str, file: &str) -> Option<String> {
    if let Some(stem) = file.strip_suffix(".whl") {
        let mut parts = stem.split('-');
        let (project, version) = (parts.next()?, parts.next()?);
        return (normalize_name(project) == name).then(|| version.to_string());
    }
    let stem = [".tar.gz", ".zip", ".tar.bz2", ".tar.xz", ".tgz"]
        .iter()
        .find_map(|extension| file.strip_suffix(extension))?;
    let (project, version) = stem.rsplit_once('-')?;
    (normalize_name(project) == name).then(|| version.to_string())
}

fn is_archive_name(text: &str) -> bool {
    [".whl", ".tar.gz", ".zip", ".tar.bz2", ".tar.xz", ".tgz"]
        .iter()
        .any(|extension| text.ends_with(extension))
}

fn valid_project_name(name: &str) -> bool {
    let alphanumeric_at = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    alphanumeric_at(name.chars().next()) && alphanumeric_at(name.chars().last())
}

/// PEP 503: lower case, each run of `-`, `_`, `.` one `-`.
pub fn normalize_name(name: &str) -> String {
    let mut normalized = String::with_capacity(name.len());
    let mut in_separator = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !in_separator {
                normalized.push('-');
            }
            in_separator = true;
        } else {
            normalized.push(c.to_ascii_lowercase());
            in_separator = false;
        }
    }
    normalized
}

/// `<index>/<normalized name>/`, the index URL given with or without its trailing slash.
pub fn project_page_url(index: &str, name: &str) -> String {
    format!("{}/{}/", index.trim_end_matches('/'), normalize_name(name))
}

/// The files a project page lists: PEP 691 JSON or PEP 503 HTML, by the content type (sniffed
/// from the body when that names neither).
pub fn parse_index_page(
    body: &[u8],
    content_type: &str,
    page_url: &str,
) -> Result<Vec<IndexFile>, String> {
    let base = reqwest::Url::parse(page_url)
        .map_err(|error| format!("the page URL {page_url} is not a URL: {error}"))?;
    let media_type = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let json = match media_type.as_str() {
        "application/vnd.pypi.simple.v1+json"
        | "application/vnd.pypi.simple.latest+json"
        | "application/json" => true,
        "application/vnd.pypi.simple.v1+html"
        | "application/vnd.pypi.simple.latest+html"
        | "text/html"
        | "application/xhtml+xml" => false,
        _ => match body.iter().find(|byte| !byte.is_ascii_whitespace()) {
            Some(b'{') => true,
            Some(b'<') => false,
            _ => {
                return Err(format!(
                    "{page_url} is neither a PEP 691 JSON nor a PEP 503 HTML page (content type `{content_type}`)"
                ));
            }
        },
    };
    if json {
        parse_json_page(body, &base)
    } else {
        let text = std::str::from_utf8(body)
            .map_err(|_| format!("the HTML page {page_url} is not UTF-8"))?;
        parse_html_page(text, &base)
    }
}

#[derive(Deserialize)]
struct JsonPage {
    meta: JsonMeta,
    files: Vec<JsonFile>,
}

#[derive(Deserialize)]
struct JsonMeta {
    #[serde(rename = "api-version")]
    api_version: String,
}

#[derive(Deserialize)]
struct JsonFile {
    filename: String,
    url: String,
    #[serde(default)]
    hashes: HashMap<String, String>,
}

fn parse_json_page(body: &[u8], base: &reqwest::Url) -> Result<Vec<IndexFile>, String> {
    let page: JsonPage = serde_json::from_slice(body)
        .map_err(|error| format!("the PEP 691 page {base} cannot be read: {error}"))?;
    if page.meta.api_version.split('.').next() != Some("1") {
        return Err(format!(
            "the page {base} is simple API version {}; sealroom reads version 1.x",
            page.meta.api_version
        ));
    }
    page.files
        .into_iter()
        .map(|file| {
            let url = base
                .join(&file.url)
                .map_err(|error| format!("{}: bad url `{}`: {error}", file.filename, file.url))?;
            let sha256 = match file.hashes.get("sha256") {
                Some(hex_digest) => Some(sha256_hex(hex_digest).ok_or_else(|| {
                    format!(
                        "{}: `{hex_digest}` is not a sha256 (64 hex digits)",
                        file.filename
                    )
                })?),
                None => None,
            };
            Ok(IndexFile {
                filename: file.filename,
                url: url.to_string(),
                sha256,
            })
        })
        .collect()
}

fn parse_html_page(text: &str, page: &reqwest::Url) -> Result<Vec<IndexFile>, String> {
    let lower = text.to_ascii_lowercase();
    let mut base = page.clone();
    if let Some(start) = find_tag(&lower, "base", 0) {
        let (attributes, _) = tag_attributes(text, start);
        if let Some(href) = attribute(&attributes, "href") {
            base = page
                .join(&href)
                .map_err(|error| format!("{page}: bad <base href=\"{href}\">: {error}"))?;
        }
    }
    let mut files = Vec::new();
    let mut from = 0;
    while let Some(start) = find_tag(&lower, "a", from) {
        let (attributes, content_start) = tag_attributes(text, start);
        let content_end = lower[content_start..]
            .find("</a")
            .map_or(text.len(), |at| content_start + at);
        from = content_end.max(start + 1);
        let Some(href) = attribute(&attributes, "href") else {
            continue;
        };
        let (link, fragment) = href.split_once('#').unwrap_or((&href, ""));
        let url = base
            .join(link)
            .map_err(|error| format!("{page}: bad href `{href}`: {error}"))?;
        let sha256 = match fragment.split_once('=') {
            Some(("sha256", hex_digest)) => Some(sha256_hex(hex_digest).ok_or_else(|| {
                format!("{page}: `{href}`: `{hex_digest}` is not a sha256 (64 hex digits)")
            })?),
            _ => None,
        };
        let anchor_text = decode_entities(strip_tags(&text[content_start..content_end]).trim());
        let filename = if anchor_text.is_empty() {
            url_file_name_decoded(url.as_str()).unwrap_or_default()
        } else {
            anchor_text
        };
        files.push(IndexFile {
            filename,
            url: url.to_string(),
            sha256,
        });
    }
    Ok(files)
}

/// The byte offset of the next `<name` tag (followed by whitespace, `/` or `>`) at or after
/// `from`, in the lower-cased page.
fn find_tag(lower: &str, name: &str, from: usize) -> Option<usize> {
    let open = format!("<{name}");
    let mut at = from;
    while let Some(found) = lower[at..].find(&open) {
        let start = at + found;
        let after = lower[start + open.len()..].chars().next();
        if after.is_some_and(|c| c.is_ascii_whitespace() || c == '>' || c == '/') {
            return Some(start);
        }
        at = start + open.len();
    }
    None
}

/// The attributes of the tag at `start` (names lower-cased, values with entities decoded) and
/// where its content starts.
fn tag_attributes(text: &str, start: usize) -> (Vec<(String, String)>, usize) {
    let bytes = text.as_bytes();
    let mut at = start + 1;
    while at < bytes.len() && bytes[at].is_ascii_alphanumeric() {
        at += 1;
    }
    let mut attributes = Vec::new();
    loop {
        while at < bytes.len() && (bytes[at].is_ascii_whitespace() || bytes[at] == b'/') {
            at += 1;
        }
        if at >= bytes.len() {
            return (attributes, at);
        }
        if bytes[at] == b'>' {
            return (attributes, at + 1);
        }
        let name_start = at;
        while at < bytes.len()
            && !bytes[at].is_ascii_whitespace()
            && !matches!(bytes[at], b'=' | b'>' | b'/')
        {
            at += 1;
        }
        let name = text[name_start..at].to_ascii_lowercase();
        while at < bytes.len() && bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        let mut value = String::new();
        if at < bytes.len() && bytes[at] == b'=' {
            at += 1;
            while at < bytes.len() && bytes[at].is_ascii_whitespace() {
                at += 1;
            }
            if at < bytes.len() && (bytes[at] == b'"' || bytes[at] == b'\'') {
                let quote = bytes[at];
                let value_start = at + 1;
                let value_end = text[value_start..]
                    .find(quote as char)
                    .map_or(text.len(), |found| value_start + found);
                value = decode_entities(&text[value_start..value_end]);
                at = (value_end + 1).min(text.len());
            } else {
                let value_start = at;
                while at < bytes.len() && !bytes[at].is_ascii_whitespace() && bytes[at] != b'>' {
                    at += 1;
                }
                value = decode_entities(&text[value_start..at]);
            }
        }
        if name.is_empty() {
            at += 1;
        } else {
            attributes.push((name, value));
        }
    }
}

fn attribute(attributes: &[(String, String)], name: &str) -> Option<String> {
    attributes
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.clone())
}

fn strip_tags(html: &str) -> String {
    let mut text = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            _ if !in_tag => text.push(c),
            _ => {}
        }
    }
    text
}

/// HTML character references: the named ones a simple page uses, and `&#NN;`, `&#xHH;`.
fn decode_entities(text: &str) -> String {
    let mut decoded = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        decoded.push_str(&rest[..at]);
        rest = &rest[at..];
        let reference = rest[1..]
            .find(';')
            .filter(|&end| end <= 10)
            .map(|end| &rest[1..1 + end]);
        let character = reference.and_then(|reference| match reference {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            numeric => {
                let number = numeric.strip_prefix('#')?;
                let code = match number.strip_prefix(['x', 'X']) {
                    Some(hex_digits) => u32::from_str_radix(hex_digits, 16).ok()?,
                    None => number.parse().ok()?,
                };
                char::from_u32(code)
            }
        });
        match (character, reference) {
            (Some(character), Some(reference)) => {
                decoded.push(character);
                rest = &rest[reference.len() + 2..];
            }
            _ => {
                decoded.push('&');
                rest = &rest[1..];
            }
        }
    }
    decoded.push_str(rest);
    decoded
}

/// Every listed file whose sha256 is in the requirement's hash set (a file of the same name
/// listed twice is taken once). A direct URL requirement is its own file; the page is not read.
pub fn choose(
    requirement: &Requirement,
    files: &[IndexFile],
    lock: &LockSource<'_>,
) -> Result<Vec<LockedFile>, LockError> {
    if let Some(file) = direct_file(requirement, lock)? {
        return Ok(vec![file]);
    }
    let mut chosen: Vec<LockedFile> = Vec::new();
    for file in files {
        let Some(sha256) = file
            .sha256
            .filter(|sha256| requirement.hashes.contains(sha256))
        else {
            continue;
        };
        if chosen.iter().any(|taken| taken.file_name == file.filename) {
            continue;
        }
        let file_name = plain_file_name(&file.filename).map_err(|why| {
            invalid(
                lock,
                requirement.line,
                format!(
                    "{}: the index names a file `{}`, which {why}",
                    requirement.text, file.filename
                ),
            )
        })?;
        chosen.push(python_file(
            &requirement.name,
            Some(&requirement.version),
            file.url.clone(),
            file_name,
            LockDigest::Sha256(sha256),
            requirement.line,
        ));
    }
    if chosen.is_empty() {
        return Err(LockError::NotInIndex {
            lock: lock.display.to_string(),
            line: requirement.line,
            package: requirement.text.clone(),
            message: format!(
                "the index page of `{}` lists {} file{}, none with a sha256 the lock pins ({})",
                requirement.name,
                files.len(),
                if files.len() == 1 { "" } else { "s" },
                requirement
                    .hashes
                    .iter()
                    .map(|hash| format!("sha256:{}", hex::encode(hash)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
    Ok(chosen)
}

/// The file of a `name @ https://...` requirement, `None` for a requirement the index is asked
/// about.
pub fn direct_file(
    requirement: &Requirement,
    lock: &LockSource<'_>,
) -> Result<Option<LockedFile>, LockError> {
    let Some(url) = &requirement.url else {
        return Ok(None);
    };
    let file_name = url_file_name_decoded(url)
        .ok_or_else(|| "is empty".to_string())
        .and_then(|name| plain_file_name(&name))
        .map_err(|why| {
            invalid(
                lock,
                requirement.line,
                format!("{}: the URL's file name {why}", requirement.text),
            )
        })?;
    let digest = *requirement
        .hashes
        .first()
        .ok_or_else(|| LockError::NoDigest {
            lock: lock.display.to_string(),
            line: requirement.line,
            package: requirement.text.clone(),
            what: "no `--hash=sha256:<hex>`".to_string(),
            hint: REGENERATE_HINT.to_string(),
        })?;
    let version = (!requirement.version.is_empty()).then_some(requirement.version.as_str());
    Ok(Some(python_file(
        &requirement.name,
        version,
        url.clone(),
        file_name,
        LockDigest::Sha256(digest),
        requirement.line,
    )))
}

/// A wheel or sdist of project `name` (normalized here) as every Python format locks it.
pub(super) fn python_file(
    name: &str,
    version: Option<&str>,
    url: String,
    file_name: String,
    digest: LockDigest,
    line: usize,
) -> LockedFile {
    let name = normalize_name(name);
    let (purl, package) = match version {
        Some(version) => (
            format!("pkg:pypi/{}@{}", purl_escape(&name), purl_escape(version)),
            format!("{name} {version}"),
        ),
        None => (format!("pkg:pypi/{}", purl_escape(&name)), name),
    };
    LockedFile {
        purl,
        package,
        url,
        file_name,
        digest,
        line,
        kind: FileKind::Python,
    }
}

/// A TOML lock (uv.lock, pylock.toml) that does not parse, or lacks a key, at its line.
pub(super) fn toml_error(lock: &LockSource<'_>, error: &toml::de::Error) -> LockError {
    invalid(
        lock,
        error.span().map_or(1, |span| lock.line_of(span.start)),
        error.message().trim_end().to_string(),
    )
}

/// The name a file may have in the flat directory: one path component, not `.` or `..`.
pub(super) fn plain_file_name(name: &str) -> Result<String, String> {
    if name.is_empty() || name == "." || name == ".." {
        return Err(format!("`{name}` is not a file name"));
    }
    if name.contains(['/', '\\', '\0']) {
        return Err("is not a plain file name (it holds `/`, `\\` or NUL)".to_string());
    }
    Ok(name.to_string())
}

/// The last segment of a URL's path, percent-decoded (`foo-1.0%2Bcpu.whl` is
/// `foo-1.0+cpu.whl`, the name pip looks for).
pub(super) fn url_file_name_decoded(url: &str) -> Option<String> {
    let encoded = super::url_file_name(url)?;
    let bytes = encoded.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let escaped = (bytes[at] == b'%')
            .then(|| encoded.get(at + 1..at + 3))
            .flatten()
            .and_then(|hex_pair| u8::from_str_radix(hex_pair, 16).ok());
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                at += 3;
            }
            None => {
                decoded.push(bytes[at]);
                at += 1;
            }
        }
    }
    String::from_utf8(decoded).ok()
}

/// The flat directory pip's `--find-links` reads: each file under its own name. The same file
/// twice (two requirements, or two lock entries, of one file) is written once; two different
/// files of one name are an error.
pub fn lay_out(files: &[Verified<'_>], root: &Path) -> Result<(), LockError> {
    let mut written: HashMap<&str, &LockedFile> = HashMap::new();
    for verified in files {
        let file = verified.file;
        let layout_error = |message: String| LockError::Layout {
            package: file.package.clone(),
            file: file.file_name.clone(),
            message,
        };
        plain_file_name(&file.file_name).map_err(|why| layout_error(format!("the name {why}")))?;
        if let Some(first) = written.get(file.file_name.as_str()) {
            if first.digest == file.digest {
                continue;
            }
            return Err(layout_error(format!(
                "two different files have this name: {} (line {}, {}) and {} (line {}, {})",
                first.package, first.line, first.digest, file.package, file.line, file.digest
            )));
        }
        let destination = root.join(&file.file_name);
        copy_new(&verified.path, &destination)?;
        written.insert(&file.file_name, file);
    }
    Ok(())
}

/// Copies `from` to a new file `to` (never through a link already there), mode 0644 whatever
/// the store's mode.
fn copy_new(from: &Path, to: &Path) -> Result<(), LockError> {
    let mut source = fs::File::open(from).map_err(|error| LockError::io("open", from, error))?;
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o644);
    let mut destination = options
        .open(to)
        .map_err(|error| LockError::io("create", to, error))?;
    io::copy(&mut source, &mut destination).map_err(|error| LockError::io("write", to, error))?;
    #[cfg(unix)]
    destination
        .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .map_err(|error| LockError::io("set the mode of", to, error))?;
    destination
        .sync_all()
        .map_err(|error| LockError::io("sync", to, error))?;
    Ok(())
}

#[cfg(test)]
pub(super) mod tests {
    use std::path::PathBuf;

    use sha2::Digest as _;

    use super::*;

    pub(crate) fn fixture(path: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(path)
    }

    /// The sha256 of a real package under `tests/fixtures/packages/pypi/`, hashed here.
    pub(crate) fn package_sha256(file: &str) -> [u8; 32] {
        let bytes = fs::read(fixture(&format!("packages/pypi/{file}"))).unwrap();
        sha2::Sha256::digest(bytes).into()
    }

    pub(crate) const SIX_WHEEL: &str = "six-1.16.0-py2.py3-none-any.whl";
    pub(crate) const SIX_SDIST: &str = "six-1.16.0.tar.gz";
    pub(crate) const INICONFIG_WHEEL: &str = "iniconfig-2.0.0-py3-none-any.whl";

    fn source<'a>(display: &'a str, text: &'a str) -> LockSource<'a> {
        LockSource { display, text }
    }

    fn parse(text: &str) -> Result<Vec<Requirement>, LockError> {
        parse_requirements(&source("requirements.txt", text))
    }

    fn error(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    fn hex_of(file: &str) -> String {
        hex::encode(package_sha256(file))
    }

    #[test]
    fn reads_the_file_uv_export_wrote() {
        let text = fs::read_to_string(fixture("locks/python/requirements.txt")).unwrap();
        let requirements = parse(&text).unwrap();
        let summary: Vec<_> = requirements
            .iter()
            .map(|r| (r.name.as_str(), r.version.as_str(), r.line, r.text.as_str()))
            .collect();
        assert_eq!(
            summary,
            [
                ("iniconfig", "2.0.0", 3, "iniconfig==2.0.0"),
                ("six", "1.16.0", 7, "six==1.16.0")
            ]
        );
        assert!(
            requirements[0]
                .hashes
                .contains(&package_sha256(INICONFIG_WHEEL))
        );
        assert_eq!(
            requirements[0].hashes.len(),
            2,
            "the sdist's and the wheel's"
        );
        assert_eq!(
            requirements[1].hashes,
            [package_sha256(SIX_SDIST), package_sha256(SIX_WHEEL)]
        );
        assert!(
            requirements
                .iter()
                .all(|r| r.url.is_none() && r.marker.is_none())
        );
    }

    #[test]
    fn reads_the_file_pip_compile_wrote_with_its_marker() {
        let text =
            fs::read_to_string(fixture("locks/python/requirements-pip-compile.txt")).unwrap();
        let requirements = parse(&text).unwrap();
        assert_eq!(requirements.len(), 2);
        let iniconfig = &requirements[0];
        assert_eq!((iniconfig.name.as_str(), iniconfig.line), ("iniconfig", 7));
        assert_eq!(
            iniconfig.marker.as_deref(),
            Some("python_version < \"3.12\"")
        );
        assert_eq!(iniconfig.text, "iniconfig==2.0.0");
        assert!(iniconfig.hashes.contains(&package_sha256(INICONFIG_WHEEL)));
        assert_eq!(requirements[1].line, 11);
        assert_eq!(requirements[1].hashes[1], package_sha256(SIX_WHEEL));
    }

    #[test]
    fn comments_continuations_options_extras_and_names() {
        let six = hex_of(SIX_WHEEL);
        let sdist = hex_of(SIX_SDIST);
        let text = format!(
            "# a comment\n\n--index-url https://index.internal.example/simple\n-i https://index.internal.example/simple\n--extra-index-url=https://other.internal.example/simple --trusted-host other.internal.example\n--find-links ./wheels\n--no-binary :all:\n--only-binary=:none:\n--prefer-binary\n--require-hashes\n\
             Six[Extra_One,two]==1.16.0 --hash sha256:{six}  # trailing comment\n\
             Zope.Interface_X === 1.0 ; python_version < '3.12' \\\n    --hash=sha256:{sdist} \\\n    # via something\n\
             pkg @ https://files.internal.example/pkg-2.0%2Blocal-py3-none-any.whl#sha256={six} ; sys_platform == 'linux' \\\n  --hash=sha256:{six}\n"
        );
        let requirements = parse(&text).unwrap();
        assert_eq!(requirements.len(), 3);
        let first = &requirements[0];
        assert_eq!(
            (
                first.name.as_str(),
                first.version.as_str(),
                first.line,
                first.text.as_str()
            ),
            ("six", "1.16.0", 11, "Six[Extra_One,two]==1.16.0")
        );
        assert_eq!(first.hashes, [package_sha256(SIX_WHEEL)]);
        let second = &requirements[1];
        assert_eq!(
            (second.name.as_str(), second.version.as_str(), second.line),
            ("zope-interface-x", "1.0", 12)
        );
        assert_eq!(second.marker.as_deref(), Some("python_version < '3.12'"));
        assert_eq!(second.hashes, [package_sha256(SIX_SDIST)]);
        let third = &requirements[2];
        assert_eq!((third.name.as_str(), third.line), ("pkg", 15));
        assert_eq!(
            third.version, "2.0+local",
            "read from the wheel's (decoded) name"
        );
        assert_eq!(third.marker.as_deref(), Some("sys_platform == 'linux'"));
        assert_eq!(
            third.url.as_deref(),
            Some(
                format!(
                    "https://files.internal.example/pkg-2.0%2Blocal-py3-none-any.whl#sha256={six}"
                )
                .as_str()
            )
        );
        let lock = source("requirements.txt", &text);
        let direct = choose(third, &[], &lock).unwrap();
        assert_eq!(direct.len(), 1);
        assert_eq!(direct[0].file_name, "pkg-2.0+local-py3-none-any.whl");
        assert_eq!(direct[0].purl, "pkg:pypi/pkg@2.0%2Blocal");
        assert_eq!(
            direct[0].digest,
            LockDigest::Sha256(package_sha256(SIX_WHEEL))
        );
        assert_eq!(direct_file(first, &lock).unwrap().map(|f| f.url), None);
    }

    #[test]
    fn a_requirement_without_a_hash_is_no_digest_at_its_line() {
        let six = hex_of(SIX_WHEEL);
        let text = format!(
            "# a lock with one requirement left without a hash\nsix==1.16.0 \\\n    --hash=sha256:{six}\n# the next requirement has no --hash\niniconfig==2.0.0\n"
        );
        let err = parse(&text).unwrap_err();
        assert!(
            matches!(&err, LockError::NoDigest { line: 5, package, .. } if package == "iniconfig==2.0.0"),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(
            message.starts_with("requirements.txt:5: iniconfig==2.0.0 has no digest"),
            "{message}"
        );
        assert!(message.contains("--generate-hashes"), "{message}");
    }

    #[test]
    fn a_requirement_without_one_pinned_version_is_invalid() {
        let six = hex_of(SIX_WHEEL);
        for (requirement, found) in [
            ("six>=1.16", "`>=1.16`"),
            ("six", "no version"),
            ("six==1.*", "`==1.*`"),
            ("six==1.16.0,>=1", "`==1.16.0,>=1`"),
            ("six~=1.16", "`~=1.16`"),
        ] {
            let message = error(&format!("\n{requirement} --hash=sha256:{six}\n"));
            assert!(
                message.starts_with("requirements.txt:2: ")
                    && message.contains("a hashed lock pins each requirement with `==`")
                    && message.contains(found),
                "{requirement}: {message}"
            );
        }
    }

    #[test]
    fn a_hash_other_than_sha256_or_malformed_is_invalid() {
        let md5 = error("six==1.16.0 --hash=md5:0123456789abcdef0123456789abcdef\n");
        assert!(
            md5.contains("is a md5 hash; sealroom verifies sha256"),
            "{md5}"
        );
        let short = error("six==1.16.0 --hash=sha256:abc\n");
        assert!(
            short.contains("expected 64 hex digits") && short.contains("found 3"),
            "{short}"
        );
        let not_hex = error(&format!("six==1.16.0 --hash=sha256:{}\n", "z".repeat(64)));
        assert!(not_hex.contains("expected 64 hex digits"), "{not_hex}");
        let no_algorithm = error(&format!("six==1.16.0 --hash={}\n", hex_of(SIX_WHEEL)));
        assert!(
            no_algorithm.contains("expected `sha256:<64 hex digits>`"),
            "{no_algorithm}"
        );
        let dangling = error("six==1.16.0 --hash\n");
        assert!(dangling.contains("`--hash` without a value"), "{dangling}");
        let other_option = error("six==1.16.0 --config-settings=x=y\n");
        assert!(
            other_option.contains("unknown option `--config-settings=x=y`"),
            "{other_option}"
        );
    }

    #[test]
    fn nested_files_editables_and_bare_paths_are_refused_at_their_line() {
        let six = hex_of(SIX_WHEEL);
        for (line, expected) in [
            ("-r other.txt", "nested requirements file is not followed"),
            (
                "--requirement=other.txt",
                "nested requirements file is not followed",
            ),
            ("-c constraints.txt", "constraints file is not followed"),
            ("-e .", "editable requirement is not hermetic"),
            (
                "--editable git+https://git.internal.example/x.git",
                "editable requirement",
            ),
            ("./vendor/six", "bare path or URL"),
            ("vendor/six-1.16.0.tar.gz", "bare path or URL"),
            ("six-1.16.0-py2.py3-none-any.whl", "bare path or URL"),
            ("https://files.internal.example/six.whl", "bare path or URL"),
        ] {
            let message = error(&format!(
                "six==1.16.0 --hash=sha256:{six}\n{line} --hash=sha256:{six}\n"
            ));
            assert!(
                message.starts_with("requirements.txt:2: ") && message.contains(expected),
                "{line}: {message}"
            );
        }
        let unknown = error("--no-deps\n");
        assert!(
            unknown.starts_with("requirements.txt:1: unknown option `--no-deps`"),
            "{unknown}"
        );
        let vcs = error(&format!(
            "x @ git+https://git.internal.example/x.git --hash=sha256:{six}\n"
        ));
        assert!(
            vcs.contains("version-control URL (git+https) is not fetched"),
            "{vcs}"
        );
        let local = error(&format!(
            "x @ file:///tmp/x-1.0.tar.gz --hash=sha256:{six}\n"
        ));
        assert!(local.contains("is not an http(s) URL"), "{local}");
        let two = error(&format!(
            "x @ https://files.internal.example/x-1.0.tar.gz --hash=sha256:{six} --hash=sha256:{}\n",
            hex_of(SIX_SDIST)
        ));
        assert!(two.contains("is one file but has 2 hashes"), "{two}");
        let bad_name = error(&format!("-six==1.0 --hash=sha256:{six}\n"));
        assert!(
            bad_name.contains("unknown option `-six==1.0`"),
            "{bad_name}"
        );
        let bad_name = error(&format!("six_==1.0 --hash=sha256:{six}\n"));
        assert!(
            bad_name.contains("`six_` is not a project name"),
            "{bad_name}"
        );
    }

    #[test]
    fn the_project_page_is_under_the_normalized_name() {
        assert_eq!(
            project_page_url("http://127.0.0.1:1/simple", "Zope.Interface"),
            "http://127.0.0.1:1/simple/zope-interface/"
        );
        assert_eq!(
            project_page_url("http://127.0.0.1:1/simple/", "six"),
            "http://127.0.0.1:1/simple/six/"
        );
    }

    const PAGE: &str = "http://127.0.0.1:8080/simple/six/";

    #[test]
    fn reads_a_pep_691_json_page() {
        let body = format!(
            r#"{{"meta": {{"api-version": "1.1"}}, "name": "six", "files": [
                {{"filename": "{SIX_WHEEL}", "url": "../../files/{SIX_WHEEL}", "hashes": {{"sha256": "{}"}}, "yanked": false}},
                {{"filename": "{SIX_SDIST}", "url": "http://127.0.0.1:9/x/{SIX_SDIST}", "hashes": {{"md5": "00"}}}}
            ]}}"#,
            hex_of(SIX_WHEEL)
        );
        let files =
            parse_index_page(body.as_bytes(), "application/vnd.pypi.simple.v1+json", PAGE).unwrap();
        assert_eq!(
            files,
            [
                IndexFile {
                    filename: SIX_WHEEL.to_string(),
                    url: format!("http://127.0.0.1:8080/files/{SIX_WHEEL}"),
                    sha256: Some(package_sha256(SIX_WHEEL)),
                },
                IndexFile {
                    filename: SIX_SDIST.to_string(),
                    url: format!("http://127.0.0.1:9/x/{SIX_SDIST}"),
                    sha256: None,
                },
            ]
        );
        // No usable content type: sniffed.
        let sniffed = parse_index_page(body.as_bytes(), "application/octet-stream", PAGE).unwrap();
        assert_eq!(sniffed, files);
        let newer = body.replace("\"1.1\"", "\"2.0\"");
        let err = parse_index_page(newer.as_bytes(), "application/json", PAGE).unwrap_err();
        assert!(err.contains("simple API version 2.0"), "{err}");
        let bad = body.replace(&hex_of(SIX_WHEEL), "abc");
        let err = parse_index_page(bad.as_bytes(), "application/json", PAGE).unwrap_err();
        assert!(err.contains("`abc` is not a sha256"), "{err}");
    }

    #[test]
    fn reads_a_pep_503_html_page() {
        let wheel = hex_of(SIX_WHEEL);
        let sdist = hex_of(SIX_SDIST);
        let body = format!(
            "<!DOCTYPE html>\n<html><head><title>Links for six</title></head><body><h1>Links for six</h1>\n\
             <A data-requires-python=\"&gt;=2.7\" HREF=\"../../files/{SIX_WHEEL}?a=1&amp;b=2#sha256={wheel}\">{SIX_WHEEL}</A><br/>\n\
             <a href='http://127.0.0.1:9/x/six-1.16.0.tar.gz#sha256={sdist}' data-dist-info-metadata=\"true\"></a>\n\
             <a href=\"/files/other.whl#md5=00\" >other&#46;whl</a>\n\
             <abbr>not a link</abbr>\n</body></html>\n"
        );
        let files = parse_index_page(body.as_bytes(), "text/html; charset=utf-8", PAGE).unwrap();
        assert_eq!(
            files,
            [
                IndexFile {
                    filename: SIX_WHEEL.to_string(),
                    url: format!("http://127.0.0.1:8080/files/{SIX_WHEEL}?a=1&b=2"),
                    sha256: Some(package_sha256(SIX_WHEEL)),
                },
                IndexFile {
                    filename: SIX_SDIST.to_string(),
                    url: format!("http://127.0.0.1:9/x/{SIX_SDIST}"),
                    sha256: Some(package_sha256(SIX_SDIST)),
                },
                IndexFile {
                    filename: "other.whl".to_string(),
                    url: "http://127.0.0.1:8080/files/other.whl".to_string(),
                    sha256: None,
                },
            ]
        );
        let sniffed = parse_index_page(body.as_bytes(), "", PAGE).unwrap();
        assert_eq!(sniffed, files);
        let based = format!("<html><head><base href=\"http://127.0.0.1:7/b/\"></head>{body}");
        let files = parse_index_page(based.as_bytes(), "text/html", PAGE).unwrap();
        assert_eq!(
            files[0].url,
            format!("http://127.0.0.1:7/files/{SIX_WHEEL}?a=1&b=2")
        );
        let err = parse_index_page(b"plain text", "text/plain", PAGE).unwrap_err();
        assert!(
            err.contains("neither a PEP 691 JSON nor a PEP 503 HTML page"),
            "{err}"
        );
    }

    fn index_file(filename: &str, sha256: [u8; 32]) -> IndexFile {
        IndexFile {
            filename: filename.to_string(),
            url: format!("http://127.0.0.1:8080/files/{filename}"),
            sha256: Some(sha256),
        }
    }

    fn six_requirement(text: &str) -> (String, Requirement) {
        let lock = format!("{text}\n");
        let requirement = parse(&lock).unwrap().remove(0);
        (lock, requirement)
    }

    #[test]
    fn chooses_the_listed_files_with_a_locked_sha256() {
        let (text, requirement) = six_requirement(&format!(
            "six==1.16.0 --hash=sha256:{} --hash=sha256:{}",
            hex_of(SIX_SDIST),
            hex_of(SIX_WHEEL)
        ));
        let lock = source("requirements.txt", &text);
        let files = [
            index_file("six-1.16.0-py3-none-any.whl", [7; 32]),
            index_file(SIX_WHEEL, package_sha256(SIX_WHEEL)),
            index_file(SIX_WHEEL, package_sha256(SIX_WHEEL)),
            IndexFile {
                sha256: None,
                ..index_file("six-1.15.0.tar.gz", [0; 32])
            },
            index_file(SIX_SDIST, package_sha256(SIX_SDIST)),
        ];
        let chosen = choose(&requirement, &files, &lock).unwrap();
        let names: Vec<_> = chosen.iter().map(|f| f.file_name.as_str()).collect();
        assert_eq!(names, [SIX_WHEEL, SIX_SDIST]);
        let wheel = &chosen[0];
        assert_eq!(wheel.purl, "pkg:pypi/six@1.16.0");
        assert_eq!(wheel.package, "six 1.16.0");
        assert_eq!(
            wheel.url,
            format!("http://127.0.0.1:8080/files/{SIX_WHEEL}")
        );
        assert_eq!(wheel.digest, LockDigest::Sha256(package_sha256(SIX_WHEEL)));
        assert_eq!((wheel.line, &wheel.kind), (1, &FileKind::Python));
    }

    #[test]
    fn no_listed_file_with_a_locked_sha256_is_not_in_index() {
        let (text, requirement) = six_requirement(&format!(
            "\nsix==1.16.0 --hash=sha256:{}",
            hex_of(SIX_WHEEL)
        ));
        let lock = source("requirements.txt", &text);
        let files = [
            index_file(SIX_SDIST, package_sha256(SIX_SDIST)),
            index_file("x.whl", [1; 32]),
        ];
        let err = choose(&requirement, &files, &lock).unwrap_err();
        assert!(
            matches!(err, LockError::NotInIndex { line: 2, .. }),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(
            message.starts_with("requirements.txt:2: six==1.16.0: the index page of `six` lists 2 files, none with a sha256 the lock pins"),
            "{message}"
        );
        assert!(message.contains(&hex_of(SIX_WHEEL)), "{message}");
        let err = choose(&requirement, &[], &lock).unwrap_err().to_string();
        assert!(err.contains("lists 0 files"), "{err}");
    }

    #[test]
    fn a_listed_file_name_that_is_not_plain_is_invalid() {
        let (text, requirement) =
            six_requirement(&format!("six==1.16.0 --hash=sha256:{}", hex_of(SIX_WHEEL)));
        let lock = source("requirements.txt", &text);
        for name in ["../six.whl", "a/b.whl", "..", ".", "", "six\0.whl"] {
            let files = [index_file(name, package_sha256(SIX_WHEEL))];
            let err = choose(&requirement, &files, &lock).unwrap_err();
            assert!(
                matches!(&err, LockError::Invalid { line: 1, message, .. } if message.contains("the index names a file")),
                "{name:?}: {err:?}"
            );
        }
    }

    #[test]
    fn lays_the_files_out_flat_under_their_names() {
        let root = tempfile::tempdir().unwrap();
        let wheel = python_file(
            "six",
            Some("1.16.0"),
            "http://127.0.0.1:1/w".to_string(),
            SIX_WHEEL.to_string(),
            LockDigest::Sha256(package_sha256(SIX_WHEEL)),
            3,
        );
        let sdist = LockedFile {
            file_name: SIX_SDIST.to_string(),
            digest: LockDigest::Sha256(package_sha256(SIX_SDIST)),
            ..wheel.clone()
        };
        let verified = |file| Verified {
            file,
            path: fixture(&format!("packages/pypi/{}", file.file_name)),
        };
        let files = [verified(&wheel), verified(&sdist), verified(&wheel)];
        lay_out(&files, root.path()).unwrap();
        let mut names: Vec<_> = fs::read_dir(root.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, [SIX_WHEEL, SIX_SDIST]);
        for name in [SIX_WHEEL, SIX_SDIST] {
            let bytes = fs::read(root.path().join(name)).unwrap();
            assert_eq!(
                <[u8; 32]>::from(sha2::Sha256::digest(bytes)),
                package_sha256(name)
            );
        }
    }

    #[test]
    fn two_different_files_of_one_name_are_a_layout_error() {
        let root = tempfile::tempdir().unwrap();
        let wheel = python_file(
            "six",
            Some("1.16.0"),
            "http://127.0.0.1:1/w".to_string(),
            SIX_WHEEL.to_string(),
            LockDigest::Sha256(package_sha256(SIX_WHEEL)),
            3,
        );
        let other = LockedFile {
            digest: LockDigest::Sha256(package_sha256(SIX_SDIST)),
            line: 9,
            ..wheel.clone()
        };
        let path = fixture(&format!("packages/pypi/{SIX_WHEEL}"));
        let files = [
            Verified {
                file: &wheel,
                path: path.clone(),
            },
            Verified { file: &other, path },
        ];
        let err = lay_out(&files, root.path()).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "six 1.16.0: cannot lay out {SIX_WHEEL}: two different files have this name"
            )),
            "{err}"
        );
        assert!(err.contains("line 3") && err.contains("line 9"), "{err}");

        let escaping = LockedFile {
            file_name: "../escape.whl".to_string(),
            ..wheel.clone()
        };
        let path = fixture(&format!("packages/pypi/{SIX_WHEEL}"));
        let err = lay_out(
            &[Verified {
                file: &escaping,
                path,
            }],
            root.path(),
        )
        .unwrap_err();
        assert!(matches!(err, LockError::Layout { .. }), "{err:?}");
        assert!(!root.path().parent().unwrap().join("escape.whl").exists());
    }

    #[test]
    fn names_are_normalized_as_pep_503_says() {
        assert_eq!(normalize_name("Foo__Bar.-baz"), "foo-bar-baz");
        assert_eq!(normalize_name("six"), "six");
    }
}
