use super::*;

fn view<'a>(
    id: &'a str,
    ts_ms: i64,
    amount: f64,
    account: &'a str,
    terminal: &'a str,
) -> EventView<'a> {
    EventView {
        event_id: id,
        ts_ms,
        amount,
        account,
        card: account,
        terminal,
        device: None,
        ip: None,
        country: None,
    }
}

#[test]
fn shipped_sets_compile() {
    let d = load_feature_set("default").unwrap();
    assert!(d.len() >= 20, "default set has {} features", d.len());
    let h = load_feature_set("handbook").unwrap();
    assert_eq!(h.len(), 15);
    assert_eq!(h.entities.len(), 2);
    assert!(h.entities[1].needs_labels);
}

#[test]
fn errors_point_at_file_line_col() {
    let text = "name = \"x\"\n\n[[feature]]\nname = \"a\"\nentity = \"acount\"\naggregate = \"count\"\nwindow = \"1h\"\n";
    let e = FeatureSet::parse("f.toml", text).unwrap_err();
    assert_eq!((e.line, e.col), (5, 10), "{e}");
    assert!(
        e.to_string()
            .starts_with("f.toml:5:10: unknown entity 'acount'"),
        "{e}"
    );
    let e = FeatureSet::parse("f.toml", "name = \"x\"\nbogus = 1\n").unwrap_err();
    assert_eq!(e.line, 2, "{e}");
    let e = FeatureSet::parse(
        "f.toml",
        "name=\"x\"\n[[feature]]\nname=\"r\"\nratio=[\"a\",\"b\"]\n",
    )
    .unwrap_err();
    assert!(e.message.contains("not defined above"), "{e}");
    let e = FeatureSet::parse("f.toml", "name=\"x\"\n[[feature]]\nname=\"w\"\nentity=\"account\"\naggregate=\"count\"\nwindow=\"91d\"\n").unwrap_err();
    assert!(e.message.contains("at most 90d"), "{e}");
    let filter = |bounds: &str| {
        FeatureSet::parse(
            "f.toml",
            &format!("name=\"x\"\n[[feature]]\nname=\"w\"\nentity=\"account\"\naggregate=\"count\"\nwindow=\"1h\"\n{bounds}\n"),
        )
    };
    let e = filter("amount_min=10\namount_max=5").unwrap_err();
    assert_eq!((e.line, e.col), (8, 12), "{e}");
    assert!(e.message.contains("must be above amount_min 10"), "{e}");
    let e = filter("amount_max=inf").unwrap_err();
    assert!(e.message.contains("invalid amount_max inf"), "{e}");
    assert!(filter("amount_min=0.01\namount_max=5").is_ok());
}

#[test]
fn terminal_risk_uses_delayed_labels() {
    let set = Arc::new(load_feature_set("handbook").unwrap());
    let risk7 = set.index_of("TERMINAL_ID_RISK_7DAY_WINDOW").unwrap();
    let nb7 = set.index_of("TERMINAL_ID_NB_TX_7DAY_WINDOW").unwrap();
    let mut eng = FeatureEngine::new(set.clone(), EngineLimits::default());
    let mut out = vec![0.0; set.len()];
    let day = 86_400_000;
    eng.update(&view("a", 0, 10.0, "c1", "t1"), &mut out);
    eng.update(&view("b", 1000, 10.0, "c2", "t1"), &mut out);
    assert_eq!(eng.apply_label("a", true), LabelOutcome::Applied);
    assert_eq!(eng.apply_label("b", false), LabelOutcome::Applied);
    assert_eq!(eng.apply_label("zzz", true), LabelOutcome::Parked);
    // Six days later, the delayed window has not reached those events yet.
    eng.update(&view("c", 6 * day, 10.0, "c3", "t1"), &mut out);
    assert_eq!((out[nb7], out[risk7]), (0.0, 0.0));
    eng.update(&view("d", 7 * day + 1000, 10.0, "c3", "t1"), &mut out);
    assert_eq!((out[nb7], out[risk7]), (2.0, 0.5));
}

#[test]
fn missing_entities_give_nan_and_ratios_guard_zero() {
    let set = Arc::new(load_feature_set("default").unwrap());
    let mut eng = FeatureEngine::new(set.clone(), EngineLimits::default());
    let mut out = vec![0.0; set.len()];
    eng.update(&view("a", 1_000_000, 50.0, "acc", "t"), &mut out);
    assert!(out[set.index_of("device.tx_count_1h").unwrap()].is_nan());
    assert_eq!(out[set.index_of("account.first_seen").unwrap()], 1.0);
    assert!(out[set.index_of("account.secs_since_last").unwrap()].is_nan());
    assert_eq!(out[set.index_of("amount_to_account_avg_30d").unwrap()], 1.0);
    eng.update(&view("b", 1_060_000, 2.0, "acc", "t"), &mut out);
    assert_eq!(out[set.index_of("account.secs_since_last").unwrap()], 60.0);
    assert_eq!(
        out[set.index_of("account.small_tx_count_10m").unwrap()],
        1.0
    );
    assert_eq!(out[set.index_of("account.tx_count_10m").unwrap()], 2.0);
    assert_eq!(
        out[set.index_of("account_terminal.first_seen").unwrap()],
        0.0
    );
}

