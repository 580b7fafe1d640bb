//! The x87 80-bit extended double (`long double` on x86-64 Linux), as far
//! as INCRBYFLOAT and HINCRBYFLOAT need it: glibc's `strtold`, one addition
//! rounded to nearest-even, and `printf("%.17Lf")`, each exact. Redis adds
//! in `long double`, so `5.6 + 3000` is `3005.60000000000000009` there, and
//! an `f64` would say `3005.6`: to give Redis's replies, this module does
//! what the FPU does, in software, on a small big-integer type.
//!
//! A value is `mantissa * 2^exponent` with a 64-bit mantissa: normal values
//! have its top bit set, and below 2^-16382 the exponent stays at its
//! minimum and the mantissa shrinks (denormals), as on the FPU.

use std::cmp::Ordering;

/// The smallest exponent (of the mantissa's last bit): 2^-16382 is the
/// smallest normal value, with a 64-bit mantissa.
const EXPONENT_MIN: i64 = -16382 - 63;
/// Values from 2^16384 on are infinite.
const BITS_MAX: i64 = 16384;
/// Redis's `MAX_LONG_DOUBLE_CHARS`: `string2ld` refuses longer texts.
pub const TEXT_BYTES_MAX: usize = 5 * 1024;

/// An unsigned big integer, little-endian 32-bit limbs, no leading zero
/// limb.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Big(Vec<u32>);

impl Big {
    fn from_u64(value: u64) -> Big {
        let mut big = Big(vec![value as u32, (value >> 32) as u32]);
        big.trim();
        big
    }

    fn trim(&mut self) {
        while self.0.last() == Some(&0) {
            self.0.pop();
        }
    }

    fn is_zero(&self) -> bool {
        self.0.is_empty()
    }

    fn bits(&self) -> i64 {
        match self.0.last() {
            None => 0,
            Some(top) => self.0.len() as i64 * 32 - i64::from(top.leading_zeros()),
        }
    }

    fn bit(&self, index: i64) -> bool {
        let limb = (index / 32) as usize;
        limb < self.0.len() && self.0[limb] >> (index % 32) & 1 == 1
    }

    /// Whether any bit below `index` is set.
    fn any_below(&self, index: i64) -> bool {
        let whole = (index / 32) as usize;
        if self.0[..whole.min(self.0.len())]
            .iter()
            .any(|&limb| limb != 0)
        {
            return true;
        }
        let part = index % 32;
        whole < self.0.len() && part > 0 && self.0[whole] & ((1 << part) - 1) != 0
    }

    fn shl(&self, count: i64) -> Big {
        assert!(count >= 0);
        let (limbs, bits) = ((count / 32) as usize, (count % 32) as u32);
        let mut result = vec![0u32; limbs];
        let mut carry = 0u32;
        for &limb in &self.0 {
            if bits == 0 {
                result.push(limb);
            } else {
                result.push(limb << bits | carry);
                carry = limb >> (32 - bits);
            }
        }
        result.push(carry);
        let mut big = Big(result);
        big.trim();
        big
    }

    fn shr(&self, count: i64) -> Big {
        assert!(count >= 0);
        let (limbs, bits) = ((count / 32) as usize, (count % 32) as u32);
        if limbs >= self.0.len() {
            return Big(Vec::new());
        }
        let source = &self.0[limbs..];
        let mut result = Vec::with_capacity(source.len());
        for (index, &limb) in source.iter().enumerate() {
            let high = source.get(index + 1).copied().unwrap_or(0);
            result.push(if bits == 0 {
                limb
            } else {
                limb >> bits | high << (32 - bits)
            });
        }
        let mut big = Big(result);
        big.trim();
        big
    }

    fn mul_small(&self, factor: u32) -> Big {
        let mut carry = 0u64;
        let mut result = Vec::with_capacity(self.0.len() + 1);
        for &limb in &self.0 {
            let product = u64::from(limb) * u64::from(factor) + carry;
            result.push(product as u32);
            carry = product >> 32;
        }
        result.push(carry as u32);
        let mut big = Big(result);
        big.trim();
        big
    }

