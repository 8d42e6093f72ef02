//! The folders of `src/` import one way: no cycle between top-level modules (issue 17).
//!
//! Every `crate::<module>` path in a file (outside its `#[cfg(test)]` tail) is an edge from the
//! file's top-level module to `<module>`. Any strongly connected component of more than one module
//! fails the test, which names the edges and the files that make them. Doc links count: a doc
//! that points up is a sign that the code will follow.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file under `src/` belongs to (`pipeline/findings.rs` → `pipeline`).
fn top_module(rel: &str) -> String {
    let first = rel.split('/').next().unwrap_or(rel);
    first.strip_suffix(".rs").unwrap_or(first).to_string()
}

/// The modules named as `crate::<name>` in `text`, up to its `#[cfg(test)]` section.
fn crate_paths(text: &str) -> BTreeSet<String> {
    let text = text.split("#[cfg(test)]").next().unwrap_or(text);
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `pgsalvage_crate::` or similar, not a crate path
        }
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            found.insert(name);
        }
    }
    found
}

/// Edges between top-level modules, each with the files that make it.
fn graph(files: &[(String, String)]) -> Graph {
    let tops: BTreeSet<String> = files.iter().map(|(rel, _)| top_module(rel)).collect();
    let mut g = Graph::new();
    for (rel, text) in files {
        let from = top_module(rel);
        let edges = g.entry(from.clone()).or_default();
        for to in crate_paths(text) {
            if to != from && tops.contains(&to) {
                edges.entry(to).or_default().insert(rel.clone());
            }
        }
    }
    g
}

/// Strongly connected components with more than one module (Tarjan's algorithm).
fn cycles(g: &Graph) -> Vec<Vec<String>> {
    struct State<'a> {
        g: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.g.get(v).into_iter().flat_map(|e| e.keys()) {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                s.found.push(comp);
            }
        }
    }
    let mut s = State {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in g.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.found
}

fn describe(g: &Graph, comp: &[String]) -> String {
    let mut lines = vec![format!("cycle between {}:", comp.join(", "))];
    for a in comp {
        for (b, files) in g.get(a).into_iter().flatten() {
            if comp.contains(b) {
                let files: Vec<&str> = files.iter().map(String::as_str).collect();
                lines.push(format!("  {a} -> {b} ({})", files.join(", ")));
            }
        }
    }
    lines.join("\n")
}

#[test]
fn top_level_modules_import_one_way() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    rust_files(&src, &mut paths);
    assert!(
        paths.len() > 50,
        "found only {} files under {}",
        paths.len(),
        src.display()
    );
    let files: Vec<(String, String)> = paths
        .iter()
        .map(|p| {
            let rel = p
                .strip_prefix(&src)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            (rel, std::fs::read_to_string(p).unwrap())
        })
        .collect();
    let g = graph(&files);
    let found = cycles(&g);
    let text: Vec<String> = found.iter().map(|c| describe(&g, c)).collect();
    assert!(
        found.is_empty(),
        "import cycles between folders of src/:\n{}",
        text.join("\n")
    );
}

#[test]
fn the_check_finds_a_cycle_through_three_modules_and_names_the_files() {
    let files = vec![
        ("a/mod.rs".to_string(), "use crate::b::x;".to_string()),
        ("b/x.rs".to_string(), "fn f() { crate::c::g() }".to_string()),
        (
            "c.rs".to_string(),
            "/// see [`crate::a`]\nfn g() {}".to_string(),
        ),
        (
            "d.rs".to_string(),
            "use crate::a;\n#[cfg(test)]\nuse crate::d;".to_string(),
        ),
        (
            "e.rs".to_string(),
            "#[cfg(test)]\nmod t { use crate::d; }".to_string(),
        ),
    ];
    let g = graph(&files);
    let found = cycles(&g);
    assert_eq!(found, vec![vec!["a".to_string(), "b".into(), "c".into()]]);
    let text = describe(&g, &found[0]);
    assert!(text.contains("b -> c (b/x.rs)"), "{text}");
    // Test-only imports make no edge: `e` imports `d` only in its tests.
    assert!(g["e"].is_empty());
}
