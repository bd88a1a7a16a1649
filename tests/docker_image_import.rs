//! `sealroom image import`: the same tree gives the same image id, whatever the host says about
//! times and owners and whether the tree comes as a directory or a tar; any change to the
//! content gives another id; bad input is refused with a message that says what was wrong.
//!
//! Tests whose names say "docker" drive the real engine; the others only build the image on disk
//! (`sealroom::image::build`), which is where determinism is decided.

mod common {
    pub mod image;
}

use std::fs::{self, File, FileTimes};
use std::io::Write;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::time::{Duration, SystemTime};

use assert_cmd::Command;
use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{
    CreateContainerOptions, RemoveContainerOptions, StartContainerOptions, WaitContainerOptions,
};
use futures_util::StreamExt;
use sealroom::digest::ImageDigest;
use sealroom::error::Failure;
use sealroom::image::{self, ImageError, RepositoryName};
use sealroom::sandbox::{EngineError, require_image};
use sealroom::spec::PinnedImage;

use common::image::{busybox_image, busybox_rootfs, docker, engine};

fn digest_of(rootfs: &Path) -> ImageDigest {
    image::build(rootfs)
        .unwrap_or_else(|error| panic!("building the image of {}: {error}", rootfs.display()))
        .digest
}

/// `sealroom image import ROOTFS --name NAME`, run to its end.
fn cli_import(rootfs: &Path, name: &str) -> std::process::Output {
    Command::cargo_bin("sealroom")
        .unwrap()
        .args(["image", "import"])
        .arg(rootfs)
        .args(["--name", name])
        .output()
        .unwrap()
}

fn busybox_tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    busybox_rootfs(dir.path());
    dir
}

/// A tar of `root` made with the tar crate's host-metadata copy (`append_dir_all`), then with
/// every header's owner, names and time changed: what a tar from another machine looks like.
fn tar_of(root: &Path, tar_path: &Path) {
    let file = File::create(tar_path).unwrap();
    let mut builder = tar::Builder::new(file);
    builder.follow_symlinks(false);
    let mut paths: Vec<_> = walkdir::WalkDir::new(root)
        .min_depth(1)
        .into_iter()
        .map(|entry| entry.unwrap().into_path())
        .collect();
    // Reverse order: the import must sort, whatever order the tar has.
    paths.sort();
    paths.reverse();
    for path in paths {
        let relative = Path::new("./").join(path.strip_prefix(root).unwrap());
        let metadata = fs::symlink_metadata(&path).unwrap();
        let mut header = tar::Header::new_ustar();
        header.set_metadata(&metadata);
        header.set_uid(4242);
        header.set_gid(4343);
        header.set_username("alice").unwrap();
        header.set_groupname("staff").unwrap();
        header.set_mtime(1_234_567_890);
        if metadata.file_type().is_symlink() {
            builder
                .append_link(&mut header, &relative, fs::read_link(&path).unwrap())
                .unwrap();
        } else if metadata.is_dir() || !metadata.is_file() {
            // Directories, and device nodes (whose header carries their numbers).
            header.set_size(0);
            builder
                .append_data(&mut header, &relative, std::io::empty())
                .unwrap();
        } else {
            builder
                .append_data(&mut header, &relative, File::open(&path).unwrap())
                .unwrap();
        }
    }
    builder.finish().unwrap();
}

#[test]
fn the_same_directory_gives_the_same_digest() {
    let one = busybox_tree();
    let two = busybox_tree();
    assert_eq!(digest_of(one.path()), digest_of(one.path()));
    assert_eq!(digest_of(one.path()), digest_of(two.path()));
}

#[test]
fn one_changed_byte_gives_another_digest() {
    let dir = busybox_tree();
    let before = digest_of(dir.path());
    let passwd = dir.path().join("etc/passwd");
    let mut text = fs::read(&passwd).unwrap();
    text[0] = b'R';
    fs::write(&passwd, text).unwrap();
    assert_ne!(before, digest_of(dir.path()));
}

