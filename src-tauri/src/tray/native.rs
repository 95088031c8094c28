//! Renders the menu model into Tauri's tray: icon per state, tooltip, and a menu
//! whose item ids resolve to typed actions through a table.

use std::collections::HashMap;
use std::sync::Mutex;

use clawdock_core::status::StateName;
use tauri::image::Image;
use tauri::menu::{CheckMenuItem, IsMenuItem, Menu, MenuItem, PredefinedMenuItem, Submenu};
use tauri::tray::{TrayIcon, TrayIconBuilder};
use tauri::{AppHandle, Manager, Runtime};

use super::menu::{Action, Item};

pub const TRAY_ID: &str = "main-tray";

/// The tray icon of each state, drawn by `icons/make-icons.sh`.
pub fn icon_for(state: StateName, stopping: bool) -> Image<'static> {
    let bytes: &'static [u8] = if stopping {
        include_bytes!("../../../icons/tray-stopping.png")
    } else {
        match state {
            StateName::Unavailable => include_bytes!("../../../icons/tray-missing.png"),
            StateName::Absent => include_bytes!("../../../icons/tray-absent.png"),
            StateName::Stopped => include_bytes!("../../../icons/tray-stopped.png"),
            StateName::Probing | StateName::Starting => {
                include_bytes!("../../../icons/tray-starting.png")
            }
            StateName::Error => include_bytes!("../../../icons/tray-error.png"),
            StateName::Ready => include_bytes!("../../../icons/tray-ready.png"),
        }
    };
    Image::from_bytes(bytes).unwrap_or_else(|_| Image::new(&[0, 0, 0, 0], 1, 1))
}

/// Menu item id -> action, rebuilt with every menu.
#[derive(Default)]
pub struct ActionTable(Mutex<HashMap<String, Action>>);

impl ActionTable {
    pub fn lookup(&self, id: &str) -> Option<Action> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(id)
            .copied()
    }

    fn replace(&self, table: HashMap<String, Action>) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = table;
    }
}

pub fn build_tray<R: Runtime>(
    app: &AppHandle<R>,
    items: &[Item],
    icon: Image<'static>,
    tooltip: &str,
) -> tauri::Result<TrayIcon<R>> {
    let menu = render(app, items)?;
    TrayIconBuilder::with_id(TRAY_ID)
        .icon(icon)
        .icon_as_template(cfg!(target_os = "macos"))
        .tooltip(tooltip)
        .menu(&menu)
        .show_menu_on_left_click(true)
        .build(app)
}

pub fn update_tray<R: Runtime>(
    app: &AppHandle<R>,
    items: &[Item],
    icon: Image<'static>,
    tooltip: &str,
) -> tauri::Result<()> {
    let Some(tray) = app.tray_by_id(TRAY_ID) else {
        return Ok(());
    };
    let menu = render(app, items)?;
    tray.set_menu(Some(menu))?;
    tray.set_icon(Some(icon))?;
    tray.set_tooltip(Some(tooltip))?;
    Ok(())
}

fn render<R: Runtime>(app: &AppHandle<R>, items: &[Item]) -> tauri::Result<Menu<R>> {
    let mut table = HashMap::new();
    let mut counter = 0usize;
    let menu = Menu::new(app)?;
    for item in items {
        let built = render_item(app, item, &mut table, &mut counter)?;
        menu.append(built.as_ref())?;
    }
    if let Some(actions) = app.try_state::<ActionTable>() {
        actions.replace(table);
    }
    Ok(menu)
}

fn render_item<R: Runtime>(
    app: &AppHandle<R>,
    item: &Item,
    table: &mut HashMap<String, Action>,
    counter: &mut usize,
) -> tauri::Result<Box<dyn IsMenuItem<R>>> {
    *counter += 1;
    Ok(match item {
        Item::Label(text) => Box::new(MenuItem::with_id(
            app,
            format!("label-{counter}"),
            text,
            false,
            None::<&str>,
        )?),
        Item::Separator => Box::new(PredefinedMenuItem::separator(app)?),
        Item::Button {
            label,
            action,
            enabled,
        } => {
            let id = format!("item-{counter}");
            table.insert(id.clone(), *action);
            Box::new(MenuItem::with_id(app, id, label, *enabled, None::<&str>)?)
        }
        Item::Check {
            label,
            action,
            checked,
        } => {
            let id = format!("item-{counter}");
            table.insert(id.clone(), *action);
            Box::new(CheckMenuItem::with_id(
                app,
                id,
                label,
                true,
                *checked,
                None::<&str>,
            )?)
        }
        Item::Submenu { label, items } => {
            let sub = Submenu::with_id(app, format!("sub-{counter}"), label, true)?;
            for inner in items {
                let built = render_item(app, inner, table, counter)?;
                sub.append(built.as_ref())?;
            }
            Box::new(sub)
        }
    })
}
