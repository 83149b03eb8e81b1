//! Behaviour every [`ProjectStore`] must show, run against the memory store and against Redis (the
//! one at `REDIS_URL`, or a throwaway server). Each check uses fresh random tenant ids.

use super::*;
use crate::tenant::{TenantContext, test_tenant};

fn unique(name: &str) -> String {
    format!("{name}-{}", uuid::Uuid::new_v4().simple())
}

fn with_scope(tenant: &TenantContext, data_scope: &str) -> TenantContext {
    let mut scoped = tenant.clone();
    scoped.identity.data_scope = data_scope.into();
    scoped
}

fn new(name: &str) -> NewProject {
    NewProject {
        name: name.into(),
        description: None,
    }
}

fn task(project: &Project, title: &str) -> NewTask {
    NewTask {
        project_id: project.id.clone(),
        title: title.into(),
        ..Default::default()
    }
}

/// `(projects, tasks)` that analytics counts in `project_id` or the whole visible scope.
async fn counted(
    store: &dyn ProjectStore,
    t: &TenantContext,
    project_id: Option<&str>,
) -> Result<(u64, i64), StoreError> {
    let (projects, counters) = store.counters_in_scope(t, project_id).await?;
    Ok((projects, counters.get("tasks").copied().unwrap_or(0)))
}

const ALL: ProjectFilter = ProjectFilter {
    include_archived: true,
};

async fn all_projects(store: &dyn ProjectStore, t: &TenantContext, limit: usize) -> Vec<Project> {
    let mut seen = Vec::new();
    let mut cursor: Option<Cursor> = None;
    loop {
        // Go through the wire form each time, as a client would.
        let decoded = cursor.map(|c| Cursor::decode(&c.encode()).unwrap());
        let page = store
            .list(t, ProjectFilter::default(), decoded.as_ref(), limit)
            .await
            .unwrap();
        assert!(page.projects.len() <= limit);
        if page.next_cursor.is_some() {
            assert_eq!(
                page.projects.len(),
                limit,
                "a short page claims more follow"
            );
        }
        seen.extend(page.projects);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return seen,
        }
    }
}

pub async fn tenants_are_isolated(store: &dyn ProjectStore) {
    let acme = test_tenant(&unique("acme"));
    let globex = test_tenant(&unique("globex"));
    // A tenant id crafted to look like a prefix of another's key.
    let crafted = test_tenant(&format!("{}:projects", acme.tenant_id));
    let p = store.create(&acme, new("Apollo")).await.unwrap();
    store.create(&globex, new("Gemini")).await.unwrap();
    let t = store.create_task(&acme, task(&p, "Launch")).await.unwrap();

    assert_eq!(store.get(&acme, &p.id).await.unwrap(), Some(p.clone()));
    for other in [&globex, &crafted] {
        assert_eq!(store.get(other, &p.id).await.unwrap(), None);
        assert!(matches!(
            store.archive(other, &p.id).await,
            Err(StoreError::ProjectNotFound(_))
        ));
        assert!(matches!(
            store.delete(other, &p.id, "Apollo").await,
            Err(StoreError::ProjectNotFound(_))
        ));
        assert!(matches!(
            store.create_task(other, task(&p, "x")).await,
            Err(StoreError::ProjectNotFound(_))
        ));
        assert!(matches!(
            store
                .list_tasks(other, &p.id, &TaskFilter::default(), None, 10)
                .await,
            Err(StoreError::ProjectNotFound(_))
        ));
        let patch = TaskPatch {
            title: Some("pwned".into()),
            ..Default::default()
        };
        assert!(matches!(
            store.update_task(other, &t.id, &patch).await,
            Err(StoreError::TaskNotFound(_))
        ));
    }
    assert_eq!(all_projects(store, &acme, 100).await, vec![p]);
    let globex_projects = all_projects(store, &globex, 100).await;
    assert_eq!(globex_projects.len(), 1);
    assert_eq!(globex_projects[0].name, "Gemini");
    assert!(all_projects(store, &crafted, 100).await.is_empty());
    assert_eq!(counted(store, &crafted, None).await.unwrap(), (0, 0));
}

