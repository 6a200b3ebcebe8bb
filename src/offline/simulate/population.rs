//! The simulated world: cities, merchants and their terminals, and customers
//! with homes, spending habits, cards, devices, subscriptions and trips.

use super::catalog::{Cat, CATEGORIES, COUNTRIES, HOTEL, STREAMING, TELECOM, TRANSIT};
use super::{rng_for, Rng64, DAY};
use rand::Rng;
use rand_distr::{Distribution, LogNormal, WeightedIndex};

/// A place with card-present merchants.
pub(super) struct City {
    /// Index into [`COUNTRIES`].
    pub country: u8,
}

/// A merchant: one category, in a city or online.
pub(super) struct Merchant {
    /// Index into [`CATEGORIES`].
    pub cat: Cat,
    /// Index into [`COUNTRIES`].
    pub country: u8,
    /// Its price level against the category's median.
    pub price: f64,
    /// Its first terminal; the others follow.
    pub first_terminal: u32,
    /// Number of terminals (tills, or one for a web shop).
    pub terminals: u32,
}

/// A card's life: whose, which slot of the wallet, which BIN, when valid.
#[derive(Clone)]
pub(super) struct Card {
    /// Holder.
    pub customer: u32,
    /// Wallet slot (0 the main card).
    pub slot: u8,
    /// Index of the bank's BIN range the number is in.
    pub bin: u8,
    /// First second of use.
    pub from: i64,
    /// Second it was replaced (`i64::MAX` while in use).
    pub to: i64,
}

/// A subscription billed monthly by the merchant (no device, no IP).
pub(super) struct Subscription {
    /// Merchant.
    pub merchant: u32,
    /// Amount, cents.
    pub cents: u32,
    /// Day of the month it is billed (1..=28).
    pub day: u32,
}

/// A trip away from home.
pub(super) struct Trip {
    /// First second.
    pub from: i64,
    /// Last second.
    pub to: i64,
    /// Destination city.
    pub city: u32,
    /// Whether a flight was booked online beforehand.
    pub flight: bool,
    /// Whether the hotel was paid online when booking (else at the desk at the end).
    pub hotel_online: bool,
}

/// A customer of the bank.
pub(super) struct Customer {
    /// Home country (index into [`COUNTRIES`]).
    pub country: u8,
    /// Home city.
    pub city: u32,
    /// Everyday payments per day.
    pub rate: f64,
    /// Amount level against the categories' medians.
    pub wealth: f64,
    /// Everyday category choice.
    pub prefs: WeightedIndex<f64>,
    /// Hours this customer's day is shifted by (early birds -1, late risers +2).
    pub shift: i64,
    /// Shops online at night as well.
    pub night_owl: bool,
    /// Pays contactless with a phone wallet (the phone's device id is sent).
    pub wallet: bool,
    /// Share of small card-present payments made contactless.
    pub contactless: f64,
    /// Up to three regular card-present merchants per category (`u32::MAX`: none).
    pub regular_local: Vec<[u32; 3]>,
    /// Device ids per slot (0 phone, 1 computer) with the second each came into use.
    pub devices: Vec<Vec<(i64, u32)>>,
    /// Home internet address.
    pub home_ip: u32,
    /// Monthly subscriptions.
    pub subscriptions: Vec<Subscription>,
    /// Trips, in time order.
    pub trips: Vec<Trip>,
    /// Gambling sessions per day (0 for most).
    pub gambling: f64,
    /// Crypto purchases per day (0 for most).
    pub crypto: f64,
    /// Cards the customer holds: 1 or 2 slots.
    pub slots: u8,
    /// Ids of every card the customer has had.
    pub cards: Vec<u32>,
    /// Regular online merchants per category (`u32::MAX`: none).
    pub regular_online: Vec<[u32; 3]>,
}

impl Customer {
    /// The device in `slot` at second `ts`.
    pub fn device_at(&self, slot: usize, ts: i64) -> u32 {
        let history = &self.devices[slot.min(self.devices.len() - 1)];
        let k = history.partition_point(|&(from, _)| from <= ts);
        history[k.saturating_sub(1)].1
    }

    /// The trip under way at second `ts`, if any.
    pub fn trip_at(&self, ts: i64) -> Option<&Trip> {
        self.trips.iter().find(|t| t.from <= ts && ts <= t.to)
    }
}

