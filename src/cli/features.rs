//! `fraudstream features`: offline feature replay over a transactions CSV.

use crate::features::load_feature_set;
use crate::features::spec::parse_duration_s;
use crate::offline::parquet::{ParquetFeatures, ROW_GROUP_ROWS};
use crate::offline::replay::{parse_date_ms, replay, ReplayOptions};
use crate::source::handbook::TxRow;
use anyhow::Context;
use clap::{Args, ValueEnum};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;

/// Flags of `features`.
#[derive(Debug, Args)]
pub struct FeaturesArgs {
    /// The transactions file and how it is read.
    #[command(flatten)]
    pub input: super::input::InputArgs,
    /// First day to write (YYYY-MM-DD); earlier rows only warm the state.
    #[arg(long)]
    pub from: Option<String>,
    /// Last day to write (YYYY-MM-DD, inclusive).
    #[arg(long)]
    pub to: Option<String>,
    /// The feature set computed.
    #[command(flatten)]
    pub feature_set: super::input::FeatureSetArgs,
    /// Delay after which each transaction's label is fed back (e.g. 7d).
    #[arg(long, default_value = "7d")]
    pub label_delay: String,
    /// Output file (removed again when the replay fails).
    #[arg(long)]
    pub out: PathBuf,
    /// Output format: `csv` (id and features) or `parquet` (also event time,
    /// entity ids, amounts and labels; nulls for missing features).
    #[arg(long, value_enum, default_value_t = Format::Csv)]
    pub format: Format,
}

/// Format of the feature file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// `TRANSACTION_ID` and every feature; a missing feature is an empty field.
    Csv,
    /// The CSV's columns plus the row's event time, entity ids, amounts and
    /// labels (`src/offline/parquet.rs`); a missing feature is null.
    Parquet,
}

/// Where the rows go.
enum Sink {
    Csv {
        out: BufWriter<File>,
        line: String,
        ryu: ryu::Buffer,
    },
    Parquet(Box<ParquetFeatures<BufWriter<File>>>),
}

impl Sink {
    /// A CSV sink, its header written.
    fn csv(mut out: BufWriter<File>, names: &[String]) -> anyhow::Result<Sink> {
        write!(out, "TRANSACTION_ID")?;
        for name in names {
            write!(out, ",{name}")?;
        }
        writeln!(out)?;
        Ok(Sink::Csv {
            out,
            line: String::with_capacity(512),
            ryu: ryu::Buffer::new(),
        })
    }

    fn push(&mut self, row: &TxRow<'_>, features: &[f64]) -> anyhow::Result<()> {
        match self {
            Sink::Csv { out, line, ryu } => {
                line.clear();
                line.push_str(row.transaction_id);
                for &v in features {
                    line.push(',');
                    push_number(line, v, ryu);
                }
                line.push('\n');
                out.write_all(line.as_bytes()).context("writing features")
            }
            Sink::Parquet(p) => Ok(p.push(row, features)?),
        }
    }

    /// Writes what is still buffered (and Parquet's footer).
    fn finish(self) -> anyhow::Result<()> {
        let mut out = match self {
            Sink::Csv { out, .. } => out,
            Sink::Parquet(p) => p.finish()?,
        };
        out.flush().context("writing features")
    }
}

