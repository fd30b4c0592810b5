//! The FlexLM license-file parser.
//!
//! Reads `SERVER`, `VENDOR`/`DAEMON`, `USE_SERVER`, `FEATURE`, `INCREMENT`, `UPGRADE` and
//! `PACKAGE` lines, with `\` continuations, `#` comments, quoted values, CRLF and tabs. A line
//! that cannot be understood becomes a [`Problem`] with its file and line; the rest of the file
//! still counts. Signatures (`SIGN=`, `SIGN2=`, `ck=`, old-style license keys) are never kept:
//! only a short SHA-256 of them, to tell lines apart. Input is bounded: files past
//! [`MAX_FILE_BYTES`] and logical lines past [`MAX_LINE_BYTES`] are refused as problems.

use std::collections::BTreeMap;

use super::date::Date;
use crate::fsutil::sha256_hex;

/// Largest license file read.
pub const MAX_FILE_BYTES: usize = 16 << 20;
/// Longest logical line (after joining continuations).
pub const MAX_LINE_BYTES: usize = 256 << 10;

/// When a license line stops working.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// `permanent`, `0`, or a year of `0`/`0000`.
    Never,
    On(Date),
}

/// How many licenses a line grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantity {
    /// `uncounted` or `0`: node-locked, no count enforced.
    Uncounted,
    Count(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    Feature,
    Increment,
    Upgrade,
}

impl LineKind {
    pub fn name(self) -> &'static str {
        match self {
            LineKind::Feature => "FEATURE",
            LineKind::Increment => "INCREMENT",
            LineKind::Upgrade => "UPGRADE",
        }
    }
}

/// One `FEATURE`/`INCREMENT`/`UPGRADE` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureLine {
    pub kind: LineKind,
    /// The product id.
    pub feature: String,
    pub vendor: String,
    pub version: String,
    /// For `UPGRADE`: the version upgraded from.
    pub from_version: Option<String>,
    pub expiry: Expiry,
    pub quantity: Quantity,
    pub issued: Option<Date>,
    pub start: Option<Date>,
    pub serial: Option<String>,
    pub notice: Option<String>,
    pub hostid: Option<String>,
    /// `VENDOR_STRING` pairs as written (bare words have an empty value).
    pub vendor_string: Vec<(String, String)>,
    /// `SUPERSEDE` (bare: supersedes earlier lines of the same feature; with a list: those).
    pub supersede: Option<Vec<String>>,
    pub overdraft: u32,
    /// Other attributes, signatures excluded.
    pub attributes: BTreeMap<String, String>,
    /// First 16 hex digits of the SHA-256 of the signature(s), to tell lines apart.
    pub signature_hash: Option<String>,
    pub line: usize,
}

/// A `PACKAGE` line: a suite whose components are enabled by a feature line of the same name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    pub name: String,
    pub vendor: String,
    pub version: Option<String>,
    pub components: Vec<String>,
    pub suite: bool,
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub host: String,
    pub hostid: String,
    pub port: Option<u16>,
}

/// A line that was not understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub message: String,
}

/// What one license file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LicenseFile {
    pub servers: Vec<Server>,
    pub vendors: Vec<String>,
    pub use_server: bool,
    pub features: Vec<FeatureLine>,
    pub packages: Vec<Package>,
    pub problems: Vec<Problem>,
}

/// Parses a license file's bytes (any encoding; invalid UTF-8 is replaced).
pub fn parse(bytes: &[u8]) -> LicenseFile {
    let mut out = LicenseFile::default();
    if bytes.len() > MAX_FILE_BYTES {
        out.problems
            .push(Problem { line: 1, message: format!("the file is larger than {MAX_FILE_BYTES} bytes; not read") });
        return out;
    }
    let text = String::from_utf8_lossy(bytes);
    for (line, logical) in logical_lines(&text) {
        let Some(logical) = logical else {
            out.problems.push(Problem { line, message: format!("a line longer than {MAX_LINE_BYTES} bytes; skipped") });
            continue;
        };
        let tokens = match tokenize(&logical) {
            Ok(t) if t.is_empty() => continue,
            Ok(t) => t,
            Err(m) => {
                out.problems.push(Problem { line, message: m });
                continue;
            }
        };
        if let Err(message) = out.line(line, tokens) {
            out.problems.push(Problem { line, message });
        }
    }
    out
}

