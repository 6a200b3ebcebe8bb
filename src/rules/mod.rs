//! Rules: analyst-owned rule files compiled once into bytecode over the feature
//! vector, a decision policy, named lists, in-file tests and hot reload.

pub mod compile;
pub mod file;
mod lists;
pub mod parser;
pub mod policy;
pub mod program;
pub mod reload;
pub mod subject;
mod testing;
pub mod text;
#[cfg(target_arch = "x86_64")]
mod wide;

pub use file::{RuleAction, RuleError, RuleMode};
pub use testing::TestOutcome;
pub use text::Texts;

use crate::features::FeatureSet;
use crate::state::key_hash;
use compile::{compile, Scope, STRING_FIELDS};
use file::{
    expression_position, parse_list, parse_policy_file, parse_rule_file, PolicySpec, RuleSpec,
};
use lists::ListFile;
use policy::DecisionPolicy;
use program::Program;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use text::CompiledList;

/// The starter ruleset shipped in `rules/`, compiled into the binary so the demo
/// and a fresh install work from any directory.
pub const BUILTIN_FILES: &[(&str, &str)] = &[
    ("rules/policy.yaml", include_str!("../../rules/policy.yaml")),
    (
        "rules/velocity.yaml",
        include_str!("../../rules/velocity.yaml"),
    ),
    (
        "rules/card_testing.yaml",
        include_str!("../../rules/card_testing.yaml"),
    ),
    ("rules/amount.yaml", include_str!("../../rules/amount.yaml")),
    (
        "rules/terminal.yaml",
        include_str!("../../rules/terminal.yaml"),
    ),
    (
        "rules/account_takeover.yaml",
        include_str!("../../rules/account_takeover.yaml"),
    ),
    ("rules/lists.yaml", include_str!("../../rules/lists.yaml")),
    (
        "rules/lists/trusted_terminals.txt",
        include_str!("../../rules/lists/trusted_terminals.txt"),
    ),
    (
        "rules/lists/high_risk_countries.txt",
        include_str!("../../rules/lists/high_risk_countries.txt"),
    ),
    (
        "rules/lists/blocked_devices.txt",
        include_str!("../../rules/lists/blocked_devices.txt"),
    ),
];

/// All problems found in a rules directory.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct RulesError(pub Vec<RuleError>);

/// One compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Unique id.
    pub id: String,
    /// What it is for.
    pub description: String,
    /// The condition as written.
    pub when: String,
    /// What firing does.
    pub action: RuleAction,
    /// Contribution to the risk score when it fires.
    pub score: f64,
    /// Reason code.
    pub code: String,
    /// Reason text.
    pub text: String,
    /// Live, shadow or off.
    pub mode: RuleMode,
    /// Evaluation and reason order, higher first.
    pub priority: i32,
    /// Owner.
    pub owner: String,
    /// The file it came from.
    pub file: String,
    /// The compiled condition.
    pub program: Program,
}

/// A compiled ruleset: rules in priority order, lists, policy and version.
#[derive(Debug, Clone)]
pub struct Ruleset {
    /// Rules, highest priority first (`off` rules included, never evaluated).
    pub rules: Vec<Rule>,
    lists: Vec<CompiledList>,
    /// How hits and the model score become an action.
    pub policy: DecisionPolicy,
    /// Content hash of every file (16 hex digits).
    pub version: String,
    /// Numeric slots rules read: the feature set, then `model.score` and friends.
    pub numeric_slots: usize,
    /// Which string fields (bit i = `STRING_FIELDS[i]`) `in` looks up in a list.
    hashed_fields: u16,
    /// In-file test cases that ran and passed at load.
    pub tests_passed: usize,
    /// Problems that do not stop the load (a list value listed twice), with
    /// their `file:line:col`.
    pub warnings: Vec<RuleError>,
    /// The rules [`Ruleset::evaluate`] runs, in order, with their screens packed
    /// together so that rules a screen rejects cost two comparisons.
    screened: Vec<ScreenedRule>,
    /// The same screens, eight to a group, for AVX-512.
    #[cfg(target_arch = "x86_64")]
    screen_lanes: wide::ScreenLanes,
}

/// Whether screens can be checked eight at a time with AVX-512.
fn wide_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    return wide::ScreenLanes::available();
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// A live or shadow rule as [`Ruleset::evaluate`] visits it.
#[derive(Debug, Clone)]
struct ScreenedRule {
    screen: program::Screen,
    rule: u16,
    shadow: bool,
}

