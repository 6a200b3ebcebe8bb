//! `fraudstream features`: offline feature replay over a transactions CSV.

use crate::features::load_feature_set;
use crate::features::spec::parse_duration_s;
use crate::replay::{parse_date_ms, replay, ReplayOptions};
use anyhow::Context;
use clap::Args;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

/// Flags of `features`.
#[derive(Debug, Args)]
pub struct FeaturesArgs {
    /// Transactions in the handbook's CSV format (`.csv` or `.csv.gz`).
    #[arg(long)]
    pub input: PathBuf,
    /// First day to write (YYYY-MM-DD); earlier rows only warm the state.
    #[arg(long)]
    pub from: Option<String>,
    /// Last day to write (YYYY-MM-DD, inclusive).
    #[arg(long)]
    pub to: Option<String>,
    /// Built-in feature set name or TOML path (default: the set `train` uses).
    #[arg(long, default_value = "default")]
    pub feature_set: String,
    /// Delay after which each transaction's label is fed back (e.g. 7d).
    #[arg(long, default_value = "7d")]
    pub label_delay: String,
    /// Output CSV (removed again when the replay fails).
    #[arg(long)]
    pub out: PathBuf,
    /// How the input is read.
    #[command(flatten)]
    pub input_args: super::input::InputArgs,
}

/// Runs the replay and writes `TRANSACTION_ID` plus every feature per row.
pub fn run(args: FeaturesArgs) -> anyhow::Result<()> {
    let set = Arc::new(load_feature_set(&args.feature_set)?);
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
        input: args.input_args.options()?,
        ..ReplayOptions::default()
    };
    let file = std::fs::File::create(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    write!(out, "TRANSACTION_ID")?;
    for name in &set.names {
        write!(out, ",{name}")?;
    }
    writeln!(out)?;
    let total = std::fs::metadata(&args.input).map(|m| m.len()).unwrap_or(0);
    let gz = args.input.to_string_lossy().ends_with(".gz");
    // Uncompressed size is unknown for gzip; the handbook compresses about 4:1.
    let bar = indicatif::ProgressBar::new(if gz { total * 4 } else { total });
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} replaying [{bar:40}] {percent}% {elapsed} ({eta} left)",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let started = std::time::Instant::now();
    let mut io_err = None;
    let mut line = String::with_capacity(512);
    let mut ryu_buf = ryu::Buffer::new();
    let result = replay(
        &args.input,
        set.clone(),
        &opts,
        |row, features| {
            if io_err.is_some() {
                return;
            }
            line.clear();
            line.push_str(row.transaction_id);
            for &v in features {
                line.push(',');
                push_number(&mut line, v, &mut ryu_buf);
            }
            line.push('\n');
            if let Err(e) = out.write_all(line.as_bytes()) {
                io_err = Some(e);
            }
        },
        |bytes| bar.set_position(bytes),
    );
    bar.finish_and_clear();
    let result = match (result, io_err) {
        (Ok(stats), None) => Ok(stats),
        (_, Some(e)) => Err(anyhow::Error::from(e).context("writing features")),
        (Err(e), None) => Err(e.into()),
    };
    let Ok(stats) = result else {
        drop(out);
        // A partial feature file must not be mistaken for a whole one.
        let _ = std::fs::remove_file(&args.out);
        return result.map(|_| ());
    };
    out.flush()?;
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
