//! `sealroom explain [SPEC] [STEP]`: why a step would run instead of coming from the cache.
//!
//! For each step (or the one named), its record is made as a build would make it now — from
//! the sources as they are on disk, the fetches the store holds, and the outputs of the earlier
//! steps the cache holds — and looked up in the action cache. When it is a miss, each field that
//! differs from the record the same step of the same spec last ran with is named, old value
//! first: `env.CFLAGS`, `argv`, `image`, `limits.memory_bytes`, `input src` (with the files that
//! changed in it, when both trees are in the store), …
//!
//! Nothing runs and nothing is downloaded: the engine is not asked anything.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::digest::{ActionDigest, TreeDigest};
use crate::error::Error;
use crate::error::{ExitCode, Failure};
use crate::ops::fetch::stored_tree;
use crate::sandbox::StepRecord;
use crate::spec::{self, Name};
use crate::store::{EntryKind, Store};

#[derive(Debug, Clone, serde::Serialize)]
pub struct ExplainReport {
    pub spec: PathBuf,
    pub steps: Vec<StepExplanation>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct StepExplanation {
    pub step: String,
    pub status: Status,
    /// The step's action key now; `None` when an input is not built yet.
    pub action: Option<ActionDigest>,
    /// The action key of the record it last ran with.
    pub previous_action: Option<ActionDigest>,
    pub differences: Vec<Difference>,
    /// Inputs that have no tree yet: fetches not in the store, steps that would run first.
    pub unbuilt_inputs: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// A hit: the step would not run.
    Cached,
    /// A miss; `differences` says how its record differs from the one it last ran with.
    Changed,
    /// A miss, and the step never ran in this store (or its record was lost).
    NoEarlierRecord,
    /// An input is not built yet, so the step's record is not known.
    InputsNotBuilt,
}

/// One field of the record that is not what it was.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Difference {
    /// `env.CFLAGS`, `argv`, `image`, `limits.timeout_ms`, `input src`, `policy.seccomp`, …
    pub field: String,
    /// The value in the earlier record (`None`: the field was not there).
    pub old: Option<String>,
    pub new: Option<String>,
    /// For an input: the paths whose content, kind or mode changed, were added or removed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files_changed: Option<Vec<String>>,
}

