//! `sealroom keygen`: write a PEM key pair for signing provenance.

use std::path::{Path, PathBuf};

use crate::sign::keys::Algorithm;

/// What `keygen` wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyPairFiles {
    pub algorithm: String,
    pub private_key: PathBuf,
    pub public_key: PathBuf,
    pub key_id: String,
}

/// Writes `<prefix>.key` (PKCS#8 PEM, mode 0600) and `<prefix>.pub` (SPKI PEM). Refuses to
/// overwrite an existing file.
pub fn keygen(algorithm: Algorithm, prefix: &Path) -> Result<KeyPairFiles, crate::Error> {
    let _ = (algorithm, prefix);
    unimplemented!("sign helper")
}
