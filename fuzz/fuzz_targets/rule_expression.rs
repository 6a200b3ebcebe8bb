//! The expression parser and compiler never panic, whatever the input.
#![no_main]

use fraudstream::features::load_feature_set;
use fraudstream::rules::compile::{compile, Scope};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

static SCOPE: OnceLock<Scope> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else { return };
    let scope = SCOPE.get_or_init(|| {
        let set = load_feature_set("default").expect("default set");
        Scope::new(&set, &["trusted".to_string()])
    });
    let mut lists = vec![Default::default()];
    if let Ok(program) = compile(src, scope, &mut lists) {
        // Whatever compiles must evaluate without panicking on any input.
        let nums = vec![f64::NAN; scope.numeric_slots()];
        let _ = program.fires(&nums, &Default::default(), &lists);
    }
});
