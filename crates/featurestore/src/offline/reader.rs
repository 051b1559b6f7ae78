//! Reading segments back: mapped in place from a local disk (and kept mapped while they are
//! used again and again), read whole from other stores, served as a source without decoding.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::buffer::Buffer;
use arrow::datatypes::SchemaRef;
use arrow::ipc::reader::{FileDecoder, read_footer_length};
use arrow::ipc::{self, root_as_footer};
use async_trait::async_trait;
use trainstore_core::VersionStore as _;
use trainstore_core::catalog::FileEntry;
use trainstore_core::{
    Catalog, DataSource, Error, Filter, RecordBatchStream, Result, Scalar, ScanRequest, Version,
    apply_filters,
};

use super::Layout;
use crate::definitions::FeatureView;

/// The segments of `view`'s offline store `version`, mapped again only if they are not
/// among the recently used.
pub(super) async fn segments_of(
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
pub(super) fn read_ipc(buffer: Buffer, path: &str) -> Result<(SchemaRef, Vec<RecordBatch>)> {
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
pub(super) struct SegmentSource {
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
    use arrow::datatypes::Schema;

    use super::*;

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
