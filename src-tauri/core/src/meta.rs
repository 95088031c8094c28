//! The rules clients repeat while the user types, declared once: the agent name
//! rule, the providers and their fields, the machine's size bounds and defaults, and
//! the memory an agent takes (from [`crate::sizing`]). Served as `GET /meta` and in the event stream's
//! snapshot, so the window and the CLI apply the server's own rules, never a copy.

use serde::{Deserialize, Serialize};

use crate::agents::definition::{BUILT_IN_PROVIDERS, MAX_NAME_LEN, NAME_PATTERN, NAME_RULE};
use crate::machine::{self, MachineSpec};
use crate::sizing::{
    memory_need_mib, suggested_machine_mib, GATEWAY_MEMORY_MIB, MACHINE_BASE_MIB, MEMORY_STEP_MIB,
    MIN_AGENT_CPUS,
};

/// How many agents the setup wizard lets the user plan for, and proposes.
pub const PLANNED_AGENTS: Bounds = Bounds { min: 1, max: 20 };
pub const DEFAULT_PLANNED_AGENTS: u64 = 2;

/// Inclusive bounds of a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bounds {
    pub min: u64,
    pub max: u64,
}

impl<T: Copy + Into<u64>> From<std::ops::RangeInclusive<T>> for Bounds {
    fn from(r: std::ops::RangeInclusive<T>) -> Self {
        Self {
            min: (*r.start()).into(),
            max: (*r.end()).into(),
        }
    }
}

/// Everything `GET /meta` answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    pub name: NameRule,
    /// The choices of the create form, "no provider" first.
    pub providers: Vec<ProviderMeta>,
    pub machine: MachineMeta,
    pub memory: MemoryMeta,
    /// What an agent's limits may be, at create and in Settings.
    pub agent_limits: AgentLimitsMeta,
}

/// The bounds of an agent's memory and CPU limits. The CPU limit's upper bound is
/// the CPUs agents share, which the runtime status says (`machineCpus`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentLimitsMeta {
    #[serde(rename = "memoryMiB")]
    pub memory_mib: Bounds,
    /// The smallest CPU limit (Podman takes a thousandth; the kernel's CFS a
    /// hundredth).
    pub cpus_min: f64,
    /// What an agent may take on the disk (its folders, container and log).
    #[serde(rename = "diskMiB")]
    pub disk_mib: Bounds,
}

/// `validate_name` in a form a browser applies: `new RegExp(pattern)` and a length.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NameRule {
    pub pattern: String,
    pub max_length: usize,
    /// The sentence shown when a name breaks the rule.
    pub rule: String,
}

/// One choice of provider and the fields it asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderMeta {
    /// What goes in the create request's `providerType` ("" for none).
    pub id: String,
    pub label: String,
    /// Said under the choice (text with `code` spans).
    pub hint: String,
    pub fields: Vec<FieldMeta>,
}

/// A field of the create request a provider takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldMeta {
    /// Its key in the create request.
    pub name: String,
    pub label: String,
    /// `text`, `url` or `password`.
    pub kind: String,
    pub required: bool,
    /// A pattern the value must match (as the server checks it), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placeholder: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

/// What `POST /runtime/setup` accepts, and what it proposes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MachineMeta {
    pub cpus: Bounds,
    #[serde(rename = "memoryMiB")]
    pub memory_mib: Bounds,
    #[serde(rename = "diskGiB")]
    pub disk_gib: Bounds,
    /// Podman sizes memory in these steps.
    #[serde(rename = "memoryStepMiB")]
    pub memory_step_mib: u64,
    /// This computer's cores (the server runs on it).
    pub cores: u32,
    pub recommended: MachineSpec,
    pub planned_agents: Bounds,
    pub default_planned_agents: u64,
}

/// The memory estimate per agent, and its consequences as tables so clients
/// compute nothing: index `n` is for `n` agents, up to `PLANNED_AGENTS.max`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryMeta {
    #[serde(rename = "agentMiB")]
    pub agent_mib: u64,
    #[serde(rename = "machineBaseMiB")]
    pub machine_base_mib: u64,
    /// What n agents need (the create form's warning).
    #[serde(rename = "needMiB")]
    pub need_mib: Vec<u64>,
    /// The machine memory the setup wizard proposes for n agents.
    #[serde(rename = "suggestedMachineMiB")]
    pub suggested_machine_mib: Vec<u64>,
}

/// A base URL as `Provider::from_input` takes it: http(s) and a host.
const BASE_URL_PATTERN: &str = "^[Hh][Tt][Tt][Pp][Ss]?://[^\\s/]+";
const KEY_SAVED: &str =
    "The key is saved in the agent's folder on this computer and never shown again.";

fn field(name: &str, label: &str, kind: &str) -> FieldMeta {
    FieldMeta {
        name: name.into(),
        label: label.into(),
        kind: kind.into(),
        required: false,
        pattern: None,
        placeholder: None,
        help: None,
    }
}

fn model_and_key() -> [FieldMeta; 2] {
    [
        FieldMeta {
            placeholder: Some("the provider's default".into()),
            ..field("modelId", "Model id", "text")
        },
        FieldMeta {
            help: Some(KEY_SAVED.into()),
            ..field("apiKey", "API key", "password")
        },
    ]
}

