//! Kubernetes resource quantities (`"2"`, `"500m"`, `"4Gi"`, `"1.5"`, `"1e3"`) and durations
//! (`"30s"`, `"10m"`, `"1h30m"`).
//!
//! A quantity is a decimal number and an optional suffix: a decimal SI one (`n u m k M G T P
//! E`), a binary one (`Ki Mi Gi Ti Pi Ei`) or an exponent (`e3`, `E-2`). The arithmetic is
//! exact (integers, never floats), and the result rounds up to the unit, as Kubernetes rounds
//! `0.1m` of CPU up to `1m`: CPU in millicores, memory in bytes, GPUs in whole devices.

use std::time::Duration;

/// The unit a quantity is counted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    /// CPU: thousandths of a core.
    Millicores,
    /// Memory: bytes.
    Bytes,
    /// Whole devices (GPUs): a fraction is an error.
    Devices,
}

/// The largest mantissa accepted, in digits; more is a typo, not a machine.
const MAX_DIGITS: usize = 30;

/// Parses `text` as a quantity counted in `unit`. The error says what was expected.
pub(crate) fn parse_quantity(text: &str, unit: Unit) -> Result<u64, String> {
    let expected = match unit {
        Unit::Millicores => "a CPU quantity such as \"2\", \"0.5\" or \"500m\"",
        Unit::Bytes => "a memory quantity such as \"512Mi\", \"4Gi\" or \"1G\"",
        Unit::Devices => "a whole number of devices such as \"1\"",
    };
    let bad = |why: &str| format!("{why} in {text:?}: expected {expected}");
    let text = text.trim();
    if text.is_empty() {
        return Err(bad("empty quantity"));
    }
    if text.starts_with('-') {
        return Err(bad("negative quantity"));
    }
    let body = text.strip_prefix('+').unwrap_or(text);
    let number_end = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (number, suffix) = body.split_at(number_end);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
        return Err(bad("no number"));
    }
    if whole.len() + fraction.len() > MAX_DIGITS {
        return Err(bad("too many digits"));
    }
    let digits: u128 = format!("{whole}{fraction}")
        .parse()
        .map_err(|_| bad("no number"))?;
    // value = digits / 10^scale · num / den
    let mut scale = fraction.len() as i32;
    let (mut num, den): (u128, u128) = (1, 1);
    match suffix {
        "" => {}
        "n" => scale += 9,
        "u" => scale += 6,
        "m" => scale += 3,
        "k" => scale -= 3,
        "M" => scale -= 6,
        "G" => scale -= 9,
        "T" => scale -= 12,
        "P" => scale -= 15,
        "E" => scale -= 18,
        "Ki" => num = 1 << 10,
        "Mi" => num = 1 << 20,
        "Gi" => num = 1 << 30,
        "Ti" => num = 1 << 40,
        "Pi" => num = 1 << 50,
        "Ei" => num = 1 << 60,
        other => {
            let exponent = other
                .strip_prefix(['e', 'E'])
                .and_then(|e| e.parse::<i32>().ok())
                .filter(|e| e.abs() <= 30)
                .ok_or_else(|| bad(&format!("unknown suffix {other:?}")))?;
            scale -= exponent;
        }
    }
    if unit == Unit::Millicores {
        scale -= 3;
    }
    let too_large = || bad("too large");
    let pow10 = |n: i32| 10u128.checked_pow(n.unsigned_abs());
    let (num, den) = if scale >= 0 {
        (num, den * pow10(scale).ok_or_else(too_large)?)
    } else {
        (
            num.checked_mul(pow10(scale).ok_or_else(too_large)?)
                .ok_or_else(too_large)?,
            den,
        )
    };
    let product = digits.checked_mul(num).ok_or_else(too_large)?;
    if unit == Unit::Devices && product % den != 0 {
        return Err(bad("a fraction of a device"));
    }
    let value = product.div_ceil(den);
    u64::try_from(value).map_err(|_| too_large())
}

