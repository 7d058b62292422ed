//! Identifier kinds and their normalization.
//!
//! Both parties hash `kind || 0x00 || normalized value`, so a match needs the
//! two sides to produce identical bytes for the same person however their
//! source systems formatted the value. Everything here is deterministic and
//! free of locale or configuration, except the default phone region.
//!
//! Rejected values are reported as a [`RejectReason`] only: callers count
//! reasons per code and never see (or log) the value back from this module.

use std::fmt;
use std::str::FromStr;

use phonenumber::{Mode, country, metadata::DATABASE};
use sha2::{Digest, Sha256};

/// Longest raw value accepted, in bytes; bounds the work spent per row.
pub const MAX_RAW_BYTES: usize = 1024;

/// RFC 5321 limits a forward path to 256 octets including the angle brackets.
const MAX_EMAIL_BYTES: usize = 254;

/// What an identifier column holds. The label is part of the hashed message,
/// so it must never change once deployed.
///
/// The hashed kinds carry values hashed by a partner that will not reveal raw
/// values: `sha256_phone` is the lowercase hex SHA-256 of the E.164 string
/// with its leading '+' (`"+8613812345678"`), and `sha256_email` that of the
/// trimmed, lowercased address; both exactly as [`convert`] computes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdKind {
    Phone,
    Email,
    CnId,
    Sha256Phone,
    Sha256Email,
    Custom,
}

impl IdKind {
    pub const ALL: [IdKind; 6] = [
        IdKind::Phone,
        IdKind::Email,
        IdKind::CnId,
        IdKind::Sha256Phone,
        IdKind::Sha256Email,
        IdKind::Custom,
    ];

    /// Stable label, identical to the serde form.
    pub fn label(self) -> &'static str {
        match self {
            IdKind::Phone => "phone",
            IdKind::Email => "email",
            IdKind::CnId => "cn_id",
            IdKind::Sha256Phone => "sha256_phone",
            IdKind::Sha256Email => "sha256_email",
            IdKind::Custom => "custom",
        }
    }

    pub fn from_label(s: &str) -> Option<IdKind> {
        IdKind::ALL.into_iter().find(|k| k.label() == s)
    }
}

impl fmt::Display for IdKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

impl FromStr for IdKind {
    type Err = UnknownIdKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        IdKind::from_label(s).ok_or_else(|| UnknownIdKind(s.to_owned()))
    }
}

/// A kind label that is not one of [`IdKind::ALL`]. Holds the configured
/// label, which is configuration and not personal data.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown identifier kind '{0}': use one of phone, email, cn_id, sha256_phone, sha256_email, custom")]
pub struct UnknownIdKind(pub String);

/// A default country that names no region of the phone metadata.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown default country '{0}': use an ISO 3166 region such as CN or a calling code such as +86")]
pub struct InvalidDefaultCountry(pub String);

/// Declares [`RejectReason`] from one table, so that a variant cannot exist
/// without its code and description or be missing from `ALL`.
macro_rules! reject_reasons {
    ($($variant:ident => $code:literal, $describe:literal;)*) => {
        /// Why a value was rejected. Deliberately carries no data: it ends up
        /// in counters and logs.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum RejectReason {
            $($variant,)*
        }

        impl RejectReason {
            pub const ALL: [RejectReason; [$($code),*].len()] = [$(RejectReason::$variant),*];

            /// Stable snake_case code, a counter key in reports: never rename one.
            pub fn code(self) -> &'static str {
                match self {
                    $(RejectReason::$variant => $code,)*
                }
            }

            /// One sentence for operators reading a rejection report.
            pub fn describe(self) -> &'static str {
                match self {
                    $(RejectReason::$variant => $describe,)*
                }
            }
        }
    };
}

reject_reasons! {
    Empty => "empty", "the value is empty or only whitespace";
    TooLong => "too_long", "the value is longer than 1024 bytes";
    PhoneUnparseable => "phone_unparseable", "not recognisable as a phone number";
    PhoneInvalid => "phone_invalid", "not a valid phone number for its region";
    EmailMalformed => "email_malformed", "not a well-formed email address";
    CnIdLength => "cn_id_length", "a resident identity number must have 18 characters";
    CnIdCharacters => "cn_id_characters",
        "a resident identity number must be 17 digits followed by a digit or X";
    CnIdBirthDate => "cn_id_birth_date",
        "the birth date inside the resident identity number is not a real date";
    CnIdChecksum => "cn_id_checksum",
        "the check character of the resident identity number does not match";
    HexMalformed => "hex_malformed", "not a SHA-256 hash written as 64 hexadecimal characters";
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Normalizes raw identifiers; holds the region assumed for phone numbers
/// written without a country code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Normalizer {
    region: country::Id,
}

