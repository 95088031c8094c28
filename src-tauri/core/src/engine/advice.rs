//! What a person can do about a failed podman call: the common causes (no network
//! or DNS, a registry that refuses or rate-limits, an image that does not exist, a
//! full disk, permission denied, a taken port, no memory) recognised in podman's
//! own words and said in one sentence with a next step. The podman text itself
//! stays with the error as its details (the log and the window's "Details").

use crate::engine::PodmanError;

/// One sentence with a next step for what `err` says, when it is a cause this knows.
pub fn for_podman(err: &PodmanError) -> Option<String> {
    for_text(err.stderr())
}

/// `for_podman` on podman's stderr text.
pub fn for_text(stderr: &str) -> Option<String> {
    let text = stderr.to_ascii_lowercase();
    let has = |needles: &[&str]| needles.iter().any(|n| text.contains(n));
    let registry = registry_of(stderr);
    let from = registry
        .as_deref()
        .map_or_else(|| "the image registry".to_string(), str::to_string);
    if has(&["no space left on device"]) {
        return Some(
            "The disk is full: Podman could not write what it needs. Free some space \
             (`podman image prune` removes unused images), then try again."
                .into(),
        );
    }
    if has(&["toomanyrequests", "too many requests", "rate limit"]) {
        return Some(format!(
            "{from} refused for now: too many downloads. Wait a few minutes, then try again."
        ));
    }
    if has(&["manifest unknown", "name unknown", "not found: manifest"]) {
        return Some(format!(
            "{from} has no such image. Check the image name (CLAWDOCK_AGENT_IMAGE), then try again."
        ));
    }
    if has(&[
        "unauthorized",
        "authentication required",
        "requested access to the resource is denied",
        "denied:",
    ]) {
        return Some(format!(
            "{from} refused to hand out the image: it may be private or misspelt. Check the \
             image name, or sign in with `podman login {}`, then try again.",
            registry.as_deref().unwrap_or("<registry>")
        ));
    }
    if has(&[
        "no such host",
        "network is unreachable",
        "i/o timeout",
        "tls handshake timeout",
        "temporary failure in name resolution",
        "server misbehaving",
    ]) || (registry.is_some() && has(&["connection refused", "connection reset"]))
    {
        return Some(format!(
            "Clawdock could not reach {from}. Check your internet connection (and any proxy \
             or VPN), then try again."
        ));
    }
    if has(&["address already in use", "port is already allocated"]) {
        return Some(
            "The agent's port is taken by another program. Start the agent again: Clawdock \
             moves the agent to a free port."
                .into(),
        );
    }
    if has(&["cannot allocate memory", "out of memory"]) {
        return Some(
            "Podman ran out of memory. Stop an agent (or give the Podman machine more \
             memory), then try again."
                .into(),
        );
    }
    if has(&["permission denied", "operation not permitted"]) {
        return Some(
            "Podman was refused access to a file or device it needs (permission denied). \
             Check that the agent's folder belongs to you, then try again."
                .into(),
        );
    }
    None
}

/// The registry host podman was talking to: the host in `pinging container
/// registry HOST:`, else in `docker://HOST/...`.
fn registry_of(stderr: &str) -> Option<String> {
    if let Some(rest) = stderr.split("container registry ").nth(1) {
        let host: String = rest
            .chars()
            .take_while(|c| !matches!(c, ':' | ' ' | '"' | '\n'))
            .collect();
        if !host.is_empty() {
            return Some(host);
        }
    }
    let rest = stderr.split("docker://").nth(1)?;
    let host = rest.split('/').next()?;
    (host.contains('.') || host.contains(':') || host == "localhost").then(|| host.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each row: podman's words (as measured here or as podman prints them) and a
    /// piece of the sentence the user gets.
    #[test]
    fn common_causes_get_a_sentence_with_a_next_step() {
        let rows = [
            (
                r#"Error: initializing source docker://ghcr.io/openclaw/openclaw:x: pinging container registry ghcr.io: Get "https://ghcr.io/v2/": dial tcp: lookup ghcr.io on 10.255.255.53:53: no such host"#,
                "Clawdock could not reach ghcr.io. Check your internet connection",
            ),
            (
                r#"Error: initializing source docker://localhost/x:1: pinging container registry localhost: Get "https://localhost/v2/": dial tcp 127.0.0.1:443: connect: connection refused"#,
                "could not reach localhost",
            ),
            (
                "Error: initializing source docker://docker.io/library/a:1: reading manifest 1 in docker.io/library/a: toomanyrequests: You have reached your pull rate limit.",
                "docker.io refused for now: too many downloads",
            ),
            (
                "Error: initializing source docker://ghcr.io/openclaw/nope:1: reading manifest 1 in ghcr.io/openclaw/nope: manifest unknown",
                "ghcr.io has no such image",
            ),
            (
                "Error: initializing source docker://ghcr.io/private/x:1: reading manifest 1 in ghcr.io/private/x: unauthorized: authentication required",
                "sign in with `podman login ghcr.io`",
            ),
            (
                "Error: writing blob: adding layer with blob \"sha256:1\": processing tar file(write /usr/lib/x: no space left on device): exit status 1",
                "The disk is full",
            ),
            (
                "Error: rootlessport listen tcp 127.0.0.1:18789: bind: address already in use",
                "port is taken by another program",
            ),
            (
                "Error: crun: fork: Cannot allocate memory: OCI runtime error",
                "ran out of memory",
            ),
            (
                "Error: open /home/u/.local/share/clawdock/agents/x/config: permission denied",
                "permission denied",
            ),
        ];
        for (stderr, wanted) in rows {
            let said = for_text(stderr).unwrap_or_else(|| panic!("no advice for {stderr}"));
            assert!(said.contains(wanted), "{stderr}\n-> {said}");
            assert!(
                !said.contains("dial tcp"),
                "no podman words in the sentence: {said}"
            );
        }
    }

    #[test]
    fn unknown_failures_keep_podman_s_own_words() {
        assert_eq!(for_text("Error: something new went wrong"), None);
        assert_eq!(for_text(""), None);
    }
}
