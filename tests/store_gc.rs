//! `sealroom store gc`: keeps what recently used action entries and checkouts reach, removes the
//! rest, and never runs while a build holds the store.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use common::{sealroom, stderr_of};
use sealroom::digest::{ActionDigest, BlobDigest, TreeDigest};
use sealroom::store::actions::ActionResult;
use sealroom::store::{Store, StoreError};

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

fn write_tree(dir: &Path, files: &[(&str, &str)]) {
    for (name, content) in files {
        let path = dir.join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }
}

/// Adds a tree of `files` and an action entry for it; returns (action, tree).
fn add_step(
    store: &Store,
    work: &Path,
    step: &str,
    files: &[(&str, &str)],
) -> (ActionDigest, TreeDigest) {
    let dir = work.join(step);
    write_tree(&dir, files);
    let tree = store.add_tree(&dir, &|_| false).unwrap();
    let action = ActionDigest::of(step.as_bytes());
    store
        .action_put(
            &action,
            &ActionResult {
                output: tree,
                log: BlobDigest::of(step.as_bytes()),
                invocation: None,
            },
        )
        .unwrap();
    (action, tree)
}

/// Makes `path` look last used `by` ago: an action entry records its use in its modification
/// time, a checkout in its access time.
fn age(path: &Path, by: Duration) {
    let then = SystemTime::now() - by;
    fs::File::open(path)
        .unwrap()
        .set_times(fs::FileTimes::new().set_accessed(then).set_modified(then))
        .unwrap();
}

fn blob_exists(root: &Path, content: &str) -> bool {
    root.join("v1/blobs/sha256")
        .join(BlobDigest::of(content.as_bytes()).hex())
        .is_file()
}

fn store_root(work: &tempfile::TempDir) -> PathBuf {
    work.path().join("store")
}

#[test]
fn store_gc_keeps_what_recent_actions_reach_and_removes_the_rest() {
    let work = tempfile::tempdir().unwrap();
    let root = store_root(&work);
    let store = Store::open(&root).unwrap();
    let (recent, recent_tree) = add_step(
        &store,
        work.path(),
        "recent",
        &[("a", "recent only"), ("dir/shared", "shared")],
    );
    let (old, _) = add_step(
        &store,
        work.path(),
        "old",
        &[("b", "old only"), ("dir/shared", "shared")],
    );
    store
        .add_blob_from_reader(&b"loose"[..], "a test", None)
        .unwrap();
    age(&store.action_path(&old), 40 * DAY);
    age(&store.action_path(&recent), 20 * DAY);
    drop(store);

    let report = Store::open_exclusive(&root, Duration::ZERO)
        .unwrap()
        .gc(30 * DAY)
        .unwrap();
    assert_eq!(report.kept.actions, 1);
    assert_eq!(report.removed.actions.entries, 1);
    assert_eq!(report.removed.blobs.entries, 2, "`old only` and `loose`");
    assert_eq!(
        report.removed.trees.entries, 1,
        "the old root; `dir` is shared"
    );
    assert_eq!(
        report.bytes_freed,
        report.removed.actions.bytes
            + "old only".len() as u64
            + "loose".len() as u64
            + report.removed.trees.bytes
    );
    assert!(blob_exists(&root, "recent only"));
    assert!(blob_exists(&root, "shared"));
    assert!(!blob_exists(&root, "old only"));
    assert!(!blob_exists(&root, "loose"));

    let store = Store::open(&root).unwrap();
    assert_eq!(store.action_get(&recent).unwrap().output, recent_tree);
    assert!(store.action_get(&old).is_none());
    store
        .checkout(&recent_tree, &work.path().join("copy"))
        .unwrap();
    drop(store);
    let verify = Store::open_exclusive(&root, Duration::ZERO)
        .unwrap()
        .verify()
        .unwrap();
    assert!(verify.is_healthy(), "{verify:#?}");
}

#[test]
fn store_gc_keeps_recently_mounted_checkouts_and_their_trees() {
    let work = tempfile::tempdir().unwrap();
    let root = store_root(&work);
    let store = Store::open(&root).unwrap();
    write_tree(&work.path().join("src"), &[("main.c", "int main;")]);
    write_tree(&work.path().join("stale"), &[("x", "stale source")]);
    let source = store
        .add_tree(&work.path().join("src"), &|_| false)
        .unwrap();
    let stale = store
        .add_tree(&work.path().join("stale"), &|_| false)
        .unwrap();
    store.materialize(&source).unwrap();
    let stale_checkout = store.materialize(&stale).unwrap();
    age(&stale_checkout, 40 * DAY);
    // Mounting it again is a use: it stays.
    age(&store.materialize(&source).unwrap(), 40 * DAY);
    store.materialize(&source).unwrap();
    drop(store);

    let report = Store::open_exclusive(&root, Duration::ZERO)
        .unwrap()
        .gc(30 * DAY)
        .unwrap();
    assert_eq!(report.kept.checkouts, 1);
    assert_eq!(report.removed.checkouts.entries, 1);
    assert!(blob_exists(&root, "int main;"));
    assert!(!blob_exists(&root, "stale source"));
    assert!(!stale_checkout.exists());
}

