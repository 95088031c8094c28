//! Launching the tray app at login: the platform's login item. On Linux and other
//! XDG desktops an autostart `.desktop` file in `$XDG_CONFIG_HOME/autostart`
//! (written here: the spec is short and the common crate ignores
//! `XDG_CONFIG_HOME` and leaves `Exec` unquoted); on macOS a LaunchAgent and on
//! Windows the `Run` registry key, through the `auto-launch` crate.

use std::path::{Path, PathBuf};

/// The argument the login item passes: the app then starts in the tray only.
pub const AT_LOGIN_ARG: &str = "--at-login";

const APP_NAME: &str = "Clawdock";

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LoginItemError(pub String);

/// The login item that starts `app` (the tray app's executable).
#[derive(Debug, Clone)]
pub struct LoginItem {
    app: PathBuf,
    #[cfg(not(any(target_os = "macos", windows)))]
    autostart_dir: Option<PathBuf>,
}

impl LoginItem {
    pub fn new(app: PathBuf) -> Self {
        Self {
            #[cfg(not(any(target_os = "macos", windows)))]
            autostart_dir: xdg_config_home(
                std::env::var_os("XDG_CONFIG_HOME"),
                std::env::var_os("HOME"),
            )
            .map(|c| c.join("autostart")),
            app,
        }
    }
}

#[cfg(not(any(target_os = "macos", windows)))]
impl LoginItem {
    /// A login item written to `dir` (tests).
    pub fn in_dir(app: PathBuf, dir: PathBuf) -> Self {
        Self {
            app,
            autostart_dir: Some(dir),
        }
    }

    fn file(&self) -> Result<PathBuf, LoginItemError> {
        self.autostart_dir
            .as_ref()
            .map(|d| d.join("clawdock.desktop"))
            .ok_or_else(|| LoginItemError("Neither XDG_CONFIG_HOME nor HOME is set.".into()))
    }

    pub fn enabled(&self) -> Result<bool, LoginItemError> {
        Ok(std::fs::symlink_metadata(self.file()?).is_ok())
    }

    /// Writes the entry atomically: a new file (never opened through a link
    /// someone left at its name) renamed over the old one, so a crash leaves the
    /// old entry or the new one, and a link is replaced, not written through.
    pub fn set(&self, on: bool) -> Result<(), LoginItemError> {
        let file = self.file()?;
        let failed = |e: std::io::Error| LoginItemError(format!("{}: {e}", file.display()));
        if on {
            refuse_temporary(&self.app)?;
            let entry = desktop_entry(&self.app)?;
            crate::store::write_plain(&file, entry.as_bytes())
                .map_err(|e| LoginItemError(e.to_string()))
        } else {
            match std::fs::remove_file(&file) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(failed(e)),
                _ => Ok(()),
            }
        }
    }
}

#[cfg(any(target_os = "macos", windows))]
impl LoginItem {
    fn platform(&self) -> Result<auto_launch::AutoLaunch, LoginItemError> {
        let mut builder = auto_launch::AutoLaunchBuilder::new();
        builder
            .set_app_name(APP_NAME)
            .set_app_path(&self.app.to_string_lossy())
            .set_args(&[AT_LOGIN_ARG]);
        #[cfg(target_os = "macos")]
        builder.set_use_launch_agent(true);
        builder.build().map_err(|e| LoginItemError(e.to_string()))
    }

    pub fn enabled(&self) -> Result<bool, LoginItemError> {
        self.platform()?
            .is_enabled()
            .map_err(|e| LoginItemError(e.to_string()))
    }

    pub fn set(&self, on: bool) -> Result<(), LoginItemError> {
        if on {
            refuse_temporary(&self.app)?;
        }
        let item = self.platform()?;
        if on { item.enable() } else { item.disable() }.map_err(|e| LoginItemError(e.to_string()))
    }
}

/// The program the login item starts: the running executable, or, when it runs
/// from an AppImage's mount (`/tmp/.mount_<random>/...`, gone once the app
/// quits), the AppImage itself, which its runtime names in `$APPIMAGE`. An
/// `APPIMAGE` inherited from another AppImage's process does not count when the
/// executable is not in such a mount.
pub fn app_to_launch(exe: &Path, appimage: Option<&std::ffi::OsStr>) -> PathBuf {
    let mounted = exe
        .components()
        .any(|c| c.as_os_str().to_string_lossy().starts_with(".mount_"));
    match appimage.map(Path::new) {
        Some(image) if mounted && image.is_absolute() => image.to_path_buf(),
        _ => exe.to_path_buf(),
    }
}