    fn add_small(&self, addend: u32) -> Big {
        self.add(&Big::from_u64(u64::from(addend)))
    }

    fn add(&self, other: &Big) -> Big {
        let mut result = Vec::with_capacity(self.0.len().max(other.0.len()) + 1);
        let mut carry = 0u64;
        for index in 0..self.0.len().max(other.0.len()) {
            let sum = u64::from(self.0.get(index).copied().unwrap_or(0))
                + u64::from(other.0.get(index).copied().unwrap_or(0))
                + carry;
            result.push(sum as u32);
            carry = sum >> 32;
        }
        result.push(carry as u32);
        let mut big = Big(result);
        big.trim();
        big
    }

    /// `self - other`, with `self >= other`.
    fn sub(&self, other: &Big) -> Big {
        assert!(self.cmp_big(other) != Ordering::Less);
        let mut result = Vec::with_capacity(self.0.len());
        let mut borrow = 0i64;
        for index in 0..self.0.len() {
            let mut difference = i64::from(self.0[index])
                - i64::from(other.0.get(index).copied().unwrap_or(0))
                - borrow;
            borrow = i64::from(difference < 0);
            if difference < 0 {
                difference += 1 << 32;
            }
            result.push(difference as u32);
        }
        let mut big = Big(result);
        big.trim();
        big
    }

    fn cmp_big(&self, other: &Big) -> Ordering {
        self.0
            .len()
            .cmp(&other.0.len())
            .then_with(|| self.0.iter().rev().cmp(other.0.iter().rev()))
    }

    /// `(self / divisor, self % divisor != 0)`, by shift and subtract.
    fn div_sticky(&self, divisor: &Big) -> (Big, bool) {
        assert!(!divisor.is_zero());
        let mut quotient = Big(Vec::new());
        let mut remainder = Big(Vec::new());
        for index in (0..self.bits()).rev() {
            remainder = remainder.shl(1);
            if self.bit(index) {
                remainder = remainder.add_small(1);
            }
            quotient = quotient.shl(1);
            if remainder.cmp_big(divisor) != Ordering::Less {
                remainder = remainder.sub(divisor);
                quotient = quotient.add_small(1);
            }
        }
        (quotient, !remainder.is_zero())
    }

    fn pow10(exponent: u32) -> Big {
        let mut result = Big::from_u64(1);
        for _ in 0..exponent / 9 {
            result = result.mul_small(1_000_000_000);
        }
        result.mul_small(10u32.pow(exponent % 9))
    }

    fn to_decimal(&self) -> String {
        let mut chunks = Vec::new();
        let mut rest = self.clone();
        while !rest.is_zero() {
            let mut remainder = 0u64;
            for limb in rest.0.iter_mut().rev() {
                let value = remainder << 32 | u64::from(*limb);
                *limb = (value / 1_000_000_000) as u32;
                remainder = value % 1_000_000_000;
            }
            rest.trim();
            chunks.push(remainder as u32);
        }
        let Some((last, rest)) = chunks.split_last() else {
            return "0".to_string();
        };
        let mut text = last.to_string();
        for chunk in rest.iter().rev() {
            text.push_str(&format!("{chunk:09}"));
        }
        text
    }
}

/// An x87 extended value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LongDouble {
    /// `±mantissa * 2^exponent`.
    Finite {
        negative: bool,
        mantissa: u64,
        exponent: i64,
    },
    /// ±infinity.
    Infinite { negative: bool },
}

