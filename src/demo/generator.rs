//! Synthetic payment stream with realistic fraud patterns, for the demo and tests.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::VecDeque;
use std::fmt::Write;

/// The kind of traffic an event belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    /// A genuine payment.
    Legit,
    /// Tiny test payments on a stolen card, then a large one.
    CardTesting,
    /// A new device in another country spending far above the account's habit.
    AccountTakeover,
    /// A compromised terminal charging many cards.
    CompromisedTerminal,
    /// A malformed message (for the dead-letter topic).
    Malformed,
}

impl Pattern {
    /// Whether the event is fraud.
    pub fn is_fraud(self) -> bool {
        matches!(
            self,
            Pattern::CardTesting | Pattern::AccountTakeover | Pattern::CompromisedTerminal
        )
    }

    /// Short name.
    pub fn name(self) -> &'static str {
        match self {
            Pattern::Legit => "legit",
            Pattern::CardTesting => "card_testing",
            Pattern::AccountTakeover => "account_takeover",
            Pattern::CompromisedTerminal => "compromised_terminal",
            Pattern::Malformed => "malformed",
        }
    }
}

/// One generated message.
#[derive(Debug, Clone)]
pub struct Generated {
    /// Sequence number; the event id is `ev-<seq>`.
    pub seq: u64,
    /// Message key (account id).
    pub key: String,
    /// Message bytes.
    pub payload: Vec<u8>,
    /// What it is.
    pub pattern: Pattern,
}

struct Account {
    country: &'static str,
    device: u32,
    typical: f64,
    terminals: [u32; 4],
}

/// The card number every generated payment carries (a test number), which
/// must never reach logs or metrics.
pub const PAN: &str = "4111111111111111";

const COUNTRIES: [&str; 6] = ["DE", "FR", "NL", "ES", "IT", "BE"];
const FOREIGN: [&str; 4] = ["RU", "NG", "BR", "VN"];

struct Pending {
    account: usize,
    terminal: u32,
    amount: f64,
    device: u32,
    country: &'static str,
    pattern: Pattern,
}

/// A fraud campaign: its remaining events and how likely each tick emits one.
struct Campaign {
    events: VecDeque<Pending>,
    per_tick: f64,
}

/// A deterministic generator (same seed, same stream) with a simulated clock:
/// each account pays about three times a day, so windows see realistic rates.
pub struct Generator {
    rng: SmallRng,
    accounts: Vec<Account>,
    terminals: u32,
    seq: u64,
    clock_ms: i64,
    step_ms: i64,
    campaigns: Vec<Campaign>,
    rogue_terminals: u32,
    fraud_after: u64,
    malformed_rate: f64,
}

impl Generator {
    /// Simulated milliseconds between two events for `accounts` accounts.
    pub fn step_ms(accounts: usize) -> i64 {
        86_400_000 / (3 * accounts.max(10) as i64)
    }

