//! `Mcp-Session-Id` and SSE event ids bound to the token's tenant and user, with nothing stored:
//! the edge hands the client `<sid>.<mac>` for the upstream's `<sid>` (and `<id>.<mac>` for every
//! event id of a stream) and, on every later request, checks the mac against the request's
//! authenticated identity before forwarding `<sid>` (or the `Last-Event-ID` `<id>`) alone. Any
//! replica with the same gateway secret checks it; an id from one tenant (or user) is refused for
//! another, so a client resumes only streams it was sent. The two kinds of id are keyed apart: a
//! session id is never accepted as an event id, nor the other way round.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use mcp_edge_contract::GatewayKey;
use sha2::Sha256;

/// Separates the upstream's id from the mac (`.` is visible ASCII, as the spec requires of ids;
/// the mac itself is base64url, so the last `.` is the separator).
const SEPARATOR: char = '.';
/// The mac is truncated to 128 bits.
const MAC_BYTES: usize = 16;

/// What an id names: the mac of one kind is not valid for the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoundId {
    /// `Mcp-Session-Id`.
    Session,
    /// An SSE event's `id` (sent back as `Last-Event-ID`).
    Event,
}

impl BoundId {
    fn label(self) -> &'static str {
        match self {
            Self::Session => "mcp-session",
            Self::Event => "mcp-event",
        }
    }
}

/// Why an id the client sent is refused (for a session id the client gets 404, as for an
/// unknown session).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionRefused {
    /// No mac: not an id this edge handed out.
    Unbound,
    /// The mac does not match this tenant, user and id.
    Mismatch,
}

/// Tenant and user never hold a control character here: the signature refuses such an identity
/// before any request is forwarded (`CannotVouch`), so the newlines cannot be shifted.
/// HMAC(gateway key, label + "\n" + tenant + "\n" + user + "\n" + id), not yet finalized (label:
/// "mcp-session" or "mcp-event").
fn keyed(key: &GatewayKey, kind: BoundId, tenant: &str, user: &str, id: &str) -> Hmac<Sha256> {
    let mut mac = key.keyed_mac();
    for (i, part) in [kind.label(), tenant, user, id].iter().enumerate() {
        if i > 0 {
            mac.update(b"\n");
        }
        mac.update(part.as_bytes());
    }
    mac
}

/// The session id the client gets for the upstream's `sid`.
pub fn bind(key: &GatewayKey, tenant: &str, user: &str, sid: &str) -> String {
    bind_id(key, BoundId::Session, tenant, user, sid)
}

/// The upstream's session id inside `bound`, if `bound` was handed out for this tenant and user.
pub fn check<'a>(
    key: &GatewayKey,
    tenant: &str,
    user: &str,
    bound: &'a str,
) -> Result<&'a str, SessionRefused> {
    check_id(key, BoundId::Session, tenant, user, bound)
}

/// The id of kind `kind` the client gets for the upstream's `id`.
pub fn bind_id(key: &GatewayKey, kind: BoundId, tenant: &str, user: &str, id: &str) -> String {
    let full = keyed(key, kind, tenant, user, id).finalize().into_bytes();
    let tag = URL_SAFE_NO_PAD.encode(full.get(..MAC_BYTES).unwrap_or_default());
    format!("{id}{SEPARATOR}{tag}")
}

