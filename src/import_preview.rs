//! Import files kept between their preview and their confirmation (SPEC §7:
//! an import answers a preview and applies only with `confirm=1` and the
//! preview's `file_hash`). The preview stores the file under the
//! administrator, the kind of import and the file's SHA-256; the confirmation
//! names only the hash and takes the stored bytes, so what is applied is
//! exactly the file that was previewed. A browser cannot send a file again
//! from a hidden field, which is why the bytes are kept here.
//!
//! A preview belongs to the administrator who saw it: another administrator's
//! confirmation of the same hash finds nothing, because confirming says "I
//! saw what this changes". Taking a preview deletes it in the same statement
//! that decides who took it, so a replayed or doubled confirmation applies
//! the file once. Previews live [`LIFETIME`]; older ones are deleted whenever
//! a new one is stored.
//!
//! Shared by the supply and store imports, so it lives beside them rather
//! than inside one of them.

use chrono::{NaiveDateTime, TimeDelta};
use diesel::prelude::*;

use crate::db::schema::import_previews;
use crate::db::{DbConnection, Tx};

/// How long a preview can be confirmed.
pub const LIFETIME: TimeDelta = TimeDelta::hours(1);

/// Which import a preview is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Supply,
    Stores,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Supply => "supply",
            Kind::Stores => "stores",
        }
    }
}

/// The SHA-256 of a file, as 64 lowercase hex digits: the `file_hash` a
/// preview's confirmation carries.
pub fn file_hash(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A digest of the lines of what a preview showed (one string per line, in a
/// fixed order): `seen` of a kept preview.
pub fn digest_of<'a>(lines: impl IntoIterator<Item = &'a str>) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for line in lines {
        hash.update(line.as_bytes());
        hash.update(b"\n");
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `text` can be a [`file_hash`]: anything else is refused before the
/// database is asked.
pub fn is_file_hash(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A preview to keep.
pub struct NewPreview<'a> {
    pub admin_id: i64,
    pub kind: Kind,
    pub file_hash: &'a str,
    pub file_name: &'a str,
    pub content: &'a str,
    pub seen: &'a str,
}

/// Keeps the preview (replacing one of the same file by the same
/// administrator), and deletes every preview older than [`LIFETIME`].
pub fn keep(tx: &mut Tx<'_>, new: &NewPreview<'_>, now: NaiveDateTime) -> QueryResult<()> {
    diesel::delete(import_previews::table.filter(import_previews::created_at.lt(now - LIFETIME)))
        .execute(tx.conn())?;
    diesel::delete(
        import_previews::table
            .filter(import_previews::admin_id.eq(new.admin_id))
            .filter(import_previews::kind.eq(new.kind.as_str()))
            .filter(import_previews::file_hash.eq(new.file_hash)),
    )
    .execute(tx.conn())?;
    diesel::insert_into(import_previews::table)
        .values((
            import_previews::admin_id.eq(new.admin_id),
            import_previews::kind.eq(new.kind.as_str()),
            import_previews::file_hash.eq(new.file_hash),
            import_previews::file_name.eq(new.file_name),
            import_previews::content.eq(new.content),
            import_previews::seen.eq(new.seen),
            import_previews::created_at.eq(now),
        ))
        .execute(tx.conn())
        .map(drop)
}

/// A preview taken for its confirmation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    pub file_name: String,
    pub content: String,
    /// The digest of the values the preview showed.
    pub seen: String,
}

/// Takes the administrator's preview of the file `hash` if it is there and
/// younger than [`LIFETIME`]: it is deleted, and of two takes at once only
/// the one whose delete removed the row gets it.
pub fn take(
    tx: &mut Tx<'_>,
    admin_id: i64,
    kind: Kind,
    hash: &str,
    now: NaiveDateTime,
) -> QueryResult<Option<Kept>> {
    let found: Option<(String, String, String, NaiveDateTime)> = import_previews::table
        .filter(import_previews::admin_id.eq(admin_id))
        .filter(import_previews::kind.eq(kind.as_str()))
        .filter(import_previews::file_hash.eq(hash))
        .select((
            import_previews::file_name,
            import_previews::content,
            import_previews::seen,
            import_previews::created_at,
        ))
        .first(tx.conn())
        .optional()?;
    let Some((file_name, content, seen, created_at)) = found else {
        return Ok(None);
    };
    let deleted = diesel::delete(
        import_previews::table
            .filter(import_previews::admin_id.eq(admin_id))
            .filter(import_previews::kind.eq(kind.as_str()))
            .filter(import_previews::file_hash.eq(hash)),
    )
    .execute(tx.conn())?;
    if deleted == 0 || created_at < now - LIFETIME {
        return Ok(None);
    }
    Ok(Some(Kept {
        file_name,
        content,
        seen,
    }))
}

/// How many previews are kept (for tests and the operator).
pub fn count(conn: &mut DbConnection) -> QueryResult<i64> {
    import_previews::table.count().get_result(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_hash_is_64_lowercase_hex_digits() {
        let h = file_hash(b"store_code,date,quantity\n");
        assert!(is_file_hash(&h), "{h}");
        assert!(!is_file_hash(&h.to_uppercase()));
        assert!(!is_file_hash(&h[1..]));
        assert!(!is_file_hash("../etc/passwd"));
    }

    #[test]
    fn the_digest_depends_on_every_line_and_their_order() {
        assert_ne!(digest_of(["a", "b"]), digest_of(["b", "a"]));
        assert_ne!(digest_of(["a", "b"]), digest_of(["ab"]));
        assert_eq!(digest_of(["a", "b"]), digest_of(["a", "b"]));
    }
}
