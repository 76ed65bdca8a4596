//! The SLA report: incidents, mean times to acknowledge and resolve, SLA
//! compliance and breaches over a time range, grouped by service, priority
//! or rule, with the most recurring problems. A backend sums each group's
//! rows ([`GroupSums`]); what the sums mean is decided here, once.
use jiff::Timestamp;
use serde::Serialize;

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
    /// Of the incidents, those people reported (the rest came from alerts).
    pub reported: u64,
    pub alert_born: u64,
    /// Published reviews, and of them those published within
    /// `reviews.due_within` of the incident's resolution.
    pub reviews_published: u64,
    pub reviews_on_time: u64,
    /// Action items of these incidents: done, and open past their due date
    /// at the end of the range.
    pub action_items_done: u64,
    pub action_items_overdue: u64,
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

/// What a backend counts for one group of incidents created in the range.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupSums {
    pub incidents: u64,
    pub acknowledged: u64,
    /// Over acknowledged incidents: acknowledged_at - created_at, summed.
    pub ack_ms_sum: i64,
    pub resolved: u64,
    /// Over resolved incidents: resolved_at - created_at, summed.
    pub resolve_ms_sum: i64,
    pub respond_met: u64,
    pub respond_breaches: u64,
    pub resolved_unacknowledged: u64,
    pub resolve_met: u64,
    pub resolve_breaches: u64,
    pub reported: u64,
    pub reviews_published: u64,
    pub reviews_on_time: u64,
    pub action_items_done: u64,
    pub action_items_overdue: u64,
}

impl GroupSums {
    fn add(&mut self, o: &GroupSums) {
        self.incidents += o.incidents;
        self.acknowledged += o.acknowledged;
        self.ack_ms_sum += o.ack_ms_sum;
        self.resolved += o.resolved;
        self.resolve_ms_sum += o.resolve_ms_sum;
        self.respond_met += o.respond_met;
        self.respond_breaches += o.respond_breaches;
        self.resolved_unacknowledged += o.resolved_unacknowledged;
        self.resolve_met += o.resolve_met;
        self.resolve_breaches += o.resolve_breaches;
        self.reported += o.reported;
        self.reviews_published += o.reviews_published;
        self.reviews_on_time += o.reviews_on_time;
        self.action_items_done += o.action_items_done;
        self.action_items_overdue += o.action_items_overdue;
    }
}

impl ReportRow {
    /// A resolution nobody acknowledged settles the respond clock as not met.
    pub fn from_sums(key: String, s: &GroupSums) -> ReportRow {
        let mean = |sum: i64, n: u64| (n > 0).then(|| sum as f64 / n as f64 / 1000.0);
        ReportRow {
            key,
            incidents: s.incidents,
            acknowledged: s.acknowledged,
            resolved: s.resolved,
            mtta_seconds: mean(s.ack_ms_sum, s.acknowledged),
            mttr_seconds: mean(s.resolve_ms_sum, s.resolved),
            respond_compliance_percent: percent(s.respond_met, s.respond_breaches + s.resolved_unacknowledged),
            resolve_compliance_percent: percent(s.resolve_met, s.resolve_breaches),
            respond_breaches: s.respond_breaches,
            resolve_breaches: s.resolve_breaches,
            resolved_unacknowledged: s.resolved_unacknowledged,
            reported: s.reported,
            alert_born: s.incidents.saturating_sub(s.reported),
            reviews_published: s.reviews_published,
            reviews_on_time: s.reviews_on_time,
            action_items_done: s.action_items_done,
            action_items_overdue: s.action_items_overdue,
        }
    }
}

impl SlaReport {
    /// The report of these groups' sums: groups by incidents, most first,
    /// then a total over all of them.
    pub fn assemble(
        (from, to): (Timestamp, Timestamp),
        group_by: ReportGroup,
        groups: Vec<(String, GroupSums)>,
        top_problems: Vec<RecurringProblem>,
    ) -> SlaReport {
        let mut all = GroupSums::default();
        for (_, s) in &groups {
            all.add(s);
        }
        let mut groups: Vec<ReportRow> = groups.iter().map(|(k, s)| ReportRow::from_sums(k.clone(), s)).collect();
        groups.sort_by(|a, b| b.incidents.cmp(&a.incidents).then_with(|| a.key.cmp(&b.key)));
        SlaReport { from, to, group_by, groups, total: ReportRow::from_sums("total".into(), &all), top_problems }
    }