pub async fn paginates_in_creation_order(store: &dyn ProjectStore) {
    let t = test_tenant(&unique("acme"));
    let mut created = Vec::new();
    for i in 0..7 {
        created.push(store.create(&t, new(&format!("p{i}"))).await.unwrap());
    }
    for limit in [1, 3, 7, 100] {
        assert_eq!(
            all_projects(store, &t, limit).await,
            created,
            "limit {limit}"
        );
    }
    let page = store
        .list(&t, ALL, Some(&Cursor::new(u64::MAX)), 3)
        .await
        .unwrap();
    assert!(page.projects.is_empty());
    assert_eq!(page.next_cursor, None);
    for bad in [0, MAX_PAGE + 1] {
        assert!(matches!(
            store.list(&t, ALL, None, bad).await,
            Err(StoreError::InvalidInput(_))
        ));
    }
}

pub async fn data_scope_narrows(store: &dyn ProjectStore) {
    let base = test_tenant(&unique("acme"));
    let eng = with_scope(&base, "team:eng");
    let sales = with_scope(&base, "team:sales");
    let everyone = with_scope(&base, "");
    let odd = with_scope(&base, "org:acme");

    let e = store.create(&eng, new("Engine")).await.unwrap();
    let s = store.create(&sales, new("Deals")).await.unwrap();
    let n = store.create(&everyone, new("Company")).await.unwrap();
    assert_eq!(e.team.as_deref(), Some("eng"));
    assert_eq!(s.team.as_deref(), Some("sales"));
    assert_eq!(n.team, None);
    let st = store.create_task(&sales, task(&s, "Call")).await.unwrap();

    assert_eq!(all_projects(store, &eng, 10).await, vec![e.clone()]);
    assert_eq!(all_projects(store, &sales, 10).await, vec![s.clone()]);
    assert_eq!(
        all_projects(store, &everyone, 1).await,
        vec![e.clone(), s.clone(), n]
    );
    assert!(all_projects(store, &odd, 10).await.is_empty());
    assert!(matches!(
        store.create(&odd, new("x")).await,
        Err(StoreError::UnsupportedDataScope(_))
    ));

    // Out of scope behaves exactly like unknown.
    assert_eq!(store.get(&eng, &s.id).await.unwrap(), None);
    assert!(matches!(
        store.archive(&eng, &s.id).await,
        Err(StoreError::ProjectNotFound(_))
    ));
    assert!(matches!(
        store.delete(&eng, &s.id, "Deals").await,
        Err(StoreError::ProjectNotFound(_))
    ));
    assert!(matches!(
        store.create_task(&eng, task(&s, "x")).await,
        Err(StoreError::ProjectNotFound(_))
    ));
    assert!(matches!(
        store
            .list_tasks(&eng, &s.id, &TaskFilter::default(), None, 10)
            .await,
        Err(StoreError::ProjectNotFound(_))
    ));
    let patch = TaskPatch {
        status: Some(TaskStatus::Done),
        ..Default::default()
    };
    assert!(matches!(
        store.update_task(&eng, &st.id, &patch).await,
        Err(StoreError::TaskNotFound(_))
    ));
    assert!(matches!(
        counted(store, &eng, Some(&s.id)).await,
        Err(StoreError::ProjectNotFound(_))
    ));
    assert_eq!(counted(store, &eng, None).await.unwrap(), (1, 0));
    assert_eq!(counted(store, &everyone, None).await.unwrap(), (3, 1));
    // The unscoped token reaches everything.
    let done = store.update_task(&everyone, &st.id, &patch).await.unwrap();
    assert_eq!(done.status, TaskStatus::Done);
    assert!(store.get(&everyone, &s.id).await.unwrap().is_some());
}

pub async fn archive_hides_and_blocks_new_tasks(store: &dyn ProjectStore) {
    let t = test_tenant(&unique("acme"));
    let a = store.create(&t, new("Old")).await.unwrap();
    let b = store.create(&t, new("New")).await.unwrap();
    let old_task = store.create_task(&t, task(&a, "Before")).await.unwrap();
    let archived = store.archive(&t, &a.id).await.unwrap();
    assert!(archived.archived);
    assert_eq!(
        store.archive(&t, &a.id).await.unwrap(),
        archived,
        "idempotent"
    );
    assert_eq!(all_projects(store, &t, 10).await, vec![b.clone()]);
    let page = store.list(&t, ALL, None, 10).await.unwrap();
    assert_eq!(page.projects, vec![archived.clone(), b]);
    assert_eq!(store.get(&t, &a.id).await.unwrap(), Some(archived));
    assert!(matches!(
        store.create_task(&t, task(&a, "After")).await,
        Err(StoreError::ProjectArchived(_))
    ));
    let page = store
        .list_tasks(&t, &a.id, &TaskFilter::default(), None, 10)
        .await
        .unwrap();
    assert_eq!(page.tasks, vec![old_task]);
    // Whole-scope analytics leave archived projects out; asking for one by id counts it.
    assert_eq!(counted(store, &t, None).await.unwrap(), (1, 0));
    assert_eq!(counted(store, &t, Some(&a.id)).await.unwrap(), (1, 1));
}

