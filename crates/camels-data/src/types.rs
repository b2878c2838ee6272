//! The common output model of every reader: [`Document`]s with their [`Question`]s, and the [`ReadReport`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{DataError, Format};

/// One document of a stream, with the questions it answers.
///
/// Serialised with serde this is exactly one line of the crate's JSONL format (see the crate docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    /// Identifier, unique within its file (`"{title}#{paragraph}"` for SQuAD); the readers refuse
    /// repeated ids ([`DataError::DuplicateId`]).
    pub id: String,
    /// Group key: documents that share it are kept together when a stream is shuffled (SQuAD
    /// article title, ArchivalQA `doc_id`, the synthetic world's subject).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The text the model adapts on.
    pub text: String,
    /// Questions whose answers this document holds (possibly none).
    #[serde(default)]
    pub questions: Vec<Question>,
    /// Other columns kept from the source (e.g. StreamingQA `publication_date`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, String>,
}

/// A question about a document, with its gold answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Question {
    /// Identifier from the source, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The question text.
    pub question: String,
    /// Gold answers, without duplicates, in source order.
    pub answers: Vec<String>,
    /// Other columns kept from the source (e.g. StreamingQA `question_date`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, String>,
}

impl Question {
    /// A question with no id and no metadata.
    pub fn new(question: impl Into<String>, answers: Vec<String>) -> Self {
        Self { id: None, question: question.into(), answers, meta: BTreeMap::new() }
    }

    /// The training target: the shortest answer (the first of equally short ones), as the paper's
    /// code picks it (`min(answers, key=len)`); `None` when there are no answers.
    pub fn shortest_answer(&self) -> Option<&str> {
        let mut best: Option<&str> = None;
        for answer in &self.answers {
            let shorter = best.is_none_or(|b| answer.chars().count() < b.chars().count());
            if shorter {
                best = Some(answer.as_str());
            }
        }
        best
    }
}

impl Document {
    /// A document with no title, questions or metadata.
    pub fn new(id: impl Into<String>, text: impl Into<String>) -> Self {
        Self { id: id.into(), title: None, text: text.into(), questions: Vec::new(), meta: BTreeMap::new() }
    }

    /// The group key used for group shuffles: the title, or the id when there is none.
    pub fn group_key(&self) -> &str {
        self.title.as_deref().unwrap_or(&self.id)
    }

    /// See [`answer_spans`].
    pub fn answer_spans(&self) -> Vec<(usize, usize)> {
        answer_spans(self)
    }
}

impl AsRef<str> for Document {
    fn as_ref(&self) -> &str {
        &self.text
    }
}

