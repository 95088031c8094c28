//! What operations take and give back on the wire: a create, an edit (provider
//! and limits apart), and an update's outcome.
use serde::{Deserialize, Serialize};

use super::definition::ProviderInput;
use crate::view::AgentView;

/// `POST /agents/create`, as the replaced runtime took it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateRequest {
    pub name: String,
    #[serde(flatten)]
    pub provider: ProviderInput,
    /// The container's memory limit; the `CLAWDOCK_AGENT_MEMORY` default if absent.
    #[serde(default, rename = "memoryMiB")]
    pub memory_mib: Option<u64>,
    /// The container's CPU limit in CPUs (1.5); none if absent.
    #[serde(default)]
    pub cpus: Option<f64>,
    /// What the agent may take on the disk; the `CLAWDOCK_AGENT_DISK` default if
    /// absent.
    #[serde(default, rename = "diskMiB")]
    pub disk_mib: Option<u64>,
}

/// `PATCH /agents/{id}`: the provider settings and limits to change; an absent or
/// blank field keeps its value. Unknown fields are refused, so a misspelt one is
/// not lost quietly.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EditRequest {
    pub provider_type: Option<String>,
    pub provider_name: Option<String>,
    pub base_url: Option<String>,
    pub api_key: Option<String>,
    pub model_id: Option<String>,
    /// A new memory limit for the container (made again with it).
    #[serde(default, rename = "memoryMiB")]
    pub memory_mib: Option<u64>,
    /// A new CPU limit: absent keeps it, `null` removes it, a number sets it.
    #[serde(default, deserialize_with = "present")]
    pub cpus: Option<Option<f64>>,
    /// A new disk limit (enforced by Clawdock: the container stays as it is).
    #[serde(default, rename = "diskMiB")]
    pub disk_mib: Option<u64>,
}

/// A field that is present, `null` included (`Some(None)`), apart from an absent
/// one (`None`, by `default`).
pub(super) fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// The limits an edit changes; `None`: kept.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct LimitsEdit {
    pub(super) memory_mib: Option<u64>,
    pub(super) cpus: Option<Option<f64>>,
    pub(super) disk_mib: Option<u64>,
}

/// What `update` did: `updated` when the agent now has the newer image;
/// `rolledBack` says why it went back to the previous one.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateOutcome {
    pub agent: AgentView,
    pub updated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rolled_back: Option<String>,
}

impl EditRequest {
    /// The provider part, and the limits part.
    pub(super) fn split(self) -> (ProviderInput, LimitsEdit) {
        (
            ProviderInput {
                provider_type: self.provider_type,
                provider_name: self.provider_name,
                base_url: self.base_url,
                api_key: self.api_key,
                model_id: self.model_id,
            },
            LimitsEdit {
                memory_mib: self.memory_mib,
                cpus: self.cpus,
                disk_mib: self.disk_mib,
            },
        )
    }
}

impl LimitsEdit {
    pub(super) fn is_empty(&self) -> bool {
        self.memory_mib.is_none() && self.cpus.is_none() && self.disk_mib.is_none()
    }

    /// Whether the container must be made again for these limits (memory and
    /// CPUs are the container's; the disk limit is Clawdock's to enforce).
    pub(super) fn touches_container(&self) -> bool {
        self.memory_mib.is_some() || self.cpus.is_some()
    }
}