/// Refuses to start at login a program in a temporary place: a folder every local
/// user may write (`/tmp`, `/var/tmp`, `/dev/shm`, the temporary folder), an
/// AppImage's mount or macOS's App Translocation copy. Once the app quits, the
/// path is gone and anyone can put a program there for the next login to run.
fn refuse_temporary(app: &Path) -> Result<(), LoginItemError> {
    let shared = [
        std::env::temp_dir(),
        PathBuf::from("/tmp"),
        PathBuf::from("/var/tmp"),
        PathBuf::from("/dev/shm"),
        PathBuf::from("/private/tmp"),
        PathBuf::from("/private/var/tmp"),
    ];
    let passing = app.components().any(|c| {
        let part = c.as_os_str().to_string_lossy();
        part.starts_with(".mount_") || part == "AppTranslocation"
    });
    if passing || shared.iter().any(|dir| app.starts_with(dir)) {
        return Err(LoginItemError(format!(
            "Clawdock runs from a temporary place ({}), which is gone once it quits and which \
             another user could fill; move the app (or the AppImage) to a lasting folder, \
             such as ~/Applications, and start it from there to launch it at login.",
            app.display()
        )));
    }
    Ok(())
}

/// `$XDG_CONFIG_HOME` when set to an absolute path, else `$HOME/.config`.
#[cfg(not(any(target_os = "macos", windows)))]
fn xdg_config_home(
    config: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
) -> Option<PathBuf> {
    config
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| home.map(|h| std::path::Path::new(&h).join(".config")))
}

