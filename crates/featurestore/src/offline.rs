//! The offline store: a view's rows copied into the workspace, for joins that need not read
//! (or decode) the source again.
//!
//! Each `ingest` of a time range writes one immutable segment, an Arrow IPC file sorted by
//! join keys, event time and source order, and commits a catalog version (item
//! `offline-<view>`) listing every segment with the range it covers and the view definition
//! it was ingested under. A request is answered from the segments when they cover the time
//! span it needs and the view is unchanged; otherwise from the source. Segments are read
//! without decoding (IPC buffers are used in place), so the join only picks rows.
//!
//! Ranges never overlap: a range already ingested, in whole or part, is refused, so no row is
//! stored twice.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, UInt64Array};
use arrow::buffer::Buffer;
use arrow::compute::{SortColumn, concat_batches, lexsort_to_indices, take_record_batch};
use arrow::datatypes::SchemaRef;
use arrow::ipc::reader::{FileDecoder, read_footer_length};
use arrow::ipc::writer::FileWriter;
use arrow::ipc::{self, root_as_footer};
use async_trait::async_trait;
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use trainstore_core::catalog::{CommitMode, FileEntry, NewVersion};
use trainstore_core::{
    Catalog, DataSource, DataSourceRef, DatasetName, Error, Filter, RecordBatchStream, Result,
    Scalar, ScanRequest, TimeRange, Timestamp, UserName, Version, apply_filters,
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

/// A version's metadata: the view as ingested and its segments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Layout {
    view: FeatureView,
    segments: Vec<Segment>,
}

fn item(view: &FeatureView) -> Result<DatasetName> {
    DatasetName::new(format!("offline-{}", view.name))
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
    ) -> Result<Ingested> {
        let view = &selection.view;
        let current = self.layout(view).await?;
        let (base, mut segments) = match current {
            Some((v, layout)) if layout.view == *view => (Some(v), layout.segments),
            Some((v, _)) => (Some(v), Vec::new()),
            None => (None, Vec::new()),
        };
        if let Some(s) = segments.iter().find(|s| overlaps(&s.range, &range)) {
            return Err(Error::invalid(
                "ingest range",
                range.to_string(),
                format!(
                    "overlaps {}, already ingested for view {}",
                    s.range, view.name
                ),
            ));
        }
        let batches: Vec<RecordBatch> = source
            .scan(&selection.scan_request(Some(range)))
            .await?
            .try_collect()
            .await?;
        let schema = match batches.first() {
            Some(b) => b.schema(),
            None => source_schema(selection, source).await?,
        };
        let sorted = sort_for_join(selection, &schema, &batches)?;
        let rows = sorted.num_rows() as u64;
        let file = self
            .catalog
            .put_file(&item(view)?, "segment.arrow", write_ipc(&sorted)?.into())
            .await?;
        segments.push(Segment { file, range, rows });
        segments.sort_by_key(|s| s.range.start());
        let count = segments.len();
        let layout = Layout {
            view: view.clone(),
            segments,
        };
        let mut new = NewVersion::new(author.clone());
        new.files = layout.segments.iter().map(|s| s.file.clone()).collect();
        new.metadata = serde_json::to_value(&layout).expect("layout serializes");
        new.mode = CommitMode::OnTopOf(base);
        let manifest = self.catalog.commit(&item(view)?, new).await?;
        tracing::info!(view = %view.name, %range, rows, version = %manifest.version, "ingested");
        Ok(Ingested {
            view: view.name.to_string(),
            version: manifest.version.get(),
            range,
            rows,
            segments: count,
        })
    }

    /// The segments that hold every row of `view` that `needed` asks for, as a source, if
    /// the store covers it under the view's current definition.
    pub(crate) async fn covering(
        &self,
        view: &FeatureView,
        needed: NeededSpan,
    ) -> Result<Option<DataSourceRef>> {
        let needed = match needed {
            NeededSpan::Range(range) => range,
            // Without a TTL any row may match: only the source has them all.
            NeededSpan::Unbounded | NeededSpan::Nothing => return Ok(None),
        };
        let Some((version, layout)) = self.layout(view).await? else {
            return Ok(None);
        };
        if layout.view != *view {
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
                return Ok(Some(Arc::new(
                    SegmentSource::load(&self.catalog, view, version, &layout).await?,
                )));
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

/// Rows sorted by join keys, then event time, then source order (so full ties keep the order
/// the join's "last row wins" rule reads).
fn sort_for_join(
    selection: &ViewSelection,
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<RecordBatch> {
    let all = concat_batches(schema, batches)?;
    let order: ArrayRef = Arc::new(UInt64Array::from_iter_values(0..all.num_rows() as u64));
    let mut columns: Vec<SortColumn> = (0..=selection.join_keys.len())
        .map(|i| SortColumn {
            values: all.column(i).clone(),
            options: None,
        })
        .collect();
    columns.push(SortColumn {
        values: order,
        options: None,
    });
    let indices = lexsort_to_indices(&columns, None)?;
    Ok(take_record_batch(&all, &indices)?)
}

fn write_ipc(batch: &RecordBatch) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut writer = FileWriter::try_new(&mut out, batch.schema_ref())?;
    let mut offset = 0;
    while offset < batch.num_rows() {
        let len = SEGMENT_BATCH_ROWS.min(batch.num_rows() - offset);
        writer.write(&batch.slice(offset, len))?;
        offset += len;
    }
    writer.finish()?;
    drop(writer);
    Ok(out)
}

/// A segment file's bytes: mapped into memory from a local disk, so that only the pages the
/// join touches are read and nothing is copied; read whole from any other store.
async fn segment_bytes(catalog: &Catalog, entry: &FileEntry) -> Result<Buffer> {
    let Some(path) = catalog.local_path(entry) else {
        return Ok(Buffer::from(catalog.read_file(entry).await?));
    };
    let file = std::fs::File::open(&path).map_err(|e| Error::Corrupt {
        path: entry.path.clone(),
        reason: format!("cannot open the segment: {e}"),
    })?;
    // SAFETY: catalog data files are written once under a unique name and never modified,
    // truncated or deleted while a version lists them, so the mapping stays valid and
    // unchanged for as long as the `Mmap` (kept alive by the buffers) exists.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::Corrupt {
        path: entry.path.clone(),
        reason: format!("cannot map the segment: {e}"),
    })?;
    if map.len() as u64 != entry.size {
        return Err(Error::Corrupt {
            path: entry.path.clone(),
            reason: format!("{} bytes, the version lists {}", map.len(), entry.size),
        });
    }
    let map = Arc::new(map);
    let Some(start) = std::ptr::NonNull::new(map.as_ptr().cast_mut()) else {
        return Err(Error::Corrupt {
            path: entry.path.clone(),
            reason: "empty segment".into(),
        });
    };
    // SAFETY: `start` points to `map.len()` initialised, immutable bytes owned by `map`, which
    // the buffer keeps alive.
    Ok(unsafe { Buffer::from_custom_allocation(start, map.len(), map) })
}

