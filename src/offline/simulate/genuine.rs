//! Genuine payments: each customer's everyday spending with its daily and
//! weekly rhythms, subscriptions, gambling and crypto habits, and trips.

use super::catalog::{
    Cat, Channel, Hours, AIRLINE, BILLING, CATEGORIES, COUNTRIES, CRYPTO, GAMBLING, HOTEL,
    NIGHTLIFE, NIGHT_OWL, ONLINE, TRAVEL_CATEGORIES,
};
use super::population::{Customer, Trip, World};
use super::{rng_for, CardRef, Pattern, Payment, Rng64, DAY};
use crate::source::time::civil_from_days;
use rand::Rng;
use rand_distr::{Distribution, LogNormal, Poisson, WeightedIndex};

/// Everyday payments by weekday against the customer's mean, Monday first
/// (shops close on Sunday in much of Europe).
const WEEK: [f64; 7] = [0.95, 0.95, 1.0, 1.0, 1.15, 1.25, 0.7];

/// Share of online payments from a device the customer never used before or after.
const ONE_OFF_DEVICE: f64 = 0.05;

/// Mobile networks' shared addresses per country.
const MOBILE_IPS: u32 = 512;

/// One customer's genuine payments over `days` days from `start_day` (days
/// since 1970-01-01), appended to `out` in no particular order.
pub(super) fn customer_payments(
    world: &World,
    seed: u64,
    customer: u32,
    days: u32,
    start_day: i64,
    out: &mut Vec<Payment>,
) {
    let mut rng = rng_for(seed, 2, u64::from(customer));
    let c = &world.customers[customer as usize];
    let mut g = Gen {
        world,
        c,
        customer,
        end: i64::from(days) * DAY,
        out,
    };
    let travel = WeightedIndex::new(TRAVEL_CATEGORIES.iter().map(|t| t.1)).expect("weights");
    for day in 0..i64::from(days) {
        // 1970-01-01 was a Thursday; 0 is Monday.
        let weekday = (start_day + day + 3).rem_euclid(7);
        let midday = day * DAY + DAY / 2;
        let trip = c.trip_at(midday);
        let busy = if trip.is_some() {
            1.3
        } else {
            WEEK[weekday as usize]
        };
        let n = poisson(&mut rng, c.rate * busy);
        for _ in 0..n {
            match trip {
                Some(t) if rng.gen_bool(0.75) => {
                    let cat = TRAVEL_CATEGORIES[travel.sample(&mut rng)].0;
                    g.in_person(&mut rng, day, cat, t.city, Some(t));
                }
                _ => g.everyday(&mut rng, day, weekday as usize),
            }
        }
        g.billing(&mut rng, day, civil_from_days(start_day + day).2);
        for _ in 0..poisson(&mut rng, c.gambling) {
            g.gambling_session(&mut rng, day);
        }
        if c.crypto > 0.0 && rng.gen_bool(c.crypto) {
            let at = day * DAY + hour(&mut rng, &ONLINE, c.shift);
            g.online(&mut rng, at, CRYPTO, 0);
        }
    }
    for t in &c.trips {
        g.trip_bookings(&mut rng, t);
    }
}

/// Draws from a Poisson distribution (0 for a zero mean).
pub(super) fn poisson(rng: &mut Rng64, mean: f64) -> u32 {
    if mean <= 0.0 {
        return 0;
    }
    Poisson::new(mean).map_or(0, |p| p.sample(rng) as u32)
}

/// A second of the day drawn from a daily rhythm, shifted by `shift` hours.
pub(super) fn hour(rng: &mut Rng64, hours: &Hours, shift: i64) -> i64 {
    let total: u32 = hours.iter().map(|&w| u32::from(w)).sum();
    let mut r = rng.gen_range(0..total);
    let mut h = 0;
    while r >= u32::from(hours[h]) {
        r -= u32::from(hours[h]);
        h += 1;
    }
    (h as i64 + shift).rem_euclid(24) * 3600 + rng.gen_range(0..3600)
}

