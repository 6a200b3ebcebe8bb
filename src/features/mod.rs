//! Features: the per-partition engine that turns an event plus entity state into
//! a fixed-size feature vector, and feeds late fraud labels back into the state.

mod labels;
pub mod spec;

pub use labels::{LabelJoin, LabelTicket, Relabel};
pub use spec::{FeatureSet, FeatureSpecError};

use crate::state::{
    cents_squared, hour_point, hour_vector, key_hash, mix64, Applied, EntityTable, Money,
    Observation, TableLimits, TableStats, WindowAcc,
};
use labels::LabelTargets;
use spec::{EntityAgg, EventAgg, Field, ProfileAgg, Slot, WindowAgg};
use std::sync::Arc;

/// The feature set the processor uses unless configured otherwise.
pub const DEFAULT_FEATURE_SET: &str = include_str!("../../config/features/default.toml");
/// The handbook's 15 model inputs, with the handbook's column names.
pub const HANDBOOK_FEATURE_SET: &str = include_str!("../../config/features/handbook.toml");
/// The shipped model's inputs: the handbook's plus features relative to each customer's history.
pub const MODEL_FEATURE_SET: &str = include_str!("../../config/features/model.toml");

/// Loads a feature set by built-in name (`default`, `handbook`, `model`) or from a TOML file path.
pub fn load_feature_set(name_or_path: &str) -> Result<FeatureSet, FeatureSpecError> {
    match name_or_path {
        "" | "default" => FeatureSet::parse("config/features/default.toml", DEFAULT_FEATURE_SET),
        "handbook" => FeatureSet::parse("config/features/handbook.toml", HANDBOOK_FEATURE_SET),
        "model" => FeatureSet::parse("config/features/model.toml", MODEL_FEATURE_SET),
        path => {
            let text = std::fs::read_to_string(path).map_err(|e| FeatureSpecError {
                file: path.to_string(),
                line: 0,
                col: 0,
                message: format!("cannot read feature set: {e}"),
            })?;
            FeatureSet::parse(path, &text)
        }
    }
}

pub use crate::source::view::EventView;

/// The value of field `f` of `ev`, if the event carries it.
fn field<'a>(ev: &EventView<'a>, f: Field) -> Option<&'a str> {
    match f {
        Field::Account => Some(ev.account),
        Field::Card => Some(ev.card),
        Field::Terminal => Some(ev.terminal),
        Field::Device => ev.device,
        Field::Ip => ev.ip,
        Field::Country => ev.country,
        Field::Mcc => ev.mcc,
        Field::Channel => ev.channel,
    }
}

/// Limits for one partition's feature engine.
#[derive(Debug, Clone, Copy)]
pub struct EngineLimits {
    /// Limits of each entity table.
    pub table: TableLimits,
    /// Most events remembered for joining late labels.
    pub max_pending_labels: usize,
}

impl EngineLimits {
    /// The engine limits the `[state]` settings describe.
    pub fn from_config(s: &crate::config::StateConfig) -> Self {
        Self {
            table: TableLimits {
                max_entities: s.max_entities,
                max_events_per_entity: s.max_events_per_entity,
                lateness_s: s.lateness_secs,
            },
            max_pending_labels: s.max_pending_labels,
        }
    }
}

impl Default for EngineLimits {
    fn default() -> Self {
        Self {
            table: TableLimits::default(),
            max_pending_labels: 500_000,
        }
    }
}

/// What happened to a label fed to [`FeatureEngine::apply_label`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelOutcome {
    /// Joined to its event and applied to the entities' windows.
    Applied,
    /// Replaced the event's earlier, different label (a chargeback after a
    /// provisional `legit`, a lost dispute after `fraud`): every window that
    /// counted the earlier one now counts this one.
    Corrected,
    /// The same label as the event's latest: nothing changes.
    Repeated,
    /// The event is not known yet: the label waits for it (bounded).
    Parked,
    /// The event is no longer held (older than the state or the join keeps).
    Unknown,
}

impl LabelOutcome {
    /// Every outcome, in `fraudstream_labels_total{outcome}` order.
    pub const ALL: [LabelOutcome; 5] = [
        LabelOutcome::Applied,
        LabelOutcome::Corrected,
        LabelOutcome::Repeated,
        LabelOutcome::Parked,
        LabelOutcome::Unknown,
    ];

    /// Its `outcome` label value.
    pub fn code(self) -> &'static str {
        match self {
            LabelOutcome::Applied => "applied",
            LabelOutcome::Corrected => "corrected",
            LabelOutcome::Repeated => "repeated",
            LabelOutcome::Parked => "parked",
            LabelOutcome::Unknown => "unknown",
        }
    }
}

