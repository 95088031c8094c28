//! What an agent is made of, as data: the name rule, the provider mapping that
//! becomes `openclaw.json`, and the container definition (podman arguments).
//! Pure functions, so every rule here is unit-tested without Podman.

use std::path::Path;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::store::AgentRecord;

/// Port the gateway listens on inside its container.
pub const GATEWAY_PORT: u16 = 18789;
/// The longest name: it becomes part of a container name and a DNS label.
pub const MAX_NAME_LEN: usize = 63;
pub const NAME_RULE: &str = "Names start with a letter or digit, then letters, digits, `_`, `.` or `-`, at most 63 characters.";

pub const LABEL_AGENT: &str = "io.clawdock.agent";
pub const LABEL_HOME: &str = "io.clawdock.home";
pub const LABEL_NAME: &str = "io.clawdock.name";

/// The uid of the `node` user the gateway image runs as.
pub const GATEWAY_UID: u32 = 1000;

/// The name rule of the replaced runtime, with a length bound.
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("A name is required.".into());
    }
    if name.chars().count() > MAX_NAME_LEN {
        return Err(format!("The name is too long. {NAME_RULE}"));
    }
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if first_ok && rest_ok {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a valid name. {NAME_RULE}",
            printable(name)
        ))
    }
}

/// A name safe to echo back in a message: control characters escaped, length cut.
fn printable(name: &str) -> String {
    let escaped: String = name.escape_debug().collect();
    if escaped.chars().count() > 80 {
        format!("{}...", escaped.chars().take(80).collect::<String>())
    } else {
        escaped
    }
}

/// Providers the gateway knows by name, and the variable holding each one's key.
pub const BUILT_IN_PROVIDERS: &[(&str, &str)] = &[
    ("anthropic", "ANTHROPIC_API_KEY"),
    ("openai", "OPENAI_API_KEY"),
    ("google", "GEMINI_API_KEY"),
    ("openrouter", "OPENROUTER_API_KEY"),
    ("moonshot", "MOONSHOT_API_KEY"),
    ("groq", "GROQ_API_KEY"),
    ("mistral", "MISTRAL_API_KEY"),
];

/// The provider part of a create request, as the replaced runtime took it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderInput {
    pub provider_type: Option<String>,
    pub api_key: Option<String>,
    pub base_url: Option<String>,
    pub model_id: Option<String>,
    pub provider_name: Option<String>,
}

/// The provider settled from the input: what goes into `openclaw.json`.
#[derive(Debug, Clone, PartialEq)]
pub enum Provider {
    None,
    BuiltIn {
        id: String,
        env_var: &'static str,
        api_key: Option<String>,
        model: Option<String>,
    },
    Custom {
        id: String,
        env_var: String,
        /// As the container must reach it (localhost rewritten).
        base_url: String,
        api_key: Option<String>,
        model: Option<String>,
        /// The user's URL pointed at this machine's loopback.
        on_host_loopback: bool,
    },
}

