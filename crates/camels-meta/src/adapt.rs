//! Online adaptation: fine-tune the base LM on a stream of documents, in order, with per-token
//! loss weights (uniform, TF-IDF, salient spans or a CaMeLS weighting model, see
//! [`crate::strategy`]).
//!
//! One optimizer (Adam by default, SGD, AdaGrad, or [`crate::adafactor`]'s Adafactor) runs over the
//! whole stream, so its moments carry from document to document, as in the paper. The matrix
//! products may run in bf16 (`matmul_precision`; weights and optimizer state stay f32). `batch_size`
//! documents make a micro-batch; `grad_accumulation` micro-batches make one optimizer step (the loss
//! of each is divided by `grad_accumulation`); the stream is repeated `epochs` times.
//!
//! A micro-batch whose document has a NaN or infinite loss drops that document (counted and
//! reported, never stepped on). Every `checkpoint_every` documents, at a step boundary, the model
//! and optimizer state (burn records, with their parameter ids) and the position in the stream are
//! written atomically; [`adapt`] resumes from them, so a killed run that is restarted neither repeats
//! nor skips a document and ends with the weights of an unbroken run.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::{AutodiffModule, Module};
use burn::optim::grad_clipping::GradientClippingConfig;
use burn::optim::{AdaGradConfig, AdamConfig, GradientsAccumulator, GradientsParams, Optimizer, SgdConfig};
use burn::prelude::*;
use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, Recorder};
use burn::tensor::backend::AutodiffBackend;
use camels_model::base::{BaseLm, MatmulPrecision};
use camels_model::hf::write_atomic;
use camels_model::loss::{Reduction, token_cross_entropy, weighted_loss};
use serde::{Deserialize, Serialize};

use crate::adafactor::AdafactorConfig;
use crate::error::{MetaError, Result};
use crate::eval::to_f64;

/// Which optimizer adapts the base LM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    /// Adam (β₁, β₂, ε from the config; no weight decay), the paper's choice.
    #[default]
    Adam,
    /// Plain SGD.
    Sgd,
    /// AdaGrad (ε from the config).
    AdaGrad,
    /// Adafactor with HF's defaults and the given lr (`relative_step=False`, `scale_parameter=True`,
    /// no first moment); see [`crate::adafactor`].
    Adafactor,
}

/// Options of online adaptation. TOML/JSON with these field names; every field has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdaptConfig {
    /// The optimizer.
    pub optimizer: OptimizerKind,
    /// Learning rate.
    pub lr: f64,
    /// Adam's β₁ (Adafactor keeps HF's defaults: no first moment, ε = (1e-30, 1e-3)).
    pub beta1: f32,
    /// Adam's β₂.
    pub beta2: f32,
    /// Adam's and AdaGrad's ε.
    pub epsilon: f32,
    /// Clip each parameter tensor's gradient to this L2 norm (burn 0.21 clips per tensor, not by the
    /// global norm over all tensors).
    pub grad_clip_norm: Option<f32>,
    /// Documents per micro-batch.
    pub batch_size: usize,
    /// Micro-batches per optimizer step.
    pub grad_accumulation: usize,
    /// Passes over the stream.
    pub epochs: usize,
    /// Longest document, in tokens (longer documents are truncated; never more than the model's context).
    pub max_doc_tokens: usize,
    /// How a micro-batch's weighted token losses are normalised.
    pub reduction: Reduction,
    /// Write a resume checkpoint every this many documents (0: never).
    pub checkpoint_every: usize,
    /// Element type of the base LM's matrix products while adapting (`f32` or `bf16`; see
    /// [`MatmulPrecision`]); parameters and optimizer state stay f32. `f16` is refused: it needs
    /// loss scaling.
    pub matmul_precision: MatmulPrecision,
}

impl Default for AdaptConfig {
    fn default() -> Self {
        Self::paper()
    }
}

