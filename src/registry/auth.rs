//! Registry credentials as docker finds them, and the `WWW-Authenticate` challenges registries
//! answer with. What the client sends is decided in [`super::client`]; this module only finds,
//! parses and stores.
//!
//! Where credentials come from, in docker's order: `$DOCKER_CONFIG/config.json` (default
//! `~/.docker/config.json`), then for a registry host
//! 1. `credHelpers[host]`: run `docker-credential-<helper> get`;
//! 2. else `credsStore`: the same with that helper;
//! 3. else the `auths` entry for the host (`auth` = base64 `user:password`, or `username` and
//!    `password`, or `identitytoken`).
//!
//! A helper that answers "credentials not found" (a non-zero exit) means anonymous, as does a
//! host with no entry or no config file at all. Keys of `auths` and `credHelpers` are normalized
//! as docker's `ConvertToHostname` does: a scheme (`http://`, `https://`) and everything from the
//! first `/` are dropped, so `https://host/v1/`, `host/` and `host` are the same registry.
//!
//! Secrets never show: [`Secret`] has no `Display`, and its `Debug` prints `<redacted>`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::RegistryError;

/// A password or token. Never printed: `Debug` says `<redacted>` and there is no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one header or form field that carries it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// What a registry may be shown to prove who the user is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// A user name and password: the Basic scheme, and Basic auth at a token realm.
    Basic { username: String, password: Secret },
    /// An OAuth2 refresh token (docker's `identitytoken`, or a helper's `<token>` user): only
    /// the Bearer flow can use it, with `grant_type=refresh_token`.
    IdentityToken { username: String, token: Secret },
}

impl Credentials {
    /// The user name, which may be shown.
    pub fn username(&self) -> &str {
        match self {
            Credentials::Basic { username, .. } | Credentials::IdentityToken { username, .. } => {
                username
            }
        }
    }

    /// `Basic <base64 user:password>`, when these are a user name and password.
    pub fn basic_header(&self) -> Option<String> {
        match self {
            Credentials::Basic { username, password } => Some(format!(
                "Basic {}",
                BASE64.encode(format!("{username}:{}", password.expose()))
            )),
            Credentials::IdentityToken { .. } => None,
        }
    }
}

/// Credentials and where they were found (for messages: a file and key, or a helper's name).
#[derive(Debug, Clone)]
pub struct Found {
    pub credentials: Credentials,
    pub source: String,
}

/// The directory of docker's client configuration: `$DOCKER_CONFIG`, else `~/.docker`.
pub fn config_dir() -> Option<PathBuf> {
    match std::env::var_os("DOCKER_CONFIG") {
        Some(dir) if !dir.is_empty() => Some(PathBuf::from(dir)),
        _ => std::env::var_os("HOME")
            .filter(|home| !home.is_empty())
            .map(|home| PathBuf::from(home).join(".docker")),
    }
}

/// `config.json` in [`config_dir`].
pub fn config_path() -> Option<PathBuf> {
    config_dir().map(|dir| dir.join("config.json"))
}

/// The host a key of `auths` or `credHelpers` names, as docker's `ConvertToHostname` reads it:
/// without a scheme and without any path (`https://host:5000/v1/` → `host:5000`).
pub fn normalize_key(key: &str) -> &str {
    let rest = key
        .strip_prefix("http://")
        .or_else(|| key.strip_prefix("https://"))
        .unwrap_or(key);
    rest.split_once('/').map_or(rest, |(host, _)| host)
}

/// One `auths` entry, as docker writes it.
#[derive(Debug, Default, serde::Deserialize)]
struct RawAuth {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawConfig {
    #[serde(default)]
    auths: BTreeMap<String, RawAuth>,
    #[serde(default)]
    creds_store: Option<String>,
    #[serde(default)]
    cred_helpers: BTreeMap<String, String>,
}

/// The parts of docker's `config.json` that say where credentials are.
#[derive(Debug, Default)]
pub struct DockerConfig {
    /// The file read (it need not exist).
    pub path: PathBuf,
    raw: RawConfig,
}

impl DockerConfig {
    /// [`config_path`], or nothing (an empty configuration) when there is no home directory.
    pub fn load() -> Result<Self, RegistryError> {
        match config_path() {
            Some(path) => Self::load_from(&path),
            None => Ok(DockerConfig::default()),
        }
    }

