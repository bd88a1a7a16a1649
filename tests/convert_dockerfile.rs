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
