//! What the layout (docs/architecture.md) promises of who uses whom, read
//! from the source: shared helpers live beside what they serve, so no feature
//! reaches into another feature's folder for one; `app.rs`, which registers
//! every page's routes, is the one exception.

use std::path::Path;

use crate::common::repo_path;

/// Every `.rs` file under `dir`, as (path from the repository, text).
fn sources(dir: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            let rel = path.strip_prefix(repo_path("")).unwrap();
            out.push((rel.to_string_lossy().replace('\\', "/"), text));
        }
    }
}

/// Whether `text` names `parent::child`: written out, or imported in a
/// group (`use parent::{…, child, …}`).
fn names(text: &str, parent: &str, child: &str) -> bool {
    if text.contains(&format!("{parent}::{child}")) {
        return true;
    }
    let group = format!("{parent}::{{");
    text.match_indices(&group).any(|(at, _)| {
        let rest = &text[at + group.len()..];
        let inside = &rest[..rest.find('}').unwrap_or(rest.len())];
        inside
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .any(|word| word == child)
    })
}

/// The files of `src/` outside `folder` that name `parent::child`, sorted.
fn users_outside(folder: &str, parent: &str, child: &str) -> Vec<String> {
    let mut files = Vec::new();
    sources(&repo_path("src"), &mut files);
    let mut users: Vec<String> = files
        .into_iter()
        .filter(|(path, text)| !path.starts_with(folder) && names(text, parent, child))
        .map(|(path, _)| path)
        .collect();
    users.sort();
    users
}

#[test]
fn a_module_is_named_written_out_or_in_a_group() {
    let (parent, child) = ("crate::reservations", "routes");
    assert!(names("crate::reservations::routes::x", parent, child));
    assert!(names(
        "use crate::reservations::{rules, routes};",
        parent,
        child
    ));
    assert!(names(
        "use crate::reservations::{\n    routes::{a, b},\n};",
        parent,
        child
    ));
    assert!(!names(
        "use crate::reservations::{rules, queries};",
        parent,
        child
    ));
    assert!(!names(
        "use crate::reservations::{routes_of};",
        parent,
        child
    ));
}

#[test]
fn nothing_but_the_app_reaches_into_the_admin_folder() {
    assert_eq!(
        users_outside("src/admin/", "crate", "admin"),
        ["src/app.rs"],
        "a helper that other features use belongs beside them, not in admin/"
    );
}

#[test]
fn nothing_but_the_app_uses_the_citizens_reservation_pages() {
    // The home page, the store page and the rest share the reservations'
    // rules, queries and quota lines, never its handlers.
    assert_eq!(
        users_outside("src/reservations/", "reservations", "routes"),
        ["src/app.rs"]
    );
}
