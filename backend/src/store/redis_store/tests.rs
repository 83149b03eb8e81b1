//! The store conformance checks run against [`RedisStore`]: on the Redis at `REDIS_URL` when it is
//! set (each check uses its own random tenant ids, so a shared Redis is fine), otherwise on a
//! throwaway `redis-server` of the test's own.

use super::*;
use crate::redis_server::RedisServer;
use crate::store::conformance;
use crate::tenant::{TenantContext, test_tenant};

/// The store, and the server it talks to when the test started one (kept alive with it).
pub(super) async fn store() -> (RedisStore, Option<RedisServer>) {
    store_with(RedisConfig::default()).await
}

async fn store_with(config: RedisConfig) -> (RedisStore, Option<RedisServer>) {
    let (url, server) = match std::env::var("REDIS_URL") {
        Ok(url) => (url, None),
        Err(_) => {
            let server = RedisServer::start();
            (server.url(), Some(server))
        }
    };
    let store = RedisStore::connect_with(&url, config)
        .await
        .expect("connect to Redis");
    (store, server)
}

/// A fresh tenant with one project ("Apollo") holding one task ("Launch").
async fn project_with_task(store: &RedisStore) -> (TenantContext, Project, Task) {
    let t = test_tenant(&format!("acme-{}", uuid::Uuid::new_v4().simple()));
    let p = store
        .create(
            &t,
            NewProject {
                name: "Apollo".into(),
                description: None,
            },
        )
        .await
        .unwrap();
    let task = store
        .create_task(
            &t,
            NewTask {
                project_id: p.id.clone(),
                title: "Launch".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    (t, p, task)
}

#[tokio::test]
async fn conformance() {
    let (store, _server) = store().await;
    conformance::all(&store).await;
}

#[tokio::test]
async fn caps_hold() {
    let (store, _server) = store_with(RedisConfig {
        limits: conformance::TEST_LIMITS,
        ..RedisConfig::default()
    })
    .await;
    conformance::caps_hold(&store).await;
}

#[tokio::test]
async fn keys_are_the_documented_ones() {
    let (store, _server) = store().await;
    let (t, p, task) = project_with_task(&store).await;
    let prefix = format!("mcp-edge:tenant:{}:{}", t.tenant_id.len(), t.tenant_id);
    let mut conn = store.pool.get();
    let order: Vec<String> = redis::cmd("ZRANGE")
        .arg(format!("{prefix}:projects:order"))
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(order, vec![p.id.clone()]);
    let counters: std::collections::HashMap<String, i64> = redis::cmd("HGETALL")
        .arg(format!("{prefix}:projects:{}:counters", p.id))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(counters.get("tasks"), Some(&1), "{counters:?}");
    let ids: Vec<String> = redis::cmd("LRANGE")
        .arg(format!("{prefix}:projects:{}:tasks", p.id))
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(ids, vec![task.id.clone()]);
    let json: Option<String> = redis::cmd("HGET")
        .arg(format!("{prefix}:tasks:by-id"))
        .arg(&task.id)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(json.is_some_and(|j| j.contains("\"Launch\"")));
}

#[tokio::test]
async fn concurrent_updates_are_not_lost() {
    let (store, _server) = store().await;
    let (t, p, task) = project_with_task(&store).await;
    let title = TaskPatch {
        title: Some("Renamed".into()),
        ..Default::default()
    };
    let assign = TaskPatch {
        assignee_email: Some("bob@example.com".into()),
        ..Default::default()
    };
    let (a, b) = tokio::join!(
        store.update_task(&t, &task.id, &title),
        store.update_task(&t, &task.id, &assign)
    );
    a.unwrap();
    b.unwrap();
    let page = store
        .list_tasks(&t, &p.id, &TaskFilter::default(), None, 10)
        .await
        .unwrap();
    assert_eq!(page.tasks[0].title, "Renamed");
    assert_eq!(
        page.tasks[0].assignee_email.as_deref(),
        Some("bob@example.com")
    );
}
