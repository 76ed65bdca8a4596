//! Problems: formed by problem rules from recurring incidents or opened by
//! hand, linked to their incidents, and edited through their lifecycle.
use super::sql::{Connection, OptionalExtension, params};
use jiff::Timestamp;
use serde_json::Value;

use super::state::{SYSTEM, WriterState, entry};
use super::{StoreError, ms, outbox, ts};
use crate::engine::notify;
use crate::engine::problems::{self, EditError, KeyHistory, ProblemStamp, Recurrence};
use crate::model::LabelSet;
use crate::model::incident::TimelineEvent;
use crate::model::problem::{Problem, ProblemState};
use crate::store::query::{LinkedIncident, NewProblem, ProblemDetail, ProblemQuery, ProblemUpdate};

const COLUMNS: &str = "p.id, p.title, p.key, p.rule, p.state, p.root_cause, p.workaround, p.created_by, p.created_at,
    p.updated_at, p.resolved_at, p.closed_at,
    (SELECT count(*) FROM problem_incidents pi WHERE pi.problem_id = p.id),
    (SELECT min(i.created_at) FROM problem_incidents pi JOIN incidents i ON i.id = pi.incident_id WHERE pi.problem_id = p.id),
    (SELECT max(i.created_at) FROM problem_incidents pi JOIN incidents i ON i.id = pi.incident_id WHERE pi.problem_id = p.id)";

fn from_row(r: &super::sql::Row<'_>) -> super::sql::Result<Result<Problem, StoreError>> {
    let state: String = r.get(4)?;
    let times: [Option<i64>; 6] = [r.get(8)?, r.get(9)?, r.get(10)?, r.get(11)?, r.get(13)?, r.get(14)?];
    let (id, title, key, rule, root_cause, workaround, created_by, count) =
        (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(5)?, r.get(6)?, r.get(7)?, r.get::<i64>(12)?);
    Ok((|| {
        let t = |i: usize| times[i].map(ts).transpose();
        Ok(Problem {
            id,
            title,
            key,
            rule,
            state: ProblemState::parse(&state)
                .ok_or_else(|| StoreError::Corrupt(format!("problem state {state:?}")))?,
            root_cause,
            workaround,
            incident_count: count as u64,
            first_occurrence: t(4)?,
            last_occurrence: t(5)?,
            created_by,
            created_at: t(0)?.unwrap_or_default(),
            updated_at: t(1)?.unwrap_or_default(),
            resolved_at: t(2)?,
            closed_at: t(3)?,
        })
    })())
}

pub(super) fn list(c: &Connection, q: &ProblemQuery) -> Result<Vec<Problem>, StoreError> {
    // The states are the enum's own words, never the caller's text.
    let states = match q.states.is_empty() {
        true => "1 = 1".to_owned(),
        false => crate::model::sql_in("p.state", q.states.iter().map(|s| s.as_str())),
    };
    let rows: Vec<Result<Problem, StoreError>> = c
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM problems p
             WHERE {states} AND (CAST(?1 AS BIGINT) IS NULL OR p.id < ?1)
             ORDER BY p.id DESC LIMIT ?2"
        ))?
        .query_map(params![q.before, q.limit as i64], from_row)?
        .collect::<Result<_, _>>()?;
    rows.into_iter().collect()
}

pub(super) fn get(c: &Connection, id: i64) -> Result<Option<Problem>, StoreError> {
    c.prepare_cached(&format!("SELECT {COLUMNS} FROM problems p WHERE p.id = ?1"))?
        .query_row([id], from_row)
        .optional()?
        .transpose()
}

