//! Offline replay of a transactions file through the live feature engine, with
//! fraud labels fed back a fixed delay after each transaction. `features`,
//! `train` and `backtest` all run on this, so offline and live can never differ.

use crate::features::{EngineLimits, EventView, FeatureEngine, FeatureSet, LabelTicket};
use crate::source::handbook::{CsvError, HandbookReader, TxRow};
use crate::source::time::days_from_civil;
use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;

/// What to replay.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// First event time (epoch ms, inclusive) whose rows are emitted; earlier rows only warm the state.
    pub from_ms: i64,
    /// Last event time (epoch ms, exclusive) to process.
    pub to_ms: i64,
    /// How long after a transaction its label becomes known, ms.
    pub label_delay_ms: i64,
    /// State limits.
    pub limits: EngineLimits,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        Self {
            from_ms: i64::MIN,
            to_ms: i64::MAX,
            label_delay_ms: 7 * 86_400_000,
            limits: EngineLimits {
                table: crate::state::TableLimits {
                    max_entities: 10_000_000,
                    max_events_per_entity: 4096,
                    lateness_s: 0,
                },
                max_pending_labels: 2_000_000,
            },
        }
    }
}

/// Counts from a replay.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReplayStats {
    /// Rows read.
    pub rows: u64,
    /// Rows emitted (inside the range).
    pub emitted: u64,
    /// Labels applied to the state.
    pub labels: u64,
    /// Time spent reading and decoding the file (the rest is the engine and `emit`).
    pub decode: std::time::Duration,
    /// Wall time of the whole replay.
    pub total: std::time::Duration,
}

/// Parses `YYYY-MM-DD` to epoch ms at 00:00 UTC.
pub fn parse_date_ms(s: &str) -> Option<i64> {
    let mut it = s.splitn(3, '-');
    let y: i64 = it.next()?.parse().ok()?;
    let m: i64 = it.next()?.parse().ok()?;
    let d: i64 = it.next()?.parse().ok()?;
    ((1..=12).contains(&m) && (1..=31).contains(&d)).then(|| days_from_civil(y, m, d) * 86_400_000)
}

/// The replay engine without its input: a fresh feature engine, fed one row at
/// a time in time order, with each row's label applied `label_delay_ms` later.
pub struct Replayer {
    engine: FeatureEngine,
    features: Vec<f64>,
    pending: VecDeque<(i64, LabelTicket, bool)>,
    label_delay_ms: i64,
    /// Labels applied so far.
    pub labels: u64,
}

impl Replayer {
    /// A replayer for `set` with `opts`' limits and label delay.
    pub fn new(set: Arc<FeatureSet>, opts: &ReplayOptions) -> Self {
        Self {
            features: vec![0.0; set.len()],
            engine: FeatureEngine::new(set, opts.limits).labels_by_ticket(),
            pending: VecDeque::new(),
            label_delay_ms: opts.label_delay_ms,
            labels: 0,
        }
    }

    /// Applies the labels due by `row`, then `row` itself; returns its features.
    pub fn step(&mut self, row: &TxRow<'_>) -> &[f64] {
        while let Some(&(due, ticket, fraud)) = self.pending.front() {
            if due > row.ts_ms {
                break;
            }
            self.pending.pop_front();
            self.engine.apply_label_ticket(ticket, fraud);
            self.labels += 1;
        }
        let view = EventView {
            event_id: row.transaction_id,
            ts_ms: row.ts_ms,
            amount: row.amount,
            account: row.customer_id,
            card: row.customer_id,
            terminal: row.terminal_id,
            device: None,
            ip: None,
            country: None,
        };
        if let Some(ticket) = self.engine.update(&view, &mut self.features) {
            self.pending
                .push_back((row.ts_ms + self.label_delay_ms, ticket, row.fraud));
        }
        &self.features
    }
}

/// Replays `input` through a fresh engine for `set`, calling `emit` with each row
/// in range and its features. `progress` receives uncompressed bytes read so far.
pub fn replay(
    input: &Path,
    set: Arc<FeatureSet>,
    opts: &ReplayOptions,
    mut emit: impl FnMut(&TxRow<'_>, &[f64]),
    mut progress: impl FnMut(u64),
) -> Result<ReplayStats, CsvError> {
    let mut reader = HandbookReader::open(input)?;
    let mut replayer = Replayer::new(set, opts);
    let mut stats = ReplayStats::default();
    let started = std::time::Instant::now();
    loop {
        let read_at = std::time::Instant::now();
        let Some(row) = reader.next_row()? else { break };
        stats.decode += read_at.elapsed();
        if row.ts_ms >= opts.to_ms {
            break;
        }
        stats.rows += 1;
        let features = replayer.step(&row);
        if row.ts_ms >= opts.from_ms {
            stats.emitted += 1;
            emit(&row, features);
        }
        if stats.rows % 65_536 == 0 {
            progress(reader.bytes_read());
        }
    }
    progress(reader.bytes_read());
    stats.labels = replayer.labels;
    stats.total = started.elapsed();
    Ok(stats)
}
