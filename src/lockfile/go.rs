//! `go.sum` and a GOPROXY directory (`file://`) for `go build` with the network off.
//!
//! Each line of go.sum is one file of the module proxy protocol: `<module> <version> h1:…`
//! pins the module's zip, `<module> <version>/go.mod h1:…` its go.mod. An `h1:` is not a digest
//! of the file's bytes but Go's dirhash Hash1 over the files inside (the sha256 of a
//! `sha256sum`-style summary), so [`verify`] opens the download and hashes it as `go` does
//! before anything is stored. [`lay_out`] writes the directory `GOPROXY=file://` reads:
//! `<escaped module>/@v/<escaped version>.zip`, `.mod`, `.info`, and `list`.
//!
//! Nothing here opens a socket or writes outside the layout's root; paths are checked
//! (module path, version, zip entry names) before they become file names.

// LockError (shared by every format, in mod.rs) is over clippy's size for an Err; the lead
// decides whether to box its variants, which would make this allow unneeded.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{self, Read, Write};
use std::path::Path;

use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::{
    FileKind, LayoutLimits, LockDigest, LockError, LockSource, LockedFile, Verified, purl_escape,
};

/// The `Time` of every `.info` in the layout: the protocol asks for one, and a fixed one keeps
/// the layout the same from one fetch to the next.
pub const INFO_TIME: &str = "1980-01-01T00:00:00Z";

/// The suffix of a go.sum version that pins the module's go.mod rather than its zip.
const GO_MOD_SUFFIX: &str = "/go.mod";

/// Every `h1:` line of `go.sum`, each a file under `proxy` (a GOPROXY URL, with or without a
/// trailing slash). Blank lines are skipped; a line repeated with the same hash is read once.
pub fn parse(lock: &LockSource<'_>, proxy: &str) -> Result<Vec<LockedFile>, LockError> {
    let proxy = proxy.trim_end_matches('/');
    let mut files: Vec<LockedFile> = Vec::new();
    // (module, version, is go.mod) -> index in `files`, to catch two hashes for one file.
    let mut seen: HashMap<(String, String, bool), usize> = HashMap::new();
    for (index, text) in lock.text.lines().enumerate() {
        let line = index + 1;
        let invalid = |message: String| LockError::Invalid {
            lock: lock.display.to_string(),
            line,
            message,
        };
        let fields: Vec<&str> = text.split_whitespace().collect();
        let [module, version, hash] = fields[..] else {
            if fields.is_empty() {
                continue;
            }
            return Err(invalid(format!(
                "expected `<module> <version> h1:<hash>` or `<module> <version>/go.mod h1:<hash>`, found `{}`",
                text.trim()
            )));
        };
        let (version, is_go_mod) = match version.strip_suffix(GO_MOD_SUFFIX) {
            Some(version) => (version, true),
            None => (version, false),
        };
        check_module_path(module)
            .map_err(|why| invalid(format!("`{module}` is not a module path: {why}")))?;
        check_version(version).map_err(|why| {
            invalid(format!(
                "`{version}` of {module} is not a canonical module version: {why}"
            ))
        })?;
        let digest = parse_h1(hash).map_err(|why| invalid(format!("{why}, found `{hash}`")))?;

        let key = (module.to_string(), version.to_string(), is_go_mod);
        if let Some(&earlier) = seen.get(&key) {
            let earlier: &LockedFile = &files[earlier];
            if earlier.digest == digest {
                continue;
            }
            return Err(invalid(format!(
                "{module} {version}{} is pinned twice with different hashes: {} here, {} on line {}",
                if is_go_mod { GO_MOD_SUFFIX } else { "" },
                digest.lock_form(),
                earlier.digest.lock_form(),
                earlier.line
            )));
        }
        seen.insert(key, files.len());

        let (extension, kind) = if is_go_mod {
            let kind = FileKind::GoMod {
                module: module.to_string(),
                version: version.to_string(),
            };
            ("mod", kind)
        } else {
            let kind = FileKind::GoZip {
                module: module.to_string(),
                version: version.to_string(),
            };
            ("zip", kind)
        };
        files.push(LockedFile {
            purl: purl(module, version),
            package: format!("{module} {version}"),
            url: format!(
                "{proxy}/{}/@v/{}.{extension}",
                escape(module),
                escape(version)
            ),
            file_name: format!("{version}.{extension}"),
            digest,
            line,
            kind,
        });
    }
    Ok(files)
}

/// Go's module path (and version) escaping for proxy URLs and file names: every upper-case
/// letter becomes `!` and its lower case (`example.internal/Upper` → `example.internal/!upper`),
/// so that paths differing only in case stay apart on case-insensitive file systems.
pub fn escape(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if c.is_ascii_uppercase() {
            out.push('!');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// `pkg:golang/<module path>@<version>`, each path segment escaped as the purl spec asks.
fn purl(module: &str, version: &str) -> String {
    let path: Vec<String> = module.split('/').map(purl_escape).collect();
    format!("pkg:golang/{}@{}", path.join("/"), purl_escape(version))
}

/// `h1:<base64 of 32 bytes>`.
fn parse_h1(hash: &str) -> Result<LockDigest, String> {
    let Some(encoded) = hash.strip_prefix("h1:") else {
        return Err(match hash.split_once(':') {
            Some((prefix, _)) => format!(
                "expected an `h1:` hash (Go's dirhash Hash1); `{prefix}:` is not one sealroom checks"
            ),
            None => "expected a hash of the form `h1:<base64>`".to_string(),
        });
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|err| format!("expected `h1:` and base64 (a sha256), not valid base64 ({err})"))?;
    let bytes: [u8; 32] = bytes.try_into().map_err(|bytes: Vec<u8>| {
        format!(
            "expected `h1:` and the base64 of 32 bytes (a sha256), this decodes to {} bytes",
            bytes.len()
        )
    })?;
    Ok(LockDigest::GoH1(bytes))
}

/// A module path as Go's `module.CheckPath` accepts it (the rules that matter for file names):
/// `/`-separated elements of ASCII letters, digits and `-._~`, none empty or starting or ending
/// with a dot, the first with a dot in it and not starting with `-`.
fn check_module_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("it is empty".to_string());
    }
    for element in path.split('/') {
        if element.is_empty() {
            return Err("it has an empty path element (a leading, trailing or double `/`)".into());
        }
        if element.starts_with('.') || element.ends_with('.') {
            return Err(format!("the element `{element}` starts or ends with a dot"));
        }
        if let Some(bad) = element
            .chars()
            .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~')))
        {
            return Err(format!(
                "`{bad}` is not allowed (expected ASCII letters, digits, `-`, `.`, `_`, `~` and `/`)"
            ));
        }
    }
    let first = path.split('/').next().unwrap_or(path);
    if !first.contains('.') {
        return Err(format!("its first element `{first}` has no dot"));
    }
    if first.starts_with('-') {
        return Err(format!("its first element `{first}` starts with `-`"));
    }
    Ok(())
}

