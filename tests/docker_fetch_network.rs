//! The network of fixed-output fetches, attacked from inside a fetch container (real Docker, the
//! busybox image): a spec alone cannot get the host's network namespace; on sealroom's fetch
//! network a container reaches neither the host (loopback, its addresses, the gateway, its
//! abstract Unix sockets), nor another container, nor a link-local metadata address, but still
//! reaches an address outside the host (a network namespace the test makes).
//!
//! Each probe prints `PROBE <what> reached|blocked` to the fetch's log (on sealroom's stderr);
//! a zero pin makes the build stop right after the fetch, storing nothing.

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::os::linux::net::SocketAddrExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use common::{Project, busybox, sealroom, stderr_of};

const ZERO_PIN: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
const HOST_FLAG: &str = "--allow-host-network";

/// A project whose spec has one fixed-output fetch `name` running `script` (a shell script, as a
/// TOML basic string's content) with `extra` lines, pinned to `pin`, and a step reading it.
fn fetch_project(fetches: &[(&str, &str, &str)], extra: &str) -> (Project, PathBuf) {
    let project = Project::new();
    let mut body = String::new();
    for (name, script, pin) in fetches {
        body.push_str(&format!(
            "[[fetch]]\nname = \"{name}\"\nrun = [\"sh\", \"-c\", {script:?}]\noutput = \"{pin}\"\n{extra}\n\n"
        ));
    }
    let inputs: Vec<String> = fetches
        .iter()
        .map(|(name, _, _)| format!("\"{name}\""))
        .collect();
    body.push_str(&format!(
        "[[step]]\nname = \"after\"\ninputs = [{}]\nrun = [\"sh\", \"-c\", \"ls /inputs > /out/seen\"]\nartifacts = [\"seen\"]\n",
        inputs.join(", ")
    ));
    let spec = project.write_spec(&busybox().to_string(), &body);
    (project, spec)
}

/// The values of every `KEY=value` word the fetch logs printed.
fn logged(stderr: &str, key: &str) -> Vec<String> {
    let prefix = format!("{key}=");
    stderr
        .split_whitespace()
        .filter_map(|word| word.strip_prefix(&prefix))
        // Not the command line sealroom logs before running it.
        .filter(|value| !value.starts_with('$'))
        .map(str::to_string)
        .collect()
}

/// `what -> reached|blocked` for every probe line.
fn probes(stderr: &str) -> Vec<(String, String)> {
    stderr
        .lines()
        .filter_map(|line| {
            let rest = &line[line.find("PROBE ")? + "PROBE ".len()..];
            let mut words = rest.split_whitespace();
            Some((words.next()?.to_string(), words.next()?.to_string()))
        })
        // Not the script itself, which sealroom logs before running it.
        .filter(|(what, _)| !what.starts_with('$'))
        .collect()
}

/// The tree digest of a directory holding `files`, as the store computes it.
fn tree_of(files: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    for (name, content) in files {
        std::fs::write(tree.join(name), content).unwrap();
    }
    let store = sealroom::store::Store::open(&dir.path().join("store")).unwrap();
    store.add_tree(&tree, &|_| false).unwrap().to_string()
}

