//! Who may do what: API tokens with roles, and the permission each call
//! needs. Tokens are kept only as SHA-256 hashes and compared in constant
//! time; a token's text never reaches a log, an error, the audit log or a
//! metric.
use std::path::Path;

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// What a token may do. `admin` may do everything; `responder` includes
/// `viewer`; `ingest` only posts alerts and change events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Ingest,
    Viewer,
    Responder,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::Viewer => "viewer",
            Role::Responder => "responder",
            Role::Admin => "admin",
        }
    }

    pub fn allows(self, need: Permission) -> bool {
        use Permission as P;
        use Role as R;
        match need {
            P::Open => true,
            P::Ingest => matches!(self, R::Ingest | R::Admin),
            P::Read => matches!(self, R::Viewer | R::Responder | R::Admin),
            P::Respond => matches!(self, R::Responder | R::Admin),
            P::Admin => self == R::Admin,
        }
    }
}

/// What a call needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Health checks.
    Open,
    /// Post alerts or change events, ping heartbeats.
    Ingest,
    /// Read alerts, incidents, problems, changes, silences, heartbeats, reports, metrics.
    Read,
    /// Acknowledge, resolve, reopen, hold, close, note, assign, set priority.
    Respond,
    /// Silences, problems, changes, reload, notification retries, the audit log.
    Admin,
}

/// What each method of a route needs. A method a route does not list is
/// not served (405); `HEAD` is its `GET`. The README's permission table
/// is this one, and a test compares them.
pub struct RouteAccess {
    pub route: &'static str,
    pub methods: &'static [(&'static str, Permission)],
}

