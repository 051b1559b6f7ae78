//! Synthetic feature snapshots in the design document's layout, deterministic under a seed.
//!
//! Tests, benchmarks and the demo need realistic data without a real fleet: devices (uuids)
//! with sensor nodes, snapshots at a steady cadence with jitter, vibration-like values with
//! slow drift and occasional regime changes, spectra with decaying peaks, and a configurable
//! share of malformed values, so that parse reports have something to find.

use std::fmt::Write;
use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use trainstore_core::{Error, Result, Timestamp};

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthConfig {
    /// Number of devices (distinct uuids).
    pub devices: usize,
    /// Sensor nodes per device; node ids are shared across devices, as in the design document.
    pub nodes_per_device: usize,
    /// Snapshots per (device, node) series.
    pub snapshots: usize,
    /// Time of the first snapshot.
    pub start: Timestamp,
    /// Mean spacing of a series' snapshots, in milliseconds (each gets up to ±10 % jitter).
    pub interval_ms: i64,
    /// Array features have between these many values (inclusive).
    pub array_len: (usize, usize),
    /// Probability that any one value is written malformed (e.g. `"n/a"`, `"9.3,,x"`).
    pub malformed_rate: f64,
    pub seed: u64,
}

impl Default for SynthConfig {
    /// 10 devices × 2 nodes × 100 snapshots, 10 minutes apart from 2022-12-07, arrays of 8–64
    /// values, 0.5 % malformed.
    fn default() -> Self {
        SynthConfig {
            devices: 10,
            nodes_per_device: 2,
            snapshots: 100,
            start: Timestamp::from_millis(1_670_371_200_000),
            interval_ms: 600_000,
            array_len: (8, 64),
            malformed_rate: 0.005,
            seed: 42,
        }
    }
}

impl SynthConfig {
    /// Total rows this configuration produces.
    pub fn rows(&self) -> usize {
        self.devices * self.nodes_per_device * self.snapshots
    }

    fn validate(&self) -> Result<()> {
        let bad = |what: &str, reason: &str| {
            Err(Error::invalid("synthetic snapshot config", what, reason))
        };
        if self.devices == 0 || self.nodes_per_device == 0 || self.snapshots == 0 {
            return bad(
                "devices/nodes_per_device/snapshots",
                "must all be at least 1",
            );
        }
        if self.interval_ms < 10 {
            return bad(
                "interval_ms",
                "must be at least 10 ms so times stay strictly increasing",
            );
        }
        if self
            .devices
            .checked_mul(self.nodes_per_device)
            .and_then(|series| series.checked_mul(self.snapshots))
            .is_none()
        {
            return bad(
                "devices/nodes_per_device/snapshots",
                "their product (the number of rows) is too large",
            );
        }
        // Each snapshot lies up to 1.1 intervals after the one before; the last must still be
        // a representable time.
        let last = i128::from(self.start.as_millis())
            + (self.snapshots as i128 + 1) * i128::from(self.interval_ms) * 11 / 10;
        if last > i128::from(i64::MAX) {
            return bad(
                "snapshots/interval_ms",
                "the last snapshot would lie beyond the last representable time",
            );
        }
        if self.array_len.0 == 0 || self.array_len.0 > self.array_len.1 {
            return bad("array_len", "needs 1 <= min <= max");
        }
        if !(0.0..=1.0).contains(&self.malformed_rate) {
            return bad("malformed_rate", "must be within [0, 1]");
        }
        Ok(())
    }
}

/// The raw layout the generator writes: `time` (epoch ms) and `feature` (JSON document).
pub fn raw_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("time", DataType::Int64, false),
        Field::new("feature", DataType::Utf8, false),
    ]))
}

/// SplitMix64: tiny, fast and fixed forever, so a seed means the same data in every release.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [lo, hi].
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }

    /// Roughly normal (sum of uniforms), mean 0, sd 1.
    fn normal(&mut self) -> f64 {
        (0..4).map(|_| self.unit()).sum::<f64>() * 3f64.sqrt() - 2.0 * 3f64.sqrt()
    }
}

/// One (device, node) series: its identity and the state its signal evolves from.
#[derive(Debug, Clone)]
struct Series {
    uuid: String,
    node: String,
    rng: Rng,
    time: i64,
    level: f64,
    drift: f64,
    noise: f64,
    temperature: f64,
    fundamental: f64,
}

/// Yields batches of synthetic design-document rows; see [`SynthConfig`].
///
/// ```
/// use trainstore_doris::{SnapshotGenerator, SynthConfig};
/// let config = SynthConfig { devices: 2, snapshots: 3, ..SynthConfig::default() };
/// let batches: Vec<_> = SnapshotGenerator::new(config.clone()).unwrap().batches(5).collect();
/// assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), config.rows());
/// ```
#[derive(Debug, Clone)]
pub struct SnapshotGenerator {
    config: SynthConfig,
}

