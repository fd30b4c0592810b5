//! The uploader against real network parts: an authenticating HTTP proxy (tinyproxy), a receiver
//! whose certificate the agent does not trust, and a receiver run with certificate files.

mod common;
#[path = "common/alerts.rs"]
mod servers;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

#[test]
fn uploads_go_through_an_authenticating_proxy() {
    let s = Setup::new();
    let r = Receiver::start(s.path(), &[]);
    let proxy = Proxy::start(s.path(), "agent", "s3cret-pass");
    s.configure_for(&r, &format!("proxy = \"http://127.0.0.1:{}\"\nproxy_user = \"agent\"\n", proxy.port));

    let out = s.cli_env(&["upload", "--program", "telemetry"], &[("CALLHOME_PROXY_PASSWORD", "s3cret-pass")]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(r.bundles().len(), 1);
    let log = proxy.log();
    assert!(log.contains("CONNECT") && log.contains(&r.addr()), "the upload tunnelled through the proxy:\n{log}");

    let out = s.cli_env(&["upload", "--program", "telemetry"], &[("CALLHOME_PROXY_PASSWORD", "wrong")]);
    assert_eq!(out.status.code(), Some(4));
    let xml = s.result_file("compliance");
    // tinyproxy answers bad credentials on CONNECT with 401, not 407; the agent asks once more
    // to learn why the tunnel was refused, and reports the refused login as such.
    assert!(
        xml.contains("<Code>CTX_UPLOADER_ERROR_PROXY_AUTH</Code>") && xml.contains("the proxy refused the login"),
        "{xml}"
    );
    assert_eq!(s.spool("compliance").len(), 1, "the bundle is kept");
    // The password never reaches the data directory.
    let found = files_containing(&s.data, "s3cret-pass");
    assert!(found.is_empty(), "{found:?} hold the proxy password");
}

#[test]
fn an_untrusted_certificate_is_a_tls_error_and_the_bundle_stays() {
    let s = Setup::new();
    let r = Receiver::start(s.path(), &[]);
    let other = tempfile::tempdir().unwrap();
    let stranger = Receiver::start(other.path(), &[]); // its CA signs nothing the receiver uses
    s.configure(&r.url, &stranger.ca, &r.public_key, "");
    let out = s.cli(&["upload", "--program", "telemetry"]);
    assert_eq!(out.status.code(), Some(4));
    let xml = s.result_file("compliance");
    assert!(xml.contains("CTX_UPLOADER_ERROR_TLS"), "{xml}");
    assert_eq!(s.spool("compliance").len(), 1);
    assert!(r.bundles().is_empty());
}

#[test]
fn the_receiver_serves_given_certificate_files() {
    let s = Setup::new();
    // A first run makes a CA and a server certificate; a second receiver is given those files.
    let first = Receiver::start(s.path(), &[]);
    let tls = first.store.join("tls");
    first.stop();
    let store = s.path().join("second-store");
    let mut child = Command::new(&*RECEIVER)
        .args(["serve", "--listen", "127.0.0.1:0", "--store"])
        .arg(&store)
        .arg("--tls-cert")
        .arg(tls.join("server.pem"))
        .arg("--tls-key")
        .arg(tls.join("server-key.pem"))
        .arg("--signing-key")
        .arg(s.path().join("receiver-signing.pem"))
        .arg("--open-enrolment")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = read_url(&mut child);
    s.configure(&url, &tls.join("ca.pem"), &s.path().join("receiver-public.pem"), "");
    let out = s.cli(&["upload", "--program", "telemetry"]);
    let _ = child.kill();
    let _ = child.wait();
    assert!(out.status.success(), "{}", stdout(&out));
    assert_eq!(stored_bundles(&store).len(), 1);
}

#[test]
fn the_standard_proxy_environment_variables_are_honoured() {
    let s = Setup::new();
    let r = Receiver::start(s.path(), &[]);
    let proxy = Proxy::start(s.path(), "envuser", "envpass");
    s.configure_for(&r, "");
    let url = format!("http://envuser:envpass@127.0.0.1:{}", proxy.port);
    let out =
        s.cli_env(&["upload", "--program", "telemetry"], &[("HTTPS_PROXY", &url), ("NO_PROXY", ""), ("no_proxy", "")]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(proxy.log().contains("CONNECT"), "the upload went through HTTPS_PROXY:\n{}", proxy.log());
}

fn steps(out: &std::process::Output) -> Vec<(String, bool, String)> {
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(out)));
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let text = format!("{} {}", s["detail"].as_str().unwrap(), s["hint"].as_str().unwrap_or(""));
            (s["step"].as_str().unwrap().to_string(), s["ok"].as_bool().unwrap(), text)
        })
        .collect()
}

