//! docs/signature-vectors.json is what the contract makes now, and the verifiers a server author
//! copies (docs/verify/verify_gateway.mjs and .py) give the contract's verdict on every check:
//! the same identity for a request the edge signed, the same refusal for a changed one.
//! Node and Python run as processes on the committed file: the repository's `.venv/bin/node` and
//! `.venv/bin/python3` (scripts/install-deps.sh) when present, as the end-to-end harness does,
//! else `node` and `python3` on PATH.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use xtask::signature_vectors::{SIGNATURE_VECTORS_JSON, render};
use xtask::sync_config::{repo_root, stale_files};

#[test]
fn committed_vectors_are_what_the_contract_makes() {
    let generated = render().expect("the contract makes the vectors");
    assert_eq!(
        stale_files(&repo_root(), &[generated]),
        Vec::<&str>::new(),
        "run `cargo xtask signature-vectors`"
    );
}

fn committed_vectors() -> Value {
    let path = repo_root().join(SIGNATURE_VECTORS_JSON);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).expect("the vectors are JSON")
}

/// The repository's `.venv/bin/<name>` if it exists, else `name` from PATH.
fn venv_or_path(name: &str) -> PathBuf {
    let venv = repo_root().join(".venv/bin").join(name);
    if venv.exists() {
        venv
    } else {
        PathBuf::from(name)
    }
}

/// Runs `program driver vectors` and checks the verdict it prints for each check.
fn verifier_agrees(program: &str, driver: &str) {
    let root = repo_root();
    let output = Command::new(venv_or_path(program))
        .arg(Path::new("xtask/tests/verifiers").join(driver))
        .arg(SIGNATURE_VECTORS_JSON)
        .current_dir(&root)
        .output()
        .unwrap_or_else(|e| panic!("starting {program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {driver}: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let verdicts: Vec<Value> =
        serde_json::from_slice(&output.stdout).expect("the driver prints a JSON array");
    let vectors = committed_vectors();
    let checks = vectors["checks"].as_array().expect("checks");
    assert!(checks.len() >= 20, "too few checks: {}", checks.len());
    assert_eq!(
        verdicts.len(),
        checks.len(),
        "{program}: one verdict per check"
    );
    let accepted = checks.iter().filter(|c| c["expect"]["ok"] == true).count();
    assert!(
        accepted >= 6 && accepted < checks.len(),
        "accepted and refused checks"
    );
    for (verdict, check) in verdicts.iter().zip(checks) {
        assert_eq!(verdict["name"], check["name"], "{program}: order");
        assert_eq!(
            verdict["verdict"], check["expect"],
            "{program} {driver}: check {}",
            check["name"]
        );
    }
}

#[test]
fn node_verifier_agrees_with_the_contract() {
    verifier_agrees("node", "run_vectors.mjs");
}

#[test]
fn python_verifier_agrees_with_the_contract() {
    verifier_agrees("python3", "run_vectors.py");
}
