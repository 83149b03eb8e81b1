//! `$ref`s inside one OpenAPI document: `#/…` JSON pointers only (a reference to another file or
//! URL is not fetched: the operation is skipped), followed through chains up to a fixed depth.

use serde_json::Value;

/// References followed one after another before giving up (a cycle, or an absurd chain).
const MAX_CHAIN: usize = 16;

/// Resolves the `$ref`s of one document.
pub struct Resolver<'a> {
    doc: &'a Value,
}

impl<'a> Resolver<'a> {
    pub fn new(doc: &'a Value) -> Self {
        Self { doc }
    }

    /// `value` itself, or what its `$ref` (chain) points at, cloned.
    pub fn resolve(&self, value: &Value) -> Result<Value, String> {
        let mut current = value;
        for _ in 0..MAX_CHAIN {
            let Some(reference) = current.get("$ref") else {
                return Ok(current.clone());
            };
            current = self.target(reference)?;
        }
        Err(format!("$ref chain longer than {MAX_CHAIN} (a cycle?)"))
    }

    /// The value a `$ref` string points at.
    pub fn target(&self, reference: &Value) -> Result<&'a Value, String> {
        let Some(reference) = reference.as_str() else {
            return Err("a $ref that is not a string".into());
        };
        let Some(pointer) = reference.strip_prefix('#') else {
            return Err(format!("$ref {reference:?} points outside the document"));
        };
        self.doc
            .pointer(pointer)
            .ok_or_else(|| format!("$ref {reference:?} points at nothing"))
    }
}
