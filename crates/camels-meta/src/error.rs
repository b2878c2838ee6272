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
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, MetaError>;
