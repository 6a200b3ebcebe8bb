//! Helpers shared by integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// Where the handbook data set is: `$FRAUDSTREAM_HANDBOOK_DIR` or `../shared/data/handbook`.
/// Prints a loud notice and returns `None` when it is absent.
pub fn handbook_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("FRAUDSTREAM_HANDBOOK_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/handbook")
        });
    if dir.join("transactions.csv.gz").exists() {
        Some(dir)
    } else {
        eprintln!(
            "\n*** SKIPPED: handbook data not found at {} (set FRAUDSTREAM_HANDBOOK_DIR) ***\n",
            dir.display()
        );
        None
    }
}
