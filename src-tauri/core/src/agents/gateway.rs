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
    ///
    /// Never following a redirect either: the gateway is the agent's, and a
    /// redirect would send a health poll or a chat wherever the agent said.
    fn default() -> Self {
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(3))
            .build()
            .or_else(|e| {
                tracing::warn!(error = %e, "no HTTP client with a connect timeout; using one without");
                reqwest::Client::builder()
                    .no_proxy()
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
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
            let text = bounded_text(response).await;
            return Err(GatewayError(failure(status, &text)));
        }
        Ok(response
            .bytes_stream()
            .map(|r| r.map_err(std::io::Error::other))
            .boxed())
    }
}

/// The most of a failed answer's body read for its message: an error's JSON is a
/// few hundred bytes, and the agent decides how long the body is.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// How long reading that part may take.
const ERROR_BODY_TIME: Duration = Duration::from_secs(5);

/// The start of a failed answer's body, at most [`MAX_ERROR_BODY`] bytes read
/// within [`ERROR_BODY_TIME`]; the rest is never read (the connection is dropped).
async fn bounded_text(response: reqwest::Response) -> String {
    let mut body = Vec::new();
    let mut chunks = response.bytes_stream();
    let read = async {
        while let Some(Ok(chunk)) = chunks.next().await {
            let room = MAX_ERROR_BODY - body.len();
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if body.len() == MAX_ERROR_BODY {
                break;
            }
        }
    };
    if tokio::time::timeout(ERROR_BODY_TIME, read).await.is_err() {
        tracing::debug!("a gateway's error body was cut at its time bound");
    }
    String::from_utf8_lossy(&body).into_owned()
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
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A listener on loopback that answers every connection with `head`, then
    /// `body_chunk` over and over while `endless` (until the client hangs up), and
    /// counts its connections.
    async fn scripted(
        head: String,
        body_chunk: &'static [u8],
        endless: bool,
    ) -> (u16, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let seen = Arc::new(AtomicUsize::new(0));
        let count = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let head = head.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _request = conn.read(&mut buf).await;
                    if conn.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    loop {
                        if conn.write_all(body_chunk).await.is_err() || !endless {
                            return;
                        }
                    }
                });
            }
        });
        (port, seen)
    }

    /// Issue 30, item 7: a gateway (which the agent controls) answered with a
    /// redirect, and the client followed it: a health poll or a chat went to
    /// whatever address the agent named.
    #[tokio::test]
    async fn redirects_are_not_followed() {
        let (elsewhere, visits) = scripted(
            "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n".into(),
            b"ok",
            false,
        )
        .await;
        let (gateway, _) = scripted(
            format!(
                "HTTP/1.1 307 Temporary Redirect\r\nlocation: http://127.0.0.1:{elsewhere}/v1/chat/completions\r\ncontent-length: 0\r\n\r\n"
            ),
            b"",
            false,
        )
        .await;
        let client = Gateway::default();
        assert!(!client.healthy(gateway).await, "a redirect is no health");
        let chat = client.chat(gateway, "token", "hello").await;
        let err = chat.err().expect("a redirect is no chat").to_string();
        assert!(err.contains("307"), "{err}");
        assert_eq!(
            visits.load(Ordering::SeqCst),
            0,
            "nothing went where the gateway pointed"
        );
    }

    /// Issue 30, item 7: a failed chat's body was read whole, so a gateway that
    /// answered an error with an endless body held the request (and its memory)
    /// forever.
    #[tokio::test]
    async fn a_failed_chat_reads_a_bounded_part_of_an_endless_body() {
        let (gateway, _) = scripted(
            "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 1000000000000\r\n\r\n".into(),
            &[b'x'; 16384],
            true,
        )
        .await;
        let chat = tokio::time::timeout(
            Duration::from_secs(20),
            Gateway::default().chat(gateway, "token", "hello"),
        )
        .await
        .expect("the failure is said without reading the whole body");
        let err = chat.err().expect("a 500 is no chat").to_string();
        assert!(err.contains("500"), "{err}");
    }

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
