//! The Llama family without PyTorch: per-row rotary positions (left padding, the KV cache),
//! HF-layout save and load, `config.json` by `model_type`, presets' sizes, and SmolLM2 from its
//! GGUF file answering a factual prompt (skipped, and said so, when the file is absent).

mod common;

use burn::prelude::*;
use camels_model::ModelError;
use camels_model::base::{BaseConfig, BaseLm, KvCache, Positions};
use camels_model::generate::{GenerateConfig, generate};
use camels_model::hf::{load_base, load_tokenizer, module_tensors, read_base_config, save_base};
use camels_model::llama::LlamaConfig;
use common::*;

fn tiny(seed: u64) -> (BaseLm<Cpu>, BaseConfig) {
    let device = Default::default();
    <Cpu as Backend>::seed(&device, seed);
    let config = BaseConfig::Llama(LlamaConfig { initializer_range: 0.2, ..LlamaConfig::tiny() });
    (config.init::<Cpu>(&device), config)
}

fn logits_of(model: &BaseLm<Cpu>, ids: &[i64], mask: &[u8], batch: usize) -> Vec<f32> {
    let device = Default::default();
    let len = ids.len() / batch;
    let positions = Positions::from_mask(mask, batch, len).unwrap();
    let ids = Tensor::<Cpu, 2, Int>::from_data(TensorData::new(ids.to_vec(), [batch, len]), &device);
    values(model.forward_with(ids, &positions, None))
}

#[test]
fn left_padding_keeps_each_rows_positions_and_logits() {
    let (model, _) = tiny(1);
    let vocab = 512;
    let alone = logits_of(&model, &[7, 91, 300, 12], &[1; 4], 1);
    // The same prompt left-padded by two tokens, beside a full row.
    let padded =
        logits_of(&model, &[0, 0, 7, 91, 300, 12, 5, 6, 7, 8, 9, 10], &[0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1], 2);
    let real_part = &padded[2 * vocab..6 * vocab];
    let worst = alone.iter().zip(real_part).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(worst < 1e-4, "left padding changed the logits by {worst}");
}

#[test]
fn kv_cache_decoding_matches_the_full_forward() {
    let (model, _) = tiny(2);
    let device = Default::default();
    let ids: Vec<i64> = vec![0, 44, 45, 46, 47, 48, 3, 4, 5, 6, 7, 8];
    let mask: Vec<u8> = vec![0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1];
    let full = logits_of(&model, &ids, &mask, 2); // [2, 6, V]
    // The first four tokens at once, then one token at a time through the cache.
    let mut cache = KvCache::default();
    let row = |t0: usize, n: usize| -> Vec<i64> { [&ids[t0..t0 + n], &ids[6 + t0..6 + t0 + n]].concat() };
    let mask_upto = |n: usize| -> Vec<u8> { [&mask[..n], &mask[6..6 + n]].concat() };
    let first = Tensor::<Cpu, 2, Int>::from_data(TensorData::new(row(0, 4), [2, 4]), &device);
    model.forward_with(first, &Positions::from_mask(&mask_upto(4), 2, 4).unwrap(), Some(&mut cache));
    for t in 4..6 {
        let step = Tensor::<Cpu, 2, Int>::from_data(TensorData::new(row(t, 1), [2, 1]), &device);
        let positions = Positions::from_mask(&mask_upto(t + 1), 2, 1).unwrap();
        let logits = values(model.forward_with(step, &positions, Some(&mut cache))); // [2, 1, V]
        let vocab = logits.len() / 2;
        for b in 0..2 {
            let expect = &full[(b * 6 + t) * vocab..(b * 6 + t + 1) * vocab];
            let got = &logits[b * vocab..(b + 1) * vocab];
            let worst = expect.iter().zip(got).map(|(a, g)| (a - g).abs()).fold(0.0f32, f32::max);
            assert!(worst < 1e-4, "row {b}, position {t}: cached decoding differs by {worst}");
        }
    }
    assert_eq!(cache.len(), 6);
    assert_eq!(cache.layers[0].key.dims(), [2, 2, 6, 8], "the cache keeps the key/value heads only");
}

