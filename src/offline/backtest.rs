//! `fraudstream backtest`: the full engine (features, rules, model, policy) over
//! a transactions file, exactly as live, with detection metrics and reports.

use super::day_range;
pub use super::report::{BacktestReport, Comparison, Confusion, Day, PatternMetrics};
use crate::decision::{Action, Decider, EventView, Outcome};
use crate::features::load_feature_set;
use crate::model::evaluate::{auc_roc, average_precision, card_precision_at_k, CardScore};
use crate::model::{Model, ModelStore};
use crate::offline::replay::{replay_blocks, InputOptions, ReplayOptions, ReplayStats};
use crate::rules::reload::{RuleStore, RulesSource};
use crate::source::handbook::TxRow;
use crate::state::key_hash;
use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What to run.
#[derive(Debug, Clone, Default)]
pub struct BacktestOptions {
    /// First day (YYYY-MM-DD).
    pub from: String,
    /// Last day (inclusive).
    pub to: String,
    /// Champion model file.
    pub model: Option<PathBuf>,
    /// Rules directory (none: no rules, policy defaults).
    pub rules: Option<PathBuf>,
    /// Feature set (default: the model's).
    pub feature_set: Option<String>,
    /// Only these TRANSACTION_IDs count (one per line, or a CSV or CSV.gz whose first column holds them).
    pub ids: Option<PathBuf>,
    /// Days after which labels are fed back.
    pub label_delay_days: u32,
    /// Writes `TRANSACTION_ID,score,action,reasons` per transaction.
    pub scores_out: Option<PathBuf>,
    /// Writes plots and `summary.json`.
    pub report_dir: Option<PathBuf>,
    /// A second model to compare with (same data, same rules unless `compare_rules`).
    pub compare_model: Option<PathBuf>,
    /// A second rules directory to compare with.
    pub compare_rules: Option<PathBuf>,
    /// How the transactions file is read.
    pub input: InputOptions,
}

/// Per pattern (`scenarios[i]` of each fraud row; genuine rows' codes are
/// ignored): its frauds, how many `alerted`, and AUC and AP against all genuine rows.
pub fn by_pattern(
    scores: &[f64],
    labels: &[bool],
    scenarios: &[u8],
    alerted: &[bool],
) -> Vec<PatternMetrics> {
    let genuine: Vec<f64> = (0..scores.len())
        .filter(|&i| !labels[i])
        .map(|i| scores[i])
        .collect();
    let mut codes: Vec<u8> = (0..scores.len())
        .filter(|&i| labels[i])
        .map(|i| scenarios[i])
        .collect();
    codes.sort_unstable();
    codes.dedup();
    codes
        .into_iter()
        .map(|code| {
            let rows: Vec<usize> = (0..scores.len())
                .filter(|&i| labels[i] && scenarios[i] == code)
                .collect();
            let mut s = genuine.clone();
            s.extend(rows.iter().map(|&i| scores[i]));
            let l: Vec<bool> = (0..s.len()).map(|k| k >= genuine.len()).collect();
            PatternMetrics {
                scenario: code,
                frauds: rows.len() as u64,
                alerted: rows.iter().filter(|&&i| alerted[i]).count() as u64,
                auc: auc_roc(&s, &l),
                average_precision: average_precision(&s, &l),
            }
        })
        .collect()
}

