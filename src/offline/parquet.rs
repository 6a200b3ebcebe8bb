//! The feature export as a Parquet file, for notebooks: each row `fraudstream
//! features` writes to CSV (transaction id and the point-in-time features),
//! with its event time, entity ids, amounts and labels, streamed in row groups.
//!
//! Column types (the values are the CSV's, without a text round trip):
//! - features are nullable `Float64`: the engine computes `f64`, and the CSV
//!   writes each in its shortest exact form, so both hold the same number; a
//!   missing feature (NaN in the engine, an empty CSV field) is null, which
//!   pandas and LightGBM read as missing, as they read the empty CSV field;
//! - amounts are `Decimal128(18, 4)`: money is kept as integers of 1/10,000
//!   (every ISO 4217 currency has at most four minor digits), so the decimal is
//!   exact where a float would print 0.1 + 0.2; 18 digits hold 1e14 units;
//! - times are `Timestamp(ms, "UTC")`, ids `Utf8` (dictionary-encoded in the file).

use crate::features::FeatureSet;
use crate::source::handbook::TxRow;
use crate::state::Money;
use arrow_array::builder::{
    BooleanBuilder, Decimal128Builder, Float64Builder, StringBuilder, TimestampMillisecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;
use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;

/// Why the Parquet export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The Parquet writer failed (usually the output file: disk full, closed).
    #[error("writing Parquet: {0}")]
    Parquet(#[from] ParquetError),
    /// A batch of rows could not be assembled.
    #[error("assembling rows for Parquet: {0}")]
    Arrow(#[from] ArrowError),
    /// A feature is named like one of the row's own columns.
    #[error("feature '{0}' has the name of an export column; rename it in the feature set")]
    NameClash(String),
}

/// Names of the columns before the features, in order (types in [`schema`]).
pub const ROW_COLUMNS: [&str; 12] = [
    "TRANSACTION_ID",
    "event_time",
    "account_id",
    "card_id",
    "terminal_id",
    "device_id",
    "ip",
    "tx_amount",
    "currency",
    "base_amount",
    "label_final",
    "label_known_at",
];

/// Schema metadata key: the feature set's name.
pub const META_SET: &str = "fraudstream.feature_set";
/// Schema metadata key: the feature set's content hash.
pub const META_VERSION: &str = "fraudstream.feature_set_version";
/// Schema metadata key: the feature columns, a JSON list of names in vector order.
pub const META_FEATURES: &str = "fraudstream.features";
/// Schema metadata key: the label delay of the replay, ms.
pub const META_LABEL_DELAY: &str = "fraudstream.label_delay_ms";

/// Default rows per row group: about 30 MB of encoded columns held at most
/// with the shipped feature sets, and groups large enough to scan fast.
pub const ROW_GROUP_ROWS: usize = 65_536;

/// Rows gathered before they are handed to the writer as one batch.
const BATCH_ROWS: usize = 8_192;

/// Decimal precision and scale of amounts (scale = log10 of [`crate::state::MONEY_SCALE`]).
const MONEY_PRECISION: u8 = 18;
const MONEY_DIGITS: i8 = 4;

/// Writes feature rows to a Parquet file, a row group at a time: memory holds
/// at most one batch of rows and one row group's encoded columns.
pub struct ParquetFeatures<W: Write + Send> {
    writer: ArrowWriter<W>,
    schema: SchemaRef,
    columns: Columns,
    label_delay_ms: i64,
}

/// The rows of the batch being gathered, column by column.
struct Columns {
    strings: [StringBuilder; 7],
    event_time: TimestampMillisecondBuilder,
    tx_amount: Decimal128Builder,
    base_amount: Decimal128Builder,
    label_final: BooleanBuilder,
    label_known_at: TimestampMillisecondBuilder,
    features: Vec<Float64Builder>,
    rows: usize,
}

/// Positions of the string columns in [`Columns::strings`].
const ID: usize = 0;
const ACCOUNT: usize = 1;
const CARD: usize = 2;
const TERMINAL: usize = 3;
const DEVICE: usize = 4;
const IP: usize = 5;
const CURRENCY: usize = 6;

impl<W: Write + Send> ParquetFeatures<W> {
    /// A writer to `out` for the features of `set`, with labels known
    /// `label_delay_ms` after each event and `row_group_rows` rows per group.
    pub fn new(
        out: W,
        set: &FeatureSet,
        label_delay_ms: i64,
        row_group_rows: usize,
    ) -> Result<Self, ExportError> {
        let features = &set.names;
        if let Some(clash) = features.iter().find(|f| ROW_COLUMNS.contains(&f.as_str())) {
            return Err(ExportError::NameClash(clash.clone()));
        }
        let metadata = HashMap::from([
            (META_SET.to_string(), set.name.clone()),
            (META_VERSION.to_string(), set.version.clone()),
            (
                META_FEATURES.to_string(),
                serde_json::to_string(features).expect("strings serialize"),
            ),
            (META_LABEL_DELAY.to_string(), label_delay_ms.to_string()),
        ]);
        let schema = Arc::new(schema(features).with_metadata(metadata));
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(row_group_rows.max(1)))
            .set_created_by(format!("fraudstream {}", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(Self {
            writer: ArrowWriter::try_new(out, schema.clone(), Some(props))?,
            schema,
            columns: Columns::new(features.len())?,
            label_delay_ms,
        })
    }

    /// Appends `row` with its `features` (NaN = missing, written as null).
    pub fn push(&mut self, row: &TxRow<'_>, features: &[f64]) -> Result<(), ExportError> {
        let c = &mut self.columns;
        c.strings[ID].append_value(row.transaction_id);
        c.event_time.append_value(row.ts_ms);
        c.strings[ACCOUNT].append_value(row.customer_id);
        c.strings[CARD].append_value(row.card());
        c.strings[TERMINAL].append_value(row.terminal_id);
        c.strings[DEVICE].append_option(row.device_id);
        c.strings[IP].append_option(row.ip);
        c.tx_amount
            .append_value(i128::from(Money::from_f64(row.original_amount).0));
        c.strings[CURRENCY].append_value(row.currency.code());
        c.base_amount
            .append_value(i128::from(Money::from_f64(row.amount).0));
        c.label_final.append_value(row.fraud);
        c.label_known_at
            .append_value(row.ts_ms.saturating_add(self.label_delay_ms));
        for (column, &v) in c.features.iter_mut().zip(features) {
            column.append_option((!v.is_nan()).then_some(v));
        }
        c.rows += 1;
        if c.rows == BATCH_ROWS {
            self.write_batch()?;
        }
        Ok(())
    }

    /// Writes the rows still held and the file's footer; returns the writer.
    pub fn finish(mut self) -> Result<W, ExportError> {
        self.write_batch()?;
        Ok(self.writer.into_inner()?)
    }

    fn write_batch(&mut self) -> Result<(), ExportError> {
        if self.columns.rows == 0 {
            return Ok(());
        }
        let batch = RecordBatch::try_new(self.schema.clone(), self.columns.finish())?;
        self.writer.write(&batch)?;
        Ok(())
    }
}

impl Columns {
    fn new(features: usize) -> Result<Self, ArrowError> {
        let money = || {
            Decimal128Builder::with_capacity(BATCH_ROWS)
                .with_precision_and_scale(MONEY_PRECISION, MONEY_DIGITS)
        };
        let time = || TimestampMillisecondBuilder::with_capacity(BATCH_ROWS).with_timezone("UTC");
        Ok(Self {
            strings: std::array::from_fn(|_| StringBuilder::with_capacity(BATCH_ROWS, 0)),
            event_time: time(),
            tx_amount: money()?,
            base_amount: money()?,
            label_final: BooleanBuilder::with_capacity(BATCH_ROWS),
            label_known_at: time(),
            features: (0..features)
                .map(|_| Float64Builder::with_capacity(BATCH_ROWS))
                .collect(),
            rows: 0,
        })
    }

    /// The gathered rows as arrays in [`schema`] order; the builders start empty again.
    fn finish(&mut self) -> Vec<ArrayRef> {
        self.rows = 0;
        let s = &mut self.strings;
        let mut arrays: Vec<ArrayRef> = vec![
            Arc::new(s[ID].finish()),
            Arc::new(self.event_time.finish()),
            Arc::new(s[ACCOUNT].finish()),
            Arc::new(s[CARD].finish()),
            Arc::new(s[TERMINAL].finish()),
            Arc::new(s[DEVICE].finish()),
            Arc::new(s[IP].finish()),
            Arc::new(self.tx_amount.finish()),
            Arc::new(s[CURRENCY].finish()),
            Arc::new(self.base_amount.finish()),
            Arc::new(self.label_final.finish()),
            Arc::new(self.label_known_at.finish()),
        ];
        arrays.extend(
            self.features
                .iter_mut()
                .map(|f| Arc::new(f.finish()) as ArrayRef),
        );
        arrays
    }
}

/// The file's schema: [`ROW_COLUMNS`], then one nullable `Float64` per feature.
fn schema(features: &[String]) -> Schema {
    let time = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    let money = DataType::Decimal128(MONEY_PRECISION, MONEY_DIGITS);
    let types = [
        (DataType::Utf8, false),
        (time.clone(), false),
        (DataType::Utf8, false),
        (DataType::Utf8, false),
        (DataType::Utf8, false),
        (DataType::Utf8, true),
        (DataType::Utf8, true),
        (money.clone(), false),
        (DataType::Utf8, false),
        (money, false),
        (DataType::Boolean, false),
        (time, false),
    ];
    let mut fields: Vec<Field> = ROW_COLUMNS
        .iter()
        .zip(types)
        .map(|(name, (ty, nullable))| Field::new(*name, ty, nullable))
        .collect();
    fields.extend(
        features
            .iter()
            .map(|name| Field::new(name, DataType::Float64, true)),
    );
    Schema::new(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(feature: &str) -> FeatureSet {
        let text = format!(
            "name = \"t\"\ndescription = \"t\"\n[[feature]]\nname = \"{feature}\"\ndescription = \"d\"\nevent = \"amount\"\n"
        );
        FeatureSet::parse("t.toml", &text).unwrap()
    }

    /// Every export column's name is refused as a feature name (the file would
    /// hold two columns of that name), and any other name is taken.
    #[test]
    fn a_feature_named_like_an_export_column_is_refused() {
        for name in ROW_COLUMNS {
            match ParquetFeatures::new(Vec::new(), &set(name), 0, ROW_GROUP_ROWS) {
                Err(ExportError::NameClash(n)) => assert_eq!(n, name),
                other => panic!("{name}: {:?}", other.err()),
            }
        }
        let writer = ParquetFeatures::new(Vec::new(), &set("amount"), 0, ROW_GROUP_ROWS);
        assert!(writer.unwrap().finish().unwrap().starts_with(b"PAR1"));
    }
}
