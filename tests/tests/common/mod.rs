//! Running the `quarry` binary from the end-to-end tests (cli.rs, build.rs,
//! search_dense.rs, search_shell.rs; each declares `mod common;`): the
//! command with quarry's environment variables cleared so a developer's own
//! settings never leak into a test, feeding it stdin, and reporting what it
//! printed when an exit code is not the expected one.
//!
//! Only integration tests of quarry-cli can use it (cargo hands them the
//! binary's path as `CARGO_BIN_EXE_quarry`).

#![allow(dead_code)] // each test file uses its own subset

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

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

/// The quarry binary, none of quarry's environment variables set.
pub fn quarry_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_quarry"));
    for variable in [
        "QUARRY_REGISTRY",
        "QUARRY_HOME",
        "QUARRY_SHARD_ROWS",
        "QUARRY_CHUNK_DOCS",
    ] {
        command.env_remove(variable);
    }
    command
}

/// Runs `command` with `input` on its stdin (then closed), collecting its output.
pub fn output_with_stdin(mut command: Command, input: &str) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("quarry runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Both streams, labelled, for assertion messages.
pub fn output_text(output: &Output) -> String {
    format!("stdout:\n{}\nstderr:\n{}", stdout(output), stderr(output))
}

pub fn assert_exit(output: &Output, code: i32) {
    assert_eq!(output.status.code(), Some(code), "{}", output_text(output));
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
