//! Detection metrics with the handbook's definitions: AUC ROC, Average Precision
//! and Card Precision@k.

/// Area under the ROC curve (ties count half), or NaN with one class only.
pub fn auc_roc(scores: &[f64], labels: &[bool]) -> f64 {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let (mut rank_sum, mut pos, mut i) = (0.0, 0usize, 0usize);
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            if labels[k] {
                rank_sum += avg_rank;
                pos += 1;
            }
        }
        i = j + 1;
    }
    let neg = labels.len() - pos;
    if pos == 0 || neg == 0 {
        return f64::NAN;
    }
    (rank_sum - (pos * (pos + 1)) as f64 / 2.0) / (pos as f64 * neg as f64)
}

/// Average precision: sum over thresholds of (recall step) x precision, as scikit-learn.
pub fn average_precision(scores: &[f64], labels: &[bool]) -> f64 {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let total_pos = labels.iter().filter(|&&l| l).count();
    if total_pos == 0 {
        return f64::NAN;
    }
    let (mut tp, mut fp, mut ap, mut prev_recall) = (0usize, 0usize, 0.0, 0.0);
    let mut i = 0;
    while i < idx.len() {
        // All samples with the same score form one threshold.
        let mut j = i;
        while j < idx.len() && scores[idx[j]] == scores[idx[i]] {
            if labels[idx[j]] {
                tp += 1;
            } else {
                fp += 1;
            }
            j += 1;
        }
        let recall = tp as f64 / total_pos as f64;
        ap += (recall - prev_recall) * tp as f64 / (tp + fp) as f64;
        prev_recall = recall;
        i = j;
    }
    ap
}

/// One scored transaction for Card Precision@k.
#[derive(Debug, Clone, Copy)]
pub struct CardScore {
    /// Day index.
    pub day: i64,
    /// Card (customer) id, hashed.
    pub card: u64,
    /// Model score.
    pub score: f64,
    /// Whether the transaction was fraud.
    pub fraud: bool,
}

/// Card Precision@k: per day, each card's highest score; rank cards, leaving out
/// cards found compromised (a fraud in the top k) on earlier days; the share of
/// the top k that had a fraud that day; mean over days.
pub fn card_precision_at_k(rows: &[CardScore], k: usize) -> f64 {
    use std::collections::{BTreeMap, HashMap, HashSet};
    let mut by_day: BTreeMap<i64, HashMap<u64, (f64, bool)>> = BTreeMap::new();
    for r in rows {
        let e = by_day
            .entry(r.day)
            .or_default()
            .entry(r.card)
            .or_insert((f64::NEG_INFINITY, false));
        e.0 = e.0.max(r.score);
        e.1 |= r.fraud;
    }
    let mut detected: HashSet<u64> = HashSet::new();
    let mut precisions = Vec::new();
    for cards in by_day.values() {
        let mut ranked: Vec<(u64, f64, bool)> = cards
            .iter()
            .filter(|(c, _)| !detected.contains(*c))
            .map(|(c, (s, f))| (*c, *s, *f))
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let top = &ranked[..k.min(ranked.len())];
        let hits = top.iter().filter(|c| c.2).count();
        precisions.push(hits as f64 / k as f64);
        detected.extend(top.iter().filter(|c| c.2).map(|c| c.0));
    }
    if precisions.is_empty() {
        f64::NAN
    } else {
        precisions.iter().sum::<f64>() / precisions.len() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_and_ap_match_hand_computed_values() {
        let s = [0.1, 0.4, 0.35, 0.8];
        let l = [false, false, true, true];
        assert!((auc_roc(&s, &l) - 0.75).abs() < 1e-12);
        // scikit-learn: average_precision_score([0,0,1,1],[0.1,0.4,0.35,0.8]) = 0.8333
        assert!((average_precision(&s, &l) - 0.833_333_333_333_333_4).abs() < 1e-12);
        assert!((auc_roc(&[0.5, 0.5], &[true, false]) - 0.5).abs() < 1e-12);
        assert!(auc_roc(&[0.5], &[true]).is_nan());
    }

    #[test]
    fn card_precision_leaves_out_cards_already_detected() {
        let rows = [
            CardScore {
                day: 0,
                card: 1,
                score: 0.9,
                fraud: true,
            },
            CardScore {
                day: 0,
                card: 2,
                score: 0.2,
                fraud: false,
            },
            CardScore {
                day: 1,
                card: 1,
                score: 0.9,
                fraud: true,
            },
            CardScore {
                day: 1,
                card: 3,
                score: 0.5,
                fraud: false,
            },
        ];
        // Day 0: top-1 is card 1 (fraud) = 1.0; day 1: card 1 is left out, top-1 is card 3 = 0.0.
        assert_eq!(card_precision_at_k(&rows, 1), 0.5);
    }
}
