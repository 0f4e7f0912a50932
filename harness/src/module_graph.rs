//! The modules' imports point one way, down the pipeline: a test reads this crate's sources,
//! draws the graph of `crate::<module>` references between top-level modules (test code left
//! out), and fails on any cycle, naming it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn top_module(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?.to_string();
    Some(first.trim_end_matches(".rs").to_string())
}

/// `crate::name` references in `text`, outside its `#[cfg(test)]` part.
fn references(text: &str) -> BTreeSet<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or("");
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + 7..];
        let name: String = rest.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_' || c.is_ascii_digit()).collect();
        if !name.is_empty() {
            out.insert(name);
        }
    }
    out
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if !name.ends_with(".rs") || name == "main.rs" || name == "tests.rs" || name == "module_graph.rs" {
                continue;
            }
            let top = top_module(&src, &p).unwrap();
            let refs = references(&std::fs::read_to_string(&p).unwrap());
            g.entry(top.clone()).or_default().extend(refs.into_iter().filter(|r| *r != top));
        }
    }
    let known: BTreeSet<String> = g.keys().cloned().collect();
    for deps in g.values_mut() {
        deps.retain(|d| known.contains(d));
    }
    g
}

/// A cycle through `start`, if there is one (depth-first).
fn cycle_from(g: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    fn walk(g: &BTreeMap<String, BTreeSet<String>>, at: &str, start: &str, path: &mut Vec<String>, seen: &mut BTreeSet<String>) -> bool {
        for next in g.get(at).into_iter().flatten() {
            if next == start {
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(g, next, start, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.to_string()];
    walk(g, start, start, &mut path, &mut BTreeSet::new()).then_some(path)
}

#[test]
fn module_imports_have_no_cycle() {
    let g = graph();
    assert!(g.len() > 15 && g["runner"].contains("stack"), "the graph was not read: {g:?}");
    for m in g.keys() {
        if let Some(c) = cycle_from(&g, m) {
            panic!("import cycle: {} -> {m}", c.join(" -> "));
        }
    }
}

#[test]
fn a_cycle_is_found_when_there_is_one() {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    g.entry("stack".into()).or_default().insert("probe".into());
    g.entry("probe".into()).or_default().insert("lab".into());
    g.entry("lab".into()).or_default().insert("stack".into());
    assert_eq!(cycle_from(&g, "stack").unwrap(), ["stack", "probe", "lab"]);
    g.get_mut("lab").unwrap().clear();
    assert!(cycle_from(&g, "stack").is_none());
    assert_eq!(references("use crate::vocab::Replica;\n#[cfg(test)]\nuse crate::runner;"), ["vocab".to_string()].into());
}
