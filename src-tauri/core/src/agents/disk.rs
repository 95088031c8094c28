//! What each agent takes on the disk and its limit: its folders (config,
//! workspace, cache, which the agent writes), its container's writable layer and
//! its log, measured every minute while it runs and before each start. An agent
//! over its limit is stopped (or not started) with a reason the user can act on:
//! free space in its workspace, or raise the limit in Settings. Its log is capped
//! by the container's own spec ([`crate::sizing::CONTAINER_LOG_MAX_BYTES`]).

use std::time::Duration;

use uuid::Uuid;

use super::state::{Container, Input, Op};
use super::{AgentError, Agents};
use crate::container::Found;
use crate::disk_use::Measured;
use crate::machine::Mode;
use crate::store::AgentStatus;

/// How long one count of an agent's folders may take: a count that runs out is a
/// lower bound, which still stops an agent already past its limit.
const COUNT_BUDGET: Duration = Duration::from_secs(20);

/// An agent's disk use, as measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DiskUse {
    pub folders: Measured,
    pub layer_bytes: u64,
    pub log_bytes: u64,
}

impl DiskUse {
    pub fn total(&self) -> u64 {
        self.folders.bytes + self.layer_bytes + self.log_bytes
    }
}

impl Agents {
    /// Measures every running agent at `period` and stops the ones over their
    /// limit. Spawn it once, as a background task.
    pub(crate) async fn watch_disk(self, period: Duration) {
        let period = period.max(Duration::from_secs(1));
        loop {
            tokio::time::sleep(period).await;
            for state in self.states() {
                let id = state.record.id;
                let running = state.record.status == AgentStatus::Running
                    && state.live.activity.is_none()
                    && !state.record.deleting;
                if !running {
                    continue;
                }
                let used = match self.measure_disk(id, None).await {
                    Ok(used) => used,
                    Err(e) => {
                        tracing::debug!(agent = %id, error = %e, "could not measure an agent's disk use");
                        continue;
                    }
                };
                if let Some(message) = self.over_disk(id, &used) {
                    self.run_later(id, "stop an agent over its disk limit", |this| async move {
                        this.stop_over_disk(id, message).await
                    });
                }
            }
        }
    }

    /// Measures the agent's disk use now and records it. `known`: its container
    /// as just found (`Some(None)`: it has none), which spares a listing.
    pub(super) async fn measure_disk(
        &self,
        id: Uuid,
        known: Option<Option<&Found>>,
    ) -> Result<DiskUse, AgentError> {
        let record = self.state(id)?.record;
        let dir = record.dir.clone();
        let folders = crate::agent_files::blocking(move || {
            crate::disk_use::measure(&dir, COUNT_BUDGET).map_err(|e| {
                AgentError::Folder(format!("could not measure {}: {e}", dir.display()))
            })
        })
        .await?;
        let mut used = DiskUse {
            folders,
            ..DiskUse::default()
        };
        let own = match known {
            Some(known) => known.cloned(),
            None => self.current(id).await?,
        };
        if let Some(own) = own {
            let footprint = self.containers().footprint(&own.id).await?;
            used.layer_bytes = footprint.layer_bytes;
            // In vm mode the log is a file in the machine, not on this host; it
            // is capped all the same.
            if self.machine().mode() == Mode::Native {
                if let Some(path) = footprint.log_path {
                    used.log_bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
                }
            }
        }
        self.transition(
            id,
            Input::DiskMeasured {
                bytes: used.total(),
            },
        )?;
        Ok(used)
    }

    /// The reason to stop the agent, when `used` passes its limit.
    pub(super) fn over_disk(&self, id: Uuid, used: &DiskUse) -> Option<String> {
        let record = self.state(id).ok()?.record;
        let limit_mib = record.disk_mib.unwrap_or(self.settings().agent_disk_mib);
        let limit = limit_mib.saturating_mul(1024 * 1024);
        if used.total() <= limit {
            return None;
        }
        let at_least = if used.folders.complete {
            ""
        } else {
            "at least "
        };
        Some(format!(
            "The agent takes {at_least}{} on the disk, over its limit of {} (its folders {}, its container {}, its log {}). \
             Free space in its workspace ({}) or raise its disk limit in Settings, then start it.",
            size_words(used.total()),
            size_words(limit),
            size_words(used.folders.bytes),
            size_words(used.layer_bytes),
            size_words(used.log_bytes),
            record.dir.join("workspace").display(),
        ))
    }

    /// Stops an agent past its disk limit and says why. Not a crash: the crash
    /// loop does not start it again.
    pub(super) async fn stop_over_disk(&self, id: Uuid, message: String) -> Result<(), AgentError> {
        let _serial = self.serial(id).await?;
        self.refuse_when_shutting_down()?;
        let state = self.state(id)?;
        if state.live.activity.is_some() || state.record.status != AgentStatus::Running {
            return Ok(());
        }
        let log = self.log_ring(id)?;
        log.push(format!("ERROR: {message}"));
        tracing::warn!(agent = %id, %message, "stopping an agent over its disk limit");
        self.transition(id, Input::Begin(Op::Stop))?;
        if let Some(own) = self.current(id).await? {
            if own.state == Container::Running {
                self.containers()
                    .stop(&own.id, self.settings().stop_timeout)
                    .await?;
            }
        }
        self.transition(id, Input::StoppedOverDisk { message })?;
        Ok(())
    }

    /// Refuses a start while the agent is over its disk limit: it would be stopped
    /// again within a minute. `own`: its container as just found.
    pub(super) async fn check_disk_before_start(
        &self,
        id: Uuid,
        own: Option<&Found>,
    ) -> Result<(), AgentError> {
        let used = self.measure_disk(id, Some(own)).await?;
        match self.over_disk(id, &used) {
            Some(message) => Err(AgentError::OverDisk(message)),
            None => Ok(()),
        }
    }
}

/// A size as people say it: "1.5 GiB", "300 MiB", "12 KiB".
fn size_words(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    #[allow(clippy::cast_precision_loss)] // sizes far below 2^52
    let b = bytes as f64;
    if b >= KIB * KIB * KIB {
        format!("{:.1} GiB", b / (KIB * KIB * KIB))
    } else if b >= KIB * KIB {
        format!("{:.0} MiB", b / (KIB * KIB))
    } else {
        format!("{:.0} KiB", b / KIB)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_said_as_people_say_them() {
        assert_eq!(size_words(3 << 30), "3.0 GiB");
        assert_eq!(size_words(300 << 20), "300 MiB");
        assert_eq!(size_words(12 << 10), "12 KiB");
    }
}
