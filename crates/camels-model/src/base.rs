//! The base-model interface: every stage holds a [`BaseLm`] and a [`BaseConfig`], whatever the family.
//!
//! A family (GPT-2 in [`crate::gpt2`], Llama in [`crate::llama`]) is one variant of each enum; the
//! stages call only the methods here: logits of a batch, hidden states with positions and a key/value
//! cache (decoding), the LM head on a few rows, the vocabulary and context sizes, the matrix-product
//! precision. The family comes from `config.json`'s `model_type` (see [`crate::hf::load_base`]).
//! The pieces every family shares live here too: [`MatmulPrecision`], [`Positions`] (positions and
//! masks built on the host, as HF does for left-padded prompts), [`KvCache`] and [`Embedding`].
//!
//! Invariant: parameter paths are HF's (the enum variant adds nothing to a path: see
//! [`crate::hf::module_tensors`]), so safetensors load and save are identity maps for every family.
//!
//! Dimension letters: B batch, T query length, TK key length, C hidden size, V vocabulary, R rows.

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::FloatDType;
use serde::{Deserialize, Serialize};

use crate::error::ModelError;
use crate::gpt2::{Gpt2Config, Gpt2LmHead, Gpt2Model};
use crate::llama::{LlamaConfig, LlamaForCausalLm, LlamaModel};

/// Additive score for attention positions that are blocked (causal or padding).
pub(crate) const BLOCKED_SCORE: f32 = -1e9;

/// The element type of the model's matrix products (mixed precision). `Bf16` and `F16` round both
/// inputs of every product (the Conv1D projections, attention's two products and the LM head) to
/// that type and cast the product back to f32; the parameters, LayerNorm, softmax, the loss and the
/// optimizer stay f32. What a backend does with a half-precision product (tensor cores, or a
/// conversion to f32 on the CPU) is up to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatmulPrecision {
    /// Plain f32 products.
    #[default]
    F32,
    /// bfloat16 inputs (8 exponent bits, 8 significant bits).
    Bf16,
    /// IEEE half inputs (5 exponent bits, 11 significant bits).
    F16,
}

/// The largest size a configuration may give any dimension (vocabulary, context, widths, layers):
/// 2²⁴. Larger values are typos or corrupt files, and would overflow memory before any check.
pub const MAX_DIM: usize = 1 << 24;

impl MatmulPrecision {
    /// `lhs · rhs` at this precision, returned as f32.
    ///
    /// # Shapes
    /// `lhs` `[…, M, K]`, `rhs` `[…, K, N]` → `[…, M, N]`.
    pub fn matmul<B: Backend, const D: usize>(self, lhs: Tensor<B, D>, rhs: Tensor<B, D>) -> Tensor<B, D> {
        let half = match self {
            Self::F32 => return lhs.matmul(rhs),
            Self::Bf16 => FloatDType::BF16,
            Self::F16 => FloatDType::F16,
        };
        lhs.cast(half).matmul(rhs.cast(half)).cast(FloatDType::F32)
    }

    /// The name used on the command line and in configs: `f32`, `bf16` or `f16`.
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::Bf16 => "bf16",
            Self::F16 => "f16",
        }
    }
}

impl std::str::FromStr for MatmulPrecision {
    type Err = String;
    fn from_str(name: &str) -> Result<Self, String> {
        [Self::F32, Self::Bf16, Self::F16]
            .into_iter()
            .find(|p| p.name() == name)
            .ok_or_else(|| format!("unknown matmul precision `{name}` (f32, bf16, f16)"))
    }
}

impl std::fmt::Display for MatmulPrecision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A lookup table, `weight[ids]`, written with `select` so that it differentiates twice.
#[derive(Module, Debug)]
pub struct Embedding<B: Backend> {
    /// The table, `[N, C]`.
    pub weight: Param<Tensor<B, 2>>,
}

impl<B: Backend> Embedding<B> {
    /// # Shapes
    /// `ids` `[B, T]` → `[B, T, C]`.
    pub fn forward(&self, ids: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        let [batch, len] = ids.dims();
        let [_, c] = self.weight.dims();
        self.weight.val().select(0, ids.reshape([batch * len])).reshape([batch, len, c])
    }
}

/// Cached keys and values of one layer, each `[B, NH, TK, HD]`.
#[derive(Debug, Clone)]
pub struct LayerCache<B: Backend> {
    /// Keys.
    pub key: Tensor<B, 4>,
    /// Values.
    pub value: Tensor<B, 4>,
}

