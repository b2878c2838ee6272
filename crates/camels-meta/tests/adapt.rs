//! Online adaptation: uniform Adam and Adafactor against PyTorch (fixtures from
//! `python fixtures/gen/adapt.py` and `adafactor.py`),
//! kill-and-resume equality, non-finite documents skipped, and the weighting strategies.

#[path = "../../camels-model/tests/common/mod.rs"]
mod common;

use camels_meta::adafactor::AdafactorConfig;
use camels_meta::adapt::{AdaptConfig, OptimizerKind, RunControl, WeightedDoc, adapt};
use camels_model::base::{BaseLm, MatmulPrecision};
use camels_model::hf::{load_base, module_tensors};
use camels_model::loss::Reduction;
use common::*;

fn tiny() -> BaseLm<Ad> {
    load_base::<Ad>(&fixtures().join("tiny-gpt2"), &Default::default()).unwrap().0
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
    AdaptConfig {
        optimizer: OptimizerKind::Adam,
        lr: 1e-3,
        epsilon: 1e-8,
        reduction: Reduction::MeanPadded,
        ..AdaptConfig::tiny()
    }
}

fn max_param_diff(a: &BaseLm<Ad>, b: &BaseLm<Ad>) -> f32 {
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

/// One Adafactor step per fixture document (mean CE over the T − 1 positions), as the fixture's
/// PyTorch loop does; the losses before each step.
fn adafactor_losses(
    config: AdafactorConfig,
    lr: f64,
    model: BaseLm<Ad>,
    docs: &[WeightedDoc],
) -> (Vec<f64>, BaseLm<Ad>) {
    use burn::optim::{GradientsParams, Optimizer};
    use burn::prelude::*;
    let device = Default::default();
    let mut optim = config.init::<Ad, BaseLm<Ad>>();
    let mut model = model;
    let mut losses = Vec::new();
    for doc in docs {
        let ids: Vec<i64> = doc.ids.iter().map(|&t| i64::from(t)).collect();
        let ids = Tensor::<Ad, 2, Int>::from_data(TensorData::new(ids, [1, doc.ids.len()]), &device);
        let loss = camels_model::loss::token_cross_entropy(model.forward(ids.clone()), ids).mean();
        losses.push(f64::from(loss.clone().into_scalar()));
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(lr, model, grads);
    }
    (losses, model)
}

#[test]
fn adafactor_matches_hf_transformers() {
    let f: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("adapt/uniform_adafactor.json")).unwrap())
            .unwrap();
    let params = Reference::open(fixtures().join("adapt/uniform_adafactor.safetensors"));
    let docs = fixture_docs(&f);
    let lr = f["lr"].as_f64().unwrap();
    let beta1 = AdafactorConfig { beta1: Some(0.9), scale_parameter: false, ..AdafactorConfig::default() };
    for (case, config) in [("hf_default", AdafactorConfig::default()), ("beta1_unscaled", beta1)] {
        let expected: Vec<f64> =
            f["cases"][case]["loss_before_step"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        let (losses, model) = adafactor_losses(config, lr, tiny(), &docs);
        for (mine, theirs) in losses.iter().zip(&expected) {
            assert!((mine - theirs).abs() < 1e-4, "{case}: loss {mine} vs torch {theirs}");
        }
        let mut worst = (0.0f32, String::new());
        for (name, (_, mut values)) in module_tensors(&model) {
            let mut theirs = params.f32(&format!("{case}.{name}"));
            let mut tolerance = 1e-5;
            if name.ends_with("attn.c_attn.bias") {
                // The key bias adds q·b_k to every score of a query, which softmax ignores: its exact
                // gradient is 0, each framework's is rounding noise, and Adafactor's g/√(g² + 1e-30)
                // turns noise into a step of up to full size and either sign. Compare the query and
                // value biases, within 1e-4: the noise still enters their update through rms(u).
                let c = values.len() / 3;
                values.drain(c..2 * c);
                theirs.drain(c..2 * c);
                tolerance = 1e-4;
            }
            let scale = theirs.iter().fold(0.0f32, |m, x| m.max(x.abs()));
            let err = max_abs_diff(&values, &theirs) / scale;
            assert!(err < tolerance, "{case}: {name} differs by {err:.2e} of its largest value");
            if err > worst.0 {
                worst = (err, name);
            }
        }
        eprintln!(
            "{case}: parameters after 3 steps within {:.2e} (of the tensor's largest value) at {}",
            worst.0, worst.1
        );
    }
    // `adapt --optimizer adafactor` is the first case.
    let config = AdaptConfig {
        optimizer: OptimizerKind::Adafactor,
        lr,
        reduction: Reduction::MeanPadded,
        ..AdaptConfig::tiny()
    };
    let (_, report) = adapt(tiny(), &docs, &config, RunControl::default()).unwrap();
    let expected = f["cases"]["hf_default"]["loss_before_step"].as_array().unwrap();
    for (mine, theirs) in report.losses.iter().zip(expected) {
        assert!((mine.loss - theirs.as_f64().unwrap()).abs() < 1e-4, "adapt: {} vs {theirs}", mine.loss);
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

    // Refused: a checkpoint of another base, or weights that differ beyond recomputation noise.
    let control = || RunControl { checkpoint_dir: Some(dir.clone()), ..RunControl::default() };
    let (other_base, _) = adapt(tiny(), &docs[..1], &torch_adam(), RunControl::default()).unwrap();
    let err = adapt(other_base, &docs, &config, control()).unwrap_err().to_string();
    assert!(err.contains("base model"), "{err}");
    let mut reweighted = docs.clone();
    reweighted[4].weights[3] += 0.5;
    let err = adapt(tiny(), &reweighted, &config, control()).unwrap_err().to_string();
    assert!(err.contains("token weights of document"), "{err}");
    // Weights recomputed a few ulps off (as a GPU may) resume with the checkpoint's own weights,
    // so the result is still bit-identical to the unbroken run's.
    let mut jittered = docs.clone();
    for w in &mut jittered[3].weights[1..] {
        *w *= 1.0 + 1e-6; // weight 0 is never used (token 0 predicts nothing)
    }
    assert_ne!(jittered[3].weights, docs[3].weights);
    let (resumed, report) = adapt(tiny(), &jittered, &config, control()).unwrap();
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
fn bf16_matrix_products_follow_the_f32_losses_to_their_rounding() {
    let f = fixture();
    let docs = fixture_docs(&f);
    let expected: Vec<f64> = f["loss_before_step"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    let config = AdaptConfig { matmul_precision: MatmulPrecision::Bf16, ..torch_adam() };
    let (model, report) = adapt(tiny(), &docs, &config, RunControl::default()).unwrap();
    let gaps: Vec<f64> = report.losses.iter().zip(&expected).map(|(mine, theirs)| (mine.loss - theirs).abs()).collect();
    eprintln!("bf16 adaptation: |loss − PyTorch's f32 loss| per step {gaps:?}");
    assert!(gaps.iter().all(|g| *g < 1e-2) && gaps.iter().any(|g| *g > 1e-6), "{gaps:?}");
    // The adapted model comes back with the precision it came in with.
    assert_eq!(model.precision(), MatmulPrecision::F32);
    // f16 would flush most logit gradients to zero without loss scaling: refused.
    let f16 = AdaptConfig { matmul_precision: MatmulPrecision::F16, ..torch_adam() };
    let err = adapt(tiny(), &docs, &f16, RunControl::default()).unwrap_err().to_string();
    assert!(err.contains("matmul_precision") && err.contains("loss scaling"), "{err}");
}

#[test]
fn an_adafactor_run_resumes_with_its_factored_moments() {
    // The checkpoint must carry Adafactor's per-tensor state (step, row and column moments, or a
    // full moment for biases) for the resumed run to end where the unbroken one does.
    let docs = stream();
    let config = AdaptConfig { optimizer: OptimizerKind::Adafactor, lr: 1e-2, checkpoint_every: 2, ..torch_adam() };
    let dir = scratch("adapt-resume-adafactor");
    let (unbroken, _) = adapt(tiny(), &docs, &config, RunControl::default()).unwrap();
    let control = RunControl { checkpoint_dir: Some(dir.clone()), stop_after: Some(3), ..RunControl::default() };
    let (_, killed) = adapt(tiny(), &docs, &config, control).unwrap();
    assert!(!killed.finished);
    let control = RunControl { checkpoint_dir: Some(dir.clone()), ..RunControl::default() };
    let (resumed, report) = adapt(tiny(), &docs, &config, control).unwrap();
    assert_eq!(report.resumed_from, Some(2));
    assert_eq!(max_param_diff(&resumed, &unbroken), 0.0);
    // Without the moments (a fresh optimizer from document 2 on), the result differs.
    let (first_two, _) = adapt(tiny(), &docs[..2], &config, RunControl::default()).unwrap();
    let (restarted, _) = adapt(first_two, &docs[2..], &config, RunControl::default()).unwrap();
    assert!(max_param_diff(&restarted, &unbroken) > 1e-4);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_stop_waits_for_the_optimizer_step_so_no_accumulated_gradient_is_lost() {
    let docs = stream();
    let config = AdaptConfig { checkpoint_every: 2, grad_accumulation: 2, ..torch_adam() };
    let dir = scratch("adapt-stop-accumulated");
    let (unbroken, unbroken_report) = adapt(tiny(), &docs, &config, RunControl::default()).unwrap();
    // Asked to stop after 3 documents, mid-accumulation: it finishes the step (4 documents).
    let control = RunControl { checkpoint_dir: Some(dir.clone()), stop_after: Some(3), ..RunControl::default() };
    let (_, stopped) = adapt(tiny(), &docs, &config, control).unwrap();
    assert!(!stopped.finished);
    assert_eq!(stopped.docs_done, 4);
    let control = RunControl { checkpoint_dir: Some(dir.clone()), ..RunControl::default() };
    let (resumed, report) = adapt(tiny(), &docs, &config, control).unwrap();
    assert_eq!(report.resumed_from, Some(4));
    assert_eq!(report.steps, unbroken_report.steps);
    assert_eq!(max_param_diff(&resumed, &unbroken), 0.0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_non_finite_gradient_is_detected() {
    use burn::module::{Module, ModuleVisitor, Param};
    use burn::optim::GradientsParams;
    use burn::prelude::{Int, Tensor, TensorData};
    use camels_meta::adapt::grads_finite;
    let model = tiny();
    let ids = Tensor::<Ad, 2, Int>::from_data([[1, 2, 3, 4, 5]], &Default::default()); // [1, T]
    let loss = camels_model::loss::token_cross_entropy(model.forward(ids.clone()), ids).mean();
    let mut grads = GradientsParams::from_grads(loss.backward(), &model);
    assert!(grads_finite(&model, &grads));
    // Poison one parameter's gradient with an infinity, as an overflowing backward would.
    struct First(Option<burn::module::ParamId>, Vec<usize>);
    impl ModuleVisitor<Ad> for First {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<Ad, D>>) {
            if self.0.is_none() && D == 1 {
                self.0 = Some(p.id);
                self.1 = p.val().dims().to_vec();
            }
        }
    }
    let mut first = First(None, Vec::new());
    model.visit(&mut first);
    let (id, dims) = (first.0.unwrap(), first.1);
    let mut values = vec![0.0f32; dims[0]];
    values[0] = f32::INFINITY;
    grads.remove::<Cpu, 1>(id);
    grads.register::<Cpu, 1>(id, Tensor::from_data(TensorData::new(values, [dims[0]]), &Default::default()));
    assert!(!grads_finite(&model, &grads));
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
    // Over two epochs, with a one-token document too: each is reported once, in its own list.
    docs.push(WeightedDoc { id: "stub".into(), ids: vec![7], weights: vec![1.0] });
    let config = AdaptConfig { epochs: 2, ..torch_adam() };
    let (_, report) = adapt(tiny(), &docs, &config, RunControl::default()).unwrap();
    assert_eq!((report.skipped, report.too_short), (vec!["doc1".to_string()], vec!["stub".to_string()]));
    assert_eq!((report.docs_done, report.losses.len()), (12, 8));
}

#[test]
fn accumulation_and_batching_take_fewer_steps() {
    let docs = stream();
    let config = AdaptConfig { batch_size: 2, grad_accumulation: 2, optimizer: OptimizerKind::Sgd, ..torch_adam() };
    let (_, report) = adapt(tiny(), &docs, &config, RunControl::default()).unwrap();
    assert_eq!(report.steps, 2); // 3 micro-batches (2, 2, 1 documents), 2 per step
    assert_eq!(report.losses.len(), 5);
    let config =
        AdaptConfig { epochs: 2, optimizer: OptimizerKind::AdaGrad, grad_clip_norm: Some(1.0), ..torch_adam() };
    let (_, report) = adapt(tiny(), &docs, &config, RunControl::default()).unwrap();
    assert_eq!(report.steps, 10);
    // The second pass sees the documents again, with a lower loss.
    assert!(report.losses[5].loss < report.losses[0].loss);
}

mod strategies_and_eval {
    use super::*;
    use burn::module::AutodiffModule;
    use camels_data::{Document, Question, TextEncoder};
    use camels_meta::eval::{
        EvalConfig, Summary, answer_nlls, evaluate_questions, fact_gain, perplexity, questions_of, swapped_answers,
        write_predictions_csv,
    };
    use camels_meta::strategy::{Weigher, WeightStrategy, weighted_docs};
    use camels_model::tokenizer::TextTokenizer;

    fn tokenizer() -> TextTokenizer {
        TextTokenizer::from_dir(&fixtures().join("tiny-gpt2")).unwrap()
    }

    fn document() -> Document {
        let mut d = Document::new("d0", "Varodek Quillian was born in 1873 in the town of Belkarra.");
        d.questions.push(Question::new("When was Varodek Quillian born?", vec!["1873".into()]));
        d.questions.push(Question::new(
            "Where was Varodek Quillian born?",
            vec!["Belkarra".into(), "the town of Belkarra".into()],
        ));
        d
    }

    #[test]
    fn strategies_weigh_the_base_tokens() {
        let tok = tokenizer();
        let docs = vec![document()];
        let texts = vec![docs[0].text.as_str()];
        let device = Default::default();
        let encoded = tok.inner().encode(&docs[0].text).unwrap();
        for (spec, check) in [
            ("uniform", Box::new(|w: &[f32]| w.iter().all(|&x| x == 1.0)) as Box<dyn Fn(&[f32]) -> bool>),
            ("salient", Box::new(|w: &[f32]| w.contains(&1.0) && w.contains(&0.0))),
            ("tfidf:0", Box::new(|w: &[f32]| w.iter().any(|&x| x > 0.0) && w.iter().all(|&x| x >= 0.0))),
        ] {
            let weigher = Weigher::<Cpu>::new(&spec.parse().unwrap(), &texts, &device).unwrap();
            let w = weighted_docs(&weigher, tok.inner(), &docs, 64).unwrap();
            assert_eq!(w[0].ids, encoded.ids);
            assert!(check(&w[0].weights), "{spec}: {:?}", w[0].weights);
        }
        // The salient tokens are those of the year and the names.
        let weigher = Weigher::<Cpu>::new(&WeightStrategy::Salient, &texts, &device).unwrap();
        let w = weigher.weigh(&docs[0].text, &encoded).unwrap();
        let salient: String = encoded
            .offsets
            .iter()
            .zip(&w)
            .filter(|(_, w)| **w == 1.0)
            .map(|(&(s, e), _)| docs[0].text.chars().skip(s).take(e - s).collect::<String>())
            .collect();
        assert_eq!(salient.split_whitespace().collect::<Vec<_>>().join(" "), "Varodek Quillian 1873 Belkarra");

        // A CaMeLS weighting model (the meta fixture's) on the same tokenizer: its own forward.
        let weigher = Weigher::<Cpu>::new(&WeightStrategy::Camels(fixtures().join("meta")), &texts, &device).unwrap();
        let w = weigher.weigh(&docs[0].text, &encoded).unwrap();
        assert_eq!(w.len(), encoded.ids.len());
        assert!(w.iter().all(|x| x.is_finite() && *x > 0.0));
    }

    #[test]
    fn adapting_on_the_document_lowers_the_answer_nll() {
        let tok = tokenizer();
        // Questions that the document's own text continues, so that adapting on it must help.
        let mut doc = document();
        doc.questions = vec![
            Question::new("Varodek Quillian was born in", vec!["1873".into()]),
            Question::new(
                "Varodek Quillian was born in 1873 in the town of",
                vec!["Belkarra".into(), "the town of Belkarra".into()],
            ),
        ];
        let docs = vec![doc];
        let device = Default::default();
        let config = EvalConfig { max_new_tokens: 4, ..EvalConfig::default() };
        let items = questions_of(&docs);
        let before_model = tiny();
        let before = evaluate_questions(&before_model.valid(), &tok, &items, &config, &device).unwrap();
        let ppl_before =
            perplexity(&before_model.valid(), tok.inner(), &[docs[0].text.as_str()], &config, &device).unwrap();
        let weigher = Weigher::<Cpu>::new(&WeightStrategy::Uniform, &[""], &device).unwrap();
        let stream = weighted_docs(&weigher, tok.inner(), &docs, 64).unwrap();
        let adapt_config = AdaptConfig { epochs: 20, ..torch_adam() };
        let (adapted, _) = adapt(before_model, &stream, &adapt_config, RunControl::default()).unwrap();
        let mut after = evaluate_questions(&adapted.valid(), &tok, &items, &config, &device).unwrap();
        let ppl_after = perplexity(&adapted.valid(), tok.inner(), &[docs[0].text.as_str()], &config, &device).unwrap();
        assert_eq!(after.len(), 2);
        for (a, b) in after.iter_mut().zip(&before) {
            assert!(a.nll < b.nll, "{}: nll {} after vs {} before", a.question, a.nll, b.nll);
            a.nll_before = Some(b.nll);
        }
        assert!(ppl_after < ppl_before, "the streamed text itself gets likelier: {ppl_after} vs {ppl_before}");
        // unrelated_windows keeps the first windows of 16 tokens only (the first text has more).
        let texts = [docs[0].text.as_str(), "A quite different text about rivers and their many fish."];
        let windows = |n: usize| EvalConfig { unrelated_window: 16, unrelated_windows: n, ..config.clone() };
        let ppl =
            |texts: &[&str], n: usize| perplexity(&adapted.valid(), tok.inner(), texts, &windows(n), &device).unwrap();
        assert_eq!(ppl(&texts, 1), ppl(&texts[..1], 1), "one window: the first text's first 16 tokens");
        assert_eq!(ppl(&texts, 0), ppl(&texts, 10_000), "0 keeps every window");
        assert_ne!(ppl(&texts, 1), ppl(&texts, 0));
        let summary = Summary::default().with_predictions(&after);
        assert_eq!(summary.n_questions, 2);
        assert!(summary.answer_nll_before.unwrap() > summary.answer_nll_after);
        let dir = scratch("eval-out");
        write_predictions_csv(&dir.join("predictions.csv"), &after).unwrap();
        let csv = std::fs::read_to_string(dir.join("predictions.csv")).unwrap();
        assert_eq!(csv.lines().count(), 3);
        assert!(csv.contains("\"Belkarra | the town of Belkarra\""));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_fact_gain_separates_a_documents_own_answers_from_the_streams_vocabulary() {
        let tok = tokenizer();
        // Two documents of the same shape: a model that takes their facts up raises each question's
        // own answer more than the other document's answer of the same kind.
        let doc = |id: &str, name: &str, year: &str, town: &str| {
            let mut d = Document::new(id, format!("{name} was born in {year} in the town of {town}."));
            d.questions.push(Question::new(format!("{name} was born in"), vec![year.into()]));
            d.questions.push(Question::new(format!("{name} was born in {year} in the town of"), vec![town.into()]));
            d
        };
        let docs =
            vec![doc("a", "Varodek Quillian", "1873", "Belkarra"), doc("b", "Ostrava Melling", "1902", "Tessaly")];
        let swapped = swapped_answers(&docs);
        assert_eq!(swapped.index, [0, 1, 2, 3]);
        let answers: Vec<&str> = swapped.items.iter().map(|q| q.answers[0].as_str()).collect();
        assert_eq!(answers, ["1902", "Tessaly", "1873", "Belkarra"]);

        let device = Default::default();
        let config = EvalConfig::default();
        let nlls = |m: &BaseLm<Ad>, items: &[camels_meta::eval::QaItem]| {
            answer_nlls(&m.valid(), tok.inner(), items, &config, &device).unwrap()
        };
        let base = tiny();
        let weigher = Weigher::<Cpu>::new(&WeightStrategy::Uniform, &[""], &device).unwrap();
        let stream = weighted_docs(&weigher, tok.inner(), &docs, 64).unwrap();
        let config_20 = AdaptConfig { epochs: 20, ..torch_adam() };
        let (adapted, _) = adapt(base.clone(), &stream, &config_20, RunControl::default()).unwrap();
        let items = questions_of(&docs);
        let (gold_before, gold_after) = (nlls(&base, &items), nlls(&adapted, &items));
        let (swapped_before, swapped_after) = (nlls(&base, &swapped.items), nlls(&adapted, &swapped.items));
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let gain = mean(&gold_before) - mean(&gold_after);
        let swapped_gain = mean(&swapped_before) - mean(&swapped_after);
        let fact = fact_gain(&gold_before, &gold_after, &swapped_before, &swapped_after).unwrap();
        assert!((fact - (gain - swapped_gain)).abs() < 1e-12);
        // Memorised: the own answers gain far more than the other document's.
        assert!(gain > 0.0 && fact > 0.25 * gain && fact < gain, "fact gain {fact} of an answer-NLL gain {gain}");
    }
}

/// `camels:PATH` across families and tokenizers: a weighting model with a Llama trunk and GPT-2's
/// (tiny) tokenizer, saved as meta-training saves it, weighs a document for SmolLM2's tokenizer;
/// each SmolLM2 token gets the mean weight of the characters it covers.
#[test]
fn a_llama_trunk_weighting_model_weighs_for_another_tokenizer() {
    use burn::module::Param;
    use burn::prelude::{Int, Tensor, TensorData};
    use camels_meta::strategy::{Weigher, WeightStrategy, carry_by_offsets};
    use camels_model::base::BaseConfig;
    use camels_model::llama::LlamaConfig;
    use camels_model::tokenizer::TextTokenizer;
    use camels_model::weighting::WeightingModelConfig;
    let models = std::env::var_os("CAMELS_MODELS_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/models"));
    let gguf = models.join("SmolLM2-135M-Instruct.Q4_1.gguf");
    if !gguf.exists() {
        eprintln!("skipped: SmolLM2 GGUF not found at {}", gguf.display());
        return;
    }
    let device = Default::default();
    <Cpu as burn::tensor::backend::Backend>::seed(&device, 11);
    let trunk = BaseConfig::Llama(LlamaConfig { initializer_range: 0.2, ..LlamaConfig::tiny() });
    let config = WeightingModelConfig::new().with_trunk(trunk).with_head_hidden(8);
    let mut model = config.init::<Cpu>(&device);
    // A random output layer, so that the weights differ from token to token.
    model.head.out.weight =
        Param::from_tensor(Tensor::random([1, 8], burn::tensor::Distribution::Normal(0.0, 1.0), &device));
    let dir = scratch("llama-weighting");
    camels_model::hf::save_module(&model, &dir.join("weighting.safetensors")).unwrap();
    camels_meta::checkpoint::write_weighting_description(&dir, &config, None).unwrap();
    std::fs::copy(fixtures().join("tiny-gpt2/tokenizer.json"), dir.join("tokenizer.json")).unwrap();

    let text = "In 1879, Albert Einstein was born in Ulm; he won the Nobel Prize in 1921.";
    let base = camels_model::hf::read_base_config_at(&gguf).unwrap();
    let smol = camels_model::hf::load_tokenizer(&gguf, &base).unwrap();
    let target = smol.encode_with_offsets(text).unwrap();
    let encoded = camels_data::Encoded { ids: target.ids.clone(), offsets: target.offsets.clone() };
    let weigher = Weigher::<Cpu>::new(&WeightStrategy::Camels(dir.clone()), &[text], &device).unwrap();
    let weights = weigher.weigh(text, &encoded).unwrap();

    let own = TextTokenizer::from_file(&dir.join("tokenizer.json")).unwrap().encode_with_offsets(text).unwrap();
    let ids: Vec<i64> = own.ids.iter().map(|&i| i64::from(i)).collect();
    let t = ids.len();
    let direct = values(model.forward(
        Tensor::<Cpu, 2, Int>::from_data(TensorData::new(ids, [1, t]), &device),
        Tensor::<Cpu, 2>::ones([1, t], &device),
    ));
    let expected = carry_by_offsets(&own.offsets, &direct, &target.offsets, text.chars().count());
    assert_eq!(weights.len(), target.ids.len());
    assert!(max_abs_diff(&weights, &expected) < 1e-6, "{weights:?} vs {expected:?}");
    let spread = weights.iter().copied().fold(f32::MIN, f32::max) - weights.iter().copied().fold(f32::MAX, f32::min);
    assert!(spread > 1e-3, "weights are constant: {weights:?}");
}
