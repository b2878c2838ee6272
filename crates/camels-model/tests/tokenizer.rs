//! The GPT-2 tokenizer: ids and character offsets equal HF's `GPT2TokenizerFast` on GPT-2's own
//! vocabulary (fixture from `python fixtures/gen/gpt2_tokenizer.py`); training a BPE works.

mod common;

use camels_model::tokenizer::TextTokenizer;
use common::*;

#[test]
fn gpt2_vocab_merges_match_transformers() {
    let dir = fixtures().join("gpt2-tokenizer");
    let tokenizer = TextTokenizer::from_vocab_merges(&dir.join("vocab.json"), &dir.join("merges.txt")).unwrap();
    assert_eq!(tokenizer.vocab_size(), 50257);
    assert_eq!(tokenizer.eos_id(), 50256);
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let cases = expected.as_array().unwrap();
    assert!(cases.len() >= 10);
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let ids: Vec<u32> = case["ids"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
        let offsets: Vec<(usize, usize)> = case["offsets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| (o[0].as_u64().unwrap() as usize, o[1].as_u64().unwrap() as usize))
            .collect();
        let got = tokenizer.encode_with_offsets(text).unwrap();
        assert_eq!(got.ids, ids, "ids of {text:?}");
        assert_eq!(got.offsets, offsets, "offsets of {text:?}");
        assert_eq!(tokenizer.decode(&got.ids).unwrap(), text, "decode of {text:?}");
    }
}

#[test]
fn tiny_fixture_tokenizer_loads_from_json_and_from_vocab_merges() {
    let dir = fixtures().join("tiny-gpt2");
    let json = TextTokenizer::from_file(&dir.join("tokenizer.json")).unwrap();
    let pair = TextTokenizer::from_vocab_merges(&dir.join("vocab.json"), &dir.join("merges.txt")).unwrap();
    let text = "The play was part of a series, titled Burn / Chatroom — 2003.";
    assert_eq!(json.encode(text).unwrap(), pair.encode(text).unwrap());
    assert_eq!(json.vocab_size(), 512);
}

#[test]
fn a_trained_bpe_round_trips_text() {
    let corpus = [
        "Varodek Quillian founded the Ostrenn Institute in 1874.",
        "The Ostrenn Institute moved to Belkarra in 1902.",
        "Quillian was born in Belkarra on 3 March 1851.",
    ];
    let texts = corpus.iter().cycle().take(60).map(|s| s.to_string());
    let tokenizer = TextTokenizer::train(texts, 300, 2).unwrap();
    assert!(tokenizer.vocab_size() <= 300 && tokenizer.vocab_size() > 257);
    let ids = tokenizer.encode(corpus[0]).unwrap();
    assert!(ids.len() < corpus[0].len(), "merges were learned");
    assert_eq!(tokenizer.decode(&ids).unwrap(), corpus[0]);
    let dir = scratch("bpe");
    tokenizer.save(&dir.join("tokenizer.json")).unwrap();
    let again = TextTokenizer::from_file(&dir.join("tokenizer.json")).unwrap();
    assert_eq!(again.encode("Ünïcödé text 42").unwrap(), tokenizer.encode("Ünïcödé text 42").unwrap());
}

#[test]
fn a_missing_tokenizer_names_the_directory() {
    let dir = scratch("no-tokenizer");
    let err = TextTokenizer::from_dir(&dir).unwrap_err();
    assert!(err.to_string().contains(&dir.display().to_string()), "{err}");
}
