//! The common cases of an ingest batch in a few statements: a firing
//! alert sent again while its open incidents count it as firing
//! (Prometheus re-sends every firing alert every minute), and a new firing
//! alert joining its group's open incident. What they need is read for
//! the rest of the batch at once and what they change is written at once,
//! so on PostgreSQL a batch of a hundred such alerts costs a few round
//! trips instead of a thousand. Any other update goes the one-by-one way,
//! after what was gathered is written and what was read is forgotten, so
//! the outcome is exactly that of taking the batch one by one. On
//! PostgreSQL only (see [`Bulk::new`]).
use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use jiff::Timestamp;

use super::rows::incident_is_open;
use super::sql::{Column, Connection, ForRows};
use super::state::{SYSTEM, WriterState, alert_state, view};
use super::{StoreError, expiry, ms, ts};
use crate::engine::plan::LabelPlan;
use crate::engine::{self, AlertRouting, FiringDecision, GroupView, IncidentView, mute, opening, timeline};
use crate::model::alert::{episode, expiry_check_by, observe};
use crate::model::incident::IncidentState;
use crate::model::{Alert, AlertState, AlertStatus, AlertUpdate, LabelSet, Observation};

/// Updates that went one by one in a batch before the rest of it does too:
/// a batch of mostly unusual updates is not read ahead again and again.
const MAX_ONE_BY_ONE: usize = 8;

/// A stored alert (by fingerprint), with how many open incidents hold it
/// and how many of those count it as not firing, and the version of its
/// row that was read (PostgreSQL's `xmin`: see [`RESEND_ALERTS`]; SQLite
/// has one writer, whose rows nothing else changes). On PostgreSQL both counts
/// come from one walk of the alert's links (a lateral join), each link's
/// incident looked up by its id (see [`incident_is_open`]). `OFFSET 0`
/// keeps that lookup one subplan.
static READ_ALERTS: LazyLock<ForRows> = LazyLock::new(|| {
    let alert = "a.id, a.fingerprint, a.status, a.starts_at, a.ends_at, a.expired, a.expires_at";
    let open = IncidentState::open_sql("i.state");
    let incidents = "FROM incident_alerts m JOIN incidents i ON i.id = m.incident_id WHERE m.alert_id = a.id";
    ForRows {
        sqlite: format!(
            "SELECT {alert}, (SELECT count(*) {incidents} AND {open}),
                (SELECT count(*) {incidents} AND {open} AND m.firing = 0), 0
             FROM alerts a WHERE a.fingerprint = ?1"
        ),
        postgres: format!(
            "SELECT {alert}, o.open, o.not_firing, a.xmin::text::bigint FROM alerts a
             CROSS JOIN LATERAL (
                SELECT count(*) FILTER (WHERE l.open) AS open, count(*) FILTER (WHERE l.open AND l.firing = 0) AS not_firing
                FROM (SELECT m.firing, {} AS open
                      FROM incident_alerts m WHERE m.alert_id = a.id OFFSET 0) AS l) AS o
             WHERE a.fingerprint = ANY(?1::text[])",
            incident_is_open("m.incident_id")
        ),
    }
});

