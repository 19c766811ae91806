//! Insert events in cdc's wire form (Debezium JSON envelopes) to PostgreSQL's
//! COPY formats, text or binary, for the sink's direct insert path
//! (sinks/inserts.py).
//!
//! That path spent most of its time decoding each envelope into Python
//! objects and writing them back out as COPY text. Here both happen in one
//! pass over the message bytes. Whatever this crate does not convert (an
//! update or a delete, a value of an unexpected type, malformed JSON) declines
//! the whole batch, and the sink applies it the planned way, which handles
//! every case and dead-letters what cannot be applied.
//!
//! Text fields come out as cdc/postgres/target_types.py's encoders write them for the
//! same wire value (tests/unit/test_copytext.py holds the two to the same
//! lines); binary fields hold the values PostgreSQL reads from those lines
//! (tests/integration/test_copy_binary.py compares the rows).

mod binary;
mod fields;
mod json;

use std::collections::HashMap;

use pyo3::exceptions::PyValueError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use binary::BinKind;
use fields::{Kind, Scratch};
use json::{unescape, Decline, Reader, Res};

/// Each column's encoder, in one of COPY's two formats.
enum Format {
    Text(Vec<Kind>),
    Binary(Vec<BinKind>),
}

fn kinds_named<K>(kinds: &[String], named: fn(&str) -> Option<K>) -> PyResult<Vec<K>> {
    kinds
        .iter()
        .map(|k| {
            named(k).ok_or_else(|| PyValueError::new_err(format!("unknown encoder kind {k:?}")))
        })
        .collect()
}

/// COPY data for the `after` rows of one table's insert events.
#[pyclass(frozen, module = "cdc_copytext")]
struct RowEncoder {
    columns: Vec<Vec<u8>>,
    index: HashMap<Vec<u8>, usize>,
    format: Format,
}

#[pymethods]
impl RowEncoder {
    /// `columns` in the table's order, each with its encoder kind: in the
    /// text format cdc/postgres/target_types.py `encoder_kind`, in the binary format
    /// `binary_kind`.
    #[new]
    #[pyo3(signature = (columns, kinds, binary = false))]
    fn new(columns: Vec<String>, kinds: Vec<String>, binary: bool) -> PyResult<Self> {
        if columns.len() != kinds.len() || columns.is_empty() {
            return Err(PyValueError::new_err(
                "one encoder kind per column, at least one column",
            ));
        }
        let format = if binary {
            Format::Binary(kinds_named(&kinds, BinKind::named)?)
        } else {
            Format::Text(kinds_named(&kinds, Kind::named)?)
        };
        let columns: Vec<Vec<u8>> = columns.into_iter().map(String::into_bytes).collect();
        let index = columns
            .iter()
            .enumerate()
            .map(|(i, c)| (c.clone(), i))
            .collect();
        Ok(RowEncoder {
            columns,
            index,
            format,
        })
    }

    /// Whether the encoder writes PostgreSQL's binary COPY format.
    #[getter]
    fn binary(&self) -> bool {
        matches!(self.format, Format::Binary(_))
    }

    /// One row per message (its `after` row, a column it lacks NULL) in the
    /// encoder's format (binary: tuples only, without the stream's header and
    /// trailer), and the newest source commit time among them (ms, 0 when
    /// none says); None when any message is not a whole new row (op `c` or
    /// `r`, no unchanged TOAST columns) or holds a value this encoder does
    /// not convert.
    fn encode<'py>(
        &self,
        py: Python<'py>,
        values: &Bound<'py, PyList>,
    ) -> PyResult<Option<(Bound<'py, PyBytes>, i64)>> {
        let mut out = Vec::with_capacity(values.len() * 128);
        let mut row = Row::new(self.columns.len());
        let mut newest = 0;
        for value in values.iter() {
            let bytes = value.cast::<PyBytes>()?.as_bytes();
            match self.line(bytes, &mut row, &mut out) {
                Ok(ts_ms) => newest = newest.max(ts_ms),
                Err(Decline) => return Ok(None),
            }
        }
        Ok(Some((PyBytes::new(py, &out), newest)))
    }
}

/// One row's fields as they are read, in whatever order the message has them.
struct Row {
    fields: Vec<u8>,
    spans: Vec<Option<(usize, usize)>>, // None: NULL
    scratch: Scratch,
    key: Vec<u8>,
}

impl Row {
    fn new(columns: usize) -> Self {
        Row {
            fields: Vec::new(),
            spans: vec![None; columns],
            scratch: Scratch::default(),
            key: Vec::new(),
        }
    }
}

