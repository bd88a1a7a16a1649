//! `sealroom convert`: exact TOML for a small Dockerfile, an unpinned FROM refused with how to
//! pin it, a downloading RUN flagged, multi-stage `COPY --from`, and the checked-in example
//! staying what `convert` prints for its Dockerfile.

mod common;

use common::sealroom;

const BASE: &str =
    "sealroom/busybox@sha256:eb717ab50826c5f6db38c7bf0e077eb6931e4941b398fc4e76cfb54ea463e049";

fn convert(dockerfile: &str, files: &[(&str, &str)]) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), dockerfile).unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let output = sealroom()
        .args(["convert", "--name", "app"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[test]
fn a_small_dockerfile_converts_to_this_exact_spec() {
    let dockerfile = format!(
        "FROM {BASE}\nARG GREETING=hi\nENV MODE=prod\nWORKDIR /app\nCOPY hello.sh ./\nRUN sed -i \"s/@G@/$GREETING/\" hello.sh && mkdir -p /app/data\nUSER 1000\nEXPOSE 8080\nLABEL a=b\nCMD [\"/app/hello.sh\"]\n"
    );
    let (ok, stdout, stderr) = convert(&dockerfile, &[("hello.sh", "echo @G@\n")]);
    assert!(ok, "{stderr}");
    let expected = format!(
        r#"# Converted from a Dockerfile by `sealroom convert`; review it before use.
# Each step's /out holds what its stage adds to the base image, at the paths the
# image will have; the final stage's last step becomes the image's layer at `/`.
version = 1
name = "app"

[sandbox]
image = "{BASE}"

[[source]]
name = "context"
path = "."
exclude = [".git", "sealroom-out", "sealroom.toml", "Dockerfile", "*.intoto.jsonl"]

[[step]]
name = "final-1"
inputs = ["context"]
run = ["sh", "-ec", """
mkdir -p /out/app && cp -R /inputs/context/hello.sh /out/app/
mkdir -p /out/app && cd /out/app
sed -i "s/@G@/$GREETING/" hello.sh && mkdir -p /out/app/data
"""]
env = {{ GREETING = "hi", MODE = "prod" }}

[[image]]
name = "app"
base = "{BASE}"
layers = [{{ step = "final-1", path = "/" }}]
cmd = ["/app/hello.sh"]
env = {{ MODE = "prod" }}
workdir = "/app"
user = "1000"
labels = {{ a = "b" }}
expose = ["8080/tcp"]
"#
    );
    assert_eq!(stdout, expected);
}

#[test]
fn an_unpinned_from_is_refused_with_how_to_pin_it() {
    let (ok, stdout, stderr) = convert("FROM debian:12\nRUN true\n", &[]);
    assert!(!ok);
    assert!(stdout.is_empty(), "nothing on stdout: {stdout}");
    assert!(
        stderr.contains("line 1: FROM `debian:12` is not pinned by digest: pin it, e.g. run `docker inspect --format '{{.Id}}' debian:12`"),
        "{stderr}"
    );
    assert!(stderr.contains("NAME@sha256:<id>"), "{stderr}");
}

#[test]
fn a_downloading_run_is_flagged_with_a_fetch_suggestion() {
    let dockerfile = format!(
        "FROM {BASE}\nRUN apt-get update && apt-get install -y curl\nRUN wget -O /tmp/x https://example.org/x\n"
    );
    let (ok, stdout, stderr) = convert(&dockerfile, &[]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("# note: line 2: this RUN downloads (`apt-get update`, `apt-get install`), but steps run with the network off: system packages belong in the base image"), "{stdout}");
    assert!(
        stdout.contains("# note: line 3: this RUN downloads (`wget`), but steps run with the network off: make the download a [[fetch]] with its url and sha256"),
        "{stdout}"
    );
}

#[test]
fn multi_stage_copy_from_takes_the_stage_step_as_input() {
    let dockerfile = format!(
        "FROM {BASE} AS build\nWORKDIR /src\nRUN echo built > out.txt\nFROM {BASE}\nCOPY --from=build /src/out.txt /data/\n"
    );
    let (ok, stdout, stderr) = convert(&dockerfile, &[]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("name = \"build-1\""), "{stdout}");
    assert!(stdout.contains("inputs = [\"build-1\"]"), "{stdout}");
    assert!(
        stdout.contains("mkdir -p /out/data && cp -R /inputs/build-1/src/out.txt /out/data/"),
        "{stdout}"
    );
    assert!(
        stdout.contains("layers = [{ step = \"final-1\", path = \"/\" }]"),
        "{stdout}"
    );
    // What it prints is a spec sealroom accepts.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("sealroom.toml"), &stdout).unwrap();
    sealroom::spec::load(&dir.path().join("sealroom.toml")).unwrap();
}

#[test]
fn the_example_spec_is_what_convert_prints_for_its_dockerfile() {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hello-image");
    let output = sealroom()
        .args(["convert", "--name", "hello-image"])
        .arg(example.join("Dockerfile"))
        .output()
        .unwrap();
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        std::fs::read_to_string(example.join("sealroom.toml")).unwrap()
    );
}

// ---- the hermetic Dockerfile: downloads become lock fetches, offline installs stay steps ----

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// A context directory with `files` (paths may have directories; `@path` as the text copies
/// that file of the repository), the Dockerfile, and `sealroom convert` run in it with `args`:
/// (success, stdout, stderr, the context).
fn convert_in(
    dockerfile: &str,
    files: &[(&str, &str)],
    args: &[&str],
) -> (bool, String, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), dockerfile).unwrap();
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        match text.strip_prefix('@') {
            Some(repository_file) => {
                std::fs::copy(format!("{ROOT}/{repository_file}"), &path).unwrap();
            }
            None => std::fs::write(&path, text).unwrap(),
        }
    }
    let output = sealroom()
        .args(["convert", "--name", "app"])
        .args(args)
        .current_dir(dir.path())
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
        dir,
    )
}

