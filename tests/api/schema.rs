//! `src/db/schema.rs` is written by hand for both backends; this checks it
//! against what the migrations really create, on the backend under test.

use std::collections::BTreeMap;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use mask_reservation::db::DbConnection;

/// table → column → (type, nullable), as declared in schema.rs.
type Columns = BTreeMap<String, BTreeMap<String, (String, bool)>>;

fn declared() -> Columns {
    let text = std::fs::read_to_string(crate::common::repo_path("src/db/schema.rs")).unwrap();
    let mut out = Columns::new();
    let mut table: Option<String> = None;
    for line in text.lines().map(str::trim) {
        if let Some(head) = line.strip_suffix('{') {
            let name = head.split('(').next().unwrap().trim();
            if !name.is_empty() && !name.starts_with("diesel::") {
                table = Some(name.to_owned());
                out.insert(name.to_owned(), BTreeMap::new());
            }
            continue;
        }
        if line == "}" {
            table = None;
            continue;
        }
        if let (Some(t), Some((col, ty))) = (&table, line.split_once("->")) {
            let ty = ty.trim().trim_end_matches(',');
            let (ty, nullable) = match ty.strip_prefix("Nullable<") {
                Some(inner) => (inner.trim_end_matches('>').to_owned(), true),
                None => (ty.to_owned(), false),
            };
            out.get_mut(t)
                .unwrap()
                .insert(col.trim().to_owned(), (ty, nullable));
        }
    }
    out
}

#[derive(QueryableByName)]
struct Col {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Text)]
    data_type: String,
    #[diesel(sql_type = BigInt)]
    nullable: i64,
    #[diesel(sql_type = BigInt)]
    pk: i64,
}

fn actual(conn: &mut DbConnection) -> Columns {
    let rows: Vec<Col> = match conn {
        DbConnection::Postgres(_) => diesel::sql_query(
            "SELECT table_name::text AS table_name, column_name::text AS column_name,
                    data_type::text AS data_type,
                    CASE WHEN is_nullable = 'YES' THEN 1 ELSE 0 END::bigint AS nullable,
                    0::bigint AS pk
             FROM information_schema.columns
             WHERE table_schema = 'public' AND table_name <> '__diesel_schema_migrations'",
        )
        .load(conn)
        .unwrap(),
        DbConnection::Sqlite(_) => diesel::sql_query(
            "SELECT m.name AS table_name, p.name AS column_name, p.type AS data_type,
                    CASE WHEN p.\"notnull\" = 1 OR p.pk > 0 THEN 0 ELSE 1 END AS nullable,
                    p.pk AS pk
             FROM sqlite_master m JOIN pragma_table_info(m.name) p
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'
               AND m.name <> '__diesel_schema_migrations'",
        )
        .load(conn)
        .unwrap(),
    };
    let mut out = Columns::new();
    for c in rows {
        let ty = match c.data_type.to_lowercase().as_str() {
            "bigint" => "BigInt",
            // SQLite's rowid alias must be spelled INTEGER; it holds 64 bits.
            "integer" if c.pk > 0 => "BigInt",
            "integer" => "Integer",
            "text" => "Text",
            "boolean" => "Bool",
            "double" | "double precision" => "Double",
            "date" => "Date",
            "timestamp" | "timestamp without time zone" => "Timestamp",
            other => panic!("{}.{}: unmapped type {other}", c.table_name, c.column_name),
        };
        out.entry(c.table_name)
            .or_default()
            .insert(c.column_name, (ty.to_owned(), c.nullable == 1));
    }
    out
}

#[test]
fn schema_rs_matches_the_migrated_database() {
    let db = crate::common::TestDatabase::fresh();
    let mut conn = db.connect();
    let declared = declared();
    let actual = actual(&mut conn);
    assert_eq!(
        declared.keys().collect::<Vec<_>>(),
        actual.keys().collect::<Vec<_>>(),
        "tables"
    );
    for (table, columns) in &declared {
        assert_eq!(columns, &actual[table], "columns of {table}");
    }
}

#[test]
fn both_backends_have_the_same_migrations() {
    let names = |dir: &str| {
        let mut v: Vec<String> = std::fs::read_dir(crate::common::repo_path(dir))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names("migrations/sqlite"), names("migrations/postgres"));
}
