//! Model, by life cycle: the versioned model file and its checks, with
//! imports from LightGBM and XGBoost ([`format`]); training ([`train`]); the
//! serving form, scored per event without allocating and explained by
//! TreeSHAP ([`serve`]); and the store that swaps models while events are
//! scored ([`store`]).

pub mod format;
pub mod serve;
pub mod store;
pub mod train;

pub use format::{
    import, logistic, trees, Algorithm, Fault, Imported, ModelFile, TrainingInfo, ValidationInfo,
    MAX_MODEL_BYTES, MAX_MODEL_FEATURES, MODEL_FORMAT_VERSION,
};
pub use serve::{flat, shap, BlockScratch, Model, Scratch, EXPLAIN_TOP};
pub use store::ModelStore;
pub use train::{evaluate, gbt};

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

#[cfg(test)]
mod tests;
