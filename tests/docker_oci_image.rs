//! `[[image]]` end to end with real Docker: the same spec built in two stores gives the same
//! manifest digest, the layout is a valid OCI layout, `--load --tag` makes an image that runs
//! (started through bollard, removed after), and bad `[[image]]` tables are refused with a
//! location before anything runs.

mod common;

use bollard::query_parameters::{
    CreateContainerOptions, LogsOptions, RemoveContainerOptions, RemoveImageOptions,
    StartContainerOptions, WaitContainerOptions,
};
use futures_util::StreamExt;

use common::{Project, busybox, sealroom, stderr_of};

fn image_spec(image: &str) -> String {
    format!(
        r#"
[[step]]
name = "app"
inputs = ["src"]
run = ["sh", "-c", "mkdir -p /out/bin && printf '#!/bin/sh\\necho image says: %s\\n' \"$(cat /inputs/src/greeting.txt)\" > /out/bin/app && chmod 755 /out/bin/app && ln -s bin/app /out/run"]
artifacts = ["bin/app"]

[[image]]
name = "app-image"
base = "{image}"
layers = [{{ step = "app", path = "/app" }}, {{ source = "src", path = "/etc/app", artifacts = ["greeting.txt"] }}]
cmd = ["/app/bin/app"]
env = {{ MODE = "test" }}
workdir = "/app"
labels = {{ "org.example.b" = "2", "org.example.a" = "1" }}
expose = ["8080"]
"#
    )
}

