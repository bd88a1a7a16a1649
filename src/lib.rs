//! sealroom: a hermetic build orchestrator.
//!
//! The pipeline, and the module that owns each stage:
//!
//! ```text
//!  sealroom.toml ──► spec ──► ops::build ──► sandbox (Docker, network off) ──► store ──► provenance ──► sign
//!                    │          │   ▲                │ /out                     │ trees     │ Statement   │ DSSE
//!                    raw.rs     │   └─ store: inputs materialized read-only ◄──┘          └─ SLSA v1    └─ .intoto.jsonl
//!                    → model    └─ image: pinned base images, imported deterministically
//! ```
//!
//! - [`spec`]: parses the TOML into a raw mirror (`spec::raw`) and validates it once into a model
//!   that cannot be invalid (pinned image, unique names, an acyclic step graph, safe paths).
//! - [`digest`]: typed SHA-256 digests (a blob is not a tree) and hashing while streaming.
//! - [`store`]: the content-addressed store: blobs, canonical tree objects, read-only
//!   materializations that steps mount, atomic writes.
//! - [`sandbox`]: the `Sandbox` trait a step runs through; `sandbox::docker` drives Docker with
//!   bollard, `sandbox::fake` records runs for unit tests.
//! - [`image`]: deterministic OCI/Docker images from a root filesystem, loaded through bollard.
//! - [`provenance`]: in-toto Statement v1 and SLSA Provenance v1 types.
//! - [`sign`]: DSSE envelopes (PAE), ECDSA P-256 and Ed25519 keys in PEM.
//! - [`ops`]: one function per command, composing the modules above; [`cli`] only parses
//!   arguments and prints.
//!
//! Data flows one way: `ops` calls the others; `spec`, `digest`, `store`, `sign` and `provenance`
//! never call `sandbox` or `ops`.

pub mod cli;
pub mod convert;
pub mod digest;
pub mod error;
pub mod image;
pub mod ops;
pub mod provenance;
pub mod registry;
pub mod sandbox;
pub mod sign;
pub mod spec;
pub mod store;

pub use error::{Error, ExitCode};
