//! One wire value to one COPY text field, as cdc/postgres/target_types.py's encoder for
//! the column's kind writes it, COPY's escapes included.

use crate::json::{unescape, Decline, Reader, Res};

/// The encoders of cdc/postgres/target_types.py (`encoder_kind`), by the name it gives them.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Text,
    Bytes,
    Json,
    Bool,
    Interval,
    Array,
}

impl Kind {
    pub fn named(name: &str) -> Option<Kind> {
        Some(match name {
            "text" => Kind::Text,
            "bytes" => Kind::Bytes,
            "json" => Kind::Json,
            "bool" => Kind::Bool,
            "interval" => Kind::Interval,
            "array" => Kind::Array,
            _ => return None,
        })
    }
}

/// Buffers reused from value to value.
#[derive(Default)]
pub struct Scratch {
    text: Vec<u8>,
    item: Vec<u8>,
}

/// COPY text format: backslash, tab, newline and carriage return are escaped.
pub fn copy_escape(text: &[u8], out: &mut Vec<u8>) {
    if !text
        .iter()
        .any(|b| matches!(b, b'\\' | b'\t' | b'\n' | b'\r'))
    {
        out.extend_from_slice(text);
        return;
    }
    for &byte in text {
        match byte {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(byte),
        }
    }
}

/// The next value (not null: the caller writes NULL) as a field of `kind`.
pub fn write(json: &mut Reader, kind: Kind, out: &mut Vec<u8>, scratch: &mut Scratch) -> Res<()> {
    scratch.text.clear();
    match (kind, json.peek()?) {
        (Kind::Json, _) => json.compact(&mut scratch.text)?,
        (Kind::Array, b'[') => array(json, &mut scratch.text, &mut scratch.item, 0)?,
        // Python's _bool takes any value's truth; only JSON booleans are taken here
        (Kind::Bool, _) => {
            out.push(if json.boolean()? { b't' } else { b'f' });
            return Ok(());
        }
        (Kind::Bytes, b'"') => {
            let (raw, _) = json.string()?;
            out.extend_from_slice(b"\\\\x"); // bytea's hex input, its backslash escaped for COPY
            return base64(raw, |byte| {
                out.push(HEX[usize::from(byte >> 4)]);
                out.push(HEX[usize::from(byte & 15)]);
            });
        }
        (Kind::Bytes, _) => return Err(Decline),
        (Kind::Text | Kind::Interval | Kind::Array, _) => {
            text_of(json, &mut scratch.text)?;
            // A negative duration needs a conversion PostgreSQL cannot do (cdc/postgres/target_types.py)
            if kind == Kind::Interval && scratch.text.starts_with(b"-P") {
                return Err(Decline);
            }
        }
    }
    copy_escape(&scratch.text, out);
    Ok(())
}

/// The value as PostgreSQL's text input takes it (Python's str(), or JSON
/// text for an object or array: cdc/postgres/target_types.py `_text`), unescaped.
pub fn text_of(json: &mut Reader, out: &mut Vec<u8>) -> Res<()> {
    match json.peek()? {
        b'"' => match json.string()? {
            (raw, true) => unescape(raw, out)?,
            (raw, false) => out.extend_from_slice(raw),
        },
        b'{' | b'[' => json.compact(out)?,
        b't' | b'f' => out.extend_from_slice(if json.boolean()? { b"True" } else { b"False" }),
        _ => out.extend_from_slice(json.number()?),
    }
    Ok(())
}

/// A JSON array as a PostgreSQL array literal (cdc/postgres/target_types.py `_array_item`).
fn array(json: &mut Reader, out: &mut Vec<u8>, item: &mut Vec<u8>, depth: u32) -> Res<()> {
    if depth > 32 {
        return Err(Decline);
    }
    json.eat(b'[')?;
    out.push(b'{');
    if !json.empty(b']')? {
        loop {
            match json.peek()? {
                b'n' => {
                    json.literal(b"null")?;
                    out.extend_from_slice(b"NULL");
                }
                b'[' => array(json, out, item, depth + 1)?,
                b't' | b'f' => out.push(if json.boolean()? { b't' } else { b'f' }),
                first => {
                    item.clear();
                    match first {
                        b'{' => json.compact(item)?,
                        b'"' => {
                            let (raw, _) = json.string()?;
                            unescape(raw, item)?;
                        }
                        _ => item.extend_from_slice(json.number()?),
                    }
                    quote(item, out);
                }
            }
            if !json.more(b']')? {
                break;
            }
            out.push(b',');
        }
    }
    out.push(b'}');
    Ok(())
}

/// An array element in double quotes, its backslashes and quotes escaped.
fn quote(text: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    for &byte in text {
        if byte == b'\\' || byte == b'"' {
            out.push(b'\\');
        }
        out.push(byte);
    }
    out.push(b'"');
}

fn sextet(byte: u8) -> Res<u32> {
    Ok(match byte {
        b'A'..=b'Z' => byte - b'A',
        b'a'..=b'z' => byte - b'a' + 26,
        b'0'..=b'9' => byte - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return Err(Decline),
    } as u32)
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The bytes of standard padded base64 (the wire's form of bytes), one by one.
pub fn base64(text: &[u8], mut emit: impl FnMut(u8)) -> Res<()> {
    if !text.len().is_multiple_of(4) {
        return Err(Decline);
    }
    let quads = text.len() / 4;
    for (n, quad) in text.chunks_exact(4).enumerate() {
        let pad = match (quad[2], quad[3]) {
            (b'=', b'=') => 2,
            (_, b'=') => 1,
            _ => 0,
        };
        if pad > 0 && n + 1 != quads {
            return Err(Decline);
        }
        let mut bits = 0u32;
        for &byte in &quad[..4 - pad] {
            bits = (bits << 6) | sextet(byte)?;
        }
        bits <<= 6 * pad as u32;
        for k in 0..3 - pad {
            emit((bits >> (16 - 8 * k)) as u8);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(kind: Kind, json: &str) -> Option<String> {
        let mut out = Vec::new();
        let mut reader = Reader::new(json.as_bytes());
        write(&mut reader, kind, &mut out, &mut Scratch::default()).ok()?;
        reader.end().ok()?;
        Some(String::from_utf8(out).unwrap())
    }

    #[test]
    fn bytes_become_escaped_hex() {
        assert_eq!(field(Kind::Bytes, r#""AAEC/w==""#).unwrap(), r"\\x000102ff");
        assert_eq!(field(Kind::Bytes, r#""AAE=""#).unwrap(), r"\\x0001");
        assert_eq!(field(Kind::Bytes, r#""""#).unwrap(), r"\\x");
        assert!(field(Kind::Bytes, r#""AA=A""#).is_none());
        assert!(field(Kind::Bytes, r#""A""#).is_none());
    }

    #[test]
    fn arrays_nest_and_quote() {
        assert_eq!(
            field(Kind::Array, r#"[[1,null],["a\"b",true],[{"k":1}]]"#).unwrap(),
            r#"{{"1",NULL},{"a\\"b",t},{"{\\"k\\":1}"}}"#
        );
    }

    #[test]
    fn text_escapes_copy_specials() {
        assert_eq!(field(Kind::Text, r#""a\tb\\c""#).unwrap(), r"a\tb\\c");
        assert_eq!(field(Kind::Text, "true").unwrap(), "True");
        assert_eq!(field(Kind::Json, r#""x\ny""#).unwrap(), r#""x\\ny""#);
        assert!(field(Kind::Interval, r#""-P1D""#).is_none());
        assert!(field(Kind::Bool, "1").is_none());
    }
}
