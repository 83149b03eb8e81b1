//! Who may spend budgets: with a shared secret configured, every call must carry
//! `authorization: Bearer <secret>` (gRPC metadata; the edge's filter sends it), else it is refused
//! `UNAUTHENTICATED` before any counter is touched. Anyone who reaches the port could otherwise
//! spend any tenant's budget, or refuse a tenant by spending it.

use subtle::ConstantTimeEq as _;
use tonic::{Request, Status};

/// The shortest secret accepted (bytes): a guessable one would be no gate.
pub const MIN_SECRET_BYTES: usize = 32;

/// Checks the caller's `authorization` metadata against the shared secret, in constant time.
#[derive(Clone)]
pub struct SharedSecret {
    expected: Vec<u8>,
}

impl SharedSecret {
    /// `None` for a secret shorter than [`MIN_SECRET_BYTES`].
    pub fn new(secret: &str) -> Option<Self> {
        (secret.len() >= MIN_SECRET_BYTES).then(|| Self {
            expected: format!("Bearer {secret}").into_bytes(),
        })
    }

    /// True when `presented` (the `authorization` metadata value) is exactly `Bearer <secret>`.
    pub fn admits(&self, presented: Option<&[u8]>) -> bool {
        presented.is_some_and(|p| bool::from(p.ct_eq(&self.expected)))
    }
}

/// The interceptor in front of the service: no secret configured lets every call through.
pub fn interceptor(
    secret: Option<SharedSecret>,
) -> impl FnMut(Request<()>) -> Result<Request<()>, Status> + Clone {
    move |request: Request<()>| {
        let Some(secret) = &secret else {
            return Ok(request);
        };
        let presented = request
            .metadata()
            .get("authorization")
            .map(|v| v.as_bytes());
        if secret.admits(presented) {
            Ok(request)
        } else {
            Err(Status::unauthenticated(
                "this rate limit service needs the shared secret (authorization: Bearer …)",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn only_the_exact_bearer_value_is_admitted() {
        let secret = SharedSecret::new(SECRET).expect("long enough");
        assert!(secret.admits(Some(format!("Bearer {SECRET}").as_bytes())));
        for wrong in [
            "".to_string(),
            SECRET.to_string(),
            format!("bearer {SECRET}"),
            format!("Bearer {SECRET}x"),
            format!("Bearer {}", &SECRET[1..]),
        ] {
            assert!(!secret.admits(Some(wrong.as_bytes())), "{wrong:?}");
        }
        assert!(!secret.admits(None));
    }

    #[test]
    fn a_short_secret_is_refused() {
        assert!(SharedSecret::new(&SECRET[..31]).is_none());
    }

    #[test]
    fn without_a_secret_every_call_passes_and_with_one_only_the_holder() {
        let mut open = interceptor(None);
        assert!(open(Request::new(())).is_ok());
        let mut gated = interceptor(SharedSecret::new(SECRET));
        let refused = gated(Request::new(())).expect_err("no metadata");
        assert_eq!(refused.code(), tonic::Code::Unauthenticated);
        let mut request = Request::new(());
        let value = format!("Bearer {SECRET}").parse().expect("ascii");
        request.metadata_mut().insert("authorization", value);
        assert!(gated(request).is_ok());
    }
}
