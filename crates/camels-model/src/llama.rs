//! The Llama family (HF `LlamaForCausalLM`, also Qwen2) written from ops that burn 0.21 differentiates twice.
//!
//! RMSNorm, rotary position embeddings in HF's rotate-half layout computed on the host from each
//! row's position ids (so left-padded prompts and the key/value cache work as for GPT-2),
//! grouped-query attention (key/value heads repeated with `expand`), the SwiGLU MLP
//! `down(silu(gate(x)) · up(x))`, and an LM head tied to the token embedding or separate.
//! Projections are HF `nn.Linear`: `y = x · Wᵀ (+ b)` with `W` stored `[out, in]`; there is no
//! `nn::Linear`/`nn::Embedding`/`nn::RotaryEncoding`/`nn::SwiGlu` (they panic in a second backward or
//! rotate adjacent pairs). Parameter paths equal HF names (`model.layers.0.self_attn.q_proj.weight`).
//!
//! Dimension letters: B batch, T query length, TK key length, C hidden size, NH query heads,
//! NKV key/value heads, HD head size, I MLP size, V vocabulary.

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::Distribution;
use burn::tensor::activation::{sigmoid, softmax};
use serde::{Deserialize, Serialize};

use crate::base::{BLOCKED_SCORE, Embedding, KvCache, LayerCache, MatmulPrecision, Positions};
use crate::error::ModelError;

fn default_model_type() -> String {
    "llama".into()
}
fn default_rms_norm_eps() -> f64 {
    1e-6
}
fn default_rope_theta() -> f64 {
    10_000.0
}
fn default_initializer_range() -> f64 {
    0.02
}
fn default_true() -> bool {
    true
}

/// The hyper-parameters of a Llama-family model, with HF `config.json`'s field names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
    /// `llama`, or `qwen2` (q/k/v biases, no output-projection bias).
    #[serde(default = "default_model_type")]
    pub model_type: String,
    /// Vocabulary size V.
    pub vocab_size: usize,
    /// Hidden size C.
    pub hidden_size: usize,
    /// MLP size I.
    pub intermediate_size: usize,
    /// Number of blocks.
    pub num_hidden_layers: usize,
    /// Query heads NH.
    pub num_attention_heads: usize,
    /// Key/value heads NKV (grouped-query attention when below NH).
    pub num_key_value_heads: usize,
    /// Head size HD (C / NH when absent).
    #[serde(default)]
    pub head_dim: Option<usize>,
    /// The context the model was trained on.
    pub max_position_embeddings: usize,
    /// RMSNorm epsilon.
    #[serde(default = "default_rms_norm_eps")]
    pub rms_norm_eps: f64,
    /// RoPE base θ.
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f64,
    /// Whether the LM head is the token embedding.
    #[serde(default = "default_true")]
    pub tie_word_embeddings: bool,
    /// Biases on q/k/v and the output projection (HF Llama's `attention_bias`; Qwen2 has q/k/v ones
    /// only, whatever this says).
    #[serde(default)]
    pub attention_bias: bool,
    /// Biases on the MLP projections.
    #[serde(default)]
    pub mlp_bias: bool,
    /// Standard deviation of the random initialisation.
    #[serde(default = "default_initializer_range")]
    pub initializer_range: f64,
    /// Beginning-of-sequence id.
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    /// The id that ends documents and answers.
    pub eos_token_id: u32,
    /// The padding id (EOS when absent).
    #[serde(default)]
    pub pad_token_id: Option<u32>,
}

impl LlamaConfig {
    /// A configuration with the required sizes and HF's defaults for the rest.
    pub fn new(
        vocab_size: usize,
        hidden_size: usize,
        intermediate_size: usize,
        layers: usize,
        heads: (usize, usize),
    ) -> Self {
        Self {
            model_type: default_model_type(),
            vocab_size,
            hidden_size,
            intermediate_size,
            num_hidden_layers: layers,
            num_attention_heads: heads.0,
            num_key_value_heads: heads.1,
            head_dim: None,
            max_position_embeddings: 2048,
            rms_norm_eps: default_rms_norm_eps(),
            rope_theta: default_rope_theta(),
            tie_word_embeddings: true,
            attention_bias: false,
            mlp_bias: false,
            initializer_range: default_initializer_range(),
            bos_token_id: None,
            eos_token_id: 0,
            pad_token_id: None,
        }
    }

