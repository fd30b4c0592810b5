//! Desktop notifications: how the tray delivers the agent's alerts (decided by
//! [`callhome::alerts`]) through notify-rust — the freedesktop notification service over D-Bus on
//! Linux. A click on a notification opens the dashboard.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use callhome::alerts::{Deliver, News};
use tracing::info;

/// What a click on a notification does (opens the dashboard).
pub type OnClick = Arc<dyn Fn() + Send + Sync>;

/// Delivers news as desktop notifications.
pub struct Desktop {
    pub on_click: Option<OnClick>,
}

impl Deliver for Desktop {
    fn deliver<'a>(&'a self, news: &'a News) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(show(news, self.on_click.clone()))
    }
}

/// Tells the person something now (the answer to a tray action), without the quiet period.
pub async fn tell(summary: &str, body: &str) {
    let news = News { key: String::new(), summary: summary.into(), body: body.into(), urgent: false, once: false };
    if let Err(e) = show(&news, None).await {
        info!("{summary}: {body} (no notification service: {e})");
    }
}

/// Shows the notification; a click on it (the default action) runs `on_click`.
async fn show(news: &News, on_click: Option<OnClick>) -> Result<(), String> {
    let mut n = notify_rust::Notification::new();
    n.appname("callhome").summary(&news.summary).body(&news.body).icon("callhome");
    #[cfg(all(unix, not(target_os = "macos")))]
    {
        n.urgency(if news.urgent { notify_rust::Urgency::Critical } else { notify_rust::Urgency::Normal });
        if on_click.is_some() {
            n.action("default", "Open dashboard");
        }
    }
    #[cfg(all(unix, not(target_os = "macos")))]
    {
        let handle = n.show_async().await.map_err(|e| e.to_string())?;
        if let Some(click) = on_click {
            tokio::spawn(async move {
                // Ends when the notification is closed or its action invoked.
                handle
                    .wait_for_action_async(|r| {
                        if matches!(r, notify_rust::NotificationResponse::Default) {
                            click();
                        }
                    })
                    .await;
            });
        }
        Ok(())
    }
    #[cfg(not(all(unix, not(target_os = "macos"))))]
    {
        let _ = on_click;
        let n = n.clone();
        tokio::task::spawn_blocking(move || n.show().map(|_| ()).map_err(|e| e.to_string()))
            .await
            .map_err(|e| e.to_string())?
    }
}
