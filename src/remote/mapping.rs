//! The REAPI shape of what sealroom runs and stores, as pure functions: a step record becomes an
//! `Action` and its `Command`, a stored tree becomes a Merkle tree of `Directory` messages (and
//! an output tree a `Tree` message), and a `Tree` read back from a cache becomes stored trees
//! again. No I/O here: trees are read through the function a caller passes in, and the caller
//! stores what comes back.
//!
//! The mapping of a record (documented in docs/remote.md):
//! - `Command.arguments`: the record's argv; `environment_variables`: its environment, sorted by
//!   name (it is a sorted map); `output_paths`: `out` (the step's `/out`); `working_directory`:
//!   empty, the input root, since REAPI output paths are relative to it.
//! - `Action.input_root_digest`: a `Directory` holding `inputs/<name>/…` for each input mount,
//!   each the `Directory` form of the input's stored tree (the container's `/inputs/<name>`).
//! - platform properties, sorted, in the `Action` and (for servers of REAPI < 2.2) the
//!   `Command`: `OSFamily=linux` and `container-image=docker://sealroom@sha256:<image id>`. The
//!   record knows the image by its id only, so the name is a fixed placeholder: one image under
//!   two names is one action.
//! - `Action.salt`: the record format and the record's own action key. Everything the record
//!   holds that REAPI has no field for (user, limits, mounts, sandbox policy) is hashed into the
//!   action digest that way, so two records share an `Action` only if they are the same record.
//! - `Action.timeout`: the record's timeout.

use std::collections::{BTreeMap, HashMap};

use bazel_remote_apis::build::bazel::remote::execution::v2 as reapi;
use prost::Message;

use crate::digest::{ActionDigest, BlobDigest, TreeDigest};
use crate::sandbox::record::{MountRecord, RECORD_FORMAT, StepRecord};
use crate::store::tree::{Entry, EntryKind, TreeObject};

/// The output path of every step: its `/out`, relative to the input root.
pub const OUTPUT_PATH: &str = "out";
/// The directory of the input root that holds one directory per input.
pub const INPUTS_DIRECTORY: &str = "inputs";
/// The image name of `container-image` (see the module docs).
pub const IMAGE_NAME: &str = "sealroom";

/// A message as it is stored in a CAS: its bytes and their digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedMessage {
    pub digest: reapi::Digest,
    pub bytes: Vec<u8>,
}

impl EncodedMessage {
    pub fn of(message: &impl Message) -> Self {
        let bytes = message.encode_to_vec();
        EncodedMessage {
            digest: digest_of(&bytes),
            bytes,
        }
    }
}

/// The REAPI digest of `bytes`: lower-case sha256 hex and size.
pub fn digest_of(bytes: &[u8]) -> reapi::Digest {
    reapi::Digest {
        hash: BlobDigest::of(bytes).hex(),
        size_bytes: bytes.len() as i64,
    }
}

/// A step record as REAPI messages: the `Action` (whose digest is the action's key in a remote
/// cache), its `Command`, and every `Directory` of its input root.
#[derive(Debug, Clone)]
pub struct MappedAction {
    pub action: EncodedMessage,
    pub command: EncodedMessage,
    /// The input root first, then every `Directory` below it, each once.
    pub directories: Vec<EncodedMessage>,
}

/// Why a tree could not be mapped: the store could not give one of its objects, or a `Tree`
/// from a cache is not one sealroom can store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    #[error("cannot read tree {tree} from the store: {detail}")]
    MissingTree { tree: TreeDigest, detail: String },
    #[error("the remote output tree is malformed: {0}")]
    MalformedTree(String),
}

