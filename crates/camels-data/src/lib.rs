//! Document streams and QA data for CaMeLS (Hu, Mitchell, Manning, Finn, "Meta-Learning Online
//! Adaptation of Language Models", EMNLP 2023).
//!
//! CaMeLS adapts a language model online on a stream of documents and then asks it questions about
//! them. This crate turns the datasets the paper used into those streams, as plain Rust data (it
//! depends on no tensor library):
//!
//! * **readers** for SQuAD v1.1/v2.0 JSON ([`squad`]), StreamingQA CSV ([`streamingqa`]),
//!   ArchivalQA CSV ([`archivalqa`]), the crate's own JSONL ([`jsonl`]) and unrelated text
//!   ([`unrelated`]), all producing [`Document`]s with [`Question`]s and a [`ReadReport`] that lists
//!   every malformed record skipped (or, with `strict`, fails on the first); [`read_any`] guesses
//!   the format;
//! * **streams** ([`build_stream`]): deduplicated, group-shuffled, downsampled, split, reproducible
//!   from a seed through the crate's own [`Rng`] (xoshiro256**);
//! * **tokenised batches** ([`document_batch`], [`qa_train_batch`], [`qa_prompt_batch`],
//!   [`locality_batch`]) through the [`TextEncoder`] trait, implemented for
//!   `tokenizers::Tokenizer` (character offsets) and the file-free [`ByteEncoder`];
//! * a **synthetic fact world** ([`generate_world`], [`write_world`]) of invented entities, for
//!   demos and tests that must run on a CPU;
//! * **statistics** ([`stats`]) with a printable table.
//!
//! # The JSONL format
//!
//! One document per line, UTF-8:
//!
//! ```json
//! {"id": "test-0001", "title": "Varodek Quillian", "text": "Varodek Quillian was born in 1873. …",
//!  "questions": [{"id": "test-0001-q0", "question": "When was Varodek Quillian born?", "answers": ["1873"]}]}
//! ```
//!
//! | field | required | meaning |
//! |---|---|---|
//! | `text` | yes | the document, a non-empty string |
//! | `id` | no (default `line N`) | a string (or number), unique within the file (a line repeating an earlier id is malformed) |
//! | `title` | no | group key: documents sharing it stay together when a stream is shuffled |
//! | `questions` | no (default none) | list of `{"question", "answers", "id"?, "meta"?}`; `answers` is a non-empty list of strings, the first-listed shortest one being the training target |
//! | `meta` | no | object of string values kept alongside (e.g. dates) |
//!
//! Unknown fields are ignored; blank lines are skipped; a byte order mark at the start is dropped
//! (as it is by every reader).
//!
//! # Example
//!
//! ```
//! use camels_data::{build_stream, jsonl, qa_train_batch, document_batch, ByteEncoder,
//!                   DocumentBatchConfig, QaBatchConfig, StreamConfig};
//!
//! let dir = std::env::temp_dir().join(format!("camels-data-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let path = dir.join("tiny.jsonl");
//! std::fs::write(&path, concat!(
//!     r#"{"id": "a", "text": "Belkarra was settled in 1204.", "questions": [{"question": "When was Belkarra settled?", "answers": ["1204"]}]}"#, "\n",
//!     r#"{"id": "b", "text": "Ilvo Marn wrote 12 books."}"#, "\n",
//! )).unwrap();
//!
//! let dataset = jsonl::read(&path, true).unwrap();
//! assert_eq!(dataset.report.documents, 2);
//! let stream = build_stream(dataset.documents, &StreamConfig { seed: 1, ..StreamConfig::default() });
//!
//! let docs = document_batch(&ByteEncoder, &stream, &DocumentBatchConfig::default()).unwrap();
//! assert_eq!(docs.tokens.shape(), [2, 1024]);
//!
//! let pairs: Vec<(&str, &str)> = stream
//!     .iter()
//!     .flat_map(|d| d.questions.iter())
//!     .map(|q| (q.question.as_str(), q.shortest_answer().unwrap()))
//!     .collect();
//! let qa = qa_train_batch(&ByteEncoder, &pairs, &QaBatchConfig::default()).unwrap();
//! assert_eq!(qa.target_mask.iter().sum::<f32>(), 6.0); // " 1204" and the end of sequence
//! # std::fs::remove_dir_all(&dir).unwrap();
//! ```
//!
//! From the command line: `cargo run -p camels-cli -- data stats FILE` and
//! `cargo run -p camels-cli -- data synth --out DIR`.

pub mod archivalqa;
mod batch;
mod csvread;
mod error;
pub mod jsonl;
mod read;
mod rng;
pub mod salient;
pub mod squad;
pub mod squad_metrics;
mod stats;
mod stream;
pub mod streamingqa;
mod synth;
pub mod tfidf;
mod types;
pub mod unrelated;

pub use batch::{
    ByteEncoder, DocumentBatch, DocumentBatchConfig, Encoded, ModelEncoder, Overflow, PadTo, Padding, QaBatchConfig,
    QaPromptBatch, TextEncoder, TokenBatch, document_batch, encode_prefix, locality_batch, qa_prompt_batch,
    qa_train_batch, tokens_in_spans,
};
pub use error::DataError;
pub use read::{Format, guess_format, read_any};
pub use rng::{Rng, SplitMix64};
pub use stats::{Bucket, LengthUnit, Stats, count_tokens, histogram, stats, stats_of};
pub use stream::{
    Shuffle, StreamConfig, build_stream, dedup_by_text, sample_documents, shuffle_groups, split_fractions, split_ranges,
};
pub use synth::{SynthConfig, SynthSplit, SynthWorld, generate_world, write_world};
pub use types::{Dataset, Document, Question, ReadReport, answer_spans};
