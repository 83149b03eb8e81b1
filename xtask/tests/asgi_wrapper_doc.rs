//! docs/trusting-the-edge.md shows the Python ASGI wrapper for a server author to paste; the
//! tests run docs/verify/verify_identity_asgi.py. This keeps the two the same code.

use xtask::sync_config::repo_root;

#[test]
fn the_doc_quotes_the_tested_asgi_wrapper() {
    let root = repo_root();
    let read = |path: &str| {
        std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("reading {path}: {e}"))
    };
    let wrapper = read("docs/verify/verify_identity_asgi.py");
    let doc = read("docs/trusting-the-edge.md");
    // The file minus its module docstring: from the first import to the end.
    let code = wrapper
        .find("import json")
        .map(|start| wrapper[start..].trim_end())
        .expect("the wrapper imports json");
    assert!(
        doc.contains(&format!("```python\n{code}\n```")),
        "docs/trusting-the-edge.md must quote docs/verify/verify_identity_asgi.py from `import json` on"
    );
}