#[test]
fn a_changed_mode_or_symlink_target_gives_another_digest() {
    let dir = busybox_tree();
    let before = digest_of(dir.path());
    fs::set_permissions(
        dir.path().join("etc/passwd"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let after_mode = digest_of(dir.path());
    assert_ne!(before, after_mode);
    fs::remove_file(dir.path().join("bin/sh")).unwrap();
    symlink("/bin/busybox", dir.path().join("bin/sh")).unwrap();
    assert_ne!(after_mode, digest_of(dir.path()));
}

#[test]
fn host_times_owners_and_setuid_bits_do_not_change_the_digest() {
    let dir = busybox_tree();
    let before = digest_of(dir.path());
    let past = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    for path in ["etc/passwd", "bin/busybox", "etc", "out"] {
        let file = File::options()
            .read(true)
            .open(dir.path().join(path))
            .unwrap();
        file.set_times(FileTimes::new().set_modified(past).set_accessed(past))
            .unwrap();
    }
    // Changing the owner needs root; as any other user the chown fails and the tar test
    // (`a_tar_gives_the_same_digest_as_its_directory`) covers owners.
    let _ = std::os::unix::fs::chown(dir.path().join("etc/passwd"), Some(4242), Some(4242));
    let busybox = dir.path().join("bin/busybox");
    fs::set_permissions(&busybox, fs::Permissions::from_mode(0o6755)).unwrap();
    assert_eq!(before, digest_of(dir.path()));
}

#[test]
fn hard_links_are_stored_as_copies() {
    let linked = busybox_tree();
    fs::hard_link(
        linked.path().join("etc/passwd"),
        linked.path().join("etc/passwd.copy"),
    )
    .unwrap();
    let copied = busybox_tree();
    fs::copy(
        copied.path().join("etc/passwd"),
        copied.path().join("etc/passwd.copy"),
    )
    .unwrap();
    fs::set_permissions(
        copied.path().join("etc/passwd.copy"),
        fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    assert_eq!(digest_of(linked.path()), digest_of(copied.path()));
}

#[test]
fn a_tar_gives_the_same_digest_as_its_directory() {
    let dir = busybox_tree();
    let tars = tempfile::tempdir().unwrap();
    let plain = tars.path().join("rootfs.tar");
    tar_of(dir.path(), &plain);
    let gzip = tars.path().join("rootfs.tar.gz");
    let mut encoder =
        flate2::write::GzEncoder::new(File::create(&gzip).unwrap(), flate2::Compression::fast());
    std::io::copy(&mut File::open(&plain).unwrap(), &mut encoder).unwrap();
    encoder.finish().unwrap().flush().unwrap();

    let expected = digest_of(dir.path());
    assert_eq!(digest_of(&plain), expected, "plain tar");
    assert_eq!(digest_of(&gzip), expected, "gzip tar");
}

#[test]
fn special_files_are_refused() {
    let dir = busybox_tree();
    let fifo = dir.path().join("tmp/pipe");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success(), "mkfifo failed");
    let error = image::build(dir.path())
        .err()
        .expect("a named pipe is refused");
    assert!(matches!(error, ImageError::SpecialFile { .. }), "{error:?}");
    assert!(error.to_string().contains("`tmp/pipe`"), "{error}");
    assert!(error.to_string().contains("is a named pipe"), "{error}");
    assert_eq!(error.exit_code().code(), 1);
}

/// `mknod PATH c|b MAJOR MINOR` (the tests run as root, as debootstrap does).
fn mknod(path: &Path, kind: &str, major: u32, minor: u32) {
    let status = std::process::Command::new("mknod")
        .arg(path)
        .arg(kind)
        .arg(major.to_string())
        .arg(minor.to_string())
        .status()
        .unwrap();
    assert!(status.success(), "mknod {} failed", path.display());
}

/// The busybox tree with a `/dev` as debootstrap leaves it: device nodes, `pts/`, an `fd` link.
fn tree_with_dev_nodes() -> tempfile::TempDir {
    let dir = busybox_tree();
    let dev = dir.path().join("dev");
    fs::create_dir_all(dev.join("pts")).unwrap();
    symlink("/proc/self/fd", dev.join("fd")).unwrap();
    mknod(&dev.join("null"), "c", 1, 3);
    mknod(&dev.join("zero"), "c", 1, 5);
    mknod(&dev.join("loop0"), "b", 7, 0);
    dir
}

/// The same tree with its device nodes removed by hand.
fn without_devices(dir: &Path) -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", dir.display()))
        .arg(copy.path())
        .status()
        .unwrap();
    assert!(status.success());
    for node in ["null", "zero", "loop0"] {
        fs::remove_file(copy.path().join("dev").join(node)).unwrap();
    }
    copy
}

#[test]
fn device_nodes_under_dev_are_left_out_and_counted() {
    let dir = tree_with_dev_nodes();
    let built = image::build(dir.path()).unwrap();
    assert_eq!(built.dropped_devices, 3);
    let bare = without_devices(dir.path());
    assert_eq!(
        built.digest,
        digest_of(bare.path()),
        "the image is that of the tree without the nodes"
    );

    let tar_path = dir.path().with_extension("tar");
    tar_of(dir.path(), &tar_path);
    let from_tar = image::build(&tar_path).unwrap();
    fs::remove_file(&tar_path).unwrap();
    assert_eq!(from_tar.dropped_devices, 3);
    assert_eq!(from_tar.digest, built.digest);
}

#[test]
fn a_device_outside_dev_is_still_refused() {
    let dir = busybox_tree();
    fs::create_dir(dir.path().join("opt")).unwrap();
    mknod(&dir.path().join("opt/null"), "c", 1, 3);
    let error = image::build(dir.path()).err().expect("refused");
    assert_eq!(
        error.to_string(),
        format!(
            "`opt/null` in `{}` is a character device; an image holds only regular files, directories and symlinks\n  hint: remove it (device nodes are left out only under /dev, where the engine provides its own)",
            dir.path().display()
        )
    );

    // In a tar too, and a `dev` deeper down is not `/dev`.
    let tar_dir = tempfile::tempdir().unwrap();
    let tar_path = tar_dir.path().join("dev.tar");
    let mut builder = tar::Builder::new(File::create(&tar_path).unwrap());
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Char);
    header.set_device_major(1).unwrap();
    header.set_device_minor(3).unwrap();
    header.set_size(0);
    header.set_mode(0o666);
    builder
        .append_data(&mut header, "usr/dev/null", std::io::empty())
        .unwrap();
    builder.finish().unwrap();
    drop(builder);
    let error = image::build(&tar_path).err().expect("a device is refused");
    assert_eq!(
        error.to_string().lines().next().unwrap(),
        format!(
            "`usr/dev/null` in `{}` is a character device; an image holds only regular files, directories and symlinks",
            tar_path.display()
        )
    );
}

