//! A fixed statement with `$n` placeholders, kept prepared on its connection,
//! on either backend.
//!
//! diesel marks `sql_query` text, every `UPDATE` and every `ON CONFLICT DO
//! UPDATE` unsafe to cache, so each run is parsed and planned again: on
//! PostgreSQL by the server, on SQLite in the process, where on the booking
//! path that cost as much as running the statements. A [`Statement`] is
//! cached by diesel like a DSL query (keyed by its text): the first run on a
//! connection prepares it, later runs only bind and execute. The conditional
//! writes of the hot path (the quota, the window, the store-day) use it.
//!
//! The text may use a placeholder more than once and in any order, as
//! hand-written SQL does; each occurrence is sent as a parameter of its own
//! carrying that argument's value, since diesel numbers parameters in the
//! order they are pushed.
//!
//! A text built at run time ([`Statement::built`]: a set of rows written in
//! one statement, whose length varies) is not kept prepared: each length
//! would be a statement of its own in the cache. Its cost is paid once for
//! all the rows it carries.

use std::borrow::Cow;

use chrono::{NaiveDate, NaiveDateTime};
use diesel::pg::{Pg, PgConnection};
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::result::Error as DieselError;
use diesel::sql_types::{BigInt, Date, Integer, Nullable, Text, Timestamp, Untyped};
use diesel::sqlite::{Sqlite, SqliteConnection};
use diesel::{QueryResult, RunQueryDsl};

use super::DbConnection;

/// One argument of a [`Statement`]: `$1` is the first.
#[derive(Debug, Clone)]
pub enum Arg<'a> {
    BigInt(i64),
    NullableBigInt(Option<i64>),
    Integer(i32),
    NullableInteger(Option<i32>),
    Date(NaiveDate),
    Timestamp(NaiveDateTime),
    NullableTimestamp(Option<NaiveDateTime>),
    Text(&'a str),
    NullableText(Option<&'a str>),
}

/// A statement to run with [`RunQueryDsl`] on a `PgConnection` or a
/// `SqliteConnection` (through `on_each_backend!` from a `DbConnection`);
/// rows are read by name (`#[derive(QueryableByName)]`).
#[derive(Debug, Clone)]
pub struct Statement<'a> {
    sql: Cow<'static, str>,
    args: Vec<Arg<'a>>,
}

impl<'a> Statement<'a> {
    pub fn new(sql: &'static str, args: Vec<Arg<'a>>) -> Self {
        Statement {
            sql: Cow::Borrowed(sql),
            args,
        }
    }

    /// A statement whose text was built at run time: run as prepared once,
    /// not cached.
    pub fn built(sql: String, args: Vec<Arg<'a>>) -> Self {
        Statement {
            sql: Cow::Owned(sql),
            args,
        }
    }
}

/// `rows` rows of `columns` placeholders each, numbered from `$first`:
/// `($1, $2), ($3, $4)` — the `VALUES` of a set of rows for
/// [`Statement::built`], whose arguments are pushed row by row.
pub fn value_rows(rows: usize, columns: usize, first: usize) -> String {
    let mut sql = String::with_capacity(rows * columns * 7);
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for column in 0..columns {
            if column > 0 {
                sql.push_str(", ");
            }
            sql.push('$');
            sql.push_str(&(first + row * columns + column).to_string());
        }
        sql.push(')');
    }
    sql
}

impl QueryId for Statement<'_> {
    // No static id: the cache key is the text, which is fixed.
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for Statement<'_> {
    type SqlType = Untyped;
}

impl Statement<'_> {
    /// Runs the statement on whichever backend `conn` is; the rows it wrote.
    pub fn run(self, conn: &mut DbConnection) -> QueryResult<usize> {
        crate::on_each_backend!(conn, |c| self.execute(c))
    }
}

impl RunQueryDsl<PgConnection> for Statement<'_> {}
impl RunQueryDsl<SqliteConnection> for Statement<'_> {}

