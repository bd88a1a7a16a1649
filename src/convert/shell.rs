//! Just enough of sh's grammar to read a RUN command: its simple commands (`a && b; c | d`),
//! each with its variable assignments, its words with quotes removed, the files it redirects
//! output to, and where it sits in the text. `sh -c 'script'` (and bash/dash/ash's) is read
//! into the commands of its script. Expansions (`$X`, `$(…)`) are kept as written: the
//! classifier only needs the command names and their options.
//!
//! Reads; never runs anything.

use std::ops::Range;

/// One simple command of a RUN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Simple {
    /// `NAME=value` words before the command (and those of a leading `env`).
    pub assignments: Vec<(String, String)>,
    /// The command and its arguments, unquoted; wrappers (`env`, `exec`, `command`, `nice`,
    /// `time`, `sudo`) dropped.
    pub words: Vec<String>,
    /// Targets of `>`, `>>` and `&>` (not `>&2` and the like).
    pub writes: Vec<String>,
    /// The command's bytes in the RUN text (for a command inside `sh -c`, those of the whole
    /// `sh -c …`).
    pub span: Range<usize>,
    /// True when the command is part of a `sh -c` script (its span is not its own).
    pub nested: bool,
}

impl Simple {
    /// The command's name without its directory (`/usr/bin/pip3` is `pip3`).
    pub fn program(&self) -> Option<&str> {
        self.words
            .first()
            .map(|word| word.rsplit('/').next().unwrap_or(word))
    }
}

/// The simple commands of `text`, in order.
pub fn commands(text: &str) -> Vec<Simple> {
    let mut out = Vec::new();
    for mut command in split(text) {
        strip_wrappers(&mut command);
        if let Some(script) = shell_script(&command) {
            let span = command.span.clone();
            let inner = commands(&script);
            if inner.is_empty() {
                out.push(command);
            }
            out.extend(inner.into_iter().map(|mut nested| {
                nested.span = span.clone();
                nested.nested = true;
                nested
            }));
            continue;
        }
        out.push(command);
    }
    out
}

/// Words that start a compound command or negate one: the command follows them.
const RESERVED: &[&str] = &[
    "if", "then", "else", "elif", "fi", "do", "done", "while", "until", "!", "{", "}", "esac",
];

fn split(text: &str) -> Vec<Simple> {
    let mut commands = Vec::new();
    let mut current = Builder::new(0);
    let bytes = text.as_bytes();
    let mut index = 0;
    while index < text.len() {
        let c = bytes[index];
        match c {
            b' ' | b'\t' => {
                current.end_word();
                index += 1;
            }
            b'\n' | b';' | b'&' | b'|' | b'(' | b')' => {
                if c == b'&' && current.pending_redirect_amp(text, index) {
                    index += 1;
                    continue;
                }
                current.end_word();
                if let Some(command) = current.finish() {
                    commands.push(command);
                }
                let width = if matches!(c, b'&' | b'|') && bytes.get(index + 1) == Some(&c) {
                    2
                } else {
                    1
                };
                index += width;
                current = Builder::new(index);
            }
            b'#' if !current.in_word => {
                // A comment runs to the end of the line.
                while index < text.len() && bytes[index] != b'\n' {
                    index += 1;
                }
            }
            b'>' | b'<' => {
                current.start_redirect(c == b'>', index);
                index += 1;
                // `>>`, `>|`, `<<`, `<>`: one operator.
                if matches!(bytes.get(index), Some(b'>' | b'|' | b'<')) {
                    index += 1;
                }
                if bytes.get(index) == Some(&b'&') {
                    // `>&2`, `<&0`: a descriptor, not a file.
                    current.redirect_to_fd();
                    index += 1;
                }
            }
            _ => {
                index = current.word_char(text, index);
                current.last_end = index;
            }
        }
    }
    current.end_word();
    if let Some(command) = current.finish() {
        commands.push(command);
    }
    commands
}

/// The state of the simple command being read.
struct Builder {
    start: usize,
    words: Vec<String>,
    writes: Vec<String>,
    word: String,
    in_word: bool,
    /// Where the next word goes: `Some(true)` an output file, `Some(false)` an input file or a
    /// descriptor (dropped).
    redirect: Option<bool>,
    started: bool,
    /// The end of the last word read.
    last_end: usize,
}

impl Builder {
    fn new(start: usize) -> Self {
        Builder {
            start,
            words: Vec::new(),
            writes: Vec::new(),
            word: String::new(),
            in_word: false,
            redirect: None,
            started: false,
            last_end: start,
        }
    }

