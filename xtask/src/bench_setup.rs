//! `cargo xtask bench-setup`: everything `scripts/bench.sh` starts its processes from, written into
//! one directory: the development keys and their JWKS, token files (the EdDSA one also long enough
//! for the memory row's distinct tokens), the Envoy configuration of
//! every edge setup (see [`crate::bench_envoy`]) and of the fixed-200 upstream, and `bench.env`
//! (issuer, audience and the cached token, for the shell script and the Node seed server).

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use crate::bench_envoy::{
    BenchInputs, BenchPorts, EdgeSetup, edge_config, issuer_and_audience, upstream_config,
};
use crate::bench_tokens::{bench_spec, write_token_file};
use crate::{DevKeys, claims_for};

/// The algorithms measured with a new token on every request.
pub const ALGORITHMS: [&str; 3] = ["RS256", "ES256", "EdDSA"];

pub struct BenchSetup {
    pub root: PathBuf,
    pub out: PathBuf,
    pub ports: BenchPorts,
    pub filter_wasm: PathBuf,
    pub noop_wasm: PathBuf,
    /// Tokens per algorithm file.
    pub tokens: usize,
    /// Distinct tokens the memory row sends (EdDSA, the cheapest to sign and among the cheapest to
    /// verify): the EdDSA file holds at least this many.
    pub rss_tokens: usize,
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("resolving {}", path.display()))
}

impl BenchSetup {
    pub fn run(&self) -> Result<()> {
        std::fs::create_dir_all(&self.out)?;
        let key_file = self.out.join("keys.json");
        let keys = DevKeys::load_or_create(&key_file)?;
        let jwks = keys.jwks()?;
        let jwks_file = absolute(&self.out.join("jwks.json"))?;
        write(&jwks_file, &serde_json::to_string_pretty(&jwks)?)?;

        let base_yaml = std::fs::read_to_string(self.root.join("envoy.yaml"))?;
        let native_chain_yaml = std::fs::read_to_string(self.root.join("bench/native-chain.yaml"))?;
        let (filter_wasm, noop_wasm) = (absolute(&self.filter_wasm)?, absolute(&self.noop_wasm)?);
        let inputs = BenchInputs {
            base_yaml: &base_yaml,
            native_chain_yaml: &native_chain_yaml,
            filter_wasm: &filter_wasm,
            noop_wasm: &noop_wasm,
            jwks: &jwks,
            jwks_file: &jwks_file,
        };
        for setup in EdgeSetup::ALL {
            let path = self.out.join(format!("envoy-{}.yaml", setup.name()));
            write(&path, &edge_config(setup, &inputs, &self.ports)?)?;
        }
        write(
            &self.out.join("envoy-upstream.yaml"),
            &upstream_config(&self.ports),
        )?;

        let (issuer, audience) = issuer_and_audience(&base_yaml)?;
        let spec = bench_spec(&issuer, &audience);
        let cached = keys.sign("RS256", claims_for(&spec))?;
        for alg in ALGORITHMS {
            let path = self.out.join(format!("tokens-{alg}.txt"));
            let count = match alg {
                "EdDSA" => self.tokens.max(self.rss_tokens),
                _ => self.tokens,
            };
            if write_token_file(&keys, &key_file, alg, &spec, count, &path)? {
                println!("wrote {count} {alg} tokens to {}", path.display());
            }
        }
        write(
            &self.out.join("bench.env"),
            &format!(
                "BENCH_ISSUER={issuer}\nBENCH_AUDIENCE={audience}\nBENCH_TENANT={}\nBENCH_CACHED_TOKEN={cached}\n",
                spec.tenant_id
            ),
        )?;
        println!("benchmark setup written to {}", self.out.display());
        Ok(())
    }
}
