//! Live pages: `GET /events` (Server-Sent Events) says "something changed"
//! with the store's change version, at most once a second per page; a page
//! then fetches its live part again (`?partial=1`). Those parts are cached
//! per view and version, so a hundred tabs on the same view cost one render
//! per change, not a hundred.
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use futures_util::stream::{self, Stream};
use sha2::{Digest, Sha256};

use super::{Console, Viewer, WebError};
use crate::api::AppState;

/// At most one event per page this often: a storm of commits becomes one
/// refresh a second.
const THROTTLE: Duration = Duration::from_secs(1);
/// A view rendered this recently is served again even if commits came
/// since: one render per view this often at most, whatever the write rate.
const FRESH_ENOUGH: Duration = Duration::from_secs(1);
/// Views cached at most; past it the cache starts over.
const MAX_CACHED: usize = 512;

/// One cached view: the version it was rendered at and the HTML. Its lock
/// is held while it renders, so tabs that ask at once wait for one render
/// instead of each doing their own.
type Slot = Arc<tokio::sync::Mutex<Option<Rendered>>>;

struct Rendered {
    version: u64,
    at: tokio::time::Instant,
    html: Arc<str>,
    /// A hash of the HTML: a tab that already shows it gets `304` and no body.
    etag: HeaderValue,
}

#[derive(Default)]
pub struct FragmentCache {
    slots: Mutex<HashMap<String, Slot>>,
}

impl FragmentCache {
    fn slot(&self, key: &str) -> Slot {
        let mut slots = self.slots.lock().expect("cache lock");
        if slots.len() >= MAX_CACHED && !slots.contains_key(key) {
            slots.clear();
        }
        slots.entry(key.to_owned()).or_default().clone()
    }
}

/// A view's live part as rendered at `version`.
#[derive(Clone)]
pub struct Part {
    pub version: u64,
    /// When it was rendered.
    pub at: tokio::time::Instant,
    pub html: Arc<str>,
    pub etag: HeaderValue,
}

/// A view's live part: from the cache when nothing changed since it was
/// rendered for the same view and viewer, else rendered by `render`. The
/// version is read before rendering, so a change that lands meanwhile makes
/// the next request render again.
pub async fn cached<F, Fut>(
    state: &AppState,
    console: &Console,
    viewer: &Viewer,
    view: &str,
    render: F,
) -> Result<Part, WebError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<String, WebError>>,
{
    let version = state.store.feed().current().version;
    let slot = console.fragments.slot(&format!("{}|{}|{view}", viewer.role.as_str(), viewer.name));
    let mut cached = slot.lock().await;
    match cached.as_ref() {
        // Rendered at this version or a later one (while this request
        // waited), or very recently: under a stream of commits every tab
        // would otherwise see a version of its own and render again. Whoever
        // gets an older version than it heard of asks again soon.
        Some(r) if r.version >= version || r.at.elapsed() < FRESH_ENOUGH => {}
        _ => {
            let html = render().await?;
            let digest = Sha256::digest(html.as_bytes());
            let etag = HeaderValue::from_str(&format!("\"{}\"", hex::encode(&digest[..12]))).expect("hex is ASCII");
            *cached = Some(Rendered { version, at: tokio::time::Instant::now(), html: html.into(), etag });
        }
    }
    let r = cached.as_ref().expect("rendered above");
    Ok(Part { version: r.version, at: r.at, html: r.html.clone(), etag: r.etag.clone() })
}

/// The answer to a tab's `?partial=1`: `304` when it shows this already.
pub fn respond(part: Part, if_none_match: Option<&HeaderValue>) -> Response {
    let mut resp = if if_none_match == Some(&part.etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        Html(part.html.to_string()).into_response()
    };
    let h = resp.headers_mut();
    h.insert("x-alertgate-view-version", HeaderValue::from(part.version));
    h.insert(header::ETAG, part.etag);
    resp
}

/// The live part of a page, by its path and query (without the prefix of
/// `web.external_url`); `None` for a page without one.
async fn view_part(state: &AppState, console: &Console, viewer: &Viewer, view: &str) -> Option<Part> {
    let (path, query) = view.split_once('?').unwrap_or((view, ""));
    let pairs = super::view::query_pairs(Some(query)).ok()?;
    if path == "/incidents" {
        return super::incidents::list_part(state, console, viewer, &pairs).await.ok();
    }
    let id = path.strip_prefix("/incidents/")?.parse().ok()?;
    super::incidents::detail_part(state, console, viewer, id).await.ok()
}

