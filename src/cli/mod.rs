//! The command line: argument types and printing. Parsing only; the work is in `ops`.
//!
//! stdout is data (a path, a reference, or JSON with `--format json`); stderr is for people.

pub mod report;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::sign::keys::Algorithm;

#[derive(Debug, Parser)]
#[command(
    name = "sealroom",
    version,
    about = "Hermetic builds with signed SLSA provenance"
)]
pub struct Cli {
    /// The store's directory (default: $XDG_CACHE_HOME/sealroom, else ~/.cache/sealroom).
    #[arg(long, global = true, env = "SEALROOM_STORE", value_name = "DIR")]
    pub store: Option<PathBuf>,

    /// A PEM file of CA certificates to trust for registries (a private registry's CA), besides
    /// the system's roots or SSL_CERT_FILE's. Repeatable.
    #[arg(
        long = "registry-ca",
        global = true,
        env = "SEALROOM_REGISTRY_CA",
        value_name = "FILE"
    )]
    pub registry_ca: Vec<PathBuf>,

    /// Output format for what the command reports on stdout.
    #[arg(long, global = true, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole pipeline: resolve, build every step network-off, store, attest.
    Build(BuildArgs),
    /// Check an artifact against its provenance (signature, statement, subject, builder), or an
    /// image in a registry against the attestations published with it.
    Verify(VerifyArgs),
    /// Write a PEM key pair for signing provenance.
    Keygen(KeygenArgs),
    /// Only the fetch stage: download and verify every `[[fetch]]` into the store.
    Fetch(FetchArgs),
    /// Fill in or update the `sha256` / `output` pins of a spec's fetches from one fetch each,
    /// editing the TOML in place (comments and formatting stay).
    Pin(PinArgs),
    /// Rebuild an artifact from its provenance (no cache, fresh store) and compare digests.
    Reproduce(ReproduceArgs),
    /// Build a spec twice without the cache, varying what sealroom does not pin, and compare
    /// every output file.
    Check(CheckArgs),
    /// Say why a step would run instead of coming from the cache: which fields of its record
    /// differ from the record it last ran with. Runs and downloads nothing.
    Explain(ExplainArgs),
    /// Base images without a registry.
    #[command(subcommand)]
    Image(ImageCommand),
    /// Inspect, re-hash and collect the local store.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Push an OCI image layout (or the `[[image]]` of that name in --out) to a registry, by
    /// digest, with its signed attestations (cosign's `.att` tag, OCI referrers); prints
    /// `REF@sha256:<manifest digest>`, then one line per attestation.
    Push(PushArgs),
    /// Print a spec equivalent to a Dockerfile (for review; see docs/images.md).
    Convert(ConvertArgs),
    /// Check credentials against a registry and save them in docker's config.json
    /// ($DOCKER_CONFIG/config.json, or its credential helper), as `docker login` does.
    Login(LoginArgs),
    /// Remove a registry's credentials from docker's config.json (and its credential helper).
    Logout(LogoutArgs),
}

#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    /// The registry: `host[:port]` (a scheme or path, as docker's keys have, is dropped).
    #[arg(value_name = "REGISTRY")]
    pub registry: String,
    /// The user name.
    #[arg(long, short = 'u', value_name = "USER")]
    pub username: Option<String>,
    /// Read the password (or token) from stdin; it never appears on the command line.
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Debug, clap::Args)]
pub struct LogoutArgs {
    /// The registry: `host[:port]`.
    #[arg(value_name = "REGISTRY")]
    pub registry: String,
}

