//! Reading the usage stream back: a report per day, tenant and tool, and an export as Stripe
//! meter events (one JSON object per line, the body of Stripe's `POST /v1/billing/meter_events`).
//! Both work page by page ([`super::usage_stream::Pages`]): a [`Selection`] and a [`Tally`] hold
//! event ids and counts, never the events.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use chrono::NaiveDate;
use serde::Serialize;

use super::day::day_of_millis;
use super::event::UsageEvent;

/// Which events count, page after page: billable ones of one UTC day (by event timestamp, or
/// every day), each event id once. It remembers the ids it kept (not the events).
#[derive(Debug, Default)]
pub struct Selection {
    day: Option<NaiveDate>,
    seen: HashSet<String>,
}

impl Selection {
    pub fn new(day: Option<NaiveDate>) -> Self {
        Self {
            day,
            seen: HashSet::new(),
        }
    }

    /// Whether `event` counts (false for an id seen before).
    pub fn keep(&mut self, event: &UsageEvent) -> bool {
        (self.day.is_none() || day_of_millis(event.timestamp_ms) == self.day)
            && event.billable
            && self.seen.insert(event.event_id.clone())
    }
}

/// The events of `day` (UTC, by event timestamp), or all; each event id once.
pub fn select(events: &[UsageEvent], day: Option<NaiveDate>) -> Vec<&UsageEvent> {
    let mut selection = Selection::new(day);
    events.iter().filter(|e| selection.keep(e)).collect()
}

/// Calls per (day, tenant, tool), counted page after page.
#[derive(Debug, Default)]
pub struct Tally(BTreeMap<(String, String, String), u64>);

impl Tally {
    pub fn add(&mut self, event: &UsageEvent) {
        let day =
            day_of_millis(event.timestamp_ms).map_or_else(|| "?".to_owned(), |d| d.to_string());
        *self
            .0
            .entry((day, event.tenant_id.clone(), event.tool.clone()))
            .or_default() += 1;
    }

    /// The rows, sorted.
    pub fn rows(self) -> Vec<ReportRow> {
        self.0
            .into_iter()
            .map(|((day, tenant_id, tool), calls)| ReportRow {
                day,
                tenant_id,
                tool,
                calls,
            })
            .collect()
    }
}

/// One row of the usage report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportRow {
    pub day: String,
    pub tenant_id: String,
    pub tool: String,
    pub calls: u64,
}

/// Calls per (day, tenant, tool), sorted.
pub fn aggregate(events: &[&UsageEvent]) -> Vec<ReportRow> {
    let mut tally = Tally::default();
    for e in events {
        tally.add(e);
    }
    tally.rows()
}

/// The report as an aligned text table with a total line.
pub fn render_table(rows: &[ReportRow]) -> String {
    let head = ["day", "tenant", "tool", "calls"];
    let cells: Vec<[String; 4]> = rows
        .iter()
        .map(|r| {
            [
                r.day.clone(),
                r.tenant_id.clone(),
                r.tool.clone(),
                r.calls.to_string(),
            ]
        })
        .collect();
    let mut widths = head.map(str::len);
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cols: [&str; 4]| {
        format!(
            "{:<w0$}  {:<w1$}  {:<w2$}  {:>w3$}\n",
            cols[0],
            cols[1],
            cols[2],
            cols[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3]
        )
    };
    let mut out = line(head);
    for row in &cells {
        out.push_str(&line([&row[0], &row[1], &row[2], &row[3]]));
    }
    let total: u64 = rows.iter().map(|r| r.calls).sum();
    out.push_str(&format!("total billable calls: {total}\n"));
    out
}

/// One Stripe meter event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StripeMeterEvent {
    pub event_name: String,
    pub payload: StripePayload,
    /// The usage event id: Stripe drops a second event with the same identifier.
    pub identifier: String,
    /// Unix seconds.
    pub timestamp: i64,
}

impl StripeMeterEvent {
    /// The event as the form body of `POST /v1/billing/meter_events`
    /// (`application/x-www-form-urlencoded`), ready for `curl --data`.
    pub fn form(&self) -> String {
        let timestamp = self.timestamp.to_string();
        [
            ("event_name", self.event_name.as_str()),
            (
                "payload[stripe_customer_id]",
                self.payload.stripe_customer_id.as_str(),
            ),
            ("payload[value]", self.payload.value.as_str()),
            ("identifier", self.identifier.as_str()),
            ("timestamp", timestamp.as_str()),
        ]
        .iter()
        .map(|(name, value)| format!("{}={}", form_encode(name), form_encode(value)))
        .collect::<Vec<_>>()
        .join("&")
    }
}

/// Percent-encodes everything but the unreserved characters (RFC 3986), as a form value may be.
fn form_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StripePayload {
    pub stripe_customer_id: String,
    pub value: String,
}

/// The tenants of `events` missing from `customers`, sorted.
pub fn unmapped<'e>(
    events: impl IntoIterator<Item = &'e UsageEvent>,
    customers: &BTreeMap<String, String>,
) -> BTreeSet<String> {
    events
        .into_iter()
        .filter(|e| !customers.contains_key(&e.tenant_id))
        .map(|e| e.tenant_id.clone())
        .collect()
}

