//! HF checkpoints: load → save → load is bit-exact, names are HF's, and bad files give errors that
//! name the tensor and the shapes.

mod common;

use std::collections::HashMap;

use camels_model::ModelError;
use camels_model::gpt2::Gpt2Config;
use camels_model::hf::{load_base, module_tensors, save_base};
use common::*;
use safetensors::{Dtype, SafeTensors};

#[test]
fn load_save_load_is_bit_exact_with_hf_names() {
    let device = Default::default();
    let (model, config) = load_base::<Cpu>(&fixtures().join("tiny-gpt2"), &device).unwrap();
    let dir = scratch("roundtrip");
    save_base(&model, &config, None, &dir).unwrap();
    let (again, config_again) = load_base::<Cpu>(&dir, &device).unwrap();
    assert_eq!(config, config_again);
    let (a, b) = (module_tensors(&model), module_tensors(&again));
    assert_eq!(a.len(), b.len());
    for (name, (shape, values)) in &a {
        let (shape_b, values_b) = &b[name];
        assert_eq!(shape, shape_b, "{name}");
        assert!(values.iter().zip(values_b).all(|(x, y)| x.to_bits() == y.to_bits()), "{name} differs");
    }
    // The saved names are exactly the HF checkpoint's.
    let saved = std::fs::read(dir.join("model.safetensors")).unwrap();
    let original = std::fs::read(fixtures().join("tiny-gpt2/model.safetensors")).unwrap();
    let names = |bytes: &[u8]| {
        let mut n: Vec<String> = SafeTensors::deserialize(bytes)
            .unwrap()
            .names()
            .into_iter()
            .filter(|n| !n.ends_with("attn.bias") && !n.ends_with("attn.masked_bias") && *n != "lm_head.weight")
            .map(String::from)
            .collect();
        n.sort();
        n
    };
    assert_eq!(names(&saved), names(&original));
    let config_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(config_json["architectures"][0], "GPT2LMHeadModel");
    assert_eq!(config_json["n_layer"], 2);
}

/// Writes `tensors` (f32) as a checkpoint next to the fixture's config.json.
fn write_checkpoint(name: &str, tensors: &HashMap<String, (Vec<usize>, Vec<f32>)>) -> std::path::PathBuf {
    let dir = scratch(name);
    std::fs::copy(fixtures().join("tiny-gpt2/config.json"), dir.join("config.json")).unwrap();
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(n, (s, v))| (n.clone(), s.clone(), v.iter().flat_map(|x| x.to_le_bytes()).collect()))
        .collect();
    let views: Vec<_> = bytes
        .iter()
        .map(|(n, s, b)| (n.clone(), safetensors::tensor::TensorView::new(Dtype::F32, s.clone(), b).unwrap()))
        .collect();
    std::fs::write(dir.join("model.safetensors"), safetensors::tensor::serialize(views, None).unwrap()).unwrap();
    dir
}

fn fixture_tensors() -> HashMap<String, (Vec<usize>, Vec<f32>)> {
    let device = Default::default();
    let (model, _) = load_base::<Cpu>(&fixtures().join("tiny-gpt2"), &device).unwrap();
    module_tensors(&model).into_iter().collect()
}

#[test]
fn keys_without_the_transformer_prefix_load() {
    let stripped =
        fixture_tensors().into_iter().map(|(n, t)| (n.strip_prefix("transformer.").unwrap().to_string(), t)).collect();
    let dir = write_checkpoint("stripped", &stripped);
    let device = Default::default();
    let (model, _) = load_base::<Cpu>(&dir, &device).unwrap();
    let loaded = module_tensors(&model);
    assert_eq!(loaded.len(), stripped.len());
}

#[test]
fn a_missing_tensor_is_named_with_its_shape() {
    let mut tensors = fixture_tensors();
    tensors.remove("transformer.h.1.mlp.c_fc.weight");
    let dir = write_checkpoint("missing", &tensors);
    let err = load_base::<Cpu>(&dir, &Default::default()).unwrap_err();
    assert!(
        matches!(&err, ModelError::MissingTensor { name, expected, .. }
        if name == "transformer.h.1.mlp.c_fc.weight" && expected == &vec![32, 128]),
        "{err}"
    );
    assert!(err.to_string().contains("transformer.h.1.mlp.c_fc.weight"), "{err}");
}

