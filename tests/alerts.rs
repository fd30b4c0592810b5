//! The alert channels against real counterparts: a headless agent tells a real SMTP server
//! (aiosmtpd, STARTTLS and AUTH), a real HTTP server (the webhook, its signature checked) and the
//! system journal (or, without journald, a syslog socket) — once per problem, not again after a
//! restart inside the quiet period, and once when uploads work again; a mail server that is down
//! is retried and shown in status while uploads go on; each contact gets its kind of alert.

mod common;
#[path = "common/alerts.rs"]
mod servers;

use std::time::Duration;

use common::*;
use servers::{JournalProbe, SmtpServer, WebhookServer, write_license_expiring_in};

const SMTP_USER: &str = "callhome";
const SMTP_PASSWORD: &str = "Smtp-Pw-Alerts-5517";
const WEBHOOK_SECRET: &str = "Webhook-Secret-Alerts-9034";
const CONTACTS: &str = "[contacts]\ntechnical = \"ops@example.com\"\nrenewal = \"licensing@example.com\"\n";

/// A mail's text with folded header lines unfolded.
fn mail_text(m: &serde_json::Value) -> String {
    m["data"].as_str().unwrap().replace("\r\n", "\n").replace("\n ", " ")
}

fn channel(status: &serde_json::Value, name: &str) -> serde_json::Value {
    status["alert_channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} channel in {}", status["alert_channels"]))
        .clone()
}

fn failed_attempts(s: &Setup) -> usize {
    s.history().iter().filter(|a| a["code"].as_str().is_some_and(|c| c != "CTX_UPLOADER_SUCCESS")).count()
}

#[test]
fn a_stopped_receiver_is_told_once_on_each_channel_not_again_after_a_restart_and_recovery_once() {
    let s = Setup::new();
    let r = Receiver::start(s.path(), &[]);
    let (addr, url, ca, key) = (r.addr(), r.url.clone(), r.ca.clone(), r.public_key.clone());
    r.stop();
    let smtp = SmtpServer::start(s.path(), SMTP_USER, SMTP_PASSWORD);
    let hook = WebhookServer::start(WEBHOOK_SECRET);
    let journal = JournalProbe::start(s.path());
    s.configure(
        &url,
        &ca,
        &key,
        &format!(
            "first_upload_delay = \"1s\"\nretry_base = \"1s\"\nretry_max = \"2s\"\n{CONTACTS}{}[alerts.webhook]\nurl = \"{}\"\nformat = \"json\"\n{}",
            smtp.config(SMTP_USER),
            hook.url,
            journal.config(s.path())
        ),
    );
    let env = [("CALLHOME_SMTP_PASSWORD", SMTP_PASSWORD), ("CALLHOME_WEBHOOK_SECRET", WEBHOOK_SECRET)];
    let agent = s.start_agent_with(&["--headless"], &env);
    let install = s.status()["install_id"].as_str().unwrap().to_string();
    let told = |n: usize| smtp.messages().len() >= n && hook.hits().len() >= n && journal.messages(&install).len() >= n;
    wait_until(Duration::from_secs(60), "the failed upload on every channel", || told(1));

    let mail = &smtp.messages()[0];
    assert_eq!(mail["rcpt_tos"], serde_json::json!(["ops@example.com"]), "to the technical contact");
    assert_eq!((mail["tls"].as_bool(), mail["auth_user"].as_str()), (Some(true), Some(SMTP_USER)), "STARTTLS, AUTH");
    let text = mail_text(mail);
    assert!(text.contains("Subject: [callhome WARNING] Upload failed: the receiver could not be reached"), "{text}");
    assert!(text.contains("text/plain") && text.contains("text/html"), "{text}");
    let hit = &hook.hits()[0];
    assert!(hit.signature_ok, "the webhook's signature checks out: {:?}", hit.body);
    assert_eq!((hit.body["kind"].as_str(), hit.body["audience"].as_str()), (Some("upload-failed"), Some("technical")));
    assert!(journal.messages(&install)[0].contains("Upload failed"), "{:?}", journal.messages(&install));

    // Retries fail too, then a restart inside the quiet period (12h): no second message.
    wait_until(Duration::from_secs(30), "a retry that fails", || failed_attempts(&s) >= 2);
    agent.terminate();
    let before = failed_attempts(&s);
    let agent = s.start_agent_with(&["--headless"], &env);
    wait_until(Duration::from_secs(30), "a failed upload after the restart", || failed_attempts(&s) > before);

    let _r = Receiver::start_on(s.path(), &addr, &[]);
    wait_until(Duration::from_secs(60), "uploads to work again", || s.result_file("compliance").contains("SUCCESS"));
    wait_until(Duration::from_secs(30), "the recovery on every channel", || told(2));
    let mails = smtp.messages();
    assert_eq!(mails.len(), 2, "one failure and one recovery: {mails:?}");
    assert!(mail_text(&mails[1]).contains("Subject: [callhome OK] Uploads work again"), "{}", mail_text(&mails[1]));
    let hits = hook.hits();
    assert_eq!(hits.len(), 2, "{hits:?}");
    assert!(hits[1].signature_ok && hits[1].body["kind"] == "uploads-work", "{:?}", hits[1].body);
    let lines = journal.messages(&install);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[1].contains("Uploads work again"), "{lines:?}");

    // Each delivery is recorded once the server took it: status shows both, across the restart.
    for name in ["email", "webhook", "journal"] {
        wait_until(Duration::from_secs(10), &format!("{name}'s deliveries in status"), || {
            let c = channel(&s.status(), name);
            c["delivered"].as_u64() == Some(2) && c["last_alert"] == "uploads-work" && c["last_delivery"].is_string()
        });
    }
    agent.terminate();
}