impl AdaptConfig {
    /// The paper's setting: Adam, one document per step, one epoch, 1024-token documents, the
    /// reference's padded-mean reduction. The learning rate is tuned per method in the paper; 1e-5
    /// is a starting point for distilgpt2.
    pub fn paper() -> Self {
        Self {
            optimizer: OptimizerKind::Adam,
            lr: 1e-5,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            grad_clip_norm: None,
            batch_size: 1,
            grad_accumulation: 1,
            epochs: 1,
            max_doc_tokens: 1024,
            reduction: Reduction::MeanPadded,
            checkpoint_every: 0,
            matmul_precision: MatmulPrecision::F32,
        }
    }

    /// For tests on the tiny GPT-2: lr 1e-3, 64-token documents.
    pub fn tiny() -> Self {
        Self { lr: 1e-3, max_doc_tokens: 64, ..Self::paper() }
    }

    /// A preset by name: `paper` or `tiny`.
    pub fn preset(name: &str) -> Option<Self> {
        match name {
            "paper" | "default" => Some(Self::paper()),
            "tiny" => Some(Self::tiny()),
            _ => None,
        }
    }

    /// Reads a TOML file, then applies `key=value` overrides (values in TOML syntax; a value that
    /// does not parse as TOML is taken as a string).
    pub fn from_toml(path: &Path, overrides: &[String]) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| MetaError::Io { path: path.into(), source })?;
        let table: toml::Table = toml::from_str(&text).map_err(|e| MetaError::Parse {
            path: path.into(),
            field: "-".into(),
            message: e.to_string(),
        })?;
        Self::from_table(table, path, overrides)
    }

    /// A preset (or the default) with `key=value` overrides applied.
    pub fn with_overrides(self, overrides: &[String]) -> Result<Self> {
        let table = toml::Table::try_from(&self).map_err(|e| MetaError::Parse {
            path: "<preset>".into(),
            field: "-".into(),
            message: e.to_string(),
        })?;
        Self::from_table(table, Path::new("<preset>"), overrides)
    }

    fn from_table(mut table: toml::Table, path: &Path, overrides: &[String]) -> Result<Self> {
        for item in overrides {
            let Some((key, value)) = item.split_once('=') else {
                return Err(MetaError::InvalidOption {
                    option: "--set".into(),
                    value: item.clone(),
                    expected: "key=value".into(),
                });
            };
            let value = match toml::from_str::<toml::Table>(&format!("v = {value}")) {
                Ok(mut t) => t.remove("v").unwrap_or_else(|| toml::Value::String(value.into())),
                Err(_) => toml::Value::String(value.into()),
            };
            table.insert(key.trim().to_string(), value);
        }
        let config: Self = table.try_into().map_err(|e: toml::de::Error| MetaError::Parse {
            path: path.into(),
            field: "-".into(),
            message: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Refuses values the loop cannot run with.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("batch_size", self.batch_size),
            ("grad_accumulation", self.grad_accumulation),
            ("epochs", self.epochs),
            ("max_doc_tokens", self.max_doc_tokens),
        ];
        for (option, value) in positive {
            if value == 0 {
                return Err(MetaError::InvalidOption {
                    option: option.into(),
                    value: "0".into(),
                    expected: "at least 1".into(),
                });
            }
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(MetaError::InvalidOption {
                option: "lr".into(),
                value: self.lr.to_string(),
                expected: "a positive number".into(),
            });
        }
        if self.matmul_precision == MatmulPrecision::F16 {
            // f16's smallest value (6e-8) is above most per-logit gradients of a mean over ~1k tokens
            // and 50k words; without loss scaling (not implemented) they would be flushed to zero.
            return Err(MetaError::InvalidOption {
                option: "matmul_precision".into(),
                value: "f16".into(),
                expected: "f32 or bf16 (training in f16 needs loss scaling, which camels does not do)".into(),
            });
        }
        Ok(())
    }

    fn clipping(&self) -> Option<GradientClippingConfig> {
        self.grad_clip_norm.map(GradientClippingConfig::Norm)
    }
}

/// One document of the stream, tokenised, with a loss weight per token.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightedDoc {
    /// The document's id (reported when it is skipped).
    pub id: String,
    /// Token ids `[T]`.
    pub ids: Vec<u32>,
    /// Weight of each token `[T]`; weight t scales the loss of predicting token t.
    pub weights: Vec<f32>,
}

