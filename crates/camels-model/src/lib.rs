//! Tensors and models for camels, a Rust implementation of CaMeLS (Hu, Mitchell, Manning, Finn,
//! "Meta-Learning Online Adaptation of Language Models", EMNLP 2023, arXiv 2305.15076).
//!
//! - [`base`]: the base-model interface every stage uses ([`base::BaseLm`], [`base::BaseConfig`]);
//! - [`gpt2`]: GPT-2 (`GPT2LMHeadModel`), differentiable twice on `Autodiff<Autodiff<B>>`;
//! - [`llama`]: the Llama family (`LlamaForCausalLM`, Qwen2), differentiable twice;
//! - [`weighting`]: the CaMeLS weighting model (GPT-2 trunk → MLP head → softplus(β = 3) × mask);
//! - [`loss`]: per-token cross-entropy and the weighted reductions;
//! - [`generate`]: KV-cache greedy and beam-search decoding;
//! - [`gguf`]: GGUF files (llama.cpp): metadata, dequantisation (F32/F16/BF16, Q8_0, Q4_0/1, Q4–6_K),
//!   HF-named tensors, Llama hyper-parameters and the tokenizer;
//! - [`hf`]: HF `config.json` + `model.safetensors` in and out;
//! - [`tokenizer`]: GPT-2 byte-level BPE (load or train);
//! - [`reference`]: reference tensors (HF/PyTorch outputs) and error measures for parity checks;
//! - [`device`]: the only file that names backends (`flex` CPU by default, `wgpu`, `cuda`).
//!
//! ```
//! use burn::prelude::*;
//! use camels_model::{device::Cpu, gpt2::Gpt2Config, loss};
//!
//! let device = Default::default();
//! let model = Gpt2Config::tiny().init::<Cpu>(&device);
//! let ids = Tensor::<Cpu, 2, Int>::from_data([[1, 2, 3, 4], [5, 6, 7, 0]], &device); // [B, T]
//! let logits = model.forward(ids.clone()); // [B, T, V]
//! let token_loss = loss::token_cross_entropy(logits, ids); // [B, T-1]
//! assert_eq!(token_loss.dims(), [2, 3]);
//! ```

pub mod base;
pub mod device;
pub mod error;
pub mod generate;
pub mod gguf;
pub mod gpt2;
pub mod hf;
pub mod llama;
pub mod loss;
pub mod reference;
pub mod tokenizer;
pub mod weighting;

pub use error::{ModelError, Result};
