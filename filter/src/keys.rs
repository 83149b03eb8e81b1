//! Verification keys: a JWKS document turned into jwt-simple public keys, indexed by `kid`.
//!
//! Each key is bound to exactly one algorithm (its JWK `alg`, or the one its type implies), so a
//! token can only be verified with the algorithm its key was published for: no `alg` confusion, and
//! symmetric keys are loaded only when the configuration allows HMAC at all.

use std::collections::BTreeSet;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jwt_simple::prelude::*;
use serde_json::Value;

use crate::rs256::Rs256Key;

/// Largest JWKS document the filter parses (bytes).
pub const MAX_JWKS_BYTES: usize = 64 * 1024;

/// The signature algorithms the filter knows. `none` is not one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Algorithm {
    Rs256,
    Es256,
    EdDsa,
    Hs256,
}

impl Algorithm {
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "RS256" => Some(Self::Rs256),
            "ES256" => Some(Self::Es256),
            "EdDSA" => Some(Self::EdDsa),
            "HS256" => Some(Self::Hs256),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
            Self::Hs256 => "HS256",
        }
    }

    pub fn is_symmetric(self) -> bool {
        matches!(self, Self::Hs256)
    }
}

/// One key, bound to the one algorithm it verifies.
#[derive(Clone)]
pub enum VerifyingKey {
    /// Checked by jwt-simple when loaded, verified with [`Rs256Key`] (see [`crate::rs256`]).
    Rs256(Box<Rs256Key>),
    Es256(ES256PublicKey),
    EdDsa(Ed25519PublicKey),
    Hs256(HS256Key),
}

impl VerifyingKey {
    pub fn algorithm(&self) -> Algorithm {
        match self {
            Self::Rs256(_) => Algorithm::Rs256,
            Self::Es256(_) => Algorithm::Es256,
            Self::EdDsa(_) => Algorithm::EdDsa,
            Self::Hs256(_) => Algorithm::Hs256,
        }
    }
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VerifyingKey({})", self.algorithm().name())
    }
}

#[derive(Debug, Clone)]
pub struct KeyEntry {
    pub kid: Option<String>,
    pub key: VerifyingKey,
}

/// The keys the filter trusts right now.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    entries: Vec<KeyEntry>,
}

impl KeySet {
    /// Parses a JWKS document, keeping the signature keys usable with `allowed` algorithms.
    /// Fails when the document is malformed or yields no usable key.
    pub fn from_jwks(bytes: &[u8], allowed: &BTreeSet<Algorithm>) -> Result<Self, String> {
        if bytes.len() > MAX_JWKS_BYTES {
            return Err(format!("JWKS larger than {MAX_JWKS_BYTES} bytes"));
        }
        let doc: Value =
            serde_json::from_slice(bytes).map_err(|e| format!("JWKS is not JSON: {e}"))?;
        let keys = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or("JWKS has no `keys` array")?;
        let mut entries = Vec::new();
        let mut skipped = Vec::new();
        for (i, jwk) in keys.iter().enumerate() {
            match key_from_jwk(jwk, allowed) {
                Ok(Some(entry)) => entries.push(entry),
                Ok(None) => {}
                Err(e) => skipped.push(format!("key {i}: {e}")),
            }
        }
        if entries.is_empty() {
            let why = if skipped.is_empty() {
                String::new()
            } else {
                format!(" ({})", skipped.join("; "))
            };
            return Err(format!(
                "JWKS holds no usable signature key for the allowed algorithms{why}"
            ));
        }
        Ok(Self { entries })
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The keys a token with this `kid` and `alg` may be verified with. A token without `kid` may
    /// use any key of its algorithm; a token with a `kid` only the key of that id.
    pub fn candidates<'a>(
        &'a self,
        kid: Option<&'a str>,
        alg: Algorithm,
    ) -> impl Iterator<Item = &'a VerifyingKey> + 'a {
        self.entries
            .iter()
            .filter(move |e| e.key.algorithm() == alg && (kid.is_none() || e.kid.as_deref() == kid))
            .map(|e| &e.key)
    }

    /// Whether any key carries this id (whatever its algorithm).
    pub fn knows_kid(&self, kid: &str) -> bool {
        self.entries.iter().any(|e| e.kid.as_deref() == Some(kid))
    }
}