/// Hits of one evaluation, reused across events (no allocation once warm).
#[derive(Debug, Default, Clone)]
pub struct Hits {
    /// Indices into [`Ruleset::rules`] of the live rules that fired, in priority order.
    pub live: Vec<u16>,
    /// Indices of the shadow rules that fired, in priority order.
    pub shadow: Vec<u16>,
}

impl Ruleset {
    /// Loads and compiles every file of `dir` against `set`, then runs the in-file
    /// tests. Any problem in any file fails the whole load.
    pub fn load_dir(dir: &Path, set: &FeatureSet) -> Result<Ruleset, RulesError> {
        let files = read_dir_files(dir)?;
        let refs: Vec<(&str, &str)> = files
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        Self::from_files(&refs, set)
    }

    /// The built-in starter ruleset.
    pub fn builtin(set: &FeatureSet) -> Result<Ruleset, RulesError> {
        Self::from_files(BUILTIN_FILES, set)
    }

    /// Compiles a ruleset from `(path, content)` pairs: `*/lists/*.txt` are lists,
    /// `*/policy.yaml` the policy, other `.yaml` files rules. Its in-file tests
    /// must pass.
    pub fn from_files(files: &[(&str, &str)], set: &FeatureSet) -> Result<Ruleset, RulesError> {
        let (mut ruleset, specs) = Self::compile_files(files, set)?;
        let outcomes = testing::run_tests(&ruleset, &specs, set);
        let failed: Vec<RuleError> = outcomes.iter().filter_map(|o| o.error.clone()).collect();
        if !failed.is_empty() {
            return Err(RulesError(failed));
        }
        ruleset.tests_passed = outcomes.len();
        Ok(ruleset)
    }

    fn load_dir_untested(
        dir: &Path,
        set: &FeatureSet,
    ) -> Result<(Ruleset, Vec<(String, RuleSpec)>), RulesError> {
        let files = read_dir_files(dir)?;
        let refs: Vec<(&str, &str)> = files
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        Self::compile_files(&refs, set)
    }