impl SnapshotGenerator {
    /// Checks the configuration.
    pub fn new(config: SynthConfig) -> Result<Self> {
        config.validate()?;
        Ok(SnapshotGenerator { config })
    }

    /// All rows in batches of at most `rows_per_batch`, in snapshot order: the i-th snapshot
    /// of every series, then the (i+1)-th, so time advances roughly monotonically.
    pub fn batches(&self, rows_per_batch: usize) -> impl Iterator<Item = RecordBatch> + use<> {
        let config = self.config.clone();
        let mut master = Rng(config.seed);
        let mut series: Vec<Series> = Vec::with_capacity(config.devices * config.nodes_per_device);
        for d in 0..config.devices {
            let uuid = format!("{:012X}", (master.next() >> 16) ^ d as u64);
            for n in 0..config.nodes_per_device {
                let mut rng = Rng(master.next());
                series.push(Series {
                    uuid: uuid.clone(),
                    node: (1465 + n).to_string(),
                    time: config.start.as_millis()
                        + (rng.unit() * config.interval_ms as f64) as i64,
                    level: 4.0 + rng.unit() * 4.0,
                    drift: (rng.unit() - 0.5) * 1e-3,
                    noise: 0.05 + rng.unit() * 0.1,
                    temperature: 20.0 + rng.unit() * 30.0,
                    fundamental: 4.0 + rng.unit() * 2.0,
                    rng,
                });
            }
        }
        let total = config.rows();
        let rows_per_batch = rows_per_batch.max(1);
        let mut next_row = 0usize;
        let mut doc = String::with_capacity(2048);
        std::iter::from_fn(move || {
            if next_row >= total {
                return None;
            }
            let n = rows_per_batch.min(total - next_row);
            let mut times = Vec::with_capacity(n);
            let mut docs = StringBuilder::with_capacity(n, n * 1200);
            for row in next_row..next_row + n {
                let count = series.len();
                let s = &mut series[row % count];
                write_snapshot(&config, s, &mut doc);
                times.push(s.time);
                docs.append_value(&doc);
            }
            next_row += n;
            let columns: Vec<arrow::array::ArrayRef> =
                vec![Arc::new(Int64Array::from(times)), Arc::new(docs.finish())];
            Some(RecordBatch::try_new(raw_schema(), columns).expect("generator schema"))
        })
    }
}

/// Advances `s` by one snapshot and writes its JSON document into `doc`.
fn write_snapshot(config: &SynthConfig, s: &mut Series, doc: &mut String) {
    let jitter = ((s.rng.unit() - 0.5) * 0.2 * config.interval_ms as f64) as i64;
    s.time += config.interval_ms + jitter;
    // Rare regime changes: the machine's load shifts level and noise at once.
    if s.rng.unit() < 0.01 {
        s.level *= 0.6 + s.rng.unit() * 0.8;
        s.noise *= 0.5 + s.rng.unit() * 1.5;
    }
    s.level = (s.level + s.drift + s.rng.normal() * s.noise * 0.05).max(0.1);
    s.temperature += s.rng.normal() * 0.2;
    let rate = config.malformed_rate;

    doc.clear();
    let bad_document = s.rng.unit() < rate / 10.0;
    doc.push('{');
    let _ = write!(
        doc,
        "\"uuid\":\"{}\",\"nodeId\":\"{}\",\"time\":\"{}\"",
        s.uuid, s.node, s.time
    );
    let _ = write!(doc, ",\"is_tag\":{}", s.rng.unit() < 0.1);
    let std = s.noise * s.level;
    let numbers = [
        ("meanLf", s.level * 1.0e6),
        ("std", std),
        ("mean", s.level * 4.0e4),
        ("meanHf", s.level * 4.4e8),
        ("temperature", s.temperature),
    ];
    for (name, value) in numbers {
        if s.rng.unit() < rate {
            let _ = write!(doc, ",\"{name}\":\"{}\"", malformed_number(&mut s.rng));
        } else {
            let _ = write!(doc, ",\"{name}\":{value:.2}");
        }
    }
    for name in [
        "peakPowers",
        "peakFreqs",
        "bandSpectrum",
        "feature1",
        "feature2",
        "feature3",
        "feature4",
    ] {
        let len = s.rng.range(config.array_len.0, config.array_len.1);
        let _ = write!(doc, ",\"{name}\":\"");
        if s.rng.unit() < rate {
            doc.push_str(malformed_array(&mut s.rng));
        } else {
            for i in 0..len {
                if i > 0 {
                    doc.push(',');
                }
                let x = i as f64;
                let value = match name {
                    "peakPowers" => s.level * 2.0 * (-x / 12.0).exp() + s.rng.normal() * s.noise,
                    "peakFreqs" => s.fundamental * (x + 1.0) + s.rng.normal() * 0.05,
                    "bandSpectrum" => s.level * 3.0 / (1.0 + x / 8.0) + s.rng.normal() * s.noise,
                    _ => s.level * 3.0 + (x / 5.0).sin() * s.level + s.rng.normal() * s.noise,
                };
                let _ = write!(doc, "{value:.2}");
            }
        }
        doc.push('"');
    }
    let gpio = if s.rng.unit() < 0.9 {
        -1
    } else {
        s.rng.range(0, 7) as i64
    };
    let _ = write!(
        doc,
        ",\"extend\":\"{{\\\"SerialData\\\": \\\"\\\", \\\"GpioData\\\": {gpio}}}\""
    );
    doc.push('}');
    if bad_document {
        // A truncated document, as a broken writer would leave it.
        let cut = doc.len() / 2;
        doc.truncate(cut);
    }
}

