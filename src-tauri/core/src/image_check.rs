//! Whether a newer build of an image is out, asked of its registry without a
//! pull: a HEAD of `/v2/<name>/manifests/<tag>` whose `Docker-Content-Digest` is
//! compared with the digests of the image the agent runs. With the user's login
//! for that registry (a bearer token from the registry's realm, or basic), and the
//! host's proxy from the environment (`HTTPS_PROXY`, `NO_PROXY`: reqwest's own
//! reading). Registries on loopback are spoken to in plain HTTP, as Docker does;
//! all others in HTTPS, through the platform's TLS and trust store.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, WWW_AUTHENTICATE};

/// How long one question to the registry may take (its token included).
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(15);

/// What a manifest HEAD accepts: a list or index first (what a tag of a
/// multi-platform image names, and what Podman keeps among its digests), then a
/// single manifest.
const MANIFEST_TYPES: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json";

/// An image reference as a registry is asked about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// `host[:port]` (Docker Hub is `registry-1.docker.io`).
    pub registry: String,
    pub repository: String,
    pub tag: String,
}

impl Reference {
    /// A reference with its registry in its name. `None` for what has no
    /// registry to ask: Podman's `localhost/` images (built here), a short name
    /// (resolved by the user's registries.conf), or one pinned by digest (never
    /// newer).
    pub fn parse(image: &str) -> Option<Self> {
        if image.contains('@') {
            return None;
        }
        let (host, rest) = image.split_once('/')?;
        if host == "localhost" || !(host.contains('.') || host.contains(':')) {
            return None;
        }
        let (repository, tag) = match rest.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo, tag),
            _ => (rest, "latest"),
        };
        let (registry, repository) = if host == "docker.io" {
            let repository = if repository.contains('/') {
                repository.to_string()
            } else {
                format!("library/{repository}")
            };
            ("registry-1.docker.io".to_string(), repository)
        } else {
            (host.to_string(), repository.to_string())
        };
        Some(Self {
            registry,
            repository,
            tag: tag.to_string(),
        })
    }

    fn base(&self) -> String {
        let host = self.registry.split(':').next().unwrap_or_default();
        let loopback =
            host == "localhost" || host.starts_with("127.") || self.registry.starts_with("[::1]");
        let scheme = if loopback { "http" } else { "https" };
        format!("{scheme}://{}", self.registry)
    }

    fn manifest_url(&self) -> String {
        format!(
            "{}/v2/{}/manifests/{}",
            self.base(),
            self.repository,
            self.tag
        )
    }
}

/// Why the registry was not asked, or did not say.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// No answer (offline, DNS, a proxy that refuses): said at debug level only.
    #[error("the registry could not be reached: {0}")]
    Unreachable(String),
    #[error("the registry answered {0}")]
    Refused(reqwest::StatusCode),
    #[error("the registry's answer has no digest")]
    NoDigest,
}

