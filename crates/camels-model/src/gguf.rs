//! GGUF files (llama.cpp's format, versions 2 and 3): metadata, tensor infos, dequantisation to f32,
//! the HF `LlamaForCausalLM` view of the tensors, the architecture's hyper-parameters and the tokenizer.
//!
//! Written from the specification (ggml-org/ggml `docs/gguf.md`) and checked against gguf-py
//! (`fixtures/gen/gguf_quants.py`, `fixtures/gen/smollm2_gguf.py`). The whole file is read into
//! memory; every count, length and offset in it is checked against the file's size with checked
//! arithmetic before anything is allocated, so a corrupt file gives a [`ModelError`] naming the
//! file (and the tensor or metadata key) instead of a panic or a huge allocation.
//!
//! Layout (all little-endian):
//! - header: magic `GGUF`, u32 version, u64 tensor count, u64 metadata count;
//! - metadata: key (u64 length + UTF-8), u32 value type, value ([`GgufValue`]);
//! - tensor infos: name, u32 number of dimensions, u64 dimensions **innermost first** (an HF
//!   `[out, in]` matrix is listed as `[in, out]`), u32 ggml type ([`GgmlType`]), u64 offset from the
//!   start of the data section (a multiple of the alignment);
//! - the data section, at the end of the infos rounded up to `general.alignment` (32 when absent).
//!
//! ```no_run
//! use camels_model::gguf::GgufFile;
//!
//! let gguf = GgufFile::open("SmolLM2-135M-Instruct.Q4_1.gguf".as_ref())?;
//! let hparams = gguf.llama_hparams()?;
//! let (shape, values) = gguf.dequantize("token_embd.weight")?; // [V, C], row-major
//! assert_eq!(shape, [hparams.vocab_size, hparams.hidden_size]);
//! let tensors = gguf.hf_tensors()?; // `model.embed_tokens.weight`, ... (HF names and layout)
//! # let _ = (values, tensors);
//! # Ok::<(), camels_model::ModelError>(())
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use half::f16;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{AddedToken, Tokenizer};

use crate::error::{ModelError, Result};
use crate::hf::TensorMap;

/// The four bytes every GGUF file starts with.
pub const MAGIC: [u8; 4] = *b"GGUF";
/// The data alignment when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: usize = 32;
/// The most dimensions a tensor may have (ggml's `GGML_MAX_DIMS`).
pub const MAX_DIMS: usize = 4;
/// The deepest nesting of metadata arrays accepted (arrays of arrays of …), so that a corrupt file
/// cannot exhaust the stack.
pub const MAX_ARRAY_NESTING: usize = 8;

/// A metadata value, one variant per GGUF value type (the type id in parentheses).
#[derive(Debug, Clone, PartialEq)]
pub enum GgufValue {
    /// `u8` (0).
    U8(u8),
    /// `i8` (1).
    I8(i8),
    /// `u16` (2).
    U16(u16),
    /// `i16` (3).
    I16(i16),
    /// `u32` (4).
    U32(u32),
    /// `i32` (5).
    I32(i32),
    /// `f32` (6).
    F32(f32),
    /// `bool` (7), one byte 0 or 1.
    Bool(bool),
    /// A UTF-8 string (8): u64 length + bytes.
    String(String),
    /// An array (9): u32 element type + u64 count + elements, possibly arrays themselves.
    Array(Vec<GgufValue>),
    /// `u64` (10).
    U64(u64),
    /// `i64` (11).
    I64(i64),
    /// `f64` (12).
    F64(f64),
}

impl GgufValue {
    /// The GGUF name of the value's type (`u32`, `string`, `array`, …).
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::U8(_) => "u8",
            Self::I8(_) => "i8",
            Self::U16(_) => "u16",
            Self::I16(_) => "i16",
            Self::U32(_) => "u32",
            Self::I32(_) => "i32",
            Self::F32(_) => "f32",
            Self::Bool(_) => "bool",
            Self::String(_) => "string",
            Self::Array(_) => "array",
            Self::U64(_) => "u64",
            Self::I64(_) => "i64",
            Self::F64(_) => "f64",
        }
    }

    /// The value as an `i128` if it is an integer of any width.
    fn as_integer(&self) -> Option<i128> {
        Some(match *self {
            Self::U8(v) => v.into(),
            Self::I8(v) => v.into(),
            Self::U16(v) => v.into(),
            Self::I16(v) => v.into(),
            Self::U32(v) => v.into(),
            Self::I32(v) => v.into(),
            Self::U64(v) => v.into(),
            Self::I64(v) => v.into(),
            _ => return None,
        })
    }

    /// The value as a `u64` if it is a non-negative integer of any width.
    pub fn as_u64(&self) -> Option<u64> {
        self.as_integer().and_then(|v| u64::try_from(v).ok())
    }

    /// The value as an `i64` if it is an integer of any width that fits.
    pub fn as_i64(&self) -> Option<i64> {
        self.as_integer().and_then(|v| i64::try_from(v).ok())
    }

    /// The value as an `f64` if it is a float. An `f32` becomes the `f64` of its shortest decimal
    /// form (`1e-5f32` → `1e-5`, not `9.99999974e-6`), which is what the HF `config.json` it was
    /// converted from said.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Self::F32(v) => Some(format!("{v}").parse().unwrap_or(f64::from(v))),
            Self::F64(v) => Some(v),
            _ => None,
        }
    }

    /// The value as an `f32` if it is a float (an `f64` is rounded).
    pub fn as_f32(&self) -> Option<f32> {
        match *self {
            Self::F32(v) => Some(v),
            Self::F64(v) => Some(v as f32),
            _ => None,
        }
    }

    /// The value if it is a bool.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Self::Bool(v) => Some(v),
            _ => None,
        }
    }

    /// The value if it is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(v) => Some(v),
            _ => None,
        }
    }

    /// The elements if the value is an array.
    pub fn as_array(&self) -> Option<&[GgufValue]> {
        match self {
            Self::Array(v) => Some(v),
            _ => None,
        }
    }
}

/// A ggml tensor type id (`ggml_type`), known or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GgmlType(pub u32);

