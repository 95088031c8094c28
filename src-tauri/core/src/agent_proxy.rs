//! How agents reach their providers from behind a company network: the HTTP(S)
//! proxy and the extra CA bundle handed to every agent's container. Proxy addresses
//! may carry credentials (`http://user:pass@proxy:3128`): those never reach a
//! container (a prompt-injected agent reads its own environment); an agent gets
//! the address of Clawdock's relay instead, with a credential of its own
//! ([`crate::proxy_relay`]), and every answer or log shows them masked.

use std::path::PathBuf;

use serde::Serialize;

/// Names that always bypass the proxy inside the container: the gateway's own
/// health check and tools talk to loopback.
pub const LOOPBACK: &[&str] = &["localhost", "127.0.0.1", "::1"];

/// Where the CA bundle is mounted inside the container (read-only).
pub const CA_TARGET: &str = "/etc/clawdock/extra-ca.pem";

/// Where the proxy setting came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum ProxySource {
    /// No proxy set anywhere.
    #[default]
    None,
    /// The host's `HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY`.
    Host,
    /// `CLAWDOCK_AGENT_PROXY`.
    Clawdock,
    /// `CLAWDOCK_AGENT_PROXY=off`: the host's proxy is not passed on.
    Off,
}

/// The proxy and CA bundle of every agent.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AgentProxy {
    /// For `https://` destinations (provider APIs).
    pub https_proxy: Option<String>,
    /// For `http://` destinations.
    pub http_proxy: Option<String>,
    /// Hosts that bypass the proxy, beyond loopback (always added).
    pub no_proxy: Vec<String>,
    /// A PEM bundle on the host the gateway trusts beside the public roots (a
    /// TLS-inspecting company CA).
    pub ca_bundle: Option<PathBuf>,
    pub source: ProxySource,
}

impl std::fmt::Debug for AgentProxy {
    // Masked: settings are logged at start.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentProxy")
            .field("https_proxy", &self.https_proxy.as_deref().map(mask))
            .field("http_proxy", &self.http_proxy.as_deref().map(mask))
            .field("no_proxy", &self.no_proxy)
            .field("ca_bundle", &self.ca_bundle)
            .field("source", &self.source)
            .finish()
    }
}

/// What `GET /settings` shows of it: credentials masked.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentProxyView {
    pub https_proxy: Option<String>,
    pub http_proxy: Option<String>,
    pub no_proxy: String,
    pub ca_bundle: Option<String>,
    pub source: ProxySource,
}

