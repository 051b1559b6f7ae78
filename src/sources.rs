//! The source factories this package registers with the feature store: files on a mount
//! (snapshot files parsed, or typed Parquet) and Doris (Flight SQL where the spec names a
//! Flight endpoint, the MySQL protocol otherwise).

use std::sync::Arc;

use async_trait::async_trait;
use trainstore_core::{
    DataSourceRef, EnvConfig, OpenContext, Result, SourceFactories, SourceFactory, SourceKind,
    SourceSpec, expand_references,
};
use trainstore_doris::flight::{FlightOptions, FlightSource};
use trainstore_doris::{DorisSource, FileFormat, FileSource, ParquetSource, ReadOptions};

/// Every kind of source this package can open: files on a mount (snapshot files, parsed; or
/// typed Parquet) and Doris tables (over the MySQL protocol or Arrow Flight SQL).
pub fn source_factories() -> SourceFactories {
    let built_in: Arc<BuiltInSources> = Arc::new(BuiltInSources);
    SourceFactories::default()
        .with(SourceKind::Files, built_in.clone())
        .with(SourceKind::Doris, built_in)
}

/// Opens every kind of [`SourceSpec`]:
/// - files on a mount, parsed as snapshots where the spec gives their schema, read as typed
///   Parquet (the context's time column as their time) where it does not;
/// - a Doris table, over Flight SQL where the spec names a Flight endpoint, over the MySQL
///   protocol (which can also answer point-in-time joins itself) where it does not, with
///   `${VARIABLE}` references in the URL read from the environment.
struct BuiltInSources;

#[async_trait]
impl SourceFactory for BuiltInSources {
    async fn open(&self, spec: &SourceSpec, context: OpenContext<'_>) -> Result<DataSourceRef> {
        Ok(match spec {
            SourceSpec::Files {
                location,
                format,
                snapshots: Some(schema),
            } => {
                let format = format.as_deref().map(FileFormat::parse).transpose()?;
                Arc::new(
                    FileSource::open(
                        context.mounts,
                        location,
                        context.options,
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
                    context.mounts,
                    location,
                    context.options,
                    Some(context.time_column),
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
