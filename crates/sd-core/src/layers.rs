//! The engine's layers, as data, and the test that holds the code to them (ARCHITECTURE.md,
//! "Layers"). A module may import its own layer and those below it, never one above, and the
//! modules import one another without a cycle. Every `crate::` and `super::` path in `src/`
//! is checked, `use` lines and paths in code alike; comments are not.

/// Layers from the bottom up, each with its modules (a `parent::child` entry is a submodule
/// that sits lower than its parent). A new module must be placed here or the test fails.
pub(crate) const LAYERS: &[(&str, &[&str])] = &[
    (
        "foundation",
        &[
            "error",
            "names",
            "fsutil",
            "control",
            "crypt",
            "store",
            "select",
            "device",
            "rules",
            "filetype",
            "index::walk",
            "content",
            "tree",
        ],
    ),
    ("library", &["library"]),
    ("runner", &["runner"]),
    ("catalog", &["location::row"]),
    (
        "domain",
        &[
            "query", "copies", "organise", "search", "volume", "audit", "index", "dupes",
            "fileops", "location", "transfer", "sidecar",
        ],
    ),
    ("services", &["jobs", "events", "actions", "watch"]),
    ("node", &["node"]),
];

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::{Path, PathBuf};

    use super::LAYERS;

    /// Items the crate root re-exports, and the module that defines them.
    const ROOT_ITEMS: &[(&str, &str)] =
        &[("Error", "error"), ("Result", "error"), ("Node", "node")];

    fn layer_of(module: &str) -> Option<usize> {
        LAYERS.iter().position(|(_, ms)| ms.contains(&module))
    }

    /// The table entry a module path belongs to: its longest prefix listed in [`LAYERS`].
    fn node_of(path: &[&str]) -> Option<String> {
        if let [item, ..] = path
            && let Some((_, m)) = ROOT_ITEMS.iter().find(|(i, _)| i == item)
        {
            return Some((*m).to_owned());
        }
        (1..=path.len())
            .rev()
            .map(|n| path[..n].join("::"))
            .find(|p| layer_of(p).is_some())
    }

    /// Every `.rs` file under `dir`, with its module path (`index/walk.rs` → `index::walk`).
    fn modules(dir: &Path, prefix: &[String], out: &mut Vec<(Vec<String>, PathBuf)>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
            if p.is_dir() {
                let mut sub = prefix.to_vec();
                sub.push(stem);
                modules(&p, &sub, out);
            } else if p.extension().is_some_and(|e| e == "rs") {
                let mut m = prefix.to_vec();
                if !(prefix.is_empty() && (stem == "lib" || stem == "layers")) {
                    m.push(stem);
                    out.push((m, p));
                }
            }
        }
    }

    /// The source without comments (line, doc and block), so doc links are not imports.
    fn strip_comments(src: &str) -> String {
        let mut out = String::with_capacity(src.len());
        let b = src.as_bytes();
        let (mut i, mut in_str) = (0, false);
        while i < b.len() {
            if in_str {
                if b[i] == b'\\' {
                    i += 2;
                    continue;
                }
                if b[i] == b'"' {
                    in_str = false;
                }
                out.push(b[i] as char);
                i += 1;
            } else if b[i] == b'"' && !(i > 0 && b[i - 1] == b'\'') {
                in_str = true;
                out.push('"');
                i += 1;
            } else if src[i..].starts_with("//") {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            } else if src[i..].starts_with("/*") {
                i += src[i..].find("*/").map_or(b.len() - i, |e| e + 2);
            } else {
                let c = src[i..].chars().next().unwrap();
                out.push(c);
                i += c.len_utf8();
            }
        }
        out
    }

    /// Expands the use-tree (or path) at the start of `s`: `a::{b, c::{d, self}}` →
    /// `[a::b, a::c::d, a::c]`.
    fn expand(s: &str) -> Vec<Vec<String>> {
        fn tree(s: &[u8], i: &mut usize, prefix: &[String], out: &mut Vec<Vec<String>>) {
            let mut path = prefix.to_vec();
            loop {
                while *i < s.len() && s[*i].is_ascii_whitespace() {
                    *i += 1;
                }
                if *i < s.len() && s[*i] == b'{' {
                    *i += 1;
                    loop {
                        tree(s, i, &path, out);
                        while *i < s.len() && s[*i].is_ascii_whitespace() {
                            *i += 1;
                        }
                        match s.get(*i) {
                            Some(b',') => *i += 1,
                            Some(b'}') => {
                                *i += 1;
                                return;
                            }
                            _ => return,
                        }
                        while *i < s.len() && s[*i].is_ascii_whitespace() {
                            *i += 1;
                        }
                        if s.get(*i) == Some(&b'}') {
                            *i += 1;
                            return;
                        }
                    }
                }
                let start = *i;
                while *i < s.len()
                    && (s[*i].is_ascii_alphanumeric() || s[*i] == b'_' || s[*i] == b'*')
                {
                    *i += 1;
                }
                let seg = std::str::from_utf8(&s[start..*i]).unwrap();
                if !seg.is_empty() && seg != "self" && seg != "*" {
                    path.push(seg.to_owned());
                }
                if s[*i..].starts_with(b"::") {
                    *i += 2;
                    continue;
                }
                // `X as Y`: skip the alias.
                let rest = std::str::from_utf8(&s[*i..]).unwrap();
                let trimmed = rest.trim_start();
                if let Some(after) = trimmed.strip_prefix("as ") {
                    *i += rest.len() - after.len();
                    while *i < s.len() && s[*i].is_ascii_whitespace() {
                        *i += 1;
                    }
                    while *i < s.len() && (s[*i].is_ascii_alphanumeric() || s[*i] == b'_') {
                        *i += 1;
                    }
                }
                out.push(path);
                return;
            }
        }
        let mut out = Vec::new();
        tree(s.as_bytes(), &mut 0, &[], &mut out);
        out
    }

    /// Module-to-module imports: importer entry → imported entry → where.
    type Edges = BTreeMap<String, BTreeMap<String, String>>;

    fn edges() -> (Edges, Vec<String>) {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        modules(&src, &[], &mut files);
        let mut edges = Edges::new();
        let mut problems = Vec::new();
        for (module, file) in files {
            let parts: Vec<&str> = module.iter().map(String::as_str).collect();
            let Some(from) = node_of(&parts) else {
                problems.push(format!(
                    "module {} is in no layer: add it to LAYERS in src/layers.rs",
                    module.join("::")
                ));
                continue;
            };
            let text = strip_comments(&std::fs::read_to_string(&file).unwrap());
            for (at, _) in text
                .match_indices("crate::")
                .chain(text.match_indices("super::"))
            {
                let before = text[..at].chars().last();
                if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
                    continue; // `$crate::`, `pub(crate)`, a longer path
                }
                let (base, rest): (Vec<String>, &str) = if text[at..].starts_with("crate::") {
                    (Vec::new(), &text[at + 7..])
                } else if module.len() > 1 {
                    (module[..module.len() - 1].to_vec(), &text[at + 7..])
                } else {
                    continue; // `super::` in a top-level file is an inline `mod tests`
                };
                for path in expand(rest) {
                    let mut full = base.clone();
                    full.extend(path);
                    let parts: Vec<&str> = full.iter().map(String::as_str).collect();
                    if parts.is_empty() {
                        continue;
                    }
                    match node_of(&parts) {
                        Some(to) if to != from => {
                            let line = text[..at].lines().count();
                            edges
                                .entry(from.clone())
                                .or_default()
                                .entry(to)
                                .or_insert_with(|| {
                                    format!("{}:{line}: {}", file.display(), full.join("::"))
                                });
                        }
                        Some(_) => {}
                        None => problems.push(format!(
                            "{}: crate::{} names no module of LAYERS",
                            file.display(),
                            full.join("::")
                        )),
                    }
                }
            }
        }
        (edges, problems)
    }

    #[test]
    fn every_module_has_a_layer_and_imports_only_downwards() {
        let (edges, mut problems) = edges();
        for (from, tos) in &edges {
            for (to, at) in tos {
                let (lf, lt) = (layer_of(from).unwrap(), layer_of(to).unwrap());
                if lt > lf {
                    problems.push(format!(
                        "{from} ({}) imports {to} ({}), a layer above it — {at}",
                        LAYERS[lf].0, LAYERS[lt].0
                    ));
                }
            }
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    #[test]
    fn modules_import_one_another_without_a_cycle() {
        let (edges, _) = edges();
        // Depth-first search; a grey node reached again closes a cycle.
        fn visit<'a>(
            n: &'a str,
            edges: &'a Edges,
            state: &mut BTreeMap<&'a str, bool>,
            stack: &mut Vec<&'a str>,
        ) -> Option<Vec<String>> {
            match state.get(n) {
                Some(true) => return None,
                Some(false) => {
                    let from = stack.iter().position(|s| *s == n).unwrap();
                    let mut cycle: Vec<String> = stack[from..]
                        .iter()
                        .zip(stack[from..].iter().skip(1).chain([&n]))
                        .map(|(a, b)| format!("{a} → {b} ({})", edges[*a][*b]))
                        .collect();
                    cycle.dedup();
                    return Some(cycle);
                }
                None => {}
            }
            state.insert(n, false);
            stack.push(n);
            for to in edges.get(n).into_iter().flat_map(|t| t.keys()) {
                if let Some(c) = visit(to, edges, state, stack) {
                    return Some(c);
                }
            }
            stack.pop();
            state.insert(n, true);
            None
        }
        let mut state = BTreeMap::new();
        for n in edges.keys() {
            if let Some(cycle) = visit(n, &edges, &mut state, &mut Vec::new()) {
                panic!("import cycle:\n{}", cycle.join("\n"));
            }
        }
    }

    #[test]
    fn the_layer_table_lists_each_module_once_and_only_real_ones() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        modules(&src, &[], &mut files);
        let real: BTreeSet<String> = files.iter().map(|(m, _)| m.join("::")).collect();
        let mut seen = BTreeSet::new();
        for (_, ms) in LAYERS {
            for m in *ms {
                assert!(seen.insert(*m), "{m} is listed twice");
                assert!(real.contains(*m), "{m} is listed but has no file");
            }
        }
    }

    /// The checker itself: group expansion, aliases, comments.
    #[test]
    fn the_checker_reads_use_trees() {
        let paths =
            |s: &str| -> Vec<String> { expand(s).into_iter().map(|p| p.join("::")).collect() };
        assert_eq!(paths("a::b;"), ["a::b"]);
        assert_eq!(
            paths("{Error, Result, index::{self as ix, walk::X}, q};"),
            ["Error", "Result", "index", "index::walk::X", "q"]
        );
        assert_eq!(
            paths("location::row::{self as location, Location};"),
            ["location::row", "location::row::Location"]
        );
        assert_eq!(
            strip_comments("a // crate::x\n/// [`crate::y`]\nb /* crate::z */ \"//\""),
            "a \n\nb  \"//\""
        );
        assert_eq!(
            node_of(&["index", "walk", "mtime_ns"]).as_deref(),
            Some("index::walk")
        );
        assert_eq!(node_of(&["index", "scan"]).as_deref(), Some("index"));
        assert_eq!(node_of(&["Result"]).as_deref(), Some("error"));
    }
}
