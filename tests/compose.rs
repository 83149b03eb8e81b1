//! docker-compose.yml checked without a Docker engine: docker/envoy.yaml is exactly what
//! `compose::docker_envoy_config` derives from envoy.yaml, every mounted path and build file exists
//! (or is the filter the build produces), ports and addresses agree with envoy.yaml, and every
//! image is pinned. `cargo xtask sync-config` writes docker/envoy.yaml; this test never does.

use std::path::Path;

use anyhow::{Context as _, Result, bail, ensure};
use mcp_edge_tests::compose::{WASM_IN_CONTAINER, at, docker_envoy_config, service_of};
use mcp_edge_tests::repo_root;
use serde_json::Value as Json;
use serde_yaml::Value;

fn read(rel: &str) -> Result<String> {
    std::fs::read_to_string(repo_root().join(rel)).with_context(|| format!("reading {rel}"))
}

fn yaml(rel: &str) -> Result<Value> {
    Ok(serde_yaml::from_str(&read(rel)?)?)
}

fn compose() -> Result<Value> {
    yaml("docker-compose.yml")
}

fn service<'a>(compose: &'a mut Value, name: &str) -> Result<&'a mut Value> {
    at(compose, &["services", name])
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| {
            s.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Every port a service publishes, as `host_ip:published:target` (the short syntax as written),
/// from the short syntax (`"127.0.0.1:8080:8080"`, or a bare number) and the long one (a mapping
/// of `target`, `published`, `host_ip`), so that no entry escapes the loopback check: a long entry
/// without `host_ip` reads `:8080:8080`, a bare number `8080`.
fn published_ports(svc: &Value) -> Result<Vec<String>> {
    let Some(entries) = svc.get("ports") else {
        return Ok(Vec::new());
    };
    let scalar = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    entries
        .as_sequence()
        .with_context(|| format!("ports is not a list: {entries:?}"))?
        .iter()
        .map(|entry| match entry {
            Value::Mapping(m) => {
                let field = |k: &str| m.get(k).and_then(scalar).unwrap_or_default();
                Ok(format!(
                    "{}:{}:{}",
                    field("host_ip"),
                    field("published"),
                    field("target")
                ))
            }
            other => {
                scalar(other).with_context(|| format!("a ports entry of no known shape: {other:?}"))
            }
        })
        .collect()
}

fn env(svc: &Value, key: &str) -> Result<String> {
    svc.get("environment")
        .and_then(|e| e.get(key))
        .and_then(Value::as_str)
        .map(str::to_string)
        .with_context(|| format!("no environment {key}"))
}

/// The filter's plugin configuration (JSON) of an Envoy config.
fn plugin(envoy: &mut Value) -> Result<Json> {
    let text = at(
        envoy,
        &[
            "static_resources",
            "listeners",
            "0",
            "filter_chains",
            "0",
            "filters",
            "0",
            "typed_config",
            "http_filters",
            "0",
            "typed_config",
            "config",
            "configuration",
            "value",
        ],
    )?
    .as_str()
    .context("plugin configuration is not a string")?
    .to_string();
    Ok(serde_json::from_str(&text)?)
}

fn port_of(v: &mut Value, path: &[&str]) -> Result<u64> {
    at(v, path)?.as_u64().context("port is not a number")
}

fn cluster<'a>(envoy: &'a mut Value, name: &str) -> Result<&'a mut Value> {
    at(envoy, &["static_resources", "clusters"])?
        .as_sequence_mut()
        .context("clusters")?
        .iter_mut()
        .find(|c| c.get("name").and_then(Value::as_str) == Some(name))
        .with_context(|| format!("no cluster {name}"))
}

const ENDPOINT: &[&str] = &[
    "load_assignment",
    "endpoints",
    "0",
    "lb_endpoints",
    "0",
    "endpoint",
    "address",
    "socket_address",
];

/// The port of a URL such as `http://127.0.0.1:9100/mcp`.
fn url_port(url: &str) -> Result<u64> {
    let rest = url.split("://").nth(1).context("no scheme")?;
    let authority = rest.split('/').next().unwrap_or_default();
    Ok(authority.rsplit(':').next().context("no port")?.parse()?)
}

