//! Authentication, authorization and rate limits, in front of every route.
//!
//! The caller is identified by `Authorization: Bearer <token>` (or basic
//! auth whose password is the token); PagerDuty senders, which can only put
//! the token in the body as `routing_key`, are identified by their handler.
//! The route's permission is checked against the token's role, then the
//! caller's rate (per token, or per source address without one).
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::AppState;
use super::error::ApiError;
use crate::auth::{Permission, Principal, presented_token};
use crate::config::{Limits, Rate};

/// Who called, as the handlers see it.
#[derive(Debug, Clone)]
pub struct Caller {
    /// `None` only on the PagerDuty routes before the body's routing key is checked.
    pub principal: Option<Principal>,
    pub source: Option<IpAddr>,
}

impl Caller {
    /// The token's name, or `anonymous`.
    pub fn name(&self) -> String {
        self.principal.as_ref().map_or_else(|| "anonymous".to_owned(), |p| p.name.clone())
    }

    /// The name to record as the actor: the token's name; with no tokens
    /// configured, the name the request gives.
    pub fn actor(&self, given: Option<String>) -> Result<String, ApiError> {
        let given = given.map(|a| a.trim().to_owned()).filter(|a| !a.is_empty());
        if let Some(a) = &given
            && (a.len() > 200 || a.chars().any(char::is_control))
        {
            return Err(ApiError::bad_request("actor: 1-200 printable characters"));
        }
        match (&self.principal, given) {
            (Some(p), given) if !p.is_anonymous() => Ok(match given {
                // A bot token acting for a person keeps both names.
                Some(g) if g != p.name => format!("{} for {g}", p.name),
                _ => p.name.clone(),
            }),
            (_, Some(g)) => Ok(g),
            _ => Err(ApiError::bad_request("actor: name who does this (1-200 printable characters)")),
        }
    }
}

/// The rate limiters of ingest and of the rest of the API.
#[derive(Default)]
pub struct Limiters {
    ingest: Option<DefaultKeyedRateLimiter<String>>,
    api: Option<DefaultKeyedRateLimiter<String>>,
    /// Alerts per second per ingest caller (`limits.ingest.alerts_per_second`).
    ingest_alerts: Option<DefaultKeyedRateLimiter<String>>,
}

fn limiter(rate: Option<Rate>) -> Option<DefaultKeyedRateLimiter<String>> {
    let r = rate?;
    let per_second = NonZeroU32::new(r.per_second)?;
    let burst = r.burst.and_then(NonZeroU32::new).unwrap_or(per_second);
    Some(RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst)))
}

fn alert_limiter(rate: Option<Rate>) -> Option<DefaultKeyedRateLimiter<String>> {
    let r = rate?;
    let per_second = NonZeroU32::new(r.alerts_per_second?)?;
    let burst = r.alerts_burst.and_then(NonZeroU32::new).unwrap_or(per_second);
    Some(RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst)))
}

impl Limiters {
    pub fn new(l: &Limits) -> Limiters {
        Limiters { ingest: limiter(l.ingest), api: limiter(l.api), ingest_alerts: alert_limiter(l.ingest) }
    }