impl RowEncoder {
    /// The envelope's `after` as a COPY row on `out` (a text line or a binary
    /// tuple); its `source.ts_ms`.
    fn line(&self, value: &[u8], row: &mut Row, out: &mut Vec<u8>) -> Res<i64> {
        std::str::from_utf8(value).map_err(|_| Decline)?;
        let mut json = Reader::new(value);
        let (mut new_row, mut after, mut ts_ms) = (false, false, 0);
        json.eat(b'{')?;
        if !json.empty(b'}')? {
            loop {
                let (key, _) = json.string()?; // an escaped key is no key read here
                json.eat(b':')?;
                match key {
                    b"after" if !after => {
                        self.after(&mut json, row)?;
                        after = true;
                    }
                    b"op" => {
                        let (op, _) = json.string()?;
                        new_row = op == b"c" || op == b"r";
                    }
                    b"source" => ts_ms = source_ts_ms(&mut json)?,
                    b"unchanged" | b"after" => return Err(Decline),
                    _ => json.skip()?,
                }
                if !json.more(b'}')? {
                    break;
                }
            }
        }
        json.end()?;
        if !(new_row && after) {
            return Err(Decline);
        }
        let field = |span: Option<(usize, usize)>| span.map(|(start, end)| &row.fields[start..end]);
        match self.format {
            Format::Text(_) => {
                for (i, &span) in row.spans.iter().enumerate() {
                    if i > 0 {
                        out.push(b'\t');
                    }
                    out.extend_from_slice(field(span).unwrap_or(b"\\N"));
                }
                out.push(b'\n');
            }
            Format::Binary(_) => {
                out.extend_from_slice(&(row.spans.len() as i16).to_be_bytes());
                for &span in &row.spans {
                    out.extend_from_slice(field(span).unwrap_or(binary::NULL));
                }
            }
        }
        Ok(ts_ms)
    }

    fn after(&self, json: &mut Reader, row: &mut Row) -> Res<()> {
        row.fields.clear();
        row.spans.fill(None);
        json.eat(b'{')?;
        if json.empty(b'}')? {
            return Ok(());
        }
        let mut next = 0; // the column expected next: messages list them in table order
        loop {
            let (raw, escaped) = json.string()?;
            let name = if escaped {
                row.key.clear();
                unescape(raw, &mut row.key)?;
                &row.key[..]
            } else {
                raw
            };
            json.eat(b':')?;
            let column = match self.columns.get(next) {
                Some(expected) if expected[..] == *name => Some(next),
                _ => self.index.get(name).copied(),
            };
            match column {
                // a column the target table does not have is left out, as in sinks/postgres/copy_text.py
                None => json.skip()?,
                Some(column) => {
                    next = column + 1;
                    if json.peek()? == b'n' {
                        json.literal(b"null")?;
                        row.spans[column] = None;
                    } else {
                        let start = row.fields.len();
                        match &self.format {
                            Format::Text(kinds) => fields::write(
                                json,
                                kinds[column],
                                &mut row.fields,
                                &mut row.scratch,
                            )?,
                            Format::Binary(kinds) => {
                                binary::write(json, kinds[column], &mut row.fields)?
                            }
                        }
                        row.spans[column] = Some((start, row.fields.len()));
                    }
                }
            }
            if !json.more(b'}')? {
                return Ok(());
            }
        }
    }
}

/// `source.ts_ms` where it is an integer, else 0.
fn source_ts_ms(json: &mut Reader) -> Res<i64> {
    if json.peek()? != b'{' {
        json.skip()?;
        return Ok(0);
    }
    json.eat(b'{')?;
    let mut ts_ms = 0;
    if !json.empty(b'}')? {
        loop {
            let (key, _) = json.string()?;
            json.eat(b':')?;
            if key == b"ts_ms" && json.peek()?.is_ascii_digit() {
                let text = json.number()?;
                ts_ms = std::str::from_utf8(text)
                    .ok()
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(0);
            } else {
                json.skip()?;
            }
            if !json.more(b'}')? {
                break;
            }
        }
    }
    Ok(ts_ms)
}

/// A topic, its schema fingerprint and its messages' values, in order.
type TopicValues<'py> = (
    Bound<'py, PyString>,
    Bound<'py, PyBytes>,
    Bound<'py, PyList>,
);

/// Messages of one topic in a batch: their values, in order.
struct Group<'py> {
    topic: Bound<'py, PyString>,
    fingerprint: Bound<'py, PyBytes>,
    values: Bound<'py, PyList>,
}

