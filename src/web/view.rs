//! Templates and the small formatting helpers pages share.
use minijinja::{Environment, Value as JValue};
use serde_json::{Value, json};

use super::{Console, Viewer, assets};

/// Every template, embedded in the binary.
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("macros.html", include_str!("templates/macros.html")),
    ("login.html", include_str!("templates/login.html")),
    ("incidents.html", include_str!("templates/incidents.html")),
    ("incidents_live.html", include_str!("templates/incidents_live.html")),
    ("incident.html", include_str!("templates/incident.html")),
    ("incident_live.html", include_str!("templates/incident_live.html")),
    ("alerts.html", include_str!("templates/alerts.html")),
    ("silences.html", include_str!("templates/silences.html")),
    ("problems.html", include_str!("templates/problems.html")),
    ("problem.html", include_str!("templates/problem.html")),
    ("changes.html", include_str!("templates/changes.html")),
    ("notifications.html", include_str!("templates/notifications.html")),
    ("audit.html", include_str!("templates/audit.html")),
    ("reports.html", include_str!("templates/reports.html")),
    ("oncall.html", include_str!("templates/oncall.html")),
];

pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    // `.html` templates escape every value (minijinja's default for the
    // extension); label and annotation text is always data.
    for (name, source) in TEMPLATES {
        env.add_template(name, source).unwrap_or_else(|e| panic!("console template {name}: {e}"));
    }
    env.add_filter("when", |v: Option<String>| v.map(|s| when(&s)).unwrap_or_default());
    env.add_filter("dur", |v: Option<f64>| v.map(human_seconds).unwrap_or_default());
    env.add_filter("link", |v: JValue| v.as_str().and_then(web_link).unwrap_or_default());
    env
}

/// `2026-11-26 07:25:22 UTC` from an RFC 3339 time; other text unchanged.
pub fn when(rfc3339: &str) -> String {
    match rfc3339.parse::<jiff::Timestamp>() {
        Ok(t) => t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
        Err(_) => rfc3339.to_owned(),
    }
}

/// `45s`, `12m 05s`, `3h 20m`, `2d 4h`; negative as `-12m 05s`.
pub fn human_seconds(s: f64) -> String {
    let sign = if s < 0.0 { "-" } else { "" };
    let t = s.abs().round() as i64;
    let (d, h, m, sec) = (t / 86_400, t % 86_400 / 3600, t % 3600 / 60, t % 60);
    let text = if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m:02}m")
    } else if m > 0 {
        format!("{m}m {sec:02}s")
    } else {
        format!("{sec}s")
    };
    format!("{sign}{text}")
}

/// A URL from alert data that may become a link: http(s) only, so a
/// `javascript:` annotation stays text.
pub fn web_link(url: &str) -> Option<String> {
    let u = reqwest::Url::parse(url.trim()).ok()?;
    matches!(u.scheme(), "http" | "https").then(|| u.to_string())
}

/// HTML text escaping, for the few strings built outside templates.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// What every full page gets: who is signed in, what they may do, the
/// navigation, the assets, the CSRF token and a one-time message.
pub fn page(console: &Console, viewer: &Viewer, nav: &str, mut ctx: Value) -> Value {
    let may = |m: &str, r: &str| viewer.may(m, r);
    let common = json!({
        "base": console.base,
        "nav": nav,
        "viewer": { "name": viewer.name, "role": viewer.role.as_str(), "open": viewer.open },
        "csrf": viewer.csrf,
        "flash": console.sessions.take_flash(&viewer.key),
        "css": assets::url("console.css"),
        "js": assets::url("console.js"),
        "can": {
            "respond": may("POST", "/api/v1/incidents/{id}/{action}"),
            "silence": may("POST", "/api/v1/silences"),
            "report": may("POST", "/api/v1/incidents"),
            "retry": may("POST", "/api/v1/notifications/{id}/retry"),
            "audit": may("GET", "/api/v1/audit"),
        },
    });
    if let (Some(c), Some(common)) = (ctx.as_object_mut(), common.as_object()) {
        for (k, v) in common {
            c.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    ctx
}

/// The value of a query parameter, from pairs.
pub fn param<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str()).filter(|v| !v.trim().is_empty())
}

/// Parse a query string into pairs; a malformed one is a 400.
pub fn query_pairs(raw: Option<&str>) -> Result<Vec<(String, String)>, super::WebError> {
    serde_urlencoded::from_str(raw.unwrap_or(""))
        .map_err(|e| super::WebError::bad_request(format!("bad query string: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_a_person_writes_them() {
        assert_eq!(human_seconds(45.2), "45s");
        assert_eq!(human_seconds(725.0), "12m 05s");
        assert_eq!(human_seconds(12_000.0), "3h 20m");
        assert_eq!(human_seconds(187_200.0), "2d 4h");
        assert_eq!(human_seconds(-725.0), "-12m 05s");
    }

    #[test]
    fn only_web_urls_become_links() {
        assert_eq!(web_link("https://runbooks.example/x").as_deref(), Some("https://runbooks.example/x"));
        assert_eq!(web_link("javascript:alert(1)"), None);
        assert_eq!(web_link("data:text/html,<script>"), None);
        assert_eq!(web_link("not a url"), None);
    }

    #[test]
    fn templates_escape_label_text() {
        let env = environment();
        let rendered = env
            .render_named_str("probe.html", "<b>{{ x }}</b>", minijinja::context! { x => "<script>alert(1)</script>" })
            .unwrap();
        assert_eq!(rendered, "<b>&lt;script&gt;alert(1)&lt;&#x2f;script&gt;</b>");
        assert_eq!(when("2026-11-26T07:25:22.5Z"), "2026-11-26 07:25:22 UTC");
    }
}
