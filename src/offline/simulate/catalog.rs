//! The simulator's fixed tables: countries, merchant categories and the daily
//! and weekly rhythms of spending.

/// Hours of the day, weights 0..24 (issuer clock for home payments, local clock abroad).
pub(super) type Hours = [u8; 24];

/// Shops open 8..21.
pub(super) const RETAIL: Hours = [
    0, 0, 0, 0, 0, 0, 1, 3, 6, 9, 11, 12, 12, 12, 12, 12, 13, 14, 12, 8, 4, 1, 0, 0,
];
/// Coffee, bakeries, kiosks: a morning peak.
pub(super) const MORNING: Hours = [
    0, 0, 0, 0, 0, 1, 4, 12, 14, 12, 9, 8, 8, 7, 6, 6, 7, 8, 7, 5, 3, 2, 1, 0,
];
/// Public transport: the two rush hours.
pub(super) const COMMUTE: Hours = [
    0, 0, 0, 0, 0, 1, 5, 16, 14, 6, 4, 4, 4, 4, 5, 7, 12, 14, 9, 5, 3, 2, 1, 1,
];
/// Lunch and dinner.
pub(super) const MEALS: Hours = [
    0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 5, 12, 14, 8, 4, 3, 4, 8, 13, 14, 10, 5, 2, 1,
];
/// Restaurants: mostly dinner.
pub(super) const EVENING: Hours = [
    1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 3, 5, 3, 2, 2, 3, 6, 10, 14, 14, 12, 8, 4,
];
/// Bars and gambling: late evening into the night.
pub(super) const NIGHTLIFE: Hours = [
    6, 4, 2, 1, 0, 0, 0, 0, 0, 0, 0, 1, 2, 2, 2, 2, 3, 5, 8, 10, 12, 13, 12, 10,
];
/// Online shopping: all day, most in the evening.
pub(super) const ONLINE: Hours = [
    2, 1, 1, 0, 0, 0, 1, 2, 4, 5, 6, 6, 7, 6, 6, 6, 6, 7, 8, 10, 12, 12, 9, 5,
];
/// Fuel, cash machines: the whole waking day.
pub(super) const ALLDAY: Hours = [
    1, 1, 0, 0, 0, 1, 3, 6, 8, 8, 8, 8, 9, 8, 8, 8, 9, 10, 9, 7, 5, 3, 2, 1,
];
/// Taxis: evenings and nights weigh more.
pub(super) const TAXI: Hours = [
    4, 4, 3, 2, 1, 1, 2, 4, 5, 4, 3, 3, 3, 3, 3, 3, 4, 5, 5, 5, 5, 6, 6, 5,
];
/// Night owls' online hours.
pub(super) const NIGHT_OWL: Hours = [
    10, 9, 7, 5, 3, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 3, 6, 9, 10,
];
/// Merchant-initiated billing runs (subscriptions).
pub(super) const BILLING: Hours = [
    0, 2, 6, 8, 6, 3, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

/// Weekday multipliers, Monday first.
pub(super) type Week = [f64; 7];

/// Shops: busy on Saturday, mostly closed on Sunday.
pub(super) const SHOPS: Week = [1.0, 1.0, 1.0, 1.0, 1.15, 1.4, 0.35];
/// No weekly rhythm.
pub(super) const FLAT: Week = [1.0; 7];
/// Work days.
pub(super) const WORKDAYS: Week = [1.2, 1.2, 1.2, 1.2, 1.1, 0.5, 0.4];
/// Going out: Friday and Saturday.
pub(super) const LEISURE: Week = [0.7, 0.8, 0.9, 1.0, 1.4, 1.6, 1.1];
/// Online: a little more on Sunday.
pub(super) const WEB: Week = [1.0, 1.0, 1.0, 1.0, 0.9, 1.0, 1.3];

/// How a category's payments are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Channel {
    /// Card present, chip and PIN.
    Pos,
    /// Card present, tapped (card or phone wallet).
    Contactless,
    /// Card not present.
    Ecom,
    /// Cash machine.
    Atm,
}

