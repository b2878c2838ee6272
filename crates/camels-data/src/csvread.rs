//! CSV plumbing shared by the CSV readers: a quote-checking record scanner, header checks and
//! per-record locations.
//!
//! The scanner reads CSV as the `csv` crate does (`,` between fields, `"` around fields that hold
//! delimiters or line breaks, `""` for a quote inside them, records ending at `\n`, `\r\n` or `\r`,
//! blank lines skipped, a quote inside an unquoted field taken as text) with one difference: a quoted
//! field must end with a quote followed by a delimiter, the end of the record or the end of the file
//! (spaces and tabs in between are dropped). The `csv` crate reads on after a quote followed by
//! other text, and reads the rest of the file into a field whose quote never closes, so that one
//! unterminated quote silently swallows the records after it (they become the field's text). Here
//! both are a [`DataError::UnterminatedQuote`] located at the record, line and column where the
//! quote opened, and the scan goes on at the line after the one the quote opened on, so the records
//! after it are still read. A quote left open is still missed where the next quote after it ends a
//! field (a later unquoted field ending in `"`, as in `5"`): the records in between then read as
//! one well-formed field.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use crate::read::strip_bom;
use crate::{DataError, ReadReport};

/// One CSV record with its location, for column access with errors naming file, record and column.
pub(crate) struct Row<'a> {
    path: &'a Path,
    columns: &'a HashMap<String, usize>,
    fields: &'a [Cow<'a, str>],
    /// `record 12 (line 14)`: 1-based data record (the header is not counted) and its first line.
    pub(crate) location: String,
}

impl<'a> Row<'a> {
    /// The column's value, or `None` when the header has no such column.
    pub(crate) fn optional(&self, column: &str) -> Option<&'a str> {
        let i = *self.columns.get(column)?;
        self.fields.get(i).map(|f| f.as_ref())
    }

    /// The column's value; [`DataError::MissingColumn`] when the record is too short for it and
    /// [`DataError::EmptyField`] when it is blank.
    pub(crate) fn text(&self, column: &str) -> Result<&'a str, DataError> {
        let value = self.optional(column).ok_or_else(|| DataError::MissingColumn {
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
        pairs.into_iter().filter_map(|(name, i)| Some((name, self.fields.get(i)?.as_ref()))).collect()
    }
}

/// Reads CSV `text` (from `path`; a leading byte order mark is dropped), checks that the header has
/// every `required` column (a missing one, or a broken quote in the header, is always an error:
/// nothing could be read), then calls `each` on every record. Records with more fields than the
/// header, a quoted field that does not close (see the module docs), or an error from `each` are
/// malformed: skipped and reported, or returned at once with `strict`.
pub(crate) fn for_each_record(
    path: &Path,
    text: &str,
    required: &[&str],
    strict: bool,
    report: &mut ReadReport,
    mut each: impl FnMut(&Row<'_>) -> Result<(), DataError>,
) -> Result<(), DataError> {
    let mut scanner = Scanner::new(strip_bom(text));
    let headers: Vec<String> = match scanner.next_record() {
        None => Vec::new(),
        Some(Ok(record)) => record.fields.iter().map(|h| h.trim().to_string()).collect(),
        Some(Err(bad)) => {
            return Err(bad.into_error(path, format!("header (line {})", bad.line), format!("{}", bad.field + 1)));
        }
    };
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

    let mut number = 0;
    while let Some(record) = scanner.next_record() {
        number += 1;
        report.records += 1;
        let record = match record {
            Ok(record) => record,
            Err(bad) => {
                let location = format!("record {number} (line {})", bad.line);
                let column = headers.get(bad.field).cloned().unwrap_or_else(|| format!("{}", bad.field + 1));
                report.skip(strict, bad.into_error(path, location, column))?;
                continue;
            }
        };
        let location = format!("record {number} (line {})", record.line);
        if record.fields.len() > headers.len() {
            let trailing_blanks = record.fields.iter().skip(headers.len()).all(|f| f.trim().is_empty());
            if !trailing_blanks {
                report.skip(
                    strict,
                    DataError::ExtraFields {
                        path: path.to_path_buf(),
                        location,
                        expected: headers.len(),
                        found: record.fields.len(),
                    },
                )?;
                continue;
            }
        }
        let row = Row { path, columns: &columns, fields: &record.fields, location };
        if let Err(e) = each(&row) {
            report.skip(strict, e)?;
        }
    }
    Ok(())
}

/// One record as the scanner found it.
struct RawRecord<'a> {
    /// The fields, unquoted (borrowed from the text unless a `""` had to be unescaped).
    fields: Vec<Cow<'a, str>>,
    /// 1-based line the record starts on.
    line: usize,
}

