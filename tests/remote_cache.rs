//! The shared remote cache against a real REAPI server: BuildGrid 0.4.4 on 127.0.0.1 (a disk
//! CAS and an in-memory action cache; `common::buildgrid`), with real Docker. Each runner is a
//! fresh store and a fresh `--out`, as another CI machine would be. What ran and what came from
//! a cache is read from the build's JSON report (a cached step starts no container), the
//! server's side from its disk CAS.

mod common;

use std::path::{Path, PathBuf};

use bazel_remote_apis::build::bazel::remote::execution::v2 as reapi;
use common::buildgrid::BuildGrid;
use common::{Project, busybox, sealroom, statement_of};
use prost::Message;

const INSTANCE: &str = "ci-fleet";

/// gen -> c1 -> c2 and gen -> fan -> c2; big (6 MiB, above BuildGrid's batch limit); ind.
const STEPS: &str = r#"
[[step]]
name = "gen"
inputs = ["src"]
run = ["sh", "-c", "sed 's/^/gen: /' /inputs/src/greeting.txt > /out/g && mkdir /out/bin && printf '#!/bin/sh\necho hi\n' > /out/bin/run && chmod 755 /out/bin/run && ln -s bin/run /out/link"]

[[step]]
name = "c1"
inputs = ["gen"]
run = ["sh", "-c", "cat /inputs/gen/g > /out/c && echo 'c1 ran' >> /out/c"]

[[step]]
name = "fan"
inputs = ["gen"]
run = ["sh", "-c", "{ echo 'fan of'; cat /inputs/gen/g; } > /out/fan.txt"]
artifacts = ["fan.txt"]

[[step]]
name = "c2"
inputs = ["c1", "fan"]
run = ["sh", "-c", "cat /inputs/c1/c /inputs/fan/fan.txt > /out/chain.txt"]
artifacts = ["chain.txt"]

[[step]]
name = "big"
run = ["sh", "-c", "seq 1 400000 | sed 's/$/ a line of the big output/' | head -c 6291456 > /out/big.bin"]
artifacts = ["big.bin"]

[[step]]
name = "ind"
run = ["sh", "-c", "echo 'independent' > /out/ind.txt"]
artifacts = ["ind.txt"]
"#;

const ARTIFACTS: [&str; 4] = ["chain.txt", "fan.txt", "big.bin", "ind.txt"];

/// One runner: its own store and --out under the project.
struct Runner<'a> {
    project: &'a Project,
    name: &'static str,
}

impl Runner<'_> {
    fn store(&self) -> PathBuf {
        self.project.path(&format!("store-{}", self.name))
    }

    fn out(&self) -> PathBuf {
        self.project.path(&format!("out-{}", self.name))
    }

    /// Builds `spec` with the cache and `extra`; the JSON report and stderr.
    fn build(&self, spec: &Path, cache: &BuildGrid, extra: &[&str]) -> (serde_json::Value, String) {
        self.build_logging(spec, cache, extra, "warn,sealroom=info")
    }

    /// [`Runner::build`] with `SEALROOM_LOG` set to `log`.
    fn build_logging(
        &self,
        spec: &Path,
        cache: &BuildGrid,
        extra: &[&str],
        log: &str,
    ) -> (serde_json::Value, String) {
        let output = sealroom()
            .env("SEALROOM_LOG", log)
            .arg("build")
            .arg(spec)
            .arg("--store")
            .arg(self.store())
            .arg("--out")
            .arg(self.out())
            .args(["--format", "json"])
            .args(cache.args())
            .args(extra)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        assert!(
            output.status.success(),
            "runner {} failed: {stderr}",
            self.name
        );
        (serde_json::from_slice(&output.stdout).unwrap(), stderr)
    }

    fn artifact(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.out().join(name)).unwrap()
    }
}

/// The steps of a report that ran (started a container), sorted.
fn ran(report: &serde_json::Value) -> Vec<String> {
    let mut ran: Vec<String> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|step| step["cached"] == false)
        .map(|step| step["name"].as_str().unwrap().to_string())
        .collect();
    ran.sort();
    ran
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The key id `docs/provenance.md` defines: sha256 of the public key's DER SPKI.
fn key_id(public: &Path) -> String {
    let key = sealroom::sign::keys::VerifyingKey::from_pem_file(public).unwrap();
    key.key_id()
}

fn same_artifacts(a: &Runner, b: &Runner, names: &[&str]) {
    for name in names {
        assert!(
            a.artifact(name) == b.artifact(name),
            "{name} of runner {} differs from runner {}'s",
            b.name,
            a.name
        );
    }
}