    /// The file at `path`; a missing file is an empty configuration, one that is not JSON of
    /// the expected shape is an error naming it.
    pub fn load_from(path: &Path) -> Result<Self, RegistryError> {
        let text = match std::fs::read(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(DockerConfig {
                    path: path.to_path_buf(),
                    raw: RawConfig::default(),
                });
            }
            Err(source) => {
                return Err(RegistryError::ReadFile {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        // An empty file is what some tools leave behind; docker reads it as no configuration.
        if text.iter().all(u8::is_ascii_whitespace) {
            return Ok(DockerConfig {
                path: path.to_path_buf(),
                raw: RawConfig::default(),
            });
        }
        let raw = serde_json::from_slice(&text).map_err(|error| RegistryError::DockerConfig {
            path: path.to_path_buf(),
            detail: json_problem(&error),
        })?;
        Ok(DockerConfig {
            path: path.to_path_buf(),
            raw,
        })
    }

    /// The credential helper for `registry`: `credHelpers[registry]`, else `credsStore`.
    pub fn helper_for(&self, registry: &str) -> Option<&str> {
        let specific = self
            .raw
            .cred_helpers
            .iter()
            .find(|(key, _)| key.as_str() == registry)
            .or_else(|| {
                self.raw
                    .cred_helpers
                    .iter()
                    .find(|(key, _)| normalize_key(key) == registry)
            })
            .map(|(_, helper)| helper.as_str());
        specific
            .or(self.raw.creds_store.as_deref())
            .filter(|helper| !helper.is_empty())
    }

    /// The key of the `auths` entry for `registry`: the exact key, else the first that
    /// normalizes to it.
    fn auths_key(&self, registry: &str) -> Option<&str> {
        if let Some((key, _)) = self.raw.auths.get_key_value(registry) {
            return Some(key);
        }
        self.raw
            .auths
            .keys()
            .find(|key| normalize_key(key) == registry)
            .map(String::as_str)
    }

    /// The credentials in the `auths` entry for `registry`, if it has any.
    pub fn auths_entry(&self, registry: &str) -> Result<Option<Found>, RegistryError> {
        let Some(key) = self.auths_key(registry) else {
            return Ok(None);
        };
        let entry = &self.raw.auths[key];
        let source = format!("the `auths` entry `{key}` of {}", self.path.display());
        let invalid = |detail: &str| RegistryError::DockerConfig {
            path: self.path.clone(),
            detail: format!("`auths.{key}`: {detail}"),
        };
        let (mut username, mut password) = (entry.username.clone(), entry.password.clone());
        if let Some(auth) = entry.auth.as_deref().filter(|auth| !auth.is_empty()) {
            let decoded = BASE64
                .decode(auth.trim())
                .map_err(|_| invalid("`auth` is not base64"))?;
            let decoded =
                String::from_utf8(decoded).map_err(|_| invalid("`auth` is not UTF-8 text"))?;
            let Some((user, pass)) = decoded.split_once(':') else {
                return Err(invalid(
                    "`auth` must be the base64 of `user:password`, and it has no `:`",
                ));
            };
            username = Some(user.to_string());
            password = Some(pass.to_string());
        }
        let username = username.unwrap_or_default();
        let credentials = match (&entry.identitytoken, password) {
            (Some(token), _) if !token.is_empty() => Credentials::IdentityToken {
                username,
                token: Secret::new(token.clone()),
            },
            (_, Some(password)) if !username.is_empty() => Credentials::Basic {
                username,
                password: Secret::new(password),
            },
            _ => return Ok(None),
        };
        Ok(Some(Found {
            credentials,
            source,
        }))
    }

    /// The credentials for `registry`, in docker's order (helper, else `auths`).
    pub async fn credentials_for(&self, registry: &str) -> Result<Option<Found>, RegistryError> {
        match self.helper_for(registry) {
            Some(helper) => helper_get(helper, registry).await,
            None => self.auths_entry(registry),
        }
    }
}

/// What a credential helper prints for `get`.
#[derive(serde::Deserialize)]
struct HelperAnswer {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

/// The user name a helper gives for an identity token instead of a user.
const TOKEN_USERNAME: &str = "<token>";

/// Runs `docker-credential-<helper> VERB` with `input` on stdin; its exit status and output.
async fn run_helper(
    helper: &str,
    verb: &str,
    input: &[u8],
) -> Result<std::process::Output, RegistryError> {
    use tokio::io::AsyncWriteExt;
    let program = format!("docker-credential-{helper}");
    let unusable = |detail: String| RegistryError::CredentialHelper {
        program: program.clone(),
        detail,
    };
    let mut child = tokio::process::Command::new(&program)
        .arg(verb)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|error| {
            if error.kind() == std::io::ErrorKind::NotFound {
                unusable("it is not on the PATH".to_string())
            } else {
                unusable(format!("cannot start it: {error}"))
            }
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper may exit without reading; a broken pipe then is its answer, not ours.
        let _ = stdin.write_all(input).await;
    }
    child
        .wait_with_output()
        .await
        .map_err(|error| unusable(format!("cannot read its answer: {error}")))
}

/// The first line of a helper's complaint, bounded (a helper prints no secret when it fails).
fn helper_message(output: &std::process::Output) -> String {
    let text = if output.stdout.is_empty() {
        &output.stderr
    } else {
        &output.stdout
    };
    String::from_utf8_lossy(text)
        .lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect()
}

/// `docker-credential-<helper> get` for `registry`: its credentials, or `None` when it has
/// none ("credentials not found").
pub async fn helper_get(helper: &str, registry: &str) -> Result<Option<Found>, RegistryError> {
    let program = format!("docker-credential-{helper}");
    let output = run_helper(helper, "get", registry.as_bytes()).await?;
    if !output.status.success() {
        let message = helper_message(&output);
        if message
            .to_ascii_lowercase()
            .contains("credentials not found")
        {
            return Ok(None);
        }
        return Err(RegistryError::CredentialHelper {
            program,
            detail: format!("`get` failed ({}): {message}", output.status),
        });
    }
    let answer: HelperAnswer = serde_json::from_slice(&output.stdout).map_err(|error| {
        RegistryError::CredentialHelper {
            program: program.clone(),
            // The position only: the text may hold the secret.
            detail: format!(
                "`get` printed something other than {{\"ServerURL\",\"Username\",\"Secret\"}} JSON (line {}, column {})",
                error.line(),
                error.column()
            ),
        }
    })?;
    if answer.secret.is_empty() {
        return Ok(None);
    }
    let source = format!("`{program} get`");
    let credentials = if answer.username == TOKEN_USERNAME {
        Credentials::IdentityToken {
            username: String::new(),
            token: Secret::new(answer.secret),
        }
    } else {
        Credentials::Basic {
            username: answer.username,
            password: Secret::new(answer.secret),
        }
    };
    Ok(Some(Found {
        credentials,
        source,
    }))
}

/// What [`store_credentials`] wrote, for the CLI to print.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Stored {
    /// The config file written.
    pub config: PathBuf,
    /// The `auths` key.
    pub key: String,
    /// The helper that holds the secret, when one does (the `auths` entry is then empty).
    pub helper: Option<String>,
    pub username: String,
}

/// Reads `path` as a JSON object (a missing or empty file is `{}`), for an edit that keeps
/// every key it does not change.
fn read_object(path: &Path) -> Result<serde_json::Map<String, serde_json::Value>, RegistryError> {
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(source) => {
            return Err(RegistryError::ReadFile {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    if text.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_slice(&text) {
        Ok(serde_json::Value::Object(object)) => Ok(object),
        Ok(_) => Err(RegistryError::DockerConfig {
            path: path.to_path_buf(),
            detail: "it is not a JSON object".to_string(),
        }),
        Err(error) => Err(RegistryError::DockerConfig {
            path: path.to_path_buf(),
            detail: json_problem(&error),
        }),
    }
}

/// What is wrong with a config file's JSON, by position only: serde_json's messages about a
/// wrong type quote the value found (`invalid type: string "<the password>"`), so they are
/// not shown; a syntax error names no value.
fn json_problem(error: &serde_json::Error) -> String {
    match error.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
            format!("it is not valid JSON: {error}")
        }
        _ => format!(
            "it is JSON, but not of config.json's shape at line {}, column {} (`auths` must map hosts to objects, `credHelpers` hosts to names, `credsStore` is a name)",
            error.line(),
            error.column()
        ),
    }
}

/// Writes `object` to `path` atomically, mode 0600 (it holds credentials), making its
/// directory (0700) if needed.
fn write_object(
    path: &Path,
    object: &serde_json::Map<String, serde_json::Value>,
) -> Result<(), RegistryError> {
    let write_error = |detail: String| RegistryError::WriteDockerConfig {
        path: path.to_path_buf(),
        detail,
    };
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
        && !dir.is_dir()
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|error| write_error(error.to_string()))?;
    }
    let mut bytes = serde_json::to_vec_pretty(object).expect("JSON values serialize");
    bytes.push(b'\n');
    crate::atomic::write(path, &bytes, crate::atomic::Mode::Fixed(0o600))
        .map_err(|error| write_error(error.to_string()))
}

/// The `auths` object of `object`, made if missing.
fn auths_of<'a>(
    object: &'a mut serde_json::Map<String, serde_json::Value>,
    path: &Path,
) -> Result<&'a mut serde_json::Map<String, serde_json::Value>, RegistryError> {
    let auths = object
        .entry("auths")
        .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
    auths
        .as_object_mut()
        .ok_or_else(|| RegistryError::DockerConfig {
            path: path.to_path_buf(),
            detail: "`auths` is not a JSON object".to_string(),
        })
}

/// Saves `credentials` for `registry` as `docker login` does: with the credential helper the
/// configuration names for it (`docker-credential-<helper> store`, and an empty `auths`
/// entry), else as `auths[registry].auth`. Every other key of the file stays.
pub async fn store_credentials(
    path: &Path,
    registry: &str,
    username: &str,
    password: &Secret,
) -> Result<Stored, RegistryError> {
    let config = DockerConfig::load_from(path)?;
    let mut object = read_object(path)?;
    let helper = config.helper_for(registry).map(str::to_string);
    let entry = match &helper {
        Some(helper) => {
            let input = serde_json::json!({
                "ServerURL": registry,
                "Username": username,
                "Secret": password.expose(),
            });
            let output = run_helper(helper, "store", input.to_string().as_bytes()).await?;
            if !output.status.success() {
                return Err(RegistryError::CredentialHelper {
                    program: format!("docker-credential-{helper}"),
                    detail: format!(
                        "`store` failed ({}): {}",
                        output.status,
                        helper_message(&output)
                    ),
                });
            }
            serde_json::json!({})
        }
        None => serde_json::json!({
            "auth": BASE64.encode(format!("{username}:{}", password.expose())),
        }),
    };
    let auths = auths_of(&mut object, path)?;
    // Other spellings of the same host would shadow or confuse the new entry: one key stays.
    auths.retain(|key, _| normalize_key(key) != registry);
    auths.insert(registry.to_string(), entry);
    write_object(path, &object)?;
    Ok(Stored {
        config: path.to_path_buf(),
        key: registry.to_string(),
        helper,
        username: username.to_string(),
    })
}

/// What [`remove_credentials`] removed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Removed {
    pub config: PathBuf,
    /// The `auths` keys removed (every spelling of the host).
    pub keys: Vec<String>,
    /// The helper asked to erase its entry, if one is configured for the host.
    pub helper: Option<String>,
}

