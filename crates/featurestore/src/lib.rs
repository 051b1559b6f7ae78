//! The feature store: Feast's model of entities and feature views, kept in a versioned
//! registry inside a workspace, with point-in-time-correct historical retrieval.
//!
//! - [`definitions`]: [`Entity`], [`FeatureView`], [`FeatureService`], [`FeatureRef`], and
//!   [`Definitions`] (a YAML file's worth).
//! - [`registry`]: every state of the definitions as a catalog version; [`Plan`]s.
//! - [`store`]: [`FeatureStore`], apply / plan / history / rollback and retrieval.
//! - [`derived`]: on-demand features, expressions over other views' features.
//! - [`historical`]: the point-in-time join over any [`trainstore_core::DataSource`].
//! - `offline`: ingested, sorted copies of views' rows that joins read instead of sources.
//! - [`online`]: materialization into an [`OnlineStore`] (embedded `redb` file or Redis) and
//!   online reads.
//! - [`sources`]: opening a view's stored source description.
//!
//! The join's rules are Feast's reference semantics, written down with our decisions in
//! `docs/point-in-time.md`: inclusive TTL bounds, the whole latest row wins,
//! ties go to the created timestamp and then to the row last in source order, unmatched rows
//! are kept with nulls, and output rows keep the entity rows' order.

pub mod definitions;
pub mod derived;
pub mod historical;
mod join;
mod offline;
pub mod online;
pub mod registry;
pub mod sources;
pub mod store;
pub mod training;

pub use definitions::{
    Definition, Definitions, DerivedFeature, Entity, FeatureRef, FeatureService, FeatureView,
    Field, Name, OnDemandFeatureView, SourceSpec, Ttl, ValueType,
};
pub use historical::{
    Engine, HistoricalOptions, JoinSource, ViewRequest, ViewSelection, get_historical_features,
    group_by_view,
};
pub use offline::Ingested;
pub use online::{
    EmbeddedOnlineStore, Materialized, OnlineStore, OnlineStoreRef, RedisOnlineStore, RowVisitor,
    TtlPolicy, open_online_store,
};
pub use registry::{Change, Plan, PlannedChange, REGISTRY_ITEM, Registry, RegistryVersion};
pub use sources::SourceEnv;
pub use store::{
    Applied, FeatureStore, HistoricalAnswer, OnlineOptions, PARSE_COUNTS_METADATA, SOURCES_METADATA,
};
