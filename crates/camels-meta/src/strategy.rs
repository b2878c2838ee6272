//! Token-weighting strategies for online adaptation: `uniform`, `tfidf[:Q]`, `salient` and
//! `camels:PATH` (a trained CaMeLS weighting model).
//!
//! A weighting model whose tokenizer differs from the base LM's weighs the text in its own tokens;
//! its weights are carried to the base LM's tokens through character offsets (each base token gets
//! the mean of the weights over the characters it covers).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::EncoderExt;
use burn::prelude::*;
use camels_data::salient::salient_spans;
use camels_data::tfidf::Tfidf;
use camels_data::{Document, Encoded, TextEncoder, answer_spans, tokens_in_spans};
use camels_model::hf::read_base_config;
use camels_model::tokenizer::TextTokenizer;
use camels_model::weighting::{WeightActivation, WeightingModel, WeightingModelConfig};
use serde::Deserialize;

use crate::adapt::WeightedDoc;
use crate::error::{MetaError, Result};

/// How document tokens are weighted.
#[derive(Debug, Clone, PartialEq)]
pub enum WeightStrategy {
    /// 1 on every real token.
    Uniform,
    /// TF-IDF fitted on the stream, zero below the `min_threshold` quantile (`tfidf` = `tfidf:0.05`,
    /// the paper's "TF-IDF + 5%").
    Tfidf {
        /// Quantile in [0, 1] under which weights become 0.
        min_threshold: f64,
    },
    /// 1 on tokens inside names, numbers and dates ([`camels_data::salient`]), 0 elsewhere.
    Salient,
    /// A trained weighting model in a folder (see [`load_weighting_model`]).
    Camels(PathBuf),
    /// 1 on the tokens of the gold answers where they occur in the document, 0 elsewhere. It reads
    /// the questions, so it is an oracle for diagnosis (what weighting the answers alone buys), not
    /// a method.
    Answers,
}

impl FromStr for WeightStrategy {
    type Err = MetaError;
    fn from_str(s: &str) -> Result<Self> {
        let invalid = || MetaError::InvalidOption {
            option: "--weights".into(),
            value: s.into(),
            expected: "uniform, tfidf[:QUANTILE], salient, camels:PATH or answers (oracle)".into(),
        };
        match s.split_once(':') {
            None if s == "uniform" => Ok(Self::Uniform),
            None if s == "salient" => Ok(Self::Salient),
            None if s == "answers" => Ok(Self::Answers),
            None if s == "tfidf" => Ok(Self::Tfidf { min_threshold: 0.05 }),
            Some(("tfidf", q)) => {
                let q: f64 = q.parse().map_err(|_| invalid())?;
                if !(0.0..=1.0).contains(&q) {
                    return Err(invalid());
                }
                Ok(Self::Tfidf { min_threshold: q })
            }
            Some(("camels", path)) if !path.is_empty() => Ok(Self::Camels(PathBuf::from(path))),
            _ => Err(invalid()),
        }
    }
}

impl fmt::Display for WeightStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Uniform => write!(f, "uniform"),
            Self::Tfidf { min_threshold } => write!(f, "tfidf:{min_threshold}"),
            Self::Salient => write!(f, "salient"),
            Self::Camels(path) => write!(f, "camels:{}", path.display()),
            Self::Answers => write!(f, "answers"),
        }
    }
}

/// The head options of a saved weighting model (`weighting.json`, all optional).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
struct HeadOptions {
    head_hidden: usize,
    activation: WeightActivation,
    softplus_beta: f64,
    normalize: bool,
    /// Set when the file holds the head only (see [`crate::checkpoint::TrunkSource`]).
    trunk_from: Option<String>,
    trunk_bytes: Option<u64>,
}

impl Default for HeadOptions {
    fn default() -> Self {
        Self {
            head_hidden: 128,
            activation: WeightActivation::Softplus,
            softplus_beta: 3.0,
            normalize: false,
            trunk_from: None,
            trunk_bytes: None,
        }
    }
}

