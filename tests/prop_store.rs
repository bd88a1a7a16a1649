//! Property tests of the store's tree reader and writers, the bounded cousin of the
//! `output_tree` fuzz target (`fuzz/fuzz_targets/output_tree.rs`). Random trees (files with
//! random bytes and exec bits, nested and empty directories, symlinks with arbitrary targets,
//! absolute and `..` ones included):
//!
//! - `add_tree` is deterministic: the same tree in two stores, or with other mtimes, has the same
//!   digest; one changed byte, or one changed exec bit, changes it;
//! - `checkout` and `materialize` give back the tree exactly (contents, symlink targets, empty
//!   directories, exec bits) and nothing more (no setuid bit, no other permission bits);
//! - nothing is written outside the store root or the checkout's destination: the parent
//!   directory is snapshotted before and after.
//!
//! Bounded (64 cases a property, trees of at most a few dozen entries) so the file runs in a few
//! seconds on 2 cores.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use proptest::prelude::*;
use proptest::sample::Index;
use sealroom::store::{LAYOUT_VERSION, Store, remove_tree_force};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 64,
        max_shrink_iters: 512,
        // The minimal failing case is printed; nothing is written next to the sources.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// One entry of a generated tree.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    File { content: Vec<u8>, mode: u32 },
    Directory(BTreeMap<String, Node>),
    Symlink(String),
}

fn name() -> impl Strategy<Value = String> {
    // Any single segment: spaces, dots, UTF-8 beyond ASCII, a leading `-`.
    "[a-zA-Z0-9 ._é-]{1,12}".prop_filter("`.` and `..` are not names", |name| {
        name != "." && name != ".."
    })
}

fn symlink_target() -> impl Strategy<Value = String> {
    prop_oneof![
        "[^\0]{1,24}",
        "(\\.\\./){1,6}outside/sentinel",
        Just("/".to_string()),
        Just("/etc/passwd".to_string()),
        Just("..".to_string()),
        Just(".".to_string()),
        "[a-z]{1,4}(/[a-z]{1,4}){0,3}",
    ]
}

fn file_mode() -> impl Strategy<Value = u32> {
    prop::sample::select(vec![
        0o644, 0o600, 0o444, 0o755, 0o700, 0o744, 0o654, 0o645, 0o4755,
    ])
}

fn node() -> impl Strategy<Value = Node> {
    let leaf = prop_oneof![
        3 => (proptest::collection::vec(any::<u8>(), 0..256), file_mode())
            .prop_map(|(content, mode)| Node::File { content, mode }),
        1 => symlink_target().prop_map(Node::Symlink),
        1 => Just(Node::Directory(BTreeMap::new())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        proptest::collection::btree_map(name(), inner, 0..6).prop_map(Node::Directory)
    })
}

/// The root of a tree: always a directory.
fn tree() -> impl Strategy<Value = BTreeMap<String, Node>> {
    proptest::collection::btree_map(name(), node(), 0..6)
}

fn write(dir: &Path, entries: &BTreeMap<String, Node>) {
    fs::create_dir(dir).unwrap();
    for (name, node) in entries {
        let path = dir.join(name);
        match node {
            Node::File { content, mode } => {
                fs::write(&path, content).unwrap();
                fs::set_permissions(&path, fs::Permissions::from_mode(*mode)).unwrap();
            }
            Node::Directory(children) => write(&path, children),
            Node::Symlink(target) => symlink(target, &path).unwrap(),
        }
    }
}

/// The tree at `dir` as a `Node` map, with each file's permission bits (setuid and the like
/// included), symlinks read and never followed.
fn read(dir: &Path) -> BTreeMap<String, Node> {
    let mut entries = BTreeMap::new();
    for item in fs::read_dir(dir).unwrap() {
        let item = item.unwrap();
        let path = item.path();
        let metadata = fs::symlink_metadata(&path).unwrap();
        let node = if metadata.is_symlink() {
            Node::Symlink(
                fs::read_link(&path)
                    .unwrap()
                    .into_os_string()
                    .into_string()
                    .unwrap(),
            )
        } else if metadata.is_dir() {
            Node::Directory(read(&path))
        } else {
            assert!(metadata.is_file(), "{}", path.display());
            Node::File {
                content: fs::read(&path).unwrap(),
                mode: metadata.permissions().mode() & 0o7777,
            }
        };
        entries.insert(item.file_name().into_string().unwrap(), node);
    }
    entries
}

