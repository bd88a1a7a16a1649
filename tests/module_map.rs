//! Guards the module map of `src/lib.rs`: data flows one way. Each module of the crate may use
//! only modules of a lower layer; the command modules of `ops` form no cycle; and only
//! `sandbox::docker` uses bollard. Read from the sources (code outside `#[cfg(test)] mod tests`,
//! comments left out), so a new `use` that breaks the map fails here, naming it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, lowest first. A module may use modules of lower layers only.
const LAYERS: &[&[&str]] = &[
    &["error"],
    &["digest", "atomic"],
    &["sign", "provenance", "fetch", "store"],
    &["lockfile"],
    &["spec"],
    &["sandbox", "convert"],
    &["remote"],
    &["image"],
    &["registry"],
    &["sbom"],
    &["ops"],
    &["cli"],
];

/// A source file of the crate: its module path (`["ops", "build"]`) and its code.
struct SourceFile {
    path: PathBuf,
    module: Vec<String>,
    code: String,
}

fn source_files() -> Vec<SourceFile> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for item in std::fs::read_dir(&dir).unwrap() {
            let path = item.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|ext| ext != "rs") {
                continue;
            }
            let relative = path.strip_prefix(&root).unwrap().with_extension("");
            let mut module: Vec<String> = relative
                .iter()
                .map(|part| part.to_string_lossy().into_owned())
                .collect();
            if module.last().is_some_and(|last| last == "mod") {
                module.pop();
            }
            if module == ["lib"] || module == ["main"] {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            files.push(SourceFile {
                path,
                module,
                code: code_of(&text),
            });
        }
    }
    assert!(files.len() > 50, "found the crate's sources");
    files
}

/// `text` without its unit tests and without comment lines.
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(start) => &text[..start],
        None => text,
    };
    text.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The modules that `code` names after `prefix` (e.g. `crate::`), with the line each is on.
fn named_after<'a>(code: &'a str, prefix: &str) -> Vec<(String, &'a str)> {
    let mut found = Vec::new();
    for line in code.lines() {
        let mut rest = line;
        while let Some(start) = rest.find(prefix) {
            let after = &rest[start + prefix.len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.push((name, line.trim()));
            }
            rest = after;
        }
    }
    found
}

fn layer_of(module: &str) -> usize {
    LAYERS
        .iter()
        .position(|layer| layer.contains(&module))
        .unwrap_or_else(|| panic!("module `{module}` is in no layer of this test: add it"))
}

#[test]
fn each_module_uses_only_lower_layers() {
    let mut wrong = Vec::new();
    for file in source_files() {
        let top = &file.module[0];
        for (used, line) in named_after(&file.code, "crate::") {
            if used == *top {
                continue;
            }
            if layer_of(&used) >= layer_of(top) {
                wrong.push(format!(
                    "{}: `{top}` uses `{used}`: {line}",
                    file.path.display()
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "uses against the layers:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_commands_of_ops_form_no_cycle() {
    let mut uses: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in source_files() {
        if file.module[0] != "ops" || file.module.len() < 2 {
            continue;
        }
        let this = &file.module[1];
        let entry = uses.entry(this.clone()).or_default();
        let named = named_after(&file.code, "crate::ops::")
            .into_iter()
            .chain(named_after(&file.code, "super::"));
        for (used, _) in named {
            if used != *this && used != "error" {
                entry.insert(used);
            }
        }
    }
    assert!(uses.contains_key("build") && uses["build"].contains("attest"));
    // Depth-first search for a path back to where it started.
    fn cycle_from(
        uses: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        let last = path.last().unwrap().clone();
        for next in uses.get(&last).into_iter().flatten() {
            if let Some(start) = path.iter().position(|seen| seen == next) {
                let mut cycle = path[start..].to_vec();
                cycle.push(next.clone());
                return Some(cycle);
            }
            path.push(next.clone());
            if let Some(cycle) = cycle_from(uses, path) {
                return Some(cycle);
            }
            path.pop();
        }
        None
    }
    for module in uses.keys() {
        if let Some(cycle) = cycle_from(&uses, &mut vec![module.clone()]) {
            panic!(
                "ops modules use each other in a cycle: {}",
                cycle.join(" -> ")
            );
        }
    }
}

#[test]
fn only_the_docker_engine_uses_bollard() {
    let users: Vec<String> = source_files()
        .into_iter()
        .filter(|file| file.code.contains("bollard::") || file.code.contains("use bollard"))
        .map(|file| file.module.join("::"))
        .collect();
    assert_eq!(users, ["sandbox::docker"]);
}

#[test]
fn the_guard_sees_a_use_against_the_layers() {
    let code = code_of(
        "use crate::ops::build;\n// use crate::cli;\n#[cfg(test)]\nmod tests {\n use crate::cli;\n}",
    );
    let named: Vec<String> = named_after(&code, "crate::")
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(named, ["ops"], "comments and unit tests left out");
    assert!(layer_of("ops") > layer_of("store"));
}