    fn compile_files(
        files: &[(&str, &str)],
        set: &FeatureSet,
    ) -> Result<(Ruleset, Vec<(String, RuleSpec)>), RulesError> {
        let sources = Sources::parse(files);
        let mut errors = sources.errors;
        let scope = Scope::new(set, &sources.list_names);
        let mut lists: Vec<CompiledList> =
            sources.list_files.iter().map(ListFile::compile).collect();
        let mut rules = Vec::new();
        let mut ids = HashSet::new();
        let mut specs: Vec<(String, RuleSpec)> = Vec::new();
        for (path, text, file_rules) in sources.rule_files {
            for spec in file_rules {
                if !ids.insert(spec.id.as_str().to_string()) {
                    errors.push(RuleError::at(
                        &path,
                        spec.id.span().start(),
                        format!("duplicate rule id '{}'", spec.id.as_str()),
                    ));
                    continue;
                }
                match compile_rule(&path, text, &spec, &scope, &mut lists) {
                    Ok(rule) => {
                        rules.push(rule);
                        specs.push((text.to_string(), spec));
                    }
                    Err(e) => errors.push(e),
                }
            }
        }
        let (list_errors, warnings) = lists::check(&sources.list_files, &rules, &lists);
        errors.extend(list_errors);
        if !errors.is_empty() {
            return Err(RulesError(errors));
        }
        // Stable order: priority (high first), then id.
        rules.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.id.cmp(&b.id)));
        let screened = rules
            .iter()
            .enumerate()
            .filter(|(_, r)| r.mode != RuleMode::Off)
            .map(|(i, r)| ScreenedRule {
                screen: r.program.screen,
                rule: i as u16,
                shadow: r.mode == RuleMode::Shadow,
            })
            .collect::<Vec<_>>();
        let hashed_fields = rules.iter().fold(0u16, |bits, r| {
            r.program.ops.iter().fold(bits, |bits, op| match op {
                program::Op::StrIn { field, .. } => bits | 1 << field,
                _ => bits,
            })
        });
        let ruleset = Ruleset {
            rules,
            #[cfg(target_arch = "x86_64")]
            screen_lanes: wide::ScreenLanes::new(screened.iter().map(|s| s.screen)),
            screened,
            lists,
            policy: DecisionPolicy::new(&sources.policy),
            version: format!("{:016x}", key_hash(0, &sources.hash_input)),
            numeric_slots: scope.numeric_slots(),
            hashed_fields,
            tests_passed: 0,
            warnings,
        };
        Ok((ruleset, specs))
    }

    /// The event's text fields (in [`STRING_FIELDS`] order) as this ruleset's
    /// rules read them: hashed where a rule looks one up in a list.
    #[inline]
    pub fn texts<'a>(&self, fields: [Option<&'a str>; STRING_FIELDS.len()]) -> Texts<'a> {
        Texts::new(fields, self.hashed_fields)
    }

    /// Evaluates every `live` and `shadow` rule over numeric slots `nums` (features,
    /// then the model scores) and the event's `texts` ([`Ruleset::texts`]); fired
    /// rules go to `hits`. Allocates nothing once `hits` has grown to the ruleset's size.
    #[inline]
    pub fn evaluate(&self, nums: &[f64], texts: &Texts, hits: &mut Hits) {
        self.evaluate_by(nums, texts, hits, wide_available());
    }

    /// [`Ruleset::evaluate`], checking the screens eight at a time with
    /// AVX-512 when `wide` (which the CPU must support) and there are enough.
    #[inline]
    fn evaluate_by(&self, nums: &[f64], texts: &Texts, hits: &mut Hits, wide: bool) {
        #[cfg(target_arch = "x86_64")]
        if wide && self.screen_lanes.suits(nums) {
            return self.evaluate_wide(nums, texts, hits);
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = wide;
        hits.live.clear();
        hits.shadow.clear();
        let mut stack = [0.0; program::MAX_STACK];
        for s in &self.screened {
            if !s.screen.rejects(nums) {
                self.run_screened(s, &mut stack, nums, texts, hits);
            }
        }
    }

    /// [`Ruleset::evaluate`] with the screens checked eight at a time.
    #[cfg(target_arch = "x86_64")]
    #[inline(never)]
    fn evaluate_wide(&self, nums: &[f64], texts: &Texts, hits: &mut Hits) {
        hits.live.clear();
        hits.shadow.clear();
        let mut stack = [0.0; program::MAX_STACK];
        // SAFETY: only called where the CPU has AVX-512 (`evaluate_by`'s `wide`).
        unsafe {
            self.screen_lanes.each_open(nums, |i| {
                self.run_screened(&self.screened[i], &mut stack, nums, texts, hits);
            });
        }
    }

    /// Interprets a screened rule and records it in `hits` if it fires.
    #[inline(always)]
    fn run_screened(
        &self,
        s: &ScreenedRule,
        stack: &mut [f64; program::MAX_STACK],
        nums: &[f64],
        texts: &Texts,
        hits: &mut Hits,
    ) {
        let program = &self.rules[s.rule as usize].program;
        if program.run(stack, nums, texts, &self.lists) == 1.0 {
            let target = if s.shadow {
                &mut hits.shadow
            } else {
                &mut hits.live
            };
            target.push(s.rule);
        }
    }

    /// Whether a single rule fires (for tests and `rules explain`).
    pub fn rule_fires(&self, rule: usize, nums: &[f64], texts: &Texts) -> bool {
        self.rules[rule].program.fires(nums, texts, &self.lists)
    }

    /// Counts of rules by mode.
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        let mut m = BTreeMap::new();
        for r in &self.rules {
            let k = match r.mode {
                RuleMode::Live => "live",
                RuleMode::Shadow => "shadow",
                RuleMode::Off => "off",
            };
            *m.entry(k).or_insert(0) += 1;
        }
        m
    }
}

/// Reads `DIR/*.yaml` and `DIR/lists/*.txt` as `(path, content)`, paths starting
/// with the directory's name.
fn read_dir_files(dir: &Path) -> Result<Vec<(String, String)>, RulesError> {
    let base = dir
        .file_name()
        .map_or("rules".to_string(), |n| n.to_string_lossy().to_string());
    let mut files = Vec::new();
    let mut read = |sub: &Path, prefix: &str, lists: bool| -> Result<(), RuleError> {
        let fail = |e: std::io::Error| {
            RuleError::at(
                &sub.display().to_string(),
                None,
                format!("cannot read: {e}"),
            )
        };
        let mut entries: Vec<_> = std::fs::read_dir(sub)
            .map_err(fail)?
            .collect::<Result<_, _>>()
            .map_err(fail)?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name().to_string_lossy().to_string();
            let wanted = if lists {
                name.ends_with(".txt")
            } else {
                name.ends_with(".yaml") || name.ends_with(".yml")
            };
            if wanted && e.path().is_file() {
                let path = format!("{prefix}/{name}");
                let bytes = std::fs::read(e.path())
                    .map_err(|e| RuleError::at(&path, None, format!("cannot read: {e}")))?;
                let text = crate::text::decode_text(bytes)
                    .map_err(|message| RuleError::at(&path, None, message))?;
                files.push((path, text));
            }
        }
        Ok(())
    };
    read(dir, &base, false).map_err(|e| RulesError(vec![e]))?;
    let lists = dir.join("lists");
    if lists.is_dir() {
        read(&lists, &format!("{base}/lists"), true).map_err(|e| RulesError(vec![e]))?;
    }
    Ok(files)
}