/// A group (rule, key): its latest incident (or the one it was merged
/// into) with that incident's labels, and whether alerts are held pending.
static READ_GROUPS: LazyLock<ForRows> = LazyLock::new(|| {
    let latest = |rule: &str, key: &str| {
        format!(
            "SELECT COALESCE(t.id, i.id) AS id, COALESCE(t.state, i.state) AS state,
                COALESCE(t.created_at, i.created_at) AS created_at,
                CASE WHEN t.id IS NULL THEN i.resolved_at ELSE t.resolved_at END AS resolved_at,
                COALESCE(t.labels, i.labels) AS labels
             FROM incidents i LEFT JOIN incidents t ON t.id = i.merged_into
             WHERE i.rule = {rule} AND i.group_key = {key}
             ORDER BY i.rule DESC, i.group_key DESC, i.id DESC LIMIT 1"
        )
    };
    let pending = |rule: &str, key: &str| {
        format!("EXISTS (SELECT 1 FROM pending_groups p WHERE p.rule = {rule} AND p.group_key = {key})")
    };
    ForRows {
        sqlite: format!(
            "SELECT l.id, l.state, l.created_at, l.resolved_at, l.labels, {}, ?1, ?2
             FROM (SELECT 1) AS one LEFT JOIN ({}) AS l ON 1 = 1",
            pending("?1", "?2"),
            latest("?1", "?2")
        ),
        postgres: format!(
            "SELECT l.id, l.state, l.created_at, l.resolved_at, l.labels, {}, k.rule, k.group_key
             FROM unnest(?1::text[], ?2::text[]) AS k(rule, group_key) LEFT JOIN LATERAL ({}) AS l ON true",
            pending("k.rule", "k.group_key"),
            latest("k.rule", "k.group_key")
        ),
    }
});

static INSERT_ALERTS: LazyLock<ForRows> = LazyLock::new(|| {
    let into = "INSERT INTO alerts (fingerprint, source, status, labels, annotations, starts_at, ends_at,
        expires_at, generator_url, first_seen, last_seen, occurrences, raw)";
    ForRows {
        sqlite: format!(
            "{into} VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, 1, ?11) RETURNING id, fingerprint"
        ),
        postgres: format!(
            "{into} SELECT v.fingerprint, v.source, v.status, v.labels, v.annotations, v.starts_at, v.ends_at,
                v.expires_at, v.generator_url, v.seen, v.seen, 1, v.raw
             FROM unnest(?1::text[], ?2::text[], ?3::text[], ?4::text[], ?5::text[], ?6::bigint[], ?7::bigint[],
                ?8::bigint[], ?9::text[], ?10::bigint[], ?11::text[])
                AS v(fingerprint, source, status, labels, annotations, starts_at, ends_at, expires_at,
                     generator_url, seen, raw)
             RETURNING id, fingerprint"
        ),
    }
});

/// A firing alert sent again: only what can change is written, so the
/// status and source indexes are left alone; the source stays that of the
/// first delivery. Written only where the row is still the version read
/// (`?9`), as the batch may run beside another gateway's (see `shared.rs`);
/// the ids written come back.
static RESEND_ALERTS: LazyLock<ForRows> = LazyLock::new(|| ForRows {
    sqlite: "UPDATE alerts SET labels = ?2, annotations = ?3, starts_at = ?4, expires_at = ?5,
            generator_url = COALESCE(?6, generator_url), last_seen = ?7, occurrences = occurrences + 1, raw = ?8
         WHERE id = ?1 AND ?9 = 0 RETURNING id"
        .into(),
    postgres: "UPDATE alerts SET labels = v.labels, annotations = v.annotations, starts_at = v.starts_at,
            expires_at = v.expires_at, generator_url = COALESCE(v.generator_url, alerts.generator_url),
            last_seen = v.seen, occurrences = alerts.occurrences + 1, raw = v.raw
         FROM unnest(?1::bigint[], ?2::text[], ?3::text[], ?4::bigint[], ?5::bigint[], ?6::text[], ?7::bigint[],
            ?8::text[], ?9::bigint[]) AS v(id, labels, annotations, starts_at, expires_at, generator_url, seen, raw,
            version)
         WHERE alerts.id = v.id AND alerts.xmin = v.version::text::xid
         RETURNING alerts.id"
        .into(),
});

static LINK_ALERTS: LazyLock<ForRows> = LazyLock::new(|| ForRows {
    sqlite: "INSERT INTO incident_alerts (incident_id, alert_id, rule, firing, joined_at) VALUES (?1, ?2, ?3, 1, ?4)"
        .into(),
    postgres:
        "INSERT INTO incident_alerts (incident_id, alert_id, rule, firing, joined_at)
         SELECT v.incident_id, v.alert_id, v.rule, 1, v.joined_at
         FROM unnest(?1::bigint[], ?2::bigint[], ?3::text[], ?4::bigint[]) AS v(incident_id, alert_id, rule, joined_at)"
            .into(),
});

