//! Feature-set files: parsing, validation and compilation to slots.

use crate::state::{AmountFilter, Money, TrackerSpec, WindowSpec, WindowValue};
use serde::Deserialize;
use std::collections::HashMap;
use toml::Spanned;

/// A problem in a feature-set file, with its location.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}:{col}: {message}")]
pub struct FeatureSpecError {
    /// File the problem is in.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    /// What was wrong and what was expected.
    pub message: String,
}

/// An event field that identifies an entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// `account_id`.
    Account,
    /// `card_id` (the account when absent).
    Card,
    /// `terminal_id`.
    Terminal,
    /// `device_id`.
    Device,
    /// `ip`.
    Ip,
    /// `country`.
    Country,
    /// `mcc`, the merchant category code.
    Mcc,
    /// `channel`.
    Channel,
}

impl Field {
    fn parse(s: &str) -> Option<Field> {
        Some(match s {
            "account" => Field::Account,
            "card" => Field::Card,
            "terminal" => Field::Terminal,
            "device" => Field::Device,
            "ip" => Field::Ip,
            "country" => Field::Country,
            "mcc" => Field::Mcc,
            "channel" => Field::Channel,
            _ => return None,
        })
    }
}

/// Aggregates read from one window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowAgg {
    /// Number of events.
    Count,
    /// Sum of amounts.
    Sum,
    /// Mean amount (missing when empty).
    Mean,
    /// Events labelled fraud.
    FraudCount,
    /// Events with a label.
    LabelledCount,
    /// Fraud share of labelled events (0 when none labelled).
    FraudRate,
    /// Fraud share of all events (0 when empty): the handbook's terminal risk.
    FraudShare,
}

/// Aggregates of the entity itself, not of a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntityAgg {
    /// 1 when the entity had no state before this event, else 0.
    FirstSeen,
    /// Seconds since the entity's previous event (missing when first seen).
    SecsSinceLast,
}

/// Aggregates of an entity's amount or hour profile over a window, read from
/// an amount window and a second-moment or hour-vector window of the same span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileAgg {
    /// Standard deviation of the amounts (population; this event included;
    /// missing when empty).
    Std,
    /// This amount minus the mean of the entity's other payments in the
    /// window, over their standard deviation (missing when fewer than two, or
    /// when they deviate by under a cent).
    ZScore,
    /// Hours (0..12) between this payment's hour of day and the circular mean
    /// hour of the entity's other payments in the window (missing when none,
    /// or when their hours cancel out).
    HourGap,
}

/// Features of the event alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventAgg {
    /// The amount.
    Amount,
    /// ln(1 + amount).
    LogAmount,
    /// Hour of day, 0..23, UTC.
    Hour,
    /// 1 when the hour is <= 6.
    Night,
    /// 1 on Saturday and Sunday.
    Weekend,
}

/// How one feature value is computed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Slot {
    /// An aggregate of window `window` of entity `entity`.
    Window {
        /// Index into [`FeatureSet::entities`].
        entity: u16,
        /// Index into that entity's windows.
        window: u16,
        /// What to read.
        agg: WindowAgg,
    },
    /// An aggregate of the entity.
    Entity {
        /// Index into [`FeatureSet::entities`].
        entity: u16,
        /// What to read.
        agg: EntityAgg,
    },
    /// A property of the event.
    Event(EventAgg),
    /// Quotient of two earlier features (missing when the divisor is 0 or missing).
    Ratio(u16, u16),
    /// A [`ProfileAgg`] of entity `entity` from its windows `windows`: the
    /// amount and squared-amount windows, or the hour-vector window (twice).
    Profile {
        /// Index into [`FeatureSet::entities`].
        entity: u16,
        /// Indexes into that entity's windows.
        windows: [u16; 2],
        /// What to read.
        agg: ProfileAgg,
    },
    /// Tracker `tracker` (min, max or distinct count) of entity `entity`.
    Tracker {
        /// Index into [`FeatureSet::entities`].
        entity: u16,
        /// Index into that entity's trackers.
        tracker: u16,
    },
}

