//! OCI registries (the distribution API v2): pushing an image layout by digest and pulling a
//! base image by manifest digest, with docker's credentials.
//!
//! - [`Reference`] parses `host[:port]/repository[:tag][@sha256:...]`.
//! - [`client::Client`] speaks HTTP to one registry: HTTPS (rustls; the system's roots, or
//!   `SSL_CERT_FILE`, plus any `--registry-ca`), and for loopback hosts (`127.0.0.0/8`, `::1`,
//!   `localhost`) HTTPS first with a fall-back to plain HTTP when no TLS connection can be made,
//!   as docker treats them. It answers `WWW-Authenticate` challenges: Basic, and the Bearer
//!   token flow, reusing tokens across its requests.
//! - [`auth`] finds credentials as docker does (`$DOCKER_CONFIG/config.json`, credential
//!   helpers) and parses challenges; `sealroom login` writes the same file.
//! - [`pull`] downloads a base image's manifest, config and layers into the store, each verified
//!   against its digest as it streams.
//! - [`referrers`] publishes and finds an image's attestations: cosign's `sha256-<hex>.att` tag
//!   and OCI 1.1 referrers (with the fallback tag `sha256-<hex>`).
//!
//! Nothing here touches the engine; `ops::push` composes it with the layout on disk.

pub mod auth;
pub mod client;
pub mod pull;
pub mod referrers;

use std::fmt;

use crate::error::{ExitCode, Failure};

/// What the command line says about every registry connection (set once, by `main`).
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// PEM files of CA certificates trusted for registries besides the system's roots (or
    /// `SSL_CERT_FILE`'s, which replace them): `--registry-ca` / `SEALROOM_REGISTRY_CA`.
    pub ca_files: Vec<std::path::PathBuf>,
}

static SETTINGS: std::sync::RwLock<Option<Settings>> = std::sync::RwLock::new(None);

/// Sets what every [`client::Client`] made after this call uses.
pub fn configure(settings: Settings) {
    *SETTINGS
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(settings);
}

/// The settings [`configure`] set, or the defaults.
pub fn settings() -> Settings {
    SETTINGS
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone()
        .unwrap_or_default()
}

/// Docker Hub's registry, for a reference without a host.
pub const DOCKER_HUB: &str = "registry-1.docker.io";

/// A registry reference: where, which repository, and an optional tag and digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// `host[:port]`.
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl Reference {
    /// Parses `host[:port]/name[:tag][@sha256:<hex>]`. Without a host (`a/b`, `b`), the
    /// registry is Docker Hub and a one-component name gets `library/`.
    pub fn parse(text: &str) -> Result<Self, RegistryError> {
        let invalid = |reason: &str| RegistryError::InvalidReference {
            reference: text.to_string(),
            reason: reason.to_string(),
        };
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) => {
                if digest.parse::<crate::digest::BlobDigest>().is_err() {
                    return Err(invalid("the digest must be `sha256:<64 lower-case hex>`"));
                }
                (rest, Some(digest.to_string()))
            }
            None => (text, None),
        };
        let (registry, path) = match rest.split_once('/') {
            Some((first, path))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), path.to_string())
            }
            _ => (DOCKER_HUB.to_string(), rest.to_string()),
        };
        let (repository, tag) = match path.rsplit_once(':') {
            Some((repository, tag)) if !tag.contains('/') => {
                (repository.to_string(), Some(tag.to_string()))
            }
            _ => (path, None),
        };
        crate::image::RepositoryName::parse(&repository)
            .map_err(|error| invalid(&error.to_string()))?;
        if let Some(tag) = &tag {
            let valid = !tag.is_empty()
                && tag.len() <= 128
                && !tag.starts_with(['.', '-'])
                && tag
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
            if !valid {
                return Err(invalid(
                    "a tag is up to 128 letters, digits, `_`, `.` and `-`",
                ));
            }
        }
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The reference without tag or digest: `host/repository`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// Whether `registry` (`host[:port]`) is on this machine, so plain HTTP is used: the host must
/// be an IP address in 127.0.0.0/8 or `::1` (`[::1]` with a port), or exactly `localhost`
/// (which the host's own resolver answers, as Docker treats it). A name that merely starts
/// like one (`127.0.0.1.nip.io`, `127.evil.example`, `localhost.example`) is not loopback: it
/// resolves through DNS to wherever its owner likes.
pub fn is_loopback(registry: &str) -> bool {
    let host = match registry.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            // `[v6]` or `[v6]:port`, nothing else after the bracket.
            Some((host, after)) if after.is_empty() || after.starts_with(':') => host,
            _ => return false,
        },
        None => match registry.split_once(':') {
            Some((host, port)) if !port.contains(':') => host,
            Some(_) => registry, // a bare IPv6 address without brackets
            None => registry,
        },
    };
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<std::net::IpAddr>()
        .is_ok_and(|address| address.is_loopback())
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("invalid image reference `{reference}`: {reason}")]
    InvalidReference { reference: String, reason: String },

    #[error(
        "cannot reach the registry at {url}: {detail}\n  hint: check that the registry runs and the host and port are right"
    )]
    Unreachable { url: String, detail: String },

    #[error(
        "the registry refused {action}: HTTP {status} from {url}{}",
        body_text(body)
    )]
    Refused {
        action: String,
        url: String,
        status: u16,
        body: String,
    },

    #[error(transparent)]
    Denied(Box<Denial>),

    #[error(transparent)]
    TokenRefused(Box<TokenRefusal>),

    #[error(
        "the registry {registry} sends credentials to the token realm {realm}, which is plain HTTP on a host that is not this machine; sealroom does not send {who} there\n  hint: the registry's `auth.token.realm` must be an https:// URL (plain http:// only on 127.0.0.1 or localhost)"
    )]
    InsecureRealm {
        registry: String,
        realm: String,
        who: String,
    },

    #[error(
        "TLS with the registry at {url} failed: {detail}\n  hint: for a registry with a private CA, pass its certificate with --registry-ca FILE (SEALROOM_REGISTRY_CA) or SSL_CERT_FILE"
    )]
    Tls { url: String, detail: String },

    #[error(
        "cannot use `{}` as registry CA certificates: {detail}\n  hint: --registry-ca (SEALROOM_REGISTRY_CA) takes a PEM file of one or more certificates",
        path.display()
    )]
    CaFile {
        path: std::path::PathBuf,
        detail: String,
    },

    #[error(
        "cannot use docker's configuration `{}`: {detail}\n  hint: fix the file, or point DOCKER_CONFIG at a directory with a valid config.json",
        path.display()
    )]
    DockerConfig {
        path: std::path::PathBuf,
        detail: String,
    },

    #[error("cannot write docker's configuration `{}`: {detail}", path.display())]
    WriteDockerConfig {
        path: std::path::PathBuf,
        detail: String,
    },

    #[error(
        "the credential helper `{program}` cannot be used: {detail}\n  hint: install it on the PATH, or remove `credsStore` / `credHelpers` from docker's config.json"
    )]
    CredentialHelper { program: String, detail: String },

    #[error(
        "no credentials to log in to {registry} with\n  hint: pass -u USER and the password on stdin with --password-stdin"
    )]
    NoCredentials { registry: String },

    #[error(
        "{what} from {url} has sha256 {found}, expected {expected}: the registry sent something other than what was pinned"
    )]
    DigestMismatch {
        what: String,
        url: String,
        expected: String,
        found: String,
    },

    #[error(
        "{what} from {url} is larger than its limit of {limit} bytes: {detail}; nothing was kept"
    )]
    TooLarge {
        what: String,
        url: String,
        limit: u64,
        detail: String,
    },

    #[error("{what} from {url} is not usable: {detail}")]
    Unsupported {
        what: String,
        url: String,
        detail: String,
    },

    #[error("cannot read `{path}`: {source}")]
    ReadFile {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "{what} of `{reference}` is not in the store, and --offline opens no socket\n  hint: build once without --offline to pull the image into the store"
    )]
    Offline { what: String, reference: String },

    #[error("cannot write to the store: {detail}")]
    Store { detail: String },
}

