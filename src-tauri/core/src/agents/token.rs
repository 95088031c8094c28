//! A new gateway token, for when one leaked: the container made again with it
//! (the token is in the container's environment, fixed when it is made), through
//! the journaled swap a limits change uses, so the gateway refuses the old token
//! from then on; the record takes the new one in the same save that makes the new
//! container the agent's.

use uuid::Uuid;

use super::limits::Remake;
use super::{AgentError, AgentView, Agents};

impl Agents {
    /// Gives the agent a new gateway token. A running agent runs again with it
    /// (same name, port, config and workspace; the answer comes when it is
    /// healthy), a stopped one has it at its next start; a new container that does
    /// not get healthy is removed and the old one, with the old token, comes back.
    /// Every holder of the old token (a signed-in dashboard, a client of the
    /// gateway's API) must sign in again. Refused while another operation runs.
    pub async fn rotate_token(&self, id: Uuid) -> Result<AgentView, AgentError> {
        self.detached(move |this| async move {
            let (_serial, current) = this.when_idle(id)?;
            let change = Remake {
                limits: this.limits_of(&current.record),
                provider: None,
                token: Some(super::identity::random_hex(32)),
            };
            Box::pin(this.remake(id, current, change)).await
        })
        .await
    }
}
