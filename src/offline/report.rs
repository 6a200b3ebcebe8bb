//! Backtest reports: `summary.json` and SVG charts a person would look at.

use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

/// Transactions by action and label.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Confusion {
    /// Fraudulent transactions with this action.
    pub fraud: u64,
    /// Genuine transactions with this action.
    pub legit: u64,
}

/// One day of alerts.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Day {
    /// Date.
    pub date: String,
    /// Transactions.
    pub transactions: u64,
    /// Reviewed or blocked.
    pub alerts: u64,
    /// Frauds.
    pub frauds: u64,
    /// Frauds reviewed or blocked.
    pub frauds_alerted: u64,
}

/// How the comparison run's actions differ.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Comparison {
    /// What was compared (model and rules versions of B).
    pub against: String,
    /// AUC of B.
    pub auc: f64,
    /// Average precision of B.
    pub average_precision: f64,
    /// Card precision@100 of B.
    pub card_precision_at_100: f64,
    /// `"A->B"` action changes: frauds and genuine transactions.
    pub changed: BTreeMap<String, Confusion>,
}

/// Detection of one fraud pattern: its frauds against every genuine payment.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct PatternMetrics {
    /// The pattern's `TX_FRAUD_SCENARIO` code (0: frauds with no code).
    pub scenario: u8,
    /// Frauds of the pattern.
    pub frauds: u64,
    /// Of which reviewed or blocked.
    pub alerted: u64,
    /// AUC ROC of the decision score, these frauds against all genuine payments.
    pub auc: f64,
    /// Average precision, these frauds against all genuine payments.
    pub average_precision: f64,
}

/// The outcome of a backtest.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BacktestReport {
    /// Transactions evaluated.
    pub transactions: u64,
    /// Of which fraud.
    pub frauds: u64,
    /// Model version (or `none`).
    pub model_version: String,
    /// Ruleset version.
    pub rules_version: String,
    /// AUC ROC of the decision score.
    pub auc: f64,
    /// Average precision.
    pub average_precision: f64,
    /// Card precision@100.
    pub card_precision_at_100: f64,
    /// Actions against labels.
    pub confusion: BTreeMap<String, Confusion>,
    /// Per fraud pattern (`TX_FRAUD_SCENARIO`), in code order.
    pub by_pattern: Vec<PatternMetrics>,
    /// Per day.
    pub daily: Vec<Day>,
    /// The comparison run, if any.
    pub comparison: Option<Comparison>,
    /// Rows replayed through the engine (warm-up included).
    pub replayed_rows: u64,
    /// Seconds spent reading and decoding the file.
    pub decode_seconds: f64,
    /// Seconds spent in the engine (features, rules, model, policy) and the
    /// report's bookkeeping: the replay minus decoding.
    pub engine_seconds: f64,
    #[serde(skip)]
    pub(crate) scores: Vec<f64>,
    #[serde(skip)]
    pub(crate) labels: Vec<bool>,
    #[serde(skip)]
    pub(crate) scenarios: Vec<u8>,
    #[serde(skip)]
    pub(crate) alerted: Vec<bool>,
}

const W: f64 = 640.0;
const H: f64 = 420.0;
const PAD: f64 = 50.0;

/// A simple SVG chart with axes from 0..1 (or the given maxima).
struct Chart {
    svg: String,
    x_max: f64,
    y_max: f64,
}

impl Chart {
    fn new(title: &str, x_label: &str, y_label: &str, x_max: f64, y_max: f64) -> Self {
        let mut svg = String::new();
        let _ = write!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="20" text-anchor="middle" font-size="15">{title}</text>
<line x1="{PAD}" y1="{}" x2="{}" y2="{}" stroke="black"/>
<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{}" stroke="black"/>
<text x="{}" y="{}" text-anchor="middle">{x_label}</text>
<text x="14" y="{}" text-anchor="middle" transform="rotate(-90 14 {})">{y_label}</text>
"#,
            W / 2.0,
            H - PAD,
            W - PAD,
            H - PAD,
            H - PAD,
            W / 2.0,
            H - 12.0,
            H / 2.0,
            H / 2.0
        );
        for k in 0..=4 {
            let f = f64::from(k) / 4.0;
            let (x, y) = (PAD + f * (W - 2.0 * PAD), H - PAD - f * (H - 2.0 * PAD));
            let _ = writeln!(
                svg,
                r#"<text x="{x}" y="{}" text-anchor="middle">{}</text>"#,
                H - PAD + 16.0,
                fmt_tick(f * x_max)
            );
            let _ = writeln!(
                svg,
                r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
                PAD - 6.0,
                y + 4.0,
                fmt_tick(f * y_max)
            );
        }
        Self { svg, x_max, y_max }
    }

    fn point(&self, x: f64, y: f64) -> (f64, f64) {
        (
            PAD + x / self.x_max * (W - 2.0 * PAD),
            H - PAD - y / self.y_max * (H - 2.0 * PAD),
        )
    }

    fn line(&mut self, points: &[(f64, f64)], color: &str, label: &str, row: usize) {
        let mut d = String::new();
        for (i, &(x, y)) in points.iter().enumerate() {
            let (px, py) = self.point(x, y);
            let _ = write!(d, "{}{px:.1},{py:.1} ", if i == 0 { "M" } else { "L" });
        }
        let _ = writeln!(
            self.svg,
            r#"<path d="{d}" fill="none" stroke="{color}" stroke-width="2"/>"#
        );
        self.legend(color, label, row);
    }

    fn bars(&mut self, bars: &[(f64, f64, f64)], color: &str, label: &str, row: usize) {
        for &(x0, x1, y) in bars {
            let (px0, py) = self.point(x0, y);
            let (px1, base) = self.point(x1, 0.0);
            let _ = writeln!(
                self.svg,
                r#"<rect x="{px0:.1}" y="{py:.1}" width="{:.1}" height="{:.1}" fill="{color}" fill-opacity="0.6"/>"#,
                (px1 - px0).max(0.5),
                (base - py).max(0.0)
            );
        }
        self.legend(color, label, row);
    }

    fn legend(&mut self, color: &str, label: &str, row: usize) {
        let y = PAD + 10.0 + 16.0 * row as f64;
        let _ = writeln!(
            self.svg,
            r#"<rect x="{}" y="{}" width="12" height="12" fill="{color}"/><text x="{}" y="{}">{label}</text>"#,
            W - PAD - 170.0,
            y - 10.0,
            W - PAD - 152.0,
            y
        );
    }

    fn finish(mut self, path: &Path) -> std::io::Result<()> {
        self.svg.push_str("</svg>\n");
        std::fs::write(path, self.svg)
    }
}

