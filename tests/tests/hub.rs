//! `--model hf:ORG/NAME[@REV]`: models fetched by hub id into the Hugging Face
//! cache, against a hub on 127.0.0.1 (`common/hub_server.rs`) serving the tiny
//! repo that `tests/fixtures/hub/make_hub_fixture.py` made (sharded
//! safetensors, tokenizer, sentence-transformers files, and a pickle, an ONNX
//! export and a README that must not be fetched). No test reaches anything
//! but the loopback address.

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{quarry_at_home, read_json, repo_root, run, Ran, Stream::*};
use hub_server::{closed_endpoint, HubRepo, HubServer};

mod common;
#[path = "common/http_request.rs"]
mod http_request;
#[path = "common/hub_server.rs"]
mod hub_server;
mod tiny_fixtures;

const COMMIT: &str = "3f1c0ffee0ddba11c0de5eed0123456789abcdef";

fn fixture_repo() -> PathBuf {
    repo_root().join("tests/fixtures/hub/tiny-bert")
}

/// quarry in `home`, its Hugging Face home `hf_home`, talking to `endpoint`;
/// every other hub variable cleared.
fn quarry_hub(home: &Path, hf_home: &Path, endpoint: &str) -> Command {
    let mut command = quarry_at_home(home);
    for variable in [
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "HF_TOKEN_PATH",
        "HF_HUB_CACHE",
        "HF_HUB_OFFLINE",
    ] {
        command.env_remove(variable);
    }
    command.env("HF_HOME", hf_home).env("HF_ENDPOINT", endpoint);
    command
}

fn build(command: Command, model: &str, data: &Path) -> Ran {
    run(
        command,
        &[
            "build",
            "--model",
            model,
            "--dataset",
            data.to_str().unwrap(),
        ],
    )
}

