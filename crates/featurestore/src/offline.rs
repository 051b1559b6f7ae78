//! The offline store: a view's rows copied into the workspace, for joins that need not read
//! (or decode) the source again.
//!
//! Each `ingest` of a time range writes immutable segments, one per time partition of about
//! [`PART_BYTES`] (so an ingest holds one partition in memory, whatever the range's size),
//! each an Arrow IPC file sorted by join keys, event time and source order, and commits a
//! catalog version (item `offline-<view>`) listing every segment with the range it covers and
//! the view definition it was ingested under. A request is answered from the segments when
//! they cover the time span it needs and the view is unchanged; otherwise from the source.
//! Segments are read without decoding (IPC buffers are used in place), so the join only picks
//! rows.
//!
//! Ranges never overlap: a range already ingested, in whole or part, is refused, so no row is
//! stored twice.

mod reader;
mod writer;

use reader::segments_of;
use writer::{PART_BYTES, write_partitions};

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use serde::{Deserialize, Serialize};
use trainstore_core::VersionStore as _;
use trainstore_core::catalog::{CommitMode, FileEntry, NewVersion};
use trainstore_core::{
    Catalog, DataSourceRef, DatasetName, Error, Progress, Result, TimeRange, Timestamp, UserName,
    Version,
};

use crate::definitions::FeatureView;
use crate::historical::{NeededSpan, ViewSelection};

/// Rows per record batch in a segment: the join's unit of work.
const SEGMENT_BATCH_ROWS: usize = 65_536;

/// What one ingest did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ingested {
    pub view: String,
    /// The catalog version of `offline-<view>` now listing the new segment.
    pub version: u64,
    pub range: TimeRange,
    pub rows: u64,
    /// Segments of the view after this ingest.
    pub segments: usize,
}

/// One segment as a version records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Segment {
    file: FileEntry,
    range: TimeRange,
    rows: u64,
}

/// A version's metadata: the view as ingested, the join keys its entities had, and its
/// segments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Layout {
    view: FeatureView,
    /// Absent in versions written before keys were recorded; those are trusted to match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    join_keys: Option<Vec<String>>,
    segments: Vec<Segment>,
}

impl Layout {
    /// Whether the segments hold rows of `selection`'s view as it is defined now: the same
    /// view, keyed by the same join keys (an entity's keys may change without its views).
    fn serves(&self, selection: &ViewSelection) -> bool {
        self.view == selection.view
            && self
                .join_keys
                .as_ref()
                .is_none_or(|keys| *keys == selection.join_keys)
    }
}

/// What the catalog item of a view's offline store is named: this prefix, then the view's.
pub(crate) const ITEM_PREFIX: &str = "offline-";

fn item(view: &FeatureView) -> Result<DatasetName> {
    DatasetName::new(format!("{ITEM_PREFIX}{}", view.name))
}

/// The offline store of one workspace catalog.
#[derive(Debug, Clone)]
pub(crate) struct OfflineStore {
    catalog: Catalog,
}

impl OfflineStore {
    pub(crate) fn new(catalog: Catalog) -> Self {
        OfflineStore { catalog }
    }

    async fn layout(&self, view: &FeatureView) -> Result<Option<(Version, Layout)>> {
        let name = item(view)?;
        let Some(manifest) = self.catalog.latest(&name).await? else {
            return Ok(None);
        };
        let layout: Layout =
            serde_json::from_value(manifest.metadata).map_err(|e| Error::Corrupt {
                path: format!("{name}@{}", manifest.version),
                reason: format!("not an offline-store version: {e}"),
            })?;
        Ok(Some((manifest.version, layout)))
    }

    /// Copies `selection`'s rows with event times in `range` from `source` into a new
    /// segment. Ingesting under a changed view definition starts the store afresh.
    pub(crate) async fn ingest(
        &self,
        selection: &ViewSelection,
        source: &DataSourceRef,
        range: TimeRange,
        author: &UserName,
        progress: &dyn Progress,
    ) -> Result<Ingested> {
        let view = &selection.view;
        // Checked before the rows are copied, and again at each commit attempt.
        self.plan_ingest(selection, &[], &range).await?;
        let parts = write_partitions(
            &self.catalog,
            view,
            selection,
            source,
            range,
            PART_BYTES,
            progress,
        )
        .await?;
        let rows: u64 = parts.iter().map(|s| s.rows).sum();
        let committed = self
            .catalog
            .retry_conflicts(|| async {
                // Another writer may have committed since: plan on what is there now.
                let (base, layout) = self.plan_ingest(selection, &parts, &range).await?;
                let mut new = NewVersion::new(author.clone());
                new.files = layout.segments.iter().map(|s| s.file.clone()).collect();
                new.metadata = serde_json::to_value(&layout).expect("layout serializes");
                new.mode = CommitMode::OnTopOf(base);
                let manifest = self.catalog.commit(&item(view)?, new).await?;
                Ok((manifest.version, layout.segments.len()))
            })
            .await;
        let (version, count) = match committed {
            Ok(done) => done,
            Err(e) => {
                // Nothing lists the segments: remove them rather than leave them to `gc`.
                for part in &parts {
                    self.catalog.remove_unlisted_file(&part.file).await;
                }
                return Err(e);
            }
        };
        tracing::info!(view = %view.name, %range, rows, %version, "ingested");
        Ok(Ingested {
            view: view.name.to_string(),
            version: version.get(),
            range,
            rows,
            segments: count,
        })
    }