impl Slot {
    /// The entity kind this feature reads, if any.
    pub fn entity(&self) -> Option<u16> {
        match *self {
            Slot::Window { entity, .. }
            | Slot::Entity { entity, .. }
            | Slot::Profile { entity, .. }
            | Slot::Tracker { entity, .. } => Some(entity),
            Slot::Event(_) | Slot::Ratio(..) => None,
        }
    }
}

/// Most distinct-count features per entity kind.
pub const MAX_DISTINCT_PER_ENTITY: usize = 8;

/// Most features in one set (features and windows are numbered in 16 bits).
pub const MAX_FEATURES: usize = 4096;

/// Most entity kinds whose features read labels (an event remembered for the
/// label join holds one key per kind).
pub use super::labels::MAX_LABEL_ENTITIES;

/// One entity kind (single field or pair) and the windows it maintains.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityDef {
    /// Display name such as `account` or `account+device`.
    pub name: String,
    /// Field(s) whose values form the key.
    pub fields: (Field, Option<Field>),
    /// Distinct windows used by the set's features.
    pub windows: Vec<WindowSpec>,
    /// Whether any feature reads labels (so events must be kept for the label join).
    pub needs_labels: bool,
    /// How long an idle entity is remembered at least (for `first_seen`), seconds.
    pub horizon_s: u32,
    /// Min/max and distinct-count trackers.
    pub trackers: Vec<TrackerSpec>,
    /// For each distinct tracker, in order, the field whose values are counted.
    pub distinct_fields: Vec<Field>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSpec {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(rename = "feature", default)]
    features: Vec<Spanned<FeatureEntry>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FeatureEntry {
    name: String,
    #[serde(default)]
    description: String,
    entity: Option<Spanned<String>>,
    window: Option<Spanned<String>>,
    delay: Option<Spanned<String>>,
    aggregate: Option<Spanned<String>>,
    event: Option<Spanned<String>>,
    ratio: Option<Spanned<[String; 2]>>,
    of: Option<Spanned<String>>,
    amount_min: Option<Spanned<f64>>,
    amount_max: Option<Spanned<f64>>,
}

/// A compiled feature set: names in output order and how to compute each.
#[derive(Debug, Clone)]
pub struct FeatureSet {
    /// Name given in the file.
    pub name: String,
    /// Free-text description from the file.
    pub description: String,
    /// Feature names, in vector order.
    pub names: Vec<String>,
    /// One-line description of each feature.
    pub descriptions: Vec<String>,
    /// How each feature is computed.
    pub slots: Vec<Slot>,
    /// Entity kinds with their windows.
    pub entities: Vec<EntityDef>,
    /// Content hash of the source text (hex, 16 digits).
    pub version: String,
}

impl FeatureSet {
    /// Number of features.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether the set has no features.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Index of the feature called `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// Features that read labels (fraud_count, labelled_count, fraud_rate,
    /// fraud_share) from a window of payments all younger than
    /// `label_delay_s` seconds: when every label comes that long after its
    /// payment (a replay's fixed delay), they never see one and are always 0.
    /// A window `delay` of at least the label delay minus its length fixes it.
    pub fn label_blind(&self, label_delay_s: u32) -> Vec<&str> {
        let reads_labels = |agg| {
            matches!(
                agg,
                WindowAgg::FraudCount
                    | WindowAgg::LabelledCount
                    | WindowAgg::FraudRate
                    | WindowAgg::FraudShare
            )
        };
        self.slots
            .iter()
            .zip(&self.names)
            .filter(|(slot, _)| match **slot {
                Slot::Window {
                    entity,
                    window,
                    agg,
                } if reads_labels(agg) => {
                    let w = &self.entities[entity as usize].windows[window as usize];
                    u64::from(w.delay_s) + u64::from(w.length_s) <= u64::from(label_delay_s)
                }
                _ => false,
            })
            .map(|(_, name)| name.as_str())
            .collect()
    }

    /// How far back from an event its features read, seconds: the longest
    /// window plus its `delay`, distinct count, or entity horizon (`first_seen`,
    /// `secs_since_last`). An event less than this after the first event of
    /// its history gets partial windows. Label windows need no more: they hold
    /// payments by event time, and every label of a payment in the history
    /// comes within it.
    pub fn history_reach_s(&self) -> u32 {
        self.entities
            .iter()
            .flat_map(|e| {
                let windows = e
                    .windows
                    .iter()
                    .map(|w| w.length_s.saturating_add(w.delay_s));
                let distinct = e.trackers.iter().filter_map(|t| match t {
                    TrackerSpec::Distinct { length_s } => Some(*length_s),
                    TrackerSpec::Extreme { .. } => None,
                });
                windows.chain(distinct).chain([e.horizon_s])
            })
            .max()
            .unwrap_or(0)
    }

