//! The OpenAPI 3.1 document of the API, served at `GET /api/v1/openapi.json`.
//!
//! Each operation comes from its handler's `#[utoipa::path]` annotation and
//! the types it takes and answers (the router is built from the same
//! annotations, see [`super::api_routes`]). What every route shares is
//! added here from one source each: who may call it from
//! [`crate::auth::ROUTES`] (security, `401`, `403`, `429`), what reading a
//! JSON body can answer (`400`, `413`, `415`, `503`), and the version header.
use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::OpenApi;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Content, Header, Ref, RefOr, Response, ResponseBuilder};

use crate::auth::Permission;

/// Where the document is served.
pub const PATH: &str = "/api/v1/openapi.json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "alertgate",
        description = "The HTTP API of alertgate, an alert-to-incident gateway: ingest endpoints for \
            Alertmanager, Prometheus, Grafana, PagerDuty Events v2 and generic JSON senders; incidents, \
            silences, problems, changes, notifications, heartbeats, reports and the audit log; and Alertmanager's \
            API v2 (read and silences), so amtool, karma and Grafana work against it.\n\n\
            Authenticate with `Authorization: Bearer <token>` (or basic auth whose password is the token). \
            Each operation's `x-alertgate-role` names the role it needs (`open`: none). Errors of \
            alertgate's own API are `{\"error\": \"...\", \"detail\": ...}`; those of the Alertmanager API \
            are a JSON string, as Alertmanager answers.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    tags(
        (name = "health", description = "Liveness, readiness, metrics, this document"),
        (name = "ingest", description = "Alerts from senders; a 2xx means durably committed"),
        (name = "alerts", description = "Alerts as stored"),
        (name = "incidents", description = "Incidents and what on-call engineers do to them"),
        (name = "silences", description = "Silences (the same ones as the Alertmanager API's)"),
        (name = "reviews", description = "Post-incident reviews"),
        (name = "action_items", description = "Action items of reviews and problems, tracked to done"),
        (name = "problems", description = "Problems behind recurring incidents"),
        (name = "changes", description = "Changes, deploys and maintenance windows"),
        (name = "notifications", description = "The outbox of notifications"),
        (name = "reports", description = "SLA reports"),
        (name = "heartbeats", description = "Expected pings whose silence opens an incident"),
        (name = "oncall", description = "Schedules, who is on call, overrides, people and calendar feeds"),
        (name = "admin", description = "Rules reload and the audit log"),
        (name = "alertmanager", description = "Alertmanager's API v2, in the shapes of Alertmanager 0.25"),
    ),
)]
struct ApiDoc;

/// The whole document.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(super::api_routes().into_openapi());
    add_conventions(&mut doc);
    doc
}

fn document_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| document().to_json().expect("the OpenAPI document serializes"))
}

/// The OpenAPI 3.1 document of this API.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "health",
    responses((status = 200, description = "This document", body = Object, content_type = "application/json")))]
pub async fn serve() -> axum::response::Response {
    ([(header::CONTENT_TYPE, "application/json")], document_json()).into_response()
}

const BEARER: &str = "bearer";
const BASIC: &str = "basic";
const ERROR_SCHEMA: &str = "ErrorBody";

/// Routes whose handlers neither read a body nor touch the store: they
/// cannot answer 503.
const NEVER_UNAVAILABLE: &[&str] = &["/healthz", "/metrics", PATH, "/api/v2/status", "/api/v2/receivers"];

fn add_conventions(doc: &mut utoipa::openapi::OpenApi) {
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        BEARER,
        http_scheme(HttpAuthScheme::Bearer, "An API token from `auth.tokens` in the config"),
    );
    components.add_security_scheme(
        BASIC,
        http_scheme(
            HttpAuthScheme::Basic,
            "The token as the password, any user name (Alertmanager's and Grafana's `basic_auth`)",
        ),
    );
    for (name, response) in shared_responses() {
        components.responses.insert(name.to_owned(), response.into());
    }
    doc.security = Some(vec![SecurityRequirement::new(BEARER, [""; 0]), SecurityRequirement::new(BASIC, [""; 0])]);
    for (path, item) in doc.paths.paths.iter_mut() {
        for (method, op) in operations(item) {
            // Every route is in `auth::ROUTES`; a test checks both ways.
            let Some(need) = Permission::of(method, path, false) else { continue };
            add_access(op, path, need);
            add_body_errors(op);
            if !NEVER_UNAVAILABLE.contains(&path.as_str()) {
                add_response(op, "503", "Unavailable");
            }
            add_version_header(op);
            name_operation(op);
        }
    }
}

