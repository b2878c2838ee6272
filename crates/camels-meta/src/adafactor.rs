//! Adafactor (Shazeer & Stern, 2018) as HF transformers' `Adafactor` computes it with an explicit
//! learning rate (`relative_step=False`): factored second moments for tensors of rank ≥ 2 (a row
//! and a column mean of g² instead of a full moment: O(R + C) memory for an R × C matrix), the update
//! clipped to RMS ≤ `clip_threshold`, the step optionally scaled by the parameter's RMS, and an
//! optional first moment. burn 0.21 has no Adafactor.
//!
//! Per parameter tensor p with gradient g, at step t (HF's `Adafactor.step`):
//! ```text
//! β₂ₜ = 1 − t^decay_rate
//! rows ← β₂ₜ rows + (1 − β₂ₜ) mean_cols(g² + ε₁)     cols ← … mean_rows(g² + ε₁)     (rank ≥ 2)
//! u = g / sqrt(rows / mean(rows) ⊗ cols)              (rank 1: g / sqrt(v), v the full moment)
//! u ← u / max(1, rms(u) / clip_threshold)
//! u ← lr · max(ε₂, rms(p)) · u   (scale_parameter; lr · u otherwise)
//! m ← β₁ m + (1 − β₁) u; u = m   (beta1 set)
//! p ← p − u
//! ```

use burn::module::AutodiffModule;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::grad_clipping::GradientClippingConfig;
use burn::optim::{LearningRate, SimpleOptimizer};
use burn::prelude::*;
use burn::record::Record;
use burn::tensor::backend::AutodiffBackend;

/// Adafactor's options; the defaults are HF's (`eps=(1e-30, 1e-3)`, `clip_threshold=1.0`,
/// `decay_rate=-0.8`, `beta1=None`, `scale_parameter=True`, no weight decay).
#[derive(Debug, Clone)]
pub struct AdafactorConfig {
    /// Exponent of the second-moment decay: β₂ₜ = 1 − t^decay_rate.
    pub decay_rate: f64,
    /// ε₁, added to g² (HF's `eps[0]`).
    pub eps_square: f64,
    /// ε₂, the smallest parameter scale (HF's `eps[1]`).
    pub eps_scale: f64,
    /// Largest RMS of an unscaled update.
    pub clip_threshold: f64,
    /// First-moment decay; `None`: no first moment.
    pub beta1: Option<f64>,
    /// Scale each step by max(ε₂, rms(p)).
    pub scale_parameter: bool,
    /// Gradient clipping before the update.
    pub grad_clipping: Option<GradientClippingConfig>,
}

impl Default for AdafactorConfig {
    fn default() -> Self {
        Self {
            decay_rate: -0.8,
            eps_square: 1e-30,
            eps_scale: 1e-3,
            clip_threshold: 1.0,
            beta1: None,
            scale_parameter: true,
            grad_clipping: None,
        }
    }
}

impl AdafactorConfig {
    /// The optimizer for module `M`.
    pub fn init<B: AutodiffBackend, M: AutodiffModule<B>>(&self) -> OptimizerAdaptor<Adafactor, M, B> {
        let optim = OptimizerAdaptor::from(Adafactor { config: self.clone() });
        match &self.grad_clipping {
            Some(clipping) => optim.with_grad_clipping(clipping.init()),
            None => optim,
        }
    }
}

/// The optimizer (see the module docs).
#[derive(Debug, Clone)]
pub struct Adafactor {
    config: AdafactorConfig,
}

/// One parameter tensor's state.
#[derive(Record, Clone)]
pub struct AdafactorState<B: Backend, const D: usize> {
    /// Steps taken.
    pub step: usize,
    /// Rank ≥ 2: the row moment, `[…, R, 1]`; rank 1: the full moment, `[N]` (then `cols` is `None`).
    pub rows: Tensor<B, D>,
    /// Rank ≥ 2: the column moment, `[…, 1, C]`.
    pub cols: Option<Tensor<B, D>>,
    /// The first moment, shaped like the parameter (`beta1` set).
    pub first: Option<Tensor<B, D>>,
}

/// sqrt(mean(x²)) as a `[1, …, 1]` tensor that broadcasts against `x`.
fn rms<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    x.square().mean().sqrt().unsqueeze::<D>()
}

