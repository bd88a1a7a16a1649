//! Several writers on one store at once: threads with their own `Store` handles (each its own
//! open lock file, as separate processes would have) add the same blobs, trees, action entries
//! and checkouts simultaneously; all succeed and agree.

use std::fs;
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use sealroom::digest::{ActionDigest, BlobDigest};
use sealroom::store::Store;
use sealroom::store::actions::ActionResult;

const WRITERS: usize = 8;

fn sample(dir: &Path) {
    for i in 0..20 {
        let path = dir.join(format!("d{}/f{i}", i % 4));
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, format!("file {i}\n").repeat(1000 * i + 1)).unwrap();
    }
    fs::create_dir_all(dir.join("empty")).unwrap();
    std::os::unix::fs::symlink("d0/f0", dir.join("link")).unwrap();
}

#[test]
fn store_eight_writers_adding_the_same_tree_at_once_all_succeed_with_one_result() {
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    sample(&source);
    let root = work.path().join("store");
    let start = Arc::new(Barrier::new(WRITERS));
    let action = ActionDigest::of(b"the same step");
    let writers: Vec<_> = (0..WRITERS)
        .map(|_| {
            let (root, source, start) = (root.clone(), source.clone(), start.clone());
            std::thread::spawn(move || {
                let store = Store::open(&root).unwrap();
                start.wait();
                let tree = store.add_tree(&source, &|_| false).unwrap();
                let blob = store
                    .add_blob_from_reader(&b"one blob"[..], "a test", None)
                    .unwrap();
                store
                    .action_put(
                        &action,
                        &ActionResult {
                            output: tree,
                            log: blob.0,
                            invocation: None,
                        },
                    )
                    .unwrap();
                let checkout = store.materialize(&tree).unwrap();
                (tree, blob, checkout)
            })
        })
        .collect();
    let results: Vec<_> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    for result in &results {
        assert_eq!(result, &results[0]);
    }
    let (tree, blob, checkout) = &results[0];
    assert_eq!(*blob, (BlobDigest::of(b"one blob"), 8));
    assert_eq!(
        fs::read_to_string(checkout.join("d1/f1")).unwrap(),
        "file 1\n".repeat(1001)
    );

    let store = Store::open(&root).unwrap();
    assert_eq!(store.action_get(&action).unwrap().output, *tree);
    assert_eq!(
        fs::read_dir(root.join("v1/tmp")).unwrap().count(),
        0,
        "losers leave nothing in tmp/"
    );
    drop(store);
    let report = Store::open_exclusive(&root, Duration::ZERO)
        .unwrap()
        .verify()
        .unwrap();
    assert!(report.is_healthy(), "{report:#?}");
    assert_eq!(report.checked.checkouts, 1);
}
