//! The MCP client of `cargo xtask tool-scopes`: reads every tool a server lists, over Streamable
//! HTTP, straight from the server (the edge lists only the tools it has a policy for).
//!
//! Just what listing needs, on reqwest: `initialize` (declaring every client capability, as a
//! server may list some tools only to clients that can sample, elicit or list roots), then
//! `notifications/initialized`, then `tools/list` page after page until no `nextCursor`, then
//! `DELETE` of the session. Answers may be one JSON object or an SSE stream (notifications and
//! requests before the answer are skipped). The server's session id and the negotiated
//! `MCP-Protocol-Version` go on every later request. A bearer token and headers of the caller's
//! choosing go on every request; for a server that accepts only requests the edge vouched for, each
//! request can carry an identity assertion signed with the gateway secret, as the edge would sign
//! it ([`Vouch`]). Plain HTTP only: the server's internal address, not a public one.

use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use mcp_edge_contract::assertion::{AssertionSigner, Binding, HEADER as IDENTITY_HEADER};
use mcp_edge_contract::{GatewayKey, Identity, IdentityClaims, Tier, body_digest, scopes};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Response, StatusCode, Url};
use serde_json::{Value, json};

use crate::sse_events::SseEvents;

/// The protocol version the client asks for (the server may answer with another it speaks).
pub const PROTOCOL_VERSION: &str = "2025-11-25";
/// How long one request may take, its answer stream included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The most bytes read of one answer.
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;
/// The most `tools/list` pages read before the server is taken to loop.
pub const MAX_PAGES: usize = 1000;
/// The identity a vouched-for listing claims (tenant and user).
pub const VOUCHED_CALLER: &str = "mcp-edge-tool-scopes";

/// How to reach the server.
#[derive(Debug, Default)]
pub struct ServerAccess {
    /// The Streamable HTTP endpoint, e.g. `http://127.0.0.1:3001/mcp`.
    pub url: String,
    /// Sent as `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// Sent on every request.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Sign every request as the edge would.
    pub vouch: Option<Vouch>,
}

/// The edge's identity assertion (`x-mcp-identity`, contract v3) for each request, signed with
/// the gateway secret, for servers that verify it (docs/trusting-the-edge.md). The caller is
/// [`VOUCHED_CALLER`] with the three scopes of the rule, so a server that lists tools per scope
/// lists them all.
pub struct Vouch {
    signer: AssertionSigner,
    identity: IdentityClaims,
}

impl std::fmt::Debug for Vouch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vouch").finish_non_exhaustive()
    }
}

impl Vouch {
    /// `issuer` and `audience` are the plugin configuration's `assertion` names.
    pub fn new(secret: &[u8], issuer: &str, audience: &str) -> Result<Self> {
        let key = GatewayKey::new(secret).map_err(anyhow::Error::msg)?;
        let identity = IdentityClaims::new(&Identity {
            tenant_id: VOUCHED_CALLER.into(),
            user_id: VOUCHED_CALLER.into(),
            scopes: vec![
                scopes::READ.into(),
                scopes::WRITE.into(),
                scopes::ADMIN.into(),
            ],
            data_scope: String::new(),
            tier: Tier::Pro,
        })
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        Ok(Self {
            signer: AssertionSigner::new(&key, issuer, audience),
            identity,
        })
    }

    fn assertion(&self, binding: &Binding<'_>) -> Result<String> {
        self.signer
            .sign(&self.identity, binding)
            .map_err(|e| anyhow::anyhow!("signing the identity assertion: {e:?}"))
    }
}

/// Every tool the server lists (the `tools` entries of every page, in order).
pub async fn list_tools(access: &ServerAccess) -> Result<Vec<Value>> {
    let mut session = Session::new(access)?;
    let listed = session.list_tools().await;
    session.close().await;
    listed
}

/// Calls `page` with no cursor, then with each page's `nextCursor` until a page has none, and
/// returns every page's `tools`. Fails on a page without a `tools` array, a cursor that is not a
/// string, a cursor seen before, or more than [`MAX_PAGES`] pages.
pub async fn all_pages(
    mut page: impl AsyncFnMut(Option<String>) -> Result<Value>,
) -> Result<Vec<Value>> {
    let mut tools = Vec::new();
    let mut seen = Vec::new();
    let mut cursor = None;
    for _ in 0..MAX_PAGES {
        let result = page(cursor.clone()).await?;
        let listed = result
            .get("tools")
            .and_then(Value::as_array)
            .with_context(|| format!("a tools/list answer without a tools array: {result}"))?;
        tools.extend(listed.iter().cloned());
        cursor = match result.get("nextCursor") {
            None | Some(Value::Null) => return Ok(tools),
            Some(Value::String(next)) if next.is_empty() => return Ok(tools),
            Some(Value::String(next)) => Some(next.clone()),
            Some(other) => bail!("tools/list answered a nextCursor that is not a string: {other}"),
        };
        ensure!(
            !seen.contains(&cursor),
            "tools/list repeats the cursor {:?}: the server's pages loop",
            cursor.as_deref().unwrap_or_default()
        );
        seen.push(cursor.clone());
    }
    bail!("tools/list has more than {MAX_PAGES} pages")
}

