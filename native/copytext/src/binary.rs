//! One wire value to one field of PostgreSQL's binary COPY format (a 32-bit
//! length, then the type's binary "send" form), for target columns of the
//! types below. The server then skips parsing text, which is most of its
//! work in a COPY: a table whose columns all have such a type is copied in
//! binary, any other in text (cdc/postgres/target_types.py `binary_kind`).
//!
//! Only values in the wire's own shapes are taken (cdc/values.py: timestamps
//! with microseconds, decimals in plain notation, ...); any other shape
//! declines, and the batch takes the planned path, which gives the value to
//! PostgreSQL's text input as it is.

use crate::fields::{base64, text_of};
use crate::json::{Decline, Reader, Res};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum BinKind {
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Numeric,
    Text,
    Bool,
    Date,
    Timestamp,
    TimestampTz,
    Bytea,
    Json,
    Jsonb,
    Uuid,
}

impl BinKind {
    pub fn named(name: &str) -> Option<BinKind> {
        Some(match name {
            "int2" => BinKind::Int2,
            "int4" => BinKind::Int4,
            "int8" => BinKind::Int8,
            "float4" => BinKind::Float4,
            "float8" => BinKind::Float8,
            "numeric" => BinKind::Numeric,
            "text" => BinKind::Text,
            "bool" => BinKind::Bool,
            "date" => BinKind::Date,
            "timestamp" => BinKind::Timestamp,
            "timestamptz" => BinKind::TimestampTz,
            "bytea" => BinKind::Bytea,
            "json" => BinKind::Json,
            "jsonb" => BinKind::Jsonb,
            "uuid" => BinKind::Uuid,
            _ => return None,
        })
    }
}

/// The header of a binary COPY stream: signature, flags, header extension length.
pub const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// The end of a binary COPY stream: a tuple of -1 fields.
pub const TRAILER: &[u8] = b"\xff\xff";
/// A NULL field: length -1.
pub const NULL: &[u8] = b"\xff\xff\xff\xff";

/// The next value (not null: the caller writes NULL) as a field of `kind`,
/// its length first.
pub fn write(json: &mut Reader, kind: BinKind, out: &mut Vec<u8>) -> Res<()> {
    let at = out.len();
    out.extend_from_slice(&[0; 4]); // the length, filled in below
    match kind {
        BinKind::Int2 => out.extend_from_slice(
            &i16::try_from(integer(json)?)
                .map_err(|_| Decline)?
                .to_be_bytes(),
        ),
        BinKind::Int4 => out.extend_from_slice(
            &i32::try_from(integer(json)?)
                .map_err(|_| Decline)?
                .to_be_bytes(),
        ),
        BinKind::Int8 => out.extend_from_slice(&integer(json)?.to_be_bytes()),
        BinKind::Float4 => {
            out.extend_from_slice(&parse::<f32>(json.number()?)?.to_bits().to_be_bytes())
        }
        BinKind::Float8 => {
            out.extend_from_slice(&parse::<f64>(json.number()?)?.to_bits().to_be_bytes())
        }
        BinKind::Numeric => {
            let text = if json.peek()? == b'"' {
                plain(json)?
            } else {
                json.number()?
            };
            numeric(text, out)?;
        }
        BinKind::Text => text_of(json, out)?,
        BinKind::Bool => out.push(u8::from(json.boolean()?)),
        BinKind::Date => {
            let text = plain(json)?;
            if text.len() != 10 {
                return Err(Decline);
            }
            out.extend_from_slice(&(date(text)? as i32).to_be_bytes());
        }
        BinKind::Timestamp | BinKind::TimestampTz => {
            // UTC ("Z", or none: the sink's session runs in UTC), which a
            // timestamp without time zone ignores, as its text input does
            let text = plain(json)?;
            let text = text.strip_suffix(b"Z").unwrap_or(text);
            out.extend_from_slice(&timestamp(text)?.to_be_bytes());
        }
        BinKind::Bytea => {
            let (raw, _) = json.string()?;
            base64(raw, |byte| out.push(byte))?;
        }
        BinKind::Json => json.compact(out)?,
        BinKind::Jsonb => {
            out.push(1); // jsonb's binary format version
            json.compact(out)?;
        }
        BinKind::Uuid => uuid(plain(json)?, out)?,
    }
    let length = i32::try_from(out.len() - at - 4).map_err(|_| Decline)?;
    out[at..at + 4].copy_from_slice(&length.to_be_bytes());
    Ok(())
}

