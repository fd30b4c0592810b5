//! Secrets: the proxy password, the endpoint (registration) token, and the alert channels' SMTP
//! password and webhook signing secret.
//!
//! callhome never writes a secret to a file of its own. A secret is looked up, in order, in:
//! 1. the environment (`CALLHOME_PROXY_PASSWORD`, `CALLHOME_ENDPOINT_TOKEN`,
//!    `CALLHOME_SMTP_PASSWORD`, `CALLHOME_WEBHOOK_SECRET`) — for a service manager's environment
//!    file or a one-off run;
//! 2. a systemd credential, `$CREDENTIALS_DIRECTORY/proxy-password`, `…/endpoint-token`,
//!    `…/smtp-password` or `…/webhook-secret` (`LoadCredential=` / `SetCredentialEncrypted=` in
//!    the unit);
//! 3. the operating system's keyring (keyring-core; on Linux the Secret Service over D-Bus), where
//!    `callhome proxy set`, `callhome register` and `callhome alerts set-password` put them.
//!
//! Storing goes to the keyring only; with no keyring service the error names the alternatives.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The keyring's service name for every callhome secret.
pub const SERVICE: &str = "callhome";

/// A secret callhome knows about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secret {
    ProxyPassword,
    EndpointToken,
    /// The `[alerts.email]` user's SMTP password.
    SmtpPassword,
    /// The key that signs `[alerts.webhook]` bodies (HMAC-SHA256).
    WebhookSecret,
}

impl Secret {
    /// Every secret callhome knows.
    pub const ALL: [Secret; 4] =
        [Secret::ProxyPassword, Secret::EndpointToken, Secret::SmtpPassword, Secret::WebhookSecret];

    /// The keyring entry's user name, and the systemd credential's file name.
    pub fn key(self) -> &'static str {
        match self {
            Secret::ProxyPassword => "proxy-password",
            Secret::EndpointToken => "endpoint-token",
            Secret::SmtpPassword => "smtp-password",
            Secret::WebhookSecret => "webhook-secret",
        }
    }

    /// The environment variable that overrides the keyring.
    pub fn env(self) -> &'static str {
        match self {
            Secret::ProxyPassword => "CALLHOME_PROXY_PASSWORD",
            Secret::EndpointToken => "CALLHOME_ENDPOINT_TOKEN",
            Secret::SmtpPassword => "CALLHOME_SMTP_PASSWORD",
            Secret::WebhookSecret => "CALLHOME_WEBHOOK_SECRET",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Secret::ProxyPassword => "the proxy password",
            Secret::EndpointToken => "the endpoint token",
            Secret::SmtpPassword => "the SMTP password",
            Secret::WebhookSecret => "the webhook signing secret",
        }
    }
}

/// Where a secret came from (shown by `proxy show` and the API; never the value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Environment,
    Credential,
    Keyring,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Environment => "environment",
            Source::Credential => "systemd-credential",
            Source::Keyring => "keyring",
        }
    }
}