impl Default for Normalizer {
    fn default() -> Self {
        Normalizer {
            region: country::Id::CN,
        }
    }
}

impl Normalizer {
    /// `default_country` is an ISO 3166 region ("CN") or a calling code ("+86" or "86").
    pub fn new(default_country: &str) -> Result<Normalizer, InvalidDefaultCountry> {
        let given = default_country.trim();
        let digits = given.strip_prefix('+').unwrap_or(given);
        let region = if digits.bytes().next().is_some_and(|b| b.is_ascii_digit()) {
            // A calling code shared by several regions (+1, +7, +44) stands
            // for its main region: national numbers of the others still parse
            // under it, and validation looks up their own region by number.
            Some(digits)
                .filter(|d| !d.starts_with('0'))
                .and_then(|d| d.parse::<u16>().ok())
                .and_then(|code| DATABASE.region(&code))
                .and_then(|regions| regions.first().and_then(|r| r.parse().ok()))
        } else {
            given.to_ascii_uppercase().parse::<country::Id>().ok()
        };
        // The parser unwraps the metadata of its default region, so only a
        // region the database knows may ever reach it.
        region
            .filter(|id: &country::Id| DATABASE.by_id(id.as_ref()).is_some())
            .map(|region| Normalizer { region })
            .ok_or_else(|| InvalidDefaultCountry(given.to_owned()))
    }

    /// The default phone region as an ISO 3166 code, for logs and reports.
    pub fn region(&self) -> &str {
        self.region.as_ref()
    }

    pub fn normalize(&self, kind: IdKind, raw: &str) -> Result<String, RejectReason> {
        if raw.len() > MAX_RAW_BYTES {
            return Err(RejectReason::TooLong);
        }
        let value = raw.trim();
        if value.is_empty() {
            return Err(RejectReason::Empty);
        }
        match kind {
            IdKind::Phone => self.phone(value),
            IdKind::Email => email(value),
            IdKind::CnId => cn_id(value),
            IdKind::Sha256Phone | IdKind::Sha256Email => sha256_hex(value),
            IdKind::Custom => Ok(value.to_owned()),
        }
    }

    fn phone(&self, value: &str) -> Result<String, RejectReason> {
        let cleaned = phone_characters(value).ok_or(RejectReason::PhoneUnparseable)?;
        let digits: String = cleaned.chars().filter(char::is_ascii_digit).collect();
        let international = if cleaned.starts_with('+') {
            // "+00 86 ..." still names +86: a country code never starts with 0.
            Some(self.after_idd(&digits).unwrap_or(&digits))
        } else {
            self.after_idd(&digits)
        };
        // phonenumber 0.3 strips national prefixes with the metadata of the
        // *default* region even when the number carries its own country code
        // (under default US, "+86 138..." loses the "1" of "138" to the US
        // trunk prefix). So a number with a country code is parsed with no
        // default region, which makes the parser pick the number's own.
        let parsed = match international {
            Some(rest) => phonenumber::parse(None, format!("+{rest}")),
            None => phonenumber::parse(Some(self.region), &cleaned),
        };
        let number = parsed.map_err(|_| RejectReason::PhoneUnparseable)?;
        if !phonenumber::is_valid(&number) {
            return Err(RejectReason::PhoneInvalid);
        }
        // The formatter signals an unknown calling code with fmt::Error, which
        // `to_string` would turn into a panic.
        let mut e164 = String::with_capacity(16);
        fmt::Write::write_fmt(&mut e164, format_args!("{}", number.format().mode(Mode::E164)))
            .map_err(|_| RejectReason::PhoneInvalid)?;
        Ok(e164)
    }

    /// The digits after the default region's international call prefix
    /// ("00" in CN, "011" in US), if `digits` starts with one.
    fn after_idd<'a>(&self, digits: &'a str) -> Option<&'a str> {
        let idd = DATABASE.by_id(self.region.as_ref())?.international_prefix()?;
        let found = idd.find(digits).filter(|m| m.start() == 0)?;
        digits.get(found.end()..).filter(|rest| !rest.starts_with('0'))
    }
}

