//! Token files for the side-by-side benchmark (`scripts/bench.sh`): one token per line, each with
//! its own `sub`, so a setup that must verify a new token on every request never meets one twice
//! (wrk's script cycles through the file and reports when it ran past its end).
//!
//! Signing thousands of RS256 tokens takes a while, so a file is reused while it is fresh (its
//! tokens live two days; it is remade after twelve hours), long enough, newer than the keys, and
//! made for the same claims (a `.spec` file beside it names them).

use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, Result};

use crate::{DevKeys, TokenSpec, claims_for};

/// How long the benchmark's tokens are valid.
pub const TOKEN_TTL_SECONDS: u64 = 2 * 24 * 3600;

/// A token file older than this is made again.
const REUSE_FOR: Duration = Duration::from_secs(12 * 3600);

/// The claims of every benchmark token (`sub` varies): a pro tenant allowed to read projects and to
/// create projects and tasks (the end-to-end rows seed 20 projects and measure `create_task`).
pub fn bench_spec(issuer: &str, audience: &str) -> TokenSpec {
    TokenSpec {
        issuer: issuer.to_string(),
        audience: audience.to_string(),
        tenant_id: "tenant-bench".into(),
        sub: "bench-user".into(),
        scope: "mcp:read mcp:write".into(),
        tier: "pro".into(),
        data_scope: None,
        allowed_tools: Some(vec![
            "list_projects".into(),
            "get_project".into(),
            "create_project".into(),
            "create_task".into(),
        ]),
        ttl_seconds: TOKEN_TTL_SECONDS,
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// What a token file was made for, written beside it.
fn spec_path(path: &Path) -> std::path::PathBuf {
    path.with_extension("spec")
}

fn spec_text(alg: &str, spec: &TokenSpec) -> String {
    format!("{alg} {spec:?}\n")
}

/// Whether `path` already holds `count` fresh tokens for `spec`, signed by the keys of `key_file`.
fn reusable(path: &Path, key_file: &Path, count: usize, spec: &str) -> bool {
    if std::fs::read_to_string(spec_path(path)).ok().as_deref() != Some(spec) {
        return false;
    }
    let (Some(made), Some(keys_made)) = (modified(path), modified(key_file)) else {
        return false;
    };
    let fresh = made
        .elapsed()
        .is_ok_and(|age| age < REUSE_FOR && made >= keys_made);
    fresh
        && std::fs::read_to_string(path)
            .is_ok_and(|text| text.lines().filter(|l| !l.is_empty()).count() >= count)
}

/// Writes `count` tokens signed with `alg` to `path` unless a reusable file is there; returns
/// whether it wrote. Signs on every core.
pub fn write_token_file(
    keys: &DevKeys,
    key_file: &Path,
    alg: &str,
    spec: &TokenSpec,
    count: usize,
    path: &Path,
) -> Result<bool> {
    let stamp = spec_text(alg, spec);
    if reusable(path, key_file, count, &stamp) {
        return Ok(false);
    }
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let per_thread = count.div_ceil(threads);
    let chunks: Vec<Result<Vec<String>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    let start = t * per_thread;
                    (start..count.min(start + per_thread))
                        .map(|i| {
                            let mut spec = spec.clone();
                            spec.sub = format!("{}-{i}", spec.sub);
                            keys.sign(alg, claims_for(&spec))
                        })
                        .collect::<Result<Vec<_>>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a signing thread panicked")))
            })
            .collect()
    });
    let mut text = String::new();
    for chunk in chunks {
        for token in chunk? {
            text.push_str(&token);
            text.push('\n');
        }
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    std::fs::write(spec_path(path), stamp)?;
    Ok(true)
}