impl LongDouble {
    /// Rounds `±magnitude * 2^exponent` to nearest-even; infinite past the
    /// largest value.
    fn round(negative: bool, magnitude: &Big, exponent: i64) -> LongDouble {
        if magnitude.is_zero() {
            let (mantissa, exponent) = (0, 0);
            return LongDouble::Finite {
                negative,
                mantissa,
                exponent,
            };
        }
        let mut shift = (magnitude.bits() - 64).max(EXPONENT_MIN - exponent);
        let mut mantissa = if shift > 0 {
            let kept = magnitude.shr(shift);
            let half = magnitude.bit(shift - 1);
            let sticky = magnitude.any_below(shift - 1);
            let mut kept = kept;
            if half && (sticky || kept.bit(0)) {
                kept = kept.add_small(1);
            }
            kept
        } else {
            magnitude.shl(-shift)
        };
        if mantissa.bits() > 64 {
            mantissa = mantissa.shr(1);
            shift += 1;
        }
        let exponent = exponent + shift;
        if mantissa.bits() + exponent > BITS_MAX {
            return LongDouble::Infinite { negative };
        }
        let limbs = &mantissa.0;
        let value = u64::from(limbs.first().copied().unwrap_or(0))
            | u64::from(limbs.get(1).copied().unwrap_or(0)) << 32;
        LongDouble::Finite {
            negative,
            mantissa: value,
            exponent,
        }
    }

    /// Redis's `string2ld`: glibc's `strtold` on the whole text (decimal,
    /// hexadecimal, `inf`, `infinity`), refusing NaN, a leading blank,
    /// trailing bytes, an overflow and an underflow to zero.
    pub fn parse(text: &[u8]) -> Option<LongDouble> {
        if text.is_empty() || text.len() >= TEXT_BYTES_MAX {
            return None;
        }
        let (negative, body) = match text[0] {
            b'-' => (true, &text[1..]),
            b'+' => (false, &text[1..]),
            _ => (false, text),
        };
        let lower = body.to_ascii_lowercase();
        if lower == b"inf" || lower == b"infinity" {
            return Some(LongDouble::Infinite { negative });
        }
        let value = if lower.starts_with(b"0x") && lower.len() > 2 {
            parse_hex(negative, &lower[2..])?
        } else {
            parse_decimal(negative, &lower)?
        };
        match value {
            // strtold's ERANGE with HUGE_VAL: Redis refuses it.
            LongDouble::Infinite { .. } => None,
            finite => Some(finite),
        }
    }

    /// The sum, rounded once, as the FPU adds; `None` for NaN (∞ - ∞).
    pub fn add(self, other: LongDouble) -> Option<LongDouble> {
        use LongDouble::{Finite, Infinite};
        match (self, other) {
            (Infinite { negative: a }, Infinite { negative: b }) if a != b => None,
            (Infinite { negative }, _) | (_, Infinite { negative }) => Some(Infinite { negative }),
            (
                Finite {
                    negative: a_negative,
                    mantissa: a,
                    exponent: a_exponent,
                },
                Finite {
                    negative: b_negative,
                    mantissa: b,
                    exponent: b_exponent,
                },
            ) => {
                let exponent = a_exponent.min(b_exponent);
                let a = Big::from_u64(a).shl(a_exponent - exponent);
                let b = Big::from_u64(b).shl(b_exponent - exponent);
                let (negative, magnitude) = if a_negative == b_negative {
                    (a_negative, a.add(&b))
                } else {
                    match a.cmp_big(&b) {
                        Ordering::Greater => (a_negative, a.sub(&b)),
                        Ordering::Less => (b_negative, b.sub(&a)),
                        // x + (-x) is +0 when rounding to nearest.
                        Ordering::Equal => (false, Big(Vec::new())),
                    }
                };
                Some(LongDouble::round(negative, &magnitude, exponent))
            }
        }
    }

    /// `(long long) ceill(value * 1000.0)`, as Redis 7.0 turns a timeout
    /// in seconds into milliseconds (`getTimeoutFromObjectOrReply`): the
    /// product rounded once to a long double, rounded up to an integer,
    /// then converted as x86-64 converts, where a value out of range (an
    /// infinity included) becomes `i64::MIN`, the x87's "integer
    /// indefinite". So `0.0001` is 1 ms, `-0.001` is 0 (forever: its long
    /// double times 1000 is just above -1) and `inf` is negative.
    pub fn ceil_millis(self) -> i64 {
        let LongDouble::Finite {
            negative,
            mantissa,
            exponent,
        } = self
        else {
            return i64::MIN;
        };
        let product = Big::from_u64(mantissa).mul_small(1000);
        match LongDouble::round(negative, &product, exponent) {
            LongDouble::Infinite { .. } => i64::MIN,
            LongDouble::Finite {
                negative,
                mantissa,
                exponent,
            } => ceil_to_i64(negative, mantissa, exponent),
        }
    }

