//! The only place that asks Podman about containers and images, over the API
//! socket of the engine Clawdock uses (the mass stop at quit and the panic hook's
//! stop included). An agent's container is found by our labels (agent id and
//! data-folder label), never by its name, and every stop, kill, rm, logs and
//! inspect acts on the ID found: a name is something a user or another program
//! can also take. What a container is lives in [`crate::container`], how one is
//! specified in [`crate::container_spec`].

use std::io::Write;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::agent_proxy::ContainerProxy;
use crate::container::{
    Container, ContainerId, Details, Footprint, Found, Happened, HostTraits, Recovered,
    LABEL_AGENT, LABEL_GENERATION, LABEL_HOME, LABEL_IMAGE, LABEL_NAME,
};
use crate::container_spec::{create_spec, Limits, NewContainer, GATEWAY_PORT, TOKEN_VAR};
use crate::engine::client::{query_value, EngineClient, Request};
use crate::engine::{LineStream, PodmanError};
use crate::progress::PullReport;
use crate::store::AgentRecord;
use pull::{is_short_name, PullMessage, PullReading, PULL_TIMEOUT};
use wire::{EventLine, ImageInspected, Inspected, InspectedState, PsRow};

mod pull;
mod wire;

pub use wire::RawStats;
/// Why a container could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error(
        "The container name `{name}` is taken by a container Clawdock did not make{}; \
         Clawdock leaves it alone. Remove or rename it, or choose another agent name.",
        holder.as_ref().map(|h| format!(" ({h})")).unwrap_or_default()
    )]
    NameTaken {
        name: String,
        holder: Option<String>,
    },
    /// The image is not on this machine: pull it, then create again. Checked by
    /// the create itself (the engine's create never pulls) rather than an image
    /// inspect first, which cost every create one more request.
    #[error(transparent)]
    ImageMissing(PodmanError),
    #[error(transparent)]
    Podman(#[from] PodmanError),
}

/// The containers of one data folder. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Containers {
    engine: EngineClient,
    home: String,
    /// Told whenever a call finds the engine unreachable: the machine may have
    /// gone away (sleep, a crash, a stop from a terminal) without a word.
    engine_lost: Arc<Notify>,
}

impl Containers {
    /// `home` is the data folder's label value, so two instances (or test runs) on
    /// one Podman never touch each other's containers.
    pub fn new(engine: EngineClient, home: String) -> Self {
        Self {
            engine,
            home,
            engine_lost: Arc::new(Notify::new()),
        }
    }

    pub fn home_label(&self) -> &str {
        &self.home
    }

    /// Resolves after a call found the engine unreachable (or someone said so with
    /// [`Containers::suspect_engine`]) since the last time it resolved.
    pub async fn engine_suspect(&self) {
        self.engine_lost.notified().await;
    }

    /// Says the engine may be gone (the event stream ended): whoever follows
    /// [`Containers::engine_suspect`] checks the machine.
    pub fn suspect_engine(&self) {
        self.engine_lost.notify_one();
    }

    /// One request to the engine; a connection refused or dropped says the
    /// engine may be gone.
    async fn call(&self, request: Request) -> Result<crate::engine::client::Answer, PodmanError> {
        let result = self.engine.call(request).await;
        if let Err(e) = &result {
            if e.engine_unreachable() {
                self.suspect_engine();
            }
        }
        result
    }

    async fn call_json<T: serde::de::DeserializeOwned>(
        &self,
        request: Request,
    ) -> Result<T, PodmanError> {
        let what = request.describe();
        self.call(request).await?.json(&what)
    }

    /// The containers a label selects (`all`: stopped ones too).
    async fn rows(&self, label: Option<String>, all: bool) -> Result<Vec<PsRow>, PodmanError> {
        let mut path = format!("/containers/json?all={all}");
        if let Some(label) = label {
            let filters = serde_json::json!({ "label": [label] }).to_string();
            path.push_str(&format!("&filters={}", query_value(&filters)));
        }
        self.call_json(Request::get(path)).await
    }

    /// Every container of this data folder, running or not.
    pub async fn list(&self) -> Result<Vec<Found>, PodmanError> {
        self.ps(true).await
    }

