//! SQuAD v1.1 and v2.0 JSON reader: one [`Document`] per paragraph, titled by its article.
//!
//! Layout: `{"data": [{"title", "paragraphs": [{"context", "qas": [{"id", "question", "answers":
//! [{"text", "answer_start"}], "is_impossible"?}]}]}], "version"}`. v2.0 questions with
//! `"is_impossible": true` are counted in [`crate::ReadReport::impossible`] and left out. Answers keep
//! their source order with duplicates removed (dev questions have several, train questions one).

use std::collections::BTreeMap;
use std::path::Path;

use crate::read::{JsonFields, json_error, load_text, strip_bom};
use crate::types::{IdRegistry, push_answer};
use crate::{DataError, Dataset, Document, Format, Question, ReadReport};

/// Reads a SQuAD JSON file. See [`parse`].
pub fn read(path: &Path, strict: bool) -> Result<Dataset, DataError> {
    let text = load_text(path)?;
    parse(path, &text, strict)
}

/// Parses SQuAD JSON held in `text` (a leading byte order mark is dropped); `path` only names the
/// source in errors.
///
/// A missing or empty `data` list is an error. A malformed question is skipped alone; a paragraph
/// without a usable `context` or `qas`, or whose id (`{title}#{paragraph}`) an earlier paragraph
/// already has (two articles with one title), is skipped with its questions; an article without
/// `paragraphs` is skipped whole. With `strict` the first of these is the error instead.
pub fn parse(path: &Path, text: &str, strict: bool) -> Result<Dataset, DataError> {
    let root: serde_json::Value = serde_json::from_str(strip_bom(text)).map_err(|e| json_error(path, 1, &e))?;
    let root = JsonFields::new(path, "top level".to_string(), "top level", &root)?;
    let articles = root.array("data")?;
    if articles.is_empty() {
        return Err(root.empty("data"));
    }
    let mut report = ReadReport::new(path, Format::Squad);
    let mut documents = Vec::new();
    let mut ids = IdRegistry::default();

    for (i, article) in articles.iter().enumerate() {
        let location = format!("data[{i}]");
        let parsed = JsonFields::new(path, location.clone(), "data", article).and_then(|article| {
            let title = article.optional_string("title")?;
            let paragraphs = article.array("paragraphs")?;
            Ok((title, paragraphs))
        });
        let (title, paragraphs) = match parsed {
            Ok(ok) => ok,
            Err(e) => {
                report.skip(strict, e)?;
                continue;
            }
        };
        for (j, paragraph) in paragraphs.iter().enumerate() {
            let location = format!("data[{i}].paragraphs[{j}]");
            let id = format!("{}#{j}", title.as_deref().unwrap_or(&format!("data[{i}]")));
            let parsed = JsonFields::new(path, location.clone(), "paragraphs", paragraph).and_then(|p| {
                let context = p.text("context")?;
                let qas = p.array("qas")?;
                ids.claim(path, &id, &location)?;
                Ok((context, qas))
            });
            let (context, qas) = match parsed {
                Ok(ok) => ok,
                Err(e) => {
                    report.skip(strict, e)?;
                    continue;
                }
            };
            let mut document = Document {
                id,
                title: title.clone(),
                text: context.to_string(),
                questions: Vec::with_capacity(qas.len()),
                meta: BTreeMap::new(),
            };
            for (k, qa) in qas.iter().enumerate() {
                report.records += 1;
                let location = format!("data[{i}].paragraphs[{j}].qas[{k}]");
                match parse_question(path, location, qa) {
                    Ok(Some(question)) => document.questions.push(question),
                    Ok(None) => report.impossible += 1,
                    Err(e) => report.skip(strict, e)?,
                }
            }
            documents.push(document);
        }
    }
    report.count(&documents);
    Ok(Dataset { documents, report })
}

/// One `qas` entry; `Ok(None)` for a v2.0 unanswerable question.
fn parse_question(path: &Path, location: String, qa: &serde_json::Value) -> Result<Option<Question>, DataError> {
    let qa = JsonFields::new(path, location, "qas", qa)?;
    let question = qa.text("question")?;
    let id = qa.optional_string("id")?;
    if qa.optional_bool("is_impossible")? == Some(true) {
        return Ok(None);
    }
    let mut answers = Vec::new();
    for (a, answer) in qa.array("answers")?.iter().enumerate() {
        let answer = JsonFields::new(path, format!("{}.answers[{a}]", qa.location), "answers", answer)?;
        push_answer(&mut answers, answer.text("text")?);
    }
    if answers.is_empty() {
        return Err(qa.empty("answers"));
    }
    Ok(Some(Question { id, question: question.trim().to_string(), answers, meta: BTreeMap::new() }))
}
