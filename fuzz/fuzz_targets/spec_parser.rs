//! `spec::load` on arbitrary bytes, as a spec file next to a `src/` directory (so a
//! `[[source]]` with `path = "src"` or `"."` can pass validation and reach the later rules).
//!
//! Invariants: `load` never panics; an error renders (its `Display` never panics and names the
//! spec's path); an accepted spec has every step after its inputs.
#![no_main]

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sealroom::spec::{self, InputKind, SpecError};

/// One directory for the whole run: rewriting one file is much faster than a fresh temp dir
/// per input, and nothing in `load` writes anywhere.
fn spec_path() -> &'static PathBuf {
    static DIR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temp dir");
        std::fs::create_dir(dir.path().join("src")).expect("creating src/");
        std::fs::write(
            dir.path().join("src/main.c"),
            "int main(void) { return 0; }\n",
        )
        .expect("writing src/main.c");
        let path = dir.path().join("sealroom.toml");
        (dir, path)
    });
    path
}

fuzz_target!(|data: &[u8]| {
    let path = spec_path();
    std::fs::write(path, data).expect("writing the spec");
    match spec::load(path) {
        Ok(spec) => {
            let mut done = HashSet::new();
            for step in &spec.steps {
                for input in step.inputs.iter().filter(|i| i.kind == InputKind::Step) {
                    assert!(
                        done.contains(&input.name),
                        "step `{}` comes before its input `{}`",
                        step.name,
                        input.name
                    );
                }
                done.insert(step.name.clone());
            }
        }
        Err(error) => {
            let text = error.to_string();
            if let SpecError::Invalid { location, .. } = &error {
                assert_eq!(&location.path, path, "{text}");
                assert!(location.line >= 1 && location.column >= 1, "{text}");
            }
        }
    }
});