/// The `Action`, `Command` and input `Directory` messages of `record`. `read_tree` gives the
/// stored tree objects of the record's inputs (and below).
pub fn map_record(
    record: &StepRecord,
    read_tree: &dyn Fn(&TreeDigest) -> Result<TreeObject, String>,
) -> Result<MappedAction, MappingError> {
    let mut directories = DirectoryWriter::new(read_tree);
    let mut inputs = Vec::new();
    for mount in &record.mounts {
        if let MountRecord::Input { target, tree } = mount {
            let name = target
                .rsplit('/')
                .next()
                .expect("an input target has a last segment");
            inputs.push(reapi::DirectoryNode {
                name: name.to_string(),
                digest: Some(directories.directory_of(tree)?),
            });
        }
    }
    inputs.sort_by(|a, b| a.name.cmp(&b.name));
    let root = if inputs.is_empty() {
        reapi::Directory::default()
    } else {
        let inputs = directories.add(reapi::Directory {
            directories: inputs,
            ..Default::default()
        });
        reapi::Directory {
            directories: vec![reapi::DirectoryNode {
                name: INPUTS_DIRECTORY.to_string(),
                digest: Some(inputs),
            }],
            ..Default::default()
        }
    };
    let root = EncodedMessage::of(&root);
    let mut all = vec![root.clone()];
    all.extend(
        directories
            .written
            .into_values()
            .filter(|message| message.digest != root.digest),
    );

    let platform = platform_of(record);
    // `Command.platform` is deprecated since REAPI 2.2 but is where older servers look.
    #[allow(deprecated)]
    let command = EncodedMessage::of(&reapi::Command {
        arguments: record.argv.clone(),
        environment_variables: record
            .env
            .iter()
            .map(|(name, value)| reapi::command::EnvironmentVariable {
                name: name.clone(),
                value: value.clone(),
            })
            .collect(),
        output_paths: vec![OUTPUT_PATH.to_string()],
        platform: Some(platform.clone()),
        working_directory: String::new(),
        ..Default::default()
    });
    let timeout = std::time::Duration::from_millis(record.limits.timeout_ms);
    let action = EncodedMessage::of(&reapi::Action {
        command_digest: Some(command.digest.clone()),
        input_root_digest: Some(root.digest.clone()),
        timeout: Some(bazel_remote_apis::google::protobuf::Duration {
            seconds: timeout.as_secs() as i64,
            nanos: timeout.subsec_nanos() as i32,
        }),
        do_not_cache: false,
        salt: salt_of(record),
        platform: Some(platform),
    });
    Ok(MappedAction {
        action,
        command,
        directories: all,
    })
}

/// The REAPI form of reading an image's `files` for its contents (`ops::image_contents`): a
/// `Command` `sealroom-read-image-files FILE…` on the image's platform, no inputs, the result's
/// `out` the empty tree and its stdout the contents record; salted with the local cache's
/// `key`, which names the image and the version of the reading.
pub fn map_image_contents(image_id: &str, key: &ActionDigest, files: &[&str]) -> MappedAction {
    let platform = reapi::Platform {
        properties: vec![
            reapi::platform::Property {
                name: "OSFamily".to_string(),
                value: "linux".to_string(),
            },
            reapi::platform::Property {
                name: "container-image".to_string(),
                value: format!("docker://{IMAGE_NAME}@{image_id}"),
            },
        ],
    };
    let mut arguments = vec!["sealroom-read-image-files".to_string()];
    arguments.extend(files.iter().map(|file| file.to_string()));
    #[allow(deprecated)]
    let command = EncodedMessage::of(&reapi::Command {
        arguments,
        output_paths: vec![OUTPUT_PATH.to_string()],
        platform: Some(platform.clone()),
        ..Default::default()
    });
    let root = EncodedMessage::of(&reapi::Directory::default());
    let action = EncodedMessage::of(&reapi::Action {
        command_digest: Some(command.digest.clone()),
        input_root_digest: Some(root.digest.clone()),
        salt: format!("sealroom-image-contents {key}").into_bytes(),
        platform: Some(platform),
        ..Default::default()
    });
    MappedAction {
        action,
        command,
        directories: vec![root],
    }
}

/// The action's salt: the record format and the record's action key.
pub fn salt_of(record: &StepRecord) -> Vec<u8> {
    format!("{RECORD_FORMAT} {}", record.action_key()).into_bytes()
}

fn platform_of(record: &StepRecord) -> reapi::Platform {
    let mut properties = vec![
        reapi::platform::Property {
            name: "OSFamily".to_string(),
            value: "linux".to_string(),
        },
        reapi::platform::Property {
            name: "container-image".to_string(),
            value: format!("docker://{IMAGE_NAME}@{}", record.image),
        },
    ];
    properties.sort_by(|a, b| (&a.name, &a.value).cmp(&(&b.name, &b.value)));
    reapi::Platform { properties }
}