/// A canonical semantic version as go.sum writes it: `v<major>.<minor>.<patch>`, an optional
/// `-<prerelease>` (pseudo-versions are prereleases), an optional `+incompatible`.
fn check_version(version: &str) -> Result<(), String> {
    const EXPECTED: &str =
        "expected v<major>.<minor>.<patch> with an optional -<prerelease> and +incompatible";
    let rest = version.strip_prefix('v').ok_or(EXPECTED)?;
    let rest = rest.strip_suffix("+incompatible").unwrap_or(rest);
    let (core, prerelease) = match rest.split_once('-') {
        Some((core, prerelease)) => (core, Some(prerelease)),
        None => (rest, None),
    };
    let numeric = |part: &str| {
        !part.is_empty()
            && part.bytes().all(|b| b.is_ascii_digit())
            && (part == "0" || !part.starts_with('0'))
    };
    let numbers: Vec<&str> = core.split('.').collect();
    if numbers.len() != 3 || !numbers.iter().all(|part| numeric(part)) {
        return Err(EXPECTED.to_string());
    }
    if let Some(prerelease) = prerelease {
        for identifier in prerelease.split('.') {
            let well_formed = !identifier.is_empty()
                && identifier
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && (!identifier.bytes().all(|b| b.is_ascii_digit()) || numeric(identifier));
            if !well_formed {
                return Err(format!(
                    "the prerelease identifier `{identifier}` is not ASCII letters, digits and `-` (or is a number with a leading zero); {EXPECTED}"
                ));
            }
        }
    }
    Ok(())
}

/// Checks a downloaded zip or go.mod against its `h1:` (Go's dirhash Hash1): for a zip, every
/// entry name (each under `<module>@<version>/`, none twice, no `.` or `..` element, within
/// `limits`) sorted, one `<sha256 hex>  <name>\n` line each, and the sha256 of those lines; for
/// a go.mod the same over one file named `go.mod`. The errors name the lock `go.sum`; see
/// [`verify_in`] for the lock's path as the spec gives it.
pub fn verify(file: &LockedFile, path: &Path, limits: &LayoutLimits) -> Result<(), LockError> {
    verify_in(LAYOUT_LOCK, file, path, limits)
}

/// [`verify`], with `lock` (the lock file as the spec names it) in the errors.
pub fn verify_in(
    lock: &str,
    file: &LockedFile,
    path: &Path,
    limits: &LayoutLimits,
) -> Result<(), LockError> {
    let LockDigest::GoH1(expected) = &file.digest else {
        return Err(not_a_go_file(file));
    };
    let found = match &file.kind {
        FileKind::GoZip { module, version } => {
            hash_zip(lock, file, path, &format!("{module}@{version}/"), limits)?
        }
        FileKind::GoMod { .. } => hash_go_mod(lock, file, path, limits)?,
        _ => return Err(not_a_go_file(file)),
    };
    if found != *expected {
        return Err(LockError::Mismatch {
            lock: lock.to_string(),
            line: file.line,
            package: file.package.clone(),
            url: file.url.clone(),
            expected: file.digest.lock_form(),
            found: LockDigest::GoH1(found).lock_form(),
        });
    }
    Ok(())
}

fn not_a_go_file(file: &LockedFile) -> LockError {
    LockError::Layout {
        package: file.package.clone(),
        file: file.file_name.clone(),
        message: format!(
            "not a Go module file pinned by h1: (kind {:?}, digest {})",
            file.kind, file.digest
        ),
    }
}

/// A [`LockError::Layout`] for a file that cannot be read as what the lock says it is; `lock`
/// and the file's line say where it is pinned.
fn unreadable(lock: &str, file: &LockedFile, message: String) -> LockError {
    LockError::Layout {
        package: file.package.clone(),
        file: file.file_name.clone(),
        message: format!("{message} (locked at {lock}:{})", file.line),
    }
}

