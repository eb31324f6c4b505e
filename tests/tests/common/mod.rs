//! Running the `quarry` binary from the end-to-end tests (cli.rs, build.rs,
//! mine.rs, index_cli.rs, search_dense.rs, search_shell.rs; each declares
//! `mod common;`): the command with quarry's environment variables cleared so
//! a developer's own settings never leak into a test, feeding it stdin, and
//! checking what it did through [`Ran`], whose failed checks print the
//! command line and both of its streams.
//!
//! Only integration tests of quarry-cli can use it (cargo hands them the
//! binary's path as `CARGO_BIN_EXE_quarry`).

#![allow(dead_code)] // each test file uses its own subset

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The `datasets.toml` of this checkout, as a `--registry` value.
pub fn registry_arg() -> String {
    repo_root().join("datasets.toml").display().to_string()
}

/// Pyserini's BM25 run of nfcorpus test, cut at 10 per query.
pub fn pyserini_run() -> PathBuf {
    repo_root().join("tests/fixtures/reference/pyserini_bm25_flat_nfcorpus_test.top10.trec")
}

/// pytrec_eval's metrics of Pyserini's full BM25 run of nfcorpus test, with
/// the numbers Pyserini publishes under `meta.published_expected`.
pub fn pyserini_reference() -> Value {
    read_json(&repo_root().join("tests/fixtures/reference/pyserini_bm25_flat_nfcorpus_test.json"))
}

/// The quarry binary, none of quarry's environment variables set.
pub fn quarry_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_quarry"));
    for variable in [
        "QUARRY_REGISTRY",
        "QUARRY_HOME",
        "QUARRY_DATA",
        "QUARRY_MIRROR",
        "QUARRY_SHARD_ROWS",
        "QUARRY_CHUNK_DOCS",
        // The Hugging Face hub endpoint `datasets fetch` reads for CoIR.
        "HF_ENDPOINT",
    ] {
        command.env_remove(variable);
    }
    // No test reaches the real Hugging Face hub: a `--model ORG/NAME` that is not
    // a local folder resolves from the cache alone, against a dead loopback port
    // (hub.rs points these at its own loopback hub).
    for variable in ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH"] {
        command.env_remove(variable);
    }
    // The default data home is the user's ($XDG_DATA_HOME/quarry): a test that gives none
    // must not write there, so it points at a folder that cannot be created.
    command.env("XDG_DATA_HOME", "/proc/quarry-tests-give-a-home");
    command
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_ENDPOINT", "http://127.0.0.1:9");
    command
}

/// quarry with this checkout's registry (`--registry` before the subcommand).
pub fn quarry_with_registry() -> Command {
    let mut command = quarry_command();
    command.arg("--registry").arg(registry_arg());
    command
}

/// quarry with this checkout's registry and its data home at `home`.
pub fn quarry_at_home(home: &Path) -> Command {
    let mut command = quarry_with_registry();
    command.env("QUARRY_HOME", home);
    command
}

/// Runs `command` with `args` added, its stdin empty.
pub fn run(mut command: Command, args: &[&str]) -> Ran {
    command.args(args);
    let line = command_line(&command);
    match command.output() {
        Ok(output) => Ran { line, output },
        Err(e) => panic!("`{line}` did not start: {e}"),
    }
}

/// Runs `command` with `args` added and `input` on its stdin (then closed).
pub fn run_with_stdin(command: Command, args: &[&str], input: &str) -> Ran {
    run_with_stdin_bytes(command, args, input.as_bytes())
}

/// Runs `command` with `args` added and `input` (any bytes) on its stdin (then closed).
pub fn run_with_stdin_bytes(mut command: Command, args: &[&str], input: &[u8]) -> Ran {
    command.args(args);
    let line = command_line(&command);
    let mut child = match command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => panic!("`{line}` did not start: {e}"),
    };
    child.stdin.take().unwrap().write_all(input).unwrap();
    Ran {
        output: child.wait_with_output().unwrap(),
        line,
    }
}

/// `quarry ARGS`.
pub fn quarry(args: &[&str]) -> Ran {
    run(quarry_command(), args)
}

/// `quarry --registry REPO/datasets.toml ARGS` with its data home at `home`.
pub fn quarry_home(home: &Path, args: &[&str]) -> Ran {
    run(quarry_at_home(home), args)
}

/// What a command printed, with `VAR=value quarry ARGS (in DIR)` for messages.
fn command_line(command: &Command) -> String {
    let mut words: Vec<String> = command
        .get_envs()
        .filter_map(|(name, value)| {
            let value = value?;
            Some(format!(
                "{}={}",
                name.to_string_lossy(),
                value.to_string_lossy()
            ))
        })
        .collect();
    words.push("quarry".into());
    words.extend(command.get_args().map(|a| a.to_string_lossy().into_owned()));
    let mut line = words.join(" ");
    if let Some(dir) = command.get_current_dir() {
        line += &format!(" (in {})", dir.display());
    }
    line
}

/// What [`Ran::has`] and [`Ran::lacks`] search.
#[derive(Clone, Copy)]
pub enum Stream {
    Stdout,
    Stderr,
    /// [`Ran::text`]: both streams, labelled.
    Either,
}

/// One finished run of quarry. The checks return `self` so they chain:
/// `quarry(...).exit(1).has(Stderr, &["shard-00001.qvs"])`; each failure
/// names the command and prints both streams.
pub struct Ran {
    line: String,
    pub output: Output,
}

