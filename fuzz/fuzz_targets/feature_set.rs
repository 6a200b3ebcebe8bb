//! Loading a feature set never panics, whatever the bytes, and whatever loads
//! builds engines (every scope) that compute features and take labels.
#![no_main]

use fraudstream::features::{EngineLimits, EventView, FeatureEngine, FeatureSet, Scope};
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(set) = FeatureSet::parse("fuzz.toml", text) else { return };
    let set = Arc::new(set);
    let mut limits = EngineLimits::default();
    limits.table.max_entities = 4;
    limits.table.max_events_per_entity = 4;
    limits.max_pending_labels = 4;
    let ev = EventView {
        event_id: "e1",
        ts_ms: 1_700_000_000_000,
        amount: 12.5,
        account: "a",
        card: "c",
        terminal: "t",
        device: Some("d"),
        ip: None,
        country: Some("FR"),
    };
    let mut out = vec![0.0; set.len()];
    for scope in [Scope::All, Scope::ByAccount, Scope::ByTerminal] {
        let mut engine = FeatureEngine::scoped(set.clone(), limits, scope);
        engine.update(&ev, &mut out);
        engine.apply_label("e1", true);
        engine.update(&EventView { ts_ms: ev.ts_ms + 1000, ..ev }, &mut out);
    }
});
