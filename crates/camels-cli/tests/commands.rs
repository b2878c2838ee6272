//! `data select` (article-disjoint streams) and `compare` (bootstrap intervals over questions), run
//! as a user runs them, on scratch files and the tiny GPT-2 fixture.

use std::path::{Path, PathBuf};
use std::process::Command;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("camels-cli-commands-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn camels(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_camels-cli"))
        .args(args)
        .env("CAMELS_SYSTEM_MALLOC", "1")
        .output()
        .expect("camels-cli runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Documents of three articles (titles A, B, C; 2, 1 and 3 documents).
fn articles(dir: &Path) -> PathBuf {
    let path = dir.join("articles.jsonl");
    let mut lines = Vec::new();
    for (i, title) in ["A", "A", "B", "C", "C", "C"].iter().enumerate() {
        lines.push(format!(
            r#"{{"id":"d{i}","title":"{title}","text":"Town{i} lies on the river Ro{i}.","questions":[{{"question":"Which river does Town{i} lie on?","answers":["Ro{i}"]}}]}}"#
        ));
    }
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

#[test]
fn select_writes_the_documents_of_an_article_range_and_refuses_one_past_the_end() {
    let dir = scratch("select");
    let file = articles(&dir);
    let out = dir.join("bc.jsonl");
    let (code, stdout, stderr) = camels(&["data", "select", s(&file), "--articles", "1..3", "--out", s(&out)]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("4 documents, 4 questions"), "{stdout}");
    let ids: Vec<String> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, ["d2", "d3", "d4", "d5"]);
    let (code, _, stderr) = camels(&["data", "select", s(&file), "--articles", "2..4", "--out", s(&out)]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("holds 3 articles"), "{stderr}");
}

#[test]
fn compare_prints_intervals_for_runs_over_the_same_questions() {
    let dir = scratch("compare");
    let file = articles(&dir);
    let tiny = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tiny-gpt2");
    // Only the baseline measures before adaptation; the other run takes its before-columns.
    for (name, lr, before) in [("uniform", "1e-3", true), ("other", "3e-3", false)] {
        let out = dir.join(name);
        let mut args =
            vec!["adapt", "--base", s(&tiny), "--stream", s(&file), "--preset", "tiny", "--lr", lr, "--json"];
        if before {
            args.push("--eval-before");
        }
        args.extend(["--out", s(&out)]);
        let (code, _, stderr) = camels(&args);
        assert_eq!(code, 0, "{stderr}");
    }
    let uniform = format!("uniform={}", s(&dir.join("uniform")));
    let other = format!("other={}", s(&dir.join("other")));
    let report = dir.join("compare");
    let (code, stdout, stderr) =
        camels(&["compare", "--run", &uniform, "--run", &other, "--resamples", "200", "--out", s(&report)]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("| other − uniform |"), "{stdout}");
    assert!(stdout.contains("quarter 4"), "{stdout}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report.with_extension("json")).unwrap()).unwrap();
    assert_eq!(json["runs"][0]["questions"], 6);
    let ci = &json["runs"][1]["nll_gain"];
    assert!(ci["lo"].as_f64().unwrap() <= ci["estimate"].as_f64().unwrap(), "{ci}");
    assert!(ci["estimate"].as_f64().unwrap() <= ci["hi"].as_f64().unwrap(), "{ci}");
    // Swapped answers are measured after every run, so each has a fact gain.
    assert!(json["runs"][1]["swapped_questions"].as_u64().unwrap() > 0, "{}", json["runs"][1]);
    assert!(json["runs"][1]["fact_gain"]["estimate"].is_number(), "{}", json["runs"][1]);
    assert!(json["versus"][0]["fact_gain_diff"]["estimate"].is_number(), "{}", json["versus"][0]);
    // An `eval` run (no before-columns) takes the baseline's; as the baseline it is refused.
    let (code, _, stderr) = camels(&["eval", "--base", s(&tiny), "--stream", s(&file), "--out", s(&dir.join("eval"))]);
    assert_eq!(code, 0, "{stderr}");
    let eval = format!("eval={}", s(&dir.join("eval")));
    let (code, stdout, stderr) = camels(&["compare", "--run", &uniform, "--run", &eval, "--resamples", "50"]);
    assert_eq!(code, 0, "{stderr}");
    // The unadapted base gains nothing over its own before.
    assert!(stdout.contains("| eval | 6 |") && stdout.contains("| 0.000 [0.000, 0.000] |"), "{stdout}");
    let (code, _, stderr) = camels(&["compare", "--run", &uniform, "--run", &eval, "--baseline", "eval"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("--eval-before"), "{stderr}");
}
