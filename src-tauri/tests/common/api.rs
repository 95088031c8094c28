//! The API of a running `clawdock serve`, as its `api.json` names it: requests
//! with its token, answers as `(status, JSON)`, and the waits on an agent's view.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

pub struct Api {
    pub url: String,
    pub token: String,
    http: reqwest::Client,
    home: PathBuf,
}

/// An agent's view says it runs and nothing is under way (a create, a start, a
/// health wait): what a test waits for before acting on it.
pub fn running_and_idle(agent: &Value) -> bool {
    agent["status"] == "running" && agent["activity"].is_null()
}

/// The id in an agent's view.
pub fn id_of(agent: &Value) -> String {
    agent["id"].as_str().expect("id").to_string()
}

impl Api {
    /// The API of the serve whose pid is `pid`, once its `api.json` says so (a
    /// killed instance's file stays behind until the next one writes its own);
    /// waited for up to 30 s, and no longer than the process lives.
    pub fn of(home: &Path, pid: u32) -> Self {
        let mut api = None;
        let ended = super::wait_for(Duration::from_secs(30), || {
            api = Self::written_by(home, pid);
            api.is_some() || !super::alive(pid)
        });
        match api {
            Some(api) => api,
            None if ended => panic!("serve (pid {pid}) exited before writing its api.json"),
            None => panic!("serve (pid {pid}) did not write its api.json within 30 s"),
        }
    }

    /// The API `home`'s `api.json` names, if process `pid` wrote it.
    fn written_by(home: &Path, pid: u32) -> Option<Self> {
        let text = std::fs::read_to_string(home.join("api.json")).ok()?;
        let info: Value = serde_json::from_str(&text).ok()?;
        (info["pid"] == pid).then(|| Self {
            url: info["url"].as_str().expect("url").into(),
            token: info["token"].as_str().expect("token").into(),
            // A request that is never answered fails the test, not hangs it.
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(120))
                .build()
                .expect("client"),
            home: home.to_path_buf(),
        })
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

    /// Sends a request and hangs up after `limit`, answered or not (a client that
    /// gives up).
    pub async fn hang_up_after(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        limit: Duration,
    ) {
        let _gave_up = self.request(method, path, body).timeout(limit).send().await;
    }

    /// Every agent's view (`GET /agents`, which must answer 200).
    pub async fn agents(&self) -> Vec<Value> {
        let (status, body) = self.call(reqwest::Method::GET, "/agents", None).await;
        assert_eq!(status, 200, "{body}");
        body["agents"].as_array().cloned().unwrap_or_default()
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
            .until_agent(&id, Duration::from_secs(60), running_and_idle)
            .await;
        let stored = super::until_ok(Duration::from_secs(10), async || match self.stored(&id) {
            record if record["status"] == "running" => Ok(()),
            record => Err(record),
        })
        .await;
        if let Err(record) = stored {
            panic!("agents.json never said running: {record:#}");
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

    /// Polls the agent's view until `check` holds: the view then, or the last one
    /// seen (`None`: not listed) when `limit` is up.
    pub async fn wait_agent(
        &self,
        id: &str,
        limit: Duration,
        check: impl Fn(&Value) -> bool,
    ) -> Result<Value, Option<Value>> {
        super::until_ok(limit, async || match self.agent(id).await {
            Some(view) if check(&view) => Ok(view),
            last => Err(last),
        })
        .await
    }

    /// [`Api::wait_agent`] that panics with the last view when the time is up.
    pub async fn until_agent(
        &self,
        id: &str,
        limit: Duration,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        self.wait_agent(id, limit, check)
            .await
            .unwrap_or_else(|last| panic!("the agent never got there; last seen: {last:#?}"))
    }
}