/// One event as a Stripe meter event, if its tenant has a customer.
pub fn stripe_event(
    event: &UsageEvent,
    customers: &BTreeMap<String, String>,
    event_name: &str,
) -> Option<StripeMeterEvent> {
    customers
        .get(&event.tenant_id)
        .map(|customer| StripeMeterEvent {
            event_name: event_name.to_owned(),
            payload: StripePayload {
                stripe_customer_id: customer.clone(),
                value: "1".to_owned(),
            },
            identifier: event.event_id.clone(),
            timestamp: event.timestamp_ms.div_euclid(1000),
        })
}

/// The events as Stripe meter events; fails with the sorted tenant ids that have no customer.
pub fn stripe_events(
    events: &[&UsageEvent],
    customers: &BTreeMap<String, String>,
    event_name: &str,
) -> Result<Vec<StripeMeterEvent>, Vec<String>> {
    let missing = unmapped(events.iter().copied(), customers);
    if !missing.is_empty() {
        return Err(missing.into_iter().collect());
    }
    Ok(events
        .iter()
        .filter_map(|e| stripe_event(e, customers, event_name))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metering::day::rfc3339_millis;

    fn event(id: &str, tenant: &str, tool: &str, at: &str) -> UsageEvent {
        let t = chrono::DateTime::parse_from_rfc3339(at)
            .expect("time")
            .with_timezone(&chrono::Utc);
        UsageEvent {
            event_id: id.to_owned(),
            request_id: format!("req-{id}"),
            tenant_id: tenant.to_owned(),
            tool: tool.to_owned(),
            user_id: "alice".to_owned(),
            timestamp: rfc3339_millis(t),
            timestamp_ms: t.timestamp_millis(),
            billable: true,
        }
    }

    fn sample() -> Vec<UsageEvent> {
        vec![
            event("e1", "acme", "create_task", "2026-11-27T09:00:00.500Z"),
            event("e2", "acme", "create_task", "2026-11-27T23:59:59.999Z"),
            event("e3", "acme", "update_task", "2026-11-27T10:00:00Z"),
            event("e4", "globex", "create_task", "2026-11-27T11:00:00Z"),
            event("e5", "acme", "create_task", "2026-11-28T00:00:00Z"),
            // A duplicate id (should never be in the stream) counts once.
            event("e1", "acme", "create_task", "2026-11-27T09:00:00.500Z"),
        ]
    }

    #[test]
    fn report_aggregates_per_day_tenant_and_tool() {
        let events = sample();
        let day = NaiveDate::from_ymd_opt(2026, 11, 27);
        let rows = aggregate(&select(&events, day));
        let flat: Vec<(&str, &str, &str, u64)> = rows
            .iter()
            .map(|r| {
                (
                    r.day.as_str(),
                    r.tenant_id.as_str(),
                    r.tool.as_str(),
                    r.calls,
                )
            })
            .collect();
        assert_eq!(
            flat,
            [
                ("2026-11-27", "acme", "create_task", 2),
                ("2026-11-27", "acme", "update_task", 1),
                ("2026-11-27", "globex", "create_task", 1),
            ]
        );
        let all = aggregate(&select(&events, None));
        assert_eq!(all.len(), 4);
        assert_eq!(all[3].day, "2026-11-28");
        let table = render_table(&rows);
        assert_eq!(
            table,
            "day         tenant  tool         calls\n\
             2026-11-27  acme    create_task      2\n\
             2026-11-27  acme    update_task      1\n\
             2026-11-27  globex  create_task      1\n\
             total billable calls: 4\n"
        );
    }

    #[test]
    fn stripe_export_shape() {
        let events = sample();
        let day = NaiveDate::from_ymd_opt(2026, 11, 27);
        let selected = select(&events, day);
        let customers: BTreeMap<String, String> = [
            ("acme".to_owned(), "cus_ACME".to_owned()),
            ("globex".to_owned(), "cus_GLOBEX".to_owned()),
        ]
        .into();
        let out = stripe_events(&selected, &customers, "mcp_tool_call").expect("mapped");
        assert_eq!(out.len(), 4);
        assert_eq!(
            serde_json::to_value(&out[0]).expect("json"),
            serde_json::json!({
                "event_name": "mcp_tool_call",
                "payload": {"stripe_customer_id": "cus_ACME", "value": "1"},
                "identifier": "e1",
                "timestamp": 1_795_770_000
            })
        );
        // Seconds are truncated, not rounded.
        assert_eq!(out[1].timestamp, 1_795_823_999);
        let only_acme: BTreeMap<String, String> =
            [("acme".to_owned(), "cus_ACME".to_owned())].into();
        assert_eq!(
            stripe_events(&selected, &only_acme, "mcp_tool_call"),
            Err(vec!["globex".to_owned()])
        );
    }

    #[test]
    fn a_meter_event_as_a_form_body() {
        let line = StripeMeterEvent {
            event_name: "mcp_tool_call".into(),
            payload: StripePayload {
                stripe_customer_id: "cus_1".into(),
                value: "1".into(),
            },
            identifier: "req-1/a b&c".into(),
            timestamp: 1_700_000_000,
        };
        assert_eq!(
            line.form(),
            "event_name=mcp_tool_call&payload%5Bstripe_customer_id%5D=cus_1&payload%5Bvalue%5D=1\
&identifier=req-1%2Fa%20b%26c&timestamp=1700000000"
        );
    }
}