#[derive(Debug, clap::Args)]
pub struct PushArgs {
    /// An OCI image layout directory, or the name of an `[[image]]` built into --out.
    #[arg(value_name = "IMAGE")]
    pub image: String,
    /// Where to: `host[:port]/repository[:tag]` (HTTPS; on 127.0.0.1 and localhost plain HTTP
    /// when the registry speaks no TLS). Credentials come from docker's config.json.
    #[arg(value_name = "REF")]
    pub reference: String,
    /// The build's output directory, where an image named by IMAGE is looked up.
    #[arg(long, value_name = "DIR", default_value = "sealroom-out")]
    pub out: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct ConvertArgs {
    /// The Dockerfile.
    #[arg(value_name = "DOCKERFILE", default_value = "Dockerfile")]
    pub dockerfile: PathBuf,
    /// The build context COPY reads from (default: the Dockerfile's directory).
    #[arg(long, value_name = "DIR")]
    pub context: Option<PathBuf>,
    /// The spec's and the image's name (default: the context directory's name).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Set an ARG's value, as `docker build --build-arg` does (repeatable).
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    pub build_args: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Count the entries and bytes of each kind (blobs, trees, checkouts, action entries, tmp).
    Ls,
    /// Re-hash every blob and tree, check action entries and checkouts; quarantine what is
    /// corrupt and drop the cache entries that depend on it. Exits 4 if anything was wrong.
    Verify {
        /// How long to wait for running builds to release the store.
        #[arg(long, value_name = "SECONDS", default_value_t = 60)]
        wait: u64,
    },
    /// Remove everything no action entry or checkout used within --keep-days reaches.
    Gc {
        /// Keep what builds used within this many days (0: keep nothing).
        #[arg(long, value_name = "N", default_value_t = 30)]
        keep_days: u32,
        /// How long to wait for running builds to release the store.
        #[arg(long, value_name = "SECONDS", default_value_t = 60)]
        wait: u64,
    },
}

#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// The spec (default: ./sealroom.toml).
    #[arg(value_name = "SPEC", default_value = "sealroom.toml")]
    pub spec: PathBuf,
    /// Where artifacts and their `.intoto.jsonl` provenance are written.
    #[arg(long, value_name = "DIR", default_value = "sealroom-out")]
    pub out: PathBuf,
    /// A PEM private key (PKCS#8, ECDSA P-256 or Ed25519) to sign provenance with.
    #[arg(long, value_name = "KEY")]
    pub key: Option<PathBuf>,
    /// The builder id recorded in provenance.
    #[arg(long, value_name = "URI", default_value = crate::provenance::DEFAULT_BUILDER_ID)]
    pub builder_id: String,
    /// How many steps may run at once (default: the number of CPUs).
    #[arg(long, short = 'j', value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,
    /// After a step fails, still run the steps that do not depend on it.
    #[arg(long)]
    pub keep_going: bool,
    /// Run every step, even those the action cache has a result for.
    #[arg(long)]
    pub no_cache: bool,
    /// Also write a Sigstore bundle (v0.3) `<artifact>.sigstore.json` next to each provenance.
    #[arg(long, requires = "key")]
    pub bundle: bool,
    /// The SBOM written next to each artifact and image, with its signed attestation
    /// `<artifact>.sbom.intoto.jsonl`: CycloneDX 1.6 `<artifact>.cdx.json`, SPDX 2.3
    /// `<artifact>.spdx.json`, both, or none.
    #[arg(long, value_enum, value_name = "FORMAT", default_value = "cyclonedx")]
    pub sbom: crate::sbom::SbomChoice,
    /// Open no socket: every fetch must already be in the store.
    #[arg(long)]
    pub offline: bool,
    /// Load each `[[image]]` into the engine after the build.
    #[arg(long)]
    pub load: bool,
    #[command(flatten)]
    pub network: NetworkArgs,
    /// The tag `--load` gives: `NAME:TAG`, or `IMAGE=NAME:TAG` when the spec has several images
    /// (default `<image>:latest`). Repeatable.
    #[arg(long, value_name = "NAME:TAG", requires = "load")]
    pub tag: Vec<String>,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

/// The shared remote cache (REAPI v2; docs/remote.md). Each setting can also come from the
/// environment variable named in its help.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Remote cache")]
pub struct RemoteArgs {
    /// A shared action cache speaking the Remote Execution API v2: `grpc://HOST:PORT`, or
    /// `grpcs://HOST:PORT` for TLS. An unreachable cache is a warning: the build runs locally.
    #[arg(long, env = "SEALROOM_REMOTE_CACHE", value_name = "URL",
          value_parser = clap::value_parser!(crate::remote::RemoteUrl))]
    pub remote_cache: Option<crate::remote::RemoteUrl>,
    /// The REAPI instance name of the cache (default: none).
    #[arg(
        long,
        env = "SEALROOM_REMOTE_INSTANCE",
        value_name = "NAME",
        default_value = "",
        hide_default_value = true,
        requires = "remote_cache"
    )]
    pub remote_instance: String,
    /// Read from the remote cache but never write to it (for untrusted runners).
    #[arg(long, env = "SEALROOM_REMOTE_READ_ONLY", requires = "remote_cache")]
    pub remote_read_only: bool,
    /// A PEM public key whose signed results are trusted; repeat for several. With any, a
    /// remote entry without a valid signature by one of them is a miss.
    #[arg(
        long = "trust-key",
        env = "SEALROOM_TRUST_KEYS",
        value_name = "PUB",
        value_delimiter = ',',
        requires = "remote_cache"
    )]
    pub trust_keys: Vec<PathBuf>,
    /// The CA certificate (PEM) a grpcs:// cache's certificate must chain to (default: the
    /// system's roots).
    #[arg(
        long,
        env = "SEALROOM_REMOTE_CA",
        value_name = "FILE",
        requires = "remote_cache"
    )]
    pub remote_ca: Option<PathBuf>,
    /// A client certificate (PEM) for a grpcs:// cache that wants one; with --remote-client-key.
    #[arg(long, env = "SEALROOM_REMOTE_CLIENT_CERT", value_name = "FILE",
          requires_all = ["remote_cache", "remote_client_key"])]
    pub remote_client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(
        long,
        env = "SEALROOM_REMOTE_CLIENT_KEY",
        value_name = "FILE",
        requires = "remote_client_cert"
    )]
    pub remote_client_key: Option<PathBuf>,
}

