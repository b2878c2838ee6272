//! Shared helpers for the camels-model and camels-meta tests: fixture paths and reading reference tensors.

#![allow(dead_code, missing_docs)]

use std::path::PathBuf;

use burn::prelude::*;
use safetensors::{Dtype, SafeTensors};

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

/// Reference tensors written by `fixtures/gen/*.py`.
pub struct Reference {
    bytes: Vec<u8>,
}

impl Reference {
    pub fn open(path: PathBuf) -> Self {
        Self { bytes: std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())) }
    }
    fn st(&self) -> SafeTensors<'_> {
        SafeTensors::deserialize(&self.bytes).unwrap()
    }
    pub fn names(&self) -> Vec<String> {
        self.st().names().into_iter().map(String::from).collect()
    }
    pub fn shape(&self, name: &str) -> Vec<usize> {
        self.st().tensor(name).unwrap_or_else(|_| panic!("no `{name}`")).shape().to_vec()
    }
    pub fn f32(&self, name: &str) -> Vec<f32> {
        let st = self.st();
        let view = st.tensor(name).unwrap_or_else(|_| panic!("no `{name}`"));
        match view.dtype() {
            Dtype::F32 => view.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect(),
            Dtype::F64 => {
                view.data().chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap()) as f32).collect()
            }
            Dtype::I64 | Dtype::I32 => self.i64(name).into_iter().map(|x| x as f32).collect(),
            other => panic!("`{name}` is {other:?}"),
        }
    }
    pub fn i64(&self, name: &str) -> Vec<i64> {
        let st = self.st();
        let view = st.tensor(name).unwrap_or_else(|_| panic!("no `{name}`"));
        match view.dtype() {
            Dtype::I64 => view.data().chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap())).collect(),
            Dtype::I32 => {
                view.data().chunks_exact(4).map(|b| i64::from(i32::from_le_bytes(b.try_into().unwrap()))).collect()
            }
            other => panic!("`{name}` is {other:?}"),
        }
    }
    pub fn ids<B: Backend>(&self, name: &str, device: &B::Device) -> Tensor<B, 2, Int> {
        let shape = self.shape(name);
        Tensor::from_data(TensorData::new(self.i64(name), [shape[0], shape[1]]), device)
    }
    pub fn float<B: Backend, const D: usize>(&self, name: &str, device: &B::Device) -> Tensor<B, D> {
        let shape: [usize; D] = self.shape(name).try_into().unwrap();
        Tensor::from_data(TensorData::new(self.f32(name), shape), device)
    }
}

/// Values of a float tensor.
pub fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec::<f32>().unwrap()
}

/// max |a − b|.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// max |a − b| / max |b| (normwise relative error in the max norm).
pub fn rel_err(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().map(|x| x.abs()).fold(0.0, f32::max).max(1e-12);
    max_abs_diff(a, b) / scale
}
