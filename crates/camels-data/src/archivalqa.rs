//! ArchivalQA CSV reader: documents are answer paragraphs (`ans_paragraph`) or whole articles
//! (`ans_text`), grouped by `doc_id`.
//!
//! Required columns: `question`, `answer`, `doc_id` and the chosen text column. Optional: `para_num`
//! (paragraph number; documents of one `doc_id` are ordered by it, as the paper's code sorts by it
//! before shuffling groups) and `id` / `qid` (the question id). Rows that share `doc_id` and text
//! become one [`Document`]; its `title` is the `doc_id`, the group key for shuffles. Its id is
//! `{doc_id}#{para_num}` for a paragraph with a `para_num`; otherwise `{doc_id}#{n}`, `n` counting
//! the documents of that `doc_id` before it (a first article's id is the bare `doc_id`). A row
//! whose new document would get an id an earlier document has (two different paragraphs with one
//! `doc_id` and `para_num`) is malformed ([`crate::DataError::DuplicateId`]).

use std::path::Path;

use crate::csvread::for_each_record;
use crate::read::load_text;
use crate::types::{DocumentGrouper, IdRegistry, push_answer};
use crate::{DataError, Dataset, Document, Format, Question, ReadReport};

/// Which column holds the document text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextColumn {
    /// `ans_paragraph`: the paragraph holding the answer (the paper's default).
    Paragraph,
    /// `ans_text`: the full article.
    FullText,
}

impl TextColumn {
    /// The CSV column name.
    pub fn column(self) -> &'static str {
        match self {
            TextColumn::Paragraph => "ans_paragraph",
            TextColumn::FullText => "ans_text",
        }
    }
}

/// Reads an ArchivalQA CSV file. See [`parse`].
pub fn read(path: &Path, text_column: TextColumn, strict: bool) -> Result<Dataset, DataError> {
    let text = load_text(path)?;
    parse(path, &text, text_column, strict)
}

/// Parses ArchivalQA CSV held in `text` (a leading byte order mark is dropped); `path` only names
/// the source in errors.
pub fn parse(path: &Path, text: &str, text_column: TextColumn, strict: bool) -> Result<Dataset, DataError> {
    let format = match text_column {
        TextColumn::Paragraph => Format::ArchivalQa,
        TextColumn::FullText => Format::ArchivalQaFull,
    };
    let column = text_column.column();
    let mut report = ReadReport::new(path, format);
    let mut grouper = DocumentGrouper::default();
    // Paragraph number per document, for ordering within a doc_id.
    let mut para_nums: Vec<Option<f64>> = Vec::new();
    // Documents seen per doc_id, to keep ids unique.
    let mut per_doc_id: std::collections::HashMap<String, usize> = Default::default();
    let mut ids = IdRegistry::default();

    for_each_record(path, text, &["question", "answer", "doc_id", column], strict, &mut report, |row| {
        let document_text = row.text(column)?;
        let doc_id = row.text("doc_id")?.trim();
        let question = row.text("question")?.trim();
        let mut answers = Vec::new();
        push_answer(&mut answers, row.text("answer")?);
        let para_num = row.optional("para_num").map(str::trim).filter(|v| !v.is_empty());
        let mut q = Question::new(question, answers);
        q.id = ["id", "qid"]
            .iter()
            .find_map(|c| row.optional(c).map(str::trim).filter(|v| !v.is_empty()))
            .map(str::to_string);
        let key = format!("{doc_id}\u{0}{document_text}");
        let document = grouper.try_entry(&key, || {
            let seen = per_doc_id.entry(doc_id.to_string()).or_insert(0);
            let id = match (text_column, para_num) {
                (TextColumn::Paragraph, Some(p)) => format!("{doc_id}#{p}"),
                (_, _) if *seen > 0 => format!("{doc_id}#{seen}"),
                (TextColumn::Paragraph, None) => format!("{doc_id}#0"),
                (TextColumn::FullText, _) => doc_id.to_string(),
            };
            // Two different paragraphs with one `doc_id` and `para_num`, say.
            ids.claim(path, &id, &row.location)?;
            *seen += 1;
            para_nums.push(para_num.and_then(|p| p.parse().ok()));
            let mut d = Document::new(id, document_text);
            d.title = Some(doc_id.to_string());
            if let Some(p) = para_num {
                d.meta.insert("para_num".to_string(), p.to_string());
            }
            Ok(d)
        })?;
        document.questions.push(q);
        Ok(())
    })?;

    // Group by doc_id in first-appearance order; within a group, stable by paragraph number.
    let documents = grouper.into_documents();
    let mut group_order: std::collections::HashMap<String, usize> = Default::default();
    for d in &documents {
        let next = group_order.len();
        group_order.entry(d.group_key().to_string()).or_insert(next);
    }
    let mut order: Vec<usize> = (0..documents.len()).collect();
    order.sort_by(|&a, &b| {
        let ga = group_order[documents[a].group_key()];
        let gb = group_order[documents[b].group_key()];
        let pa = para_nums[a].unwrap_or(f64::INFINITY);
        let pb = para_nums[b].unwrap_or(f64::INFINITY);
        ga.cmp(&gb).then(pa.total_cmp(&pb))
    });
    let mut slots: Vec<Option<Document>> = documents.into_iter().map(Some).collect();
    let documents: Vec<Document> = order.into_iter().filter_map(|i| slots[i].take()).collect();
    report.count(&documents);
    Ok(Dataset { documents, report })
}
