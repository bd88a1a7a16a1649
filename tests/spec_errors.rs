//! Every way `sealroom::spec::load` rejects a spec, with the exact text the user sees:
//! `file:line:column: message` and, where the user can act, a hint.

use std::fs;

use sealroom::spec::{self, SpecError};

const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// The first four lines of a valid spec; what a test adds starts on line 5.
fn head() -> String {
    format!("version = 1\nname = \"t\"\n[sandbox]\nimage = \"busybox@{DIGEST}\"\n")
}

/// Loads `text` as `<tmp>/sealroom.toml` (next to a directory `src` and a file `file.txt`) and
/// returns the error as printed, with the temporary directory left out of paths.
fn error(text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("src")).unwrap();
    fs::write(dir.path().join("file.txt"), "not a directory").unwrap();
    let path = dir.path().join("sealroom.toml");
    fs::write(&path, text).unwrap();
    let error = spec::load(&path).expect_err("the spec should be rejected");
    assert!(matches!(error, SpecError::Invalid { .. }), "{error:?}");
    error
        .to_string()
        .replace(&format!("{}/", dir.path().display()), "")
}

fn step_error(step: &str) -> String {
    error(&format!(
        "{}[[source]]\nname = \"src\"\npath = \"src\"\n{step}",
        head()
    ))
}

// --- TOML itself ---

#[test]
fn syntax_error() {
    assert_eq!(
        error("version = 1\nname = \n"),
        "sealroom.toml:2:8: invalid TOML: string values must be quoted, expected literal string"
    );
}

#[test]
fn duplicate_key() {
    assert_eq!(
        error("version = 1\nversion = 1\n"),
        "sealroom.toml:2:1: duplicate key `version`\n  hint: a key may appear only once in a table"
    );
}

#[test]
fn not_utf8() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sealroom.toml");
    fs::write(&path, b"version = 1\nname = \"\xff\"\n").unwrap();
    let error = spec::load(&path).unwrap_err().to_string();
    assert_eq!(
        error.replace(&format!("{}/", dir.path().display()), ""),
        "sealroom.toml:2:9: expected UTF-8 text, found a byte that is not UTF-8\n  hint: save the spec as UTF-8"
    );
}

#[test]
fn unreadable_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.toml");
    let error = spec::load(&path).unwrap_err();
    assert!(matches!(error, SpecError::Read { .. }));
    assert!(
        error
            .to_string()
            .starts_with(&format!("cannot read spec `{}`: ", path.display()))
    );
}

// --- unknown keys and wrong types ---

#[test]
fn unknown_top_level_key() {
    assert_eq!(
        error("version = 1\ncolour = \"red\"\n"),
        "sealroom.toml:2:1: unknown key `colour`, expected one of `version`, `name`, `source_date_epoch`, `sandbox`, `source`, `fetch`, `step`, `image`, `mirrors`"
    );
}

#[test]
fn unknown_key_with_a_suggestion() {
    assert_eq!(
        step_error("[[step]]\nname = \"a\"\nrun = [\"true\"]\nartifact = [\"x\"]\n"),
        "sealroom.toml:11:1: unknown key `artifact`, expected one of `name`, `inputs`, `run`, `env`, `artifacts`, `limits`\n  hint: did you mean `artifacts`?"
    );
}

#[test]
fn unknown_key_in_sandbox() {
    assert_eq!(
        error(&format!(
            "version = 1\nname = \"t\"\n[sandbox]\nimage = \"busybox@{DIGEST}\"\nimages = \"x\"\n"
        )),
        "sealroom.toml:5:1: unknown key `images`, expected one of `image`, `limits`\n  hint: did you mean `image`?"
    );
}

// --- fetches ---

fn fetch_error(fetch: &str) -> String {
    error(&format!("{}[[fetch]]\nname = \"dep\"\n{fetch}", head()))
}

#[test]
fn a_fetch_without_url_or_run() {
    assert_eq!(
        fetch_error(""),
        "sealroom.toml:5:1: missing key `url` or `run` in fetch `dep`\n  hint: a fetch downloads `url = \"…\"` pinned by `sha256`, or runs `run = [\"…\"]` pinned by `output`"
    );
}

