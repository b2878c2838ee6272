//! The meta-training run configuration: TOML with sections `[data] [base] [weighting] [inner]
//! [outer] [run]`, every key defaulted to the paper's value where the paper gives one, unknown keys
//! rejected by name, any key overridable with `--set section.key=value`.
//!
//! ```
//! use camels_meta::config::MetaTrainConfig;
//! let config = MetaTrainConfig::from_toml_str("[inner]\nupdate_batch_size = 2\n", "inline", &["outer.grad_acc=1".into()])
//!     .unwrap();
//! assert_eq!((config.inner.update_batch_size, config.outer.grad_acc, config.inner.reset_base_every), (2, 1, 24));
//! let err = MetaTrainConfig::from_toml_str("[inner]\nlearning_rate = 1\n", "inline", &[]).unwrap_err();
//! assert!(err.to_string().contains("learning_rate"));
//! ```

use std::path::{Path, PathBuf};

use camels_model::base::BaseConfig;
use camels_model::base::MatmulPrecision;
use camels_model::gpt2::Gpt2Config;
use camels_model::llama::LlamaConfig;
use camels_model::loss::Reduction;
use camels_model::weighting::{WeightActivation, WeightingModelConfig};
use serde::{Deserialize, Serialize};

use crate::error::MetaError;
use crate::metagrad::{InnerStep, MetaGradMode};

/// The whole run configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct MetaTrainConfig {
    /// Where the documents, questions and unrelated text come from.
    pub data: DataSection,
    /// The base LM (pristine θ₀) and its tokenizer.
    pub base: BaseSection,
    /// The weighting model φ.
    pub weighting: WeightingSection,
    /// The inner loop: weighted SGD of the base LM.
    pub inner: InnerSection,
    /// The outer loop: Adam on φ.
    pub outer: OuterSection,
    /// Length, validation, checkpoints.
    pub run: RunSection,
}

/// `[data]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataSection {
    /// Meta-training documents with questions (any format `camels_data::read_any` reads).
    pub train: PathBuf,
    /// Held-out documents with questions for validation.
    pub val: PathBuf,
    /// Unrelated text for the locality (KL) term.
    pub locality: PathBuf,
    /// Longest document, in tokens; documents are padded to it (the paper's `max_length` padding).
    pub max_doc_tokens: usize,
    /// Questions per document in the outer loss (0: all of them; sampled per step otherwise).
    pub questions_per_doc: usize,
    /// Longest QA row "question answer<eos>", in tokens.
    pub qa_max_len: usize,
    /// Whether the end of sequence after the answer is a target of the outer QA loss (the paper's
    /// `include_eos`). On a QA-tuned web-pretrained base, steps on documents raise that one token's
    /// NLL for every answer (BENCHMARKS.md, SmolLM2), so `false` keeps the outer loss on the answers.
    pub qa_include_eos: bool,
    /// Length of a locality window, in tokens.
    pub locality_tokens: usize,
    /// Locality windows per meta-step.
    pub locality_batch_size: usize,
    /// Validation documents (rounded down to a multiple of `inner.update_batch_size`).
    pub val_docs: usize,
}

impl Default for DataSection {
    fn default() -> Self {
        Self {
            train: PathBuf::new(),
            val: PathBuf::new(),
            locality: PathBuf::new(),
            max_doc_tokens: 1024,
            questions_per_doc: 1,
            qa_max_len: 128,
            qa_include_eos: true,
            locality_tokens: 128,
            locality_batch_size: 2,
            val_docs: 48,
        }
    }
}

/// `[base]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct BaseSection {
    /// HF-layout directory: `config.json`, `model.safetensors`, `tokenizer.json` (or vocab + merges).
    pub path: PathBuf,
}

