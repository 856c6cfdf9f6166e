//! The plaintext inside a backup's age stream: JSON lines, engine-neutral.
//!
//! ```text
//! {"header":{"format":"aerie-backup/1","engine":"sqlite","schemaVersion":10,"createdAt":"…"}}
//! {"table":{"name":"users","columns":["id","username",…]}}
//! [1,"alice",…]                        one JSON array per row, cells as store::Cell::to_json
//! …
//! {"manifest":{…the header's fields…,"tables":[{"name":"users","rows":3},…],"rows":42,"sha256":"…"}}
//! ```
//!
//! The manifest comes last, because only then are the counts known; its `sha256` covers
//! every byte before its own line. A reader checks the header, every row's width, each
//! table's count, the hash and that nothing follows the manifest.

use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::store::{Cell, TableInfo};

pub const FORMAT: &str = "aerie-backup/1";

/// What a backup says about itself, first thing in the stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Header {
    pub format: String,
    pub engine: String,
    pub schema_version: i64,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableCount {
    pub name: String,
    pub rows: u64,
}

/// The last line: the header again, the counts, and the hash of everything before it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    #[serde(flatten)]
    pub header: Header,
    pub tables: Vec<TableCount>,
    pub rows: u64,
    pub sha256: String,
}

#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// Reading failed; inside an age stream, this is where a damaged chunk shows.
    #[error("reading the backup: {0}")]
    Io(#[from] std::io::Error),
    #[error("line {0}: {1}")]
    Malformed(u64, String),
    #[error("the backup ends before its manifest: it was cut short")]
    Truncated,
    #[error("the backup's content does not match its manifest: {0}")]
    Manifest(String),
}

/// Writes lines and hashes them.
pub struct LineWriter<W: Write> {
    out: W,
    hasher: Sha256,
    buffer: Vec<u8>,
}

impl<W: Write> LineWriter<W> {
    pub fn new(out: W) -> Self {
        Self {
            out,
            hasher: Sha256::new(),
            buffer: Vec::with_capacity(4096),
        }
    }

    fn line(&mut self, value: &impl Serialize) -> std::io::Result<()> {
        self.buffer.clear();
        serde_json::to_writer(&mut self.buffer, value)?;
        self.buffer.push(b'\n');
        self.hasher.update(&self.buffer);
        self.out.write_all(&self.buffer)
    }

    pub fn header(&mut self, header: &Header) -> std::io::Result<()> {
        self.line(&serde_json::json!({ "header": header }))
    }

    pub fn table(&mut self, table: &TableInfo) -> std::io::Result<()> {
        self.line(&serde_json::json!({ "table": table }))
    }

    pub fn row(&mut self, cells: &[Cell]) -> std::io::Result<()> {
        self.line(&Value::Array(cells.iter().map(Cell::to_json).collect()))
    }

