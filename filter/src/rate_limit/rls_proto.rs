//! The few messages of Envoy's rate limit protocol (`envoy/service/ratelimit/v3/rls.proto`) the
//! filter sends and reads, declared by hand with `prost` so the wasm carries no generated API
//! crate: only the fields used, with the tags of the real protos (other fields are skipped when
//! decoding). `tests/` of the `ratelimit` crate cross-checks these encodings against `envoy-types`.

use prost::Message;

/// `envoy.service.ratelimit.v3.RateLimitRequest`.
#[derive(Clone, PartialEq, Message)]
pub struct RateLimitRequest {
    #[prost(string, tag = "1")]
    pub domain: String,
    #[prost(message, repeated, tag = "2")]
    pub descriptors: Vec<RateLimitDescriptor>,
    /// What the request costs (0 means 1).
    #[prost(uint32, tag = "3")]
    pub hits_addend: u32,
}

#[cfg(test)]
impl RateLimitRequest {
    /// The first descriptor's entries as `(key, value)` pairs, for tests to compare.
    pub fn first_entries(&self) -> Vec<(&str, &str)> {
        self.descriptors
            .first()
            .map(|d| {
                d.entries
                    .iter()
                    .map(|e| (e.key.as_str(), e.value.as_str()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// `envoy.extensions.common.ratelimit.v3.RateLimitDescriptor` (entries and the descriptor's own
/// `hits_addend`, which replaces the request's for it).
#[derive(Clone, PartialEq, Message)]
pub struct RateLimitDescriptor {
    #[prost(message, repeated, tag = "1")]
    pub entries: Vec<DescriptorEntry>,
    #[prost(message, optional, tag = "3")]
    pub hits_addend: Option<UInt64Value>,
}

/// `google.protobuf.UInt64Value`.
#[derive(Clone, PartialEq, Message)]
pub struct UInt64Value {
    #[prost(uint64, tag = "1")]
    pub value: u64,
}

/// `RateLimitDescriptor.Entry`.
#[derive(Clone, PartialEq, Message)]
pub struct DescriptorEntry {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `RateLimitResponse.Code`.
pub const CODE_OK: i32 = 1;
pub const CODE_OVER_LIMIT: i32 = 2;

/// `envoy.service.ratelimit.v3.RateLimitResponse` (the overall code and the headers to add).
#[derive(Clone, PartialEq, Message)]
pub struct RateLimitResponse {
    #[prost(int32, tag = "1")]
    pub overall_code: i32,
    #[prost(message, repeated, tag = "3")]
    pub response_headers_to_add: Vec<HeaderValue>,
}

/// `envoy.config.core.v3.HeaderValue` (`raw_value` is used when `value` is empty).
#[derive(Clone, PartialEq, Message)]
pub struct HeaderValue {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(string, tag = "2")]
    pub value: String,
    #[prost(bytes = "vec", tag = "3")]
    pub raw_value: Vec<u8>,
}

/// `envoy.config.core.v3.GrpcService` with only `envoy_grpc.cluster_name`: what Envoy's
/// `proxy_grpc_call` reads as the upstream (a bare cluster name is only a fallback when these bytes
/// do not parse as a GrpcService, which some names would).
#[derive(Clone, PartialEq, Message)]
pub struct GrpcService {
    #[prost(message, optional, tag = "1")]
    pub envoy_grpc: Option<EnvoyGrpc>,
}

/// `GrpcService.EnvoyGrpc`.
#[derive(Clone, PartialEq, Message)]
pub struct EnvoyGrpc {
    #[prost(string, tag = "1")]
    pub cluster_name: String,
}

/// The gRPC service and method Envoy's rate limit services answer.
pub const SERVICE: &str = "envoy.service.ratelimit.v3.RateLimitService";
pub const METHOD: &str = "ShouldRateLimit";

/// The upstream argument of `dispatch_grpc_call` for `cluster`: the encoded GrpcService. `None`
/// when it is not text (a cluster name of 128 bytes or more, or not ASCII; refused by the
/// configuration check before it gets here).
pub fn upstream_for(cluster: &str) -> Option<String> {
    let service = GrpcService {
        envoy_grpc: Some(EnvoyGrpc {
            cluster_name: cluster.to_string(),
        }),
    };
    String::from_utf8(service.encode_to_vec()).ok()
}

impl RateLimitRequest {
    pub fn to_bytes(&self) -> Vec<u8> {
        self.encode_to_vec()
    }
}

impl RateLimitResponse {
    /// Decodes a response; `None` for bytes that are not one.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        Self::decode(bytes).ok()
    }
}

impl HeaderValue {
    /// The value as text (`value`, else `raw_value`).
    pub fn text(&self) -> Option<&str> {
        if self.value.is_empty() {
            std::str::from_utf8(&self.raw_value).ok()
        } else {
            Some(&self.value)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_round_trips() {
        let req = RateLimitRequest {
            domain: "mcp-edge".into(),
            descriptors: vec![RateLimitDescriptor {
                entries: vec![DescriptorEntry {
                    key: "tenant".into(),
                    value: "acme".into(),
                }],
                hits_addend: Some(UInt64Value { value: 2 }),
            }],
            hits_addend: 3,
        };
        let bytes = req.to_bytes();
        assert_eq!(RateLimitRequest::decode(bytes.as_slice()).ok(), Some(req));
    }

    #[test]
    fn the_upstream_is_a_grpc_service_naming_the_cluster() {
        let up = upstream_for("mcp_edge_ratelimit").expect("ascii");
        let decoded = GrpcService::decode(up.as_bytes()).expect("decodes");
        assert_eq!(
            decoded.envoy_grpc.map(|g| g.cluster_name).as_deref(),
            Some("mcp_edge_ratelimit")
        );
        assert!(
            upstream_for(&"x".repeat(200)).is_none(),
            "length byte not ASCII"
        );
    }

    #[test]
    fn garbage_is_not_a_response() {
        assert!(RateLimitResponse::from_bytes(&[0xff, 0xff, 0xff]).is_none());
        assert_eq!(
            RateLimitResponse::from_bytes(&[]).map(|r| r.overall_code),
            Some(0)
        );
    }
}
