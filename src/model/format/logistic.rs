//! The logistic regression of a model file: standardised inputs (missing =
//! the mean), one weight per feature and a bias; fitted in
//! [`crate::model::train::logistic`].

use serde::{Deserialize, Serialize};

/// A trained logistic regression (on standardised inputs; missing = mean).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Logistic {
    /// Mean of each feature in training.
    pub mean: Vec<f64>,
    /// Standard deviation of each feature in training (1 when constant).
    pub scale: Vec<f64>,
    /// Coefficient of each standardised feature.
    pub weights: Vec<f64>,
    /// Intercept.
    pub bias: f64,
}

impl Logistic {
    /// Margin (log-odds) of one feature vector.
    #[inline]
    pub fn margin(&self, x: &[f64]) -> f64 {
        let mut m = self.bias;
        for i in 0..self.weights.len() {
            let v = x[i];
            if !v.is_nan() {
                m += self.weights[i] * (v - self.mean[i]) / self.scale[i];
            }
        }
        m
    }

    /// Adds coefficient x standardised value of each feature into `contrib`.
    pub fn contributions(&self, x: &[f64], contrib: &mut [f64]) {
        for i in 0..self.weights.len() {
            if !x[i].is_nan() {
                contrib[i] += self.weights[i] * (x[i] - self.mean[i]) / self.scale[i];
            }
        }
    }
}
