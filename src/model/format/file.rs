//! The versioned model file (`models/NAME.json`, described in
//! `models/FORMAT.md`): its parts, its content hash, and the checks every file
//! passes before it may serve.

use super::canonical;
use super::logistic::Logistic;
use super::trees::Gbt;
use crate::model::ModelError;
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::path::Path;

/// Version of the model file format (2: per-node missing directions and the
/// canonical content hash).
pub const MODEL_FORMAT_VERSION: u32 = 2;

/// Most features a served model may read.
pub const MAX_MODEL_FEATURES: usize = 128;

/// Largest model file read, in bytes.
pub const MAX_MODEL_BYTES: u64 = 256 << 20;

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
#[serde(deny_unknown_fields)]
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
#[serde(deny_unknown_fields)]
pub struct ValidationInfo {
    /// Validation rows (the last days of the window).
    pub rows: usize,
    /// AUC ROC.
    pub auc: f64,
    /// Average precision.
    pub average_precision: f64,
}

/// Where an imported model came from (`fraudstream model import`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Imported {
    /// `lightgbm` or `xgboost`.
    pub library: String,
    /// The library version or model format version the file states.
    pub version: String,
    /// The file's name.
    pub file: String,
    /// The library's objective (binary logistic).
    pub objective: String,
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
    /// Input feature names, in model order (node `feature` indices point here).
    pub features: Vec<String>,
    /// Training data (fraudstream's trainer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training: Option<TrainingInfo>,
    /// Validation metrics (fraudstream's trainer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<ValidationInfo>,
    /// Origin, for an imported model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imported: Option<Imported>,
    /// Parameters, for `logistic`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logistic: Option<Logistic>,
    /// Parameters, for `gbt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gbt: Option<Gbt>,
    /// Content hash of the file's canonical form (16 hex digits; `models/FORMAT.md`).
    pub content_hash: String,
}

/// A fault of a model file: where (`features[3]`, `gbt: tree 2, node 17`, ...)
/// and what was expected.
pub type Fault = (String, String);

impl ModelFile {
    /// The content hash of this file, as [`ModelFile::save`] writes it.
    pub fn compute_hash(&self) -> String {
        // Serialising plain data to a value cannot fail.
        canonical::content_hash(&serde_json::to_value(self).unwrap_or_default())
    }

    /// Reads a model file of at most [`MAX_MODEL_BYTES`] and checks it (see
    /// [`ModelFile::from_bytes`]); errors name `path`.
    pub fn read(path: &Path) -> Result<ModelFile, ModelError> {
        Self::from_bytes(&path.display().to_string(), &read_bounded(path)?)
    }

    /// Parses and checks the bytes of a model file: JSON of this format (errors
    /// at `line:col`), a supported version, a content hash that matches, and the
    /// structure [`ModelFile::check`] asks for. `origin` names the file in errors.
    pub fn from_bytes(origin: &str, bytes: &[u8]) -> Result<ModelFile, ModelError> {
        let invalid = |(place, message): Fault| ModelError::Invalid {
            path: origin.to_string(),
            place,
            message,
        };
        check_size(origin, bytes)?;
        let format = |e: serde_json::Error| ModelError::Format {
            path: origin.to_string(),
            line: e.line(),
            col: e.column(),
            message: e.to_string(),
        };
        let value: serde_json::Value = serde_json::from_slice(bytes).map_err(format)?;
        // The version first, so that a file of another format says so (without
        // one, the typed parse below says what is missing).
        match value.get("format_version").and_then(serde_json::Value::as_u64) {
            Some(v) if v != u64::from(MODEL_FORMAT_VERSION) => {
                return Err(invalid((
                    "format_version".into(),
                    format!("{v} is not supported; expected {MODEL_FORMAT_VERSION} (retrain or re-import the model)"),
                )))
            }
            _ => {}
        }
        let file: ModelFile = serde_json::from_slice(bytes).map_err(format)?;
        let hash = canonical::content_hash(&value);
        if hash != file.content_hash {
            return Err(invalid((
                "content_hash".into(),
                format!(
                    "{} does not match the content ({hash}); the file was edited or truncated",
                    file.content_hash
                ),
            )));
        }
        file.check().map_err(invalid)?;
        Ok(file)
    }