/// Alerts joined an incident: its counts, common labels and auto-resolve.
static COUNT_JOINED: LazyLock<ForRows> = LazyLock::new(|| ForRows {
    sqlite: "UPDATE incidents SET alert_count = alert_count + ?2, firing_count = firing_count + ?2, labels = ?3,
            auto_resolve_at = CASE WHEN ?5 <> 0 THEN NULL ELSE auto_resolve_at END, updated_at = ?4 WHERE id = ?1"
        .into(),
    postgres: "UPDATE incidents SET alert_count = incidents.alert_count + v.joined,
            firing_count = incidents.firing_count + v.joined, labels = v.labels,
            auto_resolve_at = CASE WHEN v.cancels <> 0 THEN NULL ELSE incidents.auto_resolve_at END,
            updated_at = v.now
         FROM unnest(?1::bigint[], ?2::bigint[], ?3::text[], ?4::bigint[], ?5::bigint[])
            AS v(id, joined, labels, now, cancels)
         WHERE incidents.id = v.id"
        .into(),
});

static RECORD_EVENTS: LazyLock<ForRows> = LazyLock::new(|| ForRows {
    sqlite: "INSERT INTO incident_events (incident_id, at, actor, kind, message, data, recorded_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?2)"
        .into(),
    postgres: "INSERT INTO incident_events (incident_id, at, actor, kind, message, data, recorded_at)
         SELECT v.incident_id, v.at, v.actor, v.kind, v.message, v.data, v.at
         FROM unnest(?1::bigint[], ?2::bigint[], ?3::text[], ?4::text[], ?5::text[], ?6::text[])
            AS v(incident_id, at, actor, kind, message, data)"
        .into(),
});

/// What is known of the stored alerts and groups of the batch: read ahead,
/// and kept as the gathered writes will leave them.
#[derive(Default)]
struct Known {
    /// By fingerprint; `None` for one never stored.
    alerts: HashMap<String, Option<KnownAlert>>,
    groups: HashMap<(String, String), KnownGroup>,
    /// Incidents alerts joined in this batch: their labels after the joins.
    incident_labels: HashMap<i64, LabelSet>,
}

struct KnownAlert {
    id: i64,
    /// The version of its row read (see [`READ_ALERTS`]).
    version: i64,
    state: AlertState,
    expires_at: Option<Timestamp>,
    open_incidents: i64,
    open_not_firing: i64,
}

struct KnownGroup {
    latest: Option<IncidentView>,
    labels: Option<String>,
    pending: bool,
}

/// Writes gathered and not yet sent, in the order they were decided.
#[derive(Default)]
struct Gathered<'b> {
    resent: Vec<Resent<'b>>,
    created: Vec<Created<'b>>,
    /// (incident, index into `created`, rule)
    joins: Vec<(i64, usize, String)>,
    /// Incidents joined, in first-joined order, with how many joined.
    joined: Vec<(i64, i64)>,
    events: Vec<(i64, crate::engine::sla::Entry)>,
    fingerprints: HashSet<&'b str>,
}

struct Resent<'b> {
    id: i64,
    version: i64,
    alert: &'b Alert,
    labels: &'b str,
    annotations: &'b str,
    starts_at: Timestamp,
    check_expiry_by: Option<Timestamp>,
    /// The time of its request (a batch may hold several).
    seen: Timestamp,
}

struct Created<'b> {
    alert: &'b Alert,
    source: String,
    labels: &'b str,
    annotations: &'b str,
}

/// An observed alert of a batch with what was worked out for it before:
/// its labels and annotations as stored, and its plan under the writer's
/// rules.
#[derive(Clone, Copy)]
pub(super) struct Item<'b> {
    pub update: &'b AlertUpdate,
    pub encoded: Option<&'b (String, String)>,
    pub plan: Option<&'b LabelPlan>,
}

