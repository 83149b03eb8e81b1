//! The store conformance checks run against [`RedisStore`]; they run only when `REDIS_URL` is set
//! (each uses its own random tenant ids, so a shared Redis is fine).

use super::*;
use crate::store::conformance;
use crate::tenant::test_tenant;

async fn store() -> Option<RedisStore> {
    let Ok(url) = std::env::var("REDIS_URL") else {
        eprintln!("REDIS_URL not set; skipping the Redis store test");
        return None;
    };
    Some(
        RedisStore::connect(&url)
            .await
            .expect("connect to REDIS_URL"),
    )
}

#[tokio::test]
async fn conformance() {
    if let Some(store) = store().await {
        conformance::all(&store).await;
    }
}

#[tokio::test]
async fn keys_are_the_documented_ones() {
    let Some(store) = store().await else { return };
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
    let prefix = format!("mcp-edge:tenant:{}:{}", t.tenant_id.len(), t.tenant_id);
    let mut conn = store.conn.clone();
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
    let Some(store) = store().await else { return };
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
