//! [`Format`], [`read_any`] (format guessing) and the UTF-8 file loading every reader shares.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::{DataError, Dataset, archivalqa, jsonl, squad, streamingqa, unrelated};

/// A file format the crate reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// SQuAD v1.1 / v2.0 JSON: articles → paragraphs → qas; one document per paragraph.
    Squad,
    /// StreamingQA CSV as the paper's code used it: `text`, `question`, `answers` (split on `\`).
    StreamingQa,
    /// ArchivalQA CSV, one document per answer paragraph (`ans_paragraph`).
    ArchivalQa,
    /// ArchivalQA CSV, one document per full article (`ans_text`).
    ArchivalQaFull,
    /// The crate's own JSONL: one document per line (see the crate docs).
    Jsonl,
    /// Plain text: the whole file is one document without questions (unrelated text).
    Text,
    /// CSV with a `raw_text` column: one document per row, no questions (unrelated text).
    RawTextCsv,
}

impl Format {
    /// Every format, in the order of [`Format::NAMES`].
    pub const ALL: [Format; 7] = [
        Format::Squad,
        Format::StreamingQa,
        Format::ArchivalQa,
        Format::ArchivalQaFull,
        Format::Jsonl,
        Format::Text,
        Format::RawTextCsv,
    ];

    /// The names [`Format::from_str`] accepts and [`fmt::Display`] prints.
    pub const NAMES: [&'static str; 7] =
        ["squad", "streamingqa", "archivalqa", "archivalqa-full", "jsonl", "text", "raw-text-csv"];

    /// The format's name, as accepted on the command line.
    pub fn name(self) -> &'static str {
        let i = Format::ALL.iter().position(|&f| f == self).unwrap_or(0);
        Format::NAMES[i]
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = DataError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        Format::NAMES.iter().position(|&n| n == lower).map(|i| Format::ALL[i]).ok_or_else(|| DataError::UnknownFormat {
            path: PathBuf::from(s),
            reason: "unknown format name".to_string(),
        })
    }
}

/// Reads `path` as `format`, or as the format [`guess_format`] finds when `format` is `None`.
///
/// With `strict` the first malformed record is the error; otherwise malformed records are skipped
/// and listed in [`crate::ReadReport::skipped`].
pub fn read_any(path: &Path, format: Option<Format>, strict: bool) -> Result<Dataset, DataError> {
    let format = match format {
        Some(f) => f,
        None => guess_format(path)?,
    };
    match format {
        Format::Squad => squad::read(path, strict),
        Format::StreamingQa => streamingqa::read(path, strict),
        Format::ArchivalQa => archivalqa::read(path, archivalqa::TextColumn::Paragraph, strict),
        Format::ArchivalQaFull => archivalqa::read(path, archivalqa::TextColumn::FullText, strict),
        Format::Jsonl => jsonl::read(path, strict),
        Format::Text => unrelated::read_text_dataset(path),
        Format::RawTextCsv => unrelated::read_csv_dataset(path, strict),
    }
}