fn host_netns() -> String {
    std::fs::read_link("/proc/self/ns/net")
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[test]
fn docker_host_networking_from_the_spec_alone_is_refused_and_the_flag_allows_it() {
    let script = "echo NETNS=$(readlink /proc/self/ns/net); echo peek > /out/peek";
    let pin = tree_of(&[("peek", "peek\n")]);
    let (project, spec) = fetch_project(&[("peek", script, &pin)], "network = \"host\"");

    // build, fetch and pin: refused before any container starts, naming host networking and
    // the flag.
    let mut commands: Vec<(&str, assert_cmd::Command)> =
        vec![("build", project.build_command(&spec))];
    for command in ["fetch", "pin"] {
        let mut run = sealroom();
        run.arg(command)
            .arg(&spec)
            .arg("--store")
            .arg(project.store());
        commands.push((command, run));
    }
    for (command, mut run) in commands {
        let assert = run.assert().code(1);
        let stderr = stderr_of(&assert);
        assert!(
            stderr.contains("fetch `peek` asks for host networking") && stderr.contains(HOST_FLAG),
            "{command}: {stderr}"
        );
        assert!(
            logged(&stderr, "NETNS").is_empty(),
            "{command}: the fetch container ran: {stderr}"
        );
    }
    assert!(
        !project.out().join("seen").exists(),
        "nothing was built without the flag"
    );

    // With the flag, the fetch shares the host's network namespace, and the build goes on.
    let assert = project
        .build_command(&spec)
        .arg(HOST_FLAG)
        .assert()
        .success();
    let stderr = stderr_of(&assert);
    assert_eq!(logged(&stderr, "NETNS"), [host_netns()], "{stderr}");
    assert_eq!(
        std::fs::read_to_string(project.out().join("seen")).unwrap(),
        "peek\n"
    );
    // Provenance shows it.
    let provenance = std::fs::read_to_string(project.out().join("seen.intoto.jsonl")).unwrap();
    let envelope: serde_json::Value =
        serde_json::from_str(provenance.lines().next().unwrap()).unwrap();
    use base64::Engine as _;
    let statement = base64::engine::general_purpose::STANDARD
        .decode(envelope["payload"].as_str().unwrap())
        .unwrap();
    let statement = String::from_utf8(statement).unwrap();
    assert!(
        statement.contains(r#""network":"host""#),
        "provenance records the host network: {statement}"
    );
}

#[test]
fn docker_each_fetch_container_gets_a_fresh_hostname() {
    let script = |file: &str| format!("echo HOSTNAME=$(hostname); echo {file} > /out/{file}");
    let (a, b) = (script("a"), script("b"));
    let (pin_a, pin_b) = (tree_of(&[("a", "a\n")]), tree_of(&[("b", "b\n")]));
    let (project, spec) = fetch_project(&[("one", &a, &pin_a), ("two", &b, &pin_b)], "");
    let assert = project.build(&spec).success();
    let stderr = stderr_of(&assert);
    let names = logged(&stderr, "HOSTNAME");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(names.len(), 2, "{stderr}");
    assert_ne!(names[0], names[1], "two containers, one hostname: {stderr}");
    for name in &names {
        assert!(
            name != "sealroom" && name != host.trim() && name.starts_with("fetch-"),
            "{name}: {stderr}"
        );
    }
}

/// A network namespace the test makes, as "the outside": a veth pair to the host
/// (10.231.N.1 on the host, 10.231.N.2 inside), the link-local metadata address
/// 169.254.169.254 inside too (the host routes that one address there), and a TCP server
/// answering `OUTSIDE` on every address inside. Removed with everything it made when dropped.
struct Outside {
    name: String,
    address: String,
    server: Child,
}

impl Outside {
    fn start(port: u16) -> Outside {
        let id = std::process::id() % 10_000;
        let name = format!("sealroom-test-{id}");
        let subnet = 16 + id % 200;
        let (host_if, ns_if) = (format!("srt{id}h"), format!("srt{id}n"));
        let (host_ip, ns_ip) = (format!("10.231.{subnet}.1"), format!("10.231.{subnet}.2"));
        let ip = |args: &[&str]| {
            let status = Command::new("ip").args(args).status().unwrap();
            assert!(status.success(), "ip {}", args.join(" "));
        };
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(Stdio::null())
            .status();
        ip(&["netns", "add", &name]);
        let outside = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &name, "ip"];
            all.extend_from_slice(args);
            ip(&all);
        };
        ip(&[
            "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
        ]);
        ip(&["link", "set", &ns_if, "netns", &name]);
        ip(&["addr", "add", &format!("{host_ip}/30"), "dev", &host_if]);
        ip(&["link", "set", &host_if, "up"]);
        outside(&["addr", "add", &format!("{ns_ip}/30"), "dev", &ns_if]);
        outside(&["link", "set", &ns_if, "up"]);
        outside(&["link", "set", "lo", "up"]);
        outside(&["addr", "add", "169.254.169.254/32", "dev", "lo"]);
        outside(&["route", "add", "default", "via", &host_ip]);
        // Only this one address, only through the test's veth; gone with it.
        ip(&[
            "route",
            "add",
            "169.254.169.254/32",
            "via",
            &ns_ip,
            "dev",
            &host_if,
        ]);
        let server = Command::new("ip")
            .args(["netns", "exec", &name, "python3", "-c"])
            .arg(format!(
                "import socket\ns = socket.socket()\ns.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\ns.bind(('0.0.0.0', {port}))\ns.listen(16)\nprint('listening', flush=True)\nwhile True:\n    c, _ = s.accept()\n    c.sendall(b'OUTSIDE\\n')\n    c.close()\n"
            ))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut outside = Outside {
            name,
            address: ns_ip,
            server,
        };
        // Listening before any probe.
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(outside.server.stdout.as_mut().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(line, "listening\n");
        outside
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
        // Deleting the namespace deletes its veth end, so the host's end and route go too.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A container of the test on sealroom's fetch network, listening on port 8080; removed when
/// dropped.
struct Neighbour {
    name: String,
    address: String,
}

impl Neighbour {
    fn start() -> Neighbour {
        let name = format!("sealroom-test-neighbour-{}", std::process::id());
        let _ = Command::new("docker").args(["rm", "-f", &name]).output();
        let run = Command::new("docker")
            .args([
                "run",
                "-d",
                "--name",
                &name,
                "--label",
                "dev.sealroom.test=fetch-network",
            ])
            .args(["--network", sealroom::sandbox::fetch_network::NAME])
            .args(["--entrypoint", "nc", &busybox().digest.to_string()])
            .args(["-ll", "-p", "8080", "-e", "/bin/echo", "NEIGHBOUR"])
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "a container on sealroom's fetch network `{}`: {}",
            sealroom::sandbox::fetch_network::NAME,
            String::from_utf8_lossy(&run.stderr)
        );
        let mut neighbour = Neighbour {
            name,
            address: String::new(),
        };
        let inspect = Command::new("docker")
            .args(["inspect", "-f"])
            .arg(format!(
                "{{{{(index .NetworkSettings.Networks \"{}\").IPAddress}}}}",
                sealroom::sandbox::fetch_network::NAME
            ))
            .arg(&neighbour.name)
            .output()
            .unwrap();
        let address = String::from_utf8(inspect.stdout)
            .unwrap()
            .trim()
            .to_string();
        assert!(!address.is_empty(), "the neighbour has an address");
        neighbour.address = address;
        neighbour
    }
}

impl Drop for Neighbour {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", &self.name])
            .output();
    }
}

/// The host's own IPv4 addresses outside loopback (every interface: eth0, the engine's bridges).
fn host_addresses() -> Vec<String> {
    let out = Command::new("ip")
        .args(["-4", "-o", "addr", "show", "scope", "global"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            words.find(|word| *word == "inet")?;
            Some(words.next()?.split('/').next()?.to_string())
        })
        .collect()
}

#[test]
fn docker_a_fetch_container_reaches_the_outside_but_not_the_host_its_neighbours_or_metadata() {
    // The host's services: TCP on every address (loopback included), an abstract socket.
    let listener = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let _ = stream.write_all(b"HOST-SECRET\n");
        }
    });
    let abstract_name = format!("sealroom-probe-{}", std::process::id());
    let address =
        std::os::unix::net::SocketAddr::from_abstract_name(abstract_name.as_bytes()).unwrap();
    let _abstract = std::os::unix::net::UnixListener::bind_addr(&address).unwrap();
    let outside = Outside::start(port);

    // The fetch network exists once a fetch ran on it: the neighbour needs it.
    let (warm, warm_spec) = fetch_project(&[("warm", "true", ZERO_PIN)], "");
    let assert = warm.build(&warm_spec).code(1);
    assert!(
        stderr_of(&assert).contains("fixed-output fetch `warm` produced tree"),
        "{}",
        stderr_of(&assert)
    );
    let neighbour = Neighbour::start();

    let mut script = String::from(
        "probe() { if nc -w 3 $2 $3 </dev/null 2>/dev/null | grep -q $4; then echo PROBE $1 reached; else echo PROBE $1 blocked; fi; }; ",
    );
    script.push_str(&format!("probe loopback 127.0.0.1 {port} HOST-SECRET; "));
    script.push_str(&format!(
        "probe gateway $(ip route | awk '/^default/ {{print $3}}') {port} HOST-SECRET; "
    ));
    for host in host_addresses() {
        script.push_str(&format!("probe host-{host} {host} {port} HOST-SECRET; "));
    }
    script.push_str(&format!("probe metadata 169.254.169.254 {port} OUTSIDE; "));
    script.push_str(&format!(
        "probe neighbour {} 8080 NEIGHBOUR; ",
        neighbour.address
    ));
    script.push_str(&format!(
        "probe outside {} {port} OUTSIDE; ",
        outside.address
    ));
    script.push_str(&format!(
        "if grep -q @{abstract_name} /proc/net/unix; then echo PROBE abstract-socket reached; else echo PROBE abstract-socket blocked; fi; true"
    ));
    let (project, spec) = fetch_project(&[("prober", &script, ZERO_PIN)], "");
    let assert = project.build(&spec).code(1);
    let stderr = stderr_of(&assert);
    let found = probes(&stderr);
    let reached: Vec<&str> = found
        .iter()
        .filter(|(_, result)| result == "reached")
        .map(|(what, _)| what.as_str())
        .collect();
    assert_eq!(reached, ["outside"], "{stderr}");
    let probed: Vec<&str> = found.iter().map(|(what, _)| what.as_str()).collect();
    for what in [
        "loopback",
        "gateway",
        "metadata",
        "neighbour",
        "abstract-socket",
    ] {
        assert!(probed.contains(&what), "{what} was probed: {stderr}");
    }
    assert!(
        probed
            .iter()
            .filter(|what| what.starts_with("host-"))
            .count()
            >= 1,
        "{stderr}"
    );
    drop(neighbour);
    drop(outside);
}