    /// SmolLM2-135M: 30 blocks, 576 hidden, GQA 9/3, MLP 1536, θ 1e5, tied (134,515,008 parameters).
    pub fn smollm2_135m() -> Self {
        Self {
            max_position_embeddings: 8192,
            rms_norm_eps: 1e-5,
            rope_theta: 100_000.0,
            bos_token_id: Some(1),
            eos_token_id: 2,
            pad_token_id: Some(2),
            ..Self::new(49_152, 576, 1536, 30, (9, 3))
        }
    }
    /// SmolLM2-360M: 32 blocks, 960 hidden, GQA 15/5, MLP 2560, θ 1e5, tied.
    pub fn smollm2_360m() -> Self {
        Self {
            hidden_size: 960,
            intermediate_size: 2560,
            num_hidden_layers: 32,
            num_attention_heads: 15,
            num_key_value_heads: 5,
            ..Self::smollm2_135m()
        }
    }
    /// TinyLlama-1.1B: 22 blocks, 2048 hidden, GQA 32/4, MLP 5632, vocabulary 32,000, untied.
    pub fn tinyllama_1b() -> Self {
        Self {
            max_position_embeddings: 2048,
            rms_norm_eps: 1e-5,
            tie_word_embeddings: false,
            bos_token_id: Some(1),
            eos_token_id: 2,
            ..Self::new(32_000, 2048, 5632, 22, (32, 4))
        }
    }
    /// A tiny model for tests: 2 blocks, 32 hidden, GQA 4/2 (head 8), MLP 64, 512 tokens, 64 positions.
    pub fn tiny() -> Self {
        Self { max_position_embeddings: 64, rms_norm_eps: 1e-5, ..Self::new(512, 32, 64, 2, (4, 2)) }
    }

    /// A preset by name (`smollm2-135m`, `smollm2-360m`, `tinyllama-1b`, `tiny-llama`).
    pub fn preset(name: &str) -> Option<Self> {
        Some(match name.replace('_', "-").as_str() {
            "smollm2-135m" => Self::smollm2_135m(),
            "smollm2-360m" => Self::smollm2_360m(),
            "tinyllama-1b" => Self::tinyllama_1b(),
            "tiny-llama" => Self::tiny(),
            _ => return None,
        })
    }