/// Loads a weighting model folder: `weighting.safetensors` (keys `trunk.*`, `head.fc.*`,
/// `head.out.*`), the trunk's HF config (`weighting_config.json` or `config.json`), optional head
/// options (`weighting.json`: `head_hidden`, `activation`, `softplus_beta`, `normalize`, and for a
/// file that holds the head only, `trunk_from` / `trunk_bytes`: the base checkpoint whose first
/// blocks are the trunk) and an optional `tokenizer.json` (absent: the base LM's tokenizer).
///
/// A meta-training run directory (one with `checkpoints/best.json` or `checkpoints/last.json`)
/// stands for the checkpoint its best (else last) pointer names; a checkpoint directory
/// (`checkpoints/step-N`) is such a folder itself.
pub fn load_weighting_model<B: Backend>(
    dir: &Path,
    device: &B::Device,
) -> Result<(WeightingModel<B>, Option<TextTokenizer>)> {
    let resolved = crate::checkpoint::best_or_last_dir(dir)?;
    let dir = resolved.as_deref().unwrap_or(dir);
    let config_path =
        ["weighting_config.json", "config.json"].iter().map(|n| dir.join(n)).find(|p| p.exists()).ok_or_else(|| {
            MetaError::Parse {
                path: dir.into(),
                field: "weighting_config.json".into(),
                message: "no weighting_config.json or config.json in the folder".into(),
            }
        })?;
    let trunk = read_base_config(&config_path)?;
    let head_path = dir.join("weighting.json");
    let head: HeadOptions = if head_path.exists() {
        let text =
            std::fs::read_to_string(&head_path).map_err(|source| MetaError::Io { path: head_path.clone(), source })?;
        serde_json::from_str(&text).map_err(|e| MetaError::Parse {
            path: head_path.clone(),
            field: "-".into(),
            message: e.to_string(),
        })?
    } else {
        HeadOptions::default()
    };
    let config = WeightingModelConfig::new()
        .with_trunk(trunk)
        .with_head_hidden(head.head_hidden)
        .with_activation(head.activation)
        .with_softplus_beta(head.softplus_beta)
        .with_normalize(head.normalize);
    let trunk_source = match (head.trunk_from, head.trunk_bytes) {
        (Some(trunk_from), Some(trunk_bytes)) => Some(crate::checkpoint::TrunkSource { trunk_from, trunk_bytes }),
        (None, None) => None,
        _ => {
            return Err(MetaError::Parse {
                path: head_path,
                field: "trunk_from / trunk_bytes".into(),
                message: "one is given without the other".into(),
            });
        }
    };
    let model = crate::checkpoint::load_weighting(config.init::<B>(device), dir, trunk_source.as_ref())?;
    let tokenizer_path = dir.join("tokenizer.json");
    let tokenizer = if tokenizer_path.exists() { Some(TextTokenizer::from_file(&tokenizer_path)?) } else { None };
    if let Some(t) = &tokenizer
        && t.vocab_size() > config.trunk.vocab_size()
    {
        return Err(MetaError::Config {
            path: tokenizer_path,
            field: "vocab_size".into(),
            reason: format!(
                "the tokenizer has {} tokens, more than the weighting model's {} embeddings ({})",
                t.vocab_size(),
                config.trunk.vocab_size(),
                config_path.display()
            ),
        });
    }
    Ok((model, tokenizer))
}

/// A strategy made ready to weigh documents (TF-IDF fitted, weighting model loaded).
pub enum Weigher<B: Backend> {
    /// See [`WeightStrategy::Uniform`].
    Uniform,
    /// See [`WeightStrategy::Tfidf`].
    Tfidf {
        /// The fitted vectorizer.
        tfidf: Tfidf,
        /// Quantile under which weights become 0.
        min_threshold: f64,
    },
    /// See [`WeightStrategy::Salient`].
    Salient,
    /// See [`WeightStrategy::Camels`].
    Camels {
        /// The weighting model (boxed: it is much larger than the other variants).
        model: Box<WeightingModel<B>>,
        /// Its own tokenizer, when it differs from the base LM's.
        tokenizer: Option<Box<TextTokenizer>>,
        /// Where it runs.
        device: B::Device,
    },
    /// See [`WeightStrategy::Answers`].
    Answers,
}

impl<B: Backend> Weigher<B> {
    /// Prepares `strategy`; TF-IDF is fitted on `corpus` (the streamed documents' texts).
    pub fn new<S: AsRef<str>>(strategy: &WeightStrategy, corpus: &[S], device: &B::Device) -> Result<Self> {
        Ok(match strategy {
            WeightStrategy::Uniform => Self::Uniform,
            WeightStrategy::Tfidf { min_threshold } => {
                Self::Tfidf { tfidf: Tfidf::fit(corpus), min_threshold: *min_threshold }
            }
            WeightStrategy::Salient => Self::Salient,
            WeightStrategy::Camels(dir) => {
                let (model, tokenizer) = load_weighting_model::<B>(dir, device)?;
                Self::Camels { model: Box::new(model), tokenizer: tokenizer.map(Box::new), device: device.clone() }
            }
            WeightStrategy::Answers => Self::Answers,
        })
    }