    /// Writes the manifest (its hash filled in) and hands back the output.
    pub fn finish(
        mut self,
        header: Header,
        tables: Vec<TableCount>,
    ) -> std::io::Result<(W, Manifest)> {
        let manifest = Manifest {
            header,
            rows: tables.iter().map(|t| t.rows).sum(),
            tables,
            sha256: hex(&self.hasher.clone().finalize()),
        };
        self.line(&serde_json::json!({ "manifest": manifest }))?;
        Ok((self.out, manifest))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One item of a backup, in order.
pub enum Item {
    Table(TableInfo),
    Row(Vec<Cell>),
}

/// Reads and checks a backup's lines.
pub struct Reader<R: BufRead> {
    input: R,
    hasher: Sha256,
    header: Header,
    counts: Vec<TableCount>,
    width: usize,
    line: String,
    number: u64,
    manifest: Option<Manifest>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
enum Marker {
    Header(Header),
    Table(TableInfo),
    Manifest(Manifest),
}

impl<R: BufRead> Reader<R> {
    /// Reads the header; refuses anything that is not an Aerie backup of this format.
    pub fn open(input: R) -> Result<Self, FormatError> {
        let mut reader = Self {
            input,
            hasher: Sha256::new(),
            header: Header {
                format: String::new(),
                engine: String::new(),
                schema_version: 0,
                created_at: String::new(),
            },
            counts: Vec::new(),
            width: 0,
            line: String::new(),
            number: 0,
            manifest: None,
        };
        match reader.read_line()? {
            Some(Value::Object(object)) => match serde_json::from_value(Value::Object(object)) {
                Ok(Marker::Header(header)) if header.format == FORMAT => reader.header = header,
                Ok(Marker::Header(header)) => {
                    return Err(reader.malformed(format!("unknown format {:?}", header.format)));
                }
                _ => return Err(reader.malformed("not an Aerie backup header".into())),
            },
            Some(_) => return Err(reader.malformed("not an Aerie backup header".into())),
            None => return Err(FormatError::Truncated),
        }
        Ok(reader)
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    fn malformed(&self, what: String) -> FormatError {
        FormatError::Malformed(self.number, what)
    }

    /// The next line as JSON, hashed unless it is the manifest; `None` at the end.
    fn read_line(&mut self) -> Result<Option<Value>, FormatError> {
        self.line.clear();
        if self.input.read_line(&mut self.line)? == 0 {
            return Ok(None);
        }
        self.number += 1;
        let value: Value = serde_json::from_str(&self.line)
            .map_err(|error| self.malformed(format!("not JSON: {error}")))?;
        if !self.line.starts_with("{\"manifest\"") {
            self.hasher.update(self.line.as_bytes());
        }
        Ok(Some(value))
    }

    /// The next table or row; `None` once the manifest was read and checked.
    pub fn next_item(&mut self) -> Result<Option<Item>, FormatError> {
        if self.manifest.is_some() {
            return Ok(None);
        }
        let Some(value) = self.read_line()? else {
            return Err(FormatError::Truncated);
        };
        if let Value::Array(values) = value {
            let Some(count) = self.counts.last_mut() else {
                return Err(self.malformed("a row before any table".into()));
            };
            count.rows += 1;
            if values.len() != self.width {
                return Err(self.malformed(format!(
                    "{} values for {} columns",
                    values.len(),
                    self.width
                )));
            }
            let cells: Option<Vec<Cell>> = values.iter().map(Cell::from_json).collect();
            return match cells {
                Some(cells) => Ok(Some(Item::Row(cells))),
                None => Err(self.malformed("a value that is not a cell".into())),
            };
        }
        match serde_json::from_value(value) {
            Ok(Marker::Table(table)) => {
                if self.counts.iter().any(|c| c.name == table.name) {
                    return Err(self.malformed(format!("table {} twice", table.name)));
                }
                self.width = table.columns.len();
                self.counts.push(TableCount {
                    name: table.name.clone(),
                    rows: 0,
                });
                Ok(Some(Item::Table(table)))
            }
            Ok(Marker::Manifest(manifest)) => {
                self.check(&manifest)?;
                self.line.clear();
                if self.input.read_line(&mut self.line)? != 0 {
                    return Err(FormatError::Manifest("data after the manifest".into()));
                }
                self.manifest = Some(manifest);
                Ok(None)
            }
            _ => Err(self.malformed("neither a table, a row nor the manifest".into())),
        }
    }

    fn check(&self, manifest: &Manifest) -> Result<(), FormatError> {
        let fail = |what: String| Err(FormatError::Manifest(what));
        if manifest.header != self.header {
            return fail("its header differs from the first line".into());
        }
        if manifest.tables != self.counts {
            return fail("the row counts differ".into());
        }
        if manifest.rows != self.counts.iter().map(|c| c.rows).sum::<u64>() {
            return fail("the total row count differs".into());
        }
        if manifest.sha256 != hex(&self.hasher.clone().finalize()) {
            return fail("the content hash differs".into());
        }
        Ok(())
    }

    /// The checked manifest, once [`Reader::next_item`] answered `None`.
    pub fn manifest(&self) -> Option<&Manifest> {
        self.manifest.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            format: FORMAT.into(),
            engine: "sqlite".into(),
            schema_version: 10,
            created_at: "2026-12-03T00:00:00Z".into(),
        }
    }

    fn table(name: &str, columns: &[&str]) -> TableInfo {
        TableInfo {
            name: name.into(),
            columns: columns.iter().map(|c| (*c).into()).collect(),
        }
    }

    /// Two tables (users: alice and bob; keys: none), and the manifest `edit` made of the
    /// true one: the lines before it are untouched, so only what `edit` changed can fail.
    fn sample_with(edit: impl FnOnce(&mut Manifest)) -> Vec<u8> {
        let mut writer = LineWriter::new(Vec::new());
        writer.header(&header()).unwrap();
        writer.table(&table("users", &["id", "name"])).unwrap();
        for (id, name) in [(1, "alice"), (2, "bob")] {
            writer
                .row(&[Cell::Int(id), Cell::Text(name.into())])
                .unwrap();
        }
        writer.table(&table("keys", &["id"])).unwrap();
        let counts = vec![
            TableCount {
                name: "users".into(),
                rows: 2,
            },
            TableCount {
                name: "keys".into(),
                rows: 0,
            },
        ];
        let (mut out, mut manifest) = writer.finish(header(), counts).unwrap();
        let last = out[..out.len() - 1]
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |at| at + 1);
        out.truncate(last);
        edit(&mut manifest);
        let line = serde_json::json!({ "manifest": manifest }).to_string();
        [out, line.into_bytes(), b"\n".to_vec()].concat()
    }

    fn sample() -> Vec<u8> {
        sample_with(|_| {})
    }

    /// Every item, then the checked manifest.
    fn read_all(bytes: &[u8]) -> Result<(Vec<String>, Manifest), FormatError> {
        let mut reader = Reader::open(bytes)?;
        let mut items = Vec::new();
        while let Some(item) = reader.next_item()? {
            items.push(match item {
                Item::Table(info) => format!("table {} {:?}", info.name, info.columns),
                Item::Row(cells) => format!("row {cells:?}"),
            });
        }
        let manifest = reader.manifest().cloned().ok_or(FormatError::Truncated)?;
        Ok((items, manifest))
    }

    fn refusal(bytes: &[u8]) -> String {
        match read_all(bytes) {
            Ok(_) => "read without complaint".into(),
            Err(error) => error.to_string(),
        }
    }

    fn with_line_replaced(number: usize, line: &str) -> Vec<u8> {
        let text = String::from_utf8(sample()).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        lines[number] = line;
        (lines.join("\n") + "\n").into_bytes()
    }

    #[test]
    fn a_written_backup_reads_back_item_by_item() {
        let (items, manifest) = read_all(&sample()).expect("a written backup reads back");
        assert_eq!(
            items,
            [
                r#"table users ["id", "name"]"#,
                r#"row [Int(1), Text("alice")]"#,
                r#"row [Int(2), Text("bob")]"#,
                r#"table keys ["id"]"#,
            ]
        );
        assert_eq!(manifest.rows, 2);
        assert_eq!(manifest.header, header());
        // The hash an operator compares with the one printed at creation: SHA-256 of every
        // line before the manifest, in lowercase hex.
        let bytes = sample();
        let body = &bytes[..bytes.len() - 1];
        let body = &body[..body.iter().rposition(|b| *b == b'\n').unwrap() + 1];
        assert_eq!(manifest.sha256, format!("{:x}", Sha256::digest(body)));
        assert_eq!(
            Reader::open(sample().as_slice())
                .map(|r| r.header().clone())
                .ok(),
            Some(header())
        );
    }

    #[test]
    fn only_an_aerie_backup_header_opens() {
        let other =
            serde_json::json!({ "header": Header { format: "aerie-backup/2".into(), ..header() } });
        assert!(refusal(&with_line_replaced(0, &other.to_string())).contains("unknown format"));
        assert!(
            refusal(&with_line_replaced(
                0,
                r#"{"table":{"name":"x","columns":[]}}"#
            ))
            .contains("not an Aerie backup header")
        );
        assert!(refusal(&with_line_replaced(0, "[1]")).contains("not an Aerie backup header"));
        assert!(matches!(read_all(b""), Err(FormatError::Truncated)));
    }

    #[test]
    fn rows_must_follow_a_table_and_fit_its_columns() {
        let before_any = with_line_replaced(1, r#"[1,"alice"]"#);
        assert!(refusal(&before_any).contains("a row before any table"));
        let wide = with_line_replaced(2, r#"[1,"alice","extra"]"#);
        assert!(refusal(&wide).contains("3 values for 2 columns"));
        let not_a_cell = with_line_replaced(2, r#"[1,{"nested":true}]"#);
        assert!(refusal(&not_a_cell).contains("a value that is not a cell"));
        let twice = with_line_replaced(4, r#"{"table":{"name":"users","columns":["id"]}}"#);
        assert!(refusal(&twice).contains("table users twice"));
        let stray = with_line_replaced(2, r#"{"comment":"hi"}"#);
        assert!(refusal(&stray).contains("neither a table, a row nor the manifest"));
        let garbage = with_line_replaced(2, "not json");
        assert!(refusal(&garbage).contains("line 3: not JSON"));
    }

    #[test]
    fn each_manifest_check_stands_on_its_own() {
        let engine = sample_with(|m| m.header.engine = "postgres".into());
        assert!(refusal(&engine).contains("its header differs"));
        // The same total, split differently between the tables.
        let split = sample_with(|m| (m.tables[0].rows, m.tables[1].rows) = (1, 1));
        assert!(refusal(&split).contains("the row counts differ"));
        let total = sample_with(|m| m.rows = 3);
        assert!(refusal(&total).contains("the total row count differs"));
        let hash = sample_with(|m| m.sha256 = "0".repeat(64));
        assert!(refusal(&hash).contains("the content hash differs"));
    }

    #[test]
    fn edits_and_cuts_are_found() {
        let bytes = sample();
        let text = String::from_utf8(bytes.clone()).unwrap();
        let edited = text.replace("alice", "mallory");
        assert!(refusal(edited.as_bytes()).contains("the content hash differs"));
        let cut: Vec<u8> = bytes.iter().take(bytes.len() - 40).copied().collect();
        assert!(read_all(&cut).is_err(), "a cut-off tail");
        // Every line but the manifest: whole lines, so only the missing end can fail.
        let lines: Vec<&[u8]> = bytes.split_inclusive(|b| *b == b'\n').collect();
        let without_manifest = lines[..lines.len() - 1].concat();
        assert!(matches!(
            read_all(&without_manifest),
            Err(FormatError::Truncated)
        ));
        let extra = [bytes.as_slice(), b"[2,\"x\"]\n"].concat();
        assert!(refusal(&extra).contains("data after the manifest"));
    }
}
