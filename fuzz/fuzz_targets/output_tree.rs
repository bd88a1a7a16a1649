//! The output-tree reader and writers on hostile trees: a directory built from the fuzz input
//! (files with any bytes and modes, nested and empty directories, symlinks to anything, including
//! absolute paths and `..` chains that point at a sentinel directory beside the tree, sockets,
//! names that are not UTF-8) is added with `Store::add_tree`, then written back out with
//! `materialize` and `checkout`.
//!
//! Invariants: nothing panics; `add_tree` writes only inside the store root and leaves the tree
//! as it was; `materialize` returns a path inside the store and writes nothing outside it;
//! `checkout` creates only its destination; both give back a tree with the same digest; the
//! store's `tmp/` is empty after each call.
#![no_main]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use sealroom::store::Store;

#[derive(Arbitrary, Debug)]
enum Node {
    File {
        name: Name,
        content: Vec<u8>,
        mode: u16,
    },
    Directory {
        name: Name,
        mode: u16,
        children: Vec<Node>,
    },
    Symlink {
        name: Name,
        target: Target,
    },
    /// A Unix socket: something a tree cannot hold.
    Socket {
        name: Name,
    },
}

#[derive(Arbitrary, Debug)]
enum Name {
    Text(String),
    Bytes(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Target {
    Text(String),
    Bytes(Vec<u8>),
    /// `../` repeated, then `outside/` and a name: the sentinel, from wherever the link is.
    Climb(u8, String),
    /// The sentinel directory by its absolute path.
    AbsoluteOutside(String),
    Root,
}

/// Enough to reach every kind of entry and a few levels, small enough to stay fast.
const MAX_NODES: usize = 48;
const MAX_DEPTH: usize = 6;

struct Builder<'a> {
    outside: &'a Path,
    nodes: usize,
}

impl Builder<'_> {
    /// Creates what it can; the fuzzer's names may be invalid on Linux (empty, `/`, too long),
    /// and those nodes are skipped.
    fn build(&mut self, dir: &Path, nodes: &[Node], depth: usize) {
        for node in nodes {
            if self.nodes >= MAX_NODES {
                return;
            }
            self.nodes += 1;
            let name = match node {
                Node::File { name, .. }
                | Node::Directory { name, .. }
                | Node::Symlink { name, .. }
                | Node::Socket { name } => name,
            };
            let Some(path) = child(dir, name) else {
                continue;
            };
            match node {
                Node::File { content, mode, .. } => {
                    if fs::write(&path, content).is_ok() {
                        // Keep the owner's read bit: the store must be able to read it.
                        let mode = u32::from(*mode) & 0o7777 | 0o400;
                        let _ = fs::set_permissions(&path, fs::Permissions::from_mode(mode));
                    }
                }
                Node::Directory { mode, children, .. } => {
                    if depth < MAX_DEPTH && fs::create_dir(&path).is_ok() {
                        self.build(&path, children, depth + 1);
                        let mode = u32::from(*mode) & 0o7777 | 0o700;
                        let _ = fs::set_permissions(&path, fs::Permissions::from_mode(mode));
                    }
                }
                Node::Symlink { target, .. } => {
                    let target: PathBuf = match target {
                        Target::Text(text) => text.into(),
                        Target::Bytes(bytes) => OsStr::from_bytes(bytes).into(),
                        Target::Climb(levels, name) => {
                            let mut target = "../".repeat(usize::from(*levels % 12));
                            target.push_str("outside/");
                            target.push_str(name);
                            target.into()
                        }
                        Target::AbsoluteOutside(name) => self.outside.join(name),
                        Target::Root => "/".into(),
                    };
                    let _ = symlink(target, &path);
                }
                Node::Socket { .. } => {
                    let _ = std::os::unix::net::UnixListener::bind(&path);
                }
            }
        }
    }
}

fn child(dir: &Path, name: &Name) -> Option<PathBuf> {
    let name: &OsStr = match name {
        Name::Text(text) => OsStr::new(text),
        Name::Bytes(bytes) => OsStr::from_bytes(bytes),
    };
    let bytes = name.as_bytes();
    let valid = !bytes.is_empty()
        && bytes != b"."
        && bytes != b".."
        && !bytes.contains(&b'/')
        && !bytes.contains(&0);
    valid.then(|| dir.join(name))
}

