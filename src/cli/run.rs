//! `fraudstream run`: production mode.

use crate::config::{self, LogFormat};
use crate::ops::lifecycle::{Health, Shutdown};
use crate::ops::metrics::Metrics;
use clap::Args;
use figment::providers::Serialized;
use figment::Figment;
use std::path::PathBuf;
use std::sync::Arc;

/// Flags of `run`; each overrides the matching config key.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Config file (TOML), layered over `config/default.toml`.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Kafka bootstrap servers (`kafka.brokers`).
    #[arg(long)]
    pub brokers: Option<String>,
    /// Consumer group (`kafka.group_id`).
    #[arg(long)]
    pub group: Option<String>,
    /// Input topic (`kafka.input_topic`).
    #[arg(long)]
    pub input_topic: Option<String>,
    /// Output topic (`kafka.output_topic`).
    #[arg(long)]
    pub output_topic: Option<String>,
    /// Labels topic (`kafka.labels_topic`).
    #[arg(long)]
    pub labels_topic: Option<String>,
    /// Dead-letter topic (`kafka.dlq_topic`).
    #[arg(long)]
    pub dlq_topic: Option<String>,
    /// Instance id, stable across restarts (`kafka.instance_id`).
    #[arg(long)]
    pub instance_id: Option<String>,
    /// Metrics/health address.
    #[command(flatten)]
    pub metrics: super::input::MetricsAddrArgs,
}

impl RunArgs {
    /// The flags given, as config overrides.
    pub(super) fn overrides(&self) -> Figment {
        let mut f = Figment::new();
        let flags = [
            ("kafka.brokers", &self.brokers),
            ("kafka.group_id", &self.group),
            ("kafka.input_topic", &self.input_topic),
            ("kafka.output_topic", &self.output_topic),
            ("kafka.labels_topic", &self.labels_topic),
            ("kafka.dlq_topic", &self.dlq_topic),
            ("kafka.instance_id", &self.instance_id),
            ("metrics.addr", &self.metrics.metrics_addr),
        ];
        for (key, value) in flags {
            if let Some(v) = value {
                f = f.merge(Serialized::default(key, v));
            }
        }
        f
    }
}

/// Runs the processor until SIGINT/SIGTERM.
pub fn run(args: RunArgs, log_format: Option<LogFormat>) -> anyhow::Result<()> {
    let mut cfg = config::load(args.config.as_deref(), args.overrides())?;
    if let Some(f) = log_format {
        cfg.log.format = f;
    }
    super::init_logging(cfg.log.format, &cfg.log.level);
    let metrics = Arc::new(Metrics::new());
    let health = Health::new();
    let shutdown = Shutdown::new();
    let rt = super::start_runtime(
        &cfg.metrics,
        metrics.clone(),
        health.clone(),
        shutdown.clone(),
    )?;
    if cfg.api.addr.is_empty() {
        crate::pipeline::run(&cfg, metrics, health, shutdown)?;
    } else {
        let (addr, calls) = rt
            .block_on(crate::api::serve(&cfg, metrics.clone()))
            .map_err(|e| anyhow::anyhow!("cannot serve the API on {}: {e}", cfg.api.addr))?;
        tracing::info!(%addr, "decision API: POST /v1/decisions");
        let rules = crate::rules::reload::RulesSource::from_config(&cfg.rules);
        crate::pipeline::run_with_api(&cfg, rules, metrics, health, shutdown, calls)?;
    }
    Ok(())
}