/// Joins `\` continuations; yields (first line number, text) and skips comments and blanks.
/// A logical line past the size cap yields `None`.
fn logical_lines(text: &str) -> Vec<(usize, Option<String>)> {
    let mut out = Vec::new();
    let mut cur: Option<(usize, String, bool)> = None; // (start line, text, too long)
    for (i, raw) in text.split('\n').enumerate() {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        let trimmed = raw.trim_end();
        let (body, continues) = match trimmed.strip_suffix('\\') {
            Some(b) => (b, true),
            None => (trimmed, false),
        };
        let is_comment = cur.is_none() && body.trim_start().starts_with('#');
        if !is_comment {
            let entry = cur.get_or_insert_with(|| (i + 1, String::new(), false));
            if entry.1.len() + body.len() > MAX_LINE_BYTES {
                entry.2 = true;
            } else {
                entry.1.push_str(body);
                entry.1.push(' ');
            }
        }
        if !continues && let Some((start, s, too_long)) = cur.take() {
            if too_long {
                out.push((start, None));
            } else if !s.trim().is_empty() {
                out.push((start, Some(s)));
            }
        }
    }
    if let Some((start, s, too_long)) = cur {
        out.push((start, if too_long { None } else { Some(s) }));
    }
    out
}

/// A token: `value`, or `key=value`; quotes removed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Token {
    key: Option<String>,
    value: String,
}

fn tokenize(line: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut text = String::new();
        let mut key = None;
        let mut quoted = false;
        while let Some(&c) = chars.peek() {
            if quoted && c == '\\' {
                chars.next();
                match chars.peek() {
                    Some('"') => text.push('"'),
                    _ => {
                        text.push('\\');
                        continue;
                    }
                }
            } else if c == '"' {
                quoted = !quoted;
            } else if !quoted && c.is_whitespace() {
                break;
            } else if !quoted && c == '=' && key.is_none() {
                key = Some(std::mem::take(&mut text));
            } else {
                text.push(c);
            }
            chars.next();
        }
        if quoted {
            return Err("a quoted value is not closed".into());
        }
        out.push(Token { key, value: text });
    }
}

fn parse_expiry(s: &str) -> Result<Expiry, String> {
    let lower = s.to_ascii_lowercase();
    if lower == "permanent" || lower == "0" {
        return Ok(Expiry::Never);
    }
    let year = lower.rsplit('-').next().unwrap_or("");
    if year == "0" || year == "0000" || year == "00" {
        return Ok(Expiry::Never);
    }
    Date::parse_flexlm(s)
        .map(Expiry::On)
        .ok_or_else(|| format!("{s:?} is not an expiry date (such as 31-dec-2026, or permanent)"))
}

fn parse_quantity(s: &str) -> Result<Quantity, String> {
    if s.eq_ignore_ascii_case("uncounted") || s == "0" {
        return Ok(Quantity::Uncounted);
    }
    s.parse::<u32>().map(Quantity::Count).map_err(|_| format!("{s:?} is not a license count (a number, or uncounted)"))
}

/// Splits a `VENDOR_STRING` into pairs: `;`-separated when it has `;`, else by white space.
pub fn split_vendor_string(s: &str) -> Vec<(String, String)> {
    let pieces: Vec<&str> = if s.contains(';') { s.split(';').collect() } else { s.split_whitespace().collect() };
    pieces
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once(['=', ':']) {
            Some((k, v)) => (k.trim().to_string(), v.trim().to_string()),
            None => (p.to_string(), String::new()),
        })
        .collect()
}

const SIGNATURE_KEYS: [&str; 5] = ["SIGN", "SIGN2", "CK", "AUTH", "LICENSE_KEY"];

