//! Safe SQL text for Doris and MySQL-protocol servers: validated, quoted identifiers and
//! values through the driver's literal encoder. No user value is ever spliced in raw.
//!
//! Doris mishandles server-side prepared statements, so queries go over the text protocol and
//! every value is encoded by `mysql_common`'s literal encoder (`Value::as_sql`), honouring the
//! session's `NO_BACKSLASH_ESCAPES` mode.

use std::collections::HashMap;
use std::fmt;
use std::ops::Bound;

use arrow::datatypes::{DataType, Schema, SchemaRef};
use mysql_async::Value;
use trainstore_core::{
    Error, Filter, Predicate, Result, Scalar, ScanRequest, TimeRange, Timestamp,
};

use trainstore_core::snapshot::SnapshotSchema;

/// An identifier (database, table or column name) that is safe to quote.
///
/// Letters, digits, `_` and `$`, not starting with a digit, at most 64 characters: what Doris
/// and MySQL accept unquoted, so quoting with backticks can never be escaped from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ident(String);

impl Ident {
    /// Validates `name` as an identifier.
    pub fn new(name: &str) -> Result<Self> {
        let bad = |reason: &str| Err(Error::invalid("SQL identifier", name, reason));
        if name.is_empty() || name.len() > 64 {
            return bad("must be 1 to 64 characters");
        }
        if name.as_bytes()[0].is_ascii_digit() {
            return bad("must not start with a digit");
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$')
        {
            return bad("only letters, digits, '_' and '$' are allowed");
        }
        Ok(Ident(name.to_owned()))
    }

    /// The name without quotes.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Ident {
    /// Backtick-quoted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`", self.0)
    }
}

/// A table, qualified by its database: Doris loses the current database on connection reset,
/// so every statement names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TableRef {
    pub database: Ident,
    pub table: Ident,
}

impl TableRef {
    /// Parses `db.table`, or `table` in `default_db`.
    pub fn parse(text: &str, default_db: Option<&str>) -> Result<Self> {
        match text.split_once('.') {
            Some((db, table)) => Ok(TableRef {
                database: Ident::new(db)?,
                table: Ident::new(table)?,
            }),
            None => {
                let db = default_db.ok_or_else(|| {
                    Error::invalid(
                        "table",
                        text,
                        "name the database as db.table, or put it in the URL",
                    )
                })?;
                Ok(TableRef {
                    database: Ident::new(db)?,
                    table: Ident::new(text)?,
                })
            }
        }
    }
}

impl fmt::Display for TableRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.database, self.table)
    }
}

/// Encodes values as SQL literals for one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Literals {
    /// Whether the session runs with `NO_BACKSLASH_ESCAPES` (then only quotes are doubled).
    pub no_backslash_escapes: bool,
}

impl Literals {
    /// The SQL literal of a filter value.
    pub fn scalar(&self, value: &Scalar) -> String {
        let v = match value {
            Scalar::Boolean(b) => Value::Int(i64::from(*b)),
            Scalar::Int64(i) => Value::Int(*i),
            Scalar::Float64(f) => Value::Double(*f),
            Scalar::Utf8(s) => Value::Bytes(s.as_bytes().to_vec()),
            Scalar::Timestamp(t) => Value::Int(t.as_millis()),
        };
        self.value(&v)
    }

    /// The SQL literal of a driver value.
    pub fn value(&self, value: &Value) -> String {
        value.as_sql(self.no_backslash_escapes)
    }
}

/// How a table stores a column, which decides how a filter on it is compared on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// Integers that fit an `i64`.
    Integer,
    /// Text in some character set and collation.
    Text,
    /// Anything else (floating point, decimals, dates, JSON, …).
    Other,
}

impl Storage {
    /// The storage of a column type as `SHOW COLUMNS` reports it (`bigint(20)`, `varchar(64)`,
    /// `STRING`).
    pub fn of_sql_type(sql_type: &str) -> Self {
        let ty = sql_type.to_ascii_lowercase();
        let is = |prefixes: &[&str]| prefixes.iter().any(|p| ty.starts_with(p));
        if is(&["bigint", "int", "smallint", "tinyint", "mediumint"]) {
            Storage::Integer
        } else if is(&[
            "varchar",
            "char",
            "tinytext",
            "text",
            "mediumtext",
            "longtext",
            "string",
        ]) {
            Storage::Text
        } else {
            Storage::Other
        }
    }

