//! The model store: the champion and challenger behind atomic pointers,
//! swapped only for a file that passed every check, and the watcher that
//! reloads them when their files change (as rules are).

use crate::features::FeatureSet;
use crate::model::serve::Model;
use crate::model::ModelError;
use crate::ops::lifecycle::Shutdown;
use arc_swap::ArcSwapOption;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The champion model (and an optional challenger scored in shadow), swappable
/// while events are being scored.
pub struct ModelStore {
    champion: ArcSwapOption<Model>,
    challenger: ArcSwapOption<Model>,
    generation: AtomicU64,
    paths: (Option<PathBuf>, Option<PathBuf>),
    set: Arc<FeatureSet>,
}

impl ModelStore {
    /// Loads the champion (and challenger); a bad file is an error (for offline jobs).
    pub fn load(
        champion: Option<PathBuf>,
        challenger: Option<PathBuf>,
        set: Arc<FeatureSet>,
    ) -> Result<Self, ModelError> {
        let (store, mut errors) = Self::open(champion, challenger, set);
        match errors.pop() {
            Some(e) => Err(e),
            None => Ok(store),
        }
    }

    /// Loads what loads and reports the rest: a configured model that fails to load
    /// leaves its slot empty (decisions then use the policy's fallback) until a
    /// reload succeeds (for the live processor, which must not stop).
    pub fn open(
        champion: Option<PathBuf>,
        challenger: Option<PathBuf>,
        set: Arc<FeatureSet>,
    ) -> (Self, Vec<ModelError>) {
        let mut errors = Vec::new();
        let mut load = |p: &Option<PathBuf>| match p.as_ref().map(|p| Model::load(p, &set)) {
            Some(Ok(m)) => Some(Arc::new(m)),
            Some(Err(e)) => {
                errors.push(e);
                None
            }
            None => None,
        };
        let (c, ch) = (load(&champion), load(&challenger));
        let store = Self {
            champion: ArcSwapOption::new(c),
            challenger: ArcSwapOption::new(ch),
            generation: AtomicU64::new(0),
            paths: (champion, challenger),
            set: set.clone(),
        };
        (store, errors)
    }

    /// Whether a champion is configured.
    pub fn configured(&self) -> bool {
        self.paths.0.is_some()
    }

    /// The champion, if loaded.
    #[inline]
    pub fn champion(&self) -> Option<Arc<Model>> {
        self.champion.load_full()
    }

    /// Bumped after each swap of either model: a reader that keeps its own `Arc`s
    /// checks they are current with this one load.
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The challenger, if loaded.
    #[inline]
    pub fn challenger(&self) -> Option<Arc<Model>> {
        self.challenger.load_full()
    }

    /// Reloads both files; a file that fails validation leaves its running model in place.
    pub fn reload(&self) -> Vec<Result<String, ModelError>> {
        let mut out = Vec::new();
        for (path, slot) in [
            (&self.paths.0, &self.champion),
            (&self.paths.1, &self.challenger),
        ] {
            if let Some(p) = path {
                out.push(Model::load(p, &self.set).map(|m| {
                    let v = m.version.clone();
                    slot.store(Some(Arc::new(m)));
                    self.generation.fetch_add(1, Ordering::Release);
                    v
                }));
            }
        }
        out
    }

    /// The files to watch.
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.paths
            .0
            .iter()
            .chain(self.paths.1.iter())
            .map(PathBuf::as_path)
    }
}

/// Watches the folders of the store's model files and reloads both models
/// after a change to either file settles (an editor's save is several
/// events; a new file appearing counts). `report` hears every reload's
/// results, as [`ModelStore::reload`] returns them. Returns when `shutdown`
/// triggers; an error when a folder cannot be watched.
pub fn watch(
    store: Arc<ModelStore>,
    shutdown: Shutdown,
    report: impl Fn(Vec<Result<String, ModelError>>) + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let names: Vec<OsString> = store
        .paths()
        .filter_map(|p| p.file_name().map(OsString::from))
        .collect();
    let ours = move |e: &notify::Event| {
        e.paths
            .iter()
            .any(|p| p.file_name().is_some_and(|n| names.iter().any(|m| m == n)))
    };
    // The folders, not the files: a save that replaces a file (write to a
    // temporary, rename) or creates it is seen too.
    let dirs: Vec<&Path> = store
        .paths()
        .map(|p| match p.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        })
        .collect();
    let on_change = {
        let store = store.clone();
        move || report(store.reload())
    };
    crate::ops::lifecycle::watch_files("model-watch", &dirs, false, ours, shutdown, on_change)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::load_feature_set;
    use crate::model::ModelFile;
    use std::sync::mpsc::Receiver;
    use std::time::Duration;

    fn shipped() -> ModelFile {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/handbook.json");
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    type Reports = Receiver<Vec<Result<String, String>>>;

    /// Waits (at most 20 s) for a reload whose results satisfy `done`.
    fn until(rx: &Reports, done: impl Fn(&[Result<String, String>]) -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let got = rx.recv_timeout(left).expect("a reload after the change");
            if done(&got) {
                return;
            }
        }
    }

    /// The watcher reloads on a change without polling: a good file goes
    /// live, a bad one (a tree whose split is its own child) is reported and
    /// the running model stays, a file that appears later is picked up.
    #[test]
    fn the_watcher_reloads_changed_files_and_a_bad_one_never_replaces_the_running_model() {
        let shipped = shipped();
        let set = Arc::new(load_feature_set(&shipped.feature_set).unwrap());
        let dir = tempfile::tempdir().unwrap();
        let (champion, challenger) = (dir.path().join("a.json"), dir.path().join("b.json"));
        shipped.first_trees(20).unwrap().save(&champion).unwrap();
        let (store, errors) =
            ModelStore::open(Some(champion.clone()), Some(challenger.clone()), set);
        assert_eq!(errors.len(), 1, "no challenger file yet");
        let store = Arc::new(store);
        let (tx, rx) = std::sync::mpsc::channel();
        let shutdown = Shutdown::new();
        let handle = watch(store.clone(), shutdown.clone(), move |r| {
            let r = r.into_iter().map(|r| r.map_err(|e| e.to_string()));
            let _ = tx.send(r.collect());
        })
        .unwrap();
        let version = |m: Option<Arc<Model>>| m.map(|m| m.version.clone()).unwrap_or_default();

        shipped.first_trees(10).unwrap().save(&champion).unwrap();
        until(&rx, |got| {
            got[0]
                .as_ref()
                .is_ok_and(|v| v.starts_with("handbook-first10@"))
        });
        let live = version(store.champion());
        assert!(live.starts_with("handbook-first10@"), "{live}");

        let mut cyclic = shipped.first_trees(10).unwrap();
        let g = cyclic.gbt.as_mut().unwrap();
        g.nodes[g.roots[0] as usize].left = g.roots[0];
        cyclic.save(&champion).unwrap();
        until(&rx, |got| {
            got[0].as_ref().is_err_and(|e| e.contains("a.json: gbt"))
        });
        assert_eq!(version(store.champion()), live, "the running model stays");

        shipped.first_trees(5).unwrap().save(&challenger).unwrap();
        until(&rx, |got| got[1].is_ok());
        assert!(version(store.challenger()).starts_with("handbook-first5@"));
        assert_eq!(version(store.champion()), live);
        shutdown.trigger();
        handle.join().unwrap();
    }
}
