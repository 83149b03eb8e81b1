//! The tenant a tool call runs for, looked up once per call and handed to the tool as a typed value.
//!
//! rmcp's Streamable HTTP server puts the request's `http::request::Parts` into the call's
//! `RequestContext` extensions, and [`crate::gateway_auth`] put the verified [`TenantContext`] into
//! the parts' extensions. `ProjectTools::call_tool` takes it from there once ([`Tenant::of_call`]),
//! meters with it and [`Tenant::hand_over`]s it; each tool declares a `Tenant` parameter and rmcp's
//! extractor ([`FromContextPart`]) gives it that value. A call without one fails as an internal
//! error: there is no default tenant.

use rmcp::handler::server::common::{AsRequestContext, FromContextPart};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};

use crate::tenant::TenantContext;

/// The verified tenant of one tool call. Dereferences to its [`TenantContext`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant(TenantContext);

impl std::ops::Deref for Tenant {
    type Target = TenantContext;

    fn deref(&self) -> &TenantContext {
        &self.0
    }
}

impl Tenant {
    /// The verified tenant of the HTTP request behind this call.
    pub fn of_call(context: &RequestContext<RoleServer>) -> Result<Self, ErrorData> {
        context
            .extensions
            .get::<http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<TenantContext>())
            .cloned()
            .map(Self)
            .ok_or_else(missing)
    }

    /// Puts the tenant where the tool's `Tenant` parameter is extracted from.
    pub fn hand_over(self, context: &mut RequestContext<RoleServer>) {
        context.extensions.insert(self);
    }
}

impl<C: AsRequestContext> FromContextPart<C> for Tenant {
    fn from_context_part(context: &mut C) -> Result<Self, ErrorData> {
        context
            .as_request_context_mut()
            .extensions
            .remove::<Tenant>()
            .ok_or_else(missing)
    }
}

fn missing() -> ErrorData {
    tracing::error!("tool call without a verified tenant context");
    ErrorData::internal_error("no verified tenant context for this request", None)
}