#[test]
fn a_mail_server_that_is_down_is_retried_and_shown_in_status_while_uploads_go_on() {
    let s = Setup::new();
    let r = Receiver::start(s.path(), &[]);
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    write_license_expiring_in(s.path(), 20);
    s.configure_for(
        &r,
        &format!(
            "first_upload_delay = \"1s\"\n[licenses]\nfiles = [\"soon.lic\"]\n{CONTACTS}[alerts.email]\nhost = \"127.0.0.1\"\nport = {dead}\nfrom = \"callhome@example.com\"\n"
        ),
    );
    let agent = s.start_agent();
    wait_until(Duration::from_secs(60), "the mail to be retried and the failure in status", || {
        let c = channel(&s.status(), "email");
        c["failed_attempts"].as_u64() >= Some(2)
            && c["last_error"].as_str().is_some_and(|e| e.contains(&format!("127.0.0.1:{dead}")))
    });
    let c = channel(&s.status(), "email");
    assert_eq!(
        (c["delivered"].as_u64(), c["target"].as_str()),
        (Some(0), Some(format!("127.0.0.1:{dead} (starttls)").as_str()))
    );
    // Uploads did not wait for the mail.
    wait_until(Duration::from_secs(30), "an upload", || s.result_file("compliance").contains("SUCCESS"));
    agent.terminate();
    let log = std::fs::read_to_string(s.data.join("logs/agent.log")).unwrap();
    assert!(log.contains("alert delivery failed (attempt 1, again in"), "{log}");
}

#[test]
fn upload_failures_mail_the_technical_contact_and_license_expiry_the_renewal_contact() {
    let s = Setup::new();
    let smtp = SmtpServer::start(s.path(), SMTP_USER, SMTP_PASSWORD);
    write_license_expiring_in(s.path(), 20);
    s.configure_offline(&format!(
        "first_upload_delay = \"1s\"\n[licenses]\nfiles = [\"soon.lic\"]\n{CONTACTS}{}",
        smtp.config(SMTP_USER)
    ));
    let agent = s.start_agent_with(&["--headless"], &[("CALLHOME_SMTP_PASSWORD", SMTP_PASSWORD)]);
    wait_until(Duration::from_secs(60), "two mails", || smtp.messages().len() >= 2);
    // Another collection sees the same license 20 days from expiry: no second mail for it.
    let out = s.cli(&["collect"]);
    assert!(out.status.success(), "{}", stderr(&out));
    agent.terminate();
    let to = |subject: &str| {
        let m = smtp.messages().into_iter().find(|m| mail_text(m).contains(subject)).unwrap_or_else(|| {
            panic!("no mail {subject:?} in {:?}", smtp.messages().iter().map(mail_text).collect::<Vec<_>>())
        });
        m["rcpt_tos"].clone()
    };
    assert_eq!(to("License trial_addon expires soon"), serde_json::json!(["licensing@example.com"]));
    let expiry_mails =
        smtp.messages().iter().filter(|m| mail_text(m).contains("License trial_addon expires soon")).count();
    assert_eq!(expiry_mails, 1, "exactly one expiry mail to the renewal contact");
    assert_eq!(to("Upload failed"), serde_json::json!(["ops@example.com"]));
}

#[test]
fn bad_channel_settings_are_reported_by_config_check() {
    let s = Setup::new();
    s.configure_offline(
        "[alerts.email]\nhost = \"mail.example.com\"\nsecurity = \"none\"\nfrom = \"callhome@example.com\"\npassword = \"x\"\n\
         [alerts.webhook]\nurl = \"http://hooks.example.com/x\"\n",
    );
    let out = s.cli(&["config", "check"]);
    assert_eq!(out.status.code(), Some(callhome::exit::CONFIG as i32), "{}", stderr(&out));
    let err = stderr(&out);
    for needle in [
        "alerts.email.password: secrets never go into the configuration file",
        "alerts.email.security: \"none\" sends mail (and the password) in clear text",
        "alerts.webhook.url: must be an https:// URL",
    ] {
        assert!(err.contains(needle), "{needle:?} in {err}");
    }
}

#[test]
fn set_password_without_a_keyring_says_where_else_the_secret_can_come_from() {
    let s = Setup::new();
    s.configure_offline("");
    let mut child = std::process::Command::new(&*AGENT)
        .args(["alerts", "set-password", "--channel", "email", "--password-stdin", "--config"])
        .arg(&s.config)
        .arg("--data-dir")
        .arg(&s.data)
        // No session bus: no Secret Service, as on a headless server.
        .env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"pw\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("CALLHOME_SMTP_PASSWORD") && err.contains("smtp-password"), "{err}");
}

#[test]
fn a_support_bundles_case_names_the_technical_contact_by_default() {
    let s = Setup::new();
    s.configure_offline(CONTACTS);
    let zip = s.path().join("support.zip");
    let out = s.cli(&["support-bundle", "--case", "7", "--out", zip.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(ZipEntries::read(&zip).json("case.json")["contact"], "ops@example.com");
}