fn fmt_tick(v: f64) -> String {
    if v >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// Points of the ROC curve and the precision-recall curve (at most ~500 each).
fn curves(scores: &[f64], labels: &[bool]) -> (Vec<(f64, f64)>, Vec<(f64, f64)>) {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let pos = labels.iter().filter(|&&l| l).count().max(1) as f64;
    let neg = (labels.len() as f64 - pos).max(1.0);
    let step = (idx.len() / 500).max(1);
    let (mut tp, mut fp) = (0.0, 0.0);
    let (mut roc, mut pr) = (vec![(0.0, 0.0)], Vec::new());
    for (k, &i) in idx.iter().enumerate() {
        if labels[i] {
            tp += 1.0
        } else {
            fp += 1.0
        }
        if k % step == 0 || k + 1 == idx.len() {
            roc.push((fp / neg, tp / pos));
            pr.push((tp / pos, tp / (tp + fp)));
        }
    }
    (roc, pr)
}

/// Writes `summary.json`, `roc.svg`, `precision_recall.svg`, `score_histogram.svg`
/// and `daily_alerts.svg` into `dir`.
pub fn write(dir: &Path, r: &BacktestReport) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("summary.json"), serde_json::to_string_pretty(r)?)?;
    let (roc, pr) = curves(&r.scores, &r.labels);
    let mut c = Chart::new(
        &format!("ROC (AUC {:.3})", r.auc),
        "false positive rate",
        "true positive rate",
        1.0,
        1.0,
    );
    c.line(&[(0.0, 0.0), (1.0, 1.0)], "#bbbbbb", "chance", 1);
    c.line(&roc, "#1f77b4", "model + rules", 0);
    c.finish(&dir.join("roc.svg"))?;
    let mut c = Chart::new(
        &format!("Precision-recall (AP {:.3})", r.average_precision),
        "recall",
        "precision",
        1.0,
        1.0,
    );
    c.line(&pr, "#d62728", "model + rules", 0);
    c.finish(&dir.join("precision_recall.svg"))?;
    let bins = 20;
    let mut hist = [vec![0.0; bins], vec![0.0; bins]];
    for (s, &l) in r.scores.iter().zip(&r.labels) {
        let b = ((s.clamp(0.0, 1.0) * bins as f64) as usize).min(bins - 1);
        hist[usize::from(l)][b] += 1.0;
    }
    // Each class normalised to its own total, so the rare class is visible.
    let mut c = Chart::new(
        "Score distribution by label",
        "score",
        "share of class",
        1.0,
        1.0,
    );
    for (k, (color, label)) in [("#2ca02c", "genuine"), ("#d62728", "fraud")]
        .into_iter()
        .enumerate()
    {
        let total: f64 = hist[k].iter().sum::<f64>().max(1.0);
        let bars: Vec<(f64, f64, f64)> = (0..bins)
            .map(|b| {
                (
                    b as f64 / bins as f64,
                    (b + 1) as f64 / bins as f64,
                    hist[k][b] / total,
                )
            })
            .collect();
        c.bars(&bars, color, label, k);
    }
    c.finish(&dir.join("score_histogram.svg"))?;
    let max_alerts = r
        .daily
        .iter()
        .map(|d| d.alerts.max(d.frauds))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let n = r.daily.len().max(1) as f64;
    let mut c = Chart::new(
        "Daily alerts (review or block)",
        "day of the period",
        "transactions",
        n,
        max_alerts * 1.1,
    );
    let alerts: Vec<(f64, f64, f64)> = r
        .daily
        .iter()
        .enumerate()
        .map(|(i, d)| (i as f64 + 0.1, i as f64 + 0.9, d.alerts as f64))
        .collect();
    c.bars(&alerts, "#ff7f0e", "alerts", 0);
    let caught: Vec<(f64, f64)> = r
        .daily
        .iter()
        .enumerate()
        .map(|(i, d)| (i as f64 + 0.5, d.frauds_alerted as f64))
        .collect();
    c.line(&caught, "#d62728", "frauds alerted", 1);
    let frauds: Vec<(f64, f64)> = r
        .daily
        .iter()
        .enumerate()
        .map(|(i, d)| (i as f64 + 0.5, d.frauds as f64))
        .collect();
    c.line(&frauds, "#7f7f7f", "frauds", 2);
    c.finish(&dir.join("daily_alerts.svg"))
}
