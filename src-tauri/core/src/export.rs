//! Moving an agent to Kubernetes: renders, from what the local container runs, a
//! Kustomize folder (a Deployment, a ClusterIP Service, a PersistentVolumeClaim, a
//! NetworkPolicy, a Secret generated from the gateway token and `openclaw.json`,
//! and a README), and
//! writes it to disk. Rendering is pure; the image, command, user, port, mount
//! paths, health checks and limits come from `containers`, so a change to the
//! local container changes the export too.
//!
//! The YAML is written by a small emitter over `serde_json` values (every string
//! double-quoted), not by a YAML library: the output is verified by
//! `kubectl kustomize` and `kubernetes-validate` in `tests/export.rs`.

use std::collections::BTreeMap;
use std::io;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::container_spec::{
    self, Limits, CACHE_DIR, CONFIG_DIR, GATEWAY_PORT, GATEWAY_UID, HEALTH_INTERVAL_SECS,
    HEALTH_PATH, HEALTH_RETRIES, HEALTH_TIMEOUT_SECS, READY_PATH, TOKEN_VAR, WORKSPACE_DIR,
};
use crate::store::{self, AgentRecord};

pub const DEFAULT_NAMESPACE: &str = "openclaw";
pub const DEFAULT_STORAGE: &str = "5Gi";

/// The file holding the gateway token (no newline: the Secret takes it verbatim).
pub const TOKEN_FILE: &str = "gateway-token";
/// The file holding the agent's `openclaw.json` (with the provider key).
pub const CONFIG_FILE: &str = "openclaw.json";
/// The files the Secret is made from: written 0600, and in no other manifest.
pub const SECRET_FILES: [&str; 2] = [TOKEN_FILE, CONFIG_FILE];
/// Where the init container reads the Secret's files.
pub const SECRET_MOUNT: &str = "/etc/openclaw-secret";

/// The agent's workspace as a tarball (`--with-workspace`), in a Secret of its own.
pub const WORKSPACE_FILE: &str = "workspace.tar.gz";
/// Where the init container reads the workspace tarball.
pub const WORKSPACE_MOUNT: &str = "/etc/openclaw-workspace";
/// The largest workspace tarball: a Secret holds at most 1 MiB, base64 takes a third
/// more.
pub const MAX_WORKSPACE_BYTES: usize = 700 * 1024;
/// Left in the state folder once the tarball was unpacked: later starts keep what
/// the agent changed since.
const WORKSPACE_MARK: &str = ".clawdock-workspace-imported";

/// The container that copies `openclaw.json` from the Secret into the state volume.
pub const INIT_CONTAINER: &str = "config";
/// The container that unpacks the workspace tarball at the first start.
pub const WORKSPACE_CONTAINER: &str = "workspace";
/// The gateway's container.
pub const CONTAINER: &str = "gateway";

/// The longest Kubernetes name of an agent (an RFC 1123 DNS label).
const MAX_LABEL: usize = 63;

/// Choices of an export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub namespace: String,
    /// The state volume's size, a Kubernetes quantity (`5Gi`).
    pub storage: String,
    /// Also a Secret from [`WORKSPACE_FILE`] and an init container that unpacks it
    /// at the first start. The tarball itself is not in [`Export::files`] (it is
    /// binary): [`workspace_tarball`] makes it, [`write_folder`] writes it.
    pub with_workspace: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            namespace: DEFAULT_NAMESPACE.into(),
            storage: DEFAULT_STORAGE.into(),
            with_workspace: false,
        }
    }
}

/// What an export is made from: the agent as it runs here.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    pub record: &'a AgentRecord,
    /// `openclaw.json` as it is on disk.
    pub config: &'a str,
    pub limits: Limits,
    pub time_zone: &'a str,
    /// The image the local container runs, by digest
    /// (`registry/name@sha256:...`, one of Podman's `RepoDigests`); `None` when
    /// the image has none (built here and never pushed): the tag is used then, and
    /// the README says so.
    pub image_digest: Option<&'a str>,
}

/// CPU of the gateway: requested (measured idle: 1 % of a core) and at most.
pub const GATEWAY_CPU_REQUEST: &str = "250m";
pub const GATEWAY_CPU_LIMIT: &str = "2";
/// CPU of an init container (a copy, an unpack).
pub const INIT_CPU: &str = "500m";
/// `sizeLimit` of the gateway's cache and `/tmp` emptyDirs.
pub const CACHE_SIZE_LIMIT: &str = "1Gi";
pub const TMP_SIZE_LIMIT: &str = "512Mi";
/// Ephemeral storage of the gateway: the limit covers both emptyDirs (1.5 GiB)
/// and its log.
pub const GATEWAY_EPHEMERAL_REQUEST: &str = "256Mi";
pub const GATEWAY_EPHEMERAL_LIMIT: &str = "2Gi";
/// Ephemeral storage of an init container (it writes only to volumes).
pub const INIT_EPHEMERAL: &str = "64Mi";
/// The cloud metadata addresses no agent may reach (AWS, GCP, Azure and others
/// answer on the first; AWS's IPv6 one on the second).
pub const METADATA_ADDRESSES: [&str; 2] = ["169.254.169.254/32", "fd00:ec2::254/128"];

/// A rendered export: the same for the API's answer and the CLI's folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Export {
    /// The name of the agent's resources in Kubernetes.
    pub name: String,
    /// The agent's own name, when it is not a valid Kubernetes name and `name` is
    /// its mapping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapped_from: Option<String>,
    pub namespace: String,
    /// File name to content. Holds the secret files ([`SECRET_FILES`]).
    pub files: BTreeMap<String, String>,
}

/// An option that cannot be exported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidOption {
    #[error(
        "`{0}` is not a valid namespace: lower-case letters, digits and `-`, starting and \
         ending with a letter or digit, at most 63 characters."
    )]
    Namespace(String),
    #[error("`{0}` is not a storage size Kubernetes reads, such as 5Gi, 500Mi or 10G.")]
    Storage(String),
}