/// An output tree as a REAPI `Tree` (its root and every directory below, each once, in digest
/// order) and the digest of its root `Directory`.
pub fn output_tree(
    tree: &TreeDigest,
    read_tree: &dyn Fn(&TreeDigest) -> Result<TreeObject, String>,
) -> Result<(EncodedMessage, reapi::Digest), MappingError> {
    let mut directories = DirectoryWriter::new(read_tree);
    let root_digest = directories.directory_of(tree)?;
    let mut root = None;
    let mut children = Vec::new();
    for (_, message) in directories.written {
        if message.digest == root_digest && root.is_none() {
            root = Some(reapi::Directory::decode(message.bytes.as_slice()).expect("our own bytes"));
        } else {
            children
                .push(reapi::Directory::decode(message.bytes.as_slice()).expect("our own bytes"));
        }
    }
    let tree = reapi::Tree { root, children };
    Ok((EncodedMessage::of(&tree), root_digest))
}

/// Turns stored trees into `Directory` messages, each written once.
struct DirectoryWriter<'a> {
    read_tree: &'a dyn Fn(&TreeDigest) -> Result<TreeObject, String>,
    done: HashMap<TreeDigest, reapi::Digest>,
    /// By digest hex, so the order is stable.
    written: BTreeMap<String, EncodedMessage>,
}

impl<'a> DirectoryWriter<'a> {
    fn new(read_tree: &'a dyn Fn(&TreeDigest) -> Result<TreeObject, String>) -> Self {
        DirectoryWriter {
            read_tree,
            done: HashMap::new(),
            written: BTreeMap::new(),
        }
    }

    fn add(&mut self, directory: reapi::Directory) -> reapi::Digest {
        let message = EncodedMessage::of(&directory);
        let digest = message.digest.clone();
        self.written.entry(digest.hash.clone()).or_insert(message);
        digest
    }

    fn directory_of(&mut self, tree: &TreeDigest) -> Result<reapi::Digest, MappingError> {
        if let Some(done) = self.done.get(tree) {
            return Ok(done.clone());
        }
        let object = (self.read_tree)(tree).map_err(|detail| MappingError::MissingTree {
            tree: *tree,
            detail,
        })?;
        let mut directory = reapi::Directory::default();
        // Entries are sorted by name in byte order, as REAPI wants each list sorted.
        for entry in &object.entries {
            match &entry.kind {
                EntryKind::File {
                    digest,
                    size,
                    executable,
                } => directory.files.push(reapi::FileNode {
                    name: entry.name.clone(),
                    digest: Some(reapi::Digest {
                        hash: digest.hex(),
                        size_bytes: *size as i64,
                    }),
                    is_executable: *executable,
                    node_properties: None,
                }),
                EntryKind::Symlink { target } => directory.symlinks.push(reapi::SymlinkNode {
                    name: entry.name.clone(),
                    target: target.clone(),
                    node_properties: None,
                }),
                EntryKind::Directory { digest } => {
                    let child = self.directory_of(digest)?;
                    directory.directories.push(reapi::DirectoryNode {
                        name: entry.name.clone(),
                        digest: Some(child),
                    });
                }
            }
        }
        let digest = self.add(directory);
        self.done.insert(*tree, digest.clone());
        Ok(digest)
    }
}

/// A `Tree` from a cache, checked and indexed: every directory it references is in it, every
/// digest is well-formed, and names are single path segments, sorted and unique.
#[derive(Debug)]
pub struct ParsedTree {
    root: reapi::Directory,
    children: HashMap<String, reapi::Directory>,
}

/// How deep a remote output tree may nest.
const MAX_DEPTH: usize = 256;

