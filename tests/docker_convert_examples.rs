//! The hermetic multi-stage Dockerfiles of `examples/python-hermetic` and `examples/node-hermetic`
//! as a user takes them to sealroom: `sealroom convert --build-arg <IMAGE>=<ref>` prints exactly
//! the checked-in `sealroom.toml` (with the language image pinned to `<ref>`), and that spec
//! builds, with the packages its lock fetch downloads through a mirror from the loopback package
//! server (`examples/lib/serve-packages.py`) and every step offline, an image that
//! `docker run --network none` runs: the Python app's tests (pytest, step `build-2`) pass in the
//! build, and both apps print their greeting.
//!
//! The language image is `sealroom/debian-langs` (`sandbox/debian-langs/build.sh`), re-made once
//! per test process as an image of sealroom's own and pushed to Debian's `docker-registry` on
//! 127.0.0.1 (kept for the process), so both the `[sandbox] image` and the `[[image]] base` come
//! from a registry by manifest digest, as the Dockerfiles' `registry.internal.example` images
//! would. Each build starts with that image out of the engine. Nothing here skips: a missing
//! image, engine, registry or tool fails the test.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::registry::Registry;
use common::sealroom;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const PYTHON_PLACEHOLDER: &str = "registry.internal.example/sealroom/python@sha256:0000000000000000000000000000000000000000000000000000000000000000";
const NODE_PLACEHOLDER: &str = "registry.internal.example/sealroom/node@sha256:0000000000000000000000000000000000000000000000000000000000000000";

/// One build at a time: the machine has two cores, and each build takes the language image out
/// of the engine before it starts.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `sealroom/debian-langs` as an image in a registry.
struct LanguageImage {
    /// Kept for the process: every build pulls from it into its own store.
    registry: Registry,
    /// `127.0.0.1:<port>/sealroom/langs@sha256:<manifest digest>`.
    reference: String,
    /// Its image id (the config's digest), which the engine knows it by once a step loads it.
    image_id: String,
    /// The id of `sealroom/debian-langs` in the engine, never removed here.
    debian_langs_id: String,
}

/// The language image, made once per test process: a spec whose one `[[image]]` is
/// `sealroom/debian-langs` with no layer of its own, built and `sealroom push`ed.
fn language_image() -> &'static LanguageImage {
    static IMAGE: OnceLock<LanguageImage> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let started = Instant::now();
        let debian_langs = common::image::debian_langs();
        let recipe = started.elapsed();
        let registry = Registry::start_for_the_process()
            .expect("docker-registry is installed (scripts/ensure-packages.sh installs it)");
        let dir = tempfile::tempdir().unwrap();
        let spec = dir.path().join("sealroom.toml");
        std::fs::write(
            &spec,
            format!(
                "version = 1\nname = \"langs\"\n\n[sandbox]\nimage = \"{debian_langs}\"\n\n\
                 [[image]]\nname = \"langs\"\nbase = \"{debian_langs}\"\n"
            ),
        )
        .unwrap();
        let report = run_json(
            sealroom()
                .args(["--format", "json", "build"])
                .arg(&spec)
                .arg("--store")
                .arg(dir.path().join("store"))
                .arg("--out")
                .arg(dir.path().join("out")),
        );
        let built = started.elapsed() - recipe;
        let image_id = report["images"][0]["config_digest"]
            .as_str()
            .expect("the build reports the image's config digest")
            .to_string();
        let pushed = run_json(
            sealroom()
                .args(["--format", "json", "push"])
                .arg(dir.path().join("out/langs"))
                .arg(format!("{}/sealroom/langs", registry.host())),
        );
        let manifest = pushed["manifest_digest"]
            .as_str()
            .expect("push reports the manifest digest");
        assert_eq!(
            report["images"][0]["manifest_digest"].as_str(),
            Some(manifest)
        );
        eprintln!(
            "the language image: sandbox/debian-langs/build.sh {:.1} s, the image built in \
             {:.1} s, pushed in {:.1} s",
            recipe.as_secs_f64(),
            built.as_secs_f64(),
            (started.elapsed() - recipe - built).as_secs_f64()
        );
        let debian_langs_id = format!(
            "sha256:{}",
            debian_langs.rsplit_once("@sha256:").expect("pinned").1
        );
        LanguageImage {
            reference: format!("{}/sealroom/langs@{manifest}", registry.host()),
            registry,
            image_id,
            debian_langs_id,
        }
    })
}

impl LanguageImage {
    /// Takes the image out of the engine, so that a build has to bring it from its store. An
    /// image with the id of `sealroom/debian-langs` itself is the same image: it stays.
    fn remove_from_engine(&self) {
        if self.image_id == self.debian_langs_id {
            return;
        }
        remove_image(&self.image_id);
        assert!(
            !engine_has(&self.image_id),
            "the engine still has the language image {}",
            self.image_id
        );
    }
}

