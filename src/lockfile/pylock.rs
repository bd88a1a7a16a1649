//! `pylock.toml` (PEP 751, `lock-version = "1.x"`): every package's sdist, wheels or archive,
//! each with its URL and hashes, for the flat directory of [`super::pip::lay_out`].
//!
//! A package from a `directory` is part of the source tree and is skipped, as is a file the
//! lock names only by a local `path`; a `vcs` package pins a commit, not a file, and is refused.
//! Markers are not evaluated: every locked file is fetched.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_spanned::Spanned;

use super::pip::{
    plain_file_name, python_file, sha256_hex, sha512_hex, toml_error, url_file_name_decoded,
};
use super::{LockDigest, LockError, LockFormat, LockSource, LockedFile};

#[derive(Deserialize)]
struct RawVersion {
    #[serde(rename = "lock-version")]
    lock_version: Option<toml::Value>,
}

#[derive(Deserialize)]
struct RawLock {
    #[serde(default)]
    packages: Vec<Spanned<RawPackage>>,
}

#[derive(Deserialize)]
struct RawPackage {
    name: String,
    version: Option<String>,
    vcs: Option<Spanned<RawVcs>>,
    directory: Option<toml::Value>,
    archive: Option<Spanned<RawFile>>,
    sdist: Option<Spanned<RawFile>>,
    wheels: Option<Vec<Spanned<RawFile>>>,
}

#[derive(Deserialize)]
struct RawVcs {
    url: Option<String>,
    path: Option<String>,
}

/// `packages.sdist`, an entry of `packages.wheels`, or `packages.archive`.
#[derive(Deserialize)]
struct RawFile {
    name: Option<String>,
    url: Option<String>,
    path: Option<String>,
    hashes: Option<BTreeMap<String, String>>,
}

pub fn parse(lock: &LockSource<'_>) -> Result<Vec<LockedFile>, LockError> {
    let version: RawVersion =
        toml::from_str(lock.text).map_err(|error| toml_error(lock, &error))?;
    let supported = version
        .lock_version
        .as_ref()
        .and_then(toml::Value::as_str)
        .is_some_and(|version| version.split('.').next() == Some("1"));
    if !supported {
        return Err(LockError::UnsupportedVersion {
            lock: lock.display.to_string(),
            format: LockFormat::Pylock,
            found: version
                .lock_version
                .map_or("(none)".to_string(), |found| found.to_string()),
            expected: "\"1.0\" (or another 1.x)",
            hint: "PEP 751 locks say `lock-version = \"1.0\"`; a tool that writes another major version is not read",
        });
    }
    let raw: RawLock = toml::from_str(lock.text).map_err(|error| toml_error(lock, &error))?;
    let mut files = Vec::new();
    for package in &raw.packages {
        files.extend(package_files(lock, package)?);
    }
    Ok(files)
}

fn package_files(
    lock: &LockSource<'_>,
    spanned: &Spanned<RawPackage>,
) -> Result<Vec<LockedFile>, LockError> {
    let package = spanned.get_ref();
    let line = lock.line_of(spanned.span().start);
    let display = match &package.version {
        Some(version) => format!("{} {version}", package.name),
        None => package.name.clone(),
    };
    let kinds = [
        package.vcs.is_some(),
        package.directory.is_some(),
        package.archive.is_some(),
        package.sdist.is_some() || package.wheels.is_some(),
    ];
    match kinds.iter().filter(|&&set| set).count() {
        1 => {}
        0 => {
            return Err(LockError::Invalid {
                lock: lock.display.to_string(),
                line,
                message: format!(
                    "{display}: no file to install (expected `sdist`, `wheels`, `archive`, `vcs` or `directory`)"
                ),
            });
        }
        _ => {
            return Err(LockError::Invalid {
                lock: lock.display.to_string(),
                line,
                message: format!(
                    "{display}: `vcs`, `directory`, `archive` and `sdist`/`wheels` exclude each other (PEP 751), found more than one"
                ),
            });
        }
    }
    if package.directory.is_some() {
        return Ok(Vec::new());
    }
    if let Some(vcs) = &package.vcs {
        let repository = vcs
            .get_ref()
            .url
            .as_deref()
            .or(vcs.get_ref().path.as_deref());
        return Err(LockError::Unsupported {
            lock: lock.display.to_string(),
            line: lock.line_of(vcs.span().start),
            package: display,
            message: format!(
                "a vcs package ({}) is not fetched: the lock pins a commit, not a file digest; depend on a released file, or fetch the repository with a fixed-output [[fetch]] step",
                repository.unwrap_or("no url")
            ),
        });
    }
    let entries = package
        .archive
        .iter()
        .map(|archive| ("archive", archive))
        .chain(package.sdist.iter().map(|sdist| ("sdist", sdist)))
        .chain(
            package
                .wheels
                .iter()
                .flatten()
                .map(|wheel| ("wheel", wheel)),
        );
    let mut files = Vec::new();
    for (what, file) in entries {
        let file_line = lock.line_of(file.span().start);
        if let Some(locked) = locked_file(lock, package, &display, what, file.get_ref(), file_line)?
        {
            files.push(locked);
        }
    }
    Ok(files)
}

