//! Wiring for `alertgate serve`: open the store, load the rules, listen,
//! run the background tasks, and shut down gracefully.
use std::io::Write;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use tokio::net::TcpListener;

use crate::api::{self, AppState};
use crate::config::Config;
use crate::rules::RuleError;
use crate::store::{Store, StoreError};

/// How often the tick loop looks at the writer's earliest timer.
const TIMER_POLL: StdDuration = StdDuration::from_millis(100);
/// How often firing alerts past their `endsAt` are resolved and the
/// correlation timers (min_duration, auto_resolve_after) run.
const EXPIRY_INTERVAL: StdDuration = StdDuration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("rules in {dir} are invalid:\n{}", .errors.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
    Rules { dir: String, errors: Vec<RuleError> },
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: std::net::SocketAddr, source: std::io::Error },
    #[error("server failed: {0}")]
    Io(#[from] std::io::Error),
    #[error(
        "refusing to listen on {0} without API tokens: anyone who reaches it could post alerts and act on incidents. \
         Configure auth.tokens, listen on a loopback address, or pass --allow-unauthenticated"
    )]
    Unauthenticated(std::net::SocketAddr),
    #[error("TLS: cannot load {cert} / {key}: {source}")]
    Tls { cert: String, key: String, source: std::io::Error },
}

/// Run until SIGTERM or SIGINT, then drain requests and close the database.
pub async fn serve(config: Config) -> Result<(), ServeError> {
    // Install the handlers before anything is announced: a signal that
    // arrives right after the "listening" line must not kill the process.
    let shutdown = shutdown_signal()?;
    serve_until(config, shutdown).await
}

pub async fn serve_until(
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let rules = config
        .load_rules()
        .map_err(|errors| ServeError::Rules { dir: config.rules_dir.display().to_string(), errors })?;
    tracing::info!(
        dir = %config.rules_dir.display(),
        files = rules.files.len(),
        incident_rules = rules.incident_rules.len(),
        "rules loaded"
    );
    let m = crate::metrics::metrics();
    m.init(&config.notifiers.names());
    m.services.set_limit(config.metrics.max_label_values);
    m.rules_loaded(true);
    let rules: crate::store::SharedRules = Arc::new(std::sync::RwLock::new(Arc::new(rules)));
    let now = crate::clock::now();
    let store = match &config.database_url {
        Some(url) => {
            // The PostgreSQL client blocks (it runs a runtime of its own).
            let (url, cfg, shared, audience) = (url.clone(), config.store, rules.clone(), config.audience());
            tokio::task::spawn_blocking(move || Store::open_postgres(url.expose(), cfg, shared, audience, now))
                .await
                .map_err(|e| crate::store::StoreError::Corrupt(format!("opening the database failed: {e}")))??
        }
        None => Store::open(&config.data_dir, config.store, rules.clone(), config.audience(), now)?,
    };
    tracing::info!(store = %store.describe(), "database open");

    if config.auth.enabled() {
        tracing::info!("API tokens configured: every call but /healthz and /readyz needs one");
    } else if config.listen.ip().is_loopback() {
        tracing::warn!(
            listen = %config.listen,
            "no API tokens configured: every local process may post alerts and act on incidents; \
             listening on loopback only"
        );
    } else if config.allow_unauthenticated {
        tracing::warn!(listen = %config.listen, "no API tokens configured and --allow-unauthenticated: anyone who reaches this address has admin rights");
    } else {
        return Err(ServeError::Unauthenticated(config.listen));
    }
    let tls = match &config.tls {
        None => None,
        Some(t) => {
            // rustls needs a process-wide crypto provider; ring, as reqwest uses.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let cfg = axum_server::tls_rustls::RustlsConfig::from_pem_file(&t.cert_file, &t.key_file).await.map_err(
                |source| ServeError::Tls {
                    cert: t.cert_file.display().to_string(),
                    key: t.key_file.display().to_string(),
                    source,
                },
            )?;
            Some(cfg)
        }
    };
    let listener =
        TcpListener::bind(config.listen).await.map_err(|source| ServeError::Bind { addr: config.listen, source })?;
    let addr = listener.local_addr()?;
    let state = AppState::new(store.clone(), Arc::new(config), rules);
    let reloader = spawn_reload_on_hangup(state.clone(), tls.clone())?;
    // One plain line on stdout, for scripts and tests that bind port 0; a
    // closed stdout is no reason to stop serving.
    let _ = writeln!(std::io::stdout(), "alertgate listening on {addr}").and_then(|()| std::io::stdout().flush());
    tracing::info!(%addr, tls = tls.is_some(), "listening");

    let expiry = tokio::spawn(tick_loop(store.clone()));
    let (stop_outbox, outbox_stopped) = tokio::sync::watch::channel(false);
    let outbox = tokio::spawn(crate::notify::worker::run(
        store.clone(),
        state.config.notifiers.clone(),
        state.config.outbox,
        outbox_stopped,
    ));
    let limiters = state.limiters.clone();
    let forget = tokio::spawn(async move {
        loop {
            tokio::time::sleep(StdDuration::from_secs(60)).await;
            limiters.forget_idle();
        }
    });
    // Live console pages (SSE) end when shutdown starts, or a graceful
    // shutdown would wait on them forever.
    let feed = store.feed().clone();
    let shutdown = async move {
        shutdown.await;
        feed.close();
    };
    let routes = api::routes(&state).merge(crate::web::router(state.clone()));
    let app = api::finish(routes, state.clone()).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let limits = &state.config.limits;
    let registry = crate::connections::Registry::new(crate::connections::effective_cap(
        limits.max_connections,
        crate::connections::open_file_limit(),
    ));
    tracing::info!(max_connections = registry.cap(), "connection cap");
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down: finishing in-flight requests");
        stopper.graceful_shutdown(Some(StdDuration::from_secs(30)));
    });
    let bounded = crate::connections::Bounded::new(registry);
    let mut server = axum_server::from_tcp(listener.into_std()?)?.handle(handle);
    // A request head (the first, or the next one on a kept-alive
    // connection) must arrive in full within the header timeout: slow or
    // silent clients cannot hold a connection.
    let header_timeout = limits.header_timeout.std();
    server.http_builder().http1().header_read_timeout(Some(header_timeout));
    server
        .http_builder()
        .http2()
        .keep_alive_interval(Some(StdDuration::from_secs(30)))
        .keep_alive_timeout(header_timeout);
    let server = server.first_request_timeout(header_timeout);
    let result = match tls {
        None => server.acceptor(bounded).serve(app).await,
        Some(cfg) => {
            let tls =
                axum_server::tls_rustls::RustlsAcceptor::new(cfg).handshake_timeout(header_timeout).acceptor(bounded);
            server.acceptor(tls).serve(app).await
        }
    };
    expiry.abort();
    let _ = stop_outbox.send(true);
    let _ = outbox.await;
    forget.abort();
    reloader.abort();
    store.close(crate::clock::now()).await;
    result?;
    tracing::info!("stopped");
    Ok(())
}

