//! Registry authentication and TLS as docker does them, against Debian's `docker-registry` on
//! 127.0.0.1 (tests/common/registry.rs): htpasswd Basic auth over TLS with a CA made here by
//! `openssl`, and `auth: token` with the token server tests/interop/token_server.py (ES256 JWTs
//! the registry trusts), run in the interop venv. Credentials come from a `config.json` in a
//! temp DOCKER_CONFIG, from credential helper scripts that log their calls, or from
//! `sealroom login`. The images pushed are small OCI layouts written here, new every run.
//!
//! With CI=true a missing docker-registry, htpasswd or openssl fails the tests (see
//! scripts/ensure-packages.sh); elsewhere they are skipped.

mod common;
#[path = "interop/venv.rs"]
mod venv;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use base64::Engine;
use common::registry::{Registry, RegistryConfig};
use sha2::Digest;

const ALICE: &str = "alice";
const ALICE_PASSWORD: &str = "alice-pw-Zq81";
const BOB: &str = "bob";
const BOB_PASSWORD: &str = "bob-pw-Hx42";
const BOB_REFRESH_TOKEN: &str = "bob-refresh-Qp07";

/// openssl (the test PKI) and, with `htpasswd`, apache2-utils' htpasswd (bcrypt, the only hash
/// registry 2.8 reads); missing ones skip the test, or fail it under CI=true.
fn tools_available(htpasswd: bool) -> bool {
    if !common::tool_available("openssl", "version", "apt-get install openssl") {
        return false;
    }
    let probe = Command::new("htpasswd")
        .args(["-Bbn", "probe", "probe"])
        .output()
        .is_ok_and(|output| output.status.success());
    // htpasswd has no argument that exits 0 alone: the shared helper decides skip or fail.
    !htpasswd
        || probe
        || common::tool_available("htpasswd", "-Bbn", "apt-get install apache2-utils")
}

