//! Signing in to the console.
//!
//! With tokens configured, `/login` takes an API token and opens a session:
//! a random id in a cookie (`HttpOnly`, `SameSite=Strict`, `Secure` under
//! TLS) that names a row of an in-memory table holding the token's name and
//! role, a CSRF token and an absolute expiry (`web.session_ttl`). Logout
//! deletes the row, so a stolen cookie dies with it; a restart signs
//! everyone out. The table keeps only the SHA-256 of each id. Without
//! tokens (loopback only) the console is open: each browser gets an
//! anonymous admin session, still with its CSRF token, and may give a name
//! for the timeline at `/login`.
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use jiff::{SignedDuration, Timestamp};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{Console, WebError};
use crate::api::AppState;
use crate::api::auth::Caller;
use crate::auth::{Permission, Principal, Role};

const COOKIE: &str = "alertgate_session";
/// Sessions kept at most; past it the one closest to expiry makes room, so
/// clients that never keep a cookie cannot grow the table without bound.
const MAX_SESSIONS: usize = 10_000;
/// Largest form the console accepts.
const MAX_FORM: usize = 256 * 1024;

#[derive(Debug, Clone)]
struct Session {
    name: String,
    role: Role,
    csrf: String,
    expires: Timestamp,
    flash: Option<Flash>,
}

/// A message for the next page this session shows, once.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Flash {
    pub text: String,
    /// What was asked was not done: shown as an alert, in the error colour.
    pub error: bool,
}

pub struct Sessions {
    ttl: SignedDuration,
    table: Mutex<HashMap<[u8; 32], Session>>,
}

fn random_hex() -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("the operating system's random source");
    hex::encode(b)
}

fn key(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

/// Equal in time independent of where the inputs differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Sessions {
    pub fn new(ttl: SignedDuration) -> Sessions {
        Sessions { ttl, table: Mutex::new(HashMap::new()) }
    }

    /// A new session; returns its id (the cookie's value).
    fn open(&self, name: String, role: Role, now: Timestamp) -> String {
        let id = random_hex();
        let expires = now.checked_add(self.ttl).unwrap_or(Timestamp::MAX);
        let mut t = self.table.lock().expect("sessions lock");
        t.retain(|_, s| s.expires > now);
        if t.len() >= MAX_SESSIONS
            && let Some(k) = t.iter().min_by_key(|(_, s)| s.expires).map(|(k, _)| *k)
        {
            t.remove(&k);
        }
        t.insert(key(&id), Session { name, role, csrf: random_hex(), expires, flash: None });
        id
    }

    fn get(&self, k: &[u8; 32], now: Timestamp) -> Option<Session> {
        self.table.lock().expect("sessions lock").get(k).filter(|s| s.expires > now).cloned()
    }

    pub fn alive(&self, k: &[u8; 32], now: Timestamp) -> bool {
        self.get(k, now).is_some()
    }

    fn close(&self, k: &[u8; 32]) {
        self.table.lock().expect("sessions lock").remove(k);
    }

    pub fn set_flash(&self, k: &[u8; 32], message: String) {
        self.put_flash(k, Flash { text: message, error: false });
    }

    /// A form that was refused sends the browser back to its page, which
    /// says why (instead of an error page that loses the page's context).
    pub fn set_error(&self, k: &[u8; 32], message: String) {
        self.put_flash(k, Flash { text: message, error: true });
    }

    fn put_flash(&self, k: &[u8; 32], flash: Flash) {
        if let Some(s) = self.table.lock().expect("sessions lock").get_mut(k) {
            s.flash = Some(flash);
        }
    }

    pub fn take_flash(&self, k: &[u8; 32]) -> Option<Flash> {
        self.table.lock().expect("sessions lock").get_mut(k).and_then(|s| s.flash.take())
    }
}

/// The signed-in person, as pages and actions see them.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub name: String,
    pub role: Role,
    /// The gateway runs without tokens: the name is only what the person
    /// gave, and every viewer may do everything.
    pub open: bool,
    pub csrf: String,
    pub key: [u8; 32],
    pub source: Option<IpAddr>,
}