/// Why an export folder could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{} exists and is not empty; choose another folder or pass --force to write into it.", .0.display())]
    NotEmpty(PathBuf),
    #[error("{} exists and is not a folder.", .0.display())]
    NotAFolder(PathBuf),
    #[error("the export names a file `{0}` that is not a plain file name")]
    BadFileName(String),
    #[error("could not write {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    /// Packing stopped as soon as the tarball passed the bound: the size beyond it
    /// is not known.
    #[error(
        "the workspace packs to more than a Secret holds ({max} KiB): export without \
         --with-workspace and copy it with `kubectl cp` (the folder's README says how)",
        max = MAX_WORKSPACE_BYTES / 1024
    )]
    WorkspaceTooLarge,
    #[error("could not pack the workspace {}: {why}", .path.display())]
    Pack { path: PathBuf, why: String },
}

/// An agent's name as a Kubernetes name (an RFC 1123 DNS label): lower case, every
/// character but letters and digits turned into `-`, no `-` at either end.
pub fn kubernetes_name(agent_name: &str) -> String {
    let mapped: String = agent_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(MAX_LABEL)
        .collect();
    let trimmed = mapped.trim_matches('-');
    if trimmed.is_empty() {
        "agent".into()
    } else {
        trimmed.into()
    }
}

/// Whether `s` is an RFC 1123 DNS label (what a namespace and a Service name are).
pub fn is_dns_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_LABEL
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first() != Some(&b'-')
        && bytes.last() != Some(&b'-')
}

/// Whether `s` is a storage size as Kubernetes writes quantities: a positive
/// decimal number, then a binary (`Ki`..`Ei`) or decimal (`k`, `M`..`E`) suffix,
/// or none (bytes).
pub fn is_storage_quantity(s: &str) -> bool {
    const SUFFIXES: [&str; 13] = [
        "", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "k", "M", "G", "T", "P", "E",
    ];
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    s.len() <= 24
        && number.matches('.').count() <= 1
        && !number.starts_with('.')
        && !number.ends_with('.')
        && number.parse::<f64>().is_ok_and(|n| n > 0.0)
        && SUFFIXES.contains(&suffix)
}

/// Renders the Kustomize folder of an agent.
pub fn render(source: Source<'_>, options: &Options) -> Result<Export, InvalidOption> {
    if !is_dns_label(&options.namespace) {
        return Err(InvalidOption::Namespace(options.namespace.clone()));
    }
    if !is_storage_quantity(&options.storage) {
        return Err(InvalidOption::Storage(options.storage.clone()));
    }
    let record = source.record;
    let name = kubernetes_name(&record.name);
    let names = Names::of(&name);
    let mut files = BTreeMap::new();
    let header = format!(
        "# Written by Clawdock for the agent `{}`. See README.md.\n",
        record.name.escape_debug()
    );
    let mut manifest = |file: &str, value: Value| {
        files.insert(file.to_string(), format!("{header}{}", to_yaml(&value)));
    };
    manifest("kustomization.yaml", kustomization(&names, options));
    manifest("persistentvolumeclaim.yaml", claim(&names, options));
    manifest("deployment.yaml", deployment(&names, source, options));
    manifest("service.yaml", service(&names));
    manifest(
        "networkpolicy.yaml",
        network_policy(&names, &egress_ports(record)),
    );
    files.insert(TOKEN_FILE.into(), record.token.clone());
    files.insert(CONFIG_FILE.into(), source.config.to_string());
    files.insert(
        ".gitignore".into(),
        format!(
            "# Secrets: the gateway token, the provider key, the agent's files.\n\
             {TOKEN_FILE}\n{CONFIG_FILE}\n{WORKSPACE_FILE}\n"
        ),
    );
    files.insert(
        "README.md".into(),
        readme(&names, source, options, name != record.name),
    );
    Ok(Export {
        mapped_from: (name != record.name).then(|| record.name.clone()),
        name,
        namespace: options.namespace.clone(),
        files,
    })
}

/// The names of one agent's resources.
struct Names {
    app: String,
    secret: String,
    workspace: String,
    claim: String,
    labels: Value,
    selector: Value,
}

impl Names {
    fn of(name: &str) -> Self {
        let selector = json!({
            "app.kubernetes.io/name": "openclaw",
            "app.kubernetes.io/instance": name,
        });
        let mut labels = selector.clone();
        labels["app.kubernetes.io/managed-by"] = json!("clawdock");
        Self {
            app: name.to_string(),
            secret: format!("{name}-secrets"),
            workspace: format!("{name}-workspace"),
            claim: format!("{name}-state"),
            labels,
            selector,
        }
    }

    fn metadata(&self, name: &str) -> Value {
        json!({ "name": name, "labels": self.labels })
    }
}

fn kustomization(names: &Names, options: &Options) -> Value {
    let mut generators = vec![json!({
        "name": names.secret,
        "files": SECRET_FILES,
        "options": { "labels": names.labels },
    })];
    if options.with_workspace {
        generators.push(json!({
            "name": names.workspace,
            "files": [WORKSPACE_FILE],
            "options": { "labels": names.labels },
        }));
    }
    json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": options.namespace,
        "resources": [
            "persistentvolumeclaim.yaml",
            "deployment.yaml",
            "service.yaml",
            "networkpolicy.yaml",
        ],
        // The only place the secrets go: the generated Secret's name carries a hash
        // of its content, so a changed token or config rolls the Deployment.
        "secretGenerator": generators,
    })
}

fn claim(names: &Names, options: &Options) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": names.metadata(&names.claim),
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": { "requests": { "storage": options.storage } },
        },
    })
}

fn service(names: &Names) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": names.metadata(&names.app),
        "spec": {
            "type": "ClusterIP",
            "selector": names.selector,
            "ports": [{
                "name": CONTAINER,
                "port": GATEWAY_PORT,
                "targetPort": CONTAINER,
                "protocol": "TCP",
            }],
        },
    })
}

/// The TCP ports the gateway may reach beyond the cluster: 443, and the port of
/// the custom provider's base URL as Clawdock recorded it. Never from
/// `openclaw.json`: the agent writes that file, and would choose what its policy
/// opens.
pub fn egress_ports(record: &AgentRecord) -> Vec<u16> {
    let mut ports = vec![443];
    ports.extend(record.provider_base_url.as_deref().and_then(url_port));
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// The cluster's DNS, the only DNS the gateway may ask: the pods of `kube-system`
/// labelled `k8s-app: kube-dns` (CoreDNS keeps the label in kubeadm, kind, k3s,
/// EKS, GKE and AKS).
pub const CLUSTER_DNS: (&str, &str) = ("kube-system", "kube-dns");

/// The port a URL connects to: explicit, or its scheme's.
fn url_port(url: &str) -> Option<u16> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit('@').next()?;
    let explicit = match host_port.rsplit_once(':') {
        // `[::1]` alone has a `:` inside the brackets.
        Some((host, port)) if !port.contains(']') && !host.is_empty() => Some(port.parse().ok()?),
        _ => None,
    };
    explicit.or(match scheme.to_ascii_lowercase().as_str() {
        "https" => Some(443),
        "http" => Some(80),
        _ => None,
    })
}

