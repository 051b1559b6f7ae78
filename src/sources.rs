//! The source factories this package registers with the feature store: files on a mount
//! (snapshot files parsed, or typed Parquet) and Doris (Flight SQL where the spec names a
//! Flight endpoint, the MySQL protocol otherwise).

use std::sync::Arc;

use async_trait::async_trait;
use trainstore_core::{
    DataSourceRef, EnvConfig, OpenContext, Result, Secret, SourceFactories, SourceFactory,
    SourceKind, SourceSpec, expand_references,
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

/// A database URL as given, its `${VARIABLE}` references (a password, say) replaced by the
/// environment's values: how every Doris URL is read, from a definitions file, the CLI or
/// Python, so one written for the registry works everywhere.
///
/// ```
/// // SAFETY: a doctest is its own process, and no other thread reads the environment here.
/// unsafe { std::env::set_var("EXAMPLE_PASSWORD", "s3cret") };
/// let url = trainstore::sources::database_url("mysql://ana:${EXAMPLE_PASSWORD}@fe:9030/db")?;
/// assert_eq!(url.expose(), "mysql://ana:s3cret@fe:9030/db");
/// # Ok::<_, trainstore::Error>(())
/// ```
pub fn database_url(text: &str) -> Result<Secret> {
    expand_references(text, &EnvConfig)
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
                let url = database_url(url)?;
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
