//! The test runner of an end-to-end binary: one stack, every case against it, then the stack is
//! stopped by pid before the process exits (libtest-mimic, so `cargo test` filters and output work).
//!
//! Cases run in parallel, except those marked alone: they read Envoy's process-wide counters
//! before and after, so no other case of the binary runs beside them.

use std::sync::{Arc, RwLock};

use anyhow::Result;
use libtest_mimic::{Arguments, Failed, Trial};

use crate::stack::{Stack, StackOptions};

/// One test case of a binary; write the list with [`cases!`](crate::cases).
#[derive(Clone, Copy)]
pub struct Case {
    pub name: &'static str,
    pub run: fn(&Stack) -> Result<()>,
    /// Runs with no other case beside it (it asserts on counters every case moves).
    pub alone: bool,
}

/// The cases of a binary: `cases![a, b; alone: c]` (each name is a `fn(&Stack) -> Result<()>`;
/// the part after `alone:` is optional).
#[macro_export]
macro_rules! cases {
    ($($case:ident),* $(,)? $(; alone: $($alone:ident),* $(,)?)?) => {
        &[
            $($crate::runner::Case { name: stringify!($case), run: $case, alone: false },)*
            $($($crate::runner::Case { name: stringify!($alone), run: $alone, alone: true },)*)?
        ]
    };
}

/// Starts the stack, runs `cases` (in parallel, as libtest does), stops the stack and exits.
pub fn run(cases: &[Case]) -> ! {
    run_with(&serde_json::Value::Null, cases)
}

/// [`run`] with plugin configuration overrides for this binary's stack.
pub fn run_with(plugin_overrides: &serde_json::Value, cases: &[Case]) -> ! {
    run_with_options(
        &StackOptions {
            plugin_overrides: plugin_overrides.clone(),
            ..StackOptions::default()
        },
        cases,
    )
}

/// [`run`] with the stack `options` describe (e.g. the OAuth server instead of the dev issuer).
pub fn run_with_options(options: &StackOptions, cases: &[Case]) -> ! {
    run_then(options, cases, &|| {})
}

/// [`run_with_options`], then `stop` (which stops the servers the binary started besides the
/// stack) before the process exits, whether the stack started or not.
pub fn run_then(options: &StackOptions, cases: &[Case], stop: &dyn Fn()) -> ! {
    let args = Arguments::from_args();
    let stack = match Stack::start_with(options) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("could not start the stack: {e:#}");
            stop();
            std::process::exit(1);
        }
    };
    // Every case holds it shared; a case that runs alone holds it exclusively.
    let turns = Arc::new(RwLock::new(()));
    let trials = cases
        .iter()
        .map(|&case| {
            let (stack, turns) = (Arc::clone(&stack), Arc::clone(&turns));
            Trial::test(case.name, move || {
                let _alone = case.alone.then(|| turns.write());
                let _shared = (!case.alone).then(|| turns.read());
                run_case(case, &stack).map_err(|e| {
                    Failed::from(format!(
                        "{e:#}\n--- envoy log (tail) ---\n{}\n--- backend log (tail) ---\n{}\n--- authz log (tail) ---\n{}",
                        stack.log_tail("envoy", 15),
                        stack.log_tail("backend", 15),
                        stack.log_tail("authz", 15)
                    ))
                })
            })
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    stack.stop();
    drop(stack);
    stop();
    conclusion.exit()
}

/// Runs one case between two looks at the stack's servers, so that a failure says what failed
/// first: a server already gone before the case (another case's doing, reported as such), the
/// case's own error, or a server that exited while the case ran although the case passed.
fn run_case(case: Case, stack: &Stack) -> Result<()> {
    stack
        .check_alive()
        .map_err(|e| e.context("a server of the stack had exited before this case started"))?;
    let outcome = (case.run)(stack);
    let alive = stack.check_alive();
    match (outcome, alive) {
        (Ok(()), Ok(())) => Ok(()),
        (Ok(()), Err(e)) => Err(e.context("the case passed, but a server exited while it ran")),
        (Err(e), Ok(())) => Err(e),
        (Err(e), Err(dead)) => {
            Err(e.context(format!("a server also exited while the case ran: {dead:#}")))
        }
    }
}
