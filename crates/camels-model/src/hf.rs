//! HuggingFace checkpoints in and out: `config.json` and `model.safetensors` for every family, and
//! GGUF files (through [`crate::gguf`]) wherever a base directory is accepted.
//!
//! Our parameter paths are the HF names (`transformer.h.0.attn.c_attn.weight`,
//! `model.layers.0.self_attn.q_proj.weight`), so loading is a lookup by path (the [`BaseLm`] enum's
//! variant adds nothing to a path); GPT-2 files whose keys lack the `transformer.` prefix (HF
//! `GPT2Model`) load too. HF's buffers (`attn.bias`, `attn.masked_bias`, `rotary_emb.inv_freq`) and a
//! tied `lm_head.weight` are skipped. Saving writes f32 with `{"format": "pt"}` metadata, so that
//! transformers' `from_pretrained` opens the directory; files are written atomically. The family is
//! `config.json`'s `model_type` ([`read_base_config`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use burn::module::{ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;
use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};

use crate::base::{BaseConfig, BaseLm, BaseTrunk};
use crate::error::{ModelError, Result};
use crate::gpt2::Gpt2Config;
use crate::llama::LlamaConfig;
use crate::tokenizer::TextTokenizer;

/// The GPT-2 fields of an HF `config.json`, with transformers' defaults for absent fields.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HfGpt2Config {
    /// `vocab_size`.
    #[serde(default = "defaults::vocab_size")]
    pub vocab_size: usize,
    /// `n_positions`.
    #[serde(default = "defaults::n_positions")]
    pub n_positions: usize,
    /// `n_embd`.
    #[serde(default = "defaults::n_embd")]
    pub n_embd: usize,
    /// `n_layer`.
    #[serde(default = "defaults::n_layer")]
    pub n_layer: usize,
    /// `n_head`.
    #[serde(default = "defaults::n_head")]
    pub n_head: usize,
    /// `n_inner` (4·n_embd when null).
    #[serde(default)]
    pub n_inner: Option<usize>,
    /// `activation_function`: only the tanh GELU (`gelu_new`) is supported.
    #[serde(default = "defaults::activation_function")]
    pub activation_function: String,
    /// `layer_norm_epsilon`.
    #[serde(default = "defaults::layer_norm_epsilon")]
    pub layer_norm_epsilon: f64,
    /// `resid_pdrop` (recorded; camels trains without dropout unless asked).
    #[serde(default = "defaults::pdrop")]
    pub resid_pdrop: f64,
    /// `embd_pdrop`.
    #[serde(default = "defaults::pdrop")]
    pub embd_pdrop: f64,
    /// `attn_pdrop`.
    #[serde(default = "defaults::pdrop")]
    pub attn_pdrop: f64,
    /// `initializer_range`.
    #[serde(default = "defaults::initializer_range")]
    pub initializer_range: f64,
    /// `bos_token_id`.
    #[serde(default = "defaults::eos")]
    pub bos_token_id: u32,
    /// `eos_token_id`.
    #[serde(default = "defaults::eos")]
    pub eos_token_id: u32,
    /// `scale_attn_weights`: must be true.
    #[serde(default = "defaults::yes")]
    pub scale_attn_weights: bool,
    /// `scale_attn_by_inverse_layer_idx`: must be false.
    #[serde(default)]
    pub scale_attn_by_inverse_layer_idx: bool,
    /// `tie_word_embeddings`: must be true.
    #[serde(default = "defaults::yes")]
    pub tie_word_embeddings: bool,
    /// `model_type`.
    #[serde(default = "defaults::model_type")]
    pub model_type: String,
    /// `architectures` (may be null).
    #[serde(default)]
    pub architectures: Option<Vec<String>>,
}