pub fn explain(
    spec_path: &Path,
    store_root: &Path,
    only: Option<&str>,
) -> Result<ExplainReport, Error> {
    let mut spec = spec::load(spec_path)?;
    if let Some(name) = only
        && !spec.steps.iter().any(|step| step.name.as_str() == name)
    {
        return Err(ExplainError::NoSuchStep {
            step: name.to_string(),
            steps: spec
                .steps
                .iter()
                .map(|step| step.name.to_string())
                .collect(),
        }
        .into());
    }
    let store = Store::open(store_root)?;
    // A registry image a build pulled is run by its image id; one not pulled yet stays as
    // pinned, and every step differs in its image (a build would pull it first).
    if spec.sandbox.image.registry().is_some()
        && let Some(id) = crate::registry::pull::stored_image_id(&store, &spec.sandbox.image)
    {
        spec.sandbox.image.digest = id.cast();
    }
    let mut trees: HashMap<Name, TreeDigest> = crate::ops::build::hash_sources(&store, &spec)?
        .into_iter()
        .map(|(source, tree)| (source.name.clone(), tree))
        .collect();
    for fetch in &spec.fetches {
        if let Some(tree) = stored_tree(&store, fetch)? {
            trees.insert(fetch.name.clone(), tree);
        }
    }
    // Steps in an order where each comes after its inputs (the spec's graph is acyclic).
    let mut explained: HashMap<Name, StepExplanation> = HashMap::new();
    let mut pending: Vec<_> = spec.steps.iter().collect();
    while !pending.is_empty() {
        let index = pending
            .iter()
            .position(|step| {
                step.inputs.iter().all(|input| {
                    input.kind != spec::InputKind::Step || explained.contains_key(&input.name)
                })
            })
            .expect("the spec's step graph is acyclic");
        let step = pending.remove(index);
        let unbuilt: Vec<String> = step
            .inputs
            .iter()
            .filter(|input| !trees.contains_key(&input.name))
            .map(|input| input.name.to_string())
            .collect();
        let last = store.last_record(spec.name.as_str(), step.name.as_str());
        let previous_action = last.as_deref().map(ActionDigest::of);
        let previous = last.and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok());
        let explanation = if unbuilt.is_empty() {
            let inputs: Vec<(Name, TreeDigest)> = step
                .inputs
                .iter()
                .map(|input| (input.name.clone(), trees[&input.name]))
                .collect();
            let record = StepRecord::for_step(&spec, step, &inputs);
            let action = record.action_key();
            let (status, differences) = match (store.action_get(&action), &previous) {
                (Some(hit), _) => {
                    trees.insert(step.name.clone(), hit.output);
                    (Status::Cached, Vec::new())
                }
                (None, None) => (Status::NoEarlierRecord, Vec::new()),
                (None, Some(previous)) => (
                    Status::Changed,
                    differences(&store, previous, &record.to_json()),
                ),
            };
            StepExplanation {
                step: step.name.to_string(),
                status,
                action: Some(action),
                previous_action,
                differences,
                unbuilt_inputs: Vec::new(),
            }
        } else {
            StepExplanation {
                step: step.name.to_string(),
                status: Status::InputsNotBuilt,
                action: None,
                previous_action,
                differences: Vec::new(),
                unbuilt_inputs: unbuilt,
            }
        };
        explained.insert(step.name.clone(), explanation);
    }
    let steps = spec
        .steps
        .iter()
        .filter(|step| only.is_none_or(|name| step.name.as_str() == name))
        .map(|step| explained.remove(&step.name).expect("every step explained"))
        .collect();
    Ok(ExplainReport {
        spec: spec.path.clone(),
        steps,
    })
}

/// The fields of two records (as JSON) that differ, in the record's field order.
fn differences(store: &Store, old: &Value, new: &Value) -> Vec<Difference> {
    let mut found = Vec::new();
    let (Some(old), Some(new)) = (old.as_object(), new.as_object()) else {
        return vec![Difference {
            field: "record".to_string(),
            old: Some(old.to_string()),
            new: Some(new.to_string()),
            files_changed: None,
        }];
    };
    for (key, new_value) in new {
        let old_value = old.get(key).unwrap_or(&Value::Null);
        if old_value == new_value {
            continue;
        }
        match key.as_str() {
            "env" | "limits" | "policy" => {
                let empty = serde_json::Map::new();
                let old_map = old_value.as_object().unwrap_or(&empty);
                let new_map = new_value.as_object().unwrap_or(&empty);
                let names: BTreeSet<&String> = old_map.keys().chain(new_map.keys()).collect();
                for name in names {
                    let (was, is) = (old_map.get(name), new_map.get(name));
                    if was != is {
                        found.push(Difference {
                            field: format!("{key}.{name}"),
                            old: was.map(show),
                            new: is.map(show),
                            files_changed: None,
                        });
                    }
                }
            }
            "mounts" => found.extend(mount_differences(store, old_value, new_value)),
            _ => found.push(Difference {
                field: key.clone(),
                old: (!old_value.is_null()).then(|| show(old_value)),
                new: Some(show(new_value)),
                files_changed: None,
            }),
        }
    }
    found
}

