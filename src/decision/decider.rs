//! The decision step of the hot path: rules over the feature vector, the policy,
//! and the encoded decision. Shared by the pipeline, replays and benchmarks.

use super::policy::{FlaggedBy, Verdict};
use super::{Action, Decision, Mode, ModelInput, Reason, RuleReasons};
use crate::model::{BlockScratch, Model, ModelStore, Scratch, EXPLAIN_TOP};
use crate::ops::metrics::Metrics;
use crate::rules::compile::EXTRA_NUMBERS;
use crate::rules::reload::RuleStore;
use crate::rules::{Hits, Ruleset};
use crate::source::view::EventView;
use prometheus::IntCounter;
use std::sync::Arc;

/// What was decided, for metrics and summaries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    /// The action.
    pub action: Action,
    /// The combined score.
    pub score: f64,
    /// What the model contributed.
    pub model: ModelInput,
}

/// What [`Decider::judge`] found, for encoding.
struct Judged {
    challenger_score: Option<f64>,
    verdict: Verdict,
    model: ModelInput,
    flagged_by: Option<FlaggedBy>,
}

impl Judged {
    fn outcome(&self) -> Outcome {
        Outcome {
            action: self.verdict.action,
            score: self.verdict.score,
            model: self.model,
        }
    }
}

/// This decider's own handles on the running ruleset and models, refreshed when
/// their store's generation moves: one atomic load per event instead of a
/// reference-counted load of each.
struct Running {
    rules: Arc<Ruleset>,
    rules_generation: u64,
    champion: Option<Arc<Model>>,
    challenger: Option<Arc<Model>>,
    models_generation: u64,
}

impl Running {
    fn of(rules: &RuleStore, models: Option<&ModelStore>) -> Self {
        // Generations first: a swap after them is picked up by the next refresh.
        let (rules_generation, models_generation) =
            (rules.generation(), models.map_or(0, ModelStore::generation));
        Self {
            rules: rules.current().clone(),
            rules_generation,
            champion: models.and_then(ModelStore::champion),
            challenger: models.and_then(ModelStore::challenger),
            models_generation,
        }
    }

    #[inline]
    fn refresh(&mut self, rules: &RuleStore, models: Option<&ModelStore>) {
        if rules.generation() != self.rules_generation
            || models.map_or(0, ModelStore::generation) != self.models_generation
        {
            *self = Self::of(rules, models);
        }
    }
}

/// Reusable scratch space and handles for deciding events one after another.
pub struct Decider {
    rules: Arc<RuleStore>,
    running: Running,
    n_features: usize,
    nums: Vec<f64>,
    hits: Hits,
    metrics: Option<Arc<Metrics>>,
    counters: Option<(usize, Vec<[IntCounter; 2]>)>,
    models: Option<Arc<ModelStore>>,
    scratch: Box<Scratch>,
    explained: [u16; EXPLAIN_TOP],
    n_explained: usize,
    block: BlockScores,
}

/// The scores of the last [`Decider::score_block`], and which models gave them.
#[derive(Default)]
struct BlockScores {
    champion: Vec<f64>,
    challenger: Vec<f64>,
    scratch: BlockScratch,
    models: (Option<Arc<Model>>, Option<Arc<Model>>),
}

/// Whether `a` and `b` are the same model (or both none).
fn same(a: &Option<Arc<Model>>, b: &Option<Arc<Model>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        (None, None) => true,
        _ => false,
    }
}

impl Decider {
    /// A decider over `n_features` features with rules from `rules`; rule hits are
    /// counted in `metrics` when given.
    pub fn new(rules: Arc<RuleStore>, n_features: usize, metrics: Option<Arc<Metrics>>) -> Self {
        Self {
            running: Running::of(&rules, None),
            rules,
            n_features,
            nums: vec![f64::NAN; n_features + EXTRA_NUMBERS.len()],
            hits: Hits::default(),
            metrics,
            counters: None,
            models: None,
            scratch: Box::default(),
            explained: [0; EXPLAIN_TOP],
            n_explained: 0,
            block: BlockScores::default(),
        }
    }

