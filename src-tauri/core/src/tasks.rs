//! Owned tasks: everything the core spawns belongs to one `Tasks`, which can cancel
//! it and wait for it. Operations (create, start, stop, delete, setup) run here
//! detached from whoever asked, so a client that hangs up changes nothing; the
//! shutdown closes the door to new ones, cancels long waits and waits for them.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};
use tokio_util::task::TaskTracker;

/// The core's tasks. Cheap to clone; clones share everything.
#[derive(Clone, Default)]
pub struct Tasks {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Operations: awaited by the shutdown.
    ops: TaskTracker,
    /// Followers (events, readiness): cancelled by the shutdown.
    background: TaskTracker,
    cancel: CancellationToken,
    closing: AtomicBool,
}

impl Tasks {
    /// Runs an operation detached from the caller; `None` once the shutdown began.
    pub fn spawn_op<F>(&self, work: F) -> Option<JoinHandle<F::Output>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        if self.is_closing() {
            return None;
        }
        Some(self.inner.ops.spawn(work))
    }

    /// Runs a follower until it ends or the shutdown begins.
    pub fn spawn_background<F>(&self, work: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let cancel = self.inner.cancel.clone();
        self.inner.background.spawn(async move {
            tokio::select! {
                () = cancel.cancelled() => {}
                () = work => {}
            }
        });
    }

    pub fn is_closing(&self) -> bool {
        self.inner.closing.load(Ordering::SeqCst)
    }

    /// Resolves when the shutdown has begun: long waits select on it.
    pub fn closed(&self) -> WaitForCancellationFuture<'_> {
        self.inner.cancel.cancelled()
    }

    /// Refuses new operations and cancels long waits (health polls, pulls) and
    /// followers. Operations already running go on to a safe end.
    pub fn close(&self) {
        self.inner.closing.store(true, Ordering::SeqCst);
        self.inner.ops.close();
        self.inner.background.close();
        self.inner.cancel.cancel();
    }

    /// Operations still running.
    pub fn ops_running(&self) -> usize {
        self.inner.ops.len()
    }

    /// Resolves when every operation has ended (after [`Tasks::close`]).
    pub async fn ops_done(&self) {
        self.inner.ops.wait().await;
    }

    /// Resolves when every follower has ended (after [`Tasks::close`]).
    pub async fn background_done(&self) {
        self.inner.background.wait().await;
    }
}
