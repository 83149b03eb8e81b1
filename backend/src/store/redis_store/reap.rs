//! Removing a deleted project's tasks in bounded chunks.
//!
//! `delete` detaches the project in one O(1) script (record, order, counters gone; its task list
//! renamed to a reaping list and the project put in the tenant's reaping set), so the project and
//! its tasks are unreachable from then on. The task records are then removed [`REAP_CHUNK`] at a
//! time, each chunk one short script, before `delete` answers. If the process stops half-way, the
//! next delete in the tenant finishes the leftover reaping lists too.

use super::deadline::Mark;
use super::{RedisStore, backend, scripts};
use crate::store::StoreError;
use crate::store::keys::TenantKeys;
use crate::store::validation::plausible_project_id;

/// How many task records one reaping script removes.
pub(super) const REAP_CHUNK: usize = 500;

impl RedisStore {
    /// Runs the detach script for project `id` as it was read (`json`): the number of its tasks
    /// handed to the reaper, -1 if the project changed meanwhile, or `None` if the reply was late
    /// but the project is gone.
    pub(super) async fn detach(
        &self,
        keys: &TenantKeys,
        id: &str,
        json: &str,
    ) -> Result<Option<i64>, StoreError> {
        let mut detach = scripts::detach_project().prepare_invoke();
        detach
            .key(keys.project_records())
            .key(keys.project_order())
            .key(keys.project_tasks(id))
            .key(keys.deleting_tasks(id))
            .key(keys.project_counters(id))
            .key(keys.projects_deleting())
            .arg(id)
            .arg(json);
        let records = keys.project_records();
        let mark = Mark {
            hash: &records,
            field: id,
            applied: &|now| now.is_none(),
        };
        self.write(&detach, mark).await
    }

    /// Reaps every deleted project of the tenant that still has task records; returns how many
    /// records it removed.
    pub(super) async fn reap(&self, keys: &TenantKeys) -> Result<u64, StoreError> {
        let pending: Vec<String> = redis::cmd("SMEMBERS")
            .arg(keys.projects_deleting())
            .query_async(&mut self.pool.get())
            .await
            .map_err(backend)?;
        let mut removed = 0;
        for project_id in pending.iter().filter(|id| plausible_project_id(id)) {
            loop {
                let n: u64 = scripts::reap_chunk()
                    .key(keys.deleting_tasks(project_id))
                    .key(keys.task_records())
                    .key(keys.projects_deleting())
                    .arg(project_id)
                    .arg(REAP_CHUNK)
                    .invoke_async(&mut self.pool.get())
                    .await
                    .map_err(backend)?;
                removed += n;
                if n < REAP_CHUNK as u64 {
                    break;
                }
            }
        }
        Ok(removed)
    }
}
