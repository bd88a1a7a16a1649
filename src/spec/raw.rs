//! The serde mirror of the spec's TOML, with spans for error locations. Not the model: nothing
//! here is validated beyond TOML types and unknown keys.
