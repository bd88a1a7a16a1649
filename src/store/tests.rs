//! Tests of the store against real files in temp directories.
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::*;

fn no_exclude(_: &str) -> bool {
    false
}

/// Runs `work` while another thread keeps exchanging each `d<i>` of `tree` with its `l<i>` (a
/// directory and a symlink, `pairs` of them) by descriptor, as a step holding a descriptor of
/// its `/out` could; returns what `work` returned once the swapping has stopped.
pub(super) fn while_swapping<T>(tree: &Path, pairs: usize, work: impl FnOnce() -> T) -> T {
    use std::sync::atomic::{AtomicBool, Ordering};
    let stop = AtomicBool::new(false);
    let started = std::sync::Barrier::new(2);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let root = fs::File::open(tree).unwrap();
            started.wait();
            while !stop.load(Ordering::Relaxed) {
                for pair in 0..pairs {
                    let _ = rustix::fs::renameat_with(
                        &root,
                        format!("d{pair}"),
                        &root,
                        format!("l{pair}"),
                        rustix::fs::RenameFlags::EXCHANGE,
                    );
                }
            }
        });
        started.wait();
        let result = work();
        stop.store(true, Ordering::Relaxed);
        result
    })
}

fn new_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    (dir, store)
}

fn write(path: &Path, content: &str, mode: u32) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// A small tree: a file, an executable, a symlink, a nested file and an empty directory.
fn sample_tree(dir: &Path) {
    write(&dir.join("README"), "hello\n", 0o644);
    write(&dir.join("bin/run"), "#!/bin/sh\necho hi\n", 0o755);
    write(&dir.join("src/lib/a.c"), "int a;\n", 0o644);
    fs::create_dir_all(dir.join("empty")).unwrap();
    symlink("bin/run", dir.join("run")).unwrap();
}

fn tree_of(store: &Store, dir: &Path) -> TreeDigest {
    store.add_tree(dir, &no_exclude).unwrap()
}

fn tmp_entries(store: &Store) -> Vec<PathBuf> {
    fs::read_dir(store.tmp_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn open_creates_the_versioned_layout_and_cachedir_tag() {
    let (dir, store) = new_store();
    let root = dir.path().join("store");
    assert_eq!(store.root(), root);
    for sub in ["blobs/sha256", "trees/sha256", "inputs", "actions", "tmp"] {
        assert!(root.join("v1").join(sub).is_dir(), "missing v1/{sub}");
    }
    let tag = fs::read_to_string(root.join("CACHEDIR.TAG")).unwrap();
    assert!(tag.starts_with("Signature: 8a477f597d28d172789f06886806bc55\n"));
    // Opening again is fine and changes nothing.
    Store::open(&root).unwrap();
    assert!(tmp_entries(&store).is_empty());
}

#[test]
fn default_root_prefers_an_absolute_xdg_cache_home() {
    let home = Some(PathBuf::from("/home/me"));
    assert_eq!(
        default_root_from(Some("/cache".into()), home.clone()),
        Path::new("/cache/sealroom")
    );
    assert_eq!(
        default_root_from(Some("relative".into()), home.clone()),
        Path::new("/home/me/.cache/sealroom")
    );
    assert_eq!(
        default_root_from(None, home),
        Path::new("/home/me/.cache/sealroom")
    );
}

#[test]
fn blobs_are_read_only_named_by_content_and_deduplicated() {
    let (dir, store) = new_store();
    let file = dir.path().join("f");
    fs::write(&file, "content").unwrap();
    let (digest, size) = store.add_blob_from_file(&file).unwrap();
    assert_eq!(digest, BlobDigest::of(b"content"));
    assert_eq!(size, 7);
    let blob = store.blob_path(&digest);
    assert_eq!(fs::read(&blob).unwrap(), b"content");
    assert_eq!(mode(&blob), 0o444);
    let inode = fs::metadata(&blob).unwrap().ino();

    let (again, _) = store
        .add_blob_from_reader(&b"content"[..], "a test", None)
        .unwrap();
    assert_eq!(again, digest);
    assert_eq!(
        fs::metadata(&blob).unwrap().ino(),
        inode,
        "an existing blob is not rewritten"
    );
    assert!(tmp_entries(&store).is_empty());
}

#[test]
fn a_blob_with_the_wrong_pinned_digest_is_not_stored() {
    let (_dir, store) = new_store();
    let pinned = BlobDigest::of(b"expected");
    let err = store
        .add_blob_from_reader(&b"actual"[..], "https://example.org/x", Some(&pinned))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "content of https://example.org/x does not match its pinned digest: expected {pinned}, found {} (6 bytes)",
            BlobDigest::of(b"actual")
        )
    );
    assert_eq!(err.exit_code(), ExitCode::VerificationFailed);
    assert!(!store.has_blob(&BlobDigest::of(b"actual")));
    assert!(tmp_entries(&store).is_empty());
}