/// `[weighting]`: a GPT-2 trunk (a preset, optionally resized) and the MLP head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WeightingSection {
    /// Trunk preset: `base` (the base LM's own architecture, cut to `n_layer` blocks: start it from the
    /// base with `init_from`), a GPT-2 preset (`distilgpt2`, `gpt2`, `tiny`, …) or a Llama one
    /// (`smollm2-135m`, `tiny-llama`, …); the vocabulary always comes from the base.
    pub preset: String,
    /// Override of the preset's number of blocks (0: keep).
    pub n_layer: usize,
    /// Override of the preset's hidden size (0: keep).
    pub n_embd: usize,
    /// Override of the preset's number of heads (0: keep).
    pub n_head: usize,
    /// Override of the preset's number of positions (0: keep).
    pub n_positions: usize,
    /// A GPT-2 checkpoint (directory or `.safetensors`) to start the trunk from; empty: random.
    pub init_from: PathBuf,
    /// Hidden size of the head's MLP.
    pub head_hidden: usize,
    /// Output activation.
    pub activation: WeightActivation,
    /// β of the softplus.
    pub softplus_beta: f64,
    /// Rescale each document's weights to mean 1.
    pub normalize: bool,
    /// Train the head only.
    pub freeze_trunk: bool,
}

impl Default for WeightingSection {
    fn default() -> Self {
        Self {
            preset: "distilgpt2".into(),
            n_layer: 0,
            n_embd: 0,
            n_head: 0,
            n_positions: 0,
            init_from: PathBuf::new(),
            head_hidden: 128,
            activation: WeightActivation::Softplus,
            softplus_beta: 3.0,
            normalize: false,
            freeze_trunk: false,
        }
    }
}

/// Which question–answer pairs the control term of J holds (`outer.control`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ControlKind {
    /// The questions (with their own answers) of `inner.update_batch_size` other training
    /// documents, which the inner loop does not see: J rewards what the steps teach about their
    /// own documents' answers and not what they teach every answer.
    #[default]
    OtherDocuments,
    /// The step's own questions, each paired with an answer of the next document of the step (its
    /// questions' answers in turn): J rewards raising the gold answer of a question over another
    /// answer the steps also saw, the fact gain that adaptation reports (gold gain − swapped gain),
    /// so weights that make every answer of the stream more likely, whatever the question, earn
    /// nothing.
    SwappedAnswers,
}

/// How dJ/dw is computed (see [`MetaGradMode`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum GradMode {
    /// One double backward per inner step.
    #[default]
    Exact,
    /// Central differences along λ (first-order autodiff only).
    CentralDifference,
    /// No Hessian term.
    FirstOrder,
}

impl GradMode {
    /// The meta-gradient mode this names.
    pub fn to_mode(self) -> MetaGradMode {
        match self {
            Self::Exact => MetaGradMode::Exact,
            Self::CentralDifference => MetaGradMode::central_difference(),
            Self::FirstOrder => MetaGradMode::first_order(),
        }
    }
}

/// `[inner]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InnerSection {
    /// K: documents per meta-step.
    pub update_batch_size: usize,
    /// α of the inner step.
    pub inner_lr: f64,
    /// The inner update rule: `sgd` (the paper's), `normalized` (α√P ∇L/‖∇L‖, a step of RMS α
    /// per parameter as Adam's first one, whatever the weights) or `adam` (Adam at α from fresh
    /// moments over the K documents, as adaptation steps); the last two need
    /// `grad_mode = "first_order"`.
    pub step: InnerStep,
    /// Reset the carried base LM to θ₀ after this many documents.
    pub reset_base_every: usize,
    /// Normalisation of the weighted inner loss.
    pub reduction: Reduction,
    /// How the meta-gradient is computed.
    pub grad_mode: GradMode,
    /// Keep θ_k for every `store_theta_every`-th inner step and recompute the others in the adjoint
    /// sweep: 1 keeps all K (the fastest); K keeps θ₀ only, which saves K − 2 base-LM copies for
    /// K(K−1)/2 extra first-order steps; more than K also recomputes θ_K after the sweep (one more
    /// copy saved, K more steps). On a deterministic backend (the CPU one is tested) the
    /// meta-gradient is the same bit for bit; it may change on resume.
    pub store_theta_every: usize,
    /// Element type of the base LM's matrix products in the inner steps, the meta-gradient and
    /// validation (`f32`, or `bf16` with the exact `grad_mode`; see [`MatmulPrecision`]). The
    /// weighting model stays f32.
    pub matmul_precision: MatmulPrecision,
}