/// Everything that exists before the first payment.
pub(super) struct World {
    /// Cities, home countries' first.
    pub cities: Vec<City>,
    /// Merchants.
    pub merchants: Vec<Merchant>,
    /// Merchant of each terminal id.
    pub terminal_merchant: Vec<u32>,
    /// Card-present merchants by `city * CATEGORIES.len() + category`.
    pub local: Vec<Vec<u32>>,
    /// Online merchants per category, with their popularity (Zipf).
    pub online: Vec<(Vec<u32>, Option<WeightedIndex<f64>>)>,
    /// Customers.
    pub customers: Vec<Customer>,
    /// Every card ever issued; the index is the card id.
    pub cards: Vec<Card>,
    /// Devices handed out so far (ids are 1..=devices).
    pub devices: u32,
    /// Cities of each country.
    pub country_cities: Vec<Vec<u32>>,
}

/// BIN ranges of the bank (debit and credit).
pub(super) const BINS: u8 = 6;

impl World {
    /// Builds a world of `customers` customers for a run of `days` days.
    pub fn build(seed: u64, customers: u32, days: u32) -> Self {
        let mut rng = rng_for(seed, 0, 0);
        let (cities, country_cities) = cities();
        let homes = assign_homes(&mut rng, &country_cities, customers);
        let mut residents = vec![0u32; cities.len()];
        for &(_, city) in &homes {
            residents[city as usize] += 1;
        }
        let mut world = World {
            local: vec![Vec::new(); cities.len() * CATEGORIES.len()],
            online: Vec::new(),
            cities,
            merchants: Vec::new(),
            terminal_merchant: Vec::new(),
            customers: Vec::new(),
            cards: Vec::new(),
            devices: 0,
            country_cities,
        };
        world.add_local_merchants(&mut rng, &residents, customers);
        world.add_online_merchants(&mut rng);
        for (k, &(country, city)) in homes.iter().enumerate() {
            let mut rng = rng_for(seed, 1, k as u64);
            let c = world.customer(&mut rng, k as u32, country, city, days);
            world.customers.push(c);
        }
        world
    }

    /// A terminal of merchant `m`.
    pub fn terminal(&self, rng: &mut Rng64, m: u32) -> u32 {
        let m = &self.merchants[m as usize];
        m.first_terminal + rng.gen_range(0..m.terminals)
    }

    /// A card-present merchant of category `cat` in `city` (every town has
    /// one of each category sold in person).
    pub fn local_merchant(&self, rng: &mut Rng64, city: u32, cat: Cat) -> Option<u32> {
        let here = &self.local[city as usize * CATEGORIES.len() + cat];
        (!here.is_empty()).then(|| here[rng.gen_range(0..here.len())])
    }

    /// An online merchant of category `cat`, popular ones more often.
    pub fn online_merchant(&self, rng: &mut Rng64, cat: Cat) -> Option<u32> {
        let (list, weights) = &self.online[cat];
        weights.as_ref().map(|w| list[w.sample(rng)])
    }

    /// An online merchant of `cat`, uniformly: small shops as likely as big ones.
    pub fn any_online_merchant(&self, rng: &mut Rng64, cat: Cat) -> Option<u32> {
        let list = &self.online[cat].0;
        (!list.is_empty()).then(|| list[rng.gen_range(0..list.len())])
    }

    /// The card in `slot` of `customer` at second `ts`.
    pub fn card_at(&self, customer: u32, slot: u8, ts: i64) -> u32 {
        let ids = &self.customers[customer as usize].cards;
        let live = |&&id: &&u32| {
            let c = &self.cards[id as usize];
            c.slot == slot && c.from <= ts && ts < c.to
        };
        // A slot always holds a card: the first is valid from the start, and
        // each replacement from the moment the one before ends.
        *ids.iter()
            .find(live)
            .expect("a card in every slot at every time")
    }

    /// Issues a new card to `customer`'s `slot` from second `from`, ending the
    /// one in use then.
    pub fn reissue(&mut self, customer: u32, slot: u8, from: i64) {
        let (mut bin, mut to) = (0, i64::MAX);
        for &id in &self.customers[customer as usize].cards {
            let c = &mut self.cards[id as usize];
            if c.slot != slot {
                continue;
            }
            if c.from <= from && from < c.to {
                (c.to, bin) = (from, c.bin);
            } else if c.from > from {
                to = to.min(c.from);
            }
        }
        self.issue(customer, slot, bin, from, to);
    }

    fn issue(&mut self, customer: u32, slot: u8, bin: u8, from: i64, to: i64) -> u32 {
        let id = self.cards.len() as u32;
        self.cards.push(Card {
            customer,
            slot,
            bin,
            from,
            to,
        });
        if let Some(c) = self.customers.get_mut(customer as usize) {
            c.cards.push(id);
        }
        id
    }

    /// A new device id.
    pub fn new_device(&mut self) -> u32 {
        self.devices += 1;
        self.devices
    }