/// Ingress to the gateway's port from pods of the namespace only; egress to the
/// cluster's DNS pods, and to `ports` anywhere but the cloud metadata addresses.
fn network_policy(names: &Names, ports: &[u16]) -> Value {
    let tcp: Vec<Value> = ports
        .iter()
        .map(|p| json!({ "protocol": "TCP", "port": p }))
        .collect();
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": names.metadata(&names.app),
        "spec": {
            "podSelector": { "matchLabels": names.selector },
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{
                "from": [{ "podSelector": {} }],
                "ports": [{ "protocol": "TCP", "port": GATEWAY_PORT }],
            }],
            "egress": [
                {
                    "to": [{
                        "namespaceSelector": {
                            "matchLabels": { "kubernetes.io/metadata.name": CLUSTER_DNS.0 },
                        },
                        "podSelector": { "matchLabels": { "k8s-app": CLUSTER_DNS.1 } },
                    }],
                    "ports": [
                        { "protocol": "UDP", "port": 53 },
                        { "protocol": "TCP", "port": 53 },
                    ],
                },
                {
                    "to": [
                        { "ipBlock": { "cidr": "0.0.0.0/0", "except": [METADATA_ADDRESSES[0]] } },
                        { "ipBlock": { "cidr": "::/0", "except": [METADATA_ADDRESSES[1]] } },
                    ],
                    "ports": tcp,
                },
            ],
        },
    })
}

/// The local container's sandbox, said in Kubernetes' words: the gateway's uid,
/// no capabilities, no privilege gain, a read-only root.
fn container_security() -> Value {
    json!({
        "runAsNonRoot": true,
        "runAsUser": GATEWAY_UID,
        "runAsGroup": GATEWAY_UID,
        "allowPrivilegeEscalation": false,
        "capabilities": { "drop": ["ALL"] },
        "readOnlyRootFilesystem": true,
    })
}

fn deployment(names: &Names, source: Source<'_>, options: &Options) -> Value {
    let memory = format!("{}Mi", source.limits.memory_mib);
    let image = source.image_digest.unwrap_or(&source.record.image);
    // Memory request = limit: the scheduler places the agent only where its limit
    // fits.
    // The agent's own CPU limit when it has one (the request never above it).
    let (cpu_request, cpu_limit) = match source.limits.cpus {
        Some(cpus) => {
            let millis = ((cpus * 1000.0).round() as u64).max(1);
            (format!("{}m", millis.min(250)), format!("{millis}m"))
        }
        None => (GATEWAY_CPU_REQUEST.into(), GATEWAY_CPU_LIMIT.into()),
    };
    let resources = json!({
        "requests": {
            "memory": memory,
            "cpu": cpu_request,
            "ephemeral-storage": GATEWAY_EPHEMERAL_REQUEST,
        },
        "limits": {
            "memory": memory,
            "cpu": cpu_limit,
            "ephemeral-storage": GATEWAY_EPHEMERAL_LIMIT,
        },
    });
    let init_resources = json!({
        "requests": { "memory": memory, "cpu": INIT_CPU, "ephemeral-storage": INIT_EPHEMERAL },
        "limits": { "memory": memory, "cpu": INIT_CPU, "ephemeral-storage": INIT_EPHEMERAL },
    });
    let mut env = vec![json!({
        "name": TOKEN_VAR,
        "valueFrom": { "secretKeyRef": { "name": names.secret, "key": TOKEN_FILE } },
    })];
    env.extend(
        container_spec::gateway_env(source.time_zone)
            .into_iter()
            .map(|(key, value)| json!({ "name": key, "value": value })),
    );
    let probe = |path: &str| {
        json!({
            "httpGet": { "path": path, "port": CONTAINER },
            "periodSeconds": HEALTH_INTERVAL_SECS,
            "timeoutSeconds": HEALTH_TIMEOUT_SECS,
            "failureThreshold": HEALTH_RETRIES,
        })
    };
    // The gateway rewrites openclaw.json at start, so it cannot read it from the
    // (read-only) Secret: this copies it into the state volume at every start, the
    // Secret being the source of truth.
    let copy_config = [
        "sh",
        "-c",
        r#"cp "$1/openclaw.json" "$2/openclaw.json" && chmod 600 "$2/openclaw.json" && mkdir -p "$3""#,
        "copy-config",
        SECRET_MOUNT,
        CONFIG_DIR,
        WORKSPACE_DIR,
    ];
    let mut init_containers = vec![json!({
        "name": INIT_CONTAINER,
        "image": image,
        "command": copy_config,
        "securityContext": container_security(),
        "resources": init_resources,
        "volumeMounts": [
            { "name": "state", "mountPath": CONFIG_DIR },
            { "name": "secrets", "mountPath": SECRET_MOUNT, "readOnly": true },
        ],
    })];
    let mut volumes = vec![
        json!({ "name": "state", "persistentVolumeClaim": { "claimName": names.claim } }),
        // 0440: readable by the gateway's group (fsGroup) only.
        json!({ "name": "secrets", "secret": { "secretName": names.secret, "defaultMode": 0o440 } }),
        json!({ "name": "cache", "emptyDir": { "sizeLimit": CACHE_SIZE_LIMIT } }),
        json!({ "name": "tmp", "emptyDir": { "sizeLimit": TMP_SIZE_LIMIT } }),
    ];
    if options.with_workspace {
        // Once: a later start keeps what the agent changed since.
        let unpack = [
            "sh",
            "-c",
            r#"[ -e "$2/$4" ] || { mkdir -p "$3" && tar -xzf "$1/workspace.tar.gz" -C "$3" && touch "$2/$4"; }"#,
            "unpack-workspace",
            WORKSPACE_MOUNT,
            CONFIG_DIR,
            WORKSPACE_DIR,
            WORKSPACE_MARK,
        ];
        init_containers.push(json!({
            "name": WORKSPACE_CONTAINER,
            "image": image,
            "command": unpack,
            "securityContext": container_security(),
            "resources": init_resources,
            "volumeMounts": [
                { "name": "state", "mountPath": CONFIG_DIR },
                { "name": "workspace", "mountPath": WORKSPACE_MOUNT, "readOnly": true },
            ],
        }));
        volumes.push(json!({
            "name": "workspace",
            "secret": { "secretName": names.workspace, "defaultMode": 0o440 },
        }));
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": names.metadata(&names.app),
        "spec": {
            "replicas": 1,
            // One gateway per state folder: the old pod ends before the new one starts.
            "strategy": { "type": "Recreate" },
            "selector": { "matchLabels": names.selector },
            "template": {
                "metadata": { "labels": names.labels },
                "spec": {
                    // The gateway's owner lease records the hostname: a fixed one lets
                    // a new pod start at once after a killed one.
                    "hostname": container_spec::hostname(source.record),
                    // The gateway runs tools an LLM chooses: no cluster credentials,
                    // and no `<SERVICE>_PORT` variables in its environment.
                    "automountServiceAccountToken": false,
                    "enableServiceLinks": false,
                    "securityContext": {
                        "runAsNonRoot": true,
                        "runAsUser": GATEWAY_UID,
                        "runAsGroup": GATEWAY_UID,
                        "fsGroup": GATEWAY_UID,
                        "seccompProfile": { "type": "RuntimeDefault" },
                    },
                    "initContainers": init_containers,
                    "containers": [{
                        "name": CONTAINER,
                        "image": image,
                        // `args`, like the command after the image in `podman create`:
                        // the image's entrypoint, if it has one, stays.
                        "args": container_spec::gateway_command(),
                        "env": env,
                        "ports": [{ "name": CONTAINER, "containerPort": GATEWAY_PORT, "protocol": "TCP" }],
                        "securityContext": container_security(),
                        "resources": resources,
                        // A first start that migrates the config takes up to 17 s on
                        // two cores: five minutes before liveness counts.
                        "startupProbe": {
                            "httpGet": { "path": HEALTH_PATH, "port": CONTAINER },
                            "periodSeconds": 5,
                            "failureThreshold": 60,
                        },
                        "livenessProbe": probe(HEALTH_PATH),
                        "readinessProbe": probe(READY_PATH),
                        "volumeMounts": [
                            // The config folder holds the workspace (WORKSPACE_DIR).
                            { "name": "state", "mountPath": CONFIG_DIR },
                            { "name": "cache", "mountPath": CACHE_DIR },
                            { "name": "tmp", "mountPath": "/tmp" },
                        ],
                    }],
                    "volumes": volumes,
                },
            },
        },
    })
}