/// An ingest batch's common cases, gathered; see the module.
pub(super) struct Bulk<'b> {
    known: Known,
    gathered: Gathered<'b>,
    one_by_one: usize,
}

impl<'b> Bulk<'b> {
    /// Bulk for a batch on `tx`: on PostgreSQL only. SQLite runs in
    /// process, where a statement costs no round trip; there the
    /// bookkeeping of reading ahead cost more than it saved (the load
    /// tool, alternating binaries: 2 to 13 % more CPU per alert).
    pub fn new(tx: &Connection) -> Bulk<'b> {
        let one_by_one = if tx.is_postgres() { 0 } else { MAX_ONE_BY_ONE };
        Bulk { known: Known::default(), gathered: Gathered::default(), one_by_one }
    }

    /// Take the first of `rest` (an observed alert) in bulk if it is one of
    /// the common cases: what it was to the stored alert. `None` when it
    /// must go one by one: call [`Bulk::give_way`] first.
    pub fn take(
        &mut self,
        tx: &Connection,
        ws: &mut WriterState,
        rest: &[Item<'b>],
        now: Timestamp,
    ) -> Result<Option<Observation>, StoreError> {
        let Some(&Item { update: AlertUpdate::Observe(a), encoded: Some((labels, annotations)), plan: Some(plan) }) =
            rest.first()
        else {
            return Ok(None);
        };
        if self.one_by_one >= MAX_ONE_BY_ONE {
            return Ok(None);
        }
        let fp = a.fingerprint.as_str();
        if self.gathered.fingerprints.contains(fp) {
            // Sent twice in one batch: the first must be written before the second is decided.
            self.write(tx, now)?;
            self.known.alerts.remove(fp);
        }
        if !self.known.alerts.contains_key(fp) {
            self.read_alerts(tx, rest)?;
        }
        let (labels, annotations) = (labels.as_str(), annotations.as_str());
        let taken = match self.known.alerts.get(fp) {
            Some(Some(_)) => self.resend(ws, a, plan, labels, annotations, now),
            Some(None) if tx.resends_only() => return Err(StoreError::NeedsWriteLock),
            Some(None) => self.join(tx, ws, rest, plan, a, labels, annotations, now)?,
            None => None,
        };
        if taken.is_some() {
            self.gathered.fingerprints.insert(fp);
        }
        Ok(taken)
    }

    /// The next update goes one by one: write what was gathered, and
    /// forget what was read, which it may change.
    pub fn give_way(&mut self, tx: &Connection, now: Timestamp) -> Result<(), StoreError> {
        self.write(tx, now)?;
        self.known = Known::default();
        self.one_by_one += 1;
        Ok(())
    }

    /// Write what was gathered: the batch is over.
    pub fn finish(mut self, tx: &Connection, now: Timestamp) -> Result<(), StoreError> {
        self.write(tx, now)
    }

    /// A firing alert sent again, every open incident holding it counting
    /// it as firing: its routing was decided when it joined; only its row
    /// changes.
    fn resend(
        &mut self,
        ws: &mut WriterState,
        a: &'b Alert,
        plan: &LabelPlan,
        labels: &'b str,
        annotations: &'b str,
        now: Timestamp,
    ) -> Option<Observation> {
        let known = self.known.alerts.get_mut(a.fingerprint.as_str())?.as_mut()?;
        let obs = observe(Some(&known.state), a);
        let repeat = engine::on_observation(obs, a.status) == AlertRouting::Firing { newly: false };
        if !repeat || known.open_not_firing > 0 || mute::routes(false, known.open_incidents > 0) {
            return None;
        }
        let e = episode(&known.state, a, obs, now);
        known.state.starts_at = e.starts_at;
        let check_expiry_by = expiry_check_by(known.expires_at, a.expires_at);
        ws.fired(&a.fingerprint, plan, false);
        self.gathered.resent.push(Resent {
            id: known.id,
            version: known.version,
            alert: a,
            labels,
            annotations,
            starts_at: e.starts_at,
            check_expiry_by,
            seen: now,
        });
        Some(obs)
    }

    /// A new firing alert, not muted, whose every route joins the open
    /// incident of its group (no alert of the group held pending).
    #[allow(clippy::too_many_arguments)]
    fn join(
        &mut self,
        tx: &Connection,
        ws: &mut WriterState,
        rest: &[Item<'b>],
        plan: &LabelPlan,
        a: &'b Alert,
        labels: &'b str,
        annotations: &'b str,
        now: Timestamp,
    ) -> Result<Option<Observation>, StoreError> {
        let obs = observe(None, a);
        if engine::on_observation(obs, a.status) != (AlertRouting::Firing { newly: true })
            || ws.mute_reason(&a.fingerprint, &a.labels, &plan.targets, now).is_some()
        {
            return Ok(None);
        }
        let rules = ws.rules.clone();
        let in_maintenance = |(rule, _): &(&crate::rules::incident::IncidentRule, &str)| {
            if ws.maintenance.is_empty() { None } else { ws.maintenance_for(rule, &a.labels, &a.annotations, now) }
        };
        let routes = match engine::route_firing(plan.routes(&rules).collect(), None, in_maintenance) {
            engine::Routing::Muted(_) => return Ok(None),
            engine::Routing::Route(routes) => routes,
        };
        let mut joins = Vec::with_capacity(routes.len());
        for (rule, key) in routes {
            let key = (rule.name.clone(), key.to_owned());
            if !self.known.groups.contains_key(&key) {
                self.read_groups(tx, &rules, rest, &key)?;
            }
            let Some(group) = self.known.groups.get(&key) else { return Ok(None) };
            if group.pending {
                return Ok(None);
            }
            let view = GroupView { own_incident: None, latest_for_key: group.latest, pending: None };
            let FiringDecision::Join(id) = engine::firing(rule, &view, true, now) else { return Ok(None) };
            if joins.iter().any(|(joined, _)| *joined == id) {
                // Two routes lead to one incident (one key's incident was
                // merged into the other's): linked once, as one by one.
                continue;
            }
            if let std::collections::hash_map::Entry::Vacant(e) = self.known.incident_labels.entry(id) {
                let text = group.labels.as_deref().unwrap_or("{}");
                e.insert(serde_json::from_str(text).map_err(|e| StoreError::Corrupt(e.to_string()))?);
            }
            joins.push((id, rule.name.clone()));
        }
        ws.fired(&a.fingerprint, plan, true);
        let created = self.gathered.created.len();
        self.gathered.created.push(Created { alert: a, source: a.source.to_string(), labels, annotations });
        for (id, rule) in joins {
            let current = self.known.incident_labels.remove(&id).unwrap_or_default();
            self.known.incident_labels.insert(id, timeline::common_labels(current, &a.labels));
            match self.gathered.joined.iter_mut().find(|(i, _)| *i == id) {
                Some((_, n)) => *n += 1,
                None => self.gathered.joined.push((id, 1)),
            }
            self.gathered.joins.push((id, created, rule));
            self.gathered.events.push((id, timeline::alert_joined(&a.fingerprint, &a.labels, now)));
        }
        self.known.alerts.remove(a.fingerprint.as_str());
        Ok(Some(obs))
    }

    /// Read the stored alerts of `rest` not known yet: on PostgreSQL all
    /// of them in one statement, on SQLite (in process) the first only.
    fn read_alerts(&mut self, tx: &Connection, rest: &[Item<'b>]) -> Result<(), StoreError> {
        let mut wanted: Vec<Option<&str>> = Vec::new();
        let mut seen = HashSet::new();
        for u in rest.iter().take(if tx.is_postgres() { rest.len() } else { 1 }) {
            if let AlertUpdate::Observe(a) = u.update {
                let fp = a.fingerprint.as_str();
                if !self.known.alerts.contains_key(fp) && !self.gathered.fingerprints.contains(fp) && seen.insert(fp) {
                    wanted.push(Some(fp));
                }
            }
        }
        for fp in wanted.iter().flatten() {
            self.known.alerts.insert((*fp).to_owned(), None);
        }
        let mut rows = Vec::with_capacity(wanted.len());
        tx.for_rows(&READ_ALERTS, &[Column::Text(wanted)], |r| {
            rows.push((
                r.get::<i64>(0)?,
                r.get::<String>(1)?,
                r.get::<String>(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get::<Option<i64>>(6)?,
                r.get(7)?,
                r.get(8)?,
                r.get(9)?,
            ));
            Ok(())
        })?;
        for (id, fp, status, starts, ends, expired, expires_at, open_incidents, open_not_firing, version) in rows {
            let state = alert_state(&status, starts, ends, expired)?;
            let expires_at = expires_at.map(ts).transpose()?;
            let known = KnownAlert { id, version, state, expires_at, open_incidents, open_not_firing };
            self.known.alerts.insert(fp, Some(known));
        }
        Ok(())
    }

    /// Read the group `first`, and on PostgreSQL also the groups the other
    /// new alerts of `rest` route to, in one statement.
    fn read_groups(
        &mut self,
        tx: &Connection,
        rules: &crate::rules::RuleSet,
        rest: &[Item<'b>],
        first: &(String, String),
    ) -> Result<(), StoreError> {
        let mut wanted = vec![first.clone()];
        if tx.is_postgres() {
            let mut seen: HashSet<(String, String)> = wanted.iter().cloned().collect();
            for item in rest {
                let (AlertUpdate::Observe(a), Some(plan)) = (item.update, item.plan) else { continue };
                if a.status != AlertStatus::Firing
                    || !matches!(self.known.alerts.get(a.fingerprint.as_str()), Some(None))
                {
                    continue;
                }
                for (rule, key) in plan.routes(rules) {
                    let key = (rule.name.clone(), key.to_owned());
                    if !self.known.groups.contains_key(&key) && seen.insert(key.clone()) {
                        wanted.push(key);
                    }
                }
            }
        }
        let names = Column::Text(wanted.iter().map(|(r, _)| Some(r.as_str())).collect());
        let keys = Column::Text(wanted.iter().map(|(_, k)| Some(k.as_str())).collect());
        let mut rows = Vec::with_capacity(wanted.len());
        tx.for_rows(&READ_GROUPS, &[names, keys], |r| {
            let latest = (r.get::<Option<i64>>(0)?, r.get::<Option<String>>(1)?, r.get::<Option<i64>>(2)?, r.get(3)?);
            rows.push((
                latest,
                r.get::<Option<String>>(4)?,
                r.get::<bool>(5)?,
                r.get::<String>(6)?,
                r.get::<String>(7)?,
            ));
            Ok(())
        })?;
        for ((id, state, created, resolved), labels, pending, rule, key) in rows {
            let latest = match (id, state, created) {
                (Some(id), Some(state), Some(created)) => Some(view(id, &state, created, resolved)?),
                _ => None,
            };
            self.known.groups.insert((rule, key), KnownGroup { latest, labels, pending });
        }
        Ok(())
    }

    /// Send what was gathered: new alerts, then alerts sent again, links,
    /// incident counts and timeline entries, a statement each.
    fn write(&mut self, tx: &Connection, now: Timestamp) -> Result<(), StoreError> {
        let g = std::mem::take(&mut self.gathered);
        if g.created.is_empty() && g.resent.is_empty() {
            return Ok(());
        }
        let ids = insert_created(tx, &g.created, now)?;
        write_resent(tx, &g.resent)?;
        check_expiries(tx, &g, &ids)?;
        let mut alert_ids = Vec::with_capacity(g.joins.len());
        for (_, created, _) in &g.joins {
            let fp = g.created[*created].alert.fingerprint.as_str();
            let id = ids.get(fp).ok_or_else(|| StoreError::Corrupt(format!("alert {fp} was not stored")))?;
            alert_ids.push(Some(*id));
        }
        tx.for_rows(
            &LINK_ALERTS,
            &[
                Column::Int(g.joins.iter().map(|(i, _, _)| Some(*i)).collect()),
                Column::Int(alert_ids),
                Column::Text(g.joins.iter().map(|(_, _, r)| Some(r.as_str())).collect()),
                Column::Int(vec![Some(ms(now)); g.joins.len()]),
            ],
            |_| Ok(()),
        )?;
        let mut labels = Vec::with_capacity(g.joined.len());
        for (id, _) in &g.joined {
            let set = self.known.incident_labels.get(id).cloned().unwrap_or_default();
            labels.push(serde_json::to_string(&set).map_err(|e| StoreError::Corrupt(e.to_string()))?);
        }
        let cancels = i64::from(opening::alert_firing_cancels_auto_resolve(true));
        tx.for_rows(
            &COUNT_JOINED,
            &[
                Column::Int(g.joined.iter().map(|(i, _)| Some(*i)).collect()),
                Column::Int(g.joined.iter().map(|(_, n)| Some(*n)).collect()),
                Column::Text(labels.iter().map(|l| Some(l.as_str())).collect()),
                Column::Int(vec![Some(ms(now)); g.joined.len()]),
                Column::Int(vec![Some(cancels); g.joined.len()]),
            ],
            |_| Ok(()),
        )?;
        let data: Vec<String> = g.events.iter().map(|(_, e)| e.data.to_string()).collect();
        tx.for_rows(
            &RECORD_EVENTS,
            &[
                Column::Int(g.events.iter().map(|(i, _)| Some(*i)).collect()),
                Column::Int(g.events.iter().map(|(_, e)| Some(ms(e.at))).collect()),
                Column::Text(vec![Some(SYSTEM); g.events.len()]),
                Column::Text(g.events.iter().map(|(_, e)| Some(e.kind)).collect()),
                Column::Text(g.events.iter().map(|(_, e)| Some(e.message.as_str())).collect()),
                Column::Text(data.iter().map(|d| Some(d.as_str())).collect()),
            ],
            |_| Ok(()),
        )?;
        Ok(())
    }
}

/// Insert the new alerts; their ids by fingerprint.
fn insert_created(
    tx: &Connection,
    created: &[Created<'_>],
    now: Timestamp,
) -> Result<HashMap<String, i64>, StoreError> {
    let mut ids = HashMap::with_capacity(created.len());
    tx.for_rows(
        &INSERT_ALERTS,
        &[
            Column::Text(created.iter().map(|c| Some(c.alert.fingerprint.as_str())).collect()),
            Column::Text(created.iter().map(|c| Some(c.source.as_str())).collect()),
            Column::Text(created.iter().map(|c| Some(c.alert.status.as_str())).collect()),
            Column::Text(created.iter().map(|c| Some(c.labels)).collect()),
            Column::Text(created.iter().map(|c| Some(c.annotations)).collect()),
            Column::Int(created.iter().map(|c| Some(ms(c.alert.starts_at))).collect()),
            Column::Int(created.iter().map(|c| c.alert.ends_at.map(ms)).collect()),
            Column::Int(created.iter().map(|c| c.alert.expires_at.map(ms)).collect()),
            Column::Text(created.iter().map(|c| c.alert.generator_url.as_deref()).collect()),
            Column::Int(vec![Some(ms(now)); created.len()]),
            Column::Text(created.iter().map(|c| Some(c.alert.raw.get())).collect()),
        ],
        |r| {
            ids.insert(r.get(1)?, r.get(0)?);
            Ok(())
        },
    )?;
    Ok(ids)
}

/// New alerts with an expiry, and alerts sent again whose expiry came
/// earlier or is new, have the sweep check them by then.
fn check_expiries(tx: &Connection, g: &Gathered<'_>, ids: &HashMap<String, i64>) -> Result<(), StoreError> {
    let mut checks = Vec::new();
    for c in &g.created {
        let Some(at) = c.alert.expires_at else { continue };
        let fp = c.alert.fingerprint.as_str();
        let id = ids.get(fp).ok_or_else(|| StoreError::Corrupt(format!("alert {fp} was not stored")))?;
        checks.push((*id, at));
    }
    checks.extend(g.resent.iter().filter_map(|r| Some((r.id, r.check_expiry_by?))));
    if checks.is_empty() {
        return Ok(());
    }
    expiry::check_by(tx, &checks)
}

/// Write the alerts sent again. One whose row changed since it was read
/// was written by a batch beside this one: this batch is applied again
/// alone (holding the lock alone, no row changes under it).
fn write_resent(tx: &Connection, resent: &[Resent<'_>]) -> Result<(), StoreError> {
    let mut written = 0;
    tx.for_rows(
        &RESEND_ALERTS,
        &[
            Column::Int(resent.iter().map(|r| Some(r.id)).collect()),
            Column::Text(resent.iter().map(|r| Some(r.labels)).collect()),
            Column::Text(resent.iter().map(|r| Some(r.annotations)).collect()),
            Column::Int(resent.iter().map(|r| Some(ms(r.starts_at))).collect()),
            Column::Int(resent.iter().map(|r| r.alert.expires_at.map(ms)).collect()),
            Column::Text(resent.iter().map(|r| r.alert.generator_url.as_deref()).collect()),
            Column::Int(resent.iter().map(|r| Some(ms(r.seen))).collect()),
            Column::Text(resent.iter().map(|r| Some(r.alert.raw.get())).collect()),
            Column::Int(resent.iter().map(|r| Some(r.version)).collect()),
        ],
        |_| {
            written += 1;
            Ok(())
        },
    )?;
    match (written == resent.len(), tx.resends_only()) {
        (true, _) => Ok(()),
        (false, true) => Err(StoreError::NeedsWriteLock),
        (false, false) => Err(StoreError::Corrupt(format!(
            "{} of {} alerts sent again changed while the write lock was held",
            resent.len() - written,
            resent.len()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::sql::tests::PgDatabase;
    use crate::store::sqlite::sql::{numbered, params};

    /// The plans a batch beside others keeps (`shared.rs`), made here on
    /// empty tables, the worst case: each still finds alerts by an index,
    /// and would with a million rows.
    #[test]
    fn kept_plans_made_on_empty_tables_find_alerts_by_index() {
        let (_db, session) = PgDatabase::create();
        crate::store::sqlite::schema::migrate_postgres(&session).unwrap();
        session.batch_execute(&format!("BEGIN; {}", super::super::shared::BESIDE_OTHERS_PLANS)).unwrap();
        let statements = [
            (&READ_ALERTS.postgres, "'{a,b}'", "Index Scan using alerts_fingerprint_key"),
            (
                &RESEND_ALERTS.postgres,
                "'{1}', '{a}', '{a}', '{1}', '{1}', '{a}', '{1}', '{a}', '{1}'",
                "Index Scan using alerts_pkey",
            ),
        ];
        let c = session.connection();
        for (i, (statement, args, lookup)) in statements.into_iter().enumerate() {
            session.batch_execute(&format!("PREPARE kept{i} AS {}", numbered(statement))).unwrap();
            let plan: Vec<String> = c
                .prepare(&format!("EXPLAIN (COSTS OFF) EXECUTE kept{i}({args})"))
                .unwrap()
                .query_map(params![], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            let plan = plan.join("\n");
            assert!(plan.contains(lookup), "{plan}");
            for walk in ["Seq Scan", "Bitmap", "Hash", "Merge"] {
                assert!(!plan.contains(walk), "{walk} in\n{plan}");
            }
        }
    }
}
