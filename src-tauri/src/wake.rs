//! Resume from sleep: a laptop that slept may come back with a Podman machine that
//! did not. On Linux logind says so (`PrepareForSleep(false)` on the system bus);
//! everywhere, the core also notices the wall clock jumping past the monotonic one.
//! Either way the engine is checked within seconds and the agents brought in line.

use clawdock_core::Clawdock;

/// Follows logind's sleep signal for as long as the core runs (Linux); elsewhere
/// the core's clock watch covers resume.
pub fn follow(core: &Clawdock) {
    #[cfg(target_os = "linux")]
    {
        let follower = core.clone();
        core.spawn_background(async move {
            if let Err(e) = logind::follow(&follower).await {
                tracing::info!(error = %e, "no logind sleep signal; resume is noticed by the clock watch");
            }
        });
    }
    #[cfg(not(target_os = "linux"))]
    let _ = core;
}

#[cfg(target_os = "linux")]
mod logind {
    use clawdock_core::Clawdock;
    use futures::StreamExt;

    pub async fn follow(core: &Clawdock) -> zbus::Result<()> {
        // `DBUS_SYSTEM_BUS_ADDRESS` names another bus (the tests' own).
        let bus = zbus::Connection::system().await?;
        let rule = zbus::MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .interface("org.freedesktop.login1.Manager")?
            .member("PrepareForSleep")?
            .build();
        let mut signals = zbus::MessageStream::for_match_rule(rule, &bus, None).await?;
        tracing::info!("following logind's sleep signal");
        while let Some(message) = signals.next().await {
            let going_to_sleep: bool = match message.and_then(|m| m.body().deserialize()) {
                Ok(flag) => flag,
                Err(e) => {
                    tracing::debug!(error = %e, "unreadable PrepareForSleep");
                    continue;
                }
            };
            if !going_to_sleep {
                tracing::info!("resumed from sleep; checking Podman");
                let state = core.check_engine().await;
                tracing::info!(?state, "engine after resume");
            }
        }
        Ok(())
    }
}
