//! The GGUF reader: clear errors on malformed files (synthetic files from a small writer below),
//! no panic on corrupted bytes, dequantisation equal to gguf-py's (`fixtures/gguf/quants.gguf`, from
//! `python fixtures/gen/gguf_quants.py`), and the real SmolLM2 file against gguf-py and the Python
//! `tokenizers` (`fixtures/gguf/smollm2-checksums.json`, from `python fixtures/gen/smollm2_gguf.py`),
//! when `$CAMELS_MODELS_DIR` (default `../shared/models`) holds it.

mod common;

use std::path::{Path, PathBuf};

use camels_model::ModelError;
use camels_model::gguf::{GgmlType, GgufFile, GgufValue, hf_tensor_name};
use common::*;

// ---------------------------------------------------------------------------------------------
// A tiny GGUF writer (tests only), written from the specification.

/// Value type ids of the GGUF specification.
mod ty {
    pub const U8: u32 = 0;
    pub const I8: u32 = 1;
    pub const U16: u32 = 2;
    pub const I16: u32 = 3;
    pub const U32: u32 = 4;
    pub const I32: u32 = 5;
    pub const F32: u32 = 6;
    pub const BOOL: u32 = 7;
    pub const STRING: u32 = 8;
    pub const ARRAY: u32 = 9;
    pub const U64: u32 = 10;
    pub const I64: u32 = 11;
    pub const F64: u32 = 12;
}

fn gguf_string(s: &str) -> Vec<u8> {
    let mut out = (s.len() as u64).to_le_bytes().to_vec();
    out.extend(s.as_bytes());
    out
}

/// An array value's bytes: element type, count, the elements' bytes.
fn gguf_array(elem: u32, items: &[Vec<u8>]) -> Vec<u8> {
    let mut out = elem.to_le_bytes().to_vec();
    out.extend((items.len() as u64).to_le_bytes());
    for item in items {
        out.extend(item);
    }
    out
}

#[derive(Default)]
struct Writer {
    kv: Vec<(String, u32, Vec<u8>)>,
    tensors: Vec<(String, Vec<u64>, u32, Vec<u8>)>,
    alignment: usize,
    version: u32,
}

impl Writer {
    fn new() -> Self {
        Self { alignment: 32, version: 3, ..Default::default() }
    }
    fn kv(mut self, key: &str, ty: u32, value: Vec<u8>) -> Self {
        self.kv.push((key.into(), ty, value));
        self
    }
    fn str(self, key: &str, value: &str) -> Self {
        self.kv(key, ty::STRING, gguf_string(value))
    }
    fn u32(self, key: &str, value: u32) -> Self {
        self.kv(key, ty::U32, value.to_le_bytes().to_vec())
    }
    fn f32(self, key: &str, value: f32) -> Self {
        self.kv(key, ty::F32, value.to_le_bytes().to_vec())
    }
    fn tensor(mut self, name: &str, dims: &[u64], ggml_type: u32, data: Vec<u8>) -> Self {
        self.tensors.push((name.into(), dims.to_vec(), ggml_type, data));
        self
    }
    fn f32_tensor(self, name: &str, dims: &[u64], values: &[f32]) -> Self {
        self.tensor(name, dims, 0, values.iter().flat_map(|v| v.to_le_bytes()).collect())
    }
    /// The file's bytes; tensor data is laid out in order, each at an aligned offset.
    fn bytes(&self) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend(self.version.to_le_bytes());
        out.extend((self.tensors.len() as u64).to_le_bytes());
        out.extend((self.kv.len() as u64).to_le_bytes());
        for (key, ty, value) in &self.kv {
            out.extend(gguf_string(key));
            out.extend(ty.to_le_bytes());
            out.extend(value);
        }
        let mut data = Vec::new();
        for (name, dims, ggml_type, bytes) in &self.tensors {
            out.extend(gguf_string(name));
            out.extend((dims.len() as u32).to_le_bytes());
            for d in dims {
                out.extend(d.to_le_bytes());
            }
            out.extend(ggml_type.to_le_bytes());
            out.extend((data.len() as u64).to_le_bytes());
            data.extend(bytes);
            data.resize(data.len().next_multiple_of(self.alignment), 0);
        }
        out.resize(out.len().next_multiple_of(self.alignment), 0);
        out.extend(data);
        out
    }
}

