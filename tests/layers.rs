//! The modules form layers: no module uses one that uses it back, however indirectly, both
//! between the crate's top-level modules and between the files of one module directory
//! (`lua/`, `observe/`, ...). Read from the source itself, so a new `use` that closes a cycle
//! fails here, with the cycle spelled out. Test code (`#[cfg(test)]`) and comments do not count.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// A module's path inside the crate: `["lua", "prims"]`, `["tick"]`, `[]` for lib.rs.
type Module = Vec<String>;

/// Every module file under src/ (main.rs excluded: it is the binary, above every layer).
fn modules() -> BTreeMap<Module, String> {
    let mut out = BTreeMap::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(&root).unwrap();
            let mut parts: Vec<String> = rel
                .iter()
                .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
                .collect();
            match parts.last().map(String::as_str) {
                Some("main") if parts.len() == 1 => continue,
                Some("lib") if parts.len() == 1 => parts.clear(),
                Some("mod") => {
                    parts.pop();
                }
                _ => {}
            }
            // A module of tests (`engine/tests.rs`) is test code, like a `#[cfg(test)]` block.
            if parts
                .last()
                .is_some_and(|p| p == "tests" || p.ends_with("_tests"))
            {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            out.insert(parts, code_only(&text));
        }
    }
    out
}

/// The text without comments and without its test module.
fn code_only(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod ") {
        Some(at) => &text[..at],
        None => text,
    };
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The paths a file names from `start`: `crate::a::b` gives `a::b`, and each member of a
/// `use crate::{a, b::c}` group gives its own path.
fn paths_after(text: &str, start: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(start) {
        let before = rest[..at].chars().last();
        rest = &rest[at + start.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        out.extend(expand(rest, Vec::new()));
    }
    out
}

/// The paths at the head of `text`: `a::b::c`, or a `{...}` group of them.
fn expand(text: &str, prefix: Vec<String>) -> Vec<Vec<String>> {
    let text = text.trim_start();
    if let Some(group) = text.strip_prefix('{') {
        let mut depth = 0;
        let mut items = Vec::new();
        let mut begin = 0;
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    items.push(&group[begin..i]);
                    break;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    items.push(&group[begin..i]);
                    begin = i + 1;
                }
                _ => {}
            }
        }
        return items
            .into_iter()
            .flat_map(|item| expand(item, prefix.clone()))
            .collect();
    }
    let ident: String = text
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    if ident.is_empty() {
        return vec![prefix];
    }
    let mut path = prefix;
    path.push(ident.clone());
    match text[ident.len()..].strip_prefix("::") {
        Some(more) => expand(more, path),
        None => vec![path],
    }
}

/// The longest prefix of `path` that is a module of the crate.
fn module_of(path: &[String], all: &BTreeMap<Module, String>) -> Module {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|m| all.contains_key(m))
        .unwrap_or_default()
}

/// Every module each module uses, at the granularity `level` maps a module to.
fn edges(
    all: &BTreeMap<Module, String>,
    level: impl Fn(&Module) -> Option<Module>,
) -> BTreeMap<Module, BTreeSet<Module>> {
    let mut out: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (module, text) in all {
        let Some(from) = level(module) else { continue };
        let mut used: Vec<Module> = paths_after(text, "crate::")
            .iter()
            .map(|p| module_of(p, all))
            .collect();
        // `super::x` from a file: a sibling module x, else the parent itself.
        if let Some((_, parent)) = module.split_last() {
            for p in paths_after(text, "super::") {
                let mut full = parent.to_vec();
                full.extend(p);
                used.push(module_of(&full, all));
            }
        }
        // `child::x` from a directory's mod.rs, for each of its child modules.
        for child in all
            .keys()
            .filter(|m| m.len() == module.len() + 1 && m.starts_with(module))
        {
            let name = format!("{}::", child.last().unwrap());
            if !paths_after(text, &name).is_empty() {
                used.push(child.clone());
            }
        }
        for to in used.iter().filter_map(&level) {
            if to != from {
                out.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    out
}

/// A cycle in the graph, if there is one, as the modules on it.
fn cycle(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Option<Vec<Module>> {
    fn visit(
        at: &Module,
        graph: &BTreeMap<Module, BTreeSet<Module>>,
        path: &mut Vec<Module>,
        done: &mut BTreeSet<Module>,
    ) -> Option<Vec<Module>> {
        if let Some(i) = path.iter().position(|m| m == at) {
            let mut c = path[i..].to_vec();
            c.push(at.clone());
            return Some(c);
        }
        if done.contains(at) {
            return None;
        }
        path.push(at.clone());
        for next in graph.get(at).into_iter().flatten() {
            if let Some(c) = visit(next, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(at.clone());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|m| visit(m, graph, &mut Vec::new(), &mut done))
}

fn spell(c: &[Module]) -> String {
    c.iter()
        .map(|m| m.join("::"))
        .collect::<Vec<_>>()
        .join(" → ")
}

#[test]
fn the_top_level_modules_form_layers() {
    let all = modules();
    let top = edges(&all, |m| m.first().map(|f| vec![f.clone()]));
    assert!(top.len() > 8, "the scan found the modules: {top:?}");
    assert!(
        top[&vec!["tick".to_string()]].contains(&vec!["engine".to_string()]),
        "the scan sees `use crate::engine`"
    );
    if let Some(c) = cycle(&top) {
        panic!(
            "the top-level modules use each other in a cycle: {}",
            spell(&c)
        );
    }
}

#[test]
fn the_files_of_each_module_form_layers() {
    let all = modules();
    let dirs: BTreeSet<Module> = all
        .keys()
        .filter(|m| m.len() >= 2)
        .map(|m| m[..m.len() - 1].to_vec())
        .collect();
    assert!(dirs.contains(&vec!["lua".to_string()]));
    for dir in dirs {
        let inner = edges(&all, |m| {
            (m.starts_with(&dir) && m.len() <= dir.len() + 1).then(|| m.clone())
        });
        if let Some(c) = cycle(&inner) {
            panic!(
                "the files of {} use each other in a cycle: {}",
                dir.join("::"),
                spell(&c)
            );
        }
    }
}

#[test]
fn the_scan_finds_a_cycle_where_there_is_one() {
    let mut all = BTreeMap::new();
    let m = |s: &str| s.split("::").map(String::from).collect::<Module>();
    all.insert(m("a"), "use crate::b::{self, x};".to_string());
    all.insert(m("b"), "fn f() { crate::c::g() }".to_string());
    all.insert(m("c"), "use crate::{d, a::y};".to_string());
    all.insert(m("d"), String::new());
    let top = edges(&all, |m| Some(m.clone()));
    assert_eq!(
        cycle(&top).map(|c| spell(&c)).as_deref(),
        Some("a → b → c → a")
    );
    all.insert(m("c"), "use crate::d;".to_string());
    assert_eq!(cycle(&edges(&all, |m| Some(m.clone()))), None);
}
