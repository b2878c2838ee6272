//! The crate's own JSONL format: one [`Document`] per line (the format is described in the crate docs).

use std::io::Write;
use std::path::Path;

use crate::read::{JsonFields, json_error, load_text, strip_bom};
use crate::types::{IdRegistry, push_answer};
use crate::{DataError, Dataset, Document, Format, Question, ReadReport};

/// Reads a JSONL file. See [`parse`].
pub fn read(path: &Path, strict: bool) -> Result<Dataset, DataError> {
    let text = load_text(path)?;
    parse(path, &text, strict)
}

/// Parses JSONL held in `text` (a leading byte order mark is dropped); `path` only names the source
/// in errors.
///
/// Blank lines are ignored. A line that does not parse, is not an object, lacks `text`, or has an
/// id an earlier line has ([`DataError::DuplicateId`], naming both lines) is skipped whole; a
/// malformed question is skipped alone. A missing `id` becomes `"line {n}"`.
pub fn parse(path: &Path, text: &str, strict: bool) -> Result<Dataset, DataError> {
    let mut report = ReadReport::new(path, Format::Jsonl);
    let mut documents = Vec::new();
    let mut ids = IdRegistry::default();
    for (i, line) in strip_bom(text).lines().enumerate() {
        let line_number = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        report.records += 1;
        let parsed = parse_line(path, line_number, line, strict, &mut report).and_then(|document| {
            ids.claim(path, &document.id, &format!("line {line_number}"))?;
            Ok(document)
        });
        match parsed {
            Ok(document) => documents.push(document),
            Err(e) => report.skip(strict, e)?,
        }
    }
    report.count(&documents);
    Ok(Dataset { documents, report })
}

fn parse_line(
    path: &Path,
    line_number: usize,
    line: &str,
    strict: bool,
    report: &mut ReadReport,
) -> Result<Document, DataError> {
    let value: serde_json::Value = serde_json::from_str(line).map_err(|e| json_error(path, line_number, &e))?;
    let location = format!("line {line_number}");
    let fields = JsonFields::new(path, location.clone(), "line", &value)?;
    let text = fields.text("text")?;
    let id = fields.optional_string("id")?.unwrap_or_else(|| location.clone());
    let title = fields.optional_string("title")?;
    let meta = fields.optional_string_map("meta")?;
    let mut questions = Vec::new();
    for (k, question) in fields.optional_array("questions")?.iter().enumerate() {
        match parse_question(path, format!("{location}: questions[{k}]"), question) {
            Ok(q) => questions.push(q),
            Err(e) => report.skip(strict, e)?,
        }
    }
    Ok(Document { id, title, text: text.to_string(), questions, meta })
}

fn parse_question(path: &Path, location: String, value: &serde_json::Value) -> Result<Question, DataError> {
    let fields = JsonFields::new(path, location, "questions", value)?;
    let question = fields.text("question")?;
    let mut answers = Vec::new();
    for (a, answer) in fields.array("answers")?.iter().enumerate() {
        match answer.as_str() {
            Some(s) => push_answer(&mut answers, s),
            None => {
                return Err(DataError::WrongType {
                    path: path.to_path_buf(),
                    location: fields.location.clone(),
                    field: format!("answers[{a}]"),
                    expected: "a string",
                });
            }
        }
    }
    if answers.is_empty() {
        return Err(fields.empty("answers"));
    }
    Ok(Question {
        id: fields.optional_string("id")?,
        question: question.trim().to_string(),
        answers,
        meta: fields.optional_string_map("meta")?,
    })
}

/// Writes `documents` to `path` as JSONL, one document per line.
pub fn write(path: &Path, documents: &[Document]) -> Result<(), DataError> {
    let io = |source| DataError::Io { path: path.to_path_buf(), source };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    // Written beside the target and renamed over it: a killed run leaves the old file or the new one.
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let file = std::fs::File::create(&tmp).map_err(io)?;
    let mut out = std::io::BufWriter::new(file);
    for document in documents {
        serde_json::to_writer(&mut out, document).map_err(|e| io(e.into()))?;
        out.write_all(b"\n").map_err(io)?;
    }
    out.flush().map_err(io)?;
    drop(out);
    std::fs::rename(&tmp, path).map_err(io)
}

/// One document as one JSONL line (no trailing newline).
pub fn to_line(document: &Document) -> String {
    serde_json::to_string(document).unwrap_or_default()
}
