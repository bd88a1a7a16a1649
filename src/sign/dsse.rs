//! DSSE envelopes and the pre-authentication encoding (PAE), per
//! <https://github.com/secure-systems-lab/dsse/blob/master/protocol.md>.
//!
//! The JSON form is `{"payloadType", "payload" (base64), "signatures": [{"keyid", "sig"}]}`.
//! sealroom writes standard padded base64 and reads standard or URL-safe, padded or not, as the
//! spec asks. Signatures are always computed over `pae(payloadType, payload)`, never over the
//! payload alone.

use std::collections::BTreeSet;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};

use super::SignError;
use super::keys::{SigningKey, VerifyingKey};

/// `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`, lengths in bytes as ASCII decimal.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload_type.len() + payload.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

/// One signature: the signing key's id (a hint, not authenticated) and the signature bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub keyid: String,
    pub sig: Vec<u8>,
}

/// A DSSE envelope with its payload decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub payload_type: String,
    pub payload: Vec<u8>,
    pub signatures: Vec<Signature>,
}

/// The JSON shape, with base64 strings as they appear on the wire.
#[derive(serde::Serialize, serde::Deserialize)]
struct RawEnvelope {
    #[serde(rename = "payloadType")]
    payload_type: String,
    payload: String,
    signatures: Vec<RawSignature>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct RawSignature {
    /// Optional in the spec; always written (securesystemslib requires it on input).
    #[serde(default)]
    keyid: String,
    sig: String,
}

impl Envelope {
    /// An envelope signed by each of `keys` over the PAE.
    pub fn sign(payload_type: &str, payload: &[u8], keys: &[&SigningKey]) -> Self {
        let message = pae(payload_type, payload);
        let signatures = keys
            .iter()
            .map(|key| Signature {
                keyid: key.verifying_key().key_id(),
                sig: key.sign(&message),
            })
            .collect();
        Envelope {
            payload_type: payload_type.to_string(),
            payload: payload.to_vec(),
            signatures,
        }
    }

    /// An envelope without signatures, for a build run without a key.
    pub fn unsigned(payload_type: &str, payload: &[u8]) -> Self {
        Envelope {
            payload_type: payload_type.to_string(),
            payload: payload.to_vec(),
            signatures: Vec::new(),
        }
    }

    /// The PAE bytes the signatures are over.
    pub fn pae(&self) -> Vec<u8> {
        pae(&self.payload_type, &self.payload)
    }

    /// Compact JSON on one line, ending in `\n`: one line of an `.intoto.jsonl` file.
    pub fn to_json_line(&self) -> String {
        let mut line =
            serde_json::to_string(&self.to_raw()).expect("an envelope serializes to JSON");
        line.push('\n');
        line
    }

    /// Parses the JSON form; base64 may be standard or URL-safe, with or without padding.
    pub fn from_json(text: &str) -> Result<Self, SignError> {
        let raw: RawEnvelope =
            serde_json::from_str(text.trim()).map_err(|error| SignError::MalformedEnvelope {
                detail: format!(
                    "expected a JSON object with payloadType, payload and signatures: {error}"
                ),
            })?;
        let payload = decode_base64("payload", &raw.payload)?;
        let signatures = raw
            .signatures
            .into_iter()
            .enumerate()
            .map(|(index, signature)| {
                Ok(Signature {
                    keyid: signature.keyid,
                    sig: decode_base64(&format!("signatures[{index}].sig"), &signature.sig)?,
                })
            })
            .collect::<Result<Vec<_>, SignError>>()?;
        Ok(Envelope {
            payload_type: raw.payload_type,
            payload,
            signatures,
        })
    }

    /// Checks that signatures by at least `threshold` distinct keys of `keys` verify over the
    /// PAE; returns the key ids of the keys that verified, in the order given. A key that signed
    /// twice counts once; the `keyid` hints are not trusted, every signature is tried with every
    /// key.
    pub fn verify(
        &self,
        keys: &[VerifyingKey],
        threshold: usize,
    ) -> Result<Vec<String>, SignError> {
        if threshold == 0 {
            return Err(SignError::ZeroThreshold);
        }
        if self.signatures.is_empty() {
            return Err(SignError::Unsigned { threshold });
        }
        let message = self.pae();
        let mut seen = BTreeSet::new();
        let mut verified = Vec::new();
        for key in keys {
            let key_id = key.key_id();
            if seen.contains(&key_id) {
                continue;
            }
            if self
                .signatures
                .iter()
                .any(|signature| key.verify(&message, &signature.sig))
            {
                seen.insert(key_id.clone());
                verified.push(key_id);
            }
        }
        if verified.len() >= threshold {
            return Ok(verified);
        }
        let mut listed = BTreeSet::new();
        let keys_given: Vec<String> = keys
            .iter()
            .map(VerifyingKey::key_id)
            .filter(|key_id| listed.insert(key_id.clone()))
            .collect();
        Err(SignError::BelowThreshold {
            threshold,
            verified,
            keys: keys_given,
            signed_by: self.signatures.iter().map(|s| s.keyid.clone()).collect(),
        })
    }

