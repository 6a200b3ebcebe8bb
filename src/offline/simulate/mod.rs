//! `fraudstream simulate`: a second labelled payment simulator, with other
//! customers, merchants and fraud patterns than the handbook's, to test that
//! detection carries over to data it was not tuned on.
//!
//! The world: customers living in seven European countries, with a daily and
//! weekly rhythm, a spending level, favourite categories and regular shops,
//! one or two cards, a phone and maybe a computer, subscriptions, trips
//! (abroad and at home) and, for a few, gambling or crypto habits; merchants in
//! 26 categories, in person (one or more terminals) or online (a popular few
//! carry most of the traffic). Fraud comes in seven patterns ([`Pattern`]),
//! each labelled with its own `TX_FRAUD_SCENARIO` code; genuine behaviour
//! overlaps each of them (small payments, gambling sessions, new devices, travel,
//! big purchases). Output is the handbook's CSV format, optionally with the
//! columns `CARD_ID, DEVICE_ID, IP, COUNTRY, MCC, CHANNEL` (empty = missing);
//! amounts are in EUR. The same options give the same bytes.

mod catalog;
mod fraud;
mod genuine;
mod population;
#[cfg(test)]
mod tests;

use crate::offline::replay::parse_date_ms;
use catalog::{Channel, CATEGORIES, COUNTRIES};
use population::World;
use rand::SeedableRng;
use std::io::Write;
use std::path::Path;

/// The random generator: ChaCha8, whose output is fixed by its seed on every platform.
type Rng64 = rand_chacha::ChaCha8Rng;

/// Seconds in a day.
const DAY: i64 = 86_400;

/// An independent generator for one part of the run (`stream`) and one item of
/// it (`index`), so that each customer's payments depend on nothing else.
fn rng_for(seed: u64, stream: u64, index: u64) -> Rng64 {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&stream.to_le_bytes());
    key[16..24].copy_from_slice(&index.to_le_bytes());
    Rng64::from_seed(key)
}

/// What a payment is: genuine, or fraud of one pattern (the `TX_FRAUD_SCENARIO` code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Pattern {
    /// 0: a genuine payment.
    Genuine = 0,
    /// 1: one to four small online payments within minutes at small web shops,
    /// at amounts like genuine small purchases (0.50-15 EUR).
    CardTesting = 1,
    /// 2: a new device buys online, at shops the customer never used, several
    /// times what the customer usually spends, within a day or so.
    AccountTakeover = 2,
    /// 3: cards read by a skimmer at a busy till are cloned and spent in person
    /// days later, elsewhere in the country or abroad.
    CompromisedTerminal = 3,
    /// 4: a moderate amount every 2-7 days for 3-9 weeks at one or two popular web shops.
    SlowDrain = 4,
    /// 5: 3-10 climbing payments within an hour or two at gambling, crypto,
    /// gift-card and phone top-up merchants.
    HighRiskBurst = 5,
    /// 6: a bot tries card numbers of one BIN range at one small web shop: tens
    /// of the bank's cards charged the same few euros within an hour or so.
    BinAttack = 6,
    /// 7: a cloned card spent in person abroad while its holder is at home:
    /// 3-12 payments over a day or two, mostly goods that resell, and cash.
    CrossBorderSpree = 7,
}

impl Pattern {
    /// The fraud patterns, by code.
    pub const FRAUDS: [Pattern; 7] = [
        Pattern::CardTesting,
        Pattern::AccountTakeover,
        Pattern::CompromisedTerminal,
        Pattern::SlowDrain,
        Pattern::HighRiskBurst,
        Pattern::BinAttack,
        Pattern::CrossBorderSpree,
    ];

    /// The `TX_FRAUD_SCENARIO` code.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// Short name (`card_testing`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Pattern::Genuine => "genuine",
            Pattern::CardTesting => "card_testing",
            Pattern::AccountTakeover => "account_takeover",
            Pattern::CompromisedTerminal => "compromised_terminal",
            Pattern::SlowDrain => "slow_drain",
            Pattern::HighRiskBurst => "high_risk_burst",
            Pattern::BinAttack => "bin_attack",
            Pattern::CrossBorderSpree => "cross_border_spree",
        }
    }
}

/// A payment's card: a slot of the holder's wallet (resolved once every
/// replacement is known) or a given card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CardRef {
    Slot(u8),
    Id(u32),
}

