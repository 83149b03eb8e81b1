//! The filter's OCI image (`cargo xtask oci`) through a real registry, as Istio and Envoy Gateway
//! would pull it: built twice from the same `.wasm` (same digest, same bytes), pushed with
//! `skopeo` to Debian's `docker-registry` started here on loopback, pulled back by digest, and the
//! `.wasm` that comes out of the pulled layer (extracted with GNU tar, as the fetchers do: the
//! `plugin.wasm` entry of the last layer) started in a real Envoy, whose filter then answers.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use mcp_edge_tests::envoy::EnvoyPorts;
use mcp_edge_tests::procs::{Proc, cargo_bin, filter_wasm, free_port};
use mcp_edge_tests::repo_root;
use mcp_edge_tests::stack::spawn_envoy;
use serde_json::Value as Json;
use xtask::oci_image::{layout_blob, layout_manifest_digest, sha256_digest};

const START_TIMEOUT: Duration = Duration::from_secs(60);
const REPOSITORY: &str = "mcp-edge-filter";
/// What Istio's and Envoy Gateway's image fetchers accept as the compat variant (written out here,
/// not taken from xtask, so a change there cannot move the test with it): an OCI manifest whose
/// last layer has this type and holds `plugin.wasm`, with the variant annotation.
const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const WASM_FILE_NAME: &str = "plugin.wasm";
const VARIANT_ANNOTATION: (&str, &str) = ("module.wasm.image/variant", "compat");

/// Runs `cmd`, failing with its output when it exits non-zero; returns its stdout.
fn run(mut cmd: Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("starting {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} exited with {}:\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// `cargo xtask oci` for the built filter into `out`; the manifest digest it prints.
fn build_layout(out: &Path, tag: &str) -> Result<String> {
    let mut cmd = Command::new(cargo_bin("xtask")?);
    cmd.current_dir(repo_root())
        .arg("oci")
        .arg("--wasm")
        .arg(filter_wasm()?)
        .arg("--out")
        .arg(out)
        .args(["--tag", tag]);
    let digest = run(cmd)?.trim().to_string();
    ensure!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "cargo xtask oci printed {digest:?}, not a digest"
    );
    Ok(digest)
}

/// Every file under `dir` with its bytes, by path relative to `dir`, sorted.
fn tree(dir: &Path) -> Result<Vec<(PathBuf, Vec<u8>)>> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d)? {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push((path.strip_prefix(dir)?.to_path_buf(), std::fs::read(&path)?));
            }
        }
    }
    files.sort();
    Ok(files)
}

#[test]
fn the_image_is_the_same_when_built_twice() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let (one, two) = (tmp.path().join("one"), tmp.path().join("two"));
    let first = build_layout(&one, "repro")?;
    let second = build_layout(&two, "repro")?;
    ensure!(first == second, "two builds: {first} and {second}");
    ensure!(layout_manifest_digest(&one, "repro")? == first);
    let (a, b) = (tree(&one)?, tree(&two)?);
    ensure!(
        a.len() == 5,
        "oci-layout, index.json and three blobs: {a:?}"
    );
    ensure!(a == b, "the two layouts differ in some file");
    Ok(())
}

/// Debian's `docker-registry` (distribution 2.8) on a loopback port, storing into `dir`; killed
/// by its pid when dropped.
struct Registry {
    proc: Proc,
    host: String,
}

impl Registry {
    fn start(dir: &Path) -> Result<Registry> {
        let port = free_port()?;
        let storage = dir.join("storage");
        std::fs::create_dir_all(&storage)?;
        let config = dir.join("registry.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
                 http:\n  addr: 127.0.0.1:{port}\n  secret: test-only-upload-secret\n",
                storage.display()
            ),
        )?;
        let mut cmd = Command::new("docker-registry");
        cmd.arg("serve").arg(&config);
        let mut proc = Proc::spawn("docker-registry", cmd, dir)
            .context("starting docker-registry (scripts/install-deps.sh installs it)")?;
        proc.wait_for_port(([127, 0, 0, 1], port).into(), START_TIMEOUT)?;
        Ok(Registry {
            proc,
            host: format!("127.0.0.1:{port}"),
        })
    }
}

fn skopeo_copy(from: &str, to: &str) -> Result<()> {
    let mut cmd = Command::new("skopeo");
    cmd.args([
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        from,
        to,
    ]);
    run(cmd).context("skopeo (scripts/install-deps.sh installs it)")?;
    Ok(())
}

/// The manifest of `layout` tagged `tag`, with its last layer's blob.
fn manifest_and_last_layer(layout: &Path, digest: &str) -> Result<(Json, Vec<u8>)> {
    let manifest: Json = serde_json::from_slice(&layout_blob(layout, digest)?)?;
    let layer = manifest["layers"]
        .as_array()
        .and_then(|l| l.last())
        .context("the manifest has no layers")?
        .clone();
    ensure!(
        layer["mediaType"] == LAYER_MEDIA_TYPE,
        "last layer {layer}: Istio's and Envoy Gateway's compat path wants {LAYER_MEDIA_TYPE}"
    );
    let blob = layout_blob(
        layout,
        layer["digest"].as_str().context("a layer without digest")?,
    )?;
    Ok((manifest, blob))
}