#[test]
fn a_fetch_with_both_url_and_run() {
    assert_eq!(
        fetch_error("url = \"http://127.0.0.1/a.tar\"\nrun = [\"true\"]\n"),
        "sealroom.toml:8:7: fetch `dep` has both `url` and `run`: expected one of them\n  hint: split it into two fetches"
    );
}

#[test]
fn a_download_with_a_key_of_a_run_fetch() {
    assert!(
        fetch_error("url = \"http://127.0.0.1/a.tar\"\noutput = \"sha256:00\"\n").starts_with(
            "sealroom.toml:5:1: fetch `dep` downloads a `url`, so `output` does not belong to it"
        )
    );
}

#[test]
fn a_url_of_another_scheme() {
    assert_eq!(
        fetch_error("url = \"ftp://127.0.0.1/a.tar\"\n"),
        "sealroom.toml:7:7: expected an `http://`, `https://` or `file://` URL for fetch `dep`, found `ftp://127.0.0.1/a.tar`"
    );
}

#[test]
fn a_malformed_sha256_pin() {
    assert!(
        fetch_error("url = \"http://127.0.0.1/a.tar\"\nsha256 = \"abc\"\n").starts_with(
            "sealroom.toml:8:10: expected 64 lower-case hex characters (optionally after `sha256:`) for `sha256` of fetch `dep`, found `abc`"
        )
    );
}

#[test]
fn strip_components_without_unpack() {
    assert!(
        fetch_error("url = \"http://127.0.0.1/a.tar\"\nstrip_components = 1\n").starts_with(
            "sealroom.toml:8:20: `strip_components` of fetch `dep` only applies to an archive that is unpacked"
        )
    );
}

#[test]
fn a_malformed_output_pin() {
    assert!(
        fetch_error("run = [\"true\"]\noutput = \"abc\"\n").starts_with(
            "sealroom.toml:8:10: expected a tree digest `sha256:<64 lower-case hex>` for `output` of fetch `dep`, found `abc`"
        )
    );
}

#[test]
fn an_unknown_network() {
    assert_eq!(
        fetch_error("run = [\"true\"]\nnetwork = \"none\"\n"),
        "sealroom.toml:8:11: expected `network = \"bridge\"` or `\"host\"` for fetch `dep`, found `none`"
    );
}

#[test]
fn fetches_are_inputs_in_the_shared_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sealroom.toml");
    let pin = "ab".repeat(32);
    fs::write(
        &path,
        format!(
            "{}[[fetch]]\nname = \"pkg\"\nurl = \"http://127.0.0.1:9/dl/pkg-1.0.tar.gz?x=1\"\nsha256 = \"{pin}\"\nunpack = true\nstrip_components = 1\n[[fetch]]\nname = \"vendor\"\nrun = [\"sh\", \"-c\", \"true\"]\nnetwork = \"host\"\n[[step]]\nname = \"a\"\ninputs = [\"pkg\", \"vendor\"]\nrun = [\"true\"]\n",
            head()
        ),
    )
    .unwrap();
    let spec = spec::load(&path).unwrap();
    assert_eq!(spec.fetches.len(), 2);
    let spec::FetchKind::Url(url) = &spec.fetches[0].kind else {
        panic!("a download")
    };
    assert_eq!(url.sha256.unwrap().hex(), pin);
    assert_eq!(
        (url.unpack, url.strip_components, url.file_name.as_str()),
        (true, 1, "pkg-1.0.tar.gz")
    );
    let spec::FetchKind::Run(run) = &spec.fetches[1].kind else {
        panic!("a run")
    };
    assert_eq!(run.network, spec::FetchNetwork::Host);
    assert!(run.output.is_none(), "unpinned until `sealroom pin`");
    assert_eq!(run.image, spec.sandbox.image);
    let kinds: Vec<_> = spec.steps[0]
        .inputs
        .iter()
        .map(|input| input.kind)
        .collect();
    assert_eq!(kinds, [spec::InputKind::Fetch, spec::InputKind::Fetch]);
}

