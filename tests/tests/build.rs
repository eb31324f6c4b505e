//! End-to-end tests of `quarry build` / `quarry eval --retriever dense:NAME` /
//! `quarry compare` through the binary, with the tiny random BERT of
//! `encoder/fixtures/bert` (plus a small WordPiece tokenizer written here)
//! on a small BEIR folder written by the test: build then eval, a second
//! build is a no-op, an interrupted build resumes to the same bytes, and bad
//! inputs fail with clear messages.
//!
//! Declared as an integration test of quarry-cli (see cli/Cargo.toml).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Stream::{Either, Stderr};
use common::{index_content, metric, quarry_at_home, quarry_home, read_json, run};
use quarry_index::dense::npy::NpyVectors;
use serde_json::Value;
use tiny_fixtures::{index_dir, TinyDense, DENSE};

mod common;
mod tiny_fixtures;

#[test]
fn the_default_data_home_is_the_same_from_any_directory() {
    let tiny = TinyDense::new(10);
    let xdg = tiny.path("xdg");
    let (here, there) = (tiny.path("here"), tiny.path("there"));
    std::fs::create_dir_all(&here).unwrap();
    std::fs::create_dir_all(&there).unwrap();
    let in_dir = |dir: &Path| {
        let mut command = common::quarry_with_registry();
        command.env("XDG_DATA_HOME", &xdg).current_dir(dir);
        command
    };
    run(in_dir(&here), &tiny.build_args()).ok();
    assert!(index_dir(&xdg.join("quarry"))
        .join("manifest.json")
        .exists());
    let listed = run(in_dir(&there), &["index", "list", "--json"])
        .ok()
        .json();
    assert_eq!(listed[0]["name"], "tiny-bert@tiny");
    run(
        in_dir(&there),
        &["eval", "--dataset", tiny.data(), "--retriever", DENSE],
    )
    .ok();
    // Not found: the message names the home it looked in and how to choose another.
    run(
        in_dir(&there),
        &[
            "eval",
            "--dataset",
            tiny.data(),
            "--retriever",
            "dense:other",
        ],
    )
    .exit(1)
    .has(
        Either,
        &[
            xdg.join("quarry").to_str().unwrap(),
            "--home DIR or QUARRY_HOME",
        ],
    );
    assert!(!here.join(".quarry").exists() && !there.join(".quarry").exists());
}

#[test]
fn build_then_eval_then_rebuild_is_a_no_op() {
    let tiny = TinyDense::new(30);
    let (model, data) = (tiny.model(), tiny.data());

    // stderr is a pipe here, not a terminal: progress comes as log lines.
    tiny.build()
        .ok()
        .has(Either, &["dense:tiny-bert"])
        .has(Stderr, &["encoding: 30/30 docs"]);
    let manifest = read_json(&tiny.index_dir().join("manifest.json"));
    assert_eq!(manifest["complete"], true);
    assert_eq!(manifest["dim"], 48);
    let before = index_content(&tiny.index_dir());

    let report = tiny.eval(DENSE, &["--json"]).ok().json();
    assert_eq!(report["queries_evaluated"], 6);

    // The home lists it, and `quarry index` takes its name instead of its folder.
    let listed = tiny.quarry(&["index", "list", "--json"]).ok().json();
    assert_eq!(listed[0]["name"], "tiny-bert@tiny");
    assert_eq!(listed[0]["rows"], 30);
    assert_eq!(listed[0]["complete"], true);
    assert_eq!(listed[0]["mode"], "sentence-embedding");
    tiny.quarry(&["index", "info", "tiny-bert@tiny"]).ok().has(
        Either,
        &["rows             30", "mode             sentence-embedding"],
    );
    tiny.quarry(&["index", "info", "other@tiny"])
        .exit(1)
        .has(Either, &["it holds: tiny-bert@tiny"]);
    let ndcg = metric(&report, "ndcg@10");
    assert!((0.0..=1.0).contains(&ndcg), "{ndcg}");

    // The model is not needed any more: eval works with it gone.
    let moved = tiny.path("moved");
    std::fs::rename(model, &moved).unwrap();
    tiny.eval(DENSE, &[]).ok();
    std::fs::rename(&moved, model).unwrap();

    let started = Instant::now();
    tiny.build().ok().has(Either, &["up to date"]);
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(
        index_content(&tiny.index_dir()),
        before,
        "a no-op build changed the index"
    );

    let retrievers = "bm25,dense:tiny-bert,hybrid:rrf(bm25,dense:tiny-bert)";
    let compare = [
        "compare",
        "--datasets",
        data,
        "--retrievers",
        retrievers,
        "--format",
        "csv",
    ];
    let csv = tiny.quarry(&compare).ok().stdout();
    // The hybrid's own commas do not split the list; CSV quotes its name.
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 4, "{csv}");
    assert!(
        lines[1].starts_with("tiny,test,other,6,bm25,ndcg@10,"),
        "{csv}"
    );
    assert!(
        lines[3]
            .starts_with("tiny,test,other,6,\"hybrid:rrf(k=60,bm25,dense:tiny-bert)\",ndcg@10,"),
        "{csv}"
    );

    // A missing index is named with the command that builds it.
    tiny.quarry(&["compare", "--datasets", data, "--retrievers", "dense:other"])
        .exit(1)
        .has(Either, &["quarry build"]);

    // A new query is encoded on the next eval (the model is there again).
    let queries = std::fs::read_to_string(Path::new(data).join("queries.jsonl")).unwrap();
    std::fs::write(
        Path::new(data).join("queries.jsonl"),
        queries.replace("\"q0\",\"text\":\"", "\"q0\",\"text\":\"paper "),
    )
    .unwrap();
    tiny.eval(DENSE, &[]).ok();
}