    /// Parses and compiles a feature-set file; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<FeatureSet, FeatureSpecError> {
        let err = |span: std::ops::Range<usize>, message: String| {
            let (line, col) = line_col(text, span.start);
            FeatureSpecError {
                file: file.to_string(),
                line,
                col,
                message,
            }
        };
        let spec: FileSpec = toml::from_str(text)
            .map_err(|e| err(e.span().unwrap_or(0..0), e.message().to_string()))?;
        let mut set = FeatureSet {
            name: spec.name,
            description: spec.description,
            names: Vec::new(),
            descriptions: Vec::new(),
            slots: Vec::new(),
            entities: Vec::new(),
            version: format!("{:016x}", crate::state::key_hash(0, text.as_bytes())),
        };
        let mut by_name: HashMap<String, u16> = HashMap::new();
        for entry in &spec.features {
            let span = entry.span();
            let f = entry.get_ref();
            if by_name.contains_key(&f.name) {
                return Err(err(span, format!("duplicate feature name '{}'", f.name)));
            }
            if set.slots.len() == MAX_FEATURES {
                return Err(err(span, format!("at most {MAX_FEATURES} features")));
            }
            let slot = compile_entry(f, span, &mut set.entities, &by_name, &err)?;
            by_name.insert(f.name.clone(), set.slots.len() as u16);
            set.names.push(f.name.clone());
            set.descriptions.push(f.description.clone());
            set.slots.push(slot);
        }
        Ok(set)
    }
}

/// Reports a problem at a byte range of the feature-set file.
type ErrAt<'a> = &'a dyn Fn(std::ops::Range<usize>, String) -> FeatureSpecError;

/// How the feature of entry `f` is computed; the entity kind, window or
/// tracker it reads is added to `entities` when new.
fn compile_entry(
    f: &FeatureEntry,
    entry_span: std::ops::Range<usize>,
    entities: &mut Vec<EntityDef>,
    by_name: &HashMap<String, u16>,
    err: ErrAt,
) -> Result<Slot, FeatureSpecError> {
    if let Some(ev) = &f.event {
        return event_slot(ev, err);
    }
    if let Some(ratio) = &f.ratio {
        let [a, b] = ratio.get_ref();
        let find = |n: &str| {
            by_name.get(n).copied().ok_or_else(|| {
                err(
                    ratio.span(),
                    format!("ratio refers to '{n}', which is not defined above it"),
                )
            })
        };
        return Ok(Slot::Ratio(find(a)?, find(b)?));
    }
    let Some(entity) = &f.entity else {
        return Err(err(
            entry_span,
            "expected one of 'entity', 'event' or 'ratio'".into(),
        ));
    };
    let fields = parse_entity(entity.get_ref()).ok_or_else(|| {
        err(
            entity.span(),
            format!(
                "unknown entity '{}'; expected account, card, terminal, device, ip, country, mcc, channel or a pair like account+device",
                entity.get_ref()
            ),
        )
    })?;
    let aggregate = f
        .aggregate
        .as_ref()
        .ok_or_else(|| err(entity.span(), "an entity feature needs 'aggregate'".into()))?;
    let entity_idx = entity_index(entities, entity.get_ref(), fields);
    let read = match aggregate.get_ref().as_str() {
        "first_seen" => return entity_slot(f, entities, entity_idx, EntityAgg::FirstSeen, err),
        "secs_since_last" => {
            return entity_slot(f, entities, entity_idx, EntityAgg::SecsSinceLast, err)
        }
        _ => WindowRead::parse(aggregate, err)?,
    };
    let spec = window_spec(f, aggregate, err)?;
    let def = &mut entities[entity_idx as usize];
    match read {
        WindowRead::Profile(agg) => {
            if spec.delay_s != 0 || spec.filter != AmountFilter::ALL {
                return Err(err(
                    aggregate.span(),
                    format!(
                        "'{}' takes a window but no delay or amount filter",
                        aggregate.get_ref()
                    ),
                ));
            }
            Ok(Slot::Profile {
                entity: entity_idx,
                windows: profile_windows(def, spec, agg),
                agg,
            })
        }
        WindowRead::Extreme { max } => {
            let window = window_index(def, spec);
            Ok(tracker_slot(
                def,
                entity_idx,
                TrackerSpec::Extreme { window, max },
            ))
        }
        WindowRead::Distinct => {
            let tracker = distinct_tracker(f, def, aggregate, spec, err)?;
            Ok(tracker_slot(def, entity_idx, tracker))
        }
        WindowRead::Window(agg) => {
            window_slot(entities, (entity, entity_idx), aggregate, spec, agg, err)
        }
    }
}