pub async fn delete_checks_the_name_and_removes_tasks(store: &dyn ProjectStore) {
    let t = test_tenant(&unique("acme"));
    let mut projects = Vec::new();
    for i in 0..4 {
        projects.push(store.create(&t, new(&format!("p{i}"))).await.unwrap());
    }
    let doomed = projects[1].clone();
    let tk = store.create_task(&t, task(&doomed, "x")).await.unwrap();
    store.create_task(&t, task(&doomed, "y")).await.unwrap();
    let first = store.list(&t, ALL, None, 2).await.unwrap();
    assert!(matches!(
        store.delete(&t, &doomed.id, "P1").await,
        Err(StoreError::NameMismatch(_))
    ));
    let deleted = store.delete(&t, &doomed.id, "p1").await.unwrap();
    assert_eq!(deleted.project, doomed);
    assert_eq!(deleted.tasks_deleted, 2);
    assert_eq!(store.get(&t, &doomed.id).await.unwrap(), None);
    assert!(matches!(
        store.delete(&t, &doomed.id, "p1").await,
        Err(StoreError::ProjectNotFound(_))
    ));
    assert!(matches!(
        store
            .list_tasks(&t, &doomed.id, &TaskFilter::default(), None, 10)
            .await,
        Err(StoreError::ProjectNotFound(_))
    ));
    let patch = TaskPatch {
        title: Some("z".into()),
        ..Default::default()
    };
    assert!(matches!(
        store.update_task(&t, &tk.id, &patch).await,
        Err(StoreError::TaskNotFound(_))
    ));
    // A cursor taken before the delete still continues where it left off.
    let rest = store
        .list(&t, ALL, first.next_cursor.as_ref(), 10)
        .await
        .unwrap();
    assert_eq!(rest.projects, projects[2..].to_vec());
    assert_eq!(
        all_projects(store, &t, 1).await,
        vec![
            projects[0].clone(),
            projects[2].clone(),
            projects[3].clone()
        ]
    );
}

pub async fn tasks_filter_paginate_and_update(store: &dyn ProjectStore) {
    let t = test_tenant(&unique("acme"));
    let p = store.create(&t, new("Apollo")).await.unwrap();
    let other = store.create(&t, new("Gemini")).await.unwrap();
    store
        .create_task(&t, task(&other, "elsewhere"))
        .await
        .unwrap();
    let mut created = Vec::new();
    for i in 0..7 {
        let mut nt = task(&p, &format!("t{i}"));
        if i % 2 == 0 {
            nt.assignee_email = Some("Bob@Example.com".into());
        }
        nt.priority = Priority::High;
        nt.due_date = Some("2030-01-01".into());
        created.push(store.create_task(&t, nt).await.unwrap());
    }
    // Page through Bob's tasks two at a time.
    let bob = TaskFilter {
        status: None,
        assignee_email: Some("bob@example.COM".into()),
    };
    let mut seen = Vec::new();
    let mut cursor: Option<Cursor> = None;
    loop {
        let page = store
            .list_tasks(&t, &p.id, &bob, cursor.as_ref(), 2)
            .await
            .unwrap();
        seen.extend(page.tasks);
        match page.next_cursor {
            Some(c) => cursor = Some(Cursor::decode(&c.encode()).unwrap()),
            None => break,
        }
    }
    let expected: Vec<Task> = created.iter().step_by(2).cloned().collect();
    assert_eq!(seen, expected);

    let patch = TaskPatch {
        status: Some(TaskStatus::InProgress),
        title: Some("renamed".into()),
        ..Default::default()
    }
    .normalised()
    .unwrap();
    let updated = store.update_task(&t, &created[1].id, &patch).await.unwrap();
    assert_eq!(updated.status, TaskStatus::InProgress);
    assert_eq!(updated.title, "renamed");
    assert_eq!(updated.priority, Priority::High);
    let again = store.update_task(&t, &created[1].id, &patch).await.unwrap();
    assert_eq!(again, updated, "repeating an update changes nothing");
    let assign = TaskPatch {
        assignee_email: Some("carol@example.com".into()),
        ..Default::default()
    };
    let assigned = store
        .update_task(&t, &created[1].id, &assign)
        .await
        .unwrap();
    assert_eq!(
        assigned.assignee_email.as_deref(),
        Some("carol@example.com")
    );
    assert_eq!(assigned.title, "renamed");

    let in_progress = TaskFilter {
        status: Some(TaskStatus::InProgress),
        assignee_email: None,
    };
    let page = store
        .list_tasks(&t, &p.id, &in_progress, None, 100)
        .await
        .unwrap();
    assert_eq!(page.tasks, vec![assigned]);
    assert_eq!(page.next_cursor, None);

    assert!(matches!(
        store
            .update_task(&t, "tsk_0123456789abcdef0123456789abcdef", &patch)
            .await,
        Err(StoreError::TaskNotFound(_))
    ));
    assert!(matches!(
        store.update_task(&t, "../x", &patch).await,
        Err(StoreError::TaskNotFound(_))
    ));
    assert!(matches!(
        store
            .list_tasks(&t, "prj_nope", &TaskFilter::default(), None, 10)
            .await,
        Err(StoreError::ProjectNotFound(_))
    ));
    assert_eq!(counted(store, &t, None).await.unwrap(), (2, 8));
    assert_eq!(counted(store, &t, Some(&p.id)).await.unwrap(), (1, 7));
}

