//! Meta-training for camels, a Rust implementation of CaMeLS (Hu, Mitchell, Manning, Finn,
//! "Meta-Learning Online Adaptation of Language Models", EMNLP 2023, arXiv 2305.15076).
//!
//! - [`metagrad`]: the meta-gradient dJ/dw through K weighted SGD steps of the base LM, by an
//!   adjoint recursion that never keeps a graph across two inner steps (exact double backward,
//!   central differences, first order), with the reference's full unroll as an oracle;
//! - [`params`]: parameter-space vector operations on burn modules;
//! - [`parity`]: the fixture parity checks, runnable on any backend (`camels-cli check`);
//! - [`adapt`]: online adaptation of a base LM on a document stream (Adam, SGD, AdaGrad or
//!   [`adafactor`], exact resume);
//! - [`strategy`]: the token-weighting strategies (uniform, TF-IDF, salient spans, CaMeLS);
//! - [`eval`]: QA evaluation (generation, EM/F1, answer NLL, unrelated-text perplexity);
//! - [`config`], [`train`], [`checkpoint`], [`viz`]: the meta-training loop, its TOML configuration,
//!   exact-resume checkpoints and the token-weight pages;
//! - [`probe`]: the supervised ceiling of a weighting model's trunk (its head fitted to answer spans);
//! - [`pretrain`]: a small base LM from scratch (LM then QA fine-tuning), for machines without checkpoints,
//!   and QA fine-tuning with validation and early stopping ([`pretrain::qa_tune`]);
//! - [`demo`]: the end-to-end demo (synthetic world → two base LMs → CaMeLS → adaptation → report).
//!
//! ```
//! use burn::prelude::*;
//! use camels_meta::metagrad::{InnerStep, MetaGradMode, MetaProblem, Rows, meta_gradient};
//! use camels_model::{base::BaseConfig, device::Cpu, gpt2::Gpt2Config, loss::Reduction};
//!
//! let device = Default::default();
//! let base = BaseConfig::from(Gpt2Config::tiny()).init::<Cpu>(&device); // any family: BaseLm
//! let doc = Rows::new(vec![5, 9, 13, 2], vec![1.0; 4], 1, 4).unwrap();
//! let problem = MetaProblem {
//!     docs: vec![doc.clone(), doc],
//!     qa: Rows::new(vec![7, 8, 9, 0], vec![1.0; 4], 1, 4).unwrap(),
//!     qa_targets: vec![0.0, 0.0, 1.0, 1.0],
//!     locality: Rows::new(vec![3, 4, 5, 6], vec![1.0; 4], 1, 4).unwrap(),
//!     control: None,
//!     inner_lr: 5e-4,
//!     inner_step: InnerStep::Sgd,
//!     c_kl: 0.1,
//!     reduction: Reduction::MeanPadded,
//! };
//! let weights = vec![Tensor::<Cpu, 2>::ones([1, 4], &device); 2]; // [1, T] per document
//! let grad = meta_gradient(&base, &weights, &problem, MetaGradMode::Exact).unwrap();
//! assert_eq!(grad.dj_dw.len(), 2);
//! assert_eq!(grad.dj_dw[0][0], 0.0); // token 0 is never a target
//! ```

pub mod adafactor;
pub mod adapt;
pub mod checkpoint;
pub mod compare;
pub mod config;
pub mod demo;
pub mod error;
pub mod eval;
pub mod lock;
pub mod metagrad;
pub mod params;
pub mod parity;
pub mod pretrain;
pub mod probe;
pub mod strategy;
pub mod train;
pub mod viz;

pub use error::{MetaError, Result};

/// The [`camels_data::TextEncoder`] view of a model's tokenizer: its token ids, and the model's own
/// EOS to end documents and answers and to pad batches.
pub trait EncoderExt {
    /// The encoder that batches are built with.
    fn encoder(&self) -> camels_data::ModelEncoder<'_>;
}

impl EncoderExt for camels_model::tokenizer::TextTokenizer {
    fn encoder(&self) -> camels_data::ModelEncoder<'_> {
        camels_data::ModelEncoder::new(self.inner(), self.eos_id())
    }
}