/// SIGHUP reloads the rules, as in Prometheus. The handler is installed
/// before the gateway says it listens, so an early HUP cannot kill it.
fn spawn_reload_on_hangup(
    state: AppState,
    tls: Option<axum_server::tls_rustls::RustlsConfig>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    #[cfg(unix)]
    {
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        Ok(tokio::spawn(async move {
            while hup.recv().await.is_some() {
                let result = state.reload_rules();
                if let Err(errors) = &result {
                    for e in errors {
                        tracing::error!(error = %e, "rule reload refused; the old rules keep running");
                    }
                }
                let detail = serde_json::json!({ "ok": result.is_ok(), "trigger": "SIGHUP" });
                if let Err(e) = state.store.audit("rules.reload", "signal".into(), detail, crate::clock::now()).await {
                    tracing::warn!(error = %e, "recording the reload in the audit log failed");
                }
                // A renewed certificate is picked up without a restart.
                if let (Some(cfg), Some(files)) = (&tls, &state.config.tls) {
                    match cfg.reload_from_pem_file(&files.cert_file, &files.key_file).await {
                        Ok(()) => tracing::info!("TLS certificate reloaded"),
                        Err(e) => tracing::error!(error = %e, "TLS reload failed; the old certificate stays"),
                    }
                }
            }
        }))
    }
    #[cfg(not(unix))]
    {
        Ok(tokio::spawn(async move {
            let _ = (state, tls);
        }))
    }
}

/// Runs the timers as wall-clock time passes. On a controlled clock
/// (`--test-clock`), `POST /-/clock` runs them itself as it moves time
/// (`api/clock.rs`), so a test need not wait for this loop's next round.
async fn tick_loop(store: Store) {
    let mut last = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(TIMER_POLL).await;
        let now = crate::clock::now();
        // An SLA milestone or escalation step due now ticks at once; the
        // regular round expires alerts and runs the grouping timers.
        let timer_due = store.next_timer().is_some_and(|due| due <= now);
        if !timer_due && last.elapsed() < EXPIRY_INTERVAL {
            continue;
        }
        last = tokio::time::Instant::now();
        match store.tick(now).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(alerts = n, "resolved alerts past their endsAt"),
            Err(StoreError::Closed) => return,
            Err(e) => tracing::warn!(error = %e, "the timer tick failed"),
        }
    }
}

/// The handlers are installed when this is called, not when the future is
/// first polled.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}
