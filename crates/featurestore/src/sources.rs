//! Opening a feature view's stored [`SourceSpec`] as a live [`DataSource`].

use std::sync::Arc;

use trainstore_core::{
    DataSourceRef, EnvConfig, MountTable, Result, StorageOptions, expand_references,
};
use trainstore_doris::flight::{FlightOptions, FlightSource};
use trainstore_doris::{DorisSource, FileFormat, FileSource, ParquetSource, ReadOptions};

use crate::definitions::{FeatureView, SourceSpec};

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
                flight_url,
                snapshots,
            } => {
                let url = expand_references(url, &EnvConfig)?;
                match flight_url {
                    Some(flight) => Arc::new(
                        FlightSource::connect_with_mysql_url(
                            flight,
                            &url,
                            table,
                            snapshots.clone(),
                            FlightOptions::default(),
                        )
                        .await?,
                    ),
                    None => Arc::new(
                        DorisSource::connect(
                            &url,
                            table,
                            snapshots.clone(),
                            ReadOptions::default(),
                        )
                        .await?,
                    ),
                }
            }
        })
    }
}