/// Removes the credentials for `registry`: every `auths` key naming it, and the helper's entry
/// (`docker-credential-<helper> erase`). The file is rewritten only when a key was removed.
pub async fn remove_credentials(path: &Path, registry: &str) -> Result<Removed, RegistryError> {
    let config = DockerConfig::load_from(path)?;
    let helper = config.helper_for(registry).map(str::to_string);
    if let Some(helper) = &helper {
        let output = run_helper(helper, "erase", registry.as_bytes()).await?;
        let message = helper_message(&output);
        if !output.status.success() && !message.to_ascii_lowercase().contains("not found") {
            return Err(RegistryError::CredentialHelper {
                program: format!("docker-credential-{helper}"),
                detail: format!("`erase` failed ({}): {message}", output.status),
            });
        }
    }
    let mut object = read_object(path)?;
    let mut keys = Vec::new();
    if let Some(auths) = object
        .get_mut("auths")
        .and_then(|auths| auths.as_object_mut())
    {
        keys = auths
            .keys()
            .filter(|key| normalize_key(key) == registry)
            .cloned()
            .collect();
        for key in &keys {
            auths.remove(key);
        }
    }
    if !keys.is_empty() {
        write_object(path, &object)?;
    }
    Ok(Removed {
        config: path.to_path_buf(),
        keys,
        helper,
    })
}