#[test]
fn a_hub_model_builds_then_builds_again_from_the_cache_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_fixtures::tiny_dataset(tmp.path(), 40);
    let (home, hf_home) = (tmp.path().join("home"), tmp.path().join("hf"));
    let server = HubServer::start(vec![HubRepo::new("org/tiny-bert", &fixture_repo(), COMMIT)]);

    let first = build(
        quarry_hub(&home, &hf_home, &server.endpoint()),
        "hf:org/tiny-bert",
        &data,
    );
    first
        .ok()
        .has(
            Stderr,
            &[&format!("model hf:org/tiny-bert@main is commit {COMMIT}")],
        )
        .has(Stdout, &["built dense:tiny-bert for tiny"]);

    // The standard cache layout, as huggingface_hub reads it.
    let repo_dir = hf_home.join("hub/models--org--tiny-bert");
    assert_eq!(
        std::fs::read_to_string(repo_dir.join("refs/main"))
            .unwrap()
            .trim(),
        COMMIT
    );
    let snapshot = repo_dir.join("snapshots").join(COMMIT);
    for file in [
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "modules.json",
        "sentence_bert_config.json",
        "config_sentence_transformers.json",
        "1_Pooling/config.json",
        "model.safetensors.index.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ] {
        let path = snapshot.join(file);
        assert!(path.is_file(), "{} missing", path.display());
        assert_eq!(
            std::fs::read(&path).unwrap(),
            std::fs::read(fixture_repo().join(file)).unwrap(),
            "{file}"
        );
    }
    let fetched = server.seen();
    for never in ["pytorch_model.bin", "onnx/model.onnx", "README.md"] {
        assert!(!snapshot.join(never).exists(), "{never} was fetched");
        assert!(
            !fetched.iter().any(|p| p.ends_with(never)),
            "{never} was asked for: {fetched:?}"
        );
    }
    assert!(!repo_dir.join("refs").join(COMMIT).exists());

    // build.json records the repo, the revision asked for and its commit,
    // and the commit is part of the fingerprint.
    let info = read_json(&home.join("dense/tiny-bert@tiny/build.json"));
    assert_eq!(info["encoder"]["hub"]["repo"], "org/tiny-bert");
    assert_eq!(info["encoder"]["hub"]["revision"], "main");
    assert_eq!(info["encoder"]["hub"]["commit"], COMMIT);
    let description = info["fingerprint_description"].as_str().unwrap();
    assert!(
        description.contains(&format!("hub_commit {COMMIT}\n")),
        "{description}"
    );

    // Queries of a new search are encoded from the cached snapshot.
    let mut eval = quarry_hub(&home, &hf_home, &closed_endpoint());
    eval.env("HF_HUB_OFFLINE", "1");
    run(
        eval,
        &[
            "eval",
            "--dataset",
            data.to_str().unwrap(),
            "--retriever",
            "dense:tiny-bert",
        ],
    )
    .ok();

    // Offline: the cache alone resolves main, and the index is current.
    let mut offline = quarry_hub(&home, &hf_home, &closed_endpoint());
    offline.env("HF_HUB_OFFLINE", "1");
    build(offline, "hf:org/tiny-bert", &data)
        .ok()
        .has(Stderr, &["HF_HUB_OFFLINE is set", COMMIT])
        .has(Stdout, &["up to date: dense:tiny-bert"]);

    // An endpoint that does not answer: the cached snapshot serves, and says so.
    build(
        quarry_hub(&home, &hf_home, &closed_endpoint()),
        "org/tiny-bert",
        &data,
    )
    .ok()
    .has(Stderr, &["could not be reached", COMMIT])
    .has(Stdout, &["up to date: dense:tiny-bert"]);

    // Online again, pinned to the commit: resolved, nothing downloaded.
    let before = server.seen().len();
    build(
        quarry_hub(&home, &hf_home, &server.endpoint()),
        &format!("org/tiny-bert@{COMMIT}"),
        &data,
    )
    .ok()
    .has(Stderr, &["files already in the cache"])
    .has(Stdout, &["up to date: dense:tiny-bert"]);
    let later: Vec<String> = server.seen()[before..].to_vec();
    assert!(
        later.iter().all(|p| p.starts_with("/api/models/")),
        "{later:?}"
    );

    // A blob removed from under its snapshot link is fetched again.
    let shard = snapshot.join("model-00002-of-00002.safetensors");
    std::fs::remove_file(std::fs::canonicalize(&shard).unwrap()).unwrap();
    build(
        quarry_hub(&home, &hf_home, &server.endpoint()),
        "hf:org/tiny-bert",
        &data,
    )
    .ok()
    .has(Stderr, &["1 of 11 files downloaded"])
    .has(Stdout, &["up to date: dense:tiny-bert"]);
    assert_eq!(
        std::fs::read(&shard).unwrap(),
        std::fs::read(fixture_repo().join("model-00002-of-00002.safetensors")).unwrap()
    );
}

#[test]
fn a_local_folder_wins_over_a_hub_id_of_the_same_spelling() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_fixtures::tiny_dataset(tmp.path(), 20);
    let local = tmp.path().join("org/tiny-bert");
    std::fs::create_dir_all(local.parent().unwrap()).unwrap();
    let model = tiny_fixtures::tiny_model(local.parent().unwrap());
    assert_eq!(model, local);
    let mut command = quarry_hub(
        &tmp.path().join("home"),
        &tmp.path().join("hf"),
        &closed_endpoint(),
    );
    command.current_dir(tmp.path());
    let built = build(command, "org/tiny-bert", &data);
    built
        .ok()
        .lacks(Stderr, &["model hf:"])
        .has(Stdout, &["built dense:tiny-bert"]);
    let info = read_json(&tmp.path().join("home/dense/tiny-bert@tiny/build.json"));
    assert!(info["encoder"].get("hub").is_none(), "{info}");
    assert!(!tmp.path().join("hf").exists());
}

