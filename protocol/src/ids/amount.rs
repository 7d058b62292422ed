//! Amounts in fen (0.01 CNY) from decimal text, for conversion values
//! (`examples/ATTRIBUTION.md`, C3): decided on the digits, never in floating
//! point, so every node and the reference read the same amount.

/// A conversion value in fen: decimal text, optionally signed, rounded half
/// up to the fen on its third decimal. None when it counts 0: missing,
/// unparseable or negative.
pub fn parse(text: &str) -> Option<u64> {
    let t = text.trim();
    let (negative, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (whole, fraction) = t.split_once('.').unwrap_or((t, ""));
    let digits = |s: &str| s.bytes().all(|c| c.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !digits(whole) || !digits(fraction) {
        return None;
    }
    let fraction = fraction.as_bytes();
    let digit = |i: usize| fraction.get(i).map_or(0, |c| u64::from(c - b'0'));
    let yuan = whole.bytes().fold(0u64, |n, c| {
        n.saturating_mul(10).saturating_add(u64::from(c - b'0'))
    });
    let fen = yuan
        .saturating_mul(100)
        .saturating_add(digit(0) * 10 + digit(1))
        .saturating_add(u64::from(digit(2) >= 5));
    // "-0.00" is zero, not a negative value.
    if negative && fen > 0 {
        return None;
    }
    Some(fen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_to_fen() {
        for (text, fen) in [
            ("1250.00", Some(125_000)),
            (" 7 ", Some(700)),
            ("+0.5", Some(50)),
            (".5", Some(50)),
            ("5.", Some(500)),
            ("0.004", Some(0)),
            ("0.005", Some(1)),
            ("2.675", Some(268)),
            ("-0.00", Some(0)),
            ("-5", None),
            ("", None),
            (".", None),
            ("1e3", None),
            ("1,250.00", None),
            ("12a", None),
            ("99999999999999999999999", Some(u64::MAX)),
        ] {
            assert_eq!(parse(text), fen, "{text:?}");
        }
    }
}