#[test]
fn a_misshapen_tensor_names_expected_and_found_shapes() {
    let mut tensors = fixture_tensors();
    // An [out, in] (transposed) Conv1D weight, a classic conversion mistake.
    tensors.insert("transformer.h.0.attn.c_attn.weight".into(), (vec![96, 32], vec![0.0; 96 * 32]));
    let dir = write_checkpoint("shape", &tensors);
    let err = load_base::<Cpu>(&dir, &Default::default()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("transformer.h.0.attn.c_attn.weight") && msg.contains("[96, 32]") && msg.contains("[32, 96]"),
        "{msg}"
    );
}

#[test]
fn unknown_tensors_are_refused() {
    let mut tensors = fixture_tensors();
    tensors.insert("transformer.h.2.ln_1.weight".into(), (vec![32], vec![1.0; 32]));
    let dir = write_checkpoint("extra", &tensors);
    let err = load_base::<Cpu>(&dir, &Default::default()).unwrap_err();
    assert!(
        matches!(&err, ModelError::UnexpectedTensors { names, .. } if names == &vec!["transformer.h.2.ln_1.weight".to_string()]),
        "{err}"
    );
}

#[test]
fn non_safetensors_checkpoints_are_refused() {
    let dir = scratch("pickle");
    std::fs::copy(fixtures().join("tiny-gpt2/config.json"), dir.join("config.json")).unwrap();
    std::fs::write(dir.join("pytorch_model.bin"), b"PK\x03\x04 not a safetensors file").unwrap();
    let err = load_base::<Cpu>(&dir, &Default::default()).unwrap_err();
    assert!(matches!(err, ModelError::NotSafetensors { .. }), "{err}");
    assert!(err.to_string().contains("pytorch_model.bin"), "{err}");

    let file = dir.join("model.safetensors");
    std::fs::write(&file, b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all").unwrap();
    let err = load_base::<Cpu>(&dir, &Default::default()).unwrap_err();
    assert!(matches!(err, ModelError::NotSafetensors { .. }), "{err}");
}

#[test]
fn unsupported_configs_are_refused_with_the_field() {
    let dir = scratch("config");
    let text = std::fs::read_to_string(fixtures().join("tiny-gpt2/config.json")).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["activation_function"] = "relu".into();
    std::fs::write(dir.join("config.json"), json.to_string()).unwrap();
    std::fs::copy(fixtures().join("tiny-gpt2/model.safetensors"), dir.join("model.safetensors")).unwrap();
    let err = load_base::<Cpu>(&dir, &Default::default()).unwrap_err();
    assert!(err.to_string().contains("activation_function"), "{err}");
}

#[test]
fn presets_have_the_published_parameter_counts() {
    // HF's num_parameters() for the tied models.
    assert_eq!(Gpt2Config::gpt2().num_params(), 124_439_808);
    assert_eq!(Gpt2Config::distilgpt2().num_params(), 81_912_576);
    assert_eq!(Gpt2Config::gpt2_medium().num_params(), 354_823_168);
    assert_eq!(Gpt2Config::gpt2_large().num_params(), 774_030_080);
    assert_eq!(Gpt2Config::gpt2_xl().num_params(), 1_557_611_200);
}

#[test]
fn concurrent_atomic_writes_of_one_file_never_collide() {
    // Two writers of the same file used to share one temporary name: one renamed the other's file
    // away and failed naming the wrong file. Each write now has a temporary file of its own.
    let dir = std::env::temp_dir().join(format!("camels-write-atomic-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.join("metrics.json");
    let writers: Vec<_> = (0..4u8)
        .map(|w| {
            let path = path.clone();
            std::thread::spawn(move || {
                for _ in 0..50 {
                    camels_model::hf::write_atomic(&path, &[w; 4096]).unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().expect("no writer failed");
    }
    let bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() == 4096 && bytes.iter().all(|&b| b == bytes[0]), "a torn file");
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(left.len(), 1, "temporary files left behind: {left:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
