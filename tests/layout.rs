//! The README's Architecture section, checked against the tree: every file of `src/` is in
//! the codemap, and each invariant that a reader can check by grep holds. Also the limits
//! that keep modules readable: no import cycle among the modules of `src/`, no file over
//! 1,200 lines, no function over 120, no shell heredoc over 30 lines.
//!
//! Reads files only; it runs nothing and needs nothing installed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const MAX_FILE_LINES: usize = 1_200;
const MAX_FN_LINES: usize = 120;
const MAX_HEREDOC_LINES: usize = 30;

/// Every `.rs` file below `src/`, as a path relative to the crate root, with its text.
fn sources() -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut paths = Vec::new();
    walk(&Path::new(ROOT).join("src"), &mut paths);
    paths.sort();
    let sources: Vec<_> = paths
        .iter()
        .map(|p| {
            let rel = p.strip_prefix(ROOT).unwrap().to_string_lossy().into_owned();
            (rel, std::fs::read_to_string(p).unwrap())
        })
        .collect();
    assert!(
        sources.len() >= 10,
        "found only {} files in src/",
        sources.len()
    );
    sources
}

/// The code of a line, without a `//` comment (good enough for this tree: no `//` inside
/// the strings these checks look at).
fn code(line: &str) -> &str {
    match line.find("//") {
        Some(i) => &line[..i],
        None => line,
    }
}

/// The README's `## Architecture` section.
fn architecture() -> String {
    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap();
    let start = readme
        .find("\n## Architecture\n")
        .expect("README.md has a section ## Architecture");
    let rest = &readme[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
    rest[..end].to_string()
}

#[test]
fn every_file_of_src_is_in_the_readme_codemap() {
    let map = architecture();
    let missing: Vec<_> = sources()
        .into_iter()
        .map(|(path, _)| path)
        .filter(|path| !map.contains(path.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "not in the README's Architecture codemap: {missing:?}"
    );
}

/// The top-level module a file belongs to: `src/kube/decode.rs` -> `kube`.
fn module_of(path: &str) -> String {
    let rest = path.strip_prefix("src/").unwrap();
    let first = rest.split('/').next().unwrap();
    first.trim_end_matches(".rs").to_string()
}

/// The crate's modules that `text` names: `crate::x`, `crate::{x, y::z}`.
fn uses(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in text.lines().map(code) {
        let mut rest = line;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            let names: Vec<&str> = match rest.strip_prefix('{') {
                Some(group) => {
                    let group = &group[..group.find('}').unwrap_or(group.len())];
                    group.split(',').collect()
                }
                None => vec![rest],
            };
            for name in names {
                let name: String = name
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    found.insert(name);
                }
            }
        }
    }
    found
}

