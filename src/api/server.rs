//! The API's connections: the accept loop, and what one connection may cost.
//!
//! A local process can open connections and send nothing, or trickle a request head a byte at a
//! time, or never read its answer. Each connection here must send a whole request head within
//! `api.header_timeout` (hyper's header-read timer, which also runs between requests on a
//! kept-alive connection), is closed when nothing is read or written for `api.idle_timeout`,
//! and at most `api.max_connections` are served at once — never more than a quarter of the
//! process's open-file limit, so the store, the spool, the scheduler and the snapshot refresh
//! always have descriptors left. A connection beyond the cap is accepted and closed at once
//! (leaving it in the kernel's queue would keep it waiting for its whole timeout); when the
//! process has no descriptor left for `accept`, the loop backs off instead of spinning.
//!
//! Routing, security and the documents are elsewhere (`routes`, `security`); this module only
//! moves bytes.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tracing::warn;

use crate::config::ApiConfig;

/// What one connection may cost.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

impl Limits {
    /// The configuration's limits, the cap brought down to a quarter of the descriptor limit.
    pub fn from_config(cfg: &ApiConfig) -> Limits {
        let configured = usize::try_from(cfg.max_connections).unwrap_or(usize::MAX);
        let cap = match descriptor_limit() {
            Some(n) => configured.min((n / 4).max(1)),
            None => configured,
        };
        Limits { header_timeout: cfg.header_timeout, idle_timeout: cfg.idle_timeout, max_connections: cap.max(1) }
    }
}

/// Raises the process's soft open-file limit to its hard limit (what systemd's `LimitNOFILE`
/// or the administrator allows), and returns the soft limit in force.
pub fn descriptor_limit() -> Option<usize> {
    #[cfg(unix)]
    {
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit and setrlimit only read and write the struct given.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
                return None;
            }
            if lim.rlim_cur < lim.rlim_max {
                let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    lim = raised;
                }
            }
        }
        Some(usize::try_from(lim.rlim_cur).unwrap_or(usize::MAX))
    }
    #[cfg(not(unix))]
    None
}

/// Serves `router` on `listener` until `shutdown` turns true; then lets the open connections
/// finish their current request and waits for them.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: Limits,
    shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    let stop = stopped(shutdown.clone());
    tokio::pin!(stop);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut conns = tokio::task::JoinSet::new();
    let mut warned_full: Option<Instant> = None;
    let mut warned_fds: Option<Instant> = None;
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) if out_of_descriptors(&e) => {
                    note(&mut warned_fds, || warn!("API: no file descriptor left to accept a connection ({e}); waiting for some to close"));
                    // A back-off while the table is full: accept would fail again at once.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                Err(e) if transient(&e) => continue,
                Err(e) => return Err(e),
            },
            _ = &mut stop => break,
        };
        while conns.try_join_next().is_some() {}
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            note(&mut warned_full, || {
                warn!(
                    cap = limits.max_connections,
                    "API: every connection slot is taken; closing new connections until some end"
                )
            });
            drop(stream);
            continue;
        };
        let router = router.clone();
        let stop = shutdown.clone();
        conns.spawn(async move {
            serve_one(stream, router, limits, stop).await;
            drop(permit);
        });
    }
    while conns.join_next().await.is_some() {}
    Ok(())
}

/// Resolves once the stop signal is on.
async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

/// Logs at most once a minute.
fn note(last: &mut Option<Instant>, log: impl FnOnce()) {
    if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
        *last = Some(Instant::now());
        log();
    }
}

fn out_of_descriptors(e: &io::Error) -> bool {
    #[cfg(unix)]
    {
        matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOBUFS) | Some(libc::ENOMEM))
    }
    #[cfg(not(unix))]
    {
        let _ = e;
        false
    }
}

/// A connection that went away before it was accepted.
fn transient(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset | io::ErrorKind::Interrupted)
}

async fn serve_one(stream: TcpStream, router: axum::Router, limits: Limits, stop: watch::Receiver<bool>) {
    let stop = stopped(stop);
    tokio::pin!(stop);
    let _ = stream.set_nodelay(true);
    let epoch = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let io = TokioIo::new(Watched { inner: stream, epoch, last: last.clone() });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    let conn = builder.serve_connection(io, TowerToHyperService::new(router));
    tokio::pin!(conn);
    let idle = async {
        loop {
            let quiet_since = epoch + Duration::from_millis(last.load(Ordering::Relaxed));
            let until = quiet_since + limits.idle_timeout;
            if Instant::now() >= until {
                return;
            }
            tokio::time::sleep_until(until.into()).await;
        }
    };
    tokio::pin!(idle);
    let mut stopping = false;
    loop {
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = &mut idle => return,
            _ = &mut stop, if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// A stream that records when bytes last moved either way (milliseconds since `epoch`).
struct Watched {
    inner: TcpStream,
    epoch: Instant,
    last: Arc<AtomicU64>,
}

impl Watched {
    fn moved(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(ms, Ordering::Relaxed);
    }
}

impl AsyncRead for Watched {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.moved();
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.moved();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.moved();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