impl LicenseFile {
    fn line(&mut self, line: usize, tokens: Vec<Token>) -> Result<(), String> {
        let keyword = tokens[0].value.to_ascii_uppercase();
        let args = &tokens[1..];
        let positional = |i: usize| args.get(i).filter(|t| t.key.is_none()).map(|t| t.value.clone());
        match keyword.as_str() {
            "SERVER" => {
                let host = positional(0).ok_or("SERVER needs a host name and a host id")?;
                let hostid =
                    args.get(1).map(|t| t.value.clone()).ok_or("SERVER needs a host id after the host name")?;
                let port = positional(2).and_then(|p| p.parse().ok());
                self.servers.push(Server { host, hostid, port });
            }
            "VENDOR" | "DAEMON" => {
                self.vendors.push(positional(0).ok_or_else(|| format!("{keyword} needs a vendor name"))?);
            }
            "USE_SERVER" => self.use_server = true,
            "FEATURE" | "INCREMENT" | "UPGRADE" => {
                let kind = match keyword.as_str() {
                    "FEATURE" => LineKind::Feature,
                    "INCREMENT" => LineKind::Increment,
                    _ => LineKind::Upgrade,
                };
                self.features.push(feature_line(kind, args, line)?);
            }
            "PACKAGE" => {
                let name = positional(0).ok_or("PACKAGE needs a name and a vendor")?;
                let vendor = positional(1).ok_or("PACKAGE needs a vendor after its name")?;
                let version =
                    positional(2).filter(|v| v.len() < 32 && !v.chars().all(|c| c.is_ascii_hexdigit()) || v == "1.0");
                let mut components = Vec::new();
                let mut suite = false;
                for t in args {
                    match t.key.as_deref().map(str::to_ascii_uppercase).as_deref() {
                        Some("COMPONENTS") => components = t.value.split_whitespace().map(str::to_string).collect(),
                        Some("OPTIONS") => suite = t.value.eq_ignore_ascii_case("SUITE"),
                        _ => {}
                    }
                }
                if components.is_empty() {
                    return Err(format!("PACKAGE {name} has no COMPONENTS"));
                }
                self.packages.push(Package { name, vendor, version, components, suite, line });
            }
            other => {
                return Err(format!(
                    "unknown line type {other:?} (expected SERVER, VENDOR, FEATURE, INCREMENT, UPGRADE, PACKAGE…)"
                ));
            }
        }
        Ok(())
    }
}

