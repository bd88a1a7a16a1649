//! Property tests of `spec::load`, the bounded cousin of the `spec_parser` fuzz target
//! (`fuzz/fuzz_targets/spec_parser.rs`): arbitrary and nearly valid text never panics it and
//! every error it returns points into the file; generated valid specs (random names, random
//! step graphs, steps declared in any order) load with every step after its inputs.
//!
//! Bounded (64 cases a property, small inputs) so the file runs in a few seconds on 2 cores.

use std::collections::{BTreeSet, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use proptest::sample::Index;
use sealroom::spec::{self, InputKind, Spec, SpecError};

const IMAGE: &str =
    "sealroom/busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 64,
        // A failure is shrunk, but not for long: the minimal case is printed either way.
        max_shrink_iters: 512,
        // The minimal failing case is printed; nothing is written next to the sources.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A directory with a `src/` directory in it, where each case writes its spec.
struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    fn new() -> Project {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("src")).unwrap();
        fs::write(
            dir.path().join("src/main.c"),
            "int main(void) { return 0; }\n",
        )
        .unwrap();
        Project { dir }
    }

    fn spec_path(&self) -> PathBuf {
        self.dir.path().join("sealroom.toml")
    }

    /// Writes `bytes` as the spec and loads it; an error must render and point into the file.
    fn load(&self, bytes: &[u8]) -> Result<Spec, SpecError> {
        let path = self.spec_path();
        fs::write(&path, bytes).unwrap();
        let result = spec::load(&path);
        if let Err(error) = &result {
            check_error(error, &path, bytes);
        }
        result
    }
}

fn check_error(error: &SpecError, path: &Path, bytes: &[u8]) {
    let text = error.to_string();
    assert!(!text.is_empty());
    if let SpecError::Invalid { location, .. } = error {
        assert_eq!(location.path, path, "{text}");
        let lines = bytes.split(|b| *b == b'\n').count();
        assert!(
            location.line >= 1 && location.line <= lines,
            "line {} of a {lines}-line file: {text}",
            location.line
        );
        assert!(location.column >= 1, "{text}");
    }
}

/// A spec that uses every kind of table, for the mutations to start from.
fn valid_spec() -> String {
    let digest = IMAGE.rsplit_once('@').unwrap().1;
    format!(
        r#"version = 1
name = "demo"
source_date_epoch = 1700000000

[sandbox]
image = "{IMAGE}"

[sandbox.limits]
memory = "512MiB"
pids = 256
timeout = "10m"

[[source]]
name = "src"
path = "./src"
exclude = ["target", "*.o", "/build/**"]

[[fetch]]
name = "zlib"
url = "https://example.invalid/zlib-1.3.1.tar.gz"
sha256 = "{digest}"
unpack = true
strip_components = 1

[[fetch]]
name = "vendor"
run = ["sh", "-c", "true"]
output = "{digest}"
network = "bridge"

[[step]]
name = "package"
inputs = ["compile"]
run = ["sh", "-c", "tar -cf /out/a.tar /inputs/compile"]
artifacts = ["a.tar"]

[[step]]
name = "compile"
inputs = ["src", "zlib", "vendor"]
run = ["make", "-C", "/inputs/src", "OUT=/out"]
env = {{ CFLAGS = "-O2" }}
artifacts = ["/out/bin/hello"]
limits = {{ memory = "64MiB", cpus = 1.5, output = "1GiB" }}
"#
    )
}

/// Pieces of TOML and of spec values that the mutations splice in.
const FRAGMENTS: &[&str] = &[
    "[[step]]",
    "[step]",
    "[[source]]",
    "[[fetch]]",
    "[sandbox]",
    "[sandbox.limits]",
    "name = \"a\"",
    "name = \"\"",
    "name = \"Bad Name\"",
    "inputs = [\"a\", \"a\"]",
    "inputs = [\"nope\"]",
    "run = []",
    "run = [\"\"]",
    "run = [\"a\\u0000b\"]",
    "path = \"..\"",
    "path = \"/etc\"",
    "path = \"src/main.c\"",
    "exclude = [\"[\", \"\"]",
    "artifacts = [\"../x\", \"/out\", \"a\", \"a/b\"]",
    "env = { SOURCE_DATE_EPOCH = \"1\", \"1x\" = \"\" }",
    "limits = { memory = \"1MiB\", timeout = \"10\", pids = -1, cpus = 0 }",
    "limits = { output = \"99999999999999999999TiB\", timeout = \"999999999999h\" }",
    "version = 99999999999999999999",
    "source_date_epoch = -1",
    "sha256 = \"sha256:00\"",
    "strip_components = -3",
    "network = \"none\"",
    "url = \"\"",
    "image = \"busybox\"",
    "\u{feff}",
    "\"\"\"",
    "'''",
    "= =",
    "é",
    "\r\n",
    "\t",
    "#",
    "\\",
    "{",
    "}",
    "]",
];

