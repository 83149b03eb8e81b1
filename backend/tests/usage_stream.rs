//! The usage stream read in pages, the export checkpoint and trimming, against a real Redis:
//! a report over more events than a page equals the sum of what was added; an incremental export
//! exports each event once; `usage trim` never removes an event not yet exported.

use std::collections::{BTreeMap, HashSet};

use chrono::{TimeZone as _, Utc};
use clap::Parser as _;
use mcp_edge_backend::config::Cli;
use mcp_edge_backend::metering::USAGE_STREAM;
use mcp_edge_backend::metering::UsageEvent;
use mcp_edge_backend::metering::day::rfc3339_millis;
use mcp_edge_backend::metering::usage_stream::{EXPORTED_UNTIL, PAGE};
use mcp_edge_backend::redis_server::{RedisServer, temp_dir};
use mcp_edge_backend::usage_cli::{self, Command};
use serde_json::Value;

/// Adds `count` events of `tenant`/`tool` at `day` (noon UTC) to the stream, numbered from `from`.
fn add_events(redis: &RedisServer, tenant: &str, tool: &str, day: u32, from: usize, count: usize) {
    let at = Utc
        .with_ymd_and_hms(2026, 11, day, 12, 0, 0)
        .single()
        .expect("time");
    let mut pipe = redis::pipe();
    for n in from..from + count {
        let event = UsageEvent {
            event_id: format!("{tenant}-{tool}-{day}-{n}"),
            request_id: format!("req-{n}"),
            tenant_id: tenant.to_owned(),
            tool: tool.to_owned(),
            user_id: "alice".to_owned(),
            timestamp: rfc3339_millis(at),
            timestamp_ms: at.timestamp_millis(),
            billable: true,
        };
        pipe.cmd("XADD").arg(USAGE_STREAM).arg("*");
        for (field, value) in event.to_fields() {
            pipe.arg(field).arg(value);
        }
        pipe.ignore();
    }
    let () = pipe.query(&mut redis.connection()).expect("xadd");
}

/// Runs `mcp-edge-backend usage <args>` in this process; its output.
async fn usage(redis: &RedisServer, args: &[&str]) -> anyhow::Result<String> {
    let url = redis.url();
    let mut argv = vec!["mcp-edge-backend", "usage"];
    argv.extend_from_slice(args);
    argv.extend_from_slice(&["--redis-url", &url]);
    let Some(Command::Usage(command)) = Cli::try_parse_from(argv)?.command else {
        anyhow::bail!("not a usage command");
    };
    let mut out = Vec::new();
    usage_cli::run(command, &mut out).await?;
    Ok(String::from_utf8(out)?)
}

/// Runs `usage export --stripe --customers <customers> <args> --output <file>`; the file's text.
async fn export_to(
    redis: &RedisServer,
    customers: &str,
    file: &std::path::Path,
    args: &[&str],
) -> anyhow::Result<String> {
    let file_arg = file.to_string_lossy().into_owned();
    let mut argv = vec![
        "export",
        "--stripe",
        "--customers",
        customers,
        "--output",
        &file_arg,
    ];
    argv.extend_from_slice(args);
    let said = usage(redis, &argv).await?;
    anyhow::ensure!(said.starts_with("exported "), "{said}");
    Ok(std::fs::read_to_string(file)?)
}