/// The loss of one document before the step it contributed to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocLoss {
    /// Position in the stream (over all epochs).
    pub index: usize,
    /// The document's id.
    pub id: String,
    /// Its weighted loss (Σ w·ℓ over its real targets, normalised as the config's reduction says
    /// for a batch of that document alone).
    pub loss: f64,
}

/// What an adaptation run did.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AdaptReport {
    /// Documents processed (over all epochs and invocations, skipped ones included).
    pub docs_done: usize,
    /// Optimizer steps taken.
    pub steps: usize,
    /// Loss of every document stepped on, in stream order.
    pub losses: Vec<DocLoss>,
    /// Ids of the documents skipped for a non-finite loss or gradient, each once (in the order
    /// first met, whatever the number of epochs).
    pub skipped: Vec<String>,
    /// Ids of the documents skipped for having fewer than 2 tokens (nothing to predict), each once.
    pub too_short: Vec<String>,
    /// The stream position this invocation resumed from (None: started fresh).
    pub resumed_from: Option<usize>,
    /// Whether the whole stream was processed (false after `stop_after`).
    pub finished: bool,
    /// Real tokens trained on in this invocation.
    pub tokens: usize,
    /// Wall time of this invocation, in seconds.
    pub seconds: f64,
}

/// Progress after each micro-batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Documents processed.
    pub done: usize,
    /// Documents in the run (stream length × epochs).
    pub total: usize,
    /// Mean loss of the last micro-batch (NaN when all its documents were skipped).
    pub loss: f64,
}

/// Run-level controls that are not part of the method.
#[derive(Default)]
pub struct RunControl<'a> {
    /// Folder of the resume checkpoint (written every `checkpoint_every` documents, read at start).
    pub checkpoint_dir: Option<PathBuf>,
    /// Stop after this many documents in this invocation (a time box; resume later).
    pub stop_after: Option<usize>,
    /// Called after every micro-batch.
    pub progress: Option<&'a mut dyn FnMut(Progress)>,
}

/// Adapts `model` on `docs` in order (see the module docs); resumes from `control.checkpoint_dir`
/// when it holds a checkpoint of this stream and configuration. The matrix products run at
/// `config.matmul_precision`; the model comes back with the precision it came in with.
pub fn adapt<B: AutodiffBackend>(
    model: BaseLm<B>,
    docs: &[WeightedDoc],
    config: &AdaptConfig,
    control: RunControl<'_>,
) -> Result<(BaseLm<B>, AdaptReport)> {
    config.validate()?;
    let precision = model.precision();
    let model = model.with_precision(config.matmul_precision);
    let (model, report) = match config.optimizer {
        OptimizerKind::Adam => {
            let optim = AdamConfig::new()
                .with_beta_1(config.beta1)
                .with_beta_2(config.beta2)
                .with_epsilon(config.epsilon)
                .with_grad_clipping(config.clipping())
                .init::<B, BaseLm<B>>();
            run(model, optim, docs, config, control)
        }
        OptimizerKind::Sgd => {
            let optim = SgdConfig::new().with_gradient_clipping(config.clipping()).init::<B, BaseLm<B>>();
            run(model, optim, docs, config, control)
        }
        OptimizerKind::AdaGrad => {
            let optim = AdaGradConfig::new()
                .with_epsilon(config.epsilon)
                .with_grad_clipping(config.clipping())
                .init::<B, BaseLm<B>>();
            run(model, optim, docs, config, control)
        }
        OptimizerKind::Adafactor => {
            let optim = AdafactorConfig { grad_clipping: config.clipping(), ..AdafactorConfig::default() }
                .init::<B, BaseLm<B>>();
            run(model, optim, docs, config, control)
        }
    }?;
    Ok((model.with_precision(precision), report))
}