#[test]
fn label_join_is_bounded() {
    let mut j = LabelJoin::new(3, 1);
    for id in 1..=5u64 {
        j.remember(id, id as u32, [(id * 10, 0)].into_iter());
    }
    assert!(j.take(1).is_none());
    assert!(j.take(2).is_none());
    assert_eq!(j.take(5).map(|(ts, (k, _))| (ts, k[0])), Some((5, 50)));
    assert!(j.take(5).is_none());
    assert_eq!(j.len(), 3, "3 and 4 wait, 5 waits to leave after them");
    assert_eq!(j.take(3).map(|(ts, _)| ts), Some(3));
    assert_eq!(j.take(4).map(|(ts, _)| ts), Some(4));
    assert!(j.is_empty(), "taken events leave from the old end");
}

/// Labels taken in order keep the join as small as the events still waiting,
/// at any capacity; tickets of forgotten or taken events find nothing, and
/// stale positions never reach a newer event.
#[test]
fn label_join_holds_only_the_events_still_waiting() {
    for indexed in [true, false] {
        let mut j = LabelJoin::new(1_000, 1);
        if !indexed {
            j.ticket_only();
        }
        let mut tickets = std::collections::VecDeque::new();
        for id in 1..=10_000u64 {
            let t = j.remember(id, id as u32, [(id, 7)].into_iter()).unwrap();
            tickets.push_back((id, t));
            // Each label comes back 50 events later.
            if tickets.len() > 50 {
                let (id, t) = tickets.pop_front().unwrap();
                assert_eq!(j.peek_ticket(t).map(|(ts, _)| ts), Some(id as u32));
                assert!(j.take_ticket(t).is_some());
                assert!(j.take_ticket(t).is_none(), "a label is taken once");
                if indexed {
                    assert!(j.take(id).is_none());
                }
            }
            assert!(j.len() <= 51, "{} events held", j.len());
        }
        // Out of order: while the oldest wait, taken events stay held behind
        // them up to the capacity; then the oldest is forgotten.
        let (_, oldest) = tickets.pop_front().unwrap();
        let remember_and_take = |j: &mut LabelJoin, id: u64| {
            let t = j.remember(id, id as u32, [(id, 7)].into_iter()).unwrap();
            assert!(j.take_ticket(t).is_some());
        };
        for id in 20_000..20_950u64 {
            remember_and_take(&mut j, id);
        }
        assert_eq!(j.len(), 1_000);
        assert!(j.peek_ticket(oldest).is_some());
        remember_and_take(&mut j, 30_000);
        assert!(j.take_ticket(oldest).is_none(), "forgotten at capacity");
        let (id, next) = tickets.pop_front().unwrap();
        assert_eq!(j.take_ticket(next).map(|(ts, _)| ts), Some(id as u32));
        if indexed {
            assert!(j.take(id).is_none());
        }
    }
}

#[test]
fn a_label_that_arrives_before_its_event_is_applied_when_the_event_comes() {
    let set = Arc::new(load_feature_set("default").unwrap());
    let fc = set.index_of("terminal.fraud_count_7d").unwrap();
    let mut eng = FeatureEngine::new(set.clone(), EngineLimits::default());
    let mut out = vec![0.0; set.len()];
    assert_eq!(eng.apply_label("early", true), LabelOutcome::Parked);
    eng.update(&view("early", 1_000_000, 10.0, "c1", "t9"), &mut out);
    assert_eq!(
        out[fc], 0.0,
        "features are computed before the parked label applies"
    );
    eng.update(&view("next", 1_001_000, 10.0, "c2", "t9"), &mut out);
    assert_eq!(out[fc], 1.0);
}

