//! The on-disk format: `rules/*.yaml` rule files, `rules/lists/*.txt` named lists
//! and `rules/policy.yaml`, parsed with positions for `file:line:col` errors.

use marked_yaml::{LoadError, Spanned};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;

/// A problem in a rules directory, with its location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    /// File, relative to the rules directory's parent when possible.
    pub file: String,
    /// 1-based line (0 when unknown).
    pub line: usize,
    /// 1-based column (0 when unknown).
    pub col: usize,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file, self.line, self.col, self.message
            )
        }
    }
}

impl RuleError {
    /// An error at a YAML position.
    pub fn at(file: &str, pos: Option<&marked_yaml::Marker>, message: impl Into<String>) -> Self {
        Self {
            file: file.to_string(),
            line: pos.map_or(0, |m| m.line()),
            col: pos.map_or(0, |m| m.column()),
            message: message.into(),
        }
    }
}

/// What a rule does when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleAction {
    /// Allow-list: the payment is allowed whatever else fires.
    Allow,
    /// At least review.
    Review,
    /// Block.
    Block,
    /// Only add `score` to the risk score.
    Score,
}

/// Whether a rule counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RuleMode {
    /// Changes decisions.
    #[default]
    Live,
    /// Evaluated and recorded, never changes the action.
    Shadow,
    /// Not evaluated.
    Off,
}

/// The reason a rule gives in decisions.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReasonSpec {
    /// Stable machine code.
    pub code: Spanned<String>,
    /// Short human text.
    pub text: String,
}

/// Expected outcome of a rule test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    /// The rule fires.
    Hit,
    /// The rule does not fire.
    Miss,
}

/// One in-file test case: feature values (or a sequence of events) and the expected outcome.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestSpec {
    /// Name shown in `rules test`.
    #[serde(default)]
    pub name: String,
    /// Feature and field values; unspecified features are missing.
    #[serde(default)]
    pub features: BTreeMap<String, ScalarValue>,
    /// Payment events fed through a fresh feature engine; the rule is judged on the last.
    #[serde(default)]
    pub events: Vec<BTreeMap<String, ScalarValue>>,
    /// Expected outcome.
    pub expect: Spanned<Expect>,
}

/// A YAML scalar in a test: number, text or boolean.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum ScalarValue {
    /// A number.
    Num(f64),
    /// A boolean (as 1 / 0).
    Bool(bool),
    /// Text.
    Text(String),
}

/// One rule as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Unique id.
    pub id: Spanned<String>,
    /// What the rule is for.
    #[serde(default)]
    pub description: String,
    /// The condition.
    pub when: Spanned<String>,
    /// What firing does.
    pub action: RuleAction,
    /// Contribution to the risk score when it fires (0..1).
    #[serde(default)]
    pub score: Option<Spanned<f64>>,
    /// The reason shown in decisions.
    pub reason: ReasonSpec,
    /// `live`, `shadow` or `off`.
    #[serde(default)]
    pub mode: RuleMode,
    /// Higher first in evaluation and in the reasons.
    #[serde(default)]
    pub priority: i32,
    /// Who to ask about it.
    #[serde(default)]
    pub owner: String,
    /// Examples with expected outcomes; all must pass for the ruleset to load.
    #[serde(default)]
    pub tests: Vec<TestSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    rules: Vec<RuleSpec>,
}

/// The decision policy as written in `rules/policy.yaml`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PolicySpec {
    /// What the policy is.
    pub description: String,
    /// Score at or above which a payment is reviewed.
    pub review_threshold: f64,
    /// Score at or above which a payment is blocked.
    pub block_threshold: f64,
    /// Weight of the model score in the combined score (0 ignores the model).
    pub model_weight: f64,
    /// What to do when the model cannot score: `rules_only` (fail open) or `review`/`block` (fail closed).
    pub model_fallback: String,
}

impl Default for PolicySpec {
    fn default() -> Self {
        Self {
            description: String::new(),
            review_threshold: 0.5,
            block_threshold: 0.8,
            model_weight: 1.0,
            model_fallback: "rules_only".into(),
        }
    }
}

