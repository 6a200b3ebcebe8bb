//! Hot reload of rules, models and exchange rates while the pipeline runs:
//! rule and model files through their folders' watchers, the rates file by
//! its modification time, all on SIGHUP. A rejected file never replaces the
//! running version; it is logged and counted.

use crate::model::store::{self as model_store, ModelStore};
use crate::model::ModelError;
use crate::ops::internal_events::{ModelRejected, ModelReloaded, RulesRejected, RulesReloaded};
use crate::ops::lifecycle::{reload_generation, Shutdown};
use crate::ops::metrics::Metrics;
use crate::rules::reload::{self as rules_reload, RuleStore};
use crate::rules::{RulesError, Ruleset};
use crate::source::currency::{FxError, RateTable, RatesSource};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Starts the watchers; they stop with `shutdown`.
pub(super) fn watch(
    rules: Arc<RuleStore>,
    models: Arc<ModelStore>,
    rates: RatesSource,
    metrics: Arc<Metrics>,
    shutdown: Shutdown,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let on_change = {
        let metrics = metrics.clone();
        move |r| report_rules(r, &metrics)
    };
    let rules_watcher = rules_reload::watch(rules.clone(), shutdown.clone(), on_change)?;
    let on_change = {
        let (models, metrics) = (models.clone(), metrics.clone());
        move |r| report_models_reload(r, &models, &metrics)
    };
    let models_watcher = model_store::watch(models.clone(), shutdown.clone(), on_change)?;
    std::thread::Builder::new()
        .name("reload".into())
        .spawn(move || {
            let mut seen = reload_generation();
            let mut rates_time = rates.path.as_deref().and_then(modified);
            while !shutdown.is_triggered() {
                std::thread::sleep(Duration::from_millis(200));
                let generation = reload_generation();
                let sighup = generation != seen;
                seen = generation;
                if sighup {
                    report_rules(rules.reload(), &metrics);
                    report_models_reload(models.reload(), &models, &metrics);
                }
                let now = rates.path.as_deref().and_then(modified);
                if sighup || now != rates_time {
                    rates_time = now;
                    // Logged and counted inside; the running table stays on an error.
                    let _ = reload_rates(&rates, &metrics);
                }
            }
            let _ = rules_watcher.join();
            let _ = models_watcher.join();
        })
}

fn modified(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

fn report_rules(result: Result<Arc<Ruleset>, RulesError>, metrics: &Metrics) {
    match result {
        Ok(r) => RulesReloaded { ruleset: &r }.emit(metrics),
        Err(e) => RulesRejected { errors: &e }.emit(metrics),
    }
}

/// Reloads the rates file; a file that fails validation leaves the running
/// table in place. Amounts already converted (in the state) keep their rate.
fn reload_rates(rates: &RatesSource, metrics: &Metrics) -> Result<Arc<RateTable>, FxError> {
    let result = rates.reload();
    match &result {
        Ok(table) => {
            metrics.fx_rates_reloads.inc();
            report_rates(table, metrics);
            tracing::info!(rates = %table.source(), currencies = table.len(), "exchange rates reloaded");
        }
        Err(e) => {
            metrics.fx_rates_reload_errors.inc();
            tracing::error!(error = %e, "exchange rates rejected; the running rates stay");
        }
    }
    result
}

/// Publishes the date of the running rates.
pub(super) fn report_rates(table: &RateTable, metrics: &Metrics) {
    metrics
        .fx_rates_as_of
        .set(table.as_of_ms().map_or(0, |ms| ms / 1000));
}

fn report_models_reload(
    results: Vec<Result<String, ModelError>>,
    models: &ModelStore,
    metrics: &Metrics,
) {
    for result in results {
        match result {
            Ok(version) => ModelReloaded { version: &version }.emit(metrics),
            Err(e) => ModelRejected { error: &e }.emit(metrics),
        }
    }
    report_models(models, metrics);
}

/// Publishes the active model versions.
pub(super) fn report_models(models: &ModelStore, metrics: &Metrics) {
    metrics.model_info.reset();
    for (role, m) in [
        ("champion", models.champion()),
        ("challenger", models.challenger()),
    ] {
        if let Some(m) = m {
            metrics
                .model_info
                .with_label_values(&[role, &m.version])
                .set(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iso_currency::Currency;

    /// A bad rates file never replaces the running table and moves the error
    /// counter; a good one goes live and moves the reload counter and the date.
    #[test]
    fn a_rejected_rates_file_keeps_the_running_table() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fx.toml");
        let file = |as_of: &str, usd: &str| {
            std::fs::write(
                &path,
                format!("base = \"EUR\"\nas_of = \"{as_of}\"\n[rates]\nUSD = {usd}\n"),
            )
            .unwrap();
        };
        let rates = RatesSource {
            base: Currency::EUR,
            path: Some(path.clone()),
        };
        let metrics = Metrics::new();
        let _installing = crate::source::currency::TEST_INSTALL_LOCK.lock();
        file("2026-10-30", "1.25");
        let first = reload_rates(&rates, &metrics).unwrap();
        assert_eq!(metrics.fx_rates_as_of.get(), 1_793_318_400);
        file("2026-10-31", "-1");
        let err = reload_rates(&rates, &metrics).unwrap_err().to_string();
        assert!(err.contains("fx.toml:4:7"), "{err}");
        assert_eq!(
            (
                metrics.fx_rates_reloads.get(),
                metrics.fx_rates_reload_errors.get()
            ),
            (1, 1)
        );
        assert_eq!(metrics.fx_rates_as_of.get(), 1_793_318_400);
        let running = crate::source::currency::with_installed(|t| {
            (t.as_of_ms(), t.to_base(10.0, Currency::USD))
        });
        assert_eq!(running, (first.as_of_ms(), Some(8.0)));
        file("2026-11-02", "2");
        reload_rates(&rates, &metrics).unwrap();
        assert_eq!(metrics.fx_rates_as_of.get(), 1_793_577_600);
        let running = crate::source::currency::with_installed(|t| t.to_base(10.0, Currency::USD));
        assert_eq!(running, Some(5.0));
    }
}