mod defaults {
    pub fn vocab_size() -> usize {
        50257
    }
    pub fn n_positions() -> usize {
        1024
    }
    pub fn n_embd() -> usize {
        768
    }
    pub fn n_layer() -> usize {
        12
    }
    pub fn n_head() -> usize {
        12
    }
    pub fn activation_function() -> String {
        "gelu_new".into()
    }
    pub fn layer_norm_epsilon() -> f64 {
        1e-5
    }
    pub fn pdrop() -> f64 {
        0.1
    }
    pub fn initializer_range() -> f64 {
        0.02
    }
    pub fn eos() -> u32 {
        50256
    }
    pub fn yes() -> bool {
        true
    }
    pub fn model_type() -> String {
        "gpt2".into()
    }
}

impl HfGpt2Config {
    /// Reads and checks `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
        let config: Self =
            serde_json::from_str(&text).map_err(|source| ModelError::Json { path: path.into(), source })?;
        config.to_runtime(path)?;
        Ok(config)
    }

    /// Converts to the runtime configuration, refusing variants this implementation does not compute.
    pub fn to_runtime(&self, path: &Path) -> Result<Gpt2Config> {
        let bad = |field: &str, reason: String| ModelError::Config { path: path.into(), field: field.into(), reason };
        if !matches!(self.activation_function.as_str(), "gelu_new" | "gelu_pytorch_tanh") {
            return Err(bad(
                "activation_function",
                format!("`{}` is not supported (gelu_new only)", self.activation_function),
            ));
        }
        if !self.scale_attn_weights {
            return Err(bad("scale_attn_weights", "false is not supported".into()));
        }
        if self.scale_attn_by_inverse_layer_idx {
            return Err(bad("scale_attn_by_inverse_layer_idx", "true is not supported".into()));
        }
        if !self.tie_word_embeddings {
            return Err(bad("tie_word_embeddings", "untied LM heads are not supported".into()));
        }
        if self.model_type != "gpt2" {
            return Err(bad("model_type", format!("`{}` is not gpt2", self.model_type)));
        }
        let config = Gpt2Config::new(self.vocab_size, self.n_positions, self.n_embd, self.n_layer, self.n_head)
            .with_n_inner(self.n_inner)
            .with_layer_norm_epsilon(self.layer_norm_epsilon)
            .with_initializer_range(self.initializer_range)
            .with_eos_token_id(self.eos_token_id);
        config.validate().map_err(|e| match e {
            ModelError::Config { field, reason, .. } => ModelError::Config { path: path.into(), field, reason },
            other => other,
        })?;
        Ok(config)
    }

    /// The `config.json` of a runtime configuration.
    pub fn from_runtime(config: &Gpt2Config) -> Self {
        Self {
            vocab_size: config.vocab_size,
            n_positions: config.n_positions,
            n_embd: config.n_embd,
            n_layer: config.n_layer,
            n_head: config.n_head,
            n_inner: config.n_inner,
            activation_function: defaults::activation_function(),
            layer_norm_epsilon: config.layer_norm_epsilon,
            resid_pdrop: config.dropout,
            embd_pdrop: config.dropout,
            attn_pdrop: config.dropout,
            initializer_range: config.initializer_range,
            bos_token_id: config.eos_token_id,
            eos_token_id: config.eos_token_id,
            scale_attn_weights: true,
            scale_attn_by_inverse_layer_idx: false,
            tie_word_embeddings: true,
            model_type: defaults::model_type(),
            architectures: Some(vec!["GPT2LMHeadModel".into()]),
        }
    }
}

/// Reads a safetensors file into memory.
fn read_checkpoint(path: &Path) -> Result<Vec<u8>> {
    if path.is_dir() {
        return Err(ModelError::NotSafetensors { path: path.into(), reason: "is a directory".into() });
    }
    let bytes = std::fs::read(path).map_err(|e| ModelError::io(path, e))?;
    SafeTensors::read_metadata(&bytes)
        .map_err(|e| ModelError::NotSafetensors { path: path.into(), reason: e.to_string() })?;
    Ok(bytes)
}

