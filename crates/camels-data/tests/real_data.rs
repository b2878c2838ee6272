//! The real SQuAD v1.1 files from `$CAMELS_DATA_DIR` (default `../shared/data` beside the repository);
//! counts from that folder's README. Ignored, and counted as such, when the files are absent
//! (`build.rs` sets `cfg(camels_data_absent)`).

mod common;

use camels_data::{
    DocumentBatchConfig, Format, PadTo, QaBatchConfig, Question, Shuffle, StreamConfig, build_stream, document_batch,
    qa_prompt_batch, qa_train_batch, read_any, squad, stats,
};

fn dev() -> std::path::PathBuf {
    common::data_dir().join("squad_v1.1/dev-v1.1-articles-00-35.json")
}

fn train() -> std::path::PathBuf {
    common::data_dir().join("squad_v1.1/train-v1.1-prefix.json")
}

#[test]
#[cfg_attr(camels_data_absent, ignore = "real data absent: set CAMELS_DATA_DIR or put ../shared/data beside the repo")]
fn squad_dev_counts_match_the_readme() {
    let data = squad::read(&dev(), true).unwrap();
    let titles: std::collections::HashSet<_> = data.documents.iter().map(|d| d.title.clone()).collect();
    assert_eq!(titles.len(), 36);
    assert_eq!(data.report.documents, 1545);
    assert_eq!(data.report.questions, 8123);
    assert_eq!(data.report.records, 8123);
    assert!(data.report.skipped.is_empty());
    // Dev questions have several reference answers, deduplicated here.
    let several = data.documents.iter().flat_map(|d| &d.questions).filter(|q| q.answers.len() > 1).count();
    assert!(several > 1000, "{several}");
}

#[test]
#[cfg_attr(camels_data_absent, ignore = "real data absent: set CAMELS_DATA_DIR or put ../shared/data beside the repo")]
fn squad_train_prefix_counts_match_the_readme() {
    let data = read_any(&train(), None, true).unwrap();
    assert_eq!(data.report.format, Format::Squad);
    let titles: std::collections::HashSet<_> = data.documents.iter().map(|d| d.title.clone()).collect();
    assert_eq!(titles.len(), 12);
    assert_eq!(data.report.documents, 678);
    assert_eq!(data.report.questions, 4370);
    let answers: usize = data.documents.iter().flat_map(|d| &d.questions).map(|q| q.answers.len()).sum();
    assert_eq!(answers, 4370);
    let s = stats(&train(), None, None).unwrap();
    assert_eq!(s.answers_in_document, 4370);
    assert_eq!(s.questions_answer_in_document, 4370);
}

#[test]
#[cfg_attr(camels_data_absent, ignore = "real data absent: set CAMELS_DATA_DIR or put ../shared/data beside the repo")]
fn squad_stream_tokenises_with_gpt2() {
    let tokenizer = common::gpt2();
    let data = squad::read(&dev(), true).unwrap();
    let config = StreamConfig { seed: 0, shuffle: Shuffle::Groups, downsample_to: Some(64), dedup: true };
    let stream = build_stream(data.documents, &config);
    assert_eq!(stream.len(), 64);

    let docs = document_batch(&tokenizer, &stream, &DocumentBatchConfig::default()).unwrap();
    assert_eq!(docs.tokens.shape(), [64, 1024]);
    let lengths = docs.tokens.lengths();
    assert!(lengths.iter().all(|&n| (20..=1024).contains(&n)), "{lengths:?}");
    let longest = DocumentBatchConfig { pad_to: PadTo::Longest, ..DocumentBatchConfig::default() };
    let docs = document_batch(&tokenizer, &stream[..8], &longest).unwrap();
    assert_eq!(docs.tokens.len, docs.tokens.lengths().into_iter().max().unwrap());

    let questions: Vec<&Question> = stream.iter().flat_map(|d| &d.questions).take(32).collect();
    let pairs: Vec<(&str, &str)> =
        questions.iter().map(|q| (q.question.as_str(), q.shortest_answer().unwrap())).collect();
    let qa = qa_train_batch(&tokenizer, &pairs, &QaBatchConfig { capitalize_answer: true, ..QaBatchConfig::default() })
        .unwrap();
    assert_eq!(qa.batch, 32);
    for b in 0..qa.batch {
        let targets = qa.target_mask[b * qa.len..(b + 1) * qa.len].iter().filter(|&&m| m > 0.0).count();
        assert!(targets >= 2, "row {b}: answer and eos expected");
    }
    let prompts = qa_prompt_batch(&tokenizer, &questions, &QaBatchConfig::default()).unwrap();
    assert_eq!(prompts.tokens.batch, 32);
    assert_eq!(prompts.answers[0], questions[0].answers);
}
