//! An OpenAPI document's selected operations served as tools: each call sent to the API as the
//! verified tenant, with the source's deadline, retries and size cap.
//!
//! The tenant reaches the API only from the edge's assertion, in the ways the source configures:
//! the base URL's `{tenant_id}`, a `tenant_id` path parameter, a header, the assertion itself as
//! a bearer token. With `client_credentials` the backend's own OAuth token for the API goes in
//! `Authorization` (fetched once, reused until a minute before it expires). Redirects are not
//! followed: they could carry the identity headers to another host.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use rmcp::model::{CallToolRequestParams, CallToolResponse, CallToolResult, Tool, ToolAnnotations};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};
use serde_json::{Map, Value};
use tokio::sync::Mutex;

use super::OpenApiTool;
use super::answer::{self, HttpAnswer, NoAnswer};
use super::http_client::{ApiClient, SendError};
use super::request::{self, PlannedRequest};
use crate::sources::config::{BearerConfig, ClientCredentialsConfig, LoadedOpenApi};
use crate::sources::{SourceTool, ToolSource};
use crate::tools::Tenant;

/// Pause before the first retry; doubled before each next one.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// A client-credentials token is fetched anew this long before it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(60);

/// One OpenAPI source.
pub struct OpenApiSource {
    label: String,
    api: String,
    loaded: LoadedOpenApi,
    client: ApiClient,
    token: Mutex<Option<(String, Instant)>>,
}

impl std::fmt::Debug for OpenApiSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenApiSource")
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

impl OpenApiSource {
    /// The source of `loaded`; fails when its CA file cannot be read.
    pub fn new(loaded: LoadedOpenApi) -> anyhow::Result<Self> {
        Ok(Self {
            label: format!("openapi:{}", loaded.config.name),
            api: loaded.config.name.clone(),
            client: ApiClient::new(loaded.config.ca_file.as_deref())?,
            loaded,
            token: Mutex::new(None),
        })
    }