/// Tensors that HF checkpoints carry and GPT-2 does not need.
fn is_ignored_key(name: &str) -> bool {
    name.ends_with(".attn.bias")
        || name.ends_with(".attn.masked_bias")
        || name.ends_with(".rotary_emb.inv_freq")
        || name == "lm_head.weight"
}

/// Whether a module entered by a visitor is an enum's variant ([`BaseLm`], [`BaseTrunk`]), which
/// adds nothing to a parameter path.
pub fn is_variant(container_type: &str) -> bool {
    container_type.starts_with("Enum:")
}

/// Converts a stored tensor to f32 values.
fn to_f32(path: &Path, name: &str, view: &safetensors::tensor::TensorView<'_>) -> Result<Vec<f32>> {
    let bytes = view.data();
    Ok(match view.dtype() {
        Dtype::F32 => bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        Dtype::F16 => bytes.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        Dtype::BF16 => bytes.chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        Dtype::F64 => bytes
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32)
            .collect(),
        other => {
            return Err(ModelError::UnsupportedDtype {
                path: path.into(),
                name: name.into(),
                dtype: format!("{other:?}"),
            });
        }
    })
}

/// Tensors by HF name: shape (outermost first) and row-major f32 values.
pub type TensorMap = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// Where a loader finds tensors: a safetensors file, or tensors already in memory (a GGUF file's,
/// dequantised), which are moved out as they are used.
enum Source<'a> {
    File(SafeTensors<'a>),
    Memory(TensorMap),
}

impl Source<'_> {
    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        match self {
            Self::File(t) => t.tensor(name).ok().map(|v| v.shape().to_vec()),
            Self::Memory(m) => m.get(name).map(|(shape, _)| shape.clone()),
        }
    }
    fn take(&mut self, file: &Path, name: &str) -> Result<Vec<f32>> {
        match self {
            Self::File(t) => {
                let view = t
                    .tensor(name)
                    .map_err(|e| ModelError::NotSafetensors { path: file.into(), reason: e.to_string() })?;
                to_f32(file, name, &view)
            }
            Self::Memory(m) => Ok(m.remove(name).map(|(_, v)| v).unwrap_or_default()),
        }
    }
    fn names(&self) -> Vec<String> {
        match self {
            Self::File(t) => t.names().into_iter().map(String::from).collect(),
            Self::Memory(m) => m.keys().cloned().collect(),
        }
    }
}

/// Replaces every parameter by the tensor stored under its path (or one of `aliases(path)`).
struct Loader<'a, F: Fn(&str) -> Vec<String>> {
    file: &'a Path,
    source: Source<'a>,
    aliases: F,
    stack: Vec<String>,
    used: HashSet<String>,
    error: Option<ModelError>,
}

impl<B: Backend, F: Fn(&str) -> Vec<String>> ModuleMapper<B> for Loader<'_, F> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        if !is_variant(container_type) {
            self.stack.push(name.to_string());
        }
    }
    fn exit_module(&mut self, _name: &str, container_type: &str) {
        if !is_variant(container_type) {
            self.stack.pop();
        }
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        if self.error.is_some() {
            return Param::from_mapped_value(id, tensor, mapper);
        }
        let path = self.stack.join(".");
        let expected = tensor.dims().to_vec();
        let names = (self.aliases)(&path);
        let Some((name, found)) = names.iter().find_map(|n| self.source.shape(n).map(|s| (n.clone(), s))) else {
            self.error = Some(ModelError::MissingTensor { path: self.file.into(), name: names[0].clone(), expected });
            return Param::from_mapped_value(id, tensor, mapper);
        };
        if found != expected {
            self.error = Some(ModelError::ShapeMismatch { path: self.file.into(), name, expected, found });
            return Param::from_mapped_value(id, tensor, mapper);
        }
        match self.source.take(self.file, &name) {
            Ok(values) => {
                let device = tensor.device();
                let require_grad = tensor.is_require_grad();
                let mut loaded = Tensor::<B, D>::from_data(TensorData::new(values, expected), &device);
                if require_grad {
                    loaded = loaded.require_grad();
                }
                self.used.insert(name);
                Param::from_mapped_value(id, loaded, mapper)
            }
            Err(e) => {
                self.error = Some(e);
                Param::from_mapped_value(id, tensor, mapper)
            }
        }
    }
}

