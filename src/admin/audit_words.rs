//! Audit entries in words, in the reader's language: one sentence per entry
//! ("관리자 김민지 님이 파일로 …의 공급량을 정했습니다"), and the values that
//! changed with their names as the pages name them. An action this module does
//! not know (one added later, or an old one) still reads as a sentence naming
//! its raw action, so that no entry disappears from the page.

use serde_json::{Map, Value};

use crate::i18n::Tr;

/// Who made the change, as the sentence names them.
pub struct Who<'a> {
    /// The account's role (`admin`, `pharmacist`, `citizen`), when known.
    pub role: Option<&'a str>,
    pub name: Option<&'a str>,
    pub id: Option<i64>,
}

impl Who<'_> {
    /// "관리자 김민지", "Administrator Kim", or the command line's name.
    fn text(&self, t: &Tr) -> String {
        let role = self.role.map(|r| t.get(role_key(r)).to_owned());
        match (role, self.name, self.id) {
            (Some(role), Some(name), _) => format!("{role} {name}"),
            (None, Some(name), _) => name.to_owned(),
            (_, None, Some(id)) => format!("#{id}"),
            (_, None, None) => t.get("admin.audit.system").to_owned(),
        }
    }
}

fn role_key(role: &str) -> &'static str {
    match role {
        "admin" => "role.admin",
        "pharmacist" => "role.pharmacist",
        _ => "role.citizen",
    }
}

/// An entry as stored, with the JSON of its values parsed.
pub struct Said<'a> {
    pub action: &'a str,
    pub entity: &'a str,
    pub entity_id: &'a str,
    pub before: &'a Map<String, Value>,
    pub after: &'a Map<String, Value>,
    /// The name of the account an entry about an account is about, when it
    /// still exists.
    pub subject: Option<&'a str>,
}

/// A JSON value as people read it: text as is, `true`/`false` as yes/no,
/// nothing as a dash.
pub fn plain(t: &Tr, v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "—".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(true)) => t.get("admin.audit.yes").to_owned(),
        Some(Value::Bool(false)) => t.get("admin.audit.no").to_owned(),
        Some(other) => other.to_string(),
    }
}

/// A value as people read it, by its key: a walk-in look-up's outcome
/// (`sold`, or the refusal's kind) in words; any other value as [`plain`].
pub fn worded(t: &Tr, key: &str, v: Option<&Value>) -> String {
    let text = plain(t, v);
    if key == "outcome" {
        let wanted = format!("admin.audit.outcome.{text}");
        let word = t.get(&wanted);
        if word != wanted {
            return word.to_owned();
        }
    }
    text
}

/// The name a page gives a value's key: a policy setting by its label on the
/// settings page, a store's field by its label on the store form; a key with
/// no name of its own stays as it is.
pub fn field_name(t: &Tr, key: &str) -> String {
    for wanted in [
        format!("admin.settings.label.{key}"),
        format!("admin.audit.field.{key}"),
    ] {
        let text = t.get(&wanted);
        if text != wanted {
            return text.to_owned();
        }
    }
    key.to_owned()
}

/// One value of an entry: its name, and what it was and became (a dash for
/// a side the entry does not have).
pub struct ValueChange {
    pub name: String,
    pub before: String,
    pub after: String,
}

/// The values an entry speaks about: for a change, only those that differ;
/// for a creation or a record of what happened, every value after.
pub fn values(t: &Tr, said: &Said<'_>) -> Vec<ValueChange> {
    let mut keys: Vec<&String> = said.after.keys().collect();
    for k in said.before.keys() {
        if !said.after.contains_key(k) {
            keys.push(k);
        }
    }
    keys.into_iter()
        .filter(|k| said.before.is_empty() || said.before.get(*k) != said.after.get(*k))
        .map(|k| ValueChange {
            name: field_name(t, k),
            before: match said.before.is_empty() {
                true => String::new(),
                false => worded(t, k, said.before.get(k)),
            },
            after: worded(t, k, said.after.get(k)),
        })
        .collect()
}

