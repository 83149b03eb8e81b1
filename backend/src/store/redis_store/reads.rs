//! Reads of the Redis store: one record, a project the caller may see, and the chunked walk over
//! an id list that every listing (and analytics) uses.

use super::{RedisStore, backend, decode};
use crate::store::keys::TenantKeys;
use crate::store::paging::Pager;
use crate::store::validation::plausible_project_id;
use crate::store::{Cursor, MAX_PAGE, Project, StoreError, Task};
use crate::tenant::TenantContext;

/// How many ids one listing round trip reads.
const SCAN_CHUNK: usize = 100;

impl RedisStore {
    pub(super) async fn hget(&self, hash: &str, field: &str) -> Result<Option<String>, StoreError> {
        redis::cmd("HGET")
            .arg(hash)
            .arg(field)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(backend)
    }

    /// The project (and its JSON as stored, for compare-and-set) if `tenant` may see it.
    pub(super) async fn visible_project(
        &self,
        tenant: &TenantContext,
        keys: &TenantKeys,
        id: &str,
    ) -> Result<(String, Project), StoreError> {
        let not_found = || StoreError::ProjectNotFound(id.to_owned());
        if !plausible_project_id(id) {
            return Err(not_found());
        }
        let json = self
            .hget(&keys.project_records(), id)
            .await?
            .ok_or_else(not_found)?;
        let project: Project = decode(&json)?;
        if project.visible_to(tenant) {
            Ok((json, project))
        } else {
            Err(not_found())
        }
    }

    /// Walks the id list `list` from `cursor`, reading records from `hash` a chunk at a time and
    /// keeping what `pick` returns; ids without a record (tombstones) are skipped.
    pub(super) async fn scan<T>(
        &self,
        list: &str,
        hash: &str,
        cursor: Option<&Cursor>,
        limit: usize,
        mut pick: impl FnMut(&str) -> Result<Option<T>, StoreError> + Send,
    ) -> Result<(Vec<T>, Option<Cursor>), StoreError> {
        let mut conn = self.conn.clone();
        let mut pager = Pager::new(limit);
        let mut position = cursor.map_or(0, |c| c.offset);
        let chunk = SCAN_CHUNK.max(limit + 1);
        // LRANGE takes signed 64-bit indexes; a position past that is past the end.
        while let Ok(start) = i64::try_from(position) {
            let ids: Vec<String> = redis::cmd("LRANGE")
                .arg(list)
                .arg(start)
                .arg(start.saturating_add(chunk as i64 - 1))
                .query_async(&mut conn)
                .await
                .map_err(backend)?;
            if ids.is_empty() {
                break;
            }
            let records: Vec<Option<String>> = redis::cmd("HMGET")
                .arg(hash)
                .arg(&ids)
                .query_async(&mut conn)
                .await
                .map_err(backend)?;
            for (i, record) in records.iter().enumerate() {
                let item = match record {
                    Some(json) => pick(json)?,
                    None => None,
                };
                if !pager.offer(position.saturating_add(i as u64), item) {
                    return Ok(pager.finish());
                }
            }
            if ids.len() < chunk {
                break;
            }
            position = position.saturating_add(ids.len() as u64);
        }
        Ok(pager.finish())
    }

    /// Every task of `project_id`, in creation order.
    pub(super) async fn project_task_list(
        &self,
        keys: &TenantKeys,
        project_id: &str,
    ) -> Result<Vec<Task>, StoreError> {
        let mut tasks = Vec::new();
        let mut cursor = None;
        loop {
            let (page, next) = self
                .scan(
                    &keys.project_tasks(project_id),
                    &keys.task_records(),
                    cursor.as_ref(),
                    MAX_PAGE,
                    |json| decode(json).map(Some),
                )
                .await?;
            tasks.extend(page);
            match next {
                Some(c) => cursor = Some(c),
                None => return Ok(tasks),
            }
        }
    }
}