/// One simulated payment.
#[derive(Debug, Clone)]
struct Payment {
    /// Seconds since the start of the run.
    ts: i64,
    customer: u32,
    terminal: u32,
    /// EUR cents.
    cents: u32,
    card: CardRef,
    /// 0: none sent.
    device: u32,
    /// IPv4 address; 0: none sent.
    ip: u32,
    channel: Channel,
    pattern: Pattern,
}

/// Which columns to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Columns {
    /// The handbook's nine columns only.
    Handbook,
    /// Plus `CARD_ID, DEVICE_ID, IP, COUNTRY, MCC, CHANNEL`.
    Full,
}

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Days to simulate (1..=3650).
    pub days: u32,
    /// Seed: the same options give the same file.
    pub seed: u64,
    /// Customers (100..=1,000,000).
    pub customers: u32,
    /// First day, `YYYY-MM-DD`.
    pub start: String,
}

impl Default for SimOptions {
    fn default() -> Self {
        Self {
            days: 90,
            seed: 1,
            customers: 5_000,
            start: "2024-01-01".into(),
        }
    }
}

/// A problem with the options or the output file.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// An option is out of range.
    #[error("--{flag} {value}: expected {expected}")]
    BadOption {
        /// Flag name.
        flag: &'static str,
        /// Value given.
        value: String,
        /// What is accepted.
        expected: &'static str,
    },
    /// The output could not be written.
    #[error("{path}: {error}")]
    Io {
        /// Output path.
        path: String,
        /// Underlying error.
        error: std::io::Error,
    },
}

/// Per pattern: incidents, fraud rows and cards hit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternCount {
    /// The pattern.
    pub pattern: Pattern,
    /// Incidents (a compromised terminal or a BIN attack is one; a tested card
    /// sold on and spent is a second).
    pub incidents: u32,
    /// Fraud rows.
    pub frauds: u64,
    /// Distinct cards with a fraud of this pattern.
    pub cards: u64,
}

/// A simulated run, ready to write.
pub struct Simulation {
    world: World,
    payments: Vec<Payment>,
    incidents: [u32; 8],
    start_day: i64,
}

/// Simulates `opts.days` days of `opts.customers` customers.
pub fn simulate(opts: &SimOptions) -> Result<Simulation, SimError> {
    let bad = |flag, value: String, expected| SimError::BadOption {
        flag,
        value,
        expected,
    };
    if !(1..=3650).contains(&opts.days) {
        return Err(bad("days", opts.days.to_string(), "1..=3650"));
    }
    if !(100..=1_000_000).contains(&opts.customers) {
        return Err(bad(
            "customers",
            opts.customers.to_string(),
            "100..=1000000",
        ));
    }
    let start_day = parse_date_ms(&opts.start)
        .ok_or_else(|| bad("start", opts.start.clone(), "a date YYYY-MM-DD"))?
        / 86_400_000;
    let mut world = World::build(opts.seed, opts.customers, opts.days);
    let mut payments = Vec::with_capacity(opts.customers as usize * opts.days as usize * 2);
    for customer in 0..opts.customers {
        genuine::customer_payments(
            &world,
            opts.seed,
            customer,
            opts.days,
            start_day,
            &mut payments,
        );
    }
    // Stable sorts: payments at the same second keep their generation order.
    payments.sort_by_key(|p| p.ts);
    let (frauds, incidents) = fraud::frauds(&mut world, &payments, opts.seed, opts.days);
    payments.extend(frauds);
    payments.sort_by_key(|p| p.ts);
    for p in &mut payments {
        if let CardRef::Slot(slot) = p.card {
            p.card = CardRef::Id(world.card_at(p.customer, slot, p.ts));
        }
    }
    Ok(Simulation {
        world,
        payments,
        incidents,
        start_day,
    })
}

/// A fixed bijection on ids, so that an id tells nothing about when it was issued.
fn scramble(x: u32) -> u32 {
    let mut y = x.wrapping_mul(0x9e37_79b1);
    y ^= y >> 16;
    y.wrapping_mul(0x85eb_ca6b)
}

impl Simulation {
    /// Payments simulated.
    pub fn len(&self) -> usize {
        self.payments.len()
    }

    /// Whether no payment was simulated.
    pub fn is_empty(&self) -> bool {
        self.payments.is_empty()
    }

