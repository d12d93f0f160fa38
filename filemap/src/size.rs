//! Byte counts as people type them: `4096`, `64K`, `64KiB`, `1m`, `8 MiB`.

#![forbid(unsafe_code)]

/// Why [`parse_size`] refused a text. Each variant carries the text as
/// given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseSizeError {
    /// Nothing but white space.
    #[error("empty size {text:?} (examples: 4096, 64K, 1MiB)")]
    Empty {
        /// The text as given.
        text: String,
    },
    /// A leading `-`: sizes are never negative.
    #[error("{text:?} is negative; a size is a whole number of bytes (examples: 4096, 64K, 1MiB)")]
    Negative {
        /// The text as given.
        text: String,
    },
    /// A `.` or `,` in the number: sizes are whole numbers of bytes.
    #[error(
        "{text:?} has a fraction; a size is a whole number of bytes or units (e.g. 1536K, not 1.5M)"
    )]
    Fraction {
        /// The text as given.
        text: String,
    },
    /// No digits where the number should be (a sign such as `+` included).
    #[error("{text:?} is not a size (examples: 4096, 64K, 1MiB)")]
    NotANumber {
        /// The text as given.
        text: String,
    },
    /// The suffix is none of B, K, KB, KiB, M, MB, MiB, G, GB, GiB.
    #[error(
        "{text:?} has an unknown unit {unit:?} (use K, M or G, KiB, MiB or GiB, or none for bytes)"
    )]
    UnknownUnit {
        /// The text as given.
        text: String,
        /// The suffix that is no unit.
        unit: String,
    },
    /// More than `u64::MAX` bytes.
    #[error("{text:?} is more than {} bytes", u64::MAX)]
    Overflow {
        /// The text as given.
        text: String,
    },
}