impl Provider {
    pub fn from_input(input: &ProviderInput) -> Result<Self, String> {
        let kind = clean(&input.provider_type).map(|s| s.to_ascii_lowercase());
        let api_key = clean(&input.api_key).map(str::to_string);
        let model = clean(&input.model_id).map(str::to_string);
        if let Some(key) = &api_key {
            if key.chars().any(char::is_control) || key.len() > 4096 {
                return Err("The API key has invalid characters or is too long.".into());
            }
        }
        if let Some(m) = &model {
            if m.chars().any(char::is_control) || m.len() > 200 {
                return Err("The model id has invalid characters or is too long.".into());
            }
        }
        if let Some(kind) = &kind {
            if let Some((id, var)) = BUILT_IN_PROVIDERS.iter().find(|(id, _)| id == kind) {
                return Ok(Self::BuiltIn {
                    id: (*id).to_string(),
                    env_var: var,
                    api_key,
                    model,
                });
            }
        }
        let Some(raw_url) = clean(&input.base_url) else {
            return match kind.as_deref() {
                None | Some("none" | "") => Ok(Self::None),
                Some(other) => Err(format!(
                    "Unknown provider `{}`: choose a built-in one or give a base URL.",
                    printable(other)
                )),
            };
        };
        let mut url = reqwest::Url::parse(raw_url)
            .map_err(|e| format!("The base URL is not a valid URL: {e}."))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err("The base URL must start with http:// or https://.".into());
        }
        let on_host_loopback = matches!(
            url.host_str(),
            Some("localhost" | "127.0.0.1" | "[::1]" | "::1")
        ) || url.host_str().is_some_and(|h| h.starts_with("127."));
        if on_host_loopback {
            url.set_host(Some("host.containers.internal"))
                .map_err(|e| format!("The base URL could not be rewritten: {e}."))?;
        }
        let id = slug(
            clean(&input.provider_name)
                .or(kind.as_deref())
                .unwrap_or_default(),
        );
        let env_var = format!("{}_API_KEY", id.replace('-', "_").to_ascii_uppercase());
        Ok(Self::Custom {
            id,
            env_var,
            base_url: url.to_string().trim_end_matches('/').to_string(),
            api_key,
            model,
            on_host_loopback,
        })
    }

    /// The provider name as the record keeps it.
    pub fn type_name(&self) -> Option<String> {
        match self {
            Self::None => None,
            Self::BuiltIn { id, .. } => Some(id.clone()),
            Self::Custom { id, .. } => Some(id.clone()),
        }
    }

    /// What the user should know before this works (a local service that must
    /// listen beyond 127.0.0.1).
    pub fn notice(&self) -> Option<String> {
        match self {
            Self::Custom {
                on_host_loopback: true,
                base_url,
                ..
            } => Some(format!(
                "The provider runs on this computer: the agent reaches it as {base_url}. \
                 It must listen on all interfaces (0.0.0.0), not only 127.0.0.1; for Ollama set OLLAMA_HOST=0.0.0.0."
            )),
            _ => None,
        }
    }
}

fn clean(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// Provider name to id: lower-cased, runs of other characters collapsed to `-`.
pub fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_matches('-').to_string();
    if out.is_empty() {
        "custom-provider".into()
    } else {
        out
    }
}

/// `openclaw.json` for an agent, in the shape the gateway keeps as written
/// (`env.vars`, not top-level `env` keys, which it would migrate at start).
pub fn openclaw_config(port: u16, provider: &Provider) -> Value {
    let mut config = json!({
        "gateway": {
            "mode": "local",
            "controlUi": {
                "allowedOrigins": [
                    format!("http://127.0.0.1:{port}"),
                    format!("http://localhost:{port}"),
                ]
            },
            "http": { "endpoints": { "chatCompletions": { "enabled": true } } }
        }
    });
    let mut vars = Map::new();
    let mut primary = None;
    match provider {
        Provider::None => {}
        Provider::BuiltIn {
            id,
            env_var,
            api_key,
            model,
        } => {
            if let Some(key) = api_key {
                vars.insert((*env_var).to_string(), Value::String(key.clone()));
            }
            primary = model.as_ref().map(|m| format!("{id}/{m}"));
        }
        Provider::Custom {
            id,
            env_var,
            base_url,
            api_key,
            model,
            ..
        } => {
            if let Some(key) = api_key {
                vars.insert(env_var.clone(), Value::String(key.clone()));
            }
            let models: Vec<Value> = model
                .iter()
                .map(|m| json!({ "id": m, "name": m }))
                .collect();
            config["models"] = json!({
                "mode": "merge",
                "providers": {
                    id.as_str(): {
                        "baseUrl": base_url,
                        "apiKey": format!("${{{env_var}}}"),
                        "api": "openai-completions",
                        "models": models,
                    }
                }
            });
            primary = model.as_ref().map(|m| format!("{id}/{m}"));
        }
    }
    if !vars.is_empty() {
        config["env"] = json!({ "vars": vars });
    }
    if let Some(primary) = primary {
        config["agents"] = json!({ "defaults": { "model": { "primary": primary } } });
    }
    config
}

/// How the container must be set up on this host.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostTraits {
    /// Rootless Podman on Linux: map the host user to the gateway's uid so the
    /// agent folder stays the user's.
    pub rootless_native: bool,
    /// Rootful Podman on Linux: the agent folder is handed to the gateway's uid.
    pub rootful_native: bool,
    /// Bind mounts need an SELinux label on Linux hosts that enforce it.
    pub relabel: bool,
}

