//! The agent's own log file, `logs/agent.log` in the data directory, kept under a size cap
//! (the previous file is kept as `agent.log.1`), so a support bundle can carry recent logs.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Size at which the log is rotated.
pub const MAX_BYTES: u64 = 1 << 20;

struct Inner {
    path: PathBuf,
    file: File,
    size: u64,
}

/// A size-capped log file, shareable between threads.
#[derive(Clone)]
pub struct LogFile(Arc<Mutex<Inner>>);

impl LogFile {
    pub fn open(dir: &Path) -> io::Result<LogFile> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("agent.log");
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let size = file.metadata()?.len();
        Ok(LogFile(Arc::new(Mutex::new(Inner { path, file, size }))))
    }
}

impl Write for LogFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if g.size + buf.len() as u64 > MAX_BYTES {
            let old = g.path.with_extension("log.1");
            std::fs::rename(&g.path, &old)?;
            g.file = OpenOptions::new().create(true).append(true).open(&g.path)?;
            g.size = 0;
        }
        g.file.write_all(buf)?;
        g.size += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).file.flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogFile {
    type Writer = LogFile;
    fn make_writer(&'a self) -> LogFile {
        self.clone()
    }
}

/// The last `max` bytes of the log (the rotated file first when needed).
pub fn tail(dir: &Path, max: usize) -> Vec<u8> {
    let mut out = std::fs::read(dir.join("agent.log.1")).unwrap_or_default();
    out.extend(std::fs::read(dir.join("agent.log")).unwrap_or_default());
    if out.len() > max {
        out.drain(..out.len() - max);
    }
    out
}
