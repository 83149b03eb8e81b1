//! An authenticated caller as the token cache keeps it and its requests share it: the tenant, and
//! the tenant's identity claims checked and encoded once for the identity assertion. A request
//! with a cached token then costs neither a copy of its claims nor their encoding (issue 11).

use std::ops::Deref;
use std::rc::Rc;

use mcp_edge_contract::IdentityClaims;

use crate::tenant::TenantContext;

/// One verified token's caller. Dereferences to its [`TenantContext`].
#[derive(Debug, PartialEq, Eq)]
pub struct Caller {
    pub tenant: TenantContext,
    /// `None`: the identity cannot be signed as it is; its requests are refused when the edge
    /// would vouch for them (`Denial::CannotVouch`).
    pub identity_claims: Option<IdentityClaims>,
}

impl Caller {
    pub fn new(tenant: TenantContext) -> Rc<Self> {
        let identity_claims = IdentityClaims::new(&tenant.identity).ok();
        Rc::new(Self {
            tenant,
            identity_claims,
        })
    }
}

impl Deref for Caller {
    type Target = TenantContext;

    fn deref(&self) -> &TenantContext {
        &self.tenant
    }
}