#[test]
fn a_failing_reader_leaves_nothing_behind() {
    struct Failing(bool);
    impl std::io::Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if std::mem::replace(&mut self.0, true) {
                Err(std::io::Error::other("connection reset"))
            } else {
                buf[..3].copy_from_slice(b"abc");
                Ok(3)
            }
        }
    }
    let (_dir, store) = new_store();
    let err = store
        .add_blob_from_reader(Failing(false), "a download", None)
        .unwrap_err();
    assert_eq!(err.to_string(), "reading a download: connection reset");
    assert!(tmp_entries(&store).is_empty());
    assert_eq!(fs::read_dir(store.blobs_dir()).unwrap().count(), 0);
}

#[test]
fn same_content_with_other_mtimes_owners_and_modes_gives_the_same_digest() {
    let (dir, store) = new_store();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    sample_tree(&a);
    sample_tree(&b);
    // Other mtimes, other non-executable mode bits, another owner where we may change it.
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    fs::File::options()
        .write(true)
        .open(b.join("README"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    fs::set_permissions(b.join("README"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::set_permissions(b.join("bin/run"), fs::Permissions::from_mode(0o500)).unwrap();
    fs::set_permissions(b.join("empty"), fs::Permissions::from_mode(0o700)).unwrap();
    let _ = std::os::unix::fs::chown(b.join("src/lib/a.c"), Some(1000), Some(1000));
    assert_eq!(tree_of(&store, &a), tree_of(&store, &b));
}

#[test]
fn the_executable_bit_changes_the_digest() {
    let (dir, store) = new_store();
    write(&dir.path().join("t/f"), "x", 0o644);
    let before = tree_of(&store, &dir.path().join("t"));
    fs::set_permissions(dir.path().join("t/f"), fs::Permissions::from_mode(0o744)).unwrap();
    let after = tree_of(&store, &dir.path().join("t"));
    assert_ne!(before, after);
    let entry = store.lookup(&after, "f").unwrap().unwrap();
    assert!(matches!(
        entry.kind,
        EntryKind::File {
            executable: true,
            size: 1,
            ..
        }
    ));
}

#[test]
fn a_symlink_differs_from_a_file_and_is_not_followed() {
    let (dir, store) = new_store();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    write(&a.join("target"), "t", 0o644);
    write(&b.join("target"), "t", 0o644);
    symlink("target", a.join("link")).unwrap();
    write(&b.join("link"), "t", 0o644);
    assert_ne!(tree_of(&store, &a), tree_of(&store, &b));

    // Targets are recorded verbatim, dangling or absolute or escaping.
    let c = dir.path().join("c");
    fs::create_dir(&c).unwrap();
    symlink("/etc/passwd", c.join("absolute")).unwrap();
    symlink("../../outside", c.join("escaping")).unwrap();
    symlink(".", c.join("loop")).unwrap();
    let tree = tree_of(&store, &c);
    let targets: Vec<_> = store
        .read_tree(&tree)
        .unwrap()
        .entries
        .into_iter()
        .map(|e| match e.kind {
            EntryKind::Symlink { target } => target,
            other => panic!("expected a symlink, found {other:?}"),
        })
        .collect();
    assert_eq!(targets, ["/etc/passwd", "../../outside", "."]);
}

#[test]
fn empty_directories_count() {
    let (dir, store) = new_store();
    write(&dir.path().join("t/f"), "x", 0o644);
    let without = tree_of(&store, &dir.path().join("t"));
    fs::create_dir(dir.path().join("t/empty")).unwrap();
    let with = tree_of(&store, &dir.path().join("t"));
    assert_ne!(without, with);
    let empty = store.lookup(&with, "empty").unwrap().unwrap();
    assert_eq!(
        empty.kind,
        EntryKind::Directory {
            digest: TreeDigest::of(br#"{"entries":[]}"#)
        }
    );
}

#[test]
fn an_excluded_directory_drops_its_whole_subtree() {
    let (dir, store) = new_store();
    let full = dir.path().join("full");
    sample_tree(&full);
    write(&full.join("target/debug/big"), "junk", 0o644);
    write(&full.join("src/lib/a.o"), "obj", 0o644);
    let seen = std::sync::Mutex::new(Vec::new());
    let exclude = |path: &str| {
        seen.lock().unwrap().push(path.to_string());
        path == "target" || path.ends_with(".o")
    };
    let with_exclude = store.add_tree(&full, &exclude).unwrap();
    let clean = dir.path().join("clean");
    sample_tree(&clean);
    assert_eq!(with_exclude, tree_of(&store, &clean));
    let seen = seen.into_inner().unwrap();
    assert!(
        seen.contains(&"src/lib/a.o".to_string()),
        "paths are relative with `/`: {seen:?}"
    );
    assert!(
        !seen.iter().any(|p| p.starts_with("target/")),
        "an excluded dir is not entered"
    );
    assert!(!store.has_blob(&BlobDigest::of(b"junk")));
}

#[test]
fn a_fifo_is_rejected_with_its_path() {
    let (dir, store) = new_store();
    let t = dir.path().join("t");
    write(&t.join("ok"), "x", 0o644);
    fs::create_dir(t.join("dev")).unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(t.join("dev/pipe"))
        .status()
        .unwrap();
    assert!(status.success());
    let err = store.add_tree(&t, &no_exclude).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "unsupported file type at `dev/pipe` (in `{}`): expected a regular file, directory or symlink, found a fifo (named pipe)",
            t.display()
        )
    );
    assert_eq!(err.exit_code(), ExitCode::BadInput);
    assert!(tmp_entries(&store).is_empty());
}

#[test]
fn a_socket_is_rejected() {
    let (dir, store) = new_store();
    let t = dir.path().join("t");
    fs::create_dir(&t).unwrap();
    let _listener = std::os::unix::net::UnixListener::bind(t.join("sock")).unwrap();
    let err = store.add_tree(&t, &no_exclude).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::UnsupportedFileType {
                found: "socket",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_non_utf8_name_is_rejected_with_its_path() {
    use std::os::unix::ffi::OsStrExt;
    let (dir, store) = new_store();
    let t = dir.path().join("t");
    let name = std::ffi::OsStr::from_bytes(b"bad\xff");
    write(&t.join("sub").join(name), "x", 0o644);
    let err = store.add_tree(&t, &no_exclude).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "file name at `sub/bad\u{fffd}` (in `{}`) is not valid UTF-8: tree entries must have UTF-8 names",
            t.display()
        )
    );
}

#[test]
fn adding_something_that_is_not_a_directory_says_so() {
    let (dir, store) = new_store();
    let file = dir.path().join("f");
    fs::write(&file, "x").unwrap();
    let err = store.add_tree(&file, &no_exclude).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "expected a directory at `{}`, found a regular file",
            file.display()
        )
    );
}

#[test]
fn materialize_is_world_readable_with_fixed_modes_and_times_and_idempotent() {
    let (dir, store) = new_store();
    let source = dir.path().join("src");
    sample_tree(&source);
    let tree = tree_of(&store, &source);
    let checkout = store.materialize(&tree).unwrap();
    assert_eq!(checkout, store.checkout_path(&tree));
    assert!(checkout.is_absolute());

    assert_eq!(mode(&checkout), 0o755);
    assert_eq!(mode(&checkout.join("bin")), 0o755);
    assert_eq!(mode(&checkout.join("empty")), 0o755);
    assert_eq!(mode(&checkout.join("README")), 0o644);
    assert_eq!(mode(&checkout.join("bin/run")), 0o755);
    for entry in walkdir::WalkDir::new(&checkout) {
        let entry = entry.unwrap();
        let metadata = fs::symlink_metadata(entry.path()).unwrap();
        assert_eq!(
            metadata.mtime() as u64,
            MATERIALIZED_MTIME,
            "{}",
            entry.path().display()
        );
    }
    assert_eq!(
        fs::read_to_string(checkout.join("src/lib/a.c")).unwrap(),
        "int a;\n"
    );
    assert_eq!(
        fs::read_link(checkout.join("run")).unwrap(),
        Path::new("bin/run")
    );
    // The checkout hashes back to the same tree.
    assert_eq!(tree_of(&store, &checkout), tree);

    let inode = fs::metadata(&checkout).unwrap().ino();
    assert_eq!(store.materialize(&tree).unwrap(), checkout);
    assert_eq!(fs::metadata(&checkout).unwrap().ino(), inode, "made once");
    assert!(tmp_entries(&store).is_empty());
}

#[test]
fn materialize_refuses_a_corrupt_blob_and_leaves_nothing() {
    let (dir, store) = new_store();
    write(&dir.path().join("t/f"), "good", 0o644);
    let tree = tree_of(&store, &dir.path().join("t"));
    let blob = store.blob_path(&BlobDigest::of(b"good"));
    fs::set_permissions(&blob, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&blob, "evil").unwrap();
    let err = store.materialize(&tree).unwrap_err();
    assert!(matches!(err, StoreError::CorruptBlob { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with(&format!("corrupt blob `{}`", blob.display()))
    );
    assert!(!store.checkout_path(&tree).exists());
    assert!(tmp_entries(&store).is_empty());
}

#[test]
fn concurrent_materializations_agree() {
    let (dir, store) = new_store();
    sample_tree(&dir.path().join("src"));
    let tree = tree_of(&store, &dir.path().join("src"));
    let paths: Vec<PathBuf> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| scope.spawn(|| store.materialize(&tree).unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(paths.iter().all(|p| *p == store.checkout_path(&tree)));
    assert_eq!(tree_of(&store, &paths[0]), tree);
    assert!(tmp_entries(&store).is_empty());
}

#[test]
fn checkout_writes_a_writable_copy_and_refuses_an_existing_destination() {
    let (dir, store) = new_store();
    sample_tree(&dir.path().join("src"));
    let tree = tree_of(&store, &dir.path().join("src"));
    let dest = dir.path().join("out/copy");
    store.checkout(&tree, &dest).unwrap();
    assert_eq!(mode(&dest), 0o755);
    assert_eq!(mode(&dest.join("empty")), 0o755);
    assert_eq!(mode(&dest.join("README")), 0o644);
    assert_eq!(mode(&dest.join("bin/run")), 0o755);
    assert_eq!(tree_of(&store, &dest), tree);
    // Only the copy is left next to it: no temp directory.
    assert_eq!(fs::read_dir(dir.path().join("out")).unwrap().count(), 1);

    let err = store.checkout(&tree, &dest).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "cannot check out into `{}`: expected a path that does not exist yet, found an existing entry",
            dest.display()
        )
    );
}

#[test]
fn export_file_copies_a_blob_with_the_requested_mode() {
    let (dir, store) = new_store();
    let (digest, _) = store
        .add_blob_from_reader(&b"#!/bin/sh\n"[..], "a test", None)
        .unwrap();
    let dest = dir.path().join("hello");
    store.export_file(&digest, &dest, true).unwrap();
    assert_eq!(fs::read(&dest).unwrap(), b"#!/bin/sh\n");
    assert_eq!(mode(&dest), 0o755);
    // Replacing an existing file is fine, and leaves no temp file next to it.
    store.export_file(&digest, &dest, false).unwrap();
    assert_eq!(mode(&dest), 0o644);
    let names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}"); // the store and `hello`

    let missing = BlobDigest::of(b"missing");
    let err = store
        .export_file(&missing, &dir.path().join("x"), false)
        .unwrap_err();
    assert!(matches!(err, StoreError::MissingBlob { .. }), "{err}");
    assert!(!dir.path().join("x").exists());
}

#[test]
fn lookup_walks_tree_objects_by_segments() {
    let (dir, store) = new_store();
    sample_tree(&dir.path().join("src"));
    let tree = tree_of(&store, &dir.path().join("src"));
    let found = store.lookup(&tree, "src/lib/a.c").unwrap().unwrap();
    assert_eq!(found.name, "a.c");
    assert_eq!(
        found.kind,
        EntryKind::File {
            digest: BlobDigest::of(b"int a;\n"),
            size: 7,
            executable: false
        }
    );
    assert_eq!(store.lookup(&tree, "./src//lib/a.c/").unwrap(), Some(found));
    assert!(matches!(
        store.lookup(&tree, "src/lib").unwrap().unwrap().kind,
        EntryKind::Directory { .. }
    ));
    assert!(matches!(
        store.lookup(&tree, "run").unwrap().unwrap().kind,
        EntryKind::Symlink { .. }
    ));
    assert_eq!(store.lookup(&tree, "src/nope").unwrap(), None);
    assert_eq!(
        store.lookup(&tree, "README/x").unwrap(),
        None,
        "a file has no children"
    );
    assert_eq!(
        store.lookup(&tree, "run/x").unwrap(),
        None,
        "symlinks are not followed"
    );
    assert_eq!(
        store.lookup(&tree, "").unwrap().unwrap().kind,
        EntryKind::Directory { digest: tree }
    );
    for bad in ["/src", "src/../README"] {
        let err = store.lookup(&tree, bad).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "cannot look up `{bad}` in a tree: expected a relative `/`-separated path without `..`"
            )
        );
    }
}