/// Decodes an IPC file in place: the batches' buffers are slices of `buffer`, not copies.
fn read_ipc(buffer: Buffer, path: &str) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let corrupt = |reason: String| Error::Corrupt {
        path: path.to_owned(),
        reason,
    };
    if buffer.len() < 10 {
        return Err(corrupt("too short for an Arrow IPC file".into()));
    }
    let trailer = buffer.len() - 10;
    let footer_len = read_footer_length(buffer[trailer..].try_into().expect("10 bytes"))?;
    let footer = root_as_footer(&buffer[trailer.saturating_sub(footer_len)..trailer])
        .map_err(|e| corrupt(e.to_string()))?;
    let schema = Arc::new(ipc::convert::try_fb_to_schema(
        footer.schema().ok_or_else(|| corrupt("no schema".into()))?,
    )?);
    let decoder = FileDecoder::new(schema.clone(), footer.version());
    let mut batches = Vec::new();
    for block in footer.recordBatches().into_iter().flatten() {
        let len = block.bodyLength() as usize + block.metaDataLength() as usize;
        let data = buffer.slice_with_length(block.offset() as usize, len);
        batches.extend(decoder.read_record_batch(block, &data)?);
    }
    Ok((schema, batches))
}

/// A view's ingested segments as a [`DataSource`]: batches in segment order, then key and
/// time order.
#[derive(Debug)]
struct SegmentSource {
    describe: String,
    schema: SchemaRef,
    time_column: String,
    batches: Vec<RecordBatch>,
}

impl SegmentSource {
    async fn load(
        catalog: &Catalog,
        view: &FeatureView,
        version: Version,
        layout: &Layout,
    ) -> Result<Self> {
        let mut batches = Vec::new();
        let mut schema = None;
        for s in &layout.segments {
            let file = read_ipc(segment_bytes(catalog, &s.file).await?, &s.file.path)?;
            schema.get_or_insert(file.0);
            batches.extend(file.1);
        }
        Ok(SegmentSource {
            describe: format!("offline store of view {} (v{version})", view.name),
            schema: schema.ok_or_else(|| Error::Corrupt {
                path: format!("offline-{}@{version}", view.name),
                reason: "no segments".into(),
            })?,
            time_column: view.timestamp_field.clone(),
            batches,
        })
    }
}

#[async_trait]
impl DataSource for SegmentSource {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    async fn schema(&self) -> Result<SchemaRef> {
        Ok(self.schema.clone())
    }

    async fn scan(&self, request: &ScanRequest) -> Result<RecordBatchStream> {
        let mut filters = request.filters.clone();
        if let Some(range) = &request.time_range {
            filters.push(Filter::range(
                self.time_column.clone(),
                std::ops::Bound::Included(Scalar::Timestamp(range.start())),
                std::ops::Bound::Excluded(Scalar::Timestamp(range.end())),
            ));
        }
        let projection: Option<Vec<usize>> = request
            .projection
            .as_ref()
            .map(|names| {
                names
                    .iter()
                    .map(|n| {
                        self.schema.index_of(n).map_err(|_| {
                            Error::invalid("projected column", n, "not a column of the segments")
                        })
                    })
                    .collect::<Result<_>>()
            })
            .transpose()?;
        let mut out = Vec::new();
        for b in &self.batches {
            let b = apply_filters(b, &filters)?;
            let b = match &projection {
                Some(p) => b.project(p)?,
                None => b,
            };
            if b.num_rows() > 0 {
                out.push(Ok(b));
            }
        }
        Ok(Box::pin(futures::stream::iter(out)))
    }
}
