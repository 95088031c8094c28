//! What an agent is made of, as data: the name rule, the provider mapping that
//! becomes `openclaw.json`, and the agent's folder.
//! Pure functions, so every rule here is unit-tested without Podman.

use std::path::Path;

use serde::Deserialize;
use serde_json::{json, Map, Value};

/// The longest name: it becomes part of a container name and a DNS label.
pub const MAX_NAME_LEN: usize = 63;
pub const NAME_RULE: &str = "Names start with a letter or digit, then letters, digits, `_`, `.` or `-`, at most 63 characters.";
/// `validate_name` as a pattern (with `MAX_NAME_LEN`), for clients that check as the
/// user types (`GET /meta`); a test keeps the two in agreement.
pub const NAME_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9_.-]*$";

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

/// A provider the gateway knows by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuiltIn {
    pub id: &'static str,
    /// What a person calls it (the window's provider list).
    pub label: &'static str,
    /// The variable holding its key in the container.
    pub env_var: &'static str,
}

/// Providers the gateway knows by name.
pub const BUILT_IN_PROVIDERS: &[BuiltIn] = &[
    BuiltIn {
        id: "anthropic",
        label: "Anthropic",
        env_var: "ANTHROPIC_API_KEY",
    },
    BuiltIn {
        id: "openai",
        label: "OpenAI",
        env_var: "OPENAI_API_KEY",
    },
    BuiltIn {
        id: "google",
        label: "Google (Gemini)",
        env_var: "GEMINI_API_KEY",
    },
    BuiltIn {
        id: "openrouter",
        label: "OpenRouter",
        env_var: "OPENROUTER_API_KEY",
    },
    BuiltIn {
        id: "moonshot",
        label: "Moonshot",
        env_var: "MOONSHOT_API_KEY",
    },
    BuiltIn {
        id: "groq",
        label: "Groq",
        env_var: "GROQ_API_KEY",
    },
    BuiltIn {
        id: "mistral",
        label: "Mistral",
        env_var: "MISTRAL_API_KEY",
    },
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
            if let Some(p) = BUILT_IN_PROVIDERS.iter().find(|p| p.id == kind) {
                return Ok(Self::BuiltIn {
                    id: p.id.to_string(),
                    env_var: p.env_var,
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

/// Points an existing `openclaw.json` at another host port (the Control UI's
/// allowed origins name it).
pub fn move_config_to_port(config: &mut Value, port: u16) {
    config["gateway"]["controlUi"]["allowedOrigins"] = json!([
        format!("http://127.0.0.1:{port}"),
        format!("http://localhost:{port}"),
    ]);
}

/// The provider an `openclaw.json` names, as a record keeps it: the primary
/// model's prefix, else the custom provider's id, else the built-in provider whose
/// key it holds. Used to rebuild a lost record from the agent's folder.
pub fn provider_of_config(config: &Value) -> Option<String> {
    if let Some(primary) = config["agents"]["defaults"]["model"]["primary"].as_str() {
        if let Some((provider, _)) = primary.split_once('/') {
            return Some(provider.to_string());
        }
    }
    if let Some(providers) = config["models"]["providers"].as_object() {
        if let Some(id) = providers.keys().next() {
            return Some(id.clone());
        }
    }
    let vars = config["env"]["vars"].as_object()?;
    BUILT_IN_PROVIDERS
        .iter()
        .find(|p| vars.contains_key(p.env_var))
        .map(|p| p.id.to_string())
}

/// The agent folder of an id.
pub fn agent_dir(agents_dir: &Path, id: &uuid::Uuid) -> std::path::PathBuf {
    agents_dir.join(id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn a_config_tells_its_provider_back() {
        let built_in =
            Provider::from_input(&input("groq", "k", None, None, None)).expect("provider");
        assert_eq!(
            provider_of_config(&openclaw_config(1, &built_in)).as_deref(),
            Some("groq")
        );
        let custom = Provider::from_input(&input(
            "custom",
            "k",
            Some("https://llm.example.com/v1"),
            None,
            Some("My LLM"),
        ))
        .expect("provider");
        assert_eq!(
            provider_of_config(&openclaw_config(1, &custom)).as_deref(),
            Some("my-llm")
        );
        assert_eq!(
            provider_of_config(&openclaw_config(1, &Provider::None)),
            None
        );
        let mut moved = openclaw_config(1, &Provider::None);
        move_config_to_port(&mut moved, 2);
        assert_eq!(
            moved["gateway"]["controlUi"]["allowedOrigins"][0],
            "http://127.0.0.1:2"
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
}
