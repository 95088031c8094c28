//! Clawdock's HTTP API started on a real core (native mode, real Podman) for a test,
//! with a client that carries its token.

use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::sync::mpsc;

use clawdock_core::api::ApiServer;
use clawdock_core::Clawdock;

use super::{Home, IMAGE};

pub struct Api {
    pub home: Home,
    pub core: Clawdock,
    pub server: Option<ApiServer>,
    pub http: reqwest::Client,
    pub base: String,
    pub token: String,
}

impl Api {
    pub async fn start() -> Self {
        let home = Home::new();
        let core = Clawdock::start(home.native(IMAGE)).await.expect("core");
        let server = ApiServer::start(core.clone(), 0).await.expect("api");
        Self {
            base: server.url(),
            token: server.token.clone(),
            server: Some(server),
            core,
            // Loopback never goes through a proxy from the environment.
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("client"),
            home,
        }
    }

    pub fn label(&self) -> String {
        self.home.label().expect("label")
    }

    pub fn req(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut r = self.req(method, path);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.expect("send");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Follows `/events`, delivering each JSON object.
    pub async fn events(&self) -> mpsc::UnboundedReceiver<Value> {
        let resp = self
            .req(Method::GET, "/events")
            .send()
            .await
            .expect("events");
        assert_eq!(resp.status(), StatusCode::OK);
        let (tx, rx) = mpsc::unbounded_channel();
        let mut lines = Box::pin(clawdock_core::api::sse_data_lines(resp.bytes_stream()));
        tokio::spawn(async move {
            while let Some(data) = lines.next().await {
                if let Ok(v) = serde_json::from_str::<Value>(&data) {
                    if tx.send(v).is_err() {
                        return;
                    }
                }
            }
        });
        rx
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(s.close());
            }
        }
    }
}
