//! License usage from FlexLM vendor-daemon debug logs, read incrementally.
//!
//! Understands `OUT`, `IN`, `DENIED`, `QUEUED` and `UNSUPPORTED` lines (`"feature" user@host`,
//! optionally `(N licenses)`), dates from `TIMESTAMP` lines and from server start lines, and the
//! midnight roll-over between them. A [`Cursor`] remembers the file's identity, the byte after
//! the last complete line read, the date context and the licenses still checked out, so the next
//! run reads only new bytes; a changed identity (rotation) or a shorter file (truncation) starts
//! the file over. Memory is bounded: lines longer than [`MAX_LINE`] are skipped, not buffered.
//! The per-hour aggregate is [`Hours`]; persisting it is the caller's business.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::date::Date;
use crate::tail::TailCursor;

/// Longest log line considered; longer ones are skipped.
pub const MAX_LINE: usize = 64 * 1024;

/// Where reading stopped, and the context needed to go on (persisted between runs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// File identity, offset and head hash.
    #[serde(flatten)]
    pub tail: TailCursor,
    /// Days since the epoch of the current log date, once known.
    pub day: Option<i64>,
    /// Seconds into the day of the last timed line (to detect midnight).
    pub last_secs: Option<u32>,
    /// Licenses checked out and not yet returned, per feature.
    pub in_use: BTreeMap<String, u32>,
}

/// Usage of one feature in one hour.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HourStats {
    /// Most licenses in use at once.
    pub peak: u32,
    /// OUT events.
    pub checkouts: u32,
    pub denials: u32,
    pub queued: u32,
    pub unsupported: u32,
    /// Distinct users, as ids into the read's [`Names`], sorted.
    pub users: Vec<u32>,
    /// Distinct devices, as ids into the read's [`Names`], sorted.
    pub devices: Vec<u32>,
}

/// The user and device names of one read, each stored once: an hour's sets hold ids, so a read
/// of millions of lines allocates per name, not per hour (hashed with foldhash, several times
/// faster than SipHash on short keys and still seeded per process).
#[derive(Debug, Default)]
pub struct Names {
    ids: foldhash::HashMap<Box<str>, u32>,
    list: Vec<Box<str>>,
}

impl Names {
    pub fn id(&mut self, name: &str) -> u32 {
        if let Some(id) = self.ids.get(name) {
            return *id;
        }
        let id = self.list.len() as u32;
        self.list.push(name.into());
        self.ids.insert(name.into(), id);
        id
    }

    pub fn name(&self, id: u32) -> &str {
        &self.list[id as usize]
    }
}

/// Adds `id` to a sorted set.
fn insert_sorted(set: &mut Vec<u32>, id: u32) {
    if let Err(at) = set.binary_search(&id) {
        set.insert(at, id);
    }
}

/// feature → hour (Unix seconds, UTC, on the hour) → stats.
pub type Hours = foldhash::HashMap<String, BTreeMap<i64, HourStats>>;

/// What one read did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadStats {
    pub bytes: u64,
    pub lines: u64,
    /// Usage lines seen before any date was known, or too long.
    pub skipped: u64,
    /// The file was rotated or truncated since the last read, and read from the start.
    pub restarted: bool,
}

/// The line-by-line state machine, usable on any bytes.
#[derive(Debug, Default)]
pub struct Parser {
    pub cursor: Cursor,
    pub hours: Hours,
    pub names: Names,
    pub stats: ReadStats,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Event {
    Out,
    In,
    Denied,
    Queued,
    Unsupported,
}

impl Parser {
    pub fn new(cursor: Cursor) -> Parser {
        Parser { cursor, hours: Hours::default(), names: Names::default(), stats: ReadStats::default() }
    }

    /// Feeds bytes holding whole lines (a final line without `\n` is taken as whole).
    pub fn feed(&mut self, bytes: &[u8]) {
        for line in bytes.split(|b| *b == b'\n') {
            if line.len() > MAX_LINE {
                self.stats.skipped += 1;
            } else {
                self.line(line);
            }
        }
    }

    /// One line, without its `\n`.
    pub fn line(&mut self, line: &[u8]) {
        self.stats.lines += 1;
        let line = trim_ascii(line);
        let Some((secs, rest)) = split_time(line) else { return };
        // "(daemon) message"
        let Some(rest) = rest.strip_prefix(b"(") else { return };
        let Some(close) = rest.iter().position(|b| *b == b')') else { return };
        let msg = trim_ascii(&rest[close + 1..]);
        self.advance_clock(secs);
        // The usage events come first: they are nearly every line of a busy log.
        let event = match msg.iter().take(12).position(|b| *b == b':') {
            Some(i) => match &msg[..i] {
                b"OUT" => Some((Event::Out, i)),
                b"IN" => Some((Event::In, i)),
                b"DENIED" => Some((Event::Denied, i)),
                b"QUEUED" => Some((Event::Queued, i)),
                b"UNSUPPORTED" => Some((Event::Unsupported, i)),
                _ => None,
            },
            None => None,
        };
        let Some((event, colon)) = event else {
            self.context_line(msg);
            return;
        };
        let body = trim_ascii(&msg[colon + 1..]);
        let Some(day) = self.cursor.day else {
            self.stats.skipped += 1;
            return;
        };
        let Some((feature, user, host, count)) = usage_fields(body) else { return };
        let hour = day * 86_400 + (secs / 3600 * 3600) as i64;
        self.record(event, feature, user, host, count, hour);
    }