/// What an entity feature's `aggregate` reads from the entity's windows.
enum WindowRead {
    /// An aggregate of one window.
    Window(WindowAgg),
    /// An amount or hour profile over a window.
    Profile(ProfileAgg),
    /// The smallest (`max` false) or largest amount in a window.
    Extreme { max: bool },
    /// The distinct values of a field in a window.
    Distinct,
}

impl WindowRead {
    fn parse(aggregate: &Spanned<String>, err: ErrAt) -> Result<WindowRead, FeatureSpecError> {
        Ok(match aggregate.get_ref().as_str() {
            "min" => WindowRead::Extreme { max: false },
            "max" => WindowRead::Extreme { max: true },
            "distinct" => WindowRead::Distinct,
            "std" => WindowRead::Profile(ProfileAgg::Std),
            "zscore" => WindowRead::Profile(ProfileAgg::ZScore),
            "hour_gap" => WindowRead::Profile(ProfileAgg::HourGap),
            "count" => WindowRead::Window(WindowAgg::Count),
            "sum" => WindowRead::Window(WindowAgg::Sum),
            "mean" => WindowRead::Window(WindowAgg::Mean),
            "fraud_count" => WindowRead::Window(WindowAgg::FraudCount),
            "labelled_count" => WindowRead::Window(WindowAgg::LabelledCount),
            "fraud_rate" => WindowRead::Window(WindowAgg::FraudRate),
            "fraud_share" => WindowRead::Window(WindowAgg::FraudShare),
            other => {
                return Err(err(
                    aggregate.span(),
                    format!("unknown aggregate '{other}'; expected count, sum, mean, min, max, std, zscore, hour_gap, distinct, fraud_count, labelled_count, fraud_rate, fraud_share, first_seen or secs_since_last"),
                ))
            }
        })
    }
}

/// The slot of a feature of the event alone (`event = "..."`).
fn event_slot(ev: &Spanned<String>, err: ErrAt) -> Result<Slot, FeatureSpecError> {
    let agg = match ev.get_ref().as_str() {
        "amount" => EventAgg::Amount,
        "log_amount" => EventAgg::LogAmount,
        "hour" => EventAgg::Hour,
        "night" => EventAgg::Night,
        "weekend" => EventAgg::Weekend,
        other => {
            return Err(err(
                ev.span(),
                format!("unknown event feature '{other}'; expected one of amount, log_amount, hour, night, weekend"),
            ))
        }
    };
    Ok(Slot::Event(agg))
}

/// The index of the entity kind keyed by `fields` in `entities`, added when new.
fn entity_index(entities: &mut Vec<EntityDef>, name: &str, fields: (Field, Option<Field>)) -> u16 {
    let i = entities.iter().position(|e| e.fields == fields);
    i.unwrap_or_else(|| {
        entities.push(EntityDef {
            name: name.to_string(),
            fields,
            windows: Vec::new(),
            needs_labels: false,
            horizon_s: 0,
            trackers: Vec::new(),
            distinct_fields: Vec::new(),
        });
        entities.len() - 1
    }) as u16
}

