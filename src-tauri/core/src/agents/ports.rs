//! The agent's host port: the lowest free one at create, and a move to another
//! when a program took it while the agent was stopped.
use std::time::Duration;

use uuid::Uuid;

use super::definition::{self};
use super::logs::LogRing;
use super::state::{Container, Input};
use super::{AgentError, Agents};
use crate::container::Found;
use crate::store::AgentRecord;

impl Agents {
    /// A port free at create may be taken by another program since. Then the agent
    /// moves to a free port: its config follows and its container is made again
    /// (a published port is fixed at create).
    /// `ours` is the agent's container as just found; it comes back unless the
    /// move removed it (its published port is the old one).
    pub(super) async fn move_off_a_taken_port(
        &self,
        id: Uuid,
        ours: Option<Found>,
        log: &LogRing,
    ) -> Result<(AgentRecord, Option<Found>), AgentError> {
        let record = self.state(id)?.record;
        if port_is_free(record.port) || ours.as_ref().is_some_and(|f| f.state == Container::Running)
        {
            return Ok((record, ours));
        }
        let held: Vec<u16> = self.states().iter().map(|s| s.record.port).collect();
        let port = free_port(self.settings().first_agent_port, &held)?;
        log.push(format!(
            "Port {} is taken by another program; the agent moves to port {port}",
            record.port
        ));
        let mut config = self.read_config(&record).await?;
        definition::move_config_to_port(&mut config, port).map_err(AgentError::Folder)?;
        self.write_config_file(&record, &config).await?;
        if let Some(found) = ours {
            self.containers().remove(&found.id, Duration::ZERO).await?;
        }
        self.transition(id, Input::PortMoved { port })?;
        Ok((self.state(id)?.record, None))
    }
}

pub(super) fn port_is_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// The lowest port from `first` that no agent holds and that is free on 127.0.0.1.
pub(super) fn free_port(first: u16, held: &[u16]) -> Result<u16, AgentError> {
    let last = first.saturating_add(999);
    (first..=last)
        .filter(|p| !held.contains(p))
        .find(|p| port_is_free(*p))
        .ok_or(AgentError::NoFreePort(first, last))
}
