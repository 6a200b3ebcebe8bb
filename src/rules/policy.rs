//! The decision policy as the analysts declare it in `rules/policy.yaml`:
//! thresholds, the model's weight and the fallback, resolved once per ruleset.
//! [`crate::decision`] applies it.

use super::file::PolicySpec;

/// What to do when the model cannot score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelFallback {
    /// Decide on the rules alone (fail open).
    RulesOnly,
    /// At least review (fail closed).
    Review,
    /// Block (fail closed).
    Block,
}

/// The policy, resolved from `policy.yaml`.
#[derive(Debug, Clone)]
pub struct DecisionPolicy {
    pub(crate) review_at: f64,
    pub(crate) block_at: f64,
    pub(crate) model_weight: f64,
    pub(crate) fallback: ModelFallback,
    /// Reason texts of the review threshold, block threshold and model fallback.
    pub(crate) texts: [String; 3],
}

impl DecisionPolicy {
    /// Resolves a policy file.
    pub fn new(spec: &PolicySpec) -> Self {
        let fallback = match spec.model_fallback.as_str() {
            "review" => ModelFallback::Review,
            "block" => ModelFallback::Block,
            _ => ModelFallback::RulesOnly,
        };
        Self {
            review_at: spec.review_threshold,
            block_at: spec.block_threshold,
            model_weight: spec.model_weight,
            fallback,
            texts: [
                format!(
                    "Risk score at or above the review threshold ({:.2})",
                    spec.review_threshold
                ),
                format!(
                    "Risk score at or above the block threshold ({:.2})",
                    spec.block_threshold
                ),
                format!(
                    "Model unavailable; decided on rules alone{}",
                    match fallback {
                        ModelFallback::RulesOnly => "",
                        ModelFallback::Review => " and sent to review (fail closed)",
                        ModelFallback::Block => " and blocked (fail closed)",
                    }
                ),
            ],
        }
    }

    /// Review threshold.
    pub fn review_threshold(&self) -> f64 {
        self.review_at
    }

    /// Block threshold.
    pub fn block_threshold(&self) -> f64 {
        self.block_at
    }
}
