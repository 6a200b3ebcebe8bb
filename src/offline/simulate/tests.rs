//! The simulator: determinism, the file format, what each fraud pattern is, and
//! that genuine behaviour overlaps the frauds.

use super::catalog::{Channel, COUNTRIES};
use super::*;
use crate::model::evaluate::auc_roc;
use crate::source::handbook::HandbookReader;
use crate::source::time::parse_naive_datetime_ms;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

fn opts(seed: u64) -> SimOptions {
    SimOptions {
        days: 75,
        seed,
        customers: 2500,
        start: "2024-03-04".into(),
    }
}

/// Three runs (seeds) shared by the tests: properties must hold for each.
fn runs() -> &'static [Simulation] {
    static RUNS: OnceLock<Vec<Simulation>> = OnceLock::new();
    RUNS.get_or_init(|| (1..=3).map(|s| simulate(&opts(s)).unwrap()).collect())
}

fn csv(sim: &Simulation, columns: Columns) -> Vec<u8> {
    let mut out = Vec::new();
    sim.write_csv(&mut out, columns).unwrap();
    out
}

fn frauds_of(sim: &Simulation, pattern: Pattern) -> Vec<&Payment> {
    sim.payments
        .iter()
        .filter(|p| p.pattern == pattern)
        .collect()
}

fn mcc(sim: &Simulation, p: &Payment) -> u16 {
    let m = sim.world.terminal_merchant[p.terminal as usize];
    CATEGORIES[sim.world.merchants[m as usize].cat].mcc
}

fn country(sim: &Simulation, p: &Payment) -> u8 {
    let m = sim.world.terminal_merchant[p.terminal as usize];
    sim.world.merchants[m as usize].country
}

#[test]
fn same_options_give_the_same_bytes_and_another_seed_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.csv.gz"), dir.path().join("b.csv.gz"));
    simulate(&opts(1))
        .unwrap()
        .write_file(&a, Columns::Full)
        .unwrap();
    simulate(&opts(1))
        .unwrap()
        .write_file(&b, Columns::Full)
        .unwrap();
    let bytes = std::fs::read(&a).unwrap();
    assert!(bytes.len() > 1000);
    assert_eq!(bytes, std::fs::read(&b).unwrap());
    assert_eq!(csv(&runs()[0], Columns::Full), {
        let mut out = Vec::new();
        let mut gz = flate2::read::GzDecoder::new(&bytes[..]);
        std::io::Read::read_to_end(&mut gz, &mut out).unwrap();
        out
    });
    assert_ne!(
        csv(&runs()[0], Columns::Handbook),
        csv(&runs()[1], Columns::Handbook)
    );
}

#[test]
fn out_of_range_options_are_refused_with_the_flag() {
    for (o, flag) in [
        (SimOptions { days: 0, ..opts(1) }, "--days 0"),
        (
            SimOptions {
                customers: 5,
                ..opts(1)
            },
            "--customers 5",
        ),
        (
            SimOptions {
                start: "2024-13-01".into(),
                ..opts(1)
            },
            "--start 2024-13-01",
        ),
    ] {
        let e = simulate(&o).err().expect("refused").to_string();
        assert!(e.starts_with(flag), "{e}");
    }
}

