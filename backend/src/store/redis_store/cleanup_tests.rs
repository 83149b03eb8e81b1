//! What a delete leaves in Redis (nothing of the project), a large project deleted in chunks, and
//! data written by an earlier version (a list as project order, no counters) read correctly.

use std::collections::HashMap;

use super::tests::store;
use super::*;
use crate::store::TaskStatus;
use crate::store::count_tasks;
use crate::store::counters::counts_from;
use crate::tenant::test_tenant;

/// Every key of the tenant and everything in it, as text.
async fn tenant_contents(store: &RedisStore, tenant: &TenantContext) -> HashMap<String, String> {
    let mut conn = store.pool.get();
    let prefix = TenantKeys::for_tenant(tenant).prefix().to_owned();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut contents = HashMap::new();
    for key in keys {
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        let text = match kind.as_str() {
            "hash" => {
                let all: Vec<String> = redis::cmd("HGETALL")
                    .arg(&key)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                all.join(" ")
            }
            "list" => {
                let all: Vec<String> = redis::cmd("LRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                all.join(" ")
            }
            "zset" => {
                let all: Vec<String> = redis::cmd("ZRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                all.join(" ")
            }
            "set" => {
                let all: Vec<String> = redis::cmd("SMEMBERS")
                    .arg(&key)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                all.join(" ")
            }
            "string" => redis::cmd("GET")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap(),
            other => panic!("unexpected key type {other} of {key}"),
        };
        contents.insert(key, text);
    }
    contents
}

/// Asserts nothing in the tenant's keys names `ids` (in a key name or in a value).
async fn assert_gone(store: &RedisStore, tenant: &TenantContext, ids: &[String]) {
    for (key, text) in tenant_contents(store, tenant).await {
        for id in ids {
            assert!(!key.contains(id.as_str()), "key {key} names {id}");
            assert!(!text.contains(id.as_str()), "{key} still holds {id}");
        }
    }
}

#[tokio::test]
async fn delete_leaves_nothing_of_the_project() {
    let (store, _server) = store().await;
    let t = test_tenant(&format!("acme-{}", uuid::Uuid::new_v4().simple()));
    let keep = store
        .create(
            &t,
            NewProject {
                name: "Keep".into(),
                description: None,
            },
        )
        .await
        .unwrap();
    let doomed = store
        .create(
            &t,
            NewProject {
                name: "Doomed".into(),
                description: None,
            },
        )
        .await
        .unwrap();
    let kept = store
        .create_task(
            &t,
            NewTask {
                project_id: keep.id.clone(),
                title: "k".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut ids = vec![doomed.id.clone()];
    for i in 0..30 {
        let task = store
            .create_task(
                &t,
                NewTask {
                    project_id: doomed.id.clone(),
                    title: format!("t{i}"),
                    assignee_email: Some("ann@example.com".into()),
                    due_date: Some("2001-01-01".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        ids.push(task.id);
    }
    let deleted = store.delete(&t, &doomed.id, "Doomed").await.unwrap();
    assert_eq!(deleted.tasks_deleted, 30);
    assert_gone(&store, &t, &ids).await;
    // The other project is whole, and a write to a deleted task brings nothing back.
    let contents = tenant_contents(&store, &t).await;
    assert!(contents.values().any(|v| v.contains(&kept.id)));
    let patch = TaskPatch {
        title: Some("back?".into()),
        ..Default::default()
    };
    assert!(matches!(
        store.update_task(&t, &ids[1], &patch).await,
        Err(StoreError::TaskNotFound(_))
    ));
    assert_gone(&store, &t, &ids).await;
}

#[tokio::test]
async fn a_large_project_is_deleted_in_chunks() {
    let (store, _server) = store().await;
    let t = test_tenant(&format!("acme-{}", uuid::Uuid::new_v4().simple()));
    let p = store
        .create(
            &t,
            NewProject {
                name: "Big".into(),
                description: None,
            },
        )
        .await
        .unwrap();
    let count = 3 * reap::REAP_CHUNK + 17;
    let mut ids = vec![p.id.clone()];
    for i in 0..count {
        let task = store
            .create_task(
                &t,
                NewTask {
                    project_id: p.id.clone(),
                    title: format!("t{i}"),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        ids.push(task.id);
    }
    // A delete interrupted after the detach (the process stopped) is finished by the next delete.
    let keys = TenantKeys::for_tenant(&t);
    let (json, _) = store.visible_project(&t, &keys, &p.id).await.unwrap();
    let detached = store.detach(&keys, &p.id, &json).await.unwrap();
    assert_eq!(detached, Some(count as i64));
    assert_eq!(store.get(&t, &p.id).await.unwrap(), None, "gone at once");
    let other = store
        .create(
            &t,
            NewProject {
                name: "Small".into(),
                description: None,
            },
        )
        .await
        .unwrap();
    store.delete(&t, &other.id, "Small").await.unwrap();
    ids.push(other.id);
    assert_gone(&store, &t, &ids).await;
    assert!(
        tenant_contents(&store, &t)
            .await
            .keys()
            .all(|k| !k.ends_with(":deleting"))
    );
}

#[tokio::test]
async fn data_of_an_earlier_version_is_read_and_upgraded() {
    let (store, _server) = store().await;
    let t = test_tenant(&format!("acme-{}", uuid::Uuid::new_v4().simple()));
    let keys = TenantKeys::for_tenant(&t);
    // Write what an earlier version wrote: a list as project order with a tombstone, no counters.
    let mut projects = Vec::new();
    for name in ["a", "gone", "b"] {
        let p = crate::store::validation::new_project_record(
            &t,
            NewProject {
                name: name.into(),
                description: None,
            },
        )
        .unwrap();
        projects.push(p);
    }
    let mut conn = store.pool.get();
    let mut tasks = Vec::new();
    for (i, p) in projects.iter().enumerate() {
        let _: () = redis::cmd("RPUSH")
            .arg(keys.legacy_project_order())
            .arg(&p.id)
            .query_async(&mut conn)
            .await
            .unwrap();
        if i == 1 {
            continue; // deleted: its id stays in the list, its record does not
        }
        let _: () = redis::cmd("HSET")
            .arg(keys.project_records())
            .arg(&p.id)
            .arg(encode(p).unwrap())
            .query_async(&mut conn)
            .await
            .unwrap();
        for j in 0..3 {
            let mut task = crate::store::validation::new_task_record(
                &t,
                p,
                NewTask {
                    project_id: p.id.clone(),
                    title: format!("t{j}"),
                    ..Default::default()
                },
            )
            .unwrap();
            if j == 0 {
                task.status = TaskStatus::Done;
            }
            let _: () = redis::cmd("HSET")
                .arg(keys.task_records())
                .arg(&task.id)
                .arg(encode(&task).unwrap())
                .query_async(&mut conn)
                .await
                .unwrap();
            let _: () = redis::cmd("RPUSH")
                .arg(keys.project_tasks(&p.id))
                .arg(&task.id)
                .query_async(&mut conn)
                .await
                .unwrap();
            tasks.push(task);
        }
    }
    // A cursor handed out by the earlier version (position 1) still continues at "gone"'s place.
    let page = store
        .list(&t, ProjectFilter::default(), Some(&Cursor::new(1)), 10)
        .await
        .unwrap();
    assert_eq!(page.projects, vec![projects[2].clone()]);
    let page = store
        .list(&t, ProjectFilter::default(), None, 10)
        .await
        .unwrap();
    assert_eq!(
        page.projects,
        vec![projects[0].clone(), projects[2].clone()]
    );
    // Counters are rebuilt on first read, then kept by writes.
    let today = chrono::Utc::now().date_naive();
    let (n, counters) = store.counters_in_scope(&t, None).await.unwrap();
    assert_eq!(
        counts_from(n, &counters, today),
        count_tasks(2, &tasks, today)
    );
    let added = store
        .create_task(
            &t,
            NewTask {
                project_id: projects[0].id.clone(),
                title: "new".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    tasks.push(added);
    let (n, counters) = store.counters_in_scope(&t, None).await.unwrap();
    assert_eq!(
        counts_from(n, &counters, today),
        count_tasks(2, &tasks, today)
    );
    let newer = store
        .create(
            &t,
            NewProject {
                name: "c".into(),
                description: None,
            },
        )
        .await
        .unwrap();
    let page = store
        .list(&t, ProjectFilter::default(), None, 10)
        .await
        .unwrap();
    assert_eq!(page.projects.last(), Some(&newer));
    assert!(
        !tenant_contents(&store, &t)
            .await
            .contains_key(&keys.legacy_project_order())
    );
}
