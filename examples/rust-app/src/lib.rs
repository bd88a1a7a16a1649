//! Counts words and prints each count with itoa: a tiny program whose dependencies (itoa,
//! cfg-if) come from a Cargo.lock, vendored by sealroom for an offline build.

use std::collections::BTreeMap;

cfg_if::cfg_if! {
    if #[cfg(windows)] {
        /// How the report ends a line.
        pub const LINE_END: &str = "\r\n";
    } else {
        /// How the report ends a line.
        pub const LINE_END: &str = "\n";
    }
}

/// Each distinct word of `text` (split on whitespace) with how often it occurs, sorted by word.
pub fn word_counts(text: &str) -> Vec<(String, u64)> {
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for word in text.split_whitespace() {
        *counts.entry(word).or_insert(0) += 1;
    }
    counts
        .into_iter()
        .map(|(word, count)| (word.to_string(), count))
        .collect()
}

/// One line per word: `<word> <count> <digit sum of the count>`.
pub fn report(text: &str) -> String {
    let mut buffer = itoa::Buffer::new();
    let mut out = String::new();
    for (word, count) in word_counts(text) {
        let count = buffer.format(count);
        let sum = digits::digit_sum(count);
        out.push_str(&format!("{word} {count} {sum}{LINE_END}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{report, word_counts};

    #[test]
    fn counts_repeated_words() {
        assert_eq!(
            word_counts("b a b"),
            vec![("a".to_string(), 1), ("b".to_string(), 2)]
        );
    }

    #[test]
    fn reports_counts_with_itoa() {
        let text = "x ".repeat(123);
        assert_eq!(report(&text), "x 123 6\n");
    }
}
