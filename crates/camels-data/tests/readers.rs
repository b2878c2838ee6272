//! Readers on small files the tests write themselves, broken ones included: every error must name
//! the file, the record and the field.

mod common;

use camels_data::{DataError, Format, archivalqa, guess_format, jsonl, read_any, squad, stats, streamingqa, unrelated};
use common::{scratch, write};

/// Asserts that `err`'s message contains every one of `parts`.
fn assert_names(err: &DataError, parts: &[&str]) {
    let message = err.to_string();
    for part in parts {
        assert!(message.contains(part), "message {message:?} does not name {part:?}");
    }
}

const SQUAD_V1: &str = r#"{"version": "1.1", "data": [
 {"title": "Belkarra", "paragraphs": [
   {"context": "Belkarra was settled in 1204 by Ilvo Marn.", "qas": [
     {"id": "q1", "question": "When was Belkarra settled? ", "answers": [{"answer_start": 24, "text": "1204"}, {"answer_start": 24, "text": "1204"}, {"answer_start": 20, "text": "in 1204"}]},
     {"id": "q2", "question": "Who settled Belkarra?", "answers": [{"answer_start": 32, "text": "Ilvo Marn"}]}]},
   {"context": "Belkarra has 4,212 people.", "qas": [
     {"id": "q3", "question": "How many people live in Belkarra?", "answers": [{"answer_start": 13, "text": "4,212"}]}]}]},
 {"title": "Ostrenn", "paragraphs": [
   {"context": "The Ostrenn Institute was founded in 1851.", "qas": []}]}
]}"#;

#[test]
fn squad_v1_reads_one_document_per_paragraph_with_deduplicated_answers() {
    let dir = scratch("squad-v1");
    let path = write(&dir, "squad.json", SQUAD_V1);
    let data = squad::read(&path, true).unwrap();
    assert_eq!(data.report.records, 3);
    assert_eq!((data.report.documents, data.report.questions), (3, 3));
    assert!(data.report.skipped.is_empty());
    let d = &data.documents[0];
    assert_eq!(d.id, "Belkarra#0");
    assert_eq!(d.title.as_deref(), Some("Belkarra"));
    assert_eq!(d.questions[0].question, "When was Belkarra settled?");
    assert_eq!(d.questions[0].id.as_deref(), Some("q1"));
    assert_eq!(d.questions[0].answers, vec!["1204", "in 1204"]);
    assert_eq!(d.questions[0].shortest_answer(), Some("1204"));
    assert_eq!(data.documents[2].title.as_deref(), Some("Ostrenn"));
    assert!(data.documents[2].questions.is_empty());
}

#[test]
fn squad_v2_unanswerable_questions_are_counted_and_left_out() {
    let dir = scratch("squad-v2");
    let text = r#"{"version": "v2.0", "data": [{"title": "T", "paragraphs": [{"context": "Marn was born in 1873.", "qas": [
        {"id": "a", "question": "When was Marn born?", "answers": [{"text": "1873", "answer_start": 17}], "is_impossible": false},
        {"id": "b", "question": "When did Marn die?", "answers": [], "plausible_answers": [{"text": "1873", "answer_start": 17}], "is_impossible": true}]}]}]}"#;
    let path = write(&dir, "v2.json", text);
    let data = squad::read(&path, true).unwrap();
    assert_eq!(data.report.impossible, 1);
    assert_eq!(data.report.questions, 1);
    assert_eq!(data.documents[0].questions[0].id.as_deref(), Some("a"));
    assert!(data.report.to_string().contains("1 unanswerable questions left out"));
}