impl ParsedTree {
    pub fn parse(bytes: &[u8]) -> Result<ParsedTree, MappingError> {
        let tree = reapi::Tree::decode(bytes)
            .map_err(|error| MappingError::MalformedTree(format!("not a Tree message: {error}")))?;
        let root = tree
            .root
            .ok_or_else(|| MappingError::MalformedTree("the Tree has no root".to_string()))?;
        let children = tree
            .children
            .into_iter()
            .map(|child| (EncodedMessage::of(&child).digest.hash, child))
            .collect();
        let parsed = ParsedTree { root, children };
        parsed.check(&parsed.root, 0)?;
        Ok(parsed)
    }

    fn check(&self, directory: &reapi::Directory, depth: usize) -> Result<(), MappingError> {
        if depth > MAX_DEPTH {
            return Err(MappingError::MalformedTree(format!(
                "nested deeper than {MAX_DEPTH} directories"
            )));
        }
        for file in &directory.files {
            blob_digest(file.digest.as_ref())?;
        }
        for child in &directory.directories {
            self.child(child)?;
            self.check(self.child(child)?, depth + 1)?;
        }
        // The entries become one sealroom tree object, which checks names and duplicates.
        self.entries_of(directory, &mut |_| Ok(TreeDigest::of(b"")))?;
        Ok(())
    }

    fn child(&self, node: &reapi::DirectoryNode) -> Result<&reapi::Directory, MappingError> {
        let digest = node.digest.as_ref().ok_or_else(|| {
            MappingError::MalformedTree(format!("directory `{}` has no digest", node.name))
        })?;
        self.children.get(&digest.hash).ok_or_else(|| {
            MappingError::MalformedTree(format!(
                "directory `{}` ({}) is not among the Tree's children",
                node.name, digest.hash
            ))
        })
    }

    /// Every file blob the tree references, each once, with its size.
    pub fn files(&self) -> Vec<(BlobDigest, u64)> {
        let mut seen = BTreeMap::new();
        let mut todo = vec![&self.root];
        while let Some(directory) = todo.pop() {
            for file in &directory.files {
                if let Ok(found) = blob_digest(file.digest.as_ref()) {
                    seen.insert(found.0, found.1);
                }
            }
            for child in &directory.directories {
                if let Ok(child) = self.child(child) {
                    todo.push(child);
                }
            }
        }
        seen.into_iter().collect()
    }

    /// Stores the tree, bottom up, through `add_tree` (which stores one tree object and returns
    /// its digest); returns the root's digest. The file blobs must be stored first.
    pub fn store(
        &self,
        add_tree: &mut dyn FnMut(&TreeObject) -> Result<TreeDigest, String>,
    ) -> Result<TreeDigest, MappingError> {
        self.store_directory(&self.root, add_tree)
    }

    fn store_directory(
        &self,
        directory: &reapi::Directory,
        add_tree: &mut dyn FnMut(&TreeObject) -> Result<TreeDigest, String>,
    ) -> Result<TreeDigest, MappingError> {
        let object = self.entries_of(directory, &mut |child| {
            self.store_directory(self.child(child)?, add_tree)
        })?;
        add_tree(&object).map_err(MappingError::MalformedTree)
    }

    fn entries_of(
        &self,
        directory: &reapi::Directory,
        child_tree: &mut dyn FnMut(&reapi::DirectoryNode) -> Result<TreeDigest, MappingError>,
    ) -> Result<TreeObject, MappingError> {
        let mut entries = Vec::new();
        for file in &directory.files {
            let (digest, size) = blob_digest(file.digest.as_ref())?;
            entries.push(Entry {
                name: file.name.clone(),
                kind: EntryKind::File {
                    digest,
                    size,
                    executable: file.is_executable,
                },
            });
        }
        for link in &directory.symlinks {
            entries.push(Entry {
                name: link.name.clone(),
                kind: EntryKind::Symlink {
                    target: link.target.clone(),
                },
            });
        }
        for child in &directory.directories {
            entries.push(Entry {
                name: child.name.clone(),
                kind: EntryKind::Directory {
                    digest: child_tree(child)?,
                },
            });
        }
        TreeObject::new(entries).map_err(|error| MappingError::MalformedTree(error.to_string()))
    }
}

