//! `sealroom keygen`: write a PEM key pair for signing provenance.
//!
//! The private key is created exclusively with mode 0600, so an existing key is never
//! overwritten and the secret is never readable by others, not even briefly. It is written as
//! plain PKCS#8, or encrypted (PKCS#8 PBES2, or a cosign key file) with a passphrase the caller
//! supplies.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::sign::SignError;
use crate::sign::encrypted::{COSIGN_SCRYPT, PBKDF2_ITERATIONS};
use crate::sign::keys::{Algorithm, SigningKey};

/// How the private key file is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protection<'a> {
    /// Plain PKCS#8 (`PRIVATE KEY`).
    None,
    /// Encrypted PKCS#8 (`ENCRYPTED PRIVATE KEY`), read back with `SEALROOM_KEY_PASSWORD`.
    Pkcs8 { passphrase: &'a str },
    /// A cosign key file (`ENCRYPTED SIGSTORE PRIVATE KEY`), read back (by cosign too) with
    /// `COSIGN_PASSWORD`.
    Cosign { passphrase: &'a str },
}

/// What `keygen` wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyPairFiles {
    pub algorithm: String,
    pub private_key: PathBuf,
    pub public_key: PathBuf,
    pub key_id: String,
}

/// Writes `<prefix>.key` (PKCS#8 PEM, mode 0600) and `<prefix>.pub` (SPKI PEM). Refuses to
/// overwrite an existing file; writes neither file when either exists.
pub fn keygen(algorithm: Algorithm, prefix: &Path) -> Result<KeyPairFiles, crate::Error> {
    keygen_protected(algorithm, prefix, Protection::None)
}

/// `keygen` with the private key protected as `protection` says.
pub fn keygen_protected(
    algorithm: Algorithm,
    prefix: &Path,
    protection: Protection<'_>,
) -> Result<KeyPairFiles, crate::Error> {
    let private_path = with_suffix(prefix, "key");
    let public_path = with_suffix(prefix, "pub");
    for path in [&private_path, &public_path] {
        if path.symlink_metadata().is_ok() {
            return Err(SignError::KeyExists { path: path.clone() }.into());
        }
    }
    if let Some(parent) = private_path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| crate::Error::io("cannot create the directory", parent, e))?;
    }

    let key = SigningKey::generate(algorithm);
    let public = key.verifying_key();
    let encode_error = |source| SignError::Key {
        path: private_path.clone(),
        source,
    };
    let private_pem: Zeroizing<String> = match protection {
        Protection::None => key.to_pkcs8_pem(),
        Protection::Pkcs8 { passphrase } => key
            .to_encrypted_pkcs8_pem(passphrase.as_bytes(), PBKDF2_ITERATIONS)
            .map_err(encode_error)?,
        Protection::Cosign { passphrase } => key
            .to_cosign_pem(passphrase.as_bytes(), COSIGN_SCRYPT)
            .map_err(encode_error)?,
    };
    write_new(&private_path, private_pem.as_bytes(), 0o600)?;
    if let Err(error) = write_new(&public_path, public.to_public_pem().as_bytes(), 0o644) {
        // Leave nothing half-made: a private key without its public half is useless.
        let _ = std::fs::remove_file(&private_path);
        return Err(error);
    }
    Ok(KeyPairFiles {
        algorithm: algorithm.name().to_string(),
        private_key: private_path,
        public_key: public_path,
        key_id: public.key_id(),
    })
}

/// `prefix` + `.` + `suffix`, keeping any dots already in the prefix (`ci.v2` -> `ci.v2.key`).
fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut name = prefix.as_os_str().to_os_string();
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
}

/// Creates `path` (failing if it exists) with `mode` and writes `bytes`, synced to disk.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), crate::Error> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path).map_err(|error| {
        if error.kind() == std::io::ErrorKind::AlreadyExists {
            crate::Error::from(SignError::KeyExists {
                path: path.to_path_buf(),
            })
        } else {
            crate::Error::io("cannot create", path, error)
        }
    })?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|error| crate::Error::io("cannot write", path, error))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::keys::VerifyingKey;

    #[test]
    fn writes_a_usable_pair_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("keys/ci");
        for algorithm in [Algorithm::EcdsaP256, Algorithm::Ed25519] {
            let _ = std::fs::remove_file(with_suffix(&prefix, "key"));
            let _ = std::fs::remove_file(with_suffix(&prefix, "pub"));
            let files = keygen(algorithm, &prefix).unwrap();
            assert_eq!(files.private_key, dir.path().join("keys/ci.key"));
            let key = SigningKey::from_pem_file(&files.private_key).unwrap();
            let public = VerifyingKey::from_pem_file(&files.public_key).unwrap();
            assert_eq!(key.algorithm(), algorithm);
            assert_eq!(public.key_id(), files.key_id);
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt as _;
                let mode = std::fs::metadata(&files.private_key)
                    .unwrap()
                    .permissions()
                    .mode();
                assert_eq!(mode & 0o777, 0o600);
            }
            let before = std::fs::read(&files.private_key).unwrap();
            let error = keygen(algorithm, &prefix).unwrap_err();
            assert!(
                error
                    .to_string()
                    .contains("already exists; refusing to overwrite"),
                "{error}"
            );
            assert_eq!(error.exit_code(), crate::ExitCode::BadInput);
            assert_eq!(std::fs::read(&files.private_key).unwrap(), before);
        }
    }

    #[test]
    fn writes_encrypted_keys_that_read_back_with_their_variable() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            (
                Protection::Pkcs8 { passphrase: "pw" },
                "SEALROOM_KEY_PASSWORD",
                "ENCRYPTED PRIVATE KEY",
            ),
            (
                Protection::Cosign { passphrase: "pw" },
                "COSIGN_PASSWORD",
                "ENCRYPTED SIGSTORE PRIVATE KEY",
            ),
        ];
        for (index, (protection, variable, label)) in cases.into_iter().enumerate() {
            let prefix = dir.path().join(format!("k{index}"));
            let files = keygen_protected(Algorithm::Ed25519, &prefix, protection).unwrap();
            let text = std::fs::read_to_string(&files.private_key).unwrap();
            assert!(
                text.starts_with(&format!("-----BEGIN {label}-----")),
                "{text}"
            );
            let lookup =
                |asked: &'static str| (asked == variable).then(|| Zeroizing::new("pw".to_string()));
            let key = SigningKey::from_pem_file_with(&files.private_key, &lookup).unwrap();
            assert_eq!(key.verifying_key().key_id(), files.key_id);
        }
    }

    #[test]
    fn an_existing_public_key_stops_before_writing_the_private_key() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("ci");
        std::fs::write(dir.path().join("ci.pub"), "x").unwrap();
        assert!(keygen(Algorithm::Ed25519, &prefix).is_err());
        assert!(!dir.path().join("ci.key").exists());
    }
}
