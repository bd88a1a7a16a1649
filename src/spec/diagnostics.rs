//! Turning byte spans into `file:line:column` and toml's parse errors into sealroom's words.
//!
//! toml reports serde's phrasing ("unknown field", "invalid type: map, expected a sequence");
//! a spec author thinks in TOML's terms (keys, tables, arrays), so the messages are reworded
//! here, keeping toml's span. Owns no validation of its own.

use std::ops::Range;
use std::path::Path;

use super::{Location, SpecError};

/// The spec's text and the path to show in locations.
pub(crate) struct SourceText<'a> {
    pub path: &'a Path,
    pub text: &'a str,
}

impl SourceText<'_> {
    /// The 1-based line and column (in characters) of a byte offset.
    pub fn location(&self, offset: usize) -> Location {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.text[..offset];
        let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
        Location {
            path: self.path.to_path_buf(),
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }

    pub fn invalid(
        &self,
        span: Range<usize>,
        message: impl Into<String>,
        hint: Option<String>,
    ) -> SpecError {
        SpecError::Invalid {
            location: self.location(span.start),
            message: message.into(),
            hint,
        }
    }

    /// Rewords a toml/serde error, at toml's span.
    pub fn toml_error(&self, error: &toml::de::Error) -> SpecError {
        let span = error.span().unwrap_or(0..0);
        let found = self.text.get(span.clone()).unwrap_or("");
        let (message, hint) = reword(error.message(), found, self.key_before(span.start));
        self.invalid(span, message, hint)
    }

    /// The bare key of a `key = value` line whose value starts at `offset`, if that is the shape.
    fn key_before(&self, offset: usize) -> Option<&str> {
        let before = self.text.get(..offset)?;
        let line = &before[before.rfind('\n').map_or(0, |newline| newline + 1)..];
        let key = line.trim_end().strip_suffix('=')?.trim();
        let bare = !key.is_empty()
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        bare.then_some(key)
    }
}

fn reword(message: &str, found: &str, key: Option<&str>) -> (String, Option<String>) {
    if let Some(rest) = message.strip_prefix("unknown field `")
        && let Some((unknown, expected)) = rest.split_once('`')
    {
        return unknown_key(unknown, expected.trim_start_matches(", "));
    }
    if let Some(rest) = message.strip_prefix("invalid type: ")
        && let Some((unexpected, expected)) = rest.split_once(", expected ")
    {
        let expected = toml_type(expected);
        let found_type = toml_type(unexpected);
        let subject = key.map(|key| format!(" for `{key}`")).unwrap_or_default();
        let mut hint = None;
        // `[step]` where `[[step]]` was meant.
        if expected == "an array"
            && found_type == "a table"
            && found.starts_with('[')
            && !found.starts_with("[[")
        {
            let name = found.trim_matches(['[', ']']).trim();
            hint = Some(format!(
                "write `[[{name}]]`, with double brackets: a spec can have several"
            ));
            return (
                format!("expected an array of tables for `{name}`, found a table"),
                hint,
            );
        }
        if expected == "a table" {
            hint = Some("write it as a `[table]` or an inline `{ key = value }`".to_string());
        }
        return (
            format!("expected {expected}{subject}, found {found_type}"),
            hint,
        );
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        let key = rest.trim_end_matches('`');
        return (format!("missing key `{key}`"), None);
    }
    if message == "duplicate key" {
        return (
            format!("duplicate key `{}`", found.trim()),
            Some("a key may appear only once in a table".to_string()),
        );
    }
    (format!("invalid TOML: {message}"), None)
}

fn unknown_key(unknown: &str, expected: &str) -> (String, Option<String>) {
    // serde says "expected one of `a`, `b`", "expected `a`" or "there are no fields".
    let known: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    let message = if known.is_empty() {
        format!("unknown key `{unknown}`")
    } else {
        format!(
            "unknown key `{unknown}`, expected one of {}",
            quoted_list(known.iter().copied())
        )
    };
    let hint =
        closest(unknown, known.iter().copied()).map(|name| format!("did you mean `{name}`?"));
    (message, hint)
}

/// serde's type words, in TOML's terms.
fn toml_type(serde: &str) -> String {
    let serde = serde.trim();
    if serde == "i64" || serde == "u64" || serde == "u32" || serde == "i32" {
        return "an integer".to_string();
    }
    if serde == "a sequence" || serde == "sequence" {
        return "an array".to_string();
    }
    if serde == "a map" || serde == "map" || serde.starts_with("struct ") {
        return "a table".to_string();
    }
    if let Some(value) = serde.strip_prefix("floating point ") {
        return format!("float {value}");
    }
    serde.to_string()
}

/// `a`, `b`, `c`
pub(crate) fn quoted_list<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    names
        .into_iter()
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The candidate nearest to `wanted`, if it is near enough to be a likely typo.
pub(crate) fn closest<'a>(
    wanted: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (wanted.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|candidate| (edit_distance(wanted, candidate), candidate))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// Levenshtein distance, in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, a_char) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, b_char) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(a_char != *b_char);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("src", "src"), 0);
        assert_eq!(edit_distance("srcc", "src"), 1);
        assert_eq!(edit_distance("colour", "color"), 1);
        assert_eq!(closest("compil", ["src", "compile"]), Some("compile"));
        assert_eq!(closest("zzz", ["src", "compile"]), None);
    }

    #[test]
    fn locations_are_one_based_in_characters() {
        let text = SourceText {
            path: Path::new("s.toml"),
            text: "a = 1\nb = \"é\" x",
        };
        assert_eq!(text.location(0).to_string(), "s.toml:1:1");
        assert_eq!(text.location(6).to_string(), "s.toml:2:1");
        // "é" is two bytes but one column.
        assert_eq!(text.location(14).to_string(), "s.toml:2:8");
    }
}