/// Runs a loader over `module`; with `strict`, keys the module does not use are an error (except
/// HF's buffers and the tied LM head).
fn load_from<B: Backend, M: Module<B>>(
    module: M,
    file: &Path,
    source: Source<'_>,
    aliases: impl Fn(&str) -> Vec<String>,
    strict: bool,
) -> Result<M> {
    let mut loader = Loader { file, source, aliases, stack: Vec::new(), used: HashSet::new(), error: None };
    let module = module.map(&mut loader);
    if let Some(error) = loader.error {
        return Err(error);
    }
    if strict {
        let mut unused: Vec<String> =
            loader.source.names().into_iter().filter(|n| !loader.used.contains(n) && !is_ignored_key(n)).collect();
        if !unused.is_empty() {
            unused.sort();
            return Err(ModelError::UnexpectedTensors { path: file.into(), names: unused });
        }
    }
    Ok(module)
}

/// Loads every parameter of `module` from a safetensors file. `aliases(path)` lists the names to
/// try for a module path, the first being the one reported when missing. Keys the module does not
/// use are an error, except HF's buffers and the tied LM head.
pub fn load_module<B: Backend, M: Module<B>>(
    module: M,
    file: &Path,
    aliases: impl Fn(&str) -> Vec<String>,
) -> Result<M> {
    let bytes = read_checkpoint(file)?;
    let tensors = SafeTensors::deserialize(&bytes)
        .map_err(|e| ModelError::NotSafetensors { path: file.into(), reason: e.to_string() })?;
    load_from(module, file, Source::File(tensors), aliases, true)
}

/// The paths of a GPT-2 LM (`transformer.x`) also match keys without the prefix.
fn lm_aliases(path: &str) -> Vec<String> {
    match path.strip_prefix("transformer.") {
        Some(rest) => vec![path.to_string(), rest.to_string()],
        None => vec![path.to_string()],
    }
}

/// Whether `path` names a GGUF file (by its extension).
pub fn is_gguf(path: &Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
}

/// Reads an HF `config.json` of any supported family, by its `model_type`.
pub fn read_base_config(path: &Path) -> Result<BaseConfig> {
    let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|source| ModelError::Json { path: path.into(), source })?;
    let model_type = value.get("model_type").and_then(|v| v.as_str()).unwrap_or("gpt2").to_string();
    let bad = |field: &str, reason: String| ModelError::Config { path: path.into(), field: field.into(), reason };
    match model_type.as_str() {
        "gpt2" => Ok(BaseConfig::Gpt2(HfGpt2Config::from_file(path)?.to_runtime(path)?)),
        "llama" | "qwen2" => {
            if let Some(act) = value.get("hidden_act").and_then(|v| v.as_str())
                && act != "silu"
            {
                return Err(bad("hidden_act", format!("`{act}` is not supported (silu only)")));
            }
            if value.get("rope_scaling").is_some_and(|v| !v.is_null()) {
                return Err(bad("rope_scaling", "RoPE scaling is not supported".into()));
            }
            if value.get("use_sliding_window").and_then(|v| v.as_bool()) == Some(true) {
                return Err(bad("use_sliding_window", "sliding-window attention is not supported".into()));
            }
            let mut value = value;
            // transformers 5 writes RoPE as `rope_parameters: {rope_theta, rope_type}`.
            if let Some(rope) = value.get("rope_parameters").filter(|v| !v.is_null()).cloned() {
                let kind = rope.get("rope_type").and_then(|v| v.as_str()).unwrap_or("default");
                if kind != "default" {
                    return Err(bad(
                        "rope_parameters.rope_type",
                        format!("`{kind}` RoPE is not supported (default only)"),
                    ));
                }
                if let Some(theta) = rope.get("rope_theta") {
                    value["rope_theta"] = theta.clone();
                }
            }
            // HF allows a list of EOS ids; the first ends our documents.
            if let Some(first) = value.get("eos_token_id").and_then(|v| v.as_array()).and_then(|a| a.first()).cloned() {
                value["eos_token_id"] = first;
            }
            let config: LlamaConfig = serde_path_to_error::deserialize(value)
                .map_err(|e| bad(&e.path().to_string(), e.inner().to_string()))?;
            config.validate().map_err(|e| match e {
                ModelError::Config { field, reason, .. } => bad(&field, reason),
                other => other,
            })?;
            Ok(BaseConfig::Llama(config))
        }
        other => Err(bad("model_type", format!("`{other}` is not a supported family (gpt2, llama, qwen2)"))),
    }
}