/// The file to fetch, or `None` for one the lock names only by a local path (part of the
/// project, like a `directory` package).
fn locked_file(
    lock: &LockSource<'_>,
    package: &RawPackage,
    display: &str,
    what: &str,
    file: &RawFile,
    line: usize,
) -> Result<Option<LockedFile>, LockError> {
    let invalid = |message: String| LockError::Invalid {
        lock: lock.display.to_string(),
        line,
        message: format!("{display}: {message}"),
    };
    let Some(url) = &file.url else {
        return match file.path {
            Some(_) => Ok(None),
            None => Err(invalid(format!("the {what} has neither `url` nor `path`"))),
        };
    };
    let hashes = file.hashes.as_ref().filter(|hashes| !hashes.is_empty());
    let Some(hashes) = hashes else {
        return Err(LockError::NoDigest {
            lock: lock.display.to_string(),
            line,
            package: display.to_string(),
            what: format!("the {what} {url} has no `hashes`"),
            hint:
                "PEP 751 requires `hashes` on every file; lock again with a tool that writes them"
                    .to_string(),
        });
    };
    let digest = match (hashes.get("sha256"), hashes.get("sha512")) {
        (Some(hex_digest), _) => {
            sha256_hex(hex_digest)
                .map(LockDigest::Sha256)
                .ok_or_else(|| {
                    invalid(format!(
                        "the {what}'s sha256 `{hex_digest}` is not 64 hex digits"
                    ))
                })?
        }
        (None, Some(hex_digest)) => sha512_hex(hex_digest).ok_or_else(|| {
            invalid(format!(
                "the {what}'s sha512 `{hex_digest}` is not 128 hex digits"
            ))
        })?,
        (None, None) => {
            return Err(LockError::NoDigest {
                lock: lock.display.to_string(),
                line,
                package: display.to_string(),
                what: format!(
                    "the {what} {url} has only {} hashes",
                    hashes.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
                hint:
                    "sealroom verifies sha256 or sha512; lock again with a tool that writes sha256"
                        .to_string(),
            });
        }
    };
    let file_name = match &file.name {
        Some(name) => plain_file_name(name),
        None => url_file_name_decoded(url)
            .ok_or_else(|| "is empty".to_string())
            .and_then(|name| plain_file_name(&name)),
    }
    .map_err(|why| invalid(format!("the {what} {url}: its file name {why}")))?;
    Ok(Some(python_file(
        &package.name,
        package.version.as_deref(),
        url.clone(),
        file_name,
        digest,
        line,
    )))
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::super::pip::tests::{
        INICONFIG_WHEEL, SIX_SDIST, SIX_WHEEL, fixture, package_sha256,
    };
    use super::*;

    fn parse_text(text: &str) -> Result<Vec<LockedFile>, LockError> {
        parse(&LockSource {
            display: "pylock.toml",
            text,
        })
    }

    fn error(text: &str) -> String {
        parse_text(text).unwrap_err().to_string()
    }

    const URL: &str = "https://python-index.internal.example/packages/";

    fn lock_of(package: &str) -> String {
        format!("lock-version = \"1.0\"\ncreated-by = \"test\"\n\n[[packages]]\n{package}")
    }

    #[test]
    fn reads_the_lock_uv_exported() {
        let text = fs::read_to_string(fixture("locks/python/pylock.toml")).unwrap();
        let files = parse_text(&text).unwrap();
        let summary: Vec<_> = files
            .iter()
            .map(|f| (f.purl.as_str(), f.file_name.as_str(), f.line))
            .collect();
        assert_eq!(
            summary,
            [
                ("pkg:pypi/iniconfig@2.0.0", "iniconfig-2.0.0.tar.gz", 11),
                ("pkg:pypi/iniconfig@2.0.0", INICONFIG_WHEEL, 12),
                ("pkg:pypi/six@1.16.0", SIX_SDIST, 18),
                ("pkg:pypi/six@1.16.0", SIX_WHEEL, 19),
            ]
        );
        for file in &files[1..] {
            assert_eq!(
                file.digest,
                LockDigest::Sha256(package_sha256(&file.file_name))
            );
            assert!(file.url.starts_with(URL) && file.url.ends_with(&file.file_name));
        }
        assert_eq!(files[0].package, "iniconfig 2.0.0");
    }

    #[test]
    fn archives_names_sha512_and_local_entries() {
        let sha = hex::encode(package_sha256(SIX_WHEEL));
        let sha512 = "ab".repeat(64);
        let text = format!(
            "lock-version = \"1.1\"\n\n[[packages]]\nname = \"app\"\ndirectory = {{ path = \".\", editable = true }}\n\n\
             [[packages]]\nname = \"Six\"\nversion = \"1.16.0\"\nwheels = [\n  {{ name = \"{SIX_WHEEL}\", url = \"{URL}download?id=1\", hashes = {{ sha256 = \"{sha}\", md5 = \"00\" }} }},\n  {{ path = \"dist/six.whl\", hashes = {{ sha256 = \"{sha}\" }} }},\n]\n\n\
             [[packages]]\nname = \"tool\"\narchive = {{ url = \"{URL}tool-main.zip\", hashes = {{ sha512 = \"{sha512}\" }} }}\n"
        );
        let files = parse_text(&text).unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].file_name, SIX_WHEEL, "from `name`, not the URL");
        assert_eq!(files[0].url, format!("{URL}download?id=1"));
        assert_eq!(files[0].purl, "pkg:pypi/six@1.16.0");
        assert_eq!(files[0].line, 11);
        assert_eq!(
            files[1].purl, "pkg:pypi/tool",
            "an archive's version is optional"
        );
        assert_eq!(files[1].package, "tool");
        assert_eq!(files[1].file_name, "tool-main.zip");
        assert_eq!(files[1].digest.algorithm(), "sha512");
        assert_eq!(hex::encode(files[1].digest.bytes()), sha512);
    }

    #[test]
    fn another_lock_version_is_unsupported() {
        let message = error("lock-version = \"2.0\"\n");
        assert!(
            message.starts_with("pylock.toml: pylock lock version \"2.0\" is not supported"),
            "{message}"
        );
        let message = error("[[packages]]\nname = \"x\"\n");
        assert!(
            message.contains("version (none) is not supported"),
            "{message}"
        );
    }

    #[test]
    fn a_vcs_package_is_unsupported_with_a_hint() {
        let message = error(&lock_of(
            "name = \"x\"\nvcs = { type = \"git\", url = \"https://git.internal.example/x.git\", commit-id = \"0123abc\" }\n",
        ));
        assert!(
            message.starts_with("pylock.toml:6: x: a vcs package (https://git.internal.example/x.git) is not fetched"),
            "{message}"
        );
    }

    #[test]
    fn a_file_without_hashes_is_no_digest() {
        let err = parse_text(&lock_of(&format!(
            "name = \"six\"\nversion = \"1.16.0\"\nsdist = {{ url = \"{URL}{SIX_SDIST}\" }}\n"
        )))
        .unwrap_err();
        assert!(
            matches!(&err, LockError::NoDigest { line: 7, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("the sdist"), "{err}");
        let message = error(&lock_of(&format!(
            "name = \"six\"\nversion = \"1.16.0\"\nsdist = {{ url = \"{URL}{SIX_SDIST}\", hashes = {{ md5 = \"00\" }} }}\n"
        )));
        assert!(message.contains("has only md5 hashes"), "{message}");
    }

    #[test]
    fn bad_entries_are_invalid() {
        let sha = hex::encode(package_sha256(SIX_WHEEL));
        let both = error(&lock_of(&format!(
            "name = \"six\"\nversion = \"1.16.0\"\ndirectory = {{ path = \".\" }}\nsdist = {{ url = \"{URL}{SIX_SDIST}\", hashes = {{ sha256 = \"{sha}\" }} }}\n"
        )));
        assert!(both.starts_with("pylock.toml:4: six 1.16.0: `vcs`, `directory`, `archive` and `sdist`/`wheels` exclude each other"), "{both}");
        let none = error(&lock_of("name = \"six\"\nversion = \"1.16.0\"\n"));
        assert!(none.contains("no file to install"), "{none}");
        let short = error(&lock_of(&format!(
            "name = \"six\"\nversion = \"1.16.0\"\nsdist = {{ url = \"{URL}{SIX_SDIST}\", hashes = {{ sha256 = \"abc\" }} }}\n"
        )));
        assert!(
            short.starts_with(
                "pylock.toml:7: six 1.16.0: the sdist's sha256 `abc` is not 64 hex digits"
            ),
            "{short}"
        );
        let slash = error(&lock_of(&format!(
            "name = \"six\"\nversion = \"1.16.0\"\nwheels = [{{ name = \"../six.whl\", url = \"{URL}{SIX_WHEEL}\", hashes = {{ sha256 = \"{sha}\" }} }}]\n"
        )));
        assert!(slash.contains("is not a plain file name"), "{slash}");
        let nowhere = error(&lock_of(&format!(
            "name = \"six\"\nversion = \"1.16.0\"\nwheels = [{{ hashes = {{ sha256 = \"{sha}\" }} }}]\n"
        )));
        assert!(nowhere.contains("neither `url` nor `path`"), "{nowhere}");
        let syntax = error("lock-version = \"1.0\"\n[[packages]]\nname = \n");
        assert!(syntax.starts_with("pylock.toml:3: "), "{syntax}");
    }
}
