//! Connection bounds: at most `max` connections at once, so a stranger who
//! opens connections and sends nothing cannot take every file descriptor.
//! At the cap, a new connection closes the connection that has been idle
//! longest (no request in progress); when every connection is busy, the
//! new one is closed instead. Timeouts on request heads live in the HTTP
//! builder (`server.rs`); this module only counts and evicts.
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// File descriptors kept free of connections: the database, its WAL, the
/// read pool, outgoing notifications, logs.
const RESERVED_FDS: u64 = 128;

/// The soft limit on open files, raised to the hard limit first (as Go's
/// runtime does): connections are the one use that scales with load.
pub fn open_file_limit() -> Option<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut lim = getrlimit(Resource::Nofile);
    if lim.current < lim.maximum {
        let raised = rustix::process::Rlimit { current: lim.maximum, maximum: lim.maximum };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            lim = raised;
        }
    }
    // `None` in either field means unlimited.
    lim.current
}

/// The connection cap: the configured one, but never more than the file
/// limit leaves room for.
pub fn effective_cap(configured: usize, file_limit: Option<u64>) -> usize {
    match file_limit {
        Some(l) => configured.min(l.saturating_sub(RESERVED_FDS).max(16) as usize),
        None => configured,
    }
}

/// One open connection, as the registry sees it.
struct Entry {
    /// Milliseconds since the registry started, at the last byte read or written.
    last_active: AtomicU64,
    /// Requests being served on it right now.
    in_flight: AtomicUsize,
    evicted: AtomicBool,
    waker: AtomicWaker,
}

impl Entry {
    fn evict(&self) {
        self.evicted.store(true, Ordering::Release);
        self.waker.wake();
    }
}

/// Every open connection; shared by the acceptor and the streams.
pub struct Registry {
    cap: usize,
    started: std::time::Instant,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Entry>>>,
}

impl Registry {
    pub fn new(cap: usize) -> Arc<Registry> {
        Arc::new(Registry {
            cap: cap.max(1),
            started: std::time::Instant::now(),
            next_id: AtomicU64::new(0),
            open: Mutex::default(),
        })
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    pub fn open_count(&self) -> usize {
        self.open.lock().expect("connection registry").len()
    }

    fn now(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Register a new connection, making room first; `None` when every
    /// open connection is busy and this one must be refused.
    fn admit(self: &Arc<Self>) -> Option<(u64, Arc<Entry>)> {
        let mut open = self.open.lock().expect("connection registry");
        if open.len() >= self.cap {
            let idle = open
                .values()
                .filter(|e| e.in_flight.load(Ordering::Acquire) == 0 && !e.evicted.load(Ordering::Acquire))
                .min_by_key(|e| e.last_active.load(Ordering::Relaxed))?;
            idle.evict();
            crate::metrics::metrics().connections_evicted.inc();
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let entry = Arc::new(Entry {
            last_active: AtomicU64::new(self.now()),
            in_flight: AtomicUsize::new(0),
            evicted: AtomicBool::new(false),
            waker: AtomicWaker::new(),
        });
        open.insert(id, entry.clone());
        crate::metrics::metrics().connections_open.set(open.len() as i64);
        Some((id, entry))
    }

    fn forget(&self, id: u64) {
        let mut open = self.open.lock().expect("connection registry");
        open.remove(&id);
        crate::metrics::metrics().connections_open.set(open.len() as i64);
    }
}

/// The acceptor that counts connections (wrapping an inner one, e.g. TLS
/// around it).
#[derive(Clone)]
pub struct Bounded {
    registry: Arc<Registry>,
}

impl Bounded {
    pub fn new(registry: Arc<Registry>) -> Bounded {
        Bounded { registry }
    }
}

impl<I, S> axum_server::accept::Accept<I, S> for Bounded
where
    I: Send + 'static,
    S: Send + 'static,
{
    type Stream = Tracked<I>;
    type Service = TrackedService<S>;
    type Future = std::future::Ready<io::Result<(Self::Stream, Self::Service)>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let Some((id, entry)) = self.registry.admit() else {
            crate::metrics::metrics().connections_refused.inc();
            return std::future::ready(Err(io::Error::other("connection cap reached and every connection is busy")));
        };
        let tracked = Tracked { inner: stream, id, entry: entry.clone(), registry: self.registry.clone() };
        std::future::ready(Ok((tracked, TrackedService { inner: service, entry, registry: self.registry.clone() })))
    }
}

/// A connection's byte stream: records activity, and reads end (EOF) once
/// the connection is evicted, so the HTTP layer closes it.
pub struct Tracked<I> {
    inner: I,
    id: u64,
    entry: Arc<Entry>,
    registry: Arc<Registry>,
}

impl<I> Tracked<I> {
    fn touch(&self) {
        self.entry.last_active.store(self.registry.now(), Ordering::Relaxed);
    }
}

impl<I> Drop for Tracked<I> {
    fn drop(&mut self) {
        self.registry.forget(self.id);
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Tracked<I> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        self.entry.waker.register(cx.waker());
        if self.entry.evicted.load(Ordering::Acquire) {
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.touch();
        }
        r
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Tracked<I> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The connection's service: counts the requests in progress on it, so a
/// busy connection is never the one evicted.
#[derive(Clone)]
pub struct TrackedService<S> {
    inner: S,
    entry: Arc<Entry>,
    registry: Arc<Registry>,
}

/// Ends a request's in-progress mark, however the request ends.
struct InFlight {
    entry: Arc<Entry>,
    registry: Arc<Registry>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.entry.last_active.store(self.registry.now(), Ordering::Relaxed);
        self.entry.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<S, R> tower_service::Service<R> for TrackedService<S>
where
    S: tower_service::Service<R>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        self.entry.in_flight.fetch_add(1, Ordering::AcqRel);
        let mark = InFlight { entry: self.entry.clone(), registry: self.registry.clone() };
        let fut = self.inner.call(req);
        Box::pin(async move {
            let _mark = mark;
            fut.await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_the_cap_the_longest_idle_connection_makes_room() {
        let r = Registry::new(2);
        let (_, a) = r.admit().unwrap();
        let (_, b) = r.admit().unwrap();
        a.last_active.store(10, Ordering::Relaxed);
        b.last_active.store(5, Ordering::Relaxed);
        let (_, _c) = r.admit().unwrap();
        assert!(b.evicted.load(Ordering::Acquire), "the longest idle goes");
        assert!(!a.evicted.load(Ordering::Acquire));
    }

    #[test]
    fn a_busy_connection_is_never_evicted() {
        let r = Registry::new(1);
        let (_, a) = r.admit().unwrap();
        a.in_flight.store(1, Ordering::Release);
        assert!(r.admit().is_none(), "the new one is refused instead");
        assert!(!a.evicted.load(Ordering::Acquire));
    }

    #[test]
    fn the_cap_leaves_room_for_the_files_the_gateway_needs() {
        assert_eq!(effective_cap(4096, Some(1024)), 896);
        assert_eq!(effective_cap(100, Some(1024)), 100);
        assert_eq!(effective_cap(4096, None), 4096);
    }
}
