//! docs/assertion-vectors.json is what the contract makes now, and every verifier of the identity
//! assertion gives the verdict each check expects: the Rust one (`mcp-edge-trust`, which the
//! backend runs, over the contract's `AssertionVerifier`) and the ones a service author copies
//! (docs/verify/verify_identity.py with PyJWT, docs/verify/verify_identity.mjs with `jose`).
//! Node and Python run as processes on the committed file: the repository's `.venv/bin/node` and
//! `.venv/bin/python3` (scripts/install-deps.sh) when present, as the end-to-end harness does,
//! else `node` and `python3` on PATH.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use mcp_edge_contract::AssertionError;
use mcp_edge_trust::{Rejection, Trust};
use serde_json::{Value, json};
use xtask::assertion_vectors::{ASSERTION_VECTORS_JSON, render};
use xtask::sync_config::{repo_root, stale_files};

#[test]
fn committed_vectors_are_what_the_contract_makes() {
    let generated = render().expect("the contract makes the vectors");
    assert_eq!(
        stale_files(&repo_root(), &[generated]),
        Vec::<&str>::new(),
        "run `cargo xtask assertion-vectors`"
    );
}

fn committed_vectors() -> Value {
    let path = repo_root().join(ASSERTION_VECTORS_JSON);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).expect("the vectors are JSON")
}

/// Each verifier's verdicts, `{"name", "verdict", "why"?}` in the order of the checks, against
/// what the checks expect.
fn agrees(verifier: &str, verdicts: &[Value]) {
    let vectors = committed_vectors();
    let checks = vectors["checks"].as_array().expect("checks");
    assert!(checks.len() >= 20, "too few checks: {}", checks.len());
    assert_eq!(
        verdicts.len(),
        checks.len(),
        "{verifier}: one verdict per check"
    );
    let accepted = checks.iter().filter(|c| c["expect"]["ok"] == true).count();
    assert!(
        accepted >= 6 && accepted + 15 <= checks.len(),
        "accepted and refused checks"
    );
    let wrong: Vec<String> = verdicts
        .iter()
        .zip(checks)
        .filter(|(verdict, check)| {
            verdict["name"] != check["name"] || verdict["verdict"] != check["expect"]
        })
        .map(|(verdict, check)| {
            format!(
                "{}: expected {}, got {} {}",
                check["name"], check["expect"], verdict["verdict"], verdict["why"]
            )
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{verifier} disagrees with {} check(s):\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// The Rust verifier's verdict on one check: `Trust::verify_parts` on the request it describes.
fn rust_verdict(check: &Value) -> Value {
    let text = |key: &str| check[key].as_str().unwrap_or_else(|| panic!("{key}"));
    let mut request = http::Request::builder()
        .method(text("method"))
        .uri(text("path"));
    for (name, value) in check["headers"].as_object().expect("headers") {
        request = request.header(name, value.as_str().expect("a header value"));
    }
    let (parts, ()) = request.body(()).expect("a request").into_parts();
    let now = check["now"].as_u64().expect("now");
    let trust = Trust::new(text("secret").as_bytes(), text("issuer"), text("audience"))
        .expect("a secret long enough")
        .with_clock(Arc::new(move || now));
    match trust.verify_parts(&parts, text("body").as_bytes()) {
        Ok(vouched) => json!({"name": check["name"], "verdict": {
            "ok": true,
            "identity": {
                "tenant_id": vouched.identity.tenant_id,
                "user_id": vouched.identity.user_id,
                "scopes": vouched.identity.scopes,
                "data_scope": vouched.identity.data_scope,
                "tier": vouched.identity.tier.name(),
            },
            "request_id": vouched.request_id,
        }}),
        Err(rejection) => {
            let (error, claim) = match &rejection {
                Rejection::Missing => ("missing_header", None),
                Rejection::ContractV2 => ("contract_v2", None),
                Rejection::Assertion(AssertionError::Mismatch(claim)) => ("mismatch", Some(*claim)),
                Rejection::Assertion(_) => ("invalid_token", None),
                _ => ("other", None),
            };
            json!({
                "name": check["name"],
                "verdict": {"ok": false, "error": error, "claim": claim},
                "why": rejection.to_string(),
            })
        }
    }
}

#[test]
fn rust_verifier_agrees_with_the_vectors() {
    let vectors = committed_vectors();
    let verdicts: Vec<Value> = vectors["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(rust_verdict)
        .collect();
    agrees("mcp-edge-trust", &verdicts);
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
fn process_agrees(program: &str, driver: &str) {
    let output = Command::new(venv_or_path(program))
        .arg(Path::new("xtask/tests/verifiers").join(driver))
        .arg(ASSERTION_VECTORS_JSON)
        .current_dir(repo_root())
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
    agrees(&format!("{program} {driver}"), &verdicts);
}

#[test]
fn node_verifier_agrees_with_the_vectors() {
    process_agrees("node", "run_vectors.mjs");
}

#[test]
fn python_verifier_agrees_with_the_vectors() {
    process_agrees("python3", "run_vectors.py");
}
