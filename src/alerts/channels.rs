//! The alert channels as a fan-out: every piece of news the [`Notifier`](super) decides to tell
//! also goes to each configured channel (e-mail, webhook, journal), each with its own queue and
//! task, so a channel that hangs or fails never delays uploads, the desktop, or another channel.
//! Each delivery is retried with bounded exponential backoff (full jitter) and every attempt's
//! outcome is recorded in the state database (`alert_deliveries`), which `status` shows.
//!
//! This module decides nothing (the quiet period and de-duplication happened before news gets
//! here) and knows no protocol: `email`, `webhook` and `journal` do.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::{info, warn};

use super::News;
use super::{email::Email, journal::Journal, webhook::Webhook};
use crate::agent::Agent;
use crate::clock::Timestamp;
use crate::secrets::SecretError;
use crate::store::DeliveryOutcome;

/// How many alerts wait for one channel at most; beyond that new ones are dropped (and the drop
/// recorded) rather than held in memory without bound.
const QUEUE: usize = 64;

/// Why one delivery failed. Each says where, and what to do when the fix is on this side.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(
        "the SMTP user {user:?} has no password: give it as CALLHOME_SMTP_PASSWORD, the systemd credential \
         smtp-password, or store it with `callhome alerts set-password --channel email --password-stdin`"
    )]
    NoPassword { user: String },
    #[error("nobody to write to: set contacts.technical and/or contacts.renewal")]
    NoRecipient,
    #[error("cannot read alerts.email.ca_file {path}: {detail}")]
    CaFile { path: std::path::PathBuf, detail: String },
    #[error("the message could not be built: {0}")]
    Message(String),
    #[error("SMTP server {server}: {detail}")]
    Smtp { server: String, detail: String },
    #[error("webhook {url}: {detail}")]
    Webhook { url: String, detail: String },
    #[error("webhook {url} answered HTTP {status}")]
    WebhookStatus { url: String, status: u16 },
    #[error("neither the journal ({journal}) nor syslog ({syslog}) listens on this machine")]
    NoJournal { journal: String, syslog: String },
    #[error("{path}: {detail}")]
    Socket { path: String, detail: String },
}

/// Who an alert is for (e-mail goes to the contacts of that audience).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Upload failures, the compliance clock, proxy problems.
    Technical,
    /// License expiry, renewal, over-use.
    Renewal,
    /// Overdue license reporting.
    Both,
}

impl Audience {
    pub fn name(self) -> &'static str {
        match self {
            Audience::Technical => "technical",
            Audience::Renewal => "renewal",
            Audience::Both => "technical,renewal",
        }
    }
}

/// An alert as the channels carry it: the news, when it was decided, and which agent it is from.
#[derive(Debug, Clone)]
pub struct Alert {
    pub news: News,
    pub at: Timestamp,
    pub install_id: String,
    pub host: String,
}

impl Alert {
    /// `[callhome CRITICAL] Upload failed: …`: the subject of a mail, the title elsewhere.
    pub fn title(&self) -> String {
        format!("[callhome {}] {}", self.news.state(), self.news.summary)
    }
}

/// A delivery under way.
pub type Sending<'a> = Pin<Box<dyn Future<Output = Result<(), ChannelError>> + Send + 'a>>;

/// One way out.
pub trait Channel: Send + Sync {
    /// `email`, `webhook`, `journal`: the name in status and in the state database.
    fn name(&self) -> &'static str;
    /// Where it goes, for status (`smtp.example.com:587 (starttls)`); never a secret.
    fn target(&self) -> String;
    fn send<'a>(&'a self, alert: &'a Alert) -> Sending<'a>;
}

/// How a channel retries a failed delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    pub base: Duration,
    pub max: Duration,
}