impl<B: Backend> SimpleOptimizer<B> for Adafactor {
    type State<const D: usize> = AdafactorState<B, D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<B, D>,
        grad: Tensor<B, D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<B, D>, Option<Self::State<D>>) {
        let c = &self.config;
        let factored = D >= 2;
        let dims = grad.dims();
        let device = grad.device();
        let state = state.unwrap_or_else(|| {
            let (rows, cols) = if factored {
                let (mut r, mut k) = (dims, dims);
                r[D - 1] = 1; // [.., R, 1]
                k[D - 2] = 1; // [.., 1, C]
                (Tensor::zeros(r, &device), Some(Tensor::zeros(k, &device)))
            } else {
                (Tensor::zeros(dims, &device), None)
            };
            AdafactorState { step: 0, rows, cols, first: c.beta1.map(|_| Tensor::zeros(dims, &device)) }
        });
        let step = state.step + 1;
        let beta2 = 1.0 - (step as f64).powf(c.decay_rate);
        let squared = grad.clone().square().add_scalar(c.eps_square); // like g
        let (rows, cols, update) = match state.cols {
            Some(cols) => {
                let rows = state.rows * beta2 + squared.clone().mean_dim(D - 1) * (1.0 - beta2); // [.., R, 1]
                let cols = cols * beta2 + squared.mean_dim(D - 2) * (1.0 - beta2); // [.., 1, C]
                let row_factor = (rows.clone() / rows.clone().mean_dim(D - 2)).sqrt().recip(); // [.., R, 1]
                let update = grad * row_factor * cols.clone().sqrt().recip(); // [.., R, C]
                (rows, Some(cols), update)
            }
            None => {
                let moment = state.rows * beta2 + squared * (1.0 - beta2); // [N]
                let update = grad / moment.clone().sqrt(); // [N]
                (moment, None, update)
            }
        };
        let update = update.clone() / (rms(update) / c.clip_threshold).clamp_min(1.0);
        let update =
            if c.scale_parameter { update * rms(tensor.clone()).clamp_min(c.eps_scale) * lr } else { update * lr };
        let (first, update) = match c.beta1 {
            Some(beta1) => {
                let m = state.first.unwrap_or_else(|| Tensor::zeros(dims, &device)) * beta1 + update * (1.0 - beta1);
                (Some(m.clone()), m)
            }
            None => (None, update),
        };
        (tensor - update, Some(AdafactorState { step, rows, cols, first }))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &B::Device) -> Self::State<D> {
        AdafactorState {
            step: state.step,
            rows: state.rows.to_device(device),
            cols: state.cols.map(|t| t.to_device(device)),
            first: state.first.map(|t| t.to_device(device)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Autodiff;
    use camels_model::device::Cpu as B;

    #[test]
    fn a_matrix_step_matches_the_formula_by_hand() {
        let device = Default::default();
        let p = Tensor::<B, 2>::from_floats([[1.0, -2.0, 0.5], [0.25, 3.0, -1.0]], &device);
        let g = Tensor::<B, 2>::from_floats([[0.1, -0.4, 0.2], [0.3, 0.05, -0.6]], &device);
        let optim = Adafactor { config: AdafactorConfig::default() };
        let (new, state) = optim.step(0.1, p.clone(), g.clone(), None);
        // Step 1: β₂ = 0, so rows/cols are the plain means of g²; u = g / sqrt(r_i c_j / mean(r)).
        let gv = [[0.1f64, -0.4, 0.2], [0.3, 0.05, -0.6]];
        let r: Vec<f64> = gv.iter().map(|row| row.iter().map(|x| x * x).sum::<f64>() / 3.0).collect();
        let col: Vec<f64> = (0..3).map(|j| (gv[0][j].powi(2) + gv[1][j].powi(2)) / 2.0).collect();
        let r_mean = (r[0] + r[1]) / 2.0;
        let mut u = [[0.0f64; 3]; 2];
        for i in 0..2 {
            for j in 0..3 {
                u[i][j] = gv[i][j] / (r[i] / r_mean * col[j]).sqrt();
            }
        }
        let u_rms = (u.iter().flatten().map(|x| x * x).sum::<f64>() / 6.0).sqrt();
        let pv = [1.0f64, -2.0, 0.5, 0.25, 3.0, -1.0];
        let p_rms = (pv.iter().map(|x| x * x).sum::<f64>() / 6.0).sqrt();
        let scale = 0.1 * p_rms / u_rms.max(1.0);
        let expected: Vec<f64> = pv.iter().zip(u.iter().flatten()).map(|(p, u)| p - scale * u).collect();
        let got = new.into_data().to_vec::<f32>().unwrap();
        for (a, b) in got.iter().zip(&expected) {
            assert!((f64::from(*a) - b).abs() < 1e-5, "{got:?} vs {expected:?}");
        }
        let state = state.unwrap();
        assert_eq!((state.step, state.rows.dims(), state.cols.unwrap().dims()), (1, [2, 1], [1, 3]));
    }

    #[test]
    fn a_vector_keeps_a_full_moment_and_the_first_moment_averages_updates() {
        let device = Default::default();
        let config = AdafactorConfig { beta1: Some(0.9), scale_parameter: false, ..Default::default() };
        let optim = Adafactor { config };
        let p = Tensor::<B, 1>::from_floats([1.0, 2.0], &device);
        let g = Tensor::<B, 1>::from_floats([0.5, -0.5], &device);
        // Step 1: v = g², u = g/|g| = ±1, rms 1 (no clipping), m = 0.1 · lr · u.
        let (p1, state) = optim.step(0.1, p, g, None);
        let state = state.unwrap();
        assert_eq!((state.rows.dims(), state.cols.is_none()), ([2], true));
        let got = p1.into_data().to_vec::<f32>().unwrap();
        assert!((got[0] - (1.0 - 0.01)).abs() < 1e-6 && (got[1] - (2.0 + 0.01)).abs() < 1e-6, "{got:?}");
    }

    #[test]
    fn it_trains_a_module_through_the_optimizer_interface() {
        use burn::optim::{GradientsParams, Optimizer};
        type A = Autodiff<B>;
        let device = Default::default();
        let model = camels_model::base::BaseLm::from(camels_model::gpt2::Gpt2Config::tiny().init::<A>(&device));
        let ids = Tensor::<A, 2, Int>::from_ints([[1, 5, 9, 3, 7, 2]], &device);
        let loss_of = |m: &camels_model::base::BaseLm<A>| {
            camels_model::loss::token_cross_entropy(m.forward(ids.clone()), ids.clone()).mean()
        };
        let mut optim = AdafactorConfig::default().init::<A, camels_model::base::BaseLm<A>>();
        let mut model = model;
        let first = loss_of(&model).into_scalar();
        for _ in 0..5 {
            let loss = loss_of(&model);
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(1e-1, model, grads);
        }
        let last = loss_of(&model).into_scalar();
        assert!(last < first - 0.1, "{first} → {last}");
    }
}