#[test]
fn wrong_type_names_the_key() {
    assert_eq!(
        error("version = \"1\"\n"),
        "sealroom.toml:1:11: expected an integer for `version`, found string \"1\""
    );
    assert_eq!(
        step_error("[[step]]\nname = \"a\"\nrun = \"make\"\n"),
        "sealroom.toml:10:7: expected an array for `run`, found string \"make\""
    );
    assert_eq!(
        step_error("[[step]]\nname = \"a\"\nrun = [\"make\", 3]\n"),
        "sealroom.toml:10:16: expected a string, found integer `3`"
    );
    assert_eq!(
        step_error("[[step]]\nname = \"a\"\nrun = [\"make\"]\nenv = { A = 1 }\n"),
        "sealroom.toml:11:13: expected a string, found integer `1`"
    );
    assert_eq!(
        error("version = 1\nname = \"t\"\nsandbox = \"busybox\"\n"),
        "sealroom.toml:3:11: expected a table for `sandbox`, found string \"busybox\"\n  hint: write it as a `[table]` or an inline `{ key = value }`"
    );
}

#[test]
fn single_brackets_where_an_array_of_tables_is_expected() {
    assert_eq!(
        error(&format!("{}[step]\nname = \"a\"\n", head())),
        "sealroom.toml:5:1: expected an array of tables for `step`, found a table\n  hint: write `[[step]]`, with double brackets: a spec can have several"
    );
}

// --- version, name, source_date_epoch ---

#[test]
fn missing_version() {
    assert_eq!(
        error(&format!(
            "name = \"t\"\n[sandbox]\nimage = \"busybox@{DIGEST}\"\n"
        )),
        "sealroom.toml:1:1: missing key `version`\n  hint: add `version = 1` at the top of the spec"
    );
}

#[test]
fn unsupported_version() {
    assert_eq!(
        error("version = 2\n"),
        "sealroom.toml:1:11: expected `version = 1`, found `version = 2`\n  hint: this sealroom reads spec version 1 only"
    );
}

#[test]
fn missing_name() {
    assert_eq!(
        error("version = 1\n"),
        "sealroom.toml:1:1: missing key `name`\n  hint: add `name = \"<project>\"` at the top of the spec"
    );
}

#[test]
fn invalid_name() {
    assert_eq!(
        error("version = 1\nname = \"Hello World\"\n"),
        "sealroom.toml:2:8: expected a name of lower-case letters, digits, `.`, `_` and `-`, starting with a letter or digit, found `Hello World`\n  hint: try `hello-world`"
    );
    assert_eq!(
        error("version = 1\nname = \"\"\n"),
        "sealroom.toml:2:8: expected a name of lower-case letters, digits, `.`, `_` and `-`, starting with a letter or digit, found an empty string"
    );
    assert_eq!(
        error("version = 1\nname = \"-x\"\n"),
        "sealroom.toml:2:8: expected a name of lower-case letters, digits, `.`, `_` and `-`, starting with a letter or digit, found `-x`\n  hint: try `x`"
    );
    assert_eq!(
        error(&format!("version = 1\nname = \"{}\"\n", "a".repeat(65))),
        "sealroom.toml:2:8: expected a name of at most 64 characters, found 65 characters"
    );
}

#[test]
fn negative_source_date_epoch() {
    assert_eq!(
        error("version = 1\nname = \"t\"\nsource_date_epoch = -5\n"),
        "sealroom.toml:3:21: expected a non-negative integer (seconds since 1970-01-01 UTC) for `source_date_epoch`, found -5"
    );
}

// --- sandbox image ---

#[test]
fn missing_sandbox() {
    assert_eq!(
        error("version = 1\nname = \"t\"\n"),
        "sealroom.toml:1:1: missing table `[sandbox]`\n  hint: add `[sandbox]` with `image = \"<name>@sha256:<64 hex>\"`"
    );
}

#[test]
fn missing_image() {
    assert_eq!(
        error("version = 1\nname = \"t\"\n\n[sandbox]\n"),
        "sealroom.toml:4:1: missing key `image` in `[sandbox]`\n  hint: add `image = \"<name>@sha256:<64 hex>\"`, as printed by `sealroom image import`"
    );
}

