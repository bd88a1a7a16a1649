//! What a base image holds, as far as an SBOM can say without running it: the distribution
//! its `os-release` names, and the Debian packages its dpkg status file records as installed.
//!
//! Parsing only. The bytes come from the engine (`sandbox::Engine::read_image_files`) through
//! `ops::image_contents`, which also caches the result; nothing here touches an image or the
//! store. Nothing is guessed either: a package is listed only when dpkg recorded it as
//! installed, and a status file this parser cannot read is an error naming the line, never a
//! shorter list.

use serde::{Deserialize, Serialize};

use crate::error::{ExitCode, Failure};
use crate::lockfile::purl_escape;

/// Where dpkg keeps the state of every package it knows of.
pub const DPKG_STATUS: &str = "/var/lib/dpkg/status";
/// Where os-release(5) puts the distribution's identification (often a symlink to
/// [`OS_RELEASE_FALLBACK`]).
pub const OS_RELEASE: &str = "/etc/os-release";
/// The file os-release(5) says to read when [`OS_RELEASE`] is not there.
pub const OS_RELEASE_FALLBACK: &str = "/usr/lib/os-release";

/// The purl namespace of a package when the image has no os-release to name its vendor.
const DEFAULT_NAMESPACE: &str = "debian";

/// What an image holds: its distribution, if it says, and its installed Debian packages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageContents {
    /// `None` when the image has no os-release file.
    pub os: Option<OsRelease>,
    /// Sorted by name, then architecture; empty when the image has no dpkg status file.
    pub packages: Vec<DebPackage>,
}

/// The fields of os-release(5) an SBOM uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsRelease {
    /// `ID`: `debian`, `ubuntu`, ...
    pub id: String,
    /// `VERSION_ID`: `12`; rolling releases (Debian's testing, sid) have none.
    pub version_id: Option<String>,
    /// `PRETTY_NAME`: `Debian GNU/Linux 12 (bookworm)`.
    pub pretty_name: Option<String>,
}

/// One package dpkg records as installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DebPackage {
    pub name: String,
    /// As dpkg writes it, epoch included: `1:2.38.1-5+deb12u3`.
    pub version: String,
    /// `amd64`, `arm64`, `all`, ...
    pub architecture: String,
    /// The source package, when the status names one (`Source:`); `None` means the source
    /// package has the binary package's own name and version.
    pub source: Option<String>,
    /// The source package's version: the one in `Source: name (version)`, else the package's.
    pub source_version: Option<String>,
}

impl ImageContents {
    /// Parses an image's dpkg status file and os-release file, each `None` when the image has
    /// no such file.
    pub fn parse(
        dpkg_status: Option<&[u8]>,
        os_release: Option<&[u8]>,
    ) -> Result<ImageContents, ImageContentsError> {
        let os = os_release.map(parse_os_release).transpose()?;
        let mut packages = match dpkg_status {
            Some(status) => parse_dpkg_status(status)?,
            None => Vec::new(),
        };
        packages.sort_by(|a, b| {
            (a.name.as_str(), a.architecture.as_str())
                .cmp(&(b.name.as_str(), b.architecture.as_str()))
        });
        Ok(ImageContents { os, packages })
    }
}

impl DebPackage {
    /// The package's purl: `pkg:deb/<ID>/<name>@<version>?arch=<arch>&distro=<ID>-<VERSION_ID>`.
    /// The namespace is the os-release `ID` (`debian` when the image has no os-release); the
    /// `distro` qualifier is there only when the os-release has a `VERSION_ID`. Every part is
    /// percent-encoded by the one purl encoder of the crate (`lockfile::purl_escape`), so an
    /// epoch's `:` stays and a `+` is `%2B`; qualifiers are in key order.
    pub fn purl(&self, os: Option<&OsRelease>) -> String {
        let namespace = os.map_or(DEFAULT_NAMESPACE, |os| os.id.as_str());
        let mut purl = format!(
            "pkg:deb/{}/{}@{}?arch={}",
            purl_escape(namespace),
            purl_escape(&self.name),
            purl_escape(&self.version),
            purl_escape(&self.architecture),
        );
        if let Some(os) = os
            && let Some(version_id) = &os.version_id
        {
            purl.push_str("&distro=");
            purl.push_str(&purl_escape(&format!("{}-{version_id}", os.id)));
        }
        purl
    }
}

