//! The point-in-time (as-of) join of one feature view, streaming over its source.
//!
//! Entity rows are indexed once: their join keys become a key id, and each key's distinct
//! timestamps are kept sorted. Every source row then visits only the entity timestamps it can
//! answer, `[row time, row time + ttl]` of its key, and wins where it beats the best row seen
//! so far by (event time, created time), a later row winning a full tie (rule 4.3 of
//! `docs/point-in-time.md`). A run of one key whose times strictly increase (the
//! offline store's layout) is merged with the key's timestamps instead: the same winners,
//! each row and timestamp visited once. Batches holding a current winner are kept by
//! reference, not copied: in a time-ordered source almost every row wins somewhere for a
//! while, so copying winners per batch would copy the source. What is kept is the
//! [`Retention`]: for a scanned source, two passes ([`Retention::FinalOnly`]): the first
//! reads keys and times alone and finds each slot's final winner, the second copies out of
//! each batch only the rows that win in the end, so memory holds the answer once. Batches
//! that sit in memory anyway (a mapped offline-store segment) are all kept and only the final
//! winners copied, once, at the end; they are also taken in on every core, each thread's join
//! a share of the batches, merged by [`AsOfJoin::merge`]. The few rows a pushdown returns are kept up to a budget,
//! then the current winners are compacted.
//!
//! Duplicate entity rows (same keys and time) share one slot and one answer (rule 6.1 of
//! `docs/point-in-time.md`).

use std::collections::HashMap;

use arrow::array::{Array, ArrayRef, Int64Array, UInt32Array, UInt64Array, new_null_array};
use arrow::compute::{cast, interleave, partition, take};
use arrow::datatypes::{DataType, TimeUnit};
use arrow::row::{RowConverter, Rows, SortField};
use trainstore_core::{Error, Result};

const NONE: u32 = u32::MAX;

/// Converts a time column to epoch nanoseconds (naive timestamps mean UTC; Int64 columns are
/// epoch milliseconds, the snapshots' `time`). A time nanoseconds cannot hold is refused
/// naming its row.
pub(crate) fn epoch_nanos(column: &dyn Array, what: &str) -> Result<Int64Array> {
    let factor: i64 = match column.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => 1_000_000_000,
        DataType::Timestamp(TimeUnit::Millisecond, _) | DataType::Int64 | DataType::Date64 => {
            1_000_000
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => 1_000,
        DataType::Timestamp(TimeUnit::Nanosecond, _) => 1,
        DataType::Date32 => 86_400_000_000_000,
        other => {
            return Err(Error::invalid(
                "time column",
                what,
                format!("is {other}, expected a timestamp, a date or Int64 epoch milliseconds"),
            ));
        }
    };
    let raw = cast(column, &DataType::Int64)?;
    let raw = raw
        .as_any()
        .downcast_ref::<Int64Array>()
        .expect("cast to Int64");
    let mut nanos = Vec::with_capacity(raw.len());
    for (row, &v) in raw.values().iter().enumerate() {
        match v.checked_mul(factor) {
            Some(n) => nanos.push(n),
            None if raw.is_null(row) => nanos.push(0),
            None => {
                return Err(Error::invalid(
                    "time column",
                    what,
                    format!("row {row} holds {v}, outside the years 1677–2262"),
                ));
            }
        }
    }
    Ok(Int64Array::new(nanos.into(), raw.nulls().cloned()))
}

/// Whether any of `columns` is null at `row`.
fn any_null(columns: &[ArrayRef], row: usize) -> bool {
    columns.iter().any(|c| c.is_null(row))
}

/// The entity rows of one request, indexed by join key and time.
#[derive(Debug)]
pub(crate) struct EntityIndex {
    converter: RowConverter,
    key_types: Vec<DataType>,
    keys: HashMap<Box<[u8]>, u32, ahash::RandomState>,
    /// Slots of key `k` are `offsets[k]..offsets[k + 1]`, in increasing time, distinct.
    offsets: Vec<u32>,
    times: Vec<i64>,
    /// Each entity row's slot, or `NONE` when a key or its time is null.
    row_slot: Vec<u32>,
}