impl Default for InnerSection {
    fn default() -> Self {
        Self {
            update_batch_size: 6,
            inner_lr: 5e-4,
            step: InnerStep::Sgd,
            reset_base_every: 24,
            reduction: Reduction::MeanPadded,
            grad_mode: GradMode::Exact,
            store_theta_every: 1,
            matmul_precision: MatmulPrecision::F32,
        }
    }
}

/// `[outer]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OuterSection {
    /// Adam learning rate on φ.
    pub outer_lr: f64,
    /// Meta-steps whose φ-gradients are averaged into one Adam step.
    pub grad_acc: usize,
    /// Weight of the locality KL in J.
    pub c_kl: f64,
    /// Weight of the control questions' NLL that J subtracts (0: the paper's J). The control
    /// questions are those of `inner.update_batch_size` other training documents, which the inner
    /// loop does not see, so J rewards what the steps teach about their own documents' answers
    /// and not what they teach every answer.
    pub c_control: f64,
    /// What the control questions are: `other_documents` (the default) or `swapped_answers`.
    pub control: ControlKind,
    /// Hinge the control term: J subtracts c_control · min(control NLL after, before), so that
    /// steps which make the control answers less likely earn nothing (without it they lower J).
    pub control_hinge: bool,
    /// Clip each φ-gradient tensor to this L2 norm (0: no clipping). burn 0.21's optimizers clip per
    /// parameter tensor, not by the global norm over all tensors as PyTorch's `clip_grad_norm_` does.
    pub clip_norm: f64,
    /// Adam β₁.
    pub beta_1: f32,
    /// Adam β₂.
    pub beta_2: f32,
    /// Adam ε.
    pub epsilon: f32,
}

impl Default for OuterSection {
    fn default() -> Self {
        Self {
            outer_lr: 1e-5,
            grad_acc: 4,
            c_kl: 0.1,
            c_control: 0.0,
            control: ControlKind::OtherDocuments,
            control_hinge: false,
            clip_norm: 1.0,
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-5,
        }
    }
}

/// `[run]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunSection {
    /// Seed of φ's initialisation and of every sample the loop draws.
    pub seed: u64,
    /// Meta-steps in the whole run (each takes K documents).
    pub steps: usize,
    /// Stop this process after this global meta-step (0: run to `steps`), writing a checkpoint;
    /// a later run in the same directory resumes from it.
    pub stop_after: usize,
    /// Validate (and write the weight pages) every this many meta-steps, and at the end.
    pub val_every: usize,
    /// Write the `last` checkpoint every this many meta-steps, and at the end.
    pub checkpoint_every: usize,
    /// Validation documents drawn in the weight pages (HTML and PNG).
    pub viz_docs: usize,
}

impl Default for RunSection {
    fn default() -> Self {
        Self { seed: 0, steps: 4000, stop_after: 0, val_every: 200, checkpoint_every: 200, viz_docs: 4 }
    }
}

fn config_error(path: &Path, field: &str, reason: impl Into<String>) -> MetaError {
    MetaError::Config { path: path.into(), field: field.into(), reason: reason.into() }
}

/// Sets `key` (dotted: `outer.grad_acc`) in a TOML table to `value`, parsed as a TOML value
/// (`1e-5`, `true`, `"text"`) or taken as a string when it does not parse.
pub fn apply_override(table: &mut toml::Table, assignment: &str) -> Result<(), MetaError> {
    apply_override_with(table, assignment, None)
}

