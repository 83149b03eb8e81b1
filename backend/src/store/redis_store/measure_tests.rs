//! Measures (does not assert) how long the store's scripts take at the caps' worst case, to size
//! the response timeout (`--redis-response-timeout-ms`). Run by hand:
//! `cargo test -p mcp-edge-backend --lib -- --ignored --nocapture script_times_at_the_caps`.
//! Each figure is the slowest client-side round trip of that step (script time plus a local RTT).

use std::time::{Duration, Instant};

use super::*;
use crate::redis_server::RedisServer;
use crate::store::TaskStatus;
use crate::store::counters::{self, Counters};
use crate::tenant::test_tenant;

fn report(step: &str, times: &mut [Duration]) {
    times.sort();
    let max = times.last().copied().unwrap_or_default();
    let median = times.get(times.len() / 2).copied().unwrap_or_default();
    println!("{step}: n={} median={median:?} max={max:?}", times.len());
}

#[tokio::test]
#[ignore = "a measurement, run by hand"]
async fn script_times_at_the_caps() {
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url()).await.unwrap();
    let limits = StoreLimits::default();
    let t = test_tenant("measure");
    let keys = TenantKeys::for_tenant(&t);

    let mut times = Vec::new();
    let mut projects = Vec::new();
    for i in 0..limits.projects_per_tenant {
        let start = Instant::now();
        let new = NewProject {
            name: format!("p{i}"),
            description: None,
        };
        projects.push(store.create(&t, new).await.unwrap());
        times.push(start.elapsed());
    }
    report(
        "create_project up to the cap (migrate + create scripts)",
        &mut times,
    );
    assert!(
        store
            .create(
                &t,
                NewProject {
                    name: "x".into(),
                    description: None
                }
            )
            .await
            .is_err()
    );

    // The worst project for counters: every task its own assignee and due date (4 fields each).
    let big = &projects[0];
    let mut times = Vec::new();
    let mut last = None;
    for i in 0..limits.tasks_per_project {
        let new = NewTask {
            project_id: big.id.clone(),
            title: format!("t{i}"),
            assignee_email: Some(format!("u{i}@example.com")),
            due_date: Some(format!("{:04}-01-01", 1000 + i % 8000)),
            ..Default::default()
        };
        let start = Instant::now();
        last = Some(store.create_task(&t, new).await.unwrap());
        times.push(start.elapsed());
    }
    report("create_task up to the cap (whole call)", &mut times);

    let mut times = Vec::new();
    let task = last.unwrap();
    for i in 0..200 {
        let patch = TaskPatch {
            status: Some(if i % 2 == 0 {
                TaskStatus::Done
            } else {
                TaskStatus::Todo
            }),
            ..Default::default()
        };
        let start = Instant::now();
        store.update_task(&t, &task.id, &patch).await.unwrap();
        times.push(start.elapsed());
    }
    report("update_task (whole call)", &mut times);

    let start = Instant::now();
    let (_, counters) = store.counters_in_scope(&t, None).await.unwrap();
    report(
        "get_analytics counters, whole scope (1000 projects, one at the worst)",
        &mut [start.elapsed()],
    );
    println!("counter fields: {}", counters.len());

    // The one-time rebuild of a project without counters, and its install script alone.
    let hash = keys.project_counters(&big.id);
    let mut conn = store.pool.get();
    let _: () = redis::cmd("HDEL")
        .arg(&hash)
        .arg("v")
        .query_async(&mut conn)
        .await
        .unwrap();
    let start = Instant::now();
    store.counters_in_scope(&t, Some(&big.id)).await.unwrap();
    report(
        "counter rebuild of a 10 000-task project (whole call)",
        &mut [start.elapsed()],
    );
    let mut rebuilt = Counters::new();
    for task in store.project_task_list(&keys, &big.id).await.unwrap() {
        counters::apply(&mut rebuilt, &counters::delta(None, Some(&task)));
    }
    let _: () = redis::cmd("DEL")
        .arg(&hash)
        .query_async(&mut conn)
        .await
        .unwrap();
    let side = keys.counters_rebuild(&big.id, "measure");
    let fields: Vec<(&String, &i64)> = rebuilt.iter().collect();
    let mut times = Vec::new();
    for chunk in fields.chunks(1000) {
        let start = Instant::now();
        let _: () = redis::cmd("HSET")
            .arg(&side)
            .arg(chunk)
            .query_async(&mut conn)
            .await
            .unwrap();
        times.push(start.elapsed());
    }
    report("counter rebuild: HSET of 1000 fields", &mut times);
    let start = Instant::now();
    let installed: i64 = scripts::install_counters()
        .key(&hash)
        .key(&side)
        .arg("0")
        .arg(fields.len())
        .invoke_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(installed, 1);
    report("install_counters script (rename)", &mut [start.elapsed()]);

    // Delete: the detach script, then each reaping chunk.
    let (json, _) = store.visible_project(&t, &keys, &big.id).await.unwrap();
    let start = Instant::now();
    store.detach(&keys, &big.id, &json).await.unwrap();
    report(
        "detach_project script (10 000 tasks)",
        &mut [start.elapsed()],
    );
    let mut times = Vec::new();
    loop {
        let start = Instant::now();
        let n: u64 = scripts::reap_chunk()
            .key(keys.deleting_tasks(&big.id))
            .key(keys.task_records())
            .key(keys.projects_deleting())
            .arg(&big.id)
            .arg(reap::REAP_CHUNK)
            .invoke_async(&mut conn)
            .await
            .unwrap();
        times.push(start.elapsed());
        if n == 0 {
            break;
        }
    }
    report("reap_chunk script (500 tasks)", &mut times);

    // Moving a legacy order list the size of the cap.
    let legacy = test_tenant("measure-legacy");
    let legacy_keys = TenantKeys::for_tenant(&legacy);
    for p in &projects {
        let _: () = redis::cmd("RPUSH")
            .arg(legacy_keys.legacy_project_order())
            .arg(&p.id)
            .query_async(&mut conn)
            .await
            .unwrap();
        let _: () = redis::cmd("HSET")
            .arg(legacy_keys.project_records())
            .arg(&p.id)
            .arg(encode(p).unwrap())
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let start = Instant::now();
    store.migrate_order(&legacy_keys).await.unwrap();
    report(
        "migrate_order script (1000 legacy ids)",
        &mut [start.elapsed()],
    );
}