impl Viewer {
    /// Whether the API would let this viewer make the call `method route`
    /// (the API's route pattern): one table of permissions for both.
    pub fn may(&self, method: &str, api_route: &str) -> bool {
        // A method the route does not serve is allowed to no one.
        Permission::of(method, api_route, false).is_some_and(|need| self.role.allows(need))
    }

    /// `403` as the API answers it, unless the viewer may.
    pub fn require(&self, method: &str, api_route: &str) -> Result<(), WebError> {
        if self.may(method, api_route) {
            return Ok(());
        }
        let need = Permission::of(method, api_route, false).map_or("a role no one has", Permission::as_str);
        Err(WebError::new(
            StatusCode::FORBIDDEN,
            format!("{} (role {}) may not do this; it needs the {need} role", self.name, self.role.as_str()),
        ))
    }

    /// The caller as the API's handlers see it.
    pub fn caller(&self) -> Caller {
        let principal = if self.open {
            Principal::anonymous()
        } else {
            Principal { name: self.name.clone(), role: self.role, labels: Default::default() }
        };
        Caller { principal: Some(principal), source: self.source }
    }

    /// The name actions are recorded under, by the API's rule.
    pub fn actor(&self) -> Result<String, WebError> {
        Ok(self.caller().actor(self.open.then(|| self.name.clone()))?)
    }
}

fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_owned())
}