    /// A generator over `accounts` accounts whose clock starts at `start_ms`; fraud
    /// starts after `warmup` events so accounts have a history to deviate from.
    pub fn new(seed: u64, accounts: usize, warmup: u64, start_ms: i64) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        let n_accounts = accounts.max(10);
        let terminals = (n_accounts as u32 / 4).max(20);
        let accounts = (0..accounts.max(10))
            .map(|_| Account {
                country: COUNTRIES[rng.gen_range(0..COUNTRIES.len())],
                device: rng.gen(),
                typical: 10.0 + rng.gen::<f64>().powi(2) * 90.0,
                terminals: [0; 4].map(|_| rng.gen_range(0..terminals)),
            })
            .collect();
        Self {
            rng,
            accounts,
            terminals,
            seq: 0,
            clock_ms: start_ms,
            step_ms: Self::step_ms(n_accounts),
            campaigns: Vec::new(),
            rogue_terminals: 0,
            fraud_after: warmup,
            malformed_rate: 0.002,
        }
    }

    /// The simulated clock: the event time of the last message, epoch ms.
    pub fn clock_ms(&self) -> i64 {
        self.clock_ms
    }

    /// Sets the share of malformed messages (default 0.2 %).
    pub fn with_malformed_rate(mut self, rate: f64) -> Self {
        self.malformed_rate = rate;
        self
    }

    /// The next message; its event time is the simulated clock, never past `max_ts_ms`.
    pub fn next(&mut self, max_ts_ms: i64) -> Generated {
        let seq = self.seq;
        self.seq += 1;
        self.clock_ms += self.rng.gen_range(0..=2 * self.step_ms);
        let ts_ms = self.clock_ms.min(max_ts_ms);
        if self.rng.gen_bool(self.malformed_rate) {
            return self.malformed(seq);
        }
        if self.campaigns.len() < 4 && seq >= self.fraud_after && self.rng.gen_bool(0.003) {
            self.start_campaign();
        }
        // Campaign events interleave with normal traffic, each at its own pace.
        let mut picked = None;
        for c in &mut self.campaigns {
            if self.rng.gen_bool(c.per_tick) {
                picked = c.events.pop_front();
                break;
            }
        }
        self.campaigns.retain(|c| !c.events.is_empty());
        let p = picked.unwrap_or_else(|| self.legit());
        let mut json = String::with_capacity(256);
        let _ = write!(
            json,
            r#"{{"event_id":"ev-{seq}","ts":{ts_ms},"account_id":"acc-{}","card_id":"card-{}","terminal_id":"term-{}","amount":{:.2},"currency":"EUR","device_id":"dev-{:08x}","country":"{}","channel":"ecom","pan":"{PAN}"}}"#,
            p.account, p.account, p.terminal, p.amount, p.device, p.country
        );
        Generated {
            seq,
            key: format!("acc-{}", p.account),
            payload: json.into_bytes(),
            pattern: p.pattern,
        }
    }

    fn legit(&mut self) -> Pending {
        let account = self.rng.gen_range(0..self.accounts.len());
        let a = &self.accounts[account];
        let terminal = if self.rng.gen_bool(0.85) {
            a.terminals[self.rng.gen_range(0..4)]
        } else {
            self.rng.gen_range(0..self.terminals)
        };
        let amount = (a.typical * (0.5 + self.rng.gen::<f64>())).max(5.0);
        Pending {
            account,
            terminal,
            amount,
            device: a.device,
            country: a.country,
            pattern: Pattern::Legit,
        }
    }

    fn start_campaign(&mut self) {
        let account = self.rng.gen_range(0..self.accounts.len());
        let terminal = self.rng.gen_range(0..self.terminals);
        let (device, country, typical) = {
            let a = &self.accounts[account];
            (a.device, a.country, a.typical)
        };
        let mut events = VecDeque::new();
        // Card testing and takeovers play out within minutes; a compromised
        // terminal keeps charging cards for about a simulated day.
        let per_tick = match self.rng.gen_range(0..3) {
            0 => {
                for _ in 0..self.rng.gen_range(4..8) {
                    let amount = 0.5 + self.rng.gen::<f64>() * 2.5;
                    events.push_back(Pending {
                        account,
                        terminal,
                        amount,
                        device,
                        country,
                        pattern: Pattern::CardTesting,
                    });
                }
                let amount = typical * self.rng.gen_range(5.0..10.0);
                events.push_back(Pending {
                    account,
                    terminal,
                    amount,
                    device,
                    country,
                    pattern: Pattern::CardTesting,
                });
                0.3
            }
            1 => {
                let device = self.rng.gen();
                let country = FOREIGN[self.rng.gen_range(0..FOREIGN.len())];
                for _ in 0..self.rng.gen_range(2..5) {
                    let terminal = self.rng.gen_range(0..self.terminals);
                    let amount = typical * self.rng.gen_range(6.0..12.0);
                    events.push_back(Pending {
                        account,
                        terminal,
                        amount,
                        device,
                        country,
                        pattern: Pattern::AccountTakeover,
                    });
                }
                0.2
            }
            _ => {
                // A fraudulent merchant terminal: new, and only ever used by the attacker.
                self.rogue_terminals += 1;
                let terminal = self.terminals + self.rogue_terminals;
                for _ in 0..self.rng.gen_range(30..60) {
                    let account = self.rng.gen_range(0..self.accounts.len());
                    let a = &self.accounts[account];
                    let amount = a.typical * self.rng.gen_range(1.0..3.0);
                    let (device, country) = (a.device, a.country);
                    events.push_back(Pending {
                        account,
                        terminal,
                        amount,
                        device,
                        country,
                        pattern: Pattern::CompromisedTerminal,
                    });
                }
                0.02
            }
        };
        self.campaigns.push(Campaign { events, per_tick });
    }

    fn malformed(&mut self, seq: u64) -> Generated {
        let payload: Vec<u8> = match self.rng.gen_range(0..6) {
            0 => b"{\"event_id\": \"broken".to_vec(),
            1 => (0..40).map(|_| self.rng.gen()).collect(),
            2 => format!(r#"{{"event_id":"ev-{seq}","ts":1,"account_id":"a","terminal_id":"t","amount":-5,"currency":"EUR"}}"#).into_bytes(),
            3 => format!(r#"{{"event_id":"ev-{seq}","ts":"not a time","account_id":"a","terminal_id":"t","amount":5,"currency":"EUR"}}"#).into_bytes(),
            4 => format!(r#"{{"event_id":"ev-{seq}","account_id":"a","amount":5}}"#).into_bytes(),
            _ => format!(r#"{{"event_id":"ev-{seq}","ts":99999999999999,"account_id":"a","terminal_id":"t","amount":5,"currency":"EUR"}}"#).into_bytes(),
        };
        Generated {
            seq,
            key: "malformed".into(),
            payload,
            pattern: Pattern::Malformed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::event::{parse_event_at, Limits};

    #[test]
    fn stream_is_deterministic_and_mostly_valid_with_every_pattern() {
        let now = 1_700_000_000_000;
        let start = now - 20_000 * Generator::step_ms(500);
        let mut a = Generator::new(7, 500, 1000, start);
        let mut b = Generator::new(7, 500, 1000, start);
        let mut counts = std::collections::HashMap::new();
        for _ in 0..20_000 {
            let (x, y) = (a.next(now), b.next(now));
            assert_eq!(x.payload, y.payload);
            *counts.entry(x.pattern.name()).or_insert(0) += 1;
            let ok = parse_event_at(&x.payload, &Limits::default(), now).is_ok();
            assert_eq!(
                ok,
                x.pattern != Pattern::Malformed,
                "{}",
                String::from_utf8_lossy(&x.payload)
            );
        }
        for p in [
            "legit",
            "card_testing",
            "account_takeover",
            "compromised_terminal",
            "malformed",
        ] {
            assert!(
                counts.get(p).copied().unwrap_or(0) > 0,
                "no {p} in {counts:?}"
            );
        }
    }
}
