//! The app's own updates: the feed, the signature, the install. [`run`] is the one
//! function that checks, downloads, verifies and installs; the tray, the API (the
//! window's Settings) and `clawdock self-update` all call it (the running instance's
//! through `Clawdock::self_update`, which then restarts without stopping the agents).
//!
//! It speaks tauri-plugin-updater's protocol (2.14): the same feed (`latest.json`,
//! static or dynamic), the same minisign signatures made by `tauri signer sign` or
//! `tauri build`, checked with the crate the plugin uses (`minisign-verify`) against
//! the public key in `tauri.conf.json` (`plugins.updater.pubkey`, baked in at build
//! time), the same version bound to the signature, and the same install per
//! platform (`dpkg -i` / `rpm -U` through pkexec or sudo, the AppImage replaced in
//! place, the NSIS installer run passive with `/UPDATE`, the `.app` swapped). The
//! plugin itself needs a Tauri `AppHandle` in the process that checks, and neither
//! the tray app (no Tauri: it runs all day) nor the command line (no GUI stack) has
//! one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::agents::ErrorCode;

/// Clawdock's version: the one the feed's must exceed.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The public half of the key releases are signed with (`tauri signer generate`'s
/// `.pub`, base64), from the build: nothing at run time can change it.
const BUILD_PUBKEY: &str = env!("CLAWDOCK_UPDATER_PUBKEY");
/// The feed's addresses from the build, space-separated.
const BUILD_ENDPOINTS: &str = env!("CLAWDOCK_UPDATER_ENDPOINTS");

/// A feed is a small JSON document.
const MAX_FEED_BYTES: usize = 1 << 20;
/// The packages are 10-20 MB; a feed pointing at something far larger is refused
/// before it fills the disk.
const MAX_PACKAGE_BYTES: u64 = 512 << 20;
const FEED_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// A slow link still brings 20 MB in this.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// How this copy of Clawdock was installed: the package kind an update must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Installer {
    Deb,
    Rpm,
    AppImage,
    Nsis,
    Msi,
    App,
}

impl Installer {
    /// The name in the feed's platform keys (`linux-x86_64-deb`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Deb => "deb",
            Self::Rpm => "rpm",
            Self::AppImage => "appimage",
            Self::Nsis => "nsis",
            Self::Msi => "msi",
            Self::App => "app",
        }
    }

    /// How `program` (this process's executable, as it was at start) was installed;
    /// `None` for a build run from its folder, which has no package to update.
    pub fn detect(program: &Path) -> Option<Self> {
        if cfg!(target_os = "linux") {
            if std::env::var_os("APPIMAGE").is_some() {
                return Some(Self::AppImage);
            }
            // dpkg's own record of the package's files.
            let listed = std::fs::read_to_string("/var/lib/dpkg/info/clawdock.list")
                .is_ok_and(|list| list.lines().any(|l| Path::new(l) == program));
            if listed {
                return Some(Self::Deb);
            }
            let rpm_owned = std::process::Command::new("rpm")
                .arg("-qf")
                .arg(program)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            return rpm_owned.then_some(Self::Rpm);
        }
        if cfg!(windows) {
            // The NSIS installer puts its uninstaller beside the programs.
            let dir = program.parent()?;
            return dir.join("uninstall.exe").is_file().then_some(Self::Nsis);
        }
        if cfg!(target_os = "macos") {
            return app_bundle(program).map(|_| Self::App);
        }
        None
    }
}

/// Where the updates come from and what they are checked against.
#[derive(Debug, Clone)]
pub struct UpdateConfig {
    /// The minisign public key, base64 of its text (as in `tauri.conf.json`).
    pub pubkey: String,
    /// Feed addresses, tried in order; `{{current_version}}`, `{{target}}`,
    /// `{{arch}}` and `{{bundle_type}}` are filled in as the plugin does.
    pub endpoints: Vec<String>,
    pub current: semver::Version,
    /// How this copy was installed; `None`: found out when an update runs (from
    /// `program`), never at start, which must stay fast for the command line.
    pub installer: Option<Installer>,
    /// The program as it was at start (on Linux `/proc/self/exe` names a replaced
    /// file `... (deleted)`): the AppImage replaced, the `.app` swapped.
    pub program: Option<PathBuf>,
}