const fn route(route: &'static str, methods: &'static [(&'static str, Permission)]) -> RouteAccess {
    RouteAccess { route, methods }
}

use Permission::{Admin as ADMIN, Ingest as INGEST, Open as OPEN, Read as READ, Respond as RESPOND};

/// Every route the API serves.
pub const ROUTES: &[RouteAccess] = &[
    route("/healthz", &[("GET", OPEN)]),
    route("/readyz", &[("GET", OPEN)]),
    // The API's OpenAPI document: it describes routes the README lists
    // anyway and holds no data, and the tools that read it (generators,
    // schemathesis, Swagger UI) fetch it without credentials.
    route("/api/v1/openapi.json", &[("GET", OPEN)]),
    // Open instead when `auth.public_metrics` is set.
    route("/metrics", &[("GET", READ)]),
    route("/-/reload", &[("POST", ADMIN)]),
    route("/api/v1/ingest/alertmanager", &[("POST", INGEST)]),
    route("/api/v2/alerts", &[("GET", READ), ("POST", INGEST)]),
    route("/api/v1/ingest/grafana", &[("POST", INGEST)]),
    route("/v2/enqueue", &[("POST", INGEST)]),
    route("/api/v1/ingest/generic/{name}", &[("POST", INGEST)]),
    route("/v2/change/enqueue", &[("POST", INGEST)]),
    route("/api/v1/alerts", &[("GET", READ)]),
    route("/api/v1/alerts/{fingerprint}", &[("GET", READ)]),
    route("/api/v1/incidents", &[("GET", READ), ("POST", RESPOND)]),
    route("/api/v1/incidents/{id}", &[("GET", READ)]),
    route("/api/v1/incidents/{id}/{action}", &[("POST", RESPOND)]),
    route("/api/v1/incidents/{id}/assign", &[("POST", RESPOND)]),
    route("/api/v1/incidents/{id}/alerts", &[("POST", RESPOND)]),
    route("/api/v1/incidents/{id}/merge", &[("POST", RESPOND)]),
    route("/api/v1/incidents/{id}/review", &[("GET", READ), ("POST", RESPOND), ("PATCH", RESPOND)]),
    route("/api/v1/incidents/{id}/review.md", &[("GET", READ)]),
    route("/api/v1/incidents/{id}/review/problem", &[("POST", RESPOND)]),
    route("/api/v1/action-items", &[("GET", READ), ("POST", RESPOND)]),
    route("/api/v1/action-items/{id}", &[("PATCH", RESPOND)]),
    route("/api/v1/incidents/{id}/notes", &[("POST", RESPOND)]),
    route("/api/v1/incidents/{id}/priority", &[("PATCH", RESPOND)]),
    route("/api/v1/silences", &[("GET", READ), ("POST", ADMIN)]),
    route("/api/v1/silences/{id}", &[("DELETE", ADMIN)]),
    route("/api/v1/problems", &[("GET", READ), ("POST", ADMIN)]),
    route("/api/v1/problems/{id}", &[("GET", READ), ("PATCH", ADMIN)]),
    route("/api/v1/problems/{id}/incidents", &[("POST", ADMIN)]),
    route("/api/v1/changes", &[("GET", READ), ("POST", ADMIN)]),
    route("/api/v1/reports/sla", &[("GET", READ)]),
    route("/api/v1/notifications", &[("GET", READ)]),
    route("/api/v1/notifications/{id}/retry", &[("POST", ADMIN)]),
    route("/api/v1/audit", &[("GET", ADMIN)]),
    route("/api/v1/heartbeats", &[("GET", READ)]),
    // A ping is a sender's call, as posting an alert is.
    route("/api/v1/heartbeats/{name}", &[("GET", READ), ("POST", INGEST)]),
    route("/api/v1/oncall", &[("GET", READ)]),
    route("/api/v1/schedules", &[("GET", READ)]),
    route("/api/v1/schedules/{name}/shifts", &[("GET", READ)]),
    // Swapping and covering shifts is on-call work, as acknowledging is.
    route("/api/v1/schedules/{name}/overrides", &[("GET", READ), ("POST", RESPOND)]),
    route("/api/v1/schedules/{name}/overrides/{id}", &[("DELETE", RESPOND)]),
    route("/api/v1/people", &[("GET", READ)]),
    route("/api/v1/calendar-feeds", &[("GET", READ), ("POST", RESPOND)]),
    route("/api/v1/calendar-feeds/{id}", &[("DELETE", RESPOND)]),
    // Calendar apps send no headers: the feed's key in the URL is checked instead.
    route("/api/v1/schedules/{name}/calendar.ics", &[("GET", OPEN)]),
    route("/api/v1/people/{name}/calendar.ics", &[("GET", OPEN)]),
    // Alertmanager's API v2 (read and silences).
    route("/api/v2/status", &[("GET", READ)]),
    route("/api/v2/receivers", &[("GET", READ)]),
    route("/api/v2/alerts/groups", &[("GET", READ)]),
    route("/api/v2/silences", &[("GET", READ), ("POST", ADMIN)]),
    route("/api/v2/silence/{id}", &[("GET", READ), ("DELETE", ADMIN)]),
];

impl Permission {
    /// What `method` on `route` (its pattern, as axum matched it) needs;
    /// `None` when the route does not serve the method. A route missing
    /// from [`ROUTES`] needs admin rights: forgetting one fails closed.
    pub fn of(method: &str, route: &str, public_metrics: bool) -> Option<Permission> {
        let method = if method == "HEAD" { "GET" } else { method };
        let Some(access) = ROUTES.iter().find(|r| r.route == route) else {
            return Some(Permission::Admin);
        };
        let need = access.methods.iter().find(|(m, _)| *m == method).map(|(_, p)| *p)?;
        Some(if route == "/metrics" && public_metrics { Permission::Open } else { need })
    }

    /// The role name the README's table uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Open => "open",
            Permission::Ingest => "ingest",
            Permission::Read => "viewer",
            Permission::Respond => "responder",
            Permission::Admin => "admin",
        }
    }
}

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's name; `anonymous` when the gateway runs without tokens.
    pub name: String,
    pub role: Role,
    /// Labels the token adds to every alert it sends (`auth.tokens[].labels`),
    /// as a PagerDuty integration belongs to a service.
    pub labels: std::sync::Arc<crate::model::LabelSet>,
}

impl Principal {
    pub fn anonymous() -> Principal {
        Principal { name: "anonymous".into(), role: Role::Admin, labels: Default::default() }
    }