#[test]
fn read_tree_checks_content_against_the_name() {
    let (dir, store) = new_store();
    sample_tree(&dir.path().join("src"));
    let tree = tree_of(&store, &dir.path().join("src"));
    let path = store.tree_path(&tree);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&path, br#"{"entries":[]}"#).unwrap();
    let err = store.read_tree(&tree).unwrap_err();
    assert!(matches!(err, StoreError::CorruptTree { .. }), "{err}");

    let missing = TreeDigest::of(b"nothing");
    assert!(matches!(
        store.read_tree(&missing).unwrap_err(),
        StoreError::MissingTree { .. }
    ));
}

#[test]
fn remove_tree_force_removes_read_only_trees() {
    let (dir, store) = new_store();
    sample_tree(&dir.path().join("src"));
    let tree = tree_of(&store, &dir.path().join("src"));
    let checkout = store.materialize(&tree).unwrap();
    remove_tree_force(&checkout).unwrap();
    assert!(!checkout.exists());
    remove_tree_force(&checkout).unwrap(); // already gone: fine

    // A symlink to a directory is removed, not followed.
    let target = dir.path().join("src");
    let link = dir.path().join("link");
    symlink(&target, &link).unwrap();
    remove_tree_force(&link).unwrap();
    assert!(!link.exists() && target.join("README").exists());
}

