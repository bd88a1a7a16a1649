//! `package-lock.json` (lockfileVersion 2 and 3) read as the registry tarballs it pins, and the
//! npm cache that `npm ci --offline` installs them from.
//!
//! The lock's `packages` map names every installed folder with its `resolved` URL and its SRI
//! `integrity`; each registry tarball becomes one [`LockedFile`]. What the project itself holds
//! (the root, workspaces, `link`s, `file:` tarballs) and what travels inside another tarball
//! (`inBundle`) is skipped; a git dependency is refused, since no digest pins its bytes.
//!
//! The layout is a directory in cacache's format, the one npm 7 and later read: each tarball
//! under its integrity, `_cacache/content-v2/<algorithm>/<2 hex>/<2 hex>/<rest of the hex>`.
//! When the lock gives both `resolved` and `integrity`, pacote reads the tarball from there by
//! digest alone (`cacache.get.stream.byDigest`), before and without any request, so no index
//! entries are needed, and npm only reads the cache: it works mounted read-only (npm cannot
//! write its logs there, hence `--logs-dir`). A tarball missing from the cache fails the install
//! with `ENOTCACHED`. Nothing here opens a socket or knows the store.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;

use super::{
    FileKind, LockDigest, LockError, LockFormat, LockSource, LockedFile, Verified, purl_escape,
    url_file_name,
};

/// The install a build step runs in a writable copy of the project, with the layout mounted
/// (read-only) at `mount`: every tarball comes from the cache, none from the network.
pub fn offline_command(mount: &str) -> String {
    format!("npm ci --offline --ignore-scripts --cache {mount} --logs-dir /tmp/npm-logs")
}

/// The entries of a `package-lock.json`'s `packages` map that are fetched: one file per
/// tarball (the same `resolved` and digest under two paths is one file), in the lock's order.
pub fn parse(lock: &LockSource<'_>) -> Result<Vec<LockedFile>, LockError> {
    let raw: RawLock = serde_json::from_str(lock.text).map_err(|error| LockError::Invalid {
        lock: lock.display.to_string(),
        line: error.line().max(1),
        message: format!("expected a package-lock.json (JSON): {error}"),
    })?;
    check_version(lock, &raw)?;
    let Some(packages) = raw.packages else {
        return Err(LockError::Invalid {
            lock: lock.display.to_string(),
            line: key_offset(lock.text, 0, "lockfileVersion").map_or(1, |at| lock.line_of(at)),
            message: "expected a `packages` map (npm 7 and later write one in every lock of \
                      version 2 or 3), found none"
                .to_string(),
        });
    };
    let packages_at = key_offset(lock.text, 0, "packages").unwrap_or(0);

    let mut files: Vec<LockedFile> = Vec::new();
    for (path, value) in packages {
        let Some(folder_name) = installed_name(&path) else {
            // The root (`""`) or a workspace folder: part of the project's source.
            continue;
        };
        let line = key_offset(lock.text, packages_at, &path)
            .map_or_else(|| lock.line_of(packages_at), |offset| lock.line_of(offset));
        let entry = RawPackage::deserialize(value).map_err(|error| LockError::Invalid {
            lock: lock.display.to_string(),
            line,
            message: format!("`{path}`: {error}"),
        })?;
        files.extend(locked_file(lock, line, &path, folder_name, entry)?);
    }
    // In the lock's order (the map is read sorted), each tarball named by its first entry.
    files.sort_by_key(|file| file.line);
    let mut seen = HashSet::new();
    files.retain(|file| seen.insert((file.url.clone(), file.digest.lock_form())));
    Ok(files)
}