    /// One weight per token of `encoded` (the base LM's tokens of `doc.text`); the only form the
    /// `answers` oracle accepts, as it reads the document's questions.
    pub fn weigh_document(&self, doc: &Document, encoded: &Encoded) -> Result<Vec<f32>> {
        match self {
            Self::Answers => Ok(tokens_in_spans(&encoded.offsets, &answer_spans(doc))
                .into_iter()
                .map(|inside| if inside { 1.0 } else { 0.0 })
                .collect()),
            _ => self.weigh(&doc.text, encoded),
        }
    }

    /// One weight per token of `encoded` (the base LM's tokens of `text`). The `answers` oracle
    /// needs the questions: see [`Weigher::weigh_document`].
    pub fn weigh(&self, text: &str, encoded: &Encoded) -> Result<Vec<f32>> {
        Ok(match self {
            Self::Answers => {
                return Err(MetaError::InvalidOption {
                    option: "--weights".into(),
                    value: "answers".into(),
                    expected: "a document with questions (Weigher::weigh_document)".into(),
                });
            }
            Self::Uniform => vec![1.0; encoded.ids.len()],
            Self::Tfidf { tfidf, min_threshold } => tfidf.token_weights(text, &encoded.offsets, *min_threshold),
            Self::Salient => tokens_in_spans(&encoded.offsets, &salient_spans(text))
                .into_iter()
                .map(|inside| if inside { 1.0 } else { 0.0 })
                .collect(),
            Self::Camels { model, tokenizer, device } => match tokenizer {
                None => model_weights(model, &encoded.ids, device),
                Some(own) => {
                    let theirs = TextEncoder::encode(&own.encoder(), text)?;
                    let weights = model_weights(model, &theirs.ids, device);
                    carry_by_offsets(&theirs.offsets, &weights, &encoded.offsets, text.chars().count())
                }
            },
        })
    }
}

/// The weighting model's weights of `ids`, in windows of its context length.
fn model_weights<B: Backend>(model: &WeightingModel<B>, ids: &[u32], device: &B::Device) -> Vec<f32> {
    let window = model.trunk.max_positions();
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(window.max(1)) {
        let t = chunk.len();
        let data: Vec<i64> = chunk.iter().map(|&i| i64::from(i)).collect();
        let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(data, [1, t]), device); // [1, T]
        let mask = Tensor::<B, 2>::ones([1, t], device); // [1, T]
        let w = model.forward(ids, mask); // [1, T]
        out.extend(w.into_data().convert::<f32>().to_vec::<f32>().expect("f32 weights"));
    }
    out
}

/// Carries weights from one tokenisation to another through character offsets: every character
/// covered by a source token takes that token's weight, and every target token the mean over its
/// covered characters. Characters no source token covers (a tokenizer that drops whitespace, a
/// truncated source) do not dilute the mean; a target token with none takes the weight of the
/// nearest covered character before it (else after it; 0 when the source covers nothing).
pub fn carry_by_offsets(
    source_offsets: &[(usize, usize)],
    source_weights: &[f32],
    target_offsets: &[(usize, usize)],
    n_chars: usize,
) -> Vec<f32> {
    let mut per_char: Vec<Option<f32>> = vec![None; n_chars];
    for (&(s, e), &w) in source_offsets.iter().zip(source_weights) {
        for c in per_char.iter_mut().take(e.min(n_chars)).skip(s) {
            *c = Some(w);
        }
    }
    let nearest = |at: usize| -> f32 {
        let at = at.min(n_chars);
        per_char[..at].iter().rev().chain(&per_char[at..]).find_map(|w| *w).unwrap_or(0.0)
    };
    target_offsets
        .iter()
        .map(|&(s, e)| {
            let (s, e) = (s.min(n_chars), e.min(n_chars));
            let mut covered = 0usize;
            let sum: f32 = per_char[s..e.max(s)].iter().flatten().inspect(|_| covered += 1).sum();
            if covered == 0 {
                // A zero-width token, or one over uncovered characters: its start's weight if
                // covered, else the nearest covered one.
                return per_char.get(s).copied().flatten().unwrap_or_else(|| nearest(s));
            }
            sum / covered as f32
        })
        .collect()
}

