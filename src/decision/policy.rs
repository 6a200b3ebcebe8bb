//! The baseline decision policy: a handful of well-known fraud checks over the
//! default feature set, combined into a score and an action. The analyst-owned
//! rule files replace it; it is also the fallback when no ruleset is loaded.

use super::{Action, Mode, Reason};
use crate::features::FeatureSet;

/// How a check reads the features.
#[derive(Debug, Clone, Copy)]
enum Test {
    AtLeast(usize, f64),
    Equals(usize, f64),
}

impl Test {
    fn holds(self, f: &[f64]) -> bool {
        // NaN (missing) never satisfies a comparison, so a missing feature never fires.
        match self {
            Test::AtLeast(i, v) => f[i] >= v,
            Test::Equals(i, v) => f[i] == v,
        }
    }
}

struct Check {
    reason: Reason<'static>,
    weight: f64,
    tests: Vec<Test>,
}

/// The outcome of the policy for one event.
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    /// Risk score in 0..=1.
    pub score: f64,
    /// Reasons of the checks that fired, strongest first.
    pub reasons: Vec<Reason<'static>>,
}

/// Checks resolved to feature indices at start-up.
pub struct BaselinePolicy {
    checks: Vec<Check>,
    review_at: f64,
    block_at: f64,
}

type CheckSpec = (
    &'static str,
    &'static str,
    f64,
    &'static [(&'static str, char, f64)],
);

const CHECKS: &[CheckSpec] = &[
    (
        "card_testing",
        "Several tiny payments in 10 minutes (card testing)",
        0.55,
        &[("account.small_tx_count_10m", '≥', 3.0)],
    ),
    (
        "terminal_risk",
        "Terminal with recent confirmed fraud",
        0.55,
        &[
            ("terminal.fraud_count_7d", '≥', 3.0),
            ("terminal.fraud_share_7d", '≥', 0.2),
        ],
    ),
    (
        "amount_spike",
        "Amount far above the account's usual spend",
        0.45,
        &[
            ("amount_to_account_avg_30d", '≥', 4.0),
            ("account.tx_count_30d", '≥', 5.0),
        ],
    ),
    (
        "new_device_country",
        "New device and new country for the account",
        0.4,
        &[
            ("account_device.first_seen", '=', 1.0),
            ("account_country.first_seen", '=', 1.0),
            ("account.first_seen", '=', 0.0),
        ],
    ),
    (
        "velocity_10m",
        "Many payments in 10 minutes",
        0.35,
        &[("account.tx_count_10m", '≥', 6.0)],
    ),
    (
        "terminal_burst",
        "Burst of payments at one terminal",
        0.3,
        &[("terminal.tx_count_10m", '≥', 12.0)],
    ),
];

impl BaselinePolicy {
    /// Resolves the checks against `set`; checks whose features the set lacks are left out.
    pub fn new(set: &FeatureSet) -> Self {
        let checks = CHECKS
            .iter()
            .filter_map(|&(code, text, weight, tests)| {
                let tests = tests
                    .iter()
                    .map(|&(name, op, v)| {
                        let i = set.index_of(name)?;
                        Some(if op == '=' {
                            Test::Equals(i, v)
                        } else {
                            Test::AtLeast(i, v)
                        })
                    })
                    .collect::<Option<Vec<_>>>()?;
                Some(Check {
                    reason: Reason {
                        code,
                        text,
                        mode: Mode::Live,
                    },
                    weight,
                    tests,
                })
            })
            .collect();
        Self {
            checks,
            review_at: 0.4,
            block_at: 0.7,
        }
    }

    /// Number of active checks.
    pub fn len(&self) -> usize {
        self.checks.len()
    }

    /// Whether no check is active.
    pub fn is_empty(&self) -> bool {
        self.checks.is_empty()
    }

    /// A version string identifying this policy.
    pub fn version(&self) -> &'static str {
        "baseline-1"
    }

    /// Evaluates every check over `features`, reusing `out`'s buffer.
    pub fn evaluate(&self, features: &[f64], out: &mut Verdict) {
        out.reasons.clear();
        let mut keep = 1.0;
        for c in &self.checks {
            if c.tests.iter().all(|t| t.holds(features)) {
                keep *= 1.0 - c.weight;
                out.reasons.push(c.reason);
            }
        }
        out.score = 1.0 - keep;
    }

    /// The action for a score.
    pub fn action(&self, score: f64) -> Action {
        if score >= self.block_at {
            Action::Block
        } else if score >= self.review_at {
            Action::Review
        } else {
            Action::Allow
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::load_feature_set;

    #[test]
    fn checks_resolve_and_combine() {
        let set = load_feature_set("default").unwrap();
        let p = BaselinePolicy::new(&set);
        assert_eq!(
            p.len(),
            CHECKS.len(),
            "every check resolves against the default set"
        );
        let mut f = vec![0.0; set.len()];
        let mut v = Verdict::default();
        p.evaluate(&f, &mut v);
        assert_eq!(
            (v.score, v.reasons.len(), p.action(v.score)),
            (0.0, 0, Action::Allow)
        );
        f[set.index_of("account.small_tx_count_10m").unwrap()] = 5.0;
        p.evaluate(&f, &mut v);
        assert_eq!(p.action(v.score), Action::Review);
        f[set.index_of("account.tx_count_10m").unwrap()] = 9.0;
        p.evaluate(&f, &mut v);
        assert_eq!(p.action(v.score), Action::Block);
        assert_eq!(v.reasons[0].code, "card_testing");
        f[set.index_of("account.small_tx_count_10m").unwrap()] = f64::NAN;
        p.evaluate(&f, &mut v);
        assert_eq!(v.reasons.len(), 1, "a missing feature never fires a check");
    }
}