impl UpdateConfig {
    /// The build's key and feed. `endpoint` replaces the feed (`CLAWDOCK_SELF_UPDATE_URL`:
    /// a mirror, a test's loopback server): the key stays the build's, so a feed
    /// from anywhere can only offer what Clawdock's key signed.
    pub fn from_build(endpoint: Option<String>, program: Option<PathBuf>) -> Self {
        let endpoints = match endpoint {
            Some(url) => vec![url],
            None => BUILD_ENDPOINTS
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
        };
        Self {
            pubkey: BUILD_PUBKEY.to_owned(),
            endpoints,
            current: semver::Version::parse(VERSION).unwrap_or(semver::Version::new(0, 0, 0)),
            installer: None,
            program,
        }
    }
}

/// A release the feed offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Release {
    pub version: String,
    /// The release notes, shown before the user decides.
    pub notes: Option<String>,
    /// When it was published (RFC 3339), as the feed says.
    pub date: Option<String>,
}

/// What a check or an install came to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "state",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum Outcome {
    /// Nothing newer. `offered`: what the feed offers when it offers something
    /// (the same version, or an older one, which is never installed).
    UpToDate {
        current: String,
        offered: Option<String>,
    },
    /// A newer release, not installed: the user decides when.
    Available { current: String, release: Release },
    /// Installed; the app restarts into it.
    Installed { from: String, release: Release },
}

/// Where the self-update stands, as the tray, the window (`GET /app/update`, the
/// `selfUpdate` event) and the CLI show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SelfUpdateStatus {
    pub current: String,
    /// A check or an install runs now.
    pub busy: bool,
    /// The last check's or install's outcome.
    pub last: Option<Outcome>,
    /// Why the last check or install failed, as a sentence, and its code.
    pub error: Option<String>,
    pub error_code: Option<ErrorCode>,
    /// When the feed was last asked (RFC 3339).
    pub checked_at: Option<String>,
    /// Whether this instance looks for updates by itself (the tray app; not
    /// `serve`, and not with `CLAWDOCK_SELF_UPDATE_CHECK=0`).
    pub automatic: bool,
    /// The version this instance is restarting into, once installed.
    pub restarting_into: Option<String>,
}

impl SelfUpdateStatus {
    /// The release offered and not installed yet, if any.
    pub fn available(&self) -> Option<&Release> {
        match &self.last {
            Some(Outcome::Available { release, .. }) => Some(release),
            _ => None,
        }
    }
}

/// The restart an installed update asks of the process that owns the core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restart {
    pub from: String,
    pub to: String,
    pub after: AfterInstall,
}

/// What must happen once the new version is installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterInstall {
    /// The new files are in place: start the program again.
    Relaunch,
    /// Windows: the installer replaces the files once this process has gone, and
    /// starts the app again (`/R`).
    RunInstaller { program: PathBuf, args: Vec<String> },
}

/// Check only, or install what is newer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Check,
    Install,
}

/// How an install may ask for the administrator's rights a system package needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asking {
    /// From the desktop (tray, window): pkexec's dialog, else sudo only where it
    /// needs no password (nobody could type one).
    Desktop,
    /// From a terminal (`clawdock self-update`): sudo may ask there.
    Terminal,
}

