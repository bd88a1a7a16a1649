//! Builds as people write them, with real Docker: `./configure`-style scripts and copied
//! binaries run from `/tmp` and from the scratch directory `/build`, where every step starts;
//! `cp -a` of an input gives a tree the step can build in; every materialized file (a source, an
//! unpacked fetch, an earlier step's output) has the one documented mtime, the same in every
//! store; an image whose own `/tmp` is 0755 still gives the step a writable `/tmp`; and the mount
//! options a step sees are the ones docs/sandbox.md gives.

mod common;
#[path = "common/http.rs"]
mod http;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::image::{busybox_rootfs, engine};
use common::{Project, busybox, stderr_of};
use http::{Reply, TestServer};
use sealroom::image::RepositoryName;
use sealroom::store::MATERIALIZED_MTIME;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The step's output file `name` as text, after a successful build.
fn output(project: &Project, name: &str) -> String {
    fs::read_to_string(project.out().join(name))
        .unwrap_or_else(|error| panic!("artifact {name}: {error}"))
}

#[test]
fn docker_configure_scripts_and_copied_binaries_run_from_tmp_and_build() {
    let project = Project::new();
    let spec = project.write_spec(
        &busybox().to_string(),
        r#"
[[step]]
name = "exec"
run = ["sh", "-c", '''
set -e
pwd > /out/pwd
for dir in /tmp/pkg /build/pkg; do
  mkdir -p $dir && cd $dir
  printf '#!/bin/sh\necho "configure ran in $(pwd)"\n' > configure
  chmod +x configure
  ./configure >> /out/ran
  # A copy of a binary, under a name busybox still answers to.
  cp /bin/busybox ./busybox-copy
  ./busybox-copy echo "copied binary ran in $dir" >> /out/ran
done
''']
artifacts = ["pwd", "ran"]
"#,
    );
    let assert = project.build(&spec);
    let stderr = stderr_of(&assert);
    assert.success();
    assert_eq!(output(&project, "pwd"), "/build\n", "{stderr}");
    assert_eq!(
        output(&project, "ran"),
        "configure ran in /tmp/pkg\ncopied binary ran in /tmp/pkg\n\
         configure ran in /build/pkg\ncopied binary ran in /build/pkg\n"
    );
}

#[test]
fn docker_a_copy_of_an_input_is_writable_and_keeps_only_the_execute_bits() {
    let project = Project::new();
    let src = project.path("src");
    fs::create_dir_all(src.join("sub/deeper")).unwrap();
    let write = |path: &str, text: &str, mode: u32| {
        fs::write(src.join(path), text).unwrap();
        fs::set_permissions(src.join(path), fs::Permissions::from_mode(mode)).unwrap();
    };
    write("configure", "#!/bin/sh\necho configured\n", 0o700);
    write("sub/file.c", "int main(void) { return 0; }\n", 0o600);
    write("sub/deeper/x.h", "#define X 1\n", 0o640);
    fs::set_permissions(src.join("sub"), fs::Permissions::from_mode(0o700)).unwrap();
    let spec = project.write_spec(
        &busybox().to_string(),
        r#"
[[step]]
name = "copy"
inputs = ["src"]
run = ["sh", "-c", '''
set -e
for flags in -a -Rp; do
  rm -rf /build/copy
  cp $flags /inputs/src /build/copy
  cd /build/copy
  echo new > new-file
  echo more >> sub/file.c
  mkdir sub/deeper/objdir && echo obj > sub/deeper/objdir/x.o
  rm sub/deeper/x.h
  ./configure >> /out/log
  stat -c '%a %n' configure greeting.txt sub sub/file.c >> /out/log
  cd /
done
for attempt in "echo x > /inputs/src/greeting.txt" "touch /inputs/src/new" "chmod u+w /inputs/src/greeting.txt" "rm /inputs/src/configure"; do
  if sh -c "$attempt" 2>/dev/null; then echo "a step could: $attempt" >> /out/log; fi
done
''']
artifacts = ["log"]
"#,
    );
    project.build(&spec).success();
    let once = "configured\n755 configure\n644 greeting.txt\n755 sub\n644 sub/file.c\n";
    assert_eq!(output(&project, "log"), once.repeat(2));
}

