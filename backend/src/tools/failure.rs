//! How a tool call fails, and the paging arguments every list tool checks.
//!
//! A protocol problem (bad cursor or limit, no tenant, storage down or past its deadline, a
//! storage cap reached) is a JSON-RPC error; a business failure (unknown id, bad date, name
//! mismatch, archived project) is an `isError: true` result whose message says what to call next.
//! Neither is billed: metering refunds every call that does not end in a successful result.

use mcp_edge_contract::codes::{LIMIT_REACHED, STORAGE_DEADLINE};
use rmcp::ErrorData;
use rmcp::handler::server::tool::IntoCallToolResult;
use rmcp::model::{CallToolResponse, CallToolResult, ContentBlock, ErrorCode};

use crate::store::{Cursor, MAX_PAGE, StoreError};

/// Page size of the list tools when the caller gives none.
pub const DEFAULT_PAGE: u32 = 20;

/// How a tool call fails: a protocol error (JSON-RPC error) or a tool error (`isError: true`, with a
/// message the agent can act on).
#[derive(Debug)]
pub enum ToolFailure {
    Protocol(ErrorData),
    Tool(String),
}

impl IntoCallToolResult for ToolFailure {
    fn into_call_tool_result(self) -> Result<CallToolResponse, ErrorData> {
        match self {
            Self::Protocol(error) => Err(error),
            Self::Tool(message) => {
                Ok(CallToolResult::error(vec![ContentBlock::text(message)]).into())
            }
        }
    }
}

impl From<StoreError> for ToolFailure {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::InvalidCursor => {
                Self::Protocol(ErrorData::invalid_params(error.to_string(), None))
            }
            StoreError::InvalidInput(message) => Self::Tool(format!("Invalid input: {message}.")),
            StoreError::ProjectNotFound(id) => Self::Tool(format!(
                "No project with id {id:?} exists in your organisation. Call list_projects to see \
the available projects and their ids (pass include_archived: true to include archived ones)."
            )),
            StoreError::TaskNotFound(id) => Self::Tool(format!(
                "No task with id {id:?} exists in your organisation. Call list_tasks with the \
task's project_id to find the right task id (list_projects gives the project ids)."
            )),
            StoreError::ProjectArchived(id) => Self::Tool(format!(
                "Project {id:?} is archived, so no tasks can be added to it. Pick an active project \
from list_projects, or call create_project to start a new one."
            )),
            StoreError::NameMismatch(id) => Self::Tool(format!(
                "Nothing was deleted: confirm_name does not match the name of project {id:?}. Call \
get_project to read its exact name, make sure the user really wants to delete the project and all \
its tasks, then call delete_project again with that name as confirm_name."
            )),
            StoreError::UnsupportedDataScope(scope) => Self::Tool(format!(
                "Your access token's data scope {scope:?} is not supported here (expected none or \
team:<name>), so it cannot create projects. Ask an administrator for a token with a team data \
scope."
            )),
            StoreError::LimitReached { what, limit } => Self::Protocol(ErrorData::new(
                ErrorCode(LIMIT_REACHED),
                format!(
                    "Nothing was created: your organisation has reached its limit of {limit} \
{what}. Delete or archive what is no longer needed (archived projects still count; \
delete_project frees a project's place and its tasks'), or ask an administrator to raise the limit."
                ),
                Some(serde_json::json!({ "limit": limit, "what": what })),
            )),
            StoreError::Timeout(message) => {
                tracing::error!(error = %message, "store deadline exceeded");
                Self::Protocol(ErrorData::new(
                    ErrorCode(STORAGE_DEADLINE),
                    "project storage did not answer in time and nothing was changed; try again \
shortly",
                    Some(serde_json::json!({ "changed": false })),
                ))
            }
            StoreError::Unconfirmed(message) => {
                tracing::error!(error = %message, "store deadline exceeded, write unconfirmed");
                Self::Protocol(ErrorData::new(
                    ErrorCode(STORAGE_DEADLINE),
                    "project storage did not answer in time and it is not known whether the change \
was made: read it back (get_project, list_tasks) before repeating it",
                    Some(serde_json::json!({ "changed": null })),
                ))
            }
            StoreError::Backend(message) => {
                tracing::error!(error = %message, "store failed");
                Self::Protocol(ErrorData::internal_error(
                    "project storage is unavailable; try again later",
                    None,
                ))
            }
        }
    }
}

/// The page size of a list call: 1..=100, default 20; anything else is invalid params (-32602).
pub fn page_limit(limit: Option<u32>) -> Result<usize, ToolFailure> {
    let limit = limit.unwrap_or(DEFAULT_PAGE) as usize;
    if (1..=MAX_PAGE).contains(&limit) {
        Ok(limit)
    } else {
        Err(ToolFailure::Protocol(ErrorData::invalid_params(
            format!("limit must be between 1 and {MAX_PAGE}"),
            None,
        )))
    }
}

/// A cursor from a previous page; garbage is invalid params (-32602).
pub fn page_cursor(cursor: Option<&str>) -> Result<Option<Cursor>, ToolFailure> {
    Ok(cursor.map(Cursor::decode).transpose()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_cursors_are_protocol_errors() {
        assert_eq!(page_limit(None).unwrap(), 20);
        assert_eq!(page_limit(Some(100)).unwrap(), 100);
        for bad in [0, 101, u32::MAX] {
            assert!(matches!(
                page_limit(Some(bad)),
                Err(ToolFailure::Protocol(e)) if e.code.0 == -32602
            ));
        }
        assert!(matches!(
            page_cursor(Some("garbage")),
            Err(ToolFailure::Protocol(e)) if e.code.0 == -32602
        ));
        assert_eq!(page_cursor(None).unwrap(), None);
    }

    #[test]
    fn business_failures_say_what_to_call_next() {
        let cases = [
            (StoreError::ProjectNotFound("prj_x".into()), "list_projects"),
            (StoreError::TaskNotFound("tsk_x".into()), "list_tasks"),
            (
                StoreError::ProjectArchived("prj_x".into()),
                "create_project",
            ),
            (StoreError::NameMismatch("prj_x".into()), "get_project"),
            (StoreError::InvalidInput("due_date …".into()), "due_date"),
        ];
        for (error, hint) in cases {
            match ToolFailure::from(error) {
                ToolFailure::Tool(message) => assert!(message.contains(hint), "{message}"),
                other => panic!("{other:?}"),
            }
        }
        assert!(matches!(
            ToolFailure::from(StoreError::Backend("down".into())),
            ToolFailure::Protocol(e) if e.code.0 == -32603
        ));
        assert!(matches!(
            ToolFailure::from(StoreError::Timeout("slow".into())),
            ToolFailure::Protocol(e) if e.code.0 == STORAGE_DEADLINE
                && e.data == Some(serde_json::json!({"changed": false}))
        ));
        assert!(matches!(
            ToolFailure::from(StoreError::Unconfirmed("slow".into())),
            ToolFailure::Protocol(e) if e.code.0 == STORAGE_DEADLINE
                && e.message.contains("read it back")
        ));
        match ToolFailure::from(StoreError::LimitReached {
            what: crate::store::limits::TASKS_PER_PROJECT,
            limit: 3,
        }) {
            ToolFailure::Protocol(e) => {
                assert_eq!(e.code.0, LIMIT_REACHED);
                assert!(
                    e.message.contains("limit of 3 tasks per project"),
                    "{}",
                    e.message
                );
                assert_eq!(
                    e.data,
                    Some(serde_json::json!({"limit": 3, "what": "tasks per project"}))
                );
            }
            other => panic!("{other:?}"),
        }
    }
}
