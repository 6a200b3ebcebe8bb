//! Fraud: incidents of each pattern scheduled over the run. A compromised card
//! is replaced a few days after its last fraud, when the holder reports it.

use super::catalog::{
    Cat, Channel, AIRLINE, ATM, BAR, CATEGORIES, CHARITY, CLOTHING, COUNTRIES, DEPARTMENT, DIGITAL,
    ELECTRONICS, FUEL, GIFT_CARDS, GROCERY, HIGH_RISK, JEWELRY, MARKETPLACE, MISC, NIGHTLIFE,
    ONLINE, RESALE, RESTAURANT, RETAIL, STREAMING, TELECOM,
};
use super::genuine::{amount, hour, poisson};
use super::population::{World, BINS};
use super::{rng_for, CardRef, Pattern, Payment, Rng64, DAY};
use rand::seq::SliceRandom;
use rand::Rng;
use rand_distr::{Distribution, LogNormal, WeightedIndex};

/// Incidents started per 1000 customers per day (chained ones come on top).
const RATES: [(Pattern, f64); 7] = [
    (Pattern::CardTesting, 0.7),
    (Pattern::AccountTakeover, 0.6),
    (Pattern::CompromisedTerminal, 0.09),
    (Pattern::SlowDrain, 0.25),
    (Pattern::HighRiskBurst, 0.12),
    (Pattern::BinAttack, 0.04),
    (Pattern::CrossBorderSpree, 0.2),
];

/// Fraudsters' devices that come back across incidents.
const RING: usize = 40;

/// The fraud rows of a run over `world` (whose cards are replaced after each
/// incident), given its genuine payments in time order; and the incidents per pattern.
pub(super) fn frauds(
    world: &mut World,
    genuine: &[Payment],
    seed: u64,
    days: u32,
) -> (Vec<Payment>, [u32; 8]) {
    let mut rng = rng_for(seed, 3, 0);
    let end = i64::from(days) * DAY;
    let thousands = world.customers.len() as f64 / 1000.0;
    let mut schedule: Vec<(i64, Pattern)> = Vec::new();
    for (pattern, rate) in RATES {
        for _ in 0..poisson(&mut rng, rate * thousands * f64::from(days)) {
            schedule.push((rng.gen_range(0..end), pattern));
        }
    }
    schedule.sort_by_key(|&(t, p)| (t, p as u8));
    let ring = (0..RING)
        .map(|_| {
            let country = any_country(&mut rng);
            (world.new_device(), random_ip(&mut rng, country))
        })
        .collect();
    let mut f = Frauds {
        busy: vec![i64::MIN; world.customers.len()],
        world,
        rng,
        end,
        ring,
        out: Vec::new(),
        incidents: [0; 8],
    };
    for (t, pattern) in schedule {
        f.incident(pattern, t, genuine);
    }
    (f.out, f.incidents)
}

/// A country's address, at random.
fn random_ip(rng: &mut Rng64, country: usize) -> u32 {
    (u32::from(COUNTRIES[country].ip) << 24) | (rng.gen::<u32>() & 0xff_ffff)
}

/// Any country, uniformly.
fn any_country(rng: &mut Rng64) -> usize {
    rng.gen_range(0..COUNTRIES.len())
}

/// Picks from `(item, weight)` pairs.
fn weighted<T: Copy>(rng: &mut Rng64, items: &[(T, f64)]) -> T {
    let w = WeightedIndex::new(items.iter().map(|i| i.1)).expect("weights");
    items[w.sample(rng)].0
}

/// Log-normal with median `median`.
fn ln(rng: &mut Rng64, median: f64, sigma: f64) -> f64 {
    LogNormal::new(median.ln(), sigma).map_or(median, |d| d.sample(rng))
}

/// Spending with a cloned card: where, on what, how many payments about how
/// many seconds apart, and amounts against the merchants' usual.
struct Spending<'c> {
    city: u32,
    cats: &'c [(Cat, f64)],
    payments: i64,
    gap: i64,
    scale: f64,
}

struct Frauds<'a> {
    world: &'a mut World,
    rng: Rng64,
    end: i64,
    busy: Vec<i64>,
    ring: Vec<(u32, u32)>,
    out: Vec<Payment>,
    incidents: [u32; 8],
}

/// Who pays: the victim's card, the fraudster's device and address.
#[derive(Clone, Copy)]
struct Hit {
    customer: u32,
    card: u32,
    device: u32,
    ip: u32,
}

