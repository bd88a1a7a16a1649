//! `store verify`: re-hash everything the store holds, and repair what is wrong so that the next
//! build refetches or rebuilds it.
//!
//! 1. Every blob is re-hashed (streaming) against its name; every tree object is re-hashed and
//!    parsed. Corrupt entries are *problems* and are moved to `quarantine/<kind>/<name>-<unix
//!    time>`, out of the store's sight but kept for inspection.
//! 2. A tree that references (transitively) a blob or tree that is not in the store is removed:
//!    it can no longer be checked out. If the object it references was quarantined just now, the
//!    tree is merely *invalidated*; if it was missing before, the tree itself is a (dangling)
//!    problem and is quarantined.
//! 3. Every action entry must parse and name an output tree that is still complete; entries that
//!    do not are removed (invalidated), or quarantined when they were dangling before we started.
//!    Removing an entry is what makes the next build rerun that step.
//! 4. Every checkout is compared with its tree, file contents re-hashed; a checkout that differs
//!    or whose tree is gone is removed (checkouts are derived data).
//! 5. `tmp/` entries older than an hour are removed.
//!
//! Runs only on an [`ExclusiveStore`]: nothing else may read or add entries meanwhile.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::digest::{ActionDigest, BlobDigest, TreeDigest, hash_file};

use super::actions::ActionResult;
use super::usage::{Item, list};
use super::{EntryKind, ExclusiveStore, Store, StoreError, TreeObject, remove_tree_force};

/// How old a `tmp/` entry must be before `verify` and `gc` treat it as a crash's leftover.
pub const STALE_TMP_AGE: Duration = Duration::from_secs(60 * 60);

/// The kinds of store entries, as reports name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Blob,
    Tree,
    Action,
    Checkout,
}

impl Kind {
    /// The directory under `quarantine/` that holds entries of this kind.
    fn quarantine_dir_name(self) -> &'static str {
        match self {
            Kind::Blob => "blobs",
            Kind::Tree => "trees",
            Kind::Action => "actions",
            Kind::Checkout => "checkouts",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Blob => "blob",
            Kind::Tree => "tree",
            Kind::Action => "action entry",
            Kind::Checkout => "checkout",
        })
    }
}

/// What `store verify` found and did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VerifyReport {
    pub root: PathBuf,
    pub checked: Checked,
    /// Corrupt or dangling entries. Non-empty means the verification failed.
    pub problems: Vec<Problem>,
    /// Entries removed because they depend on a problem (or on something already missing).
    pub invalidated: Vec<Invalidated>,
    /// `tmp/` entries older than an hour that were removed.
    pub stale_tmp_removed: u64,
}

#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Checked {
    pub blobs: u64,
    pub trees: u64,
    pub actions: u64,
    pub checkouts: u64,
    /// Bytes re-hashed (blobs and checkout files).
    pub bytes_hashed: u64,
}

/// One corrupt or dangling entry: where it was, what was expected and found, what we did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Problem {
    pub kind: Kind,
    /// The entry's file name: the hex of its digest, for every entry sealroom wrote.
    pub name: String,
    pub path: PathBuf,
    pub expected: String,
    pub found: String,
    pub resolution: Resolution,
}

#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum Resolution {
    /// Moved under `quarantine/`.
    Quarantined { to: PathBuf },
    /// Deleted (derived data: a checkout).
    Removed,
}

/// An entry removed because something it depends on is gone.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Invalidated {
    pub kind: Kind,
    pub name: String,
    pub path: PathBuf,
    pub because: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} at `{}`: expected {}, found {}; ",
            self.kind,
            self.name,
            self.path.display(),
            self.expected,
            self.found
        )?;
        match &self.resolution {
            Resolution::Quarantined { to } => write!(f, "moved to `{}`", to.display()),
            Resolution::Removed => f.write_str("removed"),
        }
    }
}

impl fmt::Display for Invalidated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "removed {} {}: {}", self.kind, self.name, self.because)
    }
}

impl VerifyReport {
    pub fn is_healthy(&self) -> bool {
        self.problems.is_empty()
    }

