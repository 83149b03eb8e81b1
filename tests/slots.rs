//! The shared-data slot table under pressure, through real Envoy and the real .wasm (issue 9,
//! finding 6): a slot belongs to its owner until its bucket would be full again by the owner's own
//! limit, never by the limit of whoever probes it.
//!
//! This binary's stack has 16 slots, an enterprise tier that barely refills (its buckets stay live
//! for the whole test) and a free tier that refills at once (by its own measure any bucket would be
//! full again within a millisecond). Before the fix a free tenant judged an enterprise slot by the
//! free refill, took it over and reset that enterprise bucket.

use anyhow::{Result, ensure};
use mcp_edge_tests::client::*;
use mcp_edge_tests::runner::Case;
use mcp_edge_tests::stack::Stack;
use serde_json::{Value, json};
use xtask::claims_for;

const SLOTS: usize = 16;

fn overrides() -> Value {
    json!({
        "rate_limit_slots": SLOTS,
        "rate_limits": {
            "free": {"requests_per_minute": 60000, "burst": 1},
            "pro": {"requests_per_minute": 60000, "burst": 1000},
            "enterprise": {"requests_per_minute": 1, "burst": 1000}
        }
    })
}

fn call(s: &Stack, tenant: &str, tier: &str) -> Result<u16> {
    let mut spec = s.spec(tenant);
    spec.tier = tier.to_string();
    let token = s.sign("ES256", claims_for(&spec))?;
    Ok(post_mcp(
        &s.recorded_mcp_url,
        Some(&token),
        &call_body(&marker(tenant)),
    )?
    .status()
    .as_u16())
}

fn a_free_tenant_cannot_take_over_a_live_enterprise_slot(s: &Stack) -> Result<()> {
    // Enterprise tenants until every slot holds a live bucket: each admitted tenant owns one slot.
    let mut admitted = Vec::new();
    for i in 0..400 {
        if admitted.len() == SLOTS {
            break;
        }
        let tenant = format!("tenant-ent-{i}");
        match call(s, &tenant, "enterprise")? {
            200 => admitted.push(tenant),
            429 => {}
            other => anyhow::bail!("{tenant}: status {other}"),
        }
    }
    ensure!(
        admitted.len() == SLOTS,
        "only {} of {SLOTS} slots filled",
        admitted.len()
    );
    // Every slot is live by its owner's limit: a free tenant finds none to take.
    for i in 0..5 {
        let status = call(s, &format!("tenant-free-{i}"), "free")?;
        ensure!(
            status == 429,
            "free tenant {i} got {status}: it took over a live enterprise slot"
        );
    }
    // And the owners still hold their slots.
    for tenant in &admitted {
        ensure!(
            call(s, tenant, "enterprise")? == 200,
            "{tenant} lost its slot"
        );
    }
    Ok(())
}

const CASES: &[Case] =
    mcp_edge_tests::cases![a_free_tenant_cannot_take_over_a_live_enterprise_slot];

fn main() {
    mcp_edge_tests::runner::run_with(&overrides(), CASES);
}