/// The slot of an aggregate of the entity itself; its `window` is how long
/// the entity is remembered.
fn entity_slot(
    f: &FeatureEntry,
    entities: &mut [EntityDef],
    entity: u16,
    agg: EntityAgg,
    err: ErrAt,
) -> Result<Slot, FeatureSpecError> {
    let horizon_s = match &f.window {
        None => DEFAULT_ENTITY_HORIZON_S,
        Some(w) => parse_duration_s(w.get_ref())
            .filter(|&s| s > 0 && s <= 90 * 86_400)
            .ok_or_else(|| {
                err(
                    w.span(),
                    format!(
                        "invalid window '{}'; expected e.g. 30d (at most 90d)",
                        w.get_ref()
                    ),
                )
            })?,
    };
    let def = &mut entities[entity as usize];
    def.horizon_s = def.horizon_s.max(horizon_s);
    Ok(Slot::Entity { entity, agg })
}

/// The window an entry's `aggregate` reads: its `window`, `delay` and amount filter.
fn window_spec(
    f: &FeatureEntry,
    aggregate: &Spanned<String>,
    err: ErrAt,
) -> Result<WindowSpec, FeatureSpecError> {
    let window = f.window.as_ref().ok_or_else(|| {
        err(
            aggregate.span(),
            format!("aggregate '{}' needs a 'window'", aggregate.get_ref()),
        )
    })?;
    let length_s = parse_duration_s(window.get_ref())
        .filter(|&s| s > 0 && s <= 90 * 86_400)
        .ok_or_else(|| {
            err(
                window.span(),
                format!(
                    "invalid window '{}'; expected e.g. 30s, 10m, 1h, 7d (at most 90d)",
                    window.get_ref()
                ),
            )
        })?;
    let delay_s = match &f.delay {
        None => 0,
        Some(d) => parse_duration_s(d.get_ref())
            .filter(|&s| s <= 90 * 86_400)
            .ok_or_else(|| {
                err(
                    d.span(),
                    format!("invalid delay '{}'; expected e.g. 7d", d.get_ref()),
                )
            })?,
    };
    Ok(WindowSpec {
        length_s,
        delay_s,
        filter: amount_filter(f, err)?,
        value: WindowValue::Amount,
    })
}

/// The index of window `spec` among `def`'s windows, added when new.
fn window_index(def: &mut EntityDef, spec: WindowSpec) -> u16 {
    let i = def.windows.iter().position(|w| *w == spec);
    i.unwrap_or_else(|| {
        def.windows.push(spec);
        def.windows.len() - 1
    }) as u16
}

/// The tracker of `aggregate = "distinct"`: the field named by `of`, counted
/// over `spec`'s length (no delay, no amount filter).
fn distinct_tracker(
    f: &FeatureEntry,
    def: &mut EntityDef,
    aggregate: &Spanned<String>,
    spec: WindowSpec,
    err: ErrAt,
) -> Result<TrackerSpec, FeatureSpecError> {
    let of = f.of.as_ref().ok_or_else(|| {
        err(
            aggregate.span(),
            "'distinct' needs 'of', the field whose values are counted (e.g. of = \"device\")"
                .into(),
        )
    })?;
    let field = Field::parse(of.get_ref()).ok_or_else(|| {
        err(
            of.span(),
            format!(
                "unknown field '{}'; expected account, card, terminal, device, ip, country, mcc or channel",
                of.get_ref()
            ),
        )
    })?;
    if spec.delay_s != 0 || f.amount_min.is_some() || f.amount_max.is_some() {
        return Err(err(
            aggregate.span(),
            "'distinct' takes a window but no delay or amount filter".into(),
        ));
    }
    if def.distinct_fields.len() >= MAX_DISTINCT_PER_ENTITY {
        return Err(err(
            aggregate.span(),
            format!("at most {MAX_DISTINCT_PER_ENTITY} distinct counts per entity"),
        ));
    }
    def.distinct_fields.push(field);
    Ok(TrackerSpec::Distinct {
        length_s: spec.length_s,
    })
}

/// The slot of `tracker`, added to `def`'s trackers.
fn tracker_slot(def: &mut EntityDef, entity: u16, tracker: TrackerSpec) -> Slot {
    def.trackers.push(tracker);
    Slot::Tracker {
        entity,
        tracker: (def.trackers.len() - 1) as u16,
    }
}