/// The transaction ids of an `--ids` file, as text (`007` and `7` are two
/// ids, as they are two rows' `TRANSACTION_ID`s): one per line, or a CSV whose
/// first column holds them; a `TRANSACTION_ID` header, a byte-order mark, CRLF,
/// double quotes, spaces around an id and blank lines are read as a CSV reader
/// reads them; gzipped when the name ends in `.gz`.
fn read_ids(path: &Path) -> anyhow::Result<HashSet<Box<str>>> {
    let shown = path.display();
    let file = std::fs::File::open(path).map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;
    let raw: Box<dyn Read> = if path.to_string_lossy().ends_with(".gz") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(std::io::BufReader::new(raw));
    let mut ids = HashSet::new();
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;
        let id = record.get(0).unwrap_or("");
        if id.is_empty() || (i == 0 && id.eq_ignore_ascii_case("TRANSACTION_ID")) {
            continue;
        }
        ids.insert(Box::from(id));
    }
    if ids.is_empty() {
        anyhow::bail!("{shown}: no transaction id (expected one per line, or a CSV whose first column is TRANSACTION_ID)");
    }
    Ok(ids)
}

/// Fails when none of the `wanted` ids of `--ids` was a row decided from
/// `from` to `to`, and warns of those that were not: a backtest over the
/// wrong rows must not pass for one over the rows meant.
fn check_ids_found(opts: &BacktestOptions, wanted: usize, found: u64) -> anyhow::Result<()> {
    let path = opts
        .ids
        .as_ref()
        .map_or(String::new(), |p| p.display().to_string());
    let missing = wanted as u64 - found.min(wanted as u64);
    let (from, to) = (&opts.from, &opts.to);
    if found == 0 {
        anyhow::bail!(
            "{path}: none of its {wanted} ids is the TRANSACTION_ID of a valid row from {from} to {to}: nothing was decided"
        );
    }
    if missing > 0 {
        tracing::warn!(
            "{path}: {missing} of its {wanted} ids are not the TRANSACTION_ID of a valid row from {from} to {to}: they were not decided"
        );
    }
    Ok(())
}

struct Engine {
    decider: Decider,
    version: (String, String),
}

fn engine(
    set: &Arc<crate::features::FeatureSet>,
    model: &Option<PathBuf>,
    rules: &Option<PathBuf>,
) -> anyhow::Result<Engine> {
    let store = match rules {
        Some(dir) => RuleStore::load(RulesSource::Dir(dir.clone()), set.clone())?,
        None => RuleStore::load(RulesSource::Files(Vec::new()), set.clone())?,
    };
    let rules_version = store.current().version.clone();
    let models = Arc::new(ModelStore::load(model.clone(), None, set.clone())?);
    let model_version = models
        .champion()
        .map_or("none".to_string(), |m| m.version.clone());
    let decider = Decider::new(Arc::new(store), set.len(), None).with_models(models);
    Ok(Engine {
        decider,
        version: (model_version, rules_version),
    })
}

