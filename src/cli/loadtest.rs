//! `fraudstream loadtest`: the processor against a Kafka pass-through baseline.

use crate::demo::loadtest::{LoadTestOptions, LoadTestReport, PhaseReport};
use clap::Args;
use std::path::PathBuf;

/// Flags of `loadtest`.
#[derive(Debug, Args)]
pub struct LoadTestArgs {
    /// Events per phase.
    #[arg(long, default_value_t = LoadTestOptions::default().events)]
    pub events: u64,
    /// Distinct accounts in the stream.
    #[arg(long, default_value_t = LoadTestOptions::default().accounts)]
    pub accounts: usize,
    /// Partitions of every topic.
    #[arg(long, default_value_t = LoadTestOptions::default().partitions)]
    pub partitions: i32,
    /// Most events produced but not yet read back (bounds the broker's backlog).
    #[arg(long, default_value_t = LoadTestOptions::default().in_flight)]
    pub in_flight: u64,
    /// Synthetic rules in the processor phase.
    #[arg(long, default_value_t = LoadTestOptions::default().rules)]
    pub rules: usize,
    /// Model file (default: the shipped model).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Score with only the model's first N trees (e.g. 100, the reference of issue 8).
    #[arg(long)]
    pub trees: Option<usize>,
    /// Processor phase with terminal features repartitioned (`kafka.terminal_topic`):
    /// every event crosses the broker twice.
    #[arg(long)]
    pub repartition_terminals: bool,
    /// Serve the decision API on this address during the processor phase, for a
    /// load tool to call meanwhile (`scripts/api-bench.sh`).
    #[arg(long)]
    pub api_addr: Option<String>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs the load test and prints its report.
pub fn run(args: LoadTestArgs) -> anyhow::Result<()> {
    let opts = LoadTestOptions {
        events: args.events,
        accounts: args.accounts,
        partitions: args.partitions,
        in_flight: args.in_flight,
        rules: args.rules,
        model: args.model,
        trees: args.trees,
        repartition_terminals: args.repartition_terminals,
        api_addr: args.api_addr,
        ..LoadTestOptions::default()
    };
    let quiet = args.json;
    let report = crate::demo::loadtest::run(&opts, |phase| {
        if !quiet {
            eprintln!("{phase}...");
        }
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    Ok(())
}

fn print_table(r: &LoadTestReport) {
    println!(
        "{} events, {} accounts, {} partitions; processor: {} rules, model {}",
        r.events, r.accounts, r.partitions, r.rules, r.model
    );
    println!(
        "{:<14} {:>10} {:>10} {:>10} {:>10} {:>9} {:>9} {:>8} {:>9}",
        "",
        "events/s",
        "hot p50",
        "hot p99",
        "hot p99.9",
        "e2e p50",
        "e2e p99",
        "CPU s",
        "peak RSS"
    );
    let row = |name: &str, p: &PhaseReport| {
        println!(
            "{:<14} {:>10.0} {:>8.1}us {:>8.1}us {:>8.1}us {:>7.1}ms {:>7.1}ms {:>8.1} {:>6}MiB",
            name,
            p.eps,
            p.hot_path_us_p50,
            p.hot_path_us_p99,
            p.hot_path_us_p999,
            p.e2e_ms_p50,
            p.e2e_ms_p99,
            p.cpu_seconds,
            p.peak_rss_bytes >> 20
        );
    };
    row("(a) passthru", &r.passthrough);
    row("(b) processor", &r.processor);
    println!("ratio (b)/(a): {:.2}", r.ratio);
}
