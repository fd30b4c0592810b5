//! Documents of alerts as objects (`GET /api/v1/alerts`, `callhome alerts list --json`), their
//! acknowledgement, test alerts, the notification settings with the channels' state, and
//! supplemental grace periods.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AlertChannelDoc;
use crate::clock::{Timestamp, rfc3339};
use crate::licenses::GracePeriod;
use crate::store::AlertRow;

/// One open alert.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AlertDoc {
    /// Stable while the condition stays open: what `callhome alerts ack` takes.
    pub id: String,
    /// `compliance-threshold`, `compliance-overdue`, `upload-failed`, `license-expired`,
    /// `license-expiring`, `license-renewal-due`, `license-over-quantity`,
    /// `license-grace-period`, `agent-outdated`.
    pub kind: String,
    /// `warning` or `critical`.
    pub severity: String,
    pub title: String,
    pub text: String,
    pub first_seen: String,
    pub last_seen: String,
    /// Acknowledged: `callhome check` and `/metrics` leave it out until `acked_until` passes
    /// (no `acked_until`: until it clears) or it gets worse.
    pub acknowledged: bool,
    pub acked_until: Option<String>,
    pub ack_reason: Option<String>,
}

impl From<&AlertRow> for AlertDoc {
    fn from(a: &AlertRow) -> AlertDoc {
        AlertDoc {
            id: a.id.clone(),
            kind: a.kind.clone(),
            severity: a.severity.name().into(),
            title: a.title.clone(),
            text: a.text.clone(),
            first_seen: rfc3339(a.first_seen),
            last_seen: rfc3339(a.last_seen),
            acknowledged: a.acknowledged(),
            acked_until: a.acked_until.map(rfc3339),
            ack_reason: a.ack_reason.clone(),
        }
    }
}

/// `POST /api/v1/alerts/{id}/ack`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AckRequest {
    /// `YYYY-MM-DD`: acknowledged through that day (UTC); omitted, until the alert clears or
    /// gets worse.
    #[serde(default)]
    pub until: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// `POST /api/v1/alerts/test`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestAlertRequest {
    /// `email`, `webhook` or `journal`; omitted: every configured channel.
    #[serde(default)]
    pub channel: Option<String>,
}

/// What a test alert came to on one channel.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TestAlertDoc {
    pub channel: String,
    pub target: Option<String>,
    pub delivered: bool,
    pub error: Option<String>,
}

/// `GET`/`PUT /api/v1/notifications`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NotificationsDoc {
    /// Desktop notifications (the tray's) on or off; the channels get alerts either way.
    pub enabled: bool,
    /// The same alert is not repeated inside this period (`12h`, `0s`).
    pub quiet_period: String,
    pub quiet_period_seconds: u64,
    /// The configured alert channels: last delivery and last error of each.
    pub channels: Vec<AlertChannelDoc>,
}

/// `PUT /api/v1/notifications`: what is omitted stays.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NotificationsRequest {
    #[serde(default)]
    pub enabled: Option<bool>,
    /// A duration such as `30m`, `12h`, `0s`.
    #[serde(default)]
    pub quiet_period: Option<String>,
}

/// A supplemental grace period.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GracePeriodDoc {
    pub feature: String,
    pub days: u32,
    pub start: String,
    pub end: String,
    /// Whole days left (0 or less once it ended).
    pub days_left: i64,
    pub ended: bool,
}

impl GracePeriodDoc {
    pub fn new(g: &GracePeriod, now: Timestamp) -> GracePeriodDoc {
        GracePeriodDoc {
            feature: g.feature.clone(),
            days: g.days,
            start: rfc3339(g.start),
            end: rfc3339(g.end),
            days_left: g.days_left(now),
            ended: now >= g.end,
        }
    }
}
