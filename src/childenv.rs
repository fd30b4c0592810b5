//! The environment of the programs the agent starts: vendor commands (`collect::command`) and the
//! browser opener (`api::dashboard::open_in_browser`).
//!
//! A child never inherits the agent's environment: the agent's own may hold its secrets
//! (`CALLHOME_PROXY_PASSWORD`, `CALLHOME_ENDPOINT_TOKEN`, …, `CREDENTIALS_DIRECTORY`), and a vendor
//! command's output lands in a bundle. A child gets an allow-list: `PATH`, `LANG`, the `LC_*`
//! locale variables, `TZ` and `HOME`, what the platform needs to start programs at all, and the
//! names the configuration adds (`collect.commands[].env`). Whatever the list says, `CALLHOME_*`
//! and `CREDENTIALS_DIRECTORY` never pass, and a proxy variable passes only when its URL carries
//! no user name or password. This module decides the list; it starts nothing.

use std::ffi::OsString;

/// What every child gets when the agent has it.
const BASE: &[&str] = &["PATH", "LANG", "LANGUAGE", "TZ", "HOME", "USER", "LOGNAME", "TMPDIR"];

/// What a program needs on Windows to start at all.
#[cfg(windows)]
const PLATFORM: &[&str] = &[
    "SYSTEMROOT",
    "WINDIR",
    "COMSPEC",
    "PATHEXT",
    "TEMP",
    "TMP",
    "USERPROFILE",
    "PROGRAMDATA",
    "APPDATA",
    "LOCALAPPDATA",
];
#[cfg(not(windows))]
const PLATFORM: &[&str] = &[];

/// What a browser needs to reach the user's desktop session.
pub const DESKTOP: &[&str] = &[
    "DISPLAY",
    "WAYLAND_DISPLAY",
    "XAUTHORITY",
    "XDG_RUNTIME_DIR",
    "XDG_SESSION_TYPE",
    "XDG_CURRENT_DESKTOP",
    "XDG_DATA_DIRS",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "DBUS_SESSION_BUS_ADDRESS",
    "BROWSER",
];

/// Whether a variable of this name is the agent's own or a door to its secrets: never passed on.
pub fn is_forbidden(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    upper.starts_with("CALLHOME_") || upper == "CREDENTIALS_DIRECTORY"
}

fn is_proxy(name: &str) -> bool {
    matches!(name.to_ascii_lowercase().as_str(), "http_proxy" | "https_proxy" | "all_proxy" | "ftp_proxy")
}

/// Whether a proxy URL names a user or a password (`http://user:pass@proxy:3128`).
fn carries_credentials(value: &str) -> bool {
    let rest = value.split_once("://").map_or(value, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    authority.contains('@')
}

/// The variables a child gets: the allow-list plus `extra`, taken from `lookup` (the agent's
/// environment in practice), minus anything forbidden and any proxy URL with credentials.
pub fn allowed(extra: &[String], lookup: impl Fn(&str) -> Option<OsString>) -> Vec<(String, OsString)> {
    let mut names: Vec<String> = BASE.iter().chain(PLATFORM).map(|s| s.to_string()).collect();
    // The locale categories (LC_ALL, LC_CTYPE, …) are part of LANG's job.
    for (k, _) in std::env::vars_os() {
        if let Some(k) = k.to_str().filter(|k| k.starts_with("LC_")) {
            names.push(k.to_string());
        }
    }
    names.extend(extra.iter().cloned());
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter(|n| !n.is_empty() && !is_forbidden(n))
        .filter_map(|n| lookup(&n).map(|v| (n, v)))
        .filter(|(n, v)| !(is_proxy(n) && carries_credentials(&v.to_string_lossy())))
        .collect()
}

/// Replaces a command's environment with [`allowed`]'s list taken from this process's.
pub fn apply(cmd: &mut std::process::Command, extra: &[String]) {
    cmd.env_clear();
    cmd.envs(allowed(extra, |n| std::env::var_os(n)));
}

/// [`apply`] for tokio's `Command`.
pub fn apply_tokio(cmd: &mut tokio::process::Command, extra: &[String]) {
    cmd.env_clear();
    cmd.envs(allowed(extra, |n| std::env::var_os(n)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |n| pairs.iter().find(|(k, _)| k == n).map(|(_, v)| OsString::from(v))
    }

    fn names(v: &[(String, OsString)]) -> Vec<&str> {
        v.iter().map(|(k, _)| k.as_str()).collect()
    }

    #[test]
    fn only_the_allow_list_and_the_configured_names_pass() {
        let e = env(&[
            ("PATH", "/usr/bin"),
            ("HOME", "/root"),
            ("CALLHOME_PROXY_PASSWORD", "s3cret"),
            ("CREDENTIALS_DIRECTORY", "/run/credentials/callhome.service"),
            ("VENDOR_HOME", "/opt/vendor"),
            ("SECRET_OTHER", "x"),
        ]);
        let got = allowed(&["VENDOR_HOME".into(), "CALLHOME_ENDPOINT_TOKEN".into()], e);
        let n = names(&got);
        assert!(n.contains(&"PATH") && n.contains(&"HOME") && n.contains(&"VENDOR_HOME"), "{n:?}");
        assert!(!n.iter().any(|n| n.starts_with("CALLHOME_") || *n == "CREDENTIALS_DIRECTORY" || *n == "SECRET_OTHER"));
    }

    #[test]
    fn a_proxy_url_with_credentials_never_passes() {
        let e = env(&[("https_proxy", "http://bob:pw@proxy:3128"), ("http_proxy", "http://proxy:3128/")]);
        let got = allowed(&["https_proxy".into(), "http_proxy".into()], e);
        assert_eq!(names(&got), ["http_proxy"]);
        assert!(carries_credentials("proxy.example:3128@x") && !carries_credentials("http://p:1/a@b"));
    }
}