impl Channel {
    /// The `CHANNEL` column's value.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Channel::Pos => "pos",
            Channel::Contactless => "contactless",
            Channel::Ecom => "ecom",
            Channel::Atm => "atm",
        }
    }
}

/// A merchant category: what a payment there costs, when and how it is made.
pub(super) struct Category {
    /// Merchant category code.
    pub mcc: u16,
    /// Share of everyday genuine payments (0: only for some customers or occasions).
    pub share: f64,
    /// Median amount, cents (ignored when `prices` is not empty).
    pub median: f64,
    /// Log-normal spread of the amount.
    pub sigma: f64,
    /// Fixed prices, cents: amounts are drawn from these.
    pub prices: &'static [u32],
    /// Share of its payments made online.
    pub ecom: f64,
    /// Daily rhythm.
    pub hours: &'static Hours,
    /// Weekly rhythm.
    pub week: &'static Week,
    /// Card-present merchants per 1000 residents of a city (0: online only).
    pub per_1k: f64,
    /// Online merchants in the category worldwide.
    pub online: u32,
    /// Chance that a customer pays at one of their regular merchants.
    pub repeat: f64,
    /// Paid at cash machines.
    pub atm: bool,
}

macro_rules! cat {
    ($mcc:expr, $share:expr, $median:expr, $sigma:expr, $prices:expr, $ecom:expr, $hours:expr, $week:expr, $per_1k:expr, $online:expr, $repeat:expr) => {
        Category {
            mcc: $mcc,
            share: $share,
            median: $median,
            sigma: $sigma,
            prices: $prices,
            ecom: $ecom,
            hours: &$hours,
            week: &$week,
            per_1k: $per_1k,
            online: $online,
            repeat: $repeat,
            atm: $mcc == 6011,
        }
    };
}

/// Index of a category in [`CATEGORIES`].
pub(super) type Cat = usize;

pub(super) const GROCERY: Cat = 0;
pub(super) const CONVENIENCE: Cat = 1;
pub(super) const FAST_FOOD: Cat = 2;
pub(super) const RESTAURANT: Cat = 3;
pub(super) const BAR: Cat = 4;
pub(super) const TRANSIT: Cat = 5;
pub(super) const FUEL: Cat = 7;
pub(super) const CLOTHING: Cat = 9;
pub(super) const DEPARTMENT: Cat = 10;
pub(super) const ELECTRONICS: Cat = 11;
pub(super) const MARKETPLACE: Cat = 13;
pub(super) const DIGITAL: Cat = 14;
pub(super) const TELECOM: Cat = 15;
pub(super) const GIFT_CARDS: Cat = 16;
pub(super) const JEWELRY: Cat = 17;
pub(super) const CHARITY: Cat = 18;
pub(super) const ATM: Cat = 19;
pub(super) const MISC: Cat = 20;
pub(super) const HOTEL: Cat = 21;
pub(super) const AIRLINE: Cat = 22;
pub(super) const GAMBLING: Cat = 23;
pub(super) const CRYPTO: Cat = 24;
pub(super) const STREAMING: Cat = 25;