/// The checkpoint's `state.json`: where the stream stands and which files hold the state.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CheckpointState {
    /// Next stream position (documents over all epochs).
    next: usize,
    steps: usize,
    losses: Vec<DocLoss>,
    skipped: Vec<String>,
    #[serde(default)]
    too_short: Vec<String>,
    /// Hash of the stream (document ids and tokens) and the number of documents.
    fingerprint: String,
    /// Hash of the starting model's parameter shapes and leading and trailing values.
    base: String,
    /// The stream's token weights as this run used them, f32 little-endian in stream order.
    weights_file: String,
    config: AdaptConfig,
    model_file: String,
    optim_file: String,
}

type Rec = NamedMpkBytesRecorder<FullPrecisionSettings>;

/// The checkpoint file holding the stream's token weights.
const WEIGHTS_FILE: &str = "weights.f32";

/// FNV-1a, 64 bits.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
    fn eat(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Hash of the documents' ids and tokens, and their number. Weights are not in it: they are
/// recomputed by the caller, which on a GPU need not repeat bit for bit; the checkpoint keeps
/// the weights the run used instead (see [`resume_weights`]).
fn fingerprint(docs: &[WeightedDoc]) -> String {
    let mut h = Fnv::new();
    for d in docs {
        h.eat(d.id.as_bytes());
        d.ids.iter().for_each(|t| h.eat(&t.to_le_bytes()));
        h.eat(&[0xff]);
    }
    format!("{:016x}-{}", h.0, docs.len())
}

/// Hash of `model`'s parameter shapes and first and last 8 values of each (copies, no arithmetic,
/// so the same on every backend): tells one base model from another without reading it all.
fn base_fingerprint<B: Backend, M: Module<B>>(model: &M) -> String {
    struct Visitor(Fnv);
    impl<B: Backend> burn::module::ModuleVisitor<B> for Visitor {
        fn visit_float<const D: usize>(&mut self, p: &burn::module::Param<Tensor<B, D>>) {
            let t = p.val();
            let dims = t.dims();
            dims.iter().for_each(|d| self.0.eat(&(*d as u64).to_le_bytes()));
            let n: usize = dims.iter().product();
            let flat = t.reshape([n]); // [n]
            let k = n.min(8);
            for part in [flat.clone().narrow(0, 0, k), flat.narrow(0, n - k, k)] {
                let values = part.into_data().convert::<f32>().to_vec::<f32>().expect("f32 parameters");
                values.iter().for_each(|v| self.0.eat(&v.to_bits().to_le_bytes()));
            }
        }
    }
    let mut visitor = Visitor(Fnv::new());
    model.visit(&mut visitor);
    format!("{:016x}", visitor.0.0)
}

/// Largest difference between two weights tolerated on resume, relative to the largest weight:
/// recomputation on a GPU may differ in the last bits, not more.
const WEIGHT_TOLERANCE: f32 = 1e-3;

/// The weights a resumed run continues with: those stored in the checkpoint (bit for bit what the
/// interrupted run used), after checking that `docs`' recomputed ones agree within
/// [`WEIGHT_TOLERANCE`].
fn resume_weights(path: &Path, docs: &[WeightedDoc]) -> Result<Vec<WeightedDoc>> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    let total: usize = docs.iter().map(|d| d.weights.len()).sum();
    if bytes.len() != 4 * total {
        return Err(MetaError::CheckpointMismatch {
            path: path.into(),
            reason: format!("{} weights stored, {} in this stream", bytes.len() / 4, total),
        });
    }
    let mut stored = bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
    let scale = docs.iter().flat_map(|d| &d.weights).fold(0f32, |m, w| m.max(w.abs())).max(1e-12);
    let mut out = Vec::with_capacity(docs.len());
    for d in docs {
        let weights: Vec<f32> = stored.by_ref().take(d.weights.len()).collect();
        // The largest difference, NaN if any weight is NaN on one side only.
        let diff = weights.iter().zip(&d.weights).fold(0f32, |m, (a, b)| {
            let d = if a.to_bits() == b.to_bits() { 0.0 } else { (a - b).abs() };
            if d.is_nan() || d > m { d } else { m }
        });
        if diff.is_nan() || diff > WEIGHT_TOLERANCE * scale {
            return Err(MetaError::CheckpointMismatch {
                path: path.into(),
                reason: format!(
                    "the token weights of document `{}` differ from the checkpoint's by up to {diff:e} \
                     (another weighting strategy or model?)",
                    d.id
                ),
            });
        }
        out.push(WeightedDoc { id: d.id.clone(), ids: d.ids.clone(), weights });
    }
    Ok(out)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> MetaError + '_ {
    move |source| MetaError::Io { path: path.into(), source }
}

