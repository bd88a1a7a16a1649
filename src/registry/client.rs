//! One registry, over HTTP: the few calls of the distribution API v2 that pushing and pulling
//! by digest need. Blobs stream from a file on push and into the store on pull (verified as
//! they pass); nothing large is held in memory.
//!
//! Every request goes through [`Client::send`], which
//! - picks the scheme: HTTPS, and for a loopback registry plain HTTP when no TLS connection can
//!   be made (a certificate the roots do not trust is a TLS error, never a reason to fall
//!   back); the choice is remembered for the client's life;
//! - answers a 401's `WWW-Authenticate` challenge once: `Basic` with the user's credentials,
//!   `Bearer` by asking the realm for a token for the repository's scope;
//! - attaches what it learned to every later request to the same registry (never to another
//!   host), so one push asks the token server once per repository;
//! - turns a refusal after that into [`RegistryError::Denied`] with the registry's own words.
//!
//! A `Client` may be shared by concurrent tasks: its state is behind locks, and one token
//! request at a time is made (the others then use its token).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use reqwest::{Method, StatusCode, Url, header};

use super::auth::{self, Challenge, Credentials, DockerConfig, Found, Secret};
use super::{RegistryError, is_loopback};
use crate::digest::BlobDigest;
use crate::store::Store;

