//! One sliding time window over an entity's event ring, maintained incrementally.

/// Units of [`Money`] per unit of the base currency.
pub const MONEY_SCALE: i64 = 10_000;

/// An amount of the base currency, exactly: an integer count of 1/10,000 units.
///
/// Every ISO 4217 currency has at most four minor digits (CLF, UYW), so any
/// price in any currency is a whole number of these units, and sums and
/// differences are exact, however many events enter and leave a window. An
/// `i64` holds +-9.2e14 base units: 922,337 payments of 1e9 (the default
/// `processing.max_amount`) in one window. Window sums add and subtract with
/// wrapping arithmetic, so an intermediate overflow cancels out and only the
/// window's true sum must fit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(pub i64);

impl Money {
    /// The nearest [`Money`] to `amount` base units, halves away from zero; a
    /// converted amount with more than four decimals is rounded here, once.
    /// Saturates below `i64::MAX` (which [`AmountFilter::ALL`] leaves out); NaN gives 0.
    #[inline]
    pub fn from_f64(amount: f64) -> Money {
        let units = amount * MONEY_SCALE as f64;
        // Adding 0.5 is exact below 2^52 and the cast truncates: the nearest
        // integer, without a call to `round` (no rounding instruction in the
        // baseline x86-64 target).
        let magnitude = (units.abs() + 0.5) as i64;
        Money(if units < 0.0 { -magnitude } else { magnitude }.min(i64::MAX - 1))
    }

    /// The amount in base units: the `f64` nearest to the exact decimal value
    /// (so 42.24 prints as `42.24`).
    #[inline]
    pub fn to_f64(self) -> f64 {
        self.0 as f64 / MONEY_SCALE as f64
    }
}

/// One observed event in an entity's ring (16 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Amount of the event.
    pub amount: Money,
    /// Event time, whole seconds since the epoch.
    pub ts: u32,
    /// Bits 0-9: milliseconds within `ts`; bit 10: labelled; bit 11: labelled
    /// fraud; bits 12-31: a tag of the event id (which entry a label is for).
    meta: u32,
}

const MS_BITS: u32 = 0x3ff;
const LABELLED: u32 = 1 << 10;
const FRAUD: u32 = 1 << 11;
const TAG_SHIFT: u32 = 12;
/// The bits of an event id tag an [`Entry`] keeps.
pub(crate) const TAG_MASK: u32 = u32::MAX >> TAG_SHIFT;

// Entries are the bulk of an entity's memory: keep them at 16 bytes.
const _: () = assert!(std::mem::size_of::<Entry>() == 16);

impl Entry {
    /// An unlabelled entry at `ts_ms` (epoch ms, at or after the epoch) for the
    /// event whose id tag is `tag` (only its low 20 bits are kept).
    #[inline]
    pub fn new(ts_ms: i64, amount: Money, tag: u32) -> Entry {
        let ts = ts_ms.div_euclid(1000).clamp(0, i64::from(u32::MAX)) as u32;
        Entry {
            amount,
            ts,
            meta: ts_ms.rem_euclid(1000) as u32 | (tag << TAG_SHIFT),
        }
    }

    /// Event time, epoch milliseconds.
    #[inline]
    pub fn ts_ms(&self) -> i64 {
        i64::from(self.ts) * 1000 + i64::from(self.meta & MS_BITS)
    }

    /// 1 once a label arrived for this event.
    #[inline]
    pub fn labelled(&self) -> u32 {
        (self.meta >> 10) & 1
    }

    /// 1 if its label says fraud.
    #[inline]
    pub fn fraud(&self) -> u32 {
        (self.meta >> 11) & 1
    }

    /// The event id tag given to [`Entry::new`] (20 bits).
    #[inline]
    pub fn tag(&self) -> u32 {
        self.meta >> TAG_SHIFT
    }

    /// Records the event's label (replacing an earlier one).
    #[inline]
    pub fn set_label(&mut self, fraud: bool) {
        self.meta = (self.meta & !FRAUD) | LABELLED | if fraud { FRAUD } else { 0 };
    }
}

/// Which events a window aggregates, by amount: `[min, max)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmountFilter {
    /// Inclusive lower bound.
    pub min: Money,
    /// Exclusive upper bound.
    pub max: Money,
}

impl AmountFilter {
    /// The filter that accepts everything.
    pub const ALL: AmountFilter = AmountFilter {
        min: Money(i64::MIN),
        max: Money(i64::MAX),
    };

    /// Whether the event counts in the window.
    #[inline]
    pub fn accepts(&self, amount: Money) -> bool {
        amount >= self.min && amount < self.max
    }
}

/// The shape of a window: events with time in `(t - delay - length, t - delay]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSpec {
    /// Window length in seconds.
    pub length_s: u32,
    /// How long before the current event the window ends, in seconds.
    pub delay_s: u32,
    /// Which events count.
    pub filter: AmountFilter,
    /// What [`WindowAcc::sum`] adds up.
    pub value: WindowValue,
}