/// The key/value cache of all layers, for incremental decoding.
#[derive(Debug, Clone)]
pub struct KvCache<B: Backend> {
    /// One entry per layer; empty before the first call.
    pub layers: Vec<LayerCache<B>>,
}

impl<B: Backend> Default for KvCache<B> {
    fn default() -> Self {
        Self { layers: Vec::new() }
    }
}

impl<B: Backend> KvCache<B> {
    /// Number of cached positions TK.
    pub fn len(&self) -> usize {
        self.layers.first().map_or(0, |l| l.key.dims()[2])
    }
    /// Whether nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Keeps the batch rows `rows` (in that order), as beam search needs after each step.
    pub fn select_rows(self, rows: Tensor<B, 1, Int>) -> Self {
        let layers = self
            .layers
            .into_iter()
            .map(|l| LayerCache { key: l.key.select(0, rows.clone()), value: l.value.select(0, rows.clone()) })
            .collect();
        Self { layers }
    }
}

/// Where each query may look, and at which positions the new tokens sit: built on the host from
/// the attention mask, as HF does (positions count real tokens only, padding gets position 0).
#[derive(Debug, Clone)]
pub struct Positions {
    /// Batch size B.
    pub batch: usize,
    /// New tokens per row T.
    pub len: usize,
    /// Cached tokens per row (TK − T).
    pub past: usize,
    /// Position id of each new token, `[B·T]`.
    pub position_ids: Vec<i64>,
    /// True where query t of row b may not see key k, `[B·T·TK]`.
    pub blocked: Vec<bool>,
}

impl Positions {
    /// Plain causal attention over `len` tokens with positions `0..len` (right-padded batches: padding
    /// comes after every real token, so it never changes a real token's output).
    pub fn causal(batch: usize, len: usize) -> Self {
        let position_ids = (0..batch).flat_map(|_| 0..len as i64).collect();
        let blocked = (0..batch).flat_map(|_| (0..len).flat_map(move |t| (0..len).map(move |k| k > t))).collect();
        Self { batch, len, past: 0, position_ids, blocked }
    }

    /// Causal attention with a key padding mask covering the cached and the new tokens.
    ///
    /// # Shapes
    /// `attention_mask` `[B, TK]` (1 = real token), row-major; the last `len` columns are the new tokens.
    pub fn from_mask(attention_mask: &[u8], batch: usize, len: usize) -> crate::Result<Self> {
        if batch == 0 || !attention_mask.len().is_multiple_of(batch) {
            return Err(ModelError::Shape(format!(
                "attention mask of {} values is not [{batch}, TK]",
                attention_mask.len()
            )));
        }
        let tk = attention_mask.len() / batch;
        if tk < len {
            return Err(ModelError::Shape(format!(
                "attention mask covers {tk} positions, fewer than the {len} new tokens"
            )));
        }
        let past = tk - len;
        let mut position_ids = Vec::with_capacity(batch * len);
        let mut blocked = Vec::with_capacity(batch * len * tk);
        for row in attention_mask.chunks(tk) {
            let mut seen = 0i64;
            let cumulative: Vec<i64> = row
                .iter()
                .map(|&m| {
                    seen += i64::from(m != 0);
                    seen
                })
                .collect();
            for t in 0..len {
                let abs = past + t;
                position_ids.push(if row[abs] != 0 { cumulative[abs] - 1 } else { 0 });
                blocked.extend((0..tk).map(|k| k > abs || row[k] == 0));
            }
        }
        Ok(Self { batch, len, past, position_ids, blocked })
    }

    pub(crate) fn tensors<B: Backend>(&self, device: &B::Device) -> (Tensor<B, 2, Int>, Tensor<B, 4, Bool>) {
        let tk = self.past + self.len;
        let pos = Tensor::from_data(TensorData::new(self.position_ids.clone(), [self.batch, self.len]), device);
        let blocked =
            Tensor::<B, 3, Bool>::from_data(TensorData::new(self.blocked.clone(), [self.batch, self.len, tk]), device);
        (pos, blocked.unsqueeze_dim(1))
    }
}

/// The hyper-parameters of a base LM of any family (HF `config.json`, by `model_type`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "family", rename_all = "snake_case")]
pub enum BaseConfig {
    /// GPT-2 (`model_type` `gpt2`).
    Gpt2(Gpt2Config),
    /// The Llama family (`model_type` `llama`, `qwen2`).
    Llama(LlamaConfig),
}

impl From<Gpt2Config> for BaseConfig {
    fn from(config: Gpt2Config) -> Self {
        Self::Gpt2(config)
    }
}

