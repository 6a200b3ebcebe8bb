//! Model: training algorithms, the versioned model file, and the serving form
//! (flat arrays, no allocation) with per-event explanations.

#[cfg(target_arch = "x86_64")]
mod avx512;
pub mod evaluate;
pub mod flat;
pub mod gbt;
pub mod logistic;

use crate::features::FeatureSet;
use crate::state::key_hash;
use arc_swap::ArcSwapOption;
use flat::FlatGbt;
use gbt::Gbt;
use logistic::Logistic;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Version of the model file format.
pub const MODEL_FORMAT_VERSION: u32 = 1;

/// Most features a served model may read.
pub const MAX_MODEL_FEATURES: usize = 128;

/// Why a model file was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The file could not be read.
    #[error("{path}: cannot read model: {source}")]
    Io {
        /// File.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The file is not a model file.
    #[error("{path}:{line}:{col}: not a valid model file: {message}")]
    Format {
        /// File.
        path: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        col: usize,
        /// What was wrong.
        message: String,
    },
    /// The file is well-formed but cannot serve this processor.
    #[error("{path}: {message}")]
    Invalid {
        /// File.
        path: String,
        /// What is wrong and what was expected.
        message: String,
    },
}

/// The learning algorithm of a model.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// Logistic regression.
    Logistic,
    /// Gradient-boosted trees.
    Gbt,
    /// Both, their log-odds averaged with equal weights.
    Ensemble,
}

/// Where and how a model was trained.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrainingInfo {
    /// Input file.
    pub input: String,
    /// First training day.
    pub from: String,
    /// Last training day.
    pub to: String,
    /// Label delay used in the feature replay, days.
    pub label_delay_days: u32,
    /// Training rows.
    pub rows: usize,
    /// Fraudulent training rows.
    pub frauds: usize,
}

/// Metrics on a held-out split of the training window.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ValidationInfo {
    /// Validation rows (the last days of the window).
    pub rows: usize,
    /// AUC ROC.
    pub auc: f64,
    /// Average precision.
    pub average_precision: f64,
}

/// The model file (`models/NAME.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelFile {
    /// Format version; must be [`MODEL_FORMAT_VERSION`].
    pub format_version: u32,
    /// Name of the model.
    pub name: String,
    /// Algorithm.
    pub algorithm: Algorithm,
    /// Feature set it was trained on.
    pub feature_set: String,
    /// Input feature names, in model order.
    pub features: Vec<String>,
    /// Training data.
    pub training: TrainingInfo,
    /// Validation metrics.
    pub validation: ValidationInfo,
    /// Parameters, for `logistic`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logistic: Option<Logistic>,
    /// Parameters, for `gbt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gbt: Option<Gbt>,
    /// Hash of the file's content with this field empty (16 hex digits).
    pub content_hash: String,
}

impl ModelFile {
    /// The content hash of this file (computed with `content_hash` empty).
    pub fn compute_hash(&self) -> String {
        let mut copy = self.clone();
        copy.content_hash.clear();
        let bytes = serde_json::to_vec(&copy).unwrap_or_default();
        format!("{:016x}", key_hash(0, &bytes))
    }

    /// The model of this file's first `n` trees alone (no logistic part), named
    /// `<name>-first<n>`: the smaller reference model of benchmarks and load tests.
    /// `None` when the file has no trees.
    pub fn first_trees(&self, n: usize) -> Option<ModelFile> {
        let mut small = self.clone();
        let gbt = small.gbt.as_mut()?;
        gbt.roots.truncate(n);
        small.name = format!("{}-first{n}", self.name);
        small.algorithm = Algorithm::Gbt;
        small.logistic = None;
        small.content_hash.clear();
        Some(small)
    }

    /// Writes the file with its content hash filled in.
    pub fn save(mut self, path: &Path) -> std::io::Result<ModelFile> {
        self.content_hash = self.compute_hash();
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir)?;
            }
        }
        std::fs::write(path, serde_json::to_string_pretty(&self)?)?;
        Ok(self)
    }
}

/// A model ready to serve: its parameters, the feature-slot mapping, and the
/// reason texts of its explanations.
#[derive(Debug)]
pub struct Model {
    /// The file it came from.
    pub file: ModelFile,
    /// `name@hash`, shown in decisions.
    pub version: String,
    slots: Vec<u16>,
    /// The trees' serving form (`None`: no trees, or too deep to flatten).
    flat: Option<FlatGbt>,
    codes: Vec<String>,
    texts: Vec<String>,
}

/// How many features an explanation names.
pub const EXPLAIN_TOP: usize = 3;

