//! Lists of short decimals read eight numbers at a time with AVX-512, on processors that
//! have it (chosen at run time by [`super::quoted_list`]).
//!
//! A byte-at-a-time reader spends most of its time finding where each number ends, and must
//! finish one number to know where the next begins. Here a 64-byte block is classified at
//! once: the commas and the closing quote give every number's start and end, and eight
//! numbers then go through the same steps side by side, one number per 64-bit lane:
//!
//! 1. the number's bytes, at most eight after an optional `-`, as a little-endian word;
//! 2. digits become 0..=9, and the one `.` allowed is found and its gap closed;
//! 3. the digits, right-aligned, become an integer m in three multiply-adds (pairs, quads,
//!    all eight), each one instruction for all lanes;
//! 4. m · 10^-k in `f64`, rounded to `f32` — the same arithmetic, and so the same correctly
//!    rounded result, as the scalar path (see `short_decimal`).
//!
//! A list whose numbers are not all short decimals (m ≤ 2^24, k ≤ 7) is refused as a whole,
//! as the scalar path refuses it; the lanes also take integers of eight digits up to 2^24,
//! which the scalar path leaves to the general parser (the value is the same).

use std::arch::x86_64::*;

/// Whether this processor has every AVX-512 extension [`quoted_list`] uses.
pub(super) fn available() -> bool {
    is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512dq")
        && is_x86_feature_detected!("avx512cd")
        && is_x86_feature_detected!("avx512vl")
        && is_x86_feature_detected!("avx512vbmi")
        && is_x86_feature_detected!("avx512vbmi2")
}

/// Number ends gathered before they are converted, eight at a time.
const CHUNK: usize = 128;

/// As [`super::quoted_list`]: the numbers of a JSON string body of short decimals appended to
/// `out` and the bytes read through the closing quote, or `None` with `out` as it was.
///
/// # Safety
///
/// The processor must have the extensions [`available`] checks.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512cd,avx512vl,avx512vbmi,avx512vbmi2")]
pub(super) unsafe fn quoted_list(bytes: &[u8], out: &mut Vec<f32>) -> Option<usize> {
    let start = out.len();
    match read(bytes, out) {
        Read::List(used) => Some(used),
        Read::NotShort => {
            out.truncate(start);
            None
        }
        Read::Elsewhere => {
            // Numbers of more than eight bytes, or a list too close to the end of the input
            // for eight-byte reads: the scalar reader decides.
            out.truncate(start);
            super::scalar_quoted_list(bytes, out)
        }
    }
}

enum Read {
    /// A list of short decimals, read through its closing quote after this many bytes.
    List(usize),
    /// Not a list of short decimals.
    NotShort,
    /// For the scalar reader.
    Elsewhere,
}

#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512cd,avx512vl,avx512vbmi,avx512vbmi2")]
fn read(bytes: &[u8], out: &mut Vec<f32>) -> Read {
    // ends[0] is the end of the number before the chunk's first (one before its start);
    // ends[1..=n] the chunk's. Room for one more block's worth of ends past CHUNK, and for
    // reading eight past the last.
    let mut ends = [0u32; CHUNK + 1 + 64 + 8];
    let Ok(len) = u32::try_from(bytes.len()) else {
        return Read::Elsewhere;
    };
    ends[0] = u32::MAX;
    let mut block_start = 0u32;
    loop {
        let mut n = 0;
        let mut closing = None;
        while n < CHUNK && closing.is_none() {
            let Some((mask, stop)) = block(bytes, block_start as usize) else {
                return Read::NotShort;
            };
            if stop < 64 {
                let at = block_start + stop;
                if bytes.get(at as usize) != Some(&b'"') {
                    return Read::NotShort;
                }
                closing = Some(at);
            }
            n += positions(mask, block_start, &mut ends[1 + n..]);
            block_start += 64;
        }
        // Every block held an end, so n ≥ 1.
        let last = ends[n];
        if last as usize + 8 > len as usize {
            return Read::Elsewhere;
        }
        if let Some(refusal) = convert(bytes, &ends, n, out) {
            return refusal;
        }
        if let Some(at) = closing {
            return Read::List(at as usize + 1);
        }
        ends[0] = last;
        // The number after the last end continues in the next block: read it again from its
        // start with the next chunk.
        block_start = last + 1;
    }
}

