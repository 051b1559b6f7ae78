//! Where a field's values come from: a flat input column (text, or already typed), or the
//! members of the current JSON document.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field};
use trainstore_core::{Error, Result};

use super::builder::{Builder, Outcome};
use super::{TargetKind, shorten};
use crate::scan::Raw;
use trainstore_core::snapshot::FeatureKind;

/// A flat input column feeding one field: text parsed like document values, or values already
/// of a usable type, cast once.
pub(super) enum Input {
    Text(StringArray),
    Typed(ArrayRef),
}

impl Input {
    pub(super) fn from_column(name: &str, col: &ArrayRef, kind: TargetKind) -> Result<Self> {
        let target = match kind {
            TargetKind::Key => DataType::Utf8,
            TargetKind::Time => DataType::Int64,
            TargetKind::Feature(FeatureKind::Number) => DataType::Float64,
            TargetKind::Feature(FeatureKind::Bool) => DataType::Boolean,
            TargetKind::Feature(FeatureKind::Array) => {
                DataType::List(Arc::new(Field::new("item", DataType::Float32, true)))
            }
            TargetKind::Feature(FeatureKind::Json | FeatureKind::Text) => DataType::Utf8,
        };
        let ty = col.data_type();
        if matches!(
            ty,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
        ) {
            let text = cast(col, &DataType::Utf8)?;
            return Ok(Input::Text(
                text.as_any()
                    .downcast_ref::<StringArray>()
                    .expect("utf8")
                    .clone(),
            ));
        }
        let castable = match (kind, ty) {
            (TargetKind::Time, DataType::Timestamp(..)) => true,
            (TargetKind::Time, t) => t.is_integer(),
            (TargetKind::Feature(FeatureKind::Number), t) => t.is_numeric(),
            (TargetKind::Feature(FeatureKind::Bool), DataType::Boolean) => true,
            (
                TargetKind::Feature(FeatureKind::Array),
                DataType::List(f) | DataType::LargeList(f),
            ) => f.data_type().is_numeric(),
            (TargetKind::Key, t) => t.is_integer(),
            _ => false,
        };
        if !castable {
            return Err(Error::invalid(
                "snapshot column",
                name,
                format!("cannot read {ty} as {kind:?}"),
            ));
        }
        let typed = match (kind, ty) {
            // Same instant whatever the zone tag: take the epoch value in milliseconds.
            (TargetKind::Time, DataType::Timestamp(..)) => cast(
                &cast(
                    col,
                    &DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, None),
                )?,
                &DataType::Int64,
            )?,
            _ => cast(col, &target)?,
        };
        Ok(Input::Typed(typed))
    }

    pub(super) fn show(&self, row: usize) -> String {
        match self {
            Input::Text(a) if a.is_valid(row) => shorten(a.value(row)),
            Input::Typed(a) if a.is_valid(row) => {
                arrow::util::display::array_value_to_string(a, row)
                    .map(|s| shorten(&s))
                    .unwrap_or_default()
            }
            _ => "null".into(),
        }
    }

    pub(super) fn append(&self, row: usize, builder: &mut Builder) -> Outcome {
        match self {
            Input::Text(a) if a.is_valid(row) => builder.append_text(a.value(row)),
            Input::Typed(a) if a.is_valid(row) => builder.append_typed(a, row),
            _ => Outcome::Missing,
        }
    }
}

/// What one document yields before it goes into the builders; reused from row to row.
pub(super) struct DocumentRow<'a> {
    /// Raw values, by field.
    pub(super) cells: Vec<Option<Raw<'a>>>,
    /// Fields whose list was read straight into their builder, pending until the row ends.
    pub(super) parsed: Vec<bool>,
    /// Members that are not fields, for the unknown column.
    pub(super) unknown: Vec<(Raw<'a>, Raw<'a>)>,
    /// The field at each member position of the last document, tried first for the next.
    pub(super) key_order: Vec<Option<usize>>,
}

impl DocumentRow<'_> {
    pub(super) fn new(fields: usize) -> Self {
        DocumentRow {
            cells: vec![None; fields],
            parsed: vec![false; fields],
            unknown: Vec::new(),
            key_order: Vec::new(),
        }
    }

    /// Forgets everything read from the current document, including pending lists.
    pub(super) fn discard(&mut self, builders: &mut [Builder]) {
        for (i, parsed) in self.parsed.iter_mut().enumerate() {
            if std::mem::take(parsed) {
                builders[i].discard_pending();
            }
        }
        self.cells.fill(None);
        self.unknown.clear();
    }
}