/// The tree as written back out: only "executable or not" survives (no setuid, no group or
/// other bits of the original), as `executable` or `plain`.
fn normalized(
    entries: &BTreeMap<String, Node>,
    executable: u32,
    plain: u32,
) -> BTreeMap<String, Node> {
    entries
        .iter()
        .map(|(name, node)| {
            let node = match node {
                Node::File { content, mode } => Node::File {
                    content: content.clone(),
                    mode: if mode & 0o111 != 0 { executable } else { plain },
                },
                Node::Directory(children) => {
                    Node::Directory(normalized(children, executable, plain))
                }
                Node::Symlink(target) => Node::Symlink(target.clone()),
            };
            (name.clone(), node)
        })
        .collect()
}

/// Everything under `root` (symlinks not followed) except the paths in `skip`: type, full mode,
/// contents, link target and mtime, so that any write shows.
fn snapshot(root: &Path, skip: &[&Path]) -> BTreeMap<PathBuf, String> {
    let mut found = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for item in fs::read_dir(&dir).unwrap() {
            let path = item.unwrap().path();
            if skip.contains(&path.as_path()) {
                continue;
            }
            let metadata = fs::symlink_metadata(&path).unwrap();
            let mode = metadata.permissions().mode();
            let description = if metadata.is_symlink() {
                format!("symlink -> {:?}", fs::read_link(&path).unwrap())
            } else if metadata.is_dir() {
                pending.push(path.clone());
                format!("dir {mode:o} {:?}", metadata.modified().unwrap())
            } else {
                format!(
                    "file {mode:o} {:?} {:?}",
                    metadata.modified().unwrap(),
                    fs::read(&path).unwrap()
                )
            };
            found.insert(path, description);
        }
    }
    found
}

/// A temp dir holding `tree/`, `outside/sentinel` (what escaping symlinks point at) and room for
/// stores and checkouts; removed with write bits restored.
struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    fn new(entries: &BTreeMap<String, Node>) -> Workspace {
        // tmpfs when there is one: the store syncs every blob and tree object it writes, which
        // on a busy disk makes a few hundred trees take tens of seconds.
        let dir = if Path::new("/dev/shm").is_dir() {
            tempfile::tempdir_in("/dev/shm").unwrap()
        } else {
            tempfile::tempdir().unwrap()
        };
        fs::create_dir(dir.path().join("outside")).unwrap();
        fs::write(dir.path().join("outside/sentinel"), "must not change").unwrap();
        write(&dir.path().join("tree"), entries);
        Workspace { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        // Materialized checkouts are read-only.
        let _ = remove_tree_force(self.dir.path());
    }
}

fn assert_store_tmp_empty(store: &Store) {
    let tmp = store.root().join(LAYOUT_VERSION).join("tmp");
    assert_eq!(
        fs::read_dir(&tmp).unwrap().count(),
        0,
        "{} is not empty",
        tmp.display()
    );
}

/// Every file and directory under `dir` gets `mtime`.
fn set_mtimes(dir: &Path, mtime: SystemTime) {
    for item in fs::read_dir(dir).unwrap() {
        let path = item.unwrap().path();
        let metadata = fs::symlink_metadata(&path).unwrap();
        if metadata.is_dir() {
            set_mtimes(&path, mtime);
        } else if metadata.is_file() {
            File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(mtime)
                .unwrap();
        }
    }
    File::open(dir).unwrap().set_modified(mtime).unwrap();
}