impl GgmlType {
    /// 32-bit floats.
    pub const F32: Self = Self(0);
    /// 16-bit IEEE floats.
    pub const F16: Self = Self(1);
    /// 32 weights: f16 d + 16 bytes of nibbles, w = d·(q − 8).
    pub const Q4_0: Self = Self(2);
    /// 32 weights: f16 d, f16 m + 16 bytes of nibbles, w = d·q + m.
    pub const Q4_1: Self = Self(3);
    /// 32 weights: f16 d + 32 × i8, w = d·q.
    pub const Q8_0: Self = Self(8);
    /// 256-weight super-blocks of 8 × 32 with 6-bit scales and mins, 4-bit weights.
    pub const Q4_K: Self = Self(12);
    /// 256-weight super-blocks of 8 × 32 with 6-bit scales and mins, 5-bit weights.
    pub const Q5_K: Self = Self(13);
    /// 256-weight super-blocks of 16 × 16 with 8-bit scales, 6-bit weights.
    pub const Q6_K: Self = Self(14);
    /// bfloat16.
    pub const BF16: Self = Self(30);

    /// The types [`GgufFile::dequantize`] reads.
    pub const SUPPORTED: [Self; 9] =
        [Self::F32, Self::F16, Self::BF16, Self::Q8_0, Self::Q4_0, Self::Q4_1, Self::Q4_K, Self::Q5_K, Self::Q6_K];

    /// ggml's name of the type (`Q4_1`), `unknown` for ids it does not define.
    pub fn name(self) -> &'static str {
        self.layout().map_or("unknown", |(name, _, _)| name)
    }

    /// (name, weights per block, bytes per block) of every type ggml defines (gguf-py's
    /// `GGML_QUANT_SIZES`), so that files holding types this reader cannot dequantise still open.
    fn layout(self) -> Option<(&'static str, usize, usize)> {
        const K: usize = 256;
        Some(match self.0 {
            0 => ("F32", 1, 4),
            1 => ("F16", 1, 2),
            2 => ("Q4_0", 32, 18),
            3 => ("Q4_1", 32, 20),
            6 => ("Q5_0", 32, 22),
            7 => ("Q5_1", 32, 24),
            8 => ("Q8_0", 32, 34),
            9 => ("Q8_1", 32, 40),
            10 => ("Q2_K", K, 4 + K / 16 + K / 4),
            11 => ("Q3_K", K, 2 + K / 4 + K / 8 + 12),
            12 => ("Q4_K", K, 4 + K / 2 + 12),
            13 => ("Q5_K", K, 4 + K / 2 + K / 8 + 12),
            14 => ("Q6_K", K, 2 + K / 2 + K / 4 + K / 16),
            15 => ("Q8_K", K, 4 + K + K / 8),
            16 => ("IQ2_XXS", K, 2 + K / 4),
            17 => ("IQ2_XS", K, 2 + K / 4 + K / 32),
            18 => ("IQ3_XXS", K, 2 + K / 4 + K / 8),
            19 => ("IQ1_S", K, 2 + K / 8 + K / 16),
            20 => ("IQ4_NL", 32, 18),
            21 => ("IQ3_S", K, 2 + K / 4 + K / 8 + K / 32 + 4),
            22 => ("IQ2_S", K, 2 + K / 4 + K / 16),
            23 => ("IQ4_XS", K, 4 + K / 2 + K / 64),
            24 => ("I8", 1, 1),
            25 => ("I16", 1, 2),
            26 => ("I32", 1, 4),
            27 => ("I64", 1, 8),
            28 => ("F64", 1, 8),
            29 => ("IQ1_M", K, K / 8 + K / 16 + K / 32),
            30 => ("BF16", 1, 2),
            34 => ("TQ1_0", K, 2 + 4 * 13),
            35 => ("TQ2_0", K, 2 + 64),
            39 => ("MXFP4", 32, 17),
            _ => return None,
        })
    }

    /// Weights per block (1 for plain floats).
    pub fn block_size(self) -> Option<usize> {
        self.layout().map(|(_, block, _)| block)
    }

    /// Bytes per block.
    pub fn type_size(self) -> Option<usize> {
        self.layout().map(|(_, _, bytes)| bytes)
    }
}

impl fmt::Display for GgmlType {
    /// `Q5_0 (type 6)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (type {})", self.name(), self.0)
    }
}

/// One tensor's entry in the file: name, shape, type and where its bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GgufTensorInfo {
    /// The llama.cpp name (`blk.0.attn_q.weight`).
    pub name: String,
    /// Dimensions innermost first, as stored (`[in, out]` for an HF `[out, in]` matrix).
    pub dims: Vec<usize>,
    /// The ggml type of the data.
    pub ggml_type: GgmlType,
    /// Offset of the data from the start of the data section.
    pub offset: usize,
    /// Bytes of data, from the shape and the type.
    pub byte_len: usize,
}

impl GgufTensorInfo {
    /// The shape outermost first (HF/PyTorch order: `dims` reversed).
    pub fn hf_shape(&self) -> Vec<usize> {
        self.dims.iter().rev().copied().collect()
    }

    /// The number of weights (the product of the dimensions, 1 for a scalar).
    pub fn num_elements(&self) -> usize {
        self.dims.iter().product()
    }
}

/// What [`GgufFile::llama_hparams`] reads: the architecture's hyper-parameters, named as in HF's
/// `config.json` of `LlamaForCausalLM` / `Qwen2ForCausalLM`.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufLlamaParams {
    /// `llama`, or `qwen2` when `general.architecture` is `qwen2`.
    pub model_type: String,
    /// V: rows of `token_embd.weight` (else the number of tokenizer tokens, else `{arch}.vocab_size`).
    pub vocab_size: usize,
    /// C: `{arch}.embedding_length`.
    pub hidden_size: usize,
    /// The MLP width: `{arch}.feed_forward_length`.
    pub intermediate_size: usize,
    /// `{arch}.block_count`.
    pub num_hidden_layers: usize,
    /// NH: `{arch}.attention.head_count`.
    pub num_attention_heads: usize,
    /// NKV: `{arch}.attention.head_count_kv` (NH when absent).
    pub num_key_value_heads: usize,
    /// HD: `{arch}.attention.key_length`, else C / NH; `{arch}.rope.dimension_count` must equal it.
    pub head_dim: usize,
    /// `{arch}.context_length`.
    pub max_position_embeddings: usize,
    /// `{arch}.attention.layer_norm_rms_epsilon`.
    pub rms_norm_eps: f64,
    /// `{arch}.rope.freq_base` (10,000 when absent).
    pub rope_theta: f64,
    /// Whether the LM head is the token embedding: true when there is no `output.weight`.
    pub tie_word_embeddings: bool,
    /// Whether the attention projections have biases (`blk.0.attn_q.bias` is present).
    pub attention_bias: bool,
    /// `tokenizer.ggml.bos_token_id`.
    pub bos_token_id: Option<u32>,
    /// `tokenizer.ggml.eos_token_id`.
    pub eos_token_id: Option<u32>,
    /// `tokenizer.ggml.padding_token_id`.
    pub pad_token_id: Option<u32>,
}

