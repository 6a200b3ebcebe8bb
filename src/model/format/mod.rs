//! The model file and its validation: the versioned file (`models/FORMAT.md`),
//! its canonical content hash, the tree ensemble and the logistic regression it
//! holds with the checks every file passes before it may serve, and imports of
//! LightGBM and XGBoost models into it.

mod canonical;
mod file;
pub mod import;
pub mod logistic;
pub mod trees;

pub use file::{
    Algorithm, Fault, Imported, ModelFile, TrainingInfo, ValidationInfo, MAX_MODEL_BYTES,
    MAX_MODEL_FEATURES, MODEL_FORMAT_VERSION,
};
