//! The e-mail channel: an alert as a mail with a plain-text and an HTML part, sent with lettre
//! over SMTP to the contacts of the alert's audience (`[contacts]`): STARTTLS (required, never
//! opportunistic), TLS from the first byte, or — to a loopback host only — no TLS. TLS trusts the
//! system's roots (rustls-platform-verifier) plus `alerts.email.ca_file`. The password is looked
//! up at each delivery (`crate::secrets`), so `callhome alerts set-password` applies at once.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::channels::{Alert, Audience, Channel, ChannelError, Sending, html_escape};
use crate::agent::Agent;
use crate::config::{ContactsConfig, EmailConfig, Security};
use crate::secrets::{self, Secret};

/// How long one SMTP conversation may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Email {
    cfg: EmailConfig,
    contacts: ContactsConfig,
    /// `ca_file`, resolved against the configuration's folder.
    ca_file: Option<PathBuf>,
    /// Where the password is looked up (the keyring only when the agent stored it there);
    /// without an agent, the environment and the systemd credential only.
    agent: Option<Arc<Agent>>,
}

impl Email {
    pub fn new(
        cfg: EmailConfig,
        contacts: ContactsConfig,
        ca_file: Option<PathBuf>,
        agent: Option<Arc<Agent>>,
    ) -> Email {
        Email { cfg, contacts, ca_file, agent }
    }

    /// The addresses an alert for `audience` goes to: its contact, else the other one.
    pub fn recipients(&self, audience: Audience) -> Vec<String> {
        let (t, r) = (self.contacts.technical.clone(), self.contacts.renewal.clone());
        let mut out: Vec<String> = match audience {
            Audience::Technical => t.or(r).into_iter().collect(),
            Audience::Renewal => r.or(t).into_iter().collect(),
            Audience::Both => t.into_iter().chain(r).collect(),
        };
        out.dedup();
        out
    }

    fn message(&self, alert: &Alert) -> Result<Message, ChannelError> {
        let bad = |e: &dyn std::fmt::Display| ChannelError::Message(e.to_string());
        let to = self.recipients(alert.news.audience());
        if to.is_empty() {
            return Err(ChannelError::NoRecipient);
        }
        let from: Mailbox = self.cfg.from.parse().map_err(|e| bad(&e))?;
        let mut b = Message::builder().from(from).subject(alert.title());
        for addr in &to {
            b = b.to(addr.parse::<Mailbox>().map_err(|e| bad(&e))?);
        }
        let (plain, html) = bodies(alert);
        b.multipart(MultiPart::alternative_plain_html(plain, html)).map_err(|e| bad(&e))
    }

    fn transport(&self) -> Result<AsyncSmtpTransport<Tokio1Executor>, ChannelError> {
        let host = self.cfg.host.clone();
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host)
            .port(self.cfg.port)
            .timeout(Some(SMTP_TIMEOUT));
        if self.cfg.security != Security::None {
            let mut tls = TlsParameters::builder(host.clone());
            if let Some(path) = &self.ca_file {
                let ca_err = |detail: String| ChannelError::CaFile { path: path.clone(), detail };
                let pem = std::fs::read(path).map_err(|e| ca_err(e.to_string()))?;
                tls = tls.add_root_certificate(Certificate::from_pem(&pem).map_err(|e| ca_err(e.to_string()))?);
            }
            let params = tls.build_rustls().map_err(|e| self.smtp_err(&e))?;
            // STARTTLS is required: a server that does not offer it is an error, never a
            // silent fall back to clear text (lettre's `starttls_relay`, with our roots).
            b = b.tls(match self.cfg.security {
                Security::Starttls => Tls::Required(params),
                _ => Tls::Wrapper(params),
            });
        }
        if let Some(user) = &self.cfg.user {
            let found = match &self.agent {
                Some(a) => a.channel_secret(Secret::SmtpPassword)?,
                None => secrets::lookup(Secret::SmtpPassword, false)?.map(|(v, _)| v),
            };
            let Some(password) = found else {
                return Err(ChannelError::NoPassword { user: user.clone() });
            };
            b = b.credentials(Credentials::new(user.clone(), password.expose().to_string()));
        }
        Ok(b.build())
    }

    fn smtp_err(&self, e: &dyn std::error::Error) -> ChannelError {
        let mut detail = e.to_string();
        let mut src = e.source();
        while let Some(s) = src {
            detail.push_str(": ");
            detail.push_str(&s.to_string());
            src = s.source();
        }
        ChannelError::Smtp { server: format!("{}:{}", self.cfg.host, self.cfg.port), detail }
    }
}

