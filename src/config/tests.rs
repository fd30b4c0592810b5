//! The configuration parser's unit tests: defaults, key-by-key overlay, every problem reported.

use std::time::Duration;

use super::*;
use crate::programs::{Program, TelemetryMode};
fn overlay(text: &str) -> (Config, Vec<Problem>) {
    let mut cfg = Config::embedded();
    let problems = cfg.overlay(text, "t.toml");
    (cfg, problems)
}

#[test]
fn embedded_default_has_the_documented_values() {
    let c = Config::embedded();
    assert_eq!(c.upload.first_upload_delay, Duration::from_secs(300));
    assert_eq!(c.upload.interval, Duration::from_secs(86_400));
    assert_eq!(c.compliance.max_days, 90);
    assert_eq!(c.compliance.warn_days, vec![30, 14, 7]);
    assert_eq!(c.programs.telemetry_mode, TelemetryMode::Automatic);
}

#[test]
fn every_problem_is_reported_with_key_and_line() {
    let (_, p) = overlay("[upload]\ninterval = \"soon\"\nendpont = \"x\"\n\n[programs]\nceip = \"yes\"\n[bogus]\n");
    let got: Vec<_> = p.iter().map(|p| (p.key.as_str(), p.line)).collect();
    assert_eq!(
        got,
        vec![("upload.interval", Some(2)), ("upload.endpont", Some(3)), ("programs.ceip", Some(6)), ("bogus", Some(7))]
    );
    assert!(p[0].message.contains("not a duration"), "{}", p[0].message);
}

#[test]
fn values_override_the_default_key_by_key() {
    let (c, p) = overlay("[upload]\nfirst_upload_delay = \"2s\"\n[compliance]\nwarn_days = [7, 30]\n");
    assert!(p.is_empty(), "{p:?}");
    assert_eq!(c.upload.first_upload_delay, Duration::from_secs(2));
    assert_eq!(c.upload.interval, Duration::from_secs(86_400));
    assert_eq!(c.compliance.warn_days, vec![30, 7]);
}

#[test]
fn secrets_and_plain_http_are_refused() {
    let (_, p) = overlay("[upload]\nendpoint = \"http://u:pw@x/\"\nproxy = \"http://u:pw@proxy:3128\"\n");
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(p[1].message.contains("password"));
}

#[test]
fn commands_parse_from_array_of_tables() {
    let (c, p) = overlay(
        "[[collect.commands]]\nname = \"status\"\nargv = [\"echo\", \"{}\"]\nprogram = \"call_home\"\ntimeout = \"5s\"\n",
    );
    assert!(p.is_empty(), "{p:?}");
    assert_eq!(c.collect.commands[0].program, Program::CallHome);
    assert_eq!(c.collect.commands[0].timeout, Duration::from_secs(5));
}

#[test]
fn policy_rules_and_program_locks_parse_and_complain() {
    let (c, p) = overlay(
        "[programs.ceip]\nlocked = true\n[[policy.rules]]\nvendor_string = \"LT=CSP\"\nrequire = \"call_home\"\n",
    );
    assert!(p.is_empty(), "{p:?}");
    assert_eq!(c.programs.locked, vec![Program::Ceip]);
    assert_eq!(c.policy[0].vendor_string, ("LT".to_string(), "CSP".to_string()));
    assert!(c.policy[0].reason.contains("LT=CSP"));
    let (_, p) = overlay("[[policy.rules]]\nvendor_string = \"LT\"\nrequire = \"telemetry\"\n");
    let keys: Vec<_> = p.iter().map(|p| p.key.as_str()).collect();
    assert!(keys.contains(&"policy.rules[0].vendor_string") && keys.contains(&"policy.rules[0].require"), "{p:?}");
}

#[test]
fn syntax_errors_carry_their_line() {
    let (_, p) = overlay("[upload]\ninterval = \n");
    assert_eq!(p[0].key, "(syntax)");
    assert_eq!(p[0].line, Some(2));
}
