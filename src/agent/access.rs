//! The agent's access to the receiver: the uploader built from the configuration, the proxy and
//! the endpoint token chosen with `callhome proxy set` / `register` (kept in the state and the
//! keyring), rebuilt whenever they change.

use super::*;

/// A secret's settings key ([`Key::SecretInKeyring`]) holds this when the keyring has it.
pub(super) const IN_KEYRING: &str = "keyring";

/// What the state database says about the proxy and the keyring.
pub(super) fn stored_access(store: &Store) -> Result<StoredAccess> {
    Ok(StoredAccess {
        proxy: store
            .setting(Key::ProxyUrl)?
            .map(|u| Ok::<_, AgentError>((u, store.setting(Key::ProxyUser)?)))
            .transpose()?,
        password_in_keyring: store.setting(Key::SecretInKeyring(Secret::ProxyPassword))?.as_deref() == Some(IN_KEYRING),
        token_in_keyring: store.setting(Key::SecretInKeyring(Secret::EndpointToken))?.as_deref() == Some(IN_KEYRING),
    })
}

impl Agent {
    /// The upload client, or why uploads cannot start.
    pub fn uploader(&self) -> std::result::Result<Uploader, Failure> {
        self.uploader.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The proxy and endpoint token uploads use now.
    pub fn access(&self) -> Access {
        self.access.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Stores the proxy (URL and user in the state database, the password in the OS keyring)
    /// and rebuilds the uploader. `password: None` keeps the stored one.
    pub fn set_proxy(&self, url: &str, user: Option<&str>, password: Option<&Value>) -> Result<()> {
        crate::config::check_proxy(url).map_err(|m| AgentError::Refused(format!("proxy URL: {m}")))?;
        if let Some(pw) = password {
            secrets::store(Secret::ProxyPassword, pw)?;
        }
        {
            let store = self.store();
            store.set_setting(Key::ProxyUrl, url)?;
            match user {
                Some(u) => store.set_setting(Key::ProxyUser, u)?,
                None => store.delete_setting(Key::ProxyUser)?,
            }
            if password.is_some() {
                store.set_setting(Key::SecretInKeyring(Secret::ProxyPassword), IN_KEYRING)?;
            }
        }
        self.reload_access()
    }

    /// Forgets the stored proxy and removes its password from the keyring; the config's
    /// `upload.proxy*` keys apply again. Returns whether a password was removed.
    pub fn clear_proxy(&self) -> Result<bool> {
        let removed = self.clear_secret(Secret::ProxyPassword)?;
        {
            let store = self.store();
            store.delete_setting(Key::ProxyUrl)?;
            store.delete_setting(Key::ProxyUser)?;
        }
        self.reload_access()?;
        Ok(removed)
    }

    /// Stores the endpoint (registration) token in the OS keyring; uploads send it as a bearer
    /// token from now on.
    pub fn set_token(&self, token: &Value) -> Result<()> {
        secrets::store(Secret::EndpointToken, token)?;
        self.store().set_setting(Key::SecretInKeyring(Secret::EndpointToken), IN_KEYRING)?;
        self.reload_access()
    }

    /// Removes the endpoint token from the keyring.
    pub fn clear_token(&self) -> Result<bool> {
        let removed = self.clear_secret(Secret::EndpointToken)?;
        self.reload_access()?;
        Ok(removed)
    }

    pub(super) fn clear_secret(&self, s: Secret) -> Result<bool> {
        // Only what callhome put in the keyring is asked for: a machine that never stored a
        // secret never wakes a keyring daemon.
        let in_keyring = self.store().setting(Key::SecretInKeyring(s))?.as_deref() == Some(IN_KEYRING);
        let removed = in_keyring && secrets::clear(s)?;
        self.store().delete_setting(Key::SecretInKeyring(s))?;
        Ok(removed)
    }

    /// Re-reads the proxy and the token and rebuilds the uploader.
    pub fn reload_access(&self) -> Result<()> {
        let access = Access::resolve(&self.cfg, &stored_access(&self.store())?);
        let uploader = Uploader::new(&self.cfg, &self.install.install_id, &access);
        if let Err(f) = &uploader {
            warn!("uploads cannot start: {}", f.message);
        }
        *self.uploader.write().unwrap_or_else(|e| e.into_inner()) = uploader;
        *self.access.write().unwrap_or_else(|e| e.into_inner()) = access;
        self.notify(Notice::StateChanged { what: "proxy".into() });
        Ok(())
    }
}