/// The manifest media types a pull accepts, most wanted first.
pub const MANIFEST_TYPES: &[&str] = &[
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// The largest manifest, index or image config read. containerd refuses manifests over
/// `MaxManifestSize = 4 * 1048 * 1048` bytes (remotes/docker/resolver.go, a typo for 4 MiB
/// that stayed); 4 MiB is the same bound, spelt right. Real manifests are a few KiB.
pub const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;
/// The most bytes of an error response read (only its start is shown).
pub const MAX_ERROR_BODY_BYTES: usize = 16 * 1024;
/// The largest token response read (a JWT is a few KiB).
const MAX_TOKEN_BYTES: u64 = 1024 * 1024;
/// How long a token lives when the server does not say: the distribution token spec's 60 s,
/// also its minimum.
const MIN_TOKEN_SECONDS: u64 = 60;
/// A token is not used in its last seconds, so it does not expire on the way.
const TOKEN_MARGIN: Duration = Duration::from_secs(10);

/// How long a connection (TCP and TLS handshake) to a registry may take: docker's dial timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// The same on this machine, where a TLS handshake takes milliseconds: a plain-HTTP server
/// that does not answer one is given up on soon, for the fall-back to HTTP.
const LOOPBACK_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a request goes: a path below the registry's base, or a URL the registry gave (an
/// upload's `Location`).
enum Target<'a> {
    Path(&'a str),
    Url(&'a Url),
}

pub struct Client {
    http: reqwest::Client,
    /// `host[:port]`.
    registry: String,
    /// `https://host:port/`.
    https: Url,
    /// `http://host:port/`, for a loopback registry only.
    plain: Option<Url>,
    /// The base in use once the first answer came (loopback); HTTPS from the start elsewhere.
    chosen: Mutex<Option<Url>>,
    authenticator: Authenticator,
}

/// What the client knows about authenticating to its registry.
struct Authenticator {
    /// Docker's configuration, read when the client is made.
    config: DockerConfig,
    /// The credentials, looked up (a helper run) at the first challenge.
    credentials: tokio::sync::OnceCell<Option<Found>>,
    state: Mutex<AuthState>,
    /// Held while a token is requested, so concurrent requests wait for one token.
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct AuthState {
    /// The registry asked for Basic: it goes with every request.
    basic: bool,
    /// Tokens by repository (`""` for requests outside one, such as `/v2/`).
    tokens: HashMap<String, Token>,
    /// Repositories this client pushes to: their token is asked for `pull,push` at once.
    push: HashSet<String>,
}

struct Token {
    actions: BTreeSet<String>,
    value: Secret,
    usable_until: Instant,
}

impl Token {
    fn covers(&self, actions: &BTreeSet<String>) -> bool {
        Instant::now() < self.usable_until && actions.is_subset(&self.actions)
    }
}

/// What a token endpoint answers.
#[derive(serde::Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl Client {
    /// A client for `registry` (`host[:port]`): HTTPS, with a fall-back to plain HTTP on
    /// loopback; the CA certificates of [`super::configure`]; docker's credentials.
    pub fn new(registry: &str) -> Result<Self, RegistryError> {
        let parse = |url: String| {
            Url::parse(&url).map_err(|error| RegistryError::InvalidReference {
                reference: registry.to_string(),
                reason: error.to_string(),
            })
        };
        let https = parse(format!("https://{registry}/"))?;
        let plain = if is_loopback(registry) {
            Some(parse(format!("http://{registry}/"))?)
        } else {
            None
        };
        // A loopback server that speaks only plain HTTP may never answer a TLS handshake; the
        // fall-back to HTTP must not wait on it for long.
        let connect_timeout = if plain.is_some() {
            LOOPBACK_CONNECT_TIMEOUT
        } else {
            CONNECT_TIMEOUT
        };
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("sealroom/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(connect_timeout);
        for path in super::settings().ca_files {
            for certificate in read_ca_file(&path)? {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let http = builder
            .build()
            .map_err(|error| RegistryError::Unreachable {
                url: https.to_string(),
                detail: error_chain(&error),
            })?;
        let chosen = Mutex::new(plain.is_none().then(|| https.clone()));
        Ok(Self {
            http,
            registry: registry.to_string(),
            https,
            plain,
            chosen,
            authenticator: Authenticator {
                config: DockerConfig::load()?,
                credentials: tokio::sync::OnceCell::new(),
                state: Mutex::new(AuthState::default()),
                fetching: tokio::sync::Mutex::new(()),
            },
        })
    }

    /// Uses `credentials` instead of looking them up (`sealroom login` checks the ones given).
    pub fn with_credentials(self, credentials: Credentials) -> Self {
        let found = Found {
            credentials,
            source: "the credentials given".to_string(),
        };
        self.authenticator
            .credentials
            .set(Some(found))
            .expect("no lookup has run on a new client");
        self
    }

    /// Says that this client will push to `repository`: its token is asked for with
    /// `pull,push` from the first request on, so one token serves the whole push.
    pub fn will_push(&self, repository: &str) {
        lock(&self.authenticator.state)
            .push
            .insert(repository.to_string());
    }

    /// The registry's `host[:port]`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    fn base(&self) -> Url {
        lock(&self.chosen)
            .clone()
            .unwrap_or_else(|| self.https.clone())
    }

    /// Sends the request `build` makes for `target` (again, after answering a challenge);
    /// `accept` says which statuses are answers rather than errors. `repository` scopes the
    /// credentials; `action` names the request in errors.
    async fn send(
        &self,
        action: &str,
        repository: Option<&str>,
        target: Target<'_>,
        accept: fn(StatusCode) -> bool,
        build: impl Fn(Url) -> Result<reqwest::RequestBuilder, RegistryError>,
    ) -> Result<reqwest::Response, RegistryError> {
        let mut challenged = false;
        loop {
            let base = self.base();
            let url = match &target {
                Target::Path(path) => base.join(path).expect("a registry path is a valid URL"),
                Target::Url(url) => (*url).clone(),
            };
            let same_registry = url.origin() == base.origin();
            let mut request = build(url.clone())?;
            let authorization = if same_registry {
                self.authenticator.header_for(repository)
            } else {
                None
            };
            if let Some(value) = &authorization {
                request = request.header(header::AUTHORIZATION, value.expose());
            }
            let request = request
                .build()
                .map_err(|error| RegistryError::Unsupported {
                    what: format!("the request for {action}"),
                    url: url.to_string(),
                    detail: error_chain(&error),
                })?;
            let write = !matches!(*request.method(), Method::GET | Method::HEAD);
            let head = *request.method() == Method::HEAD;
            let response = match self.http.execute(request).await {
                Ok(response) => response,
                Err(error) => {
                    if matches!(target, Target::Path(_)) && self.fall_back(&base, &error) {
                        tracing::debug!(
                            "no TLS connection to {}: using plain HTTP (a loopback registry)",
                            self.registry
                        );
                        continue;
                    }
                    return Err(transport_error(&url, &error));
                }
            };
            {
                let mut chosen = lock(&self.chosen);
                if chosen.is_none() {
                    *chosen = Some(base.clone());
                }
            }
            let status = response.status();
            if accept(status) {
                return Ok(response);
            }
            if status == StatusCode::UNAUTHORIZED && same_registry && !challenged {
                challenged = true;
                let challenges = challenges_of(&response);
                if self
                    .authenticator
                    .answer(
                        &self.http,
                        &self.registry,
                        &challenges,
                        repository,
                        write,
                        authorization.is_some(),
                    )
                    .await?
                {
                    continue;
                }
            }
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                let mut denied = self.denied(action, &url, response).await;
                if head {
                    // A HEAD answer has no body: the same request as GET gets the words.
                    self.add_words(&mut denied, &url, authorization.as_ref())
                        .await;
                }
                return Err(denied);
            }
            let body = read_error_body(response).await;
            return Err(RegistryError::Refused {
                action: action.to_string(),
                url: url.to_string(),
                status: status.as_u16(),
                body,
            });
        }
    }

    /// Whether the failed request over `base` should be tried again over plain HTTP: a
    /// loopback registry whose scheme is not settled yet, a connection that could not be made,
    /// and no certificate at fault (an untrusted certificate means TLS is there).
    fn fall_back(&self, base: &Url, error: &reqwest::Error) -> bool {
        let Some(plain) = &self.plain else {
            return false;
        };
        if base.scheme() != "https" || !error.is_connect() || is_certificate_error(error) {
            return false;
        }
        let mut chosen = lock(&self.chosen);
        if chosen.is_some() {
            return false;
        }
        *chosen = Some(plain.clone());
        true
    }

    /// The refusal in `response` (a 401 or 403 after authenticating, or without credentials),
    /// in the registry's words.
    async fn denied(&self, action: &str, url: &Url, response: reqwest::Response) -> RegistryError {
        let status = response.status().as_u16();
        let challenge_error = challenges_of(&response)
            .iter()
            .find_map(|challenge| challenge.parameter("error").map(str::to_string));
        let body = read_error_body(response).await;
        RegistryError::Denied(Box::new(super::Denial {
            registry: self.registry.clone(),
            action: action.to_string(),
            url: url.to_string(),
            status,
            words: registry_words(&body, challenge_error.as_deref()),
            who: self.authenticator.who(&self.registry),
            config: self.authenticator.config_text(),
        }))
    }

    /// Adds the registry's words to a refusal of a HEAD request: the same URL asked with GET
    /// and the same credentials is refused with a body. Nothing changes when it is not refused.
    async fn add_words(
        &self,
        denied: &mut RegistryError,
        url: &Url,
        authorization: Option<&Secret>,
    ) {
        let RegistryError::Denied(denial) = denied else {
            return;
        };
        let mut request = self.http.get(url.clone());
        if let Some(value) = authorization {
            request = request.header(header::AUTHORIZATION, value.expose());
        }
        let Ok(response) = request.send().await else {
            return;
        };
        if !matches!(
            response.status(),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
        ) {
            return; // dropped unread
        }
        let challenge_error = challenges_of(&response)
            .iter()
            .find_map(|challenge| challenge.parameter("error").map(str::to_string));
        let body = read_error_body(response).await;
        denial.words = registry_words(&body, challenge_error.as_deref());
    }

    /// `GET /v2/` through the challenge flow: whether the registry accepts the credentials
    /// (`sealroom login`). An error says what it answered.
    pub async fn check_credentials(&self) -> Result<(), RegistryError> {
        self.send(
            "the login check",
            None,
            Target::Path("v2/"),
            |status| status.is_success(),
            |url| Ok(self.http.get(url)),
        )
        .await?;
        Ok(())
    }

    /// Whether the repository has the blob (`HEAD /v2/<repo>/blobs/<digest>`).
    pub async fn has_blob(
        &self,
        repository: &str,
        digest: &BlobDigest,
    ) -> Result<bool, RegistryError> {
        let path = format!("v2/{repository}/blobs/{digest}");
        let response = self
            .send(
                &format!("a check for blob {digest}"),
                Some(repository),
                Target::Path(&path),
                |status| status.is_success() || status == StatusCode::NOT_FOUND,
                |url| Ok(self.http.request(Method::HEAD, url)),
            )
            .await?;
        Ok(response.status().is_success())
    }

    /// Uploads the file at `path` as blob `digest` in one request: `POST` opens an upload, `PUT`
    /// to its location with `?digest=` sends the bytes and commits them.
    pub async fn push_blob(
        &self,
        repository: &str,
        digest: &BlobDigest,
        size: u64,
        path: &Path,
    ) -> Result<(), RegistryError> {
        self.upload(repository, digest, size, || {
            // Opened for each attempt: a retry after a challenge sends the bytes again.
            let file = std::fs::File::open(path).map_err(|source| RegistryError::ReadFile {
                path: path.to_path_buf(),
                source,
            })?;
            let file = tokio::fs::File::from_std(file);
            Ok(reqwest::Body::wrap_stream(
                tokio_util::io::ReaderStream::new(file),
            ))
        })
        .await
    }

    /// Uploads `bytes` (a small document) as a blob, as [`Client::push_blob`] does a file.
    pub async fn push_blob_bytes(
        &self,
        repository: &str,
        bytes: &[u8],
    ) -> Result<BlobDigest, RegistryError> {
        let digest = BlobDigest::of(bytes);
        self.upload(repository, &digest, bytes.len() as u64, || {
            Ok(reqwest::Body::from(bytes.to_vec()))
        })
        .await?;
        Ok(digest)
    }

    /// The monolithic upload of blob `digest`: `POST` opens it, `PUT` to its location with
    /// `?digest=` sends `body()` (made anew for each attempt) and commits it.
    async fn upload(
        &self,
        repository: &str,
        digest: &BlobDigest,
        size: u64,
        body: impl Fn() -> Result<reqwest::Body, RegistryError>,
    ) -> Result<(), RegistryError> {
        let start = format!("v2/{repository}/blobs/uploads/");
        let action = format!("an upload of blob {digest}");
        let response = self
            .send(
                &action,
                Some(repository),
                Target::Path(&start),
                |status| status.is_success(),
                |url| Ok(self.http.post(url).header(header::CONTENT_LENGTH, 0)),
            )
            .await?;
        let start = response.url().clone();
        let location = response
            .headers()
            .get(header::LOCATION)
            .and_then(|value| value.to_str().ok())
            .ok_or_else(|| RegistryError::Unsupported {
                what: "the upload response".to_string(),
                url: start.to_string(),
                detail: "it has no Location header".to_string(),
            })?;
        let mut upload = start
            .join(location)
            .map_err(|error| RegistryError::Unsupported {
                what: "the upload location".to_string(),
                url: start.to_string(),
                detail: error.to_string(),
            })?;
        upload
            .query_pairs_mut()
            .append_pair("digest", &digest.to_string());
        self.send(
            &action,
            Some(repository),
            Target::Url(&upload),
            |status| status.is_success(),
            |url| {
                Ok(self
                    .http
                    .put(url)
                    .header(header::CONTENT_TYPE, "application/octet-stream")
                    .header(header::CONTENT_LENGTH, size)
                    .body(body()?))
            },
        )
        .await?;
        Ok(())
    }

    /// `PUT /v2/<repo>/manifests/<reference>` (a digest or a tag); the answer's headers (a
    /// registry that indexes referrers says so with `OCI-Subject`).
    pub async fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        manifest: &[u8],
    ) -> Result<header::HeaderMap, RegistryError> {
        let path = format!("v2/{repository}/manifests/{reference}");
        let response = self
            .send(
                &format!("the manifest for `{reference}`"),
                Some(repository),
                Target::Path(&path),
                |status| status.is_success(),
                |url| {
                    Ok(self
                        .http
                        .put(url)
                        .header(header::CONTENT_TYPE, media_type)
                        .body(manifest.to_vec()))
                },
            )
            .await?;
        Ok(response.headers().clone())
    }

    /// `GET` of `path` below the registry (`accept` as the Accept header), at most `limit`
    /// bytes read: the body, the URL it came from and its Content-Type. A 404 is `Refused`
    /// with status 404.
    pub(super) async fn get_bounded(
        &self,
        what: &str,
        repository: &str,
        path: &str,
        accept: Option<&str>,
        limit: u64,
    ) -> Result<(Vec<u8>, Url, String), RegistryError> {
        let response = self
            .send(
                what,
                Some(repository),
                Target::Path(path),
                |status| status.is_success(),
                |url| {
                    let request = self.http.get(url);
                    Ok(match accept {
                        Some(accept) => request.header(header::ACCEPT, accept),
                        None => request,
                    })
                },
            )
            .await?;
        let url = response.url().clone();
        let media_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let bytes = read_bounded(response, &url, what, limit).await?;
        Ok((bytes, url, media_type))
    }

    /// The manifest at `reference` and its media type, checked against `reference` when it is a
    /// digest.
    pub async fn get_manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<(Vec<u8>, String), RegistryError> {
        let (bytes, url, media_type) = self
            .get_bounded(
                &format!("the manifest `{reference}`"),
                repository,
                &format!("v2/{repository}/manifests/{reference}"),
                Some(&MANIFEST_TYPES.join(", ")),
                MAX_MANIFEST_BYTES,
            )
            .await?;
        if let Ok(expected) = reference.parse::<BlobDigest>() {
            let found = BlobDigest::of(&bytes);
            if found != expected {
                return Err(RegistryError::DigestMismatch {
                    what: "the manifest".to_string(),
                    url: url.to_string(),
                    expected: expected.to_string(),
                    found: found.to_string(),
                });
            }
        }
        Ok((bytes, media_type))
    }

    /// Downloads blob `digest` of `size` bytes (as its descriptor says) into the store,
    /// verified as it streams; nothing is stored when the bytes do not match, and never more
    /// than `size` bytes are read: a longer answer (announced or sent) is refused.
    pub async fn blob_into_store(
        &self,
        store: &Store,
        repository: &str,
        digest: &BlobDigest,
        size: u64,
    ) -> Result<u64, RegistryError> {
        let path = format!("v2/{repository}/blobs/{digest}");
        let response = self
            .send(
                &format!("a download of blob {digest}"),
                Some(repository),
                Target::Path(&path),
                |status| status.is_success(),
                |url| Ok(self.http.get(url)),
            )
            .await?;
        let url = self
            .base()
            .join(&path)
            .expect("a registry path is a valid URL");
        let too_large = |detail: String| RegistryError::TooLarge {
            what: format!("blob {digest}"),
            url: url.to_string(),
            limit: size,
            detail,
        };
        if let Some(length) = response.content_length()
            && length > size
        {
            return Err(too_large(format!(
                "the registry announces {length} bytes, the descriptor {size}"
            )));
        }
        let stream = response
            .bytes_stream()
            .map_err(|error| std::io::Error::other(error_chain(&error)));
        let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream));
        let exceeded = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = AtMost {
            inner: reader,
            left: size,
            exceeded: std::sync::Arc::clone(&exceeded),
        };
        let (store, stored_digest, origin) = (store.clone(), *digest, url.to_string());
        let stored = tokio::task::spawn_blocking(move || {
            store.add_blob_from_reader(reader, &origin, Some(&stored_digest))
        })
        .await
        .unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic()));
        if exceeded.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(too_large(format!(
                "the registry sent more than the descriptor's {size} bytes; stopped there"
            )));
        }
        match stored {
            Ok((_, size)) => Ok(size),
            Err(crate::store::StoreError::DigestMismatch {
                expected, found, ..
            }) => Err(RegistryError::DigestMismatch {
                what: "a blob".to_string(),
                url: url.to_string(),
                expected: expected.to_string(),
                found: found.to_string(),
            }),
            Err(error) => Err(RegistryError::Store {
                detail: error.to_string(),
            }),
        }
    }
}