/// The 64 bytes from `at` as a mask of number ends (commas, and the first byte that is not
/// part of a list when it lies in the block) and that byte's position (64 when none);
/// `None` when the block neither ends a number nor the list (a number of 64 bytes or more).
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512cd,avx512vl,avx512vbmi,avx512vbmi2")]
fn block(bytes: &[u8], at: usize) -> Option<(u64, u32)> {
    let rest = &bytes[at.min(bytes.len())..];
    let in_input = u64::MAX
        .checked_shr(64 - rest.len().min(64) as u32)
        .unwrap_or(0);
    // SAFETY: the masked load reads only the bytes of `rest` (at most 64); the others are 0.
    let x = unsafe { _mm512_maskz_loadu_epi8(in_input, rest.as_ptr().cast()) };
    // `,` `-` `.` `/` and the digits are 0x2C..=0x39; `/` is the one to leave out.
    let in_range = _mm512_cmple_epu8_mask(
        _mm512_sub_epi8(x, _mm512_set1_epi8(0x2C)),
        _mm512_set1_epi8(0x39 - 0x2C),
    );
    let accepted = in_range & _mm512_cmpneq_epi8_mask(x, _mm512_set1_epi8(b'/' as i8));
    let stop = (!accepted).trailing_zeros();
    let below_stop = u64::MAX.checked_shr(64 - stop).unwrap_or(0);
    let commas = _mm512_cmpeq_epi8_mask(x, _mm512_set1_epi8(b',' as i8)) & below_stop;
    let ends = if stop < 64 {
        commas | 1 << stop
    } else {
        commas
    };
    (ends != 0).then_some((ends, stop))
}

/// Writes `base` plus the position of each bit of `mask`, lowest first, to `to`; returns how
/// many. Sixteen at a time, written whether or not that many are set: `to` must have room for
/// 64.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512cd,avx512vl,avx512vbmi,avx512vbmi2")]
fn positions(mask: u64, base: u32, to: &mut [u32]) -> usize {
    let count = mask.count_ones() as usize;
    assert!(to.len() >= 64, "room for a block's positions");
    let iota = _mm512_set_epi8(
        63, 62, 61, 60, 59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 49, 48, 47, 46, 45, 44, 43, 42, 41,
        40, 39, 38, 37, 36, 35, 34, 33, 32, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18,
        17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0,
    );
    let packed = _mm512_maskz_compress_epi8(mask, iota);
    let base = _mm512_set1_epi32(base as i32);
    let mut written = 0;
    let mut lanes = packed;
    loop {
        let sixteen = _mm512_add_epi32(_mm512_cvtepu8_epi32(_mm512_castsi512_si128(lanes)), base);
        // SAFETY: `written` ≤ 48 here, and `to` has room for 64.
        unsafe { _mm512_storeu_si512(to.as_mut_ptr().add(written).cast(), sixteen) };
        written += 16;
        if written >= count {
            return count;
        }
        lanes = _mm512_alignr_epi32::<4>(lanes, lanes);
    }
}

/// Byte 8 of a 128-bit lane in every byte of a qword, for a byte shuffle.
const BYTE_8: i64 = 0x0808_0808_0808_0808;