/// [`apply_override`], where `defaults` (the serialised defaults) also tells which keys hold
/// strings when `table` (a user's file) does not set them.
pub fn apply_override_with(
    table: &mut toml::Table,
    assignment: &str,
    defaults: Option<&toml::Table>,
) -> Result<(), MetaError> {
    let origin = Path::new("--set");
    let (key, raw) =
        assignment.split_once('=').ok_or_else(|| config_error(origin, assignment, "expected key=value"))?;
    let (key, raw) = (key.trim(), raw.trim());
    let value = match format!("v = {raw}").parse::<toml::Table>() {
        Ok(mut t) => t.remove("v").expect("the key just written"),
        Err(_) => toml::Value::String(raw.to_string()),
    };
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(config_error(origin, key, "empty key segment"));
    }
    let (mut node, mut default_node) = (table, defaults);
    for part in &parts[..parts.len() - 1] {
        default_node = default_node.and_then(|d| d.get(*part)?.as_table());
        let entry = node.entry(part.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        node = entry.as_table_mut().ok_or_else(|| config_error(origin, key, format!("`{part}` is not a section")))?;
    }
    let last = parts[parts.len() - 1];
    // A field that holds a string (here or in the defaults) keeps the raw text
    // (`--set data.train=2024.jsonl`, `name=true`) rather than whatever else TOML would read it as.
    let holds_str = |t: Option<&toml::Table>| t.and_then(|t| t.get(last)).is_some_and(toml::Value::is_str);
    let value = if !value.is_str() && (holds_str(Some(&*node)) || holds_str(default_node)) {
        toml::Value::String(raw.to_string())
    } else {
        value
    };
    node.insert(last.to_string(), value);
    Ok(())
}

/// The first key of `table` (dotted) that is not a field of [`MetaTrainConfig`], if any.
fn unknown_key(table: &toml::Table, reference: &toml::Table) -> Option<String> {
    fn walk(table: &toml::Table, reference: &toml::Table, prefix: &str) -> Option<String> {
        for (key, value) in table {
            let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
            match (value, reference.get(key)) {
                (_, None) => return Some(path),
                (toml::Value::Table(sub), Some(toml::Value::Table(sub_ref))) => {
                    if let Some(found) = walk(sub, sub_ref, &path) {
                        return Some(found);
                    }
                }
                _ => {}
            }
        }
        None
    }
    walk(table, reference, "")
}

