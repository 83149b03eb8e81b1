//! The store conformance checks run against [`MemoryStore`].

use super::*;
use crate::store::conformance;

#[tokio::test]
async fn tenants_are_isolated() {
    conformance::tenants_are_isolated(&MemoryStore::new()).await;
}

#[tokio::test]
async fn paginates_in_creation_order() {
    conformance::paginates_in_creation_order(&MemoryStore::new()).await;
}

#[tokio::test]
async fn data_scope_narrows() {
    conformance::data_scope_narrows(&MemoryStore::new()).await;
}

#[tokio::test]
async fn archive_hides_and_blocks_new_tasks() {
    conformance::archive_hides_and_blocks_new_tasks(&MemoryStore::new()).await;
}

#[tokio::test]
async fn delete_checks_the_name_and_removes_tasks() {
    conformance::delete_checks_the_name_and_removes_tasks(&MemoryStore::new()).await;
}

#[tokio::test]
async fn tasks_filter_paginate_and_update() {
    conformance::tasks_filter_paginate_and_update(&MemoryStore::new()).await;
}

#[tokio::test]
async fn caps_hold() {
    let store = MemoryStore::with_limits(conformance::TEST_LIMITS);
    conformance::caps_hold(&store).await;
}

#[tokio::test]
async fn analytics_match_a_brute_force_count() {
    conformance::analytics_match_a_brute_force_count(&MemoryStore::new()).await;
}