/// A REAPI digest as a sealroom blob digest and size.
pub fn blob_digest(digest: Option<&reapi::Digest>) -> Result<(BlobDigest, u64), MappingError> {
    let digest =
        digest.ok_or_else(|| MappingError::MalformedTree("a file has no digest".to_string()))?;
    let parsed = BlobDigest::from_hex(&digest.hash)
        .map_err(|error| MappingError::MalformedTree(error.to_string()))?;
    let size = u64::try_from(digest.size_bytes).map_err(|_| {
        MappingError::MalformedTree(format!(
            "negative size {} of {}",
            digest.size_bytes, digest.hash
        ))
    })?;
    Ok((parsed, size))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::sandbox::Network;
    use crate::sandbox::record::StepDefinition;
    use crate::spec::Limits;

    fn file(name: &str, content: &[u8], executable: bool) -> Entry {
        Entry {
            name: name.to_string(),
            kind: EntryKind::File {
                digest: BlobDigest::of(content),
                size: content.len() as u64,
                executable,
            },
        }
    }

    /// A little store: `sub/` holding an executable and a symlink, and a file at the top.
    fn trees() -> (TreeDigest, HashMap<TreeDigest, TreeObject>) {
        let sub = TreeObject::new(vec![
            file("run.sh", b"#!/bin/sh\n", true),
            Entry {
                name: "link".to_string(),
                kind: EntryKind::Symlink {
                    target: "run.sh".to_string(),
                },
            },
        ])
        .unwrap();
        let top = TreeObject::new(vec![
            file("a.txt", b"alpha\n", false),
            Entry {
                name: "sub".to_string(),
                kind: EntryKind::Directory {
                    digest: sub.digest(),
                },
            },
        ])
        .unwrap();
        let root = top.digest();
        (
            root,
            HashMap::from([(sub.digest(), sub), (top.digest(), top)]),
        )
    }

    fn record(inputs: &[(String, TreeDigest)], argv: &[&str]) -> StepRecord {
        let argv: Vec<String> = argv.iter().map(|a| a.to_string()).collect();
        StepRecord::new(StepDefinition {
            image: format!("sha256:{}", "ab".repeat(32)).parse().unwrap(),
            argv: &argv,
            env: BTreeMap::from([
                ("TZ".to_string(), "UTC".to_string()),
                ("SOURCE_DATE_EPOCH".to_string(), "0".to_string()),
            ]),
            workdir: "/build",
            user: "1000:1000",
            network: Network::None,
            limits: &Limits::default(),
            inputs,
        })
    }

    #[test]
    fn a_record_maps_to_an_action_and_command_with_every_field() {
        let (tree, store) = trees();
        let read = |digest: &TreeDigest| store.get(digest).cloned().ok_or("absent".to_string());
        let record = record(&[("src".to_string(), tree)], &["sh", "-c", "make"]);
        let mapped = map_record(&record, &read).unwrap();
        let action = reapi::Action::decode(mapped.action.bytes.as_slice()).unwrap();
        let command = reapi::Command::decode(mapped.command.bytes.as_slice()).unwrap();
        assert_eq!(command.arguments, ["sh", "-c", "make"]);
        let names: Vec<&str> = command
            .environment_variables
            .iter()
            .map(|variable| variable.name.as_str())
            .collect();
        assert_eq!(names, ["SOURCE_DATE_EPOCH", "TZ"]);
        assert_eq!(command.output_paths, ["out"]);
        assert_eq!(action.command_digest.as_ref(), Some(&mapped.command.digest));
        assert_eq!(action.salt, salt_of(&record));
        let properties: Vec<(String, String)> = action
            .platform
            .unwrap()
            .properties
            .into_iter()
            .map(|p| (p.name, p.value))
            .collect();
        assert_eq!(
            properties,
            [
                ("OSFamily".to_string(), "linux".to_string()),
                (
                    "container-image".to_string(),
                    format!("docker://sealroom@sha256:{}", "ab".repeat(32))
                ),
            ]
        );
        // The input root holds inputs/src/{a.txt, sub/{link, run.sh}}, each directory once.
        let by_hash: HashMap<&str, reapi::Directory> = mapped
            .directories
            .iter()
            .map(|m| {
                (
                    m.digest.hash.as_str(),
                    reapi::Directory::decode(m.bytes.as_slice()).unwrap(),
                )
            })
            .collect();
        assert_eq!(mapped.directories.len(), 4);
        assert_eq!(
            action.input_root_digest.as_ref(),
            Some(&mapped.directories[0].digest)
        );
        let root = &by_hash[mapped.directories[0].digest.hash.as_str()];
        let inputs = &by_hash[root.directories[0].digest.as_ref().unwrap().hash.as_str()];
        assert_eq!(inputs.directories[0].name, "src");
        let src = &by_hash[inputs.directories[0].digest.as_ref().unwrap().hash.as_str()];
        assert_eq!(src.files[0].name, "a.txt");
        assert_eq!(
            src.files[0].digest.as_ref().unwrap().hash,
            BlobDigest::of(b"alpha\n").hex()
        );
        let sub = &by_hash[src.directories[0].digest.as_ref().unwrap().hash.as_str()];
        assert!(sub.files[0].is_executable);
        assert_eq!(sub.symlinks[0].target, "run.sh");
    }

    #[test]
    fn the_mapping_is_a_function_of_the_record_alone() {
        let (tree, store) = trees();
        let read = |digest: &TreeDigest| store.get(digest).cloned().ok_or("absent".to_string());
        let one = map_record(&record(&[("src".to_string(), tree)], &["true"]), &read).unwrap();
        let two = map_record(&record(&[("src".to_string(), tree)], &["true"]), &read).unwrap();
        assert_eq!(one.action, two.action);
        assert_eq!(one.directories, two.directories);
        // Any field of the record, even one REAPI has no field for, changes the action digest.
        let mut other = record(&[("src".to_string(), tree)], &["true"]);
        other.user = "0:0".to_string();
        let three = map_record(&other, &read).unwrap();
        assert_eq!(one.command, three.command);
        assert_ne!(one.action.digest, three.action.digest);
        let none = map_record(&record(&[], &["true"]), &read).unwrap();
        assert_eq!(none.directories[0].bytes, Vec::<u8>::new());
    }

    #[test]
    fn an_output_tree_round_trips_through_a_reapi_tree() {
        let (tree, store) = trees();
        let read = |digest: &TreeDigest| store.get(digest).cloned().ok_or("absent".to_string());
        let (encoded, root) = output_tree(&tree, &read).unwrap();
        let parsed = ParsedTree::parse(&encoded.bytes).unwrap();
        assert_eq!(parsed.files(), {
            let mut files = vec![
                (BlobDigest::of(b"alpha\n"), 6),
                (BlobDigest::of(b"#!/bin/sh\n"), 10),
            ];
            files.sort();
            files
        });
        let mut stored = Vec::new();
        let back = parsed
            .store(&mut |object| {
                stored.push(object.clone());
                Ok(object.digest())
            })
            .unwrap();
        assert_eq!(back, tree, "the same sealroom tree digest comes back");
        assert_eq!(stored.len(), 2);
        assert_eq!(root.hash.len(), 64);
    }

    #[test]
    fn a_tree_with_an_escaping_name_or_a_missing_child_is_refused() {
        let bad_name = reapi::Tree {
            root: Some(reapi::Directory {
                symlinks: vec![reapi::SymlinkNode {
                    name: "..".to_string(),
                    target: "x".to_string(),
                    node_properties: None,
                }],
                ..Default::default()
            }),
            children: Vec::new(),
        };
        let error = ParsedTree::parse(&bad_name.encode_to_vec()).unwrap_err();
        assert!(
            error.to_string().contains("invalid entry name `..`"),
            "{error}"
        );
        let missing = reapi::Tree {
            root: Some(reapi::Directory {
                directories: vec![reapi::DirectoryNode {
                    name: "sub".to_string(),
                    digest: Some(digest_of(b"nothing")),
                }],
                ..Default::default()
            }),
            children: Vec::new(),
        };
        let error = ParsedTree::parse(&missing.encode_to_vec()).unwrap_err();
        assert!(
            error.to_string().contains("not among the Tree's children"),
            "{error}"
        );
        let error = ParsedTree::parse(b"\xff\xff").unwrap_err();
        assert!(error.to_string().contains("not a Tree message"), "{error}");
    }
}
