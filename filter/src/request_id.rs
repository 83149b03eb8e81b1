//! The edge's own request ids. The `x-mcp-*` headers themselves, and their signature, are the
//! contract's ([`mcp_edge_contract::vouch_headers`]); the filter only supplies the facts.

/// A fresh request id for `x-mcp-request-id`: 128 bits from the VM's randomly keyed hasher and the
/// clock. It is the edge's own: an inbound `x-request-id` is client-controlled when Envoy treats the
/// client as internal, and ids that end up in logs and usage records must not be chosen by clients.
pub fn new_request_id(now_nanos: u128) -> String {
    use std::hash::BuildHasher;
    let state = std::collections::hash_map::RandomState::new();
    let a = state.hash_one(now_nanos);
    let b = state.hash_one((now_nanos, a));
    format!("mcpe-{a:016x}{b:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_fresh_and_printable() {
        let a = new_request_id(1);
        let b = new_request_id(1);
        assert_ne!(a, b, "same clock reading, still different ids");
        assert_eq!(a.len(), 37);
        assert!(a.starts_with("mcpe-") && a[5..].bytes().all(|c| c.is_ascii_hexdigit()));
    }
}