#[test]
fn no_import_cycle_among_the_modules() {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let sources = sources();
    let modules: BTreeSet<String> = sources
        .iter()
        .map(|(p, _)| module_of(p))
        .filter(|m| m != "lib" && m != "main")
        .collect();
    for (path, text) in &sources {
        let from = module_of(path);
        for to in uses(text) {
            if to != from && modules.contains(&to) {
                edges.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    assert!(
        edges.get("cli").is_some_and(|e| e.contains("config")),
        "the scan sees cli -> config: {edges:?}"
    );
    // Depth-first search; a module met again on the current path closes a cycle.
    fn visit(
        m: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == m) {
            let mut cycle = path[at..].to_vec();
            cycle.push(m.to_string());
            return Some(cycle);
        }
        if !done.insert(m.to_string()) {
            return None;
        }
        path.push(m.to_string());
        for next in edges.get(m).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    for m in &modules {
        let cycle = visit(m, &edges, &mut Vec::new(), &mut done);
        assert!(
            cycle.is_none(),
            "import cycle: {}",
            cycle.unwrap().join(" -> ")
        );
    }
}

#[test]
fn no_file_of_src_is_over_1200_lines() {
    let long: Vec<_> = sources()
        .into_iter()
        .map(|(path, text)| (path, text.lines().count()))
        .filter(|(_, n)| *n > MAX_FILE_LINES)
        .collect();
    assert!(long.is_empty(), "over {MAX_FILE_LINES} lines: {long:?}");
}

/// Every `fn` of `text` with its first line number and length in lines: from the line
/// that declares it to the closing brace at its own indentation.
fn functions(text: &str) -> Vec<(String, usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        let mut words = trimmed;
        for prefix in [
            "pub(crate) ",
            "pub(super) ",
            "pub ",
            "const ",
            "unsafe ",
            "extern \"C\" ",
        ] {
            words = words.strip_prefix(prefix).unwrap_or(words);
        }
        let Some(rest) = words.strip_prefix("fn ") else {
            continue;
        };
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if trimmed.ends_with(';') || trimmed.ends_with('}') {
            continue;
        }
        let close = format!("{indent}}}");
        if let Some(end) = lines[i..].iter().position(|l| *l == close) {
            found.push((name, i + 1, end + 1));
        }
    }
    found
}

#[test]
fn no_function_of_src_is_over_120_lines() {
    let mut long = Vec::new();
    let mut seen = 0;
    for (path, text) in sources() {
        for (name, line, n) in functions(&text) {
            seen += 1;
            if n > MAX_FN_LINES {
                long.push(format!("{path}:{line} {name} ({n} lines)"));
            }
        }
    }
    assert!(seen > 300, "found only {seen} functions");
    assert!(long.is_empty(), "over {MAX_FN_LINES} lines: {long:#?}");
}

#[test]
fn the_function_scan_measures_what_it_finds() {
    let text =
        "fn a() {\n    x();\n}\n\n    pub fn b(\n        y: u8,\n    ) -> u8 {\n        y\n    }\n";
    assert_eq!(
        functions(text),
        vec![("a".to_string(), 1, 3), ("b".to_string(), 5, 5)]
    );
}

#[test]
fn unsafe_code_is_only_where_the_readme_says() {
    let map = architecture();
    assert!(
        map.contains("`unsafe` lives in `signal.rs` (two libc calls) and `heap.rs`"),
        "the README names where unsafe lives"
    );
    let allowed = ["src/signal.rs", "src/heap.rs"];
    let mut found = BTreeSet::new();
    for (path, text) in sources() {
        for line in text.lines().map(code) {
            let uses_unsafe = line.contains("unsafe {")
                || line.contains("unsafe fn")
                || line.contains("unsafe impl")
                || line.contains("unsafe extern");
            if uses_unsafe && !line.contains("unsafe_code") {
                found.insert(path.clone());
            }
        }
    }
    assert!(
        found.contains("src/signal.rs") && found.contains("src/heap.rs"),
        "the scan sees signal.rs and heap.rs: {found:?}"
    );
    let elsewhere: Vec<_> = found
        .iter()
        .filter(|p| !allowed.contains(&p.as_str()))
        .collect();
    assert!(
        elsewhere.is_empty(),
        "unsafe outside {allowed:?}: {elsewhere:?}"
    );
}

/// The files of `src/` whose code (not comments) contains any of `needles`.
fn files_using(needles: &[&str]) -> BTreeSet<String> {
    sources()
        .into_iter()
        .filter(|(_, text)| {
            text.lines()
                .map(code)
                .any(|l| needles.iter().any(|n| l.contains(n)))
        })
        .map(|(path, _)| path)
        .collect()
}

/// A test file (`tests.rs`, `*/tests/*`) is not held to the invariants of the code.
fn is_test_file(path: &str) -> bool {
    path.ends_with("/tests.rs") || path.contains("/tests/")
}

#[test]
fn only_the_writer_and_three_readers_touch_the_file_system() {
    let map = architecture();
    assert!(
        map.contains("`std::fs` appears only in"),
        "the README states it"
    );
    let allowed = |p: &str| {
        p.starts_with("src/snapshot")
            || p.starts_with("src/tls/")
            || p == "src/kube/mod.rs"
            || p == "src/cli/mod.rs"
    };
    let found = files_using(&["std::fs", "fs::"]);
    assert!(
        found.iter().any(|p| p.starts_with("src/snapshot")),
        "{found:?}"
    );
    let elsewhere: Vec<_> = found
        .iter()
        .filter(|p| !allowed(p) && !is_test_file(p))
        .collect();
    assert!(
        elsewhere.is_empty(),
        "std::fs outside the writer and the readers: {elsewhere:?}"
    );
}

#[test]
fn only_tls_and_health_open_sockets() {
    let map = architecture();
    assert!(
        map.contains("Sockets are opened only in"),
        "the README states it"
    );
    let found = files_using(&["TcpStream", "TcpListener"]);
    assert!(found.contains("src/health.rs"), "{found:?}");
    let elsewhere: Vec<_> = found
        .iter()
        .filter(|p| !p.starts_with("src/tls/") && *p != "src/health.rs" && !is_test_file(p))
        .collect();
    assert!(
        elsewhere.is_empty(),
        "sockets outside tls and health: {elsewhere:?}"
    );
}

#[test]
fn no_heredoc_in_scripts_is_over_30_lines() {
    let dir = Path::new(ROOT).join("scripts");
    let mut long = Vec::new();
    let mut scripts = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "sh") {
            continue;
        }
        scripts += 1;
        let text = std::fs::read_to_string(&path).unwrap();
        let mut open: Option<(String, usize)> = None;
        for (i, line) in text.lines().enumerate() {
            match &open {
                Some((tag, start)) if line.trim() == tag => {
                    if i - start - 1 > MAX_HEREDOC_LINES {
                        let name = path.file_name().unwrap().to_string_lossy();
                        long.push(format!("{name}:{} ({} lines)", start + 1, i - start - 1));
                    }
                    open = None;
                }
                Some(_) => {}
                None => {
                    if let Some(at) = line.find("<<") {
                        let tag: String = line[at + 2..]
                            .trim_start_matches(['-', '~'])
                            .trim_start()
                            .trim_start_matches(['\'', '"'])
                            .chars()
                            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                            .collect();
                        if !tag.is_empty() {
                            open = Some((tag, i));
                        }
                    }
                }
            }
        }
    }
    assert!(scripts >= 5, "found only {scripts} scripts");
    assert!(
        long.is_empty(),
        "heredocs over {MAX_HEREDOC_LINES} lines: {long:?}"
    );
}
