//! `Cargo.lock` (v3, v4) and the vendor directory `cargo build --offline` reads through a
//! source replacement.
//!
//! [`parse`] turns the lock's registry packages into [`Crate`]s (path packages need nothing;
//! git packages are refused: a lock pins them by commit, not by a file digest).
//! [`download_url`] finds a `.crate` by the registry's `config.json` as cargo does, and
//! [`lay_out`] writes what `cargo vendor --versioned-dirs` would: each `.crate` unpacked under
//! `vendor/<name>-<version>/` with its `.cargo-checksum.json`, and a `config.toml` replacing
//! every registry source with that directory. Cargo checks the checksums itself when it builds:
//! a file changed after the layout makes the build fail.
//!
//! Nothing here downloads; the fetch stage verifies each `.crate` against its checksum before
//! [`lay_out`] sees it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_spanned::Spanned;

use super::{
    FileKind, LayoutLimits, LockDigest, LockError, LockFormat, LockSource, LockedFile, Verified,
    purl_escape,
};
use crate::digest::{Blob, hash_file};
use crate::fetch::{ArchiveFormat, UnpackOptions, unpack_with};

/// The source id cargo writes into `Cargo.lock` for its default registry (`crates-io`),
/// whichever protocol fetched it. An identity, not an address: nothing is downloaded from it.
pub const CRATES_IO_SOURCE: &str = "registry+https://github.com/rust-lang/crates.io-index";

/// The name of the directory source `config.toml` replaces every registry with.
pub const VENDOR_SOURCE_NAME: &str = "sealroom-vendor";

/// The lock versions [`parse`] reads.
const SUPPORTED_VERSIONS: &str = "3 or 4";

const OLD_LOCK_HINT: &str = "regenerate it with cargo 1.53 or newer (`cargo generate-lockfile`; it may choose newer versions, so review the diff) and commit the new Cargo.lock";

/// A registry package of the lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Crate {
    pub name: String,
    pub version: String,
    /// `registry+<index url>` or `sparse+<index url>`.
    pub source: String,
    /// The sha256 of the `.crate`.
    pub checksum: [u8; 32],
    /// The 1-based line of its `checksum`.
    pub line: usize,
}

impl Crate {
    /// `itoa 1.0.11`, as the errors name it.
    pub fn package(&self) -> String {
        format!("{} {}", self.name, self.version)
    }

    /// `itoa-1.0.11`: the `.crate`'s stem, its top directory and its vendor directory.
    pub fn stem(&self) -> String {
        format!("{}-{}", self.name, self.version)
    }
}

/// `Cargo.lock` as TOML, before it is checked.
#[derive(Deserialize)]
struct RawLock {
    version: Option<Spanned<i64>>,
    #[serde(default)]
    package: Vec<RawPackage>,
    /// Only v1 has it: the checksums, as `"checksum <name> <version> (<source>)" = "<hex>"`.
    metadata: Option<toml::Table>,
}

#[derive(Deserialize)]
struct RawPackage {
    name: Spanned<String>,
    version: Spanned<String>,
    source: Option<Spanned<String>>,
    checksum: Option<Spanned<String>>,
}

/// The registry packages of a v3 or v4 `Cargo.lock`, in the lock's order.
pub fn parse(lock: &LockSource<'_>) -> Result<Vec<Crate>, LockError> {
    let invalid = |offset: usize, message: String| LockError::Invalid {
        lock: lock.display.to_string(),
        line: lock.line_of(offset),
        message,
    };
    let raw: RawLock = toml::from_str(lock.text).map_err(|err| {
        let offset = err.span().map_or(0, |span| span.start);
        invalid(offset, format!("not a Cargo.lock: {}", err.message()))
    })?;

    match &raw.version {
        Some(version) if matches!(*version.get_ref(), 3 | 4) => {}
        Some(version) => {
            return Err(unsupported_version(lock, version.get_ref().to_string()));
        }
        None => {
            let checksums_in_metadata = raw
                .metadata
                .as_ref()
                .is_some_and(|table| table.keys().any(|key| key.starts_with("checksum ")));
            let found = if checksums_in_metadata {
                "1 (no `version` line, checksums in [metadata])"
            } else {
                "2 (no `version` line)"
            };
            return Err(unsupported_version(lock, found.to_string()));
        }
    }

    let mut crates = Vec::new();
    for package in raw.package {
        let name = package.name.get_ref();
        let version = package.version.get_ref();
        if !is_crate_name(name) {
            return Err(invalid(
                package.name.span().start,
                format!(
                    "expected a crate name (ASCII letters, digits, `-` and `_`), found `{name}`"
                ),
            ));
        }
        if !is_crate_version(version) {
            return Err(invalid(
                package.version.span().start,
                format!(
                    "{name}: expected a version (digits, letters, `.`, `-`, `+`), found `{version}`"
                ),
            ));
        }
        let Some(source) = package.source else {
            // A path package: its sources are already in the build's inputs.
            continue;
        };
        let source_text = source.get_ref();
        let package_name = format!("{name} {version}");
        if source_text.starts_with("git+") {
            return Err(LockError::Unsupported {
                lock: lock.display.to_string(),
                line: lock.line_of(source.span().start),
                package: package_name,
                message: format!(
                    "git dependencies are not fetched from a lock (`{source_text}` pins a commit, not a file digest); vendor the repository as a [[source]] and point the dependency at it with `path`, or fetch it with a fixed-output [[fetch]] step"
                ),
            });
        }
        if !(source_text.starts_with("registry+") || source_text.starts_with("sparse+")) {
            return Err(LockError::Unsupported {
                lock: lock.display.to_string(),
                line: lock.line_of(source.span().start),
                package: package_name,
                message: format!(
                    "expected a registry source (`registry+<url>` or `sparse+<url>`), found `{source_text}`"
                ),
            });
        }
        let Some(checksum) = package.checksum else {
            return Err(LockError::NoDigest {
                lock: lock.display.to_string(),
                line: lock.line_of(package.name.span().start),
                package: package_name,
                what: format!("no `checksum` for a package from `{source_text}`"),
                hint: "a registry package without a checksum cannot be verified; regenerate the lock with `cargo generate-lockfile` against a registry whose index has checksums".to_string(),
            });
        };
        let checksum_bytes = parse_sha256_hex(checksum.get_ref()).ok_or_else(|| {
            invalid(
                checksum.span().start,
                format!(
                    "{package_name}: expected `checksum` to be a sha256 of 64 hex digits, found `{}`",
                    checksum.get_ref()
                ),
            )
        })?;
        crates.push(Crate {
            name: name.clone(),
            version: version.clone(),
            source: source_text.clone(),
            checksum: checksum_bytes,
            line: lock.line_of(checksum.span().start),
        });
    }
    Ok(crates)
}