/// Tokenises every document (truncated to `max_tokens`) and weighs its tokens.
pub fn weighted_docs<B: Backend>(
    weigher: &Weigher<B>,
    encoder: &dyn TextEncoder,
    documents: &[Document],
    max_tokens: usize,
) -> Result<Vec<WeightedDoc>> {
    documents
        .iter()
        .map(|doc| {
            // Only the kept prefix is tokenised: a huge document costs what its first tokens cost.
            let encoded = camels_data::encode_prefix(encoder, &doc.text, max_tokens)?;
            let weights = weigher.weigh_document(doc, &encoded)?;
            Ok(WeightedDoc { id: doc.id.clone(), ids: encoded.ids, weights })
        })
        .collect()
}

/// Writes the token weights a run used as JSON lines, one document a line:
/// `{"id", "tokens": [{"id", "text", "start", "end", "weight"}]}`, with character offsets into the
/// document's text and `text` the characters the token covers, so that they can be inspected or
/// replayed with another tool. `stream[i]` must be `documents[i]` weighted (as [`weighted_docs`]
/// returns them); the file is written atomically.
pub fn write_weights_jsonl(
    path: &Path,
    documents: &[Document],
    stream: &[crate::adapt::WeightedDoc],
    encoder: &dyn TextEncoder,
) -> Result<()> {
    let mut out = String::new();
    for (doc, weighted) in documents.iter().zip(stream) {
        let encoded = camels_data::encode_prefix(encoder, &doc.text, weighted.ids.len())?;
        let chars: Vec<char> = doc.text.chars().collect();
        let tokens: Vec<serde_json::Value> = weighted
            .ids
            .iter()
            .zip(&weighted.weights)
            .zip(&encoded.offsets)
            .map(|((&id, &weight), &(start, end))| {
                let text: String = chars[start.min(chars.len())..end.min(chars.len())].iter().collect();
                serde_json::json!({"id": id, "text": text, "start": start, "end": end, "weight": weight})
            })
            .collect();
        out.push_str(&serde_json::json!({"id": weighted.id, "tokens": tokens}).to_string());
        out.push('\n');
    }
    Ok(camels_model::hf::write_atomic(path, out.as_bytes())?)
}