#[test]
fn squad_missing_question_is_skipped_and_reported_or_fails_when_strict() {
    let dir = scratch("squad-missing");
    let text = SQUAD_V1.replace(r#""question": "Who settled Belkarra?", "#, "");
    let path = write(&dir, "squad.json", text);
    let err = squad::read(&path, true).unwrap_err();
    assert!(matches!(err, DataError::MissingField { .. }));
    assert_names(&err, &["squad.json: data[0].paragraphs[0].qas[1]: missing field \"question\""]);

    let data = squad::read(&path, false).unwrap();
    assert_eq!(data.report.questions, 2);
    assert_eq!(data.report.skipped.len(), 1);
    assert_eq!(data.report.skipped[0].location(), Some("data[0].paragraphs[0].qas[1]"));
    assert!(data.report.to_string().contains("1 malformed records skipped"));
}

#[test]
fn squad_paragraph_without_context_or_with_empty_context_is_skipped() {
    let dir = scratch("squad-context");
    let missing = SQUAD_V1.replace(r#""context": "Belkarra has 4,212 people.", "#, "");
    let path = write(&dir, "missing.json", missing);
    let err = squad::read(&path, true).unwrap_err();
    assert_names(&err, &["missing.json", "data[0].paragraphs[1]", "missing field \"context\""]);
    let data = squad::read(&path, false).unwrap();
    assert_eq!(data.report.documents, 2);

    let empty = SQUAD_V1.replace("Belkarra has 4,212 people.", "  ");
    let path = write(&dir, "empty.json", empty);
    let err = squad::read(&path, true).unwrap_err();
    assert!(matches!(err, DataError::EmptyField { .. }));
    assert_names(&err, &["empty.json", "data[0].paragraphs[1]", "field \"context\" is empty"]);
}

#[test]
fn squad_wrong_types_and_missing_answer_text_name_the_field() {
    let dir = scratch("squad-types");
    let path = write(&dir, "types.json", SQUAD_V1.replace(r#""qas": []"#, r#""qas": 3"#));
    let err = squad::read(&path, true).unwrap_err();
    assert_names(&err, &["types.json: data[1].paragraphs[0]: field \"qas\" must be a list"]);

    let path = write(&dir, "answer.json", SQUAD_V1.replace(r#""text": "Ilvo Marn""#, r#""txt": "Ilvo Marn""#));
    let err = squad::read(&path, true).unwrap_err();
    assert_names(&err, &["answer.json: data[0].paragraphs[0].qas[1].answers[0]: missing field \"text\""]);

    let path = write(&dir, "nodata.json", r#"{"version": "1.1"}"#);
    let err = squad::read(&path, false).unwrap_err();
    assert_names(&err, &["nodata.json: top level: missing field \"data\""]);
}

#[test]
fn invalid_json_names_file_line_and_column() {
    let dir = scratch("squad-json");
    let path = write(&dir, "broken.json", "{\"data\": [\n  {\"title\": \"x\",,}\n]}");
    let err = squad::read(&path, false).unwrap_err();
    assert!(matches!(err, DataError::Json { line: 2, .. }), "{err:?}");
    assert_names(&err, &["broken.json: line 2 column", "invalid json"]);
}

#[test]
fn invalid_utf8_names_file_line_and_byte_offset() {
    let dir = scratch("utf8");
    let mut bytes = b"text,question,answers\nok,q,a\nbad \xff here,q,a\n".to_vec();
    let path = write(&dir, "bad.csv", &bytes);
    let err = streamingqa::read(&path, false).unwrap_err();
    assert!(matches!(err, DataError::InvalidUtf8 { line: 3, byte_offset: 33, .. }), "{err:?}");
    assert_names(&err, &["bad.csv: line 3: invalid utf-8 at byte offset 33"]);

    bytes.clear();
    bytes.extend_from_slice(b"{\"data\": []}\xc3");
    let path = write(&dir, "bad.json", &bytes);
    assert_names(&squad::read(&path, false).unwrap_err(), &["bad.json: line 1", "byte offset 12"]);
    let path = write(&dir, "bad.jsonl", b"{\"text\": \"caf\xe9\"}\n");
    assert_names(&jsonl::read(&path, false).unwrap_err(), &["bad.jsonl: line 1", "byte offset 13"]);
}

const STREAMINGQA: &str = "\
qa_id,question,answers,text,publication_date,question_date
1,Who won the race?,Ilvo Marn\\Marn,\"Ilvo Marn won the race in Belkarra.\nIt rained.\",2019-03-01,2019-03-05
2,Where was the race?,Belkarra,\"Ilvo Marn won the race in Belkarra.\nIt rained.\",2019-03-01,2019-03-06
3,What rose?,prices\\ the prices ,Prices rose in May.,2019-05-02,
";

#[test]
fn streamingqa_groups_rows_by_text_and_splits_answers_on_backslash() {
    let dir = scratch("sqa");
    let path = write(&dir, "streaming.csv", STREAMINGQA);
    let data = streamingqa::read(&path, true).unwrap();
    assert_eq!((data.report.records, data.report.documents, data.report.questions), (3, 2, 3));
    let d = &data.documents[0];
    assert_eq!(d.text, "Ilvo Marn won the race in Belkarra.\nIt rained.");
    assert_eq!(d.id, "streaming:0");
    assert_eq!(d.meta["publication_date"], "2019-03-01");
    assert_eq!(d.questions.len(), 2);
    assert_eq!(d.questions[0].answers, vec!["Ilvo Marn", "Marn"]);
    assert_eq!(d.questions[0].shortest_answer(), Some("Marn"));
    assert_eq!(d.questions[0].id.as_deref(), Some("1"));
    assert_eq!(d.questions[1].meta["question_date"], "2019-03-06");
    assert_eq!(data.documents[1].questions[0].answers, vec!["prices", "the prices"]);
    assert!(!data.documents[1].questions[0].meta.contains_key("question_date"));
}

#[test]
fn csv_missing_header_column_is_an_error_even_when_not_strict() {
    let dir = scratch("sqa-header");
    let path = write(&dir, "noanswers.csv", "text,question\nA text.,A question?\n");
    let err = streamingqa::read(&path, false).unwrap_err();
    assert!(matches!(err, DataError::MissingColumn { .. }));
    assert_names(&err, &["noanswers.csv: header (line 1", "missing column \"answers\""]);
}

#[test]
fn csv_short_record_names_record_line_and_column() {
    let dir = scratch("sqa-short");
    // The quoted newline in record 1 makes record 2 start on line 4.
    let text = "text,question,answers\n\"Two\nlines.\",Q1?,a\nShort row.,Q2?\nFine.,Q3?,b\n";
    let path = write(&dir, "file.csv", text);
    let err = streamingqa::read(&path, true).unwrap_err();
    assert_names(&err, &["file.csv: record 2 (line 4): missing column \"answers\""]);
    let data = streamingqa::read(&path, false).unwrap();
    assert_eq!((data.report.records, data.report.questions), (3, 2));
    assert_eq!(data.report.skipped.len(), 1);
    assert_eq!(data.report.skipped[0].location(), Some("record 2 (line 4)"));
}

#[test]
fn csv_empty_fields_and_extra_fields_are_malformed() {
    let dir = scratch("sqa-empty");
    let text = "text,question,answers\n,Q1?,a\nT.,Q2?,\\\nT.,Q3?,c,extra\nT.,Q4?,d,\n";
    let path = write(&dir, "e.csv", text);
    let data = streamingqa::read(&path, false).unwrap();
    let messages: Vec<String> = data.report.skipped.iter().map(ToString::to_string).collect();
    assert_eq!(messages.len(), 3, "{messages:?}");
    assert!(messages[0].contains("e.csv: record 1 (line 2): field \"text\" is empty"));
    assert!(messages[1].contains("e.csv: record 2 (line 3): field \"answers\" is empty"));
    assert!(messages[2].contains("e.csv: record 3 (line 4): 4 fields, but the header has 3"));
    // A trailing empty field is tolerated.
    assert_eq!(data.report.questions, 1);
}

#[test]
fn csv_unbalanced_quote_names_record_line_and_column() {
    let dir = scratch("sqa-quote");
    let text = "text,question,answers\nFine.,Q1?,a\n\"Never closed,Q2?,b\nLost.,Q3?,c\n";
    let path = write(&dir, "quotes.csv", text);
    let err = streamingqa::read(&path, true).unwrap_err();
    assert!(matches!(err, DataError::UnterminatedQuote { opened: 3, closed: None, .. }), "{err:?}");
    assert_names(
        &err,
        &[
            "quotes.csv: record 2 (line 3): column \"text\"",
            "unterminated quoted field",
            "opened on line 3 is never closed",
        ],
    );
    // Not strict: the broken record is skipped and reading goes on at the next line.
    let data = streamingqa::read(&path, false).unwrap();
    assert_eq!(data.report.questions, 2);
    assert_eq!(data.documents[1].text, "Lost.");
    assert_eq!(data.report.skipped.len(), 1);
    assert_eq!(data.report.skipped[0].location(), Some("record 2 (line 3)"));

    // In the last column the field count is right, but the quote still swallows the rest.
    let text = "text,question,answers\nFine.,Q1?,a\nT.,Q2?,\"b\nT.,Q3?,c\n";
    let path = write(&dir, "last.csv", text);
    let err = streamingqa::read(&path, true).unwrap_err();
    assert_names(&err, &["last.csv: record 2 (line 3): column \"answers\"", "unterminated"]);

    // A stray quote inside an unquoted field is text, even in the last record.
    let path = write(&dir, "inch.csv", "text,question,answers\nA 5\" screen.,Size?,five\n");
    let data = streamingqa::read(&path, true).unwrap();
    assert_eq!(data.documents[0].text, "A 5\" screen.");
}

#[test]
fn csv_unterminated_quote_mid_file_does_not_swallow_the_records_after_it() {
    let dir = scratch("sqa-swallow");
    // Record 2's quote never closes. The `csv` crate reads on to the quote that opens record 4's
    // field and then on to its end, so records 2-4 become one record with three fields (text
    // "Opened,Q2?,b\nSwallowed,Q3?,c\nQuoted text\"", question "Q4?", answer "d"), unreported.
    let text =
        "text,question,answers\nFine.,Q1?,a\n\"Opened,Q2?,b\nSwallowed,Q3?,c\n\"Quoted text\",Q4?,d\nAfter.,Q5?,e\n";
    let path = write(&dir, "swallow.csv", text);
    let err = streamingqa::read(&path, true).unwrap_err();
    assert!(matches!(err, DataError::UnterminatedQuote { opened: 3, closed: Some(5), .. }), "{err:?}");
    assert_names(
        &err,
        &[
            "swallow.csv: record 2 (line 3): column \"text\"",
            "unterminated quoted field",
            "opened on line 3 is closed on line 5 by a quote followed by text",
        ],
    );
    let data = streamingqa::read(&path, false).unwrap();
    assert_eq!(data.report.skipped.len(), 1, "{}", data.report);
    assert_eq!(data.report.skipped[0].location(), Some("record 2 (line 3)"));
    let texts: Vec<&str> = data.documents.iter().map(|d| d.text.as_str()).collect();
    assert_eq!(texts, vec!["Fine.", "Swallowed", "Quoted text", "After."]);
    let questions: Vec<&str> = data.documents.iter().flat_map(|d| &d.questions).map(|q| q.question.as_str()).collect();
    assert_eq!(questions, vec!["Q1?", "Q3?", "Q4?", "Q5?"]);
    assert_eq!(data.report.records, 5);

    // At the very end of the file, without a final line break.
    let path = write(&dir, "end.csv", "text,question,answers\nFine.,Q1?,a\nLast.,Q2?,\"b");
    let err = streamingqa::read(&path, true).unwrap_err();
    assert_names(&err, &["end.csv: record 2 (line 3): column \"answers\"", "never closed"]);
    let data = streamingqa::read(&path, false).unwrap();
    assert_eq!((data.report.questions, data.report.skipped.len()), (1, 1));

    // A quote inside a quoted field that is not doubled closes the field early: reported too.
    let path = write(&dir, "inner.csv", "text,question,answers\n\"He said \"hi\" there.\",Q1?,a\nFine.,Q2?,b\n");
    let err = streamingqa::read(&path, true).unwrap_err();
    assert_names(
        &err,
        &["inner.csv: record 1 (line 2): column \"text\"", "closed on line 2 by a quote followed by text"],
    );
    let data = streamingqa::read(&path, false).unwrap();
    assert_eq!(data.texts(), vec!["Fine."]);

    // ArchivalQA and raw-text CSV share the reader.
    let text = ARCHIVAL.replace("Where?,Belkarra,nyt-1,0,It was", "Where?,Belkarra,nyt-1,0,\"It was");
    let path = write(&dir, "archival.csv", text);
    let err = archivalqa::read(&path, archivalqa::TextColumn::Paragraph, true).unwrap_err();
    assert_names(&err, &["archival.csv: record 3 (line 4): column \"ans_paragraph\"", "unterminated quoted field"]);
    let data = archivalqa::read(&path, archivalqa::TextColumn::Paragraph, false).unwrap();
    assert_eq!((data.report.questions, data.report.skipped.len()), (3, 1));
    let path = write(&dir, "web.csv", "raw_text\n\"Open\nOne.\n\"Two\", more\"\nThree.\n");
    let data = unrelated::read(&path, false).unwrap();
    assert_names(&data.report.skipped[0], &["web.csv: record 1 (line 2): column \"raw_text\"", "closed on line 4"]);
    assert_eq!(data.texts(), vec!["One.", "Three."]);
}

#[test]
fn csv_well_formed_quoting_reads_as_before() {
    let dir = scratch("sqa-quoting");
    // Quoted delimiters, doubled quotes, CRLF and CR line breaks inside and between records,
    // spaces after a closing quote, blank lines, an empty quoted field, a quote in an unquoted field.
    let text = "text,question,answers,note\r\n\"Two\r\nlines, \"\"quoted\"\".\" ,Q1?,a,\"\"\r\n\r\nA 5\" screen.,Q2?,b,x\rLast,\"Q3, really?\",c,\n";
    let path = write(&dir, "ok.csv", text);
    let data = streamingqa::read(&path, true).unwrap();
    assert_eq!(data.texts(), vec!["Two\r\nlines, \"quoted\".", "A 5\" screen.", "Last"]);
    let questions: Vec<&str> = data.documents.iter().flat_map(|d| &d.questions).map(|q| q.question.as_str()).collect();
    assert_eq!(questions, vec!["Q1?", "Q2?", "Q3, really?"]);
    assert_eq!(data.documents[1].questions[0].meta["note"], "x");
    assert!(!data.documents[0].questions[0].meta.contains_key("note"));
    // Record 3 starts on line 6: two lines in record 1, a blank line 4, a lone CR ending line 5.
    let path = write(&dir, "short.csv", text.replace(",c,\n", "\n"));
    let err = streamingqa::read(&path, true).unwrap_err();
    assert_names(&err, &["short.csv: record 3 (line 6): missing column \"answers\""]);
}

#[test]
fn duplicate_document_ids_name_the_file_the_id_and_both_records() {
    let dir = scratch("dup");
    let text = concat!(
        r#"{"id": "a", "text": "First."}"#,
        "\n",
        r#"{"id": "b", "text": "Second."}"#,
        "\n\n",
        r#"{"id": "a", "text": "Third, same id."}"#,
        "\n",
        r#"{"id": "line 6", "text": "Fourth."}"#,
        "\n",
        r#"{"text": "Fifth, default id line 6."}"#,
        "\n",
    );
    let path = write(&dir, "dup.jsonl", text);
    let err = jsonl::read(&path, true).unwrap_err();
    assert!(matches!(&err, DataError::DuplicateId { id, .. } if id == "a"), "{err:?}");
    assert_names(&err, &["dup.jsonl: line 4: duplicate document id \"a\", first used at line 1"]);
    let data = jsonl::read(&path, false).unwrap();
    let ids: Vec<&str> = data.documents.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, vec!["a", "b", "line 6"]);
    assert_eq!(data.documents[0].text, "First.");
    let messages: Vec<String> = data.report.skipped.iter().map(ToString::to_string).collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(messages[1].contains("dup.jsonl: line 6: duplicate document id \"line 6\", first used at line 5"));
    assert_eq!(data.report.skipped[0].location(), Some("line 4"));
    assert_eq!(data.report.records, 5);

    // StreamingQA: two different texts with one doc_id; rows of one text may repeat it.
    let text = "text,question,answers,doc_id\nOne.,Q1?,a,d1\nOne.,Q2?,b,d1\nTwo.,Q3?,c,d1\nThree.,Q4?,d,d2\n";
    let path = write(&dir, "dup.csv", text);
    let err = streamingqa::read(&path, true).unwrap_err();
    assert_names(&err, &["dup.csv: record 3 (line 4): duplicate document id \"d1\", first used at record 1 (line 2)"]);
    let data = streamingqa::read(&path, false).unwrap();
    assert_eq!((data.report.documents, data.report.questions, data.report.skipped.len()), (2, 3, 1));

    // ArchivalQA: two different paragraphs with one doc_id and para_num.
    let text = ARCHIVAL.replace("nyt-1,0,It was in Belkarra.", "nyt-2,1,It was in Belkarra.");
    let path = write(&dir, "dup-archival.csv", text);
    let err = archivalqa::read(&path, archivalqa::TextColumn::Paragraph, true).unwrap_err();
    assert_names(
        &err,
        &["dup-archival.csv: record 3 (line 4): duplicate document id \"nyt-2#1\", first used at record 2 (line 3)"],
    );
    let data = archivalqa::read(&path, archivalqa::TextColumn::Paragraph, false).unwrap();
    assert_eq!((data.report.documents, data.report.skipped.len()), (2, 1));

    // SQuAD: two articles with one title give their paragraphs the same ids.
    let text = SQUAD_V1.replace("\"title\": \"Ostrenn\"", "\"title\": \"Belkarra\"");
    let path = write(&dir, "dup.json", text);
    let err = squad::read(&path, true).unwrap_err();
    assert_names(
        &err,
        &["dup.json: data[1].paragraphs[0]: duplicate document id \"Belkarra#0\", first used at data[0].paragraphs[0]"],
    );
    let data = squad::read(&path, false).unwrap();
    assert_eq!((data.report.documents, data.report.skipped.len()), (2, 1));
}

#[test]
fn byte_order_mark_is_accepted_in_every_format() {
    let dir = scratch("bom");
    let squad_v2 = SQUAD_V1.replacen("{\"version\": \"1.1\", ", "{\"version\": \"v2.0\", ", 1);
    let jsonl_text = "{\"id\": \"a\", \"text\": \"x\"}\n{\"id\": \"b\", \"text\": \"y\"}\n";
    let cases: Vec<(&str, String, Format)> = vec![
        ("s.json", SQUAD_V1.to_string(), Format::Squad),
        ("v2.json", squad_v2, Format::Squad),
        ("j.jsonl", jsonl_text.to_string(), Format::Jsonl),
        ("j.json", jsonl_text.to_string(), Format::Jsonl),
        ("q.csv", STREAMINGQA.to_string(), Format::StreamingQa),
        ("a.csv", ARCHIVAL.to_string(), Format::ArchivalQa),
        ("f.csv", "question,answer,doc_id,ans_text\nQ?,a,d,a text\n".to_string(), Format::ArchivalQaFull),
        ("w.csv", "raw_text\nSome text.\n".to_string(), Format::RawTextCsv),
        ("t.txt", "Some text.\n".to_string(), Format::Text),
    ];
    let plain_dir = dir.join("plain");
    std::fs::create_dir_all(&plain_dir).unwrap();
    for (name, contents, format) in cases {
        // The same name in another folder, since ids may come from the file name.
        let plain = read_any(&write(&plain_dir, name, &contents), Some(format), true).unwrap();
        let path = write(&dir, name, format!("\u{feff}{contents}"));
        assert_eq!(guess_format(&path).unwrap(), format, "{name}");
        let data = read_any(&path, None, true).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(data.documents, plain.documents, "{name}");
        assert!(!data.documents[0].text.starts_with('\u{feff}'), "{name}");
    }
    // The `parse` functions drop it from text their callers read.
    let path = dir.join("given.csv");
    assert_eq!(squad::parse(&path, &format!("\u{feff}{SQUAD_V1}"), true).unwrap().report.documents, 3);
    assert_eq!(jsonl::parse(&path, &format!("\u{feff}{jsonl_text}"), true).unwrap().report.documents, 2);
    assert_eq!(streamingqa::parse(&path, &format!("\u{feff}{STREAMINGQA}"), true).unwrap().report.documents, 2);
    let text = format!("\u{feff}{ARCHIVAL}");
    assert_eq!(archivalqa::parse(&path, &text, archivalqa::TextColumn::Paragraph, true).unwrap().report.documents, 3);
    assert_eq!(unrelated::parse_csv(&path, "\u{feff}raw_text\nx\n", true).unwrap().texts(), vec!["x"]);
}

#[test]
fn squad_empty_data_list_is_reported_as_empty() {
    let dir = scratch("squad-empty");
    for (name, text) in [("e.json", r#"{"data": []}"#), ("v.json", r#"{"version": "1.1", "data": []}"#)] {
        let path = write(&dir, name, text);
        for err in [read_any(&path, None, false).unwrap_err(), squad::read(&path, false).unwrap_err()] {
            assert!(matches!(err, DataError::EmptyField { .. }), "{err:?}");
            assert_names(&err, &[&format!("{name}: top level: field \"data\" is empty")]);
        }
    }
    // Without `data` the guess still says so, and the SQuAD reader names the missing field.
    let path = write(&dir, "none.json", r#"{"version": "1.1"}"#);
    assert_names(&read_any(&path, None, false).unwrap_err(), &["none.json", "without a top-level \"data\" list"]);
    assert_names(&squad::read(&path, false).unwrap_err(), &["none.json: top level: missing field \"data\""]);
}

#[test]
fn csv_ten_megabyte_field_is_read_whole() {
    let dir = scratch("sqa-big");
    let big = "word ".repeat(2 * 1024 * 1024);
    let text = format!("text,question,answers\n\"{big}\",Which word?,word\nsmall,q?,a\n");
    let path = write(&dir, "big.csv", text);
    let data = streamingqa::read(&path, true).unwrap();
    assert_eq!(data.documents[0].text.len(), 10 * 1024 * 1024);
    assert_eq!(data.report.documents, 2);
    let _ = std::fs::remove_dir_all(&dir);
}

const ARCHIVAL: &str = "\
question,answer,doc_id,para_num,ans_paragraph,ans_text
Who won?,marn,nyt-2,3,Marn won.,Rain fell. Marn won.
When did rain fall?,Monday,nyt-2,1,Rain fell on Monday.,Rain fell on Monday. Marn won.
Where?,Belkarra,nyt-1,0,It was in Belkarra.,It was in Belkarra.
Who else won?,Ilvo,nyt-2,3,Marn won.,Rain fell. Marn won.
";

#[test]
fn archivalqa_groups_by_doc_id_ordered_by_paragraph() {
    let dir = scratch("archival");
    let path = write(&dir, "archival.csv", ARCHIVAL);
    let data = archivalqa::read(&path, archivalqa::TextColumn::Paragraph, true).unwrap();
    let ids: Vec<&str> = data.documents.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, vec!["nyt-2#1", "nyt-2#3", "nyt-1#0"]);
    assert_eq!(data.documents[1].questions.len(), 2);
    assert_eq!(data.documents[1].title.as_deref(), Some("nyt-2"));
    assert_eq!(data.documents[1].questions[0].answers, vec!["marn"]);

    let full = archivalqa::read(&path, archivalqa::TextColumn::FullText, true).unwrap();
    assert_eq!(full.report.format, Format::ArchivalQaFull);
    // Two distinct ans_text values under nyt-2: they stay two documents of one group.
    assert_eq!(full.documents.len(), 3);
    assert_eq!(full.documents[0].text, "Rain fell on Monday. Marn won.");

    let path = write(&dir, "noanswer.csv", ARCHIVAL.replace("Who won?,marn", "Who won?,"));
    let err = archivalqa::read(&path, archivalqa::TextColumn::Paragraph, true).unwrap_err();
    assert_names(&err, &["noanswer.csv: record 1 (line 2): field \"answer\" is empty"]);
}

#[test]
fn jsonl_round_trips_and_reports_bad_lines_and_questions() {
    let dir = scratch("jsonl");
    let text = concat!(
        r#"{"id": "a", "title": "T", "text": "Marn was born in 1873.", "questions": [{"question": "When?", "answers": ["1873", "1873"]}], "meta": {"date": "2020"}}"#,
        "\n\n",
        r#"{"text": "No id here."}"#,
        "\n",
        r#"{"id": "c", "text": "x", "questions": [{"question": "Q?"}, {"question": "R?", "answers": ["x"]}]}"#,
        "\n",
        r#"{"id": "d", "title": 7, "text": "y"}"#,
        "\n",
        r#"{"id": "e" "text": "y"}"#,
        "\n",
        r#"{"id": "f"}"#,
        "\n",
    );
    let path = write(&dir, "docs.jsonl", text);
    let data = jsonl::read(&path, false).unwrap();
    let messages: Vec<String> = data.report.skipped.iter().map(ToString::to_string).collect();
    assert_eq!(messages.len(), 3, "{messages:?}");
    assert!(messages[0].contains("docs.jsonl: line 4: questions[0]: missing field \"answers\""));
    assert!(messages[1].contains("docs.jsonl: line 6 column"), "{}", messages[1]);
    assert!(messages[2].contains("docs.jsonl: line 7: missing field \"text\""));
    // line 5: a number is accepted as a title
    assert_eq!(data.report.documents, 4);
    assert_eq!(data.documents[0].questions[0].answers, vec!["1873"]);
    assert_eq!(data.documents[0].meta["date"], "2020");
    assert_eq!(data.documents[1].id, "line 3");
    assert_eq!(data.documents[2].questions.len(), 1);

    let err = jsonl::read(&path, true).unwrap_err();
    assert_names(&err, &["docs.jsonl: line 4: questions[0]: missing field \"answers\""]);

    let out = dir.join("out.jsonl");
    jsonl::write(&out, &data.documents).unwrap();
    let again = jsonl::read(&out, true).unwrap();
    assert_eq!(again.documents, data.documents);
    let line = jsonl::to_line(&data.documents[1]);
    assert_eq!(line, r#"{"id":"line 3","text":"No id here.","questions":[]}"#);
}

#[test]
fn jsonl_wrong_answer_type_names_the_field() {
    let dir = scratch("jsonl-type");
    let path = write(&dir, "t.jsonl", r#"{"text": "x", "questions": [{"question": "Q?", "answers": [1]}]}"#);
    let err = jsonl::read(&path, true).unwrap_err();
    assert_names(&err, &["t.jsonl: line 1: questions[0]: field \"answers[0]\" must be a string"]);
}

#[test]
fn unrelated_text_and_raw_text_csv() {
    let dir = scratch("unrelated");
    let path = write(&dir, "plain.txt", "Bread rises.\n\nRain falls.\n");
    let data = unrelated::read(&path, true).unwrap();
    assert_eq!(data.texts(), vec!["Bread rises.\n\nRain falls.\n"]);

    let path = write(&dir, "web.csv", "id,raw_text\n1,First text.\n2,\"Second, longer\ntext.\"\n3,\n");
    let data = unrelated::read(&path, false).unwrap();
    assert_eq!(data.texts(), vec!["First text.", "Second, longer\ntext."]);
    assert_eq!(data.report.skipped.len(), 1);
    assert_names(&data.report.skipped[0], &["web.csv: record 3 (line 5): field \"raw_text\" is empty"]);

    let path = write(&dir, "empty.txt", "\n");
    let data = unrelated::read(&path, true).unwrap();
    assert!(data.documents.is_empty());
    assert_eq!(data.report.skipped.len(), 1);
}

#[test]
fn read_any_guesses_every_format() {
    let dir = scratch("guess");
    let cases = [
        (write(&dir, "s.json", SQUAD_V1), Format::Squad),
        (write(&dir, "q.csv", STREAMINGQA), Format::StreamingQa),
        (write(&dir, "a.csv", ARCHIVAL), Format::ArchivalQa),
        (write(&dir, "f.csv", "question,answer,doc_id,ans_text\nQ?,a,d,a text\n"), Format::ArchivalQaFull),
        (write(&dir, "j.jsonl", "{\"text\": \"x\"}\n"), Format::Jsonl),
        (write(&dir, "j.json", "{\"text\": \"x\"}\n{\"text\": \"y\"}\n"), Format::Jsonl),
        (write(&dir, "t.txt", "Some text."), Format::Text),
        (write(&dir, "w.csv", "raw_text\nSome text.\n"), Format::RawTextCsv),
    ];
    for (path, format) in &cases {
        assert_eq!(guess_format(path).unwrap(), *format, "{}", path.display());
        let data = read_any(path, None, true).unwrap();
        assert_eq!(data.report.format, *format);
        assert!(!data.documents.is_empty());
    }
    let path = write(&dir, "x.parquet", "");
    assert_names(&guess_format(&path).unwrap_err(), &["x.parquet", "unknown file extension", "squad, streamingqa"]);
    let path = write(&dir, "odd.csv", "a,b\n1,2\n");
    assert_names(&read_any(&path, None, false).unwrap_err(), &["odd.csv", "csv header matches no known format"]);
    // A named format overrides the extension.
    let data = read_any(&cases[0].0, Some(Format::Squad), true).unwrap();
    assert_eq!(data.report.documents, 3);
}

#[test]
fn format_names_round_trip() {
    for format in Format::ALL {
        assert_eq!(format.name().parse::<Format>().unwrap(), format);
    }
    assert!("SQuAD".parse::<Format>().is_ok());
    assert!("parquet".parse::<Format>().unwrap_err().to_string().contains("unknown format name"));
}

#[test]
fn stats_count_answers_missing_from_their_document() {
    let dir = scratch("stats");
    let text = concat!(
        r#"{"id": "a", "text": "Marn was born in 1873.", "questions": [{"question": "When?", "answers": ["1873"]}, {"question": "Where?", "answers": ["Belkarra"]}]}"#,
        "\n",
        r#"{"id": "b", "text": "", "questions": []}"#,
        "\n",
        r#"{"id": "c", "text": "abcdefghijklmnopqrstuvwxyz0123456789"}"#,
        "\n",
    );
    let path = write(&dir, "s.jsonl", text);
    let s = stats(&path, None, None).unwrap();
    assert_eq!((s.documents, s.questions, s.answers), (2, 2, 2));
    assert_eq!((s.questions_answer_in_document, s.answers_in_document), (1, 1));
    assert_eq!(s.answer_missing_examples, vec![("a".to_string(), "Where?".to_string())]);
    assert_eq!(s.length_min_median_max, Some((22, 36, 36)));
    let buckets: Vec<(usize, usize, usize)> = s.histogram.iter().map(|b| (b.low, b.high, b.count)).collect();
    assert_eq!(buckets, vec![(16, 31, 1), (32, 63, 1)]);
    let table = s.to_string();
    for part in [
        "documents           2",
        "questions with an answer in their document (50.0%)",
        "a: Where?",
        "skipped: ",
        "line 2: field \"text\" is empty",
        "16-31",
    ] {
        assert!(table.contains(part), "{table}\nlacks {part:?}");
    }
}
