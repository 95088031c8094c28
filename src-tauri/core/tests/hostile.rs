//! Issue 23, item 1: a prompt-injected agent is hostile, and it can write anything in
//! its own config, workspace and cache folders, which Clawdock then touches from the
//! host. Here real Podman agents get symbolic links (to a canary file outside the data
//! folder, to `/dev/zero`) and FIFOs planted at every path Clawdock reads, writes or
//! `chown`s in their folders, once from inside the container itself; then every
//! operation runs. The canary must stay unread (its content nowhere), unchanged and
//! not re-owned, and every operation must end within its bound, with a clear error
//! or a success.

mod support;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clawdock_core::agents::{AgentError, AgentView, CreateRequest, EditRequest};
use clawdock_core::Clawdock;
use support::{podman_out, Home, IMAGE, STUBBORN_IMAGE};

/// Every operation here ends well within this (health budget 15 s, stop 1 s).
const BOUND: Duration = Duration::from_secs(40);

/// Where Clawdock reads, rewrites and `chown`s the agent's config on the host.
const CONFIG: &str = "config/openclaw.json";

/// A file outside the data folder that the agent must not get Clawdock to read,
/// change or hand over. Valid JSON, so a read through a link would be merged into
/// the agent's config rather than refused as garbage.
struct Canary {
    _dir: tempfile::TempDir,
    path: PathBuf,
    secret: String,
    bytes: Vec<u8>,
    meta: (u32, u32, u32, i64),
}

impl Canary {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tmp");
        let secret = format!("CANARY-{}-{}", std::process::id(), uuid::Uuid::new_v4());
        let path = dir.path().join("id_ed25519.json");
        let bytes = format!("{{\"canary\":\"{secret}\",\"gateway\":{{\"extra\":\"{secret}\"}}}}\n")
            .into_bytes();
        std::fs::write(&path, &bytes).expect("canary");
        let meta = Self::meta_of(&path);
        Self {
            _dir: dir,
            path,
            secret,
            bytes,
            meta,
        }
    }

    fn meta_of(path: &Path) -> (u32, u32, u32, i64) {
        let m = std::fs::metadata(path).expect("canary meta");
        (m.uid(), m.gid(), m.mode(), m.mtime())
    }

    /// Unchanged, not re-owned, and its secret nowhere in `seen`.
    fn assert_intact(&self, after: &str, seen: &[&str]) {
        assert_eq!(
            std::fs::read(&self.path).expect("canary"),
            self.bytes,
            "{after}: the canary changed"
        );
        assert_eq!(
            Self::meta_of(&self.path),
            self.meta,
            "{after}: the canary's owner, mode or time changed"
        );
        for text in seen {
            assert!(
                !text.contains(&self.secret),
                "{after}: the canary's content leaked: {text}"
            );
        }
    }
}

/// What the agent plants.
#[derive(Debug, Clone, Copy)]
enum Plant {
    LinkToCanary,
    LinkToDevZero,
    Fifo,
}

const PLANTS: [Plant; 3] = [Plant::LinkToCanary, Plant::LinkToDevZero, Plant::Fifo];

fn plant(canary: &Canary, at: &Path, what: Plant) {
    match std::fs::symlink_metadata(at) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(at).expect("rm dir"),
        Ok(_) => std::fs::remove_file(at).expect("rm"),
        Err(_) => {}
    }
    match what {
        Plant::LinkToCanary => std::os::unix::fs::symlink(&canary.path, at).expect("link"),
        Plant::LinkToDevZero => std::os::unix::fs::symlink("/dev/zero", at).expect("link"),
        Plant::Fifo => {
            let made = std::process::Command::new("mkfifo")
                .arg(at)
                .status()
                .expect("mkfifo");
            assert!(made.success(), "mkfifo {}", at.display());
        }
    }
}

/// Puts a good config back in place of a plant, so the next case starts clean.
fn repair(agent: &AgentView, good: &[u8]) {
    let at = agent.dir.join(CONFIG);
    let _ = std::fs::remove_file(&at);
    std::fs::write(&at, good).expect("config");
}