    /// The type a filter on a table column that is no snapshot field is typed as.
    fn data_type(self) -> Option<DataType> {
        match self {
            Storage::Integer => Some(DataType::Int64),
            Storage::Text => Some(DataType::Utf8),
            Storage::Other => None,
        }
    }
}

/// A table's columns and how each is stored.
pub(crate) type TableColumns = HashMap<String, Storage>;

/// Selected columns, each with what the caller's lookup said of it, and the time column.
pub(crate) type SnapshotColumns<T> = (Vec<(Ident, T)>, Option<Ident>);

/// The table columns a snapshot read selects, in order (the document column, then every field
/// the table has as a column), each with what `column` says of it, and the time column.
pub(crate) fn snapshot_columns<T>(
    schema: &SnapshotSchema,
    table: &TableRef,
    column: impl Fn(&str) -> Option<T>,
) -> Result<SnapshotColumns<T>> {
    let mut wanted: Vec<&str> = Vec::new();
    wanted.extend(schema.document_column());
    wanted.extend(schema.keys().iter().map(String::as_str));
    wanted.push(schema.time());
    wanted.extend(schema.tag());
    wanted.extend(schema.features().iter().map(|f| f.name.as_str()));
    let mut out = Vec::new();
    for name in wanted {
        match column(name) {
            Some(info) => out.push((Ident::new(name)?, info)),
            // In the document layout, fields missing as columns are read from the document.
            None if schema.document_column().is_some_and(|d| d != name) => {}
            None => {
                return Err(Error::invalid(
                    "snapshot table",
                    table.to_string(),
                    format!("has no column {name:?}"),
                ));
            }
        }
    }
    let time = column(schema.time())
        .map(|_| Ident::new(schema.time()))
        .transpose()?;
    Ok((out, time))
}

/// Column indices of `names` in `output`, for a request's projection.
pub(crate) fn projection(
    output: &SchemaRef,
    names: Option<&[String]>,
) -> Result<Option<Vec<usize>>> {
    names
        .map(|names| {
            names
                .iter()
                .map(|n| {
                    output.index_of(n).map_err(|_| {
                        Error::invalid("projected column", n, "not a column of the output")
                    })
                })
                .collect()
        })
        .transpose()
}

/// Builds the one kind of query snapshot reads run: selected columns, pushed-down filters, a
/// half-open time range, optionally in time order.
pub(crate) struct Select<'a> {
    table: &'a TableRef,
    columns: String,
    time: Option<&'a Ident>,
    literals: Literals,
}

/// A snapshot scan's request, checked and split: conditions the server runs, filters applied
/// after parsing (on fields that are not table columns), and the output projection.
pub(crate) struct SplitRequest {
    pub conditions: Vec<String>,
    pub post: Vec<Filter>,
    pub projection: Option<Vec<usize>>,
}

impl<'a> Select<'a> {
    /// Types `request`'s filters (by the snapshot `fields`, else by their table column), splits
    /// them into conditions the server runs exactly and filters applied after reading, and
    /// checks the request against the scan's `output`. Nothing is sent before this succeeds.
    pub fn split(
        &self,
        request: &ScanRequest,
        table_columns: &TableColumns,
        fields: &Schema,
        output: &SchemaRef,
    ) -> Result<SplitRequest> {
        let mut conditions = Vec::new();
        let mut post = Vec::new();
        for f in &request.filters {
            let storage = table_columns.get(&f.column).copied();
            let typed = match (fields.field_with_name(&f.column), storage) {
                (Ok(field), _) => f.typed_as(field.data_type())?,
                (Err(_), Some(storage)) => {
                    f.typed_as(&storage.data_type().ok_or_else(|| {
                        Error::invalid(
                            "filter column",
                            &f.column,
                            "neither a snapshot field nor an integer or text column",
                        )
                    })?)?
                }
                (Err(_), None) => f.typed(output)?,
            };
            match storage.map(|s| self.predicate(&typed, s)).transpose()? {
                Some(Some(condition)) => conditions.push(condition),
                _ => post.push(typed),
            }
        }
        let projection = projection(output, request.projection.as_deref())?;
        for f in &post {
            output.index_of(&f.column).map_err(|_| {
                Error::invalid(
                    "filter column",
                    &f.column,
                    "not a column of the table or the snapshots",
                )
            })?;
        }
        if request.time_range.is_some() && self.time.is_none() {
            return Err(Error::NotSupported {
                operation: "a time range",
                implementer: format!("table {} without a time column", self.table),
            });
        }
        Ok(SplitRequest {
            conditions,
            post,
            projection,
        })
    }