/// Converts the `count` numbers whose ends are `ends[1..=count]` (each starting after the end
/// before it) and appends them to `out`; `None` when all were short decimals, else why not
/// (`out` then keeps its length). Every
/// number's first eight bytes must lie in `bytes`, and `ends` must hold eight values past
/// the last end (read, not used).
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512cd,avx512vl,avx512vbmi,avx512vbmi2")]
fn convert(bytes: &[u8], ends: &[u32], count: usize, out: &mut Vec<f32>) -> Option<Read> {
    assert!(ends.len() > count + 8, "eight ends readable past the last");
    // Ends increase, so this keeps every number's first eight bytes inside `bytes`.
    assert!(
        ends[count] as usize + 8 <= bytes.len(),
        "eight bytes readable from every number's start"
    );
    out.reserve(count);
    let out_start = out.len();
    let mut all_short = true;
    let mut all_fit = true;
    for group in (0..count).step_by(8) {
        let lanes = (count - group).min(8);
        let active = ((1u16 << lanes) - 1) as __mmask8;
        // SAFETY: both loads read 8 values of `ends` from at most `count` (asserted above);
        // lanes past `count` are not used.
        let (start, end) = unsafe {
            (
                _mm256_loadu_si256(ends.as_ptr().add(group).cast()),
                _mm256_loadu_si256(ends.as_ptr().add(group + 1).cast()),
            )
        };
        let start = _mm512_cvtepu32_epi64(_mm256_add_epi32(start, _mm256_set1_epi32(1)));
        let end = _mm512_cvtepu32_epi64(end);
        // (The first list's sentinel end, u32::MAX, wraps to its start 0.)
        let window_start = ends[group].wrapping_add(1) as usize;
        let word = match bytes.get(window_start..window_start + 128) {
            // The group's numbers lie in the 128 bytes from the first one's start (eight of
            // at most nine bytes with their commas, unless some does not fit a lane anyway):
            // one permutation picks each lane's eight bytes from them.
            Some(window) => {
                // SAFETY: the loads read the 128 bytes of `window`.
                let (low, high) = unsafe {
                    (
                        _mm512_loadu_si512(window.as_ptr().cast()),
                        _mm512_loadu_si512(window.as_ptr().add(64).cast()),
                    )
                };
                // Each lane's offset in the window, in all its bytes, plus 0..8.
                let offset = _mm512_sub_epi64(start, _mm512_set1_epi64(window_start as i64));
                // (Lanes whose offset is past 120 follow a number too long for a lane, so the
                // group goes to the scalar reader whatever they read.)
                let low_byte = _mm512_set_epi64(BYTE_8, 0, BYTE_8, 0, BYTE_8, 0, BYTE_8, 0);
                let spread = _mm512_shuffle_epi8(offset, low_byte);
                let index = _mm512_add_epi8(spread, _mm512_set1_epi64(0x0706_0504_0302_0100));
                _mm512_permutex2var_epi8(low, index, high)
            }
            // SAFETY: each active lane reads 8 bytes from a number's start, which the
            // assertion above keeps inside `bytes` (a start is at most its end).
            None => unsafe {
                _mm512_mask_i64gather_epi64::<1>(
                    _mm512_setzero_si512(),
                    active,
                    start,
                    bytes.as_ptr().cast(),
                )
            },
        };
        let (values, short, fits) = eight_numbers(word, _mm512_sub_epi64(end, start));
        all_short &= short & active == active;
        all_fit &= fits & active == active;
        // SAFETY: `reserve(count)` above left room for numbers `0..count` past `out_start`.
        unsafe { _mm256_mask_storeu_ps(out.as_mut_ptr().add(out_start + group), active, values) };
    }
    if !all_fit {
        return Some(Read::Elsewhere);
    }
    if !all_short {
        return Some(Read::NotShort);
    }
    // SAFETY: the loop above wrote numbers `0..count` past `out_start`, within capacity.
    unsafe { out.set_len(out_start + count) };
    None
}