/// The entry as one sentence in the reader's language.
pub fn sentence(t: &Tr, who: &Who<'_>, said: &Said<'_>) -> String {
    let actor = who.text(t);
    let actor: &dyn std::fmt::Display = &actor;
    let after = |k: &str| plain(t, said.after.get(k));
    let before = |k: &str| plain(t, said.before.get(k));
    let (store, day) = said
        .entity_id
        .split_once('/')
        .unwrap_or((said.entity_id, ""));
    let subject = match said.subject {
        Some(name) => format!("{name} (#{})", said.entity_id),
        None => format!("#{}", said.entity_id),
    };
    match said.action {
        "setting.update" => {
            let key = said.entity_id;
            t.fmt(
                "admin.audit.says.setting_update",
                &[
                    ("actor", actor),
                    ("setting", &field_name(t, key)),
                    ("before", &before(key)),
                    ("after", &after(key)),
                ],
            )
        }
        "supply.import" => {
            let dates = said.entity_id.replace("..", " ~ ");
            let counts = [
                ("rows", after("rows")),
                ("created", after("created")),
                ("changed", after("changed")),
                ("unchanged", after("unchanged")),
                ("line", after("stopped_at_line")),
            ];
            let mut args: Vec<(&str, &dyn std::fmt::Display)> =
                vec![("actor", actor), ("dates", &dates)];
            args.extend(
                counts
                    .iter()
                    .map(|(k, v)| (*k, v as &dyn std::fmt::Display)),
            );
            let key = match said.after.contains_key("stopped_at_line") {
                true => "admin.audit.says.supply_import_stopped",
                false => "admin.audit.says.supply_import",
            };
            t.fmt(key, &args)
        }
        "supply.allocate" => t.fmt(
            "admin.audit.says.supply_allocate",
            &[
                ("actor", actor),
                ("store", &store),
                ("date", &day),
                ("after", &after("supply")),
            ],
        ),
        "supply.change" => t.fmt(
            "admin.audit.says.supply_change",
            &[
                ("actor", actor),
                ("store", &store),
                ("date", &day),
                ("before", &before("supply")),
                ("after", &after("supply")),
            ],
        ),
        "supply.copy" => t.fmt(
            "admin.audit.says.supply_copy",
            &[
                ("actor", actor),
                ("from", &after("from")),
                ("date", &said.entity_id),
                ("copied", &after("copied")),
                ("already", &after("already")),
                ("suspended", &after("suspended")),
            ],
        ),
        "capacity.change" => t.fmt(
            "admin.audit.says.capacity_change",
            &[
                ("actor", actor),
                ("store", &after("store_code")),
                ("date", &after("date")),
                ("before", &before("capacity")),
                ("after", &after("capacity")),
            ],
        ),
        "store.create" => t.fmt(
            "admin.audit.says.store_create",
            &[
                ("actor", actor),
                ("name", &after("name")),
                ("code", &said.entity_id),
            ],
        ),
        "store.update" => {
            let fields: Vec<String> = values(t, said).into_iter().map(|v| v.name).collect();
            t.fmt(
                "admin.audit.says.store_update",
                &[
                    ("actor", actor),
                    ("name", &after("name")),
                    ("code", &said.entity_id),
                    ("fields", &fields.join(", ")),
                ],
            )
        }
        "store.import" => t.fmt(
            "admin.audit.says.store_import",
            &[
                ("actor", actor),
                ("file", &said.entity_id),
                ("created", &after("created")),
                ("updated", &after("updated")),
                ("unchanged", &after("unchanged")),
            ],
        ),
        "user.create" => {
            let role = said
                .after
                .get("role")
                .and_then(Value::as_str)
                .map_or("", |r| t.get(role_key(r)));
            t.fmt(
                "admin.audit.says.user_create",
                &[
                    ("actor", actor),
                    ("role", &role),
                    ("name", &after("name")),
                    ("email", &after("email")),
                ],
            )
        }
        "user.disable" => t.fmt(
            "admin.audit.says.user_disable",
            &[("actor", actor), ("account", &subject)],
        ),
        "user.enable" => t.fmt(
            "admin.audit.says.user_enable",
            &[("actor", actor), ("account", &subject)],
        ),
        "walk_in.lookup" => t.fmt(
            "admin.audit.says.walk_in_lookup",
            &[
                ("actor", actor),
                ("store", &after("store")),
                ("quantity", &after("quantity")),
                ("outcome", &worded(t, "outcome", said.after.get("outcome"))),
            ],
        ),
        "draw.create" => t.fmt(
            "admin.audit.says.draw_create",
            &[
                ("actor", actor),
                ("name", &after("name")),
                ("windows", &after("windows")),
            ],
        ),
        "dependant.add" => t.fmt(
            "admin.audit.says.dependant_add",
            &[("actor", actor), ("person", &after("national_id"))],
        ),
        "dependant.remove" => t.fmt("admin.audit.says.dependant_remove", &[("actor", actor)]),
        "dependant.end" => t.fmt("admin.audit.says.dependant_end", &[("actor", actor)]),
        other => t.fmt(
            "admin.audit.says.other",
            &[
                ("actor", actor),
                ("action", &other),
                ("entity", &said.entity),
                ("id", &said.entity_id),
            ],
        ),
    }
}

