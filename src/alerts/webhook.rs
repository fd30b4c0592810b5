//! The webhook channel: an alert POSTed as JSON — callhome's own document, a Slack message or a
//! Teams MessageCard (`alerts.webhook.format`) — through the same proxy as uploads. With a
//! signing secret (`Secret::WebhookSecret`), the header `X-Callhome-Signature: sha256=<hex>`
//! carries the HMAC-SHA256 of the exact body, so the receiver can tell the alert is ours.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::channels::{Alert, Channel, ChannelError, Sending};
use crate::agent::Agent;
use crate::config::{WebhookConfig, WebhookFormat};
use crate::secrets::Secret;

/// The header that carries the body's signature.
pub const SIGNATURE_HEADER: &str = "X-Callhome-Signature";

/// How long one POST may take.
const TIMEOUT: Duration = Duration::from_secs(30);

pub struct Webhook {
    cfg: WebhookConfig,
    agent: Arc<Agent>,
}

impl Webhook {
    pub fn new(cfg: WebhookConfig, agent: Arc<Agent>) -> Webhook {
        Webhook { cfg, agent }
    }

    fn err(&self, detail: impl std::fmt::Display) -> ChannelError {
        ChannelError::Webhook { url: self.cfg.url.clone(), detail: detail.to_string() }
    }

    fn client(&self) -> Result<reqwest::Client, ChannelError> {
        let b = reqwest::Client::builder()
            .user_agent(concat!("callhome/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(TIMEOUT)
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none());
        let b = crate::upload::proxied(b, &self.agent.access()).map_err(|e| self.err(e))?;
        b.build().map_err(|e| self.err(e))
    }
}

/// `sha256=<hex>` of the body under `secret`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The body in the configured shape.
pub fn body(format: WebhookFormat, alert: &Alert) -> Value {
    let n = &alert.news;
    match format {
        WebhookFormat::Json => json!({
            "source": "callhome",
            "key": n.key,
            "kind": n.kind(),
            "state": n.state(),
            "audience": n.audience().name(),
            "summary": n.summary,
            "body": n.body,
            "at": crate::clock::rfc3339(alert.at),
            "host": alert.host,
            "install_id": alert.install_id,
        }),
        WebhookFormat::Slack => json!({
            "text": format!("*{}*\n{}\n_{} · install {}_", alert.title(), n.body, alert.host, alert.install_id),
        }),
        WebhookFormat::Teams => json!({
            "@type": "MessageCard",
            "@context": "https://schema.org/extensions",
            "summary": alert.title(),
            "themeColor": theme_color(n.state()),
            "title": alert.title(),
            "text": n.body,
            "sections": [{ "facts": [
                { "name": "Machine", "value": alert.host },
                { "name": "Install", "value": alert.install_id },
                { "name": "Alert", "value": n.key },
            ]}],
        }),
    }
}

/// A Teams card's colour for a state: red, amber, green.
fn theme_color(state: &str) -> &'static str {
    match state {
        "CRITICAL" => "D13438",
        "WARNING" => "FFB900",
        _ => "107C10",
    }
}

impl Channel for Webhook {
    fn name(&self) -> &'static str {
        "webhook"
    }

    fn target(&self) -> String {
        self.cfg.target()
    }

    fn send<'a>(&'a self, alert: &'a Alert) -> Sending<'a> {
        Box::pin(async move {
            let bytes = serde_json::to_vec(&body(self.cfg.format, alert)).expect("JSON serializes");
            let mut req = self.client()?.post(&self.cfg.url).header(reqwest::header::CONTENT_TYPE, "application/json");
            if let Some(secret) = self.agent.channel_secret(Secret::WebhookSecret)? {
                req = req.header(SIGNATURE_HEADER, signature(secret.expose().as_bytes(), &bytes));
            }
            let resp = req.body(bytes).send().await.map_err(|e| self.err(crate::upload::chain(&e)))?;
            if !resp.status().is_success() {
                return Err(ChannelError::WebhookStatus { url: self.cfg.url.clone(), status: resp.status().as_u16() });
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::News;

    #[test]
    fn the_signature_is_the_hmac_sha256_of_the_body() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn each_format_has_its_shape() {
        let news = News {
            key: "license:expiring:cad".into(),
            summary: "S".into(),
            body: "B".into(),
            urgent: false,
            once: false,
        };
        let a = Alert { news, at: 0, install_id: "i".into(), host: "h".into() };
        let j = body(WebhookFormat::Json, &a);
        assert_eq!(
            (j["kind"].as_str(), j["audience"].as_str(), j["state"].as_str()),
            (Some("license-expiring"), Some("renewal"), Some("WARNING"))
        );
        assert!(body(WebhookFormat::Slack, &a)["text"].as_str().unwrap().starts_with("*[callhome WARNING] S*"));
        assert_eq!(body(WebhookFormat::Teams, &a)["@type"], "MessageCard");
    }
}