/// Runs `program` with `args`, failing the test with its output when it fails.
fn run(program: &str, args: &[&str]) {
    let output = Command::new(program).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A test CA, a server certificate for 127.0.0.1 and localhost signed by it, and a self-signed
/// certificate and key that sign the token server's JWTs.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        let ca: Vec<&str> = ["req", "-x509"].into_iter().chain(ec).collect();
        run(
            "openssl",
            &[
                &ca[..],
                &[
                    "-keyout",
                    &path("ca.key"),
                    "-out",
                    &path("ca.crt"),
                    "-days",
                    "2",
                    "-subj",
                    "/CN=sealroom test CA",
                    "-addext",
                    "basicConstraints=critical,CA:TRUE",
                    "-addext",
                    "keyUsage=critical,keyCertSign,cRLSign",
                ],
            ]
            .concat(),
        );
        let csr: Vec<&str> = ["req"].into_iter().chain(ec).collect();
        run(
            "openssl",
            &[
                &csr[..],
                &[
                    "-keyout",
                    &path("server.key"),
                    "-out",
                    &path("server.csr"),
                    "-subj",
                    "/CN=127.0.0.1",
                ],
            ]
            .concat(),
        );
        std::fs::write(
            path("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        run(
            "openssl",
            &[
                "x509",
                "-req",
                "-in",
                &path("server.csr"),
                "-CA",
                &path("ca.crt"),
                "-CAkey",
                &path("ca.key"),
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &path("server.ext"),
                "-out",
                &path("server.crt"),
            ],
        );
        run(
            "openssl",
            &[
                &ca[..],
                &[
                    "-keyout",
                    &path("jwt.key"),
                    "-out",
                    &path("jwt.crt"),
                    "-days",
                    "2",
                    "-subj",
                    "/CN=sealroom test token signer",
                ],
            ]
            .concat(),
        );
        Pki { dir }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// Registry A: TLS with the test CA's server certificate, htpasswd Basic auth for alice.
fn basic_tls_registry(pki: &Pki) -> Option<Registry> {
    let output = Command::new("htpasswd")
        .args(["-Bbn", ALICE, ALICE_PASSWORD])
        .output()
        .unwrap();
    assert!(output.status.success());
    let htpasswd = pki.file("htpasswd");
    std::fs::write(&htpasswd, &output.stdout).unwrap();
    Registry::start_with(RegistryConfig {
        tls: Some((pki.file("server.crt"), pki.file("server.key"))),
        auth: Some(format!(
            "auth:\n  htpasswd:\n    realm: sealroom-test\n    path: {}",
            htpasswd.display()
        )),
    })
}

/// The token server, killed when dropped; its log has one JSON line per token request.
struct TokenServer {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl TokenServer {
    fn start(pki: &Pki) -> Option<Self> {
        let python = venv::python()?;
        let port = common::free_port();
        let log = pki.file("tokens.log");
        std::fs::write(&log, "").unwrap();
        let users = serde_json::json!({
            "users": { BOB: BOB_PASSWORD },
            "refresh_tokens": { BOB_REFRESH_TOKEN: BOB },
        });
        let child = Command::new(python)
            .arg(venv::root().join("tests/interop/token_server.py"))
            .arg(port.to_string())
            .arg(pki.file("jwt.key"))
            .arg(pki.file("jwt.crt"))
            .args(["sealroom-test-issuer", "sealroom-test-registry"])
            .arg(users.to_string())
            .arg(&log)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let server = TokenServer { child, port, log };
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(server);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("the token server did not listen on 127.0.0.1:{port}");
    }

    /// The token requests so far.
    fn requests(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.log)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Registry B: plain HTTP on 127.0.0.1 with `auth: token` against `tokens`.
fn token_registry(pki: &Pki, tokens: &TokenServer) -> Option<Registry> {
    Registry::start_with(RegistryConfig {
        tls: None,
        auth: Some(format!(
            "auth:\n  token:\n    realm: http://127.0.0.1:{}/token\n    service: sealroom-test-registry\n    issuer: sealroom-test-issuer\n    rootcertbundle: {}",
            tokens.port,
            pki.file("jwt.crt").display()
        )),
    })
}

/// The token setup: PKI, token server and registry B; `None` when skipping.
fn token_setup() -> Option<(Pki, TokenServer, Registry)> {
    if !tools_available(false) {
        return None;
    }
    let pki = Pki::new();
    let tokens = TokenServer::start(&pki)?;
    let registry = token_registry(&pki, &tokens)?;
    Some((pki, tokens, registry))
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// A small OCI image layout (one gzip layer holding `marker.txt`) in `dir`, new for every
/// marker; its manifest digest.
fn write_layout(dir: &Path, marker: &str) -> String {
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(marker.len() as u64 + 1);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_cksum();
    tar.append_data(&mut header, "marker.txt", format!("{marker}\n").as_bytes())
        .unwrap();
    let tar = tar.into_inner().unwrap();
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gzip.write_all(&tar).unwrap();
    let layer = gzip.finish().unwrap();
    let architecture = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": architecture, "os": "linux",
        "config": {"Env": ["PATH=/usr/bin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [sha256(&tar)]},
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha256(&layer), "size": layer.len()}],
    }))
    .unwrap();
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    for blob in [&layer, &config, &manifest] {
        std::fs::write(blobs.join(&sha256(blob)[7..]), blob).unwrap();
    }
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha256(&manifest), "size": manifest.len()}],
    });
    std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
    sha256(&manifest)
}

/// A fresh marker, so every run pushes new blobs.
fn marker(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{test}-{}-{nanos}", std::process::id())
}

/// A DOCKER_CONFIG directory holding `config` as config.json.
fn docker_config(parent: &Path, name: &str, config: serde_json::Value) -> PathBuf {
    let dir = parent.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    dir
}

fn basic(user: &str, password: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
}

/// `docker-credential-NAME` in `bin`, answering `get` for `host` with `user`/`secret` and
/// logging every call as `<verb> <stdin>` to `log`.
fn credential_helper(bin: &Path, name: &str, host: &str, user: &str, secret: &str, log: &Path) {
    std::fs::create_dir_all(bin).unwrap();
    let script = format!(
        r#"#!/bin/sh
input=$(cat)
printf '%s %s\n' "$1" "$input" >> '{log}'
case "$1" in
  get)
    if [ "$input" = '{host}' ]; then
      printf '{{"ServerURL":"%s","Username":"{user}","Secret":"{secret}"}}\n' "$input"; exit 0
    fi
    echo "credentials not found in native keychain"; exit 1 ;;
  *) exit 0 ;;