#[test]
fn docker_every_materialized_file_has_the_documented_mtime_in_every_store() {
    // Host times that disagree, as a checkout or a release tarball's own times would.
    let project = Project::new();
    let src = project.path("src");
    fs::create_dir_all(src.join("lib")).unwrap();
    for (name, seconds) in [
        ("configure.ac", 1_500_000_000),
        ("Makefile.in", 1_000_000_000),
        ("lib/a.c", 1_700_000_000),
    ] {
        fs::write(src.join(name), name).unwrap();
        let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(seconds);
        fs::File::options()
            .write(true)
            .open(src.join(name))
            .unwrap()
            .set_modified(time)
            .unwrap();
    }
    let archive = {
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::default(),
        ));
        for (name, mtime) in [
            ("rel-1.0/configure", 1_200_000_000),
            ("rel-1.0/src/main.c", 1_400_000_000),
        ] {
            let mut header = tar::Header::new_gnu();
            header.set_size(name.len() as u64);
            header.set_mode(0o755);
            header.set_mtime(mtime);
            header.set_cksum();
            builder
                .append_data(&mut header, name, name.as_bytes())
                .unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap()
    };
    let server = TestServer::start();
    server.route(
        "/rel-1.0.tar.gz",
        std::iter::repeat_n(Reply::ok(archive.clone()), 2),
    );
    let sha256 = sealroom::digest::BlobDigest::of(&archive).hex();
    let steps = format!(
        r#"
[[fetch]]
name = "rel"
url = "{url}"
sha256 = "{sha256}"
unpack = true
strip_components = 1

[[step]]
name = "gen"
run = ["sh", "-c", "mkdir -p /out/sub && echo a > /out/a && echo b > /out/sub/b && ln -s a /out/link"]

[[step]]
name = "probe"
inputs = ["src", "rel", "gen"]
run = ["sh", "-c", "find /inputs -mindepth 1 | sort | while read -r p; do stat -c '%Y %n' \"$p\"; done > /out/mtimes"]
artifacts = ["mtimes"]
"#,
        url = server.url("/rel-1.0.tar.gz"),
    );
    let spec = project.write_spec(&busybox().to_string(), &steps);
    project.build(&spec).success();
    let first = output(&project, "mtimes");

    // A second store, later: the same times, to the second (stat -c %Y) and in every entry.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let other = project.path("other-store");
    common::sealroom()
        .arg("build")
        .arg(&spec)
        .arg("--store")
        .arg(&other)
        .arg("--out")
        .arg(project.path("other-out"))
        .assert()
        .success();
    let second = fs::read_to_string(project.path("other-out/mtimes")).unwrap();
    assert_eq!(first, second);

    let mut paths = Vec::new();
    for line in first.lines() {
        let (seconds, path) = line.split_once(' ').unwrap();
        assert_eq!(seconds, MATERIALIZED_MTIME.to_string(), "{path}");
        paths.push(path);
    }
    for expected in [
        "/inputs/src",
        "/inputs/src/lib",
        "/inputs/src/lib/a.c",
        "/inputs/rel",
        "/inputs/rel/src/main.c",
        "/inputs/gen/sub/b",
        "/inputs/gen/link",
    ] {
        assert!(paths.contains(&expected), "{expected} in {paths:?}");
    }
}

#[tokio::test]
async fn docker_an_image_whose_tmp_is_0755_still_gives_a_writable_tmp() {
    let rootfs = tempfile::tempdir().unwrap();
    busybox_rootfs(rootfs.path());
    fs::set_permissions(rootfs.path().join("tmp"), fs::Permissions::from_mode(0o755)).unwrap();
    let name = RepositoryName::parse("sealroom-test/tmp-0755").unwrap();
    let image = sealroom::image::import(&engine().await, rootfs.path(), &name)
        .await
        .unwrap()
        .image;
    let project = Project::new();
    let spec = project.write_spec(
        &image.to_string(),
        r#"
[[step]]
name = "tmp"
run = ["sh", "-c", "stat -c '%a' /tmp > /out/tmp && echo written > /tmp/probe && mkdir /tmp/d && cat /tmp/probe >> /out/tmp"]
artifacts = ["tmp"]
"#,
    );
    let result = tokio::task::spawn_blocking(move || {
        let assert = project.build(&spec);
        let stderr = stderr_of(&assert);
        (assert.get_output().status.success(), stderr, project)
    })
    .await
    .unwrap();
    let (succeeded, stderr, project) = result;
    assert!(succeeded, "{stderr}");
    assert_eq!(output(&project, "tmp"), "1777\nwritten\n");
}

