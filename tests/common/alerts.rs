//! The alert channels' real counterparts: an SMTP server (Debian's aiosmtpd, with STARTTLS on a
//! throwaway CA and AUTH) that records each message, an HTTP server that receives webhooks and
//! checks their signature, and the system journal read back with `journalctl` — or, where no
//! journal runs, a syslog socket the test binds. Each is stopped on drop.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use serde_json::Value;

/// A throwaway CA and a server certificate for 127.0.0.1 and localhost, as PEM files.
pub struct TestCa {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestCa {
    pub fn make(dir: &Path) -> TestCa {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, &ca_key);
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let out =
            TestCa { ca: dir.join("smtp-ca.pem"), cert: dir.join("smtp-cert.pem"), key: dir.join("smtp-key.pem") };
        std::fs::write(&out.ca, ca_cert.pem()).unwrap();
        std::fs::write(&out.cert, cert.pem()).unwrap();
        std::fs::write(&out.key, key.serialize_pem()).unwrap();
        out
    }
}

/// aiosmtpd on 127.0.0.1, STARTTLS and AUTH required (killed on drop).
pub struct SmtpServer {
    child: Child,
    pub port: u16,
    pub ca: PathBuf,
    out: PathBuf,
}

impl SmtpServer {
    pub fn start(dir: &Path, user: &str, password: &str) -> SmtpServer {
        let tls = TestCa::make(dir);
        let out = dir.join("smtp-messages.jsonl");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/common/smtp_server.py");
        let mut child = Command::new("/usr/bin/python3")
            .arg(script)
            .args([&tls.cert, &tls.key])
            .args([user, password])
            .arg(&out)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs the SMTP server (scripts/deps installs python3-aiosmtpd)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port = line
            .trim()
            .strip_prefix("port ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the SMTP server did not start (is python3-aiosmtpd installed?): {line:?}"));
        SmtpServer { child, port, ca: tls.ca, out }
    }

    /// The `[alerts.email]` table for this server.
    pub fn config(&self, user: &str) -> String {
        format!(
            "[alerts.email]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"starttls\"\nfrom = \"callhome@example.com\"\nuser = \"{user}\"\nca_file = \"{}\"\n",
            self.port,
            self.ca.display()
        )
    }

    /// Every message received so far.
    pub fn messages(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One POST the webhook server received.
#[derive(Debug, Clone)]
pub struct Hit {
    pub body: Value,
    /// `X-Callhome-Signature` matched the HMAC-SHA256 of the body under the secret.
    pub signature_ok: bool,
}

/// An HTTP server on 127.0.0.1:0 that takes webhook POSTs and answers 200 (runs for the test).
pub struct WebhookServer {
    pub url: String,
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl WebhookServer {
    pub fn start(secret: &str) -> WebhookServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hooks/callhome", listener.local_addr().unwrap());
        let hits = Arc::new(Mutex::new(Vec::new()));
        let (seen, secret) = (hits.clone(), secret.to_string());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                if let Some(hit) = read_post(stream, &secret) {
                    seen.lock().unwrap().push(hit);
                }
            }
        });
        WebhookServer { url, hits }
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }
}

fn read_post(mut stream: std::net::TcpStream, secret: &str) -> Option<Hit> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let (mut length, mut signature) = (0usize, None);
    let mut line = String::new();
    loop {
        line.clear();
        reader.read_line(&mut line).ok()?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            match k.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = v.trim().parse().ok()?,
                "x-callhome-signature" => signature = Some(v.trim().to_string()),
                _ => {}
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").ok()?;
    let expected = callhome::alerts::webhook::signature(secret.as_bytes(), &body);
    Some(Hit {
        body: serde_json::from_slice(&body).ok()?,
        signature_ok: signature.as_deref() == Some(expected.as_str()),
    })
}

/// Where the agent's journal channel writes on this machine, read back: journald (when its
/// socket exists and `journalctl` reads it) or a syslog socket this test binds.
pub enum JournalProbe {
    Journald { since: String },
    Syslog { lines: Arc<Mutex<Vec<String>>>, socket: PathBuf },
}

impl JournalProbe {
    pub fn start(dir: &Path) -> JournalProbe {
        let journald = Path::new("/run/systemd/journal/socket").exists()
            && Command::new("journalctl").args(["-n", "0", "-q"]).status().is_ok_and(|s| s.success());
        if journald {
            let since =
                String::from_utf8(Command::new("date").arg("+%Y-%m-%d %H:%M:%S").output().unwrap().stdout).unwrap();
            return JournalProbe::Journald { since: since.trim().to_string() };
        }
        let socket = dir.join("syslog.sock");
        let sock = std::os::unix::net::UnixDatagram::bind(&socket).unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let seen = lines.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while let Ok(n) = sock.recv(&mut buf) {
                seen.lock().unwrap().push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        });
        JournalProbe::Syslog { lines, socket }
    }

    /// The `[alerts.journal]` table: the standard sockets with journald, else this test's socket
    /// (and a journal socket that does not exist, as on a machine without journald).
    pub fn config(&self, dir: &Path) -> String {
        match self {
            JournalProbe::Journald { .. } => "[alerts.journal]\nenabled = true\n".into(),
            JournalProbe::Syslog { socket, .. } => format!(
                "[alerts.journal]\nenabled = true\njournal_socket = \"{}\"\nsyslog_socket = \"{}\"\n",
                dir.join("no-journal.sock").display(),
                socket.display()
            ),
        }
    }

    /// The messages of install `install_id`, oldest first: the MESSAGE field (or the syslog line).
    pub fn messages(&self, install_id: &str) -> Vec<String> {
        match self {
            JournalProbe::Journald { since } => {
                let out = Command::new("journalctl")
                    .args(["--output=json", "--since", since, &format!("CALLHOME_INSTALL_ID={install_id}")])
                    .output()
                    .unwrap();
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                    .map(|v| {
                        assert_eq!(v["SYSLOG_IDENTIFIER"], "callhome");
                        assert_eq!(v["MESSAGE_ID"].as_str().map(str::len), Some(32), "{v}");
                        v["MESSAGE"].as_str().unwrap_or_default().to_string()
                    })
                    .collect()
            }
            // The syslog line carries no install id: this test's socket hears only its agent.
            JournalProbe::Syslog { lines, .. } => lines.lock().unwrap().clone(),
        }
    }
}

/// `soon.lic` in `dir`: one feature that expires in `days` days (a license event, so an alert).
pub fn write_license_expiring_in(dir: &Path, days: i64) {
    use callhome::licenses::date::Date;
    let today = Date::of_timestamp(callhome::clock::Clock::now(&callhome::clock::SystemClock));
    let soon = Date::from_days(today.days() + days);
    let months = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
    let expiry = format!("{}-{}-{}", soon.day, months[soon.month as usize - 1], soon.year);
    std::fs::write(dir.join("soon.lic"), format!("FEATURE trial_addon acme 1.0 {expiry} 3 SIGN=\"D00D\"\n")).unwrap();
}