/// Every `Action` blob in the server's CAS whose `Command` runs `argv`: (action, command).
fn actions_running(cache: &BuildGrid, argv: &[&str]) -> Vec<(reapi::Action, reapi::Command)> {
    let blobs = cache.blob_files();
    let read = |hex: &str| blobs.get(hex).map(|path| std::fs::read(path).unwrap());
    let mut found = Vec::new();
    for hex in blobs.keys() {
        let bytes = read(hex).unwrap();
        let Ok(action) = reapi::Action::decode(bytes.as_slice()) else {
            continue;
        };
        let Some(command_digest) = &action.command_digest else {
            continue;
        };
        let Some(command_bytes) = read(&command_digest.hash) else {
            continue;
        };
        let Ok(command) = reapi::Command::decode(command_bytes.as_slice()) else {
            continue;
        };
        if command.arguments == argv {
            found.push((action, command));
        }
    }
    found
}

/// The file digests below the input root `root`, read from the server's CAS.
fn input_files(cache: &BuildGrid, root: &reapi::Digest) -> Vec<(String, String)> {
    let mut files = Vec::new();
    let mut todo = vec![(String::new(), root.clone())];
    while let Some((prefix, digest)) = todo.pop() {
        let bytes = match cache.blob_path(&digest.hash) {
            Some(path) => std::fs::read(path).unwrap(),
            None => {
                assert_eq!(
                    digest.size_bytes, 0,
                    "Directory {} is not in the CAS",
                    digest.hash
                );
                Vec::new()
            }
        };
        let directory = reapi::Directory::decode(bytes.as_slice()).unwrap();
        for file in directory.files {
            files.push((format!("{prefix}{}", file.name), file.digest.unwrap().hash));
        }
        for child in directory.directories {
            todo.push((format!("{prefix}{}/", child.name), child.digest.unwrap()));
        }
    }
    files.sort();
    files
}