/// Restricts phone input to digits and common separators before it reaches
/// the parser. The parser would otherwise read letters as keypad digits
/// ("1-800-FLOWERS") and accept extensions and `tel:` URIs, none of which
/// belong in an identifier column; it also keeps odd Unicode away from its
/// string slicing. Full-width forms, common in Chinese data entry, are folded
/// to ASCII.
fn phone_characters(value: &str) -> Option<String> {
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        let mapped = match c {
            '0'..='9' | '-' | '(' | ')' | '.' | '/' => c,
            '０'..='９' => char::from_digit(u32::from(c) - u32::from('０'), 10)?,
            '+' | '＋' if i == 0 => '+',
            '－' | '‐' | '‑' | '–' | '—' => '-',
            '（' => '(',
            '）' => ')',
            c if c.is_whitespace() => ' ',
            _ => return None,
        };
        out.push(mapped);
    }
    Some(out)
}

/// Lowercases the whole address: providers treat local parts
/// case-insensitively in practice, and both parties must agree on one rule.
/// Dots and plus tags are kept since partners do not strip them.
fn email(value: &str) -> Result<String, RejectReason> {
    let lower = value.to_lowercase();
    let bad = RejectReason::EmailMalformed;
    if lower.len() > MAX_EMAIL_BYTES || lower.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad);
    }
    let (local, domain) = lower.split_once('@').ok_or(bad)?;
    let domain_ok =
        !domain.contains('@') && domain.contains('.') && domain.split('.').all(|label| !label.is_empty());
    if local.is_empty() || !domain_ok {
        return Err(bad);
    }
    Ok(lower)
}

/// GB 11643-1999 resident identity number: 6-digit area, 8-digit birth date,
/// 3-digit sequence, ISO 7064 MOD 11-2 check character.
fn cn_id(value: &str) -> Result<String, RejectReason> {
    if value.chars().count() != 18 {
        return Err(RejectReason::CnIdLength);
    }
    let upper = value.to_ascii_uppercase();
    // Eighteen chars but more bytes means some were not ASCII.
    let (body, check) = match upper.as_bytes() {
        [body @ .., check] if body.len() == 17 => (body, *check),
        _ => return Err(RejectReason::CnIdCharacters),
    };
    if !body.iter().all(u8::is_ascii_digit) || !(check.is_ascii_digit() || check == b'X') {
        return Err(RejectReason::CnIdCharacters);
    }
    let digit =
        |range: std::ops::Range<usize>| body[range].iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
    if !is_calendar_date(digit(6..10), digit(10..12), digit(12..14)) {
        return Err(RejectReason::CnIdBirthDate);
    }
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: &[u8; 11] = b"10X98765432";
    let sum: u32 = body
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    if CHECK[(sum % 11) as usize] != check {
        return Err(RejectReason::CnIdChecksum);
    }
    Ok(upper)
}

fn is_calendar_date(year: u32, month: u32, day: u32) -> bool {
    let leap = (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1900..=2100).contains(&year) && (1..=days).contains(&day)
}

/// A "0x" prefix is refused rather than stripped: it hints at an export
/// convention the partner may not share, better caught at onboarding.
fn sha256_hex(value: &str) -> Result<String, RejectReason> {
    if value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(value.to_ascii_lowercase())
    } else {
        Err(RejectReason::HexMalformed)
    }
}

/// Kind both parties hash under when one holds `a` and the other `b`: the
/// same kind, or the hashed kind when one side holds phones (emails) and the
/// other only their SHA-256. `None` if the two can never match.
pub fn match_kind(a: IdKind, b: IdKind) -> Option<IdKind> {
    use IdKind::*;
    match (a, b) {
        _ if a == b => Some(a),
        (Phone, Sha256Phone) | (Sha256Phone, Phone) => Some(Sha256Phone),
        (Email, Sha256Email) | (Sha256Email, Email) => Some(Sha256Email),
        _ => None,
    }
}

/// Converts an already-normalized value of kind `from` into kind `to`: the
/// identity when equal; phone -> sha256_phone and email -> sha256_email give
/// the lowercase hex SHA-256 of the normalized UTF-8 string. `None` when not
/// convertible (a hash cannot be reversed).
pub fn convert(from: IdKind, to: IdKind, normalized: &str) -> Option<String> {
    match (from, to) {
        _ if from == to => Some(normalized.to_owned()),
        (IdKind::Phone, IdKind::Sha256Phone) | (IdKind::Email, IdKind::Sha256Email) => {
            Some(hex::encode(Sha256::digest(normalized.as_bytes())))
        }
        _ => None,
    }
}

#[cfg(test)]
#[path = "normalize_tests.rs"]
mod tests;