/// Formats millicores as Kubernetes writes them: `"2"` for whole cores, `"500m"` otherwise.
pub fn format_cpu(millicores: u64) -> String {
    if millicores.is_multiple_of(1000) {
        (millicores / 1000).to_string()
    } else {
        format!("{millicores}m")
    }
}

/// Formats bytes with the largest binary suffix that divides them exactly (`"4Gi"`).
pub fn format_memory(bytes: u64) -> String {
    for (suffix, shift) in [
        ("Ei", 60),
        ("Pi", 50),
        ("Ti", 40),
        ("Gi", 30),
        ("Mi", 20),
        ("Ki", 10),
    ] {
        if bytes != 0 && bytes.is_multiple_of(1u64 << shift) {
            return format!("{}{suffix}", bytes >> shift);
        }
    }
    bytes.to_string()
}

/// The longest duration accepted: a year.
const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

/// Parses a duration: one or more `<number><unit>` with units `ms`, `s`, `m`, `h`, `d`
/// (`"90s"`, `"1h30m"`, `"1.5h"`), or a bare number of seconds.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = |why: &str| {
        format!(
            "{why} in {text:?}: expected a duration such as \"30s\", \"10m\", \"1h30m\" or \"500ms\""
        )
    };
    let text = text.trim();
    if text.is_empty() {
        return Err(bad("empty duration"));
    }
    if let Ok(seconds) = text.parse::<u64>() {
        return checked(Duration::from_secs(seconds.min(u64::MAX / 2)), &bad);
    }
    let mut total = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| bad("a number without a unit"))?;
        let (number, tail) = rest.split_at(number_end);
        let value: f64 = number.parse().map_err(|_| bad("no number"))?;
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_end);
        let seconds = match unit {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            other => return Err(bad(&format!("unknown unit {other:?}"))),
        };
        total += value * seconds;
        rest = tail;
    }
    if !total.is_finite() || total > MAX_DURATION.as_secs_f64() {
        return Err(bad("longer than a year"));
    }
    checked(Duration::from_secs_f64(total), &bad)
}

fn checked(d: Duration, bad: &dyn Fn(&str) -> String) -> Result<Duration, String> {
    if d > MAX_DURATION {
        Err(bad("longer than a year"))
    } else if d.is_zero() {
        Err(bad("zero"))
    } else {
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_parse_exactly_and_round_up() {
        let cpu = |t| parse_quantity(t, Unit::Millicores);
        assert_eq!(cpu("2"), Ok(2000));
        assert_eq!(cpu("500m"), Ok(500));
        assert_eq!(cpu("0.5"), Ok(500));
        assert_eq!(cpu("0.1m"), Ok(1));
        assert_eq!(cpu("1e3"), Ok(1_000_000));
        let mem = |t| parse_quantity(t, Unit::Bytes);
        assert_eq!(mem("4Gi"), Ok(4 << 30));
        assert_eq!(mem("512Mi"), Ok(512 << 20));
        assert_eq!(mem("1G"), Ok(1_000_000_000));
        assert_eq!(mem("1.5Ki"), Ok(1536));
        assert_eq!(mem("123"), Ok(123));
        let gpu = |t| parse_quantity(t, Unit::Devices);
        assert_eq!(gpu("1"), Ok(1));
        assert!(gpu("0.5").unwrap_err().contains("fraction"));
        for bad in [
            "",
            "-1",
            "4Gx",
            "abc",
            "1..2",
            ".",
            "99999999999999999999Ei",
            "1e99",
        ] {
            assert!(mem(bad).is_err(), "{bad}");
        }
        assert!(mem("4Gx").unwrap_err().contains("512Mi"));
        assert_eq!(format_cpu(2000), "2");
        assert_eq!(format_cpu(500), "500m");
        assert_eq!(format_memory(4 << 30), "4Gi");
        assert_eq!(format_memory(1000), "1000");
    }

    #[test]
    fn durations_parse_go_style() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        for bad in ["", "0s", "10x", "s", "1e400h", "99999999d", "10 m"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
