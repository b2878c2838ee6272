//! QA evaluation of a (possibly adapted) base LM: generated answers scored with SQuAD EM (lenient
//! prefix EM as in the CaMeLS reference, and strict EM) and F1, the NLL of the gold answer, the
//! perplexity of unrelated text (forgetting), control questions (about documents not streamed),
//! swapped answers (each question scored against another streamed question's answer), and the
//! `predictions.csv` / `summary.json` writers.

use std::path::Path;

use crate::EncoderExt;
use burn::prelude::*;
use camels_data::squad_metrics::{clean_generation, normalize_answer, score};
use camels_data::{Document, QaBatchConfig, TextEncoder, locality_batch, qa_train_batch};
use camels_model::base::BaseLm;
use camels_model::generate::{Decoding, GenerateConfig, generate};
use camels_model::hf::write_atomic;
use camels_model::loss::token_cross_entropy;
use camels_model::tokenizer::TextTokenizer;
use serde::{Deserialize, Serialize};

use crate::error::{MetaError, Result};

/// How questions are asked and scored.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalConfig {
    /// Greedy (default), beam search or top-k sampling.
    pub decoding: Decoding,
    /// New tokens per answer (the reference generates 16).
    pub max_new_tokens: usize,
    /// Questions per generation and NLL batch.
    pub batch_size: usize,
    /// Prompt template and QA tokenisation.
    pub qa: QaBatchConfig,
    /// Window of unrelated text for perplexity, in tokens.
    pub unrelated_window: usize,
    /// Windows of unrelated text measured at most, the text's first (0: all of them).
    pub unrelated_windows: usize,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            decoding: Decoding::Greedy,
            max_new_tokens: 16,
            batch_size: 16,
            qa: QaBatchConfig::default(),
            unrelated_window: 256,
            unrelated_windows: 0,
        }
    }
}

/// One question to ask, with the document it is about.
#[derive(Debug, Clone, PartialEq)]
pub struct QaItem {
    /// The document's id.
    pub doc_id: String,
    /// The question.
    pub question: String,
    /// Gold answers.
    pub answers: Vec<String>,
}

/// Every question (with at least one answer) of `documents`, in stream order.
pub fn questions_of(documents: &[Document]) -> Vec<QaItem> {
    documents
        .iter()
        .flat_map(|d| {
            d.questions.iter().filter(|q| q.shortest_answer().is_some()).map(|q| QaItem {
                doc_id: d.id.clone(),
                question: q.question.clone(),
                answers: q.answers.clone(),
            })
        })
        .collect()
}

/// The questions of the `control` documents (read from `path`), none of which may also be in the
/// stream (same text). Their answer NLL before and after adaptation measures what adaptation
/// teaches that is not about the streamed documents (the form of the questions, which answers are
/// likely); the streamed questions' gain minus theirs is the part that is.
pub fn control_questions(stream: &[Document], control: &[Document], path: &Path) -> Result<Vec<QaItem>> {
    let streamed: std::collections::HashSet<&str> = stream.iter().map(|d| d.text.as_str()).collect();
    if let Some(d) = control.iter().find(|d| streamed.contains(d.text.as_str())) {
        return Err(MetaError::Config {
            path: path.into(),
            field: format!("document {}", d.id),
            reason: "is also in the stream: control questions must be about documents not streamed".into(),
        });
    }
    let items = questions_of(control);
    if items.is_empty() {
        return Err(MetaError::Config {
            path: path.into(),
            field: "questions".into(),
            reason: "no control document has a question with an answer".into(),
        });
    }
    Ok(items)
}

/// The coarse kind of an answer that [`swapped_answers`] pairs within: a year (4 digits), a number
/// (digits, commas, points), a date or other text with a digit, lower-case text (roles, common
/// nouns) or capitalised text (names).
fn answer_kind(answer: &str) -> u8 {
    let answer = answer.trim();
    let digits = answer.chars().filter(char::is_ascii_digit).count();
    if digits == 4 && answer.chars().count() == 4 {
        0
    } else if digits > 0 && answer.chars().all(|c| c.is_ascii_digit() || c == ',' || c == '.') {
        1
    } else if digits > 0 {
        2
    } else if answer.chars().next().is_some_and(char::is_lowercase) {
        3
    } else {
        4
    }
}

/// Streamed questions paired with another document's answer ([`swapped_answers`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SwappedAnswers {
    /// Index of each paired question in [`questions_of`]`(documents)`.
    pub index: Vec<usize>,
    /// The same questions, each with its partner's answer as the only gold answer.
    pub items: Vec<QaItem>,
}

