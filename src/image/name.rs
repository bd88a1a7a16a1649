//! Image repository names (`sealroom/busybox`, `localhost:5000/team/gcc`), checked once against
//! Docker's reference grammar. A name here never carries a tag or a digest: the tag is always
//! `latest` and the digest is what an import returns.

use std::fmt;

use super::ImageError;

/// The longest repository name Docker accepts.
const MAX_LENGTH: usize = 255;

/// A valid Docker repository name, without tag or digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryName(String);

impl RepositoryName {
    /// Checks `name` against Docker's grammar: an optional registry host (`host[:port]/`), then
    /// `/`-separated path components of lower-case letters and digits joined by `.`, `_`, `__`
    /// or dashes.
    pub fn parse(name: &str) -> Result<Self, ImageError> {
        let invalid = |reason: String| ImageError::InvalidName {
            name: name.to_string(),
            reason,
        };
        if name.is_empty() {
            return Err(invalid("it is empty".into()));
        }
        if name.len() > MAX_LENGTH {
            return Err(invalid(format!(
                "it is {} characters long, the limit is {MAX_LENGTH}",
                name.len()
            )));
        }
        if name.contains('@') {
            return Err(invalid(
                "it contains a digest; give the name alone, the digest is what the import prints"
                    .into(),
            ));
        }
        let mut components: Vec<&str> = name.split('/').collect();
        let has_domain = components.len() > 1
            && (components[0].contains('.')
                || components[0].contains(':')
                || components[0] == "localhost");
        if has_domain {
            let domain = components.remove(0);
            check_domain(domain).map_err(invalid)?;
        }
        for component in components {
            if component.contains(':') {
                return Err(invalid(
                    "it contains a tag; the tag is always `latest`".into(),
                ));
            }
            check_path_component(component).map_err(invalid)?;
        }
        Ok(Self(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The `name:latest` tag an import sets.
    pub fn latest(&self) -> String {
        format!("{}:latest", self.0)
    }
}

impl fmt::Display for RepositoryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `[a-z0-9]+ (separator [a-z0-9]+)*` with separator `.`, `_`, `__` or one or more `-`.
fn check_path_component(component: &str) -> Result<(), String> {
    if component.is_empty() {
        return Err("it has an empty path component (`//`, or `/` at an end)".into());
    }
    if let Some(upper) = component.chars().find(|c| c.is_ascii_uppercase()) {
        return Err(format!(
            "it must be lower-case, found `{upper}` in `{component}`"
        ));
    }
    if let Some(bad) = component
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "`{bad}` is not allowed in `{component}` (only a-z, 0-9, `.`, `_` and `-`)"
        ));
    }
    let alphanumeric = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let bytes: Vec<char> = component.chars().collect();
    if !alphanumeric(bytes[0]) || !alphanumeric(bytes[bytes.len() - 1]) {
        return Err(format!(
            "`{component}` must start and end with a letter or a digit"
        ));
    }
    // Between two alphanumeric runs: exactly `.`, `_`, `__`, or any number of `-`.
    for separator in component.split(alphanumeric).filter(|s| !s.is_empty()) {
        let ok = matches!(separator, "." | "_" | "__") || separator.chars().all(|c| c == '-');
        if !ok {
            return Err(format!(
                "`{separator}` in `{component}` is not a separator Docker accepts (`.`, `_`, `__` or dashes)"
            ));
        }
    }
    Ok(())
}

/// A registry host: dot-separated labels of letters, digits and inner dashes, an optional port.
fn check_domain(domain: &str) -> Result<(), String> {
    let (host, port) = match domain.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (domain, None),
    };
    if let Some(port) = port
        && (port.is_empty() || !port.chars().all(|c| c.is_ascii_digit()))
    {
        return Err(format!("the registry port in `{domain}` must be a number"));
    }
    for label in host.split('.') {
        let valid = !label.is_empty()
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !valid {
            return Err(format!("`{domain}` is not a valid registry host"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_docker_names() {
        for name in [
            "busybox",
            "sealroom/debian-gcc",
            "sealroom-test/busybox",
            "a/b/c",
            "my_org/x__y",
            "a.b/c",
            "localhost/x",
            "localhost:5000/team/gcc",
            "registry.example.org/x",
            "a--b",
        ] {
            RepositoryName::parse(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn rejects_tags_digests_and_bad_characters() {
        let cases = [
            ("Busybox", "must be lower-case"),
            ("sealroom/busybox:1.0", "contains a tag"),
            ("busybox@sha256:abc", "contains a digest"),
            ("", "empty"),
            ("a//b", "empty path component"),
            ("a/", "empty path component"),
            ("-a", "must start and end"),
            ("a_", "must start and end"),
            ("a___b", "not a separator"),
            ("a.-b", "not a separator"),
            ("a b", "is not allowed"),
        ];
        for (name, expected) in cases {
            let error = RepositoryName::parse(name).unwrap_err().to_string();
            assert!(error.contains(expected), "{name}: {error}");
        }
    }
}