#[test]
fn image_not_pinned_by_digest() {
    assert_eq!(
        error("version = 1\nname = \"t\"\n[sandbox]\nimage = \"busybox:latest\"\n"),
        "sealroom.toml:4:9: expected an image pinned by digest, `name@sha256:<64 hex>`, found `busybox:latest`\n  hint: run `sealroom image import ROOTFS --name NAME` and use the reference it prints, or use the `name@sha256:...` that the recipe in `sandbox/` printed"
    );
}

#[test]
fn malformed_image_digest() {
    assert_eq!(
        error("version = 1\nname = \"t\"\n[sandbox]\nimage = \"busybox@sha256:abc\"\n"),
        "sealroom.toml:4:9: expected `sha256:<64 lower-case hex>` after `@` in the image, found `sha256:abc`\n  hint: copy the whole reference that `sealroom image import` printed"
    );
}

#[test]
fn malformed_image_name() {
    assert_eq!(
        error(&format!(
            "version = 1\nname = \"t\"\n[sandbox]\nimage = \"BusyBox@{DIGEST}\"\n"
        )),
        "sealroom.toml:4:9: expected an image name of lower-case letters, digits, `.`, `_`, `-`, `/` and `:` before `@`, found `BusyBox`"
    );
}

// --- names of sources and steps ---

#[test]
fn invalid_step_name() {
    assert_eq!(
        step_error("[[step]]\nname = \"Build_All\"\nrun = [\"true\"]\n"),
        "sealroom.toml:9:8: expected a name of lower-case letters, digits, `.`, `_` and `-`, starting with a letter or digit, found `Build_All`\n  hint: try `build_all`"
    );
}

#[test]
fn duplicate_name_across_sources_and_steps() {
    assert_eq!(
        step_error("[[step]]\nname = \"src\"\nrun = [\"true\"]\n"),
        "sealroom.toml:9:8: duplicate name `src`: the source at sealroom.toml:6:8 has it already\n  hint: sources and steps share one namespace; rename one of them"
    );
    assert_eq!(
        step_error(
            "[[step]]\nname = \"a\"\nrun = [\"true\"]\n[[step]]\nname = \"a\"\nrun = [\"true\"]\n"
        ),
        "sealroom.toml:12:8: duplicate name `a`: the step at sealroom.toml:9:8 has it already\n  hint: sources and steps share one namespace; rename one of them"
    );
}

#[test]
fn missing_names_and_paths() {
    assert_eq!(
        error(&format!("{}[[source]]\npath = \"src\"\n", head())),
        "sealroom.toml:5:1: missing key `name` in this `[[source]]`\n  hint: add `name = \"<source>\"`"
    );
    assert_eq!(
        error(&format!("{}[[source]]\nname = \"src\"\n", head())),
        "sealroom.toml:5:1: missing key `path` in source `src`\n  hint: add `path = \".\"` (relative to the spec's directory)"
    );
    assert_eq!(
        step_error("[[step]]\nrun = [\"true\"]\n"),
        "sealroom.toml:8:1: missing key `name` in this `[[step]]`\n  hint: add `name = \"<step>\"`"
    );
}

// --- inputs and the graph ---

#[test]
fn input_naming_nothing_suggests_the_closest_name() {
    assert_eq!(
        step_error("[[step]]\nname = \"a\"\ninputs = [\"srcc\"]\nrun = [\"true\"]\n"),
        "sealroom.toml:10:11: input `srcc` of step `a` names no source, fetch or step; known names: `src`, `a`\n  hint: did you mean `src`?"
    );
    assert_eq!(
        step_error("[[step]]\nname = \"a\"\ninputs = [\"zlib\"]\nrun = [\"true\"]\n"),
        "sealroom.toml:10:11: input `zlib` of step `a` names no source, fetch or step; known names: `src`, `a`\n  hint: add a `[[source]]`, `[[fetch]]` or `[[step]]` named `zlib`, or fix the name"
    );
}