impl EntityIndex {
    /// Indexes entity rows by their join-key columns and their times (epoch nanoseconds).
    pub(crate) fn new(keys: &[ArrayRef], times: &Int64Array) -> Result<Self> {
        let key_types: Vec<DataType> = keys.iter().map(|k| k.data_type().clone()).collect();
        let converter = RowConverter::new(
            key_types
                .iter()
                .map(|t| SortField::new(t.clone()))
                .collect(),
        )?;
        let rows = converter.convert_columns(keys)?;
        let mut ids: HashMap<Box<[u8]>, u32, ahash::RandomState> = HashMap::default();
        let mut entries: Vec<(u32, i64, u32)> = Vec::with_capacity(times.len());
        for row in 0..times.len() {
            if times.is_null(row) || any_null(keys, row) {
                continue;
            }
            let next = ids.len() as u32;
            let id = *ids.entry(rows.row(row).as_ref().into()).or_insert(next);
            entries.push((id, times.value(row), row as u32));
        }
        entries.sort_unstable();
        let mut offsets = vec![0u32; ids.len() + 1];
        let mut times_out: Vec<i64> = Vec::with_capacity(entries.len());
        let mut row_slot = vec![NONE; times.len()];
        let mut last: Option<(u32, i64)> = None;
        for &(id, t, row) in &entries {
            if last != Some((id, t)) {
                times_out.push(t);
                offsets[id as usize + 1] += 1;
                last = Some((id, t));
            }
            row_slot[row as usize] = (times_out.len() - 1) as u32;
        }
        for k in 0..ids.len() {
            offsets[k + 1] += offsets[k];
        }
        Ok(EntityIndex {
            converter,
            key_types,
            keys: ids,
            offsets,
            times: times_out,
            row_slot,
        })
    }

    /// The join-key types source rows must have.
    pub(crate) fn key_types(&self) -> &[DataType] {
        &self.key_types
    }

    /// The earliest and latest entity time, if any row can match at all.
    pub(crate) fn time_bounds(&self) -> Option<(i64, i64)> {
        let min = self.times.iter().min()?;
        let max = self.times.iter().max()?;
        Some((*min, *max))
    }

    fn slots(&self) -> usize {
        self.times.len()
    }

    /// The key id of each run of equal consecutive keys in `keys` (source rows), as (end of
    /// the run, id): `None` for keys no entity row has or with a null.
    ///
    /// Sources sorted by key (the offline store) hold runs: then only each run's first row
    /// is encoded and looked up, instead of every row. Runs of two or three rows are worth
    /// it too: a segment of a few days holds two or three snapshots of a key, and looking up
    /// every row of those took a quarter of a warm 10M-row request.
    fn key_runs(&self, keys: &[ArrayRef]) -> Result<Vec<(usize, Option<u32>)>> {
        let len = keys.first().map_or(0, |k| k.len());
        let runs = partition(keys)?.ranges();
        if runs.len() * 3 > len * 2 {
            // Runs shorter than one and a half rows on average: each row stands for itself.
            let rows = self.converter.convert_columns(keys)?;
            return Ok((0..len)
                .map(|i| (i + 1, self.key_id(keys, &rows, i)))
                .collect());
        }
        let at = UInt32Array::from_iter_values(runs.iter().map(|r| r.start as u32));
        let heads = keys
            .iter()
            .map(|k| take(k.as_ref(), &at, None))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let rows = self.converter.convert_columns(&heads)?;
        Ok(runs
            .iter()
            .enumerate()
            .map(|(i, r)| (r.end, self.key_id(&heads, &rows, i)))
            .collect())
    }

    /// The key id of row `i` of `keys` (encoded as `rows`), if an entity row has that key.
    fn key_id(&self, keys: &[ArrayRef], rows: &Rows, i: usize) -> Option<u32> {
        if any_null(keys, i) {
            return None;
        }
        self.keys.get(rows.row(i).as_ref()).copied()
    }

    /// Each slot's time (epoch nanoseconds) and one entity row that has it, slot by slot.
    pub(crate) fn slot_rows(&self) -> (&[i64], UInt32Array) {
        let mut first = vec![NONE; self.slots()];
        for (row, &slot) in self.row_slot.iter().enumerate() {
            if slot != NONE && first[slot as usize] == NONE {
                first[slot as usize] = row as u32;
            }
        }
        (&self.times, UInt32Array::from(first))
    }
}

/// A source batch as the join reads it.
#[derive(Clone, Copy)]
pub(crate) struct SourceBatch<'a> {
    /// The join-key columns, of the entity rows' key types.
    pub keys: &'a [ArrayRef],
    /// Event times, epoch nanoseconds.
    pub times: &'a Int64Array,
    /// Created times, epoch nanoseconds, when the view has them.
    pub created: Option<&'a Int64Array>,
    /// The requested feature columns.
    pub features: &'a [ArrayRef],
    /// Each row's position in the source, when the source tells it: a first pass then
    /// records the winners' positions, for a second pass that reads only those rows.
    pub positions: Option<&'a UInt64Array>,
}

