//! Image names in the tests: tagged, untagged and derived one at a time, across
//! test processes, because Podman 4.3 loses overlapping edits of its image store.
//! Shared by the core's tests and the binary's (`#[path]`).

/// Holds the turn to edit image names. Podman 4.3 loses an edit of the image store
/// made while another process edits it (measured: four shells tagging and untagging
/// one image, 15 times each, lost 3 tags and 1 untag), and the tests of one binary run
/// side by side, so every name edit of the tests takes this lock (a file, for other
/// test processes too) and checks its result.
fn image_names_turn() -> std::fs::File {
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(std::env::temp_dir().join("clawdock-test-image-names.lock"))
        .expect("image names lock file");
    lock.lock().expect("image names lock");
    lock
}

pub fn image_id(image: &str) -> Option<String> {
    let out = std::process::Command::new("podman")
        .args(["image", "inspect", "--format", "{{.Id}}", image])
        .output()
        .expect("podman");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Points the name `name` at the image `source`, and checks that it does.
pub fn tag_image(source: &str, name: &str) {
    let _turn = image_names_turn();
    let wanted = image_id(source).unwrap_or_else(|| panic!("{source}: no such image"));
    for _ in 0..3 {
        podman_out(&["tag", source, name]);
        if image_id(name).as_deref() == Some(wanted.as_str()) {
            return;
        }
    }
    panic!("{name} does not point at {source} after three tags");
}

/// Takes the name `name` off whichever image has it, if any.
pub fn untag_image(name: &str) {
    let _turn = image_names_turn();
    for _ in 0..3 {
        let _ = std::process::Command::new("podman")
            .args(["untag", name, name])
            .output();
        if image_id(name).is_none() {
            return;
        }
    }
    panic!("{name} is still there after three untags");
}

/// `base` with one Dockerfile `change` applied, as `name`, made once.
pub fn derive_image(base: &str, name: &str, change: &str) {
    let _turn = image_names_turn();
    for _ in 0..3 {
        if image_id(name).is_some() {
            return;
        }
        let tmp = format!("clawdock-image-build-{}", std::process::id());
        podman_out(&["create", "--name", &tmp, base]);
        podman_out(&["commit", "--quiet", "--change", change, &tmp, name]);
        podman_out(&["rm", "-f", &tmp]);
    }
    panic!("{name} is missing after three commits");
}

/// Runs real podman, asserting it succeeded; its stdout, trimmed.
pub fn podman_out(args: &[&str]) -> String {
    let out = std::process::Command::new("podman")
        .args(args)
        .output()
        .expect("podman");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
