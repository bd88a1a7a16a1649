//! `uv.lock` (version 1, any revision): every sdist and wheel of every package, each with its
//! URL and hash, for the flat directory of [`super::pip::lay_out`].
//!
//! The project's own packages (`virtual`, `editable`, `directory`, `path` sources) are part of
//! the source tree, not downloads, and are skipped; a git source pins a commit, not a file, and
//! is refused. Markers and the dependency graph are not read: every locked file is fetched.

use serde::Deserialize;
use serde_spanned::Spanned;

use super::pip::{
    plain_file_name, python_file, sha256_hex, sha512_hex, toml_error, url_file_name_decoded,
};
use super::{LockDigest, LockError, LockFormat, LockSource, LockedFile};

#[derive(Deserialize)]
struct RawVersion {
    version: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
struct RawLock {
    #[serde(default)]
    package: Vec<Spanned<RawPackage>>,
}

#[derive(Deserialize)]
struct RawPackage {
    name: String,
    version: Option<String>,
    source: Option<Spanned<RawSource>>,
    sdist: Option<Spanned<RawFile>>,
    #[serde(default)]
    wheels: Vec<Spanned<RawFile>>,
}

/// `source = { registry = ... }` and its kin; exactly one key is set.
#[derive(Deserialize)]
struct RawSource {
    registry: Option<String>,
    git: Option<String>,
    url: Option<String>,
    path: Option<String>,
    directory: Option<String>,
    editable: Option<String>,
    #[serde(rename = "virtual")]
    virtual_: Option<String>,
}

/// `{ url = ..., hash = "sha256:...", size = ... }` (or `path` for a file on disk).
#[derive(Deserialize)]
struct RawFile {
    url: Option<String>,
    path: Option<String>,
    hash: Option<String>,
}

pub fn parse(lock: &LockSource<'_>) -> Result<Vec<LockedFile>, LockError> {
    let version: RawVersion =
        toml::from_str(lock.text).map_err(|error| toml_error(lock, &error))?;
    match version.version {
        Some(version) if version.get_ref().as_integer() == Some(1) => {}
        found => {
            return Err(LockError::UnsupportedVersion {
                lock: lock.display.to_string(),
                format: LockFormat::Uv,
                found: found.map_or("(none)".to_string(), |v| v.get_ref().to_string()),
                expected: "1",
                hint: "the uv.lock format sealroom reads is version 1 (uv 0.4 and later); lock again with such a uv",
            });
        }
    }
    let raw: RawLock = toml::from_str(lock.text).map_err(|error| toml_error(lock, &error))?;
    let mut files = Vec::new();
    for package in &raw.package {
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
    let Some(source) = &package.source else {
        return Err(LockError::Invalid {
            lock: lock.display.to_string(),
            line,
            message: format!(
                "{display}: no `source` (expected `source = {{ registry = ... }}` or another kind)"
            ),
        });
    };
    let source_line = lock.line_of(source.span().start);
    let source = source.get_ref();
    if source.virtual_.is_some()
        || source.editable.is_some()
        || source.directory.is_some()
        || source.path.is_some()
    {
        return Ok(Vec::new());
    }
    if let Some(git) = &source.git {
        return Err(LockError::Unsupported {
            lock: lock.display.to_string(),
            line: source_line,
            package: display,
            message: format!(
                "a git source ({git}) is not fetched: the lock pins a commit, not a file digest; depend on a released version from an index, or fetch the repository with a fixed-output [[fetch]] step"
            ),
        });
    }
    let direct_url = match (&source.registry, &source.url) {
        (Some(_), None) => None,
        (None, Some(url)) => Some(url.as_str()),
        _ => {
            return Err(LockError::Invalid {
                lock: lock.display.to_string(),
                line: source_line,
                message: format!(
                    "{display}: expected a source with one of `registry`, `url`, `git`, `path`, `directory`, `editable`, `virtual`"
                ),
            });
        }
    };
    if package.sdist.is_none() && package.wheels.is_empty() {
        return Err(LockError::Invalid {
            lock: lock.display.to_string(),
            line,
            message: format!("{display}: neither an `sdist` nor `wheels`: no file to fetch"),
        });
    }
    let entries = package
        .sdist
        .iter()
        .map(|sdist| ("sdist", sdist))
        .chain(package.wheels.iter().map(|wheel| ("wheel", wheel)));
    entries
        .map(|(what, file)| {
            let file_line = lock.line_of(file.span().start);
            locked_file(
                lock,
                package,
                &display,
                what,
                file.get_ref(),
                direct_url,
                file_line,
            )
        })
        .collect()
}

fn locked_file(
    lock: &LockSource<'_>,
    package: &RawPackage,
    display: &str,
    what: &str,
    file: &RawFile,
    direct_url: Option<&str>,
    line: usize,
) -> Result<LockedFile, LockError> {
    let invalid = |message: String| LockError::Invalid {
        lock: lock.display.to_string(),
        line,
        message: format!("{display}: {message}"),
    };
    let Some(url) = file.url.as_deref().or(direct_url) else {
        return Err(match &file.path {
            Some(path) => LockError::Unsupported {
                lock: lock.display.to_string(),
                line,
                package: display.to_string(),
                message: format!(
                    "the {what} is a file on this machine (`path = \"{path}\"`, from a local index), not a download; serve that directory as an index, or ship the file in a [[source]]"
                ),
            },
            None => invalid(format!("the {what} has no `url`")),
        });
    };
    let Some(hash) = &file.hash else {
        return Err(LockError::NoDigest {
            lock: lock.display.to_string(),
            line,
            package: display.to_string(),
            what: format!("the {what} {url} has no `hash`"),
            hint: "lock again with uv, which writes `hash = \"sha256:...\"` for every file of an index".to_string(),
        });
    };
    let digest = parse_hash(hash).ok_or_else(|| {
        invalid(format!(
            "the {what}'s hash `{hash}` is not `sha256:<64 hex digits>` (nor `sha512:<128 hex digits>`)"
        ))
    })?;
    let file_name = url_file_name_decoded(url)
        .ok_or_else(|| "is empty".to_string())
        .and_then(|name| plain_file_name(&name))
        .map_err(|why| invalid(format!("the {what} URL {url}: its file name {why}")))?;
    Ok(python_file(
        &package.name,
        package.version.as_deref(),
        url.to_string(),
        file_name,
        digest,
        line,
    ))
}

/// `sha256:<hex>` (what uv writes for an index's files) or `sha512:<hex>`.
fn parse_hash(hash: &str) -> Option<LockDigest> {
    let (algorithm, hex_digest) = hash.split_once(':')?;
    match algorithm {
        "sha256" => sha256_hex(hex_digest).map(LockDigest::Sha256),
        "sha512" => sha512_hex(hex_digest),
        _ => None,
    }
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
            display: "uv.lock",
            text,
        })
    }

    fn error(text: &str) -> String {
        parse_text(text).unwrap_err().to_string()
    }

    const SIX: &str =
        "https://python-index.internal.example/packages/six-1.16.0-py2.py3-none-any.whl";

    fn lock_of(package: &str) -> String {
        format!("version = 1\nrevision = 2\nrequires-python = \">=3.8\"\n\n[[package]]\n{package}")
    }

    #[test]
    fn reads_the_lock_uv_wrote() {
        let text = fs::read_to_string(fixture("locks/python/uv.lock")).unwrap();
        let files = parse_text(&text).unwrap();
        let summary: Vec<_> = files
            .iter()
            .map(|f| (f.purl.as_str(), f.file_name.as_str(), f.line))
            .collect();
        assert_eq!(
            summary,
            [
                ("pkg:pypi/iniconfig@2.0.0", "iniconfig-2.0.0.tar.gz", 9),
                ("pkg:pypi/iniconfig@2.0.0", INICONFIG_WHEEL, 11),
                ("pkg:pypi/six@1.16.0", SIX_SDIST, 33),
                ("pkg:pypi/six@1.16.0", SIX_WHEEL, 35),
            ],
            "the virtual project itself is skipped"
        );
        for file in &files[1..] {
            assert_eq!(
                file.digest,
                LockDigest::Sha256(package_sha256(&file.file_name))
            );
            assert!(
                file.url
                    .starts_with("https://python-index.internal.example/packages/")
            );
            assert!(file.url.ends_with(&file.file_name));
        }
        assert_eq!(files[3].package, "six 1.16.0");
        assert_eq!(files[3].kind, super::super::FileKind::Python);
    }

    #[test]
    fn local_sources_are_skipped_and_url_sources_fetched() {
        let sha = hex::encode(package_sha256(SIX_WHEEL));
        let text = format!(
            "version = 1\n\n[[package]]\nname = \"app\"\nversion = \"0.1.0\"\nsource = {{ editable = \".\" }}\n\n\
             [[package]]\nname = \"lib\"\nversion = \"0.1.0\"\nsource = {{ directory = \"lib\" }}\n\n\
             [[package]]\nname = \"local\"\nversion = \"1.0\"\nsource = {{ path = \"dist/local-1.0.tar.gz\" }}\nsdist = {{ hash = \"sha256:{sha}\" }}\n\n\
             [[package]]\nname = \"Six\"\nversion = \"1.16.0\"\nsource = {{ url = \"{SIX}\" }}\nwheels = [{{ hash = \"sha256:{sha}\" }}]\n"
        );
        let files = parse_text(&text).unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].url, SIX);
        assert_eq!(files[0].file_name, SIX_WHEEL);
        assert_eq!(files[0].purl, "pkg:pypi/six@1.16.0");
        assert_eq!(files[0].line, 23);
    }

    #[test]
    fn another_lock_version_is_unsupported() {
        let message = error("version = 2\n");
        assert!(
            message.starts_with("uv.lock: uv lock version 2 is not supported (expected 1)"),
            "{message}"
        );
        let message = error("[[package]]\nname = \"x\"\n");
        assert!(
            message.contains("version (none) is not supported"),
            "{message}"
        );
    }

    #[test]
    fn a_git_source_is_unsupported_with_a_hint() {
        let message = error(&lock_of(
            "name = \"x\"\nversion = \"1.0\"\nsource = { git = \"https://git.internal.example/x?rev=main#0123abc\" }\n",
        ));
        assert!(
            message.starts_with("uv.lock:8: x 1.0: a git source (https://git.internal.example/x?rev=main#0123abc) is not fetched"),
            "{message}"
        );
        assert!(message.contains("fixed-output [[fetch]]"), "{message}");
    }

    #[test]
    fn a_file_without_a_hash_is_no_digest() {
        let err = parse_text(&lock_of(&format!(
            "name = \"six\"\nversion = \"1.16.0\"\nsource = {{ registry = \"https://python-index.internal.example/simple\" }}\nwheels = [\n    {{ url = \"{SIX}\", size = 11053 }},\n]\n"
        )))
        .unwrap_err();
        assert!(
            matches!(&err, LockError::NoDigest { line: 10, .. }),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(
            message.starts_with(&format!(
                "uv.lock:10: six 1.16.0 has no digest in the lock (the wheel {SIX} has no `hash`)"
            )),
            "{message}"
        );
    }

    #[test]
    fn bad_hashes_names_and_sources_are_invalid() {
        let registry = "source = { registry = \"https://python-index.internal.example/simple\" }";
        let md5 = error(&lock_of(&format!(
            "name = \"six\"\nversion = \"1.16.0\"\n{registry}\nsdist = {{ url = \"{SIX}\", hash = \"md5:00\" }}\n"
        )));
        assert!(
            md5.starts_with("uv.lock:9: six 1.16.0: the sdist's hash `md5:00` is not `sha256:"),
            "{md5}"
        );
        let short = error(&lock_of(&format!(
            "name = \"six\"\nversion = \"1.16.0\"\n{registry}\nsdist = {{ url = \"{SIX}\", hash = \"sha256:abcd\" }}\n"
        )));
        assert!(short.contains("is not `sha256:<64 hex digits>`"), "{short}");
        let sha = hex::encode(package_sha256(SIX_WHEEL));
        let no_name = error(&lock_of(&format!(
            "name = \"six\"\nversion = \"1.16.0\"\n{registry}\nsdist = {{ url = \"https://python-index.internal.example/\", hash = \"sha256:{sha}\" }}\n"
        )));
        assert!(no_name.contains("its file name is empty"), "{no_name}");
        let dots = error(&lock_of(&format!(
            "name = \"six\"\nversion = \"1.16.0\"\n{registry}\nsdist = {{ url = \"https://python-index.internal.example/a/%2E%2E\", hash = \"sha256:{sha}\" }}\n"
        )));
        assert!(dots.contains("`..` is not a file name"), "{dots}");
        let no_files = error(&lock_of(&format!(
            "name = \"six\"\nversion = \"1.16.0\"\n{registry}\n"
        )));
        assert!(
            no_files.starts_with("uv.lock:5: six 1.16.0: neither an `sdist` nor `wheels`"),
            "{no_files}"
        );
        let no_source = error(&lock_of("name = \"six\"\nversion = \"1.16.0\"\n"));
        assert!(
            no_source.starts_with("uv.lock:5: six 1.16.0: no `source`"),
            "{no_source}"
        );
        let local_index = error(&lock_of(&format!(
            "name = \"six\"\nversion = \"1.16.0\"\nsource = {{ registry = \"../wheels\" }}\nwheels = [{{ path = \"six.whl\", hash = \"sha256:{sha}\" }}]\n"
        )));
        assert!(
            local_index.contains("the wheel is a file on this machine"),
            "{local_index}"
        );
        let syntax = error("version = 1\n\n[[package]\n");
        assert!(syntax.starts_with("uv.lock:3: "), "{syntax}");
        let wrong_type = error("version = 1\n[[package]]\nname = 3\n");
        assert!(wrong_type.starts_with("uv.lock:3: "), "{wrong_type}");
    }
}