/// Each streamed question paired with the gold answer of a question about another document: of
/// the same kind ([`answer_kind`]), preferably with the same two opening words ("In which", "How
/// many"), the nearest in stream order among the 256 nearest of its kind (searching forwards for
/// even-numbered questions and backwards for odd ones, cyclically, so that partners come as often
/// from earlier documents as from later ones). A partner answer that equals one of the question's
/// own (after SQuAD normalisation) or occurs in the question's own document (as whole words) is
/// passed over: the document would teach it too. Questions without a partner are left out.
///
/// Adaptation that teaches the stream's names and numbers, whatever they answer, lowers the swapped
/// answers' NLL as much as the gold ones'; adaptation that teaches each document's facts lowers the
/// gold ones' more. See [`fact_gain`].
pub fn swapped_answers(documents: &[Document]) -> SwappedAnswers {
    const SEARCH: usize = 256;
    let items = questions_of(documents);
    let texts: std::collections::HashMap<&str, String> =
        documents.iter().map(|d| (d.id.as_str(), format!(" {} ", normalize_answer(&d.text)))).collect();
    let opening = |q: &str| q.split_whitespace().take(2).map(str::to_lowercase).collect::<Vec<_>>().join(" ");
    let keys: Vec<(u8, String)> =
        items.iter().map(|q| (answer_kind(shortest(&q.answers)), opening(&q.question))).collect();
    let normalized: Vec<String> = items.iter().map(|q| normalize_answer(shortest(&q.answers))).collect();
    let n = items.len();
    let mut out = SwappedAnswers::default();
    for (i, item) in items.iter().enumerate() {
        let own: Vec<String> = item.answers.iter().map(|a| normalize_answer(a)).collect();
        let text = &texts[item.doc_id.as_str()];
        let usable = |j: usize| {
            let partner = &normalized[j];
            items[j].doc_id != item.doc_id
                && !partner.is_empty()
                && !own.contains(partner)
                && !text.contains(&format!(" {partner} "))
        };
        // The nearest usable partners of the same kind, at most SEARCH of them looked at.
        let order = (1..n).map(|k| if i % 2 == 0 { (i + k) % n } else { (i + n - k) % n });
        let mut candidates = order.filter(|&j| keys[j].0 == keys[i].0).take(SEARCH).filter(|&j| usable(j));
        let first = candidates.next();
        let partner = first
            .filter(|&j| keys[j].1 == keys[i].1)
            .or_else(|| candidates.find(|&j| keys[j].1 == keys[i].1).or(first));
        if let Some(j) = partner {
            out.index.push(i);
            out.items.push(QaItem { answers: vec![shortest(&items[j].answers).to_string()], ..item.clone() });
        }
    }
    out
}

/// The fact gain: over the swapped questions, the mean NLL gain of their gold answers minus that
/// of their swapped answers (all four slices over the same questions, in the same order). `None`
/// when there are none.
pub fn fact_gain(
    gold_before: &[f64],
    gold_after: &[f64],
    swapped_before: &[f64],
    swapped_after: &[f64],
) -> Option<f64> {
    let n = gold_before.len();
    assert!(
        [gold_after.len(), swapped_before.len(), swapped_after.len()].iter().all(|&m| m == n),
        "fact_gain needs four slices over the same questions"
    );
    let mean = |v: &[f64]| v.iter().sum::<f64>() / n as f64;
    (n > 0).then(|| (mean(gold_before) - mean(gold_after)) - (mean(swapped_before) - mean(swapped_after)))
}

/// Per-question NLL of the gold (shortest) answer and its end of sequence given the prompt, in nats
/// per answer token.
pub fn answer_nlls<B: Backend>(
    model: &BaseLm<B>,
    encoder: &dyn TextEncoder,
    items: &[QaItem],
    config: &EvalConfig,
    device: &B::Device,
) -> Result<Vec<f64>> {
    let mut out = Vec::with_capacity(items.len());
    for chunk in items.chunks(config.batch_size.max(1)) {
        let pairs: Vec<(&str, &str)> = chunk.iter().map(|q| (q.question.as_str(), shortest(&q.answers))).collect();
        let qa = QaBatchConfig { max_len: config.qa.max_len.min(context(model)), ..config.qa.clone() };
        let batch = qa_train_batch(encoder, &pairs, &qa)?;
        let [b, t] = batch.shape();
        let ids: Vec<i64> = batch.ids.iter().map(|&i| i64::from(i)).collect();
        let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [b, t]), device); // [B, T]
        let targets = Tensor::<B, 2>::from_data(TensorData::new(batch.target_mask.clone(), [b, t]), device); // [B, T]
        let token_loss = token_cross_entropy(model.forward(ids.clone()), ids); // [B, T−1]
        let targets = targets.narrow(1, 1, t - 1); // [B, T−1]
        let sums = (token_loss * targets.clone()).sum_dim(1).reshape([b]); // [B]
        let counts = targets.sum_dim(1).reshape([b]).clamp_min(1.0); // [B]
        out.extend(to_f64(sums / counts));
    }
    Ok(out)
}

