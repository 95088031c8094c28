//! Issue 30, item 6: an agent that nests folders deeply in its workspace made Delete
//! fail ("Too many open files" at about a thousand levels: std's `remove_dir_all`
//! holds one descriptor per level). Here 10,000 levels, made from inside the real
//! container and on the host, are removed under the 1024 open files a desktop
//! session gives a process by default, and a link at the bottom is not followed.

mod support;

use std::path::Path;
use std::time::Duration;

use clawdock_core::agents::CreateRequest;
use clawdock_core::Clawdock;
use support::{podman_out, Home, IMAGE};

const LEVELS: u32 = 10_000;

/// The soft limit of open files of a desktop session (systemd's default), for this
/// test process: the CI machine's is 20,000, above what 10,000 levels need.
fn desktop_open_files_limit() {
    let set = std::process::Command::new("prlimit")
        .arg(format!("--pid={}", std::process::id()))
        .arg("--nofile=1024:")
        .status()
        .expect("prlimit");
    assert!(set.success(), "prlimit failed");
}

/// A folder outside the data folder holding a file a link at the bottom of the
/// tree points at: a removal that followed links would empty it.
fn canary() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("keep.txt");
    std::fs::write(&file, "keep me").expect("canary");
    (dir, file)
}

/// `LEVELS` folders named `d` (in chains of 100 under folders named `x`), one in
/// the other, from `base`, with links to `link_to` and its folder at the bottom. A
/// shell that walked down with `cd` slowed to a crawl past 4096 characters of path
/// (it looks for its own path): instead a chain of 100 is made with one
/// `mkdir -p`, and the tree so far is moved to its bottom, 100 times.
fn nest_script(base: &str, link_to: &Path) -> String {
    let chain = vec!["d"; 99].join("/");
    format!(
        "cd '{base}' && mkdir -p x/{chain} && ln -s '{}' x/{chain}/canary-folder \
         && ln -s '{}' x/{chain}/canary-file || exit 1; i=1; \
         while [ $i -lt {rounds} ]; do mkdir -p t/{chain} && mv x t/{chain}/x && mv t x || exit 1; i=$((i+1)); done; \
         echo deep",
        link_to.parent().expect("dir").display(),
        link_to.display(),
        rounds = LEVELS / 100,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_folders_made_inside_the_container_are_deleted() {
    desktop_open_files_limit();
    let (_keep, canary) = canary();
    let home = Home::new();
    let mut settings = home.native(IMAGE);
    settings.stop_timeout = Duration::from_secs(1);
    let core = Clawdock::start(settings).await.expect("core");
    let name = format!("deep{}", std::process::id());
    let agent = core
        .agents()
        .create_and_wait(CreateRequest {
            name: name.clone(),
            ..CreateRequest::default()
        })
        .await
        .expect("create");
    // The agent itself, as its own user, in its workspace.
    let made = podman_out(&[
        "exec",
        &format!("clawdock-{name}"),
        "sh",
        "-c",
        &nest_script("/home/node/.openclaw/workspace", &canary),
    ]);
    assert_eq!(made.trim(), "deep", "the tree was made");
    let deleted = tokio::time::timeout(Duration::from_secs(120), core.agents().delete(agent.id))
        .await
        .expect("the delete ends");
    assert!(deleted.is_ok(), "delete: {deleted:?}");
    assert!(
        std::fs::symlink_metadata(&agent.dir).is_err(),
        "the agent's folder is gone"
    );
    assert!(core.agents().get(agent.id).is_none(), "the agent is gone");
    assert_eq!(
        std::fs::read_to_string(&canary).expect("the canary stays"),
        "keep me"
    );
    core.shutdown().await;
}

#[test]
fn ten_thousand_folders_made_on_the_host_are_removed() {
    desktop_open_files_limit();
    let (_keep, canary) = canary();
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path().join("agent");
    std::fs::create_dir(&root).expect("root");
    let made = std::process::Command::new("sh")
        .arg("-c")
        .arg(nest_script(root.to_str().expect("utf-8"), &canary))
        .output()
        .expect("sh");
    assert_eq!(String::from_utf8_lossy(&made.stdout).trim(), "deep");
    // Files beside the folders at a few levels, and one folder with many entries.
    std::fs::write(root.join("note.txt"), "x").expect("file");
    std::fs::create_dir(root.join("wide")).expect("wide");
    for i in 0..500 {
        std::fs::write(root.join(format!("wide/f{i}")), "x").expect("file");
        std::fs::create_dir(root.join(format!("wide/d{i}"))).expect("dir");
    }
    clawdock_core::agent_files::remove_tree(&root).expect("removed");
    assert!(std::fs::symlink_metadata(&root).is_err(), "gone");
    assert_eq!(
        std::fs::read_to_string(&canary).expect("the canary stays"),
        "keep me"
    );
    // A folder that is not there is no error; a link in its place is removed, not
    // followed.
    clawdock_core::agent_files::remove_tree(&root).expect("nothing to remove");
    std::os::unix::fs::symlink(canary.parent().expect("dir"), &root).expect("link");
    clawdock_core::agent_files::remove_tree(&root).expect("the link removed");
    assert!(
        std::fs::symlink_metadata(&root).is_err(),
        "the link is gone"
    );
    assert!(canary.exists(), "its target stays");
}