    /// Containers of this data folder that run now.
    pub async fn running(&self) -> Result<Vec<Found>, PodmanError> {
        self.ps(false).await
    }

    async fn ps(&self, all: bool) -> Result<Vec<Found>, PodmanError> {
        let rows = self
            .rows(Some(format!("{LABEL_HOME}={}", self.home)), all)
            .await?;
        Ok(rows
            .into_iter()
            // Checked again here: the filter is only a first cut.
            .filter(|r| r.label(LABEL_HOME) == Some(self.home.as_str()))
            .map(|r| found(&r))
            .collect())
    }

    /// Every container of the agent, found by its labels: one, but for an update
    /// in progress (or one an interruption left) beside it. Which one is the
    /// agent's is the record's to say (its generation).
    pub async fn all_of(&self, agent: Uuid) -> Result<Vec<Found>, PodmanError> {
        let rows = self
            .rows(Some(format!("{LABEL_AGENT}={agent}")), true)
            .await?;
        let agent_text = agent.to_string();
        Ok(rows
            .iter()
            .filter(|r| {
                r.label(LABEL_HOME) == Some(self.home.as_str())
                    && r.label(LABEL_AGENT) == Some(agent_text.as_str())
            })
            .map(found)
            .collect())
    }

    /// True when a container that is not this agent's holds `name`. Reads only
    /// whether the name is taken, nothing of the container.
    pub async fn name_taken_by_another(
        &self,
        name: &str,
        agent: Uuid,
    ) -> Result<bool, PodmanError> {
        let path = format!("/containers/{}/exists", path_value(name));
        match self.call(Request::get(path)).await {
            Ok(_) => Ok(!self
                .all_of(agent)
                .await?
                .iter()
                .any(|f| f.name.trim_start_matches('/') == name)),
            Err(PodmanError::Api { status: 404, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Makes a container of the agent and returns its ID. A container of the
    /// same agent and generation left by an earlier, interrupted attempt is used;
    /// one that is not this one is refused and left alone.
    pub async fn create(
        &self,
        agent: &AgentRecord,
        new: NewContainer<'_>,
        host: HostTraits,
        time_zone: &str,
        limits: Limits,
        proxy: &ContainerProxy,
    ) -> Result<ContainerId, CreateError> {
        #[derive(Deserialize)]
        struct Created {
            #[serde(rename = "Id")]
            id: String,
        }
        let spec = create_spec(agent, new, &self.home, time_zone, host, limits, proxy);
        match self
            .call_json::<Created>(Request::post("/containers/create").json(&spec))
            .await
        {
            Ok(created) => Ok(ContainerId(created.id)),
            Err(e) if e.says("already in use") => {
                let same = self
                    .all_of(agent.id)
                    .await?
                    .into_iter()
                    .find(|f| f.generation.as_deref() == Some(new.generation));
                match same {
                    Some(ours) => Ok(ours.id),
                    None => Err(CreateError::NameTaken {
                        name: new.name.to_string(),
                        holder: holder_of(e.stderr()),
                    }),
                }
            }
            Err(e) if e.says("image not known") => Err(CreateError::ImageMissing(e)),
            Err(e) => Err(e.into()),
        }
    }

    /// Gives a container another name (a new container made beside the working
    /// one takes the agent's name once it is the agent's).
    pub async fn rename(&self, id: &ContainerId, name: &str) -> Result<(), PodmanError> {
        let path = format!("/containers/{}/rename?name={}", id.0, query_value(name));
        self.call(Request::post(path)).await?;
        Ok(())
    }

    /// Starts a container, after any stop of it in progress has ended.
    pub async fn start(&self, id: &ContainerId) -> Result<(), PodmanError> {
        self.settle_stop(id).await;
        self.call(Request::post(format!("/containers/{}/start", id.0)))
            .await?;
        Ok(())
    }

    /// Waits while the container is `stopping` (a stop another client began, or
    /// one a Clawdock that crashed left to the engine): a start in the middle of
    /// it is answered as done, and the stop then ends the gateway just started,
    /// which reads as a crash. Bounded: a stop that never ends is the start's
    /// error to meet.
    async fn settle_stop(&self, id: &ContainerId) {
        let began = tokio::time::Instant::now();
        while began.elapsed() < self.engine.call_timeout() {
            match self.state_of(id).await {
                Ok(state) if state.status == "stopping" => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                _ => return,
            }
        }
        tracing::warn!(container = %id, "still stopping; starting it anyway");
    }

    /// Stops a container and checks that it did: an answer of 0 from podman is not
    /// trusted alone. What is still up after the timeout is killed.
    pub async fn stop(&self, id: &ContainerId, timeout: Duration) -> Result<(), PodmanError> {
        let secs = timeout.as_secs_f64().ceil() as u64;
        let request = Request::post(format!("/containers/{}/stop?timeout={secs}", id.0))
            .timeout(timeout + self.engine.call_timeout());
        match self.call(request).await {
            Ok(_) | Err(PodmanError::TimedOut { .. } | PodmanError::Api { status: 404, .. }) => {}
            Err(e) => return Err(e),
        }
        if self.inspect(id).await != Some(Container::Running) {
            return Ok(());
        }
        tracing::warn!(container = %id, "still running after stop; killing it");
        self.kill(std::slice::from_ref(id), self.engine.call_timeout())
            .await
    }

    /// Stops every running container of this data folder through the engine
    /// Clawdock uses: one listing, then one stop request each, all at once. Each
    /// gateway gets SIGTERM and `timeout` to exit before the engine SIGKILLs it
    /// (no restart policy brings it back: Clawdock owns restarts); `limit` bounds
    /// each request's wait (the stop goes on in the engine past it). Returns how
    /// many were asked to stop. Not the command line: `podman stop` goes to
    /// podman's default connection, which need not be this engine (a machine
    /// named in settings, a socket given), and remotely (macOS, Windows) it stops
    /// one container at a time (measured, Podman 4.3.1 with `--url`: ten stubborn
    /// containers 21.6 s; with `--filter` it stopped one of the ten and said
    /// nothing; `--max-workers` is unknown there).
    pub async fn stop_all(&self, timeout: Duration, limit: Duration) -> Result<usize, PodmanError> {
        let running = self.running().await?;
        let secs = timeout.as_secs_f64().ceil() as u64;
        let stops = running.iter().map(|found| async move {
            let request = Request::post(format!("/containers/{}/stop?timeout={secs}", found.id.0))
                .timeout(limit);
            match self.call(request).await {
                // Gone, or still stopping past the bound (the forced phase looks).
                Ok(_)
                | Err(PodmanError::Api { status: 404, .. } | PodmanError::TimedOut { .. }) => {
                    Ok(())
                }
                Err(e) => Err(e),
            }
        });
        let failures: Vec<PodmanError> = futures::future::join_all(stops)
            .await
            .into_iter()
            .filter_map(Result::err)
            .collect();
        // An unreachable engine first: that is what the caller acts on.
        match failures.into_iter().min_by_key(|e| !e.engine_unreachable()) {
            Some(e) => Err(e),
            None => Ok(running.len()),
        }
    }

    /// Kills containers at once, all asked together.
    pub async fn kill(&self, ids: &[ContainerId], limit: Duration) -> Result<(), PodmanError> {
        let kills = ids.iter().map(|id| async move {
            let request = Request::post(format!("/containers/{}/kill", id.0)).timeout(limit);
            match self.call(request).await {
                Ok(_) => Ok(()),
                // Not running (any more), or gone: nothing to kill.
                Err(e) if e.says("state improper") || e.says("no such container") => Ok(()),
                Err(e) => Err(e),
            }
        });
        futures::future::join_all(kills)
            .await
            .into_iter()
            .collect::<Result<Vec<()>, _>>()
            .map(|_| ())
    }

    /// Removes a container with its anonymous volumes, stopping it first within
    /// `timeout`, and checks that it is gone.
    pub async fn remove(&self, id: &ContainerId, timeout: Duration) -> Result<(), PodmanError> {
        let secs = timeout.as_secs_f64().ceil() as u64;
        let request = Request::delete(format!(
            "/containers/{}?force=true&v=true&timeout={secs}",
            id.0
        ))
        .timeout(timeout + self.engine.call_timeout());
        let mut tries = 0;
        loop {
            match self.call(request.clone()).await {
                Ok(_) | Err(PodmanError::Api { status: 404, .. }) => break,
                // Podman 4.3 refuses a removal while its own clean-up of the
                // container's exit runs (state `stopped`, not yet `exited`):
                // a moment later it takes it.
                Err(e) if e.says("container state improper") && tries < 10 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(e),
            }
        }
        match self.inspect(id).await {
            Some(Container::Missing) | None => Ok(()),
            Some(_) => Err(PodmanError::BadOutput {
                args: format!("rm {id}"),
                reason: "podman said the container was removed, but it is still there".into(),
            }),
        }
    }

    /// The `State` of the engine's inspect of a container.
    async fn state_of(&self, id: &ContainerId) -> Result<InspectedState, PodmanError> {
        let request = Request::get(format!("/containers/{}/json", id.0));
        Ok(self.call_json::<Inspected>(request).await?.state)
    }

    /// The container's state as Podman reports it now (`None` when it cannot tell).
    pub async fn inspect(&self, id: &ContainerId) -> Option<Container> {
        match self.state_of(id).await {
            Ok(state) => state.container(),
            Err(e) if e.says("no such") => Some(Container::Missing),
            Err(_) => None,
        }
    }

    /// The container's state, when it last ended and its restart policy.
    pub async fn details(&self, id: &ContainerId) -> Result<Details, PodmanError> {
        let request = Request::get(format!("/containers/{}/json", id.0));
        let c: Inspected = self.call_json(request).await?;
        Ok(Details {
            state: c.state.container().unwrap_or(Container::Unknown),
            image_id: c.image,
            finished_at: c.state.finished_at.filter(|t| t.timestamp() > 0),
            restart_policy: c
                .host_config
                .restart_policy
                .map(|p| p.name)
                .filter(|name| !name.is_empty() && name != "no"),
        })
    }

    /// The container's writable layer (the engine sums it: it walks the layer) and
    /// where its log is kept.
    pub async fn footprint(&self, id: &ContainerId) -> Result<Footprint, PodmanError> {
        let request = Request::get(format!("/containers/{}/json?size=true", id.0));
        let c: Inspected = self.call_json(request).await?;
        Ok(Footprint {
            layer_bytes: c.size_rw.unwrap_or(0),
            log_path: Some(c.host_config.log_config.path)
                .filter(|p| !p.is_empty())
                .map(std::path::PathBuf::from),
        })
    }

    /// What a container of ours tells about its agent, to rebuild a lost record.
    pub async fn recover(&self, id: &ContainerId) -> Result<Recovered, PodmanError> {
        let args = format!("inspect {id}");
        let bad = |reason: &str| PodmanError::BadOutput {
            args: args.clone(),
            reason: reason.to_string(),
        };
        let c: Inspected = self
            .call_json(Request::get(format!("/containers/{}/json", id.0)))
            .await?;
        let labels = c.config.labels.unwrap_or_default();
        if labels.get(LABEL_HOME) != Some(&self.home) {
            return Err(bad("not a container of this data folder"));
        }
        let agent = labels
            .get(LABEL_AGENT)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| bad("no agent label"))?;
        let name = labels
            .get(LABEL_NAME)
            .cloned()
            .ok_or_else(|| bad("no name label"))?;
        let port = c
            .host_config
            .port_bindings
            .unwrap_or_default()
            .get(&format!("{GATEWAY_PORT}/tcp"))
            .and_then(|b| b.as_ref()?.first()?.host_port.parse().ok())
            .ok_or_else(|| bad("no published gateway port"))?;
        let token = c
            .config
            .env
            .iter()
            .find_map(|e| e.strip_prefix(TOKEN_VAR)?.strip_prefix('='))
            .map(str::to_string)
            .ok_or_else(|| bad("no gateway token"))?;
        let memory_mib = (c.host_config.memory > 0).then_some(c.host_config.memory / (1024 * 1024));
        #[allow(clippy::cast_precision_loss)] // a CPU count, far below 2^52
        let cpus = (c.host_config.nano_cpus > 0).then(|| c.host_config.nano_cpus as f64 / 1e9);
        let state = c.state.container().unwrap_or(Container::Exited(None));
        Ok(Recovered {
            agent,
            name,
            port,
            token,
            created_at: c.created.unwrap_or_else(Utc::now),
            // Made from an image ID, the container names the agent's reference in
            // a label (containers of older versions were made from it).
            image: labels.get(LABEL_IMAGE).cloned().unwrap_or(c.image_name),
            state,
            memory_mib,
            cpus,
            image_id: c.image,
            generation: labels.get(LABEL_GENERATION).cloned(),
        })
    }

    /// The last lines of the container's own output, stdout and stderr as they
    /// were interleaved.
    pub async fn tail_logs(
        &self,
        id: &ContainerId,
        tail: usize,
    ) -> Result<Vec<String>, PodmanError> {
        let answer = self
            .call(Request::get(format!(
                "/containers/{}/logs?stdout=true&stderr=true&tail={tail}",
                id.0
            )))
            .await?;
        let mut lines = Vec::new();
        let mut out = crate::engine::lines::LineSplitter::new(false);
        let mut err = crate::engine::lines::LineSplitter::new(false);
        crate::engine::client::Demux::default().push(&answer.body, |which, chunk| {
            let splitter = if which == crate::engine::lines::Stream::Stderr {
                &mut err
            } else {
                &mut out
            };
            splitter.push(chunk, |line| lines.push(line));
        });
        lines.extend(out.finish());
        lines.extend(err.finish());
        let extra = lines.len().saturating_sub(tail);
        lines.drain(..extra);
        Ok(lines)
    }

    /// The container's output as it comes (`follow`), after its last `tail` lines.
    pub async fn stream_logs(
        &self,
        id: &ContainerId,
        tail: usize,
        follow: bool,
    ) -> Result<LineStream, PodmanError> {
        let path = format!(
            "/containers/{}/logs?stdout=true&stderr=true&tail={tail}&follow={follow}",
            id.0
        );
        self.engine.stream(Request::get(path), true).await
    }

    /// The engine's events about this data folder's containers, as they happen.
    pub async fn events(&self) -> Result<LineStream, PodmanError> {
        let filters = serde_json::json!({
            "type": ["container"],
            "label": [format!("{LABEL_HOME}={}", self.home)],
        })
        .to_string();
        // No `since` to replay the moments before: a replayed death of a
        // container that was started again since (a machine stopped, then started
        // at once; the container keeps its ID) read as a crash of the new run.
        let path = format!("/events?stream=true&filters={}", query_value(&filters));
        let result = self.engine.stream(Request::get(path), false).await;
        if let Err(e) = &result {
            if e.engine_unreachable() {
                self.suspect_engine();
            }
        }
        result
    }

    /// Reads one line of [`Containers::events`]: what happened to which of our
    /// agents, if it is about one. `clock_shared`: the engine's clock is this
    /// machine's (native mode), so the event's time can be compared with ours.
    pub fn parse_event(&self, line: &str, clock_shared: bool) -> Option<Happened> {
        let event: EventLine = serde_json::from_str(line).ok()?;
        if event.kind != "container" {
            return None;
        }
        let attributes = event.actor.attributes.as_ref()?;
        if attributes.get(LABEL_HOME) != Some(&self.home) {
            return None;
        }
        let agent = attributes.get(LABEL_AGENT)?.parse().ok()?;
        let container = match event.action.as_str() {
            "start" | "restart" => Container::Running,
            "died" => Container::Exited(Some(
                attributes
                    .get("containerExitCode")
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0),
            )),
            "remove" => Container::Missing,
            _ => return None,
        };
        let at = (clock_shared && event.time_nano > 0)
            .then(|| DateTime::from_timestamp_nanos(event.time_nano));
        Some(Happened {
            agent,
            container_id: ContainerId(event.actor.id),
            container,
            at,
        })
    }

    /// True when every running container carries the agent label (ours or another
    /// Clawdock's): only then may Clawdock stop the machine.
    pub async fn only_agents_run(&self) -> Result<bool, PodmanError> {
        let rows = self.rows(None, false).await?;
        Ok(rows.iter().all(|r| r.label(LABEL_AGENT).is_some()))
    }

    /// One sample of the named containers' resource use (names or IDs), raw
    /// numbers.
    pub async fn stats(&self, containers: &[String]) -> Result<Vec<RawStats>, PodmanError> {
        #[derive(Deserialize, Default)]
        #[serde(rename_all = "PascalCase", default)]
        struct Sampled {
            stats: Option<Vec<RawStats>>,
        }
        if containers.is_empty() {
            return Ok(Vec::new());
        }
        let mut path = "/containers/stats?stream=false".to_string();
        for c in containers {
            path.push_str(&format!("&containers={}", query_value(c)));
        }
        let sampled: Sampled = self.call_json(Request::get(path)).await?;
        Ok(sampled.stats.unwrap_or_default())
    }

    /// The ID of the image a reference names now; `None` when there is none.
    pub async fn image_id(&self, image: &str) -> Result<Option<String>, PodmanError> {
        Ok(self.image(image).await?.map(|i| i.id))
    }

    async fn image(&self, image: &str) -> Result<Option<ImageInspected>, PodmanError> {
        let path = format!("/images/{}/json", path_value(image));
        match self.call_json(Request::get(path)).await {
            Ok(found) => Ok(Some(found)),
            Err(e) if e.says("image not known") || e.says("no such image") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every registry digest (`name@sha256:...`) of `image` (a name or an ID);
    /// none when it has none (built or imported here) or is not on this machine.
    pub async fn repo_digests(&self, image: &str) -> Result<Vec<String>, PodmanError> {
        Ok(self
            .image(image)
            .await?
            .and_then(|i| i.repo_digests)
            .unwrap_or_default())
    }

    /// The registry digest (`name@sha256:...`) of `image` (a name or an ID), the one
    /// whose name matches `named` if several; `None` when the image has none (built
    /// or imported here) or is not on this machine.
    pub async fn repo_digest(
        &self,
        image: &str,
        named: &str,
    ) -> Result<Option<String>, PodmanError> {
        let digests = self
            .image(image)
            .await?
            .and_then(|i| i.repo_digests)
            .unwrap_or_default();
        Ok(pick_digest(&digests, named))
    }

    /// Pulls `image` through the engine's API, telling `on_report` how it goes.
    /// A name with its registry goes to Docker's pull, which counts the bytes of
    /// every blob (libpod's counts none in Podman 4); a short name to libpod's,
    /// which resolves it by the user's registries.conf where Docker's would take it
    /// for Docker Hub's, and says how it goes in lines. `login`: an
    /// `X-Registry-Auth` value for the image's registry. Dropping the future cuts
    /// the pull in the engine (nothing is left half-made).
    pub async fn pull(
        &self,
        image: &str,
        login: Option<String>,
        on_report: impl Fn(PullReport) + Send,
    ) -> Result<(), PodmanError> {
        let request = if is_short_name(image) {
            Request::post(format!("/images/pull?reference={}", query_value(image)))
        } else {
            Request::post(format!("/images/create?fromImage={}", query_value(image))).docker()
        }
        // Podman 5 holds back even the answer's head until the first blob or the
        // registry's refusal: the whole pull's bound is the head's too.
        .timeout(PULL_TIMEOUT)
        .registry_auth(login);
        let what = request.describe();
        let pulling = async {
            let mut answer = self.engine.answer_lines(request).await?;
            let mut reading = PullReading::default();
            while let Some((_, line)) = answer.next_line().await {
                let message: PullMessage =
                    serde_json::from_str(&line).map_err(|e| PodmanError::BadOutput {
                        args: what.clone(),
                        reason: format!("{e}: {line}"),
                    })?;
                if !message.error.is_empty() {
                    // The answer began 200 before the pull failed: Docker's API puts
                    // the error in the stream. It is the engine's failure all the same.
                    let err = PodmanError::Api {
                        request: what.clone(),
                        status: 500,
                        message: message.error,
                    };
                    tracing::warn!(request = %what, error = %err, "pull failed");
                    return Err(err);
                }
                reading.read(message, &on_report);
            }
            if reading.pulled {
                Ok(())
            } else {
                Err(PodmanError::Unreachable {
                    request: what.clone(),
                    reason: "the answer ended before the pull did".into(),
                })
            }
        };
        tokio::time::timeout(PULL_TIMEOUT, pulling)
            .await
            .unwrap_or_else(|_| {
                Err(PodmanError::TimedOut {
                    args: what.clone(),
                    after: PULL_TIMEOUT,
                    stderr_tail: String::new(),
                })
            })
    }

    /// The engine's default bridge network (`podman`), which the agents' containers
    /// are on: the bridge's address on the host, which the containers call
    /// `host.containers.internal`, and its subnet with the prefix length.
    pub async fn bridge(&self) -> Result<(IpAddr, IpAddr, u8), PodmanError> {
        #[derive(Deserialize)]
        struct Network {
            #[serde(default)]
            subnets: Vec<Subnet>,
        }
        #[derive(Deserialize)]
        struct Subnet {
            subnet: String,
            gateway: Option<IpAddr>,
        }
        let network: Network = self
            .call_json(Request::get("/networks/podman/json"))
            .await?;
        network
            .subnets
            .iter()
            .find_map(|s| {
                let (net, prefix) = s.subnet.split_once('/')?;
                Some((s.gateway?, net.parse().ok()?, prefix.parse().ok()?))
            })
            .ok_or_else(|| PodmanError::BadOutput {
                args: "network inspect podman".into(),
                reason: "the network has no subnet with a gateway".into(),
            })
    }

    /// How containers must be set up on this host (Linux, native mode only), as
    /// the engine's info says. A failure is the caller's to meet, never a guess:
    /// traits guessed wrong make every container of the session crash-loop (no
    /// keep-id, no relabel).
    pub async fn host_traits(&self) -> Result<HostTraits, PodmanError> {
        #[derive(Deserialize, Default)]
        #[serde(rename_all = "camelCase", default)]
        struct Info {
            host: Host,
        }
        #[derive(Deserialize, Default)]
        #[serde(rename_all = "camelCase", default)]
        struct Host {
            security: Security,
            cgroup_version: String,
            cgroup_manager: String,
        }
        #[derive(Deserialize, Default)]
        #[serde(rename_all = "camelCase", default)]
        struct Security {
            rootless: bool,
            selinux_enabled: bool,
        }
        let info = self.call_json::<Info>(Request::get("/info")).await?;
        let rootless = info.host.security.rootless;
        let v1 = info.host.cgroup_version == "v1" && info.host.cgroup_manager == "cgroupfs";
        Ok(HostTraits {
            rootless_native: rootless,
            rootful_native: !rootless,
            relabel: info.host.security.selinux_enabled,
            cgroup_v1: v1 && !rootless && crate::cgroup_v1::memory_controller_mounted(),
        })
    }

    /// Stops every running container of this data folder from a thread with no
    /// async runtime, each gateway given `grace` before the engine kills it, the
    /// whole within `limit`: the panic hook's last resort. The same stop as at
    /// quit, through the engine Clawdock uses, on a runtime of its own (the
    /// panicking one cannot be trusted). Returns how many it asked to stop.
    pub fn stop_all_blocking(&self, grace: Duration, limit: Duration) -> usize {
        let this = self.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("panic-stop".into())
            .spawn(move || {
                let stopped = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())
                    .and_then(|runtime| {
                        runtime
                            .block_on(this.stop_all(grace, limit))
                            .map_err(|e| e.to_string())
                    });
                let _caller_gone = tx.send(stopped);
            });
        let outcome = match spawned {
            Ok(_) => rx
                .recv_timeout(limit)
                .unwrap_or_else(|_| Err("the stop overran its bound".into())),
            Err(e) => Err(e.to_string()),
        };
        match outcome {
            Ok(n) => n,
            Err(why) => {
                // The panic hook's: `eprintln!` would panic in it on a closed stderr.
                let _unwritable = writeln!(
                    std::io::stderr(),
                    "clawdock: could not stop the agents' containers: {why}"
                );
                0
            }
        }
    }
}

/// A listed container of this data folder.
fn found(r: &PsRow) -> Found {
    Found {
        id: ContainerId(r.id.clone()),
        agent: r.label(LABEL_AGENT).and_then(|v| v.parse().ok()),
        name: r.names.first().cloned().unwrap_or_default(),
        state: r.container(),
        image_id: r.image_id.clone(),
        generation: r.label(LABEL_GENERATION).map(str::to_string),
    }
}

/// Of an image's registry digests, the one of `named`'s repository
/// (`ghcr.io/x/y:tag` → `ghcr.io/x/y@sha256:...`), else the first.
pub fn pick_digest(digests: &[String], named: &str) -> Option<String> {
    let without_digest = named.split('@').next().unwrap_or(named);
    // A `:` after the last `/` starts the tag; one before it is a registry's port.
    let repo = match without_digest.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => repo,
        _ => without_digest,
    };
    digests
        .iter()
        .find(|d| d.split('@').next() == Some(repo))
        .or_else(|| digests.first())
        .cloned()
}

/// The holder's ID from podman's "already in use by <id>" answer.
fn holder_of(stderr: &str) -> Option<String> {
    let rest = stderr.split("already in use by ").nth(1)?;
    let id: String = rest.chars().take_while(char::is_ascii_hexdigit).collect();
    (id.len() >= 12).then(|| id[..12].to_string())
}

/// A name, ID or image reference as a path segment of a request: `/` and `:`
/// stay (an image reference has them and the engine's routes take them), the
/// rest is percent-encoded so no `?` or `#` ends the path.
fn path_value(value: &str) -> String {
    value
        .split('/')
        .map(|part| {
            part.split(':')
                .map(query_value)
                .collect::<Vec<_>>()
                .join(":")
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_references_stay_one_path_segment_each() {
        assert_eq!(
            path_value("localhost:5000/openclaw/openclaw:latest"),
            "localhost:5000/openclaw/openclaw:latest"
        );
        assert_eq!(path_value("x?y#z w"), "x%3Fy%23z%20w");
    }

    #[test]
    fn the_digest_of_the_agents_repository_is_picked() {
        let digests = [
            "docker.io/other/name@sha256:aa".to_string(),
            "localhost:5000/openclaw/openclaw@sha256:bb".to_string(),
        ];
        assert_eq!(
            pick_digest(&digests, "localhost:5000/openclaw/openclaw:latest").as_deref(),
            Some("localhost:5000/openclaw/openclaw@sha256:bb")
        );
        assert_eq!(
            pick_digest(&digests, "quay.io/x").as_deref(),
            Some("docker.io/other/name@sha256:aa")
        );
        assert_eq!(pick_digest(&[], "x"), None);
    }

    #[test]
    fn the_holder_of_a_taken_name_is_read_from_podman_s_answer() {
        let stderr = "Error: creating container storage: the container name \"clawdock-dev\" is already in use by 4f1c2d9e8a7b6c5d4e3f2a1b. You have to remove that container to be able to reuse that name: that name is already in use";
        assert_eq!(holder_of(stderr).as_deref(), Some("4f1c2d9e8a7b"));
        assert_eq!(holder_of("Error: name already in use"), None);
    }

    #[test]
    fn events_of_another_data_folder_or_no_agent_are_not_ours() {
        let c = Containers::new(EngineClient::new(Duration::from_secs(1)), "home1".into());
        let id = Uuid::new_v4();
        // As Podman 4.3.1's API streams them.
        let line = |home: &str, action: &str| {
            format!(
                r#"{{"status":"{action}","id":"abc","Type":"container","Action":"{action}","Actor":{{"ID":"abc",
                "Attributes":{{"containerExitCode":"137","io.clawdock.agent":"{id}","io.clawdock.home":"{home}","name":"x"}}}},
                "scope":"local","time":1796395031,"timeNano":1796395031034535872}}"#
            )
        };
        let died = c.parse_event(&line("home1", "died"), true).expect("ours");
        assert_eq!(died.agent, id);
        assert_eq!(died.container_id, ContainerId("abc".into()));
        assert_eq!(died.container, Container::Exited(Some(137)));
        assert_eq!(
            died.at.map(|t| t.timestamp_nanos_opt()),
            Some(Some(1_796_395_031_034_535_872))
        );
        assert!(c
            .parse_event(&line("home1", "died"), false)
            .expect("ours")
            .at
            .is_none());
        assert_eq!(
            c.parse_event(&line("home1", "start"), true)
                .map(|h| h.container),
            Some(Container::Running)
        );
        assert!(c.parse_event(&line("home2", "died"), true).is_none());
        assert!(c.parse_event(&line("home1", "exec"), true).is_none());
        assert!(c.parse_event("garbage", true).is_none());
        assert!(c
            .parse_event(
                r#"{"Action":"died","Type":"container","Actor":{"ID":"a","Attributes":{"io.clawdock.home":"home1"}}}"#,
                true
            )
            .is_none());
    }
}
