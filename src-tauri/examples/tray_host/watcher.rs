//! A stand-in `org.kde.StatusNotifierWatcher` that says a tray host is registered,
//! as KDE's, GNOME's AppIndicator extension and XFCE's panels do: headless sessions
//! (the desktop tests, the tray benchmark) are then desktops with a tray, and the
//! tray app does not open its window for want of one.

pub struct TrayHostWatcher;

#[zbus::interface(name = "org.kde.StatusNotifierWatcher")]
impl TrayHostWatcher {
    fn register_status_notifier_item(&self, _service: &str) {}

    fn register_status_notifier_host(&self, _service: &str) {}

    #[zbus(property)]
    fn is_status_notifier_host_registered(&self) -> bool {
        true
    }

    #[zbus(property)]
    fn protocol_version(&self) -> i32 {
        0
    }

    #[zbus(property)]
    fn registered_status_notifier_items(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Serves the watcher on the session bus at `address` until the connection drops.
pub fn serve(address: &str) -> zbus::Result<zbus::blocking::Connection> {
    zbus::blocking::connection::Builder::address(address)?
        .name("org.kde.StatusNotifierWatcher")?
        .serve_at("/StatusNotifierWatcher", TrayHostWatcher)?
        .build()
}