    fn add_merchant(&mut self, rng: &mut Rng64, cat: Cat, country: u8, terminals: u32) -> u32 {
        let spread = if CATEGORIES[cat].prices.is_empty() {
            0.3
        } else {
            0.0
        };
        let price = LogNormal::new(0.0, spread).map_or(1.0, |d| d.sample(rng));
        self.merchants.push(Merchant {
            cat,
            country,
            price,
            first_terminal: self.terminal_merchant.len() as u32,
            terminals,
        });
        let id = (self.merchants.len() - 1) as u32;
        self.terminal_merchant
            .extend(std::iter::repeat_n(id, terminals as usize));
        id
    }

    fn add_local_merchants(&mut self, rng: &mut Rng64, residents: &[u32], customers: u32) {
        for (city, &residents) in residents.iter().enumerate() {
            let country = self.cities[city].country;
            // Small home towns and holiday towns still have their shops; as
            // many as the bank's customers that go there call for.
            let floor = if COUNTRIES[country as usize].home > 0.0 {
                customers / 50
            } else {
                customers / 10
            };
            let people = f64::from(residents.max(floor).max(10));
            for (cat, c) in CATEGORIES.iter().enumerate() {
                if c.per_1k == 0.0 || c.ecom >= 1.0 {
                    continue;
                }
                // A bank has a few per cent of a town as customers, who share its shops
                // with everyone else: two merchants per resident-thousand per unit.
                let n = (2.0 * c.per_1k * people / 1000.0).ceil() as u32;
                for _ in 0..n {
                    let tills = match cat {
                        0 | 10 => rng.gen_range(1..=5),
                        HOTEL | TRANSIT => rng.gen_range(1..=3),
                        _ if c.atm => 1,
                        _ => 1 + u32::from(rng.gen_bool(0.3)),
                    };
                    let m = self.add_merchant(rng, cat, country, tills);
                    self.local[city * CATEGORIES.len() + cat].push(m);
                }
            }
        }
    }

    fn add_online_merchants(&mut self, rng: &mut Rng64) {
        let seats = WeightedIndex::new(COUNTRIES.iter().map(|c| c.online)).expect("weights");
        for (cat, c) in CATEGORIES.iter().enumerate() {
            let list: Vec<u32> = (0..c.online)
                .map(|_| {
                    let country = seats.sample(rng) as u8;
                    self.add_merchant(rng, cat, country, 1)
                })
                .collect();
            // Zipf popularity: a few big web shops carry most online payments.
            let weights = WeightedIndex::new((1..=list.len()).map(|r| 1.0 / r as f64)).ok();
            self.online.push((list, weights));
        }
    }
}

impl World {
    /// A customer living in `city`, with habits, cards, devices, subscriptions and trips.
    fn customer(
        &mut self,
        rng: &mut Rng64,
        id: u32,
        country: u8,
        city: u32,
        days: u32,
    ) -> Customer {
        let ln = |median: f64, sigma: f64| LogNormal::new(median.ln(), sigma).expect("sigma >= 0");
        let prefs = CATEGORIES
            .iter()
            .map(|c| c.share * ln(1.0, 0.7).sample(rng))
            .collect::<Vec<_>>();
        let regular_local = (0..CATEGORIES.len())
            .map(|cat| [0; 3].map(|_| self.local_merchant(rng, city, cat).unwrap_or(u32::MAX)))
            .collect();
        let regular_online = (0..CATEGORIES.len())
            .map(|cat| [0; 3].map(|_| self.online_merchant(rng, cat).unwrap_or(u32::MAX)))
            .collect();
        let end = i64::from(days) * DAY;
        let devices = (0..1 + usize::from(rng.gen_bool(0.7)))
            .map(|_| self.device_history(rng, end))
            .collect();
        let slots = 1 + u8::from(rng.gen_bool(0.3));
        let mut cards = Vec::new();
        for slot in 0..slots {
            let bin = rng.gen_range(0..BINS / 2) + slot * (BINS / 2);
            // Cards expire or get lost: about one in three years is replaced.
            let renewed = rng.gen_bool((f64::from(days) / 1100.0).min(1.0));
            let at = if renewed { rng.gen_range(0..end) } else { end };
            cards.push(self.issue(id, slot, bin, 0, if renewed { at } else { i64::MAX }));
            if renewed {
                cards.push(self.issue(id, slot, bin, at, i64::MAX));
            }
        }
        let subscriptions = (0..[0, 1, 1, 2, 2, 3, 4][rng.gen_range(0..7)])
            .filter_map(|_| {
                let cat = if rng.gen_bool(0.75) {
                    STREAMING
                } else {
                    TELECOM
                };
                let prices = CATEGORIES[cat].prices;
                Some(Subscription {
                    merchant: self.online_merchant(rng, cat)?,
                    cents: prices[rng.gen_range(0..prices.len())],
                    day: rng.gen_range(1..=28),
                })
            })
            .collect();
        Customer {
            country,
            city,
            rate: ln(1.6, 0.5).sample(rng).clamp(0.2, 8.0),
            wealth: ln(1.0, 0.35).sample(rng),
            prefs: WeightedIndex::new(prefs).expect("some everyday category"),
            shift: [-1, 0, 0, 0, 1, 2][rng.gen_range(0..6)],
            night_owl: rng.gen_bool(0.08),
            wallet: rng.gen_bool(0.3),
            contactless: rng.gen_range(0.3..0.95),
            regular_local,
            regular_online,
            devices,
            home_ip: (u32::from(COUNTRIES[country as usize].ip) << 24)
                | (rng.gen::<u32>() & 0xff_ffff),
            subscriptions,
            trips: self.trips(rng, country, city, days),
            gambling: if rng.gen_bool(0.03) {
                ln(0.25, 0.5).sample(rng)
            } else {
                0.0
            },
            crypto: if rng.gen_bool(0.02) {
                rng.gen_range(0.02..0.1)
            } else {
                0.0
            },
            slots,
            cards,
        }
    }