/// A GGUF file read into memory: header, metadata, tensor infos and the data.
#[derive(Clone)]
pub struct GgufFile {
    /// The file (named in every error).
    pub path: PathBuf,
    /// The format version (2 or 3).
    pub version: u32,
    /// Metadata by key.
    pub metadata: BTreeMap<String, GgufValue>,
    /// Tensor infos in file order.
    pub tensors: Vec<GgufTensorInfo>,
    /// Data alignment (`general.alignment`, 32 when absent).
    pub alignment: usize,
    bytes: Vec<u8>,
    data_start: usize,
    by_name: HashMap<String, usize>,
}

impl fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("metadata", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .field("alignment", &self.alignment)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

/// A reading position in the file's bytes; `context` says what is being read, for errors.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    path: &'a Path,
    context: String,
}

impl<'a> Cursor<'a> {
    fn error(&self, reason: String) -> ModelError {
        ModelError::Gguf { path: self.path.into(), reason }
    }

    fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&end| end <= self.bytes.len());
        match end.and_then(|end| self.bytes.get(self.pos..end).map(|s| (s, end))) {
            Some((slice, end)) => {
                self.pos = end;
                Ok(slice)
            }
            None => Err(self.error(format!(
                "truncated file: {} needs {n} bytes at offset {}, but the file has {} bytes",
                self.context,
                self.pos,
                self.bytes.len()
            ))),
        }
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let slice = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// A u64 count or length that must fit in memory.
    fn len(&mut self, what: &str) -> Result<usize> {
        let at = self.pos;
        let n = self.u64()?;
        usize::try_from(n).map_err(|_| self.error(format!("{}: {what} {n} at offset {at} is too large", self.context)))
    }

    fn string(&mut self) -> Result<String> {
        let at = self.pos;
        let len = self.len("string length")?;
        if len > self.remaining() {
            return Err(self.error(format!(
                "truncated file: {} has a string of {len} bytes at offset {at}, but only {} bytes follow",
                self.context,
                self.remaining()
            )));
        }
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|e| self.error(format!("{}: the string at offset {at} is not UTF-8 ({e})", self.context)))
    }

    /// The least number of bytes a value of type `ty` takes (for checking counts before allocating).
    fn min_value_size(ty: u32) -> Option<usize> {
        Some(match ty {
            0 | 1 | 7 => 1,
            2 | 3 => 2,
            4..=6 => 4,
            8 => 8,
            9 => 12,
            10..=12 => 8,
            _ => return None,
        })
    }

    fn value(&mut self, ty: u32, depth: usize) -> Result<GgufValue> {
        Ok(match ty {
            0 => GgufValue::U8(u8::from_le_bytes(self.array()?)),
            1 => GgufValue::I8(i8::from_le_bytes(self.array()?)),
            2 => GgufValue::U16(u16::from_le_bytes(self.array()?)),
            3 => GgufValue::I16(i16::from_le_bytes(self.array()?)),
            4 => GgufValue::U32(self.u32()?),
            5 => GgufValue::I32(i32::from_le_bytes(self.array()?)),
            6 => GgufValue::F32(f32::from_le_bytes(self.array()?)),
            7 => {
                let at = self.pos;
                match self.array::<1>()? {
                    [0] => GgufValue::Bool(false),
                    [1] => GgufValue::Bool(true),
                    [b] => {
                        return Err(
                            self.error(format!("{}: bool at offset {at} is {b}, expected 0 or 1", self.context))
                        );
                    }
                }
            }
            8 => GgufValue::String(self.string()?),
            9 => {
                if depth >= MAX_ARRAY_NESTING {
                    return Err(
                        self.error(format!("{}: arrays nested more than {MAX_ARRAY_NESTING} deep", self.context))
                    );
                }
                let at = self.pos;
                let elem = self.u32()?;
                let min = Self::min_value_size(elem).ok_or_else(|| {
                    self.error(format!("{}: array at offset {at} has unknown element type {elem}", self.context))
                })?;
                let count = self.len("array length")?;
                if count.checked_mul(min).is_none_or(|need| need > self.remaining()) {
                    return Err(self.error(format!(
                        "truncated file: {} is an array of {count} elements at offset {at}, but only {} bytes follow",
                        self.context,
                        self.remaining()
                    )));
                }
                let mut values = Vec::with_capacity(count);
                for _ in 0..count {
                    values.push(self.value(elem, depth + 1)?);
                }
                GgufValue::Array(values)
            }
            10 => GgufValue::U64(self.u64()?),
            11 => GgufValue::I64(i64::from_le_bytes(self.array()?)),
            12 => GgufValue::F64(f64::from_le_bytes(self.array()?)),
            other => return Err(self.error(format!("{}: unknown value type {other}", self.context))),
        })
    }
}

/// Blocks of `N` bytes (the data of a tensor, whose length is a multiple of `N`).
fn blocks<const N: usize>(bytes: &[u8]) -> impl Iterator<Item = &[u8; N]> {
    bytes.chunks_exact(N).filter_map(|chunk| chunk.try_into().ok())
}

fn f16_at(lo: u8, hi: u8) -> f32 {
    f16::from_bits(u16::from_le_bytes([lo, hi])).to_f32()
}

