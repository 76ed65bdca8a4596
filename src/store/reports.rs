//! SLA reports: incidents, mean times to acknowledge and resolve, SLA
//! compliance and breaches over a time range, grouped by service, priority
//! or rule, with the most recurring problems.
use jiff::Timestamp;
use rusqlite::{Connection, params};
use serde::Serialize;

use super::{StoreError, ms};
use crate::sla::clock::ClockState;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReportGroup {
    Service,
    Priority,
    Rule,
}

impl ReportGroup {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "service" => Some(ReportGroup::Service),
            "priority" => Some(ReportGroup::Priority),
            "rule" => Some(ReportGroup::Rule),
            _ => None,
        }
    }

    fn column(self) -> &'static str {
        match self {
            ReportGroup::Service => "COALESCE(i.service, '')",
            ReportGroup::Priority => "i.priority",
            ReportGroup::Rule => "i.rule",
        }
    }
}

/// One row of the report.
#[derive(Debug, Clone, Default, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReportRow {
    pub key: String,
    pub incidents: u64,
    pub acknowledged: u64,
    pub resolved: u64,
    /// Mean time to acknowledge (wall clock), over acknowledged incidents.
    pub mtta_seconds: Option<f64>,
    /// Mean time to resolve (wall clock), over resolved incidents.
    pub mttr_seconds: Option<f64>,
    /// Met respond clocks among the settled ones (met, breached, or stopped
    /// by a resolution nobody acknowledged), in percent; `None` when none is settled.
    pub respond_compliance_percent: Option<f64>,
    pub resolve_compliance_percent: Option<f64>,
    pub respond_breaches: u64,
    pub resolve_breaches: u64,
    /// Incidents resolved before anyone acknowledged them (with a respond
    /// clock): no promise to respond was kept, none broken by the clock.
    pub resolved_unacknowledged: u64,
    #[serde(skip)]
    ack_ms_sum: i64,
    #[serde(skip)]
    resolve_ms_sum: i64,
    #[serde(skip)]
    met: [u64; 2],
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecurringProblem {
    pub id: i64,
    pub title: String,
    pub state: String,
    /// Its incidents created in the range.
    pub incidents: u64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SlaReport {
    pub from: Timestamp,
    pub to: Timestamp,
    pub group_by: ReportGroup,
    pub groups: Vec<ReportRow>,
    pub total: ReportRow,
    pub top_problems: Vec<RecurringProblem>,
}

fn percent(met: u64, not_met: u64) -> Option<f64> {
    (met + not_met > 0).then(|| (met as f64 * 1000.0 / (met + not_met) as f64).round() / 10.0)
}

impl ReportRow {
    fn finish(&mut self) {
        self.mtta_seconds = (self.acknowledged > 0).then(|| self.ack_ms_sum as f64 / self.acknowledged as f64 / 1000.0);
        self.mttr_seconds = (self.resolved > 0).then(|| self.resolve_ms_sum as f64 / self.resolved as f64 / 1000.0);
        self.respond_compliance_percent = percent(self.met[0], self.respond_breaches + self.resolved_unacknowledged);
        self.resolve_compliance_percent = percent(self.met[1], self.resolve_breaches);
    }

    fn add(&mut self, o: &ReportRow) {
        self.incidents += o.incidents;
        self.acknowledged += o.acknowledged;
        self.resolved += o.resolved;
        self.ack_ms_sum += o.ack_ms_sum;
        self.resolve_ms_sum += o.resolve_ms_sum;
        self.respond_breaches += o.respond_breaches;
        self.resolve_breaches += o.resolve_breaches;
        self.resolved_unacknowledged += o.resolved_unacknowledged;
        self.met[0] += o.met[0];
        self.met[1] += o.met[1];
    }
}

/// Incidents created in `[from, to)`.
pub(super) fn sla(c: &Connection, from: Timestamp, to: Timestamp, group: ReportGroup) -> Result<SlaReport, StoreError> {
    let col = group.column();
    let mut rows: std::collections::BTreeMap<String, ReportRow> = Default::default();
    let mut stmt = c.prepare(&format!(
        "SELECT {col}, count(*), count(i.acknowledged_at), COALESCE(sum(i.acknowledged_at - i.created_at), 0),
                count(i.resolved_at), COALESCE(sum(i.resolved_at - i.created_at), 0)
         FROM incidents i WHERE i.created_at >= ?1 AND i.created_at < ?2 GROUP BY 1"
    ))?;
    for row in stmt.query_map(params![ms(from), ms(to)], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, i64>(4)?,
            r.get::<_, i64>(5)?,
        ))
    })? {
        let (key, n, acked, ack_sum, resolved, resolve_sum) = row?;
        let e = rows.entry(key.clone()).or_insert_with(|| ReportRow { key, ..Default::default() });
        e.incidents = n as u64;
        e.acknowledged = acked as u64;
        e.ack_ms_sum = ack_sum;
        e.resolved = resolved as u64;
        e.resolve_ms_sum = resolve_sum;
    }
    let mut stmt = c.prepare(&format!(
        "SELECT {col}, s.kind, sum({}), sum({}), sum({})
         FROM incidents i JOIN sla_clocks s ON s.incident_id = i.id
         WHERE i.created_at >= ?1 AND i.created_at < ?2 GROUP BY 1, 2",
        ClockState::Met.sql("s"),
        ClockState::Breached.sql("s"),
        ClockState::ResolvedUnacknowledged.sql("s"),
    ))?;
    for row in stmt.query_map(params![ms(from), ms(to)], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, i64>(4)?,
        ))
    })? {
        let (key, kind, met, breached, unanswered) = row?;
        let e = rows.entry(key.clone()).or_insert_with(|| ReportRow { key, ..Default::default() });
        if kind == "respond" {
            e.met[0] = met as u64;
            e.respond_breaches = breached as u64;
            e.resolved_unacknowledged = unanswered as u64;
        } else {
            e.met[1] = met as u64;
            e.resolve_breaches = breached as u64;
        }
    }
    let mut total = ReportRow { key: "total".into(), ..Default::default() };
    let mut groups: Vec<ReportRow> = rows.into_values().collect();
    for g in &mut groups {
        total.add(g);
        g.finish();
    }
    total.finish();
    groups.sort_by(|a, b| b.incidents.cmp(&a.incidents).then_with(|| a.key.cmp(&b.key)));
    let top_problems = c
        .prepare(
            "SELECT p.id, p.title, p.state, count(*) FROM problem_incidents pi
             JOIN problems p ON p.id = pi.problem_id JOIN incidents i ON i.id = pi.incident_id
             WHERE i.created_at >= ?1 AND i.created_at < ?2 GROUP BY p.id ORDER BY 4 DESC, p.id LIMIT 10",
        )?
        .query_map(params![ms(from), ms(to)], |r| {
            Ok(RecurringProblem {
                id: r.get(0)?,
                title: r.get(1)?,
                state: r.get(2)?,
                incidents: r.get::<_, i64>(3)? as u64,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(SlaReport { from, to, group_by: group, groups, total, top_problems })
}

impl SlaReport {
    /// One line per group and a total line; RFC 4180 quoting.
    pub fn to_csv(&self) -> String {
        let quote = |s: &str| {
            // Text from alert labels must not run as a spreadsheet formula.
            let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{s}") } else { s.to_owned() };
            if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s }
        };
        let num = |v: Option<f64>| v.map(|v| format!("{v:.1}")).unwrap_or_default();
        let mut out = format!(
            "{},incidents,acknowledged,resolved,mtta_seconds,mttr_seconds,respond_compliance_percent,resolve_compliance_percent,respond_breaches,resolve_breaches,resolved_unacknowledged\r\n",
            match self.group_by {
                ReportGroup::Service => "service",
                ReportGroup::Priority => "priority",
                ReportGroup::Rule => "rule",
            }
        );
        for r in self.groups.iter().chain(std::iter::once(&self.total)) {
            out.push_str(&format!(
                "{},{},{},{},{},{},{},{},{},{},{}\r\n",
                quote(&r.key),
                r.incidents,
                r.acknowledged,
                r.resolved,
                num(r.mtta_seconds),
                num(r.mttr_seconds),
                num(r.respond_compliance_percent),
                num(r.resolve_compliance_percent),
                r.respond_breaches,
                r.resolve_breaches,
                r.resolved_unacknowledged
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_totals() {
        let mut g = ReportRow {
            key: "pay,ments".into(),
            incidents: 2,
            acknowledged: 1,
            ack_ms_sum: 90_000,
            ..Default::default()
        };
        g.met = [2, 0];
        g.respond_breaches = 1;
        g.resolved_unacknowledged = 1;
        g.finish();
        assert_eq!(g.mtta_seconds, Some(90.0));
        // Resolved before anyone acknowledged: settled, and not met.
        assert_eq!(g.respond_compliance_percent, Some(50.0));
        let report = SlaReport {
            from: Timestamp::UNIX_EPOCH,
            to: Timestamp::UNIX_EPOCH,
            group_by: ReportGroup::Service,
            total: ReportRow { key: "total".into(), ..g.clone() },
            groups: vec![g],
            top_problems: vec![],
        };
        let csv = report.to_csv();
        let lines: Vec<&str> = csv.lines().collect();
        assert!(lines[0].starts_with("service,incidents,"));
        assert_eq!(lines[1], "\"pay,ments\",2,1,0,90.0,,50.0,,1,0,1");
        assert!(lines[2].starts_with("total,2,"));
    }
}