/// Guesses a file's format: `.jsonl` is JSONL; `.json` with a top-level `"data"` is SQuAD (and a
/// `.json` whose first line is an object with `"text"` is JSONL); `.csv` by its header columns
/// (`raw_text` → raw-text CSV, `doc_id` + `ans_paragraph` → ArchivalQA, `text` + `question` +
/// `answers` → StreamingQA); `.txt` is plain text.
pub fn guess_format(path: &Path) -> Result<Format, DataError> {
    let extension = path.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()).unwrap_or_default();
    let unknown = |reason: &str| DataError::UnknownFormat { path: path.to_path_buf(), reason: reason.to_string() };
    match extension.as_str() {
        "jsonl" => Ok(Format::Jsonl),
        "txt" | "text" | "raw" | "tokens" => Ok(Format::Text),
        "json" => {
            let text = load_text(path)?;
            /// Only whether the top-level object has `data`, without building it.
            #[derive(serde::Deserialize)]
            struct TopLevel {
                data: Option<serde::de::IgnoredAny>,
            }
            match serde_json::from_str::<TopLevel>(&text) {
                // An empty `data` list too: the SQuAD reader then says that it is empty.
                Ok(TopLevel { data: Some(_) }) => return Ok(Format::Squad),
                // One object without `data`: maybe a one-line JSONL file, checked below.
                Ok(TopLevel { data: None }) => {}
                // Not one JSON object: JSONL, or a broken SQuAD file that the SQuAD reader should
                // locate the error in. SQuAD files start with `{"data": [` (v1.1) or
                // `{"version": "v2.0", "data": [`.
                Err(_) => {
                    if let Some(inner) = text.trim_start().strip_prefix('{')
                        && (inner.trim_start().starts_with("\"data\"") || text.contains("\"paragraphs\""))
                    {
                        return Ok(Format::Squad);
                    }
                }
            }
            if let Ok(serde_json::Value::Object(map)) =
                serde_json::from_str::<serde_json::Value>(text.lines().next().unwrap_or(""))
                && map.contains_key("text")
            {
                return Ok(Format::Jsonl);
            }
            Err(unknown("a .json file without a top-level \"data\" list"))
        }
        "csv" => {
            let text = load_text(path)?;
            let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(text.as_bytes());
            let headers = reader.headers().map_err(|source| DataError::Csv {
                path: path.to_path_buf(),
                location: "header (line 1)".to_string(),
                source,
            })?;
            let has = |c: &str| headers.iter().any(|h| h.trim() == c);
            if has("raw_text") {
                Ok(Format::RawTextCsv)
            } else if has("doc_id") && has("ans_paragraph") {
                Ok(Format::ArchivalQa)
            } else if has("doc_id") && has("ans_text") {
                Ok(Format::ArchivalQaFull)
            } else if has("text") && has("question") && has("answers") {
                Ok(Format::StreamingQa)
            } else {
                Err(unknown("csv header matches no known format"))
            }
        }
        _ => Err(unknown("unknown file extension")),
    }
}

/// Reads a whole file as UTF-8; invalid UTF-8 is an error naming the line and byte offset. A
/// leading byte order mark (U+FEFF, as some editors and Excel write) is dropped.
pub(crate) fn load_text(path: &Path) -> Result<String, DataError> {
    let bytes = std::fs::read(path).map_err(|source| DataError::Io { path: path.to_path_buf(), source })?;
    let mut text = String::from_utf8(bytes).map_err(|e| {
        let byte_offset = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        let line = 1 + bytes[..byte_offset].iter().filter(|&&b| b == b'\n').count();
        DataError::InvalidUtf8 { path: path.to_path_buf(), line, byte_offset }
    })?;
    if text.starts_with(BOM) {
        text.drain(..BOM.len_utf8());
    }
    Ok(text)
}

/// The byte order mark some tools write at the start of UTF-8 files.
const BOM: char = '\u{feff}';

/// `text` without a leading byte order mark; the readers' `parse` functions take text from callers
/// that may not have dropped it.
pub(crate) fn strip_bom(text: &str) -> &str {
    text.strip_prefix(BOM).unwrap_or(text)
}

/// Turns a serde_json error into [`DataError::Json`], shifting its line by `first_line - 1`.
pub(crate) fn json_error(path: &Path, first_line: usize, e: &serde_json::Error) -> DataError {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let message = full.strip_suffix(&suffix).unwrap_or(&full).to_string();
    DataError::Json {
        path: path.to_path_buf(),
        line: first_line + e.line().saturating_sub(1),
        column: e.column(),
        message,
    }
}

/// Field access on JSON objects with errors that name file, record and field.
pub(crate) struct JsonFields<'a> {
    pub(crate) path: &'a Path,
    pub(crate) location: String,
    pub(crate) object: &'a serde_json::Map<String, serde_json::Value>,
}

