//! What a base image holds, read from the real engine (`ops::image_contents`,
//! `Engine::read_image_files`): the busybox test image has no dpkg status and no os-release; an
//! image made from busybox plus a hand-written dpkg status and an os-release behind a relative
//! symlink lists exactly its installed packages. A second read comes from the store and asks
//! the engine nothing, and no container is left behind on any path, an error included.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::symlink;
use std::path::Path;

use sealroom::image::RepositoryName;
use sealroom::ops::image_contents::image_contents;
use sealroom::sandbox::docker::{DockerEngine, READ_FILES_LABEL};
use sealroom::sandbox::fake::FakeEngine;
use sealroom::sandbox::{Engine, EngineError, MAX_IMAGE_FILE_BYTES};
use sealroom::sbom::image::{DebPackage, ImageContents, OsRelease};
use sealroom::store::Store;

/// The tests here look at what containers exist: one at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

const STATUS: &str = "\
Package: tzdata
Status: install ok installed
Priority: required
Section: localization
Architecture: all
Multi-Arch: foreign
Version: 2025b-0+deb12u2
Description: time zone and daylight-saving time data
 This package contains data required for the implementation of
 standard local time for many representative locations around the
 globe.

Package: adduser
Status: deinstall ok config-files
Architecture: all
Version: 3.134

Package: bsdutils
Status: install ok installed
Architecture: amd64
Source: util-linux (2.38.1-5+deb12u3)
Version: 1:2.38.1-5+deb12u3
";

const OS_RELEASE: &str =
    "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().expect("a runtime")
}

fn leftovers() -> Vec<String> {
    common::sealroom_containers_of_step(READ_FILES_LABEL)
}

/// Busybox, plus a dpkg status, `/usr/lib/os-release` with `/etc/os-release` a relative
/// symlink to it, a symlink that tries to climb out of the root, a symlink loop, and a file
/// one byte over the limit; imported once per test process as `sealroom-test/dpkg`. Its id.
fn dpkg_image() -> String {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        runtime().block_on(async { import_dpkg_image(&common::image::engine().await).await })
    })
    .clone()
}

async fn import_dpkg_image(engine: &DockerEngine) -> String {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    common::image::busybox_rootfs(root);
    let write = |path: &str, bytes: &[u8]| {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    };
    write("var/lib/dpkg/status", STATUS.as_bytes());
    write("usr/lib/os-release", OS_RELEASE.as_bytes());
    symlink("../usr/lib/os-release", root.join("etc/os-release")).unwrap();
    symlink(
        "../../../../../usr/lib/os-release",
        root.join("etc/climbing"),
    )
    .unwrap();
    symlink("loop", root.join("etc/loop")).unwrap();
    let big = std::fs::File::create(root.join("big")).unwrap();
    big.set_len(MAX_IMAGE_FILE_BYTES + 1).unwrap();
    let name = RepositoryName::parse("sealroom-test/dpkg").unwrap();
    sealroom::image::import(engine, root, &name)
        .await
        .unwrap_or_else(|error| panic!("cannot import the dpkg test image: {error}"))
        .image
        .digest
        .to_string()
}

fn open_store(dir: &Path) -> Store {
    Store::open(&dir.join("store")).unwrap()
}

#[test]
fn docker_busybox_holds_no_packages_and_no_os_release() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let image = common::busybox().digest.to_string();
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let contents = runtime().block_on(async {
        let engine = common::image::engine().await;
        image_contents(&engine, &store, &image).await.unwrap()
    });
    assert_eq!(
        contents,
        ImageContents {
            os: None,
            packages: Vec::new()
        }
    );
    assert_eq!(leftovers(), Vec::<String>::new());
}

#[test]
fn docker_an_image_with_a_dpkg_status_lists_its_installed_packages_once() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let runtime = runtime();
    let image = dpkg_image();
    let contents = runtime.block_on(async {
        let engine = common::image::engine().await;
        image_contents(&engine, &store, &image).await.unwrap()
    });
    let debian = OsRelease {
        id: "debian".to_string(),
        version_id: Some("12".to_string()),
        pretty_name: Some("Debian GNU/Linux 12 (bookworm)".to_string()),
    };
    assert_eq!(
        contents.os.as_ref(),
        Some(&debian),
        "read through the symlink"
    );
    assert_eq!(
        contents.packages,
        [
            DebPackage {
                name: "bsdutils".to_string(),
                version: "1:2.38.1-5+deb12u3".to_string(),
                architecture: "amd64".to_string(),
                source: Some("util-linux".to_string()),
                source_version: Some("2.38.1-5+deb12u3".to_string()),
            },
            DebPackage {
                name: "tzdata".to_string(),
                version: "2025b-0+deb12u2".to_string(),
                architecture: "all".to_string(),
                source: None,
                source_version: None,
            },
        ]
    );
    assert_eq!(
        contents.packages[0].purl(contents.os.as_ref()),
        "pkg:deb/debian/bsdutils@1:2.38.1-5%2Bdeb12u3?arch=amd64&distro=debian-12"
    );
    assert_eq!(leftovers(), Vec::<String>::new());

    // Warm: from the store, with an engine that would count (and fail) any read.
    let nothing = FakeEngine::new(|_| Ok(0));
    let again = runtime.block_on(image_contents(&nothing, &store, &image));
    assert_eq!(again.unwrap(), contents);
    assert_eq!(nothing.image_file_reads(), 0);
}

#[test]
fn docker_reading_files_follows_links_inside_the_image_and_leaves_no_container() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let image = dpkg_image();
    let runtime = runtime();
    let engine = runtime.block_on(common::image::engine());

    let files = runtime
        .block_on(engine.read_image_files(
            &image,
            &[
                "/etc/os-release",
                "/etc/climbing",
                "/etc",
                "/no/such/file",
                "/etc/passwd",
            ],
        ))
        .unwrap();
    let expected: BTreeMap<String, Vec<u8>> = [
        ("/etc/os-release", OS_RELEASE.as_bytes()),
        // `../` past the root stays at the root: the image's own file, never the host's.
        ("/etc/climbing", OS_RELEASE.as_bytes()),
        (
            "/etc/passwd",
            b"root:x:0:0:root:/root:/bin/sh\nbuilder:x:1000:1000:builder:/tmp:/bin/sh\n".as_slice(),
        ),
    ]
    .into_iter()
    .map(|(path, bytes)| (path.to_string(), bytes.to_vec()))
    .collect();
    assert_eq!(files, expected, "a directory and a missing path are absent");
    assert_eq!(leftovers(), Vec::<String>::new());

    // A link loop is an error naming the path: the engine's own (it resolves the path to stat
    // it, and refuses a loop), or sealroom's when the engine hands back each link.
    let error = runtime
        .block_on(engine.read_image_files(&image, &["/etc/passwd", "/etc/loop"]))
        .unwrap_err();
    let text = error.to_string();
    match &error {
        EngineError::ImageFileLinkLoop { path, .. } => assert_eq!(path, "/etc/loop"),
        EngineError::Refused { .. } => assert!(
            text.contains(&format!("reading `/etc/loop` of image {image}"))
                && text.contains("too many links"),
            "{text}"
        ),
        other => panic!("expected a link-loop error, found: {other}"),
    }
    assert_eq!(
        leftovers(),
        Vec::<String>::new(),
        "removed on the error path"
    );

    let error = runtime
        .block_on(engine.read_image_files(&image, &["/big"]))
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "`/big` in image {image} is larger than 67108864 bytes, the most sealroom reads of a file in an image"
        )
    );
    assert_eq!(
        leftovers(),
        Vec::<String>::new(),
        "removed on the error path"
    );
}
