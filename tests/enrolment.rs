//! An agent enrolled with the vendor's token against a receiver that asks for one: the real
//! `callhome` sends `Authorization: Bearer` with its `X-Callhome-Install-Id`, the receiver binds
//! the install to the token's customer; no token, or a second install on a single-install
//! token, is refused and the bundle stays in the spool.

mod common;

use common::*;

fn collect_and_upload(s: &Setup, token: Option<&str>) -> std::process::Output {
    assert!(s.cli(&["collect", "--program", "telemetry"]).status.success());
    let env: Vec<(&str, &str)> = token.map(|t| ("CALLHOME_ENDPOINT_TOKEN", t)).into_iter().collect();
    s.cli_env(&["upload", "--program", "telemetry"], &env)
}

#[test]
fn an_enrolled_agent_uploads_and_an_unenrolled_one_is_refused() {
    let s = Setup::new();
    let r = Receiver::start_enrolling(s.path());
    s.configure_for(&r, "first_upload_delay = \"1h\"");
    let token = r.token("Acme");

    let out = collect_and_upload(&s, None);
    assert_eq!(out.status.code(), Some(4), "no token: the upload fails: {}", stdout(&out));
    assert!(s.result_file("compliance").contains("CTX_UPLOADER_ERROR_AUTH"), "{}", s.result_file("compliance"));
    assert_eq!(s.spool("compliance").len(), 1, "the refused bundle stays");
    assert!(r.bundles().is_empty());

    let out = s.cli_env(&["upload", "--program", "telemetry"], &[("CALLHOME_ENDPOINT_TOKEN", &token)]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(s.result_file("compliance").contains("CTX_UPLOADER_SUCCESS"));
    assert!(s.spool("compliance").is_empty());
    assert_eq!(r.bundles().len(), 1);
    let verify = s.cli(&["ledger", "verify"]);
    assert!(verify.status.success(), "{}", stderr(&verify));

    // Another install with the same single-install token is refused (403) and keeps its bundle.
    let other = Setup::new();
    other.configure_for(&r, "first_upload_delay = \"1h\"");
    let out = collect_and_upload(&other, Some(&token));
    assert_eq!(out.status.code(), Some(4), "{}", stdout(&out));
    assert!(other.result_file("compliance").contains("CTX_UPLOADER_ERROR_AUTH"), "{}", other.result_file("compliance"));
    assert_eq!(other.spool("compliance").len(), 1);
    assert_eq!(r.bundles().len(), 1);
}
