//! Decision: the output contract and its encoding, plus the policy that turns
//! checks on the features into an action.

mod decider;
mod policy;

pub use crate::rules::policy::{DecisionPolicy, ModelFallback};
pub use crate::source::view::EventView;
pub use decider::{Decider, Outcome};
pub use policy::{FlaggedBy, ModelInput, PolicyOutcome, Verdict};

use crate::source::time::write_rfc3339_ms;
use serde::ser::{SerializeStruct, Serializer};
use serde::Serialize;

/// Version of the decision contract (`config/decision.schema.json`).
pub const DECISION_SCHEMA_VERSION: u32 = 1;

/// What the payment pipeline should do with the payment.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Let it through.
    Allow,
    /// Let it through but queue it for an analyst.
    Review,
    /// Decline it.
    Block,
}

impl Action {
    /// Every action, in increasing severity.
    pub const ALL: [Action; 3] = [Action::Allow, Action::Review, Action::Block];

    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Review => "review",
            Action::Block => "block",
        }
    }
}

/// Whether a reason changed the action or was only recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Counted towards the action.
    Live,
    /// Evaluated and recorded, but never changes the action.
    Shadow,
}

/// One reason code with its short human text.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Reason<'a> {
    /// Stable machine code, e.g. `card_testing`.
    pub code: &'a str,
    /// Short text an analyst or customer-service agent can read.
    pub text: &'a str,
    /// Live or shadow.
    pub mode: Mode,
}

/// A sequence of reasons, however they are stored.
pub trait ReasonList {
    /// Number of reasons.
    fn count(&self) -> usize;
    /// Reason `i`.
    fn reason(&self, i: usize) -> Reason<'_>;
}

impl<const N: usize> ReasonList for [Reason<'_>; N] {
    fn count(&self) -> usize {
        N
    }
    fn reason(&self, i: usize) -> Reason<'_> {
        self[i]
    }
}

impl ReasonList for Vec<Reason<'_>> {
    fn count(&self) -> usize {
        self.len()
    }
    fn reason(&self, i: usize) -> Reason<'_> {
        self[i]
    }
}

/// The reasons of a rules-based decision: live hits, then shadow hits, then the
/// policy's own reason; nothing is copied.
pub struct RuleReasons<'a> {
    /// The ruleset that decided.
    pub rules: &'a crate::rules::Ruleset,
    /// Its hits for this event.
    pub hits: &'a crate::rules::Hits,
    /// The features that pushed the model's score up most.
    pub model: &'a [Reason<'a>],
    /// How the policy decided, when that adds information.
    pub policy: Option<Reason<'a>>,
}

impl ReasonList for RuleReasons<'_> {
    fn count(&self) -> usize {
        let policy = usize::from(self.policy.is_some());
        self.hits.live.len() + self.model.len() + self.hits.shadow.len() + policy
    }

    fn reason(&self, i: usize) -> Reason<'_> {
        let (live, model) = (self.hits.live.len(), self.model.len());
        let shadow = self.hits.shadow.len();
        let (index, mode) = if i < live {
            (self.hits.live[i], Mode::Live)
        } else if i < live + model {
            return self.model[i - live];
        } else if i < live + model + shadow {
            (self.hits.shadow[i - live - model], Mode::Shadow)
        } else {
            let none = Reason {
                code: "",
                text: "",
                mode: Mode::Live,
            };
            return self.policy.unwrap_or(none);
        };
        let r = &self.rules.rules[index as usize];
        Reason {
            code: &r.code,
            text: &r.text,
            mode,
        }
    }
}

struct SerializeReasons<'a>(&'a dyn ReasonList);

impl Serialize for SerializeReasons<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(self.0.count()))?;
        for i in 0..self.0.count() {
            seq.serialize_element(&self.0.reason(i))?;
        }
        seq.end()
    }
}

