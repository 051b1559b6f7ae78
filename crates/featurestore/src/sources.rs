//! Opening a feature view's stored [`SourceSpec`](trainstore_core::SourceSpec) as a live
//! [`DataSource`](trainstore_core::DataSource), through the factories the program registered.

use arrow::datatypes::{DataType, SchemaRef};
use trainstore_core::{
    DataSourceRef, Error, MountTable, OpenContext, Result, SourceFactories, StorageOptions,
};

use crate::definitions::{FeatureView, Field, ValueType};

/// What opening a source needs from its surroundings: the factories that open each kind of
/// source (the `trainstore` facade registers them all), where mounts point and store options.
#[derive(Debug, Clone, Default)]
pub struct SourceEnv {
    pub factories: SourceFactories,
    pub mounts: MountTable,
    pub options: StorageOptions,
}

impl SourceEnv {
    /// Opens `view`'s source; typed files get the view's timestamp field as their time column.
    pub async fn open(&self, view: &FeatureView) -> Result<DataSourceRef> {
        let context = OpenContext {
            mounts: &self.mounts,
            options: &self.options,
            time_column: &view.timestamp_field,
        };
        self.factories.open(&view.source, context).await
    }

    /// Opens `view`'s source for joins run by the database: one that offers its own
    /// point-in-time join ([`DataSource::as_of`](trainstore_core::DataSource::as_of)), such as
    /// Doris read over the MySQL protocol.
    pub async fn open_pushdown(&self, view: &FeatureView) -> Result<DataSourceRef> {
        let source = self.open(view).await?;
        if source.as_of().is_none() {
            return Err(Error::NotSupported {
                operation: "the pushdown engine",
                implementer: format!(
                    "feature view {}, whose source ({}) cannot answer a point-in-time join \
                     itself (a Doris table read over the MySQL protocol can)",
                    view.name,
                    source.describe()
                ),
            });
        }
        Ok(source)
    }
}

/// A view's source columns, checked against what the view declares; every check names the
/// view, the source and the column.
pub(crate) struct SourceColumns {
    view: String,
    source: String,
    pub(crate) schema: SchemaRef,
}

impl SourceColumns {
    pub(crate) async fn of(view: &FeatureView, source: &DataSourceRef) -> Result<Self> {
        Ok(SourceColumns {
            view: view.name.to_string(),
            source: source.describe(),
            schema: source.schema().await?,
        })
    }

    fn bad(&self, reason: String) -> Error {
        Error::invalid("feature view", self.view.as_str(), reason)
    }

    /// The type of column `name`, which the view uses as its `role`.
    pub(crate) fn column(&self, name: &str, role: &str) -> Result<DataType> {
        self.schema
            .field_with_name(name)
            .map(|f| f.data_type().clone())
            .map_err(|_| {
                let columns: Vec<&str> = self
                    .schema
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect();
                self.bad(format!(
                    "its {role} {name:?} is not a column of {} (columns: {}){}",
                    self.source,
                    columns.join(", "),
                    self.raw_snapshots_hint()
                ))
            })
    }

    /// What to say when the source's columns are raw snapshots read as a typed table (a
    /// `files` source without `snapshots`): a text column holding each row's JSON document,
    /// as the design document lays snapshots out.
    fn raw_snapshots_hint(&self) -> &'static str {
        let design_doc = trainstore_core::SnapshotSchema::design_doc();
        let raw = design_doc.document_column().is_some_and(|document| {
            self.schema.field_with_name(document).is_ok_and(|f| {
                matches!(
                    f.data_type(),
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                )
            })
        });
        if raw {
            "; these look like raw snapshot files (a JSON document per row): give the source \
             `snapshots:`, the layout to parse them with (docs/definitions.md, \"Snapshot \
             schemas\"), or in Python ts.FileSource(location), which parses the design \
             document's layout"
        } else {
            ""
        }
    }

    /// Checks that `name` is a time column (a timestamp, or Int64 epoch milliseconds).
    pub(crate) fn time(&self, name: &str) -> Result<()> {
        let dtype = self.column(name, "timestamp field")?;
        if !matches!(dtype, DataType::Timestamp(_, _) | DataType::Int64) {
            return Err(self.bad(format!(
                "its timestamp field {name:?} is {dtype}, expected a timestamp or Int64 epoch milliseconds"
            )));
        }
        Ok(())
    }

    /// The source type of a declared feature, which must be of the declared value type.
    pub(crate) fn feature(&self, field: &Field) -> Result<DataType> {
        let actual = self.column(&field.name, "feature")?;
        if ValueType::of_arrow(&actual).as_ref() != Some(&field.dtype) {
            return Err(self.bad(format!(
                "declares {} as {}, but {} has {actual}",
                field.name, field.dtype, self.source
            )));
        }
        Ok(actual)
    }
}