/// Every regular file in the agent's folder and the data folder's store, as text,
/// read without following links: where a leaked canary would end up.
fn folder_text(home: &Home) -> String {
    fn walk(dir: &Path, out: &mut String) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
                continue;
            };
            if meta.is_dir() {
                walk(&entry.path(), out);
            } else if meta.is_file() && meta.len() < 1 << 20 {
                out.push_str(&String::from_utf8_lossy(
                    &std::fs::read(entry.path()).unwrap_or_default(),
                ));
            }
        }
    }
    let mut out = String::new();
    walk(home.path(), &mut out);
    out
}

fn log_text(core: &Clawdock, agent: &AgentView) -> String {
    core.agents()
        .follow_logs(agent.id)
        .map(|(lines, _)| lines.join("\n"))
        .unwrap_or_default()
}

async fn bounded<T>(what: String, op: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(BOUND, op).await {
        Ok(done) => done,
        Err(_) => panic!("{what} did not end within {BOUND:?}"),
    }
}

/// A refusal must say what is wrong, not merely fail.
fn assert_clear<T: std::fmt::Debug>(what: &str, result: &Result<T, AgentError>) {
    if let Err(e) = result {
        let said = e.to_string();
        assert!(
            said.contains("openclaw.json") || said.contains("link"),
            "{what}: an unclear error: {said}"
        );
    }
}

/// An edit that goes through on a sound config: a provider, its key and model.
fn key_edit() -> EditRequest {
    EditRequest {
        provider_type: Some("openai".into()),
        api_key: Some("sk-hostile-test".into()),
        model_id: Some("gpt-5".into()),
        ..EditRequest::default()
    }
}

struct Agent {
    home: Home,
    core: Clawdock,
    agent: AgentView,
    canary: Canary,
    good: Vec<u8>,
    image: String,
}

impl Agent {
    async fn new(name: &str) -> Self {
        let home = Home::new();
        support::ensure_test_images();
        // A reference of our own, so an update has a newer image to move to.
        let image = format!(
            "localhost/clawdock-test-hostile-{}-{name}:latest",
            std::process::id()
        );
        support::tag_image(IMAGE, &image);
        let mut settings = home.native(&image);
        settings.health_timeout = Duration::from_secs(15);
        settings.stop_timeout = Duration::from_secs(1);
        let core = Clawdock::start(settings).await.expect("core");
        let agent = core
            .agents()
            .create_and_wait(CreateRequest {
                name: name.into(),
                ..CreateRequest::default()
            })
            .await
            .expect("create");
        let good = std::fs::read(agent.dir.join(CONFIG)).expect("config");
        Self {
            home,
            core,
            agent,
            canary: Canary::new(),
            good,
            image,
        }
    }

    fn assert_intact(&self, after: &str, more: &[&str]) {
        let folders = folder_text(&self.home);
        let log = log_text(&self.core, &self.agent);
        let mut seen = vec![folders.as_str(), log.as_str()];
        seen.extend_from_slice(more);
        self.canary.assert_intact(after, &seen);
    }