#[test]
fn the_file_reads_back_in_the_handbook_format_with_consistent_columns() {
    let sim = &runs()[0];
    let start_ms = crate::offline::replay::parse_date_ms("2024-03-04").unwrap();
    let dir = tempfile::tempdir().unwrap();
    for columns in [Columns::Handbook, Columns::Full] {
        let path = dir.path().join("sim.csv");
        sim.write_file(&path, columns).unwrap();
        let mut reader = HandbookReader::open(&path).unwrap();
        let (mut n, mut last) = (0u64, i64::MIN);
        while let Some(row) = reader.next_row().unwrap() {
            assert_eq!(row.transaction_id, n.to_string());
            assert!(row.ts_ms >= last, "time order at row {n}");
            assert_eq!(row.fraud, row.scenario != 0);
            assert!(row.amount >= 0.5, "{}", row.amount);
            last = row.ts_ms;
            n += 1;
        }
        assert_eq!(n, sim.len() as u64);
        let text = std::fs::read_to_string(&path).unwrap();
        let width = if columns == Columns::Full { 15 } else { 9 };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split(',').collect();
            assert_eq!(f.len(), width, "{line}");
            let ms = parse_naive_datetime_ms(f[1]).unwrap().0;
            let secs: i64 = f[5].parse().unwrap();
            assert_eq!(ms - start_ms, secs * 1000, "{line}");
            assert_eq!(f[6].parse::<i64>().unwrap(), secs / 86_400, "{line}");
            if columns == Columns::Full {
                assert!(COUNTRIES.iter().any(|c| c.code == f[12]), "{line}");
                assert!(
                    CATEGORIES.iter().any(|c| c.mcc.to_string() == f[13]),
                    "{line}"
                );
                assert!(
                    ["pos", "contactless", "ecom", "atm"].contains(&f[14]),
                    "{line}"
                );
                // Addresses only online; devices online or from a phone wallet.
                assert!(f[11].is_empty() || f[14] == "ecom", "{line}");
                assert!(
                    f[10].is_empty() || matches!(f[14], "ecom" | "contactless"),
                    "{line}"
                );
                assert!(!f[9].is_empty(), "{line}");
            }
        }
    }
}

#[test]
fn fraud_is_under_one_percent_and_every_pattern_occurs() {
    for sim in runs() {
        let rate = sim.frauds() as f64 / sim.len() as f64;
        assert!((0.004..0.012).contains(&rate), "fraud rate {rate}");
        for c in sim.by_pattern() {
            assert!(c.frauds > 0 && c.cards > 0, "{c:?}");
            // No pattern is more than a third of the frauds.
            assert!(c.frauds * 3 < sim.frauds(), "{c:?} of {}", sim.frauds());
        }
    }
}

/// Rows of `pattern` grouped by card, in time order.
fn by_card(sim: &Simulation, pattern: Pattern) -> BTreeMap<u32, Vec<&Payment>> {
    let mut cards: BTreeMap<u32, Vec<&Payment>> = BTreeMap::new();
    for p in frauds_of(sim, pattern) {
        cards.entry(sim.card_id(p)).or_default().push(p);
    }
    cards
}

#[test]
fn card_testing_is_a_few_small_online_payments_within_two_hours() {
    for sim in runs() {
        for rows in by_card(sim, Pattern::CardTesting).values() {
            assert!(rows.len() <= 4);
            assert!(rows.last().unwrap().ts - rows[0].ts <= 2 * 3600);
            for p in rows {
                assert_eq!(p.channel, Channel::Ecom);
                assert!(p.cents <= 2000, "{}", p.cents);
            }
        }
    }
}

#[test]
fn account_takeover_buys_online_from_a_device_new_to_the_customer() {
    for sim in runs() {
        let rows = frauds_of(sim, Pattern::AccountTakeover);
        let mut seen: BTreeSet<(u32, u32)> = BTreeSet::new();
        let mut new_device = 0;
        for p in &sim.payments {
            if p.pattern == Pattern::AccountTakeover {
                new_device += usize::from(!seen.contains(&(p.customer, p.device)));
            } else if p.pattern == Pattern::Genuine {
                seen.insert((p.customer, p.device));
            }
        }
        assert!(rows.iter().all(|p| p.channel == Channel::Ecom));
        let share = new_device as f64 / rows.len() as f64;
        // Malware on the customer's own phone is the exception.
        assert!((0.7..0.97).contains(&share), "new device share {share}");
    }
}

#[test]
fn compromised_terminal_victims_had_their_cards_read_at_one_till_weeks_before() {
    for sim in runs() {
        let victims = by_card(sim, Pattern::CompromisedTerminal);
        // Tills each victim's card was read at (chip and PIN) in the 30 days before its first fraud.
        let mut readers: BTreeMap<u32, BTreeSet<u32>> = BTreeMap::new();
        for (&card, rows) in &victims {
            let first = rows[0].ts;
            for p in &sim.payments {
                let read = p.pattern == Pattern::Genuine
                    && p.channel == Channel::Pos
                    && (first - 30 * DAY..first).contains(&p.ts);
                if read && sim.card_id(p) == card {
                    readers.entry(p.terminal).or_default().insert(card);
                }
            }
        }
        // A few tills (the compromised ones) account for every victim: greedily
        // take the till that read the most victims not yet accounted for.
        let mut left: BTreeSet<u32> = victims.keys().copied().collect();
        let mut tills = 0;
        while let Some(best) = readers
            .values()
            .max_by_key(|cards| cards.intersection(&left).count())
            .filter(|cards| !cards.is_disjoint(&left))
        {
            left = left.difference(best).copied().collect();
            tills += 1;
        }
        assert!(left.is_empty(), "{} victims read at no till", left.len());
        assert!(
            tills * 4 <= victims.len(),
            "{tills} tills for {} victims",
            victims.len()
        );
        for rows in victims.values() {
            assert!(rows
                .iter()
                .all(|p| matches!(p.channel, Channel::Pos | Channel::Atm)));
        }
    }
}