/// A registry's refusal of a request after sealroom authenticated, or without credentials.
#[derive(Debug, thiserror::Error)]
#[error(
    "the registry {registry} refused {action} (HTTP {status} from {url}): {words}\n  sealroom sent {who}\n  hint: log in with `sealroom login {registry}` (or `docker login {registry}`); credentials are read from {config} (DOCKER_CONFIG names its directory)"
)]
pub struct Denial {
    pub registry: String,
    pub action: String,
    pub url: String,
    pub status: u16,
    /// The registry's own words: its JSON error's code and message, the challenge's error.
    pub words: String,
    /// Which credentials were sent (never the secret), or that there were none.
    pub who: String,
    pub config: String,
}

/// A token server's refusal to hand out a token.
#[derive(Debug, thiserror::Error)]
#[error(
    "the token server {realm} of registry {registry} refused {who}: HTTP {status}: {words}\n  hint: log in with `sealroom login {registry}` (or `docker login {registry}`); credentials are read from {config} (DOCKER_CONFIG names its directory)"
)]
pub struct TokenRefusal {
    pub registry: String,
    pub realm: String,
    pub status: u16,
    pub words: String,
    pub who: String,
    pub config: String,
}

fn body_text(body: &str) -> String {
    let body = body.trim();
    if body.is_empty() {
        String::new()
    } else {
        format!(": {}", body.chars().take(300).collect::<String>())
    }
}

impl Failure for RegistryError {
    fn exit_code(&self) -> ExitCode {
        match self {
            RegistryError::DigestMismatch { .. } => ExitCode::VerificationFailed,
            _ => ExitCode::BadInput,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_like_docker() {
        let reference = Reference::parse("127.0.0.1:5000/acceptance/img:1").unwrap();
        assert_eq!(reference.registry, "127.0.0.1:5000");
        assert_eq!(reference.repository, "acceptance/img");
        assert_eq!(reference.tag.as_deref(), Some("1"));
        let digest = format!("sha256:{}", "a".repeat(64));
        let reference = Reference::parse(&format!("localhost/x@{digest}")).unwrap();
        assert_eq!(reference.registry, "localhost");
        assert_eq!(reference.digest.as_deref(), Some(digest.as_str()));
        assert_eq!(reference.to_string(), format!("localhost/x@{digest}"));
        let hub = Reference::parse("busybox").unwrap();
        assert_eq!(hub.registry, DOCKER_HUB);
        assert_eq!(hub.repository, "library/busybox");
        assert!(Reference::parse("127.0.0.1:5000/Bad").is_err());
        assert!(Reference::parse("127.0.0.1:5000/x@sha256:12").is_err());
    }

    #[test]
    fn loopback_registries_are_plain_http() {
        for host in [
            "127.0.0.1:5000",
            "localhost",
            "localhost:80",
            "[::1]:5000",
            "127.1.2.3",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in [
            "registry.example.org",
            "10.0.0.1:5000",
            "localhost.example:5000",
            // Names that only look like loopback: DNS sends them anywhere.
            "127.evil.example",
            "127.0.0.1.nip.io:5000",
            "127.0.0.1.nip.io",
            "[::1].evil.example",
            "::ffff:10.0.0.1",
            "0.0.0.0:5000",
        ] {
            assert!(!is_loopback(host), "{host}");
        }
    }
}
