//! Alerts: the agent speaks up when an upload fails (in plain words, with what to do), when
//! uploads work again, when the compliance clock reaches a `compliance.warn_days` threshold or
//! the limit, when a license nears expiry or runs in overdraft, and when the proxy refuses the
//! login.
//!
//! Deciding is separate from delivering: [`Decider`] turns the agent's notices and its status
//! into [`News`], each with a key; the same key is not told again inside
//! `notifications.quiet_period` (compliance thresholds: once per count). What was told when is
//! kept in the state database, so a restart does not repeat it. Delivery is a [`Deliver`]: the
//! headless agent writes news to its log ([`LogOnly`]); the tray binary (`callhome-tray`) shows
//! desktop notifications. This module links no notification library.
//!
//! Besides that local delivery, every piece of news goes to the configured channels
//! (`[alerts]`): `channels` fans it out, one queue and task per channel, to `email`, `webhook`
//! and `journal`. Invariant: a channel never delays uploads, the local delivery or another
//! channel — [`channels::Channels::send`] only queues.

pub mod channels;
mod email;
pub mod journal;
pub mod open;
pub mod webhook;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use crate::agent::{Agent, Notice};
use crate::clock::Timestamp;
use crate::compliance;
use crate::programs::Program;
use channels::{Audience, Channels, RetryPolicy};

/// How often the compliance clock is looked at when nothing else happens.
const CLOCK_CHECK: Duration = Duration::from_secs(15 * 60);

/// Something to tell the person at the desktop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct News {
    /// What makes two pieces of news "the same" for the quiet period.
    pub key: String,
    pub summary: String,
    pub body: String,
    pub urgent: bool,
    /// Shown once per key, whatever the quiet period (compliance thresholds).
    pub once: bool,
}

impl News {
    /// The alert's kind, from its key: `upload-failed`, `uploads-work`, `proxy-auth`,
    /// `compliance-threshold`, `compliance-overdue`, `license-expiring`, … (a journal
    /// `MESSAGE_ID` per kind).
    pub fn kind(&self) -> String {
        let mut parts = self.key.split(':');
        match (parts.next().unwrap_or(""), parts.next()) {
            ("compliance", Some("limit")) => "compliance-overdue".into(),
            ("compliance", _) => "compliance-threshold".into(),
            ("license", Some(k)) => format!("license-{}", k.replace('_', "-")),
            ("grace", _) => "license-grace-period".into(),
            ("test", _) => "test".into(),
            (first, _) => first.into(),
        }
    }

    /// Who it is for: license matters to the renewal contact, overdue reporting to both,
    /// everything else (uploads, the compliance clock, the proxy) to the technical contact.
    pub fn audience(&self) -> Audience {
        match self.kind().as_str() {
            "compliance-overdue" => Audience::Both,
            k if k.starts_with("license-") => Audience::Renewal,
            _ => Audience::Technical,
        }
    }

    /// `CRITICAL`, `WARNING`, or `OK` (a recovery): what a subject line starts with.
    pub fn state(&self) -> &'static str {
        if self.urgent {
            "CRITICAL"
        } else if self.key == "uploads-work" || self.key.starts_with("test:") {
            "OK"
        } else {
            "WARNING"
        }
    }
}

/// `CTX_UPLOADER_ERROR_TLS` → `TLS`, `CTX_UPLOADER_SUCCESS` → `SUCCESS`.
pub fn short_code(code: &str) -> &str {
    code.strip_prefix("CTX_UPLOADER_ERROR_").or_else(|| code.strip_prefix("CTX_UPLOADER_")).unwrap_or(code)
}

/// An upload result code in plain words.
pub fn failure_words(code: &str) -> &'static str {
    match short_code(code) {
        "NETWORK_OPEN" => "The receiver could not be reached",
        "TLS" => "The secure connection to the receiver failed",
        "PROXY_AUTH" => "The proxy refused the login",
        "PROXY" => "The proxy could not be used",
        "TIMEOUT" => "The receiver did not answer in time",
        "HTTP_STATUS" => "The receiver answered with an error",
        "AUTH" => "The receiver refused this agent's credentials",
        "REJECTED" => "The receiver refused a bundle",
        "RECEIPT" => "The receiver's receipt did not check out",
        "DISK" => "A bundle could not be read from disk",
        "CONFIG" => "The upload settings are not usable",
        _ => "An upload failed",
    }
}

/// Turns notices and status into news; remembers whether uploads are failing.
#[derive(Debug, Default)]
pub struct Decider {
    /// The code of the last failure, while uploads fail.
    failing: Option<String>,
}

