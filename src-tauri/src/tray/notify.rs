//! The tray app's notifications. On Linux: the Desktop Notifications interface on
//! the session bus, on one connection kept for the app's life (GNOME's server takes
//! a notification away when the connection that sent it closes). On macOS and
//! Windows: the platform's own, through notify-rust, as Tauri's notification plugin
//! sent them for the app before. Failures are logged, never shown: nothing else
//! could show them.

/// The name and icon the notifications carry: the program's, as before.
#[cfg(target_os = "linux")]
const APP: &str = "clawdock-app";

#[derive(Clone, Default)]
pub struct Notifier {
    #[cfg(target_os = "linux")]
    bus: std::sync::Arc<tokio::sync::OnceCell<zbus::Connection>>,
}

impl Notifier {
    pub async fn show(&self, title: &str, body: &str) {
        if let Err(e) = self.send(title, body).await {
            tracing::debug!(error = %e, "notification not shown");
        }
    }

    #[cfg(target_os = "linux")]
    async fn send(&self, title: &str, body: &str) -> zbus::Result<()> {
        let bus = self.bus.get_or_try_init(zbus::Connection::session).await?;
        let hints: std::collections::HashMap<&str, zbus::zvariant::Value<'_>> =
            std::collections::HashMap::new();
        let actions: [&str; 0] = [];
        bus.call_method(
            Some("org.freedesktop.Notifications"),
            "/org/freedesktop/Notifications",
            Some("org.freedesktop.Notifications"),
            "Notify",
            // app name, replaces id, icon, summary, body, actions, hints, timeout
            // (-1: the server's default)
            &(APP, 0u32, APP, title, body, &actions[..], hints, -1i32),
        )
        .await?;
        Ok(())
    }

    #[cfg(any(windows, target_os = "macos"))]
    async fn send(&self, title: &str, body: &str) -> Result<(), NotifyError> {
        let (title, body) = (title.to_owned(), body.to_owned());
        tokio::task::spawn_blocking(move || native::show(&title, &body)).await??;
        Ok(())
    }
}

#[cfg(any(windows, target_os = "macos"))]
#[derive(Debug, thiserror::Error)]
enum NotifyError {
    #[error(transparent)]
    Platform(#[from] notify_rust::error::Error),
    #[error("the notification's thread ended: {0}")]
    Thread(#[from] tokio::task::JoinError),
}

/// The app's identifier (`tauri.conf.json`): what macOS and Windows file the
/// notifications under.
#[cfg(any(windows, target_os = "macos", test))]
const IDENTIFIER: &str = "dev.clawdock.Clawdock";

#[cfg(any(windows, target_os = "macos"))]
mod native {
    use super::IDENTIFIER;

    pub fn show(title: &str, body: &str) -> Result<(), notify_rust::error::Error> {
        let mut notification = notify_rust::Notification::new();
        notification.summary(title).body(body).auto_icon();
        #[cfg(windows)]
        if installed() {
            notification.app_id(IDENTIFIER);
        }
        #[cfg(target_os = "macos")]
        as_the_app();
        notification.show()?;
        Ok(())
    }

    /// Windows files a notification under an app id only for an installed app; a
    /// build run from `target/` has none.
    #[cfg(windows)]
    fn installed() -> bool {
        let sep = std::path::MAIN_SEPARATOR;
        std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|dir| dir.display().to_string()))
            .is_some_and(|dir| {
                !dir.ends_with(&format!("{sep}target{sep}debug"))
                    && !dir.ends_with(&format!("{sep}target{sep}release"))
            })
    }

    /// macOS shows a notification as an app's: this one's (a build outside the
    /// bundle borrows Terminal's, which exists everywhere), set once per process.
    #[cfg(target_os = "macos")]
    fn as_the_app() {
        static SET: std::sync::Once = std::sync::Once::new();
        SET.call_once(|| {
            let app = if cfg!(debug_assertions) {
                "com.apple.Terminal"
            } else {
                IDENTIFIER
            };
            if let Err(e) = notify_rust::set_application(app) {
                tracing::debug!(error = %e, "notifications keep the default application");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_identifier_is_the_bundle_s() {
        let config: serde_json::Value =
            serde_json::from_str(include_str!("../../../tauri.conf.json"))
                .expect("tauri.conf.json");
        assert_eq!(config["identifier"], super::IDENTIFIER);
    }
}
