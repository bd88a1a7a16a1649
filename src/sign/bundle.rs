//! The Sigstore bundle (v0.3) form of a DSSE envelope signed with a plain public key, for
//! `cosign verify-blob-attestation --bundle` and other Sigstore clients.
//!
//! The shape is the protobuf-specs `dev.sigstore.bundle.v1.Bundle` in its JSON mapping
//! (lowerCamelCase field names, bytes as standard base64):
//!
//! ```json
//! {"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
//!  "verificationMaterial": {"publicKey": {"hint": "<keyid>"}, "tlogEntries": []},
//!  "dsseEnvelope": {"payload": "<base64>", "payloadType": "...",
//!                   "signatures": [{"sig": "<base64>", "keyid": "<keyid>"}]}}
//! ```
//!
//! There is no transparency log entry or timestamp: sealroom signs offline, and the verifier
//! supplies the public key the hint names. This module builds JSON values; writing the
//! `.sigstore.json` file is the build's.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::dsse::Envelope;
use super::keys::VerifyingKey;

/// `Bundle.mediaType` for bundle format v0.3.
pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

/// The file name suffix sealroom uses for bundles: `<artifact>.sigstore.json`.
pub const BUNDLE_SUFFIX: &str = ".sigstore.json";

/// A Sigstore bundle v0.3 holding `envelope`, with `public_key`'s key id as the verification
/// material's hint. Signatures keep their own `keyid`; an empty one becomes the hint, so every
/// signature names the key a verifier must supply.
pub fn bundle_json(envelope: &Envelope, public_key: &VerifyingKey) -> Value {
    let hint = public_key.key_id();
    let signatures: Vec<Value> = envelope
        .signatures
        .iter()
        .map(|signature| {
            let keyid = if signature.keyid.is_empty() {
                hint.as_str()
            } else {
                signature.keyid.as_str()
            };
            json!({"sig": STANDARD.encode(&signature.sig), "keyid": keyid})
        })
        .collect();
    json!({
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {
            "publicKey": {"hint": hint},
            "tlogEntries": [],
        },
        "dsseEnvelope": {
            "payload": STANDARD.encode(&envelope.payload),
            "payloadType": envelope.payload_type,
            "signatures": signatures,
        },
    })
}

/// The envelope inside a bundle made by [`bundle_json`] (or any v0.1–v0.3 bundle with DSSE
/// content), for reading bundles back.
pub fn envelope_of(bundle: &Value) -> Result<Envelope, super::SignError> {
    let malformed = |detail: String| super::SignError::MalformedEnvelope { detail };
    let media_type = bundle
        .get("mediaType")
        .and_then(Value::as_str)
        .unwrap_or("nothing");
    if !media_type.starts_with("application/vnd.dev.sigstore.bundle") {
        return Err(malformed(format!(
            "expected a Sigstore bundle (mediaType {BUNDLE_MEDIA_TYPE}), found mediaType {media_type}"
        )));
    }
    let envelope = bundle.get("dsseEnvelope").ok_or_else(|| {
        malformed("expected a Sigstore bundle with dsseEnvelope, found none".to_string())
    })?;
    Envelope::from_json(&envelope.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::keys::{Algorithm, SigningKey};

    #[test]
    fn has_the_v0_3_shape_and_roundtrips() {
        let key = SigningKey::generate(Algorithm::EcdsaP256);
        let envelope = Envelope::sign("application/vnd.in-toto+json", b"{\"a\":1}", &[&key]);
        let bundle = bundle_json(&envelope, &key.verifying_key());
        let key_id = key.verifying_key().key_id();

        assert_eq!(bundle["mediaType"], BUNDLE_MEDIA_TYPE);
        assert_eq!(
            bundle["verificationMaterial"],
            json!({"publicKey": {"hint": key_id}, "tlogEntries": []})
        );
        let dsse = &bundle["dsseEnvelope"];
        assert_eq!(dsse["payloadType"], "application/vnd.in-toto+json");
        assert_eq!(dsse["payload"], STANDARD.encode(b"{\"a\":1}"));
        assert_eq!(dsse["signatures"][0]["keyid"], key_id);
        assert_eq!(
            dsse["signatures"][0]["sig"],
            STANDARD.encode(&envelope.signatures[0].sig)
        );
        let mut keys: Vec<&String> = bundle.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(keys, ["dsseEnvelope", "mediaType", "verificationMaterial"]);

        let back = envelope_of(&bundle).unwrap();
        assert_eq!(back, envelope);
        back.verify(&[key.verifying_key()], 1).unwrap();
    }

    #[test]
    fn an_unnamed_signature_gets_the_hint() {
        let key = SigningKey::generate(Algorithm::Ed25519);
        let mut envelope = Envelope::sign("application/vnd.in-toto+json", b"{}", &[&key]);
        envelope.signatures[0].keyid.clear();
        let bundle = bundle_json(&envelope, &key.verifying_key());
        assert_eq!(
            bundle["dsseEnvelope"]["signatures"][0]["keyid"],
            key.verifying_key().key_id()
        );
    }

    #[test]
    fn what_is_not_a_bundle_is_named() {
        let error = envelope_of(&json!({"payload": ""})).unwrap_err();
        assert_eq!(
            error.to_string(),
            "malformed DSSE envelope: expected a Sigstore bundle (mediaType \
             application/vnd.dev.sigstore.bundle.v0.3+json), found mediaType nothing"
        );
    }
}