/// One JWK → a key, `Ok(None)` for keys that are not for us (encryption keys, algorithms not
/// allowed), `Err` for keys that are malformed.
fn key_from_jwk(jwk: &Value, allowed: &BTreeSet<Algorithm>) -> Result<Option<KeyEntry>, String> {
    let obj = jwk.as_object().ok_or("not an object")?;
    let text = |name: &str| -> Result<Option<&str>, String> {
        match obj.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(format!("`{name}` is not a string")),
        }
    };
    if text("use")?.is_some_and(|u| u != "sig") {
        return Ok(None);
    }
    let kty = text("kty")?.ok_or("no `kty`")?;
    let kid = text("kid")?.map(str::to_string);
    let alg = match text("alg")? {
        Some(name) => match Algorithm::from_name(name) {
            Some(a) => a,
            None => return Ok(None),
        },
        None => match (kty, text("crv")?) {
            ("RSA", _) => Algorithm::Rs256,
            ("EC", Some("P-256")) => Algorithm::Es256,
            ("OKP", Some("Ed25519")) => Algorithm::EdDsa,
            ("oct", _) => Algorithm::Hs256,
            _ => return Ok(None),
        },
    };
    if !allowed.contains(&alg) {
        return Ok(None);
    }
    let json = jwk.to_string();
    let key = match alg {
        Algorithm::Rs256 => RS256PublicKey::from_jwk(&json)
            .map_err(|e| e.to_string())
            .and_then(|k| {
                let c = k.to_components();
                Rs256Key::from_components(&c.n, &c.e)
            })
            .map(|k| VerifyingKey::Rs256(Box::new(k))),
        Algorithm::Es256 => ES256PublicKey::from_jwk(&json)
            .map(VerifyingKey::Es256)
            .map_err(|e| e.to_string()),
        Algorithm::EdDsa => Ed25519PublicKey::from_jwk(&json)
            .map(VerifyingKey::EdDsa)
            .map_err(|e| e.to_string()),
        Algorithm::Hs256 => {
            if kty != "oct" {
                return Err("HS256 key is not `kty: oct`".into());
            }
            let k = text("k")?.ok_or("oct key without `k`")?;
            let raw = URL_SAFE_NO_PAD
                .decode(k)
                .map_err(|_| "`k` is not base64url".to_string())?;
            if raw.len() < 32 {
                return Err("HS256 key shorter than 32 bytes".into());
            }
            Ok(VerifyingKey::Hs256(HS256Key::from_bytes(&raw)))
        }
    }
    .map_err(|e| format!("{} key rejected: {e}", alg.name()))?;
    Ok(Some(KeyEntry { kid, key }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn all() -> BTreeSet<Algorithm> {
        [Algorithm::Rs256, Algorithm::Es256, Algorithm::EdDsa]
            .into_iter()
            .collect()
    }

    fn ed_jwk(kid: &str) -> Value {
        let kp = Ed25519KeyPair::generate().with_key_id(kid);
        serde_json::from_str(&kp.public_key().to_jwk()).unwrap()
    }

    #[test]
    fn parses_keys_of_each_type() {
        let rsa = RS256KeyPair::generate(2048).unwrap().with_key_id("r");
        let ec = ES256KeyPair::generate().with_key_id("e");
        let doc = json!({"keys": [
            serde_json::from_str::<Value>(&rsa.public_key().to_jwk()).unwrap(),
            serde_json::from_str::<Value>(&ec.public_key().to_jwk()).unwrap(),
            ed_jwk("d"),
        ]});
        let set = KeySet::from_jwks(doc.to_string().as_bytes(), &all()).unwrap();
        assert_eq!(set.len(), 3);
        assert_eq!(set.candidates(Some("r"), Algorithm::Rs256).count(), 1);
        assert_eq!(set.candidates(Some("r"), Algorithm::Es256).count(), 0);
        assert_eq!(set.candidates(None, Algorithm::EdDsa).count(), 1);
        assert!(set.knows_kid("e"));
        assert!(!set.knows_kid("zzz"));
    }

    #[test]
    fn encryption_keys_and_disallowed_algorithms_are_skipped() {
        let mut enc = ed_jwk("x");
        enc["use"] = json!("enc");
        let doc = json!({"keys": [enc, {"kty": "oct", "k": "AAAA", "kid": "h"}, ed_jwk("ok")]});
        let set = KeySet::from_jwks(doc.to_string().as_bytes(), &all()).unwrap();
        assert_eq!(set.len(), 1);
        assert!(set.knows_kid("ok"));
    }

    #[test]
    fn empty_or_malformed_documents_are_errors() {
        assert!(KeySet::from_jwks(b"{}", &all()).is_err());
        assert!(KeySet::from_jwks(b"{\"keys\": []}", &all()).is_err());
        assert!(KeySet::from_jwks(b"not json", &all()).is_err());
        let bad = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "!!"}]});
        assert!(KeySet::from_jwks(bad.to_string().as_bytes(), &all()).is_err());
        let big = vec![b' '; MAX_JWKS_BYTES + 1];
        assert!(KeySet::from_jwks(&big, &all()).is_err());
    }

    #[test]
    fn jwk_alg_must_match_its_key_type() {
        let mut jwk = ed_jwk("x");
        jwk["alg"] = json!("RS256");
        let doc = json!({"keys": [jwk]});
        assert!(KeySet::from_jwks(doc.to_string().as_bytes(), &all()).is_err());
    }

    #[test]
    fn hmac_keys_only_when_allowed() {
        let k = URL_SAFE_NO_PAD.encode([7u8; 32]);
        let doc = json!({"keys": [{"kty": "oct", "k": k, "kid": "h"}]});
        assert!(KeySet::from_jwks(doc.to_string().as_bytes(), &all()).is_err());
        let with_hs: BTreeSet<_> = [Algorithm::Hs256].into_iter().collect();
        let set = KeySet::from_jwks(doc.to_string().as_bytes(), &with_hs).unwrap();
        assert_eq!(set.candidates(Some("h"), Algorithm::Hs256).count(), 1);
    }
}