fn readme(names: &Names, source: Source<'_>, options: &Options, mapped: bool) -> String {
    let record = source.record;
    let (app, ns, port) = (&names.app, &options.namespace, record.port);
    let mut text = format!(
        "# The agent `{agent}` on Kubernetes\n\n\
         Written by Clawdock: the agent's image, command, sandbox (uid {GATEWAY_UID}, no \
         capabilities, no privilege escalation, read-only root, {mem} MiB of memory as \
         request and limit; CPU {GATEWAY_CPU_REQUEST} requested, {GATEWAY_CPU_LIMIT} at most; \
         ephemeral storage {GATEWAY_EPHEMERAL_REQUEST} requested, {GATEWAY_EPHEMERAL_LIMIT} at \
         most, which covers the `cache` ({CACHE_SIZE_LIMIT}) and `tmp` ({TMP_SIZE_LIMIT}) \
         emptyDirs), its gateway token and its `openclaw.json`.\n\n",
        agent = record.name.escape_debug(),
        mem = source.limits.memory_mib,
    );
    match source.image_digest {
        Some(digest) => text.push_str(&format!(
            "The image is pinned by digest, `{digest}`: the one the agent runs on this \
             computer (tag `{}`). The cluster must be able to pull it from that registry.\n\n",
            record.image
        )),
        None => text.push_str(&format!(
            "**Warning: the image is not pinned.** `{}` has no registry digest on this \
             computer (built or imported here, never pulled from or pushed to a registry), \
             so the manifests name it by its tag, which a registry may move. Push it to a \
             registry the cluster reaches and put `name@sha256:...` in `deployment.yaml` \
             (`podman push --digestfile` tells the digest).\n\n",
            record.image
        )),
    }
    if mapped {
        text.push_str(&format!(
            "`{}` is not a valid Kubernetes name; its resources are named `{app}`.\n\n",
            record.name.escape_debug()
        ));
    }
    text.push_str(&format!("| file | what |\n|---|---|\n\
         | `kustomization.yaml` | namespace `{ns}`, and the Secret `{secret}` generated from the two files below |\n\
         | `{TOKEN_FILE}`, `{CONFIG_FILE}` | **secrets**: the gateway token, and the config with the provider key. Keep this folder private; `.gitignore` lists them |\n\
         | `persistentvolumeclaim.yaml` | `{claim}`, {storage}: the gateway's state folder `{CONFIG_DIR}` with its workspace |\n\
         | `deployment.yaml` | one replica, `Recreate`; an init container copies `{CONFIG_FILE}` from the Secret into the state folder at every start (the gateway rewrites it, so it cannot read it from the read-only Secret) |\n\
         | `service.yaml` | ClusterIP `{app}` on port {GATEWAY_PORT} |\n\
         | `networkpolicy.yaml` | in: port {GATEWAY_PORT} from pods of `{ns}` only; out: DNS (53 UDP/TCP) to the cluster's DNS pods only (`{dns_ns}`, `k8s-app: {dns_app}`), and TCP {egress} to any address except the cloud metadata ones ({metadata}) |\n\n\
         ## Apply\n\n\
         ```sh\n\
         kubectl create namespace {ns}   # once per namespace\n\
         kubectl apply {server_side}-k .   # in this folder; or kubectl apply {server_side}-k <this folder>\n\
         kubectl -n {ns} rollout status deployment/{app}\n\
         ```\n\n\
         Stop the agent in Clawdock first (`clawdock agents stop {agent}`), so two \
         gateways do not answer the same channels.\n\n\
         ## Reach it\n\n\
         ```sh\n\
         kubectl -n {ns} port-forward service/{app} {port}:{GATEWAY_PORT}\n\
         ```\n\n\
         Then the Control UI is at http://127.0.0.1:{port}/ (the config allows that origin) \
         and the OpenAI-style API at http://127.0.0.1:{port}/v1/ with \
         `Authorization: Bearer $(cat {TOKEN_FILE})`.\n\n\
         ## Copy the workspace across\n\n\
         {tarball}\
         The agent's files are in `{workspace}` on this computer. Once the pod runs:\n\n\
         ```sh\n\
         POD=$(kubectl -n {ns} get pod -l app.kubernetes.io/instance={app} -o jsonpath='{{.items[0].metadata.name}}')\n\
         kubectl -n {ns} cp '{workspace}/.' \"$POD:{WORKSPACE_DIR}\" -c {CONTAINER}\n\
         kubectl -n {ns} rollout restart deployment/{app}\n\
         ```\n\n\
         (`kubectl cp` needs `tar` in the image; the OpenClaw image has it.)\n\n\
         ## Changing it\n\n\
         Edit `{CONFIG_FILE}` here and apply again: the Secret gets a new name, and the \
         Deployment starts a new pod with it. Changes made in the Control UI are replaced \
         by this file at the next start. Processes are not bounded per pod in \
         Kubernetes as they are here ({pids} at most): that is the kubelet's `podPidsLimit`.\n\n\
         ## The network policy\n\n\
         It takes effect only where the cluster's network plugin enforces NetworkPolicies \
         (Calico, Cilium and most others; not kindnet or flannel alone). The gateway may \
         reach the ports above only: a provider, a channel or a tool on another port \
         (a model server on 8080, an HTTP proxy on 3128) needs a rule. Add its port to \
         the second `egress` entry of `networkpolicy.yaml`, or, narrower, an entry of \
         its own:\n\n\
         ```yaml\n\
         - to:\n\
         \x20   - ipBlock:\n\
         \x20       cidr: \"10.0.0.0/8\"\n\
         \x20 ports:\n\
         \x20   - protocol: \"TCP\"\n\
         \x20     port: 8080\n\
         ```\n\n\
         To reach the gateway from another namespace (an ingress controller), add a \
         `namespaceSelector` to its `ingress` entry. A cluster whose DNS is not those \
         pods (NodeLocal DNSCache, another label) needs the first `egress` entry \
         changed to match it.\n\n\
         The ports come from Clawdock's own record of the provider, not from \
         `{CONFIG_FILE}`, which the agent can rewrite.\n",
        secret = names.secret,
        claim = names.claim,
        storage = options.storage,
        agent = record.name.escape_debug(),
        workspace = record.dir.join("workspace").display(),
        pids = source.limits.pids,
        dns_ns = CLUSTER_DNS.0,
        dns_app = CLUSTER_DNS.1,
        egress = egress_ports(record)
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        metadata = METADATA_ADDRESSES.join(", "),
        // A Secret larger than 256 KiB does not fit the annotation a client-side
        // apply keeps.
        server_side = if options.with_workspace { "--server-side " } else { "" },
        tarball = if options.with_workspace {
            format!(
                "`{WORKSPACE_FILE}` (a secret too: the agent's files) becomes the Secret \
                 `{}`; the init container `{WORKSPACE_CONTAINER}` unpacks it into \
                 `{WORKSPACE_DIR}` at the first start only (it leaves `{WORKSPACE_MARK}` in the \
                 state folder), so later starts keep what the agent changed. To copy files \
                 again later, use `kubectl cp`.\n\n",
                names.workspace
            )
        } else {
            String::new()
        },));
    if record
        .provider_base_url
        .as_deref()
        .is_some_and(|url| url.contains("host.containers.internal"))
    {
        text.push_str(&format!(
            "\n**The provider runs on this computer** (`host.containers.internal` in \
             `{CONFIG_FILE}`): a cluster cannot reach it there. Point its `baseUrl` at an \
             address the cluster reaches before applying.\n"
        ));
    }
    let custom = record.provider_type.as_deref().is_some_and(|id| {
        !crate::agents::definition::BUILT_IN_PROVIDERS
            .iter()
            .any(|p| p.id == id)
    });
    if custom && record.provider_base_url.is_none() {
        text.push_str(
            "\n**Clawdock has no record of this agent's provider address** (the agent was \
             made by an older version, or recovered from its container): only TCP 443 is \
             let out. If its provider listens on another port, add it to \
             `networkpolicy.yaml` (or change the provider once in Clawdock, which records \
             it, and export again).\n",
        );
    }
    text
}

