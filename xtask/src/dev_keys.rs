//! Development keys and tokens for mcp-edge.
//!
//! A stand-in for the tenant's authorization server, used by the end-to-end tests and the local
//! stack where the OAuth server of authz/ is not needed: one RS256, one ES256 and one EdDSA key
//! kept in a JSON file (created on first use, never committed), a JWKS of their public halves, and
//! tokens carrying our claims. Nothing here is used by the filter or the backend.

use std::path::Path;

use anyhow::{Context as _, Result, bail};
use jwt_simple::prelude::*;
use serde_json::{Map, Value, json};

/// The three signing keys of the development issuer.
pub struct DevKeys {
    pub rs256: RS256KeyPair,
    pub es256: ES256KeyPair,
    pub eddsa: Ed25519KeyPair,
    /// Keys that were rotated out but are still published, so tokens they signed stay valid.
    pub previous: Option<Box<DevKeys>>,
}

impl DevKeys {
    /// New keys whose ids end in `suffix` (so rotated keys get new ids).
    pub fn generate(suffix: &str) -> Result<Self> {
        Ok(Self {
            rs256: RS256KeyPair::generate(2048)?.with_key_id(&format!("dev-rs256-{suffix}")),
            es256: ES256KeyPair::generate().with_key_id(&format!("dev-es256-{suffix}")),
            eddsa: Ed25519KeyPair::generate().with_key_id(&format!("dev-eddsa-{suffix}")),
            previous: None,
        })
    }

    /// Loads the keys from `path`, creating the file with fresh keys if it does not exist.
    pub fn load_or_create(path: &Path) -> Result<Self> {
        if path.exists() {
            return Self::load(path);
        }
        let keys = Self::generate("1")?;
        keys.save(path)?;
        Ok(keys)
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::from_doc(&serde_json::from_str(&text)?)
            .with_context(|| format!("reading keys from {}", path.display()))
    }

    fn from_doc(doc: &Value) -> Result<Self> {
        let get = |name: &str| -> Result<String> {
            doc.get(name)
                .map(Value::to_string)
                .with_context(|| format!("no {name} key"))
        };
        Ok(Self {
            rs256: RS256KeyPair::from_jwk(&get("rs256")?)?,
            es256: ES256KeyPair::from_jwk(&get("es256")?)?,
            eddsa: Ed25519KeyPair::from_jwk(&get("eddsa")?)?,
            previous: match doc.get("previous") {
                Some(p) => Some(Box::new(Self::from_doc(p)?)),
                None => None,
            },
        })
    }

    fn to_doc(&self) -> Result<Value> {
        let mut doc = json!({
            "rs256": serde_json::from_str::<Value>(&self.rs256.to_jwk())?,
            "es256": serde_json::from_str::<Value>(&self.es256.to_jwk())?,
            "eddsa": serde_json::from_str::<Value>(&self.eddsa.to_jwk())?,
        });
        if let Some(p) = &self.previous {
            doc["previous"] = p.to_doc()?;
        }
        Ok(doc)
    }

    /// New keys with ids ending in `suffix`; these keys stay published as `previous`.
    pub fn rotated(self, suffix: &str) -> Result<Self> {
        let mut fresh = Self::generate(suffix)?;
        fresh.previous = Some(Box::new(Self {
            previous: None,
            ..self
        }));
        Ok(fresh)
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let doc = self.to_doc()?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&doc)?)?;
        // Private keys: readable by the owner only.
        std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }

    /// The public JWKS.
    pub fn jwks(&self) -> Result<Value> {
        let mut keys = vec![
            serde_json::from_str::<Value>(&self.rs256.public_key().to_jwk())?,
            serde_json::from_str::<Value>(&self.es256.public_key().to_jwk())?,
            serde_json::from_str::<Value>(&self.eddsa.public_key().to_jwk())?,
        ];
        if let Some(p) = &self.previous
            && let Some(old) = p.jwks()?.get("keys").and_then(Value::as_array)
        {
            keys.extend(old.iter().cloned());
        }
        Ok(json!({ "keys": keys }))
    }

    /// Signs `claims` with the key of `alg` ("RS256", "ES256" or "EdDSA").
    pub fn sign(&self, alg: &str, claims: JWTClaims<Map<String, Value>>) -> Result<String> {
        Ok(match alg {
            "RS256" => self.rs256.sign(claims)?,
            "ES256" => self.es256.sign(claims)?,
            "EdDSA" => self.eddsa.sign(claims)?,
            other => bail!("unknown algorithm {other}"),
        })
    }
}

/// What a development token says.
#[derive(Debug, Clone)]
pub struct TokenSpec {
    pub issuer: String,
    pub audience: String,
    pub tenant_id: String,
    pub sub: String,
    pub scope: String,
    pub tier: String,
    pub data_scope: Option<String>,
    pub allowed_tools: Option<Vec<String>>,
    pub ttl_seconds: u64,
}

/// The claims of a token for `spec`, issued now.
pub fn claims_for(spec: &TokenSpec) -> JWTClaims<Map<String, Value>> {
    let mut custom = Map::new();
    custom.insert("tenant_id".into(), json!(spec.tenant_id));
    custom.insert("scope".into(), json!(spec.scope));
    custom.insert("rate_limit_tier".into(), json!(spec.tier));
    if let Some(d) = &spec.data_scope {
        custom.insert("data_scope".into(), json!(d));
    }
    if let Some(t) = &spec.allowed_tools {
        custom.insert("allowed_tools".into(), json!(t));
    }
    Claims::with_custom_claims(custom, Duration::from_secs(spec.ttl_seconds))
        .with_issuer(&spec.issuer)
        .with_audience(&spec.audience)
        .with_subject(&spec.sub)
}
