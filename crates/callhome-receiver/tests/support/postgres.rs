//! A throwaway PostgreSQL cluster for tests (Debian's packages, installed by scripts/deps):
//! initdb and pg_ctl in a temporary folder, run as `nobody` when the test runs as root (PostgreSQL
//! refuses root), on a free loopback port. Stopped when dropped.

use std::path::PathBuf;
use std::process::Command;

/// A PostgreSQL cluster of its own (stopped when dropped).
pub struct Postgres {
    pub dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
}

impl Postgres {
    pub fn start() -> Postgres {
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

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn url(&self) -> String {
        format!("postgres://callhome@127.0.0.1:{}/postgres", self.port)
    }

    /// A PostgreSQL program, as `nobody` when the test is root (PostgreSQL refuses root).
    pub fn run(&self, program: &str, args: &[&str]) {
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

    /// `pg_ctl ACTION` (start, stop, restart) on the cluster, waiting for it.
    pub fn ctl(&self, action: &str) {
        let opts =
            format!("-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", self.port, self.dir.path().display());
        let log = self.dir.path().join("postgres.log");
        let data = self.data();
        self.run(
            "pg_ctl",
            &["-D", data.to_str().unwrap(), "-o", &opts, "-l", log.to_str().unwrap(), "-m", "fast", "-w", action],
        );
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

pub fn root() -> bool {
    // SAFETY: getuid has no preconditions.
    unsafe { libc::getuid() == 0 }
}