fn malformed_number(rng: &mut Rng) -> &'static str {
    ["n/a", "1.2.3", "--5", "NaN", "8478281.0x"][rng.range(0, 4)]
}

fn malformed_array(rng: &mut Rng) -> &'static str {
    ["9.31,,x", "9.31;9.25", "[1.5, 2", "null,1", "1,2,"][rng.range(0, 4)]
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, AsArray};

    use super::*;
    use crate::{SnapshotParser, SnapshotSchema};

    fn generate(config: SynthConfig) -> Vec<RecordBatch> {
        SnapshotGenerator::new(config)
            .unwrap()
            .batches(1000)
            .collect()
    }

    #[test]
    fn the_same_seed_gives_the_same_data() {
        let config = SynthConfig {
            devices: 3,
            snapshots: 20,
            ..SynthConfig::default()
        };
        assert_eq!(generate(config.clone()), generate(config.clone()));
        assert_ne!(
            generate(config.clone()),
            generate(SynthConfig { seed: 7, ..config })
        );
    }

    #[test]
    fn clean_data_parses_without_a_single_problem_and_times_increase_per_series() {
        let config = SynthConfig {
            devices: 4,
            snapshots: 50,
            malformed_rate: 0.0,
            ..SynthConfig::default()
        };
        let parser = SnapshotParser::new(SnapshotSchema::design_doc()).strict(true);
        let mut last: std::collections::HashMap<(String, String), i64> = Default::default();
        for raw in generate(config.clone()) {
            let (typed, report) = parser.parse(&raw).unwrap();
            assert_eq!(report.malformed(), 0);
            let uuid = typed
                .column_by_name("uuid")
                .unwrap()
                .as_string::<i32>()
                .clone();
            let node = typed
                .column_by_name("nodeId")
                .unwrap()
                .as_string::<i32>()
                .clone();
            let times = raw
                .column(0)
                .as_primitive::<arrow::datatypes::Int64Type>()
                .clone();
            for r in 0..typed.num_rows() {
                let key = (uuid.value(r).to_owned(), node.value(r).to_owned());
                let t = times.value(r);
                if let Some(prev) = last.insert(key, t) {
                    assert!(t > prev, "times must increase within a series");
                }
            }
            let lens = typed
                .column_by_name("peakPowers")
                .unwrap()
                .as_list::<i32>()
                .clone();
            assert!((0..lens.len()).all(|r| (8..=64).contains(&lens.value(r).len())));
        }
        assert_eq!(last.len(), 8);
    }

    #[test]
    fn malformed_values_appear_at_about_the_configured_rate_and_are_counted() {
        let config = SynthConfig {
            devices: 20,
            snapshots: 100,
            malformed_rate: 0.05,
            ..SynthConfig::default()
        };
        let parser = SnapshotParser::new(SnapshotSchema::design_doc());
        let mut report = crate::ParseReport::default();
        for raw in generate(config.clone()) {
            report.merge(&parser.parse(&raw).unwrap().1);
        }
        let values = (config.rows() * 12) as f64;
        let share = report.malformed() as f64 / values;
        assert!((0.03..0.08).contains(&share), "malformed share {share}");
        assert!(
            report.columns["feature"].malformed > 0,
            "some whole documents are broken"
        );
    }

    #[test]
    fn bad_configs_are_refused() {
        for bad in [
            SynthConfig {
                devices: 0,
                ..SynthConfig::default()
            },
            SynthConfig {
                interval_ms: 1,
                ..SynthConfig::default()
            },
            SynthConfig {
                array_len: (5, 2),
                ..SynthConfig::default()
            },
            SynthConfig {
                malformed_rate: 1.5,
                ..SynthConfig::default()
            },
            SynthConfig {
                devices: 1 << 40,
                nodes_per_device: 1 << 40,
                ..SynthConfig::default()
            },
            SynthConfig {
                snapshots: usize::MAX,
                ..SynthConfig::default()
            },
            SynthConfig {
                interval_ms: i64::MAX,
                ..SynthConfig::default()
            },
        ] {
            assert!(SnapshotGenerator::new(bad).is_err());
        }
    }
}