/// Hash1 over the entries of a module zip, each checked before it is read.
fn hash_zip(
    lock: &str,
    file: &LockedFile,
    path: &Path,
    prefix: &str,
    limits: &LayoutLimits,
) -> Result<[u8; 32], LockError> {
    let mut zip = open_zip(lock, file, path)?;
    if zip.len() as u64 > limits.max_entries {
        return Err(unreadable(
            lock,
            file,
            format!(
                "the zip has {} entries, over the limit of {} (limits.output)",
                zip.len(),
                limits.max_entries
            ),
        ));
    }
    if zip.has_duplicate_names() {
        return Err(unreadable(
            lock,
            file,
            "the zip names a file twice; a module zip has each file once".to_string(),
        ));
    }
    let mut summary: Vec<(String, [u8; 32])> = Vec::with_capacity(zip.len());
    // Lower-cased name -> name: Go refuses files whose names differ only in case.
    let mut folded: HashMap<String, String> = HashMap::new();
    let mut bytes = 0u64;
    for index in 0..zip.len() {
        let mut entry = zip
            .by_index(index)
            .map_err(|err| unreadable(lock, file, format!("entry {index} of the zip: {err}")))?;
        let name = std::str::from_utf8(entry.name_raw())
            .map_err(|_| {
                unreadable(
                    lock,
                    file,
                    format!(
                        "the name of entry {index} is not UTF-8: {:?}",
                        String::from_utf8_lossy(entry.name_raw())
                    ),
                )
            })?
            .to_string();
        check_entry_name(&name, prefix)
            .map_err(|why| unreadable(lock, file, format!("the zip entry `{name}` {why}")))?;
        if let Some(other) = folded.insert(name.to_lowercase(), name.clone()) {
            return Err(unreadable(
                lock,
                file,
                format!(
                    "the zip entries `{other}` and `{name}` differ only in case; Go refuses such a module"
                ),
            ));
        }
        let budget = limits.max_bytes - bytes;
        let (digest, read) = sha256_bounded(&mut entry, budget)
            .map_err(|err| unreadable(lock, file, format!("the zip entry `{name}`: {err}")))?;
        if read > budget {
            return Err(unreadable(
                lock,
                file,
                format!(
                    "the zip holds more than {} bytes uncompressed, over the limit (limits.output)",
                    limits.max_bytes
                ),
            ));
        }
        bytes += read;
        summary.push((name, digest));
    }
    Ok(hash1(summary))
}

/// Hash1 over one file named `go.mod`.
fn hash_go_mod(
    lock: &str,
    file: &LockedFile,
    path: &Path,
    limits: &LayoutLimits,
) -> Result<[u8; 32], LockError> {
    let mut handle = fs::File::open(path).map_err(|err| LockError::io("open", path, err))?;
    let (digest, read) = sha256_bounded(&mut handle, limits.max_bytes)
        .map_err(|err| LockError::io("read", path, err))?;
    if read > limits.max_bytes {
        return Err(unreadable(
            lock,
            file,
            format!(
                "the go.mod is longer than {} bytes, over the limit (limits.output)",
                limits.max_bytes
            ),
        ));
    }
    Ok(hash1(vec![("go.mod".to_string(), digest)]))
}

fn open_zip(
    lock: &str,
    file: &LockedFile,
    path: &Path,
) -> Result<zip::ZipArchive<io::BufReader<fs::File>>, LockError> {
    let handle = fs::File::open(path).map_err(|err| LockError::io("open", path, err))?;
    zip::ZipArchive::new(io::BufReader::new(handle))
        .map_err(|err| unreadable(lock, file, format!("not a zip archive: {err}")))
}

/// The sha256 of what `reader` gives, reading at most `budget + 1` bytes; the count says
/// whether it stopped there (more than `budget`).
fn sha256_bounded(reader: &mut impl Read, budget: u64) -> io::Result<([u8; 32], u64)> {
    let mut hasher = Sha256::new();
    let read = io::copy(&mut reader.take(budget.saturating_add(1)), &mut hasher)?;
    Ok((hasher.finalize().into(), read))
}

/// dirhash Hash1: the sha256 of `"<sha256 hex>  <name>\n"` for each file, sorted by name (as
/// Go's `sort.Strings`: by bytes).
fn hash1(mut files: Vec<(String, [u8; 32])>) -> [u8; 32] {
    files.sort_by(|a, b| a.0.cmp(&b.0));
    let mut summary = Sha256::new();
    for (name, digest) in &files {
        // Writing to a hasher cannot fail.
        let _ = writeln!(summary, "{}  {name}", hex::encode(digest));
    }
    summary.finalize().into()
}

/// An entry of a module zip: under `prefix`, then a clean relative path (a directory entry
/// ends with `/`); no empty, `.` or `..` element, no backslash, no control character.
fn check_entry_name(name: &str, prefix: &str) -> Result<(), String> {
    let Some(rest) = name.strip_prefix(prefix) else {
        return Err(format!(
            "is not under `{prefix}` (every file of a module zip is under <module>@<version>/)"
        ));
    };
    if let Some(bad) = rest.chars().find(|&c| c == '\\' || c.is_control()) {
        return Err(format!("has the character {bad:?} in its name"));
    }
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() {
        return Ok(());
    }
    if rest
        .split('/')
        .any(|element| element.is_empty() || element == "." || element == "..")
    {
        return Err("has an empty, `.` or `..` path element".to_string());
    }
    Ok(())
}

/// The lock as [`verify`] and [`lay_out`] name it in errors: they get files, not the lock's path.
const LAYOUT_LOCK: &str = "go.sum";

/// What the layout has of one module version.
#[derive(Default)]
struct ModuleFiles<'a> {
    zip: Option<&'a Verified<'a>>,
    go_mod: Option<&'a Verified<'a>>,
}

