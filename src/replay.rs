//! Offline replay of a transactions file through the live feature engine, with
//! fraud labels fed back a fixed delay after each transaction. `features`,
//! `train` and `backtest` all run on this, so offline and live can never differ.

use crate::features::{EngineLimits, EventView, FeatureEngine, FeatureSet, LabelTicket};
use crate::source::handbook::{CsvError, HandbookReader, OwnedTxRow, TxRow};
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
                // Live's lateness: rows out of order get the features live gives them.
                table: crate::state::TableLimits {
                    max_entities: 10_000_000,
                    max_events_per_entity: 4096,
                    ..crate::state::TableLimits::default()
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

/// Rows a replay hands on together with their features. Replays work in blocks
/// so that the feature engine's state and the consumer's working set (rules,
/// trees) each stay in cache for a whole block instead of evicting each other
/// at every row.
pub struct ReplayBlock {
    rows: Vec<OwnedTxRow>,
    features: Vec<f64>,
    emit: Vec<bool>,
    len: usize,
    width: usize,
}

impl ReplayBlock {
    /// Rows per block in [`replay_blocks`].
    pub const ROWS: usize = 256;

    /// An empty block for feature vectors of `width` features.
    pub fn new(width: usize) -> Self {
        Self {
            rows: Vec::new(),
            features: Vec::new(),
            emit: Vec::new(),
            len: 0,
            width,
        }
    }

    /// Empties the block (keeping its memory).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Rows held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the block holds no rows.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends a copy of `row` (its features come from [`Replayer::step_block`]).
    pub fn push(&mut self, row: &TxRow<'_>) {
        if self.len == self.rows.len() {
            self.rows.push(OwnedTxRow::of(row));
            self.features.resize(self.rows.len() * self.width, f64::NAN);
            self.emit.push(false);
        } else {
            self.rows[self.len].fill(row);
        }
        self.len += 1;
    }

    /// The stepped rows inside the replay's range, in order: each one's place in
    /// the block, the row and its features.
    pub fn rows(&self) -> impl Iterator<Item = (usize, TxRow<'_>, &[f64])> + '_ {
        (0..self.len).filter(|&k| self.emit[k]).map(|k| {
            let (row, features) = self.row(k);
            (k, row, features)
        })
    }

    /// The features of every row held (warm-up rows included), row after row.
    pub fn features(&self) -> &[f64] {
        &self.features[..self.len * self.width]
    }

    /// Row `k` of the block and its features.
    pub fn row(&self, k: usize) -> (TxRow<'_>, &[f64]) {
        assert!(k < self.len, "row {k} of a block of {}", self.len);
        (
            self.rows[k].view(),
            &self.features[k * self.width..][..self.width],
        )
    }
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

    /// Starts loading the state that a coming `step` of `row` will read, and
    /// that of the next label due. Changes nothing. Called for the next row
    /// just before stepping the current one, it overlaps the next row's cache
    /// misses with the current row's work (the state outgrows the caches).
    pub fn prefetch(&self, row: &TxRow<'_>) {
        if let Some(&(_, ticket, _)) = self.pending.front() {
            self.engine.prefetch_label(ticket);
        }
        self.engine.prefetch(&Self::view(row));
    }

    fn view<'a>(row: &TxRow<'a>) -> EventView<'a> {
        EventView {
            event_id: row.transaction_id,
            ts_ms: row.ts_ms,
            amount: row.amount,
            account: row.customer_id,
            card: row.customer_id,
            terminal: row.terminal_id,
            device: None,
            ip: None,
            country: None,
        }
    }

    /// Applies the labels due by `row`, then `row` itself; returns its features.
    pub fn step(&mut self, row: &TxRow<'_>) -> &[f64] {
        let mut features = std::mem::take(&mut self.features);
        self.step_into(row, &mut features);
        self.features = features;
        &self.features
    }

    /// [`Replayer::step`], writing the features to `out` (one per feature of the set).
    pub fn step_into(&mut self, row: &TxRow<'_>, out: &mut [f64]) {
        while let Some(&(due, ticket, fraud)) = self.pending.front() {
            if due > row.ts_ms {
                break;
            }
            self.pending.pop_front();
            self.engine.apply_label_ticket(ticket, fraud);
            self.labels += 1;
        }
        if let Some(ticket) = self.engine.update(&Self::view(row), out) {
            self.pending
                .push_back((row.ts_ms + self.label_delay_ms, ticket, row.fraud));
        }
    }

    /// Steps every row of `block` in order, filling its features; rows before
    /// `from_ms` only warm the state. Each row's state is prefetched while the
    /// row before it runs.
    pub fn step_block(&mut self, block: &mut ReplayBlock, from_ms: i64) {
        let width = block.width;
        for k in 0..block.len {
            if k + 1 < block.len {
                self.prefetch(&block.rows[k + 1].view());
            }
            let row = &block.rows[k];
            self.step_into(&row.view(), &mut block.features[k * width..][..width]);
            block.emit[k] = row.ts_ms() >= from_ms;
        }
    }
}

