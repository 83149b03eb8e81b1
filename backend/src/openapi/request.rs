//! A tool call's arguments as the HTTP request the operation describes: pure, no I/O.
//!
//! Path arguments are percent-encoded as one segment each (`.`/`..` refused, so an argument
//! cannot climb out of its path); query arguments are `name=value` pairs (an array repeats the
//! name, OpenAPI's default `form`/`explode`); header arguments are header values; `body` is the
//! JSON request body. An argument the operation does not declare is refused, as is a missing
//! required one: the agent is told which.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Map, Value};

use super::tenant_params::TENANT_PARAMETER;
use super::{Location, OpenApiTool};

/// Everything but RFC 3986's unreserved characters is encoded.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The request to send, before the identity is added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedRequest {
    pub method: http::Method,
    pub url: String,
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// The JSON body, serialised.
    pub body: Option<Vec<u8>>,
}

/// `base_url` with `{tenant_id}` replaced by the encoded tenant.
pub fn tenant_base_url(base_url: &str, tenant_id: &str) -> Result<String, String> {
    Ok(base_url
        .replace("{tenant_id}", &segment(tenant_id)?)
        .trim_end_matches('/')
        .to_string())
}

/// The HTTP request of a call of `tool` with `args`, for `tenant_id`, against `base_url`.
pub fn plan(
    tool: &OpenApiTool,
    base_url: &str,
    tenant_id: &str,
    args: &Map<String, Value>,
) -> Result<PlannedRequest, String> {
    for name in args.keys() {
        let declared = name == "body" && tool.has_body
            || tool
                .parameters
                .iter()
                .any(|p| &p.name == name && p.location != Location::TenantPath);
        if !declared {
            return Err(format!("{} takes no argument {name:?}", tool.name));
        }
    }
    let present = |name: &str| args.get(name).filter(|v| !v.is_null());
    let mut path = tool.path.clone();
    let mut query = Vec::new();
    let mut headers = Vec::new();
    for p in &tool.parameters {
        let value = match p.location {
            Location::TenantPath => {
                path = path.replace(&format!("{{{TENANT_PARAMETER}}}"), &segment(tenant_id)?);
                continue;
            }
            _ => match present(&p.name) {
                Some(value) => value,
                None if p.required => {
                    return Err(format!("{} needs the argument {:?}", tool.name, p.name));
                }
                None => continue,
            },
        };
        match p.location {
            Location::Path => {
                let text = scalar(&p.name, value)?;
                let encoded = segment(&text).map_err(|e| format!("{:?}: {e}", p.name))?;
                path = path.replace(&format!("{{{}}}", p.name), &encoded);
            }
            Location::Query => {
                let values = match value {
                    Value::Array(items) => items
                        .iter()
                        .map(|item| scalar(&p.name, item))
                        .collect::<Result<Vec<_>, _>>()?,
                    other => vec![scalar(&p.name, other)?],
                };
                for v in values {
                    query.push(format!(
                        "{}={}",
                        utf8_percent_encode(&p.name, COMPONENT),
                        utf8_percent_encode(&v, COMPONENT)
                    ));
                }
            }
            Location::Header => {
                let name = http::HeaderName::try_from(p.name.as_str())
                    .map_err(|_| format!("{:?} is not a header name", p.name))?;
                let text = scalar(&p.name, value)?;
                let value = http::HeaderValue::try_from(text)
                    .map_err(|_| format!("{:?} is not a valid header value", p.name))?;
                headers.push((name, value));
            }
            Location::TenantPath => {}
        }
    }
    let body = match present("body") {
        Some(body) if tool.has_body => {
            Some(serde_json::to_vec(body).map_err(|e| format!("body: {e}"))?)
        }
        _ => None,
    };
    let method = http::Method::from_bytes(tool.method.as_bytes())
        .map_err(|_| format!("{} is not an HTTP method", tool.method))?;
    let mut url = format!("{}{}", tenant_base_url(base_url, tenant_id)?, path);
    if !query.is_empty() {
        url.push('?');
        url.push_str(&query.join("&"));
    }
    Ok(PlannedRequest {
        method,
        url,
        headers,
        body,
    })
}

/// One path segment: encoded, and never empty, `.` or `..`.
fn segment(text: &str) -> Result<String, String> {
    if text.is_empty() || text == "." || text == ".." {
        return Err(format!("{text:?} cannot be a path segment"));
    }
    Ok(utf8_percent_encode(text, COMPONENT).to_string())
}

/// A string, number or boolean argument as text.
fn scalar(name: &str, value: &Value) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(format!("{name:?} must be a string, a number or a boolean")),
    }
}
