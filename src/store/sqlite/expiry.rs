//! The expiry sweep's checks (migration 16): when the sweep must look at a
//! firing alert again, no later than its expiry. What moves them is
//! decided in `model::alert` (`expiry_check_by`, `check_expiry`); this
//! writes them.
use std::sync::LazyLock;

use jiff::Timestamp;

use super::sql::{Column, Connection, ForRows, params};
use super::{StoreError, ms};

/// The sweep checks each alert by its instant at the latest: a check
/// already due earlier stays.
static CHECK_BY: LazyLock<ForRows> = LazyLock::new(|| {
    let keep_earlier = "ON CONFLICT (alert_id) DO UPDATE SET check_at = excluded.check_at
         WHERE excluded.check_at < expiry_checks.check_at";
    ForRows {
        sqlite: format!("INSERT INTO expiry_checks (alert_id, check_at) VALUES (?1, ?2) {keep_earlier}"),
        postgres: format!(
            "INSERT INTO expiry_checks (alert_id, check_at)
             SELECT v.alert_id, v.check_at FROM unnest(?1::bigint[], ?2::bigint[]) AS v(alert_id, check_at)
             {keep_earlier}"
        ),
    }
});

/// Check each `(alert, instant)` by then at the latest; an alert appears
/// once (PostgreSQL's upsert touches a row once per statement).
pub(super) fn check_by(tx: &Connection, checks: &[(i64, Timestamp)]) -> Result<(), StoreError> {
    tx.for_rows(
        &CHECK_BY,
        &[
            Column::Int(checks.iter().map(|(id, _)| Some(*id)).collect()),
            Column::Int(checks.iter().map(|(_, at)| Some(ms(*at))).collect()),
        ],
        |_| Ok(()),
    )?;
    Ok(())
}

/// The alert was re-sent since its check: look again at its new expiry.
pub(super) fn check_later(tx: &Connection, alert: i64, at: Timestamp) -> Result<(), StoreError> {
    tx.prepare_cached("UPDATE expiry_checks SET check_at = ?2 WHERE alert_id = ?1")?.execute(params![alert, ms(at)])?;
    Ok(())
}

/// The alert expired, resolved or has no expiry: nothing to look at.
pub(super) fn drop_check(tx: &Connection, alert: i64) -> Result<(), StoreError> {
    tx.prepare_cached("DELETE FROM expiry_checks WHERE alert_id = ?1")?.execute(params![alert])?;
    Ok(())
}
