//! Per-event state update plus extraction of every feature of a set.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use fraudstream::features::{load_feature_set, EngineLimits, EventView, FeatureEngine};
use std::sync::Arc;

fn bench_features(c: &mut Criterion) {
    let mut group = c.benchmark_group("features");
    group.throughput(Throughput::Elements(1));
    for (set_name, accounts) in [
        ("default", 10_000usize),
        ("default", 1_000_000),
        ("handbook", 10_000),
        ("model", 10_000),
    ] {
        let set = Arc::new(load_feature_set(set_name).expect("feature set"));
        let mut engine = FeatureEngine::new(set.clone(), EngineLimits::default());
        let mut out = vec![0.0; set.len()];
        let ids: Vec<String> = (0..accounts).map(|i| format!("acc-{i}")).collect();
        let terminals: Vec<String> = (0..1000).map(|i| format!("term-{i}")).collect();
        let mut t = 1_700_000_000_000i64;
        let mut n = 0usize;
        let mut step = |engine: &mut FeatureEngine, out: &mut [f64]| {
            n = n.wrapping_add(7919);
            t += 50;
            let view = EventView {
                event_id: "ev",
                ts_ms: t,
                amount: (n % 200) as f64 + 0.5,
                account: &ids[n % ids.len()],
                card: &ids[n % ids.len()],
                terminal: &terminals[n % terminals.len()],
                device: Some("dev-1"),
                ip: None,
                country: Some("DE"),
                ..Default::default()
            };
            engine.update(&view, out);
        };
        // Warm the state: every account seen a few times.
        for _ in 0..accounts.max(100_000) * 2 {
            step(&mut engine, &mut out);
        }
        let id = BenchmarkId::new(
            format!("update_and_extract_{}_features", set.len()),
            format!("{set_name}_{accounts}_accounts"),
        );
        group.bench_function(id, |b| {
            b.iter(|| {
                step(&mut engine, &mut out);
                black_box(out[0])
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_features);
criterion_main!(benches);