fn unsupported_version(lock: &LockSource<'_>, found: String) -> LockError {
    LockError::UnsupportedVersion {
        lock: lock.display.to_string(),
        format: LockFormat::Cargo,
        found,
        expected: SUPPORTED_VERSIONS,
        hint: OLD_LOCK_HINT,
    }
}

/// Cargo's rule for a package name, and safe as a path component.
fn is_crate_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
}

/// The characters of a semver version (`1.0.0-rc.1+build.5`); safe as a path component.
fn is_crate_version(version: &str) -> bool {
    version.starts_with(|c: char| c.is_ascii_digit())
        && version
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'-' | b'+'))
}

fn parse_sha256_hex(text: &str) -> Option<[u8; 32]> {
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(text, &mut bytes).ok()?;
    Some(bytes)
}

/// The index URL of a `source` (without `registry+`/`sparse+`), ending in `/`.
pub fn index_url(source: &str) -> String {
    let url = source
        .strip_prefix("registry+")
        .or_else(|| source.strip_prefix("sparse+"))
        .unwrap_or(source);
    if url.ends_with('/') {
        url.to_string()
    } else {
        format!("{url}/")
    }
}

/// The markers a `dl` template may hold. Without any of them, cargo appends
/// `/{crate}/{version}/download` (the form of `dl` from before the markers).
const DL_MARKERS: [&str; 5] = [
    "{crate}",
    "{version}",
    "{prefix}",
    "{lowerprefix}",
    "{sha256-checksum}",
];

#[derive(Deserialize)]
struct RegistryConfig {
    dl: String,
}

/// Where the crate is downloaded from, by the index's `config.json` (`dl`, with or without
/// `{crate}`-style markers), exactly as cargo builds the URL (a `dl` ending in `/` without
/// markers gives `//` there too).
pub fn download_url(config_json: &[u8], krate: &Crate) -> Result<String, String> {
    let config: RegistryConfig = serde_json::from_slice(config_json).map_err(|err| {
        format!("expected the registry's config.json to be a JSON object with a `dl` string: {err}")
    })?;
    let dl = config.dl;
    if !DL_MARKERS.iter().any(|marker| dl.contains(marker)) {
        return Ok(format!("{dl}/{}/{}/download", krate.name, krate.version));
    }
    let prefix = dep_prefix(&krate.name);
    Ok(dl
        .replace("{crate}", &krate.name)
        .replace("{version}", &krate.version)
        .replace("{prefix}", &prefix)
        .replace("{lowerprefix}", &prefix.to_lowercase())
        .replace("{sha256-checksum}", &hex::encode(krate.checksum)))
}

/// The directory of a crate in a registry's index: `1`, `2`, `3/<first char>`, or
/// `<first two>/<next two>` (`cargo` is `ca/rg`).
fn dep_prefix(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let take = |range: std::ops::Range<usize>| chars[range].iter().collect::<String>();
    match chars.len() {
        0 => String::new(),
        1 => "1".to_string(),
        2 => "2".to_string(),
        3 => format!("3/{}", chars[0]),
        _ => format!("{}/{}", take(0..2), take(2..4)),
    }
}

/// The file to fetch for a crate, found at `url`.
pub fn locked_file(krate: &Crate, url: String) -> LockedFile {
    LockedFile {
        purl: format!(
            "pkg:cargo/{}@{}",
            purl_escape(&krate.name),
            purl_escape(&krate.version)
        ),
        package: krate.package(),
        url,
        file_name: format!("{}.crate", krate.stem()),
        digest: LockDigest::Sha256(krate.checksum),
        line: krate.line,
        kind: FileKind::Crate {
            name: krate.name.clone(),
            version: krate.version.clone(),
            source: krate.source.clone(),
        },
    }
}

/// `.cargo-checksum.json`, with its keys in the order (and its bytes as) `cargo vendor` writes
/// them.
#[derive(serde::Serialize)]
struct CargoChecksum {
    files: BTreeMap<String, String>,
    package: String,
}

