//! GPT-2 (the architecture of HF `GPT2LMHeadModel`) written from ops that burn 0.21 differentiates twice.
//!
//! Learned positions, pre-LayerNorm blocks, GELU-tanh MLP, an LM head tied to `wte`. Parameter
//! names mirror the HF checkpoint (`transformer.h.0.attn.c_attn.weight`, …) so that loading and
//! saving are an identity map. Conv1D is `x.matmul(w) + b` with `w` stored `[in, out]` as in HF, and
//! embeddings are `select`: burn 0.21's fused `linear`/`embedding` ops panic in a second backward.
//! Every matrix product goes through [`MatmulPrecision`] (f32, or bf16/f16 inputs for mixed precision).
//!
//! Dimension letters: B batch, T query length, TK key length (past + T), C `n_embd`, NH heads,
//! HD head size (C / NH), V vocabulary, P positions.

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::Distribution;
use burn::tensor::activation::{gelu_approximate, softmax};

use crate::base::{BLOCKED_SCORE, Embedding, KvCache, LayerCache, MatmulPrecision, Positions};
use crate::error::ModelError;

/// The hyper-parameters of a GPT-2 model.
#[derive(Config, Debug, PartialEq)]
pub struct Gpt2Config {
    /// Vocabulary size V.
    pub vocab_size: usize,
    /// Number of learned positions P (the context length).
    pub n_positions: usize,
    /// Hidden size C.
    pub n_embd: usize,
    /// Number of transformer blocks.
    pub n_layer: usize,
    /// Number of attention heads NH.
    pub n_head: usize,
    /// Inner size of the MLP (HF `n_inner`; 4 C when `None`).
    #[config(default = "None")]
    pub n_inner: Option<usize>,
    /// LayerNorm epsilon.
    #[config(default = 1e-5)]
    pub layer_norm_epsilon: f64,
    /// Dropout on embeddings, attention probabilities and residual branches; only applied on an
    /// autodiff backend. Off by default: the meta-gradient recomputes forwards, which needs
    /// deterministic updates.
    #[config(default = 0.0)]
    pub dropout: f64,
    /// Standard deviation of the random initialisation.
    #[config(default = 0.02)]
    pub initializer_range: f64,
    /// Id of `<|endoftext|>`, used as EOS and padding.
    #[config(default = 50256)]
    pub eos_token_id: u32,
}

impl Gpt2Config {
    /// distilgpt2: 6 layers, 768 hidden, 12 heads (82M parameters).
    pub fn distilgpt2() -> Self {
        Self::new(50257, 1024, 768, 6, 12)
    }
    /// gpt2: 12 layers, 768 hidden, 12 heads (124M parameters).
    pub fn gpt2() -> Self {
        Self::new(50257, 1024, 768, 12, 12)
    }
    /// gpt2-medium: 24 layers, 1024 hidden, 16 heads (355M parameters).
    pub fn gpt2_medium() -> Self {
        Self::new(50257, 1024, 1024, 24, 16)
    }
    /// gpt2-large: 36 layers, 1280 hidden, 20 heads (774M parameters).
    pub fn gpt2_large() -> Self {
        Self::new(50257, 1024, 1280, 36, 20)
    }
    /// gpt2-xl: 48 layers, 1600 hidden, 25 heads (1.56B parameters).
    pub fn gpt2_xl() -> Self {
        Self::new(50257, 1024, 1600, 48, 25)
    }
    /// A tiny model for tests: 2 layers, 32 hidden, 4 heads, 512 tokens, 64 positions.
    pub fn tiny() -> Self {
        Self::new(512, 64, 32, 2, 4).with_eos_token_id(0)
    }