impl Authenticator {
    /// The `Authorization` value for a request in `repository`, from what earlier challenges
    /// taught: Basic credentials, or a token for the repository that is still good.
    fn header_for(&self, repository: Option<&str>) -> Option<Secret> {
        let state = lock(&self.state);
        if state.basic {
            let found = self.credentials.get()?.as_ref()?;
            return found.credentials.basic_header().map(Secret::new);
        }
        let token = state.tokens.get(repository.unwrap_or(""))?;
        (Instant::now() < token.usable_until)
            .then(|| Secret::new(format!("Bearer {}", token.value.expose())))
    }

    /// The user's credentials for `registry`, looked up once.
    async fn credentials(&self, registry: &str) -> Result<Option<&Found>, RegistryError> {
        let found = self
            .credentials
            .get_or_try_init(|| self.config.credentials_for(registry))
            .await?;
        Ok(found.as_ref())
    }

    /// Answers a 401's challenges; `true` when the request should be sent again (with what was
    /// learned), `false` when nothing can be added (no credentials for Basic, or Basic already
    /// sent and refused).
    async fn answer(
        &self,
        http: &reqwest::Client,
        registry: &str,
        challenges: &[Challenge],
        repository: Option<&str>,
        write: bool,
        sent_authorization: bool,
    ) -> Result<bool, RegistryError> {
        let bearer = challenges.iter().find(|challenge| {
            challenge.scheme == "bearer" && challenge.parameter("realm").is_some()
        });
        if let Some(bearer) = bearer {
            self.fetch_token(http, registry, bearer, repository, write)
                .await?;
            return Ok(true);
        }
        if !challenges
            .iter()
            .any(|challenge| challenge.scheme == "basic")
        {
            return Ok(false);
        }
        let Some(found) = self.credentials(registry).await? else {
            return Ok(false);
        };
        if found.credentials.basic_header().is_none() {
            return Ok(false);
        }
        let mut state = lock(&self.state);
        if state.basic && sent_authorization {
            return Ok(false);
        }
        state.basic = true;
        Ok(true)
    }

