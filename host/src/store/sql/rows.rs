//! The column lists the core selects and how their rows decode into the store's
//! row types. The lists are macros so that statements can `concat!` them into
//! `&'static str`s instead of formatting SQL on every call.

use anyhow::{Context, Result};

use super::conn::{SqlRow, SqlRowExt};
use crate::store::{DeliveryRow, DeliveryState, StoredEventRow, UnixMs};

/// The columns `event_from_row` reads, qualified with `e.` so that they also serve
/// a join: `FROM events e`.
macro_rules! event_columns {
    () => {
        "e.id, e.plugin, e.event_id, e.kind, e.subject, e.payload, e.received_at"
    };
}

/// The columns `delivery_from_row` reads, from `deliveries`.
macro_rules! delivery_columns {
    () => {
        "id, event_id, plugin, state, attempts, next_at, last_error, updated_at"
    };
}

pub(crate) use {delivery_columns, event_columns};

/// How many columns `event_columns!` lists.
pub const EVENT_COLUMN_COUNT: usize = 7;

/// The event in `event_columns!` starting at column `first`.
pub fn event_from_row(row: &dyn SqlRow, first: usize) -> Result<StoredEventRow> {
    Ok(StoredEventRow {
        id: row.required_int(first)?,
        plugin: row.required_text(first + 1)?,
        event_id: row.required_text(first + 2)?,
        kind: row.required_text(first + 3)?,
        subject: row.text(first + 4)?,
        payload: row.required_text(first + 5)?,
        received_at: row.required_int(first + 6)? as UnixMs,
    })
}

pub fn delivery_from_row(row: &dyn SqlRow) -> Result<DeliveryRow> {
    let state = row.required_text(3)?;
    Ok(DeliveryRow {
        id: row.required_int(0)?,
        event: row.required_int(1)?,
        plugin: row.required_text(2)?,
        state: DeliveryState::parse(&state).unwrap_or(DeliveryState::Pending),
        attempts: row.required_int(4)? as u32,
        next_attempt_at: row.required_int(5)? as UnixMs,
        last_error: row.text(6)?,
        updated_at: row.required_int(7)? as UnixMs,
    })
}

/// A request's headers as stored: a JSON array of `[name, value]`.
pub fn headers_to_json(headers: &[(String, String)]) -> Result<String> {
    serde_json::to_string(headers).context("encoding headers")
}

pub fn headers_from_json(text: &str) -> Result<Vec<(String, String)>> {
    serde_json::from_str(text).context("decoding stored headers")
}
