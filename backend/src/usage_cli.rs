//! `mcp-edge-backend usage …`: reports and billing export from the Redis usage stream.
//!
//! `usage report` prints billable calls per UTC day, tenant and tool; `usage export --stripe`
//! prints each usage event as a Stripe meter event (one JSON object per line, ready for
//! `POST /v1/billing/meter_events`), with the customer taken from a tenant → Stripe customer file.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context as _;
use chrono::NaiveDate;
use clap::{Args, Subcommand};

use crate::metering::USAGE_STREAM;
use crate::metering::UsageEvent;
use crate::metering::report::{aggregate, read_stream, render_table, select, stripe_events};

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
    /// Print the usage events as Stripe meter events, one JSON object per line.
    ///
    /// Each line is {"event_name", "payload": {"stripe_customer_id", "value": "1"}, "identifier":
    /// <event id>, "timestamp": <unix seconds>}, the body of a Stripe meter event. The identifier is
    /// the usage event's unique id; Stripe rejects an identifier it saw within the last 24 hours.
    Export(ExportArgs),
}

/// Where the events are and which of them to take.
#[derive(Debug, Clone, Args)]
pub struct StreamArgs {
    /// Redis URL of the usage stream (the backend's --metering-redis-url, or its --redis-url).
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: String,

    /// The usage stream's key.
    #[arg(long, default_value = USAGE_STREAM)]
    pub stream: String,

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
}

async fn events(args: &StreamArgs) -> anyhow::Result<Vec<UsageEvent>> {
    let client = redis::Client::open(args.redis_url.as_str()).context("parsing --redis-url")?;
    let mut conn = redis::aio::ConnectionManager::new(client)
        .await
        .context("connecting to Redis (--redis-url / REDIS_URL)")?;
    read_stream(&mut conn, &args.stream)
        .await
        .with_context(|| format!("reading the stream {}", args.stream))
}

/// Runs a usage subcommand, printing to `out`.
pub async fn run(command: UsageCommand, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    match command {
        UsageCommand::Report(args) => {
            let events = events(&args.stream).await?;
            let rows = aggregate(&select(&events, args.stream.day));
            if args.json {
                for row in rows {
                    writeln!(out, "{}", serde_json::to_string(&row)?)?;
                }
            } else {
                out.write_all(render_table(&rows).as_bytes())?;
            }
        }
        UsageCommand::Export(args) => {
            let text = std::fs::read_to_string(&args.customers)
                .with_context(|| format!("reading {}", args.customers.display()))?;
            let customers: BTreeMap<String, String> =
                serde_json::from_str(&text).with_context(|| {
                    format!(
                        "{}: expected a JSON object of tenant id → Stripe customer id",
                        args.customers.display()
                    )
                })?;
            let events = events(&args.stream).await?;
            let selected = select(&events, args.stream.day);
            let lines = stripe_events(&selected, &customers, &args.event_name).map_err(|t| {
                anyhow::anyhow!(
                    "no Stripe customer for tenant(s) {} in {}; nothing exported",
                    t.join(", "),
                    args.customers.display()
                )
            })?;
            for line in lines {
                writeln!(out, "{}", serde_json::to_string(&line)?)?;
            }
        }
    }
    out.flush()?;
    Ok(())
}