#[test]
fn hf_layout_save_and_load_is_an_identity_map() {
    let device = Default::default();
    <Cpu as Backend>::seed(&device, 4);
    let config =
        BaseConfig::Llama(LlamaConfig { tie_word_embeddings: false, attention_bias: true, ..LlamaConfig::tiny() });
    let model = config.init::<Cpu>(&device);
    let dir = scratch("llama-roundtrip");
    save_base(&model, &config, None, &dir).unwrap();
    let (again, config_again) = load_base::<Cpu>(&dir, &device).unwrap();
    assert_eq!(config, config_again);
    let (a, b) = (module_tensors(&model), module_tensors(&again));
    assert_eq!(a, b);
    for name in
        ["model.embed_tokens.weight", "model.layers.1.self_attn.k_proj.bias", "lm_head.weight", "model.norm.weight"]
    {
        assert!(a.contains_key(name), "missing HF name {name}: {:?}", a.keys().take(5).collect::<Vec<_>>());
    }
    assert_eq!(a["model.layers.0.self_attn.k_proj.weight"].0, vec![16, 32], "[NKV·HD, C] as HF stores it");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(json["model_type"], "llama");
    assert_eq!(json["architectures"][0], "LlamaForCausalLM");
    assert_eq!(json["num_key_value_heads"], 2);
    assert_eq!(json["hidden_act"], "silu");
}

#[test]
fn config_json_picks_the_family_and_names_what_it_cannot_run() {
    let dir = scratch("llama-config");
    let write = |text: &str| {
        let path = dir.join("config.json");
        std::fs::write(&path, text).unwrap();
        path
    };
    let ok = write(
        r#"{"model_type": "llama", "vocab_size": 100, "hidden_size": 16, "intermediate_size": 32,
            "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
            "max_position_embeddings": 32, "eos_token_id": [5, 6], "rope_scaling": null}"#,
    );
    let BaseConfig::Llama(c) = read_base_config(&ok).unwrap() else { panic!("not a Llama") };
    assert_eq!((c.eos_token_id, c.head_size(), c.rope_theta), (5, 8, 10_000.0));

    // transformers 5 keeps θ under `rope_parameters`.
    let v5 = r#"{"model_type": "llama", "vocab_size": 100, "hidden_size": 16, "intermediate_size": 32,
        "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
        "max_position_embeddings": 32, "eos_token_id": 5,
        "rope_parameters": {"rope_theta": 100000.0, "rope_type": "default"}}"#;
    let BaseConfig::Llama(c) = read_base_config(&write(v5)).unwrap() else { panic!("not a Llama") };
    assert_eq!(c.rope_theta, 100_000.0);
    let yarn = v5.replace(r#""rope_type": "default""#, r#""rope_type": "yarn""#);
    let err = read_base_config(&write(&yarn)).unwrap_err().to_string();
    assert!(err.contains("rope_type") && err.contains("yarn"), "{err}");

    let err = read_base_config(&write(r#"{"model_type": "mamba"}"#)).unwrap_err().to_string();
    assert!(err.contains("model_type") && err.contains("mamba"), "{err}");
    let scaled = r#"{"model_type": "llama", "vocab_size": 100, "hidden_size": 16, "intermediate_size": 32,
        "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
        "max_position_embeddings": 32, "eos_token_id": 5, "rope_scaling": {"rope_type": "llama3"}}"#;
    let err = read_base_config(&write(scaled)).unwrap_err().to_string();
    assert!(err.contains("rope_scaling"), "{err}");
    let err = read_base_config(&write(r#"{"model_type": "llama", "vocab_size": 100}"#)).unwrap_err();
    assert!(matches!(err, ModelError::Config { .. }), "{err}");
    let gqa = r#"{"model_type": "llama", "vocab_size": 100, "hidden_size": 16, "intermediate_size": 32,
        "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 3,
        "max_position_embeddings": 32, "eos_token_id": 5}"#;
    let err = read_base_config(&write(gqa)).unwrap_err().to_string();
    assert!(err.contains("num_key_value_heads"), "{err}");
}

#[test]
fn presets_have_the_published_parameter_counts() {
    assert_eq!(LlamaConfig::smollm2_135m().num_params(), 134_515_008);
    assert_eq!(LlamaConfig::smollm2_360m().num_params(), 361_821_120);
    assert_eq!(LlamaConfig::tinyllama_1b().num_params(), 1_100_048_384);
    let (model, config) = tiny(5);
    let counted: usize = module_tensors(&model).values().map(|(shape, _)| shape.iter().product::<usize>()).sum();
    assert_eq!(counted, config.num_params());
}

/// SmolLM2 read from its GGUF file against transformers' own GGUF loading (`fixtures/smollm2`,
/// made by `fixtures/gen/smollm2.py`): token ids, the last position's logits (≤ 1e-3), every
/// position's max, log-sum-exp and argmax, and greedy continuations, batched left-padded and alone.
#[test]
fn smollm2_from_its_gguf_file_matches_transformers() {
    let Some(path) = smollm2_gguf() else { return };
    let device = Default::default();
    let (model, config) = load_base::<Cpu>(&path, &device).unwrap();
    assert_eq!((config.model_type(), config.num_layers(), config.num_params()), ("llama", 30, 134_515_008));
    let tokenizer = load_tokenizer(&path, &config).unwrap();
    assert_eq!(tokenizer.eos_id(), 2);
    let r = Reference::open(fixtures().join("smollm2/logits.safetensors"));
    let fixture: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("smollm2/generation.json")).unwrap()).unwrap();
    let ids = |v: &serde_json::Value| -> Vec<Vec<u32>> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect())
            .collect()
    };
    let prompts: Vec<Vec<u32>> =
        fixture["prompts"].as_array().unwrap().iter().map(|p| tokenizer.encode(p.as_str().unwrap()).unwrap()).collect();
    assert_eq!(prompts, ids(&fixture["prompt_ids"]), "token ids of the prompts");
    for (i, prompt) in prompts.iter().enumerate() {
        let expected_ids: Vec<u32> = r.i64(&format!("input_ids.{i}")).iter().map(|&t| t as u32).collect();
        assert_eq!(prompt, &expected_ids);
        let len = prompt.len();
        let input = Tensor::<Cpu, 2, Int>::from_data(
            TensorData::new(prompt.iter().map(|&t| i64::from(t)).collect(), [1, len]),
            &device,
        );
        let logits = model.forward(input); // [1, T, V]
        let vocab = logits.dims()[2];
        let all = values(logits);
        let last = &all[(len - 1) * vocab..];
        let err = max_abs_diff(last, &r.f32(&format!("logits_last.{i}")));
        assert!(err <= 1e-3, "prompt {i}: last-position logits differ by {err}");
        let (max, lse, argmax) =
            (r.f32(&format!("logits_max.{i}")), r.f32(&format!("logsumexp.{i}")), r.i64(&format!("logits_argmax.{i}")));
        for t in 0..len {
            let row = &all[t * vocab..(t + 1) * vocab];
            let (best, top) =
                row.iter().enumerate().fold((0, f32::MIN), |acc, (k, &x)| if x > acc.1 { (k, x) } else { acc });
            let sum: f64 = row.iter().map(|&x| f64::from(x - top).exp()).sum();
            let ours_lse = f64::from(top) + sum.ln();
            assert_eq!(best as i64, argmax[t], "prompt {i}, position {t}: argmax");
            assert!((top - max[t]).abs() <= 1e-3, "prompt {i}, position {t}: max {top} vs {}", max[t]);
            assert!((ours_lse - f64::from(lse[t])).abs() <= 1e-3, "prompt {i}, position {t}: log-sum-exp");
        }
    }
    let greedy = GenerateConfig::greedy(10, config.eos_token_id());
    let batched = generate(&model, &prompts, &greedy, &device).unwrap();
    assert_eq!(batched, ids(&fixture["greedy"]), "batched (left-padded) greedy continuations");
    let alone = generate(&model, &prompts[..1], &greedy, &device).unwrap();
    assert_eq!(alone[0], ids(&fixture["greedy"])[0], "greedy continuation of the first prompt alone");
    assert!(tokenizer.decode(&alone[0]).unwrap().starts_with(" Paris"));
}