/// Runs the in-file tests of a rules directory without requiring them to pass:
/// returns every outcome, and the compile errors that kept rules from being tested.
pub fn test_dir(dir: &Path, set: &FeatureSet) -> (Vec<TestOutcome>, Vec<RuleError>) {
    match Ruleset::load_dir_untested(dir, set) {
        Ok((rs, specs)) => (testing::run_tests(&rs, &specs, set), Vec::new()),
        Err(e) => (Vec::new(), e.0),
    }
}

/// The files of a rules directory, parsed and sorted by kind (in path order).
struct Sources<'a> {
    /// Every path and text, for the ruleset's version.
    hash_input: Vec<u8>,
    /// The lists' names (file stems), in the order of `list_files`.
    list_names: Vec<String>,
    list_files: Vec<ListFile>,
    /// `policy.yaml`, or the default policy without one.
    policy: PolicySpec,
    /// Each rule file's path, text and rules.
    rule_files: Vec<(String, &'a str, Vec<RuleSpec>)>,
    /// Files that do not parse.
    errors: Vec<RuleError>,
}

impl<'a> Sources<'a> {
    /// Parses `files`: `*/lists/*.txt` are lists, `*/policy.yaml` the policy,
    /// other files rules.
    fn parse(files: &[(&str, &'a str)]) -> Sources<'a> {
        let mut sorted: Vec<&(&str, &str)> = files.iter().collect();
        sorted.sort_by_key(|(p, _)| *p);
        let mut s = Sources {
            hash_input: Vec::new(),
            list_names: Vec::new(),
            list_files: Vec::new(),
            policy: PolicySpec::default(),
            rule_files: Vec::new(),
            errors: Vec::new(),
        };
        for &&(path, text) in &sorted {
            for part in [path.as_bytes(), text.as_bytes()] {
                s.hash_input.extend_from_slice(part);
                s.hash_input.push(0);
            }
            let name = path.rsplit('/').next().unwrap_or(path);
            if path.contains("/lists/") && name.ends_with(".txt") {
                s.list_names.push(name.trim_end_matches(".txt").to_string());
                let parsed = parse_list(path, text);
                s.errors.extend(parsed.errors);
                s.list_files.push(ListFile {
                    path: path.to_string(),
                    entries: parsed.entries,
                    warnings: parsed.warnings,
                });
            } else if name == "policy.yaml" || name == "policy.yml" {
                match parse_policy_file(path, text) {
                    Ok(p) => s.policy = p,
                    Err(e) => s.errors.push(e),
                }
            } else {
                match parse_rule_file(path, text) {
                    Ok(rules) => s.rule_files.push((path.to_string(), text, rules)),
                    Err(e) => s.errors.push(e),
                }
            }
        }
        s
    }
}

/// Compiles rule `spec` of file `path` (whose text is `text`), adding its
/// inline lists to `lists`.
fn compile_rule(
    path: &str,
    text: &str,
    spec: &RuleSpec,
    scope: &Scope,
    lists: &mut Vec<CompiledList>,
) -> Result<Rule, RuleError> {
    if let Some(s) = &spec.score {
        if !(0.0..=1.0).contains(&**s) {
            return Err(RuleError::at(
                path,
                s.span().start(),
                "score must be between 0 and 1",
            ));
        }
    }
    let program = compile(&spec.when, scope, lists).map_err(|e| {
        let (line, col) = expression_position(text, &spec.when, e.at);
        RuleError {
            file: path.to_string(),
            line,
            col,
            message: e.message,
        }
    })?;
    Ok(Rule {
        id: spec.id.as_str().to_string(),
        description: spec.description.clone(),
        when: spec.when.as_str().to_string(),
        action: spec.action,
        score: spec.score.as_ref().map_or(0.0, |s| **s),
        code: spec.reason.code.as_str().to_string(),
        text: spec.reason.text.clone(),
        mode: spec.mode,
        priority: spec.priority,
        owner: spec.owner.clone(),
        file: path.to_string(),
        program,
    })
}

#[cfg(test)]
mod missing_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod text_tests;
