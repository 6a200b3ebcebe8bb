//! Loading a model file never panics or overflows the stack, whatever the
//! bytes, and whatever loads scores. Each input is tried as it is, and, when it
//! is a model file's JSON, again with its content hash made right, so that
//! mutations reach the checks behind the hash.
#![no_main]

use fraudstream::features::{load_feature_set, FeatureSet};
use fraudstream::model::{Model, ModelFile, Scratch};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

static SET: OnceLock<FeatureSet> = OnceLock::new();

fn load(bytes: &[u8], set: &FeatureSet) {
    if let Ok(model) = Model::from_bytes("fuzz.json", bytes, set) {
        let mut scratch = Scratch::default();
        for x in [f64::NAN, 0.0, 1e300] {
            let score = model.score(&vec![x; set.len()], &mut scratch);
            assert!(!(score < 0.0 || score > 1.0), "score {score} outside [0, 1]");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let set = SET.get_or_init(|| load_feature_set("model").expect("model set"));
    load(data, set);
    if let Ok(mut file) = serde_json::from_slice::<ModelFile>(data) {
        file.content_hash = file.compute_hash();
        if let Ok(bytes) = serde_json::to_vec(&file) {
            load(&bytes, set);
        }
    }
});