    /// Checks what serving relies on: at most [`MAX_MODEL_FEATURES`] distinct
    /// feature names, the parts its algorithm needs and only those, a logistic
    /// part of one finite weight, mean and positive scale per feature, and trees
    /// that pass [`Gbt::check`].
    pub fn check(&self) -> Result<(), Fault> {
        let d = self.features.len();
        let fault = |place: &str, message: String| Err((place.to_string(), message));
        if d > MAX_MODEL_FEATURES {
            return fault(
                "features",
                format!("{d} features; at most {MAX_MODEL_FEATURES}"),
            );
        }
        for (i, name) in self.features.iter().enumerate() {
            if self.features[..i].contains(name) {
                return fault(
                    &format!("features[{i}]"),
                    format!("'{name}' is listed twice"),
                );
            }
        }
        let (wants_logistic, wants_trees) = match self.algorithm {
            Algorithm::Logistic => (true, false),
            Algorithm::Gbt => (false, true),
            Algorithm::Ensemble => (true, true),
        };
        if wants_logistic != self.logistic.is_some() || wants_trees != self.gbt.is_some() {
            return fault(
                "algorithm",
                format!(
                    "{:?} needs {}; the file has {}",
                    self.algorithm,
                    match self.algorithm {
                        Algorithm::Logistic => "a logistic part and no trees",
                        Algorithm::Gbt => "trees (gbt) and no logistic part",
                        Algorithm::Ensemble => "both a logistic part and trees (gbt)",
                    },
                    match (&self.logistic, &self.gbt) {
                        (Some(_), Some(_)) => "both",
                        (Some(_), None) => "a logistic part only",
                        (None, Some(_)) => "trees only",
                        (None, None) => "neither",
                    }
                ),
            );
        }
        if let Some(l) = &self.logistic {
            check_logistic(l, d)?;
        }
        if let Some(g) = &self.gbt {
            g.check(d).map_err(|f| ("gbt".to_string(), f.to_string()))?;
        }
        Ok(())
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

/// The bytes of `path`, read no further than [`MAX_MODEL_BYTES`] and one.
pub(crate) fn read_bounded(path: &Path) -> Result<Vec<u8>, ModelError> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_MODEL_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|source| ModelError::Io {
            path: path.display().to_string(),
            source,
        })?;
    check_size(&path.display().to_string(), &bytes)?;
    Ok(bytes)
}

/// Refuses more than [`MAX_MODEL_BYTES`].
fn check_size(origin: &str, bytes: &[u8]) -> Result<(), ModelError> {
    match bytes.len() as u64 > MAX_MODEL_BYTES {
        true => Err(ModelError::Invalid {
            path: origin.to_string(),
            place: "file".into(),
            message: format!("larger than {MAX_MODEL_BYTES} bytes"),
        }),
        false => Ok(()),
    }
}

fn check_logistic(l: &Logistic, d: usize) -> Result<(), Fault> {
    for (part, values) in [
        ("weights", &l.weights),
        ("mean", &l.mean),
        ("scale", &l.scale),
    ] {
        if values.len() != d {
            return Err((
                format!("logistic.{part}"),
                format!("{} values; expected one per feature ({d})", values.len()),
            ));
        }
        let positive = part == "scale";
        if let Some(i) = values
            .iter()
            .position(|v| !v.is_finite() || (positive && *v <= 0.0))
        {
            return Err((
                format!("logistic.{part}[{i}]"),
                format!(
                    "{:?} is not a finite{} number",
                    values[i],
                    if positive { " positive" } else { "" }
                ),
            ));
        }
    }
    if !l.bias.is_finite() {
        return Err((
            "logistic.bias".into(),
            format!("{:?} is not a finite number", l.bias),
        ));
    }
    Ok(())
}