/// The decision for one payment, borrowing everything from the event and the policy.
#[derive(Clone, Copy)]
pub struct Decision<'a> {
    /// The payment's `event_id`.
    pub event_id: &'a str,
    /// The payment's `account_id`.
    pub account_id: &'a str,
    /// What to do.
    pub action: Action,
    /// Risk score in 0..=1.
    pub score: f64,
    /// Why, most important first.
    pub reasons: &'a dyn ReasonList,
    /// Content hash of the ruleset/policy that decided.
    pub rules_version: &'a str,
    /// Version of the model that scored (or `none`).
    pub model_version: &'a str,
    /// A challenger model's version and score, recorded but not acted on.
    pub challenger: Option<(&'a str, f64)>,
    /// Who flagged a reviewed or blocked payment the model scored.
    pub flagged_by: Option<FlaggedBy>,
    /// Event time, epoch ms.
    pub event_ts_ms: i64,
    /// Wall-clock time of the decision, epoch ms.
    pub decided_at_ms: i64,
    /// Microseconds from reading the event to deciding.
    pub latency_us: u64,
}

#[derive(Serialize)]
struct Challenger<'a> {
    model_version: &'a str,
    score: f64,
}

struct Rfc3339(i64);

impl Serialize for Rfc3339 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 40];
        let mut cursor = std::io::Cursor::new(&mut buf[..]);
        write_rfc3339_ms(&mut cursor, self.0);
        let len = cursor.position() as usize;
        s.serialize_str(std::str::from_utf8(&buf[..len]).unwrap_or(""))
    }
}

impl Serialize for Decision<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Decision", 12)?;
        st.serialize_field("schema_version", &DECISION_SCHEMA_VERSION)?;
        st.serialize_field("event_id", self.event_id)?;
        st.serialize_field("account_id", self.account_id)?;
        st.serialize_field("action", &self.action)?;
        st.serialize_field("score", &((self.score * 1e4).round() / 1e4))?;
        st.serialize_field("reasons", &SerializeReasons(self.reasons))?;
        st.serialize_field("rules_version", self.rules_version)?;
        st.serialize_field("model_version", self.model_version)?;
        st.serialize_field("event_ts", &Rfc3339(self.event_ts_ms))?;
        st.serialize_field("decided_at", &Rfc3339(self.decided_at_ms))?;
        st.serialize_field("latency_us", &self.latency_us)?;
        if let Some(by) = self.flagged_by {
            st.serialize_field("flagged_by", by.as_str())?;
        }
        if let Some((version, score)) = self.challenger {
            st.serialize_field(
                "challenger",
                &Challenger {
                    model_version: version,
                    score: (score * 1e4).round() / 1e4,
                },
            )?;
        }
        st.end()
    }
}

impl Decision<'_> {
    /// Appends the decision's JSON to `out` (cleared first).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.clear();
        // Serialising borrowed strings and numbers into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decision_json_has_the_contract_fields() {
        let reasons = [Reason {
            code: "velocity_10m",
            text: "many payments \"quickly\"",
            mode: Mode::Live,
        }];
        let d = Decision {
            event_id: "e1",
            account_id: "a1",
            action: Action::Review,
            score: 0.523456,
            reasons: &reasons,
            rules_version: "abc",
            model_version: "none",
            challenger: Some(("m2@abc", 0.25)),
            flagged_by: Some(FlaggedBy::Model),
            event_ts_ms: 1_700_000_000_123,
            decided_at_ms: 1_700_000_000_456,
            latency_us: 12,
        };
        let mut out = Vec::new();
        d.encode(&mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["action"], "review");
        assert_eq!(v["score"], 0.5235);
        assert_eq!(v["reasons"][0]["code"], "velocity_10m");
        assert_eq!(v["reasons"][0]["mode"], "live");
        assert_eq!(v["event_ts"], "2023-11-14T22:13:20.123Z");
        assert_eq!(v["decided_at"], "2023-11-14T22:13:20.456Z");
        assert_eq!(v["latency_us"], 12);
        assert_eq!(v["schema_version"], 1);
        assert_eq!(v["challenger"]["model_version"], "m2@abc");
        assert_eq!(v["flagged_by"], "model");
    }
}

impl From<crate::config::TimeoutAction> for Action {
    fn from(a: crate::config::TimeoutAction) -> Self {
        match a {
            crate::config::TimeoutAction::Allow => Action::Allow,
            crate::config::TimeoutAction::Review => Action::Review,
            crate::config::TimeoutAction::Block => Action::Block,
        }
    }
}