#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error("Clawdock is quitting.")]
    ShuttingDown,
    #[error("This build of Clawdock has no update feed (tauri.conf.json: plugins.updater.endpoints); update it where it came from.")]
    NoFeed,
    #[error("This build of Clawdock has no key to check updates with (tauri.conf.json: plugins.updater.pubkey).")]
    NoKey,
    #[error("This copy of Clawdock was not installed from a package ({0}); update it where it came from.")]
    NotPackaged(String),
    #[error("Could not reach the update feed at {url}: {source}")]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("The update feed at {url} answered HTTP {status}.")]
    FeedStatus { url: String, status: u16 },
    #[error("The update feed at {url} is not a release: {reason}")]
    BadFeed { url: String, reason: String },
    #[error(
        "Clawdock {version} has no package for this system (the feed lists none of {wanted})."
    )]
    NoPackage { version: String, wanted: String },
    #[error("Clawdock {current} is installed and the feed offers {offered}, which is not newer: a downgrade is refused.")]
    NotNewer { current: String, offered: String },
    #[error("Clawdock {current} is up to date: the feed offers nothing newer.")]
    NothingOffered { current: String },
    #[error("Could not download {url}: {source}")]
    Download {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("The download at {url} answered HTTP {status}.")]
    DownloadStatus { url: String, status: u16 },
    #[error("The package at {url} is larger than {} MiB: refused.", MAX_PACKAGE_BYTES >> 20)]
    TooLarge { url: String },
    #[error("The package's signature does not verify with Clawdock's key ({0}): the download was changed or not signed by Clawdock. Nothing was installed.")]
    BadSignature(#[source] minisign_verify::Error),
    #[error("The {what} is unreadable ({reason}). Nothing was installed.")]
    Unreadable { what: &'static str, reason: String },
    #[error("The feed offers {announced} but the package was signed as {signed}: refused. Nothing was installed.")]
    SignedVersionMismatch { signed: String, announced: String },
    #[error("The package's signature names no version, so the feed's {announced} cannot be trusted: refused. Nothing was installed.")]
    MissingSignedVersion { announced: String },
    #[error("The download is not a {expected} package: refused. Nothing was installed.")]
    NotAPackage { expected: &'static str },
    #[error("The package is version {package}, the feed says {announced}: refused. Nothing was installed.")]
    PackageVersion { package: String, announced: String },
    #[error("Could not write the update to {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Installing the update failed: `{command}` {status}{}", if stderr.is_empty() { String::new() } else { format!(": {stderr}") })]
    Install {
        command: String,
        status: String,
        stderr: String,
    },
}

impl UpdateError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::ShuttingDown => ErrorCode::ShuttingDown,
            Self::NoFeed | Self::NoKey | Self::NotPackaged(_) => ErrorCode::UpdateUnavailable,
            Self::Unreachable { .. }
            | Self::FeedStatus { .. }
            | Self::Download { .. }
            | Self::DownloadStatus { .. } => ErrorCode::UpdateUnreachable,
            Self::BadFeed { .. }
            | Self::NoPackage { .. }
            | Self::NotNewer { .. }
            | Self::NothingOffered { .. }
            | Self::TooLarge { .. }
            | Self::BadSignature(_)
            | Self::Unreadable { .. }
            | Self::SignedVersionMismatch { .. }
            | Self::MissingSignedVersion { .. }
            | Self::NotAPackage { .. }
            | Self::PackageVersion { .. } => ErrorCode::UpdateRefused,
            Self::Io { .. } | Self::Install { .. } => ErrorCode::UpdateFailed,
        }
    }
}

