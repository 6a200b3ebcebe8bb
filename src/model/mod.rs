//! Model: training algorithms, the versioned model file, imports from other
//! libraries, and the serving form (flat arrays, no allocation) with
//! per-event explanations.

#[cfg(target_arch = "x86_64")]
mod avx512;
mod canonical;
pub mod evaluate;
mod file;
pub mod flat;
pub mod gbt;
pub mod import;
pub mod logistic;
pub mod shap;
pub mod trees;

pub use file::{
    Algorithm, Fault, Imported, ModelFile, TrainingInfo, ValidationInfo, MAX_MODEL_BYTES,
    MAX_MODEL_FEATURES, MODEL_FORMAT_VERSION,
};

use crate::features::FeatureSet;
use arc_swap::ArcSwapOption;
use flat::FlatGbt;
use shap::ShapPath;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

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
    #[error("{path}: {place}: {message}")]
    Invalid {
        /// File.
        path: String,
        /// Where in the file (`features[3]`, `gbt: tree 2, node 17`, ...).
        place: String,
        /// What is wrong and what was expected.
        message: String,
    },
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

/// Scratch space for scoring and explaining, reused across events.
pub struct Scratch {
    x: [f64; MAX_MODEL_FEATURES],
    contrib: [f64; MAX_MODEL_FEATURES],
    path: ShapPath,
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
            path: ShapPath::default(),
        }
    }
}

impl Model {
    /// Loads a model file and readies it for the processor's feature set: the
    /// checks of [`ModelFile::read`], then those of [`Model::new`].
    pub fn load(path: &Path, set: &FeatureSet) -> Result<Model, ModelError> {
        Model::new(&path.display().to_string(), ModelFile::read(path)?, set)
    }

    /// [`Model::load`] of a model file's bytes; `origin` names it in errors.
    /// Whatever the bytes, this returns an error or a model, never panics.
    pub fn from_bytes(origin: &str, bytes: &[u8], set: &FeatureSet) -> Result<Model, ModelError> {
        Model::new(origin, ModelFile::from_bytes(origin, bytes)?, set)
    }

    /// Readies `file` (checked again with [`ModelFile::check`]; its content hash
    /// is not) for the processor's feature set, which must compute every feature
    /// it reads. `origin` names the file in errors.
    pub fn new(origin: &str, file: ModelFile, set: &FeatureSet) -> Result<Model, ModelError> {
        let invalid = |(place, message): Fault| ModelError::Invalid {
            path: origin.to_string(),
            place,
            message,
        };
        file.check().map_err(invalid)?;
        let mut slots = Vec::new();
        for (i, name) in file.features.iter().enumerate() {
            let slot = set.index_of(name).ok_or_else(|| {
                invalid((
                    format!("features[{i}]"),
                    format!(
                        "'{name}' is not in the feature set '{}' of this processor",
                        set.name
                    ),
                ))
            })?;
            slots.push(slot as u16);
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
                file.content_hash.get(..8).unwrap_or(&file.content_hash)
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
        1.0 / (1.0 + (-self.blend(x, trees)).exp())
    }

    /// The model's margin for inputs `x`, given the trees' margin `trees`.
    #[inline]
    fn blend(&self, x: &[f64], trees: f64) -> f64 {
        match (&self.file.gbt, &self.file.logistic) {
            (Some(_), Some(l)) => 0.5 * (trees + l.margin(x)),
            (Some(_), None) => trees,
            (None, Some(l)) => l.margin(x),
            (None, None) => f64::NAN,
        }
    }

    /// The model inputs of the processor's feature vector `features`, and the
    /// trees' margin of them.
    #[inline]
    fn inputs<'s>(&self, features: &[f64], scratch: &'s mut Scratch) -> (&'s [f64], f64) {
        for (i, &s) in self.slots.iter().enumerate() {
            scratch.x[i] = features[s as usize];
        }
        let x = &scratch.x[..self.slots.len()];
        let trees = match (&self.file.gbt, &self.flat) {
            (Some(_), Some(flat)) => flat.margin(x),
            (Some(g), None) => g.margin(x),
            (None, _) => f64::NAN,
        };
        (x, trees)
    }

    /// Probability of fraud for the processor's feature vector `features`.
    #[inline]
    pub fn score(&self, features: &[f64], scratch: &mut Scratch) -> f64 {
        let (x, trees) = self.inputs(features, scratch);
        self.probability(x, trees)
    }

    /// The margin (log-odds) behind [`Model::score`].
    pub fn margin(&self, features: &[f64], scratch: &mut Scratch) -> f64 {
        let (x, trees) = self.inputs(features, scratch);
        self.blend(x, trees)
    }

    /// Each model input's contribution to the margin of `features`, into
    /// `scratch.contrib[..inputs]`: TreeSHAP for trees with cover (Saabas
    /// path differences, which need not be consistent, for trees without),
    /// coefficient x standardised value for the regression, halved for the
    /// ensemble. They add up to the margin minus [`Model::expected_margin`].
    pub fn contributions<'s>(&self, features: &[f64], scratch: &'s mut Scratch) -> &'s [f64] {
        let d = self.slots.len();
        for (i, &s) in self.slots.iter().enumerate() {
            scratch.x[i] = features[s as usize];
        }
        scratch.contrib[..d].fill(0.0);
        let (x, contrib) = (&scratch.x[..d], &mut scratch.contrib[..d]);
        if let Some(g) = &self.file.gbt {
            match (g.has_cover(), &self.flat) {
                (true, _) => g.shap(x, contrib, &mut scratch.path),
                (false, Some(flat)) => flat.contributions(x, contrib),
                (false, None) => g.contributions(x, contrib),
            }
        }
        if let Some(l) = &self.file.logistic {
            l.contributions(x, contrib);
        }
        if self.file.gbt.is_some() && self.file.logistic.is_some() {
            contrib.iter_mut().for_each(|c| *c *= 0.5);
        }
        contrib
    }

    /// The margin that [`Model::contributions`] start from: the trees'
    /// [`trees::Gbt::expected_margin`] (their roots' values without cover) and the
    /// regression's bias, averaged for the ensemble.
    pub fn expected_margin(&self) -> f64 {
        let trees = self.file.gbt.as_ref().map(|g| match g.has_cover() {
            true => g.expected_margin(),
            false => {
                g.base
                    + g.roots
                        .iter()
                        .map(|&r| g.nodes[r as usize].value)
                        .sum::<f64>()
            }
        });
        match (trees, &self.file.logistic) {
            (Some(t), Some(l)) => 0.5 * (t + l.bias),
            (Some(t), None) => t,
            (None, Some(l)) => l.bias,
            (None, None) => f64::NAN,
        }
    }

    /// The features that pushed the score of `features` up most (at most
    /// [`EXPLAIN_TOP`], largest first), by [`Model::contributions`].
    pub fn explain(
        &self,
        features: &[f64],
        scratch: &mut Scratch,
        out: &mut [u16; EXPLAIN_TOP],
    ) -> usize {
        let d = self.slots.len();
        let contrib = self.contributions(features, scratch);
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
mod tests;
