//! The deployment collector: agent and product versions, configuration and program states.

use serde_json::{Value, json};

use super::Context;
use crate::clock::rfc3339;
use crate::programs::Program;

pub fn collect(ctx: &Context<'_>) -> Value {
    let cfg = ctx.config;
    let programs: Vec<Value> = Program::ALL
        .iter()
        .map(|p| {
            json!({
                "name": p.name(),
                "enabled": ctx.consent.enabled(*p),
                "mode": if *p == Program::Telemetry { ctx.consent.telemetry_mode.name() } else if ctx.consent.enabled(*p) { "automatic" } else { "off" },
            })
        })
        .collect();
    json!({
        "install_id": ctx.install_id,
        "installed_at": rfc3339(ctx.install_created_at),
        "agent": { "name": "callhome", "version": env!("CARGO_PKG_VERSION") },
        "product": { "name": cfg.product.name, "version": cfg.product.version },
        "configuration": {
            "source": if cfg.source.is_some() { "file" } else { "embedded default" },
            "proxy_configured": cfg.upload.proxy.is_some(),
            "custom_ca": cfg.upload.ca_file.is_some(),
            "receipt_signatures_checked": cfg.upload.receipt_public_key.is_some(),
            "upload_interval_s": cfg.upload.interval.as_secs(),
            "commands": cfg.collect.commands.iter().map(|c| c.name.clone()).collect::<Vec<_>>(),
        },
        "programs": programs,
        "collected_at": rfc3339(ctx.now),
    })
}