impl From<LlamaConfig> for BaseConfig {
    fn from(config: LlamaConfig) -> Self {
        Self::Llama(config)
    }
}

impl BaseConfig {
    /// A preset of any family: GPT-2's (`distilgpt2`, `gpt2`, …, `tiny`) or Llama's (`smollm2-135m`,
    /// `smollm2-360m`, `tinyllama-1b`, `tiny-llama`).
    pub fn preset(name: &str) -> Option<Self> {
        Gpt2Config::preset(name).map(Self::Gpt2).or_else(|| LlamaConfig::preset(name).map(Self::Llama))
    }

    /// The family's name as HF's `model_type` spells it (`gpt2`, `llama`, `qwen2`).
    pub fn model_type(&self) -> &str {
        match self {
            Self::Gpt2(_) => "gpt2",
            Self::Llama(c) => &c.model_type,
        }
    }
    /// Vocabulary size V (rows of the embedding).
    pub fn vocab_size(&self) -> usize {
        match self {
            Self::Gpt2(c) => c.vocab_size,
            Self::Llama(c) => c.vocab_size,
        }
    }
    /// The longest sequence the model takes (learned positions, or the trained RoPE context).
    pub fn max_positions(&self) -> usize {
        match self {
            Self::Gpt2(c) => c.n_positions,
            Self::Llama(c) => c.max_position_embeddings,
        }
    }
    /// Hidden size C.
    pub fn hidden_size(&self) -> usize {
        match self {
            Self::Gpt2(c) => c.n_embd,
            Self::Llama(c) => c.hidden_size,
        }
    }
    /// Number of transformer blocks.
    pub fn num_layers(&self) -> usize {
        match self {
            Self::Gpt2(c) => c.n_layer,
            Self::Llama(c) => c.num_hidden_layers,
        }
    }
    /// The id that ends documents and answers (and pads batches unless [`Self::pad_token_id`] differs).
    pub fn eos_token_id(&self) -> u32 {
        match self {
            Self::Gpt2(c) => c.eos_token_id,
            Self::Llama(c) => c.eos_token_id,
        }
    }
    /// The id that pads batches.
    pub fn pad_token_id(&self) -> u32 {
        match self {
            Self::Gpt2(c) => c.eos_token_id,
            Self::Llama(c) => c.pad_token_id.unwrap_or(c.eos_token_id),
        }
    }
    /// Number of parameters (a tied head counted once).
    pub fn num_params(&self) -> usize {
        match self {
            Self::Gpt2(c) => c.num_params(),
            Self::Llama(c) => c.num_params(),
        }
    }
    /// Checks that the sizes are consistent.
    pub fn validate(&self) -> crate::Result<()> {
        match self {
            Self::Gpt2(c) => c.validate(),
            Self::Llama(c) => c.validate(),
        }
    }
    /// Builds a randomly initialised LM.
    pub fn init<B: Backend>(&self, device: &B::Device) -> BaseLm<B> {
        match self {
            Self::Gpt2(c) => BaseLm::Gpt2(c.init(device)),
            Self::Llama(c) => BaseLm::Llama(c.init(device)),
        }
    }
    /// Builds a randomly initialised trunk (no LM head), as the weighting model uses.
    pub fn init_trunk<B: Backend>(&self, device: &B::Device) -> BaseTrunk<B> {
        match self {
            Self::Gpt2(c) => BaseTrunk::Gpt2(c.init_trunk(device)),
            Self::Llama(c) => BaseTrunk::Llama(c.init_trunk(device)),
        }
    }
    /// The same configuration with a vocabulary of `n` tokens (a trunk that reads another model's ids).
    pub fn with_vocab_size(&self, n: usize) -> Self {
        match self {
            Self::Gpt2(c) => Self::Gpt2(Gpt2Config {
                vocab_size: n,
                eos_token_id: c.eos_token_id.min(n.saturating_sub(1) as u32),
                ..c.clone()
            }),
            Self::Llama(c) => Self::Llama(LlamaConfig {
                vocab_size: n,
                eos_token_id: c.eos_token_id.min(n.saturating_sub(1) as u32),
                pad_token_id: None,
                bos_token_id: None,
                ..c.clone()
            }),
        }
    }

    /// The same configuration with its first `n` blocks only (a weighting-model trunk cut from a base).
    pub fn with_num_layers(&self, n: usize) -> Self {
        match self {
            Self::Gpt2(c) => Self::Gpt2(Gpt2Config { n_layer: n, ..c.clone() }),
            Self::Llama(c) => Self::Llama(LlamaConfig { num_hidden_layers: n, ..c.clone() }),
        }
    }
}

