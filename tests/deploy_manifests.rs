//! deploy/rendered/ checked offline: it is what `cargo xtask deploy` makes from deploy/values.yaml
//! and envoy.yaml; the Kubernetes core kinds pass kubernetes-validate (PyPI, the Kubernetes 1.37
//! OpenAPI schemas it bundles, strict: unknown fields refused); the Gateway API, Envoy Gateway and
//! Istio resources pass the kubernetes-models packages' JSON Schemas and TypeScript types
//! (deploy/validate/validate.mjs); the ECS task definition passes botocore's `ParamValidator` on
//! `RegisterTaskDefinition`'s input shape; both Envoy configurations pass `envoy --mode validate`
//! (which starts the filter's VM and its configuration for a local `.wasm`), and the Kubernetes
//! one runs (its ready listener, its filter); and the values that
//! must agree (ports, secret names, resource URI, image digest) do, read from the rendered files
//! and compared with deploy/values.yaml.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use mcp_edge_tests::procs::{
    Proc, envoy_bin, envoy_command, filter_wasm, free_port, node_bin, python_bin,
};
use mcp_edge_tests::repo_root;
use serde::Deserialize as _;
use serde_json::Value as Json;

const SECRET: &str = "deploy-test-secret-0123456789abcdef0123456789";

fn path(rel: &str) -> PathBuf {
    repo_root().join(rel)
}

fn read(rel: &str) -> Result<String> {
    std::fs::read_to_string(path(rel)).with_context(|| format!("reading {rel}"))
}

/// The documents of a multi-document YAML file, as JSON values.
fn docs(rel: &str) -> Result<Vec<Json>> {
    let text = read(rel)?;
    let mut out = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let value = Json::deserialize(doc).with_context(|| format!("parsing {rel}"))?;
        if !value.is_null() {
            out.push(value);
        }
    }
    Ok(out)
}

fn values() -> Result<Json> {
    Ok(serde_yaml::from_str(&read("deploy/values.yaml")?)?)
}

fn find<'a>(docs: &'a [Json], kind: &str, name: &str) -> Result<&'a Json> {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .with_context(|| format!("no {kind}/{name}"))
}