#[test]
fn the_image_pulled_back_from_a_registry_loads_in_envoy() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let layout = tmp.path().join("layout");
    let tag = "e2e";
    let digest = build_layout(&layout, tag)?;

    let registry = Registry::start(tmp.path())?;
    let remote = format!("docker://{}/{REPOSITORY}", registry.host);
    skopeo_copy(
        &format!("oci:{}:{tag}", layout.display()),
        &format!("{remote}:{tag}"),
    )?;

    // What a fetcher asks the registry for the tag: the same manifest, as an OCI manifest.
    let response = reqwest::blocking::Client::new()
        .get(format!(
            "http://{}/v2/{REPOSITORY}/manifests/{tag}",
            registry.host
        ))
        .header("Accept", MANIFEST_MEDIA_TYPE)
        .send()?;
    ensure!(response.status() == 200, "registry: {}", response.status());
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    ensure!(
        header("docker-content-digest") == digest,
        "the registry serves the tag as {} (built: {digest})",
        header("docker-content-digest")
    );
    ensure!(
        header("content-type") == MANIFEST_MEDIA_TYPE,
        "content type {}",
        header("content-type")
    );
    let served = response.bytes()?;
    ensure!(sha256_digest(&served) == digest);

    // Pulled back by digest, as a WasmPlugin or EnvoyExtensionPolicy pins it.
    let pulled = tmp.path().join("pulled");
    skopeo_copy(
        &format!("{remote}@{digest}"),
        &format!("oci:{}:pulled", pulled.display()),
    )?;
    let pulled_digest = layout_manifest_digest(&pulled, "pulled")?;
    ensure!(
        pulled_digest == digest,
        "pulled {pulled_digest}, pushed {digest}"
    );
    let (manifest, layer) = manifest_and_last_layer(&pulled, &digest)?;
    ensure!(
        manifest["annotations"][VARIANT_ANNOTATION.0] == VARIANT_ANNOTATION.1,
        "the compat annotation is gone: {manifest}"
    );
    let layer_path = tmp.path().join("layer.tar.gz");
    std::fs::write(&layer_path, &layer)?;
    let extracted = tmp.path().join("extracted");
    std::fs::create_dir_all(&extracted)?;
    let mut tar = Command::new("tar");
    tar.arg("-xzf")
        .arg(&layer_path)
        .arg("-C")
        .arg(&extracted)
        .arg(WASM_FILE_NAME);
    run(tar)?;
    let wasm = extracted.join(WASM_FILE_NAME);
    ensure!(
        std::fs::read(&wasm)? == std::fs::read(filter_wasm()?)?,
        "the pulled plugin.wasm is not the built filter"
    );
    drop(registry.proc);

    // Envoy with the repository's envoy.yaml (test ports) loading the pulled .wasm.
    let ports = EnvoyPorts {
        listener: free_port()?,
        recorded_listener: free_port()?,
        baseline_listener: free_port()?,
        admin: free_port()?,
        backend: free_port()?,
        recorder: free_port()?,
        issuer: free_port()?,
        ratelimit: free_port()?,
        otel_collector: None,
    };
    let mut envoy = spawn_envoy(
        "envoy",
        tmp.path(),
        &repo_root().join("envoy.yaml"),
        &ports,
        &wasm,
        &Json::Null,
        "oci-registry-test-gateway-secret-0123456789",
        &Ok,
    )?;
    let client = reqwest::blocking::Client::new();
    let ready = client
        .get(format!("http://127.0.0.1:{}/ready", ports.admin))
        .send()?;
    let status = ready.status();
    let body = ready.text()?;
    ensure!(
        status == 200 && body.trim() == "LIVE",
        "/ready: {status} {body:?}"
    );
    // The filter itself answers the protected resource metadata (RFC 9728): the VM runs.
    let prm = client
        .get(format!(
            "http://127.0.0.1:{}/.well-known/oauth-protected-resource/mcp",
            ports.listener
        ))
        .send()?;
    ensure!(prm.status() == 200, "metadata: {}", prm.status());
    let doc: Json = prm.json()?;
    let resource = format!("http://127.0.0.1:{}/mcp", ports.listener);
    ensure!(doc["resource"] == resource.as_str(), "metadata: {doc}");
    // …and it is the pulled one that Envoy was given.
    let config = std::fs::read_to_string(tmp.path().join("envoy.yaml"))?;
    ensure!(
        config.contains(&format!("filename: {}", wasm.display())),
        "the Envoy configuration does not load {}",
        wasm.display()
    );
    envoy.check_alive()?;
    Ok(())
}
