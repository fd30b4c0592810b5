//! The tray: tao's event loop on the main thread, the agent's runtime on a thread beside it.
//!
//! Menu clicks travel loop → tokio as [`Action`]s; the agent's notices travel tokio → loop as
//! fresh [`TrayView`]s, so a change made through the API or the CLI shows in the menu as soon
//! as the agent reports it. On Linux the item is a StatusNotifierItem over D-Bus (tray-icon's
//! ksni backend): no GTK tray library, and readable by any dbusmenu client.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tao::event::{Event, StartCause};
use tao::event_loop::{ControlFlow, EventLoopBuilder, EventLoopProxy};
use tracing::{info, warn};
use tray_icon::menu::{CheckMenuItem, Menu, MenuEvent, MenuItem, PredefinedMenuItem};
use tray_icon::{Icon, TrayIcon, TrayIconBuilder};

use callhome::api::client::Client;
use callhome::api::dto::StatusDoc;
use callhome::control::{Control, Local, ProgramChange, Remote};
use callhome::datadir::DataDir;
use callhome::programs::{Program, TelemetryMode};

use crate::icon;
use crate::notify::tell;
use crate::view::{Action, Entry, Look, OPTIONAL, TrayView, open_dashboard};

/// The size the tray's pixmap is drawn at (panels scale it to theirs).
const ICON_SIZE: u32 = 32;
/// The view is recomputed at least this often (the compliance clock moves with time).
const REFRESH: Duration = Duration::from_secs(30);
/// How soon `callhome tray` asks again for an agent that does not answer.
const RECONNECT: Duration = Duration::from_secs(10);

/// What reaches the event loop.
#[derive(Debug)]
pub enum UserEvent {
    View(Box<TrayView>),
    Menu(String),
    Exit(i32),
}

/// A future that completes when the tray's "Quit" is chosen.
pub type QuitSignal = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Where the tray gets its state and sends its clicks.
#[derive(Clone)]
pub enum Backend {
    /// The agent in this process (`callhome-tray`).
    Local(Local),
    /// The agent of another process, through its API (`callhome tray`: the desktop's view of
    /// the system service).
    Remote(DataDir),
}

/// Runs the tray on this (the main) thread and `serve` — the agent, its API and notifications,
/// until the quit signal or a stop signal — on `rt` in a thread beside it. Exits the process
/// with `serve`'s exit code.
pub fn run<S, F>(agent: Local, rt: tokio::runtime::Runtime, api_on: bool, serve: S) -> !
where
    S: FnOnce(QuitSignal) -> F + Send + 'static,
    F: Future<Output = i32> + Send + 'static,
{
    event_loop(Backend::Local(agent), rt, api_on, serve)
}

/// Runs the tray as a client of the agent that serves `dir` (its API address and token are
/// read from there; while no agent answers, the menu says so and retries), until "Quit" or
/// `stop` completes.
pub fn run_client<F>(dir: DataDir, rt: tokio::runtime::Runtime, stop: F) -> !
where
    F: Future<Output = ()> + Send + 'static,
{
    event_loop(Backend::Remote(dir), rt, true, move |quit| async move {
        tokio::select! {
            () = stop => {}
            () = quit => {}
        }
        0
    })
}

