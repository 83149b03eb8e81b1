//! TLS on every hop, end to end (`envoy.tls.yaml`, docs/tls.md): real Envoy with the real `.wasm`
//! serving its listener over TLS (HTTP/2 by ALPN and HTTP/1.1, the certificate from file-based SDS
//! and rotated without a restart), the real OAuth authorization server reached only over https
//! (keys fetched; a wrong CA or a wrong name refuses the fetch and the edge fails closed, saying
//! why in its log), and the backend requiring Envoy's client certificate (mutual TLS) while still
//! verifying the signed assertion. Certificates come from a throwaway CA made for the run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use libtest_mimic::{Arguments, Failed, Trial};
use mcp_edge_tests::client::{call_body, http};
use mcp_edge_tests::https::{HttpsClient, HttpsRequest, certs_of};
use mcp_edge_tests::stats::Stats;
use mcp_edge_tests::tls_stack::{TlsEnvoy, TlsStack};
use serde_yaml::Value;
use xtask::dev_certs::{DEV_TLS_HOST, DevCa, Usage};
use xtask::docker_envoy::{at, cluster_named};

/// How long a rotated certificate may take to be served (Envoy reacts to the directory's move
/// at once; this bounds a loaded machine).
const ROTATION_DEADLINE: Duration = Duration::from_secs(30);

fn list_projects() -> String {
    call_body("tls")
}

fn both_http_versions_reach_the_backend_with_a_token_fetched_over_https(
    s: &TlsStack,
) -> Result<()> {
    let token = s.token("mcp:read")?;
    for (alpn, want_alpn, want_version) in [
        (&["h2", "http/1.1"][..], "h2", http::Version::HTTP_2),
        (&["http/1.1"][..], "http/1.1", http::Version::HTTP_11),
    ] {
        let client = s.client(alpn)?;
        let answer = s.post_mcp(&s.envoy, &client, Some(&token), &list_projects())?;
        ensure!(
            answer.alpn.as_deref() == Some(want_alpn) && answer.version == want_version,
            "offered {alpn:?}: negotiated {:?}, answered {:?}",
            answer.alpn,
            answer.version
        );
        ensure!(answer.status == 200, "{answer:?}");
        let body = answer.json()?;
        ensure!(
            body["result"]["structuredContent"]["projects"].is_array(),
            "not the backend's answer: {body}"
        );
    }
    Ok(())
}

fn the_metadata_and_the_challenge_name_the_https_resource(s: &TlsStack) -> Result<()> {
    let client = s.client(&["h2"])?;
    let metadata = client.send(&HttpsRequest {
        addr: s.envoy.listener,
        server_name: DEV_TLS_HOST,
        method: "GET",
        path: "/.well-known/oauth-protected-resource/mcp",
        headers: vec![],
        body: String::new(),
    })?;
    ensure!(metadata.status == 200, "{metadata:?}");
    let doc = metadata.json()?;
    ensure!(
        doc["resource"] == s.envoy.mcp_url.as_str()
            && doc["authorization_servers"] == serde_json::json!([s.authz_url]),
        "metadata: {doc}"
    );
    let refused = s.post_mcp(&s.envoy, &client, None, &list_projects())?;
    let challenge = refused.header("www-authenticate");
    let want = format!(
        "resource_metadata=\"https://{DEV_TLS_HOST}:{}/.well-known/oauth-protected-resource/mcp\"",
        s.envoy.listener.port()
    );
    ensure!(
        refused.status == 401 && challenge.contains(&want),
        "{} {challenge}",
        refused.status
    );
    Ok(())
}

