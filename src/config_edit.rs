//! `callhome config set KEY=VALUE…`: changes keys of a configuration file in place for
//! installers (the MSI's public properties, scripted installs), keeping the file's comments and
//! layout. A value takes the type of the key in the embedded default (booleans also as 1/0,
//! yes/no, on/off); the result must pass every check `callhome config check` makes, else the
//! file is left exactly as it was. The new file replaces the old one atomically.

use std::path::Path;

use toml_edit::{DocumentMut, Item, Value};

use crate::config::{Config, ConfigError, DEFAULT_TOML, Problem};
use crate::fsutil;

fn problem(file: &Path, key: &str, message: String) -> ConfigError {
    ConfigError { file: file.display().to_string(), problems: vec![Problem { key: key.into(), line: None, message }] }
}

/// Parses `KEY=VALUE`.
pub fn parse_pair(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("{s:?} is not KEY=VALUE (such as programs.ceip=false)")),
    }
}

/// The value `raw` as the type the embedded default gives `key` (strings when it has none).
fn typed(key: &str, raw: &str, default: Option<&Item>) -> Result<Value, String> {
    match default.and_then(Item::as_value) {
        Some(Value::Boolean(_)) => match raw.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(Value::from(true)),
            "0" | "false" | "no" | "off" => Ok(Value::from(false)),
            _ => Err(format!("{key} takes true or false (also 1/0, yes/no, on/off), not {raw:?}")),
        },
        Some(Value::Integer(_)) => {
            raw.trim().parse::<i64>().map(Value::from).map_err(|_| format!("{key} takes a whole number, not {raw:?}"))
        }
        Some(Value::Array(_) | Value::InlineTable(_)) => {
            raw.parse::<Value>().map_err(|e| format!("{key} takes a TOML value: {}", e.to_string().trim()))
        }
        _ => Ok(Value::from(raw)),
    }
}

fn lookup<'a>(doc: &'a DocumentMut, parts: &[&str]) -> Option<&'a Item> {
    let mut item = doc.as_item();
    for p in parts {
        item = item.get(p)?;
    }
    Some(item)
}

/// Sets each `(dotted key, value)` in the file at `path` (created when missing).
pub fn set(path: &Path, pairs: &[(String, String)]) -> Result<(), ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(problem(path, "(file)", format!("cannot read the file: {e}"))),
    };
    let mut doc: DocumentMut =
        text.parse().map_err(|e| problem(path, "(syntax)", format!("not valid TOML, so not changed: {e}")))?;
    let defaults: DocumentMut = DEFAULT_TOML.parse().expect("the embedded default is valid TOML");
    for (key, raw) in pairs {
        let parts: Vec<&str> = key.split('.').collect();
        if parts.len() < 2 || parts.iter().any(|p| p.is_empty()) {
            return Err(problem(path, key, "name a key with its section, such as programs.ceip".into()));
        }
        let value = typed(key, raw, lookup(&defaults, &parts)).map_err(|m| problem(path, key, m))?;
        let (last, tables) = parts.split_last().expect("two parts or more");
        let mut table = doc.as_table_mut();
        for t in tables {
            let entry = table.entry(t).or_insert_with(toml_edit::table);
            table =
                entry.as_table_mut().ok_or_else(|| problem(path, key, format!("{t} is not a table in this file")))?;
        }
        match table.get_mut(last).and_then(Item::as_value_mut) {
            // Keep the old value's surrounding whitespace and comment.
            Some(old) => {
                let decor = old.decor().clone();
                *old = value;
                *old.decor_mut() = decor;
            }
            None => {
                table.insert(last, Item::Value(value));
            }
        }
    }
    let new = doc.to_string();
    // Check the result exactly as `config check` would, from the file's own folder (relative
    // paths in it resolve there), before it replaces anything.
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let probe = dir.join(format!(
        ".{}.check-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("config"),
        std::process::id()
    ));
    std::fs::write(&probe, &new).map_err(|e| problem(path, "(file)", format!("cannot write next to it: {e}")))?;
    let checked = Config::load(&probe);
    let _ = std::fs::remove_file(&probe);
    if let Err(mut e) = checked {
        e.file = path.display().to_string();
        return Err(e);
    }
    fsutil::write_atomic(path, new.as_bytes())
        .map_err(|e| problem(path, "(file)", format!("cannot write the file: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_change_in_place_with_comments_kept_and_types_from_the_default() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("callhome.toml");
        std::fs::write(&p, "# site settings\n[programs]\nceip = true # chosen at install\n").unwrap();
        let pairs: Vec<(String, String)> = [
            "programs.ceip=0",
            "programs.call_home=no",
            "programs.telemetry_mode=manual",
            "upload.endpoint=https://r.example/v1/bundles",
            "compliance.max_days=60",
        ]
        .iter()
        .map(|s| parse_pair(s).unwrap())
        .collect();
        set(&p, &pairs).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.starts_with("# site settings\n[programs]\nceip = false # chosen at install\n"), "{text}");
        let cfg = Config::load(&p).unwrap();
        assert!(!cfg.programs.ceip && !cfg.programs.call_home);
        assert_eq!(cfg.programs.telemetry_mode, crate::programs::TelemetryMode::Manual);
        assert_eq!(cfg.upload.endpoint, "https://r.example/v1/bundles");
        assert_eq!(cfg.compliance.max_days, 60);
    }

    #[test]
    fn a_bad_value_or_key_leaves_the_file_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("callhome.toml");
        let before = "[programs]\nceip = true\n";
        std::fs::write(&p, before).unwrap();
        for (pair, says) in [
            ("programs.ceip=maybe", "takes true or false"),
            ("programs.telemetry_mode=sometimes", "telemetry mode"),
            ("upload.proxy=http://u:pw@proxy:3128", "upload.proxy"),
            ("programs.nonsense=1", "programs.nonsense"),
            ("ceip=1", "with its section"),
        ] {
            let e = set(&p, &[parse_pair(pair).unwrap()]).unwrap_err().to_string();
            assert!(e.contains(says), "{pair}: {e}");
            assert_eq!(std::fs::read_to_string(&p).unwrap(), before, "{pair}");
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no probe file left behind");
    }
}