#[derive(Debug, Clone)]
enum Mutation {
    Truncate(Index),
    Delete(Index, usize),
    Insert(Index, String),
    InsertFragment(Index, Index),
    ReplaceLine(Index, Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<Index>().prop_map(Mutation::Truncate),
        (any::<Index>(), 1..40usize).prop_map(|(at, n)| Mutation::Delete(at, n)),
        (any::<Index>(), ".{0,12}").prop_map(|(at, text)| Mutation::Insert(at, text)),
        (any::<Index>(), any::<Index>()).prop_map(|(at, f)| Mutation::InsertFragment(at, f)),
        (any::<Index>(), any::<Index>()).prop_map(|(line, f)| Mutation::ReplaceLine(line, f)),
    ]
}

/// The byte offset of the `index`th character boundary of `text` (the end included).
fn boundary(text: &str, index: &Index) -> usize {
    let boundaries: Vec<usize> = text
        .char_indices()
        .map(|(offset, _)| offset)
        .chain([text.len()])
        .collect();
    boundaries[index.index(boundaries.len())]
}

fn apply(text: &mut String, mutation: &Mutation) {
    match mutation {
        Mutation::Truncate(at) => text.truncate(boundary(text, at)),
        Mutation::Delete(at, n) => {
            let start = boundary(text, at);
            let end = text[start..]
                .char_indices()
                .nth(*n)
                .map_or(text.len(), |(offset, _)| start + offset);
            text.replace_range(start..end, "");
        }
        Mutation::Insert(at, inserted) => text.insert_str(boundary(text, at), inserted),
        Mutation::InsertFragment(at, fragment) => {
            let fragment = format!("\n{}\n", FRAGMENTS[fragment.index(FRAGMENTS.len())]);
            text.insert_str(boundary(text, at), &fragment);
        }
        Mutation::ReplaceLine(line, fragment) => {
            let mut lines: Vec<&str> = text.lines().collect();
            if !lines.is_empty() {
                let at = line.index(lines.len());
                lines[at] = FRAGMENTS[fragment.index(FRAGMENTS.len())];
            }
            *text = lines.join("\n");
        }
    }
}

/// A graph of steps: unique names and, for each step, inputs among the steps before it in
/// `topological` (so the graph is acyclic), plus maybe the source.
#[derive(Debug, Clone)]
struct Graph {
    /// Step names in an order where every step comes after its inputs.
    topological: Vec<String>,
    /// For each step of `topological`: its inputs, in the order written.
    inputs: Vec<Vec<String>>,
    /// The order the steps are written in the spec (indices into `topological`).
    written: Vec<usize>,
}

fn graph() -> impl Strategy<Value = Graph> {
    proptest::collection::btree_set("[a-z0-9][a-z0-9._-]{0,12}", 1..10)
        .prop_filter("`src` is the source's name", |names| !names.contains("src"))
        .prop_flat_map(|names: BTreeSet<String>| {
            let n = names.len();
            let topological = Just(names.into_iter().collect::<Vec<_>>()).prop_shuffle();
            // For each step, which earlier steps it takes and whether it takes the source.
            let edges = proptest::collection::vec(
                (proptest::collection::vec(any::<bool>(), n), any::<bool>()),
                n,
            );
            let written = Just((0..n).collect::<Vec<_>>()).prop_shuffle();
            (topological, edges, written)
        })
        .prop_map(|(topological, edges, written)| {
            let inputs = edges
                .iter()
                .enumerate()
                .map(|(i, (takes, takes_source))| {
                    let mut inputs: Vec<String> = (0..i)
                        .filter(|&j| takes[j])
                        .map(|j| topological[j].clone())
                        .collect();
                    if *takes_source {
                        inputs.push("src".to_string());
                    }
                    inputs
                })
                .collect();
            Graph {
                topological,
                inputs,
                written,
            }
        })
}

