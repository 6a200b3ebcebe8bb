//! The hot path allocates nothing per event once warm: feature update, 100 rules,
//! the model's score (and its TreeSHAP explanation of reviewed and blocked
//! payments), policy, decision encoding and the decision API's log of decisions
//! for repeats, counted with a counting global allocator.

use fraudstream::decision::{Action, Decider};
use fraudstream::features::{load_feature_set, EngineLimits, EventView, FeatureEngine, FeatureSet};
use fraudstream::model::gbt::GbtParams;
use fraudstream::model::{Algorithm, ModelFile, ModelStore, MODEL_FORMAT_VERSION};
use fraudstream::rules::reload::{RuleStore, RulesSource};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// A small tree model over every feature of `set` that flags large amounts,
/// saved in `dir`: trained on synthetic rows, with the cover TreeSHAP needs.
fn large_amount_model(set: &FeatureSet, dir: &std::path::Path) -> std::path::PathBuf {
    let d = set.len();
    let amount = set.index_of("amount").unwrap();
    let rows = 2000;
    let x: Vec<f64> = (0..rows * d)
        .map(|k| {
            if k % d == amount {
                5.0 + ((k / d) % 90) as f64
            } else {
                ((k * 7919) % 13) as f64
            }
        })
        .collect();
    let y: Vec<bool> = (0..rows).map(|i| x[i * d + amount] > 85.0).collect();
    let params = GbtParams {
        trees: 20,
        max_depth: 4,
        learning_rate: 0.3,
        ..GbtParams::default()
    };
    let file = ModelFile {
        format_version: MODEL_FORMAT_VERSION,
        name: "large-amounts".into(),
        algorithm: Algorithm::Gbt,
        feature_set: set.name.clone(),
        features: set.names.clone(),
        training: None,
        validation: None,
        imported: None,
        logistic: None,
        gbt: Some(fraudstream::model::gbt::fit(&x, d, &y, &params, None).unwrap()),
        content_hash: String::new(),
    };
    let path = dir.join("model.json");
    file.save(&path).unwrap();
    path
}

#[test]
fn the_hot_path_does_not_allocate_per_event() {
    let set = Arc::new(load_feature_set("default").unwrap());
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("rules/lists")).unwrap();
    for (path, text) in fraudstream::demo::synthetic::synthetic_rule_files(100, &set.names) {
        std::fs::write(dir.path().join(path), text).unwrap();
    }
    let store =
        Arc::new(RuleStore::load(RulesSource::Dir(dir.path().join("rules")), set.clone()).unwrap());
    assert_eq!(store.current().rules.len(), 100);
    let limits = EngineLimits {
        max_pending_labels: 4096,
        ..EngineLimits::default()
    };
    let mut engine = FeatureEngine::new(set.clone(), limits);
    let models = ModelStore::load(
        Some(large_amount_model(&set, dir.path())),
        None,
        set.clone(),
    )
    .unwrap();
    let mut decider = Decider::new(store, set.len(), None).with_models(Arc::new(models));
    let mut explained = 0;
    let mut out = Vec::with_capacity(4096);
    let accounts: Vec<String> = (0..100).map(|i| format!("acc-{i}")).collect();
    let terminals: Vec<String> = (0..50).map(|i| format!("term-{i}")).collect();
    let ids: Vec<String> = (0..10_000).map(|i| format!("ev-{i}")).collect();
    // With the decision API on, the Kafka path keeps each decision for repeats.
    let mut kept = fraudstream::api::replay::DecisionLog::new(5_000);
    let mut run = |from: usize, to: usize| {
        for i in from..to {
            let view = EventView {
                event_id: &ids[i % ids.len()],
                ts_ms: 1_700_000_000_000 + i as i64 * 1000,
                amount: 5.0 + (i % 90) as f64,
                account: &accounts[i % accounts.len()],
                card: &accounts[i % accounts.len()],
                terminal: &terminals[i % terminals.len()],
                device: Some("dev-1"),
                ip: None,
                country: Some(if i % 5 == 0 { "RU" } else { "DE" }),
                original_amount: 5.0 + (i % 90) as f64,
                currency: "EUR",
                mcc: Some(if i % 3 == 0 { "5411" } else { "5999" }),
                channel: Some("pos"),
            };
            engine.update(&view, decider.features_mut());
            let outcome = decider.decide(&view, view.ts_ms, 3, &mut out);
            kept.insert(i as u64, &out);
            if i % 100 == 0 {
                kept.committed();
            }
            if outcome.action != Action::Allow && out.windows(7).any(|w| w == b"\"model:") {
                explained += 1;
            }
        }
    };
    // Warm up: every entity, ring (capped at 512 events) and buffer reaches its steady size.
    run(0, 120_000);
    let before = ALLOCS.load(Ordering::Relaxed);
    run(120_000, 140_000);
    let allocs = ALLOCS.load(Ordering::Relaxed) - before;
    assert_eq!(allocs, 0, "{allocs} allocations in 20,000 events");
    assert!(!out.is_empty());
    assert_eq!(kept.get(139_999), Some(&out[..]));
    assert!(
        explained > 1000,
        "{explained} decisions explained by the model"
    );
}
