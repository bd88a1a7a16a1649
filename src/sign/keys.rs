//! Key pairs: ECDSA P-256 (SHA-256, DER signatures) and Ed25519, PEM in and out.
//!
//! Private keys are read from PKCS#8 PEM (`PRIVATE KEY`, the algorithm detected from the key's
//! OID), encrypted PKCS#8 (`ENCRYPTED PRIVATE KEY`, passphrase in `SEALROOM_KEY_PASSWORD`),
//! cosign key files (`ENCRYPTED SIGSTORE PRIVATE KEY` / `ENCRYPTED COSIGN PRIVATE KEY`,
//! passphrase in `COSIGN_PASSWORD`; see `sign::encrypted`) or, for P-256, SEC1 PEM
//! (`EC PRIVATE KEY`); they are written as PKCS#8 v1 PEM, plain or encrypted. Public keys are
//! SPKI PEM (`PUBLIC KEY`). The key id is the lower-case hex sha256 of the DER
//! SubjectPublicKeyInfo, re-encoded canonically so the same key always has the same id.
//!
//! This module owns no file writes; `ops::keygen` writes key files.

use std::fmt;
use std::path::Path;

use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use p256::pkcs8::der::pem::{self, LineEnding};
use p256::pkcs8::{ObjectIdentifier, PrivateKeyInfo, spki::SubjectPublicKeyInfoRef};
use rand_core::OsRng;
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use super::SignError;

/// Which supported algorithm a key's AlgorithmIdentifier names (the same for a PKCS#8 private
/// key and an SPKI public key); only P-256 among the curves.
fn algorithm_of(
    identifier: &p256::pkcs8::spki::AlgorithmIdentifierRef<'_>,
    expected: &'static str,
    malformed: &dyn Fn(String) -> KeyFormatError,
) -> Result<Algorithm, KeyFormatError> {
    let oid = identifier.oid;
    if oid == OID_EC_PUBLIC_KEY {
        let curve = identifier
            .parameters_oid()
            .map_err(|e| malformed(e.to_string()))?;
        if curve != OID_P256 {
            return Err(KeyFormatError::UnsupportedCurve {
                found: curve.to_string(),
            });
        }
        Ok(Algorithm::EcdsaP256)
    } else if oid == OID_ED25519 {
        Ok(Algorithm::Ed25519)
    } else {
        Err(KeyFormatError::UnsupportedAlgorithm {
            expected,
            found: describe_oid(oid),
        })
    }
}
use super::encrypted::{self, PassphraseLookup};

/// `id-ecPublicKey` (RFC 5480).
const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// `prime256v1` / `secp256r1` (RFC 5480).
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
/// `id-Ed25519` (RFC 8410).
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
/// `rsaEncryption`, named in errors because RSA keys are the likeliest wrong guess.
const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

const EXPECTED_PRIVATE: &str =
    "a PEM private key (PKCS#8, encrypted PKCS#8, cosign or SEC1) for ECDSA P-256 or Ed25519";
const EXPECTED_PUBLIC: &str = "a PEM public key (SPKI) for ECDSA P-256 or Ed25519";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Algorithm {
    #[value(name = "ecdsa-p256")]
    EcdsaP256,
    #[value(name = "ed25519")]
    Ed25519,
}

impl Algorithm {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::EcdsaP256 => "ecdsa-p256",
            Algorithm::Ed25519 => "ed25519",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why PEM text is not a usable key. `SignError::Key` adds the file it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyFormatError {
    #[error("expected {expected}, found no PEM block")]
    NotPem { expected: &'static str },
    #[error("expected {expected}, found {found}")]
    WrongKind {
        expected: &'static str,
        found: String,
    },
    #[error(
        "expected the passphrase of the {kind} in the environment variable {variable}, found it unset"
    )]
    MissingPassphrase {
        kind: &'static str,
        variable: &'static str,
    },
    #[error(
        "cannot decrypt the {kind} with the passphrase from {variable}: wrong passphrase, or a damaged file"
    )]
    WrongPassphrase {
        kind: &'static str,
        variable: &'static str,
    },
    #[error("{kind}: expected {expected}, found {found}")]
    UnsupportedEncryption {
        kind: &'static str,
        expected: &'static str,
        found: String,
    },
    #[error("expected {expected}, found a key for algorithm {found}")]
    UnsupportedAlgorithm {
        expected: &'static str,
        found: String,
    },
    #[error("expected an EC key on curve P-256 (1.2.840.10045.3.1.7), found curve {found}")]
    UnsupportedCurve { found: String },
    #[error("malformed {what}: {detail}")]
    Malformed { what: &'static str, detail: String },
}