fn load_error_position(e: &LoadError) -> Option<marked_yaml::Marker> {
    match e {
        LoadError::TopLevelMustBeMapping(m)
        | LoadError::TopLevelMustBeSequence(m)
        | LoadError::UnexpectedAnchor(m)
        | LoadError::MappingKeyMustBeScalar(m)
        | LoadError::UnexpectedTag(m)
        | LoadError::ScanError(m, _) => Some(*m),
        LoadError::DuplicateKey(inner) => inner.key.span().start().copied(),
    }
}

/// Where `key:` first appears as a mapping key in `text` (1-based), or (0, 0).
fn find_key(text: &str, key: &str) -> (usize, usize) {
    for (i, line) in text.lines().enumerate() {
        let body = line.trim_start_matches([' ', '-', '{']);
        if body.starts_with(key) && body[key.len()..].trim_start().starts_with(':') {
            return (i + 1, line.len() - body.len() + 1);
        }
        if let Some(p) = line.find(&format!("{key}:")) {
            if p > 0 && matches!(line.as_bytes()[p - 1], b' ' | b'{' | b',') {
                return (i + 1, p + 1);
            }
        }
    }
    (0, 0)
}

/// Where the first `quoted` word of `message` appears in `text` as a value, or (0, 0).
fn find_quoted_value(text: &str, message: &str) -> (usize, usize) {
    let Some(word) = message.split('`').nth(1).filter(|w| !w.is_empty()) else {
        return (0, 0);
    };
    for (i, line) in text.lines().enumerate() {
        if let Some(p) = line.find(&format!(": {word}")) {
            return (i + 1, p + 3);
        }
    }
    (0, 0)
}

fn yaml_error(file: &str, text: &str, e: marked_yaml::FromYamlError) -> RuleError {
    match e {
        marked_yaml::FromYamlError::ParseYaml(le) => {
            let pos = load_error_position(&le);
            // The loader's message starts with "line:col: "; keep only the text.
            let text = le.to_string();
            let text = text
                .split_once(": ")
                .map_or(text.as_str(), |(_, t)| t)
                .to_string();
            RuleError::at(file, pos.as_ref(), text)
        }
        marked_yaml::FromYamlError::FromNode(ne) => {
            let pos = ne.start_mark();
            match &*ne {
                marked_yaml::spanned_serde::Error::UnknownFieldError(field, expected, _) => {
                    let message = format!(
                        "unknown field '{field}'; expected one of {}",
                        expected.join(", ")
                    );
                    let mut e = RuleError::at(file, pos.as_ref(), message);
                    if pos.is_none() {
                        (e.line, e.col) = find_key(text, field);
                    }
                    e
                }
                other => {
                    let mut e = RuleError::at(file, pos.as_ref(), other.to_string());
                    if pos.is_none() {
                        (e.line, e.col) = find_quoted_value(text, &e.message);
                    }
                    e
                }
            }
        }
    }
}

/// Parses a rule file.
pub fn parse_rule_file(file: &str, text: &str) -> Result<Vec<RuleSpec>, RuleError> {
    marked_yaml::from_yaml::<RuleFile>(0, text)
        .map(|f| f.rules)
        .map_err(|e| yaml_error(file, text, e))
}

/// Parses `policy.yaml`.
pub fn parse_policy_file(file: &str, text: &str) -> Result<PolicySpec, RuleError> {
    let p: PolicySpec = marked_yaml::from_yaml(0, text).map_err(|e| yaml_error(file, text, e))?;
    let ok = |v: f64| (0.0..=1.0).contains(&v);
    if !ok(p.review_threshold) || !ok(p.block_threshold) || p.review_threshold > p.block_threshold {
        return Err(RuleError::at(
            file,
            None,
            "thresholds must satisfy 0 <= review_threshold <= block_threshold <= 1",
        ));
    }
    if !(0.0..=1.0).contains(&p.model_weight) {
        return Err(RuleError::at(
            file,
            None,
            "model_weight must be between 0 and 1",
        ));
    }
    if !["rules_only", "review", "block"].contains(&p.model_fallback.as_str()) {
        return Err(RuleError::at(
            file,
            None,
            format!(
                "model_fallback '{}': expected rules_only, review or block",
                p.model_fallback
            ),
        ));
    }
    Ok(p)
}