/// The HF `config.json` of a base configuration, as transformers reads it.
pub fn base_config_json(config: &BaseConfig) -> serde_json::Value {
    match config {
        BaseConfig::Gpt2(c) => serde_json::to_value(HfGpt2Config::from_runtime(c)).unwrap_or_default(),
        BaseConfig::Llama(c) => {
            let mut v = serde_json::to_value(c).unwrap_or_default();
            let arch = if c.model_type == "qwen2" { "Qwen2ForCausalLM" } else { "LlamaForCausalLM" };
            v["architectures"] = serde_json::json!([arch]);
            v["hidden_act"] = "silu".into();
            v["torch_dtype"] = "float32".into();
            v["attention_dropout"] = 0.0.into();
            v["rope_scaling"] = serde_json::Value::Null;
            v["pretraining_tp"] = 1.into();
            v["use_cache"] = true.into();
            v
        }
    }
}

/// Loads a base LM of any family: an HF directory (`config.json` + `model.safetensors`), a
/// `.safetensors` file next to a `config.json`, or a `.gguf` file.
pub fn load_base<B: Backend>(path: &Path, device: &B::Device) -> Result<(BaseLm<B>, BaseConfig)> {
    if is_gguf(path) {
        let gguf = crate::gguf::GgufFile::open(path)?;
        let config = BaseConfig::Llama(gguf_llama_config(&gguf)?);
        let tensors = gguf.hf_tensors()?;
        drop(gguf);
        let model = load_from(config.init::<B>(device), path, Source::Memory(tensors), |p| vec![p.to_string()], true)?;
        return Ok((model, config));
    }
    let (dir, file) = checkpoint_paths(path)?;
    let config = read_base_config(&dir.join("config.json"))?;
    let bytes = read_checkpoint(&file)?;
    let tensors = SafeTensors::deserialize(&bytes)
        .map_err(|e| ModelError::NotSafetensors { path: file.clone(), reason: e.to_string() })?;
    let model = load_from(config.init::<B>(device), &file, Source::File(tensors), lm_aliases, true)?;
    Ok((model, config))
}

/// What a base's weight file holds, read from its header only (safetensors) or its tensor infos
/// (GGUF): the file, the number of tensors and of parameters (HF's buffers left out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredWeights {
    /// The weight file.
    pub file: PathBuf,
    /// Tensors in it.
    pub tensors: usize,
    /// Parameters in them.
    pub parameters: usize,
    /// Whether it holds a separate `lm_head.weight` (a tied head saved twice, or an untied one).
    pub has_lm_head: bool,
}