/// Runs `cmd`; its stdout, or an error with everything it printed.
fn run(mut cmd: Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("starting {cmd:?}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "{cmd:?} exited with {}:\n{stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(stdout)
}

#[test]
fn rendered_files_are_what_the_values_and_envoy_yaml_make() -> Result<()> {
    let root = repo_root();
    let files = xtask::deploy::render(&root)?;
    let stale = xtask::sync_config::stale_files(&root, &files);
    ensure!(
        stale.is_empty(),
        "not what deploy/values.yaml and envoy.yaml make: {}; run `cargo xtask deploy`",
        stale.join(", ")
    );
    Ok(())
}

const CORE_FILES: [&str; 2] = ["deploy/rendered/base.yaml", "deploy/rendered/envoy.yaml"];
const CUSTOM_FILES: [&str; 2] = [
    "deploy/rendered/envoy-gateway.yaml",
    "deploy/rendered/istio.yaml",
];

#[test]
fn core_kinds_pass_kubernetes_validate_strictly() -> Result<()> {
    let tool = path(".venv/bin/kubernetes-validate");
    ensure!(
        tool.exists(),
        "{} is missing: run scripts/install-deps.sh",
        tool.display()
    );
    let mut cmd = Command::new(tool);
    cmd.args(["--strict", "--kubernetes-version", "1.37.0", "--no-warn"]);
    validate_every_document(cmd, &CORE_FILES, |l| l.contains(" passed for resource "))
}

/// Runs the validator `cmd` on `files` and checks that it reported every document of them as
/// valid (`valid` picks its lines saying so).
fn validate_every_document(
    mut cmd: Command,
    files: &[&str],
    valid: impl Fn(&str) -> bool,
) -> Result<()> {
    let mut expected = 0;
    for file in files {
        cmd.arg(path(file));
        expected += docs(file)?.len();
    }
    let out = run(cmd)?;
    let passed = out.lines().filter(|l| valid(l)).count();
    ensure!(
        passed == expected,
        "{passed} of {expected} documents validated:\n{out}"
    );
    Ok(())
}

#[test]
fn custom_resources_pass_their_published_schemas_and_types() -> Result<()> {
    let script = path("deploy/validate/validate.mjs");
    ensure!(
        path("deploy/validate/node_modules").exists(),
        "deploy/validate/node_modules is missing: run scripts/install-deps.sh"
    );
    let mut cmd = Command::new(node_bin());
    cmd.arg(&script);
    validate_every_document(cmd, &CUSTOM_FILES, |l| l.starts_with("validated "))
}

#[test]
fn the_ecs_task_definition_passes_botocore_register_task_definition() -> Result<()> {
    let file = path("deploy/rendered/ecs-task-definition.json");
    // ECS refuses task definitions over 64 KiB.
    let size = std::fs::metadata(&file)?.len();
    ensure!(size < 64 * 1024, "the task definition is {size} bytes");
    let script = r#"
import json, sys
import botocore.session
from botocore.validate import ParamValidator
model = botocore.session.get_session().get_service_model("ecs")
shape = model.operation_model("RegisterTaskDefinition").input_shape
report = ParamValidator().validate(json.load(open(sys.argv[1])), shape)
if report.has_errors():
    sys.exit(report.generate_report())
print("valid", shape.name)
"#;
    let mut cmd = Command::new(python_bin()?);
    cmd.arg("-c").arg(script).arg(&file);
    let out = run(cmd)?;
    ensure!(out.trim() == "valid RegisterTaskDefinitionRequest", "{out}");
    Ok(())
}

/// `envoy --mode validate` of a configuration (a file, or inline YAML/JSON with `--config-yaml`).
fn envoy_validate(args: &[&str]) -> Result<()> {
    let mut cmd = Command::new(envoy_bin()?);
    cmd.args(["--mode", "validate", "--disable-hot-restart"])
        .args(args)
        .env("MCP_EDGE_GATEWAY_SECRET", SECRET)
        .env("MCP_EDGE_RATELIMIT_SECRET", SECRET);
    let out = cmd.output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        out.status.success() && text.contains("OK"),
        "envoy --mode validate: {}\n{text}",
        out.status
    );
    Ok(())
}

/// The Kubernetes Envoy configuration (from its ConfigMap) and the ECS one (from Envoy's
/// `--config-yaml` in the task definition).
fn envoy_configs() -> Result<(String, String)> {
    let envoy_docs = docs("deploy/rendered/envoy.yaml")?;
    let k8s = find(&envoy_docs, "ConfigMap", "mcp-edge-envoy")?["data"]["envoy.yaml"]
        .as_str()
        .context("the ConfigMap has no envoy.yaml")?
        .to_string();
    let task: Json = serde_json::from_str(&read("deploy/rendered/ecs-task-definition.json")?)?;
    let command = &task["containerDefinitions"][0]["command"];
    ensure!(command[0] == "--config-yaml", "envoy's command: {command}");
    let ecs = command[1]
        .as_str()
        .context("no --config-yaml value")?
        .to_string();
    Ok((k8s, ecs))
}

#[test]
fn the_envoy_configurations_pass_envoy_validate() -> Result<()> {
    let (k8s, ecs) = envoy_configs()?;
    // The pod mounts the filter image at /etc/envoy/filter; here the built filter stands in, so
    // validation starts the VM and the plugin configuration is checked by the filter itself.
    let wasm = filter_wasm()?;
    let in_pod = "/etc/envoy/filter/plugin.wasm";
    ensure!(
        k8s.contains(in_pod),
        "the configuration does not load {in_pod}"
    );
    let tmp = tempfile::tempdir()?;
    let file = tmp.path().join("envoy.yaml");
    std::fs::write(&file, k8s.replace(in_pod, &wasm.to_string_lossy()))?;
    envoy_validate(&["-c", &file.to_string_lossy()])?;
    // The ECS Envoy fetches its .wasm over https: validation checks the configuration only.
    envoy_validate(&["--config-yaml", &ecs])
}

/// The plugin configuration inside an Envoy configuration (YAML or JSON text).
fn plugin_of(config: &str) -> Result<Json> {
    let doc: serde_yaml::Value = serde_yaml::from_str(config)?;
    xtask::deploy::plugin_of(&doc)
}

fn listener_port(config: &Json, name: &str) -> Result<u64> {
    config["static_resources"]["listeners"]
        .as_array()
        .and_then(|ls| ls.iter().find(|l| l["name"] == name))
        .and_then(|l| l["address"]["socket_address"]["port_value"].as_u64())
        .with_context(|| format!("no listener {name}"))
}

fn cluster_port(config: &Json, name: &str) -> Result<u64> {
    config["static_resources"]["clusters"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == name))
        .and_then(|c| {
            c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
                ["socket_address"]["port_value"]
                .as_u64()
        })
        .with_context(|| format!("no cluster {name}"))
}