/// One challenge of a `WWW-Authenticate` header: its scheme (lower case) and parameters (keys
/// lower case, values unquoted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: String,
    pub parameters: BTreeMap<String, String>,
}

impl Challenge {
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.parameters.get(name).map(String::as_str)
    }
}

/// The challenges in one `WWW-Authenticate` value (RFC 7235: `scheme k=v, k="quoted, v", ...`,
/// possibly several schemes in one value). Quoted values may hold commas and `\"`; a value
/// that cannot be read ends the parse with what was read so far.
pub fn parse_challenges(header: &str) -> Vec<Challenge> {
    let mut challenges: Vec<Challenge> = Vec::new();
    let bytes = header.as_bytes();
    let mut at = 0;
    let skip = |at: &mut usize, what: &dyn Fn(u8) -> bool| {
        while *at < bytes.len() && what(bytes[*at]) {
            *at += 1;
        }
    };
    let is_token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/".contains(&b);
    loop {
        skip(&mut at, &|b| b == b' ' || b == b'\t' || b == b',');
        if at >= bytes.len() {
            break;
        }
        let start = at;
        skip(&mut at, &is_token);
        if at == start {
            break;
        }
        let word = &header[start..at];
        let after_word = at;
        skip(&mut at, &|b| b == b' ' || b == b'\t');
        if at < bytes.len() && bytes[at] == b'=' && !challenges.is_empty() {
            // `key=value` of the current challenge (unless it is a token68 like `abc==`).
            at += 1;
            skip(&mut at, &|b| b == b' ' || b == b'\t');
            let value = if at < bytes.len() && bytes[at] == b'"' {
                at += 1;
                let mut value = String::new();
                let mut closed = false;
                while at < bytes.len() {
                    match bytes[at] {
                        b'\\' if at + 1 < bytes.len() => {
                            value.push(char::from(bytes[at + 1]));
                            at += 2;
                        }
                        b'"' => {
                            at += 1;
                            closed = true;
                            break;
                        }
                        _ => {
                            let rest = &header[at..];
                            let c = rest.chars().next().expect("not at the end");
                            value.push(c);
                            at += c.len_utf8();
                        }
                    }
                }
                if !closed {
                    break;
                }
                value
            } else {
                let start = at;
                skip(&mut at, &|b| b != b',' && b != b' ' && b != b'\t');
                header[start..at].to_string()
            };
            challenges
                .last_mut()
                .expect("checked above")
                .parameters
                .insert(word.to_ascii_lowercase(), value);
        } else {
            at = after_word;
            challenges.push(Challenge {
                scheme: word.to_ascii_lowercase(),
                parameters: BTreeMap::new(),
            });
            // A token68 credential after the scheme is not used by registries: skip it.
        }
    }
    challenges
}