impl Default for RetryPolicy {
    /// Six attempts over about a minute at most, then the alert is given up for that channel.
    fn default() -> Self {
        RetryPolicy { attempts: 6, base: Duration::from_secs(1), max: Duration::from_secs(30) }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt `n` (1-based): base·2^(n-1), capped, with full jitter
    /// between half and all of it.
    pub fn delay(&self, n: u32) -> Duration {
        let full = self.base.saturating_mul(1u32 << (n.saturating_sub(1)).min(16)).min(self.max);
        let half = full / 2;
        half + Duration::from_millis(fastrand::u64(..=(full - half).as_millis() as u64))
    }
}

/// The configured channels, their queues and tasks.
pub struct Channels {
    queues: Vec<(&'static str, mpsc::Sender<Alert>)>,
    tasks: JoinSet<()>,
    agent: Arc<Agent>,
}

/// Every channel the configuration turns on.
pub fn configured(agent: &Arc<Agent>) -> Vec<Arc<dyn Channel>> {
    let cfg = agent.config();
    let mut out: Vec<Arc<dyn Channel>> = Vec::new();
    if let Some(e) = &cfg.alerts.email {
        let ca_file = e.ca_file.as_ref().map(|p| cfg.resolve(p));
        out.push(Arc::new(Email::new(e.clone(), cfg.contacts.clone(), ca_file, Some(agent.clone()))));
    }
    if let Some(w) = &cfg.alerts.webhook {
        out.push(Arc::new(Webhook::new(w.clone(), agent.clone())));
    }
    if cfg.alerts.journal.enabled {
        out.push(Arc::new(Journal::new(cfg.alerts.journal.clone())));
    }
    out
}

impl Channels {
    /// Starts one task per channel; each stops when `stop` turns true.
    pub fn start(
        agent: Arc<Agent>,
        channels: Vec<Arc<dyn Channel>>,
        policy: RetryPolicy,
        stop: watch::Receiver<bool>,
    ) -> Channels {
        let mut tasks = JoinSet::new();
        let mut queues = Vec::new();
        for ch in channels {
            let (tx, rx) = mpsc::channel(QUEUE);
            info!(channel = ch.name(), target = %ch.target(), "alert channel on");
            queues.push((ch.name(), tx));
            tasks.spawn(deliver_each(agent.clone(), ch, rx, policy, stop.clone()));
        }
        Channels { queues, tasks, agent }
    }

    pub fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }

    /// Queues `news` on every channel; never waits.
    pub fn send(&self, news: &News) {
        let alert = Alert {
            news: news.clone(),
            at: self.agent.now(),
            install_id: self.agent.install().install_id.clone(),
            host: sysinfo::System::host_name().unwrap_or_default(),
        };
        for (name, q) in &self.queues {
            if let Err(e) = q.try_send(alert.clone()) {
                let why = format!("the channel's queue is full or closed ({e}); this alert was dropped");
                warn!(channel = name, key = %news.key, "{why}");
                self.agent.record_delivery(name, &news.key, DeliveryOutcome::GaveUp(&why));
            }
        }
    }

    /// Closes the queues and waits for every channel's task (each ends at the stop signal, or
    /// once its queue is empty).
    pub async fn join(mut self) {
        self.queues.clear();
        while let Some(r) = self.tasks.join_next().await {
            if let Err(e) = r {
                warn!("alert channel task: {e}");
            }
        }
    }
}

/// One channel's task: its queue's alerts in order, each retried by `policy`.
async fn deliver_each(
    agent: Arc<Agent>,
    ch: Arc<dyn Channel>,
    mut queue: mpsc::Receiver<Alert>,
    policy: RetryPolicy,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let alert = tokio::select! {
            a = queue.recv() => match a { Some(a) => a, None => return },
            _ = super::stopped(&mut stop) => return,
        };
        let key = alert.news.key.as_str();
        for n in 1..=policy.attempts {
            let r = tokio::select! {
                r = ch.send(&alert) => r,
                _ = super::stopped(&mut stop) => return,
            };
            match r {
                Ok(()) => {
                    info!(channel = ch.name(), key, "alert delivered: {}", alert.news.summary);
                    agent.record_delivery(ch.name(), key, DeliveryOutcome::Delivered);
                    break;
                }
                Err(e) if n == policy.attempts => {
                    let why = format!("{e} (gave up after {n} attempts)");
                    warn!(channel = ch.name(), key, "alert not delivered: {why}");
                    agent.record_delivery(ch.name(), key, DeliveryOutcome::GaveUp(&why));
                }
                Err(e) => {
                    let wait = policy.delay(n);
                    let why = e.to_string();
                    warn!(channel = ch.name(), key, "alert delivery failed (attempt {n}, again in {wait:?}): {why}");
                    agent.record_delivery(ch.name(), key, DeliveryOutcome::Failed(&why));
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = super::stopped(&mut stop) => return,
                    }
                }
            }
        }
    }
}

