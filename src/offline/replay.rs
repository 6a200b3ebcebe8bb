//! Offline replay of a transactions file through the live feature engine, with
//! fraud labels fed back a fixed delay after each transaction. `features`,
//! `train` and `backtest` all run on this, so offline and live can never differ.

use crate::features::{EngineLimits, EventView, FeatureEngine, FeatureSet, LabelTicket};
use crate::source::handbook::{CsvError, HandbookReader, OwnedTxRow, RowContract, TxRow};
use crate::state::{key_hash, RecentIds};
use std::collections::{BTreeMap, VecDeque};
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
    /// How the file is read.
    pub input: InputOptions,
}

/// How a replay reads its file: the contract rows are held to, what happens
/// to bad rows, and how far out of time order rows may be.
#[derive(Debug, Clone)]
pub struct InputOptions {
    /// What each row is checked against (the live event contract).
    pub contract: RowContract,
    /// Skip rows that break the contract (counted and logged) instead of failing.
    pub skip_invalid: bool,
    /// Rows held back to put input that is out of time order back in order;
    /// a row earlier than every row held is rejected (`out_of_order`).
    pub reorder_rows: usize,
    /// Transaction ids remembered to reject a repeated one (`duplicate`), as
    /// the live processor remembers event ids (`processing.dedup_window_events`;
    /// 0 remembers none).
    pub dedup_window: usize,
}

impl Default for InputOptions {
    fn default() -> Self {
        Self {
            contract: RowContract::default(),
            skip_invalid: false,
            reorder_rows: DEFAULT_REORDER_ROWS,
            dedup_window: 100_000,
        }
    }
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
            input: InputOptions::default(),
        }
    }
}

/// Default of [`ReplayOptions::reorder_rows`]: about 25 MB of held rows.
pub const DEFAULT_REORDER_ROWS: usize = 100_000;

/// Bad rows whose messages a replay keeps (all are counted).
pub const REPORTED_ROWS: usize = 100;

/// Counts from a replay.
#[derive(Debug, Clone, Default)]
pub struct ReplayStats {
    /// Rows read from the file (valid or not).
    pub read: u64,
    /// Rows replayed through the engine (warm-up included).
    pub rows: u64,
    /// Valid rows at or after `to_ms`, not replayed.
    pub after_to: u64,
    /// Rows that broke the contract (skipped with `skip_invalid`), by reason code.
    pub invalid: BTreeMap<&'static str, u64>,
    /// The first [`REPORTED_ROWS`] bad rows, as `file:line: reason: message`.
    pub invalid_rows: Vec<String>,
    /// Rows emitted (inside the range).
    pub emitted: u64,
    /// Event time of the first row replayed (epoch ms): where the state's
    /// history starts. `None` when no row was replayed.
    pub first_ms: Option<i64>,
    /// Labels applied to the state.
    pub labels: u64,
    /// Time spent reading and decoding the file (the rest is the engine and `emit`).
    pub decode: std::time::Duration,
    /// Wall time of the whole replay.
    pub total: std::time::Duration,
}

impl ReplayStats {
    /// Rows that broke the contract.
    pub fn invalid_count(&self) -> u64 {
        self.invalid.values().sum()
    }

    /// The bad rows by reason, `reason: n, ...` (empty when none).
    pub fn invalid_summary(&self) -> String {
        let by: Vec<String> = self
            .invalid
            .iter()
            .map(|(r, n)| format!("{r}: {n}"))
            .collect();
        by.join(", ")
    }

    fn record_invalid(&mut self, e: &CsvError, log: bool) {
        let reason = match e {
            CsvError::BadRow { reason, .. } => *reason,
            _ => "invalid",
        };
        *self.invalid.entry(reason).or_default() += 1;
        if self.invalid_rows.len() < REPORTED_ROWS {
            if log {
                tracing::warn!("skipped {e}");
            }
            self.invalid_rows.push(e.to_string());
        }
    }
}

/// Why a replay failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The file could not be read.
    #[error(transparent)]
    Csv(#[from] CsvError),
    /// Rows broke the event contract and `skip_invalid` was off.
    #[error("{path}: {} row(s) break the event contract ({}); fix them or rerun with --skip-invalid:\n{}{}", stats.invalid_count(), stats.invalid_summary(), stats.invalid_rows.join("\n"), if stats.invalid_count() > stats.invalid_rows.len() as u64 { "\n..." } else { "" })]
    InvalidRows {
        /// File path.
        path: String,
        /// The counts, with the first bad rows.
        stats: Box<ReplayStats>,
    },
}