/// How long packing the workspace may take. The agent writes its workspace: a
/// huge sparse file compresses to almost nothing, so the size bound alone would
/// not end the work.
pub const WORKSPACE_PACK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The agent's workspace folder as a gzipped tarball (`tar -czf - -C DIR .`), for
/// `--with-workspace`. tar stores links as links (it never follows one the agent
/// planted) and FIFOs as FIFOs (never opened). Its output is read as it comes and
/// tar is killed as soon as it passes [`MAX_WORKSPACE_BYTES`] or after
/// [`WORKSPACE_PACK_TIMEOUT`]. Blocking.
pub fn workspace_tarball(workspace: &Path) -> Result<Vec<u8>, WriteError> {
    workspace_tarball_within(workspace, MAX_WORKSPACE_BYTES, WORKSPACE_PACK_TIMEOUT)
}

fn workspace_tarball_within(
    workspace: &Path,
    max: usize,
    timeout: std::time::Duration,
) -> Result<Vec<u8>, WriteError> {
    use std::io::Read;
    use std::sync::{mpsc, Arc, Mutex};
    let pack = |why: String| WriteError::Pack {
        path: workspace.to_path_buf(),
        why,
    };
    // The folder itself, not a link in its place.
    if !std::fs::symlink_metadata(workspace).is_ok_and(|m| m.is_dir()) {
        return Err(pack("no such folder".into()));
    }
    let mut child = std::process::Command::new("tar")
        .arg("-czf")
        .arg("-")
        .arg("-C")
        .arg(workspace)
        .arg(".")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| pack(format!("could not run tar: {e}")))?;
    let (Some(stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(pack("tar's pipes were not opened".into()));
    };
    // stderr drained on its own thread (a full pipe would stall tar), its end kept.
    let errors = std::thread::spawn(move || {
        let mut tail = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = stderr.read(&mut buf) {
            tail.extend_from_slice(&buf[..n]);
            if tail.len() > 4096 {
                tail.drain(..tail.len() - 4096);
            }
        }
        String::from_utf8_lossy(&tail).trim().to_string()
    });
    let child = Arc::new(Mutex::new(child));
    let kill = |child: &Mutex<std::process::Child>| match child.lock() {
        Ok(mut c) => {
            if let Err(e) = c.kill() {
                tracing::debug!(error = %e, "tar had ended already");
            }
        }
        Err(_) => tracing::warn!("tar's handle was poisoned; it is not killed"),
    };
    let (done, finished) = mpsc::channel::<()>();
    let watchdog = {
        let child = Arc::clone(&child);
        std::thread::spawn(move || {
            let late = finished.recv_timeout(timeout) == Err(mpsc::RecvTimeoutError::Timeout);
            if late {
                kill(&child);
            }
            late
        })
    };
    let mut out = Vec::new();
    let read = stdout.take(max as u64 + 1).read_to_end(&mut out);
    let too_large = out.len() > max;
    if too_large {
        kill(&child);
    }
    if let Err(e) = done.send(()) {
        tracing::debug!(error = %e, "the watchdog had ended");
    }
    let late = watchdog.join().unwrap_or(true);
    let status = match child.lock() {
        Ok(mut c) => c.wait(),
        Err(_) => Err(io::Error::other("tar's handle was poisoned")),
    };
    let stderr = errors.join().unwrap_or_default();
    if too_large {
        return Err(WriteError::WorkspaceTooLarge);
    }
    if late {
        return Err(pack(format!(
            "tar did not finish within {} s",
            timeout.as_secs()
        )));
    }
    read.map_err(|e| pack(format!("could not read tar's output: {e}")))?;
    let status = status.map_err(|e| pack(format!("could not wait for tar: {e}")))?;
    if !status.success() {
        return Err(pack(format!("tar failed ({status}): {stderr}")));
    }
    Ok(out)
}