impl AgentProxy {
    /// Reads the setting from environment variables (`var` returns a non-blank
    /// value or `None`): `CLAWDOCK_AGENT_PROXY` (a URL, or `off` to pass no proxy),
    /// else the host's `HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY` (either case);
    /// `CLAWDOCK_AGENT_NO_PROXY` and `CLAWDOCK_AGENT_CA_BUNDLE`.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let either = |name: &str| var(name).or_else(|| var(&name.to_lowercase()));
        let mut this = match var("CLAWDOCK_AGENT_PROXY").as_deref().map(str::trim) {
            Some("off" | "none" | "0" | "false" | "no") => Self {
                source: ProxySource::Off,
                ..Self::default()
            },
            Some(url) => Self {
                https_proxy: Some(url.to_string()),
                http_proxy: Some(url.to_string()),
                source: ProxySource::Clawdock,
                ..Self::default()
            },
            None => {
                let https = either("HTTPS_PROXY");
                let http = either("HTTP_PROXY");
                let source = if https.is_some() || http.is_some() {
                    ProxySource::Host
                } else {
                    ProxySource::None
                };
                Self {
                    https_proxy: https.or_else(|| http.clone()),
                    http_proxy: http,
                    no_proxy: either("NO_PROXY").map(split_list).unwrap_or_default(),
                    source,
                    ..Self::default()
                }
            }
        };
        if let Some(list) = var("CLAWDOCK_AGENT_NO_PROXY") {
            this.no_proxy = split_list(list);
        }
        this.ca_bundle = var("CLAWDOCK_AGENT_CA_BUNDLE").map(PathBuf::from);
        this
    }

    pub fn has_proxy(&self) -> bool {
        self.https_proxy.is_some() || self.http_proxy.is_some()
    }

    /// The container's `NO_PROXY`: loopback first, then the configured hosts.
    pub fn no_proxy_value(&self) -> String {
        let mut all: Vec<&str> = LOOPBACK.to_vec();
        for host in &self.no_proxy {
            if !all.contains(&host.as_str()) {
                all.push(host);
            }
        }
        all.join(",")
    }

    /// The user's proxies whose addresses carry credentials, which the relay
    /// passes requests on to (an `https://` proxy it cannot speak to is not
    /// among them).
    pub fn upstreams(&self) -> crate::proxy_relay::Upstreams {
        use crate::proxy_relay::Upstream;
        crate::proxy_relay::Upstreams {
            https: self.https_proxy.as_deref().and_then(Upstream::of),
            http: self.http_proxy.as_deref().and_then(Upstream::of),
        }
    }

    /// What one agent's container gets: its proxy variables and the CA bundle.
    /// `relay`: the relay's address for this agent (its own credential in it),
    /// which replaces every proxy address that carries credentials; without it
    /// such an address goes without its credentials, never with them.
    pub fn for_container(&self, relay: Option<&str>) -> ContainerProxy {
        let mut env = self.plain_env();
        let mut proxy = |names: [&'static str; 2], url: &str| {
            let url = if !has_credentials(url) {
                from_container(url)
            } else if let (Some(relay), Some(_)) = (relay, crate::proxy_relay::Upstream::of(url)) {
                relay.to_string()
            } else {
                tracing::warn!(proxy = %mask(url), "the agents' proxy carries credentials the relay cannot pass on (not http://): agents get it without them");
                from_container(&without_credentials(url))
            };
            for name in names {
                env.push((name, url.clone()));
            }
        };
        if let Some(url) = &self.https_proxy {
            proxy(["HTTPS_PROXY", "https_proxy"], url);
        }
        if let Some(url) = &self.http_proxy {
            proxy(["HTTP_PROXY", "http_proxy"], url);
        }
        ContainerProxy {
            env,
            ca_bundle: self.ca_bundle.clone(),
        }
    }

    /// The plain variables: `NO_PROXY`, Node's switch to honour the proxy variables
    /// in `fetch` and `http`, and the CA bundle's path inside the container.
    fn plain_env(&self) -> Vec<(&'static str, String)> {
        let mut env = Vec::new();
        if self.has_proxy() {
            let no_proxy = self.no_proxy_value();
            env.push(("NO_PROXY", no_proxy.clone()));
            env.push(("no_proxy", no_proxy));
            env.push(("NODE_USE_ENV_PROXY", "1".to_string()));
        }
        if self.ca_bundle.is_some() {
            env.push(("NODE_EXTRA_CA_CERTS", CA_TARGET.to_string()));
        }
        env
    }

    pub fn view(&self) -> AgentProxyView {
        AgentProxyView {
            https_proxy: self.https_proxy.as_deref().map(mask),
            http_proxy: self.http_proxy.as_deref().map(mask),
            no_proxy: self.no_proxy_value(),
            ca_bundle: self.ca_bundle.as_ref().map(|p| p.display().to_string()),
            source: self.source,
        }
    }
}

/// The proxy variables and CA bundle of one agent's container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerProxy {
    pub env: Vec<(&'static str, String)>,
    /// Mounted read-only where `NODE_EXTRA_CA_CERTS` points.
    pub ca_bundle: Option<PathBuf>,
}

/// Whether a proxy address carries a user or a password.
fn has_credentials(url: &str) -> bool {
    reqwest::Url::parse(url).map_or_else(
        |_| mask(url) != url,
        |u| !u.username().is_empty() || u.password().is_some(),
    )
}

/// The address without its user and password.
fn without_credentials(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            // Both succeed on an address that has a host, which one with
            // credentials has.
            let cleared = u.set_username("").and_then(|()| u.set_password(None));
            if cleared.is_err() {
                return String::new();
            }
            u.to_string().trim_end_matches('/').to_string()
        }
        Err(_) => String::new(),
    }
}

/// The proxy's address as the container reaches it: a proxy on the host's loopback
/// (`http://127.0.0.1:3128`, a local authenticating proxy) is the host's, reached
/// as `host.containers.internal` (it must listen beyond 127.0.0.1 for that), as a
/// provider's base URL is. Anything else, or what does not parse, is left as is.
fn from_container(url: &str) -> String {
    let Ok(mut parsed) = reqwest::Url::parse(url) else {
        return url.to_string();
    };
    let loopback = matches!(parsed.host_str(), Some("localhost" | "[::1]" | "::1"))
        || parsed.host_str().is_some_and(|h| h.starts_with("127."));
    if !loopback || parsed.set_host(Some("host.containers.internal")).is_err() {
        return url.to_string();
    }
    let text = parsed.to_string();
    // `Url` adds a `/` path the variable did not have.
    if url.ends_with('/') {
        text
    } else {
        text.trim_end_matches('/').to_string()
    }
}

