//! `quarry datasets fetch` against a real HTTP server on 127.0.0.1 (started
//! here; nothing else is reachable, and no test tries), serving the archives
//! tests/fixtures/fetch/make_fetch_fixtures.py makes: a tiny BEIR zip,
//! tiny MS MARCO files and a tiny CoIR task laid out as the Hugging Face hub
//! serves it (tree listings and parquet files). Fetch → convert → eval works for each; a cut download
//! resumes with a Range request; a flipped byte, a 404, a stalled server and
//! a full disk each give a clear error, a non-zero exit and nothing in place.

mod common;
#[path = "common/http_request.rs"]
mod http_request;
#[path = "common/http_server.rs"]
mod http_server;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{quarry_command, repo_root, run, Ran, Stream::*};
use http_server::{Fault, FileServer};
use serde_json::Value;

fn fixtures() -> PathBuf {
    repo_root().join("tests/fixtures/fetch")
}

fn expected() -> Value {
    let text = std::fs::read_to_string(fixtures().join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn sha(key: &str) -> String {
    expected()[key].as_str().unwrap().to_string()
}

/// One `[[dataset]]` table: the fields every entry has, then `fields` (group,
/// docs, format ...), then one `[[dataset.download]]` per `(url, role, extra
/// lines)`.
fn dataset_toml(
    name: &str,
    bundled: Option<&Path>,
    corpus_sha256: &str,
    kind: &str,
    fields: &str,
    downloads: &[(String, &str, String)],
) -> String {
    let path = bundled.map_or(String::new(), |p| format!("path = \"{}\"\n", p.display()));
    let mut text = format!(
        "\n[[dataset]]\nname = \"{name}\"\n{path}split = \"test\"\nremove_self = false\n\
         corpus_sha256 = \"{corpus_sha256}\"\nurl = \"\"\nkind = \"{kind}\"\n{fields}\n"
    );
    for (url, role, extra) in downloads {
        text += &format!("\n[[dataset.download]]\nurl = \"{url}\"\nrole = \"{role}\"\n{extra}");
    }
    text
}

/// `sha256 = "..."` of a fixture named in expected.json.
fn pinned(key: &str) -> String {
    format!("sha256 = \"{}\"\n", sha(key))
}

/// A registry naming the fixtures as served by `base` (the server, or a host
/// a mirror stands in for), with the bundled copies beside them.
fn registry(dir: &Path, base: &str, tiny_zip_sha: &str) -> PathBuf {
    let bundled = fixtures().join("bundled");
    let e = expected();
    let text_of = |key: &str| e[key].as_str().unwrap().to_string();
    let zip = |file: &str, extra: String| (format!("{base}/beir/{file}"), "archive", extra);
    let beir = format!(
        "group = \"beir\"\ndocs = {}\nformat = \"beir-zip\"",
        e["tiny_docs"]
    );
    let mut text = dataset_toml(
        "tiny",
        Some(&bundled.join("tiny")),
        &text_of("tiny_corpus_sha256"),
        "text",
        &beir,
        &[zip("tiny.zip", format!("sha256 = \"{tiny_zip_sha}\"\n"))],
    );
    for (name, file) in [("unpinned", "tiny.zip"), ("gone", "gone.zip")] {
        text += &dataset_toml(
            name,
            None,
            "",
            "text",
            "format = \"beir-zip\"",
            &[zip(file, String::new())],
        );
    }
    let tar = format!("{base}/msmarco/collectionandqueries.tar.gz");
    let member = |m: &str| format!("member = \"{m}\"\n");
    let marco = format!(
        "group = \"msmarco\"\ndocs = {}\nformat = \"msmarco-passage\"",
        e["marco_docs"]
    );
    let collection = (
        tar.clone(),
        "collection",
        member("collection.tsv") + &pinned("collectionandqueries.tar.gz"),
    );
    for (name, queries, qrels) in [
        (
            "tiny-marco-dev",
            (tar.clone(), "queries", member("queries.dev.small.tsv")),
            (tar.clone(), "qrels", member("qrels.dev.small.tsv")),
        ),
        (
            "tiny-marco-dl19",
            (
                format!("{base}/msmarco/msmarco-test2019-queries.tsv.gz"),
                "queries",
                pinned("msmarco-test2019-queries.tsv.gz"),
            ),
            (
                format!("{base}/trec/2019qrels-pass.txt"),
                "qrels",
                pinned("2019qrels-pass.txt"),
            ),
        ),
    ] {
        text += &dataset_toml(
            name,
            Some(&bundled.join(name)),
            &text_of("marco_corpus_sha256"),
            "text",
            &marco,
            &[collection.clone(), queries, qrels],
        );
    }
    // The whole registry: `--group beir` and `--all` must not reach the built-in entries.
    let text = format!("extends_built_in = false\n{text}{}", coir_entries(base));
    let path = dir.join("datasets.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The tiny CoIR task (and broken variants of it) as hub repos under `base`.
fn coir_entries(base: &str) -> String {
    let e = expected();
    // The fixtures serve the hub below /hub; huggingface.co is reached through HF_ENDPOINT.
    let base = if base.contains("huggingface.co") {
        base.to_string()
    } else {
        format!("{base}/hub")
    };
    let entry = |name: &str, queries: u64, qrels_repo: &str| {
        let repo = |r: &str| format!("{base}/datasets/CoIR-Retrieval/{r}");
        dataset_toml(
            name,
            None,
            e["coir_corpus_sha256"].as_str().unwrap(),
            "code",
            &format!(
                "group = \"coir\"\ndocs = {}\nqueries = {queries}\nformat = \"coir-hub\"",
                e["coir_docs"]
            ),
            &[
                (
                    repo("tiny-code-queries-corpus"),
                    "queries-corpus",
                    String::new(),
                ),
                (repo(qrels_repo), "qrels", String::new()),
            ],
        )
    };
    let queries = e["coir_test_queries"].as_u64().unwrap();
    let mut text = String::new();
    for (name, queries, qrels) in [
        ("tiny-coir", queries, "tiny-code-qrels"),
        ("tiny-coir-miscounted", queries + 1, "tiny-code-qrels"),
        ("tiny-coir-badqrels", queries, "tiny-code-badqrels"),
        ("tiny-coir-nocol", queries, "tiny-code-nocol-qrels"),
    ] {
        text += &entry(name, queries, qrels);
    }
    text
}

/// A temporary home with a registry pointing at `server`.
struct Setup {
    server: FileServer,
    dir: tempfile::TempDir,
    registry: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let server = FileServer::start(&fixtures());
        let dir = tempfile::tempdir().unwrap();
        let base = format!("http://127.0.0.1:{}", server.port);
        let registry = registry(dir.path(), &base, &sha("tiny.zip"));
        Setup {
            server,
            dir,
            registry,
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("home/datasets")
    }

    fn quarry(&self) -> Command {
        let mut command = quarry_command();
        command
            .current_dir(self.dir.path())
            .arg("--registry")
            .arg(&self.registry)
            .arg("--home")
            .arg(self.dir.path().join("home"));
        command
    }

    fn run(&self, args: &[&str]) -> Ran {
        run(self.quarry(), args)
    }

    /// `quarry datasets fetch ARGS` exits 1 with every one of `needles` on stderr.
    #[track_caller]
    fn fetch_fails(&self, args: &[&str], needles: &[&str]) {
        let mut all = vec!["datasets", "fetch"];
        all.extend_from_slice(args);
        self.run(&all).exit(1).has(Stderr, needles);
    }

    /// Names of the entries below `path` (sorted; empty when absent).
    fn entries(&self, path: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(path)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }
}

fn state_of(listing: &Value, name: &str) -> String {
    listing["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == name)
        .map(|d| d["state"].as_str().unwrap().to_string())
        .unwrap()
}

#[test]
fn a_beir_zip_is_fetched_checked_converted_and_evaluated() {
    let s = Setup::new();
    let listing = s.run(&["datasets", "--json"]).ok().json();
    assert_eq!(state_of(&listing, "tiny"), "fetchable");

    s.run(&["datasets", "fetch", "tiny"]).ok().has(
        Stderr,
        &[
            "tiny: fetched: 40 documents",
            "sha256 as the registry pins",
            "qrels/test.tsv: identical to the bundled copy (24 judgments)",
        ],
    );
    let dir = s.data().join("tiny");
    assert_eq!(
        s.entries(&dir),
        [
            "corpus.jsonl.zst",
            "fetched.json",
            "qrels",
            "queries.jsonl.zst"
        ]
    );
    // The download is gone once converted; nothing half-written is left.
    assert!(s.entries(&s.data().join("downloads")).is_empty());
    assert_eq!(s.entries(&s.data()), ["downloads", "tiny"]);

    let listing = s.run(&["datasets", "--json"]).ok().json();
    assert_eq!(state_of(&listing, "tiny"), "fetched");
    let report = s
        .run(&["eval", "--dataset", "tiny", "--retriever", "bm25", "--json"])
        .ok()
        .json();
    assert_eq!(report["queries_evaluated"], 8);
    assert!(
        report["metrics"]["ndcg@10"].as_f64().unwrap() > 0.5,
        "{report}"
    );

    // Idempotent: a second fetch downloads nothing.
    let requests = s.server.seen().len();
    s.run(&["datasets", "fetch", "tiny"])
        .ok()
        .has(Stderr, &["tiny: already present"]);
    assert_eq!(s.server.seen().len(), requests);

    // A fetched file that shrinks is reported as corrupt.
    let queries = dir.join("queries.jsonl.zst");
    let bytes = std::fs::read(&queries).unwrap();
    std::fs::write(&queries, &bytes[..bytes.len() / 2]).unwrap();
    s.run(&["datasets"])
        .ok()
        .has(Stdout, &["corrupt: tiny:", "queries.jsonl.zst"]);
    s.run(&["datasets", "fetch", "tiny", "--force"]).ok();
    let listing = s.run(&["datasets", "--json"]).ok().json();
    assert_eq!(state_of(&listing, "tiny"), "fetched");
}

#[test]
fn a_cut_download_resumes_where_it_stopped() {
    let s = Setup::new();
    s.server.fault("beir/tiny.zip", Fault::CutOnceAfter(700));
    s.fetch_fails(
        &["tiny"],
        &[
            "stopped after 700 of",
            "tiny.zip.part is kept",
            "again to resume",
        ],
    );
    let part = s.data().join("downloads/tiny.zip.part");
    assert_eq!(std::fs::metadata(&part).unwrap().len(), 700);
    assert!(!s.data().join("tiny").exists());

    s.run(&["datasets", "fetch", "tiny"]).ok();
    let last = s.server.seen().last().cloned().unwrap();
    assert_eq!(last.method, "GET");
    assert_eq!(last.range.as_deref(), Some("bytes=700-"), "{last:?}");
    assert!(!part.exists());
    let record: Value =
        serde_json::from_str(&std::fs::read_to_string(s.data().join("tiny/fetched.json")).unwrap())
            .unwrap();
    assert_eq!(record["downloads"][0]["sha256"], sha("tiny.zip"));
}

#[test]
fn a_flipped_byte_is_a_checksum_error_and_nothing_stays() {
    let s = Setup::new();
    s.server.fault("beir/tiny.zip", Fault::FlipByte(300));
    s.fetch_fails(
        &["tiny"],
        &[
            "tiny.zip.part: sha256 is",
            "but the registry says",
            "the file was removed",
        ],
    );
    assert!(s.entries(&s.data().join("downloads")).is_empty());
    assert_eq!(s.entries(&s.data()), ["downloads"]);
}

#[test]
fn an_unpinned_download_prints_the_sha256_to_pin() {
    let s = Setup::new();
    let pin = format!("add `sha256 = \"{}\"`", sha("tiny.zip"));
    s.run(&["datasets", "fetch", "unpinned"])
        .ok()
        .has(Stderr, &[&pin]);
}

#[test]
fn not_found_stalled_and_disk_full_are_clear_errors() {
    let s = Setup::new();
    s.fetch_fails(&["gone"], &["beir/gone.zip: HTTP 404"]);

    s.server.fault("beir/tiny.zip", Fault::StallAfter(100));
    let started = std::time::Instant::now();
    s.fetch_fails(
        &["tiny", "--stall-timeout", "1"],
        &["stopped after 100 of", "again to resume"],
    );
    assert!(started.elapsed().as_secs() < 30);

    // A full disk: the download's file is /dev/full, where every write fails
    // with ENOSPC as on a full file system.
    let s = Setup::new();
    let downloads = s.data().join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    std::os::unix::fs::symlink("/dev/full", downloads.join("tiny.zip.part")).unwrap();
    s.fetch_fails(&["tiny"], &["tiny.zip.part", "No space left on device"]);
    assert!(!s.data().join("tiny").exists());
}

#[test]
fn msmarco_shares_one_converted_collection_and_matches_the_bundled_qrels() {
    let s = Setup::new();
    s.run(&["datasets", "fetch", "--group", "msmarco"])
        .ok()
        .has(
            Stderr,
            &[
                "tiny-marco-dev: fetched: 60 documents",
                "tiny-marco-dl19: fetched: 60 documents",
                "qrels/test.tsv: identical to the bundled copy (20 judgments)",
                "queries: identical to the bundled copy (4 queries)",
            ],
        );
    // One download of the shared archive, one conversion of the collection.
    let tar_gets = s
        .server
        .seen()
        .iter()
        .filter(|r| r.path.ends_with("collectionandqueries.tar.gz"))
        .count();
    assert_eq!(tar_gets, 1);
    use std::os::unix::fs::MetadataExt;
    let shared = std::fs::metadata(s.data().join("msmarco-passage/corpus.jsonl.zst")).unwrap();
    let linked = std::fs::metadata(s.data().join("tiny-marco-dl19/corpus.jsonl.zst")).unwrap();
    assert_eq!(shared.ino(), linked.ino());

    for (name, queries) in [("tiny-marco-dl19", 4), ("tiny-marco-dev", 6)] {
        let report = s
            .run(&["eval", "--dataset", name, "--retriever", "bm25", "--json"])
            .ok()
            .json();
        assert_eq!(report["queries_evaluated"], queries, "{name}: {report}");
    }
}

#[test]
fn msmarco_qrels_that_differ_from_the_bundled_reference_are_refused() {
    let s = Setup::new();
    // The same registry with a bundled copy whose qrels lack a judgment.
    let bundled = s.dir.path().join("bundled/tiny-marco-dl19");
    std::fs::create_dir_all(bundled.join("qrels")).unwrap();
    let original = fixtures().join("bundled/tiny-marco-dl19");
    std::fs::copy(
        original.join("queries.jsonl"),
        bundled.join("queries.jsonl"),
    )
    .unwrap();
    let qrels = std::fs::read_to_string(original.join("qrels/test.tsv")).unwrap();
    let mut lines: Vec<&str> = qrels.lines().collect();
    lines.pop();
    std::fs::write(bundled.join("qrels/test.tsv"), lines.join("\n") + "\n").unwrap();
    let text = std::fs::read_to_string(&s.registry).unwrap().replace(
        &original.display().to_string(),
        &bundled.display().to_string(),
    );
    std::fs::write(&s.registry, text).unwrap();
    s.fetch_fails(
        &["tiny-marco-dl19"],
        &[
            "differs from the bundled reference",
            "1 judgments only in the download",
        ],
    );
    assert!(!s.data().join("tiny-marco-dl19").exists());
}

#[test]
fn from_a_local_file_and_through_a_mirror() {
    // --from: no server at all.
    let s = Setup::new();
    s.run(&[
        "datasets",
        "fetch",
        "tiny",
        "--from",
        fixtures().join("beir/tiny.zip").to_str().unwrap(),
    ])
    .ok()
    .has(Stderr, &["tiny: fetched: 40 documents"]);
    assert!(s.server.seen().is_empty());
    assert!(
        fixtures().join("beir/tiny.zip").is_file(),
        "--from leaves the file alone"
    );

    // --mirror: the registry names a host that does not exist; the mirror serves.
    let server = FileServer::start(&fixtures());
    let dir = tempfile::tempdir().unwrap();
    let registry = registry(dir.path(), "https://beir.invalid", &sha("tiny.zip"));
    let mirror = server.url("");
    let mut command = quarry_command();
    command
        .arg("--registry")
        .arg(&registry)
        .arg("--home")
        .arg(dir.path().join("home"));
    run(command, &["datasets", "fetch", "tiny", "--mirror", &mirror])
        .ok()
        .has(Stderr, &["tiny: fetched: 40 documents"]);
    let paths: Vec<String> = server.seen().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths, ["/beir/tiny.zip"]);
}

#[test]
fn usage_errors_exit_2() {
    let s = Setup::new();
    s.run(&["datasets", "fetch"])
        .exit(2)
        .has(Stderr, &["--group", "--all"]);
    s.run(&["datasets", "fetch", "nosuch"])
        .exit(2)
        .has(Stderr, &["unknown dataset `nosuch`", "tiny"]);
    s.run(&["datasets", "fetch", "--group", "nosuch"])
        .exit(2)
        .has(Stderr, &["groups: beir, coir, msmarco"]);
}

#[test]
fn a_coir_task_is_fetched_from_hub_parquet_and_evaluated() {
    let s = Setup::new();
    let e = expected();
    let listing = s.run(&["datasets", "--json"]).ok().json();
    assert_eq!(state_of(&listing, "tiny-coir"), "fetchable");
    s.run(&["datasets", "fetch", "tiny-coir"]).ok().has(
        Stderr,
        &[
            "tiny-coir: fetched: 30 documents",
            "as the hub's tree lists it",
            "qrels/test.tsv: 7 judgments of 6 queries",
            "queries: the 6 judged in the `test` qrels",
            "queries: 6 as the registry says",
            "corpus: holds all 6 judged documents",
            "corpus: sha256 as the registry pins",
        ],
    );
    assert_eq!(e["coir_test_queries"], 6);
    let dir = s.data().join("tiny-coir");
    assert_eq!(
        s.entries(&dir),
        [
            "corpus.jsonl.zst",
            "fetched.json",
            "qrels",
            "queries.jsonl.zst"
        ]
    );
    assert_eq!(s.entries(&dir.join("qrels")), ["test.tsv"]);
    // Two listings, then the corpus, queries and test qrels: no train or valid split.
    let paths: Vec<String> = s.server.seen().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths.len(), 5, "{paths:?}");
    assert!(paths[0].ends_with("/tree/main?recursive=true"), "{paths:?}");
    assert!(
        !paths
            .iter()
            .any(|p| p.contains("/train-") || p.contains("/valid-")),
        "{paths:?}"
    );
    // Downloads are gone once converted, their repo folders too.
    assert!(s.entries(&s.data().join("downloads")).is_empty());

    let report = s
        .run(&[
            "eval",
            "--dataset",
            "tiny-coir",
            "--retriever",
            "bm25",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(report["queries_evaluated"], 6, "{report}");
    assert!(
        report["metrics"]["ndcg@10"].as_f64().unwrap() > 0.3,
        "{report}"
    );
}

#[test]
fn coir_counts_columns_and_checksums_are_checked() {
    let s = Setup::new();
    s.fetch_fails(
        &["tiny-coir-miscounted"],
        &["the converted queries file has 6 queries, the registry says 7"],
    );
    s.fetch_fails(
        &["tiny-coir-badqrels"],
        &[
            "tiny-code-badqrels/test-00000-of-00001-",
            "column `score`, row 1: expected an integer grade, found a string",
        ],
    );
    s.fetch_fails(
        &["tiny-coir-nocol"],
        &[
            "tiny-code-nocol-qrels/test-00000-of-00001-",
            "no column `corpus_id`",
        ],
    );
    // A flipped byte fails the sha256 the hub lists (a fresh home: the first
    // fetches left the good corpus in downloads/, which would be reused).
    let s = Setup::new();
    let data =
        fixtures().join("hub/datasets/CoIR-Retrieval/tiny-code-queries-corpus/resolve/main/data");
    let corpus = s
        .entries(&data)
        .into_iter()
        .find(|n| n.starts_with("corpus-"))
        .unwrap();
    s.server.fault(
        &format!("hub/datasets/CoIR-Retrieval/tiny-code-queries-corpus/resolve/main/data/{corpus}"),
        Fault::FlipByte(100),
    );
    s.fetch_fails(&["tiny-coir"], &["sha256 is", "the file was removed"]);
    let made: Vec<String> = s
        .entries(&s.data())
        .into_iter()
        .filter(|n| n.starts_with("tiny-coir"))
        .collect();
    assert!(made.is_empty(), "{made:?}");
}

#[test]
fn coir_from_local_repos_and_through_hf_endpoint() {
    // --from: a folder holding a copy of each repo by name; no server.
    let s = Setup::new();
    let repos = fixtures().join("hub/datasets/CoIR-Retrieval");
    s.run(&[
        "datasets",
        "fetch",
        "tiny-coir",
        "--from",
        repos.to_str().unwrap(),
    ])
    .ok()
    .has(
        Stderr,
        &[
            "tiny-coir: fetched: 30 documents",
            "no hub listing to check it against",
        ],
    );
    assert!(s.server.seen().is_empty());

    // HF_ENDPOINT stands in for huggingface.co, as for the hub's own clients.
    let server = FileServer::start(&fixtures());
    let dir = tempfile::tempdir().unwrap();
    let registry = dir.path().join("datasets.toml");
    std::fs::write(
        &registry,
        format!(
            "extends_built_in = false\n{}",
            coir_entries("https://huggingface.co")
        ),
    )
    .unwrap();
    let mut command = quarry_command();
    command
        .env("HF_ENDPOINT", server.url("hub"))
        .arg("--registry")
        .arg(&registry)
        .arg("--home")
        .arg(dir.path().join("home"));
    run(command, &["datasets", "fetch", "tiny-coir"])
        .ok()
        .has(Stderr, &["tiny-coir: fetched: 30 documents"]);
    assert!(server.seen()[0]
        .path
        .starts_with("/hub/api/datasets/CoIR-Retrieval/tiny-code-queries-corpus/tree/main"));
}