fn recorder_error(path: &Path, e: impl std::fmt::Display) -> MetaError {
    MetaError::Parse { path: path.into(), field: "-".into(), message: e.to_string() }
}

/// The error for a checkpoint written with `saved` resumed with `now`: every differing field named
/// with both values, and how to start afresh.
fn config_mismatch(state_path: PathBuf, saved: &AdaptConfig, now: &AdaptConfig) -> MetaError {
    let (a, b) = (serde_json::to_value(saved).unwrap_or_default(), serde_json::to_value(now).unwrap_or_default());
    let mut fields = Vec::new();
    if let (Some(a), Some(b)) = (a.as_object(), b.as_object()) {
        for (key, value) in a {
            let other = b.get(key).cloned().unwrap_or_default();
            if *value != other {
                fields.push(format!("{key} = {value} in the checkpoint, {other} now"));
            }
        }
    }
    let dir = state_path.parent().map(Path::to_path_buf).unwrap_or_default();
    MetaError::CheckpointMismatch {
        path: state_path,
        reason: format!(
            "the adaptation config differs ({}); rerun with the checkpoint's settings to resume, or delete {} \
             (or pick another --out) to start afresh",
            fields.join("; "),
            dir.display()
        ),
    }
}

/// Checks, before any work, that the resume checkpoint in `dir` (if any) was written with `config`;
/// [`adapt`] checks it again, with the stream and base, when it loads it.
pub fn check_resumable(dir: &Path, config: &AdaptConfig) -> Result<()> {
    match read_state(dir)? {
        Some((state_path, state)) if &state.config != config => Err(config_mismatch(state_path, &state.config, config)),
        _ => Ok(()),
    }
}

/// The checkpoint's `state.json` in `dir` and its path, or `None` when there is no checkpoint.
fn read_state(dir: &Path) -> Result<Option<(PathBuf, CheckpointState)>> {
    let state_path = dir.join("state.json");
    if !state_path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&state_path).map_err(io(&state_path))?;
    let state = serde_json::from_str(&text).map_err(|e| recorder_error(&state_path, e))?;
    Ok(Some((state_path, state)))
}

/// Whether every float parameter of `model` is finite (a diverged model is never saved).
pub fn params_finite<B: Backend, M: Module<B>>(model: &M) -> bool {
    struct Finite(bool);
    impl<B: Backend> burn::module::ModuleVisitor<B> for Finite {
        fn visit_float<const D: usize>(&mut self, p: &burn::module::Param<Tensor<B, D>>) {
            if self.0 {
                // p − p is 0 where p is finite and NaN where it is infinite or NaN.
                let value = p.val();
                self.0 = (value.clone() - value).sum().into_scalar().elem::<f64>().is_finite();
            }
        }
    }
    let mut visitor = Finite(true);
    model.visit(&mut visitor);
    visitor.0
}