/// The mount options docs/sandbox.md gives for `path` (as the docs name it, e.g.
/// `/inputs/<name>`): the option list (`rw,nosuid,…`) in the last cell of the first table row
/// that starts with it.
fn documented_options(path: &str) -> Vec<String> {
    let doc = fs::read_to_string(Path::new(ROOT).join("docs/sandbox.md")).unwrap();
    let row = doc
        .lines()
        .find(|line| line.starts_with(&format!("| `{path}` |")))
        .unwrap_or_else(|| panic!("docs/sandbox.md has no table row for `{path}`"));
    let options = row
        .trim_end_matches(|c: char| c == '|' || c.is_whitespace())
        .rsplit('|')
        .next()
        .unwrap()
        .trim()
        .trim_matches('`');
    options.split(',').map(str::to_string).collect()
}

#[test]
fn docker_mounts_are_as_docs_sandbox_md_says_and_scratch_is_bounded() {
    let project = Project::new();
    let spec = project.write_spec(
        &busybox().to_string(),
        r#"
[[step]]
name = "mounts"
inputs = ["src"]
limits = { scratch = "4MiB" }
run = ["sh", "-c", '''
cat /proc/self/mountinfo > /out/mountinfo
for dir in /tmp /build; do
  if dd if=/dev/zero of=$dir/big bs=1M count=8 2>/dev/null; then echo "$dir took 8MiB" >> /out/full; fi
  rm -f $dir/big
done
touch /out/full
''']
artifacts = ["mountinfo", "full"]
"#,
    );
    project.build(&spec).success();
    assert_eq!(output(&project, "full"), "", "a 4MiB scratch took 8MiB");

    // mount point -> (per-mount options, file system type, super-block options)
    let mut mounts = BTreeMap::new();
    for line in output(&project, "mountinfo").lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let separator = fields.iter().position(|field| *field == "-").unwrap();
        mounts.insert(
            fields[4].to_string(),
            (
                fields[5].split(',').map(str::to_string).collect::<Vec<_>>(),
                fields[separator + 1].to_string(),
                fields[separator + 3].to_string(),
            ),
        );
    }
    // Nothing else is mounted: no host path but the inputs and `/out`, no engine socket. What
    // the engine always adds is its own: the root, /proc, /dev, /sys and three files in /etc.
    let engine_own = |path: &str| {
        path == "/"
            || ["/proc", "/dev", "/sys"]
                .iter()
                .any(|top| path == *top || path.starts_with(&format!("{top}/")))
            || ["/etc/hostname", "/etc/hosts", "/etc/resolv.conf"].contains(&path)
    };
    let unexpected: Vec<&String> = mounts
        .keys()
        .filter(|path| !engine_own(path))
        .filter(|path| !["/tmp", "/build", "/out", "/inputs/src"].contains(&path.as_str()))
        .collect();
    assert!(unexpected.is_empty(), "unexpected mounts: {unexpected:?}");

    const FLAGS: [&str; 5] = ["rw", "ro", "nosuid", "nodev", "noexec"];
    let flags = |options: &[String]| -> Vec<String> {
        let mut flags: Vec<String> = options
            .iter()
            .filter(|option| FLAGS.contains(&option.as_str()))
            .cloned()
            .collect();
        flags.sort();
        flags
    };
    for path in ["/tmp", "/build", "/inputs/src", "/out"] {
        let (options, fs_type, super_options) = mounts
            .get(path)
            .unwrap_or_else(|| panic!("no mount at {path}: {mounts:?}"));
        let documented = documented_options(if path == "/inputs/src" {
            "/inputs/<name>"
        } else {
            path
        });
        assert_eq!(
            flags(options),
            flags(&documented),
            "{path}: mounted {options:?}, documented {documented:?}"
        );
        if path == "/tmp" || path == "/build" {
            assert_eq!(fs_type, "tmpfs", "{path}");
            assert!(
                super_options.contains("size=4096k"),
                "{path} is sized by limits.scratch: {super_options}"
            );
            assert!(!options.contains(&"noexec".to_string()), "{path}");
        }
    }
}