/// The 6-bit scale and min of sub-block `j` (0..8) of a Q4_K/Q5_K super-block's 12 scale bytes.
fn k_scale_min(scales: &[u8; 12], j: usize) -> (f32, f32) {
    let (sc, m) = if j < 4 {
        (scales[j] & 0x3F, scales[j + 4] & 0x3F)
    } else {
        ((scales[j + 4] & 0x0F) | ((scales[j - 4] >> 6) << 4), (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4))
    };
    (f32::from(sc), f32::from(m))
}

fn split12(block: &[u8], at: usize) -> [u8; 12] {
    let mut out = [0u8; 12];
    if let Some(s) = block.get(at..at + 12) {
        out.copy_from_slice(s);
    }
    out
}

/// Dequantises `bytes` (whole blocks of `ty`) into `out`, in the same f32 operation order as
/// gguf-py (and ggml), so the values are bit-identical. `None` for a type not supported.
fn dequantize_into(ty: GgmlType, bytes: &[u8], out: &mut Vec<f32>) -> Option<()> {
    match ty {
        GgmlType::F32 => out.extend(blocks::<4>(bytes).map(|b| f32::from_le_bytes(*b))),
        GgmlType::F16 => out.extend(blocks::<2>(bytes).map(|b| f16_at(b[0], b[1]))),
        GgmlType::BF16 => {
            out.extend(blocks::<2>(bytes).map(|b| f32::from_bits(u32::from(u16::from_le_bytes(*b)) << 16)))
        }
        GgmlType::Q8_0 => {
            for b in blocks::<34>(bytes) {
                let d = f16_at(b[0], b[1]);
                out.extend(b[2..].iter().map(|&q| f32::from(q as i8) * d));
            }
        }
        GgmlType::Q4_0 => {
            for b in blocks::<18>(bytes) {
                let d = f16_at(b[0], b[1]);
                let qs = &b[2..];
                out.extend(qs.iter().map(|&q| d * f32::from((q & 0x0F) as i8 - 8)));
                out.extend(qs.iter().map(|&q| d * f32::from((q >> 4) as i8 - 8)));
            }
        }
        GgmlType::Q4_1 => {
            for b in blocks::<20>(bytes) {
                let (d, m) = (f16_at(b[0], b[1]), f16_at(b[2], b[3]));
                let qs = &b[4..];
                out.extend(qs.iter().map(|&q| d * f32::from(q & 0x0F) + m));
                out.extend(qs.iter().map(|&q| d * f32::from(q >> 4) + m));
            }
        }
        GgmlType::Q4_K => {
            // d, dmin, 12 scale bytes, 128 bytes of nibbles: 32-byte group g holds sub-blocks 2g
            // (low nibbles) and 2g + 1 (high nibbles).
            for b in blocks::<144>(bytes) {
                let (d, dmin) = (f16_at(b[0], b[1]), f16_at(b[2], b[3]));
                let scales = split12(b, 4);
                let qs = &b[16..];
                for (g, group) in qs.chunks_exact(32).enumerate() {
                    for (half, shift) in [(0, 0), (1, 4)] {
                        let (sc, m) = k_scale_min(&scales, 2 * g + half);
                        let (d1, m1) = (d * sc, dmin * m);
                        out.extend(group.iter().map(|&q| d1 * f32::from((q >> shift) & 0x0F) - m1));
                    }
                }
            }
        }
        GgmlType::Q5_K => {
            // d, dmin, 12 scale bytes, 32 bytes of high bits (bit s of byte l: weight l of
            // sub-block s), 128 bytes of nibbles as in Q4_K.
            for b in blocks::<176>(bytes) {
                let (d, dmin) = (f16_at(b[0], b[1]), f16_at(b[2], b[3]));
                let scales = split12(b, 4);
                let (qh, qs) = b[16..].split_at(32);
                for (g, group) in qs.chunks_exact(32).enumerate() {
                    for (half, shift) in [(0, 0), (1, 4)] {
                        let sub = 2 * g + half;
                        let (sc, m) = k_scale_min(&scales, sub);
                        let (d1, m1) = (d * sc, dmin * m);
                        out.extend(group.iter().zip(qh).map(|(&q, &h)| {
                            let q = ((q >> shift) & 0x0F) | (((h >> sub) & 1) << 4);
                            d1 * f32::from(q) - m1
                        }));
                    }
                }
            }
        }
        GgmlType::Q6_K => {
            // 128 bytes of low nibbles, 64 bytes of 2-bit high parts, 16 i8 scales (one per 16
            // weights), f16 d. Each half of 128 weights uses 64 low bytes and 32 high bytes:
            // weight 32k + l of the half has low nibble (k < 2: low, else high) of byte
            // l + 32·(k mod 2) and high bits 2k..2k+2 of byte l.
            for b in blocks::<210>(bytes) {
                let (ql, rest) = b.split_at(128);
                let (qh, rest) = rest.split_at(64);
                let (scales, d) = rest.split_at(16);
                let d = f16_at(d[0], d[1]);
                for (h, (ql, qh)) in ql.chunks_exact(64).zip(qh.chunks_exact(32)).enumerate() {
                    for k in 0..4 {
                        let low = &ql[32 * (k % 2)..32 * (k % 2) + 32];
                        let nibble_shift = if k < 2 { 0 } else { 4 };
                        for (l, (&lo, &hi)) in low.iter().zip(qh).enumerate() {
                            let q = ((lo >> nibble_shift) & 0x0F) | (((hi >> (2 * k)) & 3) << 4);
                            let scale = f32::from(scales[(128 * h + 32 * k + l) / 16] as i8);
                            out.push(d * scale * f32::from(q as i8 - 32));
                        }
                    }
                }
            }
        }
        _ => return None,
    }
    Some(())
}

