//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/*`) through the fuzz targets' own
//! logic (`fuzz/src/lib.rs`, included here), on stable: no nightly, no libFuzzer.

#[path = "../../fuzz/src/lib.rs"]
mod fuzz_targets;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

#[test]
fn every_corpus_file_passes_its_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let mut failures = Vec::new();
    for (name, target) in fuzz_targets::TARGETS {
        let dir = root.join(name);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.expect("corpus entry").path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no corpus for {name}");
        for file in files {
            let data = std::fs::read(&file).expect("corpus file");
            if catch_unwind(AssertUnwindSafe(|| target(&data))).is_err() {
                failures.push(file.display().to_string());
            }
        }
    }
    assert!(failures.is_empty(), "failing corpus files: {failures:#?}");
}

#[test]
fn sse_events_are_read_as_a_browser_reads_them() {
    let events =
        fuzz_targets::sse_events("\u{FEFF}data: a\r\ndata:b\rid: 1\n\n: c\n\ndata\n\ndata: cut");
    assert_eq!(events, vec!["a\nb".to_string(), String::new()]);
}
