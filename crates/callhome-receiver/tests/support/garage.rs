//! A real Garage (the S3-compatible object store, `cargo install garage`, installed by
//! scripts/deps) for tests: one node started from a generated configuration in a temporary
//! folder — an RPC secret, free loopback ports, LMDB metadata (Garage's default engine) —, its
//! layout applied, a bucket and a key made and allowed through its own CLI. Killed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use super::wait_until;

/// A running single-node Garage with one bucket and one key allowed on it.
pub struct Garage {
    child: Child,
    pub dir: tempfile::TempDir,
    config: PathBuf,
    /// The S3 endpoint, `http://127.0.0.1:PORT` (plain HTTP on loopback).
    pub endpoint: String,
    pub bucket: String,
    pub key_id: String,
    pub secret: String,
}

/// The `garage` binary: `$GARAGE_BIN`, on `PATH`, or in `~/.cargo/bin`.
pub fn garage_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("GARAGE_BIN") {
        return PathBuf::from(p);
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("garage")).find(|p| p.is_file()))
        .unwrap_or_default();
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")));
    on_path.or_else(|| cargo_home.map(|c| c.join("bin/garage")).filter(|p| p.is_file())).unwrap_or_else(|| {
        panic!("no `garage` binary: run scripts/deps (it runs `cargo install garage`), or set GARAGE_BIN")
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Garage {
    /// Starts a node and makes the bucket `callhome-test` and a key for it.
    pub fn start() -> Garage {
        let dir = tempfile::tempdir().unwrap();
        let (rpc, s3, admin) = (free_port(), free_port(), free_port());
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).unwrap();
        let config = dir.path().join("garage.toml");
        let text = format!(
            "metadata_dir = \"{meta}\"\n\
             data_dir = \"{data}\"\n\
             db_engine = \"lmdb\"\n\
             replication_factor = 1\n\
             rpc_bind_addr = \"127.0.0.1:{rpc}\"\n\
             rpc_public_addr = \"127.0.0.1:{rpc}\"\n\
             rpc_secret = \"{secret}\"\n\
             [s3_api]\n\
             s3_region = \"garage\"\n\
             api_bind_addr = \"127.0.0.1:{s3}\"\n\
             [admin]\n\
             api_bind_addr = \"127.0.0.1:{admin}\"\n",
            meta = dir.path().join("meta").display(),
            data = dir.path().join("data").display(),
            secret = hex::encode(secret),
        );
        std::fs::write(&config, text).unwrap();
        let log = std::fs::File::create(dir.path().join("garage.log")).unwrap();
        let child = Command::new(garage_bin())
            .arg("-c")
            .arg(&config)
            .arg("server")
            .env("RUST_LOG", "garage=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("garage starts");
        let mut g = Garage {
            child,
            dir,
            config,
            endpoint: format!("http://127.0.0.1:{s3}"),
            bucket: "callhome-test".into(),
            key_id: String::new(),
            secret: String::new(),
        };
        let mut node = String::new();
        wait_until(Duration::from_secs(30), "garage to answer `node id`", || {
            let out = g.try_cli(&["node", "id", "-q"]);
            node = String::from_utf8_lossy(&out.stdout).trim().chars().take(16).collect();
            out.status.success() && node.len() == 16
        });
        // `node id` reads the key from the metadata folder; the layout needs the node's RPC,
        // which may still be starting.
        wait_until(Duration::from_secs(30), "garage's RPC to take the layout assignment", || {
            g.try_cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &node]).status.success()
        });
        g.cli(&["layout", "apply", "--version", "1"]);
        // The layout takes a moment to be in force: the bucket is made once it is.
        wait_until(Duration::from_secs(30), "garage to take the layout (bucket create)", || {
            g.try_cli(&["bucket", "create", "callhome-test"]).status.success()
        });
        let out = g.cli(&["key", "create", "callhome-test-key"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_string()))
                .unwrap_or_else(|| panic!("no {name} in `garage key create`:\n{text}"))
        };
        g.key_id = field("Key ID:");
        g.secret = field("Secret key:");
        g.cli(&["bucket", "allow", "--read", "--write", "--owner", "callhome-test", "--key", "callhome-test-key"]);
        g
    }

    fn try_cli(&self, args: &[&str]) -> Output {
        Command::new(garage_bin()).arg("-c").arg(&self.config).args(args).output().unwrap()
    }

    /// Runs a `garage` command that must succeed; returns its output.
    pub fn cli(&self, args: &[&str]) -> Output {
        let out = self.try_cli(args);
        assert!(
            out.status.success(),
            "garage {args:?}: {}{}\nlog:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.dir.path().join("garage.log")).unwrap_or_default()
        );
        out
    }

    /// How many objects Garage counts in the bucket (`garage bucket info`).
    pub fn object_count(&self) -> u64 {
        let out = self.cli(&["bucket", "info", &self.bucket]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines()
            .find_map(|l| l.trim().strip_prefix("Objects:").and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no object count in `garage bucket info`:\n{text}"))
    }

    /// The `AWS_*` environment a client of this node needs.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", self.key_id.as_str()),
            ("AWS_SECRET_ACCESS_KEY", self.secret.as_str()),
            ("AWS_REGION", "garage"),
            ("AWS_ALLOW_HTTP", "true"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .to_vec()
    }

    /// A client of the bucket: object_store's S3 client, as any S3 tool would read it.
    pub fn client(&self) -> object_store::aws::AmazonS3 {
        object_store::aws::AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_access_key_id(&self.key_id)
            .with_secret_access_key(&self.secret)
            .with_region("garage")
            .with_allow_http(true)
            .with_bucket_name(&self.bucket)
            .build()
            .unwrap()
    }

    /// Every object key in the bucket.
    pub async fn keys(&self) -> Vec<String> {
        use futures_util::TryStreamExt;
        use object_store::ObjectStore;
        let mut keys: Vec<String> =
            self.client().list(None).map_ok(|m| m.location.to_string()).try_collect().await.unwrap();
        keys.sort();
        keys
    }

    /// The bytes of the object `key`.
    pub async fn get(&self, key: &str) -> Vec<u8> {
        use object_store::ObjectStoreExt;
        self.client().get(&object_store::path::Path::from(key)).await.unwrap().bytes().await.unwrap().to_vec()
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
