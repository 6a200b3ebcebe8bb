//! The decision step with a champion and a challenger model.

use fraudstream::decision::Decider;
use fraudstream::features::{load_feature_set, EngineLimits, EventView, FeatureEngine};
use fraudstream::model::ModelStore;
use fraudstream::rules::reload::{RuleStore, RulesSource};
use fraudstream::source::handbook::TxRow;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::path::PathBuf;
use std::sync::Arc;

#[test]
fn a_challenger_is_scored_and_reported_but_never_acted_on() {
    let set = Arc::new(load_feature_set("default").unwrap());
    let shipped = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/handbook.json");
    let rules = Arc::new(RuleStore::load(RulesSource::Files(Vec::new()), set.clone()).unwrap());
    let with_challenger = Arc::new(
        ModelStore::load(Some(shipped.clone()), Some(shipped.clone()), set.clone()).unwrap(),
    );
    let alone = Arc::new(ModelStore::load(Some(shipped), None, set.clone()).unwrap());
    let row = TxRow::new("e1", 1_533_000_000_000, "a1", "t1", 900.0, false);
    let subject = EventView::of_row(&row);
    let mut outputs = Vec::new();
    for store in [with_challenger, alone] {
        let mut d = Decider::new(rules.clone(), set.len(), None).with_models(store);
        // A 900.00 payment (above the handbook's 220 line), features from the engine.
        let mut engine = FeatureEngine::new(set.clone(), EngineLimits::default());
        let view = EventView {
            event_id: "e1",
            ts_ms: subject.ts_ms,
            amount: 900.0,
            account: "a1",
            card: "a1",
            terminal: "t1",
            ..EventView::default()
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
    let set = Arc::new(load_feature_set("default").unwrap());
    let dir = tempfile::tempdir().unwrap();
    let rule = |threshold: u32| {
        format!(
            "rules:\n  - id: big\n    when: amount > {threshold}\n    action: block\n    \
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
    let subject = EventView {
        event_id: "e1",
        account: "a1",
        ts_ms: 1_533_000_000_000,
        original_amount: 500.0,
        ..EventView::default()
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

/// Scores taken for a block of rows decide each row as scoring it alone does,
/// champion and challenger; after a model reload the decider scores afresh
/// rather than use the old model's block scores.
#[test]
fn block_scores_decide_like_row_scores_until_the_models_change() {
    let set = Arc::new(load_feature_set("default").unwrap());
    let dir = tempfile::tempdir().unwrap();
    let shipped: fraudstream::model::ModelFile = serde_json::from_str(
        &std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/handbook.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let (champion, challenger) = (dir.path().join("a.json"), dir.path().join("b.json"));
    shipped.first_trees(60).unwrap().save(&champion).unwrap();
    shipped.clone().save(&challenger).unwrap();
    // Big payments are blocked, so that some decisions carry the model's explanation.
    let big = "rules:\n  - id: big\n    when: amount > 900\n    action: block\n    \
               reason: { code: big, text: Big payment }\n";
    let rules = Arc::new(
        RuleStore::load(
            RulesSource::Files(vec![("rules/big.yaml".into(), big.into())]),
            set.clone(),
        )
        .unwrap(),
    );
    let models =
        Arc::new(ModelStore::load(Some(champion.clone()), Some(challenger), set.clone()).unwrap());
    let mut blocked = Decider::new(rules.clone(), set.len(), None).with_models(models.clone());
    let mut alone = Decider::new(rules, set.len(), None).with_models(models.clone());
    // Feature vectors all over the place, some values missing.
    let (rows, width) = (300, set.len());
    let mut rng = SmallRng::seed_from_u64(7);
    let features: Vec<f64> = (0..rows * width)
        .map(|_| match rng.gen_range(0..10) {
            0 => f64::NAN,
            k => f64::from(rng.gen_range(0..100_000)) / 10f64.powi(k % 4),
        })
        .collect();
    let subject = EventView {
        event_id: "e",
        account: "a",
        ts_ms: 1_533_000_000_000,
        original_amount: 500.0,
        ..EventView::default()
    };
    let decide_all = |blocked: &mut Decider, alone: &mut Decider| {
        let (mut actions, mut scores) = (std::collections::BTreeSet::new(), Vec::new());
        for (k, f) in features.chunks_exact(width).enumerate() {
            blocked.features_mut().copy_from_slice(f);
            alone.features_mut().copy_from_slice(f);
            let (got, want) = (
                blocked.assess_scored(k, &subject, true),
                alone.assess(&subject, true),
            );
            assert_eq!(got.score.to_bits(), want.score.to_bits(), "row {k}");
            assert_eq!(
                (got.action, got.model),
                (want.action, want.model),
                "row {k}"
            );
            let (mut a, mut b) = (Vec::new(), Vec::new());
            blocked.decide(&subject, 0, 1, &mut a);
            alone.decide(&subject, 0, 1, &mut b);
            assert_eq!(a, b, "row {k}: decisions, challenger score included");
            actions.insert(format!("{:?}", got.action));
            if let fraudstream::decision::ModelInput::Score(s) = got.model {
                scores.push(s.to_bits());
            }
        }
        scores.sort_unstable();
        scores.dedup();
        (actions, scores.len())
    };
    blocked.score_block(&features, rows);
    let (actions, scores) = decide_all(&mut blocked, &mut alone);
    assert!(
        actions.len() > 1 && scores > 100,
        "{actions:?}, {scores} distinct model scores"
    );

    // The block's scores are the old champion's; a reload must not use them.
    blocked.score_block(&features, rows);
    shipped.first_trees(5).unwrap().save(&champion).unwrap();
    assert!(models.reload().iter().all(Result::is_ok));
    decide_all(&mut blocked, &mut alone);
}

/// Rules compare `amount` in the base currency and see the amount as sent as
/// `original_amount`, with its `currency`: 6000 JPY is about 34 EUR.
#[test]
fn rules_see_the_base_amount_and_the_original_amount_and_currency() {
    use fraudstream::source::currency::RateTable;
    use fraudstream::source::event::{parse_event_with, Limits};
    use iso_currency::Currency;
    let set = Arc::new(load_feature_set("default").unwrap());
    let rules = "rules:\n\
      - { id: big_base, when: amount > 5000, action: review, reason: { code: a, text: a } }\n\
      - { id: big_as_sent, when: original_amount > 5000 and currency == 'JPY', action: review, reason: { code: b, text: b } }\n";
    let files = vec![("rules/r.yaml".to_string(), rules.to_string())];
    let store = Arc::new(RuleStore::load(RulesSource::Files(files), set.clone()).unwrap());
    let rates = RateTable::parse(
        "fx.toml",
        "base = \"EUR\"\nas_of = \"2026-10-30\"\n[rates]\nJPY = 175.68\n",
        Currency::EUR,
    )
    .unwrap();
    let fired = |currency: &str| {
        let json = format!(
            r#"{{"event_id":"e","ts":1700000000000,"account_id":"a","terminal_id":"t","amount":6000,"currency":"{currency}"}}"#
        );
        let ev = parse_event_with(
            json.as_bytes(),
            &Limits::default(),
            &rates,
            1_700_000_000_000,
        )
        .unwrap();
        let mut engine = FeatureEngine::new(set.clone(), EngineLimits::default());
        let mut d = Decider::new(store.clone(), set.len(), None);
        engine.update(&EventView::of(&ev), d.features_mut());
        d.assess(&EventView::of(&ev), false);
        let ruleset = store.current();
        let ids: Vec<String> = d
            .hits()
            .live
            .iter()
            .map(|&i| ruleset.rules[i as usize].id.to_string())
            .collect();
        (ev.amount.0, ids)
    };
    assert_eq!(fired("jpy"), (34.15, vec!["big_as_sent".to_string()]));
    assert_eq!(fired("EUR"), (6000.0, vec!["big_base".to_string()]));
}
