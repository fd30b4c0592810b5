//! The errors collector: product log files scanned incrementally for error lines.
//!
//! Each line is matched against the configured patterns (plain substrings, first match wins);
//! counts go per pattern, and a few samples per pattern are kept with numbers, addresses and
//! e-mail addresses blanked out. Samples go to Call Home only; CEIP gets the counts.

use std::path::Path;

use crate::tail::{self, TailCursor};

/// Longest line considered.
const MAX_LINE: usize = 16 * 1024;
/// Samples kept per pattern per scan.
pub const SAMPLES_PER_PATTERN: usize = 3;

/// What one scan of one file found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Found {
    /// (pattern, count), in pattern order, only patterns that matched.
    pub counts: Vec<(String, u64)>,
    /// (pattern, redacted line).
    pub samples: Vec<(String, String)>,
}

/// Scans what is new in `path`.
pub fn scan(path: &Path, cursor: &mut TailCursor, patterns: &[String]) -> std::io::Result<Found> {
    let mut counts = vec![0u64; patterns.len()];
    let mut samples: Vec<(String, String)> = Vec::new();
    tail::read_new(path, cursor, MAX_LINE, |line| {
        let Ok(text) = std::str::from_utf8(line) else { return };
        if let Some(i) = patterns.iter().position(|p| text.contains(p.as_str())) {
            counts[i] += 1;
            if samples.iter().filter(|(p, _)| *p == patterns[i]).count() < SAMPLES_PER_PATTERN {
                samples.push((patterns[i].clone(), redact(text)));
            }
        }
    })?;
    Ok(Found { counts: patterns.iter().cloned().zip(counts).filter(|(_, n)| *n > 0).collect(), samples })
}

/// Blanks out what may identify people or machines: e-mail addresses, IPv4 addresses, and every
/// run of digits (ids, ports, times); keeps at most 200 characters.
pub fn redact(line: &str) -> String {
    let words: Vec<String> = line
        .split_whitespace()
        .map(|w| {
            if w.contains('@') && w.contains('.') {
                "[email]".to_string()
            } else if w
                .split('.')
                .filter(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit() || c == ':'))
                .count()
                == 4
            {
                "[ip]".to_string()
            } else {
                let mut out = String::new();
                let mut in_digits = false;
                for c in w.chars() {
                    if c.is_ascii_digit() {
                        if !in_digits {
                            out.push('#');
                        }
                        in_digits = true;
                    } else {
                        out.push(c);
                        in_digits = false;
                    }
                }
                out
            }
        })
        .collect();
    words.join(" ").chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_counted_per_pattern_and_samples_redacted() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("p.log");
        std::fs::write(&log, "ok\n2026-11-23 ERROR db 10.1.2.3 failed for ann@corp.example id=4711\nFATAL out of memory\nERROR again\nWARN x\n").unwrap();
        let mut c = TailCursor::default();
        let f = scan(&log, &mut c, &["ERROR".into(), "FATAL".into(), "panic".into()]).unwrap();
        assert_eq!(f.counts, vec![("ERROR".to_string(), 2), ("FATAL".to_string(), 1)]);
        assert_eq!(f.samples[0].1, "#-#-# ERROR db [ip] failed for [email] id=#");
        assert_eq!(scan(&log, &mut c, &["ERROR".into()]).unwrap(), Found::default(), "nothing new");
    }
}