/// An HTML page of the first `n` documents, each drawn twice side by side: coloured by the run's
/// weights (`stream`, named `label`) and by the `answers` oracle's (`oracle`), with the gold answers'
/// tokens underlined in both. Each drawing is scaled to its own largest weight.
pub fn weights_report(
    label: &str,
    documents: &[Document],
    stream: &[crate::adapt::WeightedDoc],
    oracle: &[crate::adapt::WeightedDoc],
    encoder: &dyn TextEncoder,
    n: usize,
) -> Result<String> {
    use crate::viz::{DocView, PAGE_STYLE, docs_html, escape, token_views};
    let mut rows = String::new();
    for ((doc, weighted), gold) in documents.iter().zip(stream).zip(oracle).take(n) {
        let encoded = camels_data::encode_prefix(encoder, &doc.text, weighted.ids.len())?;
        let answer = tokens_in_spans(&encoded.offsets, &answer_spans(doc));
        let view = |title: &str, w: &[f32]| DocView {
            title: title.to_string(),
            tokens: token_views(&doc.text, &encoded.offsets, w, &answer),
        };
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td></tr>\n",
            docs_html(&[view(&format!("{} — {label}", doc.id), &weighted.weights)]),
            docs_html(&[view(&format!("{} — answers (oracle)", doc.id), &gold.weights)])
        ));
    }
    Ok(format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Token weights: {label}</title>\
         <style>{PAGE_STYLE} body{{max-width:none}} td{{vertical-align:top;text-align:left;width:50%}}</style></head><body>\n\
         <h1>Token weights: {} next to the answers oracle</h1>\n<table>\n{rows}</table>\n</body></html>\n",
        escape(label)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_draws_each_document_with_the_run_s_and_the_oracle_s_weights() {
        let doc = Document {
            id: "d<1>".into(),
            title: None,
            text: "Born in 1873.".into(),
            questions: vec![camels_data::Question {
                id: None,
                question: "When?".into(),
                answers: vec!["1873".into()],
                meta: Default::default(),
            }],
            meta: Default::default(),
        };
        let encoded = camels_data::ByteEncoder.encode(&doc.text).unwrap();
        let learned: Vec<f32> = (0..encoded.ids.len()).map(|i| i as f32 / 10.0).collect();
        let stream = [crate::adapt::WeightedDoc { id: doc.id.clone(), ids: encoded.ids.clone(), weights: learned }];
        let weigher = Weigher::<camels_model::device::Cpu>::Answers;
        let oracle = weighted_docs(&weigher, &camels_data::ByteEncoder, std::slice::from_ref(&doc), 64).unwrap();
        assert_eq!(oracle[0].weights.iter().filter(|&&w| w > 0.0).count(), 4, "the oracle weighs the 4 answer bytes");
        let docs = [doc.clone(), doc];
        let page = weights_report(
            "camels:x",
            &docs,
            &[stream[0].clone(), stream[0].clone()],
            &[oracle[0].clone(), oracle[0].clone()],
            &camels_data::ByteEncoder,
            1,
        )
        .unwrap();
        assert!(page.contains("d&lt;1&gt; — camels:x") && page.contains("d&lt;1&gt; — answers (oracle)"));
        assert_eq!(page.matches("<tr>").count(), 1, "only the first n documents");
        assert_eq!(page.matches("<span class=\"t a\"").count(), 8, "the answer's 4 bytes underlined in both drawings");
        assert_eq!(page.matches("<span class=\"t").count(), 2 * encoded.ids.len());
    }

    #[test]
    fn weights_jsonl_names_each_tokens_text_offsets_and_weight() {
        let doc = Document {
            id: "d1".into(),
            title: None,
            text: "Café 42".into(),
            questions: vec![],
            meta: Default::default(),
        };
        let encoded = camels_data::ByteEncoder.encode(&doc.text).unwrap();
        let weights: Vec<f32> = (0..encoded.ids.len()).map(|i| i as f32 / 10.0).collect();
        let stream = vec![crate::adapt::WeightedDoc { id: "d1".into(), ids: encoded.ids.clone(), weights }];
        let path = std::env::temp_dir().join(format!("camels-weights-{}.jsonl", std::process::id()));
        write_weights_jsonl(&path, std::slice::from_ref(&doc), &stream, &camels_data::ByteEncoder).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let line: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(line["id"], "d1");
        let tokens = line["tokens"].as_array().unwrap();
        assert_eq!(tokens.len(), 8, "é is two bytes, so two byte tokens");
        assert_eq!(
            (tokens[3]["text"].as_str(), tokens[3]["start"].as_u64(), tokens[4]["end"].as_u64()),
            (Some("é"), Some(3), Some(4))
        );
        assert_eq!(tokens[7]["text"], "2");
        assert!((tokens[7]["weight"].as_f64().unwrap() - 0.7).abs() < 1e-6);
    }

    #[test]
    fn strategies_parse() {
        assert_eq!("uniform".parse::<WeightStrategy>().unwrap(), WeightStrategy::Uniform);
        assert_eq!("tfidf".parse::<WeightStrategy>().unwrap(), WeightStrategy::Tfidf { min_threshold: 0.05 });
        assert_eq!("tfidf:0.2".parse::<WeightStrategy>().unwrap(), WeightStrategy::Tfidf { min_threshold: 0.2 });
        assert_eq!("camels:a/b".parse::<WeightStrategy>().unwrap(), WeightStrategy::Camels("a/b".into()));
        assert!("tfidf:2".parse::<WeightStrategy>().is_err());
        assert_eq!("answers".parse::<WeightStrategy>().unwrap(), WeightStrategy::Answers);
        assert!("ner".parse::<WeightStrategy>().is_err());
    }

    #[test]
    fn carrying_through_identical_offsets_is_the_identity() {
        let offsets = [(0, 3), (3, 4), (4, 9)];
        let w = [0.5, 0.0, 2.0];
        assert_eq!(carry_by_offsets(&offsets, &w, &offsets, 9), w);
        // Coarser target tokens average the characters they cover.
        assert_eq!(carry_by_offsets(&offsets, &w, &[(0, 4), (4, 9)], 9), [0.375, 2.0]);
        // Characters the source leaves uncovered (char 3, a dropped space) do not dilute the
        // mean; a target token over them alone takes the nearest covered weight before it.
        let gappy = [(0, 3), (4, 9)];
        let w = [0.5, 2.0];
        assert_eq!(carry_by_offsets(&gappy, &w, &[(0, 4), (4, 9)], 9), [0.5, 2.0]);
        assert_eq!(carry_by_offsets(&gappy, &w, &[(0, 3), (3, 4), (4, 9)], 9), [0.5, 0.5, 2.0]);
        assert_eq!(carry_by_offsets(&[(4, 9)], &[2.0], &[(0, 4), (4, 9)], 9), [2.0, 2.0], "none before: after");
        assert_eq!(carry_by_offsets(&[], &[], &[(0, 4)], 9), [0.0]);
    }
}