/// Runs the backtest over `input`. `progress` gets uncompressed bytes read.
pub fn backtest(
    input: &Path,
    opts: &BacktestOptions,
    progress: impl FnMut(u64),
) -> anyhow::Result<BacktestReport> {
    let (from_ms, to_ms) = day_range(&opts.from, &opts.to).map_err(anyhow::Error::msg)?;
    let set_name = match (&opts.feature_set, &opts.model) {
        (Some(s), _) => s.clone(),
        (None, Some(m)) => peek_feature_set(m)?,
        (None, None) => "default".to_string(),
    };
    let set = Arc::new(load_feature_set(&set_name)?);
    let mut a = engine(&set, &opts.model, &opts.rules)?;
    let mut b = match (&opts.compare_model, &opts.compare_rules) {
        (None, None) => None,
        (m, r) => Some(engine(
            &set,
            &m.clone().or(opts.model.clone()),
            &r.clone().or(opts.rules.clone()),
        )?),
    };
    let ids = opts.ids.as_ref().map(|p| read_ids(p)).transpose()?;
    let mut scores_out = opts
        .scores_out
        .as_ref()
        .map(|p| ScoresOut::create(p))
        .transpose()?;
    let mut tally = Tally::new(&a, b.as_ref());
    let replay_opts = ReplayOptions {
        from_ms,
        to_ms,
        label_delay_ms: i64::from(opts.label_delay_days) * 86_400_000,
        input: opts.input.clone(),
        ..ReplayOptions::default()
    };
    // Blocks of rows: the feature state and the rules and trees each stay in
    // cache for a whole block, and the models score the block's rows together.
    let (mut chosen, mut matrix) = (Vec::new(), Vec::new());
    let stats = replay_blocks(
        input,
        set.clone(),
        &replay_opts,
        |block| {
            chosen.clear();
            matrix.clear();
            for (k, row, features) in block.rows() {
                let wanted = ids
                    .as_ref()
                    .is_none_or(|ids| ids.contains(row.transaction_id));
                if wanted {
                    chosen.push(k);
                    matrix.extend_from_slice(features);
                }
            }
            for e in std::iter::once(&mut a).chain(b.as_mut()) {
                e.decider.score_block(&matrix, chosen.len());
            }
            for (j, &k) in chosen.iter().enumerate() {
                let (row, features) = block.row(k);
                let row = &row;
                let subject = EventView::of_row(row);
                // Reasons are only read when they are written out.
                let explain = scores_out.is_some();
                let decide = |e: &mut Engine| -> Outcome {
                    e.decider.features_mut().copy_from_slice(features);
                    e.decider.assess_scored(j, &subject, explain)
                };
                let o = decide(&mut a);
                let ob = b.as_mut().map(decide);
                tally.record(row, o, ob);
                if let Some(out) = scores_out.as_mut() {
                    out.write(row, o, &a.decider);
                }
            }
        },
        progress,
    )?;
    if let Some(out) = scores_out {
        out.finish()?;
    }
    let report = tally.finish(&stats);
    if let Some(ids) = &ids {
        check_ids_found(opts, ids.len(), report.transactions)?;
    }
    if let Some(dir) = &opts.report_dir {
        super::report::write(dir, &report)?;
    }
    Ok(report)
}

/// `--scores-out`: `TRANSACTION_ID,score,action,reasons`, one line per decision.
struct ScoresOut {
    w: std::io::BufWriter<std::fs::File>,
    /// The reason codes of the decision being written (reused).
    reasons: String,
    /// The first write that failed; nothing is written after it.
    error: Option<std::io::Error>,
}

impl ScoresOut {
    fn create(path: &Path) -> std::io::Result<ScoresOut> {
        let mut w = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
        writeln!(w, "TRANSACTION_ID,score,action,reasons")?;
        Ok(ScoresOut {
            w,
            reasons: String::new(),
            error: None,
        })
    }

    /// Writes the line of `row`, decided `o` by `decider`.
    fn write(&mut self, row: &TxRow, o: Outcome, decider: &Decider) {
        if self.error.is_some() {
            return;
        }
        decider.reason_codes(&mut self.reasons);
        let line = writeln!(
            self.w,
            "{},{:.6},{},{}",
            row.transaction_id,
            o.score,
            o.action.as_str(),
            self.reasons
        );
        self.error = line.err();
    }

    /// The first write error, or the flush's.
    fn finish(mut self) -> std::io::Result<()> {
        match self.error {
            Some(e) => Err(e),
            None => self.w.flush(),
        }
    }
}

/// The backtest's decisions added up as they are made.
struct Tally {
    report: BacktestReport,
    cards: Vec<CardScore>,
    days: BTreeMap<i64, Day>,
    confusion: [Confusion; 3],
    /// With a second engine: what changes, and its scores.
    comparison: Option<Comparison>,
    b_scores: Vec<f64>,
    b_cards: Vec<CardScore>,
}

impl Tally {
    fn new(a: &Engine, b: Option<&Engine>) -> Tally {
        Tally {
            report: BacktestReport {
                model_version: a.version.0.clone(),
                rules_version: a.version.1.clone(),
                ..Default::default()
            },
            cards: Vec::new(),
            days: BTreeMap::new(),
            confusion: Default::default(),
            comparison: b.map(|e| Comparison {
                against: format!("model {}, rules {}", e.version.0, e.version.1),
                ..Default::default()
            }),
            b_scores: Vec::new(),
            b_cards: Vec::new(),
        }
    }