fn a_rotated_certificate_is_served_without_a_restart(s: &TlsStack) -> Result<()> {
    let first = der_of(&std::fs::read_to_string(s.files.server().cert())?)?;
    let client = s.client(&["h2"])?;
    let served = |client: &HttpsClient| -> Result<Vec<u8>> {
        Ok(s.post_mcp(&s.envoy, client, None, &list_projects())?
            .server_cert)
    };
    ensure!(served(&client)? == first, "not the first certificate");
    let next =
        s.ca.leaf("mcp-edge", &[DEV_TLS_HOST, "127.0.0.1"], Usage::Server)?;
    let next_der = der_of(&next.cert_pem)?;
    s.files.server().rotate(2, &next)?;
    let deadline = Instant::now() + ROTATION_DEADLINE;
    loop {
        let now_served = served(&client)?;
        if now_served == next_der {
            break;
        }
        ensure!(now_served == first, "neither certificate was served");
        if Instant::now() > deadline {
            bail!("the rotated certificate was not served within {ROTATION_DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // The same Envoy process, still serving requests.
    let token = s.token("mcp:read")?;
    let answer = s.post_mcp(&s.envoy, &client, Some(&token), &list_projects())?;
    ensure!(answer.status == 200, "after the rotation: {answer:?}");
    Ok(())
}

fn der_of(pem: &str) -> Result<Vec<u8>> {
    Ok(certs_of(pem)?
        .first()
        .context("no certificate")?
        .as_ref()
        .to_vec())
}

fn the_backend_requires_the_edges_client_certificate(s: &TlsStack) -> Result<()> {
    let direct = |client: &HttpsClient| {
        client.send(&HttpsRequest {
            addr: s.backend_addr,
            server_name: DEV_TLS_HOST,
            method: "POST",
            path: "/mcp",
            headers: vec![
                ("content-type", "application/json".to_string()),
                ("accept", "application/json, text/event-stream".to_string()),
            ],
            body: list_projects(),
        })
    };
    // No client certificate: refused in the handshake (TLS 1.3 tells the client on its first read).
    match direct(&s.client(&["http/1.1"])?) {
        Err(e) => ensure!(
            format!("{e:#}").contains("CertificateRequired")
                || format!("{e:#}").contains("certificate required")
                || format!("{e:#}").contains("handshake"),
            "refused, but not for the certificate: {e:#}"
        ),
        Ok(answer) => bail!("answered without a client certificate: {answer:?}"),
    }
    // A client certificate from another CA: refused too.
    let other = DevCa::new("not the edge's CA")?.leaf("mcp-edge", &["mcp-edge"], Usage::Client)?;
    let stranger = HttpsClient::new(
        s.ca.cert_pem(),
        &["http/1.1"],
        Some((&other.cert_pem, &other.key_pem)),
    )?;
    if let Ok(answer) = direct(&stranger) {
        bail!("answered a certificate of another CA: {answer:?}");
    }
    // The edge's own certificate passes TLS, and the request still needs its assertion.
    let edge = s.files.client();
    let edge_client = HttpsClient::new(
        s.ca.cert_pem(),
        &["http/1.1"],
        Some((
            &std::fs::read_to_string(edge.cert())?,
            &std::fs::read_to_string(edge.key())?,
        )),
    )?;
    let answer = direct(&edge_client)?;
    ensure!(
        answer.status == 401 && answer.body.contains("x-mcp-identity"),
        "without an assertion: {answer:?}"
    );
    Ok(())
}

/// An Envoy whose `auth_server` cluster's TLS is changed by `edit` (its `common_tls_context`).
fn envoy_with_authz_tls(
    s: &TlsStack,
    name: &str,
    edit: impl FnOnce(&mut Value) -> Result<()>,
) -> Result<TlsEnvoy> {
    s.start_envoy(name, |doc| {
        let auth = cluster_named(doc, "auth_server")?;
        edit(at(
            auth,
            &["transport_socket", "typed_config", "common_tls_context"],
        )?)
    })
}

/// With the authorization server's TLS refused, a valid token gets 503 -32047 (no keys: fail
/// closed); the filter's log line says the fetch failed and where the reason is; `stat` of the
/// cluster's TLS counted it; with the `connection` log at debug (the operator's next step, through
/// the admin endpoint), Envoy's own line names the TLS error and `reason`.
fn fails_closed_saying_why(
    s: &TlsStack,
    envoy: &mut TlsEnvoy,
    stat: &str,
    reason: &str,
) -> Result<()> {
    let token = s.token("mcp:read")?;
    let answer = s.post_mcp(envoy, &s.client(&["h2"])?, Some(&token), &list_projects())?;
    let body = answer.json()?;
    ensure!(
        answer.status == 503 && body["error"]["code"] == -32047,
        "{} {body}",
        answer.status
    );
    let line = envoy
        .proc
        .wait_for_log("JWKS fetch failed", Duration::from_secs(30))?;
    ensure!(
        line.contains("no signing keys yet")
            && line.contains("refused its TLS certificate")
            && line.contains(&format!("ssl.{stat}")),
        "the filter's log line: {line}"
    );
    let stats = Stats::parse(
        &http()
            .get(format!("{}/stats?filter=auth_server", envoy.admin_url))
            .send()?
            .text()?,
    );
    ensure!(
        stats.get(&format!("cluster.auth_server.ssl.{stat}")) >= 1,
        "{stat} not counted: {stats:?}"
    );
    let logging = http()
        .post(format!("{}/logging?connection=debug", envoy.admin_url))
        .send()?;
    ensure!(
        logging.status() == 200,
        "admin /logging: {}",
        logging.status()
    );
    // The filter fetches again at most 5 s after a failed fetch.
    let tls_line = envoy
        .proc
        .wait_for_log("CERTIFICATE_VERIFY_FAILED", Duration::from_secs(30))?;
    ensure!(tls_line.contains(reason), "Envoy's TLS line: {tls_line}");
    Ok(())
}

fn an_authorization_server_certificate_from_another_ca_is_refused(s: &TlsStack) -> Result<()> {
    let other_ca = s.dir().join("other-ca.pem");
    std::fs::write(&other_ca, DevCa::new("another CA")?.cert_pem())?;
    let mut envoy = envoy_with_authz_tls(s, "envoy-wrong-ca", |tls| {
        *at(tls, &["validation_context", "trusted_ca", "filename"])? =
            Value::from(other_ca.display().to_string());
        Ok(())
    })?;
    fails_closed_saying_why(
        s,
        &mut envoy,
        "fail_verify_error",
        "unable to get local issuer certificate",
    )
}

fn an_authorization_server_certificate_for_another_name_is_refused(s: &TlsStack) -> Result<()> {
    let mut envoy = envoy_with_authz_tls(s, "envoy-wrong-name", |tls| {
        *at(
            tls,
            &[
                "validation_context",
                "match_typed_subject_alt_names",
                "0",
                "matcher",
                "exact",
            ],
        )? = Value::from("idp.example.com");
        Ok(())
    })?;
    fails_closed_saying_why(s, &mut envoy, "fail_verify_san", "SAN")
}

type CaseFn = fn(&TlsStack) -> Result<()>;

const CASES: &[(&str, CaseFn)] = &[
    (
        "both_http_versions_reach_the_backend_with_a_token_fetched_over_https",
        both_http_versions_reach_the_backend_with_a_token_fetched_over_https,
    ),
    (
        "the_metadata_and_the_challenge_name_the_https_resource",
        the_metadata_and_the_challenge_name_the_https_resource,
    ),
    (
        "a_rotated_certificate_is_served_without_a_restart",
        a_rotated_certificate_is_served_without_a_restart,
    ),
    (
        "the_backend_requires_the_edges_client_certificate",
        the_backend_requires_the_edges_client_certificate,
    ),
    (
        "an_authorization_server_certificate_from_another_ca_is_refused",
        an_authorization_server_certificate_from_another_ca_is_refused,
    ),
    (
        "an_authorization_server_certificate_for_another_name_is_refused",
        an_authorization_server_certificate_for_another_name_is_refused,
    ),
];

fn main() {
    let args = Arguments::from_args();
    let stack = match TlsStack::start() {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("could not start the TLS stack: {e:#}");
            std::process::exit(1);
        }
    };
    let trials = CASES
        .iter()
        .map(|&(name, run)| {
            let stack = stack.clone();
            Trial::test(name, move || {
                run(&stack).map_err(|e| Failed::from(format!("{e:#}")))
            })
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    match Arc::try_unwrap(stack) {
        Ok(mut s) => s.stop(),
        Err(_) => eprintln!("the TLS stack is still shared; its processes stop at exit"),
    }
    conclusion.exit();
}