/// Why a secret could not be read or stored.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(
        "no keyring service is available ({detail}). On a server, give {what} to the agent instead through the \
         {env} environment variable or a systemd credential file named {key} (LoadCredential={key}:/path in the \
         unit, read from $CREDENTIALS_DIRECTORY); callhome never writes secrets to files of its own"
    )]
    NoKeyring { detail: String, what: &'static str, env: &'static str, key: &'static str },
    #[error("the keyring refused access to {what}: {detail} (unlock the keyring and try again)")]
    Refused { what: &'static str, detail: String },
    #[error("cannot read {what} from {path}: {detail}")]
    CredentialFile { what: &'static str, path: PathBuf, detail: String },
    #[error("the keyring failed on {what}: {detail}")]
    Other { what: &'static str, detail: String },
}

/// A secret's value. Its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Value(String);

impl Value {
    pub fn new(s: impl Into<String>) -> Value {
        Value(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Value(..)")
    }
}

/// Looks the secret up: environment, systemd credential, then (when `keyring`) the keyring.
/// `Ok(None)` when it is nowhere; a keyring that is absent counts as nowhere.
pub fn lookup(s: Secret, keyring: bool) -> Result<Option<(Value, Source)>, SecretError> {
    if let Ok(v) = std::env::var(s.env())
        && !v.is_empty()
    {
        return Ok(Some((Value(v), Source::Environment)));
    }
    if let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") {
        let path = PathBuf::from(dir).join(s.key());
        match std::fs::read_to_string(&path) {
            // An empty file is no secret (a unit may load a placeholder).
            Ok(v) if v.trim_end_matches(['\n', '\r']).is_empty() => {}
            Ok(v) => {
                let v = v.trim_end_matches(['\n', '\r']).to_string();
                return Ok(Some((Value(v), Source::Credential)));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(SecretError::CredentialFile { what: s.what(), path, detail: e.to_string() });
            }
        }
    }
    if !keyring {
        return Ok(None);
    }
    match keyring_get(s) {
        Ok(v) => Ok(v.map(|v| (v, Source::Keyring))),
        Err(SecretError::NoKeyring { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Stores the secret in the OS keyring (and nowhere else).
pub fn store(s: Secret, value: &Value) -> Result<(), SecretError> {
    let entry = entry(s)?;
    entry.set_password(value.expose()).map_err(|e| classify(s, e))
}

/// Removes the secret from the keyring; `Ok(false)` when there was none.
pub fn clear(s: Secret) -> Result<bool, SecretError> {
    let entry = entry(s)?;
    match entry.delete_credential() {
        Ok(()) => Ok(true),
        Err(keyring_core::Error::NoEntry) => Ok(false),
        Err(e) => Err(classify(s, e)),
    }
}

/// Reads the secret from the keyring only.
pub fn keyring_get(s: Secret) -> Result<Option<Value>, SecretError> {
    let entry = entry(s)?;
    match entry.get_password() {
        Ok(v) => Ok(Some(Value(v))),
        Err(keyring_core::Error::NoEntry) => Ok(None),
        Err(e) => Err(classify(s, e)),
    }
}

fn entry(s: Secret) -> Result<keyring_core::Entry, SecretError> {
    default_store(s)?;
    keyring_core::Entry::new(SERVICE, s.key()).map_err(|e| classify(s, e))
}

fn classify(s: Secret, e: keyring_core::Error) -> SecretError {
    match e {
        keyring_core::Error::NoStorageAccess(d) => SecretError::Refused { what: s.what(), detail: d.to_string() },
        keyring_core::Error::PlatformFailure(d) => no_keyring(s, d.to_string()),
        other => SecretError::Other { what: s.what(), detail: other.to_string() },
    }
}

fn no_keyring(s: Secret, detail: String) -> SecretError {
    SecretError::NoKeyring { detail, what: s.what(), env: s.env(), key: s.key() }
}

/// Registers the platform's store once per process. A failed attempt is retried next time (the
/// keyring daemon may start later in a desktop session).
fn default_store(s: Secret) -> Result<(), SecretError> {
    static READY: Mutex<bool> = Mutex::new(false);
    let mut ready = READY.lock().unwrap_or_else(|e| e.into_inner());
    if *ready {
        return Ok(());
    }
    let store = platform_store().map_err(|d| no_keyring(s, d))?;
    keyring_core::set_default_store(store);
    *ready = true;
    Ok(())
}

#[cfg(target_os = "linux")]
fn platform_store() -> Result<Arc<keyring_core::api::CredentialStore>, String> {
    let store = zbus_secret_service_keyring_store::Store::new().map_err(|e| e.to_string())?;
    Ok(store)
}

/// macOS: the user's login keychain. (Compiled on macOS only; this repository's CI is Linux.)
#[cfg(target_os = "macos")]
fn platform_store() -> Result<Arc<keyring_core::api::CredentialStore>, String> {
    let store = apple_native_keyring_store::keychain::Store::new().map_err(|e| e.to_string())?;
    Ok(store)
}

/// Windows: the Credential Manager. (Compiled on Windows only; this repository's CI is Linux.)
#[cfg(windows)]
fn platform_store() -> Result<Arc<keyring_core::api::CredentialStore>, String> {
    let store = windows_native_keyring_store::Store::new().map_err(|e| e.to_string())?;
    Ok(store)
}

#[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
fn platform_store() -> Result<Arc<keyring_core::api::CredentialStore>, String> {
    Err("this build has no keyring store for this platform".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_never_prints() {
        let v = Value::new("hunter2");
        assert_eq!(format!("{v:?}"), "Value(..)");
        assert_eq!(v.expose(), "hunter2");
    }

    #[test]
    fn the_no_keyring_error_names_both_alternatives() {
        let e = no_keyring(Secret::ProxyPassword, "org.freedesktop.secrets was not provided".into()).to_string();
        assert!(e.contains("CALLHOME_PROXY_PASSWORD"), "{e}");
        assert!(e.contains("$CREDENTIALS_DIRECTORY"), "{e}");
        assert!(e.contains("LoadCredential=proxy-password"), "{e}");
        let e = no_keyring(Secret::SmtpPassword, "none".into()).to_string();
        assert!(e.contains("CALLHOME_SMTP_PASSWORD") && e.contains("LoadCredential=smtp-password"), "{e}");
    }
}