/// The firewall is sealroom's own: chains that only packets from its bridge reach, never a
/// change to the host's other rules.
#[test]
fn docker_the_fetch_network_s_rules_are_scoped_to_its_bridge() {
    let (project, spec) = fetch_project(&[("warm", "true", ZERO_PIN)], "");
    project.build(&spec).code(1);
    let rules = |tool: &str| {
        let out = Command::new(tool).args(["-w", "-S"]).output().unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    use sealroom::sandbox::fetch_network::{BRIDGE, FORWARD_CHAIN, INPUT_CHAIN};
    for tool in ["iptables", "ip6tables"] {
        let all = rules(tool);
        let ours: Vec<&str> = all
            .lines()
            .filter(|line| line.contains("SEALROOM"))
            .collect();
        for line in &ours {
            let jump = line.starts_with("-A INPUT")
                || line.starts_with("-A DOCKER-USER")
                || line.starts_with("-A FORWARD");
            if jump {
                assert!(
                    line.contains(&format!("-i {BRIDGE} ")),
                    "{tool}: a jump into sealroom's chains not scoped to {BRIDGE}: {line}"
                );
            } else {
                assert!(
                    line.starts_with(&format!("-N {INPUT_CHAIN}"))
                        || line.starts_with(&format!("-N {FORWARD_CHAIN}"))
                        || line.starts_with(&format!("-A {INPUT_CHAIN} "))
                        || line.starts_with(&format!("-A {FORWARD_CHAIN} ")),
                    "{tool}: {line}"
                );
            }
        }
        assert!(
            ours.iter()
                .any(|line| *line == format!("-A INPUT -i {BRIDGE} -j {INPUT_CHAIN}")),
            "{tool}: {all}"
        );
    }
}

/// A project with the source `lib` (`data/answer.txt` = "forty-two") and one step `name`
/// that pipes that file through `filter` into its artifact `answer`.
fn reads_answer(project: &Project, name: &str, filter: &str) -> PathBuf {
    std::fs::create_dir_all(project.path("lib/data")).unwrap();
    std::fs::write(project.path("lib/data/answer.txt"), "forty-two\n").unwrap();
    let spec = format!(
        "version = 1\nname = \"checkouts\"\n\n[sandbox]\nimage = \"{}\"\n\n[[source]]\nname = \"lib\"\npath = \"lib\"\n\n[[step]]\nname = \"{name}\"\ninputs = [\"lib\"]\nrun = [\"sh\", \"-c\", \"{filter} < /inputs/lib/data/answer.txt > /out/answer\"]\nartifacts = [\"answer\"]\n",
        busybox()
    );
    let path = project.path(&format!("{name}.toml"));
    std::fs::write(&path, spec).unwrap();
    path
}

/// Every file named `name` under the store's checkouts.
fn checkout_files(store: &std::path::Path, name: &str) -> Vec<PathBuf> {
    walkdir::WalkDir::new(store.join("v1/inputs"))
        .into_iter()
        .filter_map(Result::ok)
        .filter(|entry| entry.file_type().is_file() && entry.file_name() == name)
        .map(|entry| entry.into_path())
        .collect()
}

#[test]
fn docker_a_checkout_changed_between_builds_is_not_used_as_it_is() {
    let project = Project::new();
    let first = reads_answer(&project, "read-first", "cat");
    project.build(&first).success();
    let checkouts = checkout_files(&project.store(), "answer.txt");
    assert_eq!(checkouts.len(), 1, "one checkout of `lib`");
    // Root changes the 0644 file in place, keeping its size, mode and modification time.
    let file = &checkouts[0];
    let metadata = std::fs::metadata(file).unwrap();
    std::fs::write(file, "forty-six\n").unwrap();
    std::fs::File::options()
        .write(true)
        .open(file)
        .unwrap()
        .set_modified(metadata.modified().unwrap())
        .unwrap();

    // Another command over the same source: no cache entry answers it, the checkout is mounted.
    let second = reads_answer(&project, "read-second", "head -n 5");
    let assert = project.build(&second).success();
    assert_eq!(
        std::fs::read_to_string(project.out().join("answer")).unwrap(),
        "forty-two\n",
        "the step read the source's own content: {}",
        stderr_of(&assert)
    );
    assert!(
        stderr_of(&assert).contains("differs from its tree"),
        "the re-made checkout is reported: {}",
        stderr_of(&assert)
    );
    assert_eq!(std::fs::read_to_string(file).unwrap(), "forty-two\n");
}

#[test]
fn docker_a_cache_hit_whose_output_blob_is_gone_runs_the_step_again() {
    let project = Project::new();
    // Not the source's own bytes: only the output's blob goes.
    let spec = reads_answer(&project, "read-it", "tr a-z A-Z");
    project.build(&spec).success();
    // The store's copy of the output file, lost (a damaged disk, a careless `rm`).
    let blob = project
        .store()
        .join("v1/blobs/sha256")
        .join(sealroom::digest::BlobDigest::of(b"FORTY-TWO\n").hex());
    assert!(blob.is_file());
    std::fs::remove_file(&blob).unwrap();
    std::fs::remove_dir_all(project.out()).unwrap();

    let assert = project.build(&spec).success();
    let stderr = stderr_of(&assert);
    assert!(
        stderr.contains("step read-it: the cached output") && stderr.contains("is incomplete"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(project.out().join("answer")).unwrap(),
        "FORTY-TWO\n"
    );
    assert!(blob.is_file(), "the step's run stored the blob again");
}

#[test]
fn docker_a_stored_fetch_tree_missing_a_blob_is_fetched_again() {
    let pin = tree_of(&[("vendored", "vendored bytes\n")]);
    let (project, spec) = fetch_project(
        &[("vendor", "echo vendored bytes > /out/vendored", &pin)],
        "",
    );
    project.build(&spec).success();
    // The fetched file's blob is lost, and so is its checkout (`store gc` removes unused ones).
    let blob = project
        .store()
        .join("v1/blobs/sha256")
        .join(sealroom::digest::BlobDigest::of(b"vendored bytes\n").hex());
    std::fs::remove_file(&blob).unwrap();
    let checkout = project
        .store()
        .join("v1/inputs")
        .join(&pin["sha256:".len()..]);
    let status = Command::new("rm")
        .arg("-rf")
        .arg(&checkout)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::remove_dir_all(project.out()).unwrap();

    let assert = project
        .build_command(&spec)
        .arg("--no-cache")
        .assert()
        .success();
    let stderr = stderr_of(&assert);
    assert!(
        stderr.contains("fetch vendor: the stored tree")
            && stderr.contains("running the fetch again"),
        "{stderr}"
    );
    assert!(blob.is_file(), "the fetch stored its blob again");
    assert_eq!(
        std::fs::read_to_string(project.out().join("seen")).unwrap(),
        "vendor\n"
    );
}
