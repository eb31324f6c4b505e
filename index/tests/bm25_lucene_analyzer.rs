//! The English analysis chain must give Lucene's tokens, token for token.
//!
//! Reference: `tests/fixtures/reference/lucene_english_analyzer.jsonl`, made by
//! real Lucene 10.5 through Pyserini (see the `.meta.json` next to it).

use std::path::PathBuf;

use quarry_index::bm25::analyzer::{analyze, count_terms, english_analyzer, ENGLISH_STOP_WORDS};

fn reference_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/reference")
}

#[test]
fn english_analyzer_matches_lucene_on_every_reference_text() {
    let path = reference_dir().join("lucene_english_analyzer.jsonl");
    let data = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut analyzer = english_analyzer();
    let mut failures = Vec::new();
    let mut total = 0;
    for (line_no, line) in data.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let record: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), line_no + 1));
        let text = record["text"].as_str().expect("text");
        let expected: Vec<String> = record["tokens"]
            .as_array()
            .expect("tokens")
            .iter()
            .map(|t| t.as_str().expect("token").to_string())
            .collect();
        let got = analyze(&mut analyzer, text);
        total += 1;
        assert_eq!(
            count_terms(text),
            expected.len(),
            "term count of line {}",
            line_no + 1
        );
        if got != expected {
            failures.push(format!(
                "line {}: {:?}\n  lucene: {expected:?}\n  quarry: {got:?}",
                line_no + 1,
                text.chars().take(80).collect::<String>()
            ));
        }
    }
    assert_eq!(total, 67, "reference file has 67 texts");
    assert!(
        failures.is_empty(),
        "{} of {total} texts differ from Lucene:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn stop_words_match_the_reference_metadata() {
    let path = reference_dir().join("lucene_english_analyzer.meta.json");
    let data = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let meta: serde_json::Value = serde_json::from_str(&data).expect("meta json");
    let lucene: Vec<&str> = meta["stopwords"]
        .as_array()
        .expect("stopwords")
        .iter()
        .map(|w| w.as_str().expect("word"))
        .collect();
    assert_eq!(lucene, ENGLISH_STOP_WORDS.to_vec());
}
