//! One sliding time window over an entity's event ring, maintained incrementally.

/// One observed event in an entity's ring (12 bytes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Entry {
    /// Event time, whole seconds since the epoch.
    pub ts: u32,
    /// Amount of the event.
    pub amount: f32,
    /// 1 once a label arrived for this event.
    pub labelled: u8,
    /// 1 if that label said fraud.
    pub fraud: u8,
}

/// Which events a window aggregates, by amount: `[min, max)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AmountFilter {
    /// Inclusive lower bound.
    pub min: f32,
    /// Exclusive upper bound.
    pub max: f32,
}

impl AmountFilter {
    /// The filter that accepts everything.
    pub const ALL: AmountFilter = AmountFilter {
        min: f32::NEG_INFINITY,
        max: f32::INFINITY,
    };

    /// Whether the event counts in the window.
    #[inline]
    pub fn accepts(&self, amount: f32) -> bool {
        amount >= self.min && amount < self.max
    }
}

/// The shape of a window: events with time in `(t - delay - length, t - delay]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowSpec {
    /// Window length in seconds.
    pub length_s: u32,
    /// How long before the current event the window ends, in seconds.
    pub delay_s: u32,
    /// Which events count.
    pub filter: AmountFilter,
}

/// Running aggregates of one window; `start..end` are ring sequence numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
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
    /// Sum of amounts.
    pub sum: f64,
}

impl WindowAcc {
    #[inline]
    pub(crate) fn add(&mut self, e: &Entry, spec: &WindowSpec, sign: i32) {
        if spec.filter.accepts(e.amount) {
            self.count = self.count.wrapping_add_signed(sign);
            self.labelled = self
                .labelled
                .wrapping_add_signed(sign * i32::from(e.labelled));
            self.fraud = self.fraud.wrapping_add_signed(sign * i32::from(e.fraud));
            self.sum += f64::from(sign) * f64::from(e.amount);
        }
    }

    /// Mean amount, or NaN when the window is empty.
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            f64::NAN
        } else {
            self.sum / f64::from(self.count)
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
