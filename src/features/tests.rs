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
        ..EventView::default()
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

/// The join keeps each event's latest label (so a correction finds it), up to
/// its capacity; a label for an event it forgot is told from one for an event
/// not seen yet, for as many events again.
#[test]
fn label_join_keeps_labels_for_corrections_within_its_bounds() {
    let mut j = LabelJoin::new(3, 1);
    for id in 1..=5u64 {
        j.remember(id, id as u32, [(id * 10, 0)].into_iter());
    }
    assert_eq!(j.relabel(1, true), Relabel::Forgotten);
    assert_eq!(j.relabel(9, true), Relabel::NotSeen);
    let found = |r: Relabel| match r {
        Relabel::Found(ts, (keys, _), before) => (ts, keys[0], before),
        other => panic!("{other:?}"),
    };
    assert_eq!(found(j.relabel(5, false)), (5, 50, None));
    assert_eq!(
        found(j.relabel(5, true)),
        (5, 50, Some(false)),
        "a chargeback"
    );
    assert_eq!(found(j.relabel(5, true)), (5, 50, Some(true)));
    assert_eq!(j.len(), 3, "labelled events stay");
    // Forgotten ids are kept for `capacity` more forgotten events, then dropped.
    for id in 6..=8u64 {
        j.remember(id, id as u32, [(id * 10, 0)].into_iter());
    }
    assert_eq!(j.relabel(5, false), Relabel::Forgotten);
    assert_eq!(j.relabel(2, false), Relabel::NotSeen, "forgotten long ago");
    assert!(j.memory_bytes() < 4096);
}