/// The converted spec, saved next to the context's files, is one sealroom loads (lock files
/// and all).
fn assert_loads(stdout: &str, context: &std::path::Path) {
    let path = context.join("sealroom.toml");
    std::fs::write(&path, stdout).unwrap();
    if let Err(error) = sealroom::spec::load(&path) {
        panic!("the converted spec does not load: {error}\n{stdout}");
    }
}

/// The text of the `[[step]]` named `name`, up to the next table.
fn step_text<'a>(spec: &'a str, name: &str) -> &'a str {
    let start = spec
        .find(&format!("[[step]]\nname = \"{name}\"\n"))
        .unwrap_or_else(|| panic!("no step `{name}` in\n{spec}"));
    let rest = &spec[start + 8..];
    let end = rest.find("\n[[").map_or(rest.len(), |end| end + 1);
    &rest[..end]
}

const HASHED_REQUIREMENTS: &str = "iniconfig==2.0.0 \\\n    --hash=sha256:b6a85871a79d2e3b22d2d1b94ac2824226a63c6b741c88f7ae975f18b6778374\n";

fn python_dockerfile() -> String {
    format!(
        "ARG PY={BASE}\n\
         FROM ${{PY}} AS deps\n\
         ARG PIP_INDEX_URL=https://python-index.internal.example/simple/\n\
         WORKDIR /src\n\
         COPY requirements.txt .\n\
         RUN python3 -m pip download --require-hashes \\\n    -r requirements.txt -d /wheels\n\
         \n\
         FROM ${{PY}} AS build\n\
         WORKDIR /app\n\
         COPY --from=deps /wheels /wheels\n\
         COPY requirements.txt .\n\
         RUN pip install --no-index --find-links=/wheels -r requirements.txt --target /app/site\n\
         COPY app.py .\n\
         RUN PYTHONPATH=/app/site python3 app.py > /app/out.txt\n"
    )
}

