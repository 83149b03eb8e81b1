//! Splits a JSON-RPC batch body into its elements and sorts out what each one is, before any of
//! them runs.
//!
//! Each element keeps its exact bytes ([`RawValue`]): rmcp later parses them as it parses a single
//! message, so the backend reads each element the way the edge judged it (no re-serialisation). A
//! batch that is not JSON, empty, longer than [`MAX_BATCH_ELEMENTS`], holds `initialize`, or
//! repeats a request id is refused whole: nothing of it runs. Unique ids matter beyond JSON-RPC's
//! rule: a call's usage event is keyed by the gateway request id and the call's id, so two calls
//! with one id would be billed as one.

use std::collections::HashSet;
use std::fmt;

use serde::de::{Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::jsonrpc_error::{INVALID_REQUEST, PARSE_ERROR};

pub use mcp_edge_contract::limits::MAX_BATCH_ELEMENTS;
use mcp_edge_contract::limits::MAX_JSONRPC_ID_BYTES;

/// One element of a batch.
#[derive(Debug)]
pub enum Element<'a> {
    /// A request: run, and answered with its `id`.
    Request {
        id: Value,
        method: String,
        raw: &'a RawValue,
    },
    /// A notification: run, never answered (JSON-RPC).
    Notification { raw: &'a RawValue },
    /// A response to a server-to-client request: a stateless server has none outstanding, so it
    /// is accepted and dropped.
    Response,
    /// Not a JSON-RPC message: answered with an invalid-request error carrying `id` (its own id
    /// when it has a usable one, else `null`).
    Invalid { id: Value },
}

/// Why a whole batch is refused: HTTP 400 with one JSON-RPC error, `id: null`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BatchRefusal {
    #[error("Parse error: the batch is not a JSON array ({0})")]
    NotJson(String),
    #[error("Invalid Request: the batch is empty")]
    Empty,
    #[error(
        "Invalid Request: a batch may hold at most {MAX_BATCH_ELEMENTS} messages and this one holds {0}; send it in smaller batches"
    )]
    TooMany(usize),
    #[error("Invalid Request: initialize must not be part of a batch")]
    Initialize,
    #[error(
        "Invalid Request: the request id {0} appears more than once in this batch; ids must be unique"
    )]
    DuplicateId(String),
    #[error(
        "Invalid Request: a request id must be an integer or a string of at most {MAX_JSONRPC_ID_BYTES} bytes"
    )]
    IdTooLong,
}

impl BatchRefusal {
    /// The JSON-RPC error code of this refusal.
    pub fn code(&self) -> i32 {
        match self {
            Self::NotJson(_) => PARSE_ERROR,
            _ => INVALID_REQUEST,
        }
    }
}

/// The elements of a batch body, or why the batch is refused whole.
pub fn split(body: &[u8]) -> Result<Vec<Element<'_>>, BatchRefusal> {
    let capped: Capped<'_> =
        serde_json::from_slice(body).map_err(|e| BatchRefusal::NotJson(e.to_string()))?;
    if capped.total == 0 {
        return Err(BatchRefusal::Empty);
    }
    if capped.total > MAX_BATCH_ELEMENTS {
        return Err(BatchRefusal::TooMany(capped.total));
    }
    let elements: Vec<Element<'_>> = capped.elements.into_iter().map(classify).collect();
    check_requests(&elements)?;
    Ok(elements)
}

/// What one element is, by the members JSON-RPC 2.0 gives it.
fn classify(raw: &RawValue) -> Element<'_> {
    let Ok(Value::Object(object)) = serde_json::from_str::<Value>(raw.get()) else {
        return Element::Invalid { id: Value::Null };
    };
    let id = object.get("id").cloned();
    match (object.get("method"), id) {
        (Some(Value::String(method)), Some(id)) => Element::Request {
            id,
            method: method.clone(),
            raw,
        },
        (Some(Value::String(_)), None) => Element::Notification { raw },
        (None, Some(_)) if object.contains_key("result") || object.contains_key("error") => {
            Element::Response
        }
        (_, id) => Element::Invalid {
            id: id
                .filter(|id| id.is_string() || id.is_number())
                .unwrap_or(Value::Null),
        },
    }
}

/// The batch-wide rules on requests: no `initialize`, no id twice, no id over the cap.
fn check_requests(elements: &[Element<'_>]) -> Result<(), BatchRefusal> {
    let mut seen = HashSet::new();
    for element in elements {
        let (Element::Request { id, .. } | Element::Invalid { id }) = element else {
            continue;
        };
        if id.as_str().is_some_and(|s| s.len() > MAX_JSONRPC_ID_BYTES) {
            return Err(BatchRefusal::IdTooLong);
        }
        let Element::Request { id, method, .. } = element else {
            continue;
        };
        if method == "initialize" {
            return Err(BatchRefusal::Initialize);
        }
        // As rmcp and the usage event spell an id: `1` and `"1"` are the same call id there.
        let key = match id {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if !seen.insert(key.clone()) {
            return Err(BatchRefusal::DuplicateId(key));
        }
    }
    Ok(())
}

/// A JSON array read up to [`MAX_BATCH_ELEMENTS`] elements; the rest is only counted, so an
/// oversized batch costs no memory per element.
struct Capped<'a> {
    elements: Vec<&'a RawValue>,
    total: usize,
}

impl<'de> serde::Deserialize<'de> for Capped<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(CappedVisitor)
    }
}

