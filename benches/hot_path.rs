//! The in-process hot path, stage by stage and whole: parse and validate an
//! event, decide and encode, and the whole path from payload bytes to the encoded
//! decision (`default` feature set, 100 rules, and the shipped model or a 100-tree
//! one) with state for 10 thousand and 1 million accounts.
//!
//! After each whole-path benchmark, 500,000 more events are timed one by one and
//! their p50/p99/p99.9 printed (criterion reports means only).
//!
//! Each event is formatted into a reused buffer on the fly (so the accounts hit
//! are spread over the whole state, as in production); `format_event` measures
//! that part alone.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use fraudstream::decision::Decider;
use fraudstream::demo::synthetic::synthetic_rule_files;
use fraudstream::features::{load_feature_set, EngineLimits, EventView};
use fraudstream::model::{ModelFile, ModelStore};
use fraudstream::ops::latency::LatencyHistogram;
use fraudstream::pipeline::{Encoded, PartitionWorker};
use fraudstream::rules::reload::{RuleStore, RulesSource};
use fraudstream::source::event::{parse_event, Limits};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

const LIMITS: Limits = Limits {
    max_message_bytes: 64 * 1024,
    max_amount: 1.0e9,
    max_future_skew_ms: 3_600_000,
    min_event_time_ms: fraudstream::source::event::DEFAULT_MIN_EVENT_TIME_MS,
};

/// A small deterministic generator of events over `accounts` accounts.
struct Events {
    accounts: u64,
    n: u64,
    ts_ms: i64,
    buf: Vec<u8>,
}

impl Events {
    fn new(accounts: u64) -> Self {
        Self {
            accounts,
            n: 0,
            ts_ms: 1_700_000_000_000,
            buf: Vec::with_capacity(512),
        }
    }

    fn next(&mut self) -> &[u8] {
        self.n += 1;
        self.ts_ms += 20;
        let h = self.n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let account = (h >> 20) % self.accounts;
        self.buf.clear();
        let _ = write!(
            self.buf,
            r#"{{"event_id":"ev-{}","ts":{},"account_id":"acc-{account}","card_id":"card-{account}","terminal_id":"term-{}","amount":{}.{:02},"currency":"EUR","channel":"pos"}}"#,
            self.n,
            self.ts_ms,
            (h >> 8) % 20_000,
            (h >> 40) % 150,
            h % 100
        );
        &self.buf
    }
}