/// The model's context length (position embeddings).
fn context<B: Backend>(model: &BaseLm<B>) -> usize {
    model.max_positions()
}

fn shortest(answers: &[String]) -> &str {
    answers.iter().min_by_key(|a| a.chars().count()).map(String::as_str).unwrap_or("")
}

/// The values of a 1-D tensor as `f64`.
pub(crate) fn to_f64<B: Backend>(t: Tensor<B, 1>) -> Vec<f64> {
    t.into_data().convert::<f64>().to_vec::<f64>().expect("f64 data")
}

/// Generated continuations of every question's prompt, decoded (end of sequence dropped), raw.
pub fn generate_answers<B: Backend>(
    model: &BaseLm<B>,
    tokenizer: &TextTokenizer,
    items: &[QaItem],
    config: &EvalConfig,
    device: &B::Device,
) -> Result<Vec<String>> {
    let eos = tokenizer.eos_id();
    let generate_config =
        GenerateConfig { decoding: config.decoding, ..GenerateConfig::greedy(config.max_new_tokens, eos) };
    let max_prompt = config.qa.max_prompt_tokens.min(context(model).saturating_sub(config.max_new_tokens).max(1));
    let mut out = Vec::with_capacity(items.len());
    for chunk in items.chunks(config.batch_size.max(1)) {
        let prompts = chunk
            .iter()
            .map(|q| {
                let mut ids = tokenizer.encode(&config.qa.prompt(&q.question))?;
                if ids.len() > max_prompt {
                    ids.drain(..ids.len() - max_prompt);
                }
                if ids.is_empty() {
                    ids.push(eos);
                }
                Ok(ids)
            })
            .collect::<Result<Vec<_>>>()?;
        for ids in generate(model, &prompts, &generate_config, device)? {
            let ids: Vec<u32> = ids.into_iter().take_while(|&t| t != eos).collect();
            out.push(tokenizer.decode(&ids)?);
        }
    }
    Ok(out)
}

/// Perplexity of `texts` cut into windows of `config.unrelated_window` tokens (at most the context),
/// the first `config.unrelated_windows` of them (0: all): exp of the mean next-token NLL over every
/// real target.
pub fn perplexity<B: Backend, S: AsRef<str>>(
    model: &BaseLm<B>,
    encoder: &dyn TextEncoder,
    texts: &[S],
    config: &EvalConfig,
    device: &B::Device,
) -> Result<f64> {
    let windows = locality_batch(encoder, texts, config.unrelated_window.min(context(model)))?;
    let (mut total, mut count) = (0.0, 0.0);
    let kept = if config.unrelated_windows == 0 { windows.batch } else { windows.batch.min(config.unrelated_windows) };
    let rows: Vec<usize> = (0..kept).collect();
    for chunk in rows.chunks(config.batch_size.max(1)) {
        let batch = windows.select(chunk);
        let [b, t] = batch.shape();
        if t < 2 {
            continue;
        }
        let ids: Vec<i64> = batch.ids.iter().map(|&i| i64::from(i)).collect();
        let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [b, t]), device); // [B, T]
        let mask = Tensor::<B, 2>::from_data(TensorData::new(batch.attention_mask.clone(), [b, t]), device);
        let targets = mask.narrow(1, 1, t - 1); // [B, T−1]
        let token_loss = token_cross_entropy(model.forward(ids.clone()), ids); // [B, T−1]
        total += to_f64((token_loss * targets.clone()).sum())[0];
        count += to_f64(targets.sum())[0];
    }
    if count == 0.0 {
        return Err(MetaError::InvalidOption {
            option: "unrelated text".into(),
            value: format!("{} texts", texts.len()),
            expected: "at least two tokens".into(),
        });
    }
    Ok((total / count).exp())
}

