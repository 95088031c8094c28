//! The tray on macOS and Windows: the platform's own status item or
//! notification-area icon (tray-icon, the crate under Tauri's tray API) on the
//! main thread's event loop (tao, Tauri's own). No web view here either. The shell
//! runs on the async runtime and sends what to show through the loop's proxy; menu
//! clicks come back as typed actions through a table of the menu's item ids.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use tao::event::{Event, StartCause};
use tao::event_loop::{ControlFlow, EventLoopBuilder, EventLoopProxy};
use tao::platform::run_return::EventLoopExtRunReturn;
use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tray_icon::menu::{
    CheckMenuItem, IsMenuItem, Menu, MenuEvent, MenuItem, PredefinedMenuItem, Submenu,
};
use tray_icon::{Icon, TrayIcon, TrayIconBuilder};

use super::launch::Launched;
use super::menu::{Action, Item};
use super::shell::{self, Start, TrayContent, TrayError, TrayView};

const TRAY_ID: &str = "main-tray";

/// What the shell asks of the main thread's loop.
pub enum Command {
    Show(TrayContent),
    /// The shell is done: the loop ends and the process exits with this code.
    Exit(ExitCode),
}

pub struct NativeTray(EventLoopProxy<Command>);

impl TrayView for NativeTray {
    async fn show(&self, content: &TrayContent) -> Result<(), TrayError> {
        self.0
            .send_event(Command::Show(content.clone()))
            .map_err(|_closed| TrayError::Gone)
    }
}

/// Menu item id -> action, rebuilt with every menu.
#[derive(Default, Clone)]
struct ActionTable(Arc<Mutex<HashMap<String, Action>>>);

impl ActionTable {
    fn lookup(&self, id: &str) -> Option<Action> {
        self.lock().get(id).copied()
    }

    fn replace(&self, table: HashMap<String, Action>) {
        *self.lock() = table;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Action>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Runs the tray on this (the main) thread until the app's exit.
pub fn run(runtime: &Runtime, launched: Launched, start: Start) -> ExitCode {
    let mut event_loop = EventLoopBuilder::<Command>::with_user_event().build();
    // A menu-bar app: no Dock icon and no app menu of its own. The window's process
    // has both while it is open.
    #[cfg(target_os = "macos")]
    {
        use tao::platform::macos::{ActivationPolicy, EventLoopExtMacOS};
        event_loop.set_activation_policy(ActivationPolicy::Accessory);
    }
    let proxy = event_loop.create_proxy();
    let table = ActionTable::default();
    let (clicks, clicked) = mpsc::unbounded_channel();
    {
        let table = table.clone();
        MenuEvent::set_event_handler(Some(move |event: MenuEvent| {
            let Some(action) = table.lookup(event.id().as_ref()) else {
                return;
            };
            if clicks.send(action).is_err() {
                tracing::debug!(?action, "clicked while the app ends");
            }
        }));
    }
    let ending = launched.ending.clone();
    let first = shell::content(&launched.core, None);
    let mut to_run = Some((launched, clicked, start, first.clone()));
    let mut tray: Option<TrayIcon> = None;
    let mut code = ExitCode::SUCCESS;
    event_loop.run_return(|event, _, control_flow| {
        *control_flow = ControlFlow::Wait;
        match event {
            // The status item exists only once the loop runs (macOS).
            Event::NewEvents(StartCause::Init) => match build(&first, &table) {
                Ok(icon) => {
                    tray = Some(icon);
                    if let Some((launched, clicked, start, shown)) = to_run.take() {
                        let proxy = proxy.clone();
                        runtime.spawn(async move {
                            let tray = NativeTray(proxy.clone());
                            let code = shell::run(launched, &tray, clicked, start, shown).await;
                            if proxy.send_event(Command::Exit(code)).is_err() {
                                tracing::error!("the event loop ended before the app did");
                            }
                        });
                    }
                }
                Err(e) => {
                    clawdock::tell!("clawdock: {e}");
                    // The app will not run: the routine runs here or never.
                    runtime.block_on(ending.finish());
                    code = ExitCode::FAILURE;
                    *control_flow = ControlFlow::Exit;
                }
            },
            Event::UserEvent(Command::Show(content)) => {
                if let Some(icon) = &tray {
                    if let Err(e) = update(icon, &content, &table) {
                        tracing::warn!(error = %e, "could not update the tray");
                    }
                }
            }
            Event::UserEvent(Command::Exit(done)) => {
                code = done;
                *control_flow = ControlFlow::Exit;
            }
            // macOS ends the loop at logout without asking anyone: the routine runs
            // here, blocking, before the process goes.
            Event::LoopDestroyed if !ending.finished() => {
                tracing::info!("the event loop is ending; running the shutdown routine");
                code = runtime.block_on(ending.finish());
            }
            _ => {}
        }
    });
    code
}

fn build(content: &TrayContent, table: &ActionTable) -> Result<TrayIcon, TrayError> {
    Ok(TrayIconBuilder::new()
        .with_id(TRAY_ID)
        .with_icon(icon(content.icon)?)
        .with_icon_as_template(cfg!(target_os = "macos"))
        .with_tooltip(&content.tooltip)
        .with_menu(Box::new(render(&content.items, table)?))
        .with_menu_on_left_click(true)
        .build()?)
}

fn update(tray: &TrayIcon, content: &TrayContent, table: &ActionTable) -> Result<(), TrayError> {
    tray.set_menu(Some(Box::new(render(&content.items, table)?)));
    tray.set_icon_with_as_template(Some(icon(content.icon)?), cfg!(target_os = "macos"))?;
    tray.set_tooltip(Some(&content.tooltip))?;
    Ok(())
}

fn icon(png: &[u8]) -> Result<Icon, TrayError> {
    let pixels = super::icons::pixels(png);
    Ok(Icon::from_rgba(pixels.rgba, pixels.width, pixels.height)?)
}

fn render(items: &[Item], table: &ActionTable) -> Result<Menu, TrayError> {
    let mut ids = HashMap::new();
    let mut counter = 0usize;
    let menu = Menu::new();
    for item in items {
        let built = render_item(item, &mut ids, &mut counter)?;
        menu.append(built.as_ref())?;
    }
    table.replace(ids);
    Ok(menu)
}

fn render_item(
    item: &Item,
    ids: &mut HashMap<String, Action>,
    counter: &mut usize,
) -> Result<Box<dyn IsMenuItem>, TrayError> {
    *counter += 1;
    Ok(match item {
        Item::Label(text) => Box::new(MenuItem::with_id(
            format!("label-{counter}"),
            text,
            false,
            None,
        )),
        Item::Separator => Box::new(PredefinedMenuItem::separator()),
        Item::Button {
            label,
            action,
            enabled,
        } => {
            let id = format!("item-{counter}");
            ids.insert(id.clone(), *action);
            Box::new(MenuItem::with_id(id, label, *enabled, None))
        }
        Item::Check {
            label,
            action,
            checked,
        } => {
            let id = format!("item-{counter}");
            ids.insert(id.clone(), *action);
            Box::new(CheckMenuItem::with_id(id, label, true, *checked, None))
        }
        Item::Submenu { label, items } => {
            let sub = Submenu::with_id(format!("sub-{counter}"), label, true);
            for inner in items {
                let built = render_item(inner, ids, counter)?;
                sub.append(built.as_ref())?;
            }
            Box::new(sub)
        }
    })
}
