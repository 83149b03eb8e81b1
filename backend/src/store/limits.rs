//! The caps the stores enforce atomically (inside the write, so replicas racing cannot pass them):
//! projects per tenant and tasks per project. Set by `--max-projects-per-tenant` and
//! `--max-tasks-per-project`.

/// Default cap on a tenant's projects (deleted ones do not count).
pub const DEFAULT_PROJECTS_PER_TENANT: u64 = 1_000;
/// Default cap on a project's tasks.
pub const DEFAULT_TASKS_PER_PROJECT: u64 = 10_000;

/// How much one tenant may store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreLimits {
    pub projects_per_tenant: u64,
    pub tasks_per_project: u64,
}

impl Default for StoreLimits {
    fn default() -> Self {
        Self {
            projects_per_tenant: DEFAULT_PROJECTS_PER_TENANT,
            tasks_per_project: DEFAULT_TASKS_PER_PROJECT,
        }
    }
}

/// What the cap error calls each cap.
pub const PROJECTS_PER_TENANT: &str = "projects per organisation";
pub const TASKS_PER_PROJECT: &str = "tasks per project";