#[test]
fn shared_handles_coexist_and_keep_an_exclusive_one_out() {
    let (dir, first) = new_store();
    let root = dir.path().join("store");
    let second = Store::open(&root).unwrap();
    assert_eq!(first.lock_mode(), LockMode::Shared);
    let busy = Store::open_exclusive(&root, Duration::ZERO).unwrap_err();
    assert!(matches!(busy, StoreError::Busy { .. }), "{busy:?}");
    assert_eq!(busy.exit_code(), ExitCode::BadInput);
    assert!(
        busy.to_string().starts_with(
            "the store is in use by another sealroom process (a running build); try again when it finishes"
        ),
        "{busy}"
    );
    drop(first);
    assert!(
        Store::open_exclusive(&root, Duration::ZERO).is_err(),
        "a clone still holds it"
    );
    drop(second);
    let exclusive = Store::open_exclusive(&root, Duration::ZERO).unwrap();
    assert_eq!(exclusive.store().lock_mode(), LockMode::Exclusive);
    assert!(Store::open_exclusive(&root, Duration::from_millis(60)).is_err());
}

#[test]
fn clones_share_one_lock() {
    let (dir, store) = new_store();
    let clone = store.clone();
    drop(store);
    let root = dir.path().join("store");
    assert!(Store::open_exclusive(&root, Duration::ZERO).is_err());
    drop(clone);
    assert!(Store::open_exclusive(&root, Duration::ZERO).is_ok());
}