    /// The version to build on and the layout that adds `parts` to it, or an error if `range`
    /// overlaps what is ingested already. Ingesting under a changed view definition starts
    /// afresh.
    async fn plan_ingest(
        &self,
        selection: &ViewSelection,
        parts: &[Segment],
        range: &TimeRange,
    ) -> Result<(Option<Version>, Layout)> {
        let view = &selection.view;
        let (base, mut segments) = match self.layout(&selection.view).await? {
            Some((v, layout)) if layout.serves(selection) => (Some(v), layout.segments),
            Some((v, _)) => (Some(v), Vec::new()),
            None => (None, Vec::new()),
        };
        if let Some(s) = segments.iter().find(|s| overlaps(&s.range, range)) {
            return Err(Error::invalid(
                "ingest range",
                range.to_string(),
                format!(
                    "overlaps {}, already ingested for view {}",
                    s.range, view.name
                ),
            ));
        }
        segments.extend(parts.iter().cloned());
        segments.sort_by_key(|s| s.range.start());
        Ok((
            base,
            Layout {
                view: view.clone(),
                join_keys: Some(selection.join_keys.clone()),
                segments,
            },
        ))
    }

    /// The segments that hold every row of `view` that `needed` asks for, as a source, if
    /// the store covers it under the view's current definition.
    pub(crate) async fn covering(
        &self,
        selection: &ViewSelection,
        needed: NeededSpan,
    ) -> Result<Option<DataSourceRef>> {
        let view = &selection.view;
        let needed = match needed {
            NeededSpan::Range(range) => range,
            // Without a TTL any row may match: only the source has them all.
            NeededSpan::Unbounded | NeededSpan::Nothing => return Ok(None),
        };
        let Some((version, layout)) = self.layout(view).await? else {
            return Ok(None);
        };
        if !layout.serves(selection) {
            return Ok(None);
        }
        // Segments are sorted by start: walk the contiguous span that holds needed's start.
        let mut span: Option<(Timestamp, Timestamp)> = None;
        for s in &layout.segments {
            span = match span {
                Some((start, end)) if s.range.start() <= end => {
                    Some((start, end.max(s.range.end())))
                }
                _ => Some((s.range.start(), s.range.end())),
            };
            if let Some((start, end)) = span
                && start <= needed.start()
                && end >= needed.end()
            {
                let source: DataSourceRef =
                    segments_of(&self.catalog, view, version, &layout).await?;
                return Ok(Some(source));
            }
        }
        Ok(None)
    }
}

fn overlaps(a: &TimeRange, b: &TimeRange) -> bool {
    a.start() < b.end() && b.start() < a.end()
}

async fn source_schema(selection: &ViewSelection, source: &DataSourceRef) -> Result<SchemaRef> {
    let all = source.schema().await?;
    let request = selection.scan_request(None);
    let names = request.projection.expect("selections project");
    let indices = names
        .iter()
        .map(|n| all.index_of(n))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(Arc::new(all.project(&indices)?))
}

#[cfg(test)]
mod tests {
    use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
    use arrow::buffer::Buffer;
    use arrow::datatypes::{DataType, Field as ArrowField, Schema};
    use trainstore_core::{MemorySource, MountTable, NoProgress, StorageOptions};

    use super::reader::read_ipc;
    use super::*;
    use crate::definitions::{Field, Name, SourceSpec, ValueType};

