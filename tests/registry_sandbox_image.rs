//! `[sandbox] image` pinned by a registry reference and its manifest digest, the way Renovate
//! and `docker images --digests` write it: pulled into the store by the first build with no
//! such image in the engine, loaded into the engine from the store when a step needs it, never
//! pulled again (`--offline` works), recorded in the provenance with the manifest, the image id
//! and the registry. The image is made per test with a random marker, pushed to Debian's
//! `docker-registry` on 127.0.0.1, and removed from the engine before each build that must not
//! find it there.

mod common;

use std::path::Path;

use bollard::query_parameters::RemoveImageOptions;

use common::registry::Registry;
use common::{Project, sealroom};

/// An image over busybox holding `/app/marker` (the random `marker`), pushed to `registry` as
/// `repository`; returns (manifest digest, image id).
async fn pushed_image(registry: &Registry, repository: &str, marker: &str) -> (String, String) {
    let base = common::image::busybox_image().await.to_string();
    let project = Project::new();
    std::fs::write(project.path("src/marker"), format!("{marker}\n")).unwrap();
    let spec = project.write_spec(
        &base,
        "[[step]]\nname = \"noop\"\nrun = [\"true\"]\n\n[[image]]\nname = \"marked\"\nbase = \"BASE\"\nlayers = [{ source = \"src\", path = \"/app\" }]\n"
            .replace("BASE", &base)
            .as_str(),
    );
    let report = run_json(
        sealroom()
            .args(["--format", "json", "build"])
            .arg(&spec)
            .arg("--store")
            .arg(project.store())
            .arg("--out")
            .arg(project.out()),
    )
    .await;
    let image = &report["images"][0];
    let config = image["config_digest"].as_str().unwrap().to_string();
    let pushed = run_json(
        sealroom()
            .args(["--format", "json", "push"])
            .arg(project.out().join("marked"))
            .arg(format!("{}/{repository}", registry.host())),
    )
    .await;
    let manifest = pushed["manifest_digest"].as_str().unwrap().to_string();
    assert_eq!(image["manifest_digest"].as_str(), Some(manifest.as_str()));
    (manifest, config)
}

