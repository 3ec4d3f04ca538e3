//! Reading quire's text-valued enums from SQLite columns.

use std::str::FromStr;

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ValueRef};

/// A column holding one of an enum's texts (`row.get::<_, Text<RunState>>`).
pub(crate) struct Text<T>(pub T);

impl<T> FromSql for Text<T>
where
    T: FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let text = value.as_str()?;
        text.parse()
            .map(Text)
            .map_err(|e| FromSqlError::Other(Box::new(e)))
    }
}

/// `row.text(i)`: a column holding one of an enum's texts.
pub(crate) trait RowExt {
    fn text<T>(&self, idx: usize) -> rusqlite::Result<T>
    where
        T: FromStr,
        T::Err: std::error::Error + Send + Sync + 'static;

    fn text_opt<T>(&self, idx: usize) -> rusqlite::Result<Option<T>>
    where
        T: FromStr,
        T::Err: std::error::Error + Send + Sync + 'static;
}

impl RowExt for rusqlite::Row<'_> {
    fn text<T>(&self, idx: usize) -> rusqlite::Result<T>
    where
        T: FromStr,
        T::Err: std::error::Error + Send + Sync + 'static,
    {
        Ok(self.get::<_, Text<T>>(idx)?.0)
    }

    fn text_opt<T>(&self, idx: usize) -> rusqlite::Result<Option<T>>
    where
        T: FromStr,
        T::Err: std::error::Error + Send + Sync + 'static,
    {
        Ok(self.get::<_, Option<Text<T>>>(idx)?.map(|t| t.0))
    }
}

/// `conn.query_row_cached(sql, params, f)`: [`rusqlite::Connection::query_row`]
/// through the connection's statement cache. `query_row` parses its SQL
/// anew on every call; a worker asks the same few questions every run
/// (and the announcer one per earlier run of a commit), and SQLite's parser
/// was most of what they cost.
pub(crate) trait QueryCached {
    fn query_row_cached<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>;
}

impl QueryCached for rusqlite::Connection {
    fn query_row_cached<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    {
        self.prepare_cached(sql)?.query_row(params, f)
    }
}
