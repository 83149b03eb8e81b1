//! Reads of the Redis store: one record, a project the caller may see, and the chunked walk over
//! an id list (a project's tasks) or the sorted project order that every listing uses.

use super::{RedisStore, backend, decode};
use crate::store::keys::TenantKeys;
use crate::store::paging::Pager;
use crate::store::validation::plausible_project_id;
use crate::store::{Cursor, MAX_PAGE, Project, StoreError, Task};
use crate::tenant::TenantContext;

/// How many ids one listing round trip reads.
const SCAN_CHUNK: usize = 100;

/// Where a walk takes its ids from, and what a position in it is.
#[derive(Debug, Clone, Copy)]
pub(super) enum Ids<'a> {
    /// A Redis list: positions are indexes.
    List(&'a str),
    /// A sorted set scored by sequence numbers: positions are scores (gaps allowed).
    Sorted(&'a str),
}

impl Ids<'_> {
    /// Up to `count` `(position, id)` pairs from position `start` on.
    async fn chunk(
        self,
        conn: &mut redis::aio::ConnectionManager,
        start: u64,
        count: usize,
    ) -> Result<Vec<(u64, String)>, StoreError> {
        match self {
            Ids::List(key) => {
                // LRANGE takes signed 64-bit indexes; a position past that is past the end.
                let Ok(first) = i64::try_from(start) else {
                    return Ok(Vec::new());
                };
                let ids: Vec<String> = redis::cmd("LRANGE")
                    .arg(key)
                    .arg(first)
                    .arg(first.saturating_add(count as i64 - 1))
                    .query_async(conn)
                    .await
                    .map_err(backend)?;
                Ok((start..).zip(ids).collect())
            }
            Ids::Sorted(key) => {
                let pairs: Vec<(String, f64)> = redis::cmd("ZRANGE")
                    .arg(key)
                    .arg(start)
                    .arg("+inf")
                    .arg("BYSCORE")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(count)
                    .arg("WITHSCORES")
                    .query_async(conn)
                    .await
                    .map_err(backend)?;
                // Scores are sequence numbers (integers well below 2^53), so the cast is exact.
                Ok(pairs
                    .into_iter()
                    .map(|(id, score)| (score as u64, id))
                    .collect())
            }
        }
    }
}

impl RedisStore {
    pub(super) async fn hget(&self, hash: &str, field: &str) -> Result<Option<String>, StoreError> {
        redis::cmd("HGET")
            .arg(hash)
            .arg(field)
            .query_async(&mut self.pool.get())
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

    /// Walks `ids` from `cursor`, reading records from `hash` a chunk at a time and keeping what
    /// `pick` returns; ids without a record are skipped.
    pub(super) async fn scan<T>(
        &self,
        ids: Ids<'_>,
        hash: &str,
        cursor: Option<&Cursor>,
        limit: usize,
        mut pick: impl FnMut(&str) -> Result<Option<T>, StoreError> + Send,
    ) -> Result<(Vec<T>, Option<Cursor>), StoreError> {
        let mut conn = self.pool.get();
        let mut pager = Pager::new(limit);
        let mut position = cursor.map_or(0, |c| c.offset);
        let chunk = SCAN_CHUNK.max(limit + 1);
        loop {
            let found = ids.chunk(&mut conn, position, chunk).await?;
            let Some(&(last, _)) = found.last() else {
                break;
            };
            let names: Vec<&str> = found.iter().map(|(_, id)| id.as_str()).collect();
            let records: Vec<Option<String>> = redis::cmd("HMGET")
                .arg(hash)
                .arg(&names)
                .query_async(&mut conn)
                .await
                .map_err(backend)?;
            for ((at, _), record) in found.iter().zip(&records) {
                let item = match record {
                    Some(json) => pick(json)?,
                    None => None,
                };
                if !pager.offer(*at, item) {
                    return Ok(pager.finish());
                }
            }
            if found.len() < chunk {
                break;
            }
            position = last.saturating_add(1);
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
                    Ids::List(&keys.project_tasks(project_id)),
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
