//! Where the store is (`--store DIR | s3://BUCKET/PREFIX`) and the keys of its layout (see the
//! parent module's doc).

use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::internal;
use crate::Refusal;
use callhome_protocol::receipt::Receipt;
use callhome_protocol::time::{Timestamp, rfc3339};

/// Where the bundles are kept: `--store DIR` or `--store s3://BUCKET/PREFIX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSpec {
    /// A local folder.
    Local(PathBuf),
    /// A bucket of an S3-compatible service; endpoint and credentials from `AWS_*`.
    S3 { bucket: String, prefix: String },
}

impl FromStr for StoreSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<StoreSpec, String> {
        let Some(rest) = s.strip_prefix("s3://") else {
            if s.is_empty() {
                return Err("give a folder or s3://BUCKET/PREFIX".into());
            }
            return Ok(StoreSpec::Local(PathBuf::from(s)));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !bucket_ok {
            return Err(format!(
                "{s}: the bucket name {bucket:?} must be 3 to 63 lowercase letters, digits, '-' or '.' (s3://BUCKET/PREFIX)"
            ));
        }
        let prefix = prefix.trim_matches('/');
        if prefix.split('/').any(|p| p == "." || p == "..") || prefix.contains("//") {
            return Err(format!("{s}: the prefix may not hold '.', '..' or empty segments"));
        }
        Ok(StoreSpec::S3 { bucket: bucket.to_string(), prefix: prefix.to_string() })
    }
}

impl std::fmt::Display for StoreSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreSpec::Local(dir) => write!(f, "{}", dir.display()),
            StoreSpec::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            StoreSpec::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

impl StoreSpec {
    /// The folder of a local store.
    pub fn local_dir(&self) -> Option<&Path> {
        match self {
            StoreSpec::Local(dir) => Some(dir),
            StoreSpec::S3 { .. } => None,
        }
    }
}

/// The key of a bundle received at `received_at` from `install` (see the module's layout).
pub fn bundle_key(received_at: Timestamp, install: Option<&str>, sha256: &str) -> String {
    let day = &rfc3339(received_at)[..10];
    let install = install.filter(|i| crate::ingest::plain_id(i)).unwrap_or("_");
    format!("bundles/{}/{}/{}/{install}/{sha256}.zip", &day[..4], &day[5..7], &day[8..10])
}

/// The key of the bundle `r` acknowledges, sent by `install` (`None`: an anonymous CEIP
/// bundle, [`ceip_key`]): the receipt's day fixes it, so whichever replica stores the bundle, and
/// whenever, it lands in one place.
pub fn bundle_key_of(r: &Receipt, install: Option<&str>) -> Result<String, Refusal> {
    let at = callhome_protocol::time::parse_rfc3339(&r.received_at)
        .ok_or_else(|| internal("the receipt's time", format!("{:?} is no RFC 3339 time", r.received_at)))?;
    Ok(match install {
        Some(install) => bundle_key(at, Some(install), &r.bundle_sha256),
        None => ceip_key(at, &r.bundle_sha256),
    })
}

/// The key of an anonymous CEIP bundle received at `received_at`: by day only, under no install.
pub fn ceip_key(received_at: Timestamp, sha256: &str) -> String {
    let day = &rfc3339(received_at)[..10];
    format!("ceip/{}/{}/{}/{sha256}.zip", &day[..4], &day[5..7], &day[8..10])
}

/// The key of the receipt given for `sha256`.
pub fn receipt_key(sha256: &str) -> String {
    format!("receipts/{sha256}.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_specs_parse_and_keys_are_by_day_install_and_sha() {
        assert_eq!("/var/lib/x".parse::<StoreSpec>(), Ok(StoreSpec::Local("/var/lib/x".into())));
        assert_eq!(
            "s3://fleet-bundles/eu/prod/".parse::<StoreSpec>(),
            Ok(StoreSpec::S3 { bucket: "fleet-bundles".into(), prefix: "eu/prod".into() })
        );
        assert_eq!("s3://b12".parse::<StoreSpec>(), Ok(StoreSpec::S3 { bucket: "b12".into(), prefix: "".into() }));
        assert!("s3://Bad_Bucket/x".parse::<StoreSpec>().unwrap_err().contains("bucket name"));
        assert!("s3://bucket/a/../b".parse::<StoreSpec>().is_err());
        let t = callhome_protocol::time::parse_rfc3339("2026-03-07T23:59:59Z").unwrap();
        assert_eq!(bundle_key(t, Some("inst-1"), "ab"), "bundles/2026/03/07/inst-1/ab.zip");
        assert_eq!(bundle_key(t, Some("../x"), "ab"), "bundles/2026/03/07/_/ab.zip");
        assert_eq!(bundle_key(t, None, "ab"), "bundles/2026/03/07/_/ab.zip");
        assert_eq!(ceip_key(t, "ab"), "ceip/2026/03/07/ab.zip");
    }
}