/// Which entity kinds an engine keeps state for.
///
/// With terminal features repartitioned, an event is processed twice: by the
/// owner of its account (everything not keyed by the terminal), then by the owner
/// of its terminal (entities keyed by the terminal, alone or first of a pair).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scope {
    /// Every entity kind of the set.
    #[default]
    All,
    /// Entity kinds not keyed by the terminal.
    ByAccount,
    /// Entity kinds keyed by the terminal.
    ByTerminal,
}

impl Scope {
    /// Whether an engine in this scope keeps `entity`.
    pub fn holds(self, entity: &spec::EntityDef) -> bool {
        let by_terminal = entity.fields.0 == Field::Terminal;
        match self {
            Scope::All => true,
            Scope::ByAccount => !by_terminal,
            Scope::ByTerminal => by_terminal,
        }
    }
}

/// Entity state and feature extraction for the keys of one partition.
pub struct FeatureEngine {
    set: Arc<FeatureSet>,
    plan: Plan,
    /// Per entity kind: whether this engine keeps it ([`Scope`]).
    held: Vec<bool>,
    tables: Vec<EntityTable>,
    /// Per entity kind, the key of the event being processed (0: none).
    keys: Vec<u64>,
    observed: Vec<Option<Observation>>,
    joins: LabelJoin,
    label_entities: Vec<usize>,
    /// Event time of the earliest event applied, epoch ms (`i64::MAX`: none):
    /// where the state's history starts. A restore or replay of the same
    /// events finds the same.
    history_from_ms: i64,
}

impl FeatureEngine {
    /// An empty engine for every entity kind of `set`.
    pub fn new(set: Arc<FeatureSet>, limits: EngineLimits) -> Self {
        Self::scoped(set, limits, Scope::All)
    }

    /// An empty engine for the entity kinds of `set` in `scope`. [`FeatureEngine::update`]
    /// then writes only the features of those kinds, plus event and ratio features,
    /// and leaves the others in `out` as they were.
    pub fn scoped(set: Arc<FeatureSet>, limits: EngineLimits, scope: Scope) -> Self {
        let held: Vec<bool> = set.entities.iter().map(|e| scope.holds(e)).collect();
        let tables = set
            .entities
            .iter()
            .map(|e| {
                EntityTable::new(
                    e.windows.clone(),
                    e.trackers.clone(),
                    e.horizon_s,
                    limits.table,
                )
            })
            .collect();
        let label_entities: Vec<usize> = set
            .entities
            .iter()
            .enumerate()
            .filter(|(i, e)| e.needs_labels && held[*i])
            .map(|(i, _)| i)
            .collect();
        let joins = LabelJoin::new(
            if label_entities.is_empty() {
                0
            } else {
                limits.max_pending_labels
            },
            label_entities.len(),
        );
        Self {
            plan: Plan::new(&set, &held),
            observed: vec![None; set.entities.len()],
            keys: vec![0; set.entities.len()],
            set,
            held,
            tables,
            joins,
            label_entities,
            history_from_ms: i64::MAX,
        }
    }

    /// The first event time whose features read no further back than the
    /// state's history ([`FeatureSet::history_reach_s`] after its earliest
    /// event), epoch ms: earlier events got partial windows. `None` before any event.
    pub fn full_windows_from_ms(&self) -> Option<i64> {
        (self.history_from_ms != i64::MAX).then(|| {
            self.history_from_ms
                .saturating_add(i64::from(self.set.history_reach_s()) * 1000)
        })
    }

    /// The feature set this engine computes.
    pub fn feature_set(&self) -> &Arc<FeatureSet> {
        &self.set
    }

    /// Labels come back only by ticket ([`FeatureEngine::apply_label_ticket`]),
    /// never by id: replays, which skip the id index this way.
    pub fn labels_by_ticket(mut self) -> Self {
        self.joins.ticket_only();
        self
    }

    /// Applies `ev` to the state and writes its features into `out` (length = set size),
    /// as of its event time ([`crate::state`] says what that guarantees). Missing
    /// values are NaN, as are all features of an entity kind for which the event
    /// came too late. Returns where its label can be handed back, when the set
    /// reads labels.
    pub fn update(&mut self, ev: &EventView<'_>, out: &mut [f64]) -> Option<LabelTicket> {
        debug_assert_eq!(out.len(), self.set.len());
        let amount = Money::from_f64(ev.amount);
        let id = if self.label_entities.is_empty() {
            0
        } else {
            key_hash(0, ev.event_id.as_bytes())
        };
        self.history_from_ms = self.history_from_ms.min(ev.ts_ms);
        self.observe(ev, amount, id);
        self.read_windows(out);
        self.read_others(ev, amount, out);
        // Remember the event for its label only after its own features are read,
        // so an early label never leaks into the features of its own event.
        self.remember(ev, id)
    }