#[test]
fn a_file_that_is_no_tar_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rootfs.txt");
    fs::write(&path, "not a tar").unwrap();
    let error = image::build(&path).err().expect("refused");
    assert_eq!(
        error.to_string(),
        format!(
            "`{}` is neither a directory nor a tar file (plain or gzip)",
            path.display()
        )
    );
}

#[test]
fn cli_refuses_a_missing_rootfs_with_exit_1() {
    let output = cli_import(Path::new("/nonexistent/rootfs"), "sealroom-test/x");
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    assert_eq!(
        String::from_utf8_lossy(&output.stderr).trim_end(),
        "error: root filesystem `/nonexistent/rootfs` does not exist"
    );
}

#[test]
fn cli_refuses_invalid_names_with_exit_1() {
    let dir = busybox_tree();
    for (name, reason) in [
        (
            "Sealroom/busybox",
            "it must be lower-case, found `S` in `Sealroom`",
        ),
        (
            "sealroom/busybox:1.0",
            "it contains a tag; the tag is always `latest`",
        ),
    ] {
        let output = cli_import(dir.path(), name);
        assert_eq!(output.status.code(), Some(1), "{name}");
        assert_eq!(
            String::from_utf8_lossy(&output.stderr).trim_end(),
            format!("error: invalid image name `{name}`: {reason}")
        );
    }
}

