//! Input checks and record building shared by both stores: names, titles, emails, dates, ids, and
//! applying a [`TaskPatch`]. A failed check is [`StoreError::InvalidInput`] with a message that says
//! what is expected.

use chrono::NaiveDate;

use super::model::{NewProject, NewTask, Project, Task, TaskPatch};
use super::{MAX_PAGE, StoreError};
use crate::tenant::{DataScope, TenantContext};

/// Longest project name accepted (characters).
pub const MAX_NAME_CHARS: usize = 200;
/// Longest project description accepted (characters).
pub const MAX_DESCRIPTION_CHARS: usize = 2000;
/// Longest task title accepted (characters).
pub const MAX_TITLE_CHARS: usize = 200;
/// Longest task description accepted (characters).
pub const MAX_TASK_DESCRIPTION_CHARS: usize = 5000;
/// Longest email address accepted (bytes, RFC 5321).
pub const MAX_EMAIL_BYTES: usize = 254;
/// JSON Schema pattern of a due date.
pub const DATE_PATTERN: &str = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$";

fn invalid(message: impl Into<String>) -> StoreError {
    StoreError::InvalidInput(message.into())
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A trimmed one-line text of 1..=`max` characters.
fn one_line(field: &str, value: &str, max: usize) -> Result<String, StoreError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(invalid(format!("{field} must not be empty")));
    }
    if value.chars().count() > max {
        return Err(invalid(format!("{field} is longer than {max} characters")));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(format!(
            "{field} must not contain line breaks or control characters"
        )));
    }
    Ok(value.to_owned())
}

/// A trimmed optional text of at most `max` characters; empty means none.
fn optional_text(
    field: &str,
    value: Option<String>,
    max: usize,
) -> Result<Option<String>, StoreError> {
    let value = value.map(|d| d.trim().to_owned()).filter(|d| !d.is_empty());
    if let Some(d) = &value
        && d.chars().count() > max
    {
        return Err(invalid(format!("{field} is longer than {max} characters")));
    }
    Ok(value)
}

/// An email address, lower-cased: `local@domain.tld`, no spaces, at most 254 bytes.
pub fn normalise_email(value: &str) -> Result<String, StoreError> {
    let value = value.trim().to_ascii_lowercase();
    let bad = || {
        invalid(format!(
            "assignee_email {value:?} is not an email address; pass one like alice@example.com"
        ))
    };
    if value.len() > MAX_EMAIL_BYTES {
        return Err(bad());
    }
    let (local, domain) = value.split_once('@').ok_or_else(bad)?;
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.".contains(&b));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if local_ok && domain_ok {
        Ok(value)
    } else {
        Err(bad())
    }
}

/// A calendar date written exactly `YYYY-MM-DD`.
pub fn parse_due_date(value: &str) -> Result<NaiveDate, StoreError> {
    let bad = || {
        invalid(format!(
            "due_date {value:?} is not a valid date; use the ISO 8601 format YYYY-MM-DD, e.g. 2025-03-31"
        ))
    };
    let shape_ok = value.len() == 10
        && value.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    if !shape_ok {
        return Err(bad());
    }
    NaiveDate::parse_from_str(value, "%Y-%m-%d").map_err(|_| bad())
}

/// Checks the input and builds the project record both stores save. Refuses a token whose data
/// scope is not understood (it could never see the project it made).
pub(crate) fn new_project_record(
    tenant: &TenantContext,
    new: NewProject,
) -> Result<Project, StoreError> {
    if tenant.data_scope() == DataScope::Unsupported {
        return Err(StoreError::UnsupportedDataScope(tenant.data_scope.clone()));
    }
    let name = one_line("name", &new.name, MAX_NAME_CHARS)?;
    let description = optional_text("description", new.description, MAX_DESCRIPTION_CHARS)?;
    Ok(Project {
        id: format!("prj_{}", uuid::Uuid::new_v4().simple()),
        name,
        description,
        team: tenant.team().map(str::to_owned),
        archived: false,
        created_at: now(),
        created_by: tenant.user_id.clone(),
    })
}