#[test]
fn pip_download_of_a_hashed_lock_becomes_a_fetch_that_the_offline_install_reads() {
    let (ok, stdout, stderr, context) = convert_in(
        &python_dockerfile(),
        &[
            ("requirements.txt", HASHED_REQUIREMENTS),
            ("app.py", "print('hi')\n"),
        ],
        &[],
    );
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains(
            "# note: line 6: `pip download` became this fetch of `requirements.txt`: every file it pins, checked against the lock's digests\n\
             [[fetch]]\n\
             name = \"deps-pip\"\n\
             lock = \"requirements.txt\"\n\
             index = \"https://python-index.internal.example/simple/\"\n"
        ),
        "{stdout}"
    );
    // The download is the fetch: no step runs it, and nothing is flagged as a download.
    assert!(!stdout.contains("-m pip download"), "{stdout}");
    assert!(!stdout.contains("name = \"deps-1"), "{stdout}");
    assert!(!stdout.contains("this RUN downloads"), "{stdout}");
    // `/wheels` is the fetch's mount in the stage that copied it.
    let install = step_text(&stdout, "build-1");
    assert!(
        install.contains("inputs = [\"deps-pip\", \"context\"]"),
        "{install}"
    );
    assert!(
        install.contains(
            "pip install --no-index --find-links=/inputs/deps-pip -r requirements.txt --target /out/app/site\n"
        ),
        "{install}"
    );
    assert!(
        stdout.contains("# note: line 13: `pip install --target` compiles `.pyc` files that record the temporary directory it installs through, so the output differs from build to build: add `--no-compile`\n"),
        "{stdout}"
    );
    let run = step_text(&stdout, "build-2");
    assert!(
        run.contains("PYTHONPATH=/out/app/site python3 app.py > /out/app/out.txt"),
        "{run}"
    );
    assert!(
        !run.contains("deps-pip"),
        "a step that does not read the wheels does not get them: {run}"
    );
    assert_loads(&stdout, context.path());
}

#[test]
fn a_requirements_file_without_hashes_gets_a_note_on_making_them() {
    let (ok, stdout, stderr, _context) = convert_in(
        &python_dockerfile(),
        &[
            ("requirements.txt", "iniconfig==2.0.0\n"),
            ("app.py", "print('hi')\n"),
        ],
        &[],
    );
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("# note: `requirements.txt` has no hashes, and a fetch verifies every file by them: generate it with `pip-compile --generate-hashes` (pip-tools) or `uv pip compile --generate-hashes` / `uv export --format requirements-txt`, then build\n[[fetch]]"),
        "{stdout}"
    );
}

#[test]
fn a_download_whose_lock_no_copy_brought_is_named_in_a_note() {
    let dockerfile =
        format!("FROM {BASE}\nWORKDIR /src\nRUN pip download -r requirements.txt -d /wheels\n");
    let (ok, stdout, stderr, _context) = convert_in(&dockerfile, &[], &[]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("# note: line 3: `pip download` reads `/src/requirements.txt`, which no COPY of this stage brought from the build context: COPY the lock file before this RUN"),
        "{stdout}"
    );
    assert!(!stdout.contains("\n[[fetch]]\n"), "{stdout}");
    // What it downloads lands in /out, at its image path.
    assert!(
        stdout.contains("pip download -r requirements.txt -d /out/wheels\n"),
        "{stdout}"
    );
}

#[test]
fn a_download_chained_with_other_commands_leaves_the_rest_in_the_step() {
    let dockerfile = format!(
        "FROM {BASE}\nWORKDIR /app\nCOPY requirements.txt .\n\
         RUN mkdir -p /wheels && pip download -r requirements.txt -d /wheels && pip install --no-index --find-links /wheels -r requirements.txt --target /app/site\n"
    );
    let (ok, stdout, stderr, context) = convert_in(
        &dockerfile,
        &[("requirements.txt", HASHED_REQUIREMENTS)],
        &[],
    );
    assert!(ok, "{stderr}");
    let step = step_text(&stdout, "final-1");
    assert!(
        step.contains("inputs = [\"context\", \"final-pip\"]"),
        "{step}"
    );
    assert!(
        step.contains(
            "mkdir -p /inputs/final-pip && true && pip install --no-index --find-links /inputs/final-pip -r requirements.txt --target /out/app/site\n"
        ),
        "{step}"
    );
    assert!(stdout.contains("name = \"final-pip\""), "{stdout}");
    assert_loads(&stdout, context.path());
}

