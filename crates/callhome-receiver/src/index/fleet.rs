//! What the index keeps for the fleet view and for idempotency across replicas: the receipt of
//! every bundle (SHA-256 unique), the exports, and per install its reported versions, last
//! license usage summary and compliance clock (`install_reports`, indexed by `clock_from`).
//!
//! Both back ends run the same steps; how a report updates an install is decided once, here
//! ([`merge`]), so a late or backdated bundle never overwrites newer facts.

use super::{BundleRow, ExportRow, Index, IndexError, Recorded};
use crate::fleet::{ClockRange, Install};
use callhome_protocol::time::Timestamp;

/// What one accepted bundle tells about its install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallFacts {
    pub install_id: String,
    /// When the bundle was received.
    pub at: Timestamp,
    /// It is license telemetry: a successful upload for the compliance clock.
    pub success: bool,
    pub agent_version: Option<String>,
    pub product_version: Option<String>,
    pub usage: Option<String>,
}

/// The install row with `f` taken in. `reported_at` and `usage_at` are when the kept versions
/// and usage summary were received; an older report fills only what is still empty.
pub(super) fn merge(old: Option<(Install, Option<Timestamp>, Option<Timestamp>)>, f: &InstallFacts) -> Merged {
    let (mut i, versions_at, usage_at) = old.unwrap_or_else(|| {
        (
            Install {
                install_id: f.install_id.clone(),
                customer: None,
                first_seen: f.at,
                last_success: None,
                clock_from: f.at,
                agent_version: None,
                product_version: None,
                usage: None,
            },
            None,
            None,
        )
    });
    i.first_seen = i.first_seen.min(f.at);
    if f.success {
        i.last_success = Some(i.last_success.map_or(f.at, |l| l.max(f.at)));
    }
    i.clock_from = i.last_success.unwrap_or(i.first_seen);
    let newer = |kept: Option<Timestamp>| kept.is_none_or(|k| f.at >= k);
    let mut versions_at = versions_at;
    if (f.agent_version.is_some() || f.product_version.is_some()) && newer(versions_at) {
        i.agent_version = f.agent_version.clone().or(i.agent_version);
        i.product_version = f.product_version.clone().or(i.product_version);
        versions_at = Some(f.at);
    }
    let mut usage_at = usage_at;
    if f.usage.is_some() && newer(usage_at) {
        i.usage = f.usage.clone();
        usage_at = Some(f.at);
    }
    Merged { install: i, versions_at, usage_at }
}

/// An install row to write.
pub(super) struct Merged {
    pub install: Install,
    pub versions_at: Option<Timestamp>,
    pub usage_at: Option<Timestamp>,
}

impl Index {
    /// The receipt (JSON) the index holds for `sha256`, recorded by any replica.
    pub async fn receipt(&self, sha256: &str) -> Result<Option<String>, IndexError> {
        match self {
            Index::Sqlite(i) => {
                let sha = sha256.to_string();
                i.call(move |i| i.receipt(&sha)).await?
            }
            Index::Postgres(i) => i.receipt(sha256).await,
        }
    }

    /// Records a bundle once per SHA-256 and, when it is new, what it tells about its install —
    /// in one transaction. Answers the receipt the index holds (another replica's when it
    /// recorded the same bundle first).
    pub async fn record_bundle(&self, b: BundleRow, facts: Option<InstallFacts>) -> Result<Recorded, IndexError> {
        match self {
            Index::Sqlite(i) => i.call(move |i| i.record_bundle(&b, facts.as_ref())).await?,
            Index::Postgres(i) => i.record_bundle(&b, facts.as_ref()).await,
        }
    }

    /// Records an export taken in (once per receipt).
    pub async fn record_export(&self, e: ExportRow) -> Result<(), IndexError> {
        match self {
            Index::Sqlite(i) => i.call(move |i| i.record_export(&e)).await?,
            Index::Postgres(i) => i.record_export(&e).await,
        }
    }

    /// The installs whose clock counts from within `range`, longest silent first (no usage
    /// summaries: [`Index::install`] has them).
    pub async fn installs(&self, range: ClockRange) -> Result<Vec<Install>, IndexError> {
        match self {
            Index::Sqlite(i) => i.call(move |i| i.installs(range)).await?,
            Index::Postgres(i) => i.installs(range).await,
        }
    }

    /// How many installs' clocks count from within `range`.
    pub async fn count_installs(&self, range: ClockRange) -> Result<u64, IndexError> {
        match self {
            Index::Sqlite(i) => i.call(move |i| i.count_installs(range)).await?,
            Index::Postgres(i) => i.count_installs(range).await,
        }
    }

    /// One install, with its last usage summary.
    pub async fn install(&self, install_id: &str) -> Result<Option<Install>, IndexError> {
        match self {
            Index::Sqlite(i) => {
                let id = install_id.to_string();
                i.call(move |i| i.install(&id)).await?
            }
            Index::Postgres(i) => i.install(install_id).await,
        }
    }

