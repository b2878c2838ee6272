//! Reference tensors in a safetensors file, and the error measures that parity checks use.
//!
//! `fixtures/gen/*.py` write what HF transformers and PyTorch computed; the tests and
//! `camels-cli check` (which runs the same comparisons on a GPU backend) read them through
//! [`TensorFile`].

use std::path::{Path, PathBuf};

use burn::prelude::*;
use safetensors::{Dtype, SafeTensors};

use crate::error::{ModelError, Result};

/// A safetensors file held in memory, read tensor by tensor as `f32` or `i64`.
pub struct TensorFile {
    path: PathBuf,
    bytes: Vec<u8>,
}

impl TensorFile {
    /// Reads `path`; fails if it is not a safetensors file.
    pub fn open(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| ModelError::io(path, e))?;
        SafeTensors::deserialize(&bytes)
            .map_err(|e| ModelError::NotSafetensors { path: path.into(), reason: e.to_string() })?;
        Ok(Self { path: path.into(), bytes })
    }

    fn st(&self) -> SafeTensors<'_> {
        SafeTensors::deserialize(&self.bytes).expect("validated in open")
    }

    fn view(&self, name: &str) -> Result<safetensors::tensor::TensorView<'_>> {
        self.st().tensor(name).map_err(|_| ModelError::MissingTensor {
            path: self.path.clone(),
            name: name.into(),
            expected: vec![],
        })
    }

    fn unsupported(&self, name: &str, dtype: Dtype) -> ModelError {
        ModelError::UnsupportedDtype { path: self.path.clone(), name: name.into(), dtype: format!("{dtype:?}") }
    }

    /// The tensor names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.st().names().into_iter().map(String::from).collect();
        names.sort();
        names
    }

    /// The shape of tensor `name`.
    pub fn shape(&self, name: &str) -> Result<Vec<usize>> {
        Ok(self.view(name)?.shape().to_vec())
    }

    /// Tensor `name` as `f32` values, row-major (f32, f64 and integer tensors).
    pub fn f32(&self, name: &str) -> Result<Vec<f32>> {
        let view = self.view(name)?;
        let data = view.data();
        Ok(match view.dtype() {
            Dtype::F32 => data.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))).collect(),
            Dtype::F64 => {
                data.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32).collect()
            }
            Dtype::I64 | Dtype::I32 => self.i64(name)?.into_iter().map(|x| x as f32).collect(),
            other => return Err(self.unsupported(name, other)),
        })
    }

    /// Integer tensor `name` as `i64` values, row-major.
    pub fn i64(&self, name: &str) -> Result<Vec<i64>> {
        let view = self.view(name)?;
        let data = view.data();
        Ok(match view.dtype() {
            Dtype::I64 => data.chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes"))).collect(),
            Dtype::I32 => {
                data.chunks_exact(4).map(|b| i64::from(i32::from_le_bytes(b.try_into().expect("4 bytes")))).collect()
            }
            other => return Err(self.unsupported(name, other)),
        })
    }

    /// Integer matrix `name` as token ids. // [B, T]
    pub fn ids<B: Backend>(&self, name: &str, device: &B::Device) -> Result<Tensor<B, 2, Int>> {
        let shape: [usize; 2] = self.fixed_shape(name)?;
        Ok(Tensor::from_data(TensorData::new(self.i64(name)?, shape), device))
    }

    /// Float tensor `name` of rank `D`.
    pub fn float<B: Backend, const D: usize>(&self, name: &str, device: &B::Device) -> Result<Tensor<B, D>> {
        let shape: [usize; D] = self.fixed_shape(name)?;
        Ok(Tensor::from_data(TensorData::new(self.f32(name)?, shape), device))
    }

    fn fixed_shape<const D: usize>(&self, name: &str) -> Result<[usize; D]> {
        let shape = self.shape(name)?;
        shape.clone().try_into().map_err(|_| ModelError::ShapeMismatch {
            path: self.path.clone(),
            name: name.into(),
            expected: vec![0; D],
            found: shape,
        })
    }
}

/// The values of a float tensor, as `f32`, row-major.
pub fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec::<f32>().expect("converted to f32")
}

/// max |a − b|; infinite when the lengths differ or any difference is NaN or infinite, so that a
/// broken backend can never pass a check.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return f32::INFINITY;
    }
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, |m, d| if d.is_finite() { m.max(d) } else { f32::INFINITY })
}

/// max |a − b| / max |b|: the max-norm relative error (infinite as [`max_abs_diff`] is).
pub fn rel_err(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().map(|x| x.abs()).fold(0.0, f32::max).max(1e-12);
    max_abs_diff(a, b) / scale
}