    fn to_raw(&self) -> RawEnvelope {
        RawEnvelope {
            payload_type: self.payload_type.clone(),
            payload: STANDARD.encode(&self.payload),
            signatures: self
                .signatures
                .iter()
                .map(|signature| RawSignature {
                    keyid: signature.keyid.clone(),
                    sig: STANDARD.encode(&signature.sig),
                })
                .collect(),
        }
    }
}

impl serde::Serialize for Envelope {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_raw().serialize(serializer)
    }
}

/// Standard or URL-safe alphabet, padded or not (DSSE: "either standard or URL-safe").
fn decode_base64(field: &str, text: &str) -> Result<Vec<u8>, SignError> {
    let normalized: String = text
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    STANDARD_NO_PAD
        .decode(normalized.as_bytes())
        .map_err(|error| SignError::Base64 {
            field: field.to_string(),
            detail: error.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::keys::Algorithm;

    const IN_TOTO: &str = "application/vnd.in-toto+json";

    #[test]
    fn pae_matches_the_spec_vector() {
        // The example from the DSSE protocol document.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn pae_lengths_are_bytes_not_characters() {
        // "é" is 2 bytes, "→" 3 bytes in UTF-8: 5 characters, 8 bytes.
        let payload_type = "tést→é";
        assert_eq!(payload_type.chars().count(), 6);
        assert_eq!(
            pae(payload_type, "ü".as_bytes()),
            "DSSEv1 10 tést→é 2 ü".as_bytes().to_vec()
        );
    }

    #[test]
    fn pae_of_an_empty_payload() {
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ".to_vec());
        assert_eq!(
            pae(IN_TOTO, b""),
            b"DSSEv1 28 application/vnd.in-toto+json 0 ".to_vec()
        );
    }

    #[test]
    fn empty_payload_signs_and_roundtrips() {
        let key = SigningKey::generate(Algorithm::Ed25519);
        let envelope = Envelope::sign(IN_TOTO, b"", &[&key]);
        let line = envelope.to_json_line();
        assert!(line.contains(r#""payload":"""#), "{line}");
        let parsed = Envelope::from_json(&line).unwrap();
        assert_eq!(parsed, envelope);
        parsed.verify(&[key.verifying_key()], 1).unwrap();
    }

    #[test]
    fn json_line_is_one_line_in_the_standard_form() {
        let key = SigningKey::generate(Algorithm::EcdsaP256);
        let envelope = Envelope::sign(IN_TOTO, b"{\"a\":\"\xff\xfe?>\"}", &[&key]);
        let line = envelope.to_json_line();
        assert!(line.ends_with('\n'));
        assert_eq!(line.matches('\n').count(), 1);
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["payloadType"], IN_TOTO);
        assert_eq!(value["payload"], STANDARD.encode(&envelope.payload));
        assert_eq!(
            value["signatures"][0]["keyid"],
            key.verifying_key().key_id()
        );
        assert_eq!(
            value["signatures"][0]["sig"],
            STANDARD.encode(&envelope.signatures[0].sig)
        );
    }

    #[test]
    fn accepts_url_safe_and_unpadded_base64() {
        // Bytes whose base64 uses `+` and `/`, and a length that needs padding.
        let payload = vec![0xfb, 0xff, 0xbf, 0xfe, 0x3e];
        let key = SigningKey::generate(Algorithm::EcdsaP256);
        let envelope = Envelope::sign(IN_TOTO, &payload, &[&key]);
        let standard = STANDARD.encode(&payload);
        assert!(standard.contains('+') && standard.contains('/') && standard.ends_with('='));
        let url_safe = standard
            .replace('+', "-")
            .replace('/', "_")
            .trim_end_matches('=')
            .to_string();
        let sig =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&envelope.signatures[0].sig);
        let json = format!(
            r#"{{"payloadType":"{IN_TOTO}","payload":"{url_safe}","signatures":[{{"sig":"{sig}"}}]}}"#
        );
        let parsed = Envelope::from_json(&json).unwrap();
        assert_eq!(parsed.payload, payload);
        assert_eq!(parsed.signatures[0].keyid, "");
        parsed.verify(&[key.verifying_key()], 1).unwrap();
    }

    #[test]
    fn rejects_what_is_not_base64() {
        let json =
            format!(r#"{{"payloadType":"{IN_TOTO}","payload":"not base64!","signatures":[]}}"#);
        let error = Envelope::from_json(&json).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("malformed DSSE envelope: expected base64"),
            "{error}"
        );
    }

    #[test]
    fn payload_type_swap_is_rejected() {
        let key = SigningKey::generate(Algorithm::EcdsaP256);
        let mut envelope = Envelope::sign(IN_TOTO, b"{}", &[&key]);
        envelope.payload_type = "application/json".to_string();
        let error = envelope.verify(&[key.verifying_key()], 1).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("no signature verifies with key"),
            "{error}"
        );
    }

    #[test]
    fn roundtrip_for_both_algorithms_and_edits_fail() {
        for algorithm in [Algorithm::EcdsaP256, Algorithm::Ed25519] {
            let key = SigningKey::generate(algorithm);
            let envelope = Envelope::sign(IN_TOTO, b"{\"x\":1}", &[&key]);
            let parsed = Envelope::from_json(&envelope.to_json_line()).unwrap();
            assert_eq!(
                parsed.verify(&[key.verifying_key()], 1).unwrap(),
                vec![key.verifying_key().key_id()]
            );

            let mut edited = parsed.clone();
            edited.payload = b"{\"x\":2}".to_vec();
            assert!(edited.verify(&[key.verifying_key()], 1).is_err());

            let mut truncated = parsed.clone();
            truncated.signatures[0].sig.pop();
            assert!(truncated.verify(&[key.verifying_key()], 1).is_err());
        }
    }

    #[test]
    fn the_same_key_twice_counts_once() {
        // The key signs twice, and is given twice: still one key.
        let ecdsa = SigningKey::generate(Algorithm::EcdsaP256);
        let envelope = Envelope::sign(IN_TOTO, b"{}", &[&ecdsa, &ecdsa]);
        assert_eq!(envelope.signatures.len(), 2);
        let keys = [ecdsa.verifying_key(), ecdsa.verifying_key()];
        assert_eq!(envelope.verify(&keys, 1).unwrap().len(), 1);
        let error = envelope.verify(&keys, 2).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("expected signatures by at least 2 of the given keys, found 1"),
            "{error}"
        );
    }

    #[test]
    fn threshold_with_two_distinct_keys() {
        let first = SigningKey::generate(Algorithm::EcdsaP256);
        let second = SigningKey::generate(Algorithm::Ed25519);
        let keys = [first.verifying_key(), second.verifying_key()];

        let both = Envelope::sign(IN_TOTO, b"{}", &[&first, &second]);
        assert_eq!(
            both.verify(&keys, 2).unwrap(),
            vec![keys[0].key_id(), keys[1].key_id()]
        );

        let one = Envelope::sign(IN_TOTO, b"{}", &[&first]);
        assert_eq!(one.verify(&keys, 1).unwrap(), vec![keys[0].key_id()]);
        assert!(matches!(
            one.verify(&keys, 2),
            Err(SignError::BelowThreshold { .. })
        ));
        assert!(matches!(
            one.verify(&keys, 0),
            Err(SignError::ZeroThreshold)
        ));
    }

    #[test]
    fn unsigned_envelope_is_reported_as_such() {
        let key = SigningKey::generate(Algorithm::Ed25519);
        let envelope = Envelope::unsigned(IN_TOTO, b"{}");
        let error = envelope.verify(&[key.verifying_key()], 1).unwrap_err();
        assert_eq!(
            error.to_string(),
            "envelope is unsigned: expected at least 1 signature(s), found none"
        );
    }

    #[test]
    fn wrong_key_names_both_key_ids() {
        let signer = SigningKey::generate(Algorithm::EcdsaP256);
        let other = SigningKey::generate(Algorithm::EcdsaP256);
        let envelope = Envelope::sign(IN_TOTO, b"{}", &[&signer]);
        let error = envelope.verify(&[other.verifying_key()], 1).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "no signature verifies with key {}; the envelope is signed by {}",
                other.verifying_key().key_id(),
                signer.verifying_key().key_id()
            )
        );
    }
}