    /// Adds `count` synthetic installs of `customer` (ids `seed-<customer>-<n>`), whose last
    /// successes are spread evenly over the `spread_days` days before `now`: a fleet for
    /// benchmarks and trials, written in bulk. Returns how many were added.
    pub async fn seed(&self, customer: &str, count: u64, spread_days: u32, now: Timestamp) -> Result<u64, IndexError> {
        let customer = super::check_customer(customer)?.to_string();
        if !crate::ingest::plain_id(&format!("seed-{customer}-{count}")) {
            return Err(IndexError::Invalid(
                "--customer: seeded install ids are seed-CUSTOMER-N; give a customer of letters, digits, '.', '_' or '-'".into(),
            ));
        }
        if count == 0 {
            return Ok(0);
        }
        match self {
            Index::Sqlite(i) => i.call(move |i| i.seed(&customer, count, spread_days, now)).await?,
            Index::Postgres(i) => i.seed(&customer, count, spread_days, now).await,
        }
    }

    /// The query plan of the `fleet --overdue` query (PostgreSQL's `EXPLAIN`, SQLite's
    /// `EXPLAIN QUERY PLAN`), to check it uses the `clock_from` index.
    pub async fn explain_installs(&self, range: ClockRange) -> Result<String, IndexError> {
        match self {
            Index::Sqlite(i) => i.call(move |i| i.explain_installs(range)).await?,
            Index::Postgres(i) => i.explain_installs(range).await,
        }
    }
}

/// How an enrolment writes an install's report row: its clock counts from the enrolment and its
/// customer is the token's, set only where none is yet (an install is bound to one customer for
/// good, so the view keeps the customer beside the clock and lists without a join). Followed by
/// the `(install_id, customer, enrolled at, enrolled at)` values.
macro_rules! enrol_install_into {
    () => {
        "INSERT INTO install_reports (install_id, customer, first_seen, clock_from) "
    };
}
/// What [`enrol_install_into!`]'s insert does to an install already reported.
macro_rules! enrol_install_on_conflict {
    () => {
        " ON CONFLICT (install_id) DO UPDATE SET customer = excluded.customer WHERE install_reports.customer IS NULL"
    };
}
pub(super) use {enrol_install_into, enrol_install_on_conflict};

/// An install enrolled (see [`enrol_install_into!`]): `$1` install, `$2` customer, `$3` now.
pub(super) const ENROL_INSTALL: &str =
    concat!(enrol_install_into!(), "VALUES ($1, $2, $3, $3)", enrol_install_on_conflict!());

/// The list query: `$1` upper (inclusive), `$2` lower (exclusive) bound of `clock_from`; one
/// range scan of `install_reports_by_clock (clock_from, install_id)`, already in order.
pub(super) const LIST_INSTALLS: &str = "SELECT r.install_id, r.customer, r.first_seen, r.last_success, r.clock_from, \
     r.agent_version, r.product_version, NULL FROM install_reports r \
     WHERE r.clock_from <= $1 AND r.clock_from > $2 ORDER BY r.clock_from, r.install_id";

pub(super) const COUNT_INSTALLS: &str =
    "SELECT COUNT(*) FROM install_reports r WHERE r.clock_from <= $1 AND r.clock_from > $2";

/// One install with its usage summary and when its versions and usage were received.
pub(super) const ONE_INSTALL: &str = "SELECT r.install_id, r.customer, r.first_seen, r.last_success, r.clock_from, \
     r.agent_version, r.product_version, r.usage_summary, r.versions_at, r.usage_at \
     FROM install_reports r WHERE r.install_id = $1";

pub(super) const UPDATE_INSTALL: &str = "UPDATE install_reports SET first_seen = $2, last_success = $3, clock_from = $4, \
     agent_version = $5, product_version = $6, versions_at = $7, usage_summary = $8, usage_at = $9 WHERE install_id = $1";

/// The bounds of `range` as query parameters.
pub(super) fn bounds(range: ClockRange) -> (i64, i64) {
    (range.upper, range.lower.unwrap_or(i64::MIN))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(at: Timestamp, success: bool, agent: Option<&str>) -> InstallFacts {
        InstallFacts {
            install_id: "a".into(),
            at,
            success,
            agent_version: agent.map(str::to_string),
            product_version: None,
            usage: None,
        }
    }

    #[test]
    fn a_late_or_backdated_report_never_overwrites_newer_facts() {
        let m = merge(None, &facts(100, false, Some("1.0")));
        assert_eq!((m.install.clock_from, m.install.last_success), (100, None));
        let m = merge(Some((m.install, m.versions_at, m.usage_at)), &facts(200, true, Some("1.1")));
        assert_eq!((m.install.clock_from, m.install.last_success), (200, Some(200)));
        let m = merge(Some((m.install, m.versions_at, m.usage_at)), &facts(50, true, Some("0.9")));
        assert_eq!((m.install.first_seen, m.install.clock_from), (50, 200));
        assert_eq!(m.install.agent_version.as_deref(), Some("1.1"));
    }
}
