//! Points and ranges in time, always UTC with millisecond precision.
//!
//! Snapshot times in Doris are epoch milliseconds, so that is the unit here. Users write times
//! either as ISO-8601 / RFC 3339 text or as epoch milliseconds; both parse to the same
//! [`Timestamp`].

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// An instant, as milliseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The instant `millis` milliseconds after 1970-01-01T00:00:00Z.
    pub const fn from_millis(millis: i64) -> Self {
        Timestamp(millis)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// The instant one millisecond later: the exclusive end of a range that includes `self`.
    /// Fails for the last representable instant, which no range can include.
    pub fn next(self) -> Result<Self> {
        self.0.checked_add(1).map(Timestamp).ok_or_else(|| {
            Error::invalid(
                "timestamp",
                self.0.to_string(),
                "is the last representable instant; give an earlier end",
            )
        })
    }

    /// The current time.
    pub fn now() -> Self {
        Timestamp(Utc::now().timestamp_millis())
    }

    /// Parses epoch milliseconds (`"1670387403396"`) or ISO-8601 text.
    ///
    /// Accepted text forms, ISO-8601's extended ones: a date and time with `Z` or an offset
    /// (`2022-12-07T04:30:00+08:00`, `2022-12-07T04:30Z`), or without (taken as UTC), the
    /// seconds and their fraction optional and `T` or a space between date and time; a bare
    /// date (midnight UTC): calendar (`2022-12-07`), week (`2022-W49-3`) or ordinal
    /// (`2022-341`). Precision finer than a millisecond is truncated.
    ///
    /// ```
    /// use trainstore_core::Timestamp;
    /// let a = Timestamp::parse("2022-12-07T04:30:03.396Z").unwrap();
    /// let b = Timestamp::parse("1670387403396").unwrap();
    /// assert_eq!(a, b);
    /// let midnight = Timestamp::parse("2022-12-07").unwrap();
    /// for same in ["2022-12-07T00:00", "2022-12-07 00:00Z", "2022-W49-3", "2022-341", "2022-12-07T08:00+08:00"] {
    ///     assert_eq!(Timestamp::parse(same).unwrap(), midnight, "{same}");
    /// }
    /// assert!(Timestamp::parse("yesterday").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        let bad = |reason: &str| Error::invalid("timestamp", text, reason);
        if text.is_empty() {
            return Err(bad("empty"));
        }
        if let Some(digits) = text.strip_prefix('-').or(Some(text))
            && digits.bytes().all(|b| b.is_ascii_digit())
        {
            return text
                .parse::<i64>()
                .map(Timestamp)
                .map_err(|_| bad("epoch milliseconds out of range"));
        }
        if let Ok(t) = DateTime::parse_from_rfc3339(text) {
            return Ok(Timestamp(t.timestamp_millis()));
        }
        let times = ["%H:%M:%S%.f", "%H:%M"];
        let zoned = text
            .strip_suffix(['Z', 'z'])
            .map_or_else(|| text.to_owned(), |t| format!("{t}+00:00"));
        for separator in ["T", " "] {
            for time in times {
                let format = format!("%Y-%m-%d{separator}{time}");
                if let Ok(t) = NaiveDateTime::parse_from_str(text, &format) {
                    return Ok(Timestamp(t.and_utc().timestamp_millis()));
                }
                if let Ok(t) = DateTime::parse_from_str(&zoned, &format!("{format}%:z")) {
                    return Ok(Timestamp(t.timestamp_millis()));
                }
            }
        }
        for format in ["%Y-%m-%d", "%G-W%V-%u", "%Y-%j"] {
            if let Ok(d) = NaiveDate::parse_from_str(text, format) {
                let midnight = d.and_hms_opt(0, 0, 0).expect("midnight exists");
                return Ok(Timestamp(midnight.and_utc().timestamp_millis()));
            }
        }
        Err(bad(
            "expected epoch milliseconds or ISO-8601 such as 2022-12-07T04:30:00Z",
        ))
    }
}

impl FromStr for Timestamp {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Timestamp::parse(s)
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC with milliseconds, e.g. `2022-12-07T04:30:03.396Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match DateTime::<Utc>::from_timestamp_millis(self.0) {
            Some(t) => f.write_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true)),
            None => write!(f, "{}ms", self.0),
        }
    }
}

/// A half-open interval of time: `start` is included, `end` is excluded.
///
/// Half-open ranges tile without overlap, so consecutive daily ranges never read a snapshot
/// twice or miss one on the boundary. `start < end` always holds.
///
/// ```
/// use trainstore_core::{TimeRange, Timestamp};
/// let day = TimeRange::parse("2022-12-07T00:00:00Z", "2022-12-08T00:00:00Z").unwrap();
/// assert!(day.contains(Timestamp::parse("2022-12-07").unwrap()));
/// assert!(!day.contains(Timestamp::parse("2022-12-08").unwrap()));
/// assert!(TimeRange::parse("2022-12-08", "2022-12-07").is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawRange", into = "RawRange")]
pub struct TimeRange {
    start: Timestamp,
    end: Timestamp,
}

#[derive(Serialize, Deserialize)]
struct RawRange {
    start: Timestamp,
    end: Timestamp,
}

impl TryFrom<RawRange> for TimeRange {
    type Error = Error;
    fn try_from(raw: RawRange) -> Result<Self> {
        TimeRange::new(raw.start, raw.end)
    }
}

impl From<TimeRange> for RawRange {
    fn from(r: TimeRange) -> Self {
        RawRange {
            start: r.start,
            end: r.end,
        }
    }
}

impl TimeRange {
    /// `[start, end)`; fails unless `start < end`.
    pub fn new(start: Timestamp, end: Timestamp) -> Result<Self> {
        if start >= end {
            return Err(Error::invalid(
                "time range",
                format!("{start} .. {end}"),
                "start must be before end (the range is [start, end))",
            ));
        }
        Ok(TimeRange { start, end })
    }