    /// `&>file` (both streams to a file): true when `&` at `index` starts one.
    fn pending_redirect_amp(&mut self, text: &str, index: usize) -> bool {
        if !self.in_word && text.as_bytes().get(index + 1) == Some(&b'>') {
            self.started = true;
            return true;
        }
        false
    }

    /// A word made only of digits before `>` is the descriptor of a redirection (`2>x`).
    fn word_is_fd(&self) -> bool {
        self.in_word && !self.word.is_empty() && self.word.bytes().all(|b| b.is_ascii_digit())
    }

    fn start_redirect(&mut self, output: bool, index: usize) {
        if self.word_is_fd() {
            self.word.clear();
            self.in_word = false;
        } else {
            self.end_word();
        }
        if !self.started {
            self.start = index;
            self.started = true;
        }
        self.redirect = Some(output);
    }

    fn redirect_to_fd(&mut self) {
        self.redirect = Some(false);
    }

    /// Reads one character (or a quoted run) of a word; the index after it.
    fn word_char(&mut self, text: &str, index: usize) -> usize {
        if !self.started {
            self.start = index;
            self.started = true;
        }
        self.in_word = true;
        let bytes = text.as_bytes();
        match bytes[index] {
            b'\'' => {
                let end = text[index + 1..]
                    .find('\'')
                    .map_or(text.len(), |at| index + 1 + at);
                self.word.push_str(&text[index + 1..end]);
                (end + 1).min(text.len())
            }
            b'"' => {
                let mut at = index + 1;
                while at < text.len() && bytes[at] != b'"' {
                    if bytes[at] == b'\\' && at + 1 < text.len() {
                        let next = bytes[at + 1];
                        if matches!(next, b'"' | b'\\' | b'$' | b'`') {
                            self.word.push(next as char);
                            at += 2;
                            continue;
                        }
                    }
                    let c = text[at..].chars().next().expect("char boundary");
                    self.word.push(c);
                    at += c.len_utf8();
                }
                (at + 1).min(text.len())
            }
            b'\\' => {
                let next = text[index + 1..].chars().next();
                match next {
                    Some(c) => {
                        self.word.push(c);
                        index + 1 + c.len_utf8()
                    }
                    None => index + 1,
                }
            }
            b'$' if matches!(bytes.get(index + 1), Some(b'(' | b'{')) => {
                // `$(…)` and `${…}` stay in the word as written, nested parentheses and all.
                let (open, close) = if bytes[index + 1] == b'(' {
                    (b'(', b')')
                } else {
                    (b'{', b'}')
                };
                let mut depth = 0;
                let mut at = index + 1;
                while at < text.len() {
                    if bytes[at] == open {
                        depth += 1;
                    } else if bytes[at] == close {
                        depth -= 1;
                        if depth == 0 {
                            at += 1;
                            break;
                        }
                    }
                    at += 1;
                }
                self.word.push_str(&text[index..at]);
                at
            }
            b'`' => {
                let end = text[index + 1..]
                    .find('`')
                    .map_or(text.len(), |at| index + 1 + at);
                self.word.push_str(&text[index..(end + 1).min(text.len())]);
                (end + 1).min(text.len())
            }
            _ => {
                let c = text[index..].chars().next().expect("char boundary");
                self.word.push(c);
                index + c.len_utf8()
            }
        }
    }

    fn end_word(&mut self) {
        if !self.in_word {
            return;
        }
        let word = std::mem::take(&mut self.word);
        self.in_word = false;
        match self.redirect.take() {
            Some(true) => self.writes.push(word),
            Some(false) => {}
            None => {
                // Reserved words in command position introduce the command after them.
                if self.words.is_empty() && RESERVED.contains(&word.as_str()) {
                    return;
                }
                self.words.push(word);
            }
        }
    }

    fn finish(self) -> Option<Simple> {
        if self.words.is_empty() && self.writes.is_empty() {
            return None;
        }
        let end = self.last_end.max(self.start);
        let mut words = self.words;
        let split_at = words
            .iter()
            .position(|word| assignment(word).is_none())
            .unwrap_or(words.len());
        let assignments = words
            .drain(..split_at)
            .filter_map(|word| assignment(&word))
            .collect();
        Some(Simple {
            assignments,
            words,
            writes: self.writes,
            span: self.start..end,
            nested: false,
        })
    }
}

/// `NAME=value` as (name, value).
fn assignment(word: &str) -> Option<(String, String)> {
    let (name, value) = word.split_once('=')?;
    let mut bytes = name.bytes();
    let valid = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_');
    valid.then(|| (name.to_string(), value.to_string()))
}