/// Writes an export into `dir`, made if missing (0700: it holds secrets; an
/// existing one is made 0700 too), with the workspace tarball when given. A folder
/// that exists and is not empty is refused unless `force`; then the export's files
/// replace those of the same name and other files stay. The secret files are
/// 0600. Returns the files written.
pub fn write_folder(
    dir: &Path,
    export: &Export,
    workspace: Option<&[u8]>,
    force: bool,
) -> Result<Vec<PathBuf>, WriteError> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| WriteError::Io { path, source }
    };
    for name in export.files.keys() {
        let mut parts = Path::new(name).components();
        if !matches!(
            (parts.next(), parts.next()),
            (Some(Component::Normal(_)), None)
        ) {
            return Err(WriteError::BadFileName(name.clone()));
        }
    }
    match std::fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => return Err(WriteError::NotAFolder(dir.to_path_buf())),
        Ok(_) => {
            let mut entries = std::fs::read_dir(dir).map_err(io_err(dir))?;
            if entries.next().is_some() && !force {
                return Err(WriteError::NotEmpty(dir.to_path_buf()));
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(dir)(e)),
    }
    store::create_private_dir(dir).map_err(io_err(dir))?;
    let mut written = Vec::new();
    for (name, content) in &export.files {
        let path = dir.join(name);
        let result = if SECRET_FILES.contains(&name.as_str()) {
            store::write_secret(&path, content.as_bytes())
        } else {
            store::write_plain(&path, content.as_bytes())
        };
        result.map_err(|e| match e {
            store::StoreError::Write { path, source }
            | store::StoreError::Read { path, source } => WriteError::Io { path, source },
        })?;
        written.push(path);
    }
    if let Some(tarball) = workspace {
        let path = dir.join(WORKSPACE_FILE);
        store::write_secret(&path, tarball).map_err(|e| match e {
            store::StoreError::Write { path, source }
            | store::StoreError::Read { path, source } => WriteError::Io { path, source },
        })?;
        written.push(path);
    }
    Ok(written)
}

/// YAML text of a JSON value, in block style. Every string is written as a JSON
/// string, which is a valid YAML double-quoted scalar, so no value is ever read
/// back as another type (`"yes"`, `"1.10"`, `"0440"`).
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => write_map(&mut out, map, 0),
        Value::Array(items) if !items.is_empty() => write_list(&mut out, items, 0),
        other => {
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
    out
}

fn write_map(out: &mut String, map: &serde_json::Map<String, Value>, indent: usize) {
    for (key, value) in map {
        out.push_str(&format!("{:indent$}{}:", "", yaml_key(key)));
        write_value(out, value, indent + 2);
    }
}

fn write_list(out: &mut String, items: &[Value], indent: usize) {
    for item in items {
        match item {
            Value::Object(map) if !map.is_empty() => {
                // The first key goes after the dash, the others under it.
                let mut nested = String::new();
                write_map(&mut nested, map, indent + 2);
                out.push_str(&format!("{:indent$}- {}", "", &nested[indent + 2..]));
            }
            Value::Array(inner) if !inner.is_empty() => {
                out.push_str(&format!("{:indent$}-\n", ""));
                write_list(out, inner, indent + 2);
            }
            other => {
                out.push_str(&format!("{:indent$}- {}\n", "", scalar(other)));
            }
        }
    }
}

/// After `key:` — a scalar on the same line, a collection on the next ones.
fn write_value(out: &mut String, value: &Value, indent: usize) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push('\n');
            write_map(out, map, indent);
        }
        Value::Array(items) if !items.is_empty() => {
            out.push('\n');
            write_list(out, items, indent);
        }
        other => {
            out.push_str(&format!(" {}\n", scalar(other)));
        }
    }
}

fn scalar(value: &Value) -> String {
    match value {
        Value::Object(_) => "{}".into(),
        Value::Array(_) => "[]".into(),
        // Null, booleans and numbers read the same in YAML; strings are quoted.
        other => other.to_string(),
    }
}