/// One conversation with the server.
struct Session<'a> {
    access: &'a ServerAccess,
    http: reqwest::Client,
    url: Url,
    /// Path and query, as the assertion binds them.
    path: String,
    session_id: Option<HeaderValue>,
    protocol_version: Option<String>,
    /// The last JSON-RPC request id used.
    next_id: u64,
    /// HTTP requests sent (each vouched-for one gets its own `jti`).
    sent: u64,
}

impl<'a> Session<'a> {
    fn new(access: &'a ServerAccess) -> Result<Self> {
        let url = Url::parse(&access.url).with_context(|| format!("the URL {:?}", access.url))?;
        ensure!(
            url.scheme() == "http",
            "{}: only http:// is supported (the server's internal address)",
            access.url
        );
        let path = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_string(),
        };
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            access,
            http,
            url,
            path,
            session_id: None,
            protocol_version: None,
            next_id: 0,
            sent: 0,
        })
    }

    async fn list_tools(&mut self) -> Result<Vec<Value>> {
        let initialized = self
            .request(
                "initialize",
                json!({
                    "protocolVersion": PROTOCOL_VERSION,
                    "capabilities": {
                        "roots": {"listChanged": true},
                        "sampling": {"context": {}, "tools": {}},
                        "elicitation": {"form": {}, "url": {}},
                        "tasks": {"list": {}, "cancel": {}, "requests": {
                            "sampling": {"createMessage": {}},
                            "elicitation": {"create": {}}
                        }}
                    },
                    "clientInfo": {"name": "mcp-edge-tool-scopes", "version": env!("CARGO_PKG_VERSION")}
                }),
            )
            .await?;
        self.protocol_version = Some(
            initialized
                .get("protocolVersion")
                .and_then(Value::as_str)
                .with_context(|| format!("initialize answered no protocolVersion: {initialized}"))?
                .to_string(),
        );
        self.notify("notifications/initialized").await?;
        all_pages(async |cursor| {
            let params = match cursor {
                Some(cursor) => json!({"cursor": cursor}),
                None => json!({}),
            };
            self.request("tools/list", params).await
        })
        .await
    }

    /// Ends the server's session, if it gave one (a failure here changes nothing listed).
    async fn close(&mut self) {
        if self.session_id.is_some() {
            let _ = self.send(Method::DELETE, b"").await;
        }
    }

    /// A request's `result`, or the server's error as an error.
    async fn request(&mut self, method: &str, params: Value) -> Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let resp = self
            .send(Method::POST, body.to_string().as_bytes())
            .await
            .with_context(|| format!("{method}: no answer from {}", self.access.url))?;
        if method == "initialize"
            && let Some(session) = resp.headers().get("mcp-session-id")
        {
            self.session_id = Some(session.clone());
        }
        let answer = answer_to(resp, id)
            .await
            .with_context(|| format!("{method} at {}", self.access.url))?;
        if let Some(error) = answer.get("error") {
            bail!("{method}: the server answered with an error: {error}");
        }
        answer
            .get("result")
            .cloned()
            .with_context(|| format!("{method}: an answer with neither result nor error: {answer}"))
    }

    async fn notify(&mut self, method: &str) -> Result<()> {
        let body = json!({"jsonrpc": "2.0", "method": method});
        let resp = self.send(Method::POST, body.to_string().as_bytes()).await?;
        let status = resp.status();
        ensure!(
            status.is_success(),
            "{method}: the server answered {status}: {}",
            text_start(resp).await
        );
        Ok(())
    }

    async fn send(&mut self, method: Method, body: &[u8]) -> Result<Response> {
        self.sent += 1;
        let mut headers = HeaderMap::new();
        headers.insert(
            ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream"),
        );
        if method == Method::POST {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        if let Some(version) = &self.protocol_version {
            headers.insert("mcp-protocol-version", HeaderValue::from_str(version)?);
        }
        if let Some(session) = &self.session_id {
            headers.insert("mcp-session-id", session.clone());
        }
        if let Some(token) = &self.access.token {
            headers.insert(
                AUTHORIZATION,
                HeaderValue::from_str(&format!("Bearer {token}"))?,
            );
        }
        for (name, value) in &self.access.headers {
            headers.append(name, value.clone());
        }
        if let Some(vouch) = &self.access.vouch {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
            let issued_at = now.as_secs();
            // Unique across requests and runs: a server may refuse a `jti` it has seen.
            let request_id = format!(
                "{VOUCHED_CALLER}-{}-{}-{}",
                std::process::id(),
                now.as_nanos(),
                self.sent
            );
            let assertion = vouch.assertion(&Binding {
                method: method.as_str(),
                path: &self.path,
                protocol_version: self.protocol_version.as_deref().unwrap_or_default(),
                request_id: &request_id,
                issued_at,
                body_digest: &body_digest(body),
            })?;
            headers.insert(IDENTITY_HEADER, HeaderValue::from_str(&assertion)?);
        }
        Ok(self
            .http
            .request(method, self.url.clone())
            .headers(headers)
            .body(body.to_vec())
            .send()
            .await?)
    }
}

