//! The import graph follows the pipeline: every module under `src/` imports
//! only leaf modules and modules of earlier stages, and the files of one folder
//! import each other without a cycle. Read from the `crate::`, `super::` and
//! `self::` paths of the non-test code (issue 22).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Folders that only group modules: each module inside is a unit of its own
/// (`ops::metrics` a leaf, `ops::http` a stage), ranked by the lists below.
const GROUPS: &[&str] = &["ops"];

/// Modules any stage may import; they import only each other (without a cycle).
const LEAVES: &[&str] = &[
    "config",
    "time",
    "text",
    "ops::metrics",
    "ops::latency",
    "ops::lifecycle",
];

/// The stages in data-flow order. A module may import leaves and modules of
/// earlier stages only: never its own stage's peers, never a later stage.
const STAGES: &[&[&str]] = &[
    &["source"],
    &["state"],
    &["features"],
    &["rules", "model"],
    &["decision"],
    &["sink"],
    &["ops::internal_events"],
    &["ops::http"],
    &["api"],
    &["pipeline"],
    &["offline"],
    &["demo"],
    &["cli"],
];

/// Stages inside a folder, in the same manner: a submodule imports only
/// submodules of earlier stages of its folder (and its own descendants).
const SUBSTAGES: &[(&str, &[&[&str]])] = &[(
    // The model's life cycle: the file, then training and serving, then the store.
    "model",
    &[&["format"], &["train", "serve"], &["store"]],
)];

/// Cycles inside a folder still to be cut, each with why it waits. Empty is
/// the goal; a cycle not listed here fails the check.
const KNOWN_CYCLES: &[(&str, &str)] = &[];

/// One import: the path it names and where it is written.
struct Import {
    file: PathBuf,
    line: usize,
    /// Module path the import resolves to, from the crate root.
    target: Vec<String>,
}

