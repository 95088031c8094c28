//! What each agent costs (memory used and allowed, CPU), sampled from the engine's
//! stats every two seconds and only while at least one client watches: with nobody
//! watching, nothing is asked of the engine for it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, Notify};
use uuid::Uuid;

use super::state::Container;
use super::Agents;

/// Between two samples.
pub const INTERVAL: Duration = Duration::from_secs(2);

/// One agent's resource use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentStats {
    pub id: Uuid,
    pub memory_bytes: u64,
    pub memory_limit_bytes: u64,
    /// Percent of one CPU core since the previous sample; `None` in the first.
    pub cpu_percent: Option<f64>,
    pub pids: u64,
}

/// The running agents' use at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatsSample {
    pub at: DateTime<Utc>,
    pub agents: Vec<AgentStats>,
}

/// The samples and who watches them.
pub(super) struct StatsHub {
    samples: broadcast::Sender<Arc<StatsSample>>,
    /// Wakes the sampler when a watcher leaves, so the last one stops it at once.
    left: Notify,
    sampling: AtomicBool,
}

impl Default for StatsHub {
    fn default() -> Self {
        Self {
            samples: broadcast::channel(4).0,
            left: Notify::new(),
            sampling: AtomicBool::new(false),
        }
    }
}

/// A client's subscription to the samples; dropping it may stop the sampling.
pub struct StatsWatch {
    samples: Option<broadcast::Receiver<Arc<StatsSample>>>,
    hub: Arc<StatsHub>,
}

impl StatsWatch {
    /// The next sample (a watcher that fell behind gets the newest); `None` once
    /// the app shuts down.
    pub async fn next(&mut self) -> Option<Arc<StatsSample>> {
        let samples = self.samples.as_mut()?;
        loop {
            match samples.recv().await {
                Ok(sample) => return Some(sample),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

impl Drop for StatsWatch {
    fn drop(&mut self) {
        self.samples.take();
        self.hub.left.notify_waiters();
    }
}

impl Agents {
    /// Subscribes to the samples, starting the sampler if nobody watched.
    pub fn watch_stats(&self) -> StatsWatch {
        let hub = self.inner.stats.clone();
        let samples = hub.samples.subscribe();
        if !hub.sampling.swap(true, Ordering::SeqCst) {
            let this = self.clone();
            self.inner
                .tasks
                .spawn_background(async move { this.sample_while_watched().await });
        }
        StatsWatch {
            samples: Some(samples),
            hub,
        }
    }

    /// Whether the sampler runs (someone watches).
    pub fn stats_sampling(&self) -> bool {
        self.inner.stats.sampling.load(Ordering::SeqCst)
    }

    async fn sample_while_watched(self) {
        let hub = self.inner.stats.clone();
        let mut previous = HashMap::new();
        loop {
            while hub.samples.receiver_count() > 0 {
                let left = hub.left.notified();
                tokio::select! {
                    sample = self.sample(&mut previous) => {
                        let _no_watcher = hub.samples.send(Arc::new(sample));
                    }
                    () = left => continue,
                    () = self.inner.tasks.closed() => return,
                }
                let left = hub.left.notified();
                tokio::select! {
                    () = tokio::time::sleep(INTERVAL) => {}
                    () = left => {}
                    () = self.inner.tasks.closed() => return,
                }
            }
            hub.sampling.store(false, Ordering::SeqCst);
            // A watcher that came while this one was leaving finds it still marked
            // as running: carry on for it.
            if hub.samples.receiver_count() == 0 || hub.sampling.swap(true, Ordering::SeqCst) {
                return;
            }
        }
    }

    /// One sample of this folder's running containers; CPU from the difference
    /// with the previous sample of the same container. Which containers run is
    /// known from the event stream: one stats request, no listing before it (a
    /// listing every 2 s doubled what an open window cost).
    async fn sample(&self, previous: &mut HashMap<String, (u64, u64)>) -> StatsSample {
        let at = Utc::now();
        // By ID, never by name: a name another program took (or a stale one)
        // would fail the whole sample.
        let running: Vec<(String, Uuid)> = self
            .states()
            .into_iter()
            .filter(|s| s.live.container == Container::Running)
            .filter_map(|s| Some((s.live.container_id?.0, s.record.id)))
            .collect();
        let ids: Vec<String> = running.iter().map(|(c, _)| c.clone()).collect();
        let raw = match self.containers().stats(&ids).await {
            Ok(raw) => raw,
            Err(e) => {
                tracing::debug!(error = %e, "the engine's stats failed");
                Vec::new()
            }
        };
        let mut agents = Vec::new();
        let mut seen = HashMap::new();
        for r in raw {
            let Some(agent) = running
                .iter()
                .find(|(c, _)| same_container(c, &r.container_id))
                .map(|(_, a)| *a)
            else {
                continue;
            };
            let cpu_percent = previous
                .get(&r.container_id)
                .filter(|(_, at)| r.system_nano > *at)
                .map(|(cpu, at)| {
                    r.cpu_nano.saturating_sub(*cpu) as f64 / (r.system_nano - at) as f64 * 100.0
                });
            seen.insert(r.container_id.clone(), (r.cpu_nano, r.system_nano));
            agents.push(AgentStats {
                id: agent,
                memory_bytes: r.mem_usage,
                memory_limit_bytes: r.mem_limit,
                cpu_percent,
                pids: r.pids,
            });
        }
        *previous = seen;
        StatsSample { at, agents }
    }
}

/// Podman prints a container's ID whole or shortened: one is a prefix of the other.
fn same_container(a: &str, b: &str) -> bool {
    !a.is_empty() && !b.is_empty() && (a.starts_with(b) || b.starts_with(a))
}