/// The JSON-RPC answer with `id` in `resp`: its one JSON object (or a batch holding it), or the
/// event of its SSE stream that carries it.
async fn answer_to(mut resp: Response, id: u64) -> Result<Value> {
    let status = resp.status();
    if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
        bail!(
            "the server answered {status}: {}\n(does it want a token (--token), a header \
             (--header), or requests vouched for by the edge (--gateway-secret-env)?)",
            text_start(resp).await
        );
    }
    if status != StatusCode::OK {
        bail!("the server answered {status}: {}", text_start(resp).await);
    }
    let content_type = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let mut read = 0;
    if content_type.starts_with("text/event-stream") {
        let mut sse = SseEvents::default();
        while let Some(chunk) = resp.chunk().await? {
            read += chunk.len();
            ensure!(
                read <= MAX_ANSWER_BYTES,
                "an answer over {MAX_ANSWER_BYTES} bytes"
            );
            for data in sse.push(&chunk) {
                // Events that are not JSON-RPC (or answer something else) are not ours.
                let Ok(message) = serde_json::from_str::<Value>(&data) else {
                    continue;
                };
                if let Some(answer) = answer_in(message, id) {
                    return Ok(answer);
                }
            }
        }
        bail!("the SSE stream ended without the answer to request {id}");
    }
    ensure!(
        content_type.starts_with("application/json"),
        "an answer of type {content_type:?}, neither JSON nor SSE"
    );
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        body.extend_from_slice(&chunk);
        ensure!(
            body.len() <= MAX_ANSWER_BYTES,
            "an answer over {MAX_ANSWER_BYTES} bytes"
        );
    }
    let message: Value = serde_json::from_slice(&body).context("the answer is not JSON")?;
    answer_in(message, id).with_context(|| format!("no answer to request {id} in the JSON answer"))
}

/// The response with `id` in `message` (one message, or a batch).
fn answer_in(message: Value, id: u64) -> Option<Value> {
    let is_answer = |m: &Value| {
        m.get("id").and_then(Value::as_u64) == Some(id)
            && (m.get("result").is_some() || m.get("error").is_some())
    };
    match message {
        Value::Array(batch) => batch.into_iter().find(is_answer),
        one => is_answer(&one).then_some(one),
    }
}

/// The start of an error answer's body, for a message.
async fn text_start(resp: Response) -> String {
    let text = resp.text().await.unwrap_or_default();
    text.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pages(
        answers: Vec<Value>,
    ) -> (
        std::cell::RefCell<Vec<Option<String>>>,
        std::cell::RefCell<std::vec::IntoIter<Value>>,
    ) {
        (
            Default::default(),
            std::cell::RefCell::new(answers.into_iter()),
        )
    }

    async fn walk(answers: Vec<Value>) -> (Result<Vec<Value>>, Vec<Option<String>>) {
        let (asked, answers) = pages(answers);
        let tools = all_pages(async |cursor| {
            asked.borrow_mut().push(cursor);
            answers
                .borrow_mut()
                .next()
                .context("asked past the last page")
        })
        .await;
        (tools, asked.into_inner())
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    #[test]
    fn every_page_is_read_until_there_is_no_cursor() {
        let (tools, asked) = block_on(walk(vec![
            json!({"tools": [{"name": "a"}], "nextCursor": "p2"}),
            json!({"tools": [], "nextCursor": "p3"}),
            json!({"tools": [{"name": "b"}, {"name": "c"}], "nextCursor": null}),
        ]));
        let names: Vec<Value> = tools
            .expect("pages")
            .iter()
            .map(|t| t["name"].clone())
            .collect();
        assert_eq!(names, [json!("a"), json!("b"), json!("c")]);
        assert_eq!(asked, [None, Some("p2".into()), Some("p3".into())]);
    }

    #[test]
    fn looping_and_malformed_pages_fail() {
        let (looping, _) = block_on(walk(vec![
            json!({"tools": [], "nextCursor": "x"}),
            json!({"tools": [], "nextCursor": "x"}),
        ]));
        let err = looping.expect_err("loop").to_string();
        assert!(err.contains("repeats the cursor \"x\""), "{err}");
        for bad in [
            json!({"nextCursor": "x"}),
            json!({"tools": [], "nextCursor": 2}),
        ] {
            assert!(block_on(walk(vec![bad.clone()])).0.is_err(), "{bad}");
        }
    }

    #[test]
    fn the_answer_is_found_by_id_in_a_batch_or_alone() {
        let answer = json!({"jsonrpc": "2.0", "id": 3, "result": {}});
        assert_eq!(answer_in(answer.clone(), 3), Some(answer.clone()));
        assert_eq!(answer_in(answer.clone(), 4), None);
        let note = json!({"jsonrpc": "2.0", "method": "notifications/progress"});
        assert_eq!(answer_in(json!([note, answer.clone()]), 3), Some(answer));
        // A request from the server with the same id is not the answer.
        assert_eq!(answer_in(json!({"id": 3, "method": "roots/list"}), 3), None);
    }
}