/// The caps [`caps_hold`] expects the store to be built with.
pub const TEST_LIMITS: StoreLimits = StoreLimits {
    projects_per_tenant: 3,
    tasks_per_project: 5,
};

fn is_cap(result: &Result<impl std::fmt::Debug, StoreError>, limit: u64) -> bool {
    matches!(result, Err(StoreError::LimitReached { limit: l, .. }) if *l == limit)
}

/// Needs a store with [`TEST_LIMITS`]. Many concurrent creates never pass a cap; a delete frees
/// its places.
pub async fn caps_hold(store: &dyn ProjectStore) {
    let t = test_tenant(&unique("acme"));
    let creates = (0..12).map(|i| {
        let t = t.clone();
        async move { store.create(&t, new(&format!("p{i}"))).await }
    });
    let results = futures_util::future::join_all(creates).await;
    let made: Vec<Project> = results
        .iter()
        .filter_map(|r| r.as_ref().ok().cloned())
        .collect();
    assert_eq!(made.len(), 3, "{results:?}");
    assert!(results.iter().filter(|r| r.is_err()).all(|r| is_cap(r, 3)));
    assert!(is_cap(&store.create(&t, new("one more")).await, 3));

    let p = &made[0];
    let adds = (0..12).map(|i| store.create_task(&t, task(p, &format!("t{i}"))));
    let results = futures_util::future::join_all(adds).await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        5,
        "{results:?}"
    );
    assert!(results.iter().filter(|r| r.is_err()).all(|r| is_cap(r, 5)));
    let page = store
        .list_tasks(&t, &p.id, &TaskFilter::default(), None, 100)
        .await
        .unwrap();
    assert_eq!(page.tasks.len(), 5);
    // Another project has its own task cap; archiving keeps a project's place.
    store
        .create_task(&t, task(&made[1], "elsewhere"))
        .await
        .unwrap();
    store.archive(&t, &made[2].id).await.unwrap();
    assert!(is_cap(&store.create(&t, new("still full")).await, 3));
    let deleted = store.delete(&t, &p.id, &p.name).await.unwrap();
    assert_eq!(deleted.tasks_deleted, 5);
    let again = store.create(&t, new("in the freed place")).await.unwrap();
    assert!(is_cap(&store.create(&t, new("full again")).await, 3));
    for i in 0..5 {
        store
            .create_task(&t, task(&again, &format!("n{i}")))
            .await
            .unwrap();
    }
    assert!(is_cap(
        &store.create_task(&t, task(&again, "sixth")).await,
        5
    ));
    // Other tenants are not affected by this one's caps.
    let other = test_tenant(&unique("globex"));
    store.create(&other, new("mine")).await.unwrap();
}