#[test]
fn a_repo_the_hub_does_not_have_fails_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_fixtures::tiny_dataset(tmp.path(), 10);
    let server = HubServer::start(vec![HubRepo::new("org/tiny-bert", &fixture_repo(), COMMIT)]);
    let (home, hf_home) = (tmp.path().join("home"), tmp.path().join("hf"));
    for model in ["hf:org/no-such-model", "org/no-such-model"] {
        build(
            quarry_hub(&home, &hf_home, &server.endpoint()),
            model,
            &data,
        )
        .exit(1)
        .has(
            Stderr,
            &[
                "Hugging Face model org/no-such-model",
                "no such model repository",
            ],
        );
    }
    // Written without `hf:`, it may have been meant as a local path: say none exists.
    build(
        quarry_hub(&home, &hf_home, &server.endpoint()),
        "org/no-such-model",
        &data,
    )
    .exit(1)
    .has(
        Stderr,
        &["nor is `org/no-such-model` a local file or folder"],
    );
    // A revision the repo does not have.
    build(
        quarry_hub(&home, &hf_home, &server.endpoint()),
        "hf:org/tiny-bert@v9",
        &data,
    )
    .exit(1)
    .has(Stderr, &["org/tiny-bert", "revision `v9`"]);
    // Offline with nothing cached.
    let mut offline = quarry_hub(&home, &hf_home, &server.endpoint());
    offline.env("HF_HUB_OFFLINE", "1");
    build(offline, "hf:org/tiny-bert", &data).exit(1).has(
        Stderr,
        &["org/tiny-bert", "HF_HUB_OFFLINE", "no complete snapshot"],
    );
    // Unreachable with nothing cached.
    build(
        quarry_hub(&home, &hf_home, &closed_endpoint()),
        "hf:org/tiny-bert",
        &data,
    )
    .exit(1)
    .has(
        Stderr,
        &["org/tiny-bert", "could not be reached", "no snapshot"],
    );
    // A malformed hub id is a usage error.
    build(
        quarry_hub(&home, &hf_home, &server.endpoint()),
        "hf:a/b/c",
        &data,
    )
    .exit(2)
    .has(Stderr, &["hf:a/b/c"]);
    assert!(!home.join("dense").exists());
}

#[test]
fn missing_files_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_fixtures::tiny_dataset(tmp.path(), 10);
    let mut broken = HubRepo::new("org/broken-upload", &fixture_repo(), COMMIT);
    broken.missing = vec!["model-00002-of-00002.safetensors".into()];
    let mut unlisted = HubRepo::new("org/half-sharded", &fixture_repo(), COMMIT);
    unlisted.unlisted = vec!["model-00002-of-00002.safetensors".into()];
    let pickle_only = tmp.path().join("pickle-only");
    std::fs::create_dir_all(&pickle_only).unwrap();
    for file in ["config.json", "tokenizer.json", "pytorch_model.bin"] {
        std::fs::copy(fixture_repo().join(file), pickle_only.join(file)).unwrap();
    }
    let pickle = HubRepo::new("org/pickle-only", &pickle_only, COMMIT);
    let server = HubServer::start(vec![broken, unlisted, pickle]);
    let (home, hf_home) = (tmp.path().join("home"), tmp.path().join("hf"));
    let hub = || quarry_hub(&home, &hf_home, &server.endpoint());

    build(hub(), "hf:org/broken-upload", &data).exit(1).has(
        Stderr,
        &[
            "org/broken-upload",
            "no model-00002-of-00002.safetensors at commit",
        ],
    );
    build(hub(), "hf:org/half-sharded", &data).exit(1).has(
        Stderr,
        &[
            "org/half-sharded",
            "names the shard model-00002-of-00002.safetensors, which the repository does not have",
        ],
    );
    build(hub(), "hf:org/pickle-only", &data).exit(1).has(
        Stderr,
        &[
            "org/pickle-only",
            "no model.safetensors",
            "pytorch_model.bin",
        ],
    );
    assert!(!hf_home
        .join("hub/models--org--pickle-only/snapshots")
        .join(COMMIT)
        .join("pytorch_model.bin")
        .exists());
}
