//! Both license parsers against arbitrary and hostile input: no panic, bounded output, and the
//! invariants that make their results usable.

use callhome::licenses::debuglog::{self, Cursor, Parser};
use callhome::licenses::licfile;
use proptest::prelude::*;

/// Lines that look like license lines, with the pieces that make parsers trip.
fn license_like() -> impl Strategy<Value = String> {
    let line =
        "(FEATURE|INCREMENT|UPGRADE|PACKAGE|SERVER|VENDOR|DAEMON|USE_SERVER|#)?[ \t]?[a-z0-9_.=\" \t\\\\-]{0,60}(\r)?";
    proptest::collection::vec(line, 0..40).prop_map(|v| v.join("\n"))
}

/// Lines that look like debug-log lines.
fn log_like() -> impl Strategy<Value = String> {
    let line = "[ 0-9]{0,2}:[0-9]{1,2}:[0-9]{1,2} \\((lmgrd|acme)\\) (OUT|IN|DENIED|QUEUED|UNSUPPORTED|TIMESTAMP|started on)?:? (\"[a-z]{1,4}\" [a-z]{0,3}@[a-z]{0,3})?( \\([0-9]{1,3} licenses\\))?( [0-9]{1,2}/[0-9]{1,2}/[0-9]{1,4})?";
    proptest::collection::vec(line, 0..60).prop_map(|v| v.join("\n"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn the_license_parser_takes_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let f = licfile::parse(&bytes);
        prop_assert!(f.features.len() + f.problems.len() <= bytes.split(|b| *b == b'\n').count());
    }

    #[test]
    fn the_license_parser_takes_license_like_text(text in license_like()) {
        let f = licfile::parse(text.as_bytes());
        let lines = text.split('\n').count();
        for l in &f.features {
            prop_assert!(l.line >= 1 && l.line <= lines);
            prop_assert!(!l.feature.is_empty());
        }
        for p in &f.problems {
            prop_assert!(p.line >= 1 && p.line <= lines, "problem line {} of {}", p.line, lines);
        }
    }

    #[test]
    fn the_log_parser_takes_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let mut p = Parser::default();
        p.feed(&bytes);
        prop_assert!(p.stats.lines as usize <= bytes.len() + 1);
    }

    #[test]
    fn the_log_parser_keeps_its_invariants(text in log_like()) {
        let mut p = Parser::new(Cursor::default());
        p.feed(text.as_bytes());
        for hours in p.hours.values() {
            for (hour, h) in hours {
                prop_assert_eq!(hour.rem_euclid(3600), 0, "hours start on the hour");
                prop_assert!(h.users.len() as u32 <= h.checkouts, "every user counted checked something out");
                prop_assert!(h.devices.len() as u32 <= h.checkouts);
            }
        }
    }
}

#[test]
fn huge_lines_are_refused_not_buffered() {
    let mut text = b"FEATURE a v 1.0 permanent 1 NOTICE=\"".to_vec();
    text.extend(std::iter::repeat_n(b'x', licfile::MAX_LINE_BYTES + 10));
    text.extend(b"\"\nFEATURE b v 1.0 permanent 2\n");
    let f = licfile::parse(&text);
    assert_eq!(f.features.len(), 1);
    assert!(f.problems[0].message.contains("longer than"), "{:?}", f.problems);

    // A 40 MB line in a debug log: skipped, and the lines after it still count.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("d.log");
    let mut bytes = b" 9:00:00 (a) TIMESTAMP 1/2/2026\n 9:00:01 (a) OUT: \"".to_vec();
    bytes.extend(std::iter::repeat_n(b'y', 40 << 20));
    bytes.extend(b"\" u@h\n 9:00:02 (a) OUT: \"f\" u@h\n");
    std::fs::write(&log, &bytes).unwrap();
    let p = debuglog::read_new(&log, Cursor::default()).unwrap();
    assert_eq!(p.stats.skipped, 1);
    assert_eq!(p.hours["f"].values().next().unwrap().checkouts, 1);
}