/// Checks the input and builds a task record of `project` (which the caller checked is visible
/// and not archived).
pub(crate) fn new_task_record(
    tenant: &TenantContext,
    project: &Project,
    new: NewTask,
) -> Result<Task, StoreError> {
    let title = one_line("title", &new.title, MAX_TITLE_CHARS)?;
    let description = optional_text("description", new.description, MAX_TASK_DESCRIPTION_CHARS)?;
    let assignee_email = new
        .assignee_email
        .as_deref()
        .map(normalise_email)
        .transpose()?;
    if let Some(d) = &new.due_date {
        parse_due_date(d)?;
    }
    let created_at = now();
    Ok(Task {
        id: format!("tsk_{}", uuid::Uuid::new_v4().simple()),
        project_id: project.id.clone(),
        title,
        description,
        status: Default::default(),
        priority: new.priority,
        assignee_email,
        due_date: new.due_date,
        updated_at: created_at.clone(),
        created_at,
        created_by: tenant.user_id.clone(),
    })
}

impl TaskPatch {
    /// Checks and normalises every field given; refuses a patch that changes nothing.
    pub fn normalised(self) -> Result<Self, StoreError> {
        if self == Self::default() {
            return Err(invalid(
                "nothing to change: pass at least one of title, description, status, priority, due_date",
            ));
        }
        let title = self
            .title
            .map(|t| one_line("title", &t, MAX_TITLE_CHARS))
            .transpose()?;
        let description = match self.description {
            Some(d) => Some(
                optional_text("description", Some(d), MAX_TASK_DESCRIPTION_CHARS)?
                    .unwrap_or_default(),
            ),
            None => None,
        };
        if let Some(d) = &self.due_date {
            parse_due_date(d)?;
        }
        let assignee_email = self
            .assignee_email
            .as_deref()
            .map(normalise_email)
            .transpose()?;
        Ok(Self {
            title,
            description,
            assignee_email,
            ..self
        })
    }

    /// Applies a [`normalised`](Self::normalised) patch; bumps `updated_at` only when something
    /// changed, so repeating a call changes nothing (idempotent). Returns whether it changed.
    pub fn apply_to(&self, task: &mut Task) -> bool {
        let before = task.clone();
        if let Some(t) = &self.title {
            task.title.clone_from(t);
        }
        if let Some(d) = &self.description {
            task.description = (!d.is_empty()).then(|| d.clone());
        }
        if let Some(s) = self.status {
            task.status = s;
        }
        if let Some(p) = self.priority {
            task.priority = p;
        }
        if let Some(d) = &self.due_date {
            task.due_date = Some(d.clone());
        }
        if let Some(a) = &self.assignee_email {
            task.assignee_email = Some(a.clone());
        }
        let changed = *task != before;
        if changed {
            task.updated_at = now();
        }
        changed
    }
}