fn event_loop<S, F>(backend: Backend, rt: tokio::runtime::Runtime, api_on: bool, serve: S) -> !
where
    S: FnOnce(QuitSignal) -> F + Send + 'static,
    F: Future<Output = i32> + Send + 'static,
{
    let event_loop = EventLoopBuilder::<UserEvent>::with_user_event().build();
    let proxy = event_loop.create_proxy();
    let (action_tx, action_rx) = tokio::sync::mpsc::unbounded_channel::<Action>();
    {
        let proxy = proxy.clone();
        MenuEvent::set_event_handler(Some(move |e: MenuEvent| {
            let _ = proxy.send_event(UserEvent::Menu(e.id.0));
        }));
    }
    {
        let proxy = proxy.clone();
        std::thread::Builder::new()
            .name("agent".into())
            .spawn(move || {
                let view_proxy = proxy.clone();
                let code = rt.block_on(async move {
                    let (quit_tx, quit_rx) = tokio::sync::oneshot::channel::<()>();
                    let views = tokio::spawn(views(backend.clone(), view_proxy, api_on));
                    let actions = tokio::spawn(actions(backend, action_rx, quit_tx));
                    let quit: QuitSignal = Box::pin(async move {
                        let _ = quit_rx.await;
                    });
                    let code = serve(quit).await;
                    views.abort();
                    actions.abort();
                    code
                });
                let _ = proxy.send_event(UserEvent::Exit(code));
            })
            .expect("spawning the agent thread");
    }

    let mut tray: Option<Tray> = None;
    let mut pending_view: Option<Box<TrayView>> = None;
    event_loop.run(move |event, _, control_flow| {
        *control_flow = ControlFlow::Wait;
        match event {
            // macOS wants the tray made once the loop runs; the other platforms don't mind.
            Event::NewEvents(StartCause::Init) => match Tray::new() {
                Ok(t) => {
                    if let Some(v) = pending_view.take() {
                        t.show(&v);
                    }
                    tray = Some(t);
                    info!("tray icon ready");
                }
                Err(e) => warn!("cannot show the tray icon ({e}); the agent goes on without it"),
            },
            Event::UserEvent(UserEvent::View(v)) => match &tray {
                Some(t) => t.show(&v),
                None => pending_view = Some(v),
            },
            Event::UserEvent(UserEvent::Menu(id)) => match Action::from_id(&id) {
                Some(a) => {
                    let _ = action_tx.send(a);
                }
                None => warn!("tray: unknown menu item {id:?}"),
            },
            Event::UserEvent(UserEvent::Exit(code)) => {
                tray = None;
                *control_flow = ControlFlow::ExitWithCode(code);
            }
            _ => {}
        }
    })
}

/// The tray icon and its menu items.
struct Tray {
    icon: TrayIcon,
    status: MenuItem,
    telemetry: MenuItem,
    manual: CheckMenuItem,
    programs: Vec<(Program, CheckMenuItem)>,
    upload: MenuItem,
    collect: MenuItem,
    preview: MenuItem,
    dashboard: MenuItem,
    export: MenuItem,
    alerts: MenuItem,
    notifications: CheckMenuItem,
    look: std::cell::Cell<Option<Look>>,
}

fn item(a: Action, text: &str) -> MenuItem {
    MenuItem::with_id(a.id(), text, true, None)
}

