//! Comma-separated decimal text (`"9.31,-0.25,120.5"`) into `f32`s, the bulk of a snapshot.
//!
//! Elements written as short decimals, as sensors write them, take a fast path that yields the
//! correctly rounded `f32`; anything else (exponents, long mantissas, odd spacing) goes through
//! the general parser, so the result is always the one `str::parse::<f32>` gives. Inside JSON
//! strings the fast path reads eight numbers at a time where the processor has AVX-512
//! (`avx512`), a byte at a time elsewhere.

/// Appends the comma-separated numbers of `body` to `out`; `None` at the first element that
/// is not a finite `f32` (elements already appended stay: the caller cuts them off).
pub(crate) fn parse_f32_list(body: &str, out: &mut Vec<f32>) -> Option<()> {
    let mut rest = body;
    loop {
        let bytes = rest.as_bytes();
        let element =
            short_decimal(bytes).filter(|&(_, end)| end == bytes.len() || bytes[end] == b',');
        let end = match element {
            Some((value, end)) => {
                out.push(value);
                end
            }
            None => {
                let end = rest.find(',').unwrap_or(rest.len());
                out.push(parse_f32(&rest[..end])?);
                end
            }
        };
        if end == rest.len() {
            return Some(());
        }
        rest = &rest[end + 1..];
    }
}

/// Appends the numbers of a JSON string body of short decimals, `1.5,-2,0.25"`, to `out`
/// and returns the bytes read through the closing quote; `None` (with `out` as it was) at
/// anything else, for the general path to handle.
pub(crate) fn quoted_list(bytes: &[u8], out: &mut Vec<f32>) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    if *AVX512 {
        // SAFETY: the processor has the extensions the function is compiled for.
        return unsafe { avx512::quoted_list(bytes, out) };
    }
    scalar_quoted_list(bytes, out)
}

#[cfg(target_arch = "x86_64")]
mod avx512;

/// Whether `avx512` can run here, asked once.
#[cfg(target_arch = "x86_64")]
static AVX512: std::sync::LazyLock<bool> = std::sync::LazyLock::new(avx512::available);

/// [`quoted_list`] a byte at a time, on any processor.
fn scalar_quoted_list(bytes: &[u8], out: &mut Vec<f32>) -> Option<usize> {
    let start = out.len();
    let mut at = 0;
    while let Some((value, used)) = short_decimal(&bytes[at..]) {
        out.push(value);
        at += used;
        match bytes.get(at) {
            Some(b',') => at += 1,
            Some(b'"') => return Some(at + 1),
            _ => break,
        }
    }
    out.truncate(start);
    None
}

/// One number with surrounding whitespace; `None` unless it is a finite `f32`.
fn parse_f32(item: &str) -> Option<f32> {
    let t = item.trim();
    // fast-float accepts "inf", "nan" and a trailing exponent sign; none is a number we take.
    let last = *t.as_bytes().last()?;
    if !(last.is_ascii_digit() || last == b'.') {
        return None;
    }
    fast_float2::parse::<f32, _>(t)
        .ok()
        .filter(|v| v.is_finite())
}

const POW10: [u64; 8] = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000];
const INVERSE_POW10: [f64; 8] = [1e0, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7];

/// A leading number `-?digits[.digits]` of `bytes` whose digits form an integer m ≤ 2^24 with
/// k ≤ 7 decimals: its value and the index of the byte after it.
///
/// The value is `m · 10^-k` computed in `f64`, then rounded to `f32`: cheaper than a division
/// and still the correctly rounded result. The `f64` product is within 2^-52 (relative) of
/// m / 10^k. A point halfway between two `f32`s is M · 2^e with M odd in [2^24, 2^25), e < 0
/// here; m / 10^k is never one (that would make m a multiple of M), and otherwise differs from
/// it by a nonzero integer over 10^k · 2^-e, which is at least 2^-48.3 of its size for k ≤ 7.
/// So the product and the exact value round to the same `f32`.
#[inline]
fn short_decimal(bytes: &[u8]) -> Option<(f32, usize)> {
    let negative = bytes.first() == Some(&b'-');
    let mut i = usize::from(negative);
    let (whole, mut mantissa) = digit_run(bytes, i)?;
    i += whole;
    let mut decimals = 0;
    if bytes.get(i) == Some(&b'.') {
        i += 1;
        let (n, value) = digit_run(bytes, i)?;
        decimals = n;
        mantissa = mantissa * POW10[n] + value;
        i += n;
    }
    if whole + decimals == 0 || mantissa > 1 << 24 {
        return None;
    }
    let magnitude = (mantissa as f64 * INVERSE_POW10[decimals]) as f32;
    Some((if negative { -magnitude } else { magnitude }, i))
}