    /// Redis's `ld2string` in its human mode: `%.17Lf` (exact, rounded
    /// to nearest-even as glibc prints), trailing zeros and a trailing dot
    /// dropped, and `-0` as `0`. `None` for an infinity.
    pub fn format_human(&self) -> Option<String> {
        let LongDouble::Finite {
            negative,
            mantissa,
            exponent,
        } = *self
        else {
            return None;
        };
        let scaled = Big::from_u64(mantissa)
            .mul_small(100_000_000)
            .mul_small(1_000_000_000);
        let units = if exponent >= 0 {
            scaled.shl(exponent)
        } else {
            let shift = -exponent;
            let mut kept = scaled.shr(shift);
            let half = scaled.bit(shift - 1);
            if half && (scaled.any_below(shift - 1) || kept.bit(0)) {
                kept = kept.add_small(1);
            }
            kept
        };
        let digits = format!("{:0>18}", units.to_decimal());
        let (whole, fraction) = digits.split_at(digits.len() - 17);
        let fraction = fraction.trim_end_matches('0');
        let mut text = String::new();
        if negative {
            text.push('-');
        }
        text.push_str(whole);
        if !fraction.is_empty() {
            text.push('.');
            text.push_str(fraction);
        }
        if text == "-0" {
            text = "0".to_string();
        }
        Some(text)
    }
}

/// `(long long) ceill(±mantissa * 2^exponent)` on x86-64: `i64::MIN` out
/// of range.
fn ceil_to_i64(negative: bool, mantissa: u64, exponent: i64) -> i64 {
    let (whole, fraction) = if exponent >= 0 {
        if exponent > 64 {
            return i64::MIN;
        }
        (u128::from(mantissa) << exponent, false)
    } else if exponent <= -64 {
        (0, mantissa != 0)
    } else {
        let shift = -exponent;
        let mask = (1u64 << shift) - 1;
        (u128::from(mantissa >> shift), mantissa & mask != 0)
    };
    if negative {
        // Up is toward zero: the fraction goes.
        if whole > 1u128 << 63 {
            return i64::MIN;
        }
        (-(whole as i128)) as i64
    } else {
        let up = whole + u128::from(fraction);
        i64::try_from(up).unwrap_or(i64::MIN)
    }
}

/// Decimal digits with an optional point and exponent: the value, rounded;
/// `None` for a malformed text or an underflow to zero.
fn parse_decimal(negative: bool, text: &[u8]) -> Option<LongDouble> {
    let mantissa_end = text
        .iter()
        .position(|&byte| byte == b'e')
        .unwrap_or(text.len());
    let (digits_part, exponent_part) = text.split_at(mantissa_end);
    let mut digits = Big(Vec::new());
    let mut seen_digit = false;
    let mut seen_point = false;
    let mut scale: i64 = 0;
    let mut significant = 0i64;
    for &byte in digits_part {
        match byte {
            b'0'..=b'9' => {
                seen_digit = true;
                if !digits.is_zero() || byte != b'0' {
                    significant += 1;
                }
                digits = digits.mul_small(10).add_small(u32::from(byte - b'0'));
                if seen_point {
                    scale -= 1;
                }
            }
            b'.' if !seen_point => seen_point = true,
            _ => return None,
        }
    }
    if !seen_digit {
        return None;
    }
    if !exponent_part.is_empty() {
        scale = scale.checked_add(parse_exponent(&exponent_part[1..])?)?;
    }
    if digits.is_zero() {
        return Some(LongDouble::round(negative, &digits, 0));
    }
    // Far outside the range: the value is infinite, or zero (refused).
    let magnitude_10 = significant + scale;
    if magnitude_10 > 4940 {
        return Some(LongDouble::Infinite { negative });
    }
    if magnitude_10 < -4960 {
        return None;
    }
    let value = if scale >= 0 {
        LongDouble::round(negative, &digits.mul_pow10(scale as u32), 0)
    } else {
        let divisor = Big::pow10((-scale) as u32);
        let extra = (68 + divisor.bits() - digits.bits()).max(0);
        let (quotient, sticky) = digits.shl(extra).div_sticky(&divisor);
        let magnitude = quotient.shl(1).add_small(u32::from(sticky));
        LongDouble::round(negative, &magnitude, -extra - 1)
    };
    nonzero(value)
}

