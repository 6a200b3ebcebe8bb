//! Fitting the logistic regression: standardised inputs, L2, full-batch Adam.

use crate::model::format::logistic::Logistic;

impl Logistic {
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
