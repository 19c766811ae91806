//! A validating JSON reader over one message's bytes: no tree, no allocation
//! beyond what the caller asks to be written out.

/// The input is not something this crate turns into COPY text: malformed
/// JSON, an event that is not a whole new row, a value it does not convert.
/// The caller then takes its general path, which handles (or dead-letters) it.
#[derive(Debug)]
pub struct Decline;

pub type Res<T> = Result<T, Decline>;

/// Nesting deeper than this declines (the general path decides what it is).
const MAX_DEPTH: u32 = 128;

pub struct Reader<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Reader<'a> {
    pub fn new(s: &'a [u8]) -> Self {
        Reader { s, i: 0 }
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.s.get(self.i) {
            self.i += 1;
        }
    }

    /// The next byte that is not whitespace, not consumed.
    pub fn peek(&mut self) -> Res<u8> {
        self.ws();
        self.s.get(self.i).copied().ok_or(Decline)
    }

    pub fn eat(&mut self, byte: u8) -> Res<()> {
        if self.peek()? == byte {
            self.i += 1;
            Ok(())
        } else {
            Err(Decline)
        }
    }

    /// Only whitespace is left.
    pub fn end(&mut self) -> Res<()> {
        self.ws();
        if self.i == self.s.len() {
            Ok(())
        } else {
            Err(Decline)
        }
    }

    /// Just after an opening `{` or `[`: true when the container is empty
    /// (its closing byte is consumed).
    pub fn empty(&mut self, close: u8) -> Res<bool> {
        if self.peek()? == close {
            self.i += 1;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// After a member: true when another follows (`,`), false at the end.
    pub fn more(&mut self, close: u8) -> Res<bool> {
        let byte = self.peek()?;
        self.i += 1;
        match byte {
            b',' => Ok(true),
            _ if byte == close => Ok(false),
            _ => Err(Decline),
        }
    }

    /// A string's raw content, between its quotes, and whether it holds escapes.
    pub fn string(&mut self) -> Res<(&'a [u8], bool)> {
        self.eat(b'"')?;
        let start = self.i;
        let mut escaped = false;
        loop {
            // most bytes are plain: pass them eight at a time, up to the first that is not
            while let Some(chunk) = self.s.get(self.i..self.i + 8) {
                let found = special(u64::from_le_bytes(chunk.try_into().expect("eight bytes")));
                if found != 0 {
                    self.i += (found.trailing_zeros() / 8) as usize;
                    break;
                }
                self.i += 8;
            }
            match *self.s.get(self.i).ok_or(Decline)? {
                b'"' => {
                    let raw = &self.s[start..self.i];
                    self.i += 1;
                    return Ok((raw, escaped));
                }
                b'\\' => {
                    escaped = true;
                    self.i += match *self.s.get(self.i + 1).ok_or(Decline)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => 2,
                        b'u' => {
                            hex4(self.s.get(self.i + 2..self.i + 6).ok_or(Decline)?)?;
                            6
                        }
                        _ => return Err(Decline),
                    };
                }
                0..=0x1f => return Err(Decline),
                _ => self.i += 1,
            }
        }
    }

    /// A number's text, as written.
    pub fn number(&mut self) -> Res<&'a [u8]> {
        self.ws();
        let s = self.s;
        let start = self.i;
        let mut i = start;
        let digits = |mut i: usize| {
            while let Some(b'0'..=b'9') = s.get(i) {
                i += 1;
            }
            i
        };
        if s.get(i) == Some(&b'-') {
            i += 1;
        }
        i = match s.get(i) {
            Some(b'0') => i + 1,
            Some(b'1'..=b'9') => digits(i + 1),
            _ => return Err(Decline),
        };
        if s.get(i) == Some(&b'.') {
            let end = digits(i + 1);
            if end == i + 1 {
                return Err(Decline);
            }
            i = end;
        }
        if let Some(b'e' | b'E') = s.get(i) {
            i += 1;
            if let Some(b'+' | b'-') = s.get(i) {
                i += 1;
            }
            let end = digits(i);
            if end == i {
                return Err(Decline);
            }
            i = end;
        }
        self.i = i;
        Ok(&s[start..i])
    }

    /// `true`, `false` or `null`, already told by its first byte.
    pub fn literal(&mut self, word: &[u8]) -> Res<()> {
        self.ws();
        if self.s[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(())
        } else {
            Err(Decline)
        }
    }

    /// `true` or `false`; any other value declines.
    pub fn boolean(&mut self) -> Res<bool> {
        let value = self.peek()? == b't';
        self.literal(if value { b"true" } else { b"false" })?;
        Ok(value)
    }

    /// Passes over any value, checking that it is well formed.
    pub fn skip(&mut self) -> Res<()> {
        self.skip_at(0)
    }

    fn skip_at(&mut self, depth: u32) -> Res<()> {
        if depth > MAX_DEPTH {
            return Err(Decline);
        }
        match self.peek()? {
            b'"' => {
                self.string()?;
            }
            b'{' => {
                self.i += 1;
                if !self.empty(b'}')? {
                    loop {
                        self.string()?;
                        self.eat(b':')?;
                        self.skip_at(depth + 1)?;
                        if !self.more(b'}')? {
                            break;
                        }
                    }
                }
            }
            b'[' => {
                self.i += 1;
                if !self.empty(b']')? {
                    loop {
                        self.skip_at(depth + 1)?;
                        if !self.more(b']')? {
                            break;
                        }
                    }
                }
            }
            b't' => self.literal(b"true")?,
            b'f' => self.literal(b"false")?,
            b'n' => self.literal(b"null")?,
            _ => {
                self.number()?;
            }
        }
        Ok(())
    }

    /// The next value's text without the whitespace between its tokens, as
    /// orjson writes JSON (the wire's encoder), appended to `out`.
    pub fn compact(&mut self, out: &mut Vec<u8>) -> Res<()> {
        self.ws();
        let start = self.i;
        self.skip()?;
        let mut in_string = false;
        let mut escape = false;
        for &byte in &self.s[start..self.i] {
            if in_string {
                if escape {
                    escape = false;
                } else if byte == b'\\' {
                    escape = true;
                } else if byte == b'"' {
                    in_string = false;
                }
            } else if matches!(byte, b' ' | b'\t' | b'\n' | b'\r') {
                continue;
            } else if byte == b'"' {
                in_string = true;
            }
            out.push(byte);
        }
        Ok(())
    }
}

