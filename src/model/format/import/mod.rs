//! `fraudstream model import`: a LightGBM or XGBoost binary-logistic model
//! turned into a model file whose trees are the library's, node for node, and
//! score what the library predicts (`models/FORMAT.md`, "Imported models").
//!
//! Each library's split is rewritten as the format's one rule (a present value
//! goes right when `x > threshold`; a missing one where the node says), so an
//! imported tree and a trained one are the same thing and every serving walk
//! serves both.

mod lightgbm;
mod xgboost;

use super::file::{Algorithm, Fault, Imported, ModelFile, MODEL_FORMAT_VERSION};
use super::trees::Gbt;
use crate::features::FeatureSet;
use crate::model::ModelError;
use std::path::Path;

/// The library a model comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Library {
    /// LightGBM: the text model (`save_model`) or its JSON dump (`dump_model`).
    Lightgbm,
    /// XGBoost: the JSON model (`save_model("model.json")`).
    Xgboost,
}

/// What a library's file says, in the format's terms: the trees (feature
/// indices into `features`), the library's feature names, and its origin.
struct Parsed {
    gbt: Gbt,
    features: Vec<String>,
    version: String,
    objective: String,
    /// Whether splits need the cover-weighted mean of their leaves as their
    /// value (XGBoost stores no split values).
    fill_split_values: bool,
}

/// Why a parser gave up: the JSON did not parse (with its position), or it
/// says something that cannot be imported.
enum Failure {
    Json(serde_json::Error),
    At(Fault),
}

impl From<serde_json::Error> for Failure {
    fn from(e: serde_json::Error) -> Self {
        Failure::Json(e)
    }
}

/// A [`Failure`] at `place`.
fn at(place: impl Into<String>, message: impl Into<String>) -> Failure {
    Failure::At((place.into(), message.into()))
}

/// Reads `path` (a `library` model of at most [`super::MAX_MODEL_BYTES`]) and
/// returns the model file, named `name`, for the feature set `set`: every
/// feature the model reads must be one of the set's, by name. The result
/// passes [`ModelFile::check`]; its content hash is filled in by
/// [`ModelFile::save`].
pub fn import(
    library: Library,
    path: &Path,
    set: &FeatureSet,
    name: &str,
) -> Result<ModelFile, ModelError> {
    let origin = path.display().to_string();
    let bytes = super::file::read_bounded(path)?;
    let invalid = |(place, message): Fault| ModelError::Invalid {
        path: origin.clone(),
        place,
        message,
    };
    let parsed = match library {
        Library::Lightgbm => lightgbm::parse(&bytes),
        Library::Xgboost => xgboost::parse(&bytes),
    }
    .map_err(|f| match f {
        Failure::Json(e) => ModelError::Format {
            path: origin.clone(),
            line: e.line(),
            col: e.column(),
            message: e.to_string(),
        },
        Failure::At(fault) => invalid(fault),
    })?;
    check_features(&parsed.features, set).map_err(invalid)?;
    let mut gbt = parsed.gbt;
    // Faults named by the library's own tree and node numbers.
    gbt.check(parsed.features.len()).map_err(|f| {
        let place = match (f.tree, f.node) {
            (Some(t), Some(n)) => {
                format!(
                    "tree {t}, node {}",
                    n.checked_sub(gbt.roots[t]).unwrap_or(n)
                )
            }
            (Some(t), None) => format!("tree {t}"),
            _ => "trees".into(),
        };
        invalid((place, f.message))
    })?;
    if parsed.fill_split_values {
        xgboost::fill_split_values(&mut gbt);
    }
    let file = ModelFile {
        format_version: MODEL_FORMAT_VERSION,
        name: name.to_string(),
        algorithm: Algorithm::Gbt,
        feature_set: set.name.clone(),
        features: parsed.features,
        training: None,
        validation: None,
        imported: Some(Imported {
            library: format!("{library:?}").to_lowercase(),
            version: parsed.version,
            file: path
                .file_name()
                .map_or(origin.clone(), |f| f.to_string_lossy().into_owned()),
            objective: parsed.objective,
        }),
        logistic: None,
        gbt: Some(gbt),
        content_hash: String::new(),
    };
    file.check().map_err(invalid)?;
    Ok(file)
}

/// The fault of a model without feature names.
fn unnamed() -> Fault {
    ("feature names".into(), "the model names no features; train on a DataFrame whose columns are the feature set's names (or set the booster's feature_names) before saving".into())
}

/// Checks that the model names its features and that every name is one of
/// `set`'s; the error lists every name that is not.
fn check_features(names: &[String], set: &FeatureSet) -> Result<(), Fault> {
    let place = || "feature names".to_string();
    if names.is_empty() {
        return Err(unnamed());
    }
    let unknown: Vec<&str> = names
        .iter()
        .filter(|n| set.index_of(n).is_none())
        .map(String::as_str)
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    Err((
        place(),
        format!(
            "{} of the model's {} features are not in the feature set '{}': {}; expected names from: {}",
            unknown.len(),
            names.len(),
            set.name,
            unknown.join(", "),
            set.names.join(", ")
        ),
    ))
}

#[cfg(test)]
mod tests;