/// A JSON value as a person reads it: strings without quotes.
fn show(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Mounts by target; an input whose tree changed is named with the files that changed.
fn mount_differences(store: &Store, old: &Value, new: &Value) -> Vec<Difference> {
    let by_target = |value: &Value| -> BTreeMap<String, Value> {
        value
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|mount| Some((mount.get("target")?.as_str()?.to_string(), mount.clone())))
            .collect()
    };
    let (old, new) = (by_target(old), by_target(new));
    let targets: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    let mut found = Vec::new();
    for target in targets {
        let (was, is) = (old.get(target), new.get(target));
        if was == is {
            continue;
        }
        let tree_of = |mount: Option<&Value>| {
            mount
                .and_then(|mount| mount.get("tree"))
                .and_then(Value::as_str)
                .and_then(|text| text.parse::<TreeDigest>().ok())
        };
        let input = target.strip_prefix("/inputs/");
        let files_changed = match (tree_of(was), tree_of(is)) {
            (Some(was), Some(is)) => changed_files(store, &was, &is, ""),
            _ => None,
        };
        found.push(Difference {
            field: match input {
                Some(name) => format!("input {name}"),
                None => format!("mount {target}"),
            },
            old: was.map(|mount| describe_mount(mount, input.is_some())),
            new: is.map(|mount| describe_mount(mount, input.is_some())),
            files_changed,
        });
    }
    found
}

fn describe_mount(mount: &Value, is_input: bool) -> String {
    match mount.get("tree").and_then(Value::as_str) {
        Some(tree) if is_input => format!("tree {tree}"),
        _ => mount.to_string(),
    }
}

/// The paths under `prefix` that differ between two trees of the store; `None` when either
/// tree (or one below it) is no longer there.
fn changed_files(
    store: &Store,
    old: &TreeDigest,
    new: &TreeDigest,
    prefix: &str,
) -> Option<Vec<String>> {
    let old_entries: BTreeMap<String, EntryKind> = store
        .read_tree(old)
        .ok()?
        .entries
        .into_iter()
        .map(|entry| (entry.name, entry.kind))
        .collect();
    let new_entries: BTreeMap<String, EntryKind> = store
        .read_tree(new)
        .ok()?
        .entries
        .into_iter()
        .map(|entry| (entry.name, entry.kind))
        .collect();
    let names: BTreeSet<&String> = old_entries.keys().chain(new_entries.keys()).collect();
    let mut changed = Vec::new();
    for name in names {
        let path = format!("{prefix}{name}");
        match (old_entries.get(name), new_entries.get(name)) {
            (Some(was), Some(is)) if was == is => {}
            (
                Some(EntryKind::Directory { digest: was }),
                Some(EntryKind::Directory { digest: is }),
            ) => {
                changed.extend(changed_files(store, was, is, &format!("{path}/"))?);
            }
            _ => changed.push(path),
        }
    }
    Some(changed)
}

impl ExplainReport {
    /// The report as a person reads it.
    pub fn to_text(&self) -> String {
        let mut text = String::new();
        for step in &self.steps {
            match step.status {
                Status::Cached => text.push_str(&format!(
                    "step {}: cached (action {}); it would not run\n",
                    step.step,
                    step.action.map(|a| a.to_string()).unwrap_or_default()
                )),
                Status::NoEarlierRecord => text.push_str(&format!(
                    "step {}: not cached, and no earlier record of it in this store to compare with (it never ran here)\n",
                    step.step
                )),
                Status::InputsNotBuilt => text.push_str(&format!(
                    "step {}: would run after its inputs, which are not built or fetched yet: {}\n",
                    step.step,
                    step.unbuilt_inputs.join(", ")
                )),
                Status::Changed => {
                    text.push_str(&format!(
                        "step {}: not cached; its record differs from the one it last ran with (action {}):\n",
                        step.step,
                        step.previous_action
                            .map(|a| a.to_string())
                            .unwrap_or_default()
                    ));
                    for difference in &step.differences {
                        let value = |value: &Option<String>| match value {
                            Some(value) => format!("`{value}`"),
                            None => "(none)".to_string(),
                        };
                        text.push_str(&format!(
                            "  {}: {} → {}",
                            difference.field,
                            value(&difference.old),
                            value(&difference.new)
                        ));
                        if let Some(files) = &difference.files_changed {
                            text.push_str(&format!(", files changed: {}", files.join(", ")));
                        }
                        text.push('\n');
                    }
                }
            }
        }
        text
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error("the spec has no step `{step}`; its steps are: {}", steps.join(", "))]
    NoSuchStep { step: String, steps: Vec<String> },
}

impl Failure for ExplainError {
    fn exit_code(&self) -> ExitCode {
        ExitCode::BadInput
    }
}
