//! The crate's modules form a tree (docs/ARCHITECTURE.md, "Architecture Invariants"):
//! this test reads the sources, collects every `crate::X` reference between top-level
//! modules (`use crate::X`, `crate::X::...`, `use crate::{X, ...}`) and fails on a cycle,
//! naming it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a source file belongs to (`None` for the crate root and `main`).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel.components().next()?.as_os_str().to_str()?.to_owned();
    let name = first.strip_suffix(".rs").unwrap_or(&first).to_owned();
    (name != "lib" && name != "main").then_some(name)
}

/// The code of `text` without comments (doc links name modules too, but do not depend).
fn code(text: &str) -> String {
    text.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

fn ident_at(s: &str) -> String {
    s.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect()
}

/// The top-level modules `text` names through `crate::`.
fn references(text: &str) -> BTreeSet<String> {
    let code = code(text);
    let mut found = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        let after = &rest[at + "crate::".len()..];
        let preceded_by_ident = rest[..at].chars().next_back().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        if !preceded_by_ident {
            if let Some(group) = after.strip_prefix('{') {
                // `use crate::{a, b::c, ...}`: the first segment of each item.
                let inner = &group[..group.find('}').unwrap_or(group.len())];
                for item in inner.split(',') {
                    found.insert(ident_at(item.trim()));
                }
            } else {
                found.insert(ident_at(after));
            }
        }
        rest = after;
    }
    found.remove("");
    found
}

/// A cycle in `edges`, as the modules along it, if there is one.
fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(pos) = path.iter().position(|p| p == node) {
            let mut cycle = path[pos..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    edges.keys().find_map(|n| visit(n, edges, &mut Vec::new(), &mut done))
}

fn module_edges(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    sources(src, &mut files);
    let modules: BTreeSet<String> = files.iter().filter_map(|f| module_of(src, f)).collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = modules.iter().map(|m| (m.clone(), BTreeSet::new())).collect();
    for file in &files {
        let Some(from) = module_of(src, file) else { continue };
        let text = std::fs::read_to_string(file).unwrap();
        for to in references(&text) {
            if to != from && modules.contains(&to) {
                edges.get_mut(&from).unwrap().insert(to);
            }
        }
    }
    edges
}

#[test]
fn the_module_graph_has_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let edges = module_edges(&src);
    // The test sees the modules it must: a rename would otherwise make it pass vacuously.
    for m in ["access", "admin", "config", "dashboard", "publish", "state", "status"] {
        assert!(edges.contains_key(m), "no module {m} in {:?}", edges.keys().collect::<Vec<_>>());
    }
    assert!(edges["admin"].contains("state") && edges["dashboard"].contains("status"), "edges were collected: {edges:?}");
    if let Some(cycle) = find_cycle(&edges) {
        panic!("kmslab-host's modules must form a tree, but {} import each other in a cycle; edges: {edges:#?}", cycle.join(" -> "));
    }
}

#[test]
fn the_checker_finds_references_and_cycles() {
    let refs = references("use crate::a::B;\nuse crate::{b, c::D};\nfn f() { crate::d::g(); } // crate::e\nlet x = notcrate::f;");
    assert_eq!(refs, ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect());
    let edges = |pairs: &[(&str, &str)]| {
        let mut m: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in pairs {
            m.entry((*a).into()).or_default().insert((*b).into());
            m.entry((*b).into()).or_default();
        }
        m
    };
    assert_eq!(find_cycle(&edges(&[("a", "b"), ("b", "c")])), None);
    assert_eq!(find_cycle(&edges(&[("a", "b"), ("b", "c"), ("c", "a")])), Some(vec!["a".into(), "b".into(), "c".into(), "a".into()]));
}