/// Replays `input` through a fresh engine for `set`, calling `emit` with each row
/// in range and its features. `progress` receives uncompressed bytes read so far.
pub fn replay(
    input: &Path,
    set: Arc<FeatureSet>,
    opts: &ReplayOptions,
    mut emit: impl FnMut(&TxRow<'_>, &[f64]),
    progress: impl FnMut(u64),
) -> Result<ReplayStats, CsvError> {
    replay_blocks(
        input,
        set,
        opts,
        |block| {
            for (_, row, features) in block.rows() {
                emit(&row, features);
            }
        },
        progress,
    )
}

/// [`replay`], handing rows on a [`ReplayBlock`] of up to [`ReplayBlock::ROWS`] at a time.
pub fn replay_blocks(
    input: &Path,
    set: Arc<FeatureSet>,
    opts: &ReplayOptions,
    mut emit: impl FnMut(&ReplayBlock),
    mut progress: impl FnMut(u64),
) -> Result<ReplayStats, CsvError> {
    let mut reader = HandbookReader::open(input)?;
    let mut block = ReplayBlock::new(set.len());
    let mut replayer = Replayer::new(set, opts);
    let mut stats = ReplayStats::default();
    let started = std::time::Instant::now();
    let mut done = false;
    while !done {
        let read_at = std::time::Instant::now();
        block.clear();
        while block.len() < ReplayBlock::ROWS {
            match reader.next_row()? {
                Some(row) if row.ts_ms < opts.to_ms => block.push(&row),
                _ => {
                    done = true;
                    break;
                }
            }
        }
        stats.decode += read_at.elapsed();
        if block.is_empty() {
            break;
        }
        replayer.step_block(&mut block, opts.from_ms);
        stats.rows += block.len() as u64;
        stats.emitted += block.emit[..block.len()].iter().filter(|&&e| e).count() as u64;
        emit(&block);
        progress(reader.bytes_read());
    }
    stats.labels = replayer.labels;
    stats.total = started.elapsed();
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::load_feature_set;
    use crate::source::handbook::OwnedTxRow;
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};
    use std::fmt::Write as _;

    /// `replay` reads each row a step early to prefetch its state; what it emits
    /// must be exactly what stepping a replayer row by row gives.
    #[test]
    fn replay_with_lookahead_emits_what_stepping_each_row_gives() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tx.csv");
        let mut csv =
            String::from("TRANSACTION_ID,TX_DATETIME,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT,TX_FRAUD\n");
        let mut rng = SmallRng::seed_from_u64(7);
        let mut next = |n: u64| rng.gen_range(0..n);
        let mut secs = 0;
        for id in 0..5000 {
            secs += next(600);
            let (day, s) = (1 + secs / 86_400, secs % 86_400);
            writeln!(
                csv,
                "{id},2018-04-{day:02} {:02}:{:02}:{:02},{},{},{}.{:02},{}",
                s / 3600,
                s % 3600 / 60,
                s % 60,
                next(40),
                next(25),
                next(300),
                next(100),
                u8::from(next(10) == 0)
            )
            .unwrap();
        }
        std::fs::write(&path, csv).unwrap();
        let set = Arc::new(load_feature_set("model").unwrap());
        let opts = ReplayOptions {
            from_ms: parse_date_ms("2018-04-05").unwrap(),
            to_ms: parse_date_ms("2018-04-15").unwrap(),
            label_delay_ms: 86_400_000,
            ..ReplayOptions::default()
        };
        let mut emitted: Vec<(String, Vec<f64>)> = Vec::new();
        let stats = replay(
            &path,
            set.clone(),
            &opts,
            |row, f| emitted.push((row.transaction_id.to_string(), f.to_vec())),
            |_| {},
        )
        .unwrap();

        let mut reader = HandbookReader::open(&path).unwrap();
        let mut rows = Vec::new();
        while let Some(row) = reader.next_row().unwrap() {
            rows.push(OwnedTxRow::of(&row));
        }
        let mut replayer = Replayer::new(set, &opts);
        let mut want: Vec<(String, Vec<f64>)> = Vec::new();
        let mut read = 0;
        for row in &rows {
            let row = row.view();
            if row.ts_ms >= opts.to_ms {
                break;
            }
            read += 1;
            let f = replayer.step(&row).to_vec();
            if row.ts_ms >= opts.from_ms {
                want.push((row.transaction_id.to_string(), f));
            }
        }
        assert!(
            want.len() > 1000 && read < rows.len(),
            "the range cuts both ends"
        );
        assert!(replayer.labels > 500, "labels were applied");
        assert_eq!(
            (stats.rows, stats.emitted),
            (read as u64, want.len() as u64)
        );
        assert_eq!(stats.labels, replayer.labels);
        assert_eq!(emitted.len(), want.len());
        for ((id, got), (want_id, want)) in emitted.iter().zip(&want) {
            assert_eq!(id, want_id);
            let same = got
                .iter()
                .zip(want)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "row {id}: {got:?} != {want:?}");
        }
    }
}