/// A dpkg status or os-release file this parser cannot read: which file, which line, what was
/// expected and what was found. Line numbers count from 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageContentsError {
    #[error(
        "dpkg status line {line}: expected `Field: value`, a continuation line starting with a space or tab, or an empty line between stanzas; found `{found}`"
    )]
    StatusLine { line: usize, found: String },
    #[error(
        "dpkg status line {line}: a continuation line (starting with a space or tab) opens a stanza: there is no field before it to continue"
    )]
    StatusContinuationFirst { line: usize },
    #[error("dpkg status line {line}: field `{field}` appears twice in one stanza")]
    StatusDuplicateField { line: usize, field: String },
    #[error("dpkg status line {line}: the stanza that starts here has no `Package` field")]
    StatusNoPackage { line: usize },
    #[error(
        "dpkg status line {line}: package `{package}` is installed but its stanza (which starts here) has no `{field}` field"
    )]
    StatusMissingField {
        line: usize,
        package: String,
        field: &'static str,
    },
    #[error(
        "dpkg status line {line}: expected `Source: name` or `Source: name (version)`, found `Source: {found}`"
    )]
    StatusSource { line: usize, found: String },
    #[error(
        "os-release line {line}: expected `KEY=value` (a letter or `_`, then letters, digits or `_`, then `=`), a `#` comment or an empty line; found `{found}`"
    )]
    OsReleaseLine { line: usize, found: String },
    #[error("os-release line {line}: the value of `{key}` opens a {quote} quote that never closes")]
    OsReleaseUnclosedQuote {
        line: usize,
        key: String,
        quote: &'static str,
    },
    #[error(
        "os-release line {line}: the value of `{key}` goes on after its closing quote: `{found}`"
    )]
    OsReleaseAfterQuote {
        line: usize,
        key: String,
        found: String,
    },
    #[error("os-release has no `ID=` line (or an empty one): os-release(5) requires it")]
    OsReleaseNoId,
}

impl ImageContentsError {
    /// Whether the error is in the dpkg status file (else in the os-release file).
    pub fn is_in_dpkg_status(&self) -> bool {
        matches!(
            self,
            ImageContentsError::StatusLine { .. }
                | ImageContentsError::StatusContinuationFirst { .. }
                | ImageContentsError::StatusDuplicateField { .. }
                | ImageContentsError::StatusNoPackage { .. }
                | ImageContentsError::StatusMissingField { .. }
                | ImageContentsError::StatusSource { .. }
        )
    }
}

impl Failure for ImageContentsError {
    fn exit_code(&self) -> ExitCode {
        // The image is the user's input.
        ExitCode::BadInput
    }
}

/// One field of a stanza: its name as written, its value (continuation lines joined with
/// `\n`), and its line.
struct Field {
    name: String,
    value: String,
    line: usize,
}

/// The installed packages of a dpkg status file: RFC 822-style stanzas separated by empty
/// lines (or lines of only spaces and tabs), fields `Name: value`, continuation lines starting
/// with a space or tab. Field names are matched without regard to case, as dpkg does.
fn parse_dpkg_status(bytes: &[u8]) -> Result<Vec<DebPackage>, ImageContentsError> {
    let text = String::from_utf8_lossy(bytes);
    let mut packages = Vec::new();
    let mut stanza: Vec<Field> = Vec::new();
    let mut start = 0;
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        if line.trim_matches([' ', '\t']).is_empty() {
            if !stanza.is_empty() {
                packages.extend(installed_package(&std::mem::take(&mut stanza), start)?);
            }
            continue;
        }
        if line.starts_with([' ', '\t']) {
            let Some(field) = stanza.last_mut() else {
                return Err(ImageContentsError::StatusContinuationFirst { line: number });
            };
            field.value.push('\n');
            field.value.push_str(line.trim_start_matches([' ', '\t']));
            continue;
        }
        let Some((name, value)) = line.split_once(':').filter(|(name, _)| is_field_name(name))
        else {
            return Err(ImageContentsError::StatusLine {
                line: number,
                found: line.to_string(),
            });
        };
        if stanza.is_empty() {
            start = number;
        }
        if stanza
            .iter()
            .any(|field| field.name.eq_ignore_ascii_case(name))
        {
            return Err(ImageContentsError::StatusDuplicateField {
                line: number,
                field: name.to_string(),
            });
        }
        stanza.push(Field {
            name: name.to_string(),
            value: value.trim_matches([' ', '\t']).to_string(),
            line: number,
        });
    }
    if !stanza.is_empty() {
        packages.extend(installed_package(&stanza, start)?);
    }
    Ok(packages)
}

