//! A fixed-output fetch's `/out` is read once, by descriptor, and what was checked against the
//! pin is what is stored (issue [M], review item 1). Real Docker: a host-network fetch passes a
//! descriptor of its `/out` over an abstract Unix socket to this test, which then changes `/out`
//! through it after the container is gone, while sealroom reads it.

mod common;

use std::fs;
use std::io::{IoSliceMut, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};
use std::path::Path;
use std::process::{Child, Command};

use common::Project;
use rustix::fs::{Mode, OFlags, RenameFlags};
use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
use sealroom::image::RepositoryName;
use sealroom::spec::PinnedImage;

/// The busybox image with `/bin/fdpass` (tests/fixtures/fdpass.c, built static with the host's
/// C compiler), imported once per test process as `sealroom-test/fdpass`.
fn fdpass_image() -> PinnedImage {
    static IMAGE: std::sync::OnceLock<PinnedImage> = std::sync::OnceLock::new();
    IMAGE
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            common::image::busybox_rootfs(dir.path());
            let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fdpass.c");
            let built = Command::new("cc")
                .args(["-static", "-O2", "-o"])
                .arg(dir.path().join("bin/fdpass"))
                .arg(&source)
                .status()
                .unwrap_or_else(|error| {
                    panic!("cannot run `cc` to build {}: {error}\n  hint: apt-get install -y gcc libc6-dev", source.display())
                });
            assert!(built.success(), "`cc -static` failed on {}", source.display());
            tokio::runtime::Runtime::new().unwrap().block_on(async {
                let engine = common::image::engine().await;
                let name = RepositoryName::parse("sealroom-test/fdpass").unwrap();
                sealroom::image::import(&engine, dir.path(), &name)
                    .await
                    .unwrap_or_else(|error| panic!("cannot import the fdpass test image: {error}"))
                    .image
            })
        })
        .clone()
}