    /// Scores events with the champion (and challenger) of `models`.
    pub fn with_models(mut self, models: Arc<ModelStore>) -> Self {
        self.running = Running::of(&self.rules, Some(&models));
        self.models = Some(models);
        self
    }

    /// Reason codes of the last decision, joined by `;` (for reports).
    pub fn reason_codes(&self, out: &mut String) {
        out.clear();
        let rules = &self.running.rules;
        for &i in self.hits.live.iter() {
            push_code(out, &rules.rules[i as usize].code);
        }
        if let Some(m) = &self.running.champion {
            for &f in &self.explained[..self.n_explained] {
                push_code(out, m.reason(f).0);
            }
        }
        for &i in self.hits.shadow.iter() {
            push_code(out, &rules.rules[i as usize].code);
            out.push_str("(shadow)");
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
        subject: &EventView<'_>,
        decided_at_ms: i64,
        latency_us: u64,
        out: &mut Vec<u8>,
    ) -> Outcome {
        let j = self.judge(subject, true, None);
        let Running {
            rules, champion, ..
        } = &self.running;
        let mut model_reasons = [Reason {
            code: "",
            text: "",
            mode: Mode::Live,
        }; EXPLAIN_TOP];
        if let Some(m) = champion {
            for (k, &f) in self.explained[..self.n_explained].iter().enumerate() {
                let (code, text) = m.reason(f);
                model_reasons[k] = Reason {
                    code,
                    text,
                    mode: Mode::Live,
                };
            }
        }
        let reasons = RuleReasons {
            rules,
            hits: &self.hits,
            model: &model_reasons[..self.n_explained],
            policy: rules.policy.reason(j.verdict.outcome),
        };
        let decision = Decision {
            event_id: subject.event_id,
            account_id: subject.account,
            action: j.verdict.action,
            score: j.verdict.score,
            reasons: &reasons,
            rules_version: &rules.version,
            model_version: champion.as_ref().map_or("none", |m| m.version.as_str()),
            challenger: self
                .running
                .challenger
                .as_ref()
                .zip(j.challenger_score)
                .map(|(c, score)| (c.version.as_str(), score)),
            flagged_by: j.flagged_by,
            event_ts_ms: subject.ts_ms,
            decided_at_ms,
            latency_us,
        };
        decision.encode(out);
        j.outcome()
    }

    /// [`Decider::decide`] without encoding a decision, for replays: the action,
    /// score and, with `explain`, the model's reasons for
    /// [`Decider::reason_codes`].
    pub fn assess(&mut self, subject: &EventView<'_>, explain: bool) -> Outcome {
        self.judge(subject, explain, None).outcome()
    }

    /// Scores a block of feature vectors, row `k` at `features[k * n..][..n]` for
    /// `n` features, with the running models, all rows at once (their trees
    /// stay in cache); [`Decider::assess_scored`] then decides row `k` without
    /// scoring it again.
    ///
    /// Panics if `features` holds fewer than `rows` rows.
    pub fn score_block(&mut self, features: &[f64], rows: usize) {
        self.running.refresh(&self.rules, self.models.as_deref());
        let BlockScores {
            champion,
            challenger,
            scratch,
            models,
        } = &mut self.block;
        for (model, scores) in [
            (&self.running.champion, &mut *champion),
            (&self.running.challenger, &mut *challenger),
        ] {
            scores.clear();
            if let Some(m) = model {
                scores.resize(rows, f64::NAN);
                m.score_block(features, self.n_features, scratch, scores);
            }
        }
        *models = (
            self.running.champion.clone(),
            self.running.challenger.clone(),
        );
    }

    /// [`Decider::assess`] of row `k` of the last [`Decider::score_block`], whose
    /// features were written to [`Decider::features_mut`]. Scores it afresh if the
    /// models changed since (or `k` was not in the block).
    pub fn assess_scored(&mut self, k: usize, subject: &EventView<'_>, explain: bool) -> Outcome {
        self.judge(subject, explain, Some(k)).outcome()
    }

    /// Scores the features with the models (or takes row `scored` of the last
    /// block's scores), runs the rules and the policy, and explains reviewed or
    /// blocked payments when `explain` is set.
    fn judge(&mut self, subject: &EventView<'_>, explain: bool, scored: Option<usize>) -> Judged {
        self.running.refresh(&self.rules, self.models.as_deref());
        let block = &self.block;
        let scored = scored.filter(|_| {
            same(&block.models.0, &self.running.champion)
                && same(&block.models.1, &self.running.challenger)
        });
        let prescored = |scores: &[f64]| scored.and_then(|k| scores.get(k).copied());
        let Running {
            rules,
            champion,
            challenger,
            ..
        } = &self.running;
        self.n_explained = 0;
        let model = match (champion, &self.models) {
            (Some(m), _) => {
                let s = prescored(&block.champion)
                    .unwrap_or_else(|| m.score(&self.nums[..self.n_features], &mut self.scratch));
                if s.is_finite() {
                    ModelInput::Score(s)
                } else {
                    ModelInput::Unavailable
                }
            }
            (None, Some(store)) if store.configured() => ModelInput::Unavailable,
            _ => ModelInput::NotConfigured,
        };
        let challenger_score = challenger.as_ref().map(|c| {
            prescored(&block.challenger)
                .unwrap_or_else(|| c.score(&self.nums[..self.n_features], &mut self.scratch))
        });
        self.nums[self.n_features] = match model {
            ModelInput::Score(s) => s,
            _ => f64::NAN,
        };
        self.nums[self.n_features + 1] = challenger_score.unwrap_or(f64::NAN);
        self.nums[self.n_features + 2] = subject.original_amount;
        rules.evaluate(
            &self.nums,
            &rules.texts(crate::rules::subject::strings(subject)),
            &mut self.hits,
        );
        let verdict = rules.policy.decide(rules, &self.hits.live, model);
        count_hits(
            &mut self.counters,
            self.metrics.as_deref(),
            rules,
            &self.hits,
        );
        // Explanations are for payments someone will look at: reviewed or blocked.
        if let (Some(m), ModelInput::Score(_), true, true) =
            (champion, model, verdict.action != Action::Allow, explain)
        {
            self.n_explained = m.explain(
                &self.nums[..self.n_features],
                &mut self.scratch,
                &mut self.explained,
            );
        }
        let flagged_by = match model {
            ModelInput::Score(m) if verdict.action != Action::Allow => {
                Some(rules.policy.flagged_by(rules, &self.hits.live, m))
            }
            _ => None,
        };
        Judged {
            challenger_score,
            verdict,
            model,
            flagged_by,
        }
    }
}

/// Counts the hits of `rules`, resolving a new ruleset's counters once.
fn count_hits(
    counters: &mut Option<(usize, Vec<[IntCounter; 2]>)>,
    metrics: Option<&Metrics>,
    rules: &Arc<Ruleset>,
    hits: &Hits,
) {
    let Some(metrics) = metrics else { return };
    let key = Arc::as_ptr(rules) as usize;
    if counters.as_ref().map(|c| c.0) != Some(key) {
        // A new ruleset went live: resolve its counters once.
        let resolved = rules
            .rules
            .iter()
            .map(|r| {
                ["live", "shadow"].map(|mode| metrics.rule_hits.with_label_values(&[&r.id, mode]))
            })
            .collect();
        *counters = Some((key, resolved));
        metrics.set_rules_version(&rules.version);
    }
    if let Some((_, c)) = counters {
        for &i in &hits.live {
            c[i as usize][0].inc();
        }
        for &i in &hits.shadow {
            c[i as usize][1].inc();
        }
    }
}

fn push_code(out: &mut String, code: &str) {
    if !out.is_empty() {
        out.push(';');
    }
    out.push_str(code);
}
