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

    fn sample() -> Vec<u8> {
        let header = Header {
            format: FORMAT.into(),
            engine: "sqlite".into(),
            schema_version: 10,
            created_at: "2026-12-03T00:00:00Z".into(),
        };
        let mut writer = LineWriter::new(Vec::new());
        writer.header(&header).unwrap_or_default();
        let table = TableInfo {
            name: "users".into(),
            columns: vec!["id".into(), "name".into()],
        };
        writer.table(&table).unwrap_or_default();
        writer
            .row(&[Cell::Int(1), Cell::Text("alice".into())])
            .unwrap_or_default();
        let tables = vec![TableCount {
            name: "users".into(),
            rows: 1,
        }];
        writer
            .finish(header, tables)
            .map(|(out, _)| out)
            .unwrap_or_default()
    }

    fn read_all(bytes: &[u8]) -> Result<Manifest, FormatError> {
        let mut reader = Reader::open(bytes)?;
        while reader.next_item()?.is_some() {}
        reader.manifest().cloned().ok_or(FormatError::Truncated)
    }

    #[test]
    fn a_written_backup_reads_back() {
        let manifest = read_all(&sample()).map_err(|e| e.to_string());
        assert_eq!(manifest.map(|m| m.rows), Ok(1));
    }

    #[test]
    fn edits_and_cuts_are_found() {
        let bytes = sample();
        let text = String::from_utf8(bytes.clone()).unwrap_or_default();
        let edited = text.replace("alice", "mallory");
        assert!(read_all(edited.as_bytes()).is_err(), "an edited row");
        let cut: Vec<u8> = bytes.iter().take(bytes.len() - 40).copied().collect();
        assert!(read_all(&cut).is_err(), "a cut-off tail");
        let extra = [bytes.as_slice(), b"[2,\"x\"]\n"].concat();
        assert!(read_all(&extra).is_err(), "data after the manifest");
    }
}
