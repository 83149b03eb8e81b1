//! docker-compose's Envoy configuration (`docker/envoy.yaml`): derived from the repository's
//! `envoy.yaml` by `xtask::docker_envoy` and written by `cargo xtask sync-config`.
//! tests/compose.rs only compares the committed file with that derivation.

pub use xtask::docker_envoy::{WASM_IN_CONTAINER, at, docker_envoy_config, service_of};