    /// The error `store verify` ends with when it found problems: a summary naming them.
    pub fn failure(&self) -> Option<StoreError> {
        if self.is_healthy() {
            return None;
        }
        let mut named: Vec<String> = self
            .problems
            .iter()
            .take(3)
            .map(|problem| format!("{} {}", problem.kind, problem.name))
            .collect();
        if self.problems.len() > 3 {
            named.push(format!("and {} more", self.problems.len() - 3));
        }
        let count = |kind| {
            self.invalidated
                .iter()
                .filter(|entry| entry.kind == kind)
                .count()
        };
        Some(StoreError::VerificationFailed {
            summary: format!(
                "store verification failed: {} corrupt or dangling {} ({}), quarantined under `{}`; removed {} action-cache {}, {} {} and {} {} that depended on them, so the next build reruns those steps",
                self.problems.len(),
                plural(self.problems.len(), "entry", "entries"),
                named.join(", "),
                self.root
                    .join(super::LAYOUT_VERSION)
                    .join("quarantine")
                    .display(),
                count(Kind::Action),
                plural(count(Kind::Action), "entry", "entries"),
                count(Kind::Tree),
                plural(count(Kind::Tree), "tree", "trees"),
                count(Kind::Checkout),
                plural(count(Kind::Checkout), "checkout", "checkouts"),
            ),
        })
    }
}

fn plural(n: usize, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}

impl ExclusiveStore {
    /// Re-hashes and cross-checks the whole store, quarantining or removing what is wrong (see
    /// the module documentation). An `Err` is an I/O failure of the check itself; what the
    /// check found is in the report.
    pub fn verify(&self) -> Result<VerifyReport, StoreError> {
        let store = &self.store;
        let mut verifier = Verifier {
            store,
            stamp: unix_seconds(SystemTime::now()),
            report: VerifyReport {
                root: store.root.clone(),
                checked: Checked::default(),
                problems: Vec::new(),
                invalidated: Vec::new(),
                stale_tmp_removed: 0,
            },
            good_blobs: HashSet::new(),
            quarantined_blobs: HashSet::new(),
            good_trees: HashMap::new(),
            quarantined_trees: HashSet::new(),
            removed_trees: HashMap::new(),
            missing: HashMap::new(),
        };
        verifier.blobs()?;
        verifier.trees()?;
        verifier.incomplete_trees()?;
        verifier.actions()?;
        verifier.checkouts()?;
        verifier.report.stale_tmp_removed = store.remove_stale_tmp(STALE_TMP_AGE)?.entries;
        Ok(verifier.report)
    }
}

/// An object a tree refers to.
#[derive(Clone, Copy)]
enum Reference {
    Blob(BlobDigest),
    Tree(TreeDigest),
}

/// Why a tree is incomplete: the first object below it that is not in the store.
#[derive(Clone)]
struct Missing {
    /// e.g. "blob sha256:…".
    what: String,
    /// It was quarantined by this run (rather than missing before we started).
    quarantined: bool,
    /// The tree references it itself (rather than through a subtree).
    direct: bool,
}

struct Verifier<'a> {
    store: &'a Store,
    stamp: u64,
    report: VerifyReport,
    good_blobs: HashSet<BlobDigest>,
    quarantined_blobs: HashSet<BlobDigest>,
    /// Tree objects that hash to their name and parse, with what they reference.
    good_trees: HashMap<TreeDigest, Vec<Reference>>,
    quarantined_trees: HashSet<TreeDigest>,
    /// Trees this run quarantined or removed, and why.
    removed_trees: HashMap<TreeDigest, String>,
    /// Memo of `missing_below`: `None` for a complete tree.
    missing: HashMap<TreeDigest, Option<Missing>>,
}

