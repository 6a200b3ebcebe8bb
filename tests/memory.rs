//! Ten million accounts fit the documented memory budget (README "Features"):
//! at most 512 bytes per account for the default set's account features.

use fraudstream::features::{EngineLimits, EventView, FeatureEngine, FeatureSet};
use std::sync::Arc;

/// The default feature set's account features (one entity table, six windows).
const ACCOUNT_FEATURES: &str = r#"
name = "accounts"
[[feature]]
name = "account.tx_count_10m"
entity = "account"
aggregate = "count"
window = "10m"
[[feature]]
name = "account.tx_count_1h"
entity = "account"
aggregate = "count"
window = "1h"
[[feature]]
name = "account.amount_sum_24h"
entity = "account"
aggregate = "sum"
window = "1d"
[[feature]]
name = "account.avg_amount_30d"
entity = "account"
aggregate = "mean"
window = "30d"
[[feature]]
name = "account.small_tx_count_10m"
entity = "account"
aggregate = "count"
window = "10m"
amount_max = 5.0
[[feature]]
name = "account.small_tx_count_1h"
entity = "account"
aggregate = "count"
window = "1h"
amount_max = 5.0
[[feature]]
name = "account.secs_since_last"
entity = "account"
aggregate = "secs_since_last"
"#;

const BUDGET_BYTES_PER_ACCOUNT: usize = 512;

fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

#[test]
fn ten_million_accounts_fit_the_memory_budget() {
    let n: usize = std::env::var("FRAUDSTREAM_MEMORY_TEST_ACCOUNTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let set = Arc::new(FeatureSet::parse("accounts.toml", ACCOUNT_FEATURES).unwrap());
    let mut limits = EngineLimits::default();
    limits.table.max_entities = n;
    let before = rss_bytes();
    let mut engine = FeatureEngine::new(set.clone(), limits);
    let mut out = vec![0.0; set.len()];
    let mut id = String::new();
    // Two payments per account, a minute apart.
    for round in 0..2i64 {
        for a in 0..n {
            id.clear();
            use std::fmt::Write;
            let _ = write!(id, "acc-{a}");
            let view = EventView {
                event_id: "e",
                ts_ms: 1_700_000_000_000 + round * 60_000 + (a as i64 % 1000),
                amount: 1.0 + (a % 100) as f64,
                account: &id,
                card: &id,
                terminal: "t",
                device: None,
                ip: None,
                country: None,
                ..Default::default()
            };
            engine.update(&view, &mut out);
        }
    }
    let (_, entities, stats) = engine.table_stats().next().unwrap();
    assert_eq!(entities, n);
    assert_eq!(stats.evicted_lru, 0);
    let accounted = engine.memory_bytes() / n;
    let rss = rss_bytes().saturating_sub(before) / n;
    eprintln!("{n} accounts: {accounted} bytes/account accounted, {rss} bytes/account resident");
    assert!(
        accounted <= BUDGET_BYTES_PER_ACCOUNT,
        "{accounted} bytes per account"
    );
    assert!(
        rss <= BUDGET_BYTES_PER_ACCOUNT,
        "{rss} resident bytes per account"
    );
}

/// The engine side of a state restore (`PartitionWorker::restore`: parse, duplicate
/// check, window update) over two payments for each of a million accounts.
/// Prints the time; asserts only that every account was restored.
#[test]
fn restoring_a_million_accounts() {
    use fraudstream::pipeline::PartitionWorker;
    use fraudstream::source::event::Limits;
    use std::io::Write;
    let set = Arc::new(fraudstream::features::load_feature_set("model").unwrap());
    let mut limits = EngineLimits::default();
    limits.table.max_entities = 2_000_000;
    let mut worker = PartitionWorker::new(set, limits, 100_000, None);
    let event_limits = Limits::default();
    let n = 1_000_000u64;
    let mut buf = Vec::with_capacity(256);
    let started = std::time::Instant::now();
    let mut applied = 0;
    for i in 0..2 * n {
        buf.clear();
        let account = (i * 7_919) % n;
        write!(buf, r#"{{"event_id":"r{i}","ts":{},"account_id":"acc-{account}","terminal_id":"t{}","amount":{}.5,"currency":"EUR"}}"#,
            1_700_000_000_000u64 + i * 50, i % 20_000, i % 300).unwrap();
        applied += u64::from(worker.restore(&buf, &event_limits));
    }
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(applied, 2 * n);
    let accounts = worker
        .engine
        .table_stats()
        .find(|(name, _, _)| *name == "account")
        .map(|(_, live, _)| live)
        .unwrap();
    assert_eq!(accounts, n as usize);
    eprintln!(
        "restore: {} events for {n} accounts in {secs:.2} s ({:.0} events/s, engine side only)",
        2 * n,
        2.0 * n as f64 / secs
    );
}