    /// Asks the realm of `challenge` for a token for `repository` (the actions the challenge
    /// names, those of the token held, and `pull,push` when pushing) and keeps it. While one
    /// task asks, others wait and then use its token.
    async fn fetch_token(
        &self,
        http: &reqwest::Client,
        registry: &str,
        challenge: &Challenge,
        repository: Option<&str>,
        write: bool,
    ) -> Result<(), RegistryError> {
        let key = repository.unwrap_or("").to_string();
        let scope_text = challenge.parameter("scope").unwrap_or("");
        let mut actions: BTreeSet<String> = match repository {
            Some(repository) => auth::scope_actions(scope_text, repository)
                .into_iter()
                .collect(),
            None => BTreeSet::new(),
        };
        let held_before = {
            let state = lock(&self.state);
            if let Some(repository) = repository
                && (write || state.push.contains(repository))
            {
                actions.extend(["pull".to_string(), "push".to_string()]);
            }
            state
                .tokens
                .get(&key)
                .map(|token| token.value.expose().to_string())
        };
        let _one_at_a_time = self.fetching.lock().await;
        {
            let state = lock(&self.state);
            if let Some(token) = state.tokens.get(&key)
                && Some(token.value.expose()) != held_before.as_deref()
                && token.covers(&actions)
            {
                return Ok(()); // another task got one meanwhile
            }
            if let Some(token) = state.tokens.get(&key)
                && Instant::now() < token.usable_until
            {
                actions.extend(token.actions.iter().cloned());
            }
        }
        // The scopes: those of the challenge for other repositories as they are, and one for
        // this repository with every action wanted.
        let mut scopes: Vec<String> = scope_text
            .split_whitespace()
            .filter(|scope| {
                repository
                    .is_none_or(|repository| auth::scope_actions(scope, repository).is_empty())
            })
            .map(str::to_string)
            .collect();
        if let Some(repository) = repository
            && !actions.is_empty()
        {
            let list: Vec<&str> = actions.iter().map(String::as_str).collect();
            scopes.push(format!("repository:{repository}:{}", list.join(",")));
        }
        let realm_text = challenge.parameter("realm").expect("checked by the caller");
        let found = self.credentials(registry).await?.cloned();
        let who = describe(found.as_ref(), registry, &self.config);
        let mut realm = Url::parse(realm_text).map_err(|error| RegistryError::Unsupported {
            what: "the Bearer challenge's realm".to_string(),
            url: realm_text.to_string(),
            detail: error.to_string(),
        })?;
        if !matches!(realm.scheme(), "https" | "http") {
            return Err(RegistryError::Unsupported {
                what: "the Bearer challenge's realm".to_string(),
                url: realm_text.to_string(),
                detail: "it is neither https:// nor http://".to_string(),
            });
        }
        // Credentials travel to the realm in the clear over http://: only to this machine.
        if found.is_some() && realm.scheme() == "http" && !realm.host_str().is_some_and(is_loopback)
        {
            return Err(RegistryError::InsecureRealm {
                registry: registry.to_string(),
                realm: realm_text.to_string(),
                who,
            });
        }
        let service = challenge.parameter("service");
        let request = match found.as_ref().map(|found| &found.credentials) {
            Some(Credentials::IdentityToken { token, .. }) => {
                let mut form: Vec<(&str, &str)> = vec![
                    ("grant_type", "refresh_token"),
                    ("client_id", "sealroom"),
                    ("refresh_token", token.expose()),
                ];
                if let Some(service) = service {
                    form.push(("service", service));
                }
                let scope = scopes.join(" ");
                if !scope.is_empty() {
                    form.push(("scope", &scope));
                }
                let body = form_encode(&form);
                http.post(realm.clone())
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(body)
            }
            other => {
                {
                    let mut query = realm.query_pairs_mut();
                    if let Some(service) = service {
                        query.append_pair("service", service);
                    }
                    for scope in &scopes {
                        query.append_pair("scope", scope);
                    }
                }
                if realm.query() == Some("") {
                    realm.set_query(None);
                }
                let request = http.get(realm.clone());
                match other.and_then(Credentials::basic_header) {
                    Some(basic) => request.header(header::AUTHORIZATION, basic),
                    None => request,
                }
            }
        };
        let mut shown_realm = realm.clone();
        shown_realm.set_query(None);
        let response = request
            .send()
            .await
            .map_err(|error| transport_error(&shown_realm, &error))?;
        let status = response.status();
        if !status.is_success() {
            let body = read_error_body(response).await;
            return Err(RegistryError::TokenRefused(Box::new(super::TokenRefusal {
                registry: registry.to_string(),
                realm: shown_realm.to_string(),
                status: status.as_u16(),
                words: registry_words(&body, None),
                who,
                config: self.config_text(),
            })));
        }
        let bytes = read_bounded(response, &shown_realm, "the token", MAX_TOKEN_BYTES).await?;
        let answer: TokenAnswer =
            serde_json::from_slice(&bytes).map_err(|error| RegistryError::Unsupported {
                what: "the token answer".to_string(),
                url: shown_realm.to_string(),
                detail: format!("it is not the JSON of the token spec: {error}"),
            })?;
        let Some(value) = answer
            .token
            .filter(|token| !token.is_empty())
            .or(answer.access_token.filter(|token| !token.is_empty()))
        else {
            return Err(RegistryError::Unsupported {
                what: "the token answer".to_string(),
                url: shown_realm.to_string(),
                detail: "it has neither `token` nor `access_token`".to_string(),
            });
        };
        let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(0).max(MIN_TOKEN_SECONDS));
        tracing::debug!(
            "token for {registry} {} from {shown_realm}",
            scopes.join(" ")
        );
        lock(&self.state).tokens.insert(
            key,
            Token {
                actions,
                value: Secret::new(value),
                usable_until: Instant::now() + lifetime - TOKEN_MARGIN,
            },
        );
        Ok(())
    }

    /// Which credentials were sent, for messages (a user name and where it came from, never a
    /// secret).
    fn who(&self, registry: &str) -> String {
        let found = self.credentials.get().and_then(Option::as_ref);
        describe(found, registry, &self.config)
    }

    fn config_text(&self) -> String {
        if self.config.path.as_os_str().is_empty() {
            "docker's config.json (no HOME or DOCKER_CONFIG is set)".to_string()
        } else {
            format!("`{}`", self.config.path.display())
        }
    }
}

