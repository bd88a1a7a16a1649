//! sealroom: a hermetic build orchestrator.
//!
//! The pipeline, and the module that owns each stage:
//!
//! ```text
//!  sealroom.toml ─► spec ─► ops::build ─┬─► ops::fetch (network on) ─► fetch: download, unpack
//!                                       ├─► sandbox (Docker, network off) per step, as a DAG
//!                                       ├─► store: sources, fetches and /out as trees; action cache
//!                                       └─► ops::attest ─► provenance (SLSA v1) ─► sign (DSSE)
//!                                                           └─► <artifact>.intoto.jsonl
//! ```
//!
//! - [`error`]: a leaf: the documented exit codes, the `Failure` trait by which each module's
//!   error names its exit code, and the `Error` a command returns (any module's error, whole).
//! - [`spec`]: parses the TOML into a raw mirror (`spec::raw`) and validates it once into a model
//!   that cannot be invalid (pinned images, unique names, an acyclic graph, safe paths, limits).
//! - [`digest`]: typed SHA-256 digests (a blob is not a tree) and hashing while streaming.
//! - [`atomic`]: the one atomic file write (temp file, mode, fsync, rename) everything uses.
//! - [`fetch`]: pinned downloads (timeouts, retries, recorded redirects) and safe unpacking.
//! - [`store`]: the content-addressed store: blobs, canonical tree objects, read-only
//!   materializations that steps mount, the action cache, the stat cache of sources, locking,
//!   verify and gc.
//! - [`sandbox`]: the step record (what runs) and the `Engine` trait, the one boundary to the
//!   container engine (run a step, image id, load, save, tag, leftovers); `sandbox::docker` is
//!   the only module that uses bollard, `sandbox::fake` keeps everything in memory for tests;
//!   `sandbox::transfer` carries a step's files to and from an engine on another machine.
//! - [`remote`]: the shared action cache on the Remote Execution API (REAPI v2): a step record
//!   as an `Action`, stored trees as `Directory` Merkle trees, the gRPC client, and the signed
//!   statement next to each uploaded result.
//! - [`image`]: deterministic images from a root filesystem, and OCI images from build outputs.
//! - [`registry`]: pulling bases and pushing images (the distribution API).
//! - [`convert`]: a Dockerfile (the hermetic subset) into a spec.
//! - [`provenance`]: in-toto Statement v1 and SLSA Provenance v1 types.
//! - [`sbom`]: software bills of materials; `sbom::image` parses what a base image holds (its
//!   os-release and the Debian packages of its dpkg status file).
//! - [`sign`]: DSSE envelopes (PAE), ECDSA P-256 and Ed25519 keys (plain, encrypted, cosign),
//!   Sigstore bundles.
//! - [`ops`]: one function per command (build, fetch, pin, verify, reproduce, check, explain,
//!   keygen, image import, push, store), composing the modules above; [`cli`] only parses
//!   arguments.
//!
//! Data flows one way, in layers, each using only those below it: `error`; `digest`, `atomic`;
//! `spec`, `sign`, `provenance`, `fetch`, `store`; `sandbox`, `convert`; `remote`; `image`; `registry`;
//! `sbom`; `ops`; `cli`. Inside `ops` the commands form no cycle (`build` uses `fetch`,
//! `attest` and `image_build`; `check` and `reproduce` use `build`). `tests/module_map.rs`
//! checks all three.

pub mod atomic;
pub mod cli;
pub mod convert;
pub mod digest;
pub mod error;
pub mod fetch;
pub mod image;
pub mod lockfile;
pub mod ops;
pub mod provenance;
pub mod registry;
pub mod remote;
pub mod sandbox;
pub mod sbom;
pub mod sign;
pub mod spec;
pub mod store;

pub use error::{Error, ExitCode};