impl Verifier<'_> {
    fn problem(
        &mut self,
        kind: Kind,
        item: &Item,
        expected: String,
        found: String,
    ) -> Result<(), StoreError> {
        let resolution = if kind == Kind::Checkout {
            remove_tree_force(&item.path)?;
            Resolution::Removed
        } else {
            Resolution::Quarantined {
                to: self.store.quarantine(kind, item, self.stamp)?,
            }
        };
        self.report.problems.push(Problem {
            kind,
            name: item.name.clone(),
            path: item.path.clone(),
            expected,
            found,
            resolution,
        });
        Ok(())
    }

    fn invalidate(&mut self, kind: Kind, item: &Item, because: String) -> Result<(), StoreError> {
        remove_tree_force(&item.path)?;
        self.report.invalidated.push(Invalidated {
            kind,
            name: item.name.clone(),
            path: item.path.clone(),
            because,
        });
        Ok(())
    }

    /// A store entry that is not a regular file named by a digest (or, for checkouts, a
    /// directory named by one).
    fn stray(&mut self, kind: Kind, item: &Item) -> Result<(), StoreError> {
        let expected = match kind {
            Kind::Checkout => "a directory named by 64 lower-case hex digits",
            _ => "a regular file named by 64 lower-case hex digits",
        };
        let found = format!("a {}", describe(&item.metadata));
        self.problem(kind, item, expected.to_string(), found)
    }

    fn blobs(&mut self) -> Result<(), StoreError> {
        for item in list(&self.store.blobs_dir())? {
            self.report.checked.blobs += 1;
            let Ok(expected) = BlobDigest::from_hex(&item.name) else {
                self.stray(Kind::Blob, &item)?;
                continue;
            };
            if !item.metadata.is_file() {
                self.stray(Kind::Blob, &item)?;
                continue;
            }
            match hash_file::<crate::digest::Blob>(&item.path) {
                Ok((found, size)) if found == expected => {
                    self.report.checked.bytes_hashed += size;
                    self.good_blobs.insert(expected);
                }
                Ok((found, size)) => {
                    self.report.checked.bytes_hashed += size;
                    self.problem(
                        Kind::Blob,
                        &item,
                        format!("content hashing to {expected}"),
                        format!("{found} ({size} bytes)"),
                    )?;
                    self.quarantined_blobs.insert(expected);
                }
                Err(error) => {
                    self.problem(
                        Kind::Blob,
                        &item,
                        "a readable file".to_string(),
                        format!("a read error: {error}"),
                    )?;
                    self.quarantined_blobs.insert(expected);
                }
            }
        }
        Ok(())
    }

    fn trees(&mut self) -> Result<(), StoreError> {
        for item in list(&self.store.trees_dir())? {
            self.report.checked.trees += 1;
            let Ok(expected) = TreeDigest::from_hex(&item.name) else {
                self.stray(Kind::Tree, &item)?;
                continue;
            };
            if !item.metadata.is_file() {
                self.stray(Kind::Tree, &item)?;
                continue;
            }
            let checked = fs::read(&item.path)
                .map_err(|error| {
                    (
                        "a readable file".to_string(),
                        format!("a read error: {error}"),
                    )
                })
                .and_then(|bytes| {
                    let found = TreeDigest::of(&bytes);
                    if found != expected {
                        return Err((
                            format!("content hashing to {expected}"),
                            format!("{found} ({} bytes)", bytes.len()),
                        ));
                    }
                    TreeObject::from_canonical_bytes(&bytes).map_err(|error| {
                        (
                            "a canonical tree object".to_string(),
                            format!("content that is not one: {error}"),
                        )
                    })
                });
            match checked {
                Ok(tree) => {
                    let references = tree
                        .entries
                        .iter()
                        .filter_map(|entry| match entry.kind {
                            EntryKind::File { digest, .. } => Some(Reference::Blob(digest)),
                            EntryKind::Directory { digest } => Some(Reference::Tree(digest)),
                            EntryKind::Symlink { .. } => None,
                        })
                        .collect();
                    self.good_trees.insert(expected, references);
                }
                Err((expected_text, found_text)) => {
                    self.problem(Kind::Tree, &item, expected_text, found_text)?;
                    self.quarantined_trees.insert(expected);
                    self.removed_trees
                        .insert(expected, "it was corrupt and is quarantined".to_string());
                }
            }
        }
        Ok(())
    }

    /// Why `tree` cannot be checked out, if it cannot: the first object below it that is not
    /// in the store. A tree that is itself absent is reported as missing directly.
    fn missing_below(&mut self, tree: TreeDigest) -> Option<Missing> {
        if let Some(known) = self.missing.get(&tree) {
            return known.clone();
        }
        let Some(references) = self.good_trees.get(&tree).cloned() else {
            return Some(Missing {
                what: format!("tree {tree}"),
                quarantined: self.quarantined_trees.contains(&tree),
                direct: true,
            });
        };
        // A cycle is impossible (a tree's digest covers its subtrees'), but a hand-made store
        // could fake one by name: treat the tree as complete while it is being looked at.
        self.missing.insert(tree, None);
        let mut found = None;
        for reference in references {
            found = match reference {
                Reference::Blob(blob) if !self.good_blobs.contains(&blob) => Some(Missing {
                    what: format!("blob {blob}"),
                    quarantined: self.quarantined_blobs.contains(&blob),
                    direct: true,
                }),
                Reference::Blob(_) => None,
                Reference::Tree(subtree) => {
                    let present = self.good_trees.contains_key(&subtree);
                    self.missing_below(subtree).map(|missing| Missing {
                        direct: !present,
                        ..missing
                    })
                }
            };
            if found.is_some() {
                break;
            }
        }
        self.missing.insert(tree, found.clone());
        found
    }

    /// Removes every tree that references something not in the store.
    fn incomplete_trees(&mut self) -> Result<(), StoreError> {
        let mut trees: Vec<TreeDigest> = self.good_trees.keys().copied().collect();
        trees.sort();
        let mut incomplete = Vec::new();
        for tree in trees {
            if let Some(missing) = self.missing_below(tree) {
                incomplete.push((tree, missing));
            }
        }
        for (tree, missing) in incomplete {
            let path = self.store.tree_path(&tree);
            let item = Item {
                name: tree.hex(),
                metadata: fs::symlink_metadata(&path)
                    .map_err(|e| StoreError::io("reading metadata of", &path, e))?,
                path,
            };
            if missing.direct && !missing.quarantined {
                self.problem(
                    Kind::Tree,
                    &item,
                    format!("{} (which it references) to be in the store", missing.what),
                    "it is not".to_string(),
                )?;
                self.removed_trees.insert(
                    tree,
                    format!("it references {}, which is not in the store", missing.what),
                );
            } else {
                let because = format!(
                    "it references {}, which {}",
                    missing.what,
                    if missing.quarantined {
                        "was quarantined"
                    } else {
                        "is not in the store"
                    }
                );
                self.invalidate(Kind::Tree, &item, because.clone())?;
                self.removed_trees.insert(tree, because);
            }
            self.good_trees.remove(&tree);
        }
        Ok(())
    }

    fn actions(&mut self) -> Result<(), StoreError> {
        for item in list(&self.store.action_entries_dir())? {
            self.report.checked.actions += 1;
            if ActionDigest::from_hex(&item.name).is_err() || !item.metadata.is_file() {
                self.stray(Kind::Action, &item)?;
                continue;
            }
            let parsed = fs::read(&item.path)
                .map_err(|error| format!("a read error: {error}"))
                .and_then(|bytes| {
                    serde_json::from_slice::<ActionResult>(&bytes)
                        .map_err(|error| format!("content that is not one: {error}"))
                });
            let result = match parsed {
                Ok(result) => result,
                Err(found) => {
                    self.problem(
                        Kind::Action,
                        &item,
                        "an action result (JSON with an output tree and a log digest)".to_string(),
                        found,
                    )?;
                    continue;
                }
            };
            if let Some(why) = self.removed_trees.get(&result.output) {
                let because = format!("its output tree {} was removed: {why}", result.output);
                self.invalidate(Kind::Action, &item, because)?;
            } else if !self.good_trees.contains_key(&result.output) {
                self.problem(
                    Kind::Action,
                    &item,
                    format!("its output tree {} to be in the store", result.output),
                    "it is not".to_string(),
                )?;
            } else if self.quarantined_blobs.contains(&result.log) {
                let because = format!("its log blob {} was quarantined", result.log);
                self.invalidate(Kind::Action, &item, because)?;
            }
        }
        Ok(())
    }

    fn checkouts(&mut self) -> Result<(), StoreError> {
        for item in list(&self.store.checkouts_dir())? {
            self.report.checked.checkouts += 1;
            let tree = match TreeDigest::from_hex(&item.name) {
                Ok(tree) if item.metadata.is_dir() => tree,
                _ => {
                    self.stray(Kind::Checkout, &item)?;
                    continue;
                }
            };
            if let Some(why) = self.removed_trees.get(&tree) {
                let because = format!("its tree was removed: {why}");
                self.invalidate(Kind::Checkout, &item, because)?;
                continue;
            }
            if !self.good_trees.contains_key(&tree) {
                let because = format!("its tree {tree} is not in the store");
                self.invalidate(Kind::Checkout, &item, because)?;
                continue;
            }
            if let Some(mismatch) = self.compare_checkout(&item.path, &tree, "")? {
                self.problem(
                    Kind::Checkout,
                    &item,
                    format!("`{}` to be {}", mismatch.path, mismatch.expected),
                    mismatch.found,
                )?;
            }
        }
        Ok(())
    }

    /// The first difference between the directory `dir` and the tree `tree`, if any.
    fn compare_checkout(
        &mut self,
        dir: &Path,
        tree: &TreeDigest,
        relative: &str,
    ) -> Result<Option<Mismatch>, StoreError> {
        let object = self.store.read_tree(tree)?;
        let join = |name: &str| super::join_relative(relative, name);
        let actual = list(dir)?;
        for item in &actual {
            if object.get(&item.name).is_none() {
                return Ok(Some(Mismatch {
                    path: join(&item.name),
                    expected: "absent (its tree has no such entry)".to_string(),
                    found: format!("a {}", describe(&item.metadata)),
                }));
            }
        }
        for entry in &object.entries {
            let path = join(&entry.name);
            let Some(item) = actual.iter().find(|item| item.name == entry.name) else {
                return Ok(Some(Mismatch {
                    path,
                    expected: "present".to_string(),
                    found: "nothing".to_string(),
                }));
            };
            let mismatch = |expected: String, found: String| {
                Ok(Some(Mismatch {
                    path: path.clone(),
                    expected,
                    found,
                }))
            };
            match &entry.kind {
                EntryKind::File {
                    digest, executable, ..
                } => {
                    let expected = format!(
                        "a{} file with content {digest}",
                        if *executable { "n executable" } else { "" }
                    );
                    if !item.metadata.is_file() {
                        return mismatch(expected, format!("a {}", describe(&item.metadata)));
                    }
                    let (found, size) = hash_file::<crate::digest::Blob>(&item.path)
                        .map_err(|e| StoreError::io("reading", &item.path, e))?;
                    self.report.checked.bytes_hashed += size;
                    if found != *digest {
                        return mismatch(expected, format!("content {found} ({size} bytes)"));
                    }
                    let is_executable = item.metadata.permissions().mode() & 0o111 != 0;
                    if is_executable != *executable {
                        return mismatch(
                            expected,
                            format!("mode {:o}", item.metadata.permissions().mode() & 0o7777),
                        );
                    }
                }
                EntryKind::Symlink { target } => {
                    let expected = format!("a symlink to `{target}`");
                    if !item.metadata.is_symlink() {
                        return mismatch(expected, format!("a {}", describe(&item.metadata)));
                    }
                    let found = fs::read_link(&item.path)
                        .map_err(|e| StoreError::io("reading the symlink", &item.path, e))?;
                    if found.as_os_str() != target.as_str() {
                        return mismatch(expected, format!("a symlink to `{}`", found.display()));
                    }
                }
                EntryKind::Directory { digest } => {
                    if !item.metadata.is_dir() {
                        return mismatch(
                            format!("a directory (tree {digest})"),
                            format!("a {}", describe(&item.metadata)),
                        );
                    }
                    if let Some(found) = self.compare_checkout(&item.path, digest, &path)? {
                        return Ok(Some(found));
                    }
                }
            }
        }
        Ok(None)
    }
}

