//! CSV records with their file line: the header is line 1, and a record's line is the line its
//! first field is on, whether the file ends its lines with LF or with CRLF (the published UCI
//! `diabetic_data.csv`, Python's `csv` module and Excel write CRLF).
//!
//! The csv crate counts lines by `\n` and leaves the `\n` of a CRLF ending to the next record,
//! so its own positions are one line early in CRLF files. Here the line is counted from the byte
//! offset where each record starts, over the file's bytes: skip the ending and any blank lines
//! the reader skips too, then count the `\n` before the first field.

use std::path::Path;

use crate::error::{DataError, HeaderError, Result, RowError};

/// The bytes of the file at `path`.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| DataError::Read { path: path.to_path_buf(), source })
}

/// The records of one CSV file (held in memory), each with its file line.
pub(crate) struct Records<'a> {
    bytes: &'a [u8],
    reader: csv::Reader<&'a [u8]>,
    /// Bytes before this offset are counted in `newlines`.
    counted: usize,
    newlines: u64,
}

impl<'a> Records<'a> {
    /// A reader over `bytes`; rows may have any number of fields (each row is checked by the
    /// caller, so that a short row is a bad row, not a reader error).
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        let reader = csv::ReaderBuilder::new().flexible(true).from_reader(bytes);
        Self { bytes, reader, counted: 0, newlines: 0 }
    }

    /// The header row.
    pub(crate) fn header(&mut self) -> Result<csv::StringRecord, HeaderError> {
        match self.reader.headers() {
            Ok(header) if !header.is_empty() => Ok(header.clone()),
            Ok(_) => Err(HeaderError::Unreadable { message: "the file is empty".into() }),
            Err(error) => Err(HeaderError::Unreadable { message: error.to_string() }),
        }
    }

    /// Reads the next record into `record`: `None` at the end, else its file line and whether
    /// it could be read.
    pub(crate) fn next_into(&mut self, record: &mut csv::StringRecord) -> Option<(u64, Result<(), RowError>)> {
        let start = usize::try_from(self.reader.position().byte()).unwrap_or(usize::MAX);
        let outcome = match self.reader.read_record(record) {
            Ok(false) => return None,
            Ok(true) => Ok(()),
            Err(error) => Err(RowError::Unreadable { message: error.to_string() }),
        };
        Some((self.line_at(start), outcome))
    }

    /// The file line of a record the reader started at byte `start`.
    fn line_at(&mut self, start: usize) -> u64 {
        let start = start.min(self.bytes.len());
        let skipped = self.bytes[start..].iter().take_while(|&&b| b == b'\r' || b == b'\n').count();
        let first_field = start + skipped;
        if first_field > self.counted {
            let newlines = self.bytes[self.counted..first_field].iter().filter(|&&b| b == b'\n').count();
            self.newlines += newlines as u64;
            self.counted = first_field;
        }
        self.newlines + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &[u8]) -> Vec<(u64, Vec<String>)> {
        let mut records = Records::new(text);
        records.header().unwrap();
        let mut record = csv::StringRecord::new();
        let mut out = Vec::new();
        while let Some((line, outcome)) = records.next_into(&mut record) {
            outcome.unwrap();
            out.push((line, record.iter().map(str::to_owned).collect()));
        }
        out
    }

    #[test]
    fn lf_and_crlf_files_give_the_same_file_lines() {
        let lf = lines(b"a,b\n1,2\n3,4\n");
        let crlf = lines(b"a,b\r\n1,2\r\n3,4\r\n");
        assert_eq!(lf, [(2, vec!["1".into(), "2".into()]), (3, vec!["3".into(), "4".into()])]);
        assert_eq!(crlf, lf);
        // Blank lines are skipped and counted; a quoted field may span lines.
        let blank = lines(b"a,b\r\n\r\n1,2\r\n\"x\r\ny\",4\r\n5,6");
        assert_eq!(blank.iter().map(|(line, _)| *line).collect::<Vec<_>>(), [3, 4, 6]);
        assert_eq!(blank[1].1[0], "x\r\ny");
    }

    #[test]
    fn an_unreadable_row_keeps_its_line_and_the_next_row_is_read() {
        let mut records = Records::new(b"a,b\r\n1,2\r\n\xff,3\r\n4,5\r\n");
        records.header().unwrap();
        let mut record = csv::StringRecord::new();
        let seen: Vec<(u64, bool)> =
            core::iter::from_fn(|| records.next_into(&mut record)).map(|(line, r)| (line, r.is_ok())).collect();
        assert_eq!(seen, [(2, true), (3, false), (4, true)]);
        assert!(Records::new(b"").header().is_err());
    }
}
