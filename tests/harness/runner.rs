//! The test runner of an end-to-end binary: one stack, every case against it, then the stack is
//! stopped by pid before the process exits (libtest-mimic, so `cargo test` filters and output work).

use std::sync::Arc;

use anyhow::Result;
use libtest_mimic::{Arguments, Failed, Trial};

use crate::stack::{Stack, StackOptions};

pub type Case = fn(&Stack) -> Result<()>;

/// Starts the stack, runs `cases` (in parallel, as libtest does), stops the stack and exits.
pub fn run(cases: &[(&str, Case)]) -> ! {
    run_with(&serde_json::Value::Null, cases)
}

/// [`run`] with plugin configuration overrides for this binary's stack.
pub fn run_with(plugin_overrides: &serde_json::Value, cases: &[(&str, Case)]) -> ! {
    run_with_options(
        &StackOptions {
            plugin_overrides: plugin_overrides.clone(),
            ..StackOptions::default()
        },
        cases,
    )
}

/// [`run`] with the stack `options` describe (e.g. the OAuth server instead of the dev issuer).
pub fn run_with_options(options: &StackOptions, cases: &[(&str, Case)]) -> ! {
    let args = Arguments::from_args();
    let stack = match Stack::start_with(options) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("could not start the stack: {e:#}");
            std::process::exit(1);
        }
    };
    let trials =
        cases
            .iter()
            .map(|&(name, case)| {
                let stack = Arc::clone(&stack);
                Trial::test(name, move || {
                    case(&stack).and_then(|()| stack.check_alive()).map_err(|e| {
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
    conclusion.exit()
}
