//! Exact decimal arithmetic for money and percentages.
//!
//! Shopify-style Function APIs carry money and percentages as `Decimal` strings
//! (`"19.99"`). Parsing them into `f64` would round; instead they are held as integers
//! of millionths, which is exact for every currency and percentage the platform uses.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// Number of fractional digits kept.
const SCALE_DIGITS: u32 = 6;
const SCALE: i64 = 1_000_000;

/// A signed decimal with six fractional digits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Decimal(i64);

impl Decimal {
    pub const ZERO: Decimal = Decimal(0);
    pub const HUNDRED: Decimal = Decimal(100 * SCALE);

    /// The decimal equal to the integer `n`.
    pub fn from_int(n: i64) -> Decimal {
        Decimal(n.saturating_mul(SCALE))
    }

    /// Parses `-?digits(.digits)?`; more than six fractional digits are rejected rather
    /// than silently rounded.
    pub fn parse(text: &str) -> Result<Decimal, String> {
        let invalid = || format!("{:?} is not a decimal number", text);
        let (negative, unsigned) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (whole, fraction) = match unsigned.split_once('.') {
            Some((_, "")) => return Err(invalid()),
            Some((whole, fraction)) => (whole, fraction),
            None => (unsigned, ""),
        };
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) {
            return Err(invalid());
        }
        if fraction.len() > SCALE_DIGITS as usize {
            return Err(format!(
                "{:?} has more than {} decimal places",
                text, SCALE_DIGITS
            ));
        }
        let whole: i64 = whole.parse().map_err(|_| invalid())?;
        let mut units: i64 = 0;
        for (i, digit) in fraction.bytes().enumerate() {
            units += i64::from(digit - b'0') * 10_i64.pow(SCALE_DIGITS - 1 - i as u32);
        }
        let magnitude = whole
            .checked_mul(SCALE)
            .and_then(|w| w.checked_add(units))
            .ok_or_else(|| format!("{:?} is too large", text))?;
        Ok(Decimal(if negative { -magnitude } else { magnitude }))
    }

    pub fn saturating_add(self, other: Decimal) -> Decimal {
        Decimal(self.0.saturating_add(other.0))
    }

    pub fn is_negative(self) -> bool {
        self.0 < 0
    }
}

impl fmt::Display for Decimal {
    /// Shortest exact form: `10`, `12.5`, `0.25`, `-3.125`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let magnitude = self.0.unsigned_abs();
        let scale = SCALE as u64;
        let whole = magnitude / scale;
        let mut fraction = magnitude % scale;
        if fraction == 0 {
            return write!(f, "{}{}", sign, whole);
        }
        let mut digits = SCALE_DIGITS as usize;
        while fraction % 10 == 0 {
            fraction /= 10;
            digits -= 1;
        }
        write!(f, "{}{}.{:0width$}", sign, whole, fraction, width = digits)
    }
}

impl Serialize for Decimal {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Decimal {
    /// Accepts a decimal string (`"19.99"`, the Function API's form) or a JSON integer
    /// (`3`, convenient in hand-written configuration).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Decimal, D::Error> {
        struct DecimalVisitor;

        impl<'de> Visitor<'de> for DecimalVisitor {
            type Value = Decimal;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a decimal string such as \"12.50\" or an integer")
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<Decimal, E> {
                Decimal::parse(value).map_err(E::custom)
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Decimal, E> {
                i64::try_from(value)
                    .ok()
                    .and_then(|v| v.checked_mul(SCALE))
                    .map(Decimal)
                    .ok_or_else(|| E::custom("integer is too large"))
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Decimal, E> {
                value
                    .checked_mul(SCALE)
                    .map(Decimal)
                    .ok_or_else(|| E::custom("integer is too large"))
            }
        }

        deserializer.deserialize_any(DecimalVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::Decimal;

    #[test]
    fn parses_and_prints_exactly() {
        for (text, printed) in [
            ("0", "0"),
            ("10.00", "10"),
            ("12.5", "12.5"),
            ("19.990", "19.99"),
            ("0.000001", "0.000001"),
            ("-3.25", "-3.25"),
        ] {
            assert_eq!(Decimal::parse(text).unwrap().to_string(), printed);
        }
    }

    #[test]
    fn rejects_malformed_and_overprecise_numbers() {
        for text in ["", ".5", "1.", "1e3", "abc", "1.2.3", "0.0000001", "--1"] {
            assert!(Decimal::parse(text).is_err(), "{:?} should be rejected", text);
        }
    }

    #[test]
    fn sums_money_without_rounding() {
        let sum = ["0.10", "0.20", "0.30"]
            .iter()
            .map(|s| Decimal::parse(s).unwrap())
            .fold(Decimal::ZERO, Decimal::saturating_add);
        assert_eq!(sum, Decimal::parse("0.6").unwrap());
    }
}
