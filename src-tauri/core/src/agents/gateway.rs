//! The only place that speaks the gateway's HTTP: `/healthz`, `/readyz` and the
//! OpenAI-style chat it serves on the agent's host port.

use std::time::Duration;

use futures::stream::BoxStream;
use futures::StreamExt;

/// A gateway answered, but not with what was asked.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct GatewayError(pub String);

/// HTTP to the agents' gateways on 127.0.0.1. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Gateway {
    http: reqwest::Client,
}

impl Default for Gateway {
    /// Never through a proxy: the gateways are on loopback, and a proxy from the
    /// environment (`HTTP_PROXY`, `ALL_PROXY`) would get every health poll (no agent
    /// would ever get healthy) and every chat with its gateway token.
    fn default() -> Self {
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(3))
            .build()
            .or_else(|e| {
                tracing::warn!(error = %e, "no HTTP client with a connect timeout; using one without");
                reqwest::Client::builder().no_proxy().build()
            })
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "no HTTP client without proxies; the environment's proxy may be used");
                reqwest::Client::new()
            });
        Self { http }
    }
}

impl Gateway {
    /// `/healthz` answered 2xx within 2 s: the gateway is up.
    pub async fn healthy(&self, port: u16) -> bool {
        self.answers(port, "healthz").await
    }

    /// `/readyz` answered 2xx: the gateway is ready for chat and channels (it
    /// follows health by a few seconds).
    pub async fn ready(&self, port: u16) -> bool {
        self.answers(port, "readyz").await
    }

    async fn answers(&self, port: u16, path: &str) -> bool {
        self.http
            .get(format!("http://127.0.0.1:{port}/{path}"))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    }

    /// Streams the gateway's `/v1/chat/completions` answer (OpenAI-style SSE) as
    /// raw bytes.
    pub async fn chat(
        &self,
        port: u16,
        token: &str,
        message: &str,
    ) -> Result<BoxStream<'static, Result<bytes::Bytes, std::io::Error>>, GatewayError> {
        let body = serde_json::json!({
            "model": "openclaw/default",
            "stream": true,
            "messages": [{ "role": "user", "content": message }],
        });
        let response = self
            .http
            .post(format!("http://127.0.0.1:{port}/v1/chat/completions"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .map_err(|e| GatewayError(format!("The gateway did not answer: {e}")))?;
        if !response.status().is_success() {
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            return Err(GatewayError(failure(status, &text)));
        }
        Ok(response
            .bytes_stream()
            .map(|r| r.map_err(std::io::Error::other))
            .boxed())
    }
}

/// A short sentence for a failed gateway answer: its JSON error message when it has
/// one, never an HTML page.
fn failure(status: reqwest::StatusCode, body: &str) -> String {
    let detail = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v["error"]["message"]
                .as_str()
                .or(v["error"].as_str())
                .or(v["message"].as_str())
                .map(str::to_string)
        })
        .or_else(|| {
            let line = body.lines().next().unwrap_or_default().trim();
            (!line.is_empty() && !line.starts_with('<')).then(|| line.chars().take(200).collect())
        });
    match detail {
        Some(d) => format!("The gateway answered {status}: {d}"),
        None => format!("The gateway answered {status}."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_read_as_sentences() {
        let s = reqwest::StatusCode::UNAUTHORIZED;
        assert_eq!(
            failure(s, r#"{"error":{"message":"bad token"}}"#),
            "The gateway answered 401 Unauthorized: bad token"
        );
        assert_eq!(
            failure(s, "<html><body>nope</body></html>"),
            "The gateway answered 401 Unauthorized."
        );
        assert_eq!(
            failure(s, "plain words\nmore"),
            "The gateway answered 401 Unauthorized: plain words"
        );
    }
}