/// Every category; the indices above name them. Columns: MCC, share of
/// everyday payments, median amount (cents), spread, fixed prices, share
/// online, daily and weekly rhythm, in-person merchants per 1000 residents,
/// online merchants, chance of paying at a regular.
#[rustfmt::skip]
pub(super) const CATEGORIES: [Category; 27] = [
    cat!(5411, 0.20, 2600.0, 0.75, &[], 0.04, RETAIL, SHOPS, 6.0, 8, 0.8), // grocery
    cat!(5499, 0.11, 550.0, 0.6, &[], 0.0, MORNING, FLAT, 8.0, 0, 0.75), // convenience, coffee, bakery
    cat!(5814, 0.08, 1100.0, 0.45, &[], 0.15, MEALS, FLAT, 6.0, 6, 0.6), // fast food
    cat!(5812, 0.06, 3800.0, 0.6, &[], 0.03, EVENING, LEISURE, 10.0, 4, 0.35), // restaurant
    cat!(5813, 0.03, 1400.0, 0.6, &[], 0.0, NIGHTLIFE, LEISURE, 6.0, 0, 0.5), // bar
    cat!(4111, 0.06, 0.0, 0.0, &[240, 290, 320, 340, 410, 860, 1950], 0.3, COMMUTE, WORKDAYS, 0.5, 4, 0.95), // public transport
    cat!(4121, 0.025, 1600.0, 0.5, &[], 0.8, TAXI, LEISURE, 1.0, 3, 0.9), // taxi, ride hailing
    cat!(5541, 0.055, 5200.0, 0.4, &[], 0.0, ALLDAY, FLAT, 2.0, 0, 0.7), // fuel
    cat!(5912, 0.035, 1500.0, 0.7, &[], 0.1, RETAIL, SHOPS, 2.0, 5, 0.7), // pharmacy
    cat!(5691, 0.045, 5500.0, 0.75, &[], 0.45, RETAIL, SHOPS, 4.0, 30, 0.3), // clothing
    cat!(5311, 0.03, 5000.0, 0.9, &[], 0.25, RETAIL, SHOPS, 1.0, 8, 0.5), // department store
    cat!(5732, 0.015, 8500.0, 1.15, &[], 0.55, RETAIL, SHOPS, 1.0, 20, 0.3), // electronics
    cat!(5942, 0.015, 1800.0, 0.6, &[], 0.5, RETAIL, SHOPS, 1.0, 10, 0.4), // books, media
    cat!(5964, 0.06, 3000.0, 0.9, &[], 1.0, ONLINE, WEB, 0.0, 40, 0.85), // online marketplace
    cat!(5816, 0.035, 0.0, 0.0, &[99, 199, 299, 499, 799, 999, 1499, 1999], 1.0, ONLINE, WEB, 0.0, 60, 0.7), // digital goods, games
    cat!(4814, 0.012, 0.0, 0.0, &[1000, 1500, 2000, 2500, 3000, 5000], 0.7, ALLDAY, FLAT, 0.5, 10, 0.9), // phone top-up
    cat!(5947, 0.008, 0.0, 0.0, &[1500, 2000, 2500, 5000, 10000], 0.5, RETAIL, SHOPS, 0.5, 10, 0.3), // gift cards
    cat!(5944, 0.003, 14000.0, 0.9, &[], 0.3, RETAIL, SHOPS, 0.5, 6, 0.3), // jewellery
    cat!(8398, 0.004, 0.0, 0.0, &[200, 500, 1000, 2000, 2500, 5000], 1.0, ONLINE, FLAT, 0.0, 30, 0.8), // charity
    cat!(6011, 0.035, 0.0, 0.0, &[2000, 4000, 5000, 5000, 6000, 10000, 10000, 15000, 20000], 0.0, ALLDAY, FLAT, 2.0, 0, 0.6), // cash machine
    cat!(5999, 0.03, 2000.0, 0.9, &[], 0.35, RETAIL, SHOPS, 3.0, 20, 0.3), // miscellaneous retail
    cat!(7011, 0.0, 14000.0, 0.6, &[], 0.5, ALLDAY, FLAT, 1.0, 6, 0.0), // hotel
    cat!(4511, 0.0, 22000.0, 0.55, &[], 1.0, ONLINE, FLAT, 0.0, 15, 0.0), // airline
    cat!(7995, 0.0, 0.0, 0.0, &[1000, 2000, 2500, 5000, 10000], 1.0, NIGHTLIFE, LEISURE, 0.0, 12, 0.9), // gambling
    cat!(6051, 0.0, 15000.0, 0.9, &[], 1.0, ONLINE, FLAT, 0.0, 6, 0.9), // crypto exchange
    cat!(4899, 0.0, 0.0, 0.0, &[799, 999, 1299, 1349, 1799], 1.0, BILLING, FLAT, 0.0, 12, 1.0), // streaming subscription
    cat!(7523, 0.03, 200.0, 0.6, &[], 0.4, RETAIL, WORKDAYS, 1.0, 5, 0.8), // parking, vending machines
];

