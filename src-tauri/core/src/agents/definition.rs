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

    /// A custom provider's base URL, as the container reaches it.
    pub fn base_url(&self) -> Option<&str> {
        match self {
            Self::Custom { base_url, .. } => Some(base_url),
            Self::None | Self::BuiltIn { .. } => None,
        }
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
/// The agent writes this file: something other than an object where one belongs
/// is an error naming it, never a panic.
pub fn move_config_to_port(config: &mut Value, port: u16) -> Result<(), String> {
    let control_ui = object_at(config, &["gateway", "controlUi"]).ok_or_else(|| {
        "openclaw.json has something other than an object where `gateway.controlUi` belongs; fix it or delete it".to_string()
    })?;
    control_ui.insert(
        "allowedOrigins".into(),
        json!([
            format!("http://127.0.0.1:{port}"),
            format!("http://localhost:{port}"),
        ]),
    );
    Ok(())
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

/// What an `openclaw.json` says of its provider, as the input that would write it:
/// the base an edit changes only some fields of.
pub fn provider_input_of_config(config: &Value) -> ProviderInput {
    let Some(id) = provider_of_config(config) else {
        return ProviderInput::default();
    };
    let key_in = |var: Option<&str>| {
        var.and_then(|v| config.pointer(&format!("/env/vars/{v}")))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let model_id = config
        .pointer("/agents/defaults/model/primary")
        .and_then(Value::as_str)
        .and_then(|p| p.split_once('/'))
        .map(|(_, m)| m.to_string());
    if let Some(custom) = config.pointer(&format!("/models/providers/{id}")) {
        return ProviderInput {
            provider_type: Some(id.clone()),
            provider_name: Some(id),
            base_url: custom["baseUrl"].as_str().map(str::to_string),
            api_key: key_in(custom["apiKey"].as_str().and_then(var_of_reference)),
            model_id,
        };
    }
    let var = BUILT_IN_PROVIDERS
        .iter()
        .find(|p| p.id == id)
        .map(|p| p.env_var);
    ProviderInput {
        provider_type: Some(id),
        api_key: key_in(var),
        model_id,
        ..ProviderInput::default()
    }
}

/// `${VAR}` -> `VAR`.
fn var_of_reference(reference: &str) -> Option<&str> {
    reference.strip_prefix("${")?.strip_suffix('}')
}

impl ProviderInput {
    /// No field given (or only blank ones).
    pub fn is_empty(&self) -> bool {
        [
            &self.provider_type,
            &self.provider_name,
            &self.base_url,
            &self.api_key,
            &self.model_id,
        ]
        .into_iter()
        .all(|f| clean(f).is_none())
    }
}

/// The provider after an edit of `current`: every field the edit gives replaces
/// the current one, a blank or absent one keeps it. The key is kept only while the
/// provider stays the same (an OpenAI key is no use to Anthropic), and a new
/// provider type drops the old custom provider's name.
pub fn edited_provider(current: &ProviderInput, edit: &ProviderInput) -> Result<Provider, String> {
    let pick = |new: &Option<String>, old: &Option<String>| {
        clean(new).map(str::to_string).or_else(|| old.clone())
    };
    let new_kind = clean(&edit.provider_type).is_some();
    let mut merged = ProviderInput {
        provider_type: pick(&edit.provider_type, &current.provider_type),
        provider_name: if new_kind {
            clean(&edit.provider_name).map(str::to_string)
        } else {
            pick(&edit.provider_name, &current.provider_name)
        },
        base_url: pick(&edit.base_url, &current.base_url),
        api_key: pick(&edit.api_key, &current.api_key),
        model_id: pick(&edit.model_id, &current.model_id),
    };
    let provider = Provider::from_input(&merged)?;
    if clean(&edit.base_url).is_some() && matches!(provider, Provider::BuiltIn { .. }) {
        return Err(format!(
            "`{}` is a built-in provider and takes no base URL; give a provider type of your own with the base URL for a custom one.",
            provider.type_name().unwrap_or_default()
        ));
    }
    let before = Provider::from_input(current)
        .ok()
        .and_then(|p| p.type_name());
    if clean(&edit.api_key).is_none() && provider.type_name() != before {
        merged.api_key = None;
        return Provider::from_input(&merged);
    }
    Ok(provider)
}

/// `config` with its provider replaced by `provider`: the old provider's key,
/// custom entry and primary model go, the new ones come in, and everything else
/// the file holds (the gateway's own settings, paired channels) stays as it was.
pub fn with_provider(config: &Value, port: u16, provider: &Provider) -> Value {
    let mut out = config.clone();
    if let Some(old) = provider_of_config(&out) {
        let mut var = BUILT_IN_PROVIDERS
            .iter()
            .find(|p| p.id == old)
            .map(|p| p.env_var.to_string());
        if let Some(custom) = out
            .pointer_mut("/models/providers")
            .and_then(Value::as_object_mut)
            .and_then(|providers| providers.remove(&old))
        {
            var = custom["apiKey"]
                .as_str()
                .and_then(var_of_reference)
                .map(str::to_string);
        }
        if let (Some(var), Some(vars)) = (
            var,
            out.pointer_mut("/env/vars").and_then(Value::as_object_mut),
        ) {
            vars.remove(&var);
        }
    }
    if let Some(model) = out
        .pointer_mut("/agents/defaults/model")
        .and_then(Value::as_object_mut)
    {
        model.remove("primary");
    }
    let fresh = openclaw_config(port, provider);
    if let Some(vars) = fresh.pointer("/env/vars").and_then(Value::as_object) {
        if let Some(into) = object_at(&mut out, &["env", "vars"]) {
            into.extend(vars.clone());
        }
    }
    if let Some(providers) = fresh
        .pointer("/models/providers")
        .and_then(Value::as_object)
    {
        if let Some(models) = object_at(&mut out, &["models"]) {
            models
                .entry("mode")
                .or_insert_with(|| Value::String("merge".into()));
        }
        if let Some(into) = object_at(&mut out, &["models", "providers"]) {
            into.extend(providers.clone());
        }
    }
    if let Some(primary) = fresh.pointer("/agents/defaults/model/primary") {
        if let Some(model) = object_at(&mut out, &["agents", "defaults", "model"]) {
            model.insert("primary".into(), primary.clone());
        }
    }
    prune_empty(&mut out, &["env", "vars"]);
    prune_empty(&mut out, &["models", "providers"]);
    prune_empty(&mut out, &["agents", "defaults", "model"]);
    out
}

/// The object at `path`, made where missing; `None` when something else is in
/// the way (left alone rather than overwritten).
fn object_at<'a>(value: &'a mut Value, path: &[&str]) -> Option<&'a mut Map<String, Value>> {
    let mut here = value;
    for key in path {
        here = here
            .as_object_mut()?
            .entry(*key)
            .or_insert_with(|| Value::Object(Map::new()));
    }
    here.as_object_mut()
}

/// Removes the object at `path` when empty, then each parent left empty, but only
/// as far as this module writes (`env`, `models` holding only its mode, `agents`).
fn prune_empty(value: &mut Value, path: &[&str]) {
    for depth in (1..=path.len()).rev() {
        let (parent, last) = (&path[..depth - 1], path[depth - 1]);
        let pointer: String = parent.iter().map(|k| format!("/{k}")).collect();
        let Some(parent) = value.pointer_mut(&pointer).and_then(Value::as_object_mut) else {
            return;
        };
        let empty = match parent.get(last) {
            Some(Value::Object(m)) => {
                m.is_empty() || (last == "models" && m.len() == 1 && m.contains_key("mode"))
            }
            _ => false,
        };
        if !empty {
            return;
        }
        parent.remove(last);
    }
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
        move_config_to_port(&mut moved, 2).expect("an object");
        assert_eq!(
            moved["gateway"]["controlUi"]["allowedOrigins"][0],
            "http://127.0.0.1:2"
        );
    }

    fn edit(f: impl FnOnce(&mut ProviderInput)) -> ProviderInput {
        let mut e = ProviderInput::default();
        f(&mut e);
        e
    }

    #[test]
    fn a_config_reads_back_as_its_input() {
        let custom = input(
            "custom",
            "k1",
            Some("https://llm.example.com/v1"),
            Some("m/1"),
            Some("My LLM"),
        );
        let config = openclaw_config(1, &Provider::from_input(&custom).expect("provider"));
        let back = provider_input_of_config(&config);
        assert_eq!(back.provider_type.as_deref(), Some("my-llm"));
        assert_eq!(back.base_url.as_deref(), Some("https://llm.example.com/v1"));
        assert_eq!(back.api_key.as_deref(), Some("k1"));
        assert_eq!(back.model_id.as_deref(), Some("m/1"));
        assert_eq!(
            openclaw_config(1, &Provider::from_input(&back).expect("again")),
            config,
            "what is read back writes the same file"
        );
        let built_in = openclaw_config(
            1,
            &Provider::from_input(&input("openai", "sk", None, Some("gpt-5"), None))
                .expect("provider"),
        );
        let back = provider_input_of_config(&built_in);
        assert_eq!(
            (
                back.provider_type.as_deref(),
                back.api_key.as_deref(),
                back.model_id.as_deref()
            ),
            (Some("openai"), Some("sk"), Some("gpt-5"))
        );
        assert!(provider_input_of_config(&openclaw_config(1, &Provider::None)).is_empty());
    }

    #[test]
    fn an_edit_changes_only_what_it_gives() {
        let current = input("openai", "old-key", None, Some("gpt-4"), None);
        let model_only =
            edited_provider(&current, &edit(|e| e.model_id = Some("gpt-5".into()))).expect("edit");
        assert_eq!(
            model_only,
            Provider::from_input(&input("openai", "old-key", None, Some("gpt-5"), None))
                .expect("provider"),
            "a blank key keeps the key"
        );
        let key_only =
            edited_provider(&current, &edit(|e| e.api_key = Some("new-key".into()))).expect("edit");
        assert!(
            matches!(key_only, Provider::BuiltIn { ref api_key, ref model, .. }
            if api_key.as_deref() == Some("new-key") && model.as_deref() == Some("gpt-4"))
        );
        let other = edited_provider(
            &current,
            &edit(|e| e.provider_type = Some("anthropic".into())),
        )
        .expect("edit");
        assert!(
            matches!(other, Provider::BuiltIn { ref id, ref api_key, .. } if id == "anthropic" && api_key.is_none()),
            "another provider does not inherit the key: {other:?}"
        );
        let custom = input(
            "custom",
            "k",
            Some("https://a.example/v1"),
            None,
            Some("mine"),
        );
        let moved = edited_provider(
            &custom,
            &edit(|e| e.base_url = Some("https://b.example/v1".into())),
        )
        .expect("edit");
        assert!(
            matches!(moved, Provider::Custom { ref id, ref base_url, ref api_key, .. }
            if id == "mine" && base_url == "https://b.example/v1" && api_key.as_deref() == Some("k"))
        );
        assert!(
            edited_provider(&current, &edit(|e| e.provider_type = Some("nope".into()))).is_err()
        );
        assert!(edited_provider(&current, &edit(|e| e.api_key = Some("a\nb".into()))).is_err());
        assert!(edit(|e| e.api_key = Some("  ".into())).is_empty());
    }

    #[test]
    fn a_new_provider_replaces_the_old_and_keeps_the_rest() {
        let old = Provider::from_input(&input(
            "custom",
            "old-key",
            Some("https://a.example/v1"),
            Some("m1"),
            Some("mine"),
        ))
        .expect("provider");
        let mut config = openclaw_config(18789, &old);
        config["channels"] = json!({ "telegram": { "enabled": true } });
        config["env"]["vars"]["BRAVE_API_KEY"] = json!("tool-key");
        let new = Provider::from_input(&input("anthropic", "new-key", None, Some("claude"), None))
            .expect("provider");
        let out = with_provider(&config, 18789, &new);
        let text = out.to_string();
        assert!(
            !text.contains("old-key") && !text.contains("a.example"),
            "{text}"
        );
        assert_eq!(out["env"]["vars"]["ANTHROPIC_API_KEY"], "new-key");
        assert_eq!(out["env"]["vars"]["BRAVE_API_KEY"], "tool-key");
        assert_eq!(
            out["agents"]["defaults"]["model"]["primary"],
            "anthropic/claude"
        );
        assert_eq!(out["channels"]["telegram"]["enabled"], true);
        assert!(out.get("models").is_none(), "no empty models left: {out}");
        assert_eq!(out["gateway"], config["gateway"]);
        let none = with_provider(&out, 18789, &Provider::None);
        assert!(none.pointer("/env/vars/ANTHROPIC_API_KEY").is_none());
        assert!(none.pointer("/agents").is_none(), "{none}");
        assert_eq!(
            with_provider(&openclaw_config(18789, &old), 18789, &old),
            openclaw_config(18789, &old)
        );
        let odd = json!({ "agents": [1], "env": "x" });
        let written = with_provider(&odd, 1, &new);
        assert_eq!(
            written["agents"],
            json!([1]),
            "what is in the way is left alone"
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
