//! Keeps `docs/store.md` honest: the worked example's tree objects and digests are computed here
//! and must appear in the doc verbatim, and the doc's Python recomputation must agree with the
//! store on the same directory.
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use sealroom::digest::TreeDigest;
use sealroom::store::{EntryKind, Store};

const DOC: &str = include_str!("../docs/store.md");

/// The doc's example tree: `hello/` with an executable, a plain file, a symlink and an empty dir.
fn example_tree(dir: &Path) {
    fs::create_dir_all(dir.join("bin")).unwrap();
    fs::create_dir_all(dir.join("empty")).unwrap();
    fs::write(dir.join("bin/hello"), "#!/bin/sh\necho hello\n").unwrap();
    fs::set_permissions(dir.join("bin/hello"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(dir.join("README"), "hi\n").unwrap();
    fs::set_permissions(dir.join("README"), fs::Permissions::from_mode(0o644)).unwrap();
    symlink("bin/hello", dir.join("latest")).unwrap();
}

fn canonical_text(store: &Store, digest: &TreeDigest) -> String {
    String::from_utf8(store.read_tree(digest).unwrap().canonical_bytes()).unwrap()
}

fn assert_in_doc(what: &str, text: &str) {
    assert!(
        DOC.contains(text),
        "docs/store.md must show the {what} verbatim:\n{text}"
    );
}

#[test]
fn store_doc_worked_example_shows_the_computed_objects_and_digests() {
    let work = tempfile::tempdir().unwrap();
    let store = Store::open(&work.path().join("store")).unwrap();
    let dir = work.path().join("hello");
    example_tree(&dir);
    let root = store.add_tree(&dir, &|_| false).unwrap();

    for name in ["bin", "empty"] {
        let Some(EntryKind::Directory { digest: sub }) =
            store.lookup(&root, name).unwrap().map(|e| e.kind)
        else {
            panic!("`{name}` is a directory");
        };
        assert_in_doc(
            &format!("`{name}` tree object"),
            &canonical_text(&store, &sub),
        );
        assert_in_doc(&format!("`{name}` tree digest"), &sub.to_string());
    }
    assert_in_doc("root tree object", &canonical_text(&store, &root));
    assert_in_doc("root tree digest", &format!("root tree digest: `{root}`"));
}

#[test]
fn store_doc_python_recomputation_agrees_with_the_store() {
    let script = DOC
        .split("```python\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("docs/store.md has a ```python block");
    let work = tempfile::tempdir().unwrap();
    let store = Store::open(&work.path().join("store")).unwrap();
    let dir = work.path().join("hello");
    example_tree(&dir);
    fs::write(dir.join("bin/ünïcode name"), "x").unwrap();
    fs::create_dir_all(dir.join("deep/er/est")).unwrap();
    let expected = store.add_tree(&dir, &|_| false).unwrap();

    let script_path = work.path().join("tree_digest.py");
    fs::write(&script_path, script).unwrap();
    let output = match std::process::Command::new("python3")
        .arg(&script_path)
        .arg(&dir)
        .output()
    {
        Ok(output) => output,
        Err(e) => {
            eprintln!("skipped: python3 is not available ({e})");
            return;
        }
    };
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8(output.stdout).unwrap().trim(),
        expected.to_string()
    );
}
