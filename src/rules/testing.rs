//! Runs the `tests` written next to each rule.

use super::compile::{Scope, STRING_FIELDS};
use super::file::{Expect, RuleError, RuleSpec, ScalarValue};
use super::{Ruleset, Texts};
use crate::features::{EngineLimits, EventView, FeatureEngine, FeatureSet};
use crate::source::event::{parse_event_at, Limits};
use std::sync::Arc;

/// The result of one test case.
#[derive(Debug, Clone)]
pub struct TestOutcome {
    /// Rule id.
    pub rule: String,
    /// Test name (or its position).
    pub name: String,
    /// Whether the rule behaved as expected.
    pub passed: bool,
    /// For a failure: where and why.
    pub error: Option<RuleError>,
}

/// Runs every test of every rule in `specs` (source text, spec) against `ruleset`.
pub fn run_tests(
    ruleset: &Ruleset,
    specs: &[(String, RuleSpec)],
    set: &FeatureSet,
) -> Vec<TestOutcome> {
    let scope = Scope::new(set, &[]);
    let mut out = Vec::new();
    for (_text, spec) in specs {
        let Some(rule_index) = ruleset.rules.iter().position(|r| r.id == spec.id.as_str()) else {
            continue;
        };
        let file = &ruleset.rules[rule_index].file;
        for (n, test) in spec.tests.iter().enumerate() {
            let name = if test.name.is_empty() {
                format!("test {}", n + 1)
            } else {
                test.name.clone()
            };
            let pos = test.expect.span().start();
            let fail = |message: String| TestOutcome {
                rule: spec.id.as_str().to_string(),
                name: name.clone(),
                passed: false,
                error: Some(RuleError::at(
                    file,
                    pos,
                    format!("rule '{}', test '{name}': {message}", spec.id.as_str()),
                )),
            };
            let inputs = if test.events.is_empty() {
                inputs_from_features(&scope, ruleset.numeric_slots, &test.features)
            } else {
                inputs_from_events(
                    set,
                    ruleset.numeric_slots,
                    &test.events,
                    &test.features,
                    &scope,
                )
            };
            let (nums, strs) = match inputs {
                Ok(x) => x,
                Err(message) => {
                    out.push(fail(message));
                    continue;
                }
            };
            let texts = Texts::new(strs.each_ref().map(Option::as_deref), u16::MAX);
            let fired = ruleset.rule_fires(rule_index, &nums, &texts);
            let want = *test.expect == Expect::Hit;
            if fired == want {
                out.push(TestOutcome {
                    rule: spec.id.as_str().to_string(),
                    name,
                    passed: true,
                    error: None,
                });
            } else {
                out.push(fail(format!(
                    "expected {}, but the rule {}",
                    if want { "hit" } else { "miss" },
                    if fired { "fired" } else { "did not fire" }
                )));
            }
        }
    }
    out
}

/// Event fields whose numbers a test event passes as JSON numbers, not text.
const NUMERIC_FIELDS: [&str; 2] = ["ts", "amount"];

/// An event's text fields, owned.
type Strings = [Option<String>; STRING_FIELDS.len()];

fn set_value(
    scope: &Scope,
    nums: &mut [f64],
    strs: &mut Strings,
    name: &str,
    v: &ScalarValue,
) -> Result<(), String> {
    if let Some(slot) = scope.number(name) {
        // YAML scalars may arrive as text; numbers and booleans are read from it.
        nums[slot as usize] = match v {
            ScalarValue::Num(n) => *n,
            ScalarValue::Bool(b) => f64::from(u8::from(*b)),
            ScalarValue::Text(t) => match t.as_str() {
                "true" => 1.0,
                "false" => 0.0,
                _ => t
                    .parse()
                    .map_err(|_| format!("'{name}' is a number, got text '{t}'"))?,
            },
        };
    } else if let Some(f) = Scope::string_field(name) {
        strs[f as usize] = Some(match v {
            ScalarValue::Text(t) => t.clone(),
            ScalarValue::Num(n) => n.to_string(),
            ScalarValue::Bool(_) => return Err(format!("'{name}' is text, got a boolean")),
        });
    } else {
        return Err(format!("unknown feature '{name}' in test"));
    }
    Ok(())
}

fn inputs_from_features(
    scope: &Scope,
    slots: usize,
    features: &std::collections::BTreeMap<String, ScalarValue>,
) -> Result<(Vec<f64>, Strings), String> {
    let mut nums = vec![f64::NAN; slots];
    let mut strs = Strings::default();
    for (name, v) in features {
        set_value(scope, &mut nums, &mut strs, name, v)?;
    }
    Ok((nums, strs))
}

/// Feeds the events through a fresh feature engine; returns the inputs of the last,
/// with `overrides` (e.g. `model.score`) applied on top.
fn inputs_from_events(
    set: &FeatureSet,
    slots: usize,
    events: &[std::collections::BTreeMap<String, ScalarValue>],
    overrides: &std::collections::BTreeMap<String, ScalarValue>,
    scope: &Scope,
) -> Result<(Vec<f64>, Strings), String> {
    let mut engine = FeatureEngine::new(Arc::new(set.clone()), EngineLimits::default());
    let mut nums = vec![f64::NAN; slots];
    let mut strs = Strings::default();
    for (i, fields) in events.iter().enumerate() {
        let mut obj = serde_json::Map::new();
        obj.insert("event_id".into(), format!("test-{i}").into());
        obj.insert("currency".into(), "EUR".into());
        for (k, v) in fields {
            let json = match v {
                ScalarValue::Num(n) => serde_json::json!(n),
                ScalarValue::Bool(b) => serde_json::json!(b),
                // YAML scalars arrive as text: `ts: 1704103200000` and
                // `amount: 6e3` are the JSON numbers a producer would send,
                // read as such (epoch milliseconds; an exponent).
                ScalarValue::Text(t) if NUMERIC_FIELDS.contains(&k.as_str()) => {
                    serde_json::from_str::<serde_json::Number>(t)
                        .map_or_else(|_| serde_json::json!(t), serde_json::Value::Number)
                }
                ScalarValue::Text(t) => serde_json::json!(t),
            };
            obj.insert(k.clone(), json);
        }
        let bytes = serde_json::Value::Object(obj).to_string();
        let ev = parse_event_at(bytes.as_bytes(), &Limits::default(), i64::MAX / 4)
            .map_err(|e| format!("event {} is not a valid payment event: {e}", i + 1))?;
        engine.update(&EventView::of(&ev), &mut nums[..set.len()]);
        if let Some(slot) = scope.number("original_amount") {
            nums[usize::from(slot)] = ev.original_amount.0;
        }
        let fields = super::subject::strings(&EventView::of(&ev));
        strs = fields.map(|f| f.map(str::to_string));
    }
    for (name, v) in overrides {
        set_value(scope, &mut nums, &mut strs, name, v)?;
    }
    Ok((nums, strs))
}
