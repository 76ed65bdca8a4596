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
use axum::http::{HeaderValue, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use futures_util::stream::{self, Stream};

use super::{Console, Viewer, WebError};
use crate::api::AppState;

/// At most one event per page this often: a storm of commits becomes one
/// refresh a second.
const THROTTLE: Duration = Duration::from_secs(1);
/// Views cached at most; past it the cache starts over.
const MAX_CACHED: usize = 512;

#[derive(Default)]
pub struct FragmentCache {
    entries: Mutex<HashMap<String, (u64, Arc<str>)>>,
}

impl FragmentCache {
    fn get(&self, key: &str, version: u64) -> Option<Arc<str>> {
        let e = self.entries.lock().expect("cache lock");
        e.get(key).filter(|(v, _)| *v == version).map(|(_, html)| html.clone())
    }

    fn put(&self, key: String, version: u64, html: Arc<str>) {
        let mut e = self.entries.lock().expect("cache lock");
        if e.len() >= MAX_CACHED && !e.contains_key(&key) {
            e.clear();
        }
        e.insert(key, (version, html));
    }
}

/// A page's live part: from the cache when nothing changed since it was
/// rendered for the same view and viewer, else rendered by `render`. The
/// version is read before rendering, so a change that lands meanwhile makes
/// the next request render again.
pub async fn fragment<F, Fut>(
    state: &AppState,
    console: &Console,
    viewer: &Viewer,
    view: &str,
    render: F,
) -> Result<Response, WebError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<String, WebError>>,
{
    let version = state.store.feed().current().version;
    let key = format!("{}|{}|{view}", viewer.role.as_str(), viewer.name);
    let html = match console.fragments.get(&key, version) {
        Some(html) => html,
        None => {
            let html: Arc<str> = render().await?.into();
            console.fragments.put(key, version, html.clone());
            html
        }
    };
    let mut resp = Html(html.to_string()).into_response();
    resp.headers_mut().insert("x-alertgate-version", HeaderValue::from(version));
    Ok(resp)
}

/// The change version pages embed, so the first event tells them whether
/// they missed a change while loading.
pub fn version(state: &AppState) -> u64 {
    state.store.feed().current().version
}

struct Watch {
    rx: tokio::sync::watch::Receiver<crate::store::FeedState>,
    console: Arc<Console>,
    viewer: Viewer,
    sent_before: bool,
}

/// `GET /events`: an SSE stream of `change` events carrying the version.
/// It ends when the session ends or the gateway shuts down.
pub async fn events(
    State(state): State<AppState>,
    Extension(console): Extension<Arc<Console>>,
    viewer: Viewer,
) -> Response {
    let rx = state.store.feed().subscribe();
    let w = Watch { rx, console, viewer, sent_before: false };
    let mut resp = Sse::new(changes(w)).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response();
    // Proxies must pass events on at once.
    resp.headers_mut().insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn changes(w: Watch) -> impl Stream<Item = Result<Event, Infallible>> {
    stream::unfold(w, |mut w| async move {
        if w.sent_before {
            tokio::time::sleep(THROTTLE).await;
            w.rx.changed().await.ok()?;
        }
        let state = *w.rx.borrow_and_update();
        if state.closing || !w.console.sessions.alive(&w.viewer.key, crate::clock::now()) {
            return None;
        }
        let first = !w.sent_before;
        w.sent_before = true;
        let mut event = Event::default().event("change").data(state.version.to_string());
        if first {
            event = event.retry(Duration::from_secs(2));
        }
        Some((Ok(event), w))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_answers_only_for_the_version_it_rendered() {
        let c = FragmentCache::default();
        c.put("viewer|a|/incidents".into(), 3, "<tr>".into());
        assert_eq!(c.get("viewer|a|/incidents", 3).as_deref(), Some("<tr>"));
        assert!(c.get("viewer|a|/incidents", 4).is_none(), "a newer version renders again");
        assert!(c.get("admin|a|/incidents", 3).is_none(), "each role its own view");
        for i in 0..MAX_CACHED {
            c.put(format!("k{i}"), 1, "x".into());
        }
        assert!(c.entries.lock().unwrap().len() <= MAX_CACHED);
    }
}