/// The GOPROXY directory for `GOPROXY=file:///inputs/<name> GOSUMDB=off
/// GOFLAGS=-mod=readonly go build ./...`: for every module version,
/// `<escaped module>/@v/<escaped version>.zip` (when go.sum pins the zip), `.mod` (the
/// verified go.mod, or else the zip's own `go.mod`, or `module <path>` when the zip has none,
/// as Go does for such modules), `.info` (`{"Version":…,"Time":INFO_TIME}`), and for every
/// module `list` (its versions, one a line).
pub fn lay_out(
    files: &[Verified<'_>],
    root: &Path,
    limits: &LayoutLimits,
) -> Result<(), LockError> {
    let mut modules: BTreeMap<(&str, &str), ModuleFiles<'_>> = BTreeMap::new();
    for verified in files {
        let (module, version, is_zip) = match &verified.file.kind {
            FileKind::GoZip { module, version } => (module, version, true),
            FileKind::GoMod { module, version } => (module, version, false),
            _ => return Err(not_a_go_file(verified.file)),
        };
        // The kind becomes a path below `root`: checked again here, whoever made it.
        check_module_path(module)
            .and_then(|()| check_version(version))
            .map_err(|why| {
                unreadable(
                    LAYOUT_LOCK,
                    verified.file,
                    format!("cannot lay out {module} {version}: {why}"),
                )
            })?;
        let entry = modules.entry((module, version)).or_default();
        if is_zip {
            entry.zip = Some(verified);
        } else {
            entry.go_mod = Some(verified);
        }
    }

    let mut versions: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for ((module, version), entry) in &modules {
        let dir = root.join(escape(module)).join("@v");
        fs::create_dir_all(&dir).map_err(|err| LockError::io("create", &dir, err))?;
        let base = escape(version);
        if let Some(zip) = entry.zip {
            copy(&zip.path, &dir.join(format!("{base}.zip")))?;
        }
        let go_mod = dir.join(format!("{base}.mod"));
        match (entry.go_mod, entry.zip) {
            (Some(verified), _) => copy(&verified.path, &go_mod)?,
            (None, Some(zip)) => {
                let text = go_mod_of_zip(zip, module, version, limits)?;
                write(&go_mod, &text)?;
            }
            (None, None) => unreachable!("every entry has a zip or a go.mod"),
        }
        let info = serde_json::to_vec(&Info {
            version,
            time: INFO_TIME,
        })
        .expect("a struct of strings serializes");
        write(&dir.join(format!("{base}.info")), &info)?;
        versions.entry(module).or_default().push(version);
    }
    for (module, versions) in versions {
        let path = root.join(escape(module)).join("@v").join("list");
        let mut text = String::new();
        for version in versions {
            text.push_str(version);
            text.push('\n');
        }
        write(&path, text.as_bytes())?;
    }
    Ok(())
}

/// A `.info` file of the proxy protocol.
#[derive(serde::Serialize)]
struct Info<'a> {
    #[serde(rename = "Version")]
    version: &'a str,
    #[serde(rename = "Time")]
    time: &'a str,
}

/// The `go.mod` at the root of a verified module zip, or `module <path>` when there is none
/// (what Go itself serves for a module without one).
fn go_mod_of_zip(
    zip: &Verified<'_>,
    module: &str,
    version: &str,
    limits: &LayoutLimits,
) -> Result<Vec<u8>, LockError> {
    let mut archive = open_zip(LAYOUT_LOCK, zip.file, &zip.path)?;
    let name = format!("{module}@{version}/go.mod");
    let mut entry = match archive.by_name(&name) {
        Ok(entry) => entry,
        Err(zip::result::ZipError::FileNotFound) => {
            return Ok(format!("module {module}\n").into_bytes());
        }
        Err(err) => return Err(unreadable(LAYOUT_LOCK, zip.file, format!("{name}: {err}"))),
    };
    let mut text = Vec::new();
    (&mut entry)
        .take(limits.max_bytes.saturating_add(1))
        .read_to_end(&mut text)
        .map_err(|err| unreadable(LAYOUT_LOCK, zip.file, format!("{name}: {err}")))?;
    if text.len() as u64 > limits.max_bytes {
        return Err(unreadable(
            LAYOUT_LOCK,
            zip.file,
            format!(
                "{name} is longer than {} bytes, over the limit (limits.output)",
                limits.max_bytes
            ),
        ));
    }
    Ok(text)
}

