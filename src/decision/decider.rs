//! The decision step of the hot path: rules over the feature vector, the policy,
//! and the encoded decision. Shared by the pipeline, replays and benchmarks.

use super::{Action, Decision, ModelInput, RuleReasons};
use crate::metrics::Metrics;
use crate::rules::compile::{EXTRA_NUMBERS, STRING_FIELDS};
use crate::rules::reload::RuleStore;
use crate::rules::{hash_string_fields, Hits, Ruleset};
use crate::source::event::PaymentEvent;
use prometheus::IntCounter;
use std::sync::Arc;

/// The identity and string fields of the event being decided.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// `event_id`.
    pub event_id: &'a str,
    /// `account_id`.
    pub account_id: &'a str,
    /// Event time, epoch ms.
    pub event_ts_ms: i64,
    /// Values of [`STRING_FIELDS`], in order.
    pub strings: [Option<&'a str>; STRING_FIELDS.len()],
}

impl<'a> Subject<'a> {
    /// The subject of a parsed payment event (`mcc` goes through `mcc_buf`).
    pub fn of(ev: &'a PaymentEvent<'a>, mcc_buf: &'a mut itoa_buf::Buf) -> Self {
        let mcc = ev.mcc.map(|m| mcc_buf.format(m.0));
        Self {
            event_id: &ev.event_id,
            account_id: &ev.account_id,
            event_ts_ms: ev.ts.0,
            strings: [
                Some(&ev.account_id),
                Some(ev.card()),
                Some(&ev.terminal_id),
                ev.device_id.as_deref(),
                ev.ip.as_deref(),
                ev.country.as_deref(),
                Some(&ev.currency),
                ev.channel.as_deref(),
                mcc,
            ],
        }
    }
}

/// Formatting a small number without allocating.
pub mod itoa_buf {
    /// A stack buffer for a formatted `u16`.
    #[derive(Default)]
    pub struct Buf([u8; 5], usize);

    impl Buf {
        /// Formats `v` and returns it as text.
        pub fn format(&mut self, mut v: u16) -> &str {
            let mut i = self.0.len();
            loop {
                i -= 1;
                self.0[i] = b'0' + (v % 10) as u8;
                v /= 10;
                if v == 0 {
                    break;
                }
            }
            self.1 = i;
            std::str::from_utf8(&self.0[i..]).unwrap_or("")
        }
    }
}

/// What was decided, for metrics and summaries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    /// The action.
    pub action: Action,
    /// The combined score.
    pub score: f64,
}

/// Reusable scratch space and handles for deciding events one after another.
pub struct Decider {
    rules: Arc<RuleStore>,
    n_features: usize,
    nums: Vec<f64>,
    strs: [u64; STRING_FIELDS.len()],
    hits: Hits,
    metrics: Option<Arc<Metrics>>,
    counters: Option<(usize, Vec<[IntCounter; 2]>)>,
}

impl Decider {
    /// A decider over `n_features` features with rules from `rules`; rule hits are
    /// counted in `metrics` when given.
    pub fn new(rules: Arc<RuleStore>, n_features: usize, metrics: Option<Arc<Metrics>>) -> Self {
        Self {
            rules,
            n_features,
            nums: vec![f64::NAN; n_features + EXTRA_NUMBERS.len()],
            strs: [0; STRING_FIELDS.len()],
            hits: Hits::default(),
            metrics,
            counters: None,
        }
    }

    /// The feature slots to fill before [`Decider::decide`].
    #[inline]
    pub fn features_mut(&mut self) -> &mut [f64] {
        &mut self.nums[..self.n_features]
    }

    /// The features of the last event.
    pub fn features(&self) -> &[f64] {
        &self.nums[..self.n_features]
    }

    /// The hits of the last decision.
    pub fn hits(&self) -> &Hits {
        &self.hits
    }

    /// Decides the event whose features were written to [`Decider::features_mut`],
    /// and encodes the decision into `out`. `latency_us` is measured by the caller
    /// up to this call.
    pub fn decide(
        &mut self,
        subject: &Subject<'_>,
        model: ModelInput,
        decided_at_ms: i64,
        latency_us: u64,
        out: &mut Vec<u8>,
    ) -> Outcome {
        let rules = self.rules.current();
        self.nums[self.n_features] = match model {
            ModelInput::Score(s) => s,
            _ => f64::NAN,
        };
        hash_string_fields(rules.string_fields, subject.strings, &mut self.strs);
        rules.evaluate(&self.nums, &self.strs, &mut self.hits);
        let verdict = rules.policy.decide(&rules, &self.hits.live, model);
        self.count_hits(&rules);
        let reasons = RuleReasons {
            rules: &rules,
            hits: &self.hits,
            policy: rules.policy.reason(verdict.outcome),
        };
        let decision = Decision {
            event_id: subject.event_id,
            account_id: subject.account_id,
            action: verdict.action,
            score: verdict.score,
            reasons: &reasons,
            rules_version: &rules.version,
            model_version: "none",
            event_ts_ms: subject.event_ts_ms,
            decided_at_ms,
            latency_us,
        };
        decision.encode(out);
        Outcome {
            action: verdict.action,
            score: verdict.score,
        }
    }

    fn count_hits(&mut self, rules: &Arc<Ruleset>) {
        let Some(metrics) = &self.metrics else { return };
        let key = Arc::as_ptr(rules) as usize;
        if self.counters.as_ref().map(|c| c.0) != Some(key) {
            // A new ruleset went live: resolve its counters once.
            let counters = rules
                .rules
                .iter()
                .map(|r| {
                    ["live", "shadow"]
                        .map(|mode| metrics.rule_hits.with_label_values(&[&r.id, mode]))
                })
                .collect();
            self.counters = Some((key, counters));
            metrics.set_rules_version(&rules.version);
        }
        if let Some((_, c)) = &self.counters {
            for &i in &self.hits.live {
                c[i as usize][0].inc();
            }
            for &i in &self.hits.shadow {
                c[i as usize][1].inc();
            }
        }
    }
}