/// `found` for messages: `the credentials of user alice from ...`, or that there were none.
fn describe(found: Option<&Found>, registry: &str, config: &DockerConfig) -> String {
    match found {
        Some(Found {
            credentials: Credentials::Basic { username, .. },
            source,
        }) => format!("the credentials of user `{username}` from {source}"),
        Some(Found {
            credentials: Credentials::IdentityToken { .. },
            source,
        }) => format!("an identity token from {source}"),
        None => format!(
            "no credentials: none for {registry} in `{}` or its credential helpers",
            config.path.display()
        ),
    }
}

/// `application/x-www-form-urlencoded` of `pairs`.
fn form_encode(pairs: &[(&str, &str)]) -> String {
    let mut url = Url::parse("http://form.invalid/").expect("a valid URL");
    url.query_pairs_mut().extend_pairs(pairs);
    url.query().unwrap_or_default().to_string()
}

/// The `WWW-Authenticate` challenges of `response`, every header value.
fn challenges_of(response: &reqwest::Response) -> Vec<Challenge> {
    response
        .headers()
        .get_all(header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(auth::parse_challenges)
        .collect()
}

/// A registry's (or token server's) reason for a refusal: the distribution API's
/// `errors[0].code` and `message`, a token server's `details` or OAuth2 `error_description`,
/// else the start of the body; and the challenge's `error=`.
fn registry_words(body: &str, challenge_error: Option<&str>) -> String {
    #[derive(serde::Deserialize)]
    struct Problem {
        #[serde(default)]
        code: Option<String>,
        #[serde(default)]
        message: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Body {
        #[serde(default)]
        errors: Vec<Problem>,
        #[serde(default)]
        details: Option<String>,
        #[serde(default)]
        error: Option<serde_json::Value>,
        #[serde(default)]
        error_description: Option<String>,
    }
    let mut words = match serde_json::from_str::<Body>(body) {
        Ok(parsed) => {
            let first = parsed.errors.first();
            let code = first.and_then(|problem| problem.code.clone());
            let message = first
                .and_then(|problem| problem.message.clone())
                .or(parsed.details)
                .or(parsed.error_description)
                .or(parsed
                    .error
                    .and_then(|error| error.as_str().map(str::to_string)));
            match (code, message) {
                (Some(code), Some(message)) => format!("{code}: {message}"),
                (Some(text), None) | (None, Some(text)) => text,
                (None, None) => String::new(),
            }
        }
        Err(_) => body.trim().chars().take(300).collect(),
    };
    if let Some(error) = challenge_error {
        if !words.is_empty() {
            words.push_str(", ");
        }
        words.push_str(&format!("error=\"{error}\""));
    }
    if words.is_empty() {
        words = "it gave no reason".to_string();
    }
    words
}

/// A request that got no answer: a TLS error when a certificate was at fault, else unreachable.
fn transport_error(url: &Url, error: &reqwest::Error) -> RegistryError {
    if is_certificate_error(error) {
        RegistryError::Tls {
            url: url.origin().ascii_serialization(),
            detail: error_chain(error),
        }
    } else {
        RegistryError::Unreachable {
            url: url.to_string(),
            detail: error_chain(error),
        }
    }
}

/// Whether rustls refused the peer's certificate somewhere in `error`'s causes (the TLS
/// connection works, the roots do not trust what it presents).
fn is_certificate_error(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = current {
        if let Some(tls) = error.downcast_ref::<rustls::Error>() {
            return matches!(
                tls,
                rustls::Error::InvalidCertificate(_)
                    | rustls::Error::NoCertificatesPresented
                    | rustls::Error::UnsupportedNameType
                    | rustls::Error::InvalidCertRevocationList(_)
            );
        }
        // io::Error's source() skips the error it wraps (often another io::Error): look inside.
        current = match error
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => error.source(),
        };
    }
    false
}

/// The certificates of a PEM file given with `--registry-ca`.
fn read_ca_file(path: &Path) -> Result<Vec<reqwest::Certificate>, RegistryError> {
    let bad = |detail: String| RegistryError::CaFile {
        path: path.to_path_buf(),
        detail,
    };
    let pem = std::fs::read(path).map_err(|error| bad(error.to_string()))?;
    let certificates =
        reqwest::Certificate::from_pem_bundle(&pem).map_err(|error| bad(error_chain(&error)))?;
    if certificates.is_empty() {
        return Err(bad("it holds no PEM `CERTIFICATE` block".to_string()));
    }
    Ok(certificates)
}

/// The guarded value; a panic elsewhere while holding the lock leaves data still usable here.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A reader that fails once more than `left` bytes would pass, and says so in `exceeded`.
struct AtMost<R> {
    inner: R,
    left: u64,
    exceeded: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl<R: std::io::Read> std::io::Read for AtMost<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        // One byte more than allowed is asked for, so that a longer body is seen.
        let want = usize::try_from(self.left.saturating_add(1))
            .map_or(buf.len(), |left| buf.len().min(left));
        let read = self.inner.read(&mut buf[..want])?;
        if read as u64 > self.left {
            self.exceeded
                .store(true, std::sync::atomic::Ordering::SeqCst);
            return Err(std::io::Error::other("more bytes than the descriptor says"));
        }
        self.left -= read as u64;
        Ok(read)
    }
}