#[test]
fn imports_follow_the_pipeline_without_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let problems = check(&src);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// An upstream import or a cycle written into a copy of `src/` is reported at
/// its file and line: the check can fail.
#[test]
fn an_injected_upstream_import_and_cycle_are_reported() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&src, dir.path());
    let metrics = dir.path().join("ops/metrics.rs");
    let text = std::fs::read_to_string(&metrics).unwrap();
    std::fs::write(&metrics, format!("use crate::decision::Action;\n{text}")).unwrap();
    let offsets = dir.path().join("pipeline/offsets.rs");
    let text = std::fs::read_to_string(&offsets).unwrap();
    std::fs::write(
        &offsets,
        format!("use super::partition::PartitionWorker;\n{text}"),
    )
    .unwrap();
    let flat = dir.path().join("model/serve/flat.rs");
    let text = std::fs::read_to_string(&flat).unwrap();
    std::fs::write(
        &flat,
        format!("use crate::model::store::ModelStore;\n{text}"),
    )
    .unwrap();
    // Inside a group folder each module keeps its own rank.
    let lifecycle = dir.path().join("ops/lifecycle.rs");
    let text = std::fs::read_to_string(&lifecycle).unwrap();
    std::fs::write(&lifecycle, format!("use super::http::serve;\n{text}")).unwrap();
    let problems = check(dir.path()).join("\n");
    assert!(
        problems.contains("ops/lifecycle.rs:1: leaf `ops::lifecycle` imports `ops::http`"),
        "{problems}"
    );
    assert!(
        problems.contains("ops/metrics.rs:1: leaf `ops::metrics` imports `decision`"),
        "{problems}"
    );
    assert!(
        problems.contains(
            "model/serve/flat.rs:1: `model::serve` imports `model::store`, which is a later stage"
        ),
        "{problems}"
    );
    assert!(
        problems.contains("pipeline/offsets.rs:1:") && problems.contains("cycle"),
        "{problems}"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Every upstream import and every cycle under `src`, as `file:line: what`.
fn check(src: &Path) -> Vec<String> {
    let modules = modules(src);
    let mut imports = Vec::new();
    for (path, file) in &modules {
        imports.extend(imports_of(file, path, &modules));
    }
    let mut problems = layering(src, &imports, &modules);
    problems.extend(sublayering(src, &imports, &modules));
    problems.extend(cycles(src, &imports, &modules));
    problems
}

/// Rank of a top-level module: leaves 0, then each stage in order.
fn rank(top: &str) -> Option<usize> {
    if LEAVES.contains(&top) {
        return Some(0);
    }
    STAGES.iter().position(|s| s.contains(&top)).map(|i| i + 1)
}

fn layering(
    src: &Path,
    imports: &[Import],
    modules: &BTreeMap<Vec<String>, PathBuf>,
) -> Vec<String> {
    let mut problems = Vec::new();
    for path in modules.keys().filter(|p| unit(p) == **p) {
        let name = path.join("::");
        let exempt = ["lib", "main"].contains(&name.as_str()) || GROUPS.contains(&name.as_str());
        if rank(&name).is_none() && !exempt {
            problems.push(format!(
                "src/{}: module `{name}` is neither a leaf nor a stage: add it to LEAVES or STAGES",
                modules[path].strip_prefix(src).unwrap().display(),
            ));
        }
    }
    for i in imports {
        let from = unit(&module_of(&i.file, modules)).join("::");
        let to = &unit(&i.target).join("::");
        if from == *to {
            continue;
        }
        let (Some(a), Some(b)) = (rank(&from), rank(to)) else {
            continue;
        };
        let kind = if a == 0 { "leaf" } else { "stage" };
        let wrong = if a == 0 { b != 0 } else { b >= a && b != 0 };
        if wrong {
            problems.push(format!(
                "{}:{}: {kind} `{from}` imports `{to}`, which is {}",
                i.file
                    .strip_prefix(src.parent().unwrap())
                    .unwrap()
                    .display(),
                i.line,
                if b == a {
                    "a peer of the same stage"
                } else {
                    "a later stage"
                }
            ));
        }
    }
    problems
}

/// Imports between the submodules of a folder of [`SUBSTAGES`] that do not
/// run from a later stage to an earlier one.
fn sublayering(
    src: &Path,
    imports: &[Import],
    modules: &BTreeMap<Vec<String>, PathBuf>,
) -> Vec<String> {
    let mut problems = Vec::new();
    for (folder, stages) in SUBSTAGES {
        let rank = |sub: &str| stages.iter().position(|s| s.contains(&sub));
        for sub in modules.keys().filter(|p| p.len() == 2 && p[0] == *folder) {
            if rank(&sub[1]).is_none() {
                problems.push(format!(
                    "src/{}: module `{}` is in no stage of its folder: add it to SUBSTAGES",
                    modules[sub].strip_prefix(src).unwrap().display(),
                    sub.join("::")
                ));
            }
        }
        for i in imports {
            let from = module_of(&i.file, modules);
            let (Some(a), Some(b)) = (from.get(1), i.target.get(1)) else {
                continue;
            };
            if from[0] != *folder || i.target[0] != *folder || a == b {
                continue;
            }
            if let (Some(ra), Some(rb)) = (rank(a), rank(b)) {
                if rb >= ra {
                    problems.push(format!(
                        "{}:{}: `{folder}::{a}` imports `{folder}::{b}`, which is {}",
                        i.file
                            .strip_prefix(src.parent().unwrap())
                            .unwrap()
                            .display(),
                        i.line,
                        if rb == ra {
                            "a peer of the same stage"
                        } else {
                            "a later stage"
                        }
                    ));
                }
            }
        }
    }
    problems
}

/// The unit a module path belongs to: its top-level module, or for a folder
/// of [`GROUPS`] the module inside it (`["ops", "http", "tests"]` ->
/// `["ops", "http"]`). A group folder alone (`["ops"]`) is its own unit and
/// in no stage.
fn unit(path: &[String]) -> Vec<String> {
    let n = if path.len() > 1 && GROUPS.contains(&path[0].as_str()) {
        2
    } else {
        1
    };
    path[..n].to_vec()
}

/// Cycles between top-level modules, and between the files of one folder.
fn cycles(src: &Path, imports: &[Import], modules: &BTreeMap<Vec<String>, PathBuf>) -> Vec<String> {
    // Edge (from module, to module) -> first import that makes it.
    let mut edges: BTreeMap<(Vec<String>, Vec<String>), &Import> = BTreeMap::new();
    for i in imports {
        let from = module_of(&i.file, modules);
        if from.first().map(String::as_str) == Some("lib") {
            continue;
        }
        // Edge between units, and the edge between siblings under a common parent.
        let (a, b) = (unit(&from), unit(&i.target));
        if a != b {
            edges.entry((a, b)).or_insert(i);
        }
        let common = from
            .iter()
            .zip(&i.target)
            .take_while(|(x, y)| x == y)
            .count();
        if common < from.len() && common < i.target.len() {
            let a = from[..=common].to_vec();
            let b = i.target[..=common].to_vec();
            if common > 0 {
                edges.entry((a, b)).or_insert(i);
            }
        }
    }
    let graph: BTreeMap<&Vec<String>, Vec<&Vec<String>>> =
        edges.keys().fold(BTreeMap::new(), |mut g, (a, b)| {
            g.entry(a).or_default().push(b);
            g
        });
    let mut problems = Vec::new();
    let mut reported = BTreeSet::new();
    for ((a, b), import) in &edges {
        if let Some(back) = path(&graph, b, a) {
            let mut cycle: Vec<&Vec<String>> = vec![a];
            cycle.extend(back);
            let key: BTreeSet<_> = cycle.iter().cloned().collect();
            let names: Vec<String> = cycle.iter().map(|m| m.join("::")).collect();
            let known = KNOWN_CYCLES.iter().any(|(c, _)| *c == names.join(" -> "));
            if reported.insert(key) && !known {
                problems.push(format!(
                    "{}:{}: import cycle {}",
                    import
                        .file
                        .strip_prefix(src.parent().unwrap())
                        .unwrap()
                        .display(),
                    import.line,
                    names.join(" -> ")
                ));
            }
        }
    }
    problems
}

/// A path from `from` to `to` in `graph`, both ends included, if any.
fn path<'a>(
    graph: &BTreeMap<&'a Vec<String>, Vec<&'a Vec<String>>>,
    from: &'a Vec<String>,
    to: &'a Vec<String>,
) -> Option<Vec<&'a Vec<String>>> {
    let mut prev: BTreeMap<&Vec<String>, &Vec<String>> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([from]);
    let mut seen = BTreeSet::from([from]);
    while let Some(n) = queue.pop_front() {
        if n == to {
            let mut out = vec![n];
            let mut cur = n;
            while let Some(&p) = prev.get(cur) {
                out.push(p);
                cur = p;
            }
            out.reverse();
            return Some(out);
        }
        for &m in graph.get(n).into_iter().flatten() {
            if seen.insert(m) {
                prev.insert(m, n);
                queue.push_back(m);
            }
        }
    }
    None
}

