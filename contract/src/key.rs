//! The gateway secret both sides hold, and the body digest the assertion binds.
//!
//! The secret signs the identity assertion ([`crate::assertion`]) and binds other values the edge
//! hands out to one identity (session and event ids, `filter/src/session.rs`). [`GatewayKey`]
//! keys HMAC-SHA256 once, so a request pays for its own bytes only.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The shortest gateway secret either side accepts (bytes).
pub const MIN_SECRET_LEN: usize = 32;

/// SHA-256 of a body, base64url without padding (the assertion's `body_sha256`).
pub fn body_digest(body: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(body))
}

/// The secret is shorter than [`MIN_SECRET_LEN`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretTooShort;

impl std::fmt::Display for SecretTooShort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "gateway secret shorter than {MIN_SECRET_LEN} bytes")
    }
}

impl std::error::Error for SecretTooShort {}

/// The gateway secret, keyed once: HMAC-SHA256's inner and outer pads are hashed when the key is
/// made, not on every request.
#[derive(Clone)]
pub struct GatewayKey(Hmac<Sha256>);

impl std::fmt::Debug for GatewayKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GatewayKey(<redacted>)")
    }
}

impl GatewayKey {
    /// Refuses a secret shorter than [`MIN_SECRET_LEN`].
    pub fn new(secret: &[u8]) -> Result<Self, SecretTooShort> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(SecretTooShort);
        }
        Hmac::<Sha256>::new_from_slice(secret)
            .map(Self)
            .map_err(|_| SecretTooShort)
    }

    /// A fresh HMAC-SHA256 keyed with the gateway secret.
    pub fn keyed_mac(&self) -> Hmac<Sha256> {
        self.0.clone()
    }
}