/// Reads the checkpoint in `dir` (if any) into `model` and `optim`.
fn load_checkpoint<B: AutodiffBackend, O: Optimizer<BaseLm<B>, B>>(
    dir: &Path,
    model: BaseLm<B>,
    optim: O,
    config: &AdaptConfig,
    fingerprint: &str,
    base: &str,
) -> Result<(BaseLm<B>, O, Option<CheckpointState>)> {
    let Some((state_path, state)) = read_state(dir)? else {
        return Ok((model, optim, None));
    };
    if state.fingerprint != fingerprint {
        return Err(MetaError::CheckpointMismatch {
            path: state_path,
            reason: format!("stream {} here, {} in the checkpoint", fingerprint, state.fingerprint),
        });
    }
    if state.base != base {
        return Err(MetaError::CheckpointMismatch {
            path: state_path,
            reason: format!("it continues base model {}, this run starts from {base}", state.base),
        });
    }
    if &state.config != config {
        return Err(config_mismatch(state_path, &state.config, config));
    }
    let device = model.devices().into_iter().next().expect("a model on a device");
    let model_path = dir.join(&state.model_file);
    let bytes = std::fs::read(&model_path).map_err(io(&model_path))?;
    let record = Recorder::<B>::load(&Rec::default(), bytes, &device).map_err(|e| recorder_error(&model_path, e))?;
    let model = model.load_record(record);
    let optim_path = dir.join(&state.optim_file);
    let bytes = std::fs::read(&optim_path).map_err(io(&optim_path))?;
    let record = Recorder::<B>::load(&Rec::default(), bytes, &device).map_err(|e| recorder_error(&optim_path, e))?;
    let optim = optim.load_record(record);
    Ok((model, optim, Some(state)))
}