impl RemoteArgs {
    /// The settings, when a cache is given.
    pub fn settings(&self) -> Option<crate::remote::RemoteSettings> {
        let url = self.remote_cache.clone()?;
        Some(crate::remote::RemoteSettings {
            url,
            instance: self.remote_instance.clone(),
            tls: crate::remote::TlsFiles {
                ca: self.remote_ca.clone(),
                cert: self.remote_client_cert.clone(),
                key: self.remote_client_key.clone(),
            },
            read_only: self.remote_read_only,
            trust_keys: self.trust_keys.clone(),
        })
    }
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The artifact file to check, or an image in a registry pinned by its manifest digest
    /// (`REGISTRY/REPOSITORY@sha256:<hex>`), whose attestations are read from the registry
    /// (cosign's `.att` tag and OCI referrers).
    pub artifact: PathBuf,
    /// Its provenance (`<artifact>.intoto.jsonl`); needed for a file, not for an image in a
    /// registry.
    #[arg(long, value_name = "FILE")]
    pub provenance: Option<PathBuf>,
    /// A trusted PEM public key (SPKI); repeat for several. Signatures by --threshold distinct
    /// keys must verify.
    #[arg(long = "key", value_name = "PUB", required = true)]
    pub keys: Vec<PathBuf>,
    /// How many distinct keys of --key must have signed (a key signing twice counts once).
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub threshold: u64,
    /// The builder id the provenance must name.
    #[arg(long, value_name = "ID")]
    pub builder_id: Option<String>,
    /// A `source:*` dependency must have this tree digest (`sha256:<hex>`).
    #[arg(long, value_name = "sha256:HEX")]
    pub source_digest: Option<crate::digest::TreeDigest>,
    /// The spec's digest recorded in `externalParameters.spec.digest` (`sha256:<hex>`).
    #[arg(long, value_name = "sha256:HEX")]
    pub spec_digest: Option<crate::digest::BlobDigest>,
    /// The SBOM attestation `<artifact>.sbom.intoto.jsonl` to check too: signed by the same
    /// keys, its subject the artifact, its document named in the provenance's byproducts.
    #[arg(long, value_name = "FILE")]
    pub sbom: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct FetchArgs {
    /// The spec (default: ./sealroom.toml).
    #[arg(value_name = "SPEC", default_value = "sealroom.toml")]
    pub spec: PathBuf,
    /// Open no socket: report what the store lacks.
    #[arg(long)]
    pub offline: bool,
    /// How many downloads at once (default: the number of CPUs).
    #[arg(long, short = 'j', value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,
    #[command(flatten)]
    pub network: NetworkArgs,
}

/// The network choices that are the caller's, never the spec's alone.
#[derive(Debug, Clone, clap::Args)]
pub struct NetworkArgs {
    /// Let fixed-output fetches with `network = "host"` share the host's network namespace
    /// (its loopback services and abstract sockets included). Without it such a fetch is refused:
    /// a spec alone cannot ask for the host's network.
    #[arg(long)]
    pub allow_host_network: bool,
    /// Download every URL that starts with PREFIX from URL instead (the rest of the URL kept):
    /// `--mirror https://origin.example/=http://127.0.0.1:8080/`. Repeatable; the longest
    /// prefix wins, and it replaces a `[mirrors]` entry of the spec with the same prefix.
    /// Digests are checked as ever; provenance records both URLs.
    #[arg(long = "mirror", value_name = "PREFIX=URL", value_parser = parse_mirror)]
    pub mirrors: Vec<(String, String)>,
}

fn parse_mirror(value: &str) -> Result<(String, String), String> {
    crate::fetch::Mirrors::parse_flag(value).map_err(|invalid| invalid.to_string())
}

#[derive(Debug, clap::Args)]
pub struct PinArgs {
    /// The spec to edit (default: ./sealroom.toml).
    #[arg(value_name = "SPEC", default_value = "sealroom.toml")]
    pub spec: PathBuf,
    #[command(flatten)]
    pub network: NetworkArgs,
}

#[derive(Debug, clap::Args)]
pub struct ReproduceArgs {
    /// The provenance (`<artifact>.intoto.jsonl`) to rebuild from.
    pub provenance: PathBuf,
    /// The directory holding the spec and the sources the provenance names.
    #[arg(long, value_name = "DIR")]
    pub source: PathBuf,
    /// A PEM public key the provenance must be signed with.
    #[arg(long, value_name = "PUB")]
    pub key: Option<PathBuf>,
    #[command(flatten)]
    pub network: NetworkArgs,
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The spec (default: ./sealroom.toml).
    #[arg(value_name = "SPEC", default_value = "sealroom.toml")]
    pub spec: PathBuf,
    /// Where diffoscope reports of differing files go (when diffoscope is installed).
    #[arg(long, value_name = "DIR", default_value = "sealroom-check")]
    pub report_dir: PathBuf,
    #[command(flatten)]
    pub network: NetworkArgs,
}

#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// The spec (default: ./sealroom.toml).
    #[arg(value_name = "SPEC", default_value = "sealroom.toml")]
    pub spec: PathBuf,
    /// Only this step (default: every step).
    #[arg(value_name = "STEP")]
    pub step: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct KeygenArgs {
    #[arg(long, value_enum, default_value_t = Algorithm::EcdsaP256)]
    pub algorithm: Algorithm,
    /// Writes PREFIX.key and PREFIX.pub.
    #[arg(long, value_name = "PREFIX", default_value = "sealroom")]
    pub out: PathBuf,
    /// Encrypt the private key: `pkcs8` with the passphrase in SEALROOM_KEY_PASSWORD, or
    /// `cosign` (a cosign key file) with the passphrase in COSIGN_PASSWORD.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub encrypt: Option<KeyEncryption>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyEncryption {
    Pkcs8,
    Cosign,
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Make a deterministic image from a directory or tar and load it into the engine; prints
    /// the pinned reference `NAME@sha256:<id>`.
    Import {
        /// A directory, or a tar file (optionally gzip-compressed).
        rootfs: PathBuf,
        #[arg(long, value_name = "NAME")]
        name: String,
    },
}