/// Runs the replay and writes each row in range in `--format`.
pub fn run(args: FeaturesArgs) -> anyhow::Result<()> {
    let set = Arc::new(load_feature_set(&args.feature_set.feature_set)?);
    let date = |s: &Option<String>, add_day: bool| -> anyhow::Result<Option<i64>> {
        s.as_deref()
            .map(|d| {
                parse_date_ms(d)
                    .map(|ms| ms + if add_day { 86_400_000 } else { 0 })
                    .with_context(|| format!("bad date '{d}', expected YYYY-MM-DD"))
            })
            .transpose()
    };
    let opts = ReplayOptions {
        from_ms: date(&args.from, false)?.unwrap_or(i64::MIN),
        to_ms: date(&args.to, true)?.unwrap_or(i64::MAX),
        label_delay_ms: i64::from(
            parse_duration_s(&args.label_delay).context("bad --label-delay, expected e.g. 7d")?,
        ) * 1000,
        input: args.input.options()?,
        ..ReplayOptions::default()
    };
    if opts.to_ms <= opts.from_ms {
        // As `train` and `backtest` refuse it: nothing could be written.
        anyhow::bail!(
            "--to '{}' is before --from '{}'",
            args.to.as_deref().unwrap_or(""),
            args.from.as_deref().unwrap_or("")
        );
    }
    let file = std::fs::File::create(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let out = std::io::BufWriter::with_capacity(1 << 20, file);
    let sink = match args.format {
        Format::Csv => Sink::csv(out, &set.names),
        Format::Parquet => ParquetFeatures::new(out, &set, opts.label_delay_ms, ROW_GROUP_ROWS)
            .map(|p| Sink::Parquet(Box::new(p)))
            .map_err(anyhow::Error::from),
    };
    let mut out = sink.inspect_err(|_| {
        let _ = std::fs::remove_file(&args.out);
    })?;
    let total = std::fs::metadata(&args.input.path)
        .map(|m| m.len())
        .unwrap_or(0);
    let gz = args.input.path.to_string_lossy().ends_with(".gz");
    // Uncompressed size is unknown for gzip; the handbook compresses about 4:1.
    let bar = indicatif::ProgressBar::new(if gz { total * 4 } else { total });
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} replaying [{bar:40}] {percent}% {elapsed} ({eta} left)",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let started = std::time::Instant::now();
    let mut write_err = None;
    let reach_ms = i64::from(set.history_reach_s()) * 1000;
    // Event times of the rows written within a reach of the first: every row
    // with partial windows is among them.
    let mut early: Vec<i64> = Vec::new();
    let result = replay(
        &args.input.path,
        set.clone(),
        &opts,
        |row, features| {
            if write_err.is_none() {
                write_err = out.push(row, features).err();
            }
            if early
                .first()
                .is_none_or(|&t| row.ts_ms < t.saturating_add(reach_ms))
            {
                early.push(row.ts_ms);
            }
        },
        |bytes| bar.set_position(bytes),
    );
    bar.finish_and_clear();
    let result = match (result, write_err) {
        (Ok(stats), None) => out.finish().map(|()| stats),
        (_, Some(e)) => Err(e),
        (Err(e), None) => Err(e.into()),
    };
    let Ok(stats) = result else {
        // A partial feature file must not be mistaken for a whole one.
        let _ = std::fs::remove_file(&args.out);
        return result.map(|_| ());
    };
    let secs = started.elapsed().as_secs_f64();
    let mut skipped = String::new();
    if stats.after_to > 0 {
        skipped += &format!(", {} after --to (not replayed)", stats.after_to);
    }
    if stats.invalid_count() > 0 {
        skipped += &format!(
            ", {} invalid skipped ({})",
            stats.invalid_count(),
            stats.invalid_summary()
        );
    }
    eprintln!(
        "{} rows read, {} replayed, {} written to {}{skipped}, {} labels fed back, {:.2} s ({:.0} rows/s)",
        stats.read,
        stats.rows,
        stats.emitted,
        args.out.display(),
        stats.labels,
        secs,
        stats.read as f64 / secs
    );
    if let Some(first_ms) = stats.first_ms {
        let full_from = first_ms.saturating_add(reach_ms);
        let partial = early.partition_point(|&t| t < full_from);
        if partial > 0 {
            eprintln!(
                "warning: {partial} rows written before {} have partial windows: the feature set reads {} days back, and the input starts {} (a model should not learn from them; `train` leaves them out)",
                crate::time::rfc3339_ms(full_from),
                reach_ms as f64 / 86_400_000.0,
                crate::time::rfc3339_ms(first_ms),
            );
        }
    }
    Ok(())
}

/// Appends `v` to a CSV line: empty when missing, integers without a fraction,
/// other values in the shortest form that reads back exactly.
fn push_number(line: &mut String, v: f64, buf: &mut ryu::Buffer) {
    if v.is_nan() {
        return;
    }
    if v.fract() == 0.0 && v.abs() < 1e15 {
        use std::fmt::Write;
        let _ = write!(line, "{}", v as i64);
    } else {
        line.push_str(buf.format(v));
    }
}