#[test]
fn npm_ci_becomes_a_fetch_and_the_same_install_offline_from_it() {
    let dockerfile = format!(
        "FROM {BASE} AS deps\nWORKDIR /app\nCOPY package.json package-lock.json ./\nRUN npm ci --omit=dev\n\
         FROM {BASE}\nWORKDIR /app\nCOPY --from=deps /app/node_modules ./node_modules\nCOPY index.js ./\nCMD [\"node\", \"index.js\"]\n"
    );
    let (ok, stdout, stderr, context) = convert_in(
        &dockerfile,
        &[
            ("package.json", "@examples/node-app/package.json"),
            ("package-lock.json", "@examples/node-app/package-lock.json"),
            ("index.js", "@examples/node-app/index.js"),
        ],
        &[],
    );
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("[[fetch]]\nname = \"deps-npm\"\nlock = \"package-lock.json\"\n"),
        "{stdout}"
    );
    let install = step_text(&stdout, "deps-1");
    assert!(
        install.contains("inputs = [\"context\", \"deps-npm\"]"),
        "{install}"
    );
    assert!(install.contains("\nnpm ci --omit=dev\n"), "{install}");
    assert!(
        install.contains("env = { npm_config_audit = \"false\", npm_config_cache = \"/inputs/deps-npm\", npm_config_fund = \"false\", npm_config_logs_dir = \"/tmp/npm-logs\", npm_config_offline = \"true\", npm_config_update_notifier = \"false\" }"),
        "{install}"
    );
    assert!(!stdout.contains("this RUN downloads"), "{stdout}");
    let copy = step_text(&stdout, "final-1");
    assert!(
        copy.contains("inputs = [\"deps-1\", \"context\"]"),
        "{copy}"
    );
    assert_loads(&stdout, context.path());
}

#[test]
fn cargo_fetch_becomes_a_fetch_that_the_later_build_reads_offline() {
    let dockerfile = format!(
        "FROM {BASE}\nWORKDIR /src\nCOPY Cargo.toml Cargo.lock ./\nRUN cargo fetch --locked\nCOPY src src\n\
         RUN cargo build --release --locked && cp target/release/app /src/app\n"
    );
    let (ok, stdout, stderr, context) = convert_in(
        &dockerfile,
        &[
            (
                "Cargo.toml",
                "[package]\nname = \"app\"\nversion = \"0.1.0\"\n",
            ),
            ("Cargo.lock", "@examples/rust-app/Cargo.lock"),
            ("src/main.rs", "fn main() {}\n"),
        ],
        &[],
    );
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("[[fetch]]\nname = \"final-cargo\"\nlock = \"Cargo.lock\"\n"),
        "{stdout}"
    );
    assert!(!stdout.contains("\ncargo fetch"), "{stdout}");
    assert!(!stdout.contains("this RUN downloads"), "{stdout}");
    // The fetch is the first RUN: the COPYs before it go with the build.
    let build = step_text(&stdout, "final-1");
    assert!(
        build.contains("inputs = [\"context\", \"final-cargo\"]"),
        "{build}"
    );
    assert!(
        build.contains("mkdir -p /tmp/cargo-home && cp /inputs/final-cargo/config.toml /tmp/cargo-home/config.toml\ncargo build --release --locked && cp target/release/app /out/src/app\n"),
        "{build}"
    );
    assert!(
        build.contains("env = { CARGO_HOME = \"/tmp/cargo-home\", CARGO_NET_OFFLINE = \"true\" }"),
        "{build}"
    );
    assert_loads(&stdout, context.path());
}

