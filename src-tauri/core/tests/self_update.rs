//! Clawdock's own update (issue 31), up to the install: a feed on loopback (the
//! tests' own HTTP server), packages signed with a key pair the test makes
//! (minisign, the format `tauri signer` writes), and the refusals the issue names:
//! a tampered package, a bad signature, a downgrade, a feed whose version differs
//! from the signed one, an unreachable feed; and a feed listing only an AppImage
//! offered to a `.deb` install. Nothing here installs (that needs root and a
//! package: `tests/package/run.sh` installs a signed N+1 over N end to end).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use base64::Engine as _;
use clawdock_core::self_update::{
    self, Asking, Installer, Mode, Outcome, UpdateConfig, UpdateError,
};

/// What the test's server serves: path → body.
type Files = Arc<Mutex<HashMap<String, Vec<u8>>>>;

struct Feed {
    base: String,
    files: Files,
}

async fn serve_file(State(files): State<Files>, Path(path): Path<String>) -> impl IntoResponse {
    match files.lock().expect("files").get(&path) {
        Some(body) => (StatusCode::OK, body.clone()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn feed_server() -> Feed {
    let files: Files = Arc::default();
    let app = axum::Router::new()
        .route("/{*path}", axum::routing::get(serve_file))
        .with_state(files.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serve");
    });
    Feed { base, files }
}

impl Feed {
    fn put(&self, path: &str, body: impl Into<Vec<u8>>) {
        self.files
            .lock()
            .expect("files")
            .insert(path.to_owned(), body.into());
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base)
    }

    /// A static feed (`latest.json`) offering `version` under each platform key.
    fn offer(&self, version: &str, keys: &[&str], package: &str, signature: &str) {
        let platforms: serde_json::Map<String, serde_json::Value> = keys
            .iter()
            .map(|k| {
                (
                    (*k).to_owned(),
                    serde_json::json!({ "url": self.url(package), "signature": signature }),
                )
            })
            .collect();
        let feed = serde_json::json!({
            "version": version,
            "notes": format!("What changed in {version}.\nA second line."),
            "pub_date": "2026-12-01T10:00:00Z",
            "platforms": platforms,
        });
        self.put("latest.json", serde_json::to_vec(&feed).expect("json"));
    }
}

/// A key pair of the test's own, and signatures as `tauri signer sign --app-version`
/// makes them: base64 of minisign's text, the version in the trusted comment.
struct Signer {
    pair: minisign::KeyPair,
}

impl Signer {
    fn new() -> Self {
        Self {
            pair: minisign::KeyPair::generate_unencrypted_keypair().expect("keys"),
        }
    }

    fn pubkey(&self) -> String {
        let text = self.pair.pk.to_box().expect("box").to_string();
        base64::engine::general_purpose::STANDARD.encode(text)
    }

    fn sign(&self, bytes: &[u8], trusted: &str) -> String {
        let signature = minisign::sign(
            Some(&self.pair.pk),
            &self.pair.sk,
            std::io::Cursor::new(bytes),
            Some(trusted),
            Some("signature from tauri secret key"),
        )
        .expect("sign");
        base64::engine::general_purpose::STANDARD.encode(signature.to_string())
    }

    fn sign_version(&self, bytes: &[u8], version: &str) -> String {
        self.sign(
            bytes,
            &format!("timestamp:1764583200\tfile:Clawdock_{version}_amd64.deb\tversion:{version}"),
        )
    }
}

fn linux_key() -> String {
    let arch = if cfg!(target_arch = "aarch64") {
        "aarch64"
    } else {
        "x86_64"
    };
    format!("linux-{arch}")
}

fn config(feed: &Feed, signer: &Signer) -> UpdateConfig {
    UpdateConfig {
        pubkey: signer.pubkey(),
        endpoints: vec![feed.url("latest.json")],
        current: semver::Version::new(1, 0, 0),
        installer: Some(Installer::Deb),
        program: None,
    }
}

/// Something shaped like a .deb (an ar archive opening with `debian-binary`).
fn fake_deb(version: &str) -> Vec<u8> {
    format!("!<arch>\ndebian-binary   0           0     0     100644  4         `\n2.0\npackage {version}")
        .into_bytes()
}

#[tokio::test]
async fn a_newer_signed_release_is_offered_with_its_notes_and_not_installed_by_a_check() {
    let (feed, signer) = (feed_server().await, Signer::new());
    let deb = fake_deb("1.1.0");
    feed.put("Clawdock_1.1.0_amd64.deb", deb.clone());
    feed.offer(
        "1.1.0",
        &[&format!("{}-deb", linux_key())],
        "Clawdock_1.1.0_amd64.deb",
        &signer.sign_version(&deb, "1.1.0"),
    );
    let (outcome, after) = self_update::run(&config(&feed, &signer), Mode::Check, Asking::Desktop)
        .await
        .expect("check");
    let Outcome::Available { current, release } = outcome else {
        panic!("not offered: {outcome:?}");
    };
    assert_eq!(
        (current.as_str(), release.version.as_str()),
        ("1.0.0", "1.1.0")
    );
    assert_eq!(
        release.notes.as_deref(),
        Some("What changed in 1.1.0.\nA second line.")
    );
    assert_eq!(release.date.as_deref(), Some("2026-12-01T10:00:00Z"));
    assert!(after.is_none(), "a check installs nothing");
}

#[tokio::test]
async fn a_tampered_package_is_refused_before_anything_is_installed() {
    let (feed, signer) = (feed_server().await, Signer::new());
    let deb = fake_deb("1.1.0");
    let signature = signer.sign_version(&deb, "1.1.0");
    let mut tampered = deb.clone();
    tampered.extend_from_slice(b" and a payload");
    feed.put("Clawdock_1.1.0_amd64.deb", tampered);
    feed.offer(
        "1.1.0",
        &[&linux_key()],
        "Clawdock_1.1.0_amd64.deb",
        &signature,
    );
    let err = self_update::run(&config(&feed, &signer), Mode::Install, Asking::Desktop)
        .await
        .expect_err("tampered");
    assert!(matches!(err, UpdateError::BadSignature(_)), "{err:?}");
    assert!(err.to_string().contains("Nothing was installed"), "{err}");
}

#[tokio::test]
async fn a_package_signed_with_another_key_is_refused() {
    let (feed, signer, stranger) = (feed_server().await, Signer::new(), Signer::new());
    let deb = fake_deb("1.1.0");
    feed.put("Clawdock_1.1.0_amd64.deb", deb.clone());
    feed.offer(
        "1.1.0",
        &[&linux_key()],
        "Clawdock_1.1.0_amd64.deb",
        &stranger.sign_version(&deb, "1.1.0"),
    );
    let err = self_update::run(&config(&feed, &signer), Mode::Install, Asking::Desktop)
        .await
        .expect_err("bad signature");
    assert!(matches!(err, UpdateError::BadSignature(_)), "{err:?}");
    assert_eq!(err.code(), clawdock_core::agents::ErrorCode::UpdateRefused);
}

#[tokio::test]
async fn a_downgrade_is_never_offered_nor_installed() {
    let (feed, signer) = (feed_server().await, Signer::new());
    let deb = fake_deb("0.9.0");
    feed.put("Clawdock_0.9.0_amd64.deb", deb.clone());
    feed.offer(
        "0.9.0",
        &[&linux_key()],
        "Clawdock_0.9.0_amd64.deb",
        &signer.sign_version(&deb, "0.9.0"),
    );
    let config = config(&feed, &signer);
    let (outcome, _) = self_update::run(&config, Mode::Check, Asking::Desktop)
        .await
        .expect("check");
    assert_eq!(
        outcome,
        Outcome::UpToDate {
            current: "1.0.0".into(),
            offered: Some("0.9.0".into())
        }
    );
    let err = self_update::run(&config, Mode::Install, Asking::Desktop)
        .await
        .expect_err("downgrade");
    assert!(matches!(err, UpdateError::NotNewer { .. }), "{err:?}");
    assert!(err.to_string().contains("a downgrade is refused"), "{err}");
}

/// The feed is not signed: a feed announcing 2.0.0 for a package signed as 0.9.0
/// (an older release, validly signed) is refused by the signed version.
#[tokio::test]
async fn a_feed_whose_version_differs_from_the_signed_one_is_refused() {
    let (feed, signer) = (feed_server().await, Signer::new());
    let old = fake_deb("0.9.0");
    feed.put("Clawdock_0.9.0_amd64.deb", old.clone());
    feed.offer(
        "2.0.0",
        &[&linux_key()],
        "Clawdock_0.9.0_amd64.deb",
        &signer.sign_version(&old, "0.9.0"),
    );
    let err = self_update::run(&config(&feed, &signer), Mode::Install, Asking::Desktop)
        .await
        .expect_err("mismatch");
    let UpdateError::SignedVersionMismatch { signed, announced } = &err else {
        panic!("{err:?}");
    };
    assert_eq!((signed.as_str(), announced.as_str()), ("0.9.0", "2.0.0"));

    // And a signature naming no version cannot vouch for any.
    feed.offer(
        "2.0.0",
        &[&linux_key()],
        "Clawdock_0.9.0_amd64.deb",
        &signer.sign(&old, "timestamp:1764583200\tfile:Clawdock_0.9.0_amd64.deb"),
    );
    let err = self_update::run(&config(&feed, &signer), Mode::Install, Asking::Desktop)
        .await
        .expect_err("no version");
    assert!(
        matches!(err, UpdateError::MissingSignedVersion { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_unreachable_feed_says_so() {
    let signer = Signer::new();
    // A port nobody listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let config = UpdateConfig {
        pubkey: signer.pubkey(),
        endpoints: vec![format!("http://127.0.0.1:{port}/latest.json")],
        current: semver::Version::new(1, 0, 0),
        installer: Some(Installer::Deb),
        program: None,
    };
    for mode in [Mode::Check, Mode::Install] {
        let err = self_update::run(&config, mode, Asking::Desktop)
            .await
            .expect_err("unreachable");
        assert!(matches!(err, UpdateError::Unreachable { .. }), "{err:?}");
        assert!(
            err.to_string().contains("Could not reach the update feed"),
            "{err}"
        );
    }
}

/// A feed listing only the AppImage must not be installed over a `.deb` install
/// (the trackers' "feed breaking every .deb install").
#[tokio::test]
async fn a_feed_with_only_an_appimage_offers_nothing_to_a_deb_install() {
    let (feed, signer) = (feed_server().await, Signer::new());
    let image = b"\x7fELF an AppImage".to_vec();
    feed.put("Clawdock_1.1.0_amd64.AppImage", image.clone());
    feed.offer(
        "1.1.0",
        &[&format!("{}-appimage", linux_key())],
        "Clawdock_1.1.0_amd64.AppImage",
        &signer.sign_version(&image, "1.1.0"),
    );
    let err = self_update::run(&config(&feed, &signer), Mode::Check, Asking::Desktop)
        .await
        .expect_err("no deb");
    assert!(matches!(err, UpdateError::NoPackage { .. }), "{err:?}");
}

/// Signed, of the right version, but not a Debian package: refused before dpkg.
#[tokio::test]
async fn a_signed_file_that_is_no_package_is_not_handed_to_dpkg() {
    let (feed, signer) = (feed_server().await, Signer::new());
    let junk = b"#!/bin/sh\necho not a package\n".to_vec();
    feed.put("Clawdock_1.1.0_amd64.deb", junk.clone());
    feed.offer(
        "1.1.0",
        &[&linux_key()],
        "Clawdock_1.1.0_amd64.deb",
        &signer.sign_version(&junk, "1.1.0"),
    );
    let err = self_update::run(&config(&feed, &signer), Mode::Install, Asking::Desktop)
        .await
        .expect_err("junk");
    assert!(matches!(err, UpdateError::NotAPackage { .. }), "{err:?}");
}

#[tokio::test]
async fn a_build_without_a_feed_or_a_key_says_so() {
    let signer = Signer::new();
    let mut config = UpdateConfig {
        pubkey: signer.pubkey(),
        endpoints: vec![],
        current: semver::Version::new(1, 0, 0),
        installer: None,
        program: None,
    };
    let err = self_update::run(&config, Mode::Check, Asking::Desktop)
        .await
        .expect_err("no feed");
    assert!(matches!(err, UpdateError::NoFeed), "{err:?}");
    config.endpoints = vec!["http://127.0.0.1:9/latest.json".into()];
    config.pubkey.clear();
    let err = self_update::run(&config, Mode::Check, Asking::Desktop)
        .await
        .expect_err("no key");
    assert!(matches!(err, UpdateError::NoKey), "{err:?}");
}