/// The slot of aggregate `agg` of window `spec`; an aggregate of labels makes
/// the entity keep its events for the label join, within
/// [`MAX_LABEL_ENTITIES`] such entity kinds.
fn window_slot(
    entities: &mut [EntityDef],
    (entity, entity_idx): (&Spanned<String>, u16),
    aggregate: &Spanned<String>,
    spec: WindowSpec,
    agg: WindowAgg,
    err: ErrAt,
) -> Result<Slot, FeatureSpecError> {
    let reads_labels = matches!(
        agg,
        WindowAgg::FraudCount
            | WindowAgg::LabelledCount
            | WindowAgg::FraudRate
            | WindowAgg::FraudShare
    );
    if reads_labels && !entities[entity_idx as usize].needs_labels {
        let labelled: Vec<&str> = entities
            .iter()
            .filter(|e| e.needs_labels)
            .map(|e| e.name.as_str())
            .collect();
        if labelled.len() == MAX_LABEL_ENTITIES {
            return Err(err(
                aggregate.span(),
                format!(
                    "at most {MAX_LABEL_ENTITIES} entity kinds can read labels (fraud_count, labelled_count, fraud_rate, fraud_share); '{}' would be one more than {}",
                    entity.get_ref(),
                    labelled.join(", ")
                ),
            ));
        }
    }
    let def = &mut entities[entity_idx as usize];
    def.needs_labels |= reads_labels;
    Ok(Slot::Window {
        entity: entity_idx,
        window: window_index(def, spec),
        agg,
    })
}

/// The windows of `def` (added when missing) a [`ProfileAgg`] over `spec` reads.
fn profile_windows(def: &mut EntityDef, spec: WindowSpec, agg: ProfileAgg) -> [u16; 2] {
    let mut index_of = |value| window_index(def, WindowSpec { value, ..spec });
    match agg {
        ProfileAgg::Std | ProfileAgg::ZScore => [
            index_of(WindowValue::Amount),
            index_of(WindowValue::AmountSquared),
        ],
        ProfileAgg::HourGap => [index_of(WindowValue::HourVector); 2],
    }
}

/// Largest amount bound a feature-set file may give: amounts are kept to
/// 1/10,000 in an `i64` ([`Money`]), and window sums must fit too.
const MAX_AMOUNT_BOUND: f64 = 1e14;

/// The `[amount_min, amount_max)` filter of an entry: bounds are finite, within
/// +-1e14, and `amount_min < amount_max`; they are kept to 1/10,000 like amounts.
fn amount_filter(f: &FeatureEntry, err: ErrAt) -> Result<AmountFilter, FeatureSpecError> {
    let bound = |b: &Option<Spanned<f64>>, name: &str| match b {
        None => Ok(None),
        Some(v) if v.get_ref().abs() <= MAX_AMOUNT_BOUND => Ok(Some(Money::from_f64(*v.get_ref()))),
        Some(v) => Err(err(
            v.span(),
            format!(
                "invalid {name} {}; expected a number between -1e14 and 1e14",
                v.get_ref()
            ),
        )),
    };
    let min = bound(&f.amount_min, "amount_min")?;
    let max = bound(&f.amount_max, "amount_max")?;
    if let (Some(lo), Some(hi), Some(span)) = (min, max, f.amount_max.as_ref()) {
        if lo >= hi {
            return Err(err(
                span.span(),
                format!(
                    "amount_max {} must be above amount_min {} (the filter is [amount_min, amount_max))",
                    hi.to_f64(),
                    lo.to_f64()
                ),
            ));
        }
    }
    Ok(AmountFilter {
        min: min.unwrap_or(AmountFilter::ALL.min),
        max: max.unwrap_or(AmountFilter::ALL.max),
    })
}

fn parse_entity(s: &str) -> Option<(Field, Option<Field>)> {
    match s.split_once('+') {
        None => Some((Field::parse(s)?, None)),
        Some((a, b)) => Some((Field::parse(a)?, Some(Field::parse(b)?))),
    }
}

/// How long an entity read by `first_seen`/`secs_since_last` is remembered by default.
pub const DEFAULT_ENTITY_HORIZON_S: u32 = 30 * 86_400;

/// Parses `30s`, `10m`, `1h`, `7d` to seconds; `None` for anything else.
pub fn parse_duration_s(s: &str) -> Option<u32> {
    let (num, mult) = if let Some(n) = s.strip_suffix('s') {
        (n, 1)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3600)
    } else {
        (s.strip_suffix('d')?, 86_400)
    };
    num.parse::<u32>().ok()?.checked_mul(mult)
}

pub use crate::text::line_col;