impl Decider {
    pub fn new(failing: Option<String>) -> Decider {
        Decider { failing }
    }

    pub fn failing(&self) -> Option<&str> {
        self.failing.as_deref()
    }

    /// An upload attempt ended.
    pub fn upload(&mut self, program: Program, code: &str, message: &str) -> Option<News> {
        let code = short_code(code);
        if code == "SUCCESS" {
            let was = self.failing.take()?;
            return Some(News {
                key: "uploads-work".into(),
                summary: "Uploads work again".into(),
                body: format!(
                    "{} reached the receiver and was acknowledged; the earlier problem ({}) is resolved.",
                    program.title(),
                    failure_words(&was).to_lowercase()
                ),
                urgent: false,
                once: false,
            });
        }
        self.failing = Some(code.to_string());
        let (key, summary) = if code == "PROXY_AUTH" {
            ("proxy-auth".to_string(), "The proxy refused the login".to_string())
        } else {
            (format!("upload-failed:{code}"), format!("Upload failed: {}", failure_words(code).to_lowercase()))
        };
        Some(News {
            key,
            summary,
            body: format!(
                "{} could not be sent: {message}. Nothing is lost: the data stays on this machine and is sent again later.",
                program.title()
            ),
            urgent: code == "PROXY_AUTH" || code == "AUTH",
            once: false,
        })
    }

    /// The compliance clock as it stands: news when a threshold or the limit is reached.
    pub fn compliance(&self, c: &compliance::Status, max_days: u32) -> Option<News> {
        if c.state == compliance::State::Exempt {
            // The vendor exempted this install: nothing to tell until the exemption ends.
            return None;
        }
        if c.days_remaining <= 0 {
            let body = if c.days_remaining == 0 {
                format!("License telemetry has not been reported for {max_days} days: today is the limit.")
            } else {
                format!("{}, {} days overdue (the limit is {max_days} days).", reported(c), -c.days_remaining)
            };
            return Some(News {
                key: format!("compliance:limit:{}", c.counting_from),
                summary: "License reporting is overdue".into(),
                body: format!("{body} Upload now, or export for manual reporting if this machine has no connection."),
                urgent: true,
                once: true,
            });
        }
        let t = c.threshold_reached?;
        Some(News {
            key: format!("compliance:{t}:{}", c.counting_from),
            summary: format!("{} days left to report license usage", c.days_remaining),
            body: format!(
                "{}; the limit is {max_days} days. Check the last upload's result, or export for manual reporting.",
                reported(c)
            ),
            urgent: c.state == compliance::State::Critical,
            once: true,
        })
    }

    /// A license event appeared.
    pub fn license(&self, kind: &str, feature: &str, message: &str) -> News {
        let summary = match kind {
            "expiring" => format!("License {feature} expires soon"),
            "expired" => format!("License {feature} has expired"),
            "renewal_due" => format!("License {feature} needs renewing"),
            "over_quantity" => format!("License {feature} is used beyond its quantity"),
            _ => format!("License {feature}: {kind}"),
        };
        News {
            key: format!("license:{kind}:{feature}"),
            summary,
            body: message.to_string(),
            urgent: kind == "expired",
            once: false,
        }
    }
}

/// News for a supplemental grace period as it stands at `now`: when it starts, 7 days and 1 day
/// before its end, and once it has ended (each told once).
pub fn grace_news(g: &crate::licenses::GracePeriod, now: Timestamp) -> News {
    use crate::licenses::date::Date;
    let left = g.days_left(now);
    let (start, end) = (Date::of_timestamp(g.start), Date::of_timestamp(g.end));
    let (mark, summary, urgent) = if left <= 0 {
        ("ended", format!("The grace period for {} has ended", g.feature), true)
    } else if left <= 1 {
        ("1", format!("The grace period for {} ends tomorrow", g.feature), true)
    } else if left <= 7 {
        ("7", format!("The grace period for {} ends in {left} days", g.feature), false)
    } else {
        ("start", format!("License {} is in its {}-day grace period", g.feature, g.days), false)
    };
    News {
        key: format!("grace:{}:{}:{mark}", g.feature, g.start),
        summary,
        body: format!(
            "More {f} licenses are in use than installed (with the overdraft): the {d}-day supplemental grace period started on {start} and ends on {end}. Install more {f} licenses or reduce use before then.",
            f = g.feature,
            d = g.days
        ),
        urgent,
        once: true,
    }
}