fn feature_line(kind: LineKind, args: &[Token], line: usize) -> Result<FeatureLine, String> {
    let kw = kind.name();
    let npos = args.iter().take_while(|t| t.key.is_none()).count();
    let need = if kind == LineKind::Upgrade { 6 } else { 5 };
    if npos < need {
        let fields = if kind == LineKind::Upgrade {
            "feature vendor from-version to-version expiry count"
        } else {
            "feature vendor version expiry count"
        };
        return Err(format!("{kw} needs {need} fields ({fields}); found {npos}"));
    }
    let p = |i: usize| args[i].value.clone();
    let (from_version, version, rest) = if kind == LineKind::Upgrade { (Some(p(2)), p(3), 4) } else { (None, p(2), 3) };
    let mut f = FeatureLine {
        kind,
        feature: p(0),
        vendor: p(1),
        version,
        from_version,
        expiry: parse_expiry(&args[rest].value)?,
        quantity: parse_quantity(&args[rest + 1].value)?,
        issued: None,
        start: None,
        serial: None,
        notice: None,
        hostid: None,
        vendor_string: Vec::new(),
        supersede: None,
        overdraft: 0,
        attributes: BTreeMap::new(),
        signature_hash: None,
        line,
    };
    let mut signature = String::new();
    for t in &args[rest + 2..] {
        let Some(key) = &t.key else {
            match t.value.to_ascii_uppercase().as_str() {
                "SUPERSEDE" => f.supersede = Some(Vec::new()),
                // An old-style license key in the sixth position, or a bare flag.
                v if v.len() >= 12 && v.chars().all(|c| c.is_ascii_hexdigit()) => signature.push_str(&t.value),
                _ => {
                    f.attributes.insert(t.value.to_ascii_uppercase(), String::new());
                }
            }
            continue;
        };
        let upper = key.to_ascii_uppercase();
        let date = |what: &str| {
            Date::parse_flexlm(&t.value).ok_or_else(|| format!("{what}={:?} is not a date such as 1-jan-2026", t.value))
        };
        match upper.as_str() {
            "ISSUED" => f.issued = Some(date("ISSUED")?),
            "START" => f.start = Some(date("START")?),
            "SN" => f.serial = Some(t.value.clone()),
            "NOTICE" => f.notice = Some(t.value.clone()),
            "HOSTID" => f.hostid = Some(t.value.clone()),
            "VENDOR_STRING" => f.vendor_string = split_vendor_string(&t.value),
            "SUPERSEDE" => f.supersede = Some(t.value.split_whitespace().map(str::to_string).collect()),
            "OVERDRAFT" => {
                f.overdraft = t.value.parse().map_err(|_| format!("OVERDRAFT={:?} is not a number", t.value))?;
            }
            k if SIGNATURE_KEYS.contains(&k) => signature.push_str(&t.value),
            _ => {
                f.attributes.insert(upper, t.value.clone());
            }
        }
    }
    if !signature.is_empty() {
        f.signature_hash = Some(sha256_hex(signature.as_bytes())[..16].to_string());
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_feature_line_with_continuations_quotes_and_crlf() {
        let text = "# comment\r\nSERVER lic1 0800200c9a66 27000\r\nVENDOR acme\r\nINCREMENT cad_pro acme 2026.0630 31-dec-2026 25 \\\r\n\tISSUED=1-jan-2026 SN=A-1 NOTICE=\"Acme Corp \\\"east\\\"\" \\\r\n  VENDOR_STRING=\"TYPE=SUBSCRIPTION;GRACE=14\" SUPERSEDE OVERDRAFT=2 \\\r\n  SIGN=\"0A1B 2C3D\"\r\n";
        let f = parse(text.as_bytes());
        assert!(f.problems.is_empty(), "{:?}", f.problems);
        assert_eq!(f.servers[0].port, Some(27000));
        let l = &f.features[0];
        assert_eq!(
            (l.kind, l.feature.as_str(), l.vendor.as_str(), l.line),
            (LineKind::Increment, "cad_pro", "acme", 4)
        );
        assert_eq!(l.expiry, Expiry::On(Date::new(2026, 12, 31).unwrap()));
        assert_eq!(l.quantity, Quantity::Count(25));
        assert_eq!(l.issued, Date::new(2026, 1, 1));
        assert_eq!(l.notice.as_deref(), Some("Acme Corp \"east\""));
        assert_eq!(l.vendor_string, vec![("TYPE".into(), "SUBSCRIPTION".into()), ("GRACE".into(), "14".into())]);
        assert_eq!((l.supersede.clone(), l.overdraft), (Some(vec![]), 2));
        assert_eq!(l.signature_hash.as_ref().map(String::len), Some(16));
        assert!(!format!("{l:?}").contains("0A1B"), "the signature itself is not kept");
    }

    #[test]
    fn permanent_uncounted_and_year_zero() {
        let f = parse(b"FEATURE a v 1.0 permanent uncounted HOSTID=ANY SIGN=AA\nFEATURE b v 1.0 1-jan-0 0 SIGN=BB\nFEATURE c v 1.0 01-jan-0000 3 SIGN=CC\n");
        assert!(f.problems.is_empty(), "{:?}", f.problems);
        assert!(f.features.iter().all(|l| l.expiry == Expiry::Never));
        assert_eq!(f.features[1].quantity, Quantity::Uncounted);
        assert_eq!(f.features[2].quantity, Quantity::Count(3));
    }

    #[test]
    fn malformed_lines_are_problems_and_the_rest_counts() {
        let f = parse(b"FEATURE a v 1.0 31-dec-2026\nFEATURE b v 1.0 31-foo-2026 2\nBOGUS x\nFEATURE c v 1.0 permanent 4 NOTICE=\"open\nFEATURE d v 2.0 permanent 1\n");
        let lines: Vec<usize> = f.problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, vec![1, 2, 3, 4]);
        assert_eq!(f.features.iter().map(|l| l.feature.as_str()).collect::<Vec<_>>(), vec!["d"]);
    }

    #[test]
    fn upgrade_and_package_lines() {
        let f = parse(b"UPGRADE cad acme 1.0 2.0 permanent 5 SIGN=AB\nPACKAGE suite acme 1.0 COMPONENTS=\"cad sim:1.0:2\" OPTIONS=SUITE SIGN=CD\n");
        assert!(f.problems.is_empty(), "{:?}", f.problems);
        assert_eq!((f.features[0].from_version.as_deref(), f.features[0].version.as_str()), (Some("1.0"), "2.0"));
        assert_eq!(f.packages[0].components, vec!["cad", "sim:1.0:2"]);
        assert!(f.packages[0].suite);
    }
}