/// The running as-of join of one view: feed source batches in source order, then finish.
pub(crate) struct AsOfJoin<'a> {
    index: &'a EntityIndex,
    ttl_ns: Option<i64>,
    feature_types: Vec<DataType>,
    best_time: Vec<i64>,
    best_created: Vec<i64>,
    best_chunk: Vec<u32>,
    best_row: Vec<u32>,
    /// Feature columns of kept batches (and of compactions), by chunk number.
    chunks: Vec<Vec<ArrayRef>>,
    /// Bytes the chunks hold.
    kept_bytes: usize,
    /// Bytes of the last compaction's chunk. The next compaction waits for batches beyond it
    /// of the budget or of its own size, whichever is more: each compaction copies the
    /// winners, so with many winners (a million entity rows) a fixed budget would copy them
    /// once per budget's worth of source; growing with them keeps the copying linear in the
    /// source, and memory within about twice the answer plus the budget.
    compacted_bytes: usize,
    retention: Retention,
    /// Slots won in the batch being taken in, with [`Retention::FinalOnly`].
    won: Vec<u32>,
    /// Each slot's winner's position in the source, once a batch has told positions.
    best_position: Vec<u64>,
    /// Batches taken in so far, and (with [`Retention::KeepAll`]) the number of the batch each
    /// chunk came from: what [`AsOfJoin::merge`] orders the winners of a source split across
    /// threads by.
    pushed: usize,
    chunk_batch: Vec<usize>,
}

/// How much of the source the join may keep.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Retention {
    /// Batches holding a current winner, by reference, up to this many bytes beyond the
    /// last compaction; then the winners are compacted.
    Budget(usize),
    /// Every batch: they stay in memory anyway.
    KeepAll,
    /// Only the rows that win in the end, copied out of each batch as it passes: the second
    /// pass over a source whose winners a first pass found ([`AsOfJoin::into_final`]).
    /// Memory holds the answer's values once, however large the source.
    FinalOnly(FinalWinners),
}

/// What a first pass found: each slot's winning (event time, created time), or none.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FinalWinners {
    time: Vec<i64>,
    created: Vec<i64>,
    found: Vec<bool>,
    /// The winners' positions in the source, ascending, each once; `None` when the source
    /// did not tell positions.
    positions: Option<Vec<u64>>,
}

impl FinalWinners {
    /// Where the winning rows lie in the source, when the first pass was told.
    pub(crate) fn positions(&self) -> Option<&[u64]> {
        self.positions.as_deref()
    }
}

/// The budget for streamed sources.
pub(crate) const STREAM_BUDGET: Retention = Retention::Budget(256 << 20);

impl<'a> AsOfJoin<'a> {
    /// A join against `index`; `ttl_ns` bounds how old a row may be (`None`: no bound).
    pub(crate) fn new(
        index: &'a EntityIndex,
        ttl_ns: Option<i64>,
        feature_types: Vec<DataType>,
        retention: Retention,
    ) -> Self {
        let n = index.slots();
        AsOfJoin {
            index,
            ttl_ns,
            feature_types,
            best_time: vec![i64::MIN; n],
            best_created: vec![i64::MIN; n],
            best_chunk: vec![NONE; n],
            best_row: vec![NONE; n],
            chunks: Vec::new(),
            kept_bytes: 0,
            compacted_bytes: 0,
            retention,
            won: Vec::new(),
            best_position: Vec::new(),
            pushed: 0,
            chunk_batch: Vec::new(),
        }
    }

