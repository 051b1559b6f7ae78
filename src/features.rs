//! The design document's feature definitions: a `device` entity keyed by `uuid` and
//! `nodeId`, and the two views over its snapshots, `basic_features` (the numbers) and
//! `array_features` (the spectra), both valid for 30 days, and `vibration_stats`, statistics of
//! the spectra computed on demand.

use trainstore_core::Result;
use trainstore_doris::{FeatureKind, SnapshotSchema};
use trainstore_featurestore::{
    Definitions, Entity, FeatureView, Field, Name, OnDemandFeatureView, SourceSpec, Ttl, ValueType,
};

/// The design document's entity and two feature views over snapshot files at `location`
/// (design-document layout), plus on-demand statistics of the spectra.
///
/// ```
/// let defs = trainstore::features::design_doc_definitions("./snapshots").unwrap();
/// assert_eq!(defs.feature_views[0].name.as_str(), "basic_features");
/// assert_eq!(defs.feature_views[1].schema[0].name, "peakPowers");
/// assert_eq!(defs.on_demand_feature_views[0].features[0].name, "peak_power_mean");
/// ```
pub fn design_doc_definitions(location: &str) -> Result<Definitions> {
    let schema = SnapshotSchema::design_doc();
    let source = SourceSpec::Files {
        location: location.to_owned(),
        format: None,
        snapshots: Some(schema.clone()),
    };
    let fields = |kind: FeatureKind, dtype: ValueType| -> Vec<Field> {
        schema
            .features()
            .iter()
            .filter(|f| f.kind == kind)
            .map(|f| Field::new(&f.name, dtype.clone()))
            .collect()
    };
    let device = Name::new("device")?;
    let view = |name: &str, schema: Vec<Field>| -> Result<FeatureView> {
        Ok(FeatureView::new(
            Name::new(name)?,
            vec![device.clone()],
            source.clone(),
            schema,
        )
        .with_timestamp_field(SnapshotSchema::design_doc().time())
        .with_ttl(Ttl::days(30)))
    };
    Ok(Definitions {
        entities: vec![Entity::new(device.clone(), schema.keys().iter().cloned())],
        feature_views: vec![
            view(
                "basic_features",
                fields(FeatureKind::Number, ValueType::Float64),
            )?,
            view(
                "array_features",
                fields(
                    FeatureKind::Array,
                    ValueType::List(Box::new(ValueType::Float32)),
                ),
            )?,
        ],
        on_demand_feature_views: vec![OnDemandFeatureView::new(
            Name::new("vibration_stats")?,
            [
                ("peak_power_mean", "mean(array_features:peakPowers)"),
                ("peak_power_max", "max(array_features:peakPowers)"),
                ("dominant_peak", "argmax(array_features:peakPowers)"),
                ("spectrum_energy", "energy(array_features:bandSpectrum)"),
                (
                    "low_band_ratio",
                    "band_ratio(array_features:bandSpectrum, 0, 8)",
                ),
                (
                    "hf_lf_ratio",
                    "basic_features:meanHf / basic_features:meanLf",
                ),
            ],
        )?],
        feature_services: Vec::new(),
    })
}