/// A difference between a checkout and its tree.
struct Mismatch {
    /// Relative to the checkout.
    path: String,
    expected: String,
    found: String,
}

impl Store {
    /// Moves `item` to `quarantine/<kind>/<name>-<stamp>` (with `-N` added if that exists).
    fn quarantine(&self, kind: Kind, item: &Item, stamp: u64) -> Result<PathBuf, StoreError> {
        let dir = self.quarantine_dir().join(kind.quarantine_dir_name());
        fs::create_dir_all(&dir).map_err(|e| StoreError::io("creating", &dir, e))?;
        let mut dest = dir.join(format!("{}-{stamp}", item.name));
        let mut n = 1;
        while dest.symlink_metadata().is_ok() {
            dest = dir.join(format!("{}-{stamp}-{n}", item.name));
            n += 1;
        }
        if item.metadata.is_dir() {
            // Moving a directory to another parent needs write permission on it.
            let mode = item.metadata.permissions().mode() | 0o700;
            fs::set_permissions(&item.path, fs::Permissions::from_mode(mode))
                .map_err(|e| StoreError::io("setting permissions of", &item.path, e))?;
        }
        fs::rename(&item.path, &dest)
            .map_err(|e| StoreError::io("moving into quarantine", &item.path, e))?;
        Ok(dest)
    }
}

pub(super) fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

fn describe(metadata: &fs::Metadata) -> &'static str {
    let file_type = metadata.file_type();
    if file_type.is_dir() {
        "directory"
    } else if file_type.is_file() {
        "regular file"
    } else if file_type.is_symlink() {
        "symlink"
    } else {
        "special file"
    }
}
