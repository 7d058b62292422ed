//! No import circles in any crate of the workspace, at the level of top-level
//! modules and of the modules inside each folder: a newcomer can read every
//! crate from the bottom up. Reads the sources' `crate::` paths (code only,
//! not comments), so it needs no compiler support and runs in milliseconds.
//! Test files (`*_tests.rs`, `tests.rs`) are left out: a module's tests may
//! use whatever they check it with (the BSGS tests encrypt with ElGamal).

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
};

const CRATES: [&str; 5] = [
    "protocol/src",
    "node/src",
    "coordinator/src",
    "src",
    "examples/src",
];

/// The module a source file belongs to, as path segments: `a/b.rs` is
/// `[a, b]`, `a/b_tests.rs` belongs to `[a, b]`, `lib.rs` and `main.rs` to `[]`.
fn module_of(root: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(root).expect("file under its crate");
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let last = parts.pop().expect("a file name");
    let stem = last.trim_end_matches(".rs");
    let stem = stem.strip_suffix("_tests").unwrap_or(stem);
    if !matches!(stem, "mod" | "lib" | "main") {
        parts.push(stem.to_owned());
    }
    parts
}

fn code_without_comments(src: &str) -> String {
    src.lines()
        .map(|line| match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Every module path this code names through `crate::`, including the
/// members of grouped imports (`use crate::{a::b, c}`).
fn referenced_paths(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let before_ok = rest[..i]
            .chars()
            .next_back()
            .is_none_or(|c| !is_ident(c) && c != ':');
        rest = &rest[i + "crate::".len()..];
        if !before_ok {
            continue;
        }
        collect(rest, Vec::new(), &mut out);
    }
    out
}

/// Reads one path (or group) at the start of `text` under `prefix`.
fn collect(text: &str, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let text = text.trim_start();
    if let Some(group) = text.strip_prefix('{') {
        let mut depth = 0usize;
        let mut start = 0;
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    collect(&group[start..i], prefix.clone(), out);
                    return;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    collect(&group[start..i], prefix.clone(), out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        return;
    }
    let ident: String = text.chars().take_while(|&c| is_ident(c)).collect();
    if ident.is_empty() || ident == "self" {
        if !prefix.is_empty() {
            out.push(prefix);
        }
        return;
    }
    let mut path = prefix;
    path.push(ident.clone());
    match text[ident.len()..].strip_prefix("::") {
        Some(more) => collect(more, path, out),
        None => out.push(path),
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("readable source folder") {
        let path = entry.expect("folder entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Edges between modules cut to `depth` segments, within one folder when
/// `depth` > 1 (an edge leaving the folder is checked at the level above).
fn graph(root: &Path, depth: usize) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(root, &mut files);
    files.retain(|f| {
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        !(name.ends_with("_tests.rs") || name == "tests.rs")
    });
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| module_of(root, f)).collect();
    let known = |path: &[String]| -> Option<Vec<String>> {
        // The longest prefix of `path` that is a module of this crate.
        (1..=path.len())
            .rev()
            .map(|n| path[..n].to_vec())
            .find(|p| modules.contains(p))
    };
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let from = module_of(root, file);
        if from.len() < depth {
            continue;
        }
        let code = code_without_comments(&fs::read_to_string(file).expect("readable source"));
        for path in referenced_paths(&code) {
            let Some(to) = known(&path) else { continue };
            if to.len() < depth || from[..depth - 1] != to[..depth - 1] || from[..depth] == to[..depth] {
                continue;
            }
            edges
                .entry(from[..depth].join("::"))
                .or_default()
                .insert(to[..depth].join("::"));
        }
    }
    edges
}

/// One cycle of the graph, if it has any.
fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, bool>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(node.to_owned(), false);
        stack.push(node.to_owned());
        for next in edges.get(node).into_iter().flatten() {
            match state.get(next) {
                Some(false) => {
                    let at = stack.iter().position(|m| m == next).expect("on the stack");
                    let mut cycle = stack[at..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                Some(true) => {}
                None => {
                    if let Some(cycle) = visit(next, edges, state, stack) {
                        return Some(cycle);
                    }
                }
            }
        }
        stack.pop();
        state.insert(node.to_owned(), true);
        None
    }
    let mut state = BTreeMap::new();
    for node in edges.keys() {
        if !state.contains_key(node)
            && let Some(cycle) = visit(node, edges, &mut state, &mut Vec::new())
        {
            return Some(cycle);
        }
    }
    None
}

#[test]
fn no_crate_has_an_import_circle() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut circles = Vec::new();
    for krate in CRATES {
        let root = workspace.join(krate);
        for depth in 1..=3 {
            if let Some(cycle) = find_cycle(&graph(&root, depth)) {
                circles.push(format!("{krate}: {}", cycle.join(" -> ")));
            }
        }
    }
    assert!(
        circles.is_empty(),
        "import circles (break each by moving what both sides use below them):\n{}",
        circles.join("\n")
    );
}

#[test]
fn the_checker_sees_a_circle_and_grouped_imports() {
    let paths = referenced_paths("use crate::{a::{b, c::D}, e};\nlet x = crate::f::g();");
    let names: Vec<String> = paths.iter().map(|p| p.join("::")).collect();
    assert_eq!(names, ["a::b", "a::c::D", "e", "f::g"]);
    let mut edges = BTreeMap::new();
    edges.insert("a".to_owned(), BTreeSet::from(["b".to_owned()]));
    edges.insert("b".to_owned(), BTreeSet::from(["c".to_owned()]));
    edges.insert("c".to_owned(), BTreeSet::from(["a".to_owned()]));
    assert_eq!(find_cycle(&edges).map(|c| c.len()), Some(4));
    edges.remove("c");
    assert_eq!(find_cycle(&edges), None);
}