#[test]
fn test_connection_passes_every_step_through_the_proxy_and_names_what_fails() {
    let s = Setup::new();
    let r = Receiver::start(s.path(), &[]);
    let proxy = Proxy::start(s.path(), "agent", "right-pw");
    s.configure_for(&r, &format!("proxy = \"http://127.0.0.1:{}\"\nproxy_user = \"agent\"\n", proxy.port));

    let out = s.cli_env(&["test-connection", "--json"], &[("CALLHOME_PROXY_PASSWORD", "right-pw")]);
    assert!(out.status.success(), "{}", stdout(&out));
    let got = steps(&out);
    assert_eq!(
        got.iter().map(|(n, ok, _)| (n.as_str(), *ok)).collect::<Vec<_>>(),
        [("dns", true), ("tcp", true), ("proxy", true), ("tls", true), ("probe", true)]
    );

    let out = s.cli_env(&["test-connection", "--json"], &[("CALLHOME_PROXY_PASSWORD", "wrong-pw")]);
    assert_eq!(out.status.code(), Some(8));
    let got = steps(&out);
    let last = got.last().unwrap();
    assert_eq!((last.0.as_str(), last.1), ("proxy", false), "{got:?}");
    assert!(last.2.contains("the proxy refused the credentials"), "{}", last.2);

    // Without the receiver's CA: the TLS step fails and names the issuer.
    let plain = Setup::new();
    std::fs::write(&plain.config, format!("[upload]\nendpoint = \"{}\"\n", r.url)).unwrap();
    let out = plain.cli(&["test-connection"]);
    assert_eq!(out.status.code(), Some(8));
    let text = stdout(&out);
    assert!(text.contains("FAIL tls") && text.contains("issued by CN=callhome-receiver self-signed CA"), "{text}");
    assert!(text.contains("upload.ca_file"), "{text}");
}