    /// A line that is not a usage event: a date, or a (re)start.
    fn context_line(&mut self, msg: &[u8]) {
        if let Some(d) = msg.strip_prefix(b"TIMESTAMP ") {
            if let Some(date) = std::str::from_utf8(d).ok().and_then(|s| Date::parse_mdy(s.trim())) {
                self.cursor.day = Some(date.days());
            }
        } else if contains(msg, b"started on") {
            // A (re)started server: nothing is checked out any more.
            self.cursor.in_use.clear();
            if let Some(date) = last_paren_date(msg) {
                self.cursor.day = Some(date.days());
            }
        }
    }

    fn advance_clock(&mut self, secs: u32) {
        if let (Some(last), Some(day)) = (self.cursor.last_secs, self.cursor.day)
            && secs + 12 * 3600 < last
        {
            // Midnight passed since the last line.
            self.cursor.day = Some(day + 1);
        }
        self.cursor.last_secs = Some(secs);
    }

    fn record(&mut self, event: Event, feature: &str, user: &str, host: &str, count: u32, hour: i64) {
        let in_use = match self.cursor.in_use.get_mut(feature) {
            Some(n) => n,
            None => self.cursor.in_use.entry(feature.to_string()).or_insert(0),
        };
        let before = *in_use;
        match event {
            Event::Out => *in_use = in_use.saturating_add(count),
            Event::In => *in_use = in_use.saturating_sub(count),
            _ => {}
        }
        let now_in_use = *in_use;
        let hours = match self.hours.get_mut(feature) {
            Some(h) => h,
            None => self.hours.entry(feature.to_string()).or_default(),
        };
        // Licenses held over from the hour before count towards this hour's peak.
        let h = hours.entry(hour).or_insert_with(|| HourStats { peak: before, ..HourStats::default() });
        h.peak = h.peak.max(now_in_use);
        match event {
            Event::Out => {
                h.checkouts += 1;
                insert_sorted(&mut h.users, self.names.id(user));
                insert_sorted(&mut h.devices, self.names.id(host));
            }
            Event::In => {}
            Event::Denied => h.denials += 1,
            Event::Queued => h.queued += 1,
            Event::Unsupported => h.unsupported += 1,
        }
    }
}

/// Reads what is new in `path` since `cursor`.
pub fn read_new(path: &Path, cursor: Cursor) -> io::Result<Parser> {
    let mut parser = Parser::new(cursor);
    let mut tail = std::mem::take(&mut parser.cursor.tail);
    let read = crate::tail::read_new(path, &mut tail, MAX_LINE, |line| parser.line(line))?;
    parser.cursor.tail = tail;
    parser.stats.bytes = read.bytes;
    parser.stats.skipped += read.skipped;
    parser.stats.restarted = read.restarted;
    Ok(parser)
}

fn trim_ascii(b: &[u8]) -> &[u8] {
    b.trim_ascii()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(hay, needle).is_some()
}

/// `H:MM:SS rest` → (seconds into the day, rest).
fn split_time(line: &[u8]) -> Option<(u32, &[u8])> {
    let sp = line.iter().position(|b| *b == b' ')?;
    let t = &line[..sp];
    let mut parts = t.split(|b| *b == b':');
    let (h, m, s) = (num(parts.next()?)?, num(parts.next()?)?, num(parts.next()?)?);
    if parts.next().is_some() || h > 23 || m > 59 || s > 60 {
        return None;
    }
    Some((h * 3600 + m * 60 + s, trim_ascii(&line[sp..])))
}

fn num(b: &[u8]) -> Option<u32> {
    if b.is_empty() || b.len() > 2 {
        return None;
    }
    b.iter().try_fold(0u32, |acc, c| c.is_ascii_digit().then(|| acc * 10 + (c - b'0') as u32))
}

/// `"feature" user@host (N licenses) …` → (feature, user, host, N).
fn usage_fields(body: &[u8]) -> Option<(&str, &str, &str, u32)> {
    let (feature, rest) = if let Some(r) = body.strip_prefix(b"\"") {
        let q = r.iter().position(|b| *b == b'"')?;
        (&r[..q], trim_ascii(&r[q + 1..]))
    } else {
        let sp = body.iter().position(|b| *b == b' ').unwrap_or(body.len());
        (&body[..sp], trim_ascii(&body[sp..]))
    };
    let end = rest.iter().position(|b| b.is_ascii_whitespace()).unwrap_or(rest.len());
    let who = &rest[..end];
    let at = who.iter().rposition(|b| *b == b'@')?;
    let (user, host) = (&who[..at], &who[at + 1..]);
    let tail = &rest[end..];
    let count = licenses_count(tail).unwrap_or(1);
    let s = |b| std::str::from_utf8(b).ok().filter(|s: &&str| !s.is_empty());
    Some((s(feature)?, s(user)?, s(host)?, count))
}

/// `(3 licenses)` anywhere in the tail.
fn licenses_count(tail: &[u8]) -> Option<u32> {
    let i = memchr::memmem::find(tail, b" licenses)").or_else(|| memchr::memmem::find(tail, b" license)"))?;
    let open = tail[..i].iter().rposition(|b| *b == b'(')?;
    std::str::from_utf8(&tail[open + 1..i]).ok()?.trim().parse().ok()
}

/// The last `(M/D/YYYY)` in a message.
fn last_paren_date(msg: &[u8]) -> Option<Date> {
    let close = msg.iter().rposition(|b| *b == b')')?;
    let open = msg[..close].iter().rposition(|b| *b == b'(')?;
    Date::parse_mdy(std::str::from_utf8(&msg[open + 1..close]).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Parser {
        let mut p = Parser::default();
        p.feed(text.as_bytes());
        p
    }

    #[test]
    fn peaks_carry_over_hours_and_midnight_rolls_the_date() {
        let p = parse(concat!(
            "23:10:00 (lmgrd) FlexNet Licensing (v11.19.0) started on lic1 (linux) (11/20/2025)\n",
            "23:15:00 (acme) OUT: \"cad\" ann@ws1  \n",
            "23:20:00 (acme) OUT: \"cad\" bob@ws2  (2 licenses)\n",
            " 0:05:00 (acme) IN: \"cad\" ann@ws1  \n",
            " 0:06:00 (acme) DENIED: \"sim\" cy@ws3  (Licensed number of users already reached. (-4,342))\n",
        ));
        let day = Date::new(2025, 11, 20).unwrap().timestamp();
        let cad = &p.hours["cad"];
        assert_eq!(cad[&(day + 23 * 3600)].peak, 3);
        assert_eq!(cad[&(day + 23 * 3600)].checkouts, 2);
        assert_eq!(cad[&(day + 86_400)].peak, 3, "held over midnight, then one returned");
        assert_eq!(p.cursor.in_use["cad"], 2);
        assert_eq!(p.hours["sim"][&(day + 86_400)].denials, 1);
    }

    #[test]
    fn lines_before_any_date_are_skipped_and_a_restart_clears_checkouts() {
        let p = parse(concat!(
            "9:00:00 (acme) OUT: \"cad\" ann@ws1\n",
            "9:01:00 (acme) TIMESTAMP 3/1/2026\n",
            "9:02:00 (acme) OUT: \"cad\" ann@ws1\n",
            "9:03:00 (acme) Server started on lic1 for: cad\n",
            "9:04:00 (acme) OUT: \"cad\" bob@ws2\n",
        ));
        assert_eq!(p.stats.skipped, 1);
        let h = &p.hours["cad"][&(Date::new(2026, 3, 1).unwrap().timestamp() + 9 * 3600)];
        assert_eq!((h.peak, h.checkouts, h.users.len()), (1, 2, 2));
    }

    #[test]
    fn a_second_read_of_an_unchanged_file_reads_nothing_and_a_rewrite_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("d.log");
        std::fs::write(&log, "9:00:00 (a) TIMESTAMP 1/2/2026\n9:01:00 (a) OUT: \"f\" u@h\n9:02:00 (a) IN: \"f\" u@h")
            .unwrap();
        let first = read_new(&log, Cursor::default()).unwrap();
        assert_eq!(first.stats.lines, 2, "the unfinished last line waits");
        let second = read_new(&log, first.cursor.clone()).unwrap();
        assert_eq!((second.stats.bytes, second.stats.lines), (0, 0));
        // Rewritten in place, longer than before: the head no longer matches.
        std::fs::write(
            &log,
            "9:00:00 (a) TIMESTAMP 1/3/2026\n9:05:00 (a) OUT: \"g\" v@k (3 licenses)\n9:06:00 (a) OUT: \"g\" v@k\n",
        )
        .unwrap();
        let third = read_new(&log, second.cursor).unwrap();
        assert!(third.stats.restarted);
        assert_eq!(third.hours["g"].values().next().unwrap().peak, 4);
    }

    #[test]
    fn an_overlong_line_is_skipped_without_buffering_it() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("d.log");
        let mut text = String::from("9:00:00 (a) TIMESTAMP 1/2/2026\n9:00:01 (a) OUT: \"");
        text.push_str(&"x".repeat(5 << 20));
        text.push_str("\" u@h\n9:02:00 (a) OUT: \"f\" u@h\n");
        std::fs::write(&log, text).unwrap();
        let p = read_new(&log, Cursor::default()).unwrap();
        assert_eq!(p.stats.skipped, 1);
        assert_eq!(p.hours.len(), 1);
        assert_eq!(p.cursor.tail.offset, std::fs::metadata(&log).unwrap().len());
    }

    #[test]
    fn garbage_never_panics() {
        let p = parse("\u{0}\u{1}:::: (\n99:99:99 (x) OUT: \"\n1:2:3 (a) OUT: \"f\" @\n12:00:00 (a) OUT:\n");
        assert!(p.hours.is_empty());
    }
}