    /// Counts `row`, decided `o` (and `ob` by the second engine).
    fn record(&mut self, row: &TxRow, o: Outcome, ob: Option<Outcome>) {
        let report = &mut self.report;
        let day = row.ts_ms.div_euclid(86_400_000);
        let card = key_hash(0, row.customer_id.as_bytes());
        let card_score = |score| CardScore {
            day,
            card,
            score,
            fraud: row.fraud,
        };
        report.transactions += 1;
        report.frauds += u64::from(row.fraud);
        report.scores.push(o.score);
        report.labels.push(row.fraud);
        report.scenarios.push(row.scenario);
        self.cards.push(card_score(o.score));
        count(&mut self.confusion[o.action as usize], row.fraud);
        let d = self.days.entry(day).or_default();
        d.transactions += 1;
        d.frauds += u64::from(row.fraud);
        let alert = o.action != Action::Allow;
        report.alerted.push(alert);
        d.alerts += u64::from(alert);
        d.frauds_alerted += u64::from(alert && row.fraud);
        if let (Some(ob), Some(cmp)) = (ob, self.comparison.as_mut()) {
            self.b_scores.push(ob.score);
            self.b_cards.push(card_score(ob.score));
            if ob.action != o.action {
                let changed = format!("{}->{}", o.action.as_str(), ob.action.as_str());
                count(cmp.changed.entry(changed).or_default(), row.fraud);
            }
        }
    }

    /// The report: the counts, and the metrics over every score.
    fn finish(self, stats: &ReplayStats) -> BacktestReport {
        let mut report = self.report;
        for (action, c) in Action::ALL.iter().zip(self.confusion) {
            if c.fraud + c.legit > 0 {
                report.confusion.insert(action.as_str().to_string(), c);
            }
        }
        report.replayed_rows = stats.rows;
        report.decode_seconds = stats.decode.as_secs_f64();
        report.engine_seconds = (stats.total - stats.decode).as_secs_f64();
        report.auc = auc_roc(&report.scores, &report.labels);
        report.average_precision = average_precision(&report.scores, &report.labels);
        report.card_precision_at_100 = card_precision_at_k(&self.cards, 100);
        report.by_pattern = by_pattern(
            &report.scores,
            &report.labels,
            &report.scenarios,
            &report.alerted,
        );
        report.daily = self
            .days
            .into_iter()
            .map(|(day, mut d)| {
                let (y, m, dd) = crate::source::time::civil_from_days(day);
                d.date = format!("{y:04}-{m:02}-{dd:02}");
                d
            })
            .collect();
        if let Some(mut cmp) = self.comparison {
            cmp.auc = auc_roc(&self.b_scores, &report.labels);
            cmp.average_precision = average_precision(&self.b_scores, &report.labels);
            cmp.card_precision_at_100 = card_precision_at_k(&self.b_cards, 100);
            report.comparison = Some(cmp);
        }
        report
    }
}

/// Counts one transaction, fraudulent or not, in `c`.
fn count(c: &mut Confusion, fraud: bool) {
    if fraud {
        c.fraud += 1
    } else {
        c.legit += 1
    }
}