/// `<`, `>`, `&` and `"` as HTML entities.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let p = RetryPolicy { attempts: 6, base: Duration::from_secs(2), max: Duration::from_secs(10) };
        for _ in 0..50 {
            let d1 = p.delay(1);
            assert!(d1 >= Duration::from_secs(1) && d1 <= Duration::from_secs(2), "{d1:?}");
            let d3 = p.delay(3);
            assert!(d3 >= Duration::from_secs(4) && d3 <= Duration::from_secs(8), "{d3:?}");
            assert!(p.delay(30) <= Duration::from_secs(10));
        }
    }

    /// A channel that fails or succeeds every time, and remembers when it was called.
    struct Fake {
        name: &'static str,
        fail: bool,
        calls: std::sync::Mutex<Vec<tokio::time::Instant>>,
    }

    impl Channel for Fake {
        fn name(&self) -> &'static str {
            self.name
        }
        fn target(&self) -> String {
            "fake".into()
        }
        fn send<'a>(&'a self, _: &'a Alert) -> Sending<'a> {
            Box::pin(async move {
                self.calls.lock().unwrap().push(tokio::time::Instant::now());
                if self.fail { Err(ChannelError::NoRecipient) } else { Ok(()) }
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_channel_backs_off_gives_up_and_never_holds_up_another() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(crate::clock::ManualClock::at(1_000_000));
        let agent = Arc::new(
            Agent::open(crate::config::Config::embedded(), crate::datadir::DataDir::at(dir.path()), clock).unwrap(),
        );
        let fake = |name, fail| Arc::new(Fake { name, fail, calls: Default::default() });
        let (failing, working) = (fake("email", true), fake("webhook", false));
        let policy = RetryPolicy { attempts: 3, base: Duration::from_secs(2), max: Duration::from_secs(60) };
        let (_stop_tx, stop) = watch::channel(false);
        let t0 = tokio::time::Instant::now();
        let channels = Channels::start(agent.clone(), vec![failing.clone(), working.clone()], policy, stop);
        let news =
            News { key: "uploads-work".into(), summary: "S".into(), body: "B".into(), urgent: false, once: false };
        channels.send(&news);
        channels.join().await;

        assert_eq!(*working.calls.lock().unwrap(), [t0], "delivered at once, whatever the other channel does");
        let calls = failing.calls.lock().unwrap().clone();
        assert_eq!(calls.len(), 3, "three attempts, then given up");
        let gaps: Vec<Duration> = calls.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps[0] >= Duration::from_secs(1) && gaps[0] <= Duration::from_secs(2), "{gaps:?}");
        assert!(gaps[1] >= Duration::from_secs(2) && gaps[1] <= Duration::from_secs(4), "{gaps:?}");
        let email = agent.delivery("email").unwrap().unwrap();
        assert_eq!((email.delivered, email.failed_attempts, email.given_up), (0, 3, 1));
        assert!(email.last_error.unwrap().contains("gave up after 3 attempts"));
        assert_eq!(agent.delivery("webhook").unwrap().unwrap().delivered, 1);
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(html_escape("a<b & \"c\">"), "a&lt;b &amp; &quot;c&quot;&gt;");
    }
}