#[test]
fn verify_failure_summarizes_problems_and_what_was_removed() {
    let (dir, store) = new_store();
    let root = dir.path().join("store");
    let source = dir.path().join("source");
    sample_tree(&source);
    let tree = tree_of(&store, &source);
    let action = crate::digest::ActionDigest::of(b"step");
    store
        .action_put(
            &action,
            &actions::ActionResult {
                output: tree,
                log: BlobDigest::of(b""),
                invocation: None,
            },
        )
        .unwrap();
    drop(store);
    let blob = BlobDigest::of(b"int a;\n");
    let path = root.join("v1/blobs/sha256").join(blob.hex());
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&path, "int b;\n").unwrap();

    let report = Store::open_exclusive(&root, Duration::ZERO)
        .unwrap()
        .verify()
        .unwrap();
    let failure = report.failure().expect("a corrupt blob fails verification");
    assert_eq!(failure.exit_code(), ExitCode::VerificationFailed);
    assert_eq!(
        failure.to_string(),
        format!(
            "store verification failed: 1 corrupt or dangling entry (blob {}), quarantined under `{}`; removed 1 action-cache entry, 3 trees and 0 checkouts that depended on them, so the next build reruns those steps",
            blob.hex(),
            root.join("v1/quarantine").display()
        )
    );
    let again = Store::open_exclusive(&root, Duration::ZERO)
        .unwrap()
        .verify()
        .unwrap();
    assert!(again.failure().is_none(), "{again:#?}");
}

#[test]
fn a_new_store_root_is_private_and_an_existing_one_keeps_its_mode() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("a/b/store");
    Store::open(&root).unwrap();
    let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&root), 0o700);
    let shared = dir.path().join("shared");
    fs::create_dir(&shared).unwrap();
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o755)).unwrap();
    Store::open(&shared).unwrap();
    assert_eq!(mode(&shared), 0o755);
}
