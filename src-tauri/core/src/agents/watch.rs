//! The engine's events: one stream, followed again by itself when it ends, with a
//! listing (the reconciler's, [`super::reconcile`]) at each (re)connect. Events
//! make Clawdock see a change at once; the reconciler is what makes it right.

use std::time::Duration;

use tokio::sync::oneshot;
use uuid::Uuid;

use super::state::{Container, Input};
use super::Agents;
use crate::container::{ContainerId, Found};
use crate::engine::{PodmanError, Stream};
use crate::machine::Mode;

const FIRST_RETRY: Duration = Duration::from_millis(200);
const LAST_RETRY: Duration = Duration::from_secs(5);

impl Agents {
    /// Follows Podman until the shutdown. Spawn it once, as a background task.
    /// `first_listing` gets the containers as the first successful listing found
    /// them.
    pub(crate) async fn watch(self, mut first_listing: Option<oneshot::Sender<Vec<Found>>>) {
        let mut retry = FIRST_RETRY;
        loop {
            // In vm mode there is nothing to follow while the machine is down: wait
            // for the engine to be ready again (readiness itself, not a state event:
            // a check that forgot and found it again announces no change).
            if self.machine().mode() == Mode::Vm {
                self.machine().wait_ready().await;
            }
            let began = tokio::time::Instant::now();
            match self.follow_once(&mut first_listing).await {
                Ok(()) => tracing::warn!("the engine's events ended; reconnecting"),
                Err(e) => tracing::warn!(error = %e, "the engine's events failed; reconnecting"),
            }
            if began.elapsed() > Duration::from_secs(10) {
                retry = FIRST_RETRY;
            }
            // The stream may have ended because the engine went away: whoever
            // follows the engine checks it now, and reconciles the agents.
            self.containers().suspect_engine();
            tokio::time::sleep(retry).await;
            retry = (retry * 2).min(LAST_RETRY);
        }
    }

    async fn follow_once(
        &self,
        first_listing: &mut Option<oneshot::Sender<Vec<Found>>>,
    ) -> Result<(), PodmanError> {
        let mut stream = self.containers().events().await?;
        // Listed after the stream's request is sent. The engine takes the
        // subscription within moments of it (it sends nothing back, not even the
        // answer's head, until an event comes, so there is nothing to wait on): a
        // change in those moments shows at the container's next event or the next
        // reconnect.
        let listing = self.sync_with_podman().await?;
        if let Some(tell) = first_listing.take() {
            let _nobody_waits = tell.send(listing);
        }
        let clock_shared = self.machine().mode() == Mode::Native;
        while let Some((which, line)) = stream.next_line().await {
            match which {
                Stream::Stdout => {
                    if let Some(mut happened) = self.containers().parse_event(&line, clock_shared) {
                        if happened.container == Container::Exited(Some(137)) {
                            happened.container = self
                                .why_killed(happened.agent, &happened.container_id)
                                .await;
                        } else if happened.container == Container::Running
                            && !self.known_to_run(happened.agent)
                        {
                            // A start nobody here is making, or the late word of
                            // one from before a stop (the engine's events come a
                            // moment after the fact): what is true now decides.
                            if let Some(now) =
                                self.containers().inspect(&happened.container_id).await
                            {
                                happened.container = now;
                            }
                        }
                        let _gone = self.transition(
                            happened.agent,
                            Input::Event {
                                container: happened.container,
                                at: happened.at,
                                id: happened.container_id,
                            },
                        );
                    }
                }
                Stream::Stderr => tracing::debug!(%line, "the engine's events: stderr"),
            }
        }
        stream.finish().await;
        tracing::debug!("the engine's events ended");
        Ok(())
    }

    /// Whether the agent's container is known to run, or is being started by an
    /// operation of Clawdock's (whose own start event is expected).
    fn known_to_run(&self, id: Uuid) -> bool {
        self.state(id)
            .is_ok_and(|s| s.live.container == Container::Running || s.live.activity.is_some())
    }

    /// A container killed (exit 137): for its memory limit, or by someone. Podman
    /// says `OOMKilled` where it knows (cgroup v2); on cgroup v1 hosts it never
    /// does, and the agent's memory peak against its limit decides.
    pub(super) async fn why_killed(&self, id: Uuid, container: &ContainerId) -> Container {
        if let Some(Container::OutOfMemory) = self.containers().inspect(container).await {
            return Container::OutOfMemory;
        }
        let traits = self.inner.host.get().copied().unwrap_or_default();
        let limit = self
            .state(id)
            .ok()
            .map(|s| self.limits_of(&s.record).memory_mib);
        match limit {
            Some(limit) if traits.cgroup_v1 => {
                if crate::cgroup_v1::memory_peak_reached(id, limit) == Some(true) {
                    Container::OutOfMemory
                } else {
                    Container::Exited(Some(137))
                }
            }
            _ => Container::Exited(Some(137)),
        }
    }
}