/// Runs `command`; its stdout as JSON, after checking it succeeded.
fn run_json(command: &mut assert_cmd::Command) -> serde_json::Value {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn engine_has(image: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", image])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("the docker CLI runs")
        .success()
}

fn remove_image(image: &str) {
    let _ = Command::new("docker")
        .args(["image", "rm", "-f", image])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// `examples/lib/serve-packages.py` on a free 127.0.0.1 port, killed when dropped.
struct PackageServer {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl PackageServer {
    fn start(dir: &Path) -> Self {
        let port_file = dir.join("packages.port");
        let log = dir.join("packages.log");
        let mut child = Command::new("python3")
            .arg(format!("{ROOT}/examples/lib/serve-packages.py"))
            .arg("--port-file")
            .arg(&port_file)
            .arg("--log")
            .arg(&log)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs examples/lib/serve-packages.py");
        for _ in 0..200 {
            if let Ok(port) = std::fs::read_to_string(&port_file)
                && let Ok(port) = port.trim().parse()
            {
                return Self { child, port, log };
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("serve-packages.py exited ({status})");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        panic!("serve-packages.py wrote no port in 10 s");
    }

    /// `ORIGIN=http://127.0.0.1:<port>/<prefix>/`, for `--mirror`.
    fn mirror(&self, origin: &str, prefix: &str) -> String {
        format!("{origin}=http://127.0.0.1:{}/{prefix}/", self.port)
    }

    /// The request lines (`GET /pypi/files/x.whl`) served so far.
    fn requests(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for PackageServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Removes what a test left in the engine, also when it fails: its image and the container of
/// its `docker run`, and the language image a step loaded.
struct EngineCleanup<'a> {
    tag: String,
    container: String,
    language: &'a LanguageImage,
}

impl Drop for EngineCleanup<'_> {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", &self.container])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        remove_image(&self.tag);
        if self.language.image_id != self.language.debian_langs_id {
            remove_image(&self.language.image_id);
        }
    }
}

/// One example: what the test expects of it.
struct Example {
    name: &'static str,
    /// The Dockerfile's ARG that names the language image, and its placeholder default.
    image_arg: &'static str,
    placeholder: &'static str,
    /// `(origin, prefix)`: the package origin the lock (or index) names, served under `/prefix/`.
    mirror: (&'static str, &'static str),
    /// Requests the lock fetch must make of the package server.
    fetched: &'static [&'static str],
    /// `(step, text)`: a step that must have run (not a cache hit) and a line its log must hold.
    ran: (&'static str, &'static str),
    /// What `docker run --network none <image>` prints.
    output: &'static str,
    /// Two steps that run the same command on the same inputs: their outputs must be the same
    /// tree (the converted spec is deterministic, not only working).
    same_output: Option<(&'static str, &'static str)>,
}

/// Converts, builds (`--load`) and runs `example`, as its README says.
fn converts_builds_and_runs(example: &Example) {
    let language = language_image();
    let _turn = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app");
    common::copy_tree(&Path::new(ROOT).join("examples").join(example.name), &app);

    // `sealroom convert` prints the checked-in spec, pinned to the image the build-arg names.
    let started = Instant::now();
    let converted = sealroom()
        .arg("convert")
        .arg(app.join("Dockerfile"))
        .args(["--name", example.name])
        .arg("--build-arg")
        .arg(format!("{}={}", example.image_arg, language.reference))
        .output()
        .unwrap();
    assert!(
        converted.status.success(),
        "sealroom convert failed ({}): {}",
        converted.status,
        String::from_utf8_lossy(&converted.stderr)
    );
    let checked_in = std::fs::read_to_string(app.join("sealroom.toml")).unwrap();
    assert!(
        checked_in.contains(example.placeholder),
        "examples/{}/sealroom.toml names {}",
        example.name,
        example.placeholder
    );
    let expected = checked_in.replace(example.placeholder, &language.reference);
    let spec_text = String::from_utf8(converted.stdout).unwrap();
    assert_eq!(
        spec_text, expected,
        "`sealroom convert` does not print examples/{}/sealroom.toml",
        example.name
    );
    std::fs::write(app.join("sealroom.toml"), &spec_text).unwrap();

    // The build, from a store and an engine without the language image.
    language.remove_from_engine();
    let server = PackageServer::start(dir.path());
    let unique = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let cleanup = EngineCleanup {
        tag: format!("sealroom-test/{}:{unique}", example.name),
        container: format!("sealroom-test-{}-{unique}", example.name),
        language,
    };
    let pulls_before = language.registry.requests().len();
    let built = sealroom()
        .args(["--format", "json", "build"])
        .arg(app.join("sealroom.toml"))
        .arg("--store")
        .arg(dir.path().join("store"))
        .arg("--out")
        .arg(dir.path().join("out"))
        .args(["--load", "--tag", &cleanup.tag])
        .arg("--mirror")
        .arg(server.mirror(example.mirror.0, example.mirror.1))
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "sealroom build of examples/{} failed ({}):\n{}",
        example.name,
        built.status,
        String::from_utf8_lossy(&built.stderr)
    );
    let build_seconds = started.elapsed().as_secs_f64();
    let report: serde_json::Value = serde_json::from_slice(&built.stdout).unwrap();

    // The language image came from the registry, by its manifest digest.
    let manifest = language.reference.rsplit_once('@').unwrap().1;
    let pulled = language.registry.requests()[pulls_before..].to_vec();
    assert!(
        pulled.iter().any(
            |request| request.contains(&format!("GET /v2/sealroom/langs/manifests/{manifest}"))
        ),
        "the build did not pull the language image: {pulled:?}"
    );
    // The lock fetch downloaded each package through the mirror.
    let requests = server.requests();
    for path in example.fetched {
        assert!(
            requests
                .iter()
                .any(|request| request == &format!("GET {path}")),
            "no request for {path}: {requests:?}"
        );
    }
    // The step ran (a failing command fails the build) and its log says what it did.
    let (step_name, log_line) = example.ran;
    let step = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|step| step["name"] == step_name)
        .unwrap_or_else(|| panic!("no step {step_name} in the report: {report}"));
    assert_eq!(step["cached"], false, "{step}");
    let log_digest = step["log"]
        .as_str()
        .expect("the step's log is in the store");
    let log_path = dir
        .path()
        .join("store/v1/blobs/sha256")
        .join(log_digest.strip_prefix("sha256:").expect("a sha256 digest"));
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log.lines().any(|line| line.contains(log_line)),
        "step {step_name}'s log has no `{log_line}`:\n{log}"
    );

    if let Some((first, second)) = example.same_output {
        let output_of = |name: &str| {
            report["steps"]
                .as_array()
                .unwrap()
                .iter()
                .find(|step| step["name"] == name)
                .map(|step| step["output"].clone())
                .unwrap_or_else(|| panic!("no step {name} in the report: {report}"))
        };
        assert_eq!(
            output_of(first),
            output_of(second),
            "steps {first} and {second} install the same lock the same way: their outputs must be one tree"
        );
    }

    // The image runs, with no network, as the Dockerfile's would.
    let image_id = report["images"][0]["config_digest"].as_str().unwrap();
    let started = Instant::now();
    let run = Command::new("docker")
        .args(["run", "--rm", "--network", "none", "--name"])
        .arg(&cleanup.container)
        .arg(&cleanup.tag)
        .output()
        .expect("the docker CLI runs");
    assert!(
        run.status.success(),
        "docker run {} failed ({}): {}",
        cleanup.tag,
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&run.stdout), example.output);
    let inspected = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}} {{.Config.User}}"])
        .arg(&cleanup.tag)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&inspected.stdout).trim(),
        format!("{image_id} nobody")
    );
    eprintln!(
        "examples/{}: converted and built in {build_seconds:.1} s, ran in {:.1} s",
        example.name,
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn docker_the_python_hermetic_dockerfile_converts_to_its_spec_which_tests_and_builds_the_image_offline()
 {
    converts_builds_and_runs(&Example {
        name: "python-hermetic",
        image_arg: "PYTHON_IMAGE",
        placeholder: PYTHON_PLACEHOLDER,
        mirror: ("https://python-index.internal.example/", "pypi"),
        fetched: &[
            "/pypi/files/iniconfig-2.0.0-py3-none-any.whl",
            "/pypi/files/packaging-25.0-py3-none-any.whl",
            "/pypi/files/pluggy-1.6.0-py3-none-any.whl",
            "/pypi/files/pytest-8.3.5-py3-none-any.whl",
        ],
        ran: ("build-2", "5 passed"),
        output: "Hello, world!\n",
        same_output: Some(("build-1", "runtime-1")),
    });
}

#[test]
fn docker_the_node_hermetic_dockerfile_converts_to_its_spec_which_installs_with_npm_ci_offline() {
    converts_builds_and_runs(&Example {
        name: "node-hermetic",
        image_arg: "NODE_IMAGE",
        placeholder: NODE_PLACEHOLDER,
        mirror: ("https://npm-registry.internal.example/", "npm"),
        fetched: &[
            "/npm/@sealroom-fixtures/greeting/-/greeting-1.0.0.tgz",
            "/npm/sealroom-fixtures-tiny/-/sealroom-fixtures-tiny-1.0.0.tgz",
        ],
        ran: ("deps-1", "added 2 packages"),
        output: "tiny:hello Ada\n",
        same_output: None,
    });
}