#[test]
fn slow_drains_last_weeks_with_days_between_moderate_payments() {
    for sim in runs() {
        let end = 75 * DAY;
        for rows in by_card(sim, Pattern::SlowDrain).values() {
            for w in rows.windows(2) {
                assert!(w[1].ts - w[0].ts >= DAY, "{} s apart", w[1].ts - w[0].ts);
            }
            assert!(rows
                .iter()
                .all(|p| p.cents <= 15_000 && p.channel == Channel::Ecom));
            if rows[0].ts < end - 62 * DAY {
                assert!(rows.last().unwrap().ts - rows[0].ts >= 12 * DAY);
            }
        }
    }
}

#[test]
fn high_risk_bursts_are_at_least_three_payments_within_three_hours_at_high_risk_merchants() {
    for sim in runs() {
        for rows in by_card(sim, Pattern::HighRiskBurst).values() {
            assert!(rows.len() >= 3);
            assert!(rows
                .iter()
                .all(|p| [7995, 6051, 5947, 4814].contains(&mcc(sim, p))));
            // A card may be burst twice (tested, then sold); each burst is quick.
            assert!(rows.windows(3).any(|w| w[2].ts - w[0].ts <= 3 * 3600));
        }
    }
}

#[test]
fn bin_attacks_hit_many_cards_at_one_terminal_within_hours() {
    for sim in runs() {
        let mut by_terminal: BTreeMap<u32, Vec<&Payment>> = BTreeMap::new();
        for p in frauds_of(sim, Pattern::BinAttack) {
            by_terminal.entry(p.terminal).or_default().push(p);
        }
        // One shop may be attacked twice: attacks are hours apart at least.
        let attacks = by_terminal.values().flat_map(|rows| {
            rows.chunk_by(|a, b| b.ts - a.ts < 6 * 3600)
                .collect::<Vec<_>>()
        });
        for rows in attacks {
            let cards: BTreeSet<u32> = rows.iter().map(|p| sim.card_id(p)).collect();
            assert!(cards.len() >= 5, "{} cards", cards.len());
            assert!(rows.last().unwrap().ts - rows[0].ts <= 4 * 3600);
        }
    }
}

#[test]
fn cross_border_sprees_are_in_person_abroad() {
    for sim in runs() {
        for p in frauds_of(sim, Pattern::CrossBorderSpree) {
            let home = sim.world.customers[p.customer as usize].country;
            assert_ne!(country(sim, p), home);
            assert!(matches!(p.channel, Channel::Pos | Channel::Atm));
        }
    }
}

#[test]
fn a_card_with_fraud_is_replaced_within_three_weeks_of_its_last_fraud() {
    for sim in runs() {
        let mut last_fraud: BTreeMap<u32, i64> = BTreeMap::new();
        for p in sim
            .payments
            .iter()
            .filter(|p| p.pattern != Pattern::Genuine)
        {
            last_fraud.insert(sim.card_id(p), p.ts);
        }
        for p in &sim.payments {
            if let Some(&last) = last_fraud.get(&sim.card_id(p)) {
                assert!(
                    p.ts <= last + 16 * DAY,
                    "card used {} days after its fraud",
                    (p.ts - last) / DAY
                );
            }
        }
    }
}

/// Amounts of genuine payments and of frauds (of one pattern, or all).
fn amounts(sim: &Simulation, pattern: Option<Pattern>) -> (Vec<f64>, Vec<f64>) {
    let (mut genuine, mut fraud) = (Vec::new(), Vec::new());
    for p in &sim.payments {
        if p.pattern == Pattern::Genuine {
            genuine.push(f64::from(p.cents));
        } else if pattern.is_none_or(|q| q == p.pattern) {
            fraud.push(f64::from(p.cents));
        }
    }
    (genuine, fraud)
}