pub(super) fn detail(c: &Connection, id: i64) -> Result<Option<ProblemDetail>, StoreError> {
    let Some(problem) = get(c, id)? else { return Ok(None) };
    let incidents = c
        .prepare_cached(
            "SELECT i.id, i.title, i.state, i.priority, i.service, i.created_at, pi.linked_at, pi.linked_by
             FROM problem_incidents pi JOIN incidents i ON i.id = pi.incident_id WHERE pi.problem_id = ?1
             ORDER BY i.id DESC LIMIT 1000",
        )?
        .query_map([id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get::<i64>(5)?, r.get::<i64>(6)?, r.get(7)?))
        })?
        .map(|row| {
            let (id, title, state, priority, service, created, linked, linked_by) = row?;
            Ok(LinkedIncident {
                id,
                title,
                state,
                priority,
                service,
                created_at: ts(created)?,
                linked_at: ts(linked)?,
                linked_by,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let timeline = c
        .prepare_cached("SELECT at, actor, kind, message, data FROM problem_events WHERE problem_id = ?1 ORDER BY id")?
        .query_map([id], |r| Ok((r.get::<i64>(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get::<Option<String>>(4)?)))?
        .map(|row| {
            let (at, actor, kind, message, data) = row?;
            Ok(TimelineEvent {
                at: ts(at)?,
                recorded_at: None,
                actor,
                kind,
                message,
                data: data.and_then(|d| serde_json::from_str(&d).ok()).unwrap_or(Value::Null),
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(Some(ProblemDetail { problem, incidents, timeline }))
}

/// The problems an incident is linked to, newest first.
pub(super) fn of_incident(c: &Connection, incident_id: i64) -> Result<Vec<Problem>, StoreError> {
    let rows: Vec<Result<Problem, StoreError>> = c
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM problems p JOIN problem_incidents x ON x.problem_id = p.id
             WHERE x.incident_id = ?1 ORDER BY p.id DESC"
        ))?
        .query_map([incident_id], from_row)?
        .collect::<Result<_, _>>()?;
    rows.into_iter().collect()
}

fn problem_entry(tx: &Connection, id: i64, actor: &str, e: crate::engine::sla::Entry) -> Result<i64, StoreError> {
    problem_event(tx, id, e.at, actor, e.kind, &e.message, e.data)
}

fn problem_event(
    tx: &Connection,
    id: i64,
    at: Timestamp,
    actor: &str,
    kind: &str,
    message: &str,
    data: Value,
) -> Result<i64, StoreError> {
    tx.prepare_cached(
        "INSERT INTO problem_events (problem_id, at, actor, kind, message, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![id, ms(at), actor, kind, message, data.to_string()])?;
    Ok(tx.last_insert_rowid()?)
}

impl WriterState {
    /// A new incident: record its key under every problem rule it matches,
    /// link it to the active problem of that key, or open one when the key
    /// has recurred often enough within the rule's window.
    pub(super) fn link_problems(
        &mut self,
        tx: &Connection,
        incident_id: i64,
        title: &str,
        fields: &LabelSet,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let rules = self.rules.clone();
        for rule in rules.problem_rules.iter().filter(|r| r.matches(fields)) {
            let Some(key) = rule.key(fields) else { continue };
            tx.prepare_cached(
                "INSERT INTO incident_problem_keys (key, incident_id, created_at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
            )?
            .execute(params![key, incident_id, ms(now)])?;
            let active: Option<i64> = tx
                .prepare_cached(&format!(
                    "SELECT id FROM problems WHERE key = ?1 AND {} ORDER BY id DESC LIMIT 1",
                    ProblemState::active_sql("state")
                ))?
                .query_row([&key], |r| r.get(0))
                .optional()?;
            let in_window: Vec<(i64, bool)> = if active.is_some() {
                Vec::new()
            } else {
                // Merged incidents are looked up row by row (a scalar
                // subquery by id), never by a join a planner might turn
                // into a scan of every incident.
                let rows: Vec<(i64, bool, bool)> = tx
                    .prepare_cached(
                        "SELECT incident_id,
                                EXISTS (SELECT 1 FROM problem_incidents pi JOIN problems p ON p.id = pi.problem_id
                                        WHERE pi.incident_id = k.incident_id AND p.key = ?1),
                                (SELECT m.merged_into IS NOT NULL FROM incidents m WHERE m.id = k.incident_id)
                         FROM incident_problem_keys k WHERE key = ?1 AND created_at >= ?2 ORDER BY incident_id",
                    )?
                    .query_map(params![key, ms(problems::window_start(rule, now))], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })?
                    .collect::<Result<_, _>>()?;
                rows.into_iter().filter(|(_, _, merged)| !merged).map(|(id, linked, _)| (id, linked)).collect()
            };
            let (problem_title, message, recurring) =
                match problems::on_incident(rule, &key, title, &KeyHistory { active, in_window }) {
                    Recurrence::Link(pid) => {
                        self.link(tx, pid, incident_id, SYSTEM, now)?;
                        continue;
                    }
                    Recurrence::Nothing => continue,
                    Recurrence::Open { title, message, incidents } => (title, message, incidents),
                };
            tx.prepare_cached(
                "INSERT INTO problems (title, key, rule, state, created_by, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?6, ?4, ?5, ?5)",
            )?
            .execute(params![
                problem_title,
                key,
                rule.name,
                SYSTEM,
                ms(now),
                ProblemState::INITIAL.as_str()
            ])?;
            let pid = tx.last_insert_rowid()?;
            let event_id = problem_entry(tx, pid, SYSTEM, problems::opened_by_rule(rule, &key, &message, now))?;
            tracing::info!(problem = pid, rule = %rule.name, %key, "problem opened");
            for iid in recurring {
                self.link(tx, pid, iid, SYSTEM, now)?;
            }
            self.notify_problem(tx, pid, "problem.opened", event_id, now)?;
        }
        Ok(())
    }

    /// Link an incident to a problem (once); a known error's workaround is
    /// written into the incident's timeline.
    pub(super) fn link(
        &self,
        tx: &Connection,
        problem_id: i64,
        incident_id: i64,
        actor: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let n = tx
            .prepare_cached(
                "INSERT INTO problem_incidents (problem_id, incident_id, linked_at, linked_by) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
            )?
            .execute(params![problem_id, incident_id, ms(now), actor])?;
        if n == 0 {
            return Ok(false);
        }
        let (title, state, workaround): (String, String, Option<String>) = tx
            .prepare_cached("SELECT title, state, workaround FROM problems WHERE id = ?1")?
            .query_row([problem_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        let parsed =
            ProblemState::parse(&state).ok_or_else(|| StoreError::Corrupt(format!("problem state {state:?}")))?;
        entry(tx, incident_id, actor, problems::linked_entry(problem_id, &title, parsed, workaround.as_deref(), now))?;
        problem_entry(tx, problem_id, actor, problems::incident_linked(incident_id, now))?;
        tx.prepare_cached("UPDATE problems SET updated_at = ?2 WHERE id = ?1")?
            .execute(params![problem_id, ms(now)])?;
        Ok(true)
    }

    pub(super) fn create_problem(
        &mut self,
        tx: &Connection,
        p: &NewProblem,
        actor: &str,
        now: Timestamp,
    ) -> Result<i64, StoreError> {
        for iid in &p.incidents {
            super::state::current_state(tx, *iid)?;
        }
        tx.prepare_cached(
            "INSERT INTO problems (title, key, rule, state, root_cause, workaround, created_by, created_at, updated_at)
             VALUES (?1, ?2, NULL, ?7, ?3, ?4, ?5, ?6, ?6)",
        )?
        .execute(params![
            p.title,
            p.key,
            p.root_cause,
            p.workaround,
            actor,
            ms(now),
            ProblemState::INITIAL.as_str()
        ])?;
        let pid = tx.last_insert_rowid()?;
        let event_id = problem_entry(tx, pid, actor, problems::opened_by_hand(p.key.as_deref(), now))?;
        for iid in &p.incidents {
            self.link(tx, pid, *iid, actor, now)?;
        }
        self.notify_problem(tx, pid, "problem.opened", event_id, now)?;
        Ok(pid)
    }

    pub(super) fn update_problem(
        &mut self,
        tx: &Connection,
        id: i64,
        u: &ProblemUpdate,
        actor: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let before = get(tx, id)?.ok_or_else(|| StoreError::NotFound(format!("no problem {id}")))?;
        // Decided here, in the writer, so a concurrent edit cannot slip between.
        let outcome = problems::edit(&before, u).map_err(|e| match e {
            EditError::Transition(e) => StoreError::Conflict(e.to_string()),
            e @ EditError::KnownErrorWithoutWorkaround => StoreError::Invalid(e.to_string()),
        })?;
        let Some(outcome) = outcome else { return Ok(()) };
        let state = outcome.state;
        let column = match outcome.stamp {
            ProblemStamp::Nothing => "",
            ProblemStamp::Resolved => ", resolved_at = ?6",
            ProblemStamp::Closed => ", closed_at = ?6",
            ProblemStamp::Reopened => ", resolved_at = NULL",
        };
        tx.execute(
            &format!(
                "UPDATE problems SET title = ?2, root_cause = ?3, workaround = ?4, state = ?5, updated_at = ?6{column}
                 WHERE id = ?1"
            ),
            params![id, outcome.title, outcome.root_cause, outcome.workaround, state.as_str(), ms(now)],
        )?;
        let event_id = problem_entry(tx, id, actor, problems::updated(&outcome, now))?;
        tracing::info!(problem = id, from = %before.state, to = %state, actor, "problem updated");
        if outcome.became_known_error {
            self.notify_problem(tx, id, "problem.known_error", event_id, now)?;
        }
        Ok(())
    }

    pub(super) fn link_incidents(
        &mut self,
        tx: &Connection,
        problem_id: i64,
        incidents: &[i64],
        actor: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let p = get(tx, problem_id)?.ok_or_else(|| StoreError::NotFound(format!("no problem {problem_id}")))?;
        problems::may_link(problem_id, p.state).map_err(|e| StoreError::Conflict(e.to_string()))?;
        for iid in incidents {
            super::state::current_state(tx, *iid)?;
            self.link(tx, problem_id, *iid, actor, now)?;
        }
        Ok(())
    }

    /// Problem events go to the notifiers of its incidents' rules.
    /// Write `e` to a problem's timeline and tell of it as `name`.
    pub(super) fn notify_problem_entry(
        &self,
        tx: &Connection,
        problem_id: i64,
        name: &str,
        e: crate::engine::sla::Entry,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let event_id = problem_entry(tx, problem_id, SYSTEM, e)?;
        self.notify_problem(tx, problem_id, name, event_id, now)
    }

    fn notify_problem(
        &self,
        tx: &Connection,
        problem_id: i64,
        name: &str,
        event_id: i64,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let rules: Vec<String> = tx
            .prepare_cached(
                "SELECT DISTINCT i.rule FROM problem_incidents pi JOIN incidents i ON i.id = pi.incident_id
                 WHERE pi.problem_id = ?1",
            )?
            .query_map([problem_id], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let rules = notify::problem_rules(&self.rules.incident_rules, &rules);
        let origin = notify::problem_origin(problem_id, event_id);
        let deliveries =
            notify::deliveries(name, &origin, None, &rules, &self.audience.subscriptions, &self.audience.directory);
        if deliveries.is_empty() {
            return Ok(());
        }
        let problem = get(tx, problem_id)?.ok_or_else(|| StoreError::NotFound(format!("no problem {problem_id}")))?;
        self.outbox_dirty.set(true);
        outbox::enqueue(tx, name, (None, Some(problem_id)), &deliveries, &notify::problem_payload(name, &problem), now)
    }
}