    /// Applies `ev` (its event id hashed to `id`) to the state of each entity
    /// kind held, keeping where it landed for the reads that follow.
    #[inline]
    fn observe(&mut self, ev: &EventView<'_>, amount: Money, id: u64) {
        for (i, def) in self.set.entities.iter().enumerate() {
            if !self.held[i] {
                continue;
            }
            let mut distinct = [0u32; spec::MAX_DISTINCT_PER_ENTITY];
            for (d, f) in def.distinct_fields.iter().enumerate() {
                // Low 32 bits of the value's hash; 0 means "no value".
                distinct[d] = field(ev, *f).map_or(0, |v| {
                    (key_hash(*f as u64 + 201, v.as_bytes()) as u32).max(1)
                });
            }
            let distinct = &distinct[..def.distinct_fields.len()];
            (self.keys[i], self.observed[i]) = match entity_key(ev, def.fields) {
                None => (0, None),
                Some(key) => {
                    match self.tables[i].observe(key, ev.ts_ms, amount, tag_of(id), distinct) {
                        obs if obs.applied == Applied::Dropped => (0, None),
                        obs => (key, Some(obs)),
                    }
                }
            };
        }
    }

    /// Writes the window aggregates of each entity kind into `out`.
    #[inline]
    fn read_windows(&self, out: &mut [f64]) {
        for (entity, reads) in self.plan.windows.iter().enumerate() {
            let accs = self.observed[entity]
                .as_ref()
                .map(|obs| self.tables[entity].accs_at(obs));
            for &(i, window, agg) in reads {
                out[i as usize] = accs.map_or(f64::NAN, |accs| {
                    let acc = &accs[window as usize];
                    match agg {
                        WindowAgg::Count => f64::from(acc.count),
                        WindowAgg::Sum => acc.sum.to_f64(),
                        WindowAgg::Mean => acc.mean(),
                        WindowAgg::FraudCount => f64::from(acc.fraud),
                        WindowAgg::LabelledCount => f64::from(acc.labelled),
                        WindowAgg::FraudRate => acc.fraud_rate(),
                        WindowAgg::FraudShare => acc.fraud_share(),
                    }
                });
            }
        }
    }

    /// Writes every feature but the window aggregates into `out`, in slot
    /// order (a ratio reads features before it).
    #[inline]
    fn read_others(&self, ev: &EventView<'_>, amount: Money, out: &mut [f64]) {
        for &(i, slot) in &self.plan.others {
            out[i as usize] = match slot {
                // Read above, entity by entity.
                Slot::Window { .. } => continue,
                Slot::Entity { entity, agg } => match self.observed[entity as usize] {
                    None => f64::NAN,
                    Some(obs) => match agg {
                        EntityAgg::FirstSeen => f64::from(u8::from(obs.first_seen)),
                        EntityAgg::SecsSinceLast => obs
                            .prev_seen_ms
                            .map_or(f64::NAN, |p| (ev.ts_ms - p).max(0) as f64 / 1000.0),
                    },
                },
                Slot::Event(agg) => event_feature(ev, agg),
                Slot::Profile {
                    entity,
                    windows: [a, b],
                    agg,
                } => match &self.observed[entity as usize] {
                    None => f64::NAN,
                    Some(obs) => {
                        let accs = self.tables[entity as usize].accs_at(obs);
                        profile(ev, amount, (&accs[a as usize], &accs[b as usize]), agg)
                    }
                },
                Slot::Tracker { entity, tracker } => match &self.observed[entity as usize] {
                    None => f64::NAN,
                    Some(obs) => self.tables[entity as usize].tracker_at(obs, tracker as usize),
                },
                Slot::Ratio(a, b) => {
                    let (a, b) = (out[a as usize], out[b as usize]);
                    if b == 0.0 || b.is_nan() {
                        f64::NAN
                    } else {
                        a / b
                    }
                }
            };
        }
    }

