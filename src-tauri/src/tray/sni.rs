//! The tray on Linux: a StatusNotifierItem and its menu (`com.canonical.dbusmenu`)
//! on the session bus, through ksni, which the desktop's tray host draws (KDE,
//! GNOME's AppIndicator extension, XFCE, ...). No GTK in the tray app: the tray is
//! D-Bus messages, and clicks come back as the menu's typed actions.

use std::process::ExitCode;

use ksni::menu::{CheckmarkItem, StandardItem, SubMenu};
use ksni::{MenuItem, OfflineReason, TrayMethods};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

use super::launch::Launched;
use super::menu::{Action, Item};
use super::shell::{self, Start, TrayContent, TrayError, TrayView};

/// The item's id and title as the tray had them under libayatana (Tauri's tray):
/// hosts remember the user's choices for an item (shown, hidden) by its id, and
/// show the title where there is no tooltip (libayatana sent none).
const ID: &str = "tray-icon tray app main-tray";
const TITLE: &str = "clawdock-app";

/// Runs the tray app on the async runtime until its exit.
pub fn run(runtime: &Runtime, launched: Launched, start: Start) -> ExitCode {
    runtime.block_on(async move {
        let content = shell::content(&launched.core, None);
        let (clicks, clicked) = mpsc::unbounded_channel();
        let tray = match SniTray::spawn(content.clone(), clicks).await {
            Ok(tray) => tray,
            Err(e) => {
                clawdock::tell!("clawdock: {e}");
                // The app will not run: the routine runs here or never.
                launched.ending.finish().await;
                return ExitCode::FAILURE;
            }
        };
        let code = shell::run(launched, &tray, clicked, start, content).await;
        tray.handle.shutdown().await;
        code
    })
}

pub struct SniTray {
    handle: ksni::Handle<Sni>,
}

impl SniTray {
    async fn spawn(
        content: TrayContent,
        clicks: mpsc::UnboundedSender<Action>,
    ) -> Result<Self, TrayError> {
        let sni = Sni {
            pixmap: pixmap(content.icon),
            content,
            clicks,
        };
        // Without a tray host yet (a desktop still starting, or none), the item
        // is on the bus all the same and registers once a host appears.
        let handle = sni.assume_sni_available(true).spawn().await?;
        Ok(Self { handle })
    }
}

impl TrayView for SniTray {
    async fn show(&self, content: &TrayContent) -> Result<(), TrayError> {
        let content = content.clone();
        self.handle
            .update(move |sni| {
                if sni.content.icon != content.icon {
                    sni.pixmap = pixmap(content.icon);
                }
                sni.content = content;
            })
            .await
            .ok_or(TrayError::Gone)
    }
}

/// The item as ksni serves it.
struct Sni {
    content: TrayContent,
    /// The icon's pixels, made once per icon.
    pixmap: Vec<ksni::Icon>,
    clicks: mpsc::UnboundedSender<Action>,
}

impl ksni::Tray for Sni {
    /// A click on the icon opens the menu, as on the other platforms.
    const MENU_ON_ACTIVATE: bool = true;

    fn id(&self) -> String {
        ID.into()
    }

    fn title(&self) -> String {
        TITLE.into()
    }

    fn icon_pixmap(&self) -> Vec<ksni::Icon> {
        self.pixmap.clone()
    }

    fn menu(&self) -> Vec<MenuItem<Self>> {
        self.content.items.iter().map(render).collect()
    }

    fn watcher_online(&self) {
        tracing::info!("a tray host is on the session bus");
    }

    /// No host to draw the tray (yet): the item stays on the bus. Where none ever
    /// comes the menu is out of reach; telling the shell from here, so that it opens
    /// the window and says where the controls are, is issue 31's.
    fn watcher_offline(&self, reason: OfflineReason) -> bool {
        tracing::info!(
            ?reason,
            "no tray host on the session bus: the tray shows once one starts"
        );
        true
    }
}

impl Sni {
    fn clicked(&self, action: Action) {
        if self.clicks.send(action).is_err() {
            tracing::debug!(?action, "clicked while the app ends");
        }
    }
}

fn render(item: &Item) -> MenuItem<Sni> {
    match item {
        Item::Label(text) => StandardItem {
            label: mnemonic_free(text),
            enabled: false,
            ..Default::default()
        }
        .into(),
        Item::Separator => MenuItem::Separator,
        Item::Button {
            label,
            action,
            enabled,
        } => {
            let action = *action;
            StandardItem {
                label: mnemonic_free(label),
                enabled: *enabled,
                activate: Box::new(move |sni: &mut Sni| sni.clicked(action)),
                ..Default::default()
            }
            .into()
        }
        Item::Check {
            label,
            action,
            checked,
        } => {
            let action = *action;
            CheckmarkItem {
                label: mnemonic_free(label),
                checked: *checked,
                activate: Box::new(move |sni: &mut Sni| sni.clicked(action)),
                ..Default::default()
            }
            .into()
        }
        Item::Submenu { label, items } => SubMenu {
            label: mnemonic_free(label),
            submenu: items.iter().map(render).collect(),
            ..Default::default()
        }
        .into(),
    }
}

/// A label shown as written: dbusmenu takes `_` for a mnemonic and `__` for an
/// underscore (an agent named `my_agent`).
fn mnemonic_free(label: &str) -> String {
    label.replace('_', "__")
}

/// The icon as the StatusNotifierItem spec wants it: ARGB32, network byte order.
fn pixmap(png: &[u8]) -> Vec<ksni::Icon> {
    let pixels = super::icons::pixels(png);
    let data = pixels
        .rgba
        .chunks_exact(4)
        .flat_map(|p| [p[3], p[0], p[1], p[2]])
        .collect();
    vec![ksni::Icon {
        width: i32::try_from(pixels.width).unwrap_or(0),
        height: i32::try_from(pixels.height).unwrap_or(0),
        data,
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_keep_their_underscores_and_icons_are_argb() {
        assert_eq!(mnemonic_free("my_agent — running"), "my__agent — running");
        let icon = &pixmap(super::super::icons::png(
            clawdock_core::status::StateName::Ready,
            false,
        ))[0];
        assert_eq!((icon.width, icon.height), (64, 64));
        let rgba = super::super::icons::pixels(super::super::icons::png(
            clawdock_core::status::StateName::Ready,
            false,
        ))
        .rgba;
        assert_eq!(icon.data[..4], [rgba[3], rgba[0], rgba[1], rgba[2]]);
    }
}
