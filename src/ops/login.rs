//! `sealroom login REGISTRY` and `sealroom logout REGISTRY`: docker's credentials file, written
//! as `docker login` writes it. Login checks the credentials against the registry first
//! (`GET /v2/` through its challenge, Basic or a token), so a wrong password is never saved.

use crate::error::Error;
use crate::registry::auth::{self, Credentials, Removed, Secret, Stored};
use crate::registry::client::Client;
use crate::registry::{Reference, RegistryError};

/// The registry host a login names: `host[:port]`, a scheme or path dropped as docker does.
fn registry_host(text: &str) -> Result<String, RegistryError> {
    let host = auth::normalize_key(text.trim());
    // A host, checked by the reference parser (the repository is a placeholder).
    let parsed = Reference::parse(&format!("{host}/x")).ok();
    match parsed {
        Some(reference) if !host.is_empty() && reference.registry == host => Ok(host.to_string()),
        _ => Err(RegistryError::InvalidReference {
            reference: text.to_string(),
            reason: "a registry is `host[:port]` with a `.` or `:` in it, or `localhost`"
                .to_string(),
        }),
    }
}

/// Checks `username` and `password` against `registry`, then saves them in docker's
/// `config.json` (or its credential helper). Returns what was written.
pub async fn login(
    registry: &str,
    username: Option<&str>,
    password: Option<Secret>,
) -> Result<Stored, Error> {
    let registry = registry_host(registry)?;
    let (Some(username), Some(password)) = (username.filter(|name| !name.is_empty()), password)
    else {
        return Err(RegistryError::NoCredentials { registry }.into());
    };
    if password.expose().is_empty() {
        return Err(RegistryError::NoCredentials { registry }.into());
    }
    let client = Client::new(&registry)?.with_credentials(Credentials::Basic {
        username: username.to_string(),
        password: password.clone(),
    });
    client.check_credentials().await?;
    let path = auth::config_path().ok_or_else(|| RegistryError::WriteDockerConfig {
        path: "config.json".into(),
        detail: "neither DOCKER_CONFIG nor HOME is set".to_string(),
    })?;
    Ok(auth::store_credentials(&path, &registry, username, &password).await?)
}

/// Removes the credentials for `registry` from docker's `config.json` and its helper.
pub async fn logout(registry: &str) -> Result<Removed, Error> {
    let registry = registry_host(registry)?;
    let path = auth::config_path().ok_or_else(|| RegistryError::WriteDockerConfig {
        path: "config.json".into(),
        detail: "neither DOCKER_CONFIG nor HOME is set".to_string(),
    })?;
    Ok(auth::remove_credentials(&path, &registry).await?)
}
