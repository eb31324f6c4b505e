//! `quarry train` on the tiny Qwen2 of tests/fixtures/lora (made by
//! scripts/make_lora_fixture.py): an interrupted (or time-limited) and resumed run ends with the adapter bytes
//! of an uninterrupted one; a diverging run stops naming the step and keeps its last good
//! checkpoint; malformed training data is reported with file and line; the trained adapter
//! loads as a PEFT adapter.

use std::path::{Path, PathBuf};

use indicatif::ProgressBar;
use quarry_encoder::lora::{LoraAdapter, ADAPTER_WEIGHTS_FILE};
use quarry_encoder::ComputeDevice;
use quarry_engine::train::{train, TrainJob, TrainSettings, CHECKPOINT_FILE, LOSS_PLOT_FILE};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/lora")
}

fn job(output: &Path) -> TrainJob {
    TrainJob {
        model: fixtures().join("tiny_qwen2"),
        train_file: fixtures().join("train.jsonl"),
        corpus: None,
        output: output.to_path_buf(),
        device: ComputeDevice::Cpu,
        settings: TrainSettings {
            rank: 4,
            alpha: 8.0,
            dropout: 0.1,
            learning_rate: 1e-3,
            group_size: 3,
            batch_size: 4,
            micro_batch: 2,
            query_max_len: 32,
            passage_max_len: 64,
            seed: 7,
            ..TrainSettings::default()
        },
        checkpoint_every: 0,
        resume: false,
        stop_after: None,
        time_limit: None,
        memory_check: true,
    }
}

#[test]
fn resumed_run_ends_with_the_bytes_of_an_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let hidden = ProgressBar::hidden();

    let whole = job(&dir.path().join("whole"));
    let summary = train(&whole, &hidden).unwrap();
    assert!(summary.finished);
    assert_eq!(summary.step, 4);
    assert!(summary.last_loss.unwrap().is_finite());
    let expected = std::fs::read(whole.output.join(ADAPTER_WEIGHTS_FILE)).unwrap();
    let whole_curve = summary.loss_curve.clone();
    assert_eq!(whole_curve, summary.step_losses);

    let mut first_half = job(&dir.path().join("halves"));
    first_half.stop_after = Some(2);
    let summary = train(&first_half, &hidden).unwrap();
    assert!(!summary.finished);
    assert!(first_half.output.join(CHECKPOINT_FILE).is_file());
    assert!(!first_half.output.join(ADAPTER_WEIGHTS_FILE).exists());

    // Starting over in a folder with a checkpoint is refused; --resume continues it.
    let mut again = job(&first_half.output);
    assert!(train(&again, &hidden)
        .unwrap_err()
        .to_string()
        .contains("--resume"));
    again.resume = true;
    // A time-limited job stops after its first step past the limit, with a checkpoint.
    again.time_limit = Some(0.0);
    let summary = train(&again, &hidden).unwrap();
    assert_eq!(summary.resumed_from_step, Some(2));
    assert_eq!(summary.step, 3);
    assert_eq!(summary.step_seconds.len(), 1);
    assert!(!summary.finished);
    again.time_limit = None;
    let summary = train(&again, &hidden).unwrap();
    assert_eq!(summary.resumed_from_step, Some(3));
    assert!(summary.finished);
    // The loss curve spans the resumes and equals the uninterrupted one's.
    assert_eq!(summary.loss_curve.len(), 4);
    assert_eq!(summary.loss_curve, whole_curve);
    let picture = std::fs::read_to_string(again.output.join(LOSS_PLOT_FILE)).unwrap();
    assert!(picture.contains("4 of 4 steps") && picture.contains("resumed after step 3"));
    let resumed = std::fs::read(again.output.join(ADAPTER_WEIGHTS_FILE)).unwrap();
    assert!(
        expected == resumed,
        "resumed adapter differs from the uninterrupted one"
    );

    // The output is a PEFT adapter folder quarry (and PEFT) can load; training moved lora_B.
    let adapter = LoraAdapter::load(&again.output).unwrap();
    assert_eq!(adapter.modules.len(), 2 * 7);
    assert!(adapter
        .modules
        .values()
        .any(|pair| pair.b.data.iter().any(|&v| v != 0.0)));

    // Other settings on resume are refused.
    let mut changed = job(&first_half.output);
    changed.resume = true;
    changed.settings.seed = 8;
    assert!(train(&changed, &hidden)
        .unwrap_err()
        .to_string()
        .contains("other settings"));
}

#[test]
fn training_lowers_the_loss_on_groups_it_sees_again() {
    // Four groups seen for 30 epochs: the summary's loss curve must come down (the resume
    // test alone would pass for a loop that never updated anything).
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(fixtures().join("train.jsonl")).unwrap();
    let four: String = text.lines().take(4).map(|l| format!("{l}\n")).collect();
    let train_file = dir.path().join("four.jsonl");
    std::fs::write(&train_file, four).unwrap();
    let mut repeated = job(&dir.path().join("out"));
    repeated.train_file = train_file;
    repeated.settings.dropout = 0.0;
    repeated.settings.micro_batch = 4;
    repeated.settings.epochs = 30;
    repeated.settings.warmup_ratio = 0.0;
    let summary = train(&repeated, &ProgressBar::hidden()).unwrap();
    let losses = &summary.step_losses;
    assert_eq!(losses.len(), 30);
    let mean = |values: &[f64]| values.iter().sum::<f64>() / values.len() as f64;
    let (first, last) = (mean(&losses[..5]), mean(&losses[25..]));
    assert!(last < 0.5 * first, "loss curve {losses:?}");
}

