//! The error type of `camels-meta`.

/// Everything that can go wrong in meta-training, adaptation or evaluation.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    /// An error of the model layer (checkpoints, tokenizer, shapes).
    #[error(transparent)]
    Model(#[from] camels_model::ModelError),
    /// Inputs of inconsistent sizes.
    #[error("shape error: {0}")]
    Shape(String),
    /// A loss or gradient that is NaN or infinite.
    #[error("non-finite {what}: {value}")]
    NonFinite {
        /// Which quantity.
        what: String,
        /// Its value.
        value: f64,
    },
    /// An error of the data layer (reading, tokenising, batching).
    #[error(transparent)]
    Data(#[from] camels_data::DataError),
    /// A run configuration that does not parse or whose values do not fit together.
    #[error("{}: {field}: {reason}", path.display())]
    Config {
        /// The configuration file (or `--set` for a command-line override).
        path: std::path::PathBuf,
        /// The key, dotted (`outer.grad_acc`).
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// A file of a run directory could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A JSON or TOML file (config, checkpoint state) that does not parse or does not fit.
    #[error("{}: {field}: {message}", path.display())]
    Parse {
        /// The file.
        path: std::path::PathBuf,
        /// The field or record concerned (`-` for the whole file).
        field: String,
        /// What is wrong.
        message: String,
    },
    /// An option with a value out of range.
    #[error("invalid {option} = {value}: expected {expected}")]
    InvalidOption {
        /// The option.
        option: String,
        /// The value given.
        value: String,
        /// What is allowed.
        expected: String,
    },
    /// A resume checkpoint that does not belong to this run.
    #[error("{}: checkpoint does not match this run: {reason}", path.display())]
    CheckpointMismatch {
        /// The checkpoint's state file.
        path: std::path::PathBuf,
        /// What differs.
        reason: String,
    },
    /// A run directory that another process is writing.
    #[error("{}: the run directory is in use by {holder}; wait for it to finish, stop it, or pick another --out", path.display())]
    Locked {
        /// The run directory.
        path: std::path::PathBuf,
        /// Who holds it (process id, start time, command line).
        holder: String,
    },
    /// A checkpoint that is missing a part or does not match the run.
    #[error("{}: {reason}", path.display())]
    Checkpoint {
        /// The checkpoint file or directory.
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl MetaError {
    /// The error with `at` (for example `meta-step 17`) added to a non-finite quantity's name.
    pub fn at(self, at: &str) -> Self {
        match self {
            Self::NonFinite { what, value } => Self::NonFinite { what: format!("{what} at {at}"), value },
            other => other,
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, MetaError>;