fn split_list(list: String) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(str::to_string)
        .collect()
}

/// A proxy address with its credentials replaced by `***`
/// (`http://u:p@proxy:3128` → `http://***@proxy:3128`).
pub fn mask(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (format!("{s}://"), r),
        None => (String::new(), url),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rfind('@') {
        Some(at) => format!("{scheme}***{}{path}", &authority[at..]),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(vars: &[(&str, &str)]) -> AgentProxy {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        AgentProxy::from_vars(|k| map.get(k).cloned())
    }

    #[test]
    fn credentials_are_masked() {
        assert_eq!(
            mask("http://user:pa@ss@proxy:3128/x"),
            "http://***@proxy:3128/x"
        );
        assert_eq!(mask("http://proxy:3128"), "http://proxy:3128");
        assert_eq!(mask("u:p@proxy:3128"), "***@proxy:3128");
        let p = from(&[("HTTPS_PROXY", "http://u:secret@p:1")]);
        assert!(!format!("{p:?}").contains("secret"));
        assert!(!serde_json::to_string(&p.view())
            .expect("json")
            .contains("secret"));
    }

    #[test]
    fn the_host_proxy_is_the_default_and_can_be_turned_off() {
        let host = from(&[
            ("https_proxy", "http://p:1"),
            ("NO_PROXY", "corp.example, 10.0.0.0/8"),
        ]);
        assert_eq!(host.source, ProxySource::Host);
        assert_eq!(host.https_proxy.as_deref(), Some("http://p:1"));
        assert_eq!(
            host.no_proxy_value(),
            "localhost,127.0.0.1,::1,corp.example,10.0.0.0/8"
        );
        let off = from(&[
            ("HTTPS_PROXY", "http://p:1"),
            ("CLAWDOCK_AGENT_PROXY", "off"),
        ]);
        assert_eq!(off.source, ProxySource::Off);
        assert!(!off.has_proxy() && off.for_container(None) == ContainerProxy::default());
        let own = from(&[
            ("HTTPS_PROXY", "http://p:1"),
            ("CLAWDOCK_AGENT_PROXY", "http://q:2"),
        ]);
        assert_eq!(own.http_proxy.as_deref(), Some("http://q:2"));
    }

    #[test]
    fn a_proxy_on_the_hosts_loopback_is_reached_through_the_bridge() {
        let p = from(&[("HTTPS_PROXY", "http://127.0.0.1:3128")]);
        assert!(p.for_container(None).env.contains(&(
            "HTTPS_PROXY",
            "http://host.containers.internal:3128".to_string()
        )));
        assert_eq!(
            from_container("http://proxy.corp:8080"),
            "http://proxy.corp:8080"
        );
        assert_eq!(from_container("localhost:3128"), "localhost:3128");
    }

    #[test]
    fn loopback_always_bypasses_the_proxy() {
        let p = from(&[
            ("HTTP_PROXY", "http://p:1"),
            ("CLAWDOCK_AGENT_NO_PROXY", ""),
        ]);
        let plain = p.plain_env();
        assert!(plain.contains(&("NO_PROXY", "localhost,127.0.0.1,::1".to_string())));
        assert!(plain.iter().all(|(_, v)| !v.contains("http://p:1")));
    }

    /// Issue 30, item 3: the proxy's password was in every agent's environment.
    #[test]
    fn credentials_never_reach_a_container() {
        let p = from(&[
            ("HTTPS_PROXY", "http://alice:s3cret@proxy.corp:3128"),
            ("HTTP_PROXY", "https://bob:t0p@proxy.corp:443"),
        ]);
        assert!(p.upstreams().https.is_some(), "relayed");
        assert!(p.upstreams().http.is_none(), "an https:// proxy is not");
        let relay = "http://agent:cred@host.containers.internal:40000";
        for given in [Some(relay), None] {
            let env = p.for_container(given).env;
            assert!(
                env.iter()
                    .all(|(_, v)| !v.contains("s3cret") && !v.contains("t0p")),
                "{env:?}"
            );
            assert!(
                env.contains(&("HTTP_PROXY", "https://proxy.corp".to_string())),
                "{env:?}"
            );
        }
        assert!(p
            .for_container(Some(relay))
            .env
            .contains(&("https_proxy", relay.to_string())));
        assert!(p
            .for_container(None)
            .env
            .contains(&("HTTPS_PROXY", "http://proxy.corp:3128".to_string())));
    }
}