/// Parse a byte count: a whole number, optionally followed by a unit.
///
/// Units are powers of 1024 whatever their spelling, case-insensitive,
/// each with an optional trailing `B`: `K`, `KB`, `KiB` (1024), `M`, `MB`,
/// `MiB` (1024²), `G`, `GB`, `GiB` (1024³); `B` alone or no unit means
/// bytes. White space around the text and between the number and the unit
/// is ignored. Negative numbers, fractions, other units and counts above
/// `u64::MAX` are refused with a [`ParseSizeError`] carrying the text.
///
/// ```
/// use filemap::admin::parse_size;
/// assert_eq!(parse_size("4096"), Ok(4096));
/// assert_eq!(parse_size("64k"), Ok(64 << 10));
/// assert_eq!(parse_size("1 MiB"), Ok(1 << 20));
/// assert_eq!(parse_size("2GB"), Ok(2 << 30));
/// assert!(parse_size("1.5M").is_err());
/// ```
///
/// # Errors
/// [`ParseSizeError`]: empty, negative, fractional, not a number, unknown
/// unit, or too large.
pub fn parse_size(s: &str) -> Result<u64, ParseSizeError> {
    let text = || s.to_owned();
    let t = s.trim();
    if t.is_empty() {
        return Err(ParseSizeError::Empty { text: text() });
    }
    if t.starts_with('-') {
        return Err(ParseSizeError::Negative { text: text() });
    }
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, rest) = t.split_at(digits_end);
    if rest.starts_with(['.', ',']) {
        return Err(ParseSizeError::Fraction { text: text() });
    }
    if digits.is_empty() {
        return Err(ParseSizeError::NotANumber { text: text() });
    }
    let unit = rest.trim_start();
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => {
            return Err(ParseSizeError::UnknownUnit {
                text: text(),
                unit: unit.to_owned(),
            })
        }
    };
    // Digits only, so the one way `parse` fails is overflow.
    let number: u64 = digits
        .parse()
        .map_err(|_| ParseSizeError::Overflow { text: text() })?;
    number
        .checked_mul(1 << shift)
        .ok_or(ParseSizeError::Overflow { text: text() })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{parse_size, ParseSizeError};

    /// Every spelling of every unit, with its multiplier.
    const UNITS: [(&str, u64); 10] = [
        ("", 1),
        ("B", 1),
        ("K", 1 << 10),
        ("KB", 1 << 10),
        ("KiB", 1 << 10),
        ("M", 1 << 20),
        ("MB", 1 << 20),
        ("MiB", 1 << 20),
        ("G", 1 << 30),
        ("GiB", 1 << 30),
    ];

    #[test]
    fn plain_numbers_are_bytes() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("  4096\n"), Ok(4096));
        assert_eq!(parse_size("007"), Ok(7));
        assert_eq!(parse_size("18446744073709551615"), Ok(u64::MAX));
    }

    #[test]
    fn units_are_powers_of_1024_in_any_case() {
        assert_eq!(parse_size("64K"), Ok(65536));
        assert_eq!(parse_size("64k"), Ok(65536));
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("64kib"), Ok(65536));
        assert_eq!(parse_size("64kB"), Ok(65536));
        assert_eq!(parse_size("1m"), Ok(1 << 20));
        assert_eq!(parse_size("1 MiB"), Ok(1 << 20));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("3gb"), Ok(3 << 30));
        assert_eq!(parse_size("12B"), Ok(12));
        assert_eq!(parse_size("12 b"), Ok(12));
    }

    #[test]
    fn bad_sizes_are_refused_with_the_text_and_why() {
        let text = |s: &str| s.to_owned();
        assert_eq!(
            parse_size(""),
            Err(ParseSizeError::Empty { text: text("") })
        );
        assert_eq!(
            parse_size("  "),
            Err(ParseSizeError::Empty { text: text("  ") })
        );
        assert_eq!(
            parse_size("-1K"),
            Err(ParseSizeError::Negative { text: text("-1K") })
        );
        assert_eq!(
            parse_size("1.5M"),
            Err(ParseSizeError::Fraction { text: text("1.5M") })
        );
        assert_eq!(
            parse_size(".5M"),
            Err(ParseSizeError::Fraction { text: text(".5M") })
        );
        assert_eq!(
            parse_size("1,5"),
            Err(ParseSizeError::Fraction { text: text("1,5") })
        );
        for s in ["x", "K", "+5", "MiB", "0x10"] {
            let want = if s == "0x10" {
                ParseSizeError::UnknownUnit {
                    text: text(s),
                    unit: text("x10"),
                }
            } else {
                ParseSizeError::NotANumber { text: text(s) }
            };
            assert_eq!(parse_size(s), Err(want), "{s}");
        }
        assert_eq!(
            parse_size("12XB"),
            Err(ParseSizeError::UnknownUnit {
                text: text("12XB"),
                unit: text("XB"),
            })
        );
        for s in ["1T", "1KiBB", "1 K B", "1kk", "1Mi"] {
            assert!(
                matches!(parse_size(s), Err(ParseSizeError::UnknownUnit { .. })),
                "{s}"
            );
        }
        for s in [
            "18446744073709551616",
            "99999999999999999999G",
            "17179869184G",
            "18014398509481984K",
        ] {
            assert_eq!(
                parse_size(s),
                Err(ParseSizeError::Overflow { text: text(s) }),
                "{s}"
            );
        }
        // The largest multiple that fits.
        assert_eq!(parse_size("17179869183G"), Ok(17_179_869_183 << 30));
    }

    #[test]
    fn errors_name_the_text_and_the_fix() {
        let msg = |s| parse_size(s).unwrap_err().to_string();
        assert!(msg("12XB").contains("\"12XB\""), "{}", msg("12XB"));
        assert!(msg("12XB").contains("unknown unit \"XB\""));
        assert!(msg("1.5M").contains("fraction"));
        assert!(msg("-3").contains("negative"));
        assert!(msg("99999999999999999999").contains("18446744073709551615"));
    }

    proptest! {
        /// `n` followed by any spelling of a unit is `n × unit`, or an
        /// overflow error exactly when that product does not fit.
        #[test]
        fn n_times_unit_round_trips(
            n in prop_oneof![0u64..=1 << 20, any::<u64>()],
            unit in 0..UNITS.len(),
            lower in any::<bool>(),
            space in any::<bool>(),
        ) {
            let (suffix, mult) = UNITS[unit];
            let suffix = if lower { suffix.to_ascii_lowercase() } else { suffix.to_owned() };
            let text = format!("{n}{}{suffix}", if space { " " } else { "" });
            match n.checked_mul(mult) {
                Some(bytes) => prop_assert_eq!(parse_size(&text), Ok(bytes)),
                None => prop_assert_eq!(parse_size(&text), Err(ParseSizeError::Overflow { text })),
            }
        }
    }
}