impl Tray {
    fn new() -> Result<Tray, String> {
        let status = MenuItem::with_id("status", "callhome: starting…", false, None);
        let telemetry = MenuItem::with_id("program.telemetry", "License Telemetry (mandatory)", false, None);
        let manual = CheckMenuItem::with_id(Action::ToggleManual.id(), "Manual reporting", true, false, None);
        let programs: Vec<(Program, CheckMenuItem)> = OPTIONAL
            .iter()
            .map(|p| (*p, CheckMenuItem::with_id(Action::Toggle(*p).id(), p.title(), true, false, None)))
            .collect();
        let upload = item(Action::Upload, "Upload now");
        let collect = item(Action::Collect, "Collect now");
        let preview = item(Action::Preview, "Preview data…");
        let dashboard = item(Action::Dashboard, "Open dashboard");
        let export = item(Action::Export, "Export for manual upload…");
        let alerts = MenuItem::with_id(Action::Alerts.id(), "No open alerts", false, None);
        let notifications = CheckMenuItem::with_id(Action::ToggleNotifications.id(), "Notifications", true, true, None);
        let quit = item(Action::Quit, "Quit");
        let menu = Menu::new();
        let e = |r: Result<(), tray_icon::menu::Error>| r.map_err(|e| e.to_string());
        e(menu.append(&status))?;
        e(menu.append(&alerts))?;
        e(menu.append(&PredefinedMenuItem::separator()))?;
        e(menu.append(&telemetry))?;
        e(menu.append(&manual))?;
        for (_, p) in &programs {
            e(menu.append(p))?;
        }
        e(menu.append(&PredefinedMenuItem::separator()))?;
        for i in [&upload, &collect, &preview, &dashboard, &export] {
            e(menu.append(i))?;
        }
        e(menu.append(&notifications))?;
        e(menu.append(&PredefinedMenuItem::separator()))?;
        e(menu.append(&quit))?;
        let icon = TrayIconBuilder::new()
            .with_id("callhome")
            .with_title("callhome")
            .with_tooltip("callhome: starting")
            .with_icon(render(Look::Ok)?)
            .with_menu(Box::new(menu))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Tray {
            icon,
            status,
            telemetry,
            manual,
            programs,
            upload,
            collect,
            preview,
            dashboard,
            export,
            alerts,
            notifications,
            look: std::cell::Cell::new(None),
        })
    }

    fn show(&self, v: &TrayView) {
        self.status.set_text(&v.status_line);
        set(&self.telemetry, &v.telemetry);
        self.manual.set_checked(v.manual);
        for (p, item) in &self.programs {
            if let Some(pe) = v.programs.iter().find(|pe| pe.program == *p) {
                item.set_text(&pe.entry.text);
                item.set_enabled(pe.entry.enabled);
                item.set_checked(pe.checked);
            }
        }
        set(&self.upload, &v.upload);
        set(&self.collect, &v.collect);
        set(&self.preview, &v.preview);
        set(&self.dashboard, &v.dashboard);
        set(&self.export, &v.export);
        set(&self.alerts, &v.alerts);
        self.notifications.set_checked(v.notifications);
        if let Err(e) = self.icon.set_tooltip(Some(&v.tooltip)) {
            warn!("tray tooltip: {e}");
        }
        if self.look.get() != Some(v.look) {
            match render(v.look) {
                Ok(i) => {
                    if let Err(e) = self.icon.set_icon(Some(i)) {
                        warn!("tray icon: {e}");
                    }
                    self.look.set(Some(v.look));
                }
                Err(e) => warn!("tray icon: {e}"),
            }
        }
    }
}

fn set(item: &MenuItem, e: &Entry) {
    item.set_text(&e.text);
    item.set_enabled(e.enabled);
}

fn render(look: Look) -> Result<Icon, String> {
    Icon::from_rgba(icon::render(look, ICON_SIZE), ICON_SIZE, ICON_SIZE).map_err(|e| e.to_string())
}

/// Sends a fresh view whenever the agent reports a change, and every [`REFRESH`].
async fn views(backend: Backend, proxy: EventLoopProxy<UserEvent>, api_on: bool) {
    let mut last: Option<TrayView> = None;
    let mut send = |v: TrayView| {
        if last.as_ref() == Some(&v) {
            return true;
        }
        last = Some(v.clone());
        proxy.send_event(UserEvent::View(Box::new(v))).is_ok()
    };
    match backend {
        Backend::Local(local) => {
            let mut notices = local.subscribe();
            let mut tick = tokio::time::interval(REFRESH);
            loop {
                match local.status().await {
                    Ok(doc) => {
                        if !send(TrayView::from_doc(&doc, api_on)) {
                            return;
                        }
                    }
                    Err(e) => warn!("tray: {e}"),
                }
                tokio::select! {
                    r = notices.recv() => if let Err(tokio::sync::broadcast::error::RecvError::Closed) = r { return },
                    _ = tick.tick() => {}
                }
            }
        }
        Backend::Remote(dir) => loop {
            // Follow the agent's event stream; every event (and every REFRESH) re-reads the status.
            let connected = async {
                let client = Client::published(&dir).ok_or("no agent has published its API here")?;
                let status: StatusDoc = client.get("/api/v1/status").await.map_err(|e| e.to_string())?;
                if !send(TrayView::from_doc(&status, true)) {
                    return Ok(());
                }
                let mut events = client.stream("/api/v1/events").await.map_err(|e| e.to_string())?;
                loop {
                    let next = tokio::time::timeout(REFRESH, events.chunk()).await;
                    if let Ok(Ok(None) | Err(_)) = next {
                        return Err("the agent closed its event stream".to_string());
                    }
                    let status: StatusDoc = client.get("/api/v1/status").await.map_err(|e| e.to_string())?;
                    if !send(TrayView::from_doc(&status, true)) {
                        return Ok(());
                    }
                }
            };
            let why: Result<(), String> = connected.await;
            match why {
                Ok(()) => return,
                Err(why) => {
                    if !send(TrayView::unreachable(&dir, &why)) {
                        return;
                    }
                    tokio::time::sleep(RECONNECT).await;
                }
            }
        },
    }
}

