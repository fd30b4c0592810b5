//! `callhome programs`, `callhome proxy` and `callhome alerts`: consent per program, telemetry's
//! mode, the proxy and its password, the alert channels' secrets (each from a terminal without
//! echo, or standard input; never an argument).

use super::*;

pub(super) fn programs(cli: &Cli, action: Option<&ProgramsAction>) -> Result<u8> {
    let src = Session::open(cli)?;
    let changes = !matches!(action, None | Some(ProgramsAction::List { .. }));
    let (program, value) = match action {
        None | Some(ProgramsAction::List { json: false }) => {
            print::programs(&src.programs()?);
            return Ok(0);
        }
        Some(ProgramsAction::List { json: true }) => {
            print::json(&src.programs()?);
            return Ok(0);
        }
        Some(ProgramsAction::Enable { program }) => (*program, "on"),
        Some(ProgramsAction::Disable { program }) => (*program, "off"),
        Some(ProgramsAction::Manual) => (Program::Telemetry, "manual"),
        Some(ProgramsAction::Automatic) => (Program::Telemetry, "automatic"),
        Some(ProgramsAction::Set { program, value }) => (*program, value.as_str()),
    };
    match (program, value) {
        (Program::Telemetry, "automatic" | "manual") => {
            let mode: TelemetryMode = value.parse().map_err(|e: String| fail(exit::USAGE, e))?;
            src.set_mode(mode)?;
            println!("telemetry: {}", mode.name());
        }
        (Program::Telemetry, _) => {
            return Err(fail(
                exit::REFUSED,
                "license telemetry is mandatory; it can be set to automatic or manual, not turned off",
            ));
        }
        (p, "on" | "off") => {
            let withdrawn = src.set_enabled(p, value == "on")?;
            println!("{}: {value}", p.name());
            if !withdrawn.is_empty() {
                println!("withdrew {} pending bundle(s); the ledger records each", withdrawn.len());
            }
        }
        (p, other) => return Err(fail(exit::USAGE, format!("{}: use on or off, not {other:?}", p.name()))),
    }
    if changes {
        src.note_direct(cli);
    }
    Ok(0)
}

/// One line from standard input: a secret passed without a terminal, never as an argument.
pub(super) fn read_secret_line(what: &str) -> Result<callhome::secrets::Value> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| fail(exit::FAILURE, format!("cannot read {what} from standard input: {e}")))?;
    let v = line.trim_end_matches(['\n', '\r']);
    if v.is_empty() {
        return Err(fail(exit::USAGE, format!("{what} read from standard input is empty")));
    }
    Ok(callhome::secrets::Value::new(v))
}

/// A secret from standard input (`--password-stdin`) or asked for on the terminal without echo.
fn ask_secret(what: &str, from_stdin: bool, prompt: &str) -> Result<callhome::secrets::Value> {
    if from_stdin {
        return read_secret_line(what);
    }
    if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        return Err(fail(
            exit::USAGE,
            format!("no terminal to ask for {what} on: pass it on standard input with --password-stdin"),
        ));
    }
    let p = rpassword::prompt_password(prompt).map_err(|e| fail(exit::FAILURE, format!("cannot read {what}: {e}")))?;
    if p.is_empty() {
        return Err(fail(exit::USAGE, format!("{what} is empty")));
    }
    Ok(callhome::secrets::Value::new(p))
}

