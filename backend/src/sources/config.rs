//! The `--tool-sources` file: which sources the backend serves tools from. YAML (JSON is YAML
//! too), every field checked, unknown fields refused:
//!
//! ```yaml
//! demo: true                      # the built-in project tracker (default true)
//! openapi:
//!   - name: notes                 # the source's label in logs and errors
//!     document: notes.openapi.yaml   # relative to this file; YAML or JSON, OpenAPI 3.0 or 3.1
//!     base_url: "http://127.0.0.1:3000/{tenant_id}"
//!     select: { operations: [listNotes, getNote], tags: [notes] }   # nothing else is exposed
//!     operations:                 # per operationId, all optional
//!       createNote: { name: create_note, scope: "mcp:write", billable: true }
//!     identity: { tenant_header: X-Tenant-Id, user_header: X-User-Id, bearer: none }
//!     timeout_ms: 5000
//!     retries: 2                  # idempotent methods only
//!     max_response_bytes: 1048576
//! ```
//!
//! The file and the documents are read once at start-up; any error names the file and what in it
//! is wrong, and the backend does not start.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::openapi::{self, OpenApiTool, Selection, Warning};

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourcesFile {
    /// Serve the demo project tracker.
    #[serde(default = "default_true")]
    pub demo: bool,
    /// OpenAPI documents whose selected operations become tools.
    #[serde(default)]
    pub openapi: Vec<OpenApiSourceConfig>,
}

impl Default for SourcesFile {
    fn default() -> Self {
        Self {
            demo: true,
            openapi: Vec::new(),
        }
    }
}

/// One OpenAPI source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenApiSourceConfig {
    pub name: String,
    /// The document, relative to the sources file.
    pub document: PathBuf,
    /// Where the API is; `{tenant_id}` is replaced by the verified tenant (percent-encoded).
    pub base_url: String,
    #[serde(default)]
    pub select: SelectConfig,
    #[serde(default)]
    pub operations: BTreeMap<String, OperationConfig>,
    #[serde(default)]
    pub identity: IdentityConfig,
    /// One attempt's deadline, connection to the last byte (milliseconds).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// More attempts after a failed one, for idempotent methods only (GET, HEAD, OPTIONS, PUT,
    /// DELETE), on a connection failure, a timeout, 502, 503 or 504.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// The largest answer read; a larger one fails the call.
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: usize,
    /// CA certificates (PEM) the API's certificate must chain to, instead of the system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

/// Which operations become tools.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectConfig {
    #[serde(default)]
    pub operations: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// What the configuration says of one operation.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperationConfig {
    /// The tool's name instead of the operationId.
    pub name: Option<String>,
    /// The scope instead of the document's security requirement's.
    pub scope: Option<String>,
    /// A successful call is billed (and counts against the daily quota).
    #[serde(default)]
    pub billable: bool,
}

/// How the API learns who the call is for.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// A request header carrying the verified tenant id.
    pub tenant_header: Option<String>,
    /// A request header carrying the verified user (the token's `sub`).
    pub user_header: Option<String>,
    /// What goes in `Authorization`.
    #[serde(default)]
    pub bearer: BearerConfig,
    /// With `bearer: client_credentials`: the backend's own OAuth client for this API.
    pub client_credentials: Option<ClientCredentialsConfig>,
}

/// The `Authorization` header sent to the API.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BearerConfig {
    /// None.
    #[default]
    None,
    /// The edge's signed identity assertion (`x-mcp-identity`), for APIs that verify it.
    Assertion,
    /// A token the backend gets with its own client credentials (RFC 6749 §4.4).
    ClientCredentials,
}

/// The backend's OAuth client for one API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCredentialsConfig {
    pub token_url: String,
    pub client_id: String,
    /// The environment variable holding the client secret (never the secret itself).
    pub client_secret_env: String,
    #[serde(default)]
    pub scope: Option<String>,
}

fn default_true() -> bool {
    true
}
fn default_timeout_ms() -> u64 {
    10_000
}
fn default_retries() -> u32 {
    2
}
fn default_max_response_bytes() -> usize {
    1_048_576
}

/// A sources file that cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum SourcesError {
    #[error("{file}: {reason}")]
    File { file: String, reason: String },
    #[error(transparent)]
    Document(#[from] openapi::DocumentError),
}

/// One OpenAPI source as read: its configuration, its tools, and the operations left out.
#[derive(Debug, Clone)]
pub struct LoadedOpenApi {
    pub config: OpenApiSourceConfig,
    pub tools: Vec<OpenApiTool>,
    pub warnings: Vec<Warning>,
}