fn spec_text(graph: &Graph) -> String {
    let mut text = format!(
        "version = 1\nname = \"generated\"\n\n[sandbox]\nimage = \"{IMAGE}\"\n\n\
         [[source]]\nname = \"src\"\npath = \"src\"\n"
    );
    for &index in &graph.written {
        let inputs: Vec<String> = graph.inputs[index]
            .iter()
            .map(|input| format!("{input:?}"))
            .collect();
        text.push_str(&format!(
            "\n[[step]]\nname = {:?}\ninputs = [{}]\nrun = [\"sh\", \"-c\", \"echo {} > /out/x\"]\n",
            graph.topological[index],
            inputs.join(", "),
            index,
        ));
    }
    text
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Project::new().load(&bytes);
    }

    #[test]
    fn arbitrary_text_never_panics(text in "(?s).{0,256}") {
        let _ = Project::new().load(text.as_bytes());
    }

    #[test]
    fn nearly_valid_specs_never_panic(mutations in proptest::collection::vec(mutation(), 1..6)) {
        let mut text = valid_spec();
        for mutation in &mutations {
            apply(&mut text, mutation);
        }
        let _ = Project::new().load(text.as_bytes());
    }

    #[test]
    fn generated_specs_load_with_every_step_after_its_inputs(graph in graph()) {
        let text = spec_text(&graph);
        let spec = Project::new().load(text.as_bytes()).unwrap_or_else(|error| {
            panic!("a generated spec was rejected: {error}\n{text}")
        });

        let loaded: BTreeSet<&str> = spec.steps.iter().map(|step| step.name.as_str()).collect();
        let expected: BTreeSet<&str> = graph.topological.iter().map(String::as_str).collect();
        prop_assert_eq!(loaded, expected);

        let mut done = HashSet::new();
        for step in &spec.steps {
            let index = graph.topological.iter().position(|name| name == step.name.as_str()).unwrap();
            let inputs: Vec<&str> = step.inputs.iter().map(|input| input.name.as_str()).collect();
            prop_assert_eq!(&inputs, &graph.inputs[index]);
            for input in &step.inputs {
                match input.kind {
                    InputKind::Step => prop_assert!(
                        done.contains(input.name.as_str()),
                        "step `{}` comes before its input `{}`", step.name, input.name
                    ),
                    InputKind::Source => prop_assert_eq!(input.name.as_str(), "src"),
                    InputKind::Fetch => prop_assert!(false, "no fetch was declared"),
                }
            }
            done.insert(step.name.as_str());
        }
    }
}

#[test]
fn the_mutations_start_from_a_valid_spec() {
    let spec = Project::new().load(valid_spec().as_bytes()).unwrap();
    let names: Vec<&str> = spec.steps.iter().map(|step| step.name.as_str()).collect();
    assert_eq!(names, ["compile", "package"]);
    assert_eq!(spec.fetches.len(), 2);
}

/// Regression test, failing on main: a 33 KB spec whose one step lists 2 000 artifacts takes
/// about 3 s to load in a release build (4 000 artifacts in 67 KB: 22 s; 8 000 in 135 KB:
/// 250 s), because the artifact collision check (`check_artifacts_do_not_collide` in
/// `src/spec/validate.rs`) computes a line and column, a scan of the text up to the earlier
/// artifact, for every pair of artifacts rather than only for the pair it reports. Found while
/// writing the `spec_parser` fuzz target; a spec anyone hands to sealroom should load in well under a second.
#[test]
fn a_spec_with_two_thousand_artifacts_loads_quickly() {
    let artifacts: Vec<String> = (0..2000).map(|i| format!("\"dir/file-{i}\"")).collect();
    let text = format!(
        "version = 1\nname = \"many\"\n[sandbox]\nimage = \"{IMAGE}\"\n\
         [[step]]\nname = \"a\"\nrun = [\"true\"]\nartifacts = [{}]\n",
        artifacts.join(", ")
    );
    let (done, finished) = std::sync::mpsc::channel();
    // The load runs on its own thread so that the test fails after the limit instead of hanging.
    std::thread::spawn(move || {
        let project = Project::new();
        let started = std::time::Instant::now();
        let spec = project.load(text.as_bytes()).unwrap();
        let _ = done.send((spec.steps[0].artifacts.len(), started.elapsed()));
    });
    let limit = std::time::Duration::from_secs(10);
    match finished.recv_timeout(limit) {
        Ok((count, elapsed)) => {
            assert_eq!(count, 2000);
            assert!(elapsed < limit, "loading took {elapsed:?}");
        }
        Err(_) => panic!("loading a spec with 2 000 artifacts took more than {limit:?}"),
    }
}