fn stream_len(redis: &RedisServer) -> usize {
    redis::cmd("XLEN")
        .arg(USAGE_STREAM)
        .query(&mut redis.connection())
        .expect("xlen")
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

#[tokio::test]
async fn a_report_over_several_pages_equals_the_sum_of_the_events() {
    let redis = RedisServer::start();
    let (acme, globex) = (2 * PAGE + 17, PAGE / 2);
    add_events(&redis, "acme", "create_task", 27, 0, acme);
    add_events(&redis, "globex", "create_task", 27, 0, globex);
    add_events(&redis, "acme", "update_task", 28, 0, 3);
    let rows = json_lines(&usage(&redis, &["report", "--json"]).await.expect("report"));
    let counts: BTreeMap<(String, String, String), u64> = rows
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().expect("field").to_owned();
            (
                (s("day"), s("tenant_id"), s("tool")),
                r["calls"].as_u64().expect("calls"),
            )
        })
        .collect();
    let want: BTreeMap<_, _> = [
        (("2026-11-27", "acme", "create_task"), acme as u64),
        (("2026-11-27", "globex", "create_task"), globex as u64),
        (("2026-11-28", "acme", "update_task"), 3),
    ]
    .into_iter()
    .map(|((d, t, tool), n)| ((d.to_owned(), t.to_owned(), tool.to_owned()), n))
    .collect();
    assert_eq!(counts, want);
    let table = usage(&redis, &["report", "--day", "2026-11-27"])
        .await
        .expect("report");
    assert!(
        table.ends_with(&format!("total billable calls: {}\n", acme + globex)),
        "{table}"
    );
    let dir = temp_dir("usage-stream");
    let customers = dir.join("customers.json");
    std::fs::write(&customers, r#"{"acme": "cus_A", "globex": "cus_G"}"#).expect("write");
    let customers = customers.to_string_lossy().into_owned();
    let lines = json_lines(
        &export_to(&redis, &customers, &dir.join("all.jsonl"), &[])
            .await
            .expect("export"),
    );
    let ids: HashSet<&str> = lines
        .iter()
        .map(|l| l["identifier"].as_str().expect("identifier"))
        .collect();
    assert_eq!(
        (lines.len(), ids.len()),
        (acme + globex + 3, acme + globex + 3)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn trim_removes_only_exported_events_and_incremental_exports_each_event_once() {
    let redis = RedisServer::start();
    let dir = temp_dir("usage-trim");
    let customers = dir.join("customers.json");
    std::fs::write(&customers, r#"{"acme": "cus_A"}"#).expect("write");
    let customers = customers.to_string_lossy().into_owned();
    let files = std::cell::Cell::new(0);
    let export = || {
        files.set(files.get() + 1);
        let file = dir.join(format!("batch-{}.jsonl", files.get()));
        let (redis, customers) = (&redis, customers.clone());
        async move { export_to(redis, &customers, &file, &["--incremental"]).await }
    };

    add_events(&redis, "acme", "create_task", 27, 0, PAGE + 5);
    // Nothing exported yet: nothing is trimmed, however old.
    let said = usage(&redis, &["trim", "--older-than", "0s"])
        .await
        .expect("trim");
    assert_eq!(said, "removed nothing: no export checkpoint yet\n");
    assert_eq!(stream_len(&redis), PAGE + 5);

    let first = json_lines(&export().await.expect("export"));
    assert_eq!(first.len(), PAGE + 5);
    add_events(&redis, "acme", "create_task", 27, PAGE + 5, 40);
    // Entries younger than the retention stay, exported or not.
    usage(&redis, &["trim", "--older-than", "1h"])
        .await
        .expect("trim");
    assert_eq!(stream_len(&redis), PAGE + 45);
    // Everything exported may go; the 40 added since the export stay.
    let said = usage(&redis, &["trim", "--older-than", "0s"])
        .await
        .expect("trim");
    assert!(
        said.starts_with(&format!("removed {} entries", PAGE + 5)),
        "{said}"
    );
    assert_eq!(stream_len(&redis), 40);
    let second = json_lines(&export().await.expect("export"));
    let second_ids: HashSet<&str> = second
        .iter()
        .map(|l| l["identifier"].as_str().expect("identifier"))
        .collect();
    assert_eq!(second_ids.len(), 40, "the events added since, each once");
    assert!(
        first
            .iter()
            .all(|l| !second_ids.contains(l["identifier"].as_str().unwrap_or("")))
    );
    assert!(export().await.expect("export").is_empty(), "nothing new");
    // A second checkpoint never moves back: a stale id leaves it where it is.
    let checkpoint: String = redis::cmd("GET")
        .arg(EXPORTED_UNTIL)
        .query(&mut redis.connection())
        .expect("checkpoint");
    let mut conn =
        redis::aio::ConnectionManager::new(redis::Client::open(redis.url()).expect("client"))
            .await
            .expect("connection");
    let kept = mcp_edge_backend::metering::usage_stream::advance_checkpoint(&mut conn, "1-0")
        .await
        .expect("advance");
    assert_eq!(kept, checkpoint);
    usage(&redis, &["trim", "--older-than", "0s"])
        .await
        .expect("trim");
    assert_eq!(stream_len(&redis), 0, "all exported now");
    // A report and an export over an empty stream.
    assert!(export().await.expect("export").is_empty());
    let table = usage(&redis, &["report"]).await.expect("report");
    assert!(table.ends_with("total billable calls: 0\n"), "{table}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Stripe drops a repeated identifier only within 24 hours: an event written out before is
/// exported again only with `--again`; the checkpoint and that record move only once the file is
/// complete and in place; an existing file is never overwritten.
#[tokio::test]
async fn a_re_export_needs_again_and_the_checkpoint_waits_for_the_file() {
    let redis = RedisServer::start();
    let dir = temp_dir("usage-again");
    let customers = dir.join("customers.json");
    std::fs::write(&customers, r#"{"acme": "cus_A"}"#).expect("write");
    let customers = customers.to_string_lossy().into_owned();
    add_events(&redis, "acme", "create_task", 27, 0, 30);
    let checkpoint = || -> Option<String> {
        redis::cmd("GET")
            .arg(EXPORTED_UNTIL)
            .query(&mut redis.connection())
            .expect("checkpoint")
    };

    // The file cannot be written (no such directory): nothing counts as exported.
    let nowhere = dir.join("no-such-dir").join("batch.jsonl");
    let failed = export_to(&redis, &customers, &nowhere, &["--incremental"]).await;
    assert!(failed.is_err(), "{failed:?}");
    assert_eq!(checkpoint(), None, "the checkpoint waits for the file");

    let first = dir.join("first.jsonl");
    let lines = json_lines(
        &export_to(&redis, &customers, &first, &["--incremental"])
            .await
            .expect("export"),
    );
    assert_eq!(lines.len(), 30);
    assert!(checkpoint().is_some());
    assert!(!dir.join("first.jsonl.partial").exists());

    // The same events again (a full export, a day later say): refused, no file written.
    let second = dir.join("second.jsonl");
    let refused = export_to(&redis, &customers, &second, &[])
        .await
        .expect_err("exported before");
    let message = format!("{refused:#}");
    assert!(
        message.contains("30 of these events were exported before") && message.contains("--again"),
        "{message}"
    );
    assert!(!second.exists());
    // Asked for: exported again, as form bodies for curl this time.
    let forms = export_to(
        &redis,
        &customers,
        &second,
        &["--again", "--format", "form"],
    )
    .await
    .expect("export --again");
    assert_eq!(forms.lines().count(), 30);
    assert!(
        forms
            .lines()
            .all(|l| l
                .starts_with("event_name=mcp_tool_call&payload%5Bstripe_customer_id%5D=cus_A&")),
        "{forms}"
    );
    // A file already there is never overwritten.
    let exists = export_to(&redis, &customers, &first, &["--again"])
        .await
        .expect_err("exists");
    assert!(format!("{exists:#}").contains("exists"), "{exists:#}");
    assert_eq!(
        json_lines(&std::fs::read_to_string(&first).expect("read")).len(),
        30
    );
    let _ = std::fs::remove_dir_all(&dir);
}