/// The feature set a model file was trained on, without validating the model.
fn peek_feature_set(path: &Path) -> anyhow::Result<String> {
    #[derive(serde::Deserialize)]
    struct Head {
        feature_set: String,
    }
    let text =
        std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let head: Head = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{}: not a model file: {e}", path.display()))?;
    // Validate fully against that set before use.
    let set = load_feature_set(&head.feature_set)?;
    Model::load(path, &set)?;
    Ok(head.feature_set)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ids are text as the rows' TRANSACTION_IDs are (`tx-1`, `007` apart
    /// from `7`), read through a byte-order mark, CRLF, a header, quotes,
    /// spaces and blank lines; a file with none is an error.
    #[test]
    fn ids_files_are_read_as_text_in_any_common_layout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ids.csv");
        let text = "\u{feff}TRANSACTION_ID,other\r\ntx-1,a\r\n\r\n 007 \r\n\"tx 2\",b\r\n7";
        std::fs::write(&path, text).unwrap();
        let ids = read_ids(&path).unwrap();
        let mut got: Vec<&str> = ids.iter().map(|id| &**id).collect();
        got.sort_unstable();
        assert_eq!(got, ["007", "7", "tx 2", "tx-1"]);
        std::fs::write(&path, "TRANSACTION_ID\n\n").unwrap();
        let e = read_ids(&path).unwrap_err().to_string();
        assert!(e.contains("no transaction id"), "{e}");
    }

    /// `--ids` decides exactly the listed rows, whatever their ids look like,
    /// and fails when none of them is in the file's range.
    #[test]
    fn a_backtest_with_ids_decides_exactly_those_rows() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("tx.csv");
        let mut csv =
            String::from("TRANSACTION_ID,TX_DATETIME,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT,TX_FRAUD\n");
        for i in 0..40 {
            csv.push_str(&format!(
                "tx-{i:03},2018-04-{:02} 10:00:00,c{},t{},{}.50,{}\n",
                1 + i / 10,
                i % 3,
                i % 5,
                10 + i,
                u8::from(i % 7 == 0)
            ));
        }
        std::fs::write(&input, csv).unwrap();
        let ids = dir.path().join("ids.csv");
        let run = |listed: &str| {
            std::fs::write(&ids, listed).unwrap();
            let opts = BacktestOptions {
                from: "2018-04-02".into(),
                to: "2018-04-03".into(),
                ids: Some(ids.clone()),
                label_delay_days: 7,
                ..BacktestOptions::default()
            };
            backtest(&input, &opts, |_| {})
        };
        let report = run("\u{feff}TRANSACTION_ID\r\ntx-010\r\ntx-025\r\ntx-039\r\n").unwrap();
        assert_eq!(
            report.transactions, 2,
            "tx-010 and tx-025; tx-039 is after --to"
        );
        let e = run("10\n25\n").unwrap_err().to_string();
        assert!(e.contains("none of its 2 ids"), "{e}");
    }

    #[test]
    fn each_pattern_is_measured_against_all_genuine_payments_only() {
        let scores = [0.1, 0.4, 0.35, 0.8, 0.2, 0.9];
        let labels = [false, false, true, true, true, false];
        // A genuine row's code (2 here) is ignored.
        let scenarios = [0, 2, 1, 1, 2, 0];
        let alerted = [false, false, true, false, true, true];
        let m = by_pattern(&scores, &labels, &scenarios, &alerted);
        let expected = [
            // 0.35 beats one genuine of three, 0.8 two: AUC 3/6. Ranked: 0.9 g,
            // 0.8 f (precision 1/2), 0.4 g, 0.35 f (2/4): AP 0.5.
            PatternMetrics {
                scenario: 1,
                frauds: 2,
                alerted: 1,
                auc: 0.5,
                average_precision: 0.5,
            },
            // 0.2 beats 0.1 only; ranked third.
            PatternMetrics {
                scenario: 2,
                frauds: 1,
                alerted: 1,
                auc: 1.0 / 3.0,
                average_precision: 1.0 / 3.0,
            },
        ];
        assert_eq!(m.len(), expected.len());
        for (got, want) in m.iter().zip(&expected) {
            assert_eq!(
                (got.scenario, got.frauds, got.alerted),
                (want.scenario, want.frauds, want.alerted)
            );
            assert!((got.auc - want.auc).abs() < 1e-12, "{got:?}");
            assert!(
                (got.average_precision - want.average_precision).abs() < 1e-12,
                "{got:?}"
            );
        }
    }
}