/// Every module file that is compiled outside tests, by module path
/// (`["pipeline", "partition"]`; `["lib"]` for the crate root).
fn modules(src: &Path) -> BTreeMap<Vec<String>, PathBuf> {
    let mut out = BTreeMap::new();
    out.insert(vec!["lib".to_string()], src.join("lib.rs"));
    let mut todo = vec![(Vec::<String>::new(), src.join("lib.rs"))];
    while let Some((path, file)) = todo.pop() {
        let text = std::fs::read_to_string(&file).unwrap();
        let dir = if path.is_empty() || file.ends_with("mod.rs") {
            file.parent().unwrap().to_path_buf()
        } else {
            file.with_extension("")
        };
        for (name, test_only) in child_modules(&text) {
            if test_only {
                continue;
            }
            let flat = dir.join(format!("{name}.rs"));
            let nested = dir.join(&name).join("mod.rs");
            let child = if flat.exists() { flat } else { nested };
            if !child.exists() {
                continue;
            }
            let mut p = path.clone();
            p.push(name);
            out.insert(p.clone(), child.clone());
            todo.push((p, child));
        }
    }
    out
}

/// `mod NAME;` declarations of a file, and whether each is `#[cfg(test)]`.
fn child_modules(text: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let mut test_attr = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with("#[cfg(test)]") {
            test_attr = true;
            continue;
        }
        let decl = line
            .strip_prefix("pub ")
            .or_else(|| line.strip_prefix("pub(crate) "))
            .unwrap_or(line);
        if let Some(name) = decl.strip_prefix("mod ").and_then(|r| r.strip_suffix(';')) {
            out.push((name.trim().to_string(), test_attr));
        }
        if !line.starts_with("#[") && !line.starts_with("//") {
            test_attr = false;
        }
    }
    out
}

/// The module path of a file.
fn module_of(file: &Path, modules: &BTreeMap<Vec<String>, PathBuf>) -> Vec<String> {
    modules
        .iter()
        .find(|(_, f)| f.as_path() == file)
        .map(|(p, _)| p.clone())
        .unwrap()
}

/// The longest module path that is a module file and a prefix of `path`.
fn resolve(path: &[String], modules: &BTreeMap<Vec<String>, PathBuf>) -> Option<Vec<String>> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|p| modules.contains_key(p))
}

/// The crate-internal imports of `file` outside its test code.
fn imports_of(file: &Path, me: &[String], modules: &BTreeMap<Vec<String>, PathBuf>) -> Vec<Import> {
    let code = strip(&std::fs::read_to_string(file).unwrap());
    // `self::` names this module; `super::` its parent (for a `mod.rs`, the
    // folder's module is the file's own).
    let here: Vec<String> = if me[0] == "lib" { vec![] } else { me.to_vec() };
    let parent: Vec<String> = here[..here.len().saturating_sub(1)].to_vec();
    let mut out = Vec::new();
    for (start, base, rest) in roots(&code, &here, &parent) {
        for p in expand(rest) {
            let mut full = base.clone();
            full.extend(p);
            let Some(target) = resolve(&full, modules) else {
                continue;
            };
            // A module may always name its own descendants (its `mod`s and re-exports).
            if target.starts_with(&here) && !here.is_empty() {
                continue;
            }
            out.push(Import {
                file: file.to_path_buf(),
                line: code[..start].matches('\n').count() + 1,
                target,
            });
        }
    }
    out
}