/// Reads the header of a base's weight file (`model.safetensors` of a directory, a `.safetensors`
/// file, or a `.gguf` file) without loading the weights.
pub fn stored_weights(path: &Path) -> Result<StoredWeights> {
    if is_gguf(path) {
        let gguf = crate::gguf::GgufFile::open(path)?;
        let parameters = gguf.tensors.iter().map(|t| t.num_elements()).sum();
        let has_lm_head = gguf.tensors.iter().any(|t| t.name == "output.weight");
        return Ok(StoredWeights { file: path.into(), tensors: gguf.tensors.len(), parameters, has_lm_head });
    }
    use std::io::Read;
    let (_, file) = checkpoint_paths(path)?;
    let bad = |reason: String| ModelError::NotSafetensors { path: file.clone(), reason };
    let mut reader = std::fs::File::open(&file).map_err(|e| ModelError::io(&file, e))?;
    let size = reader.metadata().map_err(|e| ModelError::io(&file, e))?.len();
    let mut len = [0u8; 8];
    reader.read_exact(&mut len).map_err(|e| bad(format!("no 8-byte header length ({e})")))?;
    let len = u64::from_le_bytes(len);
    if len > size.saturating_sub(8) || len > 100 << 20 {
        return Err(bad(format!("header length {len} does not fit the file's {size} bytes")));
    }
    let mut header = vec![0u8; len as usize];
    reader.read_exact(&mut header).map_err(|e| bad(format!("truncated header ({e})")))?;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&header).map_err(|e| bad(format!("header is not a JSON object ({e})")))?;
    let (mut tensors, mut parameters, mut has_lm_head) = (0, 0usize, false);
    for (name, info) in header.iter().filter(|(name, _)| name.as_str() != "__metadata__") {
        let shape =
            info.get("shape").and_then(|s| s.as_array()).ok_or_else(|| bad(format!("`{name}` has no shape")))?;
        let elements = shape.iter().try_fold(1usize, |n, d| d.as_u64().and_then(|d| n.checked_mul(d as usize)));
        let elements = elements.ok_or_else(|| bad(format!("`{name}` has a malformed shape {shape:?}")))?;
        has_lm_head |= name == "lm_head.weight";
        if is_ignored_key(name) && name != "lm_head.weight" {
            continue;
        }
        tensors += 1;
        parameters += elements;
    }
    Ok(StoredWeights { file, tensors, parameters, has_lm_head })
}

/// Reads a base's configuration only (no weights): `config.json` of a directory, or a GGUF's metadata.
pub fn read_base_config_at(path: &Path) -> Result<BaseConfig> {
    if is_gguf(path) {
        return Ok(BaseConfig::Llama(gguf_llama_config(&crate::gguf::GgufFile::open(path)?)?));
    }
    let (dir, _) = checkpoint_paths(path)?;
    read_base_config(&dir.join("config.json"))
}

/// Loads the tokenizer of a base: a GGUF file's metadata, or the directory's `tokenizer.json` (or
/// `vocab.json` + `merges.txt`); EOS and padding come from the model's configuration.
pub fn load_tokenizer(path: &Path, config: &BaseConfig) -> Result<TextTokenizer> {
    let tokenizer = if is_gguf(path) {
        let inner = crate::gguf::GgufFile::open(path)?.tokenizer()?;
        TextTokenizer::new(inner, config.eos_token_id(), &path.display().to_string())?
    } else {
        let dir =
            if path.is_dir() { path.to_path_buf() } else { path.parent().map(Path::to_path_buf).unwrap_or_default() };
        TextTokenizer::from_dir(&dir)?.with_eos(config.eos_token_id(), &dir.display().to_string())?
    };
    if tokenizer.vocab_size() > config.vocab_size() {
        return Err(ModelError::Config {
            path: path.into(),
            field: "vocab_size".into(),
            reason: format!(
                "the tokenizer has {} tokens, more than the model's {} embeddings",
                tokenizer.vocab_size(),
                config.vocab_size()
            ),
        });
    }
    Ok(tokenizer)
}

