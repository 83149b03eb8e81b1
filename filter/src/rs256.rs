//! RS256 signatures checked fast in wasm; every header and claim rule stays jwt-simple's.
//!
//! jwt-simple (pure-rust) verifies RSA with num-bigint-dig, whose 64×64→128-bit digit products
//! wasm has to emulate: about 1.1 ms per RS256 token under V8. Here the public-key operation
//! `s^e mod n` is crypto-bigint's Montgomery arithmetic with the modulus's parameters computed once
//! per key (when the JWKS is installed), and the exponent is applied bit by bit — for e = 65537,
//! 16 squarings and one multiplication. The `rsa` crate's own `pow_bounded_exp` is a constant-time
//! 4-bit window (a 16-entry table and a product per window) that does twice the multiplications for
//! a public exponent, where constant time buys nothing: the signature, the key and the result are
//! all public. Measured under V8 (`scripts/bench-core-wasm.sh`): 0.83 → ~0.4 ms per signature.
//!
//! The PKCS#1 v1.5 check stays strict (RFC 8017 §8.2.2): the signature is exactly the modulus's
//! length, `s < n`, and the whole block `00 01 FF… 00 DigestInfo(SHA-256) hash` is built and
//! compared. The key itself is validated by the `rsa` crate (size 2048..=4096 bits, exponent range).
//!
//! Once the signature is good, jwt-simple reads the same token as it always did — the token's own
//! header (`crit`, `typ`, `kid`, …) and claims (`exp`, `nbf`, `iat`, `iss`, `aud`, leeway) — with
//! only the header's `alg` changed to HS256 and a MAC made here under a fixed key. That MAC
//! authenticates nothing (the RSA signature did); it only lets jwt-simple apply its rules without a
//! second copy of them here.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use crypto_bigint::modular::{BoxedMontyForm, BoxedMontyParams};
use hmac::{Hmac, Mac};
use jwt_simple::JWTError;
use jwt_simple::prelude::*;
use rsa::traits::PublicKeyParts;
use rsa::{BoxedUint, PublicKey};
use serde_json::{Map, Value};
use sha2::Digest as _;

/// The key of the MAC that hands an RSA-verified token to jwt-simple's claim checks (see the
/// module comment: it protects nothing and needs no secrecy).
const HANDOVER_KEY: &[u8; 32] = b"mcp-edge rs256 verified handover";

/// DER of `DigestInfo { AlgorithmIdentifier { id-sha256, NULL }, OCTET STRING (32 bytes) }`, the
/// prefix of the hash in an RSASSA-PKCS1-v1_5 SHA-256 block (RFC 8017 §9.2, note 1).
const SHA256_DIGEST_INFO: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

/// An RS256 public key, ready to verify: the modulus with its Montgomery parameters, made once.
#[derive(Clone)]
pub struct Rs256Key {
    n: BoxedUint,
    n_params: BoxedMontyParams,
    /// The public exponent (the `rsa` crate accepts at most 2^33 - 1).
    e: u64,
    /// The modulus's length in bytes, the length of every signature (RFC 8017 `k`).
    size: usize,
}

impl std::fmt::Debug for Rs256Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rs256Key")
    }
}

impl Rs256Key {
    /// The key of modulus `n` and exponent `e` (big-endian bytes): 2048 to 4096 bits, as
    /// jwt-simple's key policy (which every JWK passes first, see [`crate::keys`]).
    pub fn from_components(n: &[u8], e: &[u8]) -> Result<Self, String> {
        let n = BoxedUint::from_be_slice_vartime(n);
        let e = BoxedUint::from_be_slice_vartime(e);
        let key = PublicKey::new_with_size_limits(n, e, 2048..=4096)
            .map_err(|e| format!("RSA key rejected: {e}"))?;
        let e = key.e().to_be_bytes_trimmed_vartime();
        if e.len() > 8 {
            return Err("RSA key rejected: public exponent too large".into());
        }
        let e = e.iter().fold(0u64, |e, byte| (e << 8) | u64::from(*byte));
        if e < 3 {
            return Err("RSA key rejected: public exponent below 3".into());
        }
        Ok(Self {
            n: key.n().as_ref().clone(),
            n_params: key.n_params().clone(),
            e,
            size: key.size(),
        })
    }

    /// Whether `signature` is this key's RSASSA-PKCS1-v1_5 SHA-256 signature of `message`
    /// (RFC 8017 §8.2.2).
    pub fn signs(&self, message: &[u8], signature: &[u8]) -> bool {
        self.public_operation(signature)
            .is_some_and(|block| block == self.expected_block(message))
    }