/// The SmolLM2 GGUF in `CAMELS_MODELS_DIR` (default `../shared/models`), or `None` after saying so.
fn smollm2_gguf() -> Option<std::path::PathBuf> {
    let dir = std::env::var_os("CAMELS_MODELS_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/models"));
    let path = dir.join("SmolLM2-135M-Instruct.Q4_1.gguf");
    if path.exists() {
        Some(path)
    } else {
        eprintln!("skipped: SmolLM2 GGUF not found at {}", path.display());
        None
    }
}

/// The weighting model's trunk cut from a base: its first blocks and the embedding, by HF name
/// (`model.` prefix dropped), the blocks past it ignored; and its weights as the base's own.
#[test]
fn a_weighting_trunk_loads_the_first_blocks_of_a_llama_base() {
    use camels_model::hf::load_trunk;
    use camels_model::weighting::WeightingModelConfig;
    let (model, config) = tiny(6);
    let dir = scratch("llama-trunk");
    save_base(&model, &config, None, &dir).unwrap();
    let device = Default::default();
    let w = WeightingModelConfig::new().with_trunk(config.with_num_layers(1)).init::<Cpu>(&device);
    let trunk = load_trunk(w.trunk, &dir).unwrap();
    let (base, cut) = (module_tensors(&model), module_tensors(&trunk));
    assert_eq!(cut.len(), 2 + 9, "embedding, final norm and one block's nine tensors");
    for (name, tensor) in &cut {
        assert_eq!(&base[&format!("model.{name}")], tensor, "{name}");
    }
}