fn open_bytes(name: &str, bytes: Vec<u8>) -> camels_model::Result<GgufFile> {
    GgufFile::from_bytes(PathBuf::from(format!("/tmp/{name}.gguf")), bytes)
}

fn err_text(result: camels_model::Result<impl std::fmt::Debug>) -> String {
    match result {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.to_string(),
    }
}

/// A Q8_0 block: f16 scale `d` and 32 quants.
fn q8_0_block(d: f32, q: impl Fn(usize) -> i8) -> Vec<u8> {
    let mut out = half::f16::from_f32(d).to_bits().to_le_bytes().to_vec();
    out.extend((0..32).map(|i| q(i) as u8));
    out
}

/// A small valid file with every metadata type, an F32 matrix and a Q8_0 matrix.
fn all_types_writer() -> Writer {
    let nested = gguf_array(
        ty::ARRAY,
        &[gguf_array(ty::U8, &[vec![1], vec![2]]), gguf_array(ty::STRING, &[gguf_string("x"), gguf_string("yz")])],
    );
    Writer::new()
        .str("general.architecture", "test")
        .kv("t.u8", ty::U8, vec![250])
        .kv("t.i8", ty::I8, vec![0x80])
        .kv("t.u16", ty::U16, 65535u16.to_le_bytes().to_vec())
        .kv("t.i16", ty::I16, (-2i16).to_le_bytes().to_vec())
        .u32("t.u32", 4_000_000_000)
        .kv("t.i32", ty::I32, 7i32.to_le_bytes().to_vec())
        .f32("t.f32", 1e-5)
        .kv("t.bool", ty::BOOL, vec![1])
        .str("t.string", "Café 日本")
        .kv("t.u64", ty::U64, (1u64 << 40).to_le_bytes().to_vec())
        .kv("t.i64", ty::I64, (-5i64).to_le_bytes().to_vec())
        .kv("t.f64", ty::F64, 0.25f64.to_le_bytes().to_vec())
        .kv("t.strings", ty::ARRAY, gguf_array(ty::STRING, &[gguf_string("a"), gguf_string("b c")]))
        .kv("t.empty", ty::ARRAY, gguf_array(ty::I32, &[]))
        .kv("t.nested", ty::ARRAY, nested)
        .f32_tensor("m", &[3, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
        .tensor("q", &[32, 2], 8, [q8_0_block(0.5, |i| i as i8 - 16), q8_0_block(0.0, |_| 5)].concat())
}

// ---------------------------------------------------------------------------------------------
// Synthetic files.

#[test]
fn metadata_and_tensors_round_trip() {
    for version in [2, 3] {
        let mut w = all_types_writer();
        w.version = version;
        let file = open_bytes("all-types", w.bytes()).unwrap();
        assert_eq!(file.version, version);
        assert_eq!(file.alignment, 32);
        assert_eq!(file.get("t.u8"), Some(&GgufValue::U8(250)));
        assert_eq!(file.get("t.i8"), Some(&GgufValue::I8(-128)));
        assert_eq!(file.get("t.i16"), Some(&GgufValue::I16(-2)));
        assert_eq!(file.get("t.f32"), Some(&GgufValue::F32(1e-5)));
        assert_eq!(file.get("t.bool"), Some(&GgufValue::Bool(true)));
        assert_eq!(file.get("t.i64"), Some(&GgufValue::I64(-5)));
        // Integers of any width.
        assert_eq!(file.get_u64("t.u8").unwrap(), 250);
        assert_eq!(file.get_u64("t.u16").unwrap(), 65535);
        assert_eq!(file.get_u64("t.u32").unwrap(), 4_000_000_000);
        assert_eq!(file.get_u64("t.i32").unwrap(), 7);
        assert_eq!(file.get_u64("t.u64").unwrap(), 1 << 40);
        assert_eq!(file.get_i64("t.i64").unwrap(), -5);
        assert_eq!(file.get_usize("t.u16").unwrap(), 65535);
        // f32 widens through its shortest decimal form.
        assert_eq!(file.get_f64("t.f32").unwrap(), 1e-5);
        assert_eq!(file.get_f32("t.f32").unwrap(), 1e-5f32);
        assert_eq!(file.get_f64("t.f64").unwrap(), 0.25);
        assert!(file.get_bool("t.bool").unwrap());
        assert_eq!(file.get_str("t.string").unwrap(), "Café 日本");
        assert_eq!(file.get_str_array("t.strings").unwrap(), ["a", "b c"]);
        assert_eq!(file.get("t.empty"), Some(&GgufValue::Array(vec![])));
        assert_eq!(
            file.get("t.nested"),
            Some(&GgufValue::Array(vec![
                GgufValue::Array(vec![GgufValue::U8(1), GgufValue::U8(2)]),
                GgufValue::Array(vec![GgufValue::String("x".into()), GgufValue::String("yz".into())]),
            ]))
        );
        // Wrong types and missing keys name the key and what was expected.
        let e = err_text(file.get_u64("t.i8"));
        assert!(e.contains("/tmp/all-types.gguf") && e.contains("`t.i8`") && e.contains("non-negative"), "{e}");
        let e = err_text(file.get_str("t.u8"));
        assert!(e.contains("`t.u8`") && e.contains("expected a string"), "{e}");
        let e = err_text(file.get_u32("nope"));
        assert!(e.contains("/tmp/all-types.gguf: metadata `nope`: missing"), "{e}");

        let info = file.tensor("m").unwrap();
        assert_eq!((info.dims.clone(), info.ggml_type, info.byte_len), (vec![3, 2], GgmlType::F32, 24));
        assert_eq!(file.dequantize("m").unwrap(), (vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
        let (shape, q) = file.dequantize("q").unwrap();
        assert_eq!(shape, [2, 32]);
        assert_eq!(q[..4], [-8.0, -7.5, -7.0, -6.5]);
        assert_eq!(q[32..], [0.0; 32]);
        let e = err_text(file.dequantize("absent"));
        assert!(e.contains("tensor `absent`: not in the file"), "{e}");
    }
}

#[test]
fn wrong_magic_truncated_header_and_version_are_named() {
    let good = all_types_writer().bytes();
    let mut bad = good.clone();
    bad[..4].copy_from_slice(b"GGML");
    let e = err_text(open_bytes("magic", bad));
    assert!(e.contains("/tmp/magic.gguf") && e.contains("not a GGUF file") && e.contains("GGML"), "{e}");

    for len in [0, 3, 10, 20] {
        let e = err_text(open_bytes("short", good[..len].to_vec()));
        assert!(e.contains("/tmp/short.gguf") && e.contains("truncated file"), "{len}: {e}");
    }
    // Cut inside the metadata: the error names the entry being read.
    let e = err_text(open_bytes("short-kv", good[..260].to_vec()));
    assert!(e.contains("truncated file") && e.contains("metadata"), "{e}");

    for version in [1u32, 4, 3u32.swap_bytes()] {
        let mut bad = good.clone();
        bad[4..8].copy_from_slice(&version.to_le_bytes());
        let e = err_text(open_bytes("version", bad));
        assert!(e.contains(&format!("unsupported GGUF version {version}")) && e.contains("expected 2 or 3"), "{e}");
    }
    let e = err_text(GgufFile::open(Path::new("/nonexistent/x.gguf")));
    assert!(e.contains("/nonexistent/x.gguf"), "{e}");
}

#[test]
fn truncated_tensor_data_names_the_tensor() {
    let good = all_types_writer().bytes();
    let cut = good[..good.len() - 40].to_vec();
    let e = err_text(open_bytes("cut", cut));
    assert!(e.contains("/tmp/cut.gguf: tensor `q`") && e.contains("past the end of the file"), "{e}");
}

#[test]
fn unsupported_and_unknown_types_are_named() {
    // Q5_0 (22 bytes per 32 weights) opens, but does not dequantise.
    let w = Writer::new().tensor("w5", &[32, 1], 6, vec![0; 22]).f32_tensor("ok", &[2], &[1.0, 2.0]);
    let file = open_bytes("q5", w.bytes()).unwrap();
    let e = err_text(file.dequantize("w5"));
    assert!(e.contains("/tmp/q5.gguf: tensor `w5`") && e.contains("unsupported type Q5_0 (type 6)"), "{e}");
    assert!(e.contains("Q4_K"), "lists the supported types: {e}");
    assert_eq!(file.dequantize("ok").unwrap().1, [1.0, 2.0]);

    let w = Writer::new().tensor("odd", &[4], 99, vec![0; 32]);
    let e = err_text(open_bytes("t99", w.bytes()));
    assert!(e.contains("tensor `odd`") && e.contains("unknown ggml type 99"), "{e}");
}

#[test]
fn shapes_that_disagree_with_the_data_are_named() {
    // Two Q8_0 blocks' worth of shape, one block of data before the next tensor.
    let mut w =
        Writer::new().tensor("a", &[32, 1], 8, q8_0_block(1.0, |_| 1)).tensor("b", &[32, 1], 8, q8_0_block(1.0, |_| 2));
    w.tensors[0].1 = vec![32, 2];
    let e = err_text(open_bytes("overlap", w.bytes()));
    assert!(e.contains("tensor `a`") && e.contains("size disagrees with its shape") && e.contains("`b`"), "{e}");

    // The innermost dimension must be whole blocks.
    let w = Writer::new().tensor("rows", &[48, 2], 8, vec![0; 34 * 3]);
    let e = err_text(open_bytes("block", w.bytes()));
    assert!(e.contains("tensor `rows`") && e.contains("not a multiple of the Q8_0 (type 8) block size 32"), "{e}");

    let w = Writer::new().tensor("big", &[1 << 40, 1 << 40], 0, vec![]);
    let e = err_text(open_bytes("huge", w.bytes()));
    assert!(e.contains("tensor `big`"), "{e}");

    let w = Writer::new().tensor("five", &[1, 1, 1, 1, 1], 0, vec![0; 4]);
    let e = err_text(open_bytes("dims", w.bytes()));
    assert!(e.contains("tensor `five`") && e.contains("5 dimensions"), "{e}");
}

#[test]
fn corrupt_counts_fail_without_allocating() {
    let mut bytes = b"GGUF".to_vec();
    bytes.extend(3u32.to_le_bytes());
    bytes.extend(u64::MAX.to_le_bytes());
    bytes.extend(0u64.to_le_bytes());
    let e = err_text(open_bytes("count", bytes));
    assert!(e.contains("tensors") && e.contains("corrupt count"), "{e}");

    let w =
        Writer::new().kv("arr", ty::ARRAY, [ty::U64.to_le_bytes().to_vec(), u64::MAX.to_le_bytes().to_vec()].concat());
    let e = err_text(open_bytes("array", w.bytes()));
    assert!(e.contains("metadata `arr`") && e.contains("truncated file"), "{e}");

    let w = Writer::new().kv("s", ty::STRING, (1u64 << 50).to_le_bytes().to_vec());
    let e = err_text(open_bytes("string", w.bytes()));
    assert!(e.contains("metadata `s`") && e.contains("string of"), "{e}");

    let mut deep = gguf_array(ty::U8, &[]);
    for _ in 0..20 {
        deep = gguf_array(ty::ARRAY, &[deep]);
    }
    let w = Writer::new().kv("deep", ty::ARRAY, deep);
    let e = err_text(open_bytes("deep", w.bytes()));
    assert!(e.contains("metadata `deep`") && e.contains("nested"), "{e}");

    let w = Writer::new().kv("b", ty::BOOL, vec![2]);
    let e = err_text(open_bytes("bool", w.bytes()));
    assert!(e.contains("metadata `b`") && e.contains("expected 0 or 1"), "{e}");

    let w = Writer::new().kv("general.alignment", ty::U32, 48u32.to_le_bytes().to_vec());
    let e = err_text(open_bytes("align", w.bytes()));
    assert!(e.contains("metadata `general.alignment`") && e.contains("power-of-two"), "{e}");

    let w = Writer::new().u32("k", 1).u32("k", 2);
    let e = err_text(open_bytes("dup", w.bytes()));
    assert!(e.contains("metadata `k`: appears twice"), "{e}");
}

/// Every prefix and many random byte corruptions of valid files give `Ok` or `Err`, never a panic
/// (and, when a corrupted file opens, reading it through every accessor does not panic either).
#[test]
fn corrupted_bytes_never_panic() {
    let files = [all_types_writer().bytes(), tiny_llama().bytes()];
    let exercise = |bytes: Vec<u8>| {
        if let Ok(file) = open_bytes("fuzz", bytes) {
            for t in &file.tensors {
                let _ = file.dequantize(&t.name);
            }
            let _ = file.llama_hparams();
            let _ = file.hf_tensors();
            let _ = file.tokenizer();
            let _ = file.special_ids();
        }
    };
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for good in &files {
        for len in 0..good.len() {
            exercise(good[..len].to_vec());
        }
        for _ in 0..3000 {
            let mut bytes = good.clone();
            for _ in 0..1 + next() % 4 {
                let at = (next() % bytes.len() as u64) as usize;
                bytes[at] = next() as u8;
            }
            exercise(bytes);
        }
    }
}

/// A llama file with C = 8, NH = 2, NKV = 1, HD = 4, one block, I = 4, V = 5 (a one-token-per-byte
/// vocabulary of five tokens), rows of q/k numbered so the un-permutation can be read off.
fn tiny_llama() -> Writer {
    let rows = |n: usize, cols: usize| -> Vec<f32> { (0..n * cols).map(|j| (j / cols) as f32).collect() };
    let tokens = ["<|endoftext|>", "a", "b", "ab", "Ġ"];
    Writer::new()
        .str("general.architecture", "llama")
        .u32("llama.block_count", 1)
        .u32("llama.embedding_length", 8)
        .u32("llama.feed_forward_length", 4)
        .u32("llama.attention.head_count", 2)
        .u32("llama.attention.head_count_kv", 1)
        .u32("llama.context_length", 16)
        .u32("llama.rope.dimension_count", 4)
        .f32("llama.attention.layer_norm_rms_epsilon", 1e-6)
        .str("tokenizer.ggml.model", "gpt2")
        .kv("tokenizer.ggml.tokens", ty::ARRAY, gguf_array(ty::STRING, &tokens.map(gguf_string)))
        .kv("tokenizer.ggml.merges", ty::ARRAY, gguf_array(ty::STRING, &[gguf_string("a b")]))
        .kv(
            "tokenizer.ggml.token_type",
            ty::ARRAY,
            gguf_array(ty::I32, &[3, 1, 1, 1, 1].map(|t: i32| t.to_le_bytes().to_vec())),
        )
        .u32("tokenizer.ggml.eos_token_id", 0)
        .f32_tensor("token_embd.weight", &[8, 5], &rows(5, 8))
        .f32_tensor("blk.0.attn_norm.weight", &[8], &[1.0; 8])
        .f32_tensor("blk.0.attn_q.weight", &[8, 8], &rows(8, 8))
        .f32_tensor("blk.0.attn_q.bias", &[8], &rows(8, 1))
        .f32_tensor("blk.0.attn_k.weight", &[8, 4], &rows(4, 8))
        .f32_tensor("blk.0.attn_v.weight", &[8, 4], &rows(4, 8))
        .f32_tensor("blk.0.attn_output.weight", &[8, 8], &rows(8, 8))
        .f32_tensor("blk.0.ffn_norm.weight", &[8], &[1.0; 8])
        .f32_tensor("blk.0.ffn_gate.weight", &[8, 4], &rows(4, 8))
        .f32_tensor("blk.0.ffn_up.weight", &[8, 4], &rows(4, 8))
        .f32_tensor("blk.0.ffn_down.weight", &[4, 8], &rows(8, 4))
        .f32_tensor("output_norm.weight", &[8], &[1.0; 8])
}

fn row_ids(values: &[f32], cols: usize) -> Vec<f32> {
    values.chunks(cols).map(|r| r[0]).collect()
}

#[test]
fn hf_view_names_unpermutes_and_reads_hparams() {
    let file = open_bytes("tiny-llama", tiny_llama().bytes()).unwrap();
    let p = file.llama_hparams().unwrap();
    assert_eq!(p.model_type, "llama");
    assert_eq!((p.vocab_size, p.hidden_size, p.intermediate_size, p.num_hidden_layers), (5, 8, 4, 1), "{p:?}");
    assert_eq!((p.num_attention_heads, p.num_key_value_heads, p.head_dim, p.max_position_embeddings), (2, 1, 4, 16));
    assert_eq!((p.rms_norm_eps, p.rope_theta), (1e-6, 10_000.0));
    assert!(p.tie_word_embeddings && p.attention_bias);
    assert_eq!((p.bos_token_id, p.eos_token_id, p.pad_token_id), (None, Some(0), None));
    assert_eq!(file.special_ids(), (None, Some(0), None));

    let t = file.hf_tensors().unwrap();
    assert_eq!(t.len(), 12);
    assert_eq!(t["model.embed_tokens.weight"].0, [5, 8]);
    // hf_row[h·4 + p·2 + i] = gguf_row[h·4 + 2i + p].
    let (shape, q) = &t["model.layers.0.self_attn.q_proj.weight"];
    assert_eq!(shape, &[8, 8]);
    assert_eq!(row_ids(q, 8), [0.0, 2.0, 1.0, 3.0, 4.0, 6.0, 5.0, 7.0]);
    assert_eq!(t["model.layers.0.self_attn.q_proj.bias"].1, [0.0, 2.0, 1.0, 3.0, 4.0, 6.0, 5.0, 7.0]);
    assert_eq!(row_ids(&t["model.layers.0.self_attn.k_proj.weight"].1, 8), [0.0, 2.0, 1.0, 3.0]);
    // Other projections are untouched.
    assert_eq!(row_ids(&t["model.layers.0.self_attn.v_proj.weight"].1, 8), [0.0, 1.0, 2.0, 3.0]);
    assert_eq!(
        row_ids(&t["model.layers.0.self_attn.o_proj.weight"].1, 8),
        (0..8).map(|r| r as f32).collect::<Vec<_>>()
    );
    assert_eq!(t["model.layers.0.mlp.down_proj.weight"].0, [8, 4]);
    for name in ["model.layers.0.input_layernorm.weight", "model.layers.0.post_attention_layernorm.weight"] {
        assert_eq!(t[name].0, [8], "{name}");
    }
    assert!(t.contains_key("model.norm.weight") && !t.contains_key("lm_head.weight"));

    // Qwen2 files are not permuted.
    let mut w = tiny_llama();
    for (key, _, value) in &mut w.kv {
        if key == "general.architecture" {
            *value = gguf_string("qwen2");
        }
        if let Some(rest) = key.strip_prefix("llama.") {
            *key = format!("qwen2.{rest}");
        }
    }
    let qwen = open_bytes("tiny-qwen", w.bytes()).unwrap();
    assert_eq!(qwen.llama_hparams().unwrap().model_type, "qwen2");
    let t = qwen.hf_tensors().unwrap();
    assert_eq!(
        row_ids(&t["model.layers.0.self_attn.q_proj.weight"].1, 8),
        (0..8).map(|r| r as f32).collect::<Vec<_>>()
    );

    // Unknown tensors are named, not dropped.
    let w = tiny_llama().f32_tensor("rope_freqs.weight", &[2], &[1.0, 1.0]);
    let e = err_text(open_bytes("rope", w.bytes()).unwrap().hf_tensors());
    assert!(e.contains("unexpected tensors") && e.contains("rope_freqs.weight"), "{e}");
}

#[test]
fn unsupported_architecture_and_metadata_are_named() {
    let mut w = tiny_llama();
    w.kv[0].2 = gguf_string("gemma");
    let file = open_bytes("gemma", w.bytes()).unwrap();
    let e = err_text(file.llama_hparams());
    assert!(
        e.contains("/tmp/gemma.gguf: metadata `general.architecture`") && e.contains("`gemma` is not supported"),
        "{e}"
    );
    assert!(file.hf_tensors().is_err());

    let mut w = tiny_llama();
    w.kv.retain(|(k, _, _)| k != "llama.context_length");
    let e = err_text(open_bytes("no-ctx", w.bytes()).unwrap().llama_hparams());
    assert!(e.contains("metadata `llama.context_length`: missing"), "{e}");

    let w = tiny_llama().u32("llama.attention.key_length", 2);
    let e = err_text(open_bytes("partial", w.bytes()).unwrap().llama_hparams());
    assert!(e.contains("llama.rope.dimension_count") || e.contains("llama.attention"), "{e}");

    let w = tiny_llama().str("llama.rope.scaling.type", "linear");
    let e = err_text(open_bytes("scaling", w.bytes()).unwrap().llama_hparams());
    assert!(e.contains("`llama.rope.scaling.type`") && e.contains("linear"), "{e}");

    let mut w = tiny_llama();
    for (key, _, value) in &mut w.kv {
        if key == "tokenizer.ggml.model" {
            *value = gguf_string("llama");
        }
    }
    let e = err_text(open_bytes("spm", w.bytes()).unwrap().tokenizer());
    assert!(e.contains("metadata `tokenizer.ggml.model`") && e.contains("`llama` is not supported"), "{e}");
}

#[test]
fn tiny_tokenizer_from_metadata() {
    let file = open_bytes("tiny-llama", tiny_llama().bytes()).unwrap();
    let tokenizer = file.tokenizer().unwrap();
    assert_eq!(tokenizer.get_vocab_size(true), 5);
    let enc = tokenizer.encode("ab a<|endoftext|>", false).unwrap();
    assert_eq!(enc.get_ids(), [3, 4, 1, 0]);
    assert_eq!(tokenizer.decode(enc.get_ids(), false).unwrap(), "ab a<|endoftext|>");
    assert_eq!(tokenizer.decode(enc.get_ids(), true).unwrap(), "ab a");
}

#[test]
fn hf_tensor_names() {
    for (gguf, hf) in [
        ("token_embd.weight", Some("model.embed_tokens.weight")),
        ("output.weight", Some("lm_head.weight")),
        ("output_norm.weight", Some("model.norm.weight")),
        ("blk.12.attn_v.bias", Some("model.layers.12.self_attn.v_proj.bias")),
        ("blk.0.ffn_gate.weight", Some("model.layers.0.mlp.gate_proj.weight")),
        ("blk.0.attn_norm.bias", None),
        ("blk.x.attn_q.weight", None),
        ("rope_freqs.weight", None),
        ("token_embd", None),
    ] {
        assert_eq!(hf_tensor_name(gguf).as_deref(), hf, "{gguf}");
    }
}

// ---------------------------------------------------------------------------------------------
// gguf-py fixtures.

#[test]
fn dequantisation_matches_gguf_py() {
    let dir = fixtures().join("gguf");
    let file = GgufFile::open(&dir.join("quants.gguf")).unwrap();
    let expected = Reference::open(dir.join("quants-expected.safetensors"));
    assert_eq!(file.alignment, 64);
    let mut names = expected.names();
    names.sort();
    let mut have: Vec<String> = file.tensors.iter().map(|t| t.name.clone()).collect();
    have.sort();
    assert_eq!(have, names);
    for name in &names {
        let (shape, values) = file.dequantize(name).unwrap();
        assert_eq!(shape, expected.shape(name), "{name}");
        let want = expected.f32(name);
        let diff = max_abs_diff(&values, &want);
        assert!(diff <= 1e-6, "{name}: max |Δ| = {diff}");
        assert!(values.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "{name}: not bit-identical");
        let ty = file.tensor(name).unwrap().ggml_type.name().to_lowercase();
        assert_eq!(ty, name.trim_end_matches("_3d"));
    }
    // Metadata written by gguf-py's GGUFWriter.
    assert_eq!(file.architecture().unwrap(), "test");
    assert_eq!(file.get("test.u8"), Some(&GgufValue::U8(200)));
    assert_eq!(file.get("test.i8"), Some(&GgufValue::I8(-100)));
    assert_eq!(file.get("test.u16"), Some(&GgufValue::U16(60000)));
    assert_eq!(file.get("test.i16"), Some(&GgufValue::I16(-30000)));
    assert_eq!(file.get_u64("test.u32").unwrap(), 4_000_000_000);
    assert_eq!(file.get_i64("test.i32").unwrap(), -2_000_000_000);
    assert_eq!(file.get_f64("test.f32").unwrap(), 1e-5);
    assert_eq!(file.get_u64("test.u64").unwrap(), (1 << 40) + 7);
    assert_eq!(file.get_i64("test.i64").unwrap(), -(1 << 40) - 7);
    assert_eq!(file.get("test.f64"), Some(&GgufValue::F64(0.1)));
    assert!(file.get_bool("test.bool").unwrap());
    assert_eq!(file.get_str("test.string").unwrap(), "Café 日本");
    assert_eq!(file.get_str_array("test.strings").unwrap(), ["a", "b c", "ç"]);
    assert_eq!(file.get_i64_array("test.ints").unwrap(), [1, -2, 3]);
}

// ---------------------------------------------------------------------------------------------
// The real SmolLM2 file.

fn models_dir() -> PathBuf {
    std::env::var_os("CAMELS_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/models")))
}

#[test]
fn smollm2_matches_gguf_py_and_python_tokenizers() {
    let path = models_dir().join("SmolLM2-135M-Instruct.Q4_1.gguf");
    if !path.is_file() {
        println!("skipped: SmolLM2 GGUF not found at {}", path.display());
        return;
    }
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("gguf/smollm2-checksums.json")).unwrap())
            .unwrap();
    let file = GgufFile::open(&path).unwrap();
    assert_eq!(file.version, 3);
    assert_eq!(file.tensors.len(), 272);
    let count = |ty: GgmlType| file.tensors.iter().filter(|t| t.ggml_type == ty).count();
    assert_eq!((count(GgmlType::Q4_1), count(GgmlType::F32), count(GgmlType::Q8_0)), (210, 61, 1));

    let p = file.llama_hparams().unwrap();
    assert_eq!(p.model_type, "llama");
    assert_eq!((p.num_hidden_layers, p.hidden_size, p.intermediate_size), (30, 576, 1536));
    assert_eq!((p.num_attention_heads, p.num_key_value_heads, p.head_dim), (9, 3, 64));
    assert_eq!((p.vocab_size, p.max_position_embeddings), (49152, 8192));
    assert_eq!((p.rms_norm_eps, p.rope_theta), (1e-5, 1e5));
    assert!(p.tie_word_embeddings && !p.attention_bias);
    assert_eq!((p.bos_token_id, p.eos_token_id, p.pad_token_id), (Some(1), Some(2), Some(2)));
    assert_eq!(file.special_ids(), (Some(1), Some(2), Some(2)));

    let tensors = file.hf_tensors().unwrap();
    let total: usize = tensors.values().map(|(_, v)| v.len()).sum();
    assert_eq!(total, 134_515_008);
    assert_eq!(total as u64, expected["num_parameters"].as_u64().unwrap());
    let cases = expected["tensors"].as_array().unwrap();
    assert_eq!(cases.len(), tensors.len());
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let (shape, values) = &tensors[name];
        let want_shape: Vec<usize> =
            case["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
        assert_eq!(shape, &want_shape, "{name}");
        let first: Vec<f32> = case["first"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
        assert_eq!(values[..16], first[..], "{name}: first values");
        let (mut sum, mut sum_sq, mut weighted, mut abs) = (0f64, 0f64, 0f64, 0f64);
        for (j, &v) in values.iter().enumerate() {
            let v = f64::from(v);
            sum += v;
            sum_sq += v * v;
            weighted += ((j % 97) + 1) as f64 * v;
            abs += v.abs();
        }
        for (what, got, scale) in [("sum", sum, abs), ("sum_sq", sum_sq, sum_sq), ("weighted", weighted, 97.0 * abs)] {
            let want = case[what].as_f64().unwrap();
            assert!((got - want).abs() <= 1e-9 * (scale + 1.0), "{name}: {what} {got} vs gguf-py {want}");
        }
    }

    let tokenizer = file.tokenizer().unwrap();
    assert_eq!(tokenizer.get_vocab_size(true), 49152);
    assert_eq!(tokenizer.token_to_id("<|im_start|>"), Some(1));
    for case in expected["tokenizer"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let ids: Vec<u32> = case["ids"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
        let offsets: Vec<(usize, usize)> = case["offsets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| (o[0].as_u64().unwrap() as usize, o[1].as_u64().unwrap() as usize))
            .collect();
        let enc = tokenizer.encode_char_offsets(text, false).unwrap();
        assert_eq!(enc.get_ids(), ids, "ids of {text:?}");
        assert_eq!(enc.get_offsets(), offsets, "offsets of {text:?}");
        assert_eq!(tokenizer.decode(&ids, false).unwrap(), text, "decode of {text:?}");
        assert_eq!(case["decoded"].as_str().unwrap(), text);
    }
}

/// `ModelError` variants carry the file, so callers can match on them.
#[test]
fn errors_are_structured() {
    match open_bytes("magic", b"GGML\x03\0\0\0".to_vec()) {
        Err(ModelError::Gguf { path, .. }) => assert_eq!(path, Path::new("/tmp/magic.gguf")),
        other => panic!("{other:?}"),
    }
    let file = open_bytes("tiny-llama", tiny_llama().bytes()).unwrap();
    match file.get_str("absent.key") {
        Err(ModelError::GgufMetadata { key, .. }) => assert_eq!(key, "absent.key"),
        other => panic!("{other:?}"),
    }
    match file.dequantize("nope") {
        Err(ModelError::GgufTensor { name, .. }) => assert_eq!(name, "nope"),
        other => panic!("{other:?}"),
    }
}