/// Handlers in different modules share names (`list`, `get`): the
/// operation's id is its tag and its handler's name, e.g. `incidents_list`.
fn name_operation(op: &mut Operation) {
    let tag = op.tags.as_ref().and_then(|t| t.first()).cloned().unwrap_or_default();
    if let Some(id) = &mut op.operation_id {
        *id = format!("{tag}_{id}");
    }
}

fn http_scheme(scheme: HttpAuthScheme, description: &str) -> SecurityScheme {
    let mut http = Http::new(scheme);
    http.description = Some(description.to_owned());
    SecurityScheme::Http(http)
}

fn header(schema_type: utoipa::openapi::Type, description: &str) -> Header {
    let mut h = Header::new(utoipa::openapi::ObjectBuilder::new().schema_type(schema_type));
    h.description = Some(description.to_owned());
    h
}

fn operations(item: &mut PathItem) -> Vec<(&'static str, &mut Operation)> {
    [
        ("GET", item.get.as_mut()),
        ("POST", item.post.as_mut()),
        ("PUT", item.put.as_mut()),
        ("PATCH", item.patch.as_mut()),
        ("DELETE", item.delete.as_mut()),
    ]
    .into_iter()
    .filter_map(|(m, op)| op.map(|op| (m, op)))
    .collect()
}

/// The security, the role and the refusals that follow from the route's permission.
fn add_access(op: &mut Operation, path: &str, need: Permission) {
    let role = serde_json::Value::String(need.as_str().to_owned());
    op.extensions.get_or_insert_with(Default::default).insert("x-alertgate-role".to_owned(), role);
    if need == Permission::Open {
        op.security = Some(Vec::new());
        return;
    }
    if matches!(path, "/v2/enqueue" | "/v2/change/enqueue") {
        // The credential may be the body's `routing_key` instead.
        op.security = Some(vec![
            SecurityRequirement::default(),
            SecurityRequirement::new(BEARER, [""; 0]),
            SecurityRequirement::new(BASIC, [""; 0]),
        ]);
    }
    add_response(op, "401", "Unauthorized");
    add_response(op, "403", "Forbidden");
    add_response(op, "429", "TooManyRequests");
}

/// What reading a JSON request body can answer, besides the handler's own.
fn add_body_errors(op: &mut Operation) {
    if op.request_body.is_none() {
        return;
    }
    add_response(op, "400", "BadRequest");
    add_response(op, "413", "PayloadTooLarge");
    add_response(op, "415", "UnsupportedMediaType");
    add_response(op, "503", "Unavailable");
}

/// Refer to a shared response, unless the handler says what it answers
/// with this status itself.
fn add_response(op: &mut Operation, status: &str, shared: &str) {
    op.responses
        .responses
        .entry(status.to_owned())
        .or_insert_with(|| RefOr::Ref(Ref::new(format!("#/components/responses/{shared}"))));
}

fn version_header() -> Header {
    header(utoipa::openapi::Type::String, "alertgate's version, on every answer")
}

fn add_version_header(op: &mut Operation) {
    for response in op.responses.responses.values_mut() {
        if let RefOr::T(r) = response {
            r.headers.insert(super::VERSION_HEADER.to_owned(), version_header().into());
        }
    }
}

fn error_response(description: &str) -> ResponseBuilder {
    ResponseBuilder::new()
        .description(description)
        .content("application/json", Content::new(Some(Ref::from_schema_name(ERROR_SCHEMA))))
        .header(super::VERSION_HEADER, version_header())
}

fn retry_after() -> Header {
    header(utoipa::openapi::Type::Integer, "Seconds to wait before trying again")
}

/// The answers many operations share, by name under `components/responses`.
fn shared_responses() -> Vec<(&'static str, Response)> {
    vec![
        ("BadRequest", error_response("The body is not valid JSON of the expected shape, or not UTF-8").build()),
        (
            "Unauthorized",
            error_response("No token, or one that is not valid")
                .header("WWW-Authenticate", header(utoipa::openapi::Type::String, "`Bearer realm=\"alertgate\"`"))
                .build(),
        ),
        ("Forbidden", error_response("The token's role may not do this; the error names the role needed").build()),
        (
            "TooManyRequests",
            error_response("The caller is over its rate (`limits`)").header("Retry-After", retry_after()).build(),
        ),
        ("PayloadTooLarge", error_response("The body is larger than `--max-body`").build()),
        ("UnsupportedMediaType", error_response("The body is not `Content-Type: application/json`").build()),
        (
            "Unavailable",
            error_response(
                "Storage is busy, full or shutting down, or too many bodies are held at once: nothing was \
                 applied; retry",
            )
            .header("Retry-After", retry_after())
            .build(),
        ),
    ]
}