#[test]
fn an_interrupted_build_resumes_to_the_same_bytes() {
    let tiny = TinyDense::new(1200);
    let args = tiny.build_args();
    let small = |home: &Path| -> Command {
        let mut command = quarry_at_home(home);
        command
            .env("QUARRY_SHARD_ROWS", "4")
            .env("QUARRY_CHUNK_DOCS", "8");
        command
    };

    let whole = tiny.path("whole");
    run(small(&whole), &args).ok();

    let home = tiny.path("interrupted");
    let mut child = small(&home)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let manifest = index_dir(&home).join("manifest.json");
    let deadline = Instant::now() + Duration::from_secs(120);
    let killed_at = loop {
        if let Ok(bytes) = std::fs::read(&manifest) {
            if let Ok(m) = serde_json::from_slice::<Value>(&bytes) {
                let shards = m["shards"].as_array().map_or(0, Vec::len);
                if shards >= 3 {
                    child.kill().unwrap();
                    break shards;
                }
            }
        }
        assert!(Instant::now() < deadline, "the build never wrote 3 shards");
        if child.try_wait().unwrap().is_some() {
            panic!("the build finished before it could be interrupted");
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    child.wait().unwrap();
    let m = read_json(&manifest);
    assert_eq!(m["complete"], false, "killed after {killed_at} shards");

    run(small(&home), &args)
        .ok()
        .has(Either, &["resumed after"]);
    assert_eq!(
        index_content(&index_dir(&home)),
        index_content(&index_dir(&whole))
    );
}

/// `quarry build --shard I/N`: N processes side by side, each a slice of
/// whole shards; the last to finish merges. Chunks (12 docs) straddle the
/// slice ends (multiples of 16 rows), so each boundary chunk is encoded by
/// both neighbours. The index, its query cache included, equals a
/// one-process build byte for byte.
#[test]
fn a_sharded_build_in_separate_processes_equals_one_process() {
    let tiny = TinyDense::new(300);
    let args = tiny.build_args();
    let small = |home: &Path| -> Command {
        let mut command = quarry_at_home(home);
        command
            .env("QUARRY_SHARD_ROWS", "16")
            .env("QUARRY_CHUNK_DOCS", "12");
        command
    };
    let whole = tiny.path("whole");
    run(small(&whole), &args).ok();

    let home = tiny.path("sharded");
    // One slice alone: the index is not there yet, and a hand merge says
    // which slices are missing.
    let mut first = args.to_vec();
    first.extend(["--shard", "0/3"]);
    run(small(&home), &first)
        .ok()
        .has(Either, &["slice 0/3", "1 of 3 slices finished"]);
    assert!(!index_dir(&home).join("manifest.json").exists());
    let dir = index_dir(&home);
    run(small(&home), &["index", "merge", dir.to_str().unwrap()])
        .exit(1)
        .has(Either, &["1 of 3 slices are finished", "1/3, 2/3"]);
    // The other two at once.
    let children: Vec<_> = ["1/3", "2/3"]
        .iter()
        .map(|slice| {
            small(&home)
                .args(args)
                .args(["--shard", slice])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<String> = children
        .into_iter()
        .map(|child| {
            let out = child.wait_with_output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{text}");
            text
        })
        .collect();
    assert_eq!(
        outputs.iter().filter(|o| o.contains("merged into")).count(),
        1,
        "exactly one process merges: {outputs:?}"
    );
    assert_eq!(index_content(&dir), index_content(&index_dir(&whole)));
    assert!(
        !dir.join("slices").exists(),
        "the slices are gone once merged"
    );
    let info = read_json(&dir.join("build.json"));
    assert_eq!(info["docs"], 300);
    tiny.quarry(&["index", "verify", dir.to_str().unwrap()])
        .ok();
    // A rerun of any slice finds the index built.
    run(small(&home), &first).ok().has(Either, &["up to date"]);
    let score = |home: &Path| {
        let ran = run(
            small(home),
            &[
                "eval",
                "--dataset",
                tiny.data(),
                "--retriever",
                DENSE,
                "--json",
            ],
        );
        metric(&ran.ok().json(), "ndcg@10")
    };
    assert_eq!(score(&home), score(&whole));
}

/// A finished slice left by a build of another corpus is refused naming its
/// folder, instead of being counted (and later merged) as this build's.
#[test]
fn a_slice_of_another_corpus_is_refused() {
    let tiny = TinyDense::new(100);
    let mut args = tiny.build_args().to_vec();
    args.extend(["--shard", "0/2"]);
    let home = tiny.path("home");
    let small = || {
        let mut command = quarry_at_home(&home);
        command
            .env("QUARRY_SHARD_ROWS", "16")
            .env("QUARRY_CHUNK_DOCS", "12");
        command
    };
    run(small(), &args)
        .ok()
        .has(Either, &["1 of 2 slices finished"]);
    let corpus = Path::new(tiny.data()).join("corpus.jsonl");
    let mut text = std::fs::read_to_string(&corpus).unwrap();
    text += "{\"_id\": \"d-new\", \"title\": \"new\", \"text\": \"a document added later\"}\n";
    std::fs::write(&corpus, text).unwrap();
    run(small(), &args)
        .exit(1)
        .has(Either, &["0-of-2", "the corpus"]);
}

/// `--device cuda:all` hands corpus chunks to one thread per device and writes
/// them in corpus order; with the CPU standing in for three devices the index
/// must be byte-identical to a one-device build.
#[test]
fn a_build_split_over_several_devices_writes_the_same_index() {
    use quarry_engine::build::{build_dense, BuildMode, BuildRequest, EncoderSpec};
    use quarry_engine::catalog::Catalog;
    use quarry_engine::dataset::Dataset;
    use quarry_engine::device::{ComputeDevice, Precision};

    let tiny = TinyDense::new(300);
    let dataset = Dataset::resolve(tiny.data(), None).unwrap();
    let request = |extra_devices: Vec<ComputeDevice>| BuildRequest {
        encoder: EncoderSpec {
            model: tiny.model.clone(),
            mode: BuildMode::Auto,
            precision: Precision::F32,
            device: ComputeDevice::Cpu,
            max_length: None,
            batch_tokens: None,
            lora: None,
            hub: None,
            query_instruction: None,
            doc_instruction: None,
        },
        name: None,
        store: quarry_index::dense::ElementType::F32,
        shard_rows: 16,
        chunk_docs: 8,
        hnsw: false,
        command: vec!["quarry".into()],
        slice: None,
        extra_devices,
    };
    let progress = indicatif::ProgressBar::hidden();
    let one = tiny.path("one");
    build_dense(&Catalog::new(&one), &dataset, &request(vec![]), &progress).unwrap();
    let three = tiny.path("three");
    let outcome = build_dense(
        &Catalog::new(&three),
        &dataset,
        &request(vec![ComputeDevice::Cpu, ComputeDevice::Cpu]),
        &progress,
    )
    .unwrap();
    assert_eq!(outcome.docs_encoded, 300);
    assert_eq!(
        index_content(&index_dir(&three)),
        index_content(&index_dir(&one))
    );
}

#[test]
fn a_dataset_without_corpus_is_a_clear_error() {
    let tiny = TinyDense::new(5);
    std::fs::remove_file(tiny.data.join("corpus.jsonl")).unwrap();
    tiny.build().exit(1).has(Either, &["no corpus"]);
}

#[test]
fn an_index_of_an_unknown_format_is_a_clear_error() {
    let tiny = TinyDense::new(5);
    std::fs::create_dir_all(tiny.index_dir()).unwrap();
    std::fs::write(
        tiny.index_dir().join("manifest.json"),
        r#"{"format_version": 0, "shards": []}"#,
    )
    .unwrap();
    tiny.build().exit(1).has(
        Either,
        &["unsupported format version 0", "delete the folder"],
    );
    tiny.eval(DENSE, &[])
        .exit(1)
        .has(Either, &["unsupported format version 0"]);
}

#[test]
fn cuda_without_the_feature_is_a_usage_error() {
    if cfg!(feature = "cuda") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let args = "build --model m --dataset nfcorpus --device cuda";
    quarry_home(tmp.path(), &args.split(' ').collect::<Vec<_>>())
        .exit(2)
        .has(Either, &["--features cuda"]);
}

/// Sets the `encoder_fingerprint` of the JSON file at `path`.
fn set_encoder_fingerprint(path: &Path, fingerprint: &str) {
    let mut edited = read_json(path);
    edited["encoder_fingerprint"] = Value::from(fingerprint);
    std::fs::write(path, serde_json::to_vec(&edited).unwrap()).unwrap();
}

/// The manifest, build.json and the query cache must name the same encoder:
/// vectors of another encoder would be searched without error and give
/// silently wrong numbers.
#[test]
fn an_index_whose_records_disagree_on_the_encoder_is_refused() {
    let tiny = TinyDense::new(30);
    tiny.build().ok();
    let eval = || tiny.eval(DENSE, &[]);
    let other = "0".repeat(64);

    // The query cache encoded by another encoder.
    let cache = tiny.index_dir().join("queries/manifest.json");
    let original = std::fs::read(&cache).unwrap();
    set_encoder_fingerprint(&cache, &other);
    eval()
        .exit(1)
        .has(Either, &["queries/manifest.json", "cached query vectors"]);
    std::fs::write(&cache, &original).unwrap();
    eval().ok();

    // The manifest edited to name another encoder than build.json.
    set_encoder_fingerprint(&tiny.index_dir().join("manifest.json"), &other);
    eval().exit(1).has(Either, &["records disagree"]);
}

#[test]
fn a_second_build_of_one_index_waits_for_the_first() {
    let t = TinyDense::new(12);
    let index = index_dir(&t.home);
    std::fs::create_dir_all(index.parent().unwrap()).unwrap();
    // Another build, as far as quarry can tell: a process holding the index's
    // lock (flock(1), the same kernel lock fd-lock takes) for two seconds.
    let lock = index.with_file_name("tiny-bert@tiny.lock");
    let mut holder = Command::new("flock")
        .arg(&lock)
        .args(["sleep", "2"])
        .spawn()
        .expect("flock(1) from util-linux");
    // Give flock the lock before quarry asks for it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !lock.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    t.build()
        .ok()
        .has(Stderr, &["waiting for another quarry build of this index"]);
    // The build could only go on once the holder let go: by now it has exited.
    assert!(
        holder.try_wait().unwrap().is_some(),
        "the build finished while another held the lock"
    );
    t.eval(DENSE, &[]).ok();
}

/// `quarry index export tiny-bert@tiny --npy NPY` (ids beside it).
fn export_docs(tiny: &TinyDense, npy: &Path) -> common::Ran {
    tiny.quarry(&[
        "index",
        "export",
        "tiny-bert@tiny",
        "--npy",
        npy.to_str().unwrap(),
    ])
}

#[test]
fn exported_vectors_imported_back_search_and_score_the_same() {
    let tiny = TinyDense::new(30);
    tiny.build().ok();
    let original = tiny
        .eval(DENSE, &["--json", "--metrics", "ndcg@10,recall@10,map"])
        .ok()
        .json();

    // Out: the documents and the build's cached queries, as .npy + ids.
    let (docs, queries) = (tiny.path("docs.npy"), tiny.path("queries.npy"));
    export_docs(&tiny, &docs)
        .ok()
        .has(Either, &["wrote 30 rows x 48 (f32)"]);
    let cache = tiny.index_dir().join("queries");
    let exported = tiny
        .quarry(&[
            "index",
            "export",
            cache.to_str().unwrap(),
            "--npy",
            queries.to_str().unwrap(),
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(exported["dim"], 48);
    let ids = std::fs::read_to_string(tiny.path("docs.ids.txt")).unwrap();
    assert_eq!(ids.lines().count(), 30);

    // Back in, under another name, stored as f32 and as f16, and searched with its stored
    // queries: the TREC run scores what the original index scored.
    for store in ["f32", "f16"] {
        let name = format!("copy-{store}@tiny");
        let imported = tiny
            .quarry(&[
                "index",
                "import",
                &name,
                "--npy",
                docs.to_str().unwrap(),
                "--ids",
                tiny.path("docs.ids.txt").to_str().unwrap(),
                "--queries-npy",
                queries.to_str().unwrap(),
                "--query-ids",
                tiny.path("queries.ids.txt").to_str().unwrap(),
                "--store",
                store,
                "--json",
            ])
            .ok()
            .json();
        assert_eq!(imported["rows"], 30);
        assert!(imported["fingerprint"]
            .as_str()
            .unwrap()
            .starts_with("imported:"));
        let run_text = tiny
            .quarry(&[
                "index",
                "search",
                &name,
                "--stored-queries",
                "-k",
                "1000",
                "--trec",
            ])
            .ok()
            .stdout();
        let run = tiny.path(&format!("run-{store}.trec"));
        std::fs::write(&run, &run_text).unwrap();
        let scored = tiny
            .quarry(&[
                "eval",
                "--dataset",
                tiny.data(),
                "--run",
                run.to_str().unwrap(),
                "--json",
                "--metrics",
                "ndcg@10,recall@10,map",
            ])
            .ok()
            .json();
        // f32 storage keeps every vector bit for bit: the same run, the same numbers. f16
        // rounds the documents, which reorders near-ties of these random vectors a little.
        let tolerance = if store == "f32" { 1e-12 } else { 0.02 };
        for m in ["ndcg@10", "recall@10", "map"] {
            let (a, b) = (metric(&original, m), metric(&scored, m));
            assert!(
                (a - b).abs() <= tolerance,
                "{store} {m}: original {a}, imported {b}"
            );
        }
    }
    // Importing the same files again is a no-op that says so.
    tiny.quarry(&[
        "index",
        "import",
        "copy-f32@tiny",
        "--npy",
        docs.to_str().unwrap(),
        "--ids",
        tiny.path("docs.ids.txt").to_str().unwrap(),
        "--json",
    ])
    .ok();
    // An imported index has no encoder: dense:NAME says how to evaluate it instead.
    tiny.eval("dense:copy-f32", &[])
        .exit(1)
        .has(Either, &["--stored-queries", "--retriever run:run.trec"]);
    // Ids that don't match the rows: the file and line are named.
    let short = tiny.path("short.ids.txt");
    std::fs::write(&short, "a\nb\na\n").unwrap();
    tiny.quarry(&[
        "index",
        "import",
        "bad@tiny",
        "--npy",
        docs.to_str().unwrap(),
        "--ids",
        short.to_str().unwrap(),
    ])
    .exit(1)
    .has(Either, &["short.ids.txt:3", "appears twice"]);
}

#[test]
fn quarry_encode_gives_the_vectors_a_build_stores() {
    let tiny = TinyDense::new(12);
    tiny.build().ok();
    // The index's footprint by part: shards and the build's query cache add up with the
    // records to the total; the shards are what a search maps.
    let info = tiny
        .quarry(&["index", "info", "tiny-bert@tiny", "--json"])
        .ok()
        .json();
    let part = |name: &str| info["footprint"][name].as_u64().unwrap();
    assert!(part("shards") > 12 * 48 * 4 && part("queries") > 0);
    assert_eq!(
        part("total"),
        part("shards") + part("hnsw") + part("queries") + part("records")
    );
    assert_eq!(part("mapped"), part("shards"));
    let docs = tiny.path("docs.npy");
    export_docs(&tiny, &docs).ok();
    let corpus = tiny.data.join("corpus.jsonl");
    let encoded = tiny.path("encoded.npy");
    tiny.quarry(&[
        "encode",
        "--model",
        tiny.model(),
        "--as",
        "passage",
        "--input",
        corpus.to_str().unwrap(),
        "--output",
        encoded.to_str().unwrap(),
    ])
    .ok()
    .has(Either, &["wrote 12 vectors x 48"]);
    let stored = NpyVectors::open(&docs).unwrap();
    let fresh = NpyVectors::open(&encoded).unwrap();
    assert_eq!((fresh.rows, fresh.cols), (stored.rows, stored.cols));
    let (a, b) = (stored.rows_vec(0, 12), fresh.rows_vec(0, 12));
    let worst = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(worst < 1e-5, "encode differs from the build by {worst}");
    assert_eq!(
        std::fs::read_to_string(tiny.path("docs.ids.txt")).unwrap(),
        std::fs::read_to_string(tiny.path("encoded.ids.txt")).unwrap()
    );
    // Queries: JSON on stdout, under the index's own encoder fingerprint.
    let report = tiny
        .quarry(&[
            "encode",
            "--model",
            tiny.model(),
            "--text",
            "alpha beta",
            "--text",
            "gamma",
        ])
        .ok()
        .json();
    let manifest = read_json(&tiny.index_dir().join("manifest.json"));
    assert_eq!(report["encoder"], manifest["encoder_fingerprint"]);
    assert_eq!(report["embeddings"].as_array().unwrap().len(), 2);
    assert_eq!(
        report["embeddings"][1]["vector"].as_array().unwrap().len(),
        48
    );
    tiny.quarry(&["encode", "--model", tiny.model()])
        .exit(2)
        .has(Stderr, &["--text"]);
}

#[test]
fn query_and_document_prompts_are_part_of_the_encoder() {
    let tiny = TinyDense::new(12);
    tiny.build().ok();
    let plain = read_json(&tiny.index_dir().join("manifest.json"))["encoder_fingerprint"].clone();
    let e5 = ["--query-prompt", "query: ", "--doc-prompt", "passage: "];
    let mut args = tiny.build_args().to_vec();
    args.extend(["--name", "tiny-e5"]);
    args.extend(e5);
    tiny.quarry(&args).ok();
    let e5_dir = tiny.home.join("dense").join("tiny-e5@tiny");
    let prompted = read_json(&e5_dir.join("manifest.json"))["encoder_fingerprint"].clone();
    assert_ne!(plain, prompted);
    // Queries are encoded with the build's prompts: eval through the cache works, and
    // `quarry encode` with the same prompts names the same encoder.
    tiny.eval("dense:tiny-e5", &[]).ok();
    let mut encode = vec!["encode", "--model", tiny.model(), "--text", "x"];
    encode.extend(e5);
    let report = tiny.quarry(&encode).ok().json();
    assert_eq!(report["encoder"], prompted);
    // The same prompts from the model's sentence-transformers config.
    std::fs::write(
        tiny.model.join("config_sentence_transformers.json"),
        r#"{"prompts": {"query": "query: ", "passage": "passage: "}, "default_prompt_name": null}"#,
    )
    .unwrap();
    let report = tiny
        .quarry(&[
            "encode",
            "--model",
            tiny.model(),
            "--st-prompts",
            "--text",
            "x",
        ])
        .ok()
        .json();
    assert_eq!(report["encoder"], prompted);
}