/// A field name of deb822(5): printable ASCII but space and `:`, not starting with `#` or `-`.
fn is_field_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(['#', '-'])
        && name
            .bytes()
            .all(|byte| byte.is_ascii_graphic() && byte != b':')
}

/// The package of the stanza that starts at line `start`, if dpkg records it as installed
/// (`Status: install ok installed`, or `hold ok installed` for one held at its version).
fn installed_package(
    stanza: &[Field],
    start: usize,
) -> Result<Option<DebPackage>, ImageContentsError> {
    let get = |name: &str| {
        stanza
            .iter()
            .find(|field| field.name.eq_ignore_ascii_case(name))
    };
    let name = get("Package")
        .map(|package| first_line(&package.value))
        .filter(|name| !name.is_empty())
        .ok_or(ImageContentsError::StatusNoPackage { line: start })?;
    let installed = get("Status").is_some_and(|status| {
        let words: Vec<&str> = status.value.split_whitespace().collect();
        matches!(words.as_slice(), ["install" | "hold", "ok", "installed"])
    });
    if !installed {
        return Ok(None);
    }
    let required = |field: &'static str| {
        get(field)
            .map(|found| first_line(&found.value))
            .filter(|value| !value.is_empty())
            .ok_or_else(|| ImageContentsError::StatusMissingField {
                line: start,
                package: name.clone(),
                field,
            })
    };
    let version = required("Version")?;
    let architecture = required("Architecture")?;
    let (source, source_version) = match get("Source") {
        None => (None, None),
        Some(field) => {
            let (source, source_version) =
                parse_source(&first_line(&field.value)).ok_or_else(|| {
                    ImageContentsError::StatusSource {
                        line: field.line,
                        found: field.value.clone(),
                    }
                })?;
            (
                Some(source),
                Some(source_version.unwrap_or_else(|| version.clone())),
            )
        }
    };
    Ok(Some(DebPackage {
        name,
        version,
        architecture,
        source,
        source_version,
    }))
}

fn first_line(value: &str) -> String {
    value.lines().next().unwrap_or_default().trim().to_string()
}

/// `name` or `name (version)`: the name, and the version when given.
fn parse_source(value: &str) -> Option<(String, Option<String>)> {
    let (name, version) = match value.split_once('(') {
        None => (value.trim(), None),
        Some((name, rest)) => {
            let version = rest.strip_suffix(')')?.trim();
            if version.is_empty() || version.contains(['(', ')']) {
                return None;
            }
            (name.trim(), Some(version.to_string()))
        }
    };
    if name.is_empty() || name.contains(char::is_whitespace) {
        return None;
    }
    Some((name.to_string(), version))
}

/// The fields of an os-release file that an SBOM uses. `KEY=value` lines, `#` comments and
/// empty lines; a value may be in double quotes (where a backslash escapes `\`, `"`, `$` and
/// `` ` ``, as in a shell) or single quotes (taken as written), or bare (a backslash escapes
/// the next character).
fn parse_os_release(bytes: &[u8]) -> Result<OsRelease, ImageContentsError> {
    let text = String::from_utf8_lossy(bytes);
    let mut id = None;
    let mut version_id = None;
    let mut pretty_name = None;
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let Some((key, raw)) = trimmed
            .split_once('=')
            .filter(|(key, _)| is_shell_name(key))
        else {
            return Err(ImageContentsError::OsReleaseLine {
                line: number,
                found: line.to_string(),
            });
        };
        let value = unquote(raw, key, number)?;
        match key {
            "ID" => id = Some(value),
            "VERSION_ID" => version_id = Some(value),
            "PRETTY_NAME" => pretty_name = Some(value),
            _ => {}
        }
    }
    let id = id
        .filter(|id| !id.is_empty())
        .ok_or(ImageContentsError::OsReleaseNoId)?;
    Ok(OsRelease {
        id,
        version_id: version_id.filter(|version| !version.is_empty()),
        pretty_name: pretty_name.filter(|name| !name.is_empty()),
    })
}