/// The schema fingerprint the message's headers name (as cdc.schemas.fingerprint_of).
fn fingerprint<'py>(
    headers: &Bound<'py, PyAny>,
    name: &str,
) -> PyResult<Option<Bound<'py, PyBytes>>> {
    let Ok(headers) = headers.cast::<PyList>() else {
        return Ok(None);
    };
    let mut found = None;
    for (i, header) in headers.iter().enumerate() {
        let header = header.cast_into::<PyTuple>()?;
        if header
            .get_item(0)?
            .cast::<PyString>()
            .is_ok_and(|key| key == name)
        {
            found = Some(header.get_item(1)?);
            if i == 0 {
                break; // the source writes its header first
            }
        }
    }
    Ok(found.and_then(|value| value.cast_into::<PyBytes>().ok()))
}

/// Whether an envelope's `op` makes a new row (`c`, `r`): the envelope's own is
/// its last `,"op":"` (it follows before, after and source, where a column
/// named op may hold the same text).
fn makes_a_row(value: &[u8]) -> bool {
    const OP: &[u8] = b",\"op\":\"";
    value
        .windows(OP.len())
        .rposition(|w| w == OP)
        .is_some_and(|at| matches!(value.get(at + OP.len()), Some(b'c' | b'r')))
}

/// The values of a batch of consumed messages by topic, with each topic's
/// schema fingerprint, and the next offset per (topic, partition); None when
/// any message lacks a key, a value or a fingerprint, is not an insert or a
/// snapshot read (an update or delete: no COPY is begun only to be rolled
/// back), or a topic's fingerprint changes inside the batch.
#[pyfunction]
fn group_by_topic<'py>(
    py: Python<'py>,
    messages: &Bound<'py, PyList>,
    header: &str,
) -> PyResult<Option<(Vec<TopicValues<'py>>, Bound<'py, PyDict>)>> {
    let mut groups: Vec<Group<'py>> = Vec::new();
    let mut offsets: Vec<(usize, i64, i64)> = Vec::new(); // (group, partition, next offset)
    for msg in messages.iter() {
        let value = msg.call_method0(intern!(py, "value"))?;
        if value.is_none() || msg.call_method0(intern!(py, "key"))?.is_none() {
            return Ok(None);
        }
        if !value
            .cast::<PyBytes>()
            .is_ok_and(|v| makes_a_row(v.as_bytes()))
        {
            return Ok(None);
        }
        let Some(print) = fingerprint(&msg.call_method0(intern!(py, "headers"))?, header)? else {
            return Ok(None);
        };
        let topic = msg.call_method0(intern!(py, "topic"))?;
        let topic = match topic.cast_into::<PyString>() {
            Ok(topic) => topic,
            Err(_) => PyString::new(py, ""),
        };
        let partition: i64 = msg
            .call_method0(intern!(py, "partition"))?
            .extract()
            .unwrap_or(0);
        let offset: i64 = msg
            .call_method0(intern!(py, "offset"))?
            .extract()
            .unwrap_or(0);
        let name = topic.to_str()?;
        let at = match groups
            .iter()
            .position(|g| g.topic.to_str().is_ok_and(|t| t == name))
        {
            Some(at) => at,
            None => {
                groups.push(Group {
                    topic,
                    fingerprint: print.clone(),
                    values: PyList::empty(py),
                });
                groups.len() - 1
            }
        };
        let group = &groups[at];
        if group.fingerprint.as_bytes() != print.as_bytes() {
            return Ok(None); // the table changed inside the batch: the planned path follows it
        }
        group.values.append(value)?;
        match offsets
            .iter_mut()
            .find(|(g, p, _)| *g == at && *p == partition)
        {
            Some(entry) => entry.2 = offset + 1,
            None => offsets.push((at, partition, offset + 1)),
        }
    }
    let next = PyDict::new(py);
    for (at, partition, offset) in offsets {
        next.set_item((groups[at].topic.clone(), partition), offset)?;
    }
    let groups = groups
        .into_iter()
        .map(|g| (g.topic, g.fingerprint, g.values))
        .collect();
    Ok(Some((groups, next)))
}

#[pymodule]
fn cdc_copytext(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<RowEncoder>()?;
    module.add(
        "BINARY_HEADER",
        PyBytes::new(module.py(), binary::SIGNATURE),
    )?;
    module.add("BINARY_TRAILER", PyBytes::new(module.py(), binary::TRAILER))?;
    module.add_function(wrap_pyfunction!(group_by_topic, module)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::makes_a_row;

    #[test]
    fn only_inserts_and_reads_make_a_row_whatever_a_column_named_op_holds() {
        let value = |op: &str| {
            format!(
                r#"{{"before":null,"after":{{"id":1,"op":"c"}},"source":{{"op":"c"}},"op":"{op}","ts_ms":1}}"#
            )
        };
        assert!(makes_a_row(value("c").as_bytes()));
        assert!(makes_a_row(value("r").as_bytes()));
        assert!(!makes_a_row(value("u").as_bytes()));
        assert!(!makes_a_row(value("d").as_bytes()));
        assert!(!makes_a_row(b"{}"));
    }
}