    /// RSAVP1 with I2OSP: `s^e mod n` as `size` bytes, or None when the signature is not exactly
    /// `size` bytes or not below `n`.
    fn public_operation(&self, signature: &[u8]) -> Option<Vec<u8>> {
        if signature.len() != self.size {
            return None;
        }
        let s = BoxedUint::from_be_slice(signature, self.n.bits_precision()).ok()?;
        if s >= self.n {
            return None;
        }
        let base = BoxedMontyForm::new(s, &self.n_params);
        let mut power = base.clone();
        // Left to right over the exponent's bits below its top one (e ≥ 3, checked when made).
        for bit in (0..63 - self.e.leading_zeros()).rev() {
            power = power.square();
            if self.e >> bit & 1 == 1 {
                power = power.mul(&base);
            }
        }
        let bytes = power.retrieve().to_be_bytes();
        // The value is below n, so the storage's extra leading bytes are zero.
        let (zeros, block) = bytes.split_at(bytes.len().checked_sub(self.size)?);
        zeros.iter().all(|b| *b == 0).then(|| block.to_vec())
    }

    /// EMSA-PKCS1-v1_5 (RFC 8017 §9.2) of `message` under SHA-256, `size` bytes long.
    fn expected_block(&self, message: &[u8]) -> Vec<u8> {
        let hash = sha2::Sha256::digest(message);
        let fill = (self.size - 3).saturating_sub(SHA256_DIGEST_INFO.len() + hash.len());
        let mut block = Vec::with_capacity(self.size);
        block.extend_from_slice(&[0x00, 0x01]);
        block.resize(2 + fill, 0xff);
        block.push(0x00);
        block.extend_from_slice(&SHA256_DIGEST_INFO);
        block.extend_from_slice(&hash);
        block
    }