/// The HF `LlamaForCausalLM` name of a llama.cpp tensor name (`blk.3.attn_q.weight` →
/// `model.layers.3.self_attn.q_proj.weight`), or `None` for names it has no counterpart for
/// (such as `rope_freqs.weight`).
pub fn hf_tensor_name(name: &str) -> Option<String> {
    let (stem, kind) = name.rsplit_once('.')?;
    if kind != "weight" && kind != "bias" {
        return None;
    }
    let global = match stem {
        "token_embd" => Some("model.embed_tokens"),
        "output_norm" => Some("model.norm"),
        "output" => Some("lm_head"),
        _ => None,
    };
    if let Some(hf) = global {
        return (kind == "weight").then(|| format!("{hf}.weight"));
    }
    let rest = stem.strip_prefix("blk.")?;
    let (layer, part) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (hf, has_bias) = match part {
        "attn_norm" => ("input_layernorm", false),
        "attn_q" => ("self_attn.q_proj", true),
        "attn_k" => ("self_attn.k_proj", true),
        "attn_v" => ("self_attn.v_proj", true),
        "attn_output" => ("self_attn.o_proj", true),
        "ffn_norm" => ("post_attention_layernorm", false),
        "ffn_gate" => ("mlp.gate_proj", true),
        "ffn_up" => ("mlp.up_proj", true),
        "ffn_down" => ("mlp.down_proj", true),
        _ => return None,
    };
    (kind == "weight" || has_bias).then(|| format!("model.layers.{layer}.{hf}.{kind}"))
}

/// Undoes llama.cpp's row permutation of `attn_q`/`attn_k` (and their biases): `values` is
/// `[heads·HD, cols]` row-major; `hf_row[h·HD + p·HD/2 + i] = gguf_row[h·HD + 2i + p]`.
fn unpermute_rows(values: &[f32], heads: usize, head_dim: usize, cols: usize) -> Vec<f32> {
    let half = head_dim / 2;
    let mut out = vec![0.0; values.len()];
    for h in 0..heads {
        for i in 0..half {
            for p in 0..2 {
                let src = (h * head_dim + 2 * i + p) * cols;
                let dst = (h * head_dim + p * half + i) * cols;
                if let (Some(from), Some(to)) = (values.get(src..src + cols), out.get_mut(dst..dst + cols)) {
                    to.copy_from_slice(from);
                }
            }
        }
    }
    out
}

