//! Process lifecycle: the shutdown signal passed to every task, the health
//! state behind `/healthz` and `/readyz`, and the reload requests and file
//! watches behind hot reload.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A cloneable shutdown flag; every loop checks it between units of work.
#[derive(Debug, Clone, Default)]
pub struct Shutdown(Arc<AtomicBool>);

impl Shutdown {
    /// A flag that is not yet triggered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks every holder to finish in-flight work and stop.
    pub fn trigger(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether shutdown was requested.
    pub fn is_triggered(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Readiness inputs, written by the pipeline and read by the HTTP endpoint.
#[derive(Debug, Default)]
pub struct Health {
    assigned: AtomicUsize,
    restoring: AtomicUsize,
    broker_ok: AtomicBool,
    stopping: AtomicBool,
}

impl Health {
    /// A fresh, not-ready state.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Records how many input partitions are assigned and restored.
    pub fn set_assigned(&self, n: usize) {
        self.assigned.store(n, Ordering::Relaxed);
    }

    /// Records how many assigned partitions are still rebuilding their state.
    pub fn set_restoring(&self, n: usize) {
        self.restoring.store(n, Ordering::Relaxed);
    }

    /// How many assigned partitions are still rebuilding their state.
    pub fn restoring(&self) -> usize {
        self.restoring.load(Ordering::Relaxed)
    }

    /// Records whether the broker answered recently.
    pub fn set_broker_ok(&self, ok: bool) {
        self.broker_ok.store(ok, Ordering::Relaxed);
    }

    /// Marks the process as shutting down: no longer ready.
    pub fn set_stopping(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    /// Ready: partitions assigned and restored, broker reachable, not stopping.
    pub fn is_ready(&self) -> bool {
        self.assigned.load(Ordering::Relaxed) > 0
            && self.restoring.load(Ordering::Relaxed) == 0
            && self.broker_ok.load(Ordering::Relaxed)
            && !self.stopping.load(Ordering::Relaxed)
    }
}

static RELOAD_GENERATION: AtomicU64 = AtomicU64::new(0);

/// Asks every watcher to reload rules and models (what SIGHUP does).
pub fn request_reload() {
    RELOAD_GENERATION.fetch_add(1, Ordering::SeqCst);
}

/// Increases with every [`request_reload`]; watchers compare it with the last they saw.
pub fn reload_generation() -> u64 {
    RELOAD_GENERATION.load(Ordering::SeqCst)
}

/// Raises the soft limit on open file descriptors to the hard limit (as Go's
/// runtime does), so HTTP connections and the Kafka clients' sockets have room;
/// returns the soft limit then in force (`u64::MAX` when unlimited or unknown).
pub fn raise_fd_limit() -> u64 {
    #[cfg(unix)]
    {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit and setrlimit only read and write the struct given.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
                return u64::MAX;
            }
            if lim.rlim_cur < lim.rlim_max {
                let raised = libc::rlimit {
                    rlim_cur: lim.rlim_max,
                    rlim_max: lim.rlim_max,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    lim = raised;
                }
            }
        }
        lim.rlim_cur
    }
    #[cfg(not(unix))]
    u64::MAX
}

/// Runs `on_change` on a thread named `name` each time changes to files that
/// `ours` accepts, in the folders `dirs` (and below them when `recursive`),
/// have settled: a save is several events (truncate and write, or write and
/// rename). Stops when `shutdown` triggers; an error when a folder cannot be
/// watched. The hot reload of rules and models.
pub fn watch_files(
    name: &str,
    dirs: &[&Path],
    recursive: bool,
    ours: impl Fn(&notify::Event) -> bool + Send + 'static,
    shutdown: Shutdown,
    mut on_change: impl FnMut() + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    use notify::{RecursiveMode, Watcher};
    use std::sync::mpsc::RecvTimeoutError;
    let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if ev.is_ok_and(|e| !matches!(e.kind, notify::EventKind::Access(_)) && ours(&e)) {
            // A full channel already means "reload pending".
            let _ = tx.try_send(());
        }
    })
    .map_err(std::io::Error::other)?;
    let mode = match recursive {
        true => RecursiveMode::Recursive,
        false => RecursiveMode::NonRecursive,
    };
    for dir in dirs {
        watcher
            .watch(dir, mode)
            .map_err(|e| std::io::Error::other(format!("{}: cannot watch: {e}", dir.display())))?;
    }
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let _keep = watcher;
            while !shutdown.is_triggered() {
                match rx.recv_timeout(Duration::from_millis(200)) {
                    Ok(()) => {
                        // Let the writer finish before reading.
                        while rx.recv_timeout(Duration::from_millis(150)).is_ok() {}
                        on_change();
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            }
        })
}
