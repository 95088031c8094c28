//! How an agent's container is specified: the gateway's command, environment,
//! mounts and health check, and the sandbox (no capabilities, a read-only root,
//! bounded memory, CPU and processes), as the engine's create takes it.

use crate::agent_proxy::{ContainerProxy, CA_TARGET};
use crate::cgroup_v1::cgroup_parent;
use crate::container::{
    HostTraits, LABEL_AGENT, LABEL_GENERATION, LABEL_HOME, LABEL_IMAGE, LABEL_NAME,
};
use crate::store::AgentRecord;

/// Port the gateway listens on inside its container.
pub const GATEWAY_PORT: u16 = 18789;
/// The uid of the `node` user the gateway image runs as.
pub const GATEWAY_UID: u32 = 1000;

/// What an agent's container may use and do. The gateway runs tools an LLM
/// chooses, so it is treated as reachable by prompt injection: no capabilities,
/// no privilege gain, bounded memory and processes, a read-only root.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub memory_mib: u64,
    pub pids: u32,
    /// CPUs the gateway may use (1.5: one and a half); `None`: as many as it finds.
    pub cpus: Option<f64>,
}

/// The `--cpus` value of a CPU limit: at most three decimals (Podman's own
/// precision is a thousandth of a CPU), no trailing zeros.
pub fn cpus_arg(cpus: f64) -> String {
    let s = format!("{cpus:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The gateway's token variable.
pub const TOKEN_VAR: &str = "OPENCLAW_GATEWAY_TOKEN";

/// Where the gateway keeps its config folder (it reads `openclaw.json` there and
/// rewrites it at start, so the folder must be writable).
pub const CONFIG_DIR: &str = "/home/node/.openclaw";
/// The agent's workspace, inside the config folder.
pub const WORKSPACE_DIR: &str = "/home/node/.openclaw/workspace";
/// The gateway's cache (it writes there too).
pub const CACHE_DIR: &str = "/home/node/.cache";

/// The gateway's health check: how often, how long one may take, how many may
/// fail in a row.
pub const HEALTH_INTERVAL_SECS: u32 = 30;
pub const HEALTH_TIMEOUT_SECS: u32 = 10;
pub const HEALTH_RETRIES: u32 = 3;
/// The gateway's liveness and readiness paths.
pub const HEALTH_PATH: &str = "/healthz";
pub const READY_PATH: &str = "/readyz";

/// The plain variables of the gateway's environment (the token is apart: it is a
/// secret and never an argument).
pub fn gateway_env(time_zone: &str) -> [(&'static str, String); 2] {
    [
        ("TZ", time_zone.to_string()),
        // The gateway colours its log even without a terminal; plain text reads
        // better in the agent's log view.
        ("NO_COLOR", "1".to_string()),
    ]
}

/// The gateway command given after the image (the image's `CMD`, upstream's own).
pub fn gateway_command() -> Vec<String> {
    let port = GATEWAY_PORT.to_string();
    [
        "node",
        "dist/index.js",
        "gateway",
        "--bind",
        "lan",
        "--port",
        &port,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Processes one gateway may run (measured: 29 at rest).
pub const PIDS_LIMIT: u32 = 1024;

/// What `--read-only` gives a container on the command line: private writable
/// tmpfs at these folders (the API gives none unless asked).
const READ_ONLY_TMPFS: [&str; 3] = ["/tmp", "/var/tmp", "/run"];

/// Which container of the agent a create makes: its name, its generation label
/// and the image it runs (by ID where one is pinned).
#[derive(Debug, Clone, Copy)]
pub struct NewContainer<'a> {
    pub name: &'a str,
    pub generation: &'a str,
    pub image: &'a str,
}

/// The name a container gets while it is made beside the agent's working one (an
/// update): no agent's container can have it (theirs begin `clawdock-`), so it
/// never blocks or is taken for another agent's, and it names the generation.
pub fn beside_name(agent_name: &str, generation: &str) -> String {
    format!("clawdock_{agent_name}_{generation}")
}

/// The agent's container as the engine's create takes it (libpod's spec): data,
/// so user text never passes through a shell or a YAML file. The sandbox is the
/// one `podman create` would build from Clawdock's flags: the same inspect
/// (measured on Podman 4.3.1, field by field).
pub fn create_spec(
    agent: &AgentRecord,
    new: NewContainer<'_>,
    home_label: &str,
    time_zone: &str,
    host: HostTraits,
    limits: Limits,
    proxy: &ContainerProxy,
) -> serde_json::Value {
    use serde_json::json;
    let dir = &agent.dir;
    let bind = |sub: &str, target: &str| {
        let mut options = vec!["rbind"];
        if host.relabel {
            options.push("Z");
        }
        json!({
            "type": "bind",
            "source": dir.join(sub).display().to_string(),
            "destination": target,
            "options": options,
        })
    };
    let mut mounts = vec![
        bind("config", CONFIG_DIR),
        bind("workspace", WORKSPACE_DIR),
        bind("cache", CACHE_DIR),
    ];
    if let Some(bundle) = &proxy.ca_bundle {
        // Never relabelled: the file is the user's, shared by every agent.
        mounts.push(json!({
            "type": "bind",
            "source": bundle.display().to_string(),
            "destination": CA_TARGET,
            "options": ["rbind", "ro"],
        }));
    }
    for target in READ_ONLY_TMPFS {
        mounts.push(json!({
            "type": "tmpfs",
            "source": "tmpfs",
            "destination": target,
            "options": ["rw", "rprivate", "nosuid", "nodev", "tmpcopyup"],
        }));
    }
    let mut env = serde_json::Map::new();
    let all = gateway_env(time_zone)
        .into_iter()
        .chain(proxy.env.iter().cloned());
    for (key, value) in all {
        env.insert(key.to_string(), json!(value));
    }
    // Secrets travel in the request's body over the socket: no argument line.
    env.insert(TOKEN_VAR.into(), json!(agent.token));
    let memory = limits.memory_mib * 1024 * 1024;
    let mut resources = json!({
        // No swap beyond the limit.
        "memory": { "limit": memory, "swap": memory },
        "pids": { "limit": limits.pids },
    });
    if let Some(cpus) = limits.cpus {
        resources["cpu"] = json!({ "quota": cpu_quota(cpus), "period": CPU_PERIOD });
    }
    let health_cmd = format!(
        "wget -Y off -qO- http://127.0.0.1:{GATEWAY_PORT}{HEALTH_PATH} >/dev/null 2>&1 || curl -sf --noproxy '*' http://127.0.0.1:{GATEWAY_PORT}{HEALTH_PATH}"
    );
    let seconds = |s: u32| u64::from(s) * 1_000_000_000;
    let mut spec = json!({
        "name": new.name,
        "hostname": hostname(agent),
        "labels": {
            LABEL_AGENT: agent.id.to_string(),
            LABEL_HOME: home_label,
            LABEL_NAME: agent.name,
            LABEL_GENERATION: new.generation,
            LABEL_IMAGE: agent.image,
        },
        "image": new.image,
        "command": gateway_command(),
        "env": env,
        // The engine's own proxy variables stay out, whatever the proxy setting
        // says (the agent's come through `env`).
        "httpproxy": false,
        "portmappings": [{
            "host_ip": "127.0.0.1",
            "host_port": agent.port,
            "container_port": GATEWAY_PORT,
            "protocol": "tcp",
        }],
        "mounts": mounts,
        "healthconfig": {
            "Test": ["CMD-SHELL", health_cmd],
            "Interval": seconds(HEALTH_INTERVAL_SECS),
            "Timeout": seconds(HEALTH_TIMEOUT_SECS),
            "Retries": HEALTH_RETRIES,
        },
        // No restart policy: Clawdock starts a gateway that died again itself,
        // after a back-off, and says so (agents::state, the crash loop).
        //
        // The gateway's user whatever the image says: a root image would meet the
        // uid-1000 folders without capabilities and die with EACCES in a loop.
        "user": format!("{GATEWAY_UID}:{GATEWAY_UID}"),
        // The sandbox. The real gateway runs with all of it (measured: healthy,
        // 0.7 GB, 29 processes). It writes only its config folder, ~/.cache (both
        // mounted from the agent's folder: podman 4 loses a tmpfs's mode when a
        // container restarts) and the tmpfs folders.
        "cap_drop": ["all"],
        "no_new_privileges": true,
        "read_only_filesystem": true,
        "resource_limits": resources,
        // A gateway that prints in a loop must not fill the disk (see
        // `CONTAINER_LOG_MAX_BYTES`); the driver is the engine's own.
        "log_configuration": { "size": crate::sizing::CONTAINER_LOG_MAX_BYTES },
        "sdnotifyMode": "container",
    });
    if host.cgroup_v1 {
        spec["cgroup_parent"] = json!(cgroup_parent(agent.id));
    }
    if host.rootless_native {
        spec["userns"] = json!({
            "nsmode": "keep-id",
            "value": format!("uid={GATEWAY_UID},gid={GATEWAY_UID}"),
        });
    }
    spec
}

/// The CFS period a CPU limit is counted in (the command line's `--cpus` uses
/// the same).
const CPU_PERIOD: u64 = 100_000;

/// The CFS quota of a CPU limit, at Podman's precision (a thousandth of a CPU).
fn cpu_quota(cpus: f64) -> u64 {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // a few CPUs
    let thousandths = (cpus * 1000.0).round().max(1.0) as u64;
    thousandths * CPU_PERIOD / 1000
}

/// A fixed hostname per agent: the gateway's owner lease records it, and a new
/// container with another hostname would wait up to 300 s after a kill.
pub fn hostname(agent: &AgentRecord) -> String {
    format!("agent-{}", &agent.id.simple().to_string()[..12])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{AgentStatus, Wanted};

    fn agent() -> AgentRecord {
        AgentRecord {
            status: AgentStatus::Creating,
            port: 18800,
            dir: "/data/agents/1".into(),
            token: "tok".into(),
            wanted: Wanted::Running,
            image: "img:1".into(),
            // A name never valid, but it must still stay one argument.
            ..crate::store::sample_record("x; rm -rf /")
        }
    }

    #[test]
    fn container_definition_is_data() {
        let agent = agent();
        let name = agent.container_name();
        let spec = create_spec(
            &agent,
            NewContainer {
                name: &name,
                generation: "g1",
                image: "sha256:abc",
            },
            "home1",
            "Europe/Paris",
            HostTraits {
                rootless_native: true,
                rootful_native: false,
                relabel: true,
                cgroup_v1: false,
            },
            Limits {
                memory_mib: 2048,
                pids: PIDS_LIMIT,
                cpus: Some(1.5),
            },
            &ContainerProxy::default(),
        );
        assert_eq!(spec["name"], "clawdock-x; rm -rf /", "one value, no shell");
        assert_eq!(
            spec["portmappings"][0],
            serde_json::json!({"host_ip": "127.0.0.1", "host_port": 18800, "container_port": 18789, "protocol": "tcp"})
        );
        assert_eq!(spec["labels"]["io.clawdock.agent"], agent.id.to_string());
        assert_eq!(spec["labels"]["io.clawdock.home"], "home1");
        assert_eq!(spec["labels"]["io.clawdock.generation"], "g1");
        assert_eq!(
            spec["labels"]["io.clawdock.image"], "img:1",
            "the reference, for a record rebuilt from the container"
        );
        assert_eq!(
            spec["mounts"][0],
            serde_json::json!({"type": "bind", "source": "/data/agents/1/config", "destination": "/home/node/.openclaw", "options": ["rbind", "Z"]})
        );
        assert_eq!(spec["env"]["TZ"], "Europe/Paris");
        assert_eq!(spec["env"][TOKEN_VAR], "tok", "the token only in the body");
        assert_eq!(spec["httpproxy"], false);
        assert_eq!(spec["userns"]["nsmode"], "keep-id");
        assert_eq!(spec["userns"]["value"], "uid=1000,gid=1000");
        assert!(
            spec.get("restart_policy").is_none(),
            "Clawdock owns restarts"
        );
        assert_eq!(spec["user"], "1000:1000");
        assert!(spec.get("cgroup_parent").is_none());
        assert_eq!(spec["cap_drop"], serde_json::json!(["all"]));
        assert_eq!(spec["no_new_privileges"], true);
        assert_eq!(spec["read_only_filesystem"], true);
        let tmpfs: Vec<&str> = spec["mounts"]
            .as_array()
            .expect("mounts")
            .iter()
            .filter(|m| m["type"] == "tmpfs")
            .filter_map(|m| m["destination"].as_str())
            .collect();
        assert_eq!(
            tmpfs, READ_ONLY_TMPFS,
            "what --read-only gives on the command line"
        );
        let limits = &spec["resource_limits"];
        assert_eq!(limits["memory"]["limit"], 2048_u64 * 1024 * 1024);
        assert_eq!(
            limits["memory"]["swap"],
            2048_u64 * 1024 * 1024,
            "no swap beyond the limit"
        );
        assert_eq!(limits["cpu"]["quota"], 150_000);
        assert_eq!(limits["cpu"]["period"], 100_000);
        assert_eq!(cpu_quota(1.0 / 3.0), 33_300, "Podman's precision");
        assert_eq!(cpus_arg(2.0), "2");
        assert_eq!(cpus_arg(0.25), "0.25");
        assert_eq!(limits["pids"]["limit"], 1024);
        assert_eq!(
            spec["log_configuration"]["size"],
            crate::sizing::CONTAINER_LOG_MAX_BYTES,
            "the log is capped"
        );
        assert_eq!(
            spec["image"], "sha256:abc",
            "the pinned image, never the tag"
        );
        assert_eq!(
            spec["command"],
            serde_json::json!([
                "node",
                "dist/index.js",
                "gateway",
                "--bind",
                "lan",
                "--port",
                "18789"
            ])
        );
        assert_eq!(hostname(&agent), hostname(&agent.clone()));
    }
}