/// Checks the feed and, with [`Mode::Install`], downloads the newer release,
/// verifies it and installs it. The one function every caller goes through.
pub async fn run(
    config: &UpdateConfig,
    mode: Mode,
    asking: Asking,
) -> Result<(Outcome, Option<AfterInstall>), UpdateError> {
    if config.pubkey.trim().is_empty() {
        return Err(UpdateError::NoKey);
    }
    if config.endpoints.is_empty() {
        return Err(UpdateError::NoFeed);
    }
    let installer = match (config.installer, config.program.clone()) {
        (Some(known), _) => Some(known),
        // Reads dpkg's records or runs `rpm -qf`: off the async workers.
        (None, Some(program)) => tokio::task::spawn_blocking(move || Installer::detect(&program))
            .await
            .unwrap_or_default(),
        (None, None) => None,
    };
    let config = &UpdateConfig {
        installer,
        ..config.clone()
    };
    let current = config.current.to_string();
    let offer = match fetch_feed(config).await? {
        None => {
            return match mode {
                Mode::Check => Ok((
                    Outcome::UpToDate {
                        current,
                        offered: None,
                    },
                    None,
                )),
                Mode::Install => Err(UpdateError::NothingOffered { current }),
            }
        }
        Some(offer) => offer,
    };
    if offer.version <= config.current {
        let offered = offer.version.to_string();
        tracing::info!(%current, %offered, "the feed offers nothing newer");
        return match mode {
            Mode::Check => Ok((
                Outcome::UpToDate {
                    current,
                    offered: Some(offered),
                },
                None,
            )),
            Mode::Install => Err(UpdateError::NotNewer { current, offered }),
        };
    }
    let wanted = platform_keys(config.installer);
    let platform = offer
        .platform(&wanted)
        .ok_or_else(|| UpdateError::NoPackage {
            version: offer.version.to_string(),
            wanted: wanted.join(", "),
        })?;
    let release = offer.release();
    if mode == Mode::Check {
        return Ok((Outcome::Available { current, release }, None));
    }
    let installer = config.installer.ok_or_else(|| {
        UpdateError::NotPackaged(match &config.program {
            Some(p) => format!("{} belongs to no package", p.display()),
            None => "its own path is unknown".into(),
        })
    })?;
    tracing::info!(version = %release.version, url = %platform.url, "downloading the update");
    let bytes = download(&platform.url).await?;
    verify(
        &bytes,
        &platform.signature,
        &config.pubkey,
        &release.version,
    )?;
    tracing::info!(version = %release.version, ?installer, "signature verified; installing");
    let after = install(installer, &bytes, &release.version, config, asking).await?;
    tracing::info!(from = %current, to = %release.version, "update installed");
    Ok((
        Outcome::Installed {
            from: current,
            release,
        },
        Some(after),
    ))
}

/// The feed's platform keys for this system, most specific first (the plugin's
/// order: `{os}-{arch}-{installer}`, then `{os}-{arch}`). A feed that lists only
/// the AppImage under `linux-x86_64` is not offered to a `.deb` install when it
/// also lists `linux-x86_64-deb`; one listing neither is refused as no package.
fn platform_keys(installer: Option<Installer>) -> Vec<String> {
    let base = format!("{}-{}", os_name(), arch_name());
    let mut keys = Vec::new();
    if let Some(installer) = installer {
        keys.push(format!("{base}-{}", installer.name()));
    }
    keys.push(base);
    keys
}

fn os_name() -> &'static str {
    if cfg!(target_os = "macos") {
        "darwin"
    } else if cfg!(windows) {
        "windows"
    } else {
        "linux"
    }
}

fn arch_name() -> &'static str {
    if cfg!(target_arch = "aarch64") {
        "aarch64"
    } else if cfg!(target_arch = "x86") {
        "i686"
    } else if cfg!(target_arch = "arm") {
        "armv7"
    } else {
        "x86_64"
    }
}

/// The feed as served: the plugin's "static" shape (`platforms`) or its "dynamic"
/// one (`url` and `signature` for the asker alone).
#[derive(Debug, Deserialize)]
struct Feed {
    #[serde(alias = "name")]
    version: String,
    notes: Option<String>,
    pub_date: Option<String>,
    platforms: Option<HashMap<String, Platform>>,
    url: Option<String>,
    signature: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct Platform {
    url: String,
    signature: String,
}

struct Offer {
    version: semver::Version,
    notes: Option<String>,
    date: Option<String>,
    platforms: HashMap<String, Platform>,
    /// The dynamic shape's one package.
    only: Option<Platform>,
}

impl Offer {
    fn platform(&self, keys: &[String]) -> Option<Platform> {
        if let Some(only) = &self.only {
            return Some(only.clone());
        }
        keys.iter().find_map(|k| self.platforms.get(k).cloned())
    }