/// The autostart entry: `Exec` quoted and escaped as the Desktop Entry spec
/// requires (a path may hold spaces, quotes or `%`). A path with a control
/// character is refused: a line break would add keys of its own to the entry.
#[cfg(not(any(target_os = "macos", windows)))]
fn desktop_entry(app: &std::path::Path) -> Result<String, LoginItemError> {
    let path = app.to_string_lossy();
    if path.chars().any(char::is_control) {
        return Err(LoginItemError(format!(
            "The app's path {path:?} holds a control character; move the app to a plain path to launch it at login."
        )));
    }
    let mut quoted = String::from("\"");
    for c in path.chars() {
        if matches!(c, '"' | '`' | '$' | '\\') {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('"');
    // The file's own string escaping comes on top of the Exec quoting.
    let exec = quoted.replace('\\', "\\\\").replace('%', "%%");
    Ok(format!(
        "[Desktop Entry]\n\
         Type=Application\n\
         Name={APP_NAME}\n\
         Comment=Run OpenClaw agents from the tray\n\
         Exec={exec} {AT_LOGIN_ARG}\n\
         Terminal=false\n\
         X-GNOME-Autostart-enabled=true\n"
    ))
}

#[cfg(all(test, not(any(target_os = "macos", windows))))]
mod tests {
    use super::*;

    /// Issue 30, item 7: started from an AppImage, the app runs from the image's
    /// mount, `/tmp/.mount_<random>`, gone once it quits; the entry named that
    /// path, which another local user can then make and fill (`/tmp` is everyone's).
    /// The entry must name the AppImage itself (`$APPIMAGE`), and a temporary path
    /// must be refused, never written.
    #[test]
    fn an_appimage_is_launched_by_its_own_path_and_temporary_paths_are_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        let autostart = dir.path().join("autostart");
        let mounted = Path::new("/tmp/.mount_ClawdoA1b2C3/usr/bin/clawdock-app");
        let image = std::ffi::OsString::from("/home/u/Applications/Clawdock.AppImage");
        let app = app_to_launch(mounted, Some(&image));
        assert_eq!(app, Path::new("/home/u/Applications/Clawdock.AppImage"));
        LoginItem::in_dir(app, autostart.clone())
            .set(true)
            .expect("on");
        let text = std::fs::read_to_string(autostart.join("clawdock.desktop")).expect("entry");
        assert!(
            text.contains("Exec=\"/home/u/Applications/Clawdock.AppImage\" --at-login\n"),
            "{text}"
        );
        // An APPIMAGE inherited from another AppImage's process does not count
        // when this app does not run from a mount.
        assert_eq!(
            app_to_launch(Path::new("/usr/bin/clawdock-app"), Some(&image)),
            Path::new("/usr/bin/clawdock-app")
        );
        for temporary in [
            app_to_launch(mounted, None),
            app_to_launch(
                mounted,
                Some(&std::ffi::OsString::from("/tmp/Clawdock.AppImage")),
            ),
            PathBuf::from("/var/tmp/clawdock-app"),
            PathBuf::from("/dev/shm/x/clawdock-app"),
            std::env::temp_dir().join("clawdock-app"),
        ] {
            let entry = autostart.join("clawdock.desktop");
            if entry.exists() {
                std::fs::remove_file(&entry).expect("clean");
            }
            let err = LoginItem::in_dir(temporary.clone(), autostart.clone())
                .set(true)
                .expect_err("a temporary path is refused");
            assert!(err.to_string().contains("temporary"), "{err}");
            assert!(!entry.exists(), "{}: nothing written", temporary.display());
        }
    }

    #[test]
    fn the_autostart_file_is_written_and_removed() {
        let dir = tempfile::tempdir().expect("tmp");
        let autostart = dir.path().join("autostart");
        let item = LoginItem::in_dir("/opt/My Apps/clawdock".into(), autostart.clone());
        assert!(!item.enabled().expect("read"));
        item.set(false).expect("off when already off");
        item.set(true).expect("on");
        assert!(item.enabled().expect("read"));
        let text = std::fs::read_to_string(autostart.join("clawdock.desktop")).expect("file");
        assert!(
            text.contains("Exec=\"/opt/My Apps/clawdock\" --at-login\n"),
            "{text}"
        );
        item.set(false).expect("off");
        assert!(!item.enabled().expect("read"));
        assert!(!autostart.join("clawdock.desktop").exists());
    }

    #[test]
    fn exec_escapes_what_the_spec_reserves() {
        let text = desktop_entry(std::path::Path::new("/a\"b/$c/100%/d\\e")).expect("entry");
        assert!(
            text.contains(r#"Exec="/a\\"b/\\$c/100%%/d\\\\e" --at-login"#),
            "{text}"
        );
    }

    /// Issue 23: the entry was written in place through whatever was at its name
    /// (a link to another file of the user's), and a line break in the path added
    /// keys of its own.
    #[test]
    fn the_entry_replaces_a_link_and_refuses_control_characters() {
        let dir = tempfile::tempdir().expect("tmp");
        let autostart = dir.path().join("autostart");
        std::fs::create_dir(&autostart).expect("mkdir");
        let victim = dir.path().join("bashrc");
        std::fs::write(&victim, "keep me\n").expect("victim");
        std::os::unix::fs::symlink(&victim, autostart.join("clawdock.desktop")).expect("link");
        let item = LoginItem::in_dir("/opt/clawdock".into(), autostart.clone());
        item.set(true).expect("on");
        assert_eq!(
            std::fs::read_to_string(&victim).expect("victim"),
            "keep me\n"
        );
        let entry = autostart.join("clawdock.desktop");
        assert!(std::fs::symlink_metadata(&entry).expect("entry").is_file());
        let leftovers = std::fs::read_dir(&autostart).expect("dir").count();
        assert_eq!(leftovers, 1, "no temporary file left");

        let injected = LoginItem::in_dir("/opt/x\nExec=/bin/evil".into(), autostart.clone());
        let err = injected.set(true).expect_err("refused");
        assert!(err.to_string().contains("control character"), "{err}");
        assert!(std::fs::read_to_string(&entry)
            .expect("entry")
            .contains("Exec=\"/opt/clawdock\" --at-login"));
    }

    #[test]
    fn config_home_follows_xdg() {
        assert_eq!(
            xdg_config_home(Some("/x/cfg".into()), Some("/home/u".into())),
            Some(PathBuf::from("/x/cfg"))
        );
        assert_eq!(
            xdg_config_home(Some("relative".into()), Some("/home/u".into())),
            Some(PathBuf::from("/home/u/.config")),
            "a relative XDG_CONFIG_HOME is ignored, as the spec says"
        );
        assert_eq!(xdg_config_home(None, None), None);
    }
}
