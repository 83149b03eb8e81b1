use super::*;
use http_body_util::Full;
use mcp_edge_contract::{AssertionSigner, Binding, GatewayKey, IdentityClaims, body_digest};
use tower::{Layer as _, ServiceExt as _, service_fn};

const SECRET: &[u8] = b"test-secret-test-secret-test-secret!";
const NOW: u64 = 1_700_000_000;
const BODY: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;

fn trust() -> Trust {
    Trust::new(SECRET, DEFAULT_ISSUER, DEFAULT_AUDIENCE)
        .unwrap()
        .with_clock(Arc::new(|| NOW))
}

fn assertion(tenant: &str, path: &str, body: &str) -> String {
    let signer = AssertionSigner::new(
        &GatewayKey::new(SECRET).unwrap(),
        DEFAULT_ISSUER,
        DEFAULT_AUDIENCE,
    );
    let digest = body_digest(body.as_bytes());
    signer
        .sign(
            &IdentityClaims::new(&Identity::example(tenant)).unwrap(),
            &Binding {
                method: "POST",
                path,
                protocol_version: "2025-06-18",
                request_id: "req-1",
                issued_at: NOW,
                body_digest: &digest,
            },
        )
        .expect("signable request")
}

fn request(headers: &[(&str, &str)], body: &str) -> http::Request<Full<Bytes>> {
    let mut builder = http::Request::post("/mcp").header(PROTOCOL_VERSION, "2025-06-18");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Full::from(body.to_owned())).unwrap()
}

/// Runs `request` through the layer around a service that echoes tenant, request id and body.
async fn call(trust: Trust, request: http::Request<Full<Bytes>>) -> (u16, String) {
    let echo = service_fn(|req: http::Request<Full<Bytes>>| async move {
        let vouched = req.extensions().get::<Vouched>().cloned();
        let body = req.into_body().collect().await.unwrap().to_bytes();
        let text = match vouched {
            Some(v) => format!(
                "{}|{}|{}",
                v.identity.tenant_id,
                v.request_id,
                String::from_utf8_lossy(&body)
            ),
            None => "no caller".into(),
        };
        Ok::<_, std::convert::Infallible>(http::Response::new(Full::<Bytes>::from(text)))
    });
    let response = trust.layer().layer(echo).oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn refused(status: u16, body: &str, code: i32, needle: &str) {
    let json: serde_json::Value = serde_json::from_str(body).expect(body);
    assert_eq!(json["jsonrpc"], "2.0");
    assert!(json["id"].is_null());
    assert_eq!(json["error"]["code"], code, "{body}");
    let message = json["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(needle),
        "{message:?} should say {needle:?}"
    );
    assert!(status == 401 || status == 413, "{status}");
}

#[tokio::test]
async fn a_verified_request_reaches_the_service_with_its_caller_and_body() {
    let token = assertion("acme", "/mcp", BODY);
    let (status, body) = call(trust(), request(&[(headers::IDENTITY, &token)], BODY)).await;
    assert_eq!(
        (status, body.as_str()),
        (200, &*format!("acme|req-1|{BODY}"))
    );
}

#[tokio::test]
async fn anything_else_is_refused_in_json_rpc_shape() {
    let token = assertion("acme", "/mcp", BODY);
    let cases: Vec<(http::Request<Full<Bytes>>, u16, i32, &str)> = vec![
        (request(&[], BODY), 401, -32040, "missing x-mcp-identity"),
        (
            request(
                &[
                    ("x-mcp-gateway-signature", "abc"),
                    ("x-mcp-tenant-id", "acme"),
                ],
                BODY,
            ),
            401,
            -32040,
            "contract v2",
        ),
        (
            request(
                &[(headers::IDENTITY, &token), (headers::IDENTITY, &token)],
                BODY,
            ),
            401,
            -32040,
            "repeated",
        ),
        (
            request(&[(headers::IDENTITY, &token)], r#"{"other":"body"}"#),
            401,
            -32040,
            "body_sha256",
        ),
        (
            request(&[(headers::IDENTITY, "e30.e30.AAAA")], BODY),
            401,
            -32040,
            "assertion refused",
        ),
    ];
    for (req, status, code, needle) in cases {
        let (got, body) = call(trust(), req).await;
        assert_eq!(got, status, "{body}");
        refused(got, &body, code, needle);
    }
}

#[tokio::test]
async fn bodies_over_the_cap_are_refused_before_they_are_read_whole() {
    let token = assertion("acme", "/mcp", BODY);
    let small = trust().with_max_body_bytes(10);
    let (status, body) = call(small, request(&[(headers::IDENTITY, &token)], BODY)).await;
    assert_eq!(status, 413);
    refused(status, &body, -32600, "exceeds 10 bytes");
}

#[test]
fn the_plain_function_verifies_a_head_and_a_body() {
    let token = assertion("globex", "/mcp?x=1", BODY);
    let (parts, _) = http::Request::post("/mcp?x=1")
        .header(PROTOCOL_VERSION, "2025-06-18")
        .header(headers::IDENTITY, &token)
        .body(())
        .unwrap()
        .into_parts();
    let vouched = trust().verify_parts(&parts, BODY.as_bytes()).unwrap();
    assert_eq!(vouched.identity.tenant_id, "globex");
    // The path is bound with its query.
    let (other, _) = http::Request::post("/mcp")
        .header(PROTOCOL_VERSION, "2025-06-18")
        .header(headers::IDENTITY, &token)
        .body(())
        .unwrap()
        .into_parts();
    assert_eq!(
        trust().verify_parts(&other, BODY.as_bytes()),
        Err(Rejection::Assertion(AssertionError::Mismatch("htp")))
    );
}
