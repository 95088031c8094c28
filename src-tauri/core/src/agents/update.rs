//! Update: the newest image the agent's reference names, pulled, and the container
//! made again from it when it differs; a new image that does not get healthy is
//! rolled back and not tried again until a newer one appears.

use uuid::Uuid;

use super::requests::*;
use super::state::{Container, Input, Op};
use super::swap::{Plan, Swapped};
use super::{AgentError, Agents};
use crate::store::SwapWhy;

impl Agents {
    /// Moves the agent to the newest image its reference names: pulled first
    /// (except `localhost/` references, which only this machine makes), and when
    /// it differs from the container's, the container is made again from it with
    /// the same config, workspace, port, name and token, and started if it ran. A
    /// new image whose gateway does not get healthy is rolled back.
    pub async fn update(&self, id: Uuid) -> Result<UpdateOutcome, AgentError> {
        self.detached(move |this| async move { this.update_now(id).await })
            .await
    }

    /// `update` for every agent, in parallel.
    pub async fn update_all(&self) -> Vec<(Uuid, Result<UpdateOutcome, AgentError>)> {
        let runs = self
            .list()
            .into_iter()
            .map(|a| async move { (a.id, self.update(a.id).await) });
        futures::future::join_all(runs).await
    }

    pub(super) async fn update_now(&self, id: Uuid) -> Result<UpdateOutcome, AgentError> {
        let (_serial, current) = self.when_idle(id)?;
        let record = current.record;
        let log = self.log_ring(id)?;
        self.transition(id, Input::Begin(Op::Update))?;
        let checked = async {
            self.ensure_runtime(id).await?;
            self.pull_unless_local(id, &record.image, &log).await?;
            let Some(newest) = self.containers().image_id(&record.image).await? else {
                return Err(AgentError::Gateway(format!(
                    "The image {} is not on this machine.",
                    record.image
                )));
            };
            Ok((newest, self.current(id).await?))
        }
        .await;
        let unchanged = |this: &Self| -> Result<UpdateOutcome, AgentError> {
            this.transition(id, Input::Ended)?;
            Ok(UpdateOutcome {
                agent: this.get(id).ok_or(AgentError::NotFound)?,
                updated: false,
                rolled_back: None,
            })
        };
        let (newest, old) = match checked {
            Ok((newest, _)) if record.rejected_image.as_deref() == Some(newest.as_str()) => {
                log.push(format!(
                    "The newest {} did not start before and was rolled back; it is not tried again until a newer one appears",
                    record.image
                ));
                return unchanged(self);
            }
            Ok((newest, Some(old))) if old.image_id != newest => (newest, old),
            Ok((newest, None)) if record.image_id.as_deref() != Some(newest.as_str()) => {
                // No container: the next start makes one from the newest image.
                self.transition(
                    id,
                    Input::Pinned {
                        generation: record.generation.clone(),
                        image_id: Some(newest),
                    },
                )?;
                log.push("Updated; the agent runs the new image at its next start");
                self.transition(id, Input::Ended)?;
                return Ok(UpdateOutcome {
                    agent: self.get(id).ok_or(AgentError::NotFound)?,
                    updated: true,
                    rolled_back: None,
                });
            }
            Ok((_, found)) => {
                if found.is_some() {
                    log.push(format!("{} is up to date", record.image));
                }
                self.transition(id, Input::UpdateChecked { newer: false })?;
                return unchanged(self);
            }
            Err(e) => {
                log.push(format!("Update failed: {e}"));
                self.transition(id, Input::Ended)?;
                return Err(e);
            }
        };
        // The new container needs the config handed to the gateway's user; a link
        // or special file the agent put there would fail that after the old
        // container is gone: refused now, with the agent as it was.
        if let Err(e) = self.config_can_be_handed_over(&record).await {
            log.push(format!("Update failed: {e}"));
            self.transition(id, Input::Ended)?;
            return Err(e);
        }
        let was_running = old.state == Container::Running;
        // The way back if the new image is not wanted after all, taken before the
        // swap's journal is written; without it the update does not begin.
        if let Err(e) = self
            .snapshot(&record, was_running, id, "update", &log)
            .await
        {
            log.push(format!("Update failed: {e}"));
            self.transition(id, Input::Ended)?;
            return Err(e);
        }
        log.push(format!("Updating to the newest {}...", record.image));
        let plan = Plan {
            why: SwapWhy::Update,
            image_id: newest.clone(),
            limits: self.limits_of(&record),
        };
        let swapped =
            Box::pin(self.swap_container(&record, &old, plan, async { Ok(()) }, &log)).await;
        let (failure, made) = match swapped {
            Swapped::Done => {
                self.transition(id, Input::ImageRejected { image_id: None })?;
                let agent = if was_running {
                    self.finish_start(id, Ok(()), &log).await?
                } else {
                    self.transition(id, Input::Stopped)?;
                    log.push("Updated; the agent runs the new image at its next start");
                    self.get(id).ok_or(AgentError::NotFound)?
                };
                return Ok(UpdateOutcome {
                    agent,
                    updated: true,
                    rolled_back: None,
                });
            }
            Swapped::NotBegun(e) => {
                log.push(format!("Update failed: {e}"));
                self.transition(id, Input::Ended)?;
                return Err(e);
            }
            Swapped::Failed { failure, made } => (failure, made),
        };
        // Roll back, whatever failed (a create, the start, the health, a cancel, a
        // stop or the shutdown): the new container goes, the old one comes back.
        let cancelled = matches!(failure, AgentError::Cancelled);
        let why = if cancelled {
            "Update cancelled; the agent went back to the previous image.".to_string()
        } else {
            format!(
                "The new image did not start ({failure}); the agent went back to the previous one."
            )
        };
        log.push(if cancelled {
            why.clone()
        } else {
            format!("ERROR: {why}")
        });
        let new_image_failed = !matches!(
            failure,
            AgentError::Cancelled | AgentError::ShuttingDown | AgentError::EngineUnreachable(_)
        ) && made;
        if new_image_failed {
            // Not tried again by every "Update all" until a newer image appears;
            // the record still pins the image that works.
            self.transition(
                id,
                Input::ImageRejected {
                    image_id: Some(newest),
                },
            )?;
        }
        let failure = Box::pin(self.roll_back(id, &old, made, failure, &log)).await?;
        if cancelled || !made {
            return Err(failure);
        }
        Ok(UpdateOutcome {
            agent: self.get(id).ok_or(AgentError::NotFound)?,
            updated: false,
            rolled_back: Some(why),
        })
    }
}
