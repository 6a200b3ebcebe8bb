//! The decision step with a champion and a challenger model.

use fraudstream::decision::{Decider, Subject};
use fraudstream::features::{load_feature_set, EngineLimits, EventView, FeatureEngine};
use fraudstream::model::ModelStore;
use fraudstream::rules::reload::{RuleStore, RulesSource};
use std::path::PathBuf;
use std::sync::Arc;

#[test]
fn a_challenger_is_scored_and_reported_but_never_acted_on() {
    let set = Arc::new(load_feature_set("model").unwrap());
    let shipped = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/handbook.json");
    let rules = Arc::new(RuleStore::load(RulesSource::Files(Vec::new()), set.clone()).unwrap());
    let with_challenger = Arc::new(
        ModelStore::load(Some(shipped.clone()), Some(shipped.clone()), set.clone()).unwrap(),
    );
    let alone = Arc::new(ModelStore::load(Some(shipped), None, set.clone()).unwrap());
    let subject = Subject {
        event_id: "e1",
        account_id: "a1",
        event_ts_ms: 1_533_000_000_000,
        strings: [
            Some("a1"),
            Some("a1"),
            Some("t1"),
            None,
            None,
            None,
            Some("EUR"),
            None,
            None,
        ],
    };
    let mut outputs = Vec::new();
    for store in [with_challenger, alone] {
        let mut d = Decider::new(rules.clone(), set.len(), None).with_models(store);
        // A 900.00 payment (above the handbook's 220 line), features from the engine.
        let mut engine = FeatureEngine::new(set.clone(), EngineLimits::default());
        let view = EventView {
            event_id: "e1",
            ts_ms: subject.event_ts_ms,
            amount: 900.0,
            account: "a1",
            card: "a1",
            terminal: "t1",
            device: None,
            ip: None,
            country: None,
        };
        engine.update(&view, d.features_mut());
        let mut out = Vec::new();
        let outcome = d.decide(&subject, 0, 1, &mut out);
        outputs.push((
            outcome,
            serde_json::from_slice::<serde_json::Value>(&out).unwrap(),
        ));
    }
    let (with, without) = (&outputs[0], &outputs[1]);
    assert_eq!(
        with.0.action, without.0.action,
        "the challenger never changes the action"
    );
    assert_eq!(with.0.score, without.0.score);
    let ch = &with.1["challenger"];
    assert!(
        ch["model_version"]
            .as_str()
            .unwrap()
            .starts_with("handbook@"),
        "{}",
        with.1
    );
    assert!(
        (ch["score"].as_f64().unwrap() - with.0.score).abs() < 1e-3,
        "same model, same score"
    );
    assert!(without.1.get("challenger").is_none());
    // Explanations are given for reviewed and blocked payments only.
    let explained = with.1["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["code"].as_str().unwrap().starts_with("model:"));
    assert_eq!(
        explained,
        with.0.action != fraudstream::decision::Action::Allow,
        "{}",
        with.1
    );
}

#[test]
fn a_running_decider_picks_up_reloaded_rules_and_models_at_its_next_event() {
    let set = Arc::new(load_feature_set("model").unwrap());
    let dir = tempfile::tempdir().unwrap();
    let rule = |threshold: u32| {
        format!(
            "rules:\n  - id: big\n    when: TX_AMOUNT > {threshold}\n    action: block\n    \
             reason: {{ code: big, text: Big payment }}\n"
        )
    };
    std::fs::write(dir.path().join("big.yaml"), rule(1000)).unwrap();
    let rules =
        Arc::new(RuleStore::load(RulesSource::Dir(dir.path().into()), set.clone()).unwrap());
    let shipped: fraudstream::model::ModelFile = serde_json::from_str(
        &std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/handbook.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let model_path = dir.path().join("model.json");
    shipped.first_trees(10).unwrap().save(&model_path).unwrap();
    let models = Arc::new(ModelStore::load(Some(model_path.clone()), None, set.clone()).unwrap());
    let mut d = Decider::new(rules.clone(), set.len(), None).with_models(models.clone());
    let subject = Subject {
        event_id: "e1",
        account_id: "a1",
        event_ts_ms: 1_533_000_000_000,
        strings: [None; 9],
    };
    let decide = |d: &mut Decider| {
        d.features_mut().fill(f64::NAN);
        d.features_mut()[0] = 500.0;
        let mut out = Vec::new();
        let outcome = d.decide(&subject, 0, 1, &mut out);
        let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
        (outcome.action, json)
    };
    let (action, before) = decide(&mut d);
    assert_ne!(action, fraudstream::decision::Action::Block, "{before}");

    std::fs::write(dir.path().join("big.yaml"), rule(100)).unwrap();
    rules.reload().unwrap();
    shipped.first_trees(20).unwrap().save(&model_path).unwrap();
    assert!(models.reload().iter().all(Result::is_ok));
    let (action, after) = decide(&mut d);
    assert_eq!(action, fraudstream::decision::Action::Block, "{after}");
    assert_ne!(before["rules_version"], after["rules_version"]);
    assert_ne!(before["model_version"], after["model_version"], "{after}");
}
