//! bench/report.py draws docs/benchmarks.png; its chart once showed every latency bar one row above
//! its label. This runs bench/tests/report_chart_rows.py (the repository's `.venv/bin/python`,
//! with matplotlib from scripts/install-deps.sh), which draws the chart from made-up results and
//! checks that each label's throughput bar, latency bar and latency figure are that setup's.

use std::process::Command;

use xtask::sync_config::repo_root;

#[test]
fn chart_labels_and_bars_come_from_the_same_rows() {
    let root = repo_root();
    let python = root.join(".venv/bin/python");
    let output = Command::new(&python)
        .arg("bench/tests/report_chart_rows.py")
        .current_dir(&root)
        .env("MPLBACKEND", "Agg")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "starting {} (scripts/install-deps.sh makes it): {e}",
                python.display()
            )
        });
    assert!(
        output.status.success(),
        "bench/tests/report_chart_rows.py: {}\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        said.contains("10 rows"),
        "the script checked no rows: {said}"
    );
}
