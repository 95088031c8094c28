//! The API of a running `clawdock serve`, as its `api.json` names it: requests
//! with its token, answers as `(status, JSON)`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

pub struct Api {
    pub url: String,
    pub token: String,
    http: reqwest::Client,
    home: PathBuf,
}

impl Api {
    /// The API of the serve whose pid is `pid`, once its `api.json` says so (a
    /// killed instance's file stays behind until the next one writes its own).
    pub async fn of(home: &Path, pid: u32) -> Self {
        let began = Instant::now();
        loop {
            if let Ok(text) = std::fs::read_to_string(home.join("api.json")) {
                if let Ok(info) = serde_json::from_str::<Value>(&text) {
                    if info["pid"] == pid {
                        return Self {
                            url: info["url"].as_str().expect("url").into(),
                            token: info["token"].as_str().expect("token").into(),
                            http: reqwest::Client::builder()
                                .no_proxy()
                                .build()
                                .expect("client"),
                            home: home.to_path_buf(),
                        };
                    }
                }
            }
            assert!(
                began.elapsed() < Duration::from_secs(30),
                "serve (pid {pid}) did not write its api.json"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> reqwest::RequestBuilder {
        let request = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.token);
        match body {
            Some(body) => request.json(&body),
            None => request,
        }
    }

    /// The answer's status and JSON (`0` and `null` when none came).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        match self.request(method, path, body).send().await {
            Ok(answer) => {
                let status = answer.status().as_u16();
                (status, answer.json().await.unwrap_or(Value::Null))
            }
            Err(_) => (0, Value::Null),
        }
    }

    /// Sends a request and does not wait for its answer.
    pub fn fire(&self, method: reqwest::Method, path: &str, body: Option<Value>) {
        let request = self.request(method, path, body);
        tokio::spawn(async move {
            let _answer = request.send().await;
        });
    }

    /// The agent's view, if the API lists it.
    pub async fn agent(&self, id: &str) -> Option<Value> {
        let (_, body) = self.call(reqwest::Method::GET, "/agents", None).await;
        body["agents"]
            .as_array()?
            .iter()
            .find(|a| a["id"] == id)
            .cloned()
    }

    /// Creates an agent and waits until it runs, and until the store says so (the
    /// API says what is in memory a moment before `agents.json` has it: a test
    /// that kills the process must not kill it in between); its view.
    pub async fn create_running(&self, name: &str) -> Value {
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "/agents/create",
                Some(serde_json::json!({ "name": name })),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let id = body["agent"]["id"].as_str().expect("id").to_string();
        let view = self
            .until_agent(&id, Duration::from_secs(60), |a| {
                a["status"] == "running" && a["activity"].is_null()
            })
            .await;
        let end = Instant::now() + Duration::from_secs(10);
        while self.stored(&id)["status"] != "running" {
            assert!(Instant::now() < end, "agents.json never said running");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        view
    }

    /// The agent's record as `agents.json` holds it (`null` if none).
    pub fn stored(&self, id: &str) -> Value {
        let store: Value = std::fs::read(self.home.join("agents.json"))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        store
            .as_array()
            .and_then(|records| records.iter().find(|r| r["id"] == id))
            .cloned()
            .unwrap_or_default()
    }

    /// Polls the agent's view until `check` holds; the view then. Panics with the
    /// last view when the time is up.
    pub async fn until_agent(
        &self,
        id: &str,
        limit: Duration,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let end = Instant::now() + limit;
        let mut last = None;
        while Instant::now() < end {
            last = self.agent(id).await;
            if last.as_ref().is_some_and(&check) {
                return last.expect("a view");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the agent never got there; last seen: {last:#?}");
    }
}