/// Character spans `[start, end)` (counted in `char`s, like [`crate::Encoded::offsets`]) of every
/// occurrence of every answer of every question in the document's text, sorted, with overlapping or
/// touching spans merged. Answers that do not occur add nothing.
///
/// ```
/// use camels_data::{answer_spans, Document, Question};
/// let mut doc = Document::new("d", "Café Belkarra was founded in 1873 by Ilvo Marn.");
/// doc.questions.push(Question::new("When?", vec!["1873".into()]));
/// doc.questions.push(Question::new("Who?", vec!["Ilvo Marn".into(), "Marn".into()]));
/// assert_eq!(answer_spans(&doc), vec![(29, 33), (37, 46)]);
/// ```
pub fn answer_spans(document: &Document) -> Vec<(usize, usize)> {
    let text = &document.text;
    let mut spans = Vec::new();
    for question in &document.questions {
        for answer in &question.answers {
            if answer.is_empty() {
                continue;
            }
            for (byte_start, _) in text.match_indices(answer.as_str()) {
                spans.push((byte_start, byte_start + answer.len()));
            }
        }
    }
    spans.sort_unstable();
    let mut merged: Vec<(usize, usize)> = Vec::with_capacity(spans.len());
    for (start, end) in spans {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    // Byte offsets to char offsets in one pass over the text.
    let mut boundaries: Vec<usize> = merged.iter().flat_map(|&(s, e)| [s, e]).collect();
    let chars = byte_to_char_offsets(text, &mut boundaries);
    chars.chunks(2).map(|pair| (pair[0], pair[1])).collect()
}

/// Maps sorted byte offsets (each on a char boundary) to char offsets.
fn byte_to_char_offsets(text: &str, sorted_bytes: &mut [usize]) -> Vec<usize> {
    let mut out = Vec::with_capacity(sorted_bytes.len());
    let mut chars = 0;
    let mut iter = text.char_indices().peekable();
    for &byte in sorted_bytes.iter() {
        while let Some(&(b, _)) = iter.peek() {
            if b >= byte {
                break;
            }
            iter.next();
            chars += 1;
        }
        out.push(chars);
    }
    out
}

/// Documents read from one file, with the report of what was read and skipped.
#[derive(Debug)]
pub struct Dataset {
    /// The documents, in file order (rows that share a document are merged into its first place).
    pub documents: Vec<Document>,
    /// What was read and what was skipped.
    pub report: ReadReport,
}

impl Dataset {
    /// The documents' texts (for unrelated text, which has no questions).
    pub fn texts(&self) -> Vec<&str> {
        self.documents.iter().map(|d| d.text.as_str()).collect()
    }
}

/// What a reader read and what it skipped: malformed records are never dropped silently.
#[derive(Debug)]
pub struct ReadReport {
    /// The file.
    pub path: PathBuf,
    /// The format it was read as.
    pub format: Format,
    /// Records seen: questions (SQuAD), rows (CSV) or non-blank lines (JSONL).
    pub records: usize,
    /// Documents produced.
    pub documents: usize,
    /// Questions produced.
    pub questions: usize,
    /// SQuAD v2.0 `is_impossible` questions: counted, not kept.
    pub impossible: usize,
    /// Malformed records that were skipped, each error naming file, record and field. Empty when
    /// reading strictly (the first malformed record is then returned as the error).
    pub skipped: Vec<DataError>,
}

impl ReadReport {
    /// An empty report for `path`.
    pub fn new(path: impl Into<PathBuf>, format: Format) -> Self {
        Self { path: path.into(), format, records: 0, documents: 0, questions: 0, impossible: 0, skipped: Vec::new() }
    }

    /// In strict mode return `error`; otherwise note it as skipped and go on.
    pub(crate) fn skip(&mut self, strict: bool, error: DataError) -> Result<(), DataError> {
        if strict {
            return Err(error);
        }
        tracing::warn!("skipping malformed record: {error}");
        self.skipped.push(error);
        Ok(())
    }

    /// Fill the document and question counts from the final documents.
    pub(crate) fn count(&mut self, documents: &[Document]) {
        self.documents = documents.len();
        self.questions = documents.iter().map(|d| d.questions.len()).sum();
    }
}

impl fmt::Display for ReadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {} records, {} documents, {} questions",
            self.path.display(),
            self.format,
            self.records,
            self.documents,
            self.questions
        )?;
        if self.impossible > 0 {
            write!(f, ", {} unanswerable questions left out", self.impossible)?;
        }
        write!(f, ", {} malformed records skipped", self.skipped.len())?;
        for error in &self.skipped {
            write!(f, "\n  {error}")?;
        }
        Ok(())
    }
}

/// Push `answer` unless it is empty (after trimming) or already present; keeps order.
pub(crate) fn push_answer(answers: &mut Vec<String>, answer: &str) {
    let answer = answer.trim();
    if !answer.is_empty() && !answers.iter().any(|a| a == answer) {
        answers.push(answer.to_string());
    }
}

/// The document ids one file has given out so far, with the record that used each first.
#[derive(Default)]
pub(crate) struct IdRegistry {
    first: std::collections::HashMap<String, String>,
}

impl IdRegistry {
    /// Notes that the record at `location` uses `id`; [`DataError::DuplicateId`] (naming both
    /// records) when an earlier record did.
    pub(crate) fn claim(&mut self, path: &std::path::Path, id: &str, location: &str) -> Result<(), DataError> {
        if let Some(first) = self.first.get(id) {
            return Err(DataError::DuplicateId {
                path: path.to_path_buf(),
                location: location.to_string(),
                id: id.to_string(),
                first: first.clone(),
            });
        }
        self.first.insert(id.to_string(), location.to_string());
        Ok(())
    }
}

/// Groups rows into documents keyed by `key`, in first-appearance order, merging questions.
#[derive(Default)]
pub(crate) struct DocumentGrouper {
    documents: Vec<Document>,
    index: std::collections::HashMap<String, usize>,
}

impl DocumentGrouper {
    /// The document for `key`, created by `make` on first sight; an error from `make` creates none.
    pub(crate) fn try_entry(
        &mut self,
        key: &str,
        make: impl FnOnce() -> Result<Document, DataError>,
    ) -> Result<&mut Document, DataError> {
        let i = match self.index.get(key) {
            Some(&i) => i,
            None => {
                self.documents.push(make()?);
                self.index.insert(key.to_string(), self.documents.len() - 1);
                self.documents.len() - 1
            }
        };
        Ok(&mut self.documents[i])
    }

    pub(crate) fn into_documents(self) -> Vec<Document> {
        self.documents
    }
}