#[test]
fn docker_remote_a_fresh_runner_builds_from_another_s_uploads_without_a_container() {
    let cache = BuildGrid::start(INSTANCE);
    let project = Project::new();
    let spec = project.write_spec(&busybox().to_string(), STEPS);
    let (key_a, pub_a) = project.keygen("ecdsa-p256");
    let a = Runner {
        project: &project,
        name: "a",
    };
    let b = Runner {
        project: &project,
        name: "b",
    };

    // Runner A: everything runs, and is uploaded.
    let (report, _) = a.build(&spec, &cache, &["--key", key_a.to_str().unwrap()]);
    assert_eq!(ran(&report), ["big", "c1", "c2", "fan", "gen", "ind"]);
    let blobs = cache.blobs();
    for name in ARTIFACTS {
        assert!(
            blobs.contains(&sha256_hex(&a.artifact(name))),
            "{name} is not a blob in the server's CAS"
        );
    }
    let big = a.artifact("big.bin");
    assert_eq!(big.len(), 6 * 1024 * 1024);
    // BuildGrid's max_batch_total_size_bytes is 4 MiB less 1 KiB: big.bin went through ByteStream.
    assert!(big.len() > 4 * 1024 * 1024);

    // The Action of c2 as the server holds it: argv, sorted environment, output path, platform,
    // salt, and an input root whose Merkle tree holds its inputs' files.
    let c2 = actions_running(
        &cache,
        &[
            "sh",
            "-c",
            "cat /inputs/c1/c /inputs/fan/fan.txt > /out/chain.txt",
        ],
    );
    assert_eq!(c2.len(), 1, "one Action for step c2");
    let (action, command) = &c2[0];
    let names: Vec<&str> = command
        .environment_variables
        .iter()
        .map(|variable| variable.name.as_str())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    assert!(names.contains(&"SOURCE_DATE_EPOCH"));
    assert_eq!(command.output_paths, ["out"]);
    let platform: Vec<(String, String)> = action
        .platform
        .clone()
        .unwrap()
        .properties
        .into_iter()
        .map(|property| (property.name, property.value))
        .collect();
    assert_eq!(platform[0], ("OSFamily".to_string(), "linux".to_string()));
    assert_eq!(platform[1].0, "container-image");
    assert!(
        platform[1].1.starts_with("docker://")
            && platform[1].1.ends_with(&busybox().digest.to_string())
    );
    assert!(
        String::from_utf8(action.salt.clone())
            .unwrap()
            .starts_with("sealroom-step-record-v1 sha256:")
    );
    let files = input_files(&cache, action.input_root_digest.as_ref().unwrap());
    assert!(
        files.contains(&(
            "inputs/fan/fan.txt".to_string(),
            sha256_hex(&a.artifact("fan.txt"))
        )),
        "{files:?}"
    );

    // Runner B, another empty store trusting A's key: nothing runs, the same bytes come out.
    let (report, stderr) = b.build_logging(
        &spec,
        &cache,
        &["--trust-key", pub_a.to_str().unwrap()],
        "warn,sealroom=debug",
    );
    assert!(ran(&report).is_empty(), "runner B ran {:?}", ran(&report));
    // Not even the SBOM's image contents needed a container: A's build read them out of a
    // step's container and uploaded them, signed, with its steps.
    assert!(
        stderr.contains(&format!(
            "image {}: contents from the remote cache",
            busybox().digest
        )),
        "{stderr}"
    );
    same_artifacts(&a, &b, &ARTIFACTS);
    // The executable bit and the symlink of gen's output survived the round trip.
    let store_b = sealroom::store::Store::open(&b.store()).unwrap();
    let gen_output: sealroom::digest::TreeDigest = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|step| step["name"] == "gen")
        .unwrap()["output"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let store_a = sealroom::store::Store::open(&a.store()).unwrap();
    assert!(
        store_a.has_tree(&gen_output),
        "B's gen output tree is A's, digest for digest"
    );
    assert!(matches!(
        store_b
            .lookup(&gen_output, "bin/run")
            .unwrap()
            .unwrap()
            .kind,
        sealroom::store::EntryKind::File {
            executable: true,
            ..
        }
    ));
    assert!(matches!(
        store_b.lookup(&gen_output, "link").unwrap().unwrap().kind,
        sealroom::store::EntryKind::Symlink { .. }
    ));

    // B's provenance names the cache, the instance, the action and A's key as the signer.
    let statement =
        statement_of(&std::fs::read_to_string(b.out().join("chain.txt.intoto.jsonl")).unwrap());
    let remote = &statement["predicate"]["buildDefinition"]["internalParameters"]["steps"]["c2"]["remoteCache"];
    assert_eq!(remote["cache"], cache.url());
    assert_eq!(remote["instance"], INSTANCE);
    assert_eq!(remote["signer"], key_id(&pub_a));
    let action_hex = remote["actionDigest"]
        .as_str()
        .unwrap()
        .strip_prefix("sha256:")
        .unwrap();
    let action_bytes = std::fs::read(cache.blob_path(action_hex).unwrap()).unwrap();
    assert_eq!(
        &reapi::Action::decode(action_bytes.as_slice()).unwrap(),
        action
    );

    // A changed source on a third fresh runner: only its dependants run.
    std::fs::write(project.path("src/greeting.txt"), "changed\n").unwrap();
    let b2 = Runner {
        project: &project,
        name: "b2",
    };
    let (report, _) = b2.build(&spec, &cache, &["--trust-key", pub_a.to_str().unwrap()]);
    assert_eq!(ran(&report), ["c1", "c2", "fan", "gen"]);
    same_artifacts(&a, &b2, &["big.bin", "ind.txt"]);
    assert!(
        String::from_utf8(b2.artifact("chain.txt"))
            .unwrap()
            .contains("gen: changed")
    );
}

