//! Reading a pull's answer: Docker's progress messages (bytes per blob) or
//! libpod's lines, and the last word that says the image arrived.

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;

use crate::progress::PullReport;

/// True for an image name without a registry ("openclaw", "library/x:1"), which
/// Podman resolves by the user's registries.conf. A transport ("docker://",
/// "oci-archive:") counts as a registry.
pub(super) fn is_short_name(image: &str) -> bool {
    match image.split_once('/') {
        Some((first, _)) => !(first.contains(['.', ':']) || first == "localhost"),
        None => true,
    }
}

/// How long a pull may take: images are large and links slow.
pub(super) const PULL_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// One line of a pull's answer: Docker's progress messages (`status`, `id`,
/// `progressDetail`) or libpod's (`stream`, `images`); `error` in both.
#[derive(Deserialize, Default, Debug)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct PullMessage {
    status: String,
    id: String,
    progress_detail: ProgressDetail,
    stream: String,
    images: Vec<String>,
    pub(super) error: String,
}

#[derive(Deserialize, Default, Debug)]
#[serde(default)]
struct ProgressDetail {
    current: u64,
    total: u64,
}

/// What a pull's answer said so far.
#[derive(Default)]
pub(super) struct PullReading {
    /// The blobs named so far, and whether each is done. Docker's last word, the
    /// image pulled, is a "Download complete" of the image's ID, which is also its
    /// config blob's: so a "complete" of a blob not in copy is the last word.
    blobs: HashMap<String, bool>,
    pub(super) pulled: bool,
}

impl PullReading {
    pub(super) fn read(&mut self, message: PullMessage, on_report: &impl Fn(PullReport)) {
        use crate::progress::CopyState;
        if !message.stream.is_empty() {
            for line in message.stream.lines().filter(|l| !l.trim().is_empty()) {
                on_report(PullReport::Line(line.to_string()));
            }
        }
        if !message.images.is_empty() {
            self.pulled = true;
        }
        let id = message.id.as_str();
        let (state, skipped) = match message.status.as_str() {
            "" => return,
            "Pulling fs layer" => (CopyState::Named, false),
            "Downloading" => match message.progress_detail {
                ProgressDetail { current, total } if total > 0 => (
                    CopyState::Counting {
                        done: current.min(total),
                        total,
                    },
                    false,
                ),
                _ => (CopyState::Named, false),
            },
            "Already exists" => (CopyState::Finished, true),
            "Download complete" | "Pull complete" if self.blobs.get(id) != Some(&false) => {
                self.pulled = true;
                return;
            }
            "Download complete" | "Pull complete" => (CopyState::Finished, false),
            other => {
                on_report(PullReport::Line(other.to_string()));
                return;
            }
        };
        self.blobs
            .insert(id.to_string(), state == CopyState::Finished);
        on_report(PullReport::blob(id, state, skipped));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Podman 4.3.1's Docker endpoint said of a pull of two new layers on a
    /// base layer it had (the `progress` bars left out).
    const DOCKER_PULL: &[&str] = &[
        r#"{"status":"Already exists","progressDetail":{},"id":"2c240430122d"}"#,
        r#"{"status":"Pulling fs layer","progressDetail":{},"id":"9c8b129f97cc"}"#,
        r#"{"status":"Pulling fs layer","progressDetail":{},"id":"4eebd4eb00d3"}"#,
        r#"{"status":"Downloading","progressDetail":{"current":12032768,"total":24003280},"id":"4eebd4eb00d3"}"#,
        r#"{"status":"Downloading","progressDetail":{"current":12001718,"total":12001718},"id":"9c8b129f97cc"}"#,
        r#"{"status":"Download complete","progressDetail":{},"id":"9c8b129f97cc"}"#,
        r#"{"status":"Downloading","progressDetail":{"current":24003280,"total":24003280},"id":"4eebd4eb00d3"}"#,
        r#"{"status":"Download complete","progressDetail":{},"id":"4eebd4eb00d3"}"#,
        r#"{"status":"Pulling fs layer","progressDetail":{},"id":"7a420f775501"}"#,
        r#"{"status":"Download complete","progressDetail":{},"id":"7a420f775501"}"#,
        r#"{"status":"Download complete","progressDetail":{},"id":"7a420f775501"}"#,
    ];

    fn read_pull(lines: &[&str]) -> (Vec<PullReport>, bool) {
        let reports = std::sync::Mutex::new(Vec::new());
        let mut reading = PullReading::default();
        for line in lines {
            let message: PullMessage = serde_json::from_str(line).expect("json");
            reading.read(message, &|r| reports.lock().expect("reports").push(r));
        }
        (reports.into_inner().expect("reports"), reading.pulled)
    }

    #[test]
    fn a_docker_pull_answer_reads_as_blobs_and_ends_with_the_image() {
        use crate::progress::CopyState;
        let (reports, pulled) = read_pull(DOCKER_PULL);
        assert!(pulled);
        assert_eq!(
            reports.len(),
            DOCKER_PULL.len() - 1,
            "all but the last word are blobs"
        );
        assert_eq!(
            reports[0],
            PullReport::blob("2c240430122d", CopyState::Finished, true)
        );
        assert_eq!(
            reports[3],
            PullReport::blob(
                "4eebd4eb00d3",
                CopyState::Counting {
                    done: 12_032_768,
                    total: 24_003_280
                },
                false
            )
        );
        let PullReport::Blob { line, .. } = &reports[3] else {
            panic!("a blob")
        };
        assert_eq!(line, "Copying blob 4eebd4eb00d3 11.5MiB / 22.9MiB");
    }

    #[test]
    fn an_answer_cut_after_the_config_blob_is_not_a_pull() {
        // The config blob's "complete" has the image's ID too: only its second one
        // is the last word.
        let (_, pulled) = read_pull(&DOCKER_PULL[..DOCKER_PULL.len() - 1]);
        assert!(!pulled);
    }

    #[test]
    fn a_libpod_pull_answer_reads_as_lines_and_ends_with_the_image() {
        let (reports, pulled) = read_pull(&[
            r#"{"stream":"Trying to pull 127.0.0.1:5000/x:latest...\n"}"#,
            r#"{"stream":"Getting image source signatures\nCopying blob sha256:2c24\n"}"#,
            r#"{"images":["7a420f775501aa"],"id":"7a420f775501aa"}"#,
        ]);
        assert!(pulled);
        assert_eq!(
            reports,
            [
                "Trying to pull 127.0.0.1:5000/x:latest...",
                "Getting image source signatures",
                "Copying blob sha256:2c24"
            ]
            .map(|l| PullReport::Line(l.into()))
        );
    }

    #[test]
    fn short_names_are_the_ones_without_a_registry() {
        for short in ["openclaw", "openclaw:latest", "library/busybox", "a/b/c:1"] {
            assert!(is_short_name(short), "{short}");
        }
        for full in [
            "ghcr.io/openclaw/openclaw:latest",
            "localhost/clawdock-test-gateway:latest",
            "registry:5000/x",
            "docker://ghcr.io/openclaw/openclaw",
            "oci-archive:/tmp/x.tar",
        ] {
            assert!(!is_short_name(full), "{full}");
        }
    }
}