impl Ran {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// Both streams, labelled (what [`Stream::Either`] searches).
    pub fn text(&self) -> String {
        format!("stdout:\n{}\nstderr:\n{}", self.stdout(), self.stderr())
    }

    /// Asserts the exit code.
    #[track_caller]
    pub fn exit(&self, code: i32) -> &Self {
        assert_eq!(
            self.output.status.code(),
            Some(code),
            "exit code of `{}`\n{}",
            self.line,
            self.text()
        );
        self
    }

    /// Asserts exit code 0.
    #[track_caller]
    pub fn ok(&self) -> &Self {
        self.exit(0)
    }

    /// Asserts a non-zero exit code (or death by a signal).
    #[track_caller]
    pub fn fails(&self) -> &Self {
        assert!(
            !self.output.status.success(),
            "`{}` succeeded\n{}",
            self.line,
            self.text()
        );
        self
    }

    /// Asserts that `stream` contains every one of `needles`.
    #[track_caller]
    pub fn has(&self, stream: Stream, needles: &[&str]) -> &Self {
        self.contains(stream, needles, true)
    }

    /// Asserts that `stream` contains none of `needles`.
    #[track_caller]
    pub fn lacks(&self, stream: Stream, needles: &[&str]) -> &Self {
        self.contains(stream, needles, false)
    }

    #[track_caller]
    fn contains(&self, stream: Stream, needles: &[&str], wanted: bool) -> &Self {
        let (name, haystack) = match stream {
            Stream::Stdout => ("stdout", self.stdout()),
            Stream::Stderr => ("stderr", self.stderr()),
            Stream::Either => ("output", self.text()),
        };
        for needle in needles {
            assert!(
                haystack.contains(needle) == wanted,
                "`{needle}` {} in the {name} of `{}`\n{}",
                if wanted { "missing" } else { "found" },
                self.line,
                self.text()
            );
        }
        self
    }

    /// stdout parsed as JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        match serde_json::from_slice(&self.output.stdout) {
            Ok(value) => value,
            Err(e) => panic!(
                "stdout of `{}` is not JSON: {e}\n{}",
                self.line,
                self.text()
            ),
        }
    }
}

/// `COMMAND --dataset DATASET` followed by `rest`: how eval, mine and search
/// are asked about one dataset.
pub fn on_dataset<'a>(command: &'a str, dataset: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![command, "--dataset", dataset];
    args.extend_from_slice(rest);
    args
}

/// `metric` of an eval `--json` report.
#[track_caller]
pub fn metric(report: &Value, metric: &str) -> f64 {
    match report["metrics"][metric].as_f64() {
        Some(value) => value,
        None => panic!("no {metric} in {report}"),
    }
}

/// Asserts that `report`'s `metric` is within `tolerance` (exclusive) of
/// `expected`, which `source` computed.
#[track_caller]
pub fn assert_metric_near(
    report: &Value,
    metric: &str,
    expected: f64,
    tolerance: f64,
    source: &str,
) {
    let got = self::metric(report, metric);
    assert!(
        (got - expected).abs() < tolerance,
        "{metric}: quarry {got} vs {source} {expected}"
    );
}

/// Asserts that `report`'s `metrics` are within `tolerance` of pytrec_eval's
/// scores of Pyserini's BM25 run ([`pyserini_reference`]).
#[track_caller]
pub fn assert_matches_pyserini(report: &Value, metrics: &[&str], tolerance: f64) {
    let reference = pyserini_reference();
    for metric in metrics {
        let expected = reference[metric].as_f64().unwrap();
        assert_metric_near(report, metric, expected, tolerance, "Pyserini");
    }
}

/// Writes `content` to `dir/name`, making the folders it needs.
pub fn write_file(dir: &Path, name: &str, content: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, content).unwrap();
    path
}

#[track_caller]
pub fn read_json(path: &Path) -> Value {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) => panic!("{}: {e}", path.display()),
    };
    match serde_json::from_slice(&bytes) {
        Ok(value) => value,
        Err(e) => panic!("{}: {e}", path.display()),
    }
}

/// The doc ids of result lines (`  1.     9.5898  MED-2429  Title`), per query
/// block (blocks end with the `[N hits, ...]` latency line).
pub fn result_blocks(stdout: &str) -> Vec<Vec<String>> {
    let mut blocks = vec![Vec::new()];
    for line in stdout.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') && trimmed.contains(" hits, ") {
            blocks.push(Vec::new());
            continue;
        }
        let mut fields = trimmed.split_whitespace();
        if let (Some(rank), Some(_score), Some(doc)) = (fields.next(), fields.next(), fields.next())
        {
            if rank.ends_with('.') && rank[..rank.len() - 1].parse::<usize>().is_ok() {
                blocks.last_mut().unwrap().push(doc.to_string());
            }
        }
    }
    blocks.pop();
    blocks
}

/// Every file below `dir`: (path relative to `dir`, path), sorted.
pub fn files_below(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(dir).unwrap().display().to_string();
                out.push((rel, path));
            }
        }
    }
    out.sort();
    out
}

/// The content files of an index (what must be byte-identical between
/// builds): every file below `dir` but the checksum cache and the build
/// record (timings, argv), with its bytes.
pub fn index_content(dir: &Path) -> Vec<(String, Vec<u8>)> {
    files_below(dir)
        .into_iter()
        .filter(|(rel, _)| !rel.ends_with("verified.json") && !rel.ends_with("build.json"))
        .map(|(rel, path)| (rel, std::fs::read(path).unwrap()))
        .collect()
}
