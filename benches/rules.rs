//! 100 rules over one feature vector: the per-event cost of the rules stage.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use fraudstream::features::load_feature_set;
use fraudstream::rules::{Hits, Ruleset};

fn bench_rules(c: &mut Criterion) {
    let set = load_feature_set("default").expect("default feature set");
    let files = fraudstream::demo::synthetic::synthetic_rule_files(100, &set.names);
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let rules = Ruleset::from_files(&refs, &set).expect("synthetic rules compile");
    // A few distinct feature vectors, so branches are not trivially predicted.
    let vectors: Vec<Vec<f64>> = (0..16)
        .map(|k| {
            (0..rules.numeric_slots)
                .map(|i| ((i * 7 + k * 13) % 23) as f64 / 3.0)
                .collect()
        })
        .collect();
    // Text fields on no list, and (for the cost of confirming a hit) on the lists.
    let fields = |terminal, country| {
        [
            Some("acc-1"),
            Some("card-1"),
            Some(terminal),
            Some("dev-1"),
            None,
            Some(country),
            Some("EUR"),
            None,
            None,
        ]
    };
    let (unlisted, listed) = (fields("term-x17", "DE"), fields("term-17", "RU"));
    let mut hits = Hits::default();
    let mut group = c.benchmark_group("rules");
    group.throughput(Throughput::Elements(1));
    let mut i = 0;
    // The texts are hashed once, as the hot path does before evaluating.
    for (name, texts) in [
        ("evaluate_100_rules_per_event", rules.texts(unlisted)),
        (
            "evaluate_100_rules_listed_texts_per_event",
            rules.texts(listed),
        ),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % vectors.len();
                rules.evaluate(black_box(&vectors[i]), black_box(&texts), &mut hits);
                black_box(hits.live.len())
            })
        });
    }
    let builtin = Ruleset::builtin(&set).expect("starter rules");
    let texts = builtin.texts(unlisted);
    group.bench_function("evaluate_starter_rules_per_event", |b| {
        b.iter(|| {
            i = (i + 1) % vectors.len();
            builtin.evaluate(
                black_box(&vectors[i][..builtin.numeric_slots]),
                black_box(&texts),
                &mut hits,
            );
            black_box(hits.live.len())
        })
    });
    group.finish();
}

criterion_group!(benches, bench_rules);
criterion_main!(benches);
