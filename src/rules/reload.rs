//! Hot reload: the running ruleset behind an atomic pointer, swapped only for a
//! ruleset that parsed, compiled and passed its own tests.

use super::{RulesError, Ruleset};
use crate::features::FeatureSet;
use crate::ops::lifecycle::Shutdown;
use arc_swap::{ArcSwap, Guard};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Where rules come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RulesSource {
    /// A directory of rule files (hot-reloadable).
    Dir(PathBuf),
    /// The starter ruleset compiled into the binary.
    Builtin,
    /// Given files, as `(path, content)` (tests and backtests; empty = no rules).
    Files(Vec<(String, String)>),
}

impl RulesSource {
    /// The source the `[rules]` settings name.
    pub fn from_config(r: &crate::config::RulesConfig) -> Self {
        if r.dir == "builtin" {
            Self::Builtin
        } else {
            Self::Dir(r.dir.clone().into())
        }
    }
}

/// The running ruleset, swappable while events are being evaluated.
pub struct RuleStore {
    current: ArcSwap<Ruleset>,
    generation: AtomicU64,
    source: RulesSource,
    set: Arc<FeatureSet>,
}

impl RuleStore {
    /// Loads the initial ruleset; fails (nothing to fall back to) if it does not load.
    pub fn load(source: RulesSource, set: Arc<FeatureSet>) -> Result<Self, RulesError> {
        let rules = Self::compile(&source, &set)?;
        Ok(Self {
            current: ArcSwap::from_pointee(rules),
            generation: AtomicU64::new(0),
            source,
            set,
        })
    }

    fn compile(source: &RulesSource, set: &FeatureSet) -> Result<Ruleset, RulesError> {
        match source {
            RulesSource::Dir(dir) => Ruleset::load_dir(dir, set),
            RulesSource::Builtin => Ruleset::builtin(set),
            RulesSource::Files(files) => {
                let refs: Vec<(&str, &str)> = files
                    .iter()
                    .map(|(a, b)| (a.as_str(), b.as_str()))
                    .collect();
                Ruleset::from_files(&refs, set)
            }
        }
    }

    /// The ruleset to use for one event (a lock-free load).
    #[inline]
    pub fn current(&self) -> Guard<Arc<Ruleset>> {
        self.current.load()
    }

    /// Bumped after each swap: a reader that keeps its own `Arc` of the ruleset
    /// checks it is current with this one load instead of [`RuleStore::current`].
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Where the rules come from.
    pub fn source(&self) -> &RulesSource {
        &self.source
    }

    /// Recompiles from the source and swaps it in if it compiled and its tests
    /// passed; otherwise the running ruleset stays and the errors are returned.
    pub fn reload(&self) -> Result<Arc<Ruleset>, RulesError> {
        let next = Arc::new(Self::compile(&self.source, &self.set)?);
        self.current.store(next.clone());
        self.generation.fetch_add(1, Ordering::Release);
        Ok(next)
    }
}

/// Watches a rules directory (and its `lists/`) and reloads after changes settle.
/// `report` hears every reload attempt. Returns when `shutdown` triggers.
pub fn watch(
    store: Arc<RuleStore>,
    shutdown: Shutdown,
    report: impl Fn(Result<Arc<Ruleset>, RulesError>) + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let RulesSource::Dir(dir) = store.source().clone() else {
        return std::thread::Builder::new()
            .name("rules-watch".into())
            .spawn(|| {});
    };
    let on_change = move || report(store.reload());
    crate::ops::lifecycle::watch_files("rules-watch", &[&dir], true, |_| true, shutdown, on_change)
}
