//! Notification templates (minijinja): shipped defaults for the email
//! subject, text and HTML bodies and the webhook JSON body, each replaceable
//! per notifier by a template file. All are compiled at load, so a broken
//! template fails `alertgate check` and start-up, not a 3 a.m. delivery.
//!
//! Templates render the notification's context (see [`super::Delivery::context`]):
//! `version`, `event`, `event_title`, `notifier`, `incident` (title,
//! priority, state, service, labels, `alerts` with labels and annotations,
//! `sla` clocks, `knownError`), `problem`, `data` of the (first) event;
//! `events`, the list of every event the message covers (one, or more when
//! rate limiting coalesced them), each with `event`, `event_title`,
//! `incident`, `problem`, `data`; and `digest` (`count`) when coalesced.
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use minijinja::{AutoEscape, Environment};
use serde_json::Value;

/// The webhook body's schema version; bumped on incompatible changes.
pub const WEBHOOK_SCHEMA_VERSION: &str = "1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateKind {
    Email,
    Webhook,
}

impl TemplateKind {
    fn names(self) -> &'static [&'static str] {
        match self {
            TemplateKind::Email => &["subject", "text", "html"],
            TemplateKind::Webhook => &["body"],
        }
    }
}

const SUBJECT: &str = r#"{% if digest %}[alertgate] {{ digest.count }} events{% if incident %} on #{{ incident.id }} {{ incident.title }}{% endif %}{% elif incident %}[{{ incident.priority }}] {{ event_title }}: #{{ incident.id }} {{ incident.title }}{% elif problem %}{{ event_title }}: problem #{{ problem.id }} {{ problem.title }}{% elif data.schedule %}{{ event_title }}: {{ data.schedule }}{% if data.incoming %}, {{ data.incoming }} on call{% endif %}{% else %}{{ event_title }}{% endif %}"#;

const TEXT: &str = r#"{% macro one(e) -%}
{% set i = e.incident -%}
{% if i -%}
{{ e.event_title }}: incident #{{ i.id }} {{ i.title }}
  priority {{ i.priority }}, state {{ i.state }}{% if i.service %}, service {{ i.service }}{% endif %}{% if i.assignee %}, assigned to {{ i.assignee }}{% endif %}
{% if e.data.actor %}  {{ DONE[e.data.action] or e.data.to or "changed" }} by {{ e.data.actor }}{% if e.data.comment %}: {{ e.data.comment }}{% endif %}
{% endif -%}
{% if i.url %}  {{ i.url }}
{% endif -%}
{% if e.data.message %}  {{ e.data.message }}
{% endif -%}
{% for kind, c in (i.sla or {})|items %}  SLA {{ kind }}: {{ c.state }}, target {{ c.target or "none at this priority" }}{% if c.breachedAt %}, breached at {{ c.breachedAt }}{% elif c.breachAt %}, breach at {{ c.breachAt }}{% endif %}
{% endfor -%}
{% if i.knownError %}  Known error #{{ i.knownError.problemId }} ({{ i.knownError.title }}); workaround: {{ i.knownError.workaround }}
{% endif -%}
{% for a in i.alerts or [] %}  - {{ a.labels.alertname or a.fingerprint }} ({{ a.status }}){% for k, v in a.labels|items %}{% if k != "alertname" %} {{ k }}={{ v }}{% endif %}{% endfor %}
{% for k, v in a.annotations|items %}      {{ k }}: {{ v }}
{% endfor %}{% if a.generatorURL %}      source: {{ a.generatorURL }}
{% endif %}{% endfor -%}
{% elif e.problem -%}
{{ e.event_title }}: problem #{{ e.problem.id }} {{ e.problem.title }} ({{ e.problem.state }})
{% if e.problem.rootCause %}  root cause: {{ e.problem.rootCause }}
{% endif %}{% if e.problem.workaround %}  workaround: {{ e.problem.workaround }}
{% endif %}  incidents: {{ e.problem.incidentCount }}
{% else -%}
{{ e.event_title }}
{% if e.data.message %}  {{ e.data.message }}
{% endif -%}
{% endif -%}
{%- endmacro -%}
{% if recipient -%}
To {{ recipient.person }}, paged through {{ recipient.via }}:

{% endif -%}
{% if digest -%}
{{ digest.count }} events were coalesced into this message (rate limit of {{ notifier }}):

{% endif -%}
{% for e in events %}{{ one(e) }}
{% endfor -%}
-- 
alertgate"#;