/// Drops `env A=B`, `exec`, `command`, `nice -n N`, `time`, `sudo [-u U] [-E]` in front of the
/// command, keeping their assignments.
fn strip_wrappers(command: &mut Simple) {
    loop {
        let Some(program) = command.program() else {
            return;
        };
        let skip_options: &[&str] = match program {
            "env" => &["-u", "--unset", "-C", "--chdir"],
            "sudo" => &["-u", "-g", "--user", "--group"],
            "nice" => &["-n", "--adjustment"],
            "exec" | "command" | "time" | "nohup" => &[],
            _ => return,
        };
        let is_env = program == "env";
        command.words.remove(0);
        while let Some(first) = command.words.first() {
            if skip_options.contains(&first.as_str()) {
                command.words.drain(..2.min(command.words.len()));
            } else if first.starts_with('-') {
                command.words.remove(0);
            } else if is_env && let Some(pair) = assignment(first) {
                command.assignments.push(pair);
                command.words.remove(0);
            } else {
                break;
            }
        }
    }
}

/// The script of `sh -c 'script'` (`-ec`, `-xc`, `-euxc` too), for sh, bash, dash, ash, zsh.
fn shell_script(command: &Simple) -> Option<String> {
    if !matches!(
        command.program()?,
        "sh" | "bash" | "dash" | "ash" | "zsh" | "busybox"
    ) {
        return None;
    }
    let mut words = command.words.iter().skip(1);
    if command.program() == Some("busybox") && words.next().map(String::as_str) != Some("sh") {
        return None;
    }
    let mut has_c = false;
    let mut option_value = false;
    for word in words {
        if option_value {
            // The name after `-o` (`-o pipefail`).
            option_value = false;
            continue;
        }
        if has_c {
            return Some(word.clone());
        }
        let short = (word.starts_with('-') || word.starts_with('+')) && !word.starts_with("--");
        if short && word.contains('c') {
            has_c = true;
            option_value = word.ends_with('o');
        } else if short {
            option_value = word.ends_with('o');
        } else if !word.starts_with("--") {
            return None;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<Vec<String>> {
        commands(text).into_iter().map(|c| c.words).collect()
    }

    #[test]
    fn chains_pipes_and_lists_are_separate_commands() {
        assert_eq!(
            words("a x && b 'y z' || c;d | e & f\ng"),
            vec![
                vec!["a", "x"],
                vec!["b", "y z"],
                vec!["c"],
                vec!["d"],
                vec!["e"],
                vec!["f"],
                vec!["g"]
            ]
        );
    }

    #[test]
    fn assignments_redirections_and_wrappers() {
        let parsed = commands("PIP_NO_INDEX=1 env -u X A=b pip install x > /log/out 2>&1 <in");
        assert_eq!(parsed.len(), 1);
        assert_eq!(
            parsed[0].assignments,
            vec![
                ("PIP_NO_INDEX".to_string(), "1".to_string()),
                ("A".to_string(), "b".to_string())
            ]
        );
        assert_eq!(parsed[0].words, vec!["pip", "install", "x"]);
        assert_eq!(parsed[0].writes, vec!["/log/out"]);
        let parsed = commands("echo x >>/a/b; cat &>/c/d");
        assert_eq!(parsed[0].writes, vec!["/a/b"]);
        assert_eq!(parsed[1].writes, vec!["/c/d"]);
    }

    #[test]
    fn sh_c_scripts_are_read_and_spans_point_into_the_text() {
        let text = "mkdir -p /w && sh -ec 'cd /src && pip download -r r.txt -d /w' && ls";
        let parsed = commands(text);
        let names: Vec<_> = parsed.iter().map(|c| c.words[0].as_str()).collect();
        assert_eq!(names, vec!["mkdir", "cd", "pip", "ls"]);
        assert!(parsed[2].nested);
        assert_eq!(
            &text[parsed[2].span.clone()],
            "sh -ec 'cd /src && pip download -r r.txt -d /w'"
        );
        assert_eq!(&text[parsed[0].span.clone()], "mkdir -p /w");
        assert_eq!(&text[parsed[3].span.clone()], "ls");
    }

    #[test]
    fn compound_commands_quotes_and_substitutions() {
        assert_eq!(
            words("if [ -f x ]; then npm ci; else echo \"a \\\"b\\\"\"; fi"),
            vec![
                vec!["[", "-f", "x", "]"],
                vec!["npm", "ci"],
                vec!["echo", "a \"b\""]
            ]
        );
        assert_eq!(
            words("echo $(cd /x && pwd) ${A:-b} # a comment && curl x"),
            vec![vec!["echo", "$(cd /x && pwd)", "${A:-b}"]]
        );
    }
}