    fn release(&self) -> Release {
        Release {
            version: self.version.to_string(),
            notes: self.notes.clone(),
            date: self.date.clone(),
        }
    }
}

fn client(timeout: Duration) -> reqwest::Client {
    // The feed is on the internet: the system's proxy settings apply (unlike the
    // loopback calls elsewhere in Clawdock).
    reqwest::Client::builder()
        .user_agent(concat!("clawdock/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(timeout)
        .build()
        .unwrap_or_default()
}

fn endpoint_url(template: &str, config: &UpdateConfig) -> String {
    template
        .replace(
            "{{current_version}}",
            &config.current.to_string().replace('+', "%2B"),
        )
        .replace("{{target}}", os_name())
        .replace("{{arch}}", arch_name())
        .replace(
            "{{bundle_type}}",
            config.installer.map_or("unknown", Installer::name),
        )
}

/// The first endpoint that answers with a release; `None` on 204 (the plugin's
/// "no update"). Every endpoint failing returns the last one's error.
async fn fetch_feed(config: &UpdateConfig) -> Result<Option<Offer>, UpdateError> {
    let client = client(FEED_TIMEOUT);
    let mut last = None;
    for template in &config.endpoints {
        let url = endpoint_url(template, config);
        match fetch_one(&client, &url).await {
            Ok(offer) => return Ok(offer),
            Err(e) => {
                tracing::warn!(%url, error = %e, "update feed failed");
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or(UpdateError::NoFeed))
}

async fn fetch_one(client: &reqwest::Client, url: &str) -> Result<Option<Offer>, UpdateError> {
    let response = client
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|source| UpdateError::Unreachable {
            url: url.to_owned(),
            source,
        })?;
    let status = response.status();
    if status == reqwest::StatusCode::NO_CONTENT {
        return Ok(None);
    }
    if !status.is_success() {
        return Err(UpdateError::FeedStatus {
            url: url.to_owned(),
            status: status.as_u16(),
        });
    }
    let bad = |reason: String| UpdateError::BadFeed {
        url: url.to_owned(),
        reason,
    };
    let mut body = Vec::new();
    let mut chunks = response.bytes_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|source| UpdateError::Unreachable {
            url: url.to_owned(),
            source,
        })?;
        body.extend_from_slice(&chunk);
        if body.len() > MAX_FEED_BYTES {
            return Err(bad(format!("larger than {} KiB", MAX_FEED_BYTES >> 10)));
        }
    }
    let feed: Feed = serde_json::from_slice(&body).map_err(|e| bad(e.to_string()))?;
    let version = semver::Version::parse(feed.version.trim_start_matches('v'))
        .map_err(|e| bad(format!("version `{}`: {e}", feed.version)))?;
    let only = match (feed.platforms.is_some(), feed.url, feed.signature) {
        (true, _, _) => None,
        (false, Some(url), Some(signature)) => Some(Platform { url, signature }),
        (false, _, _) => return Err(bad("neither `platforms` nor `url` and `signature`".into())),
    };
    Ok(Some(Offer {
        version,
        notes: feed.notes,
        date: feed.pub_date,
        platforms: feed.platforms.unwrap_or_default(),
        only,
    }))
}

async fn download(url: &str) -> Result<Vec<u8>, UpdateError> {
    let response = client(DOWNLOAD_TIMEOUT)
        .get(url)
        .send()
        .await
        .map_err(|source| UpdateError::Download {
            url: url.to_owned(),
            source,
        })?;
    let status = response.status();
    if !status.is_success() {
        return Err(UpdateError::DownloadStatus {
            url: url.to_owned(),
            status: status.as_u16(),
        });
    }
    if response
        .content_length()
        .is_some_and(|n| n > MAX_PACKAGE_BYTES)
    {
        return Err(UpdateError::TooLarge {
            url: url.to_owned(),
        });
    }
    let mut bytes = Vec::new();
    let mut chunks = response.bytes_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|source| UpdateError::Download {
            url: url.to_owned(),
            source,
        })?;
        bytes.extend_from_slice(&chunk);
        if bytes.len() as u64 > MAX_PACKAGE_BYTES {
            return Err(UpdateError::TooLarge {
                url: url.to_owned(),
            });
        }
    }
    Ok(bytes)
}

