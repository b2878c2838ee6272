//! Online adaptation: uniform Adam against PyTorch (fixture from `python fixtures/gen/adapt.py`),
//! kill-and-resume equality, non-finite documents skipped, and the weighting strategies.

#[path = "../../camels-model/tests/common/mod.rs"]
mod common;

use camels_meta::adapt::{AdaptConfig, OptimizerKind, RunControl, WeightedDoc, adapt};
use camels_model::gpt2::Gpt2LmHead;
use camels_model::hf::{load_gpt2, module_tensors};
use camels_model::loss::Reduction;
use common::*;

fn tiny() -> Gpt2LmHead<Ad> {
    load_gpt2::<Ad>(&fixtures().join("tiny-gpt2"), &Default::default()).unwrap().0
}

fn fixture() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join("adapt/uniform_adam.json")).unwrap()).unwrap()
}

fn fixture_docs(f: &serde_json::Value) -> Vec<WeightedDoc> {
    f["doc_ids"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, ids)| {
            let ids: Vec<u32> = ids.as_array().unwrap().iter().map(|t| t.as_u64().unwrap() as u32).collect();
            WeightedDoc { id: format!("doc{i}"), weights: vec![1.0; ids.len()], ids }
        })
        .collect()
}

fn torch_adam() -> AdaptConfig {
    AdaptConfig { optimizer: OptimizerKind::Adam, lr: 1e-3, epsilon: 1e-8, reduction: Reduction::MeanPadded, ..AdaptConfig::tiny() }
}

fn max_param_diff(a: &Gpt2LmHead<Ad>, b: &Gpt2LmHead<Ad>) -> f32 {
    let (a, b) = (module_tensors(a), module_tensors(b));
    assert_eq!(a.len(), b.len());
    a.iter().map(|(name, (_, x))| max_abs_diff(x, &b[name].1)).fold(0.0, f32::max)
}

#[test]
fn uniform_adam_matches_pytorch() {
    let f = fixture();
    let docs = fixture_docs(&f);
    let (model, report) = adapt(tiny(), &docs, &torch_adam(), RunControl::default()).unwrap();
    let expected: Vec<f64> = f["loss_before_step"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(report.steps, 3);
    for (mine, theirs) in report.losses.iter().zip(&expected) {
        assert!((mine.loss - theirs).abs() < 1e-4, "loss {} vs torch {theirs}", mine.loss);
    }
    // Every document's loss after the three steps, through a fresh (zero-step) run's first loss.
    let after: Vec<f64> = f["loss_after_all_steps"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    for (doc, theirs) in docs.iter().zip(after) {
        let control = RunControl { stop_after: Some(1), ..RunControl::default() };
        let (_, probe) = adapt(model.clone(), std::slice::from_ref(doc), &torch_adam(), control).unwrap();
        assert!((probe.losses[0].loss - theirs).abs() < 1e-4, "after: {} vs torch {theirs}", probe.losses[0].loss);
    }
}

fn stream() -> Vec<WeightedDoc> {
    let f = fixture();
    let mut docs = fixture_docs(&f);
    // Five documents of different lengths, weights not all 1.
    let extra: Vec<WeightedDoc> = docs
        .iter()
        .map(|d| WeightedDoc {
            id: format!("{}-half", d.id),
            ids: d.ids[..10].to_vec(),
            weights: (0..10).map(|i| 0.5 + 0.1 * i as f32).collect(),
        })
        .take(2)
        .collect();
    docs.extend(extra);
    docs
}

#[test]
fn killed_and_resumed_run_ends_with_the_unbroken_weights() {
    let docs = stream();
    let config = AdaptConfig { checkpoint_every: 2, ..torch_adam() };
    let dir = scratch("adapt-resume");
    let (unbroken, unbroken_report) = adapt(tiny(), &docs, &config, RunControl::default()).unwrap();

    // Killed after 3 documents: the checkpoint holds 2; the third is redone on resume.
    let control = RunControl { checkpoint_dir: Some(dir.clone()), stop_after: Some(3), ..RunControl::default() };
    let (_, killed) = adapt(tiny(), &docs, &config, control).unwrap();
    assert!(!killed.finished);
    assert!(dir.join("state.json").exists());

    let control = RunControl { checkpoint_dir: Some(dir.clone()), ..RunControl::default() };
    let (resumed, report) = adapt(tiny(), &docs, &config, control).unwrap();
    assert_eq!(report.resumed_from, Some(2));
    assert!(report.finished);
    assert_eq!(report.steps, unbroken_report.steps);
    let indices: Vec<usize> = report.losses.iter().map(|l| l.index).collect();
    assert_eq!(indices, vec![0, 1, 2, 3, 4], "no document repeated or skipped");
    assert_eq!(max_param_diff(&resumed, &unbroken), 0.0);

    // A checkpoint of another stream is refused.
    let control = RunControl { checkpoint_dir: Some(dir.clone()), ..RunControl::default() };
    assert!(adapt(tiny(), &docs[..4], &config, control).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn non_finite_document_is_skipped_and_counted() {
    let mut docs = stream();
    let clean: Vec<WeightedDoc> = docs.iter().filter(|d| d.id != "doc1").cloned().collect();
    docs[1].weights[5] = f32::NAN;
    for config in [torch_adam(), AdaptConfig { batch_size: 2, ..torch_adam() }] {
        let (with_bad, report) = adapt(tiny(), &docs, &config, RunControl::default()).unwrap();
        assert_eq!(report.skipped, vec!["doc1".to_string()]);
        assert_eq!(report.docs_done, 5);
        assert!(report.losses.iter().all(|l| l.loss.is_finite() && l.id != "doc1"));
        if config.batch_size == 1 {
            let (without, _) = adapt(tiny(), &clean, &config, RunControl::default()).unwrap();
            assert_eq!(max_param_diff(&with_bad, &without), 0.0);
        }
    }
}

#[test]
fn accumulation_and_batching_take_fewer_steps() {
    let docs = stream();
    let config = AdaptConfig { batch_size: 2, grad_accumulation: 2, optimizer: OptimizerKind::Sgd, ..torch_adam() };
    let (_, report) = adapt(tiny(), &docs, &config, RunControl::default()).unwrap();
    assert_eq!(report.steps, 2); // 3 micro-batches (2, 2, 1 documents), 2 per step
    assert_eq!(report.losses.len(), 5);
    let config = AdaptConfig { epochs: 2, optimizer: OptimizerKind::AdaGrad, grad_clip_norm: Some(1.0), ..torch_adam() };
    let (_, report) = adapt(tiny(), &docs, &config, RunControl::default()).unwrap();
    assert_eq!(report.steps, 10);
    // The second pass sees the documents again, with a lower loss.
    assert!(report.losses[5].loss < report.losses[0].loss);
}
