//! in-toto Statement v1 with an SLSA Provenance v1 predicate: the types, serialized exactly as the
//! specs name their fields. The build type sealroom uses is documented in `docs/provenance.md`.
//!
//! These are plain data: `ops::build` fills them, `sign::dsse` wraps their JSON, `ops::verify`
//! reads them back. Empty optional fields are left out of the JSON, and no field is written that
//! the in-toto-attestation protobuf schema does not know, so third-party parsers accept it.
//! This module does no I/O.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The builder id recorded when `--builder-id` is not given.
pub const DEFAULT_BUILDER_ID: &str = "https://sealroom.dev/builders/local/v1";
/// `Statement._type` for in-toto Statement v1.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// `Statement.predicateType` for SLSA Provenance v1.
pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";
/// The DSSE `payloadType` of an in-toto statement.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// `buildDefinition.buildType` of a sealroom build (see `docs/provenance.md`).
pub const BUILD_TYPE: &str = "https://sealroom.dev/build-types/spec/v1";

/// An in-toto Statement v1 whose predicate is SLSA Provenance v1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Statement {
    #[serde(rename = "_type")]
    pub statement_type: String,
    pub subject: Vec<ResourceDescriptor>,
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    pub predicate: Provenance,
}

impl Statement {
    /// A statement with the in-toto and SLSA type URIs filled in.
    pub fn new(subject: Vec<ResourceDescriptor>, predicate: Provenance) -> Self {
        Statement {
            statement_type: STATEMENT_TYPE.to_string(),
            subject,
            predicate_type: PREDICATE_TYPE.to_string(),
            predicate,
        }
    }

    /// The JSON bytes that go into a DSSE envelope's payload.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a statement serializes to JSON")
    }

    /// The subjects' sha256 digests (lower-case hex), for matching an artifact.
    pub fn subject_sha256(&self) -> impl Iterator<Item = (&str, &str)> {
        self.subject.iter().filter_map(|subject| {
            let hex = subject.digest.get("sha256")?;
            Some((subject.name.as_deref().unwrap_or(""), hex.as_str()))
        })
    }
}

/// The in-toto ResourceDescriptor: a subject, a dependency or a byproduct. A dependency needs at
/// least one of `uri`, `digest` or `content`; a subject needs `digest`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceDescriptor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// Algorithm (e.g. `sha256`) to lower-case hex.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub digest: BTreeMap<String, String>,
    /// The resource's bytes, standard base64, for small inline resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download_location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub annotations: Map<String, Value>,
}

impl ResourceDescriptor {
    /// `{name, uri?, digest: {sha256: hex}}`; `hex` must be 64 lower-case hex characters
    /// (take it from `crate::digest::Digest::hex`).
    pub fn with_sha256(
        name: impl Into<String>,
        uri: Option<String>,
        hex: impl Into<String>,
    ) -> Self {
        ResourceDescriptor {
            name: Some(name.into()),
            uri,
            digest: BTreeMap::from([("sha256".to_string(), hex.into())]),
            ..Default::default()
        }
    }

    /// A subject: the artifact's name (its path under `--out`) and its sha256.
    pub fn subject(name: impl Into<String>, hex: impl Into<String>) -> Self {
        Self::with_sha256(name, None, hex)
    }

    /// Adds one annotation (a JSON value under `annotations`).
    pub fn annotate(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.annotations.insert(key.into(), value.into());
        self
    }
}

