//! Passphrase-protected private keys: encrypted PKCS#8 (`ENCRYPTED PRIVATE KEY`, PBES2 as
//! openssl writes it) and cosign's key files (`ENCRYPTED SIGSTORE PRIVATE KEY`, or the older
//! `ENCRYPTED COSIGN PRIVATE KEY`).
//!
//! A cosign key file's PEM body is JSON, the format of go-securesystemslib's `encrypted`
//! package that cosign uses:
//!
//! ```json
//! {"kdf": {"name": "scrypt", "params": {"N": 32768, "r": 8, "p": 1}, "salt": "<base64>"},
//!  "cipher": {"name": "nacl/secretbox", "nonce": "<base64, 24 bytes>"},
//!  "ciphertext": "<base64>"}
//! ```
//!
//! The secretbox key is scrypt(passphrase, salt, N, r, p) with 32 bytes of output; the
//! plaintext is the PKCS#8 DER of the private key.
//!
//! Passphrases come from the environment, never from a prompt: `SEALROOM_KEY_PASSWORD` for
//! encrypted PKCS#8, `COSIGN_PASSWORD` for cosign files (as cosign reads it). This module turns
//! PEM bodies into PKCS#8 DER and back; it reads no files and knows no key algorithms.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use crypto_secretbox::aead::{Aead as _, KeyInit as _};
use crypto_secretbox::{Key, Nonce, XSalsa20Poly1305};
use pkcs8::der::pem::LineEnding;
use pkcs8::{EncryptedPrivateKeyInfo, PrivateKeyInfo};
use rand_core::{OsRng, RngCore as _};
use zeroize::Zeroizing;

use super::keys::KeyFormatError;

/// The environment variable holding the passphrase of an encrypted PKCS#8 key.
pub const PKCS8_PASSWORD_VARIABLE: &str = "SEALROOM_KEY_PASSWORD";
/// The environment variable holding the passphrase of a cosign key (cosign's own name).
pub const COSIGN_PASSWORD_VARIABLE: &str = "COSIGN_PASSWORD";

/// PEM label of an encrypted PKCS#8 private key (RFC 5958).
pub const PKCS8_ENCRYPTED_LABEL: &str = "ENCRYPTED PRIVATE KEY";
/// PEM label cosign writes since v2.
pub const SIGSTORE_LABEL: &str = "ENCRYPTED SIGSTORE PRIVATE KEY";
/// PEM label older cosign versions wrote; still read.
pub const COSIGN_LABEL: &str = "ENCRYPTED COSIGN PRIVATE KEY";

const KDF_SCRYPT: &str = "scrypt";
const CIPHER_SECRETBOX: &str = "nacl/secretbox";
const SALT_LENGTH: usize = 32;
const NONCE_LENGTH: usize = 24;
const BOX_KEY_LENGTH: usize = 32;
/// The scrypt cost cosign writes and every cosign version reads.
pub const COSIGN_SCRYPT: ScryptCost = ScryptCost {
    n: 32_768,
    r: 8,
    p: 1,
};
/// PBKDF2-HMAC-SHA256 iterations for the encrypted PKCS#8 keys sealroom writes (OWASP 2023).
pub const PBKDF2_ITERATIONS: u32 = 600_000;
/// Upper bound on scrypt memory (128 * N * r bytes) accepted when reading, so a crafted key
/// file cannot make sealroom allocate gigabytes. cosign's own costs use 32 or 64 MiB.
const MAX_SCRYPT_MEMORY: u64 = 256 * 1024 * 1024;

/// scrypt's cost parameters as they appear in a cosign key file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScryptCost {
    #[serde(rename = "N")]
    pub n: u64,
    pub r: u32,
    pub p: u32,
}