#[test]
fn diverging_run_stops_naming_the_step_and_keeps_the_last_good_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let mut absurd = job(dir.path());
    absurd.settings.learning_rate = 1e30;
    absurd.settings.warmup_ratio = 0.0;
    absurd.checkpoint_every = 1;
    let message = format!("{:#}", train(&absurd, &ProgressBar::hidden()).unwrap_err());
    assert!(message.contains("at step"), "{message}");
    assert!(message.contains("last good checkpoint"), "{message}");
    let bytes = std::fs::read(dir.path().join(CHECKPOINT_FILE)).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    for (name, view) in tensors.tensors() {
        assert!(
            view.data()
                .chunks_exact(4)
                .all(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]).is_finite()),
            "{name} is not finite in the kept checkpoint"
        );
    }
}

#[test]
fn a_time_limit_that_is_not_a_number_of_seconds_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for limit in [f64::NAN, -1.0, f64::INFINITY] {
        let mut bad = job(dir.path());
        bad.time_limit = Some(limit);
        let message = format!("{:#}", train(&bad, &ProgressBar::hidden()).unwrap_err());
        assert!(message.contains("--time-limit"), "{limit}: {message}");
    }
    assert!(!dir.path().join(CHECKPOINT_FILE).exists());
}

#[test]
fn a_run_that_cannot_fit_in_memory_is_refused_before_the_model_loads() {
    let dir = tempfile::tempdir().unwrap();
    let mut huge = job(dir.path());
    // 100k-token sequences: the attention scores alone are terabytes per query.
    huge.settings.query_max_len = 100_000;
    huge.settings.passage_max_len = 100_000;
    let message = format!("{:#}", train(&huge, &ProgressBar::hidden()).unwrap_err());
    assert!(message.contains("needs about"), "{message}");
    assert!(message.contains("free of"), "{message}");
    assert!(message.contains("--no-memory-check"), "{message}");
    assert!(message.contains("tiny_qwen2"), "names the model: {message}");
    assert!(!dir.path().join(CHECKPOINT_FILE).exists());
}

#[test]
fn malformed_training_line_is_reported_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(fixtures().join("train.jsonl")).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines[2] = lines[2].replacen("\"query\":", "\"question\":", 1);
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, lines.join("\n")).unwrap();
    let mut broken = job(&dir.path().join("out"));
    broken.train_file = bad;
    let message = train(&broken, &ProgressBar::hidden())
        .unwrap_err()
        .to_string();
    assert!(message.contains("bad.jsonl:3"), "{message}");
    assert!(message.contains("query"), "{message}");
}

#[test]
fn tevatron_v2_groups_with_their_corpus_train_the_same_adapter() {
    use quarry_engine::train_data::{load_train_groups, write_train_groups, GroupFormat};
    let dir = tempfile::tempdir().unwrap();
    // The fixture's groups by id, and a corpus holding their passages.
    let groups = load_train_groups(&fixtures().join("train.jsonl")).unwrap();
    let v2 = dir.path().join("train-v2.jsonl");
    write_train_groups(&v2, groups.clone(), GroupFormat::TevatronV2).unwrap();
    let mut docs = std::collections::BTreeMap::new();
    for passage in groups
        .iter()
        .flat_map(|g| g.positives.iter().chain(&g.negatives))
    {
        docs.insert(
            passage.doc_id.clone(),
            (passage.title.clone(), passage.text.clone()),
        );
    }
    let corpus: String = docs
        .iter()
        .map(|(id, (title, text))| {
            format!(
                "{}\n",
                serde_json::json!({"_id": id, "title": title, "text": text})
            )
        })
        .collect();
    let corpus_file = dir.path().join("corpus.jsonl");
    std::fs::write(&corpus_file, corpus).unwrap();

    let hidden = ProgressBar::hidden();
    let mut inline = job(&dir.path().join("inline"));
    inline.settings.max_steps = Some(2);
    train(&inline, &hidden).unwrap();
    let mut by_id = job(&dir.path().join("by-id"));
    by_id.settings.max_steps = Some(2);
    by_id.train_file = v2.clone();
    by_id.corpus = Some(corpus_file);
    train(&by_id, &hidden).unwrap();
    let weights = |d: &str| std::fs::read(dir.path().join(d).join(ADAPTER_WEIGHTS_FILE)).unwrap();
    assert_eq!(weights("inline"), weights("by-id"));

    // Without the corpus, ids alone are refused, naming the file.
    let mut no_corpus = job(&dir.path().join("none"));
    no_corpus.train_file = v2;
    let message = train(&no_corpus, &hidden).unwrap_err().to_string();
    assert!(message.contains("train-v2.jsonl"), "{message}");
}
