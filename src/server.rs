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
    let rules: crate::store::SharedRules = Arc::new(std::sync::RwLock::new(Arc::new(rules)));
    let store = Store::open(&config.data_dir, config.store, rules.clone(), config.notifiers.subscriptions())?;
    tracing::info!(path = %store.path().display(), "database open");

    let listener =
        TcpListener::bind(config.listen).await.map_err(|source| ServeError::Bind { addr: config.listen, source })?;
    let addr = listener.local_addr()?;
    let state = AppState::new(store.clone(), Arc::new(config), rules);
    let reloader = spawn_reload_on_hangup(state.clone())?;
    // One plain line on stdout, for scripts and tests that bind port 0.
    println!("alertgate listening on {addr}");
    let _ = std::io::stdout().flush();
    tracing::info!(%addr, "listening");

    let expiry = tokio::spawn(tick_loop(store.clone()));
    let outbox =
        tokio::spawn(crate::notify::worker::run(store.clone(), state.config.notifiers.clone(), state.config.outbox));
    let app = api::router(state);
    let result = axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("shutting down: finishing in-flight requests");
        })
        .await;
    expiry.abort();
    outbox.abort();
    reloader.abort();
    store.close().await;
    result?;
    tracing::info!("stopped");
    Ok(())
}

/// SIGHUP reloads the rules, as in Prometheus. The handler is installed
/// before the gateway says it listens, so an early HUP cannot kill it.
fn spawn_reload_on_hangup(state: AppState) -> std::io::Result<tokio::task::JoinHandle<()>> {
    #[cfg(unix)]
    {
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        Ok(tokio::spawn(async move {
            while hup.recv().await.is_some() {
                if let Err(errors) = state.reload_rules() {
                    for e in &errors {
                        tracing::error!(error = %e, "rule reload refused; the old rules keep running");
                    }
                }
            }
        }))
    }
    #[cfg(not(unix))]
    {
        Ok(tokio::spawn(async move {
            let _ = state;
        }))
    }
}

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
