//! `Mcp-Method` and `Mcp-Name` as a request keeps them while its body arrives, to compare with the
//! body once it is complete.
//!
//! A client chooses their length (up to Envoy's 32 KiB header cap) and can hold many streams
//! between head and body, so a long value is kept as its SHA-256, which is all the comparison
//! needs; short ones (every method and tool name) are kept as sent.

use sha2::{Digest, Sha256};

use crate::protocol::decode_name_header;

/// Values up to this length are kept as sent; longer ones as their SHA-256.
pub const KEPT_AS_SENT_BYTES: usize = 256;

/// One header value, as kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kept {
    AsSent(Vec<u8>),
    Sha256([u8; 32]),
}

impl Kept {
    pub fn new(value: Vec<u8>) -> Self {
        if value.len() <= KEPT_AS_SENT_BYTES {
            Self::AsSent(value)
        } else {
            Self::Sha256(Sha256::digest(&value).into())
        }
    }

    /// Whether `other` is the value kept.
    pub fn matches(&self, other: &[u8]) -> bool {
        match self {
            Self::AsSent(value) => value == other,
            Self::Sha256(digest) => {
                other.len() > KEPT_AS_SENT_BYTES && Sha256::digest(other)[..] == digest[..]
            }
        }
    }
}

/// The routing headers of a request, as kept from its head for the body's verdict.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeptRouting {
    pub mcp_method: Option<Kept>,
    /// What `Mcp-Name` stands for (a `=?base64?…?=` value decoded), or why it stands for nothing.
    pub mcp_name: Option<Result<Kept, String>>,
}

impl KeptRouting {
    pub const NONE: Self = Self {
        mcp_method: None,
        mcp_name: None,
    };

    pub fn new(mcp_method: Option<&[u8]>, mcp_name: Option<&[u8]>) -> Self {
        Self {
            mcp_method: mcp_method.map(|m| Kept::new(m.to_vec())),
            mcp_name: mcp_name
                .map(|raw| decode_name_header(raw).map(|n| Kept::new(n.into_bytes()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_kept_as_their_digest_and_still_compare() {
        let short = Kept::new(b"tools/call".to_vec());
        assert_eq!(short, Kept::AsSent(b"tools/call".to_vec()));
        assert!(short.matches(b"tools/call") && !short.matches(b"tools/list"));
        let uri = "u".repeat(30_000);
        let long = Kept::new(uri.clone().into_bytes());
        assert!(matches!(long, Kept::Sha256(_)));
        assert!(long.matches(uri.as_bytes()));
        assert!(!long.matches(&uri.as_bytes()[1..]));
        let routing = KeptRouting::new(Some(b"resources/read"), Some(uri.as_bytes()));
        assert!(matches!(routing.mcp_name, Some(Ok(Kept::Sha256(_)))));
        let bad = KeptRouting::new(None, Some("é".as_bytes()));
        assert!(matches!(bad.mcp_name, Some(Err(_))));
    }
}