/// A string without escapes (dates, numbers, ids never need one).
fn plain<'a>(json: &mut Reader<'a>) -> Res<&'a [u8]> {
    match json.string()? {
        (raw, false) => Ok(raw),
        _ => Err(Decline),
    }
}

fn parse<T: std::str::FromStr>(text: &[u8]) -> Res<T> {
    std::str::from_utf8(text)
        .map_err(|_| Decline)?
        .parse()
        .map_err(|_| Decline)
}

/// A JSON integer (no fraction, no exponent) that fits 64 bits.
fn integer(json: &mut Reader) -> Res<i64> {
    let text = json.number()?;
    if text.iter().any(|b| matches!(b, b'.' | b'e' | b'E')) {
        return Err(Decline);
    }
    parse(text)
}

fn digits(text: &[u8]) -> Res<u32> {
    if text.is_empty() || !text.iter().all(u8::is_ascii_digit) {
        return Err(Decline);
    }
    Ok(text.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
}

/// A decimal in plain notation ("-12.50") as PostgreSQL's numeric send
/// form: digit count, weight, sign and display scale, then base-10000 digits.
fn numeric(text: &[u8], out: &mut Vec<u8>) -> Res<()> {
    let (negative, text) = match text.strip_prefix(b"-") {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int, frac) = match text.iter().position(|&b| b == b'.') {
        Some(dot) => (&text[..dot], &text[dot + 1..]),
        None => (text, &b""[..]),
    };
    if int.is_empty() || frac.len() > 0x3fff || !int.iter().chain(frac).all(u8::is_ascii_digit) {
        return Err(Decline); // NaN, Infinity, an exponent: the text path's
    }
    if text.contains(&b'.') && frac.is_empty() {
        return Err(Decline);
    }
    // base-10000 digits aligned on the decimal point
    let lead = (4 - int.len() % 4) % 4;
    let mut groups: Vec<i16> = Vec::with_capacity((int.len() + frac.len()) / 4 + 2);
    let mut value = 0i16;
    let mut filled = lead;
    for &d in int.iter().chain(frac) {
        value = value * 10 + i16::from(d - b'0');
        filled += 1;
        if filled == 4 {
            groups.push(value);
            (value, filled) = (0, 0);
        }
    }
    if filled > 0 {
        groups.push(value * 10i16.pow(4 - filled as u32));
    }
    let mut weight = i32::try_from((lead + int.len()) / 4).map_err(|_| Decline)? - 1;
    let first = groups.iter().position(|&g| g != 0);
    let (start, end) = match first {
        Some(first) => (
            first,
            groups
                .iter()
                .rposition(|&g| g != 0)
                .expect("a nonzero digit")
                + 1,
        ),
        None => (0, 0), // zero
    };
    weight = if start == end {
        0
    } else {
        weight - start as i32
    };
    let sign: u16 = if negative && start != end { 0x4000 } else { 0 };
    out.extend_from_slice(
        &i16::try_from(end - start)
            .map_err(|_| Decline)?
            .to_be_bytes(),
    );
    out.extend_from_slice(&i16::try_from(weight).map_err(|_| Decline)?.to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&(frac.len() as u16).to_be_bytes());
    for group in &groups[start..end] {
        out.extend_from_slice(&group.to_be_bytes());
    }
    Ok(())
}

/// Days from 2000-01-01 (PostgreSQL's epoch) of "YYYY-MM-DD", years 1 to 9999.
fn date(text: &[u8]) -> Res<i64> {
    if text.len() != 10 || text[4] != b'-' || text[7] != b'-' {
        return Err(Decline);
    }
    let (year, month, day) = (
        digits(&text[..4])?,
        digits(&text[5..7])?,
        digits(&text[8..])?,
    );
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days_in_month = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if year == 0
        || !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month[month as usize - 1]
    {
        return Err(Decline);
    }
    // days from civil (Howard Hinnant), shifted from 1970-01-01 to 2000-01-01
    let (y, m, d) = (
        i64::from(year) - i64::from(month <= 2),
        i64::from(month),
        i64::from(day),
    );
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Ok(era * 146_097 + doe - 719_468 - 10_957)
}

/// Microseconds from 2000-01-01 00:00:00 of "YYYY-MM-DDTHH:MM:SS[.ffffff]".
fn timestamp(text: &[u8]) -> Res<i64> {
    if text.len() < 19 || text[10] != b'T' || text[13] != b':' || text[16] != b':' {
        return Err(Decline);
    }
    let (hour, minute, second) = (
        digits(&text[11..13])?,
        digits(&text[14..16])?,
        digits(&text[17..19])?,
    );
    if hour > 23 || minute > 59 || second > 59 {
        return Err(Decline);
    }
    let micros = match &text[19..] {
        [] => 0,
        [b'.', fraction @ ..] if (1..=6).contains(&fraction.len()) => {
            digits(fraction)? * 10u32.pow(6 - fraction.len() as u32)
        }
        _ => return Err(Decline),
    };
    let seconds = date(&text[..10])? * 86_400 + i64::from(hour * 3600 + minute * 60 + second);
    Ok(seconds * 1_000_000 + i64::from(micros))
}

/// "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" as its 16 bytes.
fn uuid(text: &[u8], out: &mut Vec<u8>) -> Res<()> {
    if text.len() != 36 || [8, 13, 18, 23].iter().any(|&i| text[i] != b'-') {
        return Err(Decline);
    }
    let mut hex = text.iter().filter(|&&b| b != b'-');
    for _ in 0..16 {
        let mut byte = 0u8;
        for _ in 0..2 {
            let d = (*hex.next().ok_or(Decline)? as char)
                .to_digit(16)
                .ok_or(Decline)?;
            byte = byte * 16 + d as u8;
        }
        out.push(byte);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric_of(text: &str) -> Option<(i16, i16, u16, u16, Vec<i16>)> {
        let mut out = Vec::new();
        numeric(text.as_bytes(), &mut out).ok()?;
        let word = |i: usize| i16::from_be_bytes([out[i], out[i + 1]]);
        let n = word(0) as usize;
        Some((
            word(0),
            word(2),
            word(4) as u16,
            word(6) as u16,
            (0..n).map(|k| word(8 + 2 * k)).collect(),
        ))
    }

    #[test]
    fn numerics_become_base_10000_digits() {
        assert_eq!(
            numeric_of("46261.84"),
            Some((3, 1, 0, 2, vec![4, 6261, 8400]))
        );
        assert_eq!(
            numeric_of("-12345.6789"),
            Some((3, 1, 0x4000, 4, vec![1, 2345, 6789]))
        );
        assert_eq!(numeric_of("0.05"), Some((1, -1, 0, 2, vec![500])));
        assert_eq!(numeric_of("0.00"), Some((0, 0, 0, 2, vec![])));
        assert_eq!(numeric_of("-0"), Some((0, 0, 0, 0, vec![])));
        assert_eq!(numeric_of("10000"), Some((1, 1, 0, 0, vec![1])));
        assert_eq!(numeric_of("007.10"), Some((2, 0, 0, 2, vec![7, 1000])));
        for bad in ["NaN", "Infinity", "1e5", "1.", ".5", "+1", "", "1.2.3"] {
            assert_eq!(numeric_of(bad), None, "{bad}");
        }
    }

    #[test]
    fn dates_and_timestamps_count_from_2000() {
        assert_eq!(date(b"2000-01-01").ok(), Some(0));
        assert_eq!(date(b"1999-12-31").ok(), Some(-1));
        assert_eq!(date(b"2024-03-01").ok(), Some(8826));
        assert_eq!(date(b"0001-01-01").ok(), Some(-730_119));
        assert!(date(b"2023-02-29").is_err());
        assert!(date(b"2024-13-01").is_err());
        assert_eq!(timestamp(b"2000-01-01T00:00:01.5").ok(), Some(1_500_000));
        assert_eq!(timestamp(b"1999-12-31T23:59:59.999999").ok(), Some(-1));
        assert!(timestamp(b"2000-01-01T24:00:00").is_err());
        assert!(timestamp(b"2000-01-01 00:00:00").is_err());
    }

    #[test]
    fn uuids_are_their_bytes() {
        let mut out = Vec::new();
        uuid(b"123e4567-e89b-12d3-a456-426614174000", &mut out).unwrap();
        assert_eq!(
            out,
            [
                0x12, 0x3e, 0x45, 0x67, 0xe8, 0x9b, 0x12, 0xd3, 0xa4, 0x56, 0x42, 0x66, 0x14, 0x17,
                0x40, 0x00
            ]
        );
        assert!(uuid(b"123e4567e89b12d3a456426614174000", &mut Vec::new()).is_err());
    }
}