    /// The join of a whole source from joins of its parts, taken in on threads of their own:
    /// batch `b` of the source went to `joins[b % joins.len()]`. Each slot's winner is the
    /// latest of the parts' winners by (event time, created time), then source order, as one
    /// join over every batch would have chosen. Only joins that keep every batch
    /// ([`Retention::KeepAll`]) merge: a compaction forgets which batch a row came from.
    pub(crate) fn merge(joins: Vec<AsOfJoin<'a>>) -> Result<AsOfJoin<'a>> {
        let parts = joins.len();
        let Some(first) = joins.first() else {
            return Err(Error::Internal {
                operation: "merging joins".into(),
                reason: "no joins to merge".into(),
            });
        };
        if joins.iter().any(|j| j.retention != Retention::KeepAll) {
            return Err(Error::Internal {
                operation: "merging joins".into(),
                reason: "only joins that keep every batch merge".into(),
            });
        }
        let mut out = AsOfJoin::new(
            first.index,
            first.ttl_ns,
            first.feature_types.clone(),
            Retention::KeepAll,
        );
        for (part, join) in joins.into_iter().enumerate() {
            let offset = out.chunks.len() as u32;
            let source_batch = |chunk: u32| part + join.chunk_batch[chunk as usize] * parts;
            for slot in 0..join.best_chunk.len() {
                let chunk = join.best_chunk[slot];
                if chunk == NONE {
                    continue;
                }
                let latest = |j: &AsOfJoin, batch: usize| {
                    (
                        j.best_time[slot],
                        j.best_created[slot],
                        batch,
                        j.best_row[slot],
                    )
                };
                let candidate = latest(&join, source_batch(chunk));
                let held = out.best_chunk[slot];
                if held == NONE || candidate > latest(&out, out.chunk_batch[held as usize]) {
                    out.best_time[slot] = join.best_time[slot];
                    out.best_created[slot] = join.best_created[slot];
                    out.best_row[slot] = join.best_row[slot];
                    out.best_chunk[slot] = offset + chunk;
                }
            }
            out.chunk_batch
                .extend((0..join.chunks.len() as u32).map(source_batch));
            out.chunks.extend(join.chunks);
        }
        Ok(out)
    }

    /// Takes in one batch of source rows.
    pub(crate) fn push(&mut self, batch: &SourceBatch<'_>) -> Result<()> {
        self.pushed += 1;
        let index = self.index;
        let len = batch.times.len();
        if len == 0 || index.slots() == 0 {
            return Ok(());
        }
        if batch.positions.is_some() && self.best_position.is_empty() {
            self.best_position = vec![0; index.slots()];
        }
        let chunk = self.chunks.len() as u32;
        let times = batch.times.values();
        let no_null_times = batch.times.null_count() == 0;
        let mut kept = false;
        let mut row = 0;
        for (end, key) in index.key_runs(batch.keys)? {
            let run = row..end;
            row = end;
            let Some(key) = key else {
                continue;
            };
            let (lo, hi) = (
                index.offsets[key as usize] as usize,
                index.offsets[key as usize + 1] as usize,
            );
            let increasing = no_null_times && times[run.clone()].windows(2).all(|w| w[0] < w[1]);
            if increasing {
                kept |= self.merge_run(run, lo..hi, chunk, batch);
                continue;
            }
            for row in run {
                if batch.times.is_null(row) {
                    continue;
                }
                let t = times[row];
                let first = lo + index.times[lo..hi].partition_point(|&e| e < t);
                for slot in first..hi {
                    if self.expired(index.times[slot], t) {
                        break;
                    }
                    kept |= self.offer(slot, row, chunk, batch);
                }
            }
        }
        if !kept {
            return Ok(());
        }
        if let Retention::FinalOnly(_) = self.retention {
            return self.keep_final(chunk, batch);
        }
        self.kept_bytes += batch
            .features
            .iter()
            .map(|c| c.get_array_memory_size())
            .sum::<usize>();
        self.chunks.push(batch.features.to_vec());
        if self.retention == Retention::KeepAll {
            self.chunk_batch.push(self.pushed - 1);
        }
        if let Retention::Budget(budget) = self.retention
            && self.kept_bytes > self.compacted_bytes + budget.max(self.compacted_bytes)
        {
            self.compact()?;
        }
        Ok(())
    }

    /// A run of one key whose times strictly increase (the offline store's layout), merged
    /// with the key's slots: each slot's candidate is the run's last row at or before it,
    /// so each row and slot is visited once, instead of each row visiting every slot it
    /// could answer. Returns whether a row of the run won a slot.
    fn merge_run(
        &mut self,
        run: std::ops::Range<usize>,
        slots: std::ops::Range<usize>,
        chunk: u32,
        batch: &SourceBatch<'_>,
    ) -> bool {
        let index = self.index;
        let times = batch.times.values();
        let first = times[run.start];
        let from = slots.start + index.times[slots.clone()].partition_point(|&e| e < first);
        let mut next = run.start;
        let mut kept = false;
        for slot in from..slots.end {
            let at = index.times[slot];
            while next < run.end && times[next] <= at {
                next += 1;
            }
            // `next > run.start`: the slot is at or after the run's first time.
            let row = next - 1;
            if self.expired(at, times[row]) {
                if next == run.end {
                    break; // later slots are further from the run's last row
                }
                continue;
            }
            kept |= self.offer(slot, row, chunk, batch);
        }
        kept
    }

    /// Whether a row of time `t` is too old for an entity time `at`.
    fn expired(&self, at: i64, t: i64) -> bool {
        self.ttl_ns.is_some_and(|ttl| at.saturating_sub(t) > ttl)
    }

    /// Makes `row` the winner of `slot` if it beats the current one by (event time, created
    /// time), a later row winning a full tie; returns whether it did.
    fn offer(&mut self, slot: usize, row: usize, chunk: u32, batch: &SourceBatch<'_>) -> bool {
        let t = batch.times.value(row);
        let created = match batch.created {
            Some(c) if c.is_valid(row) => c.value(row),
            _ => i64::MIN,
        };
        let beats = match &self.retention {
            // A later row of the same times wins a full tie, as in the first pass.
            Retention::FinalOnly(last) => {
                last.found[slot] && (t, created) == (last.time[slot], last.created[slot])
            }
            _ => {
                self.best_chunk[slot] == NONE
                    || (t, created) >= (self.best_time[slot], self.best_created[slot])
            }
        };
        if beats {
            if let Retention::FinalOnly(_) = self.retention {
                self.won.push(slot as u32);
            }
            self.best_time[slot] = t;
            self.best_created[slot] = created;
            self.best_chunk[slot] = chunk;
            self.best_row[slot] = row as u32;
            if let Some(positions) = batch.positions {
                self.best_position[slot] = positions.value(row);
            }
        }
        beats
    }

    /// Copies the rows of `batch` that won slots into a chunk of their own (numbered
    /// `chunk`), each row once however many slots it won.
    fn keep_final(&mut self, chunk: u32, batch: &SourceBatch<'_>) -> Result<()> {
        // A slot may be won more than once in a batch: remap each once.
        self.won.sort_unstable();
        self.won.dedup();
        let mut rows: Vec<u32> = Vec::with_capacity(self.won.len());
        for &slot in &self.won {
            // A slot won twice in one batch (a full tie) keeps its later row.
            if self.best_chunk[slot as usize] == chunk {
                rows.push(self.best_row[slot as usize]);
            }
        }
        rows.sort_unstable();
        rows.dedup();
        for slot in self.won.drain(..) {
            let row = &mut self.best_row[slot as usize];
            if self.best_chunk[slot as usize] == chunk
                && let Ok(at) = rows.binary_search(row)
            {
                *row = at as u32;
            }
        }
        let at = UInt32Array::from(rows);
        let columns = batch
            .features
            .iter()
            .map(|c| take(c.as_ref(), &at, None))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        self.chunks.push(columns);
        Ok(())
    }

    /// What this pass found, for a second pass that keeps only the final winners' rows.
    pub(crate) fn into_final(self) -> FinalWinners {
        let found: Vec<bool> = self.best_chunk.iter().map(|&c| c != NONE).collect();
        let positions = (!self.best_position.is_empty()).then(|| {
            let mut won: Vec<u64> = (0..found.len())
                .filter(|&s| found[s])
                .map(|s| self.best_position[s])
                .collect();
            won.sort_unstable();
            won.dedup();
            won
        });
        FinalWinners {
            found,
            time: self.best_time,
            created: self.best_created,
            positions,
        }
    }

    /// Gathers the current winners into one chunk, dropping superseded rows.
    fn compact(&mut self) -> Result<()> {
        let mut picks: Vec<(usize, usize)> = Vec::new();
        for slot in 0..self.best_chunk.len() {
            if self.best_chunk[slot] != NONE {
                picks.push((self.best_chunk[slot] as usize, self.best_row[slot] as usize));
                self.best_chunk[slot] = 0;
                self.best_row[slot] = (picks.len() - 1) as u32;
            }
        }
        let columns = self.gather(&picks, false)?;
        self.kept_bytes = columns.iter().map(|c| c.get_array_memory_size()).sum();
        self.compacted_bytes = self.kept_bytes;
        self.chunks = vec![columns];
        Ok(())
    }

    fn gather(&self, picks: &[(usize, usize)], null_tail: bool) -> Result<Vec<ArrayRef>> {
        interleave_columns(&self.chunks, &self.feature_types, picks, null_tail)
    }

    /// Where each entity row's winner lies, its values left where they are, to be gathered
    /// a slice of entity rows at a time ([`Winners::gather`]).
    ///
    /// After a second pass, a slot whose first-pass winner was not seen again means the
    /// source changed between the passes: an error, never a silently missing value.
    pub(crate) fn into_winners(self) -> Result<Winners> {
        if let Retention::FinalOnly(last) = &self.retention
            && let Some(slot) =
                (0..last.found.len()).find(|&s| last.found[s] && self.best_chunk[s] == NONE)
        {
            return Err(Error::Remote {
                service: "feature source".into(),
                operation: "the join's second pass",
                reason: format!(
                    "a row the first pass found (event time {} ns) was gone: the source \
                     changed during the request; ask again",
                    last.time[slot]
                ),
                transient: true,
            });
        }
        let null_chunk = self.chunks.len();
        let picks: Vec<(usize, usize)> = self
            .index
            .row_slot
            .iter()
            .map(|&slot| match slot {
                NONE => (null_chunk, 0),
                s if self.best_chunk[s as usize] == NONE => (null_chunk, 0),
                s => (
                    self.best_chunk[s as usize] as usize,
                    self.best_row[s as usize] as usize,
                ),
            })
            .collect();
        Ok(Winners {
            chunks: self.chunks,
            feature_types: self.feature_types,
            picks,
        })
    }
}

/// A finished join: for each entity row, where its winning source row lies among the kept
/// batches (or that it has none). Holding winners instead of their gathered values lets an
/// answer be produced a slice of entity rows at a time, never whole.
pub(crate) struct Winners {
    chunks: Vec<Vec<ArrayRef>>,
    feature_types: Vec<DataType>,
    /// Per entity row: (chunk, row), chunk `chunks.len()` meaning no winner.
    picks: Vec<(usize, usize)>,
}

impl Winners {
    /// No winner for any of `rows` entity rows.
    pub(crate) fn none(feature_types: Vec<DataType>, rows: usize) -> Self {
        Winners {
            chunks: Vec::new(),
            feature_types,
            picks: vec![(0, 0); rows],
        }
    }