/// The upstream's id inside `bound`, if `bound` was handed out as a `kind` id for this tenant
/// and user.
pub fn check_id<'a>(
    key: &GatewayKey,
    kind: BoundId,
    tenant: &str,
    user: &str,
    bound: &'a str,
) -> Result<&'a str, SessionRefused> {
    let (sid, tag) = bound
        .rsplit_once(SEPARATOR)
        .ok_or(SessionRefused::Unbound)?;
    let tag = URL_SAFE_NO_PAD
        .decode(tag)
        .map_err(|_| SessionRefused::Mismatch)?;
    // Compared in constant time.
    let expected = keyed(key, kind, tenant, user, sid);
    if tag.len() != MAC_BYTES || expected.verify_truncated_left(&tag).is_err() {
        return Err(SessionRefused::Mismatch);
    }
    Ok(sid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(secret: &[u8]) -> GatewayKey {
        GatewayKey::new(secret).expect("a test secret long enough")
    }

    const SECRET: &[u8] = b"a gateway secret of at least thirty-two bytes";

    #[test]
    fn bound_id_checks_for_its_tenant_and_user() {
        let k = key(SECRET);
        let bound = bind(&k, "acme", "alice", "3f2a-9c");
        assert!(bound.starts_with("3f2a-9c."));
        assert_eq!(check(&k, "acme", "alice", &bound), Ok("3f2a-9c"));
    }

    #[test]
    fn another_replica_with_the_same_secret_accepts_it() {
        let bound = bind(&key(SECRET), "acme", "alice", "s1");
        assert_eq!(check(&key(SECRET), "acme", "alice", &bound), Ok("s1"));
    }

    #[test]
    fn another_tenant_or_user_is_refused() {
        let k = key(SECRET);
        let bound = bind(&k, "acme", "alice", "s1");
        assert_eq!(
            check(&k, "globex", "alice", &bound),
            Err(SessionRefused::Mismatch)
        );
        assert_eq!(
            check(&k, "acme", "bob", &bound),
            Err(SessionRefused::Mismatch)
        );
    }

    #[test]
    fn tampered_ids_and_macs_are_refused() {
        let k = key(SECRET);
        let bound = bind(&k, "acme", "alice", "s1");
        let (sid, tag) = bound.rsplit_once('.').expect("bound form");
        let other_sid = format!("s2.{tag}");
        assert_eq!(
            check(&k, "acme", "alice", &other_sid),
            Err(SessionRefused::Mismatch)
        );
        let mut flipped = tag.as_bytes().to_vec();
        flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
        let flipped = format!("{sid}.{}", String::from_utf8_lossy(&flipped));
        assert_eq!(
            check(&k, "acme", "alice", &flipped),
            Err(SessionRefused::Mismatch)
        );
        let short = format!("{sid}.{}", &tag[..10]);
        assert_eq!(
            check(&k, "acme", "alice", &short),
            Err(SessionRefused::Mismatch)
        );
        assert_eq!(
            check(&k, "acme", "alice", "s1.not base64!"),
            Err(SessionRefused::Mismatch)
        );
    }

    #[test]
    fn a_bare_id_is_refused() {
        assert_eq!(
            check(&key(SECRET), "acme", "alice", "s1"),
            Err(SessionRefused::Unbound)
        );
    }

    #[test]
    fn another_secret_is_refused() {
        let bound = bind(&key(SECRET), "acme", "alice", "s1");
        let other = key(b"another gateway secret, also thirty-two bytes");
        assert_eq!(
            check(&other, "acme", "alice", &bound),
            Err(SessionRefused::Mismatch)
        );
    }

    #[test]
    fn event_ids_and_session_ids_are_not_interchangeable() {
        let k = key(SECRET);
        let event = bind_id(&k, BoundId::Event, "acme", "alice", "s1_17");
        assert_eq!(
            check_id(&k, BoundId::Event, "acme", "alice", &event),
            Ok("s1_17")
        );
        assert_eq!(
            check(&k, "acme", "alice", &event),
            Err(SessionRefused::Mismatch)
        );
        let session = bind(&k, "acme", "alice", "s1_17");
        assert_eq!(
            check_id(&k, BoundId::Event, "acme", "alice", &session),
            Err(SessionRefused::Mismatch)
        );
        assert_eq!(
            check_id(&k, BoundId::Event, "acme", "bob", &event),
            Err(SessionRefused::Mismatch)
        );
    }

    #[test]
    fn an_upstream_id_with_dots_round_trips() {
        let k = key(SECRET);
        let bound = bind(&k, "acme", "alice", "a.b.c");
        assert_eq!(check(&k, "acme", "alice", &bound), Ok("a.b.c"));
    }
}
