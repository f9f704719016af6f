//! A background thread that runs a sweep every interval and stops when its owner is closed or dropped.

use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Mutex, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

/// Owns the sweep thread; dropping it (or calling [`Sweeper::stop`]) ends the thread promptly.
pub(crate) struct Sweeper {
    stop: Mutex<Option<(Sender<()>, JoinHandle<()>)>>,
}

impl Sweeper {
    /// Runs `sweep(&target)` every `interval` while `target` is alive. Holds only a weak reference, so the
    /// store's state is freed when its last owner goes, whatever the thread is doing.
    pub(crate) fn spawn<T: Send + Sync + 'static>(
        name: &str,
        interval: Duration,
        target: Weak<T>,
        sweep: fn(&T),
    ) -> Self {
        let (tx, rx) = mpsc::channel::<()>();
        let handle = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || loop {
                match rx.recv_timeout(interval) {
                    Err(RecvTimeoutError::Timeout) => match target.upgrade() {
                        Some(t) => sweep(&t),
                        None => return,
                    },
                    // A message or a dropped sender both mean "stop".
                    _ => return,
                }
            });
        let stop = match handle {
            Ok(h) => Some((tx, h)),
            Err(e) => {
                // Without a thread the store still works; expired entries are then removed lazily and by cleanup().
                tracing::warn!(error = %e, "could not start the background sweep thread");
                None
            }
        };
        Sweeper {
            stop: Mutex::new(stop),
        }
    }

    /// A sweeper that never runs (background sweep disabled).
    pub(crate) fn disabled() -> Self {
        Sweeper {
            stop: Mutex::new(None),
        }
    }

    /// Stops the thread and waits for it (at most one sweep in progress).
    pub(crate) fn stop(&self) {
        let taken = self.stop.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some((tx, handle)) = taken {
            let _ = tx.send(());
            drop(tx);
            if handle.thread().id() != std::thread::current().id() {
                let _ = handle.join();
            }
        }
    }

    /// Whether the thread is still meant to run.
    pub(crate) fn is_running(&self) -> bool {
        self.stop
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|(_, h)| !h.is_finished())
    }
}

impl Drop for Sweeper {
    fn drop(&mut self) {
        self.stop();
    }
}