/// Scratch space for scoring, reused across events.
pub struct Scratch {
    x: [f64; MAX_MODEL_FEATURES],
    contrib: [f64; MAX_MODEL_FEATURES],
}

/// Scratch space for [`Model::score_block`], reused across blocks.
#[derive(Debug, Default)]
pub struct BlockScratch {
    xs: Vec<f64>,
    margins: Vec<f64>,
    ranks: Vec<u8>,
}

impl Default for Scratch {
    fn default() -> Self {
        Self {
            x: [0.0; MAX_MODEL_FEATURES],
            contrib: [0.0; MAX_MODEL_FEATURES],
        }
    }
}

impl Model {
    /// Loads and validates a model file against the processor's feature set:
    /// known format version, matching content hash, every feature present.
    pub fn load(path: &Path, set: &FeatureSet) -> Result<Model, ModelError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io {
            path: p.clone(),
            source,
        })?;
        let file: ModelFile = serde_json::from_str(&text).map_err(|e| ModelError::Format {
            path: p.clone(),
            line: e.line(),
            col: e.column(),
            message: e.to_string(),
        })?;
        let invalid = |message: String| ModelError::Invalid {
            path: p.clone(),
            message,
        };
        if file.format_version != MODEL_FORMAT_VERSION {
            return Err(invalid(format!(
                "format_version {} is not supported; expected {MODEL_FORMAT_VERSION}",
                file.format_version
            )));
        }
        let hash = file.compute_hash();
        if hash != file.content_hash {
            return Err(invalid(format!("content_hash {} does not match the content ({hash}); the file was edited or truncated", file.content_hash)));
        }
        if file.features.len() > MAX_MODEL_FEATURES {
            return Err(invalid(format!(
                "{} features; at most {MAX_MODEL_FEATURES}",
                file.features.len()
            )));
        }
        let mut slots = Vec::new();
        for name in &file.features {
            let slot = set.index_of(name).ok_or_else(|| {
                invalid(format!(
                    "feature '{name}' is not in the feature set '{}' of this processor",
                    set.name
                ))
            })?;
            slots.push(slot as u16);
        }
        let d = file.features.len();
        let logistic_ok = file
            .logistic
            .as_ref()
            .is_some_and(|l| l.weights.len() == d && l.mean.len() == d && l.scale.len() == d);
        let gbt_ok = file.gbt.as_ref().is_some_and(|g| {
            let inside = |i: u32| (i as usize) < g.nodes.len();
            g.nodes.iter().all(|n| {
                n.feature == u16::MAX
                    || ((n.feature as usize) < d && inside(n.left) && inside(n.right))
            }) && g.roots.iter().all(|&r| inside(r))
        });
        let consistent = match file.algorithm {
            Algorithm::Logistic => logistic_ok,
            Algorithm::Gbt => gbt_ok,
            Algorithm::Ensemble => logistic_ok && gbt_ok,
        };
        if !consistent {
            return Err(invalid(format!(
                "parameters of the {:?} model are missing or do not match its {d} features",
                file.algorithm
            )));
        }
        let codes = file.features.iter().map(|f| format!("model:{f}")).collect();
        let texts = file
            .features
            .iter()
            .map(|f| {
                let desc = set
                    .index_of(f)
                    .map(|i| set.descriptions[i].as_str())
                    .filter(|d| !d.is_empty())
                    .unwrap_or(f);
                format!("Model: {desc} raised the risk")
            })
            .collect();
        Ok(Model {
            version: format!(
                "{}@{}",
                file.name,
                &file.content_hash[..8.min(file.content_hash.len())]
            ),
            flat: file.gbt.as_ref().and_then(FlatGbt::new),
            file,
            slots,
            codes,
            texts,
        })
    }

    /// [`Model::score`] of the feature vectors `features[k * width..][..width]`,
    /// one per element of `out`, equal to it to the bit; the trees are walked
    /// for all rows together, which keeps them in cache.
    ///
    /// Panics if `features` holds fewer than `out.len()` rows.
    pub fn score_block(
        &self,
        features: &[f64],
        width: usize,
        scratch: &mut BlockScratch,
        out: &mut [f64],
    ) {
        let n = self.slots.len();
        let BlockScratch { xs, margins, ranks } = scratch;
        xs.clear();
        for row in features.chunks_exact(width).take(out.len()) {
            xs.extend(self.slots.iter().map(|&s| row[s as usize]));
        }
        assert_eq!(xs.len(), out.len() * n, "fewer rows than scores");
        margins.clear();
        margins.resize(out.len(), f64::NAN);
        if let Some(g) = &self.file.gbt {
            match &self.flat {
                Some(flat) => flat.margins(xs, n, ranks, margins),
                None => {
                    for (k, m) in margins.iter_mut().enumerate() {
                        *m = g.margin(&xs[k * n..][..n]);
                    }
                }
            }
        }
        for (k, p) in out.iter_mut().enumerate() {
            *p = self.probability(&xs[k * n..][..n], margins[k]);
        }
    }

    /// The probability for model inputs `x`, given the trees' margin `trees`
    /// (ignored without trees).
    #[inline]
    fn probability(&self, x: &[f64], trees: f64) -> f64 {
        let m = match (&self.file.gbt, &self.file.logistic) {
            (Some(_), Some(l)) => 0.5 * (trees + l.margin(x)),
            (Some(_), None) => trees,
            (None, Some(l)) => l.margin(x),
            (None, None) => f64::NAN,
        };
        1.0 / (1.0 + (-m).exp())
    }

    /// Probability of fraud for the processor's feature vector `features`.
    #[inline]
    pub fn score(&self, features: &[f64], scratch: &mut Scratch) -> f64 {
        for (i, &s) in self.slots.iter().enumerate() {
            scratch.x[i] = features[s as usize];
        }
        let x = &scratch.x[..self.slots.len()];
        let trees = match (&self.file.gbt, &self.flat) {
            (Some(_), Some(flat)) => flat.margin(x),
            (Some(g), None) => g.margin(x),
            (None, _) => f64::NAN,
        };
        self.probability(x, trees)
    }

    fn tree_contributions(&self, g: &Gbt, x: &[f64], contrib: &mut [f64]) {
        match &self.flat {
            Some(flat) => flat.contributions(x, contrib),
            None => g.contributions(x, contrib),
        }
    }

    /// The features that pushed the score of `features` up most (at most
    /// [`EXPLAIN_TOP`], largest first).
    pub fn explain(
        &self,
        features: &[f64],
        scratch: &mut Scratch,
        out: &mut [u16; EXPLAIN_TOP],
    ) -> usize {
        let d = self.slots.len();
        for (i, &s) in self.slots.iter().enumerate() {
            scratch.x[i] = features[s as usize];
        }
        scratch.contrib[..d].fill(0.0);
        let (x, contrib) = (&scratch.x[..d], &mut scratch.contrib[..d]);
        match (&self.file.gbt, &self.file.logistic) {
            (Some(g), Some(l)) => {
                self.tree_contributions(g, x, contrib);
                l.contributions(x, contrib);
                contrib.iter_mut().for_each(|c| *c *= 0.5);
            }
            (Some(g), None) => self.tree_contributions(g, x, contrib),
            (None, Some(l)) => l.contributions(x, contrib),
            (None, None) => return 0,
        }
        let mut n = 0;
        for _ in 0..EXPLAIN_TOP {
            let best = (0..d)
                .filter(|i| !out[..n].contains(&(*i as u16)))
                .max_by(|&a, &b| contrib[a].total_cmp(&contrib[b]));
            match best {
                Some(i) if contrib[i] > 0.05 => {
                    out[n] = i as u16;
                    n += 1;
                }
                _ => break,
            }
        }
        n
    }

    /// Reason code and text of model feature `i`.
    pub fn reason(&self, i: u16) -> (&str, &str) {
        (&self.codes[i as usize], &self.texts[i as usize])
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::load_feature_set;
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    fn tiny_model(set: &FeatureSet) -> ModelFile {
        let features: Vec<String> = ["TX_AMOUNT", "AMOUNT_TO_CUSTOMER_AVG_30D"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let x: Vec<f64> = (0..400)
            .flat_map(|i| [f64::from(i % 300), f64::from(i % 7)])
            .collect();
        let y: Vec<bool> = (0..400).map(|i| i % 300 > 220).collect();
        let gbt = gbt::Gbt::train(
            &x,
            2,
            &y,
            gbt::GbtParams {
                trees: 10,
                max_depth: 2,
                ..Default::default()
            },
            |_| {},
        );
        assert!(set.index_of("TX_AMOUNT").is_some());
        ModelFile {
            format_version: MODEL_FORMAT_VERSION,
            name: "tiny".into(),
            algorithm: Algorithm::Gbt,
            feature_set: "model".into(),
            features,
            training: TrainingInfo {
                input: "x".into(),
                from: "a".into(),
                to: "b".into(),
                label_delay_days: 7,
                rows: 400,
                frauds: 1,
            },
            validation: ValidationInfo {
                rows: 0,
                auc: 0.5,
                average_precision: 0.5,
            },
            logistic: None,
            gbt: Some(gbt),
            content_hash: String::new(),
        }
    }

    #[test]
    fn a_saved_model_loads_scores_and_explains() {
        let set = load_feature_set("model").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        tiny_model(&set).save(&path).unwrap();
        let m = Model::load(&path, &set).unwrap();
        let mut f = vec![f64::NAN; set.len()];
        f[set.index_of("TX_AMOUNT").unwrap()] = 280.0;
        f[set.index_of("AMOUNT_TO_CUSTOMER_AVG_30D").unwrap()] = 1.0;
        let mut scratch = Scratch::default();
        let high = m.score(&f, &mut scratch);
        let mut top = [0; EXPLAIN_TOP];
        let n = m.explain(&f, &mut scratch, &mut top);
        assert!(n >= 1 && top[0] == 0, "TX_AMOUNT explains a high amount");
        assert_eq!(m.reason(0).0, "model:TX_AMOUNT");
        f[set.index_of("TX_AMOUNT").unwrap()] = 20.0;
        assert!(m.score(&f, &mut scratch) < high);
    }

    /// `score_block` gives each row exactly what `score` gives it alone: for the
    /// shipped ensemble, its trees alone, its regression alone and a tiny model.
    #[test]
    fn a_block_scores_each_row_as_scoring_it_alone_does() {
        let set = load_feature_set("model").unwrap();
        let shipped: ModelFile = serde_json::from_str(
            &std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR")).join("models/handbook.json"),
            )
            .unwrap(),
        )
        .unwrap();
        let trees_only = ModelFile {
            algorithm: Algorithm::Gbt,
            logistic: None,
            ..shipped.clone()
        };
        let regression_only = ModelFile {
            algorithm: Algorithm::Logistic,
            gbt: None,
            ..shipped.clone()
        };
        let mut rng = SmallRng::seed_from_u64(7);
        let rows = 700;
        let features: Vec<f64> = (0..rows * set.len())
            .map(|_| match rng.gen_range(0..10) {
                0 => f64::NAN,
                1 => 0.0,
                k => f64::from(rng.gen_range(0..100_000)) / 10f64.powi(k % 4),
            })
            .collect();
        for file in [shipped, trees_only, regression_only, tiny_model(&set)] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("m.json");
            let name = file.save(&path).unwrap().name;
            let m = Model::load(&path, &set).unwrap();
            let mut block = BlockScratch::default();
            // No rows is no scores (and no panic).
            m.score_block(&[], set.len(), &mut block, &mut []);
            let mut got = vec![0.0; rows];
            m.score_block(&features, set.len(), &mut block, &mut got);
            let mut scratch = Scratch::default();
            for (k, row) in features.chunks_exact(set.len()).enumerate() {
                let want = m.score(row, &mut scratch);
                assert_eq!(got[k].to_bits(), want.to_bits(), "{name}: row {k}");
            }
        }
    }

    #[test]
    fn bad_model_files_are_rejected_with_a_clear_error() {
        let set = load_feature_set("model").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        let saved = tiny_model(&set).save(&path).unwrap();
        // Edited after saving: hash mismatch.
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("\"tiny\"", "\"tinY\"");
        std::fs::write(&path, text).unwrap();
        assert!(Model::load(&path, &set)
            .unwrap_err()
            .to_string()
            .contains("content_hash"));
        // A feature this processor does not compute.
        let mut other = saved.clone();
        other.features[1] = "NOT_A_FEATURE".into();
        other.save(&path).unwrap();
        let e = Model::load(&path, &set).unwrap_err().to_string();
        assert!(
            e.contains("NOT_A_FEATURE") && e.contains("not in the feature set"),
            "{e}"
        );
        // A future format.
        let mut future = saved.clone();
        future.format_version = 99;
        future.save(&path).unwrap();
        assert!(Model::load(&path, &set)
            .unwrap_err()
            .to_string()
            .contains("format_version 99"));
        // Not JSON: position given.
        std::fs::write(&path, "{\n  \"format_version\": 1,\n  oops").unwrap();
        let e = Model::load(&path, &set).unwrap_err().to_string();
        assert!(e.contains("m.json:3:"), "{e}");
        // The live store starts without it and reports the error.
        let (store, errors) = ModelStore::open(Some(path.clone()), None, Arc::new(set.clone()));
        assert!(store.configured() && store.champion().is_none() && errors.len() == 1);
        // Once the file is fixed, a reload brings it in.
        saved.save(&path).unwrap();
        assert!(store.reload()[0].is_ok());
        assert!(store.champion().is_some());
    }
}
