//! The binary, run as a user would: words on stdin, counts on stdout.

use std::io::Write;
use std::process::{Command, Stdio};

#[test]
fn counts_words_from_stdin() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rust-app"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"to be or not to be")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        "be 2 2\nnot 1 1\nor 1 1\nto 2 2\n"
    );
}
