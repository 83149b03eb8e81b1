//! The filter as an OCI image (`cargo xtask oci`): an OCI image layout directory (`oci-layout`,
//! `index.json`, `blobs/sha256/…`) that `skopeo copy oci:<dir>:<tag> docker://…` pushes to any
//! registry, for Istio's `WasmPlugin` and Envoy Gateway's `EnvoyExtensionPolicy` (`type: Image`)
//! to pull by digest.
//!
//! Which format: Istio's image fetcher (`pkg/wasm/imagefetcher.go`) and Envoy Gateway's copy of it
//! (`internal/wasm/imagefetcher.go`) accept three shapes of the solo.io "Wasm image"
//! specification, tried in this order: a Docker schema-2 manifest whose last layer is a Docker
//! tar.gz holding `plugin.wasm`; the *compat* variant, an OCI image manifest whose last layer is
//! `application/vnd.oci.image.layer.v1.tar+gzip` holding `plugin.wasm`; the *oci* variant, exactly
//! two layers, one of them `application/vnd.module.wasm.content.layer.v1+wasm`. Neither accepts
//! the CNCF wasm artifact format (`application/vnd.wasm.config.v1+json` config, `application/wasm`
//! layer): its layer type matches none of the three. The image here is the compat variant: both
//! fetchers take it, it is a plain OCI image every registry and tool (skopeo, crane, containerd)
//! handles, and a Kubernetes image volume can mount it (the plain-Envoy Deployment in deploy/ does:
//! the `.wasm` is too big for a ConfigMap). The spec asks compat images with the OCI layer type to
//! carry the manifest annotation `module.wasm.image/variant: compat`.
//!
//! Reproducible: the layer is made by [`crate::oci_tar`] (no timestamps, fixed owners and gzip
//! header); the config and manifest carry no creation time; JSON is written compactly in a fixed
//! member order. The same `.wasm` gives the same manifest digest, which is what deploy/ pins.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::oci_tar::{fixed_gzip, single_file_tar};

pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// The file in the layer both fetchers look for.
pub const WASM_FILE_NAME: &str = "plugin.wasm";
/// The annotation the compat variant asks for with the OCI layer type.
pub const VARIANT_ANNOTATION: (&str, &str) = ("module.wasm.image/variant", "compat");
/// The annotation of `index.json` naming a manifest's tag (what `oci:<dir>:<tag>` selects).
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

/// The platform written into the image config. The fetchers of Istio and Envoy Gateway ignore it;
/// a Kubernetes image volume pulls only images of its node's platform.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Platform {
    pub os: &'static str,
    pub architecture: &'static str,
}

impl Platform {
    pub const LINUX_AMD64: Platform = Platform {
        os: "linux",
        architecture: "amd64",
    };
    pub const LINUX_ARM64: Platform = Platform {
        os: "linux",
        architecture: "arm64",
    };

    /// `amd64` or `arm64` (the node architectures an image volume may run on).
    pub fn linux(architecture: &str) -> Result<Platform> {
        match architecture {
            "amd64" => Ok(Self::LINUX_AMD64),
            "arm64" => Ok(Self::LINUX_ARM64),
            other => bail!("unknown architecture {other:?}: amd64 or arm64"),
        }
    }
}