/// Loads the first `trunk`'s blocks and embeddings from a base checkpoint (an LM of the same family,
/// or a bare trunk); blocks past the trunk's are ignored.
pub fn load_trunk<B: Backend>(trunk: BaseTrunk<B>, path: &Path) -> Result<BaseTrunk<B>> {
    let prefix = trunk.lm_prefix();
    let aliases = move |p: &str| vec![p.to_string(), format!("{prefix}.{p}")];
    if is_gguf(path) {
        let tensors = crate::gguf::GgufFile::open(path)?.hf_tensors()?;
        return load_from(trunk, path, Source::Memory(tensors), aliases, false);
    }
    let (_, file) = checkpoint_paths(path)?;
    let bytes = read_checkpoint(&file)?;
    let tensors = SafeTensors::deserialize(&bytes)
        .map_err(|e| ModelError::NotSafetensors { path: file.clone(), reason: e.to_string() })?;
    load_from(trunk, &file, Source::File(tensors), aliases, false)
}

/// Saves a base LM as an HF directory: `config.json`, `model.safetensors` and, given a tokenizer,
/// `tokenizer.json`, `tokenizer_config.json` and `generation_config.json`, which transformers'
/// `from_pretrained` and `AutoTokenizer` open.
pub fn save_base<B: Backend>(
    model: &BaseLm<B>,
    config: &BaseConfig,
    tokenizer: Option<&TextTokenizer>,
    dir: &Path,
) -> Result<()> {
    let json = serde_json::to_string_pretty(&base_config_json(config))
        .map_err(|source| ModelError::Json { path: dir.join("config.json"), source })?;
    save_module(model, &dir.join("model.safetensors"))?;
    if let Some(tokenizer) = tokenizer {
        tokenizer.save(&dir.join("tokenizer.json"))?;
        let generation = serde_json::json!({
            "eos_token_id": config.eos_token_id(),
            "pad_token_id": config.pad_token_id(),
            "do_sample": false,
        });
        write_atomic(&dir.join("generation_config.json"), generation.to_string().as_bytes())?;
        // Names the special tokens for transformers' `AutoTokenizer`.
        let token = |id: u32| tokenizer.inner().id_to_token(id);
        let mut special = serde_json::json!({
            "tokenizer_class": "PreTrainedTokenizerFast",
            "eos_token": token(config.eos_token_id()),
            "pad_token": token(config.pad_token_id()),
            "add_bos_token": false,
        });
        if let BaseConfig::Llama(LlamaConfig { bos_token_id: Some(bos), .. }) = config {
            special["bos_token"] = token(*bos).into();
        }
        write_atomic(&dir.join("tokenizer_config.json"), special.to_string().as_bytes())?;
    }
    write_atomic(&dir.join("config.json"), json.as_bytes())
}

/// Resolves a checkpoint argument to (directory, safetensors file), refusing other formats.
pub fn checkpoint_paths(path: &Path) -> Result<(PathBuf, PathBuf)> {
    if !path.exists() {
        return Err(ModelError::io(
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or directory"),
        ));
    }
    if path.is_dir() {
        let file = path.join("model.safetensors");
        if !file.exists() {
            let reason = if path.join("pytorch_model.bin").exists() {
                "only pytorch_model.bin found; convert it to model.safetensors (pickle files are not loaded)"
                    .to_string()
            } else {
                "no model.safetensors in the directory".to_string()
            };
            return Err(ModelError::NotSafetensors { path: path.into(), reason });
        }
        return Ok((path.to_path_buf(), file));
    }
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
    Ok((dir, path.to_path_buf()))
}

/// Collects every parameter as (path, shape, f32 values).
struct Collector {
    stack: Vec<String>,
    tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
}

