//! Safe SQL text for Doris and MySQL-protocol servers: validated, quoted identifiers and
//! values through the driver's literal encoder. No user value is ever spliced in raw.
//!
//! Doris mishandles server-side prepared statements, so queries go over the text protocol and
//! every value is encoded by `mysql_common`'s literal encoder (`Value::as_sql`), honouring the
//! session's `NO_BACKSLASH_ESCAPES` mode.

use std::fmt;
use std::ops::Bound;

use arrow::datatypes::SchemaRef;
use mysql_async::Value;
use trainstore_core::{
    Error, Filter, Predicate, Result, Scalar, ScanRequest, TimeRange, Timestamp,
};

use crate::schema::SnapshotSchema;

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
    /// Splits `request` by which filters name table columns (`is_column`) and checks it
    /// against the scan's `output`.
    pub fn split(
        &self,
        request: &ScanRequest,
        is_column: impl Fn(&str) -> bool,
        output: &SchemaRef,
    ) -> Result<SplitRequest> {
        let (pushed, post): (Vec<Filter>, Vec<Filter>) = request
            .filters
            .iter()
            .cloned()
            .partition(|f| is_column(&f.column));
        let conditions = pushed
            .iter()
            .map(|f| self.predicate(f))
            .collect::<Result<Vec<_>>>()?;
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

    /// A filter as a SQL condition; the column is validated, the values encoded.
    pub fn predicate(&self, f: &Filter) -> Result<String> {
        let col = Ident::new(&f.column)?;
        let lit = |v: &Scalar| self.literals.scalar(v);
        Ok(match &f.predicate {
            Predicate::Eq(v) => format!("{col} = {}", lit(v)),
            Predicate::In(values) if values.is_empty() => "FALSE".into(),
            Predicate::In(values) => format!(
                "{col} IN ({})",
                values.iter().map(lit).collect::<Vec<_>>().join(", ")
            ),
            Predicate::Range { lower, upper } => {
                let mut parts = vec![format!("{col} IS NOT NULL")];
                match lower {
                    Bound::Included(v) => parts.push(format!("{col} >= {}", lit(v))),
                    Bound::Excluded(v) => parts.push(format!("{col} > {}", lit(v))),
                    Bound::Unbounded => {}
                }
                match upper {
                    Bound::Included(v) => parts.push(format!("{col} <= {}", lit(v))),
                    Bound::Excluded(v) => parts.push(format!("{col} < {}", lit(v))),
                    Bound::Unbounded => {}
                }
                parts.join(" AND ")
            }
            Predicate::IsNull => format!("{col} IS NULL"),
            Predicate::IsNotNull => format!("{col} IS NOT NULL"),
        })
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