#[test]
fn step_listing_itself() {
    assert_eq!(
        step_error("[[step]]\nname = \"a\"\ninputs = [\"src\", \"a\"]\nrun = [\"true\"]\n"),
        "sealroom.toml:10:18: step `a` lists itself as an input\n  hint: a step cannot read its own output; remove it from `inputs`"
    );
}

#[test]
fn same_input_twice() {
    assert_eq!(
        step_error("[[step]]\nname = \"a\"\ninputs = [\"src\", \"src\"]\nrun = [\"true\"]\n"),
        "sealroom.toml:10:18: step `a` lists input `src` twice\n  hint: remove the second one"
    );
}

#[test]
fn dependency_cycle() {
    assert_eq!(
        step_error(
            "[[step]]\nname = \"a\"\ninputs = [\"b\"]\nrun = [\"true\"]\n\
             [[step]]\nname = \"b\"\ninputs = [\"a\"]\nrun = [\"true\"]\n"
        ),
        "sealroom.toml:10:11: dependency cycle: a -> b -> a\n  hint: each step on the cycle is an input of the next; remove one of these inputs"
    );
    // c needs b, b needs a, a needs c: data flows a -> b -> c -> a. `first` is off the cycle.
    assert_eq!(
        step_error(
            "[[step]]\nname = \"first\"\ninputs = [\"b\"]\nrun = [\"true\"]\n\
             [[step]]\nname = \"a\"\ninputs = [\"src\", \"c\"]\nrun = [\"true\"]\n\
             [[step]]\nname = \"b\"\ninputs = [\"a\"]\nrun = [\"true\"]\n\
             [[step]]\nname = \"c\"\ninputs = [\"b\"]\nrun = [\"true\"]\n"
        ),
        "sealroom.toml:14:18: dependency cycle: a -> b -> c -> a\n  hint: each step on the cycle is an input of the next; remove one of these inputs"
    );
}

// --- source paths and excludes ---

#[test]
fn absolute_source_path() {
    assert_eq!(
        error(&format!(
            "{}[[source]]\nname = \"src\"\npath = \"/etc\"\n",
            head()
        )),
        "sealroom.toml:7:8: expected a path relative to the spec's directory, found the absolute path `/etc`\n  hint: write the path relative to the directory that holds the spec"
    );
}

#[test]
fn escaping_source_path() {
    assert_eq!(
        error(&format!(
            "{}[[source]]\nname = \"src\"\npath = \"src/../..\"\n",
            head()
        )),
        "sealroom.toml:7:8: expected a path inside the spec's directory, found `src/../..`, which uses `..`\n  hint: move the spec to a directory that contains the source"
    );
}

#[test]
fn empty_source_path() {
    assert_eq!(
        error(&format!(
            "{}[[source]]\nname = \"src\"\npath = \"\"\n",
            head()
        )),
        "sealroom.toml:7:8: expected a directory relative to the spec's directory, found an empty path\n  hint: write `path = \".\"` for the spec's own directory"
    );
}

#[test]
fn source_path_missing_or_not_a_directory() {
    let missing = error(&format!(
        "{}[[source]]\nname = \"src\"\npath = \"nowhere\"\n",
        head()
    ));
    assert_eq!(
        missing,
        "sealroom.toml:7:8: expected a directory for source `src`, found nothing at `nowhere`\n  hint: create it, or fix `path`: it is relative to the directory that holds the spec"
    );
    assert_eq!(
        error(&format!(
            "{}[[source]]\nname = \"src\"\npath = \"file.txt\"\n",
            head()
        )),
        "sealroom.toml:7:8: expected a directory for source `src`, found a file at `file.txt`\n  hint: a source is a directory tree; point `path` at the directory that holds the file"
    );
}

