//! The CaMeLS weighting model: a base-model trunk (GPT-2 or Llama) and a small head that give every token's loss a weight.
//!
//! `w = act(out(gelu_tanh(fc(trunk(ids))))) · mask`, with `out` initialised to zero so that at the
//! start every real token gets act(0) (ln 2 / 3 for softplus with β = 3) and padding gets 0.
//! Parameter names: `trunk.*` as in HF `GPT2Model` / `LlamaModel` (no `transformer.`/`model.` prefix), `head.fc.*` and
//! `head.out.*` with PyTorch `nn.Linear` layout (`weight` is `[out, in]`).

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::Distribution;
use burn::tensor::activation::{gelu_approximate, sigmoid};
use serde::{Deserialize, Serialize};

use crate::base::{BaseConfig, BaseTrunk, Positions};
use crate::gpt2::Gpt2Config;

/// The function that turns the head's output into a non-negative weight.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WeightActivation {
    /// softplus with the configured β: (1/β)·ln(1 + e^{βx}) (the paper's choice, β = 3).
    #[default]
    Softplus,
    /// The logistic function, weights in (0, 1).
    Sigmoid,
    /// e^x.
    Exp,
    /// The raw output (may be negative).
    Identity,
}

/// The weighting model's hyper-parameters.
#[derive(Config, Debug)]
pub struct WeightingModelConfig {
    /// The trunk (distilgpt2-sized in the paper; any family).
    #[config(default = "BaseConfig::Gpt2(Gpt2Config::distilgpt2())")]
    pub trunk: BaseConfig,
    /// Hidden size of the head's MLP.
    #[config(default = 128)]
    pub head_hidden: usize,
    /// Output activation.
    #[config(default = "WeightActivation::Softplus")]
    pub activation: WeightActivation,
    /// β of the softplus.
    #[config(default = 3.0)]
    pub softplus_beta: f64,
    /// Rescale the weights of each document to mean 1 over its real tokens.
    #[config(default = false)]
    pub normalize: bool,
    /// Keep the trunk fixed (only the head trains).
    #[config(default = false)]
    pub freeze_trunk: bool,
}

impl WeightingModelConfig {
    /// Builds the model: a random trunk (load a base checkpoint into it with
    /// [`crate::hf::load_trunk`]), a random `fc` and a zero `out` layer.
    pub fn init<B: Backend>(&self, device: &B::Device) -> WeightingModel<B> {
        let c = self.trunk.hidden_size();
        let h = self.head_hidden;
        let bound = 1.0 / (c as f64).sqrt();
        let trunk = self.trunk.init_trunk(device);
        let trunk = if self.freeze_trunk { trunk.no_grad() } else { trunk };
        WeightingModel {
            trunk,
            head: WeightHead {
                fc: Linear {
                    weight: Param::from_tensor(Tensor::random([h, c], Distribution::Uniform(-bound, bound), device)),
                    bias: Param::from_tensor(Tensor::random([h], Distribution::Uniform(-bound, bound), device)),
                },
                out: Linear {
                    weight: Param::from_tensor(Tensor::zeros([1, h], device)),
                    bias: Param::from_tensor(Tensor::zeros([1], device)),
                },
            },
            activation: self.activation,
            softplus_beta: self.softplus_beta,
            normalize: self.normalize,
        }
    }
}

/// `y = x · Wᵀ + b` with PyTorch's `[out, in]` layout, from ops that differentiate twice.
#[derive(Module, Debug)]
pub struct Linear<B: Backend> {
    /// `[out, in]`.
    pub weight: Param<Tensor<B, 2>>,
    /// `[out]`.
    pub bias: Param<Tensor<B, 1>>,
}

impl<B: Backend> Linear<B> {
    /// # Shapes
    /// `x` `[B, T, in]` → `[B, T, out]`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [batch, len, d_in] = x.dims();
        let [d_out, _] = self.weight.dims();
        let y = x.reshape([batch * len, d_in]).matmul(self.weight.val().transpose()) + self.bias.val().unsqueeze_dim(0);
        y.reshape([batch, len, d_out])
    }
}

/// `Linear(C→H) → GELU(tanh) → Linear(H→1)`.
#[derive(Module, Debug)]
pub struct WeightHead<B: Backend> {
    /// `[H, C]`.
    pub fc: Linear<B>,
    /// `[1, H]`, zero at initialisation.
    pub out: Linear<B>,
}

/// The weighting model.
#[derive(Module, Debug)]
pub struct WeightingModel<B: Backend> {
    /// The trunk.
    pub trunk: BaseTrunk<B>,
    /// The head.
    pub head: WeightHead<B>,
    /// Output activation.
    #[module(skip)]
    pub activation: WeightActivation,
    /// β of the softplus.
    pub softplus_beta: f64,
    /// Rescale to mean 1 over real tokens.
    pub normalize: bool,
}

/// A numerically stable softplus: max(x, 0) + ln(1 + e^{−β|x|}) / β.
pub fn softplus<B: Backend, const D: usize>(x: Tensor<B, D>, beta: f64) -> Tensor<B, D> {
    let tail = (x.clone().abs() * (-beta)).exp().log1p() / beta;
    x.clamp_min(0.0) + tail
}

impl<B: Backend> WeightingModel<B> {
    /// Token weights, zero on padding.
    ///
    /// # Shapes
    /// `ids` `[B, T]`, `mask` `[B, T]` (1 = real token, right-padded) → `[B, T]`.
    pub fn forward(&self, ids: Tensor<B, 2, Int>, mask: Tensor<B, 2>) -> Tensor<B, 2> {
        let [batch, len] = ids.dims();
        let hidden = self.trunk.forward(ids, &Positions::causal(batch, len)); // [B, T, C]
        let raw = self.head.out.forward(gelu_approximate(self.head.fc.forward(hidden))); // [B, T, 1]
        let raw = raw.reshape([batch, len]);
        let weights = match self.activation {
            WeightActivation::Softplus => softplus(raw, self.softplus_beta),
            WeightActivation::Sigmoid => sigmoid(raw),
            WeightActivation::Exp => raw.exp(),
            WeightActivation::Identity => raw,
        } * mask.clone();
        if self.normalize {
            let mean = weights.clone().sum_dim(1) / mask.sum_dim(1).clamp_min(1.0); // [B, 1]
            weights / mean.clamp_min(1e-12)
        } else {
            weights
        }
    }
}