    /// A preset by its HF name (`distilgpt2`, `gpt2`, `gpt2-medium`, `gpt2-large`, `gpt2-xl`, `tiny`).
    pub fn preset(name: &str) -> Option<Self> {
        Some(match name {
            "distilgpt2" => Self::distilgpt2(),
            "gpt2" => Self::gpt2(),
            "gpt2-medium" | "gpt2_medium" => Self::gpt2_medium(),
            "gpt2-large" | "gpt2_large" => Self::gpt2_large(),
            "gpt2-xl" | "gpt2_xl" => Self::gpt2_xl(),
            "tiny" => Self::tiny(),
            _ => return None,
        })
    }

    /// Size of the MLP's hidden layer.
    pub fn inner_size(&self) -> usize {
        self.n_inner.unwrap_or(4 * self.n_embd)
    }

    /// Number of parameters (the tied head counted once).
    pub fn num_params(&self) -> usize {
        let c = self.n_embd;
        let block = 2 * 2 * c + (c * 3 * c + 3 * c) + (c * c + c) + 2 * (c * self.inner_size()) + self.inner_size() + c;
        self.vocab_size * c + self.n_positions * c + self.n_layer * block + 2 * c
    }

    /// Checks that the sizes are consistent.
    pub fn validate(&self) -> crate::Result<()> {
        let bad = |field: &str, reason: String| ModelError::Config {
            path: "<gpt2 config>".into(),
            field: field.into(),
            reason,
        };
        if self.n_head == 0 || !self.n_embd.is_multiple_of(self.n_head) {
            return Err(bad("n_head", format!("{} does not divide n_embd {}", self.n_head, self.n_embd)));
        }
        for (field, value) in [
            ("vocab_size", self.vocab_size),
            ("n_positions", self.n_positions),
            ("n_embd", self.n_embd),
            ("n_layer", self.n_layer),
        ] {
            if value == 0 {
                return Err(bad(field, "must be positive".into()));
            }
            if value > crate::base::MAX_DIM {
                return Err(bad(field, format!("{value} is implausibly large (at most {})", crate::base::MAX_DIM)));
            }
        }
        if self.eos_token_id as usize >= self.vocab_size {
            return Err(bad("eos_token_id", format!("{} is outside the vocabulary", self.eos_token_id)));
        }
        Ok(())
    }

    /// Builds a randomly initialised LM (normal(0, `initializer_range`) weights, zero biases, unit
    /// LayerNorms, the residual projections scaled by 1/√(2·n_layer) as in HF).
    pub fn init<B: Backend>(&self, device: &B::Device) -> Gpt2LmHead<B> {
        Gpt2LmHead { transformer: self.init_trunk(device) }
    }

    /// Builds a randomly initialised trunk (no LM head), as used by the weighting model.
    pub fn init_trunk<B: Backend>(&self, device: &B::Device) -> Gpt2Model<B> {
        let c = self.n_embd;
        let std = self.initializer_range;
        let proj_std = std / (2.0 * self.n_layer as f64).sqrt();
        let normal = |shape: [usize; 2], std: f64| {
            Param::from_tensor(Tensor::random(shape, Distribution::Normal(0.0, std), device))
        };
        let zeros = |n: usize| Param::from_tensor(Tensor::zeros([n], device));
        let ln = |eps| LayerNorm { weight: Param::from_tensor(Tensor::ones([c], device)), bias: zeros(c), eps };
        let conv = |i, o, std| Conv1d { weight: normal([i, o], std), bias: zeros(o) };
        let h = (0..self.n_layer)
            .map(|_| Block {
                ln_1: ln(self.layer_norm_epsilon),
                attn: Attention {
                    c_attn: conv(c, 3 * c, std),
                    c_proj: conv(c, c, proj_std),
                    n_head: self.n_head,
                    dropout: self.dropout,
                },
                ln_2: ln(self.layer_norm_epsilon),
                mlp: Mlp {
                    c_fc: conv(c, self.inner_size(), std),
                    c_proj: conv(self.inner_size(), c, proj_std),
                    dropout: self.dropout,
                },
            })
            .collect();
        Gpt2Model {
            wte: Embedding { weight: normal([self.vocab_size, c], std) },
            wpe: Embedding { weight: normal([self.n_positions, c], std) },
            h,
            ln_f: ln(self.layer_norm_epsilon),
            dropout: self.dropout,
            precision: MatmulPrecision::F32,
        }
    }
}

