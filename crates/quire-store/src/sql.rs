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