    pub(crate) fn feature_types(&self) -> &[DataType] {
        &self.feature_types
    }

    /// The feature columns of entity rows `range`, null where no source row qualified.
    pub(crate) fn gather(&self, range: std::ops::Range<usize>) -> Result<Vec<ArrayRef>> {
        interleave_columns(&self.chunks, &self.feature_types, &self.picks[range], true)
    }
}

/// Feature columns holding the given (chunk, row) picks; with `null_tail`, chunk index
/// `chunks.len()` names a null value.
///
/// Columns are gathered in parallel: copying the winners' values is most of a join from the
/// offline store.
fn interleave_columns(
    chunks: &[Vec<ArrayRef>],
    feature_types: &[DataType],
    picks: &[(usize, usize)],
    null_tail: bool,
) -> Result<Vec<ArrayRef>> {
    let column = |f: usize| -> Result<ArrayRef> {
        let dtype = &feature_types[f];
        let null = new_null_array(dtype, 1);
        let mut arrays: Vec<&dyn Array> = chunks.iter().map(|c| c[f].as_ref()).collect();
        if null_tail {
            arrays.push(null.as_ref());
        }
        Ok(if arrays.is_empty() {
            new_null_array(dtype, picks.len())
        } else {
            interleave(&arrays, picks)?
        })
    };
    trainstore_core::parallel::map_indexed(feature_types.len(), column)
        .into_iter()
        .collect()
}

/// Casts source key columns to the types the entity index compares in ([`comparison_type`]
/// chose them, so each cast keeps every value).
pub(crate) fn align_keys(keys: Vec<ArrayRef>, wanted: &[DataType]) -> Result<Vec<ArrayRef>> {
    keys.into_iter()
        .zip(wanted)
        .map(|(k, want)| match k.data_type() == want {
            true => Ok(k),
            false => Ok(cast(&k, want)?),
        })
        .collect()
}

/// The type a join key is compared in when the entity rows hold `entity` and the source
/// `source` (rule 7.3 of `docs/point-in-time.md`): their common type when they have one (the
/// string encodings are one type, integers of every width compare as `Int64`), text when one
/// is an integer and the other text (an integer equals its decimal digits, `1465` =
/// `"1465"`, not `"01465"`); any other pair is an error naming the key and the view.
pub(crate) fn comparison_type(
    view: &str,
    name: &str,
    source: &DataType,
    entity: &DataType,
) -> Result<DataType> {
    let is_string =
        |t: &DataType| matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
    let is_integer = |t: &DataType| t.is_integer();
    Ok(
        if source == entity || is_string(source) && is_string(entity) {
            entity.clone()
        } else if is_integer(source) && is_integer(entity) {
            DataType::Int64
        } else if (is_integer(source) || is_string(source))
            && (is_integer(entity) || is_string(entity))
        {
            DataType::Utf8
        } else {
            return Err(Error::invalid(
                "join key",
                name,
                format!(
                    "is {entity} in the entity rows but {source} in the source of view {view}: \
                 keys compare as text or integers only; cast one side"
                ),
            ));
        },
    )
}

#[cfg(test)]
mod tests {
    //! The join against a plain reference: for every entity row, look at every source row.
    use super::*;
    use std::sync::Arc;