#[test]
fn docker_remote_read_only_corrupt_and_untrusted_entries() {
    let cache = BuildGrid::start(INSTANCE);
    let project = Project::new();
    let spec = project.write_spec(&busybox().to_string(), STEPS);
    let (key_a, pub_a) = project.keygen("ecdsa-p256");
    let (_, pub_x) = project.keygen("ed25519");
    let a = Runner {
        project: &project,
        name: "a",
    };
    a.build(&spec, &cache, &["--key", key_a.to_str().unwrap()]);

    // A read-only runner with two steps the cache has never seen: it reads the six, runs the
    // two, and adds no blob (and no action) to the server.
    let extended = project.path("extended.toml");
    let extra = r#"
[[step]]
name = "ro1"
run = ["sh", "-c", "echo 'read-only runner' > /out/ro1.txt"]
artifacts = ["ro1.txt"]
"#;
    std::fs::write(
        &extended,
        format!("{}{extra}", std::fs::read_to_string(&spec).unwrap()),
    )
    .unwrap();
    let before = cache.blobs();
    let ro = Runner {
        project: &project,
        name: "ro",
    };
    let (report, _) = ro.build(
        &extended,
        &cache,
        &["--remote-read-only", "--trust-key", pub_a.to_str().unwrap()],
    );
    assert_eq!(ran(&report), ["ro1"]);
    assert_eq!(cache.blobs(), before, "a read-only runner uploaded blobs");
    let next = Runner {
        project: &project,
        name: "next",
    };
    let (report, _) = next.build(&extended, &cache, &["--trust-key", pub_a.to_str().unwrap()]);
    assert_eq!(
        ran(&report),
        ["ro1"],
        "the read-only runner wrote an action result"
    );

    // One blob corrupted inside the server's CAS (same size): detected, that step rebuilt.
    let ind = sha256_hex(&a.artifact("ind.txt"));
    let path = cache.blob_path(&ind).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[0] ^= 0x20;
    std::fs::write(&path, &bytes).unwrap();
    let f = Runner {
        project: &project,
        name: "f",
    };
    let (report, stderr) = f.build(&spec, &cache, &["--trust-key", pub_a.to_str().unwrap()]);
    assert_eq!(ran(&report), ["ind"]);
    assert!(
        stderr.contains(&ind),
        "the warning names the corrupt blob: {stderr}"
    );
    same_artifacts(&a, &f, &ARTIFACTS);
    // The rebuilt step's upload sent the blob again (BuildGrid keeps the copy it has).
    assert!(
        stderr.contains("step ind: uploaded to the remote cache"),
        "{stderr}"
    );

    // A reader that trusts only another key: A's entries are misses, everything runs.
    let e = Runner {
        project: &project,
        name: "e",
    };
    let (report, stderr) = e.build(&spec, &cache, &["--trust-key", pub_x.to_str().unwrap()]);
    assert_eq!(ran(&report).len(), 6, "{stderr}");
    assert!(stderr.contains("not signed by a trusted key"), "{stderr}");
    same_artifacts(&a, &e, &ARTIFACTS);
}