/// Copies a verified file (read-only in the store) into the layout as a new, writable file.
fn copy(from: &Path, to: &Path) -> Result<(), LockError> {
    let mut source = fs::File::open(from).map_err(|err| LockError::io("open", from, err))?;
    let mut target = fs::File::create(to).map_err(|err| LockError::io("create", to, err))?;
    io::copy(&mut source, &mut target).map_err(|err| LockError::io("write", to, err))?;
    Ok(())
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), LockError> {
    fs::write(path, bytes).map_err(|err| LockError::io("write", path, err))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    /// The go.sum Go wrote for the fixture app (tests/fixtures/packages/go/make.sh).
    const GO_SUM: &str = include_str!("../../tests/fixtures/locks/go/go.sum");
    const LIMITS: LayoutLimits = LayoutLimits {
        max_bytes: 1 << 20,
        max_entries: 100,
    };

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/packages/go")
    }

    fn lock(text: &str) -> LockSource<'_> {
        LockSource {
            display: "app/go.sum",
            text,
        }
    }

    /// The fixture go.sum read with the fixture directory as a `file://` proxy, so that each
    /// URL is also where the file is.
    fn fixture_files() -> Vec<LockedFile> {
        parse(&lock(GO_SUM), &format!("file://{}", fixtures().display())).unwrap()
    }

    fn path_of(file: &LockedFile) -> PathBuf {
        PathBuf::from(file.url.strip_prefix("file://").unwrap())
    }

    fn invalid_message(text: &str) -> String {
        let error = parse(&lock(text), "http://127.0.0.1:1/proxy").unwrap_err();
        assert!(
            matches!(error, LockError::Invalid { .. }),
            "{error:?} is not Invalid"
        );
        error.to_string()
    }

    /// A zip of `(name, bytes)` entries, stored (not deflated).
    fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut writer = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        for (name, bytes) in entries {
            writer.start_file(*name, options).unwrap();
            writer.write_all(bytes).unwrap();
        }
        writer.finish().unwrap().into_inner()
    }

    /// Every entry of a zip, in order.
    fn entries_of(path: &Path) -> Vec<(String, Vec<u8>)> {
        let mut archive = zip::ZipArchive::new(fs::File::open(path).unwrap()).unwrap();
        (0..archive.len())
            .map(|index| {
                let mut entry = archive.by_index(index).unwrap();
                let mut bytes = Vec::new();
                entry.read_to_end(&mut bytes).unwrap();
                (entry.name().unwrap().into_owned(), bytes)
            })
            .collect()
    }

    /// A LockedFile for a zip of `module v1.0.0` pinned by `digest`.
    fn zip_file(module: &str, digest: [u8; 32]) -> LockedFile {
        LockedFile {
            purl: purl(module, "v1.0.0"),
            package: format!("{module} v1.0.0"),
            url: format!("http://127.0.0.1:1/{}/@v/v1.0.0.zip", escape(module)),
            file_name: "v1.0.0.zip".to_string(),
            digest: LockDigest::GoH1(digest),
            line: 7,
            kind: FileKind::GoZip {
                module: module.to_string(),
                version: "v1.0.0".to_string(),
            },
        }
    }

    fn verify_zip_error(entries: &[(&str, &[u8])], limits: &LayoutLimits) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.0.0.zip");
        fs::write(&path, zip_of(entries)).unwrap();
        let file = zip_file("example.internal/m", [0; 32]);
        let error = verify_in("app/go.sum", &file, &path, limits).unwrap_err();
        assert!(
            matches!(error, LockError::Layout { .. }),
            "{error:?} is not Layout"
        );
        let message = error.to_string();
        assert!(message.contains("example.internal/m v1.0.0"), "{message}");
        assert!(message.contains("(locked at app/go.sum:7)"), "{message}");
        message
    }

    #[test]
    fn escape_writes_each_upper_case_letter_as_bang_and_lower_case() {
        assert_eq!(escape("example.internal/Upper"), "example.internal/!upper");
        assert_eq!(
            escape("github.example/BurntSushi/toml"),
            "github.example/!burnt!sushi/toml"
        );
        assert_eq!(escape("v1.0.0-RC1"), "v1.0.0-!r!c1");
        assert_eq!(escape("example.internal/greet"), "example.internal/greet");
    }

    #[test]
    fn parses_every_line_of_the_go_sum_go_wrote() {
        let files = fixture_files();
        let root = format!("file://{}", fixtures().display());
        let got: Vec<(String, String, String, String, usize)> = files
            .iter()
            .map(|file| {
                (
                    file.url.strip_prefix(&root).unwrap().to_string(),
                    file.file_name.clone(),
                    file.purl.clone(),
                    file.package.clone(),
                    file.line,
                )
            })
            .collect();
        let row = |url: &str, name: &str, purl: &str, package: &str, line| {
            (url.into(), name.into(), purl.into(), package.into(), line)
        };
        assert_eq!(
            got,
            vec![
                row(
                    "/example.internal/!upper/@v/v1.0.0.zip",
                    "v1.0.0.zip",
                    "pkg:golang/example.internal/Upper@v1.0.0",
                    "example.internal/Upper v1.0.0",
                    1
                ),
                row(
                    "/example.internal/!upper/@v/v1.0.0.mod",
                    "v1.0.0.mod",
                    "pkg:golang/example.internal/Upper@v1.0.0",
                    "example.internal/Upper v1.0.0",
                    2
                ),
                row(
                    "/example.internal/greet/@v/v1.0.0.zip",
                    "v1.0.0.zip",
                    "pkg:golang/example.internal/greet@v1.0.0",
                    "example.internal/greet v1.0.0",
                    3
                ),
                row(
                    "/example.internal/greet/@v/v1.0.0.mod",
                    "v1.0.0.mod",
                    "pkg:golang/example.internal/greet@v1.0.0",
                    "example.internal/greet v1.0.0",
                    4
                ),
            ]
        );
        // Each file exists where its URL says: the escaping is the one Go's proxy layout uses.
        for file in &files {
            assert!(path_of(file).is_file(), "{} is not a file", file.url);
        }
        // The digest is the base64 of the line, decoded.
        let line = GO_SUM.lines().next().unwrap();
        let h1 = line.split_whitespace().nth(2).unwrap();
        assert_eq!(files[0].digest.lock_form(), h1);
        assert_eq!(
            files[0].digest.bytes(),
            base64::engine::general_purpose::STANDARD
                .decode(h1.strip_prefix("h1:").unwrap())
                .unwrap()
        );
        let kinds: Vec<&FileKind> = files.iter().map(|file| &file.kind).collect();
        let module = |module: &str| (module.to_string(), "v1.0.0".to_string());
        let (upper, greet) = (
            module("example.internal/Upper"),
            module("example.internal/greet"),
        );
        assert_eq!(
            kinds,
            [
                &FileKind::GoZip {
                    module: upper.0.clone(),
                    version: upper.1.clone()
                },
                &FileKind::GoMod {
                    module: upper.0,
                    version: upper.1
                },
                &FileKind::GoZip {
                    module: greet.0.clone(),
                    version: greet.1.clone()
                },
                &FileKind::GoMod {
                    module: greet.0,
                    version: greet.1
                },
            ]
        );
    }

    #[test]
    fn the_proxy_url_is_the_same_with_or_without_a_trailing_slash() {
        let with = parse(&lock(GO_SUM), "http://127.0.0.1:8080/go/").unwrap();
        let without = parse(&lock(GO_SUM), "http://127.0.0.1:8080/go").unwrap();
        let urls = |files: &[LockedFile]| files.iter().map(|f| f.url.clone()).collect::<Vec<_>>();
        assert_eq!(urls(&with), urls(&without));
        assert_eq!(
            with[0].url,
            "http://127.0.0.1:8080/go/example.internal/!upper/@v/v1.0.0.zip"
        );
    }

    #[test]
    fn blank_lines_are_skipped_and_counted_and_a_repeated_line_is_read_once() {
        let mut lines = GO_SUM.lines();
        let (first, second) = (lines.next().unwrap(), lines.next().unwrap());
        let text = format!("\n{first}\r\n   \n{second}\n{first}\n\n");
        let files = parse(&lock(&text), "http://127.0.0.1:1").unwrap();
        let lines: Vec<usize> = files.iter().map(|file| file.line).collect();
        assert_eq!(lines, [2, 4]);
    }

    #[test]
    fn versions_with_upper_case_letters_and_pseudo_versions_are_escaped_in_the_url_only() {
        let hash = "h1:vneQjBvTLgnVd1QB8VOxLmwsm3cID/jhuAdIc43bUaQ=";
        let text = format!(
            "example.internal/m v1.2.3-RC.1 {hash}\nexample.internal/m v0.0.0-20191109021931-daa7c04131f5+incompatible/go.mod {hash}\n"
        );
        let files = parse(&lock(&text), "http://127.0.0.1:1").unwrap();
        assert_eq!(
            files[0].url,
            "http://127.0.0.1:1/example.internal/m/@v/v1.2.3-!r!c.1.zip"
        );
        assert_eq!(files[0].file_name, "v1.2.3-RC.1.zip");
        assert_eq!(
            files[1].file_name,
            "v0.0.0-20191109021931-daa7c04131f5+incompatible.mod"
        );
        assert_eq!(
            files[1].purl,
            "pkg:golang/example.internal/m@v0.0.0-20191109021931-daa7c04131f5%2Bincompatible"
        );
    }

    #[test]
    fn a_line_without_three_fields_is_invalid_naming_it() {
        let message = invalid_message("example.internal/m v1.0.0\n");
        assert!(message.starts_with("app/go.sum:1: "), "{message}");
        assert!(
            message.contains("expected `<module> <version> h1:<hash>`"),
            "{message}"
        );
        assert!(
            message.contains("found `example.internal/m v1.0.0`"),
            "{message}"
        );
        let message = invalid_message("\nexample.internal/m v1.0.0 h1:a= extra\n");
        assert!(message.starts_with("app/go.sum:2: "), "{message}");
    }

    #[test]
    fn a_hash_other_than_h1_is_invalid() {
        let message = invalid_message(
            "example.internal/m v1.0.0 h2:vneQjBvTLgnVd1QB8VOxLmwsm3cID/jhuAdIc43bUaQ=\n",
        );
        assert!(message.starts_with("app/go.sum:1: "), "{message}");
        assert!(
            message.contains("`h2:` is not one sealroom checks"),
            "{message}"
        );
        assert!(message.contains("found `h2:vneQ"), "{message}");
        let message = invalid_message("example.internal/m v1.0.0 vneQjBvTLgnVd1Q=\n");
        assert!(
            message.contains("expected a hash of the form `h1:<base64>`"),
            "{message}"
        );
    }

    #[test]
    fn a_hash_that_is_not_base64_of_32_bytes_is_invalid() {
        let message = invalid_message("example.internal/m v1.0.0 h1:not*base64\n");
        assert!(message.contains("not valid base64"), "{message}");
        assert!(message.contains("found `h1:not*base64`"), "{message}");
        let message = invalid_message("example.internal/m v1.0.0/go.mod h1:AAAA\n");
        assert!(message.contains("this decodes to 3 bytes"), "{message}");
    }

    #[test]
    fn a_bad_module_path_or_version_is_invalid() {
        let hash = "h1:vneQjBvTLgnVd1QB8VOxLmwsm3cID/jhuAdIc43bUaQ=";
        for (module, version, why) in [
            ("example.internal/!upper", "v1.0.0", "`!` is not allowed"),
            ("../etc", "v1.0.0", "starts or ends with a dot"),
            ("example.internal//m", "v1.0.0", "empty path element"),
            ("localhost/m", "v1.0.0", "has no dot"),
            ("example.internal/m", "1.0.0", "expected v<major>"),
            ("example.internal/m", "v1.0", "expected v<major>"),
            ("example.internal/m", "v01.0.0", "expected v<major>"),
            (
                "example.internal/m",
                "v1.0.0-a/b",
                "prerelease identifier `a/b`",
            ),
            ("example.internal/m", "v1.0.0+build", "expected v<major>"),
        ] {
            let message = invalid_message(&format!("\n\n{module} {version} {hash}\n"));
            assert!(message.starts_with("app/go.sum:3: "), "{message}");
            assert!(message.contains(why), "{module} {version}: {message}");
        }
    }

    #[test]
    fn two_different_hashes_for_one_file_are_invalid_naming_both_lines() {
        let mut lines = GO_SUM.lines();
        let first = lines.next().unwrap();
        let other = lines.nth(1).unwrap().split_whitespace().nth(2).unwrap();
        let changed = format!("{} {other}", first.rsplit_once(' ').unwrap().0);
        let message = invalid_message(&format!("{first}\n{changed}\n"));
        assert!(message.starts_with("app/go.sum:2: "), "{message}");
        assert!(
            message.contains("pinned twice with different hashes"),
            "{message}"
        );
        assert!(message.contains("on line 1"), "{message}");
    }

    #[test]
    fn verify_accepts_every_file_of_the_go_sum_go_wrote() {
        for file in fixture_files() {
            verify_in("app/go.sum", &file, &path_of(&file), &LIMITS)
                .unwrap_or_else(|err| panic!("{}: {err}", file.url));
        }
    }

    #[test]
    fn verify_refuses_a_zip_with_one_byte_of_one_file_changed_naming_both_h1() {
        let files = fixture_files();
        let greet = &files[2];
        let mut entries = entries_of(&path_of(greet));
        let (name, bytes) = entries
            .iter_mut()
            .find(|(name, _)| name.ends_with("/greet.go"))
            .unwrap();
        let at = bytes.len() / 2;
        bytes[at] ^= 0x20;
        let name = name.clone();
        let refs: Vec<(&str, &[u8])> = entries
            .iter()
            .map(|(name, bytes)| (name.as_str(), bytes.as_slice()))
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.0.0.zip");
        fs::write(&path, zip_of(&refs)).unwrap();

        let error = verify_in("app/go.sum", greet, &path, &LIMITS).unwrap_err();
        let LockError::Mismatch {
            ref lock,
            line,
            ref package,
            ref expected,
            ref found,
            ..
        } = error
        else {
            panic!("{error:?} is not a mismatch (changed {name})")
        };
        assert_eq!((lock.as_str(), line), ("app/go.sum", 3));
        assert_eq!(package, "example.internal/greet v1.0.0");
        let locked = GO_SUM
            .lines()
            .nth(2)
            .unwrap()
            .split_whitespace()
            .nth(2)
            .unwrap();
        assert_eq!(expected, locked);
        assert!(
            found.starts_with("h1:") && found.len() == 47 && found != expected,
            "{found}"
        );
        let message = error.to_string();
        assert!(
            message.starts_with("app/go.sum:3: example.internal/greet v1.0.0: "),
            "{message}"
        );
        assert!(
            message.contains(&format!("expected: {locked}")),
            "{message}"
        );
        assert!(message.contains(&format!("found:    {found}")), "{message}");

        // The same entries unchanged, rezipped stored rather than deflated: the hash is over
        // names and contents only, so it matches again.
        let entries = entries_of(&path_of(greet));
        let refs: Vec<(&str, &[u8])> = entries
            .iter()
            .map(|(name, bytes)| (name.as_str(), bytes.as_slice()))
            .collect();
        fs::write(&path, zip_of(&refs)).unwrap();
        verify_in("app/go.sum", greet, &path, &LIMITS).unwrap();
    }

    #[test]
    fn verify_without_the_lock_path_names_go_sum() {
        let files = fixture_files();
        verify(&files[1], &path_of(&files[1]), &LIMITS).unwrap();
        let message = verify(&files[0], &path_of(&files[1]), &LIMITS)
            .unwrap_err()
            .to_string();
        assert!(message.contains("(locked at go.sum:1)"), "{message}");
    }

    #[test]
    fn verify_refuses_a_changed_go_mod_naming_both_h1() {
        let files = fixture_files();
        let go_mod = &files[3];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.0.0.mod");
        let mut bytes = fs::read(path_of(go_mod)).unwrap();
        bytes.push(b'\n');
        fs::write(&path, bytes).unwrap();
        let message = verify_in("app/go.sum", go_mod, &path, &LIMITS)
            .unwrap_err()
            .to_string();
        let locked = GO_SUM
            .lines()
            .nth(3)
            .unwrap()
            .split_whitespace()
            .nth(2)
            .unwrap();
        assert!(
            message.starts_with("app/go.sum:4: example.internal/greet v1.0.0: "),
            "{message}"
        );
        assert!(
            message.contains(&format!("expected: {locked}")),
            "{message}"
        );
        assert!(message.contains("found:    h1:"), "{message}");
    }

    #[test]
    fn hash1_is_the_sha256_of_the_sorted_sha256sum_lines() {
        // Computed here from the definition, without hash1: `sha256sum` lines sorted by name.
        let (a, b) = (b"one\n".as_slice(), b"two\n".as_slice());
        let hex = |bytes: &[u8]| hex::encode(Sha256::digest(bytes));
        let summary = format!("{}  m@v1.0.0/a\n{}  m@v1.0.0/b\n", hex(a), hex(b));
        let expected: [u8; 32] = Sha256::digest(summary.as_bytes()).into();
        let got = hash1(vec![
            ("m@v1.0.0/b".to_string(), Sha256::digest(b).into()),
            ("m@v1.0.0/a".to_string(), Sha256::digest(a).into()),
        ]);
        assert_eq!(got, expected);
    }

    #[test]
    fn verify_refuses_a_zip_entry_outside_the_module_directory() {
        let message = verify_zip_error(
            &[
                (
                    "example.internal/m@v1.0.0/go.mod",
                    b"module example.internal/m\n",
                ),
                ("example.internal/other@v1.0.0/x.go", b"package x\n"),
            ],
            &LIMITS,
        );
        assert!(
            message.contains(
                "`example.internal/other@v1.0.0/x.go` is not under `example.internal/m@v1.0.0/`"
            ),
            "{message}"
        );
    }

    #[test]
    fn verify_refuses_dot_dot_and_empty_elements() {
        for name in [
            "example.internal/m@v1.0.0/../x.go",
            "example.internal/m@v1.0.0/a//x.go",
            "example.internal/m@v1.0.0/./x.go",
        ] {
            let message = verify_zip_error(&[(name, b"package x\n")], &LIMITS);
            assert!(
                message.contains("has an empty, `.` or `..` path element"),
                "{message}"
            );
        }
    }

    #[test]
    fn verify_refuses_a_name_twice_and_names_differing_only_in_case() {
        // Two entries first written as x.go and y.go, then renamed in place to the same name.
        let bytes = zip_of(&[
            ("example.internal/m@v1.0.0/x.go", b"package x\n"),
            ("example.internal/m@v1.0.0/y.go", b"package y\n"),
        ]);
        let mut twice = bytes;
        let mut at = 0;
        while let Some(found) = memchr::memmem::find(&twice[at..], b"/y.go") {
            twice[at + found + 1] = b'x';
            at += found + 1;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.0.0.zip");
        fs::write(&path, &twice).unwrap();
        let file = zip_file("example.internal/m", [0; 32]);
        let message = verify_in("app/go.sum", &file, &path, &LIMITS)
            .unwrap_err()
            .to_string();
        assert!(message.contains("names a file twice"), "{message}");

        let message = verify_zip_error(
            &[
                ("example.internal/m@v1.0.0/X.go", b"package x\n"),
                ("example.internal/m@v1.0.0/x.go", b"package x\n"),
            ],
            &LIMITS,
        );
        assert!(message.contains("differ only in case"), "{message}");
    }

    #[test]
    fn verify_stops_at_the_entry_and_byte_limits() {
        let entries: &[(&str, &[u8])] = &[
            ("example.internal/m@v1.0.0/a.go", b"package a\n"),
            ("example.internal/m@v1.0.0/b.go", b"package b\n"),
        ];
        let few = LayoutLimits {
            max_bytes: 1 << 20,
            max_entries: 1,
        };
        let message = verify_zip_error(entries, &few);
        assert!(
            message.contains("the zip has 2 entries, over the limit of 1"),
            "{message}"
        );
        let small = LayoutLimits {
            max_bytes: 15,
            max_entries: 100,
        };
        let message = verify_zip_error(entries, &small);
        assert!(
            message.contains("more than 15 bytes uncompressed"),
            "{message}"
        );
        // Exactly at the limit is within it.
        let exact = LayoutLimits {
            max_bytes: 20,
            max_entries: 2,
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.0.0.zip");
        fs::write(&path, zip_of(entries)).unwrap();
        let file = zip_file("example.internal/m", [0; 32]);
        let error = verify_in("app/go.sum", &file, &path, &exact).unwrap_err();
        assert!(matches!(error, LockError::Mismatch { .. }), "{error:?}");
    }

    #[test]
    fn verify_refuses_a_go_mod_over_the_byte_limit_and_a_file_that_is_not_a_zip() {
        let files = fixture_files();
        let tiny = LayoutLimits {
            max_bytes: 10,
            max_entries: 100,
        };
        let message = verify_in("app/go.sum", &files[3], &path_of(&files[3]), &tiny)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("the go.mod is longer than 10 bytes"),
            "{message}"
        );
        assert!(message.contains("(locked at app/go.sum:4)"), "{message}");
        // The go.mod where the zip should be.
        let message = verify_in("app/go.sum", &files[2], &path_of(&files[3]), &LIMITS)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains(
                "example.internal/greet v1.0.0: cannot lay out v1.0.0.zip: not a zip archive"
            ),
            "{message}"
        );
    }

    #[test]
    fn verify_refuses_a_file_that_is_not_a_go_module_file() {
        let mut file = fixture_files().remove(0);
        file.digest = LockDigest::Sha256([0; 32]);
        let message = verify_in("app/go.sum", &file, &path_of(&file), &LIMITS)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("not a Go module file pinned by h1:"),
            "{message}"
        );
    }

    /// Every file below `root`, relative, sorted.
    fn tree(root: &Path) -> Vec<String> {
        let mut files: Vec<String> = walkdir::WalkDir::new(root)
            .into_iter()
            .map(|entry| entry.unwrap())
            .filter(|entry| entry.file_type().is_file())
            .map(|entry| {
                entry
                    .path()
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        files.sort();
        files
    }

    fn lay_out_fixtures(keep: impl Fn(&LockedFile) -> bool) -> tempfile::TempDir {
        let files: Vec<LockedFile> = fixture_files().into_iter().filter(keep).collect();
        let verified: Vec<Verified<'_>> = files
            .iter()
            .map(|file| Verified {
                file,
                path: path_of(file),
            })
            .collect();
        let root = tempfile::tempdir().unwrap();
        lay_out(&verified, root.path(), &LIMITS).unwrap();
        root
    }

    #[test]
    fn lay_out_writes_a_goproxy_directory() {
        let root = lay_out_fixtures(|_| true);
        let root = root.path();
        assert_eq!(
            tree(root),
            [
                "example.internal/!upper/@v/list",
                "example.internal/!upper/@v/v1.0.0.info",
                "example.internal/!upper/@v/v1.0.0.mod",
                "example.internal/!upper/@v/v1.0.0.zip",
                "example.internal/greet/@v/list",
                "example.internal/greet/@v/v1.0.0.info",
                "example.internal/greet/@v/v1.0.0.mod",
                "example.internal/greet/@v/v1.0.0.zip",
            ]
        );
        for file in [
            "!upper/@v/v1.0.0.zip",
            "!upper/@v/v1.0.0.mod",
            "greet/@v/v1.0.0.zip",
        ] {
            assert_eq!(
                fs::read(root.join("example.internal").join(file)).unwrap(),
                fs::read(fixtures().join("example.internal").join(file)).unwrap(),
                "{file}"
            );
        }
        let info = fs::read_to_string(root.join("example.internal/greet/@v/v1.0.0.info")).unwrap();
        assert_eq!(
            info,
            r#"{"Version":"v1.0.0","Time":"1980-01-01T00:00:00Z"}"#
        );
        let list = fs::read_to_string(root.join("example.internal/!upper/@v/list")).unwrap();
        assert_eq!(list, "v1.0.0\n");
    }

    #[test]
    fn lay_out_takes_the_go_mod_from_the_zip_when_go_sum_pins_only_the_zip() {
        let root = lay_out_fixtures(|file| matches!(file.kind, FileKind::GoZip { .. }));
        for module in ["!upper", "greet"] {
            let laid = fs::read(
                root.path()
                    .join(format!("example.internal/{module}/@v/v1.0.0.mod")),
            );
            let fixture =
                fs::read(fixtures().join(format!("example.internal/{module}/@v/v1.0.0.mod")));
            assert_eq!(laid.unwrap(), fixture.unwrap(), "{module}");
        }
    }

    #[test]
    fn lay_out_writes_module_path_for_a_zip_without_go_mod() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.0.0.zip");
        fs::write(
            &path,
            zip_of(&[("example.internal/old@v1.0.0/old.go", b"package old\n")]),
        )
        .unwrap();
        let file = zip_file("example.internal/old", [0; 32]);
        let root = tempfile::tempdir().unwrap();
        let verified = [Verified { file: &file, path }];
        lay_out(&verified, root.path(), &LIMITS).unwrap();
        let go_mod = fs::read_to_string(root.path().join("example.internal/old/@v/v1.0.0.mod"));
        assert_eq!(go_mod.unwrap(), "module example.internal/old\n");
    }

    #[test]
    fn lay_out_refuses_files_that_are_not_go_module_files_and_unsafe_paths() {
        let mut file = fixture_files().remove(0);
        let path = path_of(&file);
        file.kind = FileKind::Python;
        let root = tempfile::tempdir().unwrap();
        let message = lay_out(
            &[Verified {
                file: &file,
                path: path.clone(),
            }],
            root.path(),
            &LIMITS,
        )
        .unwrap_err()
        .to_string();
        assert!(message.contains("not a Go module file"), "{message}");
        file.kind = FileKind::GoZip {
            module: "example.internal/../../etc".to_string(),
            version: "v1.0.0".to_string(),
        };
        let message = lay_out(&[Verified { file: &file, path }], root.path(), &LIMITS)
            .unwrap_err()
            .to_string();
        assert!(message.contains("starts or ends with a dot"), "{message}");
        assert!(tree(root.path()).is_empty());
    }
}