impl Channel for Email {
    fn name(&self) -> &'static str {
        "email"
    }

    fn target(&self) -> String {
        self.cfg.target()
    }

    fn send<'a>(&'a self, alert: &'a Alert) -> Sending<'a> {
        Box::pin(async move {
            let msg = self.message(alert)?;
            let transport = self.transport()?;
            transport.send(msg).await.map_err(|e| self.smtp_err(&e))?;
            Ok(())
        })
    }
}

/// The plain-text and HTML bodies.
fn bodies(alert: &Alert) -> (String, String) {
    let n = &alert.news;
    let when = crate::clock::rfc3339(alert.at);
    let plain = format!(
        "{}\n\n{}\n\nState: {}\nAlert: {}\nMachine: {} (install {})\nAt: {when}\n\n-- \ncallhome, the call-home agent. Run `callhome status` on the machine for details.\n",
        n.summary,
        n.body,
        n.state(),
        n.key,
        alert.host,
        alert.install_id
    );
    let html = format!(
        "<!DOCTYPE html><html><body><h2>{}</h2><p>{}</p><table>\
         <tr><td>State</td><td><b>{}</b></td></tr><tr><td>Alert</td><td><code>{}</code></td></tr>\
         <tr><td>Machine</td><td>{} (install <code>{}</code>)</td></tr><tr><td>At</td><td>{when}</td></tr></table>\
         <p><small>callhome, the call-home agent. Run <code>callhome status</code> on the machine for details.</small></p>\
         </body></html>",
        html_escape(&n.summary),
        html_escape(&n.body),
        n.state(),
        html_escape(&n.key),
        html_escape(&alert.host),
        html_escape(&alert.install_id)
    );
    (plain, html)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::News;

    fn email(technical: Option<&str>, renewal: Option<&str>) -> Email {
        Email::new(
            EmailConfig {
                host: "127.0.0.1".into(),
                port: 25,
                security: Security::None,
                from: "callhome@example.com".into(),
                user: None,
                ca_file: None,
            },
            ContactsConfig { technical: technical.map(Into::into), renewal: renewal.map(Into::into) },
            None,
            None,
        )
    }

    #[test]
    fn each_audience_reaches_its_contact_or_the_other_one() {
        let e = email(Some("ops@example.com"), Some("lic@example.com"));
        assert_eq!(e.recipients(Audience::Technical), ["ops@example.com"]);
        assert_eq!(e.recipients(Audience::Renewal), ["lic@example.com"]);
        assert_eq!(e.recipients(Audience::Both), ["ops@example.com", "lic@example.com"]);
        assert_eq!(email(Some("ops@example.com"), None).recipients(Audience::Renewal), ["ops@example.com"]);
    }

    #[test]
    fn the_message_has_the_state_in_its_subject_and_two_parts() {
        let e = email(Some("ops@example.com"), None);
        let news = News {
            key: "upload-failed:TLS".into(),
            summary: "Upload failed: <tls>".into(),
            body: "b".into(),
            urgent: true,
            once: false,
        };
        let alert = Alert { news, at: 0, install_id: "i".into(), host: "h".into() };
        let text = String::from_utf8(e.message(&alert).unwrap().formatted()).unwrap();
        assert!(text.contains("Subject: [callhome CRITICAL] Upload failed: <tls>"), "{text}");
        assert!(text.contains("text/plain") && text.contains("text/html") && text.contains("&lt;tls&gt;"), "{text}");
    }
}