/// The change version pages embed, so the first event tells them whether
/// they missed a change while loading.
pub fn version(state: &AppState) -> u64 {
    state.store.feed().current().version
}

struct Watch {
    rx: tokio::sync::watch::Receiver<crate::store::FeedState>,
    state: AppState,
    console: Arc<Console>,
    viewer: Viewer,
    /// The page the stream serves (`?view=`): events are sent only when its
    /// live part changed.
    view: Option<String>,
    last_etag: Option<HeaderValue>,
    /// The view was answered from a render older than the change: look
    /// again when that render is no longer fresh enough to be served.
    recheck: Option<tokio::time::Instant>,
    sent_before: bool,
}

/// `GET /events?view=PATH`: an SSE stream of `change` events carrying the
/// version, sent when the page's live part changed (for a page without
/// one, on every change). It ends when the session ends or the gateway
/// shuts down.
pub async fn events(
    State(state): State<AppState>,
    Extension(console): Extension<Arc<Console>>,
    viewer: Viewer,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Response {
    let pairs = super::view::query_pairs(raw.as_deref()).unwrap_or_default();
    let view = super::view::param(&pairs, "view").map(str::to_owned);
    let rx = state.store.feed().subscribe();
    let w = Watch { rx, state, console, viewer, view, last_etag: None, recheck: None, sent_before: false };
    let mut resp = Sse::new(changes(w)).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response();
    // Proxies must pass events on at once.
    resp.headers_mut().insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn changes(w: Watch) -> impl Stream<Item = Result<Event, Infallible>> {
    stream::unfold(w, |mut w| async move {
        loop {
            if let Some(at) = w.recheck.take() {
                tokio::time::sleep_until(at).await;
            } else if w.sent_before {
                tokio::time::sleep(THROTTLE).await;
                w.rx.changed().await.ok()?;
            }
            let feed = *w.rx.borrow_and_update();
            if feed.closing || !w.console.sessions.alive(&w.viewer.key, crate::clock::now()) {
                return None;
            }
            let first = !w.sent_before;
            w.sent_before = true;
            let mut version = feed.version;
            if let Some(view) = &w.view
                && let Some(part) = view_part(&w.state, &w.console, &w.viewer, view).await
            {
                if part.version < feed.version {
                    w.recheck = Some(part.at + FRESH_ENOUGH + Duration::from_millis(10));
                }
                if !first && w.last_etag.as_ref() == Some(&part.etag) {
                    continue;
                }
                w.last_etag = Some(part.etag.clone());
                version = part.version;
                // The changed part rides in the event itself: a tab then
                // needs no request of its own (the first event only says the
                // version; the page fetches if it missed something).
                if !first {
                    return Some((Ok(part_event(&part)), w));
                }
            }
            let mut event = Event::default().event("change").data(version.to_string());
            if first {
                event = event.retry(Duration::from_secs(2));
            }
            return Some((Ok(event), w));
        }
    })
}

/// `event: part`: the version, the ETag and the HTML, one per line. A
/// carriage return would end an SSE line, so it goes as its character
/// reference (label text may hold one).
fn part_event(part: &Part) -> Event {
    let etag = part.etag.to_str().unwrap_or_default();
    Event::default().event("part").data(format!("{}\n{etag}\n{}", part.version, part.html.replace('\r', "&#13;")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_event_carries_version_etag_and_html_without_carriage_returns() {
        let part = Part {
            version: 7,
            at: tokio::time::Instant::now(),
            html: "<p>a\r\nb</p>\n<p>c</p>".into(),
            etag: HeaderValue::from_static("\"abc\""),
        };
        let text = format!("{:?}", part_event(&part));
        assert!(!text.contains("\\r\\n"), "{text}");
        assert!(text.contains("&#13;"), "{text}");
    }

    #[test]
    fn one_slot_per_view_and_viewer() {
        let c = FragmentCache::default();
        let a = c.slot("viewer|a|/incidents");
        assert!(Arc::ptr_eq(&a, &c.slot("viewer|a|/incidents")), "the same view shares its slot");
        assert!(!Arc::ptr_eq(&a, &c.slot("admin|a|/incidents")), "each role its own view");
        for i in 0..MAX_CACHED {
            c.slot(&format!("k{i}"));
        }
        assert!(c.slots.lock().unwrap().len() <= MAX_CACHED);
    }
}