/// The body of `response`, at most `limit` bytes: a longer one (by its Content-Length or by
/// what arrives) is refused as soon as it shows, without reading the rest.
async fn read_bounded(
    mut response: reqwest::Response,
    url: &Url,
    what: &str,
    limit: u64,
) -> Result<Vec<u8>, RegistryError> {
    let too_large = |detail: String| RegistryError::TooLarge {
        what: what.to_string(),
        url: url.to_string(),
        limit,
        detail,
    };
    if let Some(length) = response.content_length()
        && length > limit
    {
        return Err(too_large(format!("the registry announces {length} bytes")));
    }
    let mut body = Vec::new();
    loop {
        let chunk = response
            .chunk()
            .await
            .map_err(|error| RegistryError::Unreachable {
                url: url.to_string(),
                detail: error_chain(&error),
            })?;
        let Some(chunk) = chunk else {
            return Ok(body);
        };
        if body.len() as u64 + chunk.len() as u64 > limit {
            return Err(too_large(format!(
                "the registry sent more than {limit} bytes; stopped there"
            )));
        }
        body.extend_from_slice(&chunk);
    }
}

/// The start of an error response's body, at most [`MAX_ERROR_BODY_BYTES`]; the rest is not
/// read. Not UTF-8 is shown lossily.
async fn read_error_body(mut response: reqwest::Response) -> String {
    let mut body = Vec::new();
    while body.len() < MAX_ERROR_BODY_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = MAX_ERROR_BODY_BYTES - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    String::from_utf8_lossy(&body).into_owned()
}

