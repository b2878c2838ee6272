//! Unrelated text for the locality term: plain text files (the whole file is one text) or CSV files
//! with a `raw_text` column (one text per row, as the paper's OpenWebText CSV).
//!
//! Texts come back as question-less [`Document`]s; [`crate::Dataset::texts`] lists their texts.

use std::path::Path;

use crate::csvread::for_each_record;
use crate::read::load_text;
use crate::{DataError, Dataset, Document, Format, ReadReport};

/// Reads unrelated text: `.csv` files by their `raw_text` column, anything else as plain text.
pub fn read(path: &Path, strict: bool) -> Result<Dataset, DataError> {
    let is_csv = path.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    if is_csv { read_csv_dataset(path, strict) } else { read_text_dataset(path) }
}

/// The whole file as one question-less document (id: the file name), without a leading byte order
/// mark. An empty file gives none.
pub fn read_text_dataset(path: &Path) -> Result<Dataset, DataError> {
    let text = load_text(path)?;
    let mut report = ReadReport::new(path, Format::Text);
    report.records = 1;
    let mut documents = Vec::new();
    if text.trim().is_empty() {
        report.skip(
            false,
            DataError::EmptyField {
                path: path.to_path_buf(),
                location: "whole file".to_string(),
                field: "text".to_string(),
            },
        )?;
    } else {
        let id = path.file_name().and_then(|n| n.to_str()).unwrap_or("text").to_string();
        documents.push(Document::new(id, text));
    }
    report.count(&documents);
    Ok(Dataset { documents, report })
}

/// One question-less document per row of the `raw_text` column (ids: `record {n}`).
pub fn read_csv_dataset(path: &Path, strict: bool) -> Result<Dataset, DataError> {
    let text = load_text(path)?;
    parse_csv(path, &text, strict)
}

/// Parses a `raw_text` CSV held in `text` (a leading byte order mark is dropped); `path` only names
/// the source in errors.
pub fn parse_csv(path: &Path, text: &str, strict: bool) -> Result<Dataset, DataError> {
    let mut report = ReadReport::new(path, Format::RawTextCsv);
    let mut documents = Vec::new();
    for_each_record(path, text, &["raw_text"], strict, &mut report, |row| {
        let raw = row.text("raw_text")?;
        let id = row.location.split(" (").next().unwrap_or("record").to_string();
        documents.push(Document::new(id, raw));
        Ok(())
    })?;
    report.count(&documents);
    Ok(Dataset { documents, report })
}