/// One value of a list file, as written, with its 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListEntry {
    /// The value.
    pub value: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters) of its first character.
    pub col: usize,
}

/// A list file as read: its values, and what is wrong or doubtful in it.
#[derive(Debug, Default)]
pub struct ParsedList {
    /// Values in file order.
    pub entries: Vec<ListEntry>,
    /// Lines that cannot be read (a quote never closed, text after one).
    pub errors: Vec<RuleError>,
    /// Lines read, but perhaps not as meant (a comment that may be part of the value).
    pub warnings: Vec<RuleError>,
}

/// Parses list file `path`: one value per line, kept as written (`POS#12` is
/// a value) but for whitespace and CR at either end. A comment is a line whose
/// first non-blank character is `#`, or a `#` that follows whitespace (so
/// `shop-1  # flagship` is `shop-1`). A value in double quotes is kept exactly
/// as between them (`"Shop #1"`, `" padded "`), and may be followed by a
/// comment. A byte-order mark is skipped; lines end at LF, CRLF or CR.
pub fn parse_list(path: &str, text: &str) -> ParsedList {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut list = ParsedList::default();
    // A line ends at LF, CRLF or a lone CR (classic Mac line ends, which some
    // spreadsheets still save): `str::lines` alone would read a CR-only file
    // as one value.
    let lines = text.lines().flat_map(|line| line.split('\r'));
    for (i, line) in lines.enumerate() {
        let body = line.trim_start();
        let col = line[..line.len() - body.len()].chars().count() + 1;
        let at = |col: usize, message: String| RuleError {
            file: path.to_string(),
            line: i + 1,
            col,
            message,
        };
        if let Some(quoted) = body.strip_prefix('"') {
            let Some(end) = quoted.find('"') else {
                list.errors.push(at(
                    col,
                    "a value that opens a quote must close it on its line: expected '\"'".into(),
                ));
                continue;
            };
            let rest = &quoted[end + 1..];
            let after = rest.trim_start();
            if !after.is_empty() && !after.starts_with('#') {
                let col = col + 2 + quoted[..end].chars().count() + rest.len() - after.len();
                list.errors.push(at(
                    col,
                    "expected the end of the line or a '#' comment after the closing quote".into(),
                ));
                continue;
            }
            list.entries.push(ListEntry {
                value: quoted[..end].to_string(),
                line: i + 1,
                col,
            });
            continue;
        }
        // The value ends at the first `#` after whitespace.
        let end = body
            .char_indices()
            .zip(body.chars().skip(1))
            .find(|((_, c), next)| c.is_whitespace() && *next == '#')
            .map_or(body.len(), |((at, _), _)| at);
        let value = body[..end].trim_end();
        if value.is_empty() || value.starts_with('#') {
            continue;
        }
        // `Shop #1`: a comment that does not start with a space may be part of the value.
        let comment = body[end..].trim_start();
        if comment.len() > 1 && !comment[1..].starts_with(char::is_whitespace) {
            list.warnings.push(at(
                col,
                format!(
                    "warning: '{value}' is listed, and '{comment}' after it read as a comment (a '#' after whitespace starts one); to list '{}', write it in double quotes",
                    body.trim_end()
                ),
            ));
        }
        if let Some(doubt) = doubtful_value(value) {
            list.warnings.push(at(col, format!("warning: {doubt}")));
        }
        list.entries.push(ListEntry {
            value: value.to_string(),
            line: i + 1,
            col,
        });
    }
    list
}