struct CappedVisitor;

impl<'de> Visitor<'de> for CappedVisitor {
    type Value = Capped<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Capped<'de>, A::Error> {
        let mut elements = Vec::new();
        while elements.len() < MAX_BATCH_ELEMENTS {
            match seq.next_element::<&'de RawValue>()? {
                Some(element) => elements.push(element),
                None => {
                    let total = elements.len();
                    return Ok(Capped { elements, total });
                }
            }
        }
        let mut total = elements.len();
        while seq.next_element::<IgnoredAny>()?.is_some() {
            total += 1;
        }
        Ok(Capped { elements, total })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kinds(body: &str) -> Vec<String> {
        split(body.as_bytes())
            .expect("a batch")
            .iter()
            .map(|e| match e {
                Element::Request { id, method, raw } => format!("request {id} {method} {raw}"),
                Element::Notification { raw } => format!("notification {raw}"),
                Element::Response => "response".into(),
                Element::Invalid { id } => format!("invalid {id}"),
            })
            .collect()
    }

    #[test]
    fn elements_keep_their_exact_bytes() {
        let got = kinds(
            r#"[ {"jsonrpc":"2.0", "id":"a","method":"ping"} ,{"jsonrpc":"2.0","method":"notifications/initialized"}]"#,
        );
        assert_eq!(
            got,
            [
                r#"request "a" ping {"jsonrpc":"2.0", "id":"a","method":"ping"}"#,
                r#"notification {"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            ]
        );
    }

    #[test]
    fn responses_and_invalid_elements_are_told_apart() {
        let got = kinds(
            r#"[{"jsonrpc":"2.0","id":1,"result":{}},{"jsonrpc":"2.0","id":2,"error":{"code":1,"message":"x"}},
                1,"x",null,[],{},{"id":7},{"id":{"a":1},"params":{}},{"method":3,"id":4}]"#,
        );
        assert_eq!(
            got,
            [
                "response",
                "response",
                "invalid null",
                "invalid null",
                "invalid null",
                "invalid null",
                "invalid null",
                "invalid 7",
                "invalid null",
                "invalid 4",
            ]
        );
    }

    #[test]
    fn whole_batch_refusals() {
        let refused = |body: &str| split(body.as_bytes()).map(|_| ()).unwrap_err();
        assert_eq!(refused("[]"), BatchRefusal::Empty);
        assert_eq!(refused(" [ ] "), BatchRefusal::Empty);
        assert!(matches!(refused("[1,"), BatchRefusal::NotJson(_)));
        assert!(matches!(refused("[1] x"), BatchRefusal::NotJson(_)));
        assert!(matches!(refused("{}"), BatchRefusal::NotJson(_)));
        let init = json!([{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}]);
        assert_eq!(refused(&init.to_string()), BatchRefusal::Initialize);
        let twice = json!([
            {"jsonrpc":"2.0","id":1,"method":"ping"},
            {"jsonrpc":"2.0","id":"1","method":"ping"}
        ]);
        assert_eq!(
            refused(&twice.to_string()),
            BatchRefusal::DuplicateId("1".into())
        );
        for code in [BatchRefusal::Empty.code(), BatchRefusal::Initialize.code()] {
            assert_eq!(code, INVALID_REQUEST);
        }
        assert_eq!(BatchRefusal::NotJson(String::new()).code(), PARSE_ERROR);
    }

    #[test]
    fn the_element_cap_is_exact_and_counts_the_rest() {
        let ping = |n: usize| {
            let items: Vec<Value> = (0..n)
                .map(|i| json!({"jsonrpc":"2.0","id":i,"method":"ping"}))
                .collect();
            Value::Array(items).to_string()
        };
        assert_eq!(
            split(ping(MAX_BATCH_ELEMENTS).as_bytes())
                .expect("at the cap")
                .len(),
            MAX_BATCH_ELEMENTS
        );
        assert_eq!(
            split(ping(MAX_BATCH_ELEMENTS + 1).as_bytes()).map(|_| ()),
            Err(BatchRefusal::TooMany(MAX_BATCH_ELEMENTS + 1))
        );
        let many = format!("[{}]", vec!["0"; 5000].join(","));
        assert_eq!(
            split(many.as_bytes()).map(|_| ()),
            Err(BatchRefusal::TooMany(5000))
        );
        // Malformed JSON after the cap is still a parse error, not a count.
        let broken = format!("[{},}}]", vec!["0"; 200].join(","));
        assert!(matches!(
            split(broken.as_bytes()),
            Err(BatchRefusal::NotJson(_))
        ));
    }
}