    /// Head size HD.
    pub fn head_size(&self) -> usize {
        self.head_dim.unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// Whether q/k/v carry biases, and whether the output projection does.
    pub fn biases(&self) -> (bool, bool) {
        if self.model_type == "qwen2" { (true, false) } else { (self.attention_bias, self.attention_bias) }
    }

    /// Number of parameters (a tied head counted once).
    pub fn num_params(&self) -> usize {
        let (c, i, hd) = (self.hidden_size, self.intermediate_size, self.head_size());
        let (q, kv) = (self.num_attention_heads * hd, self.num_key_value_heads * hd);
        let (qkv_bias, o_bias) = self.biases();
        let attn = c * q + 2 * c * kv + q * c + if qkv_bias { q + 2 * kv } else { 0 } + if o_bias { c } else { 0 };
        let mlp = 3 * c * i + if self.mlp_bias { 2 * i + c } else { 0 };
        let head = if self.tie_word_embeddings { 0 } else { self.vocab_size * c };
        self.vocab_size * c + self.num_hidden_layers * (attn + mlp + 2 * c) + c + head
    }

    /// Checks that the sizes are consistent.
    pub fn validate(&self) -> crate::Result<()> {
        let bad = |field: &str, reason: String| ModelError::Config {
            path: "<llama config>".into(),
            field: field.into(),
            reason,
        };
        if !matches!(self.model_type.as_str(), "llama" | "qwen2") {
            return Err(bad("model_type", format!("`{}` is not a Llama-family model (llama, qwen2)", self.model_type)));
        }
        for (field, value) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.num_key_value_heads),
            ("max_position_embeddings", self.max_position_embeddings),
        ] {
            if value == 0 {
                return Err(bad(field, "must be positive".into()));
            }
            if value > crate::base::MAX_DIM {
                return Err(bad(field, format!("{value} is implausibly large (at most {})", crate::base::MAX_DIM)));
            }
        }
        if !self.num_attention_heads.is_multiple_of(self.num_key_value_heads) {
            return Err(bad(
                "num_key_value_heads",
                format!(
                    "{} does not divide num_attention_heads {}",
                    self.num_key_value_heads, self.num_attention_heads
                ),
            ));
        }
        let hd = self.head_size();
        if hd == 0 || !hd.is_multiple_of(2) {
            return Err(bad("head_dim", format!("{hd}: rotary embeddings need an even, positive head size")));
        }
        if self.head_dim.is_none() && !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(bad("num_attention_heads", format!("does not divide hidden_size {}", self.hidden_size)));
        }
        if !(self.rms_norm_eps.is_finite() && self.rms_norm_eps > 0.0) {
            return Err(bad("rms_norm_eps", format!("{} must be positive and finite", self.rms_norm_eps)));
        }
        if !(self.rope_theta.is_finite() && self.rope_theta > 1.0) {
            return Err(bad("rope_theta", format!("{} must be finite and above 1", self.rope_theta)));
        }
        for (field, id) in [
            ("eos_token_id", Some(self.eos_token_id)),
            ("pad_token_id", self.pad_token_id),
            ("bos_token_id", self.bos_token_id),
        ] {
            if id.is_some_and(|id| id as usize >= self.vocab_size) {
                return Err(bad(
                    field,
                    format!("{} is outside the vocabulary of {}", id.unwrap_or(0), self.vocab_size),
                ));
            }
        }
        Ok(())
    }

    /// Builds a randomly initialised LM (normal(0, `initializer_range`) weights, zero biases, unit norms).
    pub fn init<B: Backend>(&self, device: &B::Device) -> LlamaForCausalLm<B> {
        let model = self.init_trunk(device);
        let lm_head = (!self.tie_word_embeddings).then(|| LlamaLinear {
            weight: Param::from_tensor(Tensor::random(
                [self.vocab_size, self.hidden_size],
                Distribution::Normal(0.0, self.initializer_range),
                device,
            )),
            bias: None,
        });
        LlamaForCausalLm { model, lm_head }
    }

    /// Builds a randomly initialised trunk (no LM head), as used by the weighting model.
    pub fn init_trunk<B: Backend>(&self, device: &B::Device) -> LlamaModel<B> {
        let (c, hd) = (self.hidden_size, self.head_size());
        let std = self.initializer_range;
        let linear = |d_in: usize, d_out: usize, bias: bool| LlamaLinear {
            weight: Param::from_tensor(Tensor::random([d_out, d_in], Distribution::Normal(0.0, std), device)),
            bias: bias.then(|| Param::from_tensor(Tensor::zeros([d_out], device))),
        };
        let norm = || RmsNorm { weight: Param::from_tensor(Tensor::ones([c], device)), eps: self.rms_norm_eps };
        let (qkv_bias, o_bias) = self.biases();
        let (nh, nkv) = (self.num_attention_heads, self.num_key_value_heads);
        let layers = (0..self.num_hidden_layers)
            .map(|_| LlamaBlock {
                input_layernorm: norm(),
                self_attn: LlamaAttention {
                    q_proj: linear(c, nh * hd, qkv_bias),
                    k_proj: linear(c, nkv * hd, qkv_bias),
                    v_proj: linear(c, nkv * hd, qkv_bias),
                    o_proj: linear(nh * hd, c, o_bias),
                    num_heads: nh,
                    num_kv_heads: nkv,
                    head_dim: hd,
                },
                post_attention_layernorm: norm(),
                mlp: LlamaMlp {
                    gate_proj: linear(c, self.intermediate_size, self.mlp_bias),
                    up_proj: linear(c, self.intermediate_size, self.mlp_bias),
                    down_proj: linear(self.intermediate_size, c, self.mlp_bias),
                },
            })
            .collect();
        LlamaModel {
            embed_tokens: Embedding {
                weight: Param::from_tensor(Tensor::random(
                    [self.vocab_size, c],
                    Distribution::Normal(0.0, std),
                    device,
                )),
            },
            layers,
            norm: norm(),
            rope_theta: self.rope_theta,
            max_position_embeddings: self.max_position_embeddings,
            precision: MatmulPrecision::F32,
        }
    }
}