/// Copies each verified tarball into `root` as npm's cache holds it, and writes `README.txt`
/// with the command that installs from it.
pub fn lay_out(files: &[Verified<'_>], root: &Path) -> Result<(), LockError> {
    let mut written = HashSet::new();
    let mut listed = BTreeSet::new();
    for verified in files {
        let file = verified.file;
        let FileKind::NpmTarball { name, version } = &file.kind else {
            return Err(LockError::Layout {
                package: file.package.clone(),
                file: file.file_name.clone(),
                message: format!("expected an npm tarball, found {:?}", file.kind),
            });
        };
        let relative = cache_content_path(&file.digest).ok_or_else(|| LockError::Layout {
            package: file.package.clone(),
            file: file.file_name.clone(),
            message: format!(
                "npm's cache holds a tarball by its SRI integrity, not by {}",
                file.digest.algorithm()
            ),
        })?;
        if written.insert(relative.clone()) {
            let target = root.join(&relative);
            let parent = target.parent().expect("a content path has folders");
            std::fs::create_dir_all(parent)
                .map_err(|error| LockError::io("create", parent, error))?;
            std::fs::copy(&verified.path, &target)
                .map_err(|error| LockError::io("copy into the npm cache", &target, error))?;
        }
        listed.insert(format!(
            "{name}@{version}  {}  ({})",
            relative.display(),
            file.file_name
        ));
    }
    let readme = root.join("README.txt");
    std::fs::write(&readme, readme_text(&listed))
        .map_err(|error| LockError::io("write", &readme, error))
}

/// Where npm's cache (cacache, content-v2) keeps the file of `digest`, relative to the
/// directory given as `--cache`; `None` for a digest npm does not address content by.
pub fn cache_content_path(digest: &LockDigest) -> Option<PathBuf> {
    if matches!(digest, LockDigest::GoH1(_)) {
        return None;
    }
    let hex = hex::encode(digest.bytes());
    Some(
        ["_cacache", "content-v2", digest.algorithm()]
            .iter()
            .collect::<PathBuf>()
            .join(&hex[..2])
            .join(&hex[2..4])
            .join(&hex[4..]),
    )
}

fn readme_text(listed: &BTreeSet<String>) -> String {
    let mut text = format!(
        "This directory is an npm cache (cacache's format, read by npm 7 and later) holding the\n\
         registry tarballs of package-lock.json, each under its integrity:\n\
         _cacache/content-v2/<algorithm>/<2 hex>/<2 hex>/<rest of the hex>.\n\
         \n\
         Install from it with no network, in a writable copy of the project (npm ci writes\n\
         node_modules next to package.json); the cache itself may be read-only:\n\
         \n\
         \x20   {}\n\
         \n\
         where /inputs/<name> is where this directory is mounted. Install scripts are not run\n\
         (--ignore-scripts); a tarball missing from the cache fails with ENOTCACHED.\n\
         \n\
         Tarballs:\n",
        offline_command("/inputs/<name>")
    );
    for line in listed {
        text.push_str("  ");
        text.push_str(line);
        text.push('\n');
    }
    text
}

#[derive(Deserialize)]
struct RawLock {
    #[serde(rename = "lockfileVersion")]
    lockfile_version: Option<serde_json::Value>,
    /// Kept as JSON so that each entry is read on its own, its errors naming its line.
    packages: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Deserialize)]
struct RawPackage {
    /// Set for an alias (`"foo": "npm:bar@1"` installs `bar` in `node_modules/foo`).
    name: Option<String>,
    version: Option<String>,
    resolved: Option<String>,
    integrity: Option<String>,
    #[serde(default)]
    link: bool,
    #[serde(default, rename = "inBundle")]
    in_bundle: bool,
}

const EXPECTED_VERSIONS: &str = "2 or 3";

fn check_version(lock: &LockSource<'_>, raw: &RawLock) -> Result<(), LockError> {
    let unsupported = |found: String, hint: &'static str| LockError::UnsupportedVersion {
        lock: lock.display.to_string(),
        format: LockFormat::Npm,
        found,
        expected: EXPECTED_VERSIONS,
        hint,
    };
    match &raw.lockfile_version {
        Some(serde_json::Value::Number(number)) => match number.as_u64() {
            Some(2 | 3) => Ok(()),
            Some(1) => Err(unsupported(
                "1".to_string(),
                "a version 1 lock (npm 6 and older) has no `packages` map with every installed \
                 folder; regenerate it with npm 7 or later: `npm install --lockfile-version 3`",
            )),
            _ => Err(unsupported(
                number.to_string(),
                "npm 7 to 10 write versions 2 and 3: `npm install --lockfile-version 3`",
            )),
        },
        Some(other) => Err(LockError::Invalid {
            lock: lock.display.to_string(),
            line: key_offset(lock.text, 0, "lockfileVersion").map_or(1, |at| lock.line_of(at)),
            message: format!("expected `lockfileVersion` to be a number (2 or 3), found {other}"),
        }),
        None => Err(LockError::Invalid {
            lock: lock.display.to_string(),
            line: 1,
            message: "expected a `lockfileVersion` (2 or 3), found none: is this a \
                      package-lock.json written by npm 7 or later?"
                .to_string(),
        }),
    }
}

/// The folder name a `packages` key installs (`node_modules/@scope/name` is `@scope/name`);
/// `None` for the root and workspace folders, which are the project's own source.
fn installed_name(path: &str) -> Option<&str> {
    let (_, name) = path.rsplit_once("node_modules/")?;
    (!name.is_empty()).then_some(name)
}

