//! Keeps the tenant out of the agent's hands: an operation parameter that would name the tenant
//! (or the user, or carry a credential) is never a tool argument.
//!
//! A path parameter called `tenant_id` (`/orgs/{tenant_id}/notes`) is filled with the verified
//! tenant and leaves the input schema. An operation whose query or header parameter is called
//! `tenant_id`, or that declares the header the source sends the identity in (or
//! `Authorization`), is left out with a warning: the agent could otherwise send a tenant of its
//! choosing, or the API could read two.

use serde_json::Value;

use super::{Location, OpenApiTool, Warning};
use crate::sources::config::IdentityConfig;

/// The tool argument name that is never taken from tool input.
pub const TENANT_PARAMETER: &str = "tenant_id";

/// `tools` with their `tenant_id` path parameters filled by the tenant, and the warnings of those
/// left out.
pub fn keep_tenant_out(
    tools: Vec<OpenApiTool>,
    identity: &IdentityConfig,
) -> (Vec<OpenApiTool>, Vec<Warning>) {
    let reserved: Vec<&str> = [
        identity.tenant_header.as_deref(),
        identity.user_header.as_deref(),
    ]
    .into_iter()
    .flatten()
    .chain(["authorization"])
    .collect();
    let mut kept = Vec::new();
    let mut warnings = Vec::new();
    for mut tool in tools {
        let refused = tool.parameters.iter().find_map(|p| match p.location {
            Location::Query if p.name == TENANT_PARAMETER => Some(format!(
                "its query parameter {TENANT_PARAMETER:?} would let the agent name the tenant"
            )),
            Location::Header if reserved.iter().any(|r| r.eq_ignore_ascii_case(&p.name)) => {
                Some(format!(
                    "its header parameter {:?} is the one the identity travels in",
                    p.name
                ))
            }
            Location::Header if p.name.eq_ignore_ascii_case(TENANT_PARAMETER) => Some(format!(
                "its header parameter {:?} would let the agent name the tenant",
                p.name
            )),
            _ => None,
        });
        if let Some(reason) = refused {
            warnings.push(Warning {
                operation: format!("{} {} ({})", tool.method, tool.path, tool.operation_id),
                reason,
            });
            continue;
        }
        for p in &mut tool.parameters {
            if p.location == Location::Path && p.name == TENANT_PARAMETER {
                p.location = Location::TenantPath;
            }
        }
        if tool
            .parameters
            .iter()
            .any(|p| p.location == Location::TenantPath)
        {
            if let Some(props) = tool.input_schema["properties"].as_object_mut() {
                props.remove(TENANT_PARAMETER);
            }
            if let Some(required) = tool.input_schema["required"].as_array_mut() {
                required.retain(|r| r != &Value::from(TENANT_PARAMETER));
            }
        }
        kept.push(tool);
    }
    (kept, warnings)
}
