//! `sealroom::spec::load` on valid specs: what the model holds once a spec is accepted.

use std::fs;
use std::path::Path;

use sealroom::digest::BlobDigest;
use sealroom::spec::{self, Exclude, InputKind};

const IMAGE: &str =
    "sealroom/busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn write_spec(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("sealroom.toml");
    fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_valid_spec_becomes_the_model() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("project/src")).unwrap();
    let text = format!(
        r#"
version = 1
name = "hello"
source_date_epoch = 1700000000

[sandbox]
image = "{IMAGE}"

[[source]]
name = "src"
path = "project/./src/"
exclude = ["target", ".git"]

[[source]]
name = "here"
path = "."

[[step]]
name = "package"
inputs = ["compile", "src"]
run = ["sh", "-c", "tar -C /inputs/compile -cf /out/hello.tar ."]
artifacts = ["/out/hello.tar"]

[[step]]
name = "compile"
inputs = ["src"]
run = ["sh", "-c", "make -C /inputs/src OUT=/out"]
env = {{ CFLAGS = "-O2", PATH = "/opt/bin:/usr/bin" }}
artifacts = ["bin//hello", "./lib/libhello.a"]

[[step]]
name = "lint"
run = ["true"]
"#
    );
    let path = write_spec(dir.path(), &text);
    let spec = spec::load(&path).unwrap();

    assert!(spec.path.is_absolute());
    assert_eq!(spec.path, path);
    assert_eq!(spec.digest, BlobDigest::of(text.as_bytes()));
    assert_eq!(spec.name.as_str(), "hello");
    assert_eq!(spec.source_date_epoch, 1_700_000_000);
    assert_eq!(spec.sandbox.image.to_string(), IMAGE);
    assert_eq!(spec.sandbox.image.name, "sealroom/busybox");

    let sources: Vec<_> = spec
        .sources
        .iter()
        .map(|source| {
            (
                source.name.as_str(),
                source.declared_path.as_str(),
                source.path.clone(),
            )
        })
        .collect();
    assert_eq!(
        sources,
        vec![
            ("src", "project/src", dir.path().join("project").join("src")),
            ("here", ".", dir.path().to_path_buf()),
        ]
    );
    assert_eq!(spec.sources[0].exclude.patterns(), ["target", ".git"]);
    assert!(spec.sources[1].declared_path.is_root());

    // `package` comes first in the spec but needs `compile`; `lint` keeps its place after them.
    let order: Vec<&str> = spec.steps.iter().map(|step| step.name.as_str()).collect();
    assert_eq!(order, ["compile", "package", "lint"]);

    let package = &spec.steps[1];
    let inputs: Vec<(&str, InputKind)> = package
        .inputs
        .iter()
        .map(|input| (input.name.as_str(), input.kind))
        .collect();
    assert_eq!(
        inputs,
        [("compile", InputKind::Step), ("src", InputKind::Source)]
    );
    assert_eq!(package.artifacts[0].as_str(), "hello.tar");

    let compile = &spec.steps[0];
    let artifacts: Vec<&str> = compile
        .artifacts
        .iter()
        .map(|artifact| artifact.as_str())
        .collect();
    assert_eq!(artifacts, ["bin/hello", "lib/libhello.a"]);
    assert_eq!(compile.run, ["sh", "-c", "make -C /inputs/src OUT=/out"]);
    assert_eq!(compile.env.get("CFLAGS").map(String::as_str), Some("-O2"));
    assert_eq!(
        compile.env.get("PATH").map(String::as_str),
        Some("/opt/bin:/usr/bin")
    );
    assert_eq!(
        compile.artifacts[0].under(Path::new("/out")),
        Path::new("/out/bin/hello")
    );

    assert!(spec.step(&compile.name).is_some());
    assert!(spec.source(&spec.sources[0].name).is_some());
    assert_eq!(spec.directory(), dir.path());
}

#[test]
fn defaults_source_date_epoch_to_zero_and_allows_no_sources_or_steps() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_spec(
        dir.path(),
        &format!("version = 1\nname = \"empty\"\n[sandbox]\nimage = \"{IMAGE}\"\n"),
    );
    let spec = spec::load(&path).unwrap();
    assert_eq!(spec.source_date_epoch, 0);
    assert!(spec.sources.is_empty());
    assert!(spec.steps.is_empty());
}

#[test]
fn a_relative_spec_path_is_made_absolute() {
    let dir = tempfile::tempdir().unwrap();
    write_spec(
        dir.path(),
        &format!("version = 1\nname = \"rel\"\n[sandbox]\nimage = \"{IMAGE}\"\n"),
    );
    let cwd = std::env::current_dir().unwrap();
    let relative = pathdiff(dir.path(), &cwd).join("sealroom.toml");
    let spec = spec::load(&relative).unwrap();
    assert!(spec.path.is_absolute());
    assert_eq!(
        spec.path.canonicalize().unwrap(),
        dir.path().join("sealroom.toml").canonicalize().unwrap()
    );
}

/// `target` relative to `base`, with `..` as needed (both absolute).
fn pathdiff(target: &Path, base: &Path) -> std::path::PathBuf {
    let ups = base.components().count() - 1;
    let mut relative = std::path::PathBuf::new();
    for _ in 0..ups {
        relative.push("..");
    }
    relative.join(target.strip_prefix("/").unwrap())
}

#[test]
fn exclude_matches_names_at_any_depth_and_paths_from_the_root() {
    let exclude = Exclude::new(["target", "*.o", "docs/*.md", "/build", "**/gen"]).unwrap();
    let excluded = |path: &str| exclude.is_excluded(path);

    // A pattern without `/` matches a file or directory of that name anywhere, and all below.
    assert!(excluded("target"));
    assert!(excluded("target/debug/app"));
    assert!(excluded("crates/a/target/x"));
    assert!(!excluded("targets"));
    assert!(excluded("main.o"));
    assert!(excluded("lib/deep/x.o"));
    assert!(!excluded("main.c"));

    // A pattern with `/` is matched from the source root; `*` does not cross `/`.
    assert!(excluded("docs/readme.md"));
    assert!(!excluded("docs/api/readme.md"));
    assert!(!excluded("sub/docs/readme.md"));

    // A leading `/` anchors a plain name at the root.
    assert!(excluded("build"));
    assert!(excluded("build/out.bin"));
    assert!(!excluded("src/build"));

    // `**` crosses directories.
    assert!(excluded("a/b/gen"));
    assert!(excluded("a/b/gen/c.rs"));

    // The root itself is never excluded; no patterns exclude nothing.
    assert!(!excluded(""));
    assert!(!Exclude::default().is_excluded("target"));
    assert!(
        !Exclude::new(Vec::<String>::new())
            .unwrap()
            .is_excluded("target")
    );
}

#[test]
fn exclude_rejects_invalid_globs_naming_the_pattern() {
    let error = Exclude::new(["ok", "[a"]).unwrap_err();
    assert_eq!(error.index, 1);
    assert_eq!(error.pattern, "[a");
    assert_eq!(
        error.to_string(),
        "invalid exclude pattern `[a`: unclosed character class; missing ']'"
    );
}