/// The file one entry pins, or `None` for an entry npm installs without a download of its own.
fn locked_file(
    lock: &LockSource<'_>,
    line: usize,
    path: &str,
    folder_name: &str,
    entry: RawPackage,
) -> Result<Option<LockedFile>, LockError> {
    if entry.link || entry.in_bundle {
        // A symlink to a folder of the project, or a folder inside its parent's tarball.
        return Ok(None);
    }
    let name = entry.name.unwrap_or_else(|| folder_name.to_string());
    let package = match &entry.version {
        Some(version) => format!("{name} {version}"),
        None => name.clone(),
    };
    let Some(resolved) = entry.resolved else {
        return Err(LockError::NoDigest {
            lock: lock.display.to_string(),
            line,
            package,
            what: format!("`{path}` has no `resolved` URL and no `integrity`"),
            hint: "npm 7 and later write both for every registry package; regenerate the lock \
                   with `npm install --package-lock-only`"
                .to_string(),
        });
    };
    if resolved.starts_with("file:") {
        // A tarball or folder inside the project: part of the source, not a download.
        return Ok(None);
    }
    let unsupported = |message: String| LockError::Unsupported {
        lock: lock.display.to_string(),
        line,
        package: package.clone(),
        message,
    };
    if is_git(&resolved) {
        return Err(unsupported(format!(
            "`resolved` is a git repository ({resolved}), which no digest in the lock pins; \
             sealroom fetches registry tarballs: depend on a published version, or vendor the \
             package into the source and depend on it with `file:`"
        )));
    }
    if !(resolved.starts_with("https://") || resolved.starts_with("http://")) {
        return Err(unsupported(format!(
            "expected `resolved` to be an http(s) tarball URL (or `file:`), found `{resolved}`"
        )));
    }
    let invalid = |message: String| LockError::Invalid {
        lock: lock.display.to_string(),
        line,
        message: format!("{package}: {message}"),
    };
    let Some(version) = entry.version else {
        return Err(invalid(format!(
            "expected a `version` next to `resolved` {resolved}, found none"
        )));
    };
    let Some(integrity) = entry.integrity else {
        return Err(LockError::NoDigest {
            lock: lock.display.to_string(),
            line,
            package,
            what: format!("`resolved` {resolved} without `integrity`"),
            hint: "npm writes `integrity` for every registry tarball; a lock edited by hand or \
                   by an old tool can lack it: run `npm install --package-lock-only` to fill it in"
                .to_string(),
        });
    };
    let digest = strongest_digest(&integrity).map_err(|problem| match problem {
        IntegrityProblem::Malformed(message) => invalid(message),
        IntegrityProblem::Unsupported(message) => unsupported(message),
    })?;
    let Some(file_name) = url_file_name(&resolved) else {
        return Err(invalid(format!(
            "expected `resolved` to name a tarball, found `{resolved}` (no file name)"
        )));
    };
    let purl_name = match name.split_once('/') {
        Some((scope, bare)) => format!("{}/{}", purl_escape(scope), purl_escape(bare)),
        None => purl_escape(&name),
    };
    Ok(Some(LockedFile {
        purl: format!("pkg:npm/{purl_name}@{}", purl_escape(&version)),
        package,
        url: resolved,
        file_name,
        digest,
        line,
        kind: FileKind::NpmTarball { name, version },
    }))
}

/// A `resolved` that npm clones instead of downloading.
fn is_git(resolved: &str) -> bool {
    const PREFIXES: [&str; 7] = [
        "git+",
        "git://",
        "git@",
        "github:",
        "gitlab:",
        "bitbucket:",
        "gist:",
    ];
    let without_fragment = resolved.split('#').next().unwrap_or(resolved);
    PREFIXES.iter().any(|prefix| resolved.starts_with(prefix)) || without_fragment.ends_with(".git")
}

enum IntegrityProblem {
    /// Not SRI at all, or a value that is not the digest its algorithm names.
    Malformed(String),
    /// Well-formed, but pinned by an algorithm sealroom does not verify npm tarballs by.
    Unsupported(String),
}