/// The run of ASCII digits at `at`: its length and value, `None` when longer than 7 digits
/// (so a mantissa of whole and decimal digits never overflows, and k ≤ 7).
#[inline]
fn digit_run(bytes: &[u8], at: usize) -> Option<(usize, u64)> {
    // Byte by byte: the branches predict well and the loads of the next number need not
    // wait for this one's length, which beats reading eight digits per step.
    let run = &bytes[at.min(bytes.len())..];
    let run = &run[..run.len().min(8)];
    let mut value = 0;
    for (n, &b) in run.iter().enumerate() {
        let d = b.wrapping_sub(b'0');
        if d >= 10 {
            return Some((n, value));
        }
        value = value * 10 + u64::from(d);
    }
    (run.len() < 8).then_some((run.len(), value))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    type ListReader = fn(&[u8], &mut Vec<f32>) -> Option<usize>;

    pub(super) fn general(body: &str) -> Option<Vec<f32>> {
        body.split(',').map(parse_f32).collect()
    }

    #[test]
    fn digit_runs_of_every_length() {
        for text in ["", "7", "12", "1234567", "0000001", "9999999"] {
            let padded = format!("{text},xxxxxxxxxx");
            let want = (text.len(), text.parse().unwrap_or(0));
            assert_eq!(digit_run(padded.as_bytes(), 0), Some(want), "{text}");
            assert_eq!(
                digit_run(text.as_bytes(), 0),
                Some(want),
                "{text} at the end"
            );
        }
        assert_eq!(digit_run(b"12345678,xxxxxxx", 0), None);
        assert_eq!(digit_run(b"123456789", 0), None);
        assert_eq!(digit_run(b"12:/;", 0), Some((2, 12)));
    }

    /// Every 97th mantissa up to 2^24 at every number of decimals the fast path takes, bit
    /// for bit against the standard library (run with step 1, it passes too).
    #[test]
    fn short_decimals_round_like_the_standard_library() {
        let mut text = String::new();
        for k in 1..=7 {
            for m in (0..=1u64 << 24).step_by(97).chain([(1 << 24) - 1, 1 << 24]) {
                let digits = format!("{m:0>width$}", width = k + 1);
                let (whole, decimals) = digits.split_at(digits.len() - k);
                text.clear();
                text.push_str(whole);
                text.push('.');
                text.push_str(decimals);
                let (fast, end) = short_decimal(text.as_bytes()).expect("a short decimal");
                assert_eq!(end, text.len());
                let want: f32 = text.parse().unwrap();
                assert_eq!(fast.to_bits(), want.to_bits(), "{text}");
            }
        }
    }

    proptest! {
        /// The fast path reads every list exactly as the general parser does, bit for bit:
        /// short and long mantissas, many decimals, signs, spaces, and elements it must refuse.
        #[test]
        fn fast_list_parsing_matches_the_general_parser(
            items in prop::collection::vec(prop_oneof![
                6 => (any::<bool>(), 0u64..100_000_000, 0usize..12, 0usize..2).prop_map(
                    |(neg, m, point, pad)| {
                        let digits = m.to_string();
                        let at = digits.len().saturating_sub(point);
                        let (int, frac) = digits.split_at(at);
                        let pad = " ".repeat(pad);
                        let sign = if neg { "-" } else { "" };
                        format!("{pad}{sign}{int}.{frac}{pad}")
                    }),
                2 => any::<f32>().prop_map(|f| f.to_string()),
                1 => "[0-9.e+\\- ]{0,6}",
                1 => "[0-9]{0,9}\\.?[0-9]{0,9}",
                1 => Just("99999999999999999999.5".to_owned()),
            ], 1..12),
        ) {
            let body = items.join(",");
            let bits = |v: &Vec<f32>| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            let want = general(&body);
            let mut fast = Vec::new();
            let got = parse_f32_list(&body, &mut fast).map(|()| fast);
            prop_assert_eq!(got.as_ref().map(bits), want.as_ref().map(bits), "{:?}", body);
            // Inside a JSON string, by the reader this processor uses and by the scalar one:
            // either the same numbers through the closing quote, or nothing taken at all.
            for read in [quoted_list as ListReader, scalar_quoted_list] {
                let mut quoted = vec![7.0];
                // Room after the list for the eight-byte reads of the AVX-512 reader.
                match read(format!("{body}\",\"next\":1}}").as_bytes(), &mut quoted) {
                    Some(used) => {
                        prop_assert_eq!(used, body.len() + 1);
                        prop_assert_eq!(Some(bits(&quoted[1..].to_vec())), want.as_ref().map(bits));
                    }
                    None => prop_assert_eq!(quoted, vec![7.0]),
                }
            }
        }
    }
}