/// HF's `Conv1D`: `y = x · W + b` with `W` stored `[in, out]`.
#[derive(Module, Debug)]
pub struct Conv1d<B: Backend> {
    /// `[in, out]`.
    pub weight: Param<Tensor<B, 2>>,
    /// `[out]`.
    pub bias: Param<Tensor<B, 1>>,
}

impl<B: Backend> Conv1d<B> {
    /// # Shapes
    /// `x` `[B, T, in]` → `[B, T, out]`.
    pub fn forward(&self, x: Tensor<B, 3>, precision: MatmulPrecision) -> Tensor<B, 3> {
        let [batch, len, d_in] = x.dims();
        let [_, d_out] = self.weight.dims();
        let y = precision.matmul(x.reshape([batch * len, d_in]), self.weight.val()) // [B·T, out]
            + self.bias.val().unsqueeze_dim(0);
        y.reshape([batch, len, d_out])
    }
}

/// LayerNorm over the last dimension, with HF's parameter names.
#[derive(Module, Debug)]
pub struct LayerNorm<B: Backend> {
    /// Scale, `[C]`.
    pub weight: Param<Tensor<B, 1>>,
    /// Shift, `[C]`.
    pub bias: Param<Tensor<B, 1>>,
    /// Added to the variance.
    pub eps: f64,
}

impl<B: Backend> LayerNorm<B> {
    /// # Shapes
    /// `x` `[B, T, C]` → `[B, T, C]`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let centred = x.clone() - x.mean_dim(2); // [B, T, C]
        let var = centred.clone().powi_scalar(2).mean_dim(2); // [B, T, 1]
        let normed = centred / (var + self.eps).sqrt();
        normed * self.weight.val().unsqueeze::<3>() + self.bias.val().unsqueeze::<3>()
    }
}

/// Causal self-attention with an optional key/value cache.
#[derive(Module, Debug)]
pub struct Attention<B: Backend> {
    /// Projection to queries, keys and values, `[C, 3C]`.
    pub c_attn: Conv1d<B>,
    /// Output projection, `[C, C]`.
    pub c_proj: Conv1d<B>,
    /// Number of heads NH.
    pub n_head: usize,
    /// Dropout probability (autodiff backends only).
    pub dropout: f64,
}

fn dropout<B: Backend, const D: usize>(x: Tensor<B, D>, p: f64) -> Tensor<B, D> {
    if p <= 0.0 || !B::ad_enabled(&x.device()) {
        return x;
    }
    let keep = x.random_like(Distribution::Bernoulli(1.0 - p));
    x * keep / (1.0 - p)
}

impl<B: Backend> Attention<B> {
    /// # Shapes
    /// `x` `[B, T, C]`, `blocked` `[B, 1, T, TK]` (true where a query may not see a key) → `[B, T, C]`.
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        blocked: Tensor<B, 4, Bool>,
        cache: Option<&mut LayerCache<B>>,
        precision: MatmulPrecision,
    ) -> Tensor<B, 3> {
        let [batch, len, c] = x.dims();
        let (nh, hd) = (self.n_head, c / self.n_head);
        let qkv = self.c_attn.forward(x, precision); // [B, T, 3C]
        let heads = |t: Tensor<B, 3>| t.reshape([batch, len, nh, hd]).swap_dims(1, 2); // [B, NH, T, HD]
        let q = heads(qkv.clone().narrow(2, 0, c));
        let mut k = heads(qkv.clone().narrow(2, c, c));
        let mut v = heads(qkv.narrow(2, 2 * c, c));
        if let Some(cache) = cache {
            if cache.key.dims()[2] > 0 {
                k = Tensor::cat(vec![cache.key.clone(), k], 2); // [B, NH, TK, HD]
                v = Tensor::cat(vec![cache.value.clone(), v], 2);
            }
            cache.key = k.clone();
            cache.value = v.clone();
        }
        let tk = k.dims()[2];
        let scores = precision.matmul(q, k.swap_dims(2, 3)) / (hd as f64).sqrt(); // [B, NH, T, TK]
        let scores = scores.mask_fill(blocked.expand([batch, nh, len, tk]), BLOCKED_SCORE);
        let probs = dropout(softmax(scores, 3), self.dropout);
        let y = precision.matmul(probs, v).swap_dims(1, 2).reshape([batch, len, c]); // [B, T, C]
        dropout(self.c_proj.forward(y, precision), self.dropout)
    }
}