#[test]
fn go_mod_download_becomes_a_fetch_from_the_stages_goproxy() {
    let dockerfile = format!(
        "FROM {BASE} AS build\nENV GOPROXY=https://go-proxy.internal.example,direct\nWORKDIR /src\n\
         COPY go.mod go.sum ./\nRUN go mod download\nCOPY . .\nRUN CGO_ENABLED=0 go build -o /src/bin/app .\n"
    );
    let (ok, stdout, stderr, context) = convert_in(
        &dockerfile,
        &[
            ("go.mod", "@examples/go-app/go.mod"),
            ("go.sum", "@examples/go-app/go.sum"),
            ("main.go", "@examples/go-app/main.go"),
        ],
        &[],
    );
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("[[fetch]]\nname = \"build-go\"\nlock = \"go.sum\"\nindex = \"https://go-proxy.internal.example\"\n"),
        "{stdout}"
    );
    let build = step_text(&stdout, "build-1");
    assert!(build.contains("\"build-go\""), "{build}");
    assert!(
        build.contains("GOPROXY = \"file:///inputs/build-go\"")
            && build.contains("GOSUMDB = \"off\"")
            && build.contains("GOTOOLCHAIN = \"local\""),
        "{build}"
    );
    assert!(
        build.contains("CGO_ENABLED=0 go build -o /out/src/bin/app ."),
        "{build}"
    );
    assert!(!stdout.contains("this RUN downloads"), "{stdout}");
    assert_loads(&stdout, context.path());
}

#[test]
fn offline_installs_are_kept_and_never_flagged_as_downloads() {
    let dockerfile = format!(
        "FROM {BASE}\nWORKDIR /app\nCOPY . .\n\
         RUN pip install --no-index --find-links=/app/wheels -r requirements.txt --target /app/site\n\
         RUN npm ci --offline --cache /app/npm-cache\n\
         RUN cargo build --offline --release\n\
         RUN cargo build --frozen\n\
         RUN GOFLAGS=-mod=vendor go build ./...\n\
         RUN GOPROXY=off go test ./...\n\
         RUN sh -c 'cd /app && PIP_NO_INDEX=1 pip install --target /app/site2 .'\n"
    );
    let (ok, stdout, stderr, _context) = convert_in(
        &dockerfile,
        &[("requirements.txt", HASHED_REQUIREMENTS)],
        &[],
    );
    assert!(ok, "{stderr}");
    assert!(!stdout.contains("this RUN downloads"), "{stdout}");
    assert!(!stdout.contains("[[fetch]]"), "{stdout}");
    assert!(
        stdout.contains("npm ci --offline --cache /out/app/npm-cache"),
        "{stdout}"
    );
}

#[test]
fn from_an_earlier_stage_continues_its_files_and_settings() {
    let dockerfile = format!(
        "FROM {BASE} AS base\nENV MODE=prod\nWORKDIR /app\nRUN echo one > one.txt\n\
         FROM base AS test\nRUN cat /app/one.txt > /app/two.txt\n\
         FROM {BASE}\nCOPY --from=test /app/two.txt /srv/two.txt\n"
    );
    let (ok, stdout, stderr, context) = convert_in(&dockerfile, &[], &[]);
    assert!(ok, "{stderr}");
    let test = step_text(&stdout, "test-1");
    assert!(test.contains("inputs = [\"base-1\"]"), "{test}");
    assert!(
        test.contains("cp -R /inputs/base-1/. /out/\nmkdir -p /out/app && cd /out/app\ncat /out/app/one.txt > /out/app/two.txt\n"),
        "{test}"
    );
    assert!(test.contains("env = { MODE = \"prod\" }"), "{test}");
    assert!(
        step_text(&stdout, "final-1").contains("/inputs/test-1/app/two.txt"),
        "{stdout}"
    );
    assert_loads(&stdout, context.path());
}