/// An error and its causes on one line (reqwest's own message alone says little).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A client's requests may run on spawned tasks (parallel layer downloads): their futures
    /// are Send and the client is Sync, so no lock is held across an await.
    #[test]
    fn a_client_can_be_shared_by_spawned_tasks() {
        fn shareable<T: Send + Sync>(_: &T) {}
        fn sendable<T: Send>(_: T) {}
        let client = Client::new("127.0.0.1:9").unwrap();
        shareable(&client);
        let digest = BlobDigest::of(b"");
        sendable(client.has_blob("x", &digest));
        sendable(client.get_manifest("x", "latest"));
        sendable(client.check_credentials());
    }

    #[test]
    fn refusals_are_told_in_the_registrys_words() {
        let body = r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":[{"Type":"repository","Name":"a","Action":"push"}]}]}"#;
        assert_eq!(
            registry_words(body, Some("insufficient_scope")),
            r#"UNAUTHORIZED: authentication required, error="insufficient_scope""#
        );
        assert_eq!(
            registry_words(r#"{"details":"incorrect username or password"}"#, None),
            "incorrect username or password"
        );
        assert_eq!(
            registry_words(
                r#"{"error":"invalid_grant","error_description":"expired"}"#,
                None
            ),
            "expired"
        );
        assert_eq!(registry_words("plain words\n", None), "plain words");
        assert_eq!(registry_words("", None), "it gave no reason");
    }

    #[test]
    fn a_blob_reader_stops_one_byte_past_its_descriptor() {
        let exceeded = Arc::new(AtomicBool::new(false));
        let mut reader = AtMost {
            inner: std::io::repeat(1).take(1_000_000),
            left: 10,
            exceeded: Arc::clone(&exceeded),
        };
        let mut buffer = Vec::new();
        let error = reader.read_to_end(&mut buffer).unwrap_err();
        assert_eq!(error.to_string(), "more bytes than the descriptor says");
        assert!(exceeded.load(Ordering::SeqCst));
        assert!(buffer.len() <= 10, "read {} bytes", buffer.len());

        let exceeded = Arc::new(AtomicBool::new(false));
        let mut exact = AtMost {
            inner: std::io::repeat(1).take(10),
            left: 10,
            exceeded: Arc::clone(&exceeded),
        };
        let mut buffer = Vec::new();
        exact.read_to_end(&mut buffer).unwrap();
        assert_eq!(buffer.len(), 10);
        assert!(!exceeded.load(Ordering::SeqCst));
    }
}