/// Labels fed by ticket (a replay) in order keep the join as small as the
/// events still waiting, at any capacity; tickets of forgotten or labelled
/// events find nothing, and stale positions never reach a newer event.
#[test]
fn a_ticket_join_holds_only_the_events_still_waiting() {
    let mut j = LabelJoin::new(1_000, 1);
    j.ticket_only();
    let mut tickets = std::collections::VecDeque::new();
    for id in 1..=10_000u64 {
        let t = j.remember(id, id as u32, [(id, 7)].into_iter()).unwrap();
        tickets.push_back((id, t));
        // Each label comes back 50 events later.
        if tickets.len() > 50 {
            let (id, t) = tickets.pop_front().unwrap();
            assert_eq!(j.peek_ticket(t).map(|(ts, _)| ts), Some(id as u32));
            assert!(j.take_ticket(t, true).is_some());
            assert!(j.take_ticket(t, true).is_none(), "a label is taken once");
        }
        assert!(j.len() <= 51, "{} events held", j.len());
    }
    // Out of order: while the oldest wait, labelled events stay held behind
    // them up to the capacity; then the oldest is forgotten.
    let (_, oldest) = tickets.pop_front().unwrap();
    let remember_and_take = |j: &mut LabelJoin, id: u64| {
        let t = j.remember(id, id as u32, [(id, 7)].into_iter()).unwrap();
        assert!(j.take_ticket(t, false).is_some());
    };
    for id in 20_000..20_950u64 {
        remember_and_take(&mut j, id);
    }
    assert_eq!(j.len(), 1_000);
    assert!(j.peek_ticket(oldest).is_some());
    remember_and_take(&mut j, 30_000);
    assert!(
        j.take_ticket(oldest, false).is_none(),
        "forgotten at capacity"
    );
    let (id, next) = tickets.pop_front().unwrap();
    assert_eq!(
        j.take_ticket(next, false).map(|(ts, _)| ts),
        Some(id as u32)
    );
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

/// A chargeback turns a provisional `legit` into `fraud`, a lost dispute turns
/// it back: every label aggregate of every window that holds the payment
/// follows (amount filters and delayed windows included); a repeat changes
/// nothing; each is counted by its outcome.
#[test]
fn labels_are_corrected_in_every_window_that_counted_them() {
    let text = r#"
name = "labels"
[[feature]]
name = "fraud"
entity = "terminal"
aggregate = "fraud_count"
window = "1h"
[[feature]]
name = "labelled"
entity = "terminal"
aggregate = "labelled_count"
window = "1h"
[[feature]]
name = "rate"
entity = "terminal"
aggregate = "fraud_rate"
window = "1h"
[[feature]]
name = "share"
entity = "terminal"
aggregate = "fraud_share"
window = "1h"
[[feature]]
name = "small_fraud"
entity = "terminal"
aggregate = "fraud_count"
window = "1h"
amount_max = 20
[[feature]]
name = "big_fraud"
entity = "terminal"
aggregate = "fraud_count"
window = "1h"
amount_min = 20
[[feature]]
name = "delayed_fraud"
entity = "terminal"
aggregate = "fraud_count"
window = "1h"
delay = "10m"
[[feature]]
name = "account_fraud"
entity = "account"
aggregate = "fraud_count"
window = "1h"
"#;
    let set = Arc::new(FeatureSet::parse("l.toml", text).unwrap());
    let mut eng = FeatureEngine::new(set.clone(), EngineLimits::default());
    let mut out = vec![0.0; set.len()];
    let t0 = 1_700_000_000_000;
    eng.update(&view("p1", t0, 10.0, "c1", "T"), &mut out);
    eng.update(&view("p2", t0 + 1000, 50.0, "c2", "T"), &mut out);
    let mut next = 1;
    // Labels `id`, checks the outcome, and returns the features of a next payment.
    let mut label = |eng: &mut FeatureEngine, id: &str, fraud: bool, want: LabelOutcome| {
        assert_eq!(eng.apply_label(id, fraud), want, "{id} {fraud}");
        next += 1;
        let id = format!("q{next}");
        eng.update(
            &view(&id, t0 + 700_000 + next * 1000, 30.0, "c1", "T"),
            &mut out,
        );
        out.clone()
    };
    use LabelOutcome::*;
    let f = label(&mut eng, "p1", false, Applied);
    assert_eq!(f, [0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
    let f = label(&mut eng, "p1", true, Corrected);
    assert_eq!(f, [1.0, 1.0, 1.0, 0.25, 1.0, 0.0, 1.0, 1.0]);
    let f = label(&mut eng, "p1", true, Repeated);
    assert_eq!(f, [1.0, 1.0, 1.0, 0.2, 1.0, 0.0, 1.0, 1.0]);
    let f = label(&mut eng, "p2", true, Applied);
    assert_eq!(f, [2.0, 2.0, 1.0, 2.0 / 6.0, 1.0, 1.0, 2.0, 1.0]);
    let f = label(&mut eng, "p1", false, Corrected);
    assert_eq!(f, [1.0, 2.0, 0.5, 1.0 / 7.0, 0.0, 1.0, 1.0, 0.0]);
    // Labels before their payment: the latest one applies when it comes.
    assert_eq!(eng.apply_label("p9", false), Parked);
    assert_eq!(eng.apply_label("p9", true), Parked);
    eng.update(
        &view("p9", t0 + 706_500, 10.0, "c3", "T"),
        &mut vec![0.0; 8],
    );
    let f = label(&mut eng, "p9", true, Repeated);
    assert_eq!(f[0], 2.0);
}

/// A label for a payment whose state is gone, or that the join forgot, is
/// counted `unknown`, not parked as if its payment had not come yet.
#[test]
fn labels_for_payments_no_longer_held_are_unknown() {
    let set = Arc::new(load_feature_set("default").unwrap());
    let limits = EngineLimits {
        max_pending_labels: 10,
        ..EngineLimits::default()
    };
    let mut eng = FeatureEngine::new(set.clone(), limits);
    let mut out = vec![0.0; set.len()];
    let t0 = 1_700_000_000_000;
    eng.update(&view("old", t0, 10.0, "c1", "T"), &mut out);
    assert_eq!(eng.apply_label("old", false), LabelOutcome::Applied);
    // 40 days later the terminal's windows no longer hold it.
    eng.update(
        &view("new", t0 + 40 * 86_400_000, 10.0, "c1", "T"),
        &mut out,
    );
    assert_eq!(eng.apply_label("old", true), LabelOutcome::Unknown);
    for i in 0..10 {
        let id = format!("x{i}");
        eng.update(
            &view(&id, t0 + 40 * 86_400_000 + i, 10.0, "c2", "T"),
            &mut out,
        );
    }
    assert_eq!(
        eng.apply_label("new", true),
        LabelOutcome::Unknown,
        "forgotten"
    );
    assert_eq!(eng.apply_label("never", true), LabelOutcome::Parked);
}

/// A set whose features read labels on each of `kinds`, one feature per kind.
fn labelled_set(kinds: &[&str]) -> String {
    let mut text = String::from("name = \"labelled\"\n");
    for k in kinds {
        text.push_str(&format!(
            "\n[[feature]]\nname = \"{k}.frauds\"\nentity = \"{k}\"\naggregate = \"fraud_count\"\nwindow = \"30d\"\n"
        ));
    }
    text
}

#[test]
fn more_labelled_entity_kinds_than_supported_is_an_error_not_a_panic() {
    let kinds = [
        "account", "card", "terminal", "device", "ip", "country", "mcc",
    ];
    let five = FeatureSet::parse("l.toml", &labelled_set(&kinds[..5])).unwrap();
    for scope in [Scope::All, Scope::ByAccount, Scope::ByTerminal] {
        FeatureEngine::scoped(Arc::new(five.clone()), EngineLimits::default(), scope);
    }
    for n in 6..=kinds.len() {
        let e = FeatureSet::parse("l.toml", &labelled_set(&kinds[..n])).unwrap_err();
        // The sixth feature's `aggregate` value, on line 2 + 6 * 5 + 4.
        assert_eq!((e.file.as_str(), e.line, e.col), ("l.toml", 36, 13), "{e}");
        assert!(
            e.message
                .starts_with("at most 5 entity kinds can read labels")
                && e.message.contains(
                    "'country' would be one more than account, card, terminal, device, ip"
                ),
            "{e}"
        );
    }
    // Reading labels again on a kind that already does is no new kind.
    let mut text = labelled_set(&kinds[..5]);
    text.push_str("\n[[feature]]\nname = \"x\"\nentity = \"account\"\naggregate = \"fraud_rate\"\nwindow = \"7d\"\n");
    FeatureSet::parse("l.toml", &text).unwrap();
}

#[test]
fn bad_feature_sets_are_errors_that_say_where_and_what_was_expected() {
    let entity = |rest: &str| {
        format!("name = \"x\"\n[[feature]]\nname = \"f\"\nentity = \"account\"\n{rest}\n")
    };
    let cases = [
        // A unit that is not one byte long once split a character in two.
        (
            entity("aggregate = \"count\"\nwindow = \"1é\""),
            (6, 10),
            "invalid window '1é'",
        ),
        (
            entity("aggregate = \"count\"\nwindow = \"é\""),
            (6, 10),
            "invalid window 'é'",
        ),
        (
            entity("aggregate = \"first_seen\"\nwindow = \"2ü\""),
            (6, 10),
            "invalid window '2ü'",
        ),
        (
            entity("aggregate = \"count\"\nwindow = \"1h\"\ndelay = \"1日\""),
            (7, 9),
            "invalid delay '1日'",
        ),
        (
            entity("aggregate = \"sum\"\nwindow = \"1h\"\namount_min = nan"),
            (7, 14),
            "invalid amount_min NaN",
        ),
        (
            entity("aggregate = \"sum\"\nwindow = \"1h\"\namount_max = nan"),
            (7, 14),
            "invalid amount_max NaN",
        ),
        (
            entity("aggregate = \"sum\"\nwindow = \"1h\"\namount_min = 10.0\namount_max = 1.0"),
            (8, 14),
            "amount_max 1 must be above amount_min 10",
        ),
        (
            entity("aggregate = \"count\"\nwindow = \"4294967295d\""),
            (6, 10),
            "at most 90d",
        ),
        (
            entity("aggregate = \"count\""),
            (5, 13),
            "aggregate 'count' needs a 'window'",
        ),
        (
            "name = \"x\"\n[[feature]]\nname = \"é\"\nentity = \"é+ü\"\n".into(),
            (4, 10),
            "unknown entity 'é+ü'",
        ),
        (
            "name = \"é\"\nwindow = \"ü\"\n".into(),
            (2, 1),
            "unknown field `window`",
        ),
    ];
    for (text, (line, col), expected) in cases {
        let e = FeatureSet::parse("x.toml", &text).unwrap_err();
        assert_eq!(
            (e.file.as_str(), e.line, e.col),
            ("x.toml", line, col),
            "{e}\n{text}"
        );
        assert!(e.message.contains(expected), "{e}\n{text}");
    }
}

#[test]
fn a_set_of_more_features_than_supported_is_an_error() {
    let mut text = String::from("name = \"big\"\n");
    for i in 0..=spec::MAX_FEATURES {
        text.push_str(&format!(
            "[[feature]]\nname = \"f{i}\"\nevent = \"amount\"\n"
        ));
    }
    let e = FeatureSet::parse("big.toml", &text).unwrap_err();
    assert_eq!(e.line, 2 + 3 * spec::MAX_FEATURES, "{e}");
    assert!(e.message.contains("at most 4096 features"), "{e}");
}

#[test]
fn durations_parse_every_unit_and_refuse_the_rest() {
    for (text, secs) in [
        ("30s", 30),
        ("10m", 600),
        ("1h", 3600),
        ("7d", 604_800),
        ("0s", 0),
    ] {
        assert_eq!(spec::parse_duration_s(text), Some(secs), "{text}");
    }
    for text in [
        "", "s", "1", "1x", "1é", "é", "-1s", "1.5h", "49711d", " 1s", "1ss",
    ] {
        assert_eq!(spec::parse_duration_s(text), None, "{text}");
    }
}

#[test]
fn line_col_counts_characters_and_never_splits_one() {
    let text = "é = 1\nab€cd\n";
    assert_eq!(spec::line_col(text, 0), (1, 1));
    assert_eq!(spec::line_col(text, 2), (1, 2), "after é (2 bytes)");
    assert_eq!(spec::line_col(text, 9), (2, 3), "at €");
    assert_eq!(spec::line_col(text, 10), (2, 3), "inside €");
    assert_eq!(spec::line_col(text, 12), (2, 4), "after € (3 bytes)");
    assert_eq!(spec::line_col(text, 1000), (3, 1));
}

/// Standard deviation, z-score and hour gap on a worked example: a card pays
/// 10, 20 and 30 at 10:00, 11:00 and 12:00, then 100 at 22:00.
#[test]
fn amount_and_hour_profiles_compare_a_payment_with_the_cards_others() {
    let text = r#"
name = "profiles"
[[feature]]
name = "std"
entity = "card"
aggregate = "std"
window = "30d"
[[feature]]
name = "z"
entity = "card"
aggregate = "zscore"
window = "30d"
[[feature]]
name = "gap"
entity = "card"
aggregate = "hour_gap"
window = "30d"
"#;
    let set = Arc::new(FeatureSet::parse("p.toml", text).unwrap());
    assert_eq!(set.entities[0].windows.len(), 3, "amount, squares, hours");
    let mut eng = FeatureEngine::new(set.clone(), EngineLimits::default());
    let mut out = vec![0.0; set.len()];
    let ten = 1_704_103_200_000; // 2024-01-01 10:00 UTC
    let hour = 3_600_000;
    let mut at = |id, t, amount| {
        eng.update(&view(id, t, amount, "c1", "t1"), &mut out);
        out.clone()
    };
    let first = at("a", ten, 10.0);
    assert_eq!(first[0], 0.0);
    assert!(first[1].is_nan() && first[2].is_nan(), "{first:?}");
    let second = at("b", ten + hour, 20.0);
    assert_eq!(second[0], 5.0);
    assert!(second[1].is_nan(), "one other payment has no spread");
    assert!((second[2] - 1.0).abs() < 1e-3, "{second:?}");
    at("c", ten + 2 * hour, 30.0);
    let last = at("d", ten + 12 * hour, 100.0);
    // All four: mean 40, variance (900 + 400 + 100 + 3600) / 4.
    assert!((last[0] - 1250f64.sqrt()).abs() < 1e-9, "{last:?}");
    // The other three: mean 20, standard deviation sqrt(200 / 3).
    assert!(
        (last[1] - 80.0 / (200.0f64 / 3.0).sqrt()).abs() < 1e-9,
        "{last:?}"
    );
    // Their usual hour is 11:00; 22:00 is 11 hours from it.
    assert!((last[2] - 11.0).abs() < 1e-3, "{last:?}");
}

/// Profiles take no delay and no amount filter: the payment itself must be in
/// the window, to be taken back out.
#[test]
fn profiles_refuse_delays_and_filters() {
    for extra in ["delay = \"1d\"", "amount_max = 5"] {
        let text = format!(
            "name=\"x\"\n[[feature]]\nname=\"z\"\nentity=\"card\"\naggregate=\"zscore\"\nwindow=\"30d\"\n{extra}\n"
        );
        let e = FeatureSet::parse("f.toml", &text).unwrap_err();
        assert_eq!((e.line, e.col), (5, 11), "{e}");
        assert!(e.message.contains("no delay or amount filter"), "{e}");
    }
}

/// `mcc` and `channel` key entities like the other fields; an event without
/// them has those features missing, never 0 or "first seen".
#[test]
fn mcc_and_channel_features_and_a_missing_field_stays_missing() {
    let text = "name = \"x\"\n\
        [[feature]]\nname = \"novel_mcc\"\nentity = \"card+mcc\"\naggregate = \"first_seen\"\n\
        [[feature]]\nname = \"novel_channel\"\nentity = \"card+channel\"\naggregate = \"first_seen\"\n\
        [[feature]]\nname = \"mccs\"\nentity = \"card\"\naggregate = \"distinct\"\nof = \"mcc\"\nwindow = \"1d\"\n\
        [[feature]]\nname = \"at_mcc\"\nentity = \"mcc\"\naggregate = \"count\"\nwindow = \"1h\"\n";
    let set = Arc::new(FeatureSet::parse("x.toml", text).unwrap());
    let mut eng = FeatureEngine::new(set.clone(), EngineLimits::default());
    let mut out = vec![0.0; set.len()];
    let pay = |id, s: i64, mcc, channel| EventView {
        mcc,
        channel,
        ..view(id, s * 1000, 10.0, "c1", "t1")
    };
    let mut step = |ev: EventView<'_>| {
        eng.update(&ev, &mut out);
        out.clone()
    };
    assert_eq!(
        step(pay("a", 0, Some("5411"), Some("pos"))),
        [1.0, 1.0, 1.0, 1.0]
    );
    assert_eq!(
        step(pay("b", 10, Some("5411"), Some("ecom"))),
        [0.0, 1.0, 1.0, 2.0]
    );
    assert_eq!(
        step(pay("c", 20, Some("742"), Some("ecom"))),
        [1.0, 0.0, 2.0, 1.0]
    );
    // Without mcc and channel: the pairs and the mcc are missing; the card's
    // distinct count still holds the two codes it has seen.
    let none = step(pay("d", 30, None, None));
    assert!(
        none[0].is_nan() && none[1].is_nan() && none[3].is_nan(),
        "{none:?}"
    );
    assert_eq!(none[2], 2.0);
}

/// `label_blind` names exactly the label features that stay 0 when every
/// label comes a fixed delay after its payment: one card and one terminal pay
/// every hour for 40 days, every payment fraud, each labelled 7 days later.
#[test]
fn label_blind_features_are_those_that_never_see_a_label() {
    let set = Arc::new(load_feature_set("default").unwrap());
    let (hour, delay) = (3_600_000i64, 7 * 86_400_000i64);
    let blind = set.label_blind((delay / 1000) as u32);
    assert_eq!(
        blind,
        [
            "terminal.fraud_rate_7d",
            "terminal.fraud_count_7d",
            "terminal.fraud_share_7d"
        ]
    );
    assert!(set.label_blind(0).is_empty());
    let mut eng = FeatureEngine::new(set.clone(), EngineLimits::default());
    let mut out = vec![0.0; set.len()];
    let mut moved = vec![false; set.len()];
    let ids: Vec<String> = (0..40 * 24).map(|i| format!("e{i}")).collect();
    let mut labelled = 0;
    for (i, id) in ids.iter().enumerate() {
        let ts = i as i64 * hour;
        while labelled < i && labelled as i64 * hour + delay <= ts {
            eng.apply_label(&ids[labelled], true);
            labelled += 1;
        }
        eng.update(&view(id, ts, 10.0, "c1", "t1"), &mut out);
        for (m, v) in moved.iter_mut().zip(&out) {
            *m |= *v != 0.0 && !v.is_nan();
        }
    }
    // These events carry no device or IP, so those entities' features stay missing.
    let carried = |n: &str| !n.starts_with("device.") && !n.starts_with("ip.");
    let reads_labels = |n: &str| carried(n) && (n.contains("fraud_") || n.contains("labelled_"));
    for (name, m) in set.names.iter().zip(&moved) {
        if reads_labels(name) {
            assert_eq!(!m, blind.contains(&name.as_str()), "{name}");
        }
    }
}