/// Of eight bytes (little-endian), the high bit of each that is a quote, a
/// backslash or a control byte, exact up to the first such byte (the tricks
/// of "Bit Twiddling Hacks": a byte is zero, a byte is less than n; a borrow
/// can only flag bytes after a flagged one). Zero when there is none.
fn special(x: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let control = x.wrapping_sub(ONES * 0x20) & !x & HIGH;
    control | zero(x ^ (ONES * b'"' as u64)) | zero(x ^ (ONES * b'\\' as u64))
}

fn hex4(digits: &[u8]) -> Res<u32> {
    let mut value = 0;
    for &d in digits {
        value = value * 16 + (d as char).to_digit(16).ok_or(Decline)?;
    }
    Ok(value)
}

/// The text a string's raw content stands for, appended to `out`. A NUL
/// declines: PostgreSQL text cannot hold it.
pub fn unescape(raw: &[u8], out: &mut Vec<u8>) -> Res<()> {
    let mut i = 0;
    while i < raw.len() {
        let byte = raw[i];
        if byte != b'\\' {
            out.push(byte);
            i += 1;
            continue;
        }
        let plain = match raw[i + 1] {
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let mut code = hex4(&raw[i + 2..i + 6])?;
                i += 6;
                if (0xd800..0xdc00).contains(&code) {
                    // a high surrogate: its low half must follow
                    let low = raw.get(i..i + 6).ok_or(Decline)?;
                    if &low[..2] != b"\\u" {
                        return Err(Decline);
                    }
                    let low = hex4(&low[2..])?;
                    if !(0xdc00..0xe000).contains(&low) {
                        return Err(Decline);
                    }
                    code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00);
                    i += 6;
                }
                let ch = char::from_u32(code).ok_or(Decline)?; // a lone low surrogate
                if ch == '\0' {
                    return Err(Decline);
                }
                out.extend_from_slice(ch.encode_utf8(&mut [0; 4]).as_bytes());
                continue;
            }
            other => other, // `"`, `\` and `/` stand for themselves
        };
        out.push(plain);
        i += 2;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unescaped(raw: &str) -> Option<String> {
        let mut out = Vec::new();
        unescape(raw.as_bytes(), &mut out).ok()?;
        String::from_utf8(out).ok()
    }

    #[test]
    fn escapes_and_surrogate_pairs_decode() {
        assert_eq!(unescaped(r#"a\"b\\c\/d\n\t\r"#).unwrap(), "a\"b\\c/d\n\t\r");
        assert_eq!(unescaped(r"\u00e9\ud83d\ude00").unwrap(), "é😀");
        assert!(unescaped(r"\ud83d").is_none());
        assert!(unescaped(r"\ude00").is_none());
        assert!(unescaped(r"\u0000").is_none());
    }

    #[test]
    fn malformed_values_decline() {
        for bad in [
            "01",
            "1.",
            "-",
            "1e",
            "tru",
            "\"a",
            "\"\\x\"",
            "[1,]",
            "{\"a\" 1}",
            "\"\t\"",
        ] {
            let mut r = Reader::new(bad.as_bytes());
            assert!(r.skip().and_then(|()| r.end()).is_err(), "{bad} was read");
        }
    }

    #[test]
    fn special_finds_the_first_quote_backslash_or_control_byte() {
        let is_special = |b: u8| b == b'"' || b == b'\\' || b < 0x20;
        for filler in [b'a', 0x7f, 0x80, 0xff, b'"', 0] {
            for position in 0..8 {
                for byte in 0..=255u8 {
                    let mut chunk = [b'a'; 8];
                    chunk[position] = byte;
                    chunk[(position + 3) % 8] = filler;
                    let first = chunk.iter().position(|&b| is_special(b));
                    let found = special(u64::from_le_bytes(chunk));
                    let at = (found != 0).then(|| (found.trailing_zeros() / 8) as usize);
                    assert_eq!(at, first, "{chunk:?}");
                }
            }
        }
    }

    #[test]
    fn compact_drops_whitespace_outside_strings() {
        let mut out = Vec::new();
        Reader::new(br#" { "a" : [1, "x y", {"b": null}] } "#)
            .compact(&mut out)
            .unwrap();
        assert_eq!(out, br#"{"a":[1,"x y",{"b":null}]}"#);
    }
}