/// The image: its blobs by digest, its manifest's digest and the layout's `index.json`.
pub struct OciImage {
    pub blobs: BTreeMap<String, Vec<u8>>,
    /// `sha256:<hex>` of the manifest: what a `WasmPlugin` or `EnvoyExtensionPolicy` pins.
    pub manifest_digest: String,
    pub index_json: Vec<u8>,
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

fn descriptor(media_type: &str, bytes: &[u8]) -> Value {
    json!({"mediaType": media_type, "digest": sha256_digest(bytes), "size": bytes.len()})
}

impl OciImage {
    /// The image of `wasm`, tagged `tag` in the layout's index.
    pub fn build(wasm: &[u8], tag: &str, platform: Platform) -> Result<OciImage> {
        if !wasm.starts_with(b"\0asm") {
            bail!("not a WebAssembly module (no \\0asm magic)");
        }
        let tar = single_file_tar(WASM_FILE_NAME, wasm)?;
        let layer = fixed_gzip(&tar)?;
        let config = serde_json::to_vec(&json!({
            "architecture": platform.architecture,
            "os": platform.os,
            "rootfs": {"type": "layers", "diff_ids": [sha256_digest(&tar)]},
        }))?;
        let mut layer_descriptor = descriptor(LAYER_MEDIA_TYPE, &layer);
        layer_descriptor["annotations"] = json!({"org.opencontainers.image.title": WASM_FILE_NAME});
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": descriptor(CONFIG_MEDIA_TYPE, &config),
            "layers": [layer_descriptor],
            "annotations": {VARIANT_ANNOTATION.0: VARIANT_ANNOTATION.1},
        }))?;
        let mut manifest_descriptor = descriptor(MANIFEST_MEDIA_TYPE, &manifest);
        manifest_descriptor["annotations"] = json!({REF_NAME_ANNOTATION: tag});
        let index_json = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": INDEX_MEDIA_TYPE,
            "manifests": [manifest_descriptor],
        }))?;
        let manifest_digest = sha256_digest(&manifest);
        let blobs = [config, layer, manifest]
            .into_iter()
            .map(|blob| (sha256_digest(&blob), blob))
            .collect();
        Ok(OciImage {
            blobs,
            manifest_digest,
            index_json,
        })
    }

    /// Writes the layout to `dir`, replacing whatever was there.
    pub fn write_layout(&self, dir: &Path) -> Result<()> {
        if dir.exists() {
            std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        let blob_dir = dir.join("blobs").join("sha256");
        std::fs::create_dir_all(&blob_dir)
            .with_context(|| format!("creating {}", blob_dir.display()))?;
        std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        std::fs::write(dir.join("index.json"), &self.index_json)?;
        for (digest, blob) in &self.blobs {
            let hex = digest
                .strip_prefix("sha256:")
                .context("a digest without sha256:")?;
            std::fs::write(blob_dir.join(hex), blob)?;
        }
        Ok(())
    }
}

/// The digest of the manifest tagged `tag` in the layout at `dir` (as skopeo wrote it, say).
pub fn layout_manifest_digest(dir: &Path, tag: &str) -> Result<String> {
    let index: Value = serde_json::from_slice(
        &std::fs::read(dir.join("index.json"))
            .with_context(|| format!("reading {}/index.json", dir.display()))?,
    )?;
    index["manifests"]
        .as_array()
        .context("index.json has no manifests")?
        .iter()
        .find(|m| m["annotations"][REF_NAME_ANNOTATION].as_str() == Some(tag))
        .and_then(|m| m["digest"].as_str())
        .map(str::to_owned)
        .with_context(|| format!("index.json names no manifest tagged {tag:?}"))
}

/// A blob of the layout at `dir`, checked against its digest.
pub fn layout_blob(dir: &Path, digest: &str) -> Result<Vec<u8>> {
    let hex = digest
        .strip_prefix("sha256:")
        .with_context(|| format!("not a sha256 digest: {digest}"))?;
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("not a sha256 digest: {digest}");
    }
    let blob = std::fs::read(dir.join("blobs").join("sha256").join(hex))
        .with_context(|| format!("reading blob {digest}"))?;
    if sha256_digest(&blob) != digest {
        bail!("blob {digest} does not hash to its name");
    }
    Ok(blob)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_non_wasm_file_is_refused() {
        let err = OciImage::build(b"ELF", "t", Platform::LINUX_AMD64)
            .err()
            .unwrap();
        assert!(
            err.to_string().contains("not a WebAssembly module"),
            "{err}"
        );
    }

    #[test]
    fn the_manifest_is_the_compat_variant_with_one_tar_gzip_layer() {
        let image = OciImage::build(b"\0asm\x01\0\0\0", "0.1.0", Platform::LINUX_AMD64).unwrap();
        let manifest: Value = serde_json::from_slice(&image.blobs[&image.manifest_digest]).unwrap();
        assert_eq!(manifest["mediaType"], MANIFEST_MEDIA_TYPE);
        assert_eq!(manifest["config"]["mediaType"], CONFIG_MEDIA_TYPE);
        let layers = manifest["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 1);
        assert_eq!(layers[0]["mediaType"], LAYER_MEDIA_TYPE);
        assert_eq!(
            manifest["annotations"]["module.wasm.image/variant"],
            "compat"
        );
        assert_eq!(image.blobs.len(), 3, "config, layer, manifest");
    }

    #[test]
    fn another_wasm_or_platform_gives_another_digest() {
        let one = OciImage::build(b"\0asm\x01", "t", Platform::LINUX_AMD64).unwrap();
        let two = OciImage::build(b"\0asm\x02", "t", Platform::LINUX_AMD64).unwrap();
        let arm = OciImage::build(b"\0asm\x01", "t", Platform::LINUX_ARM64).unwrap();
        assert_ne!(one.manifest_digest, two.manifest_digest);
        assert_ne!(one.manifest_digest, arm.manifest_digest);
    }
}