/// The client for registry checks: the environment's proxy (reqwest reads
/// `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY`), bounded.
pub fn client() -> Result<reqwest::Client, CheckError> {
    reqwest::Client::builder()
        .timeout(CHECK_TIMEOUT)
        .user_agent(concat!("clawdock/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| CheckError::Unreachable(e.to_string()))
}

/// The digest the registry gives the tag now (no pull: a HEAD), asking the
/// registry's token service with `login` when it asks for one.
pub async fn remote_digest(
    http: &reqwest::Client,
    reference: &Reference,
    login: Option<&(String, String)>,
) -> Result<String, CheckError> {
    let unreachable = |e: reqwest::Error| CheckError::Unreachable(e.to_string());
    let url = reference.manifest_url();
    let head = |auth: Option<String>| {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static(MANIFEST_TYPES));
        if let Some(auth) = auth.and_then(|a| HeaderValue::from_str(&a).ok()) {
            headers.insert(AUTHORIZATION, auth);
        }
        http.head(&url).headers(headers).send()
    };
    let mut answer = head(None).await.map_err(unreachable)?;
    if answer.status() == reqwest::StatusCode::UNAUTHORIZED {
        let challenge = answer
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let auth = authorize(http, reference, &challenge, login).await?;
        answer = head(Some(auth)).await.map_err(unreachable)?;
    }
    if !answer.status().is_success() {
        return Err(CheckError::Refused(answer.status()));
    }
    answer
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .ok_or(CheckError::NoDigest)
}

/// The `Authorization` a challenge asks for: basic with the login, or a bearer
/// token from the realm (anonymous, or with the login).
async fn authorize(
    http: &reqwest::Client,
    reference: &Reference,
    challenge: &str,
    login: Option<&(String, String)>,
) -> Result<String, CheckError> {
    use base64::Engine as _;
    let basic = login.map(|(user, password)| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )
    });
    let Some(params) = challenge.strip_prefix("Bearer ") else {
        return basic.ok_or(CheckError::Refused(reqwest::StatusCode::UNAUTHORIZED));
    };
    let param = |name: &str| {
        params.split(',').find_map(|p| {
            let (k, v) = p.trim().split_once('=')?;
            (k == name).then(|| v.trim_matches('"').to_string())
        })
    };
    let realm = param("realm").ok_or(CheckError::Refused(reqwest::StatusCode::UNAUTHORIZED))?;
    let scope =
        param("scope").unwrap_or_else(|| format!("repository:{}:pull", reference.repository));
    let mut query = vec![("scope", scope)];
    if let Some(service) = param("service") {
        query.push(("service", service));
    }
    let mut request = http.get(&realm).query(&query);
    if let Some(basic) = basic {
        request = request.header(AUTHORIZATION, basic);
    }
    let answer = request
        .send()
        .await
        .map_err(|e| CheckError::Unreachable(e.to_string()))?;
    if !answer.status().is_success() {
        return Err(CheckError::Refused(answer.status()));
    }
    #[derive(serde::Deserialize)]
    struct Token {
        #[serde(default)]
        token: String,
        #[serde(default)]
        access_token: String,
    }
    let token: Token = answer
        .json()
        .await
        .map_err(|e| CheckError::Unreachable(e.to_string()))?;
    let token = if token.token.is_empty() {
        token.access_token
    } else {
        token.token
    };
    Ok(format!("Bearer {token}"))
}

/// Whether `remote` (a digest) is not among `local` (an image's repo digests,
/// `name@sha256:...`): a newer build is out.
pub fn is_newer(remote: &str, local: &[String]) -> bool {
    !local
        .iter()
        .any(|d| d.rsplit_once('@').map(|(_, digest)| digest) == Some(remote))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_name_their_registry_or_have_none_to_ask() {
        let r = Reference::parse("ghcr.io/openclaw/openclaw:latest").expect("ghcr");
        assert_eq!(
            r.manifest_url(),
            "https://ghcr.io/v2/openclaw/openclaw/manifests/latest"
        );
        let r = Reference::parse("127.0.0.1:5000/a/b").expect("loopback");
        assert_eq!(
            r.manifest_url(),
            "http://127.0.0.1:5000/v2/a/b/manifests/latest"
        );
        let r = Reference::parse("docker.io/nginx:1.27").expect("hub");
        assert_eq!(r.registry, "registry-1.docker.io");
        assert_eq!(r.repository, "library/nginx");
        for none in [
            "localhost/clawdock-test-gateway:latest",
            "openclaw:latest",
            "ghcr.io/openclaw/openclaw@sha256:abc",
        ] {
            assert_eq!(Reference::parse(none), None, "{none}");
        }
    }

    #[test]
    fn a_digest_not_among_the_image_s_is_newer() {
        let local = vec!["ghcr.io/x/y@sha256:aaa".to_string()];
        assert!(!is_newer("sha256:aaa", &local));
        assert!(is_newer("sha256:bbb", &local));
        assert!(is_newer("sha256:aaa", &[]));
    }
}
