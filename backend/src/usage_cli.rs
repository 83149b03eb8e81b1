//! `mcp-edge-backend usage …`: reports and billing export from the Redis usage stream.
//!
//! `usage report` prints billable calls per UTC day, tenant and tool; `usage export --stripe`
//! writes each usage event as a Stripe meter event to a file (one per line: a JSON object, or the
//! form body `POST /v1/billing/meter_events` takes as is), with the customer taken from a tenant →
//! Stripe customer file; with `--incremental` only what the last incremental export did not,
//! recording a checkpoint. The file is durable ([`crate::export_file`]) before the export records
//! what it wrote ([`crate::metering::export_record`]) and moves its checkpoint; an event written
//! out before is exported again only with `--again`.
//! `usage trim` removes entries older than a retention that the checkpoint covers. Both read the
//! stream in pages and print as they go ([`crate::metering::usage_stream`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use chrono::NaiveDate;
use clap::{Args, Subcommand};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::export_file::ExportFile;
use crate::metering::export_record;
use crate::metering::report::{Selection, Tally, render_table, stripe_event, unmapped};
use crate::metering::usage_stream::{self, Pages};
use crate::metering::{USAGE_STREAM, UsageEvent};

/// Subcommands of `mcp-edge-backend`; without one it serves.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Usage reports and billing export, read from the Redis usage stream.
    #[command(subcommand)]
    Usage(UsageCommand),
}

#[derive(Debug, Clone, Subcommand)]
pub enum UsageCommand {
    /// Print the number of billable calls per UTC day, tenant and tool.
    Report(ReportArgs),
    /// Write the usage events to a file as Stripe meter events, one per line.
    ///
    /// `--format json`: {"event_name", "payload": {"stripe_customer_id", "value": "1"},
    /// "identifier": <event id>, "timestamp": <unix seconds>}; `--format form`: the same as the
    /// form body of `POST /v1/billing/meter_events` (Stripe API version 2024-09-30.acacia), for
    /// `curl --data`. The identifier is the usage event's unique id; Stripe drops a repeated one only
    /// within 24 hours, so an event written out before is refused without `--again`.
    Export(ExportArgs),
    /// Remove stream entries older than a retention that an incremental export (`usage export
    /// --incremental`) has written out; entries not yet exported are never removed.
    ///
    /// Age is the entry's delivery time on Redis's clock (its stream id). Without an export
    /// checkpoint nothing is removed. Prints how many entries were removed.
    Trim(TrimArgs),
}

/// Where the usage stream is.
#[derive(Debug, Clone, Args)]
pub struct StreamSource {
    /// Redis URL of the usage stream (the backend's --metering-redis-url, or its --redis-url).
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: String,

    /// The usage stream's key.
    #[arg(long, default_value = USAGE_STREAM)]
    pub stream: String,
}

/// Where the events are and which of them to take.
#[derive(Debug, Clone, Args)]
pub struct StreamArgs {
    #[command(flatten)]
    pub source: StreamSource,

    /// Only the events of this UTC day (YYYY-MM-DD, by the event's timestamp); default: all.
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub day: Option<NaiveDate>,
}

#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub stream: StreamArgs,

    /// Print JSON lines ({"day", "tenant_id", "tool", "calls"}) instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub stream: StreamArgs,

    /// Export in Stripe meter event format (the only format so far; required).
    #[arg(long, required = true)]
    pub stripe: bool,

    /// JSON file mapping tenant ids to Stripe customer ids: {"<tenant_id>": "cus_…", …}. An
    /// event of a tenant missing from it fails the export before anything is printed.
    #[arg(long, value_name = "FILE")]
    pub customers: PathBuf,

    /// The Stripe meter's event name.
    #[arg(long, default_value = "mcp_tool_call")]
    pub event_name: String,

    /// Export only the entries after the export checkpoint, then move the checkpoint to the last
    /// entry exported once the file is complete, fsynced and in place (keep it until it is
    /// uploaded). `usage trim` removes only entries the checkpoint covers.
    #[arg(long, conflicts_with = "day")]
    pub incremental: bool,

    /// The file to write (never overwritten; written as `<FILE>.partial`, then renamed).
    #[arg(long, value_name = "FILE")]
    pub output: PathBuf,

    /// One line per event: `json`, or `form` (the body Stripe's v1 API takes, for curl).
    #[arg(long, value_enum, default_value_t = ExportFormat::Json)]
    pub format: ExportFormat,

    /// Export events an earlier export already wrote out (Stripe bills them again unless they were
    /// uploaded less than 24 hours ago).
    #[arg(long)]
    pub again: bool,
}

/// How `usage export` writes a meter event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    Json,
    Form,
}

#[derive(Debug, Clone, Args)]
pub struct TrimArgs {
    #[command(flatten)]
    pub source: StreamSource,

    /// Keep entries younger than this (e.g. `30d`, `12h`; `0s` removes everything exported).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub older_than: Duration,
}

/// An operator's command, not a request path: it waits as long as a busy Redis needs for a page
/// (the library's default answer timeout of a fraction of a second would fail a report over a
/// large stream on a loaded Redis), but never forever.
async fn connect(source: &StreamSource) -> anyhow::Result<ConnectionManager> {
    let client = redis::Client::open(source.redis_url.as_str()).context("parsing --redis-url")?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(10)))
        .set_response_timeout(Some(Duration::from_secs(60)));
    ConnectionManager::new_with_config(client, config)
        .await
        .context("connecting to Redis (--redis-url / REDIS_URL)")
}

fn reading(stream: &str) -> String {
    format!("reading the stream {stream}")
}

