//! Issue 16, moving an agent to Kubernetes: the exported folder renders with
//! `kubectl kustomize`, every resource validates strictly against a current
//! Kubernetes with `kubernetes-validate`, the token and the config are in the
//! Secret and nowhere else, and the Deployment's containers, run on real Podman as
//! Kubernetes would run them (image, command, user, limits, the Secret's values,
//! the volumes at their paths), answer `/healthz`: what Kubernetes would run, this
//! machine ran, the workspace unpacked from its tarball included. Also the API's
//! answers to bad input.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use clawdock_core::agents::CreateRequest;
use clawdock_core::api::ApiServer;
use clawdock_core::container_spec::{CONFIG_DIR, GATEWAY_UID, WORKSPACE_DIR};
use clawdock_core::export::{self, Export};
use clawdock_core::Clawdock;
use serde::Deserialize as _;
use serde_json::{json, Value};
use support::{Home, IMAGE};

/// The Kubernetes version the resources are validated against: the newest that
/// the pinned kubernetes-validate (scripts/install-deps.sh) bundles.
const KUBERNETES_VERSION: &str = "1.37.0";

/// A label on every container this test runs, so a drop guard finds them.
const TEST_LABEL: &str = "io.clawdock.test-export";

fn tool(name: &str) -> Command {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|p| p.join(name).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "`{name}` is not on PATH: scripts/install-deps.sh installs it"
    );
    Command::new(name)
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Removes the containers this test ran, whatever happened.
struct RunContainers {
    label: String,
}