/// Why an unquoted list value is probably not what was meant (values pasted
/// from code or a spreadsheet row), if so; quoting it in double quotes keeps
/// it without a warning.
fn doubtful_value(value: &str) -> Option<String> {
    let inner = value.strip_prefix('\'').and_then(|v| v.strip_suffix('\''));
    if let Some(inner) = inner {
        Some(format!("{value} is listed with its single quotes; lists quote with double quotes: write {inner} or \"{inner}\""))
    } else if value.contains(',') || value.contains(';') {
        Some(format!("'{value}' is listed as one value; a list holds one value per line (to list it as it is, write it in double quotes)"))
    } else {
        None
    }
}

/// Maps byte offset `at` of the expression of `when` to its 1-based (line, col)
/// in `source`, by walking the source from the scalar's start and matching the
/// expression's characters (this handles plain, quoted and block scalars).
pub fn expression_position(source: &str, when: &Spanned<String>, at: usize) -> (usize, usize) {
    let Some(start) = when.span().start() else {
        return (0, 0);
    };
    let src: Vec<char> = source.chars().collect();
    let expr = when.as_str();
    let target = expr[..at.min(expr.len())].chars().count();
    let mut i = start.character().min(src.len());
    // Skip a block-scalar indicator line or an opening quote.
    if i < src.len() && (src[i] == '|' || src[i] == '>') {
        while i < src.len() && src[i] != '\n' {
            i += 1;
        }
    } else if i < src.len() && (src[i] == '"' || src[i] == '\'') {
        i += 1;
    }
    for (k, c) in expr.chars().enumerate() {
        if k == target {
            break;
        }
        if c.is_whitespace() {
            continue;
        }
        while i < src.len() && src[i] != c {
            i += 1;
        }
        i += 1;
    }
    // Land on the target character itself (skipping layout whitespace).
    if let Some(tc) = expr.chars().nth(target) {
        if !tc.is_whitespace() {
            while i < src.len() && src[i] != tc {
                i += 1;
            }
        }
    }
    let line = src[..i.min(src.len())]
        .iter()
        .filter(|&&c| c == '\n')
        .count()
        + 1;
    let col = i - src[..i.min(src.len())]
        .iter()
        .rposition(|&c| c == '\n')
        .map_or(0, |p| p + 1)
        + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_of_expression_offsets_in_plain_quoted_and_block_scalars() {
        let text = "rules:\n  - id: a\n    when: amount > x\n  - id: b\n    when: \"amount > y\"\n  - id: c\n    when: |\n      amount > 1 and\n        foo < 2\n";
        #[derive(Deserialize)]
        struct R {
            when: Spanned<String>,
        }
        #[derive(Deserialize)]
        struct F {
            rules: Vec<R>,
        }
        let f: F = marked_yaml::from_yaml(0, text).unwrap();
        assert_eq!(expression_position(text, &f.rules[0].when, 9), (3, 20));
        assert_eq!(expression_position(text, &f.rules[1].when, 9), (5, 21));
        let at = f.rules[2].when.find("foo").unwrap();
        assert_eq!(expression_position(text, &f.rules[2].when, at), (9, 9));
    }

    #[test]
    fn yaml_errors_have_positions() {
        let e = parse_rule_file("r.yaml", "rules:\n  - id: a\n    when: x > 1\n    action: review\n    reason: {code: a, text: t}\n    colour: red\n").unwrap_err();
        assert_eq!((e.line, e.file.as_str()), (6, "r.yaml"), "{e}");
        assert!(e.message.contains("unknown field 'colour'"), "{e}");
        let e = parse_rule_file("r.yaml", "rules:\n  - id: a\n    action: [oops\n").unwrap_err();
        assert!(e.line >= 3, "{e}");
        let e = parse_rule_file("r.yaml", "rules:\n  - id: a\n    when: x > 1\n    action: deny\n    reason: {code: a, text: t}\n").unwrap_err();
        assert_eq!(e.line, 4, "{e}");
    }

    #[test]
    fn list_values_are_kept_as_written_and_comments_need_whitespace_before_them() {
        let values = |text: &str| -> Vec<(String, usize, usize)> {
            parse_list("l.txt", text)
                .entries
                .into_iter()
                .map(|e| (e.value, e.line, e.col))
                .collect()
        };
        /// A list file and its (value, line, col)s.
        type Case<'a> = (&'a str, &'a [(&'a str, usize, usize)]);
        let cases: [Case; 12] = [
            (
                "T1\rT2\r\r# c\rT3",
                &[("T1", 1, 1), ("T2", 2, 1), ("T3", 5, 1)],
            ),
            (
                "T1\r\nT2\rT3\n",
                &[("T1", 1, 1), ("T2", 2, 1), ("T3", 3, 1)],
            ),
            ("POS#12\n", &[("POS#12", 1, 1)]),
            ("shop-1  # our flagship\n", &[("shop-1", 1, 1)]),
            ("shop-1\t#tab\n", &[("shop-1", 1, 1)]),
            ("# heading\n   # indented comment\n#\n", &[]),
            ("  T2  \r\n\r\nT3\r\n", &[("T2", 1, 3), ("T3", 3, 1)]),
            ("a b # two words\n", &[("a b", 1, 1)]),
            ("#x\n#y#z\nid#1 #c\n", &[("id#1", 3, 1)]),
            ("\u{feff}T1\nT2", &[("T1", 1, 1), ("T2", 2, 1)]),
            ("T1 \r", &[("T1", 1, 1)]),
            ("\t\u{e9}t\u{e9}#1\n", &[("\u{e9}t\u{e9}#1", 1, 2)]),
        ];
        for (text, want) in cases {
            let want: Vec<_> = want
                .iter()
                .map(|(v, l, c)| (v.to_string(), *l, *c))
                .collect();
            assert_eq!(values(text), want, "{text:?}");
        }
    }

    /// A value in quotes is kept exactly (a `#` or spaces inside); a quote
    /// never closed, or text after one, is an error at its line and column; a
    /// comment that may be part of the value (`Shop #1`) lists the part before
    /// it, with a warning at its line. Each case: text, values, error
    /// positions, warning lines.
    #[test]
    fn quoted_list_values_are_kept_exactly_and_doubtful_comments_warned() {
        type Case<'a> = (&'a str, &'a [&'a str], &'a [(usize, usize)], &'a [usize]);
        let cases: [Case; 10] = [
            ("\"Shop #1\"\n", &["Shop #1"], &[], &[]),
            ("Shop #1\n", &["Shop"], &[], &[1]),
            ("  \" padded \"  # note\r\n", &[" padded "], &[], &[]),
            ("\"a\"\"b\"\n", &[], &[(1, 4)], &[]),
            ("\"open\nnext\n", &["next"], &[(1, 1)], &[]),
            ("shop-1  # our flagship shop\n", &["shop-1"], &[], &[]),
            ("x #\ny #  z\nw\t#2\n", &["x", "y", "w"], &[], &[3]),
            ("\u{feff}\"\u{e9}t\u{e9} #\" x\n", &[], &[(1, 9)], &[]),
            ("POS#12\n\"POS#12\"\n", &["POS#12", "POS#12"], &[], &[]),
            (
                "'T5'\nT1, T2\nT3;T4\n\"A, B\"\n'\n",
                &["'T5'", "T1, T2", "T3;T4", "A, B", "'"],
                &[],
                &[1, 2, 3],
            ),
        ];
        for (text, values, errors, warnings) in cases {
            let list = parse_list("l.txt", text);
            let got: Vec<&str> = list.entries.iter().map(|e| e.value.as_str()).collect();
            assert_eq!(got, values, "{text:?}");
            let at: Vec<(usize, usize)> = list.errors.iter().map(|e| (e.line, e.col)).collect();
            assert_eq!(at, errors, "{text:?}: {:?}", list.errors);
            let lines: Vec<usize> = list.warnings.iter().map(|e| e.line).collect();
            assert_eq!(lines, warnings, "{text:?}");
        }
        let w = &parse_list("l.txt", "Shop #1\n").warnings[0];
        assert!(
            w.message
                .contains("to list 'Shop #1', write it in double quotes"),
            "{w}"
        );
    }
}
