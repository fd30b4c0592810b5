//! The receiver under load it must survive with bounded memory and without locking out a
//! legitimate install: parallel 256 MiB uploads, a crowd of idle connections, and running out
//! of file descriptors. Each against the real binary over TLS.

mod support;

use std::time::{Duration, Instant};

use support::*;

/// Just under the default body limit, manifest included.
const BIG: u64 = (256 << 20) - (64 << 10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_parallel_256_mib_uploads_stay_under_64_mb_of_memory() {
    let s = Server::start(&[]);
    let token = s.token("Acme", &["--multi-install"]);
    let files = tempfile::tempdir().unwrap();
    let mut bundles = Vec::new();
    for i in 0..8u8 {
        let path = files.path().join(format!("big-{i}.zip"));
        let install = format!("install-{i}");
        let sha = big_bundle(&path, &install, BIG, i);
        bundles.push((path, install, sha));
    }
    let c = s.client();
    let mut tasks = tokio::task::JoinSet::new();
    for (path, install, sha) in bundles.clone() {
        let (c, url, token) = (c.clone(), s.url.clone(), token.clone());
        tasks.spawn(async move {
            let file = tokio::fs::File::open(&path).await.unwrap();
            let len = file.metadata().await.unwrap().len();
            let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024));
            let resp = c
                .post(url)
                .bearer_auth(token)
                .header("x-callhome-install-id", install)
                .header("content-type", "application/zip")
                .header("content-length", len)
                .header("idempotency-key", &sha)
                .body(body)
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), sha)
        });
    }
    while let Some(done) = tasks.join_next().await {
        let (status, sha) = done.unwrap();
        assert_eq!(status, 201, "{sha}");
        assert_eq!(s.stored(&sha).len(), 1, "{sha} stored once");
    }
    let peak_kb = s.status_kb("VmHWM:");
    assert!(peak_kb <= 64 * 1024, "peak RSS {peak_kb} kB while taking 8 × 256 MiB");
    for (_, _, sha) in &bundles {
        assert_eq!(callhome_protocol::fs::sha256_file(&s.stored(sha)[0]).unwrap().0, *sha);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_goes_through_while_1500_idle_connections_are_open() {
    let s = Server::start(&["--handshake-timeout", "120s"]);
    let token = s.token("Acme", &[]);
    let base_fds = s.open_fds();
    let idle: Vec<std::net::TcpStream> =
        (0..1500).map(|_| std::net::TcpStream::connect(s.addr()).expect("an idle connection")).collect();
    wait_until(Duration::from_secs(30), "the receiver to hold the 1,500 idle connections", || {
        s.open_fds() >= base_fds + 1500
    });
    let c = s.client();
    let body = bundle("install-a", b"{\"legit\":true}");
    let started = Instant::now();
    let resp = upload(&s, &c, Some(&token), Some("install-a"), body).await;
    let took = started.elapsed();
    assert_eq!(resp.status(), 201);
    assert!(took < Duration::from_secs(1), "the upload took {took:?}");
    assert!(s.open_fds() >= base_fds + 1500, "the idle connections were still open during the upload");
    drop(idle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_file_descriptors_the_receiver_neither_spins_nor_dies() {
    // 96 descriptors: the receiver keeps 32 for connections and waits at that cap.
    let mut s = Server::start_in(tempfile::tempdir().unwrap(), &["--handshake-timeout", "120s"], Some("ulimit -n 96;"));
    let token = s.token("Acme", &[]);
    let idle: Vec<std::net::TcpStream> =
        (0..200).map(|_| std::net::TcpStream::connect(s.addr()).expect("a connection the kernel queues")).collect();
    wait_until(Duration::from_secs(10), "the receiver to fill its connection slots", || s.open_fds() >= 32);
    let lines_before = s.log_text().lines().count();
    let cpu = |s: &Server| -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", s.pid())).unwrap();
        let fields: Vec<&str> = stat.rsplit(')').next().unwrap().split_whitespace().collect();
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    };
    let ticks_before = cpu(&s);
    let (mut moved, until) = (0, Instant::now() + Duration::from_secs(2));
    while Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
        moved = cpu(&s) - ticks_before;
    }
    assert!(moved < 50, "the receiver burned {moved} CPU ticks in 2 s while at its limits");
    assert!(s.log_text().lines().count() - lines_before < 20, "log flood:\n{}", s.log_text());
    drop(idle);
    s.assert_alive_and_unpanicked();
    let c = s.client();
    let resp = upload(&s, &c, Some(&token), Some("install-a"), bundle("install-a", b"{}")).await;
    assert_eq!(resp.status(), 201);
}