#[test]
fn a_receipt_advertising_an_old_newer_release_makes_check_warn() {
    let s = Setup::new();
    let r = Receiver::start_with(
        s.path(),
        "127.0.0.1:0",
        &[],
        &["--latest-version", "99.0.0", "--latest-released", "2025-01-01"],
    );
    s.configure_for(&r, "");
    assert_eq!(s.status()["version"]["outdated"], false, "nothing advertised yet");
    let out = s.cli(&["upload", "--program", "telemetry"]);
    r.stop();
    assert!(out.status.success(), "{}", stdout(&out));
    let st = s.status();
    assert_eq!((st["version"]["latest"].as_str(), st["version"]["outdated"].as_bool()), (Some("99.0.0"), Some(true)));
    let out = s.cli(&["check"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("install 99.0.0 (released 2025-01-01)"), "{}", stdout(&out));
    assert!(s.cli(&["ledger", "verify"]).status.success(), "the advertised version is signed with the receipt");
}

/// One row of the fault matrix: what the upload met, and what must come of it.
struct Fault {
    name: &'static str,
    /// `--fault` spec for the receiver, if any.
    receiver_fault: Option<&'static str>,
    code: &'static str,
    quarantined: bool,
}

#[test]
fn the_fault_matrix_loses_no_bundle() {
    let rows = [
        Fault {
            name: "500",
            receiver_fault: Some("status=500"),
            code: "CTX_UPLOADER_ERROR_HTTP_STATUS",
            quarantined: false,
        },
        Fault {
            name: "503 + Retry-After",
            receiver_fault: Some("status=503,retry-after=30"),
            code: "CTX_UPLOADER_ERROR_HTTP_STATUS",
            quarantined: false,
        },
        Fault {
            name: "429",
            receiver_fault: Some("status=429,retry-after=5"),
            code: "CTX_UPLOADER_ERROR_HTTP_STATUS",
            quarantined: false,
        },
        Fault {
            name: "400",
            receiver_fault: Some("status=400"),
            code: "CTX_UPLOADER_ERROR_REJECTED",
            quarantined: true,
        },
        Fault { name: "401", receiver_fault: Some("status=401"), code: "CTX_UPLOADER_ERROR_AUTH", quarantined: false },
        Fault {
            name: "413",
            receiver_fault: Some("status=413"),
            code: "CTX_UPLOADER_ERROR_REJECTED",
            quarantined: true,
        },
        Fault {
            name: "slow answer past the timeout",
            receiver_fault: Some("delay=10s"),
            code: "CTX_UPLOADER_ERROR_TIMEOUT",
            quarantined: false,
        },
        Fault {
            name: "connection reset mid-upload",
            receiver_fault: Some("drop"),
            code: "CTX_UPLOADER_ERROR_NETWORK_OPEN",
            quarantined: false,
        },
        Fault {
            name: "certificate from an unknown CA",
            receiver_fault: None,
            code: "CTX_UPLOADER_ERROR_TLS",
            quarantined: false,
        },
        Fault {
            name: "unresolvable host",
            receiver_fault: None,
            code: "CTX_UPLOADER_ERROR_NETWORK_OPEN",
            quarantined: false,
        },
        Fault { name: "proxy down", receiver_fault: None, code: "CTX_UPLOADER_ERROR_PROXY", quarantined: false },
        Fault {
            name: "proxy refuses the login",
            receiver_fault: None,
            code: "CTX_UPLOADER_ERROR_PROXY_AUTH",
            quarantined: false,
        },
    ];
    println!("{:<32} {:<34} {:<22} {:>4}  notification", "fault", "result code", "decision", "lost");
    for f in &rows {
        let s = Setup::new();
        let r = Receiver::start(s.path(), &f.receiver_fault.into_iter().collect::<Vec<_>>());
        let mut env: Vec<(&str, &str)> = Vec::new();
        // What must outlive the upload (a proxy, another receiver's CA file).
        let mut keep: Vec<Box<dyn std::any::Any>> = Vec::new();
        match f.name {
            "certificate from an unknown CA" => {
                let other = tempfile::tempdir().unwrap();
                let stranger = Receiver::start(other.path(), &[]);
                s.configure(&r.url, &stranger.ca, &r.public_key, "");
                keep.push(Box::new(stranger));
                keep.push(Box::new(other));
            }
            "unresolvable host" => s.configure("https://no-such-host.invalid/v1/bundles", &r.ca, &r.public_key, ""),
            "proxy down" => s.configure_for(&r, "proxy = \"http://127.0.0.1:1\""),
            "proxy refuses the login" => {
                let p = Proxy::start(s.path(), "agent", "right");
                s.configure_for(&r, &format!("proxy = \"http://127.0.0.1:{}\"\nproxy_user = \"agent\"", p.port));
                env.push(("CALLHOME_PROXY_PASSWORD", "wrong"));
                keep.push(Box::new(p));
            }
            "slow answer past the timeout" => s.configure_for(&r, "read_timeout = \"1s\""),
            _ => s.configure_for(&r, ""),
        }
        let out = s.cli_env(&["upload", "--program", "telemetry"], &env);
        assert_eq!(out.status.code(), Some(4), "{}: {}", f.name, stdout(&out));
        let xml = s.result_file("compliance");
        let got = xml.split("<Code>").nth(1).and_then(|x| x.split("</Code>").next()).unwrap_or("").to_string();
        let kept = s.spool("compliance").len();
        let quarantined = list(&s.data.join("quarantine"), ".zip").len();
        let lost = 1 - (kept + quarantined).min(1);
        let decision = if quarantined == 1 { "quarantined" } else { "kept, retried later" };
        // What the running agent's notifier decides on this result (tests/desktop.rs proves the
        // delivery and the quiet period on a real notification service).
        let message = s.history()[0]["message"].as_str().unwrap_or_default().to_string();
        let news = callhome::alerts::Decider::default()
            .upload(callhome::programs::Program::Telemetry, &got, &message)
            .expect("every failure is news");
        println!("{:<32} {:<34} {:<22} {:>4}  {}", f.name, got, decision, lost, news.summary);
        assert!(news.body.contains("Nothing is lost"), "{}", news.body);
        assert_eq!(got, f.code, "{}", f.name);
        assert_eq!(
            (kept + quarantined, quarantined == 1),
            (1, f.quarantined),
            "{}: zero lost, the right decision",
            f.name
        );
    }
}

#[test]
fn after_a_run_no_secret_is_in_any_file_of_the_data_directory() {
    const PASSWORD: &str = "Seeded-Proxy-Pw-7781";
    const ENDPOINT_TOKEN: &str = "Seeded-Endpoint-Token-4242";
    const SMTP_PASSWORD: &str = "Seeded-Smtp-Pw-6120";
    const WEBHOOK_SECRET: &str = "Seeded-Webhook-Secret-3307";
    let s = Setup::new();
    let r = Receiver::start(s.path(), &[]);
    let proxy = Proxy::start(s.path(), "agent", PASSWORD);
    // The alert channels use their secrets too: a license near expiry is an alert, mailed with
    // AUTH and posted signed (through the uploads' proxy).
    let smtp = servers::SmtpServer::start(s.path(), "callhome", SMTP_PASSWORD);
    let hook = servers::WebhookServer::start(WEBHOOK_SECRET);
    servers::write_license_expiring_in(s.path(), 20);
    s.configure_for(
        &r,
        &format!(
            "proxy = \"http://127.0.0.1:{}\"\nproxy_user = \"agent\"\nfirst_upload_delay = \"1s\"\n[licenses]\nfiles = [\"soon.lic\"]\n\
             [contacts]\nrenewal = \"licensing@example.com\"\n{}[alerts.webhook]\nurl = \"{}\"\n",
            proxy.port,
            smtp.config("callhome"),
            hook.url
        ),
    );
    // The agent runs with the secrets in its environment, uploads through the proxy, and logs.
    let secrets = [
        ("CALLHOME_PROXY_PASSWORD", PASSWORD),
        ("CALLHOME_ENDPOINT_TOKEN", ENDPOINT_TOKEN),
        ("CALLHOME_SMTP_PASSWORD", SMTP_PASSWORD),
        ("CALLHOME_WEBHOOK_SECRET", WEBHOOK_SECRET),
    ];
    let mut env = secrets.to_vec();
    env.push(("CALLHOME_LOG", "debug"));
    let agent = s.start_agent_with(&["--headless"], &env);
    wait_until(Duration::from_secs(30), "an upload through the proxy", || {
        s.result_file("compliance").contains("SUCCESS")
    });
    wait_until(Duration::from_secs(30), "the alert mailed and posted", || {
        !smtp.messages().is_empty() && hook.hits().iter().any(|h| h.signature_ok)
    });
    let AgentApi { token, read_token, .. } = AgentApi::wait_for(&s);
    // An export and a support bundle too.
    std::fs::create_dir_all(s.data.join("exports")).unwrap();
    let ex = s.cli(&["export", "--out", s.data.join("exports/sweep.zip").to_str().unwrap()]);
    assert!(ex.status.success(), "{}", stderr(&ex));
    let sb =
        s.cli_env(&["support-bundle", "--case", "1", "--out", s.data.join("support.zip").to_str().unwrap()], &secrets);
    assert!(sb.status.success(), "{}", stderr(&sb));
    agent.terminate();
    let mut files = 0;
    for f in files_under(&s.data) {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let texts = if name.ends_with(".zip") {
            ZipEntries::read(&f).texts().into_iter().map(|(_, t)| t).collect()
        } else {
            vec![String::from_utf8_lossy(&std::fs::read(&f).unwrap()).into_owned()]
        };
        for text in &texts {
            assert!(!text.contains(PASSWORD), "the proxy password is in {}", f.display());
            assert!(!text.contains(ENDPOINT_TOKEN), "the endpoint token is in {}", f.display());
            assert!(!text.contains(SMTP_PASSWORD), "the SMTP password is in {}", f.display());
            assert!(!text.contains(WEBHOOK_SECRET), "the webhook secret is in {}", f.display());
            if name != "api-token" {
                assert!(!text.contains(&token), "the API token is in {}", f.display());
            }
            if name != "api-token-read" {
                assert!(!text.contains(&read_token), "the read token is in {}", f.display());
            }
        }
        files += 1;
    }
    assert!(files > 10, "the sweep read the data directory: {files} files");
    // Token files are the owner's alone (the data directory is not open to a group here).
    for f in ["api-token", "api-token-read"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(s.data.join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{f}");
    }
    assert!(s.data.join("logs/agent.log").exists(), "the log was swept too");
}