/// The feed-forward block: `c_proj(gelu_tanh(c_fc(x)))`.
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    /// `[C, 4C]`.
    pub c_fc: Conv1d<B>,
    /// `[4C, C]`.
    pub c_proj: Conv1d<B>,
    /// Dropout probability (autodiff backends only).
    pub dropout: f64,
}

impl<B: Backend> Mlp<B> {
    /// # Shapes
    /// `x` `[B, T, C]` → `[B, T, C]`.
    pub fn forward(&self, x: Tensor<B, 3>, precision: MatmulPrecision) -> Tensor<B, 3> {
        let hidden = gelu_approximate(self.c_fc.forward(x, precision)); // [B, T, 4C]
        dropout(self.c_proj.forward(hidden, precision), self.dropout)
    }
}

/// A pre-LayerNorm transformer block.
#[derive(Module, Debug)]
pub struct Block<B: Backend> {
    /// LayerNorm before attention.
    pub ln_1: LayerNorm<B>,
    /// Self-attention.
    pub attn: Attention<B>,
    /// LayerNorm before the MLP.
    pub ln_2: LayerNorm<B>,
    /// Feed-forward.
    pub mlp: Mlp<B>,
}

impl<B: Backend> Block<B> {
    /// `x = x + attn(ln_1(x)); x = x + mlp(ln_2(x))`.
    ///
    /// # Shapes
    /// `x` `[B, T, C]`, `blocked` `[B, 1, T, TK]` → `[B, T, C]`.
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        blocked: Tensor<B, 4, Bool>,
        cache: Option<&mut LayerCache<B>>,
        precision: MatmulPrecision,
    ) -> Tensor<B, 3> {
        let x = x.clone() + self.attn.forward(self.ln_1.forward(x), blocked, cache, precision);
        x.clone() + self.mlp.forward(self.ln_2.forward(x), precision)
    }
}

/// The GPT-2 trunk (HF `GPT2Model`): embeddings, blocks and the final LayerNorm.
#[derive(Module, Debug)]
pub struct Gpt2Model<B: Backend> {
    /// Token embeddings, `[V, C]` (also the LM head).
    pub wte: Embedding<B>,
    /// Position embeddings, `[P, C]`.
    pub wpe: Embedding<B>,
    /// The blocks.
    pub h: Vec<Block<B>>,
    /// Final LayerNorm.
    pub ln_f: LayerNorm<B>,
    /// Embedding dropout probability (autodiff backends only).
    pub dropout: f64,
    /// The element type of every matrix product in the trunk and the LM head (not saved with the
    /// weights; f32 unless [`Gpt2Model::with_precision`] says otherwise).
    #[module(skip)]
    pub precision: MatmulPrecision,
}