    /// The claims of `token` if this key signed it and jwt-simple accepts its header and claims
    /// under `options`.
    pub fn verify_token(
        &self,
        token: &str,
        options: VerificationOptions,
    ) -> Result<JWTClaims<Map<String, Value>>, jwt_simple::Error> {
        if options
            .max_token_length
            .is_some_and(|max| token.len() > max)
        {
            return Err(JWTError::TokenTooLong.into());
        }
        let (signed, signature) = token
            .rsplit_once('.')
            .ok_or(JWTError::CompactEncodingError)?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| JWTError::CompactEncodingError)?;
        if !self.signs(signed.as_bytes(), &signature) {
            return Err(JWTError::InvalidSignature.into());
        }
        let (header, claims) = signed
            .split_once('.')
            .ok_or(JWTError::CompactEncodingError)?;
        let mut header: Map<String, Value> = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(header)
                .map_err(|_| JWTError::CompactEncodingError)?,
        )?;
        if header.get("alg").and_then(Value::as_str) != Some("RS256") {
            return Err(JWTError::AlgorithmMismatch.into());
        }
        header.insert("alg".into(), "HS256".into());
        let handed = format!(
            "{}.{claims}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header)?)
        );
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(HANDOVER_KEY)
            .map_err(|_| JWTError::InvalidAuthenticationTag)?;
        mac.update(handed.as_bytes());
        let tag = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        let options = VerificationOptions {
            // Checked above on the token as it came; the handed-over form may differ in length.
            max_token_length: None,
            ..options
        };
        HS256Key::from_bytes(HANDOVER_KEY).verify_token(&format!("{handed}.{tag}"), Some(options))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    const NOW: u64 = 1_800_000_000;

    fn pair() -> &'static RS256KeyPair {
        static PAIR: OnceLock<RS256KeyPair> = OnceLock::new();
        PAIR.get_or_init(|| RS256KeyPair::generate(2048).unwrap().with_key_id("r"))
    }

    fn key_of(pair: &RS256KeyPair) -> Rs256Key {
        let c = pair.public_key().to_components();
        Rs256Key::from_components(&c.n, &c.e).unwrap()
    }

    fn options() -> VerificationOptions {
        VerificationOptions {
            allowed_issuers: Some(["iss".to_string()].into()),
            allowed_audiences: Some(["aud".to_string()].into()),
            time_tolerance: Some(Duration::from_secs(30)),
            artificial_time: Some(Duration::from_secs(NOW)),
            max_token_length: Some(8192),
            ..Default::default()
        }
    }

    fn claims(valid_for: u64) -> JWTClaims<Map<String, Value>> {
        let mut c = Claims::with_custom_claims(Map::new(), Duration::from_secs(valid_for))
            .with_issuer("iss")
            .with_audience("aud")
            .with_subject("u");
        c.issued_at = Some(Duration::from_secs(NOW));
        c.invalid_before = Some(Duration::from_secs(NOW));
        c.expires_at = Some(Duration::from_secs(NOW + valid_for));
        c
    }

    fn error(r: Result<JWTClaims<Map<String, Value>>, jwt_simple::Error>) -> Option<JWTError> {
        r.err()?.downcast::<JWTError>().ok()
    }

    fn parts(token: &str) -> (String, String, Vec<u8>) {
        let mut it = token.split('.');
        let (h, c, s) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
        (h.into(), c.into(), URL_SAFE_NO_PAD.decode(s).unwrap())
    }

    #[test]
    fn a_good_token_verifies_and_its_claims_come_back() {
        let token = pair().sign(claims(600)).unwrap();
        let c = key_of(pair()).verify_token(&token, options()).unwrap();
        assert_eq!(c.subject.as_deref(), Some("u"));
        assert_eq!(c.expires_at, Some(Duration::from_secs(NOW + 600)));
        // and jwt-simple's own RSA agrees
        assert!(
            pair()
                .public_key()
                .verify_token::<Map<String, Value>>(&token, Some(options()))
                .is_ok()
        );
    }

    #[test]
    fn claim_rules_still_apply_after_the_signature() {
        let mut expired = claims(600);
        expired.expires_at = Some(Duration::from_secs(NOW - 600));
        let token = pair().sign(expired).unwrap();
        assert!(matches!(
            error(key_of(pair()).verify_token(&token, options())),
            Some(JWTError::TokenHasExpired)
        ));
        let token = pair().sign(claims(600).with_issuer("evil")).unwrap();
        assert!(matches!(
            error(key_of(pair()).verify_token(&token, options())),
            Some(JWTError::RequiredIssuerMismatch)
        ));
        let token = pair().sign(claims(600)).unwrap();
        let short = VerificationOptions {
            max_token_length: Some(token.len() - 1),
            ..options()
        };
        assert!(matches!(
            error(key_of(pair()).verify_token(&token, short)),
            Some(JWTError::TokenTooLong)
        ));
    }

    #[test]
    fn bad_signatures_are_refused() {
        let token = pair().sign(claims(600)).unwrap();
        let (h, c, sig) = parts(&token);
        let key = key_of(pair());
        let with = |sig: &[u8]| format!("{h}.{c}.{}", URL_SAFE_NO_PAD.encode(sig));
        let bad = |t: &str| {
            matches!(
                error(key.verify_token(t, options())),
                Some(JWTError::InvalidSignature)
            )
        };
        // one bit flipped
        let mut flipped = sig.clone();
        flipped[100] ^= 1;
        assert!(bad(&with(&flipped)));
        // one byte short, one byte long (a leading zero keeps the integer the same)
        assert!(bad(&with(&sig[1..])));
        let mut long = vec![0];
        long.extend_from_slice(&sig);
        assert!(bad(&with(&long)));
        assert!(bad(&with(&[])));
        // s ≥ n
        assert!(bad(&with(&[0xff; 256])));
        // another payload under the same signature
        let other = URL_SAFE_NO_PAD.encode(br#"{"iss":"iss","aud":"aud","sub":"admin"}"#);
        assert!(bad(&format!(
            "{h}.{other}.{}",
            URL_SAFE_NO_PAD.encode(&sig)
        )));
        // another key
        let stranger = RS256KeyPair::generate(2048).unwrap();
        assert!(!key_of(&stranger).signs(format!("{h}.{c}").as_bytes(), &sig));
        assert!(matches!(
            error(key_of(&stranger).verify_token(&token, options())),
            Some(JWTError::InvalidSignature)
        ));
        // not base64url
        assert!(key.verify_token(&format!("{h}.{c}.!!"), options()).is_err());
    }

    /// A signature of a block that is not `00 01 FF… 00 DigestInfo hash`: raw RSA (`m^d mod n`)
    /// over a block built here, so only the encoding is wrong.
    #[test]
    fn wrong_padding_is_refused() {
        use rsa::pkcs8::DecodePrivateKey;
        use rsa::traits::{PrivateKeyParts, PublicKeyParts};
        let private = rsa::PrivateKey::from_pkcs8_der(&pair().to_der().unwrap()).unwrap();
        let n = private.n().as_ref().clone();
        // Raw RSA with the private exponent: a "public" key whose exponent is d.
        let raw = PublicKey::new_unchecked(n.clone(), private.d().clone());
        let sign_raw = |block: &[u8]| {
            let m = BoxedUint::from_be_slice(block, n.bits_precision()).unwrap();
            rsa::hazmat::rsa_encrypt(&raw, &m).unwrap().to_be_bytes()
        };
        let key = key_of(pair());
        let message = b"header.claims";
        let hash = <sha2::Sha256 as sha2::Digest>::digest(message);
        let digest_info: [u8; 19] = [
            0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x01, 0x05, 0x00, 0x04, 0x20,
        ];
        let block = |kind: u8, fill: u8, separator: u8, info: &[u8]| {
            let mut b = vec![0, kind];
            b.resize(256 - 1 - info.len() - hash.len(), fill);
            b.push(separator);
            b.extend_from_slice(info);
            b.extend_from_slice(&hash);
            b
        };
        let good = block(1, 0xff, 0, &digest_info);
        assert!(
            key.signs(message, &sign_raw(&good)),
            "the raw signer is right"
        );
        let mut sha384_info = digest_info;
        sha384_info[14] = 0x02;
        for wrong in [
            block(2, 0xff, 0, &digest_info),
            block(1, 0xfe, 0, &digest_info),
            block(1, 0xff, 1, &digest_info),
            block(1, 0xff, 0, &sha384_info),
            block(1, 0xff, 0, &[]),
        ] {
            assert!(!key.signs(message, &sign_raw(&wrong)), "{wrong:02x?}");
        }
    }

    /// RFC 7515 Appendix A.2: the RS256 example's public key, signing input and signature.
    #[test]
    fn the_rfc_7515_example_verifies() {
        const N: &str = "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qP\
            CJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7\
            OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uD\
            Zlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcD\
            TW9gb54h4FRWyuXpoQ";
        const SIGNING_INPUT: &str = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MT\
            kzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
        const SIGNATURE: &str = "cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7\
            AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrn\
            byTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eO\
            kHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtV\
            rBp0igcN_IoypGlUPQGe77Rw";
        let n = URL_SAFE_NO_PAD.decode(N).unwrap();
        let signature = URL_SAFE_NO_PAD.decode(SIGNATURE).unwrap();
        let key = Rs256Key::from_components(&n, &[1, 0, 1]).unwrap();
        assert!(key.signs(SIGNING_INPUT.as_bytes(), &signature));
        let mut flipped = signature.clone();
        flipped[255] ^= 0x80;
        assert!(!key.signs(SIGNING_INPUT.as_bytes(), &flipped));
        assert!(!key.signs(b"eyJhbGciOiJSUzI1NiJ9.e30", &signature));
        // The same modulus with another exponent is another key.
        let other = Rs256Key::from_components(&n, &[3]).unwrap();
        assert!(!other.signs(SIGNING_INPUT.as_bytes(), &signature));
    }

    /// The public-key operation agrees with the `rsa` crate's for random signatures below n
    /// under keys of several sizes and exponents (an oracle for the exponent loop).
    #[test]
    fn the_public_operation_agrees_with_the_rsa_crate() {
        use rsa::traits::PublicKeyParts;
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut bytes = |len: usize| -> Vec<u8> {
            (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect()
        };
        for (bits, e) in [
            (2048, 65537u64),
            (3072, 3),
            (4096, 0x1_0000_0001),
            (2056, 17),
        ] {
            let mut n = bytes(bits / 8);
            n[0] |= 0x80;
            *n.last_mut().unwrap() |= 1;
            let e_bytes = e.to_be_bytes();
            let key = Rs256Key::from_components(&n, &e_bytes).unwrap();
            let oracle = PublicKey::new_with_size_limits(
                BoxedUint::from_be_slice_vartime(&n),
                BoxedUint::from_be_slice_vartime(&e_bytes),
                2048..=4096,
            )
            .unwrap();
            for _ in 0..4 {
                let mut s = bytes(bits / 8);
                s[0] &= 0x7f;
                let expected = rsa::hazmat::rsa_encrypt(
                    &oracle,
                    &BoxedUint::from_be_slice(&s, oracle.n_bits_precision()).unwrap(),
                )
                .unwrap()
                .to_be_bytes();
                let skip = expected.len() - oracle.size();
                assert_eq!(
                    key.public_operation(&s).as_deref(),
                    Some(&expected[skip..]),
                    "{bits} bits, e = {e}"
                );
            }
        }
    }

    #[test]
    fn small_keys_are_refused() {
        let n = [0xc5; 128]; // 1024 bits
        assert!(Rs256Key::from_components(&n, &[1, 0, 1]).is_err());
    }
}
