//! What can be read of an agent without changing it: its log, its container's
//! output, a chat with its gateway, its dashboard's address and its export.

use tokio::sync::broadcast;
use uuid::Uuid;

use super::{AgentError, Agents};
use crate::container::ContainerId;
use crate::engine::LineStream;
use crate::store::AgentStatus;

impl Agents {
    /// The log lines so far and a receiver for new ones.
    pub fn follow_logs(
        &self,
        id: Uuid,
    ) -> Result<(Vec<String>, broadcast::Receiver<String>), AgentError> {
        Ok(self.log_ring(id)?.follow())
    }

    /// The last lines of the container's own output (none when it has no container).
    pub async fn container_logs(&self, id: Uuid, tail: usize) -> Result<Vec<String>, AgentError> {
        match self.own_container(id).await? {
            Some(container) => Ok(self.containers().tail_logs(&container, tail).await?),
            None => Ok(Vec::new()),
        }
    }

    /// The container's own output as it comes, after its last `tail` lines.
    pub async fn container_log_stream(
        &self,
        id: Uuid,
        tail: usize,
        follow: bool,
    ) -> Result<Option<LineStream>, AgentError> {
        match self.own_container(id).await? {
            Some(container) => Ok(Some(
                self.containers()
                    .stream_logs(&container, tail, follow)
                    .await?,
            )),
            None => Ok(None),
        }
    }

    pub(super) async fn own_container(&self, id: Uuid) -> Result<Option<ContainerId>, AgentError> {
        self.get(id).ok_or(AgentError::NotFound)?;
        Ok(self.current(id).await?.map(|f| f.id))
    }

    /// Streams the gateway's `/v1/chat/completions` answer (OpenAI-style SSE) as raw
    /// bytes.
    pub async fn chat_stream(
        &self,
        id: Uuid,
        message: &str,
    ) -> Result<futures::stream::BoxStream<'static, Result<bytes::Bytes, std::io::Error>>, AgentError>
    {
        let view = self.get(id).ok_or(AgentError::NotFound)?;
        if view.status != AgentStatus::Running {
            return Err(AgentError::NotRunning);
        }
        let token = self.state(id)?.record.token;
        Ok(self.gateway().chat(view.port, &token, message).await?)
    }

    /// The address of the agent's own Control UI with its gateway token in the
    /// fragment, which the browser keeps to itself (never sent to a server).
    pub fn dashboard_url(&self, id: Uuid) -> Result<String, AgentError> {
        let view = self.get(id).ok_or(AgentError::NotFound)?;
        if view.status != AgentStatus::Running {
            return Err(AgentError::NotRunning);
        }
        let token = self.state(id)?.record.token;
        Ok(format!("http://127.0.0.1:{}/#token={token}", view.port))
    }

    /// The agent as a Kustomize folder for Kubernetes (see [`crate::export`]): its
    /// record, its `openclaw.json` as on disk (a link or special file there is
    /// refused, never followed: the agent can write that file), and its
    /// container's limits. Holds the gateway token and the provider key.
    pub async fn export_kubernetes(
        &self,
        id: Uuid,
        options: &crate::export::Options,
    ) -> Result<crate::export::Export, AgentError> {
        self.get(id).ok_or(AgentError::NotFound)?;
        let record = self.state(id)?.record;
        let config_path = record.dir.join(super::config::CONFIG_FILE);
        let bytes = crate::agent_files::blocking(move || {
            crate::agent_files::read_regular(&config_path, crate::agent_files::MAX_CONFIG_BYTES)
        })
        .await?;
        let config = String::from_utf8(bytes).map_err(|e| {
            AgentError::Folder(format!("the agent's openclaw.json is not UTF-8 ({e})"))
        })?;
        // The image the container runs (by ID: the tag may have moved since), else
        // the one the agent names.
        let running = self.current(id).await?.map(|f| f.image_id);
        let image_digest = self
            .containers()
            .repo_digest(running.as_deref().unwrap_or(&record.image), &record.image)
            .await?;
        let source = crate::export::Source {
            record: &record,
            config: &config,
            limits: self.limits_of(&record),
            time_zone: &self.inner.time_zone,
            image_digest: image_digest.as_deref(),
        };
        Ok(crate::export::render(source, options)?)
    }
}