/// The news a test alert carries (`callhome alerts test`, the dashboard's button).
pub fn test_news(now: Timestamp) -> News {
    News {
        key: format!("test:{now}"),
        summary: "Test alert".into(),
        body: "This is a test alert from callhome: this channel works.".into(),
        urgent: false,
        once: false,
    }
}

/// Sends a test alert on the configured channel `name` now (no retries, no quiet period) and
/// records the attempt; `Ok(target)` once it was delivered.
pub async fn send_test(agent: &Arc<Agent>, name: &str) -> Result<String, TestError> {
    let ch = channels::configured(agent).into_iter().find(|c| c.name() == name).ok_or_else(|| {
        TestError::NotConfigured(format!(
            "the {name} channel is not configured: add [alerts.{name}] to the configuration (see the README)"
        ))
    })?;
    let news = test_news(agent.now());
    let alert = channels::Alert {
        news: news.clone(),
        at: agent.now(),
        install_id: agent.install().install_id.clone(),
        host: sysinfo::System::host_name().unwrap_or_default(),
    };
    match ch.send(&alert).await {
        Ok(()) => {
            agent.record_delivery(name, &news.key, crate::store::DeliveryOutcome::Delivered);
            Ok(ch.target())
        }
        Err(e) => {
            let why = e.to_string();
            agent.record_delivery(name, &news.key, crate::store::DeliveryOutcome::GaveUp(&why));
            Err(TestError::Failed { target: ch.target(), detail: why })
        }
    }
}

/// Why a test alert did not go out.
#[derive(Debug, thiserror::Error)]
pub enum TestError {
    /// No such channel is configured (or the name is not a channel's).
    #[error("{0}")]
    NotConfigured(String),
    /// The channel failed; `detail` says how.
    #[error("the test alert to {target} failed: {detail}")]
    Failed { target: String, detail: String },
}

/// Whether news with this key may be shown now, given when it was last shown.
pub fn may_show(news: &News, last: Option<Timestamp>, now: Timestamp, quiet: Duration) -> bool {
    match last {
        None => true,
        Some(_) if news.once => false,
        Some(t) => now.saturating_sub(t) >= quiet.as_secs() as i64 || now < t,
    }
}

/// Where news goes. An error means the channel is missing right now (no notification service):
/// the news is then written to the log, and the missing channel said once.
pub trait Deliver: Send + Sync {
    fn deliver<'a>(&'a self, news: &'a News) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;
}

/// The headless agent's delivery: the log (and through it the journal or `logs/agent.log`).
pub struct LogOnly;

impl Deliver for LogOnly {
    fn deliver<'a>(&'a self, news: &'a News) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            warn!(key = %news.key, "{}: {}", news.summary, news.body);
            Ok(())
        })
    }
}

/// Runs until `shutdown` turns true: listens to the agent and tells news, locally through `sink`
/// and to every configured channel.
pub async fn run(agent: Arc<Agent>, sink: Arc<dyn Deliver>, shutdown: tokio::sync::watch::Receiver<bool>) {
    let channels =
        Channels::start(agent.clone(), channels::configured(&agent), RetryPolicy::default(), shutdown.clone());
    // Desktop notifications on or off and the quiet period are read at each piece of news: the
    // API (the dashboard's switch, the tray's item) changes them while the agent runs.
    match agent.notification_settings() {
        Ok(n) if !n.enabled && !agent.config().notifications.enabled => {
            info!("notifications are off (notifications.enabled = false); alerts go to the log and the channels")
        }
        Ok(n) if !n.enabled => {
            info!(
                "notifications are off (turned off with PUT /api/v1/notifications); alerts go to the log and the channels"
            )
        }
        Ok(_) => {}
        Err(e) => warn!("notifications: {e}"),
    }
    let mut n = Notifier {
        decider: Decider::new(agent.alert_failing().ok().flatten()),
        agent,
        sink,
        channels,
        service_missing: false,
    };
    n.listen(shutdown).await;
    n.channels.join().await;
}

impl Notifier {
    async fn listen(&mut self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut notices = self.agent.subscribe();
        self.check_clock().await;
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + CLOCK_CHECK, CLOCK_CHECK);
        loop {
            tokio::select! {
                r = notices.recv() => match r {
                    Ok(Notice::UploadResult { program, code, message }) => {
                        let news = self.decider.upload(program, &code, &message);
                        self.remember_failing();
                        if let Some(news) = news {
                            self.show(news).await;
                        }
                        self.check_clock().await;
                    }
                    Ok(Notice::LicenseEvent { kind, feature, message }) => {
                        let news = self.decider.license(kind, &feature, &message);
                        self.show(news).await;
                    }
                    Ok(Notice::StateChanged { .. }) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => self.check_clock().await,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                },
                _ = tick.tick() => self.check_clock().await,
                _ = stopped(&mut shutdown) => break,
            }
        }
    }
}