fn bench_hot_path(c: &mut Criterion) {
    // `cargo bench -- --test` (CI) runs each benchmark once, on small state.
    let quick = std::env::args().any(|a| a == "--test");
    let set = Arc::new(load_feature_set("default").expect("model feature set"));
    let rules = Arc::new(
        RuleStore::load(
            RulesSource::Files(synthetic_rule_files(100, &set.names)),
            set.clone(),
        )
        .expect("100 synthetic rules"),
    );
    let shipped_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/handbook.json");
    // The issue's reference model: 100 trees (the shipped ensemble's first 100).
    let tmp = std::env::temp_dir().join(format!("fraudstream-hot-path-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let small_path = tmp.join("first100.json");
    let shipped: ModelFile =
        serde_json::from_str(&std::fs::read_to_string(&shipped_path).unwrap()).unwrap();
    let small = shipped.first_trees(100).expect("trees");
    small.save(&small_path).unwrap();
    let open = |path: &Path| {
        let (models, errors) = ModelStore::open(Some(path.to_path_buf()), None, set.clone());
        assert!(errors.is_empty(), "{errors:?}");
        Arc::new(models)
    };
    let models = [
        ("shipped_model", open(&shipped_path)),
        ("100_tree_model", open(&small_path)),
    ];
    let _ = std::fs::remove_dir_all(&tmp);

    let mut group = c.benchmark_group("hot_path");
    group.throughput(Throughput::Elements(1));

    let mut events = Events::new(10_000);
    group.bench_function("format_event", |b| {
        b.iter(|| black_box(events.next().len()))
    });
    group.bench_function("parse_and_validate_event", |b| {
        let payload = events.next().to_vec();
        b.iter(|| black_box(parse_event(black_box(&payload), &LIMITS).is_ok()))
    });
    // The machine's noise floor for the percentiles below: the same per-event
    // timing around parsing alone (well under a microsecond of work).
    let mut hist = LatencyHistogram::default();
    for _ in 0..if quick { 20_000 } else { 500_000 } {
        let payload = events.next();
        let read_at = Instant::now();
        black_box(parse_event(payload, &LIMITS).is_ok());
        hist.record(read_at.elapsed().as_nanos() as u64);
    }
    print_percentiles("parse only (noise floor)", &hist);
    let mut policy_only = Decider::new(
        Arc::new(RuleStore::load(RulesSource::Files(Vec::new()), set.clone()).unwrap()),
        set.len(),
        None,
    );
    group.bench_function("decide_and_encode_without_rules_or_model", |b| {
        let payload = events.next().to_vec();
        let mut worker = PartitionWorker::new(set.clone(), EngineLimits::default(), 0, None);
        let mut out = Encoded::default();
        let ev = parse_event(&payload, &LIMITS).unwrap();
        worker
            .engine
            .update(&EventView::of(&ev), policy_only.features_mut());
        let subject = EventView::of(&ev);
        b.iter(|| {
            policy_only.decide(&subject, 1_700_000_000_000, 3, &mut out.decision);
            black_box(out.decision.len())
        })
    });

    // The `default` set keeps about 21 GB of state for 1M accounts here (pair
    // entities per payment), so CI's quick pass stays at 10k accounts.
    let sizes: &[u64] = if quick {
        &[10_000]
    } else {
        &[10_000, 1_000_000]
    };
    let runs = sizes
        .iter()
        .map(|&a| (a, &models[0]))
        .chain(sizes.iter().map(|&a| (a, &models[1])));
    for (accounts, (model_name, models)) in runs {
        let mut decider = Decider::new(rules.clone(), set.len(), None).with_models(models.clone());
        let limits = EngineLimits {
            table: fraudstream::state::TableLimits {
                max_entities: 20_000_000,
                ..EngineLimits::default().table
            },
            ..EngineLimits::default()
        };
        let mut worker = PartitionWorker::new(set.clone(), limits, 100_000, None);
        let mut out = Encoded::default();
        let mut events = Events::new(accounts);
        // Most accounts seen once or twice before measuring.
        for _ in 0..(2 * accounts).min(12_000_000) {
            let payload = events.next();
            let _ = worker.decide(payload, &LIMITS, &mut decider, Instant::now(), &mut out);
        }
        let id = BenchmarkId::new(
            format!("parse_to_encoded_decision_{model_name}"),
            format!("{accounts}_accounts"),
        );
        group.bench_function(id, |b| {
            b.iter(|| {
                let payload = events.next();
                let outcome =
                    worker.decide(payload, &LIMITS, &mut decider, Instant::now(), &mut out);
                black_box(outcome.ok().flatten().map_or(0.0, |o| o.score))
            })
        });
        // Criterion reports the mean; the tail comes from timing events one by one.
        let mut hist = LatencyHistogram::default();
        for _ in 0..if quick { 20_000 } else { 500_000 } {
            let payload = events.next();
            let read_at = Instant::now();
            let outcome = worker.decide(payload, &LIMITS, &mut decider, read_at, &mut out);
            hist.record(read_at.elapsed().as_nanos() as u64);
            black_box(outcome.is_ok());
        }
        print_percentiles(&format!("{model_name}, {accounts} accounts"), &hist);
    }
    group.finish();
}

fn print_percentiles(what: &str, hist: &LatencyHistogram) {
    let us = |ns: u64| ns as f64 / 1000.0;
    println!(
        "hot_path percentiles, {what}, {} events: p50 {:.2} us, p99 {:.2} us, p99.9 {:.2} us, max {:.1} us",
        hist.count(),
        us(hist.quantile(0.5)),
        us(hist.quantile(0.99)),
        us(hist.quantile(0.999)),
        us(hist.max())
    );
}

criterion_group!(benches, bench_hot_path);
criterion_main!(benches);