    /// Rows as (key, event time ms, value); the value is the row's source position.
    fn source(rows: &[(&str, i64)]) -> DataSourceRef {
        let schema = Arc::new(Schema::new(vec![
            ArrowField::new("uuid", DataType::Utf8, false),
            ArrowField::new("time", DataType::Int64, false),
            ArrowField::new("x", DataType::Float64, false),
        ]));
        let batches = rows
            .chunks(7)
            .enumerate()
            .map(|(c, chunk)| {
                let columns: Vec<ArrayRef> = vec![
                    Arc::new(chunk.iter().map(|r| Some(r.0)).collect::<StringArray>()),
                    Arc::new(chunk.iter().map(|r| r.1).collect::<Int64Array>()),
                    Arc::new(Float64Array::from_iter_values(
                        (0..chunk.len()).map(|i| (c * 7 + i) as f64),
                    )),
                ];
                RecordBatch::try_new(schema.clone(), columns).unwrap()
            })
            .collect();
        Arc::new(MemorySource::new(schema, batches, Some("time")).unwrap())
    }

    #[tokio::test]
    async fn small_partitions_hold_every_row_once_sorted_with_ties_together() {
        let dir = tempfile::tempdir().unwrap();
        let location = dir.path().to_str().unwrap();
        let resolved = MountTable::default()
            .resolve_with(location, &StorageOptions::new())
            .unwrap();
        let catalog = Catalog::open(resolved.store, &resolved.url).await.unwrap();
        let view = FeatureView::new(
            Name::new("basic").unwrap(),
            vec![Name::new("device").unwrap()],
            SourceSpec::Files {
                location: "unused".into(),
                format: None,
                snapshots: None,
            },
            vec![Field::new("x", ValueType::Float64)],
        );
        let selection = ViewSelection {
            view: view.clone(),
            join_keys: vec!["uuid".into()],
            features: view.schema.clone(),
        };
        // Out of time order, with a full tie (B at 30) and many rows at one time (40).
        let mut rows = vec![("B", 30), ("A", 50), ("B", 30), ("A", 10), ("C", 20)];
        rows.extend((0..12).map(|i| (["A", "B", "C"][i % 3], 40)));
        rows.extend([("C", 60), ("A", 20), ("B", 99), ("A", 5)]);
        let range = TimeRange::new(Timestamp::from_millis(0), Timestamp::from_millis(100)).unwrap();
        // A row is some tens of bytes: this asks for partitions of about two rows.
        let segments = write_partitions(
            &catalog,
            &view,
            &selection,
            &source(&rows),
            range,
            64,
            &NoProgress,
        )
        .await
        .unwrap();

        assert!(segments.len() > 4, "{} segments", segments.len());
        assert_eq!(segments.first().unwrap().range.start(), range.start());
        assert_eq!(segments.last().unwrap().range.end(), range.end());
        for pair in segments.windows(2) {
            assert_eq!(pair[0].range.end(), pair[1].range.start(), "contiguous");
        }
        let mut seen = Vec::new();
        for segment in &segments {
            let (_, batches) = read_ipc(
                Buffer::from(catalog.read_file(&segment.file).await.unwrap()),
                &segment.file.path,
            )
            .unwrap();
            let mut held: Vec<(String, i64, f64)> = Vec::new();
            for b in &batches {
                let keys = b.column(0).as_any().downcast_ref::<StringArray>().unwrap();
                let times = b.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
                let values = b.column(2).as_any().downcast_ref::<Float64Array>().unwrap();
                for i in 0..b.num_rows() {
                    held.push((keys.value(i).into(), times.value(i), values.value(i)));
                }
            }
            assert_eq!(held.len() as u64, segment.rows);
            let (start, end) = (
                segment.range.start().as_millis(),
                segment.range.end().as_millis(),
            );
            assert!(
                held.iter().all(|r| start <= r.1 && r.1 < end),
                "{held:?} in {start}..{end}"
            );
            let mut sorted = held.clone();
            // By key, time, then source position: full ties keep source order.
            sorted.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)).then(a.2.total_cmp(&b.2)));
            assert_eq!(held, sorted);
            seen.extend(held);
        }
        let mut expected: Vec<(String, i64, f64)> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| (r.0.to_string(), r.1, i as f64))
            .collect();
        expected.sort_by(|a, b| a.2.total_cmp(&b.2));
        seen.sort_by(|a, b| a.2.total_cmp(&b.2));
        assert_eq!(seen, expected, "every row exactly once");

        // A range without rows is still recorded, as one empty segment.
        let later =
            TimeRange::new(Timestamp::from_millis(100), Timestamp::from_millis(200)).unwrap();
        let empty = write_partitions(
            &catalog,
            &view,
            &selection,
            &source(&rows),
            later,
            64,
            &NoProgress,
        )
        .await
        .unwrap();
        assert_eq!(empty.len(), 1);
        assert_eq!((empty[0].range, empty[0].rows), (later, 0));
    }
}