    /// Remembers event `id` for the label join, when the set reads labels, and
    /// applies a label that came before it.
    #[inline]
    fn remember(&mut self, ev: &EventView<'_>, id: u64) -> Option<LabelTicket> {
        if self.label_entities.is_empty() {
            return None;
        }
        let ts_s = ev.ts_ms.div_euclid(1000).clamp(0, i64::from(u32::MAX)) as u32;
        let (keys, observed) = (&self.keys, &self.observed);
        let targets = self
            .label_entities
            .iter()
            .map(|&i| (keys[i], observed[i].map_or(u32::MAX, |o| o.seq)));
        let ticket = self.joins.remember(id, ts_s, targets);
        if let Some(fraud) = self.joins.take_early(id) {
            self.apply_label_id(id, fraud);
        }
        ticket
    }

    /// Feeds a fraud/legit label for `event_id` back into the windows of its
    /// entities; a later label for the same event replaces the earlier one. A
    /// label that arrives before its event is parked and applied when the event
    /// comes.
    pub fn apply_label(&mut self, event_id: &str, fraud: bool) -> LabelOutcome {
        self.apply_label_id(key_hash(0, event_id.as_bytes()), fraud)
    }

    /// [`FeatureEngine::apply_label`] by event id hash.
    fn apply_label_id(&mut self, id: u64, fraud: bool) -> LabelOutcome {
        match self.joins.relabel(id, fraud) {
            Relabel::NotSeen => {
                self.joins.park(id, fraud);
                LabelOutcome::Parked
            }
            Relabel::Forgotten => LabelOutcome::Unknown,
            Relabel::Found(_, _, Some(before)) if before == fraud => LabelOutcome::Repeated,
            Relabel::Found(ts_s, targets, before) => {
                if !self.apply_label_at((ts_s, targets), id, fraud) {
                    LabelOutcome::Unknown
                } else if before.is_some() {
                    LabelOutcome::Corrected
                } else {
                    LabelOutcome::Applied
                }
            }
        }
    }

    /// Feeds the label of the event [`FeatureEngine::update`] gave `ticket` for
    /// (once per ticket).
    pub fn apply_label_ticket(&mut self, ticket: LabelTicket, fraud: bool) -> LabelOutcome {
        match self.joins.take_ticket(ticket, fraud) {
            Some(target) if self.apply_label_at(target, ticket.id(), fraud) => {
                LabelOutcome::Applied
            }
            _ => LabelOutcome::Unknown,
        }
    }

    /// Starts loading the state that [`FeatureEngine::update`] of `ev` will
    /// read. Changes nothing.
    pub fn prefetch(&self, ev: &EventView<'_>) {
        for (i, def) in self.set.entities.iter().enumerate() {
            if let (true, Some(key)) = (self.held[i], entity_key(ev, def.fields)) {
                self.tables[i].prefetch(key, None);
            }
        }
    }

    /// Starts loading the state that [`FeatureEngine::apply_label_ticket`] of
    /// `ticket` will read. Changes nothing.
    pub fn prefetch_label(&self, ticket: LabelTicket) {
        let Some((_, (keys, seqs))) = self.joins.peek_ticket(ticket) else {
            return;
        };
        for (k, &entity) in self.label_entities.iter().enumerate() {
            if keys[k] != 0 {
                self.tables[entity].prefetch(keys[k], Some(seqs[k]));
            }
        }
    }

    /// Sets the label of the entries `target` points at, of event `id`; whether
    /// any entity still holds one.
    fn apply_label_at(
        &mut self,
        (ts_s, (keys, seqs)): (u32, LabelTargets),
        id: u64,
        fraud: bool,
    ) -> bool {
        let mut applied = false;
        for (k, &entity) in self.label_entities.iter().enumerate() {
            if keys[k] != 0 {
                let table = &mut self.tables[entity];
                applied |= table.apply_label(keys[k], ts_s, tag_of(id), seqs[k], fraud);
            }
        }
        applied
    }

    /// Entities held and counters, per entity kind, in set order.
    pub fn table_stats(&self) -> impl Iterator<Item = (&str, usize, TableStats)> + '_ {
        self.set
            .entities
            .iter()
            .zip(&self.tables)
            .map(|(def, t)| (def.name.as_str(), t.len(), t.stats()))
    }

    /// Approximate bytes of state held.
    pub fn memory_bytes(&self) -> usize {
        self.tables
            .iter()
            .map(EntityTable::memory_bytes)
            .sum::<usize>()
            + self.joins.memory_bytes()
    }
}

/// The features an engine writes, arranged for extraction: window reads grouped
/// by entity kind (one state lookup each), then the rest in set order (so a ratio
/// comes after the features it divides, which are defined above it).
struct Plan {
    /// Per entity kind: output index, window and aggregate of each window feature.
    windows: Vec<Vec<(u16, u16, WindowAgg)>>,
    /// Output index and slot of every other feature.
    others: Vec<(u16, Slot)>,
}

