//! Serving: a model file readied for the processor's feature set, scored per
//! event from the flat layout (blocks of rows with AVX-512 where the CPU has
//! it) and explained by TreeSHAP on review and block.

#[cfg(target_arch = "x86_64")]
mod avx512;
pub mod flat;
pub mod shap;

use crate::features::FeatureSet;
#[cfg(doc)]
use crate::model::format::trees::Gbt;
use crate::model::format::{Fault, ModelFile, MAX_MODEL_FEATURES};
use crate::model::ModelError;
use flat::FlatGbt;
use shap::{ShapPath, ShapTables};
use std::path::Path;

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
    /// The trees' TreeSHAP tables (`None`: no cover, or too deep or large).
    tables: Option<ShapTables>,
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
            tables: file.gbt.as_ref().and_then(ShapTables::new),
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
    /// `scratch.contrib[..inputs]`: TreeSHAP for trees with cover (from the
    /// tables built at load where the trees allow, else by recursion; Saabas
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
            match (g.has_cover(), &self.tables, &self.flat) {
                (true, Some(tables), _) => tables.add(x, contrib),
                (true, None, _) => g.shap(x, contrib, &mut scratch.path),
                (false, _, Some(flat)) => flat.contributions(x, contrib),
                (false, _, None) => g.contributions(x, contrib),
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
    /// [`Gbt::expected_margin`] (their roots' values without cover) and the
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
