//! in-toto Statement v1 with an SLSA Provenance v1 predicate: the types, serialized exactly as the
//! specs name their fields. The build type sealroom uses is documented in `docs/provenance.md`.

/// The builder id recorded when `--builder-id` is not given.
pub const DEFAULT_BUILDER_ID: &str = "https://sealroom.dev/builders/local/v1";
