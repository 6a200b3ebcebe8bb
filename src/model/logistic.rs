//! Logistic regression: standardised inputs, L2, full-batch Adam.

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

    /// Trains on rows `x` (row-major, `d` features) with labels `y`.
    pub fn train(
        x: &[f64],
        d: usize,
        y: &[bool],
        epochs: usize,
        mut progress: impl FnMut(usize),
    ) -> Logistic {
        let n = y.len().max(1);
        let mut mean = vec![0.0; d];
        let mut count = vec![0usize; d];
        for i in 0..y.len() {
            for f in 0..d {
                let v = x[i * d + f];
                if !v.is_nan() {
                    mean[f] += v;
                    count[f] += 1;
                }
            }
        }
        for f in 0..d {
            mean[f] /= count[f].max(1) as f64;
        }
        let mut scale = vec![0.0; d];
        for i in 0..y.len() {
            for f in 0..d {
                let v = x[i * d + f];
                if !v.is_nan() {
                    scale[f] += (v - mean[f]).powi(2);
                }
            }
        }
        for f in 0..d {
            scale[f] = (scale[f] / count[f].max(1) as f64).sqrt();
            if scale[f] < 1e-12 {
                scale[f] = 1.0;
            }
        }
        let z: Vec<f64> = (0..y.len() * d)
            .map(|k| {
                let (i, f) = (k / d, k % d);
                let v = x[i * d + f];
                if v.is_nan() {
                    0.0
                } else {
                    (v - mean[f]) / scale[f]
                }
            })
            .collect();
        let mut w = vec![0.0; d + 1];
        let (mut m1, mut m2) = (vec![0.0; d + 1], vec![0.0; d + 1]);
        let (lr, b1, b2, l2) = (0.05, 0.9, 0.999, 1e-4);
        let mut grad = vec![0.0; d + 1];
        for epoch in 1..=epochs {
            grad.fill(0.0);
            for i in 0..y.len() {
                let row = &z[i * d..(i + 1) * d];
                let m: f64 = w[d] + row.iter().zip(&w[..d]).map(|(a, b)| a * b).sum::<f64>();
                let err = 1.0 / (1.0 + (-m).exp()) - f64::from(u8::from(y[i]));
                for f in 0..d {
                    grad[f] += err * row[f];
                }
                grad[d] += err;
            }
            for k in 0..=d {
                let g = grad[k] / n as f64 + if k < d { l2 * w[k] } else { 0.0 };
                m1[k] = b1 * m1[k] + (1.0 - b1) * g;
                m2[k] = b2 * m2[k] + (1.0 - b2) * g * g;
                let mh = m1[k] / (1.0 - b1.powi(epoch as i32));
                let vh = m2[k] / (1.0 - b2.powi(epoch as i32));
                w[k] -= lr * mh / (vh.sqrt() + 1e-8);
            }
            progress(epoch);
        }
        Logistic {
            mean,
            scale,
            bias: w[d],
            weights: w[..d].to_vec(),
        }
    }
}
