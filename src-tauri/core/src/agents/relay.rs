//! The agents' proxy relay as the agents use it (see [`crate::proxy_relay`]):
//! started by the first container that needs it (the agents' proxy has
//! credentials), where the containers reach the host: on the Podman bridge's
//! address for rootful Podman on Linux, open to that bridge's containers only;
//! on loopback elsewhere (a Podman machine forwards `host.containers.internal`
//! there), where the per-agent credential keeps other local users out.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use uuid::Uuid;

use super::{AgentError, Agents};
use crate::machine::Mode;
use crate::proxy_relay::{Peers, Relay};

/// The name a container calls the host by.
const HOST_NAME: &str = "host.containers.internal";

impl Agents {
    /// The relay's address for agent `id`'s container (its own credential in
    /// it), the relay started if it does not run yet; `None` when the agents'
    /// proxy carries no credentials (the container has it as it is).
    pub(super) async fn relay_url(&self, id: Uuid) -> Result<Option<String>, AgentError> {
        Ok(self
            .proxy_relay()
            .await?
            .map(|relay| relay.url_for(id, HOST_NAME)))
    }

    /// The relay, started if the agents' proxy needs it and it does not run yet.
    /// A start that failed is tried again by the next caller.
    pub(super) async fn proxy_relay(&self) -> Result<Option<Arc<Relay>>, AgentError> {
        let upstreams = self.settings().agent_proxy.upstreams();
        if upstreams.is_empty() {
            return Ok(None);
        }
        let mut running = self.inner.relay.lock().await;
        if let Some(relay) = running.as_ref() {
            return Ok(Some(relay.clone()));
        }
        let host = self.inner.host.get().copied().unwrap_or_default();
        let (listen, peers) = if self.machine().mode() == Mode::Native && host.rootful_native {
            let (gateway, net, prefix) = self.containers().bridge().await?;
            (
                gateway,
                Peers::Bridge {
                    net,
                    prefix,
                    gateway,
                },
            )
        } else {
            if host.rootless_native {
                tracing::warn!("rootless Podman: the agents' proxy relay listens on 127.0.0.1, which containers reach only where their network lets them reach the host's loopback");
            }
            (IpAddr::V4(Ipv4Addr::LOCALHOST), Peers::Loopback)
        };
        let (relay, serving) =
            Relay::start(&self.settings().home, listen, peers, upstreams).await?;
        self.inner.tasks.spawn_background(serving);
        *running = Some(relay.clone());
        Ok(Some(relay))
    }
}
