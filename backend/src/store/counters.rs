//! The analytics counters both stores keep per project, changed on every task write, so that
//! `get_analytics` reads a few counters instead of every task.
//!
//! A project's counters are a map of field → count. Each task adds 1 to the fields of
//! [`task_fields`]; a write applies the [`delta`] between the task before and after. "Overdue"
//! depends on the day it is asked, so open tasks are counted per due date (and per due date and
//! assignee); [`counts_from`] sums the dates before today. Reading is O(distinct fields): statuses,
//! priorities, assignees and due dates in use, never the number of tasks.

use std::collections::BTreeMap;

use chrono::NaiveDate;

use super::analytics::TaskCounts;
use super::model::{Priority, Task, TaskStatus};

/// Field → count, as stored (a Redis hash, or a map in memory). Fields at 0 are dropped.
pub type Counters = BTreeMap<String, i64>;

const TASKS: &str = "tasks";
const UNASSIGNED: &str = "unassigned";

fn status_field(status: TaskStatus) -> &'static str {
    match status {
        TaskStatus::Todo => "status:todo",
        TaskStatus::InProgress => "status:in_progress",
        TaskStatus::Done => "status:done",
    }
}

fn priority_field(priority: Priority) -> &'static str {
    match priority {
        Priority::Low => "priority:low",
        Priority::Medium => "priority:medium",
        Priority::High => "priority:high",
        Priority::Urgent => "priority:urgent",
    }
}

/// The fields `task` counts 1 in.
pub fn task_fields(task: &Task) -> Vec<String> {
    let mut fields = vec![
        TASKS.to_owned(),
        status_field(task.status).to_owned(),
        priority_field(task.priority).to_owned(),
    ];
    let open = task.status != TaskStatus::Done;
    match &task.assignee_email {
        Some(email) => {
            fields.push(format!("assignee:{email}"));
            if open {
                fields.push(format!("open:{email}"));
            }
        }
        None => fields.push(UNASSIGNED.to_owned()),
    }
    if let Some(due) = task.due_date.as_deref().filter(|_| open) {
        fields.push(format!("due:{due}"));
        if let Some(email) = &task.assignee_email {
            fields.push(format!("due:{due}:{email}"));
        }
    }
    fields
}

/// What changes in the counters when `before` becomes `after` (`None`: absent), without fields
/// whose count stays the same.
pub fn delta(before: Option<&Task>, after: Option<&Task>) -> Vec<(String, i64)> {
    let mut changes: BTreeMap<String, i64> = BTreeMap::new();
    for field in before.map(task_fields).unwrap_or_default() {
        *changes.entry(field).or_default() -= 1;
    }
    for field in after.map(task_fields).unwrap_or_default() {
        *changes.entry(field).or_default() += 1;
    }
    changes.into_iter().filter(|(_, by)| *by != 0).collect()
}

/// Applies `changes` to `counters`, dropping fields that reach 0.
pub fn apply(counters: &mut Counters, changes: &[(String, i64)]) {
    for (field, by) in changes {
        let count = counters.entry(field.clone()).or_default();
        *count += by;
        if *count == 0 {
            counters.remove(field);
        }
    }
}

/// Adds `other` into `total` (summing projects).
pub fn add(total: &mut Counters, other: &Counters) {
    for (field, count) in other {
        *total.entry(field.clone()).or_default() += count;
    }
}

/// The `get_analytics` counts of `project_count` projects whose counters add up to `counters`, as
/// of `today`: the same as [`super::count_tasks`] over their tasks.
pub fn counts_from(project_count: u64, counters: &Counters, today: NaiveDate) -> TaskCounts {
    let mut counts = TaskCounts {
        project_count,
        as_of: today.format("%Y-%m-%d").to_string(),
        ..TaskCounts::default()
    };
    let overdue_day =
        |day: &str| NaiveDate::parse_from_str(day, "%Y-%m-%d").is_ok_and(|due| due < today);
    for (field, &count) in counters {
        let n = u64::try_from(count).unwrap_or(0);
        match field.as_str() {
            TASKS => counts.task_count = n,
            UNASSIGNED => counts.unassigned = n,
            "status:todo" => counts.by_status.todo = n,
            "status:in_progress" => counts.by_status.in_progress = n,
            "status:done" => counts.by_status.done = n,
            "priority:low" => counts.by_priority.low = n,
            "priority:medium" => counts.by_priority.medium = n,
            "priority:high" => counts.by_priority.high = n,
            "priority:urgent" => counts.by_priority.urgent = n,
            other => {
                if let Some(email) = other.strip_prefix("assignee:") {
                    counts
                        .by_assignee
                        .entry(email.to_owned())
                        .or_default()
                        .total = n;
                } else if let Some(email) = other.strip_prefix("open:") {
                    counts.by_assignee.entry(email.to_owned()).or_default().open = n;
                } else if let Some(rest) = other.strip_prefix("due:") {
                    // `due:YYYY-MM-DD` or `due:YYYY-MM-DD:email`.
                    let (day, email) = match rest.split_once(':') {
                        Some((day, email)) => (day, Some(email)),
                        None => (rest, None),
                    };
                    if overdue_day(day) {
                        match email {
                            Some(email) => {
                                counts
                                    .by_assignee
                                    .entry(email.to_owned())
                                    .or_default()
                                    .overdue += n
                            }
                            None => counts.overdue += n,
                        }
                    }
                }
            }
        }
    }
    counts.by_assignee.retain(|_, a| a.total > 0);
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::analytics::tests::task;
    use crate::store::count_tasks;

    #[test]
    fn counters_give_the_counts_of_the_tasks() {
        let today = NaiveDate::from_ymd_opt(2025, 6, 15).unwrap();
        let mut tasks = vec![
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
                Some("2025-06-01"),
            ),
            task(TaskStatus::Todo, Priority::Low, Some("b@x.io"), None),
            task(
                TaskStatus::Todo,
                Priority::Low,
                Some("b@x.io"),
                Some("2025-06-15"),
            ),
        ];
        let mut counters = Counters::new();
        for t in &tasks {
            apply(&mut counters, &delta(None, Some(t)));
        }
        assert_eq!(
            counts_from(1, &counters, today),
            count_tasks(1, &tasks, today)
        );

        // Close a's overdue task, reassign b's to a: the counters follow.
        let before = tasks[0].clone();
        tasks[0].status = TaskStatus::Done;
        apply(&mut counters, &delta(Some(&before), Some(&tasks[0])));
        let before = tasks[3].clone();
        tasks[3].assignee_email = Some("a@x.io".into());
        apply(&mut counters, &delta(Some(&before), Some(&tasks[3])));
        assert_eq!(
            counts_from(1, &counters, today),
            count_tasks(1, &tasks, today)
        );

        for t in &tasks {
            apply(&mut counters, &delta(Some(t), None));
        }
        assert!(counters.is_empty(), "{counters:?}");
    }

    #[test]
    fn an_unchanged_task_changes_nothing() {
        let t = task(
            TaskStatus::Todo,
            Priority::Low,
            Some("a@x.io"),
            Some("2025-01-01"),
        );
        assert!(delta(Some(&t), Some(&t)).is_empty());
    }
}