fn container<'a>(pod_owner: &'a Json, name: &str) -> Result<&'a Json> {
    pod_owner["spec"]["template"]["spec"]["containers"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == name))
        .with_context(|| format!("no container {name}"))
}

fn strings(v: &Json) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// The `(variable, secret name, key)` of every secretKeyRef in a container's env.
fn secret_refs(container: &Json) -> Vec<(String, String, String)> {
    container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let r = &e["valueFrom"]["secretKeyRef"];
            Some((
                e["name"].as_str()?.to_owned(),
                r["name"].as_str()?.to_owned(),
                r["key"].as_str()?.to_owned(),
            ))
        })
        .collect()
}

fn port_of(args: &[String], name: &str) -> Option<u64> {
    flag(args, name)?.rsplit(':').next()?.parse().ok()
}

#[test]
fn the_shared_values_agree_everywhere() -> Result<()> {
    let v = values()?;
    let (k8s_text, ecs_text) = envoy_configs()?;
    let k8s: Json = serde_yaml::from_str(&k8s_text)?;
    let ecs: Json = serde_json::from_str(&ecs_text)?;
    let base = docs("deploy/rendered/base.yaml")?;
    let envoy = docs("deploy/rendered/envoy.yaml")?;
    let eg = docs("deploy/rendered/envoy-gateway.yaml")?;
    let istio = docs("deploy/rendered/istio.yaml")?;
    let task: Json = serde_json::from_str(&read("deploy/rendered/ecs-task-definition.json")?)?;

    // The resource URI, in every plugin configuration and as the backend's Host.
    let resource = v["resource"].as_str().context("values: resource")?;
    let host = resource
        .trim_start_matches("https://")
        .split(['/', ':'])
        .next()
        .unwrap_or_default();
    let eep = find(&eg, "EnvoyExtensionPolicy", "mcp-edge")?;
    let wasm_plugin = find(&istio, "WasmPlugin", "mcp-edge")?;
    let plugins = [
        ("kubernetes", plugin_of(&k8s_text)?),
        ("ecs", plugin_of(&ecs_text)?),
        ("envoy gateway", eep["spec"]["wasm"][0]["config"].clone()),
        ("istio", wasm_plugin["spec"]["pluginConfig"].clone()),
    ];
    for (target, plugin) in &plugins {
        ensure!(
            plugin["resource"] == resource,
            "{target}: {}",
            plugin["resource"]
        );
        ensure!(
            plugin["issuers"][0] == v["issuer"]
                && plugin["prm"]["authorization_servers"][0] == v["issuer"],
            "{target}: issuer"
        );
        ensure!(
            plugin["assertion"]["issuer"] == v["assertion"]["issuer"]
                && plugin["assertion"]["audience"] == v["assertion"]["audience"],
            "{target}: assertion {}",
            plugin["assertion"]
        );
    }
    let plugin = &plugins[0].1;
    let gateway_env = plugin["gateway_secret"]["env"]
        .as_str()
        .context("gateway_secret.env")?;
    let ratelimit_env = plugin["global_rate_limit"]["secret_env"]
        .as_str()
        .context("global_rate_limit.secret_env")?;

    // The image digest: the image volume, Envoy Gateway, Istio, all by the values' digest.
    let image = format!(
        "{}@{}",
        v["filter"]["repository"].as_str().unwrap_or_default(),
        v["filter"]["digest"].as_str().unwrap_or_default()
    );
    let hex = v["filter"]["digest"]
        .as_str()
        .unwrap_or_default()
        .trim_start_matches("sha256:");
    let envoy_deployment = find(&envoy, "Deployment", "mcp-edge-envoy")?;
    let volumes = &envoy_deployment["spec"]["template"]["spec"]["volumes"];
    ensure!(
        volumes
            .as_array()
            .into_iter()
            .flatten()
            .any(|vol| vol["image"]["reference"] == image.as_str()),
        "the Envoy pod mounts no image volume of {image}: {volumes}"
    );
    let eep_image = &eep["spec"]["wasm"][0]["code"]["image"];
    ensure!(
        eep_image["url"] == image.as_str() && eep_image["sha256"] == hex,
        "{eep_image}"
    );
    ensure!(
        wasm_plugin["spec"]["url"] == format!("oci://{image}").as_str()
            && wasm_plugin["spec"]["sha256"] == hex
            && wasm_plugin["spec"]["failStrategy"] == "FAIL_CLOSE",
        "{}",
        wasm_plugin["spec"]
    );
    ensure!(eep["spec"]["wasm"][0]["failOpen"] == false);
    let remote = &ecs["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        ["http_filters"][0]["typed_config"]["config"]["vm_config"]["code"]["remote"];
    ensure!(
        remote["sha256"] == v["filter"]["wasm_sha256"]
            && remote["http_uri"]["uri"] == v["filter"]["wasm_url"],
        "ecs: {remote}"
    );

    // Secrets: one Secret name, the two keys, under the variables the plugin reads.
    let secret = &v["secret"];
    let (name, gateway_key, ratelimit_key) = (
        secret["name"].as_str().context("secret.name")?,
        secret["gateway_key"]
            .as_str()
            .context("secret.gateway_key")?,
        secret["ratelimit_key"]
            .as_str()
            .context("secret.ratelimit_key")?,
    );
    find(&base, "Secret", name)?;
    let want = |var: &str, key: &str| (var.to_string(), name.to_string(), key.to_string());
    let envoy_container = container(envoy_deployment, "envoy")?;
    let mut refs = secret_refs(envoy_container);
    refs.sort();
    let mut expected = vec![
        want(gateway_env, gateway_key),
        want(ratelimit_env, ratelimit_key),
    ];
    expected.sort();
    ensure!(refs == expected, "envoy's secrets: {refs:?}");
    let backend = find(&base, "StatefulSet", "mcp-edge-backend")?;
    let backend_container = container(backend, "backend")?;
    ensure!(
        secret_refs(backend_container) == vec![want("MCP_EDGE_GATEWAY_SECRET", gateway_key)],
        "backend's secrets"
    );
    let ratelimit = find(&base, "Deployment", "mcp-edge-ratelimit")?;
    let ratelimit_container = container(ratelimit, "ratelimit")?;
    ensure!(
        secret_refs(ratelimit_container) == vec![want("RATELIMIT_SHARED_SECRET", ratelimit_key)],
        "the rate limit service's secrets"
    );
    let proxy_env = &find(&eg, "EnvoyProxy", "mcp-edge")?["spec"]["provider"]["kubernetes"]["envoyDeployment"]
        ["container"];
    let mut proxy_refs = secret_refs(proxy_env);
    proxy_refs.sort();
    ensure!(
        proxy_refs == expected,
        "Envoy Gateway's proxy secrets: {proxy_refs:?}"
    );
    let mut host_keys = strings(&eep["spec"]["wasm"][0]["env"]["hostKeys"]);
    host_keys.sort();
    let mut vars = vec![gateway_env.to_string(), ratelimit_env.to_string()];
    vars.sort();
    ensure!(host_keys == vars, "Envoy Gateway hostKeys {host_keys:?}");
    let containers = task["containerDefinitions"]
        .as_array()
        .context("containers")?;
    for c in containers {
        for s in c["secrets"].as_array().into_iter().flatten() {
            let from = s["valueFrom"].as_str().unwrap_or_default();
            let key = from
                .trim_end_matches("::")
                .rsplit(':')
                .next()
                .unwrap_or_default();
            ensure!(
                from.starts_with(v["ecs"]["secret_arn"].as_str().unwrap_or("?"))
                    && (key == gateway_key || key == ratelimit_key),
                "ecs {}: {s}",
                c["name"]
            );
        }
    }

    // The Secret carries no values; Envoy's admin is reached only through `GET /ready`.
    let secret_doc = find(&base, "Secret", name)?;
    ensure!(
        secret_doc.get("data").is_none() && secret_doc.get("stringData").is_none(),
        "the rendered Secret holds values: {secret_doc}"
    );
    for (target, config) in [("kubernetes", &k8s), ("ecs", &ecs)] {
        let routes = config["static_resources"]["listeners"]
            .as_array()
            .and_then(|ls| ls.iter().find(|l| l["name"] == "ready"))
            .map(|l| {
                l["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]["virtual_hosts"]
                    [0]["routes"]
                    .clone()
            })
            .context("no ready listener")?;
        let to_admin: Vec<&Json> = routes
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["route"]["cluster"] == "envoy_admin")
            .collect();
        ensure!(
            to_admin.len() == 1 && to_admin[0]["match"]["path"] == "/ready",
            "{target}: the ready listener routes more than GET /ready to the admin: {routes}"
        );
    }

    // Ports: listeners, container ports, probes, Services, clusters and the other side's --listen.
    let p = &v["ports"];
    let port = |k: &str| p[k].as_u64().with_context(|| format!("ports.{k}"));
    for (target, config) in [("kubernetes", &k8s), ("ecs", &ecs)] {
        ensure!(
            listener_port(config, "mcp")? == port("envoy")?,
            "{target}: mcp listener"
        );
        ensure!(
            listener_port(config, "ready")? == port("envoy_ready")?,
            "{target}: ready listener"
        );
        ensure!(
            config["admin"]["address"]["socket_address"]["port_value"] == port("envoy_admin")?
                && config["admin"]["address"]["socket_address"]["address"] == "127.0.0.1",
            "{target}: admin"
        );
        ensure!(
            cluster_port(config, "backend")? == port("backend")?,
            "{target}: backend"
        );
        ensure!(
            cluster_port(config, "mcp_edge_ratelimit")? == port("ratelimit")?,
            "{target}: ratelimit"
        );
        ensure!(
            cluster_port(config, "envoy_admin")? == port("envoy_admin")?,
            "{target}: admin cluster"
        );
    }
    let container_port = |c: &Json, name: &str| {
        c["ports"]
            .as_array()
            .and_then(|ps| ps.iter().find(|x| x["name"] == name))
            .and_then(|x| x["containerPort"].as_u64())
    };
    ensure!(container_port(envoy_container, "mcp") == Some(port("envoy")?));
    ensure!(container_port(envoy_container, "ready") == Some(port("envoy_ready")?));
    ensure!(
        envoy_container["readinessProbe"]["httpGet"]
            == serde_json::json!({"path": "/ready", "port": "ready"}),
        "readiness: {}",
        envoy_container["readinessProbe"]
    );
    let service_port = |docs: &[Json], name: &str| -> Result<u64> {
        find(docs, "Service", name)?["spec"]["ports"][0]["port"]
            .as_u64()
            .with_context(|| format!("Service {name}"))
    };
    ensure!(service_port(&envoy, "mcp-edge-envoy")? == port("envoy")?);
    ensure!(service_port(&base, "mcp-edge-backend")? == port("backend")?);
    ensure!(service_port(&base, "mcp-edge-ratelimit")? == port("ratelimit")?);
    ensure!(service_port(&base, "mcp-edge-redis")? == port("redis")?);
    let backend_args = strings(&backend_container["args"]);
    ensure!(
        port_of(&backend_args, "--listen") == Some(port("backend")?),
        "{backend_args:?}"
    );
    ensure!(
        flag(&backend_args, "--allowed-host").as_deref() == Some(host),
        "{backend_args:?}"
    );
    ensure!(
        flag(&backend_args, "--assertion-issuer").as_ref()
            == v["assertion"]["issuer"]
                .as_str()
                .map(str::to_owned)
                .as_ref()
            && flag(&backend_args, "--assertion-audience").as_ref()
                == v["assertion"]["audience"]
                    .as_str()
                    .map(str::to_owned)
                    .as_ref(),
        "{backend_args:?}"
    );
    ensure!(
        port_of(&strings(&ratelimit_container["args"]), "--listen") == Some(port("ratelimit")?)
    );
    let redis_port = format!("port {}", port("redis")?);
    ensure!(
        find(&base, "ConfigMap", "mcp-edge-redis")?["data"]["redis.conf"]
            .as_str()
            .is_some_and(|c| c.contains(&redis_port)),
        "redis.conf's port"
    );
    let route = find(&eg, "HTTPRoute", "mcp-edge")?;
    ensure!(route["spec"]["hostnames"][0] == host, "HTTPRoute hostnames");
    ensure!(route["spec"]["rules"][0]["backendRefs"][0]["port"] == port("backend")?);
    let virtual_service = find(&istio, "VirtualService", "mcp-edge")?;
    ensure!(
        virtual_service["spec"]["hosts"][0] == host,
        "VirtualService hosts"
    );
    ensure!(
        virtual_service["spec"]["http"][0]["route"][0]["destination"]["port"]["number"]
            == port("backend")?,
        "VirtualService port"
    );
    ensure!(
        wasm_plugin["metadata"]["namespace"] == v["istio"]["gateway_namespace"],
        "the WasmPlugin is not in the gateway's namespace"
    );

    // ECS: Envoy's ports mapped, the backend and the service on the ports its clusters use.
    let by_name = |n: &str| {
        containers
            .iter()
            .find(|c| c["name"] == n)
            .with_context(|| n.to_string())
    };
    let mapped: Vec<u64> = by_name("envoy")?["portMappings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["containerPort"].as_u64())
        .collect();
    ensure!(
        mapped == vec![port("envoy")?, port("envoy_ready")?],
        "ecs ports {mapped:?}"
    );
    let ecs_backend = strings(&by_name("backend")?["command"]);
    ensure!(port_of(&ecs_backend, "--listen") == Some(port("backend")?));
    ensure!(flag(&ecs_backend, "--allowed-host").as_deref() == Some(host));
    ensure!(
        port_of(&strings(&by_name("ratelimit")?["command"]), "--listen")
            == Some(port("ratelimit")?)
    );
    Ok(())
}

/// The user a Dockerfile's final stage runs as (`USER uid:gid`), as a number.
fn image_user(dockerfile: &str) -> Result<u64> {
    let text = read(dockerfile)?;
    let user = text
        .lines()
        .filter_map(|l| l.strip_prefix("USER "))
        .next_back()
        .with_context(|| format!("{dockerfile} sets no USER"))?;
    let uid = user.trim().split(':').next().unwrap_or_default();
    uid.parse()
        .with_context(|| format!("{dockerfile}: USER {user} is not numeric"))
}

/// The images (built from backend/ and ratelimit/) run as the unprivileged users the pods and the
/// task expect, and the rate limit image holds the limits file the ECS task names.
#[test]
fn the_workloads_run_as_their_images_users() -> Result<()> {
    let base = docs("deploy/rendered/base.yaml")?;
    for (dockerfile, kind, name) in [
        ("backend/Dockerfile", "StatefulSet", "mcp-edge-backend"),
        ("ratelimit/Dockerfile", "Deployment", "mcp-edge-ratelimit"),
    ] {
        let uid = image_user(dockerfile)?;
        ensure!(uid != 0, "{dockerfile} runs as root");
        let pod = &find(&base, kind, name)?["spec"]["template"]["spec"]["securityContext"];
        ensure!(
            pod["runAsUser"] == uid && pod["runAsNonRoot"] == true,
            "{name}: {pod} (the image runs as {uid})"
        );
    }
    let task: Json = serde_json::from_str(&read("deploy/rendered/ecs-task-definition.json")?)?;
    let ratelimit = task["containerDefinitions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == "ratelimit"))
        .context("no ratelimit container")?;
    let limits = flag(&strings(&ratelimit["command"]), "--limits").context("no --limits")?;
    let dockerfile = read("ratelimit/Dockerfile")?;
    ensure!(
        dockerfile
            .lines()
            .any(|l| l.starts_with("COPY ratelimit/limits.yaml ") && l.ends_with(&limits)),
        "ratelimit/Dockerfile does not put the limits file at {limits}"
    );
    Ok(())
}

/// Sets `socket_address` under `parent` to 127.0.0.1:`port`.
fn set_loopback(parent: &mut Json, port: u16) {
    parent["socket_address"] = serde_json::json!({"address": "127.0.0.1", "port_value": port});
}

/// The Kubernetes Envoy configuration started for real (on loopback test ports, the built filter
/// in place of the mounted image): the ready listener answers `/ready` from the admin and nothing
/// else of it, and the filter answers the protected resource metadata with the values' resource.
#[test]
fn the_kubernetes_envoy_configuration_runs() -> Result<()> {
    let (k8s, _) = envoy_configs()?;
    let mut config: Json = serde_yaml::from_str(&k8s)?;
    let (mcp, ready, admin) = (free_port()?, free_port()?, free_port()?);
    set_loopback(&mut config["admin"]["address"], admin);
    for listener in config["static_resources"]["listeners"]
        .as_array_mut()
        .context("listeners")?
    {
        let port = if listener["name"] == "ready" {
            ready
        } else {
            mcp
        };
        set_loopback(&mut listener["address"], port);
    }
    for cluster in config["static_resources"]["clusters"]
        .as_array_mut()
        .context("clusters")?
    {
        if cluster["name"] == "envoy_admin" {
            set_loopback(
                &mut cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"],
                admin,
            );
        }
    }
    let text = serde_json::to_string(&config)?.replace(
        "/etc/envoy/filter/plugin.wasm",
        &filter_wasm()?.to_string_lossy(),
    );
    let tmp = tempfile::tempdir()?;
    let file = tmp.path().join("envoy.json");
    std::fs::write(&file, text)?;
    let mut cmd = envoy_command(&file, 1, "info")?;
    cmd.env("MCP_EDGE_GATEWAY_SECRET", SECRET)
        .env("MCP_EDGE_RATELIMIT_SECRET", SECRET);
    let mut envoy = Proc::spawn("envoy", cmd, tmp.path())?;
    for port in [mcp, ready] {
        envoy.wait_for_port(([127, 0, 0, 1], port).into(), Duration::from_secs(60))?;
    }
    let client = reqwest::blocking::Client::new();
    let get = |port: u16, path: &str| -> Result<(u16, String)> {
        let r = client
            .get(format!("http://127.0.0.1:{port}{path}"))
            .send()?;
        Ok((r.status().as_u16(), r.text()?))
    };
    let (status, body) = get(ready, "/ready")?;
    ensure!(
        status == 200 && body.trim() == "LIVE",
        "/ready: {status} {body:?}"
    );
    for path in ["/stats", "/config_dump", "/ready/../stats"] {
        let (status, _) = get(ready, path)?;
        ensure!(status == 404, "{path} on the ready listener: {status}");
    }
    let (status, body) = get(mcp, "/.well-known/oauth-protected-resource/mcp")?;
    let doc: Json = serde_json::from_str(&body).with_context(|| format!("{status} {body}"))?;
    ensure!(
        status == 200 && doc["resource"] == values()?["resource"],
        "metadata: {status} {doc}"
    );
    envoy.check_alive()
}