/// Runs a usage subcommand, printing to `out`.
pub async fn run(command: UsageCommand, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    match command {
        UsageCommand::Report(args) => report(&args, out).await?,
        UsageCommand::Export(args) => export(&args, out).await?,
        UsageCommand::Trim(args) => {
            let mut conn = connect(&args.source).await?;
            let trimmed = usage_stream::trim(&mut conn, &args.source.stream, args.older_than)
                .await
                .with_context(|| format!("trimming the stream {}", args.source.stream))?;
            match trimmed.below {
                Some(below) => writeln!(
                    out,
                    "removed {} entries exported and older than {} (ids before {below})",
                    trimmed.removed,
                    humantime::format_duration(args.older_than)
                )?,
                None => writeln!(out, "removed nothing: no export checkpoint yet")?,
            }
        }
    }
    out.flush()?;
    Ok(())
}

async fn report(args: &ReportArgs, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    let stream = &args.stream.source.stream;
    let mut conn = connect(&args.stream.source).await?;
    let end = usage_stream::last_id(&mut conn, stream)
        .await
        .with_context(|| reading(stream))?;
    let mut pages = Pages::between(&mut conn, stream, None, end);
    let (mut selection, mut tally) = (Selection::new(args.stream.day), Tally::default());
    while let Some(page) = pages.next_page().await.with_context(|| reading(stream))? {
        for (_, event) in page.iter().filter(|(_, e)| selection.keep(e)) {
            tally.add(event);
        }
    }
    let rows = tally.rows();
    if args.json {
        for row in rows {
            writeln!(out, "{}", serde_json::to_string(&row)?)?;
        }
    } else {
        out.write_all(render_table(&rows).as_bytes())?;
    }
    Ok(())
}

/// Three passes over the same entries: every tenant must have a customer, and no event may have
/// been exported before (unless `--again`), before a line is written; then the lines into the file,
/// made durable; then the record of what was written, and the checkpoint.
async fn export(args: &ExportArgs, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.customers)
        .with_context(|| format!("reading {}", args.customers.display()))?;
    let customers: BTreeMap<String, String> = serde_json::from_str(&text).with_context(|| {
        format!(
            "{}: expected a JSON object of tenant id → Stripe customer id",
            args.customers.display()
        )
    })?;
    let stream = &args.stream.source.stream;
    let mut conn = connect(&args.stream.source).await?;
    let after = if args.incremental {
        usage_stream::checkpoint(&mut conn)
            .await
            .context("reading the export checkpoint")?
    } else {
        None
    };
    let end = usage_stream::last_id(&mut conn, stream)
        .await
        .with_context(|| reading(stream))?;
    let range = (after.as_deref(), end.clone());

    // A second handle on the same connection asks about each page while the pages are read.
    let mut lookup = conn.clone();
    let mut missing = std::collections::BTreeSet::new();
    let (mut again, mut first_again) = (0usize, None::<String>);
    let mut pages = Pages::between(&mut conn, stream, range.0, range.1.clone());
    let mut selection = Selection::new(args.stream.day);
    while let Some(page) = pages.next_page().await.with_context(|| reading(stream))? {
        let kept: Vec<&UsageEvent> = page
            .iter()
            .map(|(_, e)| e)
            .filter(|e| selection.keep(e))
            .collect();
        missing.extend(unmapped(kept.iter().copied(), &customers));
        let before = export_record::exported_before(&mut lookup, &kept)
            .await
            .context("reading which events were exported before")?;
        again += before.len();
        first_again = first_again.or_else(|| before.into_iter().next());
    }
    if !missing.is_empty() {
        anyhow::bail!(
            "no Stripe customer for tenant(s) {} in {}; nothing exported",
            missing.into_iter().collect::<Vec<_>>().join(", "),
            args.customers.display()
        );
    }
    if let (Some(first), false) = (first_again, args.again) {
        anyhow::bail!(
            "{} of these events were exported before (the first: {}); Stripe bills them again \
unless they were uploaded less than 24 hours ago. Nothing exported; pass --again to export them \
anyway",
            again,
            first
        );
    }

    let mut file = ExportFile::create(&args.output)?;
    let mut pages = Pages::between(&mut conn, stream, range.0, range.1.clone());
    let mut selection = Selection::new(args.stream.day);
    let mut exported = 0u64;
    while let Some(page) = pages.next_page().await.with_context(|| reading(stream))? {
        for (_, event) in page.iter().filter(|(_, e)| selection.keep(e)) {
            if let Some(line) = stripe_event(event, &customers, &args.event_name) {
                match args.format {
                    ExportFormat::Json => file.line(&serde_json::to_string(&line)?)?,
                    ExportFormat::Form => file.line(&line.form())?,
                }
                exported += 1;
            }
        }
    }
    file.commit()?;

    // The file is in place: record what it holds, then move the checkpoint.
    let mut pages = Pages::between(&mut conn, stream, range.0, range.1.clone());
    let mut selection = Selection::new(args.stream.day);
    while let Some(page) = pages.next_page().await.with_context(|| reading(stream))? {
        let written: Vec<&UsageEvent> = page
            .iter()
            .map(|(_, e)| e)
            .filter(|e| selection.keep(e))
            .collect();
        export_record::record(&mut lookup, &written)
            .await
            .context("recording what was exported (the file is complete)")?;
    }
    if let (true, Some(end)) = (args.incremental, end) {
        let now = usage_stream::advance_checkpoint(&mut conn, &end)
            .await
            .context("recording the export checkpoint (the file is complete)")?;
        tracing::info!(exported, checkpoint = now, "usage exported");
    }
    writeln!(
        out,
        "exported {exported} events to {}",
        args.output.display()
    )?;
    Ok(())
}