    /// Forget callers idle long enough to have a full bucket again, so the
    /// tables do not grow with every address ever seen.
    pub fn forget_idle(&self) {
        for l in [&self.ingest, &self.api, &self.ingest_alerts].into_iter().flatten() {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }

    /// Whether calls of this class are limited at all.
    fn limits(&self, ingest: bool) -> bool {
        if ingest { self.ingest.is_some() } else { self.api.is_some() }
    }

    /// `Err(seconds to wait)` when the caller is over its rate.
    fn check(&self, ingest: bool, key: String) -> Result<(), u64> {
        let l = if ingest { &self.ingest } else { &self.api };
        let Some(l) = l else { return Ok(()) };
        l.check_key(&key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }
}

/// `429` with `Retry-After` when `key` is over its rate.
pub(crate) fn over_limit(state: &AppState, ingest: bool, key: impl FnOnce() -> String) -> Option<ApiError> {
    if !state.limiters.limits(ingest) {
        return None;
    }
    let wait = state.limiters.check(ingest, key()).err()?;
    crate::metrics::metrics().rate_limited.with_label_values(&[if ingest { "ingest" } else { "api" }]).inc();
    Some(
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, format!("rate limit exceeded; retry in {wait} s"))
            .retry_after(wait.max(1)),
    )
}

/// Charge an ingest request's alerts to its caller: `429` with
/// `Retry-After` past `limits.ingest.alerts_per_second`, `413` when the
/// request alone is larger than the burst allows at all.
pub fn charge_alerts(state: &AppState, caller: &Caller, alerts: usize) -> Result<(), ApiError> {
    let Some(l) = &state.limiters.ingest_alerts else { return Ok(()) };
    let Some(n) = u32::try_from(alerts).ok().and_then(NonZeroU32::new) else { return Ok(()) };
    let key = match &caller.principal {
        Some(p) if !p.is_anonymous() => format!("token:{}", p.name),
        _ => addr_key(caller.source),
    };
    match l.check_key_n(&key, n) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(not_until)) => {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            crate::metrics::metrics().rate_limited.with_label_values(&["ingest"]).inc();
            Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!("alert rate limit exceeded (limits.ingest.alerts_per_second); retry in {secs} s"),
            )
            .retry_after(secs.max(1)))
        }
        Err(_) => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "this request carries {alerts} alerts, more than limits.ingest.alerts_burst allows at once; \
                 send them in smaller requests"
            ),
        )),
    }
}

fn addr_key(source: Option<IpAddr>) -> String {
    source.map_or_else(|| "unknown".to_owned(), |ip| format!("addr:{ip}"))
}

fn unauthorized(message: &str) -> Response {
    ApiError::new(StatusCode::UNAUTHORIZED, message).into_response()
}

/// The PagerDuty routes carry their credential in the body.
fn routing_key_route(route: &str) -> bool {
    matches!(route, "/v2/enqueue" | "/v2/change/enqueue")
}

pub async fn guard(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_default();
    let source = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let auth = state.config.auth.clone();
    let Some(need) = Permission::of(req.method().as_str(), &route, auth.public_metrics) else {
        // Not a method this route serves: the router answers 405.
        return next.run(req).await;
    };
    // Health checks and open metrics ignore credentials, whatever they are.
    if need == Permission::Open {
        req.extensions_mut().insert(Caller { principal: None, source });
        return next.run(req).await;
    }
    let principal = if !auth.enabled() {
        Some(Principal::anonymous())
    } else {
        let header = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        match presented_token(header) {
            Some(token) => match auth.identify(&token) {
                Some(p) => Some(p),
                None => {
                    tracing::warn!(source = source.map(tracing::field::display), route = %route, "refused a request with an unknown token");
                    // Guessing tokens costs the guesser's address its budget.
                    if let Some(e) = over_limit(&state, need == Permission::Ingest, || addr_key(source)) {
                        return e.into_response();
                    }
                    return unauthorized("the token is not valid");
                }
            },
            None if routing_key_route(&route) => None,
            None => return unauthorized("this call needs a token: Authorization: Bearer <token>"),
        }
    };
    if let Some(p) = &principal
        && !p.role.allows(need)
    {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            format!("token {} (role {}) may not do this; it needs the {} role", p.name, p.role.as_str(), need.as_str()),
        )
        .into_response();
    }
    // A PagerDuty sender without a header is charged once its routing key
    // names it (`by_routing_key`), not under its address.
    if principal.is_some() {
        let key = || match &principal {
            Some(p) if !p.is_anonymous() => format!("token:{}", p.name),
            _ => addr_key(source),
        };
        if let Some(e) = over_limit(&state, need == Permission::Ingest, key) {
            return e.into_response();
        }
    }
    req.extensions_mut().insert(Caller { principal, source });
    next.run(req).await
}

/// A PagerDuty sender's credential: the event's `routing_key` must be an
/// ingest (or admin) token.
pub fn by_routing_key(state: &AppState, caller: &Caller, key: &str) -> Result<Principal, ApiError> {
    let auth: Arc<crate::auth::Auth> = state.config.auth.clone();
    match auth.identify(key) {
        Some(p) if p.role.allows(Permission::Ingest) => match over_limit(state, true, || format!("token:{}", p.name)) {
            Some(e) => Err(e),
            None => Ok(p),
        },
        Some(p) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("token {} (role {}) may not post events", p.name, p.role.as_str()),
        )),
        None => Err(over_limit(state, true, || addr_key(caller.source))
            .unwrap_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "the routing_key is not a valid token"))),
    }
}