#[test]
fn no_amount_threshold_separates_fraud_from_genuine() {
    for sim in runs() {
        let (genuine, fraud) = amounts(sim, None);
        let scores: Vec<f64> = genuine.iter().chain(&fraud).copied().collect();
        let labels: Vec<bool> = (0..scores.len()).map(|i| i >= genuine.len()).collect();
        let auc = auc_roc(&scores, &labels);
        assert!((0.35..0.8).contains(&auc), "amount AUC {auc}");
        // The best single cut on the amount, either way, flags more genuine than fraud.
        let mut sorted: Vec<(f64, bool)> =
            scores.iter().copied().zip(labels.iter().copied()).collect();
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
        let total_fraud = fraud.len() as f64;
        let (mut below_fraud, mut below) = (0.0, 0.0);
        let mut best_f1: f64 = 0.0;
        for (k, &(_, is_fraud)) in sorted.iter().enumerate() {
            below += 1.0;
            below_fraud += f64::from(u8::from(is_fraud));
            let above = sorted.len() as f64 - (k + 1) as f64;
            let above_fraud = total_fraud - below_fraud;
            let f1 = |tp: f64, flagged: f64| 2.0 * tp / (flagged + total_fraud);
            best_f1 = best_f1
                .max(f1(below_fraud, below))
                .max(f1(above_fraud, above));
        }
        assert!(best_f1 < 0.2, "an amount cut reaches F1 {best_f1}");
    }
}

#[test]
fn genuine_payments_overlap_each_pattern() {
    for sim in runs() {
        let (genuine, _) = amounts(sim, None);
        for pattern in Pattern::FRAUDS {
            // Within the middle half of each pattern's amounts, give or take 10 %,
            // genuine payments outnumber its frauds ten to one.
            let (_, mut fraud) = amounts(sim, Some(pattern));
            fraud.sort_by(f64::total_cmp);
            let (lo, hi) = (
                fraud[fraud.len() / 4] * 0.9,
                fraud[fraud.len() * 3 / 4] * 1.1,
            );
            let inside = genuine.iter().filter(|&&a| lo <= a && a <= hi).count();
            assert!(
                inside >= 10 * fraud.len(),
                "{pattern:?}: {inside} genuine in {lo}..{hi}, {} frauds",
                fraud.len()
            );
        }
        let genuine_rows: Vec<&Payment> = sim
            .payments
            .iter()
            .filter(|p| p.pattern == Pattern::Genuine)
            .collect();
        let share = |f: &dyn Fn(&Payment) -> bool| {
            genuine_rows.iter().filter(|p| f(p)).count() as f64 / genuine_rows.len() as f64
        };
        // Genuine travel, genuine high-risk merchants, genuine small online payments.
        let abroad = share(&|p| {
            p.channel != Channel::Ecom
                && country(sim, p) != sim.world.customers[p.customer as usize].country
        });
        assert!(abroad > 0.01, "in person abroad {abroad}");
        assert!(share(&|p| [7995, 6051, 5947, 4814].contains(&mcc(sim, p))) > 0.01);
        assert!(share(&|p| p.channel == Channel::Ecom && p.cents <= 500) > 0.02);
    }
}

#[test]
fn genuine_spending_follows_the_day_and_the_week() {
    for sim in runs() {
        let (mut hours, mut weekdays) = ([0u64; 24], [0u64; 7]);
        for p in sim
            .payments
            .iter()
            .filter(|p| p.pattern == Pattern::Genuine)
        {
            hours[(p.ts % DAY / 3600) as usize] += 1;
            // The runs start on a Monday.
            weekdays[(p.ts / DAY % 7) as usize] += 1;
        }
        assert!(hours[12] > 4 * hours[4], "{hours:?}");
        assert!(hours[18] > 2 * hours[23], "{hours:?}");
        assert!(weekdays[5] * 10 > weekdays[6] * 14, "{weekdays:?}");
        assert!(weekdays[5] > weekdays[1], "{weekdays:?}");
    }
}
