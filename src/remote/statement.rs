//! The signed statement a writer puts next to each `ActionResult`: a DSSE envelope (the build's
//! `--key`) over a small JSON document binding the REAPI action digest to the digests of what it
//! produced. REAPI has no place for signatures, so the envelope travels inside the
//! `ActionResult`, as an `auxiliary_metadata` entry of its `execution_metadata` with
//! [`TYPE_URL`]; servers keep it as it is. A reader given `--trust-key` takes an entry only when
//! the envelope verifies with one of those keys and names the very action and outputs of the
//! entry (docs/remote.md).

use bazel_remote_apis::build::bazel::remote::execution::v2 as reapi;
use bazel_remote_apis::google::protobuf::Any;

use crate::digest::{BlobDigest, TreeDigest};
use crate::sign::dsse::Envelope;
use crate::sign::keys::{SigningKey, VerifyingKey};

/// The DSSE payload type of the statement.
pub const PAYLOAD_TYPE: &str = "application/vnd.sealroom.remote-cache-result.v1+json";
/// The `Any.type_url` of the envelope in `ExecutedActionMetadata.auxiliary_metadata`; its value
/// is the envelope's JSON.
pub const TYPE_URL: &str = "type.sealroom.dev/sealroom.remote.v1.CacheResultEnvelope";
/// The statement's `_type`.
pub const STATEMENT_TYPE: &str = "https://sealroom.dev/remote-cache-result/v1";

/// What the signer vouches for: running the action gave these outputs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CacheResultStatement {
    #[serde(rename = "_type")]
    pub statement_type: String,
    /// The REAPI `Action` digest (`<hex>/<size>`).
    pub action: String,
    /// The step record's action key (the local cache's key).
    pub action_key: String,
    /// The REAPI `Tree` digest of `/out` (`<hex>/<size>`).
    pub output_tree: String,
    /// The same output as a sealroom tree digest.
    pub output: TreeDigest,
    /// The step's log.
    pub log: BlobDigest,
    /// The build that ran the step.
    pub invocation: String,
}

/// `<hex>/<size>`, as the statement writes a REAPI digest.
pub fn digest_text(digest: &reapi::Digest) -> String {
    format!("{}/{}", digest.hash, digest.size_bytes)
}

impl CacheResultStatement {
    /// The envelope as an `Any` for `auxiliary_metadata`.
    pub fn sign(&self, key: &SigningKey) -> Any {
        let payload = serde_json::to_vec(self).expect("statements serialize");
        let envelope = Envelope::sign(PAYLOAD_TYPE, &payload, &[key]);
        Any {
            type_url: TYPE_URL.to_string(),
            value: envelope.to_json_line().into_bytes(),
        }
    }
}

/// Why an entry's signature is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatementError {
    #[error("the entry carries no signed statement")]
    Unsigned,
    #[error("the signed statement is malformed: {0}")]
    Malformed(String),
    #[error("the statement is not signed by a trusted key (signed by key ids {signed_by:?})")]
    Untrusted { signed_by: Vec<String> },
    #[error("the signed statement names {field} {signed}, the entry has {found}")]
    Mismatch {
        field: &'static str,
        signed: String,
        found: String,
    },
}

/// The statement of `result` if one of `keys` signed it: the statement and the key id of the
/// first trusted key that verified it.
pub fn verified_statement(
    result: &reapi::ActionResult,
    keys: &[VerifyingKey],
) -> Result<(CacheResultStatement, String), StatementError> {
    let any = result
        .execution_metadata
        .as_ref()
        .and_then(|metadata| {
            metadata
                .auxiliary_metadata
                .iter()
                .find(|any| any.type_url == TYPE_URL)
        })
        .ok_or(StatementError::Unsigned)?;
    let text = std::str::from_utf8(&any.value)
        .map_err(|_| StatementError::Malformed("the envelope is not UTF-8".to_string()))?;
    let envelope =
        Envelope::from_json(text).map_err(|error| StatementError::Malformed(error.to_string()))?;
    if envelope.payload_type != PAYLOAD_TYPE {
        return Err(StatementError::Malformed(format!(
            "payload type `{}`, expected `{PAYLOAD_TYPE}`",
            envelope.payload_type
        )));
    }
    let signer = match envelope.verify(keys, 1) {
        Ok(verified) => verified.into_iter().next().expect("one key verified"),
        Err(_) => {
            return Err(StatementError::Untrusted {
                signed_by: envelope
                    .signatures
                    .iter()
                    .map(|s| s.keyid.clone())
                    .collect(),
            });
        }
    };
    let statement: CacheResultStatement = serde_json::from_slice(&envelope.payload)
        .map_err(|error| StatementError::Malformed(error.to_string()))?;
    if statement.statement_type != STATEMENT_TYPE {
        return Err(StatementError::Malformed(format!(
            "`_type` `{}`, expected `{STATEMENT_TYPE}`",
            statement.statement_type
        )));
    }
    Ok((statement, signer))
}

/// Checks that `field` of the signed statement is what the entry has.
pub fn check_field(field: &'static str, signed: &str, found: &str) -> Result<(), StatementError> {
    if signed == found {
        Ok(())
    } else {
        Err(StatementError::Mismatch {
            field,
            signed: signed.to_string(),
            found: found.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::keys::Algorithm;

    fn statement() -> CacheResultStatement {
        CacheResultStatement {
            statement_type: STATEMENT_TYPE.to_string(),
            action: format!("{}/12", "aa".repeat(32)),
            action_key: format!("sha256:{}", "bb".repeat(32)),
            output_tree: format!("{}/34", "cc".repeat(32)),
            output: TreeDigest::of(b"tree"),
            log: BlobDigest::of(b"log"),
            invocation: "build-1".to_string(),
        }
    }

    fn result_with(any: Option<Any>) -> reapi::ActionResult {
        reapi::ActionResult {
            execution_metadata: Some(reapi::ExecutedActionMetadata {
                auxiliary_metadata: any.into_iter().collect(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_statement_signed_by_a_trusted_key_verifies_and_names_it() {
        let key = SigningKey::generate(Algorithm::EcdsaP256);
        let result = result_with(Some(statement().sign(&key)));
        let (back, signer) = verified_statement(&result, &[key.verifying_key()]).unwrap();
        assert_eq!(back, statement());
        assert_eq!(signer, key.verifying_key().key_id());
    }

    #[test]
    fn an_unsigned_untrusted_or_tampered_entry_is_refused() {
        let key = SigningKey::generate(Algorithm::Ed25519);
        let other = SigningKey::generate(Algorithm::EcdsaP256);
        let trusted = [key.verifying_key()];
        assert_eq!(
            verified_statement(&result_with(None), &trusted).unwrap_err(),
            StatementError::Unsigned
        );
        let by_other = result_with(Some(statement().sign(&other)));
        assert!(matches!(
            verified_statement(&by_other, &trusted).unwrap_err(),
            StatementError::Untrusted { .. }
        ));
        // The payload changed after signing: the signature no longer verifies.
        let mut any = statement().sign(&key);
        let mut envelope = Envelope::from_json(std::str::from_utf8(&any.value).unwrap()).unwrap();
        envelope.payload = serde_json::to_vec(&CacheResultStatement {
            output: TreeDigest::of(b"poison"),
            ..statement()
        })
        .unwrap();
        any.value = envelope.to_json_line().into_bytes();
        assert!(matches!(
            verified_statement(&result_with(Some(any)), &trusted).unwrap_err(),
            StatementError::Untrusted { .. }
        ));
        assert!(check_field("output", "a", "b").is_err());
    }
}