fn plausible_id(prefix: &str, id: &str) -> bool {
    id.len() == prefix.len() + 32
        && id.starts_with(prefix)
        && id[prefix.len()..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// Whether `id` could be a project id at all (saves a lookup for garbage; ids go into keys).
pub(crate) fn plausible_project_id(id: &str) -> bool {
    plausible_id("prj_", id)
}

/// Whether `id` could be a task id at all.
pub(crate) fn plausible_task_id(id: &str) -> bool {
    plausible_id("tsk_", id)
}

/// Clamps nothing: a limit outside 1..=MAX_PAGE is the caller's error.
pub(crate) fn check_limit(limit: usize) -> Result<(), StoreError> {
    if (1..=MAX_PAGE).contains(&limit) {
        Ok(())
    } else {
        Err(invalid(format!("limit must be between 1 and {MAX_PAGE}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::model::{Priority, TaskStatus};
    use crate::tenant::test_tenant;

    fn project(name: &str) -> NewProject {
        NewProject {
            name: name.into(),
            description: None,
        }
    }

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
        assert!(!p.archived);
        assert_eq!(p.created_by, "user-of-acme");
        assert!(plausible_project_id(&p.id), "{}", p.id);
        assert!(chrono::DateTime::parse_from_rfc3339(&p.created_at).is_ok());
    }

    #[test]
    fn unsupported_data_scope_cannot_create() {
        let mut t = test_tenant("acme");
        t.identity.data_scope = "org:acme".into();
        assert!(matches!(
            new_project_record(&t, project("x")),
            Err(StoreError::UnsupportedDataScope(_))
        ));
        t.identity.data_scope = String::new();
        assert_eq!(new_project_record(&t, project("x")).unwrap().team, None);
    }

    #[test]
    fn names_are_checked() {
        let t = test_tenant("acme");
        let long = "n".repeat(MAX_NAME_CHARS + 1);
        for bad in ["", "   ", long.as_str(), "a\nb"] {
            let r = new_project_record(&t, project(bad));
            assert!(matches!(r, Err(StoreError::InvalidInput(_))), "{bad:?}");
        }
        assert!(new_project_record(&t, project(&"é".repeat(MAX_NAME_CHARS))).is_ok());
    }

    #[test]
    fn ids_are_checked() {
        assert!(!plausible_project_id("prj_"));
        assert!(!plausible_project_id("../../etc"));
        assert!(!plausible_project_id(
            "prj_zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"
        ));
        assert!(plausible_project_id("prj_0123456789abcdef0123456789abcdef"));
        assert!(!plausible_project_id(
            "tsk_0123456789abcdef0123456789abcdef"
        ));
        assert!(plausible_task_id("tsk_0123456789abcdef0123456789abcdef"));
        assert!(!plausible_task_id("tsk_0123456789abcdef0123456789abcdeé"));
    }

    #[test]
    fn emails_are_checked_and_lower_cased() {
        assert_eq!(
            normalise_email(" Alice.B+x@Example.COM ").unwrap(),
            "alice.b+x@example.com"
        );
        let long = format!("{}@example.com", "a".repeat(250));
        for bad in [
            "",
            "alice",
            "@example.com",
            "alice@",
            "alice@example",
            "alice@@example.com",
            "al ice@example.com",
            "alice@-x.com",
            "alice@exa_mple.com",
            "alice@example..com",
            long.as_str(),
        ] {
            assert!(normalise_email(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn due_dates_must_be_iso_calendar_dates() {
        assert!(parse_due_date("2025-02-28").is_ok());
        assert!(parse_due_date("2024-02-29").is_ok());
        for bad in [
            "2025-02-29",
            "2025-2-28",
            "28/02/2025",
            "2025-13-01",
            "2025-02-28T00:00:00Z",
            "tomorrow",
            "",
            "+2025-02-2",
        ] {
            let err = parse_due_date(bad).unwrap_err().to_string();
            assert!(err.contains("YYYY-MM-DD"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn tasks_are_checked() {
        let t = test_tenant("acme");
        let p = new_project_record(&t, project("Apollo")).unwrap();
        let ok = new_task_record(
            &t,
            &p,
            NewTask {
                project_id: p.id.clone(),
                title: " Launch ".into(),
                assignee_email: Some("Bob@Example.com".into()),
                due_date: Some("2030-01-31".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(ok.title, "Launch");
        assert_eq!(ok.status, TaskStatus::Todo);
        assert_eq!(ok.priority, Priority::Medium);
        assert_eq!(ok.assignee_email.as_deref(), Some("bob@example.com"));
        assert_eq!(ok.project_id, p.id);
        assert!(plausible_task_id(&ok.id));
        for bad in [
            NewTask {
                title: "t".repeat(MAX_TITLE_CHARS + 1),
                ..Default::default()
            },
            NewTask {
                title: "ok".into(),
                description: Some("d".repeat(MAX_TASK_DESCRIPTION_CHARS + 1)),
                ..Default::default()
            },
            NewTask {
                title: "ok".into(),
                due_date: Some("31.01.2030".into()),
                ..Default::default()
            },
            NewTask {
                title: "ok".into(),
                assignee_email: Some("bob".into()),
                ..Default::default()
            },
        ] {
            assert!(new_task_record(&t, &p, bad.clone()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn patches_are_idempotent() {
        let t = test_tenant("acme");
        let p = new_project_record(&t, project("Apollo")).unwrap();
        let mut task = new_task_record(
            &t,
            &p,
            NewTask {
                title: "Launch".into(),
                description: Some("old".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert!(TaskPatch::default().normalised().is_err());
        let patch = TaskPatch {
            status: Some(TaskStatus::Done),
            description: Some(String::new()),
            due_date: Some("2030-01-01".into()),
            ..Default::default()
        }
        .normalised()
        .unwrap();
        assert!(patch.apply_to(&mut task));
        assert_eq!(task.status, TaskStatus::Done);
        assert_eq!(task.description, None);
        let snapshot = task.clone();
        assert!(!patch.apply_to(&mut task));
        assert_eq!(task, snapshot);
    }
}