impl GgufFile {
    /// Reads and checks a GGUF file (header, metadata, tensor infos, that every tensor's data lies
    /// inside the file and does not overlap the next one).
    pub fn open(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| ModelError::io(path, e))?;
        Self::from_bytes(path, bytes)
    }

    /// Parses a GGUF file already in memory; `path` is only named in errors.
    pub fn from_bytes(path: impl Into<PathBuf>, bytes: Vec<u8>) -> Result<Self> {
        let path = path.into();
        let mut cur = Cursor { bytes: &bytes, pos: 0, path: &path, context: "the magic".into() };
        let magic = cur.array::<4>()?;
        if magic != MAGIC {
            return Err(cur.error(format!(
                "not a GGUF file: it starts with {:?}, expected \"GGUF\"",
                String::from_utf8_lossy(&magic)
            )));
        }
        cur.context = "the header".into();
        let version = cur.u32()?;
        if version != 2 && version != 3 {
            let hint = if version.swap_bytes() == 2 || version.swap_bytes() == 3 {
                " (a big-endian file, which is not supported)"
            } else if version == 1 {
                " (version 1 predates 64-bit counts; reconvert the model)"
            } else {
                ""
            };
            return Err(cur.error(format!("unsupported GGUF version {version}{hint}: expected 2 or 3")));
        }
        let tensor_count = cur.len("tensor count")?;
        let kv_count = cur.len("metadata count")?;
        // A key-value pair takes at least 13 bytes (empty key, type, one-byte value), a tensor info 24.
        for (count, min, what) in [(kv_count, 13usize, "metadata entries"), (tensor_count, 24, "tensors")] {
            if count.checked_mul(min).is_none_or(|need| need > cur.remaining()) {
                return Err(cur.error(format!(
                    "truncated file (or a corrupt count): the header says {count} {what}, but the {} bytes after it \
                     cannot hold them (each takes at least {min})",
                    cur.remaining()
                )));
            }
        }

        let mut metadata = BTreeMap::new();
        for index in 0..kv_count {
            cur.context = format!("metadata entry {index}");
            let key = cur.string()?;
            cur.context = format!("metadata `{key}`");
            let ty = cur.u32()?;
            let value = cur.value(ty, 0)?;
            if metadata.insert(key.clone(), value).is_some() {
                return Err(ModelError::GgufMetadata { path: path.clone(), key, reason: "appears twice".into() });
            }
        }

        let alignment = match metadata.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(v) => {
                v.as_u64().and_then(|a| usize::try_from(a).ok()).filter(|a| a.is_power_of_two()).ok_or_else(|| {
                    ModelError::GgufMetadata {
                        path: path.clone(),
                        key: "general.alignment".into(),
                        reason: format!("expected a power-of-two integer, found {v:?}"),
                    }
                })?
            }
        };

        let mut tensors = Vec::with_capacity(tensor_count);
        let mut by_name = HashMap::with_capacity(tensor_count);
        for index in 0..tensor_count {
            cur.context = format!("tensor info {index}");
            let name = cur.string()?;
            cur.context = format!("tensor `{name}`");
            let tensor_error =
                |reason: String| ModelError::GgufTensor { path: path.clone(), name: name.clone(), reason };
            let n_dims = cur.u32()? as usize;
            if n_dims > MAX_DIMS {
                return Err(tensor_error(format!("has {n_dims} dimensions, at most {MAX_DIMS} are allowed")));
            }
            let mut dims = Vec::with_capacity(n_dims);
            for _ in 0..n_dims {
                dims.push(cur.len("dimension")?);
            }
            let ggml_type = GgmlType(cur.u32()?);
            let offset = cur.len("data offset")?;
            let (block, type_size) = match ggml_type.layout() {
                Some((_, block, size)) => (block, size),
                None => return Err(tensor_error(format!("has unknown ggml type {}", ggml_type.0))),
            };
            let elements = dims
                .iter()
                .try_fold(1usize, |acc, &d| acc.checked_mul(d))
                .ok_or_else(|| tensor_error(format!("shape {dims:?} has too many elements")))?;
            let inner = dims.first().copied().unwrap_or(1);
            if inner % block != 0 {
                return Err(tensor_error(format!(
                    "dimension 0 (innermost) is {inner}, not a multiple of the {ggml_type} block size {block}"
                )));
            }
            let byte_len = (elements / block)
                .checked_mul(type_size)
                .ok_or_else(|| tensor_error(format!("shape {dims:?} has too many bytes")))?;
            if offset % alignment != 0 {
                return Err(tensor_error(format!(
                    "data offset {offset} is not a multiple of the alignment {alignment}"
                )));
            }
            if by_name.insert(name.clone(), index).is_some() {
                return Err(tensor_error("appears twice".into()));
            }
            tensors.push(GgufTensorInfo { name, dims, ggml_type, offset, byte_len });
        }

        let data_start = cur.pos.div_ceil(alignment).saturating_mul(alignment);
        let data_len = bytes.len().saturating_sub(data_start);
        let mut order: Vec<&GgufTensorInfo> = tensors.iter().collect();
        order.sort_by_key(|t| t.offset);
        for (i, t) in order.iter().enumerate() {
            let end = t.offset.checked_add(t.byte_len);
            if end.is_none_or(|end| end > data_len) {
                return Err(ModelError::GgufTensor {
                    path: path.clone(),
                    name: t.name.clone(),
                    reason: format!(
                        "data past the end of the file: {} bytes ({:?} of {}) at data offset {} (file offset {}), \
                         but the file has {} bytes",
                        t.byte_len,
                        t.dims,
                        t.ggml_type,
                        t.offset,
                        data_start.saturating_add(t.offset),
                        bytes.len()
                    ),
                });
            }
            if let Some(next) = order.get(i + 1)
                && end.is_some_and(|end| end > next.offset)
            {
                return Err(ModelError::GgufTensor {
                    path: path.clone(),
                    name: t.name.clone(),
                    reason: format!(
                        "size disagrees with its shape: {:?} of {} needs {} bytes from data offset {}, \
                         but the next tensor `{}` starts {} bytes after it",
                        t.dims,
                        t.ggml_type,
                        t.byte_len,
                        t.offset,
                        next.name,
                        next.offset - t.offset
                    ),
                });
            }
        }
        Ok(Self { path, version, metadata, tensors, alignment, bytes, data_start, by_name })
    }

    fn metadata_error(&self, key: &str, reason: impl Into<String>) -> ModelError {
        ModelError::GgufMetadata { path: self.path.clone(), key: key.into(), reason: reason.into() }
    }

    fn tensor_error(&self, name: &str, reason: impl Into<String>) -> ModelError {
        ModelError::GgufTensor { path: self.path.clone(), name: name.into(), reason: reason.into() }
    }

    /// A metadata value, if present.
    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.metadata.get(key)
    }

    /// A metadata value, or an error naming the missing key.
    pub fn require(&self, key: &str) -> Result<&GgufValue> {
        self.get(key).ok_or_else(|| self.metadata_error(key, "missing"))
    }

    fn typed<'a, T>(&'a self, key: &str, expected: &str, f: impl Fn(&'a GgufValue) -> Option<T>) -> Result<T> {
        let value = self.require(key)?;
        f(value).ok_or_else(|| self.metadata_error(key, format!("expected {expected}, found {}", describe(value))))
    }

    fn optional<'a, T>(
        &'a self,
        key: &str,
        expected: &str,
        f: impl Fn(&'a GgufValue) -> Option<T>,
    ) -> Result<Option<T>> {
        match self.get(key) {
            None => Ok(None),
            Some(_) => self.typed(key, expected, f).map(Some),
        }
    }

    /// A string entry.
    pub fn get_str(&self, key: &str) -> Result<&str> {
        self.typed(key, "a string", GgufValue::as_str)
    }

    /// A non-negative integer entry of any width.
    pub fn get_u64(&self, key: &str) -> Result<u64> {
        self.typed(key, "a non-negative integer", GgufValue::as_u64)
    }

    /// A non-negative integer entry of any width that fits in a `usize`.
    pub fn get_usize(&self, key: &str) -> Result<usize> {
        self.typed(key, "a non-negative integer", |v| v.as_u64().and_then(|v| usize::try_from(v).ok()))
    }

    /// A non-negative integer entry of any width that fits in a `u32`.
    pub fn get_u32(&self, key: &str) -> Result<u32> {
        self.typed(key, "an integer in 0..2^32", |v| v.as_u64().and_then(|v| u32::try_from(v).ok()))
    }

    /// An integer entry of any width that fits in an `i64`.
    pub fn get_i64(&self, key: &str) -> Result<i64> {
        self.typed(key, "an integer", GgufValue::as_i64)
    }

    /// A float entry (`f32` or `f64`).
    pub fn get_f32(&self, key: &str) -> Result<f32> {
        self.typed(key, "a float", GgufValue::as_f32)
    }

    /// A float entry (`f32` or `f64`; see [`GgufValue::as_f64`] for how an `f32` widens).
    pub fn get_f64(&self, key: &str) -> Result<f64> {
        self.typed(key, "a float", GgufValue::as_f64)
    }

    /// A bool entry.
    pub fn get_bool(&self, key: &str) -> Result<bool> {
        self.typed(key, "a bool", GgufValue::as_bool)
    }

    /// An array of strings.
    pub fn get_str_array(&self, key: &str) -> Result<Vec<&str>> {
        self.typed(key, "an array of strings", |v| v.as_array()?.iter().map(GgufValue::as_str).collect())
    }

    /// An array of integers of any width.
    pub fn get_i64_array(&self, key: &str) -> Result<Vec<i64>> {
        self.typed(key, "an array of integers", |v| v.as_array()?.iter().map(GgufValue::as_i64).collect())
    }

    /// `general.architecture` (`llama`, `qwen2`, …).
    pub fn architecture(&self) -> Result<&str> {
        self.get_str("general.architecture")
    }

    /// A tensor's info by its llama.cpp name.
    pub fn tensor(&self, name: &str) -> Option<&GgufTensorInfo> {
        self.by_name.get(name).and_then(|&i| self.tensors.get(i))
    }

    fn require_tensor(&self, name: &str) -> Result<&GgufTensorInfo> {
        self.tensor(name).ok_or_else(|| self.tensor_error(name, "not in the file"))
    }

    /// A tensor's raw bytes (checked to lie inside the file when it was opened).
    pub fn tensor_bytes(&self, name: &str) -> Result<&[u8]> {
        let info = self.require_tensor(name)?;
        let start = self.data_start.checked_add(info.offset);
        start
            .and_then(|s| self.bytes.get(s..s.checked_add(info.byte_len)?))
            .ok_or_else(|| self.tensor_error(name, "data past the end of the file"))
    }

    /// A tensor dequantised to f32: its shape outermost first (HF order, `dims` reversed) and its
    /// values row-major (for a `[out, in]` weight, row r is output r). Supported types:
    /// [`GgmlType::SUPPORTED`].
    pub fn dequantize(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        let info = self.require_tensor(name)?;
        let bytes = self.tensor_bytes(name)?;
        let mut values = Vec::with_capacity(info.num_elements());
        dequantize_into(info.ggml_type, bytes, &mut values).ok_or_else(|| {
            let supported: Vec<&str> = GgmlType::SUPPORTED.iter().map(|t| t.name()).collect();
            self.tensor_error(
                name,
                format!("unsupported type {} (supported: {})", info.ggml_type, supported.join(", ")),
            )
        })?;
        Ok((info.hf_shape(), values))
    }

    /// The architecture's hyper-parameters for `llama` and `qwen2` files (see [`GgufLlamaParams`]
    /// for where each comes from). Fails, naming the key, on another architecture, on a missing
    /// entry, on RoPE scaling and on partial rotary embeddings, which the Llama model lacks.
    pub fn llama_hparams(&self) -> Result<GgufLlamaParams> {
        let arch = self.architecture()?;
        let model_type = match arch {
            "llama" => "llama",
            "qwen2" => "qwen2",
            other => {
                return Err(self.metadata_error(
                    "general.architecture",
                    format!("architecture `{other}` is not supported (llama, qwen2)"),
                ));
            }
        };
        let key = |name: &str| format!("{arch}.{name}");
        let hidden_size = self.get_usize(&key("embedding_length"))?;
        let num_attention_heads = self.get_usize(&key("attention.head_count"))?;
        if num_attention_heads == 0 || hidden_size == 0 {
            return Err(self.metadata_error(&key("attention.head_count"), "heads and width must be positive"));
        }
        let num_key_value_heads = self
            .optional(&key("attention.head_count_kv"), "an integer", GgufValue::as_u64)?
            .map_or(Ok(num_attention_heads), |v| {
                usize::try_from(v).map_err(|_| self.metadata_error(&key("attention.head_count_kv"), "too large"))
            })?;
        let head_dim = match self.get(&key("attention.key_length")) {
            Some(_) => self.get_usize(&key("attention.key_length"))?,
            None if hidden_size % num_attention_heads == 0 => hidden_size / num_attention_heads,
            None => {
                return Err(self.metadata_error(
                    &key("attention.head_count"),
                    format!("{num_attention_heads} heads do not divide the width {hidden_size} (and no key_length)"),
                ));
            }
        };
        for other in ["attention.value_length", "rope.dimension_count"] {
            if let Some(v) = self.optional(&key(other), "an integer", GgufValue::as_u64)?
                && v != head_dim as u64
            {
                return Err(self.metadata_error(
                    &key(other),
                    format!("is {v} but the head size is {head_dim}: partial rotary embeddings are not supported"),
                ));
            }
        }
        if let Some(kind) = self.optional(&key("rope.scaling.type"), "a string", GgufValue::as_str)?
            && kind != "none"
        {
            return Err(
                self.metadata_error(&key("rope.scaling.type"), format!("RoPE scaling `{kind}` is not supported"))
            );
        }
        if let Some(factor) = self.optional(&key("rope.scaling.factor"), "a float", GgufValue::as_f64)?
            && factor != 1.0
        {
            return Err(
                self.metadata_error(&key("rope.scaling.factor"), format!("RoPE scaling by {factor} is not supported"))
            );
        }
        let tokens = self.optional("tokenizer.ggml.tokens", "an array", |v| v.as_array().map(<[_]>::len))?;
        let vocab_size = match (self.tensor("token_embd.weight"), tokens) {
            (Some(t), _) => t.hf_shape().first().copied().unwrap_or(0),
            (None, Some(n)) => n,
            (None, None) => self.get_usize(&key("vocab_size"))?,
        };
        let id = |name: &str| self.optional(name, "an integer in 0..2^32", |v| u32::try_from(v.as_u64()?).ok());
        Ok(GgufLlamaParams {
            model_type: model_type.into(),
            vocab_size,
            hidden_size,
            intermediate_size: self.get_usize(&key("feed_forward_length"))?,
            num_hidden_layers: self.get_usize(&key("block_count"))?,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            max_position_embeddings: self.get_usize(&key("context_length"))?,
            rms_norm_eps: self.get_f64(&key("attention.layer_norm_rms_epsilon"))?,
            rope_theta: self.optional(&key("rope.freq_base"), "a float", GgufValue::as_f64)?.unwrap_or(10_000.0),
            tie_word_embeddings: self.tensor("output.weight").is_none(),
            attention_bias: self.tensor("blk.0.attn_q.bias").is_some(),
            bos_token_id: id("tokenizer.ggml.bos_token_id")?,
            eos_token_id: id("tokenizer.ggml.eos_token_id")?,
            pad_token_id: id("tokenizer.ggml.padding_token_id")?,
        })
    }

    /// Every tensor dequantised to f32 under its HF `LlamaForCausalLM` name ([`hf_tensor_name`]), in
    /// HF layout: shapes outermost first (`[out, in]` weights, `[V, C]` embedding), and, for the
    /// `llama` architecture, the rows of `attn_q`/`attn_k` (weights and biases) put back from
    /// llama.cpp's adjacent-pair order into HF's rotate-half order (NH heads for q, NKV for k).
    ///
    /// Every tensor must have an HF name: any other (such as `rope_freqs.weight`, the RoPE
    /// frequency factors of Llama 3.1's scaling) fails with [`ModelError::UnexpectedTensors`] naming
    /// them all, rather than being dropped silently.
    pub fn hf_tensors(&self) -> Result<TensorMap> {
        let params = self.llama_hparams()?;
        let unknown: Vec<String> =
            self.tensors.iter().filter(|t| hf_tensor_name(&t.name).is_none()).map(|t| t.name.clone()).collect();
        if !unknown.is_empty() {
            return Err(ModelError::UnexpectedTensors { path: self.path.clone(), names: unknown });
        }
        let permuted = params.model_type == "llama";
        let mut out = BTreeMap::new();
        for info in &self.tensors {
            let Some(hf) = hf_tensor_name(&info.name) else { continue };
            let (shape, mut values) = self.dequantize(&info.name)?;
            let heads = if info.name.contains(".attn_q.") {
                Some(params.num_attention_heads)
            } else if info.name.contains(".attn_k.") {
                Some(params.num_key_value_heads)
            } else {
                None
            };
            if let (true, Some(heads)) = (permuted, heads) {
                let rows = shape.first().copied().unwrap_or(0);
                let hd = params.head_dim;
                if hd % 2 != 0 || heads.checked_mul(hd) != Some(rows) {
                    return Err(self.tensor_error(
                        &info.name,
                        format!("has {rows} rows, expected {heads} heads × {hd} (an even head size)"),
                    ));
                }
                let cols = shape.iter().skip(1).product();
                values = unpermute_rows(&values, heads, hd, cols);
            }
            out.insert(hf, (shape, values));
        }
        Ok(out)
    }

    /// `(bos, eos, pad)` from `tokenizer.ggml.bos_token_id`, `eos_token_id` and `padding_token_id`;
    /// `None` where absent or not an integer in `0..2^32`.
    pub fn special_ids(&self) -> (Option<u32>, Option<u32>, Option<u32>) {
        let id = |key: &str| self.get(key).and_then(GgufValue::as_u64).and_then(|v| u32::try_from(v).ok());
        (id("tokenizer.ggml.bos_token_id"), id("tokenizer.ggml.eos_token_id"), id("tokenizer.ggml.padding_token_id"))
    }

    /// The tokenizer the metadata describes, as HF `tokenizers` builds GPT-2's: a byte-level BPE
    /// (`tokenizer.ggml.model = gpt2`) over `tokenizer.ggml.tokens` (id = position) and
    /// `tokenizer.ggml.merges` ("a b", split at the first space); tokens of `token_type` 3 (control)
    /// are special added tokens, of type 4 (user-defined) plain added tokens. Pre-tokenizer: for
    /// `tokenizer.ggml.pre = smollm`, every digit split off on its own, then the GPT-2 byte-level
    /// regex (`Sequence[Digits(individual), ByteLevel]`); for any other or no `pre`, GPT-2's
    /// byte-level pre-tokenizer alone (other values are logged, as their own regexes are not
    /// reproduced). Byte-level decoder; byte-level post-processor with offsets not trimmed.
    pub fn tokenizer(&self) -> Result<Tokenizer> {
        let model = self.get_str("tokenizer.ggml.model")?;
        if model != "gpt2" {
            return Err(self.metadata_error(
                "tokenizer.ggml.model",
                format!("tokenizer model `{model}` is not supported (only `gpt2`, byte-level BPE)"),
            ));
        }
        let tokens = self.get_str_array("tokenizer.ggml.tokens")?;
        let merges = self.get_str_array("tokenizer.ggml.merges")?;
        let types = match self.get("tokenizer.ggml.token_type") {
            Some(_) => self.get_i64_array("tokenizer.ggml.token_type")?,
            None => Vec::new(),
        };
        if !types.is_empty() && types.len() != tokens.len() {
            return Err(self.metadata_error(
                "tokenizer.ggml.token_type",
                format!("has {} entries for {} tokens", types.len(), tokens.len()),
            ));
        }
        let mut vocab = Vocab::default();
        for (id, token) in tokens.iter().enumerate() {
            let id = u32::try_from(id).map_err(|_| self.metadata_error("tokenizer.ggml.tokens", "too many tokens"))?;
            if vocab.insert((*token).to_string(), id).is_some() {
                return Err(self.metadata_error("tokenizer.ggml.tokens", format!("token {token:?} appears twice")));
            }
        }
        let merges = merges
            .iter()
            .enumerate()
            .map(|(i, m)| {
                m.split_once(' ').map(|(a, b)| (a.to_string(), b.to_string())).ok_or_else(|| {
                    self.metadata_error("tokenizer.ggml.merges", format!("merge {i} ({m:?}) is not two tokens"))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(|e| ModelError::Tokenizer(format!("{}: {e}", self.path.display())))?;
        let mut tokenizer = Tokenizer::new(bpe);
        let byte_level = ByteLevel::new(false, true, true);
        let pre = self.get("tokenizer.ggml.pre").and_then(GgufValue::as_str);
        match pre {
            Some("smollm") => {
                tokenizer.with_pre_tokenizer(Some(Sequence::new(vec![Digits::new(true).into(), byte_level.into()])));
            }
            other => {
                if let Some(pre) = other.filter(|p| !matches!(*p, "default" | "gpt2" | "gpt-2")) {
                    tracing::warn!(
                        "{}: tokenizer.ggml.pre `{pre}` is read as GPT-2's byte-level pre-tokenizer",
                        self.path.display()
                    );
                }
                tokenizer.with_pre_tokenizer(Some(byte_level));
            }
        }
        tokenizer.with_decoder(Some(ByteLevel::default())).with_post_processor(Some(ByteLevel::new(true, false, true)));
        let added = |kind: i64| -> Vec<AddedToken> {
            tokens
                .iter()
                .zip(&types)
                .filter(|(_, t)| **t == kind)
                .map(|(token, _)| AddedToken::from((*token).to_string(), kind == 3))
                .collect()
        };
        tokenizer.add_special_tokens(&added(3));
        tokenizer.add_tokens(&added(4));
        Ok(tokenizer)
    }
}

/// A short description of a value for error messages: its type and, for scalars, the value.
fn describe(value: &GgufValue) -> String {
    match value {
        GgufValue::Array(items) => match items.first() {
            Some(first) => format!("an array of {} {}s", items.len(), first.type_name()),
            None => "an empty array".into(),
        },
        GgufValue::String(s) => format!("string {s:?}"),
        other => format!("{} {other:?}", other.type_name()),
    }
}
