//! Shared helpers for the camels-model and camels-meta tests: fixture paths and reading reference tensors.

#![allow(dead_code, missing_docs, unused_imports)]

use std::path::PathBuf;

use burn::prelude::*;
use camels_model::reference::{self, TensorFile};
pub use camels_model::reference::{rel_err, values};

/// The CPU backend, and the same under one and two levels of autodiff.
pub type Cpu = camels_model::device::Cpu;
pub type Ad = burn::backend::Autodiff<Cpu>;
pub type Ad2 = burn::backend::Autodiff<Ad>;

/// `fixtures/` at the workspace root.
pub fn fixtures() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures"))
}

/// A scratch directory unique to this test process and `name`.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("camels-model-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Reference tensors written by `fixtures/gen/*.py`; panics on a missing tensor (tests only).
pub struct Reference(TensorFile);

impl Reference {
    pub fn open(path: PathBuf) -> Self {
        Self(TensorFile::open(&path).unwrap_or_else(|e| panic!("{e}")))
    }
    pub fn names(&self) -> Vec<String> {
        self.0.names()
    }
    pub fn shape(&self, name: &str) -> Vec<usize> {
        self.0.shape(name).unwrap_or_else(|e| panic!("{e}"))
    }
    pub fn f32(&self, name: &str) -> Vec<f32> {
        self.0.f32(name).unwrap_or_else(|e| panic!("{e}"))
    }
    pub fn i64(&self, name: &str) -> Vec<i64> {
        self.0.i64(name).unwrap_or_else(|e| panic!("{e}"))
    }
    pub fn ids<B: Backend>(&self, name: &str, device: &B::Device) -> Tensor<B, 2, Int> {
        self.0.ids(name, device).unwrap_or_else(|e| panic!("{e}"))
    }
    pub fn float<B: Backend, const D: usize>(&self, name: &str, device: &B::Device) -> Tensor<B, D> {
        self.0.float(name, device).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// max |a − b|, for slices of equal length.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    reference::max_abs_diff(a, b)
}
