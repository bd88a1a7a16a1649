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
//! - [`spec`]: parses the TOML into a raw mirror (`spec::raw`) and validates it once into a model
//!   that cannot be invalid (pinned images, unique names, an acyclic graph, safe paths, limits).
//! - [`digest`]: typed SHA-256 digests (a blob is not a tree) and hashing while streaming.
//! - [`atomic`]: the one atomic file write (temp file, mode, fsync, rename) everything uses.
//! - [`fetch`]: pinned downloads (timeouts, retries, recorded redirects) and safe unpacking.
//! - [`store`]: the content-addressed store: blobs, canonical tree objects, read-only
//!   materializations that steps mount, the action cache, locking, verify and gc.
//! - [`sandbox`]: the `Sandbox` trait a step runs through; `sandbox::docker` drives Docker with
//!   bollard (limits, cleanup, leftovers), `sandbox::fake` records runs for unit tests.
//! - [`image`]: deterministic images from a root filesystem, loaded through bollard.
//! - [`provenance`]: in-toto Statement v1 and SLSA Provenance v1 types.
//! - [`sign`]: DSSE envelopes (PAE), ECDSA P-256 and Ed25519 keys (plain, encrypted, cosign),
//!   Sigstore bundles.
//! - [`ops`]: one function per command (build, fetch, pin, verify, reproduce, check, keygen,
//!   image import, store), composing the modules above; [`cli`] only parses arguments.
//!
//! Data flows one way: `ops` calls the others; `spec`, `digest`, `store`, `fetch`, `sign` and
//! `provenance` never call `sandbox` or `ops`.

pub mod atomic;
pub mod cli;
pub mod convert;
pub mod digest;
pub mod error;
pub mod fetch;
pub mod image;
pub mod ops;
pub mod provenance;
pub mod registry;
pub mod sandbox;
pub mod sign;
pub mod spec;
pub mod store;

pub use error::{Error, ExitCode};
