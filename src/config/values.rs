//! Reading one value of a given type (string, list, bool, whole number, duration, day list),
//! or recording why it is not one. No section knowledge: the walker in `parser` decides where
//! each value goes.

use std::time::Duration;

use toml_edit::Item;

use super::parser::{Loc, Parser};

impl Parser<'_> {
    /// A non-empty list of whole days (1 to 3650), returned largest first.
    pub(super) fn day_list(&mut self, v: &Item, loc: &Loc) -> Option<Vec<u32>> {
        let Some(arr) = v.as_array() else {
            self.push(&loc.key, loc.span.clone(), "expected a list of whole numbers of days, such as [30, 14, 7]");
            return None;
        };
        let mut days = Vec::new();
        for x in arr.iter() {
            match x.as_integer() {
                Some(n) if (1..=3650).contains(&n) => days.push(n as u32),
                _ => {
                    self.push(
                        &loc.key,
                        x.span().or(loc.span.clone()),
                        "each entry must be a whole number of days from 1 to 3650",
                    );
                    return None;
                }
            }
        }
        if days.is_empty() {
            self.push(&loc.key, loc.span.clone(), "needs at least one threshold, such as [30, 14, 7]");
            return None;
        }
        days.sort_unstable_by(|a, b| b.cmp(a));
        days.dedup();
        Some(days)
    }

    pub(super) fn string(&mut self, v: &Item, loc: &Loc) -> Option<String> {
        match v.as_str() {
            Some(s) => Some(s.to_string()),
            None => {
                self.push(&loc.key, loc.span.clone(), format!("expected a string, found {}", v.type_name()));
                None
            }
        }
    }

    pub(super) fn strings(&mut self, v: &Item, loc: &Loc) -> Option<Vec<String>> {
        let list =
            v.as_array().and_then(|a| a.iter().map(|x| x.as_str().map(str::to_string)).collect::<Option<Vec<_>>>());
        if list.is_none() {
            self.push(&loc.key, loc.span.clone(), "expected a list of strings, such as [\"a\", \"b\"]");
        }
        list
    }

    pub(super) fn bool(&mut self, v: &Item, loc: &Loc) -> Option<bool> {
        let b = v.as_bool();
        if b.is_none() {
            self.push(&loc.key, loc.span.clone(), format!("expected true or false, found {}", v.type_name()));
        }
        b
    }

    pub(super) fn uint(&mut self, v: &Item, loc: &Loc) -> Option<u64> {
        match v.as_integer() {
            Some(n) if n >= 0 => Some(n as u64),
            _ => {
                self.push(&loc.key, loc.span.clone(), "expected a whole number, 0 or more");
                None
            }
        }
    }

    pub(super) fn duration_into(&mut self, v: &Item, loc: &Loc, slot: &mut Duration, zero_ok: bool) {
        let Some(s) = v.as_str() else {
            self.push(
                &loc.key,
                loc.span.clone(),
                "expected a duration string such as \"90s\", \"5m\", \"24h\" or \"7d\"",
            );
            return;
        };
        match humantime::parse_duration(s) {
            Ok(d) if d.is_zero() && !zero_ok => self.push(&loc.key, loc.span.clone(), "must be longer than zero"),
            Ok(d) => *slot = d,
            Err(e) => self.push(
                &loc.key,
                loc.span.clone(),
                format!("{s:?} is not a duration ({e}); write it like \"90s\", \"5m\", \"24h\" or \"7d\""),
            ),
        }
    }
}