/// Completes when `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

struct Notifier {
    agent: Arc<Agent>,
    decider: Decider,
    sink: Arc<dyn Deliver>,
    /// The configured channels (e-mail, webhook, journal); sending only queues.
    channels: Channels,
    /// The notification service was missing last time (said once in the log).
    service_missing: bool,
}

impl Notifier {
    fn remember_failing(&self) {
        if let Err(e) = self.agent.set_alert_failing(self.decider.failing()) {
            warn!("notifications: {e}");
        }
    }

    async fn check_clock(&mut self) {
        let c = match self.agent.compliance() {
            Ok(c) => c,
            Err(e) => return warn!("notifications: {e}"),
        };
        if let Some(news) = self.decider.compliance(&c, self.agent.config().compliance.max_days) {
            self.show(news).await;
        }
        // An outdated agent or product: told once per newer release.
        match self.agent.currency() {
            Ok((version, product)) => {
                for c in open::currency(&version, &product) {
                    self.show(News { key: c.key, summary: c.title, body: c.text, urgent: false, once: true }).await;
                }
            }
            Err(e) => warn!("notifications: {e}"),
        }
        let inv = self.agent.scan_licenses();
        match self.agent.grace_periods(&inv) {
            Ok(periods) => {
                for g in periods {
                    self.show(grace_news(&g, self.agent.now())).await;
                }
            }
            Err(e) => warn!("notifications: {e}"),
        }
    }

    async fn show(&mut self, news: News) {
        let now = self.agent.now();
        let settings = self.agent.notification_settings().unwrap_or_else(|e| {
            warn!("notifications: {e}");
            self.agent.config().notifications.clone()
        });
        let last = self.agent.last_told(&news.key).ok().flatten();
        if !may_show(&news, last, now, settings.quiet_period) {
            return;
        }
        if let Err(e) = self.agent.mark_told(&news.key, now) {
            warn!("notifications: {e}");
        }
        self.channels.send(&news);
        // With desktop notifications off, the channels still get the news; locally it is logged.
        if !settings.enabled {
            let _ = LogOnly.deliver(&news).await;
            return;
        }
        match self.sink.deliver(&news).await {
            Ok(()) => {
                self.service_missing = false;
                info!(key = %news.key, "notified: {}", news.summary);
            }
            Err(e) => {
                if !self.service_missing {
                    warn!("no desktop notification service ({e}); notifications are written to this log only");
                    self.service_missing = true;
                }
                warn!(key = %news.key, "{}: {}", news.summary, news.body);
            }
        }
    }
}