/// `podman create` arguments for an agent. Built as an argument list: user text
/// never passes through a shell or a YAML file.
pub fn create_args(
    agent: &AgentRecord,
    image: &str,
    home_label: &str,
    time_zone: &str,
    host: HostTraits,
) -> Vec<String> {
    let dir = &agent.dir;
    let mount = |sub: &str, target: &str| {
        let suffix = if host.relabel { ":Z" } else { "" };
        format!("{}:{target}{suffix}", dir.join(sub).display())
    };
    let mut args: Vec<String> = vec![
        "create".into(),
        "--name".into(),
        agent.container_name(),
        "--hostname".into(),
        hostname(agent),
        "--label".into(),
        format!("{LABEL_AGENT}={}", agent.id),
        "--label".into(),
        format!("{LABEL_HOME}={home_label}"),
        "--label".into(),
        format!("{LABEL_NAME}={}", agent.name),
        "--publish".into(),
        format!("127.0.0.1:{}:{GATEWAY_PORT}", agent.port),
        "--env".into(),
        format!("OPENCLAW_GATEWAY_TOKEN={}", agent.token),
        "--env".into(),
        format!("TZ={time_zone}"),
        // The gateway colours its log even without a terminal; plain text reads
        // better in the agent's log view.
        "--env".into(),
        "NO_COLOR=1".into(),
        "--volume".into(),
        mount("config", "/home/node/.openclaw"),
        "--volume".into(),
        mount("workspace", "/home/node/.openclaw/workspace"),
        "--health-cmd".into(),
        format!(
            "wget -qO- http://127.0.0.1:{GATEWAY_PORT}/healthz >/dev/null 2>&1 || curl -sf http://127.0.0.1:{GATEWAY_PORT}/healthz"
        ),
        "--health-interval".into(),
        "30s".into(),
        "--health-timeout".into(),
        "10s".into(),
        "--health-retries".into(),
        "3".into(),
        "--restart".into(),
        "unless-stopped".into(),
    ];
    if host.rootless_native {
        args.push("--userns".into());
        args.push(format!("keep-id:uid={GATEWAY_UID},gid={GATEWAY_UID}"));
    }
    args.push(image.to_string());
    args.extend(
        [
            "node",
            "dist/index.js",
            "gateway",
            "--bind",
            "lan",
            "--port",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    args.push(GATEWAY_PORT.to_string());
    args
}

/// A fixed hostname per agent: the gateway's owner lease records it, and a new
/// container with another hostname would wait up to 300 s after a kill.
pub fn hostname(agent: &AgentRecord) -> String {
    format!("agent-{}", &agent.id.simple().to_string()[..12])
}

/// The agent folder of an id.
pub fn agent_dir(agents_dir: &Path, id: &uuid::Uuid) -> std::path::PathBuf {
    agents_dir.join(id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{AgentStatus, Wanted};

    fn input(
        kind: &str,
        key: &str,
        url: Option<&str>,
        model: Option<&str>,
        pname: Option<&str>,
    ) -> ProviderInput {
        ProviderInput {
            provider_type: Some(kind.into()),
            api_key: Some(key.into()),
            base_url: url.map(Into::into),
            model_id: model.map(Into::into),
            provider_name: pname.map(Into::into),
        }
    }

    #[test]
    fn names() {
        for ok in ["a", "A1", "my-agent_2.x", &"a".repeat(63)] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-a",
            ".hidden",
            "a/b",
            "..",
            "a\nb",
            "é",
            "a b",
            &"a".repeat(64),
        ] {
            let err = validate_name(bad).expect_err(bad);
            assert!(
                err.contains("Names start with") || err.contains("required"),
                "{err}"
            );
        }
        let err = validate_name("a\nb").expect_err("newline");
        assert!(
            err.contains("a\\nb"),
            "control characters are escaped: {err}"
        );
    }

    #[test]
    fn built_in_provider_goes_to_env_vars() {
        let p = Provider::from_input(&input("OpenAI", "sk-1", None, Some("gpt-5"), None))
            .expect("provider");
        let c = openclaw_config(18789, &p);
        assert_eq!(c["env"]["vars"]["OPENAI_API_KEY"], "sk-1");
        assert_eq!(c["agents"]["defaults"]["model"]["primary"], "openai/gpt-5");
        assert_eq!(c["gateway"]["mode"], "local");
        assert_eq!(
            c["gateway"]["http"]["endpoints"]["chatCompletions"]["enabled"],
            true
        );
        assert_eq!(
            c["gateway"]["controlUi"]["allowedOrigins"][1],
            "http://localhost:18789"
        );
        assert!(c.get("models").is_none());
        let g = Provider::from_input(&input("google", "k", None, None, None)).expect("provider");
        assert_eq!(openclaw_config(1, &g)["env"]["vars"]["GEMINI_API_KEY"], "k");
    }

    #[test]
    fn custom_provider_shape() {
        let p = Provider::from_input(&input(
            "custom",
            "k",
            Some("https://llm.example.com/v1/"),
            Some("m1"),
            Some("My LLM!"),
        ))
        .expect("provider");
        let c = openclaw_config(18790, &p);
        assert_eq!(c["env"]["vars"]["MY_LLM_API_KEY"], "k");
        let prov = &c["models"]["providers"]["my-llm"];
        assert_eq!(c["models"]["mode"], "merge");
        assert_eq!(prov["baseUrl"], "https://llm.example.com/v1");
        assert_eq!(prov["apiKey"], "${MY_LLM_API_KEY}");
        assert_eq!(prov["api"], "openai-completions");
        assert_eq!(prov["models"][0]["id"], "m1");
        assert_eq!(c["agents"]["defaults"]["model"]["primary"], "my-llm/m1");
        assert!(p.notice().is_none());
    }

    #[test]
    fn loopback_base_url_is_rewritten() {
        let p = Provider::from_input(&input(
            "ollama",
            "",
            Some("http://localhost:11434/v1"),
            Some("llama3"),
            None,
        ))
        .expect("provider");
        match &p {
            Provider::Custom {
                base_url,
                on_host_loopback,
                id,
                ..
            } => {
                assert_eq!(base_url, "http://host.containers.internal:11434/v1");
                assert!(on_host_loopback);
                assert_eq!(id, "ollama");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(p.notice().expect("notice").contains("0.0.0.0"));
        let p = Provider::from_input(&input("x", "", Some("http://127.0.0.1:8080"), None, None))
            .expect("provider");
        assert!(
            matches!(p, Provider::Custom { ref base_url, .. } if base_url == "http://host.containers.internal:8080")
        );
    }

    #[test]
    fn slugs() {
        assert_eq!(slug("My  LLM!!"), "my-llm");
        assert_eq!(slug("!!!"), "custom-provider");
        assert_eq!(slug(""), "custom-provider");
    }

    #[test]
    fn bad_provider_input() {
        assert!(Provider::from_input(&input("nope", "k", None, None, None)).is_err());
        assert!(Provider::from_input(&input("x", "k", Some("ftp://a"), None, None)).is_err());
        assert!(Provider::from_input(&input("x", "k", Some("not a url"), None, None)).is_err());
        assert!(Provider::from_input(&input("openai", "a\nb", None, None, None)).is_err());
        assert_eq!(
            Provider::from_input(&ProviderInput::default()),
            Ok(Provider::None)
        );
    }

    #[test]
    fn container_definition_is_data() {
        let agent = AgentRecord {
            id: uuid::Uuid::new_v4(),
            name: "x; rm -rf /".into(), // never valid, but must still stay one argument
            status: AgentStatus::Creating,
            port: 18800,
            dir: "/data/agents/1".into(),
            token: "tok".into(),
            created_at: chrono::Utc::now(),
            error: None,
            provider_type: None,
            wanted: Wanted::Running,
            running_at_quit: false,
            deleting: false,
            image: "img".into(),
        };
        let args = create_args(
            &agent,
            "img:1",
            "home1",
            "Europe/Paris",
            HostTraits {
                rootless_native: true,
                rootful_native: false,
                relabel: true,
            },
        );
        assert!(args.contains(&"clawdock-x; rm -rf /".to_string()));
        assert!(args.contains(&"127.0.0.1:18800:18789".to_string()));
        assert!(args.contains(&format!("io.clawdock.agent={}", agent.id)));
        assert!(args.contains(&"io.clawdock.home=home1".to_string()));
        assert!(args.contains(&"/data/agents/1/config:/home/node/.openclaw:Z".to_string()));
        assert!(args.contains(&"TZ=Europe/Paris".to_string()));
        assert!(args.contains(&"keep-id:uid=1000,gid=1000".to_string()));
        assert!(args.contains(&"unless-stopped".to_string()));
        let at = args.iter().position(|a| a == "img:1").expect("image");
        assert_eq!(
            &args[at + 1..],
            [
                "node",
                "dist/index.js",
                "gateway",
                "--bind",
                "lan",
                "--port",
                "18789"
            ]
        );
        assert_eq!(hostname(&agent), hostname(&agent.clone()));
    }
}