    /// Sends `planned` (with the identity) until it is answered or the attempts are spent.
    async fn send(
        &self,
        tool: &OpenApiTool,
        planned: &PlannedRequest,
        tenant: &Tenant,
        context: &RequestContext<RoleServer>,
    ) -> Result<CallToolResult, NoAnswer> {
        let config = &self.loaded.config;
        let idempotent = matches!(
            tool.method.as_str(),
            "GET" | "HEAD" | "OPTIONS" | "PUT" | "DELETE"
        );
        let attempts = if idempotent { config.retries + 1 } else { 1 };
        let mut backoff = FIRST_BACKOFF;
        let mut last = NoAnswer::Unreachable("not tried".into());
        for attempt in 1..=attempts {
            let request = self.request(planned, tenant, context).await?;
            let started = Instant::now();
            let outcome = tokio::time::timeout(
                Duration::from_millis(config.timeout_ms),
                self.exchange(request, tool),
            )
            .await
            .unwrap_or(Err(NoAnswer::Timeout {
                ms: config.timeout_ms,
            }));
            let retryable = match &outcome {
                Ok((status, _)) => matches!(status, 502..=504),
                Err(NoAnswer::Timeout { .. } | NoAnswer::Unreachable(_)) => true,
                Err(_) => false,
            };
            tracing::info!(
                source = %self.label,
                tool = %tool.name,
                attempt,
                status = outcome.as_ref().map(|(s, _)| *s).unwrap_or(0),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "API call"
            );
            match outcome {
                Ok((status, result)) if !(retryable && attempt < attempts) => {
                    if status == 401 {
                        // A client-credentials token the API no longer takes: fetch anew next time.
                        *self.token.lock().await = None;
                    }
                    return Ok(result);
                }
                Err(failure) if !(retryable && attempt < attempts) => return Err(failure),
                Ok(_) => last = NoAnswer::Unreachable("retrying".into()),
                Err(failure) => last = failure,
            }
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
        Err(last)
    }

    /// The request of `planned` with the identity the source forwards.
    async fn request(
        &self,
        planned: &PlannedRequest,
        tenant: &Tenant,
        context: &RequestContext<RoleServer>,
    ) -> Result<http::Request<Full<Bytes>>, NoAnswer> {
        let identity = &self.loaded.config.identity;
        let mut builder = http::Request::builder()
            .method(planned.method.clone())
            .uri(&planned.url)
            .header(http::header::ACCEPT, "application/json")
            .header(
                http::header::USER_AGENT,
                concat!("mcp-edge-backend/", env!("CARGO_PKG_VERSION")),
            );
        for (name, value) in &planned.headers {
            builder = builder.header(name, value);
        }
        if let Some(header) = &identity.tenant_header {
            builder = builder.header(header, &tenant.tenant_id);
        }
        if let Some(header) = &identity.user_header {
            builder = builder.header(header, &tenant.user_id);
        }
        let bearer = match identity.bearer {
            BearerConfig::None => None,
            BearerConfig::Assertion => Some(
                context
                    .extensions
                    .get::<http::request::Parts>()
                    .and_then(|parts| parts.headers.get(mcp_edge_contract::assertion::HEADER))
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| NoAnswer::Credentials("no identity assertion".into()))?
                    .to_string(),
            ),
            BearerConfig::ClientCredentials => Some(self.client_token().await?),
        };
        if let Some(token) = bearer {
            builder = builder.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = match &planned.body {
            Some(body) => {
                builder = builder.header(http::header::CONTENT_TYPE, "application/json");
                Full::new(Bytes::from(body.clone()))
            }
            None => Full::new(Bytes::new()),
        };
        builder
            .body(body)
            .map_err(|e| NoAnswer::Arguments(e.to_string()))
    }

    /// One request and its answer, read up to the cap.
    async fn exchange(
        &self,
        request: http::Request<Full<Bytes>>,
        tool: &OpenApiTool,
    ) -> Result<(u16, CallToolResult), NoAnswer> {
        let cap = self.loaded.config.max_response_bytes;
        let response = self.client.send(request, cap).await.map_err(|e| match e {
            SendError::TooLarge => NoAnswer::TooLarge { cap },
            SendError::Unreachable(reason) => NoAnswer::Unreachable(reason),
        })?;
        let content_type = response
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let headers = tool
            .response_headers
            .iter()
            .filter_map(|name| {
                let value = response.headers.get(name.as_str())?.to_str().ok()?;
                Some((name.clone(), value.to_owned()))
            })
            .collect();
        let answer = HttpAnswer {
            status: response.status,
            content_type,
            body: &response.body,
            headers,
        };
        Ok((
            response.status,
            answer::from_answer(&self.api, &tool.method, &answer),
        ))
    }

    /// The backend's own token for this API (client credentials), cached.
    async fn client_token(&self) -> Result<String, NoAnswer> {
        let mut cached = self.token.lock().await;
        if let Some((token, until)) = cached.as_ref()
            && Instant::now() < *until
        {
            return Ok(token.clone());
        }
        let Some(config) = &self.loaded.config.identity.client_credentials else {
            return Err(NoAnswer::Credentials(
                "no client_credentials configured".into(),
            ));
        };
        let (token, lifetime) = fetch_token(&self.client, config, self.loaded.config.timeout_ms)
            .await
            .map_err(NoAnswer::Credentials)?;
        let until = Instant::now() + lifetime.saturating_sub(TOKEN_MARGIN);
        *cached = Some((token.clone(), until));
        Ok(token)
    }
}

/// A token from `config.token_url` (RFC 6749 §4.4, client_secret_basic) and how long it lives.
async fn fetch_token(
    client: &ApiClient,
    config: &ClientCredentialsConfig,
    timeout_ms: u64,
) -> Result<(String, Duration), String> {
    let secret = std::env::var(&config.client_secret_env).map_err(|_| {
        format!(
            "the environment variable {} is not set",
            config.client_secret_env
        )
    })?;
    let form = |text: &str| utf8_percent_encode(text, NON_ALPHANUMERIC).to_string();
    let mut body = "grant_type=client_credentials".to_string();
    if let Some(scope) = &config.scope {
        body.push_str("&scope=");
        body.push_str(&form(scope));
    }
    // RFC 6749 §2.3.1: the id and secret are form-encoded before they are joined.
    let basic = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        form(&config.client_id),
        form(&secret)
    ));
    let request = http::Request::post(&config.token_url)
        .header(http::header::AUTHORIZATION, format!("Basic {basic}"))
        .header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .header(http::header::ACCEPT, "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| format!("token_url: {e}"))?;
    let response = tokio::time::timeout(
        Duration::from_millis(timeout_ms),
        client.send(request, 64 * 1024),
    )
    .await
    .map_err(|_| format!("the token endpoint did not answer within {timeout_ms} ms"))?
    .map_err(|e| match e {
        SendError::TooLarge => "the token endpoint's answer is too large".to_string(),
        SendError::Unreachable(reason) => format!("token endpoint: {reason}"),
    })?;
    let status = response.status;
    let body: Value = serde_json::from_slice(&response.body)
        .map_err(|_| format!("the token endpoint answered {status} without JSON"))?;
    let token = body
        .get("access_token")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("the token endpoint answered {status} without an access_token"))?;
    let lifetime = body
        .get("expires_in")
        .and_then(Value::as_u64)
        .unwrap_or(300);
    Ok((token.to_string(), Duration::from_secs(lifetime)))
}