/// One scored question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// The document's id.
    pub doc_id: String,
    /// The question.
    pub question: String,
    /// Gold answers.
    pub answers: Vec<String>,
    /// The cleaned prediction that was scored.
    pub prediction: String,
    /// The raw decoded generation.
    pub generation: String,
    /// Lenient prefix EM (the reference's), 0 or 1.
    pub em: f64,
    /// Strict EM (the official SQuAD script's), 0 or 1.
    pub em_strict: f64,
    /// Token F1 in [0, 1].
    pub f1: f64,
    /// Gold-answer NLL before adaptation, when measured.
    pub nll_before: Option<f64>,
    /// Gold-answer NLL of the evaluated model.
    pub nll: f64,
    /// Token F1 before adaptation, when measured.
    pub f1_before: Option<f64>,
    /// Strict EM before adaptation, when measured.
    pub em_strict_before: Option<f64>,
    /// NLL of the swapped answer (another document's, see [`swapped_answers`]) before adaptation,
    /// when the question has a partner and `--eval-before` measured it.
    pub swapped_nll_before: Option<f64>,
    /// NLL of the swapped answer after adaptation.
    pub swapped_nll: Option<f64>,
}

/// Asks every question, scores the answers and measures the gold-answer NLL.
pub fn evaluate_questions<B: Backend>(
    model: &BaseLm<B>,
    tokenizer: &TextTokenizer,
    items: &[QaItem],
    config: &EvalConfig,
    device: &B::Device,
) -> Result<Vec<Prediction>> {
    let generations = generate_answers(model, tokenizer, items, config, device)?;
    let nlls = answer_nlls(model, &tokenizer.encoder(), items, config, device)?;
    Ok(items
        .iter()
        .zip(generations)
        .zip(nlls)
        .map(|((item, generation), nll)| {
            let prediction = clean_generation(&generation);
            let s = score(&prediction, &item.answers);
            Prediction {
                doc_id: item.doc_id.clone(),
                question: item.question.clone(),
                answers: item.answers.clone(),
                prediction,
                generation,
                em: s.em_prefix,
                em_strict: s.em_strict,
                f1: s.f1,
                nll_before: None,
                nll,
                f1_before: None,
                em_strict_before: None,
                swapped_nll_before: None,
                swapped_nll: None,
            }
        })
        .collect())
}

/// `summary.json`: EM and F1 in percent (as the SQuAD script reports them), NLLs in nats per answer
/// token; `em` is the reference's lenient prefix EM, `em_strict` the official one.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Summary {
    /// The weighting strategy (`none` for `eval`).
    pub strategy: String,
    /// The adaptation learning rate (0 for `eval`).
    pub lr: f64,
    /// Documents streamed.
    pub n_docs: usize,
    /// Questions asked.
    pub n_questions: usize,
    /// Lenient prefix EM (the CaMeLS reference's), percent.
    pub em: f64,
    /// Strict EM (the official SQuAD v1.1 script's), percent.
    pub em_strict: f64,
    /// F1, percent.
    pub f1: f64,
    /// Mean gold-answer NLL before adaptation.
    pub answer_nll_before: Option<f64>,
    /// Mean gold-answer NLL after adaptation (of the evaluated model).
    pub answer_nll_after: f64,
    /// Element type of the matrix products while adapting (`f32`, `bf16`).
    pub precision: String,
    /// The control file (`--control`), if any.
    pub control_file: Option<String>,
    /// Questions about documents not streamed (`--control`).
    pub control_questions: usize,
    /// Their mean gold-answer NLL before adaptation.
    pub control_answer_nll_before: Option<f64>,
    /// Their mean gold-answer NLL after adaptation.
    pub control_answer_nll_after: Option<f64>,
    /// Streamed questions paired with another document's answer ([`swapped_answers`]; with
    /// `--eval-before`).
    #[serde(default)]
    pub swapped_questions: usize,
    /// Their mean swapped-answer NLL before adaptation.
    #[serde(default)]
    pub swapped_answer_nll_before: Option<f64>,
    /// Their mean swapped-answer NLL after adaptation.
    #[serde(default)]
    pub swapped_answer_nll_after: Option<f64>,
    /// Over the same questions, the gold answers' NLL gain minus the swapped answers' ([`fact_gain`]):
    /// what adaptation taught about each question's own document.
    #[serde(default)]
    pub fact_gain: Option<f64>,
    /// Perplexity of the unrelated text before adaptation.
    pub unrelated_ppl_before: Option<f64>,
    /// Perplexity of the unrelated text after adaptation.
    pub unrelated_ppl_after: Option<f64>,
    /// Documents skipped for a non-finite loss or gradient (their ids in `skipped_docs`), each
    /// counted once whatever the number of epochs.
    pub docs_skipped: usize,
    /// Ids of the skipped documents.
    pub skipped_docs: Vec<String>,
    /// Documents skipped for having fewer than 2 tokens (their ids in `too_short_docs`).
    pub docs_too_short: usize,
    /// Ids of the documents too short to train on.
    pub too_short_docs: Vec<String>,
    /// Optimizer steps.
    pub steps: usize,
    /// Adaptation wall time, seconds.
    pub adapt_seconds: f64,
    /// Adaptation throughput, real tokens per second.
    pub adapt_tokens_per_s: f64,
    /// Question answering throughput (generation), questions per second.
    pub questions_per_s: f64,
    /// The decoding used.
    pub decoding: String,
    /// What was read from each input file, with the malformed records skipped.
    #[serde(default)]
    pub inputs: Vec<InputReport>,
}