/// The digest to verify from an SRI `integrity`: space-separated `<algorithm>-<base64>[?opts]`
/// values; sha512 when there is one, else sha1. npm looks a tarball up in its cache under the
/// strongest algorithm listed, so a sha1 next to a sha256 or sha384 is not enough.
fn strongest_digest(integrity: &str) -> Result<LockDigest, IntegrityProblem> {
    let mut sha512 = None;
    let mut sha1 = None;
    let mut other_sha2 = Vec::new();
    for value in integrity.split_whitespace() {
        let Some((algorithm, rest)) = value.split_once('-') else {
            return Err(IntegrityProblem::Malformed(format!(
                "expected `integrity` values of the form `<algorithm>-<base64>`, found `{value}`"
            )));
        };
        let encoded = rest.split('?').next().unwrap_or(rest);
        let decode = |length: usize| {
            base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .ok()
                .filter(|bytes| bytes.len() == length)
                .ok_or_else(|| {
                    IntegrityProblem::Malformed(format!(
                        "expected `{algorithm}-` to be followed by the base64 of {length} bytes, \
                         found `{encoded}`"
                    ))
                })
        };
        match algorithm {
            "sha512" if sha512.is_none() => {
                let bytes: [u8; 64] = decode(64)?.try_into().expect("64 bytes");
                sha512 = Some(LockDigest::Sha512(Box::new(bytes)));
            }
            "sha1" if sha1.is_none() => {
                let bytes: [u8; 20] = decode(20)?.try_into().expect("20 bytes");
                sha1 = Some(LockDigest::Sha1(bytes));
            }
            "sha256" | "sha384" => other_sha2.push(algorithm),
            // SRI: a later sha512/sha1 value is another accepted digest; the first is checked.
            // Unknown algorithms are ignored, as browsers and ssri do.
            _ => {}
        }
    }
    if let Some(digest) = sha512 {
        return Ok(digest);
    }
    match (sha1, other_sha2.first()) {
        (Some(digest), None) => Ok(digest),
        (Some(_), Some(stronger)) => Err(IntegrityProblem::Unsupported(format!(
            "`integrity` lists {stronger} next to sha1; npm would look the tarball up by \
             {stronger}, which sealroom does not verify npm tarballs by (it checks sha512 or \
             sha1): regenerate the lock so that it pins sha512"
        ))),
        (None, Some(_)) => Err(IntegrityProblem::Unsupported(format!(
            "`integrity` pins the tarball by {} only; sealroom verifies npm tarballs by sha512 \
             (or sha1 for old entries): regenerate the lock with npm 7 or later, which writes \
             sha512",
            other_sha2.join(" and ")
        ))),
        (None, None) => Err(IntegrityProblem::Malformed(format!(
            "expected `integrity` to hold `sha512-<base64>` (or `sha1-<base64>`), found \
             `{integrity}`"
        ))),
    }
}