/// SLSA Provenance v1 predicate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Provenance {
    pub build_definition: BuildDefinition,
    pub run_details: RunDetails,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildDefinition {
    pub build_type: String,
    /// What the user chose (a JSON object): for sealroom the spec's path and digest, its name.
    pub external_parameters: Map<String, Value>,
    /// What the builder fixed (a JSON object): environment, user, network, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_parameters: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resolved_dependencies: Vec<ResourceDescriptor>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunDetails {
    pub builder: Builder,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BuildMetadata>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub byproducts: Vec<ResourceDescriptor>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Builder {
    pub id: String,
    /// Component name to version, e.g. `{"sealroom": "0.1.0"}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub version: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub builder_dependencies: Vec<ResourceDescriptor>,
}

impl Builder {
    /// A builder with `id` and sealroom's own version.
    pub fn sealroom(id: impl Into<String>) -> Self {
        Builder {
            id: id.into(),
            version: BTreeMap::from([(
                "sealroom".to_string(),
                env!("CARGO_PKG_VERSION").to_string(),
            )]),
            builder_dependencies: Vec::new(),
        }
    }
}

/// Timestamps are RFC 3339 in UTC with a `Z` (see [`rfc3339_utc`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invocation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_on: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_on: Option<String>,
}

/// `time` as RFC 3339 in UTC to the second, e.g. `2024-05-01T12:00:00Z`. Times before the Unix
/// epoch are clamped to it.
pub fn rfc3339_utc(time: SystemTime) -> String {
    let seconds = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = (seconds / 86_400) as i64;
    let second_of_day = seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn example() -> Statement {
        let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        Statement::new(
            vec![ResourceDescriptor::subject("hello.txt", hex)],
            Provenance {
                build_definition: BuildDefinition {
                    build_type: BUILD_TYPE.to_string(),
                    external_parameters: serde_json::json!({"name": "hello"})
                        .as_object()
                        .unwrap()
                        .clone(),
                    internal_parameters: None,
                    resolved_dependencies: vec![
                        ResourceDescriptor::with_sha256("source:src", None, hex)
                            .annotate("path", "src"),
                    ],
                },
                run_details: RunDetails {
                    builder: Builder::sealroom(DEFAULT_BUILDER_ID),
                    metadata: Some(BuildMetadata {
                        invocation_id: Some("abc".to_string()),
                        started_on: Some(rfc3339_utc(UNIX_EPOCH)),
                        finished_on: None,
                    }),
                    byproducts: Vec::new(),
                },
            },
        )
    }

    #[test]
    fn serializes_with_the_spec_field_names_and_no_empty_fields() {
        let value: Value = serde_json::from_slice(&example().to_json()).unwrap();
        assert_eq!(value["_type"], STATEMENT_TYPE);
        assert_eq!(value["predicateType"], PREDICATE_TYPE);
        assert_eq!(
            value["subject"][0]["digest"]["sha256"]
                .as_str()
                .unwrap()
                .len(),
            64
        );
        assert_eq!(
            value["subject"][0].as_object().unwrap().len(),
            2,
            "only name and digest"
        );
        let build_definition = &value["predicate"]["buildDefinition"];
        assert_eq!(build_definition["buildType"], BUILD_TYPE);
        assert_eq!(
            build_definition["resolvedDependencies"][0]["annotations"]["path"],
            "src"
        );
        assert!(build_definition.get("internalParameters").is_none());
        let run_details = &value["predicate"]["runDetails"];
        assert_eq!(run_details["builder"]["id"], DEFAULT_BUILDER_ID);
        assert_eq!(run_details["metadata"]["invocationId"], "abc");
        assert_eq!(run_details["metadata"]["startedOn"], "1970-01-01T00:00:00Z");
        assert!(run_details.get("byproducts").is_none());
    }

    #[test]
    fn roundtrips_through_json() {
        let statement = example();
        let parsed: Statement = serde_json::from_slice(&statement.to_json()).unwrap();
        assert_eq!(parsed, statement);
        let subjects: Vec<_> = parsed.subject_sha256().collect();
        assert_eq!(subjects[0].0, "hello.txt");
    }

    #[test]
    fn formats_rfc3339_in_utc() {
        let at = |seconds| rfc3339_utc(UNIX_EPOCH + Duration::from_secs(seconds));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_709_251_199), "2024-02-29T23:59:59Z");
        assert_eq!(at(4_102_444_800), "2100-01-01T00:00:00Z");
    }
}