#[test]
fn min_max_and_distinct_features() {
    let text = r#"
name = "t"
[[feature]]
name = "max_1h"
entity = "account"
aggregate = "max"
window = "1h"
[[feature]]
name = "min_1h"
entity = "account"
aggregate = "min"
window = "1h"
[[feature]]
name = "terminals_1h"
entity = "account"
aggregate = "distinct"
of = "terminal"
window = "1h"
"#;
    let set = Arc::new(FeatureSet::parse("t.toml", text).unwrap());
    let mut eng = FeatureEngine::new(set.clone(), EngineLimits::default());
    let mut out = vec![0.0; set.len()];
    eng.update(&view("a", 0, 30.0, "c", "t1"), &mut out);
    eng.update(&view("b", 60_000, 10.0, "c", "t2"), &mut out);
    eng.update(&view("c", 120_000, 20.0, "c", "t1"), &mut out);
    assert_eq!(out, [30.0, 10.0, 2.0]);
    // 30.0 and 10.0 leave the hour.
    eng.update(&view("d", 3_660_000 + 1000, 15.0, "c", "t3"), &mut out);
    assert_eq!(out, [20.0, 15.0, 2.0]);
    let e = FeatureSet::parse(
        "t.toml",
        "name='x'\n[[feature]]\nname='d'\nentity='account'\naggregate='distinct'\nwindow='1h'\n",
    )
    .unwrap_err();
    assert!(e.message.contains("needs 'of'"), "{e}");
}

/// An event processed by the account-side engine, then by the terminal-side one
/// (the repartitioned path), gets exactly the features one engine gives it.
#[test]
fn account_then_terminal_scope_equals_one_engine() {
    for name in ["default", "handbook", "model"] {
        let set = Arc::new(load_feature_set(name).unwrap());
        let limits = EngineLimits::default();
        let mut whole = FeatureEngine::new(set.clone(), limits);
        let mut by_account = FeatureEngine::scoped(set.clone(), limits, Scope::ByAccount);
        let mut by_terminal = FeatureEngine::scoped(set.clone(), limits, Scope::ByTerminal);
        let (mut expected, mut split) = (vec![0.0; set.len()], vec![0.0; set.len()]);
        let mut rng = 7u64;
        let mut next = move |n: u64| {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (rng >> 33) % n
        };
        let ids: Vec<String> = (0..3000).map(|i| format!("e{i}")).collect();
        let accounts: Vec<String> = (0..40).map(|i| format!("c{i}")).collect();
        let terminals: Vec<String> = (0..15).map(|i| format!("t{i}")).collect();
        for (i, id) in ids.iter().enumerate() {
            let ts = i as i64 * 600_000 + next(60_000) as i64;
            let ev = view(
                id,
                ts,
                1.0 + next(20_000) as f64 / 100.0,
                &accounts[next(40) as usize],
                &terminals[next(15) as usize],
            );
            whole.update(&ev, &mut expected);
            split.fill(-1.0);
            by_account.update(&ev, &mut split);
            by_terminal.update(&ev, &mut split);
            for (f, (a, b)) in expected.iter().zip(&split).enumerate() {
                assert!(
                    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
                    "{name}: event {i} feature {}: {a} vs {b}",
                    set.names[f]
                );
            }
            if i >= 50 && next(3) == 0 {
                let labelled = &ids[i - 50];
                let fraud = next(4) == 0;
                whole.apply_label(labelled, fraud);
                by_account.apply_label(labelled, fraud);
                by_terminal.apply_label(labelled, fraud);
            }
        }
    }
}

#[test]
fn labels_by_ticket_equal_labels_by_id() {
    let set = Arc::new(load_feature_set("model").unwrap());
    let mut by_id = FeatureEngine::new(set.clone(), EngineLimits::default());
    let mut by_ticket = FeatureEngine::new(set.clone(), EngineLimits::default()).labels_by_ticket();
    let (mut a, mut b) = (vec![0.0; set.len()], vec![0.0; set.len()]);
    let mut pending = std::collections::VecDeque::new();
    let mut x = 7u64;
    for i in 0..20_000u64 {
        x = crate::state::mix64(x);
        let (ts, account, terminal) = (
            i as i64 * 600_000,
            format!("c{}", x % 50),
            format!("t{}", (x >> 8) % 20),
        );
        let (id, amount, fraud) = (format!("e{i}"), (x % 500) as f64, x.is_multiple_of(7));
        let ev = view(&id, ts, amount, &account, &terminal);
        by_id.update(&ev, &mut a);
        let ticket = by_ticket.update(&ev, &mut b).expect("the set reads labels");
        assert_eq!(
            a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            b.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            "event {i}"
        );
        pending.push_back((ts + 86_400_000, id, ticket, fraud));
        while pending.front().is_some_and(|p| p.0 <= ts) {
            let (_, id, ticket, fraud) = pending.pop_front().unwrap();
            let outcome = by_id.apply_label(&id, fraud);
            assert_eq!(by_ticket.apply_label_ticket(ticket, fraud), outcome);
            assert_eq!(
                by_ticket.apply_label_ticket(ticket, fraud),
                LabelOutcome::Unknown,
                "a ticket is used once"
            );
        }
    }
    let fc = set
        .index_of("TERMINAL_ID_FRAUD_COUNT_30DAY_DELAY7")
        .unwrap();
    assert!(b[fc] > 0.0, "labels reached the windows: {}", b[fc]);
}