/// A causal LM of any family. Parameter paths are the HF checkpoint's.
#[derive(Module, Debug)]
pub enum BaseLm<B: Backend> {
    /// GPT-2.
    Gpt2(Gpt2LmHead<B>),
    /// The Llama family.
    Llama(LlamaForCausalLm<B>),
}

impl<B: Backend> From<Gpt2LmHead<B>> for BaseLm<B> {
    fn from(model: Gpt2LmHead<B>) -> Self {
        Self::Gpt2(model)
    }
}

impl<B: Backend> From<LlamaForCausalLm<B>> for BaseLm<B> {
    fn from(model: LlamaForCausalLm<B>) -> Self {
        Self::Llama(model)
    }
}

impl<B: Backend> BaseLm<B> {
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
        match self {
            Self::Gpt2(m) => m.forward_with(ids, positions, cache),
            Self::Llama(m) => m.forward_with(ids, positions, cache),
        }
    }

    /// Hidden states after the final norm, optionally extending a key/value cache.
    ///
    /// # Shapes
    /// `ids` `[B, T]` → `[B, T, C]`.
    pub fn hidden(
        &self,
        ids: Tensor<B, 2, Int>,
        positions: &Positions,
        cache: Option<&mut KvCache<B>>,
    ) -> Tensor<B, 3> {
        match self {
            Self::Gpt2(m) => m.transformer.forward(ids, positions, cache),
            Self::Llama(m) => m.model.forward(ids, positions, cache),
        }
    }

    /// The LM head on a few rows (decoding).
    ///
    /// # Shapes
    /// `hidden` `[R, C]` → `[R, V]`.
    pub fn lm_head_rows(&self, hidden: Tensor<B, 2>) -> Tensor<B, 2> {
        match self {
            Self::Gpt2(m) => m.lm_head_rows(hidden),
            Self::Llama(m) => m.lm_head_rows(hidden),
        }
    }

    /// Vocabulary size V.
    pub fn vocab_size(&self) -> usize {
        match self {
            Self::Gpt2(m) => m.vocab_size(),
            Self::Llama(m) => m.vocab_size(),
        }
    }

    /// The longest sequence the model takes.
    pub fn max_positions(&self) -> usize {
        match self {
            Self::Gpt2(m) => m.transformer.wpe.weight.dims()[0],
            Self::Llama(m) => m.model.max_position_embeddings,
        }
    }

    /// The element type of the model's matrix products.
    pub fn precision(&self) -> MatmulPrecision {
        match self {
            Self::Gpt2(m) => m.transformer.precision,
            Self::Llama(m) => m.model.precision,
        }
    }

    /// The same LM with its matrix products at `precision` (see [`MatmulPrecision`]).
    pub fn with_precision(self, precision: MatmulPrecision) -> Self {
        match self {
            Self::Gpt2(m) => Self::Gpt2(m.with_precision(precision)),
            Self::Llama(m) => Self::Llama(m.with_precision(precision)),
        }
    }
}

/// The trunk of an LM of any family (no LM head): the weighting model's encoder.
// The variants hold tensor handles, not data: a few hundred bytes apart, never worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum BaseTrunk<B: Backend> {
    /// GPT-2's `transformer`.
    Gpt2(Gpt2Model<B>),
    /// Llama's `model`.
    Llama(LlamaModel<B>),
}

impl<B: Backend> BaseTrunk<B> {
    /// Hidden states after the final norm.
    ///
    /// # Shapes
    /// `ids` `[B, T]` → `[B, T, C]`.
    pub fn forward(&self, ids: Tensor<B, 2, Int>, positions: &Positions) -> Tensor<B, 3> {
        match self {
            Self::Gpt2(m) => m.forward(ids, positions, None),
            Self::Llama(m) => m.forward(ids, positions, None),
        }
    }

    /// Hidden size C.
    pub fn hidden_size(&self) -> usize {
        match self {
            Self::Gpt2(m) => m.n_embd(),
            Self::Llama(m) => m.hidden_size(),
        }
    }

    /// The longest sequence the trunk takes.
    pub fn max_positions(&self) -> usize {
        match self {
            Self::Gpt2(m) => m.wpe.weight.dims()[0],
            Self::Llama(m) => m.max_position_embeddings,
        }
    }

    /// The HF path prefix of the trunk inside its LM (`transformer`, `model`).
    pub fn lm_prefix(&self) -> &'static str {
        match self {
            Self::Gpt2(_) => "transformer",
            Self::Llama(_) => "model",
        }
    }
}
