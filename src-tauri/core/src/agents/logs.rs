//! Each agent's log: a ring of the last 1000 lines with live followers.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

pub const RING_LINES: usize = 1000;

/// One agent's recent lines. Replay and subscription happen under one lock, so a
/// follower neither misses nor repeats a line.
#[derive(Clone)]
pub struct LogRing {
    inner: Arc<Mutex<Ring>>,
}

struct Ring {
    lines: VecDeque<String>,
    live: broadcast::Sender<String>,
}

impl Default for LogRing {
    fn default() -> Self {
        let (live, _) = broadcast::channel(RING_LINES);
        Self {
            inner: Arc::new(Mutex::new(Ring {
                lines: VecDeque::with_capacity(64),
                live,
            })),
        }
    }
}

impl LogRing {
    /// Adds a line as it is.
    pub fn push_raw(&self, line: impl Into<String>) {
        let line = line.into();
        let mut ring = self.lock();
        if ring.lines.len() == RING_LINES {
            ring.lines.pop_front();
        }
        ring.lines.push_back(line.clone());
        let _no_follower = ring.live.send(line);
    }

    /// Adds an operation line, prefixed with the local time like `[14:03:07] `.
    pub fn push(&self, line: impl AsRef<str>) {
        let stamp = chrono::Local::now().format("%H:%M:%S");
        self.push_raw(format!("[{stamp}] {}", line.as_ref()));
    }

    /// The lines so far and a receiver for the ones to come.
    pub fn follow(&self) -> (Vec<String>, broadcast::Receiver<String>) {
        let ring = self.lock();
        (ring.lines.iter().cloned().collect(), ring.live.subscribe())
    }

    pub fn snapshot(&self) -> Vec<String> {
        self.lock().lines.iter().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ring> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_keeps_the_last_lines() {
        let ring = LogRing::default();
        for i in 0..1500 {
            ring.push_raw(format!("line {i}"));
        }
        let lines = ring.snapshot();
        assert_eq!(lines.len(), RING_LINES);
        assert_eq!(lines[0], "line 500");
        assert_eq!(lines[RING_LINES - 1], "line 1499");
    }

    #[tokio::test]
    async fn follow_replays_then_streams() {
        let ring = LogRing::default();
        ring.push("one");
        let (replay, mut live) = ring.follow();
        ring.push_raw("two");
        assert_eq!(replay.len(), 1);
        assert!(replay[0].ends_with("] one") && replay[0].starts_with('['));
        assert_eq!(live.recv().await.expect("live"), "two");
    }
}