    /// Parses both bounds with [`Timestamp::parse`].
    pub fn parse(start: &str, end: &str) -> Result<Self> {
        TimeRange::new(Timestamp::parse(start)?, Timestamp::parse(end)?)
    }

    /// The first instant inside the range.
    pub fn start(&self) -> Timestamp {
        self.start
    }

    /// The first instant after the range.
    pub fn end(&self) -> Timestamp {
        self.end
    }

    /// Whether `t` lies in `[start, end)`.
    pub fn contains(&self, t: Timestamp) -> bool {
        self.start <= t && t < self.end
    }

    /// Splits the range into at most `parts` contiguous, non-overlapping ranges of near-equal
    /// length, for reading in parallel.
    pub fn split(&self, parts: usize) -> Vec<TimeRange> {
        // In i128: a range over all of i64 spans more than i64 holds.
        let span = i128::from(self.end.0) - i128::from(self.start.0);
        let parts = parts.clamp(1, span.min(usize::MAX as i128) as usize);
        let bound = |i: usize| {
            Timestamp((i128::from(self.start.0) + span * i as i128 / parts as i128) as i64)
        };
        (0..parts)
            .map(|i| TimeRange {
                start: bound(i),
                end: bound(i + 1),
            })
            .collect()
    }
}

impl fmt::Display for TimeRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}, {})", self.start, self.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_documented_form_to_the_same_instant() {
        let expected = Timestamp::from_millis(1_670_387_400_000);
        for text in [
            "1670387400000",
            "2022-12-07T04:30:00Z",
            "2022-12-07T04:30:00.000Z",
            "2022-12-07T12:30:00+08:00",
            "2022-12-07T04:30:00",
            "2022-12-07 04:30:00",
            " 2022-12-07T04:30:00Z ",
        ] {
            assert_eq!(Timestamp::parse(text).unwrap(), expected, "{text}");
        }
        assert_eq!(
            Timestamp::parse("2022-12-07").unwrap(),
            Timestamp::from_millis(1_670_371_200_000)
        );
        assert_eq!(Timestamp::parse("-5").unwrap(), Timestamp::from_millis(-5));
    }

    #[test]
    fn rejects_garbage_with_the_value_in_the_message() {
        for text in ["", "tomorrow", "2022-13-01", "99999999999999999999", "12a"] {
            let err = Timestamp::parse(text).unwrap_err().to_string();
            assert!(err.contains("timestamp"), "{err}");
        }
        assert!(
            Timestamp::parse("12a")
                .unwrap_err()
                .to_string()
                .contains("12a")
        );
    }

    #[test]
    fn display_round_trips() {
        let t = Timestamp::from_millis(1_670_387_403_396);
        assert_eq!(t.to_string(), "2022-12-07T04:30:03.396Z");
        assert_eq!(Timestamp::parse(&t.to_string()).unwrap(), t);
    }

    #[test]
    fn range_is_half_open_and_ordered() {
        let r = TimeRange::new(Timestamp(10), Timestamp(20)).unwrap();
        assert!(r.contains(Timestamp(10)));
        assert!(r.contains(Timestamp(19)));
        assert!(!r.contains(Timestamp(20)));
        assert!(!r.contains(Timestamp(9)));
        assert!(TimeRange::new(Timestamp(20), Timestamp(20)).is_err());
        assert!(TimeRange::new(Timestamp(21), Timestamp(20)).is_err());
    }

    #[test]
    fn split_tiles_the_range_exactly() {
        let r = TimeRange::new(Timestamp(0), Timestamp(10)).unwrap();
        let parts = r.split(3);
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0].start(), r.start());
        assert_eq!(parts[2].end(), r.end());
        for w in parts.windows(2) {
            assert_eq!(w[0].end(), w[1].start());
        }
        assert_eq!(
            TimeRange::new(Timestamp(0), Timestamp(2))
                .unwrap()
                .split(8)
                .len(),
            2
        );
    }

    #[test]
    fn split_tiles_the_widest_range() {
        let all = TimeRange::new(Timestamp(i64::MIN), Timestamp(i64::MAX)).unwrap();
        let parts = all.split(4);
        assert_eq!(parts.len(), 4);
        assert_eq!(parts[0].start(), all.start());
        assert_eq!(parts[3].end(), all.end());
        for w in parts.windows(2) {
            assert_eq!(w[0].end(), w[1].start());
        }
    }

    #[test]
    fn next_is_one_millisecond_later_until_the_last_instant() {
        assert_eq!(Timestamp(41).next().unwrap(), Timestamp(42));
        let e = Timestamp(i64::MAX).next().unwrap_err().to_string();
        assert!(
            e.contains("9223372036854775807") && e.contains("last"),
            "{e}"
        );
    }

    #[test]
    fn serde_refuses_inverted_ranges() {
        let ok: TimeRange = serde_json::from_str(r#"{"start":1,"end":2}"#).unwrap();
        assert_eq!(ok.end(), Timestamp(2));
        assert!(serde_json::from_str::<TimeRange>(r#"{"start":2,"end":1}"#).is_err());
    }
}