#[test]
fn store_gc_removes_the_read_only_checkouts_of_an_older_layout() {
    let work = tempfile::tempdir().unwrap();
    let root = store_root(&work);
    drop(Store::open(&root).unwrap());
    let legacy = root.join("v1/checkouts/0123abcd");
    fs::create_dir_all(legacy.join("sub")).unwrap();
    fs::write(legacy.join("sub/file"), "old checkout").unwrap();
    for path in [legacy.join("sub"), legacy.clone()] {
        fs::set_permissions(path, fs::Permissions::from_mode(0o555)).unwrap();
    }
    let report = Store::open_exclusive(&root, Duration::ZERO)
        .unwrap()
        .gc(30 * DAY)
        .unwrap();
    assert_eq!(report.removed.checkouts.entries, 1);
    assert!(!root.join("v1/checkouts").exists());
}

#[test]
fn store_action_get_records_its_use() {
    let work = tempfile::tempdir().unwrap();
    let store = Store::open(&store_root(&work)).unwrap();
    let (action, _) = add_step(&store, work.path(), "step", &[("f", "x")]);
    let path = store.action_path(&action);
    age(&path, 40 * DAY);
    assert!(store.action_get(&action).is_some());
    let modified = fs::metadata(&path).unwrap().modified().unwrap();
    assert!(modified.elapsed().unwrap() < Duration::from_secs(60));
}

#[test]
fn store_gc_keep_days_zero_empties_an_idle_store() {
    let work = tempfile::tempdir().unwrap();
    let root = store_root(&work);
    let store = Store::open(&root).unwrap();
    let (_, tree) = add_step(&store, work.path(), "step", &[("f", "x"), ("d/g", "y")]);
    store.materialize(&tree).unwrap();
    fs::create_dir(root.join("v1/tmp/dir-leftover")).unwrap();
    drop(store);

    let assert = sealroom()
        .args([
            "store",
            "gc",
            "--keep-days",
            "0",
            "--format",
            "json",
            "--store",
        ])
        .arg(&root)
        .assert()
        .success();
    let report: serde_json::Value = serde_json::from_slice(&assert.get_output().stdout).unwrap();
    assert_eq!(report["keep_days"], 0);
    assert_eq!(report["removed"]["blobs"]["entries"], 2);
    assert_eq!(report["removed"]["trees"]["entries"], 2);
    assert_eq!(report["removed"]["checkouts"]["entries"], 1);
    assert_eq!(report["removed"]["actions"]["entries"], 1);
    assert_eq!(report["removed"]["tmp"]["entries"], 1);

    let assert = sealroom()
        .args(["store", "ls", "--format", "json", "--store"])
        .arg(&root)
        .assert()
        .success();
    let usage: serde_json::Value = serde_json::from_slice(&assert.get_output().stdout).unwrap();
    assert_eq!(usage["total_bytes"], 0, "{usage}");
    assert_eq!(usage["blobs"]["entries"], 0);
}

#[test]
fn store_gc_refuses_while_a_build_holds_the_store() {
    let work = tempfile::tempdir().unwrap();
    let root = store_root(&work);
    // A second handle in this process locks like another process would.
    let build = Store::open(&root).unwrap();

    let assert = sealroom()
        .args(["store", "gc", "--wait", "1", "--store"])
        .arg(&root)
        .assert()
        .code(1);
    let stderr = stderr_of(&assert);
    assert!(
        stderr.contains(
            "error: the store is in use by another sealroom process (a running build); try again when it finishes"
        ),
        "{stderr}"
    );
    match Store::open_exclusive(&root, Duration::from_millis(100)) {
        Err(StoreError::Busy { .. }) => {}
        other => panic!("expected Busy, got {other:?}"),
    }
    // `ls` only reads: it shares the store with builds.
    sealroom()
        .args(["store", "ls", "--store"])
        .arg(&root)
        .assert()
        .success();

    drop(build);
    sealroom()
        .args(["store", "gc", "--wait", "1", "--store"])
        .arg(&root)
        .assert()
        .success();
}

#[test]
fn store_gc_waits_for_a_build_to_finish() {
    let work = tempfile::tempdir().unwrap();
    let root = store_root(&work);
    let build = Store::open(&root).unwrap();
    let released = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        drop(build);
        SystemTime::now()
    });
    let exclusive = Store::open_exclusive(&root, Duration::from_secs(10)).unwrap();
    let got_it = SystemTime::now();
    assert!(got_it >= released.join().unwrap());
    exclusive.gc(DAY).unwrap();
}

#[test]
fn store_builds_wait_while_gc_holds_the_store() {
    let work = tempfile::tempdir().unwrap();
    let root = store_root(&work);
    let gc = Store::open_exclusive(&root, Duration::ZERO).unwrap();
    let opener = {
        let root = root.clone();
        std::thread::spawn(move || {
            let store = Store::open(&root).unwrap();
            (SystemTime::now(), store)
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    assert!(!opener.is_finished(), "a build must not start during gc");
    let released = SystemTime::now();
    drop(gc);
    let (opened, _store) = opener.join().unwrap();
    assert!(opened >= released);
}