/// Eight numbers, one per lane: `word` holds each number's first bytes (little-endian), `len`
/// its length. The values; a bit per lane set when it is a short decimal; and one set when
/// its digits fit in the word (else the lane says nothing).
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512cd,avx512vl,avx512vbmi,avx512vbmi2")]
fn eight_numbers(word: __m512i, len: __m512i) -> (__m256, __mmask8, __mmask8) {
    let one = _mm512_set1_epi64(1);
    let eight = _mm512_set1_epi64(8);
    let all = _mm512_set1_epi64(-1);
    let negative = _mm512_cmpeq_epi64_mask(
        _mm512_and_si512(word, _mm512_set1_epi64(0xFF)),
        _mm512_set1_epi64(i64::from(b'-')),
    );
    // The word holds eight bytes from the sign, so a negative number has seven for digits.
    let fits = _mm512_cmple_epu64_mask(len, eight);
    let word = _mm512_mask_srli_epi64(word, negative, word, 8);
    let len = _mm512_mask_sub_epi64(len, negative, len, one);
    // The lowest `n` bytes of a lane: all ones shifted right by 64 - 8n (a shift of 64 or
    // more gives 0).
    let low_bytes = |n: __m512i| {
        _mm512_srlv_epi64(
            all,
            _mm512_sub_epi64(_mm512_set1_epi64(64), _mm512_slli_epi64(n, 3)),
        )
    };
    // Digits become 0..=9 and `.` and `-` 0x1E and 0x1D: only those have a bit in 0xF0.
    let x = _mm512_and_si512(
        _mm512_xor_si512(word, _mm512_set1_epi64(0x3030_3030_3030_3030)),
        low_bytes(len),
    );
    let others = _mm512_and_si512(x, _mm512_set1_epi64(0xF0F0_F0F0_F0F0_F0F0u64 as i64));
    let no_point = _mm512_cmpeq_epi64_mask(others, _mm512_setzero_si512());
    // The lowest other byte, which must be the only one, and a point.
    let lowest = _mm512_and_si512(others, _mm512_sub_epi64(_mm512_setzero_si512(), others));
    let single = _mm512_cmpeq_epi64_mask(lowest, others);
    let point_bit = _mm512_sub_epi64(_mm512_set1_epi64(63), _mm512_lzcnt_epi64(lowest));
    let point = _mm512_srli_epi64(point_bit, 3);
    let point_shift = _mm512_slli_epi64(point, 3);
    let is_point = _mm512_cmpeq_epi64_mask(
        _mm512_and_si512(_mm512_srlv_epi64(x, point_shift), _mm512_set1_epi64(0xFF)),
        _mm512_set1_epi64(i64::from(b'.' ^ b'0')),
    );
    // Close the gap the point leaves.
    let whole = low_bytes(point);
    let closed = _mm512_or_si512(
        _mm512_and_si512(x, whole),
        _mm512_andnot_si512(whole, _mm512_srli_epi64(x, 8)),
    );
    let digits = _mm512_mask_mov_epi64(closed, no_point, x);
    let count = _mm512_mask_sub_epi64(len, !no_point, len, one);
    let decimals = _mm512_maskz_sub_epi64(!no_point, _mm512_sub_epi64(len, one), point);
    let count_ok = _mm512_cmpge_epu64_mask(count, one);
    // Right-aligned, leading zeros first, then pairs, quads and all eight digits.
    let a = _mm512_sllv_epi64(digits, _mm512_slli_epi64(_mm512_sub_epi64(eight, count), 3));
    let pairs = _mm512_maddubs_epi16(a, _mm512_set1_epi16(0x010A));
    let quads = _mm512_madd_epi16(pairs, _mm512_set1_epi32(0x0001_0064));
    let mantissa = _mm512_add_epi64(
        _mm512_mul_epu32(quads, _mm512_set1_epi64(10_000)),
        _mm512_srli_epi64(quads, 32),
    );
    let small = _mm512_cmple_epu64_mask(mantissa, _mm512_set1_epi64(1 << 24));
    // SAFETY: the load reads the table's eight values.
    let inverse_pow10 = unsafe { _mm512_loadu_pd(super::INVERSE_POW10.as_ptr()) };
    let magnitude = _mm512_cvtpd_ps(_mm512_mul_pd(
        _mm512_cvtepu64_pd(mantissa),
        _mm512_permutexvar_pd(decimals, inverse_pow10),
    ));
    let sign = _mm256_maskz_mov_epi32(negative, _mm256_set1_epi32(i32::MIN));
    let values = _mm256_or_ps(magnitude, _mm256_castsi256_ps(sign));
    let short = count_ok & small & (no_point | (single & is_point));
    (values, short, fits)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::floats::scalar_quoted_list;
    use crate::floats::tests::general;

    /// Short decimals as the scalar reader defines them (at most 2^24 as an integer, seven
    /// whole digits and seven decimals), of one to eight digits alike, some with a trailing
    /// point. With `fit`, cut to eight bytes with the sign, which is what a lane takes; else
    /// many are longer, for the scalar reader.
    fn number(fit: bool) -> impl Strategy<Value = String> {
        (
            any::<bool>(),
            1u32..=8,
            any::<u64>(),
            0usize..8,
            any::<bool>(),
        )
            .prop_map(move |(neg, width, seed, point, trailing_point)| {
                let m = (seed % 10u64.pow(width)).min(1 << 24);
                let digits = m.to_string();
                let point = if point == 0 && digits.len() > 7 {
                    1
                } else {
                    point
                };
                let at = digits.len().saturating_sub(point);
                let (int, frac) = digits.split_at(at);
                let sign = if neg { "-" } else { "" };
                let mut text = match (point, trailing_point) {
                    (0, false) => format!("{sign}{int}"),
                    (0, true) => format!("{sign}{int}."),
                    _ => format!("{sign}{int}.{frac}"),
                };
                if fit {
                    text.truncate(8);
                }
                text
            })
    }

    /// Elements no reader takes: empty, lone signs and points, two points, inner signs,
    /// spaces, a mantissa past 2^24.
    fn not_a_number() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            "", "-", ".", "-.", "1.2.3", "1-2", "1 ", "16777217", "99999999", "--1",
        ])
        .prop_map(str::to_owned)
    }

    fn list() -> impl Strategy<Value = (bool, Vec<String>)> {
        any::<bool>().prop_flat_map(|fit| (Just(fit), prop::collection::vec(number(fit), 1..700)))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        /// The AVX-512 reader takes a list of numbers that fit its lanes itself, bit for bit
        /// as the general parser reads it; refuses a list only when the scalar reader does
        /// too; and hands a list to the scalar reader only for a number longer than eight
        /// bytes or a list that ends within eight bytes of the input's end. Through
        /// [`quoted_list`], it takes every list the scalar reader takes, with the same values,
        /// and leaves `out` alone otherwise. Lists of up to 700 numbers cross many blocks and
        /// chunks of ends.
        #[test]
        fn reads_like_the_scalar_and_general_parsers(
            (fit, mut items) in list(),
            spoiler in prop::option::of((not_a_number(), any::<prop::sample::Index>())),
            tail in prop::sample::select(vec!["", "\"", "\"}", "\",\"x\":1234567890}", "x"]),
        ) {
            if !available() {
                return Ok(());
            }
            if let Some((bad, at)) = &spoiler {
                let at = at.index(items.len());
                items[at] = bad.clone();
            }
            let body = items.join(",");
            let input = format!("{body}{tail}");
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            let mut scalar = vec![7.0];
            let scalar_got = scalar_quoted_list(input.as_bytes(), &mut scalar);

            let mut lanes = Vec::new();
            // SAFETY: the processor has the extensions (checked above).
            match unsafe { read(input.as_bytes(), &mut lanes) } {
                Read::List(used) => {
                    prop_assert!(tail.starts_with('"'));
                    prop_assert_eq!(used, body.len() + 1);
                    let want = general(&body).expect("a list the general parser reads");
                    prop_assert_eq!(bits(&lanes), bits(&want), "{:?}", body);
                    // Only short decimals: past 2^24 the rounding argument no longer holds.
                    for item in &items {
                        let m: u64 = item.replace(['-', '.'], "").parse().unwrap();
                        prop_assert!(m <= 1 << 24, "{:?}", item);
                    }
                }
                Read::NotShort => prop_assert_eq!(scalar_got, None, "{:?}", input),
                Read::Elsewhere => prop_assert!(
                    !fit || tail.len() < 8 || items.iter().any(|t| t.len() > 8),
                    "{:?}", input
                ),
            }

            let mut wide = vec![7.0];
            // SAFETY: as above.
            match unsafe { quoted_list(input.as_bytes(), &mut wide) } {
                Some(_) => {
                    let want = general(&body).expect("a list the general parser reads");
                    prop_assert_eq!(bits(&wide[1..]), bits(&want), "{:?}", body);
                }
                None => {
                    prop_assert_eq!(&wide, &vec![7.0]);
                    prop_assert_eq!(scalar_got, None, "{:?}", input);
                }
            }
        }
    }

    /// Every short decimal shape of up to eight bytes after the sign: each length, each point
    /// position, each sign (negative ones of nine bytes go to the scalar reader), against the
    /// standard library.
    #[test]
    fn every_shape_of_a_short_decimal() {
        if !available() {
            return;
        }
        let mut body = Vec::new();
        for digits in 1..=8 {
            for point in 0..=digits {
                for sign in ["", "-"] {
                    let number: String = (0..digits)
                        .map(|i| char::from(b'1' + (i * 3 % 9) as u8))
                        .collect();
                    let (int, frac) = number.split_at(point);
                    let text = if point == digits {
                        format!("{sign}{int}")
                    } else {
                        format!("{sign}{int}.{frac}")
                    };
                    // Eight bytes with the sign, what a lane takes.
                    if text.len() <= 8 {
                        body.push(text);
                    }
                }
            }
        }
        let body = body.join(",");
        let mut out = Vec::new();
        let input = format!("{body}\"xxxxxxxxxx");
        // SAFETY: the processor has the extensions (checked above).
        let got = unsafe { read(input.as_bytes(), &mut out) };
        assert!(
            matches!(got, Read::List(used) if used == body.len() + 1),
            "the lanes read the whole list"
        );
        let want: Vec<f32> = body.split(',').map(|t| t.parse().unwrap()).collect();
        assert_eq!(
            out.iter().map(|f| f.to_bits()).collect::<Vec<_>>(),
            want.iter().map(|f| f.to_bits()).collect::<Vec<_>>(),
            "{body}"
        );
    }
}