/// The actions a `scope` asks for on `repository` (`repository:<name>:pull,push`, several
/// scopes separated by spaces).
pub fn scope_actions(scope: &str, repository: &str) -> Vec<String> {
    let mut actions = Vec::new();
    for one in scope.split_whitespace() {
        let Some(rest) = one.strip_prefix("repository:") else {
            continue;
        };
        let Some((name, list)) = rest.rsplit_once(':') else {
            continue;
        };
        if name == repository {
            for action in list.split(',').filter(|action| !action.is_empty()) {
                if !actions.iter().any(|known| known == action) {
                    actions.push(action.to_string());
                }
            }
        }
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_keep_quoted_commas_and_escapes() {
        let parsed = parse_challenges(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push repository:c:pull",error="insufficient_scope""#,
        );
        assert_eq!(parsed.len(), 1);
        let bearer = &parsed[0];
        assert_eq!(bearer.scheme, "bearer");
        assert_eq!(
            bearer.parameter("realm"),
            Some("https://auth.example/token")
        );
        assert_eq!(bearer.parameter("service"), Some("registry.example"));
        assert_eq!(
            bearer.parameter("scope"),
            Some("repository:a/b:pull,push repository:c:pull")
        );
        assert_eq!(bearer.parameter("error"), Some("insufficient_scope"));

        let basic = parse_challenges(r#"Basic realm="say \"hi\", please""#);
        assert_eq!(basic[0].scheme, "basic");
        assert_eq!(basic[0].parameter("realm"), Some(r#"say "hi", please"#));

        // Unquoted values, spaces around `=`, and two schemes in one value.
        let two =
            parse_challenges(r#"Basic realm=x , Bearer realm = "https://t.example/", SERVICE=s"#);
        assert_eq!(two.len(), 2, "{two:?}");
        assert_eq!(two[0].parameter("realm"), Some("x"));
        assert_eq!(two[1].scheme, "bearer");
        assert_eq!(two[1].parameter("realm"), Some("https://t.example/"));
        assert_eq!(two[1].parameter("service"), Some("s"));

        // An unterminated quote ends the parse without inventing a value.
        let broken = parse_challenges(r#"Bearer realm="https://t.example/"#);
        assert_eq!(broken[0].parameter("realm"), None);
        assert!(parse_challenges("").is_empty());
    }

    #[test]
    fn scopes_name_actions_per_repository() {
        let scope = "repository:a/b:pull,push repository:c:pull registry:catalog:*";
        assert_eq!(scope_actions(scope, "a/b"), ["pull", "push"]);
        assert_eq!(scope_actions(scope, "c"), ["pull"]);
        assert!(scope_actions(scope, "a").is_empty());
        // A name with a port-like colon is split at the last colon.
        assert_eq!(scope_actions("repository:x:y:pull", "x:y"), ["pull"]);
    }

    #[test]
    fn keys_normalize_as_docker_does() {
        for key in [
            "127.0.0.1:5000",
            "127.0.0.1:5000/",
            "http://127.0.0.1:5000",
            "https://127.0.0.1:5000/v1/",
            "https://127.0.0.1:5000/v2/",
        ] {
            assert_eq!(normalize_key(key), "127.0.0.1:5000", "{key}");
        }
        assert_eq!(
            normalize_key("https://registry.example/v1/"),
            "registry.example"
        );
        assert_eq!(normalize_key("registry.example"), "registry.example");
    }

    fn config(json: &str) -> (tempfile::TempDir, DockerConfig) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, json).unwrap();
        let config = DockerConfig::load_from(&path).unwrap();
        (dir, config)
    }

    #[test]
    fn auths_entries_give_basic_credentials_or_an_identity_token() {
        let (_dir, config) = config(
            r#"{"auths": {
                "https://a.example/v1/": {"auth": "YWxpY2U6czNjcjN0Om1vcmU="},
                "b.example/": {"username": "bob", "password": "pw"},
                "c.example": {"auth": "", "identitytoken": "refresh-me"},
                "d.example": {}
            }, "other": {"kept": true}}"#,
        );
        let a = config.auths_entry("a.example").unwrap().unwrap();
        assert_eq!(
            a.credentials,
            Credentials::Basic {
                username: "alice".to_string(),
                // Only the first `:` separates: a password may hold more.
                password: Secret::new("s3cr3t:more"),
            }
        );
        assert!(a.source.contains("https://a.example/v1/"), "{}", a.source);
        let b = config.auths_entry("b.example").unwrap().unwrap();
        assert_eq!(b.credentials.username(), "bob");
        let c = config.auths_entry("c.example").unwrap().unwrap();
        assert!(matches!(c.credentials, Credentials::IdentityToken { .. }));
        assert!(config.auths_entry("d.example").unwrap().is_none());
        assert!(config.auths_entry("e.example").unwrap().is_none());
        assert!(config.helper_for("a.example").is_none());
    }

    #[test]
    fn helpers_are_chosen_per_host_then_the_store() {
        let (_dir, config) = config(
            r#"{"credsStore": "desktop", "credHelpers": {"https://special.example/": "special"}}"#,
        );
        assert_eq!(config.helper_for("special.example"), Some("special"));
        assert_eq!(config.helper_for("other.example"), Some("desktop"));
    }

    #[test]
    fn a_bad_config_is_an_error_naming_the_file_without_its_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, r#"{"auths": {"x": {"auth": "hunter2-secret" "#).unwrap();
        let error = DockerConfig::load_from(&path).unwrap_err().to_string();
        assert!(error.contains(&path.display().to_string()), "{error}");
        assert!(error.contains("not valid JSON"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");

        std::fs::write(&path, r#"{"auths": {"x": {"auth": "bm9jb2xvbg=="}}}"#).unwrap();
        let config = DockerConfig::load_from(&path).unwrap();
        let error = config.auths_entry("x").unwrap_err().to_string();
        assert!(error.contains("has no `:`"), "{error}");

        std::fs::write(&path, r#"{"auths": []}"#).unwrap();
        assert!(DockerConfig::load_from(&path).is_err());
        // No file, or an empty one: no credentials, no error.
        assert!(
            DockerConfig::load_from(&dir.path().join("missing.json"))
                .unwrap()
                .auths_entry("x")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn secrets_do_not_show_in_debug_output() {
        let credentials = Credentials::Basic {
            username: "alice".to_string(),
            password: Secret::new("hunter2"),
        };
        let text = format!("{credentials:?}");
        assert!(
            text.contains("alice") && !text.contains("hunter2"),
            "{text}"
        );
        assert_eq!(
            credentials.basic_header().unwrap(),
            format!("Basic {}", BASE64.encode("alice:hunter2"))
        );
    }
}