impl<B: Backend> Gpt2Model<B> {
    /// Hidden states after the final LayerNorm.
    ///
    /// # Shapes
    /// `ids` `[B, T]` → `[B, T, C]`.
    pub fn forward(
        &self,
        ids: Tensor<B, 2, Int>,
        positions: &Positions,
        cache: Option<&mut KvCache<B>>,
    ) -> Tensor<B, 3> {
        let device = ids.device();
        let (pos, blocked) = positions.tensors::<B>(&device);
        let mut x = dropout(self.wte.forward(ids) + self.wpe.forward(pos), self.dropout); // [B, T, C]
        match cache {
            Some(cache) => {
                if cache.layers.is_empty() {
                    let [batch, _, c] = x.dims();
                    let nh = self.h.first().map_or(1, |b| b.attn.n_head);
                    let empty = || Tensor::<B, 4>::zeros([batch, nh, 0, c / nh], &device);
                    cache.layers = self.h.iter().map(|_| LayerCache { key: empty(), value: empty() }).collect();
                }
                for (block, layer) in self.h.iter().zip(cache.layers.iter_mut()) {
                    x = block.forward(x, blocked.clone(), Some(layer), self.precision);
                }
            }
            None => {
                for block in &self.h {
                    x = block.forward(x, blocked.clone(), None, self.precision);
                }
            }
        }
        self.ln_f.forward(x)
    }

    /// Hidden size C.
    pub fn n_embd(&self) -> usize {
        self.wte.weight.dims()[1]
    }

    /// The same trunk with its matrix products at `precision`.
    pub fn with_precision(self, precision: MatmulPrecision) -> Self {
        Self { precision, ..self }
    }
}

/// GPT-2 with its LM head tied to the token embeddings (HF `GPT2LMHeadModel`).
#[derive(Module, Debug)]
pub struct Gpt2LmHead<B: Backend> {
    /// The trunk; the LM head is `transformer.wte.weight` transposed.
    pub transformer: Gpt2Model<B>,
}

impl<B: Backend> Gpt2LmHead<B> {
    /// Logits of a right-padded batch (positions `0..T`, causal attention).
    ///
    /// # Shapes
    /// `ids` `[B, T]` → `[B, T, V]`.
    pub fn forward(&self, ids: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        let [batch, len] = ids.dims();
        self.forward_with(ids, &Positions::causal(batch, len), None)
    }

    /// Logits with explicit positions and masking, optionally extending a key/value cache.
    ///
    /// # Shapes
    /// `ids` `[B, T]` → `[B, T, V]`.
    pub fn forward_with(
        &self,
        ids: Tensor<B, 2, Int>,
        positions: &Positions,
        cache: Option<&mut KvCache<B>>,
    ) -> Tensor<B, 3> {
        let hidden = self.transformer.forward(ids, positions, cache); // [B, T, C]
        self.lm_head(hidden)
    }

    /// The tied LM head.
    ///
    /// # Shapes
    /// `hidden` `[B, T, C]` → `[B, T, V]`.
    pub fn lm_head(&self, hidden: Tensor<B, 3>) -> Tensor<B, 3> {
        let [batch, len, c] = hidden.dims();
        let wte = self.transformer.wte.weight.val(); // [V, C]
        let vocab = wte.dims()[0];
        let precision = self.transformer.precision;
        precision.matmul(hidden.reshape([batch * len, c]), wte.transpose()).reshape([batch, len, vocab])
    }

    /// The tied LM head on a few rows (decoding), as wte · hᵀ, so that the `[V, C]` embedding is
    /// read as stored rather than transposed; the same values as [`Self::lm_head`].
    ///
    /// # Shapes
    /// `hidden` `[R, C]` → `[R, V]`.
    pub fn lm_head_rows(&self, hidden: Tensor<B, 2>) -> Tensor<B, 2> {
        self.transformer.precision.matmul(self.transformer.wte.weight.val(), hidden.transpose()).transpose()
    }

    /// Vocabulary size V.
    pub fn vocab_size(&self) -> usize {
        self.transformer.wte.weight.dims()[0]
    }

    /// The same LM with its matrix products at `precision` (see [`MatmulPrecision`]).
    pub fn with_precision(self, precision: MatmulPrecision) -> Self {
        Self { transformer: self.transformer.with_precision(precision) }
    }
}