impl Plan {
    fn new(set: &FeatureSet, held: &[bool]) -> Self {
        let mut plan = Plan {
            windows: vec![Vec::new(); set.entities.len()],
            others: Vec::new(),
        };
        for (i, &slot) in set.slots.iter().enumerate() {
            if slot.entity().is_some_and(|e| !held[e as usize]) {
                continue;
            }
            match slot {
                Slot::Window {
                    entity,
                    window,
                    agg,
                } => plan.windows[entity as usize].push((i as u16, window, agg)),
                other => plan.others.push((i as u16, other)),
            }
        }
        plan
    }
}

/// The tag that tells an event from its entity's other events of the same
/// second, from its id hash.
#[inline]
fn tag_of(id: u64) -> u32 {
    (id >> 40) as u32
}

fn entity_key(ev: &EventView<'_>, fields: (Field, Option<Field>)) -> Option<u64> {
    let a = key_hash(fields.0 as u64 + 1, field(ev, fields.0)?.as_bytes());
    match fields.1 {
        None => Some(a),
        Some(f) => Some(mix64(
            a ^ key_hash(f as u64 + 101, field(ev, f)?.as_bytes()).rotate_left(17),
        )),
    }
}

/// A [`ProfileAgg`] of the event `ev` of amount `amount`, from its entity's
/// windows as of its time: `(amount window, squared-amount window)` or the
/// hour-vector window twice. Those windows end at and hold the event itself;
/// z-score and hour gap take it back out, to compare it with the others.
fn profile(
    ev: &EventView<'_>,
    amount: Money,
    (w, w2): (&WindowAcc, &WindowAcc),
    agg: ProfileAgg,
) -> f64 {
    // Mean and standard deviation of `n` amounts summing to `sum` (Money
    // units), whose squares in cents sum to `squares`.
    let moments = |n: u32, sum: i64, squares: i64| {
        let n = f64::from(n);
        let mean_cents = sum as f64 / (MONEY_SCALE_CENTS * n);
        let var = (squares as f64 / n - mean_cents * mean_cents).max(0.0);
        (mean_cents / 100.0, var.sqrt() / 100.0)
    };
    match agg {
        ProfileAgg::Std if w.count == 0 => f64::NAN,
        ProfileAgg::Std => moments(w.count, w.sum.0, w2.sum.0).1,
        ProfileAgg::ZScore => {
            // Every window holding this event took it in: the others are the rest.
            if w.count < 3 {
                return f64::NAN;
            }
            let sum = w.sum.0.wrapping_sub(amount.0);
            let squares = w2.sum.0.wrapping_sub(cents_squared(amount));
            let (mean, std) = moments(w.count - 1, sum, squares);
            if std < 0.01 {
                f64::NAN
            } else {
                (amount.to_f64() - mean) / std
            }
        }
        ProfileAgg::HourGap => {
            let hour = ev.ts_ms.div_euclid(1000).rem_euclid(86_400) / 3600;
            let (cos, sin) = hour_vector(w.sum);
            let (own_cos, own_sin) = hour_point(hour as u32);
            let (cos, sin) = (cos - own_cos, sin - own_sin);
            if w.count < 2 || (cos == 0 && sin == 0) {
                return f64::NAN;
            }
            let mean_hour = (sin as f64).atan2(cos as f64) * 12.0 / std::f64::consts::PI;
            let gap = (hour as f64 - mean_hour).rem_euclid(24.0);
            gap.min(24.0 - gap)
        }
    }
}

/// [`Money`] units per cent.
const MONEY_SCALE_CENTS: f64 = (crate::state::MONEY_SCALE / 100) as f64;

fn event_feature(ev: &EventView<'_>, agg: EventAgg) -> f64 {
    let secs = ev.ts_ms.div_euclid(1000);
    let hour = secs.rem_euclid(86_400) / 3600;
    // 1970-01-01 was a Thursday; Monday = 0.
    let weekday = (secs.div_euclid(86_400) + 3).rem_euclid(7);
    match agg {
        EventAgg::Amount => ev.amount,
        EventAgg::LogAmount => ev.amount.ln_1p(),
        EventAgg::Hour => hour as f64,
        EventAgg::Night => f64::from(u8::from(hour <= 6)),
        EventAgg::Weekend => f64::from(u8::from(weekday >= 5)),
    }
}

#[cfg(test)]
mod reach_tests;
#[cfg(test)]
mod tests;
