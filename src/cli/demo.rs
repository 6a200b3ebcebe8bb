//! `fraudstream demo`: the whole system on an embedded broker.

use crate::config::{Config, LogFormat};
use crate::demo::{DemoOptions, DemoSummary, FlaggedSplit};
use crate::ops::lifecycle::{Health, Shutdown};
use crate::ops::metrics::Metrics;
use clap::Args;
use std::path::PathBuf;
use std::sync::Arc;

/// Where the demo serves metrics unless `--metrics-addr` says otherwise (in
/// `--metrics-addr`'s help too).
const DEFAULT_METRICS_ADDR: &str = "127.0.0.1:9464";

/// Flags of `demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Events to generate; 0 runs until Ctrl-C.
    #[arg(long, default_value_t = 30_000)]
    pub events: u64,
    /// Events per second.
    #[arg(long, default_value_t = 2_000)]
    pub rate: u64,
    /// Seed of the synthetic stream.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Write the summary as JSON to this file.
    #[arg(long)]
    pub summary_json: Option<PathBuf>,
    /// Metrics/health address.
    #[command(flatten)]
    pub metrics: super::input::MetricsAddrArgs,
    /// Decision API address (`POST /v1/decisions`); empty to disable.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub api_addr: String,
    /// No progress line.
    #[arg(long)]
    pub quiet: bool,
    /// Rules directory (watched and hot-reloaded); default: the built-in starter rules.
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// Simulated days the demo's model learns from. The demo simulates the
    /// feature set's longest window (30 days) of history before them, trains,
    /// and plays the whole history through the processor before the live
    /// stream, so every window is full; 0 decides with rules alone, from empty state.
    #[arg(long, default_value_t = DemoOptions::default().history_days)]
    pub history_days: u32,
}

/// Runs the demo and prints its summary.
pub fn run(args: DemoArgs, log_format: Option<LogFormat>) -> anyhow::Result<()> {
    // The demo's malformed messages are deliberate and counted in its progress
    // line and summary (DLQ): their warnings would only break that line.
    super::init_logging(
        log_format.unwrap_or(LogFormat::Text),
        "warn,fraudstream::ops::internal_events=error",
    );
    let metrics = Arc::new(Metrics::new());
    let health = Health::new();
    let shutdown = Shutdown::new();
    let mut config = Config::default();
    config.kafka.group_id = "fraudstream-demo".into();
    // The demo's payments are all in the base currency: run anywhere, rates or not.
    if !std::path::Path::new(&config.currency.rates).exists() {
        config.currency.rates.clear();
    }
    config.metrics.addr = args
        .metrics
        .metrics_addr
        .clone()
        .unwrap_or_else(|| DEFAULT_METRICS_ADDR.into());
    let rt = super::start_runtime(
        &config.metrics,
        metrics.clone(),
        health.clone(),
        shutdown.clone(),
    )?;
    config.rules.dir = args
        .rules
        .as_ref()
        .map_or("builtin".into(), |p| p.display().to_string());
    let opts = DemoOptions {
        events: args.events,
        rate: args.rate,
        seed: args.seed,
        progress: !args.quiet,
        history_days: args.history_days,
        ..DemoOptions::default()
    };
    eprintln!(
        "fraudstream demo: embedded Kafka, {} synthetic payments at {}/s with card testing, account takeover and compromised terminals, decided by rules{}.",
        if opts.events == 0 { "unlimited".to_string() } else { opts.events.to_string() },
        opts.rate,
        if opts.history_days == 0 { " alone" } else { " and a model trained first on simulated history" }
    );
    if !config.metrics.addr.is_empty() {
        eprintln!("metrics: http://{}/metrics", config.metrics.addr);
    }
    let calls = if args.api_addr.is_empty() {
        None
    } else {
        config.api.addr = args.api_addr.clone();
        // The demo runs on without the API when its port is taken.
        match rt.block_on(crate::api::serve(&config, metrics.clone())) {
            Ok((addr, calls)) => {
                eprintln!("decision API: POST http://{addr}/v1/decisions");
                Some(calls)
            }
            Err(e) => {
                eprintln!("decision API not started on {}: {e}", args.api_addr);
                None
            }
        }
    };
    let summary = crate::demo::run_with_api(&opts, config, metrics, health, shutdown, calls)?;
    print_summary(&summary);
    if let Some(path) = args.summary_json {
        std::fs::write(&path, serde_json::to_string_pretty(&summary)?)?;
    }
    Ok(())
}

/// What each half of the decision adds: the rules only, the model only, both.
fn print_split(what: &str, by: &FlaggedSplit) {
    println!(
        "{what:<22} rules only {}, model only {}, both {}",
        by.rules_only, by.model_only, by.both
    );
}

fn print_summary(s: &DemoSummary) {
    let pct = |a: u64, b: u64| {
        if b == 0 {
            0.0
        } else {
            100.0 * a as f64 / b as f64
        }
    };
    println!("\n== fraudstream demo summary ==");
    println!("model               {:>9}", s.model_version);
    if s.history_events > 0 {
        println!(
            "history replayed    {:>9}  (the state the live stream starts on; not counted below)",
            s.history_events
        );
    }
    println!("events produced     {:>9}", s.events);
    println!(
        "decisions           {:>9}  (allow {}, review {}, block {})",
        s.decisions, s.allow, s.review, s.block
    );
    println!("dead-lettered       {:>9}", s.dlq);
    println!(
        "frauds in stream    {:>9}  caught {} ({:.1}%), blocked {}",
        s.frauds,
        s.frauds_caught,
        pct(s.frauds_caught, s.frauds),
        s.frauds_blocked
    );
    print_split("  caught by", &s.frauds_caught_by);
    for (pattern, (n, caught)) in &s.by_pattern {
        println!(
            "  {pattern:<22} {caught:>5}/{n:<5} ({:.1}%)",
            pct(*caught, *n)
        );
    }
    println!("reasons (on frauds / on genuine payments):");
    for (code, (f, g)) in &s.reasons {
        println!("  {code:<22} {f:>5} / {g}");
    }
    let legit = s.decisions.saturating_sub(s.frauds);
    println!(
        "good customers bothered {:>5}  ({:.2}% of genuine payments)",
        s.legit_flagged,
        pct(s.legit_flagged, legit)
    );
    print_split("  flagged by", &s.legit_flagged_by);
    println!(
        "throughput          {:>9.0} decisions/s over {:.1} s",
        s.events_per_sec, s.duration_secs
    );
    println!(
        "hot-path latency    p50 {} us, p99 {} us, p99.9 {} us",
        s.latency_us_p50, s.latency_us_p99, s.latency_us_p999
    );
    if let Some(d) = &s.example {
        println!("a fraud the model explained (the decision as written to Kafka):");
        println!("{}", serde_json::to_string_pretty(d).unwrap_or_default());
    }
}