/// What a reader took from one input file, and the malformed records it skipped (counted, the
/// first few located), so that a silent drop shows in `summary.json` and the printout.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InputReport {
    /// The file.
    pub file: String,
    /// The format it was read as.
    pub format: String,
    /// Records seen (questions, rows or lines).
    pub records: usize,
    /// Documents read.
    pub documents: usize,
    /// Questions read.
    pub questions: usize,
    /// Malformed records skipped.
    pub skipped: usize,
    /// The first skipped records' errors (file, record, field).
    pub first_skipped: Vec<String>,
}

impl InputReport {
    /// How many of the skipped records' errors are kept.
    pub const FIRST: usize = 5;

    /// The report of a reader.
    pub fn of(report: &camels_data::ReadReport) -> Self {
        Self {
            file: report.path.display().to_string(),
            format: format!("{:?}", report.format).to_lowercase(),
            records: report.records,
            documents: report.documents,
            questions: report.questions,
            skipped: report.skipped.len(),
            first_skipped: report.skipped.iter().take(Self::FIRST).map(ToString::to_string).collect(),
        }
    }

    /// One line: `FILE: N of M records skipped (first: …)`, or `None` when nothing was skipped.
    pub fn skipped_line(&self) -> Option<String> {
        (self.skipped > 0).then(|| {
            format!(
                "{}: {} of {} records skipped as malformed (first: {})",
                self.file,
                self.skipped,
                self.records,
                self.first_skipped.first().map_or("-", String::as_str)
            )
        })
    }
}

impl Summary {
    /// Fills the QA fields from scored predictions.
    pub fn with_predictions(mut self, predictions: &[Prediction]) -> Self {
        let n = predictions.len().max(1) as f64;
        self.n_questions = predictions.len();
        self.em = 100.0 * predictions.iter().map(|p| p.em).sum::<f64>() / n;
        self.em_strict = 100.0 * predictions.iter().map(|p| p.em_strict).sum::<f64>() / n;
        self.f1 = 100.0 * predictions.iter().map(|p| p.f1).sum::<f64>() / n;
        self.answer_nll_after = predictions.iter().map(|p| p.nll).sum::<f64>() / n;
        let before: Vec<f64> = predictions.iter().filter_map(|p| p.nll_before).collect();
        self.answer_nll_before = (!before.is_empty()).then(|| before.iter().sum::<f64>() / before.len() as f64);
        self
    }
}