    use arrow::array::{Float64Array, StringArray};
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    struct Row {
        key: Option<(u8, i64)>,
        time: Option<i64>,
        created: Option<i64>,
        value: Option<f64>,
    }

    fn row() -> impl Strategy<Value = Row> {
        (
            proptest::option::weighted(0.95, (0u8..4, 0i64..3)),
            proptest::option::weighted(0.95, 0i64..40),
            proptest::option::weighted(0.7, 0i64..3),
            proptest::option::weighted(0.9, -5.0f64..5.0),
        )
            .prop_map(|(key, time, created, value)| Row {
                key,
                time,
                created,
                value,
            })
    }

    fn key_columns(rows: &[Row]) -> Vec<ArrayRef> {
        let names: StringArray = rows
            .iter()
            .map(|r| r.key.map(|(k, _)| format!("dev-{k}")))
            .collect();
        let nodes: Int64Array = rows.iter().map(|r| r.key.map(|(_, n)| n)).collect();
        vec![Arc::new(names), Arc::new(nodes)]
    }

    /// The rules of `docs/point-in-time.md` (Feast's reference), written as plainly as possible.
    fn reference(entities: &[Row], source: &[Row], ttl: Option<i64>) -> Vec<Option<f64>> {
        entities
            .iter()
            .map(|e| {
                let (Some(key), Some(t)) = (e.key, e.time) else {
                    return None;
                };
                let mut best: Option<(i64, i64, usize)> = None;
                for (i, r) in source.iter().enumerate() {
                    let (Some(rk), Some(rt)) = (r.key, r.time) else {
                        continue;
                    };
                    if rk != key || rt > t || ttl.is_some_and(|ttl| rt < t - ttl) {
                        continue;
                    }
                    let candidate = (rt, r.created.unwrap_or(i64::MIN), i);
                    if best.is_none_or(|b| candidate >= b) {
                        best = Some(candidate);
                    }
                }
                best.and_then(|(_, _, i)| source[i].value)
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn matches_the_reference(
            entities in proptest::collection::vec(row(), 0..30),
            mut source in proptest::collection::vec(row(), 0..80),
            layout in 0u8..3,
            batch in 1usize..20,
            ttl in proptest::option::of(0i64..15),
            budget in proptest::option::of(0usize..2_000),
            parts in 1usize..4,
        ) {
            match layout {
                // Long runs of one key, times in any order.
                1 => source.sort_by_key(|r| r.key),
                // As the offline store lays rows out: by key, then time.
                2 => source.sort_by_key(|r| (r.key, r.time)),
                _ => {}
            }
            let times: Int64Array = entities.iter().map(|r| r.time).collect();
            let index = EntityIndex::new(&key_columns(&entities), &times).unwrap();
            let retention = budget.map_or(Retention::KeepAll, Retention::Budget);
            let expected = reference(&entities, &source, ttl);
            let one_pass = AsOfJoin::new(&index, ttl, vec![DataType::Float64], retention);
            let one_pass = feed(one_pass, &source, batch).into_winners().unwrap();
            prop_assert_eq!(values(&one_pass, times.len()), expected.clone());

            // The batches dealt out to `parts` joins in turn, then merged.
            let mut joins: Vec<AsOfJoin> = (0..parts)
                .map(|_| AsOfJoin::new(&index, ttl, vec![DataType::Float64], Retention::KeepAll))
                .collect();
            for (b, part) in source.chunks(batch).enumerate() {
                let join = joins.remove(b % parts);
                joins.insert(b % parts, feed(join, part, batch));
            }
            let merged = AsOfJoin::merge(joins).unwrap().into_winners().unwrap();
            prop_assert_eq!(values(&merged, times.len()), expected.clone());

            // Two passes: times only, then only the final winners' values kept.
            let first = feed(AsOfJoin::new(&index, ttl, vec![], Retention::KeepAll), &source, batch);
            let last = Retention::FinalOnly(first.into_final());
            let second = AsOfJoin::new(&index, ttl, vec![DataType::Float64], last);
            let two_pass = feed(second, &source, batch).into_winners().unwrap();
            prop_assert_eq!(values(&two_pass, times.len()), expected.clone());

            // Two passes over a source that tells positions: the second reads only the rows
            // the first found winning.
            let first = AsOfJoin::new(&index, ttl, vec![], Retention::KeepAll);
            let first = feed_positioned(first, &source, batch);
            let last = first.into_final();
            let picked: Vec<Row> = last
                .positions()
                .unwrap_or_default()
                .iter()
                .map(|&p| source[p as usize].clone())
                .collect();
            let second = AsOfJoin::new(&index, ttl, vec![DataType::Float64], Retention::FinalOnly(last));
            let picked_pass = feed(second, &picked, batch).into_winners().unwrap();
            prop_assert_eq!(values(&picked_pass, times.len()), expected);
        }
    }

    /// Pushes `source`'s keys and times in batches of `batch` rows, each row's index in
    /// `source` as its position.
    fn feed_positioned<'a>(mut join: AsOfJoin<'a>, source: &[Row], batch: usize) -> AsOfJoin<'a> {
        for (i, part) in source.chunks(batch).enumerate() {
            let keys = key_columns(part);
            let times: Int64Array = part.iter().map(|r| r.time).collect();
            let created: Int64Array = part.iter().map(|r| r.created).collect();
            let first = (i * batch) as u64;
            let positions = UInt64Array::from_iter_values(first..first + part.len() as u64);
            join.push(&SourceBatch {
                keys: &keys,
                times: &times,
                created: Some(&created),
                features: &[],
                positions: Some(&positions),
            })
            .unwrap();
        }
        join
    }

