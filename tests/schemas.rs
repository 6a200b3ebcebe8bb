//! The shipped JSON Schemas agree with what the code accepts and emits.

use fraudstream::source::event::{parse_event_at, Limits};

fn schema(name: &str) -> serde_json::Value {
    let path = format!("{}/config/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn event_schema_lists_exactly_the_fields_the_parser_knows() {
    let s = schema("payment-event.schema.json");
    let mut props: Vec<&str> = s["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    props.sort();
    assert_eq!(
        props,
        [
            "account_id",
            "amount",
            "card_id",
            "channel",
            "country",
            "currency",
            "device_id",
            "event_id",
            "ip",
            "mcc",
            "terminal_id",
            "ts"
        ]
    );
    let required: Vec<&str> = s["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    // An event with only the required fields parses; dropping any one fails.
    let now = 1_700_000_000_000;
    let full = serde_json::json!({"event_id":"e","ts":now,"account_id":"a","terminal_id":"t","amount":1.5,"currency":"EUR"});
    assert!(parse_event_at(full.to_string().as_bytes(), &Limits::default(), now).is_ok());
    for r in &required {
        let mut v = full.clone();
        v.as_object_mut().unwrap().remove(*r);
        assert!(
            parse_event_at(v.to_string().as_bytes(), &Limits::default(), now).is_err(),
            "{r} is required"
        );
    }
    assert_eq!(required.len(), full.as_object().unwrap().len());
}

#[test]
fn decision_schema_requires_exactly_what_decisions_carry() {
    use fraudstream::decision::{Action, Decision};
    let s = schema("decision.schema.json");
    let d = Decision {
        event_id: "e",
        account_id: "a",
        action: Action::Block,
        score: 0.9,
        reasons: &Vec::new(),
        rules_version: "r",
        model_version: "m",
        challenger: None,
        flagged_by: None,
        event_ts_ms: 0,
        decided_at_ms: 0,
        latency_us: 3,
    };
    let mut out = Vec::new();
    d.encode(&mut out);
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    let mut required: Vec<&str> = s["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    keys.sort();
    required.sort();
    assert_eq!(keys, required);
}

#[test]
fn rule_schema_names_exactly_the_fields_rule_files_accept() {
    let s = schema("rules.schema.json");
    let mut props: Vec<&str> = s["$defs"]["rule"]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    props.sort();
    assert_eq!(
        props,
        [
            "action",
            "description",
            "id",
            "mode",
            "owner",
            "priority",
            "reason",
            "score",
            "tests",
            "when"
        ]
    );
    // And a rule with a field outside the schema is rejected by the loader.
    let set = fraudstream::features::load_feature_set("default").unwrap();
    let bad = "rules:\n  - id: a\n    when: amount > 1\n    action: review\n    reason: { code: a, text: t }\n    severity: 3\n";
    let err = fraudstream::rules::Ruleset::from_files(&[("rules/a.yaml", bad)], &set).unwrap_err();
    assert!(
        err.to_string().contains("unknown field 'severity'"),
        "{err}"
    );
}
