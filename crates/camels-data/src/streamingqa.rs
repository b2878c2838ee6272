//! StreamingQA CSV reader, as the paper's code used the files: one row per question.
//!
//! Required columns: `text` (the news article), `question`, `answers` (several answers separated by
//! a backslash `\`; [`crate::Question::shortest_answer`] gives the training target, as the paper's
//! `min(answers, key=len)` does). Optional: `id` or `qa_id` (the question id), `doc_id` or
//! `document_id` (the document id), `publication_date` (kept in the document's `meta`),
//! `question_date` and any other named column (kept in the question's `meta`). Rows that share the
//! same `text` become one [`Document`] with several questions, in first-appearance order. A row
//! that starts a document whose id an earlier document (another `text`) has is malformed
//! ([`crate::DataError::DuplicateId`]), as is a row with a quoted field that never closes (see
//! [`crate::DataError::UnterminatedQuote`]; the rows after it are still read).

use std::path::Path;

use crate::csvread::for_each_record;
use crate::read::load_text;
use crate::types::{DocumentGrouper, IdRegistry, push_answer};
use crate::{DataError, Dataset, Document, Format, Question, ReadReport};

/// Columns used for something other than the question's `meta`.
const CONSUMED: [&str; 7] = ["text", "question", "answers", "id", "qa_id", "doc_id", "document_id"];

/// Reads a StreamingQA CSV file. See [`parse`].
pub fn read(path: &Path, strict: bool) -> Result<Dataset, DataError> {
    let text = load_text(path)?;
    parse(path, &text, strict)
}

/// Parses StreamingQA CSV held in `text` (a leading byte order mark is dropped); `path` only names
/// the source in errors.
pub fn parse(path: &Path, text: &str, strict: bool) -> Result<Dataset, DataError> {
    let mut report = ReadReport::new(path, Format::StreamingQa);
    let mut grouper = DocumentGrouper::default();
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("streamingqa").to_string();
    let mut next_document = 0usize;
    let mut ids = IdRegistry::default();

    for_each_record(path, text, &["text", "question", "answers"], strict, &mut report, |row| {
        let document_text = row.text("text")?;
        let question = row.text("question")?.trim();
        let mut answers = Vec::new();
        for answer in row.text("answers")?.split('\\') {
            push_answer(&mut answers, answer);
        }
        if answers.is_empty() {
            return Err(DataError::EmptyField {
                path: path.to_path_buf(),
                location: row.location.clone(),
                field: "answers".to_string(),
            });
        }
        let id = ["id", "qa_id"]
            .iter()
            .find_map(|c| row.optional(c).map(str::trim).filter(|v| !v.is_empty()))
            .map(str::to_string);
        let mut q = Question::new(question, answers);
        q.id = id;
        for (column, value) in row.cells() {
            let keep = !CONSUMED.contains(&column)
                && column != "publication_date"
                && !column.is_empty()
                && !column.starts_with("Unnamed:");
            if keep && !value.is_empty() {
                q.meta.insert(column.to_string(), value.to_string());
            }
        }
        let document = grouper.try_entry(document_text, || {
            // A new document: its id (from `doc_id`, else numbered) must be new too.
            let id = ["doc_id", "document_id"]
                .iter()
                .find_map(|c| row.optional(c).map(str::trim).filter(|v| !v.is_empty()))
                .map_or_else(|| format!("{stem}:{next_document}"), str::to_string);
            ids.claim(path, &id, &row.location)?;
            next_document += 1;
            let mut d = Document::new(id, document_text);
            if let Some(date) = row.optional("publication_date").filter(|v| !v.is_empty()) {
                d.meta.insert("publication_date".to_string(), date.to_string());
            }
            Ok(d)
        })?;
        document.questions.push(q);
        Ok(())
    })?;

    let documents = grouper.into_documents();
    report.count(&documents);
    Ok(Dataset { documents, report })
}
