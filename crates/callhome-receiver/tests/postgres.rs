//! The index on a real PostgreSQL: a throwaway cluster made by the test (initdb and pg_ctl in a
//! temporary folder, run as an unprivileged user when the test runs as root), two receivers
//! sharing it as replicas, and a restart of the database under a running receiver.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use support::*;

/// A PostgreSQL cluster of its own (stopped when dropped).
struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

impl Postgres {
    fn start() -> Postgres {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL is installed (scripts/deps installs Debian's postgresql)")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|b| b.join("initdb").is_file())
            .max()
            .expect("an initdb under /usr/lib/postgresql/*/bin");
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let pg = Postgres { dir, bin, port };
        if root() {
            std::os::unix::fs::chown(pg.dir.path(), Some(65534), Some(65534)).unwrap();
        }
        let data = pg.data();
        pg.run("initdb", &["-D", data.to_str().unwrap(), "-A", "trust", "-U", "callhome", "--no-sync"]);
        pg.ctl("start");
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn url(&self) -> String {
        format!("postgres://callhome@127.0.0.1:{}/postgres", self.port)
    }

    /// A PostgreSQL program, as `nobody` when the test is root (PostgreSQL refuses root).
    fn run(&self, program: &str, args: &[&str]) {
        let path = self.bin.join(program);
        let out = if root() {
            Command::new("runuser").args(["-u", "nobody", "--"]).arg(&path).args(args).output()
        } else {
            Command::new(&path).args(args).output()
        }
        .unwrap();
        assert!(
            out.status.success(),
            "{program} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn ctl(&self, action: &str) {
        let opts = format!("-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", self.port, self.dir.path().display());
        let log = self.dir.path().join("postgres.log");
        let data = self.data();
        self.run("pg_ctl", &["-D", data.to_str().unwrap(), "-o", &opts, "-l", log.to_str().unwrap(), "-m", "fast", "-w", action]);
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let path = self.bin.join("pg_ctl");
        let data = self.data();
        let args = ["-D", data.to_str().unwrap(), "-m", "immediate", "-w", "stop"];
        let _ = if root() {
            Command::new("runuser").args(["-u", "nobody", "--"]).arg(path).args(args).output()
        } else {
            Command::new(path).args(args).output()
        };
    }
}

fn root() -> bool {
    // SAFETY: getuid has no preconditions.
    unsafe { libc::getuid() == 0 }
}

fn token(s: &Server, url: &str, customer: &str, extra: &[&str]) -> String {
    let out = s.cli(&[&["tokens", "create", "--customer", customer, "--index", url], extra].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn tokens_json(s: &Server, url: &str) -> serde_json::Value {
    let out = s.cli(&["tokens", "list", "--json", "--index", url]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_one_postgresql_index_enrol_as_one_receiver() {
    let pg = Postgres::start();
    let url = pg.url();
    let a = Server::start(&["--index", &url]);
    let b = Server::start(&["--index", &url]);
    assert!(!a.store.join("index.sqlite").exists(), "no SQLite index beside PostgreSQL");
    let acme = token(&a, &url, "Acme", &[]);
    let globex = token(&b, &url, "Globex", &["--multi-install"]);
    let (ca, cb) = (a.client(), b.client());
    // A token made through one replica works on the other; the binding made by one holds on both.
    assert_eq!(upload(&b, &cb, Some(&acme), Some("install-a"), bundle("install-a", b"1")).await.status(), 201);
    let d = expect_problem(upload(&a, &ca, Some(&globex), Some("install-a"), bundle("install-a", b"2")).await, 403).await;
    assert!(d.contains("another customer"), "{d}");
    let d = expect_problem(upload(&a, &ca, Some(&acme), Some("install-b"), bundle("install-b", b"3")).await, 403).await;
    assert!(d.contains("install-a"), "{d}");
    assert_eq!(upload(&a, &ca, Some(&globex), Some("install-g"), bundle("install-g", b"4")).await.status(), 201);
    let listed = tokens_json(&a, &url);
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    assert_eq!((listed[0]["customer"].as_str(), listed[0]["installs"].as_u64()), (Some("Acme"), Some(1)));
    assert_eq!((listed[1]["customer"].as_str(), listed[1]["installs"].as_u64()), (Some("Globex"), Some(1)));
    // Revoked through one, refused by both.
    let id = listed[0]["id"].as_str().unwrap().to_string();
    assert!(a.cli(&["tokens", "revoke", &id, "--index", &url]).status.success());
    for (s, c) in [(&a, &ca), (&b, &cb)] {
        let d = expect_problem(upload(s, c, Some(&acme), Some("install-a"), bundle("install-a", b"5")).await, 401).await;
        assert!(d.contains("revoked"), "{d}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_carries_on_after_postgresql_restarts() {
    let pg = Postgres::start();
    let url = pg.url();
    let mut s = Server::start(&["--index", &url]);
    let token = token(&s, &url, "Acme", &["--multi-install"]);
    let c = s.client();
    assert_eq!(upload(&s, &c, Some(&token), Some("install-a"), bundle("install-a", b"1")).await.status(), 201);
    pg.ctl("restart");
    // The first call after the restart may find the old connection gone (503, try again); the
    // receiver connects again and takes the upload.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut n = 0u8;
    loop {
        n += 1;
        let status = upload(&s, &c, Some(&token), Some("install-a"), bundle("install-a", &[b'x', n])).await.status();
        if status == 201 {
            break;
        }
        assert_eq!(status, 503, "only a passing 503 while the connection is made again");
        assert!(std::time::Instant::now() < deadline, "the receiver never reconnected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    s.assert_alive_and_unpanicked();
}