    pub fn new(
        table: &'a TableRef,
        columns: &[Ident],
        time: Option<&'a Ident>,
        literals: Literals,
    ) -> Self {
        let columns = columns
            .iter()
            .map(Ident::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        Select {
            table,
            columns,
            time,
            literals,
        }
    }

    /// A typed filter on a column stored as `storage`, as a SQL condition that holds exactly
    /// where [`apply_filters`](trainstore_core::apply_filters) keeps the parsed row; `None` when
    /// the server cannot tell that (the filter is then applied after parsing).
    ///
    /// Text compares byte for byte. MariaDB and MySQL compare text by the column's collation
    /// (`aaa = 'AAA'`, and under PAD SPACE `'a' = 'a '`), and `BINARY`/`COLLATE` fix that but are
    /// no Doris SQL, while Flight SQL may be served by either. `HEX(col)` is the column's bytes
    /// as upper-case hex on both, in the same order as the bytes, so comparing hex is comparing
    /// bytes everywhere. An equality keeps a plain `col = 'x'` in front: every exact match is a
    /// collation match, so an index on the column still narrows the rows.
    pub fn predicate(&self, f: &Filter, storage: Storage) -> Result<Option<String>> {
        let col = Ident::new(&f.column)?;
        let text = storage == Storage::Text;
        let bytes = |e: &str| {
            if text {
                format!("HEX({e})")
            } else {
                e.to_owned()
            }
        };
        let lit = |v: &Scalar| self.literal(v, storage);
        Ok(match &f.predicate {
            Predicate::Eq(v) => lit(v).map(|l| {
                let exact = format!("{} = {}", bytes(&col.to_string()), bytes(&l));
                if text {
                    format!("{col} = {l} AND {exact}")
                } else {
                    exact
                }
            }),
            Predicate::In(values) if values.is_empty() => Some("FALSE".into()),
            Predicate::In(values) => values
                .iter()
                .map(lit)
                .collect::<Option<Vec<_>>>()
                .map(|ls| {
                    let keys: Vec<String> = ls.iter().map(|l| bytes(l)).collect();
                    let exact = format!("{} IN ({})", bytes(&col.to_string()), keys.join(", "));
                    if text {
                        format!("{col} IN ({}) AND {exact}", ls.join(", "))
                    } else {
                        exact
                    }
                }),
            Predicate::Range { lower, upper } => {
                let mut parts = vec![format!("{col} IS NOT NULL")];
                let key = bytes(&col.to_string());
                for (bound, included, excluded) in [(lower, ">=", ">"), (upper, "<=", "<")] {
                    let (op, v) = match bound {
                        Bound::Included(v) => (included, v),
                        Bound::Excluded(v) => (excluded, v),
                        Bound::Unbounded => continue,
                    };
                    let Some(l) = lit(v) else {
                        return Ok(None);
                    };
                    parts.push(format!("{key} {op} {}", bytes(&l)));
                }
                Some(parts.join(" AND "))
            }
            Predicate::IsNull => Some(format!("{col} IS NULL")),
            Predicate::IsNotNull => Some(format!("{col} IS NOT NULL")),
        })
    }

    /// A typed value as a literal the server compares with a column stored as `storage`
    /// without converting either side; `None` when it would convert. An integer column's
    /// parsed text is its decimal digits, so only such text matches it.
    fn literal(&self, value: &Scalar, storage: Storage) -> Option<String> {
        let number = match (storage, value) {
            (Storage::Text, Scalar::Utf8(_)) => return Some(self.literals.scalar(value)),
            (Storage::Integer, Scalar::Utf8(s)) => s
                .parse::<i64>()
                .ok()
                .filter(|i| i.to_string() == *s)
                .map(Scalar::Int64),
            (Storage::Integer, _) | (Storage::Other, Scalar::Int64(_) | Scalar::Float64(_)) => {
                Some(value.clone())
            }
            _ => None,
        };
        number.map(|n| self.literals.scalar(&n))
    }

    /// The query: `conditions`, times in `range` (from `from` on, when resuming), and ordered
    /// by time when asked. Times are epoch milliseconds (the portable BIGINT form).
    pub fn sql(
        &self,
        conditions: &[String],
        range: Option<&TimeRange>,
        from: Option<Timestamp>,
        order_by_time: bool,
    ) -> String {
        let mut all = conditions.to_vec();
        if let Some(time) = self.time {
            let start = from.or(range.map(TimeRange::start));
            if let Some(start) = start {
                all.push(format!("{time} >= {}", start.as_millis()));
            }
            if let Some(range) = range {
                all.push(format!("{time} < {}", range.end().as_millis()));
            }
        }
        let mut sql = format!("SELECT {} FROM {}", self.columns, self.table);
        if !all.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&all.join(" AND "));
        }
        if let (true, Some(time)) = (order_by_time, self.time) {
            sql.push_str(&format!(" ORDER BY {time}"));
        }
        sql
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_validated_and_quoted() {
        assert_eq!(Ident::new("nodeId").unwrap().to_string(), "`nodeId`");
        for bad in [
            "",
            "a`b",
            "a b",
            "1a",
            "a;drop",
            "a.b",
            "é",
            "a\0",
            &"x".repeat(65),
        ] {
            assert!(Ident::new(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            TableRef::parse("db.t", None).unwrap().to_string(),
            "`db`.`t`"
        );
        assert_eq!(
            TableRef::parse("t", Some("db")).unwrap().to_string(),
            "`db`.`t`"
        );
        assert!(TableRef::parse("t", None).is_err());
        assert!(TableRef::parse("a.b.c", None).is_err());
    }

    #[test]
    fn text_compares_as_bytes_and_values_the_server_would_convert_stay_on_the_client() {
        let table = TableRef::parse("db.t", None).unwrap();
        let select = Select::new(
            &table,
            &[],
            None,
            Literals {
                no_backslash_escapes: false,
            },
        );
        let sql = |f: Filter, storage| select.predicate(&f, storage).unwrap();
        assert_eq!(
            sql(Filter::eq("uuid", "aaa"), Storage::Text).as_deref(),
            Some("`uuid` = 'aaa' AND HEX(`uuid`) = HEX('aaa')")
        );
        assert_eq!(
            sql(Filter::eq("nodeId", "1465"), Storage::Integer).as_deref(),
            Some("`nodeId` = 1465")
        );
        for not_exact_on_the_server in [
            (Filter::eq("nodeId", "01465"), Storage::Integer),
            (Filter::eq("meanLf", 1.5), Storage::Text),
            (Filter::eq("uuid", "a"), Storage::Other),
        ] {
            assert_eq!(
                sql(not_exact_on_the_server.0, not_exact_on_the_server.1),
                None
            );
        }
        for (ty, storage) in [
            ("bigint(20)", Storage::Integer),
            ("varchar(64)", Storage::Text),
            ("STRING", Storage::Text),
            ("tinytext", Storage::Text),
            ("double", Storage::Other),
            ("largeint", Storage::Other),
        ] {
            assert_eq!(Storage::of_sql_type(ty), storage, "{ty}");
        }
    }

    #[test]
    fn hostile_values_become_inert_literals() {
        let lit = Literals {
            no_backslash_escapes: false,
        };
        assert_eq!(lit.scalar(&"a' OR '1'='1".into()), r"'a\' OR \'1\'=\'1'");
        assert_eq!(lit.scalar(&"back\\slash".into()), r"'back\\slash'");
        assert_eq!(lit.scalar(&Scalar::Int64(-3)), "-3");
        let plain = Literals {
            no_backslash_escapes: true,
        };
        assert_eq!(plain.scalar(&"it's".into()), "'it''s'");
    }
}
