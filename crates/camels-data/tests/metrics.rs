//! SQuAD metrics against the official v1.1 script and TF-IDF against scikit-learn (fixtures from
//! `python fixtures/gen/squad_eval.py` and `python fixtures/gen/tfidf.py`), and the salient-span
//! detector's coverage of SQuAD dev answers (real data; skipped when absent).

mod common;

use std::path::PathBuf;

use camels_data::salient::answer_coverage;
use camels_data::squad_metrics::{normalize_answer, score};
use camels_data::tfidf::{Tfidf, words};

fn fixture(path: &str) -> serde_json::Value {
    let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures")).join(path);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect()
}

#[test]
fn em_and_f1_equal_the_official_squad_script() {
    let f = fixture("squad_eval/cases.json");
    let cases = f["cases"].as_array().unwrap();
    let (mut em, mut f1) = (0.0, 0.0);
    for case in cases {
        let prediction = case["prediction"].as_str().unwrap();
        let answers = strings(&case["answers"]);
        assert_eq!(normalize_answer(prediction), case["normalized_prediction"].as_str().unwrap(), "{prediction:?}");
        for (a, n) in answers.iter().zip(strings(&case["normalized_answers"])) {
            assert_eq!(normalize_answer(a), n, "{a:?}");
        }
        let s = score(prediction, &answers);
        assert_eq!(s.em_strict, case["em"].as_f64().unwrap(), "em of {prediction:?}");
        assert!((s.f1 - case["f1"].as_f64().unwrap()).abs() < 1e-12, "f1 of {prediction:?}");
        assert!(s.em_prefix >= s.em_strict);
        em += s.em_strict;
        f1 += s.f1;
    }
    let n = cases.len() as f64;
    assert!((100.0 * em / n - f["exact_match"].as_f64().unwrap()).abs() < 1e-9);
    assert!((100.0 * f1 / n - f["f1"].as_f64().unwrap()).abs() < 1e-9);
}

#[test]
fn tfidf_equals_scikit_learn() {
    let f = fixture("tfidf/tfidf.json");
    let docs = strings(&f["docs"]);
    let tfidf = Tfidf::fit(&docs);
    let vocabulary = f["vocabulary"].as_object().unwrap();
    assert_eq!(tfidf.vocabulary.len(), vocabulary.len());
    for (term, column) in vocabulary {
        assert_eq!(tfidf.vocabulary.get(term), Some(&(column.as_u64().unwrap() as usize)), "{term}");
    }
    for (mine, theirs) in tfidf.idf.iter().zip(f["idf"].as_array().unwrap()) {
        assert!((mine - theirs.as_f64().unwrap()).abs() < 1e-12);
    }
    for (doc, row) in docs.iter().zip(f["rows"].as_array().unwrap()) {
        let weights = tfidf.word_weights(doc);
        let row = row.as_array().unwrap();
        assert_eq!(weights.len(), row.len(), "{doc}");
        for entry in row {
            let word = entry["word"].as_str().unwrap();
            assert!((weights[word] - entry["weight"].as_f64().unwrap()).abs() < 1e-12, "{word} in {doc}");
        }
        // Token weights through character offsets: every word's characters carry its weight.
        let offsets: Vec<(usize, usize)> = (0..doc.chars().count()).map(|c| (c, c + 1)).collect();
        let per_char = tfidf.token_weights(doc, &offsets, 0.0);
        for w in words(doc) {
            assert!((f64::from(per_char[w.span.0]) - weights[&w.text]).abs() < 1e-6);
        }
    }
}

#[test]
fn salient_spans_cover_squad_dev_answers() {
    let path = common::data_dir().join("squad_v1.1/dev-v1.1-articles-00-35.json");
    if !path.exists() {
        eprintln!("skipped: {} not found", path.display());
        return;
    }
    let dataset = camels_data::squad::read(&path, false).unwrap();
    let coverage = answer_coverage(&dataset.documents);
    let inside = coverage.inside as f64 / coverage.answers as f64;
    let overlapping = coverage.overlapping as f64 / coverage.answers as f64;
    eprintln!(
        "salient coverage of SQuAD dev answers: {} answers, {:.1}% inside a span, {:.1}% overlapping one",
        coverage.answers,
        100.0 * inside,
        100.0 * overlapping
    );
    assert!(coverage.answers > 1_000);
    assert!(overlapping > 0.5, "the detector misses most answers: {coverage:?}");
}
