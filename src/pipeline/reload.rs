//! Hot reload of rules and models while the pipeline runs: rule files through
//! the directory watcher, model files by their modification time, both on SIGHUP.
//! A rejected file never replaces the running version; it is logged and counted.

use crate::lifecycle::{reload_generation, Shutdown};
use crate::metrics::Metrics;
use crate::model::ModelStore;
use crate::rules::reload::{self as rules_reload, RuleStore};
use crate::rules::{RulesError, Ruleset};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Starts the watchers; they stop with `shutdown`.
pub(super) fn watch(
    rules: Arc<RuleStore>,
    models: Arc<ModelStore>,
    metrics: Arc<Metrics>,
    shutdown: Shutdown,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let on_change = {
        let metrics = metrics.clone();
        move |r| report_rules(r, &metrics)
    };
    let rules_watcher = rules_reload::watch(rules.clone(), shutdown.clone(), on_change)?;
    std::thread::Builder::new()
        .name("reload".into())
        .spawn(move || {
            let mut seen = reload_generation();
            let mtimes = |m: &ModelStore| m.paths().map(modified).collect::<Vec<_>>();
            let mut model_times = mtimes(&models);
            while !shutdown.is_triggered() {
                std::thread::sleep(Duration::from_millis(200));
                let generation = reload_generation();
                let sighup = generation != seen;
                seen = generation;
                if sighup {
                    report_rules(rules.reload(), &metrics);
                }
                let now = mtimes(&models);
                if sighup || now != model_times {
                    model_times = now;
                    reload_models(&models, &metrics);
                }
            }
            let _ = rules_watcher.join();
        })
}

fn modified(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

fn report_rules(result: Result<Arc<Ruleset>, RulesError>, metrics: &Metrics) {
    match result {
        Ok(r) => {
            metrics.rules_reloads.inc();
            metrics.set_rules_version(&r.version);
            tracing::info!(version = %r.version, rules = ?r.counts(), tests = r.tests_passed, "rules reloaded");
        }
        Err(e) => {
            metrics.rules_reload_errors.inc();
            for err in &e.0 {
                tracing::error!(error = %err, "rules rejected; the running ruleset stays");
            }
        }
    }
}

fn reload_models(models: &ModelStore, metrics: &Metrics) {
    for result in models.reload() {
        match result {
            Ok(version) => {
                metrics.model_reloads.inc();
                tracing::info!(%version, "model reloaded");
            }
            Err(e) => {
                metrics.model_reload_errors.inc();
                tracing::error!(error = %e, "model rejected; the running model stays");
            }
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