/// The text of `$statement` with each `$n` pushed as a bind of the `n`th
/// argument; the same for both backends, whose bind types differ.
macro_rules! walk_statement {
    ($backend:ty) => {
        impl QueryFragment<$backend> for Statement<'_> {
            fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, $backend>) -> QueryResult<()> {
                if matches!(self.sql, Cow::Owned(_)) {
                    out.unsafe_to_cache_prepared();
                }
                let mut rest: &str = &self.sql;
                while let Some(at) = rest.find('$') {
                    out.push_sql(&rest[..at]);
                    let digits = rest[at + 1..]
                        .find(|c: char| !c.is_ascii_digit())
                        .map_or(rest.len() - at - 1, |n| n);
                    let number: usize = rest[at + 1..at + 1 + digits].parse().map_err(|_| {
                        DieselError::QueryBuilderError("a `$` without a number".into())
                    })?;
                    let arg = number
                        .checked_sub(1)
                        .and_then(|i| self.args.get(i))
                        .ok_or_else(|| {
                            DieselError::QueryBuilderError(
                                format!("no argument for ${number}").into(),
                            )
                        })?;
                    match arg {
                        Arg::BigInt(v) => out.push_bind_param::<BigInt, _>(v)?,
                        Arg::NullableBigInt(v) => {
                            out.push_bind_param::<Nullable<BigInt>, _>(v)?
                        }
                        Arg::Integer(v) => out.push_bind_param::<Integer, _>(v)?,
                        Arg::NullableInteger(v) => {
                            out.push_bind_param::<Nullable<Integer>, _>(v)?
                        }
                        Arg::Date(v) => out.push_bind_param::<Date, _>(v)?,
                        Arg::Timestamp(v) => out.push_bind_param::<Timestamp, _>(v)?,
                        Arg::NullableTimestamp(v) => {
                            out.push_bind_param::<Nullable<Timestamp>, _>(v)?
                        }
                        Arg::Text(v) => out.push_bind_param::<Text, _>(v)?,
                        Arg::NullableText(v) => out.push_bind_param::<Nullable<Text>, _>(v)?,
                    }
                    rest = &rest[at + 1 + digits..];
                }
                out.push_sql(rest);
                Ok(())
            }
        }
    };
}

walk_statement!(Pg);
walk_statement!(Sqlite);

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::debug_query;

    #[test]
    fn placeholders_are_numbered_in_order_of_use_each_with_its_argument() {
        let statement = Statement::new(
            "SELECT $2, $1 WHERE x = $2 AND y = $10",
            vec![
                Arg::BigInt(7),
                Arg::Text("a"),
                Arg::Integer(0),
                Arg::Integer(0),
                Arg::Integer(0),
                Arg::Integer(0),
                Arg::Integer(0),
                Arg::Integer(0),
                Arg::Integer(0),
                Arg::Integer(10),
            ],
        );
        let shown = debug_query::<Pg, _>(&statement).to_string();
        assert!(
            shown.starts_with(
                "SELECT $1, $2 WHERE x = $3 AND y = $4 -- binds: [\"a\", 7, \"a\", 10]"
            ),
            "{shown}"
        );
    }

    #[test]
    fn on_sqlite_each_placeholder_is_an_anonymous_parameter_with_its_argument() {
        let statement = Statement::new(
            "UPDATE t SET a = a + $2 WHERE id = $1 AND a + $2 <= 5",
            vec![Arg::BigInt(7), Arg::Integer(2)],
        );
        let shown = diesel::debug_query::<Sqlite, _>(&statement).to_string();
        assert!(
            shown.starts_with(
                "UPDATE t SET a = a + ? WHERE id = ? AND a + ? <= 5 -- binds: [2, 7, 2]"
            ),
            "{shown}"
        );
    }

    #[test]
    fn value_rows_number_their_placeholders_row_by_row() {
        assert_eq!(value_rows(2, 3, 2), "($2, $3, $4), ($5, $6, $7)");
        assert_eq!(value_rows(1, 1, 1), "($1)");
        assert_eq!(value_rows(0, 2, 1), "");
    }

    #[test]
    fn a_placeholder_without_its_argument_is_an_error_not_a_panic() {
        use std::fmt::Write;
        let statement = Statement::new("SELECT $2", vec![Arg::BigInt(1)]);
        let mut shown = String::new();
        assert!(write!(shown, "{}", debug_query::<Pg, _>(&statement)).is_err());
    }
}