const HTML: &str = r#"{% macro one(e) -%}
{% set i = e.incident -%}
{% if i -%}
<h3>{{ e.event_title }}: {% if i.url %}<a href="{{ i.url }}">incident #{{ i.id }}</a>{% else %}incident #{{ i.id }}{% endif %} {{ i.title }}</h3>
<p>Priority <b>{{ i.priority }}</b>, state <b>{{ i.state }}</b>{% if i.service %}, service {{ i.service }}{% endif %}{% if i.assignee %}, assigned to {{ i.assignee }}{% endif %}</p>
{% if e.data.actor %}<p>{{ (DONE[e.data.action] or e.data.to or "changed")|capitalize }} by <b>{{ e.data.actor }}</b>{% if e.data.comment %}: {{ e.data.comment }}{% endif %}</p>{% endif %}
{% if e.data.message %}<p>{{ e.data.message }}</p>{% endif %}
{% if i.sla %}<table border="1" cellpadding="4" cellspacing="0"><tr><th>SLA</th><th>state</th><th>target</th><th>deadline</th></tr>
{% for kind, c in i.sla|items %}<tr><td>{{ kind }}</td><td>{{ c.state }}</td><td>{{ c.target }}</td><td>{% if c.breachedAt %}breached at {{ c.breachedAt }}{% elif c.breachAt %}breach at {{ c.breachAt }}{% endif %}</td></tr>
{% endfor %}</table>{% endif %}
{% if i.knownError %}<p><b>Known error #{{ i.knownError.problemId }}</b> ({{ i.knownError.title }}). Workaround: {{ i.knownError.workaround }}</p>{% endif %}
<ul>{% for a in i.alerts or [] %}<li><b>{{ a.labels.alertname or a.fingerprint }}</b> ({{ a.status }})
<ul>{% for k, v in a.labels|items %}<li>{{ k }} = {{ v }}</li>{% endfor %}
{% for k, v in a.annotations|items %}<li><i>{{ k }}</i>: {% if k in ["runbook_url", "dashboard_url", "runbook", "dashboard"] %}<a href="{{ v }}">{{ v }}</a>{% else %}{{ v }}{% endif %}</li>{% endfor %}
{% if a.generatorURL %}<li><a href="{{ a.generatorURL }}">source</a></li>{% endif %}</ul></li>{% endfor %}</ul>
{% elif e.problem -%}
<h3>{{ e.event_title }}: problem #{{ e.problem.id }} {{ e.problem.title }} ({{ e.problem.state }})</h3>
{% if e.problem.rootCause %}<p>Root cause: {{ e.problem.rootCause }}</p>{% endif %}
{% if e.problem.workaround %}<p>Workaround: {{ e.problem.workaround }}</p>{% endif %}
{% else %}<h3>{{ e.event_title }}</h3>{% if e.data.message %}<p>{{ e.data.message }}</p>{% endif %}{% endif -%}
{%- endmacro -%}
<html><body>
{% if recipient %}<p>To <b>{{ recipient.person }}</b>, paged through {{ recipient.via }}.</p>{% endif %}
{% if digest %}<p>{{ digest.count }} events were coalesced into this message (rate limit of {{ notifier }}).</p>{% endif %}
{% for e in events %}{{ one(e) }}{% if not loop.last %}<hr>{% endif %}{% endfor %}
<p style="color:#888">alertgate</p>
</body></html>"#;

const BODY: &str = r#"{
  "version": {{ version|tojson }},
  "event": {{ event|tojson }},
  "idempotencyKey": {{ idempotency_key|tojson }},
  "incident": {{ incident|tojson }},
  "problem": {{ problem|tojson }},
  "data": {{ data|tojson }},
  "digest": {{ digest|tojson }},
  "recipient": {{ recipient|tojson }},
  "events": {{ events|tojson }}
}"#;

/// The compiled templates of one notifier.
#[derive(Clone)]
pub struct NotifierTemplates {
    env: Arc<Environment<'static>>,
}

impl std::fmt::Debug for NotifierTemplates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NotifierTemplates")
    }
}

fn error_text(e: &minijinja::Error) -> String {
    let mut msg = e.kind().to_string();
    if let Some(detail) = e.detail() {
        msg.push_str(": ");
        msg.push_str(detail);
    }
    if let Some(line) = e.line() {
        msg.push_str(&format!(" (line {line})"));
    }
    msg
}

/// What a person's action on an incident did, as the emails say it
/// ("acknowledged by alice: looking"); the webhook body has the raw `data`.
fn done_words() -> minijinja::Value {
    let words: BTreeMap<&str, &str> = [
        ("acknowledge", "acknowledged"),
        ("resolve", "resolved"),
        ("reopen", "reopened"),
        ("hold", "put on hold"),
        ("close", "closed"),
    ]
    .into();
    minijinja::Value::from_serialize(words)
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.add_global("DONE", done_words());
    // Only the HTML body escapes; values are data, never templates.
    env.set_auto_escape_callback(|name| if name == "html" { AutoEscape::Html } else { AutoEscape::None });
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
    env
}