pub use crate::source::time::parse_date_ms;

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

    /// Appends `row`, leaving in its place a row whose buffers can be refilled.
    fn push_owned(&mut self, row: &mut OwnedTxRow) {
        if self.len == self.rows.len() {
            self.push(&row.view());
        } else {
            std::mem::swap(&mut self.rows[self.len], row);
            self.len += 1;
        }
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
        self.engine.prefetch(&EventView::of_row(row));
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
        if let Some(ticket) = self.engine.update(&EventView::of_row(row), out) {
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
) -> Result<ReplayStats, ReplayError> {
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
///
/// Every row is checked against the live event contract; a bad row fails the
/// replay (after the whole file was read, listing the first bad rows with
/// their lines) unless `skip_invalid` is set. Rows out of time order are put
/// back in order through a buffer of `reorder_rows` rows (ties keep file
/// order); rows at or after `to_ms` are counted, not replayed, and reading goes
/// on to the end of the file.
pub fn replay_blocks(
    input: &Path,
    set: Arc<FeatureSet>,
    opts: &ReplayOptions,
    mut emit: impl FnMut(&ReplayBlock),
    mut progress: impl FnMut(u64),
) -> Result<ReplayStats, ReplayError> {
    let mut reader = HandbookReader::open_with(input, opts.input.contract.clone())?;
    let mut block = ReplayBlock::new(set.len());
    let mut replayer = Replayer::new(set, opts);
    let mut reorder = Reorder::new(opts.input.reorder_rows);
    let mut stats = ReplayStats::default();
    let mut recent = RecentIds::new(opts.input.dedup_window);
    let started = std::time::Instant::now();
    let mut eof = false;
    while !(eof && reorder.is_empty()) {
        let read_at = std::time::Instant::now();
        block.clear();
        while block.len() < ReplayBlock::ROWS {
            if let Some(row) = reorder.ready(eof) {
                block.push_owned(row);
                continue;
            }
            if eof {
                break;
            }
            match reader.next_row() {
                Ok(Some(row)) => {
                    stats.read += 1;
                    let ts_ms = row.ts_ms;
                    if !recent.insert(key_hash(0, row.transaction_id.as_bytes())) {
                        let id = row.transaction_id.to_string();
                        let e = duplicate(&reader, &id, opts.input.dedup_window);
                        stats.record_invalid(&e, opts.input.skip_invalid);
                    } else if ts_ms >= opts.to_ms {
                        stats.after_to += 1;
                    } else if let Err(released_ms) = reorder.push(&row) {
                        let e = out_of_order(&reader, ts_ms, released_ms, opts.input.reorder_rows);
                        stats.record_invalid(&e, opts.input.skip_invalid);
                    }
                }
                Ok(None) => eof = true,
                Err(e @ CsvError::BadRow { .. }) => {
                    stats.read += 1;
                    stats.record_invalid(&e, opts.input.skip_invalid);
                }
                Err(e) => return Err(e.into()),
            }
        }
        stats.decode += read_at.elapsed();
        if block.is_empty() {
            continue;
        }
        replayer.step_block(&mut block, opts.from_ms);
        stats.first_ms = stats.first_ms.or(Some(block.rows[0].ts_ms()));
        stats.rows += block.len() as u64;
        stats.emitted += block.emit[..block.len()].iter().filter(|&&e| e).count() as u64;
        emit(&block);
        progress(reader.bytes_read());
    }
    stats.labels = replayer.labels;
    stats.total = started.elapsed();
    if stats.invalid_count() > 0 && opts.input.skip_invalid {
        tracing::warn!(
            "{}: skipped {} invalid row(s) ({})",
            reader.path(),
            stats.invalid_count(),
            stats.invalid_summary()
        );
    }
    if stats.invalid_count() > 0 && !opts.input.skip_invalid {
        return Err(ReplayError::InvalidRows {
            path: reader.path().to_string(),
            stats: Box::new(stats),
        });
    }
    Ok(stats)
}

/// The error for the row just read, whose id `id` a row before it had. Live, a
/// repeated event id is not decided again and leaves the state as it was: a
/// replay that counted the row would give the rows after it other features.
fn duplicate(reader: &HandbookReader, id: &str, window: usize) -> CsvError {
    CsvError::BadRow {
        path: reader.path().to_string(),
        line: reader.line(),
        reason: "duplicate",
        message: crate::source::event::redact_pans(&format!(
            "TRANSACTION_ID '{id}' repeats one of the {window} rows before it; live, a repeated event_id is not decided again (processing.dedup_window_events)"
        )),
    }
}

/// The error for the row just read, at `ts_ms`, after a row at `released_ms` was replayed.
fn out_of_order(reader: &HandbookReader, ts_ms: i64, released_ms: i64, held: usize) -> CsvError {
    let time = crate::source::time::rfc3339_ms;
    CsvError::BadRow {
        path: reader.path().to_string(),
        line: reader.line(),
        reason: "out_of_order",
        message: format!(
            "event time {} is before {}, already replayed: the file is out of time order by more than the {held} rows a replay holds back (--reorder-rows)",
            time(ts_ms),
            time(released_ms),
        ),
    }
}

/// Rows held back, in event-time order, until `cap` newer rows have arrived,
/// so that input out of order by fewer than `cap` rows is replayed in order.
/// Row buffers are recycled, so a steady replay allocates nothing here.
struct Reorder {
    held: VecDeque<OwnedTxRow>,
    spare: Vec<OwnedTxRow>,
    cap: usize,
    /// Event time of the last row released to the engine.
    released_ms: i64,
}

impl Reorder {
    fn new(cap: usize) -> Self {
        Self {
            held: VecDeque::new(),
            spare: Vec::new(),
            cap,
            released_ms: i64::MIN,
        }
    }

    fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Holds `row` in order; `Err` with the event time of the last released
    /// row when `row` is older (it can no longer be replayed in order).
    fn push(&mut self, row: &TxRow<'_>) -> Result<(), i64> {
        if row.ts_ms < self.released_ms {
            return Err(self.released_ms);
        }
        let mut owned = self.spare.pop().unwrap_or_default();
        owned.fill(row);
        // In-order rows (the usual case) go to the back; others after the
        // last held row of the same or an earlier time.
        let at = match self.held.back() {
            Some(b) if b.ts_ms() > row.ts_ms => {
                self.held.partition_point(|h| h.ts_ms() <= row.ts_ms)
            }
            _ => self.held.len(),
        };
        self.held.insert(at, owned);
        Ok(())
    }

    /// The next row to replay: the oldest held, once more than `cap` are held
    /// (or, at the end of the input, any). It must be taken before the next call.
    fn ready(&mut self, eof: bool) -> Option<&mut OwnedTxRow> {
        if self.held.len() <= self.cap && !eof {
            return None;
        }
        let row = self.held.pop_front()?;
        self.released_ms = row.ts_ms();
        self.spare.push(row);
        self.spare.last_mut()
    }
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

    /// A repeated TRANSACTION_ID is a bad row (`duplicate`, with its line), as
    /// live a repeated event_id is not decided again: skipped, it leaves the
    /// features of the rows after it as a file without it gives them; a
    /// repeat beyond the window is an event of its own. Each case: the ids of
    /// the rows, the window, and the lines of the duplicates.
    #[test]
    fn repeated_transaction_ids_are_rejected_as_live_ignores_them() {
        let cases: [(&[&str], usize, &[u64]); 5] = [
            (&["0", "0", "1"], 10, &[3]),
            (&["a", "b", "a", "a"], 10, &[4, 5]),
            (&["0", "1", "2", "0"], 2, &[]),
            (&["0", "1", "0", "1"], 0, &[]),
            (&["x", "y", "z", "y"], 3, &[5]),
        ];
        let set = Arc::new(load_feature_set("default").unwrap());
        let dir = tempfile::tempdir().unwrap();
        let run = |ids: &[&str], window: usize, skip: bool| {
            let path = dir.path().join("tx.csv");
            let mut csv = String::from(
                "TRANSACTION_ID,TX_DATETIME,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT,TX_FRAUD\n",
            );
            for (k, id) in ids.iter().enumerate() {
                writeln!(csv, "{id},2018-04-01 10:0{k}:00,c1,t1,1{k}.00,0").unwrap();
            }
            std::fs::write(&path, csv).unwrap();
            let mut opts = ReplayOptions::default();
            opts.input.skip_invalid = skip;
            opts.input.dedup_window = window;
            let mut sums = Vec::new();
            let slot = set.index_of("account.amount_sum_24h").unwrap();
            let stats = replay(&path, set.clone(), &opts, |_, f| sums.push(f[slot]), |_| {});
            (stats, sums)
        };
        for (ids, window, dup_lines) in cases {
            let (stats, sums) = run(ids, window, true);
            let stats = stats.unwrap();
            assert_eq!(
                stats.invalid.get("duplicate").copied().unwrap_or(0),
                dup_lines.len() as u64,
                "{ids:?}"
            );
            // The sums a file without the repeats gives (amounts are 10 + the row's index).
            let mut want = Vec::new();
            let mut sum = 0.0;
            for (k, _) in ids.iter().enumerate() {
                if !dup_lines.contains(&(k as u64 + 2)) {
                    sum += 10.0 + k as f64;
                    want.push(sum);
                }
            }
            assert_eq!(sums, want, "{ids:?} window {window}");
            if let Some(first) = dup_lines.first() {
                let err = run(ids, window, false).0.unwrap_err().to_string();
                assert!(
                    err.contains(&format!("tx.csv:{first}: duplicate: TRANSACTION_ID")),
                    "{err}"
                );
            }
        }
    }
}
