//! URL prefix rewriting for every download: `[mirrors]` in the spec and `--mirror PREFIX=URL` on
//! the command line, so that CI can send a build's downloads to an internal proxy (Artifactory,
//! Nexus, a loopback server in tests) without touching the spec's pins. The original URL stays
//! what provenance names; the rewritten one is recorded beside it.

use std::fmt;

/// Prefix rewrites; the longest matching prefix wins, and a command-line mirror replaces the
/// spec's for the same prefix.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mirrors {
    /// (prefix, replacement), longest prefix first.
    rules: Vec<(String, String)>,
}

/// Why a mirror rule was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidMirror(pub String);

impl fmt::Display for InvalidMirror {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Mirrors {
    /// Checks one rule: both sides `http://`, `https://` or `file://` URLs.
    pub fn check_rule(prefix: &str, replacement: &str) -> Result<(), InvalidMirror> {
        for (what, url) in [("prefix", prefix), ("replacement", replacement)] {
            let scheme = url.split_once("://");
            match scheme {
                Some(("http" | "https", rest)) if !rest.is_empty() => {}
                Some(("file", _)) => {}
                _ => {
                    return Err(InvalidMirror(format!(
                        "expected an `http://`, `https://` or `file://` URL as the mirror's {what}, found `{url}`"
                    )));
                }
            }
        }
        if prefix.ends_with('/') != replacement.ends_with('/') {
            return Err(InvalidMirror(format!(
                "the mirror `{prefix}` = `{replacement}`: one side ends in `/` and the other does not, so the rewritten paths would be joined wrongly"
            )));
        }
        Ok(())
    }

    /// Adds a rule (checked), replacing an earlier one with the same prefix.
    pub fn insert(&mut self, prefix: &str, replacement: &str) -> Result<(), InvalidMirror> {
        Self::check_rule(prefix, replacement)?;
        self.rules.retain(|(existing, _)| existing != prefix);
        self.rules
            .push((prefix.to_string(), replacement.to_string()));
        self.rules
            .sort_by(|(a, _), (b, _)| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        Ok(())
    }

    /// Parses `PREFIX=URL` as `--mirror` takes it.
    pub fn parse_flag(value: &str) -> Result<(String, String), InvalidMirror> {
        // The prefix is a URL and so holds no `=` before its path; split at the first `=`
        // after the scheme's `://`.
        let start = value.find("://").map_or(0, |at| at + 3);
        let Some(at) = value[start..].find('=').map(|at| at + start) else {
            return Err(InvalidMirror(format!(
                "expected `--mirror PREFIX=URL`, found `{value}` (no `=`)"
            )));
        };
        let (prefix, replacement) = (&value[..at], &value[at + 1..]);
        Self::check_rule(prefix, replacement)?;
        Ok((prefix.to_string(), replacement.to_string()))
    }

    /// `self` with `other`'s rules on top.
    pub fn overridden_by(&self, other: &Mirrors) -> Mirrors {
        let mut merged = self.clone();
        for (prefix, replacement) in &other.rules {
            merged
                .insert(prefix, replacement)
                .expect("rules were checked when they were added");
        }
        merged
    }

    /// The URL to download instead of `url`, if a rule matches.
    pub fn rewrite(&self, url: &str) -> Option<String> {
        self.rules
            .iter()
            .find(|(prefix, _)| url.starts_with(prefix.as_str()))
            .map(|(prefix, replacement)| format!("{replacement}{}", &url[prefix.len()..]))
    }

    /// `rewrite`, or the URL itself.
    pub fn apply(&self, url: &str) -> String {
        self.rewrite(url).unwrap_or_else(|| url.to_string())
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_prefix_wins_and_the_rest_of_the_url_is_kept() {
        let mut mirrors = Mirrors::default();
        mirrors
            .insert("https://a.example/", "http://127.0.0.1:1/all/")
            .unwrap();
        mirrors
            .insert("https://a.example/npm/", "http://127.0.0.1:1/npm/")
            .unwrap();
        assert_eq!(
            mirrors.apply("https://a.example/npm/x/-/x-1.0.0.tgz"),
            "http://127.0.0.1:1/npm/x/-/x-1.0.0.tgz"
        );
        assert_eq!(
            mirrors.apply("https://a.example/simple/six/"),
            "http://127.0.0.1:1/all/simple/six/"
        );
        assert_eq!(mirrors.rewrite("https://b.example/f"), None);
    }

    #[test]
    fn the_command_line_replaces_the_spec_for_the_same_prefix() {
        let mut spec = Mirrors::default();
        spec.insert("https://a.example/", "http://127.0.0.1:1/")
            .unwrap();
        let mut flags = Mirrors::default();
        let (prefix, url) = Mirrors::parse_flag("https://a.example/=http://127.0.0.1:2/").unwrap();
        flags.insert(&prefix, &url).unwrap();
        assert_eq!(
            spec.overridden_by(&flags).apply("https://a.example/f"),
            "http://127.0.0.1:2/f"
        );
    }

    #[test]
    fn bad_rules_say_what_was_expected() {
        assert!(
            Mirrors::parse_flag("https://a.example/")
                .unwrap_err()
                .0
                .contains("no `=`")
        );
        assert!(
            Mirrors::check_rule("ftp://a/", "http://b/")
                .unwrap_err()
                .0
                .contains("`ftp://a/`")
        );
        assert!(
            Mirrors::check_rule("https://a.example/", "http://b.example")
                .unwrap_err()
                .0
                .contains("ends in `/`")
        );
    }
}