#[test]
fn invalid_exclude_patterns() {
    assert_eq!(
        error(&format!(
            "{}[[source]]\nname = \"src\"\npath = \"src\"\nexclude = [\"target\", \"[a\"]\n",
            head()
        )),
        "sealroom.toml:8:22: expected a glob pattern in `exclude`, found `[a`: unclosed character class; missing ']'"
    );
    assert_eq!(
        error(&format!(
            "{}[[source]]\nname = \"src\"\npath = \"src\"\nexclude = [\"\"]\n",
            head()
        )),
        "sealroom.toml:8:12: expected a glob pattern in `exclude`, found ``: the pattern is empty"
    );
    assert_eq!(
        error(&format!(
            "{}[[source]]\nname = \"src\"\npath = \"src\"\nexclude = [\"target/\"]\n",
            head()
        )),
        "sealroom.toml:8:12: expected a glob pattern in `exclude`, found `target/`: a pattern cannot end with `/`; an excluded directory excludes everything below it anyway"
    );
}

// --- run, env ---

#[test]
fn missing_run() {
    assert_eq!(
        step_error("[[step]]\nname = \"a\"\n"),
        "sealroom.toml:8:1: missing key `run` in step `a`\n  hint: add the command to run as an argv, e.g. `run = [\"sh\", \"-c\", \"make\"]`"
    );
}

#[test]
fn empty_run() {
    assert_eq!(
        step_error("[[step]]\nname = \"a\"\nrun = []\n"),
        "sealroom.toml:10:7: expected a non-empty argv for `run` in step `a`, found `[]`\n  hint: e.g. `run = [\"sh\", \"-c\", \"make\"]`"
    );
}

#[test]
fn empty_program() {
    assert_eq!(
        step_error("[[step]]\nname = \"a\"\nrun = [\"\", \"x\"]\n"),
        "sealroom.toml:10:8: expected a program as the first element of `run` in step `a`, found an empty string"
    );
}

#[test]
fn invalid_env_key() {
    assert_eq!(
        step_error("[[step]]\nname = \"a\"\nrun = [\"true\"]\nenv = { \"1A\" = \"x\" }\n"),
        "sealroom.toml:11:9: expected an environment variable name of letters, digits and `_`, not starting with a digit, found `1A`"
    );
}

#[test]
fn source_date_epoch_in_env() {
    assert_eq!(
        step_error(
            "[[step]]\nname = \"a\"\nrun = [\"true\"]\nenv = { SOURCE_DATE_EPOCH = \"1\" }\n"
        ),
        "sealroom.toml:11:9: `SOURCE_DATE_EPOCH` cannot be set in `env`: sealroom sets it for every step\n  hint: set `source_date_epoch = <seconds>` at the top of the spec"
    );
}

// --- artifacts ---

#[test]
fn artifact_outside_out() {
    assert_eq!(
        step_error("[[step]]\nname = \"a\"\nrun = [\"true\"]\nartifacts = [\"/usr/bin/hello\"]\n"),
        "sealroom.toml:11:14: artifact `/usr/bin/hello` is outside /out\n  hint: a step writes only to /out; write the path relative to it, e.g. `bin/hello`"
    );
    assert_eq!(
        step_error("[[step]]\nname = \"a\"\nrun = [\"true\"]\nartifacts = [\"/outside\"]\n"),
        "sealroom.toml:11:14: artifact `/outside` is outside /out\n  hint: a step writes only to /out; write the path relative to it, e.g. `bin/hello`"
    );
}

#[test]
fn artifact_escaping_with_dot_dot() {
    assert_eq!(
        step_error(
            "[[step]]\nname = \"a\"\nrun = [\"true\"]\nartifacts = [\"bin/../../etc/passwd\"]\n"
        ),
        "sealroom.toml:11:14: artifact `bin/../../etc/passwd` is outside /out: it escapes with `..`\n  hint: write the path relative to /out, without `..`"
    );
}

#[test]
fn empty_artifact() {
    assert_eq!(
        step_error("[[step]]\nname = \"a\"\nrun = [\"true\"]\nartifacts = [\"\"]\n"),
        "sealroom.toml:11:14: expected a file under /out as an artifact, found an empty path"
    );
    assert_eq!(
        step_error("[[step]]\nname = \"a\"\nrun = [\"true\"]\nartifacts = [\"/out/\"]\n"),
        "sealroom.toml:11:14: expected a file under /out as an artifact, found `/out/`\n  hint: name the file, e.g. `bin/hello` for /out/bin/hello"
    );
}

