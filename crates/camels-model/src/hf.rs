//! HuggingFace checkpoints in and out: `config.json` and `model.safetensors` in the HF GPT-2 layout.
//!
//! Our parameter paths are the HF names (`transformer.h.0.attn.c_attn.weight`), so loading is a
//! lookup by path; files whose keys lack the `transformer.` prefix (HF `GPT2Model`) load too. HF's
//! attention-mask buffers (`attn.bias`, `attn.masked_bias`) and the tied `lm_head.weight` are
//! skipped. Saving writes `transformer.*` names in f32 with `{"format": "pt"}` metadata, so that
//! `GPT2LMHeadModel.from_pretrained` opens the directory; files are written atomically.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use burn::module::{ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;
use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::gpt2::{Gpt2Config, Gpt2LmHead, Gpt2Model};

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
    name.ends_with(".attn.bias") || name.ends_with(".attn.masked_bias") || name == "lm_head.weight"
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

/// Replaces every parameter by the tensor stored under its path (or one of `aliases(path)`).
struct Loader<'a, F: Fn(&str) -> Vec<String>> {
    file: &'a Path,
    tensors: &'a SafeTensors<'a>,
    aliases: F,
    stack: Vec<String>,
    used: HashSet<String>,
    error: Option<ModelError>,
}

impl<B: Backend, F: Fn(&str) -> Vec<String>> ModuleMapper<B> for Loader<'_, F> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.stack.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.stack.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        if self.error.is_some() {
            return Param::from_mapped_value(id, tensor, mapper);
        }
        let path = self.stack.join(".");
        let expected = tensor.dims().to_vec();
        let names = (self.aliases)(&path);
        let Some((name, view)) = names.iter().find_map(|n| self.tensors.tensor(n).ok().map(|v| (n.clone(), v))) else {
            self.error = Some(ModelError::MissingTensor { path: self.file.into(), name: names[0].clone(), expected });
            return Param::from_mapped_value(id, tensor, mapper);
        };
        if view.shape() != expected.as_slice() {
            self.error = Some(ModelError::ShapeMismatch {
                path: self.file.into(),
                name,
                expected,
                found: view.shape().to_vec(),
            });
            return Param::from_mapped_value(id, tensor, mapper);
        }
        match to_f32(self.file, &name, &view) {
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
    let mut loader = Loader { file, tensors: &tensors, aliases, stack: Vec::new(), used: HashSet::new(), error: None };
    let module = module.map(&mut loader);
    if let Some(error) = loader.error {
        return Err(error);
    }
    let mut unused: Vec<String> = tensors
        .names()
        .into_iter()
        .filter(|n| !loader.used.contains(*n) && !is_ignored_key(n))
        .map(String::from)
        .collect();
    if !unused.is_empty() {
        unused.sort();
        return Err(ModelError::UnexpectedTensors { path: file.into(), names: unused });
    }
    Ok(module)
}

/// The paths of an LM (`transformer.x`) also match keys without the prefix.
fn lm_aliases(path: &str) -> Vec<String> {
    match path.strip_prefix("transformer.") {
        Some(rest) => vec![path.to_string(), rest.to_string()],
        None => vec![path.to_string()],
    }
}

/// The paths of a trunk (`x`) also match keys with the `transformer.` prefix.
fn trunk_aliases(path: &str) -> Vec<String> {
    vec![path.to_string(), format!("transformer.{path}")]
}

/// Loads a GPT-2 LM from an HF directory (`config.json` + `model.safetensors`) or a `.safetensors`
/// file next to a `config.json`.
pub fn load_gpt2<B: Backend>(path: &Path, device: &B::Device) -> Result<(Gpt2LmHead<B>, Gpt2Config)> {
    let (dir, file) = checkpoint_paths(path)?;
    let config = HfGpt2Config::from_file(&dir.join("config.json"))?.to_runtime(&dir.join("config.json"))?;
    let model = load_module(config.init::<B>(device), &file, lm_aliases)?;
    Ok((model, config))
}

/// Loads a GPT-2 checkpoint (LM or bare trunk) into an existing trunk of the same shape.
pub fn load_trunk<B: Backend>(trunk: Gpt2Model<B>, file: &Path) -> Result<Gpt2Model<B>> {
    load_module(trunk, file, trunk_aliases)
}

/// Resolves a checkpoint argument to (directory, safetensors file), refusing other formats.
pub fn checkpoint_paths(path: &Path) -> Result<(PathBuf, PathBuf)> {
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
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.stack.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.stack.pop();
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
    let tmp = dir.join(format!(".{}.tmp", path.file_name().and_then(|n| n.to_str()).unwrap_or("checkpoint")));
    let mut file = std::fs::File::create(&tmp).map_err(|e| ModelError::io(&tmp, e))?;
    file.write_all(bytes).map_err(|e| ModelError::io(&tmp, e))?;
    file.sync_all().map_err(|e| ModelError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| ModelError::io(path, e))
}

/// Saves every float parameter of a module to a safetensors file (f32, names = module paths).
pub fn save_module<B: Backend, M: Module<B>>(module: &M, file: &Path) -> Result<()> {
    let tensors = module_tensors(module);
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

/// Saves an LM as an HF directory: `config.json` and `model.safetensors` (`transformer.*` keys).
pub fn save_gpt2<B: Backend>(model: &Gpt2LmHead<B>, config: &Gpt2Config, dir: &Path) -> Result<()> {
    let json = serde_json::to_string_pretty(&HfGpt2Config::from_runtime(config))
        .map_err(|source| ModelError::Json { path: dir.join("config.json"), source })?;
    save_module(model, &dir.join("model.safetensors"))?;
    write_atomic(&dir.join("config.json"), json.as_bytes())
}
