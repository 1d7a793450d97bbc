//! Test support: runs a check at every log line written on this thread, so a test can show
//! that no line is written while a lock is held (a log line may block on its output, and
//! nobody else should wait on that).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use tracing::subscriber::DefaultGuard;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// What the probe saw.
#[derive(Debug, Default)]
pub struct LogProbe {
    lines: AtomicUsize,
    failed: AtomicUsize,
}

impl LogProbe {
    /// Log lines written since the probe was set.
    pub fn lines(&self) -> usize {
        self.lines.load(Relaxed)
    }

    /// Lines written while the check failed.
    pub fn failed(&self) -> usize {
        self.failed.load(Relaxed)
    }
}

struct ProbeLayer<F> {
    check: F,
    probe: Arc<LogProbe>,
}

impl<S: tracing::Subscriber, F: Fn() -> bool + Send + Sync + 'static> Layer<S> for ProbeLayer<F> {
    fn on_event(&self, _: &tracing::Event<'_>, _: Context<'_, S>) {
        self.probe.lines.fetch_add(1, Relaxed);
        if !(self.check)() {
            self.probe.failed.fetch_add(1, Relaxed);
        }
    }
}

/// Runs `check` at every log line on this thread until the guard is dropped.
pub fn probe_logs(
    check: impl Fn() -> bool + Send + Sync + 'static,
) -> (DefaultGuard, Arc<LogProbe>) {
    let probe = Arc::new(LogProbe::default());
    let layer = ProbeLayer {
        check,
        probe: probe.clone(),
    };
    let guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
    (guard, probe)
}