#[test]
fn docker_remote_a_restarted_server_is_a_clean_miss_and_a_dead_one_a_warning() {
    let mut cache = BuildGrid::start(INSTANCE);
    let project = Project::new();
    let spec = project.write_spec(
        &busybox().to_string(),
        r#"
[[step]]
name = "one"
inputs = ["src"]
run = ["sh", "-c", "cat /inputs/src/greeting.txt > /out/one.txt"]
artifacts = ["one.txt"]
"#,
    );
    let a = Runner {
        project: &project,
        name: "a",
    };
    a.build(&spec, &cache, &[]);
    // Without --trust-key an unsigned entry is taken.
    let b = Runner {
        project: &project,
        name: "b",
    };
    let (report, _) = b.build(&spec, &cache, &[]);
    assert!(ran(&report).is_empty());
    // ...but a reader that trusts a key does not take an unsigned one.
    let (_, public) = project.keygen("ed25519");
    let signed_only = Runner {
        project: &project,
        name: "signed-only",
    };
    let (report, stderr) =
        signed_only.build(&spec, &cache, &["--trust-key", public.to_str().unwrap()]);
    assert_eq!(ran(&report), ["one"]);
    assert!(stderr.contains("no signed statement"), "{stderr}");

    // Restarted: the action cache is gone, the CAS is not; a clean miss, then served again.
    cache.restart();
    let c = Runner {
        project: &project,
        name: "c",
    };
    let (report, _) = c.build(&spec, &cache, &[]);
    assert_eq!(ran(&report), ["one"]);
    let d = Runner {
        project: &project,
        name: "d",
    };
    let (report, _) = d.build(&spec, &cache, &[]);
    assert!(ran(&report).is_empty());

    // Stopped: a warning, and the build runs locally.
    cache.stop();
    let e = Runner {
        project: &project,
        name: "e",
    };
    let (report, stderr) = e.build(&spec, &cache, &[]);
    assert_eq!(ran(&report), ["one"]);
    assert!(stderr.contains("building locally"), "{stderr}");
    same_artifacts(&a, &e, &["one.txt"]);
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl in
/// `dir`: (ca.pem, server.pem, server.key, client.pem, client.key).
fn certificates(dir: &Path) -> [PathBuf; 5] {
    let script = r#"set -e
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=test-ca \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > server.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile server.ext -out server.pem
openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj /CN=test-client
printf 'extendedKeyUsage=clientAuth\n' > client.ext
openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile client.ext -out client.pem
"#;
    let output = std::process::Command::new("sh")
        .args(["-c", script])
        .current_dir(dir)
        .output()
        .expect("openssl runs (scripts/ensure-packages.sh installs it)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    [
        "ca.pem",
        "server.pem",
        "server.key",
        "client.pem",
        "client.key",
    ]
    .map(|name| dir.join(name))
}

#[test]
fn docker_remote_grpcs_with_a_ca_and_a_client_certificate() {
    let project = Project::new();
    let certs = project.path("certs");
    std::fs::create_dir(&certs).unwrap();
    let [ca, server_cert, server_key, client_cert, client_key] = certificates(&certs);
    let cache = BuildGrid::start_tls(
        INSTANCE,
        common::buildgrid::ServerTls {
            cert: server_cert,
            key: server_key,
            client_ca: ca.clone(),
        },
    );
    assert!(cache.url().starts_with("grpcs://"));
    let spec = project.write_spec(
        &busybox().to_string(),
        r#"
[[step]]
name = "one"
inputs = ["src"]
run = ["sh", "-c", "cat /inputs/src/greeting.txt > /out/one.txt"]
artifacts = ["one.txt"]
"#,
    );
    let tls: Vec<&str> = vec![
        "--remote-ca",
        ca.to_str().unwrap(),
        "--remote-client-cert",
        client_cert.to_str().unwrap(),
        "--remote-client-key",
        client_key.to_str().unwrap(),
    ];
    let a = Runner {
        project: &project,
        name: "a",
    };
    let (report, stderr) = a.build(&spec, &cache, &tls);
    assert_eq!(ran(&report), ["one"]);
    assert!(
        stderr.contains("step one: uploaded to the remote cache"),
        "{stderr}"
    );
    let b = Runner {
        project: &project,
        name: "b",
    };
    let (report, _) = b.build(&spec, &cache, &tls);
    assert!(ran(&report).is_empty());
    same_artifacts(&a, &b, &["one.txt"]);
    // Without the client certificate the server refuses the handshake: a warning, a local build.
    let c = Runner {
        project: &project,
        name: "c",
    };
    let (report, stderr) = c.build(&spec, &cache, &["--remote-ca", ca.to_str().unwrap()]);
    assert_eq!(ran(&report), ["one"]);
    assert!(stderr.contains("building locally"), "{stderr}");
    // A certificate without its key is a usage error.
    let assert = sealroom()
        .arg("build")
        .arg(&spec)
        .arg("--store")
        .arg(project.path("store-d"))
        .args(cache.args())
        .args(["--remote-client-cert", client_cert.to_str().unwrap()])
        .assert()
        .code(2);
    assert!(common::stderr_of(&assert).contains("--remote-client-key"));
}

#[test]
fn a_bad_remote_setting_is_a_clear_error_before_anything_runs() {
    let project = Project::new();
    let spec = project.write_spec(&busybox_free_reference(), "");
    let assert = sealroom()
        .arg("build")
        .arg(&spec)
        .args(["--store"])
        .arg(project.store())
        .args(["--remote-cache", "http://127.0.0.1:1"])
        .assert()
        .code(2);
    let stderr = common::stderr_of(&assert);
    assert!(
        stderr.contains("invalid remote cache URL `http://127.0.0.1:1`")
            && stderr.contains("grpc://HOST:PORT"),
        "{stderr}"
    );
    // The same from the environment.
    let assert = sealroom()
        .arg("build")
        .arg(&spec)
        .arg("--store")
        .arg(project.store())
        .env("SEALROOM_REMOTE_CACHE", "grpc://127.0.0.1")
        .assert()
        .code(2);
    assert!(common::stderr_of(&assert).contains("the port is missing"));
    // A trusted key that is not a key.
    std::fs::write(project.path("bad.pub"), "not a key").unwrap();
    let assert = sealroom()
        .arg("build")
        .arg(&spec)
        .arg("--store")
        .arg(project.store())
        .args(["--remote-cache", "grpc://127.0.0.1:1", "--trust-key"])
        .arg(project.path("bad.pub"))
        .assert()
        .code(1);
    assert!(
        common::stderr_of(&assert).contains("bad.pub"),
        "{}",
        common::stderr_of(&assert)
    );
    // TLS files for a plain grpc:// cache.
    let assert = sealroom()
        .arg("build")
        .arg(&spec)
        .arg("--store")
        .arg(project.store())
        .args(["--remote-cache", "grpc://127.0.0.1:1", "--remote-ca"])
        .arg(project.path("bad.pub"))
        .assert()
        .code(1);
    assert!(common::stderr_of(&assert).contains("is not grpcs://"));
    assert!(!project.out().exists(), "nothing was written");
}

/// A pinned reference that no engine needs to have: the setting errors come first.
fn busybox_free_reference() -> String {
    format!("sealroom/none@sha256:{}", "ab".repeat(32))
}