    pub fn is_anonymous(&self) -> bool {
        self.name == "anonymous"
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawToken {
    name: String,
    role: Role,
    token_sha256: Option<String>,
    token_file: Option<String>,
    token_env: Option<String>,
    /// Added to every alert sent with this token; they win over the alert's own.
    #[serde(default)]
    labels: crate::model::LabelSet,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    #[serde(default)]
    tokens: Vec<RawToken>,
    /// Serve `/metrics` without a token (for a Prometheus that cannot send one).
    #[serde(default)]
    public_metrics: bool,
}

struct Token {
    name: String,
    role: Role,
    sha256: [u8; 32],
    labels: std::sync::Arc<crate::model::LabelSet>,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token({}, {})", self.name, self.role.as_str())
    }
}

/// The configured tokens.
#[derive(Debug, Default)]
pub struct Auth {
    tokens: Vec<Token>,
    pub public_metrics: bool,
}

/// Tokens shorter than this are refused: they could be guessed.
const MIN_TOKEN_LEN: usize = 16;

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Equal in time independent of where the inputs differ.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl RawAuth {
    pub fn compile(self, base: &Path) -> Result<Auth, Vec<String>> {
        let mut p = Vec::new();
        let mut tokens: Vec<Token> = Vec::new();
        for (i, t) in self.tokens.into_iter().enumerate() {
            let at = format!("auth.tokens[{i}]");
            if t.name.is_empty() || !t.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c)) {
                p.push(format!("{at}.name: use letters, digits, '-', '_', '.', '@'"));
            }
            if t.name == "anonymous" {
                p.push(format!("{at}.name: \"anonymous\" is reserved for callers without a token"));
            }
            if tokens.iter().any(|o| o.name == t.name) {
                p.push(format!("{at}.name: duplicate token name {:?}", t.name));
            }
            for (name, value) in &t.labels {
                let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !valid {
                    p.push(format!("{at}.labels: {name:?} is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)"));
                }
                if value.is_empty() {
                    p.push(format!("{at}.labels.{name}: give a value (an empty label is no label)"));
                }
            }
            let given = [t.token_sha256.is_some(), t.token_file.is_some(), t.token_env.is_some()];
            if given.iter().filter(|g| **g).count() != 1 {
                p.push(format!("{at}: give exactly one of token_sha256, token_file, token_env"));
                continue;
            }
            let plain = |text: String, from: &str, p: &mut Vec<String>| -> Option<[u8; 32]> {
                let text = text.trim_end_matches(['\n', '\r']);
                if text.len() < MIN_TOKEN_LEN {
                    p.push(format!("{at}: the token from {from} is shorter than {MIN_TOKEN_LEN} characters"));
                    return None;
                }
                Some(digest(text))
            };
            let sha = if let Some(hex_text) = &t.token_sha256 {
                match hex::decode(hex_text.trim()) {
                    Ok(b) if b.len() == 32 => b.try_into().ok(),
                    _ => {
                        p.push(format!("{at}.token_sha256: expected 64 hex digits (sha256sum of the token)"));
                        None
                    }
                }
            } else if let Some(f) = &t.token_file {
                match std::fs::read_to_string(base.join(f)) {
                    Ok(text) => plain(text, "token_file", &mut p),
                    Err(e) => {
                        p.push(format!("{at}.token_file: cannot read {}: {e}", base.join(f).display()));
                        None
                    }
                }
            } else if let Some(var) = &t.token_env {
                match std::env::var(var) {
                    Ok(text) => plain(text, "token_env", &mut p),
                    Err(_) => {
                        p.push(format!("{at}.token_env: environment variable {var} is not set"));
                        None
                    }
                }
            } else {
                None
            };
            if let Some(sha256) = sha {
                if tokens.iter().any(|o| same(&o.sha256, &sha256)) {
                    p.push(format!("{at}: the same token is given twice"));
                }
                tokens.push(Token { name: t.name, role: t.role, sha256, labels: std::sync::Arc::new(t.labels) });
            }
        }
        if p.is_empty() { Ok(Auth { tokens, public_metrics: self.public_metrics }) } else { Err(p) }
    }
}