/// Writes model and optimizer records, then `state.json` (the commit point), all atomically, and
/// removes the previous checkpoint's files.
fn save_checkpoint<B: AutodiffBackend, O: Optimizer<BaseLm<B>, B>>(
    dir: &Path,
    model: &BaseLm<B>,
    optim: &O,
    weights: Option<&[WeightedDoc]>,
    mut state: CheckpointState,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    if let Some(docs) = weights {
        // The stream's weights, before the state that names them (once per run: they never change).
        let bytes: Vec<u8> = docs.iter().flat_map(|d| &d.weights).flat_map(|w| w.to_le_bytes()).collect();
        write_atomic(&dir.join(&state.weights_file), &bytes)?;
    }
    state.model_file = format!("model-{:09}.mpk", state.next);
    state.optim_file = format!("optim-{:09}.mpk", state.next);
    let model_path = dir.join(&state.model_file);
    let bytes = Recorder::<B>::record(&Rec::default(), model.clone().into_record(), ())
        .map_err(|e| recorder_error(&model_path, e))?;
    write_atomic(&model_path, &bytes)?;
    let optim_path = dir.join(&state.optim_file);
    let bytes =
        Recorder::<B>::record(&Rec::default(), optim.to_record(), ()).map_err(|e| recorder_error(&optim_path, e))?;
    write_atomic(&optim_path, &bytes)?;
    let state_path = dir.join("state.json");
    let json = serde_json::to_vec_pretty(&state).map_err(|e| recorder_error(&state_path, e))?;
    write_atomic(&state_path, &json)?;
    for entry in std::fs::read_dir(dir).map_err(io(dir))?.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let stale = (name.starts_with("model-") || name.starts_with("optim-"))
            && name.ends_with(".mpk")
            && name != state.model_file
            && name != state.optim_file;
        if stale {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(())
}

/// A right-padded micro-batch as tensors: ids `[B, T]`, weights `[B, T]`, mask `[B, T]`.
fn batch_tensors<B: Backend>(
    docs: &[&WeightedDoc],
    max_len: usize,
    pad: u32,
    device: &B::Device,
) -> (Tensor<B, 2, Int>, Tensor<B, 2>, Tensor<B, 2>) {
    let len = docs.iter().map(|d| d.ids.len().min(max_len)).max().unwrap_or(0);
    let n = docs.len();
    let mut ids = vec![i64::from(pad); n * len];
    let mut weights = vec![0f32; n * len];
    let mut mask = vec![0f32; n * len];
    for (b, d) in docs.iter().enumerate() {
        let t = d.ids.len().min(max_len);
        for i in 0..t {
            ids[b * len + i] = i64::from(d.ids[i]);
            weights[b * len + i] = d.weights[i];
            mask[b * len + i] = 1.0;
        }
    }
    (
        Tensor::from_data(TensorData::new(ids, [n, len]), device),
        Tensor::from_data(TensorData::new(weights, [n, len]), device),
        Tensor::from_data(TensorData::new(mask, [n, len]), device),
    )
}

/// Per-row weighted losses `[B]` on the host, each normalised as `reduction` would for that row alone.
fn row_losses<B: Backend>(
    token_loss: Tensor<B, 2>,
    weights: Tensor<B, 2>,
    mask: Tensor<B, 2>,
    reduction: Reduction,
) -> Vec<f64> {
    let [batch, len] = mask.dims();
    let target_mask = mask.narrow(1, 1, len - 1); // [B, T−1]
    let sums = (token_loss * weights.narrow(1, 1, len - 1) * target_mask.clone()).sum_dim(1); // [B, 1]
    let denominators = match reduction {
        Reduction::MeanPadded => vec![(len - 1) as f64; batch],
        Reduction::MeanReal => {
            to_f64(target_mask.sum_dim(1).reshape([batch])).into_iter().map(|v| v.max(1.0)).collect()
        }
    };
    to_f64(sums.reshape([batch])).into_iter().zip(denominators).map(|(s, d)| s / d).collect()
}

fn run<B: AutodiffBackend, O: Optimizer<BaseLm<B>, B>>(
    mut model: BaseLm<B>,
    mut optim: O,
    docs: &[WeightedDoc],
    config: &AdaptConfig,
    mut control: RunControl<'_>,
) -> Result<(BaseLm<B>, AdaptReport)> {
    let started = Instant::now();
    let device = model.devices().into_iter().next().expect("a model on a device");
    let total = docs.len() * config.epochs;
    let fingerprint = fingerprint(docs);
    let base = if control.checkpoint_dir.is_some() { base_fingerprint(&model) } else { String::new() };
    let mut report = AdaptReport::default();
    let mut next = 0;
    let mut restored = None;
    if let Some(dir) = &control.checkpoint_dir {
        let (m, o, state) = load_checkpoint(dir, model, optim, config, &fingerprint, &base)?;
        model = m;
        optim = o;
        if let Some(state) = state {
            restored = Some(resume_weights(&dir.join(&state.weights_file), docs)?);
            tracing::info!(next = state.next, steps = state.steps, "resuming from {}", dir.display());
            next = state.next;
            report.steps = state.steps;
            report.losses = state.losses;
            report.skipped = state.skipped;
            report.too_short = state.too_short;
            report.resumed_from = Some(next);
        }
    }
    let mut weights_saved = restored.is_some();
    let docs: &[WeightedDoc] = restored.as_deref().unwrap_or(docs);
    let pad = 0u32;
    let max_len = config.max_doc_tokens.min(model.max_positions()); // the context bounds documents
    let mut accumulator = GradientsAccumulator::<BaseLm<B>>::new();
    let mut pending = 0usize; // micro-batches accumulated since the last step
    let mut accumulated_any = false;
    let mut last_checkpoint = next;
    let mut done_here = 0usize;
    while next < total {
        // Stop only between optimizer steps, so that no accumulated gradient is lost.
        if pending == 0 && control.stop_after.is_some_and(|limit| done_here >= limit) {
            break;
        }
        let end = (next + config.batch_size).min(total);
        let mut rows: Vec<(usize, &WeightedDoc)> = (next..end).map(|u| (u, &docs[u % docs.len()])).collect();
        rows.retain(|(u, d)| {
            let keep = d.ids.len() >= 2;
            if !keep {
                tracing::warn!(doc = %d.id, position = u, "document shorter than 2 tokens: skipped");
                note_once(&mut report.too_short, &d.id);
            }
            keep
        });
        let mut batch_loss = f64::NAN;
        while !rows.is_empty() {
            let refs: Vec<&WeightedDoc> = rows.iter().map(|(_, d)| *d).collect();
            let (ids, weights, mask) = batch_tensors::<B>(&refs, max_len, pad, &device);
            let token_loss = token_cross_entropy(model.forward(ids.clone()), ids); // [B, T−1]
            let per_row = row_losses(token_loss.clone().detach(), weights.clone(), mask.clone(), config.reduction);
            let bad: Vec<usize> = (0..per_row.len()).filter(|&i| !per_row[i].is_finite()).collect();
            if !bad.is_empty() {
                for &i in bad.iter().rev() {
                    let (u, d) = rows.remove(i);
                    tracing::warn!(doc = %d.id, position = u, loss = per_row[i], "non-finite loss: document skipped");
                    note_once(&mut report.skipped, &d.id);
                }
                continue;
            }
            let loss = weighted_loss(token_loss, weights, mask, config.reduction) / config.grad_accumulation as f64; // [1]
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            // A finite loss can still overflow in the backward pass; never step on such a gradient.
            if !grads_finite(&model, &grads) {
                for (u, d) in &rows {
                    tracing::warn!(doc = %d.id, position = u, "non-finite gradient: micro-batch skipped");
                    note_once(&mut report.skipped, &d.id);
                }
                break;
            }
            batch_loss = per_row.iter().sum::<f64>() / per_row.len() as f64;
            for ((u, d), l) in rows.iter().zip(&per_row) {
                report.losses.push(DocLoss { index: *u, id: d.id.clone(), loss: *l });
                report.tokens += d.ids.len().min(max_len);
            }
            accumulator.accumulate(&model, grads);
            accumulated_any = true;
            break;
        }
        pending += 1;
        done_here += end - next;
        next = end;
        if pending == config.grad_accumulation || next == total {
            if accumulated_any {
                model = optim.step(config.lr, model, accumulator.grads());
                report.steps += 1;
            }
            pending = 0;
            accumulated_any = false;
            if let Some(dir) = &control.checkpoint_dir
                && config.checkpoint_every > 0
                && next / config.checkpoint_every > last_checkpoint / config.checkpoint_every
            {
                let state = CheckpointState {
                    next,
                    steps: report.steps,
                    losses: report.losses.clone(),
                    skipped: report.skipped.clone(),
                    too_short: report.too_short.clone(),
                    fingerprint: fingerprint.clone(),
                    base: base.clone(),
                    weights_file: WEIGHTS_FILE.into(),
                    config: config.clone(),
                    model_file: String::new(),
                    optim_file: String::new(),
                };
                save_checkpoint(dir, &model, &optim, (!weights_saved).then_some(docs), state)?;
                weights_saved = true;
                last_checkpoint = next;
                tracing::debug!(next, "checkpoint written to {}", dir.display());
            }
        }
        if let Some(progress) = control.progress.as_mut() {
            progress(Progress { done: next, total, loss: batch_loss });
        }
    }
    report.docs_done = next;
    report.finished = next == total;
    report.seconds = started.elapsed().as_secs_f64();
    Ok((model, report))
}

/// Appends `id` to `ids` unless it is there already (a document is reported once, not per epoch).
fn note_once(ids: &mut Vec<String>, id: &str) {
    if !ids.iter().any(|x| x == id) {
        ids.push(id.to_string());
    }
}

/// Whether every gradient in `grads` (for the parameters of `model`) is finite.
pub fn grads_finite<B: AutodiffBackend, M: AutodiffModule<B>>(model: &M, grads: &GradientsParams) -> bool {
    struct Finite<'a, B: AutodiffBackend> {
        grads: &'a GradientsParams,
        finite: bool,
        _backend: std::marker::PhantomData<B>,
    }
    impl<B: AutodiffBackend> burn::module::ModuleVisitor<B> for Finite<'_, B> {
        fn visit_float<const D: usize>(&mut self, p: &burn::module::Param<Tensor<B, D>>) {
            if let Some(g) = self.grads.get::<B::InnerBackend, D>(p.id) {
                // g − g is 0 where g is finite and NaN where it is infinite or NaN.
                let probe = (g.clone() - g).sum().into_scalar().elem::<f64>();
                self.finite &= probe.is_finite();
            }
        }
    }
    let mut visitor = Finite::<B> { grads, finite: true, _backend: std::marker::PhantomData };
    model.visit(&mut visitor);
    visitor.finite
}

/// The adapted model without its autodiff wrapper, for evaluation and saving.
pub fn inference_model<B: AutodiffBackend>(model: &BaseLm<B>) -> BaseLm<B::InnerBackend> {
    model.valid()
}
