//! The checks definitions pass on their own, before any source is read: unique names, entities
//! and views that exist, join keys, on-demand expressions over known features, feature
//! references that resolve.

use std::collections::HashSet;

use trainstore_core::{Error, Result};

use super::{Definitions, FeatureRef, FeatureView, Field, Name, OnDemandFeatureView};

impl Definitions {
    /// The join keys of a view: its entities' keys in declaration order.
    pub fn join_keys(&self, view: &FeatureView) -> Result<Vec<String>> {
        let mut keys: Vec<String> = Vec::new();
        for name in &view.entities {
            let entity = self.entity(name.as_str()).ok_or_else(|| {
                Error::invalid(
                    "feature view",
                    view.name.as_str(),
                    format!("unknown entity \"{name}\" (apply it with the view, or first)"),
                )
            })?;
            for k in &entity.join_keys {
                if !keys.contains(k) {
                    keys.push(k.clone());
                }
            }
        }
        Ok(keys)
    }

    pub(super) fn check_unique(&self) -> Result<()> {
        fn unique<'a>(kind: &'static str, names: impl Iterator<Item = &'a Name>) -> Result<()> {
            let mut seen = HashSet::new();
            for n in names {
                if !seen.insert(n) {
                    return Err(Error::invalid(
                        kind,
                        n.as_str(),
                        "defined twice in the same set of definitions",
                    ));
                }
            }
            Ok(())
        }
        unique("entity", self.entities.iter().map(|e| &e.name))?;
        // References name views of both kinds alike, so they share one namespace.
        unique(
            "feature view",
            self.feature_views
                .iter()
                .map(|v| &v.name)
                .chain(self.on_demand_feature_views.iter().map(|v| &v.name)),
        )?;
        unique(
            "feature service",
            self.feature_services.iter().map(|s| &s.name),
        )
    }

    /// Checks everything that needs only the definitions: unique names, known entities,
    /// well-formed views and services whose references resolve.
    pub fn validate(&self) -> Result<()> {
        self.check_unique()?;
        for e in &self.entities {
            if e.join_keys.is_empty() {
                return Err(Error::invalid(
                    "entity",
                    e.name.as_str(),
                    "needs at least one join key",
                ));
            }
            if let Some(k) = e.join_keys.iter().find(|k| k.is_empty()) {
                return Err(Error::invalid(
                    "entity",
                    e.name.as_str(),
                    format!("empty join key {k:?}"),
                ));
            }
            if let Some(k) = e
                .join_keys
                .iter()
                .enumerate()
                .find_map(|(i, k)| e.join_keys[..i].contains(k).then_some(k))
            {
                return Err(Error::invalid(
                    "entity",
                    e.name.as_str(),
                    format!("join key {k:?} is listed twice"),
                ));
            }
        }
        for v in &self.feature_views {
            self.validate_view(v)?;
        }
        for v in &self.on_demand_feature_views {
            self.validate_on_demand(v)?;
        }
        for s in &self.feature_services {
            if s.features.is_empty() {
                return Err(Error::invalid(
                    "feature service",
                    s.name.as_str(),
                    "names no features",
                ));
            }
            for r in &s.features {
                self.check_ref(r).map_err(|e| {
                    Error::invalid("feature service", s.name.as_str(), e.to_string())
                })?;
            }
        }
        Ok(())
    }

    fn validate_view(&self, v: &FeatureView) -> Result<()> {
        let bad = |reason: String| Err(Error::invalid("feature view", v.name.as_str(), reason));
        if v.entities.is_empty() {
            return bad("needs at least one entity".into());
        }
        let longest = trainstore_core::ids::MAX_NAME_LEN - crate::offline::ITEM_PREFIX.len();
        if v.name.as_str().len() > longest {
            return bad(format!(
                "the name is {} characters; a feature view's name has at most {longest}, so \
                 that its offline store ({}<name>) can be named too",
                v.name.as_str().len(),
                crate::offline::ITEM_PREFIX
            ));
        }
        if !(1..=super::MAX_ONLINE_ROWS).contains(&v.online_rows) {
            return bad(format!(
                "online_rows is {}: it keeps 1 to {} rows per entity online",
                v.online_rows,
                super::MAX_ONLINE_ROWS
            ));
        }
        if v.online_rows > 1 && !v.online {
            return bad(format!(
                "online_rows is {} but the view is not served online (online: false)",
                v.online_rows
            ));
        }
        let keys = self.join_keys(v)?;
        if v.timestamp_field.is_empty() {
            return bad("the timestamp field is empty".into());
        }
        let mut seen = HashSet::new();
        for f in &v.schema {
            if f.name.is_empty() {
                return bad("a field has an empty name".into());
            }
            if !seen.insert(f.name.as_str()) {
                return bad(format!("field {:?} is declared twice", f.name));
            }
            if keys.contains(&f.name)
                || f.name == v.timestamp_field
                || v.created_timestamp_field.as_deref() == Some(f.name.as_str())
            {
                return bad(format!(
                    "field {:?} is a join key or timestamp, not a feature",
                    f.name
                ));
            }
        }
        v.source.validate(v.name.as_str())
    }

    fn validate_on_demand(&self, v: &OnDemandFeatureView) -> Result<()> {
        let bad = |reason: String| {
            Err(Error::invalid(
                "on-demand feature view",
                v.name.as_str(),
                reason,
            ))
        };
        if v.features.is_empty() {
            return bad("derives no features".into());
        }
        let mut seen = HashSet::new();
        for f in &v.features {
            if f.name.is_empty() || !seen.insert(f.name.as_str()) {
                return bad(format!("feature name {:?} is empty or repeated", f.name));
            }
            if let Err(e) = f
                .expression
                .check(&|r| self.resolve(r).map(|(_, field)| field.dtype.clone()))
            {
                return bad(format!("feature {}: {e}", f.name));
            }
        }
        Ok(())
    }

    /// Checks that a reference names a feature of a view of either kind.
    pub fn check_ref(&self, r: &FeatureRef) -> Result<()> {
        match self.on_demand_feature_view(r.view.as_str()) {
            Some(v) if v.feature(&r.feature).is_none() => Err(Error::NotFound {
                what: "feature",
                name: format!(
                    "{r} (the on-demand view has: {})",
                    v.features
                        .iter()
                        .map(|f| f.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }),
            Some(_) => Ok(()),
            None => self.resolve(r).map(|_| ()),
        }
    }

    /// The view and field a reference names.
    pub fn resolve(&self, r: &FeatureRef) -> Result<(&FeatureView, &Field)> {
        let view = self
            .feature_view(r.view.as_str())
            .ok_or_else(|| Error::NotFound {
                what: "feature view",
                name: r.view.to_string(),
            })?;
        let field = view.field(&r.feature).ok_or_else(|| Error::NotFound {
            what: "feature",
            name: format!(
                "{r} (the view has: {})",
                view.schema
                    .iter()
                    .map(|f| f.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })?;
        Ok((view, field))
    }
}