/// `tool` as `tools/list` shows it.
fn listed(tool: &OpenApiTool) -> Tool {
    let input = match &tool.input_schema {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    let description = if tool.description.is_empty() {
        format!("{} {}", tool.method, tool.path)
    } else {
        tool.description.clone()
    };
    let mut listed = Tool::new(tool.name.clone(), description, Arc::new(input));
    if let Some(Value::Object(output)) = &tool.output_schema {
        listed.output_schema = Some(Arc::new(output.clone()));
    }
    listed.annotations = Some(ToolAnnotations::from_raw(
        Some(tool.operation_id.clone()),
        Some(tool.hints.read_only),
        Some(tool.hints.destructive),
        Some(tool.hints.idempotent),
        Some(false),
    ));
    listed
}

#[async_trait]
impl ToolSource for OpenApiSource {
    fn label(&self) -> &str {
        &self.label
    }

    fn instructions(&self) -> Option<String> {
        let names: Vec<&str> = self.loaded.tools.iter().map(|t| t.name.as_str()).collect();
        Some(format!(
            "Tools of the API {}: {}. Each call acts only on your organisation's data there.",
            self.api,
            names.join(", ")
        ))
    }

    fn tools(&self) -> Vec<SourceTool> {
        self.loaded
            .tools
            .iter()
            .map(|tool| SourceTool {
                tool: listed(tool),
                scope: tool.scope.clone(),
                billable: tool.billable,
            })
            .collect()
    }

    async fn call(
        &self,
        tenant: Tenant,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let Some(tool) = self.loaded.tools.iter().find(|t| t.name == request.name) else {
            return Err(ErrorData::invalid_params("tool not found", None));
        };
        let args = request.arguments.unwrap_or_default();
        let result = match request::plan(
            tool,
            &self.loaded.config.base_url,
            &tenant.tenant_id,
            &args,
        ) {
            Err(reason) => {
                answer::from_failure(&self.api, &tool.method, &NoAnswer::Arguments(reason))
            }
            Ok(planned) => match self.send(tool, &planned, &tenant, &context).await {
                Ok(result) => result,
                Err(failure) => {
                    tracing::warn!(source = %self.label, tool = %tool.name, ?failure, "API call failed");
                    answer::from_failure(&self.api, &tool.method, &failure)
                }
            },
        };
        Ok(CallToolResponse::Complete(result))
    }
}