    /// A device and the ones that replace it (phones change about every 20 months).
    fn device_history(&mut self, rng: &mut Rng64, end: i64) -> Vec<(i64, u32)> {
        let mut history = vec![(i64::MIN, self.new_device())];
        let mut t = 0;
        loop {
            t += (Distribution::<f64>::sample(&rand_distr::Exp1, rng) * 600.0 * DAY as f64) as i64;
            if t >= end {
                return history;
            }
            history.push((t, self.new_device()));
        }
    }

    /// Trips during the run: a third of customers stay home; the others go away
    /// a few times a year, a quarter of the trips inside their own country.
    fn trips(&self, rng: &mut Rng64, country: u8, city: u32, days: u32) -> Vec<Trip> {
        let mut trips = Vec::new();
        if rng.gen_bool(0.35) {
            return trips;
        }
        let per_year = LogNormal::new(2.5f64.ln(), 0.6).expect("sigma").sample(rng);
        let abroad = WeightedIndex::new(COUNTRIES.iter().enumerate().map(|(k, c)| {
            if k == country as usize {
                0.0
            } else {
                c.travel
            }
        }))
        .expect("destinations");
        let mut t = -20 * DAY;
        loop {
            t += (Distribution::<f64>::sample(&rand_distr::Exp1, rng) * 365.0 / per_year
                * DAY as f64) as i64;
            if t >= i64::from(days) * DAY {
                return trips;
            }
            let nights = if rng.gen_bool(0.5) {
                rng.gen_range(1..=3)
            } else {
                rng.gen_range(4..=13)
            };
            let domestic = rng.gen_bool(0.25);
            let dest = if domestic {
                country as usize
            } else {
                abroad.sample(rng)
            };
            let choices: Vec<u32> = self.country_cities[dest]
                .iter()
                .copied()
                .filter(|&c| c != city)
                .collect();
            let Some(&dest_city) = choices.get(rng.gen_range(0..choices.len().max(1))) else {
                continue;
            };
            let from = t - t.rem_euclid(DAY) + rng.gen_range(6..20) * 3600;
            let to = from + nights * DAY + rng.gen_range(0..8) * 3600;
            trips.push(Trip {
                from,
                to,
                city: dest_city,
                flight: rng.gen_bool(if domestic { 0.1 } else { 0.8 }),
                hotel_online: rng.gen_bool(0.5),
            });
            t = to;
        }
    }
}

/// Cities of every country, and the cities of each country.
fn cities() -> (Vec<City>, Vec<Vec<u32>>) {
    let mut cities = Vec::new();
    let mut by_country = vec![Vec::new(); COUNTRIES.len()];
    for (k, c) in COUNTRIES.iter().enumerate() {
        for _ in 0..c.cities {
            by_country[k].push(cities.len() as u32);
            cities.push(City { country: k as u8 });
        }
    }
    (cities, by_country)
}

/// Home country and city of each customer; bigger cities (Zipf) hold more.
fn assign_homes(rng: &mut Rng64, by_country: &[Vec<u32>], customers: u32) -> Vec<(u8, u32)> {
    let countries = WeightedIndex::new(COUNTRIES.iter().map(|c| c.home)).expect("weights");
    (0..customers)
        .map(|_| {
            let country = countries.sample(rng);
            let list = &by_country[country];
            let zipf =
                WeightedIndex::new((1..=list.len()).map(|r| 1.0 / r as f64)).expect("cities");
            (country as u8, list[zipf.sample(rng)])
        })
        .collect()
}