impl Drop for RunContainers {
    fn drop(&mut self) {
        let filter = format!("label={TEST_LABEL}={}", self.label);
        let ids = Command::new("podman")
            .args(["ps", "-aq", "--filter", &filter])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        for id in ids.split_whitespace() {
            let removed = Command::new("podman")
                .args(["rm", "-f", "-t", "0", id])
                .output();
            if !removed.is_ok_and(|o| o.status.success()) {
                eprintln!("could not remove test container {id}");
            }
        }
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for b in text
        .bytes()
        .filter(|b| !b.is_ascii_whitespace() && *b != b'=')
    {
        let v = ALPHABET.iter().position(|a| *a == b).expect("base64") as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// Hands a folder to the container user the pod's `fsGroup` would (rootful: a
/// plain chown; rootless: inside Podman's user namespace).
fn give_to(path: &Path, uid: u64, gid: u64, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    let owner = format!("{uid}:{gid}");
    let path = path.to_str().expect("path");
    if nix_is_root() {
        run_ok(Command::new("chown").args(["-R", &owner, path]));
    } else {
        run_ok(Command::new("podman").args(["unshare", "chown", "-R", &owner, path]));
    }
}

fn nix_is_root() -> bool {
    run_ok(Command::new("id").arg("-u")).trim() == "0"
}

/// Secret name -> key -> value.
type Secrets = BTreeMap<String, BTreeMap<String, Vec<u8>>>;

/// A pod's volumes as host folders, as the kubelet would lay them out.
fn lay_out_volumes(pod: &Value, secrets: &Secrets, root: &Path) -> BTreeMap<String, PathBuf> {
    let security = &pod["securityContext"];
    let uid = security["runAsUser"].as_u64().expect("runAsUser");
    let group = security["fsGroup"].as_u64().expect("fsGroup");
    let mut out = BTreeMap::new();
    for volume in pod["volumes"].as_array().expect("volumes") {
        let name = volume["name"].as_str().expect("name");
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).expect("mkdir");
        if volume.get("persistentVolumeClaim").is_some() {
            give_to(&dir, uid, group, 0o2770);
        } else if volume.get("emptyDir").is_some() {
            give_to(&dir, 0, 0, 0o1777);
        } else if let Some(s) = volume.get("secret") {
            let mode = s["defaultMode"].as_u64().unwrap_or(0o644) as u32;
            let secret = &secrets[s["secretName"].as_str().expect("secretName")];
            for (key, value) in secret {
                std::fs::write(dir.join(key), value).expect("secret file");
            }
            give_to(&dir, 0, group, 0o755);
            for key in secret.keys() {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(dir.join(key), std::fs::Permissions::from_mode(mode))
                    .expect("chmod");
            }
        } else {
            panic!("a volume this test cannot lay out: {volume}");
        }
        out.insert(name.to_string(), dir);
    }
    out
}

/// `podman run` of one of the pod's containers, as Kubernetes would run it: the
/// same image, entrypoint and arguments, user and groups, capabilities, privilege
/// rule, read-only root, memory limit, environment (the Secret's values through
/// podman's environment, never its argument line), mounts and port.
fn podman_run(
    pod: &Value,
    container: &Value,
    volumes: &BTreeMap<String, PathBuf>,
    secrets: &Secrets,
    label: &str,
    publish: Option<u16>,
) -> Command {
    let pod_security = &pod["securityContext"];
    let security = &container["securityContext"];
    let pick = |key: &str| security.get(key).unwrap_or(&pod_security[key]).clone();
    let mut cmd = Command::new("podman");
    cmd.args(["run", "--label", &format!("{TEST_LABEL}={label}")]);
    if publish.is_some() {
        cmd.arg("-d");
    } else {
        cmd.arg("--rm");
    }
    if let Some(hostname) = pod["hostname"].as_str() {
        cmd.args(["--hostname", hostname]);
    }
    let uid = pick("runAsUser").as_u64().expect("a user");
    let gid = pick("runAsGroup").as_u64().expect("a group");
    cmd.args(["--user", &format!("{uid}:{gid}")]);
    if let Some(group) = pod_security["fsGroup"].as_u64() {
        cmd.args(["--group-add", &group.to_string()]);
    }
    let dropped = &security["capabilities"]["drop"];
    if dropped
        .as_array()
        .is_some_and(|d| d.contains(&"ALL".into()))
    {
        cmd.arg("--cap-drop=all");
    }
    if security["allowPrivilegeEscalation"] == false {
        cmd.arg("--security-opt=no-new-privileges");
    }
    if security["readOnlyRootFilesystem"] == true {
        cmd.arg("--read-only");
    }
    let memory = container["resources"]["limits"]["memory"]
        .as_str()
        .expect("a memory limit");
    let mib = memory.strip_suffix("Mi").expect("MiB");
    assert_eq!(
        container["resources"]["requests"]["memory"], memory,
        "request = limit"
    );
    cmd.args([
        "--memory",
        &format!("{mib}m"),
        "--memory-swap",
        &format!("{mib}m"),
    ]);
    for var in container["env"].as_array().into_iter().flatten() {
        let name = var["name"].as_str().expect("env name");
        if let Some(value) = var["value"].as_str() {
            cmd.args(["--env", &format!("{name}={value}")]);
        } else {
            let reference = &var["valueFrom"]["secretKeyRef"];
            let secret = &secrets[reference["name"].as_str().expect("secret name")];
            let value = secret[reference["key"].as_str().expect("key")].clone();
            let value = String::from_utf8(value).expect("utf-8");
            cmd.args(["--env", name]).env(name, value);
        }
    }
    for mount in container["volumeMounts"].as_array().expect("mounts") {
        let host = &volumes[mount["name"].as_str().expect("name")];
        let path = mount["mountPath"].as_str().expect("path");
        let ro = if mount["readOnly"] == true { ":ro" } else { "" };
        cmd.args(["--volume", &format!("{}:{path}{ro}", host.display())]);
    }
    if let Some(port) = publish {
        let target = container["ports"][0]["containerPort"]
            .as_u64()
            .expect("port");
        cmd.args(["--publish", &format!("127.0.0.1:{port}:{target}")]);
    }
    if let Some(command) = container["command"].as_array() {
        cmd.args(["--entrypoint", &Value::Array(command.clone()).to_string()]);
    }
    cmd.arg(container["image"].as_str().expect("image"));
    for arg in container["args"].as_array().into_iter().flatten() {
        cmd.arg(arg.as_str().expect("arg"));
    }
    cmd
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

async fn answers(port: u16, path: &str) -> bool {
    let url = format!("http://127.0.0.1:{port}{path}");
    matches!(reqwest::get(&url).await, Ok(r) if r.status().is_success())
}

/// The real gateway image (tests/images/build-openclaw-image.sh, as in
/// tests/openclaw.rs).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exported_agent_renders_validates_and_runs_as_kubernetes_would_run_it() {
    export_and_run(IMAGE, 384, Duration::from_secs(30)).await;
}

/// The same with the real OpenClaw gateway: it starts from the config the init
/// container copied, under a read-only root with only the volumes the Deployment
/// gives it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_gateway_runs_as_exported() {
    // About 0.75 GB at rest; up to 17 s to health on two idle cores.
    export_and_run(support::gateway_image(), 1536, Duration::from_secs(120)).await;
}

async fn export_and_run(image: &str, memory_mib: u64, health_budget: Duration) {
    let home = Home::new();
    let mut settings = home.native(image);
    settings.health_timeout = health_budget;
    settings.stop_timeout = Duration::from_secs(5);
    let core = Clawdock::start(settings).await.expect("core");
    // Not a Kubernetes name: upper case and `_` are mapped, and said so.
    // Unique per test: container names are global to Podman.
    let name = format!("Move_Me{}_{memory_mib}", std::process::id() % 10_000);
    let provider_key = format!("sk-export-{}", clawdock_core::agents::random_hex(8));
    let agent = core
        .agents()
        .create_and_wait(CreateRequest {
            name: name.clone(),
            memory_mib: Some(memory_mib),
            provider: clawdock_core::agents::definition::ProviderInput {
                provider_type: Some("openai".into()),
                api_key: Some(provider_key.clone()),
                ..Default::default()
            },
            ..CreateRequest::default()
        })
        .await
        .expect("create");
    core.agents().stop(agent.id).await.expect("stop");
    let notes = format!("remember {}", clawdock_core::agents::random_hex(4));
    std::fs::create_dir_all(agent.dir.join("workspace/memory")).expect("mkdir");
    std::fs::write(agent.dir.join("workspace/memory/notes.md"), &notes).expect("notes");
    let store: Value =
        serde_json::from_slice(&std::fs::read(core.settings().agents_file()).expect("store"))
            .expect("json");
    let token = store[0]["token"].as_str().expect("token").to_string();
    let config = std::fs::read_to_string(agent.dir.join("config/openclaw.json")).expect("config");
    assert!(config.contains(&provider_key));

    // The API: the same export as the core's, and bad input refused.
    let server = ApiServer::start(core.clone(), 0).await.expect("api");
    let http = reqwest::Client::new();
    let get = |path: String| {
        http.get(format!("{}{path}", server.url()))
            .bearer_auth(&server.token)
            .send()
    };
    let resp = get(format!(
        "/agents/{}/export?format=kubernetes&namespace=team-a&storage=1Gi&withWorkspace=true",
        agent.id
    ))
    .await
    .expect("export");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["cache-control"],
        "no-store",
        "it holds secrets"
    );
    let answer: Export = resp.json().await.expect("json");
    let options = export::Options {
        namespace: "team-a".into(),
        storage: "1Gi".into(),
        with_workspace: true,
    };
    assert_eq!(
        answer,
        core.agents()
            .export_kubernetes(agent.id, &options)
            .await
            .expect("core export")
    );
    assert_eq!(answer.name, name.to_lowercase().replace('_', "-"));
    assert_eq!(answer.mapped_from.as_deref(), Some(name.as_str()));
    for (query, status) in [
        (
            format!("{}/export?format=kubernetes", uuid::Uuid::new_v4()),
            404,
        ),
        ("not-an-id/export?format=kubernetes".into(), 404),
        (format!("{}/export?format=helm", agent.id), 400),
        (format!("{}/export", agent.id), 400),
        (
            format!("{}/export?format=kubernetes&namespace=Team_A", agent.id),
            400,
        ),
        (
            format!("{}/export?format=kubernetes&storage=lots", agent.id),
            400,
        ),
        (
            format!("{}/export?format=kubernetes&withWorkspace=yes", agent.id),
            400,
        ),
    ] {
        let resp = get(format!("/agents/{query}")).await.expect("request");
        assert_eq!(resp.status(), status, "{query}");
        let body: Value = resp.json().await.expect("json error");
        assert!(body["code"].is_string(), "{query}: {body}");
    }
    let unauthenticated = http
        .get(format!(
            "{}/agents/{}/export?format=kubernetes",
            server.url(),
            agent.id
        ))
        .send()
        .await
        .expect("request");
    assert_eq!(unauthenticated.status(), 401);
    server.close().await;

