//! CSV plumbing shared by the CSV readers: header checks, per-record locations, unbalanced quotes.

use std::collections::HashMap;
use std::path::Path;

use crate::{DataError, ReadReport};

/// One CSV record with its location, for column access with errors naming file, record and column.
pub(crate) struct Row<'a> {
    path: &'a Path,
    columns: &'a HashMap<String, usize>,
    fields: &'a csv::StringRecord,
    /// `record 12 (line 14)`: 1-based data record (the header is not counted) and its first line.
    pub(crate) location: String,
}

impl<'a> Row<'a> {
    /// The column's value, or `None` when the header has no such column.
    pub(crate) fn optional(&self, column: &str) -> Option<&'a str> {
        let i = *self.columns.get(column)?;
        self.fields.get(i)
    }

    /// The column's value; [`DataError::MissingColumn`] when the record is too short for it and
    /// [`DataError::EmptyField`] when it is blank.
    pub(crate) fn text(&self, column: &str) -> Result<&'a str, DataError> {
        let value =
            self.columns.get(column).and_then(|&i| self.fields.get(i)).ok_or_else(|| DataError::MissingColumn {
                path: self.path.to_path_buf(),
                location: self.location.clone(),
                column: column.to_string(),
            })?;
        if value.trim().is_empty() {
            return Err(DataError::EmptyField {
                path: self.path.to_path_buf(),
                location: self.location.clone(),
                field: column.to_string(),
            });
        }
        Ok(value)
    }

    /// The column names of this file with their values in this record, in header order.
    pub(crate) fn cells(&self) -> Vec<(&'a str, &'a str)> {
        let mut pairs: Vec<(&'a str, usize)> = self.columns.iter().map(|(name, &i)| (name.as_str(), i)).collect();
        pairs.sort_by_key(|&(_, i)| i);
        pairs.into_iter().filter_map(|(name, i)| Some((name, self.fields.get(i)?))).collect()
    }
}

/// Reads CSV `text` (from `path`), checks that the header has every `required` column (a missing
/// one is always an error: nothing could be read), then calls `each` on every record. Records with
/// more fields than the header, an unterminated quote, or an error from `each` are malformed:
/// skipped and reported, or returned at once with `strict`.
pub(crate) fn for_each_record(
    path: &Path,
    text: &str,
    required: &[&str],
    strict: bool,
    report: &mut ReadReport,
    mut each: impl FnMut(&Row<'_>) -> Result<(), DataError>,
) -> Result<(), DataError> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(text.as_bytes());
    let headers = reader.headers().map_err(|source| DataError::Csv {
        path: path.to_path_buf(),
        location: "header (line 1)".to_string(),
        source,
    })?;
    let headers: Vec<String> = headers.iter().map(|h| h.trim().to_string()).collect();
    let mut columns = HashMap::new();
    for (i, h) in headers.iter().enumerate() {
        columns.entry(h.clone()).or_insert(i);
    }
    for column in required {
        if !columns.contains_key(*column) {
            return Err(DataError::MissingColumn {
                path: path.to_path_buf(),
                location: format!("header (line 1; found {})", headers.join(", ")),
                column: column.to_string(),
            });
        }
    }

    // An odd number of quote characters means a quoted field is never closed: the CSV parser then
    // reads the rest of the file into it, so the last record is the one that opened it.
    let odd_quotes = text.bytes().filter(|&b| b == b'"').count() % 2 == 1;
    let mut records = reader.records().enumerate().peekable();
    while let Some((i, record)) = records.next() {
        report.records += 1;
        let number = i + 1;
        let record = match record {
            Ok(r) => r,
            Err(source) => {
                let line = source.position().map_or(0, |p| p.line());
                report.skip(
                    strict,
                    DataError::Csv {
                        path: path.to_path_buf(),
                        location: format!("record {number} (line {line})"),
                        source,
                    },
                )?;
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        let location = format!("record {number} (line {line})");
        let is_last = records.peek().is_none();
        if odd_quotes && is_last {
            let start = record.position().map_or(0, |p| p.byte() as usize);
            let raw = text.get(start..).unwrap_or("");
            // A stray quote inside an unquoted field (`5" screen`) is literal text, not an opening.
            let opens_field =
                raw.match_indices('"').any(|(i, _)| i == 0 || matches!(raw.as_bytes()[i - 1], b',' | b'\n'));
            if opens_field && raw.bytes().filter(|&b| b == b'"').count() % 2 == 1 {
                let column = headers.get(record.len().saturating_sub(1)).cloned().unwrap_or_default();
                report.skip(strict, DataError::UnterminatedQuote { path: path.to_path_buf(), location, column })?;
                continue;
            }
        }
        if record.len() > headers.len() {
            let trailing_blanks = record.iter().skip(headers.len()).all(|f| f.trim().is_empty());
            if !trailing_blanks {
                report.skip(
                    strict,
                    DataError::ExtraFields {
                        path: path.to_path_buf(),
                        location,
                        expected: headers.len(),
                        found: record.len(),
                    },
                )?;
                continue;
            }
        }
        let row = Row { path, columns: &columns, fields: &record, location };
        if let Err(e) = each(&row) {
            report.skip(strict, e)?;
        }
    }
    Ok(())
}