/// An entry's stored JSON as an object: anything else (or nothing) is an
/// object with one member named by an empty key, so that it is still shown.
pub fn object(json_text: Option<&str>) -> Map<String, Value> {
    match json_text.map(serde_json::from_str::<Value>) {
        None => Map::new(),
        Some(Ok(Value::Object(map))) => map,
        Some(Ok(other)) => Map::from_iter([(String::new(), other)]),
        Some(Err(_)) => Map::from_iter([(
            String::new(),
            Value::String(json_text.unwrap_or_default().to_owned()),
        )]),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::i18n::{Catalog, Lang};

    fn tr(lang: Lang) -> Tr {
        Tr::new(Arc::new(Catalog::load().unwrap()), lang)
    }

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    const KIM: Who<'static> = Who {
        role: Some("admin"),
        name: Some("김민지"),
        id: Some(7),
    };

    fn say(lang: Lang, action: &str, id: &str, before: Value, after: Value) -> String {
        let (before, after) = (map(before), map(after));
        let said = Said {
            action,
            entity: "supply",
            entity_id: id,
            before: &before,
            after: &after,
            subject: None,
        };
        sentence(&tr(lang), &KIM, &said)
    }

    #[test]
    fn a_supply_import_reads_as_a_sentence_with_its_counts() {
        let after = json!({"rows": 3, "created": 1, "changed": 2, "unchanged": 0});
        let ko = say(
            Lang::Ko,
            "supply.import",
            "2026-12-01..2026-12-02",
            json!(null),
            after.clone(),
        );
        assert!(ko.starts_with("관리자 김민지 님이"), "{ko}");
        assert!(ko.contains("2026-12-01 ~ 2026-12-02"), "{ko}");
        assert!(
            !ko.contains("supply.import") && !ko.contains("changed"),
            "{ko}"
        );
        let en = say(Lang::En, "supply.import", "2026-12-01", json!(null), after);
        assert!(en.starts_with("Administrator 김민지"), "{en}");
        assert!(en.contains("2 changed"), "{en}");
    }

    #[test]
    fn a_setting_change_names_the_setting_and_both_values() {
        let ko = say(
            Lang::Ko,
            "setting.update",
            "quota_per_period",
            json!({"quota_per_period": "2"}),
            json!({"quota_per_period": "3"}),
        );
        assert!(ko.contains("1인당 기간 한도"), "{ko}");
        assert!(ko.contains("2에서 3"), "{ko}");
    }

    #[test]
    fn an_unknown_action_still_reads_as_a_sentence_naming_it() {
        let en = say(
            Lang::En,
            "thing.frobnicate",
            "9",
            json!(null),
            json!({"x": 1}),
        );
        assert!(
            en.contains("thing.frobnicate") && en.contains("김민지"),
            "{en}"
        );
    }

    #[test]
    fn a_walk_in_look_up_says_its_outcome_in_words_and_an_unknown_one_as_stored() {
        let after = json!({"store": "11800001", "quantity": 2, "outcome": "rotation"});
        let ko = say(
            Lang::Ko,
            "walk_in.lookup",
            "hash",
            json!(null),
            after.clone(),
        );
        assert!(ko.contains("구매 요일이 아님"), "{ko}");
        assert!(!ko.contains("rotation"), "{ko}");
        let en = say(Lang::En, "walk_in.lookup", "hash", json!(null), after);
        assert!(en.contains("not their buying day"), "{en}");
        let later = json!({"outcome": "some_later_kind"});
        let ko = say(Lang::Ko, "walk_in.lookup", "hash", json!(null), later);
        assert!(ko.contains("some_later_kind"), "{ko}");
        for lang in Lang::ALL {
            let t = tr(lang);
            for kind in [
                "sold",
                "quantity",
                "proxy_oneself",
                "proxy_years",
                "proxy_unchecked",
                "no_supply",
                "suspended",
                "stock",
                "above_quota",
                "rotation",
                "quota",
            ] {
                let key = format!("admin.audit.outcome.{kind}");
                assert_ne!(t.get(&key), key, "{lang:?} has no word for {kind}");
            }
        }
    }

    #[test]
    fn a_change_lists_only_the_values_that_differ_by_their_names() {
        let (before, after) = (
            map(json!({"name": "A", "suspended": false, "addr": "x"})),
            map(json!({"name": "A", "suspended": true, "addr": "x"})),
        );
        let said = Said {
            action: "store.update",
            entity: "store",
            entity_id: "31802095",
            before: &before,
            after: &after,
            subject: None,
        };
        let v = values(&tr(Lang::Ko), &said);
        assert_eq!(v.len(), 1);
        assert_eq!(
            (v[0].before.as_str(), v[0].after.as_str()),
            ("아니요", "예")
        );
        assert_ne!(v[0].name, "suspended");
    }

    #[test]
    fn stored_json_that_is_not_an_object_is_still_shown() {
        assert!(object(None).is_empty());
        assert_eq!(object(Some("not json")).len(), 1);
        assert_eq!(object(Some("3")).get(""), Some(&json!(3)));
    }
}
