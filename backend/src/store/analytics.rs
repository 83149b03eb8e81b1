//! Task counts for `get_analytics`, computed from a snapshot of tasks (pure, so both stores share
//! it): per status, per priority, overdue, per assignee.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::model::{Priority, Task, TaskStatus};

/// Counts per task status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StatusCounts {
    pub todo: u64,
    pub in_progress: u64,
    pub done: u64,
}

/// Counts per task priority.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PriorityCounts {
    pub low: u64,
    pub medium: u64,
    pub high: u64,
    pub urgent: u64,
}

/// Counts of one assignee's tasks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AssigneeCounts {
    /// All tasks assigned to this person.
    pub total: u64,
    /// Tasks not done yet.
    pub open: u64,
    /// Open tasks whose due date is before `asOf`.
    pub overdue: u64,
}

/// The counts `get_analytics` returns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskCounts {
    /// How many projects the counts cover.
    pub project_count: u64,
    pub task_count: u64,
    pub by_status: StatusCounts,
    pub by_priority: PriorityCounts,
    /// Tasks not done whose due date is before `asOf`.
    pub overdue: u64,
    /// Assignee email → counts.
    pub by_assignee: BTreeMap<String, AssigneeCounts>,
    /// Tasks with no assignee.
    pub unassigned: u64,
    /// The day (UTC, `YYYY-MM-DD`) "overdue" was judged against.
    pub as_of: String,
}

fn is_overdue(task: &Task, today: NaiveDate) -> bool {
    task.status != TaskStatus::Done
        && task
            .due_date
            .as_deref()
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
            .is_some_and(|due| due < today)
}

/// Counts `tasks` (of `project_count` projects) as of `today`.
pub fn count_tasks(project_count: u64, tasks: &[Task], today: NaiveDate) -> TaskCounts {
    let mut counts = TaskCounts {
        project_count,
        as_of: today.format("%Y-%m-%d").to_string(),
        ..TaskCounts::default()
    };
    for task in tasks {
        counts.task_count += 1;
        match task.status {
            TaskStatus::Todo => counts.by_status.todo += 1,
            TaskStatus::InProgress => counts.by_status.in_progress += 1,
            TaskStatus::Done => counts.by_status.done += 1,
        }
        match task.priority {
            Priority::Low => counts.by_priority.low += 1,
            Priority::Medium => counts.by_priority.medium += 1,
            Priority::High => counts.by_priority.high += 1,
            Priority::Urgent => counts.by_priority.urgent += 1,
        }
        let overdue = is_overdue(task, today);
        counts.overdue += u64::from(overdue);
        match &task.assignee_email {
            Some(email) => {
                let a = counts.by_assignee.entry(email.clone()).or_default();
                a.total += 1;
                a.open += u64::from(task.status != TaskStatus::Done);
                a.overdue += u64::from(overdue);
            }
            None => counts.unassigned += 1,
        }
    }
    counts
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A task with the fields analytics reads; the counters' tests build theirs with it too.
    pub(in crate::store) fn task(
        status: TaskStatus,
        priority: Priority,
        who: Option<&str>,
        due: Option<&str>,
    ) -> Task {
        Task {
            id: "tsk_x".into(),
            project_id: "prj_x".into(),
            title: "t".into(),
            description: None,
            status,
            priority,
            assignee_email: who.map(str::to_owned),
            due_date: due.map(str::to_owned),
            created_at: String::new(),
            updated_at: String::new(),
            created_by: String::new(),
        }
    }

    #[test]
    fn counts() {
        let today = NaiveDate::from_ymd_opt(2025, 6, 15).unwrap();
        let tasks = [
            task(
                TaskStatus::Todo,
                Priority::High,
                Some("a@x.io"),
                Some("2025-06-14"),
            ),
            task(
                TaskStatus::Done,
                Priority::High,
                Some("a@x.io"),
                Some("2025-01-01"),
            ),
            task(
                TaskStatus::InProgress,
                Priority::Urgent,
                None,
                Some("2025-06-15"),
            ),
            task(TaskStatus::Todo, Priority::Low, Some("b@x.io"), None),
        ];
        let c = count_tasks(2, &tasks, today);
        assert_eq!(c.project_count, 2);
        assert_eq!(c.task_count, 4);
        assert_eq!(
            c.by_status,
            StatusCounts {
                todo: 2,
                in_progress: 1,
                done: 1
            }
        );
        assert_eq!(
            c.by_priority,
            PriorityCounts {
                low: 1,
                medium: 0,
                high: 2,
                urgent: 1
            }
        );
        assert_eq!(c.overdue, 1);
        assert_eq!(c.unassigned, 1);
        assert_eq!(
            c.by_assignee["a@x.io"],
            AssigneeCounts {
                total: 2,
                open: 1,
                overdue: 1
            }
        );
        assert_eq!(c.by_assignee["b@x.io"].open, 1);
        assert_eq!(c.as_of, "2025-06-15");
    }
}
