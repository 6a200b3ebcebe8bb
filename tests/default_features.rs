//! The default feature set (the one `train` and the processor use) on a
//! simulated stream: every feature the live path computes from Kafka payloads,
//! with labels fed back by event id, equals the offline replay's, bit for bit.

use fraudstream::features::{load_feature_set, EngineLimits, EventView, FeatureEngine};
use fraudstream::offline::replay::{replay, ReplayOptions};
use fraudstream::offline::simulate::{simulate, Columns, SimOptions};
use fraudstream::source::event::{parse_event_at, Limits};
use std::collections::VecDeque;
use std::sync::Arc;

const LABEL_DELAY_MS: i64 = 7 * 86_400_000;

/// The payload the processor would read for a row.
fn payload(row: &fraudstream::source::handbook::TxRow<'_>) -> String {
    let opt =
        |key: &str, v: Option<&str>| v.map_or(String::new(), |v| format!(r#","{key}":"{v}""#));
    format!(
        r#"{{"event_id":"{}","ts":{},"account_id":"{}","terminal_id":"{}","amount":"{}","currency":"EUR"{}{}{}{}{}{}}}"#,
        row.transaction_id,
        row.ts_ms,
        row.customer_id,
        row.terminal_id,
        row.amount,
        opt("card_id", row.card_id),
        opt("device_id", row.device_id),
        opt("ip", row.ip),
        opt("country", row.country.as_ref().map(|c| &**c)),
        row.mcc
            .map_or(String::new(), |m| format!(r#","mcc":{}"#, m.0)),
        opt("channel", row.channel),
    )
}

#[test]
fn every_default_feature_is_the_same_live_and_in_replay_on_a_simulated_stream() {
    let set = Arc::new(load_feature_set("default").unwrap());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sim.csv.gz");
    let sim = simulate(&SimOptions {
        days: 21,
        seed: 5,
        customers: 400,
        ..SimOptions::default()
    })
    .unwrap();
    sim.write_file(&file, Columns::Full).unwrap();

    let mut live = FeatureEngine::new(set.clone(), EngineLimits::default());
    let mut out = vec![0.0; set.len()];
    // (due, event id, fraud): labels come back a week after their payment.
    let mut labels: VecDeque<(i64, String, bool)> = VecDeque::new();
    let (mut rows, mut frauds) = (0usize, 0usize);
    let mut differences = Vec::new();
    let opts = ReplayOptions {
        label_delay_ms: LABEL_DELAY_MS,
        ..ReplayOptions::default()
    };
    let limits = Limits::default();
    replay(
        &file,
        set.clone(),
        &opts,
        |row, replayed| {
            while labels.front().is_some_and(|l| l.0 <= row.ts_ms) {
                let (_, id, fraud) = labels.pop_front().unwrap();
                live.apply_label(&id, fraud);
            }
            let text = payload(row);
            let event = parse_event_at(text.as_bytes(), &limits, row.ts_ms).unwrap();
            live.update(&EventView::of(&event), &mut out);
            labels.push_back((
                row.ts_ms + LABEL_DELAY_MS,
                row.transaction_id.to_string(),
                row.fraud,
            ));
            for (i, (a, b)) in out.iter().zip(replayed).enumerate() {
                if a.to_bits() != b.to_bits() && !(a.is_nan() && b.is_nan()) {
                    differences.push(format!("row {rows} {}: live {a}, replay {b}", set.names[i]));
                }
            }
            rows += 1;
            frauds += usize::from(row.fraud);
        },
        |_| {},
    )
    .unwrap();
    assert!(rows > 10_000 && frauds > 20, "{rows} rows, {frauds} frauds");
    assert!(
        differences.is_empty(),
        "{} differences, first: {:?}",
        differences.len(),
        &differences[..differences.len().min(10)]
    );
}
