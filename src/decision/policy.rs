//! The decision policy: how rule hits and the model score become an action.
//! Declared in `rules/policy.yaml` and loaded with the ruleset
//! ([`crate::rules::policy`]); applied here.

use super::{Action, Mode, Reason};
use crate::rules::policy::{DecisionPolicy, ModelFallback};
use crate::rules::{RuleAction, RuleMode, Ruleset};

/// Who flagged a reviewed or blocked payment that the model scored: whether
/// the live rule hits alone, and the model's score alone, would have flagged it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlaggedBy {
    /// The rules alone would have; the model alone not.
    Rules,
    /// The model alone would have; the rules alone not.
    Model,
    /// Either alone would have, or only both together did.
    Both,
}

impl FlaggedBy {
    /// `rules`, `model` or `both`, as in decisions.
    pub fn as_str(self) -> &'static str {
        match self {
            FlaggedBy::Rules => "rules",
            FlaggedBy::Model => "model",
            FlaggedBy::Both => "both",
        }
    }
}

/// Why the policy chose the action, as a reason in the decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyOutcome {
    /// No live rule or threshold applied.
    Default,
    /// A live allow-list rule overrode everything else.
    AllowRule,
    /// A live block rule.
    BlockRule,
    /// A live review rule.
    ReviewRule,
    /// The score reached the review threshold.
    ReviewThreshold,
    /// The score reached the block threshold.
    BlockThreshold,
    /// The model could not score; the fallback applied.
    ModelUnavailable,
}

/// What the model contributed to a decision.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ModelInput {
    /// No model is configured: rules alone decide, nothing is missing.
    NotConfigured,
    /// The model's score in 0..=1.
    Score(f64),
    /// A model is configured but could not score: the fallback applies.
    Unavailable,
}

/// The action, score and policy reason of one decision.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    /// What to do.
    pub action: Action,
    /// Combined risk score in 0..=1.
    pub score: f64,
    /// Why (shown as the last reason).
    pub outcome: PolicyOutcome,
}

impl DecisionPolicy {
    /// Who flagged a payment that [`DecisionPolicy::decide`] flagged with the
    /// live hits `live` and model score `model`: the same policy run on the
    /// hits alone and on the score alone.
    pub fn flagged_by(&self, rules: &Ruleset, live: &[u16], model: f64) -> FlaggedBy {
        let flags = |live: &[u16], m| self.decide(rules, live, m).action != Action::Allow;
        match (
            flags(live, ModelInput::NotConfigured),
            flags(&[], ModelInput::Score(model)),
        ) {
            (true, false) => FlaggedBy::Rules,
            (false, true) => FlaggedBy::Model,
            _ => FlaggedBy::Both,
        }
    }

    /// Combines the live hits of `rules` and the model's input into an action: a live allow rule wins; else a live block
    /// rule; else the noisy-or of live rule scores and the weighted model score
    /// against the thresholds, at least review if a live review rule fired.
    pub fn decide(&self, rules: &Ruleset, live: &[u16], model: ModelInput) -> Verdict {
        let mut keep = 1.0;
        let (mut allow, mut block, mut review) = (false, false, false);
        for &i in live {
            let r = &rules.rules[i as usize];
            debug_assert_eq!(r.mode, RuleMode::Live);
            keep *= 1.0 - r.score;
            match r.action {
                RuleAction::Allow => allow = true,
                RuleAction::Block => block = true,
                RuleAction::Review => review = true,
                RuleAction::Score => {}
            }
        }
        if let ModelInput::Score(m) = model {
            keep *= 1.0 - self.model_weight * m.clamp(0.0, 1.0);
        }
        let score = (1.0 - keep).clamp(0.0, 1.0);
        let (action, outcome) = if allow {
            (Action::Allow, PolicyOutcome::AllowRule)
        } else if block {
            (Action::Block, PolicyOutcome::BlockRule)
        } else if score >= self.block_at {
            (Action::Block, PolicyOutcome::BlockThreshold)
        } else if review {
            (Action::Review, PolicyOutcome::ReviewRule)
        } else if score >= self.review_at {
            (Action::Review, PolicyOutcome::ReviewThreshold)
        } else {
            (Action::Allow, PolicyOutcome::Default)
        };
        if model == ModelInput::Unavailable && !allow {
            let floor = match self.fallback {
                ModelFallback::RulesOnly => Action::Allow,
                ModelFallback::Review => Action::Review,
                ModelFallback::Block => Action::Block,
            };
            return Verdict {
                action: action.max(floor),
                score,
                outcome: PolicyOutcome::ModelUnavailable,
            };
        }
        Verdict {
            action,
            score,
            outcome,
        }
    }

    /// The reason describing how the policy decided, if it adds information.
    pub fn reason(&self, outcome: PolicyOutcome) -> Option<Reason<'_>> {
        let (code, text) = match outcome {
            PolicyOutcome::ReviewThreshold => ("policy_review_threshold", self.texts[0].as_str()),
            PolicyOutcome::BlockThreshold => ("policy_block_threshold", self.texts[1].as_str()),
            PolicyOutcome::ModelUnavailable => ("policy_model_unavailable", self.texts[2].as_str()),
            _ => return None,
        };
        Some(Reason {
            code,
            text,
            mode: Mode::Live,
        })
    }
}