/// An amount at merchant `m`, cents: a fixed price, or the category's median at
/// the merchant's price level times `scale`, spread log-normally.
pub(super) fn amount(rng: &mut Rng64, world: &World, m: u32, scale: f64) -> u32 {
    let merchant = &world.merchants[m as usize];
    let cat = &CATEGORIES[merchant.cat];
    if !cat.prices.is_empty() {
        return cat.prices[rng.gen_range(0..cat.prices.len())];
    }
    let spread = LogNormal::new(0.0, cat.sigma).map_or(1.0, |d| d.sample(rng));
    (cat.median * merchant.price * scale * spread).clamp(50.0, 2_000_000.0) as u32
}

/// A mobile network's address in `country`, shared by many customers.
pub(super) fn mobile_ip(rng: &mut Rng64, country: u8) -> u32 {
    let k = rng.gen_range(0..MOBILE_IPS);
    (u32::from(COUNTRIES[country as usize].ip) << 24) | (k.wrapping_mul(2_654_435_761) & 0xff_ffff)
}

struct Gen<'a> {
    world: &'a World,
    c: &'a Customer,
    customer: u32,
    end: i64,
    out: &'a mut Vec<Payment>,
}

impl Gen<'_> {
    /// Records a payment (inside the run) made `via` a device and address (0: none).
    fn push(
        &mut self,
        ts: i64,
        terminal: u32,
        cents: u32,
        channel: Channel,
        slot: u8,
        via: (u32, u32),
    ) {
        if (0..self.end).contains(&ts) {
            self.out.push(Payment {
                ts,
                customer: self.customer,
                terminal,
                cents,
                card: CardRef::Slot(slot),
                device: via.0,
                ip: via.1,
                channel,
                pattern: Pattern::Genuine,
            });
        }
    }

    fn slot(&self, rng: &mut Rng64, travel: bool) -> u8 {
        let second = if travel { 0.6 } else { 0.25 };
        u8::from(self.c.slots > 1 && rng.gen_bool(second))
    }

    /// An everyday payment at home: the category by the customer's tastes and
    /// the day of the week, then online or in person.
    fn everyday(&mut self, rng: &mut Rng64, day: i64, weekday: usize) {
        let mut cat = self.c.prefs.sample(rng);
        for _ in 0..8 {
            if rng.gen_bool(CATEGORIES[cat].week[weekday] / 1.6) {
                break;
            }
            cat = self.c.prefs.sample(rng);
        }
        let spec = &CATEGORIES[cat];
        if rng.gen_bool(spec.ecom) {
            let hours = if self.c.night_owl && rng.gen_bool(0.3) {
                &NIGHT_OWL
            } else {
                spec.hours
            };
            let at = day * DAY + hour(rng, hours, self.c.shift);
            let slot = self.slot(rng, false);
            self.online(rng, at, cat, slot);
        } else {
            // Now and then in another town of the home country.
            let city = if rng.gen_bool(0.07) {
                let cities = &self.world.country_cities[self.c.country as usize];
                cities[rng.gen_range(0..cities.len())]
            } else {
                self.c.city
            };
            self.in_person(rng, day, cat, city, None);
        }
    }

    /// A payment in a shop of `city` (local time there); regulars at home.
    fn in_person(&mut self, rng: &mut Rng64, day: i64, cat: Cat, city: u32, trip: Option<&Trip>) {
        let spec = &CATEGORIES[cat];
        let regular = self.c.regular_local[cat][rng.gen_range(0..3)];
        let m = if trip.is_none()
            && city == self.c.city
            && regular != u32::MAX
            && rng.gen_bool(spec.repeat)
        {
            regular
        } else {
            match self.world.local_merchant(rng, city, cat) {
                Some(m) => m,
                None => return,
            }
        };
        let country = self.world.cities[city as usize].country;
        let tz = i64::from(COUNTRIES[country as usize].tz);
        let at = day * DAY + hour(rng, spec.hours, self.c.shift) - tz * 3600;
        let cents = amount(rng, self.world, m, self.c.wealth.powf(0.6));
        let channel = if spec.atm {
            Channel::Atm
        } else if cents <= 5000 && rng.gen_bool(self.c.contactless) {
            Channel::Contactless
        } else {
            Channel::Pos
        };
        let device = if channel == Channel::Contactless && self.c.wallet {
            self.c.device_at(0, at)
        } else {
            0
        };
        let terminal = self.world.terminal(rng, m);
        let slot = self.slot(rng, trip.is_some());
        self.push(at, terminal, cents, channel, slot, (device, 0));
    }

    /// An online payment at second `at`: a regular shop or a popular one, from
    /// the phone or the computer, over the home line or the mobile network.
    fn online(&mut self, rng: &mut Rng64, at: i64, cat: Cat, slot: u8) {
        let regular = self.c.regular_online[cat][rng.gen_range(0..3)];
        let m = if regular != u32::MAX && rng.gen_bool(CATEGORIES[cat].repeat) {
            regular
        } else {
            match self.world.online_merchant(rng, cat) {
                Some(m) => m,
                None => return,
            }
        };
        let cents = amount(rng, self.world, m, self.c.wealth.powf(0.6));
        let phone = rng.gen_bool(0.65);
        // Cleared cookies, another browser, a work or borrowed computer: a device
        // id seen once. Ids with the top bit set never clash with issued ones.
        let device = if rng.gen_bool(ONE_OFF_DEVICE) {
            0x8000_0000 | (rng.gen::<u32>() & 0x7fff_ffff)
        } else {
            self.c.device_at(usize::from(!phone), at)
        };
        let trip = self.c.trip_at(at);
        let ip = match trip {
            // Hotel wifi abroad; roaming phones keep their home network's address.
            Some(t) if !phone || rng.gen_bool(0.4) => {
                mobile_ip(rng, self.world.cities[t.city as usize].country)
            }
            _ if phone && rng.gen_bool(0.5) => mobile_ip(rng, self.c.country),
            _ => self.c.home_ip,
        };
        let terminal = self.world.terminal(rng, m);
        self.push(at, terminal, cents, Channel::Ecom, slot, (device, ip));
    }

    /// Subscriptions due today, billed by the merchant at night.
    fn billing(&mut self, rng: &mut Rng64, day: i64, day_of_month: u32) {
        for s in &self.c.subscriptions {
            if s.day == day_of_month {
                let at = day * DAY + hour(rng, &BILLING, 0);
                let terminal = self.world.terminal(rng, s.merchant);
                self.push(at, terminal, s.cents, Channel::Ecom, 0, (0, 0));
            }
        }
    }

    /// An evening of online gambling: several deposits at one site within the hour or two.
    fn gambling_session(&mut self, rng: &mut Rng64, day: i64) {
        let mut at = day * DAY + hour(rng, &NIGHTLIFE, self.c.shift);
        let site = self.c.regular_online[GAMBLING][rng.gen_range(0..2)];
        if site == u32::MAX {
            return;
        }
        let terminal = self.world.terminal(rng, site);
        let device = self.c.device_at(0, at);
        let ip = if rng.gen_bool(0.5) {
            self.c.home_ip
        } else {
            mobile_ip(rng, self.c.country)
        };
        for _ in 0..rng.gen_range(1..=7) {
            let cents = amount(rng, self.world, site, 1.0);
            self.push(at, terminal, cents, Channel::Ecom, 0, (device, ip));
            at += rng.gen_range(3..25) * 60;
        }
    }

    /// The flight and hotel booked online weeks before a trip, or the hotel paid at checkout.
    fn trip_bookings(&mut self, rng: &mut Rng64, t: &Trip) {
        let booked = t.from - rng.gen_range(7..60) * DAY;
        let at = booked - booked.rem_euclid(DAY) + hour(rng, &ONLINE, self.c.shift);
        if t.flight {
            let slot = self.slot(rng, true);
            self.online(rng, at, AIRLINE, slot);
        }
        if t.hotel_online {
            let slot = self.slot(rng, true);
            let at = at + rng.gen_range(60..1800);
            self.online(rng, at, HOTEL, slot);
        } else if let Some(m) = self.world.local_merchant(rng, t.city, HOTEL) {
            let country = self.world.cities[t.city as usize].country;
            let tz = i64::from(COUNTRIES[country as usize].tz);
            let at = t.to - t.to.rem_euclid(DAY) + rng.gen_range(7 * 3600..11 * 3600) - tz * 3600;
            let nights = ((t.to - t.from) / DAY).max(1) as f64;
            let cents = amount(rng, self.world, m, nights.sqrt() * self.c.wealth.powf(0.6));
            let terminal = self.world.terminal(rng, m);
            let slot = self.slot(rng, true);
            self.push(at, terminal, cents, Channel::Pos, slot, (0, 0));
        }
    }
}