/// A small deterministic generator (xorshift64), so a failure can be replayed.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, sides: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % sides
    }
}

/// Every task of the visible projects `filter` selects, read through the listing.
async fn every_task(
    store: &dyn ProjectStore,
    t: &TenantContext,
    project_ids: &[String],
) -> Vec<Task> {
    let mut tasks = Vec::new();
    for id in project_ids {
        let mut cursor: Option<Cursor> = None;
        loop {
            let page = store
                .list_tasks(t, id, &TaskFilter::default(), cursor.as_ref(), MAX_PAGE)
                .await
                .unwrap();
            tasks.extend(page.tasks);
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
    }
    tasks
}

/// After random creates, updates, an archive and a delete, the counters give exactly what
/// counting every task gives, for each project and for the whole scope.
pub async fn analytics_match_a_brute_force_count(store: &dyn ProjectStore) {
    let t = test_tenant(&unique("acme"));
    let today = chrono::Utc::now().date_naive();
    let mut dice = Dice(0x9e37_79b9_7f4a_7c15);
    let emails = [None, Some("ann@example.com"), Some("bob@example.com")];
    let days = [
        None,
        Some("2000-01-01"),
        Some("2999-12-31"),
        Some("2020-02-29"),
    ];
    let statuses = [TaskStatus::Todo, TaskStatus::InProgress, TaskStatus::Done];
    let priorities = [
        Priority::Low,
        Priority::Medium,
        Priority::High,
        Priority::Urgent,
    ];
    let mut projects = Vec::new();
    for i in 0..4 {
        projects.push(store.create(&t, new(&format!("p{i}"))).await.unwrap());
    }
    let mut task_ids = Vec::new();
    for i in 0..80 {
        let p = &projects[dice.roll(4) as usize];
        let mut nt = task(p, &format!("t{i}"));
        nt.assignee_email = emails[dice.roll(3) as usize].map(str::to_owned);
        nt.due_date = days[dice.roll(4) as usize].map(str::to_owned);
        nt.priority = priorities[dice.roll(4) as usize];
        task_ids.push(store.create_task(&t, nt).await.unwrap().id);
    }
    for _ in 0..120 {
        let id = &task_ids[dice.roll(task_ids.len() as u64) as usize];
        let patch = match dice.roll(4) {
            0 => TaskPatch {
                status: Some(statuses[dice.roll(3) as usize]),
                ..Default::default()
            },
            1 => TaskPatch {
                priority: Some(priorities[dice.roll(4) as usize]),
                ..Default::default()
            },
            2 => TaskPatch {
                assignee_email: emails[1 + dice.roll(2) as usize].map(str::to_owned),
                ..Default::default()
            },
            _ => TaskPatch {
                due_date: days[1 + dice.roll(3) as usize].map(str::to_owned),
                ..Default::default()
            },
        };
        store.update_task(&t, id, &patch).await.unwrap();
    }
    store.archive(&t, &projects[2].id).await.unwrap();
    store.delete(&t, &projects[3].id, "p3").await.unwrap();

    for p in &projects[..3] {
        let (n, counters) = store.counters_in_scope(&t, Some(&p.id)).await.unwrap();
        let tasks = every_task(store, &t, std::slice::from_ref(&p.id)).await;
        assert_eq!(
            counts_from(n, &counters, today),
            count_tasks(1, &tasks, today),
            "{}",
            p.name
        );
    }
    let active = [projects[0].id.clone(), projects[1].id.clone()];
    let tasks = every_task(store, &t, &active).await;
    assert!(tasks.len() > 20, "enough tasks to mean something");
    let (n, counters) = store.counters_in_scope(&t, None).await.unwrap();
    let counted = counts_from(n, &counters, today);
    assert_eq!(counted, count_tasks(2, &tasks, today));
    assert!(
        counted.overdue > 0 && !counted.by_assignee.is_empty(),
        "{counted:?}"
    );
}

/// Every check above, in turn.
pub async fn all(store: &dyn ProjectStore) {
    tenants_are_isolated(store).await;
    paginates_in_creation_order(store).await;
    data_scope_narrows(store).await;
    archive_hides_and_blocks_new_tasks(store).await;
    delete_checks_the_name_and_removes_tasks(store).await;
    tasks_filter_paginate_and_update(store).await;
    analytics_match_a_brute_force_count(store).await;
}
