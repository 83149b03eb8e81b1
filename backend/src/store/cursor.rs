//! The opaque pagination cursor of `list_projects` and `list_tasks`.
//!
//! Ids are kept in creation order and positions never shift: a project's position is its creation
//! sequence number (a deleted project leaves a gap), a task's its index in its project's list
//! (tasks are not deleted one by one), so a position in that order is a stable cursor. It is
//! wrapped (version tag + base64url) so clients treat it as opaque and so garbage is recognised
//! and refused instead of being read as some position.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::StoreError;

const TAG: &str = "mcp-edge-cursor-v1:";

/// A position in a creation-ordered id list (a tenant's projects or a project's tasks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// Where the next page starts walking the list.
    pub offset: u64,
}

impl Cursor {
    pub fn new(offset: u64) -> Self {
        Self { offset }
    }

    /// The string handed to clients.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{TAG}{}", self.offset))
    }

    /// Parses a string from [`Cursor::encode`]; anything else is [`StoreError::InvalidCursor`].
    pub fn decode(value: &str) -> Result<Self, StoreError> {
        if value.len() > 64 {
            return Err(StoreError::InvalidCursor);
        }
        let raw = URL_SAFE_NO_PAD
            .decode(value.as_bytes())
            .map_err(|_| StoreError::InvalidCursor)?;
        let text = std::str::from_utf8(&raw).map_err(|_| StoreError::InvalidCursor)?;
        let digits = text.strip_prefix(TAG).ok_or(StoreError::InvalidCursor)?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(StoreError::InvalidCursor);
        }
        let offset = digits.parse().map_err(|_| StoreError::InvalidCursor)?;
        Ok(Self { offset })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for offset in [0, 1, 20, 99_999, u64::MAX] {
            let c = Cursor::new(offset);
            assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        }
    }

    #[test]
    fn is_opaque() {
        let s = Cursor::new(20).encode();
        assert!(!s.contains("20"), "{s}");
        assert!(
            s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
    }

    #[test]
    fn garbage_is_refused() {
        let wrong_tag = URL_SAFE_NO_PAD.encode("other:5");
        let negative = URL_SAFE_NO_PAD.encode(format!("{TAG}-5"));
        let empty = URL_SAFE_NO_PAD.encode(TAG);
        let overflow = URL_SAFE_NO_PAD.encode(format!("{TAG}99999999999999999999999"));
        let long = "A".repeat(1000);
        for bad in [
            "", "20", "!!!", "bWNw", &wrong_tag, &negative, &empty, &overflow, &long,
        ] {
            assert!(
                matches!(Cursor::decode(bad), Err(StoreError::InvalidCursor)),
                "{bad:?}"
            );
        }
    }
}
