//! The error type of `camels-model`.

use std::path::PathBuf;

/// Everything that can go wrong while building, loading, saving or running a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A JSON file (such as `config.json`) could not be parsed.
    #[error("{path}: invalid json: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: serde_json::Error,
    },
    /// A configuration value is out of range or inconsistent.
    #[error("{path}: field `{field}`: {reason}")]
    Config {
        /// The file (or `<preset>` for a built-in configuration).
        path: PathBuf,
        /// The offending field.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The checkpoint is not a readable safetensors file.
    #[error("{path}: not a safetensors checkpoint: {reason}")]
    NotSafetensors {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        reason: String,
    },
    /// A tensor the model needs is absent from the checkpoint.
    #[error("{path}: missing tensor `{name}` (expected shape {expected:?})")]
    MissingTensor {
        /// The checkpoint.
        path: PathBuf,
        /// The tensor name, as in the checkpoint.
        name: String,
        /// The shape the model expects.
        expected: Vec<usize>,
    },
    /// A tensor in the checkpoint has the wrong shape.
    #[error("{path}: tensor `{name}` has shape {found:?}, expected {expected:?}")]
    ShapeMismatch {
        /// The checkpoint.
        path: PathBuf,
        /// The tensor name.
        name: String,
        /// The shape the model expects.
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
    },
    /// A tensor has a dtype that cannot be converted to f32.
    #[error("{path}: tensor `{name}` has unsupported dtype {dtype}")]
    UnsupportedDtype {
        /// The checkpoint.
        path: PathBuf,
        /// The tensor name.
        name: String,
        /// The dtype found.
        dtype: String,
    },
    /// The checkpoint holds tensors the model does not know (only in strict loading).
    #[error("{path}: unexpected tensors {names:?}")]
    UnexpectedTensors {
        /// The checkpoint.
        path: PathBuf,
        /// The unknown names.
        names: Vec<String>,
    },
    /// A GGUF file is malformed (truncated, wrong magic, unsupported version, corrupt counts).
    #[error("{path}: {reason}")]
    Gguf {
        /// The file.
        path: PathBuf,
        /// What is wrong, and where.
        reason: String,
    },
    /// A GGUF metadata entry is missing, has the wrong type, or holds an unsupported value.
    #[error("{path}: metadata `{key}`: {reason}")]
    GgufMetadata {
        /// The file.
        path: PathBuf,
        /// The metadata key (`llama.block_count`).
        key: String,
        /// What was expected.
        reason: String,
    },
    /// A GGUF tensor is malformed (shape, type, data range) or of a type that cannot be dequantised.
    #[error("{path}: tensor `{name}`: {reason}")]
    GgufTensor {
        /// The file.
        path: PathBuf,
        /// The tensor's llama.cpp name (`blk.0.attn_q.weight`).
        name: String,
        /// What is wrong, and what was expected.
        reason: String,
    },
    /// A tokenizer could not be loaded, trained or run.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// Inputs of the wrong shape were passed to a model.
    #[error("shape error: {0}")]
    Shape(String),
    /// A sequence longer than the model's context.
    #[error("{what} of {length} tokens does not fit the model's context of {limit} positions: {hint}")]
    ContextExceeded {
        /// What was too long (`prompt`, `data.max_doc_tokens`).
        what: String,
        /// Its length in tokens.
        length: usize,
        /// The model's context (`n_positions`, `max_position_embeddings`).
        limit: usize,
        /// How to fix it.
        hint: String,
    },
    /// A backend was requested that this build does not include.
    #[error(
        "device `{requested}` is not available in this build (built with: {available}); rebuild with `--features {requested}`"
    )]
    DeviceUnavailable {
        /// The device asked for.
        requested: String,
        /// The devices compiled in.
        available: String,
    },
    /// A device string could not be parsed.
    #[error("unknown device `{0}`: expected cpu, wgpu, wgpu:N, cuda or cuda:N")]
    UnknownDevice(String),
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, ModelError>;

impl ModelError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }
}
