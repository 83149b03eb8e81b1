//! The filter's hand-declared rate limit messages (`filter/src/rate_limit/rls_proto.rs`) against
//! the generated ones of `envoy-types` this service uses: what the filter sends decodes here as
//! the request it means, and what this service answers decodes in the filter as the same answer.

use envoy_types::pb::envoy::config::core::v3::{GrpcService, HeaderValue, grpc_service};
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::Code;
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use mcp_edge_contract::Tier;
use mcp_edge_filter::rate_limit::global::{GlobalLimit, GlobalVerdict, decide};
use mcp_edge_filter::rate_limit::rls_proto;
use prost::Message;

fn limit() -> GlobalLimit {
    GlobalLimit {
        cluster: "mcp_edge_ratelimit".into(),
        upstream: rls_proto::upstream_for("mcp_edge_ratelimit").expect("ascii"),
        domain: "mcp-edge".into(),
        timeout_ms: 20,
        first_call_timeout_ms: 1_000,
        failure_mode: Default::default(),
        tool_descriptor: true,
        authorization: None,
    }
}

#[test]
fn the_filters_request_is_the_request_the_service_reads() {
    let bytes = limit().request("acme", Tier::Enterprise, &[("list_projects".into(), 7)], 7);
    let req = RateLimitRequest::decode(bytes.as_slice()).expect("envoy-types decodes it");
    assert_eq!(req.domain, "mcp-edge");
    assert_eq!(req.hits_addend, 7);
    assert_eq!(req.descriptors.len(), 1);
    let entries: Vec<(&str, &str)> = req.descriptors[0]
        .entries
        .iter()
        .map(|e| (e.key.as_str(), e.value.as_str()))
        .collect();
    assert_eq!(
        entries,
        [
            ("tenant", "acme"),
            ("tier", "enterprise"),
            ("tool", "list_projects")
        ]
    );
    // and the service accepts it as one tenant descriptor costing 7
    let checked = mcp_edge_ratelimit::descriptor::check(&req, "mcp-edge").expect("valid");
    assert_eq!((checked[0].hits, checked[0].tier), (7, Tier::Enterprise));
    // the same bytes as envoy-types encodes
    assert_eq!(req.encode_to_vec(), bytes);
}

#[test]
fn the_services_answer_reads_the_same_in_the_filter() {
    let header = |k: &str, v: &str| HeaderValue {
        key: k.into(),
        value: v.into(),
        ..Default::default()
    };
    let response = RateLimitResponse {
        overall_code: Code::OverLimit.into(),
        response_headers_to_add: vec![
            header("ratelimit-policy", "\"free\";q=60;w=60"),
            header("ratelimit", "\"free\";r=0;t=37"),
            header("retry-after", "37"),
        ],
        ..Default::default()
    };
    let bytes = response.encode_to_vec();
    let GlobalVerdict::OverLimit(reply) = decide(&limit(), Tier::Free, Some(0), Some(&bytes))
    else {
        panic!("not over the limit");
    };
    assert_eq!(reply.header("retry-after"), Some("37"));
    assert_eq!(reply.header("ratelimit"), Some("\"free\";r=0;t=37"));
    let ok = RateLimitResponse {
        overall_code: Code::Ok.into(),
        ..Default::default()
    };
    assert_eq!(
        decide(&limit(), Tier::Pro, Some(0), Some(&ok.encode_to_vec())),
        GlobalVerdict::Admitted(vec![])
    );
}

#[test]
fn the_upstream_is_envoys_grpc_service_for_the_cluster() {
    let upstream = rls_proto::upstream_for("mcp_edge_ratelimit").expect("ascii");
    let service = GrpcService::decode(upstream.as_bytes()).expect("decodes");
    let Some(grpc_service::TargetSpecifier::EnvoyGrpc(envoy)) = service.target_specifier else {
        panic!("not an envoy_grpc service: {service:?}");
    };
    assert_eq!(envoy.cluster_name, "mcp_edge_ratelimit");
}