/// The package's signature checked with the build's key, and the version the
/// signature was made for (its trusted comment, which the signature covers) equal
/// to the one the feed announced: the feed itself is not signed, so a feed pairing
/// a new version number with an older signed package is refused here.
pub fn verify(
    bytes: &[u8],
    signature: &str,
    pubkey: &str,
    announced: &str,
) -> Result<(), UpdateError> {
    let text = |what: &'static str, b64: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .ok()
            .and_then(|raw| String::from_utf8(raw).ok())
            .ok_or(UpdateError::Unreadable {
                what,
                reason: "not base64 of text".into(),
            })
    };
    let key = minisign_verify::PublicKey::decode(&text("update key", pubkey)?).map_err(|e| {
        UpdateError::Unreadable {
            what: "update key",
            reason: e.to_string(),
        }
    })?;
    let signature =
        minisign_verify::Signature::decode(&text("signature", signature)?).map_err(|e| {
            UpdateError::Unreadable {
                what: "signature",
                reason: e.to_string(),
            }
        })?;
    key.verify(bytes, &signature, true)
        .map_err(UpdateError::BadSignature)?;
    // Only now is the trusted comment the signer's.
    let signed = signature
        .trusted_comment()
        .split('\t')
        .find_map(|field| field.strip_prefix("version:"))
        .ok_or_else(|| UpdateError::MissingSignedVersion {
            announced: announced.to_owned(),
        })?;
    let same = match (
        semver::Version::parse(signed.trim_start_matches('v')),
        semver::Version::parse(announced.trim_start_matches('v')),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => signed == announced,
    };
    if same {
        Ok(())
    } else {
        Err(UpdateError::SignedVersionMismatch {
            signed: signed.to_owned(),
            announced: announced.to_owned(),
        })
    }
}

/// A private folder for the package, removed when dropped.
struct Staging {
    dir: PathBuf,
}

impl Staging {
    fn new(version: &str) -> Result<Self, UpdateError> {
        let dir = std::env::temp_dir().join(format!(
            "clawdock-update-{version}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        crate::store::create_private_dir(&dir).map_err(|source| UpdateError::Io {
            path: dir.clone(),
            source,
        })?;
        Ok(Self { dir })
    }

    fn write(&self, name: &str, bytes: &[u8]) -> Result<PathBuf, UpdateError> {
        let path = self.dir.join(name);
        std::fs::write(&path, bytes).map_err(|source| UpdateError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(path)
    }

    /// Kept: the installer runs after this process ended (Windows).
    fn keep(mut self) -> PathBuf {
        std::mem::take(&mut self.dir)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if self.dir.as_os_str().is_empty() {
            return;
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "could not remove the update's folder");
        }
    }
}

async fn install(
    installer: Installer,
    bytes: &[u8],
    version: &str,
    config: &UpdateConfig,
    asking: Asking,
) -> Result<AfterInstall, UpdateError> {
    match installer {
        Installer::Deb => {
            // An ar archive whose first member is `debian-binary`.
            if !bytes.starts_with(b"!<arch>\ndebian-binary") {
                return Err(UpdateError::NotAPackage { expected: "Debian" });
            }
            let staging = Staging::new(version)?;
            let package = staging.write("clawdock.deb", bytes)?;
            let said = run_tool(
                "dpkg-deb",
                &["-f".as_ref(), package.as_os_str(), "Version".as_ref()],
            )
            .await?;
            let package_version = said.trim();
            if package_version != version {
                return Err(UpdateError::PackageVersion {
                    package: package_version.to_owned(),
                    announced: version.to_owned(),
                });
            }
            as_admin("dpkg", &["-i"], &package, asking).await?;
            Ok(AfterInstall::Relaunch)
        }
        Installer::Rpm => {
            if !bytes.starts_with(&[0xed, 0xab, 0xee, 0xdb]) {
                return Err(UpdateError::NotAPackage { expected: "RPM" });
            }
            let staging = Staging::new(version)?;
            let package = staging.write("clawdock.rpm", bytes)?;
            as_admin("rpm", &["-U"], &package, asking).await?;
            Ok(AfterInstall::Relaunch)
        }
        Installer::AppImage => {
            if !bytes.starts_with(b"\x7fELF") {
                return Err(UpdateError::NotAPackage {
                    expected: "AppImage",
                });
            }
            let target = std::env::var_os("APPIMAGE")
                .map(PathBuf::from)
                .or_else(|| config.program.clone())
                .ok_or_else(|| UpdateError::NotPackaged("the AppImage's path is unknown".into()))?;
            replace_file(&target, bytes)?;
            Ok(AfterInstall::Relaunch)
        }
        Installer::Nsis => {
            if !bytes.starts_with(b"MZ") {
                return Err(UpdateError::NotAPackage {
                    expected: "Windows installer",
                });
            }
            let staging = Staging::new(version)?;
            let program = staging.write(&format!("Clawdock_{version}_setup.exe"), bytes)?;
            let _kept = staging.keep();
            // Passive (a progress bar, no questions), as an update of what is
            // installed, and restarting the app when done.
            Ok(AfterInstall::RunInstaller {
                program,
                args: vec!["/P".into(), "/UPDATE".into(), "/R".into()],
            })
        }
        Installer::Msi => {
            if !bytes.starts_with(&[0xd0, 0xcf, 0x11, 0xe0]) {
                return Err(UpdateError::NotAPackage {
                    expected: "Windows Installer",
                });
            }
            let staging = Staging::new(version)?;
            let package = staging.write(&format!("Clawdock_{version}.msi"), bytes)?;
            let _kept = staging.keep();
            Ok(AfterInstall::RunInstaller {
                program: PathBuf::from("msiexec.exe"),
                args: vec![
                    "/i".into(),
                    package.display().to_string(),
                    "/passive".into(),
                    "/promptrestart".into(),
                ],
            })
        }
        Installer::App => {
            // The bundler's `.app.tar.gz`: gzip.
            if !bytes.starts_with(&[0x1f, 0x8b]) {
                return Err(UpdateError::NotAPackage {
                    expected: "macOS app archive",
                });
            }
            let bundle = config
                .program
                .as_deref()
                .and_then(app_bundle)
                .ok_or_else(|| UpdateError::NotPackaged("not inside an .app".into()))?;
            swap_app(&bundle, bytes, version).await?;
            Ok(AfterInstall::Relaunch)
        }
    }
}