fn providers() -> Vec<ProviderMeta> {
    let mut all = vec![ProviderMeta {
        id: String::new(),
        label: "None".into(),
        hint:
            "The agent starts without a model; you can configure one later in its `openclaw.json`."
                .into(),
        fields: Vec::new(),
    }];
    all.extend(BUILT_IN_PROVIDERS.iter().map(|p| ProviderMeta {
        id: p.id.into(),
        label: p.label.into(),
        hint: format!("The gateway gets the key as `{}`.", p.env_var),
        fields: model_and_key().into(),
    }));
    let mut custom = vec![
        FieldMeta {
            required: true,
            pattern: Some(BASE_URL_PATTERN.into()),
            placeholder: Some("http://localhost:11434/v1".into()),
            help: Some(
                "A URL on `localhost` is reached from the container as `host.containers.internal`, \
                 and the service must listen on `0.0.0.0`, not only `127.0.0.1` (for Ollama: `OLLAMA_HOST=0.0.0.0`)."
                    .into(),
            ),
            ..field("baseUrl", "Base URL", "url")
        },
        FieldMeta {
            placeholder: Some("e.g. ollama".into()),
            ..field("providerName", "Provider name", "text")
        },
    ];
    custom.extend(model_and_key());
    all.push(ProviderMeta {
        id: "custom".into(),
        label: "Custom (OpenAI-compatible)".into(),
        hint: "Any server that speaks the OpenAI API, on this computer or elsewhere.".into(),
        fields: custom,
    });
    all
}

/// The rules, as `GET /meta` answers them.
pub fn meta() -> Meta {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get() as u32);
    let planned = 0..=PLANNED_AGENTS.max;
    Meta {
        name: NameRule {
            pattern: NAME_PATTERN.into(),
            max_length: MAX_NAME_LEN,
            rule: NAME_RULE.into(),
        },
        providers: providers(),
        machine: MachineMeta {
            cpus: machine::CPUS.into(),
            memory_mib: machine::MEMORY_MIB.into(),
            disk_gib: machine::DISK_GIB.into(),
            memory_step_mib: MEMORY_STEP_MIB,
            cores,
            recommended: MachineSpec {
                memory_mib: suggested_machine_mib(DEFAULT_PLANNED_AGENTS),
                ..MachineSpec::recommended()
            },
            planned_agents: PLANNED_AGENTS,
            default_planned_agents: DEFAULT_PLANNED_AGENTS,
        },
        memory: MemoryMeta {
            agent_mib: GATEWAY_MEMORY_MIB,
            machine_base_mib: MACHINE_BASE_MIB,
            need_mib: planned.clone().map(memory_need_mib).collect(),
            suggested_machine_mib: planned.map(suggested_machine_mib).collect(),
        },
        agent_limits: AgentLimitsMeta {
            memory_mib: crate::sizing::AGENT_MEMORY_LIMIT_MIB.into(),
            cpus_min: MIN_AGENT_CPUS,
            disk_mib: crate::sizing::AGENT_DISK_LIMIT_MIB.into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agents::definition::validate_name;

    /// The pattern the window applies and the validator the server applies agree.
    #[test]
    fn the_name_pattern_is_the_validator() {
        let pattern = regex::Regex::new(NAME_PATTERN).expect("pattern");
        let long = "a".repeat(MAX_NAME_LEN);
        let too_long = "a".repeat(MAX_NAME_LEN + 1);
        for name in [
            "a",
            "A1",
            "9",
            "my-agent_2.x",
            "a..b",
            "a-",
            &long,
            &too_long,
            "",
            "-a",
            ".hidden",
            "_a",
            "a/b",
            "..",
            "a\nb",
            "a\n",
            "é",
            "aé",
            "a b",
            "a:b",
            "ＡＢ",
            "a\u{0}",
        ] {
            let by_pattern = pattern.is_match(name) && name.chars().count() <= MAX_NAME_LEN;
            assert_eq!(by_pattern, validate_name(name).is_ok(), "{name:?}");
        }
    }

    #[test]
    fn the_recommended_machine_is_valid_and_fits_the_default_plan() {
        let m = meta();
        assert!(m.machine.recommended.validate().is_ok());
        assert!(
            m.machine.recommended.memory_mib >= memory_need_mib(DEFAULT_PLANNED_AGENTS),
            "the proposed machine holds the proposed agents"
        );
        for (n, mib) in m.memory.suggested_machine_mib.iter().enumerate() {
            assert!(*mib >= m.memory.need_mib[n], "{n} agents fit");
            assert_eq!(mib % MEMORY_STEP_MIB, 0);
            assert!(machine::MEMORY_MIB.contains(mib));
        }
    }

    #[test]
    fn every_provider_is_one_the_server_takes() {
        use crate::agents::definition::{Provider, ProviderInput};
        for p in meta().providers {
            let input = ProviderInput {
                provider_type: Some(p.id.clone()),
                base_url: p
                    .fields
                    .iter()
                    .any(|f| f.name == "baseUrl")
                    .then(|| "http://localhost:11434/v1".into()),
                ..ProviderInput::default()
            };
            assert!(Provider::from_input(&input).is_ok(), "{}", p.id);
        }
    }
}