/// A shell variable name: a letter or `_`, then letters, digits or `_`.
fn is_shell_name(key: &str) -> bool {
    let mut bytes = key.bytes();
    bytes
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == b'_')
        && bytes.all(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
}

/// The value of an os-release assignment, its quotes and escapes removed.
fn unquote(raw: &str, key: &str, line: usize) -> Result<String, ImageContentsError> {
    let mut chars = raw.chars();
    let (value, rest) = match chars.next() {
        Some('"') => {
            let mut value = String::new();
            loop {
                match chars.next() {
                    None => {
                        return Err(ImageContentsError::OsReleaseUnclosedQuote {
                            line,
                            key: key.to_string(),
                            quote: "double",
                        });
                    }
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(escaped @ ('\\' | '"' | '$' | '`')) => value.push(escaped),
                        Some(other) => {
                            value.push('\\');
                            value.push(other);
                        }
                        None => {
                            return Err(ImageContentsError::OsReleaseUnclosedQuote {
                                line,
                                key: key.to_string(),
                                quote: "double",
                            });
                        }
                    },
                    Some(other) => value.push(other),
                }
            }
            (value, chars.as_str())
        }
        Some('\'') => {
            let rest = chars.as_str();
            let Some((value, after)) = rest.split_once('\'') else {
                return Err(ImageContentsError::OsReleaseUnclosedQuote {
                    line,
                    key: key.to_string(),
                    quote: "single",
                });
            };
            (value.to_string(), after)
        }
        _ => {
            let mut value = String::new();
            let mut bare = raw.chars();
            while let Some(next) = bare.next() {
                match next {
                    '\\' => value.extend(bare.next()),
                    other => value.push(other),
                }
            }
            return Ok(value);
        }
    };
    if !rest.trim().is_empty() {
        return Err(ImageContentsError::OsReleaseAfterQuote {
            line,
            key: key.to_string(),
            found: rest.to_string(),
        });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stanzas as they are in this machine's `/var/lib/dpkg/status` (Debian 12): `bsdutils`
    /// (an epoch, `Source: name (version)`, a multi-line Description), `libgcc-s1` (`Source:`
    /// with a name only), `ca-certificates` (arch `all`, a Description with a ` .` line).
    /// `adduser`'s stanza is a real one (its Description cut short) whose Status was changed
    /// to what `apt remove` leaves (`deinstall ok config-files`): it must not be listed.
    const STATUS: &str = "\
Package: libgcc-s1
Protected: yes
Status: install ok installed
Priority: optional
Section: libs
Installed-Size: 140
Maintainer: Debian GCC Maintainers <debian-gcc@lists.debian.org>
Architecture: amd64
Multi-Arch: same
Source: gcc-12
Version: 12.2.0-14+deb12u1
Replaces: libgcc1 (<< 1:10)
Provides: libgcc1 (= 1:12.2.0-14+deb12u1)
Depends: gcc-12-base (= 12.2.0-14+deb12u1), libc6 (>= 2.35)
Description: GCC support library
 Shared version of the support library, a library of internal subroutines
 that GCC uses to overcome shortcomings of particular machines, or
 special needs for some languages.
Homepage: http://gcc.gnu.org/
Important: yes

Package: bsdutils
Essential: yes
Status: install ok installed
Priority: required
Section: utils
Installed-Size: 355
Maintainer: util-linux packagers <util-linux@packages.debian.org>
Architecture: amd64
Multi-Arch: foreign
Source: util-linux (2.38.1-5+deb12u3)
Version: 1:2.38.1-5+deb12u3
Pre-Depends: libc6 (>= 2.34), libsystemd0
Recommends: bsdextrautils
Description: basic utilities from 4.4BSD-Lite
 This package contains the bare minimum of BSD utilities needed for a Debian
 system: logger, renice, script, scriptlive, scriptreplay and wall. The
 remaining standard BSD utilities are provided by bsdextrautils.
Homepage: https://www.kernel.org/pub/linux/utils/util-linux/

Package: adduser
Status: deinstall ok config-files
Priority: important
Section: admin
Installed-Size: 686
Maintainer: Debian Adduser Developers <adduser@packages.debian.org>
Architecture: all
Multi-Arch: foreign
Version: 3.134
Depends: passwd
Suggests: liblocale-gettext-perl, perl, cron, quota
Conffiles:
 /etc/adduser.conf cc3493ecd2d09837ffdcc3e25fdfff18
 /etc/deluser.conf 11a06baf8245fd8d690b99024d228c1f
Description: add and remove users and groups
 This package includes the 'adduser' and 'deluser' commands for creating
 and removing users.
 .
  - 'adduser' creates new users and groups and adds existing users to
    existing groups;
  - 'deluser' removes users and groups and removes users from a given
    group.

Package: ca-certificates
Status: install ok installed
Priority: standard
Section: misc
Installed-Size: 387
Maintainer: Julien Cristau <jcristau@debian.org>
Architecture: all
Multi-Arch: foreign
Version: 20230311+deb12u1
Depends: openssl (>= 1.1.1), debconf (>= 0.5) | debconf-2.0
Breaks: ca-certificates-java (<< 20121112+nmu1)
Enhances: openssl
Description: Common CA certificates
 Contains the certificate authorities shipped with Mozilla's browser to allow
 SSL-based applications to check for the authenticity of SSL connections.
 .
 Please note that Debian can neither confirm nor deny whether the
 certificate authorities whose certificates are included in this package
 have in any way been audited for trustworthiness or RFC 3647 compliance.
 Full responsibility to assess them belongs to the local system
 administrator.
";

    /// This machine's `/etc/os-release` (Debian 12).
    const DEBIAN_12: &str = r#"PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
SUPPORT_URL="https://www.debian.org/support"
BUG_REPORT_URL="https://bugs.debian.org/"
"#;

    fn package(name: &str, version: &str, architecture: &str) -> DebPackage {
        DebPackage {
            name: name.to_string(),
            version: version.to_string(),
            architecture: architecture.to_string(),
            source: None,
            source_version: None,
        }
    }

    fn debian_12() -> OsRelease {
        OsRelease {
            id: "debian".to_string(),
            version_id: Some("12".to_string()),
            pretty_name: Some("Debian GNU/Linux 12 (bookworm)".to_string()),
        }
    }

    fn status_error(status: &str) -> String {
        ImageContents::parse(Some(status.as_bytes()), None)
            .unwrap_err()
            .to_string()
    }

    fn os_release(text: &str) -> Result<OsRelease, ImageContentsError> {
        ImageContents::parse(None, Some(text.as_bytes())).map(|contents| contents.os.unwrap())
    }

    #[test]
    fn a_real_status_gives_the_installed_packages_sorted_and_drops_the_removed_one() {
        let contents =
            ImageContents::parse(Some(STATUS.as_bytes()), Some(DEBIAN_12.as_bytes())).unwrap();
        assert_eq!(contents.os, Some(debian_12()));
        assert_eq!(
            contents.packages,
            [
                DebPackage {
                    source: Some("util-linux".to_string()),
                    source_version: Some("2.38.1-5+deb12u3".to_string()),
                    ..package("bsdutils", "1:2.38.1-5+deb12u3", "amd64")
                },
                package("ca-certificates", "20230311+deb12u1", "all"),
                DebPackage {
                    source: Some("gcc-12".to_string()),
                    // `Source:` without a version: the source's is the package's.
                    source_version: Some("12.2.0-14+deb12u1".to_string()),
                    ..package("libgcc-s1", "12.2.0-14+deb12u1", "amd64")
                },
            ]
        );
    }

    #[test]
    fn held_packages_count_as_installed_and_half_installed_ones_do_not() {
        let status = "Package: a\nStatus: hold ok installed\nVersion: 1\nArchitecture: all\n\n\
                      Package: b\nStatus: install ok half-configured\nVersion: 1\nArchitecture: all\n\n\
                      Package: c\nStatus: install reinstreq installed\nVersion: 1\nArchitecture: all\n\n\
                      Package: d\nStatus: purge ok not-installed\n";
        let contents = ImageContents::parse(Some(status.as_bytes()), None).unwrap();
        assert_eq!(contents.packages, [package("a", "1", "all")]);
        assert_eq!(contents.os, None);
    }

    #[test]
    fn packages_sort_by_name_then_architecture_and_field_names_ignore_case() {
        let status = "package: zlib1g\nstatus: install ok installed\nversion: 1:1.2.13\narchitecture: i386\n\
                      \n  \t\n\
                      Package: zlib1g\nStatus: install ok installed\nVersion: 1:1.2.13\nArchitecture: amd64\n\n\
                      Package: adduser\nStatus: install ok installed\nVersion: 3.134\nArchitecture: all";
        let names: Vec<(String, String)> = ImageContents::parse(Some(status.as_bytes()), None)
            .unwrap()
            .packages
            .into_iter()
            .map(|package| (package.name, package.architecture))
            .collect();
        assert_eq!(
            names,
            [
                ("adduser".to_string(), "all".to_string()),
                ("zlib1g".to_string(), "amd64".to_string()),
                ("zlib1g".to_string(), "i386".to_string()),
            ]
        );
    }

    #[test]
    fn no_files_give_nothing() {
        let contents = ImageContents::parse(None, None).unwrap();
        assert_eq!(
            contents,
            ImageContents {
                os: None,
                packages: Vec::new()
            }
        );
        assert_eq!(ImageContents::parse(Some(b""), None).unwrap().packages, []);
    }

    #[test]
    fn a_line_without_a_colon_is_an_error_naming_its_line() {
        let status = "Package: a\nStatus: install ok installed\nVersion: 1\nArchitecture: all\n\nPackage: b\nthis is not a field\n";
        let error = ImageContents::parse(Some(status.as_bytes()), None).unwrap_err();
        assert!(error.is_in_dpkg_status());
        assert_eq!(
            error.to_string(),
            "dpkg status line 7: expected `Field: value`, a continuation line starting with a space or tab, or an empty line between stanzas; found `this is not a field`"
        );
        // A colon after a space is not a field name either.
        assert!(
            status_error("Package: a\nnot a: field\n").starts_with("dpkg status line 2: expected"),
        );
    }

    #[test]
    fn a_stanza_without_package_is_an_error_naming_where_it_starts() {
        let status = "Package: a\nStatus: install ok installed\nVersion: 1\nArchitecture: all\n\n\nStatus: install ok installed\nVersion: 1\n";
        assert_eq!(
            status_error(status),
            "dpkg status line 7: the stanza that starts here has no `Package` field"
        );
        // Even a stanza that is not installed needs a name.
        assert_eq!(
            status_error("Status: deinstall ok config-files\n"),
            "dpkg status line 1: the stanza that starts here has no `Package` field"
        );
    }

    #[test]
    fn an_installed_package_without_version_or_architecture_is_an_error() {
        assert_eq!(
            status_error("\nPackage: a\nStatus: install ok installed\nArchitecture: all\n"),
            "dpkg status line 2: package `a` is installed but its stanza (which starts here) has no `Version` field"
        );
        assert_eq!(
            status_error("Package: a\nStatus: install ok installed\nVersion: 1\nArchitecture:\n"),
            "dpkg status line 1: package `a` is installed but its stanza (which starts here) has no `Architecture` field"
        );
        // Not installed: what dpkg keeps of it need not say.
        assert_eq!(
            ImageContents::parse(Some(b"Package: a\nStatus: purge ok not-installed\n"), None)
                .unwrap()
                .packages,
            []
        );
    }

    #[test]
    fn a_continuation_first_a_duplicate_field_and_a_bad_source_are_errors() {
        assert_eq!(
            status_error(" continued\nPackage: a\n"),
            "dpkg status line 1: a continuation line (starting with a space or tab) opens a stanza: there is no field before it to continue"
        );
        assert_eq!(
            status_error("Package: a\nVersion: 1\nversion: 2\n"),
            "dpkg status line 3: field `version` appears twice in one stanza"
        );
        assert_eq!(
            status_error(
                "Package: a\nStatus: install ok installed\nVersion: 1\nArchitecture: all\nSource: b (2\n"
            ),
            "dpkg status line 5: expected `Source: name` or `Source: name (version)`, found `Source: b (2`"
        );
    }

    #[test]
    fn os_release_values_may_be_quoted_and_escaped() {
        let parsed = os_release(
            "# a comment\n\nID='ubuntu'\nVERSION_ID=\"24.04\"\nPRETTY_NAME=\"Ubuntu \\\"Noble\\\" \\$5 \\\\ \\n\"\n",
        )
        .unwrap();
        assert_eq!(
            parsed,
            OsRelease {
                id: "ubuntu".to_string(),
                version_id: Some("24.04".to_string()),
                // `\n` is no escape in double quotes: the backslash stays.
                pretty_name: Some(r#"Ubuntu "Noble" $5 \ \n"#.to_string()),
            }
        );
        // Single quotes take backslashes as written; a bare value may escape a space.
        let parsed = os_release("ID=debian\nPRETTY_NAME='a \\\" b'\nVERSION_ID=1\\ 2\n").unwrap();
        assert_eq!(parsed.pretty_name.as_deref(), Some(r#"a \" b"#));
        assert_eq!(parsed.version_id.as_deref(), Some("1 2"));
        // Debian's testing has no VERSION_ID.
        assert_eq!(os_release("ID=debian\n").unwrap().version_id, None);
    }

    #[test]
    fn os_release_errors_name_the_line() {
        let error = os_release("ID=debian\nthis is not an assignment\n").unwrap_err();
        assert!(!error.is_in_dpkg_status());
        assert_eq!(
            error.to_string(),
            "os-release line 2: expected `KEY=value` (a letter or `_`, then letters, digits or `_`, then `=`), a `#` comment or an empty line; found `this is not an assignment`"
        );
        assert!(
            os_release("1D=debian\n")
                .unwrap_err()
                .to_string()
                .starts_with("os-release line 1: expected `KEY=value`")
        );
        assert_eq!(
            os_release("ID=debian\nPRETTY_NAME=\"Debian\n")
                .unwrap_err()
                .to_string(),
            "os-release line 2: the value of `PRETTY_NAME` opens a double quote that never closes"
        );
        assert_eq!(
            os_release("ID='debian\n").unwrap_err().to_string(),
            "os-release line 1: the value of `ID` opens a single quote that never closes"
        );
        assert_eq!(
            os_release("ID=\"debian\"x\n").unwrap_err().to_string(),
            "os-release line 1: the value of `ID` goes on after its closing quote: `x`"
        );
        for text in ["VERSION_ID=12\n", "ID=\nVERSION_ID=12\n", "ID=\"\"\n"] {
            assert_eq!(
                os_release(text).unwrap_err().to_string(),
                "os-release has no `ID=` line (or an empty one): os-release(5) requires it",
                "{text}"
            );
        }
    }

    #[test]
    fn purls_encode_the_epoch_and_plus_and_name_the_distro() {
        let os = debian_12();
        assert_eq!(
            package("bsdutils", "1:2.38.1-5+deb12u3", "amd64").purl(Some(&os)),
            "pkg:deb/debian/bsdutils@1:2.38.1-5%2Bdeb12u3?arch=amd64&distro=debian-12"
        );
        assert_eq!(
            package("libstdc++6", "12.2.0-14~bpo1", "all").purl(Some(&os)),
            "pkg:deb/debian/libstdc%2B%2B6@12.2.0-14~bpo1?arch=all&distro=debian-12"
        );
    }

    #[test]
    fn a_purl_without_os_release_is_debian_and_without_version_id_has_no_distro() {
        let tzdata = package("tzdata", "2025b-0+deb12u2", "all");
        assert_eq!(
            tzdata.purl(None),
            "pkg:deb/debian/tzdata@2025b-0%2Bdeb12u2?arch=all"
        );
        let ubuntu = OsRelease {
            id: "ubuntu".to_string(),
            version_id: None,
            pretty_name: None,
        };
        assert_eq!(
            tzdata.purl(Some(&ubuntu)),
            "pkg:deb/ubuntu/tzdata@2025b-0%2Bdeb12u2?arch=all"
        );
    }

    #[test]
    fn contents_round_trip_through_json() {
        let contents =
            ImageContents::parse(Some(STATUS.as_bytes()), Some(DEBIAN_12.as_bytes())).unwrap();
        let json = serde_json::to_vec(&contents).unwrap();
        assert_eq!(
            serde_json::from_slice::<ImageContents>(&json).unwrap(),
            contents
        );
    }
}