/// What a path holds, as far as the invariants care.
#[derive(Debug, PartialEq, Eq)]
enum Snapshot {
    File { mode: u32, content: Vec<u8> },
    Directory { mode: u32 },
    Symlink { target: PathBuf },
    Other { mode: u32 },
}

/// Everything under `root`, symlinks not followed, leaving out the paths in `skip`.
fn snapshot(root: &Path, skip: &[&Path]) -> BTreeMap<PathBuf, Snapshot> {
    let mut found = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for item in fs::read_dir(&dir).expect("listing a snapshot directory") {
            let path = item.expect("listing a snapshot directory").path();
            if skip.contains(&path.as_path()) {
                continue;
            }
            let metadata = fs::symlink_metadata(&path).expect("reading metadata");
            let mode = metadata.permissions().mode();
            let entry = if metadata.is_symlink() {
                Snapshot::Symlink {
                    target: fs::read_link(&path).expect("reading a symlink"),
                }
            } else if metadata.is_dir() {
                pending.push(path.clone());
                Snapshot::Directory { mode }
            } else if metadata.is_file() {
                Snapshot::File {
                    mode,
                    content: fs::read(&path).expect("reading a file"),
                }
            } else {
                Snapshot::Other { mode }
            };
            found.insert(path, entry);
        }
    }
    found
}

fn assert_tmp_empty(store: &Store) {
    let tmp = store
        .root()
        .join(sealroom::store::LAYOUT_VERSION)
        .join("tmp");
    let left: Vec<_> = fs::read_dir(&tmp)
        .expect("listing the store's tmp/")
        .map(|item| item.expect("listing tmp/").path())
        .collect();
    assert!(left.is_empty(), "left in the store's tmp/: {left:?}");
}

fuzz_target!(|nodes: Vec<Node>| {
    // tmpfs: the store syncs every blob, which is slow on a disk.
    let base = tempfile::Builder::new()
        .prefix("sealroom-fuzz-")
        .tempdir_in(if Path::new("/dev/shm").is_dir() {
            "/dev/shm"
        } else {
            "/tmp"
        })
        .expect("a temp dir");
    let base = base.path();
    let tree = base.join("tree");
    let outside = base.join("outside");
    let store_root = base.join("store");
    let dest = base.join("checkout");
    fs::create_dir(&tree).unwrap();
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("sentinel"), b"must not change").unwrap();
    Builder {
        outside: &outside,
        nodes: 0,
    }
    .build(&tree, &nodes, 0);

    let store = Store::open(&store_root).expect("opening the store");
    let before = snapshot(base, &[&store_root]);

    let added = store.add_tree(&tree, &|_| false);
    assert_eq!(
        before,
        snapshot(base, &[&store_root]),
        "add_tree wrote outside the store"
    );
    assert_tmp_empty(&store);
    let Ok(digest) = added else {
        return;
    };
    // Adding the same tree again gives the same digest.
    assert_eq!(store.add_tree(&tree, &|_| false).unwrap(), digest);

    let materialized = store
        .materialize(&digest)
        .expect("materializing a tree just added");
    assert!(
        materialized.starts_with(&store_root),
        "materialized outside the store: {}",
        materialized.display()
    );
    assert_eq!(
        before,
        snapshot(base, &[&store_root]),
        "materialize wrote outside the store"
    );
    assert_tmp_empty(&store);
    assert_eq!(store.add_tree(&materialized, &|_| false).unwrap(), digest);

    store
        .checkout(&digest, &dest)
        .expect("checking out a tree just added");
    assert_eq!(
        before,
        snapshot(base, &[&store_root, &dest]),
        "checkout wrote outside its destination"
    );
    assert_tmp_empty(&store);
    assert_eq!(store.add_tree(&dest, &|_| false).unwrap(), digest);

    // Read-only directories in the tree and the checkouts: TempDir's removal needs write bits.
    sealroom::store::remove_tree_force(base).expect("removing the fuzz directory");
});
