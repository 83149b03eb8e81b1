//! An authenticated caller as the token cache keeps it and its requests share it: the tenant, and
//! the tenant's identity headers encoded and checked once for the gateway signature. A request
//! with a cached token then costs neither a copy of its claims nor their encoding (issue 11).

use std::ops::Deref;
use std::rc::Rc;

use mcp_edge_contract::IdentityHeaders;

use crate::tenant::TenantContext;

/// One verified token's caller. Dereferences to its [`TenantContext`].
#[derive(Debug, PartialEq, Eq)]
pub struct Caller {
    pub tenant: TenantContext,
    /// `None`: the identity cannot travel in headers as signed; its requests are refused when
    /// the edge would vouch for them (`Denial::CannotVouch`), as before any cache.
    pub identity_headers: Option<IdentityHeaders>,
}

impl Caller {
    pub fn new(tenant: TenantContext) -> Rc<Self> {
        let identity_headers = IdentityHeaders::new(&tenant.identity).ok();
        Rc::new(Self {
            tenant,
            identity_headers,
        })
    }
}

impl Deref for Caller {
    type Target = TenantContext;

    fn deref(&self) -> &TenantContext {
        &self.tenant
    }
}