/// Paths of the regular files under `dir`, relative to it, sorted.
fn files(entries: &BTreeMap<String, Node>, prefix: &Path, found: &mut Vec<PathBuf>) {
    for (name, node) in entries {
        match node {
            Node::File { .. } => found.push(prefix.join(name)),
            Node::Directory(children) => files(children, &prefix.join(name), found),
            Node::Symlink(_) => {}
        }
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn add_tree_is_deterministic_and_writes_only_in_the_store(entries in tree()) {
        let workspace = Workspace::new(&entries);
        let tree = workspace.path("tree");
        let first = Store::open(&workspace.path("store-1")).unwrap();
        let second = Store::open(&workspace.path("store-2")).unwrap();
        let stores = [first.root(), second.root()];
        let before = snapshot(workspace.dir.path(), &stores);

        let digest = first.add_tree(&tree, &|_| false).unwrap();
        prop_assert_eq!(&before, &snapshot(workspace.dir.path(), &stores), "add_tree wrote outside its store");
        assert_store_tmp_empty(&first);
        prop_assert_eq!(second.add_tree(&tree, &|_| false).unwrap(), digest, "another store");
        prop_assert_eq!(first.add_tree(&tree, &|_| false).unwrap(), digest, "the same store again");

        set_mtimes(&tree, SystemTime::UNIX_EPOCH + Duration::from_secs(1_234_567_890));
        prop_assert_eq!(first.add_tree(&tree, &|_| false).unwrap(), digest, "other mtimes");
    }

    #[test]
    fn a_changed_byte_or_exec_bit_changes_the_digest(
        entries in tree(),
        which in any::<Index>(),
        offset in any::<Index>(),
        flip in 1..=255u8,
    ) {
        let workspace = Workspace::new(&entries);
        let tree = workspace.path("tree");
        let store = Store::open(&workspace.path("store")).unwrap();
        let digest = store.add_tree(&tree, &|_| false).unwrap();

        let mut paths = Vec::new();
        files(&entries, Path::new(""), &mut paths);
        prop_assume!(!paths.is_empty());
        let file = tree.join(&paths[which.index(paths.len())]);

        let mode = fs::metadata(&file).unwrap().permissions().mode();
        let other_mode = if mode & 0o111 != 0 { mode & !0o111 } else { mode | 0o100 };
        fs::set_permissions(&file, fs::Permissions::from_mode(other_mode)).unwrap();
        let other_exec = store.add_tree(&tree, &|_| false).unwrap();
        prop_assert_ne!(other_exec, digest, "flipping the exec bits of {}", file.display());
        fs::set_permissions(&file, fs::Permissions::from_mode(mode)).unwrap();
        prop_assert_eq!(store.add_tree(&tree, &|_| false).unwrap(), digest);

        let mut content = fs::read(&file).unwrap();
        if content.is_empty() {
            content.push(flip);
        } else {
            let at = offset.index(content.len());
            content[at] ^= flip;
        }
        // Owner-writable first: the tree may have read-only files.
        fs::set_permissions(&file, fs::Permissions::from_mode(mode | 0o200)).unwrap();
        fs::write(&file, &content).unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(mode)).unwrap();
        prop_assert_ne!(store.add_tree(&tree, &|_| false).unwrap(), digest, "changing a byte of {}", file.display());
    }

    #[test]
    fn checkout_and_materialize_give_back_the_tree_and_write_nowhere_else(entries in tree()) {
        let workspace = Workspace::new(&entries);
        let store = Store::open(&workspace.path("store")).unwrap();
        let digest = store.add_tree(&workspace.path("tree"), &|_| false).unwrap();
        let dest = workspace.path("checkout");
        let before = snapshot(workspace.dir.path(), &[store.root()]);

        let materialized = store.materialize(&digest).unwrap();
        prop_assert!(materialized.starts_with(store.root()), "{}", materialized.display());
        prop_assert_eq!(&before, &snapshot(workspace.dir.path(), &[store.root()]), "materialize wrote outside the store");
        assert_store_tmp_empty(&store);
        prop_assert_eq!(read(&materialized), normalized(&entries, 0o755, 0o644));
        prop_assert_eq!(store.materialize(&digest).unwrap(), materialized.clone(), "materialized twice");

        store.checkout(&digest, &dest).unwrap();
        prop_assert_eq!(&before, &snapshot(workspace.dir.path(), &[store.root(), &dest]), "checkout wrote outside its destination");
        assert_store_tmp_empty(&store);
        prop_assert_eq!(read(&dest), normalized(&entries, 0o755, 0o644));
        prop_assert_eq!(store.add_tree(&dest, &|_| false).unwrap(), digest);
        prop_assert!(store.checkout(&digest, &dest).is_err(), "checkout over an existing destination");
    }
}