/// Each `crate::`/`super::`/`self::` path start: byte offset, base module path,
/// and the text after the root.
fn roots<'a>(
    code: &'a str,
    here: &[String],
    parent: &[String],
) -> Vec<(usize, Vec<String>, &'a str)> {
    let mut out = Vec::new();
    for (root, base) in [
        ("crate::", vec![]),
        ("super::", parent.to_vec()),
        ("self::", here.to_vec()),
    ] {
        let mut from = 0;
        while let Some(i) = code[from..].find(root) {
            let at = from + i;
            from = at + root.len();
            let before = code[..at].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$' || c == ':') {
                continue;
            }
            let mut base = base.clone();
            let mut rest = &code[from..];
            // `super::super::`
            while root == "super::" && rest.starts_with("super::") {
                base.pop();
                rest = &rest["super::".len()..];
            }
            out.push((at, base, rest));
        }
    }
    out
}

/// The module paths a use tree names: `a::{b, c::d}` gives `a::b` and `a::c::d`
/// (items are kept; [`resolve`] finds the module among them).
fn expand(text: &str) -> Vec<Vec<String>> {
    let mut segs = Vec::new();
    let mut rest = text;
    loop {
        rest = rest.trim_start();
        if rest.starts_with('{') {
            let close = matching(rest);
            let mut out = Vec::new();
            for part in split_top(&rest[1..close]) {
                for p in expand(part) {
                    let mut full = segs.clone();
                    full.extend(p);
                    out.push(full);
                }
            }
            return out;
        }
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if end == 0 {
            return vec![segs];
        }
        segs.push(rest[..end].to_string());
        rest = &rest[end..];
        match rest.strip_prefix("::") {
            Some(r) => rest = r,
            None => return vec![segs],
        }
    }
}

/// Index of the brace closing the one `s` starts with.
fn matching(s: &str) -> usize {
    let mut depth = 0;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
    }
    s.len()
}

/// `s` split at its top-level commas.
fn split_top(s: &str) -> Vec<&str> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out.into_iter().filter(|p| !p.trim().is_empty()).collect()
}

/// `code` with comments, string and char literals and `#[cfg(test)]` items
/// blanked; newlines are kept so offsets still give line numbers.
fn strip(code: &str) -> String {
    let b = code.as_bytes();
    let mut out = String::with_capacity(code.len());
    let mut i = 0;
    let blank = |out: &mut String, s: &str| {
        out.extend(s.chars().map(|c| if c == '\n' { '\n' } else { ' ' }));
    };
    while i < b.len() {
        let rest = &code[i..];
        let skip = if rest.starts_with("//") {
            rest.find('\n').unwrap_or(rest.len())
        } else if rest.starts_with("/*") {
            rest.find("*/").map_or(rest.len(), |e| e + 2)
        } else if rest.starts_with("r#\"") || rest.starts_with("r\"") {
            let hashes = rest[1..].chars().take_while(|&c| c == '#').count();
            let close = format!("\"{}", "#".repeat(hashes));
            let open = 2 + hashes;
            rest[open..]
                .find(&close)
                .map_or(rest.len(), |e| open + e + close.len())
        } else if rest.starts_with('"') {
            let mut j = 1;
            let rb = rest.as_bytes();
            while j < rb.len() && rb[j] != b'"' {
                j += if rb[j] == b'\\' { 2 } else { 1 };
            }
            (j + 1).min(rest.len())
        } else if rest.starts_with("'\\") {
            rest[2..].find('\'').map_or(2, |e| e + 3)
        } else if rest.starts_with('\'') && rest[1..].chars().nth(1) == Some('\'') {
            1 + rest[1..].chars().next().unwrap().len_utf8() + 1
        } else {
            0
        };
        if skip > 0 {
            blank(&mut out, &rest[..skip]);
            i += skip;
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    // Test items go once their strings and comments are blank.
    while let Some(at) = out.find("#[cfg(test)]") {
        let len = test_item_len(&out[at..]);
        let blanked: String = out[at..at + len]
            .chars()
            .map(|c| if c == '\n' { '\n' } else { ' ' })
            .collect();
        out.replace_range(at..at + len, &blanked);
    }
    out
}

/// Length of a `#[cfg(test)]` attribute and the item it applies to.
fn test_item_len(rest: &str) -> usize {
    let semi = rest.find(';').unwrap_or(rest.len());
    match rest.find('{') {
        Some(open) if open < semi => open + matching(&rest[open..]) + 1,
        _ => (semi + 1).min(rest.len()),
    }
}
