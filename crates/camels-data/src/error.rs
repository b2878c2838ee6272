//! The crate's one error type, [`DataError`]: every message names the file, the record and the field.

use std::path::PathBuf;

/// Everything that can go wrong while reading, batching or generating data.
///
/// Messages are lower case, carry no trailing period and start with the file they concern, then the
/// record (`data[3].paragraphs[7].qas[2]`, `record 12 (line 14)`, `line 5`), then the field.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file could not be opened, read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },

    /// A file is not valid UTF-8.
    #[error("{}: line {line}: invalid utf-8 at byte offset {byte_offset}", path.display())]
    InvalidUtf8 {
        /// The file.
        path: PathBuf,
        /// 1-based line of the first invalid byte.
        line: usize,
        /// 0-based byte offset of the first invalid byte in the file.
        byte_offset: usize,
    },

    /// A JSON document (or one JSONL line) does not parse.
    #[error("{}: line {line} column {column}: invalid json: {message}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// 1-based line in the file.
        line: usize,
        /// 1-based column in that line.
        column: usize,
        /// What the JSON parser said, without its own position.
        message: String,
    },

    /// A JSON record lacks a field the format requires.
    #[error("{}: {location}: missing field \"{field}\"", path.display())]
    MissingField {
        /// The file.
        path: PathBuf,
        /// The record, e.g. `data[3].paragraphs[7].qas[2]` or `line 5`.
        location: String,
        /// The field.
        field: String,
    },

    /// A JSON field has the wrong type.
    #[error("{}: {location}: field \"{field}\" must be {expected}", path.display())]
    WrongType {
        /// The file.
        path: PathBuf,
        /// The record.
        location: String,
        /// The field.
        field: String,
        /// What it must be, e.g. `a string`.
        expected: &'static str,
    },

    /// A field that must hold text is empty (or only whitespace), or a list that must hold items
    /// (SQuAD's `data`, a question's `answers`) is empty.
    #[error("{}: {location}: field \"{field}\" is empty", path.display())]
    EmptyField {
        /// The file.
        path: PathBuf,
        /// The record.
        location: String,
        /// The field.
        field: String,
    },

    /// A CSV header or record lacks a column the format requires.
    #[error("{}: {location}: missing column \"{column}\"", path.display())]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// `header (line 1)` or `record 12 (line 14)`.
        location: String,
        /// The column.
        column: String,
    },

    /// A CSV record has more fields than the header.
    #[error("{}: {location}: {found} fields, but the header has {expected}", path.display())]
    ExtraFields {
        /// The file.
        path: PathBuf,
        /// The record.
        location: String,
        /// Number of header columns.
        expected: usize,
        /// Number of fields in the record.
        found: usize,
    },

    /// A quoted CSV field is never closed, or is closed by a quote followed by text: the quote was
    /// left open (so the `csv` crate would read the records after it into this field) or a quote
    /// inside the field was not doubled.
    #[error(
        "{}: {location}: column \"{column}\": unterminated quoted field: {}",
        path.display(),
        quote_detail(*opened, *closed)
    )]
    UnterminatedQuote {
        /// The file.
        path: PathBuf,
        /// The record where the open quote starts.
        location: String,
        /// The column that the open quote starts.
        column: String,
        /// 1-based line the quote opened on.
        opened: usize,
        /// 1-based line of the quote that closed it with text after it; `None` when no quote
        /// closes it before the end of the file.
        closed: Option<usize>,
    },

    /// Two records give their documents the same id, so results keyed by id could not be told apart.
    #[error("{}: {location}: duplicate document id {id:?}, first used at {first}", path.display())]
    DuplicateId {
        /// The file.
        path: PathBuf,
        /// The later record, e.g. `line 7` or `record 5 (line 6)`.
        location: String,
        /// The id.
        id: String,
        /// The record that used the id first.
        first: String,
    },

    /// The CSV parser failed.
    #[error("{}: {location}: {source}", path.display())]
    Csv {
        /// The file.
        path: PathBuf,
        /// The record.
        location: String,
        /// What the CSV parser said.
        #[source]
        source: csv::Error,
    },

    /// A format name could not be parsed, or a file's format could not be guessed.
    #[error("{}: {reason}; name the format: one of {}", path.display(), crate::Format::NAMES.join(", "))]
    UnknownFormat {
        /// The file (or the unparsed format name).
        path: PathBuf,
        /// Why guessing failed.
        reason: String,
    },

    /// The tokenizer failed on a text.
    #[error("tokenizer failed on text starting {prefix:?}: {source}")]
    Tokenizer {
        /// The first characters of the text.
        prefix: String,
        /// What the tokenizer said.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// An option has a value that cannot work.
    #[error("invalid {option} = {value}: {expected}")]
    InvalidOption {
        /// The option, e.g. `max_doc_tokens`.
        option: &'static str,
        /// Its value, as text.
        value: String,
        /// What it must be.
        expected: String,
    },
}

impl DataError {
    /// The record a per-record error concerns (`data[3].paragraphs[7].qas[2]`, `record 12 (line 14)`,
    /// `line 5`), if it concerns one record.
    pub fn location(&self) -> Option<&str> {
        match self {
            DataError::MissingField { location, .. }
            | DataError::WrongType { location, .. }
            | DataError::EmptyField { location, .. }
            | DataError::MissingColumn { location, .. }
            | DataError::ExtraFields { location, .. }
            | DataError::UnterminatedQuote { location, .. }
            | DataError::DuplicateId { location, .. }
            | DataError::Csv { location, .. } => Some(location),
            _ => None,
        }
    }
}

/// The second half of [`DataError::UnterminatedQuote`]'s message.
fn quote_detail(opened: usize, closed: Option<usize>) -> String {
    match closed {
        None => format!("the quote opened on line {opened} is never closed"),
        Some(line) => format!(
            "the quote opened on line {opened} is closed on line {line} by a quote followed by text \
             (a quote left open, or one inside the field not doubled)"
        ),
    }
}