impl NotifierTemplates {
    pub fn defaults(kind: TemplateKind) -> Self {
        Self::load(kind, &BTreeMap::new(), Path::new(".")).expect("the shipped templates compile")
    }

    /// The shipped templates, with `overrides` (template name → file,
    /// relative to `base`) in their place.
    pub fn load(kind: TemplateKind, overrides: &BTreeMap<String, String>, base: &Path) -> Result<Self, Vec<String>> {
        let mut env = environment();
        let mut p = Vec::new();
        for name in overrides.keys() {
            if !kind.names().contains(&name.as_str()) {
                p.push(format!("templates.{name}: unknown template (this notifier has {})", kind.names().join(", ")));
            }
        }
        let mut compiled = Vec::new();
        for name in kind.names() {
            let source = match overrides.get(*name) {
                Some(file) => match std::fs::read_to_string(base.join(file)) {
                    Ok(s) => s,
                    Err(e) => {
                        p.push(format!("templates.{name}: cannot read {}: {e}", base.join(file).display()));
                        continue;
                    }
                },
                None => match *name {
                    "subject" => SUBJECT,
                    "text" => TEXT,
                    "html" => HTML,
                    _ => BODY,
                }
                .to_owned(),
            };
            if let Err(e) = crate::rules::template::check_nesting(&source) {
                p.push(format!("templates.{name}: {e}"));
                continue;
            }
            match env.add_template_owned(name.to_string(), source) {
                Ok(()) => compiled.push(*name),
                Err(e) => p.push(format!("templates.{name}: {}", error_text(&e))),
            }
        }
        let t = NotifierTemplates { env: Arc::new(env) };
        // Render once against a sample, so errors that only show at render
        // time (an unknown filter, a bad call) are load errors too.
        for name in compiled {
            if let Err(e) = t.render(name, &sample_context()) {
                p.push(format!("templates.{name}: {e}"));
            }
        }
        if p.is_empty() { Ok(t) } else { Err(p) }
    }

    pub fn render(&self, name: &str, ctx: &Value) -> Result<String, String> {
        let tmpl = self.env.get_template(name).map_err(|e| error_text(&e))?;
        tmpl.render(ctx).map_err(|e| error_text(&e))
    }
}

/// A context with every field, for the load-time render check and `notify test`.
pub fn sample_context() -> Value {
    let mut ctx = sample_event();
    ctx["version"] = WEBHOOK_SCHEMA_VERSION.into();
    ctx["notifier"] = "sample".into();
    ctx["idempotency_key"] = "sample-1".into();
    ctx["digest"] = Value::Null;
    ctx["events"] = Value::Array(vec![sample_event()]);
    ctx
}