/// Writes into `root` (an empty directory) the vendor directory of the verified `.crate`s and
/// `config.toml`, which names the vendor directory as `<mount>/vendor`. The unpacked crates
/// together stay within `limits`.
pub fn lay_out(
    files: &[Verified<'_>],
    root: &Path,
    mount: &str,
    limits: &LayoutLimits,
) -> Result<(), LockError> {
    let vendor = root.join("vendor");
    fs::create_dir(&vendor).map_err(|err| LockError::io("create", &vendor, err))?;

    let mut used = Usage::default();
    let mut sources = BTreeSet::new();
    let mut laid_out: BTreeMap<String, String> = BTreeMap::new();
    for verified in files {
        let file = verified.file;
        let layout_error = |message: String| LockError::Layout {
            package: file.package.clone(),
            file: file.file_name.clone(),
            message,
        };
        let FileKind::Crate {
            name,
            version,
            source,
        } = &file.kind
        else {
            return Err(layout_error(format!(
                "expected a .crate, found a file of kind {:?}",
                file.kind
            )));
        };
        let LockDigest::Sha256(checksum) = &file.digest else {
            return Err(layout_error(format!(
                "expected the lock to pin a .crate by sha256, found {}",
                file.digest.algorithm()
            )));
        };
        if !is_crate_name(name) || !is_crate_version(version) {
            return Err(layout_error(format!(
                "`{name}-{version}` is not a crate name and version"
            )));
        }
        let stem = format!("{name}-{version}");
        if let Some(other) = laid_out.insert(stem.clone(), source.clone()) {
            return Err(layout_error(format!(
                "{name} {version} is locked from two sources (`{other}` and `{source}`); one vendor directory holds one of them"
            )));
        }
        let crate_dir = vendor.join(&stem);
        let counted =
            unpack_crate(&verified.path, &vendor, &stem, limits, used).map_err(&layout_error)?;
        used.add(counted);
        let files_checksums = vendored_files(&crate_dir).map_err(&layout_error)?;
        let checksum_json = serde_json::to_string(&CargoChecksum {
            files: files_checksums,
            package: hex::encode(checksum),
        })
        .expect("a map of strings serializes");
        let checksum_path = crate_dir.join(".cargo-checksum.json");
        fs::write(&checksum_path, checksum_json)
            .map_err(|err| LockError::io("write", &checksum_path, err))?;
        sources.insert(source.clone());
    }

    let config_path = root.join("config.toml");
    fs::write(&config_path, config_toml(&sources, mount))
        .map_err(|err| LockError::io("write", &config_path, err))
}

/// The bytes and entries the crates unpacked so far hold.
#[derive(Clone, Copy, Debug, Default)]
struct Usage {
    bytes: u64,
    entries: u64,
}

impl Usage {
    fn add(&mut self, other: Usage) {
        self.bytes += other.bytes;
        self.entries += other.entries;
    }
}

/// Unpacks `archive` to `vendor/<stem>/`: the `.crate` must hold exactly the one directory
/// `<stem>/` (as cargo requires). The files cargo vendor leaves out are removed. Returns what
/// the unpacked crate holds.
fn unpack_crate(
    archive: &Path,
    vendor: &Path,
    stem: &str,
    limits: &LayoutLimits,
    used: Usage,
) -> Result<Usage, String> {
    // Unpacked whole into a staging directory first, so that an entry outside `<stem>/` is
    // seen (stripping the first component would merge it in) and nothing of it stays.
    let staging = vendor.join(format!(".unpack-{stem}"));
    let options = UnpackOptions {
        strip_components: 0,
        max_bytes: limits.max_bytes.saturating_sub(used.bytes),
        max_entries: limits.max_entries.saturating_sub(used.entries),
        expected: None,
    };
    let result = unpack_with(archive, ArchiveFormat::TarGz, &options, &staging)
        .map_err(|err| {
            if used.entries == 0 {
                err.to_string()
            } else {
                format!(
                    "{err} (the limits are for all crates together: {} bytes and {} entries, of which the crates before it use {} bytes and {} entries)",
                    limits.max_bytes, limits.max_entries, used.bytes, used.entries
                )
            }
        })
        .and_then(|()| move_single_top_directory(&staging, stem, &vendor.join(stem)));
    if fs::symlink_metadata(&staging).is_ok() {
        fs::remove_dir_all(&staging)
            .map_err(|err| format!("cannot remove {}: {err}", staging.display()))?;
    }
    result?;
    remove_unvendored(&vendor.join(stem))?;
    count(&vendor.join(stem))
}

fn move_single_top_directory(staging: &Path, stem: &str, dest: &Path) -> Result<(), String> {
    let read_error = |err: std::io::Error| format!("cannot read {}: {err}", staging.display());
    let mut top = Vec::new();
    for entry in fs::read_dir(staging).map_err(read_error)? {
        let entry = entry.map_err(read_error)?;
        let is_dir = entry.file_type().map_err(read_error)?.is_dir();
        top.push((entry.file_name().to_string_lossy().into_owned(), is_dir));
    }
    top.sort();
    let expected = format!("expected the .crate to hold only the directory `{stem}/`");
    match top.as_slice() {
        [(name, true)] if name == stem => {}
        [] => return Err(format!("{expected}, found an empty archive")),
        _ => {
            let found = top
                .iter()
                .filter(|(name, is_dir)| name != stem || !is_dir)
                .map(|(name, is_dir)| format!("`{name}{}`", if *is_dir { "/" } else { "" }))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(format!("{expected}, found {found} at its top"));
        }
    }
    fs::rename(staging.join(stem), dest).map_err(|err| {
        format!(
            "cannot move {} to {}: {err}",
            staging.join(stem).display(),
            dest.display()
        )
    })
}

/// Whether `cargo vendor` keeps a file of a crate (cargo's `vendor_this`): not under `.git`,
/// not `.gitattributes` or `.gitignore` (in any directory), not the top `.cargo-ok`.
fn vendored(relative: &Path) -> bool {
    let under_git = relative
        .components()
        .any(|component| component.as_os_str() == ".git");
    let git_file = relative
        .file_name()
        .is_some_and(|name| name == ".gitattributes" || name == ".gitignore");
    !(under_git || git_file || relative == Path::new(".cargo-ok"))
}

fn remove_unvendored(crate_dir: &Path) -> Result<(), String> {
    let mut walk = walkdir::WalkDir::new(crate_dir).min_depth(1).into_iter();
    let mut unwanted: Vec<(PathBuf, bool)> = Vec::new();
    while let Some(entry) = walk.next() {
        let entry = entry.map_err(|err| format!("cannot read {}: {err}", crate_dir.display()))?;
        let relative = entry
            .path()
            .strip_prefix(crate_dir)
            .expect("walked below it");
        if !vendored(relative) {
            let is_dir = entry.file_type().is_dir();
            if is_dir {
                walk.skip_current_dir();
            }
            unwanted.push((entry.path().to_path_buf(), is_dir));
        }
    }
    for (path, is_dir) in unwanted {
        let removed = if is_dir {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        removed.map_err(|err| format!("cannot remove {}: {err}", path.display()))?;
    }
    Ok(())
}

/// The apparent bytes of the files and the entries below `dir`.
fn count(dir: &Path) -> Result<Usage, String> {
    let mut usage = Usage::default();
    for entry in walkdir::WalkDir::new(dir).min_depth(1) {
        let entry = entry.map_err(|err| format!("cannot read {}: {err}", dir.display()))?;
        usage.entries += 1;
        if entry.file_type().is_file() {
            let metadata = entry
                .metadata()
                .map_err(|err| format!("cannot read {}: {err}", entry.path().display()))?;
            usage.bytes += metadata.len();
        }
    }
    Ok(usage)
}

/// The `files` of `.cargo-checksum.json`: the sha256 of every file (and of what every symlink
/// names, as cargo reads it through the link), by its `/`-separated path in the crate.
fn vendored_files(crate_dir: &Path) -> Result<BTreeMap<String, String>, String> {
    let mut files = BTreeMap::new();
    for entry in walkdir::WalkDir::new(crate_dir).min_depth(1) {
        let entry = entry.map_err(|err| format!("cannot read {}: {err}", crate_dir.display()))?;
        if !(entry.file_type().is_file() || entry.file_type().is_symlink()) {
            continue;
        }
        let relative = entry
            .path()
            .strip_prefix(crate_dir)
            .expect("walked below it");
        let key = relative
            .to_str()
            .ok_or_else(|| {
                format!(
                    "the file `{}` has a name that is not UTF-8, which .cargo-checksum.json cannot name",
                    relative.display()
                )
            })?
            .to_string();
        let (digest, _) =
            hash_file::<Blob>(entry.path()).map_err(|err| format!("cannot hash `{key}`: {err}"))?;
        files.insert(key, digest.hex());
    }
    Ok(files)
}

/// `config.toml`: the default registry (`crates-io`) and every other registry of the lock
/// replaced by the vendor directory. `crates-io` is replaced even when the lock has none of its
/// crates, so that an offline build never looks for it.
fn config_toml(sources: &BTreeSet<String>, mount: &str) -> String {
    let mount = mount.trim_end_matches('/');
    let mut out = format!(
        "# The crates of Cargo.lock, vendored by sealroom. Build with:\n#   cargo build --offline --locked --config {mount}/config.toml\n\n[source.crates-io]\nreplace-with = {}\n",
        toml_string(VENDOR_SOURCE_NAME)
    );
    for source in sources.iter().filter(|source| *source != CRATES_IO_SOURCE) {
        // cargo names a registry by its index URL: `https://...` for a git index (the lock
        // says `registry+https://...`), `sparse+https://...` for a sparse one.
        let registry = source.strip_prefix("registry+").unwrap_or(source);
        out.push_str(&format!(
            "\n[source.{}]\nregistry = {}\nreplace-with = {}\n",
            toml_string(registry),
            toml_string(registry),
            toml_string(VENDOR_SOURCE_NAME)
        ));
    }
    out.push_str(&format!(
        "\n[source.{VENDOR_SOURCE_NAME}]\ndirectory = {}\n",
        toml_string(&format!("{mount}/vendor"))
    ));
    out
}

/// A TOML basic string, escaped as TOML needs it.
fn toml_string(value: &str) -> String {
    toml::Value::String(value.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

    fn fixture(path: &str) -> PathBuf {
        Path::new(FIXTURES).join(path)
    }

    fn read_fixture(path: &str) -> String {
        fs::read_to_string(fixture(path)).unwrap()
    }

    fn lock(text: &str) -> LockSource<'_> {
        LockSource {
            display: "app/Cargo.lock",
            text,
        }
    }

    /// The 1-based line of the first line of `text` that contains `needle`.
    fn line_with(text: &str, needle: &str) -> usize {
        text.lines().position(|line| line.contains(needle)).unwrap() + 1
    }

    fn sha256_of(path: &Path) -> [u8; 32] {
        *hash_file::<Blob>(path).unwrap().0.as_bytes()
    }

    const REGISTRY: &str = "registry+https://registry.example/index";

    fn one_package(fields: &str) -> String {
        format!(
            "version = 4\n\n[[package]]\nname = \"app\"\nversion = \"0.1.0\"\n\n[[package]]\n{fields}"
        )
    }

    #[test]
    fn parses_the_registry_crates_of_a_v4_lock_and_skips_path_packages() {
        let text = read_fixture("locks/cargo/app/Cargo.lock");
        let crates = parse(&lock(&text)).unwrap();
        let names: Vec<_> = crates.iter().map(Crate::package).collect();
        assert_eq!(names, ["cfg-if 1.0.0", "itoa 1.0.11"]);
        for krate in &crates {
            assert_eq!(krate.source, CRATES_IO_SOURCE);
            let file = fixture(&format!("packages/crates/{}.crate", krate.stem()));
            assert_eq!(krate.checksum, sha256_of(&file), "{}", krate.package());
            assert_eq!(krate.line, line_with(&text, &hex::encode(krate.checksum)));
        }
    }

    #[test]
    fn a_v3_lock_gives_the_same_crates_as_v4() {
        let v4 = read_fixture("locks/cargo/app/Cargo.lock");
        let v3 = read_fixture("locks/cargo/Cargo.v3.lock");
        assert!(v3.contains("\nversion = 3\n"));
        assert_eq!(parse(&lock(&v3)).unwrap(), parse(&lock(&v4)).unwrap());
    }

    #[test]
    fn a_sparse_registry_crate_is_a_crate() {
        let checksum = "ab".repeat(32);
        let text = one_package(&format!(
            "name = \"tiny\"\nversion = \"1.0.0-rc.1+build.5\"\nsource = \"sparse+https://registry.example/index/\"\nchecksum = \"{checksum}\"\n"
        ));
        let crates = parse(&lock(&text)).unwrap();
        assert_eq!(
            crates,
            [Crate {
                name: "tiny".into(),
                version: "1.0.0-rc.1+build.5".into(),
                source: "sparse+https://registry.example/index/".into(),
                checksum: [0xab; 32],
                line: line_with(&text, "checksum"),
            }]
        );
    }

    #[test]
    fn a_git_package_is_refused_with_a_hint() {
        let text = one_package(
            "name = \"forked\"\nversion = \"0.2.0\"\nsource = \"git+https://git.example/forked?rev=abc#abcdef0123\"\n",
        );
        let err = parse(&lock(&text)).unwrap_err();
        assert!(matches!(err, LockError::Unsupported { .. }), "{err:?}");
        let message = err.to_string();
        let expected_start = format!(
            "app/Cargo.lock:{}: forked 0.2.0: git dependencies",
            line_with(&text, "git+")
        );
        assert!(message.starts_with(&expected_start), "{message}");
        assert!(message.contains("[[source]]"), "{message}");
        assert!(message.contains("fixed-output"), "{message}");
    }

    #[test]
    fn a_source_of_another_kind_is_refused() {
        let text = one_package(
            "name = \"local\"\nversion = \"0.2.0\"\nsource = \"path+file:///somewhere\"\n",
        );
        let message = parse(&lock(&text)).unwrap_err().to_string();
        assert_eq!(
            message,
            format!(
                "app/Cargo.lock:{}: local 0.2.0: expected a registry source (`registry+<url>` or `sparse+<url>`), found `path+file:///somewhere`",
                line_with(&text, "path+")
            )
        );
    }

    #[test]
    fn a_registry_package_without_a_checksum_has_no_digest() {
        let text = one_package(&format!(
            "name = \"itoa\"\nversion = \"1.0.11\"\nsource = \"{REGISTRY}\"\n"
        ));
        let err = parse(&lock(&text)).unwrap_err();
        assert!(matches!(err, LockError::NoDigest { .. }), "{err:?}");
        let message = err.to_string();
        let expected_start = format!(
            "app/Cargo.lock:{}: itoa 1.0.11 has no digest in the lock (no `checksum` for a package from `{REGISTRY}`)",
            line_with(&text, "\"itoa\"")
        );
        assert!(message.starts_with(&expected_start), "{message}");
    }

    #[test]
    fn a_checksum_that_is_not_a_sha256_is_invalid() {
        let text = one_package(&format!(
            "name = \"itoa\"\nversion = \"1.0.11\"\nsource = \"{REGISTRY}\"\nchecksum = \"49f1f148\"\n"
        ));
        let message = parse(&lock(&text)).unwrap_err().to_string();
        assert_eq!(
            message,
            format!(
                "app/Cargo.lock:{}: itoa 1.0.11: expected `checksum` to be a sha256 of 64 hex digits, found `49f1f148`",
                line_with(&text, "checksum")
            )
        );
    }

    #[test]
    fn a_name_or_version_that_could_be_a_path_is_invalid() {
        let text = one_package(&format!(
            "name = \"../../etc\"\nversion = \"1.0.0\"\nsource = \"{REGISTRY}\"\nchecksum = \"{}\"\n",
            "00".repeat(32)
        ));
        let message = parse(&lock(&text)).unwrap_err().to_string();
        assert!(
            message.starts_with(&format!(
                "app/Cargo.lock:{}: expected a crate name",
                line_with(&text, "../")
            )),
            "{message}"
        );
        let text = one_package(&format!(
            "name = \"itoa\"\nversion = \"1.0/../../x\"\nsource = \"{REGISTRY}\"\nchecksum = \"{}\"\n",
            "00".repeat(32)
        ));
        let message = parse(&lock(&text)).unwrap_err().to_string();
        assert!(
            message.starts_with(&format!(
                "app/Cargo.lock:{}: itoa: expected a version",
                line_with(&text, "1.0/")
            )),
            "{message}"
        );
    }

    #[test]
    fn a_v1_lock_is_refused_with_the_hint_to_regenerate() {
        let text = format!(
            "[[package]]\nname = \"itoa\"\nversion = \"1.0.11\"\nsource = \"{REGISTRY}\"\n\n[metadata]\n\"checksum itoa 1.0.11 ({REGISTRY})\" = \"{}\"\n",
            "00".repeat(32)
        );
        let err = parse(&lock(&text)).unwrap_err();
        assert!(
            matches!(err, LockError::UnsupportedVersion { .. }),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "app/Cargo.lock: cargo lock version 1 (no `version` line, checksums in [metadata]) is not supported (expected 3 or 4); {OLD_LOCK_HINT}"
            )
        );
    }

    #[test]
    fn a_v2_lock_is_refused_with_the_hint_to_regenerate() {
        let text = format!(
            "[[package]]\nname = \"itoa\"\nversion = \"1.0.11\"\nsource = \"{REGISTRY}\"\nchecksum = \"{}\"\n",
            "00".repeat(32)
        );
        let message = parse(&lock(&text)).unwrap_err().to_string();
        assert!(
            message.starts_with("app/Cargo.lock: cargo lock version 2 (no `version` line) is not supported (expected 3 or 4); regenerate it with cargo 1.53 or newer"),
            "{message}"
        );
    }

    #[test]
    fn a_newer_lock_version_is_refused() {
        let text = "version = 5\n";
        let message = parse(&lock(text)).unwrap_err().to_string();
        assert!(
            message.starts_with(
                "app/Cargo.lock: cargo lock version 5 is not supported (expected 3 or 4)"
            ),
            "{message}"
        );
    }

    #[test]
    fn a_lock_that_is_not_toml_is_invalid_at_its_line() {
        let text = "version = 4\n\n[[package]]\nname = \"itoa\nversion = \"1.0.11\"\n";
        let err = parse(&lock(text)).unwrap_err();
        let LockError::Invalid { line, message, .. } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(*line, 4, "{err}");
        assert!(message.starts_with("not a Cargo.lock: "), "{err}");
    }

    #[test]
    fn a_package_without_a_version_is_invalid() {
        let text = "version = 4\n\n[[package]]\nname = \"itoa\"\n";
        let err = parse(&lock(text)).unwrap_err();
        let LockError::Invalid { line, message, .. } = &err else {
            panic!("{err:?}");
        };
        assert!(message.contains("version"), "{err}");
        assert!((3..=4).contains(line), "{err}");
    }

    #[test]
    fn the_index_url_has_no_protocol_prefix_and_ends_in_a_slash() {
        assert_eq!(index_url(REGISTRY), "https://registry.example/index/");
        assert_eq!(
            index_url("sparse+http://127.0.0.1:8080/index/"),
            "http://127.0.0.1:8080/index/"
        );
    }

    fn krate(name: &str) -> Crate {
        Crate {
            name: name.to_string(),
            version: "1.0.11".to_string(),
            source: REGISTRY.to_string(),
            checksum: [0x49; 32],
            line: 7,
        }
    }

    fn url_for(dl: &str, name: &str) -> String {
        let config = serde_json::json!({ "dl": dl, "api": "http://127.0.0.1:1" }).to_string();
        download_url(config.as_bytes(), &krate(name)).unwrap()
    }

    #[test]
    fn a_dl_without_markers_gets_crate_version_download_appended() {
        assert_eq!(
            url_for("http://127.0.0.1:8080/api/v1/crates", "itoa"),
            "http://127.0.0.1:8080/api/v1/crates/itoa/1.0.11/download"
        );
        // As cargo does: the path is appended to `dl` as it is.
        assert_eq!(
            url_for("http://127.0.0.1:8080/crates/", "itoa"),
            "http://127.0.0.1:8080/crates//itoa/1.0.11/download"
        );
    }

    #[test]
    fn the_dl_markers_are_replaced_with_cargo_prefixes() {
        let dl = "http://127.0.0.1:8080/{prefix}/{lowerprefix}/{crate}/{crate}-{version}.crate?sum={sha256-checksum}";
        let sum = "49".repeat(32);
        assert_eq!(
            url_for(dl, "a"),
            format!("http://127.0.0.1:8080/1/1/a/a-1.0.11.crate?sum={sum}")
        );
        assert_eq!(
            url_for(dl, "ab"),
            format!("http://127.0.0.1:8080/2/2/ab/ab-1.0.11.crate?sum={sum}")
        );
        assert_eq!(
            url_for(dl, "Abc"),
            format!("http://127.0.0.1:8080/3/A/3/a/Abc/Abc-1.0.11.crate?sum={sum}")
        );
        assert_eq!(
            url_for(dl, "CArgo"),
            format!("http://127.0.0.1:8080/CA/rg/ca/rg/CArgo/CArgo-1.0.11.crate?sum={sum}")
        );
        assert_eq!(
            url_for("http://127.0.0.1:8080/by-sum/{sha256-checksum}", "itoa"),
            format!("http://127.0.0.1:8080/by-sum/{sum}")
        );
    }

    #[test]
    fn a_config_json_without_dl_is_an_error() {
        let err = download_url(br#"{"api": "http://127.0.0.1:1"}"#, &krate("itoa")).unwrap_err();
        assert!(
            err.starts_with(
                "expected the registry's config.json to be a JSON object with a `dl` string: "
            ),
            "{err}"
        );
        let err = download_url(b"<html>", &krate("itoa")).unwrap_err();
        assert!(
            err.starts_with("expected the registry's config.json"),
            "{err}"
        );
    }

    #[test]
    fn the_locked_file_of_a_crate() {
        let file = locked_file(&krate("itoa"), "http://127.0.0.1:1/itoa".to_string());
        assert_eq!(file.purl, "pkg:cargo/itoa@1.0.11");
        assert_eq!(file.package, "itoa 1.0.11");
        assert_eq!(file.url, "http://127.0.0.1:1/itoa");
        assert_eq!(file.file_name, "itoa-1.0.11.crate");
        assert_eq!(file.digest, LockDigest::Sha256([0x49; 32]));
        assert_eq!(file.line, 7);
        assert_eq!(
            file.kind,
            FileKind::Crate {
                name: "itoa".into(),
                version: "1.0.11".into(),
                source: REGISTRY.into(),
            }
        );
        let mut with_build = krate("itoa");
        with_build.version = "1.0.0+build.5".into();
        assert_eq!(
            locked_file(&with_build, String::new()).purl,
            "pkg:cargo/itoa@1.0.0%2Bbuild.5"
        );
    }

    // ---- lay_out ----

    const LIMITS: LayoutLimits = LayoutLimits {
        max_bytes: 1 << 30,
        max_entries: 1 << 20,
    };

    /// The locked files of the fixture crates, as the fetch stage hands them over.
    fn fixture_files(source: &str) -> Vec<(LockedFile, PathBuf)> {
        let text = read_fixture("locks/cargo/app/Cargo.lock");
        parse(&lock(&text))
            .unwrap()
            .into_iter()
            .map(|mut krate| {
                krate.source = source.to_string();
                let path = fixture(&format!("packages/crates/{}.crate", krate.stem()));
                (locked_file(&krate, String::new()), path)
            })
            .collect()
    }

    fn verified(files: &[(LockedFile, PathBuf)]) -> Vec<Verified<'_>> {
        files
            .iter()
            .map(|(file, path)| Verified {
                file,
                path: path.clone(),
            })
            .collect()
    }

    #[test]
    fn the_checksum_files_are_the_ones_cargo_vendor_writes() {
        let root = tempfile::tempdir().unwrap();
        let files = fixture_files(CRATES_IO_SOURCE);
        lay_out(&verified(&files), root.path(), "/inputs/crates", &LIMITS).unwrap();
        for stem in ["itoa-1.0.11", "cfg-if-1.0.0"] {
            let written = fs::read_to_string(
                root.path()
                    .join("vendor")
                    .join(stem)
                    .join(".cargo-checksum.json"),
            )
            .unwrap();
            let by_cargo = read_fixture(&format!(
                "locks/cargo/cargo-vendor/{stem}.cargo-checksum.json"
            ));
            assert_eq!(written, by_cargo, "{stem}");
        }
        let itoa = root.path().join("vendor/itoa-1.0.11");
        assert!(itoa.join("src/lib.rs").is_file());
        assert!(itoa.join("Cargo.toml.orig").is_file());
        // In the .crate, left out by cargo vendor.
        assert!(!itoa.join(".gitignore").exists());
        let entries: BTreeSet<_> = fs::read_dir(root.path().join("vendor"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(
            entries,
            BTreeSet::from(["cfg-if-1.0.0".to_string(), "itoa-1.0.11".to_string()])
        );
    }

    #[test]
    fn the_checksums_are_of_the_unpacked_files() {
        let root = tempfile::tempdir().unwrap();
        let files = fixture_files(CRATES_IO_SOURCE);
        lay_out(&verified(&files), root.path(), "/inputs/crates", &LIMITS).unwrap();
        let itoa = root.path().join("vendor/itoa-1.0.11");
        let json: serde_json::Value =
            serde_json::from_slice(&fs::read(itoa.join(".cargo-checksum.json")).unwrap()).unwrap();
        assert_eq!(
            json["package"],
            hex::encode(sha256_of(&fixture("packages/crates/itoa-1.0.11.crate")))
        );
        let listed = json["files"].as_object().unwrap();
        let on_disk: BTreeSet<String> = walkdir::WalkDir::new(&itoa)
            .into_iter()
            .map(|entry| entry.unwrap())
            .filter(|entry| entry.file_type().is_file())
            .map(|entry| {
                entry
                    .path()
                    .strip_prefix(&itoa)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_string()
            })
            .filter(|path| path != ".cargo-checksum.json")
            .collect();
        assert_eq!(listed.keys().cloned().collect::<BTreeSet<_>>(), on_disk);
        for (path, sum) in listed {
            assert_eq!(sum, &hex::encode(sha256_of(&itoa.join(path))), "{path}");
        }
    }

    #[test]
    fn config_toml_replaces_every_registry_with_the_vendor_directory() {
        let root = tempfile::tempdir().unwrap();
        let mut files = fixture_files(CRATES_IO_SOURCE);
        files.truncate(1);
        files.extend(
            fixture_files("sparse+http://127.0.0.1:8080/index/")
                .into_iter()
                .skip(1),
        );
        lay_out(&verified(&files), root.path(), "/inputs/crates/", &LIMITS).unwrap();
        let text = fs::read_to_string(root.path().join("config.toml")).unwrap();
        assert!(
            text.starts_with("# The crates of Cargo.lock, vendored by sealroom. Build with:\n#   cargo build --offline --locked --config /inputs/crates/config.toml\n"),
            "{text}"
        );
        let config: toml::Table = toml::from_str(&text).unwrap();
        let expected: toml::Table = toml::from_str(
            r#"
            [source.crates-io]
            replace-with = "sealroom-vendor"

            [source."sparse+http://127.0.0.1:8080/index/"]
            registry = "sparse+http://127.0.0.1:8080/index/"
            replace-with = "sealroom-vendor"

            [source.sealroom-vendor]
            directory = "/inputs/crates/vendor"
            "#,
        )
        .unwrap();
        assert_eq!(config, expected);
    }

    #[test]
    fn a_git_index_registry_is_named_by_its_url_without_the_prefix() {
        let sources = BTreeSet::from(["registry+http://127.0.0.1:8080/git-index".to_string()]);
        let config: toml::Table = toml::from_str(&config_toml(&sources, "/inputs/x")).unwrap();
        let source = &config["source"]["http://127.0.0.1:8080/git-index"];
        assert_eq!(
            source["registry"].as_str(),
            Some("http://127.0.0.1:8080/git-index")
        );
        assert_eq!(source["replace-with"].as_str(), Some("sealroom-vendor"));
        assert_eq!(
            config["source"]["sealroom-vendor"]["directory"].as_str(),
            Some("/inputs/x/vendor")
        );
    }

    /// A gzipped tar of `entries` (path, contents), in a temp file.
    fn crate_archive(entries: &[(&str, &[u8])]) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        let encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let mut builder = tar::Builder::new(encoder);
        for (path, contents) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_size(contents.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, path, *contents).unwrap();
        }
        let bytes = builder.into_inner().unwrap().finish().unwrap();
        file.write_all(&bytes).unwrap();
        file
    }

    fn made_crate(name: &str, archive: &tempfile::NamedTempFile) -> (LockedFile, PathBuf) {
        let mut krate = krate(name);
        krate.checksum = sha256_of(archive.path());
        (
            locked_file(&krate, String::new()),
            archive.path().to_path_buf(),
        )
    }

    fn lay_out_error(
        files: &[(LockedFile, PathBuf)],
        limits: &LayoutLimits,
    ) -> (String, tempfile::TempDir) {
        let root = tempfile::tempdir().unwrap();
        let err = lay_out(&verified(files), root.path(), "/inputs/crates", limits).unwrap_err();
        assert!(matches!(err, LockError::Layout { .. }), "{err:?}");
        (err.to_string(), root)
    }

    fn vendor_entries(root: &Path) -> Vec<String> {
        let mut names: Vec<_> = fs::read_dir(root.join("vendor"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_crate_with_a_file_outside_its_directory_is_refused_and_leaves_nothing() {
        let archive = crate_archive(&[
            ("tiny-1.0.11/Cargo.toml", b"[package]\n"),
            ("tiny-1.0.11/src/lib.rs", b""),
            ("other-2.0.0/src/lib.rs", b"evil"),
            ("README", b"x"),
        ]);
        let (message, root) = lay_out_error(&[made_crate("tiny", &archive)], &LIMITS);
        assert_eq!(
            message,
            "tiny 1.0.11: cannot lay out tiny-1.0.11.crate: expected the .crate to hold only the directory `tiny-1.0.11/`, found `README`, `other-2.0.0/` at its top"
        );
        assert!(vendor_entries(root.path()).is_empty());
    }

    #[test]
    fn a_crate_whose_directory_is_misnamed_is_refused() {
        let archive = crate_archive(&[("tiny-9.9.9/src/lib.rs", b"")]);
        let (message, root) = lay_out_error(&[made_crate("tiny", &archive)], &LIMITS);
        assert!(message.ends_with("expected the .crate to hold only the directory `tiny-1.0.11/`, found `tiny-9.9.9/` at its top"), "{message}");
        assert!(vendor_entries(root.path()).is_empty());
        let empty = crate_archive(&[]);
        let (message, _root) = lay_out_error(&[made_crate("tiny", &empty)], &LIMITS);
        assert!(message.ends_with("found an empty archive"), "{message}");
    }

    #[test]
    fn a_crate_with_an_unsafe_path_is_refused_by_the_unpacker() {
        let mut archive = tempfile::NamedTempFile::new().unwrap();
        let encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let mut builder = tar::Builder::new(encoder);
        let mut header = tar::Header::new_gnu();
        header.as_gnu_mut().unwrap().name[..22].copy_from_slice(b"tiny-1.0.11/../escaped");
        header.set_size(1);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append(&header, &b"x"[..]).unwrap();
        archive
            .write_all(&builder.into_inner().unwrap().finish().unwrap())
            .unwrap();
        let (message, root) = lay_out_error(&[made_crate("tiny", &archive)], &LIMITS);
        assert!(
            message.starts_with("tiny 1.0.11: cannot lay out tiny-1.0.11.crate: "),
            "{message}"
        );
        assert!(vendor_entries(root.path()).is_empty());
        assert!(
            !root.path().join("escaped").exists() && !root.path().join("vendor/escaped").exists()
        );
    }

    #[test]
    fn a_file_that_is_not_a_gzipped_tar_is_refused() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(b"not an archive").unwrap();
        let mut krate = krate("tiny");
        krate.checksum = sha256_of(file.path());
        let files = [(
            locked_file(&krate, String::new()),
            file.path().to_path_buf(),
        )];
        let (message, root) = lay_out_error(&files, &LIMITS);
        assert!(
            message.starts_with("tiny 1.0.11: cannot lay out tiny-1.0.11.crate: "),
            "{message}"
        );
        assert!(vendor_entries(root.path()).is_empty());
    }

    #[test]
    fn the_byte_limit_holds_for_all_crates_together() {
        let first = crate_archive(&[("aaaa-1.0.11/src/lib.rs", &[b'a'; 600])]);
        let second = crate_archive(&[("bbbb-1.0.11/src/lib.rs", &[b'b'; 600])]);
        let files = [made_crate("aaaa", &first), made_crate("bbbb", &second)];
        let one_each = LayoutLimits {
            max_bytes: 1000,
            max_entries: 100,
        };
        // Each alone fits.
        for file in &files {
            let root = tempfile::tempdir().unwrap();
            lay_out(
                &verified(std::slice::from_ref(file)),
                root.path(),
                "/m",
                &one_each,
            )
            .unwrap();
        }
        let (message, root) = lay_out_error(&files, &one_each);
        assert!(
            message.starts_with("bbbb 1.0.11: cannot lay out bbbb-1.0.11.crate: "),
            "{message}"
        );
        assert!(
            message.contains("the limits are for all crates together: 1000 bytes and 100 entries, of which the crates before it use 600 bytes"),
            "{message}"
        );
        assert_eq!(vendor_entries(root.path()), ["aaaa-1.0.11"]);
    }

    #[test]
    fn the_entry_limit_holds() {
        let archive = crate_archive(&[
            ("tiny-1.0.11/a", b""),
            ("tiny-1.0.11/b", b""),
            ("tiny-1.0.11/c", b""),
        ]);
        let limits = LayoutLimits {
            max_bytes: 1 << 20,
            max_entries: 2,
        };
        let (message, root) = lay_out_error(&[made_crate("tiny", &archive)], &limits);
        assert!(
            message.starts_with("tiny 1.0.11: cannot lay out tiny-1.0.11.crate: "),
            "{message}"
        );
        assert!(vendor_entries(root.path()).is_empty());
    }

    #[test]
    fn the_same_crate_from_two_registries_is_refused() {
        let mut files = fixture_files(CRATES_IO_SOURCE);
        files.truncate(1);
        files.extend(
            fixture_files("sparse+http://127.0.0.1:8080/index/")
                .into_iter()
                .take(1),
        );
        let (message, _root) = lay_out_error(&files, &LIMITS);
        assert_eq!(
            message,
            format!(
                "cfg-if 1.0.0: cannot lay out cfg-if-1.0.0.crate: cfg-if 1.0.0 is locked from two sources (`{CRATES_IO_SOURCE}` and `sparse+http://127.0.0.1:8080/index/`); one vendor directory holds one of them"
            )
        );
    }

    #[test]
    fn git_files_and_cargo_ok_are_not_vendored() {
        let archive = crate_archive(&[
            ("tiny-1.0.11/Cargo.toml", b"[package]\n"),
            ("tiny-1.0.11/.cargo-ok", b"{}"),
            ("tiny-1.0.11/.gitattributes", b"* text"),
            ("tiny-1.0.11/src/.gitignore", b"target"),
            ("tiny-1.0.11/.git/config", b"[core]"),
            ("tiny-1.0.11/src/lib.rs", b"pub fn f() {}"),
            (
                "tiny-1.0.11/src/.cargo-ok",
                b"kept: only the top one is cargo's",
            ),
        ]);
        let files = [made_crate("tiny", &archive)];
        let root = tempfile::tempdir().unwrap();
        lay_out(&verified(&files), root.path(), "/m", &LIMITS).unwrap();
        let dir = root.path().join("vendor/tiny-1.0.11");
        let json: serde_json::Value =
            serde_json::from_slice(&fs::read(dir.join(".cargo-checksum.json")).unwrap()).unwrap();
        let listed: Vec<_> = json["files"].as_object().unwrap().keys().cloned().collect();
        assert_eq!(listed, ["Cargo.toml", "src/.cargo-ok", "src/lib.rs"]);
        for gone in [".cargo-ok", ".gitattributes", "src/.gitignore", ".git"] {
            assert!(!dir.join(gone).exists(), "{gone}");
        }
    }
}