#[tokio::test]
async fn docker_import_twice_under_two_names_gives_one_digest() {
    let dir = busybox_tree();
    let engine = engine().await;
    let first = image::import(
        &engine,
        dir.path(),
        &RepositoryName::parse("sealroom-test/twice-a").unwrap(),
    )
    .await
    .unwrap()
    .image;
    let second = image::import(
        &engine,
        dir.path(),
        &RepositoryName::parse("sealroom-test/twice-b").unwrap(),
    )
    .await
    .unwrap()
    .image;
    assert_eq!(first.digest, second.digest);
    assert_eq!(first.digest, digest_of(dir.path()));
    assert_eq!(
        second.to_string(),
        format!("sealroom-test/twice-b@{}", first.digest)
    );
    // The engine knows it by the config digest, under both names.
    for name in [
        "sealroom-test/twice-a:latest",
        "sealroom-test/twice-b:latest",
    ] {
        let inspected = docker().await.inspect_image(name).await.unwrap();
        assert_eq!(
            inspected.id.as_deref(),
            Some(first.digest.to_string().as_str())
        );
    }
}

#[test]
fn docker_cli_prints_the_pinned_reference() {
    let dir = busybox_tree();
    let output = cli_import(dir.path(), "sealroom-test/cli");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        format!("sealroom-test/cli@{}\n", digest_of(dir.path()))
    );
}

#[test]
fn docker_cli_imports_a_tree_with_dev_nodes_and_says_how_many_it_left_out() {
    let dir = tree_with_dev_nodes();
    let output = cli_import(dir.path(), "sealroom-test/devnodes");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(
        stderr,
        "note: left out 3 device nodes under /dev (the engine gives every container its own /dev)\n"
    );
    let bare = without_devices(dir.path());
    let digest = digest_of(bare.path());
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        format!("sealroom-test/devnodes@{digest}\n")
    );
    // What the engine holds has no device node: `docker export` of a container made from it.
    let name = format!("sealroom-test-devnodes-{}", std::process::id());
    let created = std::process::Command::new("docker")
        .args(["create", "--name", &name, "--network", "none"])
        .arg(digest.to_string())
        .arg("true")
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let listing = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("docker export {name} | tar -tvf -"))
        .output()
        .unwrap();
    let _ = std::process::Command::new("docker")
        .args(["rm", "-f", &name])
        .output();
    assert!(listing.status.success());
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(listing.contains("bin/busybox"), "{listing}");
    let devices: Vec<&str> = listing
        .lines()
        .filter(|line| line.starts_with('c') || line.starts_with('b'))
        .collect();
    assert!(devices.is_empty(), "device nodes in the image: {devices:?}");
}

#[tokio::test]
async fn docker_the_imported_image_runs() {
    let image = busybox_image().await;
    require_image(&engine().await, &image).await.unwrap();
    let docker = docker().await;
    let body = ContainerCreateBody {
        image: Some(image.digest.to_string()),
        cmd: Some(vec!["/bin/busybox".into(), "true".into()]),
        user: Some("1000:1000".into()),
        network_disabled: Some(true),
        ..Default::default()
    };
    let created = docker
        .create_container(None::<CreateContainerOptions>, body)
        .await
        .unwrap();
    let run = async {
        docker
            .start_container(&created.id, None::<StartContainerOptions>)
            .await?;
        let mut waits = docker.wait_container(&created.id, None::<WaitContainerOptions>);
        waits.next().await.expect("one wait response")
    }
    .await;
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
    assert_eq!(run.unwrap().status_code, 0);
}

#[tokio::test]
async fn docker_require_image_names_a_missing_image() {
    let missing = PinnedImage {
        name: "sealroom-test/missing".into(),
        digest: ImageDigest::of(b"no such config"),
    };
    let error = require_image(&engine().await, &missing).await.unwrap_err();
    assert!(
        matches!(error, EngineError::ImageMissing { .. }),
        "{error:?}"
    );
    assert!(
        error.to_string().starts_with(&format!(
            "base image `sealroom-test/missing@{}` is not in the container engine",
            missing.digest
        )),
        "{error}"
    );
    assert_eq!(error.exit_code().code(), 1);
}

#[test]
fn cli_reports_an_unreachable_engine_with_exit_70() {
    let dir = busybox_tree();
    let output = Command::cargo_bin("sealroom")
        .unwrap()
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .args(["image", "import"])
        .arg(dir.path())
        .args(["--name", "sealroom-test/unreachable"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(70));
    assert!(output.stdout.is_empty());
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .starts_with("error: cannot reach the container engine: "),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
