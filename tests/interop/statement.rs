//! A statement in the shape `sealroom build` writes (docs/provenance.md), made with the
//! library, shared by the verify and interop tests (`#[path]`-included, not a test itself).

use sealroom::provenance::{
    BUILD_TYPE, BuildDefinition, BuildMetadata, Builder, DEFAULT_BUILDER_ID, Provenance,
    ResourceDescriptor, RunDetails, Statement, rfc3339_utc,
};

/// The image id recorded for the base image.
pub const IMAGE_HEX: &str = "1111111111111111111111111111111111111111111111111111111111111111";
/// The tree digest of the `src` source.
pub const SOURCE_HEX: &str = "2222222222222222222222222222222222222222222222222222222222222222";
/// The tree digest of the `vendor` source.
pub const VENDOR_HEX: &str = "4444444444444444444444444444444444444444444444444444444444444444";
/// The sha256 of the spec file.
pub const SPEC_HEX: &str = "3333333333333333333333333333333333333333333333333333333333333333";
/// The sha256 of the `compile` step's log.
pub const LOG_HEX: &str = "5555555555555555555555555555555555555555555555555555555555555555";

fn object(value: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    match value {
        serde_json::Value::Object(map) => map,
        other => panic!("expected a JSON object, found {other}"),
    }
}

/// A statement for one artifact `name` with sha256 `artifact_hex`, built by `builder_id`.
pub fn build_statement(name: &str, artifact_hex: &str, builder_id: &str) -> Statement {
    let now = rfc3339_utc(std::time::SystemTime::now());
    Statement::new(
        vec![ResourceDescriptor::subject(name, artifact_hex)],
        Provenance {
            build_definition: BuildDefinition {
                build_type: BUILD_TYPE.to_string(),
                external_parameters: object(serde_json::json!({
                    "spec": {"path": "sealroom.toml", "digest": {"sha256": SPEC_HEX}},
                    "name": "hello",
                })),
                internal_parameters: Some(object(serde_json::json!({
                    "environment": {
                        "SOURCE_DATE_EPOCH": "0", "TZ": "UTC", "LC_ALL": "C", "HOME": "/tmp",
                    },
                    "user": "1000:1000",
                    "workdir": "/tmp",
                    "network": "none",
                    "readOnlyInputs": true,
                }))),
                resolved_dependencies: vec![
                    ResourceDescriptor::with_sha256(
                        "image",
                        Some(format!("docker-image:sealroom/busybox@sha256:{IMAGE_HEX}")),
                        IMAGE_HEX,
                    ),
                    ResourceDescriptor::with_sha256("source:src", None, SOURCE_HEX)
                        .annotate("path", "src"),
                    ResourceDescriptor::with_sha256("source:vendor", None, VENDOR_HEX)
                        .annotate("path", "third_party/vendor"),
                ],
            },
            run_details: RunDetails {
                builder: Builder::sealroom(builder_id),
                metadata: Some(BuildMetadata {
                    invocation_id: Some("0b7c1d0e-interop-test".to_string()),
                    started_on: Some(now.clone()),
                    finished_on: Some(now),
                }),
                byproducts: vec![ResourceDescriptor::with_sha256(
                    "log:compile",
                    None,
                    LOG_HEX,
                )],
            },
        },
    )
}

/// `build_statement` with the default builder id.
#[allow(dead_code)]
pub fn default_statement(name: &str, artifact_hex: &str) -> Statement {
    build_statement(name, artifact_hex, DEFAULT_BUILDER_ID)
}
