//! Extracting the bearer token from the `Authorization` header (RFC 6750 §2.1), and nothing else.
//!
//! Tokens in a query string or a form body are never looked at. Several `Authorization` headers, a
//! value that is not UTF-8, or a token with characters outside the b64token set are errors, so two
//! parsers (ours and the backend's) can never disagree about which token a request carries.

/// Why a request has no usable bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BearerError {
    /// No `Authorization` header: the client has not tried to authenticate.
    Missing,
    /// A header was sent but is unusable: counts as an invalid token.
    Malformed,
}

/// Longest token accepted (bytes).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

fn is_b64token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
}

/// Returns the token carried by the `Authorization` header values of one request.
pub fn extract_bearer<'a>(values: &[&'a [u8]]) -> Result<&'a str, BearerError> {
    let value = match values {
        [] => return Err(BearerError::Missing),
        [one] => *one,
        _ => return Err(BearerError::Malformed),
    };
    let value = std::str::from_utf8(value).map_err(|_| BearerError::Malformed)?;
    let (scheme, token) = value.trim().split_once(' ').ok_or(BearerError::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(BearerError::Malformed);
    }
    let token = token.trim_start_matches(' ');
    if token.is_empty() || token.len() > MAX_TOKEN_BYTES || !token.bytes().all(is_b64token_char) {
        return Err(BearerError::Malformed);
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_bearer_in_any_case() {
        assert_eq!(extract_bearer(&[b"Bearer abc.def.ghi"]), Ok("abc.def.ghi"));
        assert_eq!(extract_bearer(&[b"bearer abc"]), Ok("abc"));
        assert_eq!(extract_bearer(&[b"BEARER  abc"]), Ok("abc"));
    }

    #[test]
    fn refuses_everything_else() {
        assert_eq!(extract_bearer(&[]), Err(BearerError::Missing));
        for v in [
            &b"Basic dXNlcjpwYXNz"[..],
            b"Bearer",
            b"Bearer ",
            b"Bearer a b",
            b"Bearer a\"b",
            b"Bearer \xff\xfe",
            b"Token abc",
        ] {
            assert_eq!(extract_bearer(&[v]), Err(BearerError::Malformed), "{v:?}");
        }
        assert_eq!(
            extract_bearer(&[b"Bearer a", b"Bearer b"]),
            Err(BearerError::Malformed)
        );
        let long = format!("Bearer {}", "a".repeat(MAX_TOKEN_BYTES + 1));
        assert_eq!(
            extract_bearer(&[long.as_bytes()]),
            Err(BearerError::Malformed)
        );
    }
}