/// The control layer for `backend`: the agent in this process, or the one whose API is published
/// in the data directory now.
fn control(backend: &Backend) -> Result<Control, String> {
    match backend {
        Backend::Local(local) => Ok(Control::Local(local.clone())),
        Backend::Remote(dir) => Client::published(dir)
            .map(|c| Control::Remote(Remote::new(c)))
            .ok_or_else(|| "the agent is not running".into()),
    }
}

/// Carries out what the menu asks.
async fn actions(
    backend: Backend,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Action>,
    quit: tokio::sync::oneshot::Sender<()>,
) {
    let mut quit = Some(quit);
    while let Some(a) = rx.recv().await {
        info!(action = a.id(), "tray");
        if a == Action::Quit {
            if let Some(q) = quit.take() {
                let _ = q.send(());
            }
            continue;
        }
        let r = match control(&backend) {
            Ok(c) => act(&c, a).await,
            Err(e) => Err(e),
        };
        if let Err(e) = r {
            warn!(action = a.id(), "tray: {e}");
            tell("callhome: that did not work", &e).await;
        }
    }
}

/// One menu action, through the control layer (the same for an in-process agent and a remote one).
async fn act(c: &Control, a: Action) -> Result<(), String> {
    let programs = || async { c.programs().await.map_err(|e| e.to_string()) };
    let change =
        |p: Program, ch: ProgramChange| async move { c.set_program(p, ch).await.map(drop).map_err(|e| e.to_string()) };
    match a {
        Action::Toggle(p) => {
            let on = programs().await?.iter().any(|d| d.name == p.name() && d.enabled);
            change(p, ProgramChange::Enabled(!on)).await
        }
        Action::ToggleManual => {
            let manual = programs().await?.iter().any(|d| d.name == "telemetry" && d.mode == "manual");
            let mode = if manual { TelemetryMode::Automatic } else { TelemetryMode::Manual };
            change(Program::Telemetry, ProgramChange::Mode(mode)).await
        }
        Action::Upload => c.upload(None).await.map(drop).map_err(|e| e.to_string()),
        Action::Collect => c.collect(None).await.map(drop).map_err(|e| e.to_string()),
        Action::Preview => open_dashboard(c, "#/preview").await,
        Action::Dashboard => open_dashboard(c, "").await,
        Action::Export => {
            // The part size is the agent's `spool.export_max_size`.
            let doc = c.export(None, None).await.map_err(|e| e.to_string())?;
            let files: Vec<String> = doc.parts.iter().map(|p| format!("exports/{}", p.file)).collect();
            tell(
                "Export ready for manual upload",
                &format!(
                    "{} bundle(s) written to {} in the agent's data directory. Carry {} to the vendor's receiver and import the receipt it gives back.",
                    doc.parts.iter().map(|p| p.bundles).sum::<usize>(),
                    files.join(", "),
                    if files.len() > 1 { "them" } else { "it" }
                ),
            )
            .await;
            Ok(())
        }
        Action::Alerts => open_dashboard(c, "").await,
        Action::ToggleNotifications => {
            let on = c.notifications().await.map_err(|e| e.to_string())?.enabled;
            let req = callhome::api::dto::NotificationsRequest { enabled: Some(!on), quiet_period: None };
            c.set_notifications(&req).await.map(drop).map_err(|e| e.to_string())
        }
        Action::Quit => Ok(()),
    }
}