/// The file at `path` and every document it names, translated (no network).
pub fn load_sources(path: &Path) -> Result<(SourcesFile, Vec<LoadedOpenApi>), SourcesError> {
    let file = path.display().to_string();
    let fail = |reason: String| SourcesError::File {
        file: file.clone(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read it: {e}")))?;
    let sources: SourcesFile = serde_yaml::from_str(&text).map_err(|e| fail(e.to_string()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut loaded = Vec::new();
    let mut names = BTreeSet::new();
    for (index, config) in sources.openapi.iter().enumerate() {
        let at = format!("openapi[{index}] ({})", config.name);
        if !names.insert(config.name.clone()) {
            return Err(fail(format!("{at}: a second source with this name")));
        }
        check_source(config).map_err(|reason| fail(format!("{at}: {reason}")))?;
        let doc_path = dir.join(&config.document);
        let doc_file = doc_path.display().to_string();
        let doc_text = std::fs::read_to_string(&doc_path)
            .map_err(|e| fail(format!("{at}: cannot read the document {doc_file}: {e}")))?;
        let doc: serde_json::Value = serde_yaml::from_str(&doc_text).map_err(|e| {
            SourcesError::Document(openapi::DocumentError {
                file: doc_file.clone(),
                path: String::new(),
                reason: format!("not YAML or JSON: {e}"),
            })
        })?;
        let (tools, mut warnings) =
            openapi::tools_from_document(&doc, &doc_file, &selection(config))?;
        let (tools, refused) = openapi::keep_tenant_out(tools, &config.identity);
        warnings.extend(refused);
        if let Some(blind) = tools.iter().find(|tool| !tells_the_tenant(config, tool)) {
            return Err(fail(format!(
                "{at}: the API would not know the tenant of {} ({} {}): put {{tenant_id}} in \
base_url or in the operation's path, set identity.tenant_header, or use identity.bearer: assertion",
                blind.name, blind.method, blind.path
            )));
        }
        let unknown: Vec<String> = config
            .select
            .operations
            .iter()
            .chain(config.operations.keys())
            .filter(|id| !tools.iter().any(|t| &t.operation_id == *id))
            .filter(|id| {
                !warnings
                    .iter()
                    .any(|w| w.operation.contains(&format!("({id})")))
            })
            .cloned()
            .collect();
        for id in unknown {
            warnings.push(Warning {
                operation: id,
                reason: format!("no operation of {doc_file} has this operationId"),
            });
        }
        loaded.push(LoadedOpenApi {
            config: config.clone(),
            tools,
            warnings,
        });
    }
    Ok((sources, loaded))
}

/// Whether a call of `tool` tells the API which tenant it is for, from the edge's word alone: the
/// API would otherwise serve every tenant alike.
fn tells_the_tenant(config: &OpenApiSourceConfig, tool: &OpenApiTool) -> bool {
    config.base_url.contains("{tenant_id}")
        || config.identity.tenant_header.is_some()
        || config.identity.bearer == BearerConfig::Assertion
        || tool
            .parameters
            .iter()
            .any(|p| p.location == openapi::Location::TenantPath)
}

/// What must hold of a source before its document is read.
fn check_source(config: &OpenApiSourceConfig) -> Result<(), String> {
    if config.name.is_empty() {
        return Err("name is empty".into());
    }
    let url = config.base_url.replace("{tenant_id}", "tenant");
    let parsed = http::Uri::try_from(url.as_str())
        .map_err(|e| format!("base_url {:?} is not a URL: {e}", config.base_url))?;
    if !matches!(parsed.scheme_str(), Some("http" | "https")) || parsed.host().is_none() {
        return Err(format!(
            "base_url {:?} must be an http or https URL",
            config.base_url
        ));
    }
    if config.base_url.contains('?') || config.base_url.contains('#') {
        return Err("base_url must have no query or fragment".into());
    }
    let host_end = config
        .base_url
        .find("://")
        .map(|i| i + 3)
        .and_then(|start| config.base_url[start..].find('/').map(|i| start + i))
        .unwrap_or(config.base_url.len());
    if config.base_url[..host_end].contains("{tenant_id}") {
        return Err("{tenant_id} may only be in base_url's path, not its host".into());
    }
    let identity = &config.identity;
    for header in [&identity.tenant_header, &identity.user_header]
        .into_iter()
        .flatten()
    {
        if http::HeaderName::try_from(header.as_str()).is_err() {
            return Err(format!("{header:?} is not a header name"));
        }
        if header.eq_ignore_ascii_case("authorization") || header.eq_ignore_ascii_case("host") {
            return Err(format!("{header:?} cannot carry the identity"));
        }
    }
    match (identity.bearer, &identity.client_credentials) {
        (BearerConfig::ClientCredentials, None) => {
            return Err("bearer: client_credentials needs identity.client_credentials".into());
        }
        (BearerConfig::None | BearerConfig::Assertion, Some(_)) => {
            return Err(
                "identity.client_credentials is set but bearer is not client_credentials".into(),
            );
        }
        _ => {}
    }
    if !(1..=300_000).contains(&config.timeout_ms) {
        return Err("timeout_ms must be 1 to 300000".into());
    }
    if config.retries > 5 {
        return Err("retries must be 0 to 5".into());
    }
    if !(1..=64 * 1_048_576).contains(&config.max_response_bytes) {
        return Err("max_response_bytes must be 1 to 67108864".into());
    }
    if config.select.operations.is_empty() && config.select.tags.is_empty() {
        return Err("select names no operation and no tag: nothing would be served".into());
    }
    Ok(())
}

/// The translator's view of a source's selection and per-operation settings.
fn selection(config: &OpenApiSourceConfig) -> Selection {
    Selection {
        operation_ids: config.select.operations.iter().cloned().collect(),
        tags: config.select.tags.iter().cloned().collect(),
        names: config
            .operations
            .iter()
            .filter_map(|(id, op)| op.name.clone().map(|name| (id.clone(), name)))
            .collect(),
        scopes: config
            .operations
            .iter()
            .filter_map(|(id, op)| op.scope.clone().map(|scope| (id.clone(), scope)))
            .collect(),
        billable: config
            .operations
            .iter()
            .filter(|(_, op)| op.billable)
            .map(|(id, _)| id.clone())
            .collect(),
    }
}

#[cfg(test)]
mod tests;