esac
"#,
        log = log.display()
    );
    let path = bin.join(format!("docker-credential-{name}"));
    std::fs::write(&path, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// `sealroom [extra...] push LAYOUT REF` with DOCKER_CONFIG=`config` and no SSL_CERT_FILE
/// unless `envs` sets it.
fn push(
    config: &Path,
    layout: &Path,
    reference: &str,
    envs: &[(&str, &std::ffi::OsStr)],
    extra: &[&std::ffi::OsStr],
) -> std::process::Output {
    let mut command = common::sealroom();
    command
        .env("DOCKER_CONFIG", config)
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR")
        .env_remove("SEALROOM_REGISTRY_CA")
        .args(extra)
        .args(["--format", "json", "push"])
        .arg(layout)
        .arg(reference);
    for (key, value) in envs {
        command.env(key, value);
    }
    command.output().unwrap()
}

fn text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The manifest digest a successful `push --format json` reports.
fn pushed_digest(output: &std::process::Output) -> String {
    assert!(output.status.success(), "push failed: {}", text(output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    report["manifest_digest"].as_str().unwrap().to_string()
}

/// Whether the registry's access log shows the manifest `digest` put into `repository`.
fn manifest_put(registry: &Registry, repository: &str, digest: &str) -> bool {
    let wanted = format!("\"PUT /v2/{repository}/manifests/{digest} HTTP/1.1\" 201");
    // The registry writes its access-log line just after answering.
    for _ in 0..20 {
        if registry.requests().iter().any(|request| request == &wanted) {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    false
}

#[test]
fn basic_auth_over_tls_with_the_ca_from_ssl_cert_file_or_registry_ca() {
    if !tools_available(true) {
        return;
    }
    let pki = Pki::new();
    let Some(registry) = basic_tls_registry(&pki) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    let digest = write_layout(&layout, &marker("basic"));
    let config = docker_config(
        work.path(),
        "cfg",
        serde_json::json!({"auths": {registry.host(): {"auth": basic(ALICE, ALICE_PASSWORD)}}}),
    );
    let ca = pki.file("ca.crt");

    // The CA in SSL_CERT_FILE (it replaces the system's roots, which is fine for this registry).
    let reference = format!("{}/test/basic:v1", registry.host());
    let output = push(
        &config,
        &layout,
        &reference,
        &[("SSL_CERT_FILE", ca.as_os_str())],
        &[],
    );
    assert_eq!(pushed_digest(&output), digest);
    assert!(manifest_put(&registry, "test/basic", &digest));

    // The CA given with --registry-ca, and with SEALROOM_REGISTRY_CA.
    let reference = format!("{}/test/basic-flag", registry.host());
    let output = push(
        &config,
        &layout,
        &reference,
        &[],
        &["--registry-ca".as_ref(), ca.as_os_str()],
    );
    assert_eq!(pushed_digest(&output), digest);
    assert!(manifest_put(&registry, "test/basic-flag", &digest));
    let reference = format!("{}/test/basic-env", registry.host());
    let output = push(
        &config,
        &layout,
        &reference,
        &[("SEALROOM_REGISTRY_CA", ca.as_os_str())],
        &[],
    );
    assert_eq!(pushed_digest(&output), digest);

    // Without the CA: a TLS error that says how to give the CA, and no fall-back to plain
    // HTTP (the registry speaks TLS; its certificate is what is not trusted).
    let before = registry.requests().len();
    let reference = format!("{}/test/no-ca", registry.host());
    let output = push(&config, &layout, &reference, &[], &[]);
    let shown = text(&output);
    assert_eq!(output.status.code(), Some(1), "{shown}");
    assert!(shown.contains("TLS with the registry"), "{shown}");
    assert!(shown.contains("certificate"), "{shown}");
    assert!(
        shown.contains("--registry-ca") && shown.contains("SSL_CERT_FILE"),
        "{shown}"
    );
    assert!(!shown.contains("http://"), "no plain-HTTP attempt: {shown}");
    assert_eq!(registry.requests().len(), before, "no request got through");

    // A --registry-ca file that holds no certificate is a clear error before any request.
    let not_pem = work.path().join("not-a-ca.pem");
    std::fs::write(&not_pem, "just text\n").unwrap();
    let output = push(
        &config,
        &layout,
        &reference,
        &[],
        &["--registry-ca".as_ref(), not_pem.as_os_str()],
    );
    let shown = text(&output);
    assert_eq!(output.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains("not-a-ca.pem") && shown.contains("no PEM `CERTIFICATE` block"),
        "{shown}"
    );
}

#[test]
fn a_wrong_password_is_exit_1_with_the_registrys_words_and_never_shown() {
    if !tools_available(true) {
        return;
    }
    let pki = Pki::new();
    let Some(registry) = basic_tls_registry(&pki) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    write_layout(&layout, &marker("wrong"));
    let wrong = "not-alices-pw-Kd93";
    let config = docker_config(
        work.path(),
        "cfg",
        serde_json::json!({"auths": {format!("https://{}/v1/", registry.host()): {"auth": basic(ALICE, wrong)}}}),
    );
    let ca = pki.file("ca.crt");
    let output = push(
        &config,
        &layout,
        &format!("{}/test/wrong", registry.host()),
        &[("SSL_CERT_FILE", ca.as_os_str())],
        &[],
    );
    let shown = text(&output);
    assert_eq!(output.status.code(), Some(1), "{shown}");
    // The registry's own words (distribution 2.8: code UNAUTHORIZED, "authentication required").
    assert!(
        shown.contains("UNAUTHORIZED") || shown.contains("authentication required"),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("sealroom login {}", registry.host())),
        "{shown}"
    );
    assert!(shown.contains("docker login"), "{shown}");
    assert!(
        shown.contains("user `alice`"),
        "it says whose credentials: {shown}"
    );
    assert!(!shown.contains(wrong), "the password is printed: {shown}");
    assert!(
        !shown.contains(&basic(ALICE, wrong)),
        "the auth value is printed: {shown}"
    );
    // The wrong password is not hammered: the first request without credentials, one with
    // them, and its GET twin for the registry's words (a HEAD answer has no body).
    let unauthorized = registry
        .requests()
        .iter()
        .filter(|request| request.ends_with(" 401"))
        .count();
    assert_eq!(unauthorized, 3, "{:?}", registry.requests());

    // `sealroom login` against the Basic registry: the wrong password is refused in the
    // registry's words and not saved; the right one is saved.
    let login_config = work.path().join("login");
    let login = |password: &str| {
        common::sealroom()
            .env("DOCKER_CONFIG", &login_config)
            .env("SSL_CERT_FILE", &ca)
            .args(["login", &registry.host(), "-u", ALICE, "--password-stdin"])
            .write_stdin(password.to_string())
            .output()
            .unwrap()
    };
    let output = login(wrong);
    let shown = text(&output);
    assert_eq!(output.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains("authentication required") && !shown.contains(wrong),
        "{shown}"
    );
    assert!(!login_config.join("config.json").exists());
    let output = login(ALICE_PASSWORD);
    assert!(output.status.success(), "{}", text(&output));
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(login_config.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        written["auths"][registry.host()]["auth"],
        basic(ALICE, ALICE_PASSWORD)
    );

    // No credentials at all for a registry that asks for Basic: exit 1, words, hint.
    let none = docker_config(work.path(), "none", serde_json::json!({"auths": {}}));
    let output = push(
        &none,
        &layout,
        &format!("{}/test/anonymous", registry.host()),
        &[("SSL_CERT_FILE", ca.as_os_str())],
        &[],
    );
    let shown = text(&output);
    assert_eq!(output.status.code(), Some(1), "{shown}");
    assert!(shown.contains("no credentials"), "{shown}");
    assert!(shown.contains("sealroom login"), "{shown}");
}

/// Asserts one push's token economy: at least one token request, at most one per two
/// registry requests that were answered with something other than 401.
fn assert_tokens_reused(tokens: &[serde_json::Value], requests: &[String]) {
    let authorized = requests
        .iter()
        .filter(|request| !request.ends_with(" 401"))
        .count();
    assert!(!tokens.is_empty(), "no token was asked for");
    assert!(authorized >= 3, "{requests:?}");
    assert!(
        2 * tokens.len() <= authorized,
        "{} token requests for {authorized} authorized requests: {tokens:?} {requests:?}",
        tokens.len()
    );
}

#[test]
fn token_auth_push_from_config_json_reuses_one_token() {
    let Some((_pki, tokens, registry)) = token_setup() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    let digest = write_layout(&layout, &marker("token"));
    let config = docker_config(
        work.path(),
        "cfg",
        serde_json::json!({"auths": {registry.host(): {"auth": basic(BOB, BOB_PASSWORD)}}}),
    );
    let output = push(
        &config,
        &layout,
        &format!("{}/test/token:v1", registry.host()),
        &[],
        &[],
    );
    assert_eq!(pushed_digest(&output), digest);
    assert!(manifest_put(&registry, "test/token", &digest));
    let asked = tokens.requests();
    assert_tokens_reused(&asked, &registry.requests());
    assert_eq!(asked.len(), 1, "one token for the whole push: {asked:?}");
    assert_eq!(asked[0]["user"], BOB);
    assert_eq!(asked[0]["scopes"][0], "repository:test/token:pull,push");

    // An identity token (docker's `identitytoken`) goes through the OAuth2 refresh grant.
    let config = docker_config(
        work.path(),
        "identity",
        serde_json::json!({"auths": {registry.host(): {"identitytoken": BOB_REFRESH_TOKEN}}}),
    );
    let output = push(
        &config,
        &layout,
        &format!("{}/test/identity", registry.host()),
        &[],
        &[],
    );
    assert_eq!(pushed_digest(&output), digest);
    let last = tokens.requests().last().cloned().unwrap();
    assert_eq!(last["method"], "POST");
    assert_eq!(last["grant"], "refresh_token");
    assert_eq!(last["user"], BOB);
}

#[test]
fn token_auth_push_with_credentials_from_credential_helpers() {
    let Some((_pki, tokens, registry)) = token_setup() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    let digest = write_layout(&layout, &marker("helper"));
    let bin = work.path().join("bin");
    let log = work.path().join("helper.log");
    credential_helper(&bin, "test", &registry.host(), BOB, BOB_PASSWORD, &log);
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    // credsStore, with the empty auths entry `docker login` leaves beside it.
    let config = docker_config(
        work.path(),
        "store",
        serde_json::json!({"auths": {registry.host(): {}}, "credsStore": "test"}),
    );
    let output = push(
        &config,
        &layout,
        &format!("{}/test/helper", registry.host()),
        &[("PATH", path.as_ref())],
        &[],
    );
    assert_eq!(pushed_digest(&output), digest);
    let calls = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        calls,
        format!("get {}\n", registry.host()),
        "one `get`, for the registry"
    );
    assert_eq!(tokens.requests().last().unwrap()["user"], BOB);

    // credHelpers for the host wins over credsStore (whose helper does not even exist).
    std::fs::write(&log, "").unwrap();
    let config = docker_config(
        work.path(),
        "helpers",
        serde_json::json!({"credsStore": "absent", "credHelpers": {registry.host(): "test"}}),
    );
    let output = push(
        &config,
        &layout,
        &format!("{}/test/helper-per-host", registry.host()),
        &[("PATH", path.as_ref())],
        &[],
    );
    assert_eq!(pushed_digest(&output), digest);
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        format!("get {}\n", registry.host())
    );

    // A helper that has nothing for the host means anonymous: the registry's refusal.
    let config = docker_config(
        work.path(),
        "other-host",
        serde_json::json!({"credHelpers": {registry.host(): "test"}}),
    );
    credential_helper(&bin, "test", "elsewhere:1", BOB, BOB_PASSWORD, &log);
    let output = push(
        &config,
        &layout,
        &format!("{}/test/helper-none", registry.host()),
        &[("PATH", path.as_ref())],
        &[],
    );
    let shown = text(&output);
    assert_eq!(output.status.code(), Some(1), "{shown}");
    assert!(shown.contains("no credentials"), "{shown}");

    // The helper that the configuration names but that is not installed: a clear error.
    let config = docker_config(
        work.path(),
        "missing-helper",
        serde_json::json!({"credsStore": "absent"}),
    );
    let output = push(
        &config,
        &layout,
        &format!("{}/test/helper-missing", registry.host()),
        &[],
        &[],
    );
    let shown = text(&output);
    assert_eq!(output.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains("docker-credential-absent") && shown.contains("not on the PATH"),
        "{shown}"
    );
}

#[test]
fn token_auth_without_credentials_or_with_a_wrong_password_is_exit_1_with_a_hint() {
    let Some((_pki, tokens, registry)) = token_setup() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    write_layout(&layout, &marker("denied"));

    // No credentials: the token server hands out an anonymous token without access, and the
    // registry refuses the push with its words.
    let none = docker_config(work.path(), "none", serde_json::json!({"auths": {}}));
    let output = push(
        &none,
        &layout,
        &format!("{}/test/nocreds", registry.host()),
        &[],
        &[],
    );
    let shown = text(&output);
    assert_eq!(output.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains("insufficient_scope") || shown.contains("authentication required"),
        "{shown}"
    );
    assert!(shown.contains("no credentials"), "{shown}");
    assert!(
        shown.contains(&format!("sealroom login {}", registry.host())),
        "{shown}"
    );
    assert_eq!(
        tokens.requests().last().unwrap()["grant"],
        "anonymous",
        "an anonymous token was asked for"
    );

    // A wrong password: the token server's words, the login hint, the password not shown.
    let wrong = "not-bobs-pw-Uw55";
    let config = docker_config(
        work.path(),
        "wrong",
        serde_json::json!({"auths": {registry.host(): {"auth": basic(BOB, wrong)}}}),
    );
    let output = push(
        &config,
        &layout,
        &format!("{}/test/wrong", registry.host()),
        &[],
        &[],
    );
    let shown = text(&output);
    assert_eq!(output.status.code(), Some(1), "{shown}");
    assert!(shown.contains("incorrect username or password"), "{shown}");
    assert!(shown.contains("sealroom login"), "{shown}");
    assert!(!shown.contains(wrong), "{shown}");

    // A config.json that is not JSON: an error naming the file, before any request.
    let broken = work.path().join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(broken.join("config.json"), "{\"auths\": {\"x\": ").unwrap();
    let before = registry.requests().len();
    let output = push(
        &broken,
        &layout,
        &format!("{}/test/broken", registry.host()),
        &[],
        &[],
    );
    let shown = text(&output);
    assert_eq!(output.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains(&broken.join("config.json").display().to_string())
            && shown.contains("not valid JSON"),
        "{shown}"
    );
    assert_eq!(registry.requests().len(), before);
}

#[test]
fn login_checks_the_password_then_writes_config_json_0600_keeping_other_keys() {
    let Some((_pki, tokens, registry)) = token_setup() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    let digest = write_layout(&layout, &marker("login"));
    let config = docker_config(
        work.path(),
        "cfg",
        serde_json::json!({"auths": {"other.example": {"auth": basic("carol", "c")}}, "psFormat": "table {{.ID}}"}),
    );
    let file = config.join("config.json");
    let login = |password: &str| {
        common::sealroom()
            .env("DOCKER_CONFIG", &config)
            .args(["login", &registry.host(), "-u", BOB, "--password-stdin"])
            .write_stdin(format!("{password}\n"))
            .output()
            .unwrap()
    };

    // A wrong password is refused by the registry's token server and nothing is written.
    let before = std::fs::read(&file).unwrap();
    let output = login("wrong-pw");
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(text(&output).contains("incorrect username or password"));
    assert_eq!(std::fs::read(&file).unwrap(), before);

    let output = login(BOB_PASSWORD);
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        format!("{}: auths.{}", file.display(), registry.host())
    );
    assert!(!text(&output).contains(BOB_PASSWORD));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(written["psFormat"], "table {{.ID}}");
    assert_eq!(
        written["auths"]["other.example"]["auth"],
        basic("carol", "c")
    );
    assert_eq!(
        written["auths"][registry.host()]["auth"],
        basic(BOB, BOB_PASSWORD)
    );

    // The saved credentials push.
    let output = push(
        &config,
        &layout,
        &format!("{}/test/after-login", registry.host()),
        &[],
        &[],
    );
    assert_eq!(pushed_digest(&output), digest);
    assert_eq!(tokens.requests().last().unwrap()["user"], BOB);

    // Logout removes the entry and only it.
    let output = common::sealroom()
        .env("DOCKER_CONFIG", &config)
        .args(["logout", &registry.host()])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert!(written["auths"].get(registry.host()).is_none(), "{written}");
    assert_eq!(
        written["auths"]["other.example"]["auth"],
        basic("carol", "c")
    );
    assert_eq!(written["psFormat"], "table {{.ID}}");

    // Login without a password to read is a usage error saying how.
    let output = common::sealroom()
        .env("DOCKER_CONFIG", &config)
        .args(["login", &registry.host()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output).contains("--password-stdin"),
        "{}",
        text(&output)
    );
}

#[test]
fn docker_image_base_pulls_from_the_token_registry_with_credentials() {
    let Some((_pki, tokens, registry)) = token_setup() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    let digest = write_layout(&layout, &marker("pull"));
    let config = docker_config(
        work.path(),
        "cfg",
        serde_json::json!({"auths": {registry.host(): {"auth": basic(BOB, BOB_PASSWORD)}}}),
    );
    let output = push(
        &config,
        &layout,
        &format!("{}/test/base", registry.host()),
        &[],
        &[],
    );
    assert_eq!(pushed_digest(&output), digest);

    let sandbox = common::busybox().to_string();
    let project = common::Project::new();
    let base = format!("{}/test/base@{digest}", registry.host());
    let spec = project.write_spec(
        &sandbox,
        &format!(
            "[[step]]\nname = \"app\"\nrun = [\"sh\", \"-c\", \"echo app > /out/app.txt\"]\n\n[[image]]\nname = \"derived\"\nbase = \"{base}\"\nlayers = [{{ step = \"app\", path = \"/app\" }}]\n"
        ),
    );
    let before = tokens.requests().len();
    let output = project
        .build_command(&spec)
        .env("DOCKER_CONFIG", &config)
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let layers = report["images"][0]["layers"].as_array().unwrap();
    assert_eq!(
        layers.len(),
        2,
        "the base's layer and the new one: {layers:?}"
    );
    let pulled = &tokens.requests()[before..];
    assert_eq!(pulled.len(), 1, "{pulled:?}");
    assert_eq!(pulled[0]["scopes"][0], "repository:test/base:pull");
    assert_eq!(pulled[0]["user"], BOB);
}

/// A fake registry on 127.0.0.1 that is also an HTTP proxy: `/v2/` requests get a 401 whose
/// Bearer realm is `realm`; requests in proxy form (an absolute URI, for the realm host) are
/// recorded with their headers and answered with a token. Returns the port and the record.
fn fake_registry_and_proxy(
    realm: impl Fn(u16) -> String + Send + 'static,
) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = std::sync::Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut first = [0u8; 1];
            if stream.peek(&mut first).is_err() || first[0] == 0x16 {
                // A TLS ClientHello (sealroom tries HTTPS first on loopback): answer as a
                // plain-HTTP server does.
                let _ = stream.write_all(
                    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                continue;
            }
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                head.push_str(&line);
            }
            let length = head
                .lines()
                .find_map(|line| {
                    line.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(0);
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            record.lock().unwrap().push(head.clone());
            let response = if head.contains(" /v2/") {
                let challenge = format!(
                    "Bearer realm=\"{}\",service=\"fake\",scope=\"repository:test/attack:pull\"",
                    realm(port)
                );
                format!(
                    "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: {challenge}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
                )
            } else {
                let token = r#"{"token":"t"}"#;
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{token}",
                    token.len()
                )
            };
            let _ = stream.write_all(response.as_bytes());
        }
    });
    (port, seen)
}