/// The long syntax and bare numbers are read too (they were skipped once, so a port published on
/// every interface in the long syntax passed the loopback check).
#[test]
fn published_ports_reads_every_syntax() -> Result<()> {
    let svc: Value = serde_yaml::from_str(
        "ports:
  - \"127.0.0.1:8080:8080\"
  - 9901
  - { target: 9100, published: 9100 }
  - { target: 6379, published: \"6379\", host_ip: 127.0.0.1, protocol: tcp }",
    )?;
    ensure!(
        published_ports(&svc)?
            == [
                "127.0.0.1:8080:8080",
                "9901",
                ":9100:9100",
                "127.0.0.1:6379:6379"
            ],
        "{:?}",
        published_ports(&svc)?
    );
    Ok(())
}

#[test]
fn docker_envoy_yaml_is_derived_from_envoy_yaml() -> Result<()> {
    let derived = docker_envoy_config(&read("envoy.yaml")?)?;
    ensure!(
        read("docker/envoy.yaml")? == derived,
        "docker/envoy.yaml is not what envoy.yaml derives: run `cargo xtask sync-config`"
    );
    Ok(())
}

#[test]
fn mounted_and_built_paths_exist() -> Result<()> {
    let root = repo_root();
    let mut envoy_yaml = yaml("envoy.yaml")?;
    // The one path that the build produces rather than the repository holds.
    let wasm_built = at(
        &mut envoy_yaml,
        &[
            "static_resources",
            "listeners",
            "0",
            "filter_chains",
            "0",
            "filters",
            "0",
            "typed_config",
            "http_filters",
            "0",
            "typed_config",
            "config",
            "vm_config",
            "code",
            "local",
            "filename",
        ],
    )?
    .as_str()
    .context("wasm filename")?
    .to_string();
    let mut compose = compose()?;
    let services = at(&mut compose, &["services"])?
        .as_mapping()
        .context("services")?
        .clone();
    for (name, svc) in &services {
        let name = name.as_str().unwrap_or_default();
        if let Some(build) = svc.get("build") {
            let context = build
                .get("context")
                .and_then(Value::as_str)
                .context("build.context")?;
            let dockerfile = build
                .get("dockerfile")
                .and_then(Value::as_str)
                .unwrap_or("Dockerfile");
            let file = root.join(context).join(dockerfile);
            ensure!(file.is_file(), "{name}: {} is missing", file.display());
            // Every COPY source of the Dockerfile exists in the context.
            for line in std::fs::read_to_string(&file)?.lines() {
                let words: Vec<&str> = line.split_whitespace().collect();
                if words.first() == Some(&"COPY") && !line.contains("--from=") {
                    for src in &words[1..words.len().saturating_sub(1)] {
                        let p = root.join(context).join(src);
                        ensure!(p.exists(), "{name}: COPY {src}: {} is missing", p.display());
                    }
                }
            }
        }
        for volume in strings(svc.get("volumes").unwrap_or(&Value::Null)) {
            let Some(src) = volume.split(':').next().filter(|s| s.starts_with("./")) else {
                continue; // a named volume
            };
            let rel = src.trim_start_matches("./");
            ensure!(
                root.join(rel).exists() || rel == wasm_built,
                "{name} mounts {src}, which does not exist and is no build output"
            );
        }
    }
    // Envoy's mounts are where its command and docker/envoy.yaml look.
    let envoy = service(&mut compose, "envoy")?;
    let volumes = strings(envoy.get("volumes").unwrap_or(&Value::Null));
    let command = strings(envoy.get("command").unwrap_or(&Value::Null));
    let config_at = command
        .iter()
        .skip_while(|a| *a != "-c")
        .nth(1)
        .context("envoy command has no -c")?;
    ensure!(
        volumes
            .iter()
            .any(|v| v.starts_with(&format!("./docker/envoy.yaml:{config_at}"))),
        "{volumes:?}"
    );
    ensure!(
        volumes
            .iter()
            .any(|v| v.starts_with(&format!("./{wasm_built}:{WASM_IN_CONTAINER}"))),
        "{volumes:?}"
    );
    ensure!(Path::new(WASM_IN_CONTAINER).is_absolute());
    Ok(())
}

#[test]
fn ports_and_addresses_agree_with_envoy_yaml() -> Result<()> {
    let mut base = yaml("envoy.yaml")?;
    let mut docker = yaml("docker/envoy.yaml")?;
    let mut compose = compose()?;
    let plugin_base = plugin(&mut base)?;
    ensure!(
        plugin(&mut docker)? == plugin_base,
        "the plugin configuration differs"
    );

    // Envoy publishes the listener and admin ports of envoy.yaml, on the host's loopback.
    let listener = port_of(
        &mut base,
        &[
            "static_resources",
            "listeners",
            "0",
            "address",
            "socket_address",
            "port_value",
        ],
    )?;
    let admin = port_of(
        &mut base,
        &["admin", "address", "socket_address", "port_value"],
    )?;
    let envoy_ports = published_ports(service(&mut compose, "envoy")?)?;
    for port in [listener, admin] {
        ensure!(
            envoy_ports.contains(&format!("127.0.0.1:{port}:{port}")),
            "envoy does not publish {port}: {envoy_ports:?}"
        );
    }
    // Nothing is published beyond the host: above all not Envoy's admin interface (it can stop
    // Envoy and dump its configuration), which listens on 0.0.0.0 inside its container.
    let services = at(&mut compose, &["services"])?
        .as_mapping()
        .context("services")?
        .clone();
    for (name, svc) in &services {
        for published in published_ports(svc)? {
            ensure!(
                published.starts_with("127.0.0.1:") && published.split(':').count() == 3,
                "{} publishes {published:?} beyond the host's loopback",
                name.as_str().unwrap_or_default()
            );
        }
    }
    let resource = plugin_base["resource"].as_str().context("resource")?;
    ensure!(url_port(resource)? == listener, "{resource} vs {listener}");

    // The authorization server: its port is the auth_server cluster's, its issuer the filter's.
    let authz = service(&mut compose, "authz")?.clone();
    let authz_port: u64 = env(&authz, "AUTHZ_PORT")?.parse()?;
    let issuer = env(&authz, "AUTHZ_ISSUER")?;
    ensure!(
        plugin_base["issuers"] == serde_json::json!([issuer]),
        "{issuer}"
    );
    ensure!(
        plugin_base["prm"]["authorization_servers"] == serde_json::json!([issuer]),
        "{issuer}"
    );
    ensure!(url_port(&issuer)? == authz_port, "{issuer} vs {authz_port}");
    ensure!(
        env(&authz, "AUTHZ_RESOURCES")? == resource,
        "AUTHZ_RESOURCES"
    );
    ensure!(
        published_ports(&authz)?.contains(&format!("127.0.0.1:{authz_port}:{authz_port}")),
        "authz does not publish {authz_port}"
    );
    ensure!(
        plugin_base["jwks"]["remote"]["cluster"] == "auth_server",
        "{}",
        plugin_base["jwks"]
    );

    // Each cluster of docker/envoy.yaml names a compose service, on envoy.yaml's port, and that
    // service listens there.
    let backend = service(&mut compose, "backend")?.clone();
    let backend_listen = strings(backend.get("command").unwrap_or(&Value::Null))
        .iter()
        .skip_while(|a| *a != "--listen")
        .nth(1)
        .cloned()
        .context("backend command has no --listen")?;
    let ratelimit = service(&mut compose, "ratelimit")?.clone();
    let ratelimit_listen = strings(ratelimit.get("command").unwrap_or(&Value::Null))
        .iter()
        .skip_while(|a| *a != "--listen")
        .nth(1)
        .cloned()
        .context("ratelimit command has no --listen")?;
    // The collector's receivers: OTLP/gRPC for Envoy's otel_collector cluster, OTLP/HTTP for the
    // backend's --otlp-endpoint, which names the collector's service.
    let collector = yaml("docker/otel-collector.yaml")?;
    let receiver_port = |protocol: &str| -> Result<u64> {
        let endpoint = collector["receivers"]["otlp"]["protocols"][protocol]["endpoint"]
            .as_str()
            .with_context(|| {
                format!("docker/otel-collector.yaml has no otlp {protocol} receiver")
            })?;
        url_port(&format!("tcp://{endpoint}"))
    };
    let otlp_endpoint = flag_value(&strings(&backend["command"]), "--otlp-endpoint")
        .context("the backend exports no traces (--otlp-endpoint)")?;
    ensure!(
        otlp_endpoint == format!("http://otel-collector:{}", receiver_port("http")?),
        "backend --otlp-endpoint {otlp_endpoint}"
    );
    for (name, listens) in [
        ("otel_collector", receiver_port("grpc")?),
        ("backend", url_port(&format!("tcp://{backend_listen}"))?),
        ("auth_server", authz_port),
        (
            "mcp_edge_ratelimit",
            url_port(&format!("tcp://{ratelimit_listen}"))?,
        ),
    ] {
        let base_port = port_of(
            cluster(&mut base, name)?,
            &[ENDPOINT, &["port_value"]].concat(),
        )?;
        let docker_cluster = cluster(&mut docker, name)?;
        let docker_port = port_of(docker_cluster, &[ENDPOINT, &["port_value"]].concat())?;
        let address = at(docker_cluster, &[ENDPOINT, &["address"]].concat())?
            .as_str()
            .unwrap_or_default()
            .to_string();
        ensure!(
            base_port == docker_port && docker_port == listens,
            "{name}: {base_port} / {docker_port} / {listens}"
        );
        ensure!(
            Some(address.as_str()) == service_of(name),
            "{name}: {address}"
        );
        ensure!(
            compose["services"].get(address.as_str()).is_some(),
            "no compose service {address}"
        );
    }
    Ok(())
}

/// `image:tag` with a tag that is not `latest`.
fn pinned(image: &str) -> Result<String> {
    let (_, tag) = image
        .rsplit_once(':')
        .filter(|(name, _)| !name.is_empty())
        .with_context(|| format!("{image} has no tag"))?;
    if tag.is_empty() || tag == "latest" || tag.contains('/') {
        bail!("{image} is not pinned");
    }
    Ok(tag.to_string())
}

#[test]
fn images_are_pinned() -> Result<()> {
    let mut compose = compose()?;
    let services = at(&mut compose, &["services"])?
        .as_mapping()
        .context("services")?
        .clone();
    for (name, svc) in &services {
        match (svc.get("image").and_then(Value::as_str), svc.get("build")) {
            (Some(image), _) => {
                pinned(image).with_context(|| format!("service {name:?}"))?;
            }
            (None, Some(build)) => {
                let context = build.get("context").and_then(Value::as_str).unwrap_or(".");
                let file = build
                    .get("dockerfile")
                    .and_then(Value::as_str)
                    .unwrap_or("Dockerfile");
                let text = read(&format!("{context}/{file}"))?;
                for line in text.lines().filter(|l| l.starts_with("FROM ")) {
                    let image = line.split_whitespace().nth(1).unwrap_or_default();
                    pinned(image).with_context(|| format!("{file}: {line}"))?;
                }
            }
            (None, None) => bail!("service {name:?} has neither image nor build"),
        }
    }
    // Envoy: the version the tests run (scripts/install-deps.sh); Redis: 7.
    let install = read("scripts/install-deps.sh")?;
    let version = install
        .lines()
        .find_map(|l| l.strip_prefix("ENVOY_VERSION="))
        .map(|v| v.trim_matches('"'))
        .context("no ENVOY_VERSION in install-deps.sh")?;
    let envoy = service(&mut compose, "envoy")?["image"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    ensure!(
        envoy == format!("envoyproxy/envoy:v{version}"),
        "{envoy} vs Envoy {version}"
    );
    let redis = service(&mut compose, "redis")?["image"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    ensure!(redis.starts_with("redis:7."), "{redis}");
    Ok(())
}

/// The named volume a service mounts at `path` (`name:path[:mode]`), if any, and that it is
/// declared at the top level.
fn named_volume_at(compose: &mut Value, service_name: &str, path: &str) -> Result<String> {
    let svc = service(compose, service_name)?.clone();
    let volumes = strings(svc.get("volumes").unwrap_or(&Value::Null));
    let name = volumes
        .iter()
        .find_map(|v| {
            let mut parts = v.split(':');
            let (source, target) = (parts.next()?, parts.next()?);
            (target == path && !source.starts_with('.') && !source.starts_with('/'))
                .then(|| source.to_string())
        })
        .with_context(|| format!("{service_name}: no named volume at {path}: {volumes:?}"))?;
    let declared = compose
        .get("volumes")
        .and_then(Value::as_mapping)
        .is_some_and(|m| m.contains_key(Value::String(name.clone())));
    ensure!(declared, "volume {name} is not declared under volumes:");
    Ok(name)
}

/// The value after `flag` in a command (`--flag value`), if any.
fn flag_value(command: &[String], flag: &str) -> Option<String> {
    command.iter().skip_while(|a| *a != flag).nth(1).cloned()
}

/// Billing-grade by default: the backend commits usage events to an outbox on a volume before it
/// answers, and Redis keeps what it acknowledged (append-only file, fsync on every write, on a
/// volume), as `mcp-edge-backend --help` asks of the metering Redis.
#[test]
fn the_stack_keeps_usage_events_across_restarts() -> Result<()> {
    let mut compose = compose()?;
    let backend = service(&mut compose, "backend")?.clone();
    let command = strings(backend.get("command").unwrap_or(&Value::Null));
    let outbox = flag_value(&command, "--outbox-dir")
        .context("the backend runs without --outbox-dir: events wait in memory")?;
    named_volume_at(&mut compose, "backend", &outbox)?;
    // The image's unprivileged user owns the directory, so the fresh volume is writable.
    let dockerfile = read("backend/Dockerfile")?;
    let user = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .context("backend/Dockerfile sets no USER")?
        .trim()
        .to_string();
    ensure!(
        dockerfile.lines().any(|l| l.starts_with("RUN ")
            && l.contains(&outbox)
            && l.contains(&format!("chown {user}"))),
        "backend/Dockerfile does not make {outbox} for {user}"
    );

    let redis = service(&mut compose, "redis")?.clone();
    let command = strings(redis.get("command").unwrap_or(&Value::Null));
    ensure!(
        flag_value(&command, "--appendonly").as_deref() == Some("yes"),
        "redis: {command:?}"
    );
    ensure!(
        flag_value(&command, "--appendfsync").as_deref() == Some("always"),
        "redis: {command:?}"
    );
    let dir = flag_value(&command, "--dir").unwrap_or_else(|| "/data".into());
    named_volume_at(&mut compose, "redis", &dir)?;
    Ok(())
}
