//! Loading a rule file never panics, whatever the bytes.
#![no_main]

use fraudstream::features::{load_feature_set, FeatureSet};
use fraudstream::rules::Ruleset;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

static SET: OnceLock<FeatureSet> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let set = SET.get_or_init(|| load_feature_set("default").expect("default set"));
    let _ = Ruleset::from_files(&[("rules/fuzz.yaml", text)], set);
});