    /// Pushes `source` in batches of `batch` rows, its values as the one feature when the
    /// join asks for features.
    fn feed<'a>(mut join: AsOfJoin<'a>, source: &[Row], batch: usize) -> AsOfJoin<'a> {
        for part in source.chunks(batch) {
            let keys = key_columns(part);
            let times: Int64Array = part.iter().map(|r| r.time).collect();
            let created: Int64Array = part.iter().map(|r| r.created).collect();
            let values: ArrayRef = Arc::new(part.iter().map(|r| r.value).collect::<Float64Array>());
            let features = if join.feature_types.is_empty() {
                vec![]
            } else {
                vec![values]
            };
            join.push(&SourceBatch {
                keys: &keys,
                times: &times,
                created: Some(&created),
                features: &features,
                positions: None,
            })
            .unwrap();
        }
        join
    }

    fn values(winners: &Winners, rows: usize) -> Vec<Option<f64>> {
        let out = winners.gather(0..rows).unwrap();
        out[0]
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap()
            .iter()
            .collect()
    }

    #[test]
    fn a_second_pass_that_misses_a_first_pass_winner_is_an_error() {
        let row = |time: i64, value: Option<f64>| Row {
            key: Some((1, 1)),
            time: Some(time),
            created: None,
            value,
        };
        let entities = [row(10, None)];
        let times: Int64Array = entities.iter().map(|r| r.time).collect();
        let index = EntityIndex::new(&key_columns(&entities), &times).unwrap();
        let before = [row(5, Some(1.0))];
        let changed = [row(4, Some(2.0))];
        let first = feed(
            AsOfJoin::new(&index, None, vec![], Retention::KeepAll),
            &before,
            1,
        );
        let last = Retention::FinalOnly(first.into_final());
        let second = AsOfJoin::new(&index, None, vec![DataType::Float64], last);
        let err = feed(second, &changed, 1).into_winners().err().unwrap();
        assert!(
            err.to_string().contains("changed during the request"),
            "{err}"
        );
        assert!(err.retryable());
    }

    #[test]
    fn time_units_become_nanoseconds() {
        use arrow::array::TimestampMicrosecondArray;
        let micros = TimestampMicrosecondArray::from(vec![Some(1_500), None]).with_timezone("UTC");
        let n = epoch_nanos(&micros, "t").unwrap();
        assert_eq!(n.value(0), 1_500_000);
        assert!(n.is_null(1));
        let ms = Int64Array::from(vec![i64::MAX / 10]);
        let err = epoch_nanos(&ms, "t").unwrap_err();
        assert!(
            matches!(err, Error::InvalidInput { .. }) && err.to_string().contains("row 0"),
            "{err}"
        );
    }
}