fn csv_field(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Writes `predictions.csv` (atomically): question, gold answers (joined by ` | `), prediction,
/// raw generation, EM (lenient), EM strict, F1, NLL before, NLL.
pub fn write_predictions_csv(path: &Path, predictions: &[Prediction]) -> Result<()> {
    let mut out = String::from(
        "doc_id,question,answers,prediction,generation,em,em_strict,f1,nll_before,nll,f1_before,em_strict_before,\
         swapped_nll_before,swapped_nll\n",
    );
    let opt = |v: Option<f64>| v.map(|v| format!("{v:.6}")).unwrap_or_default();
    for p in predictions {
        let row = [
            csv_field(&p.doc_id),
            csv_field(&p.question),
            csv_field(&p.answers.join(" | ")),
            csv_field(&p.prediction),
            csv_field(&p.generation),
            p.em.to_string(),
            p.em_strict.to_string(),
            format!("{:.6}", p.f1),
            opt(p.nll_before),
            format!("{:.6}", p.nll),
            opt(p.f1_before),
            opt(p.em_strict_before),
            opt(p.swapped_nll_before),
            opt(p.swapped_nll),
        ];
        out.push_str(&row.join(","));
        out.push('\n');
    }
    Ok(write_atomic(path, out.as_bytes())?)
}

/// Writes `summary.json` (atomically).
pub fn write_summary(path: &Path, summary: &Summary) -> Result<()> {
    let json = serde_json::to_vec_pretty(summary).map_err(|e| MetaError::Parse {
        path: path.into(),
        field: "-".into(),
        message: e.to_string(),
    })?;
    Ok(write_atomic(path, &json)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use camels_data::Question;

    fn doc(id: &str, text: &str, answers: &[&str]) -> Document {
        let question = |a: &&str| Question {
            id: None,
            question: format!("about {id}?"),
            answers: vec![a.to_string()],
            meta: Default::default(),
        };
        Document {
            id: id.into(),
            title: None,
            text: text.into(),
            questions: answers.iter().map(question).collect(),
            meta: Default::default(),
        }
    }

    #[test]
    fn swapped_answers_pair_each_question_with_another_documents_answer_of_its_kind() {
        let doc = |id: &str, text: &str, qas: &[(&str, &str)]| Document {
            id: id.into(),
            title: None,
            text: text.into(),
            questions: qas.iter().map(|(q, a)| Question::new(*q, vec![a.to_string()])).collect(),
            meta: Default::default(),
        };
        let docs = [
            doc(
                "a",
                "Alpha was born in Cunova in 1825 and died in Lulith.",
                &[("In which town was Alpha born?", "Cunova"), ("What year was Alpha born?", "1825")],
            ),
            doc(
                "b",
                "Ivo Marn founded Beta in Lulith.",
                &[("Who founded Beta?", "Ivo Marn"), ("In which town was Beta founded?", "Lulith")],
            ),
            doc("c", "Gamma was born in 1790.", &[("What year was Gamma born?", "1790")]),
            doc("d", "Delta was a cooper.", &[("What was the trade of Delta?", "cooper")]),
            doc("e", "Epsilon was the cooper too.", &[("What was the trade of Epsilon?", "the cooper")]),
            doc("f", "Zeta wrote 39 books.", &[("How many books did Zeta write?", "39")]),
            doc("g", "Theta was born in Brovna.", &[("In which town was Theta born?", "Brovna")]),
        ];
        let swapped = swapped_answers(&docs);
        let items = questions_of(&docs);
        // Alpha's town: Lulith is in Alpha's own document and Ivo Marn opens differently, so Brovna;
        // the two coopers are one answer once normalised, and the lone count has no partner.
        assert_eq!(swapped.index, [0, 1, 2, 3, 4, 8]);
        let answers: Vec<&str> = swapped.items.iter().map(|q| q.answers[0].as_str()).collect();
        assert_eq!(answers, ["Brovna", "1790", "Brovna", "Cunova", "1825", "Cunova"]);
        for (&i, q) in swapped.index.iter().zip(&swapped.items) {
            assert_eq!((&q.question, &q.doc_id), (&items[i].question, &items[i].doc_id));
        }
        assert_eq!(swapped_answers(&docs[..1]), SwappedAnswers::default(), "one document: no partner");

        assert_eq!(fact_gain(&[3.0, 2.0], &[2.0, 1.0], &[3.0, 3.0], &[2.5, 3.0]), Some(0.75));
        assert_eq!(fact_gain(&[], &[], &[], &[]), None);
    }

    #[test]
    fn control_questions_must_be_about_documents_not_streamed() {
        let stream = [doc("a", "Alpha was born in Cunova.", &["Cunova"])];
        let control = [doc("b", "Beta was a cooper.", &["cooper"]), doc("c", "Gamma wrote 39 books.", &["39"])];
        let path = Path::new("control.jsonl");
        let items = control_questions(&stream, &control, path).unwrap();
        assert_eq!(items.iter().map(|q| q.doc_id.as_str()).collect::<Vec<_>>(), ["b", "c"]);
        let leaked = [control[0].clone(), doc("a2", "Alpha was born in Cunova.", &["Cunova"])];
        let err = control_questions(&stream, &leaked, path).unwrap_err().to_string();
        assert!(err.contains("control.jsonl") && err.contains("document a2"), "{err}");
        let err = control_questions(&stream, &[doc("d", "No questions here.", &[])], path).unwrap_err().to_string();
        assert!(err.contains("no control document"), "{err}");
    }
}
