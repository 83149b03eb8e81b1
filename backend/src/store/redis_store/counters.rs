//! Reading the analytics counters of the Redis store, and the one-time rebuild of a project's
//! counters kept by an earlier version that had none.
//!
//! Every project created by this version starts with a counters hash marked current (`v`), and
//! every task write changes it in the same script. A project without the mark is counted once by
//! walking its tasks (at most the tasks-per-project cap); the result is written to a side hash in
//! chunks of [`INSTALL_CHUNK`] fields (each a plain HSET, expiring if this process stops) and
//! renamed into place only if no task write happened meanwhile (the `writes` field every task
//! write bumps). After a few lost races the walk's result answers this call without being
//! installed.

use super::{RedisStore, backend, scripts};
use crate::store::StoreError;
use crate::store::counters::{self, Counters};
use crate::store::keys::TenantKeys;

/// How often a rebuild is tried before its result is used without being installed.
const REBUILD_ATTEMPTS: usize = 3;
/// How many fields one write of a rebuild sets.
const INSTALL_CHUNK: usize = 1000;
/// How long a side hash of a rebuild lives if it is never renamed into place.
const REBUILD_TTL_SECS: u64 = 300;
/// Fields of the counters hash that are bookkeeping, not counts.
const BOOKKEEPING: [&str; 2] = ["v", "writes"];

/// The counts of a stored counters hash (bookkeeping fields left out), and whether it is current.
fn parse(raw: Vec<(String, i64)>) -> (Counters, bool) {
    let current = raw.iter().any(|(field, _)| field == "v");
    let counts = raw
        .into_iter()
        .filter(|(field, _)| !BOOKKEEPING.contains(&field.as_str()))
        .collect();
    (counts, current)
}

impl RedisStore {
    /// The counters of each project of `project_ids` (one round trip per 100), rebuilding those
    /// that are not current.
    pub(super) async fn project_counters(
        &self,
        keys: &TenantKeys,
        project_ids: &[String],
    ) -> Result<Vec<Counters>, StoreError> {
        let mut all = Vec::with_capacity(project_ids.len());
        for chunk in project_ids.chunks(100) {
            let mut pipe = redis::pipe();
            for id in chunk {
                pipe.cmd("HGETALL").arg(keys.project_counters(id));
            }
            let raw: Vec<Vec<(String, i64)>> = pipe
                .query_async(&mut self.pool.get())
                .await
                .map_err(backend)?;
            for (id, hash) in chunk.iter().zip(raw) {
                let (counts, current) = parse(hash);
                all.push(if current {
                    counts
                } else {
                    self.rebuild_counters(keys, id).await?
                });
            }
        }
        Ok(all)
    }

    /// Counts a project's tasks and installs the result as its counters if nothing changed.
    async fn rebuild_counters(
        &self,
        keys: &TenantKeys,
        project_id: &str,
    ) -> Result<Counters, StoreError> {
        let hash = keys.project_counters(project_id);
        let mut counts = Counters::new();
        for _ in 0..REBUILD_ATTEMPTS {
            let writes: Option<String> = self.hget(&hash, "writes").await?;
            counts = Counters::new();
            for task in self.project_task_list(keys, project_id).await? {
                counters::apply(&mut counts, &counters::delta(None, Some(&task)));
            }
            let side =
                keys.counters_rebuild(project_id, &uuid::Uuid::new_v4().simple().to_string());
            let fields: Vec<(&String, &i64)> = counts.iter().collect();
            for chunk in fields.chunks(INSTALL_CHUNK) {
                redis::pipe()
                    .cmd("HSET")
                    .arg(&side)
                    .arg(chunk)
                    .ignore()
                    .cmd("EXPIRE")
                    .arg(&side)
                    .arg(REBUILD_TTL_SECS)
                    .ignore()
                    .query_async::<()>(&mut self.pool.get())
                    .await
                    .map_err(backend)?;
            }
            let installed: i64 = scripts::install_counters()
                .key(&hash)
                .key(&side)
                .arg(writes.as_deref().unwrap_or("0"))
                .arg(fields.len())
                .invoke_async(&mut self.pool.get())
                .await
                .map_err(backend)?;
            if installed == 1 {
                tracing::info!(project_id, "rebuilt the analytics counters of a project");
                return Ok(counts);
            }
        }
        Ok(counts)
    }
}
