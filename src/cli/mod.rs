//! Command-line interface: flag parsing and the glue that starts each command.

mod demo;
mod features;
mod input;
mod loadtest;
mod model;
mod rules;
mod run;
mod simulate;
mod topics;

use crate::config::{LogFormat, MetricsConfig};
use crate::ops::lifecycle::{Health, Shutdown};
use crate::ops::metrics::Metrics;
use clap::{Parser, Subcommand};
use std::sync::Arc;

/// Real-time card-fraud detection over Kafka.
#[derive(Debug, Parser)]
#[command(name = "fraudstream", version, about)]
pub struct Cli {
    /// Log format (overrides `log.format`).
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the processor against a Kafka cluster.
    Run(run::RunArgs),
    /// Run everything on an embedded broker with a synthetic payment stream.
    Demo(demo::DemoArgs),
    /// Replay a transactions CSV through the feature engine and write the features.
    Features(features::FeaturesArgs),
    /// Check, test and explain rule files.
    Rules(rules::RulesArgs),
    /// Train a model on a transactions file with the feature engine.
    ///
    /// Gradient-boosted trees are fitted by forust-ml. The settings are chosen
    /// without the test period, by a rule fixed in advance: every depth x
    /// learning rate of the grid is fitted on a window as long as the training
    /// window that ends one label delay before the validation period (the last
    /// --validation-days of the window), with early stopping on the validation
    /// log-loss, and scored with and without the logistic blend; the highest
    /// validation Average Precision wins (ties: the earlier row of the printed
    /// table). The model is then refitted on the training window with those
    /// settings. Same data and flags, same file.
    Train(model::TrainArgs),
    /// Run features, rules, model and policy over a transactions file and measure them.
    Backtest(model::BacktestArgs),
    /// Model files: import a LightGBM or XGBoost model.
    Model(model::ModelArgs),
    /// Measure the processor against a Kafka pass-through baseline on an embedded broker.
    Loadtest(loadtest::LoadTestArgs),
    /// Write a labelled simulated transactions file (other customers and fraud patterns than the handbook's).
    Simulate(simulate::SimulateArgs),
    /// Print every topic the configuration needs, with its settings; `--create` creates the missing ones.
    Topics(topics::TopicsArgs),
}

/// Parses the command line and runs the command.
pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => run::run(args, cli.log_format),
        Command::Demo(args) => demo::run(args, cli.log_format),
        Command::Features(args) => {
            init_logging(cli.log_format.unwrap_or(LogFormat::Text), "warn");
            features::run(args)
        }
        Command::Train(args) => {
            init_logging(cli.log_format.unwrap_or(LogFormat::Text), "warn");
            model::run_train(args)
        }
        Command::Backtest(args) => {
            init_logging(cli.log_format.unwrap_or(LogFormat::Text), "warn");
            model::run_backtest(args)
        }
        Command::Model(args) => {
            init_logging(cli.log_format.unwrap_or(LogFormat::Text), "warn");
            model::run_model(args)
        }
        Command::Loadtest(args) => {
            init_logging(cli.log_format.unwrap_or(LogFormat::Text), "warn");
            loadtest::run(args)
        }
        Command::Simulate(args) => simulate::run(args),
        Command::Topics(args) => {
            init_logging(cli.log_format.unwrap_or(LogFormat::Text), "warn");
            topics::run(args)
        }
        Command::Rules(args) => {
            let code = rules::run(args)?;
            if code != 0 {
                std::process::exit(code);
            }
            Ok(())
        }
    }
}

/// Installs the global `tracing` subscriber (stderr; text or JSON).
pub fn init_logging(format: LogFormat, level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Starts the metrics endpoint (if `http.addr` is set) and the signal handler on a
/// small runtime of its own, off the pipeline's threads; returns the runtime,
/// which must stay alive while the command runs.
fn start_runtime(
    http: &MetricsConfig,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    shutdown: Shutdown,
) -> anyhow::Result<tokio::runtime::Runtime> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .thread_name("fraudstream-io")
        .build()?;
    if !http.addr.is_empty() {
        let fds = crate::ops::lifecycle::raise_fd_limit();
        if fds < http.max_connections as u64 * 2 {
            tracing::warn!(
                max_connections = http.max_connections,
                fd_limit = fds,
                "metrics.max_connections may leave the Kafka clients too few file descriptors"
            );
        }
        let state = crate::ops::http::OperatorState {
            metrics,
            health: health.clone(),
            shutdown: shutdown.clone(),
        };
        let (addr, limits) = (&http.addr, crate::ops::http::HttpLimits::of(http));
        rt.block_on(crate::ops::http::serve(addr, limits, state))
            .map_err(|e| anyhow::anyhow!("cannot serve metrics on {addr}: {e}"))?;
    }
    #[cfg(unix)]
    rt.spawn(async {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut hup) = signal(SignalKind::hangup()) {
            while hup.recv().await.is_some() {
                tracing::info!("SIGHUP: reloading rules");
                crate::ops::lifecycle::request_reload();
            }
        }
    });
    rt.spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown requested; finishing in-flight events");
        health.set_stopping();
        shutdown.trigger();
    });
    Ok(rt)
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
