//! `introspection`: where the edge asks about opaque access tokens (RFC 7662), and how it
//! authenticates there. The client credentials come from the VM's environment, never from the
//! file, so envoy.yaml can be shared; a missing variable refuses the configuration.

use serde::Deserialize;

use super::{ConfigError, err};

/// `introspection` as written in envoy.yaml (absent: only JWTs are accepted).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIntrospection {
    cluster: String,
    path: String,
    authority: String,
    /// Names of environment variables of the Envoy process (list them in
    /// `vm_config.environment_variables.host_env_keys`).
    client_id_env: String,
    client_secret_env: String,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
    #[serde(default = "default_max_cache_seconds")]
    max_cache_seconds: u64,
}

fn default_timeout_ms() -> u64 {
    2_000
}

fn default_max_cache_seconds() -> u64 {
    60
}

/// The validated `introspection` section.
#[derive(Clone, PartialEq, Eq)]
pub struct Introspection {
    pub cluster: String,
    pub path: String,
    pub authority: String,
    pub client_id: String,
    pub client_secret: String,
    pub timeout_ms: u64,
    /// An active answer is reused for at most this long (and never past the token's `exp`).
    pub max_cache_seconds: u64,
}

impl std::fmt::Debug for Introspection {
    /// Without the secret: configurations end up in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Introspection")
            .field("cluster", &self.cluster)
            .field("path", &self.path)
            .field("authority", &self.authority)
            .field("client_id", &self.client_id)
            .field("timeout_ms", &self.timeout_ms)
            .field("max_cache_seconds", &self.max_cache_seconds)
            .finish_non_exhaustive()
    }
}

/// Checks `introspection` and reads its client credentials from the environment.
pub(super) fn introspection(
    raw: Option<&RawIntrospection>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Introspection>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    for (field, value) in [
        ("introspection.cluster", &raw.cluster),
        ("introspection.authority", &raw.authority),
    ] {
        if value.is_empty() {
            return Err(err(field, "must not be empty"));
        }
    }
    if !raw.path.starts_with('/') {
        return Err(err("introspection.path", "must start with '/'"));
    }
    if !(1..=60_000).contains(&raw.timeout_ms) {
        return Err(err(
            "introspection.timeout_ms",
            "must be between 1 and 60000",
        ));
    }
    if raw.max_cache_seconds > 86_400 {
        return Err(err(
            "introspection.max_cache_seconds",
            "must be at most 86400",
        ));
    }
    let from_env = |field: &str, name: &str| {
        env(name).filter(|v| !v.is_empty()).ok_or_else(|| {
            err(
                field,
                format!("environment variable {name} is not set (or empty) for the wasm VM"),
            )
        })
    };
    Ok(Some(Introspection {
        cluster: raw.cluster.clone(),
        path: raw.path.clone(),
        authority: raw.authority.clone(),
        client_id: from_env("introspection.client_id_env", &raw.client_id_env)?,
        client_secret: from_env("introspection.client_secret_env", &raw.client_secret_env)?,
        timeout_ms: raw.timeout_ms,
        max_cache_seconds: raw.max_cache_seconds,
    }))
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use crate::config::tests::base;
    use crate::config::{ConfigError, EdgeConfig, parse_config};

    fn with(
        section: Value,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<EdgeConfig, ConfigError> {
        let mut v = base();
        v["introspection"] = section;
        parse_config(v.to_string().as_bytes(), env)
    }

    fn section() -> Value {
        json!({"cluster": "authz", "path": "/token/introspection", "authority": "127.0.0.1:9100",
               "client_id_env": "EDGE_ID", "client_secret_env": "EDGE_SECRET"})
    }

    fn env(name: &str) -> Option<String> {
        match name {
            "EDGE_ID" => Some("mcp-edge".into()),
            "EDGE_SECRET" => Some("s3cret".into()),
            _ => None,
        }
    }

    #[test]
    fn credentials_come_from_the_environment_and_stay_out_of_debug() {
        let cfg = with(section(), &env).unwrap();
        let i = cfg.introspection.expect("configured");
        assert_eq!(
            (i.client_id.as_str(), i.client_secret.as_str()),
            ("mcp-edge", "s3cret")
        );
        assert_eq!((i.timeout_ms, i.max_cache_seconds), (2_000, 60));
        assert!(!format!("{i:?}").contains("s3cret"));
        assert!(with(Value::Null, &env).unwrap().introspection.is_none());
    }

    #[test]
    fn bad_sections_name_their_field() {
        let field = |edit: fn(&mut Value), env: &dyn Fn(&str) -> Option<String>| {
            let mut s = section();
            edit(&mut s);
            with(s, env).unwrap_err().field
        };
        assert_eq!(field(|_| {}, &|_| None), "introspection.client_id_env");
        assert_eq!(
            field(|_| {}, &|n| (n == "EDGE_ID").then(|| "x".into())),
            "introspection.client_secret_env"
        );
        assert_eq!(
            field(|s| s["path"] = json!("token"), &env),
            "introspection.path"
        );
        assert_eq!(
            field(|s| s["cluster"] = json!(""), &env),
            "introspection.cluster"
        );
        assert_eq!(
            field(|s| s["timeout_ms"] = json!(0), &env),
            "introspection.timeout_ms"
        );
        assert_eq!(
            field(|s| s["max_cache_seconds"] = json!(100_000), &env),
            "introspection.max_cache_seconds"
        );
        // A secret in the file itself is refused (unknown field).
        assert_eq!(field(|s| s["client_secret"] = json!("x"), &env), "(root)");
    }
}