/// The `.app` folder holding `program` (`/Applications/Clawdock.app`).
fn app_bundle(program: &Path) -> Option<PathBuf> {
    program
        .ancestors()
        .find(|p| p.extension().is_some_and(|e| e == "app"))
        .map(Path::to_path_buf)
}

/// Runs a tool that only reads; its stdout.
async fn run_tool(program: &str, args: &[&std::ffi::OsStr]) -> Result<String, UpdateError> {
    let output = tokio::process::Command::new(program)
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|source| UpdateError::Io {
            path: PathBuf::from(program),
            source,
        })?;
    if !output.status.success() {
        return Err(UpdateError::Install {
            command: program.to_owned(),
            status: output.status.to_string(),
            stderr: tail(&output.stderr),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(3)..].join(" / ")
}

/// Runs `tool args package` with the administrator's rights, as the plugin does:
/// directly when already root; else pkexec (the desktop's password dialog); else
/// sudo (asking on the terminal, or, from the desktop, only where it needs no
/// password: nobody could type one).
async fn as_admin(
    tool: &str,
    args: &[&str],
    package: &Path,
    asking: Asking,
) -> Result<(), UpdateError> {
    let mut argv: Vec<String> = vec![tool.into()];
    argv.extend(args.iter().map(|a| (*a).to_owned()));
    argv.push(package.display().to_string());
    let mut attempts: Vec<Vec<String>> = Vec::new();
    if is_root() {
        attempts.push(argv.clone());
    } else {
        if asking == Asking::Desktop && on_path("pkexec") {
            attempts.push([vec!["pkexec".to_owned()], argv.clone()].concat());
        }
        let sudo = if asking == Asking::Terminal {
            vec!["sudo".to_owned()]
        } else {
            vec!["sudo".to_owned(), "-n".to_owned()]
        };
        attempts.push([sudo, argv.clone()].concat());
    }
    let mut failed = None;
    for attempt in attempts {
        let (program, rest) = attempt.split_first().unwrap_or((&argv[0], &[]));
        tracing::info!(command = %attempt.join(" "), "installing the update");
        let mut command = tokio::process::Command::new(program);
        command.args(rest).kill_on_drop(false);
        if asking == Asking::Desktop {
            command.stdin(std::process::Stdio::null());
        }
        let output = match command.stderr(std::process::Stdio::piped()).output().await {
            Ok(output) => output,
            Err(source) => {
                failed = Some(UpdateError::Install {
                    command: attempt.join(" "),
                    status: "could not start".into(),
                    stderr: source.to_string(),
                });
                continue;
            }
        };
        if output.status.success() {
            return Ok(());
        }
        failed = Some(UpdateError::Install {
            command: attempt.join(" "),
            status: output.status.to_string(),
            stderr: tail(&output.stderr),
        });
    }
    Err(failed.unwrap_or(UpdateError::Install {
        command: argv.join(" "),
        status: "not run".into(),
        stderr: String::new(),
    }))
}

#[cfg(unix)]
fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[cfg(not(unix))]
fn is_root() -> bool {
    false
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// The AppImage replaced in place: written beside it, then renamed over it (the
/// running one keeps its open file).
fn replace_file(target: &Path, bytes: &[u8]) -> Result<(), UpdateError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| UpdateError::Io { path, source }
    };
    let staged = target.with_extension("update");
    std::fs::write(&staged, bytes).map_err(io(&staged))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o755))
            .map_err(io(&staged))?;
    }
    std::fs::rename(&staged, target).map_err(io(target))
}