impl MetaTrainConfig {
    /// Parses TOML text (`origin` names it in errors), applies `--set` overrides, validates.
    pub fn from_toml_str(text: &str, origin: &str, overrides: &[String]) -> Result<Self, MetaError> {
        let path = Path::new(origin);
        let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| config_error(path, "", e.message()))?;
        let defaults = toml::Table::try_from(Self::default()).expect("the default config serialises");
        for assignment in overrides {
            apply_override_with(&mut table, assignment, Some(&defaults))?;
        }
        if let Some(key) = unknown_key(&table, &defaults) {
            let source = if overrides.iter().any(|o| o.split('=').next().map(str::trim) == Some(key.as_str())) {
                Path::new("--set")
            } else {
                path
            };
            return Err(config_error(source, &key, "unknown key"));
        }
        let config: Self = serde_path_to_error::deserialize(toml::Value::Table(table))
            .map_err(|e| config_error(path, &e.path().to_string(), e.inner().message()))?;
        config.validate(path)?;
        Ok(config)
    }

    /// Reads a TOML file and applies `--set` overrides.
    pub fn from_file(path: &Path, overrides: &[String]) -> Result<Self, MetaError> {
        let text = std::fs::read_to_string(path).map_err(|source| MetaError::Io { path: path.into(), source })?;
        Self::from_toml_str(&text, &path.display().to_string(), overrides)
    }

    /// The resolved configuration as TOML (saved as `config.toml` in every run directory).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("the config serialises")
    }

    /// Checks that the values work together.
    pub fn validate(&self, path: &Path) -> Result<(), MetaError> {
        let positive = [
            ("inner.update_batch_size", self.inner.update_batch_size),
            ("inner.reset_base_every", self.inner.reset_base_every),
            ("inner.store_theta_every", self.inner.store_theta_every),
            ("outer.grad_acc", self.outer.grad_acc),
            ("run.steps", self.run.steps),
            ("run.val_every", self.run.val_every),
            ("run.checkpoint_every", self.run.checkpoint_every),
            ("data.max_doc_tokens", self.data.max_doc_tokens),
            ("data.qa_max_len", self.data.qa_max_len),
            ("data.locality_tokens", self.data.locality_tokens),
            ("data.locality_batch_size", self.data.locality_batch_size),
        ];
        for (field, value) in positive {
            if value == 0 {
                return Err(config_error(path, field, "must be positive"));
            }
        }
        for (field, value) in
            [("run.checkpoint_every", self.run.checkpoint_every), ("run.stop_after", self.run.stop_after)]
        {
            if !value.is_multiple_of(self.outer.grad_acc) {
                return Err(config_error(
                    path,
                    field,
                    format!(
                        "{value} is not a multiple of outer.grad_acc {} (checkpoints fall between Adam steps)",
                        self.outer.grad_acc
                    ),
                ));
            }
        }
        if !self.run.steps.is_multiple_of(self.outer.grad_acc) {
            return Err(config_error(
                path,
                "run.steps",
                format!(
                    "{} is not a multiple of outer.grad_acc {} (the last accumulation would be dropped)",
                    self.run.steps, self.outer.grad_acc
                ),
            ));
        }
        if !self.inner.reset_base_every.is_multiple_of(self.inner.update_batch_size) {
            return Err(config_error(
                path,
                "inner.reset_base_every",
                format!(
                    "{} is not a multiple of inner.update_batch_size {} (the base is reset between meta-steps)",
                    self.inner.reset_base_every, self.inner.update_batch_size
                ),
            ));
        }
        if self.data.val_docs < self.inner.update_batch_size {
            return Err(config_error(path, "data.val_docs", "fewer than inner.update_batch_size"));
        }
        for (field, value) in [("inner.inner_lr", self.inner.inner_lr), ("outer.outer_lr", self.outer.outer_lr)] {
            if !(value.is_finite() && value > 0.0) {
                return Err(config_error(path, field, format!("{value} must be positive and finite")));
            }
        }
        if !(self.outer.c_control.is_finite() && self.outer.c_control >= 0.0) {
            return Err(config_error(
                path,
                "outer.c_control",
                format!("{} must be finite and not negative", self.outer.c_control),
            ));
        }
        if self.outer.c_control > 0.0
            && self.outer.control == ControlKind::SwappedAnswers
            && self.inner.update_batch_size < 2
        {
            return Err(config_error(
                path,
                "outer.control",
                "swapped_answers pairs each document's questions with another document's answers: \
                 inner.update_batch_size must be at least 2",
            ));
        }
        if self.outer.c_control > 0.0 && self.data.train.as_os_str().is_empty() {
            return Err(config_error(path, "outer.c_control", "control questions need data.train"));
        }
        if !is_trunk_preset(&self.weighting.preset) {
            return Err(config_error(path, "weighting.preset", format!("unknown preset `{}`", self.weighting.preset)));
        }
        if self.inner.step != InnerStep::Sgd && self.inner.grad_mode != GradMode::FirstOrder {
            return Err(config_error(
                path,
                "inner.step",
                format!("the {:?} step's meta-gradient is first order only (inner.grad_mode)", self.inner.step),
            ));
        }
        match (self.inner.matmul_precision, self.inner.grad_mode) {
            (MatmulPrecision::F32, _) | (MatmulPrecision::Bf16, GradMode::Exact) => {}
            (MatmulPrecision::F16, _) => {
                return Err(config_error(path, "inner.matmul_precision", "f16 needs loss scaling; use f32 or bf16"));
            }
            (MatmulPrecision::Bf16, _) => {
                // A difference step of 1e-4·‖θ‖ is below bf16's rounding of the weights it shifts.
                return Err(config_error(path, "inner.grad_mode", "differences drown in bf16 rounding; use exact"));
            }
        }
        Ok(())
    }

    /// The weighting model's configuration for a base LM `base` (its vocabulary and EOS; its whole
    /// architecture with the `base` preset).
    pub fn weighting_model(&self, base: &BaseConfig) -> WeightingModelConfig {
        let w = &self.weighting;
        let keep = |over: usize, value: usize| if over == 0 { value } else { over };
        let trunk = if w.preset == "base" {
            match base.with_num_layers(keep(w.n_layer, base.num_layers())) {
                BaseConfig::Llama(mut c) => {
                    c.max_position_embeddings = keep(w.n_positions, c.max_position_embeddings);
                    BaseConfig::Llama(c)
                }
                BaseConfig::Gpt2(mut c) => {
                    c.n_positions = keep(w.n_positions, c.n_positions);
                    BaseConfig::Gpt2(c)
                }
            }
        } else if let Some(mut c) = LlamaConfig::preset(&w.preset) {
            (c.vocab_size, c.eos_token_id, c.pad_token_id) = (base.vocab_size(), base.eos_token_id(), None);
            c.bos_token_id = None;
            c.num_hidden_layers = keep(w.n_layer, c.num_hidden_layers);
            c.hidden_size = keep(w.n_embd, c.hidden_size);
            c.num_attention_heads = keep(w.n_head, c.num_attention_heads);
            c.max_position_embeddings = keep(w.n_positions, c.max_position_embeddings);
            BaseConfig::Llama(c)
        } else {
            let mut c = Gpt2Config::preset(&w.preset).expect("validated").with_eos_token_id(base.eos_token_id());
            c.vocab_size = base.vocab_size();
            c.n_layer = keep(w.n_layer, c.n_layer);
            c.n_embd = keep(w.n_embd, c.n_embd);
            c.n_head = keep(w.n_head, c.n_head);
            c.n_positions = keep(w.n_positions, c.n_positions);
            BaseConfig::Gpt2(c)
        };
        WeightingModelConfig::new()
            .with_trunk(trunk)
            .with_head_hidden(w.head_hidden)
            .with_activation(w.activation)
            .with_softplus_beta(w.softplus_beta)
            .with_normalize(w.normalize)
            .with_freeze_trunk(w.freeze_trunk)
    }
}