#[test]
fn build_args_override_arg_defaults_and_a_malformed_one_is_refused() {
    let other =
        "sealroom/other@sha256:1111111111111111111111111111111111111111111111111111111111111111";
    let dockerfile =
        format!("ARG BASE={BASE}\nFROM ${{BASE}}\nARG GREETING=hi\nRUN echo $GREETING > /x.txt\n");
    let (ok, stdout, stderr, _context) = convert_in(
        &dockerfile,
        &[],
        &[
            "--build-arg",
            &format!("BASE={other}"),
            "--build-arg",
            "GREETING=hello",
        ],
    );
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains(&format!("[sandbox]\nimage = \"{other}\"")),
        "{stdout}"
    );
    assert!(
        stdout.contains("env = { GREETING = \"hello\" }"),
        "{stdout}"
    );
    assert!(stdout.contains("echo $GREETING > /out/x.txt"), "{stdout}");

    let (ok, stdout, stderr, _context) =
        convert_in(&dockerfile, &[], &["--build-arg", "no-equals"]);
    assert!(!ok);
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains("--build-arg `no-equals`: expected KEY=VALUE with KEY a variable name"),
        "{stderr}"
    );
}

#[test]
fn a_bind_mount_from_a_stage_is_an_input_seen_at_its_target() {
    let dockerfile = format!(
        "FROM {BASE} AS deps\nWORKDIR /src\nCOPY requirements.txt .\nRUN pip download -r requirements.txt -d /wheels\n\
         FROM {BASE}\nWORKDIR /app\nCOPY requirements.txt .\n\
         RUN --mount=type=bind,from=deps,source=/wheels,target=/wheels pip install --no-index --find-links /wheels -r requirements.txt --target /app/site\n"
    );
    let (ok, stdout, stderr, context) = convert_in(
        &dockerfile,
        &[("requirements.txt", HASHED_REQUIREMENTS)],
        &[],
    );
    assert!(ok, "{stderr}");
    let step = step_text(&stdout, "final-1");
    assert!(
        step.contains("inputs = [\"context\", \"deps-pip\"]"),
        "{step}"
    );
    assert!(step.contains("--find-links /inputs/deps-pip -r"), "{step}");
    assert_loads(&stdout, context.path());
}

#[test]
fn every_instruction_not_kept_exactly_has_a_note_with_its_line() {
    let dockerfile = format!(
        "FROM --platform=linux/amd64 {BASE}\n\
         COPY --chown=1000:1000 a.txt /app/\n\
         RUN --network=host --mount=type=secret,id=token cat /app/a.txt > /app/b.txt\n\
         RUN --mount=type=cache,target=/root/.cache make\n\
         ADD https://files.example/x.tgz /app/\n\
         HEALTHCHECK CMD true\n\
         USER 1000\n\
         RUN go build -o /usr/local/bin/app .\n\
         RUN pip install --no-index -r /app/a.txt\n"
    );
    let (ok, stdout, stderr, _context) = convert_in(&dockerfile, &[("a.txt", "a\n")], &[]);
    assert!(ok, "{stderr}");
    for expected in [
        "# note: line 1: `FROM --platform=linux/amd64` is not carried over",
        "# note: line 2: `--chown=1000:1000` is not carried over",
        "# note: line 3: `--network=host` is dropped: steps run with the network off",
        "# note: line 3: `--mount=type=secret,id=token` is not available to steps",
        "# note: line 4: `--mount=type=cache,target=/root/.cache` is dropped",
        "# note: line 5: `ADD https://files.example/x.tgz` downloads",
        "# note: line 6: `HEALTHCHECK` is not converted",
        "# note: line 8: USER applies to the image only",
        "# note: line 8: this RUN downloads (`go build`), but steps run with the network off: `go mod download` in an earlier RUN",
        "# note: line 8: this RUN writes `/usr/local/bin/app`, in the base image's own directories",
        "# note: line 9: `pip install` writes into the interpreter's own site-packages",
    ] {
        assert!(
            stdout.contains(expected),
            "missing `{expected}` in\n{stdout}"
        );
    }
}

#[test]
fn a_copy_from_outside_the_context_is_refused() {
    let dockerfile = format!("FROM {BASE}\nCOPY ../secret.txt /app/\n");
    let (ok, stdout, stderr, _context) = convert_in(&dockerfile, &[], &[]);
    assert!(!ok);
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains("line 2: COPY source `../secret.txt` is outside the build context"),
        "{stderr}"
    );
}
