//! Reading a Dockerfile into instructions: comments dropped, `\` continuations joined, each
//! instruction with its line, its flags (`--from=...`) and its arguments in JSON (exec) or
//! shell form. Variables are not expanded here (`convert` does it, as it knows the stage).

use super::ConvertError;

/// One instruction, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// 1-based line of the instruction's first line.
    pub line: usize,
    /// Upper-case keyword (`RUN`, `COPY`, ...).
    pub keyword: String,
    /// `--name=value` flags before the arguments, in order.
    pub flags: Vec<(String, String)>,
    pub arguments: Arguments,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arguments {
    /// `["a", "b"]`
    Exec(Vec<String>),
    /// Everything after the keyword and flags, as one string.
    Shell(String),
}

impl Arguments {
    /// The shell form's text, or the exec form's words joined with spaces.
    pub fn text(&self) -> String {
        match self {
            Arguments::Exec(words) => words.join(" "),
            Arguments::Shell(text) => text.clone(),
        }
    }
}

/// Parses the text of a Dockerfile.
pub fn parse(text: &str) -> Result<Vec<Instruction>, ConvertError> {
    let mut instructions = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (index, raw_line) in text.lines().enumerate() {
        let line_number = index + 1;
        let trimmed = raw_line.trim_start();
        if trimmed.starts_with('#') {
            // Parser directives and comments (also inside a continued instruction).
            continue;
        }
        if pending.is_none() && trimmed.trim().is_empty() {
            continue;
        }
        let continuing = pending.is_some();
        let (start, mut joined) = pending.take().unwrap_or((line_number, String::new()));
        // A continued line's indentation is layout, not part of the command.
        let content = if continuing {
            raw_line.trim()
        } else {
            raw_line.trim_end()
        };
        if let Some(continued) = content.strip_suffix('\\') {
            joined.push_str(continued.trim_end());
            joined.push(' ');
            pending = Some((start, joined));
            continue;
        }
        joined.push_str(content);
        instructions.push(instruction(start, joined.trim())?);
    }
    if let Some((start, joined)) = pending
        && !joined.trim().is_empty()
    {
        instructions.push(instruction(start, joined.trim())?);
    }
    Ok(instructions)
}

fn instruction(line: usize, text: &str) -> Result<Instruction, ConvertError> {
    let (keyword, mut rest) = match text.split_once(char::is_whitespace) {
        Some((keyword, rest)) => (keyword.to_ascii_uppercase(), rest.trim_start()),
        None => (text.to_ascii_uppercase(), ""),
    };
    if rest.contains("<<") && matches!(keyword.as_str(), "RUN" | "COPY" | "ADD") {
        let heredoc = rest
            .split_whitespace()
            .any(|word| word.starts_with("<<") && word.len() > 2 && !word.starts_with("<<<"));
        if heredoc {
            return Err(ConvertError::Unsupported {
                line,
                what: format!("a heredoc in {keyword}"),
                hint: "write the heredoc's text to a file in the context and COPY it".to_string(),
            });
        }
    }
    let mut flags = Vec::new();
    while let Some(flag) = rest.strip_prefix("--") {
        let end = flag.find(char::is_whitespace).unwrap_or(flag.len());
        let (name, value) = flag[..end].split_once('=').unwrap_or((&flag[..end], ""));
        flags.push((name.to_string(), value.to_string()));
        rest = flag[end..].trim_start();
    }
    let arguments = if rest.starts_with('[') {
        match serde_json::from_str::<Vec<String>>(rest) {
            Ok(words) => Arguments::Exec(words),
            Err(_) => Arguments::Shell(rest.to_string()),
        }
    } else {
        Arguments::Shell(rest.to_string())
    };
    Ok(Instruction {
        line,
        keyword,
        flags,
        arguments,
    })
}

/// Splits `text` into words like a shell would for ENV, LABEL and COPY arguments: whitespace
/// separates, quotes group (and are removed), a backslash escapes the next character.
pub fn words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') => {
                if let Some(next) = chars.next() {
                    current.push(next);
                }
            }
            (Some(_), c) => current.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, '\\') => {
                if let Some(next) = chars.next() {
                    current.push(next);
                    in_word = true;
                }
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            (None, c) => {
                current.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(current);
    }
    words
}

/// `KEY=VALUE ...` pairs (ENV, LABEL, ARG), or the legacy `KEY VALUE with spaces` form.
pub fn pairs(text: &str) -> Vec<(String, Option<String>)> {
    let split = words(text);
    let first_has_equals = split.first().is_some_and(|word| word.contains('='));
    if !first_has_equals && split.len() > 1 {
        let (key, value) = text
            .trim()
            .split_once(char::is_whitespace)
            .expect("more than one word");
        return vec![(key.to_string(), Some(value.trim().to_string()))];
    }
    split
        .into_iter()
        .map(|word| match word.split_once('=') {
            Some((key, value)) => (key.to_string(), Some(value.to_string())),
            None => (word, None),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuations_comments_flags_and_forms() {
        let text = "# syntax=x\nFROM a@sha256:00 AS build\nRUN echo a \\\n  # inside\n  && echo b\nCOPY --from=build --chown=1:1 /x /y\nCMD [\"/app\", \"x\"]\n";
        let parsed = parse(text).unwrap();
        assert_eq!(parsed.len(), 4);
        assert_eq!(parsed[1].line, 3);
        assert_eq!(
            parsed[1].arguments,
            Arguments::Shell("echo a && echo b".to_string())
        );
        assert_eq!(
            parsed[2].flags,
            vec![
                ("from".to_string(), "build".to_string()),
                ("chown".to_string(), "1:1".to_string())
            ]
        );
        assert_eq!(
            parsed[3].arguments,
            Arguments::Exec(vec!["/app".to_string(), "x".to_string()])
        );
    }

    #[test]
    fn env_pairs_in_both_forms() {
        assert_eq!(
            pairs(r#"A=1 B="two words" C=x\ y"#),
            vec![
                ("A".to_string(), Some("1".to_string())),
                ("B".to_string(), Some("two words".to_string())),
                ("C".to_string(), Some("x y".to_string())),
            ]
        );
        assert_eq!(
            pairs("GREETING hello world"),
            vec![("GREETING".to_string(), Some("hello world".to_string()))]
        );
    }
}