/// What a window's [`WindowAcc::sum`] adds up over its events. Every value is
/// a whole number computed from the entry alone, so sums are exact and do not
/// depend on the order events came in (live, restored or replayed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WindowValue {
    /// The amount, in [`Money`] units.
    #[default]
    Amount,
    /// The square of the amount in whole cents (the amount rounded to 1/100,
    /// halves away from zero): the second moment, for a standard deviation.
    /// Exact while the window's true sum stays below 2^63 cents², e.g. 10,000
    /// payments of 300,000.
    AmountSquared,
    /// The hour of day (UTC) as a point on the 24-hour circle: its cosine
    /// times [`HOUR_SCALE`] in the low 32 bits plus its sine times
    /// [`HOUR_SCALE`] times 2^32, so one wrapping sum carries both
    /// coordinates ([`hour_vector`] splits them); exact for 200,000 events.
    HourVector,
}

/// Scale of the coordinates a [`WindowValue::HourVector`] window adds up.
pub const HOUR_SCALE: i64 = 10_000;

/// `round(HOUR_SCALE * (cos, sin)(2 pi h / 24))` for h = 0..23, written out
/// so every platform adds the same integers (no libm call).
const HOUR_POINTS: [(i64, i64); 24] = [
    (10000, 0),
    (9659, 2588),
    (8660, 5000),
    (7071, 7071),
    (5000, 8660),
    (2588, 9659),
    (0, 10000),
    (-2588, 9659),
    (-5000, 8660),
    (-7071, 7071),
    (-8660, 5000),
    (-9659, 2588),
    (-10000, 0),
    (-9659, -2588),
    (-8660, -5000),
    (-7071, -7071),
    (-5000, -8660),
    (-2588, -9659),
    (0, -10000),
    (2588, -9659),
    (5000, -8660),
    (7071, -7071),
    (8660, -5000),
    (9659, -2588),
];

/// The point of hour `h` (0..23) on the 24-hour circle, times [`HOUR_SCALE`].
#[inline]
pub fn hour_point(h: u32) -> (i64, i64) {
    HOUR_POINTS[h as usize % 24]
}

/// The square of `amount` in whole cents (halves away from zero), as a
/// [`WindowValue::AmountSquared`] window adds it up.
#[inline]
pub fn cents_squared(amount: Money) -> i64 {
    let c = amount.0 / 100 + (amount.0 % 100) / 50;
    c.wrapping_mul(c)
}

/// The (cosine, sine) sums a [`WindowValue::HourVector`] window holds in `sum`.
#[inline]
pub fn hour_vector(sum: Money) -> (i64, i64) {
    let cos = i64::from(sum.0 as i32);
    (cos, sum.0.wrapping_sub(cos) >> 32)
}

impl WindowValue {
    /// This value of entry `e`.
    #[inline(always)]
    fn of(self, e: &Entry) -> i64 {
        match self {
            WindowValue::Amount => e.amount.0,
            WindowValue::AmountSquared => cents_squared(e.amount),
            WindowValue::HourVector => {
                let (cos, sin) = hour_point(e.ts % 86_400 / 3600);
                cos.wrapping_add(sin << 32)
            }
        }
    }
}

/// Running aggregates of one window; `start..end` are ring sequence numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowAcc {
    /// Sequence number of the oldest entry inside the window.
    pub start: u32,
    /// One past the sequence number of the newest entry inside the window.
    pub end: u32,
    /// Events in the window (passing the filter).
    pub count: u32,
    /// Of those, events with a label.
    pub labelled: u32,
    /// Of those, events labelled fraud.
    pub fraud: u32,
    /// Sum of amounts, or of the window's other [`WindowValue`] (wrapping:
    /// exact while the true sum fits).
    pub sum: Money,
}

impl WindowAcc {
    /// Adds (`sign` 1) or removes (`sign` -1) entry `e`, if the window's filter takes it.
    #[inline]
    pub(crate) fn add(&mut self, e: &Entry, spec: &WindowSpec, sign: i32) {
        if spec.filter.accepts(e.amount) {
            self.count = self.count.wrapping_add_signed(sign);
            self.labelled = self
                .labelled
                .wrapping_add_signed(sign * e.labelled() as i32);
            self.fraud = self.fraud.wrapping_add_signed(sign * e.fraud() as i32);
            let v = spec.value.of(e);
            self.sum.0 = self.sum.0.wrapping_add(i64::from(sign).wrapping_mul(v));
        }
    }

    /// Mean amount, or NaN when the window is empty: the `f64` nearest to the
    /// exact quotient.
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            f64::NAN
        } else {
            self.sum.0 as f64 / (f64::from(self.count) * MONEY_SCALE as f64)
        }
    }

    /// Share of labelled events that were fraud; 0 when nothing is labelled.
    pub fn fraud_rate(&self) -> f64 {
        if self.labelled == 0 {
            0.0
        } else {
            f64::from(self.fraud) / f64::from(self.labelled)
        }
    }

    /// Share of all events in the window labelled fraud; 0 when empty.
    pub fn fraud_share(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            f64::from(self.fraud) / f64::from(self.count)
        }
    }
}
