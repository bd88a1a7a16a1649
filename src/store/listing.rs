//! Listing a directory tree, each directory's entries with their metadata, on several threads.
//!
//! Hashing an unchanged source tree is mostly `statx` calls, one per entry; as `git status`
//! does (`core.preloadIndex`), they are spread over the machine's cores. Everything after the
//! listing (hashing files, writing tree objects) stays on the calling thread, in order.
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};

use super::StoreError;

/// The most threads a listing uses.
const MAX_THREADS: usize = 8;

/// One entry of a listed directory.
pub(super) struct Listed {
    pub name: String,
    /// Its path inside the root, `/`-separated.
    pub relative: String,
    /// Its own metadata (a symlink is not followed).
    pub metadata: fs::Metadata,
}

/// Each directory's entries (excluded ones left out, in the order the filesystem gave them), by
/// its path inside the root (`""` for the root); a directory that could not be listed has the
/// error instead, and nothing under it is listed.
pub(super) type Listings = HashMap<String, Result<Vec<Listed>, StoreError>>;

/// Lists `root` and every directory under it that `exclude` keeps.
pub(super) fn list_tree(root: &Path, exclude: &(dyn Fn(&str) -> bool + Sync)) -> Listings {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_THREADS);
    let work = Work {
        root,
        exclude,
        queue: Mutex::new(Queue {
            jobs: vec![(root.to_path_buf(), String::new())],
            busy: 0,
        }),
        changed: Condvar::new(),
        listings: Mutex::new(HashMap::new()),
    };
    std::thread::scope(|scope| {
        for _ in 1..threads {
            scope.spawn(|| work.run());
        }
        work.run();
    });
    work.listings
        .into_inner()
        .expect("no listing thread panicked")
}

struct Work<'a> {
    root: &'a Path,
    exclude: &'a (dyn Fn(&str) -> bool + Sync),
    queue: Mutex<Queue>,
    /// Signalled when a job is added or finished.
    changed: Condvar,
    listings: Mutex<Listings>,
}

struct Queue {
    /// Directories still to list: their path, and their path inside the root.
    jobs: Vec<(PathBuf, String)>,
    /// How many are being listed: while any is, more jobs may come.
    busy: usize,
}

impl Work<'_> {
    /// Takes jobs until there are none and none can come.
    fn run(&self) {
        loop {
            let (dir, relative) = {
                let mut queue = self.queue.lock().expect("no listing thread panicked");
                loop {
                    if let Some(job) = queue.jobs.pop() {
                        queue.busy += 1;
                        break job;
                    }
                    if queue.busy == 0 {
                        return;
                    }
                    queue = self
                        .changed
                        .wait(queue)
                        .expect("no listing thread panicked");
                }
            };
            let listed = self.list(&dir, &relative);
            let subdirectories: Vec<_> = listed
                .iter()
                .flatten()
                .filter(|entry| entry.metadata.is_dir())
                .map(|entry| (dir.join(&entry.name), entry.relative.clone()))
                .collect();
            self.listings
                .lock()
                .expect("no listing thread panicked")
                .insert(relative, listed);
            let mut queue = self.queue.lock().expect("no listing thread panicked");
            queue.jobs.extend(subdirectories);
            queue.busy -= 1;
            self.changed.notify_all();
        }
    }

    fn list(&self, dir: &Path, relative: &str) -> Result<Vec<Listed>, StoreError> {
        let mut listed = Vec::new();
        for item in fs::read_dir(dir).map_err(|e| StoreError::io("listing", dir, e))? {
            let item = item.map_err(|e| StoreError::io("listing", dir, e))?;
            let Ok(name) = item.file_name().into_string() else {
                let path = item.path();
                return Err(StoreError::NonUtf8Name {
                    tree_root: self.root.to_path_buf(),
                    path: path.strip_prefix(self.root).unwrap_or(&path).to_path_buf(),
                });
            };
            let relative = super::join_relative(relative, &name);
            if (self.exclude)(&relative) {
                continue;
            }
            // Through the directory's descriptor (`fstatat`), not the whole path again.
            let metadata = item
                .metadata()
                .map_err(|e| StoreError::io("reading metadata of", item.path(), e))?;
            listed.push(Listed {
                name,
                relative,
                metadata,
            });
        }
        Ok(listed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_every_directory_once_and_leaves_out_what_is_excluded() {
        let root = tempfile::tempdir().unwrap();
        for dir in 0..20 {
            for sub in 0..3 {
                let path = root.path().join(format!("d{dir}/s{sub}"));
                fs::create_dir_all(&path).unwrap();
                fs::write(path.join("f"), "x").unwrap();
            }
        }
        fs::create_dir_all(root.path().join("skip/deep")).unwrap();
        let listings = list_tree(root.path(), &|relative| relative == "skip");
        assert_eq!(listings.len(), 1 + 20 + 60, "the root, d*, d*/s*");
        assert_eq!(listings[""].as_ref().unwrap().len(), 20);
        let leaf = listings["d7/s2"].as_ref().unwrap();
        assert_eq!(leaf.len(), 1);
        assert_eq!(
            (leaf[0].name.as_str(), leaf[0].relative.as_str()),
            ("f", "d7/s2/f")
        );
        assert!(leaf[0].metadata.is_file());
        assert!(!listings.contains_key("skip/deep"));
    }

    #[test]
    fn a_directory_that_cannot_be_listed_has_its_error() {
        let root = tempfile::tempdir().unwrap();
        let listings = list_tree(&root.path().join("gone"), &|_| false);
        assert!(matches!(listings[""], Err(StoreError::Io { .. })));
    }
}