/// A private key that signs DSSE envelopes.
#[derive(Clone)]
pub enum SigningKey {
    EcdsaP256(p256::ecdsa::SigningKey),
    Ed25519(ed25519_dalek::SigningKey),
}

impl fmt::Debug for SigningKey {
    /// Never prints secret material: only the algorithm and the public key id.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("algorithm", &self.algorithm())
            .field("key_id", &self.verifying_key().key_id())
            .finish()
    }
}

impl SigningKey {
    /// A fresh key from the operating system's random number generator.
    pub fn generate(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::EcdsaP256 => {
                SigningKey::EcdsaP256(p256::ecdsa::SigningKey::random(&mut OsRng))
            }
            Algorithm::Ed25519 => {
                SigningKey::Ed25519(ed25519_dalek::SigningKey::generate(&mut OsRng))
            }
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        match self {
            SigningKey::EcdsaP256(_) => Algorithm::EcdsaP256,
            SigningKey::Ed25519(_) => Algorithm::Ed25519,
        }
    }

    /// Reads a PEM private key file, taking passphrases of encrypted keys from the
    /// environment; errors name the file.
    pub fn from_pem_file(path: &Path) -> Result<Self, SignError> {
        Self::from_pem_file_with(path, &encrypted::environment)
    }

    /// `from_pem_file` with passphrases from `lookup` instead of the environment.
    pub fn from_pem_file_with(
        path: &Path,
        lookup: PassphraseLookup<'_>,
    ) -> Result<Self, SignError> {
        let text = Zeroizing::new(read_key_file(path)?);
        Self::from_pem_with(&text, lookup).map_err(|source| SignError::Key {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Parses a PEM private key, taking passphrases of encrypted keys from the environment
    /// (see [`SigningKey::from_pem_with`]).
    pub fn from_pem(text: &str) -> Result<Self, KeyFormatError> {
        Self::from_pem_with(text, &encrypted::environment)
    }

    /// Parses PKCS#8 PEM (`PRIVATE KEY`, P-256 or Ed25519, detected from the key), encrypted
    /// PKCS#8 (`ENCRYPTED PRIVATE KEY`, passphrase `SEALROOM_KEY_PASSWORD`), a cosign key
    /// (`ENCRYPTED SIGSTORE PRIVATE KEY` or `ENCRYPTED COSIGN PRIVATE KEY`, passphrase
    /// `COSIGN_PASSWORD`) or SEC1 PEM (`EC PRIVATE KEY`, P-256 only). `lookup` maps a variable
    /// name to the passphrase.
    pub fn from_pem_with(text: &str, lookup: PassphraseLookup<'_>) -> Result<Self, KeyFormatError> {
        let (label, der) = decode_pem(text, EXPECTED_PRIVATE)?;
        let der = Zeroizing::new(der);
        match label.as_str() {
            "PRIVATE KEY" => Self::from_pkcs8_der(&der),
            encrypted::PKCS8_ENCRYPTED_LABEL => {
                Self::from_pkcs8_der(&encrypted::decrypt_pkcs8(&der, lookup)?)
            }
            encrypted::SIGSTORE_LABEL | encrypted::COSIGN_LABEL => {
                Self::from_pkcs8_der(&encrypted::decrypt_cosign(&der, lookup)?)
            }
            "EC PRIVATE KEY" => {
                let secret = p256::SecretKey::from_sec1_der(&der).map_err(|error| {
                    KeyFormatError::Malformed {
                        what: "SEC1 EC private key (only curve P-256 is supported)",
                        detail: error.to_string(),
                    }
                })?;
                Ok(SigningKey::EcdsaP256(p256::ecdsa::SigningKey::from(secret)))
            }
            "PUBLIC KEY" => Err(KeyFormatError::WrongKind {
                expected: EXPECTED_PRIVATE,
                found: "a public key (PUBLIC KEY)".to_string(),
            }),
            other => Err(KeyFormatError::WrongKind {
                expected: EXPECTED_PRIVATE,
                found: format!("a PEM block labelled `{other}`"),
            }),
        }
    }

    fn from_pkcs8_der(der: &[u8]) -> Result<Self, KeyFormatError> {
        let malformed = |detail: String| KeyFormatError::Malformed {
            what: "PKCS#8 private key",
            detail,
        };
        let info = PrivateKeyInfo::try_from(der).map_err(|e| malformed(e.to_string()))?;
        match algorithm_of(&info.algorithm, EXPECTED_PRIVATE, &malformed)? {
            Algorithm::EcdsaP256 => p256::ecdsa::SigningKey::from_pkcs8_der(der)
                .map(SigningKey::EcdsaP256)
                .map_err(|e| malformed(e.to_string())),
            Algorithm::Ed25519 => ed25519_dalek::SigningKey::from_pkcs8_der(der)
                .map(SigningKey::Ed25519)
                .map_err(|e| malformed(e.to_string())),
        }
    }

    /// PKCS#8 v1 PEM (no embedded public key, the form openssl and cosign read everywhere).
    pub fn to_pkcs8_pem(&self) -> Zeroizing<String> {
        let document = match self {
            SigningKey::EcdsaP256(key) => key.to_pkcs8_pem(LineEnding::LF),
            SigningKey::Ed25519(key) => ed25519_dalek::pkcs8::KeypairBytes {
                secret_key: key.to_bytes(),
                public_key: None,
            }
            .to_pkcs8_pem(LineEnding::LF),
        };
        document.expect("a valid in-memory key encodes as PKCS#8")
    }

    /// PKCS#8 v1 DER, the plaintext inside both encrypted forms.
    pub fn to_pkcs8_der(&self) -> Zeroizing<Vec<u8>> {
        let document = match self {
            SigningKey::EcdsaP256(key) => key.to_pkcs8_der(),
            SigningKey::Ed25519(key) => ed25519_dalek::pkcs8::KeypairBytes {
                secret_key: key.to_bytes(),
                public_key: None,
            }
            .to_pkcs8_der(),
        };
        Zeroizing::new(
            document
                .expect("a valid in-memory key encodes as PKCS#8")
                .as_bytes()
                .to_vec(),
        )
    }

    /// Encrypted PKCS#8 PEM (`ENCRYPTED PRIVATE KEY`): PBES2, PBKDF2-HMAC-SHA256 with
    /// `iterations` (use [`encrypted::PBKDF2_ITERATIONS`]), AES-256-CBC. openssl, Python
    /// `cryptography` and sealroom (with `SEALROOM_KEY_PASSWORD`) read it.
    pub fn to_encrypted_pkcs8_pem(
        &self,
        password: &[u8],
        iterations: u32,
    ) -> Result<Zeroizing<String>, KeyFormatError> {
        encrypted::encrypt_pkcs8_pem(&self.to_pkcs8_der(), password, iterations)
    }

    /// A cosign key file (`ENCRYPTED SIGSTORE PRIVATE KEY`) with scrypt `cost` (use
    /// [`encrypted::COSIGN_SCRYPT`] for files cosign reads).
    pub fn to_cosign_pem(
        &self,
        password: &[u8],
        cost: encrypted::ScryptCost,
    ) -> Result<Zeroizing<String>, KeyFormatError> {
        encrypted::encrypt_cosign_pem(&self.to_pkcs8_der(), password, cost)
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        match self {
            SigningKey::EcdsaP256(key) => VerifyingKey::EcdsaP256(*key.verifying_key()),
            SigningKey::Ed25519(key) => VerifyingKey::Ed25519(key.verifying_key()),
        }
    }

    /// Signs `message`: ECDSA P-256 over SHA-256 with a DER signature, or Ed25519 (64 bytes).
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        use p256::ecdsa::signature::Signer as _;
        match self {
            SigningKey::EcdsaP256(key) => {
                let signature: p256::ecdsa::Signature = key.sign(message);
                signature.to_der().as_bytes().to_vec()
            }
            SigningKey::Ed25519(key) => key.sign(message).to_bytes().to_vec(),
        }
    }
}

/// A public key that checks DSSE signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyingKey {
    EcdsaP256(p256::ecdsa::VerifyingKey),
    Ed25519(ed25519_dalek::VerifyingKey),
}

impl VerifyingKey {
    pub fn algorithm(&self) -> Algorithm {
        match self {
            VerifyingKey::EcdsaP256(_) => Algorithm::EcdsaP256,
            VerifyingKey::Ed25519(_) => Algorithm::Ed25519,
        }
    }