fn set_cookie(console: &Console, value: &str, max_age: i64) -> HeaderValue {
    let path = if console.base.is_empty() { "/".to_owned() } else { console.base.clone() };
    let secure = if console.secure_cookies { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path={path}; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .expect("cookie text is ASCII")
}

fn console_of(ext: &axum::http::Extensions) -> Arc<Console> {
    ext.get::<Arc<Console>>().cloned().expect("the console extension is installed")
}

/// Find the request's session (opening an anonymous one when the gateway
/// runs without tokens) and hand it to the handlers as a [`Viewer`].
pub async fn resolve(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let console = console_of(req.extensions());
    let source = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let now = crate::clock::now();
    let open = !state.config.auth.enabled();
    let found =
        cookie_value(req.headers()).map(|id| key(&id)).and_then(|k| console.sessions.get(&k, now).map(|s| (k, s)));
    let mut new_cookie = None;
    let found = match found {
        Some(f) => Some(f),
        // Assets need no session; a browser fetches them after the page that opened one.
        None if open && !req.uri().path().starts_with("/assets/") => {
            let id = console.sessions.open("anonymous".into(), Role::Admin, now);
            new_cookie = Some(set_cookie(&console, &id, console.sessions.ttl.as_secs()));
            let k = key(&id);
            console.sessions.get(&k, now).map(|s| (k, s))
        }
        None => None,
    };
    if let Some((k, s)) = found {
        req.extensions_mut().insert(Viewer { name: s.name, role: s.role, open, csrf: s.csrf, key: k, source });
    }
    let mut resp = next.run(req).await;
    if let Some(c) = new_cookie {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    resp
}

/// Not signed in: pages send the browser to `/login`, other calls get 401.
pub struct SignIn(Response);

impl IntoResponse for SignIn {
    fn into_response(self) -> Response {
        self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Viewer {
    type Rejection = SignIn;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        if let Some(v) = parts.extensions.get::<Viewer>() {
            return Ok(v.clone());
        }
        let console = console_of(&parts.extensions);
        if parts.method == Method::GET && parts.uri.path() != "/events" {
            let here = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/incidents");
            let next: String = url_encode(&format!("{}{here}", console.base));
            return Err(SignIn(Redirect::to(&format!("{}/login?next={next}", console.base)).into_response()));
        }
        Err(SignIn(WebError::new(StatusCode::UNAUTHORIZED, "sign in first").into_response()))
    }
}

fn url_encode(s: &str) -> String {
    serde_urlencoded::to_string([("", s)]).map(|e| e[1..].to_owned()).unwrap_or_default()
}

/// A local path to return to after signing in; anything else goes to the list.
fn local_path(next: Option<&str>, base: &str) -> String {
    match next {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') => p.to_owned(),
        _ => format!("{base}/incidents"),
    }
}

/// A browser's cross-site POST carries its page's `Origin`; it must be ours.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else { return true };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    origin.split_once("://").is_some_and(|(_, h)| h == host)
}

/// A submitted form: its fields, after the CSRF token and origin were checked.
pub struct Form {
    pub viewer: Viewer,
    fields: Vec<(String, String)>,
}

impl Form {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// A field trimmed, `None` when missing or blank.
    pub fn text(&self, name: &str) -> Option<String> {
        self.get(name).map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned)
    }

    pub fn all(&self, name: &str) -> impl Iterator<Item = &str> {
        self.fields.iter().filter(move |(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

impl FromRequest<AppState> for Form {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let viewer = Viewer::from_request_parts(&mut parts, state).await.map_err(IntoResponse::into_response)?;
        let forged = || {
            WebError::new(
                StatusCode::FORBIDDEN,
                "the form is stale or not from this console (CSRF check failed); reload the page and try again",
            )
            .into_response()
        };
        if !same_origin(&parts.headers) {
            return Err(forged());
        }
        let req = Request::from_parts(parts, body);
        let bytes = axum::body::to_bytes(req.into_body(), MAX_FORM)
            .await
            .map_err(|_| WebError::new(StatusCode::PAYLOAD_TOO_LARGE, "the form is too large").into_response())?;
        let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes)
            .map_err(|e| WebError::bad_request(format!("unreadable form: {e}")).into_response())?;
        let token = fields.iter().find(|(k, _)| k == "csrf").map(|(_, v)| v.as_str()).unwrap_or_default();
        if !same(token, &viewer.csrf) {
            return Err(forged());
        }
        Ok(Form { viewer, fields })
    }
}

#[derive(serde::Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

fn login_form(console: &Console, open: bool, next: &str, error: Option<&str>, status: StatusCode) -> Response {
    match console.render("login.html", json!({ "base": console.base, "css": super::assets::url("console.css"), "open": open, "next": next, "error": error })) {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => e.into_response(),
    }
}

pub async fn login_page(
    State(state): State<AppState>,
    axum::Extension(console): axum::Extension<Arc<Console>>,
    axum::extract::Query(q): axum::extract::Query<LoginQuery>,
) -> Response {
    let next = local_path(q.next.as_deref(), &console.base);
    login_form(&console, !state.config.auth.enabled(), &next, None, StatusCode::OK)
}

/// `POST /login`: a token (or, without tokens, a name) opens a session.
pub async fn login(
    State(state): State<AppState>,
    axum::Extension(console): axum::Extension<Arc<Console>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let field =
        |n: &str| fields.iter().find(|(k, _)| k == n).map(|(_, v)| v.trim().to_owned()).filter(|v| !v.is_empty());
    let next = local_path(field("next").as_deref(), &console.base);
    let open = !state.config.auth.enabled();
    if !same_origin(&headers) {
        return login_form(&console, open, &next, Some("this form is not from this console"), StatusCode::FORBIDDEN);
    }
    let now = crate::clock::now();
    let (name, role) = if open {
        let name = field("name").unwrap_or_else(|| "anonymous".into());
        if name.len() > 200 || name.chars().any(char::is_control) {
            return login_form(
                &console,
                open,
                &next,
                Some("a name of 1-200 printable characters"),
                StatusCode::BAD_REQUEST,
            );
        }
        (name, Role::Admin)
    } else {
        // Guessing tokens here costs the guesser's address its API budget, as at the API.
        if let Some(e) = crate::api::auth::over_limit(&state, false, || format!("addr:{}", addr.ip())) {
            return WebError(e).into_response();
        }
        match state.config.auth.identify(&field("token").unwrap_or_default()) {
            Some(p) if p.role.allows(Permission::Read) => (p.name, p.role),
            Some(p) => {
                let msg = format!(
                    "token {} (role {}) cannot read; the console needs a viewer, responder or admin token",
                    p.name,
                    p.role.as_str()
                );
                return login_form(&console, open, &next, Some(&msg), StatusCode::FORBIDDEN);
            }
            None => {
                tracing::warn!(source = %addr.ip(), route = "/login", "refused a console sign-in with an unknown token");
                return login_form(&console, open, &next, Some("that token is not valid"), StatusCode::UNAUTHORIZED);
            }
        }
    };
    tracing::info!(name = %name, role = role.as_str(), source = %addr.ip(), "console sign-in");
    let id = console.sessions.open(name, role, now);
    let mut resp = Redirect::to(&next).into_response();
    *resp.status_mut() = StatusCode::SEE_OTHER;
    resp.headers_mut().append(header::SET_COOKIE, set_cookie(&console, &id, console.sessions.ttl.as_secs()));
    resp
}

/// `POST /logout`: the session is deleted, so its cookie no longer works anywhere.
pub async fn logout(axum::Extension(console): axum::Extension<Arc<Console>>, form: Form) -> Response {
    console.sessions.close(&form.viewer.key);
    tracing::info!(name = %form.viewer.name, "console sign-out");
    let mut resp = Redirect::to(&format!("{}/login", console.base)).into_response();
    *resp.status_mut() = StatusCode::SEE_OTHER;
    resp.headers_mut().append(header::SET_COOKIE, set_cookie(&console, "", 0));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_and_close() {
        let s = Sessions::new(SignedDuration::from_secs(60));
        let t0: Timestamp = "2026-11-26T10:00:00Z".parse().unwrap();
        let id = s.open("alice".into(), Role::Responder, t0);
        let k = key(&id);
        assert!(s.alive(&k, t0));
        assert!(!s.alive(&k, t0 + SignedDuration::from_secs(60)), "expired at its ttl");
        let id2 = s.open("bob".into(), Role::Viewer, t0);
        s.close(&key(&id2));
        assert!(!s.alive(&key(&id2), t0), "logout deletes the session");
        assert_ne!(s.get(&k, t0).unwrap().csrf, "", "every session has a CSRF token");
        s.set_flash(&k, "done".into());
        assert_eq!(s.take_flash(&k), Some(Flash { text: "done".into(), error: false }));
        assert_eq!(s.take_flash(&k), None, "a flash shows once");
        s.set_error(&k, "refused".into());
        assert_eq!(s.take_flash(&k).map(|f| f.error), Some(true));
    }

    #[test]
    fn the_table_is_bounded() {
        let s = Sessions::new(SignedDuration::from_secs(3600));
        let t0: Timestamp = "2026-11-26T10:00:00Z".parse().unwrap();
        let first = s.open("a".into(), Role::Admin, t0);
        for i in 1..=MAX_SESSIONS {
            s.open("a".into(), Role::Admin, t0 + SignedDuration::from_millis(i as i64));
        }
        assert_eq!(s.table.lock().unwrap().len(), MAX_SESSIONS);
        assert!(!s.alive(&key(&first), t0), "the one closest to expiry made room");
    }

    #[test]
    fn next_must_be_a_local_path() {
        assert_eq!(local_path(Some("/incidents/7"), ""), "/incidents/7");
        for bad in ["//evil.example/x", "https://evil.example/", "/\\evil", "incidents"] {
            assert_eq!(local_path(Some(bad), ""), "/incidents", "{bad}");
        }
    }

    #[test]
    fn origins_and_cookies() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:9797"));
        assert!(same_origin(&h), "no Origin: not a cross-site browser request");
        h.insert(header::ORIGIN, HeaderValue::from_static("http://127.0.0.1:9797"));
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("https://evil.example"));
        assert!(!same_origin(&h));
        h.insert(header::COOKIE, HeaderValue::from_static("a=b; alertgate_session=abc; c=d"));
        assert_eq!(cookie_value(&h).as_deref(), Some("abc"));
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
    }
}