/// Runs `command` off the runtime's threads; its stdout as JSON, after checking it succeeded.
async fn run_json(command: &mut assert_cmd::Command) -> serde_json::Value {
    let mut command = std::mem::replace(command, sealroom());
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Runs `command` off the runtime's threads: (exit code, stdout, stderr).
async fn run(mut command: assert_cmd::Command) -> (i32, String, String) {
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Removes image `id` from the engine (with any containers of it); true when it is gone.
async fn drop_image(id: &str) -> bool {
    let docker = common::image::docker().await;
    let _ = docker
        .remove_image(
            id,
            Some(RemoveImageOptions {
                force: true,
                ..Default::default()
            }),
            None,
        )
        .await;
    docker.inspect_image(id).await.is_err()
}

async fn engine_has(id: &str) -> bool {
    common::image::docker()
        .await
        .inspect_image(id)
        .await
        .is_ok()
}

fn marker() -> String {
    format!(
        "marker-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

const PROBE: &str = r#"
[[step]]
name = "probe"
run = ["sh", "-c", "cat /app/marker > /out/marker.txt"]
artifacts = ["marker.txt"]
"#;

fn build_command(
    project: &Project,
    spec: &Path,
    out: &Path,
    extra: &[&str],
) -> assert_cmd::Command {
    let mut command = sealroom();
    command
        .arg("build")
        .arg(spec)
        .arg("--store")
        .arg(project.store())
        .arg("--out")
        .arg(out)
        .args(extra);
    command
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sandbox_image_pinned_by_manifest_digest_is_pulled_once_and_then_works_offline() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let marker = marker();
    let (manifest, image_id) = pushed_image(&registry, "test/sandbox", &marker).await;
    let reference = format!("{}/test/sandbox@{manifest}", registry.host());
    let project = Project::new();
    let spec = project.write_spec(&reference, PROBE);

    // First build: the engine does not have the image; it comes from the registry.
    assert!(
        drop_image(&image_id).await,
        "the test image stays in the engine"
    );
    let pulls_before = registry.requests().len();
    let (code, _, stderr) = run(build_command(&project, &spec, &project.out(), &[])).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        std::fs::read_to_string(project.out().join("marker.txt")).unwrap(),
        format!("{marker}\n")
    );
    let pulled = registry.requests()[pulls_before..].to_vec();
    assert!(
        pulled
            .iter()
            .any(|r| r.contains(&format!("/manifests/{manifest}"))),
        "{pulled:?}"
    );
    assert!(
        engine_has(&image_id).await,
        "the image was loaded for the step"
    );

    // The provenance names the manifest digest, the image id and where it came from.
    let line = std::fs::read_to_string(project.out().join("marker.txt.intoto.jsonl")).unwrap();
    let statement = common::statement_of(&line);
    let dependencies = &statement["predicate"]["buildDefinition"]["resolvedDependencies"];
    let image = dependencies
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "image")
        .unwrap();
    assert_eq!(
        image["digest"]["sha256"],
        image_id.trim_start_matches("sha256:")
    );
    let pulled_from = dependencies
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "image-manifest")
        .expect("the manifest is a resolved dependency");
    assert_eq!(
        pulled_from["digest"]["sha256"],
        manifest.trim_start_matches("sha256:")
    );
    assert_eq!(
        pulled_from["uri"],
        format!("oci://{}/test/sandbox@{manifest}", registry.host()).as_str()
    );
    assert_eq!(pulled_from["annotations"]["imageId"], image_id.as_str());
    assert_eq!(pulled_from["annotations"]["reference"], reference.as_str());

    // `reproduce` pulls the image into its own scratch store and gets the same digest.
    let mut reproduce = sealroom();
    reproduce
        .arg("reproduce")
        .arg(project.out().join("marker.txt.intoto.jsonl"))
        .arg("--source")
        .arg(project.path(""));
    let (code, _, stderr) = run(reproduce).await;
    assert_eq!(code, 0, "{stderr}");

    // `explain` knows the image by the id the store has for it: the step is cached.
    let mut explain = sealroom();
    explain
        .args(["--format", "json", "explain"])
        .arg(&spec)
        .arg("probe")
        .arg("--store")
        .arg(project.store());
    let (code, stdout, stderr) = run(explain).await;
    assert_eq!(code, 0, "{stderr}");
    let explained: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(explained["steps"][0]["status"], "cached", "{stdout}");

    // A cached build asks neither the registry nor the engine: the image stays out of it.
    assert!(drop_image(&image_id).await);
    let requests = registry.requests().len();
    let cached_out = project.path("out-cached");
    let (code, _, stderr) = run(build_command(&project, &spec, &cached_out, &["--offline"])).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        !engine_has(&image_id).await,
        "a cached build loaded the image"
    );
    assert_eq!(registry.requests().len(), requests);

    // Offline and uncached, the image not in the engine: loaded from the store, no request.
    let offline_out = project.path("out-offline");
    let (code, _, stderr) = run(build_command(
        &project,
        &spec,
        &offline_out,
        &["--offline", "--no-cache"],
    ))
    .await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        std::fs::read_to_string(offline_out.join("marker.txt")).unwrap(),
        format!("{marker}\n")
    );
    assert_eq!(
        registry.requests().len(),
        requests,
        "no registry request offline"
    );
    assert!(engine_has(&image_id).await);
    drop_image(&image_id).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registry_image_the_store_lacks_is_an_error_offline_and_a_wrong_digest_names_the_registry_words()
 {
    let Some(registry) = Registry::start() else {
        return;
    };
    let (manifest, image_id) = pushed_image(&registry, "test/offline", &marker()).await;
    let project = Project::new();
    let reference = format!("{}/test/offline@{manifest}", registry.host());
    let spec = project.write_spec(&reference, PROBE);
    assert!(drop_image(&image_id).await);

    let (code, _, stderr) = run(build_command(
        &project,
        &spec,
        &project.out(),
        &["--offline"],
    ))
    .await;
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "the manifest {manifest} of `{reference}` is not in the store"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("build once without --offline"), "{stderr}");
    assert!(!project.out().join("marker.txt").exists());

    // A digest the registry does not have: its own words, nothing built.
    let absent = format!("sha256:{}", "0".repeat(64));
    let spec = project.write_spec(&format!("{}/test/offline@{absent}", registry.host()), PROBE);
    let (code, _, stderr) = run(build_command(&project, &spec, &project.out(), &[])).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("MANIFEST_UNKNOWN") || stderr.contains("manifest unknown"),
        "{stderr}"
    );
    assert!(!project.out().join("marker.txt").exists());
}