    async fn end(self) {
        self.core.shutdown().await;
        // Only our name goes; the images stay for the other tests.
        support::untag_image(&self.image);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_planted_inside_the_container_is_not_followed_by_an_edit() {
    let a = Agent::new("inside").await;
    let inside = "/home/node/.openclaw/openclaw.json";
    // The agent itself, as its own user, replaces its config with a link.
    podman_out(&[
        "exec",
        "clawdock-inside",
        "ln",
        "-sf",
        a.canary.path.to_str().expect("utf-8"),
        inside,
    ]);
    let link = std::fs::read_link(a.agent.dir.join(CONFIG)).expect("a link on the host");
    assert_eq!(link, a.canary.path);
    let edited = bounded("edit".into(), a.core.agents().edit(a.agent.id, key_edit())).await;
    assert_clear("edit", &edited);
    a.assert_intact("edit", &[&format!("{edited:?}")]);
    a.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edit_and_export_refuse_links_and_fifos_at_the_config() {
    let a = Agent::new("readme").await;
    for what in PLANTS {
        plant(&a.canary, &a.agent.dir.join(CONFIG), what);
        let edited = bounded(
            format!("edit with {what:?}"),
            a.core.agents().edit(a.agent.id, key_edit()),
        )
        .await;
        assert_clear("edit", &edited);
        a.assert_intact(&format!("edit with {what:?}"), &[&format!("{edited:?}")]);

        plant(&a.canary, &a.agent.dir.join(CONFIG), what);
        let exported = bounded(
            format!("export with {what:?}"),
            a.core
                .agents()
                .export_kubernetes(a.agent.id, &clawdock_core::export::Options::default()),
        )
        .await;
        assert!(
            exported.is_err(),
            "export with {what:?}: no config to export"
        );
        assert_clear("export", &exported);
        a.assert_intact(
            &format!("export with {what:?}"),
            &[&format!("{exported:?}")],
        );
        repair(&a.agent, &a.good);
    }
    a.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_after_the_container_is_gone_and_a_port_move_chown_and_read_no_link() {
    let a = Agent::new("restart").await;
    let agents = a.core.agents();
    for what in PLANTS {
        // Start after the container is gone: the container is made again and the
        // config handed to the gateway's user.
        bounded("stop".into(), agents.stop(a.agent.id))
            .await
            .expect("stop");
        podman_out(&["rm", "--force", "clawdock-restart"]);
        plant(&a.canary, &a.agent.dir.join(CONFIG), what);
        let started = bounded(format!("start with {what:?}"), agents.start(a.agent.id)).await;
        assert_clear("start", &started);
        a.assert_intact(&format!("start with {what:?}"), &[&format!("{started:?}")]);
        repair(&a.agent, &a.good);

        // A port taken by another program while stopped: the config moves with it.
        bounded("stop".into(), agents.stop(a.agent.id))
            .await
            .expect("stop");
        let port = agents.get(a.agent.id).expect("agent").port;
        let taken = std::net::TcpListener::bind(("127.0.0.1", port)).expect("take the port");
        plant(&a.canary, &a.agent.dir.join(CONFIG), what);
        let moved = bounded(format!("port move with {what:?}"), agents.start(a.agent.id)).await;
        assert_clear("port move", &moved);
        a.assert_intact(
            &format!("port move with {what:?}"),
            &[&format!("{moved:?}")],
        );
        drop(taken);
        repair(&a.agent, &a.good);
        bounded("start".into(), agents.start(a.agent.id))
            .await
            .expect("a repaired agent starts");
    }
    a.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_to_a_new_image_chowns_no_link() {
    let a = Agent::new("update").await;
    let agents = a.core.agents();
    let image_id = |image: &str| podman_out(&["image", "inspect", "--format", "{{.Id}}", image]);
    for what in PLANTS {
        // The reference moves to the image the container does not run: a newer one.
        let running = podman_out(&["inspect", "--format", "{{.Image}}", "clawdock-update"]);
        let next = if running == image_id(IMAGE) {
            STUBBORN_IMAGE
        } else {
            IMAGE
        };
        support::tag_image(next, &a.image);
        plant(&a.canary, &a.agent.dir.join(CONFIG), what);
        let before = podman_out(&["inspect", "--format", "{{.Id}}", "clawdock-update"]);
        let updated = bounded(format!("update with {what:?}"), agents.update(a.agent.id)).await;
        assert_clear("update", &updated);
        assert!(updated.is_err(), "update with {what:?}: refused");
        assert_eq!(
            podman_out(&["inspect", "--format", "{{.Id}}", "clawdock-update"]),
            before,
            "a refused update keeps the agent's container"
        );
        a.assert_intact(&format!("update with {what:?}"), &[&format!("{updated:?}")]);
        repair(&a.agent, &a.good);
        if agents.get(a.agent.id).expect("agent").status
            != clawdock_core::store::AgentStatus::Running
        {
            bounded("start".into(), agents.start(a.agent.id))
                .await
                .expect("a repaired agent starts");
        }
    }
    // Repaired, the same update goes through.
    let updated = bounded("update".into(), agents.update(a.agent.id))
        .await
        .expect("an update of a repaired agent");
    assert!(updated.updated, "{updated:?}");
    a.assert_intact("a repaired update", &[]);
    a.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workspace_tarball_logs_and_delete_follow_no_link() {
    let a = Agent::new("leaver").await;
    let agents = a.core.agents();
    let ws = a.agent.dir.join("workspace");
    plant(&a.canary, &ws.join("key.json"), Plant::LinkToCanary);
    plant(&a.canary, &ws.join("zero"), Plant::LinkToDevZero);
    plant(&a.canary, &ws.join("pipe"), Plant::Fifo);
    std::os::unix::fs::symlink(a.canary.path.parent().expect("dir"), ws.join("outside"))
        .expect("link to a folder");
    let ws_for_tar = ws.clone();
    let tarball = bounded(
        "workspace tarball".into(),
        tokio::task::spawn_blocking(move || clawdock_core::export::workspace_tarball(&ws_for_tar)),
    )
    .await
    .expect("join")
    .expect("the tarball holds the links as links");
    let listing = std::process::Command::new("tar")
        .args(["-tvzf", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().expect("stdin").write_all(&tarball)?;
            child.wait_with_output()
        })
        .expect("tar -t");
    let listing = String::from_utf8_lossy(&listing.stdout).to_string();
    assert!(listing.contains("key.json ->"), "{listing}");
    let unpacked = std::process::Command::new("sh")
        .arg("-c")
        .arg("gzip -dc | cat")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().expect("stdin").write_all(&tarball)?;
            child.wait_with_output()
        })
        .expect("gunzip");
    let raw = String::from_utf8_lossy(&unpacked.stdout).to_string();
    a.assert_intact("workspace tarball", &[&raw]);

    let logs = bounded(
        "container logs".into(),
        agents.container_logs(a.agent.id, 50),
    )
    .await
    .expect("logs");
    a.assert_intact("logs", &[&logs.join("\n")]);

    plant(&a.canary, &a.agent.dir.join(CONFIG), Plant::LinkToCanary);
    std::os::unix::fs::symlink(
        a.canary.path.parent().expect("dir"),
        a.agent.dir.join("config/dir"),
    )
    .expect("link to a folder");
    plant(
        &a.canary,
        &a.agent.dir.join("config/openclaw.json.bak"),
        Plant::LinkToCanary,
    );
    bounded("delete".into(), agents.delete(a.agent.id))
        .await
        .expect("delete");
    assert!(!a.agent.dir.exists(), "the agent's folder is gone");
    a.assert_intact("delete", &[]);
    a.end().await;
}

/// Issue 30, item 7: the agent made a folder named like the gateway's backups
/// (`openclaw.json.bak*`) in its config folder. An edit wrote the new key, then
/// failed removing the "backup" (a folder is no file): the agent kept its old
/// provider in view and an error, half-way. Now the edit succeeds, every entry of
/// that name goes (folders with what they hold, links without following them), so
/// the old key survives in none, and the canary a link points at is untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_the_agent_made_as_folders_links_or_fifos_do_not_break_an_edit() {
    let a = Agent::new("backups").await;
    let old = EditRequest {
        provider_type: Some("openai".into()),
        api_key: Some("sk-old-hostile-key".into()),
        ..EditRequest::default()
    };
    bounded("first key".into(), a.core.agents().edit(a.agent.id, old))
        .await
        .expect("the first key");
    // The agent, as its own user, keeps copies of its config under backup names.
    podman_out(&[
        "exec",
        "clawdock-backups",
        "sh",
        "-c",
        "cd /home/node/.openclaw && mkdir -p openclaw.json.bak.d/deeper \
         && cp openclaw.json openclaw.json.bak.d/deeper/copy \
         && cp openclaw.json openclaw.json.bak && mkfifo openclaw.json.bak.fifo",
    ]);
    let config = a.agent.dir.join("config");
    std::os::unix::fs::symlink(&a.canary.path, config.join("openclaw.json.bak.link"))
        .expect("link");
    std::os::unix::fs::symlink(
        a.canary.path.parent().expect("dir"),
        config.join("openclaw.json.bak.dirlink"),
    )
    .expect("link to a folder");

    let edited = bounded("edit".into(), a.core.agents().edit(a.agent.id, key_edit()))
        .await
        .expect("the edit goes through");
    assert_eq!(edited.model_id.as_deref(), Some("gpt-5"), "{edited:?}");
    assert!(edited.error.is_none(), "{edited:?}");
    let left: Vec<String> = std::fs::read_dir(&config)
        .expect("config folder")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("openclaw.json.bak"))
        .collect();
    assert!(
        left.iter().all(|n| n == "openclaw.json.bak"),
        "only the gateway's own new backup may be there: {left:?}"
    );
    let text = folder_text(&a.home);
    assert!(!text.contains("sk-old-hostile-key"), "the old key survived");
    assert!(a.canary.path.exists(), "the link's target stays");
    a.assert_intact("edit over planted backups", &[&format!("{edited:?}")]);
    a.end().await;
}
