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

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, UInt32Array, UInt64Array};
use arrow::buffer::Buffer;
use arrow::compute::{SortColumn, concat_batches, lexsort_to_indices, take_record_batch};
use arrow::datatypes::SchemaRef;
use arrow::ipc::reader::{FileDecoder, StreamReader, read_footer_length};
use arrow::ipc::writer::{FileWriter, StreamWriter};
use arrow::ipc::{self, root_as_footer};
use async_trait::async_trait;
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use trainstore_core::VersionStore as _;
use trainstore_core::catalog::{CommitMode, FileEntry, NewVersion};
use trainstore_core::{
    Catalog, DataSource, DataSourceRef, DatasetName, Error, Filter, RecordBatchStream, Result,
    Scalar, ScanRequest, TimeRange, Timestamp, UserName, Version, apply_filters,
};

use crate::definitions::FeatureView;
use crate::historical::{NeededSpan, ViewSelection};
use crate::join::epoch_nanos;

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
    ) -> Result<Ingested> {
        let view = &selection.view;
        // Checked before the rows are copied, and again at each commit attempt.
        self.plan_ingest(selection, &[], &range).await?;
        let parts =
            write_partitions(&self.catalog, view, selection, source, range, PART_BYTES).await?;
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

/// The segments of `view`'s offline store `version`, mapped again only if they are not
/// among the recently used.
async fn segments_of(
    catalog: &Catalog,
    view: &FeatureView,
    version: Version,
    layout: &Layout,
) -> Result<Arc<SegmentSource>> {
    // Data file names are unique (random), so a workspace recreated at the same place never
    // finds the mappings of its predecessor.
    let key: SegmentsKey = (
        catalog.url().to_owned(),
        layout
            .segments
            .iter()
            .map(|s| s.file.path.clone())
            .collect(),
    );
    if let Some(source) = recently_mapped().get(&key) {
        return Ok(source);
    }
    let source = Arc::new(SegmentSource::load(catalog, view, version, layout).await?);
    let local = layout
        .segments
        .iter()
        .all(|s| catalog.local_path(&s.file).is_some());
    if local {
        let bytes = layout.segments.iter().map(|s| s.file.size).sum();
        recently_mapped().put(key, bytes, source.clone());
    }
    Ok(source)
}

/// A set of segments: its catalog, and its files' paths there.
type SegmentsKey = (String, Vec<String>);

/// Offline-store sources mapped from local segment files, least recently used first.
///
/// A notebook asks for training data again and again: mapping the segments anew faults their
/// pages into the process on every call and unmaps them after (a fifth of a warm 1M-row call)
/// and validates their buffers again. Segments never change once written, so a mapping can
/// be reused for as long as it is held. The pages are the kernel's page cache, not heap: the
/// cap bounds address space and open mappings.
#[derive(Default)]
struct RecentlyMapped {
    held: Vec<(SegmentsKey, u64, Arc<SegmentSource>)>,
}

/// Mapped segment bytes kept for reuse, at most.
const RECENTLY_MAPPED_BYTES: u64 = 16 << 30;

fn recently_mapped() -> std::sync::MutexGuard<'static, RecentlyMapped> {
    static HELD: std::sync::OnceLock<std::sync::Mutex<RecentlyMapped>> = std::sync::OnceLock::new();
    let held = HELD.get_or_init(Default::default);
    // A panic elsewhere while the list was held leaves it consistent: keep using it.
    held.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl RecentlyMapped {
    /// The source held for `key`, now the most recently used.
    fn get(&mut self, key: &SegmentsKey) -> Option<Arc<SegmentSource>> {
        let at = self.held.iter().position(|(k, _, _)| k == key)?;
        let entry = self.held.remove(at);
        let source = entry.2.clone();
        self.held.push(entry);
        Some(source)
    }

    /// Holds `source`, letting the least recently used go beyond the cap.
    fn put(&mut self, key: SegmentsKey, bytes: u64, source: Arc<SegmentSource>) {
        self.held.retain(|(k, _, _)| *k != key);
        self.held.push((key, bytes, source));
        let mut total: u64 = self.held.iter().map(|(_, b, _)| b).sum();
        while total > RECENTLY_MAPPED_BYTES && self.held.len() > 1 {
            total -= self.held.remove(0).1;
        }
    }
}

/// Copies the rows of `range` into segments of about `part_bytes` each, one per time
/// partition, holding one partition in memory at a time.
///
/// A first scan reads only the event times, to cut the range where partitions of that size
/// end; a second spills every row to a local file of its partition (under the system temp
/// directory, `TMPDIR`: it needs room for the range's rows), in source order; then
/// each partition is sorted for the join and written to the catalog. Partitions split at a
/// time, never between rows of equal times, so rows that tie stay in one segment, in source
/// order.
async fn write_partitions(
    catalog: &Catalog,
    view: &FeatureView,
    selection: &ViewSelection,
    source: &DataSourceRef,
    range: TimeRange,
    part_bytes: usize,
) -> Result<Vec<Segment>> {
    let times = event_millis(selection, source, range).await?;
    remove_dead_spills(&std::env::temp_dir());
    let spill_dir = tempfile::Builder::new()
        .prefix(&format!("{SPILL_PREFIX}{}-", std::process::id()))
        .tempdir()
        .map_err(|e| spill_error("create", &std::env::temp_dir(), e))?;
    let mut spill: Option<Spill> = None;
    let mut stream = source.scan(&selection.scan_request(Some(range))).await?;
    while let Some(batch) = stream.try_next().await? {
        let spill = match &mut spill {
            Some(s) => s,
            None => spill.insert(Spill::new(
                spill_dir.path(),
                &batch,
                &times,
                range,
                part_bytes,
            )),
        };
        let event = selection.split(&batch)?.event;
        spill.push(&batch, &event)?;
    }
    drop(stream);
    let parts = match spill {
        Some(spill) => spill.finish()?,
        // No rows: one empty segment still records the range as ingested.
        None => vec![TimePartition {
            range,
            schema: source_schema(selection, source).await?,
            file: None,
        }],
    };
    let mut segments = Vec::new();
    for part in parts {
        let sorted = sort_for_join(selection, &part.schema, &part.read()?)?;
        let file = catalog
            .put_file(&item(view)?, "segment.arrow", write_ipc(&sorted)?.into())
            .await?;
        segments.push(Segment {
            file,
            range: part.range,
            rows: sorted.num_rows() as u64,
        });
    }
    Ok(segments)
}

/// Bytes of source rows per segment: sorting one takes a few times this in memory.
const PART_BYTES: usize = 256 << 20;

/// The event times in `range`, whole milliseconds, sorted.
async fn event_millis(
    selection: &ViewSelection,
    source: &DataSourceRef,
    range: TimeRange,
) -> Result<Vec<i64>> {
    let field = &selection.view.timestamp_field;
    let request = ScanRequest {
        time_range: Some(range),
        projection: Some(vec![field.clone()]),
        ..Default::default()
    };
    let mut times = Vec::new();
    let mut stream = source.scan(&request).await?;
    while let Some(batch) = stream.try_next().await? {
        let nanos = epoch_nanos(batch.column(0), field)?;
        times.extend(nanos.iter().flatten().map(|t| t.div_euclid(1_000_000)));
    }
    times.sort_unstable();
    Ok(times)
}

/// Spill directories are named `<prefix><pid>-<random>`, so that one whose process is gone
/// can be told from one in use.
const SPILL_PREFIX: &str = "trainstore-ingest-";

/// Removes the spill directories under `temp` of ingests whose process no longer runs (killed
/// before its directory was dropped). Best effort: a directory that cannot be removed stays.
fn remove_dead_spills(temp: &Path) {
    let Ok(entries) = std::fs::read_dir(temp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let pid = name
            .to_str()
            .and_then(|n| n.strip_prefix(SPILL_PREFIX))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<libc::pid_t>().ok());
        if let Some(pid) = pid
            && pid > 0
            && !process_runs(pid)
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Whether process `pid` exists (a signal-0 probe: nothing is sent).
fn process_runs(pid: libc::pid_t) -> bool {
    // SAFETY: kill with signal 0 only checks that the process exists and may be signalled.
    let alive = unsafe { libc::kill(pid, 0) } == 0;
    alive || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// A local spill file could not be used.
fn spill_error(operation: &'static str, path: &Path, e: std::io::Error) -> Error {
    Error::Storage {
        operation,
        path: path.display().to_string(),
        source: trainstore_core::object_store::Error::Generic {
            store: "ingest spill",
            source: Box::new(e),
        },
    }
}

/// One time partition of an ingest: rows with event times in `range`, spilled to `file`
/// (none when no row fell in it).
struct TimePartition {
    range: TimeRange,
    schema: SchemaRef,
    file: Option<std::path::PathBuf>,
}

/// An ingest's rows spilled to local files, one per time partition, in source order.
struct Spill {
    /// Partition `p` holds event times (whole ms) in `bounds[p]..bounds[p + 1]`.
    bounds: Vec<i64>,
    files: Vec<(std::path::PathBuf, Option<StreamWriter<BufWriter<File>>>)>,
    schema: SchemaRef,
}

impl Spill {
    /// Partitions of about `part_bytes`, sized from `first`'s bytes per row and the sorted
    /// event `times`.
    fn new(
        dir: &Path,
        first: &RecordBatch,
        times: &[i64],
        range: TimeRange,
        part_bytes: usize,
    ) -> Self {
        let row_bytes = first.get_array_memory_size() / first.num_rows().max(1);
        let part_rows = (part_bytes / row_bytes.max(1)).max(1);
        let mut bounds = vec![range.start().as_millis()];
        for t in times.iter().step_by(part_rows).skip(1) {
            if *t > *bounds.last().expect("start") && *t < range.end().as_millis() {
                bounds.push(*t);
            }
        }
        bounds.push(range.end().as_millis());
        let files = (0..bounds.len() - 1)
            .map(|p| (dir.join(format!("part-{p}.arrows")), None))
            .collect();
        Spill {
            bounds,
            files,
            schema: first.schema(),
        }
    }

    /// Appends `batch`'s rows (event times `event`, epoch nanoseconds) to their partitions.
    fn push(&mut self, batch: &RecordBatch, event: &Int64Array) -> Result<()> {
        let mut rows: Vec<Vec<u32>> = vec![Vec::new(); self.files.len()];
        for (row, t) in event.iter().enumerate() {
            // A row without an event time can never be joined.
            let Some(t) = t else { continue };
            let ms = t.div_euclid(1_000_000);
            let part = self.bounds.partition_point(|b| *b <= ms).saturating_sub(1);
            rows[part.min(self.files.len() - 1)].push(row as u32);
        }
        for (p, picked) in rows.into_iter().enumerate() {
            if picked.is_empty() {
                continue;
            }
            let part = take_record_batch(batch, &UInt32Array::from(picked))?;
            let (path, writer) = &mut self.files[p];
            let writer = match writer {
                Some(w) => w,
                None => {
                    let file = File::create(&*path).map_err(|e| spill_error("write", path, e))?;
                    writer.insert(StreamWriter::try_new(BufWriter::new(file), &self.schema)?)
                }
            };
            writer.write(&part)?;
        }
        Ok(())
    }

    /// The partitions in time order, their files complete.
    fn finish(self) -> Result<Vec<TimePartition>> {
        let mut parts = Vec::with_capacity(self.files.len());
        for (p, (path, writer)) in self.files.into_iter().enumerate() {
            let file = match writer {
                Some(mut w) => {
                    w.finish()?;
                    Some(path)
                }
                None => None,
            };
            parts.push(TimePartition {
                range: TimeRange::new(
                    Timestamp::from_millis(self.bounds[p]),
                    Timestamp::from_millis(self.bounds[p + 1]),
                )?,
                schema: self.schema.clone(),
                file,
            });
        }
        Ok(parts)
    }
}

impl TimePartition {
    /// The partition's rows, in source order.
    fn read(&self) -> Result<Vec<RecordBatch>> {
        let Some(path) = &self.file else {
            return Ok(Vec::new());
        };
        let file = File::open(path).map_err(|e| spill_error("read", path, e))?;
        StreamReader::try_new(BufReader::new(file), None)?
            .map(|b| Ok(b?))
            .collect()
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
    let map = Arc::new(map);
    // Hashing a segment takes a fraction of a second: off the async workers.
    let (checker, mapped) = (catalog.clone(), map.clone());
    let entry_owned = entry.clone();
    tokio::task::spawn_blocking(move || checker.check_content(&entry_owned, &mapped))
        .await
        .map_err(|e| Error::Internal {
            operation: "segment check".into(),
            reason: e.to_string(),
        })??;
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
        let (offset, len) = (
            usize::try_from(block.offset()).ok(),
            usize::try_from(block.bodyLength())
                .ok()
                .zip(usize::try_from(block.metaDataLength()).ok())
                .and_then(|(body, meta)| body.checked_add(meta)),
        );
        let Some((offset, len)) = offset
            .zip(len)
            .filter(|(o, l)| o.checked_add(*l).is_some_and(|end| end <= buffer.len()))
        else {
            return Err(corrupt("a record batch lies outside the file".into()));
        };
        let data = buffer.slice_with_length(offset, len);
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
            describe: format!("offline store offline-{}@{version}", view.name),
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

#[cfg(test)]
mod tests {
    use arrow::array::{Float64Array, StringArray};
    use arrow::datatypes::{DataType, Field as ArrowField, Schema};
    use trainstore_core::{MemorySource, MountTable, StorageOptions};

    use super::*;
    use crate::definitions::{Field, Name, SourceSpec, ValueType};

    #[test]
    fn spills_of_dead_processes_are_removed_and_live_ones_kept() {
        let temp = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let dirs = [
            format!("{SPILL_PREFIX}{dead}-abc"),
            format!("{SPILL_PREFIX}{}-def", std::process::id()),
            format!("{SPILL_PREFIX}junk"),
        ];
        for d in &dirs {
            std::fs::create_dir_all(temp.path().join(d).join("part")).unwrap();
        }
        remove_dead_spills(temp.path());
        let left: Vec<bool> = dirs.iter().map(|d| temp.path().join(d).exists()).collect();
        assert_eq!(left, [false, true, true]);
    }

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
        let segments = write_partitions(&catalog, &view, &selection, &source(&rows), range, 64)
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
        let empty = write_partitions(&catalog, &view, &selection, &source(&rows), later, 64)
            .await
            .unwrap();
        assert_eq!(empty.len(), 1);
        assert_eq!((empty[0].range, empty[0].rows), (later, 0));
    }

    #[test]
    fn recently_mapped_segments_let_the_least_recently_used_go_beyond_the_cap() {
        let source = || {
            Arc::new(SegmentSource {
                describe: String::new(),
                schema: Arc::new(Schema::empty()),
                time_column: "time".into(),
                batches: Vec::new(),
            })
        };
        let key = |name: &str| ("file:///ws".to_owned(), vec![name.to_owned()]);
        let third = RECENTLY_MAPPED_BYTES / 3;
        let mut held = RecentlyMapped::default();
        held.put(key("a"), third, source());
        held.put(key("b"), third, source());
        held.put(key("c"), third, source());
        assert!(
            held.get(&key("a")).is_some(),
            "within the cap, all are kept"
        );
        // "b" is now the least recently used, and one more goes beyond the cap.
        held.put(key("d"), third, source());
        assert!(held.get(&key("b")).is_none());
        for kept in ["a", "c", "d"] {
            assert!(held.get(&key(kept)).is_some(), "{kept}");
        }
        // One set larger than the cap is still held: the last one used.
        held.put(key("huge"), 2 * RECENTLY_MAPPED_BYTES, source());
        assert_eq!(held.held.len(), 1);
        assert!(held.get(&key("huge")).is_some());
    }
}
