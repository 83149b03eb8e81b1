//! Per-step deadlines against a Redis that is busy (a script spinning on the server): a read fails
//! with nothing changed, a write whose reply is late fails as unconfirmed, and what the write did
//! is then readable. Uses its own `redis-server`, since it stalls the whole server for a moment.

use std::time::Duration;

use super::*;
use crate::redis_server::RedisServer;
use crate::tenant::test_tenant;

/// Keeps the server busy for `millis` (a Lua loop on another connection).
fn stall(url: &str, millis: u64) -> tokio::task::JoinHandle<()> {
    let url = url.to_owned();
    tokio::spawn(async move {
        let client = redis::Client::open(url).expect("url");
        let mut conn = client
            .get_multiplexed_async_connection_with_config(
                &redis::AsyncConnectionConfig::new().set_response_timeout(None),
            )
            .await
            .expect("connect");
        let spin = r"
local t = redis.call('TIME')
local start = t[1] * 1000000 + t[2]
repeat
  t = redis.call('TIME')
until t[1] * 1000000 + t[2] - start >= tonumber(ARGV[1]) * 1000
return 1
";
        let _: i64 = redis::Script::new(spin)
            .arg(millis)
            .invoke_async(&mut conn)
            .await
            .expect("stall");
    })
}

#[tokio::test]
async fn late_replies_fail_the_call_with_what_is_known() {
    let server = RedisServer::start();
    let config = RedisConfig {
        pool_size: 1,
        response_timeout: Duration::from_millis(100),
        ..RedisConfig::default()
    };
    let store = RedisStore::connect_with(&server.url(), config)
        .await
        .unwrap();
    let t = test_tenant("acme");
    let p = store
        .create(
            &t,
            NewProject {
                name: "Before".into(),
                description: None,
            },
        )
        .await
        .unwrap();

    let busy = stall(&server.url(), 1000);
    tokio::time::sleep(Duration::from_millis(200)).await; // the stall has begun
    assert!(
        matches!(store.get(&t, &p.id).await, Err(StoreError::Timeout(_))),
        "a read past its deadline changed nothing"
    );
    // A create fails at its first step (reading the order), before writing anything.
    let late = store
        .create(
            &t,
            NewProject {
                name: "Never".into(),
                description: None,
            },
        )
        .await;
    assert!(matches!(late, Err(StoreError::Timeout(_))), "{late:?}");
    busy.await.unwrap();

    // A write script whose reply is late, and so is the question whether it happened.
    let keys = TenantKeys::for_tenant(&t);
    let during = crate::store::validation::new_project_record(
        &t,
        NewProject {
            name: "During".into(),
            description: None,
        },
    )
    .unwrap();
    let busy = stall(&server.url(), 1000);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let late = store.insert_project(&keys, &during).await;
    assert!(matches!(late, Err(StoreError::Unconfirmed(_))), "{late:?}");
    busy.await.unwrap();

    // Once Redis is back, reading tells what happened: the script was sent, so it ran.
    let page = store
        .list(&t, ProjectFilter::default(), None, 10)
        .await
        .unwrap();
    let names: Vec<&str> = page.projects.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["Before", "During"]);
}