/// Categories paid at a holiday destination.
pub(super) const TRAVEL_CATEGORIES: [(Cat, f64); 10] = [
    (RESTAURANT, 0.22),
    (BAR, 0.12),
    (FAST_FOOD, 0.12),
    (CONVENIENCE, 0.12),
    (GROCERY, 0.1),
    (TRANSIT, 0.07),
    (CLOTHING, 0.08),
    (MISC, 0.1),
    (ATM, 0.05),
    (HOTEL, 0.02),
];

/// Categories where stolen cards are cashed out online (high risk).
pub(super) const HIGH_RISK: [Cat; 4] = [GAMBLING, CRYPTO, GIFT_CARDS, TELECOM];

/// Categories where stolen goods can be resold: fraudsters' favourites in person.
pub(super) const RESALE: [(Cat, f64); 6] = [
    (ELECTRONICS, 0.3),
    (JEWELRY, 0.1),
    (DEPARTMENT, 0.2),
    (CLOTHING, 0.15),
    (ATM, 0.15),
    (GIFT_CARDS, 0.1),
];

/// A country: where customers live, travel, shop online, and where stolen cards go.
pub(super) struct Country {
    /// ISO 3166 code.
    pub code: &'static str,
    /// Share of the bank's customers living there.
    pub home: f64,
    /// Weight as a holiday destination.
    pub travel: f64,
    /// Weight as the seat of online merchants.
    pub online: f64,
    /// Weight as the place where stolen cards are spent in person.
    pub fraud: f64,
    /// Local time minus the bank's clock, hours.
    pub tz: i8,
    /// First octet of the country's IP addresses (made up, one per country).
    pub ip: u8,
    /// Cities with merchants.
    pub cities: u8,
}

macro_rules! country {
    ($code:expr, $home:expr, $travel:expr, $online:expr, $fraud:expr, $tz:expr, $ip:expr, $cities:expr) => {
        Country {
            code: $code,
            home: $home,
            travel: $travel,
            online: $online,
            fraud: $fraud,
            tz: $tz,
            ip: $ip,
            cities: $cities,
        }
    };
}

/// Every country the simulation knows. Columns: code, share of customers,
/// weight as holiday destination, as seat of web shops, as place where cloned
/// cards are spent, time zone against the bank's, IP first octet, cities.
#[rustfmt::skip]
pub(super) const COUNTRIES: [Country; 19] = [
    country!("DE", 0.30, 0.03, 0.15, 0.02, 0, 84, 8),
    country!("FR", 0.20, 0.10, 0.10, 0.04, 0, 90, 6),
    country!("NL", 0.15, 0.03, 0.20, 0.02, 0, 145, 5),
    country!("BE", 0.10, 0.01, 0.02, 0.02, 0, 81, 4),
    country!("ES", 0.10, 0.14, 0.02, 0.08, 0, 88, 6),
    country!("IT", 0.10, 0.12, 0.02, 0.06, 0, 93, 6),
    country!("AT", 0.05, 0.05, 0.01, 0.02, 0, 178, 3),
    country!("PT", 0.0, 0.10, 0.0, 0.04, -1, 89, 2),
    country!("GR", 0.0, 0.08, 0.0, 0.03, 1, 94, 2),
    country!("HR", 0.0, 0.06, 0.0, 0.02, 0, 31, 2),
    country!("GB", 0.0, 0.08, 0.10, 0.12, -1, 86, 3),
    country!("US", 0.0, 0.07, 0.12, 0.15, -6, 23, 3),
    country!("TR", 0.0, 0.05, 0.0, 0.10, 2, 78, 2),
    country!("TH", 0.0, 0.04, 0.0, 0.08, 6, 49, 2),
    country!("MA", 0.0, 0.03, 0.0, 0.08, -1, 41, 2),
    country!("BR", 0.0, 0.01, 0.0, 0.10, -4, 177, 2),
    country!("IE", 0.0, 0.0, 0.12, 0.0, -1, 87, 0),
    country!("LU", 0.0, 0.0, 0.10, 0.0, 0, 80, 0),
    country!("CN", 0.0, 0.0, 0.04, 0.0, 7, 36, 0),
];
