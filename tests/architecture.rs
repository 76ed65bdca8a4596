//! The shape of the code: no module imports one that imports it back (at
//! the top level, and among the modules of each folder), and SQLite stays
//! inside the store's SQLite backend.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

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

/// `store::sqlite::sla` for `src/store/sqlite/sla.rs`, `store` for `src/store/mod.rs`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
        parts.pop();
    }
    parts
}

/// The code of a file without its unit tests and comments.
fn code(file: &Path) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    let text = match text.find("#[cfg(test)]") {
        Some(i) => &text[..i],
        None => &text[..],
    };
    text.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

/// The paths after `prefix` in `code`: `crate::store::sla::x` gives `store`, `sla`, `x`.
fn paths_after<'a>(code: &'a str, prefix: &str) -> Vec<Vec<&'a str>> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find(prefix) {
        let before = rest[..i].chars().last();
        rest = &rest[i + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).unwrap_or(rest.len());
        found.push(rest[..end].split("::").filter(|s| !s.is_empty()).collect());
    }
    found
}

/// Every module's references to other modules, as full module paths.
fn graph(src: &Path) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let mut files = Vec::new();
    sources(src, &mut files);
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| module_of(src, f)).collect();
    let longest_module = |path: Vec<String>| -> Option<Vec<String>> {
        (1..=path.len()).rev().map(|n| path[..n].to_vec()).find(|p| modules.contains(p))
    };
    let mut g: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for file in &files {
        let me = module_of(src, file);
        let code = code(file);
        let mut refs = Vec::new();
        for p in paths_after(&code, "crate::") {
            refs.push(p.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        }
        // `super::x` in `a/b.rs` (module `a::b`) and in `a/b/mod.rs` is `a::x`.
        let parent: Vec<String> = me[..me.len().saturating_sub(1)].to_vec();
        for p in paths_after(&code, "super::") {
            let mut full = parent.clone();
            full.extend(p.iter().map(|s| s.to_string()));
            refs.push(full);
        }
        let entry = g.entry(me.clone()).or_default();
        for r in refs {
            if let Some(m) = longest_module(r)
                && m != me
            {
                entry.insert(m);
            }
        }
    }
    g
}

/// Cycles among the children of `folder` (the top level when empty): each
/// module stands for itself and everything under it.
fn cycles_under(g: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>, folder: &[String]) -> Vec<Vec<String>> {
    let child = |m: &Vec<String>| -> Option<String> {
        (m.len() > folder.len() && m[..folder.len()] == *folder).then(|| m[folder.len()].clone())
    };
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, tos) in g {
        let Some(a) = child(from) else { continue };
        for to in tos {
            if let Some(b) = child(to)
                && a != b
            {
                edges.entry(a.clone()).or_default().insert(b);
            }
        }
    }
    // A cycle exists where a module reaches itself.
    let mut cycles = Vec::new();
    for start in edges.keys() {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<Vec<String>> = vec![vec![start.clone()]];
        while let Some(path) = stack.pop() {
            let last = path.last().unwrap();
            for next in edges.get(last).into_iter().flatten() {
                if next == start {
                    let mut c = path.clone();
                    c.push(next.clone());
                    cycles.push(c);
                } else if seen.insert(next.clone()) {
                    let mut p = path.clone();
                    p.push(next.clone());
                    stack.push(p);
                }
            }
        }
    }
    cycles
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let g = graph(&src);
    let folders: BTreeSet<Vec<String>> =
        g.keys().filter(|m| m.len() > 1).map(|m| m[..m.len() - 1].to_vec()).chain([Vec::new()]).collect();
    let mut found = Vec::new();
    for folder in &folders {
        for c in cycles_under(&g, folder) {
            found.push(format!(
                "{}: {}",
                if folder.is_empty() { "src".into() } else { folder.join("::") },
                c.join(" -> ")
            ));
        }
    }
    assert!(found.is_empty(), "module cycles:\n{}", found.join("\n"));
    // The check sees what it should: the store uses the model, not the other way.
    let sqlite_sla: Vec<String> = ["store", "sqlite", "sla"].map(String::from).to_vec();
    assert!(g[&sqlite_sla].iter().any(|m| m[0] == "engine"));
}

#[test]
fn sqlite_stays_inside_its_backend() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let backend = src.join("store").join("sqlite");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let outside = |needle: &str, allowed: &dyn Fn(&Path) -> bool| -> Vec<String> {
        files
            .iter()
            .filter(|f| !f.starts_with(&backend) && !allowed(f))
            .filter(|f| code(f).contains(needle))
            .map(|f| f.display().to_string())
            .collect()
    };
    let rusqlite = outside("rusqlite", &|_| false);
    assert!(rusqlite.is_empty(), "rusqlite used outside src/store/sqlite: {rusqlite:?}");
    // The rest of the program reaches the backend through the store's
    // interface; only the store's own module chooses it.
    let boundary = src.join("store").join("mod.rs");
    let reached = outside("sqlite::", &|f| f == boundary);
    assert!(reached.is_empty(), "the SQLite backend named outside src/store/mod.rs: {reached:?}");
    // The check sees what it should.
    assert!(files.iter().any(|f| f.starts_with(&backend) && code(f).contains("rusqlite")));
}

#[test]
fn the_store_takes_the_time_from_its_callers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src.join("store"), &mut files);
    let reading: Vec<String> =
        files.iter().filter(|f| code(f).contains("clock::now")).map(|f| f.display().to_string()).collect();
    assert!(reading.is_empty(), "the store reads the clock: {reading:?}");
    assert!(files.len() > 10, "the store's files are found");
}