#[test]
fn docker_same_spec_in_two_stores_gives_the_same_manifest_digest() {
    let project = Project::new();
    let image = busybox().to_string();
    let spec = project.write_spec(&image, &image_spec(&image));
    let first = project.build_report(&spec, &project.path("store-a"), &project.path("out-a"), &[]);
    let second = project.build_report(&spec, &project.path("store-b"), &project.path("out-b"), &[]);
    let digest = |report: &serde_json::Value| {
        report["images"][0]["manifest_digest"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(digest(&first), digest(&second));
    assert!(digest(&first).starts_with("sha256:"));

    // The layout: oci-layout, index.json naming the manifest, every blob named by its sha256.
    let layout = project.path("out-a/app-image");
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    assert_eq!(
        index["manifests"][0]["digest"].as_str().unwrap(),
        digest(&first)
    );
    for entry in std::fs::read_dir(layout.join("blobs/sha256")).unwrap() {
        let entry = entry.unwrap();
        let bytes = std::fs::read(entry.path()).unwrap();
        assert_eq!(
            sealroom::digest::BlobDigest::of(&bytes).hex(),
            entry.file_name().to_string_lossy()
        );
    }
    let manifest_hex = &digest(&first)["sha256:".len()..];
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(layout.join("blobs/sha256").join(manifest_hex)).unwrap(),
    )
    .unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3, "one base layer and two new ones");
    assert_eq!(
        layers[1]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    let config_hex = &manifest["config"]["digest"].as_str().unwrap()["sha256:".len()..];
    let config: serde_json::Value = serde_json::from_slice(
        &std::fs::read(layout.join("blobs/sha256").join(config_hex)).unwrap(),
    )
    .unwrap();
    assert_eq!(
        config["created"], "1970-01-01T00:00:00Z",
        "SOURCE_DATE_EPOCH, 0 by default"
    );
    assert_eq!(
        config["config"]["ExposedPorts"],
        serde_json::json!({ "8080/tcp": {} })
    );
    assert_eq!(config["config"]["WorkingDir"], "/app");

    // Provenance next to the layout, its subject the manifest digest.
    let envelope: serde_json::Value = serde_json::from_slice(
        &std::fs::read(project.path("out-a/app-image.intoto.jsonl")).unwrap(),
    )
    .unwrap();
    use base64::Engine as _;
    let payload = base64::engine::general_purpose::STANDARD
        .decode(envelope["payload"].as_str().unwrap())
        .unwrap();
    let statement: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(statement["subject"][0]["name"], "app-image");
    assert_eq!(statement["subject"][0]["digest"]["sha256"], manifest_hex);

    // Building again into the same --out changes nothing.
    let again = project.build_report(&spec, &project.path("store-a"), &project.path("out-a"), &[]);
    assert_eq!(digest(&again), digest(&first));
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_loaded_image_runs_its_program() {
    let project = Project::new();
    let image = common::image::busybox_image().await.to_string();
    let spec = project.write_spec(&image, &image_spec(&image));
    let tag = format!("sealroom-test/oci-load:{}", std::process::id());
    let report = {
        let (project_dir, spec, store, out, tag) = (
            project.dir.path().to_path_buf(),
            spec.clone(),
            project.store(),
            project.out(),
            tag.clone(),
        );
        tokio::task::spawn_blocking(move || {
            let output = sealroom()
                .arg("build")
                .arg(&spec)
                .arg("--store")
                .arg(&store)
                .arg("--out")
                .arg(&out)
                .args(["--format", "json", "--load", "--tag", &tag])
                .current_dir(project_dir)
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap()
        })
        .await
        .unwrap()
    };
    assert_eq!(report["images"][0]["loaded"], tag.as_str());

    let docker = common::image::docker().await;
    let inspected = docker.inspect_image(&tag).await.unwrap();
    assert_eq!(
        inspected.id.as_deref(),
        report["images"][0]["config_digest"].as_str(),
        "the engine's id is the config digest"
    );
    let name = format!("sealroom-test-oci-run-{}", std::process::id());
    let created = docker
        .create_container(
            Some(CreateContainerOptions {
                name: Some(name.clone()),
                ..Default::default()
            }),
            bollard::models::ContainerCreateBody {
                image: Some(tag.clone()),
                network_disabled: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    docker
        .start_container(&created.id, None::<StartContainerOptions>)
        .await
        .unwrap();
    let mut wait = docker.wait_container(&created.id, None::<WaitContainerOptions>);
    while let Some(status) = wait.next().await {
        assert_eq!(status.unwrap().status_code, 0);
    }
    let mut logs = docker.logs(
        &created.id,
        Some(LogsOptions {
            stdout: true,
            stderr: true,
            ..Default::default()
        }),
    );
    let mut printed = String::new();
    while let Some(chunk) = logs.next().await {
        printed.push_str(&chunk.unwrap().to_string());
    }
    docker
        .remove_container(
            &created.id,
            Some(RemoveContainerOptions {
                force: true,
                ..Default::default()
            }),
        )
        .await
        .unwrap();
    docker
        .remove_image(&tag, None::<RemoveImageOptions>, None)
        .await
        .unwrap();
    assert_eq!(printed, "image says: hello from source\n");
}

#[test]
fn bad_image_tables_are_refused_with_a_location_before_anything_runs() {
    let project = Project::new();
    let image = format!("test/image@sha256:{}", "0".repeat(64));
    let cases = [
        (
            "[[image]]\nname = \"x\"\nbase = \"busybox:latest\"\n",
            "expected an image pinned by digest",
        ),
        (
            &format!(
                "[[image]]\nname = \"x\"\nbase = \"{image}\"\nlayers = [{{ step = \"nope\" }}]\n"
            ),
            "image `x` takes a layer from step `nope`, but there is no step with that name",
        ),
        (
            &format!(
                "[[image]]\nname = \"x\"\nbase = \"{image}\"\nlayers = [{{ step = \"src\" }}]\n"
            ),
            "names a source, not a step",
        ),
        (
            &format!(
                "[[image]]\nname = \"x\"\nbase = \"{image}\"\nlayers = [{{ source = \"src\", path = \"app\" }}]\n"
            ),
            "expected an absolute path in the image for `path`",
        ),
        (
            &format!("[[image]]\nname = \"x\"\nbase = \"{image}\"\nexpose = [\"http\"]\n"),
            "expected `<port>` or `<port>/tcp|udp|sctp` in `expose`",
        ),
        (
            &format!("[[image]]\nname = \"x\"\nbase = \"{image}\"\ncommand = [\"x\"]\n"),
            "unknown key `command`",
        ),
    ];
    for (table, expected) in cases {
        let spec = project.write_spec(&image, table);
        let assert = project.build(&spec).failure().code(1);
        let stderr = stderr_of(&assert);
        assert!(stderr.contains(expected), "{table}\n{stderr}");
        assert!(stderr.contains("sealroom.toml:"), "located: {stderr}");
        assert!(!project.out().exists(), "nothing written");
    }
}