    // The folder, as the CLI writes it from that answer.
    let out = tempfile::tempdir().expect("tmp");
    let dir = out.path().join("k8s");
    let tarball = export::workspace_tarball(&agent.dir.join("workspace")).expect("tarball");
    export::write_folder(&dir, &answer, Some(&tarball), false).expect("write");
    assert!(matches!(
        export::write_folder(&dir, &answer, Some(&tarball), false),
        Err(export::WriteError::NotEmpty(_))
    ));

    // Rendered by kubectl, offline, and validated strictly.
    let rendered = run_ok(tool("kubectl").arg("kustomize").arg(&dir));
    let rendered_file = out.path().join("rendered.yaml");
    std::fs::write(&rendered_file, &rendered).expect("write");
    let validated = run_ok(
        tool("kubernetes-validate")
            .args(["--strict", "-k", KUBERNETES_VERSION])
            .arg(&rendered_file),
    );
    let resources: Vec<Value> = serde_yaml::Deserializer::from_str(&rendered)
        .map(|doc| {
            let yaml = serde_yaml::Value::deserialize(doc).expect("yaml");
            serde_json::to_value(yaml).expect("json")
        })
        .collect();
    let kinds: Vec<&str> = resources
        .iter()
        .map(|r| r["kind"].as_str().expect("kind"))
        .collect();
    let mut sorted = kinds.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        [
            "Deployment",
            "NetworkPolicy",
            "PersistentVolumeClaim",
            "Secret",
            "Secret",
            "Service"
        ],
        "{kinds:?}"
    );
    assert_eq!(
        validated.matches(" passed for resource ").count(),
        resources.len(),
        "{validated}"
    );
    for r in &resources {
        assert_eq!(r["metadata"]["namespace"], "team-a", "{r}");
    }
    let of = |kind: &str| {
        resources
            .iter()
            .find(|r| r["kind"] == kind)
            .expect(kind)
            .clone()
    };

    // The secrets: in the Secret, and in no other resource.
    let secrets: Secrets = resources
        .iter()
        .filter(|r| r["kind"] == "Secret")
        .map(|r| {
            let data = r["data"].as_object().expect("data").iter();
            let data = data.map(|(k, v)| (k.clone(), base64_decode(v.as_str().expect("b64"))));
            (
                r["metadata"]["name"].as_str().expect("name").to_string(),
                data.collect(),
            )
        })
        .collect();
    let (main_name, secret) = secrets
        .iter()
        .find(|(_, data)| data.contains_key(export::TOKEN_FILE))
        .expect("the gateway's Secret");
    assert!(
        main_name.starts_with(&format!("{}-secrets-", answer.name)),
        "{main_name}"
    );
    assert_eq!(secret.len(), 2, "the token and the config");
    assert_eq!(secret[export::TOKEN_FILE], token.as_bytes());
    assert_eq!(secret[export::CONFIG_FILE], config.as_bytes());
    let (_, workspace) = secrets
        .iter()
        .find(|(_, data)| data.contains_key(export::WORKSPACE_FILE))
        .expect("the workspace's Secret");
    assert_eq!(workspace[export::WORKSPACE_FILE], tarball);
    let secret_resource = resources
        .iter()
        .find(|r| r["metadata"]["name"] == main_name.as_str())
        .expect("secret")
        .clone();
    for r in resources
        .iter()
        .filter(|r| r["metadata"]["name"] != main_name.as_str())
    {
        let text = r.to_string();
        for needle in [token.as_str(), provider_key.as_str(), config.as_str()] {
            assert!(!text.contains(needle), "a secret in {}", r["kind"]);
        }
        for encoded in secret_resource["data"].as_object().expect("data").values() {
            assert!(!text.contains(encoded.as_str().expect("s")));
        }
    }
    let service = of("Service");
    assert_eq!(service["spec"]["type"], "ClusterIP");
    assert_eq!(service["spec"]["ports"][0]["port"], 18789);
    assert_eq!(
        of("PersistentVolumeClaim")["spec"]["resources"]["requests"]["storage"],
        "1Gi"
    );
    let deployment = of("Deployment");
    assert_eq!(deployment["spec"]["replicas"], 1);
    assert_eq!(deployment["spec"]["strategy"]["type"], "Recreate");

    // What Kubernetes would run, run here: the init container, then the gateway.
    let pod = deployment["spec"]["template"]["spec"].clone();
    let gateway = pod["containers"][0].clone();
    // By digest: the one Podman keeps for the image the local container runs.
    let digest = run_ok(Command::new("podman").args([
        "image",
        "inspect",
        "--format",
        "{{index .RepoDigests 0}}",
        image,
    ]));
    let digest = digest.trim();
    assert!(digest.contains("@sha256:"), "{digest}");
    for c in pod["containers"]
        .as_array()
        .into_iter()
        .chain(pod["initContainers"].as_array())
        .flatten()
    {
        assert_eq!(c["image"], digest, "{}", c["name"]);
        // Requests and limits of CPU and ephemeral storage on every container.
        for kind in ["requests", "limits"] {
            for resource in ["cpu", "memory", "ephemeral-storage"] {
                assert!(
                    c["resources"][kind][resource].is_string(),
                    "{} has no {resource} {kind}",
                    c["name"]
                );
            }
        }
    }
    assert!(answer.files["README.md"].contains("pinned by digest"));
    // The emptyDirs are bounded, within the gateway's ephemeral-storage limit.
    let mut empty_dirs = 0;
    for v in pod["volumes"].as_array().expect("volumes") {
        if let Some(e) = v.get("emptyDir") {
            assert!(e["sizeLimit"].is_string(), "{v}");
            empty_dirs += 1;
        }
    }
    assert_eq!(empty_dirs, 2);
    assert_eq!(gateway["resources"]["limits"]["ephemeral-storage"], "2Gi");
    // In: the gateway's port from the namespace's pods. Out: DNS and HTTPS, not
    // the cloud metadata addresses.
    let policy = of("NetworkPolicy")["spec"].clone();
    assert_eq!(
        policy["podSelector"]["matchLabels"],
        deployment["spec"]["selector"]["matchLabels"]
    );
    assert_eq!(policy["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(
        policy["ingress"],
        json!([{"from": [{"podSelector": {}}], "ports": [{"protocol": "TCP", "port": 18789}]}])
    );
    let rules = policy["egress"].as_array().expect("egress");
    let ports: Vec<(String, u64)> = rules
        .iter()
        .flat_map(|r| r["ports"].as_array().cloned().unwrap_or_default())
        .map(|p| {
            (
                p["protocol"].as_str().expect("protocol").to_string(),
                p["port"].as_u64().expect("port"),
            )
        })
        .collect();
    for wanted in [("UDP", 53), ("TCP", 53), ("TCP", 443)] {
        assert!(
            ports.contains(&(wanted.0.to_string(), wanted.1)),
            "{wanted:?} in {ports:?}"
        );
    }
    assert_eq!(ports.len(), 3, "nothing else: {ports:?}");
    let blocks: Vec<Value> = rules
        .iter()
        .flat_map(|r| r["to"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t.get("ipBlock").cloned())
        .collect();
    // DNS only to the cluster's DNS pods.
    assert_eq!(
        rules[0]["to"][0]["podSelector"]["matchLabels"]["k8s-app"],
        "kube-dns"
    );
    assert_eq!(
        blocks,
        [
            json!({"cidr": "0.0.0.0/0", "except": ["169.254.169.254/32"]}),
            json!({"cidr": "::/0", "except": ["fd00:ec2::254/128"]}),
        ]
    );
    assert_eq!(gateway["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(gateway["readinessProbe"]["httpGet"]["path"], "/readyz");
    let run_label = format!("{}-{}", std::process::id(), agent.id.simple());
    let _cleanup = RunContainers {
        label: run_label.clone(),
    };
    let volumes = lay_out_volumes(&pod, &secrets, &out.path().join("volumes"));
    let inits = pod["initContainers"].as_array().expect("init containers");
    assert_eq!(inits.len(), 2, "the config and the workspace");
    for init in inits {
        run_ok(&mut podman_run(
            &pod, init, &volumes, &secrets, &run_label, None,
        ));
    }
    let port = free_port();
    let id = run_ok(&mut podman_run(
        &pod,
        &gateway,
        &volumes,
        &secrets,
        &run_label,
        Some(port),
    ))
    .trim()
    .to_string();
    let healthy = tokio::time::timeout(health_budget, async {
        while !answers(port, "/healthz").await {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(
        healthy.is_ok(),
        "no /healthz within {health_budget:?}: {}",
        run_ok(Command::new("podman").args(["logs", &id]))
    );
    // 1-5 s on an idle machine; a loaded one (parallel suites) takes much longer.
    let ready = tokio::time::timeout(Duration::from_secs(90), async {
        while !answers(port, "/readyz").await {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    assert!(
        ready.is_ok(),
        "no /readyz within 90 s of /healthz: {}",
        run_ok(Command::new("podman").args(["logs", "--tail", "40", &id]))
    );
    // It ran as exported: the config at the gateway's path, the token from the
    // Secret, the user and the limits.
    let mounted = run_ok(Command::new("podman").args([
        "exec",
        &id,
        "cat",
        &format!("{CONFIG_DIR}/openclaw.json"),
    ]));
    // As a value: the real gateway rewrites the file at start, keeping its content.
    let json = |text: &str| serde_json::from_str::<Value>(text).expect("json");
    assert_eq!(json(&mounted), json(&config));
    let unpacked = run_ok(Command::new("podman").args([
        "exec",
        &id,
        "cat",
        &format!("{WORKSPACE_DIR}/memory/notes.md"),
    ]));
    assert_eq!(unpacked, notes, "the workspace came with the tarball");
    let inspected: Value =
        serde_json::from_str(&run_ok(Command::new("podman").args(["inspect", &id])))
            .expect("inspect");
    let c = &inspected[0];
    assert_eq!(c["Config"]["User"], format!("{GATEWAY_UID}:{GATEWAY_UID}"));
    assert!(c["Config"]["Env"]
        .to_string()
        .contains(&format!("OPENCLAW_GATEWAY_TOKEN={token}")));
    assert_eq!(c["HostConfig"]["Memory"], memory_mib * 1024 * 1024);
    assert_eq!(c["HostConfig"]["ReadonlyRootfs"], true);
    assert!(c["HostConfig"]["SecurityOpt"]
        .to_string()
        .contains("no-new-privileges"));
    assert!(c["HostConfig"]["CapDrop"]
        .to_string()
        .to_lowercase()
        .contains("cap_net_raw"));
    let args: Vec<String> = gateway["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("s").to_string())
        .collect();
    assert_eq!(args, clawdock_core::container_spec::gateway_command());
    core.shutdown().await;
}

/// Issue 30, item 5: the NetworkPolicy let out the port of every `baseUrl` in
/// `openclaw.json`, a file the agent writes: a prompt-injected agent chose what its
/// exported policy opens. The ports now come from Clawdock's own record of the
/// provider (the base URL it was given at create or edit), and DNS goes only to
/// the cluster's DNS pods, not anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_network_policy_comes_from_clawdocks_record_not_the_agents_config() {
    let home = Home::new();
    let core = Clawdock::start(home.native(IMAGE)).await.expect("core");
    let name = format!("policy{}", std::process::id() % 10_000);
    let agent = core
        .agents()
        .create_and_wait(CreateRequest {
            name: name.clone(),
            provider: clawdock_core::agents::definition::ProviderInput {
                provider_type: Some("company-llm".into()),
                base_url: Some("https://llm.example.com:8443/v1".into()),
                model_id: Some("m1".into()),
                ..Default::default()
            },
            ..CreateRequest::default()
        })
        .await
        .expect("create");
    // The agent rewrites its config: its provider's port, and one of its own.
    let path = agent.dir.join("config/openclaw.json");
    let mut config: Value =
        serde_json::from_slice(&std::fs::read(&path).expect("config")).expect("json");
    config["models"]["providers"]["company-llm"]["baseUrl"] =
        json!("https://llm.example.com:6666/v1");
    config["models"]["providers"]["exfil"] = json!({"baseUrl": "http://attacker.example:2222/v1"});
    std::fs::write(&path, serde_json::to_vec(&config).expect("json")).expect("write");

    let export = core
        .agents()
        .export_kubernetes(agent.id, &export::Options::default())
        .await
        .expect("export");
    let policy: Value =
        serde_yaml::from_str(&export.files["networkpolicy.yaml"]).expect("policy yaml");
    let rules = policy["spec"]["egress"].as_array().expect("egress").clone();
    let mut tcp: Vec<u64> = Vec::new();
    let mut dns = Vec::new();
    for rule in &rules {
        for port in rule["ports"].as_array().expect("ports") {
            let number = port["port"].as_u64().expect("port");
            if number == 53 {
                dns.push(rule.clone());
            } else {
                tcp.push(number);
            }
        }
    }
    tcp.sort_unstable();
    assert_eq!(
        tcp,
        [443, 8443],
        "the recorded provider's port only: {rules:?}"
    );
    assert!(!dns.is_empty(), "DNS is let out: {rules:?}");
    for rule in dns {
        assert_eq!(
            rule["to"],
            json!([{
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
            }]),
            "DNS only to the cluster's DNS pods: {rule}"
        );
    }
    assert!(
        export.files["README.md"].contains("8443") && !export.files["README.md"].contains("6666"),
        "the README says the same"
    );
    core.shutdown().await;
}