/// When license telemetry was last reported, in words: "last reported 85 days ago", or, when
/// nothing was ever acknowledged, "never reported (installed 85 days ago)".
fn reported(c: &compliance::Status) -> String {
    match c.last_success {
        Some(_) => format!("License telemetry was last reported {} days ago", c.days_since_last_upload),
        None => format!("License telemetry was never reported (installed {} days ago)", c.days_since_last_upload),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ComplianceConfig;

    const DAY: i64 = 86_400;

    #[test]
    fn a_failure_is_news_and_so_is_the_recovery_but_not_a_plain_success() {
        let mut d = Decider::default();
        assert_eq!(d.upload(Program::Telemetry, "CTX_UPLOADER_SUCCESS", "receipt r1"), None);
        let f = d.upload(Program::Telemetry, "CTX_UPLOADER_ERROR_HTTP_STATUS", "https://x answered 503").unwrap();
        assert_eq!(f.key, "upload-failed:HTTP_STATUS");
        assert_eq!(f.summary, "Upload failed: the receiver answered with an error");
        assert!(f.body.contains("answered 503") && f.body.contains("Nothing is lost"), "{}", f.body);
        let ok = d.upload(Program::Telemetry, "SUCCESS", "receipt r2").unwrap();
        assert_eq!(ok.key, "uploads-work");
        assert!(ok.body.contains("the receiver answered with an error"), "{}", ok.body);
        assert_eq!(d.upload(Program::Telemetry, "SUCCESS", "receipt r3"), None);
    }

    #[test]
    fn a_refused_proxy_login_has_its_own_news() {
        let mut d = Decider::default();
        let n = d.upload(Program::Telemetry, "PROXY_AUTH", "the proxy refused the credentials").unwrap();
        assert_eq!(n.key, "proxy-auth");
        assert_eq!(n.summary, "The proxy refused the login");
        assert!(n.urgent);
    }

    #[test]
    fn the_quiet_period_holds_back_repeats_and_thresholds_come_once() {
        let quiet = Duration::from_secs(3600);
        let mut d = Decider::default();
        let n = d.upload(Program::Telemetry, "TIMEOUT", "no answer").unwrap();
        assert!(may_show(&n, None, 1000, quiet));
        assert!(!may_show(&n, Some(1000), 1000 + 3599, quiet));
        assert!(may_show(&n, Some(1000), 1000 + 3600, quiet));
        // A clock that went back does not silence news for good.
        assert!(may_show(&n, Some(5000), 1000, quiet));
        let cfg = ComplianceConfig { max_days: 90, warn_days: vec![30, 14, 7] };
        let c = compliance::evaluate(&cfg, None, 0, 61 * DAY);
        let t = d.compliance(&c, 90).unwrap();
        assert!(t.once && !may_show(&t, Some(1), 10 * 365 * DAY, quiet));
    }

    #[test]
    fn each_threshold_and_the_limit_is_its_own_news() {
        let cfg = ComplianceConfig { max_days: 90, warn_days: vec![30, 14, 7] };
        let d = Decider::default();
        let at = |day: i64| d.compliance(&compliance::evaluate(&cfg, Some(0), 0, day * DAY), 90);
        assert_eq!(at(59), None);
        let keys: Vec<String> = [60, 76, 83, 90, 95].iter().map(|day| at(*day).unwrap().key).collect();
        assert_eq!(
            keys,
            ["compliance:30:0", "compliance:14:0", "compliance:7:0", "compliance:limit:0", "compliance:limit:0"]
        );
        assert_eq!(at(60).unwrap().summary, "30 days left to report license usage");
        assert!(at(90).unwrap().body.contains("today is the limit"));
        assert!(at(95).unwrap().body.contains("last reported 95 days ago, 5 days overdue"));
    }

    #[test]
    fn an_agent_that_never_reported_says_never_reported() {
        let cfg = ComplianceConfig { max_days: 90, warn_days: vec![30, 14, 7] };
        let d = Decider::default();
        let at = |day: i64| d.compliance(&compliance::evaluate(&cfg, None, 0, day * DAY), 90).unwrap().body;
        assert!(at(85).starts_with("License telemetry was never reported (installed 85 days ago)"), "{}", at(85));
        assert!(at(95).contains("never reported (installed 95 days ago), 5 days overdue"), "{}", at(95));
        assert!(!at(85).contains("last reported"));
    }

    #[test]
    fn each_kind_of_news_has_its_audience_and_state() {
        let mut d = Decider::default();
        let failed = d.upload(Program::Telemetry, "TIMEOUT", "no answer").unwrap();
        assert_eq!(
            (failed.kind().as_str(), failed.audience(), failed.state()),
            ("upload-failed", Audience::Technical, "WARNING")
        );
        let ok = d.upload(Program::Telemetry, "SUCCESS", "r").unwrap();
        assert_eq!((ok.kind().as_str(), ok.state()), ("uploads-work", "OK"));
        let proxy = d.upload(Program::Telemetry, "PROXY_AUTH", "refused").unwrap();
        assert_eq!((proxy.audience(), proxy.state()), (Audience::Technical, "CRITICAL"));
        let lic = d.license("over_quantity", "cad", "m");
        assert_eq!((lic.kind().as_str(), lic.audience()), ("license-over-quantity", Audience::Renewal));
        let cfg = ComplianceConfig { max_days: 90, warn_days: vec![30, 14, 7] };
        let at = |day: i64| d.compliance(&compliance::evaluate(&cfg, Some(0), 0, day * DAY), 90).unwrap();
        assert_eq!((at(60).kind().as_str(), at(60).audience()), ("compliance-threshold", Audience::Technical));
        assert_eq!((at(95).kind().as_str(), at(95).audience()), ("compliance-overdue", Audience::Both));
    }

    #[test]
    fn license_events_read_as_sentences() {
        let d = Decider::default();
        let n = d.license("expiring", "cad_pro", "cad_pro expires on 2026-12-13 (in 20 days)");
        assert_eq!(n.summary, "License cad_pro expires soon");
        assert_eq!(n.key, "license:expiring:cad_pro");
    }
}