#[test]
fn duplicate_artifacts_across_steps() {
    assert_eq!(
        step_error(
            "[[step]]\nname = \"a\"\nrun = [\"true\"]\nartifacts = [\"bin/hello\"]\n\
             [[step]]\nname = \"b\"\nrun = [\"true\"]\nartifacts = [\"/out/bin/hello\"]\n"
        ),
        "sealroom.toml:15:14: artifact `bin/hello` is listed twice: step `a` lists it at sealroom.toml:11:14\n  hint: artifacts share one directory in --out; remove one or write it to another path"
    );
    assert_eq!(
        step_error("[[step]]\nname = \"a\"\nrun = [\"true\"]\nartifacts = [\"x\", \"./x\"]\n"),
        "sealroom.toml:11:19: artifact `x` is listed twice: this step lists it at sealroom.toml:11:14\n  hint: artifacts share one directory in --out; remove one or write it to another path"
    );
}

#[test]
fn artifact_under_another_artifact() {
    assert_eq!(
        step_error(
            "[[step]]\nname = \"a\"\nrun = [\"true\"]\nartifacts = [\"bin/hello\"]\n\
             [[step]]\nname = \"b\"\nrun = [\"true\"]\nartifacts = [\"bin\"]\n"
        ),
        "sealroom.toml:15:14: artifact `bin` collides with artifact `bin/hello` of step `a` at sealroom.toml:11:14: `bin/hello` lies under `bin`\n  hint: artifacts are files side by side in --out; list only the files"
    );
}

// --- limits ---

#[test]
fn a_timeout_without_a_unit_in_a_string() {
    assert_eq!(
        step_error("[[step]]\nname = \"a\"\nrun = [\"true\"]\nlimits = { timeout = \"10\" }\n"),
        "sealroom.toml:11:22: expected a duration for `timeout`: whole seconds, or a string like \"90s\", \"10m\", \"1h30m\", found \"10\""
    );
}

#[test]
fn a_memory_limit_below_the_engine_minimum() {
    assert_eq!(
        error(&format!("{}[sandbox.limits]\nmemory = \"1MiB\"\n", head())),
        "sealroom.toml:6:10: expected at least 6MiB for `memory` (the engine's minimum), found 1MiB"
    );
}

#[test]
fn an_unknown_limit_is_named() {
    let message = step_error("[[step]]\nname = \"a\"\nrun = [\"true\"]\nlimits.walltime = 5\n");
    assert!(message.starts_with("sealroom.toml:11:8: unknown key `walltime`, expected one of `timeout`, `memory`, `pids`, `cpus`, `output`, `scratch`"), "{message}");
}

#[test]
fn a_scratch_size_under_one_mebibyte_is_rejected() {
    assert_eq!(
        error(&format!(
            "{}[sandbox.limits]\nscratch = \"64KiB\"\n",
            head()
        )),
        "sealroom.toml:6:11: expected at least 1MiB for `scratch` (the size of `/tmp` and `/build`), found 64KiB"
    );
}

#[test]
fn zero_pids_are_rejected() {
    assert_eq!(
        step_error("[[step]]\nname = \"a\"\nrun = [\"true\"]\nlimits = { pids = 0 }\n"),
        "sealroom.toml:11:19: expected a positive integer for `pids`, found 0"
    );
}

#[test]
fn step_limits_override_the_sandbox_defaults_key_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sealroom.toml");
    fs::write(
        &path,
        format!(
            "{}[sandbox.limits]\ntimeout = 60\npids = 100\n[[step]]\nname = \"a\"\nrun = [\"true\"]\nlimits = {{ pids = 7 }}\n[[step]]\nname = \"b\"\nrun = [\"true\"]\n",
            head()
        ),
    )
    .unwrap();
    let spec = spec::load(&path).unwrap();
    let a = &spec.steps[0].limits;
    assert_eq!((a.timeout.as_secs(), a.pids), (60, 7));
    let b = &spec.steps[1].limits;
    assert_eq!((b.timeout.as_secs(), b.pids), (60, 100));
    assert_eq!(b.memory, sealroom::spec::Limits::default().memory);
}
