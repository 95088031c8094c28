//! Issue 32, items 1 and 2: an agent's backup and its restore, on real Podman
//! through the API. A workspace and state written from inside the agent's
//! container come back identical to the byte after a backup, a delete and a
//! restore, and a restore into a fresh data folder (another computer) runs the
//! agent; hostile archives are refused and write nothing outside the new agent's
//! folder; snapshots are taken before an edit and a limits change, a snapshot
//! that cannot be written stops the change, and a snapshot is put back.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::Digest;
use support::api_client::Api;
use support::podman_out;

/// A file, folder or link under a folder, as compared before and after.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    File(String),
    Dir,
    Link(String),
}

/// Every member under `dir` (links not followed): path -> content hash or target.
fn tree(dir: &Path) -> BTreeMap<String, Seen> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Seen>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").path())
            .collect();
        entries.sort();
        for path in entries {
            let rel = path
                .strip_prefix(base)
                .expect("prefix")
                .to_string_lossy()
                .into_owned();
            let meta = std::fs::symlink_metadata(&path).expect("meta");
            if meta.file_type().is_symlink() {
                let to = std::fs::read_link(&path).expect("link");
                out.insert(rel, Seen::Link(to.to_string_lossy().into_owned()));
            } else if meta.is_dir() {
                out.insert(rel, Seen::Dir);
                walk(base, &path, out);
            } else if meta.is_file() {
                let bytes = std::fs::read(&path).expect("read");
                out.insert(
                    rel,
                    Seen::File(format!("{:x}", sha2::Sha256::digest(&bytes))),
                );
            } else {
                out.insert(rel, Seen::File("special".into()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

async fn create(api: &Api, name: &str) -> Value {
    let (status, body) = api
        .call(
            Method::POST,
            "/agents/create",
            Some(json!({"name": name, "providerType": "openai", "apiKey": "sk-old-key"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["agent"]["id"].as_str().expect("id").to_string();
    wait_status(api, &id, "running").await
}

async fn wait_status(api: &Api, id: &str, wanted: &str) -> Value {
    let began = Instant::now();
    loop {
        let (_, body) = api.call(Method::GET, &format!("/agents/{id}"), None).await;
        let agent = &body["agent"];
        if agent["status"] == wanted && agent["activity"].is_null() {
            return agent.clone();
        }
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "agent {id} never {wanted}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs `script` in the agent's container as its gateway does (uid 1000).
fn exec(container: &str, script: &str) {
    podman_out(&["exec", "--user", "1000", container, "sh", "-c", script]);
}

async fn backup(api: &Api, id: &str) -> Vec<u8> {
    let resp = api
        .req(Method::POST, &format!("/agents/{id}/backup"))
        .send()
        .await
        .expect("backup");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["cache-control"],
        "no-store",
        "a backup holds the key: never cached"
    );
    resp.bytes().await.expect("bytes").to_vec()
}

async fn restore(api: &Api, archive: Vec<u8>, query: &str) -> (StatusCode, Value) {
    let resp = api
        .req(Method::POST, &format!("/agents/restore{query}"))
        .body(archive)
        .send()
        .await
        .expect("restore");
    let status = resp.status();
    let text = resp.text().await.expect("text");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn agent_dir(agent: &Value) -> std::path::PathBuf {
    std::path::PathBuf::from(agent["dir"].as_str().expect("dir"))
}

fn token_of(api: &Api, id: &str) -> String {
    let records: Value = serde_json::from_slice(
        &std::fs::read(api.home.path().join("agents.json")).expect("agents.json"),
    )
    .expect("json");
    records
        .as_array()
        .expect("records")
        .iter()
        .find(|r| r["id"] == id)
        .and_then(|r| r["token"].as_str())
        .expect("token")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_a_delete_and_a_restore_give_back_the_workspace_to_the_byte() {
    let api = Api::start().await;
    let agent = create(&api, "keeper").await;
    let id = agent["id"].as_str().expect("id").to_string();
    let container = "clawdock-keeper";
    // What an agent writes: notes, memory, a session, binary data, an empty
    // file, a private file, a link inside, nested folders; and what must not come
    // back: a link out to the host, a FIFO.
    exec(
        container,
        "cd /home/node/.openclaw/workspace && mkdir -p notes/deep/er memory && \
         printf 'MEMORY: the user likes tea\\n' > MEMORY.md && \
         printf 'line one\\nline two\\n' > notes/deep/er/today.md && \
         dd if=/dev/urandom of=memory/blob.bin bs=1M count=20 2>/dev/null && \
         : > empty && printf 'secret' > private && chmod 600 private && \
         ln -s MEMORY.md memory-link && ln -s ../../../../../etc/passwd escape && \
         mkfifo pipe && \
         mkdir -p /home/node/.openclaw/agents/main/sessions && \
         printf '{\"role\":\"user\"}\\n' > /home/node/.openclaw/agents/main/sessions/s1.jsonl",
    );
    let dir = agent_dir(&agent);
    let before_workspace = tree(&dir.join("workspace"));
    let before_config = tree(&dir.join("config"));
    let old_token = token_of(&api, &id);

    let began = Instant::now();
    let archive = backup(&api, &id).await;
    let backup_took = began.elapsed();
    eprintln!(
        "backup of a running agent with {} MiB of files: {:?}, {} bytes packed",
        20,
        backup_took,
        archive.len()
    );
    let (status, body) = api
        .call(Method::DELETE, &format!("/agents/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(!dir.exists(), "the delete removed the folder");

    let began = Instant::now();
    let (status, outcome) = restore(&api, archive.clone(), "").await;
    assert_eq!(status, StatusCode::CREATED, "{outcome}");
    let new_id = outcome["agent"]["id"].as_str().expect("id").to_string();
    let restored = wait_status(&api, &new_id, "running").await;
    eprintln!("restore, start included: {:?}", began.elapsed());
    assert_eq!(restored["name"], "keeper");
    assert_ne!(new_id, id, "a new agent");
    assert_eq!(outcome["fromName"], "keeper");
    let skipped: Vec<&str> = outcome["skipped"]
        .as_array()
        .expect("skipped")
        .iter()
        .filter_map(|s| s["path"].as_str())
        .collect();
    assert_eq!(skipped, ["workspace/escape", "workspace/pipe"], "{outcome}");

    let new_dir = agent_dir(&restored);
    let mut expected = before_workspace;
    expected.remove("escape");
    expected.remove("pipe");
    assert_eq!(
        tree(&new_dir.join("workspace")),
        expected,
        "the workspace, to the byte"
    );
    let mut config_after = tree(&new_dir.join("config"));
    let mut config_before = before_config;
    // The config is the backup's with the agent's new port in its origins.
    let config_hashes = (
        config_before.remove("openclaw.json"),
        config_after.remove("openclaw.json"),
    );
    assert!(config_hashes.0.is_some() && config_hashes.1.is_some());
    config_after.retain(|p, _| !p.starts_with("openclaw.json.bak"));
    config_before.retain(|p, _| !p.starts_with("openclaw.json.bak"));
    assert_eq!(
        config_after, config_before,
        "the agent's state, to the byte"
    );
    let config: Value = serde_json::from_slice(
        &std::fs::read(new_dir.join("config/openclaw.json")).expect("config"),
    )
    .expect("json");
    assert_eq!(
        config["env"]["vars"]["OPENAI_API_KEY"], "sk-old-key",
        "the key came back"
    );
    assert_ne!(token_of(&api, &new_id), old_token, "a fresh gateway token");
    // The new container reads what came back.
    assert_eq!(
        podman_out(&[
            "exec",
            container,
            "cat",
            "/home/node/.openclaw/workspace/notes/deep/er/today.md"
        ]),
        "line one\nline two"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(new_dir.join("workspace/private"))
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let leftovers: Vec<String> = std::fs::read_dir(api.home.path().join("agents"))
        .expect("agents")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(
        leftovers.is_empty(),
        "no restore folder left: {leftovers:?}"
    );
    assert!(
        std::fs::read_dir(api.home.path().join("tmp"))
            .expect("tmp")
            .next()
            .is_none(),
        "no archive left in the data folder"
    );

    // Another computer: a fresh data folder, no agent, the same archive.
    let other = Api::start().await;
    let (status, moved) = restore(&other, archive, "?name=keeper-moved").await;
    assert_eq!(status, StatusCode::CREATED, "{moved}");
    let moved_id = moved["agent"]["id"].as_str().expect("id").to_string();
    let running = wait_status(&other, &moved_id, "running").await;
    assert_eq!(
        tree(&agent_dir(&running).join("workspace")),
        expected,
        "the workspace on the other computer"
    );
    other.core.shutdown().await;
    api.core.shutdown().await;
}

/// A gzipped tar written member by member, names and kinds as given: what a
/// hostile archive holds.
struct Crafted {
    tar: tar::Builder<flate2::write::GzEncoder<Vec<u8>>>,
}

impl Crafted {
    fn new() -> Self {
        Self {
            tar: tar::Builder::new(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::fast(),
            )),
        }
    }

    /// A member with `name` written into the header as it is (no checks).
    fn raw(
        mut self,
        name: &str,
        kind: tar::EntryType,
        link: Option<&str>,
        data: &[u8],
        size: u64,
    ) -> Self {
        let mut header = tar::Header::new_old();
        header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_entry_type(kind);
        header.set_size(size);
        header.set_mode(0o644);
        if let Some(link) = link {
            header.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        header.set_cksum();
        self.tar.append(&header, data).expect("append");
        self
    }

    fn file(self, name: &str, data: &[u8]) -> Self {
        self.raw(name, tar::EntryType::Regular, None, data, data.len() as u64)
    }

    fn manifest(self, members: Value) -> Self {
        let manifest = json!({
            "format": "clawdock-agent-backup", "version": 1,
            "createdAt": "2026-12-01T00:00:00Z", "clawdock": "0.1.0",
            "agent": {"name": "hostile", "id": uuid::Uuid::new_v4(),
                      "image": support::IMAGE, "port": 18789},
            "consistency": "stopped", "members": members,
        });
        let bytes = serde_json::to_vec(&manifest).expect("json");
        self.file("manifest.json", &bytes)
    }

    fn done(self) -> Vec<u8> {
        self.tar.into_inner().expect("tar").finish().expect("gzip")
    }
}

fn file_member(path: &str, data: &[u8]) -> Value {
    json!({"kind": "file", "path": path, "size": data.len(),
           "sha256": format!("{:x}", sha2::Sha256::digest(data)), "mode": 0o644})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_archives_are_refused_and_write_nothing_outside() {
    let api = Api::start().await;
    let outside = tempfile::tempdir().expect("outside");
    let escape = outside.path().join("escaped");
    let escape_abs = escape.to_string_lossy().into_owned();
    let climb = format!("workspace/../../../../../../../..{escape_abs}");
    let good = b"good\n";
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "a member that climbs out",
            Crafted::new()
                .file(&climb, b"x")
                .manifest(json!([file_member(&climb, b"x")]))
                .done(),
            "climbs out",
        ),
        (
            "an absolute member",
            Crafted::new()
                .file(&escape_abs, b"x")
                .manifest(json!([file_member(&escape_abs, b"x")]))
                .done(),
            "absolute",
        ),
        (
            "a link pointing out",
            Crafted::new()
                .raw(
                    "workspace/out",
                    tar::EntryType::Symlink,
                    Some(&escape_abs),
                    b"",
                    0,
                )
                .manifest(json!([{"kind": "link", "path": "workspace/out", "target": escape_abs}]))
                .done(),
            "pointing out",
        ),
        (
            "a member beneath a link",
            Crafted::new()
                .raw("workspace/in", tar::EntryType::Symlink, Some("sub"), b"", 0)
                .file("workspace/in/x", b"x")
                .manifest(
                    json!([{"kind": "link", "path": "workspace/in", "target": "sub"},
                                 file_member("workspace/in/x", b"x")]),
                )
                .done(),
            "beneath",
        ),
        (
            "a device",
            Crafted::new()
                .raw("workspace/zero", tar::EntryType::Char, None, b"", 0)
                .manifest(json!([]))
                .done(),
            "a device",
        ),
        (
            "a hard link",
            Crafted::new()
                .raw(
                    "workspace/hard",
                    tar::EntryType::Link,
                    Some("/etc/shadow"),
                    b"",
                    0,
                )
                .manifest(json!([]))
                .done(),
            "hard link",
        ),
        (
            "a huge member",
            Crafted::new()
                .raw(
                    "workspace/huge",
                    tar::EntryType::Regular,
                    None,
                    b"",
                    5 * 1024 * 1024 * 1024,
                )
                .done(),
            "past the bound",
        ),
        (
            "a file that is not as the manifest says",
            Crafted::new()
                .file("workspace/a", good)
                .manifest(json!([file_member("workspace/a", b"evil\n")]))
                .done(),
            "not what manifest.json says",
        ),
        (
            "a member the manifest does not list",
            Crafted::new()
                .file("workspace/a", good)
                .manifest(json!([]))
                .done(),
            "not in manifest.json",
        ),
        (
            "no manifest",
            Crafted::new().file("workspace/a", good).done(),
            "no manifest.json",
        ),
        (
            "a manifest of another kind",
            Crafted::new()
                .file("manifest.json", b"{\"format\":\"something-else\"}")
                .done(),
            "cannot be read",
        ),
        (
            "not an archive at all",
            b"hello".to_vec(),
            "not a gzipped tar",
        ),
    ];
    let agents_dir = api.home.path().join("agents");
    for (what, archive, said) in cases {
        let (status, body) = restore(&api, archive, "").await;
        assert!(
            status == StatusCode::BAD_REQUEST || status == StatusCode::PAYLOAD_TOO_LARGE,
            "{what}: {status} {body}"
        );
        let message = body["error"].as_str().unwrap_or_default();
        assert!(message.contains(said), "{what}: {message}");
        assert!(
            ["bad_archive", "too_large"].contains(&body["code"].as_str().unwrap_or_default()),
            "{what}: {body}"
        );
        assert!(!escape.exists(), "{what}: wrote outside");
        assert_eq!(
            std::fs::read_dir(outside.path()).expect("outside").count(),
            0,
            "{what}: wrote outside"
        );
        let left: Vec<_> = std::fs::read_dir(&agents_dir)
            .map(|d| d.map(|e| e.expect("entry").file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{what}: left {left:?}");
        let (_, list) = api.call(Method::GET, "/agents", None).await;
        assert_eq!(list["agents"], json!([]), "{what}: no agent");
    }
    api.core.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_before_changes_a_refusal_without_one_and_a_snapshot_put_back() {
    let api = Api::start().await;
    let agent = create(&api, "snappy").await;
    let id = agent["id"].as_str().expect("id").to_string();
    let dir = agent_dir(&agent);
    exec(
        "clawdock-snappy",
        "printf 'before the edit\\n' > /home/node/.openclaw/workspace/notes.md",
    );
    // A restore under a name that is taken is refused, nothing written.
    let archive = backup(&api, &id).await;
    let (status, body) = restore(&api, archive.clone(), "").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "name_taken");

    let (status, body) = api
        .call(
            Method::PATCH,
            &format!("/agents/{id}"),
            Some(json!({"apiKey": "sk-new-key"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = api
        .call(
            Method::PATCH,
            &format!("/agents/{id}"),
            Some(json!({"memoryMiB": 1024})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, list) = api
        .call(Method::GET, &format!("/agents/{id}/snapshots"), None)
        .await;
    let befores: Vec<&str> = list["snapshots"]
        .as_array()
        .expect("snapshots")
        .iter()
        .filter_map(|s| s["before"].as_str())
        .collect();
    assert_eq!(befores, ["limits", "edit"], "newest first: {list}");
    let snapshot_dir = api.home.path().join("snapshots").join(&id);
    use std::os::unix::fs::PermissionsExt;
    let dir_mode = std::fs::metadata(&snapshot_dir)
        .expect("dir")
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o777, 0o700);
    for entry in std::fs::read_dir(&snapshot_dir).expect("snapshots") {
        let mode = entry
            .expect("entry")
            .metadata()
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "a snapshot holds the key");
    }

    // A snapshot that cannot be written stops the edit: the key stays as it was.
    let edit_snapshot = list["snapshots"][1]["name"]
        .as_str()
        .expect("name")
        .to_string();
    let aside = api.home.path().join("snapshots-aside");
    std::fs::rename(&snapshot_dir, &aside).expect("aside");
    std::fs::write(&snapshot_dir, b"not a folder").expect("block");
    let (status, body) = api
        .call(
            Method::PATCH,
            &format!("/agents/{id}"),
            Some(json!({"apiKey": "sk-third-key"})),
        )
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert_eq!(body["code"], "snapshot_failed", "{body}");
    let config = std::fs::read_to_string(dir.join("config/openclaw.json")).expect("config");
    assert!(
        config.contains("sk-new-key") && !config.contains("sk-third-key"),
        "{config}"
    );
    std::fs::remove_file(&snapshot_dir).expect("unblock");
    std::fs::rename(&aside, &snapshot_dir).expect("back");

    // Put back the snapshot taken before the edit: the old key, the same notes.
    let (status, outcome) = api
        .call(
            Method::POST,
            &format!("/agents/{id}/snapshots/{edit_snapshot}/restore"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{outcome}");
    assert_eq!(outcome["replaced"], "snappy");
    let new_id = outcome["agent"]["id"].as_str().expect("id").to_string();
    let back = wait_status(&api, &new_id, "running").await;
    let config =
        std::fs::read_to_string(agent_dir(&back).join("config/openclaw.json")).expect("config");
    assert!(
        config.contains("sk-old-key") && !config.contains("sk-new-key"),
        "{config}"
    );
    assert_eq!(
        std::fs::read_to_string(agent_dir(&back).join("workspace/notes.md")).expect("notes"),
        "before the edit\n"
    );
    // The replaced agent's snapshots and one of it as it was go with the name.
    let (_, list) = api
        .call(Method::GET, &format!("/agents/{new_id}/snapshots"), None)
        .await;
    let befores: Vec<&str> = list["snapshots"]
        .as_array()
        .expect("snapshots")
        .iter()
        .filter_map(|s| s["before"].as_str())
        .collect();
    assert_eq!(befores, ["restore", "limits", "edit"], "{list}");
    let (_, agents) = api.call(Method::GET, "/agents", None).await;
    assert_eq!(
        agents["agents"].as_array().expect("agents").len(),
        1,
        "the old one is gone"
    );
    api.core.shutdown().await;
}
