//! A tonic client of the service and the requests the edge would send.

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::Code;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use tonic::transport::Channel;

pub type Client = RateLimitServiceClient<Channel>;

pub async fn connect(addr: &str) -> Client {
    RateLimitServiceClient::connect(addr.to_string())
        .await
        .expect("connect to the service")
}

pub fn request(tenant: &str, tier: &str, tool: Option<&str>, hits: u32) -> RateLimitRequest {
    let mut entries = vec![entry("tenant", tenant), entry("tier", tier)];
    if let Some(tool) = tool {
        entries.push(entry("tool", tool));
    }
    RateLimitRequest {
        domain: "mcp-edge".into(),
        descriptors: vec![RateLimitDescriptor {
            entries,
            ..Default::default()
        }],
        hits_addend: hits,
    }
}

fn entry(key: &str, value: &str) -> Entry {
    Entry {
        key: key.into(),
        value: value.into(),
    }
}

pub async fn ask(
    client: &mut Client,
    req: RateLimitRequest,
) -> Result<RateLimitResponse, tonic::Status> {
    client.should_rate_limit(req).await.map(|r| r.into_inner())
}

pub fn admitted(r: &RateLimitResponse) -> bool {
    r.overall_code == i32::from(Code::Ok)
}

pub fn header<'a>(r: &'a RateLimitResponse, name: &str) -> Option<&'a str> {
    r.response_headers_to_add
        .iter()
        .find(|h| h.key == name)
        .map(|h| h.value.as_str())
}