/// A decimal exponent, clamped: past ±100,000 every value is infinite or
/// zero anyway.
fn parse_exponent(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text.first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut value: i64 = 0;
    for &digit in digits {
        value = (value * 10 + i64::from(digit - b'0')).min(100_000);
    }
    Some(if negative { -value } else { value })
}

/// Hexadecimal digits with an optional point and binary exponent (`p`).
fn parse_hex(negative: bool, text: &[u8]) -> Option<LongDouble> {
    let end = text
        .iter()
        .position(|&byte| byte == b'p')
        .unwrap_or(text.len());
    let (digits_part, exponent_part) = text.split_at(end);
    let mut digits = Big(Vec::new());
    let (mut seen_digit, mut seen_point) = (false, false);
    let mut exponent: i64 = 0;
    for &byte in digits_part {
        let value = match byte {
            b'0'..=b'9' => byte - b'0',
            b'a'..=b'f' => byte - b'a' + 10,
            b'.' if !seen_point => {
                seen_point = true;
                continue;
            }
            _ => return None,
        };
        seen_digit = true;
        digits = digits.shl(4).add_small(u32::from(value));
        if seen_point {
            exponent -= 4;
        }
        if digits.bits() > 20_000 {
            return Some(LongDouble::Infinite { negative });
        }
    }
    if !seen_digit {
        return None;
    }
    if !exponent_part.is_empty() {
        exponent = exponent.checked_add(parse_exponent(&exponent_part[1..])?)?;
    }
    if digits.is_zero() {
        return Some(LongDouble::round(negative, &digits, 0));
    }
    if digits.bits() + exponent > BITS_MAX + 1 {
        return Some(LongDouble::Infinite { negative });
    }
    nonzero(LongDouble::round(negative, &digits, exponent.max(-40_000)))
}

/// A value that rounded to zero from a nonzero text underflowed: refused.
fn nonzero(value: LongDouble) -> Option<LongDouble> {
    match value {
        LongDouble::Finite { mantissa: 0, .. } => None,
        other => Some(other),
    }
}

impl Big {
    fn mul_pow10(&self, exponent: u32) -> Big {
        let mut result = self.clone();
        for _ in 0..exponent / 9 {
            result = result.mul_small(1_000_000_000);
        }
        result.mul_small(10u32.pow(exponent % 9))
    }
}