impl<'a> JsonFields<'a> {
    /// `value` as an object, or [`DataError::WrongType`] naming `what` (the field it came from).
    pub(crate) fn new(
        path: &'a Path,
        location: String,
        what: &str,
        value: &'a serde_json::Value,
    ) -> Result<Self, DataError> {
        match value.as_object() {
            Some(object) => Ok(Self { path, location, object }),
            None => Err(DataError::WrongType {
                path: path.to_path_buf(),
                location,
                field: what.to_string(),
                expected: "an object",
            }),
        }
    }

    fn wrong_type(&self, field: &str, expected: &'static str) -> DataError {
        DataError::WrongType {
            path: self.path.to_path_buf(),
            location: self.location.clone(),
            field: field.to_string(),
            expected,
        }
    }

    fn missing(&self, field: &str) -> DataError {
        DataError::MissingField {
            path: self.path.to_path_buf(),
            location: self.location.clone(),
            field: field.to_string(),
        }
    }

    /// The field's value, or [`DataError::MissingField`].
    pub(crate) fn required(&self, field: &str) -> Result<&'a serde_json::Value, DataError> {
        match self.object.get(field) {
            Some(serde_json::Value::Null) | None => Err(self.missing(field)),
            Some(v) => Ok(v),
        }
    }

    /// A required, non-blank string field.
    pub(crate) fn text(&self, field: &str) -> Result<&'a str, DataError> {
        let s = self.required(field)?.as_str().ok_or_else(|| self.wrong_type(field, "a string"))?;
        if s.trim().is_empty() {
            return Err(DataError::EmptyField {
                path: self.path.to_path_buf(),
                location: self.location.clone(),
                field: field.to_string(),
            });
        }
        Ok(s)
    }

    /// An optional string field (numbers are accepted and printed, for ids).
    pub(crate) fn optional_string(&self, field: &str) -> Result<Option<String>, DataError> {
        match self.object.get(field) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
            Some(serde_json::Value::Number(n)) => Ok(Some(n.to_string())),
            Some(_) => Err(self.wrong_type(field, "a string")),
        }
    }

    /// An optional boolean field.
    pub(crate) fn optional_bool(&self, field: &str) -> Result<Option<bool>, DataError> {
        match self.object.get(field) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(self.wrong_type(field, "true or false")),
        }
    }

    /// A required array field.
    pub(crate) fn array(&self, field: &str) -> Result<&'a [serde_json::Value], DataError> {
        self.required(field)?.as_array().map(Vec::as_slice).ok_or_else(|| self.wrong_type(field, "a list"))
    }

    /// An optional array field (absent means empty).
    pub(crate) fn optional_array(&self, field: &str) -> Result<&'a [serde_json::Value], DataError> {
        match self.object.get(field) {
            None | Some(serde_json::Value::Null) => Ok(&[]),
            Some(v) => v.as_array().map(Vec::as_slice).ok_or_else(|| self.wrong_type(field, "a list")),
        }
    }

    /// An optional object of string values (absent means empty).
    pub(crate) fn optional_string_map(
        &self,
        field: &str,
    ) -> Result<std::collections::BTreeMap<String, String>, DataError> {
        let mut out = std::collections::BTreeMap::new();
        match self.object.get(field) {
            None | Some(serde_json::Value::Null) => {}
            Some(serde_json::Value::Object(map)) => {
                for (k, v) in map {
                    let v = match v {
                        serde_json::Value::String(s) => s.clone(),
                        serde_json::Value::Number(n) => n.to_string(),
                        serde_json::Value::Bool(b) => b.to_string(),
                        _ => return Err(self.wrong_type(field, "an object of strings")),
                    };
                    out.insert(k.clone(), v);
                }
            }
            Some(_) => return Err(self.wrong_type(field, "an object of strings")),
        }
        Ok(out)
    }

    /// An error for `field` at this record, for checks the caller makes itself.
    pub(crate) fn empty(&self, field: &str) -> DataError {
        DataError::EmptyField {
            path: self.path.to_path_buf(),
            location: self.location.clone(),
            field: field.to_string(),
        }
    }
}
