//! A create that pulls its image, with real Podman on a terminal: the bytes of every
//! blob reach the event stream. Its own test binary: building and saving the image
//! it pulls loads the machine, which the timed tests of `agents.rs` would feel.

mod support;

use std::time::Instant;

use clawdock_core::agents::CreateRequest;
use clawdock_core::events::Event;
use clawdock_core::store::AgentStatus;
use clawdock_core::Clawdock;
use support::{podman_out, Home, IMAGE};

/// Removes an image when dropped, even when the test failed half-way.
struct ImageGone(String);

impl Drop for ImageGone {
    fn drop(&mut self) {
        let _ = std::process::Command::new("podman")
            .args(["rmi", "--force", &self.0])
            .output();
    }
}

/// Issue 14, item 5: a create that pulls its image showed phases, never bytes,
/// because Podman draws its counters only on a terminal. No registry is reachable
/// here, so `podman pull NAME` is answered from an OCI archive of a local image
/// (two layers of random bytes on the stand-in gateway), which real Podman copies
/// blob by blob with the same bars.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_that_pulls_its_image_shows_the_bytes_of_every_blob() {
    use std::os::unix::fs::PermissionsExt;
    support::ensure_test_images();
    let image = format!("localhost/clawdock-test-pull-{}:latest", std::process::id());
    let _gone = ImageGone(image.clone());
    let build = tempfile::tempdir().expect("tmp");
    let layers: [(&str, usize); 2] = [("a.bin", 24_000_000), ("b.bin", 12_000_000)];
    let mut containerfile = format!("FROM {IMAGE}\n");
    for (name, size) in layers {
        // Random, so the archive's compressed layers keep their size.
        let mut bytes = Vec::with_capacity(size);
        std::io::Read::read_to_end(
            &mut std::io::Read::take(
                std::fs::File::open("/dev/urandom").expect("urandom"),
                size as u64,
            ),
            &mut bytes,
        )
        .expect("random bytes");
        std::fs::write(build.path().join(name), bytes).expect("layer");
        containerfile.push_str(&format!("COPY {name} /{name}\n"));
    }
    std::fs::write(build.path().join("Containerfile"), containerfile).expect("file");
    podman_out(&[
        "build",
        "--quiet",
        "-t",
        &image,
        &build.path().display().to_string(),
    ]);
    let archive = build.path().join("image.tar");
    podman_out(&[
        "save",
        "--format",
        "oci-archive",
        "-o",
        &archive.display().to_string(),
        &image,
    ]);
    podman_out(&["rmi", &image]);

    let home = Home::new();
    let wrapper = home.path().join("podman-from-archive");
    let real = support::real_podman();
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nif [ \"$1\" = pull ] && [ \"$2\" = '{image}' ]; then exec '{real}' pull 'oci-archive:{archive}'; fi\nexec '{real}' \"$@\"\n",
            real = real.bin().expect("podman").display(),
            archive = archive.display(),
        ),
    )
    .expect("wrapper");
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut settings = home.native(&image);
    settings.podman = clawdock_core::podman::Podman::new(Some(wrapper));
    let core = Clawdock::start(settings).await.expect("core");
    let mut events = core.subscribe();
    let agents = core.agents();
    let started = Instant::now();
    let agent = agents
        .create_and_wait(CreateRequest {
            name: "pulled".into(),
            ..CreateRequest::default()
        })
        .await
        .expect("create");
    let took = started.elapsed();
    assert_eq!(agent.status, AgentStatus::Running);

    let mut progress = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let Event::PullProgress {
            id,
            line,
            done_bytes,
            total_bytes,
            ..
        } = event
        {
            assert_eq!(id, agent.id);
            progress.push((line, done_bytes, total_bytes));
        }
    }
    eprintln!("{} pull events in {took:?}: {progress:#?}", progress.len());
    let counted: Vec<(u64, u64)> = progress
        .iter()
        .filter_map(|(_, done, total)| done.zip(*total))
        .collect();
    let &(done, total) = counted.last().expect("byte counters arrived");
    assert_eq!(done, total, "the last word is all of it");
    // Both random layers (the base layer is already here: skipped, no size) and the
    // config, as Podman prints them: to a tenth of a MiB ("22.9MiB").
    assert!(
        (35_800_000..36_200_000).contains(&total),
        "the sum of both blobs: {total}"
    );
    assert!(
        counted
            .windows(2)
            .all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1),
        "a sum never goes back: {counted:?}"
    );
    let (log, _) = agents.follow_logs(agent.id).expect("log");
    let copying: Vec<&String> = log.iter().filter(|l| l.contains("Copying ")).collect();
    for line in &copying {
        let text = line.split_once("] ").map_or(line.as_str(), |(_, t)| t);
        assert_eq!(
            copying.iter().filter(|l| l.ends_with(text)).count(),
            1,
            "a redrawn line is logged once: {copying:#?}"
        );
    }
    assert!(
        copying.iter().any(|l| l.contains("done")),
        "blobs done are logged: {copying:#?}"
    );
    podman_out(&["image", "exists", &image]);
    agents.delete(agent.id).await.expect("delete");
    core.shutdown().await;
}