pub(super) fn alerts(cli: &Cli, action: &AlertsAction) -> Result<u8> {
    match action {
        AlertsAction::List { json } => {
            let list = Session::open(cli)?.alerts()?;
            if *json {
                print::json(&list);
            } else {
                print::alerts(&list);
            }
            Ok(0)
        }
        AlertsAction::Ack { id, until, reason, json } => {
            let a = Session::open(cli)?.ack_alert(id, until.as_deref(), reason.as_deref())?;
            if *json {
                print::json(&a);
            } else {
                let until = a.acked_until.as_deref().map_or("it clears".to_string(), |u| u.to_string());
                println!(
                    "alert {} ({}) acknowledged until {until}, unless it gets worse: {}",
                    a.id, a.severity, a.title
                );
            }
            Ok(0)
        }
        AlertsAction::Unack { id, json } => {
            let a = Session::open(cli)?.unack_alert(id)?;
            if *json {
                print::json(&a);
            } else {
                println!("alert {} ({}) is no longer acknowledged: {}", a.id, a.severity, a.title);
            }
            Ok(0)
        }
        AlertsAction::Test { channel, json } => {
            let results = Session::open(cli)?.test_alert(channel.name())?;
            if *json {
                print::json(&results);
            }
            let mut ok = true;
            for r in &results {
                ok &= r.delivered;
                if !*json {
                    match &r.error {
                        None => {
                            println!("test alert delivered on {} ({})", r.channel, r.target.as_deref().unwrap_or(""))
                        }
                        Some(e) => println!("test alert NOT delivered on {}: {e}", r.channel),
                    }
                }
            }
            Ok(if ok { 0 } else { crate::exit::FAILURE })
        }
        AlertsAction::SetPassword { channel, password_stdin } => {
            use callhome::secrets::Secret;
            let (secret, what) = match channel {
                SecretChannel::Email => (Secret::SmtpPassword, "the SMTP password"),
                SecretChannel::Webhook => (Secret::WebhookSecret, "the webhook signing secret"),
            };
            let value = ask_secret(what, *password_stdin, &format!("{what}: "))?;
            // The keyring is the user's, not the agent's: storing needs no running agent, and a
            // running one reads it at its next delivery.
            let agent = open_agent(cli)?;
            agent.set_channel_secret(secret, &value)?;
            println!("{what} is in the OS keyring (service \"callhome\", user \"{}\"), nowhere else", secret.key());
            if let Ok(v) = std::env::var(secret.env())
                && !v.is_empty()
            {
                println!("note: {} in the environment takes precedence over the keyring's", secret.env());
            }
            Ok(0)
        }
    }
}

pub(super) fn proxy(cli: &Cli, action: &ProxyAction) -> Result<u8> {
    match action {
        ProxyAction::Set { url, username, password_stdin } => {
            let password = match username {
                None => None,
                Some(user) => {
                    Some(ask_secret("the proxy password", *password_stdin, &format!("Password for {user} at {url}: "))?)
                }
            };
            let src = Session::open(cli)?;
            let doc = src.set_proxy(url, username.as_deref(), password.as_ref())?;
            src.note_direct(cli);
            println!("uploads go through {url}{}", username.as_ref().map(|u| format!(" as {u}")).unwrap_or_default());
            if password.is_some() {
                println!(
                    "the password is in the OS keyring (service \"callhome\", user \"proxy-password\"), nowhere else"
                );
            }
            if let Some(from) = doc.password_source.as_deref().filter(|f| *f != "keyring") {
                println!("note: the password in the {from} takes precedence over the keyring's");
            }
            Ok(0)
        }
        ProxyAction::Show { json } => {
            let doc = Session::open(cli)?.proxy()?;
            if *json {
                print::json(&doc);
            } else {
                match &doc.url {
                    Some(u) => println!("proxy: {u} (from the {})", doc.origin),
                    None => println!("proxy: none configured (the HTTPS_PROXY/NO_PROXY environment applies)"),
                }
                if let Some(u) = &doc.username {
                    println!("user: {u}");
                    match doc.password_source.as_deref() {
                        Some(s) => println!("password: set (from the {s})"),
                        None => println!("password: not set — run `callhome proxy set --url URL --username {u}`"),
                    }
                }
                if let Some(n) = &doc.no_proxy {
                    println!("no proxy for: {n}");
                }
                println!(
                    "endpoint token: {}",
                    doc.token_source.as_deref().map(|s| format!("set (from the {s})")).unwrap_or("not set".into())
                );
            }
            Ok(0)
        }
        ProxyAction::Clear => {
            let src = Session::open(cli)?;
            let doc = src.clear_proxy()?;
            match &doc.url {
                Some(u) => println!("stored proxy forgotten; the configuration's proxy {u} applies"),
                None => println!("stored proxy forgotten; uploads go direct (or through HTTPS_PROXY)"),
            }
            Ok(0)
        }
    }
}
