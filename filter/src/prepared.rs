//! What depends only on the configuration, computed once when it is loaded rather than on every
//! request: the token policy, the metadata document and URL, the 401 challenge's scope string, the
//! keyed gateway secret and the identity assertion's fixed part.

use mcp_edge_contract::{AssertionSigner, GatewayKey};

use crate::config::EdgeConfig;
use crate::prm;
use crate::token::TokenPolicy;

/// Per-request constants derived from an [`EdgeConfig`].
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    pub token_policy: TokenPolicy,
    /// Where the RFC 9728 document is served for the resource (path only).
    pub metadata_path: String,
    /// The absolute URL of that document, for `WWW-Authenticate: Bearer resource_metadata="…"`.
    pub metadata_url: String,
    /// The serialized RFC 9728 document.
    pub metadata_document: Vec<u8>,
    /// `scope="…"` of the 401 challenge: what a client should ask for first.
    pub challenge_scope: String,
    /// The gateway secret, keyed once (`None` if it is too short: nothing can be vouched for).
    pub gateway_key: Option<GatewayKey>,
    /// The assertion's JOSE header and `iss`/`aud`, encoded and fed to the HMAC once (`None`
    /// with no usable key).
    pub assertion_signer: Option<AssertionSigner>,
}

impl Prepared {
    pub fn new(cfg: &EdgeConfig) -> Self {
        let gateway_key = GatewayKey::new(&cfg.gateway_secret).ok();
        let assertion_signer = gateway_key
            .as_ref()
            .map(|key| AssertionSigner::new(key, &cfg.assertion_issuer, &cfg.assertion_audience));
        Self {
            token_policy: TokenPolicy {
                issuers: cfg.issuers.clone(),
                audiences: cfg.audiences.clone(),
                algorithms: cfg.algorithms.clone(),
                leeway_seconds: cfg.leeway_seconds,
                required_typ: cfg.required_typ.clone(),
                claims: cfg.claims.clone(),
            },
            metadata_path: prm::metadata_path(cfg),
            metadata_url: prm::metadata_url(cfg),
            metadata_document: prm::document(cfg).to_string().into_bytes(),
            challenge_scope: cfg.challenge_scopes.join(" "),
            gateway_key,
            assertion_signer,
        }
    }
}