/// Where a passphrase is looked up: the environment variable's name to its value, `None` when
/// unset. `environment` is the real one; tests pass a closure.
pub type PassphraseLookup<'a> = &'a dyn Fn(&'static str) -> Option<Zeroizing<String>>;

/// Reads a passphrase from the process environment (a value that is not UTF-8 counts as unset).
pub fn environment(variable: &'static str) -> Option<Zeroizing<String>> {
    std::env::var(variable).ok().map(Zeroizing::new)
}

fn passphrase(
    lookup: PassphraseLookup<'_>,
    variable: &'static str,
    kind: &'static str,
) -> Result<Zeroizing<String>, KeyFormatError> {
    lookup(variable).ok_or(KeyFormatError::MissingPassphrase { kind, variable })
}

/// Decrypts an `ENCRYPTED PRIVATE KEY` body (PBES2: PBKDF2 or scrypt, AES-CBC) with the
/// passphrase from `SEALROOM_KEY_PASSWORD`; returns the PKCS#8 DER.
pub fn decrypt_pkcs8(
    der: &[u8],
    lookup: PassphraseLookup<'_>,
) -> Result<Zeroizing<Vec<u8>>, KeyFormatError> {
    const KIND: &str = "encrypted PKCS#8 private key";
    let info = EncryptedPrivateKeyInfo::try_from(der).map_err(|e| KeyFormatError::Malformed {
        what: KIND,
        detail: e.to_string(),
    })?;
    let password = passphrase(lookup, PKCS8_PASSWORD_VARIABLE, KIND)?;
    if info.encryption_algorithm.pbes2().is_none() {
        return Err(KeyFormatError::UnsupportedEncryption {
            kind: KIND,
            expected: "PBES2 (PBKDF2 or scrypt with AES-CBC), as `openssl pkcs8 -topk8 -v2 aes256` writes",
            found: format!("{}", info.encryption_algorithm.oid()),
        });
    }
    let wrong = || KeyFormatError::WrongPassphrase {
        kind: KIND,
        variable: PKCS8_PASSWORD_VARIABLE,
    };
    let document = info.decrypt(password.as_bytes()).map_err(|_| wrong())?;
    // A wrong passphrase can pass the CBC padding check by chance; the DER then does not parse.
    PrivateKeyInfo::try_from(document.as_bytes()).map_err(|_| wrong())?;
    Ok(Zeroizing::new(document.as_bytes().to_vec()))
}

/// Encrypts PKCS#8 DER as `ENCRYPTED PRIVATE KEY` PEM: PBES2 with PBKDF2-HMAC-SHA256
/// (`iterations`) and AES-256-CBC, the scheme openssl 3 writes by default.
pub fn encrypt_pkcs8_pem(
    pkcs8_der: &[u8],
    password: &[u8],
    iterations: u32,
) -> Result<Zeroizing<String>, KeyFormatError> {
    let malformed = |detail: String| KeyFormatError::Malformed {
        what: "PKCS#8 private key",
        detail,
    };
    let info = PrivateKeyInfo::try_from(pkcs8_der).map_err(|e| malformed(e.to_string()))?;
    let mut salt = [0u8; 16];
    let mut iv = [0u8; 16];
    OsRng.fill_bytes(&mut salt);
    OsRng.fill_bytes(&mut iv);
    let parameters =
        pkcs8::pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(iterations, &salt, &iv)
            .map_err(|e| malformed(e.to_string()))?;
    let document = info
        .encrypt_with_params(parameters, password)
        .map_err(|e| malformed(e.to_string()))?;
    document
        .to_pem(PKCS8_ENCRYPTED_LABEL, LineEnding::LF)
        .map_err(|e| malformed(e.to_string()))
}

#[derive(serde::Serialize, serde::Deserialize)]
struct CosignContainer {
    kdf: CosignKdf,
    cipher: CosignCipher,
    ciphertext: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct CosignKdf {
    name: String,
    params: ScryptCost,
    salt: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct CosignCipher {
    name: String,
    nonce: String,
}

/// Decrypts the body of a cosign key file (the JSON above) with the passphrase from
/// `COSIGN_PASSWORD` (an empty value is an empty passphrase, as cosign allows); returns the
/// PKCS#8 DER.
pub fn decrypt_cosign(
    body: &[u8],
    lookup: PassphraseLookup<'_>,
) -> Result<Zeroizing<Vec<u8>>, KeyFormatError> {
    const KIND: &str = "cosign private key";
    let malformed = |detail: String| KeyFormatError::Malformed { what: KIND, detail };
    let container: CosignContainer = serde_json::from_slice(body).map_err(|e| {
        malformed(format!(
            "expected JSON with kdf, cipher and ciphertext inside the PEM block, found {e}"
        ))
    })?;
    if container.kdf.name != KDF_SCRYPT {
        return Err(KeyFormatError::UnsupportedEncryption {
            kind: KIND,
            expected: "kdf `scrypt`",
            found: format!("`{}`", container.kdf.name),
        });
    }
    if container.cipher.name != CIPHER_SECRETBOX {
        return Err(KeyFormatError::UnsupportedEncryption {
            kind: KIND,
            expected: "cipher `nacl/secretbox`",
            found: format!("`{}`", container.cipher.name),
        });
    }
    let cost = container.kdf.params;
    let log_n = scrypt_log_n(cost).map_err(|detail| KeyFormatError::UnsupportedEncryption {
        kind: KIND,
        expected: "scrypt N a power of two, r and p at least 1, using at most 256 MiB",
        found: detail,
    })?;
    let decode = |field: &str, text: &str| {
        STANDARD
            .decode(text)
            .map_err(|e| malformed(format!("expected base64 in `{field}`, found {e}")))
    };
    let salt = decode("kdf.salt", &container.kdf.salt)?;
    let nonce = decode("cipher.nonce", &container.cipher.nonce)?;
    let ciphertext = decode("ciphertext", &container.ciphertext)?;
    let nonce: [u8; NONCE_LENGTH] = nonce.as_slice().try_into().map_err(|_| {
        malformed(format!(
            "expected a {NONCE_LENGTH}-byte nonce, found {} bytes",
            nonce.len()
        ))
    })?;
    let password = passphrase(lookup, COSIGN_PASSWORD_VARIABLE, KIND)?;
    let key = derive_box_key(password.as_bytes(), &salt, log_n, cost)?;
    let cipher = XSalsa20Poly1305::new(&Key::from(*key));
    let plain = cipher
        .decrypt(&Nonce::from(nonce), ciphertext.as_slice())
        .map_err(|_| KeyFormatError::WrongPassphrase {
            kind: KIND,
            variable: COSIGN_PASSWORD_VARIABLE,
        })?;
    Ok(Zeroizing::new(plain))
}

/// Encrypts PKCS#8 DER as a cosign key file (`ENCRYPTED SIGSTORE PRIVATE KEY` PEM) that
/// `cosign sign-blob --key` reads with `COSIGN_PASSWORD`.
pub fn encrypt_cosign_pem(
    pkcs8_der: &[u8],
    password: &[u8],
    cost: ScryptCost,
) -> Result<Zeroizing<String>, KeyFormatError> {
    let log_n = scrypt_log_n(cost).map_err(|detail| KeyFormatError::Malformed {
        what: "scrypt cost",
        detail,
    })?;
    let mut salt = [0u8; SALT_LENGTH];
    let mut nonce = [0u8; NONCE_LENGTH];
    OsRng.fill_bytes(&mut salt);
    OsRng.fill_bytes(&mut nonce);
    let key = derive_box_key(password, &salt, log_n, cost)?;
    let cipher = XSalsa20Poly1305::new(&Key::from(*key));
    let ciphertext = cipher
        .encrypt(&Nonce::from(nonce), pkcs8_der)
        .map_err(|e| KeyFormatError::Malformed {
            what: "secretbox encryption",
            detail: e.to_string(),
        })?;
    let container = CosignContainer {
        kdf: CosignKdf {
            name: KDF_SCRYPT.to_string(),
            params: cost,
            salt: STANDARD.encode(salt),
        },
        cipher: CosignCipher {
            name: CIPHER_SECRETBOX.to_string(),
            nonce: STANDARD.encode(nonce),
        },
        ciphertext: STANDARD.encode(ciphertext),
    };
    let json = serde_json::to_vec(&container).expect("the container serializes to JSON");
    pkcs8::der::pem::encode_string(SIGSTORE_LABEL, LineEnding::LF, &json)
        .map(Zeroizing::new)
        .map_err(|e| KeyFormatError::Malformed {
            what: "PEM encoding",
            detail: e.to_string(),
        })
}

/// log2(N) when the cost is sane and bounded; otherwise what is wrong with it.
fn scrypt_log_n(cost: ScryptCost) -> Result<u8, String> {
    let found = format!("N={}, r={}, p={}", cost.n, cost.r, cost.p);
    if !cost.n.is_power_of_two() || cost.n < 2 || cost.r == 0 || cost.p == 0 || cost.p > 16 {
        return Err(found);
    }
    let memory = 128u64
        .saturating_mul(cost.n)
        .saturating_mul(u64::from(cost.r));
    if memory > MAX_SCRYPT_MEMORY {
        return Err(format!("{found} ({} MiB)", memory / (1024 * 1024)));
    }
    Ok(cost.n.trailing_zeros() as u8)
}

fn derive_box_key(
    password: &[u8],
    salt: &[u8],
    log_n: u8,
    cost: ScryptCost,
) -> Result<Zeroizing<[u8; BOX_KEY_LENGTH]>, KeyFormatError> {
    let invalid = |detail: String| KeyFormatError::UnsupportedEncryption {
        kind: "cosign private key",
        expected: "valid scrypt parameters",
        found: detail,
    };
    let params = scrypt::Params::new(log_n, cost.r, cost.p, BOX_KEY_LENGTH)
        .map_err(|e| invalid(e.to_string()))?;
    let mut key = Zeroizing::new([0u8; BOX_KEY_LENGTH]);
    scrypt::scrypt(password, salt, &params, &mut key[..]).map_err(|e| invalid(e.to_string()))?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cheap cost so unit tests stay fast in debug builds.
    const CHEAP: ScryptCost = ScryptCost {
        n: 1024,
        r: 8,
        p: 1,
    };

    fn lookup_with(value: &'static str) -> impl Fn(&'static str) -> Option<Zeroizing<String>> {
        move |_| Some(Zeroizing::new(value.to_string()))
    }

    fn body_of(pem: &str) -> Vec<u8> {
        pkcs8::der::pem::decode_vec(pem.as_bytes()).unwrap().1
    }

    #[test]
    fn cosign_roundtrip_and_wrong_passphrase() {
        let secret = b"not really a key, any bytes roundtrip".to_vec();
        let pem = encrypt_cosign_pem(&secret, b"hunter2", CHEAP).unwrap();
        assert!(pem.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"));
        let body = body_of(&pem);
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["kdf"]["name"], "scrypt");
        assert_eq!(json["kdf"]["params"]["N"], 1024);
        assert_eq!(json["cipher"]["name"], "nacl/secretbox");

        let plain = decrypt_cosign(&body, &lookup_with("hunter2")).unwrap();
        assert_eq!(*plain, secret);

        let error = decrypt_cosign(&body, &lookup_with("hunter3")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "cannot decrypt the cosign private key with the passphrase from COSIGN_PASSWORD: \
             wrong passphrase, or a damaged file"
        );
        let error = decrypt_cosign(&body, &|_| None).unwrap_err();
        assert_eq!(
            error.to_string(),
            "expected the passphrase of the cosign private key in the environment variable \
             COSIGN_PASSWORD, found it unset"
        );
    }

    #[test]
    fn cosign_costs_that_would_exhaust_memory_are_refused() {
        let secret = b"x".to_vec();
        let pem = encrypt_cosign_pem(&secret, b"", CHEAP).unwrap();
        let body = String::from_utf8(body_of(&pem)).unwrap();
        let greedy = body.replace("\"N\":1024", "\"N\":1073741824");
        let error = decrypt_cosign(greedy.as_bytes(), &lookup_with("")).unwrap_err();
        assert!(
            error.to_string().contains("found N=1073741824, r=8, p=1"),
            "{error}"
        );
        let odd = body.replace("\"N\":1024", "\"N\":1000");
        assert!(decrypt_cosign(odd.as_bytes(), &lookup_with("")).is_err());
    }

    #[test]
    fn cosign_other_ciphers_are_named() {
        let pem = encrypt_cosign_pem(b"x", b"", CHEAP).unwrap();
        let body = String::from_utf8(body_of(&pem))
            .unwrap()
            .replace("nacl/secretbox", "aes-gcm");
        let error = decrypt_cosign(body.as_bytes(), &lookup_with("")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "cosign private key: expected cipher `nacl/secretbox`, found `aes-gcm`"
        );
    }
}