/// Expands a leading `$VAR/` (e.g. `$CAMELS_DATA_DIR/squad_v1.1/...`) from the environment.
pub fn expand_path(path: &Path) -> Result<PathBuf, MetaError> {
    let text = path.to_string_lossy();
    let Some(rest) = text.strip_prefix('$') else {
        return Ok(path.to_path_buf());
    };
    let (var, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let value = std::env::var(var)
        .map_err(|_| config_error(path, "path", format!("environment variable `{var}` is not set")))?;
    Ok(Path::new(&value).join(tail))
}

/// Whether `name` is a weighting-trunk preset: `base`, or a GPT-2 or Llama preset.
fn is_trunk_preset(name: &str) -> bool {
    name == "base" || Gpt2Config::preset(name).is_some() || LlamaConfig::preset(name).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_parse_as_toml_but_string_fields_keep_the_raw_text() {
        let mut table: toml::Table = "[data]\ntrain = \"a.jsonl\"\n[run]\nsteps = 4\n".parse().unwrap();
        for assignment in ["data.train=2024", "run.steps=8", "run.extra=true", "data.val=runs/v.jsonl"] {
            apply_override(&mut table, assignment).unwrap();
        }
        assert_eq!(table["data"]["train"], toml::Value::String("2024".into()), "a number-like path stays a string");
        assert_eq!(table["run"]["steps"], toml::Value::Integer(8));
        assert_eq!(table["run"]["extra"], toml::Value::Boolean(true));
        assert_eq!(table["data"]["val"], toml::Value::String("runs/v.jsonl".into()), "not TOML: taken as text");
        // A string field the file does not set: the defaults say it is a string.
        let defaults: toml::Table = "[base]\npath = \"x\"\n".parse().unwrap();
        apply_override_with(&mut table, "base.path=7", Some(&defaults)).unwrap();
        assert_eq!(table["base"]["path"], toml::Value::String("7".into()));
        assert!(apply_override(&mut table, "run..steps=1").is_err());
        assert!(apply_override(&mut table, "steps").is_err());
    }
}