/// The byte offset of `"key":` at or after `from` (serde_json keeps no positions).
fn key_offset(text: &str, from: usize, key: &str) -> Option<usize> {
    let needle = format!("\"{key}\"");
    let mut start = from;
    while let Some(found) = text.get(start..)?.find(&needle) {
        let at = start + found;
        let after = at + needle.len();
        if text[after..].trim_start().starts_with(':') {
            return Some(at);
        }
        start = after;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const V3: &str = include_str!("../../tests/fixtures/locks/npm/app-v3/package-lock.json");
    const V2: &str = include_str!("../../tests/fixtures/locks/npm/app-v2/package-lock.json");
    const V1: &str = include_str!("../../tests/fixtures/locks/npm/app-v1/package-lock.json");
    const TINY_SHA512: &str = "af533c1aff30d142ddbb345a285b9cf2f833a46dc6c4428599c875f885c1353829bcb9b4709fe7c40bc0d0fe17954f29621cb06fc230aa6fb330e3f2d5d7d6c8";
    const GREETING_SHA512: &str = "ffb4e747628073175efcdabbefda491f34c9313c5e43138bb9ae8d17cbf94b17d35857abe46a998ca4eb2a5bb4df11dbd9ac8e090ad9ff9e40830fd0dafb19c3";
    const TINY_SRI: &str = "sha512-r1M8Gv8w0ULduzRaKFuc8vgzpG3GxEKFmch1+IXBNTgpvLm0cJ/nxAvA0P4XlU8pYhywb8Iwqm+zMOPy1dfWyA==";
    const TINY_SHA1_SRI: &str = "sha1-lpBHj7efHB0DNdofxKIMZx089lc=";
    const TINY_SHA1: &str = "9690478fb79f1c1d0335da1fc4a20c671d3cf657";
    const ORIGIN: &str = "https://npm-registry.internal.example";

    fn source<'a>(text: &'a str) -> LockSource<'a> {
        LockSource {
            display: "app/package-lock.json",
            text,
        }
    }

    /// A version 3 lock with the root and `entries` (the text inside `packages` after it).
    fn lock_with(entries: &str) -> String {
        format!(
            "{{\n  \"name\": \"app\",\n  \"lockfileVersion\": 3,\n  \"requires\": true,\n  \"packages\": {{\n    \"\": {{\n      \"name\": \"app\"\n    }},\n{entries}\n  }}\n}}\n"
        )
    }

    fn tiny_entry(path: &str, extra: &str) -> String {
        format!(
            "    \"{path}\": {{\n      \"version\": \"1.0.0\",\n      \"resolved\": \"{ORIGIN}/sealroom-fixtures-tiny/-/sealroom-fixtures-tiny-1.0.0.tgz\"{extra}\n    }}"
        )
    }

    /// The 1-based line of the first line of `text` containing `needle`.
    fn line_containing(text: &str, needle: &str) -> usize {
        text.lines()
            .position(|line| line.contains(needle))
            .expect("the needle is in the text")
            + 1
    }

    fn parse_err(text: &str) -> LockError {
        parse(&source(text)).expect_err("the lock is refused")
    }

    fn check_fixture(text: &str) {
        let files = parse(&source(text)).expect("npm's own lock parses");
        assert_eq!(files.len(), 2, "{files:#?}");
        let (greeting, tiny) = (&files[0], &files[1]);

        assert_eq!(greeting.purl, "pkg:npm/%40sealroom-fixtures/greeting@1.0.0");
        assert_eq!(greeting.package, "@sealroom-fixtures/greeting 1.0.0");
        assert_eq!(
            greeting.url,
            format!("{ORIGIN}/@sealroom-fixtures/greeting/-/greeting-1.0.0.tgz")
        );
        assert_eq!(greeting.file_name, "greeting-1.0.0.tgz");
        assert_eq!(hex::encode(greeting.digest.bytes()), GREETING_SHA512);
        assert_eq!(greeting.digest.algorithm(), "sha512");
        assert_eq!(
            greeting.line,
            line_containing(text, "\"node_modules/@sealroom-fixtures/greeting\": {")
        );
        assert_eq!(
            greeting.kind,
            FileKind::NpmTarball {
                name: "@sealroom-fixtures/greeting".to_string(),
                version: "1.0.0".to_string()
            }
        );

        assert_eq!(tiny.purl, "pkg:npm/sealroom-fixtures-tiny@1.0.0");
        assert_eq!(tiny.package, "sealroom-fixtures-tiny 1.0.0");
        assert_eq!(tiny.file_name, "sealroom-fixtures-tiny-1.0.0.tgz");
        assert_eq!(hex::encode(tiny.digest.bytes()), TINY_SHA512);
        assert_eq!(tiny.digest.lock_form(), TINY_SRI);
        assert_eq!(
            tiny.line,
            line_containing(text, "\"node_modules/sealroom-fixtures-tiny\": {")
        );
    }

    #[test]
    fn reads_the_version_3_lock_npm_wrote() {
        check_fixture(V3);
    }

    #[test]
    fn reads_the_version_2_lock_npm_wrote_from_its_packages_map() {
        assert!(V2.contains("\"lockfileVersion\": 2"));
        check_fixture(V2);
    }

    #[test]
    fn refuses_a_version_1_lock_with_the_command_that_regenerates_it() {
        let error = parse_err(V1);
        assert!(
            matches!(&error, LockError::UnsupportedVersion { found, .. } if found == "1"),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(
            message.starts_with(
                "app/package-lock.json: npm lock version 1 is not supported (expected 2 or 3)"
            ),
            "{message}"
        );
        assert!(
            message.contains("npm 7 or later: `npm install --lockfile-version 3`"),
            "{message}"
        );
    }

    #[test]
    fn refuses_a_version_it_does_not_know() {
        let text = lock_with(&tiny_entry("node_modules/sealroom-fixtures-tiny", ""))
            .replace("\"lockfileVersion\": 3", "\"lockfileVersion\": 4");
        let message = parse_err(&text).to_string();
        assert!(
            message.contains("npm lock version 4 is not supported (expected 2 or 3)"),
            "{message}"
        );
    }

    #[test]
    fn a_lock_without_a_version_or_with_a_text_version_is_invalid() {
        let text = "{\n  \"name\": \"app\",\n  \"packages\": {}\n}\n";
        let message = parse_err(text).to_string();
        assert!(
            message.starts_with("app/package-lock.json:1: expected a `lockfileVersion`"),
            "{message}"
        );

        let text =
            "{\n  \"name\": \"app\",\n  \"lockfileVersion\": \"3\",\n  \"packages\": {}\n}\n";
        let message = parse_err(text).to_string();
        assert!(
            message.starts_with(
                "app/package-lock.json:3: expected `lockfileVersion` to be a number (2 or 3), found \"3\""
            ),
            "{message}"
        );
    }

    #[test]
    fn a_version_3_lock_without_packages_is_invalid() {
        let text =
            "{\n  \"name\": \"app\",\n  \"lockfileVersion\": 3,\n  \"dependencies\": {}\n}\n";
        let message = parse_err(text).to_string();
        assert!(
            message.starts_with("app/package-lock.json:3: expected a `packages` map"),
            "{message}"
        );
    }

    #[test]
    fn broken_json_is_invalid_at_its_line() {
        let text = lock_with(&tiny_entry("node_modules/sealroom-fixtures-tiny", ","));
        let error = parse_err(&text);
        // serde_json finds the trailing comma at the brace that follows it.
        let brace = text.lines().position(|line| line == "    }").unwrap() + 1;
        assert!(
            matches!(&error, LockError::Invalid { line, .. } if *line == brace),
            "{error:?}"
        );
        assert!(
            error
                .to_string()
                .contains("expected a package-lock.json (JSON)"),
            "{error}"
        );
    }

    #[test]
    fn an_entry_of_the_wrong_shape_is_invalid_at_its_key() {
        let entry = "    \"node_modules/odd\": {\n      \"version\": 7\n    }";
        let text = lock_with(entry);
        let message = parse_err(&text).to_string();
        let line = line_containing(&text, "\"node_modules/odd\"");
        assert!(
            message.starts_with(&format!(
                "app/package-lock.json:{line}: `node_modules/odd`: invalid type: integer `7`"
            )),
            "{message}"
        );
    }

    #[test]
    fn a_tarball_without_integrity_has_no_digest() {
        let text = lock_with(&tiny_entry("node_modules/sealroom-fixtures-tiny", ""));
        let error = parse_err(&text);
        let line = line_containing(&text, "\"node_modules/sealroom-fixtures-tiny\"");
        assert!(matches!(&error, LockError::NoDigest { .. }), "{error:?}");
        let message = error.to_string();
        assert!(
            message.starts_with(&format!(
                "app/package-lock.json:{line}: sealroom-fixtures-tiny 1.0.0 has no digest in the lock (`resolved` {ORIGIN}/sealroom-fixtures-tiny/-/sealroom-fixtures-tiny-1.0.0.tgz without `integrity`)"
            )),
            "{message}"
        );
        assert!(
            message.contains("npm install --package-lock-only"),
            "{message}"
        );
    }

    #[test]
    fn an_entry_without_resolved_has_no_digest() {
        let entry = "    \"node_modules/lost\": {\n      \"version\": \"2.0.0\"\n    }";
        let text = lock_with(entry);
        let error = parse_err(&text);
        let line = line_containing(&text, "\"node_modules/lost\"");
        assert!(matches!(&error, LockError::NoDigest { .. }), "{error:?}");
        assert!(
            error.to_string().starts_with(&format!(
                "app/package-lock.json:{line}: lost 2.0.0 has no digest in the lock (`node_modules/lost` has no `resolved` URL and no `integrity`)"
            )),
            "{error}"
        );
    }

    #[test]
    fn a_git_dependency_is_refused_with_a_hint() {
        for resolved in [
            "git+ssh://git@example.org/team/thing.git#0123456789abcdef0123456789abcdef01234567",
            "git+https://example.org/team/thing.git#0123456789abcdef",
            "github:team/thing#0123456789abcdef",
            "https://example.org/team/thing.git#0123456789abcdef",
        ] {
            let entry = format!(
                "    \"node_modules/thing\": {{\n      \"version\": \"1.2.0\",\n      \"resolved\": \"{resolved}\"\n    }}"
            );
            let text = lock_with(&entry);
            let error = parse_err(&text);
            let line = line_containing(&text, "\"node_modules/thing\"");
            assert!(matches!(&error, LockError::Unsupported { .. }), "{error:?}");
            let message = error.to_string();
            assert!(
                message.starts_with(&format!(
                    "app/package-lock.json:{line}: thing 1.2.0: `resolved` is a git repository ({resolved})"
                )),
                "{message}"
            );
            assert!(
                message.contains("depend on a published version"),
                "{message}"
            );
        }
    }

    #[test]
    fn a_resolved_that_is_no_url_is_unsupported() {
        let entry = "    \"node_modules/thing\": {\n      \"version\": \"1.2.0\",\n      \"resolved\": \"ftp://example.org/thing-1.2.0.tgz\",\n      \"integrity\": \"sha1-lpBHj7efHB0DNdofxKIMZx089lc=\"\n    }";
        let message = parse_err(&lock_with(entry)).to_string();
        assert!(
            message.contains(
                "thing 1.2.0: expected `resolved` to be an http(s) tarball URL (or `file:`), found `ftp://example.org/thing-1.2.0.tgz`"
            ),
            "{message}"
        );
    }

    #[test]
    fn links_bundled_packages_file_tarballs_and_workspaces_are_skipped() {
        let entries = [
            // A workspace folder and its link in node_modules.
            "    \"packages/lib\": {\n      \"name\": \"lib\",\n      \"version\": \"0.1.0\"\n    }".to_string(),
            "    \"node_modules/lib\": {\n      \"resolved\": \"packages/lib\",\n      \"link\": true\n    }".to_string(),
            // Inside its parent's tarball: no resolved, no integrity.
            "    \"node_modules/sealroom-fixtures-tiny/node_modules/inner\": {\n      \"version\": \"3.0.0\",\n      \"inBundle\": true\n    }".to_string(),
            // A tarball inside the project.
            "    \"node_modules/local\": {\n      \"version\": \"1.0.0\",\n      \"resolved\": \"file:vendor/local-1.0.0.tgz\",\n      \"integrity\": \"sha512-abc\"\n    }".to_string(),
            tiny_entry(
                "node_modules/sealroom-fixtures-tiny",
                &format!(",\n      \"integrity\": \"{TINY_SRI}\""),
            ),
        ];
        let text = lock_with(&entries.join(",\n"));
        let files = parse(&source(&text)).expect("the lock parses");
        let names: Vec<_> = files.iter().map(|file| file.package.as_str()).collect();
        assert_eq!(names, ["sealroom-fixtures-tiny 1.0.0"]);
    }

    #[test]
    fn an_alias_is_named_by_its_package_not_its_folder() {
        let entry = format!(
            "    \"node_modules/short\": {{\n      \"name\": \"@sealroom-fixtures/greeting\",\n      \"version\": \"1.0.0+build.1\",\n      \"resolved\": \"{ORIGIN}/@sealroom-fixtures/greeting/-/greeting-1.0.0.tgz\",\n      \"integrity\": \"{TINY_SRI}\"\n    }}"
        );
        let files = parse(&source(&lock_with(&entry))).expect("the lock parses");
        assert_eq!(
            files[0].purl,
            "pkg:npm/%40sealroom-fixtures/greeting@1.0.0%2Bbuild.1"
        );
        assert_eq!(
            files[0].package,
            "@sealroom-fixtures/greeting 1.0.0+build.1"
        );
    }

    #[test]
    fn an_old_entry_pinned_by_sha1_alone_is_verified_by_sha1() {
        let text = lock_with(&tiny_entry(
            "node_modules/sealroom-fixtures-tiny",
            &format!(",\n      \"integrity\": \"{TINY_SHA1_SRI}\""),
        ));
        let files = parse(&source(&text)).expect("the lock parses");
        assert_eq!(files[0].digest, LockDigest::Sha1(hex_array(TINY_SHA1)));
    }

    #[test]
    fn sha512_is_preferred_to_sha1_whichever_comes_first() {
        let integrity = format!("{TINY_SHA1_SRI} {TINY_SRI}?opt unknown-xyz");
        let text = lock_with(&tiny_entry(
            "node_modules/sealroom-fixtures-tiny",
            &format!(",\n      \"integrity\": \"{integrity}\""),
        ));
        let files = parse(&source(&text)).expect("the lock parses");
        assert_eq!(hex::encode(files[0].digest.bytes()), TINY_SHA512);
    }

    #[test]
    fn sha256_and_sha384_are_refused_clearly() {
        let sha256 = "sha256-Dk0qmNIklgY5kHKerh3pjL2UWxF+Y42VI5xXunZrdNE=";
        let text = lock_with(&tiny_entry(
            "node_modules/sealroom-fixtures-tiny",
            &format!(",\n      \"integrity\": \"{sha256}\""),
        ));
        let error = parse_err(&text);
        assert!(matches!(&error, LockError::Unsupported { .. }), "{error:?}");
        assert!(
            error.to_string().contains(
                "sealroom-fixtures-tiny 1.0.0: `integrity` pins the tarball by sha256 only"
            ),
            "{error}"
        );

        let text = lock_with(&tiny_entry(
            "node_modules/sealroom-fixtures-tiny",
            &format!(
                ",\n      \"integrity\": \"{TINY_SHA1_SRI} sha384-{}\"",
                "A".repeat(64)
            ),
        ));
        let message = parse_err(&text).to_string();
        assert!(
            message.contains(
                "`integrity` lists sha384 next to sha1; npm would look the tarball up by sha384"
            ),
            "{message}"
        );
    }

    #[test]
    fn an_integrity_that_is_not_sri_is_invalid() {
        for (integrity, expected) in [
            (
                "",
                "expected `integrity` to hold `sha512-<base64>` (or `sha1-<base64>`), found ``",
            ),
            (
                "9690478fb79f1c1d0335da1fc4a20c671d3cf657",
                "expected `integrity` values of the form `<algorithm>-<base64>`, found `9690478fb79f1c1d0335da1fc4a20c671d3cf657`",
            ),
            (
                "sha512-bm90IDY0IGJ5dGVz",
                "expected `sha512-` to be followed by the base64 of 64 bytes, found `bm90IDY0IGJ5dGVz`",
            ),
            (
                "sha1-!!!",
                "expected `sha1-` to be followed by the base64 of 20 bytes, found `!!!`",
            ),
        ] {
            let text = lock_with(&tiny_entry(
                "node_modules/sealroom-fixtures-tiny",
                &format!(",\n      \"integrity\": \"{integrity}\""),
            ));
            let line = line_containing(&text, "\"node_modules/sealroom-fixtures-tiny\"");
            let error = parse_err(&text);
            assert!(matches!(&error, LockError::Invalid { .. }), "{error:?}");
            assert_eq!(
                error.to_string(),
                format!("app/package-lock.json:{line}: sealroom-fixtures-tiny 1.0.0: {expected}")
            );
        }
    }

    #[test]
    fn the_same_tarball_under_two_paths_is_one_file() {
        let integrity = format!(",\n      \"integrity\": \"{TINY_SRI}\"");
        let entries = [
            tiny_entry("node_modules/sealroom-fixtures-tiny", &integrity),
            tiny_entry(
                "node_modules/@sealroom-fixtures/greeting/node_modules/sealroom-fixtures-tiny",
                &integrity,
            ),
            // The same URL pinned by another digest is another file (and will not verify).
            tiny_entry(
                "node_modules/other/node_modules/sealroom-fixtures-tiny",
                &format!(",\n      \"integrity\": \"{TINY_SHA1_SRI}\""),
            ),
        ];
        let text = lock_with(&entries.join(",\n"));
        let files = parse(&source(&text)).expect("the lock parses");
        let lines: Vec<_> = files.iter().map(|file| file.line).collect();
        assert_eq!(
            lines,
            [
                line_containing(&text, "\"node_modules/sealroom-fixtures-tiny\""),
                line_containing(
                    &text,
                    "\"node_modules/other/node_modules/sealroom-fixtures-tiny\""
                ),
            ]
        );
    }

    #[test]
    fn lays_out_each_tarball_once_where_npm_looks_it_up_with_a_readme() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/packages/npm");
        let files = parse(&source(V3)).expect("the lock parses");
        let mut verified: Vec<_> = files
            .iter()
            .map(|file| Verified {
                file,
                path: fixtures.join(&file.file_name),
            })
            .collect();
        verified.push(verified[1].clone());
        let root = tempfile::tempdir().unwrap();
        lay_out(&verified, root.path()).expect("the layout is written");

        for (sha512, file_name) in [
            (TINY_SHA512, "sealroom-fixtures-tiny-1.0.0.tgz"),
            (GREETING_SHA512, "greeting-1.0.0.tgz"),
        ] {
            let content = root.path().join(format!(
                "_cacache/content-v2/sha512/{}/{}/{}",
                &sha512[..2],
                &sha512[2..4],
                &sha512[4..]
            ));
            assert_eq!(
                std::fs::read(&content).expect("the content file is there"),
                std::fs::read(fixtures.join(file_name)).unwrap()
            );
        }
        let readme = std::fs::read_to_string(root.path().join("README.txt")).unwrap();
        assert!(
            readme.contains(
                "npm ci --offline --ignore-scripts --cache /inputs/<name> --logs-dir /tmp/npm-logs"
            ),
            "{readme}"
        );
        assert!(
            readme.contains(&format!(
                "@sealroom-fixtures/greeting@1.0.0  _cacache/content-v2/sha512/ff/b4/{}  (greeting-1.0.0.tgz)",
                &GREETING_SHA512[4..]
            )),
            "{readme}"
        );
        assert_eq!(
            readme.matches("sealroom-fixtures-tiny@1.0.0").count(),
            1,
            "{readme}"
        );
        let content_files = walkdir::WalkDir::new(root.path().join("_cacache"))
            .into_iter()
            .filter(|entry| entry.as_ref().unwrap().file_type().is_file())
            .count();
        assert_eq!(content_files, 2);
    }

    #[test]
    fn a_sha1_tarball_goes_under_sha1() {
        let digest = LockDigest::Sha1(hex_array(TINY_SHA1));
        assert_eq!(
            cache_content_path(&digest).unwrap(),
            Path::new("_cacache/content-v2/sha1/96/90/478fb79f1c1d0335da1fc4a20c671d3cf657")
        );
        assert_eq!(cache_content_path(&LockDigest::GoH1([0; 32])), None);
    }

    #[test]
    fn lay_out_refuses_a_file_that_is_no_npm_tarball() {
        let file = LockedFile {
            purl: "pkg:pypi/six@1.16.0".to_string(),
            package: "six 1.16.0".to_string(),
            url: "https://files.example/six-1.16.0-py2.py3-none-any.whl".to_string(),
            file_name: "six-1.16.0-py2.py3-none-any.whl".to_string(),
            digest: LockDigest::Sha256([0; 32]),
            line: 1,
            kind: FileKind::Python,
        };
        let root = tempfile::tempdir().unwrap();
        let error = lay_out(
            &[Verified {
                file: &file,
                path: root.path().join("absent"),
            }],
            root.path(),
        )
        .expect_err("a wheel is refused");
        assert_eq!(
            error.to_string(),
            "six 1.16.0: cannot lay out six-1.16.0-py2.py3-none-any.whl: expected an npm tarball, found Python"
        );
    }

    fn hex_array<const N: usize>(text: &str) -> [u8; N] {
        hex::decode(text).unwrap().try_into().unwrap()
    }
}