/// HF's `nn.Linear`: `y = x · Wᵀ + b` with `W` stored `[out, in]`.
#[derive(Module, Debug)]
pub struct LlamaLinear<B: Backend> {
    /// `[out, in]`.
    pub weight: Param<Tensor<B, 2>>,
    /// `[out]`, when the layer has one.
    pub bias: Option<Param<Tensor<B, 1>>>,
}

impl<B: Backend> LlamaLinear<B> {
    /// # Shapes
    /// `x` `[B, T, in]` → `[B, T, out]`.
    pub fn forward(&self, x: Tensor<B, 3>, precision: MatmulPrecision) -> Tensor<B, 3> {
        let [batch, len, d_in] = x.dims();
        let [d_out, _] = self.weight.dims();
        let mut y = precision.matmul(x.reshape([batch * len, d_in]), self.weight.val().transpose()); // [B·T, out]
        if let Some(bias) = &self.bias {
            y = y + bias.val().unsqueeze_dim(0);
        }
        y.reshape([batch, len, d_out])
    }
}

/// RMSNorm: `x / √(mean(x²) + ε) · weight`, over the last dimension.
#[derive(Module, Debug)]
pub struct RmsNorm<B: Backend> {
    /// Scale, `[C]`.
    pub weight: Param<Tensor<B, 1>>,
    /// Added to the mean square.
    pub eps: f64,
}

impl<B: Backend> RmsNorm<B> {
    /// # Shapes
    /// `x` `[B, T, C]` → `[B, T, C]`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let rms = (x.clone().powi_scalar(2).mean_dim(2) + self.eps).sqrt(); // [B, T, 1]
        x / rms * self.weight.val().unsqueeze::<3>()
    }
}

/// The cosines and sines of the rotary embedding at each new token's position, `[B, 1, T, HD]`
/// each, HF's layout: frequency i < HD/2 is repeated at i + HD/2.
struct Rope<B: Backend> {
    cos: Tensor<B, 4>,
    sin: Tensor<B, 4>,
}

impl<B: Backend> Rope<B> {
    /// Computed in f32 as HF does: inv_freq_i = 1 / θ^(2i/HD), angle = position · inv_freq_i.
    fn new(positions: &Positions, head_dim: usize, theta: f64, device: &B::Device) -> Self {
        let half = head_dim / 2;
        let inv_freq: Vec<f32> =
            (0..half).map(|i| 1.0 / (theta as f32).powf((2 * i) as f32 / head_dim as f32)).collect();
        let mut cos = Vec::with_capacity(positions.position_ids.len() * head_dim);
        let mut sin = Vec::with_capacity(cos.capacity());
        for &p in &positions.position_ids {
            for _ in 0..2 {
                for &f in &inv_freq {
                    let angle = p as f32 * f;
                    cos.push(angle.cos());
                    sin.push(angle.sin());
                }
            }
        }
        let shape = [positions.batch, 1, positions.len, head_dim];
        let tensor = |v: Vec<f32>| Tensor::<B, 4>::from_data(TensorData::new(v, shape), device);
        Self { cos: tensor(cos), sin: tensor(sin) }
    }

    /// `x · cos + rotate_half(x) · sin`, `rotate_half(x) = [−x₂, x₁]`.
    ///
    /// # Shapes
    /// `x` `[B, H, T, HD]` → `[B, H, T, HD]`.
    fn apply(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let hd = x.dims()[3];
        let (x1, x2) = (x.clone().narrow(3, 0, hd / 2), x.clone().narrow(3, hd / 2, hd / 2));
        let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
        x * self.cos.clone() + rotated * self.sin.clone()
    }
}