/// A key plain when it cannot be misread (`app.kubernetes.io/name`), quoted otherwise.
fn yaml_key(key: &str) -> String {
    let plain = key.starts_with(|c: char| c.is_ascii_alphabetic())
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-'))
        && !matches!(
            key.to_ascii_lowercase().as_str(),
            "y" | "n" | "yes" | "no" | "on" | "off" | "true" | "false" | "null"
        );
    if plain {
        key.to_string()
    } else {
        Value::String(key.to_string()).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{AgentStatus, Wanted};

    fn record(name: &str) -> AgentRecord {
        AgentRecord {
            status: AgentStatus::Running,
            port: 18790,
            dir: "/data/agents/1".into(),
            token: "0123456789abcdef0123456789abcdef".into(),
            provider_type: Some("openai".into()),
            wanted: Wanted::Running,
            image: "ghcr.io/openclaw/openclaw:latest".into(),
            memory_mib: Some(1536),
            rejected_image: None,
            ..crate::store::sample_record(name)
        }
    }

    const CONFIG: &str = r#"{"env":{"vars":{"OPENAI_API_KEY":"sk-provider-key"}}}"#;

    fn export(record: &AgentRecord, options: &Options) -> Result<Export, InvalidOption> {
        render(
            Source {
                record,
                config: CONFIG,
                limits: Limits {
                    memory_mib: 1536,
                    pids: container_spec::PIDS_LIMIT,
                    cpus: None,
                },
                time_zone: "Europe/Paris",
                image_digest: None,
            },
            options,
        )
    }

    #[test]
    fn a_provider_on_another_port_is_let_out_and_metadata_never() {
        // The agent's config names ports of its own: they count for nothing.
        let config = r#"{"models":{"providers":{"local":{"baseUrl":"http://host.containers.internal:9999/v1"},
            "cloud":{"baseUrl":"https://api.example.com:7777/v1"}}}}"#;
        let mut record = record("alpha");
        assert_eq!(egress_ports(&record), [443], "a built-in provider");
        record.provider_type = Some("local".into());
        record.provider_base_url = Some("http://host.containers.internal:8080/v1".into());
        assert_eq!(egress_ports(&record), [443, 8080]);
        record.provider_base_url = Some("http://[::1]/v1".into());
        assert_eq!(egress_ports(&record), [80, 443]);
        record.provider_base_url = Some("http://host.containers.internal:8080/v1".into());
        let out = render(
            Source {
                record: &record,
                config,
                limits: Limits {
                    memory_mib: 1536,
                    pids: container_spec::PIDS_LIMIT,
                    cpus: Some(1.5),
                },
                time_zone: "UTC",
                image_digest: Some("ghcr.io/openclaw/openclaw@sha256:0123"),
            },
            &Options::default(),
        )
        .expect("render");
        let policy = &out.files["networkpolicy.yaml"];
        assert!(policy.contains("port: 8080"), "{policy}");
        assert!(
            !policy.contains("9999") && !policy.contains("7777"),
            "{policy}"
        );
        assert!(policy.contains("k8s-app: \"kube-dns\""), "{policy}");
        assert!(out.files["README.md"].contains("runs on this computer"));
        record.provider_base_url = None;
        let unrecorded = export(&record, &Options::default()).expect("render");
        assert!(unrecorded.files["README.md"].contains("no record of this agent's provider"));
        assert!(policy.contains("\"169.254.169.254/32\""), "{policy}");
        assert!(out.files["deployment.yaml"].contains("\"ghcr.io/openclaw/openclaw@sha256:0123\""));
        let deployment = &out.files["deployment.yaml"];
        assert!(
            deployment.contains("cpu: \"1500m\"") && deployment.contains("cpu: \"250m\""),
            "the agent's CPU limit (1.5) is the gateway's: {deployment}"
        );
        assert!(out.files["README.md"].contains("pinned by digest"));
    }

    #[test]
    fn an_image_without_a_digest_keeps_its_tag_and_the_readme_warns() {
        let out = export(&record("alpha"), &Options::default()).expect("render");
        assert!(out.files["deployment.yaml"].contains("\"ghcr.io/openclaw/openclaw:latest\""));
        assert!(out.files["README.md"].contains("the image is not pinned"));
    }

    #[test]
    fn names_map_to_dns_labels() {
        assert_eq!(kubernetes_name("alpha"), "alpha");
        assert_eq!(kubernetes_name("My_Agent.v2"), "my-agent-v2");
        assert_eq!(kubernetes_name("a-"), "a");
        assert_eq!(kubernetes_name("___"), "agent");
        for name in ["alpha", "My_Agent.v2", "x.", &"A".repeat(63), "9-lives"] {
            assert!(is_dns_label(&kubernetes_name(name)), "{name}");
        }
        for bad in ["", "-a", "a-", "A", "a_b", "a.b", &"a".repeat(64)] {
            assert!(!is_dns_label(bad), "{bad}");
        }
    }

    #[test]
    fn storage_sizes() {
        for ok in ["5Gi", "500Mi", "10G", "1.5Ti", "1000000", "1k"] {
            assert!(is_storage_quantity(ok), "{ok}");
        }
        for bad in [
            "", "Gi", "5GB", "-5Gi", "0", "0Gi", "5 Gi", "1.2.3Gi", ".5Gi", "5gi", "5Gi\n",
        ] {
            assert!(!is_storage_quantity(bad), "{bad}");
        }
    }

    #[test]
    fn bad_options_are_refused() {
        let r = record("alpha");
        let bad_ns = Options {
            namespace: "Team_A".into(),
            ..Options::default()
        };
        assert_eq!(
            export(&r, &bad_ns),
            Err(InvalidOption::Namespace("Team_A".into()))
        );
        let bad_size = Options {
            storage: "lots".into(),
            ..Options::default()
        };
        assert_eq!(
            export(&r, &bad_size),
            Err(InvalidOption::Storage("lots".into()))
        );
    }

    #[test]
    fn secrets_are_only_in_the_secret_files() {
        let r = record("My_Agent");
        let e = export(&r, &Options::default()).expect("export");
        assert_eq!(e.name, "my-agent");
        assert_eq!(e.mapped_from.as_deref(), Some("My_Agent"));
        assert_eq!(e.files[TOKEN_FILE], r.token, "verbatim, no newline");
        assert_eq!(e.files[CONFIG_FILE], CONFIG);
        for (file, content) in &e.files {
            if SECRET_FILES.contains(&file.as_str()) {
                continue;
            }
            assert!(!content.contains(&r.token), "token in {file}");
            assert!(!content.contains("sk-provider-key"), "key in {file}");
        }
        let kustomization = &e.files["kustomization.yaml"];
        assert!(
            kustomization.contains("namespace: \"openclaw\""),
            "{kustomization}"
        );
        assert!(e.files["persistentvolumeclaim.yaml"].contains("storage: \"5Gi\""));
        assert!(e.files["README.md"].contains("kubectl apply -k"));
        assert!(e.files["README.md"].contains("not a valid Kubernetes name"));
        let plain = export(&record("alpha"), &Options::default()).expect("export");
        assert_eq!(plain.mapped_from, None);
    }

    #[test]
    fn the_deployment_runs_what_the_local_container_runs() {
        let r = record("alpha");
        let e = export(&r, &Options::default()).expect("export");
        let d = &e.files["deployment.yaml"];
        let mut from = d.find("args:").expect("args");
        for arg in container_spec::gateway_command() {
            let at = d[from..].find(&format!("- \"{arg}\"\n")).expect(&arg);
            from += at;
        }
        assert!(d.contains("image: \"ghcr.io/openclaw/openclaw:latest\""));
        assert!(d.contains("memory: \"1536Mi\""));
        assert!(d.contains("runAsUser: 1000"));
        assert!(d.contains(&format!("mountPath: \"{CONFIG_DIR}\"")));
        assert!(d.contains(&format!("hostname: \"{}\"", container_spec::hostname(&r))));
        assert!(d.contains("type: \"Recreate\""));
    }

    #[test]
    fn with_the_workspace_a_second_secret_and_an_init_container_unpack_it() {
        let r = record("alpha");
        let options = Options {
            with_workspace: true,
            ..Options::default()
        };
        let e = export(&r, &options).expect("export");
        let k = &e.files["kustomization.yaml"];
        assert!(
            k.contains("name: \"alpha-workspace\"") && k.contains(WORKSPACE_FILE),
            "{k}"
        );
        let d = &e.files["deployment.yaml"];
        assert!(
            d.contains(&format!("name: \"{WORKSPACE_CONTAINER}\"")),
            "{d}"
        );
        assert!(d.contains("secretName: \"alpha-workspace\""), "{d}");
        assert!(e.files["README.md"].contains("kubectl apply --server-side -k"));
        let plain = export(&r, &Options::default()).expect("export");
        assert!(!plain.files["deployment.yaml"].contains(WORKSPACE_MOUNT));

        let tmp = tempfile::tempdir().expect("tmp");
        let ws = tmp.path().join("workspace");
        std::fs::create_dir_all(ws.join("memory")).expect("mkdir");
        std::fs::write(ws.join("memory/notes.md"), b"remember").expect("file");
        let tarball = workspace_tarball(&ws).expect("tarball");
        assert_eq!(&tarball[..2], [0x1f, 0x8b], "gzip");
        let dir = tmp.path().join("out");
        write_folder(&dir, &e, Some(&tarball), false).expect("write");
        assert_eq!(
            std::fs::read(dir.join(WORKSPACE_FILE)).expect("read"),
            tarball
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let meta = std::fs::metadata(dir.join(WORKSPACE_FILE)).expect("meta");
            assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        }
        assert!(matches!(
            workspace_tarball(&tmp.path().join("none")),
            Err(WriteError::Pack { .. })
        ));
    }

    /// Issue 23: tar's whole output was collected before its size was checked; a
    /// workspace the agent filled would take the memory (or the time) it liked.
    #[cfg(unix)]
    #[test]
    fn packing_stops_at_the_size_bound_and_the_time_bound() {
        let tmp = tempfile::tempdir().expect("tmp");
        let ws = tmp.path().join("workspace");
        std::fs::create_dir(&ws).expect("mkdir");
        let mut noise = vec![0u8; 256 * 1024];
        getrandom::fill(&mut noise).expect("random");
        std::fs::write(ws.join("noise"), &noise).expect("file");
        let started = std::time::Instant::now();
        let err = workspace_tarball_within(&ws, 16 * 1024, std::time::Duration::from_secs(30))
            .expect_err("too large");
        assert!(matches!(err, WriteError::WorkspaceTooLarge), "{err:?}");
        assert!(started.elapsed() < std::time::Duration::from_secs(10));

        // 64 GiB of holes: little output, endless reading.
        let sparse = std::fs::File::create(ws.join("sparse")).expect("file");
        sparse.set_len(64 << 30).expect("sparse");
        let started = std::time::Instant::now();
        let err = workspace_tarball_within(&ws, usize::MAX / 2, std::time::Duration::from_secs(1))
            .expect_err("too slow");
        assert!(
            err.to_string().contains("did not finish within 1 s"),
            "{err}"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn yaml_of_nested_values() {
        let v = json!({
            "a": [{"b": 1, "c": ["x", "yes"]}, "plain", []],
            "empty": {},
            "on": true,
            "key with space": null,
        });
        assert_eq!(
            to_yaml(&v),
            "a:\n  - b: 1\n    c:\n      - \"x\"\n      - \"yes\"\n  - \"plain\"\n  - []\n\
             empty: {}\n\"key with space\": null\n\"on\": true\n"
        );
    }

    #[test]
    fn a_folder_that_is_not_empty_is_refused_unless_forced() {
        let tmp = tempfile::tempdir().expect("tmp");
        let e = export(&record("alpha"), &Options::default()).expect("export");
        let dir = tmp.path().join("out");
        let written = write_folder(&dir, &e, None, false).expect("write");
        assert_eq!(written.len(), e.files.len());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode(&dir), 0o700);
            assert_eq!(mode(&dir.join(TOKEN_FILE)), 0o600);
            assert_eq!(mode(&dir.join(CONFIG_FILE)), 0o600);
        }
        assert_eq!(
            std::fs::read_to_string(dir.join(TOKEN_FILE)).expect("token"),
            e.files[TOKEN_FILE]
        );
        match write_folder(&dir, &e, None, false) {
            Err(WriteError::NotEmpty(at)) => assert_eq!(at, dir),
            other => panic!("expected a refusal, got {other:?}"),
        }
        write_folder(&dir, &e, None, true).expect("forced");
        let empty = tmp.path().join("empty");
        std::fs::create_dir(&empty).expect("mkdir");
        write_folder(&empty, &e, None, false).expect("an empty folder is fine");
        let file = tmp.path().join("file");
        std::fs::write(&file, b"x").expect("file");
        assert!(matches!(
            write_folder(&file, &e, None, true),
            Err(WriteError::NotAFolder(_))
        ));
        let mut evil = e.clone();
        evil.files.insert("../escape".into(), "x".into());
        assert!(matches!(
            write_folder(&tmp.path().join("evil"), &evil, None, false),
            Err(WriteError::BadFileName(_))
        ));
        assert!(!tmp.path().join("escape").exists());
    }
}
