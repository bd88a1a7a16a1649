//! `sealroom push` against a real registry (Debian's `docker-registry`, started on a free
//! 127.0.0.1 port and killed after): the pushed image pulls back through the engine with the
//! same manifest digest, a second push uploads nothing, and an `[[image]]` whose base is that
//! registry reference builds from it. With CI=true a missing registry binary fails the test.

mod common;

use bollard::query_parameters::{CreateImageOptions, RemoveImageOptions};
use futures_util::StreamExt;

use common::registry::Registry;
use common::{Project, sealroom};

const STEP: &str = r#"
[[step]]
name = "app"
run = ["sh", "-c", "mkdir -p /out/bin && printf '#!/bin/sh\\necho pushed\\n' > /out/bin/app && chmod 755 /out/bin/app"]
"#;

fn push(layout: &std::path::Path, reference: &str) -> serde_json::Value {
    let output = sealroom()
        .args(["--format", "json", "push"])
        .arg(layout)
        .arg(reference)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn registry_pushed_image_pulls_back_with_the_same_digest() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let base = common::image::busybox_image().await.to_string();
    let project = Project::new();
    let spec = project.write_spec(
        &base,
        &format!("{STEP}\n[[image]]\nname = \"pushed\"\nbase = \"{base}\"\nlayers = [{{ step = \"app\", path = \"/app\" }}]\ncmd = [\"/app/bin/app\"]\n"),
    );
    let (spec_for_build, store, out) = (spec.clone(), project.store(), project.out());
    tokio::task::spawn_blocking(move || {
        sealroom()
            .arg("build")
            .arg(&spec_for_build)
            .arg("--store")
            .arg(&store)
            .arg("--out")
            .arg(&out)
            .assert()
            .success();
    })
    .await
    .unwrap();
    let layout = project.out().join("pushed");
    let repository = format!("127.0.0.1:{}/sealroom-test/pushed", registry.port);
    let (layout_for_push, tagged) = (layout.clone(), format!("{repository}:v1"));
    let first = tokio::task::spawn_blocking(move || push(&layout_for_push, &tagged))
        .await
        .unwrap();
    let digest = first["manifest_digest"].as_str().unwrap().to_string();
    assert_eq!(
        first["reference"],
        format!("{repository}@{digest}").as_str()
    );
    assert_eq!(first["uploaded"], 3, "config, base layer, new layer");
    let (layout_for_push, plain) = (layout.clone(), repository.clone());
    let second = tokio::task::spawn_blocking(move || push(&layout_for_push, &plain))
        .await
        .unwrap();
    assert_eq!(second["uploaded"], 0, "every blob is there already");

    // Pull it back by digest through the engine.
    let docker = common::image::docker().await;
    let pinned = format!("{repository}@{digest}");
    let mut pull = docker.create_image(
        Some(CreateImageOptions {
            from_image: Some(pinned.clone()),
            ..Default::default()
        }),
        None,
        None,
    );
    while let Some(progress) = pull.next().await {
        progress.unwrap();
    }
    let inspected = docker.inspect_image(&pinned).await.unwrap();
    let repo_digests = inspected.repo_digests.unwrap_or_default();
    docker
        .remove_image(&pinned, None::<RemoveImageOptions>, None)
        .await
        .unwrap();
    assert!(repo_digests.contains(&pinned), "{repo_digests:?}");

    // An image whose base is the pushed one, pulled by manifest digest into a fresh store.
    let derived = Project::new();
    let spec = derived.write_spec(
        &base,
        &format!("{STEP}\n[[image]]\nname = \"derived\"\nbase = \"{pinned}\"\nlayers = [{{ step = \"app\", path = \"/more\" }}]\n"),
    );
    let (store, out) = (derived.store(), derived.out());
    let report: serde_json::Value = tokio::task::spawn_blocking(move || {
        let output = sealroom()
            .args(["--format", "json", "build"])
            .arg(&spec)
            .arg("--store")
            .arg(&store)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    })
    .await
    .unwrap();
    let layers = report["images"][0]["layers"].as_array().unwrap();
    assert_eq!(
        layers.len(),
        3,
        "two from the pushed image, one new: {layers:?}"
    );
    drop(registry);
}
