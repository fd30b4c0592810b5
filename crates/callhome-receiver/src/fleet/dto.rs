//! The fleet view's wire shape, shared by `callhome-receiver fleet --json` and the operator API
//! (`/admin/v1/installs`): exactly `install_id, customer, last_success, days_since, state,
//! agent_version, product_version, outdated`; one install's detail adds the clock's start, which
//! of agent and product is out of date, and the last license usage summary.

use serde::Serialize;

use super::report::UsageSummary;
use super::{Currency, Install, Thresholds};
use callhome_protocol::time::{Timestamp, rfc3339};

/// One install in the list.
#[derive(Debug, Serialize)]
pub struct InstallEntry {
    pub install_id: String,
    pub customer: Option<String>,
    /// RFC 3339; `null` when it never uploaded license telemetry.
    pub last_success: Option<String>,
    pub days_since: i64,
    pub state: &'static str,
    pub agent_version: Option<String>,
    pub product_version: Option<String>,
    /// The agent or the product is out of date (six-month currency rule).
    pub outdated: bool,
}

/// One install in detail.
#[derive(Debug, Serialize)]
pub struct InstallDetail {
    #[serde(flatten)]
    pub entry: InstallEntry,
    pub first_seen: String,
    /// What the compliance clock counts from: the last success, else when first seen.
    pub counting_from: String,
    pub agent_outdated: bool,
    pub product_outdated: bool,
    /// The last license usage summary it reported.
    pub usage: Option<UsageSummary>,
}

impl InstallEntry {
    pub fn new(i: &Install, t: &Thresholds, c: &Currency, now: Timestamp) -> InstallEntry {
        InstallEntry {
            install_id: i.install_id.clone(),
            customer: i.customer.clone(),
            last_success: i.last_success.map(rfc3339),
            days_since: Thresholds::days_since(i.clock_from, now),
            state: t.state(i.clock_from, now).name(),
            agent_version: i.agent_version.clone(),
            product_version: i.product_version.clone(),
            outdated: c.agent_outdated(i.agent_version.as_deref(), now)
                || c.product_outdated(i.product_version.as_deref(), now),
        }
    }
}

impl InstallDetail {
    pub fn new(i: &Install, t: &Thresholds, c: &Currency, now: Timestamp) -> InstallDetail {
        InstallDetail {
            entry: InstallEntry::new(i, t, c, now),
            first_seen: rfc3339(i.first_seen),
            counting_from: rfc3339(i.clock_from),
            agent_outdated: c.agent_outdated(i.agent_version.as_deref(), now),
            product_outdated: c.product_outdated(i.product_version.as_deref(), now),
            usage: i.usage.as_deref().and_then(|u| serde_json::from_str(u).ok()),
        }
    }
}
