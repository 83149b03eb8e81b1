//! Per-tenant project storage behind one trait, with an in-memory and a Redis implementation.
//!
//! Every operation takes the caller's [`TenantContext`] and builds its keys from
//! `TenantContext::tenant_id` alone (see [`keys`]); nothing a tool receives as input ever names a
//! tenant. Listing is in creation order with an opaque cursor (see [`cursor`]).

pub mod cursor;
pub mod keys;
pub mod memory;
pub mod redis;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::tenant::TenantContext;

pub use cursor::Cursor;
pub use memory::MemoryStore;
pub use redis::RedisStore;

/// Longest project name accepted (characters).
pub const MAX_NAME_CHARS: usize = 200;
/// Longest project description accepted (characters).
pub const MAX_DESCRIPTION_CHARS: usize = 2000;
/// Largest page `list` returns.
pub const MAX_PAGE: usize = 100;

/// A project as stored and as returned by the tools.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Project {
    /// Identifier to pass to `get_project`, e.g. `prj_0f6c…`.
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The team that owns the project, from the caller's `team:<name>` data scope when it was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// RFC 3339 timestamp (UTC).
    pub created_at: String,
    /// The user id of the creator.
    pub created_by: String,
}

/// What a caller supplies to create a project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProject {
    pub name: String,
    pub description: Option<String>,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectPage {
    pub projects: Vec<Project>,
    /// Present when more projects follow; pass it back to get the next page.
    pub next_cursor: Option<Cursor>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "invalid cursor: pass back the nextCursor of a previous page, or none for the first page"
    )]
    InvalidCursor,
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("storage backend error: {0}")]
    Backend(String),
}

/// Project storage, always scoped to one tenant.
#[async_trait]
pub trait ProjectStore: Send + Sync + 'static {
    /// Creates a project owned by `tenant`, created by its user, in its team (if any).
    async fn create(&self, tenant: &TenantContext, new: NewProject) -> Result<Project, StoreError>;
    /// The tenant's project with this id, or `None`.
    async fn get(&self, tenant: &TenantContext, id: &str) -> Result<Option<Project>, StoreError>;
    /// The tenant's projects in creation order, `limit` (1..=[`MAX_PAGE`]) at a time.
    async fn list(
        &self,
        tenant: &TenantContext,
        cursor: Option<&Cursor>,
        limit: usize,
    ) -> Result<ProjectPage, StoreError>;
    /// `"memory"` or `"redis"`, for logs.
    fn kind(&self) -> &'static str;
}

/// Checks the input and builds the project record both stores save.
pub(crate) fn new_project_record(
    tenant: &TenantContext,
    new: NewProject,
) -> Result<Project, StoreError> {
    let name = new.name.trim().to_owned();
    if name.is_empty() {
        return Err(StoreError::InvalidInput("name must not be empty".into()));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(StoreError::InvalidInput(format!(
            "name is longer than {MAX_NAME_CHARS} characters"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(StoreError::InvalidInput(
            "name must not contain control characters".into(),
        ));
    }
    let description = new
        .description
        .map(|d| d.trim().to_owned())
        .filter(|d| !d.is_empty());
    if let Some(d) = &description
        && d.chars().count() > MAX_DESCRIPTION_CHARS
    {
        return Err(StoreError::InvalidInput(format!(
            "description is longer than {MAX_DESCRIPTION_CHARS} characters"
        )));
    }
    Ok(Project {
        id: format!("prj_{}", uuid::Uuid::new_v4().simple()),
        name,
        description,
        team: tenant.team().map(str::to_owned),
        created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        created_by: tenant.user_id.clone(),
    })
}

/// Whether `id` could be a project id at all (saves a lookup for garbage).
pub(crate) fn plausible_project_id(id: &str) -> bool {
    id.len() == 36 && id.starts_with("prj_") && id[4..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// Clamps nothing: a limit outside 1..=MAX_PAGE is the caller's error.
pub(crate) fn check_limit(limit: usize) -> Result<(), StoreError> {
    if (1..=MAX_PAGE).contains(&limit) {
        Ok(())
    } else {
        Err(StoreError::InvalidInput(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenant::test_tenant;

    #[test]
    fn record_takes_team_and_creator_from_the_tenant() {
        let t = test_tenant("acme");
        let p = new_project_record(
            &t,
            NewProject {
                name: "  Apollo ".into(),
                description: Some(" ".into()),
            },
        )
        .unwrap();
        assert_eq!(p.name, "Apollo");
        assert_eq!(p.description, None);
        assert_eq!(p.team.as_deref(), Some("engineering"));
        assert_eq!(p.created_by, "user-of-acme");
        assert!(plausible_project_id(&p.id), "{}", p.id);
        assert!(chrono::DateTime::parse_from_rfc3339(&p.created_at).is_ok());
    }

    #[test]
    fn names_are_checked() {
        let t = test_tenant("acme");
        let long = "n".repeat(MAX_NAME_CHARS + 1);
        for bad in ["", "   ", long.as_str(), "a\nb"] {
            let r = new_project_record(
                &t,
                NewProject {
                    name: bad.into(),
                    description: None,
                },
            );
            assert!(matches!(r, Err(StoreError::InvalidInput(_))), "{bad:?}");
        }
        let ok = "é".repeat(MAX_NAME_CHARS);
        assert!(
            new_project_record(
                &t,
                NewProject {
                    name: ok,
                    description: None
                }
            )
            .is_ok()
        );
    }

    #[test]
    fn ids_are_checked() {
        assert!(!plausible_project_id("prj_"));
        assert!(!plausible_project_id("../../etc"));
        assert!(!plausible_project_id(
            "prj_zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"
        ));
        assert!(plausible_project_id("prj_0123456789abcdef0123456789abcdef"));
    }
}
