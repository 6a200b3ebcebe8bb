//! Named lists (`rules/lists/NAME.txt`): compiled from their files, then
//! checked against the fields the rules compare them with.

use super::compile::STRING_FIELDS;
use super::file::{ListEntry, RuleError};
use super::program::Op;
use super::text::{is_code, never_holds, normalise, CompiledList};
use super::Rule;
use std::collections::{BTreeSet, HashMap};

/// A list file as read: its path and its values with their positions.
pub struct ListFile {
    /// Path, as in errors.
    pub path: String,
    /// Values in file order.
    pub entries: Vec<ListEntry>,
    /// What the reader noticed (see [`super::file::ParsedList`]).
    pub warnings: Vec<RuleError>,
}

impl ListFile {
    /// The compiled list: every value as text, and those that read as numbers.
    pub fn compile(&self) -> CompiledList {
        let values = || self.entries.iter().map(|e| e.value.as_str());
        CompiledList::new(values(), CompiledList::numbers_of(values()), false)
    }
}

/// How rules read a named list: with these text fields, or as numbers (`None`).
type Uses = BTreeSet<Option<u8>>;

/// The uses of each of the first `named` lists by `rules` (a code copy counts
/// for the list it copies).
fn uses_of(rules: &[Rule], lists: &[CompiledList], named: usize) -> Vec<Uses> {
    let mut uses = vec![Uses::new(); named];
    for op in rules.iter().flat_map(|r| &r.program.ops) {
        let (list, field) = match *op {
            Op::StrIn { field, list, .. } => (list, Some(field)),
            Op::NumIn { list, .. } => (list, None),
            _ => continue,
        };
        let list = lists[usize::from(list)].code_copy_of.unwrap_or(list);
        if let Some(u) = uses.get_mut(usize::from(list)) {
            u.insert(field);
        }
    }
    uses
}

/// Why `value` can never match under `use_`, if so.
fn never_matches(value: &str, use_: Option<u8>) -> Option<String> {
    match use_ {
        Some(field) => never_holds(field, &normalise(field, value)),
        None if value.parse::<f64>().is_ok_and(|n| !n.is_nan()) => None,
        None => Some("it is compared with a number, and this is not one".into()),
    }
}

/// Checks every list file against the rules that read it. Errors: a value
/// that no use can ever match. Warnings: a value listed twice (as the fields
/// that read it compare it: codes regardless of case).
pub fn check(
    files: &[ListFile],
    rules: &[Rule],
    lists: &[CompiledList],
) -> (Vec<RuleError>, Vec<RuleError>) {
    let (mut errors, mut warnings) = (Vec::new(), Vec::new());
    let uses = uses_of(rules, lists, files.len());
    for (file, uses) in files.iter().zip(&uses) {
        warnings.extend(file.warnings.iter().cloned());
        let at = |e: &ListEntry, message: String| RuleError {
            file: file.path.clone(),
            line: e.line,
            col: e.col,
            message,
        };
        let code = uses.iter().flatten().any(|&f| is_code(f));
        let mut first: HashMap<String, usize> = HashMap::new();
        for e in &file.entries {
            let reasons: Vec<String> = uses
                .iter()
                .map(|&u| never_matches(&e.value, u))
                .collect::<Option<_>>()
                .unwrap_or_default();
            if !uses.is_empty() && !reasons.is_empty() {
                let read_by: Vec<&str> = uses
                    .iter()
                    .map(|u| u.map_or("a number", |f| STRING_FIELDS[usize::from(f)]))
                    .collect();
                errors.push(at(
                    e,
                    format!(
                        "'{}' can never match: the rules compare this list with {} ({})",
                        e.value,
                        read_by.join(" and "),
                        reasons.join("; ")
                    ),
                ));
            }
            let key = if code {
                e.value.to_ascii_uppercase()
            } else {
                e.value.clone()
            };
            if let Some(line) = first.get(&key) {
                warnings.push(at(
                    e,
                    format!(
                        "warning: '{}' is listed again (first on line {line})",
                        e.value
                    ),
                ));
            } else {
                first.insert(key, e.line);
            }
        }
    }
    (errors, warnings)
}
