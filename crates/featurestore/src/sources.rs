//! Opening a feature view's stored [`SourceSpec`] as a live [`DataSource`](trainstore_core::DataSource).

use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use trainstore_core::{
    DataSourceRef, EnvConfig, Error, MountTable, Result, StorageOptions, expand_references,
};
use trainstore_doris::flight::{FlightOptions, FlightSource};
use trainstore_doris::{DorisSource, FileFormat, FileSource, ParquetSource, ReadOptions};

use crate::definitions::{FeatureView, Field, SourceSpec, ValueType};

/// What opening a source needs from its surroundings: where mounts point and store options.
#[derive(Debug, Clone, Default)]
pub struct SourceEnv {
    pub mounts: MountTable,
    pub options: StorageOptions,
}

impl SourceEnv {
    /// Opens `view`'s source. Typed Parquet files get the view's timestamp field as their
    /// time column; `${VARIABLE}` references in a Doris URL are read from the environment.
    pub async fn open(&self, view: &FeatureView) -> Result<DataSourceRef> {
        Ok(match &view.source {
            SourceSpec::Files {
                location,
                format,
                snapshots: Some(schema),
            } => {
                let format = format.as_deref().map(FileFormat::parse).transpose()?;
                Arc::new(
                    FileSource::open(
                        &self.mounts,
                        location,
                        &self.options,
                        format,
                        schema.clone(),
                        false,
                    )
                    .await?,
                )
            }
            SourceSpec::Files {
                location,
                snapshots: None,
                ..
            } => Arc::new(
                ParquetSource::open(
                    &self.mounts,
                    location,
                    &self.options,
                    Some(&view.timestamp_field),
                )
                .await?,
            ),
            SourceSpec::Doris {
                url,
                table,
                flight_url: Some(flight),
                snapshots,
            } => {
                let url = expand_references(url, &EnvConfig)?;
                Arc::new(
                    FlightSource::connect_with_mysql_url(
                        flight,
                        &url,
                        table,
                        snapshots.clone(),
                        FlightOptions::default(),
                    )
                    .await?,
                )
            }
            SourceSpec::Doris {
                flight_url: None, ..
            } => self.open_pushdown(view).await?,
        })
    }

    /// Opens `view`'s source for joins run by the database: Doris (or a MySQL-protocol
    /// server) read over the MySQL protocol.
    pub async fn open_pushdown(&self, view: &FeatureView) -> Result<DataSourceRef> {
        match &view.source {
            SourceSpec::Doris {
                url,
                table,
                flight_url: None,
                snapshots,
            } => {
                let url = expand_references(url, &EnvConfig)?;
                Ok(Arc::new(
                    DorisSource::connect(&url, table, snapshots.clone(), ReadOptions::default())
                        .await?,
                ))
            }
            _ => Err(Error::NotSupported {
                operation: "the pushdown engine",
                implementer: format!(
                    "feature view {}, whose source is not a Doris table read over the MySQL protocol",
                    view.name
                ),
            }),
        }
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
                    "its {role} {name:?} is not a column of {} (columns: {})",
                    self.source,
                    columns.join(", ")
                ))
            })
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
