//! Changing the policy (SPEC §3) as an administrator does it: every value is
//! checked by the rules of [`Policy::from_pairs`], and a valid change writes
//! only the settings that differ, each with its audit entry, in one
//! transaction.
//!
//! A save names the version of the settings its form was rendered with; if
//! they changed since, nothing is written ([`Saved::Stale`]), so one
//! administrator's change is never undone by another's older form. A new time
//! zone is written only once confirmed, because every date, window and period
//! is then counted in it.

use std::collections::HashMap;

use diesel::QueryResult;
use serde_json::json;

use crate::audit::{self, Entry};
use crate::db::Tx;
use crate::policy::{Policy, PolicyError, format_window_template};
use crate::settings;

/// The settings an administrator edits, in the form's order.
pub const KEYS: [&str; 15] = [
    "quota_per_period",
    "period",
    "timezone",
    "rotation",
    "booking_horizon_days",
    "cancel_cutoff_minutes",
    "pickup_grace_minutes",
    "window_template",
    "reminder_lead_minutes",
    "walk_in_share_percent",
    "booking_close_minutes",
    "max_dependants",
    "proxy_born_from",
    "proxy_born_until",
    "waitlist_hold_minutes",
];

/// A complete set of valid values, in their stored form.
#[derive(Debug, Clone)]
pub struct ValidPolicy {
    pairs: Vec<(&'static str, String)>,
}

impl ValidPolicy {
    /// Checks each of `values` (one per key of [`KEYS`]; a missing one is
    /// invalid) on its own, so that every invalid field is reported, not only
    /// the first.
    pub fn parse(values: &HashMap<&'static str, String>) -> Result<ValidPolicy, Vec<PolicyError>> {
        let mut errors = Vec::new();
        for key in KEYS {
            let value = values.get(key).map_or("", String::as_str);
            let one = HashMap::from([(key.to_owned(), value.to_owned())]);
            if let Err(e) = Policy::from_pairs(&one) {
                errors.push(e);
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let all: HashMap<String, String> = values
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        let policy = Policy::from_pairs(&all).map_err(|e| vec![e])?;
        Ok(ValidPolicy {
            pairs: stored_form(&policy),
        })
    }

    /// Every setting in its stored form, in the form's order.
    pub fn pairs(&self) -> &[(&'static str, String)] {
        &self.pairs
    }

    fn get(&self, key: &str) -> &str {
        self.pairs
            .iter()
            .find(|(k, _)| *k == key)
            .map_or("", |(_, v)| v.as_str())
    }
}

/// Each setting as the table holds it: `2`, `Asia/Seoul`, `09:00-12:00,…`.
fn stored_form(p: &Policy) -> Vec<(&'static str, String)> {
    vec![
        ("quota_per_period", p.quota_per_period.to_string()),
        ("period", p.period.as_str().to_owned()),
        ("timezone", p.timezone.name().to_owned()),
        ("rotation", p.rotation.as_str().to_owned()),
        ("booking_horizon_days", p.booking_horizon_days.to_string()),
        ("cancel_cutoff_minutes", p.cancel_cutoff_minutes.to_string()),
        ("pickup_grace_minutes", p.pickup_grace_minutes.to_string()),
        (
            "window_template",
            format_window_template(&p.window_template),
        ),
        ("reminder_lead_minutes", p.reminder_lead_minutes.to_string()),
        ("walk_in_share_percent", p.walk_in_share_percent.to_string()),
        ("booking_close_minutes", p.booking_close_minutes.to_string()),
        ("max_dependants", p.max_dependants.to_string()),
        ("proxy_born_from", p.proxy_born_from.to_string()),
        ("proxy_born_until", p.proxy_born_until.to_string()),
        ("waitlist_hold_minutes", p.waitlist_hold_minutes.to_string()),
    ]
}

/// One setting a change would give a new value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub key: &'static str,
    pub before: String,
    pub after: String,
}

/// The settings of `policy` that differ from `current` (the values in force),
/// in the form's order: what the review before a save lists.
pub fn differences(current: &HashMap<String, String>, policy: &ValidPolicy) -> Vec<Difference> {
    policy
        .pairs
        .iter()
        .filter_map(|(key, value)| {
            let before = current.get(*key).map_or("", String::as_str);
            (before != value).then(|| Difference {
                key,
                before: before.to_owned(),
                after: value.clone(),
            })
        })
        .collect()
}

/// A change as the form asks for it.
pub struct Change {
    pub policy: ValidPolicy,
    /// The [`settings::Snapshot::version`] the form was rendered with.
    pub version: String,
    /// The administrator confirmed a change of time zone.
    pub timezone_confirmed: bool,
}

/// What saving did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Saved {
    /// These keys were written (none when nothing differed).
    Changed(Vec<&'static str>),
    /// The settings changed since the form was rendered; nothing was written.
    Stale,
    /// The time zone would change from `from` to `to`; nothing was written
    /// until that is confirmed.
    ConfirmTimezone { from: String, to: String },
}

/// Writes the settings that differ from those in force, each with an audit
/// entry naming `actor` and the values before and after.
pub fn save(tx: &mut Tx<'_>, actor: i64, change: &Change) -> QueryResult<Saved> {
    settings::lock_all(tx)?;
    let current = settings::snapshot(tx.conn())?;
    if current.version != change.version {
        return Ok(Saved::Stale);
    }
    let now = |key: &str| current.values.get(key).map_or("", String::as_str);
    let new_tz = change.policy.get("timezone");
    if now("timezone") != new_tz && !change.timezone_confirmed {
        return Ok(Saved::ConfirmTimezone {
            from: now("timezone").to_owned(),
            to: new_tz.to_owned(),
        });
    }
    let mut changed = Vec::new();
    for (key, value) in &change.policy.pairs {
        let before = now(key);
        if before == value {
            continue;
        }
        settings::write_value(tx, key, value, actor)?;
        audit::record(
            tx,
            Entry {
                actor: Some(actor),
                action: "setting.update",
                entity: "setting",
                entity_id: (*key).to_owned(),
                before: Some(json!({ *key: before })),
                after: Some(json!({ *key: value })),
            },
        )?;
        changed.push(*key);
    }
    Ok(Saved::Changed(changed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(overrides: &[(&'static str, &str)]) -> HashMap<&'static str, String> {
        let mut v: HashMap<&'static str, String> =
            stored_form(&Policy::default()).into_iter().collect();
        for (k, val) in overrides {
            v.insert(k, (*val).to_owned());
        }
        v
    }

    #[test]
    fn every_invalid_field_is_reported_with_its_key() {
        let errors = ValidPolicy::parse(&form(&[
            ("quota_per_period", "0"),
            ("timezone", "Mars/Olympus"),
            ("window_template", "12:00-09:00"),
        ]))
        .unwrap_err();
        let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["quota_per_period", "timezone", "window_template"]);
    }

    #[test]
    fn a_missing_field_is_invalid_not_defaulted() {
        let mut values = form(&[]);
        values.remove("rotation");
        let errors = ValidPolicy::parse(&values).unwrap_err();
        assert_eq!(errors[0].key, "rotation");
    }

    #[test]
    fn differences_list_only_the_changed_settings_in_the_forms_order() {
        let current: HashMap<String, String> = stored_form(&Policy::default())
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        let same = ValidPolicy::parse(&form(&[])).unwrap();
        assert!(differences(&current, &same).is_empty());
        let changed =
            ValidPolicy::parse(&form(&[("max_dependants", "3"), ("quota_per_period", "5")]))
                .unwrap();
        let d = differences(&current, &changed);
        let keys: Vec<&str> = d.iter().map(|d| d.key).collect();
        assert_eq!(keys, ["quota_per_period", "max_dependants"]);
        assert_eq!((d[0].before.as_str(), d[0].after.as_str()), ("2", "5"));
    }

    #[test]
    fn valid_values_are_kept_in_their_stored_form() {
        let p = ValidPolicy::parse(&form(&[
            ("quota_per_period", " 03 "),
            ("window_template", "09:00–12:00, 13:00-15:00"),
        ]))
        .unwrap();
        assert_eq!(p.get("quota_per_period"), "3");
        assert_eq!(p.get("window_template"), "09:00-12:00,13:00-15:00");
    }
}