pub fn sample_event() -> Value {
    serde_json::json!({
        "event": "incident.triggered",
        "event_title": "Incident triggered",
        "incident": {
            "id": 1, "url": "http://127.0.0.1:9797/incidents/1", "title": "Sample incident", "priority": "P2", "state": "triggered", "service": "sample",
            "rule": "sample", "impact": "medium", "urgency": "high", "assignee": null,
            "labels": {"alertname": "Sample"}, "alertCount": 1, "firingCount": 1, "createdAt": "2026-01-01T00:00:00Z",
            "alerts": [{"fingerprint": "0123456789abcdef", "status": "firing", "labels": {"alertname": "Sample", "severity": "warning"},
                        "annotations": {"summary": "a sample alert", "runbook_url": "https://runbooks.example/sample"},
                        "generatorURL": "http://127.0.0.1:9090/graph"}],
            "sla": {"respond": {"state": "running", "target": "30m", "dueAt": "2026-01-01T00:15:00Z", "nextMilestoneAt": "2026-01-01T00:15:00Z", "breachAt": "2026-01-01T00:30:00Z", "breachedAt": null}},
            "knownError": {"problemId": 1, "title": "Sample problem", "workaround": "restart it"}
        },
        "problem": null,
        "data": {},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_templates_render_every_field() {
        let email = NotifierTemplates::defaults(TemplateKind::Email);
        let ctx = sample_context();
        let subject = email.render("subject", &ctx).unwrap();
        assert_eq!(subject, "[P2] Incident triggered: #1 Sample incident");
        let text = email.render("text", &ctx).unwrap();
        for want in [
            "priority P2",
            // The deadline itself, not the next warning before it.
            "SLA respond: running, target 30m, breach at 2026-01-01T00:30:00Z",
            "workaround: restart it",
            "runbook_url: https://runbooks.example/sample",
            "severity=warning",
            "  http://127.0.0.1:9797/incidents/1\n",
        ] {
            assert!(text.contains(want), "{want:?} not in\n{text}");
        }
        let html = email.render("html", &ctx).unwrap();
        // Escaped as HTML ("/" as "&#x2f;"), which browsers read back as the URL.
        assert!(html.contains(r#"<a href="https:&#x2f;&#x2f;runbooks.example&#x2f;sample">"#), "{html}");
        assert!(
            html.contains(r#"<a href="http:&#x2f;&#x2f;127.0.0.1:9797&#x2f;incidents&#x2f;1">incident #1</a>"#),
            "{html}"
        );
        let webhook = NotifierTemplates::defaults(TemplateKind::Webhook);
        let body: Value = serde_json::from_str(&webhook.render("body", &ctx).unwrap()).unwrap();
        assert_eq!(body["version"], WEBHOOK_SCHEMA_VERSION);
        assert_eq!(body["incident"]["title"], "Sample incident");
    }

    #[test]
    fn emails_say_who_acted_and_why() {
        let email = NotifierTemplates::defaults(TemplateKind::Email);
        let mut ctx = sample_context();
        let data = serde_json::json!({"action": "acknowledge", "from": "triggered", "to": "acknowledged",
                                      "actor": "alice", "comment": "looking <now>"});
        ctx["event"] = "incident.acknowledged".into();
        ctx["events"][0]["event"] = "incident.acknowledged".into();
        ctx["events"][0]["event_title"] = "Incident acknowledged".into();
        ctx["data"] = data.clone();
        ctx["events"][0]["data"] = data;
        let text = email.render("text", &ctx).unwrap();
        assert!(text.contains("  acknowledged by alice: looking <now>\n"), "{text}");
        let html = email.render("html", &ctx).unwrap();
        assert!(html.contains("<p>Acknowledged by <b>alice</b>: looking &lt;now&gt;</p>"), "{html}");
        // No actor (a triggered incident): no such line.
        let plain = email.render("text", &sample_context()).unwrap();
        assert!(!plain.contains(" by "), "{plain}");
    }

    #[test]
    fn label_text_is_data_and_html_is_escaped() {
        let email = NotifierTemplates::defaults(TemplateKind::Email);
        let mut ctx = sample_context();
        ctx["incident"]["title"] = Value::String("{{ 7*7 }} <script>".into());
        ctx["events"][0]["incident"]["title"] = Value::String("{{ 7*7 }} <script>".into());
        assert!(email.render("subject", &ctx).unwrap().contains("{{ 7*7 }} <script>"));
        let html = email.render("html", &ctx).unwrap();
        assert!(html.contains("{{ 7*7 }} &lt;script&gt;"), "{html}");
    }

    #[test]
    fn overrides_are_checked_at_load() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("subject.j2"), "{{ incident.title").unwrap();
        std::fs::write(dir.path().join("text.j2"), "{{ incident.title|nosuchfilter }}").unwrap();
        let overrides: BTreeMap<String, String> = [
            ("subject".to_owned(), "subject.j2".to_owned()),
            ("text".to_owned(), "text.j2".to_owned()),
            ("body".to_owned(), "x.j2".to_owned()),
        ]
        .into();
        let errs = NotifierTemplates::load(TemplateKind::Email, &overrides, dir.path()).unwrap_err();
        assert!(errs.iter().any(|e| e.starts_with("templates.body: unknown template")), "{errs:#?}");
        assert!(errs.iter().any(|e| e.starts_with("templates.subject:") && e.contains("syntax")), "{errs:#?}");
        assert!(errs.iter().any(|e| e.starts_with("templates.text:") && e.contains("nosuchfilter")), "{errs:#?}");
    }

    #[test]
    fn a_digest_renders_each_event() {
        let email = NotifierTemplates::defaults(TemplateKind::Email);
        let mut ctx = sample_context();
        let one = sample_event();
        ctx["events"] = serde_json::json!([one.clone(), one]);
        ctx["digest"] = serde_json::json!({ "count": 2 });
        let subject = email.render("subject", &ctx).unwrap();
        assert!(subject.starts_with("[alertgate] 2 events"), "{subject}");
        let text = email.render("text", &ctx).unwrap();
        assert_eq!(text.matches("Incident triggered: incident #1").count(), 2, "{text}");
        assert!(text.contains("2 events were coalesced"));
    }
}
