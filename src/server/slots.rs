//! `POST /slots/{id_slot}?action=save|restore|erase`: a slot's prompt cache to a file in
//! `--slot-save-path` and back, or erased. This adapter checks the slot id, the action and the
//! file name as llama-server does (a plain name inside the folder: no separators, no `..`,
//! `fs_validate_filename`'s rules) and words the answers as it does; the engine thread does the
//! work (`engine/worker/slot_state.rs`).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path as UrlPath, Query, State};
use serde_json::{Value, json};

use super::AppState;
use super::edge::RawBody;
use super::error::{ApiError, ErrorType};
use super::fields::Body;
use crate::engine::{SlotAction, SlotActionDone, SlotActionError};
use crate::wording::{key_not_found, type_mismatch};

/// `POST /slots/{id_slot}?action=…`.
pub async fn action(
    State(state): State<Arc<AppState>>,
    id_slot: Result<UrlPath<String>, PathRejection>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    RawBody(body): RawBody,
) -> Result<Json<Value>, ApiError> {
    // axum's rejections (a path that is not UTF-8, a query it cannot read) as error JSON.
    let UrlPath(id_slot) = id_slot.map_err(|r| ApiError::invalid(r.body_text()))?;
    let Query(query) = query.map_err(|r| ApiError::invalid(r.body_text()))?;
    let Some(dir) = &state.config.slot_save_path else {
        return Err(ApiError::new(
            ErrorType::NotSupported,
            "This server does not support slots action. Start it with `--slot-save-path`",
        ));
    };
    let n_slots = state.model()?.n_slots;
    // Answers name the slot as the client did (-1, 5); the action goes to the slot it wraps to.
    let (named, id_slot) = slot_index(&id_slot, n_slots).ok_or_else(invalid_slot)?;
    let action = query.get("action").map_or("", String::as_str);
    let (action, filename) = match action {
        "save" | "restore" => {
            let filename = filename(&Body::parse(&body)?)?;
            let path = dir.join(&filename);
            let action = if action == "save" {
                SlotAction::Save { id_slot, path }
            } else {
                SlotAction::Restore { id_slot, path }
            };
            (action, filename)
        }
        "erase" => (SlotAction::Erase { id_slot }, String::new()),
        _ => return Err(ApiError::invalid("Invalid action")),
    };
    let done = state.engine.slot_action(action).await.map_err(slot_error)?;
    Ok(Json(match done {
        SlotActionDone::Saved {
            n_saved,
            n_written,
            ms,
        } => json!({
            "id_slot": named,
            "filename": filename,
            "n_saved": n_saved,
            "n_written": n_written,
            "timings": { "save_ms": ms },
        }),
        SlotActionDone::Restored {
            n_restored,
            n_read,
            ms,
        } => json!({
            "id_slot": named,
            "filename": filename,
            "n_restored": n_restored,
            "n_read": n_read,
            "timings": { "restore_ms": ms },
        }),
        SlotActionDone::Erased { n_erased } => json!({
            "id_slot": named,
            "n_erased": n_erased,
        }),
    }))
}

fn invalid_slot() -> ApiError {
    ApiError::invalid("Invalid slot ID")
}

fn slot_error(e: SlotActionError) -> ApiError {
    let kind = match e {
        SlotActionError::InvalidSlot | SlotActionError::Restore(_) => ErrorType::InvalidRequest,
        SlotActionError::Save => ErrorType::Server,
        SlotActionError::Stopped => ErrorType::Unavailable,
    };
    ApiError::new(kind, e.to_string())
}

/// The slot an id names, as llama-server reads it: `std::stoi` (leading blanks, a sign,
/// digits, anything after them ignored; nothing or past `int` is invalid), then wrapped around
/// the slots as an unsigned number, so that -1 is the last slot. The id as read, and the slot.
fn slot_index(text: &str, n_slots: u32) -> Option<(i32, usize)> {
    let text = text.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (negative, rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    if digits == 0 || n_slots == 0 {
        return None;
    }
    let magnitude: i64 = rest[..digits].parse().ok()?;
    let id = i32::try_from(if negative { -magnitude } else { magnitude }).ok()?;
    Some((id, (i64::from(id) as u64 % u64::from(n_slots)) as usize))
}

/// The body's `filename`: required, a string, and a plain file name.
fn filename(body: &Body) -> Result<String, ApiError> {
    match body.0.get("filename") {
        None => Err(ApiError::invalid(key_not_found("filename"))),
        Some(Value::String(name)) if valid_filename(name) => Ok(name.clone()),
        Some(Value::String(_)) => Err(ApiError::invalid("Invalid filename")),
        Some(other) => Err(ApiError::invalid(type_mismatch("string", other))),
    }
}

/// llama.cpp's `fs_validate_filename` without subfolders: a name that stays inside the folder
/// and means the same file on every system (no separators, no `..`, no characters Windows
/// refuses or strips, no control characters, at most 255 bytes).
fn valid_filename(name: &str) -> bool {
    let forbidden = |c: char| {
        matches!(c,
            '\0'..='\x1f' | '\x7f' | '\u{80}'..='\u{9f}'
            | '\u{ff0e}' | '\u{2215}' | '\u{2216}' | '\u{fffd}' | '\u{feff}'
            | ':' | '*' | '?' | '"' | '<' | '>' | '|' | '/' | '\\')
    };
    !name.is_empty()
        && name.len() <= 255
        && !name.chars().any(forbidden)
        && !name.starts_with(' ')
        && !name.ends_with([' ', '.'])
        && !name.contains("..")
        && Path::new(name).file_name().is_some_and(|f| f == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_stay_in_the_folder() {
        let cases = [
            ("slot0.bin", true),
            ("my prompt cache", true),
            ("ünïcode.bin", true),
            (".hidden", true),
            ("", false),
            (".", false),
            ("..", false),
            ("../etc/passwd", false),
            ("a/b", false),
            ("/abs", false),
            ("a\\b", false),
            ("a..b", false),
            ("trailing.", false),
            (" leading", false),
            ("trailing ", false),
            ("c:drive", false),
            ("what?", false),
            ("tab\there", false),
            ("nul\0byte", false),
            ("fullwidth\u{ff0e}\u{ff0e}", false),
            ("division\u{2215}slash", false),
            ("bom\u{feff}", false),
        ];
        for (name, want) in cases {
            assert_eq!(valid_filename(name), want, "{name:?}");
        }
        assert!(valid_filename(&"a".repeat(255)));
        assert!(!valid_filename(&"a".repeat(256)));
    }

    #[test]
    fn slot_ids_read_as_stoi_and_wrap_around() {
        let cases = [
            ("0", 4, Some((0, 0))),
            ("3", 4, Some((3, 3))),
            ("5", 4, Some((5, 1))),
            ("-1", 4, Some((-1, 3))),
            ("-1", 1, Some((-1, 0))),
            (" 2", 4, Some((2, 2))),
            ("+2", 4, Some((2, 2))),
            ("2abc", 4, Some((2, 2))),
            ("abc", 4, None),
            ("", 4, None),
            ("-", 4, None),
            ("2147483648", 4, None),
            ("99999999999999999999", 4, None),
        ];
        for (text, n_slots, want) in cases {
            assert_eq!(slot_index(text, n_slots), want, "{text:?} of {n_slots}");
        }
    }
}