/// Grouped-query self-attention with rotary embeddings and an optional key/value cache.
#[derive(Module, Debug)]
pub struct LlamaAttention<B: Backend> {
    /// `[NH·HD, C]`.
    pub q_proj: LlamaLinear<B>,
    /// `[NKV·HD, C]`.
    pub k_proj: LlamaLinear<B>,
    /// `[NKV·HD, C]`.
    pub v_proj: LlamaLinear<B>,
    /// `[C, NH·HD]`.
    pub o_proj: LlamaLinear<B>,
    /// Query heads NH.
    pub num_heads: usize,
    /// Key/value heads NKV.
    pub num_kv_heads: usize,
    /// Head size HD.
    pub head_dim: usize,
}

impl<B: Backend> LlamaAttention<B> {
    /// # Shapes
    /// `x` `[B, T, C]`, `blocked` `[B, 1, T, TK]` (true where a query may not see a key) → `[B, T, C]`.
    /// The cache holds rotated keys and values before the repeat, `[B, NKV, TK, HD]`.
    fn forward(
        &self,
        x: Tensor<B, 3>,
        rope: &Rope<B>,
        blocked: Tensor<B, 4, Bool>,
        cache: Option<&mut LayerCache<B>>,
        precision: MatmulPrecision,
    ) -> Tensor<B, 3> {
        let [batch, len, _] = x.dims();
        let (nh, nkv, hd) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let heads = |t: Tensor<B, 3>, n: usize| t.reshape([batch, len, n, hd]).swap_dims(1, 2); // [B, n, T, HD]
        let q = rope.apply(heads(self.q_proj.forward(x.clone(), precision), nh));
        let mut k = rope.apply(heads(self.k_proj.forward(x.clone(), precision), nkv));
        let mut v = heads(self.v_proj.forward(x, precision), nkv);
        if let Some(cache) = cache {
            if cache.key.dims()[2] > 0 {
                k = Tensor::cat(vec![cache.key.clone(), k], 2); // [B, NKV, TK, HD]
                v = Tensor::cat(vec![cache.value.clone(), v], 2);
            }
            cache.key = k.clone();
            cache.value = v.clone();
        }
        let tk = k.dims()[2];
        let repeat = |t: Tensor<B, 4>| {
            if nkv == nh {
                return t;
            }
            t.unsqueeze_dim::<5>(2).expand([batch, nkv, nh / nkv, tk, hd]).reshape([batch, nh, tk, hd])
        };
        let scores = precision.matmul(q, repeat(k).swap_dims(2, 3)) / (hd as f64).sqrt(); // [B, NH, T, TK]
        let scores = scores.mask_fill(blocked.expand([batch, nh, len, tk]), BLOCKED_SCORE);
        let y = precision.matmul(softmax(scores, 3), repeat(v)); // [B, NH, T, HD]
        self.o_proj.forward(y.swap_dims(1, 2).reshape([batch, len, nh * hd]), precision)
    }
}

/// The SwiGLU feed-forward block: `down(silu(gate(x)) · up(x))`.
#[derive(Module, Debug)]
pub struct LlamaMlp<B: Backend> {
    /// `[I, C]`.
    pub gate_proj: LlamaLinear<B>,
    /// `[I, C]`.
    pub up_proj: LlamaLinear<B>,
    /// `[C, I]`.
    pub down_proj: LlamaLinear<B>,
}

impl<B: Backend> LlamaMlp<B> {
    /// # Shapes
    /// `x` `[B, T, C]` → `[B, T, C]`.
    pub fn forward(&self, x: Tensor<B, 3>, precision: MatmulPrecision) -> Tensor<B, 3> {
        let gate = self.gate_proj.forward(x.clone(), precision); // [B, T, I]
        let silu = gate.clone() * sigmoid(gate);
        self.down_proj.forward(silu * self.up_proj.forward(x, precision), precision)
    }
}

/// A pre-norm Llama block.
#[derive(Module, Debug)]
pub struct LlamaBlock<B: Backend> {
    /// RMSNorm before attention.
    pub input_layernorm: RmsNorm<B>,
    /// Self-attention.
    pub self_attn: LlamaAttention<B>,
    /// RMSNorm before the MLP.
    pub post_attention_layernorm: RmsNorm<B>,
    /// Feed-forward.
    pub mlp: LlamaMlp<B>,
}