/// The new `.app` unpacked beside the old one, then swapped in by two renames;
/// the old one is removed only once the new one is in place.
async fn swap_app(bundle: &Path, bytes: &[u8], version: &str) -> Result<(), UpdateError> {
    let parent = bundle
        .parent()
        .ok_or_else(|| UpdateError::NotPackaged("the .app has no folder".into()))?;
    let staging = Staging::new(version)?;
    let archive = staging.write("Clawdock.app.tar.gz", bytes)?;
    let unpacked = parent.join(format!(".clawdock-update-{version}"));
    crate::store::create_private_dir(&unpacked).map_err(|source| UpdateError::Io {
        path: unpacked.clone(),
        source,
    })?;
    run_tool(
        "tar",
        &[
            "-xzf".as_ref(),
            archive.as_os_str(),
            "-C".as_ref(),
            unpacked.as_os_str(),
        ],
    )
    .await?;
    let new_app = std::fs::read_dir(&unpacked)
        .map_err(|source| UpdateError::Io {
            path: unpacked.clone(),
            source,
        })?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "app"))
        .ok_or(UpdateError::NotAPackage {
            expected: "macOS app archive",
        })?;
    let old = parent.join(format!(".clawdock-previous-{version}.app"));
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| UpdateError::Io { path, source }
    };
    std::fs::rename(bundle, &old).map_err(io(bundle))?;
    if let Err(e) = std::fs::rename(&new_app, bundle) {
        // Put the working app back before saying so.
        if let Err(back) = std::fs::rename(&old, bundle) {
            tracing::error!(error = %back, "could not put the previous app back");
        }
        return Err(io(bundle)(e));
    }
    for leftover in [&old, &unpacked] {
        if let Err(e) = std::fs::remove_dir_all(leftover) {
            tracing::warn!(path = %leftover.display(), error = %e, "could not remove the previous app");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deb_install_asks_for_the_deb_first_then_the_plain_target() {
        let keys = platform_keys(Some(Installer::Deb));
        assert_eq!(keys.len(), 2);
        assert!(keys[0].ends_with("-deb"), "{keys:?}");
        assert_eq!(keys[1], format!("{}-{}", os_name(), arch_name()));
        assert_eq!(platform_keys(None).len(), 1);
    }

    #[test]
    fn endpoints_are_filled_in_as_the_plugin_fills_them() {
        let config = UpdateConfig {
            pubkey: String::new(),
            endpoints: vec![],
            current: semver::Version::parse("1.2.3+build.4").expect("version"),
            installer: Some(Installer::Deb),
            program: None,
        };
        let url = endpoint_url(
            "https://x/{{target}}/{{arch}}/{{bundle_type}}/{{current_version}}",
            &config,
        );
        assert_eq!(
            url,
            format!(
                "https://x/{}/{}/deb/1.2.3%2Bbuild.4",
                os_name(),
                arch_name()
            )
        );
    }
}