    /// Reads an SPKI PEM public key file; errors name the file.
    pub fn from_pem_file(path: &Path) -> Result<Self, SignError> {
        let text = read_key_file(path)?;
        Self::from_pem(&text).map_err(|source| SignError::Key {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Parses SPKI PEM (`PUBLIC KEY`) for P-256 or Ed25519, detected from the key.
    pub fn from_pem(text: &str) -> Result<Self, KeyFormatError> {
        let (label, der) = decode_pem(text, EXPECTED_PUBLIC)?;
        match label.as_str() {
            "PUBLIC KEY" => Self::from_spki_der(&der),
            "PRIVATE KEY"
            | "EC PRIVATE KEY"
            | encrypted::PKCS8_ENCRYPTED_LABEL
            | encrypted::SIGSTORE_LABEL
            | encrypted::COSIGN_LABEL => Err(KeyFormatError::WrongKind {
                expected: EXPECTED_PUBLIC,
                found: format!("a private key ({label}); hint: pass the `.pub` file"),
            }),
            other => Err(KeyFormatError::WrongKind {
                expected: EXPECTED_PUBLIC,
                found: format!("a PEM block labelled `{other}`"),
            }),
        }
    }

    fn from_spki_der(der: &[u8]) -> Result<Self, KeyFormatError> {
        let malformed = |detail: String| KeyFormatError::Malformed {
            what: "SPKI public key",
            detail,
        };
        let info = SubjectPublicKeyInfoRef::try_from(der).map_err(|e| malformed(e.to_string()))?;
        match algorithm_of(&info.algorithm, EXPECTED_PUBLIC, &malformed)? {
            Algorithm::EcdsaP256 => p256::ecdsa::VerifyingKey::from_public_key_der(der)
                .map(VerifyingKey::EcdsaP256)
                .map_err(|e| malformed(e.to_string())),
            Algorithm::Ed25519 => ed25519_dalek::VerifyingKey::from_public_key_der(der)
                .map(VerifyingKey::Ed25519)
                .map_err(|e| malformed(e.to_string())),
        }
    }

    /// The DER SubjectPublicKeyInfo, canonically encoded.
    pub fn to_spki_der(&self) -> Vec<u8> {
        let document = match self {
            VerifyingKey::EcdsaP256(key) => key.to_public_key_der(),
            VerifyingKey::Ed25519(key) => key.to_public_key_der(),
        };
        document
            .expect("a valid in-memory key encodes as SPKI")
            .into_vec()
    }

    /// SPKI PEM (`-----BEGIN PUBLIC KEY-----`), LF line endings.
    pub fn to_public_pem(&self) -> String {
        let pem = match self {
            VerifyingKey::EcdsaP256(key) => key.to_public_key_pem(LineEnding::LF),
            VerifyingKey::Ed25519(key) => key.to_public_key_pem(LineEnding::LF),
        };
        pem.expect("a valid in-memory key encodes as SPKI PEM")
    }

    /// The lower-case hex sha256 of the DER SubjectPublicKeyInfo (see `docs/provenance.md`).
    pub fn key_id(&self) -> String {
        hex::encode(Sha256::digest(self.to_spki_der()))
    }

    /// Whether `signature` is a valid signature of `message` by this key. ECDSA signatures are
    /// DER (as openssl, securesystemslib and cosign write them); a raw 64-byte `r || s` is also
    /// accepted. Both low-S and high-S forms verify, as with openssl.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        use p256::ecdsa::signature::Verifier as _;
        match self {
            VerifyingKey::EcdsaP256(key) => {
                let parsed = p256::ecdsa::Signature::from_der(signature).or_else(|der_error| {
                    if signature.len() == 64 {
                        p256::ecdsa::Signature::from_slice(signature)
                    } else {
                        Err(der_error)
                    }
                });
                match parsed {
                    Ok(parsed) => key.verify(message, &parsed).is_ok(),
                    Err(_) => false,
                }
            }
            VerifyingKey::Ed25519(key) => match ed25519_dalek::Signature::from_slice(signature) {
                Ok(parsed) => key.verify_strict(message, &parsed).is_ok(),
                Err(_) => false,
            },
        }
    }
}

fn read_key_file(path: &Path) -> Result<String, SignError> {
    std::fs::read_to_string(path).map_err(|source| SignError::ReadKey {
        path: path.to_path_buf(),
        source,
    })
}

/// The label and DER bytes of the first PEM block in `text` (text before it is ignored, as
/// openssl does, so a key file may start with comments).
fn decode_pem(text: &str, expected: &'static str) -> Result<(String, Vec<u8>), KeyFormatError> {
    let start = text
        .find("-----BEGIN ")
        .ok_or(KeyFormatError::NotPem { expected })?;
    let block = &text[start..];
    // Only the first block: cut at the end of its END line.
    let end = block
        .find("-----END ")
        .map(|i| block[i..].find('\n').map_or(block.len(), |j| i + j))
        .unwrap_or(block.len());
    let (label, der) = pem::decode_vec(block[..end].trim_end().as_bytes()).map_err(|error| {
        KeyFormatError::Malformed {
            what: "PEM block",
            detail: error.to_string(),
        }
    })?;
    Ok((label.to_string(), der))
}

fn describe_oid(oid: ObjectIdentifier) -> String {
    if oid == OID_RSA {
        format!("RSA ({oid})")
    } else {
        format!("OID {oid}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_roundtrip_keeps_the_algorithm_and_key_id() {
        for algorithm in [Algorithm::EcdsaP256, Algorithm::Ed25519] {
            let key = SigningKey::generate(algorithm);
            let again = SigningKey::from_pem(&key.to_pkcs8_pem()).unwrap();
            assert_eq!(again.algorithm(), algorithm);
            let public = VerifyingKey::from_pem(&key.verifying_key().to_public_pem()).unwrap();
            assert_eq!(public, key.verifying_key());
            assert_eq!(public.key_id(), again.verifying_key().key_id());
            assert_eq!(public.key_id().len(), 64);
        }
    }

    #[test]
    fn sign_and_verify_both_algorithms() {
        for algorithm in [Algorithm::EcdsaP256, Algorithm::Ed25519] {
            let key = SigningKey::generate(algorithm);
            let signature = key.sign(b"message");
            assert!(key.verifying_key().verify(b"message", &signature));
            assert!(!key.verifying_key().verify(b"other", &signature));
            assert!(
                !key.verifying_key()
                    .verify(b"message", &signature[..signature.len() - 1])
            );
            let other = SigningKey::generate(algorithm);
            assert!(!other.verifying_key().verify(b"message", &signature));
        }
    }

    #[test]
    fn ecdsa_signatures_are_der() {
        let key = SigningKey::generate(Algorithm::EcdsaP256);
        let signature = key.sign(b"m");
        assert_eq!(signature[0], 0x30, "a DER SEQUENCE");
        assert_eq!(signature[1] as usize, signature.len() - 2);
    }

    #[test]
    fn reads_sec1_ec_private_keys() {
        let key = p256::SecretKey::random(&mut OsRng);
        let pem = key.to_sec1_pem(LineEnding::LF).unwrap();
        let parsed = SigningKey::from_pem(&pem).unwrap();
        assert_eq!(parsed.algorithm(), Algorithm::EcdsaP256);
    }

    #[test]
    fn a_private_key_where_a_public_key_is_expected_is_named() {
        let key = SigningKey::generate(Algorithm::Ed25519);
        let error = VerifyingKey::from_pem(&key.to_pkcs8_pem()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "expected a PEM public key (SPKI) for ECDSA P-256 or Ed25519, found a private key \
             (PRIVATE KEY); hint: pass the `.pub` file"
        );
        let error = SigningKey::from_pem(&key.verifying_key().to_public_pem()).unwrap_err();
        assert!(error.to_string().contains("found a public key"), "{error}");
    }

    #[test]
    fn text_without_pem_is_rejected() {
        let error = VerifyingKey::from_pem("hello").unwrap_err();
        assert_eq!(
            error,
            KeyFormatError::NotPem {
                expected: EXPECTED_PUBLIC
            }
        );
    }
}