/// The Llama trunk (HF `LlamaModel`): token embedding, blocks and the final RMSNorm.
#[derive(Module, Debug)]
pub struct LlamaModel<B: Backend> {
    /// Token embeddings, `[V, C]` (also the LM head when tied).
    pub embed_tokens: Embedding<B>,
    /// The blocks.
    pub layers: Vec<LlamaBlock<B>>,
    /// Final RMSNorm.
    pub norm: RmsNorm<B>,
    /// RoPE base θ.
    pub rope_theta: f64,
    /// The trained context length.
    pub max_position_embeddings: usize,
    /// The element type of every matrix product (not saved with the weights).
    #[module(skip)]
    pub precision: MatmulPrecision,
}

impl<B: Backend> LlamaModel<B> {
    /// Hidden states after the final RMSNorm.
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
        let (_, blocked) = positions.tensors::<B>(&device);
        let Some(first) = self.layers.first() else {
            return self.norm.forward(self.embed_tokens.forward(ids));
        };
        let (nkv, hd) = (first.self_attn.num_kv_heads, first.self_attn.head_dim);
        let rope = Rope::new(positions, hd, self.rope_theta, &device);
        let mut x = self.embed_tokens.forward(ids); // [B, T, C]
        let block = |x: Tensor<B, 3>, layer: &LlamaBlock<B>, cache: Option<&mut LayerCache<B>>| {
            let h = x.clone()
                + layer.self_attn.forward(
                    layer.input_layernorm.forward(x),
                    &rope,
                    blocked.clone(),
                    cache,
                    self.precision,
                );
            h.clone() + layer.mlp.forward(layer.post_attention_layernorm.forward(h), self.precision)
        };
        match cache {
            Some(cache) => {
                if cache.layers.is_empty() {
                    let empty = || Tensor::<B, 4>::zeros([positions.batch, nkv, 0, hd], &device);
                    cache.layers = self.layers.iter().map(|_| LayerCache { key: empty(), value: empty() }).collect();
                }
                for (layer, entry) in self.layers.iter().zip(cache.layers.iter_mut()) {
                    x = block(x, layer, Some(entry));
                }
            }
            None => {
                for layer in &self.layers {
                    x = block(x, layer, None);
                }
            }
        }
        self.norm.forward(x)
    }

    /// Hidden size C.
    pub fn hidden_size(&self) -> usize {
        self.embed_tokens.weight.dims()[1]
    }

    /// The same trunk with its matrix products at `precision`.
    pub fn with_precision(self, precision: MatmulPrecision) -> Self {
        Self { precision, ..self }
    }
}

/// A Llama LM (HF `LlamaForCausalLM`): the trunk and a tied or separate LM head.
#[derive(Module, Debug)]
pub struct LlamaForCausalLm<B: Backend> {
    /// The trunk.
    pub model: LlamaModel<B>,
    /// The LM head `[V, C]` when not tied to `model.embed_tokens`.
    pub lm_head: Option<LlamaLinear<B>>,
}

impl<B: Backend> LlamaForCausalLm<B> {
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
        let hidden = self.model.forward(ids, positions, cache); // [B, T, C]
        let [batch, len, c] = hidden.dims();
        let head = self.head_weight(); // [V, C]
        let vocab = head.dims()[0];
        self.model.precision.matmul(hidden.reshape([batch * len, c]), head.transpose()).reshape([batch, len, vocab])
    }

    /// The LM head on a few rows (decoding), as W · hᵀ so that `[V, C]` is read as stored.
    ///
    /// # Shapes
    /// `hidden` `[R, C]` → `[R, V]`.
    pub fn lm_head_rows(&self, hidden: Tensor<B, 2>) -> Tensor<B, 2> {
        self.model.precision.matmul(self.head_weight(), hidden.transpose()).transpose()
    }

    /// The LM head's weight, `[V, C]`.
    fn head_weight(&self) -> Tensor<B, 2> {
        match &self.lm_head {
            Some(head) => head.weight.val(),
            None => self.model.embed_tokens.weight.val(),
        }
    }

    /// Vocabulary size V.
    pub fn vocab_size(&self) -> usize {
        self.model.embed_tokens.weight.dims()[0]
    }

    /// The same LM with its matrix products at `precision`.
    pub fn with_precision(self, precision: MatmulPrecision) -> Self {
        Self { model: self.model.with_precision(precision), ..self }
    }
}
