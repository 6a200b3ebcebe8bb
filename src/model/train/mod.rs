//! Training: gradient-boosted trees fitted by `forust-ml` and converted
//! exactly into the file's trees, the logistic regression, and the detection
//! metrics models are compared by. (The `train` command's window split and
//! grid live in `crate::offline::train`.)

pub mod evaluate;
pub mod gbt;
mod logistic;