#[test]
fn a_plain_http_realm_off_this_machine_never_gets_the_credentials() {
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    write_layout(&layout, &marker("attack"));
    let secret = "the-secret-pw-Vn31";

    // The attack: a registry whose realm is plain HTTP on another host. Every plain-HTTP
    // request for another host goes to the fake (as the proxy), so it would see credentials
    // sent there; the registry itself (127.0.0.1) is reached directly.
    let (port, seen) = fake_registry_and_proxy(|_| "http://realm.invalid/token".to_string());
    let host = format!("127.0.0.1:{port}");
    let config = docker_config(
        work.path(),
        "cfg",
        serde_json::json!({"auths": {&host: {"auth": basic(ALICE, secret)}}}),
    );
    let proxy = format!("http://{host}");
    let envs: [(&str, &std::ffi::OsStr); 4] = [
        ("http_proxy", proxy.as_ref()),
        ("HTTP_PROXY", proxy.as_ref()),
        ("no_proxy", "127.0.0.1".as_ref()),
        ("NO_PROXY", "127.0.0.1".as_ref()),
    ];
    let output = push(&config, &layout, &format!("{host}/test/attack"), &envs, &[]);
    let shown = text(&output);
    assert_eq!(output.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains("plain HTTP on a host that is not this machine"),
        "{shown}"
    );
    let requests = seen.lock().unwrap().clone();
    assert!(
        requests
            .iter()
            .all(|request| !request.contains("realm.invalid")),
        "the realm was contacted: {requests:?}"
    );
    let encoded = basic(ALICE, secret);
    assert!(
        requests.iter().all(|request| !request.contains(&encoded)),
        "credentials were sent: {requests:?}"
    );
    assert!(!shown.contains(secret));

    // The control: the same fake with its realm on 127.0.0.1 does get Basic credentials at
    // the realm, so the check above can see them when they are sent.
    let (port, seen) = fake_registry_and_proxy(|port| format!("http://127.0.0.1:{port}/token"));
    let host = format!("127.0.0.1:{port}");
    let config = docker_config(
        work.path(),
        "control",
        serde_json::json!({"auths": {&host: {"auth": basic(ALICE, secret)}}}),
    );
    let output = push(&config, &layout, &format!("{host}/test/attack"), &envs, &[]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let requests = seen.lock().unwrap().clone();
    assert!(
        requests
            .iter()
            .any(|request| request.starts_with("GET /token") && request.contains(&encoded)),
        "{requests:?}"
    );
    // The registry did not take the fake token: the answer is its refusal, after one retry.
    assert!(text(&output).contains("refused"), "{}", text(&output));
}

#[test]
fn a_sandbox_image_from_the_token_registry_builds_with_credentials_from_a_helper() {
    let Some((_pki, tokens, registry)) = token_setup() else {
        return;
    };
    // An image steps can run in: busybox plus a marker, built and pushed with config.json.
    let work = tempfile::tempdir().unwrap();
    let marker = marker("sandbox");
    let maker = common::Project::new();
    std::fs::write(maker.path("src/marker"), format!("{marker}\n")).unwrap();
    let busybox = common::busybox().to_string();
    let spec = maker.write_spec(
        &busybox,
        &format!(
            "[[step]]\nname = \"noop\"\nrun = [\"true\"]\n\n[[image]]\nname = \"marked\"\nbase = \"{busybox}\"\nlayers = [{{ source = \"src\", path = \"/app\" }}]\n"
        ),
    );
    let output = maker
        .build_command(&spec)
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let built: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let image_id = built["images"][0]["config_digest"]
        .as_str()
        .unwrap()
        .to_string();
    let auths = docker_config(
        work.path(),
        "auths",
        serde_json::json!({"auths": {registry.host(): {"auth": basic(BOB, BOB_PASSWORD)}}}),
    );
    let digest = pushed_digest(&push(
        &auths,
        &maker.out().join("marked"),
        &format!("{}/test/sandbox", registry.host()),
        &[],
        &[],
    ));
    // The engine must not have it: the build pulls it.
    Command::new("docker")
        .args(["rmi", "-f", &image_id])
        .output()
        .unwrap();

    // Credentials only through the helper (credsStore), as `docker login` leaves them.
    let bin = work.path().join("bin");
    let log = work.path().join("helper.log");
    credential_helper(&bin, "test", &registry.host(), BOB, BOB_PASSWORD, &log);
    let config = docker_config(
        work.path(),
        "store",
        serde_json::json!({"auths": {registry.host(): {}}, "credsStore": "test"}),
    );
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let project = common::Project::new();
    let spec = project.write_spec(
        &format!("{}/test/sandbox@{digest}", registry.host()),
        "[[step]]\nname = \"probe\"\nrun = [\"sh\", \"-c\", \"cat /app/marker > /out/marker.txt\"]\nartifacts = [\"marker.txt\"]\n",
    );
    let before = tokens.requests().len();
    let output = project
        .build_command(&spec)
        .env("DOCKER_CONFIG", &config)
        .env("PATH", &path)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(
        std::fs::read_to_string(project.out().join("marker.txt")).unwrap(),
        format!("{marker}\n")
    );
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        format!("get {}\n", registry.host())
    );
    let pulled = &tokens.requests()[before..];
    assert_eq!(pulled.len(), 1, "one token for the pull: {pulled:?}");
    assert_eq!(pulled[0]["user"], BOB);

    // Without credentials the registry's refusal is the error, with the hint to log in.
    let none = docker_config(work.path(), "none", serde_json::json!({"auths": {}}));
    let fresh = common::Project::new();
    let spec = fresh.write_spec(
        &format!("{}/test/sandbox@{digest}", registry.host()),
        "[[step]]\nname = \"probe\"\nrun = [\"true\"]\n",
    );
    let output = fresh
        .build_command(&spec)
        .env("DOCKER_CONFIG", &none)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(text(&output).contains("login"), "{}", text(&output));
    Command::new("docker")
        .args(["rmi", "-f", &image_id])
        .output()
        .unwrap();
}