impl Frauds<'_> {
    fn incident(&mut self, pattern: Pattern, t: i64, genuine: &[Payment]) {
        self.incidents[pattern as usize] += 1;
        match pattern {
            Pattern::CompromisedTerminal => return self.compromised_terminal(t, genuine),
            Pattern::BinAttack => return self.bin_attack(t),
            _ => {}
        }
        let Some(customer) = self.victim(t) else {
            return;
        };
        let slot =
            u8::from(self.world.customers[customer as usize].slots > 1 && self.rng.gen_bool(0.3));
        let card = self.world.card_at(customer, slot, t);
        let last = match pattern {
            Pattern::CardTesting => self.card_testing(customer, card, t),
            Pattern::AccountTakeover => self.account_takeover(customer, card, t),
            Pattern::SlowDrain => self.slow_drain(customer, card, t),
            Pattern::HighRiskBurst => self.high_risk_burst(customer, card, t),
            _ => self.cross_border_spree(customer, card, t),
        };
        let delay = if pattern == Pattern::SlowDrain {
            3..15
        } else {
            1..8
        };
        self.close(customer, card, last, delay);
    }

    /// A customer with no fraud under way at `t`.
    fn victim(&mut self, t: i64) -> Option<u32> {
        let n = self.busy.len();
        (0..20)
            .map(|_| self.rng.gen_range(0..n))
            .find(|&c| self.busy[c] < t)
            .map(|c| c as u32)
    }

    /// The holder reports the card some days after `last`; it is replaced then.
    fn close(&mut self, customer: u32, card: u32, last: i64, delay_days: std::ops::Range<i64>) {
        let report = last + self.rng.gen_range(delay_days) * DAY + self.rng.gen_range(0..DAY);
        self.busy[customer as usize] = self.busy[customer as usize].max(report);
        if report < self.end {
            let slot = self.world.cards[card as usize].slot;
            self.world.reissue(customer, slot, report);
        }
    }

    /// A fraudster's device and address: one of the ring's (reused), or a fresh
    /// device behind an address in the victim's country (a proxy) or abroad.
    fn fraudster(&mut self, reuse: f64, home: u8, abroad: f64) -> (u32, u32) {
        if self.rng.gen_bool(reuse) {
            return self.ring[self.rng.gen_range(0..self.ring.len())];
        }
        let country = if self.rng.gen_bool(abroad) {
            any_country(&mut self.rng)
        } else {
            home as usize
        };
        (self.world.new_device(), random_ip(&mut self.rng, country))
    }

    fn hit(&mut self, customer: u32, card: u32, reuse: f64, abroad: f64) -> Hit {
        let home = self.world.customers[customer as usize].country;
        let (device, ip) = self.fraudster(reuse, home, abroad);
        Hit {
            customer,
            card,
            device,
            ip,
        }
    }

    /// The second of `t`'s day at which a fraudster `shift` hours off the bank's clock goes online.
    fn online_clock(&mut self, t: i64) -> i64 {
        let shift = self.rng.gen_range(-2..=8);
        t - t.rem_euclid(DAY) + hour(&mut self.rng, &ONLINE, shift)
    }

    /// Writes one fraud row (inside the run); returns its time.
    fn emit(
        &mut self,
        pattern: Pattern,
        h: &Hit,
        ts: i64,
        m: u32,
        cents: u32,
        channel: Channel,
    ) -> i64 {
        if (0..self.end).contains(&ts) {
            let online = channel == Channel::Ecom;
            self.out.push(Payment {
                ts,
                customer: h.customer,
                terminal: self.world.terminal(&mut self.rng, m),
                cents,
                card: CardRef::Id(h.card),
                device: if online { h.device } else { 0 },
                ip: if online { h.ip } else { 0 },
                channel,
                pattern,
            });
        }
        ts
    }

    /// A small web shop of the kind card testers use (small shops as likely as big ones).
    fn weak_merchant(&mut self) -> u32 {
        let cat = weighted(
            &mut self.rng,
            &[
                (DIGITAL, 0.4),
                (CHARITY, 0.25),
                (MARKETPLACE, 0.2),
                (TELECOM, 0.15),
            ],
        );
        self.world
            .any_online_merchant(&mut self.rng, cat)
            .expect("online merchants of every weak category")
    }

    /// A test amount: the shop's lower prices, or a few euros.
    fn small_amount(&mut self, m: u32) -> u32 {
        let prices = CATEGORIES[self.world.merchants[m as usize].cat].prices;
        if prices.is_empty() {
            ln(&mut self.rng, 300.0, 0.6).clamp(50.0, 1500.0) as u32
        } else {
            prices[self.rng.gen_range(0..prices.len().div_ceil(2))]
        }
    }

    /// Card testing: one to four small online payments within minutes, like
    /// genuine small purchases; half the cards are then cashed out days later.
    fn card_testing(&mut self, customer: u32, card: u32, t: i64) -> i64 {
        let h = self.hit(customer, card, 0.6, 0.5);
        let mut at = self.online_clock(t);
        let mut m = self.weak_merchant();
        let mut last = at;
        for k in 0..weighted(&mut self.rng, &[(1, 0.3), (2, 0.3), (3, 0.25), (4, 0.15)]) {
            if k > 0 && self.rng.gen_bool(0.3) {
                m = self.weak_merchant();
            }
            let cents = self.small_amount(m);
            last = self.emit(Pattern::CardTesting, &h, at, m, cents, Channel::Ecom);
            at += self.rng.gen_range(30..1200);
        }
        self.cash_out(customer, card, last, 0.5)
    }

    /// With probability `p`, the tested card is sold and spent days after `last`.
    fn cash_out(&mut self, customer: u32, card: u32, last: i64, p: f64) -> i64 {
        if !self.rng.gen_bool(p) {
            return last;
        }
        let t = last + self.rng.gen_range(DAY / 2..10 * DAY);
        if self.rng.gen_bool(0.6) {
            self.incidents[Pattern::HighRiskBurst as usize] += 1;
            self.high_risk_burst(customer, card, t)
        } else {
            self.incidents[Pattern::CrossBorderSpree as usize] += 1;
            self.cross_border_spree(customer, card, t)
        }
    }

    /// Account takeover: a new device (now and then the customer's own, run by
    /// malware) buys at shops the customer never used, a few times what the
    /// customer usually spends, over a day or so.
    fn account_takeover(&mut self, customer: u32, card: u32, t: i64) -> i64 {
        let mut h = self.hit(customer, card, 0.3, 0.35);
        if self.rng.gen_bool(0.15) {
            // Remote-access malware: the customer's own phone, the customer's own address.
            let c = &self.world.customers[customer as usize];
            (h.device, h.ip) = (c.device_at(0, t), c.home_ip);
        }
        let wealth = self.world.customers[customer as usize].wealth;
        let mut at = self.online_clock(t);
        let mut last = at;
        let n = weighted(
            &mut self.rng,
            &[(1, 0.2), (2, 0.25), (3, 0.2), (4, 0.15), (5, 0.1), (6, 0.1)],
        );
        for _ in 0..n {
            let cat = weighted(
                &mut self.rng,
                &[
                    (ELECTRONICS, 0.3),
                    (MARKETPLACE, 0.2),
                    (GIFT_CARDS, 0.15),
                    (JEWELRY, 0.1),
                    (AIRLINE, 0.1),
                    (CLOTHING, 0.15),
                ],
            );
            let Some(m) = self.world.any_online_merchant(&mut self.rng, cat) else {
                continue;
            };
            let scale = wealth.powf(0.6) * ln(&mut self.rng, 1.8, 0.5);
            let cents = self.scaled(m, scale);
            last = self.emit(Pattern::AccountTakeover, &h, at, m, cents, Channel::Ecom);
            at += self.rng.gen_range(600..8 * 3600);
        }
        last
    }

    /// An amount at `m` scaled by `scale`; fixed prices become several vouchers.
    fn scaled(&mut self, m: u32, scale: f64) -> u32 {
        let base = amount(&mut self.rng, self.world, m, scale);
        if CATEGORIES[self.world.merchants[m as usize].cat]
            .prices
            .is_empty()
        {
            base
        } else {
            base * (scale.round() as u32).clamp(1, 10)
        }
    }

    /// Slow drain: a moderate amount every few days for weeks at one or two
    /// popular web shops, within what the customer spends anyway.
    fn slow_drain(&mut self, customer: u32, card: u32, t: i64) -> i64 {
        let h = self.hit(customer, card, 0.3, 0.5);
        let wealth = self.world.customers[customer as usize].wealth;
        let shops: Vec<u32> = (0..self.rng.gen_range(1..=2))
            .filter_map(|_| {
                let cat = weighted(
                    &mut self.rng,
                    &[
                        (MARKETPLACE, 0.4),
                        (DIGITAL, 0.15),
                        (STREAMING, 0.15),
                        (TELECOM, 0.1),
                        (MISC, 0.2),
                    ],
                );
                self.world.online_merchant(&mut self.rng, cat)
            })
            .collect();
        let base = (2500.0 * wealth.powf(0.6) * ln(&mut self.rng, 1.0, 0.4)).clamp(800.0, 9000.0);
        let fixed = self.rng.gen_bool(0.5);
        let until = t + self.rng.gen_range(20..60) * DAY;
        let (mut at, mut last) = (t, t);
        while at < until && !shops.is_empty() {
            let m = shops[self.rng.gen_range(0..shops.len())];
            let cents = if fixed {
                base
            } else {
                base * ln(&mut self.rng, 1.0, 0.2)
            } as u32;
            let ts = self.online_clock(at);
            last = self.emit(Pattern::SlowDrain, &h, ts, m, cents, Channel::Ecom);
            at += self.rng.gen_range(2 * DAY..7 * DAY);
        }
        last
    }

    /// A burst at high-risk merchants (gambling, crypto, gift cards, top-ups):
    /// three to ten payments within an hour or two, climbing.
    fn high_risk_burst(&mut self, customer: u32, card: u32, t: i64) -> i64 {
        let h = self.hit(customer, card, 0.5, 0.5);
        let shops: Vec<u32> = (0..self.rng.gen_range(1..=3))
            .filter_map(|_| {
                let cat = HIGH_RISK[self.rng.gen_range(0..HIGH_RISK.len())];
                self.world.any_online_merchant(&mut self.rng, cat)
            })
            .collect();
        let shift = self.rng.gen_range(-2..=4);
        let mut at = t - t.rem_euclid(DAY) + hour(&mut self.rng, &NIGHTLIFE, shift);
        let (mut last, mut scale) = (at, 1.0);
        for _ in 0..self.rng.gen_range(3..=10) {
            let m = shops[self.rng.gen_range(0..shops.len())];
            let cents = self.scaled(m, scale);
            last = self.emit(Pattern::HighRiskBurst, &h, at, m, cents, Channel::Ecom);
            at += self.rng.gen_range(60..900);
            scale *= self.rng.gen_range(1.0..1.3);
        }
        last
    }

    /// A cloned card spent in person abroad, where the holder is not: three to
    /// twelve payments over a day or two, mostly goods that resell, and cash.
    fn cross_border_spree(&mut self, customer: u32, card: u32, t: i64) -> i64 {
        let h = self.hit(customer, card, 0.0, 0.0);
        let home = self.world.customers[customer as usize].country as usize;
        let country = self.fraud_country(home);
        let cities = &self.world.country_cities[country];
        let city = cities[self.rng.gen_range(0..cities.len())];
        let cats = [
            (ELECTRONICS, 0.25),
            (JEWELRY, 0.1),
            (DEPARTMENT, 0.15),
            (CLOTHING, 0.15),
            (ATM, 0.15),
            (RESTAURANT, 0.1),
            (MISC, 0.1),
        ];
        let n = self.rng.gen_range(3..=12);
        let span = self.rng.gen_range(6..48) * 3600 / n;
        let spending = Spending {
            city,
            cats: &cats,
            payments: n,
            gap: span,
            scale: 1.0,
        };
        self.in_person(Pattern::CrossBorderSpree, &h, t, spending)
    }

    /// Card-present payments with a cloned card from `t`'s day on, starting in
    /// local shop hours.
    fn in_person(&mut self, pattern: Pattern, h: &Hit, t: i64, s: Spending) -> i64 {
        let Spending {
            city,
            cats,
            payments,
            gap,
            scale,
        } = s;
        let tz = i64::from(COUNTRIES[self.world.cities[city as usize].country as usize].tz);
        let mut at = t - t.rem_euclid(DAY) + hour(&mut self.rng, &RETAIL, 0) - tz * 3600;
        let mut last = at;
        for _ in 0..payments {
            let cat = weighted(&mut self.rng, cats);
            let Some(m) = self.world.local_merchant(&mut self.rng, city, cat) else {
                continue;
            };
            let (cents, channel) = if cat == ATM {
                (self.rng.gen_range(10..=50) * 1000, Channel::Atm)
            } else {
                (amount(&mut self.rng, self.world, m, scale), Channel::Pos)
            };
            last = self.emit(pattern, h, at, m, cents, channel);
            at += (gap as f64 * self.rng.gen_range(0.5..1.5)) as i64;
        }
        last
    }

    /// A skimmer on a busy till for some days: about half the chip-and-PIN cards
    /// read there are cloned and spent in person days later, elsewhere in the
    /// country or abroad.
    fn compromised_terminal(&mut self, t: i64, genuine: &[Payment]) {
        let skimmable = [FUEL, GROCERY, RESTAURANT, DEPARTMENT, BAR];
        let first = genuine.partition_point(|p| p.ts < t);
        let offset = first + self.rng.gen_range(0..5000);
        let Some(terminal) = genuine[offset.min(genuine.len())..].iter().find_map(|p| {
            let m = self.world.terminal_merchant[p.terminal as usize];
            let cat = self.world.merchants[m as usize].cat;
            (p.channel == Channel::Pos && skimmable.contains(&cat)).then_some(p.terminal)
        }) else {
            return;
        };
        let until = t + self.rng.gen_range(3..12) * DAY;
        let mut read: Vec<(u32, u8, i64)> = Vec::new();
        for p in genuine[first..].iter().take_while(|p| p.ts < until) {
            if let (true, CardRef::Slot(slot)) =
                (p.terminal == terminal && p.channel == Channel::Pos, p.card)
            {
                if !read.iter().any(|r| r.0 == p.customer) {
                    read.push((p.customer, slot, p.ts));
                }
            }
        }
        let merchant = self.world.terminal_merchant[terminal as usize];
        let home = self.world.merchants[merchant as usize].country as usize;
        for (customer, slot, ts) in read.into_iter().take(40) {
            if !self.rng.gen_bool(0.5) || self.busy[customer as usize] >= ts {
                continue;
            }
            let card = self.world.card_at(customer, slot, ts);
            let h = Hit {
                customer,
                card,
                device: 0,
                ip: 0,
            };
            let country = if self.rng.gen_bool(0.6) {
                home
            } else {
                self.fraud_country(home)
            };
            let cities = self.world.country_cities[country].clone();
            let city = cities[self.rng.gen_range(0..cities.len())];
            let n = weighted(&mut self.rng, &[(1, 0.3), (2, 0.3), (3, 0.25), (4, 0.15)]);
            let use_at = ts + self.rng.gen_range(2..25) * DAY;
            let gap = self.rng.gen_range(1..8) * 3600 / n;
            let spending = Spending {
                city,
                cats: &RESALE,
                payments: n,
                gap,
                scale: 1.2,
            };
            let last = self.in_person(Pattern::CompromisedTerminal, &h, use_at, spending);
            self.close(customer, card, last, 1..8);
        }
    }

    /// A foreign country where cloned cards are spent.
    fn fraud_country(&mut self, home: usize) -> usize {
        let w = WeightedIndex::new(COUNTRIES.iter().enumerate().map(|(k, c)| {
            if k == home || c.cities == 0 {
                0.0
            } else {
                c.fraud
            }
        }))
        .expect("fraud countries");
        w.sample(&mut self.rng)
    }

    /// BIN attack: a bot tries card numbers of one BIN range at one small web
    /// shop; every number that is a real card of the bank is a fraud row: tens
    /// of cards within an hour or so, from one device and a few addresses.
    fn bin_attack(&mut self, t: i64) {
        let m = self.weak_merchant();
        let bin = self.rng.gen_range(0..BINS);
        let mut cards: Vec<u32> = (0..self.world.cards.len() as u32)
            .filter(|&id| {
                let c = &self.world.cards[id as usize];
                c.bin == bin && c.from <= t && t < c.to
            })
            .collect();
        let hits = self.rng.gen_range(8..=40).min(cards.len());
        let (chosen, _) = cards.partial_shuffle(&mut self.rng, hits);
        let chosen = chosen.to_vec();
        let (bot, _) = self.fraudster(0.5, 0, 1.0);
        let ips: Vec<u32> = (0..self.rng.gen_range(3..15))
            .map(|_| {
                let country = any_country(&mut self.rng);
                random_ip(&mut self.rng, country)
            })
            .collect();
        const TRIES: [u32; 10] = [50, 99, 100, 199, 250, 499, 500, 999, 1000, 1200];
        let fixed = self
            .rng
            .gen_bool(0.7)
            .then(|| TRIES[self.rng.gen_range(0..TRIES.len())]);
        let start = self.online_clock(t);
        let length = self.rng.gen_range(20..180) * 60;
        for card in chosen {
            let customer = self.world.cards[card as usize].customer;
            if self.busy[customer as usize] >= start {
                continue;
            }
            let h = Hit {
                customer,
                card,
                device: bot,
                ip: ips[self.rng.gen_range(0..ips.len())],
            };
            let mut last = start + self.rng.gen_range(0..length);
            for _ in 0..1 + usize::from(self.rng.gen_bool(0.15)) {
                let cents = match fixed {
                    Some(c) => c,
                    None => self.small_amount(m),
                };
                last = self.emit(Pattern::BinAttack, &h, last, m, cents, Channel::Ecom)
                    + self.rng.gen_range(30..600);
            }
            let last = self.cash_out(customer, card, last, 0.1);
            self.close(customer, card, last, 1..4);
        }
    }
}