    /// Fraud rows.
    pub fn frauds(&self) -> u64 {
        self.payments
            .iter()
            .filter(|p| p.pattern != Pattern::Genuine)
            .count() as u64
    }

    /// Terminals in the world.
    pub fn terminals(&self) -> usize {
        self.world.terminal_merchant.len()
    }

    /// Incidents, fraud rows and cards per pattern.
    pub fn by_pattern(&self) -> Vec<PatternCount> {
        Pattern::FRAUDS
            .iter()
            .map(|&pattern| {
                let mut cards: Vec<u32> = self
                    .payments
                    .iter()
                    .filter(|p| p.pattern == pattern)
                    .map(|p| self.card_id(p))
                    .collect();
                let frauds = cards.len() as u64;
                cards.sort_unstable();
                cards.dedup();
                PatternCount {
                    pattern,
                    incidents: self.incidents[pattern as usize],
                    frauds,
                    cards: cards.len() as u64,
                }
            })
            .collect()
    }

    fn card_id(&self, p: &Payment) -> u32 {
        match p.card {
            CardRef::Id(id) => id,
            CardRef::Slot(slot) => self.world.card_at(p.customer, slot, p.ts),
        }
    }

    /// Writes the payments as CSV (header first, in time order, `TRANSACTION_ID` from 0).
    pub fn write_csv(&self, out: &mut impl Write, columns: Columns) -> std::io::Result<()> {
        out.write_all(
            b"TRANSACTION_ID,TX_DATETIME,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT,TX_TIME_SECONDS,TX_TIME_DAYS,TX_FRAUD,TX_FRAUD_SCENARIO",
        )?;
        if columns == Columns::Full {
            out.write_all(b",CARD_ID,DEVICE_ID,IP,COUNTRY,MCC,CHANNEL")?;
        }
        out.write_all(b"\n")?;
        let (mut date, mut date_day) = (String::new(), i64::MIN);
        for (id, p) in self.payments.iter().enumerate() {
            let day = p.ts.div_euclid(DAY);
            if day != date_day {
                let (y, m, d) = crate::source::time::civil_from_days(self.start_day + day);
                date = format!("{y:04}-{m:02}-{d:02}");
                date_day = day;
            }
            let s = p.ts.rem_euclid(DAY);
            write!(
                out,
                "{id},{date} {:02}:{:02}:{:02},{},{},{}.{:02},{},{day},{},{}",
                s / 3600,
                s / 60 % 60,
                s % 60,
                p.customer,
                p.terminal,
                p.cents / 100,
                p.cents % 100,
                p.ts,
                u8::from(p.pattern != Pattern::Genuine),
                p.pattern.code(),
            )?;
            if columns == Columns::Full {
                self.write_extra(out, p)?;
            }
            out.write_all(b"\n")?;
        }
        Ok(())
    }

    fn write_extra(&self, out: &mut impl Write, p: &Payment) -> std::io::Result<()> {
        let m = &self.world.merchants[self.world.terminal_merchant[p.terminal as usize] as usize];
        write!(out, ",{},", scramble(self.card_id(p)))?;
        if p.device != 0 {
            write!(out, "{}", scramble(p.device))?;
        }
        out.write_all(b",")?;
        if p.ip != 0 {
            let [a, b, c, d] = p.ip.to_be_bytes();
            write!(out, "{a}.{b}.{c}.{d}")?;
        }
        write!(
            out,
            ",{},{},{}",
            COUNTRIES[m.country as usize].code,
            CATEGORIES[m.cat].mcc,
            p.channel.as_str()
        )
    }

    /// Writes the CSV to `path`, gzipped if it ends in `.gz` (with no name or
    /// time in the gzip header, so the bytes depend on the options only).
    pub fn write_file(&self, path: &Path, columns: Columns) -> Result<(), SimError> {
        let io = |error| SimError::Io {
            path: path.display().to_string(),
            error,
        };
        let file = std::fs::File::create(path).map_err(io)?;
        if path.to_string_lossy().ends_with(".gz") {
            let gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
            let mut out = std::io::BufWriter::with_capacity(1 << 20, gz);
            self.write_csv(&mut out, columns).map_err(io)?;
            let gz = out.into_inner().map_err(|e| io(e.into_error()))?;
            gz.finish().map_err(io)?;
        } else {
            let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
            self.write_csv(&mut out, columns).map_err(io)?;
            out.flush().map_err(io)?;
        }
        Ok(())
    }
}