    /// One line per group and a total line; RFC 4180 quoting.
    pub fn to_csv(&self) -> String {
        let quote = |s: &str| {
            // Text from alert labels must not run as a spreadsheet formula.
            let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{s}") } else { s.to_owned() };
            if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s }
        };
        let num = |v: Option<f64>| v.map(|v| format!("{v:.1}")).unwrap_or_default();
        let mut out = format!(
            "{},incidents,acknowledged,resolved,mtta_seconds,mttr_seconds,respond_compliance_percent,resolve_compliance_percent,respond_breaches,resolve_breaches,resolved_unacknowledged,reported,alert_born,reviews_published,reviews_on_time,action_items_done,action_items_overdue\r\n",
            match self.group_by {
                ReportGroup::Service => "service",
                ReportGroup::Priority => "priority",
                ReportGroup::Rule => "rule",
            }
        );
        for r in self.groups.iter().chain(std::iter::once(&self.total)) {
            out.push_str(&format!(
                "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\r\n",
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
                r.resolved_unacknowledged,
                r.reported,
                r.alert_born,
                r.reviews_published,
                r.reviews_on_time,
                r.action_items_done,
                r.action_items_overdue
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sums() -> GroupSums {
        GroupSums {
            incidents: 2,
            acknowledged: 1,
            ack_ms_sum: 90_000,
            respond_met: 2,
            respond_breaches: 1,
            resolved_unacknowledged: 1,
            ..Default::default()
        }
    }

    #[test]
    fn a_resolution_nobody_acknowledged_is_settled_and_not_met() {
        let g = ReportRow::from_sums("payments".into(), &sums());
        assert_eq!(g.mtta_seconds, Some(90.0));
        assert_eq!(g.mttr_seconds, None);
        assert_eq!(g.respond_compliance_percent, Some(50.0));
        assert_eq!(g.resolve_compliance_percent, None);
    }

    #[test]
    fn groups_sort_by_incidents_and_the_total_adds_them_up() {
        let small =
            GroupSums { incidents: 1, resolved: 1, resolve_ms_sum: 60_000, resolve_met: 1, ..Default::default() };
        let r = SlaReport::assemble(
            (Timestamp::UNIX_EPOCH, Timestamp::UNIX_EPOCH),
            ReportGroup::Service,
            vec![("a".into(), small), ("b".into(), sums())],
            vec![],
        );
        let keys: Vec<&str> = r.groups.iter().map(|g| g.key.as_str()).collect();
        assert_eq!(keys, ["b", "a"]);
        assert_eq!(r.total.incidents, 3);
        assert_eq!(r.total.mttr_seconds, Some(60.0));
        assert_eq!(r.total.resolve_compliance_percent, Some(100.0));
        assert_eq!(r.total.respond_compliance_percent, Some(50.0));
    }

    #[test]
    fn csv_quotes_and_totals() {
        let report = SlaReport::assemble(
            (Timestamp::UNIX_EPOCH, Timestamp::UNIX_EPOCH),
            ReportGroup::Service,
            vec![("pay,ments".into(), sums())],
            vec![],
        );
        let csv = report.to_csv();
        let lines: Vec<&str> = csv.lines().collect();
        assert!(lines[0].starts_with("service,incidents,"));
        assert_eq!(lines[1], "\"pay,ments\",2,1,0,90.0,,50.0,,1,0,1,0,2,0,0,0,0");
        assert!(lines[2].starts_with("total,2,"));
        assert_eq!(report.groups.len(), 1);
    }

    #[test]
    fn csv_keeps_formulas_from_running() {
        let report = SlaReport::assemble(
            (Timestamp::UNIX_EPOCH, Timestamp::UNIX_EPOCH),
            ReportGroup::Rule,
            vec![("=cmd()".into(), sums())],
            vec![],
        );
        assert!(report.to_csv().lines().nth(1).unwrap().starts_with("'=cmd()"));
    }
}