/// A quoted field that does not close (see the module docs).
#[derive(Clone, Copy)]
struct BadQuote {
    /// 1-based line the record starts on.
    line: usize,
    /// 0-based index of the field whose quote does not close.
    field: usize,
    /// 1-based line the quote opened on.
    opened: usize,
    /// 1-based line of the quote that closed it with text after it; `None`: never closed.
    closed: Option<usize>,
}

impl BadQuote {
    fn into_error(self, path: &Path, location: String, column: String) -> DataError {
        DataError::UnterminatedQuote {
            path: path.to_path_buf(),
            location,
            column,
            opened: self.opened,
            closed: self.closed,
        }
    }
}

/// Splits CSV text into records, tracking lines (`\n`, `\r\n` and a lone `\r` each end one).
struct Scanner<'a> {
    text: &'a str,
    /// Byte offset of the next unread byte.
    pos: usize,
    /// 1-based line of `pos`.
    line: usize,
}

/// Line breaks in `bytes`: `\n`, and `\r` not followed by `\n`.
fn line_breaks(bytes: &[u8]) -> usize {
    let mut n = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\n' || (b == b'\r' && bytes.get(i + 1) != Some(&b'\n')) {
            n += 1;
        }
    }
    n
}

impl<'a> Scanner<'a> {
    fn new(text: &'a str) -> Self {
        Self { text, pos: 0, line: 1 }
    }

    /// Consumes one line break at the current position, if there is one.
    fn line_break(&mut self) -> bool {
        let bytes = self.text.as_bytes();
        match bytes.get(self.pos) {
            Some(b'\r') => {
                self.pos += if bytes.get(self.pos + 1) == Some(&b'\n') { 2 } else { 1 };
                self.line += 1;
                true
            }
            Some(b'\n') => {
                self.pos += 1;
                self.line += 1;
                true
            }
            _ => false,
        }
    }

    /// The next record, a quoted field of it that does not close, or `None` at the end of the text.
    fn next_record(&mut self) -> Option<Result<RawRecord<'a>, BadQuote>> {
        while self.line_break() {}
        if self.pos >= self.text.len() {
            return None;
        }
        let line = self.line;
        let mut fields = Vec::new();
        loop {
            let field = if self.text.as_bytes()[self.pos..].first() == Some(&b'"') {
                match self.quoted() {
                    Ok(field) => field,
                    Err((opened, closed)) => return Some(Err(BadQuote { line, field: fields.len(), opened, closed })),
                }
            } else {
                self.unquoted()
            };
            fields.push(field);
            if self.text.as_bytes().get(self.pos) == Some(&b',') {
                self.pos += 1;
            } else {
                // A line break or the end of the text.
                self.line_break();
                return Some(Ok(RawRecord { fields, line }));
            }
        }
    }

    /// An unquoted field: up to the next delimiter, line break or the end of the text.
    fn unquoted(&mut self) -> Cow<'a, str> {
        let rest = &self.text.as_bytes()[self.pos..];
        let len = rest.iter().position(|&b| matches!(b, b',' | b'\r' | b'\n')).unwrap_or(rest.len());
        let field = &self.text[self.pos..self.pos + len];
        self.pos += len;
        Cow::Borrowed(field)
    }

    /// A quoted field starting at the current position (on its opening quote). On a field that
    /// does not close, returns the lines it opened and closed on and moves to the line after the
    /// opening quote's.
    fn quoted(&mut self) -> Result<Cow<'a, str>, (usize, Option<usize>)> {
        let bytes = self.text.as_bytes();
        let open = self.pos;
        let opened = self.line;
        let mut unescaped: Option<String> = None;
        let mut segment = open + 1;
        let mut closed = None;
        while let Some(q) = bytes[segment..].iter().position(|&b| b == b'"').map(|i| segment + i) {
            self.line += line_breaks(&bytes[segment..q]);
            if bytes.get(q + 1) == Some(&b'"') {
                // `""`: one quote of text.
                unescaped.get_or_insert_with(String::new).push_str(&self.text[segment..=q]);
                segment = q + 2;
                continue;
            }
            let mut after = q + 1;
            while matches!(bytes.get(after), Some(b' ' | b'\t')) {
                after += 1;
            }
            if matches!(bytes.get(after), None | Some(b',' | b'\r' | b'\n')) {
                self.pos = after;
                return Ok(match unescaped {
                    Some(mut s) => {
                        s.push_str(&self.text[segment..q]);
                        Cow::Owned(s)
                    }
                    None => Cow::Borrowed(&self.text[open + 1..q]),
                });
            }
            closed = Some(self.line);
            break;
        }
        // Resume on the line after the opening quote's.
        let line_end = bytes[open..].iter().position(|&b| b == b'\r' || b == b'\n').map_or(bytes.len(), |i| open + i);
        self.pos = line_end;
        self.line = opened;
        self.line_break();
        Err((opened, closed))
    }
}
