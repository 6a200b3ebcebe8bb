//! `fraudstream simulate`: writes a labelled simulated transactions file.

use crate::offline::simulate::{simulate, Columns, SimOptions};
use clap::Args;
use std::io::Write;
use std::path::PathBuf;

/// Flags of `simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Days to simulate.
    #[arg(long, default_value_t = SimOptions::default().days)]
    pub days: u32,
    /// Seed: the same flags give the same file, byte for byte.
    #[arg(long, default_value_t = SimOptions::default().seed)]
    pub seed: u64,
    /// Customers of the simulated bank.
    #[arg(long, default_value_t = SimOptions::default().customers)]
    pub customers: u32,
    /// First day (YYYY-MM-DD).
    #[arg(long, default_value_t = SimOptions::default().start)]
    pub start: String,
    /// `handbook`: the handbook's nine columns; `full`: plus CARD_ID, DEVICE_ID, IP, COUNTRY, MCC, CHANNEL.
    #[arg(long, value_enum, default_value = "full")]
    pub columns: Columns,
    /// Output CSV (`.csv.gz` to gzip it).
    #[arg(long)]
    pub out: PathBuf,
}

/// Simulates, writes the file and prints what it holds per fraud pattern.
pub fn run(args: SimulateArgs) -> anyhow::Result<()> {
    let opts = SimOptions {
        days: args.days,
        seed: args.seed,
        customers: args.customers,
        start: args.start,
    };
    let started = std::time::Instant::now();
    let sim = simulate(&opts)?;
    sim.write_file(&args.out, args.columns)?;
    let frauds = sim.frauds();
    // Written, not printed: a closed pipe (`| head`) is an error, not a panic.
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{} payments ({} fraud, {:.2} %) of {} customers at {} terminals over {} days from {}, in {:.1} s: {}",
        sim.len(),
        frauds,
        100.0 * frauds as f64 / sim.len().max(1) as f64,
        opts.customers,
        sim.terminals(),
        opts.days,
        opts.start,
        started.elapsed().as_secs_f64(),
        args.out.display()
    )?;
    writeln!(
        out,
        "{:<4} {:<22} {:>9} {:>7} {:>6}",
        "code", "TX_FRAUD_SCENARIO", "incidents", "frauds", "cards"
    )?;
    for c in sim.by_pattern() {
        writeln!(
            out,
            "{:<4} {:<22} {:>9} {:>7} {:>6}",
            c.pattern.code(),
            c.pattern.name(),
            c.incidents,
            c.frauds,
            c.cards
        )?;
    }
    Ok(())
}
