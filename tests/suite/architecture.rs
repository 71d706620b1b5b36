//! The shape of the code: no module depends, directly or through others, on a module that
//! depends on it (a module and its own submodules aside). A new cycle fails here, naming the
//! references that close it, so the staged layout of ARCHITECTURE.md stays true.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::common;

/// Every module of the library: its path (`cohort::lists`) and its file.
fn modules(src: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    let mut todo = vec![src.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
                continue;
            }
            if path.extension().is_none_or(|x| x != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).unwrap().with_extension("");
            let mut parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if parts.last().is_some_and(|p| p == "mod") {
                parts.pop();
            }
            // The binary and the crate root are above every module.
            if parts == ["lib"] || parts == ["main"] {
                continue;
            }
            out.insert(parts.join("::"), path);
        }
    }
    out
}

/// The module a path names: its longest prefix that is a module.
fn owner<'a>(path: &str, modules: &'a BTreeMap<String, PathBuf>) -> Option<&'a String> {
    let parts: Vec<&str> = path.split("::").collect();
    (1..=parts.len()).rev().find_map(|k| {
        modules
            .get_key_value(&parts[..k].join("::"))
            .map(|(m, _)| m)
    })
}

/// Each module's references to other modules (not its ancestors or descendants), with the line
/// of one reference each, from `crate::…` and `super::…` paths outside comments and tests.
fn references(modules: &BTreeMap<String, PathBuf>) -> BTreeMap<String, BTreeMap<String, usize>> {
    let path =
        regex::Regex::new(r"\b(crate|super)::((?:\w+::)*\w+)?(?:(?:::)?\{([^}]*)\})?").unwrap();
    let item = regex::Regex::new(r"\w+(?:::\w+)*").unwrap();
    let mut out = BTreeMap::new();
    for (module, file) in modules {
        let text = std::fs::read_to_string(file).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let parent = module.rsplit_once("::").map(|(p, _)| p);
        let mut refs: BTreeMap<String, usize> = BTreeMap::new();
        for (n, line) in code.lines().enumerate() {
            let line = line.split("//").next().unwrap_or_default();
            for c in path.captures_iter(line) {
                // `crate::a::b`, `crate::a::{b, c}` or `super::{b, c}`: the path before any
                // braces, relative to the crate root.
                let rel = c.get(2).map_or("", |m| m.as_str());
                let base = match (&c[1], parent) {
                    ("crate", _) | (_, None) => rel.to_string(),
                    (_, Some(p)) if rel.is_empty() => p.to_string(),
                    (_, Some(p)) => format!("{p}::{rel}"),
                };
                let mut named = vec![base.clone()];
                if let Some(group) = c.get(3) {
                    named.extend(item.find_iter(group.as_str()).map(|i| {
                        if base.is_empty() {
                            i.as_str().to_string()
                        } else {
                            format!("{base}::{}", i.as_str())
                        }
                    }));
                }
                for p in named {
                    let Some(target) = owner(&p, modules) else {
                        continue;
                    };
                    let related = target == module
                        || target.starts_with(&format!("{module}::"))
                        || module.starts_with(&format!("{target}::"));
                    if !related {
                        refs.entry(target.clone()).or_insert(n + 1);
                    }
                }
            }
        }
        out.insert(module.clone(), refs);
    }
    out
}

/// The strongly connected components of more than one module (Tarjan).
fn cycles(graph: &BTreeMap<String, BTreeMap<String, usize>>) -> Vec<Vec<String>> {
    struct State<'a> {
        graph: &'a BTreeMap<String, BTreeMap<String, usize>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        for w in s.graph[v].keys() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.stack.contains(&w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                component.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.found.push(component);
            }
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.found
}

#[test]
fn no_module_depends_on_a_module_that_depends_on_it() {
    let src = common::root().join("src");
    let modules = modules(&src);
    assert!(modules.contains_key("engine") && modules.contains_key("compile::duckdb"));
    let graph = references(&modules);
    let found = cycles(&graph);
    let explain: Vec<String> = found
        .iter()
        .map(|c| {
            let members: BTreeSet<&String> = c.iter().collect();
            let mut edges = Vec::new();
            for m in c {
                for (t, line) in &graph[m] {
                    if members.contains(t) {
                        edges.push(format!("{m} -> {t} ({}:{line})", modules[m].display()));
                    }
                }
            }
            format!("cycle {}:\n    {}", c.join(", "), edges.join("\n    "))
        })
        .collect();
    assert!(found.is_empty(), "{}", explain.join("\n"));
}

#[test]
fn the_checker_finds_a_cycle_when_there_is_one() {
    let dir = tempfile::tempdir().unwrap();
    let write = |rel: &str, text: &str| {
        let p = dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write("a.rs", "use crate::b::c::Thing;\nuse crate::b::Other;\n");
    write("b/mod.rs", "pub mod c;\n// crate::a is only a comment\n");
    write("b/c.rs", "fn f() { crate::a::g(); super::d(); }\n");
    write("e.rs", "use crate::{a, b::c};\n");
    write("b/f.rs", "use super::{c::X, Y};\n");
    let modules = modules(dir.path());
    let graph = references(&modules);
    assert_eq!(
        graph["b"].len(),
        0,
        "comments and submodules are not references"
    );
    assert_eq!(
        cycles(&graph),
        vec![vec!["a".to_string(), "b::c".to_string()]]
    );
    assert_eq!(graph["e"].keys().collect::<Vec<_>>(), ["a", "b::c"]);
    assert_eq!(graph["b::f"].keys().collect::<Vec<_>>(), ["b::c"]);
}
