//! Writing segments: a range's rows cut into time partitions of about `PART_BYTES`, spilled to
//! local files in source order, each sorted for the join and written as an Arrow IPC file.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, UInt32Array, UInt64Array};
use arrow::compute::{SortColumn, concat_batches, lexsort_to_indices, take_record_batch};
use arrow::datatypes::SchemaRef;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::{FileWriter, StreamWriter};
use futures::TryStreamExt;
use trainstore_core::VersionStore as _;
use trainstore_core::{
    Catalog, DataSourceRef, Error, Operation, Progress, Result, ScanRequest, TimeRange, Timestamp,
};

use super::{SEGMENT_BATCH_ROWS, Segment, item, source_schema};
use crate::definitions::FeatureView;
use crate::historical::ViewSelection;
use crate::join::epoch_nanos;

/// Copies the rows of `range` into segments of about `part_bytes` each, one per time
/// partition, holding one partition in memory at a time.
///
/// A first scan reads only the event times, to cut the range where partitions of that size
/// end; a second spills every row to a local file of its partition (under the system temp
/// directory, `TMPDIR`: it needs room for the range's rows), in source order; then
/// each partition is sorted for the join and written to the catalog. Partitions split at a
/// time, never between rows of equal times, so rows that tie stay in one segment, in source
/// order.
pub(super) async fn write_partitions(
    catalog: &Catalog,
    view: &FeatureView,
    selection: &ViewSelection,
    source: &DataSourceRef,
    range: TimeRange,
    part_bytes: usize,
    progress: &dyn Progress,
) -> Result<Vec<Segment>> {
    let times = event_millis(selection, source, range).await?;
    let copied = Operation::begin(
        progress,
        &format!("ingest {}: rows", view.name),
        Some(times.len() as u64),
    );
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
        copied.advance(batch.num_rows() as u64);
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
pub(super) const PART_BYTES: usize = 256 << 20;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
