//! Rereads the limits file when it changes (polled: its content is compared every interval, which
//! also catches editors that replace the file and changes within one mtime tick). A valid file is
//! put in force at once; a bad one is logged with the field at fault and the limits in force stay.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::in_force::InForce;
use crate::limits_file;
use crate::metrics::Metrics;

/// Polls `path` every `interval` until the task is dropped; `loaded` is the text in force.
pub async fn watch(
    path: PathBuf,
    interval: Duration,
    mut loaded: String,
    in_force: Arc<InForce>,
    metrics: Arc<Metrics>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let text = match tokio::fs::read_to_string(&path).await {
            Ok(text) => text,
            Err(e) => {
                // Mid-replacement or removed: keep the limits and try again next tick.
                tracing::debug!(path = %path.display(), error = %e, "limits file not readable");
                continue;
            }
        };
        if text == loaded {
            continue;
        }
        match limits_file::parse(&text) {
            Ok(config) => {
                in_force.replace(config);
                metrics.reload(true);
                tracing::info!(path = %path.display(), "limits file changed: new limits in force");
            }
            Err(e) => {
                metrics.reload(false);
                tracing::error!(path = %path.display(), error = %e, "limits file changed but refused: the previous limits stay in force");
            }
        }
        loaded = text;
    }
}
