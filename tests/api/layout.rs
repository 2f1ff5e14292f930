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

/// The files of `src/` outside `folder` whose text names `module` (as
/// `crate::…`), sorted.
fn users_outside(folder: &str, module: &str) -> Vec<String> {
    let mut files = Vec::new();
    sources(&repo_path("src"), &mut files);
    let mut users: Vec<String> = files
        .into_iter()
        .filter(|(path, text)| !path.starts_with(folder) && text.contains(module))
        .map(|(path, _)| path)
        .collect();
    users.sort();
    users
}

#[test]
fn nothing_but_the_app_reaches_into_the_admin_folder() {
    assert_eq!(
        users_outside("src/admin/", "crate::admin::"),
        ["src/app.rs"],
        "a helper that other features use belongs beside them, not in admin/"
    );
}