/// Redis's INCRBYFLOAT on two texts: `Err(true)` when the current value is
/// not a float, `Err(false)` when the increment is not; `Ok(None)` for a
/// NaN or infinite sum; else the text of the sum.
pub fn increment(current: Option<&[u8]>, by: &[u8]) -> Result<Option<String>, bool> {
    let current = match current {
        Some(text) => LongDouble::parse(text).ok_or(true)?,
        None => LongDouble::parse(b"0").expect("zero parses"),
    };
    let by = LongDouble::parse(by).ok_or(false)?;
    let Some(sum) = current.add(by) else {
        return Ok(None);
    };
    Ok(sum.format_human())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(a: &str, b: &str) -> String {
        increment(Some(a.as_bytes()), b.as_bytes())
            .unwrap()
            .unwrap()
    }

    #[test]
    fn sums_print_as_redis_long_doubles_do() {
        // Each expected text is what redis-server 7.0.15 replied on x86-64.
        assert_eq!(sum("10.5", "0.1"), "10.6");
        assert_eq!(sum("5.6", "3000"), "3005.60000000000000009");
        assert_eq!(sum("0.1", "0.2"), "0.3");
        assert_eq!(sum("9223372036854775802", "1.5"), "9223372036854775803.5");
        assert_eq!(sum("3", "-3"), "0");
        assert_eq!(sum("-0", "-0"), "0");
        let big = "19999999999999999999337175931169129132112019969483113441559";
        assert!(sum("1e308", "1e308").starts_with(big));
        assert_eq!(sum("1e308", "1e308").len(), 309);
        let huge = "99999999999999999999654638730996237849324925835069576313015";
        assert!(sum("1.5", "1e4000").starts_with(huge));
        assert_eq!(sum("0x10", "0.5"), "16.5");
        assert_eq!(sum("1", "1e-20"), "1");
        assert_eq!(sum("0", "1e-17"), "0.00000000000000001");
        assert_eq!(sum("0", "5e-18"), "0");
        assert_eq!(sum("0", "6e-18"), "0.00000000000000001");
        // Denormals: the smallest is accepted, below half of it is refused.
        assert_eq!(sum("0", "1e-4940"), "0");
        assert_eq!(sum("0", "0x1p-16445"), "0");
        assert_eq!(increment(Some(b"0"), b"1e-4951"), Err(false));
        assert_eq!(increment(Some(b"1"), b"-inf"), Ok(None));
    }

    fn millis(text: &str) -> i64 {
        LongDouble::parse(text.as_bytes()).unwrap().ceil_millis()
    }

    #[test]
    fn timeouts_convert_as_redis_7_0_converts_them() {
        // What redis-server 7.0.15 did with each (BLPOP k <text>) on x86-64.
        assert_eq!(millis("0"), 0);
        assert_eq!(millis("-0"), 0);
        assert_eq!(millis("1"), 1000);
        assert_eq!(millis("0.5"), 500);
        assert_eq!(millis("1.5e-4"), 1);
        assert_eq!(millis("0.0009"), 1);
        assert_eq!(millis("1e-400"), 1);
        assert_eq!(millis("0x10"), 16000);
        // Blocks forever: the long double just above -0.001, times 1000.
        assert_eq!(millis("-0.001"), 0);
        assert_eq!(millis("-0.0011"), -1);
        assert_eq!(millis("-1"), -1000);
        assert_eq!(millis("9223372036854775"), 9_223_372_036_854_775_000);
        assert_eq!(millis("inf"), i64::MIN);
        assert_eq!(millis("-inf"), i64::MIN);
        assert_eq!(millis("1e30"), i64::MIN);
        assert_eq!(millis("-1e30"), i64::MIN);
        assert_eq!(millis("9223372036854775.807"), i64::MAX);
        assert_eq!(millis("9223372036854775.808"), i64::MIN);
        assert_eq!(millis("9223372036854775.8075"), i64::MIN);
        // Near -2^63: the product rounds to a half, then up toward zero.
        assert_eq!(millis("-9223372036854775.808"), -i64::MAX);
        assert_eq!(millis("-9223372036854775.809"), i64::MIN);
    }

    #[test]
    fn bad_texts_are_refused_as_string2ld_refuses_them() {
        for bad in [
            "", " 1", "1 ", "abc", "nan", "1e", "1e+", ".", "0x", "1e99999", "1e-99999", "--1",
        ] {
            assert!(LongDouble::parse(bad.as_bytes()).is_none(), "{bad:?}");
        }
        for good in [
            "1",
            "+.5",
            "5.",
            "-1.5e3",
            "inf",
            "-Infinity",
            "0e99999",
            "0x1p3",
        ] {
            assert!(LongDouble::parse(good.as_bytes()).is_some(), "{good:?}");
        }
        assert_eq!(increment(Some(b"1"), b"inf"), Ok(None));
        assert_eq!(increment(Some(b"x"), b"1"), Err(true));
        assert_eq!(increment(Some(b"1"), b"x"), Err(false));
    }
}