impl Auth {
    /// Whether any token is configured; without, every caller is admin.
    pub fn enabled(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// The principal a presented token belongs to. Every stored hash is
    /// compared, so the time taken says nothing about which one matched.
    pub fn identify(&self, presented: &str) -> Option<Principal> {
        let d = digest(presented);
        let mut found = None;
        for t in &self.tokens {
            if same(&t.sha256, &d) {
                found = Some(Principal { name: t.name.clone(), role: t.role, labels: t.labels.clone() });
            }
        }
        found
    }
}

/// The token a request presents: `Authorization: Bearer <token>`, or
/// basic auth whose password is the token (Alertmanager's and Grafana's
/// `basic_auth`; the user name is not checked).
pub fn presented_token(authorization: Option<&str>) -> Option<String> {
    let value = authorization?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    match scheme.to_ascii_lowercase().as_str() {
        "bearer" => Some(rest.trim().to_owned()).filter(|t| !t.is_empty()),
        "basic" => {
            let decoded = base64_decode(rest.trim())?;
            let text = String::from_utf8(decoded).ok()?;
            let (_, password) = text.split_once(':')?;
            Some(password.to_owned()).filter(|t| !t.is_empty())
        }
        _ => None,
    }
}

/// Standard base64 (with or without padding); `None` when malformed.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(yaml: &str) -> Result<Auth, Vec<String>> {
        crate::yaml::from_str::<RawAuth>(yaml).unwrap().compile(Path::new("."))
    }

    #[test]
    fn tokens_are_matched_by_hash() {
        let sha = hex::encode(Sha256::digest(b"am-token-0123456789"));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("alice"), "alice-token-0123456789\n").unwrap();
        let a = crate::yaml::from_str::<RawAuth>(&format!(
            "tokens:\n  - {{name: alertmanager, role: ingest, token_sha256: \"{sha}\"}}\n  - {{name: alice, role: responder, token_file: alice}}\n"
        ))
        .unwrap()
        .compile(dir.path())
        .unwrap();
        assert!(a.enabled());
        assert_eq!(a.identify("am-token-0123456789").unwrap().name, "alertmanager");
        assert_eq!(a.identify("alice-token-0123456789").unwrap().role, Role::Responder);
        assert_eq!(a.identify("alice-token-012345678"), None);
        assert_eq!(a.identify(""), None);
        assert!(!format!("{a:?}").contains("alice-token"), "Debug shows no token");
    }

    #[test]
    fn token_mistakes_are_named() {
        let errs = auth(
            "tokens:\n  - {name: a, role: admin, token_sha256: nothex}\n  - {name: 'b c', role: viewer, token_env: ALERTGATE_TEST_NO_SUCH_VAR}\n  - {name: d, role: ingest}\n",
        )
        .unwrap_err();
        for want in
            ["tokens[0].token_sha256", "tokens[1].name", "ALERTGATE_TEST_NO_SUCH_VAR", "tokens[2]: give exactly one"]
        {
            assert!(errs.iter().any(|e| e.contains(want)), "{want:?} not in {errs:#?}");
        }
        let bad_role = crate::yaml::from_str::<RawAuth>("tokens:\n  - {name: a, role: root, token_sha256: x}\n");
        assert!(bad_role.is_err());
    }

    #[test]
    fn tokens_carry_checked_labels() {
        let sha = hex::encode(Sha256::digest(b"pd-token-0123456789"));
        let a = auth(&format!(
            "tokens:\n  - {{name: pd, role: ingest, token_sha256: \"{sha}\", labels: {{service: payments, team: pay}}}}\n"
        ))
        .unwrap();
        let p = a.identify("pd-token-0123456789").unwrap();
        assert_eq!(p.labels.get("service").map(String::as_str), Some("payments"));
        assert_eq!(p.labels.len(), 2);
        let errs = auth(&format!(
            "tokens:\n  - {{name: pd, role: ingest, token_sha256: \"{sha}\", labels: {{'bad-name': x, ok: ''}}}}\n"
        ))
        .unwrap_err();
        assert!(errs.iter().any(|e| e.contains("\"bad-name\" is not a label name")), "{errs:?}");
        assert!(errs.iter().any(|e| e.contains("labels.ok: give a value")), "{errs:?}");
    }

    #[test]
    fn roles_and_permissions() {
        use Permission as P;
        assert!(Role::Ingest.allows(P::Ingest) && !Role::Ingest.allows(P::Read));
        assert!(Role::Viewer.allows(P::Read) && !Role::Viewer.allows(P::Respond) && !Role::Viewer.allows(P::Ingest));
        assert!(Role::Responder.allows(P::Respond) && !Role::Responder.allows(P::Admin));
        assert!([P::Ingest, P::Read, P::Respond, P::Admin].iter().all(|p| Role::Admin.allows(*p)));
        let of = |m, r, public| Permission::of(m, r, public);
        assert_eq!(of("POST", "/api/v2/alerts", false), Some(P::Ingest));
        assert_eq!(of("POST", "/api/v1/incidents/{id}/{action}", false), Some(P::Respond));
        assert_eq!(of("POST", "/api/v1/silences", false), Some(P::Admin));
        assert_eq!(of("DELETE", "/api/v1/silences/{id}", false), Some(P::Admin));
        assert_eq!(of("GET", "/api/v1/incidents", false), Some(P::Read));
        assert_eq!(of("GET", "/api/v1/audit", false), Some(P::Admin));
        assert_eq!(of("HEAD", "/api/v1/audit", false), Some(P::Admin), "HEAD is its GET");
        assert_eq!(of("GET", "/metrics", false), Some(P::Read));
        assert_eq!(of("GET", "/metrics", true), Some(P::Open));
        assert_eq!(of("HEAD", "/metrics", true), Some(P::Open));
        assert_eq!(of("GET", "/healthz", false), Some(P::Open));
        assert_eq!(of("POST", "/-/reload", false), Some(P::Admin));
        assert_eq!(of("DELETE", "/api/v1/incidents", false), None, "not served");
        assert_eq!(of("GET", "/no/such/route", false), Some(P::Admin), "fails closed");
    }

    #[test]
    fn bearer_and_basic_credentials() {
        assert_eq!(presented_token(Some("Bearer abc")), Some("abc".into()));
        assert_eq!(presented_token(Some("bearer  abc ")), Some("abc".into()));
        // "am:s3cret-token" in base64.
        assert_eq!(presented_token(Some("Basic YW06czNjcmV0LXRva2Vu")), Some("s3cret-token".into()));
        assert_eq!(presented_token(Some("Basic !!!")), None);
        assert_eq!(presented_token(Some("Token abc")), None);
        assert_eq!(presented_token(None), None);
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
    }
}