/// What a build needs on its command line for a spec's `network = "host"`: the opt-in flag
/// once sealroom has one (engineer `net` adds `--allow-host-network`), else nothing.
fn host_network_flags() -> Vec<String> {
    let help = common::sealroom()
        .args(["build", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    ["--allow-host-network"]
        .into_iter()
        .filter(|flag| help.contains(flag))
        .map(String::from)
        .collect()
}

/// The tree digest of a directory holding `d/f` = "pinned\n", as the fetch writes it.
fn pinned_tree(project: &Project) -> String {
    let reference = project.path("reference");
    fs::create_dir_all(reference.join("d")).unwrap();
    fs::write(reference.join("d/f"), "pinned\n").unwrap();
    let store = sealroom::store::Store::open(&project.path("reference-store")).unwrap();
    store.add_tree(&reference, &|_| false).unwrap().to_string()
}

/// Every regular file under `dir` whose content holds `needle`.
fn files_holding(dir: &Path, needle: &[u8]) -> Vec<String> {
    walkdir::WalkDir::new(dir)
        .follow_links(false)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|entry| entry.file_type().is_file())
        .filter(|entry| {
            fs::read(entry.path())
                .map(|bytes| bytes.windows(needle.len()).any(|window| window == needle))
                .unwrap_or(false)
        })
        .map(|entry| entry.path().display().to_string())
        .collect()
}

/// Waits for the fetch's descriptor of `/out` on `listener`; `None` if the build ended first.
fn receive_out_descriptor(
    listener: &UnixListener,
    build: &mut Child,
) -> Option<(OwnedFd, std::os::unix::net::UnixStream)> {
    listener.set_nonblocking(true).unwrap();
    let stream = loop {
        match listener.accept() {
            Ok((stream, _)) => break stream,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if build.try_wait().unwrap().is_some() {
                    return None;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("accepting on the abstract socket: {e}"),
        }
    };
    stream.set_nonblocking(false).unwrap();
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut byte = [0u8; 1];
    rustix::net::recvmsg(
        &stream,
        &mut [IoSliceMut::new(&mut byte)],
        &mut control,
        RecvFlags::empty(),
    )
    .unwrap();
    let fd = control
        .drain()
        .find_map(|message| match message {
            RecvAncillaryMessage::ScmRights(mut fds) => fds.next(),
            _ => None,
        })
        .expect("the fetch sent a descriptor of /out");
    Some((fd, stream))
}

/// The attack, once sealroom has read `/out/d/f` `after_reads` times (whatever moment the
/// descriptor's holder picks): `d/f` rewritten, then `d` swapped again and again with a symlink
/// to a host directory whose `f` is a secret, until the build ends.
fn attack(
    out: &OwnedFd,
    mut stream: &std::os::unix::net::UnixStream,
    host_dir: &Path,
    after_reads: usize,
    build: &mut Child,
) {
    use rustix::fs::inotify;
    let watch =
        inotify::init(inotify::CreateFlags::NONBLOCK | inotify::CreateFlags::CLOEXEC).unwrap();
    let d = rustix::fs::openat(
        out,
        "d",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .unwrap();
    inotify::add_watch(
        &watch,
        format!("/proc/self/fd/{}", d.as_raw_fd()).as_str(),
        inotify::WatchFlags::CLOSE_NOWRITE,
    )
    .unwrap();
    // Watching: the fetch may exit now.
    stream.write_all(b"k").unwrap();
    let mut buffer = [MaybeUninit::uninit(); 4096];
    let mut reads = 0;
    // Busy: the moment right after a read is the one that counts.
    'waiting: loop {
        let mut events = inotify::Reader::new(&watch, &mut buffer);
        loop {
            match events.next() {
                Ok(event) => {
                    if event.file_name() == Some(c"f") {
                        reads += 1;
                        if reads >= after_reads {
                            break 'waiting;
                        }
                    }
                }
                Err(rustix::io::Errno::AGAIN) => break,
                Err(error) => panic!("reading inotify events: {error}"),
            }
        }
        if build.try_wait().unwrap().is_some() {
            return;
        }
        std::thread::yield_now();
    }
    let _ = rewrite(&d, "EVIL-0\n");
    let _ = rustix::fs::symlinkat(host_dir, out, "l");
    let mut swaps = 0u64;
    while build.try_wait().unwrap().is_none() {
        let _ = rustix::fs::renameat_with(out, "d", out, "l", RenameFlags::EXCHANGE);
        swaps += 1;
        if swaps.is_multiple_of(64) {
            let _ = rewrite(&d, &format!("EVIL-{swaps}\n"));
        }
    }
}

/// Rewrites `f` in the directory `d` (a descriptor: the real directory, wherever it is now).
fn rewrite(d: &OwnedFd, content: &str) -> std::io::Result<()> {
    let file = rustix::fs::openat(
        d,
        "f",
        OFlags::WRONLY | OFlags::TRUNC | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    fs::File::from(file).write_all(content.as_bytes())
}

#[test]
fn docker_a_fixed_output_changed_through_a_passed_descriptor_is_stored_as_pinned_or_refused() {
    let image = fdpass_image();
    for after_reads in 1..=3 {
        let project = Project::new();
        let host_dir = project.path("host-secrets");
        fs::create_dir(&host_dir).unwrap();
        fs::write(host_dir.join("f"), "HOST-SECRET-9b2e\n").unwrap();
        let pin = pinned_tree(&project);
        let socket = format!(
            "sealroom-test-fdpass-{}-{after_reads}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        );
        let listener =
            UnixListener::bind_addr(&SocketAddr::from_abstract_name(&socket).unwrap()).unwrap();
        let spec = project.write_spec(
            &image.to_string(),
            &format!(
                "[[fetch]]\nname = \"vendored\"\nrun = [\"sh\", \"-c\", \"mkdir /out/d && echo pinned > /out/d/f && fdpass {socket}\"]\noutput = \"{pin}\"\nnetwork = \"host\"\n\n[[step]]\nname = \"use\"\ninputs = [\"vendored\"]\nrun = [\"sh\", \"-c\", \"ls /inputs/vendored > /out/listing; cat /inputs/vendored/d/f > /out/seen\"]\nartifacts = [\"listing\", \"seen\"]\n"
            ),
        );
        let stderr_path = project.path("build.err");
        let mut build = project
            .build_process(&spec)
            .args(host_network_flags())
            .stderr(fs::File::create(&stderr_path).unwrap())
            .spawn()
            .unwrap();
        let received = receive_out_descriptor(&listener, &mut build);
        if let Some((out, stream)) = &received {
            attack(out, stream, &host_dir, after_reads, &mut build);
        }
        let status = build.wait().unwrap();
        let stderr = fs::read_to_string(&stderr_path).unwrap();
        assert!(
            received.is_some(),
            "the fetch never passed its descriptor: {status}\n{stderr}"
        );
        // Nothing the descriptor's holder wrote, and nothing of the host, reached the store.
        for needle in ["EVIL", "HOST-SECRET-9b2e"] {
            let found = files_holding(&project.store(), needle.as_bytes());
            assert!(
                found.is_empty(),
                "after {after_reads} read(s): {needle} in the store: {found:?}\n{stderr}"
            );
        }
        if status.success() {
            let read = |name: &str| fs::read_to_string(project.out().join(name)).unwrap();
            assert_eq!(read("seen"), "pinned\n", "after {after_reads} read(s)");
            assert_eq!(read("listing"), "d\n", "after {after_reads} read(s)");
        } else {
            assert_eq!(
                status.code(),
                Some(1),
                "after {after_reads} read(s): {stderr}"
            );
            // Refused: the tree did not match its pin, or changed under the reading.
            assert!(stderr.contains("error: "), "{stderr}");
        }
    }
}

/// `limits.output` holds for a fixed-output fetch too (it was ignored): 3 files of 4,000,000
/// bytes under a 3 MiB limit, with the pin their real digest, so only the limit can stop them.
#[test]
fn docker_a_fixed_output_over_its_output_limit_is_refused_and_nothing_of_it_is_stored() {
    let project = Project::new();
    let reference = project.path("reference");
    fs::create_dir_all(reference.join("parts")).unwrap();
    for n in 1..=3 {
        fs::write(
            reference.join(format!("parts/p{n}.bin")),
            vec![b'q'; 4_000_000],
        )
        .unwrap();
    }
    let pin = sealroom::store::Store::open(&project.path("reference-store"))
        .unwrap()
        .add_tree(&reference, &|_| false)
        .unwrap();
    let spec = project.write_spec(
        &common::busybox().to_string(),
        &format!(
            "[[fetch]]\nname = \"vendored\"\nrun = [\"sh\", \"-c\", \"mkdir -p /out/parts && for n in 1 2 3; do head -c 4000000 /dev/zero | tr '\\\\000' q > /out/parts/p$n.bin; done\"]\noutput = \"{pin}\"\nlimits = {{ output = \"3MiB\" }}\n\n[[step]]\nname = \"count\"\ninputs = [\"vendored\"]\nrun = [\"sh\", \"-c\", \"ls /inputs/vendored/parts > /out/parts.txt\"]\nartifacts = [\"parts.txt\"]\n"
        ),
    );
    let assert = project.build(&spec).code(1);
    let stderr = common::stderr_of(&assert);
    assert!(
        stderr.contains(
            "fixed-output fetch `vendored` wrote more than its output limit of 3MiB to /out (limits.output); nothing was stored"
        ),
        "{stderr}"
    );
    let big: Vec<_> = walkdir::WalkDir::new(project.store())
        .into_iter()
        .filter_map(Result::ok)
        .filter(|entry| entry.file_type().is_file())
        .filter(|entry| entry.metadata().unwrap().len() >= 3 * 1024 * 1024)
        .map(|entry| entry.path().display().to_string())
        .collect();
    assert!(big.is_empty(), "{big:?}");
}