impl<B: Backend> ModuleVisitor<B> for Collector {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        if !is_variant(container_type) {
            self.stack.push(name.to_string());
        }
    }
    fn exit_module(&mut self, _name: &str, container_type: &str) {
        if !is_variant(container_type) {
            self.stack.pop();
        }
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let value = param.val();
        let shape = value.dims().to_vec();
        let values = value.into_data().convert::<f32>().to_vec::<f32>().expect("f32 data after convert");
        self.tensors.insert(self.stack.join("."), (shape, values));
    }
}

/// Every float parameter of a module by path, as f32.
pub fn module_tensors<B: Backend, M: Module<B>>(module: &M) -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    let mut collector = Collector { stack: Vec::new(), tensors: BTreeMap::new() };
    module.visit(&mut collector);
    collector.tensors
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, synced, then renamed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
    // A name of this process and call: two writers never share a temporary file.
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("checkpoint");
    let tmp = dir.join(format!(".{name}.{}-{call}.tmp", std::process::id()));
    let written = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(ModelError::io(&tmp, e));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        ModelError::Io {
            path: path.into(),
            source: std::io::Error::new(e.kind(), format!("renaming {} onto it: {e}", tmp.display())),
        }
    })
}

/// Saves every float parameter of a module to a safetensors file (f32, names = module paths).
pub fn save_module<B: Backend, M: Module<B>>(module: &M, file: &Path) -> Result<()> {
    save_module_where(module, file, |_| true)
}

/// [`save_module`] keeping only the parameters whose module path `keep` accepts (for example the
/// head of a weighting model whose frozen trunk is loaded from the base).
pub fn save_module_where<B: Backend, M: Module<B>>(module: &M, file: &Path, keep: impl Fn(&str) -> bool) -> Result<()> {
    let mut tensors = module_tensors(module);
    tensors.retain(|name, _| keep(name));
    let bytes_of: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(name, (shape, values))| (name, shape, values.iter().flat_map(|v| v.to_le_bytes()).collect()))
        .collect();
    let views = bytes_of
        .iter()
        .map(|(name, shape, bytes)| {
            safetensors::tensor::TensorView::new(Dtype::F32, shape.clone(), bytes).map(|view| (name.clone(), view))
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| ModelError::NotSafetensors { path: file.into(), reason: e.to_string() })?;
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    let bytes = safetensors::tensor::serialize(views, Some(metadata))
        .map_err(|e| ModelError::NotSafetensors { path: file.into(), reason: e.to_string() })?;
    write_atomic(file, &bytes)
}

/// The Llama configuration a GGUF file's metadata describes.
fn gguf_llama_config(gguf: &crate::gguf::GgufFile) -> Result<LlamaConfig> {
    let p = gguf.llama_hparams()?;
    let config = LlamaConfig {
        model_type: p.model_type.clone(),
        vocab_size: p.vocab_size,
        hidden_size: p.hidden_size,
        intermediate_size: p.intermediate_size,
        num_hidden_layers: p.num_hidden_layers,
        num_attention_heads: p.num_attention_heads,
        num_key_value_heads: p.num_key_value_heads,
        head_dim: Some(p.head_dim),
        max_position_embeddings: p.max_position_embeddings,
        rms_norm_eps: p.rms_norm_eps,
        rope_theta: p.rope_theta,
        tie_word_embeddings: p.tie_word_embeddings,
        attention_bias: p.attention_bias,
        mlp_bias: false,
        initializer_range: 0.02,
        bos_token_id: p.bos_token_id,
        eos_token_id: p.eos_token_id.ok_or_else(|| ModelError::Config {
            path: gguf.path.clone(),
            field: "tokenizer.ggml.eos_token_id".into(),
            reason: "missing: the model's EOS id is needed to end documents".into(),
        })?,
        pad_token_id: p.pad_token_id,
    };
    config.validate().map_err(|e| match e {
        ModelError::Config { field, reason, .. } => ModelError::Config { path: gguf.path.clone(), field, reason },
        other => other,
    })?;
    Ok(config)
}
