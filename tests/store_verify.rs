//! `sealroom store verify`: a healthy store passes; corrupt blobs and tree objects, dangling
//! action entries and damaged checkouts are named, quarantined or removed together with the
//! cache entries that depend on them, and a second verify is clean.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use common::{sealroom, stderr_of};
use sealroom::digest::{ActionDigest, BlobDigest, TreeDigest};
use sealroom::store::actions::ActionResult;
use sealroom::store::verify::{Kind, Resolution};
use sealroom::store::{EntryKind, Store, VerifyReport};

/// A store holding one step's output tree (`out/`: `a`, `sub/b`, a symlink), its action entry
/// and a checkout of it.
struct Fixture {
    dir: tempfile::TempDir,
    tree: TreeDigest,
    subtree: TreeDigest,
    blob_a: BlobDigest,
    blob_b: BlobDigest,
    action: ActionDigest,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        fs::create_dir_all(out.join("sub")).unwrap();
        fs::write(out.join("a"), "content of a\n").unwrap();
        fs::write(out.join("sub/b"), "content of b\n").unwrap();
        std::os::unix::fs::symlink("sub/b", out.join("link")).unwrap();
        let store = Store::open(&dir.path().join("store")).unwrap();
        let tree = store.add_tree(&out, &|_| false).unwrap();
        let action = ActionDigest::of(b"the step");
        store
            .action_put(
                &action,
                &ActionResult {
                    output: tree,
                    log: BlobDigest::of(b"log"),
                    invocation: None,
                },
            )
            .unwrap();
        store.materialize(&tree).unwrap();
        let Some(EntryKind::Directory { digest: subtree }) =
            store.lookup(&tree, "sub").unwrap().map(|e| e.kind)
        else {
            panic!("sub is a directory")
        };
        Fixture {
            dir,
            tree,
            subtree,
            blob_a: BlobDigest::of(b"content of a\n"),
            blob_b: BlobDigest::of(b"content of b\n"),
            action,
        }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.root().join("v1").join(relative)
    }

    fn blob(&self, digest: &BlobDigest) -> PathBuf {
        self.path("blobs/sha256").join(digest.hex())
    }

    fn tree_object(&self, digest: &TreeDigest) -> PathBuf {
        self.path("trees/sha256").join(digest.hex())
    }

    fn verify(&self) -> VerifyReport {
        Store::open_exclusive(&self.root(), Duration::ZERO)
            .unwrap()
            .verify()
            .unwrap()
    }

    fn action_is_cached(&self) -> bool {
        Store::open(&self.root())
            .unwrap()
            .action_get(&self.action)
            .is_some()
    }

    fn quarantined(&self, kind: &str) -> Vec<String> {
        let dir = self.path("quarantine").join(kind);
        let mut names: Vec<String> = fs::read_dir(dir)
            .map(|entries| {
                entries
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }
}

/// Writes to a store file that sealroom made read-only.
fn overwrite(path: &Path, change: impl FnOnce(&Path)) {
    fs::set_permissions(path, fs::Permissions::from_mode(0o644)).unwrap();
    change(path);
}

fn append_byte(path: &Path) {
    overwrite(path, |path| {
        use std::io::Write;
        let mut file = fs::OpenOptions::new().append(true).open(path).unwrap();
        file.write_all(b"X").unwrap();
    });
}

#[test]
fn store_verify_passes_a_healthy_store_and_exits_zero() {
    let fixture = Fixture::new();
    let assert = sealroom()
        .args(["store", "verify", "--store"])
        .arg(fixture.root())
        .assert()
        .success();
    let stderr = stderr_of(&assert);
    assert!(stderr.contains("is healthy"), "{stderr}");
    assert!(
        stderr.contains("checked 2 blobs, 2 trees, 1 action entries, 1 checkouts"),
        "{stderr}"
    );
    assert!(fixture.action_is_cached());
}

#[test]
fn store_verify_names_and_quarantines_a_blob_with_a_byte_appended() {
    let fixture = Fixture::new();
    append_byte(&fixture.blob(&fixture.blob_b));

    let assert = sealroom()
        .args(["store", "verify", "--store"])
        .arg(fixture.root())
        .assert()
        .code(4);
    let stderr = stderr_of(&assert);
    let hex = fixture.blob_b.hex();
    assert!(
        stderr.contains(&format!(
            "corrupt: blob {hex} at `{}`: expected content hashing to sha256:{hex}, found sha256:",
            fixture.blob(&fixture.blob_b).display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("error: store verification failed: 1 corrupt or dangling entry (blob "),
        "{stderr}"
    );
    assert!(
        stderr.contains("removed 1 action-cache entry, 2 trees and 1 checkout"),
        "{stderr}"
    );

    // Moved aside, not deleted; everything that reaches it is gone, the rest stays.
    let quarantined = fixture.quarantined("blobs");
    assert_eq!(quarantined.len(), 1);
    assert!(
        quarantined[0].starts_with(&format!("{hex}-")),
        "{quarantined:?}"
    );
    assert!(!fixture.blob(&fixture.blob_b).exists());
    assert!(fixture.blob(&fixture.blob_a).exists());
    assert!(!fixture.tree_object(&fixture.subtree).exists());
    assert!(!fixture.tree_object(&fixture.tree).exists());
    assert!(!fixture.path("inputs").join(fixture.tree.hex()).exists());
    assert!(!fixture.action_is_cached(), "the step must rerun");

    sealroom()
        .args(["store", "verify", "--store"])
        .arg(fixture.root())
        .assert()
        .success();
}

#[test]
fn store_verify_detects_a_truncated_blob() {
    let fixture = Fixture::new();
    overwrite(&fixture.blob(&fixture.blob_a), |path| {
        fs::write(path, "content").unwrap()
    });
    let report = fixture.verify();
    assert_eq!(report.problems.len(), 1, "{report:#?}");
    let problem = &report.problems[0];
    assert_eq!(problem.kind, Kind::Blob);
    assert_eq!(problem.name, fixture.blob_a.hex());
    assert_eq!(
        problem.found,
        format!("{} (7 bytes)", BlobDigest::of(b"content"))
    );
    assert!(matches!(problem.resolution, Resolution::Quarantined { .. }));
    let invalidated: Vec<(Kind, String)> = report
        .invalidated
        .iter()
        .map(|entry| (entry.kind, entry.name.clone()))
        .collect();
    assert_eq!(
        invalidated,
        [
            (Kind::Tree, fixture.tree.hex()),
            (Kind::Action, fixture.action.hex()),
            (Kind::Checkout, fixture.tree.hex()),
        ]
    );
    // The subtree does not contain `a`: it stays.
    assert!(fixture.tree_object(&fixture.subtree).exists());
    assert!(!fixture.action_is_cached());
    assert!(fixture.verify().is_healthy());
}

#[test]
fn store_verify_quarantines_a_corrupt_tree_object_and_what_contains_it() {
    let fixture = Fixture::new();
    overwrite(&fixture.tree_object(&fixture.subtree), |path| {
        fs::write(path, "{\"entries\":[]}garbage").unwrap()
    });
    let report = fixture.verify();
    assert_eq!(report.problems.len(), 1, "{report:#?}");
    assert_eq!(report.problems[0].kind, Kind::Tree);
    assert_eq!(report.problems[0].name, fixture.subtree.hex());
    assert_eq!(
        fixture.quarantined("trees").len(),
        1,
        "the corrupt object is kept for inspection"
    );
    assert!(!fixture.tree_object(&fixture.tree).exists(), "its parent");
    assert!(!fixture.action_is_cached());
    let second = fixture.verify();
    assert!(second.is_healthy(), "{second:#?}");
}

#[test]
fn store_verify_rejects_a_tree_object_that_is_not_canonical() {
    let fixture = Fixture::new();
    // Named by its own hash, so only parsing can tell.
    let bytes = b"{\"entries\": []}";
    let name = TreeDigest::of(bytes);
    fs::write(fixture.tree_object(&name), bytes).unwrap();
    let report = fixture.verify();
    assert_eq!(report.problems.len(), 1, "{report:#?}");
    assert_eq!(report.problems[0].name, name.hex());
    assert_eq!(report.problems[0].expected, "a canonical tree object");
    assert!(fixture.action_is_cached(), "unrelated entries stay");
}

#[test]
fn store_verify_quarantines_a_dangling_action_entry() {
    let fixture = Fixture::new();
    let store = Store::open(&fixture.root()).unwrap();
    let dangling = ActionDigest::of(b"another step");
    let nowhere = TreeDigest::of(b"not a stored tree");
    store
        .action_put(
            &dangling,
            &ActionResult {
                output: nowhere,
                log: BlobDigest::of(b""),
                invocation: None,
            },
        )
        .unwrap();
    drop(store);
    let report = fixture.verify();
    assert_eq!(report.problems.len(), 1, "{report:#?}");
    let problem = &report.problems[0];
    assert_eq!(problem.kind, Kind::Action);
    assert_eq!(problem.name, dangling.hex());
    assert_eq!(
        problem.expected,
        format!("its output tree {nowhere} to be in the store")
    );
    assert_eq!(fixture.quarantined("actions").len(), 1);
    assert!(fixture.action_is_cached(), "the healthy entry stays");
    assert!(fixture.verify().is_healthy());
}

#[test]
fn store_verify_quarantines_an_action_entry_that_does_not_parse() {
    let fixture = Fixture::new();
    let path = fixture
        .path("actions/sha256")
        .join(ActionDigest::of(b"x").hex());
    fs::write(&path, "{\"output\":").unwrap();
    let report = fixture.verify();
    assert_eq!(report.problems.len(), 1, "{report:#?}");
    assert_eq!(report.problems[0].kind, Kind::Action);
    assert!(!path.exists());
}

#[test]
fn store_verify_treats_a_missing_blob_as_a_dangling_tree() {
    let fixture = Fixture::new();
    fs::remove_file(fixture.blob(&fixture.blob_b)).unwrap();
    let report = fixture.verify();
    assert_eq!(report.problems.len(), 1, "{report:#?}");
    let problem = &report.problems[0];
    assert_eq!(problem.kind, Kind::Tree);
    assert_eq!(problem.name, fixture.subtree.hex());
    assert_eq!(
        problem.expected,
        format!(
            "blob {} (which it references) to be in the store",
            fixture.blob_b
        )
    );
    assert!(!fixture.action_is_cached());
    assert!(fixture.verify().is_healthy());
}

#[test]
fn store_verify_removes_a_checkout_that_differs_from_its_tree() {
    let fixture = Fixture::new();
    let checkout = fixture.path("inputs").join(fixture.tree.hex());
    fs::set_permissions(&checkout, fs::Permissions::from_mode(0o755)).unwrap();
    overwrite(&checkout.join("a"), |path| {
        fs::write(path, "tampered\n").unwrap()
    });
    let report = fixture.verify();
    assert_eq!(report.problems.len(), 1, "{report:#?}");
    let problem = &report.problems[0];
    assert_eq!(problem.kind, Kind::Checkout);
    assert_eq!(
        problem.expected,
        format!("`a` to be a file with content {}", fixture.blob_a)
    );
    assert!(matches!(problem.resolution, Resolution::Removed));
    assert!(!checkout.exists());
    assert!(fixture.action_is_cached(), "the store itself is intact");
    assert!(fixture.verify().is_healthy());
}

#[test]
fn store_verify_clears_tmp_leftovers_older_than_an_hour() {
    let fixture = Fixture::new();
    let old = fixture.path("tmp/dir-old");
    let fresh = fixture.path("tmp/dir-fresh");
    fs::create_dir_all(old.join("inner")).unwrap();
    fs::create_dir_all(&fresh).unwrap();
    let two_hours_ago = SystemTime::now() - Duration::from_secs(2 * 60 * 60);
    fs::File::open(&old)
        .unwrap()
        .set_modified(two_hours_ago)
        .unwrap();
    let report = fixture.verify();
    assert!(report.is_healthy());
    assert_eq!(report.stale_tmp_removed, 1);
    assert!(!old.exists());
    assert!(fresh.exists());
}

#[test]
fn store_verify_json_reports_problems_on_stdout() {
    let fixture = Fixture::new();
    append_byte(&fixture.blob(&fixture.blob_a));
    let assert = sealroom()
        .args(["store", "verify", "--format", "json", "--store"])
        .arg(fixture.root())
        .assert()
        .code(4);
    let report: serde_json::Value = serde_json::from_slice(&assert.get_output().stdout).unwrap();
    assert_eq!(report["problems"][0]["kind"], "blob");
    assert_eq!(report["problems"][0]["name"], fixture.blob_a.hex());
    assert_eq!(report["problems"][0]["resolution"]["action"], "quarantined");
    assert_eq!(report["checked"]["blobs"], 2);
}
